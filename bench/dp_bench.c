/* dp_bench: DP-SGD training throughput against non-private training of the same model in the
 * same run (fusion-base by default, batch 32), interleaved step by step, medians. Three DP
 * steps are timed: ghost clipping with book-keeping (the default of DP training: one forward,
 * one backward taking per-example norms and keeping output gradients, then each layer's
 * clipped parameter gradient; models/src/ghost.c), ghost clipping with a second backward
 * instead of book-keeping, and the exact batch-of-1 path (models/src/perexample.c); each =
 * clipped sum + Gaussian noise + optimiser step. The non-private step is
 * ff_model_train_step. Ends with dp_samples_per_s (ghost), exact_samples_per_s,
 * nondp_samples_per_s, overhead (ghost), overhead_exact.
 *
 * usage: dp_bench [CONFIG.yaml] [BATCH] [STEPS] [THREADS] [MODE]
 *   MODE all (default) times all of them; ghost, ghost2 (second backward) or exact times
 *   only that DP path (and the non-private step), so peak_rss_mb is that path's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

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

/* Process CPU seconds: on a loaded shared machine a 1-thread step's CPU time barely moves
 * while its wall time swings with the load, so the CPU-time ratio is reported too. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

/* One DP-SGD step: clipped sum (ghost or exact), noise σC with σ = C = 1, mean, step. */
static void dp_step(ff_model *m, ff_optim *opt, const ff_optim_config *oc, const ff_batch *b,
                    float *sum, ff_rng *noise, int ghost)
{
    size_t n = ff_model_nparams(m);
    memset(sum, 0, n * sizeof(float));
    int rc = ghost ? ff_model_ghost_clipped_grad_sum(m, b, 1.0, sum, NULL, NULL)
                   : ff_model_clipped_grad_sum(m, b, 1.0, sum, NULL, NULL);
    if (rc != FF_OK)
        die("clipped sum");
    ff_privacy_gaussian_noise(noise, sum, n, 1.0);
    float *g = ff_model_grads(m);
    for (size_t j = 0; j < n; j++)
        g[j] = sum[j] / (float)b->B;
    if (ff_optim_step(opt, m, oc->lr) != FF_OK)
        die("optimiser step");
}

int main(int argc, char **argv)
{
    const char *cfgp = argc > 1 ? argv[1] : FF_SOURCE_DIR "/configs/model-base.yaml";
    int B = argc > 2 ? atoi(argv[2]) : 32, steps = argc > 3 ? atoi(argv[3]) : 8;
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    const char *mode = argc > 5 ? argv[5] : "all";
    int all = !strcmp(mode, "all"), do_ghost = all || !strcmp(mode, "ghost");
    int do_ghost2 = all || !strcmp(mode, "ghost2"), do_exact = all || !strcmp(mode, "exact");
    if (B < 1 || steps < 1 || threads < 1 || !(do_ghost || do_ghost2 || do_exact)) {
        fprintf(stderr, "usage: dp_bench [CONFIG.yaml] [BATCH] [STEPS] [THREADS] "
                        "[all|ghost|ghost2|exact]\n");
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
    /* Interleaved: each round times one forward, one non-private step and the DP steps, so
     * load from other processes on a shared machine hits all alike; medians are reported.
     * Round 0 is warm-up. */
    ff_rng noise;
    ff_rng_init(&noise, 99, 1);
    double *tf = calloc((size_t)steps, sizeof *tf), *tn = calloc((size_t)steps, sizeof *tn);
    double *tg = calloc((size_t)steps, sizeof *tg), *te = calloc((size_t)steps, sizeof *te);
    double *t2b = calloc((size_t)steps, sizeof *t2b), *cpu = calloc(4 * (size_t)steps, sizeof *cpu);
    if (!tf || !tn || !tg || !te || !t2b || !cpu)
        die("out of memory");
    for (int s = 0; s <= steps; s++) {
        double t0 = ff_now();
        if (ff_model_forward(m, &b, NULL, &loss) != FF_OK)
            die("forward");
        double t1 = ff_now();
        double c1 = cpu_now();
        if (ff_model_train_step(m, opt, &b, s, 2 * steps + 2, &loss) != FF_OK)
            die("train step");
        double t2 = ff_now(), t3 = t2, t4 = t2, t5 = t2;
        double c2 = cpu_now(), c3 = c2, c4 = c2, c5 = c2;
        if (do_ghost) {
            ff_model_set_ghost_policy(m, FF_GHOST_AUTO);
            dp_step(m, opt, &oc, &b, sum, &noise, 1);
            t3 = ff_now(), c3 = cpu_now();
        }
        if (do_ghost2) {
            ff_model_set_ghost_policy(m, FF_GHOST_AUTO | FF_GHOST_TWO_BACKWARD);
            dp_step(m, opt, &oc, &b, sum, &noise, 1);
            t4 = ff_now(), c4 = cpu_now();
        }
        if (do_exact) {
            dp_step(m, opt, &oc, &b, sum, &noise, 0);
            t5 = ff_now(), c5 = cpu_now();
        }
        if (s > 0) {
            tf[s - 1] = t1 - t0, tn[s - 1] = t2 - t1, tg[s - 1] = t3 - t2, t2b[s - 1] = t4 - t3,
                   te[s - 1] = t5 - t4;
            cpu[s - 1] = c2 - c1, cpu[steps + s - 1] = c3 - c2;
            cpu[2 * steps + s - 1] = c4 - c3, cpu[3 * steps + s - 1] = c5 - c4;
        }
    }
    double cn = median(cpu, steps), cg = median(cpu + steps, steps);
    double cg2 = median(cpu + 2 * steps, steps), ce = median(cpu + 3 * steps, steps);
    free(cpu);
    double t_fwd = median(tf, steps), t_nondp = median(tn, steps);
    double t_ghost = median(tg, steps), t_ghost2 = median(t2b, steps);
    double t_exact = median(te, steps);
    free(tf), free(tn), free(tg), free(te), free(t2b);
    double nondp_sps = B / t_nondp;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long gram, mat;
    ff_model_ghost_stats(m, &gram, &mat);
    printf("non-private step %.1f ms (forward %.1f ms, backward+update %.1f ms)\n",
           1e3 * t_nondp, 1e3 * t_fwd, 1e3 * (t_nondp - t_fwd));
    if (do_ghost)
        printf("DP-SGD step, ghost clipping + book-keeping %.1f ms (%.2fx); linear layers: %lld "
               "Gram, %lld materialised (example, layer) pairs\n",
               1e3 * t_ghost, t_ghost / t_nondp, gram, mat);
    if (do_ghost2)
        printf("DP-SGD step, ghost clipping with a second backward %.1f ms (%.2fx)\n",
               1e3 * t_ghost2, t_ghost2 / t_nondp);
    if (do_exact)
        printf("DP-SGD step, exact batch-of-1 clipping %.1f ms (%.2fx)\n", 1e3 * t_exact,
               t_exact / t_nondp);
    if (do_ghost && do_exact)
        printf("ghost vs exact: %.2fx faster\n", t_exact / t_ghost);
    printf("mode %s\n", mode);
    printf("peak_rss_mb %.1f\n", (double)ru.ru_maxrss / 1024.0);
    if (do_ghost)
        printf("dp_samples_per_s %.2f\n", B / t_ghost);
    if (do_exact)
        printf("exact_samples_per_s %.2f\n", B / t_exact);
    printf("nondp_samples_per_s %.2f\n", nondp_sps);
    printf("cpu time per step (1 thread: robust to load): non-private %.1f ms", 1e3 * cn);
    if (do_ghost) printf(", ghost %.1f ms (%.2fx)", 1e3 * cg, cg / cn);
    if (do_ghost2) printf(", ghost + second backward %.1f ms (%.2fx)", 1e3 * cg2, cg2 / cn);
    if (do_exact) printf(", exact %.1f ms (%.2fx)", 1e3 * ce, ce / cn);
    printf("\n");
    if (do_ghost)
        printf("overhead %.3f\n", t_ghost / t_nondp);
    if (do_ghost2)
        printf("overhead_ghost_two_backward %.3f\n", t_ghost2 / t_nondp);
    if (do_exact)
        printf("overhead_exact %.3f\n", t_exact / t_nondp);
    ff_free(sum);
    ff_optim_free(opt);
    ff_batch_free(&b);
    ff_model_free(m);
    return 0;
}
