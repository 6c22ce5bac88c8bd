/* Commands of the coordinator library that need no network: checking a coordinator config
 * and training plan, and the job hash the sites approve. */
#include "commands.h"

#include "ff/coordinator.h"
#include "ff/stats.h"

#include <stdlib.h>
#include <string.h>

static int cmd_job(int argc, char **argv);

FF_CLI_GROUP_DEFINE(coordinator,
    {"job", "check a coordinator config and training plan; print the job hash", cmd_job,
     "usage: fedfuse job hash --config COORDINATOR.yaml\n"
     "       fedfuse job --config COORDINATOR.yaml [--plan PLAN.yaml] [--model-config FILE]\n"
     "       fedfuse job --schema\n"
     "  `job hash` prints `job <64 hex>`: the job hash of exactly what this coordinator\n"
     "  config sends (its plan and model_config keys), the line the coordinator prints at\n"
     "  start and the value a site adds to accepted_jobs\n"
     "  (`fedfuse policy approve --policy P --job HASH`). The hash is\n"
     "  SHA-256(SHA-256(model config file) || SHA-256(canonical plan)).\n"
     "  Without `hash`: loads and validates the coordinator config and the training plan\n"
     "  (errors name FILE:LINE:COL and the key), prints the run settings, the plan's stages\n"
     "  and the same `job` line. --plan and --model-config replace the config's plan and\n"
     "  model_config keys (a job under review); without either key the default plan (one\n"
     "  stage) and an empty model config are used. --schema lists every key of both files\n"
     "  with its type, default and range. A config with `query:` (a statistics job,\n"
     "  docs/statistics.md) checks the query instead and prints its job hash:\n"
     "  SHA-256(\"fedfuse-statistics-v1\\n\" || the query file).\n"})

/* A statistics job (coordinator.yaml `query:`, docs/statistics.md): the query checked and its
 * job hash, the value sites approve. */
static int stats_job(const ff_coord_config *c, int hash_only)
{
    ff_stats_query *q = NULL;
    char *text = NULL, hex[FF_SHA256_HEX];
    size_t len = 0;
    int rc = ff_file_read_all(c->query, 1u << 20, &text, &len);
    if (rc == FF_OK)
        rc = ff_stats_query_load_str(&q, c->query, text, len);
    if (rc == FF_OK)
        rc = ff_stats_job_hash(text, len, hex);
    if (rc == FF_OK && !hash_only)
        printf("statistics job %s: %zu columns read, %zu lanes per site; secure aggregation %s\n",
               ff_stats_query_name(q), ff_stats_query_ncolumns(q), ff_stats_lanes(q),
               c->secure_aggregation.enabled ? "on" : "off (the coordinator refuses to run it)");
    if (rc == FF_OK)
        printf("job %s\n", hex);
    ff_stats_query_free(q);
    free(text);
    return rc;
}

static int print_job(const ff_coord_config *c, const ff_plan *p, const char *hash)
{
    static const char *const modes[] = {"all", "fraction", "count"};
    printf("run %s: %lld rounds, seed %lld, strategy %s (server_lr %g)\n", c->run_name,
           (long long)c->rounds, (long long)c->seed, ff_strategy_name(c->strategy.name),
           c->strategy.server_lr);
    printf("sampling %s, quorum %lld sites, on_quorum_fail %s (max_retries %lld)\n",
           modes[c->sampling.mode], (long long)c->quorum.min_sites,
           c->on_quorum_fail == FF_QUORUM_STOP ? "stop" : "retry", (long long)c->max_retries);
    printf("deadlines: train %gs, evaluate %gs; secure aggregation %s\n", c->deadlines.train,
           c->deadlines.evaluate, c->secure_aggregation.enabled ? "on" : "off");
    const ff_plan_stage *st = p->stages.items;
    for (size_t i = 0; i < p->stages.count; i++)
        printf("stage %zu %s: %lld rounds, %zu trainable prefixes (0 = all)\n", i, st[i].name,
               (long long)st[i].rounds, st[i].trainable.count);
    printf("job %s\n", hash);
    return FF_OK;
}

/* The plan's privacy section against this config's secure aggregation (the coordinator
 * also checks the consortium's size and the ε a resumed run spent). */
static int check_plan_privacy(const ff_coord_config *c, const ff_plan *p, const char *path)
{
    const ff_privacy_cfg *pv = &p->privacy;
    if (!pv->record.enabled && !pv->client.enabled)
        return FF_OK;
    char *yaml = NULL;
    size_t len = 0;
    int rc = ff_file_read_all(path, 4u << 20, &yaml, &len);
    ff_privacy_context ctx = {0};
    if (rc == FF_OK)
        rc = ff_plan_check_privacy(p, path, yaml, len, &ctx, c->secure_aggregation.enabled);
    free(yaml);
    if (rc == FF_OK)
        printf("privacy: client-level %s, noise multiplier %g, clip %g, delta %g, epsilon "
               "budget %g\n",
               pv->client.mechanism ? "distributed_discrete_gaussian" : "gaussian",
               pv->client.noise_multiplier, pv->client.clip_norm, pv->client.delta,
               pv->client.epsilon_budget);
    return rc;
}

static int cmd_job(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "job", argc, argv);
    if (ff_cli_flag(&a, "--schema")) {
        if (ff_cli_check_unused(&a) != FF_OK)
            return ff_cli_fail(FF_EINVAL);
        printf("coordinator config:\n");
        ff_cfg_describe(stdout, ff_coord_config_schema, 2);
        printf("training plan:\n");
        ff_cfg_describe(stdout, ff_plan_schema, 2);
        return FF_EXIT_OK;
    }
    const char *cfg_path = ff_cli_opt(&a, "--config");
    const char *plan_path = ff_cli_opt(&a, "--plan");
    const char *model_path = ff_cli_opt(&a, "--model-config");
    const char *sub = ff_cli_pos(&a, 0);
    if (sub && strcmp(sub, "hash") != 0)
        return ff_cli_usage_error("job", "unknown argument '%s' (try `job hash`)", sub);
    if (sub && (plan_path || model_path))
        return ff_cli_usage_error("job", "hash: takes the plan and model_config keys of "
                                  "--config only (what the coordinator sends)");
    if (!cfg_path)
        return ff_cli_usage_error("job", "missing --config");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    ff_coord_config c;
    ff_coord_job j;
    memset(&j, 0, sizeof j);
    int rc = ff_coord_config_load(&c, cfg_path);
    if (rc == FF_OK && c.query[0] && !plan_path && !model_path) {
        rc = stats_job(&c, sub != NULL);
        ff_coord_config_free(&c);
        return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
    }
    if (rc == FF_OK) {
        /* a job under review replaces the config's keys; an empty model config is allowed
         * for checking a plan alone, never for `job hash` (the coordinator needs one) */
        if (plan_path)
            ff_strlcpy(c.plan, plan_path, sizeof c.plan);
        if (model_path)
            ff_strlcpy(c.model_config, model_path, sizeof c.model_config);
        rc = ff_coord_job_load(&j, &c, cfg_path, sub != NULL);
    }
    if (rc == FF_OK && sub) {
        printf("job %s\n", j.hex);
    } else if (rc == FF_OK) {
        if (c.plan[0])
            rc = check_plan_privacy(&c, &j.plan, c.plan);
        if (rc == FF_OK)
            rc = print_job(&c, &j.plan, j.hex);
    }
    ff_coord_job_free(&j);
    ff_coord_config_free(&c);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}
