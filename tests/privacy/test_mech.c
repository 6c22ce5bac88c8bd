/* Continuous mechanisms: clipping bounds the norm (the sensitivity the accountant assumes),
 * Gaussian noise has the requested std, Poisson sampling has the requested rate, and a
 * DP-SGD step through the norms/accumulate callbacks equals clipping materialised
 * per-example gradients. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/privacy.h"

static void test_clip(void **state)
{
    (void)state;
    float x[100];
    ff_rng rng;
    ff_rng_init(&rng, 1, 0);
    for (int trial = 0; trial < 50; trial++) {
        ff_rng_normal_fill(&rng, x, 100, 0.0f, (float)(0.01 * (trial + 1)));
        float before[100];
        memcpy(before, x, sizeof x);
        double nb;
        assert_int_equal(ff_privacy_clip(x, 100, 0.5, &nb), FF_OK);
        double na = ff_privacy_l2_norm(x, 100);
        assert_true(na <= 0.5); /* never above: float rounding included */
        if (nb <= 0.5)
            assert_memory_equal(x, before, sizeof x);
        else
            assert_true(na > 0.5 * (1 - 1e-6)); /* and not needlessly below */
        assert_true(fabs(nb - ff_privacy_l2_norm(before, 100)) < 1e-12);
    }
    x[3] = NAN;
    assert_int_equal(ff_privacy_clip(x, 100, 0.5, NULL), FF_ENUMERIC);
    assert_int_equal(ff_privacy_clip(x, 100, 0.0, NULL), FF_ERANGE);
    ft_assert_error_has("clip norm");
}

static void test_gaussian_noise_std(void **state)
{
    (void)state;
    const size_t n = 200000;
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    ff_rng rng;
    ff_rng_init(&rng, 2, 0);
    ff_privacy_gaussian_noise(&rng, x, n, 1.3 * 0.7);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    double sd = sqrt(s2 / n - (s / n) * (s / n)), want = 1.3 * 0.7;
    assert_true(fabs(s / n) < 5 * want / sqrt((double)n));
    assert_true(fabs(sd - want) < 5 * want / sqrt(2.0 * n));
    free(x);
}

static void test_poisson_sample(void **state)
{
    (void)state;
    const size_t n = 100000;
    uint32_t *idx = malloc(n * sizeof *idx);
    assert_non_null(idx);
    ff_rng a, b;
    ff_rng_init(&a, 3, 0);
    ff_rng_init(&b, 3, 0);
    size_t k, k2;
    assert_int_equal(ff_privacy_poisson_sample(&a, n, 0.01, idx, &k), FF_OK);
    /* Binomial(n, q): mean 1000, sd ≈ 31.5. */
    assert_true(fabs((double)k - 1000.0) < 5 * sqrt(n * 0.01 * 0.99));
    for (size_t i = 1; i < k; i++)
        assert_true(idx[i] > idx[i - 1] && idx[i] < n);
    uint32_t first = idx[0];
    assert_int_equal(ff_privacy_poisson_sample(&b, n, 0.01, idx, &k2), FF_OK);
    assert_int_equal(k, k2); /* seeded: reproducible */
    assert_int_equal(idx[0], first);
    assert_int_equal(ff_privacy_poisson_sample(&a, n, 1.5, idx, &k), FF_ERANGE);
    free(idx);
}

/* A toy "model": per-example gradients stored in a table; norms and the scaled sum are
 * what a ghost-clipping model would return without materialising them. */
typedef struct {
    size_t n, dim;
    float *grads; /* [n][dim] */
    int calls;
} toy_model;

static int toy_norms(void *m, const uint32_t *idx, size_t batch, double *norms)
{
    toy_model *t = m;
    t->calls++;
    for (size_t i = 0; i < batch; i++)
        norms[i] = ff_privacy_l2_norm(t->grads + (size_t)idx[i] * t->dim, t->dim);
    return FF_OK;
}

static int toy_accum(void *m, const uint32_t *idx, size_t batch, const float *scales,
                     float *sum, size_t dim)
{
    toy_model *t = m;
    for (size_t i = 0; i < batch; i++)
        for (size_t j = 0; j < dim; j++)
            sum[j] += scales[i] * t->grads[(size_t)idx[i] * dim + j];
    return FF_OK;
}

static void test_dpsgd_step_matches_materialised(void **state)
{
    (void)state;
    toy_model t = {.n = 500, .dim = 32};
    t.grads = malloc(t.n * t.dim * sizeof *t.grads);
    assert_non_null(t.grads);
    ff_rng rng;
    ff_rng_init(&rng, 4, 0);
    ff_rng_normal_fill(&rng, t.grads, t.n * t.dim, 0.0f, 0.5f);
    uint32_t *idx = malloc(t.n * sizeof *idx);
    float sum[32], ref[32];
    size_t batch;
    /* σ = 0: the noisy sum is exactly the clipped sum. */
    ff_rng_init(&rng, 5, 0);
    assert_int_equal(ff_privacy_dpsgd_step(&rng, t.n, 0.1, 0.0, 1.0, &t, toy_norms, toy_accum,
                                           idx, &batch, sum, t.dim),
                     FF_OK);
    assert_true(batch > 20 && batch < 90);
    float *sel = malloc(batch * t.dim * sizeof *sel);
    for (size_t i = 0; i < batch; i++)
        memcpy(sel + i * t.dim, t.grads + (size_t)idx[i] * t.dim, t.dim * sizeof *sel);
    assert_int_equal(ff_privacy_clip_sum(sel, batch, t.dim, 1.0, ref), FF_OK);
    for (size_t j = 0; j < t.dim; j++)
        assert_true(fabsf(sum[j] - ref[j]) < 1e-5f);
    /* Each clipped contribution has norm ≤ C: the sum of batch of them is ≤ batch·C. */
    assert_true(ff_privacy_l2_norm(ref, t.dim) <= (double)batch);
    /* σ > 0 moves the sum by about σC per coordinate. */
    ff_rng_init(&rng, 5, 0);
    assert_int_equal(ff_privacy_dpsgd_step(&rng, t.n, 0.1, 2.0, 1.0, &t, toy_norms, toy_accum,
                                           idx, &batch, sum, t.dim),
                     FF_OK);
    double dev = 0;
    for (size_t j = 0; j < t.dim; j++)
        dev += (sum[j] - ref[j]) * (sum[j] - ref[j]);
    dev = sqrt(dev / t.dim);
    assert_true(dev > 1.0 && dev < 3.0);
    free(sel);
    free(idx);
    free(t.grads);
}

static void test_clip_scales(void **state)
{
    (void)state;
    double norms[] = {0.0, 0.5, 1.0, 4.0};
    float s[4];
    assert_int_equal(ff_privacy_clip_scales(norms, 4, 1.0, s), FF_OK);
    assert_true(s[0] == 1.0f && s[1] == 1.0f && s[2] == 1.0f);
    assert_true(s[3] <= 0.25f && s[3] > 0.2499f);
    norms[1] = -1;
    assert_int_equal(ff_privacy_clip_scales(norms, 4, 1.0, s), FF_ENUMERIC);
    ft_assert_error_has("per-example norm 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_gaussian_noise_std),
        cmocka_unit_test(test_poisson_sample),
        cmocka_unit_test(test_dpsgd_step_matches_materialised),
        cmocka_unit_test(test_clip_scales),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
