/* Contrastive pre-training: the InfoNCE loss, projection heads and temperature against an
 * independent double-precision reference and its central finite differences; the whole model
 * (encoders included) by directional differences; the optional heads leave the spec's table
 * untouched. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/models.h"

/* Reference: written from the definition, in double. */
static double ref_loss(const double *pa, const double *pc, int n, int d, const double *Wa,
                       const double *Wc, int p, double ls)
{
    double s = exp(ls < log(100.0) ? ls : log(100.0));
    double *u = calloc((size_t)2 * n * p, sizeof *u), *lg = calloc((size_t)n * n, sizeof *lg);
    const double *P[2] = {pa, pc}, *W[2] = {Wa, Wc};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n; i++) {
            double nn = 0;
            for (int q = 0; q < p; q++) {
                double z = 0;
                for (int j = 0; j < d; j++)
                    z += W[k][q * d + j] * P[k][i * d + j];
                u[(k * n + i) * p + q] = z;
                nn += z * z;
            }
            for (int q = 0; q < p; q++)
                u[(k * n + i) * p + q] /= sqrt(nn);
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double c = 0;
            for (int q = 0; q < p; q++)
                c += u[i * p + q] * u[(n + j) * p + q];
            lg[i * n + j] = s * c;
        }
    double L = 0;
    for (int i = 0; i < n; i++) {
        double sr = 0, sc = 0;
        for (int j = 0; j < n; j++) {
            sr += exp(lg[i * n + j]);
            sc += exp(lg[j * n + i]);
        }
        L += log(sr) - lg[i * n + i] + log(sc) - lg[i * n + i];
    }
    free(u), free(lg);
    return L / (2.0 * n);
}

static void tiny_cfg(ff_model_config *c, int proj)
{
    assert_int_equal(ff_model_config_default(c, "fusion-tiny"), FF_OK);
    c->projection = proj;
}

static void core_check(double ls0)
{
    ff_model_config cfg;
    tiny_cfg(&cfg, 8);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &cfg, 8), FF_OK);
    ff_contrastive *c;
    assert_int_equal(ff_contrastive_new(&c, m), FF_OK);
    const int n = 6, d = 32, p = 8;
    size_t np = (size_t)n * d, nw = (size_t)p * d;
    /* all parameters in one double vector: pa, pc, Wa, Wc, ls */
    size_t N = 2 * np + 2 * nw + 1;
    double *x = malloc(N * sizeof *x);
    ff_rng r;
    ff_rng_init(&r, 3, 1);
    for (size_t i = 0; i < N; i++)
        x[i] = ff_rng_normal(&r) * (i < 2 * np ? 1.0 : 0.3);
    x[N - 1] = ls0;
    float *xf = malloc(N * sizeof *xf), *g = calloc(N, sizeof *g);
    for (size_t i = 0; i < N; i++)
        xf[i] = (float)x[i];
    float loss;
    assert_int_equal(ff_contrastive_core(c, xf, xf + np, n, xf + 2 * np, xf + 2 * np + nw, xf[N - 1],
                                         1.0f, &loss, g, g + np, g + 2 * np, g + 2 * np + nw,
                                         g + N - 1),
                     FF_OK);
    double L = ref_loss(x, x + np, n, d, x + 2 * np, x + 2 * np + nw, p, x[N - 1]);
    assert_true(fabs(loss - L) < 1e-4 * (1 + fabs(L)));
    double gmax = 0;
    for (size_t i = 0; i < N; i++)
        gmax = fmax(gmax, fabs(g[i]));
    const double h = 1e-5;
    for (size_t i = 0; i < N; i++) {
        double s = x[i];
        x[i] = s + h;
        double lp = ref_loss(x, x + np, n, d, x + 2 * np, x + 2 * np + nw, p, x[N - 1]);
        x[i] = s - h;
        double lm = ref_loss(x, x + np, n, d, x + 2 * np, x + 2 * np + nw, p, x[N - 1]);
        x[i] = s;
        double num = (lp - lm) / (2 * h);
        if (fabs(num - g[i]) > 2e-3 * gmax + 1e-5) {
            print_error("ls0 %g index %zu: analytic %.8g numeric %.8g\n", ls0, i, g[i], num);
            fail();
        }
    }
    if (ls0 > log(100.0)) assert_true(g[N - 1] == 0.0f); /* clamped: no temperature gradient */
    else assert_true(fabs(g[N - 1]) > 1e-6);
    free(x), free(xf), free(g);
    ff_contrastive_free(c);
    ff_model_free(m);
}

static void test_core_fd(void **state)
{
    (void)state;
    core_check(log(1 / 0.07));
    core_check(0.3);
}

static void test_core_clamped(void **state)
{
    (void)state;
    core_check(5.0);
}

/* A batch where every pattern of presence occurs (pairs need both sides). */
static void make_batch(const ff_model_config *c, ff_batch *b, int B, uint64_t seed)
{
    assert_int_equal(ff_batch_alloc(b, B, (int)c->tasks, (int)c->image.channels, (int)c->image.size,
                                    (int)c->image.size, (int)c->text.length, (int)c->ehr.length),
                     FF_OK);
    ff_rng r;
    ff_rng_init(&r, seed, 7);
    size_t img = (size_t)c->image.channels * c->image.size * c->image.size;
    for (int i = 0; i < B; i++) {
        int pat = i % 4; /* 0 all, 1 no image, 2 no text, 3 no EHR */
        ff_rng_normal_fill(&r, b->image + i * img, img, 0, 1);
        b->image_present[i] = (float)(pat != 1);
        int lt = pat != 2 ? 1 + (int)ff_rng_below(&r, (uint32_t)c->text.length) : 0;
        for (int t = 0; t < lt; t++)
            b->text_ids[(size_t)i * c->text.length + t] =
                1 + (int32_t)ff_rng_below(&r, (uint32_t)c->text.vocab - 1);
        int le = pat != 3 ? 1 + (int)ff_rng_below(&r, (uint32_t)c->ehr.length) : 0;
        for (int t = 0; t < le; t++) {
            size_t k = (size_t)i * c->ehr.length + t;
            b->ehr_code[k] = 1 + (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.codes - 1);
            b->ehr_val[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.values);
            b->ehr_time[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.times);
        }
        /* labels are irrelevant: masked out entirely */
    }
}

static float closs(ff_model *m, ff_contrastive *c, const ff_batch *b, int a, int e)
{
    float l;
    int n;
    assert_int_equal(ff_model_forward(m, b, NULL, NULL), FF_OK);
    assert_int_equal(ff_contrastive_forward(c, b, a, e, &l, &n), FF_OK);
    return l;
}

/* Whole model in float: directional central differences per tensor (as test_model.c). */
static void model_fd(int fusion, int a, int e)
{
    ff_model_config cfg;
    tiny_cfg(&cfg, 16);
    cfg.fusion = fusion;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &cfg, 12), FF_OK);
    assert_int_equal(ff_model_init_std(m, 5, 0.1f), FF_OK);
    ff_contrastive *c;
    assert_int_equal(ff_contrastive_new(&c, m), FF_OK);
    ff_batch b;
    make_batch(&cfg, &b, 12, 11);
    ff_model_zero_grad(m);
    closs(m, c, &b, a, e);
    int n;
    float l0;
    assert_int_equal(ff_contrastive_forward(c, &b, a, e, &l0, &n), FF_OK);
    assert_int_equal(n, 6); /* 12 rows, each modality absent in a quarter */
    assert_int_equal(ff_contrastive_backward(c, &b, 1.0f), FF_OK);
    size_t np = ff_model_nparams(m);
    float *g = malloc(np * sizeof *g), *p = ff_model_params(m);
    memcpy(g, ff_model_grads(m), np * sizeof *g);
    static const char *const pre[3] = {"img.", "txt.", "ehr."};
    int checked = 0;
    for (size_t t = 0; t < ff_model_ntensors(m); t++) {
        const ff_param_info *pi = ff_model_tensor(m, t);
        double gn = 0;
        for (size_t i = 0; i < pi->numel; i++)
            gn += (double)g[pi->offset + i] * g[pi->offset + i];
        gn = sqrt(gn);
        int other = strncmp(pi->name, pre[a], 4) && strncmp(pi->name, pre[e], 4) &&
                    strncmp(pi->name, "proj.", 5) && strcmp(pi->name, "logit_scale");
        const char *third = "proj.img.weight";
        if (a + e == 1) third = "proj.ehr.weight";
        else if (a + e == 3) third = "proj.img.weight";
        else third = "proj.txt.weight";
        if (other || strcmp(pi->name, third) == 0) {
            if (gn != 0) fail_msg("%s has gradient %g but is outside the pair", pi->name, gn);
            continue;
        }
        if (gn < 1e-7) continue;
        float *w = p + pi->offset, *save = malloc(pi->numel * sizeof *save);
        memcpy(save, w, pi->numel * sizeof *save);
        double an = 0, vn = 0;
        for (size_t i = 0; i < pi->numel; i++)
            vn += (double)g[pi->offset + i] * g[pi->offset + i];
        vn = sqrt(vn);
        for (size_t i = 0; i < pi->numel; i++)
            an += g[pi->offset + i] / vn * g[pi->offset + i];
        const float eps = 2e-2f;
        for (size_t i = 0; i < pi->numel; i++)
            w[i] = save[i] + eps * (float)(g[pi->offset + i] / vn);
        double lp = closs(m, c, &b, a, e);
        for (size_t i = 0; i < pi->numel; i++)
            w[i] = save[i] - eps * (float)(g[pi->offset + i] / vn);
        double lm = closs(m, c, &b, a, e);
        memcpy(w, save, pi->numel * sizeof *save);
        free(save);
        double num = (lp - lm) / (2.0 * eps);
        if (fabs(num - an) > 3e-2 * gn + 2e-5) {
            print_error("%s: analytic %.6g numeric %.6g\n", pi->name, an, num);
            fail();
        }
        checked++;
    }
    assert_true(checked > 10);
    free(g);
    ff_batch_free(&b);
    ff_contrastive_free(c);
    ff_model_free(m);
}

static void test_model_fd_img_txt_cross(void **state)
{
    (void)state;
    model_fd(FF_FUSION_CROSS, 0, 1);
}
static void test_model_fd_txt_ehr_cross(void **state)
{
    (void)state;
    model_fd(FF_FUSION_CROSS, 1, 2);
}
static void test_model_fd_img_txt_late(void **state)
{
    (void)state;
    model_fd(FF_FUSION_LATE, 0, 1);
}

/* grads of one forward followed by several backward passes (what a multitask step does:
 * the supervised backward, then InfoNCE over two modality pairs) = the sum of each pass
 * done alone after its own forward: no backward clobbers what a later one reads. */
static void test_backwards_add(void **state)
{
    (void)state;
    ff_model_config cfg;
    tiny_cfg(&cfg, 16);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &cfg, 12), FF_OK);
    assert_int_equal(ff_model_init(m, 21), FF_OK);
    ff_contrastive *c;
    assert_int_equal(ff_contrastive_new(&c, m), FF_OK);
    ff_batch b;
    make_batch(&cfg, &b, 12, 5);
    for (int i = 0; i < 12 * (int)cfg.tasks; i++) {
        b.labels[i] = (float)(i % 3 == 0);
        b.label_mask[i] = 1.0f;
    }
    size_t n = ff_model_nparams(m);
    float *sum = calloc(n, sizeof *sum), *all = calloc(n, sizeof *all);
    float l;
    int np;
    /* each pass alone */
    for (int pass = 0; pass < 3; pass++) {
        ff_model_zero_grad(m);
        assert_int_equal(ff_model_forward(m, &b, NULL, &l), FF_OK);
        if (pass == 0) {
            assert_int_equal(ff_model_backward(m, &b), FF_OK);
        } else {
            assert_int_equal(ff_contrastive_forward(c, &b, pass - 1, 2, &l, &np), FF_OK);
            assert_int_equal(ff_contrastive_backward(c, &b, 0.5f), FF_OK);
        }
        for (size_t i = 0; i < n; i++)
            sum[i] += ff_model_grads(m)[i];
    }
    /* all after one forward */
    ff_model_zero_grad(m);
    assert_int_equal(ff_model_forward(m, &b, NULL, &l), FF_OK);
    assert_int_equal(ff_model_backward(m, &b), FF_OK);
    for (int a = 0; a < 2; a++) {
        assert_int_equal(ff_contrastive_forward(c, &b, a, 2, &l, &np), FF_OK);
        assert_int_equal(ff_contrastive_backward(c, &b, 0.5f), FF_OK);
    }
    memcpy(all, ff_model_grads(m), n * sizeof *all);
    double gmax = 0;
    for (size_t i = 0; i < n; i++)
        gmax = fmax(gmax, fabs(sum[i]));
    assert_true(gmax > 0);
    for (size_t i = 0; i < n; i++)
        if (fabs(all[i] - sum[i]) > 1e-5 * gmax) {
            print_error("grad %zu: together %.8g, summed %.8g\n", i, all[i], sum[i]);
            fail();
        }
    free(sum), free(all);
    ff_batch_free(&b);
    ff_contrastive_free(c);
    ff_model_free(m);
}

/* projection 0 = the spec's table exactly; projection p appends four tensors and moves
 * nothing. */
static void test_table(void **state)
{
    (void)state;
    ff_model_config c0, c1;
    tiny_cfg(&c0, 0);
    tiny_cfg(&c1, 16);
    ff_model *m0, *m1;
    assert_int_equal(ff_model_new(&m0, &c0, 2), FF_OK);
    assert_int_equal(ff_model_new(&m1, &c1, 2), FF_OK);
    assert_null(ff_model_find(m0, "logit_scale"));
    assert_int_equal(ff_model_ntensors(m1), ff_model_ntensors(m0) + 4);
    for (size_t i = 0; i < ff_model_ntensors(m0); i++) {
        const ff_param_info *a = ff_model_tensor(m0, i), *b = ff_model_tensor(m1, i);
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->offset, b->offset);
    }
    const ff_param_info *pw = ff_model_find(m1, "proj.txt.weight");
    assert_non_null(pw);
    assert_int_equal(pw->shape[0], 16);
    assert_int_equal(pw->shape[1], 32);
    assert_int_equal(pw->decay, 1);
    const ff_param_info *ls = ff_model_find(m1, "logit_scale");
    assert_non_null(ls);
    assert_int_equal(ls->numel, 1);
    assert_int_equal(ff_model_init(m1, 1), FF_OK);
    assert_true(fabsf(ff_model_params(m1)[ls->offset] - logf(1 / 0.07f)) < 1e-6f);
    assert_true(fabsf(ff_contrastive_scale(m1) - 1 / 0.07f) < 1e-3f);
    ff_contrastive *c = NULL;
    assert_int_equal(ff_contrastive_new(&c, m0), FF_ECONFIG);
    ff_model_free(m0);
    ff_model_free(m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_fd),
        cmocka_unit_test(test_core_clamped),
        cmocka_unit_test(test_model_fd_img_txt_cross),
        cmocka_unit_test(test_model_fd_txt_ehr_cross),
        cmocka_unit_test(test_model_fd_img_txt_late),
        cmocka_unit_test(test_backwards_add),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
