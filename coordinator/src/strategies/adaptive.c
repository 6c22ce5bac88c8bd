/* FedAdagrad, FedYogi, FedAdam: Reddi et al., "Adaptive Federated Optimization", ICLR 2021,
 * Algorithm 2, with Δ (the averaged client update) as the negated pseudo-gradient and no
 * bias correction:
 *   m ← β1 m + (1 − β1) Δ
 *   Adagrad: v ← v + Δ²;  Yogi: v ← v − (1 − β2) Δ² sign(v − Δ²);  Adam: v ← β2 v + (1 − β2) Δ²
 *   w ← w + η m / (√v + τ)
 * m and v are float vectors (checkpointed); the step is computed in double. */
#include "../internal.h"

#include <math.h>

enum { RULE_ADAGRAD, RULE_YOGI, RULE_ADAM };

static inline double next_v(int rule, double v, double d2, double b2)
{
    switch (rule) {
    case RULE_ADAGRAD: return v + d2;
    case RULE_YOGI: return v - (1 - b2) * d2 * (v > d2 ? 1.0 : (v < d2 ? -1.0 : 0.0));
    default: return b2 * v + (1 - b2) * d2;
    }
}

static inline void adaptive_apply(ff_strategy *s, float *w, const float *d, int rule)
{
    const double eta = s->cfg.server_lr, b1 = s->cfg.beta1, b2 = s->cfg.beta2, tau = s->cfg.tau;
    for (size_t j = 0; j < s->n; j++) {
        double dj = d[j];
        double m = b1 * s->m[j] + (1 - b1) * dj;
        double v = next_v(rule, s->v[j], dj * dj, b2);
        s->m[j] = (float)m;
        s->v[j] = (float)v;
        w[j] = (float)((double)w[j] + eta * m / (sqrt(v) + tau));
    }
}

/* One loop per rule, so the branch on the rule is out of the inner loop after inlining. */
static void adagrad_apply(ff_strategy *s, float *w, const float *d) { adaptive_apply(s, w, d, RULE_ADAGRAD); }
static void yogi_apply(ff_strategy *s, float *w, const float *d) { adaptive_apply(s, w, d, RULE_YOGI); }
static void adam_apply(ff_strategy *s, float *w, const float *d) { adaptive_apply(s, w, d, RULE_ADAM); }

const coord_strategy_ops coord_fedadam_ops = {"fedadam", 1, adam_apply};
const coord_strategy_ops coord_fedyogi_ops = {"fedyogi", 1, yogi_apply};
const coord_strategy_ops coord_fedadagrad_ops = {"fedadagrad", 1, adagrad_apply};
