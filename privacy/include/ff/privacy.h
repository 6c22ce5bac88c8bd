/*
 * ff/privacy.h — differential privacy for fedfuse: an RDP accountant that matches the
 * maintained libraries (dp_accounting, Opacus, TensorFlow Privacy), the mechanisms on flat
 * float vectors (DP-SGD building blocks, DP-FedAvg, the distributed discrete Gaussian of
 * Kairouz, Liu and Steinke 2021), the `privacy:` section of the training plan and a ledger
 * that records every round so ε can be recomputed independently.
 *
 * Usage (record-level DP-SGD at a hospital):
 *
 *     ff_privacy_accountant acc;
 *     double orders[FF_PRIVACY_MAX_ORDERS];
 *     size_t n = ff_privacy_orders_dp_accounting(orders);
 *     if (ff_privacy_accountant_init(&acc, orders, n, FF_PRIVACY_SERIES_DP_ACCOUNTING))
 *         return fail();
 *     if (ff_privacy_accountant_add_sgm(&acc, q, sigma, steps))   // q = batch / patients
 *         return fail();
 *     double eps, order;
 *     if (ff_privacy_accountant_epsilon(&acc, 1e-5, FF_PRIVACY_CONV_IMPROVED, &eps, &order))
 *         return fail();
 *
 *     // per step: sample, clip, sum, noise
 *     ff_privacy_poisson_sample(&rng, n_patients, q, idx, &batch);
 *     ff_privacy_clip_scales(norms, batch, clip, scales);  // norms from ghost clipping
 *     ... sum of scales[i] * g_i into sum ...
 *     ff_privacy_gaussian_noise(&rng, sum, dim, sigma * clip);
 *
 * Conventions: fallible functions return FF_OK or a negative FF_E... with a message naming
 * the parameter at fault; on error outputs are untouched unless stated.
 */
#ifndef FF_PRIVACY_H
#define FF_PRIVACY_H

#include <stddef.h>
#include <stdint.h>

#include "ff/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* RDP accountant                                                                            */
/* ---------------------------------------------------------------------------------------- */

#define FF_PRIVACY_MAX_ORDERS 256

/* How A_α is summed at fractional orders α (integer orders are the exact binomial sum in
 * every library and here):
 *  - DP_ACCOUNTING: the series of Mironov, Talwar and Zhang (2019, Sec. 3.3) with every
 *    term taken positive (|binom(α, i)|), as Google's dp_accounting computes it since 2024;
 *    an upper bound on A_α, hence conservative. The default.
 *  - TF_PRIVACY: the same series with signed binomial coefficients, as TensorFlow Privacy's
 *    rdp_accountant._compute_log_a_frac and Opacus' analysis/rdp.py compute it; converges to
 *    the exact A_α (checked against numerical integration in the tests). */
typedef enum {
    FF_PRIVACY_SERIES_DP_ACCOUNTING = 0,
    FF_PRIVACY_SERIES_TF_PRIVACY = 1
} ff_privacy_series;

/* RDP → (ε, δ):
 *  - IMPROVED: ε = rdp + log1p(−1/α) − (log δ + log α)/(α − 1) (Balle et al. 2020 Thm 21;
 *    Canonne, Kamath, Steinke 2020 Prop. 12), orders α ≤ 1.01 skipped and ε = 0 when
 *    δ² + expm1(−rdp) > 0, as dp_accounting.rdp.compute_epsilon; Opacus ≥ 1.0 uses the same
 *    formula.
 *  - CLASSIC: ε = rdp − log δ / (α − 1) (Mironov 2017 Prop. 3). */
typedef enum { FF_PRIVACY_CONV_IMPROVED = 0, FF_PRIVACY_CONV_CLASSIC = 1 } ff_privacy_conversion;

/* Order lists of the reference libraries, written into out[FF_PRIVACY_MAX_ORDERS]; return
 * the count. dp_accounting: 1.1, 1.2, …, 10.9, 11, …, 63, 128, 256, 512, 1024 (the default).
 * Opacus' RDPAccountant.DEFAULT_ALPHAS: 1.1, …, 10.9, 12, …, 63. TF Privacy's
 * compute_dp_sgd_privacy: 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, 5, …, 63, 128, 256,
 * 512. Values are computed exactly as the Python lists do (1 + x / 10.0). */
size_t ff_privacy_orders_dp_accounting(double *out);
size_t ff_privacy_orders_opacus(double *out);
size_t ff_privacy_orders_tf_privacy(double *out);
/* Parses "default" | "dp_accounting" | "opacus" | "tf_privacy" | "A,B,C" (each > 1). */
int ff_privacy_orders_parse(const char *spec, double *out, size_t *n) FF_WARN_UNUSED;

/* RDP of one step of the Poisson-sampled Gaussian mechanism (sampling rate q in [0, 1],
 * noise multiplier sigma > 0) at order alpha > 1. May be +inf (the order is then useless). */
int ff_privacy_rdp_sgm(double q, double sigma, double alpha, ff_privacy_series series,
                       double *rdp) FF_WARN_UNUSED;

/* Accumulated RDP at a fixed list of orders: composition is addition per order, across
 * steps, rounds and mechanisms. Plain data: copy it, save it. */
typedef struct {
    size_t n;
    double orders[FF_PRIVACY_MAX_ORDERS];
    double rdp[FF_PRIVACY_MAX_ORDERS];
    ff_privacy_series series;
} ff_privacy_accountant;

/* Orders must be > 1 and finite, 1 ≤ n ≤ FF_PRIVACY_MAX_ORDERS; RDP starts at zero. */
int ff_privacy_accountant_init(ff_privacy_accountant *acc, const double *orders, size_t n,
                               ff_privacy_series series) FF_WARN_UNUSED;
/* Composes `steps` steps of the sampled Gaussian mechanism. On error acc is unchanged. */
int ff_privacy_accountant_add_sgm(ff_privacy_accountant *acc, double q, double sigma,
                                  int64_t steps) FF_WARN_UNUSED;
/* Adds another accountant's RDP (same orders). */
int ff_privacy_accountant_merge(ff_privacy_accountant *acc,
                                const ff_privacy_accountant *other) FF_WARN_UNUSED;
/* The smallest ε over the orders for this δ in (0, 1), and the order reaching it
 * (ties: the first order in the list, as numpy.argmin). */
int ff_privacy_accountant_epsilon(const ff_privacy_accountant *acc, double delta,
                                  ff_privacy_conversion conv, double *eps,
                                  double *order) FF_WARN_UNUSED;

/* One-shot: ε after `steps` steps of the sampled Gaussian mechanism. */
int ff_privacy_epsilon_sgm(double q, double sigma, int64_t steps, double delta,
                           const double *orders, size_t n, ff_privacy_series series,
                           ff_privacy_conversion conv, double *eps,
                           double *order) FF_WARN_UNUSED;

/* The smallest noise multiplier σ (to relative 1e-9, rounded up) whose ε after `steps`
 * steps at rate q is ≤ target_eps, by bisection (ε is decreasing in σ). FF_ERANGE when
 * even σ = 1e4 does not reach the target. */
int ff_privacy_plan_sigma(double target_eps, double delta, double q, int64_t steps,
                          const double *orders, size_t n, ff_privacy_series series,
                          ff_privacy_conversion conv, double *sigma) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Distributed discrete Gaussian (Kairouz, Liu, Steinke 2021): accounting                     */
/* ---------------------------------------------------------------------------------------- */
/*
 * Each of n surviving sites adds N_Z(0, (sigma/gamma)²) in the integer domain, so the sum
 * carries n shares. KLS21 Thm 1 / Prop. 14 (simplified form, Eq. 17, no L1 term): the sum
 * is RDP at every real α ≥ 1 with
 *     rdp(α) = min( α Δ²/(2 n σ²) + τ d,  (α/2) (Δ/(√n σ) + √d τ)² ),
 *     τ = 10 Σ_{k=1}^{n−1} exp(−2π² (σ/γ)² k/(k+1)),
 * where Δ² bounds the squared L2 norm of a scaled, rotated, rounded update (KLS21 Thm 1):
 *     Δ² = min( (c + γ√d)², c² + γ²d/4 + √(2 log(1/β)) γ (c + γ√d/2) )   (β > 0),
 *     Δ² = (c + γ√d)²                                                  (β = 0).
 * Only survivors' noise counts: with fewer survivors the sum has less noise and the bound
 * is larger (the accountant is told `survivors`, never the planned number of sites).
 * Sampling of sites with q < 1 uses Zhu and Wang (2019) Thm 5 at order ⌈α⌉ (RDP grows with
 * α, so this is an upper bound); cross-silo rounds normally have q = 1.
 */
typedef struct {
    double clip_norm; /* c: L2 clip of each site's update, original units */
    double gamma;     /* granularity: values are divided by gamma before rounding */
    double beta;      /* conditional rounding: retry until norm ≤ bound (0 = unconditional) */
    double sigma;     /* per-site noise standard deviation, original units (σ/γ ≥ 1/2) */
    int64_t dim;      /* d: padded dimension (a power of two) */
    int64_t survivors;/* n: sites whose noise share is in the sum */
    int integer;      /* 1: the inputs are already integers in units of gamma (statistics
                       * lanes): no rotation and no rounding, so Δ = clip_norm exactly */
} ff_privacy_ddg_params;

int ff_privacy_ddg_rdp(const ff_privacy_ddg_params *p, double alpha,
                       double *rdp) FF_WARN_UNUSED;
/* Composes `rounds` rounds (site sampling rate q in (0, 1]). On error acc is unchanged. */
int ff_privacy_accountant_add_ddg(ff_privacy_accountant *acc, const ff_privacy_ddg_params *p,
                                  double q, int64_t rounds) FF_WARN_UNUSED;
/* Δ² above (squared L2 sensitivity of one site's scaled and rounded update, original
 * units; clip_norm² when p->integer), and τ. */
double ff_privacy_ddg_sensitivity_sq(const ff_privacy_ddg_params *p);
double ff_privacy_ddg_tau(const ff_privacy_ddg_params *p);

/* ---------------------------------------------------------------------------------------- */
/* Mechanisms on flat float vectors                                                          */
/* ---------------------------------------------------------------------------------------- */

/* L2 norm of x (accumulated in double). */
double ff_privacy_l2_norm(const float *x, size_t n);

/* Scales x in place to L2 norm ≤ clip (DP-FedAvg client clipping, McMahan et al. 2018);
 * returns the norm before clipping through *norm_before (may be NULL). FF_ENUMERIC on a
 * NaN/Inf entry (x untouched). */
int ff_privacy_clip(float *x, size_t n, double clip, double *norm_before) FF_WARN_UNUSED;

/* Adds N(0, std²) to each of x[0..n) from rng (Gaussian mechanism; std = σ·C). */
void ff_privacy_gaussian_noise(ff_rng *rng, float *x, size_t n, double std);

/* DP-SGD (Abadi et al. 2016) per-example clipping, in two forms:
 *  - from per-example norms (what ghost clipping gives for linear layers, without
 *    materialising gradients): scales[i] = min(1, clip / norms[i]) (a factor 4e-7 below
 *    the ratio when clipping, so float rounding cannot exceed clip); the model then
 *    accumulates Σ_i scales[i] g_i in a second backward pass;
 *  - from materialised per-example gradients grads[B][dim]: sum[dim] = Σ_i clip_C(g_i).
 * Norms must be finite and ≥ 0. */
int ff_privacy_clip_scales(const double *norms, size_t batch, double clip,
                           float *scales) FF_WARN_UNUSED;
int ff_privacy_clip_sum(const float *grads, size_t batch, size_t dim, double clip,
                        float *sum) FF_WARN_UNUSED;

/* A model that can produce per-example gradient norms implements this; the privacy code
 * calls it once per step and hands back scale factors (see ff_privacy_dpsgd_step). */
typedef int (*ff_privacy_norms_fn)(void *model, const uint32_t *idx, size_t batch,
                                   double *norms);
/* And then asks the model to accumulate Σ scales[i] g_i into sum[dim]. */
typedef int (*ff_privacy_accum_fn)(void *model, const uint32_t *idx, size_t batch,
                                   const float *scales, float *sum, size_t dim);

/* One DP-SGD gradient: Poisson sample from n_records at rate q (idx needs room for
 * n_records), norms → scales → clipped sum → + N(0, (σC)²) per coordinate. sum[dim] is
 * overwritten (the noisy sum; divide by the expected batch q·n_records to average).
 * *batch receives the sampled count. An empty batch still gets its noise. Allocates two
 * batch-sized scratch arrays per call. */
int ff_privacy_dpsgd_step(ff_rng *rng, size_t n_records, double q, double sigma, double clip,
                          void *model, ff_privacy_norms_fn norms_fn,
                          ff_privacy_accum_fn accum_fn, uint32_t *idx, size_t *batch,
                          float *sum, size_t dim) FF_WARN_UNUSED;

/* Poisson sampling: each index of [0, n) is taken independently with probability q, in
 * increasing order, into idx (room for n); the count into *count. */
int ff_privacy_poisson_sample(ff_rng *rng, size_t n, double q, uint32_t *idx,
                              size_t *count) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Distributed discrete Gaussian: the mechanism in the integer domain of secure aggregation  */
/* ---------------------------------------------------------------------------------------- */
/*
 * A site's pipeline (KLS21 Alg. 1), all sites sharing rotation_seed for the round:
 *     clip to c → pad to d = 2^k → rotate (x ↦ H D x / √d, D random ±1) → scale by 1/γ
 *     → conditional randomized rounding to Z^d (norm ≤ bound, else retry) → + N_Z(0, (σ/γ)²)
 *     per coordinate → reduce mod 2^bits (two's complement wrap)
 * Secure aggregation sums the vectors mod 2^bits; the server decodes the sum:
 *     map to signed [−2^(bits−1), 2^(bits−1)) → ·γ → unrotate → drop padding.
 */
typedef struct {
    double clip_norm;       /* c */
    double gamma;           /* γ */
    double beta;            /* conditional rounding parameter in [0, 1); 0 = plain */
    double sigma;           /* per-site noise std, original units */
    int bits;               /* modulus 2^bits, 2 ≤ bits ≤ 62 */
    uint64_t rotation_seed; /* shared by every site for this round */
} ff_privacy_ddg_config;

/* A granularity γ for `sites` sites, per-site noise std sigma_site, clip c and padded
 * dimension d so that the decoded sum fits the modulus with a 4-standard-deviation margin
 * (KLS21 Sec. 5, without assuming √n growth of the sum's norm):
 *     2 · 4 · sqrt(c² n²/d + n (γ²/4 + σ²)) / γ = 2^bits,
 * and at least sigma_site / 2^20 (the sampler's range for σ/γ). */
double ff_privacy_ddg_choose_gamma(double clip, double sigma_site, int64_t sites, size_t d,
                                   int bits);

/* Smallest power of two ≥ n. */
size_t ff_privacy_ddg_padded_dim(size_t n);

/* Randomised Hadamard rotation of x[d] in place (d a power of two): x ↦ H D x / √d with D
 * the ±1 diagonal drawn from seed; unrotate is the exact inverse (D H x / √d). Computed in
 * double. */
int ff_privacy_rotate(double *x, size_t d, uint64_t seed) FF_WARN_UNUSED;
int ff_privacy_unrotate(double *x, size_t d, uint64_t seed) FF_WARN_UNUSED;

/* Exact sampler of the discrete Gaussian N_Z(0, σ²) with σ² = num/den rational
 * (1 ≤ den ≤ 2^16, 1 ≤ num, num/den < 2^40): Canonne, Kamath, Steinke 2020 Alg. 3
 * (discrete Laplace proposals + Bernoulli(exp(−γ)) rejections), integer arithmetic only,
 * bits from rng. Proposals beyond 64 t at the largest σ (probability < e^-64; far less for
 * smaller σ) are rejected so the 128-bit arithmetic cannot overflow. */
int ff_privacy_discrete_gaussian(ff_rng *rng, uint64_t num, uint64_t den,
                                 int64_t *out) FF_WARN_UNUSED;
/* Bernoulli(exp(−n/d)) for integers n ≥ 0, d > 0 (CKS20 Alg. 1, exact), and the discrete
 * Laplace with scale t ≥ 1, P(x) ∝ exp(−|x|/t) (CKS20 Alg. 2 with s = 1, exact); exposed
 * for tests. */
int ff_privacy_bernoulli_exp(ff_rng *rng, uint64_t n, uint64_t d);
int64_t ff_privacy_discrete_laplace(ff_rng *rng, uint64_t t);

/* The site's side: x[n] (its model update, float) → out[d] of residues in [0, 2^bits).
 * noise_rng draws rounding and noise (private to the site). FF_ESTATE if conditional
 * rounding fails 1000 times. */
int ff_privacy_ddg_encode(const ff_privacy_ddg_config *cfg, ff_rng *noise_rng, const float *x,
                          size_t n, uint64_t *out, size_t d) FF_WARN_UNUSED;
/* The server's side: the modular sum sum[d] → y[n] (float, original units). */
int ff_privacy_ddg_decode(const ff_privacy_ddg_config *cfg, const uint64_t *sum, size_t d,
                          float *y, size_t n) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Configuration: the `privacy:` section of the training plan                                */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    FF_PRIVACY_MECH_GAUSSIAN = 0,                     /* coordinator adds noise */
    FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN = 1 /* sites add shares under secagg */
} ff_privacy_mechanism;

/* privacy.record: patient-level DP-SGD at each hospital. */
typedef struct {
    int enabled;             /* default false */
    double noise_multiplier; /* σ = noise std / clip norm (required > 0 when enabled) */
    double clip_norm;        /* C, per-example L2 clip (default 1.0) */
    double delta;            /* δ (default 1e-5; must be < 1/dataset size) */
    double epsilon_budget;   /* ε the site will not exceed (required > 0 when enabled) */
} ff_privacy_record_cfg;

/* privacy.client: hospital-level DP on the aggregate. */
typedef struct {
    int enabled;
    double noise_multiplier; /* σ: total noise std / clip norm S */
    double clip_norm;        /* S, per-site update L2 clip (default 1.0) */
    double delta;
    double epsilon_budget;
    int mechanism;           /* ff_privacy_mechanism (default gaussian) */
    int64_t bits;            /* distributed mechanism: modulus 2^bits (default 20) */
    double gamma;            /* distributed mechanism: granularity (default 0 = from bits) */
    double beta;             /* conditional rounding β (default exp(-1/2), as KLS21) */
} ff_privacy_client_cfg;

typedef struct {
    ff_privacy_record_cfg record;
    ff_privacy_client_cfg client;
} ff_privacy_cfg;

/* The schema of the section (fields at offsets in ff_privacy_cfg), for the training-plan
 * loader to embed as
 *     {.key = "privacy", .type = FF_CFG_SECTION, .offset = offsetof(plan, privacy),
 *      .sub = ff_privacy_cfg_schema, .help = "differential privacy"}
 * with a member `ff_privacy_cfg privacy;` in its plan struct. */
extern const ff_cfg_field ff_privacy_cfg_schema[];

/* What the validator needs beyond the section itself. */
typedef struct {
    int64_t dataset_size;  /* patients at this site (record level; 0 = unknown) */
    int64_t num_sites;     /* sites in the federation (client level; 0 = unknown) */
    double record_eps_spent; /* ε already spent (from the ledger) */
    double client_eps_spent;
} ff_privacy_context;

/* Contradictory or unsafe settings are FF_ECONFIG naming the key ("privacy.record.delta"):
 * DP on with σ = 0 or clip = 0, δ ≥ 1/dataset size, δ outside (0, 1), budget ≤ 0 or
 * already spent, the distributed mechanism whose per-site noise would fall below γ/2 or
 * whose modulus cannot hold the sum. Disabled levels are not checked. */
int ff_privacy_cfg_validate(const ff_privacy_cfg *cfg,
                            const ff_privacy_context *ctx) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Ledger: per-round records, budget checks, JSON                                            */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    FF_PRIVACY_LEVEL_RECORD = 0, /* DP-SGD steps at one site */
    FF_PRIVACY_LEVEL_CLIENT = 1  /* one aggregation round */
} ff_privacy_level;

/* Everything needed to recompute a round's RDP without trusting ours. */
typedef struct {
    int64_t round;
    int level;            /* ff_privacy_level */
    int mechanism;        /* ff_privacy_mechanism (client level); GAUSSIAN for record */
    double q;             /* sampling rate (records per step, or sites per round) */
    double sigma;         /* noise multiplier (Gaussian) */
    int64_t steps;        /* steps in this round (record level), 1 for client level */
    double clip_norm;
    /* distributed discrete Gaussian only */
    int64_t survivors;    /* sites whose noise entered the sum */
    int64_t sites;        /* sites that started the round */
    double ddg_sigma;     /* per-site std, original units */
    double ddg_gamma;
    double ddg_beta;
    int64_t ddg_dim;
    int ddg_integer;      /* integer inputs, Δ = clip_norm (ff_privacy_ddg_params.integer) */
} ff_privacy_round;

typedef struct ff_privacy_ledger ff_privacy_ledger;

/* A ledger for one level with its budget (ε_budget at δ), orders, series and conversion.
 * The caller owns *out (ff_privacy_ledger_free). */
int ff_privacy_ledger_new(ff_privacy_ledger **out, int level, double epsilon_budget,
                          double delta, const double *orders, size_t n,
                          ff_privacy_series series, ff_privacy_conversion conv) FF_WARN_UNUSED;
void ff_privacy_ledger_free(ff_privacy_ledger *l);
/* ε spent so far (0 when no rounds) and the optimal order. */
int ff_privacy_ledger_epsilon(const ff_privacy_ledger *l, double *eps,
                              double *order) FF_WARN_UNUSED;
/* ε after adding r, without adding it; *would_exceed = 1 when that passes the budget. */
int ff_privacy_ledger_check(const ff_privacy_ledger *l, const ff_privacy_round *r,
                            double *eps_after, int *would_exceed) FF_WARN_UNUSED;
/* Records r. FF_EPOLICY (ledger unchanged, message naming the round and both ε) when it
 * would pass the budget: the site refuses the round. */
int ff_privacy_ledger_record(ff_privacy_ledger *l, const ff_privacy_round *r) FF_WARN_UNUSED;
size_t ff_privacy_ledger_count(const ff_privacy_ledger *l);
const ff_privacy_round *ff_privacy_ledger_get(const ff_privacy_ledger *l, size_t i);
/* JSON text (caller frees with free()), and back: loading recomputes the RDP from the
 * rounds, never trusting a stored ε. */
int ff_privacy_ledger_to_json(const ff_privacy_ledger *l, char **out) FF_WARN_UNUSED;
int ff_privacy_ledger_from_json(ff_privacy_ledger **out, const char *json,
                                const char *name) FF_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
