/* The final federated report (metrics.json and report.html) from out_dir/fedeval.json: the
 * sites' test and validation score histograms, per task whatever tasks they name. Per task:
 * the operating point chosen on the pooled validation histograms by the declared rule, pooled
 * and per-site metrics with histogram-bootstrap intervals, fairness per declared attribute
 * with small subgroups suppressed (docs/evaluation.md, "The federated report"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fed_internal.h"

#define MAX_SITES 64
#define MAX_TASKS 64

typedef struct {
    char name[64];
    ff_eval_hist *pooled, *val, *site[MAX_SITES];
    double thr;
    const char *thr_why;
    ff_eval_hist_bound bound;
    ff_eval_result pres, sres[MAX_SITES];
    int phave, shave[MAX_SITES];
    ff_eval_fairness *pfair, *sfair[MAX_SITES];
    size_t npfair, nsfair[MAX_SITES];
} rtask;

typedef struct {
    rtask *t;
    size_t nt;
    const char *names[MAX_SITES];
    size_t ns;
    ff_coord_report_config cfg;
} rrun;

static void fair_free(ff_eval_fairness *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++)
        ff_eval_fairness_free(&f[i]);
    free(f);
}

static void rrun_free(rrun *r)
{
    for (size_t k = 0; r->t && k < r->nt; k++) {
        rtask *t = &r->t[k];
        ff_eval_hist_free(t->pooled);
        ff_eval_hist_free(t->val);
        if (t->phave)
            ff_eval_result_free(&t->pres);
        fair_free(t->pfair, t->npfair);
        for (size_t i = 0; i < r->ns; i++) {
            ff_eval_hist_free(t->site[i]);
            if (t->shave[i])
                ff_eval_result_free(&t->sres[i]);
            fair_free(t->sfair[i], t->nsfair[i]);
        }
    }
    free(r->t);
}

/* The slot of task `name`, added in the order the sites name tasks. */
static rtask *task_slot(rrun *r, const char *name)
{
    for (size_t k = 0; k < r->nt; k++)
        if (strcmp(r->t[k].name, name) == 0)
            return &r->t[k];
    if (r->nt == MAX_TASKS)
        return NULL;
    rtask *t = &r->t[r->nt++];
    ff_strlcpy(t->name, name, sizeof t->name);
    return t;
}

/* dst += h, creating dst as a copy of h when it is the first. */
static int add_into(ff_eval_hist **dst, const ff_eval_hist *h)
{
    if (!h) /* cannot happen after a successful parse; says so to gcc -O3's null analysis */
        return ff_error(FF_EINVAL, "fedeval.json: no histogram");
    if (!*dst) {
        int rc = ff_eval_hist_new(dst, h->task, h->nbins);
        if (rc != FF_OK)
            return rc;
    }
    return ff_eval_hist_merge(*dst, h);
}

/* One site's array of histograms: test (val = 0) into site[i] and pooled, or validation. */
static int take_hists(rrun *r, size_t i, const json_t *arr, int val)
{
    size_t k;
    json_t *v;
    int rc = FF_OK;
    json_array_foreach(arr, k, v)
    {
        ff_eval_hist *h = NULL;
        rc = ff_eval_hist_from_json(v, &h);
        rtask *t = rc == FF_OK ? task_slot(r, h->task) : NULL;
        if (rc == FF_OK && !t)
            rc = ff_error(FF_EFORMAT, "fedeval.json: more than %d tasks", MAX_TASKS);
        if (rc == FF_OK && val)
            rc = add_into(&t->val, h);
        if (rc == FF_OK && !val)
            rc = add_into(&t->pooled, h);
        if (rc == FF_OK && !val && !t->site[i]) {
            t->site[i] = h;
            h = NULL;
        }
        ff_eval_hist_free(h);
        if (rc != FF_OK)
            return rc;
    }
    return rc;
}

static void report_cfg(const json_t *j, ff_coord_report_config *c)
{
    c->operating_point.rule = FF_OP_SPECIFICITY; /* fedeval.json of an older coordinator */
    c->operating_point.target = 0.9;
    c->min_cell_size = 10;
    c->bootstrap = 200;
    c->min_positives = 10;
    const json_t *op = json_object_get(j, "operating_point");
    const char *rule = json_string_value(json_object_get(op, "rule"));
    for (int k = 0; rule && ff_eval_op_rule_names[k]; k++)
        if (strcmp(rule, ff_eval_op_rule_names[k]) == 0)
            c->operating_point.rule = k;
    json_t *v;
    if (json_is_number(v = json_object_get(op, "target")))
        c->operating_point.target = json_number_value(v);
    if (json_is_integer(v = json_object_get(j, "min_cell_size")))
        c->min_cell_size = json_integer_value(v);
    if (json_is_integer(v = json_object_get(j, "bootstrap")))
        c->bootstrap = json_integer_value(v);
    if (json_is_integer(v = json_object_get(j, "min_positives")))
        c->min_positives = json_integer_value(v);
}

/* Whether slice i is the first of its attribute (attributes in the order the site sent them). */
static int first_of_attr(const ff_eval_hist *h, size_t i)
{
    for (size_t j = 1; j < i; j++)
        if (strcmp(h->slices[j].attribute, h->slices[i].attribute) == 0)
            return 0;
    return 1;
}

/* Fairness of every attribute h has slices for. */
static int fairness_all(const ff_eval_hist *h, const ff_eval_opts *eo, ff_eval_fairness **out,
                        size_t *n)
{
    *out = calloc(h->nslices + 1, sizeof **out);
    *n = 0;
    if (!*out)
        return ff_error(FF_ENOMEM, "out of memory");
    int rc = FF_OK;
    for (size_t i = 1; rc == FF_OK && i < h->nslices; i++) {
        if (!first_of_attr(h, i))
            continue;
        rc = ff_eval_hist_fairness(h, h->slices[i].attribute, eo, &(*out)[*n]);
        if (rc == FF_OK)
            (*n)++;
    }
    return rc;
}

/* 1 when h has slices of attribute a and withheld none of them, 0 when it withheld one, -1
 * when it has none. */
static int sent_whole(const ff_eval_hist *h, const char *a)
{
    int seen = 0;
    for (size_t i = 1; h && i < h->nslices; i++)
        if (strcmp(h->slices[i].attribute, a) == 0) {
            if (h->slices[i].suppressed > 0)
                return 0;
            seen = 1;
        }
    return seen ? 1 : -1;
}

/* The pooled fairness of attribute a over the sites that sent every subgroup of it, so that
 * its subgroups are compared over the same hospitals (a site that withheld some, and the
 * complementary rule makes that at least two, is left out of this attribute, with a note);
 * over every site when none withheld any, or when all did (its subgroups then read
 * "suppressed at K sites"). */
static int pooled_attr(rrun *r, rtask *t, const ff_eval_opts *eo, const char *a,
                       ff_eval_fairness *out)
{
    size_t nq = 0, nhave = 0;
    char in[512] = "", left[512] = "";
    for (size_t i = 0; i < r->ns; i++) {
        int w = sent_whole(t->site[i], a);
        nhave += w >= 0;
        nq += w == 1;
        char *dst = w == 1 ? in : w == 0 ? left : NULL;
        if (dst && strlen(dst) + strlen(r->names[i]) + 3 < sizeof in)
            snprintf(dst + strlen(dst), sizeof in - strlen(dst), "%s%s", *dst ? ", " : "",
                     r->names[i]);
    }
    if (nq == nhave || nq == 0) {
        int rc = ff_eval_hist_fairness(t->pooled, a, eo, out);
        if (rc == FF_OK && nq == 0 && nhave > 0) {
            char note[700];
            snprintf(note, sizeof note, "Not pooled: every site withheld subgroups of %s below "
                     "its minimum cell size.", a);
            out->note = strdup(note);
        }
        return rc;
    }
    ff_eval_hist *pool = NULL;
    int rc = FF_OK;
    for (size_t i = 0; rc == FF_OK && i < r->ns; i++)
        if (sent_whole(t->site[i], a) == 1)
            rc = add_into(&pool, t->site[i]);
    if (rc == FF_OK)
        rc = ff_eval_hist_fairness(pool, a, eo, out);
    ff_eval_hist_free(pool);
    if (rc == FF_OK) {
        char note[1200];
        snprintf(note, sizeof note, "Pooled over %zu of %zu sites (%s): %s withheld subgroups of "
                 "%s below %s minimum cell size.", nq, nhave, in, left, a,
                 nhave - nq > 1 ? "their" : "its");
        out->note = strdup(note);
    }
    return rc;
}

/* Pooled fairness of every attribute the pooled histogram has slices for. */
static int pooled_fairness(rrun *r, rtask *t, const ff_eval_opts *eo)
{
    const ff_eval_hist *h = t->pooled;
    t->pfair = calloc(h->nslices + 1, sizeof *t->pfair);
    t->npfair = 0;
    if (!t->pfair)
        return ff_error(FF_ENOMEM, "out of memory");
    int rc = FF_OK;
    for (size_t i = 1; rc == FF_OK && i < h->nslices; i++) {
        if (!first_of_attr(h, i))
            continue;
        rc = pooled_attr(r, t, eo, h->slices[i].attribute, &t->pfair[t->npfair]);
        if (rc == FF_OK)
            t->npfair++;
    }
    return rc;
}

static int compute_task(rrun *r, rtask *t)
{
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    eo.bootstrap = (int)r->cfg.bootstrap;
    eo.seed = 1;
    eo.min_cell = (int)r->cfg.min_cell_size;
    t->thr = r->cfg.operating_point.target;
    t->thr_why = NULL;
    int rc = FF_OK;
    if (r->cfg.operating_point.rule != FF_OP_THRESHOLD) {
        t->thr = 0.5;
        t->thr_why = "no site sent validation histograms";
        if (t->val)
            rc = ff_eval_hist_operating_point(t->val, (ff_op_rule)r->cfg.operating_point.rule,
                                              r->cfg.operating_point.target, &t->thr,
                                              &t->thr_why);
    }
    eo.threshold = t->thr;
    if (rc == FF_OK) {
        rc = ff_eval_hist_metrics(t->pooled, 0, &eo, &t->pres, &t->bound);
        t->phave = rc == FF_OK;
    }
    if (rc == FF_OK)
        rc = pooled_fairness(r, t, &eo);
    for (size_t i = 0; rc == FF_OK && i < r->ns; i++) {
        if (!t->site[i])
            continue;
        rc = ff_eval_hist_metrics(t->site[i], 0, &eo, &t->sres[i], NULL);
        t->shave[i] = rc == FF_OK;
        if (rc == FF_OK)
            rc = fairness_all(t->site[i], &eo, &t->sfair[i], &t->nsfair[i]);
    }
    return rc;
}

static ff_eval_op_point op_of(const ff_coord_report_config *c)
{
    return (ff_eval_op_point){(ff_op_rule)c->operating_point.rule, c->operating_point.target};
}

static int task_json(const rrun *r, const rtask *t, json_t **out)
{
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    eo.bootstrap = (int)r->cfg.bootstrap;
    eo.seed = 1;
    json_t *tj = json_object(), *sj = json_object(), *pj = NULL;
    int rc = ff_eval_to_json(&t->pres, t->pfair, t->npfair, &eo, &pj);
    for (size_t i = 0; rc == FF_OK && i < r->ns; i++) {
        json_t *one = NULL;
        if (t->shave[i] && (rc = ff_eval_to_json(&t->sres[i], t->sfair[i], t->nsfair[i], &eo,
                                                 &one)) == FF_OK)
            json_object_set_new(sj, r->names[i], one);
    }
    ff_eval_op_point opp = op_of(&r->cfg);
    json_t *op = ff_eval_op_json(&opp, t->thr, t->thr_why, "validation split, pooled histograms");
    json_object_set_new(tj, "pooled", pj);
    json_object_set_new(tj, "sites", sj);
    json_object_set_new(tj, "operating_point", op);
    json_object_set_new(tj, "hist_bounds", json_pack("{s:f, s:f}", "auroc", t->bound.auroc,
                                                     "auprc", t->bound.auprc));
    if (rc != FF_OK)
        json_decref(tj);
    else
        *out = tj;
    return rc;
}

/* The pooled AUROC per round of task tn as a chart when every round has it; otherwise a note
 * naming the rounds where it is undefined and why (a chart cannot show "undefined"). */
static int add_curve(ff_report *rep, const json_t *rounds, const char *tn)
{
    size_t nr = json_array_size(rounds), nundef = 0, first = 0, last = 0;
    const char *why = NULL;
    double *curve = calloc(nr + 1, sizeof *curve);
    if (!curve)
        return ff_error(FF_ENOMEM, "out of memory");
    for (size_t r = 0; r < nr; r++) {
        const json_t *e = json_array_get(rounds, r);
        json_t *v = json_object_get(json_object_get(e, "auroc"), tn);
        curve[r] = json_is_number(v) ? json_number_value(v) : NAN;
        if (!isfinite(curve[r])) {
            json_int_t rn = json_integer_value(json_object_get(e, "round"));
            first = nundef++ ? first : (size_t)rn;
            last = (size_t)rn;
            const char *w = json_string_value(json_object_get(json_object_get(e, "undefined"), tn));
            why = w ? w : why ? why : "undefined";
        }
    }
    char label[160];
    int rc = FF_OK;
    if (nr > 0 && nundef == 0) {
        snprintf(label, sizeof label, "%s", tn);
        rc = ff_report_add_rounds(rep, label, curve, nr);
    } else if (nundef > 0) {
        snprintf(label, sizeof label,
                 "Task %s: pooled test AUROC undefined in %zu of %zu rounds (rounds %zu..%zu): %s.",
                 tn, nundef, nr, first, last, why);
        rc = ff_report_add_note(rep, label);
    }
    free(curve);
    return rc;
}

static int task_page(ff_report *rep, const rrun *r, const rtask *t)
{
    char note[400];
    int rc = ff_report_add_task(rep, t->name);
    ff_eval_op_point op = op_of(&r->cfg);
    ff_eval_op_note(&op, t->thr, t->thr_why, "the pooled validation split",
                    "config report.operating_point", note, sizeof note);
    if (rc == FF_OK)
        rc = ff_report_add_task_note(rep, note);
    if (rc == FF_OK)
        rc = ff_report_add_column(rep, "pooled", &t->pres, t->pfair, t->npfair);
    for (size_t i = 0; rc == FF_OK && i < r->ns; i++)
        if (t->shave[i])
            rc = ff_report_add_column(rep, r->names[i], &t->sres[i], t->sfair[i], t->nsfair[i]);
    return rc;
}

static int write_outputs(const char *out_dir, rrun *r, json_t *rounds, const json_t *stats,
                         const char *const *notes, size_t nnotes)
{
    ff_report *rep = NULL;
    json_t *mj = json_object(), *tasks = json_object(), *au = json_object(),
           *undef = json_object();
    int rc = ff_report_new(&rep, "fedfuse federated run: pooled and per-site test metrics");
    char note[600];
    snprintf(note, sizeof note, "Computed at the coordinator from the sites' score histograms "
             "(no prediction left a site); test split of the final model. 95%% intervals: "
             "bootstrap of the histograms (%lld replicates). Each hospital withholds "
             "subgroups below its own minimum cell size (site policy statistics.min_cell_size) "
             "before anything leaves it; here, subgroups with fewer than %lld patients are "
             "suppressed as well.", (long long)r->cfg.bootstrap,
             (long long)r->cfg.min_cell_size);
    if (rc == FF_OK)
        rc = ff_report_add_note(rep, note);
    for (size_t i = 0; rc == FF_OK && i < nnotes; i++)
        rc = ff_report_add_note(rep, notes[i]);
    if (rc == FF_OK)
        ff_report_set_min_positives(rep, (size_t)r->cfg.min_positives);
    for (size_t k = 0; rc == FF_OK && k < r->nt; k++) {
        rtask *t = &r->t[k];
        json_t *tj = NULL;
        if (!t->pooled) { /* validation histograms only */
            json_object_set_new(au, t->name, json_null());
            json_object_set_new(undef, t->name,
                                json_string("no site sent test results for this task"));
            continue;
        }
        rc = compute_task(r, t);
        if (rc == FF_OK)
            rc = task_json(r, t, &tj);
        if (rc == FF_OK) {
            json_object_set_new(tj, "kind", json_string("binary"));
            json_object_set_new(tasks, t->name, tj);
            json_object_set_new(au, t->name, t->pres.auroc.defined ? json_real(t->pres.auroc.value)
                                                                    : json_null());
            if (!t->pres.auroc.defined)
                json_object_set_new(undef, t->name, json_string(t->pres.auroc.why));
            rc = task_page(rep, r, t);
        }
    }
    for (size_t k = 0; rc == FF_OK && k < r->nt; k++)
        rc = add_curve(rep, rounds, r->t[k].name);
    json_t *headline = json_object(); /* the declared tasks of other kinds (report_kinds.c) */
    if (rc == FF_OK && stats)
        rc = fed_kinds_report(stats, r->names, r->ns, tasks, headline, undef, rep);
    json_object_set_new(mj, "source", json_string("federated score histograms, test split"));
    json_object_set_new(mj, "split", json_string("test"));
    json_object_set_new(mj, "auroc", au);
    if (json_object_size(headline) > 0) /* {task: {"metric", "value"}} */
        json_object_set(mj, "headline", headline);
    json_decref(headline);
    json_object_set_new(mj, "undefined", undef); /* task -> why its pooled metric is undefined */
    json_object_set_new(mj, "tasks", tasks);
    json_object_set(mj, "rounds", rounds);
    char path[1100];
    if (rc == FF_OK) {
        snprintf(path, sizeof path, "%s/metrics.json", out_dir);
        rc = ff_eval_json_write(mj, path);
    }
    if (rc == FF_OK && r->nt == 0 && json_object_size(tasks) == 0)
        rc = ff_report_add_note(rep, "No site sent test results: nothing to report.");
    if (rc == FF_OK) {
        snprintf(path, sizeof path, "%s/report.html", out_dir);
        rc = ff_report_write(rep, path);
    }
    ff_report_free(rep);
    json_decref(mj);
    return rc;
}

/* Names in natural order: digits compared as numbers, so site-2 comes before site-10. */
static int cmp_name(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    while (*x && *y) {
        if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
            char *ex, *ey;
            unsigned long long u = strtoull(x, &ex, 10), w = strtoull(y, &ey, 10);
            if (u != w)
                return u < w ? -1 : 1;
            x = ex;
            y = ey;
            continue;
        }
        if (*x != *y)
            return (unsigned char)*x - (unsigned char)*y;
        x++;
        y++;
    }
    return (unsigned char)*x - (unsigned char)*y;
}

int ff_fed_write_report(const char *out_dir, const char *const *notes, size_t nnotes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fedeval.json", out_dir);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        return ff_error(FF_EFORMAT, "%s: %s", path, jerr.text);
    rrun r = {0};
    r.t = calloc(MAX_TASKS, sizeof *r.t);
    report_cfg(json_object_get(j, "report"), &r.cfg);
    json_t *hists = json_object_get(j, "hists"), *val = json_object_get(j, "val_hists");
    const char *key;
    json_t *v;
    int rc = r.t ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    json_object_foreach(hists, key, v)
    {
        if (r.ns < MAX_SITES)
            r.names[r.ns++] = key;
    }
    qsort(r.names, r.ns, sizeof *r.names, cmp_name); /* site-1, site-2, ...: a stable order */
    for (size_t i = 0; rc == FF_OK && i < r.ns; i++) {
        rc = take_hists(&r, i, json_object_get(hists, r.names[i]), 0);
        if (rc == FF_OK && json_is_array(json_object_get(val, r.names[i])))
            rc = take_hists(&r, i, json_object_get(val, r.names[i]), 1);
    }
    if (rc == FF_OK)
        rc = write_outputs(out_dir, &r, json_object_get(j, "rounds"), json_object_get(j, "stats"),
                           notes, nnotes);
    rrun_free(&r);
    json_decref(j);
    return rc;
}
