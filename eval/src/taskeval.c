/* Metrics of declared tasks that are not binary (multiclass, regression, survival): exact from
 * predictions, and from mergeable per-site statistics for federated evaluation. Definitions
 * in docs/evaluation.md ("Task kinds"); contracts in ff/eval.h. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NOLAB "no labelled patients"

/* Risk scores (any real) to [0, 1] for the binary machinery: strictly increasing, so every
 * rank-based metric (AUROC) is unchanged. */
static double unit_score(double s)
{
    return 0.5 + atan(s) / M_PI;
}

static int check_rows(const ff_task *t, const double *pred, const double *lab, size_t n)
{
    int w = ff_task_width(t);
    for (size_t i = 0; i < n * (size_t)w; i++)
        if (!isfinite(pred[i]) || !isfinite(lab[i]))
            return ff_error(FF_EINVAL, "task %s: row %zu has a non-finite prediction or label",
                            t->name, i / (size_t)w);
    if (t->kind == FF_TASK_SURVIVAL)
        for (size_t i = 0; i < n; i++)
            if (lab[2 * i + 1] != 0 && lab[2 * i + 1] != 1)
                return ff_error(FF_EINVAL, "task %s: row %zu: event is not 0 or 1", t->name, i);
    return FF_OK;
}

/* Class of a one-hot row (the first maximum). */
static int32_t class_of(const double *row, int C)
{
    int best = 0;
    for (int j = 1; j < C; j++)
        best = row[j] > row[best] ? j : best;
    return best;
}

/* The time-dependent AUROC's cases (1), controls (0) and left-out rows (2). */
static uint8_t td_role(double time, double event, double h)
{
    if (time <= h)
        return event != 0 ? 1 : 2;
    return 0;
}

static void result_init(ff_eval_kind_result *r, const ff_task *t)
{
    memset(r, 0, sizeof *r);
    r->kind = t->kind;
    r->classes = t->kind == FF_TASK_MULTICLASS ? (int)t->classes : 0;
    r->horizon = t->horizon;
}

static int exact_multiclass(const ff_task *t, const double *pred, const double *lab, size_t n,
                            ff_eval_kind_result *r)
{
    int C = (int)t->classes;
    int32_t *y = malloc((n + 1) * sizeof *y);
    if (!y)
        return ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        y[i] = class_of(lab + i * (size_t)C, C);
        r->class_n[y[i]] += 1;
    }
    int rc = ff_eval_multiclass(pred, y, n, C, &r->accuracy, &r->macro_auroc, r->class_auroc);
    free(y);
    return rc;
}

/* Cases' and controls' unit scores at the horizon, AUROC through ff_eval_binary. */
static int exact_td_auroc(const ff_task *t, const double *pred, const double *lab, size_t n,
                          ff_metric *m)
{
    double *s = malloc((n + 1) * sizeof *s);
    uint8_t *y = malloc(n + 1);
    size_t c = 0;
    int rc = s && y ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++) {
        uint8_t role = td_role(lab[2 * i], lab[2 * i + 1], t->horizon);
        if (role == 2)
            continue;
        s[c] = unit_score(pred[2 * i]);
        y[c++] = role;
    }
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    ff_eval_result br;
    if (rc == FF_OK && (rc = ff_eval_binary(s, y, c, &o, &br)) == FF_OK) {
        *m = br.auroc;
        m->has_ci = 0;
        if (!m->defined)
            m->why = "no case (event by the horizon) or no control (alive past it)";
        ff_eval_result_free(&br);
    }
    free(s);
    free(y);
    return rc;
}

static int exact_survival(const ff_task *t, const double *pred, const double *lab, size_t n,
                          ff_eval_kind_result *r)
{
    double *risk = malloc((n + 1) * sizeof *risk), *time = malloc((n + 1) * sizeof *time);
    uint8_t *ev = malloc(n + 1);
    int rc = risk && time && ev ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++) {
        risk[i] = pred[2 * i];
        time[i] = lab[2 * i];
        ev[i] = lab[2 * i + 1] != 0;
        r->events += ev[i];
    }
    double num = 0, den = 0;
    if (rc == FF_OK)
        rc = ff_eval_cindex_counts(risk, time, ev, n, &num, &den);
    if (rc == FF_OK && den > 0)
        ev_set(&r->cindex, num / den);
    else if (rc == FF_OK)
        ev_undef(&r->cindex, n ? "no comparable pair (no event before another patient's time)"
                               : NOLAB);
    free(risk);
    free(time);
    free(ev);
    return rc == FF_OK ? exact_td_auroc(t, pred, lab, n, &r->td_auroc) : rc;
}

int ff_eval_kind_exact(const ff_task *t, const double *pred, const double *lab, size_t n,
                       ff_eval_kind_result *r)
{
    result_init(r, t);
    r->n = (double)n;
    int rc = check_rows(t, pred, lab, n);
    if (rc != FF_OK)
        return rc;
    switch (t->kind) {
    case FF_TASK_MULTICLASS: return exact_multiclass(t, pred, lab, n, r);
    case FF_TASK_REGRESSION: return ff_eval_regression(pred, lab, n, &r->mae, &r->rmse, &r->r2);
    case FF_TASK_SURVIVAL: return exact_survival(t, pred, lab, n, r);
    default: return ff_error(FF_EINVAL, "task %s: binary tasks use ff_eval_binary", t->name);
    }
}

const ff_metric *ff_eval_kind_headline(const ff_eval_kind_result *r, const char **name)
{
    const char *nm = r->kind == FF_TASK_MULTICLASS ? "macro_auroc"
                     : r->kind == FF_TASK_REGRESSION ? "r2" : "cindex";
    if (name)
        *name = nm;
    return r->kind == FF_TASK_MULTICLASS ? &r->macro_auroc
           : r->kind == FF_TASK_REGRESSION ? &r->r2 : &r->cindex;
}

static void fmt_metric(char *buf, size_t n, const char *label, const ff_metric *m)
{
    if (m->defined)
        snprintf(buf, n, "%s %.3f", label, m->value);
    else
        snprintf(buf, n, "%s undefined (%s)", label, m->why ? m->why : "undefined");
}

void ff_eval_kind_summary(const ff_eval_kind_result *r, char *buf, size_t n)
{
    const char *lab[3];
    const ff_metric *m[3];
    int k = 0;
    if (r->kind == FF_TASK_MULTICLASS) {
        lab[k] = "accuracy", m[k++] = &r->accuracy;
        lab[k] = "macro AUROC", m[k++] = &r->macro_auroc;
    } else if (r->kind == FF_TASK_REGRESSION) {
        lab[k] = "MAE", m[k++] = &r->mae;
        lab[k] = "RMSE", m[k++] = &r->rmse;
        lab[k] = "R²", m[k++] = &r->r2;
    } else {
        lab[k] = "C-index", m[k++] = &r->cindex;
        lab[k] = "time-dependent AUROC", m[k++] = &r->td_auroc;
    }
    size_t used = (size_t)snprintf(buf, n, "n %.0f", r->n);
    for (int i = 0; i < k && used < n; i++) {
        char one[256];
        fmt_metric(one, sizeof one, lab[i], m[i]);
        used += (size_t)snprintf(buf + used, n - used, ", %s", one);
    }
}

int ff_eval_kind_to_json(const ff_eval_kind_result *r, json_t **out)
{
    json_t *o = json_pack("{s:s, s:f}", "kind", ff_task_kind_name(r->kind), "n", r->n);
    json_t *u = json_object();
    int bad = !o || !u;
    if (!bad && r->kind == FF_TASK_MULTICLASS) {
        json_t *pc = json_array();
        bad |= ev_put_metric(o, u, NULL, "accuracy", &r->accuracy) != 0;
        bad |= ev_put_metric(o, u, NULL, "macro_auroc", &r->macro_auroc) != 0;
        bad |= json_object_set_new(o, "classes", json_integer(r->classes)) != 0;
        for (int c = 0; pc && c < r->classes; c++) {
            json_t *e = json_pack("{s:i, s:f}", "class", c, "n", r->class_n[c]), *eu = json_object();
            bad |= !e || !eu || ev_put_metric(e, eu, NULL, "auroc", &r->class_auroc[c]) != 0;
            if (e && json_object_size(eu) > 0)
                json_object_set(e, "undefined", eu);
            json_decref(eu);
            json_array_append_new(pc, e);
        }
        bad |= !pc || json_object_set_new(o, "per_class", pc) != 0;
    } else if (!bad && r->kind == FF_TASK_REGRESSION) {
        bad |= ev_put_metric(o, u, NULL, "mae", &r->mae) != 0;
        bad |= ev_put_metric(o, u, NULL, "rmse", &r->rmse) != 0;
        bad |= ev_put_metric(o, u, NULL, "r2", &r->r2) != 0;
    } else if (!bad) {
        bad |= json_object_set_new(o, "events", json_real(r->events)) != 0;
        bad |= json_object_set_new(o, "horizon", json_real(r->horizon)) != 0;
        bad |= ev_put_metric(o, u, NULL, "cindex", &r->cindex) != 0;
        bad |= ev_put_metric(o, u, NULL, "td_auroc", &r->td_auroc) != 0;
    }
    if (!bad)
        bad |= json_object_set(o, "undefined", u) != 0;
    json_decref(u);
    if (bad) {
        json_decref(o);
        return ff_error(FF_ENOMEM, "metrics JSON: out of memory");
    }
    *out = o;
    return FF_OK;
}

/* ---- mergeable statistics ---------------------------------------------------------------- */

int ff_eval_kind_stats_new(ff_eval_kind_stats **out, const ff_task *t, int nbins)
{
    *out = NULL;
    if (t->kind == FF_TASK_BINARY || t->kind < 0 || t->kind >= FF_TASK_KIND_COUNT)
        return ff_error(FF_EINVAL, "task %s: statistics are for multiclass, regression and "
                        "survival tasks", t->name);
    if (t->kind == FF_TASK_MULTICLASS && (t->classes < 2 || t->classes > FF_TASK_CLASSES_MAX))
        return ff_error(FF_EINVAL, "task %s: classes %lld outside 2..%d", t->name,
                        (long long)t->classes, FF_TASK_CLASSES_MAX);
    ff_eval_kind_stats *s = calloc(1, sizeof *s);
    if (!s)
        return ff_error(FF_ENOMEM, "out of memory");
    ff_strlcpy(s->task, t->name, sizeof s->task);
    s->kind = t->kind;
    s->classes = t->kind == FF_TASK_MULTICLASS ? (int)t->classes : 0;
    s->horizon = t->horizon;
    s->nbins = nbins;
    s->nhist = t->kind == FF_TASK_MULTICLASS ? s->classes : t->kind == FF_TASK_SURVIVAL;
    int rc = FF_OK;
    for (int c = 0; rc == FF_OK && c < s->nhist; c++)
        rc = ff_eval_hist_new(&s->hist[c], t->name, nbins);
    if (rc != FF_OK) {
        ff_eval_kind_stats_free(s);
        return rc;
    }
    *out = s;
    return FF_OK;
}

void ff_eval_kind_stats_free(ff_eval_kind_stats *s)
{
    if (!s)
        return;
    for (int c = 0; c < s->nhist; c++)
        ff_eval_hist_free(s->hist[c]);
    free(s);
}

/* The task a statistic was made for (enough of it for check_rows and td_role). */
static ff_task task_of(const ff_eval_kind_stats *s)
{
    ff_task t;
    memset(&t, 0, sizeof t);
    ff_strlcpy(t.name, s->task, sizeof t.name);
    t.kind = s->kind;
    t.classes = s->classes;
    t.horizon = s->horizon;
    return t;
}

static int add_multiclass(ff_eval_kind_stats *s, const double *pred, const double *lab, size_t n)
{
    int C = s->classes, rc = FF_OK;
    double *sc = malloc((n + 1) * sizeof *sc);
    uint8_t *y = malloc(n + 1);
    if (!sc || !y)
        rc = ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++) {
        int32_t c = class_of(lab + i * (size_t)C, C);
        s->class_n[c] += 1;
        s->correct += class_of(pred + i * (size_t)C, C) == c;
    }
    for (int c = 0; rc == FF_OK && c < C; c++) {
        for (size_t i = 0; i < n; i++) {
            double p = pred[i * (size_t)C + (size_t)c];
            sc[i] = p >= 0 && p <= 1 ? p : unit_score(p);
            y[i] = class_of(lab + i * (size_t)C, C) == c;
        }
        rc = ff_eval_hist_add(s->hist[c], sc, y, n, NULL);
    }
    free(sc);
    free(y);
    return rc;
}

static int add_survival(ff_eval_kind_stats *s, const double *pred, const double *lab, size_t n)
{
    double *risk = malloc((n + 1) * sizeof *risk), *time = malloc((n + 1) * sizeof *time);
    double *sc = malloc((n + 1) * sizeof *sc);
    uint8_t *ev = malloc(n + 1), *y = malloc(n + 1);
    size_t c = 0;
    int rc = risk && time && sc && ev && y ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++) {
        risk[i] = pred[2 * i];
        time[i] = lab[2 * i];
        ev[i] = lab[2 * i + 1] != 0;
        s->events += ev[i];
        uint8_t role = td_role(time[i], ev[i], s->horizon);
        if (role != 2) {
            sc[c] = unit_score(risk[i]);
            y[c++] = role;
        }
    }
    double num = 0, den = 0;
    if (rc == FF_OK && (rc = ff_eval_cindex_counts(risk, time, ev, n, &num, &den)) == FF_OK) {
        s->concordant += num;
        s->comparable += den;
        rc = ff_eval_hist_add(s->hist[0], sc, y, c, NULL);
    }
    free(risk);
    free(time);
    free(sc);
    free(ev);
    free(y);
    return rc;
}

int ff_eval_kind_stats_add(ff_eval_kind_stats *s, const double *pred, const double *lab, size_t n)
{
    ff_task t = task_of(s);
    int rc = check_rows(&t, pred, lab, n);
    if (rc != FF_OK)
        return rc;
    s->n += (double)n;
    if (s->kind == FF_TASK_MULTICLASS)
        return add_multiclass(s, pred, lab, n);
    if (s->kind == FF_TASK_SURVIVAL)
        return add_survival(s, pred, lab, n);
    for (size_t i = 0; i < n; i++) {
        double d = pred[i] - lab[i];
        s->sum_abs += fabs(d);
        s->sum_sq += d * d;
        s->sum_y += lab[i];
        s->sum_y2 += lab[i] * lab[i];
    }
    return FF_OK;
}

int ff_eval_kind_stats_merge(ff_eval_kind_stats *dst, const ff_eval_kind_stats *src)
{
    if (strcmp(dst->task, src->task) != 0 || dst->kind != src->kind ||
        dst->classes != src->classes || dst->horizon != src->horizon ||
        dst->nbins != src->nbins || dst->nhist != src->nhist)
        return ff_error(FF_EINVAL, "task %s: statistics of another task, kind or setting",
                        src->task);
    for (int c = 0; c < src->nhist; c++) {
        int rc = ff_eval_hist_merge(dst->hist[c], src->hist[c]);
        if (rc != FF_OK)
            return rc;
    }
    dst->n += src->n;
    dst->correct += src->correct;
    for (int c = 0; c < src->classes; c++)
        dst->class_n[c] += src->class_n[c];
    dst->sum_abs += src->sum_abs;
    dst->sum_sq += src->sum_sq;
    dst->sum_y += src->sum_y;
    dst->sum_y2 += src->sum_y2;
    dst->events += src->events;
    dst->concordant += src->concordant;
    dst->comparable += src->comparable;
    return FF_OK;
}

/* AUROC of slice 0 of a histogram. */
static int hist_auroc(const ff_eval_hist *h, ff_metric *m)
{
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    ff_eval_result r;
    int rc = ff_eval_hist_metrics(h, 0, &o, &r, NULL);
    if (rc == FF_OK) {
        *m = r.auroc;
        m->has_ci = 0;
        ff_eval_result_free(&r);
    }
    return rc;
}

int ff_eval_kind_stats_metrics(const ff_eval_kind_stats *s, ff_eval_kind_result *r)
{
    ff_task t = task_of(s);
    result_init(r, &t);
    r->n = s->n;
    int rc = FF_OK;
    if (s->kind == FF_TASK_MULTICLASS) {
        double sum = 0;
        const char *why = NULL;
        for (int c = 0; rc == FF_OK && c < s->classes; c++) {
            r->class_n[c] = s->class_n[c];
            rc = hist_auroc(s->hist[c], &r->class_auroc[c]);
            if (r->class_auroc[c].defined)
                sum += r->class_auroc[c].value;
            else
                why = r->class_auroc[c].why;
        }
        if (s->n > 0)
            ev_set(&r->accuracy, s->correct / s->n);
        else
            ev_undef(&r->accuracy, NOLAB);
        if (why)
            ev_undef(&r->macro_auroc, why);
        else
            ev_set(&r->macro_auroc, sum / s->classes);
    } else if (s->kind == FF_TASK_REGRESSION) {
        double ss = s->n > 0 ? s->sum_y2 - s->sum_y * s->sum_y / s->n : 0;
        if (s->n > 0) {
            ev_set(&r->mae, s->sum_abs / s->n);
            ev_set(&r->rmse, sqrt(s->sum_sq / s->n));
        } else {
            ev_undef(&r->mae, NOLAB);
            ev_undef(&r->rmse, NOLAB);
        }
        /* a variance below rounding of the sums is a constant target */
        if (s->n > 0 && ss > 1e-12 * (s->sum_y2 + 1e-300))
            ev_set(&r->r2, 1.0 - s->sum_sq / ss);
        else
            ev_undef(&r->r2, s->n > 0 ? "the target is constant (R² needs its variance)" : NOLAB);
    } else {
        r->events = s->events;
        if (s->comparable > 0)
            ev_set(&r->cindex, s->concordant / s->comparable);
        else
            ev_undef(&r->cindex, s->n > 0 ? "no comparable pair (no event before another "
                                            "patient's time)" : NOLAB);
        rc = hist_auroc(s->hist[0], &r->td_auroc);
        if (rc == FF_OK && !r->td_auroc.defined)
            r->td_auroc.why = "no case (event by the horizon) or no control (alive past it)";
    }
    return rc;
}

int ff_eval_kind_stats_to_json(const ff_eval_kind_stats *s, json_t **out)
{
    json_t *cn = json_array(), *hs = json_array();
    for (int c = 0; cn && c < s->classes; c++)
        json_array_append_new(cn, json_real(s->class_n[c]));
    int rc = cn && hs ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (int c = 0; rc == FF_OK && c < s->nhist; c++) {
        json_t *h = NULL;
        if ((rc = ff_eval_hist_to_json(s->hist[c], &h)) == FF_OK)
            json_array_append_new(hs, h);
    }
    json_t *o = rc == FF_OK ? json_pack("{s:s, s:s, s:i, s:f, s:i, s:f, s:f, s:O, s:f, s:f, s:f, "
                                        "s:f, s:f, s:f, s:f, s:O}",
                                        "task", s->task, "kind", ff_task_kind_name(s->kind),
                                        "classes", s->classes, "horizon", s->horizon, "nbins",
                                        s->nbins, "n", s->n, "correct", s->correct, "class_n", cn,
                                        "sum_abs", s->sum_abs, "sum_sq", s->sum_sq, "sum_y",
                                        s->sum_y, "sum_y2", s->sum_y2, "events", s->events,
                                        "concordant", s->concordant, "comparable", s->comparable,
                                        "hists", hs)
                            : NULL;
    json_decref(cn);
    json_decref(hs);
    if (rc == FF_OK && !o)
        rc = ff_error(FF_ENOMEM, "out of memory");
    *out = rc == FF_OK ? o : NULL;
    return rc;
}

/* A finite number >= 0 under key (FF_EFORMAT naming it otherwise). */
static int get_count(const json_t *j, const char *key, double *v)
{
    json_t *x = json_object_get(j, key);
    if (!json_is_number(x) || !isfinite(json_number_value(x)) || json_number_value(x) < 0)
        return ff_error(FF_EFORMAT, "task statistics: '%s' is not a number >= 0", key);
    *v = json_number_value(x);
    return FF_OK;
}

int ff_eval_kind_stats_from_json(const json_t *j, ff_eval_kind_stats **out)
{
    *out = NULL;
    const char *task = json_string_value(json_object_get(j, "task"));
    const char *kind = json_string_value(json_object_get(j, "kind"));
    json_t *cls = json_object_get(j, "classes"), *hz = json_object_get(j, "horizon");
    json_t *nb = json_object_get(j, "nbins"), *cn = json_object_get(j, "class_n");
    json_t *hs = json_object_get(j, "hists");
    if (!task || strlen(task) >= 64 || !kind || !json_is_integer(cls) || !json_is_number(hz) ||
        !json_is_integer(nb) || !json_is_array(cn) || !json_is_array(hs))
        return ff_error(FF_EFORMAT, "task statistics: task, kind, classes, horizon, nbins, "
                        "class_n and hists are required");
    ff_task t;
    memset(&t, 0, sizeof t);
    ff_strlcpy(t.name, task, sizeof t.name);
    t.kind = -1;
    for (int k = 0; k < FF_TASK_KIND_COUNT; k++)
        if (strcmp(kind, ff_task_kind_name(k)) == 0)
            t.kind = k;
    t.classes = (int64_t)json_integer_value(cls);
    t.horizon = json_number_value(hz);
    ff_eval_kind_stats *s = NULL;
    int rc = ff_eval_kind_stats_new(&s, &t, (int)json_integer_value(nb));
    if (rc != FF_OK)
        return ff_error_prefix(rc, "task statistics: ");
    if (json_array_size(cn) != (size_t)s->classes || json_array_size(hs) != (size_t)s->nhist)
        rc = ff_error(FF_EFORMAT, "task statistics of %s: class_n or hists has the wrong length",
                      task);
    static const char *const keys[] = {"n", "correct", "sum_abs", "sum_sq", "events",
                                       "concordant", "comparable"};
    double *dst[] = {&s->n, &s->correct, &s->sum_abs, &s->sum_sq, &s->events, &s->concordant,
                     &s->comparable};
    for (size_t k = 0; rc == FF_OK && k < sizeof keys / sizeof *keys; k++)
        rc = get_count(j, keys[k], dst[k]);
    json_t *sy = json_object_get(j, "sum_y"), *sy2 = json_object_get(j, "sum_y2");
    if (rc == FF_OK && (!json_is_number(sy) || !isfinite(json_number_value(sy))))
        rc = ff_error(FF_EFORMAT, "task statistics: 'sum_y' is not a finite number");
    if (rc == FF_OK && (rc = get_count(j, "sum_y2", &s->sum_y2)) == FF_OK)
        s->sum_y = json_number_value(sy);
    (void)sy2;
    for (int c = 0; rc == FF_OK && c < s->classes; c++) {
        json_t *v = json_array_get(cn, (size_t)c);
        if (!json_is_number(v) || !(json_number_value(v) >= 0))
            rc = ff_error(FF_EFORMAT, "task statistics: class_n[%d] is not a count", c);
        else
            s->class_n[c] = json_number_value(v);
    }
    for (int c = 0; rc == FF_OK && c < s->nhist; c++) {
        ff_eval_hist *h = NULL;
        if ((rc = ff_eval_hist_from_json(json_array_get(hs, (size_t)c), &h)) != FF_OK)
            break;
        ff_eval_hist_free(s->hist[c]);
        s->hist[c] = h;
        if (strcmp(h->task, task) != 0 || h->nbins != s->nbins)
            rc = ff_error(FF_EFORMAT, "task statistics of %s: a histogram of another task or "
                          "size", task);
    }
    if (rc != FF_OK) {
        ff_eval_kind_stats_free(s);
        return rc;
    }
    *out = s;
    return FF_OK;
}
