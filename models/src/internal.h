/* Private layout of the model: the parameter table (declared once, by the X-macros below)
 * and the activation buffers. */
#ifndef FF_MODELS_INTERNAL_H
#define FF_MODELS_INTERNAL_H

#include "ff/models.h"

/* A Block's parameters: X(field, name, decay, rows, cols); rows 0 = 1-D of cols.
 * Order is the spec's and PyTorch's module order. d = width, m = mlp. */
#define FF_BLOCK_PARAMS(X, d, m)                                                                   \
    X(ln1_w, "ln1.weight", 0, 0, d)                                                                \
    X(ln1_b, "ln1.bias", 0, 0, d)                                                                  \
    X(qkv_w, "attn.qkv.weight", 1, 3 * (d), d)                                                     \
    X(qkv_b, "attn.qkv.bias", 0, 0, 3 * (d))                                                       \
    X(proj_w, "attn.proj.weight", 1, d, d)                                                         \
    X(proj_b, "attn.proj.bias", 0, 0, d)                                                           \
    X(ln2_w, "ln2.weight", 0, 0, d)                                                                \
    X(ln2_b, "ln2.bias", 0, 0, d)                                                                  \
    X(fc_w, "mlp.fc.weight", 1, m, d)                                                              \
    X(fc_b, "mlp.fc.bias", 0, 0, m)                                                                \
    X(fp_w, "mlp.proj.weight", 1, d, m)                                                            \
    X(fp_b, "mlp.proj.bias", 0, 0, d)

/* A CrossBlock's parameters. */
#define FF_XBLOCK_PARAMS(X, d, m)                                                                  \
    X(lnq_w, "ln_q.weight", 0, 0, d)                                                               \
    X(lnq_b, "ln_q.bias", 0, 0, d)                                                                 \
    X(lnkv_w, "ln_kv.weight", 0, 0, d)                                                             \
    X(lnkv_b, "ln_kv.bias", 0, 0, d)                                                               \
    X(q_w, "attn.q.weight", 1, d, d)                                                               \
    X(q_b, "attn.q.bias", 0, 0, d)                                                                 \
    X(kv_w, "attn.kv.weight", 1, 2 * (d), d)                                                       \
    X(kv_b, "attn.kv.bias", 0, 0, 2 * (d))                                                         \
    X(proj_w, "attn.proj.weight", 1, d, d)                                                         \
    X(proj_b, "attn.proj.bias", 0, 0, d)                                                           \
    X(ln2_w, "ln2.weight", 0, 0, d)                                                                \
    X(ln2_b, "ln2.bias", 0, 0, d)                                                                  \
    X(fc_w, "mlp.fc.weight", 1, m, d)                                                              \
    X(fc_b, "mlp.fc.bias", 0, 0, m)                                                                \
    X(fp_w, "mlp.proj.weight", 1, d, m)                                                            \
    X(fp_b, "mlp.proj.bias", 0, 0, d)

#define FF_ENUM_FIELD(f, n, dec, r, c) f,
typedef struct {
    size_t FF_BLOCK_PARAMS(FF_ENUM_FIELD, 0, 0) end_;
} ff_blk_off;
typedef struct {
    size_t FF_XBLOCK_PARAMS(FF_ENUM_FIELD, 0, 0) end_;
} ff_xblk_off;

/* Saved activations of one self-attention Block over N = B*T rows. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *probs, *att, *xmid, *ln2, *ln2_mean, *ln2_rstd, *fc,
        *gelu, *out;
} ff_blk_act;

/* Saved activations of one CrossBlock: queries N = B*Tq rows, context Nc = B*Tc rows. */
typedef struct {
    float *lnq, *lnq_mean, *lnq_rstd, *lnkv, *lnkv_mean, *lnkv_rstd, *q, *kv, *probs, *att, *xmid,
        *ln2, *ln2_mean, *ln2_rstd, *fc, *gelu, *out;
} ff_xblk_act;

enum { FF_ENC_IMG = 0, FF_ENC_TXT = 1, FF_ENC_EHR = 2 };

/* Which rows of a packed (R, d) activation belong to which sample: sample b owns rows
 * off[b] .. off[b]+len[b]-1, its tokens 0 .. len[b]-1. Text and EHR rows past a sample's
 * last valid token are never computed: no loss or gradient depends on them (they are masked
 * as keys and never pooled), so skipping them changes no value the model returns. */
typedef struct {
    int *off, *len;
    int R;               /* total rows */
    int T;               /* tokens per sample before packing */
    const uint8_t *mask; /* [B,T] key/pooling mask (1 = valid), NULL = all valid */
} ff_rowmap;

typedef struct {
    int T;              /* tokens */
    ff_rowmap rows;     /* packing of the current batch */
    int32_t *pid[3];    /* packed ids (txt: tok; ehr: code, val, time) [R] */
    int32_t *pidx;      /* packed position of each row [R] */
    size_t emb[4];      /* img: patch_w, patch_b, pos; txt: tok, pos; ehr: code,val,time,pos */
    ff_blk_off *blocks; /* [layers] */
    size_t lnf_w, lnf_b;
    /* activations */
    float *in;                      /* img: patches [N, C*P*P]; else unused */
    float *x0;                      /* embeddings [N,d] */
    ff_blk_act *act;                /* [layers] */
    float *h, *lnf_mean, *lnf_rstd; /* encoder output H [N,d] */
    float *pooled;                  /* [B,d] (masked mean of H) */
} ff_encoder;

/* A parameter-gradient operation of the backward, kept by the ghost norm pass for book-keeping
 * (Bu et al. 2023): once the clip factors s_i are known, the clipped sum Σ_i s_i g_i is each
 * op replayed with its output-gradient rows scaled by their example's s_i, with no second
 * backward. dy is a copy (the backward reuses its scratch); x, statistics, ids and rowmaps
 * are the forward's, valid until the next forward. */
typedef struct {
    int kind;                     /* FF_GOP_LINEAR, _LAYERNORM, _EMBEDDING, _ROWS */
    size_t w_off, b_off;          /* parameter offsets (b_off: LINEAR, LAYERNORM) */
    const float *x, *mean, *rstd; /* input rows (LINEAR, LAYERNORM), LayerNorm statistics */
    const int32_t *ids;           /* EMBEDDING */
    const ff_rowmap *rm;
    size_t dy;                    /* offset of the output-gradient copy in ff_ghost.tape */
    int in, out;                  /* widths (in: LINEAR only) */
} ff_ghost_op;
enum { FF_GOP_LINEAR, FF_GOP_LAYERNORM, FF_GOP_EMBEDDING, FF_GOP_ROWS };

/* Ghost clipping's per-example norm pass (models/src/ghost.c): while ff_model.ghost is set,
 * the backward computes activation gradients as usual but, instead of adding parameter
 * gradients into m->grads, adds each example's squared parameter-gradient norm into sq[i],
 * layer by layer (the table in docs/privacy.md). Scratch sized once for the model. */
typedef struct {
    double *sq;     /* [B] per-example squared norms being accumulated */
    int policy;     /* FF_GHOST_AUTO / _GRAM / _MATERIALISE (ff_model_set_ghost_policy) */
    ff_rowmap unit; /* one row per example: off = i, len = 1 (heads, early/late fusion) */
    /* per worker thread t (ff_ghost_linear runs examples in parallel): slice t of each */
    int nth;                                /* worker slices allocated */
    size_t ga_ld, mat_ld, vec_ld;           /* slice sizes of ga/gg, mat, vec */
    float *ga, *gg; /* [nth][Tmax*Tmax] Gram matrices A_i A_iᵀ and G_i G_iᵀ */
    float *mat;     /* [nth][max in*out] one example's materialised weight gradient */
    float *vec;     /* [nth][2*max width] bias column sums, layernorm dw|db of one example */
    float *sink;    /* [2*max width] where layernorm backward's batched dw|db go (unused) */
    int *slot;      /* [max vocab] embedding id -> slot of the example, -1 = none */
    float *rows;    /* [Tmax*d] embedding gradient rows grouped by id */
    long long layers_gram, layers_mat; /* (example, layer) pairs handled each way */
    double *by_tensor; /* [B * ntab] per-tensor breakdown of sq, or NULL (tests, per-layer) */
    float *fw;         /* [max_batch * M] late fusion: each example's gradient of fuse.w */
    float *scale;      /* [max_batch] clip factors of the book-keeping replay */
    int record;        /* keep the ops for book-keeping */
    ff_ghost_op *ops;
    size_t nops, cap_ops;
    float *tape; /* output-gradient copies of the recorded ops */
    size_t tape_len, tape_cap;
    int oom;     /* recording ran out of memory (the clipped sum fails cleanly) */
} ff_ghost;

/* The tabular encoder (cfg.tabular.n > 0): the encoded row x [B,F] → fc [B,th] → GELU →
 * proj [B,d] → LayerNorm = the fourth modality's token. */
typedef struct {
    int F, th;                               /* input and hidden widths */
    size_t fc_w, fc_b, pj_w, pj_b, ln_w, ln_b; /* parameter offsets */
    float *x, *fc, *gelu, *pj, *ln_mean, *ln_rstd, *pooled; /* [B,F] [B,th]² [B,d] [B]² [B,d] */
    float *dpj, *dgl, *dfc;                  /* backward scratch [B,d], [B,th], [B,th] */
} ff_tab_enc;

struct ff_model {
    ff_model_config cfg;
    int max_batch, d, m, H, hd, K, layers;
    int M; /* modalities: 3 (image, text, EHR), 4 with the tabular one */
    ff_tab_enc tenc;
    /* parameter table */
    ff_param_info *tab;
    size_t ntab, cap_tab;
    char *names; /* all names, NUL-separated */
    size_t names_len, names_cap;
    size_t nparams;
    float *params, *grads;
    /* layout */
    ff_encoder enc[3];
    ff_xblk_off x_img, x_txt;              /* cross */
    size_t mod, lnf_w, lnf_b;              /* cross */
    ff_blk_off fblock;                     /* cross */
    size_t head_w, head_b;                 /* cross, early */
    size_t efc_w, efc_b, efp_w, efp_b;     /* early */
    size_t lhead_w[4], lhead_b[4], fuse_w; /* late */
    size_t proj_w[3], logit_scale;         /* contrastive heads (cfg.projection > 0) */
    /* activations (one arena, sized once) */
    ff_arena arena;
    int B;                         /* batch of the last forward */
    uint8_t *tmask, *emask, *pres; /* [B,Lt], [B,Le], [B,M] */
    uint8_t *tpres, *epres;        /* [B] per-sample context presence */
    ff_xblk_act ax_img, ax_txt;
    float *F;                          /* [B,3,d] fused tokens = pooled + mod */
    float *Fpool;                      /* [B,3,d] pooled (explanations) */
    ff_blk_act afb;                    /* fusion block */
    ff_rowmap frows;                   /* fusion tokens: 3 per sample, mask = presence */
    float *fh, *flnf_mean, *flnf_rstd; /* [B*3,d] */
    float *z;                          /* [B,d] pooled fused (cross) or MLP out (early) */
    float *ecat, *efc, *egelu;         /* early: [B,3d+3], [B,m], [B,m] */
    float *llog;                       /* late: per-modality logits [3,B,K] */
    float *lw;                         /* late: weights [B,3] */
    float *logits;                     /* [B,K] */
    /* backward scratch */
    float *dR1, *dR2, *dXM, *dX2, *dX3, *dAtt, *dH4, *dQKV, *dS, *ln_scratch;
    float *dEnc[3];                         /* d H for each encoder [B*T,d] */
    float *dPool;                           /* [3,B,d] */
    float *dF, *dfh, *dfo;                  /* [B*3,d] */
    float *dz, *dlogits, *dcat, *dfc, *dgl; /* [B,d], [B,K], [B,3d+3], [B,m], [B,m] */
    float *dllog;                           /* late: [3,B,K] */
    ff_ghost *ghost;     /* set only during the ghost norm pass */
    ff_ghost *ghost_buf; /* its scratch, allocated on first use, owned */
    int ghost_policy;
};

/* The backward below the loss: from m->dlogits (filled by the caller) for the batch of the
 * last forward. ff_model_backward = BCE backward + this. */
void ff_model_backward_core(ff_model *m);

/* Ghost norm hooks (models/src/ghost.c), called by the backward while m->ghost is set. Each
 * adds, for every example i of the rowmap, the squared norm of example i's gradient of that
 * layer's parameters (table offsets w_off, b_off) into m->ghost->sq[i]. */
/* Linear y = x Wᵀ + b over rows x (N,in), dy (N,out): ‖G_iᵀA_i‖²_F + ‖Σ_t g_t‖². */
void ff_ghost_linear(ff_model *m, size_t w_off, size_t b_off, const float *x, const float *dy,
                     const ff_rowmap *rm, int in, int out);
/* LayerNorm weight and bias (width d): ‖Σ_t g_t ⊙ x̂_t‖² + ‖Σ_t g_t‖². */
void ff_ghost_layernorm(ff_model *m, size_t w_off, size_t b_off, const float *dy, const float *x,
                        const float *mean, const float *rstd, const ff_rowmap *rm, int d);
/* Embedding table rows named by ids[r]: Σ over distinct ids v of ‖Σ_{t: id_t = v} g_t‖². */
void ff_ghost_embedding(ff_model *m, size_t off, const float *dy, const int32_t *ids,
                        const ff_rowmap *rm, int d);
/* A parameter whose gradient rows are the example's rows of v, each row a distinct parameter
 * row (positions, the modality embedding): Σ_t ‖v_t‖². */
void ff_ghost_rows(ff_model *m, size_t off, const float *v, const ff_rowmap *rm, int d);
/* Adds v to example i's squared norm (a parameter at offset off handled by the caller). */
void ff_ghost_add(ff_model *m, int i, size_t off, double v);
void ff_ghost_free(ff_ghost *g);

/* Pointer to a parameter / gradient at a table offset. */
#define PW(m, off) ((m)->params + (off))
#define GW(m, off) ((m)->grads + (off))

int ff_model_build_table(ff_model *m) FF_WARN_UNUSED;
int ff_model_alloc_acts(ff_model *m) FF_WARN_UNUSED;
void ff_model_mask_batch(ff_model *m, const ff_batch *b);
/* memcpy / memset of n floats, split over the pool when large. */
void ff_copyf(float *dst, const float *src, size_t n);
void ff_zerof(float *dst, size_t n);
/* Batch dimensions against the config and max_batch, arrays present (no values read). */
int ff_model_check_dims(const ff_model *m, const ff_batch *b) FF_WARN_UNUSED;

/* Wider vectors where the CPU has them: one binary for every x86-64, the loader picks. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define FF_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), noinline))
#else
#define FF_CLONES
#endif

#endif
