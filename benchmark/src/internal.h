/* Private state of the FLamby benchmark, shared by flamby.c (data, training, evaluation),
 * run.c (the methods through the round engine, results files) and reference.c. */
#ifndef FF_BENCHMARK_INTERNAL_H
#define FF_BENCHMARK_INTERNAL_H

#include "ff/benchmark.h"
#include "ff/coordinator.h"
#include "ff/data.h"
#include "ff/eval.h"
#include "ff/models.h"

#define FB_EVAL_CHUNK 256

typedef struct {
    double lr;        /* client SGD rate */
    double slr;       /* server rate η */
    double mu;        /* FedProx */
    double b1, b2, tau;
    int ft_steps;     /* FedAvgFineTuning: local steps after the last round */
    double ft_lr;
} fb_mhp;

typedef struct {
    int batch, updates, rounds;
    double pooled_lr;
    int pooled_epochs;
    fb_mhp m[FF_FB_COUNT];
} fb_hp;

typedef struct {
    const ff_flamby_split *s;
    int *perm;
    int pos;
    ff_rng rng;
} fb_loader;

/* Per method name: sums over seeds of the pooled-test metric and the mean of the sites'. */
typedef struct {
    char name[32];
    double pooled_sum, sites_sum;
    int count;
} fb_summary;
#define FB_MAX_SUMMARIES 32

typedef struct {
    ff_flamby_data data;
    fb_summary sum[FB_MAX_SUMMARIES];
    int nsum;
    fb_hp hp;
    ff_tab *tab;
    float *xb, *yb, *out, *dout;
    double *score, *time;
    uint8_t *event;
    int *perm[FF_FLAMBY_MAX_CENTERS + 1]; /* loader permutations: centres, then pooled */
    const ff_benchmark_opts *opts;
    FILE *csv;
    ff_progress prog;
    uint64_t done;
    double search_loss; /* validation search (csv NULL): summed pooled validation loss */
    int search_runs;
} fb_ctx;

const char *fb_method_name(int m);
void fb_hparams(int dataset, fb_hp *h);
void fb_loader_init(fb_loader *L, const ff_flamby_split *s, uint64_t seed, uint64_t stream);
int fb_loader_next(fb_loader *L, int B, float *x, float *y);
int fb_train(fb_ctx *b, fb_loader *L, ff_vec_optim *o, int steps, const float *prox, float mu,
             const float *c, const float *ci) FF_WARN_UNUSED;
int fb_scores(fb_ctx *b, const float *w, const ff_flamby_split *s, int from, int to,
              double *score) FF_WARN_UNUSED;
int fb_metric(const fb_ctx *b, const ff_flamby_split *s, const double *score,
              double *out) FF_WARN_UNUSED;
int fb_evaluate(fb_ctx *b, const float *const *models, double *client,
                double *pooled) FF_WARN_UNUSED;

/* One federated method for one seed through the round engine; its rows into results.csv
 * (skipped when b->csv is NULL) and the summaries. */
int fb_run_federated(fb_ctx *b, int64_t seed, int method) FF_WARN_UNUSED;
/* --tuned: every selected federated method's hyperparameters chosen on a validation split of
 * the training rows (tune.c); writes OUT/tuned.json and a line per method to the progress. */
int fb_tune(fb_ctx *b) FF_WARN_UNUSED;
/* The mean loss on the pooled "test" split (each row by its centre's model): binary
 * cross-entropy, or the Cox negative log partial likelihood per event (Breslow ties). */
int fb_pooled_loss(fb_ctx *b, const float *const *models, double *loss) FF_WARN_UNUSED;

/* OUT/comparison.md from the summaries. */
int fb_write_comparison(const fb_ctx *b) FF_WARN_UNUSED;

#endif
