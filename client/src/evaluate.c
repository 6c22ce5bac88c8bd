/* Evaluation at a site (exact metrics) and for federated evaluation (score histograms). */
#include "ff/client.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t n; /* patients */
    int K;
    float *probs, *labels, *mask;
} preds;

static void preds_free(preds *p)
{
    free(p->probs);
    free(p->labels);
    free(p->mask);
    memset(p, 0, sizeof *p);
}

static int preds_make(ff_model *m, const ff_site *s, ff_split split, int modalities, preds *p)
{
    memset(p, 0, sizeof *p);
    p->n = ff_site_count(s, split);
    p->K = ff_site_shape(s)->K;
    size_t nk = p->n * (size_t)p->K + 1;
    p->probs = calloc(nk, sizeof(float));
    p->labels = calloc(nk, sizeof(float));
    p->mask = calloc(nk, sizeof(float));
    if (!p->probs || !p->labels || !p->mask) {
        preds_free(p);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    int rc = ff_local_predict(m, s, split, modalities, 0.5f, p->probs, p->labels, p->mask);
    if (rc != FF_OK)
        preds_free(p);
    return rc;
}

/* The labelled patients of binary task tk: scores, labels and, when attr is not NULL, the
 * level of each of the site's nattr declared attributes (attr[a * stride + row]). */
static size_t gather(const preds *p, const ff_site *s, ff_split split, const ff_task *tk,
                     double *score, uint8_t *label, int32_t *attr, int nattr, size_t stride)
{
    size_t c = 0;
    for (size_t i = 0; i < p->n; i++) {
        size_t j = i * (size_t)p->K + (size_t)tk->col;
        if (p->mask[j] < 0.5f)
            continue;
        score[c] = p->probs[j];
        label[c] = p->labels[j] > 0.5f;
        for (int a = 0; attr && a < nattr; a++)
            attr[(size_t)a * stride + c] = ff_site_patient_attr(s, split, i, a);
        c++;
    }
    return c;
}

/* Rows of task tk (any kind) with a known label: its output and label columns, as doubles. */
static size_t gather_rows(const preds *p, const ff_task *tk, double *pred, double *lab)
{
    size_t c = 0, w = (size_t)ff_task_width(tk);
    for (size_t i = 0; i < p->n; i++) {
        size_t j = i * (size_t)p->K + (size_t)tk->col;
        if (p->mask[j] < 0.5f)
            continue;
        for (size_t q = 0; q < w; q++) {
            pred[c * w + q] = p->probs[j + q];
            lab[c * w + q] = p->labels[j + q];
        }
        c++;
    }
    return c;
}

typedef struct {
    size_t nsites;
    int K, nattr;            /* K: declared tasks */
    const ff_task_set *ts;
    ff_eval_result *res;   /* [K][nsites + 1]; column 0 = pooled (binary tasks) */
    ff_eval_kind_result *kres; /* [K][nsites + 1] (the other kinds) */
    ff_eval_fairness *fair; /* [K][nattr]: every attribute the sites declare */
    int *fair_ok;
    const ff_eval_op_point *op; /* NULL: every task at eo->threshold */
    double *thr;                /* [K]: each binary task's operating threshold */
    const char **thr_why;       /* [K]: why the rule could not be applied, or NULL */
    const char *chosen_on;
} eval_tables;

static void tables_free(eval_tables *t)
{
    for (size_t i = 0; t->res && i < (size_t)t->K * (t->nsites + 1); i++)
        ff_eval_result_free(&t->res[i]);
    for (size_t i = 0; t->fair && i < (size_t)t->K * (size_t)t->nattr; i++)
        if (t->fair_ok[i])
            ff_eval_fairness_free(&t->fair[i]);
    free(t->res);
    free(t->kres);
    free(t->fair);
    free(t->fair_ok);
    free(t->thr);
    free(t->thr_why);
}

/* Fairness of pooled predictions for attribute a (0 sex, 1 age band, then the extra columns of
 * patients.csv; the first site's levels). Levels < 0 (unknown) are dropped. */
static int fairness(const ff_site *s0, int a, const double *score, const uint8_t *label,
                    int32_t *level, size_t n, const ff_eval_opts *eo, ff_eval_fairness *out)
{
    const char *names[16];
    size_t nl = (size_t)FF_MIN(ff_site_attr_nvalues(s0, a), 16);
    for (size_t v = 0; v < nl; v++)
        names[v] = ff_site_attr_value(s0, a, (int)v);
    double *sc = malloc((n + 1) * sizeof *sc);
    uint8_t *lb = malloc(n + 1);
    int32_t *lv = malloc((n + 1) * sizeof *lv);
    size_t c = 0;
    int rc = sc && lb && lv ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++) {
        if (level[i] < 0 || (size_t)level[i] >= nl)
            continue;
        sc[c] = score[i], lb[c] = label[i], lv[c] = level[i];
        c++;
    }
    if (rc == FF_OK)
        rc = ff_eval_fairness_compute(sc, lb, lv, c, ff_site_attr_name(s0, a), names, nl, eo, out);
    free(sc);
    free(lb);
    free(lv);
    return rc;
}

/* A task of another kind: exact metrics per site and pooled. */
static int eval_kind_task(eval_tables *t, const preds *p, int k)
{
    const ff_task *tk = &t->ts->t[k];
    size_t total = 0, w = (size_t)ff_task_width(tk);
    for (size_t i = 0; i < t->nsites; i++)
        total += p[i].n;
    double *pred = malloc((total + 1) * w * sizeof *pred), *lab = malloc((total + 1) * w * sizeof *lab);
    int rc = pred && lab ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    size_t c = 0;
    ff_eval_kind_result *row = t->kres + (size_t)k * (t->nsites + 1);
    for (size_t i = 0; rc == FF_OK && i < t->nsites; i++) {
        size_t ci = gather_rows(&p[i], tk, pred + c * w, lab + c * w);
        rc = ff_eval_kind_exact(tk, pred + c * w, lab + c * w, ci, &row[i + 1]);
        c += ci;
    }
    if (rc == FF_OK)
        rc = ff_eval_kind_exact(tk, pred, lab, c, &row[0]);
    free(pred);
    free(lab);
    return rc;
}

static int eval_task(eval_tables *t, const preds *p, ff_site *const *sites, ff_split split,
                     int k, const ff_eval_opts *eo_all)
{
    const ff_task *tk = &t->ts->t[k];
    if (tk->kind != FF_TASK_BINARY)
        return eval_kind_task(t, p, k);
    ff_eval_opts task_eo = *eo_all, *eo = &task_eo;
    task_eo.threshold = t->thr[k];
    size_t total = 0;
    for (size_t i = 0; i < t->nsites; i++)
        total += p[i].n;
    double *score = malloc((total + 1) * sizeof *score);
    uint8_t *label = malloc(total + 1);
    int32_t *attr = malloc(((size_t)t->nattr * total + 1) * sizeof *attr);
    int rc = score && label && attr ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    size_t c = 0;
    ff_eval_result *row = t->res + (size_t)k * (t->nsites + 1);
    for (size_t i = 0; rc == FF_OK && i < t->nsites; i++) {
        size_t ci = gather(&p[i], sites[i], split, tk, score + c, label + c, attr + c, t->nattr,
                           total);
        rc = ff_eval_binary(score + c, label + c, ci, eo, &row[i + 1]);
        c += ci;
    }
    if (rc == FF_OK)
        rc = ff_eval_binary(score, label, c, eo, &row[0]);
    for (int a = 0; rc == FF_OK && a < t->nattr; a++) {
        size_t f = (size_t)k * (size_t)t->nattr + (size_t)a;
        rc = fairness(sites[0], a, score, label, attr + (size_t)a * total, c, eo, &t->fair[f]);
        t->fair_ok[f] = rc == FF_OK;
    }
    free(score);
    free(label);
    free(attr);
    return rc;
}

/* tasks[name] = {"kind", "pooled", "sites"} of a task of another kind. */
static int kind_json(const eval_tables *t, int k, const char *const *names, json_t *tasks)
{
    const ff_task *tk = &t->ts->t[k];
    const ff_eval_kind_result *row = t->kres + (size_t)k * (t->nsites + 1);
    json_t *pooled = NULL, *sites = json_object();
    int rc = sites ? ff_eval_kind_to_json(&row[0], &pooled) : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < t->nsites; i++) {
        json_t *j = NULL;
        if ((rc = ff_eval_kind_to_json(&row[i + 1], &j)) == FF_OK)
            json_object_set_new(sites, names[i], j);
    }
    if (rc == FF_OK)
        json_object_set_new(tasks, tk->name,
                            json_pack("{s:s, s:o, s:O}", "kind", ff_task_kind_name(tk->kind),
                                      "pooled", pooled, "sites", sites));
    else
        json_decref(pooled);
    json_decref(sites);
    return rc;
}

/* A task of another kind in the report: one line for the pooled result, one per site. */
static int kind_notes(ff_report *rep, const ff_task *tk, const ff_eval_kind_result *row,
                      const char *const *names, size_t nsites)
{
    int rc = FF_OK;
    for (size_t i = 0; rc == FF_OK && i <= nsites; i++) {
        char sum[600], line[800];
        ff_eval_kind_summary(&row[i], sum, sizeof sum);
        snprintf(line, sizeof line, "Task %s (%s) · %s: %s.", tk->name,
                 ff_task_kind_name(tk->kind), i ? names[i - 1] : "pooled", sum);
        rc = ff_report_add_note(rep, line);
    }
    return rc;
}

static int tables_json(const eval_tables *t, const char *const *names, ff_split split,
                       const ff_eval_opts *eo, json_t **out)
{
    json_t *root = json_pack("{s:s, s:{}, s:{}}", "split", ff_split_name(split), "tasks", "auroc");
    json_t *tasks = json_object_get(root, "tasks"), *au = json_object_get(root, "auroc");
    int rc = FF_OK;
    for (int k = 0; rc == FF_OK && k < t->K; k++) {
        const ff_task *tk = &t->ts->t[k];
        if (tk->kind != FF_TASK_BINARY) {
            rc = kind_json(t, k, names, tasks);
            continue;
        }
        const ff_eval_result *row = t->res + (size_t)k * (t->nsites + 1);
        json_t *pooled = NULL, *sites = json_object();
        rc = ff_eval_to_json(&row[0], &t->fair[(size_t)k * (size_t)t->nattr], (size_t)t->nattr,
                             eo, &pooled);
        for (size_t i = 0; rc == FF_OK && i < t->nsites; i++) {
            json_t *j = NULL;
            rc = ff_eval_to_json(&row[i + 1], NULL, 0, eo, &j);
            if (rc == FF_OK)
                json_object_set_new(sites, names[i], j);
        }
        json_t *tj = json_pack("{s:s, s:o?, s:o}", "kind", "binary", "pooled", pooled, "sites",
                               sites);
        if (tj && t->op)
            json_object_set_new(tj, "operating_point",
                                ff_eval_op_json(t->op, t->thr[k], t->thr_why[k], t->chosen_on));
        json_object_set_new(tasks, tk->name, tj);
        json_object_set_new(au, tk->name,
                            row[0].auroc.defined ? json_real(row[0].auroc.value) : json_null());
    }
    if (rc != FF_OK)
        json_decref(root);
    else
        *out = root;
    return rc;
}

static int tables_html(const eval_tables *t, const char *const *names, const char *path)
{
    ff_report *rep;
    int rc = ff_report_new(&rep, "fedfuse evaluation");
    for (int k = 0; rc == FF_OK && k < t->K; k++) {
        const ff_task *tk = &t->ts->t[k];
        if (tk->kind != FF_TASK_BINARY) {
            rc = kind_notes(rep, tk, t->kres + (size_t)k * (t->nsites + 1), names, t->nsites);
            continue;
        }
        const ff_eval_result *row = t->res + (size_t)k * (t->nsites + 1);
        rc = ff_report_add_task(rep, tk->name);
        char note[600];
        if (rc == FF_OK && t->op) {
            ff_eval_op_note(t->op, t->thr[k], t->thr_why[k], t->chosen_on,
                            "fedfuse eval --operating-point", note, sizeof note);
            rc = ff_report_add_task_note(rep, note);
        }
        if (rc == FF_OK)
            rc = ff_report_add_column(rep, "pooled", &row[0],
                                      &t->fair[(size_t)k * (size_t)t->nattr], (size_t)t->nattr);
        for (size_t i = 0; rc == FF_OK && i < t->nsites; i++)
            rc = ff_report_add_column(rep, names[i], &row[i + 1], NULL, 0);
    }
    if (rc == FF_OK)
        rc = ff_report_write(rep, path);
    ff_report_free(rep);
    return rc;
}

/* Task k's threshold by the declared rule on the validation split pooled over the sites: the
 * histogram the federated report picks it on (ff_client_eval_hist's bins, without subgroups),
 * through the same ff_eval_hist_operating_point. */
static int task_threshold(eval_tables *t, const preds *val, ff_site *const *sites, int k)
{
    const ff_task *tk = &t->ts->t[k];
    size_t total = 0;
    for (size_t i = 0; i < t->nsites; i++)
        total += val[i].n;
    double *score = malloc((total + 1) * sizeof *score);
    uint8_t *label = malloc(total + 1);
    ff_eval_hist *h = NULL;
    int rc = score && label ? ff_eval_hist_new(&h, tk->name, FF_EVAL_HIST_BINS)
                            : ff_error(FF_ENOMEM, "out of memory");
    size_t c = 0;
    for (size_t i = 0; rc == FF_OK && i < t->nsites; i++)
        c += gather(&val[i], sites[i], FF_SPLIT_VAL, tk, score + c, label + c, NULL, 0, 0);
    if (rc == FF_OK)
        rc = ff_eval_hist_add(h, score, label, c, NULL);
    if (rc == FF_OK && c == 0 && t->op->rule != FF_OP_THRESHOLD) {
        t->thr[k] = 0.5;
        t->thr_why[k] = "no validation split (no labelled patient in it at any site); the "
                        "fixed threshold 0.5 is used";
    } else if (rc == FF_OK) {
        rc = ff_eval_hist_operating_point(h, t->op->rule, t->op->target, &t->thr[k],
                                          &t->thr_why[k]);
    }
    ff_eval_hist_free(h);
    free(score);
    free(label);
    return rc;
}

/* Every binary task's threshold: the declared rule on the validation split, or eo's. */
static int thresholds(eval_tables *t, ff_model *m, ff_site *const *sites, ff_split split,
                      int modalities, const preds *p, const ff_eval_opts *eo)
{
    for (int k = 0; k < t->K; k++)
        t->thr[k] = eo->threshold;
    if (!t->op)
        return FF_OK;
    t->chosen_on = split == FF_SPLIT_VAL
                       ? "the sites' pooled validation split (the split evaluated here, so "
                         "sensitivity and PPV at it are optimistic)"
                       : "the sites' pooled validation split";
    preds *val = split == FF_SPLIT_VAL ? NULL : calloc(t->nsites, sizeof *val);
    int rc = split == FF_SPLIT_VAL || val ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; val && rc == FF_OK && i < t->nsites; i++)
        rc = preds_make(m, sites[i], FF_SPLIT_VAL, modalities, &val[i]);
    for (int k = 0; rc == FF_OK && k < t->K; k++)
        if (t->ts->t[k].kind == FF_TASK_BINARY)
            rc = task_threshold(t, val ? val : p, sites, k);
    for (size_t i = 0; val && i < t->nsites; i++)
        preds_free(&val[i]);
    free(val);
    return rc;
}

int ff_client_evaluate(ff_model *m, ff_site *const *sites, const char *const *names, size_t n,
                       ff_split split, int modalities, const ff_eval_opts *eo,
                       const ff_eval_op_point *op, const char *html_path, json_t **out)
{
    *out = NULL;
    if (n == 0)
        return ff_error(FF_EINVAL, "evaluate: no sites");
    const ff_task_set *ts = &ff_site_shape(sites[0])->tasks;
    eval_tables t = {.nsites = n, .K = ts->n, .nattr = ff_site_attr_count(sites[0]), .ts = ts,
                     .op = op};
    preds *p = calloc(n, sizeof *p);
    t.res = calloc((size_t)t.K * (n + 1), sizeof *t.res);
    t.kres = calloc((size_t)t.K * (n + 1), sizeof *t.kres);
    t.fair = calloc((size_t)t.K * (size_t)t.nattr + 1, sizeof *t.fair);
    t.fair_ok = calloc((size_t)t.K * (size_t)t.nattr + 1, sizeof *t.fair_ok);
    t.thr = calloc((size_t)t.K + 1, sizeof *t.thr);
    t.thr_why = calloc((size_t)t.K + 1, sizeof *t.thr_why);
    int rc = p && t.res && t.kres && t.fair && t.fair_ok && t.thr && t.thr_why
                 ? FF_OK
                 : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++)
        rc = preds_make(m, sites[i], split, modalities, &p[i]);
    if (rc == FF_OK)
        rc = thresholds(&t, m, sites, split, modalities, p, eo);
    for (int k = 0; rc == FF_OK && k < t.K; k++)
        rc = eval_task(&t, p, sites, split, k, eo);
    if (rc == FF_OK)
        rc = tables_json(&t, names, split, eo, out);
    if (rc == FF_OK && html_path)
        rc = tables_html(&t, names, html_path);
    for (size_t i = 0; p && i < n; i++)
        preds_free(&p[i]);
    free(p);
    tables_free(&t);
    return rc;
}

/* Creates the slices of attribute a's levels present among the c rows, in the order the site
 * declares the levels, so every report lists them in that order. */
static int level_slices(ff_eval_hist *h, const ff_site *s, int a, const int32_t *lv, size_t c)
{
    int nv = ff_site_attr_nvalues(s, a), rc = FF_OK;
    for (int v = 0; rc == FF_OK && v < nv; v++) {
        size_t i = 0, idx;
        while (i < c && lv[i] != v)
            i++;
        if (i < c)
            rc = ff_eval_hist_slice_find(h, ff_site_attr_name(s, a), ff_site_attr_value(s, a, v),
                                         &idx);
    }
    return rc;
}

int ff_client_eval_hist(ff_model *m, const ff_site *s, ff_split split, int nbins,
                        int64_t min_cell, int outcomes, size_t *nwithheld, json_t **out)
{
    *out = NULL;
    if (nwithheld)
        *nwithheld = 0;
    preds p;
    int rc = preds_make(m, s, split, FF_MOD_ALL, &p);
    if (rc != FF_OK)
        return rc;
    int nattr = ff_site_attr_count(s);
    double *score = malloc((p.n + 1) * sizeof *score);
    uint8_t *label = malloc(p.n + 1);
    int32_t *attr = malloc(((size_t)nattr * p.n + 1) * sizeof *attr);
    size_t *slice = malloc((p.n + 1) * sizeof *slice);
    json_t *arr = json_array();
    rc = score && label && attr && slice ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    const ff_task_set *ts = &ff_site_shape(s)->tasks;
    for (int k = 0; rc == FF_OK && k < ts->n; k++) {
        const ff_task *tk = &ts->t[k];
        if (tk->kind != FF_TASK_BINARY)
            continue;
        size_t c = gather(&p, s, split, tk, score, label, attr, nattr, p.n);
        ff_eval_hist *h = NULL;
        rc = ff_eval_hist_new(&h, tk->name, nbins);
        if (rc == FF_OK)
            rc = ff_eval_hist_add(h, score, label, c, NULL);
        for (int a = 0; rc == FF_OK && a < nattr; a++) { /* every declared attribute */
            const int32_t *lv = attr + (size_t)a * p.n;
            rc = level_slices(h, s, a, lv, c); /* the attribute's own order (<40, 40-64, 65+) */
            for (size_t i = 0; rc == FF_OK && i < c; i++)
                rc = ff_eval_hist_slice_find(h, ff_site_attr_name(s, a),
                                             lv[i] >= 0 ? ff_site_attr_value(s, a, lv[i]) : "unknown",
                                             &slice[i]);
            if (rc == FF_OK)
                rc = ff_eval_hist_add(h, score, label, c, slice);
        }
        size_t nw = 0; /* before anything of it is serialised: withheld data never leaves */
        if (rc == FF_OK)
            rc = ff_eval_hist_suppress(h, min_cell, outcomes, &nw);
        if (nwithheld)
            *nwithheld += nw;
        json_t *j = NULL;
        if (rc == FF_OK && (rc = ff_eval_hist_to_json(h, &j)) == FF_OK)
            json_array_append_new(arr, j);
        ff_eval_hist_free(h);
    }
    free(score);
    free(label);
    free(attr);
    free(slice);
    preds_free(&p);
    if (rc == FF_OK)
        *out = arr;
    else
        json_decref(arr);
    return rc;
}

int ff_client_eval_stats(ff_model *m, const ff_site *s, ff_split split, int nbins, json_t **out)
{
    *out = NULL;
    const ff_task_set *ts = &ff_site_shape(s)->tasks;
    json_t *arr = json_array();
    if (!arr)
        return ff_error(FF_ENOMEM, "out of memory");
    if (ff_task_set_all_binary(ts)) {
        *out = arr;
        return FF_OK;
    }
    preds p;
    int rc = preds_make(m, s, split, FF_MOD_ALL, &p);
    if (rc != FF_OK) {
        json_decref(arr);
        return rc;
    }
    size_t w = (size_t)p.K + 1;
    double *pred = malloc((p.n + 1) * w * sizeof *pred), *lab = malloc((p.n + 1) * w * sizeof *lab);
    rc = pred && lab ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (int k = 0; rc == FF_OK && k < ts->n; k++) {
        const ff_task *tk = &ts->t[k];
        if (tk->kind == FF_TASK_BINARY)
            continue;
        size_t c = gather_rows(&p, tk, pred, lab);
        ff_eval_kind_stats *st = NULL;
        json_t *j = NULL;
        rc = ff_eval_kind_stats_new(&st, tk, nbins);
        if (rc == FF_OK)
            rc = ff_eval_kind_stats_add(st, pred, lab, c);
        if (rc == FF_OK && (rc = ff_eval_kind_stats_to_json(st, &j)) == FF_OK)
            json_array_append_new(arr, j);
        ff_eval_kind_stats_free(st);
    }
    free(pred);
    free(lab);
    preds_free(&p);
    if (rc == FF_OK)
        *out = arr;
    else
        json_decref(arr);
    return rc;
}
