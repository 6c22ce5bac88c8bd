/* Calibration fits: slope/intercept (logistic recalibration) and temperature scaling. Both
 * work on the score table, i.e. on weighted distinct logits, with Newton's method and a
 * backtracking line search on the negative log-likelihood (both problems are convex). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double softplus(double z)
{
    return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

static double sigmoid(double z)
{
    if (z >= 0)
        return 1 / (1 + exp(-z));
    double e = exp(z);
    return e / (1 + e);
}

/* NLL of P(y=1) = sigmoid(a + b x_k) with pos/neg weights, its gradient and Hessian in one
 * pass (softplus(z) = z + softplus(-z) shares one exp and one log1p). */
typedef struct {
    double f, ga, gb, haa, hab, hbb;
} ev_fit2;

static void nll2(const ev_table *t, const double *x, double a, double b, ev_fit2 *e)
{
    memset(e, 0, sizeof *e);
    for (size_t k = 0; k < t->n; k++) {
        double z = a + b * x[k], ez = exp(-fabs(z)), l = log1p(ez);
        double sp_pos = z > 0 ? l : l - z;  /* softplus(-z) */
        double sp_neg = z > 0 ? z + l : l;  /* softplus(z) */
        double mu = z >= 0 ? 1 / (1 + ez) : ez / (1 + ez);
        double c = t->pos[k] + t->neg[k], r = c * mu - t->pos[k], w = c * mu * (1 - mu);
        e->f += t->pos[k] * sp_pos + t->neg[k] * sp_neg;
        e->ga += r;
        e->gb += r * x[k];
        e->haa += w;
        e->hab += w * x[k];
        e->hbb += w * x[k] * x[k];
    }
}

/* Why an unpenalised logistic fit on the scores has no finite optimum, or NULL. With the
 * table sorted by score, the classes are (quasi-)separated when every positive scores at least
 * as high as every negative, or the reverse. */
static const char *separation_why(const ev_table *t)
{
    const char *why = ev_two_class_why(t->P, t->N);
    if (why)
        return why;
    if (t->n < 2)
        return "all scores are equal (slope not identifiable)";
    size_t first_pos = t->n, last_pos = 0, first_neg = t->n, last_neg = 0;
    for (size_t k = 0; k < t->n; k++) {
        if (t->pos[k] > 0) {
            if (first_pos == t->n)
                first_pos = k;
            last_pos = k;
        }
        if (t->neg[k] > 0) {
            if (first_neg == t->n)
                first_neg = k;
            last_neg = k;
        }
    }
    if (last_pos <= first_neg || last_neg <= first_pos)
        return "scores separate the classes perfectly (slope unbounded)";
    return NULL;
}

void ev_calibration_fit_table(const ev_table *t, ff_metric *slope, ff_metric *intercept)
{
    const char *why = separation_why(t);
    if (why) {
        ev_undef(slope, why);
        ev_undef(intercept, why);
        return;
    }
    double *x = malloc(t->n * sizeof(double));
    if (!x) {
        ev_undef(slope, "out of memory");
        ev_undef(intercept, "out of memory");
        return;
    }
    for (size_t k = 0; k < t->n; k++)
        x[k] = ev_logit(t->s[k]);
    double a = 0, b = 1;
    ev_fit2 e, en;
    nll2(t, x, a, b, &e);
    int converged = 0;
    for (int it = 0; it < 200 && !converged; it++) {
        double det = e.haa * e.hbb - e.hab * e.hab;
        if (!(det > 0))
            break;
        double da = (e.hbb * e.ga - e.hab * e.gb) / det, db = (e.haa * e.gb - e.hab * e.ga) / det;
        double step = 1;
        for (int ls = 0; ls < 60; ls++, step /= 2) {
            nll2(t, x, a - step * da, b - step * db, &en);
            if (en.f <= e.f + 1e-12 * fabs(e.f))
                break;
        }
        a -= step * da;
        b -= step * db;
        e = en;
        converged = fabs(step * da) + fabs(step * db) < 1e-11 * (1 + fabs(a) + fabs(b));
    }
    free(x);
    if (!converged || !isfinite(a) || !isfinite(b)) {
        ev_undef(slope, "logistic fit did not converge");
        ev_undef(intercept, "logistic fit did not converge");
        return;
    }
    ev_set(slope, b);
    ev_set(intercept, a);
}

void ff_eval_calibration_fit(const double *score, const uint8_t *label, size_t n,
                             ff_metric *slope, ff_metric *intercept)
{
    ev_table t;
    if (ev_table_build(score, label, n, &t, NULL) != FF_OK) {
        ev_undef(slope, "invalid scores or labels");
        ev_undef(intercept, "invalid scores or labels");
        return;
    }
    ev_calibration_fit_table(&t, slope, intercept);
    ev_table_free(&t);
}

/* NLL of sigmoid(a x) (a = 1/T) and its first two derivatives in a. */
static void nll1(const ev_table *t, const double *x, double a, double *f, double *g, double *h)
{
    *f = *g = *h = 0;
    for (size_t k = 0; k < t->n; k++) {
        double z = a * x[k], mu = sigmoid(z), c = t->pos[k] + t->neg[k];
        *f += t->pos[k] * softplus(-z) + t->neg[k] * softplus(z);
        *g += (c * mu - t->pos[k]) * x[k];
        *h += c * mu * (1 - mu) * x[k] * x[k];
    }
}

static int temperature_table(const ev_table *t, const double *x, double *T)
{
    const char *why = ev_two_class_why(t->P, t->N);
    if (why)
        return ff_error(FF_ENUMERIC, "temperature: %s", why);
    /* Convex in a: the optimum is at a > 0 iff the slope at a = 0 is negative, and finite
     * unless every positive has logit > 0 and every negative logit < 0 (then a -> inf). */
    double f, g, h;
    nll1(t, x, 0, &f, &g, &h);
    if (!(g < 0))
        return ff_error(FF_ENUMERIC, "temperature: scores are not positively associated with "
                                     "the labels (optimal 1/T <= 0)");
    int sep = 1;
    for (size_t k = 0; k < t->n && sep; k++)
        if ((t->pos[k] > 0 && x[k] <= 0) || (t->neg[k] > 0 && x[k] >= 0))
            sep = 0;
    if (sep)
        return ff_error(FF_ENUMERIC, "temperature: scores separate the classes at 0.5 "
                                     "(optimal T -> 0)");
    double a = 1;
    nll1(t, x, a, &f, &g, &h);
    for (int it = 0; it < 200; it++) {
        if (!(h > 0))
            break;
        double d = g / h, step = 1, fn = f, gn = g, hn = h;
        for (int ls = 0; ls < 60; ls++, step /= 2) {
            if (a - step * d <= 0)
                continue;
            nll1(t, x, a - step * d, &fn, &gn, &hn);
            if (fn <= f + 1e-12 * fabs(f))
                break;
        }
        a -= step * d;
        f = fn;
        g = gn;
        h = hn;
        if (fabs(step * d) < 1e-13 * a) {
            *T = 1 / a;
            return FF_OK;
        }
    }
    return ff_error(FF_ENUMERIC, "temperature: Newton's method did not converge");
}

int ff_temperature_fit(const double *score, const uint8_t *label, size_t n, double *T)
{
    *T = 1;
    ev_table t;
    int rc = ev_table_build(score, label, n, &t, NULL);
    if (rc != FF_OK)
        return rc;
    double *x = malloc((t.n ? t.n : 1) * sizeof(double));
    if (!x) {
        ev_table_free(&t);
        return ff_error(FF_ENOMEM, "temperature: no memory");
    }
    for (size_t k = 0; k < t.n; k++)
        x[k] = ev_logit(t.s[k]);
    double Tfit = 1;
    rc = temperature_table(&t, x, &Tfit);
    if (rc == FF_OK)
        *T = Tfit;
    free(x);
    ev_table_free(&t);
    return rc;
}

void ff_temperature_apply(const double *score, size_t n, double T, double *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sigmoid(ev_logit(score[i]) / T);
}
