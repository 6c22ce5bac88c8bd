/* Internal to the coordinator process (fed/src/coord_node.c and coord_status.c): the node's
 * state, and what the status answer, the metrics page and live.html read from it. */
#ifndef FF_FED_COORD_INTERNAL_H
#define FF_FED_COORD_INTERNAL_H

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "fed_diag.h"
#include "fed_dp.h"
#include "fed_metrics.h"
#include "fed_secagg.h"
#include "fed_stats.h"

/* ---- model blobs: the bytes Download serves, reference-counted while a stream runs ---- */

typedef struct blob {
    uint8_t sha[FF_SHA256_BYTES];
    float *data;
    size_t bytes;
    int refs, current;
    struct blob *next;
} blob;

/* Upload buffers. A masked input (or a plain update) reaches the engine only once its SHA-256
 * has been checked at the end of the stream, so each upload in progress needs a whole
 * model-sized buffer: with one malloc per upload, N clients finishing together cost N model
 * sizes of coordinator memory. FED_UPLOAD_SLOTS buffers, reused for the whole run, cost that
 * many model sizes whatever N is (docs/benchmarks.md, "Load"). An upload that finds every
 * slot taken waits in upload_begin, its data held back by gRPC flow control; on loopback or a
 * LAN an upload holds a slot for milliseconds. */
#define FED_UPLOAD_SLOTS 8
/* Buffers one site may hold at once: its upload and a retry while the broken stream before it
 * is still being torn down. A site cannot take more than this from the others (issue #19
 * item 3); a slot is held at most limits.upload_grace + update size / limits.upload_min_rate. */
#define FED_SITE_SLOTS 2

/* The upload a site last had accepted: its round and signed commitment (which binds the site,
 * round, job, starting model and the update's hash, docs/audit.md). */
typedef struct {
    int64_t round;
    uint8_t commitment[FF_SHA256_BYTES];
    int set;
} fed_accepted;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ff_coord *c;
    ff_coord_config cfg;
    ff_plan plan;
    char *plan_yaml;
    size_t plan_len;
    uint8_t job[FF_SHA256_BYTES];
    char job_hex[FF_SHA256_HEX];
    ff_consortium cons;
    /* Per-site arrays hold FF_COORD_MAX_SITES entries: hospitals join during the run (the
     * consortium file is re-read, on_enrolled); nsites grows, an index never changes. */
    const char **names;
    char (*name_buf)[FF_SITE_NAME_MAX];
    size_t nsites;
    char run_id[96];
    /* engine snapshot (under mu) */
    int state, fatal;
    int64_t round, attempt;
    char phase[32];
    unsigned char *pending;
    fed_accepted *accepted; /* per site: its last accepted upload (a resend is acknowledged) */
    int64_t deadline_ms;
    unsigned char *done_sent;
    double *last_seen;
    char (*gone)[256]; /* why a site is known gone ("" = not): revoked, refused the job, failed
                          its start-up checks; cleared when it says Hello again */
    double t_start;    /* ff_now() at start: a site never heard from is quiet after site_timeout */
    /* the consortium roster sent with tasks: each site's certificate (as it presented it over
     * mutual TLS, or from secure_aggregation.site_certs), the CRL, a version */
    char **cert_pem;
    EVP_PKEY **site_keys; /* their Ed25519 keys (secure aggregation) */
    X509 *ca;
    char *crl_pem;
    ff_file_stamp crl_stamp;
    time_t crl_next;        /* the CRL's nextUpdate (0 = no CRL) */
    char crl_warning[512];  /* "" or why the CRL needs renewing (status, log) */
    double crl_logged;      /* ff_now() of the last warning line */
    uint64_t roster_version; /* of the roster the sites get (0 = none yet) */
    blob *blobs, *cur;
    int64_t blob_round, blob_attempt;
    char blob_phase[32];
    fed_evalstate ev;
    fed_audit audit;
    fed_secagg sa; /* secure_aggregation.enabled */
    fed_dp dp;     /* plan privacy.client.enabled */
    fed_stats sj;  /* a statistics job (cfg.query), docs/statistics.md */
    int is_stats;
    const char *config_path;
    void *slot_buf[FED_UPLOAD_SLOTS]; /* allocated on first use, freed at the end of the run */
    size_t slot_cap[FED_UPLOAD_SLOTS];
    unsigned char slot_busy[FED_UPLOAD_SLOTS];
    int slot_site[FED_UPLOAD_SLOTS]; /* site index holding the busy slot */
    fed_coord_stats stats; /* for the metrics endpoint (engine hook, under mu) */
    fed_site_report *reports; /* per site: what it last said about itself (fed_diag.h) */
    double wait_logged;       /* the last "waiting for sites" line */
    ff_server *srv;
    char live_key[96]; /* round/attempt/phase/state of the last live.html */
    int live_failed;
} node;

int64_t fed_coord_unix_ms(void);
int fed_coord_site_index(const node *nd, const char *name);
int fed_coord_phase_is(const node *nd, const char *p);
int fed_coord_secagg_phase(const node *nd);
int fed_coord_on_status(void *user, ff_call *c, const Fedfuse__StatusRequest *req,
                     Fedfuse__StatusReply *reply);
void fed_coord_render_metrics(void *ud, ff_sbuf *b);
void fed_coord_live_update_locked(node *nd);
json_t *fed_coord_status_json_locked(node *nd);
void fed_coord_crl_refresh_locked(node *nd);

#endif
