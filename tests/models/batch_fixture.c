#include "batch_fixture.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

void ftm_make_batch(const ff_model_config *c, ff_batch *b, int B, uint64_t seed, int hard)
{
    assert_int_equal(ff_batch_alloc(b, B, (int)c->tasks, (int)c->image.channels, (int)c->image.size,
                                    (int)c->image.size, (int)c->text.length, (int)c->ehr.length),
                     FF_OK);
    ff_rng r;
    ff_rng_init(&r, seed, 7);
    size_t img = (size_t)c->image.channels * c->image.size * c->image.size;
    for (int i = 0; i < B; i++) {
        int pat = i % 7; /* 0 all, 1 no image, 2 no text, 3 no EHR, 4 img, 5 text, 6 EHR */
        int has_img = pat == 0 || pat == 2 || pat == 3 || pat == 4;
        int has_txt = pat == 0 || pat == 1 || pat == 3 || pat == 5;
        int has_ehr = pat == 0 || pat == 1 || pat == 2 || pat == 6;
        int repeat = hard && i % 2 == 0; /* ids from a small range, so they repeat */
        ff_rng_normal_fill(&r, b->image + i * img, img, 0, 1);
        b->image_present[i] = (float)has_img;
        int lt = !has_txt ? 0
                 : hard   ? 2 + (int)ff_rng_below(&r, (uint32_t)c->text.length - 1)
                          : 1 + (int)ff_rng_below(&r, (uint32_t)c->text.length);
        uint32_t vocab = repeat ? 4 : (uint32_t)c->text.vocab - 1;
        for (int t = 0; t < lt; t++)
            b->text_ids[(size_t)i * c->text.length + t] =
                (hard && i % 3 == 0 && t == lt / 2) ? 0 : 1 + (int32_t)ff_rng_below(&r, vocab);
        int le = has_ehr ? 1 + (int)ff_rng_below(&r, (uint32_t)c->ehr.length) : 0;
        for (int t = 0; t < le; t++) {
            size_t k = (size_t)i * c->ehr.length + t;
            b->ehr_code[k] = 1 + (int32_t)ff_rng_below(&r, repeat ? 3 : (uint32_t)c->ehr.codes - 1);
            b->ehr_val[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.values);
            b->ehr_time[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.times);
        }
        for (int k = 0; k < c->tasks; k++) {
            b->labels[(size_t)i * c->tasks + k] = (float)ff_rng_below(&r, 2);
            /* one unknown label on some samples: per-example loss is the mean of ITS labels */
            b->label_mask[(size_t)i * c->tasks + k] = (hard && i % 4 == 1 && k == 0) ? 0.0f : 1.0f;
        }
    }
}

/* Row i copied into its own batch of one (nothing shared with the code under test). */
static void copy_row(const ff_batch *b, int i, ff_batch *one)
{
    size_t img = (size_t)b->C * (size_t)b->H * (size_t)b->W;
    assert_int_equal(ff_batch_alloc(one, 1, b->K, b->C, b->H, b->W, b->Lt, b->Le), FF_OK);
    memcpy(one->image, b->image + (size_t)i * img, img * sizeof(float));
    one->image_present[0] = b->image_present[i];
    memcpy(one->text_ids, b->text_ids + (size_t)i * b->Lt, (size_t)b->Lt * 4);
    memcpy(one->ehr_code, b->ehr_code + (size_t)i * b->Le, (size_t)b->Le * 4);
    memcpy(one->ehr_val, b->ehr_val + (size_t)i * b->Le, (size_t)b->Le * 4);
    memcpy(one->ehr_time, b->ehr_time + (size_t)i * b->Le, (size_t)b->Le * 4);
    memcpy(one->labels, b->labels + (size_t)i * b->K, (size_t)b->K * 4);
    memcpy(one->label_mask, b->label_mask + (size_t)i * b->K, (size_t)b->K * 4);
    if (b->tab) {
        assert_int_equal(ff_batch_alloc_tab(one, b->F), FF_OK);
        memcpy(one->tab, b->tab + (size_t)i * b->F, (size_t)b->F * 4);
        one->tab_present[0] = b->tab_present[i];
    }
}

void ftm_add_tabular(const ff_model_config *c, ff_batch *b, uint64_t seed)
{
    const ff_feature_set *fs = &c->tabular;
    assert_int_equal(ff_batch_alloc_tab(b, fs->width), FF_OK);
    ff_rng r;
    ff_rng_init(&r, seed, 8);
    for (int i = 0; i < b->B; i++) {
        float *row = b->tab + (size_t)i * fs->width;
        b->tab_present[i] = i % 5 == 3 ? 0.0f : 1.0f;
        for (int f = 0; b->tab_present[i] > 0 && f < fs->n; f++) {
            const ff_feature *ft = &fs->f[f];
            int w = ff_feature_width(ft);
            if (ff_rng_below(&r, 4) == 0) /* missing */
                row[ft->col + w - 1] = 1.0f;
            else if (ft->kind == FF_FEATURE_NUMERIC)
                row[ft->col] = (float)ff_rng_normal(&r);
            else
                row[ft->col + (int)ff_rng_below(&r, (uint32_t)ft->ncat)] = 1.0f;
        }
        if (i % 7 == 6 && b->tab_present[i] > 0) { /* tabular alone */
            b->image_present[i] = 0;
            memset(b->ehr_code + (size_t)i * b->Le, 0, (size_t)b->Le * 4);
            memset(b->text_ids + (size_t)i * b->Lt, 0, (size_t)b->Lt * 4);
        }
    }
}

void ftm_single_grad(const ff_model_config *c, const float *params, const ff_batch *b, int i,
                     double *g, size_t n)
{
    ff_model *m1;
    assert_int_equal(ff_model_new(&m1, c, 1), FF_OK);
    memcpy(ff_model_params(m1), params, n * sizeof(float));
    ff_batch one;
    copy_row(b, i, &one);
    float loss;
    ff_model_zero_grad(m1);
    assert_int_equal(ff_model_forward(m1, &one, NULL, &loss), FF_OK);
    assert_int_equal(ff_model_backward(m1, &one), FF_OK);
    for (size_t j = 0; j < n; j++)
        g[j] = ff_model_grads(m1)[j];
    ff_batch_free(&one);
    ff_model_free(m1);
}

static float fd_loss_at(ff_model *m, const ff_batch *b)
{
    float l;
    assert_int_equal(ff_model_forward(m, b, NULL, &l), FF_OK);
    return l;
}

/* Whole-model gradient check in float: for every tensor, the directional derivative along
 * the gradient direction and along a random direction, by central differences. */
int ftm_fd_check(ff_model *m, const ff_batch *b, const char *what)
{
    ff_model_zero_grad(m);
    fd_loss_at(m, b);
    assert_int_equal(ff_model_backward(m, b), FF_OK);
    float *p = ff_model_params(m);
    size_t n = ff_model_nparams(m);
    float *g = malloc(n * sizeof *g);
    memcpy(g, ff_model_grads(m), n * sizeof *g);
    ff_rng r;
    ff_rng_init(&r, 99, 1);
    int checked = 0;
    for (size_t t = 0; t < ff_model_ntensors(m); t++) {
        const ff_param_info *pi = ff_model_tensor(m, t);
        double gn = 0;
        for (size_t i = 0; i < pi->numel; i++)
            gn += (double)g[pi->offset + i] * g[pi->offset + i];
        gn = sqrt(gn);
        if (gn < 1e-7) { /* only possible for unused rows; nothing to check */
            continue;
        }
        float *v = malloc(pi->numel * sizeof *v);
        for (int dir = 0; dir < 2; dir++) {
            double vn = 0, an = 0;
            for (size_t i = 0; i < pi->numel; i++) {
                v[i] = dir == 0 ? g[pi->offset + i] : (float)ff_rng_normal(&r);
                vn += (double)v[i] * v[i];
            }
            vn = sqrt(vn);
            for (size_t i = 0; i < pi->numel; i++) {
                v[i] = (float)(v[i] / vn);
                an += (double)v[i] * g[pi->offset + i];
            }
            const float eps = 2e-2f;
            float *w = p + pi->offset;
            float *save = malloc(pi->numel * sizeof *save);
            memcpy(save, w, pi->numel * sizeof *save);
            for (size_t i = 0; i < pi->numel; i++)
                w[i] = save[i] + eps * v[i];
            double lp = fd_loss_at(m, b);
            for (size_t i = 0; i < pi->numel; i++)
                w[i] = save[i] - eps * v[i];
            double lm = fd_loss_at(m, b);
            memcpy(w, save, pi->numel * sizeof *save);
            free(save);
            double num = (lp - lm) / (2.0 * eps);
            if (fabs(num - an) > 3e-2 * gn + 2e-5) {
                print_error("%s %s dir %d: analytic %.6g numeric %.6g (|g| %.3g)\n", what,
                            pi->name, dir, an, num, gn);
                fail();
            }
            checked++;
        }
        free(v);
    }
    free(g);
    return checked;
}

