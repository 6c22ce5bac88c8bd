/* ff_stats: the query language's errors, a site's vector and its disclosure control
 * (primary and complementary suppression, the differencing rule), exact decoding of sums. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/stats.h"
#include "testutil.h"
/* the lane plan, to look at what a site would send for one cell */
#include "../../stats/src/stats_internal.h"

static ff_stats_query *query(const char *yaml)
{
    ff_stats_query *q = NULL;
    assert_int_equal(ff_stats_query_load_str(&q, "q.yaml", yaml, strlen(yaml)), FF_OK);
    return q;
}

static ff_stats_table *table(const char *dir, const char *csv)
{
    const char *p = ft_path(dir, "t.csv");
    ft_write_file(p, csv, strlen(csv));
    ff_stats_table *t = NULL;
    assert_int_equal(ff_stats_table_load(&t, p), FF_OK);
    return t;
}

static json_t *find(json_t *res, const char *var, const char *stat, const char *key,
                    const char *val)
{
    json_t *o;
    size_t i;
    json_array_foreach(res, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "variable")), var) != 0 ||
            strcmp(json_string_value(json_object_get(o, "statistic")), stat) != 0)
            continue;
        if (!key || strcmp(json_string_value(json_object_get(o, key)), val) == 0)
            return o;
    }
    return NULL;
}

static void test_query_errors(void **state)
{
    (void)state;
    ff_stats_query *q = NULL;
    const char *bad = "name: x\nvariables:\n  - {name: age, hist: {min: 0, max: 10, width: 3}}\n";
    assert_int_equal(ff_stats_query_load_str(&q, "q.yaml", bad, strlen(bad)), FF_ECONFIG);
    ft_assert_error_has("q.yaml:3:");
    ft_assert_error_has("whole number of bins");
    assert_null(q);
    const char *unk = "name: x\nvariabels: []\n";
    assert_int_equal(ff_stats_query_load_str(&q, "q.yaml", unk, strlen(unk)), FF_ECONFIG);
    ft_assert_error_has("q.yaml:2:1: variabels");
    const char *xt = "name: x\nvariables: [{name: a}]\ncrosstabs: [{rows: a, cols: b}]\n";
    assert_int_equal(ff_stats_query_load_str(&q, "q.yaml", xt, strlen(xt)), FF_ECONFIG);
    ft_assert_error_has("crosstabs[0].rows");
}

/* 12 patients; group g: x (6), y (4), z (2). With k = 3, z is below the minimum and the
 * smallest other cell (y) is suppressed with it; age's sums are exact. */
static const char *rows = "id,age,g,time,event\n"
                          "1,30,x,1,1\n2,31,x,2,0\n3,32,x,2,1\n4,40,x,3,1\n5,41,x,5,0\n6,42,x,5,1\n"
                          "7,50,y,6,1\n8,51,y,7,0\n9,52,y,8,1\n10,60,y,9,0\n11,61,z,9,1\n12,,z,9,0\n";

static void test_site_and_release(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    ff_stats_table *t = table(dir, rows);
    ff_stats_query *q = query("name: t\n"
                              "variables:\n"
                              "  - {name: age, quantiles: {min: 0, max: 100, width: 1}}\n"
                              "  - {name: g, type: categorical, values: [x, y, z]}\n");
    ff_stats_policy p = {.min_cell = 3, .allow_all = 1};
    uint32_t *l = calloc(ff_stats_lanes(q), sizeof *l);
    ff_stats_site_report rep;
    assert_int_equal(ff_stats_site_compute(q, t, &p, l, &rep), FF_OK);
    assert_int_equal(rep.cohort, 12);
    assert_int_equal(rep.primary, 2);       /* z (2) and age's missing (1) */
    assert_true(rep.complementary >= 1);    /* y, protecting z; age's count */
    /* what leaves the site for the suppressed cells z and y: 0 with the flag set */
    const st_var *g = (const st_var *)q->c.variables.items + 1;
    for (size_t k = 1; k <= 2; k++) {
        size_t lane = q->cells[g->c_val + k].lane;
        assert_int_equal(l[lane], 0);
        assert_int_equal(l[lane + 1], 1);
    }
    assert_int_equal(l[q->cells[g->c_val].lane], 6); /* x is released */
    json_t *res = json_array(), *sup = json_array();
    assert_int_equal(ff_stats_release(q, l, "s", res, sup), FF_OK);
    assert_int_equal(json_integer_value(json_object_get(find(res, "patients", "count", NULL, NULL), "value")), 12);
    assert_non_null(find(res, "g", "hist", "category", "x"));
    assert_null(find(res, "g", "hist", "category", "z"));
    assert_null(find(res, "g", "hist", "category", "y"));
    /* age: missing is 1 < 3, so count is suppressed with it, and the sums with the count */
    assert_null(find(res, "age", "mean", NULL, NULL));
    assert_true(json_array_size(sup) >= 4);
    json_decref(res);
    json_decref(sup);

    /* k = 1: nothing suppressed; two sites' vectors summed lane by lane decode exactly */
    p.min_cell = 1;
    uint32_t *sum = calloc(ff_stats_lanes(q), sizeof *sum);
    assert_int_equal(ff_stats_site_compute(q, t, &p, l, NULL), FF_OK);
    for (size_t i = 0; i < ff_stats_lanes(q); i++)
        sum[i] = l[i] * 2;
    res = json_array();
    sup = json_array();
    assert_int_equal(ff_stats_release(q, sum, "pooled", res, sup), FF_OK);
    assert_int_equal(json_array_size(sup), 0);
    double s = 30 + 31 + 32 + 40 + 41 + 42 + 50 + 51 + 52 + 60 + 61, n = 11, ss = 0;
    double ages[] = {30, 31, 32, 40, 41, 42, 50, 51, 52, 60, 61};
    for (int i = 0; i < 11; i++)
        ss += (ages[i] - s / n) * (ages[i] - s / n);
    assert_true(fabs(json_real_value(json_object_get(find(res, "age", "mean", NULL, NULL), "value")) - s / n) < 1e-12);
    /* 22 values = each age twice: sample variance of the doubled sample */
    double var = 2 * ss / 21;
    assert_true(fabs(json_real_value(json_object_get(find(res, "age", "var", NULL, NULL), "value")) - var) < 1e-9);
    json_t *q50 = find(res, "age", "q50", NULL, NULL);
    assert_true(fabs(json_real_value(json_object_get(q50, "value")) - 42) <= 0.5);
    free(sum);
    free(l);
    json_decref(res);
    json_decref(sup);
    ff_stats_query_free(q);
    ff_stats_table_free(t);
    ft_rmtree(dir);
}

/* Two overlapping cohorts that differ by one patient: the second query is refused. */
static void test_differencing(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    ff_stats_table *t = table(dir, rows);
    ff_stats_query *a = query("name: a\nwhere: [{column: age, min: 30, max: 60}]\nvariables: [{name: age}]\n");
    ff_stats_query *b = query("name: b\nwhere: [{column: age, min: 30, max: 59}]\nvariables: [{name: age}]\n");
    ff_stats_policy p = {.min_cell = 3, .allow_all = 1, .history = ft_path(dir, "h.json")};
    uint32_t *l = calloc(ff_stats_lanes(a) + ff_stats_lanes(b), sizeof *l);
    assert_int_equal(ff_stats_site_compute(a, t, &p, l, NULL), FF_OK);
    assert_int_equal(ff_stats_history_record(a, t, &p), FF_OK);
    assert_int_equal(ff_stats_site_compute(a, t, &p, l, NULL), FF_OK); /* the same again: fine */
    assert_int_equal(ff_stats_site_compute(b, t, &p, l, NULL), FF_EPOLICY);
    ft_assert_error_has("differencing");
    ff_stats_policy deny = {.min_cell = 3, .allowed = (const char *const[]){"g"}, .nallowed = 1};
    assert_int_equal(ff_stats_site_compute(a, t, &deny, l, NULL), FF_EPOLICY);
    ft_assert_error_has("does not allow 'age'");
    free(l);
    ff_stats_query_free(a);
    ff_stats_query_free(b);
    ff_stats_table_free(t);
    ft_rmtree(dir);
}

/* Kaplan–Meier by hand: times 1..9 of the table above. */
static void test_km(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    ff_stats_table *t = table(dir, rows);
    ff_stats_query *q = query("name: k\nsurvival: [{name: os, time: time, event: event, width: 1, max: 20}]\n");
    ff_stats_policy p = {.min_cell = 1, .allow_all = 1};
    uint32_t *l = calloc(ff_stats_lanes(q), sizeof *l);
    assert_int_equal(ff_stats_site_compute(q, t, &p, l, NULL), FF_OK);
    json_t *res = json_array(), *sup = json_array();
    assert_int_equal(ff_stats_release(q, l, "s", res, sup), FF_OK);
    /* events at 1 (12 at risk), 2 (11, one censored there too), 3 (9), 5 (8, one censored) */
    double s = 1, want[][2] = {{1, 12}, {2, 11}, {3, 9}, {5, 8}};
    size_t i, k = 0;
    json_t *o;
    json_array_foreach(res, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "statistic")), "km") != 0 || k >= 4)
            continue;
        s *= 1 - 1.0 / want[k][1]; /* one event at each of these times */
        assert_true(fabs(json_real_value(json_object_get(o, "time")) - want[k][0]) < 1e-12);
        assert_true(fabs(json_real_value(json_object_get(o, "value")) - s) < 1e-12);
        k++;
    }
    assert_int_equal(k, 4);
    free(l);
    json_decref(res);
    json_decref(sup);
    ff_stats_query_free(q);
    ff_stats_table_free(t);
    ft_rmtree(dir);
}

/* Under privacy a numeric variable must declare its clipping bounds: the error names the
 * file, the line and the key. */
static void test_dp_query_errors(void **state)
{
    (void)state;
    ff_stats_query *q = NULL;
    const char *nob = "name: x\nprivacy: {epsilon: 1}\nvariables:\n  - {name: age}\n";
    assert_int_equal(ff_stats_query_load_str(&q, "q.yaml", nob, strlen(nob)), FF_ECONFIG);
    ft_assert_error_has("q.yaml:4:");
    ft_assert_error_has("variables[0].name");
    ft_assert_error_has("declares min and max");
    assert_null(q);
    const char *inv =
        "name: x\nprivacy: {epsilon: 1}\nvariables:\n  - {name: age, min: 5, max: 1}\n";
    assert_int_equal(ff_stats_query_load_str(&q, "q.yaml", inv, strlen(inv)), FF_ECONFIG);
    ft_assert_error_has("variables[0].max");
    /* without privacy nothing is required, and nothing is noised */
    q = query("name: x\nvariables:\n  - {name: age}\n");
    ff_stats_dp dp;
    assert_int_equal(ff_stats_dp_plan(q, 2, &dp), FF_OK);
    assert_int_equal(dp.on, 0);
    assert_int_equal(ff_stats_query_private(q), 0);
    ff_stats_query_free(q);
}

static int64_t wide_value(const uint32_t *l)
{
    uint64_t u = 0;
    for (int k = 0; k < ST_LIMBS; k++)
        u += (uint64_t)l[k] << (16 * k);
    return (int64_t)u;
}

/* The noise each lane gets has the variance the plan states (sensitivity² × share variance):
 * 4000 draws from a fixed seed (42), sample variance within 10 % (its standard error is
 * about 2 %), mean within 5 standard errors of 0. */
static void test_dp_noise_scale(void **state)
{
    (void)state;
    ff_stats_query *q = query("name: x\nprivacy: {epsilon: 1, delta: 1.0e-6}\nvariables:\n"
                              "  - {name: age, min: -5, max: 10}\n");
    ff_stats_dp dp;
    assert_int_equal(ff_stats_dp_plan(q, 3, &dp), FF_OK);
    assert_int_equal(dp.touched, 4); /* cohort, count or missing, sum, sum of squares */
    assert_true(dp.eps_pooled <= 1.0 && dp.eps_pooled > 0.99);
    const st_var *v = q->c.variables.items;
    size_t lanes[3] = {q->cells[q->c_cohort].lane, q->cells[v[0].c_sum].lane,
                       q->cells[v[0].c_sumsq].lane};
    double sens[3] = {1, 10, 100};
    for (int own = 0; own < 2; own++) {
        double want = (double)(own ? dp.site_num : dp.share_num) / (double)dp.den;
        ff_rng rng;
        ff_rng_init(&rng, 42, (uint64_t)own);
        double sum[3] = {0}, sq[3] = {0};
        const int n = 4000;
        uint32_t *l = calloc(ff_stats_lanes(q), sizeof *l);
        for (int it = 0; it < n; it++) {
            memset(l, 0, ff_stats_lanes(q) * sizeof *l);
            assert_int_equal(ff_stats_dp_noise(q, &dp, own, &rng, l), FF_OK);
            double x[3] = {(double)(int32_t)l[lanes[0]], (double)wide_value(l + lanes[1]),
                           (double)wide_value(l + lanes[2])};
            for (int k = 0; k < 3; k++) {
                sum[k] += x[k];
                sq[k] += x[k] * x[k];
            }
        }
        for (int k = 0; k < 3; k++) {
            double var = want * sens[k] * sens[k], mean = sum[k] / n;
            double s2 = (sq[k] - n * mean * mean) / (n - 1);
            assert_true(fabs(s2 / var - 1) < 0.10);
            assert_true(fabs(mean) < 5 * sqrt(var / n));
        }
        free(l);
    }
    ff_stats_query_free(q);
}

/* The rounds a site charges give the plan's ε in the privacy ledger, survive its JSON form,
 * and compose to what ff_stats_dp_cost says. */
static void test_dp_ledger(void **state)
{
    (void)state;
    ff_stats_query *q = query("name: x\nprivacy: {epsilon: 0.5, delta: 1.0e-5}\nvariables:\n"
                              "  - {name: sex, type: categorical, values: [F, M]}\n");
    ff_stats_dp dp;
    assert_int_equal(ff_stats_dp_plan(q, 2, &dp), FF_OK);
    double orders[FF_PRIVACY_MAX_ORDERS], eps, order, cost;
    size_t no = ff_privacy_orders_dp_accounting(orders);
    ff_privacy_ledger *l = NULL, *back = NULL;
    assert_int_equal(ff_privacy_ledger_new(&l, FF_PRIVACY_LEVEL_RECORD, 10, dp.delta, orders, no,
                                           FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                           FF_PRIVACY_CONV_IMPROVED), FF_OK);
    ff_privacy_round r;
    ff_stats_dp_round(&dp, 0, 1, 3, &r);
    assert_int_equal(ff_privacy_ledger_record(l, &r), FF_OK);
    assert_int_equal(ff_privacy_ledger_epsilon(l, &eps, &order), FF_OK);
    assert_true(fabs(eps - dp.eps_pooled) < 1e-12);
    ff_stats_dp_round(&dp, 1, 1, 3, &r);
    assert_int_equal(ff_privacy_ledger_record(l, &r), FF_OK);
    assert_int_equal(ff_privacy_ledger_epsilon(l, &eps, &order), FF_OK);
    assert_int_equal(ff_stats_dp_cost(&dp, 1, &cost), FF_OK);
    assert_true(fabs(eps - cost) < 1e-12 && cost > dp.eps_pooled);
    char *text = NULL;
    assert_int_equal(ff_privacy_ledger_to_json(l, &text), FF_OK);
    assert_non_null(strstr(text, "\"ddg_integer\": true"));
    assert_int_equal(ff_privacy_ledger_from_json(&back, text, "ledger.json"), FF_OK);
    double eps2;
    assert_int_equal(ff_privacy_ledger_epsilon(back, &eps2, &order), FF_OK);
    assert_true(fabs(eps2 - eps) < 1e-12);
    free(text);
    ff_privacy_ledger_free(l);
    ff_privacy_ledger_free(back);
    ff_stats_query_free(q);
}

/* A noised vector decodes counts as signed, with their bound and the release's ε. */
static void test_dp_release(void **state)
{
    (void)state;
    ff_stats_query *q = query("name: x\nprivacy: {epsilon: 1}\nvariables:\n"
                              "  - {name: sex, type: categorical, values: [F, M]}\n");
    uint32_t *l = calloc(ff_stats_lanes(q), sizeof *l);
    l[q->cells[q->c_cohort].lane] = (uint32_t)-3;
    json_t *res = json_array(), *sup = json_array();
    assert_int_equal(ff_stats_release_noised(q, l, "pooled", 4.0, 0.7, 1e-6, res, sup), FF_OK);
    json_t *o = find(res, "patients", "count", NULL, NULL);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "value")), -3);
    assert_true(fabs(json_real_value(json_object_get(o, "bound")) - 11.0) < 1e-12);
    assert_true(fabs(json_real_value(json_object_get(o, "epsilon")) - 0.7) < 1e-15);
    free(l);
    json_decref(res);
    json_decref(sup);
    ff_stats_query_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_errors),
        cmocka_unit_test(test_site_and_release),
        cmocka_unit_test(test_differencing),
        cmocka_unit_test(test_km),
        cmocka_unit_test(test_dp_query_errors),
        cmocka_unit_test(test_dp_noise_scale),
        cmocka_unit_test(test_dp_ledger),
        cmocka_unit_test(test_dp_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
