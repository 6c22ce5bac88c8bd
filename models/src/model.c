/* The fusion model: activations sized once, forward saving what backward needs, backward
 * adding into the flat gradient buffer. Shapes follow ../shared/spec/model.md; comments give
 * them as (rows, cols) with N = B * tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Activation layout: one pass counts bytes, the second carves the arena                      */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    ff_arena *a;
    size_t need;
    int fail;
} carver;

static void *carve_bytes(carver *c, size_t n)
{
    size_t bytes = (n + FF_ALIGN - 1) / FF_ALIGN * FF_ALIGN;
    if (!c->a) {
        c->need += bytes ? bytes : FF_ALIGN;
        return NULL;
    }
    void *p = ff_arena_alloc(c->a, bytes ? bytes : FF_ALIGN);
    if (!p)
        c->fail = 1;
    else
        memset(p, 0, bytes);
    return p;
}

static float *carve(carver *c, size_t n)
{
    return carve_bytes(c, n * sizeof(float));
}

static void carve_block(carver *c, ff_blk_act *a, size_t N, size_t d, size_t m, size_t BHTT)
{
    a->ln1 = carve(c, N * d), a->ln1_mean = carve(c, N), a->ln1_rstd = carve(c, N);
    a->qkv = carve(c, N * 3 * d), a->probs = carve(c, BHTT), a->att = carve(c, N * d);
    a->xmid = carve(c, N * d), a->ln2 = carve(c, N * d), a->ln2_mean = carve(c, N);
    a->ln2_rstd = carve(c, N), a->fc = carve(c, N * m), a->gelu = carve(c, N * m);
    a->out = carve(c, N * d);
}

static void carve_xblock(carver *c, ff_xblk_act *a, size_t Nq, size_t Nc, size_t d, size_t m,
                         size_t BHTT)
{
    a->lnq = carve(c, Nq * d), a->lnq_mean = carve(c, Nq), a->lnq_rstd = carve(c, Nq);
    a->lnkv = carve(c, Nc * d), a->lnkv_mean = carve(c, Nc), a->lnkv_rstd = carve(c, Nc);
    a->q = carve(c, Nq * d), a->kv = carve(c, Nc * 2 * d), a->probs = carve(c, BHTT);
    a->att = carve(c, Nq * d), a->xmid = carve(c, Nq * d), a->ln2 = carve(c, Nq * d);
    a->ln2_mean = carve(c, Nq), a->ln2_rstd = carve(c, Nq), a->fc = carve(c, Nq * m);
    a->gelu = carve(c, Nq * m), a->out = carve(c, Nq * d);
}

static void carve_all(ff_model *m, carver *c)
{
    const ff_model_config *cf = &m->cfg;
    size_t B = (size_t)m->max_batch, d = (size_t)m->d, mm = (size_t)m->m, H = (size_t)m->H;
    size_t K = (size_t)m->K, Tmax = 0;
    for (int e = 0; e < 3; e++) {
        ff_encoder *en = &m->enc[e];
        size_t T = (size_t)en->T, N = B * T;
        Tmax = FF_MAX(Tmax, T);
        if (e == FF_ENC_IMG)
            en->in = carve(c, N * (size_t)(cf->image.channels * cf->image.patch * cf->image.patch));
        en->x0 = carve(c, N * d);
        for (int l = 0; l < m->layers; l++)
            carve_block(c, &en->act[l], N, d, mm, B * H * T * T);
        en->h = carve(c, N * d), en->lnf_mean = carve(c, N), en->lnf_rstd = carve(c, N);
        en->pooled = carve(c, B * d);
        m->dEnc[e] = carve(c, N * d);
        en->rows.off = carve_bytes(c, B * sizeof(int));
        en->rows.len = carve_bytes(c, B * sizeof(int));
        en->rows.T = (int)T;
        for (int k = 0; k < 3; k++)
            en->pid[k] = carve_bytes(c, N * sizeof(int32_t));
        en->pidx = carve_bytes(c, N * sizeof(int32_t));
    }
    size_t Ti = (size_t)m->enc[0].T, Tt = (size_t)m->enc[1].T, Te = (size_t)m->enc[2].T;
    size_t Nmax = B * Tmax, M = (size_t)m->M;
    m->tmask = carve_bytes(c, B * Tt), m->emask = carve_bytes(c, B * Te);
    m->pres = carve_bytes(c, B * M), m->tpres = carve_bytes(c, B), m->epres = carve_bytes(c, B);
    m->frows.off = carve_bytes(c, B * sizeof(int)), m->frows.len = carve_bytes(c, B * sizeof(int));
    m->frows.T = (int)M;
    if (cf->fusion == FF_FUSION_CROSS) {
        carve_xblock(c, &m->ax_img, B * Ti, B * Tt, d, mm, B * H * Ti * Tt);
        carve_xblock(c, &m->ax_txt, B * Tt, B * Te, d, mm, B * H * Tt * Te);
        carve_block(c, &m->afb, B * M, d, mm, B * H * M * M);
        m->fh = carve(c, B * M * d), m->flnf_mean = carve(c, B * M);
        m->flnf_rstd = carve(c, B * M);
    }
    m->F = carve(c, B * M * d), m->Fpool = carve(c, B * M * d);
    m->z = carve(c, B * d), m->logits = carve(c, B * K);
    m->ecat = carve(c, B * (M * d + M)), m->efc = carve(c, B * mm), m->egelu = carve(c, B * mm);
    m->llog = carve(c, M * B * K), m->lw = carve(c, B * M);
    m->dR1 = carve(c, Nmax * d), m->dR2 = carve(c, Nmax * d), m->dXM = carve(c, Nmax * d);
    m->dX2 = carve(c, Nmax * d), m->dX3 = carve(c, Nmax * d), m->dAtt = carve(c, Nmax * d);
    m->dH4 = carve(c, Nmax * mm);
    m->dQKV = carve(c, Nmax * 3 * d);
    m->dS = carve(c, FF_MODELS_MAX_THREADS * Tmax * Tmax);
    m->ln_scratch = carve(c, FF_MODELS_MAX_THREADS * 2 * FF_MAX(d, mm));
    m->dPool = carve(c, M * B * d);
    m->dF = carve(c, B * M * d), m->dfh = carve(c, B * M * d), m->dfo = carve(c, B * M * d);
    m->dz = carve(c, B * d), m->dlogits = carve(c, B * K), m->dcat = carve(c, B * (M * d + M));
    m->dfc = carve(c, B * mm), m->dgl = carve(c, B * mm), m->dllog = carve(c, M * B * K);
    if (M == 4) { /* the tabular encoder, only when the config has one */
        ff_tab_enc *t = &m->tenc;
        size_t F = (size_t)t->F, th = (size_t)t->th;
        t->x = carve(c, B * F), t->fc = carve(c, B * th), t->gelu = carve(c, B * th);
        t->pj = carve(c, B * d), t->ln_mean = carve(c, B), t->ln_rstd = carve(c, B);
        t->pooled = carve(c, B * d), t->dpj = carve(c, B * d), t->dgl = carve(c, B * th);
        t->dfc = carve(c, B * th);
    }
}

int ff_model_alloc_acts(ff_model *m)
{
    carver c = {0};
    carve_all(m, &c);
    int rc = ff_arena_init(&m->arena, c.need + 4096);
    if (rc != FF_OK) return rc;
    c.a = &m->arena;
    carve_all(m, &c);
    if (c.fail) return ff_error(FF_EINTERNAL, "model: activation arena sized wrong");
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Lifetime                                                                                  */
/* ---------------------------------------------------------------------------------------- */

int ff_model_new(ff_model **out, const ff_model_config *cfg, int max_batch)
{
    *out = NULL;
    int rc = ff_model_config_validate(cfg);
    if (rc != FF_OK) return rc;
    if (max_batch < 1 || max_batch > 65536)
        return ff_error(FF_EINVAL, "model: max_batch %d out of range [1, 65536]", max_batch);
    ff_model *m = calloc(1, sizeof *m);
    if (!m) return ff_error(FF_ENOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->d = (int)cfg->width, m->m = (int)cfg->mlp, m->H = (int)cfg->heads;
    m->hd = m->d / m->H, m->K = (int)cfg->tasks, m->layers = (int)cfg->layers;
    m->M = cfg->tabular.n > 0 ? 4 : 3;
    if ((rc = ff_model_build_table(m)) != FF_OK) goto out;
    for (int e = 0; e < 3; e++) {
        m->enc[e].act = calloc((size_t)m->layers, sizeof(ff_blk_act));
        if (!m->enc[e].act) {
            rc = ff_error(FF_ENOMEM, "model: out of memory");
            goto out;
        }
    }
    m->params = ff_calloc(m->nparams, sizeof(float));
    m->grads = ff_calloc(m->nparams, sizeof(float));
    if (!m->params || !m->grads) {
        rc = ff_error(FF_ENOMEM, "model: out of memory for %zu parameters", m->nparams);
        goto out;
    }
    if ((rc = ff_model_alloc_acts(m)) != FF_OK) goto out;
    ff_models_set_threads(ff_models_threads()); /* make the OpenMP pool match */
    *out = m;
out:
    if (rc != FF_OK) ff_model_free(m);
    return rc;
}

void ff_model_free(ff_model *m)
{
    if (!m) return;
    for (int e = 0; e < 3; e++) {
        free(m->enc[e].blocks);
        free(m->enc[e].act);
    }
    free(m->tab);
    free(m->names);
    ff_free(m->params);
    ff_free(m->grads);
    ff_arena_free(&m->arena);
    ff_ghost_free(m->ghost_buf);
    free(m);
}

const float *ff_model_pooled(const ff_model *m)
{
    return m->Fpool;
}
size_t ff_model_activation_bytes(const ff_model *m)
{
    return m->arena.cap;
}

const float *ff_model_fusion_attention(const ff_model *m)
{
    return m->cfg.fusion == FF_FUSION_CROSS ? m->afb.probs : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Blocks                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void addf(float *dst, const float *src, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* MLP half shared by Block and CrossBlock: out = xmid + fc₂(GELU(fc₁(LN2 xmid))). */
static void mlp_forward(ff_model *m, size_t ln2_w, size_t ln2_b, size_t fc_w, size_t fc_b,
                        size_t fp_w, size_t fp_b, const float *xmid, float *ln2, float *mean,
                        float *rstd, float *fc, float *gelu, float *out, int N)
{
    int d = m->d, mm = m->m;
    ff_layernorm_forward(ln2, mean, rstd, xmid, PW(m, ln2_w), PW(m, ln2_b), N, d);
    ff_linear_forward(fc, ln2, PW(m, fc_w), PW(m, fc_b), N, d, mm, 0);
    ff_gelu_forward(gelu, fc, (size_t)N * mm);
    ff_linear_forward_residual(out, xmid, gelu, PW(m, fp_w), PW(m, fp_b), N, mm, d);
}

/* Pre-LN Block: x + MHA(LN1 x), then + MLP(LN2 ·). x (N,d) → a->out (N,d). */
static void block_forward(ff_model *m, const ff_blk_off *o, ff_blk_act *a, const float *x,
                          const ff_rowmap *rm, int B, int pld)
{
    int N = rm->R, d = m->d, T = rm->T;
    ff_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, PW(m, o->ln1_w), PW(m, o->ln1_b), N,
                         d);
    ff_linear_forward(a->qkv, a->ln1, PW(m, o->qkv_w), PW(m, o->qkv_b), N, d, 3 * d, 0);
    ff_attention_forward_var(a->att, a->probs, (size_t)T * T, pld, a->qkv, 3 * d, a->qkv + d,
                             a->qkv + 2 * d, 3 * d, rm->mask, T, B, rm->off, rm->len, rm->off,
                             rm->len, m->H, m->hd);
    ff_linear_forward_residual(a->xmid, x, a->att, PW(m, o->proj_w), PW(m, o->proj_b), N, d, d);
    mlp_forward(m, o->ln2_w, o->ln2_b, o->fc_w, o->fc_b, o->fp_w, o->fp_b, a->xmid, a->ln2,
                a->ln2_mean, a->ln2_rstd, a->fc, a->gelu, a->out, N);
}

/* A linear layer's parameter gradients: added into m->grads, or in the ghost norm pass only
 * each example's squared norm (the batched weight-gradient GEMM is skipped there). rm says
 * which rows are whose; it is read only in the ghost pass. */
static void linear_param_grads(ff_model *m, size_t w_off, size_t b_off, const float *dy,
                               const float *x, const ff_rowmap *rm, int N, int in, int out)
{
    if (m->ghost)
        ff_ghost_linear(m, w_off, b_off, x, dy, rm, in, out);
    else
        ff_linear_backward(NULL, GW(m, w_off), GW(m, b_off), dy, x, PW(m, w_off), N, in, out);
}

/* Linear backward that overwrites dx (instead of adding) and adds the weight gradients: the
 * model's activation gradients are fresh buffers, so this saves clearing them first. */
static void linear_backward_set(float *dx, size_t w_off, size_t b_off, const float *dy,
                                const float *x, ff_model *m, const ff_rowmap *rm, int N, int in,
                                int out)
{
    ff_gemm(0, 0, N, in, out, 1.0f, dy, out, PW(m, w_off), in, 0.0f, dx, in);
    linear_param_grads(m, w_off, b_off, dy, x, rm, N, in, out);
}

/* Linear backward adding into dx (may be NULL) and the parameter gradients. */
static void linear_backward_add(float *dx, size_t w_off, size_t b_off, const float *dy,
                                const float *x, ff_model *m, const ff_rowmap *rm, int N, int in,
                                int out)
{
    if (dx) ff_gemm(0, 0, N, in, out, 1.0f, dy, out, PW(m, w_off), in, 1.0f, dx, in);
    linear_param_grads(m, w_off, b_off, dy, x, rm, N, in, out);
}

/* LayerNorm backward (width d) adding into dx; in the ghost pass the batched weight and bias
 * gradients go to a sink and each example's squared norm is taken instead. */
static void layernorm_backward(ff_model *m, float *dx, size_t w_off, size_t b_off,
                               const float *dy, const float *x, const float *mean,
                               const float *rstd, const ff_rowmap *rm, int N)
{
    int d = m->d;
    float *dw = GW(m, w_off), *db = GW(m, b_off);
    if (m->ghost) {
        ff_ghost_layernorm(m, w_off, b_off, dy, x, mean, rstd, rm, d);
        dw = m->ghost->sink, db = m->ghost->sink + d;
    }
    ff_layernorm_backward(dx, dw, db, dy, x, mean, rstd, PW(m, w_off), N, d, m->ln_scratch);
}

/* MLP half shared by Block and CrossBlock: from dout (N,d) to dxm = dout + d/dxmid of
 * the MLP branch, in m->dXM. */
static void mlp_backward(ff_model *m, size_t ln2_w, size_t ln2_b, size_t fc_w, size_t fc_b,
                         size_t fp_w, size_t fp_b, const float *xmid, const float *ln2,
                         const float *mean, const float *rstd, const float *fc, const float *gelu,
                         const float *dout, const ff_rowmap *rm, int N)
{
    int d = m->d, mm = m->m;
    ff_copyf(m->dXM, dout, (size_t)N * d);
    linear_backward_set(m->dH4, fp_w, fp_b, dout, gelu, m, rm, N, mm, d);
    ff_gelu_backward_inplace(m->dH4, fc, (size_t)N * mm);
    linear_backward_set(m->dAtt, fc_w, fc_b, m->dH4, ln2, m, rm, N, d, mm);
    layernorm_backward(m, m->dXM, ln2_w, ln2_b, m->dAtt, xmid, mean, rstd, rm, N);
}

/* dx (N,d) += d loss / d x given dout = d loss / d a->out. */
static void block_backward(ff_model *m, const ff_blk_off *o, const ff_blk_act *a, const float *x,
                           const ff_rowmap *rm, int B, int pld, const float *dout, float *dx)
{
    int N = rm->R, d = m->d, T = rm->T;
    mlp_backward(m, o->ln2_w, o->ln2_b, o->fc_w, o->fc_b, o->fp_w, o->fp_b, a->xmid, a->ln2,
                 a->ln2_mean, a->ln2_rstd, a->fc, a->gelu, dout, rm, N);
    linear_backward_set(m->dAtt, o->proj_w, o->proj_b, m->dXM, a->att, m, rm, N, d, d);
    ff_zerof(m->dQKV, (size_t)N * 3 * d);
    ff_attention_backward_var(m->dQKV, m->dQKV + d, m->dQKV + 2 * d, m->dAtt, a->probs,
                              (size_t)T * T, pld, a->qkv, 3 * d, a->qkv + d, a->qkv + 2 * d, 3 * d,
                              rm->mask, T, B, rm->off, rm->len, rm->off, rm->len, m->H, m->hd,
                              m->dS);
    linear_backward_set(m->dX2, o->qkv_w, o->qkv_b, m->dQKV, a->ln1, m, rm, N, d, 3 * d);
    addf(dx, m->dXM, (size_t)N * d);
    layernorm_backward(m, dx, o->ln1_w, o->ln1_b, m->dX2, x, a->ln1_mean, a->ln1_rstd, rm, N);
}

/* CrossBlock(x, c, cmask): x (B*Tq,d) attends to c (B*Tc,d); identity for samples whose
 * context is absent (cpres[b] == 0). */
static void xblock_forward(ff_model *m, const ff_xblk_off *o, ff_xblk_act *a, const float *x,
                           const float *c, const ff_rowmap *qr, const ff_rowmap *cr,
                           const uint8_t *cpres, int B)
{
    int Nq = qr->R, Nc = cr->R, d = m->d;
    ff_layernorm_forward(a->lnq, a->lnq_mean, a->lnq_rstd, x, PW(m, o->lnq_w), PW(m, o->lnq_b), Nq,
                         d);
    ff_layernorm_forward(a->lnkv, a->lnkv_mean, a->lnkv_rstd, c, PW(m, o->lnkv_w), PW(m, o->lnkv_b),
                         Nc, d);
    ff_linear_forward(a->q, a->lnq, PW(m, o->q_w), PW(m, o->q_b), Nq, d, d, 0);
    ff_linear_forward(a->kv, a->lnkv, PW(m, o->kv_w), PW(m, o->kv_b), Nc, d, 2 * d, 0);
    ff_attention_forward_var(a->att, a->probs, (size_t)qr->T * cr->T, 0, a->q, d, a->kv, a->kv + d,
                             2 * d, cr->mask, cr->T, B, qr->off, qr->len, cr->off, cr->len, m->H,
                             m->hd);
    ff_linear_forward_residual(a->xmid, x, a->att, PW(m, o->proj_w), PW(m, o->proj_b), Nq, d, d);
    mlp_forward(m, o->ln2_w, o->ln2_b, o->fc_w, o->fc_b, o->fp_w, o->fp_b, a->xmid, a->ln2,
                a->ln2_mean, a->ln2_rstd, a->fc, a->gelu, a->out, Nq);
    for (int b = 0; b < B; b++)
        if (!cpres[b])
            ff_copyf(a->out + (size_t)qr->off[b] * d, x + (size_t)qr->off[b] * d,
                     (size_t)qr->len[b] * d);
}

/* dx += d/dx, dc += d/dc. dout is consumed (rows of context-absent samples are zeroed). */
static void xblock_backward(ff_model *m, const ff_xblk_off *o, const ff_xblk_act *a, const float *x,
                            const float *c, const ff_rowmap *qr, const ff_rowmap *cr,
                            const uint8_t *cpres, int B, float *dout, float *dx, float *dc)
{
    int Nq = qr->R, Nc = cr->R, d = m->d;
    for (int b = 0; b < B; b++)
        if (!cpres[b]) { /* identity: the gradient passes straight through */
            size_t r0 = (size_t)qr->off[b] * d, n = (size_t)qr->len[b] * d;
            addf(dx + r0, dout + r0, n);
            ff_zerof(dout + r0, n);
        }
    mlp_backward(m, o->ln2_w, o->ln2_b, o->fc_w, o->fc_b, o->fp_w, o->fp_b, a->xmid, a->ln2,
                 a->ln2_mean, a->ln2_rstd, a->fc, a->gelu, dout, qr, Nq);
    linear_backward_set(m->dAtt, o->proj_w, o->proj_b, m->dXM, a->att, m, qr, Nq, d, d);
    float *dq = m->dQKV, *dkv = m->dQKV + (size_t)Nq * d;
    ff_zerof(dq, (size_t)Nq * d);
    ff_zerof(dkv, (size_t)Nc * 2 * d);
    ff_attention_backward_var(dq, dkv, dkv + d, m->dAtt, a->probs, (size_t)qr->T * cr->T, 0, a->q,
                              d, a->kv, a->kv + d, 2 * d, cr->mask, cr->T, B, qr->off, qr->len,
                              cr->off, cr->len, m->H, m->hd, m->dS);
    linear_backward_set(m->dX2, o->q_w, o->q_b, dq, a->lnq, m, qr, Nq, d, d);
    linear_backward_set(m->dX3, o->kv_w, o->kv_b, dkv, a->lnkv, m, cr, Nc, d, 2 * d);
    addf(dx, m->dXM, (size_t)Nq * d);
    layernorm_backward(m, dx, o->lnq_w, o->lnq_b, m->dX2, x, a->lnq_mean, a->lnq_rstd, qr, Nq);
    layernorm_backward(m, dc, o->lnkv_w, o->lnkv_b, m->dX3, c, a->lnkv_mean, a->lnkv_rstd, cr, Nc);
}

/* ---------------------------------------------------------------------------------------- */
/* Encoders                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Mean over each sample's rows under the rowmap's mask; 0 for a sample with none. */
static void rows_mean_forward(float *out, const float *x, const ff_rowmap *rm, int B, int d)
{
    ff_masked_mean_forward_var(out, x, rm->mask, rm->T, B, rm->off, rm->len, d);
}

static void rows_mean_backward(float *dx, const float *dout, const ff_rowmap *rm, int B, int d)
{
    ff_masked_mean_backward_var(dx, dout, rm->mask, rm->T, B, rm->off, rm->len, d);
}

static void encoder_forward(ff_model *m, int e, const ff_batch *b)
{
    ff_encoder *en = &m->enc[e];
    const ff_model_config *c = &m->cfg;
    int B = b->B, T = en->T, N = en->rows.R, d = m->d;
    if (e == FF_ENC_IMG) {
        int C = (int)c->image.channels, S = (int)c->image.size, P = (int)c->image.patch;
        ff_patchify_forward(en->in, b->image, B, C, S, P);
        ff_linear_forward(en->x0, en->in, PW(m, en->emb[0]), PW(m, en->emb[1]), N, C * P * P, d, 0);
        ff_pos_forward(en->x0, PW(m, en->emb[2]), B, T, d);
    } else if (e == FF_ENC_TXT) {
        ff_embedding_forward(en->x0, en->pid[0], PW(m, en->emb[0]), N, d, 0);
        ff_embedding_forward(en->x0, en->pidx, PW(m, en->emb[1]), N, d, 1);
    } else {
        ff_embedding_forward(en->x0, en->pid[0], PW(m, en->emb[0]), N, d, 0);
        ff_embedding_forward(en->x0, en->pid[1], PW(m, en->emb[1]), N, d, 1);
        ff_embedding_forward(en->x0, en->pid[2], PW(m, en->emb[2]), N, d, 1);
        ff_embedding_forward(en->x0, en->pidx, PW(m, en->emb[3]), N, d, 1);
    }
    const float *x = en->x0;
    for (int l = 0; l < m->layers; l++) {
        block_forward(m, &en->blocks[l], &en->act[l], x, &en->rows, B, 0);
        x = en->act[l].out;
    }
    ff_layernorm_forward(en->h, en->lnf_mean, en->lnf_rstd, x, PW(m, en->lnf_w), PW(m, en->lnf_b),
                         N, d);
    rows_mean_forward(en->pooled, en->h, &en->rows, B, d);
}

/* Ghost norm pass: the embedding layer's per-example norms from dX0 (image: patch linear and
 * positions; text and EHR: id tables grouped by id, positions distinct per example). */
static void embeddings_ghost(ff_model *m, int e, const float *dx0)
{
    ff_encoder *en = &m->enc[e];
    const ff_model_config *c = &m->cfg;
    int d = m->d;
    if (e == FF_ENC_IMG) {
        int pv = (int)(c->image.channels * c->image.patch * c->image.patch);
        ff_ghost_linear(m, en->emb[0], en->emb[1], en->in, dx0, &en->rows, pv, d);
        ff_ghost_rows(m, en->emb[2], dx0, &en->rows, d); /* token t of an example: row t */
    } else if (e == FF_ENC_TXT) {
        ff_ghost_embedding(m, en->emb[0], dx0, en->pid[0], &en->rows, d);
        ff_ghost_rows(m, en->emb[1], dx0, &en->rows, d);
    } else {
        for (int k = 0; k < 3; k++)
            ff_ghost_embedding(m, en->emb[k], dx0, en->pid[k], &en->rows, d);
        ff_ghost_rows(m, en->emb[3], dx0, &en->rows, d);
    }
}

/* From dH = m->dEnc[e] down to the embeddings. */
static void encoder_backward(ff_model *m, int e)
{
    ff_encoder *en = &m->enc[e];
    const ff_model_config *c = &m->cfg;
    int B = m->B, T = en->T, N = en->rows.R, d = m->d, L = m->layers;
    if (N == 0) return;
    float *dcur = m->dR1, *dprev = m->dR2;
    ff_zerof(dcur, (size_t)N * d);
    layernorm_backward(m, dcur, en->lnf_w, en->lnf_b, m->dEnc[e], en->act[L - 1].out, en->lnf_mean,
                       en->lnf_rstd, &en->rows, N);
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l ? en->act[l - 1].out : en->x0;
        ff_zerof(dprev, (size_t)N * d);
        block_backward(m, &en->blocks[l], &en->act[l], x, &en->rows, B, 0, dcur, dprev);
        float *t = dcur;
        dcur = dprev, dprev = t;
    }
    if (m->ghost) {
        embeddings_ghost(m, e, dcur);
    } else if (e == FF_ENC_IMG) {
        int pv = (int)(c->image.channels * c->image.patch * c->image.patch);
        ff_pos_backward(GW(m, en->emb[2]), dcur, B, T, d);
        ff_linear_backward(NULL, GW(m, en->emb[0]), GW(m, en->emb[1]), dcur, en->in,
                           PW(m, en->emb[0]), N, pv, d);
    } else if (e == FF_ENC_TXT) {
        ff_embedding_backward(GW(m, en->emb[0]), dcur, en->pid[0], N, d);
        ff_embedding_backward(GW(m, en->emb[1]), dcur, en->pidx, N, d);
    } else {
        for (int k = 0; k < 3; k++)
            ff_embedding_backward(GW(m, en->emb[k]), dcur, en->pid[k], N, d);
        ff_embedding_backward(GW(m, en->emb[3]), dcur, en->pidx, N, d);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Presence                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void pack_rows(ff_model *m, int e, const ff_batch *b)
{
    ff_encoder *en = &m->enc[e];
    ff_rowmap *rm = &en->rows;
    int T = en->T, R = 0;
    rm->mask = e == FF_ENC_TXT ? m->tmask : e == FF_ENC_EHR ? m->emask : NULL;
    for (int i = 0; i < b->B; i++) {
        int len = T;
        if (rm->mask) /* up to the last valid token */
            while (len > 0 && !rm->mask[(size_t)i * T + len - 1])
                len--;
        rm->off[i] = R, rm->len[i] = len;
        for (int t = 0; t < len; t++) {
            size_t src = (size_t)i * T + t;
            en->pidx[R + t] = t;
            if (e == FF_ENC_TXT) {
                en->pid[0][R + t] = b->text_ids[src];
            } else if (e == FF_ENC_EHR) {
                en->pid[0][R + t] = b->ehr_code[src];
                en->pid[1][R + t] = b->ehr_val[src];
                en->pid[2][R + t] = b->ehr_time[src];
            }
        }
        R += len;
    }
    rm->R = R;
}

void ff_model_mask_batch(ff_model *m, const ff_batch *b)
{
    int M = m->M;
    for (int i = 0; i < b->B; i++) {
        for (int t = 0; t < b->Lt; t++)
            m->tmask[(size_t)i * b->Lt + t] = b->text_ids[(size_t)i * b->Lt + t] != 0;
        for (int t = 0; t < b->Le; t++)
            m->emask[(size_t)i * b->Le + t] = b->ehr_code[(size_t)i * b->Le + t] != 0;
        for (int j = 0; j < M; j++)
            m->pres[i * M + j] = (uint8_t)ff_batch_present(b, i, j);
        m->tpres[i] = m->pres[i * M + 1];
        m->epres[i] = m->pres[i * M + 2];
        m->frows.off[i] = M * i, m->frows.len[i] = M;
    }
    m->frows.R = M * b->B;
    m->frows.mask = m->pres;
    for (int e = 0; e < 3; e++)
        pack_rows(m, e, b);
}

int ff_model_check_dims(const ff_model *m, const ff_batch *b)
{
    const ff_model_config *c = &m->cfg;
    if (b->B < 1 || b->B > m->max_batch)
        return ff_error(FF_EINVAL, "batch: B=%d out of range [1, %d]", b->B, m->max_batch);
    struct {
        const char *what;
        int got;
        int64_t want;
    } dims[] = {{"K (labels columns)", b->K, c->tasks},
                {"C (image channels)", b->C, c->image.channels},
                {"H (image height)", b->H, c->image.size},
                {"W (image width)", b->W, c->image.size},
                {"Lt (text length)", b->Lt, c->text.length},
                {"Le (EHR length)", b->Le, c->ehr.length}};
    for (size_t i = 0; i < FF_ARRAY_LEN(dims); i++)
        if (dims[i].got != dims[i].want)
            return ff_error(FF_EINVAL, "batch: %s is %d, config '%s' needs %lld", dims[i].what,
                            dims[i].got, c->name, (long long)dims[i].want);
    if (!b->image || !b->image_present || !b->text_ids || !b->ehr_code || !b->ehr_val ||
        !b->ehr_time || !b->labels)
        return ff_error(FF_EINVAL, "batch: missing input array");
    if (m->M == 4 && (b->F != c->tabular.width || !b->tab || !b->tab_present))
        return ff_error(FF_EINVAL, "batch: %d tabular columns, config '%s' declares %d "
                        "(tabular.features)", b->tab ? b->F : 0, c->name, c->tabular.width);
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Forward                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Modality j's pooled vector [B,d]: the encoders' masked means, then the tabular token. */
static const float *pooled_of(const ff_model *m, int j)
{
    return j < 3 ? m->enc[j].pooled : m->tenc.pooled;
}

/* The tabular token of every sample: LN(proj(GELU(fc(x)))). x is kept for the backward. */
static void tab_forward(ff_model *m, const ff_batch *b)
{
    ff_tab_enc *t = &m->tenc;
    int B = b->B, d = m->d;
    ff_copyf(t->x, b->tab, (size_t)B * t->F);
    ff_linear_forward(t->fc, t->x, PW(m, t->fc_w), PW(m, t->fc_b), B, t->F, t->th, 0);
    ff_gelu_forward(t->gelu, t->fc, (size_t)B * t->th);
    ff_linear_forward(t->pj, t->gelu, PW(m, t->pj_w), PW(m, t->pj_b), B, t->th, d, 0);
    ff_layernorm_forward(t->pooled, t->ln_mean, t->ln_rstd, t->pj, PW(m, t->ln_w), PW(m, t->ln_b),
                         B, d);
}

/* From dtok [B,d] = d loss / d token into the tabular encoder's parameters (the ghost pass
 * takes each example's norm: one row per example). */
static void tab_backward(ff_model *m, const float *dtok)
{
    ff_tab_enc *t = &m->tenc;
    int B = m->B, d = m->d;
    const ff_rowmap *unit = m->ghost ? &m->ghost->unit : NULL;
    ff_zerof(t->dpj, (size_t)B * d);
    layernorm_backward(m, t->dpj, t->ln_w, t->ln_b, dtok, t->pj, t->ln_mean, t->ln_rstd, unit, B);
    ff_zerof(t->dgl, (size_t)B * t->th);
    linear_backward_add(t->dgl, t->pj_w, t->pj_b, t->dpj, t->gelu, m, unit, B, t->th, d);
    ff_zerof(t->dfc, (size_t)B * t->th);
    ff_gelu_backward(t->dfc, t->dgl, t->fc, (size_t)B * t->th);
    linear_backward_add(NULL, t->fc_w, t->fc_b, t->dfc, t->x, m, unit, B, t->F, t->th);
}

static void fuse_cross_forward(ff_model *m, int B)
{
    int d = m->d;
    const ff_rowmap *ri = &m->enc[0].rows, *rt = &m->enc[1].rows, *re = &m->enc[2].rows;
    xblock_forward(m, &m->x_img, &m->ax_img, m->enc[0].h, m->enc[1].h, ri, rt, m->tpres, B);
    xblock_forward(m, &m->x_txt, &m->ax_txt, m->enc[1].h, m->enc[2].h, rt, re, m->epres, B);
    /* Pooled: plain mean of the image tokens, masked means of text and EHR. */
    rows_mean_forward(m->enc[0].pooled, m->ax_img.out, ri, B, d);
    rows_mean_forward(m->enc[1].pooled, m->ax_txt.out, rt, B, d);
    const float *mod = PW(m, m->mod);
    int M = m->M;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < M; j++) {
            const float *p = pooled_of(m, j) + (size_t)b * d;
            float *f = m->F + ((size_t)b * M + j) * d;
            ff_copyf(m->Fpool + ((size_t)b * M + j) * d, p, (size_t)d);
            for (int c = 0; c < d; c++)
                f[c] = p[c] + mod[(size_t)j * d + c];
        }
    block_forward(m, &m->fblock, &m->afb, m->F, &m->frows, B, M);
    ff_layernorm_forward(m->fh, m->flnf_mean, m->flnf_rstd, m->afb.out, PW(m, m->lnf_w),
                         PW(m, m->lnf_b), B * M, d);
    ff_masked_mean_forward(m->z, m->fh, m->pres, B, M, d);
    ff_linear_forward(m->logits, m->z, PW(m, m->head_w), PW(m, m->head_b), B, d, m->K, 0);
}

static void fuse_early_forward(ff_model *m, int B)
{
    int d = m->d, M = m->M, w = M * d + M;
    for (int b = 0; b < B; b++) {
        float *r = m->ecat + (size_t)b * w;
        for (int j = 0; j < M; j++) {
            const float *p = pooled_of(m, j) + (size_t)b * d;
            float pres = m->pres[b * M + j];
            for (int c = 0; c < d; c++)
                r[j * d + c] = pres * p[c]; /* zeros for an absent modality */
            ff_copyf(m->Fpool + ((size_t)b * M + j) * d, r + j * d, (size_t)d);
            r[M * d + j] = pres;
        }
    }
    ff_linear_forward(m->efc, m->ecat, PW(m, m->efc_w), PW(m, m->efc_b), B, w, m->m, 0);
    ff_gelu_forward(m->egelu, m->efc, (size_t)B * m->m);
    ff_linear_forward(m->z, m->egelu, PW(m, m->efp_w), PW(m, m->efp_b), B, m->m, d, 0);
    ff_linear_forward(m->logits, m->z, PW(m, m->head_w), PW(m, m->head_b), B, d, m->K, 0);
}

static void fuse_late_forward(ff_model *m, int B)
{
    int d = m->d, K = m->K, M = m->M;
    const float *fw = PW(m, m->fuse_w);
    for (int j = 0; j < M; j++)
        ff_linear_forward(m->llog + (size_t)j * B * K, pooled_of(m, j), PW(m, m->lhead_w[j]),
                          PW(m, m->lhead_b[j]), B, d, K, 0);
    for (int b = 0; b < B; b++) {
        /* softmax(fuse.w) renormalised over the present modalities */
        float mx = -INFINITY, s = 0;
        for (int j = 0; j < M; j++)
            if (m->pres[b * M + j] && fw[j] > mx) mx = fw[j];
        for (int j = 0; j < M; j++) {
            float e = m->pres[b * M + j] ? expf(fw[j] - mx) : 0.0f;
            m->lw[b * M + j] = e;
            s += e;
        }
        for (int k = 0; k < K; k++)
            m->logits[(size_t)b * K + k] = 0;
        for (int j = 0; j < M; j++) {
            m->lw[b * M + j] /= s;
            ff_copyf(m->Fpool + ((size_t)b * M + j) * d, pooled_of(m, j) + (size_t)b * d,
                     (size_t)d);
            for (int k = 0; k < K; k++)
                m->logits[(size_t)b * K + k] +=
                    m->lw[b * M + j] * m->llog[((size_t)j * B + b) * K + k];
        }
    }
}

int ff_model_forward(ff_model *m, const ff_batch *b, float *logits, float *loss)
{
    int rc = ff_model_check_dims(m, b);
    if (rc != FF_OK) return rc;
    int B = b->B;
    ff_model_mask_batch(m, b);
    int M = m->M;
    for (int i = 0; i < B; i++)
        if (!m->pres[i * M] && !m->pres[i * M + 1] && !m->pres[i * M + 2] &&
            (M == 3 || !m->pres[i * M + 3]))
            return ff_error(FF_EINVAL,
                            "batch: sample %d has no modality present (image, text%s "
                            "and EHR all absent)",
                            i, M == 4 ? ", tabular" : "");
    m->B = B;
    for (int e = 0; e < 3; e++)
        encoder_forward(m, e, b);
    if (M == 4) tab_forward(m, b);
    if (m->cfg.fusion == FF_FUSION_CROSS)
        fuse_cross_forward(m, B);
    else if (m->cfg.fusion == FF_FUSION_EARLY)
        fuse_early_forward(m, B);
    else
        fuse_late_forward(m, B);
    if (logits) ff_copyf(logits, m->logits, (size_t)B * m->K);
    if (loss && ff_task_set_all_binary(&m->cfg.task_set)) {
        *loss = ff_bce_forward(m->logits, b->labels, b->label_mask, B * m->K);
    } else if (loss) {
        double l = 0;
        rc = ff_model_task_loss(&m->cfg.task_set, m->logits, b->labels, b->label_mask, B, &l, NULL);
        *loss = (float)l;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Backward                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void fuse_cross_backward(ff_model *m, int B)
{
    int d = m->d, K = m->K;
    const ff_rowmap *ri = &m->enc[0].rows, *rt = &m->enc[1].rows, *re = &m->enc[2].rows;
    const ff_rowmap *unit = m->ghost ? &m->ghost->unit : NULL;
    ff_zerof(m->dz, (size_t)B * d);
    linear_backward_add(m->dz, m->head_w, m->head_b, m->dlogits, m->z, m, unit, B, d, K);
    int M = m->M;
    ff_zerof(m->dfh, (size_t)B * M * d);
    ff_masked_mean_backward(m->dfh, m->dz, m->pres, B, M, d);
    ff_zerof(m->dfo, (size_t)B * M * d);
    layernorm_backward(m, m->dfo, m->lnf_w, m->lnf_b, m->dfh, m->afb.out, m->flnf_mean,
                       m->flnf_rstd, &m->frows, B * M);
    ff_zerof(m->dF, (size_t)B * M * d);
    block_backward(m, &m->fblock, &m->afb, m->F, &m->frows, B, M, m->dfo, m->dF);
    /* mod row j gets dF row j of every example: in the ghost pass that is Σ_j ‖dF_bj‖² */
    float *dmod = m->ghost ? NULL : GW(m, m->mod);
    if (m->ghost) ff_ghost_rows(m, m->mod, m->dF, &m->frows, d);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < M; j++) {
            const float *g = m->dF + ((size_t)b * M + j) * d;
            ff_copyf(m->dPool + ((size_t)j * B + b) * d, g, (size_t)d);
            for (int c = 0; dmod && c < d; c++)
                dmod[(size_t)j * d + c] += g[c];
        }
    for (int e = 0; e < 3; e++)
        ff_zerof(m->dEnc[e], (size_t)m->enc[e].rows.R * d);
    rows_mean_backward(m->dEnc[2], m->dPool + (size_t)2 * B * d, re, B, d);
    /* text cross-block output gradient, then its backward (adds into dH_txt and dH_ehr) */
    ff_zerof(m->dR1, (size_t)rt->R * d);
    rows_mean_backward(m->dR1, m->dPool + (size_t)B * d, rt, B, d);
    xblock_backward(m, &m->x_txt, &m->ax_txt, m->enc[1].h, m->enc[2].h, rt, re, m->epres, B, m->dR1,
                    m->dEnc[1], m->dEnc[2]);
    ff_zerof(m->dR1, (size_t)ri->R * d);
    rows_mean_backward(m->dR1, m->dPool, ri, B, d);
    xblock_backward(m, &m->x_img, &m->ax_img, m->enc[0].h, m->enc[1].h, ri, rt, m->tpres, B, m->dR1,
                    m->dEnc[0], m->dEnc[1]);
}

static void pooled_backward(ff_model *m, int B)
{
    /* m->dPool [3,B,d] holds d loss / d pooled_j */
    int d = m->d;
    for (int e = 0; e < 3; e++) {
        ff_zerof(m->dEnc[e], (size_t)m->enc[e].rows.R * d);
        rows_mean_backward(m->dEnc[e], m->dPool + (size_t)e * B * d, &m->enc[e].rows, B, d);
    }
}

static void fuse_early_backward(ff_model *m, int B)
{
    int d = m->d, K = m->K, mm = m->m, M = m->M, w = M * d + M;
    const ff_rowmap *unit = m->ghost ? &m->ghost->unit : NULL;
    ff_zerof(m->dz, (size_t)B * d);
    linear_backward_add(m->dz, m->head_w, m->head_b, m->dlogits, m->z, m, unit, B, d, K);
    ff_zerof(m->dgl, (size_t)B * mm);
    linear_backward_add(m->dgl, m->efp_w, m->efp_b, m->dz, m->egelu, m, unit, B, mm, d);
    ff_zerof(m->dfc, (size_t)B * mm);
    ff_gelu_backward(m->dfc, m->dgl, m->efc, (size_t)B * mm);
    ff_zerof(m->dcat, (size_t)B * w);
    linear_backward_add(m->dcat, m->efc_w, m->efc_b, m->dfc, m->ecat, m, unit, B, w, mm);
    for (int j = 0; j < M; j++)
        for (int b = 0; b < B; b++) {
            float pres = m->pres[b * M + j];
            for (int c = 0; c < d; c++)
                m->dPool[((size_t)j * B + b) * d + c] = pres * m->dcat[(size_t)b * w + j * d + c];
        }
    pooled_backward(m, B);
}

static void fuse_late_backward(ff_model *m, int B)
{
    int d = m->d, K = m->K, M = m->M;
    float *dfw = GW(m, m->fuse_w);
    for (int b = 0; b < B; b++) {
        float dw[4], dot = 0;
        for (int j = 0; j < M; j++) {
            dw[j] = 0;
            for (int k = 0; k < K; k++)
                dw[j] += m->dlogits[(size_t)b * K + k] * m->llog[((size_t)j * B + b) * K + k];
            dot += m->lw[b * M + j] * dw[j];
        }
        for (int j = 0; j < M; j++) {
            /* softmax Jacobian over the present set (absent ones have weight 0) */
            float gj = m->lw[b * M + j] * (dw[j] - dot);
            if (m->ghost)
                m->ghost->fw[b * M + j] = gj; /* example b's gradient of fuse.w */
            else
                dfw[j] += gj;
            for (int k = 0; k < K; k++)
                m->dllog[((size_t)j * B + b) * K + k] =
                    m->lw[b * M + j] * m->dlogits[(size_t)b * K + k];
        }
    }
    const ff_rowmap *unit = m->ghost ? &m->ghost->unit : NULL;
    if (m->ghost) ff_ghost_rows(m, m->fuse_w, m->ghost->fw, unit, M);
    ff_zerof(m->dPool, (size_t)M * B * d);
    for (int j = 0; j < M; j++)
        linear_backward_add(m->dPool + (size_t)j * B * d, m->lhead_w[j], m->lhead_b[j],
                            m->dllog + (size_t)j * B * K, pooled_of(m, j), m, unit, B, d, K);
    pooled_backward(m, B);
}

int ff_model_backward(ff_model *m, const ff_batch *b)
{
    int B = b->B;
    if (B != m->B)
        return ff_error(FF_ESTATE, "model: backward on a batch of %d after a forward on %d", B,
                        m->B);
    ff_zerof(m->dlogits, (size_t)B * m->K);
    if (ff_task_set_all_binary(&m->cfg.task_set)) {
        ff_bce_backward(m->dlogits, m->logits, b->labels, b->label_mask, B * m->K);
    } else {
        double l;
        int rc = ff_model_task_loss(&m->cfg.task_set, m->logits, b->labels, b->label_mask, B, &l,
                                    m->dlogits);
        if (rc != FF_OK)
            return rc;
    }
    ff_model_backward_core(m);
    return FF_OK;
}

void ff_model_backward_core(ff_model *m)
{
    int B = m->B;
    if (m->cfg.fusion == FF_FUSION_CROSS)
        fuse_cross_backward(m, B);
    else if (m->cfg.fusion == FF_FUSION_EARLY)
        fuse_early_backward(m, B);
    else
        fuse_late_backward(m, B);
    for (int e = 0; e < 3; e++)
        encoder_backward(m, e);
    if (m->M == 4) tab_backward(m, m->dPool + (size_t)3 * B * m->d);
}

/* Contrastive pre-training's entry into the encoders: dpool [3,B,d] is d loss / d (each
 * encoder's own masked-mean output, before fusion); adds the encoders' gradients for the
 * modalities in enc_mask (bit e = encoder e). Uses the activations of the last forward. */
int ff_model_backward_pooled(ff_model *m, const ff_batch *b, const float *dpool, int enc_mask)
{
    int B = b->B, d = m->d;
    if (B != m->B)
        return ff_error(FF_ESTATE, "model: backward on a batch of %d after a forward on %d", B,
                        m->B);
    for (int e = 0; e < 3; e++) {
        if (!(enc_mask & (1 << e))) continue;
        ff_zerof(m->dEnc[e], (size_t)m->enc[e].rows.R * d);
        rows_mean_backward(m->dEnc[e], dpool + (size_t)e * B * d, &m->enc[e].rows, B, d);
        encoder_backward(m, e);
    }
    return FF_OK;
}
