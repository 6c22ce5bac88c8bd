/* The coordinator's side: a vector (one site's, or the secure sum over sites) decoded into
 * the released statistics. A cell is released only when its flag lane is 0, i.e. no site
 * suppressed it; otherwise only its name is listed as suppressed, never a value. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats_internal.h"

typedef struct {
    const ff_stats_query *q;
    const uint32_t *lanes;
    const char *site;
    json_t *res, *sup;
    int dp;                  /* a noised vector */
    double var, eps, delta; /* its noise variance per unit of sensitivity, its cost */
} rel;

/* |noise| <= ST_Z sd except with probability 2 exp(-ST_Z²/2) ≈ 5.5e-7 (sub-Gaussian tail). */
#define ST_Z 5.5

/* The high-probability bound on the noise of a cell of sensitivity sens (value units / scale). */
static double noise_bound(const rel *r, double sens) { return ST_Z * sqrt(r->var) * sens; }

static int flagged(const rel *r, size_t cell)
{
    const st_cell *c = &r->q->cells[cell];
    return r->lanes[c->lane + (c->kind == ST_CELL_WIDE ? ST_LIMBS : 1)] != 0;
}

/* Noise can take a small count below 0: a noised vector's counts are signed (mod 2^32). */
static int64_t count_of(const rel *r, size_t cell)
{
    uint32_t l = r->lanes[r->q->cells[cell].lane];
    return r->dp ? (int64_t)(int32_t)l : (int64_t)l;
}

/* Σ over sites of int64 values sent as 16-bit limbs: exact modulo 2^64. */
static int64_t wide_of(const rel *r, size_t cell)
{
    const uint32_t *l = r->lanes + r->q->cells[cell].lane;
    uint64_t u = 0;
    for (int k = 0; k < ST_LIMBS; k++)
        u += (uint64_t)l[k] << (16 * k);
    return (int64_t)u;
}

static void emit(rel *r, const char *var, const char *stat, json_t *value, json_t *extra)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "variable", var, "statistic", stat, "site",
                          r->site, "value", value);
    if (extra)
        json_object_update(o, extra);
    json_decref(extra);
    if (r->dp) {
        json_object_set_new(o, "epsilon", json_real(r->eps));
        json_object_set_new(o, "delta", json_real(r->delta));
    }
    json_array_append_new(r->res, o);
}

static void suppressed(rel *r, const char *var, const char *stat, const char *cell)
{
    json_array_append_new(r->sup, json_pack("{s:s, s:s, s:s, s:s}", "variable", var, "statistic",
                                            stat, "site", r->site, "cell", cell));
}

/* A count cell: released, or listed as suppressed. Returns 1 when released. */
static int count_cell(rel *r, size_t cell, const char *var, const char *stat, const char *name,
                      json_t *extra)
{
    if (flagged(r, cell)) {
        suppressed(r, var, stat, name);
        json_decref(extra);
        return 0;
    }
    if (r->dp) {
        if (!extra)
            extra = json_object();
        json_object_set_new(extra, "bound", json_real(noise_bound(r, 1.0)));
    }
    emit(r, var, stat, json_integer(count_of(r, cell)), extra);
    return 1;
}

/* q-th quantile from the fine histogram (values at their bin's centre, numpy's linear rule
 * between order statistics): |estimate - sample quantile| <= width / 2 (both order
 * statistics lie within half a bin of their centres). -1 when an order statistic is outside
 * the declared range. */
static int quantile(const rel *r, const st_var *v, int64_t n, double p, double *out)
{
    double rank = p * (double)(n - 1);
    int64_t j1 = (int64_t)floor(rank), j2 = (int64_t)ceil(rank);
    double frac = rank - (double)j1, mid[2] = {0, 0};
    int64_t want[2] = {j1, j2}, cum = 0;
    int found[2] = {0, 0};
    for (size_t b = 0; b < v->nfine + 2; b++) {
        int64_t c = count_of(r, v->c_fine + b);
        c = c > 0 ? c : 0; /* noise: a bin below 0 holds no one */
        for (int k = 0; k < 2; k++)
            if (!found[k] && want[k] < cum + c) {
                if (b == 0 || b == v->nfine + 1)
                    return -1;
                mid[k] = v->quantiles.min + ((double)b - 0.5) * v->quantiles.width;
                found[k] = 1;
            }
        cum += c;
    }
    if (!found[0] || !found[1])
        return -1;
    *out = mid[0] + frac * (mid[1] - mid[0]);
    return 0;
}

static void numeric(rel *r, const st_var *v)
{
    int has_n = count_cell(r, v->c_count, v->name, "count", "count", NULL);
    count_cell(r, v->c_missing, v->name, "missing", "missing", NULL);
    int64_t n = has_n ? count_of(r, v->c_count) : 0;
    double scale = pow(10.0, (double)v->decimals);
    if (has_n && n > 0 && !flagged(r, v->c_sum) && !flagged(r, v->c_sumsq)) {
        int64_t s = wide_of(r, v->c_sum), ss = wide_of(r, v->c_sumsq);
        double mean = (double)s / scale / (double)n, bs = 0, bn = 0;
        json_t *sb = NULL, *mb = NULL;
        if (r->dp) {
            bs = noise_bound(r, (double)r->q->sens[v->c_sum]) / scale;
            bn = noise_bound(r, 1.0);
            sb = json_pack("{s:f}", "bound", bs);
            /* |S/N - S'/n'| <= (bs + |mean'| bn) / N with N >= n' - bn (S, N the exact sum
             * and count, S', n' the noised ones) */
            if ((double)n > bn)
                mb = json_pack("{s:f}", "bound", (bs + fabs(mean) * bn) / ((double)n - bn));
        }
        emit(r, v->name, "sum", json_real((double)s / scale), sb);
        emit(r, v->name, "mean", json_real(mean), mb);
        if (n > 1) {
            /* n Σx² - (Σx)² exactly in 128 bits, then one division (sample variance) */
            __int128 num = (__int128)n * ss - (__int128)s * s;
            double var = (double)num / ((double)n * (double)(n - 1)) / (scale * scale);
            emit(r, v->name, "var", json_real(var), NULL);
            emit(r, v->name, "sd", json_real(sqrt(var > 0 ? var : 0)), NULL);
        }
    } else {
        static const char *const st[] = {"sum", "mean", "var", "sd"};
        for (int k = 0; k < 4; k++)
            suppressed(r, v->name, st[k], st[k]);
    }
    if (v->nfine) {
        static const char *const qn[] = {"q25", "q50", "q75"};
        static const double qp[] = {0.25, 0.5, 0.75};
        int64_t nf = 0; /* under noise the fine bins' own total, not the noised count */
        for (size_t b = 0; r->dp && b < v->nfine + 2; b++)
            nf += count_of(r, v->c_fine + b) > 0 ? count_of(r, v->c_fine + b) : 0;
        for (int k = 0; k < 3; k++) {
            double x;
            if (has_n && n > 0 && quantile(r, v, r->dp ? nf : n, qp[k], &x) == 0)
                /* under noise the binning's bound alone would understate the error: it is
                 * kept apart, and no bound is claimed */
                emit(r, v->name, qn[k], json_real(x),
                     json_pack("{s:f}", r->dp ? "bound_binning" : "bound",
                               v->quantiles.width / 2));
            else
                suppressed(r, v->name, qn[k], has_n ? "outside the declared range" : qn[k]);
        }
    }
    for (size_t b = 0; b < (v->nhist ? v->nhist + 2 : 0); b++) {
        double lo = b == 0 ? -INFINITY : v->hist.min + (double)(b - 1) * v->hist.width;
        double hi = b == v->nhist + 1 ? INFINITY : v->hist.min + (double)b * v->hist.width;
        char name[96];
        snprintf(name, sizeof name, "[%g, %g)", lo, hi);
        json_t *bin = json_pack("{s:o, s:o}", "lo", isinf(lo) ? json_string("-inf") : json_real(lo),
                                "hi", isinf(hi) ? json_string("inf") : json_real(hi));
        count_cell(r, v->c_hist + b, v->name, "hist", name, json_pack("{s:o}", "bin", bin));
    }
}

static void categorical(rel *r, const st_var *v)
{
    count_cell(r, v->c_count, v->name, "count", "count", NULL);
    count_cell(r, v->c_missing, v->name, "missing", "missing", NULL);
    for (size_t k = 0; k <= v->nval; k++) {
        const char *val = k < v->nval ? v->values.items[k] : "(other)";
        count_cell(r, v->c_val + k, v->name, "hist", val, json_pack("{s:s}", "category", val));
    }
}

static void crosstab(rel *r, const st_xtab *x)
{
    const st_var *v = r->q->c.variables.items;
    const st_var *vr = &v[x->vr], *vc = &v[x->vc];
    char var[2 * ST_NAME + 8];
    snprintf(var, sizeof var, "%s x %s", vr->name, vc->name);
    for (size_t a = 0; a < vr->nval; a++)
        for (size_t b = 0; b < vc->nval; b++) {
            char name[2 * ST_NAME + 8];
            snprintf(name, sizeof name, "%s=%s, %s=%s", vr->name, vr->values.items[a], vc->name,
                     vc->values.items[b]);
            count_cell(r, x->c_cells + a * vc->nval + b, var, "crosstab", name,
                       json_pack("{s:s, s:s}", "row", vr->values.items[a], "col",
                                 vc->values.items[b]));
        }
}

/* Kaplan–Meier from per-bin events and censorings: n_j = N - Σ_{i<j} (d_i + c_i),
 * S_j = Π_{i<=j} (1 - d_i / n_i); the 95% band is Greenwood's variance on the log(-log S)
 * scale (Kalbfleisch & Prentice; lifelines' default). One object per bin with events, up to
 * the first bin a site suppressed (its at-risk set fell below the minimum). */
static void km(rel *r, const st_surv *s)
{
    if (!count_cell(r, s->c_n, s->name, "count", "count", NULL))
        return;
    int64_t risk = count_of(r, s->c_n);
    double surv = 1, gw = 0;
    for (size_t j = 0; j < s->nbins; j++) {
        size_t d = s->c_bins + 2 * j;
        if (flagged(r, d) || flagged(r, d + 1)) {
            char name[64];
            snprintf(name, sizeof name, "t >= %g (at risk below the minimum cell size)",
                     (double)j * s->width);
            suppressed(r, s->name, "km", name);
            return;
        }
        int64_t ev = count_of(r, d), ce = count_of(r, d + 1);
        if (r->dp) { /* post-processing of noised counts: 0 <= events <= at risk */
            ev = ev < 0 ? 0 : ev > risk ? (risk > 0 ? risk : 0) : ev;
            ce = ce < 0 ? 0 : ce;
        }
        if (ev > 0 && risk > 0) {
            surv *= 1.0 - (double)ev / (double)risk;
            gw = risk > ev ? gw + (double)ev / ((double)risk * (double)(risk - ev)) : INFINITY;
            double lo = surv, hi = surv;
            if (surv > 0 && surv < 1 && isfinite(gw)) {
                double z = 1.959963984540054 * sqrt(gw) / fabs(log(surv));
                lo = pow(surv, exp(z));
                hi = pow(surv, exp(-z));
            }
            emit(r, s->name, "km", json_real(surv),
                 json_pack("{s:f, s:f, s:f, s:I, s:I, s:I}", "time", (double)j * s->width, "lower",
                           lo, "upper", hi, "at_risk", (json_int_t)risk, "events", (json_int_t)ev,
                           "censored", (json_int_t)ce));
        }
        risk -= ev + ce;
    }
}

int ff_stats_release(const ff_stats_query *q, const uint32_t *lanes, const char *site,
                     json_t *results, json_t *sup)
{
    return ff_stats_release_noised(q, lanes, site, 0.0, 0.0, 0.0, results, sup);
}

int ff_stats_release_noised(const ff_stats_query *q, const uint32_t *lanes, const char *site,
                            double var, double eps, double delta, json_t *results, json_t *sup)
{
    rel r = {q, lanes, site, results, sup, var > 0 && q->sens, var, eps, delta};
    count_cell(&r, q->c_cohort, "patients", "count", "count", NULL);
    const st_var *v = q->c.variables.items;
    for (size_t i = 0; i < q->c.variables.count; i++) {
        if (v[i].kind == ST_NUMERIC)
            numeric(&r, &v[i]);
        else
            categorical(&r, &v[i]);
    }
    const st_xtab *x = q->c.crosstabs.items;
    for (size_t i = 0; i < q->c.crosstabs.count; i++)
        crosstab(&r, &x[i]);
    const st_surv *s = q->c.survival.items;
    for (size_t i = 0; i < q->c.survival.count; i++)
        km(&r, &s[i]);
    return FF_OK;
}
