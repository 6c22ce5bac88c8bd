/* Harrell's concordance index for survival predictions (Harrell et al. 1982), as lifelines'
 * concordance_index computes it (FLamby's TCGA-BRCA metric). */
#include "ff/eval.h"

#include <math.h>

/* Pairs (i, j) are comparable when i had the event and T_i < T_j, or T_i = T_j with j
 * censored (a censored row at an event's time is taken to have lived longer). Concordant
 * when risk_i > risk_j; tied risks count 1/2. O(n²): test sets are small. */
int ff_eval_cindex(const double *risk, const double *time, const uint8_t *event, size_t n,
                   double *out)
{
    double num, den;
    int rc = ff_eval_cindex_counts(risk, time, event, n, &num, &den);
    if (rc == FF_OK && den == 0)
        rc = ff_error(FF_EINVAL, "c-index: no comparable pair among %zu rows", n);
    if (rc == FF_OK)
        *out = num / den;
    return rc;
}

int ff_eval_cindex_counts(const double *risk, const double *time, const uint8_t *event,
                          size_t n, double *concordant, double *comparable)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(time[i]) || !isfinite(risk[i]))
            return ff_error(FF_EINVAL, "c-index: row %zu has a non-finite time or risk", i);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!event[i])
            continue;
        for (size_t j = 0; j < n; j++) {
            if (j == i || !(time[i] < time[j] || (time[i] == time[j] && !event[j])))
                continue;
            den += 1;
            num += risk[i] > risk[j] ? 1.0 : (risk[i] == risk[j] ? 0.5 : 0.0);
        }
    }
    *concordant = num;
    *comparable = den;
    return FF_OK;
}
