/* The RDP accountant against published values of the reference libraries and against an
 * independent 40-digit mpmath oracle (tests/privacy/oracle_rdp.py → oracle_rdp.inc: exact
 * binomial sums for integer orders, numerical integration for fractional ones). */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "ff/privacy.h"

#define REL_TOL 1e-6 /* the bar against published values */

typedef struct {
    double q, sigma, alpha, exact, conservative;
} oracle_row;

static const oracle_row oracle[] = {
#include "oracle_rdp.inc"
};

/* Published case → our ε and optimal order, with the source's orders, series and
 * conversion. */
static void check_case(double q, double sigma, int64_t steps, double delta, const char *orders,
                       ff_privacy_series series, ff_privacy_conversion conv, double want,
                       double want_order)
{
    double o[FF_PRIVACY_MAX_ORDERS], eps, order;
    size_t n;
    assert_int_equal(ff_privacy_orders_parse(orders, o, &n), FF_OK);
    assert_int_equal(ff_privacy_epsilon_sgm(q, sigma, steps, delta, o, n, series, conv, &eps,
                                            &order),
                     FF_OK);
    double rel = ft_rel_err(eps, want, 1e-300);
    print_message("eps %.15g want %.15g rel %.2e order %g\n", eps, want, rel, order);
    assert_true(rel < REL_TOL);
    if (want_order > 0)
        assert_true(order == want_order);
}

/* Opacus tests/accountants_test.py test_rdp_accountant: q = 0.04, σ = 1.5, int(90/0.04)
 * steps, δ = 1e-5, RDPAccountant.DEFAULT_ALPHAS, improved conversion, signed series. */
static void test_opacus_rdp_accountant(void **state)
{
    (void)state;
    check_case(0.04, 1.5, 2250, 1e-5, "opacus", FF_PRIVACY_SERIES_TF_PRIVACY,
               FF_PRIVACY_CONV_IMPROVED, 7.32911117143, 3.9);
}

/* TF Privacy compute_dp_sgd_privacy_test Test0: n 60000, batch 150, σ 1.3, 15 epochs,
 * δ 1e-5 → (0.7242234026109595, order 19). */
static void test_tfp_compute_dp_sgd_privacy_0(void **state)
{
    (void)state;
    check_case(150.0 / 60000.0, 1.3, 6000, 1e-5, "tf_privacy", FF_PRIVACY_SERIES_DP_ACCOUNTING,
               FF_PRIVACY_CONV_IMPROVED, 0.7242234026109595, 19);
}

/* Test1: n 100000, batch 100, σ 1.0, 30 epochs, δ 1e-7 → (1.4154988495444845, order 13). */
static void test_tfp_compute_dp_sgd_privacy_1(void **state)
{
    (void)state;
    check_case(100.0 / 100000.0, 1.0, 30000, 1e-7, "tf_privacy",
               FF_PRIVACY_SERIES_DP_ACCOUNTING, FF_PRIVACY_CONV_IMPROVED, 1.4154988495444842, 13);
}

/* The same two with the classic conversion (TF Privacy before the improved bound):
 * 0.941870567 and 1.70928734. */
static void test_tfp_classic_conversion(void **state)
{
    (void)state;
    check_case(150.0 / 60000.0, 1.3, 6000, 1e-5, "tf_privacy", FF_PRIVACY_SERIES_DP_ACCOUNTING,
               FF_PRIVACY_CONV_CLASSIC, 0.941870567, 19);
    check_case(100.0 / 100000.0, 1.0, 30000, 1e-7, "tf_privacy",
               FF_PRIVACY_SERIES_DP_ACCOUNTING, FF_PRIVACY_CONV_CLASSIC, 1.70928734, 13);
}

/* TF Privacy compute_dp_sgd_privacy_test example privacy, no microbatching: σ 0.7,
 * 1.2 epochs. Without sampling: ceil(1.2) = 2 Gaussian steps → 10.8602036. */
static void test_tfp_example_no_sampling(void **state)
{
    (void)state;
    check_case(1.0, 0.7, 2, 1e-5, "default", FF_PRIVACY_SERIES_DP_ACCOUNTING,
               FF_PRIVACY_CONV_IMPROVED, 10.8602036, -1);
}

/* With q = 0.01: ceil(1.2/0.01) = 120 steps, optimal order 4.4 (fractional), so the series
 * matters: dp_accounting's conservative series gives 3.2392676 (the value), the
 * signed series of TF Privacy/Opacus 3.2391922 (the value in TF Privacy's test file). */
static void test_tfp_example_sampling(void **state)
{
    (void)state;
    check_case(0.01, 0.7, 120, 1e-5, "default", FF_PRIVACY_SERIES_DP_ACCOUNTING,
               FF_PRIVACY_CONV_IMPROVED, 3.2392676, 4.4);
    check_case(0.01, 0.7, 120, 1e-5, "default", FF_PRIVACY_SERIES_TF_PRIVACY,
               FF_PRIVACY_CONV_IMPROVED, 3.2391922, 4.4);
}

/* Every oracle row: integer orders to 1e-12 relative; fractional orders, signed series
 * against the integral and conservative series against the mpmath series, to 1e-9 relative
 * plus the series' own truncation (terms e^-30 below the total: ~1e-13 in log A). */
static void test_rdp_against_mpmath(void **state)
{
    (void)state;
    double worst_int = 0, worst_frac = 0;
    for (size_t i = 0; i < FF_ARRAY_LEN(oracle); i++) {
        oracle_row row = oracle[i], *r = &row;
        double signed_rdp, cons_rdp;
        assert_int_equal(ff_privacy_rdp_sgm(r->q, r->sigma, r->alpha,
                                            FF_PRIVACY_SERIES_TF_PRIVACY, &signed_rdp),
                         FF_OK);
        assert_int_equal(ff_privacy_rdp_sgm(r->q, r->sigma, r->alpha,
                                            FF_PRIVACY_SERIES_DP_ACCOUNTING, &cons_rdp),
                         FF_OK);
        int is_int = floor(r->alpha) == r->alpha;
        if (isinf(r->conservative)) {
            /* dp_accounting's 1000-term cap: the order is excluded (+inf), as there. */
            assert_true(isinf(cons_rdp));
            cons_rdp = r->conservative = 0;
        }
        double rel_tol = is_int ? 1e-12 : 1e-9;
        double abs_tol = is_int ? 0.0 : 1e-12 / (r->alpha - 1.0);
        double e1 = fabs(signed_rdp - r->exact), e2 = fabs(cons_rdp - r->conservative);
        double lim1 = rel_tol * fabs(r->exact) + abs_tol;
        double lim2 = rel_tol * fabs(r->conservative) + abs_tol;
        if (e1 > lim1 || e2 > lim2)
            print_message("row %zu q %g s %g a %g: %.17g vs %.17g, %.17g vs %.17g\n", i, r->q,
                          r->sigma, r->alpha, signed_rdp, r->exact, cons_rdp, r->conservative);
        assert_true(e1 <= lim1);
        assert_true(e2 <= lim2);
        double rel = ft_rel_err(signed_rdp, r->exact, 1e-300);
        if (is_int)
            worst_int = fmax(worst_int, rel);
        else
            worst_frac = fmax(worst_frac, rel);
        /* The conservative series can only be larger. */
        assert_true(cons_rdp == 0 || cons_rdp >= signed_rdp * (1 - 1e-12));
    }
    print_message("worst relative error vs mpmath: integer orders %.2e, fractional %.2e\n",
                  worst_int, worst_frac);
}

static void test_orders_lists(void **state)
{
    (void)state;
    double o[FF_PRIVACY_MAX_ORDERS];
    size_t n = ff_privacy_orders_dp_accounting(o);
    assert_int_equal(n, 99 + 53 + 4);
    assert_true(o[0] == 1.1 && o[98] == 1 + 99 / 10.0 && o[99] == 11 && o[151] == 63 &&
                o[155] == 1024);
    n = ff_privacy_orders_opacus(o);
    assert_int_equal(n, 99 + 52);
    assert_true(o[99] == 12 && o[n - 1] == 63);
    n = ff_privacy_orders_tf_privacy(o);
    assert_int_equal(n, 10 + 59 + 3);
    assert_true(o[0] == 1.25 && o[10] == 5 && o[n - 1] == 512);
    assert_int_equal(ff_privacy_orders_parse("2,4.5,32", o, &n), FF_OK);
    assert_int_equal(n, 3);
    assert_true(o[1] == 4.5);
    assert_int_equal(ff_privacy_orders_parse("2,1,3", o, &n), FF_EINVAL);
    ft_assert_error_has("'1' is not a number > 1");
    assert_int_equal(ff_privacy_orders_parse("2,,3", o, &n), FF_EINVAL);
}

/* Composition is additive: 1000 + 1000 steps = 2000 steps; two accountants merge. */
static void test_composition(void **state)
{
    (void)state;
    double o[FF_PRIVACY_MAX_ORDERS];
    size_t n = ff_privacy_orders_dp_accounting(o);
    ff_privacy_accountant a, b, c;
    assert_int_equal(ff_privacy_accountant_init(&a, o, n, FF_PRIVACY_SERIES_DP_ACCOUNTING), 0);
    b = a;
    c = a;
    assert_int_equal(ff_privacy_accountant_add_sgm(&a, 0.01, 1.1, 1000), FF_OK);
    assert_int_equal(ff_privacy_accountant_add_sgm(&a, 0.01, 1.1, 1000), FF_OK);
    assert_int_equal(ff_privacy_accountant_add_sgm(&b, 0.01, 1.1, 2000), FF_OK);
    assert_int_equal(ff_privacy_accountant_add_sgm(&c, 0.01, 1.1, 1000), FF_OK);
    ff_privacy_accountant c2 = c;
    assert_int_equal(ff_privacy_accountant_merge(&c, &c2), FF_OK);
    for (size_t i = 0; i < n; i++) {
        assert_true(ft_rel_err(a.rdp[i], b.rdp[i], 1e-300) < 1e-14);
        assert_true(ft_rel_err(c.rdp[i], b.rdp[i], 1e-300) < 1e-14);
    }
    double e1, e2, o1, o2;
    assert_int_equal(ff_privacy_accountant_epsilon(&a, 1e-5, FF_PRIVACY_CONV_IMPROVED, &e1, &o1),
                     FF_OK);
    /* Improved ≤ classic at every order. */
    assert_int_equal(ff_privacy_accountant_epsilon(&a, 1e-5, FF_PRIVACY_CONV_CLASSIC, &e2, &o2),
                     FF_OK);
    assert_true(e1 < e2);
    /* Hand check of the improved conversion at its optimal order. */
    size_t k = 0;
    while (a.orders[k] != o1)
        k++;
    double want = a.rdp[k] + log1p(-1.0 / o1) - (log(1e-5) + log(o1)) / (o1 - 1);
    assert_true(ft_rel_err(e1, want, 1e-300) < 1e-14);
    assert_int_equal(ff_privacy_accountant_epsilon(&a, 1.0, FF_PRIVACY_CONV_IMPROVED, &e1, &o1),
                     FF_ERANGE);
    ft_assert_error_has("delta");
}

/* q = 1 is the plain Gaussian mechanism: rdp = α/(2σ²) exactly. q = 0 costs nothing. */
static void test_edge_rates(void **state)
{
    (void)state;
    double r;
    assert_int_equal(ff_privacy_rdp_sgm(1.0, 2.0, 7.5, FF_PRIVACY_SERIES_DP_ACCOUNTING, &r), 0);
    assert_true(r == 7.5 / 8.0);
    assert_int_equal(ff_privacy_rdp_sgm(0.0, 2.0, 7.5, FF_PRIVACY_SERIES_DP_ACCOUNTING, &r), 0);
    assert_true(r == 0.0);
    assert_int_equal(ff_privacy_rdp_sgm(1.5, 2.0, 7.5, FF_PRIVACY_SERIES_DP_ACCOUNTING, &r),
                     FF_ERANGE);
    ft_assert_error_has("q: 1.5");
    assert_int_equal(ff_privacy_rdp_sgm(0.5, 2.0, 1.0, FF_PRIVACY_SERIES_DP_ACCOUNTING, &r),
                     FF_ERANGE);
    ft_assert_error_has("order");
    /* Small σ at a sampled rate stays finite and ordered. */
    double lo, hi;
    assert_int_equal(ff_privacy_rdp_sgm(0.01, 0.3, 2.5, FF_PRIVACY_SERIES_TF_PRIVACY, &lo), 0);
    assert_int_equal(ff_privacy_rdp_sgm(0.01, 0.3, 3.0, FF_PRIVACY_SERIES_TF_PRIVACY, &hi), 0);
    assert_true(isfinite(lo) && lo > 0 && lo <= hi);
}

/* plan inverts epsilon: ε(σ*) ≤ target < ε(σ*(1 − 1e-6)); σ* falls as the target grows. */
static void test_plan_sigma(void **state)
{
    (void)state;
    double o[FF_PRIVACY_MAX_ORDERS];
    size_t n = ff_privacy_orders_dp_accounting(o);
    double prev = INFINITY;
    const double targets[] = {1.0, 3.0, 8.0};
    for (size_t t = 0; t < FF_ARRAY_LEN(targets); t++) {
        double s, e, ord;
        assert_int_equal(ff_privacy_plan_sigma(targets[t], 1e-5, 0.01, 1000, o, n,
                                               FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                               FF_PRIVACY_CONV_IMPROVED, &s),
                         FF_OK);
        assert_int_equal(ff_privacy_epsilon_sgm(0.01, s, 1000, 1e-5, o, n,
                                                FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                                FF_PRIVACY_CONV_IMPROVED, &e, &ord),
                         FF_OK);
        assert_true(e <= targets[t]);
        assert_int_equal(ff_privacy_epsilon_sgm(0.01, s * (1 - 1e-6), 1000, 1e-5, o, n,
                                                FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                                FF_PRIVACY_CONV_IMPROVED, &e, &ord),
                         FF_OK);
        assert_true(e > targets[t]);
        assert_true(s < prev);
        prev = s;
    }
    double s;
    assert_int_equal(ff_privacy_plan_sigma(1e-6, 1e-5, 1.0, 1000, o, n,
                                           FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                           FF_PRIVACY_CONV_IMPROVED, &s),
                     FF_ERANGE);
    ft_assert_error_has("out of reach");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opacus_rdp_accountant),
        cmocka_unit_test(test_tfp_compute_dp_sgd_privacy_0),
        cmocka_unit_test(test_tfp_compute_dp_sgd_privacy_1),
        cmocka_unit_test(test_tfp_classic_conversion),
        cmocka_unit_test(test_tfp_example_no_sampling),
        cmocka_unit_test(test_tfp_example_sampling),
        cmocka_unit_test(test_rdp_against_mpmath),
        cmocka_unit_test(test_orders_lists),
        cmocka_unit_test(test_composition),
        cmocka_unit_test(test_edge_rates),
        cmocka_unit_test(test_plan_sigma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
