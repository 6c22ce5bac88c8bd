/* Read-only inspection of the last forward (models/src/inspect.c): the image encoder's
 * attention and the text encoder's masked attention recomputed from the parameters with the
 * plain `_ref` kernels; the fused vector checked through the head (logits = z W^T + b); cross
 * and fusion attention checked for masking, presence and normalisation. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/models.h"

typedef struct {
    ff_model_config c;
    ff_model *m;
    ff_batch b;
    float logits[3 * 8];
} fixture;

static const float *P(fixture *f, const char *name)
{
    const ff_param_info *t = ff_model_find(f->m, name);
    if (!t)
        fail_msg("no tensor %s", name);
    return ff_model_params(f->m) + t->offset;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (ff_model_config_default(&f->c, "fusion-tiny") != FF_OK || f->c.layers != 1)
        return -1;
    const ff_model_config *c = &f->c;
    if (ff_model_new(&f->m, c, 3) != FF_OK || ff_model_init_std(f->m, 3, 0.1f) != FF_OK)
        return -1;
    if (ff_batch_alloc(&f->b, 3, (int)c->tasks, (int)c->image.channels, (int)c->image.size,
                       (int)c->image.size, (int)c->text.length, (int)c->ehr.length) != FF_OK)
        return -1;
    ff_rng r;
    ff_rng_init(&r, 5, 1);
    size_t img = (size_t)c->image.channels * c->image.size * c->image.size;
    ff_rng_normal_fill(&r, f->b.image, 3 * img, 0, 1);
    int Lt = (int)c->text.length, Le = (int)c->ehr.length;
    /* sample 0: all, with padding inside the note; 1: no note; 2: no image */
    static const int32_t note[6] = {17, 300, 0, 41, 0, 9};
    for (int i = 0; i < 3; i++) {
        f->b.image_present[i] = i != 2;
        if (i != 1)
            memcpy(f->b.text_ids + (size_t)i * Lt, note, sizeof note);
        for (int t = 0; t < 5 + i; t++) {
            f->b.ehr_code[(size_t)i * Le + t] = 3 + 7 * t + i;
            f->b.ehr_val[(size_t)i * Le + t] = t % 11;
            f->b.ehr_time[(size_t)i * Le + t] = 1 + t;
        }
    }
    if (ff_model_forward(f->m, &f->b, f->logits, NULL) != FF_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ff_batch_free(&f->b);
    ff_model_free(f->m);
    free(f);
    return 0;
}

/* Attention received from LN1(x0) of a one-block encoder: T tokens, key/query mask. */
static void ref_received(fixture *f, const char *blk, const float *x0, int T, const uint8_t *mask,
                         double *out)
{
    int d = (int)f->c.width, H = (int)f->c.heads, hd = d / H;
    char n1[96], n2[96], n3[96], n4[96];
    snprintf(n1, sizeof n1, "%s.blocks.0.ln1.weight", blk);
    snprintf(n2, sizeof n2, "%s.blocks.0.ln1.bias", blk);
    snprintf(n3, sizeof n3, "%s.blocks.0.attn.qkv.weight", blk);
    snprintf(n4, sizeof n4, "%s.blocks.0.attn.qkv.bias", blk);
    float *ln = calloc((size_t)T * d, sizeof *ln), *mu = calloc((size_t)T, sizeof *mu);
    float *rs = calloc((size_t)T, sizeof *rs), *qkv = calloc((size_t)T * 3 * d, sizeof *qkv);
    float *att = calloc((size_t)T * d, sizeof *att);
    float *pr = calloc((size_t)H * T * T, sizeof *pr);
    ff_layernorm_forward_ref(ln, mu, rs, x0, P(f, n1), P(f, n2), T, d);
    ff_linear_forward_ref(qkv, ln, P(f, n3), P(f, n4), T, d, 3 * d, 0);
    ff_attention_forward_ref(att, pr, qkv, 3 * d, qkv + d, qkv + 2 * d, 3 * d, mask, 1, T, T, H,
                             hd);
    int nq = 0;
    memset(out, 0, (size_t)T * sizeof *out);
    for (int h = 0; h < H; h++)
        for (int q = 0; q < T; q++) {
            if (mask && !mask[q])
                continue;
            nq++;
            for (int k = 0; k < T; k++)
                out[k] += pr[((size_t)h * T + q) * T + k];
        }
    for (int k = 0; k < T; k++)
        out[k] /= nq;
    free(ln), free(mu), free(rs), free(qkv), free(att), free(pr);
}

static void test_image_self_attention_matches_ref(void **state)
{
    fixture *f = *state;
    const ff_model_config *c = &f->c;
    int C = (int)c->image.channels, S = (int)c->image.size, Pp = (int)c->image.patch;
    int g = S / Pp, T = g * g, pv = C * Pp * Pp, d = (int)c->width;
    for (int b = 0; b < 2; b++) {
        float *patch = calloc((size_t)T * pv, sizeof *patch);
        float *x0 = calloc((size_t)T * d, sizeof *x0);
        ff_patchify_forward_ref(patch, f->b.image + (size_t)b * C * S * S, 1, C, S, Pp);
        ff_linear_forward_ref(x0, patch, P(f, "img.patch.weight"), P(f, "img.patch.bias"), T, pv,
                              d, 0);
        const float *pos = P(f, "img.pos");
        for (int i = 0; i < T * d; i++)
            x0[i] += pos[i];
        double want[64];
        ref_received(f, "img", x0, T, NULL, want);
        float got[64];
        assert_int_equal(ff_model_attention_received(f->m, FF_ATTN_IMG_SELF, b, got, 64), T);
        for (int k = 0; k < T; k++)
            if (fabs(got[k] - want[k]) > 1e-5)
                fail_msg("sample %d patch %d: %g vs ref %g", b, k, got[k], want[k]);
        free(patch);
        free(x0);
    }
}

static void test_text_self_attention_masked(void **state)
{
    fixture *f = *state;
    int d = (int)f->c.width, T = 6; /* up to the last valid token */
    const float *tok = P(f, "txt.tok"), *pos = P(f, "txt.pos");
    float x0[6 * 64];
    uint8_t mask[6];
    for (int t = 0; t < T; t++) {
        int32_t id = f->b.text_ids[t];
        mask[t] = id != 0;
        for (int j = 0; j < d; j++)
            x0[t * d + j] = tok[(size_t)id * d + j] + pos[(size_t)t * d + j];
    }
    double want[6];
    ref_received(f, "txt", x0, T, mask, want);
    float got[32];
    assert_int_equal(ff_model_attention_received(f->m, FF_ATTN_TXT_SELF, 0, got, 32), T);
    for (int k = 0; k < T; k++)
        if (fabs(got[k] - want[k]) > 1e-5)
            fail_msg("token %d: %g vs ref %g", k, got[k], want[k]);
    assert_true(got[2] == 0 && got[4] == 0);
}

static void test_cross_and_fusion_views(void **state)
{
    fixture *f = *state;
    float a[64];
    /* image tokens over the note: padding keys 0, a distribution over the note */
    assert_int_equal(ff_model_attention_received(f->m, FF_ATTN_IMG_TXT, 0, a, 64), 6);
    assert_true(a[2] == 0 && a[4] == 0);
    assert_true(fabs(a[0] + a[1] + a[3] + a[5] - 1.0) < 1e-5);
    /* no note: no view */
    assert_int_equal(ff_model_attention_received(f->m, FF_ATTN_IMG_TXT, 1, a, 64), 0);
    /* note over the record: 5 + b events */
    assert_int_equal(ff_model_attention_received(f->m, FF_ATTN_TXT_EHR, 2, a, 64), 7);
    double s = 0;
    for (int k = 0; k < 7; k++)
        s += a[k];
    assert_true(fabs(s - 1.0) < 1e-5);
    /* out of range and too small */
    assert_int_equal(ff_model_attention_received(f->m, FF_ATTN_TXT_EHR, 3, a, 64), 0);
    assert_int_equal(ff_model_attention_received(f->m, FF_ATTN_TXT_EHR, 0, a, 2), 0);
    assert_int_equal(ff_model_attention_received(f->m, 99, 0, a, 64), 0);
    /* fusion: absent modalities get no weight */
    float mo[3];
    assert_int_equal(ff_model_modality_attention(f->m, 2, mo), 3);
    assert_true(mo[0] == 0 && fabs(mo[1] + mo[2] - 1.0) < 1e-5);
    assert_int_equal(ff_model_modality_attention(f->m, 1, mo), 3);
    assert_true(mo[1] == 0);
}

static void test_fused_vector_feeds_the_head(void **state)
{
    fixture *f = *state;
    const float *z = ff_model_fused(f->m);
    int d = ff_model_fused_width(f->m), K = (int)f->c.tasks;
    assert_non_null(z);
    assert_int_equal(d, (int)f->c.width);
    float lg[3 * 8];
    ff_linear_forward_ref(lg, z, P(f, "head.weight"), P(f, "head.bias"), 3, d, K, 0);
    for (int i = 0; i < 3 * K; i++)
        assert_true(fabs(lg[i] - f->logits[i]) < 1e-5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_self_attention_matches_ref),
        cmocka_unit_test(test_text_self_attention_masked),
        cmocka_unit_test(test_cross_and_fusion_views),
        cmocka_unit_test(test_fused_vector_feeds_the_head),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
