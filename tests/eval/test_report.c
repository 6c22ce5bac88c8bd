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
                          "ROC curve", "Precision-recall curve", "Reliability diagram",
                          "Decision curve", "AUROC by subgroup", "X&lt;&amp;&gt;",
                          "Federated rounds", "AUROC per round", "only one class",
                          "equalized odds difference", "<span class=\"ci\">"};
    for (size_t i = 0; i < FF_ARRAY_LEN(must); i++)
        if (!strstr(html, must[i]))
            fail_msg("report lacks '%s'", must[i]);
    const char *never[] = {"<script", "http://", "https://", "nan", "inf<", "<link", "@import"};
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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_report_sections)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
