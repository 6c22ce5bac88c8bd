/* Optimizers over the flat buffers, the learning-rate schedule, gradient clipping, the
 * training step, modality dropout and the batch validator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define OPT_CHUNK 16384

/* One AdamW update of n parameters (PyTorch's order: decoupled decay, then the Adam step). */
FF_CLONES static void adamw_span(float *restrict p, const float *restrict g, float *restrict mo,
                                 float *restrict vo, const uint8_t *restrict dec, size_t n,
                                 float b1, float b2, float eps, float wd, float step, float rbc2)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * (1.0f - wd * (float)dec[i]);
        float mi = b1 * mo[i] + (1.0f - b1) * gi;
        float vi = b2 * vo[i] + (1.0f - b2) * gi * gi;
        mo[i] = mi, vo[i] = vi;
        p[i] = pi - step * mi / (sqrtf(vi) * rbc2 + eps);
    }
}

FF_CLONES static double sumsq_span(const float *g, size_t n)
{
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += g[i] * g[i];
    return s;
}

struct ff_optim {
    ff_optim_config c;
    size_t n;
    float *m, *v;   /* moments, laid out like the parameters */
    uint8_t *decay; /* per parameter: 1 when weight decay applies */
    int64_t t;      /* steps taken */
};

void ff_optim_config_default(ff_optim_config *c)
{
    *c = (ff_optim_config){.kind = FF_OPTIM_ADAMW,
                           .lr = 3e-4f,
                           .beta1 = 0.9f,
                           .beta2 = 0.999f,
                           .eps = 1e-8f,
                           .weight_decay = 0.01f,
                           .momentum = 0.9f,
                           .clip_norm = 1.0f,
                           .warmup = 0,
                           .min_lr_ratio = 0.1f};
}

int ff_optim_new(ff_optim **out, const ff_model *m, const ff_optim_config *c)
{
    *out = NULL;
    if (c->kind != FF_OPTIM_ADAMW && c->kind != FF_OPTIM_SGD)
        return ff_error(FF_EINVAL, "optimizer: unknown kind %d", c->kind);
    if (!(c->lr >= 0) || !(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) ||
        !(c->eps > 0) || !(c->weight_decay >= 0) || !(c->momentum >= 0 && c->momentum < 1) ||
        c->warmup < 0)
        return ff_error(FF_EINVAL,
                        "optimizer: hyper-parameter out of range (lr %g, betas %g/%g,"
                        " eps %g, weight_decay %g, momentum %g, warmup %lld)",
                        c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, c->momentum,
                        (long long)c->warmup);
    ff_optim *o = calloc(1, sizeof *o);
    if (!o) return ff_error(FF_ENOMEM, "optimizer: out of memory");
    o->c = *c;
    o->n = ff_model_nparams(m);
    o->m = ff_calloc(o->n, sizeof(float));
    o->v = c->kind == FF_OPTIM_ADAMW ? ff_calloc(o->n, sizeof(float)) : NULL;
    o->decay = ff_calloc(o->n, 1);
    if (!o->m || !o->decay || (c->kind == FF_OPTIM_ADAMW && !o->v)) {
        size_t n = o->n;
        ff_optim_free(o);
        return ff_error(FF_ENOMEM, "optimizer: out of memory for %zu moments", n);
    }
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *p = ff_model_tensor(m, i);
        if (p->decay) memset(o->decay + p->offset, 1, p->numel);
    }
    *out = o;
    return FF_OK;
}

void ff_optim_free(ff_optim *o)
{
    if (!o) return;
    ff_free(o->m);
    ff_free(o->v);
    ff_free(o->decay);
    free(o);
}

int64_t ff_optim_steps(const ff_optim *o)
{
    return o->t;
}
float *ff_optim_moment(ff_optim *o, int which)
{
    return which ? o->v : o->m;
}

int ff_optim_step(ff_optim *o, ff_model *m, float lr)
{
    if (ff_model_nparams(m) != o->n)
        return ff_error(FF_EINVAL, "optimizer: built for %zu parameters, model has %zu", o->n,
                        ff_model_nparams(m));
    if (!isfinite(lr) || lr < 0) return ff_error(FF_EINVAL, "optimizer: learning rate %g", lr);
    float *p = ff_model_params(m);
    const float *g = ff_model_grads(m);
    const ff_optim_config *c = &o->c;
    o->t++;
    size_t n = o->n;
    if (c->kind == FF_OPTIM_ADAMW) {
        /* AdamW (Loshchilov & Hutter 2019), PyTorch's order: decay, then the Adam step. */
        float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = lr * c->weight_decay;
        float bc1 = 1.0f - (float)pow(b1, (double)o->t);
        float bc2 = 1.0f - (float)pow(b2, (double)o->t);
        float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2);
        size_t nc = (n + OPT_CHUNK - 1) / OPT_CHUNK;
#pragma omp parallel for schedule(dynamic, 4) if (nc > 4)
        for (size_t k = 0; k < nc; k++) {
            size_t i0 = k * OPT_CHUNK, len = FF_MIN((size_t)OPT_CHUNK, n - i0);
            adamw_span(p + i0, g + i0, o->m + i0, o->v + i0, o->decay + i0, len, b1, b2, eps, wd,
                       step, rbc2);
        }
    } else {
        /* SGD with momentum (PyTorch's form: buf = μ buf + g; p -= lr buf), L2 decay. */
        float mu = c->momentum, wd = c->weight_decay;
        float *mo = o->m;
        const uint8_t *dec = o->decay;
        int first = o->t == 1;
#pragma omp parallel for simd schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + (dec[i] ? wd * p[i] : 0.0f);
            float bi = first ? gi : mu * mo[i] + gi;
            mo[i] = bi;
            p[i] -= lr * bi;
        }
    }
    return FF_OK;
}

float ff_lr_schedule(const ff_optim_config *c, int64_t step, int64_t total)
{
    if (c->warmup > 0 && step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    int64_t span = total - c->warmup;
    if (span <= 0) return c->lr;
    double prog = (double)(step - c->warmup) / (double)span;
    prog = prog < 0 ? 0 : prog > 1 ? 1 : prog;
    double lo = c->lr * c->min_lr_ratio;
    return (float)(lo + 0.5 * (c->lr - lo) * (1.0 + cos(M_PI * prog)));
}

float ff_grad_clip_norm(float *g, size_t n, float max_norm)
{
    /* Fixed-size chunks (float within a chunk, vectorised) summed in double in chunk order:
     * the same value at any thread count. */
    enum { CH = 4096 };
    size_t nch = (n + CH - 1) / CH;
    double total = 0;
    double part[64];
    for (size_t c0 = 0; c0 < nch; c0 += 64) {
        size_t c1 = FF_MIN(nch, c0 + 64);
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t c = c0; c < c1; c++)
            part[c - c0] = sumsq_span(g + c * CH, FF_MIN(n, (c + 1) * CH) - c * CH);
        for (size_t c = c0; c < c1; c++)
            total += part[c - c0];
    }
    float norm = (float)sqrt(total);
    if (max_norm > 0 && isfinite(norm) && norm > max_norm) {
        float s = max_norm / (norm + 1e-6f);
#pragma omp parallel for simd schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++)
            g[i] *= s;
    }
    return norm;
}

int ff_model_train_step(ff_model *m, ff_optim *o, const ff_batch *b, int64_t step, int64_t total,
                        float *loss)
{
    float l = 0;
    ff_model_zero_grad(m);
    int rc = ff_model_forward(m, b, NULL, &l);
    if (rc != FF_OK) return ff_error_prefix(rc, "step %lld: ", (long long)step);
    if (!isfinite(l))
        return ff_error(FF_ENUMERIC, "step %lld: loss is %s; training stopped", (long long)step,
                        isnan(l) ? "NaN" : "infinite");
    if ((rc = ff_model_backward(m, b)) != FF_OK)
        return ff_error_prefix(rc, "step %lld: ", (long long)step);
    float gn = ff_grad_clip_norm(ff_model_grads(m), ff_model_nparams(m), o->c.clip_norm);
    if (!isfinite(gn))
        return ff_error(FF_ENUMERIC, "step %lld: gradient norm is not finite; training stopped",
                        (long long)step);
    if ((rc = ff_optim_step(o, m, ff_lr_schedule(&o->c, step, total))) != FF_OK) return rc;
    if (loss) *loss = l;
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Batches                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void drop_modality(ff_batch *b, int i, int j)
{
    if (j == 0) {
        size_t n = (size_t)b->C * b->H * b->W;
        memset(b->image + (size_t)i * n, 0, n * sizeof(float));
        b->image_present[i] = 0;
    } else if (j == 1) {
        memset(b->text_ids + (size_t)i * b->Lt, 0, (size_t)b->Lt * sizeof(int32_t));
    } else if (j == 3) {
        memset(b->tab + (size_t)i * b->F, 0, (size_t)b->F * sizeof(float));
        b->tab_present[i] = 0;
    } else {
        memset(b->ehr_code + (size_t)i * b->Le, 0, (size_t)b->Le * sizeof(int32_t));
        memset(b->ehr_val + (size_t)i * b->Le, 0, (size_t)b->Le * sizeof(int32_t));
        memset(b->ehr_time + (size_t)i * b->Le, 0, (size_t)b->Le * sizeof(int32_t));
    }
}

int ff_modality_dropout(ff_batch *b, float p, ff_rng *rng)
{
    if (!(p >= 0 && p <= 1)) return ff_error(FF_EINVAL, "modality dropout: p=%g outside [0, 1]", p);
    /* The tabular modality takes part only in a batch that has it, so a batch without draws
     * exactly as before it existed. */
    int M = b->tab && b->tab_present && b->F > 0 ? 4 : 3;
    for (int i = 0; i < b->B; i++) {
        int pres[4], drop[4], np = 0, nd = 0;
        for (int j = 0; j < M; j++) {
            pres[j] = ff_batch_present(b, i, j);
            /* one draw per modality whether present or not: the stream stays aligned */
            drop[j] = ff_rng_uniform(rng) < p && pres[j];
            np += pres[j];
            nd += drop[j];
        }
        if (np > 0 && nd == np) {
            /* never drop everything: keep one present modality, chosen uniformly */
            uint32_t keep = ff_rng_below(rng, (uint32_t)np);
            for (int j = 0; j < M; j++)
                if (pres[j] && keep-- == 0) drop[j] = 0;
        }
        for (int j = 0; j < M; j++)
            if (drop[j]) drop_modality(b, i, j);
    }
    return FF_OK;
}

static int check_ids(const char *name, const int32_t *ids, size_t n, int L, int64_t vocab)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return ff_error(FF_ERANGE,
                            "batch: %s[%zu] (sample %zu, position %zu) = %d is "
                            "outside [0, %lld)",
                            name, i, i / (size_t)L, i % (size_t)L, ids[i], (long long)vocab);
    return FF_OK;
}

static int check_floats(const char *name, const float *x, size_t n, size_t row, int binary)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return ff_error(FF_ENUMERIC, "batch: %s[%zu] (sample %zu) is %s", name, i, i / row,
                            isnan(x[i]) ? "NaN" : "infinite");
        if (binary && x[i] != 0.0f && x[i] != 1.0f)
            return ff_error(FF_ERANGE, "batch: %s[%zu] (sample %zu) = %g, expected 0 or 1", name, i,
                            i / row, x[i]);
    }
    return FF_OK;
}

/* Column k of the labels holds a 0/1 target (binary, multiclass one-hot, survival event);
 * regression values and survival times may be any finite number. */
static int label_is_probability(const ff_task_set *ts, int k)
{
    for (int t = 0; t < ts->n; t++) {
        const ff_task *tk = &ts->t[t];
        if (k < tk->col || k >= tk->col + ff_task_width(tk))
            continue;
        return tk->kind == FF_TASK_BINARY || tk->kind == FF_TASK_MULTICLASS ||
               (tk->kind == FF_TASK_SURVIVAL && k == tk->col + 1);
    }
    return 1;
}

int ff_model_check_batch(const ff_model *m, const ff_batch *b)
{
    const ff_model_config *c = ff_model_cfg(m);
    int rc = ff_model_check_dims(m, b);
    if (rc != FF_OK) return rc;
    size_t B = (size_t)b->B, img = (size_t)b->C * b->H * b->W;
    if ((rc = check_floats("image", b->image, B * img, img, 0)) ||
        (rc = check_floats("image_present", b->image_present, B, 1, 1)) ||
        (rc = check_floats("labels", b->labels, B * b->K, (size_t)b->K, 0)) ||
        (b->label_mask &&
         (rc = check_floats("label_mask", b->label_mask, B * b->K, (size_t)b->K, 1))) ||
        (rc = check_ids("text_ids", b->text_ids, B * b->Lt, b->Lt, c->text.vocab)) ||
        (rc = check_ids("ehr_code", b->ehr_code, B * b->Le, b->Le, c->ehr.codes)) ||
        (rc = check_ids("ehr_val", b->ehr_val, B * b->Le, b->Le, c->ehr.values)) ||
        (rc = check_ids("ehr_time", b->ehr_time, B * b->Le, b->Le, c->ehr.times)) ||
        (c->tabular.n > 0 &&
         ((rc = check_floats("tabular", b->tab, B * b->F, (size_t)b->F, 0)) ||
          (rc = check_floats("tabular_present", b->tab_present, B, 1, 1)))))
        return rc;
    for (size_t i = 0; i < B * b->K; i++)
        if (label_is_probability(&c->task_set, (int)(i % (size_t)b->K)) &&
            (b->labels[i] < 0 || b->labels[i] > 1))
            return ff_error(FF_ERANGE, "batch: labels[%zu] (sample %zu) = %g outside [0, 1]", i,
                            i / (size_t)b->K, b->labels[i]);
    for (int i = 0; i < b->B; i++)
        if (!ff_batch_present(b, i, 0) && !ff_batch_present(b, i, 1) &&
            !ff_batch_present(b, i, 2) && !(c->tabular.n > 0 && ff_batch_present(b, i, 3)))
            return ff_error(FF_EINVAL,
                            "batch: sample %d has no modality present (image, text "
                            "and EHR all absent)",
                            i);
    return FF_OK;
}
