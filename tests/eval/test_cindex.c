/* Harrell's C-index against tests/models/oracle_loss.py (pairs enumerated in python with
 * lifelines' rule for a censored row tied with an event time), plus the edge cases. */
#include "testutil.h"

#include <math.h>

#include "ff/eval.h"

static void test_oracle(void **st)
{
    (void)st;
    const double s[] = {0.2, -0.5, 1.0, 0.3, -1.5, 0.8, 0.0, 2.0};
    const double t[] = {5.0, 2.0, 5.0, 7.0, 2.0, 1.0, 5.0, 9.0};
    const uint8_t e[] = {1, 1, 0, 1, 0, 1, 1, 0};
    double c = 0;
    assert_int_equal(ff_eval_cindex(s, t, e, 8, &c), FF_OK);
    assert_true(fabs(c - 0.3) < 1e-12); /* oracle_loss.py: cindex 0.3 */
    /* a perfect ranking is 1, its reverse 0, constant scores 1/2 */
    const double r[] = {4, 3, 2, 1}, tt[] = {1, 2, 3, 4}, k[] = {1, 1, 1, 1};
    const uint8_t ee[] = {1, 1, 1, 0};
    assert_int_equal(ff_eval_cindex(r, tt, ee, 4, &c), FF_OK);
    assert_true(c == 1.0);
    assert_int_equal(ff_eval_cindex(tt, tt, ee, 4, &c), FF_OK);
    assert_true(c == 0.0);
    assert_int_equal(ff_eval_cindex(k, tt, ee, 4, &c), FF_OK);
    assert_true(c == 0.5);
}

static void test_refused(void **st)
{
    (void)st;
    const double r[] = {1, 2}, t[] = {1, NAN};
    const uint8_t none[] = {0, 0}, ev[] = {1, 1};
    double c = 7;
    assert_int_equal(ff_eval_cindex(r, r, none, 2, &c), FF_EINVAL);
    ft_assert_error_has("no comparable pair");
    assert_int_equal(ff_eval_cindex(r, t, ev, 2, &c), FF_EINVAL);
    ft_assert_error_has("row 1");
    assert_true(c == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_oracle), cmocka_unit_test(test_refused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
