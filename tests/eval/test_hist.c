/* Federated histograms: three synthetic sites send serialised histograms; the merged metrics
 * must lie within the documented bounds of the exact pooled metrics (computed here on the
 * pooled predictions with ff_eval_binary, itself checked against scikit-learn). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ff/eval.h"

#define SITES 3

typedef struct {
    size_t n;
    double *s;
    uint8_t *y;
    int32_t *sex; /* 0 F, 1 M */
} cohort;

/* Site k: prevalence and separation differ; site 2 reports scores on a 0.001 grid (ties). */
static void make_site(cohort *c, int k, size_t n)
{
    ff_rng r;
    ff_rng_init(&r, 2026, (uint64_t)k);
    c->n = n;
    c->s = malloc(n * sizeof *c->s);
    c->y = malloc(n);
    c->sex = malloc(n * sizeof *c->sex);
    double prev = 0.1 + 0.1 * k, sep = 1.0 + 0.5 * k;
    for (size_t i = 0; i < n; i++) {
        c->y[i] = ff_rng_uniform_d(&r) < prev;
        c->sex[i] = (int32_t)ff_rng_below(&r, 2);
        double z = ff_rng_normal(&r) + sep * c->y[i] - 1.5 + 0.3 * c->sex[i];
        c->s[i] = 1 / (1 + exp(-z));
        if (k == 2)
            c->s[i] = round(c->s[i] * 1000) / 1000;
    }
}

static void free_site(cohort *c)
{
    free(c->s);
    free(c->y);
    free(c->sex);
}

/* What a site does: histogram with sex slices, serialised to text. */
static char *site_summary(const cohort *c)
{
    ff_eval_hist *h;
    assert_int_equal(ff_eval_hist_new(&h, "icu", FF_EVAL_HIST_BINS), FF_OK);
    size_t sl[2];
    assert_int_equal(ff_eval_hist_slice_find(h, "sex", "F", &sl[0]), FF_OK);
    assert_int_equal(ff_eval_hist_slice_find(h, "sex", "M", &sl[1]), FF_OK);
    size_t *idx = malloc(c->n * sizeof *idx);
    for (size_t i = 0; i < c->n; i++)
        idx[i] = sl[c->sex[i]];
    assert_int_equal(ff_eval_hist_add(h, c->s, c->y, c->n, NULL), FF_OK);
    assert_int_equal(ff_eval_hist_add(h, c->s, c->y, c->n, idx), FF_OK);
    json_t *j;
    assert_int_equal(ff_eval_hist_to_json(h, &j), FF_OK);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    ff_eval_hist_free(h);
    free(idx);
    return txt;
}

static void test_pooled_within_bound(void **state)
{
    (void)state;
    cohort site[SITES];
    size_t total = 0;
    for (int k = 0; k < SITES; k++) {
        make_site(&site[k], k, 4000 + 3000 * (size_t)k);
        total += site[k].n;
    }
    /* coordinator: parse and merge */
    ff_eval_hist *pooled = NULL;
    for (int k = 0; k < SITES; k++) {
        char *txt = site_summary(&site[k]);
        json_error_t err;
        json_t *j = json_loads(txt, 0, &err);
        assert_non_null(j);
        ff_eval_hist *h;
        assert_int_equal(ff_eval_hist_from_json(j, &h), FF_OK);
        json_decref(j);
        free(txt);
        if (!pooled)
            pooled = h;
        else {
            assert_int_equal(ff_eval_hist_merge(pooled, h), FF_OK);
            ff_eval_hist_free(h);
        }
    }
    /* exact pooled values, for comparison only */
    double *s = malloc(total * sizeof *s);
    uint8_t *y = malloc(total);
    int32_t *sex = malloc(total * sizeof *sex);
    size_t m = 0;
    for (int k = 0; k < SITES; k++) {
        memcpy(s + m, site[k].s, site[k].n * sizeof *s);
        memcpy(y + m, site[k].y, site[k].n);
        memcpy(sex + m, site[k].sex, site[k].n * sizeof *sex);
        m += site[k].n;
    }
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    ff_eval_result ex, hm;
    ff_eval_hist_bound bd;
    assert_int_equal(ff_eval_binary(s, y, total, &o, &ex), FF_OK);
    assert_int_equal(ff_eval_hist_metrics(pooled, 0, &o, &hm, &bd), FF_OK);
    assert_int_equal(hm.n, total);
    assert_int_equal(hm.n_pos, ex.n_pos);
    double eau = fabs(hm.auroc.value - ex.auroc.value), eap = fabs(hm.auprc.value - ex.auprc.value);
    print_message("pooled n=%zu: AUROC exact %.6f hist %.6f |err| %.2e bound %.2e; "
                  "AUPRC exact %.6f hist %.6f |err| %.2e bound %.2e\n", total, ex.auroc.value,
                  hm.auroc.value, eau, bd.auroc, ex.auprc.value, hm.auprc.value, eap, bd.auprc);
    assert_true(eau <= bd.auroc + 1e-12);
    assert_true(eap <= bd.auprc + 1e-12);
    assert_true(bd.auroc < 2e-3); /* site 2's 0.001 grid makes ties; still a small bound */
    assert_true(bd.auprc < 2e-2);
    assert_true(fabs(hm.brier.value - ex.brier.value) < 1e-12);
    /* reliability bins: identical unless a score sits exactly on an inner edge (site 2's grid
     * has k/10 values: those go to the lower bin in sklearn, the upper in the histogram) */
    assert_true(bd.calibration_exact);
    double moved = 0;
    for (int b = 0; b < o.ece_bins; b++)
        moved += fabs(hm.rel.count[b] - ex.rel.count[b]);
    size_t on_edge = 0;
    for (size_t i = 0; i < total; i++)
        for (int e = 1; e < o.ece_bins; e++)
            on_edge += fabs(s[i] - (double)e / o.ece_bins) < 1e-9;
    assert_true(moved <= 2.0 * (double)on_edge);
    assert_true(fabs(hm.ece.value - ex.ece.value) <= 2.0 * (double)on_edge / (double)total + 1e-12);
    /* operating threshold 0.5 is a bin edge: threshold statistics are exact */
    assert_true(fabs(hm.alert_rate.value - ex.alert_rate.value) < 1e-12);
    assert_true(fabs(hm.sensitivity.value - ex.sensitivity.value) < 1e-12);
    /* subgroups */
    const char *names[] = {"F", "M"};
    ff_eval_fairness fe, fh;
    assert_int_equal(ff_eval_fairness_compute(s, y, sex, total, "sex", names, 2, &o, &fe), FF_OK);
    assert_int_equal(ff_eval_hist_fairness(pooled, "sex", &o, &fh), FF_OK);
    assert_int_equal(fh.nlevels, 2);
    for (size_t l = 0; l < 2; l++) {
        size_t sl;
        assert_int_equal(ff_eval_hist_slice_find(pooled, "sex", names[l], &sl), FF_OK);
        ff_eval_result r;
        ff_eval_hist_bound b2;
        assert_int_equal(ff_eval_hist_metrics(pooled, sl, &o, &r, &b2), FF_OK);
        assert_string_equal(fh.levels[l].name, names[l]);
        assert_int_equal(fh.levels[l].n, fe.levels[l].n);
        assert_true(fabs(fh.levels[l].auroc.value - fe.levels[l].auroc.value) <= b2.auroc + 1e-12);
        assert_true(fabs(r.auroc.value - fh.levels[l].auroc.value) < 1e-15);
        assert_true(fabs(fh.levels[l].brier.value - fe.levels[l].brier.value) < 1e-12);
        assert_true(fabs(fh.levels[l].alert_rate.value - fe.levels[l].alert_rate.value) < 1e-12);
        ff_eval_result_free(&r);
    }
    assert_true(fabs(fh.dp_diff.value - fe.dp_diff.value) < 1e-12);
    assert_true(fabs(fh.eo_diff.value - fe.eo_diff.value) < 1e-12);
    ff_eval_fairness_free(&fe);
    ff_eval_fairness_free(&fh);
    ff_eval_result_free(&ex);
    ff_eval_result_free(&hm);
    ff_eval_hist_free(pooled);
    free(s);
    free(y);
    free(sex);
    for (int k = 0; k < SITES; k++)
        free_site(&site[k]);
}

/* The AUROC bound is tight: perfectly separated scores inside one bin. */
static void test_bound_is_attained(void **state)
{
    (void)state;
    const double s[] = {0.50001, 0.50002, 0.50003, 0.50004};
    const uint8_t y[] = {0, 0, 1, 1};
    ff_eval_hist *h;
    assert_int_equal(ff_eval_hist_new(&h, "t", 1000), FF_OK);
    assert_int_equal(ff_eval_hist_add(h, s, y, 4, NULL), FF_OK);
    ff_eval_result r, ex;
    ff_eval_hist_bound bd;
    assert_int_equal(ff_eval_hist_metrics(h, 0, NULL, &r, &bd), FF_OK);
    assert_int_equal(ff_eval_binary(s, y, 4, NULL, &ex), FF_OK);
    assert_true(ex.auroc.value == 1.0 && r.auroc.value == 0.5 && bd.auroc == 0.5);
    assert_true(fabs(ex.auprc.value - r.auprc.value) <= bd.auprc + 1e-15);
    assert_false(r.cal_slope.defined);
    ff_eval_result_free(&r);
    ff_eval_result_free(&ex);
    ff_eval_hist_free(h);
}

static void test_merge_and_parse_errors(void **state)
{
    (void)state;
    ff_eval_hist *a, *b, *c;
    assert_int_equal(ff_eval_hist_new(&a, "icu", 100), FF_OK);
    assert_int_equal(ff_eval_hist_new(&b, "icu", 200), FF_OK);
    assert_int_equal(ff_eval_hist_new(&c, "admit", 100), FF_OK);
    assert_int_equal(ff_eval_hist_merge(a, b), FF_EINVAL);
    ft_assert_error_has("100 bins vs 200");
    assert_int_equal(ff_eval_hist_merge(a, c), FF_EINVAL);
    ft_assert_error_has("task 'icu' vs 'admit'");
    const double s[] = {0.2, 1.5};
    const uint8_t y[] = {0, 1};
    assert_int_equal(ff_eval_hist_add(a, s, y, 2, NULL), FF_EINVAL);
    assert_true(a->slices[0].pos[20] == 0 && a->slices[0].neg[20] == 0); /* nothing added */
    const char *bad[][2] = {
        {"{\"format\":\"x\"}", "format is 'x'"},
        {"{\"format\":\"fedfuse-eval-hist-1\",\"task\":\"t\",\"nbins\":5,\"slices\":[{}]}",
         "nbins 5 not in"},
        {"{\"format\":\"fedfuse-eval-hist-1\",\"task\":\"t\",\"nbins\":100,\"slices\":[{\"bins\":"
         "[3,2],\"pos\":[1,1],\"neg\":[0,0],\"ssum\":[0.03,0.02]}]}",
         "slices[0].bins[1]"},
        {"{\"format\":\"fedfuse-eval-hist-1\",\"task\":\"t\",\"nbins\":100,\"slices\":[{\"bins\":"
         "[3],\"pos\":[-1],\"neg\":[0],\"ssum\":[0.03]}]}",
         "pos/neg[0] must be counts"},
        {"{\"format\":\"fedfuse-eval-hist-1\",\"task\":\"t\",\"nbins\":100,\"slices\":[{\"bins\":"
         "[3],\"pos\":[1],\"neg\":[0],\"ssum\":[0.03]}]}",
         "slices[0].pos_s"},
        {"{\"format\":\"fedfuse-eval-hist-1\",\"task\":\"t\",\"nbins\":10000000,\"slices\":"
         "[{},{},{},{},{},{}]}",
         "exceed the limit"},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(bad); i++) {
        json_t *j = json_loads(bad[i][0], 0, NULL);
        assert_non_null(j);
        ff_eval_hist *h = (ff_eval_hist *)1;
        assert_int_not_equal(ff_eval_hist_from_json(j, &h), FF_OK);
        assert_null(h);
        ft_assert_error_has(bad[i][1]);
        json_decref(j);
    }
    /* an empty declared subgroup is reported as undefined, not dropped */
    size_t idx;
    assert_int_equal(ff_eval_hist_slice_find(a, "sex", "X", &idx), FF_OK);
    ff_eval_fairness f;
    assert_int_equal(ff_eval_hist_fairness(a, "sex", NULL, &f), FF_OK);
    assert_int_equal(f.nlevels, 1);
    assert_string_equal(f.levels[0].auroc.why, "empty subgroup");
    ff_eval_fairness_free(&f);
    ff_eval_hist_free(a);
    ff_eval_hist_free(b);
    ff_eval_hist_free(c);
}

/* The calibration fit on the bins' mean scores matches the exact fit; each operating-point
 * rule meets its target on the histogram it was chosen on; small subgroups are suppressed and
 * left out of the gaps. */
static void test_fit_rules_suppression(void **state)
{
    (void)state;
    cohort c;
    make_site(&c, 1, 6000);
    ff_eval_hist *h;
    assert_int_equal(ff_eval_hist_new(&h, "icu", FF_EVAL_HIST_BINS), FF_OK);
    assert_int_equal(ff_eval_hist_add(h, c.s, c.y, c.n, NULL), FF_OK);
    ff_eval_result hr, ex;
    assert_int_equal(ff_eval_hist_metrics(h, 0, NULL, &hr, NULL), FF_OK);
    assert_int_equal(ff_eval_binary(c.s, c.y, c.n, NULL, &ex), FF_OK);
    assert_true(hr.cal_slope.defined && ex.cal_slope.defined);
    assert_true(fabs(hr.cal_slope.value - ex.cal_slope.value) < 1e-3);
    assert_true(fabs(hr.cal_intercept.value - ex.cal_intercept.value) < 1e-3);
    ff_eval_result_free(&hr);
    ff_eval_result_free(&ex);

    ff_eval_opts o;
    ff_eval_opts_default(&o);
    const char *why;
    static const ff_op_rule rules[] = {FF_OP_SPECIFICITY, FF_OP_SENSITIVITY, FF_OP_ALERT_RATE};
    static const double targets[] = {0.9, 0.8, 0.15};
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(ff_eval_hist_operating_point(h, rules[k], targets[k], &o.threshold, &why),
                         FF_OK);
        assert_null(why);
        assert_int_equal(ff_eval_hist_metrics(h, 0, &o, &hr, NULL), FF_OK);
        if (rules[k] == FF_OP_SPECIFICITY)
            assert_true(hr.specificity.value >= 0.9 - 1e-12);
        if (rules[k] == FF_OP_SENSITIVITY)
            assert_true(hr.sensitivity.value >= 0.8 - 1e-12);
        if (rules[k] == FF_OP_ALERT_RATE)
            assert_true(hr.alert_rate.value <= 0.15 + 1e-12 && hr.alert_rate.value > 0.13);
        ff_eval_result_free(&hr);
    }
    assert_int_equal(ff_eval_hist_operating_point(h, FF_OP_THRESHOLD, 0.3, &o.threshold, &why),
                     FF_OK);
    assert_true(o.threshold == 0.3);

    /* three levels, one of 5 patients: suppressed at min_cell 10, gaps over the other two */
    size_t sl[3], *idx = malloc(c.n * sizeof *idx);
    assert_int_equal(ff_eval_hist_slice_find(h, "grp", "a", &sl[0]), FF_OK);
    assert_int_equal(ff_eval_hist_slice_find(h, "grp", "b", &sl[1]), FF_OK);
    assert_int_equal(ff_eval_hist_slice_find(h, "grp", "tiny", &sl[2]), FF_OK);
    for (size_t i = 0; i < c.n; i++)
        idx[i] = i < 5 ? sl[2] : sl[i % 2];
    assert_int_equal(ff_eval_hist_add(h, c.s, c.y, c.n, idx), FF_OK);
    o.min_cell = 10;
    o.bootstrap = 50;
    o.seed = 3;
    ff_eval_fairness f;
    assert_int_equal(ff_eval_hist_fairness(h, "grp", &o, &f), FF_OK);
    assert_int_equal(f.nlevels, 3);
    assert_false(f.levels[2].auroc.defined);
    assert_string_equal(f.levels[2].auroc.why, FF_EVAL_SUPPRESSED);
    assert_true(f.levels[0].auroc.defined && f.levels[0].auroc.has_ci);
    assert_true(f.dp_diff.defined && f.dp_diff.has_ci);
    double lo = fmin(f.levels[0].alert_rate.value, f.levels[1].alert_rate.value);
    double hi = fmax(f.levels[0].alert_rate.value, f.levels[1].alert_rate.value);
    assert_true(fabs(f.dp_diff.value - (hi - lo)) < 1e-12);
    ff_eval_fairness_free(&f);
    free(idx);
    ff_eval_hist_free(h);
    free_site(&c);
}

/* Adds `n` patients (`pos` of them positive) with scores 0.1 .. 0.9 to slice `slice` and to
 * slice 0. */
static void add_group(ff_eval_hist *h, size_t slice, size_t n, size_t pos)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0.1 + 0.8 * (double)i / (double)(n ? n : 1);
        uint8_t y = i < pos;
        size_t idx = slice;
        assert_int_equal(ff_eval_hist_add(h, &s, &y, 1, &idx), FF_OK);
        assert_int_equal(ff_eval_hist_add(h, &s, &y, 1, NULL), FF_OK);
    }
}

static const json_t *slice_of(const json_t *j, const char *attr, const char *level)
{
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(j, "slices"), i, v)
    {
        const char *a = json_string_value(json_object_get(v, "attribute"));
        const char *l = json_string_value(json_object_get(v, "level"));
        if (a && l && strcmp(a, attr) == 0 && strcmp(l, level) == 0)
            return v;
    }
    return NULL;
}

/* Disclosure control at the site (docs/evaluation.md, "Small subgroups"): with min_cell 10,
 * age "<40" (3 patients) is withheld, and "40-64" with it (the smallest sent; together 33
 * patients, 11 positives, 22 negatives: no longer small); language "other" has 13 patients
 * but 3 positives, so it goes, and "en", the only other level, with it; "sex" and "ward" (a
 * level with no positive: 0 is not a small count) are sent whole. What leaves the site for a
 * withheld subgroup is its name; the coordinator reads it back as withheld and reports it so;
 * merged with a site that did send it, the pooled subgroup stays withheld. With min_cell 1
 * nothing is withheld. */
static void test_site_suppression(void **state)
{
    (void)state;
    static const struct {
        const char *attr, *level;
        size_t n, pos;
        int withheld;
    } g[] = {
        {"age", "<40", 3, 1, 1},      {"age", "40-64", 30, 10, 1}, {"age", "65+", 60, 20, 0},
        {"sex", "F", 43, 16, 0},      {"sex", "M", 50, 15, 0},     {"language", "en", 80, 28, 1},
        {"language", "other", 13, 3, 1}, {"ward", "a", 78, 31, 0}, {"ward", "b", 15, 0, 0},
    };
    ff_eval_hist *h;
    assert_int_equal(ff_eval_hist_new(&h, "icu", 100), FF_OK);
    /* the patients of each attribute are the same 93 in the real thing; here each attribute's
     * groups add their own rows to slice 0 too, which the rule does not look at */
    for (size_t k = 0; k < FF_ARRAY_LEN(g); k++) {
        size_t idx;
        assert_int_equal(ff_eval_hist_slice_find(h, g[k].attr, g[k].level, &idx), FF_OK);
        add_group(h, idx, g[k].n, g[k].pos);
    }
    json_t *before = NULL, *after = NULL;
    assert_int_equal(ff_eval_hist_to_json(h, &before), FF_OK);
    size_t nw = 99;
    assert_int_equal(ff_eval_hist_suppress(h, 1, 1, &nw), FF_OK); /* the minimum lowered */
    assert_int_equal(nw, 0);
    /* outcome counts not cells (policy outcome_cells: false): only age "<40" (3 patients)
     * goes, with "40-64"; language "other" (13 patients, 3 positives) is sent */
    ff_eval_hist *copy;
    assert_int_equal(ff_eval_hist_from_json(before, &copy), FF_OK);
    assert_int_equal(ff_eval_hist_suppress(copy, 10, 0, &nw), FF_OK);
    assert_int_equal(nw, 2);
    json_t *patients_only = NULL;
    assert_int_equal(ff_eval_hist_to_json(copy, &patients_only), FF_OK);
    assert_non_null(json_object_get(slice_of(patients_only, "age", "<40"), "suppressed"));
    assert_non_null(json_object_get(slice_of(patients_only, "age", "40-64"), "suppressed"));
    assert_true(json_equal(slice_of(patients_only, "language", "other"),
                           slice_of(before, "language", "other")));
    json_decref(patients_only);
    ff_eval_hist_free(copy);
    assert_int_equal(ff_eval_hist_suppress(h, 10, 1, &nw), FF_OK);
    assert_int_equal(nw, 4);
    assert_int_equal(ff_eval_hist_to_json(h, &after), FF_OK);
    assert_true(json_equal(json_array_get(json_object_get(before, "slices"), 0),
                           json_array_get(json_object_get(after, "slices"), 0)));
    for (size_t k = 0; k < FF_ARRAY_LEN(g); k++) {
        const json_t *b = slice_of(before, g[k].attr, g[k].level);
        const json_t *a = slice_of(after, g[k].attr, g[k].level);
        assert_non_null(b);
        assert_non_null(a);
        if (!g[k].withheld) {
            assert_true(json_equal(a, b)); /* sent unchanged */
            continue;
        }
        /* the name, the flag and the minimum: no bin, count or sum */
        assert_int_equal(json_object_size(a), 4);
        assert_int_equal(json_integer_value(json_object_get(a, "suppressed")), 1);
        assert_int_equal(json_integer_value(json_object_get(a, "min_cell_size")), 10);
        assert_null(json_object_get(a, "bins"));
        assert_null(json_object_get(a, "pos_s"));
    }

    /* the coordinator: parsed back, merged with a site that sent "<40", still withheld */
    ff_eval_hist *site, *other, *pooled;
    assert_int_equal(ff_eval_hist_from_json(after, &site), FF_OK);
    assert_int_equal(ff_eval_hist_from_json(before, &other), FF_OK);
    assert_int_equal(ff_eval_hist_new(&pooled, "icu", 100), FF_OK);
    assert_int_equal(ff_eval_hist_merge(pooled, other), FF_OK);
    assert_int_equal(ff_eval_hist_merge(pooled, site), FF_OK);
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    o.bootstrap = 20;
    ff_eval_fairness f;
    assert_int_equal(ff_eval_hist_fairness(pooled, "age", &o, &f), FF_OK);
    assert_int_equal(f.nlevels, 3);
    for (size_t l = 0; l < 2; l++) {
        assert_false(f.levels[l].auroc.defined);
        assert_string_equal(f.levels[l].auroc.why, FF_EVAL_SUPPRESSED_SITE);
        assert_int_equal(f.levels[l].site_suppressed, 1);
        assert_int_equal(f.levels[l].site_min_cell, 10);
        assert_int_equal(f.levels[l].n, 0);
    }
    assert_true(f.levels[2].auroc.defined);
    assert_int_equal(f.levels[2].n, 120); /* both sites' "65+" */
    assert_false(f.dp_diff.defined); /* one subgroup left: no gap */
    json_t *fj = NULL;
    ff_eval_result pr;
    assert_int_equal(ff_eval_hist_metrics(pooled, 0, &o, &pr, NULL), FF_OK);
    assert_int_equal(ff_eval_to_json(&pr, &f, 1, &o, &fj), FF_OK);
    ff_eval_result_free(&pr);
    json_t *lv = json_object_get(json_object_get(json_object_get(json_object_get(fj, "groups"),
                                                                 "age"), "levels"), "<40");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(lv, "suppressed_at_site"),
                                                        "min_cell_size")), 10);
    json_decref(fj);
    ff_eval_fairness_free(&f);

    /* the page says where it was suppressed */
    ff_report *rep;
    assert_int_equal(ff_report_new(&rep, "t"), FF_OK);
    assert_int_equal(ff_eval_hist_fairness(site, "age", &o, &f), FF_OK);
    ff_eval_result r;
    assert_int_equal(ff_eval_hist_metrics(site, 0, &o, &r, NULL), FF_OK);
    assert_int_equal(ff_report_add_task(rep, "icu"), FF_OK);
    assert_int_equal(ff_report_add_column(rep, "site-1", &r, &f, 1), FF_OK);
    char path[] = "/tmp/ff_test_hist_sup_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ff_report_write(rep, path), FF_OK);
    FILE *fp = fopen(path, "r");
    char *page = calloc(1, 1 << 22);
    size_t len = fread(page, 1, (1 << 22) - 1, fp);
    fclose(fp);
    unlink(path);
    assert_true(len > 0);
    assert_non_null(strstr(page, "suppressed at the site (n &lt; 10)"));
    free(page);
    ff_report_free(rep);
    ff_eval_result_free(&r);
    ff_eval_fairness_free(&f);

    ff_eval_hist_free(site);
    ff_eval_hist_free(other);
    ff_eval_hist_free(pooled);
    json_decref(before);
    json_decref(after);
    ff_eval_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pooled_within_bound),
        cmocka_unit_test(test_bound_is_attained),
        cmocka_unit_test(test_merge_and_parse_errors),
        cmocka_unit_test(test_fit_rules_suppression),
        cmocka_unit_test(test_site_suppression),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
