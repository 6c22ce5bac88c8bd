/*
 * ff/fed.h — the federation's processes: the coordinator service (transport server + round
 * engine + audit log), the hospital client service (long-poll, policy check, local training,
 * federated evaluation, signed receipts) and the one-machine simulation that runs both as
 * real processes over mutual TLS.
 *
 *     volatile int stop = 0;                     // set from a signal handler to stop
 *     ff_fed_run_opts ro = {.stop = &stop, .progress = 1};
 *     ff_fed_coordinator_run("configs/coordinator.yaml", &ro);     // returns when done
 *
 *     ff_fed_site_config sc;
 *     ff_fed_site_config_load(&sc, "configs/site.yaml");
 *     ff_fed_client_run(&sc, &ro);               // returns 0 when the run is DONE
 *
 *     ff_fed_simulate("configs/demo.yaml", "out", "/proc/self/exe", &ro);
 *
 * Wire formats (docs/federation.md, "Running a federation"):
 *   - model blob (Download): the flat float32 parameter vector, little-endian, in the model's
 *     tensor order; its SHA-256 is the engine's model hash (the audit log's model_sha256).
 *   - update (Upload, kind UPDATE): the float32 delta params - global, same layout; the
 *     example count in the upload header is the site's number of training patients.
 *   - evaluation (SubmitEval summary): JSON {"n_examples","loss","hists":[ff_eval_hist JSON]}.
 *   - Task.payload: JSON {"attempt": A, "stage": S} (the retry attempt of the round).
 */
#ifndef FF_FED_H
#define FF_FED_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "ff/common.h"
#include "ff/coordinator.h"
#include "ff/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    volatile int *stop; /* may be NULL; when *stop becomes non-zero the service stops */
    int progress;       /* live progress line on stderr (coordinator) */
    /* ff_fed_simulate only: existing site folders (any names) used instead of the config's
     * data section; each must be a readable, loadable site folder or nothing starts. */
    const char *const *site_dirs;
    size_t nsite_dirs;
} ff_fed_run_opts;

/* Runs the coordinator of coordinator.yaml (its plan, model_config, consortium, tls and audit
 * keys) until every round is done or the run stops. Resumes from the checkpoint when one
 * exists. Writes out_dir/model.safetensors, rounds.csv, audit.jsonl, metrics.json,
 * report.html and fedeval.json. FF_OK when the run finished. */
int ff_fed_coordinator_run(const char *config_path, const ff_fed_run_opts *o) FF_WARN_UNUSED;

/* A hospital's client node (configs/site.yaml documents every key). */
typedef struct {
    char site[64];          /* must equal the CN of cert */
    char coordinator[256];  /* host:port */
    char server_name[128];  /* expected coordinator name when it differs from the host */
    char cert[512], key[512], ca[512];
    char data[512];         /* the site's data folder (site format, docs/data.md) */
    char model_config[512];
    char policy[512];
    char out_dir[512];      /* receipts/ */
    char proxy[256];        /* outbound HTTP CONNECT proxy host:port ("" = grpc_proxy /
                               https_proxy / http_proxy from the environment, if set) */
    char metrics[128];      /* this node's Prometheus endpoint host:port; "" = off */
    int64_t threads;
    int64_t seed;           /* local training seed base (mixed with round and site) */
    double give_up_after;   /* seconds without reaching the coordinator before exit 1; 0 = never */
    double label_fraction;  /* share of training patients whose labels are used (1 = all);
                               the rest still count in contrastive stages */
} ff_fed_site_config;

extern const ff_cfg_field ff_fed_site_config_schema[];
/* Loads a site config; relative paths resolve against the config file's folder. */
int ff_fed_site_config_load(ff_fed_site_config *out, const char *path) FF_WARN_UNUSED;
/* The client's start-up checks of a loaded config, each "FILE:LINE:COL: key: reason":
 * coordinator is host:port, every file exists and is readable (data a folder), the key is
 * not readable by others, the certificate's CN is `site`; a certificate ending within 30
 * days is warned about. `fedfuse client` runs them before any work. */
int ff_fed_site_config_check(const ff_fed_site_config *sc, const char *path) FF_WARN_UNUSED;

/* Runs the client node until the coordinator says DONE (FF_OK), *stop, or give_up_after. */
int ff_fed_client_run(const ff_fed_site_config *sc, const ff_fed_run_opts *o) FF_WARN_UNUSED;

/* `fedfuse doctor`: runs every check of a site config (local files, certificate, data,
 * policy, disk, then DNS, TCP, TLS, an authenticated ping and the clock skew against the
 * coordinator) or of a coordinator config (files, certificate, CRL, consortium, plan, disk),
 * printing `ok CHECK (detail)`, `FAIL CHECK: reason; fix: ...` or `skip CHECK: why` per line
 * (json: one object with "checks"). *failed = number of FAIL lines. FF_OK unless out fails. */
int ff_fed_doctor(const char *config_path, int json, FILE *out, int *failed) FF_WARN_UNUSED;

/* Rebuilds out_dir/report.html and out_dir/metrics.json from out_dir/fedeval.json (written by
 * the coordinator), adding free-text notes (the simulation's baseline comparison). */
int ff_fed_write_report(const char *out_dir, const char *const *notes, size_t nnotes) FF_WARN_UNUSED;

/* The one-machine demo (configs/demo.yaml): cohort, PKI, one coordinator process and one
 * client process per hospital (exe = this program), then baselines and comparison.json. */
int ff_fed_simulate(const char *config_path, const char *out_dir, const char *exe,
                    const ff_fed_run_opts *o) FF_WARN_UNUSED;

/* `fedfuse stats` (docs/statistics.md): a statistics job on this machine the way simulate
 * runs training: a throw-away PKI, one coordinator process and one statistics-only client
 * process per site (a site folder or a CSV file), secure aggregation on. Each site's policy
 * allows the query's columns (or only `allow`, comma-separated), with min_cell_size min_cell
 * and per-site release as per_site; each site keeps its query history in history_dir (default
 * OUT/history), so two runs with the same history_dir see each other's queries (and, with a
 * noised query, each site's privacy ledger there: the budget spent carries over). Writes
 * OUT/stats.json, OUT/stats.html and the signed audit log. */
typedef struct {
    const char *query, *out_dir, *exe;
    const char *const *sites;
    size_t nsites;
    int64_t min_cell;
    const char *allow;       /* NULL = the query's columns */
    const char *history_dir; /* NULL = OUT/history */
    int per_site;            /* the sites' policies allow releasing their own results */
    int dp_required;         /* the policies' dp.required: a query without noise is refused */
    double max_epsilon;      /* dp.max_epsilon: each site's total (its ledger in history_dir) */
    double max_query_epsilon; /* statistics.max_query_epsilon */
} ff_fed_stats_opts;
int ff_fed_stats(const ff_fed_stats_opts *so, const ff_fed_run_opts *o) FF_WARN_UNUSED;

/* The plan a client node accepts from a task (issue #19 item 7, docs/security.md): at most
 * FF_FED_TASK_PLAN_MAX bytes (refused before any parse), YAML nesting bounded to 64
 * levels (the config loader), and the job hash recomputed from the plan bytes and this site's model
 * config must equal the claimed one (64 hex digits). The outcome (plan or refusal) is kept
 * under the SHA-256 of the bytes + claimed job + round count: a re-sent task is not parsed
 * again. *out points into the cache (valid until the next call or ff_fed_plan_cache_free).
 * FF_EPOLICY with the reason when refused. */
#define FF_FED_TASK_PLAN_MAX (64u * 1024u)
typedef struct {
    int state; /* 0 empty, 1 plan accepted, 2 refused (why) */
    uint8_t key[FF_SHA256_BYTES];
    ff_plan plan;
    char why[512];
    unsigned long parses, hits; /* for tests and diagnostics */
} ff_fed_plan_cache;
int ff_fed_task_plan(ff_fed_plan_cache *c, const void *plan_yaml, size_t plan_len,
                     const char *claimed_job, int64_t total_rounds, const void *model_config,
                     size_t model_config_len, const ff_plan **out) FF_WARN_UNUSED;
void ff_fed_plan_cache_free(ff_fed_plan_cache *c);

/* The site's secure-aggregation guard (issue #19 item 1; docs/secagg.md, "What the
 * coordinator can learn across rounds and runs"). A site adds its update for one (job, round,
 * starting model) to sums over ONE set of sites only, whatever the run id, across restarts
 * of either side: otherwise two sums over sets that differ by one site are that site's
 * update. The records live in one file of the site's state folder
 * (out_dir/secagg-guard-SITE.json, 0600), rewritten with ff_file_write_atomic (temp, fsync,
 * rename, folder fsync) BEFORE the masked input leaves and before the survivor set is
 * signed. A file that does not load refuses every contribution (never starts from zero). */
typedef struct {
    char job[FF_SHA256_HEX], model[FF_SHA256_HEX]; /* hex: the job hash, the starting model */
    int64_t round;
    const char *const *sites; /* the round's selected sites, any order */
    size_t nsites;
    char update[FF_SHA256_HEX]; /* SHA-256 hex of the update; "" = not known yet */
} ff_fed_guard_use;
/* FF_OK when nothing is recorded for (job, round, model), or the record has the same set of
 * sites and (when u->update is set) the same update; FF_EPOLICY naming both sets otherwise. */
int ff_fed_guard_check(const char *path, const ff_fed_guard_use *u) FF_WARN_UNUSED;
/* ff_fed_guard_check, then the contribution recorded durably (kept as it is when already
 * there). noise_seed: the contribution's secret seed for noise it adds (the distributed
 * discrete Gaussian), drawn from the OS on the first contribution and the recorded one after,
 * so a retry over the same set gives the coordinator the same sum, not a second noisy one. */
int ff_fed_guard_commit(const char *path, const ff_fed_guard_use *u, const char *run_id,
                        uint8_t noise_seed[32]) FF_WARN_UNUSED;
/* The survivor set U3 the site is about to sign (the sum is over it): FF_OK and recorded
 * durably when it is the first for the contribution or the same as before; FF_EPOLICY when a
 * different one was signed before, or nothing was committed for u. */
int ff_fed_guard_survivors(const char *path, const ff_fed_guard_use *u,
                           const char *const *survivors, size_t n) FF_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
/* The coordinator's status snapshot (the object `fedfuse status --json` prints and live.html
 * shows: run, rounds, round, attempt, phase, pending, seconds_since_seen, site_status,
 * deadline_in_s, sites, now_unix_ms, not_selected, refusals, crl_expires_in_s, crl_warning,
 * privacy) to the typed StatusDetail of a reply (in the call's memory, strings cut to the
 * wire's 255 bytes), and a received StatusDetail back to that object (NULL: out of memory). */
int ff_fed_status_to_wire(const json_t *d, ff_call *c, Fedfuse__StatusDetail **out) FF_WARN_UNUSED;
json_t *ff_fed_status_json(const Fedfuse__StatusDetail *w);

#endif
