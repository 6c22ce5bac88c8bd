/* The parameter table: built once from the config by walking the X-macros of internal.h,
 * so names, shapes, offsets, weight-decay flags, safetensors I/O and the tests all read the
 * same table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int add_param(ff_model *m, size_t *off, const char *prefix, const char *name, int decay,
                     int64_t rows, int64_t cols)
{
    char full[160];
    int n = snprintf(full, sizeof full, "%s%s", prefix, name);
    if (n < 0 || (size_t)n >= sizeof full)
        return ff_error(FF_EINTERNAL, "parameter name too long: %s%s", prefix, name);
    if (ff_grow(&m->tab, &m->cap_tab, m->ntab + 1, sizeof *m->tab) != FF_OK ||
        ff_grow(&m->names, &m->names_cap, m->names_len + (size_t)n + 1, 1) != FF_OK)
        return ff_error_prefix(FF_ENOMEM, "parameter table: ");
    memcpy(m->names + m->names_len, full, (size_t)n + 1);
    ff_param_info *p = &m->tab[m->ntab++];
    memset(p, 0, sizeof *p);
    p->name = (const char *)(uintptr_t)m->names_len; /* fixed up once the names stop moving */
    m->names_len += (size_t)n + 1;
    p->ndim = rows ? 2 : 1;
    p->shape[0] = rows ? rows : cols;
    p->shape[1] = rows ? cols : 0;
    p->numel = (size_t)(rows ? rows : 1) * (size_t)cols;
    /* Each tensor starts on a 16-float (64-byte) boundary so kernels see aligned rows. */
    p->offset = (m->nparams + 15) / 16 * 16;
    p->decay = decay;
    m->nparams = p->offset + p->numel;
    *off = p->offset;
    return FF_OK;
}

#define ADD(field, nm, dec, r, c)                                                                  \
    if ((rc = add_param(m, &o->field, prefix, nm, dec, r, c)) != FF_OK) return rc;

static int add_block(ff_model *m, ff_blk_off *o, const char *prefix)
{
    int rc;
    int64_t d = m->d, mm = m->m;
    FF_BLOCK_PARAMS(ADD, d, mm)
    return FF_OK;
}

static int add_xblock(ff_model *m, ff_xblk_off *o, const char *prefix)
{
    int rc;
    int64_t d = m->d, mm = m->m;
    FF_XBLOCK_PARAMS(ADD, d, mm)
    return FF_OK;
}
#undef ADD

static int add_encoder(ff_model *m, int e)
{
    static const char *const pre[3] = {"img", "txt", "ehr"};
    const ff_model_config *c = &m->cfg;
    ff_encoder *en = &m->enc[e];
    int64_t d = m->d;
    char p[64];
    int rc = FF_OK;
    snprintf(p, sizeof p, "%s.", pre[e]);
    if (e == FF_ENC_IMG) {
        int64_t pv = c->image.channels * c->image.patch * c->image.patch;
        int64_t g = c->image.size / c->image.patch;
        en->T = (int)(g * g);
        if ((rc = add_param(m, &en->emb[0], p, "patch.weight", 1, d, pv)) ||
            (rc = add_param(m, &en->emb[1], p, "patch.bias", 0, 0, d)) ||
            (rc = add_param(m, &en->emb[2], p, "pos", 0, en->T, d)))
            return rc;
    } else if (e == FF_ENC_TXT) {
        en->T = (int)c->text.length;
        if ((rc = add_param(m, &en->emb[0], p, "tok", 0, c->text.vocab, d)) ||
            (rc = add_param(m, &en->emb[1], p, "pos", 0, en->T, d)))
            return rc;
    } else {
        en->T = (int)c->ehr.length;
        if ((rc = add_param(m, &en->emb[0], p, "code", 0, c->ehr.codes, d)) ||
            (rc = add_param(m, &en->emb[1], p, "val", 0, c->ehr.values, d)) ||
            (rc = add_param(m, &en->emb[2], p, "time", 0, c->ehr.times, d)) ||
            (rc = add_param(m, &en->emb[3], p, "pos", 0, en->T, d)))
            return rc;
    }
    en->blocks = calloc((size_t)m->layers, sizeof *en->blocks);
    if (!en->blocks) return ff_error(FF_ENOMEM, "model: out of memory");
    for (int i = 0; i < m->layers; i++) {
        snprintf(p, sizeof p, "%s.blocks.%d.", pre[e], i);
        if ((rc = add_block(m, &en->blocks[i], p)) != FF_OK) return rc;
    }
    snprintf(p, sizeof p, "%s.", pre[e]);
    if ((rc = add_param(m, &en->lnf_w, p, "ln_f.weight", 0, 0, d)) ||
        (rc = add_param(m, &en->lnf_b, p, "ln_f.bias", 0, 0, d)))
        return rc;
    return FF_OK;
}

/* The tabular encoder's tensors, after the three spec encoders (only with a `tabular:`
 * section, so the spec's table is unchanged without one). */
static int add_tab_encoder(ff_model *m)
{
    ff_tab_enc *t = &m->tenc;
    int64_t d = m->d;
    t->F = m->cfg.tabular.width, t->th = m->cfg.tabular.hidden;
    int rc;
    if ((rc = add_param(m, &t->fc_w, "tab.", "fc.weight", 1, t->th, t->F)) ||
        (rc = add_param(m, &t->fc_b, "tab.", "fc.bias", 0, 0, t->th)) ||
        (rc = add_param(m, &t->pj_w, "tab.", "proj.weight", 1, d, t->th)) ||
        (rc = add_param(m, &t->pj_b, "tab.", "proj.bias", 0, 0, d)) ||
        (rc = add_param(m, &t->ln_w, "tab.", "ln_f.weight", 0, 0, d)) ||
        (rc = add_param(m, &t->ln_b, "tab.", "ln_f.bias", 0, 0, d)))
        return rc;
    return FF_OK;
}

int ff_model_build_table(ff_model *m)
{
    int rc;
    int64_t d = m->d, K = m->K, M = m->M;
    for (int e = 0; e < 3; e++)
        if ((rc = add_encoder(m, e)) != FF_OK) return rc;
    if (M == 4 && (rc = add_tab_encoder(m)) != FF_OK) return rc;
    if (m->cfg.fusion == FF_FUSION_CROSS) {
        if ((rc = add_xblock(m, &m->x_img, "fuse.x_img.")) ||
            (rc = add_xblock(m, &m->x_txt, "fuse.x_txt.")) ||
            (rc = add_param(m, &m->mod, "fuse.", "mod", 0, M, d)) ||
            (rc = add_block(m, &m->fblock, "fuse.block.")) ||
            (rc = add_param(m, &m->lnf_w, "fuse.", "ln_f.weight", 0, 0, d)) ||
            (rc = add_param(m, &m->lnf_b, "fuse.", "ln_f.bias", 0, 0, d)) ||
            (rc = add_param(m, &m->head_w, "", "head.weight", 1, K, d)) ||
            (rc = add_param(m, &m->head_b, "", "head.bias", 0, 0, K)))
            return rc;
    } else if (m->cfg.fusion == FF_FUSION_EARLY) {
        if ((rc = add_param(m, &m->efc_w, "fuse.", "mlp.fc.weight", 1, m->m, M * d + M)) ||
            (rc = add_param(m, &m->efc_b, "fuse.", "mlp.fc.bias", 0, 0, m->m)) ||
            (rc = add_param(m, &m->efp_w, "fuse.", "mlp.proj.weight", 1, d, m->m)) ||
            (rc = add_param(m, &m->efp_b, "fuse.", "mlp.proj.bias", 0, 0, d)) ||
            (rc = add_param(m, &m->head_w, "", "head.weight", 1, K, d)) ||
            (rc = add_param(m, &m->head_b, "", "head.bias", 0, 0, K)))
            return rc;
    } else {
        static const char *const hw[4] = {"head.img.weight", "head.txt.weight", "head.ehr.weight",
                                          "head.tab.weight"};
        static const char *const hb[4] = {"head.img.bias", "head.txt.bias", "head.ehr.bias",
                                          "head.tab.bias"};
        for (int e = 0; e < M; e++)
            if ((rc = add_param(m, &m->lhead_w[e], "", hw[e], 1, K, d)) ||
                (rc = add_param(m, &m->lhead_b[e], "", hb[e], 0, 0, K)))
                return rc;
        if ((rc = add_param(m, &m->fuse_w, "fuse.", "w", 0, 0, M)) != FF_OK) return rc;
    }
    /* Optional contrastive heads, after every spec tensor so the spec's offsets are unchanged. */
    if (m->cfg.projection > 0) {
        static const char *const pw[3] = {"proj.img.weight", "proj.txt.weight", "proj.ehr.weight"};
        for (int e = 0; e < 3; e++)
            if ((rc = add_param(m, &m->proj_w[e], "", pw[e], 1, m->cfg.projection, d)) != FF_OK)
                return rc;
        if ((rc = add_param(m, &m->logit_scale, "", "logit_scale", 0, 0, 1)) != FF_OK) return rc;
    }
    for (size_t i = 0; i < m->ntab; i++)
        m->tab[i].name = m->names + (uintptr_t)m->tab[i].name;
    m->nparams = (m->nparams + 15) / 16 * 16;
    return FF_OK;
}

size_t ff_model_ntensors(const ff_model *m)
{
    return m->ntab;
}

const ff_param_info *ff_model_tensor(const ff_model *m, size_t i)
{
    return i < m->ntab ? &m->tab[i] : NULL;
}

const ff_param_info *ff_model_find(const ff_model *m, const char *name)
{
    for (size_t i = 0; i < m->ntab; i++)
        if (strcmp(m->tab[i].name, name) == 0) return &m->tab[i];
    return NULL;
}

size_t ff_model_nparams(const ff_model *m)
{
    return m->nparams;
}
float *ff_model_params(ff_model *m)
{
    return m->params;
}
float *ff_model_grads(ff_model *m)
{
    return m->grads;
}
const ff_model_config *ff_model_cfg(const ff_model *m)
{
    return &m->cfg;
}
int ff_model_max_batch(const ff_model *m)
{
    return m->max_batch;
}

void ff_model_zero_grad(ff_model *m)
{
    ff_zerof(m->grads, m->nparams);
}

static int is_layernorm_weight(const char *name)
{
    size_t n = strlen(name);
    return n > 7 && strcmp(name + n - 7, ".weight") == 0 &&
           (strstr(name, "ln1.") || strstr(name, "ln2.") || strstr(name, "ln_f.") ||
            strstr(name, "ln_q.") || strstr(name, "ln_kv."));
}

int ff_model_init_std(ff_model *m, uint64_t seed, float std)
{
    memset(m->params, 0, m->nparams * sizeof(float));
    for (size_t i = 0; i < m->ntab; i++) {
        const ff_param_info *p = &m->tab[i];
        float *w = m->params + p->offset;
        if (is_layernorm_weight(p->name)) {
            for (size_t j = 0; j < p->numel; j++)
                w[j] = 1.0f;
        } else if (p->ndim == 2 || strcmp(p->name, "fuse.w") == 0) {
            /* One Philox stream per tensor: values do not depend on table order or threads. */
            ff_rng r;
            ff_rng_init(&r, seed, 0x1000 + i);
            ff_rng_normal_fill(&r, w, p->numel, 0.0f, std);
        } else if (strcmp(p->name, "logit_scale") == 0) {
            w[0] = logf(1.0f / 0.07f); /* CLIP's initial temperature */
        } /* biases and LayerNorm biases stay 0 */
    }
    return FF_OK;
}

int ff_model_init(ff_model *m, uint64_t seed)
{
    return ff_model_init_std(m, seed, 0.02f);
}

int ff_model_load(ff_model *m, const char *path)
{
    ff_safetensors *st = NULL;
    int rc = ff_safetensors_open(&st, path);
    if (rc != FF_OK) return rc;
    for (size_t i = 0; i < m->ntab && rc == FF_OK; i++) {
        const ff_param_info *p = &m->tab[i];
        if (!ff_safetensors_find(st, p->name)) {
            rc = ff_error(FF_ENOTFOUND, "%s: missing parameter tensor '%s'", path, p->name);
            break;
        }
        rc = ff_safetensors_read(st, p->name, FF_DT_F32, p->ndim, p->shape, m->params + p->offset);
        if (rc != FF_OK) break;
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(m->params[p->offset + j])) {
                rc = ff_error(FF_ENUMERIC, "%s: tensor '%s' index %zu is not finite", path, p->name,
                              j);
                break;
            }
    }
    ff_safetensors_close(st);
    return rc;
}

int ff_model_save(const ff_model *m, const char *path)
{
    ff_st_writer *w = NULL;
    int rc = ff_st_writer_new(&w);
    if (rc != FF_OK) return rc;
    for (size_t i = 0; i < m->ntab && rc == FF_OK; i++) {
        const ff_param_info *p = &m->tab[i];
        rc = ff_st_writer_add(w, p->name, FF_DT_F32, p->ndim, p->shape, m->params + p->offset);
    }
    if (rc == FF_OK) rc = ff_st_writer_meta(w, "config", m->cfg.name);
    if (rc == FF_OK) rc = ff_st_writer_meta(w, "fusion", ff_fusion_name(m->cfg.fusion));
    if (rc == FF_OK) rc = ff_st_writer_save(w, path);
    ff_st_writer_free(w);
    return rc;
}
