/* Harrell's C-index against tests/models/oracle_loss.py (pairs enumerated in python with
 * lifelines' rule for a censored row tied with an event time), against oracle_cindex.py
 * (lifelines' own sweep over sorted times, FLamby's TCGA-BRCA call, on tied random data and
 * FLamby's TCGA-BRCA test rows), plus the edge cases. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

static double *numbers(const json_t *a, size_t n)
{
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_number_value(json_array_get(a, i));
    return v;
}

static void test_lifelines_sweep(void **st)
{
    (void)st;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/eval/oracle_cindex.py "
             "%s/../shared/data/flamby/tcga-brca", FF_SOURCE_DIR, FF_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t err;
    json_t *cases = json_loadf(p, 0, &err);
    assert_int_equal(pclose(p), 0);
    if (!cases)
        fail_msg("oracle_cindex.py: %s", err.text);
    assert_int_equal(json_array_size(cases), 5);
    for (size_t k = 0; k < json_array_size(cases); k++) {
        const json_t *c = json_array_get(cases, k);
        size_t n = json_array_size(json_object_get(c, "time"));
        double *t = numbers(json_object_get(c, "time"), n);
        double *r = numbers(json_object_get(c, "risk"), n);
        double *e = numbers(json_object_get(c, "event"), n);
        uint8_t *ev = malloc(n);
        assert_non_null(ev);
        for (size_t i = 0; i < n; i++)
            ev[i] = e[i] > 0.5;
        double got = -1, want = json_number_value(json_object_get(c, "cindex"));
        assert_int_equal(ff_eval_cindex(r, t, ev, n, &got), FF_OK);
        if (fabs(got - want) > 1e-12)
            fail_msg("%s: C %.17g vs lifelines' sweep %.17g",
                     json_string_value(json_object_get(c, "name")), got, want);
        free(t), free(r), free(e), free(ev);
    }
    json_decref(cases);
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
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_oracle),
                                       cmocka_unit_test(test_lifelines_sweep),
                                       cmocka_unit_test(test_refused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
