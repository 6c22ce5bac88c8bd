/* Continuous mechanisms on flat float vectors: client-level clipping (DP-FedAvg), Gaussian
 * noise, and the DP-SGD building blocks (Poisson sampling, per-example clipping). */
#include "ff/privacy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ff_privacy_l2_norm(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return sqrt(s);
}

static int check_clip(double clip)
{
    if (!(clip > 0.0) || !isfinite(clip))
        return ff_error(FF_ERANGE, "clip norm: %g must be finite and > 0", clip);
    return FF_OK;
}

/* The factor that brings a vector of L2 norm `norm` to at most `clip`. Slightly below the
 * exact ratio so float rounding of the scaled entries cannot push the norm over `clip`:
 * sensitivity is what the guarantee rests on. */
static double clip_factor(double norm, double clip)
{
    if (norm <= clip)
        return 1.0;
    return clip / norm * (1.0 - 4e-7);
}

int ff_privacy_clip(float *x, size_t n, double clip, double *norm_before)
{
    int rc = check_clip(clip);
    if (rc != FF_OK)
        return rc;
    double norm = ff_privacy_l2_norm(x, n);
    if (!isfinite(norm))
        return ff_error(FF_ENUMERIC, "clip: the update has a NaN or Inf entry");
    if (norm_before)
        *norm_before = norm;
    double f = clip_factor(norm, clip);
    if (f < 1.0)
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(x[i] * f);
    return FF_OK;
}

/* Box-Muller with both outputs of each pair (cos and sin are independent standard
 * normals), half the log/uniform draws of one ff_rng_normal per coordinate: the noise is a
 * per-step O(params) cost of DP-SGD that showed at ~20 % of a fusion-base step. */
void ff_privacy_gaussian_noise(ff_rng *rng, float *x, size_t n, double std)
{
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        double u1 = ff_rng_uniform_d(rng), u2 = ff_rng_uniform_d(rng);
        double r = std * sqrt(-2.0 * log(1.0 - u1)), t = 6.283185307179586 * u2;
        x[i] = (float)(x[i] + r * cos(t));
        x[i + 1] = (float)(x[i + 1] + r * sin(t));
    }
    if (i < n)
        x[i] = (float)(x[i] + std * ff_rng_normal(rng));
}

int ff_privacy_clip_scales(const double *norms, size_t batch, double clip, float *scales)
{
    int rc = check_clip(clip);
    if (rc != FF_OK)
        return rc;
    for (size_t i = 0; i < batch; i++)
        if (!(norms[i] >= 0.0) || !isfinite(norms[i]))
            return ff_error(FF_ENUMERIC, "per-example norm %zu: %g is not finite and >= 0", i,
                            norms[i]);
    for (size_t i = 0; i < batch; i++)
        scales[i] = (float)clip_factor(norms[i], clip);
    return FF_OK;
}

int ff_privacy_clip_sum(const float *grads, size_t batch, size_t dim, double clip, float *sum)
{
    int rc = check_clip(clip);
    if (rc != FF_OK)
        return rc;
    double *acc = calloc(dim ? dim : 1, sizeof *acc);
    if (!acc)
        return ff_error(FF_ENOMEM, "clip_sum: %zu doubles", dim);
    for (size_t b = 0; b < batch; b++) {
        const float *g = grads + b * dim;
        double norm = ff_privacy_l2_norm(g, dim);
        if (!isfinite(norm)) {
            free(acc);
            return ff_error(FF_ENUMERIC, "per-example gradient %zu has a NaN or Inf entry", b);
        }
        double f = clip_factor(norm, clip);
        for (size_t j = 0; j < dim; j++)
            acc[j] += f * g[j];
    }
    for (size_t j = 0; j < dim; j++)
        sum[j] = (float)acc[j];
    free(acc);
    return FF_OK;
}

int ff_privacy_poisson_sample(ff_rng *rng, size_t n, double q, uint32_t *idx, size_t *count)
{
    if (!(q >= 0.0 && q <= 1.0))
        return ff_error(FF_ERANGE, "sampling rate q: %g is outside [0, 1]", q);
    if (n > UINT32_MAX)
        return ff_error(FF_ERANGE, "poisson sample: %zu records exceed 2^32", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ff_rng_uniform_d(rng) < q)
            idx[k++] = (uint32_t)i;
    *count = k;
    return FF_OK;
}

int ff_privacy_dpsgd_step(ff_rng *rng, size_t n_records, double q, double sigma, double clip,
                          void *model, ff_privacy_norms_fn norms_fn,
                          ff_privacy_accum_fn accum_fn, uint32_t *idx, size_t *batch,
                          float *sum, size_t dim)
{
    if (!(sigma >= 0.0) || !isfinite(sigma))
        return ff_error(FF_ERANGE, "noise multiplier: %g must be finite and >= 0", sigma);
    int rc = check_clip(clip);
    if (rc == FF_OK)
        rc = ff_privacy_poisson_sample(rng, n_records, q, idx, batch);
    if (rc != FF_OK)
        return rc;
    double *norms = malloc((*batch ? *batch : 1) * sizeof *norms);
    float *scales = malloc((*batch ? *batch : 1) * sizeof *scales);
    if (!norms || !scales) {
        rc = ff_error(FF_ENOMEM, "dpsgd step: batch of %zu", *batch);
        goto out;
    }
    memset(sum, 0, dim * sizeof *sum);
    if (*batch > 0) {
        if ((rc = norms_fn(model, idx, *batch, norms)) != FF_OK)
            goto out;
        if ((rc = ff_privacy_clip_scales(norms, *batch, clip, scales)) != FF_OK)
            goto out;
        if ((rc = accum_fn(model, idx, *batch, scales, sum, dim)) != FF_OK)
            goto out;
    }
    /* An empty Poisson batch still gets noise: skipping it would leak that the batch was
     * empty. */
    ff_privacy_gaussian_noise(rng, sum, dim, sigma * clip);
out:
    free(norms);
    free(scales);
    return rc;
}
