/* The tabular modality of the fusion model (a `tabular:` section in the model config): the
 * config section, the parameter table, whole-model gradients against finite differences in
 * every fusion mode with the tabular encoder (mixed presence, tabular alone, missing cells),
 * an absent tabular row being inert, and ghost-clipping norms against per-example passes. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch_fixture.h"
#include "ff/models.h"

static const char *const base_yaml =
    "name: tab\nwidth: 16\nheads: 2\nmlp: 24\nlayers: 1\ntasks: 2\n"
    "image: {size: 8, patch: 4}\ntext: {length: 6, vocab: 40}\n"
    "ehr: {length: 6, codes: 30, values: 11, times: 8}\n";

static int load_tab(const char *tabular, ff_model_config *c)
{
    char y[2048];
    snprintf(y, sizeof y, "%s%s", base_yaml, tabular);
    return ff_model_config_load_str("tab.yaml", y, strlen(y), c);
}

static const char *const three =
    "tabular:\n  hidden: 12\n  features:\n"
    "    - {name: lactate, type: numeric}\n"
    "    - {name: age, type: numeric}\n"
    "    - {name: triage, type: categorical, categories: [low, mid, high]}\n";

static void test_config(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(load_tab(three, &c), FF_OK);
    assert_int_equal(c.tabular.n, 3);
    assert_int_equal(c.tabular.width, 2 + 2 + 4);
    assert_int_equal(c.tabular.hidden, 12);
    assert_int_equal(c.tabular.norm, FF_NORM_SITE);
    assert_int_equal(c.tabular.f[2].kind, FF_FEATURE_CATEGORICAL);
    assert_int_equal(c.tabular.f[2].col, 4);
    assert_string_equal(c.tabular.f[2].cat[1], "mid");
    /* no section: nothing declared */
    assert_int_equal(load_tab("", &c), FF_OK);
    assert_int_equal(c.tabular.n, 0);
    /* refusals name the key or the feature */
    assert_int_equal(load_tab("tabular: {normalisation: federated, features: [{name: a, type: "
                              "numeric}]}\n", &c), FF_ECONFIG);
    ft_assert_error_has("federated is not implemented yet");
    assert_int_not_equal(load_tab("tabular: {features: [{name: a, type: text}]}\n", &c), FF_OK);
    ft_assert_error_has("tabular.features[0].type");
    assert_int_equal(load_tab("tabular: {features: [{name: a, type: categorical}]}\n", &c),
                     FF_ECONFIG);
    ft_assert_error_has("tabular feature a: a categorical feature needs 2..24 categories");
    assert_int_equal(load_tab("tabular: {features: [{name: a, type: numeric, categories: [x, y]}]}"
                              "\n", &c), FF_ECONFIG);
    ft_assert_error_has("categories are for categorical features only");
    assert_int_equal(load_tab("tabular: {features: [{name: a, type: numeric}, {name: a, type: "
                              "numeric}]}\n", &c), FF_ECONFIG);
    ft_assert_error_has("tabular feature a: name is used twice");
    assert_int_equal(load_tab("tabular: {features: [{name: c, type: categorical, categories: "
                              "[x, x]}]}\n", &c), FF_ECONFIG);
    ft_assert_error_has("listed twice");
}

/* The tabular tensors come after the three encoders; the fusion grows by one modality. */
static void test_table(void **state)
{
    (void)state;
    ff_model_config c, plain;
    assert_int_equal(load_tab(three, &c), FF_OK);
    assert_int_equal(load_tab("", &plain), FF_OK);
    for (int fusion = 0; fusion < 3; fusion++) {
        c.fusion = plain.fusion = fusion;
        ff_model *m, *p;
        assert_int_equal(ff_model_new(&m, &c, 2), FF_OK);
        assert_int_equal(ff_model_new(&p, &plain, 2), FF_OK);
        const ff_param_info *fc = ff_model_find(m, "tab.fc.weight");
        assert_non_null(fc);
        assert_int_equal(fc->shape[0], 12);
        assert_int_equal(fc->shape[1], 8);
        assert_non_null(ff_model_find(m, "tab.ln_f.bias"));
        assert_null(ff_model_find(p, "tab.fc.weight"));
        /* every tensor of the plain model before the fusion is laid out the same */
        const ff_param_info *enc_end = ff_model_find(p, "ehr.ln_f.bias");
        assert_int_equal(ff_model_find(m, "ehr.ln_f.bias")->offset, enc_end->offset);
        if (fusion == FF_FUSION_CROSS)
            assert_int_equal(ff_model_find(m, "fuse.mod")->shape[0], 4);
        else if (fusion == FF_FUSION_EARLY)
            assert_int_equal(ff_model_find(m, "fuse.mlp.fc.weight")->shape[1], 4 * 16 + 4);
        else
            assert_int_equal(ff_model_find(m, "fuse.w")->shape[0], 4),
            assert_non_null(ff_model_find(m, "head.tab.weight"));
        ff_model_free(m);
        ff_model_free(p);
    }
}

/* A model of the three-feature config in one fusion mode (init std 0.1 from seed) and a batch
 * of 8 with tabular rows drawn from seed + 1 (hard: ftm_make_batch's ghost-clipping batch). */
static ff_model *tab_model(int fusion, uint64_t seed, int hard, ff_batch *b)
{
    ff_model_config c;
    assert_int_equal(load_tab(three, &c), FF_OK);
    c.fusion = fusion;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 8), FF_OK);
    assert_int_equal(ff_model_init_std(m, seed, 0.1f), FF_OK);
    ftm_make_batch(&c, b, 8, seed + 6, hard);
    ftm_add_tabular(&c, b, seed + 7);
    return m;
}

static void fd_tab(int fusion)
{
    ff_batch b;
    ff_model *m = tab_model(fusion, 5, 0, &b);
    assert_int_equal(ff_model_check_batch(m, &b), FF_OK);
    assert_true(ftm_fd_check(m, &b, ff_fusion_name(fusion)) > 20);
    /* the tabular encoder was among the tensors checked: it has a gradient */
    const ff_param_info *fc = ff_model_find(m, "tab.fc.weight");
    double gn = 0;
    for (size_t i = 0; i < fc->numel; i++)
        gn += fabs(ff_model_grads(m)[fc->offset + i]);
    assert_true(gn > 1e-6);
    ff_batch_free(&b);
    ff_model_free(m);
}

static void test_fd_cross(void **state)
{
    (void)state;
    fd_tab(FF_FUSION_CROSS);
}
static void test_fd_early(void **state)
{
    (void)state;
    fd_tab(FF_FUSION_EARLY);
}
static void test_fd_late(void **state)
{
    (void)state;
    fd_tab(FF_FUSION_LATE);
}

/* A sample without a tabular row: its tabular values change nothing. A batch without tabular
 * arrays is refused by a tabular model, naming the widths. */
static void test_absent_is_inert(void **state)
{
    (void)state;
    for (int fusion = 0; fusion < 3; fusion++) {
        ff_batch b;
        ff_model *m = tab_model(fusion, 3, 0, &b);
        const ff_model_config *c = ff_model_cfg(m);
        float l1[16], l2[16];
        assert_int_equal(ff_model_forward(m, &b, l1, NULL), FF_OK);
        assert_true(b.tab_present[3] == 0);
        for (int k = 0; k < b.F; k++)
            b.tab[3 * b.F + k] = 7.0f;
        assert_int_equal(ff_model_forward(m, &b, l2, NULL), FF_OK);
        assert_memory_equal(l1, l2, sizeof l1);
        /* tabular alone (sample 6) gives finite logits that depend on its row */
        assert_true(isfinite(l1[12]) && isfinite(l1[13]));
        b.tab[6 * b.F + 0] += 1.0f;
        assert_int_equal(ff_model_forward(m, &b, l2, NULL), FF_OK);
        assert_true(l2[12] != l1[12]);
        /* nothing present at all is refused, naming the tabular modality */
        b.tab_present[6] = 0;
        assert_int_equal(ff_model_forward(m, &b, l2, NULL), FF_EINVAL);
        ft_assert_error_has("sample 6 has no modality present (image, text, tabular");
        ff_batch_free(&b);
        ftm_make_batch(c, &b, 8, 5, 0);
        assert_int_equal(ff_model_forward(m, &b, l2, NULL), FF_EINVAL);
        ft_assert_error_has("0 tabular columns, config 'tab' declares 8");
        ff_batch_free(&b);
        ff_model_free(m);
    }
}

/* DP-SGD's ghost clipping sees the tabular encoder: per-example norms from one batched pass
 * equal those of batch-of-one passes. */
static void test_ghost_norms(void **state)
{
    (void)state;
    for (int fusion = 0; fusion < 3; fusion++) {
        ff_batch b;
        ff_model *m = tab_model(fusion, 4, 1, &b);
        double ghost[8], exact[8];
        assert_int_equal(ff_model_ghost_norms(m, &b, ghost, NULL), FF_OK);
        assert_int_equal(ff_model_perexample_norms(m, &b, exact, NULL), FF_OK);
        for (int i = 0; i < 8; i++)
            if (fabs(ghost[i] - exact[i]) > 1e-3 * exact[i] + 1e-6)
                fail_msg("%s example %d: ghost %g, per-example %g", ff_fusion_name(fusion), i,
                         ghost[i], exact[i]);
        ff_batch_free(&b);
        ff_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),         cmocka_unit_test(test_table),
        cmocka_unit_test(test_fd_cross),       cmocka_unit_test(test_fd_early),
        cmocka_unit_test(test_fd_late),        cmocka_unit_test(test_absent_is_inert),
        cmocka_unit_test(test_ghost_norms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
