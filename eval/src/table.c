/* The score table (distinct scores, descending, with class counts) and the scalar metrics
 * computed from it. Every metric here is a function of the table only, which is what lets
 * exact evaluation, the bootstrap (reweighted counts) and federated histograms (bins as tied
 * scores) share one implementation. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ev_set(ff_metric *m, double v)
{
    memset(m, 0, sizeof *m);
    m->value = v;
    m->defined = 1;
}

void ev_undef(ff_metric *m, const char *why)
{
    memset(m, 0, sizeof *m);
    m->why = why;
}

const char *ev_two_class_why(double P, double N)
{
    if (P + N == 0)
        return "no labelled patients";
    if (P == 0)
        return "only one class (no positives)";
    if (N == 0)
        return "only one class (no negatives)";
    return NULL;
}

int ev_check_inputs(const double *score, const uint8_t *label, size_t n)
{
    if (n > 0 && (!score || !label))
        return ff_error(FF_EINVAL, "eval: score or label array is NULL");
    if (n > UINT32_MAX)
        return ff_error(FF_ERANGE, "eval: %zu rows exceeds the limit of 2^32-1", n);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(score[i]) || score[i] < 0.0 || score[i] > 1.0)
            return ff_error(FF_EINVAL, "eval: row %zu: score %g is not a probability in [0,1]",
                            i, score[i]);
        if (label[i] > 1)
            return ff_error(FF_EINVAL, "eval: row %zu: label %u is not 0 or 1", i,
                            (unsigned)label[i]);
    }
    return FF_OK;
}

int ev_table_alloc(ev_table *t, size_t n)
{
    memset(t, 0, sizeof *t);
    size_t m = n ? n : 1;
    t->s = malloc(m * sizeof(double));
    t->pos = calloc(m, sizeof(double));
    t->neg = calloc(m, sizeof(double));
    if (!t->s || !t->pos || !t->neg) {
        ev_table_free(t);
        return ff_error(FF_ENOMEM, "eval: no memory for a table of %zu scores", n);
    }
    t->n = n;
    return FF_OK;
}

void ev_table_free(ev_table *t)
{
    FF_FREE(t->s);
    FF_FREE(t->pos);
    FF_FREE(t->neg);
    t->n = 0;
}

void ev_table_totals(ev_table *t)
{
    t->P = t->N = 0;
    for (size_t k = 0; k < t->n; k++) {
        t->P += t->pos[k];
        t->N += t->neg[k];
    }
}

typedef struct {
    uint64_t key; /* ~bits of the score: ascending key = descending score */
    uint32_t row;
} ev_key;

/* LSD radix sort, 11-bit digits (6 passes, skipping digits every key shares): non-negative
 * doubles order like their bit patterns, so this sorts scores in O(n) and ~10x faster than
 * qsort at a million rows. Stable, which keeps the row order of ties deterministic. */
static int radix_sort(ev_key *k, ev_key *tmp, size_t n)
{
    enum { BITS = 11, RADIX = 1 << BITS, PASSES = 6 };
    size_t *cnt = calloc((size_t)PASSES * RADIX, sizeof(size_t));
    if (!cnt)
        return -1;
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < PASSES; p++)
            cnt[(size_t)p * RADIX + ((k[i].key >> (p * BITS)) & (RADIX - 1))]++;
    ev_key *src = k, *dst = tmp;
    for (int p = 0; p < PASSES; p++) {
        size_t *c = cnt + (size_t)p * RADIX;
        if (n == 0 || c[(k[0].key >> (p * BITS)) & (RADIX - 1)] == n)
            continue; /* every key has this digit */
        size_t sum = 0;
        for (int d = 0; d < RADIX; d++) {
            size_t v = c[d];
            c[d] = sum;
            sum += v;
        }
        for (size_t i = 0; i < n; i++)
            dst[c[(src[i].key >> (p * BITS)) & (RADIX - 1)]++] = src[i];
        ev_key *t = src;
        src = dst;
        dst = t;
    }
    if (src != k)
        memcpy(k, src, n * sizeof *k);
    free(cnt);
    return 0;
}

static uint64_t desc_key(double s)
{
    uint64_t u;
    if (s == 0)
        s = 0.0; /* -0.0 would sort as the largest */
    memcpy(&u, &s, sizeof u);
    return ~u;
}

int ev_table_build(const double *score, const uint8_t *label, size_t n, ev_table *t,
                   uint32_t **grp_of_row)
{
    memset(t, 0, sizeof *t);
    if (grp_of_row)
        *grp_of_row = NULL;
    int rc = ev_check_inputs(score, label, n);
    if (rc != FF_OK)
        return rc;
    ev_key *k = malloc((n ? n : 1) * sizeof *k), *tmp = malloc((n ? n : 1) * sizeof *k);
    uint32_t *grp = grp_of_row ? malloc((n ? n : 1) * sizeof *grp) : NULL;
    if (!k || !tmp || (grp_of_row && !grp)) {
        rc = ff_error(FF_ENOMEM, "eval: no memory to sort %zu scores", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        k[i] = (ev_key){desc_key(score[i]), (uint32_t)i};
    if (radix_sort(k, tmp, n) != 0) {
        rc = ff_error(FF_ENOMEM, "eval: no memory to sort %zu scores", n);
        goto out;
    }
    size_t g = 0;
    for (size_t i = 0; i < n; i++)
        g += (i == 0 || k[i].key != k[i - 1].key);
    rc = ev_table_alloc(t, g);
    if (rc != FF_OK)
        goto out;
    g = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && k[i].key != k[i - 1].key)
            g++;
        t->s[g] = score[k[i].row] == 0 ? 0.0 : score[k[i].row];
        if (label[k[i].row])
            t->pos[g] += 1;
        else
            t->neg[g] += 1;
        if (grp)
            grp[k[i].row] = (uint32_t)g;
    }
    ev_table_totals(t);
    if (grp_of_row) {
        *grp_of_row = grp;
        grp = NULL;
    }
out:
    free(k);
    free(tmp);
    free(grp);
    return rc;
}

/* Mann-Whitney with ties counted one half: 2*U = sum_k neg_k * (2*pos_above + pos_k), held
 * exactly in a double (every term is a whole number below 2^53 for n < 2^26 rows). Equals the
 * trapezoidal area under the ROC points. */
void ev_auroc(const ev_table *t, ff_metric *m)
{
    const char *why = ev_two_class_why(t->P, t->N);
    if (why) {
        ev_undef(m, why);
        return;
    }
    double twice_u = 0, pos_above = 0;
    for (size_t k = 0; k < t->n; k++) {
        twice_u += t->neg[k] * (2 * pos_above + t->pos[k]);
        pos_above += t->pos[k];
    }
    ev_set(m, twice_u / (2 * t->P * t->N));
}

/* Average precision as scikit-learn: sum over thresholds of (R_k - R_{k-1}) * P_k, i.e. each
 * tie group's positives weighted by the precision at that group's threshold. */
void ev_auprc(const ev_table *t, ff_metric *m)
{
    if (t->P + t->N == 0) {
        ev_undef(m, "no labelled patients");
        return;
    }
    if (t->P == 0) {
        ev_undef(m, "only one class (no positives)");
        return;
    }
    double tp = 0, fp = 0, ap = 0;
    for (size_t k = 0; k < t->n; k++) {
        tp += t->pos[k];
        fp += t->neg[k];
        if (t->pos[k] > 0)
            ap += (t->pos[k] / t->P) * (tp / (tp + fp));
    }
    ev_set(m, ap);
}

/* Operating points are the ROC points themselves (one per distinct score plus (0,0)): no
 * interpolation between them. Ties at the floor are resolved with a 1e-12 tolerance so that
 * e.g. 9/10 counts as specificity 0.9. */
void ev_sens_at_spec(const ev_table *t, double target, ff_metric *v, ff_metric *thr)
{
    const char *why = ev_two_class_why(t->P, t->N);
    if (why) {
        ev_undef(v, why);
        ev_undef(thr, why);
        return;
    }
    double best = 0, best_thr = t->n ? t->s[0] + 1 : 1, tp = 0, fp = 0;
    for (size_t k = 0; k < t->n; k++) {
        tp += t->pos[k];
        fp += t->neg[k];
        if ((t->N - fp) / t->N < target - 1e-12)
            break; /* specificity only falls from here */
        if (tp / t->P > best) {
            best = tp / t->P;
            best_thr = t->s[k];
        }
    }
    ev_set(v, best);
    ev_set(thr, best_thr);
}

void ev_spec_at_sens(const ev_table *t, double target, ff_metric *v, ff_metric *thr)
{
    const char *why = ev_two_class_why(t->P, t->N);
    if (why) {
        ev_undef(v, why);
        ev_undef(thr, why);
        return;
    }
    /* The first ROC point (highest threshold) reaching the sensitivity floor has the fewest
     * false positives of all that do. */
    double tp = 0, fp = 0;
    for (size_t k = 0; k < t->n; k++) {
        tp += t->pos[k];
        fp += t->neg[k];
        if (tp / t->P >= target - 1e-12) {
            ev_set(v, (t->N - fp) / t->N);
            ev_set(thr, t->s[k]);
            return;
        }
    }
    ev_undef(v, "internal: sensitivity floor never reached");
    ev_undef(thr, "internal: sensitivity floor never reached");
}

void ev_brier_table(const ev_table *t, ff_metric *m)
{
    if (t->P + t->N == 0) {
        ev_undef(m, "no labelled patients");
        return;
    }
    double sum = 0;
    for (size_t k = 0; k < t->n; k++) {
        double s = t->s[k];
        sum += t->pos[k] * (1 - s) * (1 - s) + t->neg[k] * s * s;
    }
    ev_set(m, sum / (t->P + t->N));
}

/* numpy.searchsorted(linspace(0, 1, B+1)[1:-1], s, side='left'): the number of inner edges
 * strictly below s, with edge i computed exactly as numpy does (i * (1.0 / B)). */
int ev_rel_bin(double s, int nbins)
{
    double step = 1.0 / nbins;
    int b = (int)(s * nbins);
    if (b < 0)
        b = 0;
    if (b > nbins - 1)
        b = nbins - 1;
    while (b > 0 && !((double)b * step < s))
        b--;
    while (b < nbins - 1 && (double)(b + 1) * step < s)
        b++;
    return b;
}

void ev_ece_finish(const double *cnt, const double *sum, const double *tru, int nbins,
                   ff_metric *m, double *count, double *mean_pred, double *frac_pos)
{
    double total = 0, ece = 0;
    for (int b = 0; b < nbins; b++)
        total += cnt[b];
    for (int b = 0; b < nbins; b++) {
        if (cnt[b] > 0)
            ece += fabs(sum[b] - tru[b]) / total;
        if (count) {
            count[b] = cnt[b];
            mean_pred[b] = cnt[b] > 0 ? sum[b] / cnt[b] : 0;
            frac_pos[b] = cnt[b] > 0 ? tru[b] / cnt[b] : 0;
        }
    }
    if (total == 0)
        ev_undef(m, "no labelled patients");
    else
        ev_set(m, ece);
}

void ev_ece_table(const ev_table *t, int nbins, ff_metric *m, double *count, double *mean_pred,
                  double *frac_pos)
{
    double *cnt = calloc((size_t)nbins * 3, sizeof(double));
    if (!cnt) {
        ev_undef(m, "out of memory");
        return;
    }
    double *sum = cnt + nbins, *tru = cnt + 2 * nbins;
    for (size_t k = 0; k < t->n; k++) {
        int b = ev_rel_bin(t->s[k], nbins);
        double c = t->pos[k] + t->neg[k];
        cnt[b] += c;
        sum[b] += t->s[k] * c;
        tru[b] += t->pos[k];
    }
    ev_ece_finish(cnt, sum, tru, nbins, m, count, mean_pred, frac_pos);
    free(cnt);
}

void ev_threshold_stats(const ev_table *t, double thr, ff_metric *alert, ff_metric *ppv,
                        ff_metric *sens, ff_metric *spec)
{
    double tp = 0, fp = 0, total = t->P + t->N;
    for (size_t k = 0; k < t->n && t->s[k] >= thr; k++) {
        tp += t->pos[k];
        fp += t->neg[k];
    }
    if (total == 0)
        ev_undef(alert, "no labelled patients");
    else
        ev_set(alert, (tp + fp) / total);
    if (tp + fp == 0)
        ev_undef(ppv, "no predicted positives at the threshold");
    else
        ev_set(ppv, tp / (tp + fp));
    if (t->P == 0)
        ev_undef(sens, total == 0 ? "no labelled patients" : "no positives");
    else
        ev_set(sens, tp / t->P);
    if (t->N == 0)
        ev_undef(spec, total == 0 ? "no labelled patients" : "no negatives");
    else
        ev_set(spec, (t->N - fp) / t->N);
}

double ev_logit(double p)
{
    if (p < FF_EVAL_CLIP)
        p = FF_EVAL_CLIP;
    if (p > 1 - FF_EVAL_CLIP)
        p = 1 - FF_EVAL_CLIP;
    return log(p) - log1p(-p);
}
