/* Ghost clipping for DP-SGD: per-example gradient norms from one batched forward and one
 * backward, without materialising per-example gradients where a layer allows it (Goodfellow
 * 2015; Li, Tramèr, Liang, Hashimoto 2021, "Large language models can be strong
 * differentially private learners", Sec. 4; Bu, Mao, Xu 2022, "Scalable and efficient
 * training of large convolutional neural networks with differential privacy" for the
 * per-layer choice). The model has no cross-example coupling, so example i's gradient of a
 * parameter is the contribution of its own rows; each hook below takes its squared norm from
 * the layer's saved inputs and output gradients. docs/privacy.md has the per-layer table.
 *
 * Then the clipped sum Σ_i s_i g_i, s_i = min(1, C/‖g_i‖), by book-keeping (Bu, Wang, Zha,
 * Karypis 2023, "Differentially private optimization on large model at small cost"): the
 * norm pass keeps each layer's output gradient, and each layer's parameter gradient is
 * formed once, from those rows scaled by their example's s_i (e.g. dW = (s ⊙ G)ᵀ A): one
 * forward and one backward per DP-SGD step, at the memory of one copy of the output
 * gradients. FF_GHOST_TWO_BACKWARD (or running out of memory for the copies) takes a second
 * backward over the same forward with example i's output gradient scaled by s_i instead. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

void ff_ghost_free(ff_ghost *g)
{
    if (!g) return;
    free(g->sq);
    free(g->unit.off);
    free(g->unit.len);
    ff_free(g->ga);
    ff_free(g->gg);
    ff_free(g->mat);
    ff_free(g->vec);
    ff_free(g->sink);
    free(g->slot);
    ff_free(g->rows);
    free(g->fw);
    free(g->scale);
    free(g->ops);
    free(g->tape);
    free(g);
}

static size_t max_sz(const size_t *v, size_t n)
{
    size_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = FF_MAX(x, v[i]);
    return x;
}

#define FF_GHOST_MAX_THREADS 16

/* Scratch for the largest layer of this model, made once (one slice per worker thread of
 * the pool at that time). */
static int ghost_alloc(ff_model *m)
{
    if (m->ghost_buf) return FF_OK;
    const ff_model_config *c = &m->cfg;
    size_t B = (size_t)m->max_batch, d = (size_t)m->d, mm = (size_t)m->m, K = (size_t)m->K;
    size_t M = (size_t)m->M, w = M * d + M;
    size_t pv = (size_t)(c->image.channels * c->image.patch * c->image.patch);
    size_t tF = (size_t)m->tenc.F, th = (size_t)m->tenc.th; /* 0 without tabular */
    size_t T = M;
    for (int e = 0; e < 3; e++)
        T = FF_MAX(T, (size_t)m->enc[e].T);
    /* in*out of every linear layer: qkv, kv, mlp fc/proj, patch embedding, early fc, head,
     * tabular fc and proj */
    size_t io[] = {3 * d * d, 2 * d * d, d * mm, pv * d, w * mm, d * K, tF * th, th * d};
    size_t widths[] = {3 * d, mm, w, d, K, pv, tF, th};
    size_t ids[] = {(size_t)c->text.vocab, (size_t)c->text.length, (size_t)c->ehr.codes,
                    (size_t)c->ehr.values, (size_t)c->ehr.times, (size_t)c->ehr.length};
    size_t vocab = max_sz(ids, FF_ARRAY_LEN(ids));
    ff_ghost *g = calloc(1, sizeof *g);
    if (!g) return ff_error(FF_ENOMEM, "ghost clipping: out of memory");
    g->sq = calloc(B, sizeof *g->sq);
    g->unit.off = calloc(B, sizeof(int));
    g->unit.len = calloc(B, sizeof(int));
    g->nth = FF_MAX(1, FF_MIN(ff_models_threads(), FF_GHOST_MAX_THREADS));
    g->ga_ld = T * T, g->mat_ld = max_sz(io, FF_ARRAY_LEN(io));
    g->vec_ld = 2 * max_sz(widths, FF_ARRAY_LEN(widths));
    size_t nth = (size_t)g->nth;
    g->ga = ff_calloc(nth * g->ga_ld, sizeof(float));
    g->gg = ff_calloc(nth * g->ga_ld, sizeof(float));
    g->mat = ff_calloc(nth * g->mat_ld, sizeof(float));
    g->vec = ff_calloc(nth * g->vec_ld, sizeof(float));
    g->sink = ff_calloc(2 * d, sizeof(float));
    g->slot = malloc(vocab * sizeof(int));
    g->rows = ff_calloc(T * d, sizeof(float));
    g->fw = calloc(B * M, sizeof(float));
    g->scale = calloc(B, sizeof(float));
    if (!g->sq || !g->unit.off || !g->unit.len || !g->ga || !g->gg || !g->mat || !g->vec ||
        !g->sink || !g->slot || !g->rows || !g->fw || !g->scale) {
        ff_ghost_free(g);
        return ff_error(FF_ENOMEM, "ghost clipping: out of memory");
    }
    for (size_t i = 0; i < vocab; i++)
        g->slot[i] = -1;
    for (size_t i = 0; i < B; i++)
        g->unit.off[i] = (int)i, g->unit.len[i] = 1;
    g->unit.T = 1;
    m->ghost_buf = g;
    return FF_OK;
}

/* Keeps op, with a copy of its output gradient (rm->R rows of width w), for book-keeping. */
static void record(ff_ghost *g, ff_ghost_op op, const float *dy, int w)
{
    if (!g->record || g->oom) return;
    size_t n = (size_t)op.rm->R * (size_t)w;
    /* the tape starts at 1 Mi floats: one op's gradient is often that large */
    if (ff_grow(&g->ops, &g->cap_ops, g->nops + 1, sizeof *g->ops) != FF_OK ||
        ff_grow(&g->tape, &g->tape_cap, FF_MAX(g->tape_len + n, (size_t)1 << 20),
                sizeof *g->tape) != FF_OK) {
        g->oom = 1;
        return;
    }
    memcpy(g->tape + g->tape_len, dy, n * sizeof(float));
    op.dy = g->tape_len;
    g->tape_len += n;
    g->ops[g->nops++] = op;
}

/* Gram form when it is cheaper: two T×T Gram matrices by SYRK cost T²(in+out)/2 multiply-
 * adds, the materialised G_iᵀA_i costs T·in·out. */
static int use_gram(int policy, int T, int in, int out)
{
    policy &= 3;
    if (policy == FF_GHOST_GRAM) return 1;
    if (policy == FF_GHOST_MATERIALISE) return 0;
    return (double)T * (double)(in + out) < 2.0 * (double)in * (double)out;
}

/* Tensor index of table offset off (the table is in offset order). */
static size_t tensor_of(const ff_model *m, size_t off)
{
    size_t lo = 0, hi = m->ntab;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (m->tab[mid].offset <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void ff_ghost_add(ff_model *m, int i, size_t off, double v)
{
    ff_ghost *g = m->ghost;
    g->sq[i] += v;
    if (g->by_tensor) g->by_tensor[(size_t)i * m->ntab + tensor_of(m, off)] += v;
}

/* ‖GᵀA‖²_F = Σ_{t,s} (a_t·a_s)(g_t·g_s) and ‖Σ_t g_t‖² = Σ_{t,s} g_t·g_s: only the upper
 * triangles of the symmetric Gram matrices are formed, off-diagonal terms counted twice. */
static void linear_gram(ff_ghost *g, int th, const float *A, const float *G, int T, int in,
                        int out, double *sw, double *sb)
{
    float *ga = g->ga + (size_t)th * g->ga_ld, *gg = g->gg + (size_t)th * g->ga_ld;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, T, in, 1.0f, A, in, 0.0f, ga, T);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, T, out, 1.0f, G, out, 0.0f, gg, T);
    double w = 0, b = 0;
    for (int t = 0; t < T; t++) {
        const float *ra = ga + (size_t)t * T, *rg = gg + (size_t)t * T;
        double rw = 0.5 * (double)ra[t] * rg[t], rb = 0.5 * (double)rg[t];
        for (int u = t + 1; u < T; u++) {
            rw += (double)ra[u] * rg[u];
            rb += rg[u];
        }
        w += 2.0 * rw, b += 2.0 * rb;
    }
    *sw = w, *sb = b;
}

/* The same by materialising example i's weight gradient G_iᵀA_i (out×in) and bias Σ_t g_t. */
static void linear_mat(ff_ghost *g, int th, const float *A, const float *G, int T, int in,
                       int out, double *sw, double *sb)
{
    float *mat = g->mat + (size_t)th * g->mat_ld;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, T, 1.0f, G, out, A, in, 0.0f,
                mat, in);
    double w = 0, b = 0;
    for (size_t j = 0; j < (size_t)out * in; j++)
        w += (double)mat[j] * mat[j];
    float *bs = g->vec + (size_t)th * g->vec_ld;
    memset(bs, 0, (size_t)out * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++)
            bs[o] += G[(size_t)t * out + o];
    for (int o = 0; o < out; o++)
        b += (double)bs[o] * bs[o];
    *sw = w, *sb = b;
}

static double dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int j = 0; j < n; j++)
        s += (double)a[j] * b[j];
    return s;
}

/* Worker threads for a per-example loop: the pool size, capped by the scratch slices; 1
 * inside a parallel region. */
static int ghost_threads(const ff_ghost *g, int B)
{
    int nt = FF_MIN(FF_MIN(ff_models_threads(), g->nth), B);
#ifdef _OPENMP
    if (omp_in_parallel()) nt = 1;
#else
    nt = 1;
#endif
    return FF_MAX(nt, 1);
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Examples are independent: they are split over the pool (each writes only its own sq[i];
 * an example's norm is computed the same way whichever thread runs it). */
void ff_ghost_linear(ff_model *m, size_t w_off, size_t b_off, const float *x, const float *dy,
                     const ff_rowmap *rm, int in, int out)
{
    ff_ghost *g = m->ghost;
    long long ngram = 0, nmat = 0;
    int nt = ghost_threads(g, m->B);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) reduction(+ : ngram, nmat) \
    if (nt > 1)
    for (int i = 0; i < m->B; i++) {
        int T = rm->len[i], th = thread_id();
        if (T == 0) continue;
        const float *A = x + (size_t)rm->off[i] * in, *G = dy + (size_t)rm->off[i] * out;
        double sw, sb;
        if (T == 1) { /* one row: ‖g aᵀ‖² = ‖a‖²‖g‖² */
            sb = dot(G, G, out);
            sw = sb * dot(A, A, in);
        } else if (use_gram(g->policy, T, in, out)) {
            linear_gram(g, th, A, G, T, in, out, &sw, &sb);
            ngram++;
        } else {
            linear_mat(g, th, A, G, T, in, out, &sw, &sb);
            nmat++;
        }
        ff_ghost_add(m, i, w_off, sw);
        ff_ghost_add(m, i, b_off, sb);
    }
    g->layers_gram += ngram, g->layers_mat += nmat;
    record(g, (ff_ghost_op){.kind = FF_GOP_LINEAR, .w_off = w_off, .b_off = b_off, .x = x,
                            .rm = rm, .in = in, .out = out},
           dy, out);
}

/* LayerNorm's per-example weight and bias gradients are only 2d floats: materialise them. */
void ff_ghost_layernorm(ff_model *m, size_t w_off, size_t b_off, const float *dy, const float *x,
                        const float *mean, const float *rstd, const ff_rowmap *rm, int d)
{
    ff_ghost *g = m->ghost;
    float *dw = g->vec, *db = g->vec + d;
    for (int i = 0; i < m->B; i++) {
        if (rm->len[i] == 0) continue;
        memset(dw, 0, 2 * (size_t)d * sizeof(float));
        for (int r = rm->off[i]; r < rm->off[i] + rm->len[i]; r++) {
            const float *xr = x + (size_t)r * d, *gr = dy + (size_t)r * d;
            float mu = mean[r], rs = rstd[r];
            for (int c = 0; c < d; c++) {
                dw[c] += gr[c] * ((xr[c] - mu) * rs);
                db[c] += gr[c];
            }
        }
        ff_ghost_add(m, i, w_off, dot(dw, dw, d));
        ff_ghost_add(m, i, b_off, dot(db, db, d));
    }
    record(g, (ff_ghost_op){.kind = FF_GOP_LAYERNORM, .w_off = w_off, .b_off = b_off, .x = x,
                            .mean = mean, .rstd = rstd, .rm = rm, .out = d},
           dy, d);
}

/* Rows with equal ids add into one table row: group them per example (slot per distinct id),
 * O(T·d), then sum the squared norms of the groups. */
void ff_ghost_embedding(ff_model *m, size_t off, const float *dy, const int32_t *ids,
                        const ff_rowmap *rm, int d)
{
    ff_ghost *g = m->ghost;
    for (int i = 0; i < m->B; i++) {
        int r0 = rm->off[i], r1 = r0 + rm->len[i], n = 0;
        for (int r = r0; r < r1; r++) {
            const float *gr = dy + (size_t)r * d;
            int s = g->slot[ids[r]];
            if (s < 0) {
                s = g->slot[ids[r]] = n++;
                memcpy(g->rows + (size_t)s * d, gr, (size_t)d * sizeof(float));
            } else {
                float *acc = g->rows + (size_t)s * d;
                for (int c = 0; c < d; c++)
                    acc[c] += gr[c];
            }
        }
        ff_ghost_add(m, i, off, dot(g->rows, g->rows, n * d));
        for (int r = r0; r < r1; r++)
            g->slot[ids[r]] = -1;
    }
    record(g, (ff_ghost_op){.kind = FF_GOP_EMBEDDING, .w_off = off, .ids = ids, .rm = rm,
                            .out = d},
           dy, d);
}

void ff_ghost_rows(ff_model *m, size_t off, const float *v, const ff_rowmap *rm, int d)
{
    for (int i = 0; i < m->B; i++) {
        const float *r = v + (size_t)rm->off[i] * d;
        ff_ghost_add(m, i, off, dot(r, r, rm->len[i] * d));
    }
    record(m->ghost, (ff_ghost_op){.kind = FF_GOP_ROWS, .w_off = off, .rm = rm, .out = d}, v, d);
}

void ff_model_set_ghost_policy(ff_model *m, int policy)
{
    m->ghost_policy = policy;
}

void ff_model_ghost_stats(const ff_model *m, long long *gram, long long *mat)
{
    *gram = m->ghost_buf ? m->ghost_buf->layers_gram : 0;
    *mat = m->ghost_buf ? m->ghost_buf->layers_mat : 0;
}

/* Declared tasks other than binary: example i's loss and output gradient are those of a
 * batch-of-1 pass over its own row (ff_model_task_loss, the same code as backward). */
static int example_task_losses(ff_model *m, const ff_batch *b, float *losses)
{
    int K = m->K;
    for (int i = 0; i < b->B; i++) {
        size_t o = (size_t)i * K;
        double l = 0;
        ff_zerof(m->dlogits + o, (size_t)K);
        int rc = ff_model_task_loss(&m->cfg.task_set, m->logits + o, b->labels + o,
                                    b->label_mask ? b->label_mask + o : NULL, 1, &l,
                                    m->dlogits + o);
        if (rc == FF_OK && !isfinite(l))
            rc = ff_error(FF_ENUMERIC, "ghost clipping: example %d of %d has loss %f", i, b->B,
                          l);
        if (rc != FF_OK)
            return rc;
        if (losses) losses[i] = (float)l;
    }
    return FF_OK;
}

/* Example i's loss is the mean BCE over ITS known labels (as in a batch-of-1 pass), so its
 * output gradient is m_ik (σ(z_ik) − y_ik) / M_i, with no batch normalisation. */
static int example_losses(ff_model *m, const ff_batch *b, float *losses)
{
    int K = m->K;
    if (!ff_task_set_all_binary(&m->cfg.task_set))
        return example_task_losses(m, b, losses);
    for (int i = 0; i < b->B; i++) {
        const float *z = m->logits + (size_t)i * K, *y = b->labels + (size_t)i * K;
        const float *mk = b->label_mask ? b->label_mask + (size_t)i * K : NULL;
        double M = 0, s = 0;
        for (int k = 0; k < K; k++)
            M += mk ? mk[k] : 1.0;
        for (int k = 0; k < K; k++) {
            double w = M > 0 ? (mk ? mk[k] : 1.0) / M : 0.0, zk = z[k];
            s += w * (fmax(zk, 0) - zk * y[k] + log1p(exp(-fabs(zk))));
            m->dlogits[(size_t)i * K + k] = (float)(w * (1 / (1 + exp(-zk)) - y[k]));
        }
        if (!isfinite(s))
            return ff_error(FF_ENUMERIC, "ghost clipping: example %d of %d has loss %f", i, b->B,
                            s);
        if (losses) losses[i] = (float)s;
    }
    return FF_OK;
}

/* One recorded op's parameter gradient with example i's rows scaled by s[i], added into grads
 * at the op's offsets. The copy of dy is scaled in place (it is used once). */
static void replay(ff_model *m, const ff_ghost_op *op, const float *s, float *grads)
{
    const ff_rowmap *rm = op->rm;
    int w = op->out, R = rm->R;
    float *dy = m->ghost_buf->tape + op->dy;
    for (int i = 0; i < m->B; i++) {
        float *r = dy + (size_t)rm->off[i] * w;
        for (size_t j = 0; j < (size_t)rm->len[i] * w; j++)
            r[j] *= s[i];
    }
    float *gw = grads + op->w_off, *gb = grads + op->b_off;
    switch (op->kind) {
    case FF_GOP_LINEAR: /* dW += (s ⊙ G)ᵀ A, db += Σ_r (s ⊙ G)_r */
        ff_linear_backward(NULL, gw, gb, dy, op->x, NULL, R, op->in, w);
        break;
    case FF_GOP_LAYERNORM:
        for (int r = 0; r < R; r++) {
            const float *xr = op->x + (size_t)r * w, *gr = dy + (size_t)r * w;
            float mu = op->mean[r], rs = op->rstd[r];
            for (int c = 0; c < w; c++) {
                gw[c] += gr[c] * ((xr[c] - mu) * rs);
                gb[c] += gr[c];
            }
        }
        break;
    case FF_GOP_EMBEDDING:
        ff_embedding_backward(gw, dy, op->ids, R, w);
        break;
    default: /* FF_GOP_ROWS: row t of example i goes to parameter row t */
        for (int i = 0; i < m->B; i++)
            for (int t = 0; t < rm->len[i]; t++) {
                const float *gr = dy + (size_t)(rm->off[i] + t) * w;
                for (int c = 0; c < w; c++)
                    gw[(size_t)t * w + c] += gr[c];
            }
    }
}

/* Forward, per-example output gradients into m->dlogits, and the norm pass (by_tensor: the
 * per-tensor breakdown, [B * ntensors], or NULL). */
static int ghost_norm_pass(ff_model *m, const ff_batch *b, double *norms, float *losses,
                           double *by_tensor)
{
    int rc = ghost_alloc(m);
    if (rc == FF_OK) rc = ff_model_forward(m, b, NULL, NULL);
    if (rc == FF_OK) rc = example_losses(m, b, losses);
    if (rc != FF_OK) return rc;
    ff_ghost *g = m->ghost_buf;
    g->policy = m->ghost_policy;
    g->by_tensor = by_tensor;
    g->unit.R = b->B;
    g->nops = 0, g->tape_len = 0, g->oom = 0;
    memset(g->sq, 0, (size_t)b->B * sizeof *g->sq);
    if (by_tensor) memset(by_tensor, 0, (size_t)b->B * m->ntab * sizeof *by_tensor);
    m->ghost = g;
    ff_model_backward_core(m);
    m->ghost = NULL;
    g->by_tensor = NULL;
    for (int i = 0; i < b->B; i++) {
        norms[i] = sqrt(g->sq[i]);
        if (!isfinite(norms[i]))
            return ff_error(FF_ENUMERIC, "ghost clipping: example %d has a non-finite "
                            "gradient", i);
    }
    return FF_OK;
}

static int check_batch(const ff_model *m, const ff_batch *b, const char *what)
{
    if (b->B < 0 || b->B > m->max_batch)
        return ff_error(FF_EINVAL, "%s: batch %d outside 0..%d", what, b->B, m->max_batch);
    return FF_OK;
}

int ff_model_ghost_norms(ff_model *m, const ff_batch *b, double *norms, float *losses)
{
    int rc = check_batch(m, b, "ghost norms");
    if (rc != FF_OK || b->B == 0) return rc;
    return ghost_norm_pass(m, b, norms, losses, NULL);
}

int ff_model_ghost_tensor_sqnorms(ff_model *m, const ff_batch *b, double *norms, double *sq)
{
    int rc = check_batch(m, b, "ghost norms");
    if (rc != FF_OK || b->B == 0) return rc;
    return ghost_norm_pass(m, b, norms, NULL, sq);
}

int ff_model_ghost_clipped_grad_sum(ff_model *m, const ff_batch *b, double clip, float *sum,
                                    double *norms, float *losses)
{
    int rc = check_batch(m, b, "ghost clipped sum");
    if (rc != FF_OK) return rc;
    if (!(clip > 0))
        return ff_error(FF_EINVAL, "ghost clipped sum: clip norm %g must be > 0 (inf = off)",
                        clip);
    if (b->B == 0) return FF_OK;
    double *nrm = norms ? norms : malloc((size_t)b->B * sizeof *nrm);
    if (!nrm) return ff_error(FF_ENOMEM, "ghost clipped sum: out of memory");
    rc = ghost_alloc(m);
    ff_ghost *g = m->ghost_buf;
    int bk = !(m->ghost_policy & FF_GHOST_TWO_BACKWARD);
    if (rc == FF_OK) {
        g->record = bk;
        rc = ghost_norm_pass(m, b, nrm, losses, NULL);
    }
    if (rc == FF_OK && bk && !g->oom) {
        g->record = 0;
        for (int i = 0; i < b->B; i++)
            g->scale[i] = (float)ff_dp_clip_scale(nrm[i], clip);
        for (size_t k = 0; k < g->nops; k++)
            replay(m, &g->ops[k], g->scale, sum);
    } else if (rc == FF_OK) {
        int K = m->K;
        for (int i = 0; i < b->B; i++) {
            float s = (float)ff_dp_clip_scale(nrm[i], clip);
            for (int k = 0; k < K; k++)
                m->dlogits[(size_t)i * K + k] *= s;
        }
        /* The backward adds into m->grads; pointing it at sum adds Σ_i s_i g_i there
         * directly (no zeroing and copying of a parameter-sized buffer). */
        float *grads = m->grads;
        m->grads = sum;
        ff_model_backward_core(m);
        m->grads = grads;
    }
    if (g) g->record = 0;
    if (!norms) free(nrm);
    return rc;
}
