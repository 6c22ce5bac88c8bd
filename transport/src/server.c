/* The coordinator's gRPC server. Each worker thread owns one completion queue registered with
 * the server and serves one call at a time on it, synchronously: request a call, wait for it,
 * run the handler, send the reply, repeat. A long-poll therefore occupies one worker; the
 * worker count bounds concurrency (gRPC queues calls beyond it). */
#include "transport_internal.h"

#include <grpc/support/alloc.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TAG_REQUEST ((void *)1)
#define TAG_OP ((void *)2)
#define TAG_CLOSE ((void *)3)
#define TAG_SHUTDOWN ((void *)4)
#define SERVER_MSG_LIMIT (2 * FF_MSG_MAX) /* gRPC's hard cap; ours (FF_MSG_MAX) is counted */

/* Calls in progress of one certificate name (site_max_calls). */
typedef struct {
    char name[FF_SITE_NAME_MAX];
    int role, n;
} site_calls;

typedef struct worker {
    struct ff_server *s;
    grpc_completion_queue *cq;
    pthread_t thread;
    int started;
} worker;

struct ff_server {
    grpc_server *srv;
    grpc_completion_queue *shut_cq;
    int port;
    int insecure;
    uint32_t chunk;
    int idle_ms;
    int site_max_calls;
    uint32_t min_rate;
    int grace_ms, watchdog_ms;
    ff_server_handlers h;
    ff_consortium cons;
    char cons_path[1024];
    ff_file_stamp cons_stamp;
    double cons_checked;
    X509 *ca;
    X509_CRL *crl;
    ff_file_stamp crl_stamp;
    pthread_mutex_t lock; /* counters, crl, cons */
    ff_server_counters cnt;
    atomic_int stopping;
    int nworkers;
    worker *workers;
    site_calls *active; /* nworkers entries (a call holds a worker); under lock */
    pthread_t watchdog;
    int watchdog_started;
    pthread_mutex_t wd_mu; /* wd_cv: wakes the watchdog when the server stops */
    pthread_cond_t wd_cv;
    char probe_host[128];
    char failed[256]; /* set once by the watchdog: the listener is dead */
    atomic_int is_failed;
};

typedef struct blk {
    struct blk *next;
} blk;

typedef struct {
    worker *w;
    grpc_call *call;
    blk *mem;
    int close_seen; /* RECV_CLOSE_ON_SERVER completed */
    int cancelled;
    char site[FF_SITE_NAME_MAX];
    ff_pki_role role;
    char *cert_pem; /* the checked peer certificate (freed with the call) */
    /* A download's source stays lent out until gRPC has dropped every slice that points
       into it, which may be after the call is unreferenced: serve_call waits on the pin and
       then calls download_release. */
    ff_wire_pin pin;
    int pinned, release;
    ff_source src;
    double until;  /* ff_now() by which the next operation must complete; 0 = idle_ms only */
    int too_slow;  /* cancelled for missing until */
} call_ctx;

#define COUNT(s, field, n)                                                                    \
    do {                                                                                      \
        pthread_mutex_lock(&(s)->lock);                                                       \
        (s)->cnt.field += (n);                                                                \
        pthread_mutex_unlock(&(s)->lock);                                                     \
    } while (0)

void *ff_call_alloc(ff_call *c, size_t n)
{
    call_ctx *cc = c->priv;
    blk *b = calloc(1, sizeof(blk) + n + 16);
    if (!b)
        return NULL;
    b->next = cc->mem;
    cc->mem = b;
    return (uint8_t *)b + ((sizeof(blk) + 15) & ~(size_t)15);
}

char *ff_call_strdup(ff_call *c, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ff_call_alloc(c, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Waits on the worker's queue for tag; notes the close event if it shows up meanwhile. An
 * operation idle for longer than the server's idle timeout cancels the call (the operation
 * then completes, failed), so a stalled peer cannot hold the worker forever. */
static int wait_tag(call_ctx *cc, void *tag)
{
    int idle = cc->w->s->idle_ms, slow = 0;
    if (cc->until > 0 && (cc->until - ff_now()) * 1000.0 < idle) {
        idle = (int)FF_MAX((cc->until - ff_now()) * 1000.0, 0.0);
        slow = 1;
    }
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cc->w->cq, ff_deadline_ms(idle), NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT && slow) {
            ff_log(FF_LOG_WARN, "upload from %s below the minimum rate of %u bytes/s: "
                   "cancelled", cc->site[0] ? cc->site : "?", cc->w->s->min_rate);
            grpc_call_cancel_with_status(cc->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                         "upload below the coordinator's minimum rate", NULL);
            cc->too_slow = 1;
            idle = 1 << 30;
            slow = 0;
            continue;
        }
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            ff_log(FF_LOG_WARN, "call from %s idle for %d ms: cancelled",
                   cc->site[0] ? cc->site : "?", idle);
            grpc_call_cancel_with_status(cc->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                         "idle too long", NULL);
            idle = 1 << 30; /* the cancelled operation completes promptly */
            continue;
        }
        if (ev.type != GRPC_OP_COMPLETE)
            return 0;
        if (ev.tag == TAG_CLOSE) {
            cc->close_seen = 1;
            if (tag == TAG_CLOSE)
                return 1;
            continue;
        }
        if (ev.tag == tag)
            return ev.success;
    }
}

int ff_call_cancelled(const ff_call *c)
{
    call_ctx *cc = c->priv;
    if (atomic_load(&cc->w->s->stopping))
        return 1;
    if (!cc->close_seen) {
        grpc_event ev = grpc_completion_queue_next(cc->w->cq, gpr_inf_past(GPR_CLOCK_REALTIME),
                                                   NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag == TAG_CLOSE)
            cc->close_seen = 1;
    }
    /* The close event before our status means the client cancelled or went away. */
    return cc->close_seen;
}

static int run_ops(call_ctx *cc, grpc_op *ops, size_t n)
{
    if (grpc_call_start_batch(cc->call, ops, n, TAG_OP, NULL) != GRPC_CALL_OK)
        return 0;
    return wait_tag(cc, TAG_OP);
}

static int send_status(call_ctx *cc, int with_md, grpc_byte_buffer *reply,
                       grpc_status_code code, const char *details)
{
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    grpc_slice det = grpc_slice_from_copied_string(details ? details : "");
    if (with_md)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (reply) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = reply;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &det;
    int ok = run_ops(cc, ops, n);
    grpc_slice_unref(det);
    if (reply)
        grpc_byte_buffer_destroy(reply);
    return ok;
}

static int fail_call(call_ctx *cc, int with_md, int rc, const char *method)
{
    grpc_status_code code = ff_status_to_grpc(rc);
    if (code == GRPC_STATUS_INVALID_ARGUMENT)
        COUNT(cc->w->s, invalid_argument, 1);
    COUNT(cc->w->s, calls_failed, 1);
    ff_log(code == GRPC_STATUS_INTERNAL ? FF_LOG_ERROR : FF_LOG_WARN, "%s from %s: %s: %s",
           method, cc->site[0] ? cc->site : "?", ff_grpc_code_name(code), ff_error_message());
    return send_status(cc, with_md, NULL, code, ff_error_message());
}

/* ---- identity -------------------------------------------------------------------------- */

/* Re-reads the CRL when its file changed, checked at every call (one stat): a certificate the
 * coordinator has just seen revoked (its roster, fed/) is refused at its very next call, and
 * `fedfuse pki revoke` takes effect without a restart. A file that does not load (half
 * copied, not signed by the CA) is tried again when it changes. Called with s->lock held. */
static void crl_refresh(ff_server *s)
{
    if (!s->cons.crl[0])
        return;
    ff_file_stamp st = ff_file_stamp_of(s->cons.crl);
    if (ff_file_stamp_eq(st, s->crl_stamp))
        return;
    X509_CRL *crl;
    if (ff_pki_load_crl(s->cons.crl, s->ca, &crl) != FF_OK) {
        ff_log(FF_LOG_ERROR, "keeping the previous revocation list: %s", ff_error_message());
        s->crl_stamp = st; /* tried again when the file changes, not at every call */
        return;
    }
    X509_CRL_free(s->crl);
    s->crl = crl;
    s->crl_stamp = st;
    ff_log(FF_LOG_INFO, "revocation list %s loaded", s->cons.crl);
}

/* Re-reads the consortium file when it changed (checked at most once a second, or at once
 * when force: a site not enrolled a moment ago may just have been added), so `fedfuse
 * consortium add` takes effect without a restart. Only the site list changes; a new ca or crl
 * path needs a restart. A file that does not load keeps the previous list. Called with
 * s->lock held; the enrolled handler runs under it, before any call of a new site is served. */
static void cons_refresh(ff_server *s, int force)
{
    double now = ff_now();
    if (!s->cons_path[0] || (!force && now - s->cons_checked < 1.0))
        return;
    s->cons_checked = now;
    ff_file_stamp st = ff_file_stamp_of(s->cons_path);
    if (ff_file_stamp_eq(st, s->cons_stamp))
        return;
    s->cons_stamp = st; /* a file that does not load is tried again when it changes */
    ff_consortium c;
    if (ff_consortium_load(s->cons_path, &c) != FF_OK) {
        ff_log(FF_LOG_ERROR, "keeping the previous site list: %s", ff_error_message());
        ff_consortium_free(&c);
        return;
    }
    if (strcmp(c.ca, s->cons.ca) != 0 || strcmp(c.crl, s->cons.crl) != 0 ||
        strcmp(c.consortium, s->cons.consortium) != 0)
        ff_log(FF_LOG_WARN, "%s: a new consortium name, ca or crl takes a coordinator restart; "
               "the new site list is in force", s->cons_path);
    ff_strlcpy(c.ca, s->cons.ca, sizeof c.ca);
    ff_strlcpy(c.crl, s->cons.crl, sizeof c.crl);
    ff_strlcpy(c.consortium, s->cons.consortium, sizeof c.consortium);
    ff_consortium_free(&s->cons);
    s->cons = c;
    ff_log(FF_LOG_INFO, "consortium file %s loaded: %zu enrolled sites", s->cons_path,
           s->cons.sites.count);
    if (s->h.enrolled)
        s->h.enrolled(s->h.user, &s->cons);
}

/* 1 when site is enrolled now (the consortium file is re-read first when it changed). */
static int site_enrolled(ff_server *s, const char *site)
{
    pthread_mutex_lock(&s->lock);
    cons_refresh(s, 0);
    int yes = ff_consortium_has(&s->cons, site);
    if (!yes) {
        cons_refresh(s, 1);
        yes = ff_consortium_has(&s->cons, site);
    }
    pthread_mutex_unlock(&s->lock);
    return yes;
}

static int peer_site(call_ctx *cc, const grpc_metadata_array *md)
{
    ff_server *s = cc->w->s;
    if (s->insecure) {
        for (size_t i = 0; i < md->count; i++)
            if (grpc_slice_str_cmp(md->metadata[i].key, FF_SITE_METADATA) == 0) {
                size_t n = GRPC_SLICE_LENGTH(md->metadata[i].value);
                if (n == 0 || n >= sizeof cc->site)
                    break;
                memcpy(cc->site, GRPC_SLICE_START_PTR(md->metadata[i].value), n);
                cc->site[n] = 0;
                return FF_OK;
            }
        return ff_error(FF_EPOLICY, "plaintext call without an '%s' header", FF_SITE_METADATA);
    }
    grpc_auth_context *ctx = grpc_call_auth_context(cc->call);
    grpc_auth_property_iterator it =
        grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    X509 *cert = NULL;
    int rc = p ? ff_pki_cert_from_pem(p->value, p->value_length, &cert)
               : ff_error(FF_EPOLICY, "no client certificate");
    if (rc == FF_OK && (cc->cert_pem = malloc(p->value_length + 1)) != NULL) {
        memcpy(cc->cert_pem, p->value, p->value_length);
        cc->cert_pem[p->value_length] = '\0';
    }
    grpc_auth_context_release(ctx);
    if (rc != FF_OK)
        return FF_EPOLICY;
    pthread_mutex_lock(&s->lock);
    crl_refresh(s);
    rc = ff_pki_check_peer(s->ca, s->crl, cert, cc->site, sizeof cc->site);
    pthread_mutex_unlock(&s->lock);
    if (rc != FF_OK) {
        char cn[FF_SITE_NAME_MAX] = "?";
        if (ff_pki_cert_cn(cert, cn, sizeof cn) != FF_OK)
            ff_error_clear();
        X509_free(cert);
        if (rc == FF_EPOLICY) {
            COUNT(s, revoked, 1);
            if (s->h.refused) {
                char why[512];
                ff_strlcpy(why, ff_error_message(), sizeof why);
                s->h.refused(s->h.user, cn, why);
                ff_error(FF_EPOLICY, "%s", why);
            }
        }
        return ff_error_prefix(FF_EPOLICY, "site '%s': ", cn);
    }
    rc = ff_pki_cert_role(cert, &cc->role);
    X509_free(cert);
    if (rc != FF_OK) {
        COUNT(s, wrong_role, 1);
        return ff_error_prefix(FF_EPOLICY, "'%s': ", cc->site);
    }
    return FF_OK;
}

/* Which roles may call which method. Only sites take part in a federation: an audit or
 * operator certificate named like a site is not that site. An operator reads the round state
 * (Status: `fedfuse status`, `fedfuse ping`) and calls nothing else; a coordinator or audit
 * certificate calls nothing. */
static int role_may_call(ff_pki_role role, int method)
{
    return role == FF_PKI_SITE || (role == FF_PKI_OPERATOR && method == FF_M_STATUS);
}

/* ---- unary methods --------------------------------------------------------------------- */

typedef int (*unary_fn)(void *, ff_call *, const void *, void *);

static const ProtobufCMessageDescriptor *const req_desc[FF_M_COUNT] = {
    &fedfuse__hello_request__descriptor, &fedfuse__task_request__descriptor,
    &fedfuse__download_request__descriptor, &fedfuse__upload_part__descriptor,
    &fedfuse__eval_submission__descriptor, &fedfuse__sec_agg_envelope__descriptor,
    &fedfuse__status_request__descriptor, &fedfuse__decline_request__descriptor,
};
static const ProtobufCMessageDescriptor *const reply_desc[FF_M_COUNT] = {
    &fedfuse__hello_reply__descriptor, &fedfuse__task__descriptor, NULL, NULL,
    &fedfuse__ack__descriptor, &fedfuse__sec_agg_envelope__descriptor,
    &fedfuse__status_reply__descriptor, &fedfuse__ack__descriptor,
};

static unary_fn unary_handler(const ff_server_handlers *h, int m)
{
    switch (m) {
    case FF_M_HELLO: return (unary_fn)h->hello;
    case FF_M_GET_TASK: return (unary_fn)h->get_task;
    case FF_M_SUBMIT_EVAL: return (unary_fn)h->submit_eval;
    case FF_M_SECAGG: return (unary_fn)h->secagg;
    case FF_M_STATUS: return (unary_fn)h->status;
    case FF_M_DECLINE: return (unary_fn)h->decline;
    default: return NULL;
    }
}

/* Receives one message; NULL bb with FF_OK means the client half-closed. Oversized messages
 * (over our limit, under gRPC's hard cap) are refused and counted here. */
static int recv_msg(call_ctx *cc, grpc_byte_buffer **bb)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    *bb = NULL;
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = bb;
    if (!run_ops(cc, &op, 1))
        return ff_error(FF_ENET, "connection lost while receiving");
    if (*bb && grpc_byte_buffer_length(*bb) > FF_MSG_MAX) {
        size_t n = grpc_byte_buffer_length(*bb);
        grpc_byte_buffer_destroy(*bb);
        *bb = NULL;
        COUNT(cc->w->s, oversized, 1);
        return ff_error(FF_ENOMEM, "message of %zu bytes exceeds the %u byte limit", n,
                        FF_MSG_MAX);
    }
    if (*bb)
        COUNT(cc->w->s, bytes_in, grpc_byte_buffer_length(*bb));
    return FF_OK;
}

static void append_counters(ff_server *s, ff_call *c, Fedfuse__StatusReply *r)
{
    ff_server_counters k;
    ff_server_counters_get(s, &k);
    struct { const char *name; uint64_t v; } list[] = {
        {"calls_ok", k.calls_ok}, {"calls_failed", k.calls_failed},
        {"invalid_argument", k.invalid_argument}, {"oversized", k.oversized},
        {"unknown_method", k.unknown_method}, {"unenrolled", k.unenrolled},
        {"revoked", k.revoked}, {"wrong_role", k.wrong_role}, {"replayed", k.replayed},
        {"checksum_mismatch", k.checksum_mismatch}, {"bytes_in", k.bytes_in},
        {"bytes_out", k.bytes_out}, {"over_quota", k.over_quota},
        {"upload_too_slow", k.upload_too_slow}, {"connections_refused", k.connections_refused},
        {"connections_evicted", k.connections_evicted}};
    size_t n = FF_ARRAY_LEN(list), old = r->n_counters;
    Fedfuse__Counter **arr = ff_call_alloc(c, (old + n) * sizeof *arr);
    Fedfuse__Counter *cs = ff_call_alloc(c, n * sizeof *cs);
    if (!arr || !cs)
        return;
    for (size_t i = 0; i < old; i++)
        arr[i] = r->counters[i];
    for (size_t i = 0; i < n; i++) {
        fedfuse__counter__init(&cs[i]);
        cs[i].name = (char *)list[i].name;
        cs[i].value = list[i].v;
        arr[old + i] = &cs[i];
    }
    r->counters = arr;
    r->n_counters = old + n;
}

static int serve_unary(call_ctx *cc, ff_call *c, int m)
{
    ff_server *s = cc->w->s;
    grpc_byte_buffer *bb = NULL;
    ProtobufCMessage *req = NULL;
    int rc = recv_msg(cc, &bb);
    if (rc == FF_OK && !bb)
        rc = ff_error(FF_EINVAL, "%s: no request message", c->method);
    if (rc == FF_OK)
        rc = ff_wire_unpack(bb, req_desc[m], &req);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    if (rc != FF_OK)
        return fail_call(cc, 1, rc, c->method);
    /* Replies live on the stack in a union-sized buffer, initialised by the descriptor. */
    union {
        Fedfuse__HelloReply a;
        Fedfuse__Task b;
        Fedfuse__Ack d;
        Fedfuse__SecAggEnvelope e;
        Fedfuse__StatusReply f;
    } reply;
    protobuf_c_message_init(reply_desc[m], &reply);
    rc = unary_handler(&s->h, m)(s->h.user, c, req, &reply);
    if (rc == FF_OK && m == FF_M_STATUS)
        append_counters(s, c, &reply.f);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc != FF_OK) {
        if (rc == FF_ESTATE && (m == FF_M_SUBMIT_EVAL || m == FF_M_SECAGG))
            COUNT(s, replayed, 1);
        return fail_call(cc, 1, rc, c->method);
    }
    if (ff_msg_validate((ProtobufCMessage *)&reply) != FF_OK) {
        ff_error_prefix(FF_EINTERNAL, "handler reply invalid: ");
        return fail_call(cc, 1, FF_EINTERNAL, c->method);
    }
    grpc_byte_buffer *out = ff_wire_pack((ProtobufCMessage *)&reply);
    COUNT(s, bytes_out, grpc_byte_buffer_length(out));
    COUNT(s, calls_ok, 1);
    return send_status(cc, 1, out, GRPC_STATUS_OK, "");
}

/* ---- Download -------------------------------------------------------------------------- */

static int serve_download(call_ctx *cc, ff_call *c)
{
    ff_server *s = cc->w->s;
    grpc_byte_buffer *bb = NULL;
    Fedfuse__DownloadRequest *req = NULL;
    ff_source src;
    memset(&src, 0, sizeof src);
    int rc = recv_msg(cc, &bb), have_src = 0, md_sent = 0;
    if (rc == FF_OK && !bb)
        rc = ff_error(FF_EINVAL, "Download: no request message");
    if (rc == FF_OK)
        rc = ff_wire_unpack(bb, req_desc[FF_M_DOWNLOAD], (ProtobufCMessage **)&req);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    if (rc == FF_OK && req->sha256.len != FF_SHA256_BYTES)
        rc = ff_error(FF_EINVAL, "Download: sha256 missing");
    if (rc == FF_OK && (rc = s->h.download(s->h.user, c, req, &src)) == FF_OK)
        have_src = 1;
    if (rc == FF_OK && !src.buf && !src.read)
        rc = ff_error(FF_EINTERNAL, "Download handler gave neither buf nor read");
    if (rc == FF_OK && req->offset > src.size)
        rc = ff_error(FF_EINVAL, "Download: offset %llu beyond size %llu",
                      (unsigned long long)req->offset, (unsigned long long)src.size);
    static const uint8_t zero[FF_SHA256_BYTES];
    if (rc == FF_OK && src.buf && memcmp(src.sha256, zero, sizeof zero) == 0)
        ff_sha256(src.buf, src.size, src.sha256);
    if (rc != FF_OK)
        goto fail;

    Fedfuse__DownloadHeader hdr = FEDFUSE__DOWNLOAD_HEADER__INIT;
    Fedfuse__DownloadPart part;
    fedfuse__download_part__init(&part);
    hdr.total_size = src.size;
    hdr.sha256.data = src.sha256;
    hdr.sha256.len = FF_SHA256_BYTES;
    hdr.chunk_size = s->chunk;
    hdr.offset = req->offset;
    part.part_case = FEDFUSE__DOWNLOAD_PART__PART_HEADER;
    part.header = &hdr;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = ff_wire_pack(&part.base);
    int ok = run_ops(cc, ops, 2);
    grpc_byte_buffer_destroy(ops[1].data.send_message.send_message);
    md_sent = 1;
    uint64_t off = req->offset;
    ff_wire_pin_init(&cc->pin);
    cc->pinned = 1;
    while (ok && off < src.size) {
        size_t n = (size_t)FF_MIN((uint64_t)s->chunk, src.size - off);
        grpc_byte_buffer *data;
        if ((rc = ff_wire_data_part(&src, off, n, &cc->pin, &data)) != FF_OK)
            goto fail;
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = data;
        ok = run_ops(cc, ops, 1);
        grpc_byte_buffer_destroy(data);
        off += n;
        COUNT(s, bytes_out, n);
    }
    if (!ok) {
        COUNT(s, calls_failed, 1);
        ff_log(FF_LOG_WARN, "Download to %s: link lost after %llu of %llu bytes", cc->site,
               (unsigned long long)off, (unsigned long long)src.size);
        send_status(cc, 0, NULL, GRPC_STATUS_UNAVAILABLE, "link lost");
    } else {
        COUNT(s, calls_ok, 1);
        send_status(cc, 0, NULL, GRPC_STATUS_OK, "");
    }
    rc = FF_OK;
    goto out;
fail:
    fail_call(cc, !md_sent, rc, "Download");
out:
    cc->release = have_src && s->h.download_release;
    cc->src = src;
    ff_msg_free(req);
    return rc;
}

/* ---- Upload ---------------------------------------------------------------------------- */

static int upload_header(call_ctx *cc, Fedfuse__UploadPart **part)
{
    grpc_byte_buffer *bb = NULL;
    int rc = recv_msg(cc, &bb);
    if (rc == FF_OK && !bb)
        rc = ff_error(FF_EINVAL, "Upload: empty stream");
    if (rc == FF_OK)
        rc = ff_wire_unpack(bb, req_desc[FF_M_UPLOAD], (ProtobufCMessage **)part);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    if (rc != FF_OK)
        return rc;
    Fedfuse__UploadHeader *h = (*part)->header;
    if ((*part)->part_case != FEDFUSE__UPLOAD_PART__PART_HEADER || !h)
        return ff_error(FF_EINVAL, "Upload: first part is not a header");
    if (h->sha256.len != FF_SHA256_BYTES)
        return ff_error(FF_EINVAL, "Upload: header sha256 missing");
    if (h->total_size > FF_BLOB_MAX)
        return ff_error(FF_EINVAL, "Upload: total_size %llu exceeds %llu",
                        (unsigned long long)h->total_size, (unsigned long long)FF_BLOB_MAX);
    return FF_OK;
}

static int serve_upload(call_ctx *cc, ff_call *c)
{
    ff_server *s = cc->w->s;
    Fedfuse__UploadPart *part = NULL;
    ff_sink sink;
    memset(&sink, 0, sizeof sink);
    ff_sha256_ctx *h = NULL;
    int rc = upload_header(cc, &part);
    if (rc != FF_OK)
        goto fail;
    Fedfuse__UploadHeader *hdr = part->header;
    if ((rc = s->h.upload_begin(s->h.user, c, hdr, &sink)) != FF_OK) {
        if (rc == FF_ESTATE)
            COUNT(s, replayed, 1);
        goto fail;
    }
    if ((sink.buf && sink.cap < hdr->total_size) || (!sink.buf && !sink.write))
        rc = ff_error(FF_EINTERNAL, "upload_begin gave no room for %llu bytes",
                      (unsigned long long)hdr->total_size);
    if (rc == FF_OK)
        rc = ff_sha256_new(&h);
    uint64_t off = 0;
    /* The minimum rate: by grace + off / min_rate after the slot was given, off bytes must
     * be in, or the stream is cancelled (a trickle cannot hold a slot and a worker). */
    const double t0 = ff_now();
    while (rc == FF_OK) {
        grpc_byte_buffer *bb = NULL;
        cc->until = t0 + s->grace_ms / 1000.0 + (double)off / s->min_rate;
        rc = recv_msg(cc, &bb);
        if (cc->too_slow) {
            COUNT(s, upload_too_slow, 1);
            rc = ff_error(FF_ENOMEM, "Upload: %llu of %llu bytes in %.0f s, below the minimum "
                          "rate of %u bytes/s", (unsigned long long)off,
                          (unsigned long long)hdr->total_size, ff_now() - t0, s->min_rate);
        }
        if (rc != FF_OK || !bb)
            break;
        if (!ff_wire_is_data(bb))
            rc = ff_error(FF_EINVAL, "Upload: second header in one stream");
        else
            rc = ff_wire_data_deliver(bb, &sink, &off, hdr->total_size, h);
        grpc_byte_buffer_destroy(bb);
    }
    cc->until = 0;
    sink.received = off;
    if (rc == FF_OK && off != hdr->total_size)
        rc = ff_error(FF_EINVAL, "Upload: stream ended after %llu of %llu bytes",
                      (unsigned long long)off, (unsigned long long)hdr->total_size);
    uint8_t got[FF_SHA256_BYTES];
    if (h) {
        ff_sha256_final(h, got);
        h = NULL;
        if (rc == FF_OK && !ff_ct_equal(got, hdr->sha256.data, FF_SHA256_BYTES)) {
            COUNT(s, checksum_mismatch, 1);
            rc = ff_error(FF_ECRYPTO, "Upload: sha256 of the %llu received bytes does not match "
                          "the header", (unsigned long long)off);
        }
    }
    if (rc != FF_OK)
        ff_error_prefix(rc, "upload from %s (round %u): ", cc->site, hdr->round);
    int rc2 = s->h.upload_end(s->h.user, c, hdr, &sink, rc);
    if (rc == FF_OK)
        rc = rc2;
    if (rc != FF_OK)
        goto fail;
    Fedfuse__UploadAck ack = FEDFUSE__UPLOAD_ACK__INIT;
    ack.received = off;
    ack.sha256.data = got;
    ack.sha256.len = FF_SHA256_BYTES;
    COUNT(s, calls_ok, 1);
    send_status(cc, 1, ff_wire_pack(&ack.base), GRPC_STATUS_OK, "");
    goto out;
fail:
    fail_call(cc, 1, rc, "Upload");
out:
    ff_msg_free(part);
    return rc;
}

/* ---- per-site quota ------------------------------------------------------------------- */

/* Counts a call of (name, role) in; 0 when it already has site_max_calls running. */
static int quota_take(ff_server *s, const char *name, int role)
{
    int ok = 0, free_slot = -1;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->nworkers; i++) {
        site_calls *a = &s->active[i];
        if (a->n > 0 && a->role == role && strcmp(a->name, name) == 0) {
            ok = a->n < s->site_max_calls;
            a->n += ok;
            goto out;
        }
        if (a->n == 0 && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0 && s->site_max_calls > 0) {
        ff_strlcpy(s->active[free_slot].name, name, sizeof s->active[free_slot].name);
        s->active[free_slot].role = role;
        s->active[free_slot].n = 1;
        ok = 1;
    }
out:
    if (!ok)
        s->cnt.over_quota++;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void quota_give(ff_server *s, const char *name, int role)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->nworkers; i++)
        if (s->active[i].n > 0 && s->active[i].role == role &&
            strcmp(s->active[i].name, name) == 0) {
            s->active[i].n--;
            break;
        }
    pthread_mutex_unlock(&s->lock);
}

/* An authenticated call, served from here: its connection is never evicted by the
 * connection guard, and it counts against its caller's quota; 0 = over the quota. */
static int admit_call(ff_server *s, call_ctx *cc)
{
    if (ff_conn_guard_active()) {
        char *peer = grpc_call_get_peer(cc->call);
        ff_conn_guard_authenticated(peer);
        gpr_free(peer);
    }
    return quota_take(s, cc->site, (int)cc->role);
}

/* ---- dispatch -------------------------------------------------------------------------- */

static void serve_call(worker *w, grpc_call *call, grpc_call_details *det,
                       grpc_metadata_array *md)
{
    ff_server *s = w->s;
    call_ctx cc = {.w = w, .call = call};
    ff_call c = {.site = cc.site, .role = FF_PKI_SITE, .priv = &cc};
    grpc_op op;
    memset(&op, 0, sizeof op);
    int cancelled = 0, held = 0;
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &cancelled;
    if (grpc_call_start_batch(call, &op, 1, TAG_CLOSE, NULL) != GRPC_CALL_OK) {
        grpc_call_unref(call);
        return;
    }
    int m = ff_method_lookup(det->method);
    const char *mname = m >= 0 ? ff_method_names[m] : "?";
    if (peer_site(&cc, md) != FF_OK) {
        ff_log(FF_LOG_WARN, "refused %s: %s", mname, ff_error_message());
        send_status(&cc, 1, NULL, GRPC_STATUS_PERMISSION_DENIED, ff_error_message());
        COUNT(s, calls_failed, 1);
    } else if (!s->insecure && !role_may_call(cc.role, m)) {
        ff_error(FF_EPOLICY, "'%s' holds a certificate of role %s: %s is served to sites only%s",
                 cc.site, ff_pki_role_name(cc.role), mname,
                 cc.role == FF_PKI_OPERATOR ? " (an operator may call Status only)" : "");
        ff_log(FF_LOG_WARN, "refused %s: %s", mname, ff_error_message());
        COUNT(s, wrong_role, 1);
        COUNT(s, calls_failed, 1);
        send_status(&cc, 1, NULL, GRPC_STATUS_PERMISSION_DENIED, ff_error_message());
    } else if ((s->insecure || cc.role == FF_PKI_SITE) &&
               !site_enrolled(s, cc.site)) {
        /* An operator is a person of the consortium, not an enrolled site: the CA, the
         * revocation list and its role (Status only) decide. */
        ff_error(FF_EPOLICY, "site '%s' is not enrolled in consortium '%s'", cc.site,
                 s->cons.consortium);
        ff_log(FF_LOG_WARN, "refused %s: %s", mname, ff_error_message());
        COUNT(s, unenrolled, 1);
        COUNT(s, calls_failed, 1);
        send_status(&cc, 1, NULL, GRPC_STATUS_PERMISSION_DENIED, ff_error_message());
    } else if (!(held = admit_call(s, &cc))) {
        ff_error(FF_ENOMEM, "'%s' has %d calls in progress, the most one site may hold "
                 "(site_max_calls): %s refused", cc.site, s->site_max_calls, mname);
        ff_log(FF_LOG_WARN, "refused %s: %s", mname, ff_error_message());
        COUNT(s, calls_failed, 1);
        send_status(&cc, 1, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, ff_error_message());
    } else if (m < 0) {
        char path[128];
        snprintf(path, sizeof path, "%.*s", (int)GRPC_SLICE_LENGTH(det->method),
                 (const char *)GRPC_SLICE_START_PTR(det->method));
        ff_log(FF_LOG_WARN, "refused unknown method '%s' from %s", path, cc.site);
        COUNT(s, unknown_method, 1);
        COUNT(s, calls_failed, 1);
        send_status(&cc, 1, NULL, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
    } else {
        c.method = mname;
        c.role = cc.role;
        c.cert_pem = cc.cert_pem;
        if (gpr_time_cmp(det->deadline, gpr_inf_future(det->deadline.clock_type)) != 0) {
            gpr_timespec rt = gpr_convert_clock_type(det->deadline, GPR_CLOCK_REALTIME);
            c.deadline_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
        }
        int has = m == FF_M_DOWNLOAD ? s->h.download != NULL
                : m == FF_M_UPLOAD ? (s->h.upload_begin && s->h.upload_end)
                : unary_handler(&s->h, m) != NULL;
        if (!has) {
            COUNT(s, unknown_method, 1);
            send_status(&cc, 1, NULL, GRPC_STATUS_UNIMPLEMENTED, "method not served");
        } else if (m == FF_M_DOWNLOAD) {
            (void)serve_download(&cc, &c);
        } else if (m == FF_M_UPLOAD) {
            (void)serve_upload(&cc, &c);
        } else {
            (void)serve_unary(&cc, &c, m);
        }
    }
    if (!cc.close_seen)
        wait_tag(&cc, TAG_CLOSE);
    grpc_call_unref(call);
    cc.call = NULL;
    if (held)
        quota_give(s, cc.site, (int)cc.role);
    if (cc.pinned)
        ff_wire_pin_wait(&cc.pin, "Download");
    if (cc.release)
        s->h.download_release(s->h.user, &c, &cc.src);
    while (cc.mem) {
        blk *b = cc.mem;
        cc.mem = b->next;
        free(b);
    }
    free(cc.cert_pem);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (;;) {
        grpc_call *call = NULL;
        grpc_call_details det;
        grpc_metadata_array md;
        grpc_call_details_init(&det);
        grpc_metadata_array_init(&md);
        int ok = grpc_server_request_call(w->s->srv, &call, &det, &md, w->cq, w->cq,
                                          TAG_REQUEST) == GRPC_CALL_OK;
        if (ok) {
            grpc_event ev = grpc_completion_queue_next(w->cq,
                                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            ok = ev.type == GRPC_OP_COMPLETE && ev.success && ev.tag == TAG_REQUEST;
        }
        if (ok) {
            serve_call(w, call, &det, &md); /* unreferences call */
            call = NULL;
        }
        if (call)
            grpc_call_unref(call);
        grpc_call_details_destroy(&det);
        grpc_metadata_array_destroy(&md);
        if (!ok)
            break;
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void drain_destroy(grpc_completion_queue *cq)
{
    if (!cq)
        return;
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

static grpc_server_credentials *server_creds(const ff_server_opts *o, const ff_consortium *cons)
{
    ff_pem_files pem;
    if (ff_pem_files_read(&pem, cons->ca, o->cert, o->key) != FF_OK)
        return NULL;
    grpc_ssl_pem_key_cert_pair pair = {.private_key = pem.key, .cert_chain = pem.cert};
    grpc_server_credentials *cr = grpc_ssl_server_credentials_create_ex(
        pem.ca, &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
    if (!cr)
        ff_error(FF_ECRYPTO, "gRPC refused the server certificate/key %s / %s", o->cert, o->key);
    ff_pem_files_free(&pem);
    return cr;
}

int ff_server_port(const ff_server *s)
{
    return s->port;
}

void ff_server_counters_get(ff_server *s, ff_server_counters *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->cnt;
    pthread_mutex_unlock(&s->lock);
    ff_conn_guard_stats g; /* process-wide: every listener of the process shares descriptors */
    ff_conn_guard_stats_get(&g);
    out->connections_refused = g.refused;
    out->connections_evicted = g.evicted;
}

const char *ff_server_failed(ff_server *s)
{
    return s && atomic_load(&s->is_failed) ? s->failed : NULL;
}

/* ---- watchdog -------------------------------------------------------------------------- */

/* Waits up to ms on the watchdog's condition; 1 when the server is stopping. */
static int watchdog_sleep(ff_server *s, int ms)
{
    pthread_mutex_lock(&s->wd_mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!atomic_load(&s->stopping) &&
           pthread_cond_timedwait(&s->wd_cv, &s->wd_mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&s->wd_mu);
    return atomic_load(&s->stopping);
}

/* One probe: a TCP connection to our own port, then up to ms for gRPC to accept it (the
 * connection guard counts accepts). 1 = accepted, 0 = not, -1 = could not try (no
 * descriptor, no address: not the listener's fault). */
static int watchdog_probe(ff_server *s, int ms)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(s->probe_host, port, &hints, &ai) != 0 || !ai)
        return -1;
    uint64_t before = ff_conn_guard_accepts(s->port);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = -1;
    if (fd >= 0 && (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)) {
        rc = 0;
        for (int waited = 0; waited < ms && !atomic_load(&s->stopping); waited += 50) {
            if (ff_conn_guard_accepts(s->port) != before) {
                rc = 1;
                break;
            }
            usleep(50000);
        }
    } else if (fd >= 0 && errno == ECONNREFUSED) {
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}

/* gRPC 1.51's listener stops for good on an accept error it does not expect, leaving a
 * process that looks alive. The watchdog probes it and records the failure; the coordinator
 * then exits non-zero and systemd restarts it (deploy/fedfuse-coordinator.service). */
static void *watchdog_main(void *arg)
{
    ff_server *s = arg;
    while (!watchdog_sleep(s, s->watchdog_ms)) {
        int ok = watchdog_probe(s, s->watchdog_ms);
        if (ok != 0 || atomic_load(&s->stopping))
            continue;
        snprintf(s->failed, sizeof s->failed, "the listener on port %d stopped accepting "
                 "connections (a probe over %s was not accepted within %d ms)", s->port,
                 s->probe_host, s->watchdog_ms);
        atomic_store(&s->is_failed, 1);
        ff_log(FF_LOG_ERROR, "watchdog: %s", s->failed);
        break;
    }
    return NULL;
}

/* The address the watchdog dials: the bound host, loopback for a wildcard. */
static void probe_host_of(const char *bind, char *out, size_t n)
{
    const char *colon = strrchr(bind, ':');
    size_t len = colon ? (size_t)(colon - bind) : strlen(bind);
    if (len >= 2 && bind[0] == '[' && bind[len - 1] == ']') {
        bind++;
        len -= 2;
    }
    snprintf(out, n, "%.*s", (int)len, bind);
    if (!out[0] || strcmp(out, "0.0.0.0") == 0 || strcmp(out, "::") == 0 ||
        strcmp(out, "localhost") == 0)
        snprintf(out, n, "%s", strcmp(out, "::") == 0 ? "::1" : "127.0.0.1");
}

static void server_free(ff_server *s)
{
    for (int i = 0; s->workers && i < s->nworkers; i++)
        drain_destroy(s->workers[i].cq);
    drain_destroy(s->shut_cq);
    if (s->srv)
        grpc_server_destroy(s->srv);
    X509_CRL_free(s->crl);
    X509_free(s->ca);
    ff_consortium_free(&s->cons);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->wd_mu);
    pthread_cond_destroy(&s->wd_cv);
    free(s->active);
    free(s->workers);
    free(s);
    grpc_shutdown();
}

static int server_setup(ff_server *s, const ff_server_opts *o)
{
    int rc;
    if (!o->bind)
        return ff_error(FF_EINVAL, "server: no bind address");
    if (o->insecure && !ff_addr_is_loopback(o->bind))
        return ff_error(FF_EPOLICY, "--insecure refused: '%s' is not a loopback address "
                        "(plaintext is for local tests only)", o->bind);
    if (!o->consortium)
        return ff_error(FF_EINVAL, "server: no consortium file");
    if ((rc = ff_consortium_load(o->consortium, &s->cons)) != FF_OK)
        return rc;
    ff_strlcpy(s->cons_path, o->consortium, sizeof s->cons_path);
    s->cons_stamp = ff_file_stamp_of(o->consortium);
    if ((rc = ff_pki_load_cert(s->cons.ca, &s->ca)) != FF_OK)
        return ff_error_prefix(rc, "%s: ca: ", o->consortium);
    if (s->cons.crl[0]) {
        s->crl_stamp = ff_file_stamp_of(s->cons.crl);
        if ((rc = ff_pki_load_crl(s->cons.crl, s->ca, &s->crl)) != FF_OK)
            return ff_error_prefix(rc, "%s: crl: ", o->consortium);
    }
    /* Each site may hold a long-poll and a transfer at once: 2 workers per site + spare. */
    if (s->nworkers <= 0)
        s->nworkers = (int)FF_MIN(FF_MAX(2 * s->cons.sites.count + 8, 16), 1024);
    if (!(s->workers = calloc((size_t)s->nworkers, sizeof *s->workers)) ||
        !(s->active = calloc((size_t)s->nworkers, sizeof *s->active)))
        return ff_error(FF_ENOMEM, "server: out of memory");
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = SERVER_MSG_LIMIT}},
        {GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 30000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 10000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         {.integer = 1000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PING_STRIKES, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_TSI_MAX_FRAME_SIZE, {.integer = 1 << 20}},
        /* Memory per transfer in flight, whatever the model's size (bench/load_bench,
         * docs/benchmarks.md "Load"): a download queues at most this much beyond the part
         * being sent, and an upload's stream may push at most the fixed window below before
         * its handler reads it (with BDP probing gRPC grows the window until a whole upload
         * fits, so N sites uploading together held N model sizes). 256 KiB still fills a
         * 5 MB/s link at 50 ms round trip. */
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, {.integer = 256 << 10}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, {.integer = 256 << 10}},
        /* A connection that has not finished TLS and HTTP/2 set-up by then is closed (gRPC's
         * default is 2 minutes): idle pre-authentication connections do not pile up. */
        {GRPC_ARG_INTEGER, GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
         {.integer = o->handshake_timeout_ms > 0 ? o->handshake_timeout_ms : 10000}},
    };
    grpc_channel_args ca = {FF_ARRAY_LEN(args), args};
    s->srv = grpc_server_create(&ca, NULL);
    s->shut_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->srv, s->shut_cq, NULL);
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].s = s;
        s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->srv, s->workers[i].cq, NULL);
    }
    if (!o->insecure && (!o->cert || !o->key))
        return ff_error(FF_EINVAL, "server: mutual TLS needs cert and key");
    if (!o->insecure && (rc = ff_pki_check_own(o->cert, o->key, s->cons.ca)) != FF_OK) {
        if (rc != FF_EPOLICY)
            return ff_error_prefix(rc, "coordinator credentials: ");
        ff_log(FF_LOG_WARN, "coordinator certificate: %s; sites will refuse it",
               ff_error_message());
    }
    grpc_server_credentials *cr = o->insecure ? grpc_insecure_server_credentials_create()
                                              : server_creds(o, &s->cons);
    if (!cr)
        return ff_error_prefix(FF_ECRYPTO, "server credentials: ");
    s->port = grpc_server_add_http2_port(s->srv, o->bind, cr);
    grpc_server_credentials_release(cr);
    if (s->port <= 0)
        return ff_error(FF_ENET, "cannot listen on '%s' (address in use or invalid)", o->bind);
    grpc_server_start(s->srv);
    int max_conns = 0;
    if ((rc = ff_conn_guard_setup(s->port, &max_conns)) != FF_OK)
        return rc;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (max_conns > 0)
        ff_log(FF_LOG_INFO, "descriptor limit %llu: at most %d connections before the oldest "
               "unauthenticated one is closed; handshake deadline %d ms",
               (unsigned long long)rl.rlim_cur, max_conns,
               o->handshake_timeout_ms > 0 ? o->handshake_timeout_ms : 10000);
    else
        ff_log(FF_LOG_WARN, "descriptor limit %llu: connection guard inactive (accept4 is not "
               "interposed in this build); the listener watchdog is off",
               (unsigned long long)rl.rlim_cur);
    return FF_OK;
}

int ff_server_start(ff_server **out, const ff_server_opts *o, const ff_server_handlers *h)
{
    *out = NULL;
    ff_transport_log_init();
    grpc_init();
    ff_server *s = calloc(1, sizeof *s);
    if (!s) {
        grpc_shutdown();
        return ff_error(FF_ENOMEM, "server: out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    s->h = *h;
    s->insecure = o->insecure;
    s->chunk = o->chunk_size ? o->chunk_size : FF_CHUNK_DEFAULT;
    s->idle_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 120000;
    s->nworkers = o->threads;
    s->site_max_calls = o->site_max_calls > 0 ? o->site_max_calls : 4;
    s->min_rate = o->upload_min_rate > 0 ? o->upload_min_rate : 65536;
    s->grace_ms = o->upload_grace_ms > 0 ? o->upload_grace_ms : 30000;
    s->watchdog_ms = o->watchdog_ms == 0 ? 30000 : o->watchdog_ms;
    pthread_mutex_init(&s->wd_mu, NULL);
    pthread_cond_init(&s->wd_cv, NULL);
    if (o->bind)
        probe_host_of(o->bind, s->probe_host, sizeof s->probe_host);
    int rc = s->chunk > FF_CHUNK_MAX ? ff_error(FF_ERANGE, "chunk_size %u exceeds %u", s->chunk,
                                                FF_CHUNK_MAX)
                                     : server_setup(s, o);
    if (rc != FF_OK) {
        if (s->srv && s->port > 0) {
            grpc_server_shutdown_and_notify(s->srv, s->shut_cq, TAG_SHUTDOWN);
            grpc_completion_queue_pluck(s->shut_cq, TAG_SHUTDOWN,
                                        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        }
        server_free(s);
        return rc;
    }
    for (int i = 0; i < s->nworkers; i++)
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) == 0)
            s->workers[i].started = 1;
    if (s->watchdog_ms > 0 && ff_conn_guard_active() &&
        pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0)
        s->watchdog_started = 1;
    ff_log(FF_LOG_INFO, "coordinator listening on port %d (%s, %zu enrolled sites, %d workers)",
           s->port, o->insecure ? "PLAINTEXT" : "mutual TLS", s->cons.sites.count, s->nworkers);
    *out = s;
    return FF_OK;
}

void ff_server_stop(ff_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    pthread_mutex_lock(&s->wd_mu);
    pthread_cond_broadcast(&s->wd_cv);
    pthread_mutex_unlock(&s->wd_mu);
    if (s->watchdog_started)
        pthread_join(s->watchdog, NULL);
    grpc_server_shutdown_and_notify(s->srv, s->shut_cq, TAG_SHUTDOWN);
    grpc_server_cancel_all_calls(s->srv);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->shut_cq,
                                                   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag == TAG_SHUTDOWN)
            break;
    }
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].started)
            pthread_join(s->workers[i].thread, NULL);
    server_free(s);
}
