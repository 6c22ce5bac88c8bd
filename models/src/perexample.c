/* Per-example gradients for DP-SGD (Abadi et al. 2016), the exact baseline: each example of
 * the batch runs forward and backward alone, as a batch-of-1 view of its rows (the model's
 * activations are sized for max_batch, so a view of one row fits), into the model's gradient
 * buffer; its L2 norm is taken there, it is scaled by min(1, C / norm) and added into the
 * caller's sum. Memory O(params) beyond the model, results exact (the model has no
 * cross-sample coupling: LayerNorm is per token, attention per sample, the loss a sum), time
 * B small passes instead of one batched pass. Ghost clipping is described in docs/privacy.md. */
#include <math.h>
#include <string.h>

#include "internal.h"

ff_batch ff_batch_row(const ff_batch *b, int i)
{
    ff_batch v = *b;
    size_t img = (size_t)b->C * (size_t)b->H * (size_t)b->W, r = (size_t)i;
    v.B = 1;
    v.image = b->image ? b->image + r * img : NULL;
    v.image_present = b->image_present ? b->image_present + r : NULL;
    v.text_ids = b->text_ids ? b->text_ids + r * (size_t)b->Lt : NULL;
    v.ehr_code = b->ehr_code ? b->ehr_code + r * (size_t)b->Le : NULL;
    v.ehr_val = b->ehr_val ? b->ehr_val + r * (size_t)b->Le : NULL;
    v.ehr_time = b->ehr_time ? b->ehr_time + r * (size_t)b->Le : NULL;
    v.labels = b->labels ? b->labels + r * (size_t)b->K : NULL;
    v.label_mask = b->label_mask ? b->label_mask + r * (size_t)b->K : NULL;
    return v;
}

/* Gradient of example i's own loss into m->grads (cleared first); its loss into *loss. */
static int example_grad(ff_model *m, const ff_batch *b, int i, float *loss)
{
    ff_batch v = ff_batch_row(b, i);
    ff_model_zero_grad(m);
    int rc = ff_model_forward(m, &v, NULL, loss);
    if (rc != FF_OK)
        return ff_error(rc, "per-example gradients: example %d of %d", i, b->B);
    if (!isfinite(*loss))
        return ff_error(FF_ENUMERIC, "per-example gradients: example %d has loss %f", i,
                        (double)*loss);
    return ff_model_backward(m, &v);
}

static double norm2(const float *x, size_t n)
{
    double s = 0;
    for (size_t j = 0; j < n; j++)
        s += (double)x[j] * (double)x[j];
    return sqrt(s);
}

double ff_dp_clip_scale(double norm, double clip)
{
    if (!(clip > 0) || isinf(clip) || norm <= clip)
        return 1.0;
    /* a hair below C / norm so float rounding of the scaled vector cannot exceed C */
    return clip / norm * (1.0 - 4e-7);
}

int ff_model_perexample_norms(ff_model *m, const ff_batch *b, double *norms, float *losses)
{
    if (b->B < 0 || b->B > m->max_batch)
        return ff_error(FF_EINVAL, "per-example norms: batch %d outside 0..%d", b->B,
                        m->max_batch);
    for (int i = 0; i < b->B; i++) {
        float loss;
        int rc = example_grad(m, b, i, &loss);
        if (rc != FF_OK)
            return rc;
        norms[i] = norm2(m->grads, m->nparams);
        if (losses)
            losses[i] = loss;
    }
    return FF_OK;
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
    size_t n = m->nparams;
    for (int i = 0; i < b->B; i++) {
        float loss;
        int rc = example_grad(m, b, i, &loss);
        if (rc != FF_OK)
            return rc;
        double nrm = norm2(m->grads, n);
        if (!isfinite(nrm))
            return ff_error(FF_ENUMERIC, "clipped gradient sum: example %d has a non-finite "
                            "gradient", i);
        float s = (float)ff_dp_clip_scale(nrm, clip);
        const float *g = m->grads;
        for (size_t j = 0; j < n; j++)
            sum[j] += s * g[j];
        if (norms)
            norms[i] = nrm;
        if (losses)
            losses[i] = loss;
    }
    return FF_OK;
}
