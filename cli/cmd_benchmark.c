/* Commands of the benchmark library: `fedfuse benchmark flamby`. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/benchmark.h"

static int cmd_benchmark(int argc, char **argv);

FF_CLI_GROUP_DEFINE(benchmark,
    {"benchmark", "run FLamby's Fed-Heart-Disease / Fed-TCGA-BRCA benchmarks", cmd_benchmark,
     "usage: fedfuse benchmark flamby --dataset heart-disease|tcga-brca --data DIR --out DIR\n"
     "                                [--seeds 42,43,44,45,46] [--methods LIST] [--tuned]\n"
     "  FLamby's splits, linear models (logistic regression; Cox), batch size, 100 local\n"
     "  updates per round, rounds and per-strategy hyperparameters; the federated methods\n"
     "  through the coordinator's round engine (in-process). DIR: the output of\n"
     "  `fedfuse import flamby`. Writes OUT/results.csv (seed,Method,Test,Metric, FLamby's\n"
     "  columns and method names), OUT/comparison.md (mean over seeds on the pooled test set\n"
     "  beside FLamby's published mean) and the engine's rounds.csv per run under OUT/runs/.\n"
     "  --methods LIST  comma-separated: pooled, local, fedavg, fedprox, scaffold, fedadam,\n"
     "                  fedyogi, fedadagrad, cyclic, fedavg-ft, fedavg-localbias,\n"
     "                  cyclic-flamby (default all)\n"
     "  --tuned         fedfuse's recommended configuration: each federated method's rates\n"
     "                  (FedProx mu, server rate, fine-tuning steps) chosen by a grid search\n"
     "                  on a validation split of 20% of each centre's training rows (never\n"
     "                  the test rows); prints the choices, writes OUT/tuned.json (grids,\n"
     "                  every candidate's validation loss); TCGA-BRCA features standardised\n"
     "                  with training statistics (docs/benchmarks.md)\n"})

static int cmd_benchmark(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "benchmark", argc, argv);
    if (argc < 2 || strcmp(argv[1], "flamby") != 0)
        return ff_cli_usage_error("benchmark", "the benchmark must be 'flamby'");
    a.used[1] = 1;
    ff_benchmark_opts o = ff_benchmark_opts_default();
    o.dataset = ff_cli_opt(&a, "--dataset");
    o.data_dir = ff_cli_opt(&a, "--data");
    o.out_dir = ff_cli_opt(&a, "--out");
    const char *seeds = ff_cli_opt(&a, "--seeds"), *methods = ff_cli_opt(&a, "--methods");
    o.tuned = ff_cli_flag(&a, "--tuned");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!o.dataset || !o.data_dir || !o.out_dir)
        return ff_cli_usage_error("benchmark", "--dataset, --data and --out are required");
    if (strcmp(o.dataset, "heart-disease") != 0 && strcmp(o.dataset, "tcga-brca") != 0)
        return ff_cli_usage_error("benchmark", "--dataset must be heart-disease or tcga-brca, "
                                  "not '%s'", o.dataset);
    if ((seeds && ff_benchmark_parse_seeds(&o, seeds) != FF_OK) ||
        (methods && ff_benchmark_parse_methods(&o, methods) != FF_OK))
        return ff_cli_usage_error("benchmark", "%s", ff_error_message());
    o.progress = stderr;
    if (!getenv("FEDFUSE_LOG_LEVEL")) /* the engine's per-round lines would bury the progress */
        ff_log_set_level(FF_LOG_WARN);
    int rc = ff_benchmark_flamby_run(&o);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("wrote %s/results.csv and %s/comparison.md\n", o.out_dir, o.out_dir);
    return FF_EXIT_OK;
}
