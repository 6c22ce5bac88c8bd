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

/* Rows of task k with a known label, appended to score/label (and attribute levels). */
/* The labelled patients of task k: scores, labels and, when attr is not NULL, the level of
 * each of the site's nattr declared attributes (attr[a * stride + row]). */
static size_t gather(const preds *p, const ff_site *s, ff_split split, int k, double *score,
                     uint8_t *label, int32_t *attr, int nattr, size_t stride)
{
    size_t c = 0;
    for (size_t i = 0; i < p->n; i++) {
        size_t j = i * (size_t)p->K + (size_t)k;
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

typedef struct {
    size_t nsites;
    int K, nattr;
    ff_eval_result *res;   /* [K][nsites + 1]; column 0 = pooled */
    ff_eval_fairness *fair; /* [K][nattr]: every attribute the sites declare */
    int *fair_ok;
} eval_tables;

static void tables_free(eval_tables *t)
{
    for (size_t i = 0; t->res && i < (size_t)t->K * (t->nsites + 1); i++)
        ff_eval_result_free(&t->res[i]);
    for (size_t i = 0; t->fair && i < (size_t)t->K * (size_t)t->nattr; i++)
        if (t->fair_ok[i])
            ff_eval_fairness_free(&t->fair[i]);
    free(t->res);
    free(t->fair);
    free(t->fair_ok);
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

static int eval_task(eval_tables *t, const preds *p, ff_site *const *sites, ff_split split,
                     int k, const ff_eval_opts *eo)
{
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
        size_t ci = gather(&p[i], sites[i], split, k, score + c, label + c, attr + c, t->nattr,
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

static int tables_json(const eval_tables *t, const char *const *names, ff_split split,
                       const ff_eval_opts *eo, json_t **out)
{
    json_t *root = json_pack("{s:s, s:{}, s:{}}", "split", ff_split_name(split), "tasks", "auroc");
    json_t *tasks = json_object_get(root, "tasks"), *au = json_object_get(root, "auroc");
    int rc = FF_OK;
    for (int k = 0; rc == FF_OK && k < t->K; k++) {
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
        json_object_set_new(tasks, ff_client_task_names[k],
                            json_pack("{s:o?, s:o}", "pooled", pooled, "sites", sites));
        json_object_set_new(au, ff_client_task_names[k],
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
        const ff_eval_result *row = t->res + (size_t)k * (t->nsites + 1);
        rc = ff_report_add_task(rep, ff_client_task_names[k]);
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

int ff_client_evaluate(ff_model *m, ff_site *const *sites, const char *const *names, size_t n,
                       ff_split split, int modalities, const ff_eval_opts *eo,
                       const char *html_path, json_t **out)
{
    *out = NULL;
    if (n == 0)
        return ff_error(FF_EINVAL, "evaluate: no sites");
    eval_tables t = {.nsites = n, .K = ff_site_shape(sites[0])->K,
                     .nattr = ff_site_attr_count(sites[0])};
    preds *p = calloc(n, sizeof *p);
    t.res = calloc((size_t)t.K * (n + 1), sizeof *t.res);
    t.fair = calloc((size_t)t.K * (size_t)t.nattr + 1, sizeof *t.fair);
    t.fair_ok = calloc((size_t)t.K * (size_t)t.nattr + 1, sizeof *t.fair_ok);
    int rc = p && t.res && t.fair && t.fair_ok ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++)
        rc = preds_make(m, sites[i], split, modalities, &p[i]);
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

int ff_client_eval_hist(ff_model *m, const ff_site *s, ff_split split, int nbins, json_t **out)
{
    *out = NULL;
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
    for (int k = 0; rc == FF_OK && k < p.K; k++) {
        size_t c = gather(&p, s, split, k, score, label, attr, nattr, p.n);
        ff_eval_hist *h = NULL;
        rc = ff_eval_hist_new(&h, ff_client_task_names[k], nbins);
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
