/* The distributed discrete Gaussian: rotation exactness, the encode → modular sum → decode
 * pipeline against the true sum, and the accounting against the continuous Gaussian it
 * converges to, against the exact sampled Gaussian (a lower bound for the sampled bound),
 * and a hand-computed τ. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/privacy.h"

static void test_rotation_exact_inverse(void **state)
{
    (void)state;
    const size_t d = 1024; /* √d = 32: every step is exact on small integers */
    double *x = malloc(d * sizeof *x), *y = malloc(d * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    ff_rng rng;
    ff_rng_init(&rng, 9, 1);
    for (size_t i = 0; i < d; i++)
        x[i] = (double)((int)ff_rng_below(&rng, 2001) - 1000);
    memcpy(y, x, d * sizeof *x);
    assert_int_equal(ff_privacy_rotate(y, d, 77), FF_OK);
    assert_memory_not_equal(x, y, d * sizeof *x);
    assert_int_equal(ff_privacy_unrotate(y, d, 77), FF_OK);
    for (size_t i = 0; i < d; i++)
        assert_true(y[i] == x[i]); /* exact (a 0 may come back as −0) */
    /* Non power of 4 and real inputs: inverse to rounding, and the norm is kept. */
    const size_t d2 = 512;
    double n0 = 0, n1 = 0;
    for (size_t i = 0; i < d2; i++) {
        x[i] = ff_rng_normal(&rng);
        n0 += x[i] * x[i];
    }
    memcpy(y, x, d2 * sizeof *x);
    assert_int_equal(ff_privacy_rotate(y, d2, 5), FF_OK);
    for (size_t i = 0; i < d2; i++)
        n1 += y[i] * y[i];
    assert_true(fabs(n1 - n0) < 1e-12 * n0);
    assert_int_equal(ff_privacy_unrotate(y, d2, 5), FF_OK);
    for (size_t i = 0; i < d2; i++)
        assert_true(fabs(y[i] - x[i]) < 1e-13);
    /* A different seed is a different rotation. */
    assert_int_equal(ff_privacy_rotate(y, d2, 6), FF_OK);
    assert_int_equal(ff_privacy_unrotate(y, d2, 5), FF_OK);
    size_t differ = 0; /* D5·D6 flips about half of the coordinates */
    for (size_t i = 0; i < d2; i++)
        differ += fabs(y[i] - x[i]) > 1e-9;
    assert_true(differ > d2 / 4 && differ < 3 * d2 / 4);
    assert_int_equal(ff_privacy_rotate(y, 300, 5), FF_EINVAL);
    free(x);
    free(y);
}

/* Sites encode, the modular sum is taken as secure aggregation would, the server decodes.
 * The residual against the true sum of clipped updates must look like the noise: its RMS
 * near sqrt(n (σ² + rounding variance ≤ γ²/4)). */
static void run_pipeline(double sigma_site, int bits, double *rms, double *expect_hi,
                         double *expect_lo)
{
    const size_t n = 300, sites = 5;
    size_t d = ff_privacy_ddg_padded_dim(n);
    assert_int_equal(d, 512);
    ff_privacy_ddg_config cfg = {.clip_norm = 1.0, .beta = exp(-0.5), .sigma = sigma_site,
                                 .bits = bits, .rotation_seed = 1234};
    cfg.gamma = ff_privacy_ddg_choose_gamma(cfg.clip_norm, sigma_site > 0 ? sigma_site : 1e-3,
                                            (int64_t)sites, d, bits);
    if (sigma_site > 0 && sigma_site < cfg.gamma / 2)
        cfg.sigma = cfg.gamma / 2;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    double *truth = calloc(n, sizeof *truth);
    uint64_t *enc = malloc(d * sizeof *enc), *sum = calloc(d, sizeof *sum);
    assert_true(x && y && truth && enc && sum);
    ff_rng data, noise;
    ff_rng_init(&data, 3, 0);
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    for (size_t s = 0; s < sites; s++) {
        ff_rng_normal_fill(&data, x, n, 0.0f, 0.1f); /* norm ≈ 1.7: will be clipped */
        double nrm = ff_privacy_l2_norm(x, n);
        for (size_t i = 0; i < n; i++)
            truth[i] += x[i] * (nrm > 1.0 ? 1.0 / nrm : 1.0);
        ff_rng_init(&noise, 100 + s, 7); /* each site's private randomness */
        assert_int_equal(ff_privacy_ddg_encode(&cfg, &noise, x, n, enc, d), FF_OK);
        for (size_t i = 0; i < d; i++) {
            assert_true(enc[i] <= mask);
            sum[i] = (sum[i] + enc[i]) & mask;
        }
    }
    assert_int_equal(ff_privacy_ddg_decode(&cfg, sum, d, y, n), FF_OK);
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += (y[i] - truth[i]) * (y[i] - truth[i]);
    *rms = sqrt(se / n);
    *expect_hi = sqrt(sites * (cfg.sigma * cfg.sigma + cfg.gamma * cfg.gamma / 4));
    *expect_lo = sqrt(sites * cfg.sigma * cfg.sigma);
    print_message("sigma %g gamma %g bits %d: residual rms %.5f, expected %.5f..%.5f\n",
                  cfg.sigma, cfg.gamma, bits, *rms, *expect_lo, *expect_hi);
    free(x);
    free(y);
    free(truth);
    free(enc);
    free(sum);
}

static void test_pipeline_recovers_sum(void **state)
{
    (void)state;
    double rms, hi, lo;
    run_pipeline(0.05, 20, &rms, &hi, &lo);
    assert_true(rms < 1.2 * hi && rms > 0.8 * lo);
    /* Without noise only rounding remains (variance ≤ γ²/4 per site per coordinate). */
    run_pipeline(0.0, 20, &rms, &hi, &lo);
    assert_true(rms < 1.2 * hi);
    /* Few bits: sites' residues wrap around the modulus, the sum still decodes. */
    run_pipeline(0.05, 12, &rms, &hi, &lo);
    assert_true(rms < 1.2 * hi && rms > 0.8 * lo);
}

static void test_ddg_accounting_gaussian_limit(void **state)
{
    (void)state;
    /* σ/γ = 10: τ = 10 Σ e^{−2π²·100·k/(k+1)} underflows to 0, and with β = 0 the RDP is
     * that of a Gaussian with std √n σ and sensitivity Δ = c + γ√d. */
    ff_privacy_ddg_params p = {.clip_norm = 1.0, .gamma = 1e-3, .beta = 0, .sigma = 1e-2,
                               .dim = 1024, .survivors = 8};
    assert_true(ff_privacy_ddg_tau(&p) == 0.0);
    double delta_l2 = 1.0 + 1e-3 * 32.0;
    assert_true(fabs(ff_privacy_ddg_sensitivity_sq(&p) - delta_l2 * delta_l2) < 1e-15);
    double orders[] = {1.5, 2, 8, 32};
    for (size_t i = 0; i < FF_ARRAY_LEN(orders); i++) {
        double r, g;
        assert_int_equal(ff_privacy_ddg_rdp(&p, orders[i], &r), FF_OK);
        assert_int_equal(ff_privacy_rdp_sgm(1.0, sqrt(8.0) * 1e-2 / delta_l2, orders[i],
                                            FF_PRIVACY_SERIES_DP_ACCOUNTING, &g),
                         FF_OK);
        assert_true(ft_rel_err(r, g, 1e-300) < 1e-12);
    }
}

/* τ by hand for n = 3, σ/γ = 1/2: 10 (e^{−π²/4} + e^{−π²/3}). */
static void test_ddg_tau_and_dropouts(void **state)
{
    (void)state;
    ff_privacy_ddg_params p = {.clip_norm = 1.0, .gamma = 0.02, .beta = 0, .sigma = 0.01,
                               .dim = 64, .survivors = 3};
    double want = 10 * (exp(-M_PI * M_PI / 4) + exp(-M_PI * M_PI / 3));
    assert_true(ft_rel_err(ff_privacy_ddg_tau(&p), want, 1e-300) < 1e-14);
    /* Drop-outs: fewer survivors, less noise in the sum, more privacy loss. */
    p.sigma = 0.05;
    double prev = 0;
    for (int64_t n = 10; n >= 1; n--) {
        p.survivors = n;
        double r;
        assert_int_equal(ff_privacy_ddg_rdp(&p, 4.0, &r), FF_OK);
        assert_true(r > prev);
        prev = r;
    }
    p.survivors = 0;
    double r;
    assert_int_equal(ff_privacy_ddg_rdp(&p, 4.0, &r), FF_ERANGE);
    ft_assert_error_has("survivors");
    p.survivors = 4;
    p.sigma = 0.009; /* below γ/2 */
    assert_int_equal(ff_privacy_ddg_rdp(&p, 4.0, &r), FF_ERANGE);
    ft_assert_error_has("gamma/2");
}

/* Site sampling (q < 1): the Zhu-Wang general bound must lie between the exact sampled
 * Gaussian (tight for this RDP curve) and the unsampled value. */
static void test_ddg_sampled_bound(void **state)
{
    (void)state;
    ff_privacy_ddg_params p = {.clip_norm = 1.0, .gamma = 1e-4, .beta = 0, .sigma = 0.02,
                               .dim = 16, .survivors = 50};
    double orders[] = {2, 3, 5, 8, 16, 32};
    ff_privacy_accountant full, sampled;
    assert_int_equal(ff_privacy_accountant_init(&full, orders, 6, 0), FF_OK);
    sampled = full;
    assert_int_equal(ff_privacy_accountant_add_ddg(&full, &p, 1.0, 1), FF_OK);
    assert_int_equal(ff_privacy_accountant_add_ddg(&sampled, &p, 0.1, 1), FF_OK);
    double delta_l2 = sqrt(ff_privacy_ddg_sensitivity_sq(&p));
    double eff = sqrt(50.0) * 0.02 / delta_l2;
    for (size_t i = 0; i < 6; i++) {
        double exact;
        assert_int_equal(ff_privacy_rdp_sgm(0.1, eff, orders[i], 0, &exact), FF_OK);
        print_message("order %g: sampled gaussian %.6g <= zhu-wang %.6g <= full %.6g\n",
                      orders[i], exact, sampled.rdp[i], full.rdp[i]);
        assert_true(sampled.rdp[i] >= exact * (1 - 1e-12));
        assert_true(sampled.rdp[i] <= full.rdp[i] * (1 + 1e-12));
    }
}

/* ε of whole runs against tests/privacy/oracle_ddg.py (an independent mpmath evaluation of
 * the same KLS21 bound, dp_accounting orders, improved conversion). */
static void test_ddg_epsilon_against_mpmath(void **state)
{
    (void)state;
    static const struct {
        double c, sigma, gamma;
        int64_t d, n;
        double beta;
        int64_t rounds;
        double delta, eps, tau;
    } cases[] = {
        {1, 0.5, 1e-3, 65536, 10, 0.6065306597126334, 1, 1e-3, 2.0618920051568617807, 0},
        {1, 0.5, 1e-3, 65536, 7, 0.6065306597126334, 1, 1e-3, 2.5503238838435493699, 0},
        {1, 0.3, 0.5, 64, 3, 0, 20, 1e-5, 1608.9944197046402415, 0.37398253406817265823},
        {0.5, 0.5, 1e-3, 4096, 5, 0.6065306597126334, 10, 1e-5, 7.1035323781666412824, 0},
    };
    double o[FF_PRIVACY_MAX_ORDERS];
    size_t no = ff_privacy_orders_dp_accounting(o);
    for (size_t i = 0; i < FF_ARRAY_LEN(cases); i++) {
        ff_privacy_ddg_params p = {.clip_norm = cases[i].c, .gamma = cases[i].gamma,
                                   .beta = cases[i].beta, .sigma = cases[i].sigma,
                                   .dim = cases[i].d, .survivors = cases[i].n};
        ff_privacy_accountant acc;
        double eps, order;
        assert_int_equal(ff_privacy_accountant_init(&acc, o, no, 0), FF_OK);
        assert_int_equal(ff_privacy_accountant_add_ddg(&acc, &p, 1.0, cases[i].rounds), FF_OK);
        assert_int_equal(ff_privacy_accountant_epsilon(&acc, cases[i].delta,
                                                       FF_PRIVACY_CONV_IMPROVED, &eps, &order),
                         FF_OK);
        double tau = ff_privacy_ddg_tau(&p);
        print_message("case %zu: eps %.15g (oracle %.15g), tau %.6g\n", i, eps, cases[i].eps,
                      tau);
        assert_true(ft_rel_err(eps, cases[i].eps, 1e-300) < 1e-12);
        assert_true(fabs(tau - cases[i].tau) <= 1e-13 * fmax(1.0, cases[i].tau));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotation_exact_inverse),
        cmocka_unit_test(test_pipeline_recovers_sum),
        cmocka_unit_test(test_ddg_accounting_gaussian_limit),
        cmocka_unit_test(test_ddg_tau_and_dropouts),
        cmocka_unit_test(test_ddg_sampled_bound),
        cmocka_unit_test(test_ddg_epsilon_against_mpmath),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
