/* ff_eval_binary: every metric of one task, curves, decision curves and bootstrap CIs. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ff_eval_opts_default(ff_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ece_bins = 10;
    o->threshold = 0.5;
    o->target_spec = 0.9;
    o->target_sens = 0.9;
    o->dca_points = 99;
    o->bootstrap = 0;
    o->seed = 0;
    o->curve_points = 400;
}

const ff_eval_opts *ev_opts(const ff_eval_opts *o, ff_eval_opts *def)
{
    if (o)
        return o;
    ff_eval_opts_default(def);
    return def;
}

static int check_opts(const ff_eval_opts *o)
{
    if (o->ece_bins < 1 || o->ece_bins > 1000000)
        return ff_error(FF_EINVAL, "eval: ece_bins %d not in [1, 1000000]", o->ece_bins);
    if (!(o->threshold >= 0 && o->threshold <= 1))
        return ff_error(FF_EINVAL, "eval: threshold %g not in [0,1]", o->threshold);
    if (!(o->target_spec > 0 && o->target_spec <= 1) || !(o->target_sens > 0 && o->target_sens <= 1))
        return ff_error(FF_EINVAL, "eval: target specificity/sensitivity must be in (0,1]");
    if (o->dca_points < 0 || o->dca_points > 100000)
        return ff_error(FF_EINVAL, "eval: dca_points %d not in [0, 100000]", o->dca_points);
    if (o->bootstrap < 0 || o->bootstrap > 1000000)
        return ff_error(FF_EINVAL, "eval: bootstrap %d not in [0, 1000000]", o->bootstrap);
    return FF_OK;
}

void ff_eval_result_free(ff_eval_result *r)
{
    free(r->roc.x);
    free(r->roc.y);
    free(r->roc.thr);
    free(r->pr.x);
    free(r->pr.y);
    free(r->pr.thr);
    free(r->rel.count);
    free(r->rel.mean_pred);
    free(r->rel.frac_pos);
    free(r->dca.t);
    free(r->dca.model);
    free(r->dca.treat_all);
    memset(r, 0, sizeof *r);
}

static int curve_alloc(ff_curve *c, size_t n)
{
    c->n = n;
    c->x = malloc((n ? n : 1) * sizeof(double));
    c->y = malloc((n ? n : 1) * sizeof(double));
    c->thr = malloc((n ? n : 1) * sizeof(double));
    if (!c->x || !c->y || !c->thr)
        return ff_error(FF_ENOMEM, "eval: no memory for a curve of %zu points", n);
    return FF_OK;
}

/* ROC: (0,0) at a threshold above every score, then one point per table row. PR in
 * scikit-learn's order: lowest threshold first, then (recall 0, precision 1). Both are empty
 * when the positives or negatives they divide by are missing. */
static int fill_curves(const ev_table *t, ff_eval_result *r)
{
    int both = t->P > 0 && t->N > 0;
    int rc = curve_alloc(&r->roc, both ? t->n + 1 : 0);
    if (rc == FF_OK)
        rc = curve_alloc(&r->pr, t->P > 0 ? t->n + 1 : 0);
    if (rc != FF_OK)
        return rc;
    double top = t->n ? t->s[0] + 1 : 1;
    if (both) {
        r->roc.x[0] = r->roc.y[0] = 0;
        r->roc.thr[0] = top;
    }
    double tp = 0, fp = 0;
    for (size_t k = 0; k < t->n; k++) {
        tp += t->pos[k];
        fp += t->neg[k];
        if (both) {
            r->roc.x[k + 1] = fp / t->N;
            r->roc.y[k + 1] = tp / t->P;
            r->roc.thr[k + 1] = t->s[k];
        }
        if (t->P > 0) {
            size_t j = t->n - 1 - k;
            r->pr.x[j] = tp / t->P;
            r->pr.y[j] = tp + fp > 0 ? tp / (tp + fp) : 0;
            r->pr.thr[j] = t->s[k];
        }
    }
    if (t->P > 0) {
        r->pr.x[t->n] = 0;
        r->pr.y[t->n] = 1;
        r->pr.thr[t->n] = top;
    }
    return FF_OK;
}

/* Net benefit at threshold t (Vickers & Elkin 2006): TP/n - FP/n * t/(1-t), treating a patient
 * when score >= t; treat-all uses prevalence; treat-none is 0. */
static int fill_dca(const ev_table *t, int points, ff_dca *d)
{
    size_t p = (size_t)points;
    d->n = p;
    d->t = malloc((p ? p : 1) * sizeof(double));
    d->model = malloc((p ? p : 1) * sizeof(double));
    d->treat_all = malloc((p ? p : 1) * sizeof(double));
    if (!d->t || !d->model || !d->treat_all)
        return ff_error(FF_ENOMEM, "eval: no memory for the decision curve");
    double total = t->P + t->N, tp = 0, fp = 0;
    size_t k = 0;
    for (size_t j = p; j-- > 0;) { /* thresholds descending: the table pointer only advances */
        double th = (double)(j + 1) / (double)(p + 1);
        while (k < t->n && t->s[k] >= th) {
            tp += t->pos[k];
            fp += t->neg[k];
            k++;
        }
        double odds = th / (1 - th);
        d->t[j] = th;
        d->model[j] = total > 0 ? tp / total - fp / total * odds : 0;
        d->treat_all[j] = total > 0 ? t->P / total - t->N / total * odds : 0;
    }
    return FF_OK;
}

int ev_fill_from_table(const ev_table *t, const ff_eval_opts *o, ff_eval_result *r)
{
    r->n = (size_t)(t->P + t->N);
    r->n_pos = (size_t)t->P;
    r->n_neg = (size_t)t->N;
    ev_auroc(t, &r->auroc);
    ev_auprc(t, &r->auprc);
    ev_sens_at_spec(t, o->target_spec, &r->sens_at_spec, &r->sens_at_spec_thr);
    ev_spec_at_sens(t, o->target_sens, &r->spec_at_sens, &r->spec_at_sens_thr);
    r->threshold = o->threshold;
    ev_threshold_stats(t, o->threshold, &r->alert_rate, &r->ppv, &r->sensitivity,
                       &r->specificity);
    int rc = fill_curves(t, r);
    if (rc == FF_OK)
        rc = fill_dca(t, o->dca_points, &r->dca);
    if (rc != FF_OK)
        return rc;
    r->rel.nbins = o->ece_bins;
    r->rel.count = calloc((size_t)o->ece_bins, sizeof(double));
    r->rel.mean_pred = calloc((size_t)o->ece_bins, sizeof(double));
    r->rel.frac_pos = calloc((size_t)o->ece_bins, sizeof(double));
    if (!r->rel.count || !r->rel.mean_pred || !r->rel.frac_pos)
        return ff_error(FF_ENOMEM, "eval: no memory for the reliability curve");
    return FF_OK;
}

/* numpy.percentile's default (linear interpolation between order statistics). */
double ev_percentile(const double *sorted, size_t m, double q)
{
    double pos = q * (double)(m - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= m)
        return sorted[m - 1];
    return sorted[i] + (pos - (double)i) * (sorted[i + 1] - sorted[i]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void ev_set_ci(ff_metric *m, double *vals, size_t cnt)
{
    if (!m->defined || cnt < 2)
        return;
    qsort(vals, cnt, sizeof(double), cmp_double);
    m->has_ci = 1;
    m->lo = ev_percentile(vals, cnt, 0.025);
    m->hi = ev_percentile(vals, cnt, 0.975);
}

enum { BS_AUROC, BS_AUPRC, BS_BRIER, BS_ECE, BS_SENS, BS_SPEC, BS_SLOPE, BS_ICPT, BS_COUNT };

/* Nonparametric bootstrap: n rows drawn with replacement (Philox stream "bootstrap" of the
 * seed), metrics recomputed on the reweighted table without re-sorting. Replicates missing a
 * class are skipped for the metrics that need both; CIs are the 2.5th and 97.5th percentiles.
 * The calibration fit is refitted per replicate only on tables of at most EV_BOOT_FIT_MAX
 * distinct scores (a histogram always; a million distinct scores would cost minutes). */
int ev_bootstrap(const ev_table *t, const uint32_t *grp, const uint8_t *label, size_t n,
                     const ff_eval_opts *o, ff_eval_result *r)
{
    ff_metric *target[BS_COUNT] = {&r->auroc,        &r->auprc,        &r->brier,
                                   &r->ece,          &r->sens_at_spec, &r->spec_at_sens,
                                   &r->cal_slope,    &r->cal_intercept};
    int fit = t->n <= EV_BOOT_FIT_MAX;
    size_t B = (size_t)o->bootstrap, cnt[BS_COUNT] = {0};
    int rc = FF_OK;
    ev_table w = {0};
    double *vals = malloc(B * BS_COUNT * sizeof(double));
    uint32_t *draws = malloc(n * sizeof *draws);
    if (!vals || !draws || ev_table_alloc(&w, t->n) != FF_OK) {
        rc = ff_error(FF_ENOMEM, "eval: no memory for %zu bootstrap replicates", B);
        goto out;
    }
    memcpy(w.s, t->s, t->n * sizeof(double));
    ff_rng rng;
    ff_rng_init(&rng, o->seed, 0x626f6f74 /* "boot" */);
    for (size_t b = 0; b < B; b++) {
        /* count the draws per row first (one random access per draw), then fold the rows
         * into the table in one sequential pass */
        memset(draws, 0, n * sizeof *draws);
        memset(w.pos, 0, t->n * sizeof(double));
        memset(w.neg, 0, t->n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            draws[ff_rng_below(&rng, (uint32_t)n)]++;
        for (size_t row = 0; row < n; row++)
            (label[row] ? w.pos : w.neg)[grp[row]] += draws[row];
        ev_table_totals(&w);
        ff_metric m[BS_COUNT], thr;
        ev_auroc(&w, &m[BS_AUROC]);
        ev_auprc(&w, &m[BS_AUPRC]);
        ev_brier_table(&w, &m[BS_BRIER]);
        ev_ece_table(&w, o->ece_bins, &m[BS_ECE], NULL, NULL, NULL);
        ev_sens_at_spec(&w, o->target_spec, &m[BS_SENS], &thr);
        ev_spec_at_sens(&w, o->target_sens, &m[BS_SPEC], &thr);
        m[BS_SLOPE].defined = m[BS_ICPT].defined = 0;
        if (fit)
            ev_calibration_fit_table(&w, &m[BS_SLOPE], &m[BS_ICPT]);
        for (int k = 0; k < BS_COUNT; k++)
            if (m[k].defined)
                vals[(size_t)k * B + cnt[k]++] = m[k].value;
        if (m[BS_AUROC].defined)
            r->bootstrap_done++;
    }
    for (int k = 0; k < BS_COUNT; k++)
        ev_set_ci(target[k], vals + (size_t)k * B, cnt[k]);
out:
    free(vals);
    free(draws);
    ev_table_free(&w);
    return rc;
}

int ff_eval_binary(const double *score, const uint8_t *label, size_t n, const ff_eval_opts *o,
                   ff_eval_result *out)
{
    memset(out, 0, sizeof *out);
    ff_eval_opts def;
    o = ev_opts(o, &def);
    int rc = check_opts(o);
    if (rc != FF_OK)
        return rc;
    ev_table t;
    uint32_t *grp = NULL;
    rc = ev_table_build(score, label, n, &t, o->bootstrap > 0 ? &grp : NULL);
    if (rc != FF_OK)
        return rc;
    rc = ev_fill_from_table(&t, o, out);
    if (rc != FF_OK)
        goto out;
    ev_brier_table(&t, &out->brier);
    ev_ece_table(&t, o->ece_bins, &out->ece, out->rel.count, out->rel.mean_pred,
                 out->rel.frac_pos);
    ev_calibration_fit_table(&t, &out->cal_slope, &out->cal_intercept);
    if (o->bootstrap > 0 && n > 0)
        rc = ev_bootstrap(&t, grp, label, n, o, out);
out:
    free(grp);
    ev_table_free(&t);
    if (rc != FF_OK)
        ff_eval_result_free(out);
    return rc;
}
