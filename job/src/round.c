/* The site's side of a round, with no model: its update, the FedProx and SCAFFOLD client
 * steps, per-site layers, and the round state that refuses stale or replayed tasks. */
#include "ff/job.h"

#include <string.h>

void ff_round_update(float *update, const float *params, const float *global, size_t n)
{
    for (size_t j = 0; j < n; j++)
        update[j] = params[j] - global[j];
}

/* FedProx (Li et al., MLSys 2020) minimises F_k(w) + μ/2 ‖w − w_global‖² locally; the
 * gradient of the proximal term is μ (w − w_global), added to the task gradient. */
void ff_fedprox_grad(const float *params, const float *global, float mu, float *grads, size_t n)
{
    if (mu == 0.0f)
        return;
    for (size_t j = 0; j < n; j++)
        grads[j] += mu * (params[j] - global[j]);
}

void ff_round_init(ff_round_state *s)
{
    memset(s, 0, sizeof *s);
}

int ff_round_begin(ff_round_state *s, int64_t round, int64_t attempt)
{
    if (round < 1 || attempt < 0)
        return ff_error(FF_EINVAL, "task: round %lld attempt %lld is not valid",
                        (long long)round, (long long)attempt);
    if (round <= s->last_done)
        return ff_error(FF_ESTATE,
                        "task for round %lld refused: stale, this site already sent its update "
                        "for round %lld",
                        (long long)round, (long long)s->last_done);
    if (s->round > round || (s->round == round && s->attempt > attempt))
        return ff_error(FF_ESTATE,
                        "task for round %lld attempt %lld refused: stale, round %lld attempt "
                        "%lld is newer",
                        (long long)round, (long long)attempt, (long long)s->round,
                        (long long)s->attempt);
    s->round = round;
    s->attempt = attempt;
    s->busy = 1;
    return FF_OK;
}

int ff_round_done(ff_round_state *s, int64_t round)
{
    if (!s->busy || s->round != round)
        return ff_error(FF_ESTATE, "update for round %lld: no task of that round is in progress",
                        (long long)round);
    s->busy = 0;
    s->last_done = round;
    return FF_OK;
}

void ff_round_keep_local(float *params, const float *global, const unsigned char *local, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!local || !local[j])
            params[j] = global[j];
}

/* SCAFFOLD (Karimireddy et al., ICML 2020, Algorithm 1): the client's corrected step. */
void ff_scaffold_correct(float *grads, const float *c, const float *ci, size_t n)
{
    for (size_t j = 0; j < n; j++)
        grads[j] += c[j] - ci[j];
}

/* Option II of the paper's step 12: c_i⁺ = c_i − c + (x − y_i) / (K η_l). */
void ff_scaffold_control_delta(float *dci, float *ci, const float *c, const float *x,
                               const float *y, int64_t K, double lr, size_t n)
{
    const double k = 1.0 / ((double)K * lr);
    for (size_t j = 0; j < n; j++) {
        double nci = (double)ci[j] - c[j] + k * ((double)x[j] - y[j]);
        dci[j] = (float)(nci - ci[j]);
        ci[j] = (float)nci;
    }
}
