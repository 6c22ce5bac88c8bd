/* Contrastive pre-training (CLIP-style): symmetric InfoNCE over the in-batch pairs of two
 * modalities, on the encoders' own pooled vectors (masked mean of each encoder's output, before
 * any fusion, so an image embedding never sees its note), through bias-free projection heads
 * proj.<mod>.weight [p,d] and a learned temperature logit_scale clamped at ln 100. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FF_LOGIT_SCALE_MAX 4.605170185988091f /* ln 100, CLIP's clamp */

struct ff_contrastive {
    ff_model *m;
    int maxB, d, p;
    int a, c, n;     /* modalities and pair count of the last forward */
    int *idx;        /* [maxB] batch row of pair i */
    float *pool[2];  /* [maxB,d] gathered pooled vectors */
    float *z[2];     /* [maxB,p] projections */
    float *u[2];     /* [maxB,p] unit projections */
    float *rn[2];    /* [maxB] 1 / |z| */
    float *logits;   /* [maxB,maxB] */
    float *dlog;     /* [maxB,maxB] */
    float *du[2];    /* [maxB,p] */
    float *dpair[2]; /* [maxB,d] */
    float *dpool;    /* [3,maxB,d] model layout */
    float *all;      /* [maxB,d] pooled of every row (scratch) */
};

int ff_contrastive_new(ff_contrastive **out, ff_model *m)
{
    *out = NULL;
    if (m->cfg.projection <= 0)
        return ff_error(FF_ECONFIG,
                        "contrastive: model config '%s' has no projection heads (set "
                        "projection: N > 0)",
                        m->cfg.name);
    ff_contrastive *c = calloc(1, sizeof *c);
    if (!c) return ff_error(FF_ENOMEM, "contrastive: out of memory");
    c->m = m;
    c->maxB = m->max_batch, c->d = m->d, c->p = (int)m->cfg.projection;
    size_t B = (size_t)c->maxB, d = (size_t)c->d, p = (size_t)c->p;
    int ok = (c->idx = calloc(B, sizeof *c->idx)) != NULL;
    for (int k = 0; k < 2; k++) {
        ok = ok && (c->pool[k] = calloc(B * d, sizeof(float))) && (c->z[k] = calloc(B * p, 4)) &&
             (c->u[k] = calloc(B * p, 4)) && (c->rn[k] = calloc(B, 4)) &&
             (c->du[k] = calloc(B * p, 4)) && (c->dpair[k] = calloc(B * d, 4));
    }
    ok = ok && (c->logits = calloc(B * B, 4)) && (c->dlog = calloc(B * B, 4)) &&
         (c->dpool = calloc(3 * B * d, 4)) && (c->all = calloc(B * d, 4));
    if (!ok) {
        ff_contrastive_free(c);
        return ff_error(FF_ENOMEM, "contrastive: out of memory");
    }
    *out = c;
    return FF_OK;
}

void ff_contrastive_free(ff_contrastive *c)
{
    if (!c) return;
    free(c->idx);
    for (int k = 0; k < 2; k++) {
        free(c->pool[k]), free(c->z[k]), free(c->u[k]), free(c->rn[k]);
        free(c->du[k]), free(c->dpair[k]);
    }
    free(c->logits), free(c->dlog), free(c->dpool), free(c->all);
    free(c);
}

/* u = z / max(|z|, 1e-12) row-wise over n rows of width p. */
static void normalize_rows(float *u, float *rn, const float *z, int n, int p)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < p; k++)
            s += (double)z[(size_t)i * p + k] * z[(size_t)i * p + k];
        double nr = sqrt(s);
        rn[i] = (float)(1.0 / (nr > 1e-12 ? nr : 1e-12));
        for (int k = 0; k < p; k++)
            u[(size_t)i * p + k] = z[(size_t)i * p + k] * rn[i];
    }
}

int ff_contrastive_core(ff_contrastive *c, const float *pa, const float *pc, int n,
                        const float *Wa, const float *Wc, float ls, float weight, float *loss,
                        float *dpa, float *dpc, float *dWa, float *dWc, float *dls)
{
    int d = c->d, p = c->p;
    if (n < 0 || n > c->maxB)
        return ff_error(FF_EINVAL, "contrastive: %d pairs outside 0..%d", n, c->maxB);
    *loss = 0;
    if (n == 0) return FF_OK;
    const float *P[2] = {pa, pc}, *W[2] = {Wa, Wc};
    for (int k = 0; k < 2; k++) {
        ff_gemm(0, 1, n, p, d, 1.0f, P[k], d, W[k], d, 0.0f, c->z[k], p);
        normalize_rows(c->u[k], c->rn[k], c->z[k], n, p);
    }
    int clamped = ls > FF_LOGIT_SCALE_MAX;
    float s = expf(clamped ? FF_LOGIT_SCALE_MAX : ls);
    ff_gemm(0, 1, n, n, p, s, c->u[0], p, c->u[1], p, 0.0f, c->logits, n);
    /* Rows (a→c) and columns (c→a) cross-entropy with the diagonal as targets; dlog holds
     * the softmax probabilities of both directions scaled by 1/(2n). */
    double L = 0;
    const double h = 0.5 / n;
    for (int i = 0; i < n; i++) {
        const float *r = c->logits + (size_t)i * n;
        double mx = r[0], se = 0;
        for (int j = 1; j < n; j++)
            mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < n; j++)
            se += exp(r[j] - mx);
        double lse = mx + log(se);
        L += lse - r[i];
        for (int j = 0; j < n; j++)
            c->dlog[(size_t)i * n + j] = (float)(h * (exp(r[j] - lse) - (i == j)));
    }
    for (int j = 0; j < n; j++) {
        double mx = c->logits[j], se = 0;
        for (int i = 1; i < n; i++)
            mx = c->logits[(size_t)i * n + j] > mx ? c->logits[(size_t)i * n + j] : mx;
        for (int i = 0; i < n; i++)
            se += exp(c->logits[(size_t)i * n + j] - mx);
        double lse = mx + log(se);
        L += lse - c->logits[(size_t)j * n + j];
        for (int i = 0; i < n; i++)
            c->dlog[(size_t)i * n + j] +=
                (float)(h * (exp(c->logits[(size_t)i * n + j] - lse) - (i == j)));
    }
    *loss = (float)(L * h);
    if (!dpa && !dpc && !dWa && !dWc && !dls) return FF_OK;
    for (size_t k = 0; k < (size_t)n * n; k++)
        c->dlog[k] *= weight;
    if (dls && !clamped) {
        /* d logits / d ls = logits (s = exp(ls)); zero past the clamp, as torch's clamp */
        double g = 0;
        for (size_t k = 0; k < (size_t)n * n; k++)
            g += (double)c->dlog[k] * c->logits[k];
        *dls += (float)g;
    }
    /* du_a = s dlog u_c; du_c = s dlogᵀ u_a */
    ff_gemm(0, 0, n, p, n, s, c->dlog, n, c->u[1], p, 0.0f, c->du[0], p);
    ff_gemm(1, 0, n, p, n, s, c->dlog, n, c->u[0], p, 0.0f, c->du[1], p);
    float *dP[2] = {dpa, dpc}, *dW[2] = {dWa, dWc};
    for (int k = 0; k < 2; k++) {
        /* through the normalisation: dz = (du - u (u·du)) / |z| (in place into du) */
        for (int i = 0; i < n; i++) {
            float *g = c->du[k] + (size_t)i * p;
            const float *u = c->u[k] + (size_t)i * p;
            double dot = 0;
            for (int q = 0; q < p; q++)
                dot += (double)u[q] * g[q];
            for (int q = 0; q < p; q++)
                g[q] = (float)((g[q] - u[q] * dot) * c->rn[k][i]);
        }
        if (dW[k]) ff_gemm(1, 0, p, d, n, 1.0f, c->du[k], p, P[k], d, 1.0f, dW[k], d);
        if (dP[k]) ff_gemm(0, 0, n, d, p, 1.0f, c->du[k], p, W[k], d, 1.0f, dP[k], d);
    }
    return FF_OK;
}

/* The encoder's own pooled vector for every row of the last forward: masked mean of H. */
static void encoder_pooled(const ff_model *m, int e, float *out)
{
    const ff_encoder *en = &m->enc[e];
    const ff_rowmap *rm = &en->rows;
    ff_masked_mean_forward_var(out, en->h, rm->mask, rm->T, m->B, rm->off, rm->len, m->d);
}

static int check_pair(const ff_contrastive *c, const ff_batch *b, int a, int e)
{
    if (a < 0 || a > 2 || e < 0 || e > 2 || a == e)
        return ff_error(FF_EINVAL, "contrastive: modality pair (%d,%d) is not two of 0..2", a, e);
    if (b->B != c->m->B)
        return ff_error(FF_ESTATE, "contrastive: batch of %d after a forward on %d", b->B,
                        c->m->B);
    return FF_OK;
}

int ff_contrastive_forward(ff_contrastive *c, const ff_batch *b, int a, int e, float *loss,
                           int *npairs)
{
    int rc = check_pair(c, b, a, e);
    if (rc != FF_OK) return rc;
    ff_model *m = c->m;
    int B = m->B, d = c->d, n = 0;
    c->a = a, c->c = e;
    for (int i = 0; i < B; i++)
        if (m->pres[i * m->M + a] && m->pres[i * m->M + e]) c->idx[n++] = i;
    c->n = n;
    const int mod[2] = {a, e};
    for (int k = 0; k < 2; k++) {
        encoder_pooled(m, mod[k], c->all);
        for (int i = 0; i < n; i++)
            memcpy(c->pool[k] + (size_t)i * d, c->all + (size_t)c->idx[i] * d,
                   (size_t)d * sizeof(float));
    }
    if (npairs) *npairs = n;
    return ff_contrastive_core(c, c->pool[0], c->pool[1], n, PW(m, m->proj_w[a]),
                               PW(m, m->proj_w[e]), *PW(m, m->logit_scale), 1.0f, loss, NULL,
                               NULL, NULL, NULL, NULL);
}

int ff_contrastive_backward(ff_contrastive *c, const ff_batch *b, float weight)
{
    int rc = check_pair(c, b, c->a, c->c);
    if (rc != FF_OK) return rc;
    ff_model *m = c->m;
    int B = m->B, d = c->d, n = c->n, a = c->a, e = c->c;
    if (n == 0) return FF_OK;
    float loss;
    for (int k = 0; k < 2; k++)
        memset(c->dpair[k], 0, (size_t)n * d * sizeof(float));
    /* recomputes the small head forward (n×p) so the scratch matches this pair */
    rc = ff_contrastive_core(c, c->pool[0], c->pool[1], n, PW(m, m->proj_w[a]), PW(m, m->proj_w[e]),
                             *PW(m, m->logit_scale), weight, &loss, c->dpair[0], c->dpair[1],
                             GW(m, m->proj_w[a]), GW(m, m->proj_w[e]), GW(m, m->logit_scale));
    if (rc != FF_OK) return rc;
    memset(c->dpool, 0, (size_t)3 * B * d * sizeof(float));
    const int mod[2] = {a, e};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n; i++)
            memcpy(c->dpool + ((size_t)mod[k] * B + c->idx[i]) * d, c->dpair[k] + (size_t)i * d,
                   (size_t)d * sizeof(float));
    return ff_model_backward_pooled(m, b, c->dpool, (1 << a) | (1 << e));
}

int ff_contrastive_embed(ff_contrastive *c, int e, float *out)
{
    ff_model *m = c->m;
    if (e < 0 || e > 2) return ff_error(FF_EINVAL, "contrastive: modality %d not in 0..2", e);
    int B = m->B, p = c->p;
    encoder_pooled(m, e, c->all);
    ff_gemm(0, 1, B, p, c->d, 1.0f, c->all, c->d, PW(m, m->proj_w[e]), c->d, 0.0f, out, p);
    for (int i = 0; i < B; i++) {
        float *r = out + (size_t)i * p;
        double s = 0;
        for (int q = 0; q < p; q++)
            s += (double)r[q] * r[q];
        float inv = (float)(1.0 / (sqrt(s) > 1e-12 ? sqrt(s) : 1e-12));
        for (int q = 0; q < p; q++)
            r[q] *= inv;
    }
    return FF_OK;
}

float ff_contrastive_scale(const ff_model *m)
{
    if (m->cfg.projection <= 0) return 0;
    float ls = *(m->params + m->logit_scale);
    return expf(ls > FF_LOGIT_SCALE_MAX ? FF_LOGIT_SCALE_MAX : ls);
}
