/* The strategy interface. Every strategy first takes the example-weighted mean of the sites'
 * updates Δ_i = w_i − w (FedAvg, McMahan et al. 2017), here; then its module under
 * strategies/ applies its server step (FedAvg/FedProx: fedavg.c; FedAdam, FedYogi,
 * FedAdagrad: adaptive.c). The formulas are in the header and in docs/federation.md. */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Indexed by ff_strategy_kind. */
static const coord_strategy_ops *const strategy_ops[FF_STRATEGY_COUNT] = {
    &coord_fedavg_ops, &coord_fedprox_ops, &coord_fedadam_ops, &coord_fedyogi_ops,
    &coord_fedadagrad_ops,
};

int ff_strategy_init(ff_strategy *s, const ff_strategy_config *cfg, size_t n)
{
    memset(s, 0, sizeof *s);
    if (cfg->name < 0 || cfg->name >= FF_STRATEGY_COUNT)
        return ff_error(FF_EINVAL, "strategy: unknown kind %d", cfg->name);
    s->kind = cfg->name;
    s->cfg = *cfg;
    s->n = n;
    if (!strategy_ops[s->kind]->moments)
        return FF_OK;
    s->m = ff_calloc(n ? n : 1, sizeof(float));
    s->v = ff_alloc((n ? n : 1) * sizeof(float));
    if (!s->m || !s->v) {
        ff_strategy_free(s);
        return ff_error(FF_ENOMEM, "strategy %s: no memory for %zu moments", ff_strategy_name(cfg->name), n);
    }
    /* v₋₁ ≥ τ² in the paper's Algorithm 2: with v starting at τ², the first step is bounded
     * by η·(1−β1)|Δ|/(√((1−β2)Δ² + β2τ²) + τ) instead of exploding on tiny Δ. */
    float v0 = (float)(cfg->tau * cfg->tau);
    for (size_t j = 0; j < n; j++)
        s->v[j] = v0;
    return FF_OK;
}

void ff_strategy_free(ff_strategy *s)
{
    ff_free(s->m);
    ff_free(s->v);
    s->m = s->v = NULL;
}

/* acc = Σ_i w_i u_i in double, sites in the given order, site-major (a vectorisable axpy per
 * site). Every element sees the same sequence of additions whatever order the updates
 * arrived in, which the bit-identical resume guarantee needs. */
void coord_weighted_sum(double *acc, const float *const *updates, const double *weights,
                        size_t k, size_t n)
{
    memset(acc, 0, n * sizeof(double));
    for (size_t i = 0; i < k; i++) {
        const double w = weights[i];
        const float *u = updates[i];
        for (size_t j = 0; j < n; j++)
            acc[j] += w * (double)u[j];
    }
}

int ff_strategy_aggregate(float *out, const float *const *updates, const double *weights,
                          size_t k, size_t n)
{
    if (k == 0)
        return ff_error(FF_EINVAL, "aggregate: no updates");
    double total = 0;
    for (size_t i = 0; i < k; i++) {
        if (!(weights[i] > 0) || !isfinite(weights[i]))
            return ff_error(FF_EINVAL, "aggregate: weight %zu is %g (must be finite and > 0)", i,
                            weights[i]);
        total += weights[i];
    }
    double *acc = ff_alloc((n ? n : 1) * sizeof(double));
    if (!acc)
        return ff_error(FF_ENOMEM, "aggregate: no memory for %zu values", n);
    coord_weighted_sum(acc, updates, weights, k, n);
    for (size_t j = 0; j < n; j++)
        out[j] = (float)(acc[j] / total);
    ff_free(acc);
    return FF_OK;
}

void ff_strategy_apply(ff_strategy *s, float *w, const float *d)
{
    strategy_ops[s->kind]->apply(s, w, d);
    s->steps++;
}
