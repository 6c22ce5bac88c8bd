/*
 * ff/transport.h — how the coordinator and hospital clients talk: gRPC (C core) with the
 * protobuf-c messages of transport/proto/fedfuse.proto, mutual TLS from the consortium PKI,
 * enrollment (consortium file), revocation, and each site's local policy.
 *
 * Coordinator side:
 *
 *     ff_server_opts so = {.bind = "0.0.0.0:7443", .cert = "pki/coord.crt",
 *                          .key = "pki/coord.key", .consortium = "consortium.yaml"};
 *     ff_server_handlers h = {.user = &state, .hello = on_hello, .get_task = on_get_task,
 *                             .download = on_download, .upload_begin = on_upload_begin,
 *                             .upload_end = on_upload_end};
 *     ff_server *srv;
 *     if (ff_server_start(&srv, &so, &h) != FF_OK) { ... ff_error_message() ... }
 *     ...                                   // handlers run on the server's threads
 *     ff_server_stop(srv);                  // cancels calls, drains queues, joins threads
 *
 * Hospital side (dials out only):
 *
 *     ff_rpc_opts co = {.target = "coord.example.org:7443", .cert = "pki/site-a.crt",
 *                          .key = "pki/site-a.key", .ca = "pki/ca.crt"};
 *     ff_rpc *cl;
 *     ff_rpc_new(&cl, &co);
 *     Fedfuse__HelloRequest hq = FEDFUSE__HELLO_REQUEST__INIT;
 *     Fedfuse__HelloReply *hr;
 *     if (ff_rpc_hello(cl, &hq, &hr, 10000) == FF_OK) { ...; ff_msg_free(hr); }
 *     ff_rpc_download(cl, sha, size, &sink, 600000);   // chunked, SHA-256 checked
 *     ff_rpc_free(cl);
 *
 * Messages are the generated protobuf-c structs (fedfuse.pb-c.h, generated at build time).
 * Every call returns FF_OK or a negative FF_E... with ff_error_message() naming the call and
 * the peer's status; nothing in this header exposes gRPC types.
 */
#ifndef FF_TRANSPORT_H
#define FF_TRANSPORT_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>

#include "ff/common.h"
#include "fedfuse.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: typed secure-aggregation parameters, attempt and inclusion proof in Task (1 sent them as
 * text in Task.payload). A Hello of another version is refused by either side. */
#define FF_PROTOCOL_VERSION 2
#define FF_SITE_NAME_MAX 64               /* bytes including NUL */
#define FF_CHUNK_DEFAULT (1u << 20)       /* bytes per data part of a stream */
#define FF_CHUNK_MAX (4u << 20)
#define FF_MSG_MAX ((4u << 20) + 4096u)   /* largest message; the server refuses (and
                                              counts) larger ones, gRPC drops > 2x */
#define FF_PLAN_MAX (1u << 20)
#define FF_PAYLOAD_MAX (4u << 20)
#define FF_BLOB_MAX (64ull << 30)          /* largest streamed blob */

/* ---------------------------------------------------------------------------------------- */
/* PKI: consortium CA, certificates, revocation (OpenSSL 3, Ed25519 everywhere)              */
/* ---------------------------------------------------------------------------------------- */

/* Roles. Every certificate the CA issues carries exactly one, as a certificate policy OID
 * FF_PKI_ROLE_OID_ARC.N (N = 1 site, 2 coordinator, 3 operator, 4 audit; docs/security.md):
 * site = a hospital's client node (the only role the coordinator serves as a site), coordinator
 * = the TLS server (sites refuse any other), operator = a person or tool of the consortium
 * (Status only: `fedfuse status`/`ping`; no site RPC, need not be enrolled), audit = the key that signs the audit log (`audit verify` trusts no other).
 * The OU of the subject repeats the role for people; only the OID is trusted. */
typedef enum {
    FF_PKI_SITE = 0,
    FF_PKI_COORDINATOR,
    FF_PKI_AUDIT,
    FF_PKI_OPERATOR,
    FF_PKI_NROLES
} ff_pki_role;
/* 2.25.<UUID 31cdab05-bc08-49a9-b903-620370e40230 as an integer> (ITU-T X.667: a UUID arc
 * needs no registration). */
#define FF_PKI_ROLE_OID_ARC "2.25.66200061395836755559653875632453190192"

/* Clock skew tolerated between nodes: every certificate's validity starts this long before
 * it is issued (docs/reliability.md, "clock skew"). */
#define FF_PKI_SKEW_S 3600L

/* Creates DIR/ca.key (0600), DIR/ca.crt (self-signed, CA:TRUE, keyCertSign+cRLSign, valid
 * `days`) and an empty signed DIR/crl.pem. Refuses to overwrite an existing ca.key. */
int ff_pki_init(const char *dir, const char *consortium, int days) FF_WARN_UNUSED;

typedef struct {
    const char *name;        /* site name = certificate CN (letters, digits, - . _) */
    ff_pki_role role;        /* site/audit: clientAuth; coordinator: serverAuth+clientAuth */
    int days;                /* 0 = default: 730 site/audit, 365 coordinator */
    int backdate_days;       /* tests only: validity starts this many days ago */
    const char *const *sans; /* extra DNS names / IP addresses (coordinator host names) */
    int nsans;
} ff_pki_issue_opts;

/* Issues OUT/NAME.key (0600) and OUT/NAME.crt signed by the CA in ca_dir, and copies the CA
 * certificate to OUT/ca.crt. SAN: DNS:NAME plus sans (coordinator without sans: localhost
 * and 127.0.0.1). */
int ff_pki_issue(const char *ca_dir, const char *out_dir,
                 const ff_pki_issue_opts *o) FF_WARN_UNUSED;
/* Certificate requests, so a site's private key never leaves the site. At the site:
 * ff_pki_csr writes OUT/NAME.key (Ed25519, 0600; refuses to overwrite one) and OUT/NAME.csr
 * (subject CN=NAME, signed by that key). At the CA: ff_pki_sign_csr checks the request (PEM,
 * version 1, Ed25519 key, signature verifies, subject exactly one CN that is a valid site
 * name, equal to o->name when that is set), then signs it exactly as ff_pki_issue would for o
 * (role, days, sans, backdate; o->name may be NULL) and writes OUT/NAME.crt and OUT/ca.crt.
 * Extensions requested in the CSR are ignored: the CA decides key usages. The CN is written
 * to name (may be NULL). Bad requests are FF_EINVAL/FF_EFORMAT and nothing is written. */
int ff_pki_csr(const char *out_dir, const char *name) FF_WARN_UNUSED;
int ff_pki_sign_csr(const char *ca_dir, const char *csr_path, const char *out_dir,
                    const ff_pki_issue_opts *o, char *name, size_t name_len) FF_WARN_UNUSED;
/* Re-signs ca_dir/crl.pem with the same entries, CRL number + 1, valid 30 more days
 * (`fedfuse pki crl`; run it from a timer, deploy/fedfuse-crl.timer). */
int ff_pki_crl_renew(const char *ca_dir) FF_WARN_UNUSED;
/* Adds cert's serial to ca_dir/crl.pem (re-signed, CRL number + 1). */
int ff_pki_revoke(const char *ca_dir, const char *cert_path) FF_WARN_UNUSED;
int ff_pki_role_parse(const char *s, ff_pki_role *out) FF_WARN_UNUSED;
const char *ff_pki_role_name(ff_pki_role r);
/* The role a certificate carries (its one fedfuse role policy OID). FF_EPOLICY when it has
 * none (issued before roles existed: re-issue it) or more than one. Checks nothing else: call
 * it on a certificate ff_pki_check_peer has accepted. */
int ff_pki_cert_role(X509 *cert, ff_pki_role *out) FF_WARN_UNUSED;
/* FF_OK when cert carries role want and, when want_name is not NULL, has the CN want_name;
 * else FF_EPOLICY naming the certificate's CN, its role and the expected one. */
int ff_pki_check_role(X509 *cert, ff_pki_role want, const char *want_name) FF_WARN_UNUSED;

/* Loaders for other modules (secure aggregation signs with the site key). The caller owns
 * the result (EVP_PKEY_free / X509_free / X509_CRL_free). Keys must be Ed25519. */
int ff_pki_load_key(const char *path, EVP_PKEY **out) FF_WARN_UNUSED;
int ff_pki_load_cert(const char *path, X509 **out) FF_WARN_UNUSED;
int ff_pki_cert_from_pem(const char *pem, size_t len, X509 **out) FF_WARN_UNUSED;
int ff_pki_load_cert_pubkey(const char *path, EVP_PKEY **out) FF_WARN_UNUSED;
/* ff_pki_load_cert_pubkey of a certificate that must carry the site role and CN site (the
 * keys that sign secure-aggregation messages). */
int ff_pki_load_site_pubkey(const char *path, const char *site, EVP_PKEY **out) FF_WARN_UNUSED;
/* Loads a CRL; when ca is given, checks that the CA signed it. */
int ff_pki_load_crl(const char *path, X509 *ca, X509_CRL **out) FF_WARN_UNUSED;
int ff_pki_crl_from_pem(const char *pem, size_t len, X509 *ca, X509_CRL **out) FF_WARN_UNUSED;
int ff_pki_cert_cn(X509 *cert, char *cn, size_t n) FF_WARN_UNUSED;
/* Full check of a peer certificate: chain to ca, validity dates, not revoked in crl (may be
 * NULL), clientAuth purpose. On success writes the CN. FF_EPOLICY when revoked, FF_ECRYPTO
 * otherwise, with OpenSSL's reason in the message. */
int ff_pki_check_peer(X509 *ca, X509_CRL *crl, X509 *cert, char *cn,
                      size_t cn_len) FF_WARN_UNUSED;
/* Checks a node's own files before use: readable (FF_EIO/FF_EFORMAT), the key is Ed25519
 * and belongs to the certificate (FF_ECRYPTO), and the certificate chains to ca and is within
 * its dates (FF_EPOLICY, "certificate has expired"). Client and server log FF_EPOLICY as a
 * warning and go on (the peer decides); the other errors stop them. */
int ff_pki_check_own(const char *cert_path, const char *key_path,
                     const char *ca_path) FF_WARN_UNUSED;
int ff_pki_check_files(const char *ca_path, const char *crl_path, const char *cert_path,
                       char *cn, size_t cn_len) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Consortium file (coordinator) and site policy (client)                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char name[FF_SITE_NAME_MAX];
    char contact[128];
} ff_consortium_site;

/* consortium.yaml:
 *     consortium: ed-outcomes      # name
 *     ca: ca.crt                   # relative paths resolve against the file's folder
 *     crl: crl.pem
 *     sites: [{name: hospital-a, contact: "..."}, ...]                                     */
typedef struct {
    char consortium[FF_SITE_NAME_MAX];
    char ca[1024];
    char crl[1024];
    ff_cfg_list sites; /* of ff_consortium_site */
} ff_consortium;

int ff_consortium_load(const char *path, ff_consortium *out) FF_WARN_UNUSED;
void ff_consortium_free(ff_consortium *c);
/* Enrols a hospital: the certificate at cert_path must chain to the consortium's CA, be
 * inside its dates, not be on its CRL and carry the site role; its CN is then added to the
 * file's `sites` list in place (comments and mode kept, rewritten atomically), with
 * `contact` when not NULL. The CN is written to name (may be NULL); *added = 0 when it was
 * already listed. A running coordinator re-reads the file at its next call (ff_server):
 * `fedfuse consortium add`. A refused certificate is FF_EPOLICY with the reason. */
int ff_consortium_add(const char *path, const char *cert_path, const char *contact, char *name,
                      size_t name_len, int *added) FF_WARN_UNUSED;
/* 1 when name is an enrolled site. */
int ff_consortium_has(const ff_consortium *c, const char *name);

/* dp.level of a site policy: any = client- or record-level DP meets dp.required; client,
 * record = that level must be on (record: patient-level DP-SGD at this site); both. */
typedef enum {
    FF_POLICY_DP_ANY,
    FF_POLICY_DP_CLIENT,
    FF_POLICY_DP_RECORD,
    FF_POLICY_DP_BOTH
} ff_policy_dp_level;

/* Site policy (policy.yaml), loaded by the client; the coordinator cannot override it.
 *     site: hospital-a
 *     accepted_jobs: [<sha256 hex of model config || training plan>, ...]
 *     require_secure_aggregation: true
 *     dp: {required: true, level: any, max_epsilon: 8.0, max_delta: 1e-5,
 *          min_noise_multiplier: 0.5, max_clip_norm: 10.0}
 *     max_rounds: 200
 *     max_model_bytes: 2147483648
 *     statistics: {enabled: true, min_cell_size: 10, variables: [age, sex], per_site: false,
 *                  max_query_epsilon: 1.0}
 *     secure_aggregation: {min_sites: 3, min_threshold: 2, min_neighbours: 2}               */
typedef struct {
    char site[FF_SITE_NAME_MAX];
    ff_cfg_strlist accepted_jobs;
    int require_secagg;
    struct {
        int required;
        int level; /* ff_policy_dp_level: which DP meets `required` */
        double max_epsilon, max_delta, min_noise_multiplier, max_clip_norm;
    } dp;
    int64_t max_rounds;
    int64_t max_model_bytes;
    struct { /* statistics jobs (docs/statistics.md); absent = every statistics job refused */
        int enabled;
        int64_t min_cell_size;  /* counts below it (but above 0) are suppressed at the site */
        ff_cfg_strlist variables; /* columns that may be queried; ["*"] = any */
        int per_site;           /* this site's own (suppressed) results may be released */
        double max_query_epsilon; /* ε one noised query may cost (pooled + own results) */
        int outcome_cells;      /* evaluation subgroups: positives and negatives are cells too */
    } statistics;
    struct { /* the least a secure-aggregation round must have for this site to take part */
        int64_t min_sites, min_threshold, min_neighbours;
    } secagg;
} ff_policy;

extern const ff_cfg_field ff_policy_schema[];
int ff_policy_load(const char *path, ff_policy *out) FF_WARN_UNUSED;
void ff_policy_free(ff_policy *p);
/* Record-level (patient-level) DP that the site itself runs, DP-SGD from the approved
 * plan's privacy.record. The site enforces it, so it meets dp.required as client-level DP
 * (the task's dp) does. */
typedef struct {
    int enabled;
    double epsilon_budget, delta, noise_multiplier, clip_norm;
} ff_policy_record_dp;

/* FF_OK when the task is acceptable; FF_EPOLICY with the reason ("job sha256 ab12... is not
 * in accepted_jobs", "secure aggregation is required but the task does not enable it", ...);
 * FF_EINVAL when the task itself is malformed. WAIT and DONE tasks always pass.
 * With dp.required, the task must enable client-level DP (task->dp) or record-level DP
 * (record, NULL = none); each level it enables must meet the dp: limits. A record-level
 * epsilon_budget above max_epsilon is not refused: the site charges its own ledger, so it
 * takes part until max_epsilon and then refuses (the caller caps its budget, see
 * ff_policy_record_budget). */
int ff_policy_check(const ff_policy *p, const Fedfuse__Task *task,
                    const ff_policy_record_dp *record) FF_WARN_UNUSED;
/* Only the job: the task's claimed job hash is in accepted_jobs (ff_policy_check's first
 * test), so a task of an unapproved job is refused before its plan is even parsed. */
int ff_policy_check_job(const ff_policy *p, const Fedfuse__Task *task) FF_WARN_UNUSED;
/* A secure-aggregation round of n_sites selected sites, threshold t, each site with
 * neighbours peers (SecAgg+'s degree): FF_EPOLICY naming the key when below the policy's
 * secure_aggregation: min_sites, min_threshold or min_neighbours. */
int ff_policy_check_secagg(const ff_policy *p, int64_t n_sites, int64_t t,
                           int64_t neighbours) FF_WARN_UNUSED;
/* The record-level ε budget this site accepts for a plan's budget: the smaller of the two
 * when the policy requires DP. */
double ff_policy_record_budget(const ff_policy *p, double plan_budget);

/* ---------------------------------------------------------------------------------------- */
/* Messages                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Frees a message returned by ff_rpc_* (protobuf_c_message_free_unpacked). NULL is ok. */
void ff_msg_free(void *msg);
/* Checks the sizes and enum values of a decoded message against the limits above; the
 * server runs it before any handler, so handlers see only well-formed messages. */
int ff_msg_validate(const ProtobufCMessage *m) FF_WARN_UNUSED;

/* Bulk data: a source is read at explicit offsets (so a failed transfer can restart), a
 * sink receives bytes in order. Either a buffer or callbacks. */
typedef struct {
    const void *buf;           /* whole payload in memory, or NULL to use read */
    uint64_t size;
    /* Fills dst with n bytes at offset off; FF_OK or an error. */
    int (*read)(void *ctx, uint64_t off, void *dst, size_t n);
    void *ctx;
    uint8_t sha256[FF_SHA256_BYTES]; /* of the whole payload: required for read sources;
                                        computed for buf sources when left all zero */
} ff_source;

typedef struct {
    void *buf;                 /* destination of cap bytes, or NULL to use write */
    uint64_t cap;
    /* Receives the next n bytes (offset off); FF_OK or an error (aborts the transfer). */
    int (*write)(void *ctx, uint64_t off, const void *src, size_t n);
    /* Called before a resumed download restarts from off (truncate there); may be NULL. */
    int (*rewind)(void *ctx, uint64_t off);
    void *ctx;
    uint64_t received;         /* out: bytes delivered */
} ff_sink;

/* ---------------------------------------------------------------------------------------- */
/* Server (coordinator)                                                                      */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *bind;         /* "0.0.0.0:7443"; "127.0.0.1:0" picks a free port */
    const char *cert, *key;   /* coordinator certificate and key (PEM) */
    const char *consortium;   /* consortium.yaml: CA, CRL, enrolled sites */
    int insecure;             /* plaintext; refused unless bind is loopback. Site name then
                                 comes from the "ff-site" metadata: for local tests only. */
    int threads;              /* concurrent calls (each call has a thread); 0 = 2 per
                                 enrolled site + 8 (at least 16) */
    uint32_t chunk_size;      /* data part size for downloads; 0 = FF_CHUNK_DEFAULT */
    int idle_timeout_ms;      /* a call whose next message does not arrive (or cannot be
                                 sent) within this is cancelled, so a stalled peer cannot
                                 hold a worker; 0 = 120000 */
    /* Limits against hostile peers (docs/security.md, issue #19 items 2 and 3). */
    int handshake_timeout_ms; /* a connection that has not finished TLS and HTTP/2 set-up
                                 within this is closed; 0 = 10000 */
    int site_max_calls;       /* calls in progress per certificate name (site or operator);
                                 more are refused at once with RESOURCE_EXHAUSTED; 0 = 4 */
    uint32_t upload_min_rate; /* bytes/s an Upload must average once upload_grace_ms have
                                 passed, or it is cancelled; 0 = 65536 */
    int upload_grace_ms;      /* 0 = 30000 */
    int watchdog_ms;          /* the listener is probed over loopback this often; one that
                                 stopped accepting makes ff_server_failed say so; 0 = 30000,
                                 < 0 = off */
} ff_server_opts;

typedef struct ff_server ff_server;

/* What a handler knows about its call. Valid during the handler only. */
typedef struct {
    const char *site;        /* authenticated certificate CN, not revoked; enrolled if a site */
    ff_pki_role role;        /* the certificate's role (FF_PKI_SITE in plaintext mode) */
    const char *method;      /* "Hello", "GetTask", ... */
    const char *cert_pem;    /* the peer's certificate (PEM, checked), NULL in insecure mode */
    int64_t deadline_ms;     /* wall clock (ms since epoch) the client gives up; 0 = none */
    void *priv;
} ff_call;

/* Scratch memory freed after the reply is sent: point reply fields at it. NULL on ENOMEM. */
void *ff_call_alloc(ff_call *c, size_t n);
char *ff_call_strdup(ff_call *c, const char *s);
/* 1 once the server is stopping or the client went away: long-polls should return. */
int ff_call_cancelled(const ff_call *c);

/* Handlers return FF_OK or an FF_E... with ff_error() set; the client then sees
 * EINVAL/EFORMAT/ERANGE -> INVALID_ARGUMENT, EPOLICY -> PERMISSION_DENIED,
 * ESTATE -> FAILED_PRECONDITION, ENOTFOUND -> NOT_FOUND, ETIMEOUT -> DEADLINE_EXCEEDED,
 * ECRYPTO -> DATA_LOSS, ENOMEM -> RESOURCE_EXHAUSTED, ENET -> UNAVAILABLE (the client
 * retries), others -> INTERNAL, with the message as status details. A handler fills the
 * pre-initialised reply; fields may point at ff_call_alloc memory or at memory the
 * handler keeps alive until it returns its next call. NULL handler -> UNIMPLEMENTED. */
typedef struct {
    void *user;
    int (*hello)(void *user, ff_call *c, const Fedfuse__HelloRequest *req,
                 Fedfuse__HelloReply *reply);
    /* Long-poll: may block until a task is ready, up to req->wait_ms / the deadline. */
    int (*get_task)(void *user, ff_call *c, const Fedfuse__TaskRequest *req,
                    Fedfuse__Task *reply);
    /* Fills src for the blob req->sha256 (size, and buf or read+ctx). The server streams
       from req->offset. If src->buf, it must stay valid until release is called: the
       chunks are sent as references into it, and release comes after the call has ended
       and gRPC has dropped the last of them. */
    int (*download)(void *user, ff_call *c, const Fedfuse__DownloadRequest *req,
                    ff_source *src);
    void (*download_release)(void *user, ff_call *c, ff_source *src);
    /* Decides on an upload from its header (refuse old rounds/duplicates with ESTATE: they
       are counted as replays) and fills sink (buf of at least hdr->total_size, or write). */
    int (*upload_begin)(void *user, ff_call *c, const Fedfuse__UploadHeader *hdr,
                        ff_sink *sink);
    /* Always called after a successful upload_begin. status is FF_OK when every byte
       arrived and the SHA-256 matched; otherwise the data must be discarded. The return
       value of a FF_OK upload becomes the call's status. */
    int (*upload_end)(void *user, ff_call *c, const Fedfuse__UploadHeader *hdr,
                      ff_sink *sink, int status);
    int (*submit_eval)(void *user, ff_call *c, const Fedfuse__EvalSubmission *req,
                       Fedfuse__Ack *reply);
    int (*secagg)(void *user, ff_call *c, const Fedfuse__SecAggEnvelope *req,
                  Fedfuse__SecAggEnvelope *reply);
    /* The server appends its own counters to reply->counters after this returns. */
    int (*status)(void *user, ff_call *c, const Fedfuse__StatusRequest *req,
                  Fedfuse__StatusReply *reply);
    /* A site declines its task (policy, budget); NULL = UNIMPLEMENTED. */
    int (*decline)(void *user, ff_call *c, const Fedfuse__DeclineRequest *req,
                   Fedfuse__Ack *reply);
    /* A call from site was refused because its certificate is revoked (why says so), so the
     * round need not wait for that site; may be NULL. Runs on a server thread. */
    void (*refused)(void *user, const char *site, const char *why);
    /* The consortium file changed and was re-read (`fedfuse consortium add`): cons is the new
     * site list. Runs on a server thread, under the server's lock, before any call of a newly
     * listed site is served; may be NULL. */
    void (*enrolled)(void *user, const ff_consortium *cons);
} ff_server_handlers;

/* Counters of refused and served calls (also appended to every Status reply). */
typedef struct {
    uint64_t calls_ok;
    uint64_t calls_failed;
    uint64_t invalid_argument;   /* malformed protobuf, bad sizes or enum values */
    uint64_t oversized;          /* messages over the receive limit */
    uint64_t unknown_method;
    uint64_t unenrolled;         /* valid certificate, site not in the consortium file */
    uint64_t revoked;
    uint64_t wrong_role;         /* certificate without a role, or a role not served */
    uint64_t replayed;           /* upload/submission refused with FF_ESTATE */
    uint64_t checksum_mismatch;
    uint64_t bytes_in, bytes_out;
    uint64_t over_quota;          /* calls refused: the caller had site_max_calls running */
    uint64_t upload_too_slow;     /* uploads cancelled below upload_min_rate */
    uint64_t connections_refused; /* closed on accept: no descriptor left to give */
    uint64_t connections_evicted; /* unauthenticated connections shut to make room */
} ff_server_counters;

/* Binds, loads the consortium file (and its CA/CRL), starts the worker threads. On error
 * nothing is left running. handlers is copied. The consortium file's site list and the CRL
 * are re-read when their files change (checked at most once a second, at calls). */
int ff_server_start(ff_server **out, const ff_server_opts *o,
                    const ff_server_handlers *h) FF_WARN_UNUSED;
/* The bound port (useful with ":0"). */
int ff_server_port(const ff_server *s);
void ff_server_counters_get(ff_server *s, ff_server_counters *out);
/* NULL while the server is healthy; once its watchdog found the listener dead (connections
 * no longer accepted), why: the process should exit non-zero so that its supervisor
 * restarts it. */
const char *ff_server_failed(ff_server *s);
/* Stops accepting, cancels running calls (handlers should watch ff_call_cancelled), waits
 * for the handlers to return, then tears gRPC down in order. NULL is ok. */
void ff_server_stop(ff_server *s);

/* ---------------------------------------------------------------------------------------- */
/* Client (hospital)                                                                         */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    const char *target;      /* "host:port" of the coordinator */
    const char *cert, *key;  /* site certificate and key */
    const char *ca;          /* consortium CA certificate (checks the coordinator) */
    const char *server_name; /* expected coordinator name when it differs from target host */
    const char *proxy;       /* HTTP CONNECT proxy "host:port" or "http://host:port"; NULL =
                                gRPC's own choice from grpc_proxy / https_proxy / http_proxy
                                (no_proxy honoured). TLS runs end to end through the tunnel. */
    int insecure;            /* plaintext; refused unless target is loopback */
    const char *insecure_site; /* site name sent in plaintext mode */
    int attempts;            /* tries per call on UNAVAILABLE; 0 = 6 */
    int backoff_ms;          /* first retry delay; doubles, +-50% jitter; 0 = 500 */
    int backoff_max_ms;      /* 0 = 15000 */
    int keepalive_ms;        /* ping period on idle links; 0 = 15000 */
    int keepalive_timeout_ms;/* no ping ack within this: link lost; 0 = 5000 */
    uint32_t chunk_size;     /* upload part size; 0 = FF_CHUNK_DEFAULT */
} ff_rpc_opts;

typedef struct ff_rpc ff_rpc;

int ff_rpc_new(ff_rpc **out, const ff_rpc_opts *o) FF_WARN_UNUSED;
void ff_rpc_free(ff_rpc *c);

/* Unary calls. timeout_ms bounds each attempt; UNAVAILABLE is retried with backoff (and
 * logged as a warning each time), so a dead link is reported within timeout * attempts plus
 * the backoff. Replies are owned by the caller: ff_msg_free. Errors: FF_ENET (unreachable,
 * lost link, handshake refused), FF_ETIMEOUT, FF_EINVAL (server said INVALID_ARGUMENT),
 * FF_EPOLICY (PERMISSION_DENIED / UNAUTHENTICATED), FF_ESTATE (FAILED_PRECONDITION),
 * FF_ENOTFOUND. */
int ff_rpc_hello(ff_rpc *c, const Fedfuse__HelloRequest *req,
                 Fedfuse__HelloReply **reply, int timeout_ms) FF_WARN_UNUSED;
int ff_rpc_get_task(ff_rpc *c, const Fedfuse__TaskRequest *req, Fedfuse__Task **reply,
                    int timeout_ms) FF_WARN_UNUSED;
int ff_rpc_decline(ff_rpc *c, const Fedfuse__DeclineRequest *req, Fedfuse__Ack **reply,
                   int timeout_ms) FF_WARN_UNUSED;
int ff_rpc_submit_eval(ff_rpc *c, const Fedfuse__EvalSubmission *req,
                       Fedfuse__Ack **reply, int timeout_ms) FF_WARN_UNUSED;
int ff_rpc_secagg(ff_rpc *c, const Fedfuse__SecAggEnvelope *req,
                  Fedfuse__SecAggEnvelope **reply, int timeout_ms) FF_WARN_UNUSED;
int ff_rpc_status(ff_rpc *c, Fedfuse__StatusReply **reply, int timeout_ms) FF_WARN_UNUSED;

/* Downloads blob sha256 (size bytes expected, 0 = any up to sink->cap) into sink. A broken
 * stream resumes from the bytes already received (sink->rewind is called first); the
 * SHA-256 of the whole blob is checked at the end (FF_ECRYPTO on mismatch). */
int ff_rpc_download(ff_rpc *c, const uint8_t sha256[FF_SHA256_BYTES], uint64_t size,
                    ff_sink *sink, int timeout_ms) FF_WARN_UNUSED;
/* Uploads src with the header hdr (total_size and sha256 are filled in from src). A broken
 * stream restarts from the beginning (the server discards partial uploads). ack may be NULL. */
int ff_rpc_upload(ff_rpc *c, const Fedfuse__UploadHeader *hdr, ff_source *src,
                  Fedfuse__UploadAck **ack, int timeout_ms) FF_WARN_UNUSED;

/* Low level, for tests: sends raw bytes as the request of method ("Hello", or any name, which
 * becomes /fedfuse.Coordinator/NAME) once, without retries; writes the gRPC status code. */
int ff_rpc_raw_call(ff_rpc *c, const char *method, const void *req, size_t len,
                    int timeout_ms, int *grpc_status) FF_WARN_UNUSED;

/* Routes gRPC's own log lines into ff_log (idempotent; ff_server_start/ff_rpc_new do it). */
void ff_transport_log_init(void);

#ifdef __cplusplus
}
#endif
#endif
