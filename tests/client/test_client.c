/* Local training, prediction and evaluation on a small synthetic site with the tiny model. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/client.h"
#include "site_fixture.h"

typedef ftc_fixture fixture;

static int setup(void **state)
{
    *state = ftc_fixture_new(400, 11);
    return *state ? 0 : -1;
}

static void test_training_lowers_loss_and_is_deterministic(void **state)
{
    fixture *f = *state;
    ff_model *a, *b;
    assert_int_equal(ff_model_new(&a, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_new(&b, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_init(a, 5), FF_OK);
    assert_int_equal(ff_model_init(b, 5), FF_OK);
    ff_local_opts o = ftc_local_opts(120, 3);
    ff_local_stats sa, sb;
    assert_int_equal(ff_local_train(a, &f->site, 1, &o, &sa), FF_OK);
    assert_int_equal(ff_local_train(b, &f->site, 1, &o, &sb), FF_OK);
    assert_int_equal(sa.steps, 120);
    assert_true(sa.loss_mean < sa.loss_first);
    /* same seed, data and thread count: bit-identical weights */
    assert_memory_equal(ff_model_params(a), ff_model_params(b), ff_model_nparams(a) * sizeof(float));
    ff_model_free(a);
    ff_model_free(b);
}

static void test_frozen_prefixes_do_not_move(void **state)
{
    fixture *f = *state;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_init(m, 9), FF_OK);
    size_t n = ff_model_nparams(m);
    float *before = malloc(n * sizeof *before);
    memcpy(before, ff_model_params(m), n * sizeof *before);
    ff_cfg_strlist tr = {.items = {"head"}, .count = 1};
    ff_local_opts o = ftc_local_opts(10, 1);
    o.trainable = &tr;
    ff_local_stats st;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_OK);
    int head_moved = 0;
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *t = ff_model_tensor(m, i);
        int same = memcmp(before + t->offset, ff_model_params(m) + t->offset, t->numel * sizeof(float)) == 0;
        if (strncmp(t->name, "head", 4) == 0)
            head_moved |= !same;
        else if (!same)
            fail_msg("frozen tensor %s moved", t->name);
    }
    assert_true(head_moved);
    free(before);
    ff_model_free(m);
}

/* Patients, positives and negatives of one sent slice. */
static void slice_counts(const json_t *sl, json_int_t *n, json_int_t *p, json_int_t *q)
{
    *p = *q = 0;
    for (size_t b = 0; b < json_array_size(json_object_get(sl, "pos")); b++) {
        *p += json_integer_value(json_array_get(json_object_get(sl, "pos"), b));
        *q += json_integer_value(json_array_get(json_object_get(sl, "neg"), b));
    }
    *n = *p + *q;
}

/* What the site sends for the evaluate phase (ff_client_eval_hist, the hists of the
 * EvalSubmission): with the minimum cell size set just above the smallest count of some
 * subgroup, that subgroup's histogram is not in it (its name is, flagged), nor is a second one
 * of its attribute; every other slice is sent as with minimum 1, where every subgroup is sent. */
static void site_withholds_small_subgroups(ff_model *m, fixture *f, const json_t *all)
{
    const json_t *t0 = json_array_get(all, 0), *sl = json_object_get(t0, "slices");
    json_int_t low = 0;
    size_t at = 0;
    for (size_t i = 1; i < json_array_size(sl); i++) {
        assert_non_null(json_object_get(json_array_get(sl, i), "bins")); /* minimum 1: sent */
        json_int_t n, p, q;
        slice_counts(json_array_get(sl, i), &n, &p, &q);
        json_int_t c = n; /* its smallest non-zero count */
        c = p > 0 && p < c ? p : c;
        c = q > 0 && q < c ? q : c;
        if (low == 0 || c < low) {
            low = c;
            at = i;
        }
    }
    assert_true(at > 0);
    const char *attr = json_string_value(json_object_get(json_array_get(sl, at), "attribute"));
    json_t *h = NULL;
    size_t nw = 0;
    assert_int_equal(ff_client_eval_hist(m, f->site, FF_SPLIT_TEST, 10000, low + 1, 1, &nw, &h),
                     FF_OK);
    const json_t *s0 = json_object_get(json_array_get(h, 0), "slices");
    assert_int_equal(json_array_size(s0), json_array_size(sl));
    assert_true(json_equal(json_array_get(s0, 0), json_array_get(sl, 0))); /* everyone: as is */
    const json_t *w = json_array_get(s0, at);
    assert_null(json_object_get(w, "bins"));
    assert_null(json_object_get(w, "pos"));
    assert_null(json_object_get(w, "pos_s"));
    assert_int_equal(json_integer_value(json_object_get(w, "suppressed")), 1);
    assert_int_equal(json_integer_value(json_object_get(w, "min_cell_size")), low + 1);
    size_t same_attr = 0, withheld = 0;
    for (size_t i = 1; i < json_array_size(s0); i++) {
        const json_t *a = json_array_get(s0, i);
        if (json_object_get(a, "suppressed")) {
            withheld++;
            same_attr += strcmp(json_string_value(json_object_get(a, "attribute")), attr) == 0;
        } else {
            assert_true(json_equal(a, json_array_get(sl, i)));
        }
    }
    assert_true(same_attr >= 2); /* never one alone: slice 0 minus the others would give it */
    assert_true(nw >= withheld);
    json_decref(h);
}

static void test_predict_and_evaluate(void **state)
{
    fixture *f = *state;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &f->mc, 32), FF_OK);
    assert_int_equal(ff_model_init(m, 2), FF_OK);
    ff_local_opts o = ftc_local_opts(150, 4);
    ff_local_stats st;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_OK);
    size_t n = ff_site_count(f->site, FF_SPLIT_TEST);
    assert_true(n > 20);
    float *p = malloc(n * 3 * sizeof *p), *l = malloc(n * 3 * sizeof *l), *k = malloc(n * 3 * sizeof *k);
    float *p2 = malloc(n * 3 * sizeof *p2);
    assert_int_equal(ff_local_predict(m, f->site, FF_SPLIT_TEST, FF_MOD_ALL, 0.5f, p, l, k), FF_OK);
    for (size_t i = 0; i < n * 3; i++)
        assert_true(p[i] > 0 && p[i] < 1 && (l[i] == 0 || l[i] == 1));
    /* text only: patients without a note fall back to 0.5, the others differ from fusion */
    assert_int_equal(ff_local_predict(m, f->site, FF_SPLIT_TEST, FF_MOD_TXT, 0.5f, p2, l, k), FF_OK);
    int differs = 0;
    for (size_t i = 0; i < n * 3; i++)
        differs += p2[i] != p[i];
    assert_true(differs > (int)n);

    const char *names[1] = {"site-1"};
    json_t *j = NULL;
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    const char *html = ft_path(f->dir, "report.html");
    assert_int_equal(ff_client_evaluate(m, &f->site, names, 1, FF_SPLIT_TEST, FF_MOD_ALL, &eo, NULL, html, &j), FF_OK);
    json_t *adm = json_object_get(json_object_get(j, "tasks"), "admission");
    double pooled = json_number_value(json_object_get(json_object_get(adm, "pooled"), "auroc"));
    double site = json_number_value(json_object_get(json_object_get(json_object_get(adm, "sites"), "site-1"), "auroc"));
    assert_true(pooled > 0.55); /* learned something on 150 steps of a 400-patient site */
    assert_true(pooled == site); /* one site: pooled = the site */
    assert_true(ff_path_exists(html));

    /* federated histograms: the AUROC they give is within their bound of the exact one */
    json_t *h = NULL;
    assert_int_equal(ff_client_eval_hist(m, f->site, FF_SPLIT_TEST, 10000, 1, 1, NULL, &h), FF_OK);
    assert_int_equal(json_array_size(h), 3);
    ff_eval_hist *eh;
    assert_int_equal(ff_eval_hist_from_json(json_array_get(h, 0), &eh), FF_OK);
    ff_eval_result r;
    ff_eval_hist_bound bound;
    assert_int_equal(ff_eval_hist_metrics(eh, 0, &eo, &r, &bound), FF_OK);
    assert_true(fabs(r.auroc.value - pooled) <= bound.auroc + 1e-12);
    ff_eval_result_free(&r);
    ff_eval_hist_free(eh);
    site_withholds_small_subgroups(m, f, h);
    json_decref(h);
    json_decref(j);
    free(p), free(p2), free(l), free(k);
    ff_model_free(m);
}

/* A model config's data shape, read with the models/ schema: the shape of model-tiny; every
 * key of the model schema accepted (model-tiny-clip's `projection` was refused by the data
 * library's old copy of the schema); an unknown key named. */
static void test_shape_load(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *p = ft_path(dir, "tiny.yaml");
    const char *y = "name: fusion-tiny\nwidth: 64\nheads: 2\nmlp: 256\nlayers: 1\nfusion: cross\n"
                    "tasks: 3\nimage: {size: 32, channels: 1, patch: 8}\n"
                    "text: {length: 32, vocab: 2048}\n"
                    "ehr: {length: 48, codes: 1024, values: 11, times: 16}\n";
    ft_write_file(p, y, strlen(y));
    ff_data_shape s, t;
    assert_int_equal(ff_client_shape_load(p, &s), FF_OK);
    ff_data_shape_tiny(&t);
    assert_memory_equal(&s, &t, sizeof s);
    assert_int_equal(ff_client_shape_load(FF_SOURCE_DIR "/configs/model-tiny-clip.yaml", &s),
                     FF_OK);
    assert_memory_equal(&s, &t, sizeof s);
    char bad[512];
    snprintf(bad, sizeof bad, "%sfrobs: 1\n", y);
    ft_write_file(p, bad, strlen(bad));
    assert_int_not_equal(ff_client_shape_load(p, &s), FF_OK);
    ft_assert_error_has("frobs");
    ft_rmtree(dir);
}

/* A tabular model on a site whose patients have only tabular.csv rows: predicting with the
 * three other inputs leaves every patient without a modality (the fallback score); with all
 * modalities, and with `tab` alone, the model's own scores. */
static void test_tabular_modality_mask(void **state)
{
    (void)state;
    ff_data_shape sh;
    assert_int_equal(ff_client_shape_load(FF_SOURCE_DIR "/configs/model-tabular.yaml", &sh), FF_OK);
    ff_model_config mc;
    assert_int_equal(ff_model_config_load(FF_SOURCE_DIR "/configs/model-tabular.yaml", &mc), FF_OK);
    ff_site *s = NULL;
    assert_int_equal(ff_site_load(&s, FF_SOURCE_DIR "/tests/data/fixtures/tab-site", &sh, NULL,
                                  NULL), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &mc, 4), FF_OK);
    assert_int_equal(ff_model_init(m, 3), FF_OK);
    float p[4], l[4], k[4];
    const int masks[3] = {FF_MOD_IMG | FF_MOD_TXT | FF_MOD_EHR, FF_MOD_ALL, FF_MOD_TAB};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ff_local_predict(m, s, FF_SPLIT_TRAIN, masks[i], 0.25f, p, l, k), FF_OK);
        for (int r = 0; r < 2; r++) /* two train patients, one task */
            if ((p[r] == 0.25f) != (i == 0))
                fail_msg("mask %d patient %d: %g", masks[i], r, (double)p[r]);
    }
    ff_model_free(m);
    ff_site_free(s);
}

static void test_modalities_parse(void **state)
{
    (void)state;
    int m;
    assert_int_equal(ff_client_parse_modalities("img,ehr", &m), FF_OK);
    assert_int_equal(m, FF_MOD_IMG | FF_MOD_EHR);
    assert_int_equal(ff_client_parse_modalities("all", &m), FF_OK);
    assert_int_equal(m, FF_MOD_ALL);
    /* the three inputs named are not "all" once a model has the tabular modality */
    assert_int_equal(ff_client_parse_modalities("img,txt,ehr", &m), FF_OK);
    assert_true(m != FF_MOD_ALL && !(m & FF_MOD_TAB));
    assert_int_equal(ff_client_parse_modalities("tab", &m), FF_OK);
    assert_int_equal(m, FF_MOD_TAB);
    assert_int_equal(ff_client_parse_modalities("img,xray", &m), FF_EINVAL);
    ft_assert_error_has("unknown 'xray'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_lowers_loss_and_is_deterministic),
        cmocka_unit_test(test_frozen_prefixes_do_not_move),
        cmocka_unit_test(test_predict_and_evaluate),
        cmocka_unit_test(test_modalities_parse),
        cmocka_unit_test(test_tabular_modality_mask),
        cmocka_unit_test(test_shape_load),
    };
    return cmocka_run_group_tests(tests, setup, ftc_fixture_teardown);
}
