/* Per-example gradients for DP-SGD (Abadi et al. 2016), the exact baseline: each example of
 * the batch runs forward and backward alone, as a batch-of-1 view of its rows (the model's
 * activations are sized for max_batch, so a view of one row fits), into the model's gradient
 * buffer; its L2 norm is taken there, it is scaled by min(1, C / norm) and added into the
 * caller's sum. Memory O(params) beyond the model, results exact (the model has no
 * cross-sample coupling: LayerNorm is per token, attention per sample, the loss a sum), time
 * B small passes instead of one batched pass. Ghost clipping is described in docs/privacy.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

double ff_dp_clip_scale(double norm, double clip)
{
    if (!(clip > 0) || isinf(clip) || norm <= clip)
        return 1.0;
    /* a hair below C / norm so float rounding of the scaled vector cannot exceed C */
    return clip / norm * (1.0 - 4e-7);
}

/* The parts of the gradient buffer one example can write. The two large embedding tables
 * (text tokens, EHR codes: vocab x d, about 45 % of fusion-base) get gradient only in the rows
 * the example's ids name (ff_embedding_backward touches only those), so zeroing, norms and
 * accumulation visit the dense ranges plus those rows: per-example memory traffic drops from
 * the whole buffer to what the example can touch. Rows are taken from the batch's ids (a
 * superset of the tokens the model packs), deduplicated with a per-table marker. */
typedef struct {
    size_t off[3], len[3]; /* dense ranges around the two tables */
    int ndense;
    size_t table[2], vocab[2]; /* sparse tables: txt tok, ehr code */
    uint8_t *mark[2];
    size_t *rows[2]; /* unique rows of the current example */
    int nrows[2];
    size_t d;
} ex_span;

static int span_init(ex_span *sp, const ff_model *m)
{
    memset(sp, 0, sizeof *sp);
    sp->d = (size_t)m->d;
    sp->table[0] = m->enc[FF_ENC_TXT].emb[0], sp->vocab[0] = (size_t)m->cfg.text.vocab;
    sp->table[1] = m->enc[FF_ENC_EHR].emb[0], sp->vocab[1] = (size_t)m->cfg.ehr.codes;
    int first = sp->table[0] < sp->table[1] ? 0 : 1; /* ranges in increasing order */
    size_t cur = 0;
    for (int k = 0; k < 2; k++) {
        int t = k == 0 ? first : 1 - first;
        size_t start = sp->table[t], end = start + sp->vocab[t] * sp->d;
        if (start > cur)
            sp->off[sp->ndense] = cur, sp->len[sp->ndense++] = start - cur;
        cur = end;
    }
    if (m->nparams > cur)
        sp->off[sp->ndense] = cur, sp->len[sp->ndense++] = m->nparams - cur;
    size_t maxr[2] = {(size_t)m->cfg.text.length, (size_t)m->cfg.ehr.length};
    for (int t = 0; t < 2; t++) {
        sp->mark[t] = calloc(sp->vocab[t], 1);
        sp->rows[t] = calloc(maxr[t] ? maxr[t] : 1, sizeof(size_t));
        if (!sp->mark[t] || !sp->rows[t])
            return ff_error(FF_ENOMEM, "per-example gradients: out of memory");
    }
    return FF_OK;
}

static void span_free(ex_span *sp)
{
    for (int t = 0; t < 2; t++)
        free(sp->mark[t]), free(sp->rows[t]);
}

/* The unique embedding rows of example v (B = 1; ids in range, a trusted batch). */
static void span_rows(ex_span *sp, const ff_batch *v)
{
    const int32_t *ids[2] = {v->text_ids, v->ehr_code};
    int L[2] = {v->Lt, v->Le};
    for (int t = 0; t < 2; t++) {
        sp->nrows[t] = 0;
        for (int j = 0; ids[t] && j < L[t]; j++) {
            size_t r = (size_t)ids[t][j];
            if (r < sp->vocab[t] && !sp->mark[t][r]) {
                sp->mark[t][r] = 1;
                sp->rows[t][sp->nrows[t]++] = r;
            }
        }
        for (int j = 0; j < sp->nrows[t]; j++)
            sp->mark[t][sp->rows[t][j]] = 0;
    }
}

enum { SPAN_ZERO, SPAN_SQNORM, SPAN_AXPY };

static double range_op(float *g, float *sum, size_t n, float s, int op)
{
    if (op == SPAN_ZERO) {
        memset(g, 0, n * sizeof(float));
        return 0;
    }
    if (op == SPAN_AXPY) {
        for (size_t j = 0; j < n; j++)
            sum[j] += s * g[j];
        return 0;
    }
    double acc = 0;
    for (size_t j = 0; j < n; j++)
        acc += (double)g[j] * (double)g[j];
    return acc;
}

/* op over every range the current example can have written; Σ x² for SPAN_SQNORM. */
static double span_apply(const ex_span *sp, float *g, float *sum, float s, int op)
{
    double acc = 0;
    for (int k = 0; k < sp->ndense; k++)
        acc += range_op(g + sp->off[k], sum ? sum + sp->off[k] : NULL, sp->len[k], s, op);
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < sp->nrows[t]; j++) {
            size_t o = sp->table[t] + sp->rows[t][j] * sp->d;
            acc += range_op(g + o, sum ? sum + o : NULL, sp->d, s, op);
        }
    return acc;
}

/* Example i's gradient into m->grads (zero on entry), its loss into *loss. */
static int example_grad(ff_model *m, ex_span *sp, const ff_batch *b, int i, float *loss)
{
    ff_batch v = ff_batch_row(b, i);
    span_rows(sp, &v);
    int rc = ff_model_forward(m, &v, NULL, loss);
    if (rc != FF_OK)
        return ff_error(rc, "per-example gradients: example %d of %d", i, b->B);
    if (!isfinite(*loss))
        return ff_error(FF_ENUMERIC, "per-example gradients: example %d has loss %f", i,
                        (double)*loss);
    return ff_model_backward(m, &v);
}

/* Examples i0..i1-1 of b on model m: norms[i], losses[i] (each may be NULL) and, when sum is
 * not NULL, sum += min(1, clip / norm_i) g_i. The gradient buffer is zero between examples. */
static int run_range(ff_model *m, const ff_batch *b, int i0, int i1, double clip, float *sum,
                     double *norms, float *losses)
{
    ex_span sp;
    int rc = span_init(&sp, m);
    ff_model_zero_grad(m);
    for (int i = i0; rc == FF_OK && i < i1; i++) {
        float loss;
        rc = example_grad(m, &sp, b, i, &loss);
        if (rc != FF_OK)
            break;
        double nrm = sqrt(span_apply(&sp, m->grads, NULL, 0, SPAN_SQNORM));
        if (!isfinite(nrm)) {
            rc = ff_error(FF_ENUMERIC, "per-example gradients: example %d has a non-finite "
                          "gradient", i);
            break;
        }
        if (sum)
            span_apply(&sp, m->grads, sum, (float)ff_dp_clip_scale(nrm, clip), SPAN_AXPY);
        span_apply(&sp, m->grads, NULL, 0, SPAN_ZERO);
        if (norms)
            norms[i] = nrm;
        if (losses)
            losses[i] = loss;
    }
    span_free(&sp);
    return rc;
}

#define FF_PEX_MAX_THREADS 16

/* With a thread pool of T > 1, batch-of-1 GEMMs are too small to split well, so examples are
 * split instead: thread t runs a contiguous range on its own max-batch-1 replica of the model
 * (parameters copied; kernels see they are inside a parallel region and run serially) into
 * its own sum; the sums are added in thread order, so results depend only on T. */
static int run_examples(ff_model *m, const ff_batch *b, double clip, float *sum, double *norms,
                        float *losses)
{
    int T = FF_MIN(FF_MIN(ff_models_threads(), b->B), FF_PEX_MAX_THREADS);
#ifdef _OPENMP
    if (omp_in_parallel())
        T = 1;
#else
    T = 1;
#endif
    if (T <= 1)
        return run_range(m, b, 0, b->B, clip, sum, norms, losses);
    ff_model *rep[FF_PEX_MAX_THREADS] = {m};
    float *sums[FF_PEX_MAX_THREADS] = {sum};
    int rcs[FF_PEX_MAX_THREADS] = {0};
    char msg[FF_PEX_MAX_THREADS][256];
    size_t n = m->nparams;
    int rc = FF_OK;
    for (int t = 1; rc == FF_OK && t < T; t++) {
        rc = ff_model_new(&rep[t], &m->cfg, 1);
        if (rc == FF_OK)
            memcpy(rep[t]->params, m->params, n * sizeof(float));
        if (rc == FF_OK && sum && !(sums[t] = ff_calloc(n, sizeof(float))))
            rc = ff_error(FF_ENOMEM, "per-example gradients: out of memory");
    }
    if (rc == FF_OK) {
#pragma omp parallel for schedule(static, 1) num_threads(T)
        for (int t = 0; t < T; t++) {
            int i0 = b->B * t / T, i1 = b->B * (t + 1) / T;
            rcs[t] = run_range(rep[t], b, i0, i1, clip, sums[t], norms, losses);
            if (rcs[t] != FF_OK) /* messages are per thread */
                snprintf(msg[t], sizeof msg[t], "%s", ff_error_message());
        }
        for (int t = 0; rc == FF_OK && t < T; t++)
            if (rcs[t] != FF_OK)
                rc = ff_error(rcs[t], "%s", msg[t]);
    }
    for (int t = 1; t < T; t++) {
        if (rc == FF_OK && sum)
            for (size_t j = 0; j < n; j++)
                sum[j] += sums[t][j];
        ff_free(sums[t]);
        ff_model_free(rep[t]);
    }
    return rc;
}

int ff_model_perexample_norms(ff_model *m, const ff_batch *b, double *norms, float *losses)
{
    if (b->B < 0 || b->B > m->max_batch)
        return ff_error(FF_EINVAL, "per-example norms: batch %d outside 0..%d", b->B,
                        m->max_batch);
    return run_examples(m, b, INFINITY, NULL, norms, losses);
}

int ff_model_clipped_grad_sum(ff_model *m, const ff_batch *b, double clip, float *sum,
                              double *norms, float *losses)
{
    if (b->B < 0 || b->B > m->max_batch)
        return ff_error(FF_EINVAL, "clipped gradient sum: batch %d outside 0..%d", b->B,
                        m->max_batch);
    if (!(clip > 0))
        return ff_error(FF_EINVAL, "clipped gradient sum: clip norm %g must be > 0 (inf = off)",
                        clip);
    return run_examples(m, b, clip, sum, norms, losses);
}

int ff_model_weighted_grad_sum(ff_model *m, const ff_batch *b, const float *w, float *sum)
{
    if (b->B < 1 || b->B > m->max_batch)
        return ff_error(FF_EINVAL, "weighted gradient sum: batch %d outside 1..%d", b->B,
                        m->max_batch);
    size_t K = (size_t)b->K, nk = (size_t)b->B * K;
    float *mask = malloc(nk * sizeof *mask);
    if (!mask)
        return ff_error(FF_ENOMEM, "weighted gradient sum: out of memory");
    /* example i's loss is Σ_k m_ik BCE_ik / M_i; weight its terms by w_i / M_i */
    double total = 0;
    for (int i = 0; i < b->B; i++) {
        const float *mi = b->label_mask ? b->label_mask + (size_t)i * K : NULL;
        double Mi = 0;
        for (size_t k = 0; k < K; k++)
            Mi += mi ? mi[k] : 1.0;
        for (size_t k = 0; k < K; k++) {
            double v = Mi > 0 ? (double)w[i] * (mi ? mi[k] : 1.0) / Mi : 0.0;
            mask[(size_t)i * K + k] = (float)v;
            total += v;
        }
    }
    int rc = FF_OK;
    if (total > 0) {
        ff_batch v = *b;
        v.label_mask = mask;
        float loss;
        ff_model_zero_grad(m);
        rc = ff_model_forward(m, &v, NULL, &loss);
        if (rc == FF_OK)
            rc = ff_model_backward(m, &v);
        /* the batched loss divides by Σ mask (the float sum the kernel takes) */
        float tot = 0;
        for (size_t j = 0; j < nk; j++)
            tot += mask[j];
        for (size_t j = 0; rc == FF_OK && j < m->nparams; j++)
            sum[j] += tot * m->grads[j];
    }
    free(mask);
    return rc;
}
