/* Core metrics against frozen scikit-learn 1.2.1 values (so they are checked even without
 * Python), undefined cases, input validation, bootstrap determinism and the CSV reader. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/eval.h"

/* y = [0,1,0,0,1,1,0,1,0,0,1,0], s below: sklearn roc_auc_score 0.7857142857142857,
 * average_precision_score 0.6277777777777777, brier_score_loss 0.1991666666666667,
 * calibration_curve(n_bins=5): prob_true [0, 1/3, 2/3, 1, 0.5],
 * prob_pred [0.11666667, 0.3, 0.56666667, 0.7, 0.925]. */
static const uint8_t Y12[] = {0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0};
static const double S12[] = {0.05, 0.9, 0.3, 0.3, 0.3, 0.7, 0.55, 0.55, 0.1, 0.95, 0.6, 0.2};

static void test_frozen_sklearn(void **state)
{
    (void)state;
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    o.ece_bins = 5;
    ff_eval_result r;
    assert_int_equal(ff_eval_binary(S12, Y12, 12, &o, &r), FF_OK);
    assert_true(fabs(r.auroc.value - 0.7857142857142857) < 1e-15);
    assert_true(fabs(r.auprc.value - 0.6277777777777777) < 1e-15);
    assert_true(fabs(r.brier.value - 0.1991666666666667) < 1e-15);
    const double pt[] = {0, 1.0 / 3, 2.0 / 3, 1, 0.5};
    const double pp[] = {0.35 / 3, 0.3, 1.7 / 3, 0.7, 0.925};
    for (int b = 0; b < 5; b++) {
        assert_true(r.rel.count[b] > 0);
        assert_true(fabs(r.rel.frac_pos[b] - pt[b]) < 1e-12);
        assert_true(fabs(r.rel.mean_pred[b] - pp[b]) < 1e-12);
    }
    /* sklearn's documentation example */
    const uint8_t y4[] = {0, 0, 1, 1};
    const double s4[] = {0.1, 0.4, 0.35, 0.8};
    ff_eval_result r4;
    assert_int_equal(ff_eval_binary(s4, y4, 4, &o, &r4), FF_OK);
    assert_true(fabs(r4.auroc.value - 0.75) < 1e-15);
    assert_true(fabs(r4.auprc.value - 0.8333333333333333) < 1e-15);
    assert_true(fabs(r4.brier.value - 0.158125) < 1e-15);
    ff_eval_result_free(&r4);
    ff_eval_result_free(&r);
}

static void test_undefined_never_nan(void **state)
{
    (void)state;
    const uint8_t y[] = {0, 0, 0};
    const double s[] = {0.2, 0.4, 0.9};
    ff_eval_result r;
    assert_int_equal(ff_eval_binary(s, y, 3, NULL, &r), FF_OK);
    assert_false(r.auroc.defined);
    assert_non_null(strstr(r.auroc.why, "one class"));
    assert_false(r.auprc.defined);
    assert_false(r.cal_slope.defined);
    assert_true(r.brier.defined);
    json_t *j;
    assert_int_equal(ff_eval_to_json(&r, NULL, 0, NULL, &j), FF_OK);
    assert_true(json_is_null(json_object_get(j, "auroc")));
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "undefined"),
                                                             "auroc")), "one class"));
    char *txt = json_dumps(j, 0);
    assert_null(strstr(txt, "nan"));
    assert_null(strstr(txt, "NaN"));
    free(txt);
    json_decref(j);
    ff_eval_result_free(&r);
    /* zero rows */
    assert_int_equal(ff_eval_binary(NULL, NULL, 0, NULL, &r), FF_OK);
    assert_false(r.auroc.defined);
    assert_false(r.brier.defined);
    ff_eval_result_free(&r);
    /* empty subgroup: level 1 declared, never used */
    const int32_t lv[] = {0, 0, 0};
    const char *names[] = {"F", "M"};
    ff_eval_fairness f;
    assert_int_equal(ff_eval_fairness_compute(s, y, lv, 3, "sex", names, 2, NULL, &f), FF_OK);
    assert_false(f.levels[1].auroc.defined);
    assert_string_equal(f.levels[1].auroc.why, "empty subgroup");
    assert_false(f.dp_diff.defined);
    ff_eval_fairness_free(&f);
}

static void test_rejects_bad_input(void **state)
{
    (void)state;
    const uint8_t y[] = {0, 1, 2};
    const double s[] = {0.2, NAN, 0.9};
    ff_eval_result r;
    assert_int_equal(ff_eval_binary(s, y, 3, NULL, &r), FF_EINVAL);
    ft_assert_error_has("row 1");
    const double s2[] = {0.2, 0.3, 0.9};
    assert_int_equal(ff_eval_binary(s2, y, 3, NULL, &r), FF_EINVAL);
    ft_assert_error_has("row 2: label 2");
    const double s3[] = {0.2, 1.5, 0.9};
    assert_int_equal(ff_eval_binary(s3, y, 2, NULL, &r), FF_EINVAL);
    ft_assert_error_has("not a probability");
}

/* Operating points are ROC points: with 10 negatives, specificity 0.9 allows one false
 * positive exactly. */
static void test_operating_points(void **state)
{
    (void)state;
    double s[20];
    uint8_t y[20];
    for (int i = 0; i < 10; i++) {
        s[i] = i / 20.0; /* negatives 0 .. 0.45 */
        y[i] = 0;
        s[10 + i] = (8 + i) / 20.0; /* positives 0.4 .. 0.85 */
        y[10 + i] = 1;
    }
    ff_eval_result r;
    assert_int_equal(ff_eval_binary(s, y, 20, NULL, &r), FF_OK);
    /* threshold 0.4: positives >= 0.4 all (10/10), negatives 0.4, 0.45 -> 2 FP: spec 0.8.
     * threshold 0.45: positives 9/10 (0.45..0.85), FP 1 (0.45) -> spec 0.9. */
    assert_true(fabs(r.sens_at_spec.value - 0.9) < 1e-15);
    assert_true(fabs(r.sens_at_spec_thr.value - 0.45) < 1e-12);
    assert_true(fabs(r.spec_at_sens.value - 0.9) < 1e-15);
    ff_eval_result_free(&r);
}

static void test_bootstrap_seeded(void **state)
{
    (void)state;
    ff_rng g;
    ff_rng_init(&g, 3, 0);
    size_t n = 3000;
    double *s = malloc(n * sizeof *s);
    uint8_t *y = malloc(n);
    for (size_t i = 0; i < n; i++) {
        y[i] = ff_rng_uniform_d(&g) < 0.2;
        s[i] = 1 / (1 + exp(-(ff_rng_normal(&g) + 1.5 * y[i] - 1)));
    }
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    o.bootstrap = 200;
    o.seed = 11;
    ff_eval_result a, b, c;
    assert_int_equal(ff_eval_binary(s, y, n, &o, &a), FF_OK);
    assert_int_equal(ff_eval_binary(s, y, n, &o, &b), FF_OK);
    o.seed = 12;
    assert_int_equal(ff_eval_binary(s, y, n, &o, &c), FF_OK);
    assert_true(a.auroc.has_ci);
    assert_true(a.auroc.lo < a.auroc.value && a.auroc.value < a.auroc.hi);
    assert_true(a.brier.lo < a.brier.value && a.brier.value < a.brier.hi);
    assert_true(a.auroc.lo == b.auroc.lo && a.auroc.hi == b.auroc.hi);
    assert_true(a.auroc.lo != c.auroc.lo);
    /* the normal-theory width (Hanley-McNeil order of magnitude): ~2*1.96*0.012 */
    double w = a.auroc.hi - a.auroc.lo;
    assert_true(w > 0.02 && w < 0.08);
    assert_int_equal(a.bootstrap_done, 200);
    ff_eval_result_free(&a);
    ff_eval_result_free(&b);
    ff_eval_result_free(&c);
    free(s);
    free(y);
}

static void test_temperature_recovers(void **state)
{
    (void)state;
    /* Labels drawn from sigmoid(z); scores sigmoid(3 z) are overconfident by T = 3. */
    ff_rng g;
    ff_rng_init(&g, 5, 0);
    size_t n = 200000;
    double *s = malloc(n * sizeof *s);
    uint8_t *y = malloc(n);
    for (size_t i = 0; i < n; i++) {
        double z = 2 * ff_rng_normal(&g);
        y[i] = ff_rng_uniform_d(&g) < 1 / (1 + exp(-z));
        s[i] = 1 / (1 + exp(-3 * z));
    }
    double T;
    assert_int_equal(ff_temperature_fit(s, y, n, &T), FF_OK);
    assert_true(fabs(T - 3) < 0.05);
    ff_metric slope, icpt;
    ff_eval_calibration_fit(s, y, n, &slope, &icpt);
    assert_true(fabs(slope.value - 1.0 / 3) < 0.01);
    assert_true(fabs(icpt.value) < 0.02);
    free(s);
    free(y);
}

static void test_csv_errors(void **state)
{
    (void)state;
    const char *d = ft_tmpdir();
    const char *p = ft_path(d, "p.csv");
    ff_eval_csv c;
    const char *g[] = {"sex"};
    const char *bad[][2] = {
        {"label,score\n1,0.3\n0,nan\n", "p.csv:3: column 'score': 'nan' is not a finite"},
        {"label,score\n1,0.3\n2,0.5\n", "p.csv:3: column 'label': '2' is not 0 or 1"},
        {"label,score\n1,1.3\n", "p.csv:2: column 'score': 1.3 is not a probability"},
        {"label,prob\n1,0.3\n", "p.csv:1: no column 'score'"},
        {"label,score,sex\n1,0.3\n", "p.csv:2: column 'sex': missing"},
        {"", "empty file"},
        {"\xef\xbb\xbflabel,score\r\n0,0.1\r\n\r\n1,x\r\n", "p.csv:4: column 'score': 'x'"},
        {"label,score\n0,0.1\n\n\n1,\"0.9\nz\"\n", "p.csv:5: column 'score': '0.9?z' is"},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(bad); i++) {
        ft_write_file(p, bad[i][0], strlen(bad[i][0]));
        assert_int_not_equal(ff_eval_csv_read(p, g, i == 4 ? 1 : 0, &c), FF_OK);
        ft_assert_error_has(bad[i][1]);
    }
    const char *ok = "id,score,label,sex\n1,0.25,0,F\n2,\"0.75\",1,M\n3,0.5,1,F\n";
    ft_write_file(p, ok, strlen(ok));
    assert_int_equal(ff_eval_csv_read(p, g, 1, &c), FF_OK);
    assert_int_equal(c.n, 3);
    assert_true(c.score[1] == 0.75 && c.label[1] == 1);
    assert_int_equal(c.groups[0].nlevels, 2);
    assert_string_equal(c.groups[0].names[c.groups[0].level[2]], "F");
    ff_eval_csv_free(&c);
    ft_rmtree(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frozen_sklearn),   cmocka_unit_test(test_undefined_never_nan),
        cmocka_unit_test(test_rejects_bad_input), cmocka_unit_test(test_operating_points),
        cmocka_unit_test(test_bootstrap_seeded), cmocka_unit_test(test_temperature_recovers),
        cmocka_unit_test(test_csv_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
