/* Internal to the hospital client process (fed/src/client_node.c and client_secagg.c): the
 * node's state and the steps the secure-aggregation phases share with training. */
#ifndef FF_FED_CLIENT_INTERNAL_H
#define FF_FED_CLIENT_INTERNAL_H

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_state.h"
#include "fed_diag.h"
#include "fed_dp.h"
#include "fed_metrics.h"
#include "fed_secagg.h"
#include "fed_stats.h"

/* Deadlines of the node's calls to the coordinator, ms (a call past its deadline fails with
 * FF_ETIMEOUT and the node reconnects). The long-poll's own wait is the coordinator's poll
 * timeout (HelloReply.poll_timeout_ms, fed_diag.h). */
#define FED_CALL_HELLO_MS 10000       /* small; a coordinator silent this long is unreachable */
#define FED_CALL_POLL_MARGIN_MS 10000 /* GetTask: the poll timeout plus this for the answer */
#define FED_CALL_TRANSFER_MS 120000   /* a Download or Upload call of a model, chunked */
#define FED_CALL_MESSAGE_MS 60000     /* a SecAggMessage or an evaluation summary: small, but
                                         answered while the coordinator takes uploads */
#define FED_CALL_DECLINE_MS 30000     /* a Decline: only a log line and a flag there */
#define FED_CALL_EXIT_MS 10000        /* the Decline of a node that cannot start: best effort,
                                         the process is exiting */
/* Pauses of the task loop: after a refused or already-answered task (the coordinator offers
 * it again at once until its phase moves on), and between reconnection attempts. */
#define FED_TASK_PAUSE_S 1
/* An upload whose link broke for longer than the transport's own retries is sent again on a
 * fresh channel, with pauses from FED_RESEND_PAUSE_MIN_MS doubling to FED_RESEND_PAUSE_MAX_MS
 * (short: a phase deadline may be seconds), for at most FED_RESEND_S (past the phase's
 * deadline the answer is "late" anyway). */
#define FED_RESEND_S 300
#define FED_RESEND_PAUSE_MIN_MS 500
#define FED_RESEND_PAUSE_MAX_MS 4000
#define FED_RECONNECT_PAUSE_US 500000

typedef struct {
    const ff_fed_site_config *sc;
    ff_rpc *cl;
    ff_policy pol;
    ff_model_config mc;
    char *mc_bytes;
    size_t mc_len;
    ff_fed_plan_cache plan_cache; /* the last task plan checked (parsed once per task) */
    fed_site_stats st;            /* statistics jobs (docs/statistics.md) */
    int stats_only;               /* no model_config: this node runs statistics jobs only */
    ff_model *m;
    ff_site *site;
    EVP_PKEY *key;
    float *global, *update;
    float *global_full; /* the global model in the model's own layout (FedProx) */
    /* strategy.local (client_local.c): local coordinates in the model's layout and the
     * wire's, and this site's own values of them (model layout); NULL without local layers */
    unsigned char *local_m, *local_w;
    float *own;
    int local_set, have_own;
    char local_run[128];                 /* the run's name and job: the saved file's key */
    uint8_t local_job[FF_SHA256_BYTES];
    uint8_t global_sha[FF_SHA256_BYTES]; /* what cn->global holds, when have_global */
    int have_global;
    size_t n;
    char run_id[128];
    ff_round_state fs;
    int64_t last_eval_round;
    int hello_failures;
    uint32_t poll_ms; /* the coordinator's poll timeout (GetTask wait_ms), range-checked */
    fed_refusal refused;             /* the last refused task: not logged nor declined again */
    /* The link to the coordinator, beside the state (the task loop's own bookkeeping). */
    struct {
        int hello;          /* Hello answered on this connection (cleared when it is lost) */
        int warned;         /* the coordinator's absence is logged (until a Hello succeeds) */
        double last_ok;     /* ff_now() of the coordinator's last answer */
        double wait_since;  /* ff_now() the current run of WAIT answers began, 0 = none */
        double wait_logged, lost_logged; /* last "waiting" / "still unreachable" lines */
    } link;
    /* Record-level DP-SGD (privacy.record): this site's ledger, persisted in
     * out_dir/privacy-ledger-<site>.json after every charged round and reloaded on start,
     * so a restart never resets ε. rec_eps: ε after the last round trained (receipt). */
    ff_privacy_ledger *rec_ledger;
    double rec_budget, rec_delta, rec_eps;
    struct {                          /* secure aggregation: the round in progress */
        ff_secagg_client *c;
        int64_t round, attempt;
        int step;                     /* last secagg_step() answered */
        json_t *entry;                /* the coordinator's secagg parameters (receipt) */
        json_t *sites;                /* the round's selected sites, from advertise_keys */
        int64_t upd_round;            /* round whose update is in cn->update */
        size_t ntrain;
        char update_sha[FF_SHA256_HEX];
        EVP_PKEY **peers;             /* per secagg index, borrowed from the cache */
        char (*names)[FF_SITE_NAME_MAX];
        EVP_PKEY **keys;              /* the roster's keys: names[i] -> keys[i] */
        size_t nkeys;
    } sa;
    /* the last receipt written, until the coordinator's inclusion proof completes it */
    json_t *receipt;
    char receipt_path[700];
    /* what the site reports (remote diagnosis, fed_diag.h) and its metrics endpoint show;
     * under mu, which the endpoint's thread takes */
    pthread_mutex_t mu;
    int state; /* fed_cn_state (client_state.h), reported on every poll */
    fed_err err;
    double err_at;
    uint64_t errors[FED_ERR_COUNT];
    int64_t rounds_trained, evals;
    double last_contact;
    fed_metrics *metrics;
    /* The consortium roster from the coordinator, each certificate checked here against our
     * CA and the roster's CRL (itself checked against our CA). Replaced keys are retired, not
     * freed, while a round may still borrow them. */
    X509 *ca;
    uint64_t roster_version;
    EVP_PKEY **retired;
    size_t nretired;
    volatile int *stop; /* ff_fed_run_opts.stop: the service is asked to stop (may be NULL) */
} cnode;

/* Test hook (testhook.c): a transfer that dies mid-stream. The upload's header is on the
 * wire when the first part is read; the download's first part has arrived when it is written. */
typedef struct {
    void *buf;
    const char *point;
    uint32_t round;
} kill_xfer;

void fed_cn_set_error(cnode *cn, fed_err e);
void fed_cn_hex_of(const ProtobufCBinaryData *b, char out[FF_SHA256_HEX]);
void fed_cn_refuse_task(cnode *cn, const Fedfuse__Task *t, const fed_refusal *key,
                        const char *what, fed_err code, int whole_job);
int fed_cn_train_local(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan, size_t *ntrainp,
                       ff_local_stats *stp);
uint64_t fed_cn_train_seed(const ff_fed_site_config *sc, uint32_t round);

/* Per-site layers (client_local.c): setup from the task's "local" list (once), the site's own
 * values into the unpacked global model, and after training their update zeroed. */
int fed_cn_local_setup(cnode *cn, const Fedfuse__Task *t) FF_WARN_UNUSED;
void fed_cn_local_apply(cnode *cn);
void fed_cn_local_keep(cnode *cn, float *update);
void fed_cn_local_free(cnode *cn);
int fed_cn_commit_update(cnode *cn, const Fedfuse__Task *t, const char *update_sha,
                         Fedfuse__UploadHeader *hdr, uint8_t bin[FF_SHA256_BYTES], uint8_t sig[64]);
int fed_cn_upload(cnode *cn, const Fedfuse__UploadHeader *hdr, ff_source *src, const char *point);
int fed_cn_write_receipt(cnode *cn, const Fedfuse__Task *t, const char *update_sha, double examples,
                         json_t *secagg);
void fed_cn_arm_source(ff_source *src, kill_xfer *k, const char *point, uint32_t round);
int fed_cn_secagg_task(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan);
int fed_cn_roster_take(cnode *cn, const Fedfuse__Roster *r);
int fed_cn_secagg_step(int phase);
void fed_cn_secagg_reset(cnode *cn);

#endif
