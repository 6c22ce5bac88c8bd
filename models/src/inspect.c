/* Read-only views of the last forward for explanations (fedfuse explain): the pooled fused
 * vector and the attention each key token received. Nothing here writes to the model; it only
 * reads the activations model.c saves for backward, so it costs no extra work in training. */
#include <string.h>

#include "internal.h"

const float *ff_model_fused(const ff_model *m)
{
    return m->cfg.fusion == FF_FUSION_LATE ? NULL : m->z;
}

int ff_model_fused_width(const ff_model *m) { return m->d; }

/* Last valid key + 1 within klen (the kernel's row stride for pld 0). */
static int key_extent(const uint8_t *mask, int klen)
{
    if (!mask)
        return klen;
    int e = klen;
    while (e > 0 && !mask[e - 1])
        e--;
    return e;
}

/* Mean over heads and valid query rows (qmask NULL = all) of probs [H, qlen, te] (row
 * stride te) into out[0..te). Padding rows inside a note or record are computed by the
 * kernel as queries but are not tokens of the patient, so they are left out. */
static void mean_received(const float *probs, size_t pstride, int b, int H, int qlen,
                          const uint8_t *qmask, int te, float *out)
{
    int nq = 0;
    for (int h = 0; h < H; h++) {
        const float *P = probs + ((size_t)b * H + h) * pstride;
        for (int q = 0; q < qlen; q++) {
            if (qmask && !qmask[q])
                continue;
            nq++;
            for (int k = 0; k < te; k++)
                out[k] += P[(size_t)q * te + k];
        }
    }
    float inv = nq ? 1.0f / (float)nq : 0.0f;
    for (int k = 0; k < te; k++)
        out[k] *= inv;
}

int ff_model_attention_received(const ff_model *m, int view, int b, float *out, int cap)
{
    if (b < 0 || b >= m->B || !out || cap <= 0)
        return 0;
    const ff_rowmap *qr, *kr;
    const float *probs;
    size_t pstride;
    const uint8_t *kmask;
    int ktok;
    if (view == FF_ATTN_IMG_TXT || view == FF_ATTN_TXT_EHR) {
        if (m->cfg.fusion != FF_FUSION_CROSS)
            return 0;
        int qe = view == FF_ATTN_IMG_TXT ? FF_ENC_IMG : FF_ENC_TXT;
        qr = &m->enc[qe].rows, kr = &m->enc[qe + 1].rows;
        probs = view == FF_ATTN_IMG_TXT ? m->ax_img.probs : m->ax_txt.probs;
        pstride = (size_t)qr->T * kr->T;
    } else if (view >= FF_ATTN_IMG_SELF && view <= FF_ATTN_EHR_SELF) {
        int e = view - FF_ATTN_IMG_SELF;
        qr = kr = &m->enc[e].rows;
        probs = m->enc[e].act[m->layers - 1].probs;
        pstride = (size_t)kr->T * kr->T;
    } else {
        return 0;
    }
    ktok = kr->T;
    kmask = kr->mask ? kr->mask + (size_t)b * ktok : NULL;
    const uint8_t *qmask = qr->mask ? qr->mask + (size_t)b * qr->T : NULL;
    int te = key_extent(kmask, kr->len[b]), qlen = qr->len[b];
    if (te == 0 || qlen == 0)
        return 0;
    if (te > cap)
        return 0;
    memset(out, 0, (size_t)cap * sizeof *out);
    mean_received(probs, pstride, b, m->H, qlen, qmask, te, out);
    return te;
}

int ff_model_modality_attention(const ff_model *m, int b, float out[3])
{
    if (m->cfg.fusion != FF_FUSION_CROSS || b < 0 || b >= m->B)
        return 0;
    /* The fusion block runs with pld 3: probs [B,H,3,3], absent keys weigh 0. */
    const float *P = m->afb.probs;
    const uint8_t *pres = m->pres + (size_t)b * 3;
    int nq = 0;
    memset(out, 0, 3 * sizeof *out);
    for (int h = 0; h < m->H; h++)
        for (int q = 0; q < 3; q++) {
            if (!pres[q])
                continue;
            for (int k = 0; k < 3; k++)
                out[k] += P[(((size_t)b * m->H + h) * 3 + q) * 3 + k];
            nq++;
        }
    if (nq == 0)
        return 0;
    for (int k = 0; k < 3; k++)
        out[k] /= (float)nq;
    return 3;
}
