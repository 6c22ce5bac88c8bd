/* The whole model: parameter table against the spec, whole-model gradients against finite
 * differences (every tensor, every fusion mode, mixed presence), determinism, checkpoints,
 * batch validation, optimizers and their schedule. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch_fixture.h"
#include "ff/models.h"

static void make_batch(const ff_model_config *c, ff_batch *b, int B, uint64_t seed)
{
    ftm_make_batch(c, b, B, seed, 0);
}

static void test_table_matches_spec(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-base"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 2), FF_OK);
    struct {
        const char *name;
        int64_t r, c;
        int decay;
    } want[] = {
        {"img.patch.weight", 128, 64, 1},
        {"img.patch.bias", 128, 0, 0},
        {"img.pos", 64, 128, 0},
        {"txt.tok", 8192, 128, 0},
        {"txt.pos", 64, 128, 0},
        {"ehr.code", 4096, 128, 0},
        {"ehr.val", 11, 128, 0},
        {"ehr.time", 32, 128, 0},
        {"ehr.pos", 128, 128, 0},
        {"txt.blocks.1.attn.qkv.weight", 384, 128, 1},
        {"ehr.blocks.0.attn.qkv.bias", 384, 0, 0},
        {"img.blocks.1.mlp.fc.weight", 512, 128, 1},
        {"img.blocks.0.mlp.proj.weight", 128, 512, 1},
        {"txt.blocks.0.ln1.weight", 128, 0, 0},
        {"ehr.ln_f.bias", 128, 0, 0},
        {"fuse.x_img.attn.q.weight", 128, 128, 1},
        {"fuse.x_txt.attn.kv.weight", 256, 128, 1},
        {"fuse.x_txt.ln_kv.weight", 128, 0, 0},
        {"fuse.x_img.mlp.proj.bias", 128, 0, 0},
        {"fuse.mod", 3, 128, 0},
        {"fuse.block.attn.proj.weight", 128, 128, 1},
        {"fuse.ln_f.weight", 128, 0, 0},
        {"head.weight", 3, 128, 1},
        {"head.bias", 3, 0, 0},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(want); i++) {
        const ff_param_info *p = ff_model_find(m, want[i].name);
        if (!p) fail_msg("missing %s", want[i].name);
        assert_int_equal(p->shape[0], want[i].r);
        if (want[i].c)
            assert_int_equal(p->shape[1], want[i].c);
        else
            assert_int_equal(p->ndim, 1);
        assert_int_equal(p->decay, want[i].decay);
    }
    /* total, counted independently from the spec's shapes */
    int64_t d = 128, mm = 512;
    int64_t block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (mm * d + mm) + (d * mm + d);
    int64_t xblock =
        6 * d + (d * d + d) + (2 * d * d + 2 * d) + (d * d + d) + (mm * d + mm) + (d * mm + d);
    int64_t enc = 2 * block + 2 * d;
    int64_t total = (128 * 64 + 128 + 64 * 128) + (8192 * 128 + 64 * 128) +
                    (4096 * 128 + 11 * 128 + 32 * 128 + 128 * 128) + 3 * enc + 2 * xblock + 3 * d +
                    block + 2 * d + 3 * d + 3;
    size_t sum = 0;
    for (size_t i = 0; i < ff_model_ntensors(m); i++)
        sum += ff_model_tensor(m, i)->numel;
    assert_int_equal(sum, total);
    /* 6 per block: 2 per encoder x 3 + fusion block; cross blocks 16 each */
    assert_int_equal(ff_model_ntensors(m), 9 + 3 * (2 * 12 + 2) + 2 * 16 + 1 + 12 + 2 + 2);
    ff_model_free(m);
}

/* Whole-model gradient check (ftm_fd_check) of config cfg in one fusion mode. */
static void fd_model_cfg(const ff_model_config *cfg, int fusion)
{
    ff_model_config c = *cfg;
    c.fusion = fusion;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 8), FF_OK);
    assert_int_equal(ff_model_init_std(m, 5, 0.1f), FF_OK);
    ff_batch b;
    make_batch(&c, &b, 8, 11);
    assert_true(ftm_fd_check(m, &b, ff_fusion_name(fusion)) > 20);
    ff_batch_free(&b);
    ff_model_free(m);
}

static void fd_model(int fusion)
{
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    fd_model_cfg(&c, fusion);
}

/* Odd sizes: 3 heads of 8, 2 layers, 2-channel 12×12 images in 4×4 patches, short sequences. */
static void test_fd_odd_config(void **state)
{
    (void)state;
    const char *y = "name: odd\nwidth: 24\nheads: 3\nmlp: 40\nlayers: 2\ntasks: 2\n"
                    "image: {size: 12, channels: 2, patch: 4}\ntext: {length: 7, vocab: 50}\n"
                    "ehr: {length: 9, codes: 30, values: 5, times: 6}\n";
    ff_model_config c;
    assert_int_equal(ff_model_config_load_str("odd.yaml", y, strlen(y), &c), FF_OK);
    fd_model_cfg(&c, FF_FUSION_CROSS);
}

static void test_fd_cross(void **state)
{
    (void)state;
    fd_model(FF_FUSION_CROSS);
}
static void test_fd_early(void **state)
{
    (void)state;
    fd_model(FF_FUSION_EARLY);
}
static void test_fd_late(void **state)
{
    (void)state;
    fd_model(FF_FUSION_LATE);
}

/* Gradients are exactly zero for tensors that cannot influence the loss through a masked
 * path: an absent modality contributes nothing, whatever its ids. */
static void test_absent_modality_is_inert(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 4), FF_OK);
    assert_int_equal(ff_model_init_std(m, 3, 0.1f), FF_OK);
    ff_batch b;
    make_batch(&c, &b, 4, 5);
    /* sample 1 has no image: changing its pixels changes nothing */
    float l1[12], l2[12];
    assert_int_equal(ff_model_forward(m, &b, l1, NULL), FF_OK);
    size_t img = (size_t)c.image.size * c.image.size;
    for (size_t i = 0; i < img; i++)
        b.image[img + i] = 5.0f;
    assert_int_equal(ff_model_forward(m, &b, l2, NULL), FF_OK);
    assert_memory_equal(l1, l2, sizeof l1);
    /* a sample with nothing present is refused */
    b.image_present[4 % 4 + 2] = 0;
    memset(b.ehr_code + 2 * c.ehr.length, 0, c.ehr.length * sizeof(int32_t));
    memset(b.text_ids + 2 * c.text.length, 0, c.text.length * sizeof(int32_t));
    assert_int_equal(ff_model_forward(m, &b, l1, NULL), FF_EINVAL);
    ft_assert_error_has("sample 2 has no modality");
    ff_batch_free(&b);
    ff_model_free(m);
}

static void train(int threads, uint64_t seed, float *out, size_t n)
{
    ff_models_set_threads(threads);
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 16), FF_OK);
    assert_int_equal(ff_model_init(m, seed), FF_OK);
    ff_optim_config oc;
    ff_optim_config_default(&oc);
    oc.lr = 1e-3f;
    oc.warmup = 2;
    ff_optim *o;
    assert_int_equal(ff_optim_new(&o, m, &oc), FF_OK);
    ff_rng r;
    ff_rng_init(&r, seed, 3);
    float first = 0, last = 0;
    ff_batch b;
    make_batch(&c, &b, 16, 21);
    for (int s = 0; s < 8; s++) {
        float l;
        assert_int_equal(ff_model_train_step(m, o, &b, s, 8, &l), FF_OK);
        if (s == 0) first = l;
        last = l;
    }
    assert_true(last < first); /* it learns the one batch it sees */
    assert_int_equal(n, ff_model_nparams(m));
    memcpy(out, ff_model_params(m), n * sizeof(float));
    ff_batch_free(&b);
    ff_optim_free(o);
    ff_model_free(m);
    ff_models_set_threads(1);
}

static void test_determinism(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 1), FF_OK);
    size_t n = ff_model_nparams(m);
    ff_model_free(m);
    float *a = malloc(n * 4), *b = malloc(n * 4);
    for (int th = 1; th <= 2; th++) {
        train(th, 42, a, n);
        train(th, 42, b, n);
        assert_memory_equal(a, b, n * 4);
    }
    train(1, 43, b, n);
    assert_memory_not_equal(a, b, n * 4);
    free(a), free(b);
}

/* One forward + backward of fusion-tiny at `threads` compute threads; the gradient into out. */
static void grads_at(int threads, float *out, size_t n)
{
    assert_int_equal(ff_models_set_threads(threads), FF_OK);
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 16), FF_OK);
    assert_int_equal(ff_model_init(m, 7), FF_OK);
    ff_batch b;
    make_batch(&c, &b, 16, 9);
    float loss;
    assert_int_equal(ff_model_forward(m, &b, NULL, &loss), FF_OK);
    assert_int_equal(ff_model_backward(m, &b), FF_OK);
    assert_int_equal(n, ff_model_nparams(m));
    memcpy(out, ff_model_grads(m), n * sizeof(float));
    ff_batch_free(&b);
    ff_model_free(m);
}

/* The attention scratch has one slice per thread for FF_MODELS_MAX_THREADS threads: at that
 * many threads the gradient is the 1-thread gradient (up to summation order), and a larger
 * pool is refused instead of writing past the scratch (128 threads used to corrupt the heap:
 * gradient errors of 1e-2, then glibc aborting). */
static void test_threads_bound(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 1), FF_OK);
    size_t n = ff_model_nparams(m);
    ff_model_free(m);
    float *g1 = malloc(n * 4), *gmax = malloc(n * 4);
    assert_non_null(g1);
    assert_non_null(gmax);
    grads_at(1, g1, n);
    grads_at(FF_MODELS_MAX_THREADS, gmax, n);
    float scale = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fmaxf(scale, fabsf(g1[i]));
        diff = fmaxf(diff, fabsf(g1[i] - gmax[i]));
    }
    assert_true(scale > 0);
    assert_true(diff <= 1e-5f * scale);
    assert_int_equal(ff_models_set_threads(FF_MODELS_MAX_THREADS + 1), FF_EINVAL);
    ft_assert_error_has("outside [1, 64]");
    assert_int_equal(ff_models_threads(), FF_MODELS_MAX_THREADS); /* left as it was */
    assert_int_equal(ff_models_set_threads(0), FF_EINVAL);
    assert_int_equal(ff_models_set_threads(1), FF_OK);
    free(g1), free(gmax);
}

/* A non-finite loss stops training with the step named, before any update. */
static void test_nan_loss_stops(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 4), FF_OK);
    assert_int_equal(ff_model_init(m, 1), FF_OK);
    ff_optim_config oc;
    ff_optim_config_default(&oc);
    ff_optim *o;
    assert_int_equal(ff_optim_new(&o, m, &oc), FF_OK);
    ff_batch b;
    make_batch(&c, &b, 4, 2);
    float loss;
    assert_int_equal(ff_model_train_step(m, o, &b, 0, 10, &loss), FF_OK);
    ff_model_params(m)[ff_model_find(m, "head.bias")->offset] = INFINITY;
    assert_int_equal(ff_model_train_step(m, o, &b, 1, 10, &loss), FF_ENUMERIC);
    ft_assert_error_has("step 1: loss is");
    assert_int_equal(ff_optim_steps(o), 1);
    ff_batch_free(&b);
    ff_optim_free(o);
    ff_model_free(m);
}

static void test_save_load(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m, *m2;
    assert_int_equal(ff_model_new(&m, &c, 1), FF_OK);
    assert_int_equal(ff_model_new(&m2, &c, 1), FF_OK);
    assert_int_equal(ff_model_init(m, 7), FF_OK);
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "w.safetensors");
    assert_int_equal(ff_model_save(m, path), FF_OK);
    assert_int_equal(ff_model_load(m2, path), FF_OK);
    assert_memory_equal(ff_model_params(m), ff_model_params(m2), ff_model_nparams(m) * 4);
    /* a checkpoint of another config is refused with the tensor and shapes named */
    ff_model_config base;
    assert_int_equal(ff_model_config_default(&base, "fusion-base"), FF_OK);
    ff_model *mb;
    assert_int_equal(ff_model_new(&mb, &base, 1), FF_OK);
    assert_int_not_equal(ff_model_load(mb, path), FF_OK);
    ft_assert_error_has("img.patch.weight");
    ff_model_free(mb);
    ff_model_free(m);
    ff_model_free(m2);
    ft_rmtree(dir);
}

static void test_check_batch(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 4), FF_OK);
    ff_batch b;
    make_batch(&c, &b, 4, 1);
    assert_int_equal(ff_model_check_batch(m, &b), FF_OK);
    b.text_ids[5] = (int32_t)c.text.vocab;
    assert_int_equal(ff_model_check_batch(m, &b), FF_ERANGE);
    ft_assert_error_has("text_ids[5]");
    b.text_ids[5] = 1;
    b.ehr_time[c.ehr.length + 2] = -1;
    assert_int_equal(ff_model_check_batch(m, &b), FF_ERANGE);
    ft_assert_error_has("ehr_time[50] (sample 1");
    b.ehr_time[c.ehr.length + 2] = 0;
    b.image[77] = NAN;
    assert_int_equal(ff_model_check_batch(m, &b), FF_ENUMERIC);
    ft_assert_error_has("image[77]");
    b.image[77] = 0;
    b.Lt = 31;
    assert_int_equal(ff_model_check_batch(m, &b), FF_EINVAL);
    ft_assert_error_has("Lt (text length) is 31");
    ff_batch_free(&b);
    ff_model_free(m);
}

static void test_config(void **state)
{
    (void)state;
    ff_model_config c, d;
    const char *root = FF_SOURCE_DIR "/configs/";
    char p[512];
    snprintf(p, sizeof p, "%smodel-base.yaml", root);
    assert_int_equal(ff_model_config_load(p, &c), FF_OK);
    assert_int_equal(ff_model_config_default(&d, "fusion-base"), FF_OK);
    assert_memory_equal(&c, &d, sizeof c);
    snprintf(p, sizeof p, "%smodel-tiny.yaml", root);
    assert_int_equal(ff_model_config_load(p, &c), FF_OK);
    assert_int_equal(ff_model_config_default(&d, "fusion-tiny"), FF_OK);
    assert_memory_equal(&c, &d, sizeof c);
    const char *bad = "name: x\nwidth: 30\nheads: 4\nmlp: 8\nlayers: 1\ntasks: 3\n"
                      "image: {size: 32, patch: 8}\ntext: {length: 4, vocab: 10}\n"
                      "ehr: {length: 4, codes: 10, values: 11, times: 4}\n";
    assert_int_not_equal(ff_model_config_load_str("bad.yaml", bad, strlen(bad), &c), FF_OK);
    ft_assert_error_has("heads");
    const char *bad2 = "name: x\nwidth: 32\nheads: 4\nmlp: 8\nlayers: 1\ntasks: 3\n"
                       "image: {size: 30, patch: 8}\ntext: {length: 4, vocab: 10}\n"
                       "ehr: {length: 4, codes: 10, values: 11, times: 4}\n";
    assert_int_not_equal(ff_model_config_load_str("bad.yaml", bad2, strlen(bad2), &c), FF_OK);
    ft_assert_error_has("image.patch");
    const char *bad3 = "name: x\nwidth: 32\nheads: 4\nmlp: 8\nlayers: 1\ntasks: 3\nfusion: mid\n"
                       "image: {size: 32, patch: 8}\ntext: {length: 4, vocab: 10}\n"
                       "ehr: {length: 4, codes: 10, values: 11, times: 4}\n";
    assert_int_not_equal(ff_model_config_load_str("bad.yaml", bad3, strlen(bad3), &c), FF_OK);
    ft_assert_error_has("fusion");
}

static void test_adamw_and_sgd(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 1), FF_OK);
    assert_int_equal(ff_model_init(m, 1), FF_OK);
    size_t n = ff_model_nparams(m);
    float *p = ff_model_params(m), *g = ff_model_grads(m);
    double *ref = malloc(n * sizeof *ref), *mo = calloc(n, sizeof *mo), *vo = calloc(n, sizeof *vo);
    for (size_t i = 0; i < n; i++)
        ref[i] = p[i];
    ff_optim_config oc;
    ff_optim_config_default(&oc);
    oc.weight_decay = 0.1f;
    ff_optim *o;
    assert_int_equal(ff_optim_new(&o, m, &oc), FF_OK);
    ff_rng r;
    ff_rng_init(&r, 4, 4);
    for (int t = 1; t <= 3; t++) {
        /* gradients inside tensors only: the alignment gaps between tensors stay zero */
        for (size_t ti = 0; ti < ff_model_ntensors(m); ti++) {
            const ff_param_info *pi = ff_model_tensor(m, ti);
            for (size_t k = 0; k < pi->numel; k++)
                g[pi->offset + k] = (float)ff_rng_normal(&r);
        }
        float lr = 0.01f;
        assert_int_equal(ff_optim_step(o, m, lr), FF_OK);
        /* the textbook AdamW, in double */
        for (size_t ti = 0; ti < ff_model_ntensors(m); ti++) {
            const ff_param_info *pi = ff_model_tensor(m, ti);
            for (size_t k = 0; k < pi->numel; k++) {
                size_t i = pi->offset + k;
                if (pi->decay) ref[i] -= (double)lr * 0.1 * ref[i];
                mo[i] = 0.9 * mo[i] + 0.1 * g[i];
                vo[i] = 0.999 * vo[i] + 0.001 * (double)g[i] * g[i];
                double mh = mo[i] / (1 - pow(0.9, t)), vh = vo[i] / (1 - pow(0.999, t));
                ref[i] -= lr * mh / (sqrt(vh) + 1e-8);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        assert_true(fabs(p[i] - ref[i]) < 1e-5);
    ff_optim_free(o);
    /* SGD + momentum against its definition */
    oc.kind = FF_OPTIM_SGD;
    oc.weight_decay = 0;
    assert_int_equal(ff_optim_new(&o, m, &oc), FF_OK);
    for (size_t i = 0; i < n; i++)
        ref[i] = p[i], g[i] = 1.0f;
    /* (gaps get the same update here: harmless, they are never read as parameters) */
    assert_int_equal(ff_optim_step(o, m, 0.1f), FF_OK);
    assert_int_equal(ff_optim_step(o, m, 0.1f), FF_OK);
    for (size_t i = 0; i < n; i++)
        assert_true(fabs(p[i] - (ref[i] - 0.1 - 0.1 * 1.9)) < 1e-5);
    ff_optim_free(o);
    free(ref), free(mo), free(vo);
    ff_model_free(m);
}

static void test_schedule_clip_dropout(void **state)
{
    (void)state;
    ff_optim_config oc;
    ff_optim_config_default(&oc);
    oc.lr = 1.0f, oc.warmup = 10, oc.min_lr_ratio = 0.0f;
    assert_true(fabs(ff_lr_schedule(&oc, 0, 110) - 0.1f) < 1e-6);
    assert_true(fabs(ff_lr_schedule(&oc, 9, 110) - 1.0f) < 1e-6);
    assert_true(fabs(ff_lr_schedule(&oc, 60, 110) - 0.5f) < 1e-6);
    assert_true(fabs(ff_lr_schedule(&oc, 110, 110)) < 1e-6);
    float g[5] = {3, 4, 0, 0, 0};
    assert_true(fabs(ff_grad_clip_norm(g, 5, 1.0f) - 5.0f) < 1e-6);
    assert_true(fabs(g[0] - 0.6f) < 1e-5 && fabs(g[1] - 0.8f) < 1e-5);
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_batch b;
    make_batch(&c, &b, 70, 3);
    ff_rng r;
    ff_rng_init(&r, 1, 1);
    assert_int_equal(ff_modality_dropout(&b, 1.0f, &r), FF_OK);
    for (int i = 0; i < b.B; i++) {
        int np = 0;
        for (int j = 0; j < 3; j++)
            np += ff_batch_present(&b, i, j);
        assert_int_equal(np, 1); /* p = 1 drops all but exactly one, never all */
    }
    ff_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_table_matches_spec),
        cmocka_unit_test(test_fd_cross),
        cmocka_unit_test(test_fd_early),
        cmocka_unit_test(test_fd_late),
        cmocka_unit_test(test_absent_modality_is_inert),
        cmocka_unit_test(test_fd_odd_config),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_threads_bound),
        cmocka_unit_test(test_nan_loss_stops),
        cmocka_unit_test(test_check_batch),
        cmocka_unit_test(test_adamw_and_sgd),
        cmocka_unit_test(test_schedule_clip_dropout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
