/* The loss of the fusion model's head over the declared tasks (ff/common.h "Prediction
 * tasks"): each task's own loss on the rows of the batch whose label it knows, averaged over
 * the tasks that have any. The all-binary case never comes here: the model keeps the spec's
 * masked BCE over all K columns (bit-identical to the reference). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *z, *y, *e; /* gathered logits, targets, events: [B * classes] at most */
    int32_t *cls;
    int *row;         /* batch row of each gathered row */
} gather_buf;

/* Rows of task t with a known label (label_mask on the task's first column). */
static int task_rows(const ff_task *t, const float *mask, int B, int K, int *row)
{
    int n = 0;
    for (int i = 0; i < B; i++)
        if (mask == NULL || mask[(size_t)i * K + t->col] > 0.5f)
            row[n++] = i;
    return n;
}

/* Adds task t's mean loss (and, with dl, weight x its gradient) over its labelled rows;
 * *used = 0 when the task has nothing to learn from in this batch. */
static int task_one(const ff_task *t, const float *logits, const float *labels, const float *mask,
                    int B, int K, gather_buf *g, double *loss, int *used, float *dl, float weight)
{
    int n = task_rows(t, mask, B, K, g->row), C = ff_task_width(t), rc = FF_OK;
    *loss = 0;
    *used = 0;
    if (n == 0)
        return FF_OK;
    int events = 0;
    for (int r = 0; r < n; r++) {
        const float *z = logits + (size_t)g->row[r] * K + t->col;
        const float *y = labels + (size_t)g->row[r] * K + t->col;
        if (t->kind == FF_TASK_MULTICLASS) {
            int best = 0;
            for (int j = 1; j < C; j++)
                best = y[j] > y[best] ? j : best;
            g->cls[r] = best;
            memcpy(g->z + (size_t)r * C, z, (size_t)C * sizeof *z);
        } else if (t->kind == FF_TASK_REGRESSION) {
            g->z[r] = z[0];
            g->y[r] = (float)(((double)y[0] - t->center) / t->scale);
        } else {
            g->z[r] = z[0];
            g->y[r] = y[0];
            g->e[r] = t->kind == FF_TASK_SURVIVAL ? y[1] : 0.0f;
            events += g->e[r] != 0.0f;
        }
    }
    /* Scratch gradient of the gathered rows, scattered back below. */
    float *dz = dl ? calloc((size_t)n * C, sizeof *dz) : NULL;
    if (dl && !dz)
        return ff_error(FF_ENOMEM, "task %s: out of memory", t->name);
    switch (t->kind) {
    case FF_TASK_BINARY:
        rc = ff_loss_bce_forward(loss, g->z, g->y, n);
        if (rc == FF_OK && dz)
            ff_loss_bce_backward(dz, g->z, g->y, n, weight);
        break;
    case FF_TASK_MULTICLASS:
        rc = ff_loss_ce_forward(loss, g->z, g->cls, n, C);
        if (rc == FF_OK && dz)
            rc = ff_loss_ce_backward(dz, g->z, g->cls, n, C, weight);
        break;
    case FF_TASK_REGRESSION:
        *loss = ff_loss_mse_forward(g->z, g->y, (size_t)n);
        if (dz)
            ff_loss_mse_backward(dz, g->z, g->y, (size_t)n, weight);
        break;
    default: /* survival: the partial likelihood needs at least one event */
        if (events == 0)
            break;
        rc = ff_loss_cox_forward(loss, g->z, g->y, g->e, n);
        if (rc == FF_OK && dz)
            rc = ff_loss_cox_backward(dz, g->z, g->y, g->e, n, weight);
        break;
    }
    *used = rc == FF_OK && (t->kind != FF_TASK_SURVIVAL || events > 0);
    for (int r = 0; dz && rc == FF_OK && r < n; r++) {
        int w = t->kind == FF_TASK_MULTICLASS ? C : 1;
        for (int j = 0; j < w; j++)
            dl[(size_t)g->row[r] * K + t->col + j] += dz[(size_t)r * w + j];
    }
    free(dz);
    if (rc != FF_OK)
        ff_error_prefix(rc, "task %s: ", t->name);
    return rc;
}

int ff_model_task_loss(const ff_task_set *ts, const float *logits, const float *labels,
                       const float *mask, int B, double *loss, float *dlogits)
{
    int K = ts->width;
    gather_buf g;
    g.z = malloc((size_t)(B + 1) * FF_TASK_CLASSES_MAX * sizeof *g.z);
    g.y = malloc((size_t)(B + 1) * sizeof *g.y);
    g.e = malloc((size_t)(B + 1) * sizeof *g.e);
    g.cls = malloc((size_t)(B + 1) * sizeof *g.cls);
    g.row = malloc((size_t)(B + 1) * sizeof *g.row);
    int rc = g.z && g.y && g.e && g.cls && g.row ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    /* Pass 1: which tasks count (their number is every task's weight); pass 2: gradients. */
    double sum = 0;
    int nused = 0;
    for (int k = 0; rc == FF_OK && k < ts->n; k++) {
        double l;
        int used;
        rc = task_one(&ts->t[k], logits, labels, mask, B, K, &g, &l, &used, NULL, 0);
        sum += used ? l : 0;
        nused += used;
    }
    *loss = nused ? sum / nused : 0;
    for (int k = 0; rc == FF_OK && dlogits && nused && k < ts->n; k++) {
        double l;
        int used;
        rc = task_one(&ts->t[k], logits, labels, mask, B, K, &g, &l, &used, dlogits,
                      1.0f / (float)nused);
    }
    free(g.z);
    free(g.y);
    free(g.e);
    free(g.cls);
    free(g.row);
    return rc;
}

void ff_model_task_outputs(const ff_task_set *ts, const float *logits, int K, float fallback,
                           int present, float *out)
{
    if (ts->n == 0 || ff_task_set_all_binary(ts)) {
        for (int k = 0; k < K; k++)
            out[k] = present ? 1.0f / (1.0f + expf(-logits[k])) : fallback;
        return;
    }
    for (int k = 0; k < ts->n; k++) {
        const ff_task *t = &ts->t[k];
        const float *z = logits + t->col;
        float *o = out + t->col;
        int C = ff_task_width(t);
        if (t->kind == FF_TASK_BINARY) {
            o[0] = present ? 1.0f / (1.0f + expf(-z[0])) : fallback;
        } else if (t->kind == FF_TASK_MULTICLASS) {
            double m = z[0], sum = 0;
            for (int j = 1; j < C; j++)
                m = z[j] > m ? z[j] : m;
            for (int j = 0; j < C; j++)
                sum += exp((double)z[j] - m);
            for (int j = 0; j < C; j++)
                o[j] = present ? (float)(exp((double)z[j] - m) / sum) : 1.0f / (float)C;
        } else if (t->kind == FF_TASK_REGRESSION) {
            o[0] = (float)(t->center + (present ? t->scale * (double)z[0] : 0.0));
        } else {
            o[0] = present ? z[0] : 0.0f;
            o[1] = 0.0f;
        }
    }
}
