/* Commands of the fed library: the coordinator and client processes, the Status RPC and the
 * one-machine simulation (the README demo). */
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/fed.h"
#include "ff/coordinator.h"
#include "ff/transport.h"

static int cmd_coordinator(int argc, char **argv);
static int cmd_client_node(int argc, char **argv);
static int cmd_status(int argc, char **argv);
static int cmd_simulate(int argc, char **argv);
static int cmd_stats(int argc, char **argv);
static int cmd_doctor(int argc, char **argv);
static int cmd_consortium(int argc, char **argv);

FF_CLI_GROUP_DEFINE(fed,
    {"coordinator", "run the federation's coordinator (gRPC + mTLS, round engine, audit log)",
     cmd_coordinator,
     "usage: fedfuse coordinator --config COORDINATOR.yaml [--no-progress]\n"
     "  Serves the consortium's sites over mutual TLS (listen, tls, consortium), runs the\n"
     "  rounds of the training plan (plan, model_config) and writes out_dir/: model.safetensors\n"
     "  (final), rounds.csv, checkpoints, audit.jsonl (audit key), metrics.json and report.html\n"
     "  (pooled and per site, from the sites' score histograms). Restarted with the same\n"
     "  command after a crash, it resumes from the last checkpoint. SIGINT/SIGTERM stop it.\n"},
    {"client", "run a hospital's client node (dials out to the coordinator)", cmd_client_node,
     "usage: fedfuse client --config SITE.yaml [run]\n"
     "       fedfuse client run --config SITE.yaml\n"
     "  Long-polls the coordinator for tasks; checks each against the site policy and the\n"
     "  approved job hash, trains locally or evaluates, sends the update or the score\n"
     "  histograms, and writes a signed receipt per round under out_dir/receipts. Reconnects\n"
     "  by itself; exits 0 when the run is done. Schema: configs/site.yaml.\n"},
    {"status", "ask a coordinator for its round, phase, sites and counters", cmd_status,
     "usage: fedfuse status --coordinator HOST:PORT --cert SITE.crt --key SITE.key --ca CA.crt\n"
     "                      [--server-name NAME] [--json]\n"
     "  Calls the Status RPC over mutual TLS and prints the round, phase, connected sites,\n"
     "  pending sites, one line per site (last seen, state, last error code, version, clock\n"
     "  skew, roster version; error codes: docs/operations.md) and the coordinator's\n"
     "  counters. --json prints the coordinator's detail object (site_status per site).\n"
     "  Exit 1 when unreachable.\n"},
    {"doctor", "check a site or coordinator before it runs: files, certificate, link, data", cmd_doctor,
     "usage: fedfuse doctor --config SITE.yaml|COORDINATOR.yaml [--json]\n"
     "  Runs every check the node needs, one line each: `ok CHECK (detail)`, or\n"
     "  `FAIL CHECK: reason; fix: what to do`, or `skip CHECK: why` when an earlier failure\n"
     "  stops it. A site config: config parses; files exist, the key is not readable by\n"
     "  others; key matches certificate; certificate chains to the CA, not expiring within\n"
     "  30 days; site name = certificate CN; policy parses and accepts a job; data check;\n"
     "  free disk for receipts; then coordinator DNS, TCP, TLS handshake with this site's\n"
     "  certificate, an authenticated ping with its round trip (revoked and unenrolled\n"
     "  certificates are named), and the clock skew against the coordinator; through the\n"
     "  outbound proxy when one is set (proxy: key, grpc_proxy, https_proxy). A coordinator\n"
     "  config: config parses, consortium, files and key permissions, key matches\n"
     "  certificate, chain, revocation and CRL freshness, expiry, plan and job hash, free\n"
     "  disk. --json prints one object {\"ok\", \"failed\", \"checks\": [{\"check\",\n"
     "  \"status\", \"detail\"}]}. Exit 0 when every check passes, 1 when one fails.\n"},
    {"consortium", "enrol a hospital in a running consortium (no restart)", cmd_consortium,
     "usage: fedfuse consortium add --config COORDINATOR.yaml --cert SITE.crt [--contact TEXT]\n"
     "       fedfuse consortium add --consortium CONSORTIUM.yaml --cert SITE.crt [--contact TEXT]\n"
     "  Checks the hospital's certificate (the one `fedfuse pki sign` returned) against the\n"
     "  consortium's CA and CRL and its role (site), then adds its CN to the consortium file's\n"
     "  sites (the file named by the coordinator config's consortium key), in place: comments\n"
     "  and mode kept, rewritten atomically. A running coordinator re-reads the file at the\n"
     "  next call it serves: the site may connect at once, joins the roster (a new version)\n"
     "  and is selectable from the next round; no restart, nothing to do at other sites.\n"
     "  Exit 2 when the certificate is refused (the reason is printed) or the file is invalid.\n"},
    {"stats", "federated statistics: a query over sites' data, secure aggregation on", cmd_stats,
     "usage: fedfuse stats --query Q.yaml --site DIR... [--out DIR] [--min-cell N]\n"
     "                    [--allow COL,COL...] [--history DIR] [--per-site]\n"
     "                    [--dp-required] [--max-epsilon E] [--max-query-epsilon E]\n"
     "  Runs a statistics job (docs/statistics.md) on this machine the way simulate runs\n"
     "  training: a throw-away PKI, one coordinator and one client process per --site (a site\n"
     "  folder or a CSV file, 2 to 64), secure aggregation on, so the coordinator only sees\n"
     "  the sum of the sites' counts. Each site's policy allows the query's columns (or only\n"
     "  --allow), suppresses counts below --min-cell (default 10) with complementary\n"
     "  suppression, and refuses a query that would difference out a small cell against its\n"
     "  history in --history DIR (default OUT/history). With --per-site the policies also\n"
     "  release each site's own results (when the query asks, per_site: true).\n"
     "  A query with a privacy: section is noised at the sites and charged to each site's\n"
     "  privacy ledger (in the --history DIR): --max-query-epsilon (default 1) caps one\n"
     "  query, --max-epsilon (default 10) the site's total; --dp-required makes the sites\n"
     "  refuse a query without noise.\n"
     "  Writes OUT (default out-stats):\n"
     "  stats.json {\"results\": [{variable, statistic, site, value[, bound]}], \"suppressed\",\n"
     "  \"refusals\"}, stats.html and the signed audit log audit.jsonl.\n"},
    {"simulate", "the demo: a whole consortium on this machine as real processes", cmd_simulate,
     "usage: fedfuse simulate --config configs/demo.yaml [--out DIR] [--site DIR ...]\n"
     "  With --site (repeatable, up to 64; or data.site_dirs in the config) the hospitals are\n"
     "  those existing site folders, named after the folders; each is checked (readable,\n"
     "  loadable) before anything starts, and nothing is ever written into them. Without it,\n"
     "  data.dir/site-1..N, generated as a synthetic cohort only when data.dir is missing or\n"
     "  empty. Makes a throw-away PKI, and runs one coordinator\n"
     "  and one client process per hospital over mutual TLS on loopback. Then trains the\n"
     "  pooled and local-only baselines on the same budget and compares them with the\n"
     "  federated model and the oracle. Writes DIR/ (default out): model.safetensors,\n"
     "  checkpoints/, rounds.csv, metrics.json, report.html, comparison.json, audit.jsonl,\n"
     "  receipts/, pki/ca.pem, config/, logs/.\n"})

static volatile int g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int cmd_coordinator(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "coordinator", argc, argv);
    const char *cfg = ff_cli_opt(&a, "--config");
    int quiet = ff_cli_flag(&a, "--no-progress");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!cfg)
        return ff_cli_usage_error("coordinator", "missing --config");
    install_signals();
    ff_fed_run_opts o = {.stop = &g_stop, .progress = !quiet};
    int rc = ff_fed_coordinator_run(cfg, &o);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

static int cmd_client_node(int argc, char **argv)
{
    /* `fedfuse client run --config X` (the systemd unit's form) is the same command. */
    if (argc > 1 && strcmp(argv[1], "run") == 0) {
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    ff_cli_args a;
    ff_cli_args_init(&a, "client", argc, argv);
    const char *cfg = ff_cli_opt(&a, "--config");
    const char *pos = ff_cli_pos(&a, 0);
    if (pos && strcmp(pos, "run") != 0)
        return ff_cli_usage_error("client", "unknown argument '%s'", pos);
    (void)ff_cli_pos(&a, 0);
    if (!cfg)
        return ff_cli_usage_error("client", "missing --config");
    ff_fed_site_config sc;
    int rc = ff_fed_site_config_load(&sc, cfg);
    if (rc == FF_OK)
        rc = ff_fed_site_config_check(&sc, cfg);
    ff_cfg_free(ff_fed_site_config_schema, &sc);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    install_signals();
    ff_fed_run_opts o = {.stop = &g_stop};
    rc = ff_fed_client_run(&sc, &o);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

/* One line per site from the coordinator's site_status (remote diagnosis): last seen, state,
 * last error code, version, clock skew and the roster version when the coordinator has one. */
static void print_sites(json_t *d)
{
    json_t *sites = json_object_get(d, "site_status");
    if (!json_is_object(sites))
        return;
    printf("%-20s %-10s %-18s %-24s %-8s %-11s %s\n", "site", "last seen", "state", "last error",
           "version", "clock skew", "roster");
    const char *name;
    json_t *o;
    json_object_foreach(sites, name, o)
    {
        char seen[32] = "never", skew[32] = "-", roster[32] = "-";
        json_t *v = json_object_get(o, "last_seen_s");
        if (json_is_number(v))
            snprintf(seen, sizeof seen, "%.0f s ago", json_number_value(v));
        v = json_object_get(o, "clock_skew_s");
        if (json_is_number(v))
            snprintf(skew, sizeof skew, "%+.3f s", json_number_value(v));
        v = json_object_get(o, "roster_version");
        if (!v)
            v = json_object_get(d, "roster_version");
        if (json_is_integer(v))
            snprintf(roster, sizeof roster, "%lld", (long long)json_integer_value(v));
        else if (json_is_string(v))
            snprintf(roster, sizeof roster, "%.30s", json_string_value(v));
        const char *state = json_string_value(json_object_get(o, "liveness"));
        if (!state)
            state = json_string_value(json_object_get(o, "state"));
        const char *code = json_string_value(json_object_get(o, "error_code"));
        const char *ver = json_string_value(json_object_get(o, "version"));
        printf("%-20s %-10s %-18s %-24s %-8s %-11s %s\n", name, seen, state ? state : "-",
               code && code[0] ? code : "-", ver && ver[0] ? ver : "-", skew, roster);
    }
}

static int cmd_status(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "status", argc, argv);
    ff_rpc_opts o = {.attempts = 1};
    o.target = ff_cli_opt(&a, "--coordinator");
    o.cert = ff_cli_opt(&a, "--cert");
    o.key = ff_cli_opt(&a, "--key");
    o.ca = ff_cli_opt(&a, "--ca");
    o.server_name = ff_cli_opt(&a, "--server-name");
    int as_json = ff_cli_flag(&a, "--json");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!o.target || !o.cert || !o.key || !o.ca)
        return ff_cli_usage_error("status", "needs --coordinator --cert --key --ca");
    ff_rpc *c = NULL;
    Fedfuse__StatusReply *st = NULL;
    int rc = ff_rpc_new(&c, &o);
    if (rc == FF_OK)
        rc = ff_rpc_status(c, &st, 10000);
    if (rc == FF_OK) {
        json_t *d = st->detail ? ff_fed_status_json(st->detail) : json_object();
        char *text = as_json && d ? json_dumps(d, JSON_COMPACT) : NULL;
        if (as_json) {
            printf("%s\n", text ? text : "{}");
            free(text);
        } else {
            printf("consortium %s, run %s\n", st->consortium, st->run_id);
            printf("round %u of %lld, phase %s\n", st->round,
                   (long long)json_integer_value(json_object_get(d, "rounds")),
                   json_string_value(json_object_get(d, "phase")) ? json_string_value(json_object_get(d, "phase"))
                                                                  : ff_phase_wire_label((int)st->phase));
            printf("sites connected (last minute): %zu of %lld:", st->n_sites_connected,
                   (long long)json_integer_value(json_object_get(d, "sites")));
            for (size_t i = 0; i < st->n_sites_connected; i++)
                printf(" %s", st->sites_connected[i]);
            printf("\npending in this phase:");
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(d, "pending"), i, v)
            {
                printf(" %s", json_string_value(v));
            }
            printf("\n");
            print_sites(d);
            const char *site;
            json_object_foreach(json_object_get(d, "not_selected"), site, v)
            {
                printf("not selected: %s (%s)\n", site, json_string_value(v));
            }
            if (json_string_value(json_object_get(d, "crl_warning")))
                printf("warning: %s\n", json_string_value(json_object_get(d, "crl_warning")));
            for (size_t k = 0; k < st->n_counters; k++)
                printf("  %-18s %llu\n", st->counters[k]->name, (unsigned long long)st->counters[k]->value);
        }
        json_decref(d);
    }
    ff_msg_free(st);
    ff_rpc_free(c);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc == FF_EPOLICY ? FF_ENET : rc);
}

static int cmd_simulate(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "simulate", argc, argv);
    const char *cfg = ff_cli_opt(&a, "--config");
    const char *out = ff_cli_opt(&a, "--out");
    const char *sites[64];
    int ns = ff_cli_opt_all(&a, "--site", sites, 64);
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!cfg)
        return ff_cli_usage_error("simulate", "missing --config (try configs/demo.yaml)");
    install_signals();
    ff_fed_run_opts o = {.stop = &g_stop, .site_dirs = sites, .nsite_dirs = (size_t)ns};
    int rc = ff_fed_simulate(cfg, out ? out : "out", "/proc/self/exe", &o);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

static int cmd_stats(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "stats", argc, argv);
    const char *sites[64];
    ff_fed_stats_opts so = {.query = ff_cli_opt(&a, "--query"), .exe = "/proc/self/exe",
                            .allow = ff_cli_opt(&a, "--allow"),
                            .history_dir = ff_cli_opt(&a, "--history"), .sites = sites};
    const char *out = ff_cli_opt(&a, "--out");
    so.per_site = ff_cli_flag(&a, "--per-site");
    so.dp_required = ff_cli_flag(&a, "--dp-required");
    if (ff_cli_opt_f64(&a, "--max-epsilon", 10.0, &so.max_epsilon) != FF_OK ||
        !(so.max_epsilon > 0) || so.max_epsilon > 1e6)
        return ff_cli_usage_error("stats", "--max-epsilon must be a number in (0, 1e6]");
    if (ff_cli_opt_f64(&a, "--max-query-epsilon", 1.0, &so.max_query_epsilon) != FF_OK ||
        !(so.max_query_epsilon >= 0) || so.max_query_epsilon > 1e6)
        return ff_cli_usage_error("stats", "--max-query-epsilon must be a number in [0, 1e6]");
    int ns = ff_cli_opt_all(&a, "--site", sites, 64);
    if (ff_cli_opt_i64(&a, "--min-cell", 10, &so.min_cell) != FF_OK || so.min_cell < 1)
        return ff_cli_usage_error("stats", "--min-cell must be a whole number >= 1");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!so.query)
        return ff_cli_usage_error("stats", "missing --query (try configs/stats-demo.yaml)");
    so.nsites = (size_t)ns;
    so.out_dir = out ? out : "out-stats";
    install_signals();
    ff_fed_run_opts o = {.stop = &g_stop};
    int rc = ff_fed_stats(&so, &o);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

static int cmd_doctor(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "doctor", argc, argv);
    const char *cfg = ff_cli_opt(&a, "--config");
    int as_json = ff_cli_flag(&a, "--json");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!cfg)
        return ff_cli_usage_error("doctor", "missing --config SITE.yaml|COORDINATOR.yaml");
    int failed = 0;
    int rc = ff_fed_doctor(cfg, as_json, stdout, &failed);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    return failed ? FF_EXIT_FAIL : FF_EXIT_OK;
}

static int cmd_consortium(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "add") != 0)
        return ff_cli_usage_error("consortium", "expected 'add'");
    ff_cli_args a;
    ff_cli_args_init(&a, "consortium", argc - 1, argv + 1);
    const char *cfg = ff_cli_opt(&a, "--config");
    const char *file = ff_cli_opt(&a, "--consortium");
    const char *cert = ff_cli_opt(&a, "--cert");
    const char *contact = ff_cli_opt(&a, "--contact");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!cfg == !file)
        return ff_cli_usage_error("consortium", "add: give --config COORDINATOR.yaml or "
                                  "--consortium FILE (one of them)");
    if (!cert)
        return ff_cli_usage_error("consortium", "add: missing --cert SITE.crt");
    ff_coord_config c;
    char path[FF_COORD_PATH_MAX], name[FF_SITE_NAME_MAX] = "";
    int rc = FF_OK, added = 0;
    if (cfg) {
        rc = ff_coord_config_load(&c, cfg);
        if (rc == FF_OK && !c.consortium[0])
            rc = ff_cfg_error_at(FF_ECONFIG, cfg, "consortium", "no consortium file to add to");
        ff_strlcpy(path, c.consortium, sizeof path);
        ff_coord_config_free(&c);
    } else {
        ff_strlcpy(path, file, sizeof path);
    }
    if (rc == FF_OK)
        rc = ff_consortium_add(path, cert, contact, name, sizeof name, &added);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    if (added)
        printf("enrolled %s in %s: a running coordinator takes it at its next call (no "
               "restart)\n", name, path);
    else
        printf("%s is already enrolled in %s\n", name, path);
    return FF_EXIT_OK;
}
