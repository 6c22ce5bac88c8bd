/*
 * ff/coordinator.h — the federated round engine: configuration, site sampling, phases with
 * deadlines and quorums, refusals, server strategies (FedAvg, FedAdam, FedYogi, FedAdagrad),
 * checkpoint/resume, rounds.csv and progress. The training plan, the job hash and the site's
 * side of a round are ff/job.h: the hospital's client/ library needs them, not the engine.
 *
 * The engine works on one flat float vector (the model's contiguous parameter buffer) and
 * does no network I/O: a driver (the transport, or a test) feeds it submissions and calls
 * ff_coord_poll; time comes from an injected clock.
 *
 * Usage (an in-process driver; the transport does the same with messages):
 *
 *     ff_coord_config cfg;
 *     if (ff_coord_config_load(&cfg, "configs/coordinator.yaml") != FF_OK) { ... }
 *     ff_coord_model model = {.n = n, .tensors = table, .ntensors = nt, .init = params0};
 *     ff_coord *c = NULL;
 *     if (ff_coord_new(&c, &cfg, &model, sites, nsites) != FF_OK) { ... }
 *     int resumed;
 *     if (ff_coord_resume(c, &resumed) != FF_OK) { ... }    // continues a killed run
 *     ff_coord_status st;
 *     while (ff_coord_poll(c, &st) == FF_OK && st.state != FF_COORD_DONE) {
 *         for (size_t i = 0; i < st.npending; i++) {       // sites the open phase waits for
 *             // train / evaluate at site st.pending[i] on ff_coord_global(c), then:
 *             ff_coord_submit_update(c, sites[st.pending[i]], st.round, delta, n, n_examples);
 *         }
 *     }                                  // ff_coord_poll returns < 0 when the run stopped
 *     ff_coord_free(c);
 *     ff_coord_config_free(&cfg);
 */
#ifndef FF_COORDINATOR_H
#define FF_COORDINATOR_H

#include <stddef.h>
#include <stdint.h>

#include "ff/common.h"
#include "ff/job.h"
#include "ff/privacy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Coordinator configuration (configs/coordinator.yaml documents every key)                  */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    FF_STRATEGY_FEDAVG = 0,
    FF_STRATEGY_FEDPROX, /* server side = FedAvg; the proximal term is the client's */
    FF_STRATEGY_FEDADAM,
    FF_STRATEGY_FEDYOGI,
    FF_STRATEGY_FEDADAGRAD,
    FF_STRATEGY_SCAFFOLD, /* Karimireddy et al. 2020: vector = [model | control variate c] */
    FF_STRATEGY_CYCLIC,   /* one site per round, in a reshuffled cycle; w ← w + η Δ */
    FF_STRATEGY_COUNT
} ff_strategy_kind;

/* How the sites' updates are combined before the strategy's server step. Median and trimmed
 * mean are coordinate-wise and unweighted (Yin et al., ICML 2018): robust to a minority of
 * hostile sites, only for runs without secure aggregation (the server sees single updates). */
typedef enum {
    FF_AGG_MEAN = 0,     /* example-weighted mean (FedAvg) */
    FF_AGG_MEDIAN,       /* per coordinate: the median of the k values (mean of the middle two) */
    FF_AGG_TRIMMED_MEAN, /* per coordinate: drop floor(beta k) lowest and highest, mean the rest */
    FF_AGG_COUNT
} ff_aggregator;

typedef enum { FF_SAMPLE_ALL = 0, FF_SAMPLE_FRACTION, FF_SAMPLE_COUNT } ff_sample_mode;
typedef enum { FF_QUORUM_RETRY = 0, FF_QUORUM_STOP } ff_quorum_action;

#define FF_COORD_NAME_MAX FF_JOB_NAME_MAX
#define FF_COORD_PATH_MAX 512

typedef struct {
    int name;         /* ff_strategy_kind */
    double server_lr; /* η */
    double beta1, beta2, tau;
    int aggregator;       /* ff_aggregator */
    double trim_fraction; /* beta in [0, 0.5) for FF_AGG_TRIMMED_MEAN */
    double clip_multiple; /* > 0: clip each update's L2 norm to this × the median norm; 0 off */
    ff_cfg_strlist local; /* tensor-name prefixes kept at the sites (FedBN-style per-site
                             layers): never averaged, the global copy never moves */
} ff_strategy_config;

/* `report:` of the coordinator config (and of `fedfuse simulate`'s): how the final federated
 * report is made (docs/evaluation.md, "The federated report"). */
typedef struct {
    struct {
        int rule;      /* ff_op_rule (ff_eval_op_rule_names): threshold, specificity, sensitivity, alert_rate */
        double target; /* the threshold, or the specificity/sensitivity/alert rate to keep */
    } operating_point; /* chosen on the pooled validation histograms, per task */
    int64_t min_cell_size; /* subgroups with fewer patients are suppressed */
    int64_t bootstrap;     /* histogram-bootstrap replicates for the 95% intervals (0: none) */
    int64_t min_positives; /* sites with fewer positives get a warning at the operating point */
} ff_coord_report_config;

/* The fields of `report:` (the rule names: ff_eval_op_rule_names, ff/eval.h). */
extern const ff_cfg_field ff_coord_report_schema[];

typedef struct {
    char run_name[FF_COORD_NAME_MAX];
    int64_t rounds;
    int64_t seed;
    ff_strategy_config strategy;
    struct {
        int mode; /* ff_sample_mode */
        double fraction;
        int64_t count;
    } sampling;
    struct {
        int64_t min_sites;
    } quorum;
    struct { /* seconds from the phase's opening */
        double train, evaluate;
        double advertise_keys, share_keys, masked_input, unmask; /* secure aggregation */
    } deadlines;
    int on_quorum_fail; /* ff_quorum_action */
    int64_t max_retries;
    double site_timeout; /* s without a call before a site is not selected (the process) */
    char checkpoint_dir[FF_COORD_PATH_MAX];
    char out_dir[FF_COORD_PATH_MAX];
    char listen[128];
    char metrics[128];  /* Prometheus endpoint host:port; "" = off */
    char consortium[FF_COORD_PATH_MAX];
    /* Files the coordinator process (`fedfuse coordinator`, library fed) reads; the engine
     * itself ignores them. Relative paths resolve against the working directory. */
    char plan[FF_COORD_PATH_MAX];         /* training plan; "" = the default plan */
    char query[FF_COORD_PATH_MAX];        /* statistics query: the job is a statistics job
                                             (docs/statistics.md) instead of training */
    char model_config[FF_COORD_PATH_MAX]; /* model config (hashed into the job hash) */
    struct {
        char cert[FF_COORD_PATH_MAX], key[FF_COORD_PATH_MAX];
    } tls;                                /* coordinator certificate and key (mTLS) */
    struct {
        char cert[FF_COORD_PATH_MAX], key[FF_COORD_PATH_MAX];
        char log[FF_COORD_PATH_MAX];      /* "" = out_dir/audit.jsonl */
        int64_t anchor_every;             /* RFC 3161 query every N rounds (0: run end only) */
    } audit;                              /* audit key signing the log; "" = no log */
    struct {
        int enabled;
        int64_t threshold;
        int64_t neighbours; /* 0 = the crypto library's default rule */
        char site_certs[FF_COORD_PATH_MAX]; /* <site>.pem per site (the coordinator process) */
    } secure_aggregation;
    struct { /* against hostile peers (the coordinator process; docs/security.md) */
        int64_t handshake_timeout_ms; /* unauthenticated connection closed after this */
        int64_t site_max_calls;       /* calls in progress per site; more refused at once */
        int64_t upload_min_rate;      /* bytes/s an upload averages after upload_grace */
        double upload_grace;          /* s */
        double slot_wait;             /* s an upload waits for a buffer before it is refused */
        double watchdog;              /* s between probes of the listener; 0 = off */
        double crl_warn_days;         /* warn this long before the CRL's nextUpdate */
    } limits;
    ff_coord_report_config report;
} ff_coord_config;

/* The schema (for `fedfuse config schema` style listings and tests). */
extern const ff_cfg_field ff_coord_config_schema[];

/* Loads and validates a coordinator config. Errors are FF_ECONFIG "FILE:LINE:COL: key: why"
 * (cross-field checks name the file and the key). cfg is filled with defaults first;
 * release with ff_coord_config_free whatever the result. */
int ff_coord_config_load(ff_coord_config *cfg, const char *path) FF_WARN_UNUSED;
int ff_coord_config_load_str(ff_coord_config *cfg, const char *name, const char *yaml,
                             size_t len) FF_WARN_UNUSED;
void ff_coord_config_free(ff_coord_config *cfg);
const char *ff_strategy_name(int kind);
const char *ff_aggregator_name(int kind);

/* The job the coordinator sends (the plan itself is ff/job.h) */

/* The job exactly as the coordinator sends it: the plan file of cfg->plan ("" = the default
 * plan, sent as "{}"), the bytes of cfg->model_config (required when need_model; else ""
 * = an empty model config, for checking a plan alone) and their job hash, the
 * value `fedfuse job hash` prints and sites list in accepted_jobs. Errors name config_path
 * and the key. Release with ff_coord_job_free whatever the result. */
/* A plan file is at most 64 KiB: what a client node accepts from a task (FF_FED_TASK_PLAN_MAX,
 * docs/security.md), so a coordinator never starts a job its sites would refuse. */
#define FF_COORD_PLAN_MAX (64u << 10)
typedef struct {
    ff_plan plan;
    char *plan_yaml;
    size_t plan_len;
    char *model;
    size_t model_len;
    char hex[FF_SHA256_HEX];
} ff_coord_job;
int ff_coord_job_load(ff_coord_job *j, const ff_coord_config *cfg, const char *config_path,
                      int need_model) FF_WARN_UNUSED;
void ff_coord_job_free(ff_coord_job *j);
/* ---------------------------------------------------------------------------------------- */
/* Strategies: aggregate (weighted mean of updates) then apply (server optimiser)            */
/* ---------------------------------------------------------------------------------------- */
/*
 * Δ = Σ_i n_i Δ_i / Σ_i n_i with Δ_i = w_i − w (the pseudo-gradient of Reddi et al. 2021,
 * negated). FedAvg/FedProx: w ← w + η Δ. FedAdam/FedYogi/FedAdagrad (Reddi et al., "Adaptive
 * Federated Optimization", ICLR 2021, Algorithm 2, no bias correction):
 *   m ← β1 m + (1 − β1) Δ
 *   Adagrad: v ← v + Δ²;  Yogi: v ← v − (1 − β2) Δ² sign(v − Δ²);  Adam: v ← β2 v + (1 − β2) Δ²
 *   w ← w + η m / (√v + τ)
 * with m₀ = 0 and v₀ = τ² (the paper's v₋₁ ≥ τ²).
 * SCAFFOLD (Karimireddy et al., ICML 2020, Algorithm 1, all sites every round): the engine's
 * vector is [x | c], model then server control variate (n even); a site sends
 * [y_i − x | Δc_i] through the same aggregation (and secure aggregation) as any update, and
 *   x ← x + η Σ n_i (y_i − x) / Σ n_i,   c ← c + Σ n_i Δc_i / Σ n_i
 * (client side: ff_scaffold_correct, ff_scaffold_control_delta).
 * Cyclic (Chang et al. 2018, cyclical weight transfer): one site per round, sites in a
 * permutation redrawn at the start of every cycle; w ← w + η Δ (η = 1: the site's model).
 * Per-site layers (strategy.local): coordinates of tensors whose name starts with one of the
 * prefixes are zeroed in Δ before apply, so the global copy stays at its initial value and
 * every site keeps its own (ff_round_keep_local).
 */
typedef struct {
    const char *name;
    size_t offset, numel; /* in floats */
} ff_coord_tensor_ref;

typedef struct {
    int kind; /* ff_strategy_kind */
    ff_strategy_config cfg;
    size_t n;
    float *m, *v;  /* NULL for FedAvg/FedProx; owned */
    unsigned char *local; /* n flags, 1 = kept at the sites; NULL = none; owned */
    int64_t steps; /* how many times apply ran */
} ff_strategy;

int ff_strategy_init(ff_strategy *s, const ff_strategy_config *cfg, size_t n) FF_WARN_UNUSED;
void ff_strategy_free(ff_strategy *s);
/* out[j] = Σ_i w_i u_i[j] / Σ_i w_i, summed in index order in double (deterministic).
 * k ≥ 1, weights > 0. */
int ff_strategy_aggregate(float *out, const float *const *updates, const double *weights,
                          size_t k, size_t n) FF_WARN_UNUSED;
/* Robust aggregation (secure aggregation off): out[j] = median_i u_i[j] (FF_AGG_MEDIAN) or
 * the beta-trimmed mean (FF_AGG_TRIMMED_MEAN, as scipy.stats.trim_mean: floor(beta k) cut
 * from each end); FF_AGG_MEAN is the unweighted mean. Weights are not used: a hostile site
 * could claim any example count. A non-finite value is FF_ENUMERIC naming site and index. */
int ff_strategy_aggregate_robust(float *out, const float *const *updates, size_t k, size_t n,
                                 int aggregator, double trim_fraction) FF_WARN_UNUSED;
/* Norm clipping against huge-norm updates: scales every update whose L2 norm exceeds
 * multiple × (median of the k norms) down to that bound, in place. Returns the number
 * clipped in *nclipped (may be NULL). multiple ≤ 0 does nothing. */
int ff_strategy_clip_updates(float *const *updates, size_t k, size_t n, double multiple,
                             size_t *nclipped) FF_WARN_UNUSED;
/* Applies the averaged update delta to the global model in place (and the optimiser state). */
void ff_strategy_apply(ff_strategy *s, float *global, const float *delta);
/* Marks the coordinates of tensors (a table covering [0, n)) whose name starts with one of
 * the prefixes as local; FF_ENOTFOUND naming a prefix that matches no tensor. */
int ff_strategy_set_local(ff_strategy *s, const ff_coord_tensor_ref *tensors, size_t ntensors,
                          const ff_cfg_strlist *prefixes) FF_WARN_UNUSED;
/* Zeroes the local coordinates of delta (no-op without local layers). */
void ff_strategy_mask_local(const ff_strategy *s, float *delta);
/* Cyclic: the site (index < nsites) that trains in round (1-based) for this seed: position
 * (round − 1) mod nsites of the cycle's permutation, drawn from (seed, cycle). */
int ff_strategy_cyclic_site(uint64_t seed, int64_t round, size_t nsites);

/* ---------------------------------------------------------------------------------------- */
/* Refusals: why the engine did not take a submission                                       */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    FF_REFUSE_NONE = 0,
    FF_REFUSE_UNKNOWN_SITE,
    FF_REFUSE_NOT_SELECTED, /* not expected in this phase (not sampled, or dropped earlier) */
    FF_REFUSE_STALE_ROUND,  /* round (or retry attempt) is not the current one */
    FF_REFUSE_WRONG_PHASE,  /* the phase it belongs to is not open */
    FF_REFUSE_LATE,         /* after the phase deadline */
    FF_REFUSE_DUPLICATE,
    FF_REFUSE_WRONG_SIZE,
    FF_REFUSE_NONFINITE,    /* NaN or Inf in the vector */
    FF_REFUSE_BAD_WEIGHT,   /* example count not finite and > 0 */
    FF_REFUSE_REJECTED,     /* a phase or mechanism callback refused it */
    FF_REFUSE_COUNT
} ff_refusal;

const char *ff_refusal_name(int reason); /* "late", "duplicate", ... */

/* Checks an update: size = expected, every value finite, weight finite and > 0. Returns
 * FF_REFUSE_NONE or the reason; *bad_index (may be NULL) gets the first non-finite index. */
int ff_coord_update_check(const float *update, size_t n, size_t expected, double weight,
                        size_t *bad_index);

/* ---------------------------------------------------------------------------------------- */
/* The round engine                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[FF_MAX_DIMS];
    size_t offset; /* in floats, into the flat vector */
} ff_coord_tensor;

/* The model as the engine sees it: n floats, a table naming slices of them (for the
 * safetensors checkpoint; the table must cover [0, n) without overlap) and the initial
 * values. The engine copies init; the table is borrowed and must outlive the engine. */
typedef struct {
    size_t n;
    const ff_coord_tensor *tensors;
    size_t ntensors;
    const float *init;
} ff_coord_model;

/* One engine per run. Not thread-safe: a transport serialises its calls (one event loop or
 * one mutex). */
typedef struct ff_coord ff_coord;

typedef enum {
    FF_COORD_IDLE = 0, /* between rounds */
    FF_COORD_IN_ROUND,
    FF_COORD_DONE,     /* every round finished */
    FF_COORD_STOPPED   /* stopped on a quorum failure (ff_coord_poll returned the reason) */
} ff_coord_state;

#define FF_COORD_MAX_SITES 1024

typedef struct {
    int state;            /* ff_coord_state */
    int64_t round;        /* current (or last) round, 1-based */
    int64_t attempt;      /* retry attempt of the round, 0 = first */
    const char *phase;    /* open phase name, or "" */
    size_t stage;         /* plan stage of the round */
    size_t nselected;
    size_t ndone;         /* submissions accepted in the open phase */
    size_t npending;
    const int *pending;   /* site indices the open phase still waits for (engine-owned,
                             valid until the next call into the engine) */
    double deadline_in;   /* seconds until the open phase's deadline (≥ 0) */
} ff_coord_status;

/* Creates an engine for the given sites (names copied; unique, at most FF_COORD_MAX_SITES).
 * On error *out is NULL. The config is copied. */
int ff_coord_new(ff_coord **out, const ff_coord_config *cfg, const ff_coord_model *model,
                 const char *const *sites, size_t nsites) FF_WARN_UNUSED;
void ff_coord_free(ff_coord *c);

/* Time source in seconds (monotonic); default ff_now. Tests pass a fake clock. */
void ff_coord_set_clock(ff_coord *c, double (*now)(void *ud), void *ud);
/* Optional training plan: stages per round and the job hash recorded in the checkpoint. The
 * plan is borrowed. Call before the first poll. */
void ff_coord_set_plan(ff_coord *c, const ff_plan *plan, const char *job_hash);
/* Live progress line on f (NULL = none, the default). */
void ff_coord_set_progress(ff_coord *c, FILE *f);

/* Loads checkpoint_dir/checkpoint.safetensors if it exists: model, optimiser state, round,
 * RNG state; trims rounds.csv to the checkpointed rounds. *resumed = 1 when it did. Errors
 * when the checkpoint was made by another configuration (named) or is corrupt. Called once,
 * before the first poll; the first ff_coord_poll calls it when the driver did not. */
int ff_coord_resume(ff_coord *c, int *resumed) FF_WARN_UNUSED;

/* Advances the engine: starts the next round when idle, runs server phases, closes the open
 * phase when every expected site has answered or its deadline passed (naming the missing
 * sites), applies the quorum rule. Never blocks. Returns FF_OK with *st filled (st may be
 * NULL), or FF_ETIMEOUT/FF_ESTATE when the run stopped (the message says which round, phase,
 * quorum and missing sites), or an I/O error from checkpointing. */
int ff_coord_poll(ff_coord *c, ff_coord_status *st) FF_WARN_UNUSED;

/* A site's update for round (Δ = w_site − w_global, n floats) with its example count.
 * FF_OK when accepted (copied); FF_EPOLICY when refused, with the message naming the site
 * and the reason (also counted, logged and sent to the hooks). The _ex form also checks the
 * retry attempt the task was sent with (-1 = any attempt of the round: the global model does
 * not change between attempts) and stores the ff_refusal in *reason (may be NULL). */
int ff_coord_submit_update(ff_coord *c, const char *site, int64_t round, const float *update,
                           size_t n, double n_examples) FF_WARN_UNUSED;
int ff_coord_submit_update_ex(ff_coord *c, const char *site, int64_t round, int64_t attempt,
                              const float *update, size_t n, double n_examples,
                              int *reason) FF_WARN_UNUSED;

/* A site's evaluation summary of the global model of round. The blob (e.g. the evaluation
 * library's histograms) is handed to the evaluate phase's on_submit callback, not kept. */
typedef struct {
    double n_examples;
    double loss;
    double auroc; /* NaN when the site cannot compute it */
    const void *blob;
    size_t blob_len;
} ff_coord_eval;
/* A site declines its task in the open train or evaluate phase, or another phase that expects
 * the round's selection (secure aggregation's first), because its site policy or privacy
 * budget says no: it is no longer expected in that phase, so the phase need not wait for
 * its deadline; FF_EV_DECLINE carries why (at most 255 bytes are kept,
 * anything but printable ASCII becomes '?': it comes from the site). Checked like any
 * submission (site, round, phase, deadline, selection, duplicate); later phases refuse it
 * (FF_REFUSE_WRONG_PHASE: there a silent site is a drop-out). */
int ff_coord_decline(ff_coord *c, const char *phase, const char *site, int64_t round,
                     const char *why, int *reason) FF_WARN_UNUSED;
int ff_coord_submit_eval(ff_coord *c, const char *site, int64_t round, const ff_coord_eval *e,
                         int *reason) FF_WARN_UNUSED;
/* Sets the pooled AUROC of the current round (from federated histograms) in place of the
 * example-weighted mean of the sites' values. */
void ff_coord_set_pooled_auroc(ff_coord *c, double auroc);

/* A message for an extension phase (secure aggregation and the like): checked for round,
 * phase, selection, deadline and duplicates, then handed to the phase's on_submit. */
int ff_coord_submit(ff_coord *c, const char *phase, const char *site, int64_t round,
                    const void *msg, size_t len, int *reason) FF_WARN_UNUSED;

/* Sites joining and leaving a running consortium. ff_coord_add_site adds a site (a hospital
 * enrolled during the run; selectable from the next round) and returns its index, or the index
 * it already has. A site's state decides whether it is selected: FF_SITE_UP (the default);
 * FF_SITE_QUIET, not heard from lately: not selected, still awaited where already expected;
 * FF_SITE_GONE, known gone (revoked, refused the job, failed its start-up checks): not
 * selected, and an open collect phase that expects it stops waiting for it at once
 * (FF_EV_DROPOUT with why). A round starts only when at least quorum.min_sites sites are
 * up (until then ff_coord_poll reports FF_COORD_IDLE). */
typedef enum { FF_SITE_UP = 0, FF_SITE_QUIET, FF_SITE_GONE } ff_coord_presence;
int ff_coord_add_site(ff_coord *c, const char *name) FF_WARN_UNUSED;
int ff_coord_set_site_state(ff_coord *c, int site, int state, const char *why) FF_WARN_UNUSED;
int ff_coord_site_state(const ff_coord *c, int site);
size_t ff_coord_nsites(const ff_coord *c);

/* The global model (n floats, engine-owned, valid until the next poll). */
const float *ff_coord_global(const ff_coord *c);
size_t ff_coord_nparams(const ff_coord *c);
int64_t ff_coord_round(const ff_coord *c);
const char *ff_coord_site_name(const ff_coord *c, int site);
const ff_strategy *ff_coord_strategy(const ff_coord *c);
/* The engine's copy of the config (deadlines for extension phases and the like). */
const ff_coord_config *ff_coord_config_of(const ff_coord *c);
/* Refusals counted so far for one reason (all rounds). */
uint64_t ff_coord_refusals(const ff_coord *c, int reason);
/* Writes the global model as safetensors through the tensor table (atomic). */
int ff_coord_save_model(const ff_coord *c, const char *path) FF_WARN_UNUSED;

/* ---- phases: the round is a table of them; extensions insert their own ---------------- */

typedef enum {
    FF_PHASE_SERVER = 0, /* runs on_open at once and closes */
    FF_PHASE_COLLECT     /* waits for one submission per expected site, until its deadline */
} ff_phase_kind;

typedef enum {
    FF_PHASE_FROM_SELECTED = 0, /* expects every site selected for the round */
    FF_PHASE_FROM_PREVIOUS,     /* expects the sites that answered the previous collect phase */
    FF_PHASE_FROM_ALL           /* expects every site of the consortium (e.g. evaluation) */
} ff_phase_expect;

typedef struct {
    char name[32];
    int kind;           /* ff_phase_kind */
    int expect;         /* ff_phase_expect */
    double deadline_s;  /* COLLECT: seconds after opening; ≤ 0 = config deadlines.train */
    int64_t min_sites;  /* COLLECT quorum; -1 = config quorum.min_sites; 0 = none */
    /* Callbacks (any may be NULL). Returning < 0 from on_open/on_close stops the run with
     * that status; on_submit returning < 0 refuses the message (FF_REFUSE_REJECTED). */
    int (*on_open)(void *ud, ff_coord *c, int64_t round);
    int (*on_submit)(void *ud, ff_coord *c, int site, const void *msg, size_t len);
    int (*on_close)(void *ud, ff_coord *c, const int *done, size_t ndone);
    void *ud;
} ff_coord_phase;

/* Built-in phase names, in order: */
#define FF_PHASE_SELECT "select"       /* server: sample sites */
#define FF_PHASE_TRAIN "train"         /* collect: plain updates */
#define FF_PHASE_AGGREGATE "aggregate" /* server: weighted mean (or the provided sum) */
#define FF_PHASE_UPDATE "update"       /* server: strategy apply */
#define FF_PHASE_EVALUATE "evaluate"   /* collect: evaluation summaries, quorum 0 */
#define FF_PHASE_CHECKPOINT "checkpoint" /* server: rounds.csv line, checkpoint file */

/* Inserts a phase before the named one (NULL = at the end). FF_ENOTFOUND / FF_EINVAL for a
 * duplicate name. Only between rounds. */
int ff_coord_phase_insert(ff_coord *c, const char *before, const ff_coord_phase *p) FF_WARN_UNUSED;
/* The phase named name (NULL when absent), to set callbacks, deadline_s or min_sites of a
 * built-in phase (e.g. the evaluate phase's on_submit/on_close for federated histograms).
 * Do not change name or kind. Only between rounds. */
ff_coord_phase *ff_coord_phase_find(ff_coord *c, const char *name);
/* Removes a phase (e.g. "train" when secure aggregation's masked-input phase replaces it). */
int ff_coord_phase_remove(ff_coord *c, const char *name) FF_WARN_UNUSED;

/* For secure aggregation: the unmasked Σ n_i Δ_i and Σ n_i of the survivors, set by an
 * extension phase before "aggregate"; then "aggregate" uses it instead of plain updates. */
int ff_coord_provide_sum(ff_coord *c, const float *weighted_sum, double total_weight,
                         size_t n) FF_WARN_UNUSED;
/* How many sites the provided sum holds (rounds.csv `updates`, the aggregate event's count, the
 * privacy mechanism's k). Without it: the sites that answered the phase before "aggregate",
 * which under secure aggregation misses a site whose input arrived before it dropped out. */
void ff_coord_provide_sites(ff_coord *c, size_t nsites);

/* Mechanisms (privacy): on_update may change an accepted plain update in place (clipping);
 * on_sum may change Σ n_i Δ_i before division (noise). Either returning < 0 stops the run. */
typedef struct {
    int (*on_update)(void *ud, int site, float *update, size_t n, double *weight);
    int (*on_sum)(void *ud, int64_t round, float *sum, size_t n, double *total_weight,
                  size_t nsites);
    void *ud;
} ff_coord_mechanism;
void ff_coord_set_mechanism(ff_coord *c, const ff_coord_mechanism *m);

/* ---- events: what the audit log and the transport subscribe to ------------------------- */

typedef enum {
    FF_EV_RUN_START = 0,   /* detail: "fresh" or "resumed" */
    FF_EV_ROUND_START,     /* detail = plan stage name ("" without a plan) */
    FF_EV_SITES_SELECTED,  /* count = number; detail = comma-separated names */
    FF_EV_PHASE_OPEN,      /* phase; hash = global model sent (train) */
    FF_EV_PHASE_CLOSE,     /* phase; count = answered; detail = names that answered */
    FF_EV_DROPOUT,         /* phase, site: expected but did not answer by the deadline */
    FF_EV_REFUSAL,         /* phase, site, reason */
    FF_EV_QUORUM_FAIL,     /* phase; count = answered; detail = the message */
    FF_EV_AGGREGATE,       /* hash = SHA-256 of the averaged update; count = sites */
    FF_EV_MODEL,           /* hash = SHA-256 of the new global model */
    FF_EV_CHECKPOINT,      /* hash = model; detail = the checkpoint's path once committed
                            * (during the hooks it is still at PATH.next, see
                            * ff_coord_set_commit_check) */
    FF_EV_ROUND_END,
    FF_EV_RUN_END,         /* detail: "done" or the stop message */
    FF_EV_DECLINE,         /* phase, site: the site said no to its task; detail = its reason */
    FF_EV_COUNT
} ff_event_type;

typedef struct {
    int type; /* ff_event_type */
    int64_t round, attempt;
    const char *phase;  /* "" when none */
    const char *site;   /* "" when none */
    int reason;         /* ff_refusal for FF_EV_REFUSAL */
    int64_t count;
    const char *hash;   /* hex SHA-256 or "" */
    const char *detail; /* "" when none */
    double time;        /* the engine clock */
} ff_coord_event;

const char *ff_event_name(int type);
typedef void (*ff_coord_hook)(void *ud, const ff_coord_event *ev);
/* Subscribes fn (up to 8 hooks); called synchronously in order of registration. */
int ff_coord_add_hook(ff_coord *c, ff_coord_hook fn, void *ud) FF_WARN_UNUSED;

/* The caller's durable record of finished rounds (the audit log). A round's checkpoint is
 * committed in three steps: written complete to checkpoint.safetensors.next, then
 * FF_EV_CHECKPOINT (the hooks record the round), then renamed over checkpoint.safetensors.
 * A process killed between the steps leaves the .next file; ff_coord_resume keeps it when
 * check(ud, round, model_sha256) returns 1 (the round was recorded) and removes it when 0
 * (the round is redone, so the record never names a model the run did not keep). Without a
 * check the complete .next file is kept. The check is also asked right after the hooks: a
 * round its record lacks (a failed audit append) stops the run with the checkpoint
 * unpublished. Call before ff_coord_resume. */
typedef int (*ff_coord_commit_check)(void *ud, int64_t round, const char *model_sha256);
void ff_coord_set_commit_check(ff_coord *c, ff_coord_commit_check check, void *ud);

/* rounds.csv columns (out_dir/rounds.csv), one line per finished round, fsynced. */
#define FF_ROUNDS_CSV_HEADER                                                                   \
    "round,stage,attempts,selected,updates,dropouts,refusals,examples,update_norm,"           \
    "eval_sites,eval_loss,pooled_auroc,model_sha256,seconds"

#ifdef __cplusplus
}
#endif

/* ---- phases ---------------------------------------------------------------------------
 * The federation protocol's phases, in one table (docs/federation.md, "Phase
 * table"): each phase's name (the engine's phase, the audit log's and the kill points'),
 * its wire id (the Phase enum of transport/proto/fedfuse.proto that Task, Upload, Decline and
 * SecAggEnvelope carry), the config key of its deadline and who acts in it. The engine, the
 * coordinator and client nodes, `fedfuse status` and the docs read this table; the unit test
 * fed_phase_table checks it against the proto enum and the config schema.
 *
 * The engine does no I/O and does not link the wire code, so the wire ids are plain ints
 * here (FF_WIRE_*, equal to FEDFUSE__PHASE__PHASE_*: checked by the test).
 */
/* Wire ids (fedfuse.proto, enum Phase). */
enum {
    FF_WIRE_NONE = -1, /* a server phase: never on the wire */
    FF_WIRE_WAIT = 0,
    FF_WIRE_TRAIN = 1,
    FF_WIRE_EVALUATE = 2,
    FF_WIRE_SECAGG_ADVERTISE = 3,
    FF_WIRE_SECAGG_SHARE = 4,
    FF_WIRE_SECAGG_MASKED_INPUT = 5,
    FF_WIRE_SECAGG_UNMASK = 6,
    FF_WIRE_DONE = 7,
    FF_WIRE_SECAGG_CONSISTENCY = 8,
};

/* Secure-aggregation phase names (the built-in train and evaluate ones are above). */
#define FF_PHASE_ADVERTISE "advertise_keys"
#define FF_PHASE_SHARE "share_keys"
#define FF_PHASE_MASKED "masked_input"
#define FF_PHASE_CHECK "consistency_check"
#define FF_PHASE_UNMASK "unmask"
/* The client-level DP budget check (fed/src/coord_dp.c), a server phase before train. */
#define FF_PHASE_PRIVACY "privacy_budget"
/* Not engine phases: what a Task says when no phase wants the site, and after the last round. */
#define FF_PHASE_WAIT "wait"
#define FF_PHASE_DONE "done"

/* Who acts in a phase, and how the sites' answer travels. */
typedef enum {
    FF_ACT_NONE = 0,   /* wait/done: nobody (the site polls again, or stops) */
    FF_ACT_SERVER,     /* the coordinator alone, at once */
    FF_ACT_UPLOAD,     /* sites: a model-sized Upload (update or masked input) */
    FF_ACT_EVAL,       /* sites: SubmitEval */
    FF_ACT_ENVELOPE,   /* sites: a small SecAggMessage */
} ff_phase_actor;

typedef struct {
    const char *name;         /* engine, audit log, kill points (FEDFUSE_TEST_KILL_AT) */
    int wire;                 /* FF_WIRE_* (FF_WIRE_NONE for server phases) */
    const char *wire_name;    /* the proto enum value's name, NULL for server phases */
    const char *deadline_key; /* deadlines.<key> in the coordinator config, NULL = none */
    size_t deadline_offset;   /* of that double in ff_coord_config */
    int actor;                /* ff_phase_actor */
    int secagg_step;          /* position in secure aggregation's order (1..5), 0 = other */
    int declinable;           /* a site may Decline its task in this phase */
} ff_phase_info;

/* The whole table (n rows), in round order. */
const ff_phase_info *ff_phase_table(size_t *n);
/* The row of a phase name or a wire id, NULL when there is none (never trust a wire id:
 * this is the range check). */
const ff_phase_info *ff_phase_by_name(const char *name);
const ff_phase_info *ff_phase_by_wire(int wire);
/* The phase's deadline in seconds from cfg (0 when it has no deadline key). */
double ff_phase_deadline(const ff_phase_info *p, const ff_coord_config *cfg);
/* A wire id's name for messages ("?" when out of range). */
const char *ff_phase_wire_label(int wire);

#endif
