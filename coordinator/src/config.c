/* The coordinator config: one field table (the schema), defaults that are documented in
 * configs/coordinator.yaml, and the cross-field checks the table cannot express. */
#include "ff/coordinator.h"
#include "ff/eval.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>


#define OFF(f) offsetof(ff_coord_config, f)
#define SUB(sec, f) (offsetof(ff_coord_config, sec.f) - offsetof(ff_coord_config, sec))

static const char *const strategy_names[] = {"fedavg", "fedprox", "fedadam", "fedyogi",
                                             "fedadagrad", "scaffold", "cyclic", NULL};
static const char *const aggregator_names[] = {"mean", "median", "trimmed_mean", NULL};
static const char *const sample_modes[] = {"all", "fraction", "count", NULL};
static const char *const quorum_actions[] = {"retry", "stop", NULL};

const char *ff_strategy_name(int kind)
{
    if (kind < 0 || kind >= FF_STRATEGY_COUNT)
        return "?";
    return strategy_names[kind];
}

const char *ff_aggregator_name(int kind)
{
    if (kind < 0 || kind >= FF_AGG_COUNT)
        return "?";
    return aggregator_names[kind];
}

static const ff_cfg_field strategy_fields[] = {
    {.key = "name", .type = FF_CFG_ENUM, .offset = SUB(strategy, name), .choices = strategy_names,
     .def = "fedavg", .help = "server strategy"},
    {.key = "server_lr", .type = FF_CFG_DOUBLE, .offset = SUB(strategy, server_lr), .min = 1e-9,
     .max = 100, .def = "1.0", .help = "server learning rate eta"},
    {.key = "beta1", .type = FF_CFG_DOUBLE, .offset = SUB(strategy, beta1), .min = 0,
     .max = 0.999999, .def = "0.9", .help = "first-moment decay (adaptive strategies)"},
    {.key = "beta2", .type = FF_CFG_DOUBLE, .offset = SUB(strategy, beta2), .min = 0,
     .max = 0.999999, .def = "0.99", .help = "second-moment decay (FedAdam, FedYogi)"},
    {.key = "tau", .type = FF_CFG_DOUBLE, .offset = SUB(strategy, tau), .min = 1e-12, .max = 10,
     .def = "0.001", .help = "adaptivity tau; v starts at tau^2"},
    {.key = "aggregator", .type = FF_CFG_ENUM, .offset = SUB(strategy, aggregator),
     .choices = aggregator_names, .def = "mean",
     .help = "combine updates by weighted mean, or coordinate-wise median / trimmed mean "
             "(robust; secure aggregation off)"},
    {.key = "trim_fraction", .type = FF_CFG_DOUBLE, .offset = SUB(strategy, trim_fraction),
     .min = 0, .max = 0.49, .def = "0.1",
     .help = "trimmed_mean: fraction of sites cut from each end per coordinate"},
    {.key = "clip_multiple", .type = FF_CFG_DOUBLE, .offset = SUB(strategy, clip_multiple),
     .min = 0, .max = 1e6, .def = "0",
     .help = "clip each update to this multiple of the round's median update norm (0 = off; "
             "secure aggregation off)"},
    {.key = "local", .type = FF_CFG_STRLIST, .offset = SUB(strategy, local),
     .help = "tensor-name prefixes kept at each site, never averaged (per-site layers)"},
    {0},
};

static const ff_cfg_field sampling_fields[] = {
    {.key = "mode", .type = FF_CFG_ENUM, .offset = SUB(sampling, mode), .choices = sample_modes,
     .def = "all", .help = "which sites train each round"},
    {.key = "fraction", .type = FF_CFG_DOUBLE, .offset = SUB(sampling, fraction), .min = 1e-9,
     .max = 1, .def = "1.0", .help = "mode fraction: ceil(fraction * sites) sites"},
    {.key = "count", .type = FF_CFG_INT, .offset = SUB(sampling, count), .min = 1,
     .max = FF_COORD_MAX_SITES, .def = "1", .help = "mode count: this many sites"},
    {0},
};

static const ff_cfg_field quorum_fields[] = {
    {.key = "min_sites", .type = FF_CFG_INT, .offset = SUB(quorum, min_sites), .min = 1,
     .max = FF_COORD_MAX_SITES, .def = "1", .help = "sites that must answer each phase"},
    {0},
};

static const ff_cfg_field deadline_fields[] = {
    {.key = "train", .type = FF_CFG_DOUBLE, .offset = SUB(deadlines, train), .min = 0.001,
     .max = 604800, .def = "3600", .help = "local training and update upload"},
    {.key = "evaluate", .type = FF_CFG_DOUBLE, .offset = SUB(deadlines, evaluate), .min = 0.001,
     .max = 604800, .def = "600", .help = "federated evaluation"},
    {.key = "advertise_keys", .type = FF_CFG_DOUBLE, .offset = SUB(deadlines, advertise_keys),
     .min = 0.001, .max = 604800, .def = "60", .help = "secure aggregation round 0"},
    {.key = "share_keys", .type = FF_CFG_DOUBLE, .offset = SUB(deadlines, share_keys),
     .min = 0.001, .max = 604800, .def = "60", .help = "secure aggregation round 1"},
    {.key = "masked_input", .type = FF_CFG_DOUBLE, .offset = SUB(deadlines, masked_input),
     .min = 0.001, .max = 604800, .def = "3600", .help = "secure aggregation round 2 (training included)"},
    {.key = "unmask", .type = FF_CFG_DOUBLE, .offset = SUB(deadlines, unmask), .min = 0.001,
     .max = 604800, .def = "60", .help = "secure aggregation round 3"},
    {0},
};

static const ff_cfg_field secagg_fields[] = {
    {.key = "enabled", .type = FF_CFG_BOOL, .offset = SUB(secure_aggregation, enabled),
     .def = "false", .help = "SecAgg+ phases replace plain updates"},
    {.key = "threshold", .type = FF_CFG_INT, .offset = SUB(secure_aggregation, threshold),
     .min = 2, .max = FF_COORD_MAX_SITES, .def = "2", .help = "survivors needed to unmask"},
    {.key = "neighbours", .type = FF_CFG_INT, .offset = SUB(secure_aggregation, neighbours),
     .min = 0, .max = FF_COORD_MAX_SITES, .def = "0", .help = "k; 0 = default rule"},
    {.key = "site_certs", .type = FF_CFG_STRING, .offset = SUB(secure_aggregation, site_certs),
     .size = FF_COORD_PATH_MAX, .def = "",
     .help = "folder of <site>.pem certificates whose Ed25519 keys sign the advertisements"},
    {0},
};

static const ff_cfg_field tls_fields[] = {
    {.key = "cert", .type = FF_CFG_STRING, .offset = SUB(tls, cert), .size = FF_COORD_PATH_MAX,
     .def = "", .help = "coordinator certificate (PEM)"},
    {.key = "key", .type = FF_CFG_STRING, .offset = SUB(tls, key), .size = FF_COORD_PATH_MAX,
     .def = "", .help = "coordinator private key (PEM)"},
    {0},
};

static const ff_cfg_field audit_fields[] = {
    {.key = "cert", .type = FF_CFG_STRING, .offset = SUB(audit, cert), .size = FF_COORD_PATH_MAX,
     .def = "", .help = "audit certificate (role audit)"},
    {.key = "key", .type = FF_CFG_STRING, .offset = SUB(audit, key), .size = FF_COORD_PATH_MAX,
     .def = "", .help = "audit private key; empty = no audit log"},
    {.key = "log", .type = FF_CFG_STRING, .offset = SUB(audit, log), .size = FF_COORD_PATH_MAX,
     .def = "", .help = "audit log path; empty = out_dir/audit.jsonl"},
    {.key = "anchor_every", .type = FF_CFG_INT, .offset = SUB(audit, anchor_every), .min = 0,
     .max = 1000000, .def = "10",
     .help = "write an RFC 3161 time-stamp query for the log's head every N rounds (and at the "
             "end of the run); 0 = at the end only"},
    {0},
};

static const ff_cfg_field limits_fields[] = {
    {.key = "handshake_timeout_ms", .type = FF_CFG_INT, .offset = SUB(limits, handshake_timeout_ms),
     .min = 100, .max = 600000, .def = "10000",
     .help = "a connection that has not finished TLS within this is closed"},
    {.key = "site_max_calls", .type = FF_CFG_INT, .offset = SUB(limits, site_max_calls), .min = 2,
     .max = 64, .def = "4",
     .help = "calls in progress per site (or operator); more are refused with RESOURCE_EXHAUSTED"},
    {.key = "upload_min_rate", .type = FF_CFG_INT, .offset = SUB(limits, upload_min_rate),
     .min = 1, .max = 1e9, .def = "65536",
     .help = "bytes/s an upload must average after upload_grace, or it is cancelled"},
    {.key = "upload_grace", .type = FF_CFG_DOUBLE, .offset = SUB(limits, upload_grace),
     .min = 0.001, .max = 3600, .def = "30", .help = "seconds before upload_min_rate applies"},
    {.key = "slot_wait", .type = FF_CFG_DOUBLE, .offset = SUB(limits, slot_wait), .min = 0.001,
     .max = 3600, .def = "60",
     .help = "seconds an upload waits for a free upload buffer before it is refused (the site retries)"},
    {.key = "watchdog", .type = FF_CFG_DOUBLE, .offset = SUB(limits, watchdog), .min = 0,
     .max = 3600, .def = "30",
     .help = "seconds between probes of the listener; a dead one stops the process (exit 1); 0 = off"},
    {.key = "crl_warn_days", .type = FF_CFG_DOUBLE, .offset = SUB(limits, crl_warn_days),
     .min = 0, .max = 365, .def = "7",
     .help = "warn (log and status) this many days before the revocation list expires"},
    {0},
};


#define REP(f) offsetof(ff_coord_report_config, f)
#define OP(f) (offsetof(ff_coord_report_config, operating_point.f) - REP(operating_point))
static const ff_cfg_field op_fields[] = {
    {.key = "rule", .type = FF_CFG_ENUM, .offset = OP(rule), .choices = ff_eval_op_rule_names,
     .def = "specificity", .help = "how each task's threshold is chosen on the pooled "
     "validation split: threshold (target is it), specificity or sensitivity (kept >= target), "
     "alert_rate (share flagged kept <= target)"},
    {.key = "target", .type = FF_CFG_DOUBLE, .offset = OP(target), .min = 0, .max = 1,
     .def = "0.9", .help = "the rule's target"},
    {0},
};

const ff_cfg_field ff_coord_report_schema[] = {
    {.key = "operating_point", .type = FF_CFG_SECTION, .offset = REP(operating_point),
     .sub = op_fields},
    {.key = "min_cell_size", .type = FF_CFG_INT, .offset = REP(min_cell_size), .min = 0,
     .max = 1000000, .def = "10", .help = "subgroups with fewer patients are suppressed"},
    {.key = "bootstrap", .type = FF_CFG_INT, .offset = REP(bootstrap), .min = 0, .max = 100000,
     .def = "200", .help = "histogram-bootstrap replicates for the 95% intervals (0: none)"},
    {.key = "min_positives", .type = FF_CFG_INT, .offset = REP(min_positives), .min = 0,
     .max = 1000000, .def = "10",
     .help = "a site with fewer positives is flagged at the operating point"},
    {0},
};

const ff_cfg_field ff_coord_config_schema[] = {
    {.key = "run_name", .type = FF_CFG_STRING, .offset = OFF(run_name), .size = FF_COORD_NAME_MAX,
     .required = 1, .help = "name of the run (logs, checkpoint)"},
    {.key = "rounds", .type = FF_CFG_INT, .offset = OFF(rounds), .required = 1, .min = 1,
     .max = 1000000, .help = "federated rounds"},
    {.key = "seed", .type = FF_CFG_INT, .offset = OFF(seed), .min = 0, .max = 9.0e15, .def = "0",
     .help = "seed of site sampling"},
    {.key = "strategy", .type = FF_CFG_SECTION, .offset = OFF(strategy), .sub = strategy_fields},
    {.key = "sampling", .type = FF_CFG_SECTION, .offset = OFF(sampling), .sub = sampling_fields},
    {.key = "quorum", .type = FF_CFG_SECTION, .offset = OFF(quorum), .sub = quorum_fields},
    {.key = "deadlines", .type = FF_CFG_SECTION, .offset = OFF(deadlines), .sub = deadline_fields},
    {.key = "report", .type = FF_CFG_SECTION, .offset = OFF(report), .sub = ff_coord_report_schema},
    {.key = "on_quorum_fail", .type = FF_CFG_ENUM, .offset = OFF(on_quorum_fail),
     .choices = quorum_actions, .def = "retry", .help = "retry the round or stop the run"},
    {.key = "max_retries", .type = FF_CFG_INT, .offset = OFF(max_retries), .min = 0, .max = 1000,
     .def = "3", .help = "retries of one round before stopping"},
    {.key = "site_timeout", .type = FF_CFG_DOUBLE, .offset = OFF(site_timeout), .min = 0,
     .max = 604800, .def = "300",
     .help = "seconds: a site not heard from for this long is not selected until it calls "
             "again (0 = no limit)"},
    {.key = "checkpoint_dir", .type = FF_CFG_STRING, .offset = OFF(checkpoint_dir),
     .size = FF_COORD_PATH_MAX, .def = "out/checkpoints", .help = "checkpoint folder"},
    {.key = "out_dir", .type = FF_CFG_STRING, .offset = OFF(out_dir), .size = FF_COORD_PATH_MAX,
     .def = "out", .help = "rounds.csv and the final model"},
    {.key = "listen", .type = FF_CFG_STRING, .offset = OFF(listen), .size = 128,
     .def = "127.0.0.1:7443", .help = "address the transport listens on (0.0.0.0:443 behind "
     "hospital proxies that only allow HTTPS)"},
    {.key = "metrics", .type = FF_CFG_STRING, .offset = OFF(metrics), .size = 128, .def = "",
     .help = "Prometheus endpoint host:port (GET /metrics); \"\" = off; a bare port = loopback"},
    {.key = "consortium", .type = FF_CFG_STRING, .offset = OFF(consortium),
     .size = FF_COORD_PATH_MAX, .def = "", .help = "consortium file (sites, certificates)"},
    {.key = "plan", .type = FF_CFG_STRING, .offset = OFF(plan), .size = FF_COORD_PATH_MAX,
     .def = "", .help = "training plan file (empty = default plan)"},
    {.key = "query", .type = FF_CFG_STRING, .offset = OFF(query), .size = FF_COORD_PATH_MAX,
     .def = "", .help = "statistics query file: runs a statistics job instead of training "
                        "(docs/statistics.md)"},
    {.key = "model_config", .type = FF_CFG_STRING, .offset = OFF(model_config),
     .size = FF_COORD_PATH_MAX, .def = "", .help = "model config file"},
    {.key = "tls", .type = FF_CFG_SECTION, .offset = OFF(tls), .sub = tls_fields},
    {.key = "audit", .type = FF_CFG_SECTION, .offset = OFF(audit), .sub = audit_fields},
    {.key = "secure_aggregation", .type = FF_CFG_SECTION, .offset = OFF(secure_aggregation),
     .sub = secagg_fields},
    {.key = "limits", .type = FF_CFG_SECTION, .offset = OFF(limits), .sub = limits_fields},
    {0},
};

/* A cross-field error at the place of key path in the text: "FILE:LINE:COL: path: why". */
static int cross_check(const ff_coord_config *c, const char *name, const char *yaml, size_t len)
{
    if (c->run_name[0] == '\0')
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "run_name", "must not be empty");
    if (c->checkpoint_dir[0] == '\0')
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "checkpoint_dir", "must not be empty");
    if (c->out_dir[0] == '\0')
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "out_dir", "must not be empty");
    const char *colon = strrchr(c->listen, ':');
    if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "listen", "'%s' is not host:port (e.g. "
                               "0.0.0.0:7443)", c->listen);
    if (c->sampling.mode == FF_SAMPLE_COUNT && c->sampling.count < c->quorum.min_sites)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "sampling.count",
                               "%lld sites per round can never reach quorum.min_sites %lld",
                               (long long)c->sampling.count, (long long)c->quorum.min_sites);
    if (c->secure_aggregation.enabled && c->secure_aggregation.threshold > c->quorum.min_sites)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "secure_aggregation.threshold",
                               "%lld is above quorum.min_sites %lld (a round could pass quorum "
                               "and still fail to unmask)",
                               (long long)c->secure_aggregation.threshold,
                               (long long)c->quorum.min_sites);
    if (c->secure_aggregation.enabled && c->strategy.aggregator != FF_AGG_MEAN)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "strategy.aggregator",
                               "%s needs single updates, which secure aggregation hides (use "
                               "mean, or turn secure_aggregation.enabled off)",
                               ff_aggregator_name(c->strategy.aggregator));
    if (c->secure_aggregation.enabled && c->strategy.clip_multiple > 0)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "strategy.clip_multiple",
                               "%g needs single update norms, which secure aggregation hides "
                               "(clip on the client instead, or set 0)",
                               c->strategy.clip_multiple);
    return FF_OK;
}

int ff_coord_config_load_str(ff_coord_config *cfg, const char *name, const char *yaml, size_t len)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = ff_cfg_load_str(name, yaml, len, ff_coord_config_schema, cfg);
    if (rc != FF_OK)
        return rc;
    return cross_check(cfg, name, yaml, len);
}

int ff_coord_config_load(ff_coord_config *cfg, const char *path)
{
    memset(cfg, 0, sizeof *cfg);
    char *buf;
    size_t len;
    int rc = ff_file_read_all(path, FF_CFG_MAX_FILE, &buf, &len);
    if (rc != FF_OK) {
        if (ff_cfg_defaults(ff_coord_config_schema, cfg) != FF_OK)
            return FF_EINTERNAL;
        return rc;
    }
    rc = ff_coord_config_load_str(cfg, path, buf, len);
    free(buf);
    /* the files it names are relative to the config file (defaults included) */
    char *paths[] = {cfg->checkpoint_dir, cfg->out_dir, cfg->consortium, cfg->plan, cfg->query,
                     cfg->model_config, cfg->tls.cert, cfg->tls.key, cfg->audit.cert,
                     cfg->audit.key, cfg->audit.log, cfg->secure_aggregation.site_certs};
    for (size_t i = 0; rc == FF_OK && i < FF_ARRAY_LEN(paths); i++)
        ff_cfg_path_resolve(path, paths[i], FF_COORD_PATH_MAX);
    return rc;
}

void ff_coord_config_free(ff_coord_config *cfg)
{
    ff_cfg_free(ff_coord_config_schema, cfg);
}
