/* dp_bench: DP-SGD training throughput against non-private training of the same model in the
 * same run (fusion-base by default, batch 32), interleaved step by step, medians. DP step = per-example clipped sum (batch-of-1
 * passes, models/src/perexample.c) + Gaussian noise + optimiser step; non-private step =
 * ff_model_train_step. Also prints what one extra backward pass would cost (the price of
 * ghost / per-layer clipping, docs/privacy.md) from the measured forward and step times:
 * an estimate, labelled as such. Ends with dp_samples_per_s, nondp_samples_per_s, overhead.
 *
 * usage: dp_bench [CONFIG.yaml] [BATCH] [STEPS] [THREADS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ff/models.h"
#include "ff/privacy.h"

static void die(const char *what)
{
    fprintf(stderr, "dp_bench: %s: %s\n", what, ff_error_message());
    exit(1);
}

static void make_batch(const ff_model_config *c, ff_batch *b, int B)
{
    if (ff_batch_alloc(b, B, (int)c->tasks, (int)c->image.channels, (int)c->image.size,
                       (int)c->image.size, (int)c->text.length, (int)c->ehr.length) != FF_OK)
        die("batch");
    ff_rng r;
    ff_rng_init(&r, 2024, 1);
    size_t img = (size_t)c->image.channels * (size_t)(c->image.size * c->image.size);
    ff_rng_normal_fill(&r, b->image, (size_t)B * img, 0, 1);
    for (int i = 0; i < B; i++) {
        b->image_present[i] = 1;
        /* the model bench's padding: notes ~5/8 full, records ~0.7 full */
        int lt = (int)(c->text.length * 5 / 8) - 6 + (int)ff_rng_below(&r, 13);
        int le = (int)(c->ehr.length * 45 / 64) - 10 + (int)ff_rng_below(&r, 21);
        lt = FF_MAX(1, FF_MIN(lt, (int)c->text.length));
        le = FF_MAX(1, FF_MIN(le, (int)c->ehr.length));
        for (int t = 0; t < lt; t++)
            b->text_ids[(size_t)i * (size_t)c->text.length + (size_t)t] =
                1 + (int32_t)ff_rng_below(&r, (uint32_t)c->text.vocab - 1);
        for (int t = 0; t < le; t++) {
            size_t k = (size_t)i * (size_t)c->ehr.length + (size_t)t;
            b->ehr_code[k] = 1 + (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.codes - 1);
            b->ehr_val[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.values);
            b->ehr_time[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.times);
        }
        for (int k = 0; k < c->tasks; k++) {
            b->labels[(size_t)i * (size_t)c->tasks + (size_t)k] = (float)ff_rng_below(&r, 2);
            b->label_mask[(size_t)i * (size_t)c->tasks + (size_t)k] = 1;
        }
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *cfgp = argc > 1 ? argv[1] : FF_SOURCE_DIR "/configs/model-base.yaml";
    int B = argc > 2 ? atoi(argv[2]) : 32, steps = argc > 3 ? atoi(argv[3]) : 8;
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    if (B < 1 || steps < 1 || threads < 1) {
        fprintf(stderr, "usage: dp_bench [CONFIG.yaml] [BATCH] [STEPS] [THREADS]\n");
        return 2;
    }
    ff_models_set_threads(threads);
    ff_model_config c;
    if (ff_model_config_load(cfgp, &c) != FF_OK)
        die(cfgp);
    ff_model *m = NULL;
    if (ff_model_new(&m, &c, B) != FF_OK || ff_model_init(m, 1) != FF_OK)
        die("model");
    ff_batch b;
    make_batch(&c, &b, B);
    size_t n = ff_model_nparams(m);
    ff_optim_config oc;
    ff_optim_config_default(&oc);
    ff_optim *opt = NULL;
    float *sum = ff_alloc(n * sizeof(float)), loss;
    if (!sum || ff_optim_new(&opt, m, &oc) != FF_OK)
        die("optimiser");
    printf("model %s, %zu parameters, batch %d, %d steps, %d thread(s)\n", c.name, n, B, steps,
           threads);
    /* Interleaved: each round times one forward, one non-private step and one DP step, so
     * load from other processes on a shared machine hits both alike; medians are reported.
     * Round 0 is warm-up. */
    ff_rng noise;
    ff_rng_init(&noise, 99, 1);
    double *tf = calloc((size_t)steps, sizeof *tf), *tn = calloc((size_t)steps, sizeof *tn);
    double *td = calloc((size_t)steps, sizeof *td);
    if (!tf || !tn || !td)
        die("out of memory");
    for (int s = 0; s <= steps; s++) {
        double t0 = ff_now();
        if (ff_model_forward(m, &b, NULL, &loss) != FF_OK)
            die("forward");
        double t1 = ff_now();
        if (ff_model_train_step(m, opt, &b, s, 2 * steps + 2, &loss) != FF_OK)
            die("train step");
        double t2 = ff_now();
        /* DP-SGD: clipped sum of per-example gradients, noise, average, step */
        memset(sum, 0, n * sizeof(float));
        if (ff_model_clipped_grad_sum(m, &b, 1.0, sum, NULL, NULL) != FF_OK)
            die("clipped sum");
        ff_privacy_gaussian_noise(&noise, sum, n, 1.0);
        float *g = ff_model_grads(m);
        for (size_t j = 0; j < n; j++)
            g[j] = sum[j] / (float)B;
        if (ff_optim_step(opt, m, oc.lr) != FF_OK)
            die("optimiser step");
        double t3 = ff_now();
        if (s > 0)
            tf[s - 1] = t1 - t0, tn[s - 1] = t2 - t1, td[s - 1] = t3 - t2;
    }
    double t_fwd = median(tf, steps), t_nondp = median(tn, steps), t_dp = median(td, steps);
    free(tf), free(tn), free(td);
    double dp_sps = B / t_dp, nondp_sps = B / t_nondp;
    /* one extra backward on top of a non-private step (the per-layer norm pass) */
    double t_bwd = t_nondp - t_fwd, ghost = (t_nondp + t_bwd) / t_nondp;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("non-private step %.1f ms (forward %.1f ms, backward+update %.1f ms)\n",
           1e3 * t_nondp, 1e3 * t_fwd, 1e3 * t_bwd);
    printf("DP-SGD step (batch-of-1 per-example clipping) %.1f ms\n", 1e3 * t_dp);
    printf("ghost/per-layer clipping estimate (forward + 2 backward): %.2fx (not measured)\n",
           ghost);
    printf("peak_rss_mb %.1f\n", (double)ru.ru_maxrss / 1024.0);
    printf("dp_samples_per_s %.2f\n", dp_sps);
    printf("nondp_samples_per_s %.2f\n", nondp_sps);
    printf("overhead %.3f\n", nondp_sps / dp_sps);
    ff_free(sum);
    ff_optim_free(opt);
    ff_batch_free(&b);
    ff_model_free(m);
    return 0;
}
