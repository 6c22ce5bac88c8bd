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
    &coord_fedadagrad_ops, &coord_scaffold_ops, &coord_cyclic_ops,
};

int ff_strategy_init(ff_strategy *s, const ff_strategy_config *cfg, size_t n)
{
    memset(s, 0, sizeof *s);
    if (cfg->name < 0 || cfg->name >= FF_STRATEGY_COUNT)
        return ff_error(FF_EINVAL, "strategy: unknown kind %d", cfg->name);
    s->kind = cfg->name;
    s->cfg = *cfg;
    s->n = n;
    memset(&s->cfg.local, 0, sizeof s->cfg.local); /* borrowed by the caller's config */
    if (s->kind == FF_STRATEGY_SCAFFOLD && n % 2 != 0)
        return ff_error(FF_EINVAL, "strategy scaffold: the vector must be [model | control "
                                   "variate], an even length, not %zu", n);
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
    ff_free(s->local);
    s->m = s->v = NULL;
    s->local = NULL;
}

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int ff_strategy_set_local(ff_strategy *s, const ff_coord_tensor_ref *t, size_t nt,
                          const ff_cfg_strlist *prefixes)
{
    if (!prefixes || prefixes->count == 0)
        return FF_OK;
    unsigned char *mask = ff_calloc(s->n ? s->n : 1, 1);
    if (!mask)
        return ff_error(FF_ENOMEM, "strategy.local: no memory");
    for (size_t p = 0; p < prefixes->count; p++) {
        size_t hits = 0;
        for (size_t i = 0; i < nt; i++) {
            if (!has_prefix(t[i].name, prefixes->items[p]) || t[i].offset + t[i].numel > s->n)
                continue;
            memset(mask + t[i].offset, 1, t[i].numel);
            hits++;
        }
        if (!hits) {
            ff_free(mask);
            return ff_error(FF_ENOTFOUND, "strategy.local: '%s' matches no tensor of the model",
                            prefixes->items[p]);
        }
    }
    ff_free(s->local);
    s->local = mask;
    return FF_OK;
}

void ff_strategy_mask_local(const ff_strategy *s, float *d)
{
    if (!s->local)
        return;
    for (size_t j = 0; j < s->n; j++)
        if (s->local[j])
            d[j] = 0.0f;
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
