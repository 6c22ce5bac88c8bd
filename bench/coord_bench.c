/* coord_bench [--sites N] [--params M] [--rounds R] [--strategy S]: the coordinator engine's
 * own cost per round on a model-sized vector (no network, no training): accepting updates
 * (copy + finiteness check), aggregate + server step + hashes, rounds.csv + checkpoint with
 * fsync. The peer is a plain float weighted mean over the same updates in the same run, so
 * the ratio shows what the deterministic double-precision aggregation costs. Ends with
 * machine-readable lines. */
#include "ff/coordinator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int opt_int(int argc, char **argv, const char *name, int def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return atoi(argv[i + 1]);
    return def;
}

static const char *opt_str(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

int main(int argc, char **argv)
{
    int ns = opt_int(argc, argv, "--sites", 16);
    size_t n = (size_t)opt_int(argc, argv, "--params", 3400000);
    int rounds = opt_int(argc, argv, "--rounds", 3);
    const char *strategy = opt_str(argc, argv, "--strategy", "fedadam");
    const char *dir = opt_str(argc, argv, "--dir", "/tmp/coord_bench");
    if (ns < 1 || ns > 256 || n < 1 || rounds < 1) {
        fprintf(stderr, "usage: coord_bench [--sites 1..256] [--params M] [--rounds R] "
                        "[--strategy S] [--dir D]\n");
        return 2;
    }
    ff_log_set_level(FF_LOG_WARN);
    float *init = calloc(n, sizeof(float));
    float **u = calloc((size_t)ns, sizeof *u);
    char **names = calloc((size_t)ns, sizeof *names);
    for (int i = 0; i < ns; i++) {
        u[i] = malloc(n * sizeof(float));
        names[i] = malloc(16);
        snprintf(names[i], 16, "site-%d", i);
        ff_rng r;
        ff_rng_init(&r, 1, (uint64_t)i);
        ff_rng_normal_fill(&r, u[i], n, 0.0f, 1e-3f);
    }
    ff_coord_tensor t = {.name = "w", .ndim = 1, .shape = {(int64_t)n}, .offset = 0};
    ff_coord_model m = {.n = n, .tensors = &t, .ntensors = 1, .init = init};
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "run_name: bench\nrounds: %d\nstrategy: {name: %s}\ncheckpoint_dir: %s/ckpt\n"
             "out_dir: %s/out\n",
             rounds, strategy, dir, dir);
    ff_coord_config cfg;
    ff_coord *c = NULL;
    if (ff_coord_config_load_str(&cfg, "bench", yaml, strlen(yaml)) != FF_OK ||
        ff_coord_new(&c, &cfg, &m, (const char *const *)names, (size_t)ns) != FF_OK) {
        fprintf(stderr, "coord_bench: %s\n", ff_error_message());
        return 1;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/ckpt' '%s/out'", dir, dir);
    if (system(cmd) != 0)
        return 1;
    double t_submit = 0, t_agg = 0, t_ckpt = 0;
    ff_coord_status st;
    while (ff_coord_poll(c, &st) == FF_OK && st.state != FF_COORD_DONE) {
        int pend[256];
        size_t np = st.npending;
        memcpy(pend, st.pending, np * sizeof(int));
        int train = strcmp(st.phase, FF_PHASE_TRAIN) == 0;
        double a = ff_now();
        for (size_t k = 0; k < np; k++) {
            int s = pend[k], rc;
            if (train) {
                rc = ff_coord_submit_update(c, names[s], st.round, u[s], n, 10 + s);
            } else {
                ff_coord_eval e = {.n_examples = 10 + s, .loss = 0.5, .auroc = 0.7};
                rc = ff_coord_submit_eval(c, names[s], st.round, &e, NULL);
            }
            if (rc != FF_OK) {
                fprintf(stderr, "coord_bench: %s\n", ff_error_message());
                return 1;
            }
        }
        double b = ff_now();
        ff_coord_status st2;
        if (ff_coord_poll(c, &st2) != FF_OK)
            return 1;
        double d = ff_now();
        if (train) {
            t_submit += b - a;
            t_agg += d - b;
        } else {
            t_ckpt += d - b;
        }
    }
    /* peer: single-precision weighted mean, site-major (the naive loop) */
    float *avg = calloc(n, sizeof(float));
    double a = ff_now();
    for (int r = 0; r < rounds; r++) {
        memset(avg, 0, n * sizeof(float));
        float tot = 0;
        for (int s = 0; s < ns; s++)
            tot += (float)(10 + s);
        for (int s = 0; s < ns; s++) {
            float w = (float)(10 + s) / tot;
            for (size_t j = 0; j < n; j++)
                avg[j] += w * u[s][j];
        }
    }
    double t_peer = (ff_now() - a) / rounds;
    volatile float sink = avg[n / 2];
    (void)sink;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    t_submit /= rounds;
    t_agg /= rounds;
    t_ckpt /= rounds;
    printf("coord_bench: %d sites, %zu params, %s, %d rounds\n", ns, n, strategy, rounds);
    printf("  accept updates (copy + check)      %.3f s/round\n", t_submit);
    printf("  aggregate + %s step + 2 SHA-256  %.3f s/round\n", strategy, t_agg);
    printf("  peer: float weighted mean only     %.3f s/round (ratio %.2fx)\n", t_peer,
           t_agg / t_peer);
    printf("  rounds.csv + checkpoint (fsync)    %.3f s/round\n", t_ckpt);
    printf("  peak RSS %.1f MB\n", (double)ru.ru_maxrss / 1024.0);
    printf("accept_s %.4f\naggregate_s %.4f\npeer_s %.4f\nratio_vs_peer %.3f\ncheckpoint_s %.4f\n"
           "peak_rss_mb %.1f\n",
           t_submit, t_agg, t_peer, t_agg / t_peer, t_ckpt, (double)ru.ru_maxrss / 1024.0);
    ff_coord_free(c);
    ff_coord_config_free(&cfg);
    for (int i = 0; i < ns; i++) {
        free(u[i]);
        free(names[i]);
    }
    free(u);
    free(names);
    free(avg);
    free(init);
    return 0;
}
