/* Robust aggregation for runs without secure aggregation: coordinate-wise median and trimmed
 * mean (Yin, Chen, Ramchandran, Bartlett, "Byzantine-robust distributed learning", ICML 2018)
 * and clipping of each update to a multiple of the median update norm. A minority of hostile
 * sites (huge or sign-flipped updates) moves the mean without bound; the median and the
 * trimmed mean stay inside the range of the honest values at every coordinate as long as the
 * hostile sites are fewer than half (median) or at most floor(beta k) (trimmed mean). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* k is the number of sites in a round: small. Insertion sort beats qsort's call overhead
 * below a few dozen values; qsort keeps the worst case at k log k for 1024 sites. */
static void sort_values(double *v, size_t k)
{
    if (k > 32) {
        qsort(v, k, sizeof *v, cmp_double);
        return;
    }
    for (size_t i = 1; i < k; i++) {
        double x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

static double combine(const double *v, size_t k, int aggregator, size_t cut)
{
    if (aggregator == FF_AGG_MEDIAN)
        return (k % 2) ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
    double s = 0;
    for (size_t i = cut; i < k - cut; i++)
        s += v[i];
    return s / (double)(k - 2 * cut);
}

int ff_strategy_aggregate_robust(float *out, const float *const *updates, size_t k, size_t n,
                                 int aggregator, double trim_fraction)
{
    if (k == 0)
        return ff_error(FF_EINVAL, "aggregate: no updates");
    if (aggregator < 0 || aggregator >= FF_AGG_COUNT)
        return ff_error(FF_EINVAL, "aggregate: unknown aggregator %d", aggregator);
    if (!(trim_fraction >= 0 && trim_fraction < 0.5))
        return ff_error(FF_EINVAL, "aggregate: trim_fraction %g is not in [0, 0.5)", trim_fraction);
    /* floor(beta k) ≤ beta k < k/2, so at least one value is left in the middle. */
    size_t cut = aggregator == FF_AGG_TRIMMED_MEAN ? (size_t)floor(trim_fraction * (double)k) : 0;
    double *v = ff_alloc(k * sizeof *v);
    if (!v)
        return ff_error(FF_ENOMEM, "aggregate: no memory for %zu values", k);
    int rc = FF_OK;
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < k; i++) {
            v[i] = (double)updates[i][j];
            if (!isfinite(v[i])) {
                rc = ff_error(FF_ENUMERIC, "aggregate: update %zu has a non-finite value at %zu", i, j);
                goto out;
            }
        }
        if (aggregator == FF_AGG_MEAN) {
            out[j] = (float)combine(v, k, FF_AGG_TRIMMED_MEAN, 0);
            continue;
        }
        sort_values(v, k);
        out[j] = (float)combine(v, k, aggregator, cut);
    }
out:
    ff_free(v);
    return rc;
}

int ff_strategy_clip_updates(float *const *updates, size_t k, size_t n, double multiple,
                             size_t *nclipped)
{
    if (nclipped)
        *nclipped = 0;
    if (!(multiple > 0) || k == 0)
        return FF_OK;
    double *norm = ff_alloc(k * sizeof *norm), *sorted = ff_alloc(k * sizeof *sorted);
    int rc = FF_OK;
    if (!norm || !sorted) {
        rc = ff_error(FF_ENOMEM, "clip: no memory for %zu norms", k);
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        double s = 0;
        for (size_t j = 0; j < n; j++)
            s += (double)updates[i][j] * (double)updates[i][j];
        if (!isfinite(s)) {
            rc = ff_error(FF_ENUMERIC, "clip: update %zu has a non-finite norm", i);
            goto out;
        }
        norm[i] = sorted[i] = sqrt(s);
    }
    sort_values(sorted, k);
    double med = (k % 2) ? sorted[k / 2] : 0.5 * (sorted[k / 2 - 1] + sorted[k / 2]);
    double bound = multiple * med;
    for (size_t i = 0; i < k; i++) {
        if (norm[i] <= bound)
            continue;
        /* bound may be 0 when most sites sent zeros: then the outlier becomes zero too. */
        double scale = bound / norm[i];
        for (size_t j = 0; j < n; j++)
            updates[i][j] = (float)((double)updates[i][j] * scale);
        if (nclipped)
            (*nclipped)++;
    }
out:
    ff_free(norm);
    ff_free(sorted);
    return rc;
}
