/* bench_eval [ROWS]: time of ff_eval_binary (every metric, curves, calibration fit, DCA) and of
 * a 200-replicate bootstrap and a histogram pass, against qsort of the same scores (the
 * O(n log n) floor) measured in the same run. Ends with machine-readable "key value" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ff/eval.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    double *s = malloc(n * sizeof *s), *c = malloc(n * sizeof *c);
    uint8_t *y = malloc(n);
    if (!s || !c || !y)
        return 1;
    ff_rng r;
    ff_rng_init(&r, 1, 0);
    for (size_t i = 0; i < n; i++) {
        y[i] = ff_rng_uniform_d(&r) < 0.1;
        double z = ff_rng_normal(&r) + 1.5 * y[i] - 2;
        s[i] = 1 / (1 + __builtin_exp(-z));
    }
    memcpy(c, s, n * sizeof *s);
    double t0 = ff_now();
    qsort(c, n, sizeof *c, cmp);
    double t_sort = ff_now() - t0;
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    ff_eval_result res;
    t0 = ff_now();
    if (ff_eval_binary(s, y, n, &o, &res) != FF_OK)
        return 1;
    double t_eval = ff_now() - t0;
    ff_eval_result_free(&res);
    o.bootstrap = 200;
    t0 = ff_now();
    if (ff_eval_binary(s, y, n, &o, &res) != FF_OK)
        return 1;
    double t_boot = ff_now() - t0;
    printf("auroc %.6f  ci [%.6f, %.6f]\n", res.auroc.value, res.auroc.lo, res.auroc.hi);
    ff_eval_result_free(&res);
    ff_eval_hist *h;
    if (ff_eval_hist_new(&h, "t", FF_EVAL_HIST_BINS) != FF_OK)
        return 1;
    t0 = ff_now();
    if (ff_eval_hist_add(h, s, y, n, NULL) != FF_OK ||
        ff_eval_hist_metrics(h, 0, NULL, &res, NULL) != FF_OK)
        return 1;
    double t_hist = ff_now() - t0;
    ff_eval_result_free(&res);
    ff_eval_hist_free(h);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("rows %zu: qsort %.3f s, ff_eval_binary %.3f s (%.2fx qsort), +200 bootstrap %.3f s, "
           "histogram add+metrics %.3f s, peak RSS %ld MB\n",
           n, t_sort, t_eval, t_eval / t_sort, t_boot, t_hist, ru.ru_maxrss / 1024);
    printf("eval_rows %zu\neval_seconds %.4f\neval_ratio_vs_qsort %.3f\n"
           "eval_bootstrap200_seconds %.4f\neval_hist_seconds %.4f\npeak_rss_mb %ld\n",
           n, t_eval, t_eval / t_sort, t_boot, t_hist, ru.ru_maxrss / 1024);
    free(s);
    free(c);
    free(y);
    return 0;
}
