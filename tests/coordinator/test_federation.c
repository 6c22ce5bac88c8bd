/* The in-process proof that the engine works: a 4-site federated linear regression on
 * heterogeneous synthetic data. With one local full-batch GD step per round, FedAvg weighted
 * by example counts is exactly gradient descent on the pooled loss, so it must reach the
 * pooled least-squares optimum (normal equations, double precision); the adaptive server
 * optimisers must get there too. Also: crash mid-round and resume gives a bit-identical
 * final model. */
#include "testutil.h"
#include "toyfed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The convergence runs checkpoint every round like any run; they test the mathematics, not
 * durability, so they write to tmpfs when there is one (fsync is free there) and the 2,000+
 * fsyncs do not depend on how busy the shared disk is. The crash tests use ft_tmpdir. */
static const char *fast_tmpdir(char buf[64])
{
    snprintf(buf, 64, "/dev/shm/fftest.XXXXXX");
    if (mkdtemp(buf))
        return buf;
    return ft_tmpdir();
}

static void fast_rmtree(const char *dir)
{
    if (strncmp(dir, "/dev/shm/fftest.", 16) == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            print_message("warning: could not remove %s\n", dir);
    } else {
        ft_rmtree(dir);
    }
}

static double dist_to_opt(const toy_fed *f, const float *w)
{
    double opt[TOY_N], d = 0;
    toy_pooled_optimum(f, opt);
    for (int j = 0; j < TOY_N; j++)
        d += (w[j] - opt[j]) * (w[j] - opt[j]);
    return sqrt(d);
}

static void run_strategy(int strategy, int64_t rounds, double server_lr, double tol)
{
    toy_fed f;
    toy_init(&f);
    char tb[64];
    const char *tmp = fast_tmpdir(tb);
    ff_coord_config cfg;
    toy_config(&cfg, tmp, rounds, strategy);
    cfg.strategy.server_lr = server_lr;
    toy_clock clk = {0};
    float w[TOY_N];
    assert_int_equal(toy_run(&f, &cfg, toy_clock_now, &clk, w), 1);
    double d = dist_to_opt(&f, w);
    double opt[TOY_N];
    toy_pooled_optimum(&f, opt);
    float optf[TOY_N];
    for (int j = 0; j < TOY_N; j++)
        optf[j] = (float)opt[j];
    double gap = toy_pooled_loss(&f, w) - toy_pooled_loss(&f, optf);
    print_message("%-10s rounds %lld: |w - w*| = %.3g, loss gap %.3g (initial loss %.4g)\n",
                  ff_strategy_name(strategy), (long long)rounds, d, gap,
                  toy_pooled_loss(&f, f.init));
    assert_true(d < tol);
    ff_coord_config_free(&cfg);
    fast_rmtree(tmp);
    toy_free(&f);
}

static void test_fedavg_reaches_pooled_optimum(void **state)
{
    (void)state;
    run_strategy(FF_STRATEGY_FEDAVG, 400, 1.0, 1e-4);
}

static void test_fedadam_converges(void **state)
{
    (void)state;
    run_strategy(FF_STRATEGY_FEDADAM, 600, 0.03, 1e-4);
}

static void test_fedyogi_converges(void **state)
{
    (void)state;
    run_strategy(FF_STRATEGY_FEDYOGI, 600, 0.03, 1e-4);
}

static void test_fedadagrad_converges(void **state)
{
    (void)state;
    run_strategy(FF_STRATEGY_FEDADAGRAD, 600, 0.3, 1e-4);
}

static double drift_run(int strategy, float mu)
{
    toy_fed f;
    toy_init(&f);
    f.local_steps = 30;
    f.lr = 0.05f;
    f.mu = mu;
    char tb[64];
    const char *tmp = fast_tmpdir(tb);
    ff_coord_config cfg;
    toy_config(&cfg, tmp, 300, strategy);
    toy_clock clk = {0};
    float w[TOY_N];
    assert_int_equal(toy_run(&f, &cfg, toy_clock_now, &clk, w), 1);
    double d = dist_to_opt(&f, w);
    print_message("%s mu %.2f, 30 local steps: |w - w*| = %.4g\n", ff_strategy_name(strategy),
                  (double)mu, d);
    ff_coord_config_free(&cfg);
    fast_rmtree(tmp);
    toy_free(&f);
    return d;
}

static void test_local_steps_drift_and_fedprox(void **state)
{
    (void)state;
    /* Several local steps on heterogeneous sites: client drift moves FedAvg's fixed point
     * off the pooled optimum (a little, with a small learning rate); FedProx's proximal
     * term mu (w - w_global) pulls local models back and shrinks that drift. */
    double avg = drift_run(FF_STRATEGY_FEDAVG, 0.0f);
    double prox = drift_run(FF_STRATEGY_FEDPROX, 1.0f);
    assert_true(avg > 1e-3);
    assert_true(prox < 0.8 * avg);
}

static void crash_and_resume(int strategy, int sampling_fraction)
{
    toy_fed f;
    toy_init(&f);
    const char *ta = ft_tmpdir(), *tb = ft_tmpdir();
    ff_coord_config ca, cb;
    toy_config(&ca, ta, 12, strategy);
    toy_config(&cb, tb, 12, strategy);
    if (sampling_fraction) {
        ca.sampling.mode = cb.sampling.mode = FF_SAMPLE_FRACTION;
        ca.sampling.fraction = cb.sampling.fraction = 0.5;
        ca.seed = cb.seed = 99;
    }
    toy_clock clk = {0};
    float ref[TOY_N], got[TOY_N];
    assert_int_equal(toy_run(&f, &ca, toy_clock_now, &clk, ref), 1);
    /* Crash at several points: mid-train, mid-evaluate, right after a round; each restart
     * resumes from the last checkpoint. */
    long crashes[] = {3, 9, 14, 22, 31, 47};
    f.submissions = 0;
    for (size_t i = 0; i < FF_ARRAY_LEN(crashes); i++) {
        f.crash_after = crashes[i];
        int r = toy_run(&f, &cb, toy_clock_now, &clk, NULL);
        assert_true(r == 0 || r == 1);
    }
    f.crash_after = -1;
    assert_int_equal(toy_run(&f, &cb, toy_clock_now, &clk, got), 1);
    assert_memory_equal(ref, got, sizeof ref); /* bit-identical */
    /* The final model files agree byte for byte too, and rounds.csv has one line per round. */
    char ha[FF_SHA256_HEX], hb[FF_SHA256_HEX];
    assert_int_equal(ff_sha256_file(ft_path(ca.out_dir, "model.safetensors"), ha), FF_OK);
    assert_int_equal(ff_sha256_file(ft_path(cb.out_dir, "model.safetensors"), hb), FF_OK);
    assert_string_equal(ha, hb);
    char *csv;
    size_t len;
    assert_int_equal(ff_file_read_all(ft_path(cb.out_dir, "rounds.csv"), 1 << 20, &csv, &len), FF_OK);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += csv[i] == '\n';
    assert_int_equal(lines, 13);
    free(csv);
    ff_coord_config_free(&ca);
    ff_coord_config_free(&cb);
    ft_rmtree(ta);
    ft_rmtree(tb);
    toy_free(&f);
}

static void test_crash_resume_fedavg(void **state)
{
    (void)state;
    crash_and_resume(FF_STRATEGY_FEDAVG, 0);
}

static void test_crash_resume_fedadam_sampled(void **state)
{
    (void)state;
    /* Adaptive state and the sampling RNG must both survive the crash. */
    crash_and_resume(FF_STRATEGY_FEDADAM, 1);
}

static void test_crash_resume_fedyogi(void **state)
{
    (void)state;
    crash_and_resume(FF_STRATEGY_FEDYOGI, 1);
}

int main(void)
{
    ff_log_set_level(FF_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fedavg_reaches_pooled_optimum),
        cmocka_unit_test(test_fedadam_converges),
        cmocka_unit_test(test_fedyogi_converges),
        cmocka_unit_test(test_fedadagrad_converges),
        cmocka_unit_test(test_local_steps_drift_and_fedprox),
        cmocka_unit_test(test_crash_resume_fedavg),
        cmocka_unit_test(test_crash_resume_fedadam_sampled),
        cmocka_unit_test(test_crash_resume_fedyogi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
