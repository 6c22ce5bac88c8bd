/* The ledger: ε so far equals a one-shot accountant over the same steps, a round past the
 * budget is refused without changing anything, JSON round-trips to the same ε, an edited
 * JSON is caught, and drop-outs in the distributed mechanism cost privacy. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/privacy.h"

static ff_privacy_ledger *record_ledger(double budget)
{
    double o[FF_PRIVACY_MAX_ORDERS];
    size_t n = ff_privacy_orders_dp_accounting(o);
    ff_privacy_ledger *l;
    assert_int_equal(ff_privacy_ledger_new(&l, FF_PRIVACY_LEVEL_RECORD, budget, 1e-5, o, n,
                                           FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                           FF_PRIVACY_CONV_IMPROVED),
                     FF_OK);
    return l;
}

static ff_privacy_round dpsgd_round(int64_t i)
{
    return (ff_privacy_round){.round = i, .level = FF_PRIVACY_LEVEL_RECORD, .q = 0.01,
                              .sigma = 1.0, .steps = 100, .clip_norm = 1.0};
}

static void test_budget_refusal(void **state)
{
    (void)state;
    ff_privacy_ledger *l = record_ledger(2.0);
    double eps, order, prev = 0;
    int64_t r = 0;
    for (;; r++) {
        ff_privacy_round rd = dpsgd_round(r);
        double after;
        int exceed;
        assert_int_equal(ff_privacy_ledger_check(l, &rd, &after, &exceed), FF_OK);
        int rc = ff_privacy_ledger_record(l, &rd);
        if (exceed) {
            assert_int_equal(rc, FF_EPOLICY);
            ft_assert_error_has("refused");
            break;
        }
        assert_int_equal(rc, FF_OK);
        assert_int_equal(ff_privacy_ledger_epsilon(l, &eps, &order), FF_OK);
        assert_true(eps == after && eps > prev && eps <= 2.0);
        prev = eps;
    }
    assert_true(r >= 3);
    assert_int_equal(ff_privacy_ledger_count(l), (size_t)r);
    /* Refusal changed nothing; ε equals one accountant run over all steps. */
    assert_int_equal(ff_privacy_ledger_epsilon(l, &eps, &order), FF_OK);
    assert_true(eps == prev);
    double o[FF_PRIVACY_MAX_ORDERS], one, one_order;
    size_t n = ff_privacy_orders_dp_accounting(o);
    assert_int_equal(ff_privacy_epsilon_sgm(0.01, 1.0, 100 * r, 1e-5, o, n,
                                            FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                            FF_PRIVACY_CONV_IMPROVED, &one, &one_order),
                     FF_OK);
    assert_true(ft_rel_err(eps, one, 1e-300) < 1e-12);
    ff_privacy_ledger_free(l);
}

static void test_json_roundtrip_and_tamper(void **state)
{
    (void)state;
    ff_privacy_ledger *l = record_ledger(5.0);
    for (int64_t r = 0; r < 3; r++) {
        ff_privacy_round rd = dpsgd_round(r);
        rd.sigma = 1.0 + 0.1 * (double)r;
        assert_int_equal(ff_privacy_ledger_record(l, &rd), FF_OK);
    }
    char *json;
    assert_int_equal(ff_privacy_ledger_to_json(l, &json), FF_OK);
    ff_privacy_ledger *back;
    assert_int_equal(ff_privacy_ledger_from_json(&back, json, "ledger.json"), FF_OK);
    double e1, e2, o1, o2;
    assert_int_equal(ff_privacy_ledger_epsilon(l, &e1, &o1), FF_OK);
    assert_int_equal(ff_privacy_ledger_epsilon(back, &e2, &o2), FF_OK);
    assert_true(e1 == e2 && o1 == o2);
    assert_int_equal(ff_privacy_ledger_count(back), 3);
    assert_true(ff_privacy_ledger_get(back, 2)->sigma == 1.2);
    ff_privacy_ledger_free(back);
    /* Edit a round's σ: the stored ε no longer follows from the rounds. */
    char *p = strstr(json, "\"sigma\": 1.2");
    assert_non_null(p);
    p[strlen("\"sigma\": 1.")] = '9';
    assert_int_equal(ff_privacy_ledger_from_json(&back, json, "ledger.json"), FF_EFORMAT);
    ft_assert_error_has("ledger.json: stored epsilon");
    assert_int_equal(ff_privacy_ledger_from_json(&back, "{\"level\": 3}", "x.json"),
                     FF_EFORMAT);
    ft_assert_error_has("x.json: 'level'");
    free(json);
    ff_privacy_ledger_free(l);
}

static void test_client_ddg_survivors(void **state)
{
    (void)state;
    double o[FF_PRIVACY_MAX_ORDERS];
    size_t n = ff_privacy_orders_dp_accounting(o);
    ff_privacy_ledger *l;
    assert_int_equal(ff_privacy_ledger_new(&l, FF_PRIVACY_LEVEL_CLIENT, 10.0, 1e-3, o, n,
                                           FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                           FF_PRIVACY_CONV_IMPROVED),
                     FF_OK);
    ff_privacy_round rd = {.round = 1, .level = FF_PRIVACY_LEVEL_CLIENT,
                           .mechanism = FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN, .q = 1.0,
                           .steps = 1, .clip_norm = 1.0, .survivors = 10, .sites = 10,
                           .ddg_sigma = 0.5, .ddg_gamma = 1e-3, .ddg_beta = exp(-0.5),
                           .ddg_dim = 1 << 16};
    double all, fewer;
    int ex;
    assert_int_equal(ff_privacy_ledger_check(l, &rd, &all, &ex), FF_OK);
    rd.survivors = 7;
    assert_int_equal(ff_privacy_ledger_check(l, &rd, &fewer, &ex), FF_OK);
    print_message("client-level eps: 10/10 survivors %.4f, 7/10 %.4f\n", all, fewer);
    assert_true(fewer > all);
    rd.survivors = 11;
    assert_int_equal(ff_privacy_ledger_check(l, &rd, &fewer, &ex), FF_EINVAL);
    ft_assert_error_has("11 survivors of 10 sites");
    /* A Gaussian client round (coordinator noise) records too and round-trips. */
    ff_privacy_round g = {.round = 2, .level = FF_PRIVACY_LEVEL_CLIENT,
                          .mechanism = FF_PRIVACY_MECH_GAUSSIAN, .q = 1.0, .sigma = 2.0,
                          .steps = 1, .clip_norm = 1.0};
    rd.survivors = 7;
    assert_int_equal(ff_privacy_ledger_record(l, &rd), FF_OK);
    assert_int_equal(ff_privacy_ledger_record(l, &g), FF_OK);
    char *json;
    assert_int_equal(ff_privacy_ledger_to_json(l, &json), FF_OK);
    ff_privacy_ledger *back;
    assert_int_equal(ff_privacy_ledger_from_json(&back, json, "client.json"), FF_OK);
    assert_int_equal(ff_privacy_ledger_get(back, 0)->survivors, 7);
    free(json);
    ff_privacy_ledger_free(back);
    ff_privacy_ledger_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_refusal),
        cmocka_unit_test(test_json_roundtrip_and_tamper),
        cmocka_unit_test(test_client_ddg_survivors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
