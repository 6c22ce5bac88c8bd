/* The distributed discrete Gaussian mechanism (Kairouz, Liu, Steinke 2021, "KLS21"): its
 * accounting, the randomised Hadamard rotation, conditional randomized rounding, modular
 * wrap, and an exact discrete Gaussian sampler (Canonne, Kamath, Steinke 2020, "CKS20"). */
#include "ff/privacy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "privacy_internal.h"

__extension__ typedef unsigned __int128 u128;

/* ------------------------------------------------------------------ accounting */

/* The checks the accounting parameters and the mechanism's configuration share. */
static int check_clip_gamma_beta(double clip, double gamma, double beta)
{
    if (!(clip > 0.0) || !isfinite(clip))
        return ff_error(FF_ERANGE, "ddg clip_norm: %g must be finite and > 0", clip);
    if (!(gamma > 0.0) || !isfinite(gamma))
        return ff_error(FF_ERANGE, "ddg gamma: %g must be finite and > 0", gamma);
    if (!(beta >= 0.0 && beta < 1.0))
        return ff_error(FF_ERANGE, "ddg beta: %g is outside [0, 1)", beta);
    return FF_OK;
}

static int check_ddg_params(const ff_privacy_ddg_params *p)
{
    int rc = check_clip_gamma_beta(p->clip_norm, p->gamma, p->beta);
    if (rc != FF_OK)
        return rc;
    if (!(p->sigma / p->gamma >= 0.5) || !isfinite(p->sigma))
        return ff_error(FF_ERANGE,
                        "ddg sigma: %g is below gamma/2 = %g (KLS21 Thm 1 needs sigma/gamma "
                        ">= 1/2)",
                        p->sigma, p->gamma / 2);
    if (p->dim < 1)
        return ff_error(FF_ERANGE, "ddg dim: %lld must be >= 1", (long long)p->dim);
    if (p->survivors < 1)
        return ff_error(FF_ERANGE, "ddg survivors: %lld (no site's noise reached the sum)",
                        (long long)p->survivors);
    return FF_OK;
}

double ff_privacy_ddg_sensitivity_sq(const ff_privacy_ddg_params *p)
{
    double c = p->clip_norm, g = p->gamma, sd = sqrt((double)p->dim);
    if (p->integer) /* nothing is rounded: the shift between neighbours is at most c */
        return c * c;
    double t1 = (c + g * sd) * (c + g * sd);
    if (p->beta <= 0.0)
        return t1;
    double t2 = c * c + 0.25 * g * g * (double)p->dim +
                sqrt(2.0 * log(1.0 / p->beta)) * g * (c + 0.5 * g * sd);
    return fmin(t1, t2);
}

double ff_privacy_ddg_tau(const ff_privacy_ddg_params *p)
{
    double s2 = (p->sigma / p->gamma) * (p->sigma / p->gamma), tau = 0.0;
    for (int64_t k = 1; k < p->survivors; k++)
        tau += exp(-2.0 * M_PI * M_PI * s2 * ((double)k / (double)(k + 1)));
    return 10.0 * tau;
}

/* KLS21 Prop. 14 / Eq. 17 without the L1 term, for the sum of n shares, at order α. */
static double ddg_rdp_full(const ff_privacy_ddg_params *p, double alpha)
{
    double n = (double)p->survivors, d = (double)p->dim;
    double scale = sqrt(ff_privacy_ddg_sensitivity_sq(p) / (n * p->sigma * p->sigma));
    double tau = ff_privacy_ddg_tau(p);
    double t1 = alpha * scale * scale / 2.0 + tau * d;
    double t2 = alpha / 2.0 * (scale + sqrt(d) * tau) * (scale + sqrt(d) * tau);
    return fmin(t1, t2);
}

int ff_privacy_ddg_rdp(const ff_privacy_ddg_params *p, double alpha, double *rdp)
{
    int rc = check_ddg_params(p);
    if (rc != FF_OK)
        return rc;
    if (!(alpha >= 1.0))
        return ff_error(FF_ERANGE, "order: %g must be >= 1", alpha);
    *rdp = ddg_rdp_full(p, alpha);
    return FF_OK;
}

/* Zhu & Wang (2019) general upper bound for Poisson sampling at integer order a, as
 * google-research/federated distributed_dp computes it:
 *   1/(a−1) log[ (1−q)^{a−1}(aq − q + 1) + C(a,2) q² (1−q)^{a−2} e^{ε(2)}
 *                + 3 Σ_{l=3}^{a} C(a,l) (1−q)^{a−l} q^l e^{(l−1) ε(l)} ],
 * capped by the unsampled ε(a). */
static double ddg_rdp_sampled(const ff_privacy_ddg_params *p, double q, int64_t a)
{
    long double lq = logl(q), l1q = log1pl(-q);
    long double acc = (a - 1) * l1q + logl((long double)a * q - q + 1.0L);
    long double lc2 = lgammal(a + 1.0L) - lgammal(3.0L) - lgammal(a - 1.0L);
    acc = ffp_log_add(acc, lc2 + 2 * lq + (a - 2) * l1q + ddg_rdp_full(p, 2.0));
    for (int64_t l = 3; l <= a; l++) {
        long double lc = lgammal(a + 1.0L) - lgammal(l + 1.0L) - lgammal(a - l + 1.0L);
        acc = ffp_log_add(acc, logl(3.0L) + lc + (a - l) * l1q + l * lq +
                                   (l - 1) * (long double)ddg_rdp_full(p, (double)l));
    }
    double sampled = (double)(acc / (long double)(a - 1));
    return fmin(sampled, ddg_rdp_full(p, (double)a));
}

int ff_privacy_accountant_add_ddg(ff_privacy_accountant *acc, const ff_privacy_ddg_params *p,
                                  double q, int64_t rounds)
{
    int rc = check_ddg_params(p);
    if (rc != FF_OK)
        return rc;
    if (!(q > 0.0 && q <= 1.0))
        return ff_error(FF_ERANGE, "ddg site sampling rate q: %g is outside (0, 1]", q);
    if (rounds < 0)
        return ff_error(FF_ERANGE, "rounds: %lld must be >= 0", (long long)rounds);
    double add[FF_PRIVACY_MAX_ORDERS];
    for (size_t i = 0; i < acc->n; i++) {
        double a = acc->orders[i];
        double r = q == 1.0 ? ddg_rdp_full(p, a) : ddg_rdp_sampled(p, q, (int64_t)ceil(a));
        add[i] = rounds == 0 ? 0.0 : r * (double)rounds;
    }
    for (size_t i = 0; i < acc->n; i++)
        acc->rdp[i] += add[i];
    return FF_OK;
}

/* ------------------------------------------------------------------ rotation */

double ff_privacy_ddg_choose_gamma(double clip, double sigma_site, int64_t sites, size_t d,
                                   int bits)
{
    double n = (double)(sites > 0 ? sites : 1), dd = (double)(d ? d : 1);
    double range = ldexp(1.0, bits), k = 4.0;
    double signal = clip * clip * n * n / dd + n * sigma_site * sigma_site;
    double g = 2.0 * k * sqrt(signal) / range;
    for (int it = 0; it < 50; it++) /* γ²/4 term is tiny against the range: contracts fast */
        g = 2.0 * k * sqrt(signal + n * g * g / 4.0) / range;
    /* The exact sampler takes σ/γ ≤ 2^20: a coarser grid only leaves high bits unused. */
    return fmax(g, sigma_site / 0x1p20);
}

size_t ff_privacy_ddg_padded_dim(size_t n)
{
    size_t d = 1;
    while (d < n)
        d <<= 1;
    return d;
}

static int check_pow2(size_t d)
{
    if (d == 0 || (d & (d - 1)))
        return ff_error(FF_EINVAL, "rotation: dimension %zu is not a power of two", d);
    return FF_OK;
}

/* In-place unnormalised Walsh-Hadamard transform (H·H = d·I). */
static void fwht(double *x, size_t d)
{
    for (size_t h = 1; h < d; h <<= 1)
        for (size_t i = 0; i < d; i += h << 1)
            for (size_t j = i; j < i + h; j++) {
                double a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

/* The diagonal D: one sign per coordinate from (seed, stream 0x524f54). */
static void apply_signs(double *x, size_t d, uint64_t seed)
{
    ff_rng r;
    ff_rng_init(&r, seed, 0x524f54u);
    for (size_t i = 0; i < d; i += 32) {
        uint32_t bits = ff_rng_u32(&r);
        for (size_t j = i; j < i + 32 && j < d; j++, bits >>= 1)
            if (bits & 1u)
                x[j] = -x[j];
    }
}

int ff_privacy_rotate(double *x, size_t d, uint64_t seed)
{
    int rc = check_pow2(d);
    if (rc != FF_OK)
        return rc;
    apply_signs(x, d, seed);
    fwht(x, d);
    double s = 1.0 / sqrt((double)d);
    for (size_t i = 0; i < d; i++)
        x[i] *= s;
    return FF_OK;
}

int ff_privacy_unrotate(double *x, size_t d, uint64_t seed)
{
    int rc = check_pow2(d);
    if (rc != FF_OK)
        return rc;
    fwht(x, d);
    double s = 1.0 / sqrt((double)d);
    for (size_t i = 0; i < d; i++)
        x[i] *= s;
    apply_signs(x, d, seed);
    return FF_OK;
}

/* ------------------------------------------------------------------ exact sampling */

/* Uniform integer in [0, m), m ≥ 1, by rejection on the bit length of m. */
static u128 uniform_below(ff_rng *rng, u128 m)
{
    int bits = 0;
    for (u128 v = m - 1; v; v >>= 1)
        bits++;
    for (;;) {
        u128 r = ((u128)ff_rng_u64(rng) << 64) | ff_rng_u64(rng);
        r = bits == 128 ? r : (r & (((u128)1 << bits) - 1));
        if (r < m)
            return r;
    }
}

/* Bernoulli(n/d), exact. */
static int bernoulli_frac(ff_rng *rng, u128 n, u128 d)
{
    return uniform_below(rng, d) < n;
}

/* Bernoulli(exp(−n/d)) for 0 ≤ n ≤ d: K ← 1; while Bernoulli(γ/K) K++; odd K → 1
 * (CKS20 Alg. 1, the series of e^{−γ} read as a race). */
static int bern_exp_le1(ff_rng *rng, u128 n, u128 d)
{
    u128 k = 1;
    while (bernoulli_frac(rng, n, d * k))
        k++;
    return (int)(k & 1u);
}

static int bern_exp(ff_rng *rng, u128 n, u128 d)
{
    /* e^{−γ} = (e^{−1})^{⌊γ⌋} · e^{−(γ − ⌊γ⌋)} */
    for (u128 k = n / d; k > 0; k--)
        if (!bern_exp_le1(rng, 1, 1))
            return 0;
    return bern_exp_le1(rng, n % d, d);
}

int ff_privacy_bernoulli_exp(ff_rng *rng, uint64_t n, uint64_t d)
{
    return d == 0 ? 0 : bern_exp(rng, n, d);
}

/* CKS20 Alg. 2 with s = 1: X = U + t·V, U uniform in [0, t) kept with prob e^{−U/t}, V
 * geometric with parameter 1 − e^{−1}; sign by a fair coin, rejecting "−0". */
int64_t ff_privacy_discrete_laplace(ff_rng *rng, uint64_t t)
{
    if (t == 0)
        t = 1;
    for (;;) {
        u128 u = uniform_below(rng, t);
        if (!bern_exp(rng, u, t))
            continue;
        uint64_t v = 0;
        while (bern_exp_le1(rng, 1, 1))
            v++;
        uint64_t x = (uint64_t)u + t * v;
        int neg = (int)(ff_rng_u32(rng) & 1u);
        if (neg && x == 0)
            continue;
        return neg ? -(int64_t)x : (int64_t)x;
    }
}

#define DG_MAX_DEN ((uint64_t)1 << 16)
#define DG_MAX_SIGMA2 ((uint64_t)1 << 40)

/* CKS20 Alg. 3: t = ⌊σ⌋ + 1, Y ~ Lap_Z(t), accept with prob exp(−(|Y| − σ²/t)²/(2σ²)).
 * With σ² = num/den: γ = (|Y|·t·den − num)² / (2·num·t²·den), all integers below 2^128:
 * num ≤ 2^56, t²·den ≤ 2^57, and proposals with |Y|·t·den > 2^62 are rejected (|Y| > 64 t
 * at the extreme: probability below e^-64, the only departure from exactness). */
int ff_privacy_discrete_gaussian(ff_rng *rng, uint64_t num, uint64_t den, int64_t *out)
{
    if (den < 1 || den > DG_MAX_DEN || num < 1 || num / den >= DG_MAX_SIGMA2)
        return ff_error(FF_ERANGE,
                        "discrete gaussian: sigma^2 = %llu/%llu outside the supported range",
                        (unsigned long long)num, (unsigned long long)den);
    uint64_t fs = (uint64_t)sqrt((double)num / (double)den); /* ⌊σ⌋, fixed up exactly: */
    while (fs > 0 && (u128)fs * fs * den > num)
        fs--;
    while ((u128)(fs + 1) * (fs + 1) * den <= num)
        fs++;
    uint64_t t = fs + 1;
    uint64_t max_abs = ((uint64_t)1 << 62) / (t * den);
    u128 gd = (u128)2 * num * t * t * den;
    for (;;) {
        int64_t y = ff_privacy_discrete_laplace(rng, t);
        uint64_t ay = y < 0 ? (uint64_t)(-y) : (uint64_t)y;
        if (ay > max_abs)
            continue;
        u128 a = (u128)ay * t * den, diff = a > num ? a - num : num - a;
        if (bern_exp(rng, diff * diff, gd)) {
            *out = y;
            return FF_OK;
        }
    }
}

/* ------------------------------------------------------------------ encode / decode */

static int check_ddg_config(const ff_privacy_ddg_config *c)
{
    int rc = check_clip_gamma_beta(c->clip_norm, c->gamma, c->beta);
    if (rc != FF_OK)
        return rc;
    if (!(c->sigma >= 0.0) || !isfinite(c->sigma))
        return ff_error(FF_ERANGE, "ddg sigma: %g must be finite and >= 0", c->sigma);
    if (c->bits < 2 || c->bits > 62)
        return ff_error(FF_ERANGE, "ddg bits: %d is outside [2, 62]", c->bits);
    return FF_OK;
}

/* σ² in the integer domain as a rational num/den, rounded up (more noise, never less):
 * den = 2^16 below σ² = 2^24, whole numbers above (a relative change below 2^-24). */
static int dg_rational(double s2, uint64_t *num, uint64_t *den)
{
    if (!(s2 < (double)DG_MAX_SIGMA2))
        return ff_error(FF_ERANGE,
                        "ddg sigma/gamma: %g exceeds 2^20 (choose a larger gamma; "
                        "ff_privacy_ddg_choose_gamma does)",
                        sqrt(s2));
    *den = s2 < 0x1p24 ? DG_MAX_DEN : 1;
    *num = (uint64_t)ceil(s2 * (double)*den);
    if (*num == 0)
        *num = 1;
    return FF_OK;
}

int ff_privacy_ddg_encode(const ff_privacy_ddg_config *cfg, ff_rng *noise_rng, const float *x,
                          size_t n, uint64_t *out, size_t d)
{
    int rc = check_ddg_config(cfg);
    if (rc != FF_OK)
        return rc;
    if (d < n || ff_privacy_ddg_padded_dim(d) != d)
        return ff_error(FF_EINVAL, "ddg encode: d = %zu must be a power of two >= n = %zu", d,
                        n);
    uint64_t num = 1, den = 1;
    if (cfg->sigma > 0.0 &&
        (rc = dg_rational((cfg->sigma / cfg->gamma) * (cfg->sigma / cfg->gamma), &num, &den)))
        return rc;
    double *v = calloc(d, sizeof *v), *r = malloc(d * sizeof *r);
    if (!v || !r) {
        rc = ff_error(FF_ENOMEM, "ddg encode: %zu doubles", d);
        goto out;
    }
    /* Clip in double: the sensitivity bound is on this vector. */
    double norm = 0.0;
    for (size_t i = 0; i < n; i++) {
        v[i] = x[i];
        norm += v[i] * v[i];
    }
    norm = sqrt(norm);
    if (!isfinite(norm)) {
        rc = ff_error(FF_ENUMERIC, "ddg encode: the update has a NaN or Inf entry");
        goto out;
    }
    if (norm > cfg->clip_norm)
        for (size_t i = 0; i < n; i++)
            v[i] *= cfg->clip_norm / norm * (1.0 - 1e-12);
    if ((rc = ff_privacy_rotate(v, d, cfg->rotation_seed)) != FF_OK)
        goto out;
    for (size_t i = 0; i < d; i++)
        v[i] /= cfg->gamma;
    /* Conditional randomized rounding (KLS21 Sec. 4.2): round each coordinate up with
     * probability its fractional part, retry until the norm is within the bound. */
    double c = cfg->clip_norm / cfg->gamma, sd = sqrt((double)d);
    double bound2 = cfg->beta > 0.0
                        ? c * c + 0.25 * (double)d + sqrt(2.0 * log(1.0 / cfg->beta)) * (c + 0.5 * sd)
                        : INFINITY;
    int tries = 0;
    for (;; tries++) {
        if (tries == 1000) {
            rc = ff_error(FF_ESTATE, "ddg encode: conditional rounding failed 1000 times "
                                     "(beta %g too small?)", cfg->beta);
            goto out;
        }
        double n2 = 0.0;
        for (size_t i = 0; i < d; i++) {
            double f = floor(v[i]);
            r[i] = f + (ff_rng_uniform_d(noise_rng) < v[i] - f ? 1.0 : 0.0);
            n2 += r[i] * r[i];
        }
        if (n2 <= bound2)
            break;
    }
    uint64_t mask = ((uint64_t)1 << cfg->bits) - 1;
    for (size_t i = 0; i < d; i++) {
        int64_t z = 0;
        if (cfg->sigma > 0.0 && (rc = ff_privacy_discrete_gaussian(noise_rng, num, den, &z)))
            goto out;
        out[i] = (uint64_t)((int64_t)r[i] + z) & mask;
    }
out:
    if (v)
        ff_secure_zero(v, d * sizeof *v);
    if (r)
        ff_secure_zero(r, d * sizeof *r);
    free(v);
    free(r);
    return rc;
}

int ff_privacy_ddg_decode(const ff_privacy_ddg_config *cfg, const uint64_t *sum, size_t d,
                          float *y, size_t n)
{
    int rc = check_ddg_config(cfg);
    if (rc != FF_OK)
        return rc;
    if (d < n || ff_privacy_ddg_padded_dim(d) != d)
        return ff_error(FF_EINVAL, "ddg decode: d = %zu must be a power of two >= n = %zu", d,
                        n);
    double *v = malloc(d * sizeof *v);
    if (!v)
        return ff_error(FF_ENOMEM, "ddg decode: %zu doubles", d);
    uint64_t mask = ((uint64_t)1 << cfg->bits) - 1, half = (uint64_t)1 << (cfg->bits - 1);
    for (size_t i = 0; i < d; i++) {
        uint64_t u = sum[i] & mask;
        int64_t s = u >= half ? (int64_t)u - (int64_t)(mask + 1) : (int64_t)u;
        v[i] = (double)s * cfg->gamma;
    }
    rc = ff_privacy_unrotate(v, d, cfg->rotation_seed);
    if (rc == FF_OK)
        for (size_t i = 0; i < n; i++)
            y[i] = (float)v[i];
    free(v);
    return rc;
}
