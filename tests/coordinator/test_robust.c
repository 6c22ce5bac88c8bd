/* Robust aggregation against numpy / scipy.stats.trim_mean (oracle_robust.py, run here with
 * /usr/bin/python3) on random updates with a minority of adversarial sites (huge-norm and
 * sign-flipped), the stated bound, norm clipping on a known answer, and the config rules. */
#include "testutil.h"

#include "ff/coordinator.h"
#include "toyfed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *g_ref;

static int setup(void **state)
{
    (void)state;
    const char *out = FF_BINARY_DIR "/tests/coordinator/robust_ref.txt";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/coordinator/oracle_robust.py %s",
             FF_SOURCE_DIR, out);
    if (system(cmd) != 0 || !(g_ref = fopen(out, "r"))) {
        fprintf(stderr, "FATAL: %s failed (/usr/bin/python3 with numpy is required)\n", cmd);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_ref)
        fclose(g_ref);
    return 0;
}

static void read_vec(double *v, size_t n)
{
    for (size_t j = 0; j < n; j++)
        assert_int_equal(fscanf(g_ref, "%lf", &v[j]), 1);
}

static double max_rel_diff(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t j = 0; j < n; j++) {
        double d = fabs((double)a[j] - b[j]) / fmax(1.0, fabs(b[j]));
        m = fmax(m, d);
    }
    return m;
}

/* Stated bound: with f hostile sites, f < k/2 for the median and f ≤ floor(beta k) for the
 * trimmed mean, every coordinate of the result lies within the honest sites' range there. */
static void assert_in_honest_range(const float *r, float **u, size_t k, size_t n, size_t f)
{
    for (size_t j = 0; j < n; j++) {
        float lo = u[f][j], hi = u[f][j];
        for (size_t i = f; i < k; i++) {
            lo = fminf(lo, u[i][j]);
            hi = fmaxf(hi, u[i][j]);
        }
        assert_true(r[j] >= lo - 1e-6f && r[j] <= hi + 1e-6f);
    }
}

static void test_matches_numpy_and_resists(void **state)
{
    (void)state;
    int ncases;
    assert_int_equal(fscanf(g_ref, "%d", &ncases), 1);
    assert_true(ncases >= 5);
    for (int c = 0; c < ncases; c++) {
        size_t k, n, f;
        double beta;
        assert_int_equal(fscanf(g_ref, "%zu %zu %zu %lf", &k, &n, &f, &beta), 4);
        float **u = calloc(k, sizeof *u);
        double *tmp = calloc(n, sizeof *tmp), *honest = calloc(n, sizeof *honest);
        double *med = calloc(n, sizeof *med), *trim = calloc(n, sizeof *trim);
        double *mean = calloc(n, sizeof *mean);
        float *out = calloc(n, sizeof *out);
        assert_non_null(u && tmp && honest && med && trim && mean && out);
        for (size_t i = 0; i < k; i++) {
            u[i] = calloc(n, sizeof(float));
            read_vec(tmp, n);
            for (size_t j = 0; j < n; j++)
                u[i][j] = (float)tmp[j];
        }
        read_vec(honest, n);
        read_vec(med, n);
        read_vec(trim, n);
        read_vec(mean, n);
        const float *const *cu = (const float *const *)u;

        assert_int_equal(ff_strategy_aggregate_robust(out, cu, k, n, FF_AGG_MEDIAN, beta), FF_OK);
        assert_true(max_rel_diff(out, med, n) < 1e-6);
        assert_in_honest_range(out, u, k, n, f);

        assert_int_equal(ff_strategy_aggregate_robust(out, cu, k, n, FF_AGG_TRIMMED_MEAN, beta),
                         FF_OK);
        assert_true(max_rel_diff(out, trim, n) < 1e-6);
        assert_in_honest_range(out, u, k, n, f);

        /* The mean follows the attackers: far outside the honest range when f > 0. */
        assert_int_equal(ff_strategy_aggregate_robust(out, cu, k, n, FF_AGG_MEAN, beta), FF_OK);
        assert_true(max_rel_diff(out, mean, n) < 1e-6);
        double worst = 0;
        for (size_t j = 0; j < n; j++)
            worst = fmax(worst, fabs((double)out[j] - honest[j]));
        if (f > 0)
            assert_true(worst > 1.0);
        for (size_t i = 0; i < k; i++)
            free(u[i]);
        free(u), free(tmp), free(honest), free(med), free(trim), free(mean), free(out);
    }
}

static void test_refuses_bad_input(void **state)
{
    (void)state;
    float a[2] = {1, 2}, b[2] = {NAN, 0}, out[2];
    const float *ups[2] = {a, b};
    assert_int_equal(ff_strategy_aggregate_robust(out, ups, 2, 2, FF_AGG_MEDIAN, 0.1), FF_ENUMERIC);
    ft_assert_error_has("update 1 has a non-finite value at 0");
    b[0] = INFINITY;
    assert_int_equal(ff_strategy_aggregate_robust(out, ups, 2, 2, FF_AGG_TRIMMED_MEAN, 0.1),
                     FF_ENUMERIC);
    assert_int_equal(ff_strategy_aggregate_robust(out, ups, 0, 2, FF_AGG_MEDIAN, 0.1), FF_EINVAL);
    assert_int_equal(ff_strategy_aggregate_robust(out, ups, 2, 2, FF_AGG_TRIMMED_MEAN, 0.5),
                     FF_EINVAL);
    assert_int_equal(ff_strategy_aggregate_robust(out, ups, 2, 2, 7, 0.1), FF_EINVAL);
}

/* Known answer: norms 1, 2 and 100 along one axis; median 2, multiple 3 → bound 6. */
static void test_clip_known_answer(void **state)
{
    (void)state;
    float a[2] = {0.6f, 0.8f}, b[2] = {0, 2}, c[2] = {60, -80};
    float *ups[3] = {a, b, c};
    size_t nc = 99;
    assert_int_equal(ff_strategy_clip_updates(ups, 3, 2, 3.0, &nc), FF_OK);
    assert_int_equal(nc, 1);
    assert_true(a[0] == 0.6f && a[1] == 0.8f && b[0] == 0 && b[1] == 2);
    assert_float_equal(c[0], 3.6f, 1e-5);
    assert_float_equal(c[1], -4.8f, 1e-5);
    assert_int_equal(ff_strategy_clip_updates(ups, 3, 2, 0, &nc), FF_OK); /* off */
    assert_int_equal(nc, 0);
    c[0] = INFINITY;
    assert_int_equal(ff_strategy_clip_updates(ups, 3, 2, 3.0, &nc), FF_ENUMERIC);
}

static int load(ff_coord_config *c, const char *yaml)
{
    return ff_coord_config_load_str(c, "coordinator.yaml", yaml, strlen(yaml));
}

static void test_config(void **state)
{
    (void)state;
    ff_coord_config c;
    assert_int_equal(load(&c, "run_name: a\nrounds: 3\n"), FF_OK);
    assert_int_equal(c.strategy.aggregator, FF_AGG_MEAN);
    assert_true(c.strategy.trim_fraction == 0.1 && c.strategy.clip_multiple == 0);
    ff_coord_config_free(&c);
    assert_int_equal(load(&c, "run_name: a\nrounds: 3\nstrategy:\n  aggregator: trimmed_mean\n"
                              "  trim_fraction: 0.25\n  clip_multiple: 4\n"),
                     FF_OK);
    assert_int_equal(c.strategy.aggregator, FF_AGG_TRIMMED_MEAN);
    assert_true(c.strategy.trim_fraction == 0.25 && c.strategy.clip_multiple == 4);
    ff_coord_config_free(&c);
    assert_int_equal(load(&c, "run_name: a\nrounds: 3\nstrategy:\n  aggregator: median\n"
                              "quorum:\n  min_sites: 2\nsecure_aggregation:\n  enabled: true\n  threshold: 2\n"),
                     FF_ECONFIG);
    ft_assert_error_has("coordinator.yaml:4:3: strategy.aggregator: median needs single updates");
    ff_coord_config_free(&c);
    assert_int_equal(load(&c, "run_name: a\nrounds: 3\nstrategy:\n  clip_multiple: 2\n"
                              "quorum:\n  min_sites: 2\nsecure_aggregation:\n  enabled: true\n  threshold: 2\n"),
                     FF_ECONFIG);
    ft_assert_error_has("strategy.clip_multiple: 2 needs single update norms");
    ff_coord_config_free(&c);
    assert_int_equal(load(&c, "run_name: a\nrounds: 3\nstrategy:\n  trim_fraction: 0.5\n"),
                     FF_ECONFIG);
    ft_assert_error_has("strategy.trim_fraction: 0.5 is out of range");
    ff_coord_config_free(&c);
    assert_int_equal(load(&c, "run_name: a\nrounds: 3\nstrategy:\n  aggregator: mode\n"),
                     FF_ECONFIG);
    ft_assert_error_has("'mode' is not one of: mean, median, trimmed_mean");
    ff_coord_config_free(&c);
}

/* The engine end to end: the toy federation (4 sites) with site-d sending its update
 * multiplied by -1000 every round (sign-flipped and huge, finite so it is accepted). The mean
 * diverges (loss > 10^6 x the honest run's); median and trimmed mean (beta 0.25 cuts one site
 * from each end) still learn: loss below a quarter of the initial model's and within 4x of the
 * honest weighted mean (they estimate the middle of heterogeneous sites, not the pooled
 * optimum, so they do not reach the honest mean's loss exactly). */
static double g_init_loss;

static double run_toy(int aggregator, int hostile)
{
    toy_fed f;
    toy_init(&f);
    if (hostile) {
        f.hostile_site = 3;
        f.hostile_scale = -1000.0f;
    }
    ff_coord_config cfg;
    toy_config(&cfg, ft_tmpdir(), 15, FF_STRATEGY_FEDAVG);
    cfg.strategy.aggregator = aggregator;
    cfg.strategy.trim_fraction = 0.25;
    g_init_loss = toy_pooled_loss(&f, f.init);
    float w[TOY_N];
    int rc = toy_run(&f, &cfg, NULL, NULL, w);
    double loss = rc == 1 ? toy_pooled_loss(&f, w) : INFINITY;
    ff_coord_config_free(&cfg);
    toy_free(&f);
    return loss;
}

static void test_engine_with_hostile_site(void **state)
{
    (void)state;
    double honest = run_toy(FF_AGG_MEAN, 0);
    double mean = run_toy(FF_AGG_MEAN, 1);
    double med = run_toy(FF_AGG_MEDIAN, 1);
    double trim = run_toy(FF_AGG_TRIMMED_MEAN, 1);
    printf("pooled loss after 15 rounds: initial %.4g, honest mean %.4g, hostile: mean %.4g, "
           "median %.4g, trimmed %.4g\n", g_init_loss, honest, mean, med, trim);
    assert_true(!(mean < 1e6 * honest)); /* corrupted (or diverged to non-finite) */
    assert_true(med < 0.25 * g_init_loss && med < 4 * honest);
    assert_true(trim < 0.25 * g_init_loss && trim < 4 * honest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_numpy_and_resists),
        cmocka_unit_test(test_refuses_bad_input),
        cmocka_unit_test(test_clip_known_answer),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_engine_with_hostile_site),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
