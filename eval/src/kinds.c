/* Metrics of the non-binary task kinds: regression (MAE, RMSE, R²) and multiclass (accuracy,
 * one-vs-rest AUROC per class and their macro mean), with scikit-learn's definitions. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

int ff_eval_regression(const double *pred, const double *y, size_t n, ff_metric *mae,
                       ff_metric *rmse, ff_metric *r2)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(pred[i]) || !isfinite(y[i]))
            return ff_error(FF_EINVAL, "regression: row %zu has a non-finite prediction or "
                            "target", i);
    if (n == 0) {
        ev_undef(mae, "no labelled patients");
        ev_undef(rmse, "no labelled patients");
        ev_undef(r2, "no labelled patients");
        return FF_OK;
    }
    double ae = 0, se = 0, mean = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        double d = pred[i] - y[i];
        ae += fabs(d);
        se += d * d;
        mean += y[i];
    }
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (y[i] - mean) * (y[i] - mean);
    ev_set(mae, ae / (double)n);
    ev_set(rmse, sqrt(se / (double)n));
    if (ss > 0)
        ev_set(r2, 1.0 - se / ss);
    else
        ev_undef(r2, "the target is constant (R² needs its variance)");
    return FF_OK;
}

int ff_eval_multiclass(const double *prob, const int32_t *label, size_t n, int K,
                       ff_metric *accuracy, ff_metric *macro_auroc, ff_metric *class_auroc)
{
    if (K < 2 || K > 4096)
        return ff_error(FF_EINVAL, "multiclass: K=%d outside 2..4096", K);
    for (size_t i = 0; i < n; i++) {
        if (label[i] < 0 || label[i] >= K)
            return ff_error(FF_EINVAL, "multiclass: row %zu: class %d outside [0, %d)", i,
                            (int)label[i], K);
        for (int k = 0; k < K; k++)
            if (!isfinite(prob[i * (size_t)K + (size_t)k]))
                return ff_error(FF_EINVAL, "multiclass: row %zu: score of class %d is not "
                                "finite", i, k);
    }
    size_t hit = 0;
    for (size_t i = 0; i < n; i++) {
        const double *p = prob + i * (size_t)K;
        int best = 0;
        for (int k = 1; k < K; k++)
            best = p[k] > p[best] ? k : best; /* the first of tied maxima, as numpy's argmax */
        hit += best == label[i];
    }
    if (n)
        ev_set(accuracy, (double)hit / (double)n);
    else
        ev_undef(accuracy, "no labelled patients");
    double *score = malloc((n + 1) * sizeof *score);
    uint8_t *pos = malloc(n + 1);
    if (!score || !pos) {
        free(score);
        free(pos);
        return ff_error(FF_ENOMEM, "multiclass: out of memory");
    }
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    o.bootstrap = 0;
    int rc = FF_OK, all = 1;
    double sum = 0;
    const char *why = NULL;
    for (int k = 0; rc == FF_OK && k < K; k++) {
        /* one-vs-rest on the class's own score; the binary metrics want scores in [0, 1]:
         * probabilities are used as they are, other scores (logits) mapped by a strictly
         * increasing function (AUROC depends only on their order) */
        int unit = 1;
        for (size_t i = 0; i < n; i++) {
            double s = prob[i * (size_t)K + (size_t)k];
            unit &= s >= 0 && s <= 1;
        }
        for (size_t i = 0; i < n; i++) {
            double s = prob[i * (size_t)K + (size_t)k];
            score[i] = unit ? s : 0.5 + atan(s) / M_PI;
            pos[i] = label[i] == k;
        }
        ff_eval_result r;
        rc = ff_eval_binary(score, pos, n, &o, &r);
        if (rc != FF_OK)
            break;
        class_auroc[k] = r.auroc;
        class_auroc[k].has_ci = 0;
        if (r.auroc.defined)
            sum += r.auroc.value;
        else
            all = 0, why = r.auroc.why;
        ff_eval_result_free(&r);
    }
    free(score);
    free(pos);
    if (rc != FF_OK)
        return rc;
    /* scikit-learn's roc_auc_score(multi_class="ovr", average="macro") refuses a class
     * missing from the labels: undefined, with the class's reason */
    if (all)
        ev_set(macro_auroc, sum / K);
    else
        ev_undef(macro_auroc, why ? why : "a class has no positives or no negatives");
    return FF_OK;
}
