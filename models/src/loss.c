/* Losses over rows of predictions, for the tabular models (models/src/tabular.c) and any task
 * head: BCE with logits, softmax cross-entropy, mean squared error, and the Cox partial
 * likelihood with Breslow's handling of tied times. Every forward returns the mean over the
 * rows (MSE: over rows × outputs); every backward ADDS scale × d loss / d input. Sums are
 * taken in double so the result does not depend on the order of the rows beyond rounding of
 * the final float. Contracts and formulas are in ff/models.h. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *ff_loss_name(int kind)
{
    switch (kind) {
    case FF_LOSS_BCE: return "bce";
    case FF_LOSS_CE: return "cross_entropy";
    case FF_LOSS_MSE: return "mse";
    case FF_LOSS_COX: return "cox";
    default: return "?";
    }
}

/* ---- BCE with logits ------------------------------------------------------------------- */

/* ℓ(z, y) = max(z, 0) − z y + log(1 + e^{−|z|}), the stable form of
 * −y log σ(z) − (1 − y) log(1 − σ(z)) (PyTorch's BCEWithLogitsLoss). */
int ff_loss_bce_forward(double *loss, const float *logit, const float *y, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        if (!(y[i] >= 0.0f && y[i] <= 1.0f))
            return ff_error(FF_EINVAL, "bce: target of row %d is %g, must be in [0, 1]", i,
                            (double)y[i]);
        double z = logit[i];
        s += fmax(z, 0.0) - z * y[i] + log1p(exp(-fabs(z)));
    }
    *loss = n > 0 ? s / n : 0.0;
    return FF_OK;
}

/* d ℓ / d z = σ(z) − y. */
void ff_loss_bce_backward(float *dlogit, const float *logit, const float *y, int n, float scale)
{
    if (n <= 0)
        return;
    const double k = (double)scale / n;
    for (int i = 0; i < n; i++) {
        double z = logit[i];
        double p = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
        dlogit[i] += (float)(k * (p - y[i]));
    }
}

/* ---- softmax cross-entropy ------------------------------------------------------------- */

static int ce_check(const int32_t *label, int n, int k)
{
    for (int i = 0; i < n; i++)
        if (label[i] < 0 || label[i] >= k)
            return ff_error(FF_EINVAL, "cross_entropy: label of row %d is %d, must be in [0, %d)",
                            i, (int)label[i], k);
    return FF_OK;
}

/* ℓ_i = logsumexp(z_i) − z_i[label_i], with the row maximum subtracted first. */
int ff_loss_ce_forward(double *loss, const float *logits, const int32_t *label, int n, int k)
{
    int rc = ce_check(label, n, k);
    if (rc != FF_OK)
        return rc;
    double s = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        double m = z[0];
        for (int j = 1; j < k; j++)
            m = fmax(m, z[j]);
        double e = 0;
        for (int j = 0; j < k; j++)
            e += exp(z[j] - m);
        s += m + log(e) - z[label[i]];
    }
    *loss = n > 0 ? s / n : 0.0;
    return FF_OK;
}

/* d ℓ_i / d z_ij = softmax(z_i)_j − [j = label_i]. */
int ff_loss_ce_backward(float *dlogits, const float *logits, const int32_t *label, int n, int k,
                        float scale)
{
    int rc = ce_check(label, n, k);
    if (rc != FF_OK || n <= 0)
        return rc;
    const double c = (double)scale / n;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *d = dlogits + (size_t)i * k;
        double m = z[0];
        for (int j = 1; j < k; j++)
            m = fmax(m, z[j]);
        double e = 0;
        for (int j = 0; j < k; j++)
            e += exp(z[j] - m);
        for (int j = 0; j < k; j++)
            d[j] += (float)(c * (exp(z[j] - m) / e - (j == label[i] ? 1.0 : 0.0)));
    }
    return FF_OK;
}

/* ---- mean squared error ---------------------------------------------------------------- */

double ff_loss_mse_forward(const float *pred, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double r = (double)pred[i] - y[i];
        s += r * r;
    }
    return n > 0 ? s / (double)n : 0.0;
}

void ff_loss_mse_backward(float *dpred, const float *pred, const float *y, size_t n, float scale)
{
    if (n == 0)
        return;
    const double c = 2.0 * scale / (double)n;
    for (size_t i = 0; i < n; i++)
        dpred[i] += (float)(c * ((double)pred[i] - y[i]));
}

/* ---- Cox partial likelihood, Breslow ties ---------------------------------------------- */
/*
 * L = (1/n) Σ_{i: E_i = 1} [ log Σ_{j: T_j ≥ T_i} e^{s_j} − s_i ]     (Breslow 1974)
 * Every row tied at T_i is in i's risk set, whatever the order of the rows. With m = max s,
 * R_i = Σ_{j: T_j ≥ T_i} e^{s_j − m}, so log Σ e^{s_j} = m + log R_i. Computed by sorting the
 * rows by time once (O(n log n)).
 *
 * d L / d s_k = (1/n) [ e^{s_k − m} Σ_{i: E_i = 1, T_i ≤ T_k} 1 / R_i − E_k ]:
 * row k appears in the risk set of every event at or before its own time.
 */

/* qsort has no context argument in C11: the times being sorted, per thread. */
static _Thread_local const float *cox_times;

static int cox_cmp_desc(const void *a, const void *b)
{
    float ta = cox_times[*(const int *)a], tb = cox_times[*(const int *)b];
    if (ta > tb) return -1;
    if (ta < tb) return 1;
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static int cox_check(const float *time, const float *event, int n)
{
    for (int i = 0; i < n; i++) {
        if (!isfinite(time[i]))
            return ff_error(FF_EINVAL, "cox: time of row %d is %g, must be finite", i,
                            (double)time[i]);
        if (event[i] != 0.0f && event[i] != 1.0f)
            return ff_error(FF_EINVAL, "cox: event of row %d is %g, must be 0 or 1", i,
                            (double)event[i]);
    }
    return FF_OK;
}

/* order: rows by decreasing time; R[g]: the risk sum of row order[g]'s tie group; returns m. */
static double cox_risk(const float *score, const float *time, int n, int *order, double *R)
{
    double m = -INFINITY;
    for (int i = 0; i < n; i++) {
        order[i] = i;
        m = fmax(m, score[i]);
    }
    cox_times = time;
    qsort(order, (size_t)n, sizeof *order, cox_cmp_desc);
    double acc = 0;
    for (int g = 0; g < n;) {
        int h = g;
        while (h < n && time[order[h]] == time[order[g]])
            acc += exp((double)score[order[h++]] - m);
        for (int q = g; q < h; q++)
            R[q] = acc; /* the whole tie group shares its risk set */
        g = h;
    }
    return m;
}

static int cox_alloc(int n, int **order, double **R)
{
    *order = malloc((size_t)(n ? n : 1) * sizeof **order);
    *R = malloc((size_t)(n ? n : 1) * sizeof **R);
    if (!*order || !*R) {
        free(*order);
        free(*R);
        return ff_error(FF_ENOMEM, "cox: no memory for %d rows", n);
    }
    return FF_OK;
}

int ff_loss_cox_forward(double *loss, const float *score, const float *time, const float *event,
                        int n)
{
    int rc = cox_check(time, event, n);
    if (rc != FF_OK)
        return rc;
    if (n <= 0) {
        *loss = 0;
        return FF_OK;
    }
    int *order;
    double *R;
    if ((rc = cox_alloc(n, &order, &R)) != FF_OK)
        return rc;
    double m = cox_risk(score, time, n, order, R);
    double s = 0;
    for (int g = 0; g < n; g++) {
        int i = order[g];
        if (event[i] != 0.0f)
            s += m + log(R[g]) - score[i];
    }
    *loss = s / n;
    free(order);
    free(R);
    return FF_OK;
}

int ff_loss_cox_backward(float *dscore, const float *score, const float *time, const float *event,
                         int n, float scale)
{
    int rc = cox_check(time, event, n);
    if (rc != FF_OK || n <= 0)
        return rc;
    int *order;
    double *R;
    if ((rc = cox_alloc(n, &order, &R)) != FF_OK)
        return rc;
    double m = cox_risk(score, time, n, order, R);
    const double c = (double)scale / n;
    /* Walk times upwards: A = Σ 1/R_i over events at or before the current tie group. */
    double A = 0;
    for (int h = n; h > 0;) {
        int g = h - 1;
        while (g > 0 && time[order[g - 1]] == time[order[h - 1]])
            g--;
        for (int q = g; q < h; q++)
            if (event[order[q]] != 0.0f)
                A += 1.0 / R[q];
        for (int q = g; q < h; q++) {
            int k = order[q];
            dscore[k] += (float)(c * (exp((double)score[k] - m) * A - event[k]));
        }
        h = g;
    }
    free(order);
    free(R);
    return FF_OK;
}
