/* The task declaration: names, kinds, label columns and where each task sits in the label and
 * logit columns. Shared by the model (losses), the site loader (label columns) and evaluation
 * (metrics per kind), so it lives below all three. */
#include <stdio.h>
#include <string.h>

#include "ff/common.h"

const char *ff_task_kind_name(int kind)
{
    static const char *const names[] = {"binary", "multiclass", "regression", "survival"};
    return kind >= 0 && kind < FF_TASK_KIND_COUNT ? names[kind] : "?";
}

int ff_task_width(const ff_task *t)
{
    switch (t->kind) {
    case FF_TASK_MULTICLASS: return (int)t->classes;
    case FF_TASK_SURVIVAL: return 2;
    default: return 1;
    }
}

void ff_task_set_ed(ff_task_set *s, int K)
{
    static const char *const ed[] = {"admission", "icu", "critical"};
    memset(s, 0, sizeof *s);
    s->n = K < 0 ? 0 : K > FF_TASKS_MAX ? FF_TASKS_MAX : K;
    for (int k = 0; k < s->n; k++) {
        ff_task *t = &s->t[k];
        if (k < 3)
            snprintf(t->name, sizeof t->name, "%s", ed[k]);
        else
            snprintf(t->name, sizeof t->name, "task%d", k + 1);
        t->kind = FF_TASK_BINARY;
        t->scale = 1;
    }
    if (ff_task_set_finish(s) != FF_OK) /* cannot fail for these names */
        s->n = 0;
}

static int task_check(const ff_task_set *s, int k)
{
    const ff_task *t = &s->t[k];
    if (!t->name[0])
        return ff_error(FF_ECONFIG, "tasks[%d]: name is empty", k);
    for (int j = 0; j < k; j++)
        if (strcmp(s->t[j].name, t->name) == 0)
            return ff_error(FF_ECONFIG, "tasks[%d]: name '%s' is used twice", k, t->name);
    if (t->kind < 0 || t->kind >= FF_TASK_KIND_COUNT)
        return ff_error(FF_ECONFIG, "task %s: unknown kind %d", t->name, t->kind);
    if (t->kind == FF_TASK_MULTICLASS && (t->classes < 2 || t->classes > FF_TASK_CLASSES_MAX))
        return ff_error(FF_ECONFIG, "task %s: a multiclass task needs classes in 2..%d",
                        t->name, FF_TASK_CLASSES_MAX);
    if (t->kind != FF_TASK_MULTICLASS && t->classes != 0)
        return ff_error(FF_ECONFIG, "task %s: classes is for multiclass tasks only", t->name);
    if (t->kind == FF_TASK_SURVIVAL && (!t->time[0] || !t->event[0]))
        return ff_error(FF_ECONFIG, "task %s: a survival task needs its time and event columns",
                        t->name);
    if (t->kind == FF_TASK_SURVIVAL && !(t->horizon > 0))
        return ff_error(FF_ECONFIG, "task %s: a survival task needs horizon > 0 (the time of its "
                        "time-dependent AUROC)", t->name);
    if (t->kind != FF_TASK_SURVIVAL && (t->time[0] || t->event[0]))
        return ff_error(FF_ECONFIG, "task %s: time and event are for survival tasks only",
                        t->name);
    if (t->kind == FF_TASK_SURVIVAL && t->label[0])
        return ff_error(FF_ECONFIG, "task %s: a survival task has time and event, not label",
                        t->name);
    if (!(t->scale > 0))
        return ff_error(FF_ECONFIG, "task %s: scale must be > 0", t->name);
    return FF_OK;
}

int ff_task_set_finish(ff_task_set *s)
{
    if (s->n < 1 || s->n > FF_TASKS_MAX)
        return ff_error(FF_ECONFIG, "tasks: %d declared, expected 1 to %d", s->n, FF_TASKS_MAX);
    int col = 0;
    for (int k = 0; k < s->n; k++) {
        int rc = task_check(s, k);
        if (rc != FF_OK)
            return rc;
        ff_task *t = &s->t[k];
        if (t->kind != FF_TASK_SURVIVAL && !t->label[0]) {
            /* label_NAME by hand: snprintf from t->name into t->label, two fields of the one
             * object s, trips gcc's -Wrestrict in the sanitizer build */
            size_t len = strlen(t->name);
            if (len + sizeof "label_" > sizeof t->label)
                return ff_error(FF_ECONFIG, "task %s: name too long for a default label column",
                                t->name);
            memcpy(t->label, "label_", sizeof "label_" - 1);
            memcpy(t->label + sizeof "label_" - 1, t->name, len + 1);
        }
        t->col = col;
        col += ff_task_width(t);
    }
    s->width = col;
    return FF_OK;
}

int ff_task_set_all_binary(const ff_task_set *s)
{
    for (int k = 0; k < s->n; k++)
        if (s->t[k].kind != FF_TASK_BINARY)
            return 0;
    return 1;
}

int ff_task_find(const ff_task_set *s, const char *name)
{
    for (int k = 0; k < s->n; k++)
        if (strcmp(s->t[k].name, name) == 0)
            return k;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Tabular features                                                                          */
/* ---------------------------------------------------------------------------------------- */

const char *ff_feature_kind_name(int kind)
{
    return kind == FF_FEATURE_NUMERIC ? "numeric" : kind == FF_FEATURE_CATEGORICAL ? "categorical" : "?";
}

int ff_feature_width(const ff_feature *f)
{
    return f->kind == FF_FEATURE_CATEGORICAL ? f->ncat + 1 : 2;
}

int ff_feature_find(const ff_feature_set *s, const char *name, size_t n)
{
    for (int i = 0; i < s->n; i++)
        if (strlen(s->f[i].name) == n && memcmp(s->f[i].name, name, n) == 0) return i;
    return -1;
}

int ff_feature_category(const ff_feature *f, const char *v, size_t n)
{
    for (int c = 0; c < f->ncat; c++)
        if (strlen(f->cat[c]) == n && memcmp(f->cat[c], v, n) == 0) return c;
    return -1;
}

static int feature_check(const ff_feature_set *s, int k)
{
    const ff_feature *f = &s->f[k];
    if (!f->name[0]) return ff_error(FF_ECONFIG, "tabular.features[%d]: name is empty", k);
    if (strcmp(f->name, "patient_id") == 0)
        return ff_error(FF_ECONFIG, "tabular feature patient_id: that column is the join key");
    if (ff_feature_find(s, f->name, strlen(f->name)) != k)
        return ff_error(FF_ECONFIG, "tabular feature %s: name is used twice", f->name);
    if (f->kind == FF_FEATURE_NUMERIC && f->ncat != 0)
        return ff_error(FF_ECONFIG, "tabular feature %s: categories are for categorical "
                        "features only", f->name);
    if (f->kind == FF_FEATURE_CATEGORICAL && (f->ncat < 2 || f->ncat > FF_FEATURE_CATEGORIES_MAX))
        return ff_error(FF_ECONFIG, "tabular feature %s: a categorical feature needs 2..%d "
                        "categories (it has %d)", f->name, FF_FEATURE_CATEGORIES_MAX, f->ncat);
    for (int c = 0; c < f->ncat; c++)
        if (!f->cat[c][0] || ff_feature_category(f, f->cat[c], strlen(f->cat[c])) != c)
            return ff_error(FF_ECONFIG, "tabular feature %s: category %d is empty or listed "
                            "twice", f->name, c + 1);
    return FF_OK;
}

int ff_feature_set_finish(ff_feature_set *s)
{
    if (s->n < 0 || s->n > FF_FEATURES_MAX)
        return ff_error(FF_ECONFIG, "tabular: %d features, at most %d", s->n, FF_FEATURES_MAX);
    s->width = 0;
    for (int k = 0; k < s->n; k++) {
        int rc = feature_check(s, k);
        if (rc != FF_OK) return rc;
        s->f[k].col = s->width;
        s->width += ff_feature_width(&s->f[k]);
    }
    return FF_OK;
}
