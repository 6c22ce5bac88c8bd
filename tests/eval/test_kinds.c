/* Regression and multiclass metrics against scikit-learn (values printed by
 * tests/eval/oracle_kinds.py from the same data), and their undefined cases. */
#include "testutil.h"

#include <math.h>

#include "ff/eval.h"

static void close_to(const ff_metric *m, double want)
{
    assert_true(m->defined);
    assert_true(fabs(m->value - want) < 1e-12);
}

static void test_regression(void **state)
{
    (void)state;
    const double y[] = {3.0, -1.5, 2.0, 7.0, 0.5, 4.25, 1.0, -2.0};
    const double p[] = {2.5, -1.0, 2.0, 8.0, 0.0, 4.0, 2.5, -1.0};
    ff_metric mae, rmse, r2;
    assert_int_equal(ff_eval_regression(p, y, 8, &mae, &rmse, &r2), FF_OK);
    close_to(&mae, 0.65625);
    close_to(&rmse, 0.79549512883486595);
    close_to(&r2, 0.91858273652468903);
    const double c[] = {2, 2, 2};
    assert_int_equal(ff_eval_regression(p, c, 3, &mae, &rmse, &r2), FF_OK);
    assert_true(mae.defined && !r2.defined);
    assert_int_equal(ff_eval_regression(p, y, 0, &mae, &rmse, &r2), FF_OK);
    assert_true(!mae.defined && !rmse.defined && !r2.defined);
    assert_string_equal(mae.why, "no labelled patients");
    const double bad[] = {1, NAN};
    assert_int_equal(ff_eval_regression(bad, y, 2, &mae, &rmse, &r2), FF_EINVAL);
    ft_assert_error_has("row 1");
}

static void test_multiclass(void **state)
{
    (void)state;
    const int32_t lab[] = {0, 1, 2, 2, 1, 0, 2, 1, 0, 2};
    const double prob[] = {0.7, 0.2, 0.1, 0.2, 0.5, 0.3, 0.1, 0.3, 0.6, 0.3, 0.3, 0.4,
                           0.4, 0.4, 0.2, 0.5, 0.1, 0.4, 0.2, 0.5, 0.3, 0.1, 0.6, 0.3,
                           0.3, 0.4, 0.3, 0.25, 0.25, 0.5};
    ff_metric acc, macro, cls[3];
    assert_int_equal(ff_eval_multiclass(prob, lab, 10, 3, &acc, &macro, cls), FF_OK);
    close_to(&acc, 0.69999999999999996);
    close_to(&macro, 0.90277777777777768);
    close_to(&cls[0], 0.92857142857142849);
    close_to(&cls[1], 0.90476190476190477);
    close_to(&cls[2], 0.875);
    /* logits instead of probabilities: same order, same AUROCs */
    double logit[30];
    for (int i = 0; i < 30; i++)
        logit[i] = 3 * log(prob[i]) - 1;
    assert_int_equal(ff_eval_multiclass(logit, lab, 10, 3, &acc, &macro, cls), FF_OK);
    close_to(&macro, 0.90277777777777768);
    /* class 2 absent from the labels: its AUROC and the macro mean are undefined */
    const int32_t two[] = {0, 1, 1};
    assert_int_equal(ff_eval_multiclass(prob, two, 3, 3, &acc, &macro, cls), FF_OK);
    assert_true(!macro.defined && !cls[2].defined && cls[0].defined);
    assert_non_null(macro.why);
    const int32_t out[] = {0, 3};
    assert_int_equal(ff_eval_multiclass(prob, out, 2, 3, &acc, &macro, cls), FF_EINVAL);
    ft_assert_error_has("row 1: class 3 outside [0, 3)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression),
        cmocka_unit_test(test_multiclass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
