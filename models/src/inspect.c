/* Read-only views of the last forward for explanations (fedfuse explain): the pooled fused
 * vector and the attention each key token received. Nothing here writes to the model.
 *
 * The attention weights are recomputed for the one sample asked for from the projections the
 * forward saves for backward (q/k of each block, packed rows as ff_rowmap describes them):
 * softmax(q·k / sqrt(hd)) over the valid keys, exactly the kernel's definition. Reading the
 * saved probabilities instead would tie this file to the kernel's private row stride (which
 * the speed work is free to change); the recomputation costs O(H·Tq·Tk·hd) for one sample. */
#include <math.h>
#include <string.h>

#include "internal.h"

const float *ff_model_fused(const ff_model *m)
{
    return m->cfg.fusion == FF_FUSION_LATE ? NULL : m->z;
}

int ff_model_fused_width(const ff_model *m) { return m->d; }

/* Last valid key + 1 within klen (keys past it are never computed). */
static int key_extent(const uint8_t *mask, int klen)
{
    if (!mask)
        return klen;
    int e = klen;
    while (e > 0 && !mask[e - 1])
        e--;
    return e;
}

/* One sample's attention: queries Q (qlen rows, stride ldq), keys K (te rows, stride ldk),
 * head j in columns j*hd. out[k] += mean over heads and valid queries (qmask NULL = all) of
 * the softmax weight of key k (kmask NULL = all valid; masked keys weigh 0). */
static void received(const float *Q, int ldq, int qlen, const uint8_t *qmask, const float *K,
                     int ldk, int te, const uint8_t *kmask, int H, int hd, float *out)
{
    const double scale = 1.0 / sqrt((double)hd);
    double s[1024];
    int nq = 0;
    for (int h = 0; h < H; h++)
        for (int q = 0; q < qlen; q++) {
            if (qmask && !qmask[q])
                continue;
            nq++;
            double mx = -INFINITY, z = 0;
            for (int k = 0; k < te; k++) {
                if (kmask && !kmask[k])
                    continue;
                double dot = 0;
                const float *a = Q + (size_t)q * ldq + h * hd, *b = K + (size_t)k * ldk + h * hd;
                for (int c = 0; c < hd; c++)
                    dot += (double)a[c] * (double)b[c];
                s[k] = dot * scale;
                mx = fmax(mx, s[k]);
            }
            for (int k = 0; k < te; k++)
                if (!kmask || kmask[k])
                    z += (s[k] = exp(s[k] - mx));
            for (int k = 0; k < te; k++)
                if (!kmask || kmask[k])
                    out[k] += (float)(s[k] / z);
        }
    for (int k = 0; k < te && nq; k++)
        out[k] /= (float)nq;
}

int ff_model_attention_received(const ff_model *m, int view, int b, float *out, int cap)
{
    if (b < 0 || b >= m->B || !out || cap <= 0)
        return 0;
    const ff_rowmap *qr, *kr;
    const float *Q, *K;
    int ldq, ldk, d = m->d;
    if (view == FF_ATTN_IMG_TXT || view == FF_ATTN_TXT_EHR) {
        if (m->cfg.fusion != FF_FUSION_CROSS)
            return 0;
        int qe = view == FF_ATTN_IMG_TXT ? FF_ENC_IMG : FF_ENC_TXT;
        const ff_xblk_act *a = view == FF_ATTN_IMG_TXT ? &m->ax_img : &m->ax_txt;
        qr = &m->enc[qe].rows, kr = &m->enc[qe + 1].rows;
        Q = a->q, ldq = d, K = a->kv, ldk = 2 * d;
    } else if (view >= FF_ATTN_IMG_SELF && view <= FF_ATTN_EHR_SELF) {
        int e = view - FF_ATTN_IMG_SELF;
        const ff_blk_act *a = &m->enc[e].act[m->layers - 1];
        qr = kr = &m->enc[e].rows;
        Q = a->qkv, ldq = 3 * d, K = a->qkv + d, ldk = 3 * d;
    } else {
        return 0;
    }
    const uint8_t *kmask = kr->mask ? kr->mask + (size_t)b * kr->T : NULL;
    const uint8_t *qmask = qr->mask ? qr->mask + (size_t)b * qr->T : NULL;
    int te = key_extent(kmask, kr->len[b]), qlen = qr->len[b];
    if (te == 0 || qlen == 0 || te > cap || te > 1024)
        return 0;
    memset(out, 0, (size_t)cap * sizeof *out);
    received(Q + (size_t)qr->off[b] * ldq, ldq, qlen, qmask, K + (size_t)kr->off[b] * ldk, ldk,
             te, kmask, m->H, m->hd, out);
    return te;
}

int ff_model_modality_attention(const ff_model *m, int b, float out[3])
{
    if (m->cfg.fusion != FF_FUSION_CROSS || b < 0 || b >= m->B || m->M != 3)
        return 0;
    /* The fusion block: M tokens per sample (rows Mb..Mb+M-1), absent modalities masked as
     * keys and left out as queries. */
    int M = m->M;
    const uint8_t *pres = m->pres + (size_t)b * M;
    const float *qkv = m->afb.qkv + (size_t)b * M * 3 * m->d;
    memset(out, 0, 3 * sizeof *out);
    int te = key_extent(pres, M);
    if (te == 0)
        return 0;
    received(qkv, 3 * m->d, M, pres, qkv + m->d, 3 * m->d, te, pres, m->H, m->hd, out);
    return M;
}
