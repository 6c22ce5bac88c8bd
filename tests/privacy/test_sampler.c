/* The exact samplers (CKS20) against their exact probability mass functions: chi-square
 * goodness of fit on seeded draws, at a 1e-4 false-alarm level, plus a check that the same
 * test rejects a slightly wrong pmf (so it has the power to fail). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/privacy.h"

#define SPAN 400 /* support kept in the histogram: |k| ≤ SPAN */

/* χ² quantile by Wilson-Hilferty; z = 3.719 is the upper 1e-4 normal quantile. */
static double chi2_crit(int df)
{
    double z = 3.719, a = 2.0 / (9.0 * df);
    double c = 1 - a + z * sqrt(a);
    return df * c * c * c;
}

/* χ² of counts[−SPAN..SPAN] against pmf (unnormalised weights w(k)); bins with expected
 * < 20 are merged into their outer neighbours. Returns the statistic, *df the degrees of
 * freedom. */
static double chi2_stat(const long *counts, double (*w)(long k, double p), double p, long n,
                        int *df)
{
    double z = 0;
    for (long k = -SPAN; k <= SPAN; k++)
        z += w(k, p);
    double stat = 0, exp_acc = 0, obs_acc = 0;
    int bins = 0;
    for (long k = -SPAN; k <= SPAN; k++) {
        exp_acc += n * w(k, p) / z;
        obs_acc += counts[k + SPAN];
        int last = k == SPAN;
        /* close a bin once it is big enough, unless what remains would be too small */
        double rest = 0;
        for (long j = k + 1; j <= SPAN && rest < 20; j++)
            rest += n * w(j, p) / z;
        if ((exp_acc >= 20 && rest >= 20) || last) {
            stat += (obs_acc - exp_acc) * (obs_acc - exp_acc) / exp_acc;
            bins++;
            exp_acc = obs_acc = 0;
        }
    }
    *df = bins - 1;
    return stat;
}

static double w_gauss(long k, double s2)
{
    return exp(-(double)k * (double)k / (2 * s2));
}

static double w_laplace(long k, double t)
{
    return exp(-fabs((double)k) / t);
}

static void check_dgauss(uint64_t num, uint64_t den, uint64_t seed)
{
    const long n = 100000;
    long *counts = calloc(2 * SPAN + 1, sizeof *counts);
    assert_non_null(counts);
    ff_rng rng;
    ff_rng_init(&rng, seed, 11);
    double s1 = 0, s2 = 0;
    for (long i = 0; i < n; i++) {
        int64_t x;
        assert_int_equal(ff_privacy_discrete_gaussian(&rng, num, den, &x), FF_OK);
        assert_true(x >= -SPAN && x <= SPAN);
        counts[x + SPAN]++;
        s1 += (double)x;
        s2 += (double)x * (double)x;
    }
    double sig2 = (double)num / (double)den;
    int df;
    double stat = chi2_stat(counts, w_gauss, sig2, n, &df);
    double crit = chi2_crit(df);
    /* The exact variance of N_Z(0, σ²) (below σ² for small σ). */
    double z = 0, v = 0;
    for (long k = -SPAN; k <= SPAN; k++) {
        z += w_gauss(k, sig2);
        v += (double)k * k * w_gauss(k, sig2);
    }
    v /= z;
    double mean = s1 / n, var = s2 / n - mean * mean;
    print_message("sigma^2 %g: chi2 %.1f (df %d, crit %.1f), mean %.4f, var %.4f (exact %.4f)\n",
                  sig2, stat, df, crit, mean, var, v);
    assert_true(stat < crit);
    assert_true(fabs(mean) < 5 * sqrt(v / n));
    assert_true(fabs(var - v) < 6 * v * sqrt(2.0 / n));
    /* Power: the same draws against a pmf with 5% more variance must be rejected. */
    double wrong = chi2_stat(counts, w_gauss, sig2 * 1.05, n, &df);
    assert_true(wrong > chi2_crit(df));
    free(counts);
}

static void test_discrete_gaussian_small(void **state)
{
    (void)state;
    check_dgauss(1, 2, 1); /* σ² = 1/2: the smallest KLS21 allows */
    check_dgauss(9, 4, 2); /* σ² = 2.25: rational, t = 2 */
}

static void test_discrete_gaussian_larger(void **state)
{
    (void)state;
    check_dgauss(25, 1, 3);
    check_dgauss(121 * 16384, 4 * 16384, 4); /* σ² = 30.25 with a large denominator */
}

/* Large σ (den = 1): moments only, the pmf is too wide for the histogram. */
static void test_discrete_gaussian_huge(void **state)
{
    (void)state;
    ff_rng rng;
    ff_rng_init(&rng, 8, 14);
    const long n = 20000;
    const double s2 = (double)((uint64_t)1 << 38);
    double s1 = 0, sq = 0;
    for (long i = 0; i < n; i++) {
        int64_t x;
        assert_int_equal(ff_privacy_discrete_gaussian(&rng, (uint64_t)1 << 38, 1, &x), FF_OK);
        s1 += (double)x;
        sq += (double)x * (double)x;
    }
    double mean = s1 / n, var = sq / n - mean * mean;
    print_message("sigma^2 2^38: mean/sigma %.4f, var/sigma^2 %.4f\n", mean / sqrt(s2), var / s2);
    assert_true(fabs(mean) < 5 * sqrt(s2 / n));
    assert_true(fabs(var / s2 - 1) < 6 * sqrt(2.0 / n));
}

static void test_discrete_laplace(void **state)
{
    (void)state;
    const long n = 100000;
    const uint64_t t = 3;
    long *counts = calloc(2 * SPAN + 1, sizeof *counts);
    assert_non_null(counts);
    ff_rng rng;
    ff_rng_init(&rng, 5, 12);
    for (long i = 0; i < n; i++) {
        int64_t x = ff_privacy_discrete_laplace(&rng, t);
        assert_true(x >= -SPAN && x <= SPAN);
        counts[x + SPAN]++;
    }
    int df;
    double stat = chi2_stat(counts, w_laplace, (double)t, n, &df);
    print_message("laplace t=%llu: chi2 %.1f (df %d, crit %.1f)\n", (unsigned long long)t, stat,
                  df, chi2_crit(df));
    assert_true(stat < chi2_crit(df));
    assert_true(chi2_stat(counts, w_laplace, t * 1.05, n, &df) > chi2_crit(df));
    free(counts);
}

/* Bernoulli(exp(−n/d)) frequencies within 5 standard errors of e^{−n/d}. */
static void test_bernoulli_exp(void **state)
{
    (void)state;
    static const uint64_t cases[][2] = {{0, 1}, {1, 3}, {1, 1}, {5, 2}, {7, 1}, {123, 1000}};
    ff_rng rng;
    ff_rng_init(&rng, 6, 13);
    const long n = 100000;
    for (size_t c = 0; c < FF_ARRAY_LEN(cases); c++) {
        long hits = 0;
        for (long i = 0; i < n; i++)
            hits += ff_privacy_bernoulli_exp(&rng, cases[c][0], cases[c][1]);
        double p = exp(-(double)cases[c][0] / (double)cases[c][1]);
        double se = sqrt(p * (1 - p) / n) + 1e-12;
        print_message("exp(-%llu/%llu) = %.5f, observed %.5f\n", (unsigned long long)cases[c][0],
                      (unsigned long long)cases[c][1], p, (double)hits / n);
        assert_true(fabs((double)hits / n - p) <= 5 * se);
    }
}

static void test_sampler_rejects_bad_params(void **state)
{
    (void)state;
    ff_rng rng;
    ff_rng_init(&rng, 1, 1);
    int64_t x;
    assert_int_equal(ff_privacy_discrete_gaussian(&rng, 0, 1, &x), FF_ERANGE);
    assert_int_equal(ff_privacy_discrete_gaussian(&rng, 1, (1u << 16) + 1, &x), FF_ERANGE);
    assert_int_equal(ff_privacy_discrete_gaussian(&rng, (uint64_t)1 << 40, 1, &x), FF_ERANGE);
    ft_assert_error_has("discrete gaussian");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discrete_gaussian_small),
        cmocka_unit_test(test_discrete_gaussian_larger),
        cmocka_unit_test(test_discrete_gaussian_huge),
        cmocka_unit_test(test_discrete_laplace),
        cmocka_unit_test(test_bernoulli_exp),
        cmocka_unit_test(test_sampler_rejects_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
