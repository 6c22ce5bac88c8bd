/* Partial checkpoints by parameter name: an encoders-only file into a larger model (loaded
 * tensors equal the file, every other tensor equals its own fresh init), a shape mismatch
 * and an unknown tensor named in the report, and the files that must be refused with the
 * model untouched (corrupt, non-finite, nothing matching). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/models.h"

static ff_model *tiny(int proj, uint64_t seed)
{
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    c.projection = proj;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 2), FF_OK);
    assert_int_equal(ff_model_init(m, seed), FF_OK);
    return m;
}

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Saves the tensors of m whose name starts with one of the prefixes. */
static void save_subset(ff_model *m, const char *path, const char *const *pre, int npre)
{
    ff_st_writer *w;
    assert_int_equal(ff_st_writer_new(&w), FF_OK);
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *t = ff_model_tensor(m, i);
        int keep = 0;
        for (int k = 0; k < npre; k++)
            keep |= has_prefix(t->name, pre[k]);
        if (keep)
            assert_int_equal(ff_st_writer_add(w, t->name, FF_DT_F32, t->ndim, t->shape,
                                              ff_model_params(m) + t->offset),
                             FF_OK);
    }
    assert_int_equal(ff_st_writer_save(w, path), FF_OK);
    ff_st_writer_free(w);
}

static char *read_text(FILE *f)
{
    static char buf[16384];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

static void test_encoders_into_bigger_model(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir(), *path = ft_path(dir, "enc.safetensors");
    ff_model *small = tiny(0, 1), *big = tiny(16, 2), *fresh = tiny(16, 2);
    static const char *const pre[2] = {"img.", "txt."};
    save_subset(small, path, pre, 2);
    ff_model_load_report r;
    assert_int_equal(ff_model_load_partial(big, path, &r), FF_OK);
    size_t want_loaded = 0;
    for (size_t i = 0; i < ff_model_ntensors(big); i++) {
        const ff_param_info *t = ff_model_tensor(big, i);
        int enc = has_prefix(t->name, "img.") || has_prefix(t->name, "txt.");
        want_loaded += enc;
        /* oracle: the small model's tensor for the encoders, the big model's own init else */
        const float *src = enc ? ff_model_params(small) + ff_model_find(small, t->name)->offset
                               : ff_model_params(fresh) + t->offset;
        assert_memory_equal(ff_model_params(big) + t->offset, src, t->numel * sizeof(float));
        assert_int_equal(r.items[i].what, enc ? FF_LOAD_LOADED : FF_LOAD_KEPT);
        assert_string_equal(r.items[i].name, t->name);
    }
    assert_true(want_loaded > 10);
    assert_int_equal(r.loaded, want_loaded);
    assert_int_equal(r.kept, ff_model_ntensors(big) - want_loaded);
    assert_int_equal(r.ignored, 0);
    size_t numel = 0; /* the flat buffer may hold alignment padding: count the tensors */
    for (size_t i = 0; i < ff_model_ntensors(big); i++)
        numel += ff_model_tensor(big, i)->numel;
    assert_int_equal(r.loaded_values + r.kept_values, numel);
    FILE *f = tmpfile();
    ff_model_load_report_print(&r, path, f);
    char *txt = read_text(f);
    assert_non_null(strstr(txt, "loaded: img.* ("));
    assert_non_null(strstr(txt, "kept as initialised: ehr.* ("));
    assert_non_null(strstr(txt, "proj.* (3), logit_scale (1)"));
    fclose(f);
    ff_model_load_report_free(&r);
    ff_model_free(small), ff_model_free(big), ff_model_free(fresh);
    ft_rmtree(dir);
}

/* A head for 2 tasks into a 3-task model, and a tensor the model does not have. */
static void test_mismatch_named(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir(), *path = ft_path(dir, "mix.safetensors");
    ff_model *m = tiny(0, 3);
    float head[2 * 32] = {0}, extra[4] = {1, 2, 3, 4};
    const ff_param_info *pos = ff_model_find(m, "txt.pos");
    ff_st_writer *w;
    assert_int_equal(ff_st_writer_new(&w), FF_OK);
    int64_t hs[2] = {2, 32}, es[1] = {4};
    float *posv = calloc(pos->numel, sizeof *posv);
    for (size_t i = 0; i < pos->numel; i++)
        posv[i] = 0.5f;
    assert_int_equal(ff_st_writer_add(w, "head.weight", FF_DT_F32, 2, hs, head), FF_OK);
    assert_int_equal(ff_st_writer_add(w, "old.adapter", FF_DT_F32, 1, es, extra), FF_OK);
    assert_int_equal(ff_st_writer_add(w, "txt.pos", FF_DT_F32, pos->ndim, pos->shape, posv), FF_OK);
    assert_int_equal(ff_st_writer_save(w, path), FF_OK);
    ff_st_writer_free(w);
    ff_model_load_report r;
    assert_int_equal(ff_model_load_partial(m, path, &r), FF_OK);
    assert_int_equal(r.loaded, 1);
    assert_int_equal(r.ignored, 2);
    assert_true(ff_model_params(m)[pos->offset + 7] == 0.5f);
    FILE *f = tmpfile();
    ff_model_load_report_print(&r, path, f);
    char *txt = read_text(f);
    assert_non_null(strstr(txt, "ignored: head.weight (shape [2,32] in the file, [3,32] in the model)"));
    assert_non_null(strstr(txt, "kept: head.weight (shape [2,32] in the file, [3,32] in the model)"));
    assert_non_null(strstr(txt, "ignored: old.adapter (not in the model)"));
    assert_non_null(strstr(txt, "loaded 1 tensors"));
    fclose(f);
    ff_model_load_report_free(&r);
    free(posv);
    ff_model_free(m);
    ft_rmtree(dir);
}

/* Corrupt, non-finite and nothing-matching files fail and leave every parameter as it was. */
static void test_refused_untouched(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    ff_model *m = tiny(0, 4), *ref = tiny(0, 4);
    size_t bytes = ff_model_nparams(m) * sizeof(float);
    ff_model_load_report r;
    const char *bad = ft_path(dir, "corrupt.safetensors");
    static const char junk[] = "\x40\x00\x00\x00\x00\x00\x00\x00{\"img.pos\": {\"dtype\": \"F32\"";
    ft_write_file(bad, junk, sizeof junk - 1);
    assert_int_not_equal(ff_model_load_partial(m, bad, &r), FF_OK);
    ft_assert_error_has("corrupt.safetensors");
    assert_int_equal(r.nitems, 0);
    assert_memory_equal(ff_model_params(m), ff_model_params(ref), bytes);

    const char *nan = ft_path(dir, "nan.safetensors");
    ff_model *src = tiny(0, 9);
    const ff_param_info *t = ff_model_find(src, "ehr.pos");
    ff_model_params(src)[t->offset + 3] = NAN;
    static const char *const pre[2] = {"img.", "ehr."};
    save_subset(src, nan, pre, 2); /* img. tensors are fine and come first */
    assert_int_equal(ff_model_load_partial(m, nan, &r), FF_ENUMERIC);
    ft_assert_error_has("tensor 'ehr.pos' index 3 is not finite");
    assert_memory_equal(ff_model_params(m), ff_model_params(ref), bytes);

    const char *none = ft_path(dir, "none.safetensors");
    ff_st_writer *w;
    float v[2] = {1, 2};
    int64_t s[1] = {2};
    assert_int_equal(ff_st_writer_new(&w), FF_OK);
    assert_int_equal(ff_st_writer_add(w, "encoder.layer.0.weight", FF_DT_F32, 1, s, v), FF_OK);
    assert_int_equal(ff_st_writer_save(w, none), FF_OK);
    ff_st_writer_free(w);
    assert_int_equal(ff_model_load_partial(m, none, &r), FF_ENOTFOUND);
    ft_assert_error_has("no tensor matches a parameter of model 'fusion-tiny'");
    assert_memory_equal(ff_model_params(m), ff_model_params(ref), bytes);
    ff_model_free(m), ff_model_free(ref), ff_model_free(src);
    ft_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoders_into_bigger_model),
        cmocka_unit_test(test_mismatch_named),
        cmocka_unit_test(test_refused_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
