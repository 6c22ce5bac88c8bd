/* Calibration slope/intercept and bootstrap 95% intervals from score histograms, and the
 * operating point a declared rule picks on a histogram (docs/evaluation.md, "Intervals,
 * calibration fit and operating point from histograms").
 *
 * The bootstrap draws n patients with replacement from the histogram's cells (bin, class),
 * each with probability count / n. That is the exact bootstrap's draw of patients seen
 * through the bins: a replicate's histogram is the histogram of the exact replicate, so the
 * interval differs from the exact one only by the bins' error bounds (and Monte Carlo). */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One virtual row per patient of the table: its group and its class. */
static int table_rows(const ev_table *t, uint32_t **grp, uint8_t **label, size_t *n)
{
    size_t m = (size_t)(t->P + t->N), r = 0;
    *grp = malloc((m ? m : 1) * sizeof **grp);
    *label = malloc(m ? m : 1);
    if (!*grp || !*label) {
        free(*grp);
        free(*label);
        *grp = NULL;
        *label = NULL;
        return ff_error(FF_ENOMEM, "hist: no memory for %zu bootstrap rows", m);
    }
    for (size_t k = 0; k < t->n; k++) {
        for (size_t i = 0; i < (size_t)t->pos[k]; i++, r++) {
            (*grp)[r] = (uint32_t)k;
            (*label)[r] = 1;
        }
        for (size_t i = 0; i < (size_t)t->neg[k]; i++, r++) {
            (*grp)[r] = (uint32_t)k;
            (*label)[r] = 0;
        }
    }
    *n = m;
    return FF_OK;
}

int ev_hist_fit_and_ci(const ff_eval_hist *h, const ff_eval_hist_slice *sl,
                       const ff_eval_opts *o, ff_eval_result *r)
{
    ev_table t;
    int rc = ev_hist_table(h, sl, 1, &t);
    if (rc != FF_OK)
        return rc;
    ev_calibration_fit_table(&t, &r->cal_slope, &r->cal_intercept);
    if (o->bootstrap > 0 && t.P + t.N > 0) {
        uint32_t *grp = NULL;
        uint8_t *label = NULL;
        size_t n = 0;
        rc = table_rows(&t, &grp, &label, &n);
        if (rc == FF_OK)
            rc = ev_bootstrap(&t, grp, label, n, o, r);
        free(grp);
        free(label);
    }
    ev_table_free(&t);
    return rc;
}

/* ---- fairness ------------------------------------------------------------------------ */

static const size_t level_metric[] = {
    offsetof(ff_eval_subgroup, auroc),      offsetof(ff_eval_subgroup, auprc),
    offsetof(ff_eval_subgroup, brier),      offsetof(ff_eval_subgroup, ece),
    offsetof(ff_eval_subgroup, alert_rate), offsetof(ff_eval_subgroup, sensitivity),
    offsetof(ff_eval_subgroup, fpr),        offsetof(ff_eval_subgroup, ppv),
};
#define NLM FF_ARRAY_LEN(level_metric)
static const size_t gap_metric[] = {
    offsetof(ff_eval_fairness, dp_diff),
    offsetof(ff_eval_fairness, tpr_gap),
    offsetof(ff_eval_fairness, fpr_gap),
    offsetof(ff_eval_fairness, eo_diff),
};
#define NGM FF_ARRAY_LEN(gap_metric)

static ff_metric *at(void *base, size_t off)
{
    return (ff_metric *)(void *)((char *)base + off);
}

/* The levels' tables laid end to end in one table (group offsets in off[l]), so a replicate
 * reweights one array and each level is a view on its part. */
typedef struct {
    ev_table all, *view;
    size_t *off, nlev;
} ev_levels;

static void levels_free(ev_levels *L)
{
    ev_table_free(&L->all);
    free(L->view);
    free(L->off);
}

static int levels_build(const ff_eval_hist *h, const char *attribute, size_t nlev,
                        ev_levels *L)
{
    memset(L, 0, sizeof *L);
    ev_table *t = calloc(nlev + 1, sizeof *t);
    L->view = calloc(nlev + 1, sizeof *L->view);
    L->off = calloc(nlev + 1, sizeof *L->off);
    int rc = t && L->view && L->off ? FF_OK : ff_error(FF_ENOMEM, "hist: no memory");
    size_t l = 0, total = 0;
    for (size_t i = 0; rc == FF_OK && i < h->nslices && l < nlev; i++) {
        const ff_eval_hist_slice *sl = &h->slices[i];
        if (!sl->attribute || strcmp(sl->attribute, attribute) != 0)
            continue;
        rc = ev_hist_table(h, sl, 1, &t[l]);
        if (rc == FF_OK)
            total += t[l++].n;
    }
    L->nlev = l;
    if (rc == FF_OK)
        rc = ev_table_alloc(&L->all, total);
    for (size_t k = 0, pos = 0; rc == FF_OK && k < l; pos += t[k].n, k++) {
        L->off[k] = pos;
        memcpy(L->all.s + pos, t[k].s, t[k].n * sizeof(double));
        memcpy(L->all.pos + pos, t[k].pos, t[k].n * sizeof(double));
        memcpy(L->all.neg + pos, t[k].neg, t[k].n * sizeof(double));
        L->view[k] = (ev_table){t[k].n, L->all.s + pos, L->all.pos + pos, L->all.neg + pos,
                                0, 0};
    }
    if (rc == FF_OK)
        ev_table_totals(&L->all);
    for (size_t k = 0; t && k < l; k++)
        ev_table_free(&t[k]);
    free(t);
    if (rc != FF_OK)
        levels_free(L);
    return rc;
}

/* Metrics of one replicate (weights in L->all) into tmp, values appended to vals. */
static void fair_replicate(ev_levels *L, const ff_eval_opts *o, const ff_eval_fairness *f,
                           ff_eval_fairness *tmp, double *vals, size_t B, size_t *cnt)
{
    ff_eval_opts all = *o; /* suppression follows the observed subgroup sizes, not a draw's */
    all.min_cell = 0;
    for (size_t l = 0; l < L->nlev; l++) {
        ev_table_totals(&L->view[l]);
        ev_table empty = {0};
        int sup = f->levels[l].site_suppressed > 0 || (f->levels[l].auroc.why &&
                   strcmp(f->levels[l].auroc.why, FF_EVAL_SUPPRESSED) == 0);
        ev_subgroup_from_table(sup ? &empty : &L->view[l], &all, &tmp->levels[l]);
    }
    ev_fairness_gaps(tmp);
    for (size_t l = 0; l < L->nlev; l++)
        for (size_t k = 0; k < NLM; k++) {
            const ff_metric *m = at(&tmp->levels[l], level_metric[k]);
            size_t slot = l * NLM + k;
            if (m->defined)
                vals[slot * B + cnt[slot]++] = m->value;
        }
    for (size_t k = 0; k < NGM; k++) {
        const ff_metric *m = at(tmp, gap_metric[k]);
        size_t slot = L->nlev * NLM + k;
        if (m->defined)
            vals[slot * B + cnt[slot]++] = m->value;
    }
}

int ev_hist_fairness_ci(const ff_eval_hist *h, const char *attribute, const ff_eval_opts *o,
                        ff_eval_fairness *f)
{
    ev_levels L;
    int rc = levels_build(h, attribute, f->nlevels, &L);
    if (rc != FF_OK)
        return rc;
    size_t B = (size_t)o->bootstrap, nslot = L.nlev * NLM + NGM, n = 0;
    uint32_t *grp = NULL;
    uint8_t *label = NULL;
    double *vals = malloc((B * nslot + 1) * sizeof *vals);
    size_t *cnt = calloc(nslot, sizeof *cnt), *draws = NULL;
    ff_eval_fairness tmp = {.nlevels = L.nlev, .levels = calloc(L.nlev + 1, sizeof *tmp.levels)};
    rc = vals && cnt && tmp.levels ? table_rows(&L.all, &grp, &label, &n)
                                   : ff_error(FF_ENOMEM, "hist: no memory");
    if (rc == FF_OK && !(draws = malloc((n ? n : 1) * sizeof *draws)))
        rc = ff_error(FF_ENOMEM, "hist: no memory");
    ff_rng rng;
    ff_rng_init(&rng, o->seed, 0x66616972 /* "fair" */);
    for (size_t b = 0; rc == FF_OK && n > 0 && b < B; b++) {
        memset(draws, 0, n * sizeof *draws);
        memset(L.all.pos, 0, L.all.n * sizeof(double));
        memset(L.all.neg, 0, L.all.n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            draws[ff_rng_below(&rng, (uint32_t)n)]++;
        for (size_t row = 0; row < n; row++)
            (label[row] ? L.all.pos : L.all.neg)[grp[row]] += (double)draws[row];
        fair_replicate(&L, o, f, &tmp, vals, B, cnt);
    }
    for (size_t l = 0; rc == FF_OK && l < L.nlev; l++)
        for (size_t k = 0; k < NLM; k++)
            ev_set_ci(at(&f->levels[l], level_metric[k]), vals + (l * NLM + k) * B,
                      cnt[l * NLM + k]);
    for (size_t k = 0; rc == FF_OK && k < NGM; k++)
        ev_set_ci(at(f, gap_metric[k]), vals + (L.nlev * NLM + k) * B, cnt[L.nlev * NLM + k]);
    free(tmp.levels);
    free(vals);
    free(cnt);
    free(draws);
    free(grp);
    free(label);
    levels_free(&L);
    return rc;
}

/* ---- operating point ----------------------------------------------------------------- */

int ff_eval_hist_operating_point(const ff_eval_hist *h, ff_op_rule rule, double target,
                                 double *thr, const char **why)
{
    *thr = rule == FF_OP_THRESHOLD ? target : 0.5;
    *why = NULL;
    if (rule == FF_OP_THRESHOLD)
        return FF_OK;
    ev_table t;
    int rc = ev_hist_table(h, &h->slices[0], 0, &t);
    if (rc != FF_OK)
        return rc;
    ff_metric v, th;
    if (rule == FF_OP_SPECIFICITY) {
        ev_sens_at_spec(&t, target, &v, &th);
    } else if (rule == FF_OP_SENSITIVITY) {
        ev_spec_at_sens(&t, target, &v, &th);
    } else { /* the lowest bin edge whose alert rate does not exceed the target */
        double seen = 0, n = t.P + t.N;
        ev_undef(&th, "no patients");
        if (n > 0)
            ev_set(&th, t.n ? t.s[0] + 1.0 / h->nbins : 1);
        for (size_t k = 0; n > 0 && k < t.n; k++) {
            seen += t.pos[k] + t.neg[k];
            if (seen / n > target + 1e-12)
                break;
            ev_set(&th, t.s[k]);
        }
    }
    ev_table_free(&t);
    if (!th.defined) {
        *why = th.why;
        return FF_OK;
    }
    *thr = fmin(th.value, 1.0);
    return FF_OK;
}

const char *const ff_eval_op_rule_names[] = {"threshold", "specificity", "sensitivity",
                                             "alert_rate", NULL};

void ff_eval_op_rule_text(const ff_eval_op_point *op, char *buf, size_t n)
{
    double v = op->target;
    switch (op->rule) {
    case FF_OP_SPECIFICITY: snprintf(buf, n, "specificity at least %g%%", v * 100); break;
    case FF_OP_SENSITIVITY: snprintf(buf, n, "sensitivity at least %g%%", v * 100); break;
    case FF_OP_ALERT_RATE: snprintf(buf, n, "at most %g%% of patients flagged", v * 100); break;
    default: snprintf(buf, n, "fixed threshold %g", v); break;
    }
}

void ff_eval_op_note(const ff_eval_op_point *op, double thr, const char *why,
                     const char *chosen_on, const char *source, char *buf, size_t n)
{
    char rule[96];
    ff_eval_op_rule_text(op, rule, sizeof rule);
    if (why)
        snprintf(buf, n, "Operating point: threshold %g — the rule (%s, %s) could not be "
                 "applied: %s.", thr, rule, source, why);
    else if (op->rule == FF_OP_THRESHOLD)
        snprintf(buf, n, "Operating point: threshold %.4g, the declared rule: %s (%s).", thr,
                 rule, source);
    else
        snprintf(buf, n, "Operating point: threshold %.4g, chosen on %s by the declared rule: "
                 "%s (%s).", thr, chosen_on, rule, source);
}

json_t *ff_eval_op_json(const ff_eval_op_point *op, double thr, const char *why,
                        const char *chosen_on)
{
    char rule[96];
    ff_eval_op_rule_text(op, rule, sizeof rule);
    json_t *j = json_pack("{s:s, s:f, s:f, s:s, s:s}", "rule", ff_eval_op_rule_names[op->rule],
                          "target", op->target, "threshold", thr, "chosen_on", chosen_on, "text",
                          rule);
    if (j && why)
        json_object_set_new(j, "undefined", json_string(why));
    return j;
}
