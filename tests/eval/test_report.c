/* The HTML report: self-contained (no scripts, no external references), every section present,
 * undefined metrics shown with their reason, per-round curves when given. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/eval.h"

static void test_report_sections(void **state)
{
    (void)state;
    const double s[] = {0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.65, 0.55};
    const uint8_t y[] = {0, 0, 1, 1, 1, 0, 1, 0};
    const int32_t lv[] = {0, 1, 0, 1, 0, 1, 0, 2};
    const char *names[] = {"F", "M", "X<&>"};
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    o.bootstrap = 50;
    ff_eval_result pooled, site;
    ff_eval_fairness f;
    assert_int_equal(ff_eval_binary(s, y, 8, &o, &pooled), FF_OK);
    assert_int_equal(ff_eval_binary(s, y + 0, 2, &o, &site), FF_OK); /* one class: undefined */
    assert_int_equal(ff_eval_fairness_compute(s, y, lv, 8, "sex", names, 3, &o, &f), FF_OK);
    ff_report *rep;
    assert_int_equal(ff_report_new(&rep, "test <report>"), FF_OK);
    assert_int_equal(ff_report_add_note(rep, "note & details"), FF_OK);
    assert_int_equal(ff_report_add_column(rep, "pooled", &pooled, &f, 1), FF_OK);
    assert_int_equal(ff_report_add_column(rep, "site-a", &site, NULL, 0), FF_OK);
    const double rounds[] = {0.61, 0.7, 0.74, 0.78, 0.79};
    assert_int_equal(ff_report_add_rounds(rep, "AUROC per round", rounds, 5), FF_OK);
    const double bad[] = {0.5, NAN};
    assert_int_equal(ff_report_add_rounds(rep, "bad", bad, 2), FF_ENUMERIC);
    const char *d = ft_tmpdir();
    const char *path = ft_path(d, "report.html");
    assert_int_equal(ff_report_write(rep, path), FF_OK);
    char *html;
    size_t len;
    assert_int_equal(ff_file_read_all(path, 1 << 24, &html, &len), FF_OK);
    const char *must[] = {"<!DOCTYPE html>", "test &lt;report&gt;", "note &amp; details",
                          "ROC curves", "Precision-recall curves", "Calibration (reliability)",
                          "decision curves", "AUROC by sex", "X&lt;&amp;&gt;",
                          "Federated rounds", "AUROC per round", "only one class",
                          "equalized odds difference", "<span class=\"ci\">",
                          "class=\"axis x\"", "class=\"axis y\"", "class=\"legend\"",
                          "#E69F00", "n=8, 4 positives", "calibration slope",
                          "At the operating threshold", "only 4 positives"};
    for (size_t i = 0; i < FF_ARRAY_LEN(must); i++)
        if (!strstr(html, must[i]))
            fail_msg("report lacks '%s'", must[i]);
    const char *never[] = {"<script", "http://", "https://", "nan", "inf<", "<link", "@import",
                           ">undefined<", "null"};
    for (size_t i = 0; i < FF_ARRAY_LEN(never); i++)
        if (strstr(html, never[i]))
            fail_msg("report contains '%s'", never[i]);
    free(html);
    ff_report_free(rep);
    ff_eval_fairness_free(&f);
    ff_eval_result_free(&pooled);
    ff_eval_result_free(&site);
    ft_rmtree(d);
}

/* A multi-task run ('fedfuse eval'): one section per task in the page, one object per task in
 * metrics.json with per-site objects. */
static void test_multi_task(void **state)
{
    (void)state;
    const double s[] = {0.1, 0.4, 0.35, 0.8, 0.9, 0.2};
    const uint8_t y1[] = {0, 0, 1, 1, 1, 0}, y2[] = {1, 0, 0, 1, 0, 0};
    ff_eval_result r[4];
    assert_int_equal(ff_eval_binary(s, y1, 6, NULL, &r[0]), FF_OK);
    assert_int_equal(ff_eval_binary(s, y1, 3, NULL, &r[1]), FF_OK);
    assert_int_equal(ff_eval_binary(s, y2, 6, NULL, &r[2]), FF_OK);
    assert_int_equal(ff_eval_binary(s, y2, 3, NULL, &r[3]), FF_OK);
    const char *sites[] = {"site-a"};
    ff_eval_task_summary t[2] = {
        {"icu", &r[0], NULL, 0, sites, &r[1], 1, NULL, 0},
        {"admit", &r[2], NULL, 0, sites, &r[3], 1, NULL, 0},
    };
    json_t *j;
    assert_int_equal(ff_eval_tasks_to_json(t, 2, NULL, &j), FF_OK);
    json_t *icu = json_object_get(json_object_get(j, "tasks"), "icu");
    assert_true(json_real_value(json_object_get(icu, "auroc")) == r[0].auroc.value);
    json_t *sa = json_object_get(json_object_get(icu, "sites"), "site-a");
    assert_true(json_real_value(json_object_get(sa, "auroc")) == r[1].auroc.value);
    assert_non_null(json_object_get(json_object_get(json_object_get(j, "tasks"), "admit"),
                                    "brier"));
    json_decref(j);
    ff_report *rep;
    assert_int_equal(ff_report_new(&rep, "two tasks"), FF_OK);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(ff_report_add_task(rep, t[k].task), FF_OK);
        assert_int_equal(ff_report_add_column(rep, "pooled", &r[2 * k], NULL, 0), FF_OK);
        assert_int_equal(ff_report_add_column(rep, "site-a", &r[2 * k + 1], NULL, 0), FF_OK);
    }
    const char *d = ft_tmpdir();
    const char *path = ft_path(d, "r.html");
    assert_int_equal(ff_report_write(rep, path), FF_OK);
    char *html;
    size_t len;
    assert_int_equal(ff_file_read_all(path, 1 << 24, &html, &len), FF_OK);
    assert_non_null(strstr(html, "Task: icu"));
    assert_non_null(strstr(html, "decision curves"));
    const char *admit = strstr(html, "Task: admit");
    assert_non_null(admit);
    assert_non_null(strstr(admit, "ROC curves"));
    free(html);
    ff_report_free(rep);
    for (int k = 0; k < 4; k++)
        ff_eval_result_free(&r[k]);
    ft_rmtree(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_report_sections),
                                       cmocka_unit_test(test_multi_task)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
