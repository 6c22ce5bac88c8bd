/* The coordinator's final report (ff_fed_write_report) when a site withheld small subgroups
 * (ff_eval_hist_suppress, what the site runs before its evaluation leaves it): the site's own
 * column says "suppressed at the site", with no number for the subgroup; the pooled subgroups
 * of that attribute come from the other sites, with a note naming them (or read "suppressed
 * at K sites" when every site withheld some); with the minimum lowered, the same subgroup is
 * reported from its histogram. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "ff/eval.h"
#include "ff/fed.h"

/* One site's test histogram of task icu: age "<40" (4 patients, 2 positive), "40-64" and
 * "65+" (40 patients each), scores spread over [0.05, 0.95]; withheld below min_cell. */
static json_t *site_hists(uint64_t seed, int64_t min_cell)
{
    ff_eval_hist *h;
    assert_int_equal(ff_eval_hist_new(&h, "icu", 1000), FF_OK);
    static const char *const lv[] = {"<40", "40-64", "65+"};
    static const size_t n[] = {4, 40, 40};
    ff_rng r;
    ff_rng_init(&r, seed, 1);
    for (size_t l = 0; l < 3; l++) {
        size_t idx;
        assert_int_equal(ff_eval_hist_slice_find(h, "age", lv[l], &idx), FF_OK);
        for (size_t i = 0; i < n[l]; i++) {
            uint8_t y = i % 2;
            double s = 0.05 + 0.9 * ff_rng_uniform_d(&r) * (y ? 1.0 : 0.7);
            assert_int_equal(ff_eval_hist_add(h, &s, &y, 1, NULL), FF_OK);
            assert_int_equal(ff_eval_hist_add(h, &s, &y, 1, &idx), FF_OK);
        }
    }
    assert_int_equal(ff_eval_hist_suppress(h, min_cell, 1, NULL), FF_OK);
    json_t *j = NULL, *arr = json_array();
    assert_int_equal(ff_eval_hist_to_json(h, &j), FF_OK);
    json_array_append_new(arr, j);
    ff_eval_hist_free(h);
    return arr;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *b = calloc(1, 1 << 23);
    assert_non_null(b);
    size_t n = fread(b, 1, (1 << 23) - 1, f);
    fclose(f);
    assert_true(n > 0);
    return b;
}

/* fedeval.json of two sites (minimum cell sizes min1, min2), report written. */
static void run_report(const char *dir, int64_t min1, int64_t min2, json_t **metrics,
                       char **page)
{
    json_t *hists = json_pack("{s:o, s:o}", "site-1", site_hists(1, min1), "site-2",
                              site_hists(2, min2));
    json_t *fe = json_pack("{s:s, s:[s,s], s:[], s:o, s:{}, s:{}, s:{s:{s:s, s:f}, s:i, s:i, s:i}}",
                           "format", "fedfuse-fedeval-v1", "sites", "site-1", "site-2", "rounds",
                           "hists", hists, "val_hists", "stats", "report", "operating_point",
                           "rule", "threshold", "target", 0.5, "min_cell_size", 0, "bootstrap",
                           20, "min_positives", 1);
    assert_int_equal(json_dump_file(fe, ft_path(dir, "fedeval.json"), 0), 0);
    json_decref(fe);
    assert_int_equal(ff_fed_write_report(dir, NULL, 0), FF_OK);
    json_error_t err;
    *metrics = json_load_file(ft_path(dir, "metrics.json"), 0, &err);
    assert_non_null(*metrics);
    *page = slurp(ft_path(dir, "report.html"));
}

static const json_t *level(const json_t *m, const char *col, const char *lv)
{
    const json_t *t = json_object_get(json_object_get(m, "tasks"), "icu");
    const json_t *c = strcmp(col, "pooled") == 0 ? json_object_get(t, "pooled")
                                                 : json_object_get(json_object_get(t, "sites"), col);
    return json_object_get(json_object_get(json_object_get(json_object_get(c, "groups"), "age"),
                                           "levels"), lv);
}

static void test_withheld_subgroup_reported_as_such(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    json_t *m;
    char *page;
    /* site-2's minimum 10: "<40" (4 patients) withheld, and "40-64" with it; the pooled age
     * table is then site-1's alone, and says so */
    run_report(dir, 1, 10, &m, &page);
    assert_non_null(strstr(page, "suppressed at the site (n &lt; 10)"));
    assert_non_null(strstr(page, "Pooled over 1 of 2 sites (site-1): site-2 withheld subgroups "
                                 "of age below its minimum cell size."));
    const json_t *w = level(m, "site-2", "<40");
    assert_non_null(w);
    assert_int_equal(json_integer_value(json_object_get(w, "n")), 0);
    assert_true(json_is_null(json_object_get(w, "auroc")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(w, "suppressed_at_site"),
                                                        "min_cell_size")), 10);
    assert_null(json_object_get(level(m, "site-2", "65+"), "suppressed_at_site"));
    assert_int_equal(json_integer_value(json_object_get(level(m, "site-1", "<40"), "n")), 4);
    assert_int_equal(json_integer_value(json_object_get(level(m, "pooled", "<40"), "n")), 4);
    assert_int_equal(json_integer_value(json_object_get(level(m, "pooled", "65+"), "n")), 40);
    json_decref(m);
    free(page);

    /* both sites at 10: nothing of "<40" or "40-64" to pool */
    run_report(dir, 10, 10, &m, &page);
    assert_non_null(strstr(page, "suppressed at 2 sites (n &lt; 10)"));
    assert_non_null(strstr(page, "Not pooled: every site withheld subgroups of age"));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(level(m, "pooled", "<40"), "suppressed_at_site"), "sites")),
                     2);
    json_decref(m);
    free(page);

    /* the minimum lowered to 2: site-2 sends "<40" and the report computes it */
    run_report(dir, 1, 2, &m, &page);
    assert_null(strstr(page, "suppressed at"));
    assert_null(strstr(page, "Pooled over"));
    assert_null(json_object_get(level(m, "site-2", "<40"), "suppressed_at_site"));
    assert_int_equal(json_integer_value(json_object_get(level(m, "site-2", "<40"), "n")), 4);
    assert_int_equal(json_integer_value(json_object_get(level(m, "pooled", "<40"), "n")), 8);
    json_decref(m);
    free(page);
    ft_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_withheld_subgroup_reported_as_such),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
