/* Optimised kernels: every matrix product through cblas_sgemm (single-threaded OpenBLAS,
 * large products split over our one OpenMP pool), everything else in row loops parallel over
 * the batch with `omp simd` inner loops. The plain twins are in kernels_ref.inc. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define REAL float
#define REF(name) name##_ref
#include "kernels_ref.inc"
#undef REAL
#undef REF

static int g_threads = 1;

int ff_models_set_threads(int n)
{
    if (n < 1 || n > FF_MODELS_MAX_THREADS)
        return ff_error(FF_EINVAL, "compute threads: %d outside [1, %d]", n,
                        FF_MODELS_MAX_THREADS);
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    /* Our pool splits the products; a second pool inside OpenBLAS would fight it. */
    openblas_set_num_threads(1);
    return FF_OK;
}

int ff_models_threads(void)
{
    return g_threads;
}

static int in_parallel(void)
{
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return 1;
#endif
}

/* ---- vectorisable exp (Cephes-style polynomial, ~1 ulp on [-87, 88]) ---- */

static inline float fast_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest by the 1.5·2²³ trick: no libm call, so the loop vectorises */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } u;
    u.i = ((int32_t)n + 127) << 23;
    return p * u.f;
}

/* ---- GEMM ---- */

void ff_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    enum CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = transB ? CblasTrans : CblasNoTrans;
    int nt = in_parallel() ? 1 : g_threads;
    double work = (double)M * N * K;
    if (nt <= 1 || work < 262144.0 || (M < 32 && N < 32)) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Split the larger of M and N into fixed slabs (multiples of 16 so the micro-kernels stay
     * on full tiles), three per thread, handed out dynamically: on a shared machine a thread
     * that loses its core leaves its slabs to the other. Each element of C is computed by one
     * call over the same slab whoever runs it, so the result does not depend on scheduling. */
    int split_m = M >= N;
    int len = split_m ? M : N;
    int chunk = ((len + 3 * nt - 1) / (3 * nt) + 15) / 16 * 16;
    chunk = FF_MAX(chunk, 64);
    int nchunks = (len + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int t = 0; t < nchunks; t++) {
        int s0 = t * chunk;
        int n = FF_MIN(chunk, len - s0);
        if (n > 0) {
            if (split_m) {
                const float *a = transA ? A + s0 : A + (size_t)s0 * lda;
                cblas_sgemm(CblasRowMajor, ta, tb, n, N, K, alpha, a, lda, B, ldb, beta,
                            C + (size_t)s0 * ldc, ldc);
            } else {
                const float *b = transB ? B + (size_t)s0 * ldb : B + s0;
                cblas_sgemm(CblasRowMajor, ta, tb, M, n, K, alpha, A, lda, b, ldb, beta, C + s0,
                            ldc);
            }
        }
    }
}

/* ---- copies and clears ---- */

/* Large copies and clears are split over the pool too: serial, they were a tenth of a
 * two-thread step. */
#define SPLIT_FLOATS (1u << 16)

void ff_copyf(float *dst, const float *src, size_t n)
{
    if (n < SPLIT_FLOATS || g_threads == 1 || in_parallel()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    size_t nc = (n + SPLIT_FLOATS - 1) / SPLIT_FLOATS;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++)
        memcpy(dst + c * SPLIT_FLOATS, src + c * SPLIT_FLOATS,
               FF_MIN((size_t)SPLIT_FLOATS, n - c * SPLIT_FLOATS) * sizeof(float));
}

void ff_zerof(float *dst, size_t n)
{
    if (n < SPLIT_FLOATS || g_threads == 1 || in_parallel()) {
        memset(dst, 0, n * sizeof(float));
        return;
    }
    size_t nc = (n + SPLIT_FLOATS - 1) / SPLIT_FLOATS;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++)
        memset(dst + c * SPLIT_FLOATS, 0,
               FF_MIN((size_t)SPLIT_FLOATS, n - c * SPLIT_FLOATS) * sizeof(float));
}

/* ---- linear ---- */

/* Rows [r0, r1) of y: residual + bias (or bias, or bias added to y), then one GEMM with
 * β = 1 on top of it. */
static void linear_rows(float *y, const float *res, const float *x, const float *W, const float *b,
                        int r0, int r1, int in, int out, int accumulate)
{
    if (res)
        for (int n = r0; n < r1; n++) {
            float *yr = y + (size_t)n * out;
            const float *rr = res + (size_t)n * out;
            if (b) {
#pragma omp simd
                for (int o = 0; o < out; o++)
                    yr[o] = rr[o] + b[o];
            } else {
                memcpy(yr, rr, (size_t)out * sizeof(float));
            }
        }
    else if (b)
        for (int n = r0; n < r1; n++) {
            float *yr = y + (size_t)n * out;
            if (accumulate) {
#pragma omp simd
                for (int o = 0; o < out; o++)
                    yr[o] += b[o];
            } else {
                memcpy(yr, b, (size_t)out * sizeof(float));
            }
        }
    float beta = (res || b || accumulate) ? 1.0f : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, out, in, 1.0f,
                x + (size_t)r0 * in, in, W, in, beta, y + (size_t)r0 * out, out);
}

static void linear_forward_core(float *y, const float *res, const float *x, const float *W,
                                const float *b, int N, int in, int out, int accumulate)
{
    int nt = in_parallel() ? 1 : g_threads;
    if (nt <= 1 || (double)N * in * out < 262144.0 || N < 128) {
        linear_rows(y, res, x, W, b, 0, N, in, out, accumulate);
        return;
    }
    /* Row slabs as in ff_gemm, each with its own bias rows: one parallel region per layer. */
    int chunk = FF_MAX(((N + 3 * nt - 1) / (3 * nt) + 15) / 16 * 16, 64);
    int nchunks = (N + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int t = 0; t < nchunks; t++)
        linear_rows(y, res, x, W, b, t * chunk, FF_MIN(N, (t + 1) * chunk), in, out, accumulate);
}

void ff_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in,
                       int out, int accumulate)
{
    linear_forward_core(y, NULL, x, W, b, N, in, out, accumulate);
}

void ff_linear_forward_residual(float *y, const float *res, const float *x, const float *W,
                                const float *b, int N, int in, int out)
{
    linear_forward_core(y, res, x, W, b, N, in, out, 0);
}

void ff_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                        const float *W, int N, int in, int out)
{
    if (dx) ff_gemm(0, 0, N, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in);
    ff_gemm(1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db) {
        /* Column sums: each thread owns a slice of columns, rows summed in order. */
#pragma omp parallel for schedule(static) if (!in_parallel() && out >= 256)
        for (int o0 = 0; o0 < out; o0 += 64) {
            int o1 = FF_MIN(out, o0 + 64);
            for (int n = 0; n < N; n++) {
                const float *r = dy + (size_t)n * out;
#pragma omp simd
                for (int o = o0; o < o1; o++)
                    db[o] += r[o];
            }
        }
    }
}

/* ---- layernorm ---- */

FF_CLONES static void layernorm_rows(float *y, float *mean, float *rstd, const float *x,
                                     const float *w, const float *b, int n0, int n1, int C)
{
    for (int n = n0; n < n1; n++) {
        const float *xr = x + (size_t)n * C;
        float *yr = y + (size_t)n * C;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++)
            s += xr[c];
        float mu = s / C, v = 0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++)
            v += (xr[c] - mu) * (xr[c] - mu);
        float rs = 1.0f / sqrtf(v / C + 1e-5f);
#pragma omp simd
        for (int c = 0; c < C; c++)
            yr[c] = (xr[c] - mu) * rs * w[c] + b[c];
        mean[n] = mu;
        rstd[n] = rs;
    }
}

void ff_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int N, int C)
{
    int nch = N >= 256 ? 16 : 1;
#pragma omp parallel for schedule(dynamic, 1) if (!in_parallel() && nch > 1)
    for (int t = 0; t < nch; t++)
        layernorm_rows(y, mean, rstd, x, w, b, (int)((int64_t)N * t / nch),
                       (int)((int64_t)N * (t + 1) / nch), C);
}

#define LN_CHUNKS 16

FF_CLONES static void layernorm_back_rows(float *dx, float *pdw, float *pdb, const float *dy,
                                          const float *x, const float *mean, const float *rstd,
                                          const float *w, int r0, int r1, int C)
{
    for (int n = r0; n < r1; n++) {
        const float *xr = x + (size_t)n * C, *gr = dy + (size_t)n * C;
        float *dxr = dx + (size_t)n * C;
        float mu = mean[n], rs = rstd[n], mg = 0, mgx = 0;
#pragma omp simd reduction(+ : mg, mgx)
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - mu) * rs;
            float g = gr[c] * w[c];
            mg += g;
            mgx += g * xh;
            pdw[c] += gr[c] * xh;
            pdb[c] += gr[c];
        }
        mg /= C;
        mgx /= C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - mu) * rs;
            dxr[c] += rs * (gr[c] * w[c] - mg - xh * mgx);
        }
    }
}

void ff_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *w, int N, int C,
                           float *scratch)
{
    /* Rows are split in LN_CHUNKS fixed ranges; each range sums its dw/db in its own slot and
     * the slots are added in range order: the same bits at any thread count or schedule. */
    int nch = N >= 4 * LN_CHUNKS ? LN_CHUNKS : 1;
    memset(scratch, 0, (size_t)nch * 2 * C * sizeof(float));
#pragma omp parallel for schedule(dynamic, 1) if (!in_parallel() && nch > 1)
    for (int t = 0; t < nch; t++) {
        float *pdw = scratch + (size_t)t * 2 * C;
        layernorm_back_rows(dx, pdw, pdw + C, dy, x, mean, rstd, w, (int)((int64_t)N * t / nch),
                            (int)((int64_t)N * (t + 1) / nch), C);
    }
    for (int t = 0; t < nch; t++) {
        const float *pdw = scratch + (size_t)t * 2 * C, *pdb = pdw + C;
        for (int c = 0; c < C; c++) {
            dw[c] += pdw[c];
            db[c] += pdb[c];
        }
    }
}

/* ---- GELU ---- */

/* With s = σ(2u) = (1 + tanh u)/2 the tanh GELU is x·s, and its derivative
 * s + x · 2s(1−s) · u'. Written this way neither tail cancels (1 + tanh u near −1 would). */
FF_CLONES static void gelu_fwd_span(float *restrict y, const float *restrict x, size_t n)
{
    const float k = 0.7978845608028654f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        float u = k * (xi + 0.044715f * xi * xi * xi);
        y[i] = xi / (1.0f + fast_expf(-2.0f * u));
    }
}

static inline float gelu_grad(float xi)
{
    const float k = 0.7978845608028654f;
    float u = k * (xi + 0.044715f * xi * xi * xi);
    float em = fast_expf(-2.0f * u);
    float sg = 1.0f / (1.0f + em);
    float du = k * (1.0f + 3.0f * 0.044715f * xi * xi);
    return sg + xi * 2.0f * sg * (em * sg) * du;
}

FF_CLONES static void gelu_bwd_span(float *restrict dx, const float *restrict dy,
                                    const float *restrict x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i] * gelu_grad(x[i]);
}

FF_CLONES static void gelu_bwd_inplace_span(float *restrict g, const float *restrict x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        g[i] *= gelu_grad(x[i]);
}

#define GELU_CHUNK 8192

void ff_gelu_backward_inplace(float *g, const float *x, size_t n)
{
    size_t nc = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) if (!in_parallel() && nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * GELU_CHUNK;
        gelu_bwd_inplace_span(g + i0, x + i0, FF_MIN(n - i0, (size_t)GELU_CHUNK));
    }
}

void ff_gelu_forward(float *y, const float *x, size_t n)
{
    size_t nc = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) if (!in_parallel() && nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * GELU_CHUNK;
        gelu_fwd_span(y + i0, x + i0, FF_MIN(n - i0, (size_t)GELU_CHUNK));
    }
}

void ff_gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    size_t nc = (n + GELU_CHUNK - 1) / GELU_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) if (!in_parallel() && nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * GELU_CHUNK;
        gelu_bwd_span(dx + i0, dy + i0, x + i0, FF_MIN(n - i0, (size_t)GELU_CHUNK));
    }
}

/* ---- attention ---- */

/* Keys past the last valid one contribute nothing; padding sits at the end of a row, so
 * limiting the products to [0, last valid + 1) saves the work without changing a value. */
static int key_extent(const uint8_t *m, int Tk)
{
    if (!m) return Tk;
    int e = Tk;
    while (e > 0 && !m[e - 1])
        e--;
    return e;
}

/* Row softmax over the first te columns (masked keys get exactly 0), zero beyond te. The
 * mask enters as a −∞ bias in the max and a 0/1 factor after the exp, so both loops
 * vectorise. Every row has a valid key: te ends on one. */
/* Row softmax over the first te columns (masked keys get exactly 0), zero beyond te up to ld.
 * The mask enters as a −∞ bias in the max and a 0/1 factor after the exp, so the loops
 * vectorise; they run over w ≥ te columns (w ≤ ld, a multiple of 16 when the row has room),
 * the extra columns weighted 0, so no scalar remainder loop is left. Every row has a valid
 * key: te ends on one. */
/* max_j (p[j] + mb[j]) in 16 lanes: the max is exact, so the lanes give the bits of a plain
 * loop. (clang cannot vectorise an `omp simd reduction(max)` over floats without fast-math
 * and says so with -Wpass-failed; this form vectorises with gcc and clang alike.) */
static inline float masked_max(const float *p, const float *mb, int w)
{
    float lane[16];
    for (int k = 0; k < 16; k++)
        lane[k] = -INFINITY;
    int j = 0;
    for (; j + 16 <= w; j += 16) {
#pragma omp simd
        for (int k = 0; k < 16; k++) {
            float v = p[j + k] + mb[j + k];
            lane[k] = v > lane[k] ? v : lane[k];
        }
    }
    float mx = -INFINITY;
    for (; j < w; j++) {
        float v = p[j] + mb[j];
        mx = v > mx ? v : mx;
    }
    for (int k = 0; k < 16; k++)
        mx = lane[k] > mx ? lane[k] : mx;
    return mx;
}

FF_CLONES static void softmax_rows(float *S, int ld, int Tq, int te, int w, const uint8_t *m)
{
    float mfb[2 * 1024];
    float *mf = mfb, *mb = mfb + 1024;
    if (w > 1024) { /* very long rows: the plain form */
        for (int i = 0; i < Tq; i++) {
            float *p = S + (size_t)i * ld;
            float mx = -INFINITY, sum = 0;
            for (int j = 0; j < te; j++)
                if ((!m || m[j]) && p[j] > mx) mx = p[j];
            for (int j = 0; j < te; j++) {
                p[j] = (!m || m[j]) ? fast_expf(p[j] - mx) : 0.0f;
                sum += p[j];
            }
            for (int j = 0; j < te; j++)
                p[j] /= sum;
            for (int j = te; j < ld; j++)
                p[j] = 0;
        }
        return;
    }
    for (int j = 0; j < w; j++) {
        int on = j < te && (!m || m[j]);
        mf[j] = on ? 1.0f : 0.0f;
        mb[j] = on ? 0.0f : -INFINITY;
    }
    for (int i = 0; i < Tq; i++) {
        float *p = S + (size_t)i * ld;
        float mx = -INFINITY, sum = 0;
        for (int j = te; j < w; j++)
            p[j] = 0; /* the GEMM did not write these */
        mx = masked_max(p, mb, w);
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < w; j++) {
            float e = fast_expf(p[j] - mx) * mf[j];
            p[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < w; j++)
            p[j] *= inv;
        for (int j = w; j < ld; j++)
            p[j] = 0;
    }
}

/* Row stride of the saved probabilities of one (sample, head): pld when the caller fixes it,
 * else te rounded up to 16 when the slot has room (vector-friendly rows), else te. */
static int probs_ld(int pld, int te, int Tq, size_t pstride)
{
    if (pld) return pld;
    int t16 = (te + 15) / 16 * 16;
    return (size_t)Tq * t16 <= pstride ? t16 : te;
}

/* dS = scale · P ⊙ (dP − Σ_j dP P), row by row (the softmax Jacobian). */
FF_CLONES static void softmax_back_rows(float *dS, int ldS, const float *P, int ldP, int Tq, int te,
                                        float scale)
{
    for (int i = 0; i < Tq; i++) {
        const float *p = P + (size_t)i * ldP;
        float *s = dS + (size_t)i * ldS;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < te; j++)
            dot += s[j] * p[j];
#pragma omp simd
        for (int j = 0; j < te; j++)
            s[j] = scale * p[j] * (s[j] - dot);
    }
}

/* Sample b's query rows: qoff/qlen arrays, or b*Tq .. b*Tq+Tq-1 when they are NULL (the
 * regular layout); keys likewise with koff/klen/Tk. */
#define ROWS(arr, b, T) ((arr) ? (arr)[b] : (b) * (T))
#define LEN(arr, b, T) ((arr) ? (arr)[b] : (T))

static void attention_fwd_core(float *out, float *probs, size_t pstride, int pld, const float *q,
                               int ldq, const float *k, const float *v, int ldkv,
                               const uint8_t *kmask, int kmask_ld, int B, const int *qoff,
                               const int *qlen, const int *koff, const int *klen, int Tq0, int Tk0,
                               int H, int hd)
{
    const float scale = 1.0f / sqrtf((float)hd);
    const int d = H * hd;
#pragma omp parallel for schedule(dynamic, 1) if (!in_parallel() && B * H > 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, Tq = LEN(qlen, b, Tq0);
        size_t q0 = (size_t)ROWS(qoff, b, Tq0), k0 = (size_t)ROWS(koff, b, Tk0);
        if (Tq == 0) continue;
        const uint8_t *mk = kmask ? kmask + (size_t)b * kmask_ld : NULL;
        int te = key_extent(mk, LEN(klen, b, Tk0));
        int ld = probs_ld(pld, te, Tq, pstride);
        float *P = probs + (size_t)bh * pstride;
        float *O = out + q0 * d + h * hd;
        if (te == 0) { /* no valid key: all-zero weights, zero output */
            if (pld) memset(P, 0, (size_t)Tq * pld * sizeof(float));
            for (int i = 0; i < Tq; i++)
                memset(O + (size_t)i * d, 0, (size_t)hd * sizeof(float));
            continue;
        }
        const float *Q = q + q0 * ldq + h * hd;
        const float *K = k + k0 * ldkv + h * hd;
        const float *V = v + k0 * ldkv + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, te, hd, scale, Q, ldq, K, ldkv,
                    0.0f, P, ld);
        softmax_rows(P, ld, Tq, te, FF_MIN(ld, (te + 15) / 16 * 16), mk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hd, te, 1.0f, P, ld, V, ldkv,
                    0.0f, O, d);
    }
}

static void attention_bwd_core(float *dq, float *dk, float *dv, const float *dout,
                               const float *probs, size_t pstride, int pld, const float *q, int ldq,
                               const float *k, const float *v, int ldkv, const uint8_t *kmask,
                               int kmask_ld, int B, const int *qoff, const int *qlen,
                               const int *koff, const int *klen, int Tq0, int Tk0, int H, int hd,
                               float *scratch)
{
    const float scale = 1.0f / sqrtf((float)hd);
    const int d = H * hd;
    /* scratch holds FF_MODELS_MAX_THREADS slices, one per thread number: the team is never
     * wider than the pool (g_threads is bounded by it), whatever this thread's OpenMP default. */
    const int nt = FF_MIN(g_threads, FF_MODELS_MAX_THREADS);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (!in_parallel() && B * H > 1)
    for (int bh = 0; bh < B * H; bh++) {
#ifdef _OPENMP
        float *dS = scratch + (size_t)omp_get_thread_num() * pstride;
#else
        float *dS = scratch;
#endif
        int b = bh / H, h = bh % H, Tq = LEN(qlen, b, Tq0);
        size_t q0 = (size_t)ROWS(qoff, b, Tq0), k0 = (size_t)ROWS(koff, b, Tk0);
        const uint8_t *mk = kmask ? kmask + (size_t)b * kmask_ld : NULL;
        int te = key_extent(mk, LEN(klen, b, Tk0));
        if (te == 0 || Tq == 0) continue;
        int ld = probs_ld(pld, te, Tq, pstride);
        const float *P = probs + (size_t)bh * pstride;
        const float *dO = dout + q0 * d + h * hd;
        const float *Q = q + q0 * ldq + h * hd;
        const float *K = k + k0 * ldkv + h * hd;
        const float *V = v + k0 * ldkv + h * hd;
        float *dQ = dq + q0 * ldq + h * hd;
        float *dK = dk + k0 * ldkv + h * hd;
        float *dV = dv + k0 * ldkv + h * hd;
        /* dP = dO Vᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, te, hd, 1.0f, dO, d, V, ldkv, 0.0f,
                    dS, te);
        /* dV += Pᵀ dO */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, te, hd, Tq, 1.0f, P, ld, dO, d, 1.0f,
                    dV, ldkv);
        softmax_back_rows(dS, te, P, ld, Tq, te, scale);
        /* dQ += dS K;  dK += dSᵀ Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hd, te, 1.0f, dS, te, K, ldkv,
                    1.0f, dQ, ldq);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, te, hd, Tq, 1.0f, dS, te, Q, ldq, 1.0f,
                    dK, ldkv);
    }
}

void ff_attention_forward_var(float *out, float *probs, size_t pstride, int pld, const float *q,
                              int ldq, const float *k, const float *v, int ldkv,
                              const uint8_t *kmask, int kmask_ld, int B, const int *qoff,
                              const int *qlen, const int *koff, const int *klen, int H, int hd)
{
    attention_fwd_core(out, probs, pstride, pld, q, ldq, k, v, ldkv, kmask, kmask_ld, B, qoff, qlen,
                       koff, klen, 0, 0, H, hd);
}

void ff_attention_backward_var(float *dq, float *dk, float *dv, const float *dout,
                               const float *probs, size_t pstride, int pld, const float *q, int ldq,
                               const float *k, const float *v, int ldkv, const uint8_t *kmask,
                               int kmask_ld, int B, const int *qoff, const int *qlen,
                               const int *koff, const int *klen, int H, int hd, float *scratch)
{
    attention_bwd_core(dq, dk, dv, dout, probs, pstride, pld, q, ldq, k, v, ldkv, kmask, kmask_ld,
                       B, qoff, qlen, koff, klen, 0, 0, H, hd, scratch);
}

void ff_attention_forward(float *out, float *probs, const float *q, int ldq, const float *k,
                          const float *v, int ldkv, const uint8_t *kmask, int B, int Tq, int Tk,
                          int H, int hd)
{
    attention_fwd_core(out, probs, (size_t)Tq * Tk, Tk, q, ldq, k, v, ldkv, kmask, Tk, B, NULL,
                       NULL, NULL, NULL, Tq, Tk, H, hd);
}

void ff_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                           const float *q, int ldq, const float *k, const float *v, int ldkv,
                           const uint8_t *kmask, int B, int Tq, int Tk, int H, int hd,
                           float *scratch)
{
    attention_bwd_core(dq, dk, dv, dout, probs, (size_t)Tq * Tk, Tk, q, ldq, k, v, ldkv, kmask, Tk,
                       B, NULL, NULL, NULL, NULL, Tq, Tk, H, hd, scratch);
}

/* ---- embeddings, positions, patches ---- */

void ff_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int d,
                          int accumulate)
{
#pragma omp parallel for schedule(static) if (!in_parallel() && N >= 256)
    for (int n = 0; n < N; n++) {
        const float *row = table + (size_t)ids[n] * d;
        float *o = out + (size_t)n * d;
        if (accumulate) {
#pragma omp simd
            for (int c = 0; c < d; c++)
                o[c] += row[c];
        } else {
            memcpy(o, row, (size_t)d * sizeof(float));
        }
    }
}

void ff_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int d)
{
    /* Two tokens may share an id, so rows cannot be split across threads; columns can, and
     * each column slice is accumulated in token order (deterministic). Only the rows that
     * ids name are touched: the gradient is sparse in the vocabulary. */
    int cw = d >= 64 ? d / 2 : d;
#pragma omp parallel for schedule(static) if (!in_parallel() && N >= 256 && cw < d)
    for (int c0 = 0; c0 < d; c0 += cw) {
        int c1 = FF_MIN(d, c0 + cw);
        for (int n = 0; n < N; n++) {
            float *row = dtable + (size_t)ids[n] * d;
            const float *g = dout + (size_t)n * d;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                row[c] += g[c];
        }
    }
}

void ff_pos_forward(float *out, const float *pos, int B, int T, int d)
{
#pragma omp parallel for schedule(static) if (!in_parallel() && B * T >= 256)
    for (int bt = 0; bt < B * T; bt++) {
        const float *p = pos + (size_t)(bt % T) * d;
        float *o = out + (size_t)bt * d;
#pragma omp simd
        for (int c = 0; c < d; c++)
            o[c] += p[c];
    }
}

void ff_pos_backward(float *dpos, const float *dout, int B, int T, int d)
{
#pragma omp parallel for schedule(static) if (!in_parallel() && B * T >= 256)
    for (int t = 0; t < T; t++) {
        float *p = dpos + (size_t)t * d;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * T + t) * d;
#pragma omp simd
            for (int c = 0; c < d; c++)
                p[c] += g[c];
        }
    }
}

void ff_patchify_forward(float *out, const float *img, int B, int C, int S, int P)
{
    int G = S / P;
#pragma omp parallel for schedule(static) if (!in_parallel() && B > 1)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < G * G; t++) {
            int pr = t / G, pc = t % G;
            float *o = out + ((size_t)b * G * G + t) * C * P * P;
            for (int c = 0; c < C; c++)
                for (int i = 0; i < P; i++)
                    memcpy(o + ((size_t)c * P + i) * P,
                           img + (((size_t)b * C + c) * S + (size_t)pr * P + i) * S +
                               (size_t)pc * P,
                           (size_t)P * sizeof(float));
        }
}

void ff_patchify_backward(float *dimg, const float *dout, int B, int C, int S, int P)
{
    int G = S / P;
#pragma omp parallel for schedule(static) if (!in_parallel() && B > 1)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < G * G; t++) {
            int pr = t / G, pc = t % G;
            const float *g = dout + ((size_t)b * G * G + t) * C * P * P;
            for (int c = 0; c < C; c++)
                for (int i = 0; i < P; i++) {
                    float *r =
                        dimg + (((size_t)b * C + c) * S + (size_t)pr * P + i) * S + (size_t)pc * P;
                    for (int j = 0; j < P; j++)
                        r[j] += g[((size_t)c * P + i) * P + j];
                }
        }
}

/* ---- masked mean ---- */

/* Sample b's rows: off/len arrays (ragged), or b*T .. b*T+T-1 when off is NULL. */
static void mean_core_fwd(float *out, const float *x, const uint8_t *mask, int mask_ld, int B,
                          const int *off, const int *len, int T, int d)
{
#pragma omp parallel for schedule(static) if (!in_parallel() && B * T >= 256)
    for (int b = 0; b < B; b++) {
        const uint8_t *mk = mask ? mask + (size_t)b * mask_ld : NULL;
        size_t r0 = off ? (size_t)off[b] : (size_t)b * T;
        int n = off ? len[b] : T, cnt = 0;
        float *o = out + (size_t)b * d;
        memset(o, 0, (size_t)d * sizeof(float));
        for (int t = 0; t < n; t++) {
            if (mk && !mk[t]) continue;
            const float *r = x + (r0 + t) * d;
#pragma omp simd
            for (int c = 0; c < d; c++)
                o[c] += r[c];
            cnt++;
        }
        if (!cnt) continue; /* an absent modality pools to 0, never NaN */
        float inv = 1.0f / (float)cnt;
#pragma omp simd
        for (int c = 0; c < d; c++)
            o[c] *= inv;
    }
}

static void mean_core_bwd(float *dx, const float *dout, const uint8_t *mask, int mask_ld, int B,
                          const int *off, const int *len, int T, int d)
{
#pragma omp parallel for schedule(static) if (!in_parallel() && B * T >= 256)
    for (int b = 0; b < B; b++) {
        const uint8_t *mk = mask ? mask + (size_t)b * mask_ld : NULL;
        size_t r0 = off ? (size_t)off[b] : (size_t)b * T;
        int n = off ? len[b] : T, cnt = 0;
        for (int t = 0; t < n; t++)
            cnt += !mk || mk[t];
        if (!cnt) continue;
        float inv = 1.0f / (float)cnt;
        const float *g = dout + (size_t)b * d;
        for (int t = 0; t < n; t++) {
            if (mk && !mk[t]) continue;
            float *r = dx + (r0 + t) * d;
#pragma omp simd
            for (int c = 0; c < d; c++)
                r[c] += g[c] * inv;
        }
    }
}

void ff_masked_mean_forward(float *out, const float *x, const uint8_t *mask, int B, int T, int d)
{
    mean_core_fwd(out, x, mask, T, B, NULL, NULL, T, d);
}

void ff_masked_mean_backward(float *dx, const float *dout, const uint8_t *mask, int B, int T, int d)
{
    mean_core_bwd(dx, dout, mask, T, B, NULL, NULL, T, d);
}

void ff_masked_mean_forward_var(float *out, const float *x, const uint8_t *mask, int mask_ld, int B,
                                const int *off, const int *len, int d)
{
    mean_core_fwd(out, x, mask, mask_ld, B, off, len, mask_ld, d);
}

void ff_masked_mean_backward_var(float *dx, const float *dout, const uint8_t *mask, int mask_ld,
                                 int B, const int *off, const int *len, int d)
{
    mean_core_bwd(dx, dout, mask, mask_ld, B, off, len, mask_ld, d);
}

/* ---- loss ---- */

float ff_bce_forward(const float *logits, const float *y, const float *mask, int n)
{
    return ff_bce_forward_ref(logits, y, mask, n); /* K·B values: nothing to optimise */
}

void ff_bce_backward(float *dlogits, const float *logits, const float *y, const float *mask, int n)
{
    ff_bce_backward_ref(dlogits, logits, y, mask, n);
}
