/*
 * ff/benchmark.h — outside yardsticks: FLamby's Fed-Heart-Disease and Fed-TCGA-BRCA
 * benchmarks (Ogier du Terrail et al., NeurIPS 2022) run with FLamby's splits, models,
 * batch sizes, local updates, rounds and per-strategy hyperparameters, the federated methods
 * through the coordinator's round engine with an in-process driver.
 *
 *     ff_benchmark_opts o = ff_benchmark_opts_default();
 *     o.dataset = "heart-disease"; o.data_dir = "flamby/heart"; o.out_dir = "out";
 *     if (ff_benchmark_flamby_run(&o) != FF_OK) ...    // out/results.csv, out/comparison.md
 *
 * Data: a folder written by `fedfuse import flamby` (ff_flamby_import, library data).
 */
#ifndef FF_BENCHMARK_H
#define FF_BENCHMARK_H

#include <stdint.h>
#include <stdio.h>

#include "ff/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FF_FLAMBY_MAX_SEEDS 32

/* Methods, in results order. FLamby's names (results.csv `Method`): "Pooled Training",
 * "Local K", "FedAvg100", "FedProx100", "Scaffold100", "FedAdam100", "FedYogi100",
 * "FedAdagrad100", "Cyclic100"; fedfuse's personalised ones: "FedAvgFineTuning100" (FedAvg,
 * then each site fine-tunes on its own data; FLamby's FedAvgFineTuning) and
 * "FedAvgLocalBias100" (FedAvg with fc.bias kept at each site, strategy.local); and
 * "CyclicFLamby100", FLamby's Cyclic code as it runs (flamby/strategies/cyclic.py): sites in
 * the same per-cycle permutations, but each trains its own copy of the model in its turn
 * (no weights pass between sites) and the model reported is centre 0's copy. */
typedef enum {
    FF_FB_POOLED = 0,
    FF_FB_LOCAL,
    FF_FB_FEDAVG,
    FF_FB_FEDPROX,
    FF_FB_SCAFFOLD,
    FF_FB_FEDADAM,
    FF_FB_FEDYOGI,
    FF_FB_FEDADAGRAD,
    FF_FB_CYCLIC,
    FF_FB_FEDAVG_FT,
    FF_FB_FEDAVG_LOCALBIAS,
    FF_FB_CYCLIC_FLAMBY,
    FF_FB_COUNT
} ff_benchmark_method;

/* --methods keys: pooled, local, fedavg, fedprox, scaffold, fedadam, fedyogi, fedadagrad,
 * cyclic, fedavg-ft, fedavg-localbias, cyclic-flamby. */
const char *ff_benchmark_method_key(int m);

typedef struct {
    const char *dataset;  /* "heart-disease" or "tcga-brca" */
    const char *data_dir; /* written by `fedfuse import flamby` */
    const char *out_dir;
    int64_t seeds[FF_FLAMBY_MAX_SEEDS];
    int nseeds;                  /* default 42..46 */
    unsigned methods;            /* bit per ff_benchmark_method; default all */
    int tuned;                   /* fedfuse's recommended configuration (docs/benchmarks.md) */
    FILE *progress;              /* progress line; NULL = none */
} ff_benchmark_opts;

ff_benchmark_opts ff_benchmark_opts_default(void);
/* Parses "42,43" into seeds; FF_EINVAL naming the bad item. */
int ff_benchmark_parse_seeds(ff_benchmark_opts *o, const char *list) FF_WARN_UNUSED;
/* Parses "fedavg,scaffold" into methods; FF_EINVAL naming an unknown key. */
int ff_benchmark_parse_methods(ff_benchmark_opts *o, const char *list) FF_WARN_UNUSED;

/* Runs every selected method for every seed; writes OUT/results.csv (seed,Method,Test,Metric:
 * Test = client_test_K or Pooled Test, Metric = accuracy or C-index) and OUT/comparison.md
 * (per method: mean over seeds on the pooled test set, FLamby's published mean, the
 * difference; the per-site means of FedAvg and its personalised variants). The engine's
 * checkpoints and rounds.csv of each run go to OUT/runs/. Errors name the file or method. */
int ff_benchmark_flamby_run(const ff_benchmark_opts *o) FF_WARN_UNUSED;

/* FLamby's published mean over seeds 42–46 on the pooled test set (computed from its
 * per-seed results files), or NaN when FLamby has none for the method. */
double ff_benchmark_reference_mean(const char *dataset, const char *method);

#ifdef __cplusplus
}
#endif
#endif
