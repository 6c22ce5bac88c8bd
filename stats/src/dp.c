/* Differential privacy of a statistics query (docs/statistics.md, "Noise"): the noise
 * calibrated to the query's declared ε, added at the site in the integer domain of secure
 * aggregation, and the rounds a site charges to its privacy ledger.
 *
 * Every cell j is scaled by its own sensitivity s_j (1 for counts), so one patient moves at
 * most `touched` = m scaled cells by at most 1 each: the release vector's L2 sensitivity is
 * √m. Each lane then gets discrete Gaussian noise of variance s_j² V:
 *  - pooled, under secure aggregation: each site adds a share with V = σ²/t, t the
 *    threshold (no decoded sum holds fewer than t sites' inputs, so the sum carries at least
 *    σ²). The sum of t discrete Gaussians is accounted with Kairouz, Liu, Steinke 2021
 *    Prop. 14 (ff_privacy_ddg_rdp with integer inputs: Δ = √m exactly, dimension m, since
 *    cells a patient does not touch contribute no divergence);
 *  - per site (the site's own results): V = σ², the Gaussian mechanism's RDP α m / (2σ²)
 *    (the discrete Gaussian's RDP is at most the continuous one's: Canonne, Kamath, Steinke
 *    2020 Thm 4).
 * σ is the smallest (bisection) whose pooled ε at the query's δ is at most its ε. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats_internal.h"

#define DP_DEN 4096u                  /* variances are num / DP_DEN */
#define DP_MAX_VAR 1099511627776.0    /* 2^40: the sampler's range of σ² */

static void ledger_orders(ff_privacy_accountant *acc)
{
    double orders[FF_PRIVACY_MAX_ORDERS];
    size_t n = ff_privacy_orders_dp_accounting(orders);
    /* the orders are valid by construction; init cannot fail */
    if (ff_privacy_accountant_init(acc, orders, n, FF_PRIVACY_SERIES_DP_ACCOUNTING) != FF_OK)
        acc->n = 0;
}

static uint64_t share_num(double sigma, int64_t t)
{
    return (uint64_t)ceil(sigma * sigma * DP_DEN / (double)t);
}

/* ε at the query's δ of the pooled release with noise σ over t shares. */
static int pooled_eps(const ff_stats_dp *dp, uint64_t num, double *eps)
{
    ff_privacy_round r;
    ff_stats_dp d = *dp;
    d.share_num = num;
    ff_stats_dp_round(&d, 0, 0, d.shares, &r);
    ff_privacy_ddg_params p = {.clip_norm = r.clip_norm, .gamma = r.ddg_gamma, .beta = 0,
                               .sigma = r.ddg_sigma, .dim = r.ddg_dim, .survivors = r.survivors,
                               .integer = 1};
    ff_privacy_accountant acc;
    ledger_orders(&acc);
    double order;
    int rc = ff_privacy_accountant_add_ddg(&acc, &p, 1.0, 1);
    if (rc == FF_OK)
        rc = ff_privacy_accountant_epsilon(&acc, dp->delta, FF_PRIVACY_CONV_IMPROVED, eps, &order);
    return rc;
}

int ff_stats_dp_plan(const ff_stats_query *q, int64_t shares, ff_stats_dp *dp)
{
    memset(dp, 0, sizeof *dp);
    if (!(q->c.privacy.epsilon > 0))
        return FF_OK;
    if (shares < 1)
        return ff_error(FF_EINVAL, "statistics privacy: %lld shares", (long long)shares);
    dp->on = 1;
    dp->epsilon = q->c.privacy.epsilon;
    dp->delta = q->c.privacy.delta;
    dp->touched = q->touched;
    dp->shares = shares;
    dp->den = DP_DEN;
    /* the sampler of KLS21's accounting needs a share std of at least 1/2 */
    double lo = 0.5 * sqrt((double)shares), hi = 1e6, e;
    int rc = pooled_eps(dp, share_num(lo, shares), &e);
    if (rc == FF_OK && e > dp->epsilon) {
        rc = pooled_eps(dp, share_num(hi, shares), &e);
        if (rc == FF_OK && e > dp->epsilon)
            return ff_error(FF_ECONFIG, "%s: privacy.epsilon %g is out of reach (even noise "
                            "1e6 gives %g)", q->c.name, dp->epsilon, e);
        for (int it = 0; rc == FF_OK && it < 200 && hi - lo > 1e-9 * hi; it++) {
            double mid = 0.5 * (lo + hi);
            rc = pooled_eps(dp, share_num(mid, shares), &e);
            if (e <= dp->epsilon)
                hi = mid;
            else
                lo = mid;
        }
        lo = hi;
    }
    if (rc != FF_OK)
        return rc;
    dp->sigma = lo;
    dp->share_num = share_num(lo, shares);
    dp->site_num = (uint64_t)ceil(lo * lo * DP_DEN);
    for (size_t i = 0; i < q->ncells; i++) {
        double s = (double)q->sens[i];
        if (s * s * (double)dp->site_num / DP_DEN >= DP_MAX_VAR)
            return ff_error(FF_ECONFIG, "%s: under privacy a sum of squares of sensitivity %.3g "
                            "needs noise beyond the sampler's range (variance 2^40): narrow the "
                            "variable's min/max or lower its decimals", q->c.name, s);
    }
    rc = pooled_eps(dp, dp->share_num, &dp->eps_pooled);
    ff_privacy_accountant acc;
    ledger_orders(&acc);
    ff_privacy_round r;
    ff_stats_dp_round(dp, 1, 0, 1, &r);
    double order;
    if (rc == FF_OK)
        rc = ff_privacy_accountant_add_sgm(&acc, 1.0, r.sigma, 1);
    if (rc == FF_OK)
        rc = ff_privacy_accountant_epsilon(&acc, dp->delta, FF_PRIVACY_CONV_IMPROVED,
                                           &dp->eps_site, &order);
    return rc;
}

void ff_stats_dp_round(const ff_stats_dp *dp, int per_site, int64_t round, int64_t sites,
                       ff_privacy_round *r)
{
    memset(r, 0, sizeof *r);
    r->round = round;
    r->level = FF_PRIVACY_LEVEL_RECORD;
    r->q = 1.0;
    r->steps = 1;
    r->clip_norm = sqrt((double)dp->touched);
    if (per_site) {
        r->mechanism = FF_PRIVACY_MECH_GAUSSIAN;
        r->sigma = sqrt((double)dp->site_num / dp->den) / r->clip_norm;
        return;
    }
    r->mechanism = FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN;
    r->sites = sites;
    r->survivors = dp->shares;
    r->ddg_sigma = sqrt((double)dp->share_num / dp->den);
    r->ddg_gamma = 1.0;
    r->ddg_beta = 0.0;
    r->ddg_dim = dp->touched;
    r->ddg_integer = 1;
}

/* The wide cell at lanes l (ST_LIMBS 16-bit limbs of a two's complement int64) plus z. */
static void wide_add(uint32_t *l, int64_t z)
{
    uint64_t u = 0;
    for (int k = 0; k < ST_LIMBS; k++)
        u |= (uint64_t)(l[k] & 0xFFFFu) << (16 * k);
    u += (uint64_t)z;
    for (int k = 0; k < ST_LIMBS; k++)
        l[k] = (uint32_t)((u >> (16 * k)) & 0xFFFFu);
}

int ff_stats_dp_noise(const ff_stats_query *q, const ff_stats_dp *dp, int per_site, ff_rng *rng,
                      uint32_t *lanes)
{
    if (!dp->on)
        return FF_OK;
    uint64_t num = per_site ? dp->site_num : dp->share_num;
    for (size_t i = 0; i < q->ncells; i++) {
        const st_cell *c = &q->cells[i];
        size_t w = c->kind == ST_CELL_WIDE ? ST_LIMBS : 1;
        if (c->kind != ST_CELL_FINE && lanes[c->lane + w])
            continue; /* suppressed: leaves as 0, and is not released anyway */
        int64_t z;
        int rc = ff_privacy_discrete_gaussian(rng, num * q->sens[i] * q->sens[i], dp->den, &z);
        if (rc != FF_OK)
            return ff_error_prefix(rc, "statistics noise: ");
        if (c->kind == ST_CELL_WIDE)
            wide_add(lanes + c->lane, z);
        else
            lanes[c->lane] += (uint32_t)z; /* modulo 2^32: the sum is decoded as signed */
    }
    return FF_OK;
}

int ff_stats_query_private(const ff_stats_query *q) { return q->c.privacy.epsilon > 0; }

int ff_stats_dp_cost(const ff_stats_dp *dp, int per_site, double *eps)
{
    *eps = 0;
    if (!dp->on)
        return FF_OK;
    ff_privacy_accountant acc;
    ledger_orders(&acc);
    ff_privacy_round r;
    ff_stats_dp_round(dp, 0, 0, dp->shares, &r);
    ff_privacy_ddg_params p = {.clip_norm = r.clip_norm, .gamma = r.ddg_gamma, .beta = 0,
                               .sigma = r.ddg_sigma, .dim = r.ddg_dim, .survivors = r.survivors,
                               .integer = 1};
    int rc = ff_privacy_accountant_add_ddg(&acc, &p, 1.0, 1);
    ff_stats_dp_round(dp, 1, 0, 1, &r);
    if (rc == FF_OK && per_site)
        rc = ff_privacy_accountant_add_sgm(&acc, 1.0, r.sigma, 1);
    double order;
    if (rc == FF_OK)
        rc = ff_privacy_accountant_epsilon(&acc, dp->delta, FF_PRIVACY_CONV_IMPROVED, eps, &order);
    return rc;
}
