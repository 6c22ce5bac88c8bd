/* Every metric against scikit-learn 1.2 / numpy on random, tied, edge, imbalanced and tiny
 * inputs. sklearn_ref.py (run here with Debian's /usr/bin/python3) writes the CSVs and the
 * reference values; a missing sklearn fails this test rather than skipping it. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ff/eval.h"

static json_t *g_cases;
static double g_maxdiff[4]; /* auroc, auprc, brier, ece: largest |C - sklearn| seen */

static int setup(void **state)
{
    (void)state;
    const char *out = FF_BINARY_DIR "/tests/eval/sklearn_ref";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/eval/sklearn_ref.py %s 2>/dev/null",
             FF_SOURCE_DIR, out);
    if (system(cmd) != 0) {
        fprintf(stderr, "FATAL: %s failed: /usr/bin/python3 with numpy, scipy and sklearn "
                        "(python3-sklearn, see scripts/install-deps --test) is required\n", cmd);
        return -1;
    }
    json_error_t err;
    g_cases = json_load_file(FF_BINARY_DIR "/tests/eval/sklearn_ref/cases.json", 0, &err);
    if (!g_cases) {
        fprintf(stderr, "FATAL: cannot read cases.json: %s\n", err.text);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    printf("max |C - sklearn|: auroc %.3g auprc %.3g brier %.3g ece %.3g (sklearn %s)\n",
           g_maxdiff[0], g_maxdiff[1], g_maxdiff[2], g_maxdiff[3],
           json_string_value(json_object_get(g_cases, "sklearn")));
    json_decref(g_cases);
    return 0;
}

static double num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("reference lacks '%s'", key);
    return json_number_value(v);
}

#define assert_close(a, b, tol, what, name)                                                   \
    do {                                                                                      \
        double a_ = (a), b_ = (b);                                                            \
        if (!(fabs(a_ - b_) <= (tol)))                                                        \
            fail_msg("%s: %s: C %.17g vs reference %.17g (tol %g)", name, what, a_, b_,       \
                     (double)(tol));                                                          \
    } while (0)

static void track(int k, double a, double b)
{
    if (fabs(a - b) > g_maxdiff[k])
        g_maxdiff[k] = fabs(a - b);
}

static void check_array(const json_t *ref, const double *v, size_t n, const char *what,
                        const char *name)
{
    if (json_array_size(ref) != n)
        fail_msg("%s: %s: %zu points vs reference %zu", name, what, n, json_array_size(ref));
    for (size_t i = 0; i < n; i++)
        assert_close(v[i], json_number_value(json_array_get(ref, i)), 1e-12, what, name);
}

static void check_metric_or_undef(const json_t *c, const char *key, const ff_metric *m,
                                  double tol, const char *name)
{
    json_t *v = json_object_get(c, key);
    if (v && !json_is_null(v)) {
        if (!m->defined)
            fail_msg("%s: %s undefined in C (%s) but sklearn gives %g", name, key, m->why,
                     json_number_value(v));
        assert_close(m->value, json_number_value(v), tol, key, name);
    } else if (m->defined) {
        fail_msg("%s: %s = %g in C but undefined in the reference", name, key, m->value);
    } else {
        assert_non_null(m->why);
    }
}

static void check_reliability(const json_t *rel, const ff_eval_result *r, const char *name)
{
    const json_t *pt = json_object_get(rel, "prob_true"), *pp = json_object_get(rel, "prob_pred"),
                 *cnt = json_object_get(rel, "count");
    assert_int_equal(json_array_size(cnt), (size_t)r->rel.nbins);
    size_t k = 0;
    for (int b = 0; b < r->rel.nbins; b++) {
        double want = json_number_value(json_array_get(cnt, (size_t)b));
        if (r->rel.count[b] != want)
            fail_msg("%s: bin %d of %d: count %g vs sklearn %g", name, b, r->rel.nbins,
                     r->rel.count[b], want);
        if (r->rel.count[b] == 0)
            continue;
        assert_close(r->rel.frac_pos[b], json_number_value(json_array_get(pt, k)), 1e-12,
                     "prob_true", name);
        assert_close(r->rel.mean_pred[b], json_number_value(json_array_get(pp, k)), 1e-12,
                     "prob_pred", name);
        k++;
    }
    assert_int_equal(k, json_array_size(pt));
    double ece = num(rel, "ece");
    assert_close(r->ece.value, ece, 1e-9, "ece", name);
    track(3, r->ece.value, ece);
}

static void check_fairness(const json_t *ref, const ff_eval_csv *csv, const ff_eval_opts *o,
                           const char *name)
{
    ff_eval_fairness f;
    const ff_eval_csv_group *g = &csv->groups[0];
    assert_int_equal(ff_eval_fairness_compute(csv->score, csv->label, g->level, csv->n, "grp",
                                              (const char *const *)g->names, g->nlevels, o, &f),
                     FF_OK);
    const json_t *levels = json_object_get(ref, "levels");
    assert_int_equal(json_object_size(levels), f.nlevels);
    for (size_t l = 0; l < f.nlevels; l++) {
        const json_t *lv = json_object_get(levels, f.levels[l].name);
        assert_non_null(lv);
        assert_int_equal(f.levels[l].n, (size_t)num(lv, "n"));
        assert_close(f.levels[l].brier.value, num(lv, "brier"), 1e-12, "subgroup brier", name);
        assert_close(f.levels[l].alert_rate.value, num(lv, "alert_rate"), 1e-12,
                     "subgroup alert rate", name);
        check_metric_or_undef(lv, "auroc", &f.levels[l].auroc, 1e-12, name);
    }
    assert_close(f.dp_diff.value, num(ref, "dp"), 1e-12, "demographic parity", name);
    assert_close(f.eo_diff.value, num(ref, "eo"), 1e-12, "equalized odds", name);
    ff_eval_fairness_free(&f);
}

static void check_case(const json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *csvpath = json_string_value(json_object_get(c, "csv"));
    const json_t *fair = json_object_get(c, "fairness");
    const char *grp[] = {"grp"};
    ff_eval_csv csv;
    assert_int_equal(ff_eval_csv_read(csvpath, grp, fair ? 1 : 0, &csv), FF_OK);
    assert_int_equal(csv.n, (size_t)num(c, "n"));
    const json_t *rels = json_object_get(c, "reliability");
    const char *bins;
    json_t *rel;
    json_object_foreach((json_t *)rels, bins, rel) {
        ff_eval_opts o;
        ff_eval_opts_default(&o);
        o.ece_bins = atoi(bins);
        ff_eval_result r;
        assert_int_equal(ff_eval_binary(csv.score, csv.label, csv.n, &o, &r), FF_OK);
        assert_int_equal(r.n_pos, (size_t)num(c, "n_pos"));
        check_metric_or_undef(c, "auroc", &r.auroc, 1e-9, name);
        check_metric_or_undef(c, "auprc", &r.auprc, 1e-9, name);
        assert_close(r.brier.value, num(c, "brier"), 1e-9, "brier", name);
        if (r.auroc.defined)
            track(0, r.auroc.value, num(c, "auroc"));
        if (r.auprc.defined)
            track(1, r.auprc.value, num(c, "auprc"));
        track(2, r.brier.value, num(c, "brier"));
        check_reliability(rel, &r, name);
        check_metric_or_undef(c, "sens_at_90_spec", &r.sens_at_spec, 1e-12, name);
        check_metric_or_undef(c, "spec_at_90_sens", &r.spec_at_sens, 1e-12, name);
        if (r.auroc.defined) {
            check_array(json_object_get(c, "roc_fpr"), r.roc.x, r.roc.n, "roc fpr", name);
            check_array(json_object_get(c, "roc_tpr"), r.roc.y, r.roc.n, "roc tpr", name);
        }
        if (r.auprc.defined) {
            check_array(json_object_get(c, "pr_recall"), r.pr.x, r.pr.n, "pr recall", name);
            check_array(json_object_get(c, "pr_precision"), r.pr.y, r.pr.n, "pr precision",
                        name);
        }
        /* The fit tolerances reflect sklearn's optimiser, not ours (Newton to 1e-11). */
        check_metric_or_undef(c, "cal_slope", &r.cal_slope, 1e-5, name);
        check_metric_or_undef(c, "cal_intercept", &r.cal_intercept, 1e-5, name);
        const json_t *th = json_object_get(c, "threshold");
        check_metric_or_undef(th, "alert_rate", &r.alert_rate, 1e-12, name);
        check_metric_or_undef(th, "ppv", &r.ppv, 1e-12, name);
        check_metric_or_undef(th, "sensitivity", &r.sensitivity, 1e-12, name);
        check_metric_or_undef(th, "specificity", &r.specificity, 1e-12, name);
        const char *tk;
        json_t *nb;
        json_object_foreach(json_object_get(c, "net_benefit"), tk, nb) {
            size_t j = (size_t)llround(atof(tk) * 100) - 1; /* DCA thresholds are j/100 */
            assert_close(r.dca.t[j], atof(tk), 0, "dca threshold", name);
            assert_close(r.dca.model[j], json_number_value(nb), 1e-12, "net benefit", name);
        }
        if (fair)
            check_fairness(fair, &csv, &o, name);
        ff_eval_result_free(&r);
    }
    double T;
    json_t *tref = json_object_get(c, "temperature");
    int rc = ff_temperature_fit(csv.score, csv.label, csv.n, &T);
    if (tref) {
        if (rc != FF_OK)
            fail_msg("%s: temperature failed: %s", name, ff_error_message());
        assert_close(T, json_number_value(tref), 1e-6 * T, "temperature", name);
    }
    ff_eval_csv_free(&csv);
}

static void test_against_sklearn(void **state)
{
    (void)state;
    const json_t *cases = json_object_get(g_cases, "cases");
    assert_true(json_array_size(cases) >= 8);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
        check_case(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_sklearn),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
