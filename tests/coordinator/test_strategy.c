/* Strategies against reference values computed in float64 by oracle_strategies.py (numpy,
 * Reddi et al. 2021 Algorithm 2), FedAvg weighting, and the client-side helpers. */
#include "testutil.h"

#include "ff/coordinator.h"

#include <math.h>
#include <string.h>

static const float W0[5] = {0.5f, -1.0f, 2.0f, 0.0f, 3.0f};
static const float U[3][3][5] = {
    {{0.1f, -0.2f, 0.05f, 0.0f, 1.0f}, {0.3f, 0.1f, -0.05f, 0.2f, -1.0f}, {-0.1f, 0.0f, 0.0f, 0.4f, 0.5f}},
    {{0.02f, 0.02f, -0.3f, 0.1f, 0.0f}, {0.0f, -0.4f, 0.1f, 0.1f, 0.2f}, {0.05f, 0.05f, 0.05f, -0.6f, 0.3f}},
    {{-0.2f, 0.3f, 0.0f, 0.01f, -0.5f}, {0.1f, 0.1f, 0.1f, 0.1f, 0.1f}, {0.0f, -0.1f, 0.2f, 0.0f, 0.0f}},
};
static const double NEX[3][3] = {{10, 30, 60}, {5, 5, 90}, {100, 1, 1}};

typedef struct {
    int kind;
    double w[5], m[5], v[5];
} oracle;

/* Output of /usr/bin/python3 tests/coordinator/oracle_strategies.py */
static const oracle ORACLE[] = {
    {FF_STRATEGY_FEDAVG,
     {0.390901960784, -0.669882352941, 2.02794117647, -0.219215686275, 2.89078431373},
     {0}, {0}},
    {FF_STRATEGY_FEDADAM,
     {0.636029252284, -0.763458843846, 2.06831146558, 0.0184043660697, 3.18404446339},
     {-0.0121298039216, 0.0325617647059, 0.00263411764706, -0.0223215686275, -0.0156215686275},
     {0.000418232748058, 0.000873694702114, 1.41644041903e-05, 0.00366513331323, 0.00326846017597}},
    {FF_STRATEGY_FEDYOGI,
     {0.635814274062, -0.763639574716, 2.06832846998, 0.0186650404898, 3.18401297126},
     {-0.0121298039216, 0.0325617647059, 0.00263411764706, -0.0223215686275, -0.0156215686275},
     {0.000418792449058, 0.000873811903114, 1.41634948097e-05, 0.00370883698577, 0.00327831987697}},
    {FF_STRATEGY_FEDADAGRAD,
     {0.517080538178, -0.967844363131, 2.00491750441, 0.00204593944264, 3.01957916499},
     {-0.0121298039216, 0.0325617647059, 0.00263411764706, -0.0223215686275, -0.0156215686275},
     {0.0417802449058, 0.0872821903114, 0.00133465051903, 0.371017301423, 0.327732987697}},
};

static void test_strategies_match_numpy(void **state)
{
    (void)state;
    for (size_t o = 0; o < FF_ARRAY_LEN(ORACLE); o++) {
        ff_strategy_config cfg = {.name = ORACLE[o].kind, .server_lr = 0.1, .beta1 = 0.9,
                                  .beta2 = 0.99, .tau = 1e-3};
        if (cfg.name == FF_STRATEGY_FEDAVG)
            cfg.server_lr = 1.0;
        ff_strategy s;
        assert_int_equal(ff_strategy_init(&s, &cfg, 5), FF_OK);
        float w[5], d[5];
        memcpy(w, W0, sizeof w);
        for (int r = 0; r < 3; r++) {
            const float *ups[3] = {U[r][0], U[r][1], U[r][2]};
            assert_int_equal(ff_strategy_aggregate(d, ups, NEX[r], 3, 5), FF_OK);
            ff_strategy_apply(&s, w, d);
        }
        assert_int_equal(s.steps, 3);
        for (int j = 0; j < 5; j++) {
            double e = ft_rel_err(w[j], ORACLE[o].w[j], 1e-3);
            if (e > 2e-6)
                fail_msg("%s w[%d] = %.9g, numpy %.12g", ff_strategy_name(cfg.name), j, w[j], ORACLE[o].w[j]);
            if (s.m) {
                assert_true(ft_rel_err(s.m[j], ORACLE[o].m[j], 1e-6) < 2e-6);
                assert_true(ft_rel_err(s.v[j], ORACLE[o].v[j], 1e-9) < 2e-6);
            }
        }
        ff_strategy_free(&s);
    }
}

static void test_fedavg_weighting(void **state)
{
    (void)state;
    /* Two sites, 1 and 3 examples: (1*4 + 3*0)/4 = 1; (1*(-2) + 3*2)/4 = 1. */
    const float a[2] = {4, -2}, b[2] = {0, 2};
    const float *ups[2] = {a, b};
    const double wts[2] = {1, 3};
    float out[2];
    assert_int_equal(ff_strategy_aggregate(out, ups, wts, 2, 2), FF_OK);
    assert_true(out[0] == 1.0f && out[1] == 1.0f);
    /* Order of the inputs does not matter for the value */
    const float *rev[2] = {b, a};
    const double rw[2] = {3, 1};
    float out2[2];
    assert_int_equal(ff_strategy_aggregate(out2, rev, rw, 2, 2), FF_OK);
    assert_memory_equal(out, out2, sizeof out);
    /* Bad weights are errors, not silent zeros */
    const double bad[2] = {1, 0};
    assert_int_equal(ff_strategy_aggregate(out, ups, bad, 2, 2), FF_EINVAL);
    ft_assert_error_has("weight 1 is 0");
    assert_int_equal(ff_strategy_aggregate(out, ups, wts, 0, 2), FF_EINVAL);
    /* Server lr scales the step: w = 10 + 0.5 * 1 */
    ff_strategy s;
    ff_strategy_config cfg = {.name = FF_STRATEGY_FEDAVG, .server_lr = 0.5};
    assert_int_equal(ff_strategy_init(&s, &cfg, 2), FF_OK);
    assert_null(s.m);
    float w[2] = {10, 10};
    ff_strategy_apply(&s, w, out);
    assert_true(w[0] == 10.5f && w[1] == 10.5f);
    ff_strategy_free(&s);
}

static void test_adam_first_step_closed_form(void **state)
{
    (void)state;
    /* One FedAdam step from m=0, v=tau^2: m = (1-b1) d, v = b2 tau^2 + (1-b2) d^2,
     * w += eta m / (sqrt(v) + tau). With d = 1, b1 = 0.9, b2 = 0.99, tau = 0 .. use tau 1e-3. */
    ff_strategy_config cfg = {.name = FF_STRATEGY_FEDADAM, .server_lr = 1.0, .beta1 = 0.9,
                              .beta2 = 0.99, .tau = 1e-3};
    ff_strategy s;
    assert_int_equal(ff_strategy_init(&s, &cfg, 1), FF_OK);
    float w = 0, d = 1;
    ff_strategy_apply(&s, &w, &d);
    double v = 0.99 * 1e-6 + 0.01;
    double want = 0.1 / (sqrt(v) + 1e-3);
    assert_true(ft_rel_err(w, want, 1e-9) < 1e-6);
    ff_strategy_free(&s);
}

static void test_fedprox_grad_and_update(void **state)
{
    (void)state;
    const float p[3] = {1.0f, 2.0f, -1.0f}, g0[3] = {0.5f, 0.5f, 0.5f};
    float g[3];
    memcpy(g, g0, sizeof g);
    const float glob[3] = {0.0f, 2.5f, -3.0f};
    ff_fedprox_grad(p, glob, 0.1f, g, 3);
    /* g + mu (w - wg) = 0.5 + 0.1*{1, -0.5, 2} */
    assert_true(fabsf(g[0] - 0.6f) < 1e-7f && fabsf(g[1] - 0.45f) < 1e-7f && fabsf(g[2] - 0.7f) < 1e-7f);
    memcpy(g, g0, sizeof g);
    ff_fedprox_grad(p, glob, 0.0f, g, 3);
    assert_memory_equal(g, g0, sizeof g);
    float u[3];
    ff_fed_update_compute(u, p, glob, 3);
    assert_true(u[0] == 1.0f && u[1] == -0.5f && u[2] == 2.0f);
}

static void test_update_check(void **state)
{
    (void)state;
    float u[4] = {0, 1, 2, 3};
    size_t bad = 99;
    assert_int_equal(ff_fed_update_check(u, 4, 4, 10, &bad), FF_REFUSE_NONE);
    assert_int_equal(ff_fed_update_check(u, 3, 4, 10, &bad), FF_REFUSE_WRONG_SIZE);
    u[2] = NAN;
    assert_int_equal(ff_fed_update_check(u, 4, 4, 10, &bad), FF_REFUSE_NONFINITE);
    assert_int_equal(bad, 2);
    u[2] = 0;
    u[3] = -INFINITY;
    assert_int_equal(ff_fed_update_check(u, 4, 4, 10, &bad), FF_REFUSE_NONFINITE);
    assert_int_equal(bad, 3);
    u[3] = 0;
    assert_int_equal(ff_fed_update_check(u, 4, 4, 0, NULL), FF_REFUSE_BAD_WEIGHT);
    assert_int_equal(ff_fed_update_check(u, 4, 4, NAN, NULL), FF_REFUSE_BAD_WEIGHT);
    assert_string_equal(ff_refusal_name(FF_REFUSE_LATE), "late");
    assert_string_equal(ff_refusal_name(FF_REFUSE_STALE_ROUND), "stale round");
    assert_string_equal(ff_refusal_name(99), "?");
}

static void test_client_round_state(void **state)
{
    (void)state;
    ff_fedclient_state s;
    ff_fedclient_init(&s);
    assert_int_equal(ff_fedclient_begin(&s, 1, 0), FF_OK);
    assert_int_equal(ff_fedclient_done(&s, 1), FF_OK);
    /* a replay of round 1 is stale */
    assert_int_equal(ff_fedclient_begin(&s, 1, 0), FF_ESTATE);
    ft_assert_error_has("round 1 refused: stale");
    assert_int_equal(ff_fedclient_begin(&s, 2, 1), FF_OK);
    /* an older attempt of the same round is stale; a newer one replaces it */
    assert_int_equal(ff_fedclient_begin(&s, 2, 0), FF_ESTATE);
    ft_assert_error_has("attempt 0 refused: stale");
    assert_int_equal(ff_fedclient_begin(&s, 2, 2), FF_OK);
    assert_int_equal(ff_fedclient_done(&s, 3), FF_ESTATE);
    assert_int_equal(ff_fedclient_done(&s, 2), FF_OK);
    assert_int_equal(ff_fedclient_done(&s, 2), FF_ESTATE);
    assert_int_equal(ff_fedclient_begin(&s, 0, 0), FF_EINVAL);
    assert_int_equal(ff_fedclient_begin(&s, 5, 0), FF_OK);
    assert_int_equal(s.round, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strategies_match_numpy),
        cmocka_unit_test(test_fedavg_weighting),
        cmocka_unit_test(test_adam_first_step_closed_form),
        cmocka_unit_test(test_fedprox_grad_and_update),
        cmocka_unit_test(test_update_check),
        cmocka_unit_test(test_client_round_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
