/* Shared pieces of the federation processes (not public). */
#ifndef FF_FED_INTERNAL_H
#define FF_FED_INTERNAL_H

#include <jansson.h>
#include <openssl/evp.h>

#include "ff/audit.h"
#include "ff/client.h"
#include "ff/coordinator.h"
#include "ff/fed.h"
#include "ff/transport.h"

/* Start-up checks of the config files (config.c): every error is "FILE:LINE:COL: key: why". */
enum { FED_PATH_FILE, FED_PATH_DIR, FED_PATH_KEY /* a file not readable by others */,
       FED_PATH_ANY /* a file or a folder */ };
#define FED_CERT_WARN_DAYS 30 /* a certificate this close to its end is warned about */
int fed_check_path(const char *cfg, const char *key, const char *p, int kind) FF_WARN_UNUSED;
/* Loads the certificate p; its CN must be want_cn (may be NULL; the error names `site`);
 * warns when it ends within FED_CERT_WARN_DAYS. */
int fed_check_cert(const char *cfg, const char *key, const char *p,
                   const char *want_cn) FF_WARN_UNUSED;
/* host:port with a port in 1..65535. */
int fed_check_address(const char *cfg, const char *key, const char *addr) FF_WARN_UNUSED;

/* Federated evaluation on the coordinator: the evaluate phase's callbacks merge the sites'
 * histograms; per-round pooled AUROC per task; out_dir/fedeval.json keeps the curve and the
 * last histograms of each site (so a resumed run and the final report have them). */
typedef struct {
    ff_coord *c;
    const char *const *names;
    size_t nsites;
    char out_dir[FF_COORD_PATH_MAX];
    ff_eval_hist *pooled[FF_TASKS_MAX];        /* binary tasks, by name in order */
    ff_eval_kind_stats *kpooled[FF_TASKS_MAX]; /* the other kinds */
    json_t *site_hists; /* site -> [hist json...] of the latest round each site evaluated */
    json_t *site_val;   /* site -> [hist json...] of its validation split (operating points) */
    json_t *site_stats; /* site -> [ff_eval_kind_stats json...], the other kinds' statistics */
    ff_coord_report_config report;
    json_t *rounds;     /* [{"round","auroc":{task:value|null},"undefined":{task:why}}] */
    struct fed_audit *audit; /* when set, each round's evaluation is appended to the log */
} fed_evalstate;

/* The declared tasks of other kinds (fed/src/report_kinds.c): merge a site's statistics
 * (slots by task name); a round's headline metric per task into headline/undef; the final
 * report's tasks[name] objects and lines from site -> statistics, sites in names' order. */
int fed_kinds_merge(ff_eval_kind_stats **pooled, const json_t *arr) FF_WARN_UNUSED;
void fed_kinds_free(ff_eval_kind_stats **pooled);
int fed_kinds_round(ff_eval_kind_stats **pooled, int64_t round, json_t *headline,
                    json_t *undef) FF_WARN_UNUSED;
/* A round's pooled test headline per task as one console line, from its evaluation entry
 * (fedeval.json's rounds[i]): "admission AUROC 0.770, grade macro AUROC 0.812, los R² 0.210,
 * death C-index undefined (why)"; binary tasks first, then the other kinds. */
void fed_round_summary(const json_t *entry, char *buf, size_t n);
int fed_kinds_report(const json_t *stats, const char *const *names, size_t nnames,
                     json_t *tasks, json_t *headline, json_t *undef,
                     ff_report *rep) FF_WARN_UNUSED;

int fed_evalstate_init(fed_evalstate *e, ff_coord *c, const char *const *names, size_t nsites,
                       const char *out_dir, const ff_coord_report_config *report) FF_WARN_UNUSED;
int fed_evalstate_resume(fed_evalstate *e) FF_WARN_UNUSED;
int fed_evalstate_finish(fed_evalstate *e) FF_WARN_UNUSED;
void fed_evalstate_free(fed_evalstate *e);

/* The audit log fed by the engine's events (docs/audit.md). */
typedef struct fed_audit {
    ff_audit_log *log;
    EVP_PKEY *key;
    size_t torn;
    int existed; /* the log was there before this process: a restart, checkpoint or not */
    int failed;
    char why[256];
    char config_sha[FF_SHA256_HEX], job[FF_SHA256_HEX];
    int64_t rounds;
    char strategy[32];
    double server_lr;
    char sent[FF_SHA256_HEX], agg[FF_SHA256_HEX], newmodel[FF_SHA256_HEX];
    int64_t agg_round;
    int secagg; /* the aggregate entries say secure_aggregation: true */
    json_t *train_sites, *dropped;
    char stage[64]; /* the plan stage of the round (ROUND_START comes before the selection) */
    /* the last round the log records and its model (its last aggregate or checkpoint
     * entry): which pending checkpoint the engine publishes or a resume keeps
     * (fed_audit_committed) */
    int64_t logged_round;
    char logged_sha[FF_SHA256_HEX];
    char path[FF_COORD_PATH_MAX + 32];
    int64_t anchor_every;
    /* the sites' signed commitments of the current attempt: site -> {"commitment","seq"};
     * and, once a round is aggregated, each site's inclusion proof (payload of its tasks) */
    json_t *commits, *inclusion;
} fed_audit;

/* Encoding: each site sends clip(Δ_i · n_i / W) and n_i, so the sum decodes to Σ n_i Δ_i / W
 * and Σ n_i; W = FED_SECAGG_MAX_WEIGHT bounds a site's example count. */
#define FED_SECAGG_CLIP 1.0
#define FED_SECAGG_MAX_WEIGHT 65536u

/* Records the round's secure-aggregation parameters (a `secagg` entry) and the model sent. */
void fed_audit_secagg(fed_audit *a, const char *model_sha, json_t *params);

/* Appends a `privacy` entry (data is stolen): the round's client-level DP parameters and
 * ledger, from which the auditor recomputes ε (fed_dp.h). */
void fed_audit_privacy(fed_audit *a, json_t *data);
/* A site's accepted update: its commitment and signature (32 and 64 bytes) into the log. */
void fed_audit_commitment(fed_audit *a, int64_t round, int64_t attempt, const char *site,
                          const char *model_hex, const uint8_t *commitment, const uint8_t *sig);
/* *out: the inclusion proof of site's update in the last aggregated round (in the call's
 * memory), NULL when there is none. */
int fed_audit_inclusion(const fed_audit *a, const char *site, ff_call *c,
                        Fedfuse__InclusionProof **out);

int fed_audit_open(fed_audit *a, const ff_coord_config *cfg, const char *config_path,
                   const char *job_hex, ff_coord *c) FF_WARN_UNUSED;
void fed_audit_close(fed_audit *a);
/* Appends an "evaluation" entry: the round's pooled test AUROC per task (null when undefined)
 * and, under "undefined", each undefined task's reason. */
void fed_audit_evaluation(fed_audit *a, const json_t *round_entry);
/* ff_coord_commit_check over the log: 1 when its last aggregate or checkpoint entry is round
 * with that model (or there is no audit log), else 0. */
int fed_audit_committed(void *ud, int64_t round, const char *model_sha256);

/* The model's parameters as the engine and the wire see them: every tensor's values back to
 * back in tensor order (the model's own buffer has alignment gaps between tensors). */
size_t fed_packed_size(const ff_model *m);
void fed_pack(ff_model *m, float *dst);
void fed_unpack(ff_model *m, const float *src);

/* AUROC of a merged histogram; NaN when undefined (h NULL, one class, no labelled patient)
 * with the reason in *why (a static string; NULL when defined). */
double fed_hist_auroc(const ff_eval_hist *h, const char **why);

/* Test hooks (testhook.c), compiled only with -DFF_TEST_HOOKS=ON (scripts/build and the other
 * development scripts; off by default, so release and packaged builds have none): with
 * FEDFUSE_TEST_KILL_AT=<point>:<round> in the environment, the process SIGKILLs itself at that
 * point; FEDFUSE_TEST_HOLD_AFTER_SHARE=<s> makes a client sleep s seconds after it shared its
 * secure-aggregation keys; FEDFUSE_TEST_RESEND_AT=<point>:<round> makes a client send that
 * upload twice (an acknowledgement lost on the way back); FEDFUSE_TEST_NOISE_SEED=<n> fixes a
 * statistics query's noise seed (site seed = n + a hash of the site name) so a test can
 * replay a draw. Without the option these are no-ops the compiler removes. */
#ifdef FF_TEST_HOOKS
int fed_test_kill_armed(const char *point, int64_t round);
void fed_test_kill_at(const char *point, int64_t round);
int fed_test_kill_set(void);
unsigned fed_test_hold_after_share(void);
int fed_test_resend_armed(const char *point, int64_t round);
int fed_test_noise_seed(uint64_t *seed);
#else
static inline int fed_test_kill_armed(const char *point, int64_t round)
{
    (void)point, (void)round;
    return 0;
}
static inline void fed_test_kill_at(const char *point, int64_t round)
{
    (void)point, (void)round;
}
static inline int fed_test_kill_set(void)
{
    return 0;
}
static inline unsigned fed_test_hold_after_share(void)
{
    return 0;
}
static inline int fed_test_resend_armed(const char *point, int64_t round)
{
    (void)point, (void)round;
    return 0;
}
static inline int fed_test_noise_seed(uint64_t *seed)
{
    (void)seed;
    return 0;
}
#endif

/* Writes OUT_DIR/live.html atomically from the coordinator's status snapshot and
 * OUT_DIR/rounds.csv (fed/src/live.c). */
int fed_live_write(const char *out_dir, const json_t *status) FF_WARN_UNUSED;

#endif
