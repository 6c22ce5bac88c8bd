/* SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated
 * Learning", ICML 2020, Algorithm 1 with every site in every round) and cyclic weight
 * transfer (Chang et al., JAMIA 2018).
 *
 * SCAFFOLD's vector is [x | c]: the model, then the server control variate. The averaged
 * update is [Δx | Δc] (the sites' y_i − x and c_i⁺ − c_i, example-weighted like any update,
 * so both halves pass through secure aggregation):  x ← x + η Δx,  c ← c + Δc.
 * Cyclic's server step is FedAvg's (fedavg.c); here is its schedule of sites. */
#include "../internal.h"

static void scaffold_apply(ff_strategy *s, float *w, const float *d)
{
    const size_t h = s->n / 2;
    const double eta = s->cfg.server_lr;
    for (size_t j = 0; j < h; j++)
        w[j] = (float)((double)w[j] + eta * (double)d[j]);
    for (size_t j = h; j < s->n; j++)
        w[j] = (float)((double)w[j] + (double)d[j]);
}

const coord_strategy_ops coord_scaffold_ops = {"scaffold", 0, scaffold_apply};

int ff_strategy_cyclic_site(uint64_t seed, int64_t round, size_t nsites)
{
    if (nsites == 0 || round < 1)
        return -1;
    const uint64_t cycle = (uint64_t)(round - 1) / nsites;
    const size_t pos = (size_t)((uint64_t)(round - 1) % nsites);
    /* Fisher-Yates on a stream of its own per cycle: stateless, so a resumed run picks the
     * same site. Sites up to FF_COORD_MAX_SITES. */
    int perm[FF_COORD_MAX_SITES];
    if (nsites > FF_COORD_MAX_SITES)
        return -1;
    for (size_t i = 0; i < nsites; i++)
        perm[i] = (int)i;
    ff_rng r;
    ff_rng_init(&r, seed, 0xc7c1e000ULL + cycle);
    for (size_t i = nsites - 1; i > 0; i--) {
        size_t j = ff_rng_below(&r, (uint32_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return perm[pos];
}
