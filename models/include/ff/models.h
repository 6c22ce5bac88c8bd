/*
 * ff/models.h — the multimodal fusion transformer of ../shared/spec/model.md, its kernels
 * (forward/backward pairs over OpenBLAS), its optimizers and its checkpoints.
 *
 * Usage:
 *
 *     ff_model_config cfg;
 *     if (ff_model_config_load("configs/model-base.yaml", &cfg) != FF_OK) ...  // names key
 *     ff_model *m = NULL;
 *     if (ff_model_new(&m, &cfg, 32) != FF_OK) ...           // activations sized once
 *     ff_model_init(m, 42);                                  // or ff_model_load(m,
 * "w.safetensors") ff_optim_config oc; ff_optim_config_default(&oc); ff_optim *opt = NULL;
 * ff_optim_new(&opt, m, &oc); for (int64_t step = 0; step < total; step++) { float loss;
 *         // batch: an ff_batch from data/ (ff_model_check_batch first when untrusted)
 *         if (ff_model_train_step(m, opt, &batch, step, total, &loss) != FF_OK) ...
 *     }
 *     ff_model_save(m, "w.safetensors");
 *     ff_optim_free(opt); ff_model_free(m);
 *
 * Parameters, gradients and optimizer moments are each one contiguous float buffer; one
 * table (name, shape, offset) describes them (ff_model_tensor), names exactly as the spec.
 * Threads: ff_models_set_threads(n) sets the one OpenMP pool used for every kernel; OpenBLAS
 * itself is kept single-threaded and large GEMMs are split across that pool, so results are
 * bit-identical for a given seed, data and thread count.
 */
#ifndef FF_MODELS_H
#define FF_MODELS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "ff/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Configuration                                                                             */
/* ---------------------------------------------------------------------------------------- */

typedef enum { FF_FUSION_CROSS = 0, FF_FUSION_EARLY = 1, FF_FUSION_LATE = 2 } ff_fusion_mode;

/* Mirrors the keys of configs/model-*.yaml (int64_t because the YAML loader writes those). */
typedef struct {
    char name[64];
    int64_t width;  /* d */
    int64_t heads;  /* h; width % heads == 0 */
    int64_t mlp;    /* m */
    int64_t layers; /* blocks per encoder */
    int fusion;     /* ff_fusion_mode */
    int64_t tasks;  /* K: label and logit columns, the declared tasks' widths added up */
    struct {
        int64_t size, channels, patch; /* size % patch == 0 */
    } image;
    struct {
        int64_t length, vocab;
    } text;
    struct {
        int64_t length, codes, values, times;
    } ehr;
    int64_t projection; /* contrastive heads' width p (0 = none, the spec's model) */
    /* The declared tasks (`tasks: [{name, kind, label, ...}]`), or K binary emergency-
     * department tasks for `tasks: K` (ff_task_set_ed). Loss per kind: docs/model.md. */
    ff_task_set task_set;
    ff_cfg_list task_list; /* the loader's list (freed before load returns) */
    /* The optional tabular modality (`tabular:` section; tabular.n = 0 when absent, and the
     * model is then exactly the spec's three-modality one). docs/model.md. */
    ff_feature_set tabular;
    struct {
        int norm;             /* ff_feature_norm */
        int64_t hidden;       /* encoder hidden width */
        ff_cfg_list features; /* the loader's list (freed before load returns) */
    } tabular_yaml;
} ff_model_config;

/* The schema the loader walks (`tabular:` and `tasks:` included). */
const ff_cfg_field *ff_model_config_schema(void);
/* Loads and validates a model config (unknown keys, ranges, width % heads, size % patch):
 * errors name FILE:LINE:COL and the key. */
int ff_model_config_load(const char *path, ff_model_config *cfg) FF_WARN_UNUSED;
/* As load, from a string (name used in messages). */
int ff_model_config_load_str(const char *name, const char *yaml, size_t len,
                             ff_model_config *cfg) FF_WARN_UNUSED;
/* Built-in configs "fusion-base" (the spec) and "fusion-tiny"; FF_ENOTFOUND otherwise. */
int ff_model_config_default(ff_model_config *cfg, const char *name) FF_WARN_UNUSED;
/* Checks the divisibility and positivity rules; errors name the key. */
int ff_model_config_validate(const ff_model_config *cfg) FF_WARN_UNUSED;
const char *ff_fusion_name(int fusion);

/* ---------------------------------------------------------------------------------------- */
/* The model                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct ff_model ff_model;

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
    size_t offset, numel; /* in floats, into params / grads / moments */
    int decay;            /* 1 for Linear weights (AdamW weight decay applies) */
} ff_param_info;

/* Allocates parameters, gradients and every activation for batches up to max_batch, once.
 * Parameters start at zero (call ff_model_init or ff_model_load). Caller owns *out. */
int ff_model_new(ff_model **out, const ff_model_config *cfg, int max_batch) FF_WARN_UNUSED;
void ff_model_free(ff_model *m);
const ff_model_config *ff_model_cfg(const ff_model *m);
int ff_model_max_batch(const ff_model *m);
size_t ff_model_nparams(const ff_model *m);
/* Bytes of the activation and scratch arena (sized once by ff_model_new). */
size_t ff_model_activation_bytes(const ff_model *m);
float *ff_model_params(ff_model *m);
float *ff_model_grads(ff_model *m);
size_t ff_model_ntensors(const ff_model *m);
/* Tensor i of the table, in spec order; NULL when i is out of range. */
const ff_param_info *ff_model_tensor(const ff_model *m, size_t i);
/* NULL when absent. */
const ff_param_info *ff_model_find(const ff_model *m, const char *name);

/* Deterministic init from seed (Philox, one stream per tensor): Linear weights, embeddings,
 * pos and mod ~ N(0, std) with std 0.02, biases 0, LayerNorm weight 1 / bias 0. */
int ff_model_init(ff_model *m, uint64_t seed) FF_WARN_UNUSED;
/* As init with another std for every random tensor (golden files use 0.1). */
int ff_model_init_std(ff_model *m, uint64_t seed, float std) FF_WARN_UNUSED;
/* Loads every parameter by name (extra tensors ignored); errors name the tensor and the
 * expected and found shape/dtype. On error the parameters may be partly overwritten. */
int ff_model_load(ff_model *m, const char *path) FF_WARN_UNUSED;
int ff_model_save(const ff_model *m, const char *path) FF_WARN_UNUSED;

/* Partial loading by parameter name (pre-trained encoders into a larger model, weights
 * converted from elsewhere as safetensors with our names): every model tensor whose name is
 * in the file with the same shape and dtype F32 is loaded; the others keep their current
 * values (call ff_model_init first); file tensors not in the model, or of another shape or
 * dtype, are ignored. The report lists every tensor with what happened and why. Errors: the
 * file (ff_safetensors_open's messages), a non-finite value (names the tensor and index), no
 * tensor loaded at all (FF_ENOTFOUND). On error the parameters are untouched and the report
 * is empty. Free the report with ff_model_load_report_free. */
enum { FF_LOAD_LOADED = 0, FF_LOAD_KEPT = 1, FF_LOAD_IGNORED = 2 };
typedef struct {
    int what; /* FF_LOAD_* */
    char name[160];
    char why[200]; /* kept / ignored: "not in the file", "shape [..] in the file, [..] in the model" */
} ff_model_load_item;
typedef struct {
    size_t loaded, kept, ignored;      /* tensors */
    size_t loaded_values, kept_values; /* floats */
    ff_model_load_item *items;         /* model tensors in table order, then ignored ones */
    size_t nitems, cap;
} ff_model_load_report;
int ff_model_load_partial(ff_model *m, const char *path, ff_model_load_report *r) FF_WARN_UNUSED;
void ff_model_load_report_free(ff_model_load_report *r);
/* The summary line, tensor groups loaded and kept (by first name component), and one line
 * per tensor kept for a mismatch or ignored, with the reason. */
void ff_model_load_report_print(const ff_model_load_report *r, const char *path, FILE *out);

/* Checks a batch against the config: dimensions, ids within each vocabulary, finite floats,
 * image_present and label_mask in {0,1}, at least one modality per sample. Errors name the
 * tensor and the flat index (and sample). Never reads out of bounds. */
int ff_model_check_batch(const ff_model *m, const ff_batch *b) FF_WARN_UNUSED;

/* Forward over b (B <= max_batch), saving what backward needs. logits [B,K] and loss may be
 * NULL. loss = sum(label_mask * BCE) / sum(label_mask) (0 when the mask is all zero; a NULL
 * label_mask means all ones, which is the spec's mean over batch and tasks). The batch is
 * trusted: call ff_model_check_batch for untrusted data. FF_EINVAL for a sample with no
 * modality present. */
int ff_model_forward(ff_model *m, const ff_batch *b, float *logits, float *loss) FF_WARN_UNUSED;
/* After forward on the same batch: adds d loss / d params into the gradient buffer. */
int ff_model_backward(ff_model *m, const ff_batch *b) FF_WARN_UNUSED;
void ff_model_zero_grad(ff_model *m);

/* Reads the spec's model inputs (image [B,C,S,S] F32, image_present [B] F32, text_ids
 * [B,Lt] I32, ehr_code/ehr_val/ehr_time [B,Le] I32, labels [B,K] F32, optional label_mask
 * [B,K] F32; with a `tabular:` section also tabular [B,F] F32 and tabular_present [B] F32)
 * from a safetensors file into a freshly allocated batch (free with
 * ff_batch_free). Checks presence, dtype and shape against the config (errors name the
 * tensor); values are checked by ff_model_check_batch. On error nothing is allocated. */
int ff_model_read_inputs(const ff_model_config *cfg, const char *path, ff_batch *b) FF_WARN_UNUSED;
/* Writes logits [B,K], loss [1] and, when with_grads, grad.<name> for every parameter in
 * table order, atomically. */
int ff_model_write_outputs(const ff_model *m, const char *path, const float *logits, int B,
                           float loss, int with_grads) FF_WARN_UNUSED;

/* Explanations of the last forward: pooled per-modality vectors F [B,M,d] (before `mod` is
 * added; zeros for an absent text/EHR; M = 3, or 4 with the tabular modality last) and, for
 * cross fusion, the fusion block's attention weights [B,h,M,M] (NULL in other modes). Valid
 * until the next forward. */
const float *ff_model_pooled(const ff_model *m);
const float *ff_model_fusion_attention(const ff_model *m);

/* The most compute threads a model uses: its per-thread attention scratch is sized for this
 * many, and no kernel runs wider whatever OMP_NUM_THREADS says. */
#define FF_MODELS_MAX_THREADS 64

/* One OpenMP pool for every kernel (1 = serial); OpenBLAS is kept at one thread. n outside
 * 1..FF_MODELS_MAX_THREADS is refused (FF_EINVAL, message naming the bound) and the pool is
 * left as it was. */
int ff_models_set_threads(int n);
int ff_models_threads(void);

/* ---------------------------------------------------------------------------------------- */
/* Optimizers                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef enum { FF_OPTIM_ADAMW = 0, FF_OPTIM_SGD = 1 } ff_optim_kind;

typedef struct {
    int kind;           /* ff_optim_kind */
    float lr;           /* peak learning rate */
    float beta1, beta2; /* AdamW */
    float eps;
    float weight_decay; /* AdamW: decoupled; SGD: L2 added to the gradient; decay tensors only */
    float momentum;     /* SGD */
    float clip_norm;    /* global gradient-norm clip; 0 = off */
    int64_t warmup;     /* linear warm-up steps */
    float min_lr_ratio; /* cosine decays to lr * min_lr_ratio */
} ff_optim_config;

/* The spec's training reference: AdamW lr 3e-4, betas 0.9/0.999, eps 1e-8, wd 0.01, clip 1.0,
 * no warm-up, min_lr_ratio 0.1. */
void ff_optim_config_default(ff_optim_config *c);

typedef struct ff_optim ff_optim;
/* Moments are one contiguous buffer each, laid out like the parameters. */
int ff_optim_new(ff_optim **o, const ff_model *m, const ff_optim_config *c) FF_WARN_UNUSED;
/* One update with learning rate lr (from ff_lr_schedule); gradients are read, not cleared. */
int ff_optim_step(ff_optim *o, ff_model *m, float lr) FF_WARN_UNUSED;
void ff_optim_free(ff_optim *o);
int64_t ff_optim_steps(const ff_optim *o);
/* Moment buffers (m and v for AdamW; momentum in m for SGD; v NULL for SGD). */
float *ff_optim_moment(ff_optim *o, int which);

/* Linear warm-up over c->warmup steps to c->lr, then cosine to c->lr * c->min_lr_ratio at
 * step total. step is 0-based. */
float ff_lr_schedule(const ff_optim_config *c, int64_t step, int64_t total);
/* Scales grads so their global L2 norm is at most max_norm (no-op when max_norm <= 0 or the
 * norm is not finite); returns the norm before clipping. Deterministic. */
float ff_grad_clip_norm(float *grads, size_t n, float max_norm);

/* zero_grad, forward, (non-finite loss → FF_ENUMERIC naming the step), backward, clip,
 * schedule, optimizer step. */
int ff_model_train_step(ff_model *m, ff_optim *o, const ff_batch *b, int64_t step, int64_t total,
                        float *loss) FF_WARN_UNUSED;

/* Modality dropout, a batch transform: each present modality of each sample is dropped with
 * probability p, but never all of a sample's modalities (if all draws drop, one present
 * modality chosen uniformly is kept). Dropping zeroes the image and image_present, the text
 * row, or the EHR rows, or (a batch with tabular arrays) the tabular row and tab_present.
 * p in [0,1]. */
int ff_modality_dropout(ff_batch *b, float p, ff_rng *rng) FF_WARN_UNUSED;


/* ---------------------------------------------------------------------------------------- */
/* Kernels. Outputs first, then saved statistics, then inputs, then weights, then sizes.     */
/* Backward functions ADD into every gradient they produce. Row counts N = batch * tokens.   */
/* Each has a plain loop `_ref` twin used by the tests.                                      */
/* ---------------------------------------------------------------------------------------- */

/* C = alpha * op(A) op(B) + beta * C, row-major, split across the thread pool. */
void ff_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* y [N,out] = x [N,in] · Wᵀ + b (W [out,in]); accumulate != 0 adds into y instead. */
void ff_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in,
                       int out, int accumulate);
/* y = res + x · Wᵀ + b in one pass over y (a Block's residual connection); res [N,out] must
 * not alias y. */
void ff_linear_forward_residual(float *y, const float *res, const float *x, const float *W,
                                const float *b, int N, int in, int out);
/* dx [N,in] += dy W (dx may be NULL); dW += dyᵀ x; db += Σ rows dy (db may be NULL). */
void ff_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                        const float *W, int N, int in, int out);
void ff_linear_forward_ref(float *y, const float *x, const float *W, const float *b, int N, int in,
                           int out, int accumulate);
void ff_linear_backward_ref(float *dx, float *dW, float *db, const float *dy, const float *x,
                            const float *W, int N, int in, int out);

/* y = (x - mean) * rstd * w + b over rows of width C, eps 1e-5; saves mean, rstd [N]. */
void ff_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int N, int C);
/* scratch: 32*C floats (16 fixed row ranges), so dw/db sums are the same at any thread count. */
void ff_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *w, int N, int C,
                           float *scratch);
void ff_layernorm_forward_ref(float *y, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int N, int C);
void ff_layernorm_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *mean, const float *rstd, const float *w, int N, int C);

/* tanh GELU, elementwise over n values. */
void ff_gelu_forward(float *y, const float *x, size_t n);
void ff_gelu_backward(float *dx, const float *dy, const float *x, size_t n);
/* g = g · gelu'(x) in place (the one kernel that overwrites: the model's fresh buffer). */
void ff_gelu_backward_inplace(float *g, const float *x, size_t n);
void ff_gelu_forward_ref(float *y, const float *x, size_t n);
void ff_gelu_backward_ref(float *dx, const float *dy, const float *x, size_t n);

/* Multi-head attention core (no projections). q [B*Tq, ldq], k and v [B*Tk, ldkv] (head j
 * = columns j*hd..), out [B*Tq, H*hd], probs [B,H,Tq,Tk] saved. kmask [B,Tk] (1 = valid,
 * NULL = all valid): masked keys get weight 0; a query with no valid key gets all-zero
 * weights and a zero output. */
void ff_attention_forward(float *out, float *probs, const float *q, int ldq, const float *k,
                          const float *v, int ldkv, const uint8_t *kmask, int B, int Tq, int Tk,
                          int H, int hd);
/* dq, dk, dv (same strides as q, k, v) += gradients. scratch: Tq*Tk floats per thread. */
void ff_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                           const float *q, int ldq, const float *k, const float *v, int ldkv,
                           const uint8_t *kmask, int B, int Tq, int Tk, int H, int hd,
                           float *scratch);
/* Ragged form used by the model: sample b has qlen[b] query rows from row qoff[b] and klen[b]
 * key rows from row koff[b] (rows past a sample's extent are simply not there); kmask rows
 * have stride kmask_ld. probs of (b,h) start at (b*H+h)*pstride with row stride pld (0 =
 * the number of keys computed). */
void ff_attention_forward_var(float *out, float *probs, size_t pstride, int pld, const float *q,
                              int ldq, const float *k, const float *v, int ldkv,
                              const uint8_t *kmask, int kmask_ld, int B, const int *qoff,
                              const int *qlen, const int *koff, const int *klen, int H, int hd);
void ff_attention_backward_var(float *dq, float *dk, float *dv, const float *dout,
                               const float *probs, size_t pstride, int pld, const float *q, int ldq,
                               const float *k, const float *v, int ldkv, const uint8_t *kmask,
                               int kmask_ld, int B, const int *qoff, const int *qlen,
                               const int *koff, const int *klen, int H, int hd, float *scratch);
void ff_attention_forward_ref(float *out, float *probs, const float *q, int ldq, const float *k,
                              const float *v, int ldkv, const uint8_t *kmask, int B, int Tq, int Tk,
                              int H, int hd);
void ff_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout,
                               const float *probs, const float *q, int ldq, const float *k,
                               const float *v, int ldkv, int B, int Tq, int Tk, int H, int hd);

/* out [B*T, d] (+)= table[ids] (accumulate != 0 adds); ids must be in range (checked by
 * ff_model_check_batch). Backward adds rows of dout into the rows of dtable that ids name
 * (only those rows are touched). */
void ff_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int d,
                          int accumulate);
void ff_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int d);
void ff_embedding_forward_ref(float *out, const int32_t *ids, const float *table, int N, int d,
                              int accumulate);
void ff_embedding_backward_ref(float *dtable, const float *dout, const int32_t *ids, int N, int d);
/* out [B,T,d] += pos [T,d]; dpos += Σ_b dout. */
void ff_pos_forward(float *out, const float *pos, int B, int T, int d);
void ff_pos_backward(float *dpos, const float *dout, int B, int T, int d);

/* img [B,C,S,S] → patches [B, (S/P)², C*P*P]: patches row-major, values (c, row, col). */
void ff_patchify_forward(float *out, const float *img, int B, int C, int S, int P);
void ff_patchify_backward(float *dimg, const float *dout, int B, int C, int S, int P);
void ff_patchify_forward_ref(float *out, const float *img, int B, int C, int S, int P);

/* out [B,d] = mean over t of x [B,T,d] where mask [B,T] is 1 (NULL = all); 0 when none. */
void ff_masked_mean_forward(float *out, const float *x, const uint8_t *mask, int B, int T, int d);
void ff_masked_mean_backward(float *dx, const float *dout, const uint8_t *mask, int B, int T,
                             int d);
/* Ragged form: sample b's rows are off[b] .. off[b]+len[b]-1; mask rows of stride mask_ld. */
void ff_masked_mean_forward_var(float *out, const float *x, const uint8_t *mask, int mask_ld, int B,
                                const int *off, const int *len, int d);
void ff_masked_mean_backward_var(float *dx, const float *dout, const uint8_t *mask, int mask_ld,
                                 int B, const int *off, const int *len, int d);
void ff_masked_mean_forward_ref(float *out, const float *x, const uint8_t *mask, int B, int T,
                                int d);
void ff_masked_mean_backward_ref(float *dx, const float *dout, const uint8_t *mask, int B, int T,
                                 int d);

/* Σ mask * BCE(logits, y) / Σ mask (mask NULL = all ones); dlogits += d loss / d logits. */
float ff_bce_forward(const float *logits, const float *y, const float *mask, int n);
void ff_bce_backward(float *dlogits, const float *logits, const float *y, const float *mask, int n);
float ff_bce_forward_ref(const float *logits, const float *y, const float *mask, int n);
void ff_bce_backward_ref(float *dlogits, const float *logits, const float *y, const float *mask,
                         int n);

/* ---------------------------------------------------------------------------------------- */
/* Losses (models/src/loss.c): for the tabular models and any other task head                */
/* ---------------------------------------------------------------------------------------- */
/*
 * Each forward writes the MEAN loss over its n rows (MSE: over all n values) to *loss; each
 * backward ADDS scale × d loss / d input into its gradient (scale 1 for the plain gradient; a
 * caller weighting several losses passes its weight). Sums are in double. Targets are checked
 * (FF_EINVAL naming the row); on error nothing is written.
 *
 *     double L;
 *     if (ff_loss_bce_forward(&L, logit, y, n) != FF_OK) ...   // y in [0, 1]
 *     ff_loss_bce_backward(dlogit, logit, y, n, 1.0f);           // dlogit += (σ(z) − y) / n
 *
 * BCE with logits:  ℓ = max(z,0) − z y + log(1 + e^{−|z|})          (PyTorch BCEWithLogitsLoss)
 * cross-entropy:    ℓ_i = logsumexp(z_i) − z_i[label_i], logits [n,k], label in [0,k)
 * MSE:              ℓ = mean (p − y)²
 * Cox (Breslow):    L = (1/n) Σ_{i: E_i=1} [log Σ_{j: T_j ≥ T_i} e^{s_j} − s_i], s = risk score;
 *                   every row tied at T_i is in i's risk set (Breslow 1974). Normalised by n, the
 *                   batch size, as FLamby's TCGA-BRCA loss (which breaks ties by sort order).
 */
typedef enum { FF_LOSS_BCE = 0, FF_LOSS_CE, FF_LOSS_MSE, FF_LOSS_COX, FF_LOSS_COUNT } ff_loss_kind;
const char *ff_loss_name(int kind); /* "bce", "cross_entropy", "mse", "cox" */

int ff_loss_bce_forward(double *loss, const float *logit, const float *y, int n) FF_WARN_UNUSED;
void ff_loss_bce_backward(float *dlogit, const float *logit, const float *y, int n, float scale);
int ff_loss_ce_forward(double *loss, const float *logits, const int32_t *label, int n,
                       int k) FF_WARN_UNUSED;
int ff_loss_ce_backward(float *dlogits, const float *logits, const int32_t *label, int n, int k,
                        float scale) FF_WARN_UNUSED;
double ff_loss_mse_forward(const float *pred, const float *y, size_t n);
void ff_loss_mse_backward(float *dpred, const float *pred, const float *y, size_t n, float scale);
/* time finite, event 0 or 1. Allocates O(n) scratch (FF_ENOMEM). */
int ff_loss_cox_forward(double *loss, const float *score, const float *time, const float *event,
                        int n) FF_WARN_UNUSED;
int ff_loss_cox_backward(float *dscore, const float *score, const float *time, const float *event,
                         int n, float scale) FF_WARN_UNUSED;

/* The fusion model's loss over declared tasks (models/src/taskloss.c): each task's mean loss
 * over the rows whose label it knows (label_mask on its first column) — binary BCE, multiclass
 * cross-entropy over its one-hot columns, regression MSE of (y − center) / scale, survival
 * Cox (Breslow) over the labelled rows, counted only with at least one event — averaged over
 * the tasks that count (0 when none does). logits, labels, mask [B, ts->width]; mask NULL =
 * every label known. dlogits (may be NULL) += d loss / d logits. Errors name the task and row.
 * A model whose tasks are all binary uses ff_bce_forward over all K columns instead. */
int ff_model_task_loss(const ff_task_set *ts, const float *logits, const float *labels,
                       const float *mask, int B, double *loss, float *dlogits) FF_WARN_UNUSED;
/* The model's outputs for one row of logits [K]: binary σ(z) (the model's probability, as
 * for every column of an all-binary model); multiclass the softmax over its classes;
 * regression center + scale·z; survival the risk score z in column 0 (column 1 = 0). A row
 * whose patient had nothing the model may see (present = 0) gets fallback for binary tasks,
 * 1/classes, center and 0 for the others. */
void ff_model_task_outputs(const ff_task_set *ts, const float *logits, int K, float fallback,
                           int present, float *out);

/* ---------------------------------------------------------------------------------------- */
/* Tabular models (models/src/tabular.c): `linear` and `mlp` over a plain feature matrix      */
/* ---------------------------------------------------------------------------------------- */
/*
 * Independent of any site-folder format: rows of `features` floats in, `outputs` floats out.
 *
 *     ff_tab_config c;
 *     if (ff_tab_config_load("configs/model-linear.yaml", &c) != FF_OK) ...  // FILE:LINE:COL
 *     ff_tab *t; ff_tab_new(&t, &c, 64); ff_tab_init(t, seed);
 *     ff_vec_optim o; ff_vec_optim_init(&o, FF_OPTIM_SGD, ff_tab_nparams(t), 0.01f);
 *     ff_tab_zero_grad(t);
 *     ff_tab_forward(t, x, B, out, &rng);           // rng: dropout draws; NULL = evaluation
 *     ff_tab_loss(t, out, y, B, &loss, dout);       // dout = d loss / d out (zeroed first)
 *     ff_tab_backward(t, x, dout, B);               // adds into ff_tab_grads(t)
 *     ff_vec_optim_step(&o, ff_tab_params(t), ff_tab_grads(t));
 *
 * Parameters are one flat float vector, tensors "fc.weight" [out,in], "fc.bias" (linear) or
 * "fc0.weight", "fc0.bias", ... "fcL.*" (mlp), as PyTorch's nn.Linear stacks.
 */
typedef enum { FF_TAB_LINEAR = 0, FF_TAB_MLP } ff_tab_arch;
typedef enum { FF_TAB_LOGISTIC = 0, FF_TAB_LINEAR_HEAD,  FF_TAB_COX, FF_TAB_SOFTMAX } ff_tab_head;
typedef enum { FF_TAB_RELU = 0, FF_TAB_TANH, FF_TAB_GELU } ff_tab_activation;
#define FF_TAB_MAX_HIDDEN 8

typedef struct {
    int arch;             /* ff_tab_arch */
    int64_t features;     /* input columns */
    int64_t outputs;      /* 1, or classes for softmax */
    int head;             /* ff_tab_head: logistic = BCE, linear = MSE, cox, softmax = CE */
    int64_t nhidden;      /* mlp: hidden layers (set from `hidden` by validate) */
    int64_t hidden[FF_TAB_MAX_HIDDEN];
    int activation;       /* ff_tab_activation */
    double dropout;       /* mlp: after each hidden activation, training only */
    ff_cfg_strlist hidden_list; /* the YAML `hidden:` list (owned; ff_tab_config_free) */
} ff_tab_config;

extern const ff_cfg_field ff_tab_config_schema[];
/* YAML keys: model (linear|mlp), features, outputs, head (logistic|linear|cox|softmax),
 * hidden [w1, w2, ...], activation (relu|tanh|gelu), dropout. Errors name FILE:LINE:COL and
 * the key. Release with ff_tab_config_free. */
int ff_tab_config_load(const char *path, ff_tab_config *c) FF_WARN_UNUSED;
int ff_tab_config_load_str(const char *name, const char *yaml, size_t len,
                           ff_tab_config *c) FF_WARN_UNUSED;
/* Cross-key rules (heads' output counts, hidden widths); fills nhidden/hidden from the list. */
int ff_tab_config_validate(ff_tab_config *c) FF_WARN_UNUSED;
void ff_tab_config_free(ff_tab_config *c);
const char *ff_tab_head_name(int head);
/* Columns of a target row for the head: cox 2 (event, time), linear `outputs`, others 1. */
int ff_tab_target_width(const ff_tab_config *c);

typedef struct ff_tab ff_tab;
/* Activations for batches up to max_batch, sized once. Parameters start at zero. */
int ff_tab_new(ff_tab **out, const ff_tab_config *cfg, int max_batch) FF_WARN_UNUSED;
void ff_tab_free(ff_tab *t);
const ff_tab_config *ff_tab_cfg(const ff_tab *t);
size_t ff_tab_nparams(const ff_tab *t);
float *ff_tab_params(ff_tab *t);
float *ff_tab_grads(ff_tab *t);
size_t ff_tab_ntensors(const ff_tab *t);
const ff_param_info *ff_tab_tensor(const ff_tab *t, size_t i); /* NULL out of range */
/* PyTorch's nn.Linear default init, W and b ~ U(−1/√in, 1/√in), from seed (Philox). */
void ff_tab_init(ff_tab *t, uint64_t seed);
void ff_tab_zero_grad(ff_tab *t);
/* out [B, outputs] for x [B, features]; dropout_rng non-NULL = training (dropout drawn from
 * it), NULL = evaluation. Saves what backward needs. */
int ff_tab_forward(ff_tab *t, const float *x, int B, float *out, ff_rng *dropout_rng) FF_WARN_UNUSED;
/* After forward on the same x: adds d loss / d params given dout = d loss / d out. */
int ff_tab_backward(ff_tab *t, const float *x, const float *dout, int B) FF_WARN_UNUSED;
/* The head's loss (mean over the batch) of out against y [B, ff_tab_target_width]; with dout
 * non-NULL adds d loss / d out into it. */
int ff_tab_loss(const ff_tab *t, const float *out, const float *y, int B, double *loss,
                float *dout) FF_WARN_UNUSED;

/* torch.optim.SGD (no momentum) and torch.optim.Adam (bias-corrected, eps added after the
 * square root), both with L2 weight decay added to the gradient, over a flat vector. */
typedef struct {
    int kind; /* FF_OPTIM_SGD or FF_OPTIM_ADAMW (= Adam here: coupled L2, as torch.optim.Adam) */
    size_t n;
    float lr, beta1, beta2, eps, weight_decay;
    float *m, *v; /* Adam moments (owned) */
    int64_t t;    /* steps taken */
} ff_vec_optim;
int ff_vec_optim_init(ff_vec_optim *o, int kind, size_t n, float lr) FF_WARN_UNUSED;
void ff_vec_optim_free(ff_vec_optim *o);
void ff_vec_optim_step(ff_vec_optim *o, float *w, const float *g);

/* ---------------------------------------------------------------------------------------- */
/* Per-example gradients (DP-SGD)                                                            */
/* ---------------------------------------------------------------------------------------- */
/*
 * Exact per-example gradients by batch-of-1 passes (models/src/perexample.c): example i's
 * gradient is that of its own loss (its masked-mean BCE over the K tasks), computed alone.
 * They use (and clobber) the model's gradient buffer and last-forward activations. Ghost
 * clipping (below, models/src/ghost.c) gives the same norms and sums from one batched pass.
 */

/* min(1, clip / norm), a factor 4e-7 below the ratio when clipping so the float result
 * cannot exceed clip; 1 when clip is +inf or <= 0 (no clipping). */
double ff_dp_clip_scale(double norm, double clip);
/* norms[i] = ||∇ loss_i||₂ for each example of b (B <= max_batch); losses[i] (may be NULL)
 * its loss. Errors name the example. */
int ff_model_perexample_norms(ff_model *m, const ff_batch *b, double *norms,
                              float *losses) FF_WARN_UNUSED;
/* sum[nparams] += Σ_i min(1, clip / ||g_i||) g_i (clip > 0; +inf = no clipping). norms and
 * losses (may be NULL) receive each example's gradient norm before clipping and its loss.
 * On error sum holds the examples before the failing one. */
int ff_model_clipped_grad_sum(ff_model *m, const ff_batch *b, double clip, float *sum,
                              double *norms, float *losses) FF_WARN_UNUSED;
/* sum[nparams] += Σ_i w[i] ∇loss_i with ONE batched forward and backward: example i's
 * label mask is scaled by w[i] / (its known labels), and the batched loss's normalisation is
 * multiplied back. The second pass of ghost clipping (w = clip scales from norms computed
 * without materialising gradients); B >= 1. Clobbers the gradient buffer. */
int ff_model_weighted_grad_sum(ff_model *m, const ff_batch *b, const float *w,
                               float *sum) FF_WARN_UNUSED;

/* Ghost clipping: per-example norms from ONE batched forward and a backward in which each
 * layer adds its per-example squared norm, taken from its inputs and output gradients,
 * without materialising per-example gradients where the layer allows it (docs/privacy.md
 * lists what each layer does). Same values as ff_model_perexample_norms up to float
 * rounding. Clobbers the last-forward activations; the gradient buffer is not touched. */
int ff_model_ghost_norms(ff_model *m, const ff_batch *b, double *norms,
                         float *losses) FF_WARN_UNUSED;
/* As ff_model_clipped_grad_sum (same contract; on error sum is untouched): ghost norms, then
 * each layer's parameter gradient formed once from its output-gradient rows scaled by
 * min(1, clip / ||g_i||) ("book-keeping": one forward and one backward in all, plus a copy
 * of the output gradients), or with FF_GHOST_TWO_BACKWARD by a second backward. */
int ff_model_ghost_clipped_grad_sum(ff_model *m, const ff_batch *b, double clip, float *sum,
                                    double *norms, float *losses) FF_WARN_UNUSED;
/* As ff_model_ghost_norms, with each example's squared norm split by parameter tensor:
 * sq[i * ff_model_ntensors(m) + t] = ||∂loss_i/∂tensor t||² (per-layer clipping, tests). */
int ff_model_ghost_tensor_sqnorms(ff_model *m, const ff_batch *b, double *norms,
                                  double *sq) FF_WARN_UNUSED;
/* How a linear layer over an example's T rows takes its norm: FF_GHOST_AUTO (default) picks
 * per layer and example the cheaper of the Gram form Σ_{t,s}(a_t·a_s)(g_t·g_s) (T²(in+out)/2)
 * and the materialised G_iᵀA_i (T·in·out); the others force one form (tests). */
enum { FF_GHOST_AUTO = 0, FF_GHOST_GRAM = 1, FF_GHOST_MATERIALISE = 2 };
/* OR'ed into the policy: the clipped sum by a second backward over the same forward instead
 * of book-keeping (which keeps a copy of every layer's output gradient; the default). */
enum { FF_GHOST_TWO_BACKWARD = 4 };
void ff_model_set_ghost_policy(ff_model *m, int policy);
/* (example, sequence linear layer) pairs the model has handled in each form so far. */
void ff_model_ghost_stats(const ff_model *m, long long *gram, long long *mat);

/* Inspection of the last forward (explanations; read-only, models/src/inspect.c)            */
/* ---------------------------------------------------------------------------------------- */

/* The pooled fused vector z [B, ff_model_fused_width] of the last forward (the input of the
 * head: cross = masked mean of the fusion tokens, early = the fusion MLP output); NULL for
 * late fusion, which has none. Valid until the next forward. */
const float *ff_model_fused(const ff_model *m);
int ff_model_fused_width(const ff_model *m);

/* Attention views: which keys the attention of the last forward looked at. */
enum {
    FF_ATTN_IMG_TXT = 0,  /* fuse.x_img: image tokens attending to note tokens (keys = words) */
    FF_ATTN_TXT_EHR = 1,  /* fuse.x_txt: note tokens attending to record events */
    FF_ATTN_IMG_SELF = 2, /* last image-encoder block: patches attending to patches */
    FF_ATTN_TXT_SELF = 3, /* last text-encoder block */
    FF_ATTN_EHR_SELF = 4  /* last EHR-encoder block */
};
/* For sample b of the last forward: out[t] = attention weight key token t received, averaged
 * over heads and valid (non-padding) query tokens (masked keys 0; the values of one view sum
 * to 1). Returns the number of key positions written (up to the last valid key), or 0 when
 * the view does not exist (cross views outside cross fusion, an absent context, b out of
 * range, cap too small). Reads only. */
int ff_model_attention_received(const ff_model *m, int view, int b, float *out, int cap);
/* Cross fusion: out[j] = mean over heads and present query modalities of the fusion block's
 * attention to modality j (0 image, 1 text, 2 EHR). Returns 3, or 0 when not available (other
 * fusion modes, and models with the tabular modality: not reported yet). */
int ff_model_modality_attention(const ff_model *m, int b, float out[3]);

/* Contrastive pre-training (CLIP-style; needs a config with `projection: p` > 0, which adds */
/* proj.img.weight, proj.txt.weight, proj.ehr.weight [p,d] and logit_scale [1] after every  */
/* spec tensor; projection 0, the default, leaves the spec's table unchanged).               */
/*                                                                                          */
/*     ff_contrastive *c; ff_contrastive_new(&c, m);                                        */
/*     ff_model_zero_grad(m); ff_model_forward(m, &b, NULL, NULL);                          */
/*     ff_contrastive_forward(c, &b, 0, 1, &loss, &npairs);     // image-text pairs         */
/*     ff_contrastive_backward(c, &b, 1.0f);                    // adds into the gradients  */
/* ---------------------------------------------------------------------------------------- */

typedef struct ff_contrastive ff_contrastive;
/* Scratch for the model's max batch; FF_ECONFIG when the config has no projection heads. */
int ff_contrastive_new(ff_contrastive **c, ff_model *m) FF_WARN_UNUSED;
void ff_contrastive_free(ff_contrastive *c);
/* After ff_model_forward on b: symmetric InfoNCE between modalities a and e (0 image, 1 text,
 * 2 EHR) over the samples where both are present (pairs only inside the batch; labels are
 * not read). Each side is the encoder's own masked-mean output (before fusion), projected by
 * proj.<mod>.weight and L2-normalised; logits = exp(min(logit_scale, ln 100)) * cosine. loss
 * = (CE over rows + CE over columns) / 2, averaged over the pairs; 0 with no pair. */
int ff_contrastive_forward(ff_contrastive *c, const ff_batch *b, int a, int e, float *loss,
                           int *npairs) FF_WARN_UNUSED;
/* Adds weight * d loss / d params (heads, logit_scale, both encoders) into the gradients. */
int ff_contrastive_backward(ff_contrastive *c, const ff_batch *b, float weight) FF_WARN_UNUSED;
/* After a forward: unit-norm projected embeddings [B,p] of modality e for every row. */
int ff_contrastive_embed(ff_contrastive *c, int e, float *out) FF_WARN_UNUSED;
/* The clamped temperature exp(min(logit_scale, ln 100)); 0 without heads. */
float ff_contrastive_scale(const ff_model *m);
/* The loss on given pooled pairs pa, pc [n,d] with heads Wa, Wc [p,d] and logit_scale ls
 * (the kernel under the two calls above, exposed for the gradient tests). With non-NULL
 * outputs adds weight * the gradients into dpa, dpc [n,d], dWa, dWc [p,d], dls [1]. */
int ff_contrastive_core(ff_contrastive *c, const float *pa, const float *pc, int n,
                        const float *Wa, const float *Wc, float ls, float weight, float *loss,
                        float *dpa, float *dpc, float *dWa, float *dWc, float *dls) FF_WARN_UNUSED;
/* Gradient entry for losses on the encoders' own pooled outputs: dpool [3,B,d] = d loss /
 * d pooled_e; runs the backward of the encoders whose bit (1 << e) is in enc_mask. */
int ff_model_backward_pooled(ff_model *m, const ff_batch *b, const float *dpool,
                             int enc_mask) FF_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
