/* FedAvg (McMahan et al. 2017) and FedProx (Li et al. 2020) on the server: w ← w + η Δ.
 * FedProx differs only on the client (ff_fedprox_grad). No state. */
#include "../internal.h"

static void fedavg_apply(ff_strategy *s, float *w, const float *d)
{
    const double eta = s->cfg.server_lr;
    for (size_t j = 0; j < s->n; j++)
        w[j] = (float)((double)w[j] + eta * (double)d[j]);
}

const coord_strategy_ops coord_fedavg_ops = {"fedavg", 0, fedavg_apply};
const coord_strategy_ops coord_fedprox_ops = {"fedprox", 0, fedavg_apply};
/* Cyclic: the round's one site trained from w, so w ← w + η Δ is FedAvg's step. */
const coord_strategy_ops coord_cyclic_ops = {"cyclic", 0, fedavg_apply};
