/* `fedfuse model VERB`: inspect, initialise and run the fusion model from the command line. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/models.h"

static int cmd_model(int argc, char **argv);

#define MODEL_USAGE                                                                                \
    "usage: fedfuse model VERB [options]   (fedfuse model VERB --help for details)\n"              \
    "verbs:\n"                                                                                     \
    "  info     --config C                          parameter names, shapes, counts, total\n"      \
    "  init     --config C --seed S --out W         write freshly initialised weights\n"           \
    "  forward  --config C --weights W --inputs I --out O   logits [B,K] and loss [1]\n"           \
    "  grad     --config C --weights W --inputs I --out O   as forward, plus grad.<name>\n"        \
    "Common options: --threads N (default 1). Bad input exits 2 naming tensor and index.\n"

FF_CLI_GROUP_DEFINE(models, {"model", "inspect, initialise and run the fusion model", cmd_model,
                             MODEL_USAGE})

static const char *const USAGE_INFO =
    "usage: fedfuse model info --config C.yaml\n"
    "  Prints every parameter (spec name, shape, element count, weight decay) in spec order\n"
    "  and the total count.\n";
static const char *const USAGE_INIT =
    "usage: fedfuse model init --config C.yaml --seed S --out W.safetensors [--std X]\n"
    "  Writes weights drawn deterministically from seed S (Philox; Linear weights,\n"
    "  embeddings, pos and mod ~ N(0, X), default X = 0.02; biases 0; LayerNorm 1/0).\n";
static const char *const USAGE_FORWARD =
    "usage: fedfuse model forward --config C.yaml --weights W.safetensors --inputs I.safetensors\n"
    "                             --out O.safetensors [--threads N]\n"
    "  I holds image [B,C,S,S] F32, image_present [B] F32, text_ids [B,Lt] I32, ehr_code,\n"
    "  ehr_val, ehr_time [B,Le] I32, labels [B,K] F32 (optional label_mask [B,K] F32).\n"
    "  O receives logits [B,K] F32 and loss [1] F32 (mean BCE over batch and tasks).\n";
static const char *const USAGE_GRAD =
    "usage: fedfuse model grad --config C.yaml --weights W.safetensors --inputs I.safetensors\n"
    "                          --out O.safetensors [--threads N]\n"
    "  As forward; O also receives grad.<name> for every parameter (spec names and order):\n"
    "  the gradient of the loss for this one batch.\n";

static int need(ff_cli_args *a, const char *verb, const char *opt, const char **out)
{
    *out = ff_cli_opt(a, opt);
    if (!*out)
        return ff_error(FF_EINVAL, "model %s: missing %s (see 'fedfuse model %s --help')", verb,
                        opt, verb);
    return FF_OK;
}

static int load_cfg(ff_cli_args *a, const char *verb, ff_model_config *cfg)
{
    const char *path;
    int rc = need(a, verb, "--config", &path);
    if (rc == FF_OK) rc = ff_model_config_load(path, cfg);
    return rc;
}

static int threads_opt(ff_cli_args *a)
{
    int64_t t;
    int rc = ff_cli_opt_i64(a, "--threads", 1, &t);
    if (rc != FF_OK) return rc;
    if (t < 1 || t > FF_MODELS_MAX_THREADS)
        return ff_error(FF_EINVAL, "--threads: %lld outside [1, %d]", (long long)t,
                        FF_MODELS_MAX_THREADS);
    return ff_models_set_threads((int)t);
}

static int verb_info(ff_cli_args *a)
{
    ff_model_config cfg;
    ff_model *m = NULL;
    int rc = load_cfg(a, "info", &cfg);
    if (rc == FF_OK) rc = ff_cli_check_unused(a);
    if (rc == FF_OK) rc = ff_model_new(&m, &cfg, 1);
    if (rc != FF_OK) return ff_cli_fail(rc);
    printf("model %s: width %lld, heads %lld, mlp %lld, layers %lld, fusion %s, tasks %lld",
           cfg.name, (long long)cfg.width, (long long)cfg.heads, (long long)cfg.mlp,
           (long long)cfg.layers, ff_fusion_name(cfg.fusion), (long long)cfg.tasks);
    for (int k = 0; k < cfg.task_set.n; k++) /* the declared tasks, on the same line */
        printf("%s%s (%s)", k ? ", " : ": ", cfg.task_set.t[k].name,
               ff_task_kind_name(cfg.task_set.t[k].kind));
    printf("\n");
    size_t total = 0;
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *p = ff_model_tensor(m, i);
        char shape[64];
        printf("%-36s %-12s %10zu%s\n", p->name,
               ff_shape_str(shape, sizeof shape, p->ndim, p->shape), p->numel,
               p->decay ? "  decay" : "");
        total += p->numel;
    }
    printf("total %zu parameters in %zu tensors\n", total, ff_model_ntensors(m));
    ff_model_free(m);
    return FF_EXIT_OK;
}

static int verb_init(ff_cli_args *a)
{
    ff_model_config cfg;
    ff_model *m = NULL;
    const char *out = NULL;
    int64_t seed = 0;
    double std = 0.02;
    const char *seed_s = NULL;
    int rc = load_cfg(a, "init", &cfg);
    if (rc == FF_OK) rc = need(a, "init", "--seed", &seed_s);
    if (rc == FF_OK && ff_parse_i64(seed_s, &seed) != FF_OK)
        rc = ff_error(FF_EINVAL, "--seed: '%s' is not an integer", seed_s);
    if (rc == FF_OK) rc = need(a, "init", "--out", &out);
    if (rc == FF_OK) rc = ff_cli_opt_f64(a, "--std", 0.02, &std);
    if (rc == FF_OK && !(std > 0 && std < 10))
        rc = ff_error(FF_EINVAL, "--std: %g outside (0, 10)", std);
    if (rc == FF_OK) rc = ff_cli_check_unused(a);
    if (rc == FF_OK) rc = ff_model_new(&m, &cfg, 1);
    if (rc == FF_OK) rc = ff_model_init_std(m, (uint64_t)seed, (float)std);
    if (rc == FF_OK) rc = ff_model_save(m, out);
    ff_model_free(m);
    if (rc != FF_OK) return ff_cli_fail(rc);
    printf("wrote %s (%s, seed %lld)\n", out, cfg.name, (long long)seed);
    return FF_EXIT_OK;
}

static int verb_run(ff_cli_args *a, const char *verb, int grads)
{
    ff_model_config cfg;
    ff_model *m = NULL;
    ff_batch b;
    memset(&b, 0, sizeof b);
    float *logits = NULL, loss = 0;
    const char *wpath, *ipath, *opath;
    int rc = load_cfg(a, verb, &cfg);
    if (rc == FF_OK) rc = need(a, verb, "--weights", &wpath);
    if (rc == FF_OK) rc = need(a, verb, "--inputs", &ipath);
    if (rc == FF_OK) rc = need(a, verb, "--out", &opath);
    if (rc == FF_OK) rc = threads_opt(a);
    if (rc == FF_OK) rc = ff_cli_check_unused(a);
    if (rc == FF_OK) rc = ff_model_read_inputs(&cfg, ipath, &b);
    if (rc == FF_OK) rc = ff_model_new(&m, &cfg, b.B);
    if (rc == FF_OK && (rc = ff_model_check_batch(m, &b)) != FF_OK)
        ff_error_prefix(rc, "%s: ", ipath);
    if (rc == FF_OK) rc = ff_model_load(m, wpath);
    if (rc == FF_OK && !(logits = malloc((size_t)b.B * cfg.tasks * sizeof *logits)))
        rc = ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK) rc = ff_model_forward(m, &b, logits, &loss);
    if (rc == FF_OK && grads) {
        ff_model_zero_grad(m);
        rc = ff_model_backward(m, &b);
    }
    if (rc == FF_OK) rc = ff_model_write_outputs(m, opath, logits, b.B, loss, grads);
    if (rc == FF_OK) printf("%s: B=%d loss %.6f -> %s\n", verb, b.B, (double)loss, opath);
    free(logits);
    ff_batch_free(&b);
    ff_model_free(m);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

static int cmd_model(int argc, char **argv)
{
    if (argc < 2) return ff_cli_usage_error("model", "missing VERB (info, init, forward, grad)");
    const char *verb = argv[1];
    const char *usage = strcmp(verb, "info") == 0      ? USAGE_INFO
                        : strcmp(verb, "init") == 0    ? USAGE_INIT
                        : strcmp(verb, "forward") == 0 ? USAGE_FORWARD
                        : strcmp(verb, "grad") == 0    ? USAGE_GRAD
                                                       : NULL;
    if (!usage)
        return ff_cli_usage_error("model", "unknown verb '%s' (info, init, forward, grad)", verb);
    if (ff_cli_wants_help(argc - 1, argv + 1)) {
        fputs(usage, stdout);
        return FF_EXIT_OK;
    }
    ff_cli_args a;
    ff_cli_args_init(&a, "model", argc - 1, argv + 1);
    if (strcmp(verb, "info") == 0) return verb_info(&a);
    if (strcmp(verb, "init") == 0) return verb_init(&a);
    return verb_run(&a, verb, strcmp(verb, "grad") == 0);
}
