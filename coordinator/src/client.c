/* Client-side helpers that need no model: update computation and checks, the FedProx
 * gradient term, and the client's round state. */
#include "ff/coordinator.h"

#include <math.h>
#include <string.h>

static const char *const refusal_names[FF_REFUSE_COUNT] = {
    "none", "unknown site", "not selected", "stale round", "wrong phase", "late",
    "duplicate", "wrong size", "non-finite values", "bad example count", "rejected",
};

const char *ff_refusal_name(int reason)
{
    if (reason < 0 || reason >= FF_REFUSE_COUNT)
        return "?";
    return refusal_names[reason];
}

void ff_fed_update_compute(float *update, const float *params, const float *global, size_t n)
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

int ff_fed_update_check(const float *update, size_t n, size_t expected, double weight,
                        size_t *bad_index)
{
    if (n != expected)
        return FF_REFUSE_WRONG_SIZE;
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(update[j])) {
            if (bad_index)
                *bad_index = j;
            return FF_REFUSE_NONFINITE;
        }
    }
    if (!isfinite(weight) || !(weight > 0))
        return FF_REFUSE_BAD_WEIGHT;
    return FF_REFUSE_NONE;
}

void ff_fedclient_init(ff_fedclient_state *s)
{
    memset(s, 0, sizeof *s);
}

int ff_fedclient_begin(ff_fedclient_state *s, int64_t round, int64_t attempt)
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

int ff_fedclient_done(ff_fedclient_state *s, int64_t round)
{
    if (!s->busy || s->round != round)
        return ff_error(FF_ESTATE, "update for round %lld: no task of that round is in progress",
                        (long long)round);
    s->busy = 0;
    s->last_done = round;
    return FF_OK;
}

void ff_fed_keep_local(float *params, const float *global, const unsigned char *local, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!local || !local[j])
            params[j] = global[j];
}
