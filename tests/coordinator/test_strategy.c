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
    ff_round_update(u, p, glob, 3);
    assert_true(u[0] == 1.0f && u[1] == -0.5f && u[2] == 2.0f);
}

static void test_update_check(void **state)
{
    (void)state;
    float u[4] = {0, 1, 2, 3};
    size_t bad = 99;
    assert_int_equal(ff_coord_update_check(u, 4, 4, 10, &bad), FF_REFUSE_NONE);
    assert_int_equal(ff_coord_update_check(u, 3, 4, 10, &bad), FF_REFUSE_WRONG_SIZE);
    u[2] = NAN;
    assert_int_equal(ff_coord_update_check(u, 4, 4, 10, &bad), FF_REFUSE_NONFINITE);
    assert_int_equal(bad, 2);
    u[2] = 0;
    u[3] = -INFINITY;
    assert_int_equal(ff_coord_update_check(u, 4, 4, 10, &bad), FF_REFUSE_NONFINITE);
    assert_int_equal(bad, 3);
    u[3] = 0;
    assert_int_equal(ff_coord_update_check(u, 4, 4, 0, NULL), FF_REFUSE_BAD_WEIGHT);
    assert_int_equal(ff_coord_update_check(u, 4, 4, NAN, NULL), FF_REFUSE_BAD_WEIGHT);
    assert_string_equal(ff_refusal_name(FF_REFUSE_LATE), "late");
    assert_string_equal(ff_refusal_name(FF_REFUSE_STALE_ROUND), "stale round");
    assert_string_equal(ff_refusal_name(99), "?");
}

static void test_client_round_state(void **state)
{
    (void)state;
    ff_round_state s;
    ff_round_init(&s);
    assert_int_equal(ff_round_begin(&s, 1, 0), FF_OK);
    assert_int_equal(ff_round_done(&s, 1), FF_OK);
    /* a replay of round 1 is stale */
    assert_int_equal(ff_round_begin(&s, 1, 0), FF_ESTATE);
    ft_assert_error_has("round 1 refused: stale");
    assert_int_equal(ff_round_begin(&s, 2, 1), FF_OK);
    /* an older attempt of the same round is stale; a newer one replaces it */
    assert_int_equal(ff_round_begin(&s, 2, 0), FF_ESTATE);
    ft_assert_error_has("attempt 0 refused: stale");
    assert_int_equal(ff_round_begin(&s, 2, 2), FF_OK);
    assert_int_equal(ff_round_done(&s, 3), FF_ESTATE);
    assert_int_equal(ff_round_done(&s, 2), FF_OK);
    assert_int_equal(ff_round_done(&s, 2), FF_ESTATE);
    assert_int_equal(ff_round_begin(&s, 0, 0), FF_EINVAL);
    assert_int_equal(ff_round_begin(&s, 5, 0), FF_OK);
    assert_int_equal(s.round, 5);
}

/* ---- SCAFFOLD, Cyclic, per-site layers on the toy federation of oracle_strategies.py ---- */

static const double TA[3][2][3] = {{{1.0, 0.5, 0.0}, {0.0, 1.0, -1.0}},
                                   {{2.0, 0.0, 1.0}, {1.0, 1.0, 0.0}},
                                   {{0.5, -1.0, 0.5}, {0.0, 0.0, 2.0}}};
static const double TB[3][2] = {{1.0, -1.0}, {0.5, 2.0}, {-1.0, 1.0}};
static const double TNEX[3] = {20, 50, 30};
static const float TX0[3] = {0.1f, -0.2f, 0.3f};
enum { TK = 4 };
#define TLR 0.05f

/* g = A_iᵀ (A_i w − b_i) */
static void toy_grad(int i, const float *w, float *g)
{
    for (int j = 0; j < 3; j++)
        g[j] = 0;
    for (int r = 0; r < 2; r++) {
        double e = -TB[i][r];
        for (int j = 0; j < 3; j++)
            e += TA[i][r][j] * w[j];
        for (int j = 0; j < 3; j++)
            g[j] += (float)(TA[i][r][j] * e);
    }
}

static void assert_vec(const char *what, const float *got, const double *want, int n)
{
    for (int j = 0; j < n; j++)
        if (!(fabs(got[j] - want[j]) < 2e-6 * (1 + fabs(want[j]))))
            fail_msg("%s[%d] = %.9g, numpy %.12g", what, j, got[j], want[j]);
}

static void test_scaffold_matches_numpy(void **state)
{
    (void)state;
    static const double X[3] = {0.269488278472, 0.153834304632, 0.312223657249};
    static const double C[3] = {-0.441348810807, -1.05793870371, -0.0519261593031};
    ff_strategy_config cfg = {.name = FF_STRATEGY_SCAFFOLD, .server_lr = 0.5};
    ff_strategy s;
    assert_int_equal(ff_strategy_init(&s, &cfg, 5), FF_EINVAL); /* [x | c] has even length */
    assert_int_equal(ff_strategy_init(&s, &cfg, 6), FF_OK);
    float xc[6] = {TX0[0], TX0[1], TX0[2], 0, 0, 0}, ci[3][3] = {{0}};
    for (int r = 0; r < 3; r++) {
        float up[3][6], d[6];
        for (int i = 0; i < 3; i++) {
            float y[3], g[3];
            memcpy(y, xc, sizeof y);
            for (int k = 0; k < TK; k++) {
                toy_grad(i, y, g);
                ff_scaffold_correct(g, xc + 3, ci[i], 3);
                for (int j = 0; j < 3; j++)
                    y[j] -= TLR * g[j];
            }
            ff_round_update(up[i], y, xc, 3);
            ff_scaffold_control_delta(up[i] + 3, ci[i], xc + 3, xc, y, TK, TLR, 3);
        }
        const float *ups[3] = {up[0], up[1], up[2]};
        assert_int_equal(ff_strategy_aggregate(d, ups, TNEX, 3, 6), FF_OK);
        ff_strategy_apply(&s, xc, d);
    }
    assert_vec("scaffold x", xc, X, 3);
    assert_vec("scaffold c", xc + 3, C, 3);
    ff_strategy_free(&s);
}

static void test_cyclic_matches_numpy(void **state)
{
    (void)state;
    static const double W[3] = {0.363311496645, 0.52085498802, 0.594539544399};
    static const int order[6] = {2, 0, 1, 1, 2, 0};
    ff_strategy_config cfg = {.name = FF_STRATEGY_CYCLIC, .server_lr = 1.0};
    ff_strategy s;
    assert_int_equal(ff_strategy_init(&s, &cfg, 3), FF_OK);
    float w[3], d[3];
    memcpy(w, TX0, sizeof w);
    for (int r = 0; r < 6; r++) {
        float y[3], g[3];
        memcpy(y, w, sizeof y);
        for (int k = 0; k < TK; k++) {
            toy_grad(order[r], y, g);
            for (int j = 0; j < 3; j++)
                y[j] -= TLR * g[j];
        }
        ff_round_update(d, y, w, 3);
        ff_strategy_apply(&s, w, d);
    }
    assert_vec("cyclic w", w, W, 3);
    ff_strategy_free(&s);
    /* the schedule: every site exactly once per cycle; cycles are reshuffled */
    int differ = 0, first[7] = {0};
    for (int64_t cyc = 0; cyc < 8; cyc++) {
        int seen[7] = {0};
        for (int p = 0; p < 7; p++) {
            int site = ff_strategy_cyclic_site(42, cyc * 7 + p + 1, 7);
            assert_true(site >= 0 && site < 7);
            seen[site]++;
            if (cyc == 0)
                first[p] = site;
            else
                differ |= site != first[p];
        }
        for (int i = 0; i < 7; i++)
            assert_int_equal(seen[i], 1);
    }
    assert_true(differ);
}

static void test_local_layers_match_numpy(void **state)
{
    (void)state;
    static const double G[3] = {0.352494863764, 0.436284952598, 0.3};
    static const double OWN[3] = {0.645944793805, 0.106287438757, 0.367355742076};
    ff_strategy_config cfg = {.name = FF_STRATEGY_FEDAVG, .server_lr = 1.0};
    ff_strategy s;
    assert_int_equal(ff_strategy_init(&s, &cfg, 3), FF_OK);
    const ff_coord_tensor_ref tensors[2] = {{"fc.weight", 0, 2}, {"fc.bias", 2, 1}};
    ff_cfg_strlist bad = {.items = {"head."}, .count = 1};
    assert_int_equal(ff_strategy_set_local(&s, tensors, 2, &bad), FF_ENOTFOUND);
    ft_assert_error_has("'head.' matches no tensor");
    ff_cfg_strlist local = {.items = {"fc.bias"}, .count = 1};
    assert_int_equal(ff_strategy_set_local(&s, tensors, 2, &local), FF_OK);
    float g[3], site[3][3];
    memcpy(g, TX0, sizeof g);
    for (int i = 0; i < 3; i++)
        memcpy(site[i], TX0, sizeof g);
    for (int r = 0; r < 3; r++) {
        float up[3][3], d[3];
        for (int i = 0; i < 3; i++) {
            float start[3], gr[3];
            ff_round_keep_local(site[i], g, s.local, 3); /* shared from the global, own bias */
            memcpy(start, site[i], sizeof start);
            for (int k = 0; k < TK; k++) {
                toy_grad(i, site[i], gr);
                for (int j = 0; j < 3; j++)
                    site[i][j] -= TLR * gr[j];
            }
            ff_round_update(up[i], site[i], start, 3);
        }
        const float *ups[3] = {up[0], up[1], up[2]};
        assert_int_equal(ff_strategy_aggregate(d, ups, TNEX, 3, 3), FF_OK);
        ff_strategy_mask_local(&s, d);
        ff_strategy_apply(&s, g, d);
    }
    assert_vec("local global", g, G, 3);
    const float own[3] = {site[0][2], site[1][2], site[2][2]};
    assert_vec("local own", own, OWN, 3);
    ff_strategy_free(&s);
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
        cmocka_unit_test(test_scaffold_matches_numpy),
        cmocka_unit_test(test_cyclic_matches_numpy),
        cmocka_unit_test(test_local_layers_match_numpy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
