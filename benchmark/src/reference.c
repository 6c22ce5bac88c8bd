/* FLamby's published results (the means of its per-seed results files, seeds 42–46, pooled
 * test set), fedfuse's recommended configuration, and comparison.md. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *method;
    double heart, tcga;
} fb_ref;

/* Computed from FLamby's heart_seed{42..46}.csv and tcga_seed{42..46}.csv (`Pooled Test`). */
static const fb_ref refs[] = {
    {"Pooled Training", 0.795276, 0.704103}, {"Local 0", 0.784252, 0.694799},
    {"Local 1", 0.726772, 0.727546},         {"Local 2", 0.482677, 0.604322},
    {"Local 3", 0.611024, 0.564982},         {"Local 4", NAN, 0.725055},
    {"Local 5", NAN, 0.710256},              {"FedAvg100", 0.748031, 0.735311},
    {"FedProx100", 0.748031, 0.716703},      {"Scaffold100", 0.748031, 0.699487},
    {"FedAdam100", 0.778740, 0.842125},      {"FedYogi100", 0.778740, 0.842125},
    {"FedAdagrad100", 0.778740, 0.833773},   {"Cyclic100", 0.785039, 0.660733},
};

double ff_benchmark_reference_mean(const char *dataset, const char *method)
{
    int heart = strcmp(dataset, "heart-disease") == 0;
    for (size_t i = 0; i < FF_ARRAY_LEN(refs); i++)
        if (strcmp(refs[i].method, method) == 0)
            return heart ? refs[i].heart : refs[i].tcga;
    return NAN;
}

int fb_write_comparison(const fb_ctx *b)
{
    const ff_benchmark_opts *o = b->opts;
    char path[1024];
    snprintf(path, sizeof path, "%s/comparison.md", o->out_dir);
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return ff_error(FF_ENOMEM, "comparison.md: no memory");
    const char *metric = b->data.dataset == FF_FLAMBY_HEART ? "accuracy" : "C-index";
#define PUT(...) len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, __VA_ARGS__)
    PUT("# FLamby %s: fedfuse vs FLamby\n\n", o->dataset);
    PUT("%s on the pooled test set, mean over %d seed%s (", metric, o->nseeds,
        o->nseeds == 1 ? "" : "s");
    for (int i = 0; i < o->nseeds; i++)
        PUT(i ? ",%lld" : "%lld", (long long)o->seeds[i]);
    PUT(")%s; FLamby: the mean of its published runs (seeds 42-46).\n\n",
        o->tuned ? ", fedfuse's recommended configuration (--tuned)" : ", FLamby's hyperparameters");
    PUT("| method | fedfuse | FLamby | difference | within 0.02 or better |\n|---|---|---|---|---|\n");
    for (int i = 0; i < b->nsum; i++) {
        const fb_summary *s = &b->sum[i];
        double mine = s->pooled_sum / s->count, ref = ff_benchmark_reference_mean(o->dataset, s->name);
        if (isnan(ref))
            PUT("| %s | %.3f | - | - | - |\n", s->name, mine);
        else
            PUT("| %s | %.3f | %.3f | %+.3f | %s |\n", s->name, mine, ref, mine - ref,
                mine >= ref - 0.02 ? "yes" : "no");
    }
    PUT("\nPer-site mean (%s averaged over the sites' own test sets, then over seeds):\n\n"
        "| method | per-site mean |\n|---|---|\n", metric);
    for (int i = 0; i < b->nsum; i++)
        if (strncmp(b->sum[i].name, "FedAvg", 6) == 0)
            PUT("| %s | %.3f |\n", b->sum[i].name, b->sum[i].sites_sum / b->sum[i].count);
    if (o->tuned) {
        PUT("\nHyperparameters chosen on the validation split (20%% of each centre's training "
            "rows; tuned.json has the grids and every candidate's validation loss):\n\n"
            "| method | client lr | FedProx mu | server lr | fine-tuning steps |\n|---|---|---|---|---|\n");
        for (int m = FF_FB_FEDAVG; m <= FF_FB_FEDAVG_LOCALBIAS; m++)
            if (o->methods & (1u << m)) {
                const fb_mhp *h = &b->hp.m[m];
                const int adaptive = m == FF_FB_FEDADAM || m == FF_FB_FEDYOGI || m == FF_FB_FEDADAGRAD;
                char mu[32] = "-", slr[32] = "-", ft[32] = "-";
                if (m == FF_FB_FEDPROX)
                    snprintf(mu, sizeof mu, "%g", h->mu);
                if (adaptive)
                    snprintf(slr, sizeof slr, "%g", h->slr);
                if (m == FF_FB_FEDAVG_FT)
                    snprintf(ft, sizeof ft, "%d", h->ft_steps);
                PUT("| %s | %g | %s | %s | %s |\n", fb_method_name(m), h->lr, mu, slr, ft);
            }
    }
#undef PUT
    int rc = len < cap ? ff_file_write_atomic(path, buf, len, 0644)
                       : ff_error(FF_EINTERNAL, "comparison.md: too long");
    free(buf);
    return rc;
}
