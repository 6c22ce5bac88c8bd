/* The hospital's gRPC client. Every call runs synchronously on its own pluck queue with a
 * deadline; UNAVAILABLE (coordinator down, link lost, handshake refused) is retried with
 * exponential backoff and jitter, each retry logged, so a lost link shows in the log within
 * one call deadline and never hangs silently. gRPC reconnects the channel by itself. */
#include "transport_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG ((void *)1)
#define PLUCK_SLACK_MS 5000 /* the call deadline fires first; this only guards our wait */
/* gRPC gives one connection attempt (TCP, TLS, HTTP/2 set-up) GRPC_ARG_MIN_RECONNECT_BACKOFF_MS
 * at the least (its "min connect timeout"), not only the first retry's delay. Set to our
 * backoff (100-500 ms) it cut the first handshake short on a loaded machine or a long-RTT
 * link, and the call came back UNAVAILABLE with nothing wrong; so it is 10 s, as long as the
 * server's default handshake_timeout_ms. The first retry's delay stays ours (INITIAL_...). */
#define CONNECT_MIN_MS 10000

struct ff_rpc {
    grpc_channel *ch;
    char target[256];
    char site[FF_SITE_NAME_MAX];
    int insecure;
    int attempts, backoff_ms, backoff_max_ms;
    uint32_t chunk;
    pthread_mutex_t rng_lock;
    ff_rng rng;
    uint64_t tls_we, tls_peer; /* ff_tls_events counts when the client was made */
};

typedef struct {
    ff_rpc *c;
    grpc_completion_queue *cq;
    grpc_call *call;
    int64_t timeout_ms;
    grpc_metadata site_md;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code code;
    grpc_slice details;
    int have_status;
} ccall;

static int call_open_path(ccall *k, ff_rpc *c, const char *method, int timeout_ms)
{
    memset(k, 0, sizeof *k);
    k->c = c;
    k->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    k->cq = grpc_completion_queue_create_for_pluck(NULL);
    char path[128];
    snprintf(path, sizeof path, FF_METHOD_PREFIX "%s", method);
    grpc_slice ps = grpc_slice_from_copied_string(path);
    k->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, k->cq, ps, NULL,
                                       ff_deadline_ms(k->timeout_ms), NULL);
    grpc_slice_unref(ps);
    grpc_metadata_array_init(&k->init_md);
    grpc_metadata_array_init(&k->trail_md);
    k->details = grpc_empty_slice();
    k->site_md.key = grpc_slice_from_static_string(FF_SITE_METADATA);
    k->site_md.value = grpc_slice_from_copied_string(c->site);
    return k->call ? FF_OK : ff_error(FF_ENET, "cannot create a call to %s", c->target);
}

static int call_open(ccall *k, ff_rpc *c, int m, int timeout_ms)
{
    return call_open_path(k, c, ff_method_names[m], timeout_ms);
}

static int batch(ccall *k, grpc_op *ops, size_t n)
{
    if (grpc_call_start_batch(k->call, ops, n, TAG, NULL) != GRPC_CALL_OK)
        return 0;
    grpc_event ev = grpc_completion_queue_pluck(k->cq, TAG,
                                                ff_deadline_ms(k->timeout_ms + PLUCK_SLACK_MS),
                                                NULL);
    if (ev.type != GRPC_OP_COMPLETE) {
        /* Should not happen (the call deadline fires first); cancel and wait it out. */
        grpc_call_cancel(k->call, NULL);
        ev = grpc_completion_queue_pluck(k->cq, TAG, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        return 0;
    }
    return ev.success;
}

static void set_initial_md(ff_rpc *c, ccall *k, grpc_op *op)
{
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->insecure) {
        op->data.send_initial_metadata.count = 1;
        op->data.send_initial_metadata.metadata = &k->site_md;
    }
}

/* Fetches the final status (after a failed send, or at the end of a stream). */
static void finish(ccall *k)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &k->trail_md;
    op.data.recv_status_on_client.status = &k->code;
    op.data.recv_status_on_client.status_details = &k->details;
    if (!k->have_status) {
        k->have_status = 1;
        if (!batch(k, &op, 1)) {
            k->code = GRPC_STATUS_UNAVAILABLE;
        }
    }
}

static void call_close(ccall *k)
{
    if (k->call)
        grpc_call_unref(k->call);
    if (k->cq) {
        grpc_completion_queue_shutdown(k->cq);
        while (grpc_completion_queue_pluck(k->cq, TAG, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(k->cq);
    }
    grpc_metadata_array_destroy(&k->init_md);
    grpc_metadata_array_destroy(&k->trail_md);
    grpc_slice_unref(k->details);
    grpc_slice_unref(k->site_md.value);
}

/* Turns a non-OK status into an ff_error naming the call and the coordinator. The message for
 * a refused handshake says so: gRPC only reports "Socket closed"/"handshake" to the client. */
static int status_error(ccall *k, const char *what)
{
    char det[512];
    snprintf(det, sizeof det, "%.*s", (int)GRPC_SLICE_LENGTH(k->details),
             (const char *)GRPC_SLICE_START_PTR(k->details));
    int rc = ff_status_from_grpc(k->code);
    /* Refused during connection set-up: the channel never became ready and the socket was
     * closed by the peer (gRPC reports no more than that). A link lost mid-call does not say
     * "failed to connect". "tcp handshaker shutdown" is the TCP connection reset before TLS
     * began (a link or proxy dropping it, tests/fed/fault_net.sh link_cut): not a refusal. */
    if (k->code == GRPC_STATUS_UNAVAILABLE && !k->c->insecure &&
        strstr(det, "failed to connect") && !strstr(det, "tcp handshaker") &&
        (strstr(det, "andshake") || strstr(det, "Socket closed") || strstr(det, "SSL") ||
         strstr(det, "ssl") || strstr(det, "erify peer"))) {
        /* Which side refused: the peer's alert, else our own certificate check. */
        ff_tls_events ev;
        ff_tls_events_get(&ev);
        /* TLS 1.3: our handshake completed and the coordinator then closed the socket (it
         * checks our certificate last). Else the peer's alert, else our own refusal. */
        int peer = strstr(det, "Socket closed") != NULL || ev.peer_refused != k->c->tls_peer;
        int ours = strstr(det, "erify peer callback") != NULL ||
                   strstr(det, "certificate verify failed") != NULL ||
                   (!peer && ev.we_refused != k->c->tls_we);
        if (peer && !ours)
            return ff_error(rc, "%s to %s: TLS handshake refused by coordinator: it did not "
                            "accept this site's certificate (%s; check it with `fedfuse pki "
                            "check`): %s", what, k->c->target,
                            ev.peer_refused != k->c->tls_peer ? ev.peer_why
                                                              : "it closed the connection",
                            det);
        if (ours)
            return ff_error(rc, "%s to %s: TLS handshake refused by this site: the server's "
                            "certificate was not accepted: %s: %s", what, k->c->target,
                            ev.we_why, det);
        return ff_error(rc, "%s to %s: TLS handshake failed (refused by one side; the log "
                        "says which): %s", what, k->c->target, det);
    }
    return ff_error(rc, "%s to %s: %s: %s", what, k->c->target, ff_grpc_code_name(k->code),
                    det[0] ? det : "(no details)");
}

/* ---- retry loop ------------------------------------------------------------------------ */

typedef int (*attempt_fn)(ff_rpc *c, void *arg, grpc_status_code *code);

static int backoff_delay(ff_rpc *c, int k)
{
    double base = (double)c->backoff_ms;
    for (int i = 0; i < k && base < c->backoff_max_ms; i++)
        base *= 2;
    base = FF_MIN(base, (double)c->backoff_max_ms);
    pthread_mutex_lock(&c->rng_lock);
    double j = 0.5 + ff_rng_uniform_d(&c->rng); /* 0.5x .. 1.5x: spreads reconnect storms */
    pthread_mutex_unlock(&c->rng_lock);
    return (int)(base * j);
}

static int with_retry(ff_rpc *c, const char *what, attempt_fn fn, void *arg)
{
    int rc = FF_ENET;
    for (int k = 0; k < c->attempts; k++) {
        grpc_status_code code = GRPC_STATUS_OK;
        rc = fn(c, arg, &code);
        if (rc == FF_OK || code != GRPC_STATUS_UNAVAILABLE)
            return rc;
        if (k + 1 == c->attempts)
            break;
        int d = backoff_delay(c, k);
        ff_log(FF_LOG_WARN, "%s: attempt %d/%d failed: %s; retrying in %d ms", what, k + 1,
               c->attempts, ff_error_message(), d);
        struct timespec ts = {d / 1000, (long)(d % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    ff_log(FF_LOG_ERROR, "%s: giving up after %d attempts: %s", what, c->attempts,
           ff_error_message());
    return ff_error_prefix(rc, "after %d attempts: ", c->attempts);
}

/* ---- unary ----------------------------------------------------------------------------- */

typedef struct {
    int m;
    const char *raw_method;
    const ProtobufCMessage *req;
    const void *raw;
    size_t raw_len;
    const ProtobufCMessageDescriptor *rd;
    ProtobufCMessage **reply;
    int timeout_ms;
} unary_arg;

static int unary_attempt(ff_rpc *c, void *arg, grpc_status_code *code)
{
    unary_arg *a = arg;
    ccall k;
    grpc_byte_buffer *resp = NULL;
    int rc = a->raw_method ? call_open_path(&k, c, a->raw_method, a->timeout_ms)
                           : call_open(&k, c, a->m, a->timeout_ms);
    if (rc != FF_OK) {
        *code = GRPC_STATUS_UNAVAILABLE;
        return rc;
    }
    grpc_byte_buffer *req;
    if (a->req) {
        req = ff_wire_pack(a->req);
    } else {
        grpc_slice s = grpc_slice_from_copied_buffer(a->raw, a->raw_len);
        req = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    set_initial_md(c, &k, &ops[0]);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &k.init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &k.trail_md;
    ops[5].data.recv_status_on_client.status = &k.code;
    ops[5].data.recv_status_on_client.status_details = &k.details;
    k.code = GRPC_STATUS_UNAVAILABLE;
    if (!batch(&k, ops, 6))
        k.code = GRPC_STATUS_UNAVAILABLE;
    k.have_status = 1;
    grpc_byte_buffer_destroy(req);
    *code = k.code;
    const char *mname = a->raw_method ? a->raw_method : ff_method_names[a->m];
    if (k.code != GRPC_STATUS_OK)
        rc = status_error(&k, mname);
    else if (a->rd && !resp)
        rc = ff_error(FF_EFORMAT, "%s to %s: no reply message", mname, c->target);
    else if (a->rd && (rc = ff_wire_unpack(resp, a->rd, a->reply)) != FF_OK)
        ff_error_prefix(rc, "%s reply from %s: ", mname, c->target);
    if (resp)
        grpc_byte_buffer_destroy(resp);
    call_close(&k);
    return rc;
}

static int unary(ff_rpc *c, int m, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *rd, ProtobufCMessage **reply, int timeout_ms)
{
    unary_arg a = {.m = m, .req = req, .rd = rd, .reply = reply, .timeout_ms = timeout_ms};
    *reply = NULL;
    return with_retry(c, ff_method_names[m], unary_attempt, &a);
}

int ff_rpc_raw_call(ff_rpc *c, const char *method, const void *req, size_t len,
                    int timeout_ms, int *grpc_status)
{
    unary_arg a = {.raw_method = method, .raw = req, .raw_len = len, .timeout_ms = timeout_ms};
    grpc_status_code code = GRPC_STATUS_OK;
    int rc = unary_attempt(c, &a, &code);
    *grpc_status = (int)code;
    return rc;
}

int ff_rpc_hello(ff_rpc *c, const Fedfuse__HelloRequest *req, Fedfuse__HelloReply **reply,
                 int timeout_ms)
{
    return unary(c, FF_M_HELLO, &req->base, &fedfuse__hello_reply__descriptor,
                 (ProtobufCMessage **)reply, timeout_ms);
}

int ff_rpc_get_task(ff_rpc *c, const Fedfuse__TaskRequest *req, Fedfuse__Task **reply,
                    int timeout_ms)
{
    return unary(c, FF_M_GET_TASK, &req->base, &fedfuse__task__descriptor,
                 (ProtobufCMessage **)reply, timeout_ms);
}

int ff_rpc_submit_eval(ff_rpc *c, const Fedfuse__EvalSubmission *req, Fedfuse__Ack **reply,
                       int timeout_ms)
{
    return unary(c, FF_M_SUBMIT_EVAL, &req->base, &fedfuse__ack__descriptor,
                 (ProtobufCMessage **)reply, timeout_ms);
}

int ff_rpc_decline(ff_rpc *c, const Fedfuse__DeclineRequest *req, Fedfuse__Ack **reply,
                   int timeout_ms)
{
    return unary(c, FF_M_DECLINE, &req->base, &fedfuse__ack__descriptor,
                 (ProtobufCMessage **)reply, timeout_ms);
}

int ff_rpc_secagg(ff_rpc *c, const Fedfuse__SecAggEnvelope *req,
                  Fedfuse__SecAggEnvelope **reply, int timeout_ms)
{
    return unary(c, FF_M_SECAGG, &req->base, &fedfuse__sec_agg_envelope__descriptor,
                 (ProtobufCMessage **)reply, timeout_ms);
}

int ff_rpc_status(ff_rpc *c, Fedfuse__StatusReply **reply, int timeout_ms)
{
    Fedfuse__StatusRequest req = FEDFUSE__STATUS_REQUEST__INIT;
    return unary(c, FF_M_STATUS, &req.base, &fedfuse__status_reply__descriptor,
                 (ProtobufCMessage **)reply, timeout_ms);
}

/* ---- Download -------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *sha;
    uint64_t size;
    ff_sink *sink;
    int timeout_ms;
    uint64_t got;     /* bytes delivered so far, across attempts */
    uint64_t total;   /* from the first header */
    ff_sha256_ctx *h; /* running hash of bytes 0..got */
} dl_arg;

static int dl_header(ff_rpc *c, dl_arg *a, grpc_byte_buffer *bb)
{
    Fedfuse__DownloadPart *p = NULL;
    int rc = ff_wire_unpack(bb, &fedfuse__download_part__descriptor, (ProtobufCMessage **)&p);
    if (rc != FF_OK)
        return rc;
    const Fedfuse__DownloadHeader *h = p->header;
    if (p->part_case != FEDFUSE__DOWNLOAD_PART__PART_HEADER || !h)
        rc = ff_error(FF_EFORMAT, "Download from %s: stream does not start with a header",
                      c->target);
    else if (h->sha256.len != FF_SHA256_BYTES || memcmp(h->sha256.data, a->sha, 32) != 0)
        rc = ff_error(FF_EFORMAT, "Download from %s: coordinator sent another blob", c->target);
    else if (h->offset != a->got)
        rc = ff_error(FF_EFORMAT, "Download from %s: resumed at %llu, asked %llu", c->target,
                      (unsigned long long)h->offset, (unsigned long long)a->got);
    else if ((a->size && h->total_size != a->size) ||
             (a->sink->buf && h->total_size > a->sink->cap))
        rc = ff_error(FF_ERANGE, "Download from %s: blob of %llu bytes, expected %llu (room "
                      "for %llu)", c->target, (unsigned long long)h->total_size,
                      (unsigned long long)a->size, (unsigned long long)a->sink->cap);
    else if (a->total && h->total_size != a->total)
        rc = ff_error(FF_EFORMAT, "Download from %s: size changed between attempts", c->target);
    else
        a->total = h->total_size;
    ff_msg_free(p);
    return rc;
}

static int dl_attempt(ff_rpc *c, void *arg, grpc_status_code *code)
{
    dl_arg *a = arg;
    ccall k;
    int rc = call_open(&k, c, FF_M_DOWNLOAD, a->timeout_ms), ok;
    if (rc != FF_OK) {
        *code = GRPC_STATUS_UNAVAILABLE;
        return rc;
    }
    if (a->got && a->sink->rewind && (rc = a->sink->rewind(a->sink->ctx, a->got)) != FF_OK)
        goto out;
    if (a->got)
        ff_log(FF_LOG_INFO, "Download: resuming at byte %llu", (unsigned long long)a->got);
    Fedfuse__DownloadRequest req = FEDFUSE__DOWNLOAD_REQUEST__INIT;
    req.sha256.data = (uint8_t *)a->sha;
    req.sha256.len = FF_SHA256_BYTES;
    req.offset = a->got;
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    set_initial_md(c, &k, &ops[0]);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = ff_wire_pack(&req.base);
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &k.init_md;
    ok = batch(&k, ops, 4);
    grpc_byte_buffer_destroy(ops[1].data.send_message.send_message);
    int first = 1;
    while (ok && rc == FF_OK) {
        grpc_byte_buffer *bb = NULL;
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_RECV_MESSAGE;
        ops[0].data.recv_message.recv_message = &bb;
        if (!(ok = batch(&k, ops, 1)) || !bb)
            break;
        if (first)
            rc = dl_header(c, a, bb);
        else if (!ff_wire_is_data(bb))
            rc = ff_error(FF_EFORMAT, "Download from %s: unexpected header mid-stream",
                          c->target);
        else
            rc = ff_wire_data_deliver(bb, a->sink, &a->got, a->total, a->h);
        first = 0;
        grpc_byte_buffer_destroy(bb);
    }
    if (rc != FF_OK)
        grpc_call_cancel(k.call, NULL);
    finish(&k);
    *code = k.code;
    if (rc == FF_OK && k.code != GRPC_STATUS_OK)
        rc = status_error(&k, "Download");
    else if (rc == FF_OK && (first || a->got != a->total))
        rc = ff_error(FF_EFORMAT, "Download from %s: stream ended at %llu of %llu bytes",
                      c->target, (unsigned long long)a->got, (unsigned long long)a->total);
    if (rc != FF_OK && k.code == GRPC_STATUS_UNAVAILABLE)
        ff_error_prefix(rc, "link lost after %llu of %llu bytes: ",
                        (unsigned long long)a->got, (unsigned long long)a->total);
out:
    call_close(&k);
    return rc;
}

int ff_rpc_download(ff_rpc *c, const uint8_t sha256[FF_SHA256_BYTES], uint64_t size,
                    ff_sink *sink, int timeout_ms)
{
    if (!sink->buf && !sink->write)
        return ff_error(FF_EINVAL, "download: sink has neither buf nor write");
    dl_arg a = {.sha = sha256, .size = size, .sink = sink, .timeout_ms = timeout_ms};
    int rc = ff_sha256_new(&a.h);
    if (rc != FF_OK)
        return rc;
    double t0 = ff_now();
    rc = with_retry(c, "Download", dl_attempt, &a);
    uint8_t got[FF_SHA256_BYTES];
    ff_sha256_final(a.h, got);
    sink->received = a.got;
    if (rc == FF_OK && !ff_ct_equal(got, sha256, FF_SHA256_BYTES))
        rc = ff_error(FF_ECRYPTO, "Download from %s: sha256 of the %llu bytes received does not "
                      "match the requested blob", c->target, (unsigned long long)a.got);
    if (rc == FF_OK) {
        char hex[FF_SHA256_HEX];
        ff_hex(sha256, 8, hex);
        double dt = ff_now() - t0;
        ff_log(FF_LOG_INFO, "downloaded %llu bytes (sha256 %s...) in %.2f s, %.0f MB/s",
               (unsigned long long)a.got, hex, dt, dt > 0 ? (double)a.got / dt / 1e6 : 0.0);
    }
    return rc;
}

/* ---- Upload ---------------------------------------------------------------------------- */

typedef struct {
    const Fedfuse__UploadHeader *hdr;
    const ff_source *src;
    Fedfuse__UploadAck **ack;
    int timeout_ms;
} ul_arg;

static int ul_attempt(ff_rpc *c, void *arg, grpc_status_code *code)
{
    ul_arg *a = arg;
    ccall k;
    grpc_byte_buffer *resp = NULL;
    int rc = call_open(&k, c, FF_M_UPLOAD, a->timeout_ms);
    if (rc != FF_OK) {
        *code = GRPC_STATUS_UNAVAILABLE;
        return rc;
    }
    ff_wire_pin pin;
    ff_wire_pin_init(&pin);
    Fedfuse__UploadPart part;
    fedfuse__upload_part__init(&part);
    part.part_case = FEDFUSE__UPLOAD_PART__PART_HEADER;
    part.header = (Fedfuse__UploadHeader *)a->hdr;
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    set_initial_md(c, &k, &ops[0]);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = ff_wire_pack(&part.base);
    int ok = batch(&k, ops, 2);
    grpc_byte_buffer_destroy(ops[1].data.send_message.send_message);
    uint64_t off = 0, total = a->src->size;
    while (ok && off < total) {
        size_t n = (size_t)FF_MIN((uint64_t)c->chunk, total - off);
        grpc_byte_buffer *bb;
        if ((rc = ff_wire_data_part(a->src, off, n, &pin, &bb)) != FF_OK)
            break;
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = bb;
        ok = batch(&k, ops, 1);
        grpc_byte_buffer_destroy(bb);
        off += n;
    }
    if (rc != FF_OK) {
        grpc_call_cancel(k.call, NULL);
        finish(&k);
        goto out;
    }
    memset(ops, 0, sizeof ops);
    size_t nops = 0;
    if (ok)
        ops[nops++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[nops].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[nops++].data.recv_initial_metadata.recv_initial_metadata = &k.init_md;
    ops[nops].op = GRPC_OP_RECV_MESSAGE;
    ops[nops++].data.recv_message.recv_message = &resp;
    ops[nops].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[nops].data.recv_status_on_client.trailing_metadata = &k.trail_md;
    ops[nops].data.recv_status_on_client.status = &k.code;
    ops[nops++].data.recv_status_on_client.status_details = &k.details;
    k.code = GRPC_STATUS_UNAVAILABLE;
    if (!batch(&k, ops, nops))
        k.code = GRPC_STATUS_UNAVAILABLE;
    k.have_status = 1;
    *code = k.code;
    if (k.code != GRPC_STATUS_OK) {
        rc = status_error(&k, "Upload");
        if (k.code == GRPC_STATUS_UNAVAILABLE)
            ff_error_prefix(rc, "link lost after sending %llu of %llu bytes: ",
                            (unsigned long long)off, (unsigned long long)total);
    } else if (!resp) {
        rc = ff_error(FF_EFORMAT, "Upload to %s: no acknowledgement", c->target);
    } else {
        Fedfuse__UploadAck *ack = NULL;
        rc = ff_wire_unpack(resp, &fedfuse__upload_ack__descriptor, (ProtobufCMessage **)&ack);
        if (rc == FF_OK && (ack->received != total || ack->sha256.len != FF_SHA256_BYTES ||
                            memcmp(ack->sha256.data, a->hdr->sha256.data, 32) != 0))
            rc = ff_error(FF_ECRYPTO, "Upload to %s: acknowledgement does not match what was "
                          "sent", c->target);
        if (rc == FF_OK && a->ack)
            *a->ack = ack;
        else
            ff_msg_free(ack);
    }
out:
    if (resp)
        grpc_byte_buffer_destroy(resp);
    call_close(&k);
    /* The caller may free the source once we return: wait for gRPC's last reference. */
    ff_wire_pin_wait(&pin, "Upload");
    return rc;
}

int ff_rpc_upload(ff_rpc *c, const Fedfuse__UploadHeader *hdr, ff_source *src,
                  Fedfuse__UploadAck **ack, int timeout_ms)
{
    static const uint8_t zero[FF_SHA256_BYTES];
    if (ack)
        *ack = NULL;
    if (!src->buf && !src->read)
        return ff_error(FF_EINVAL, "upload: source has neither buf nor read");
    if (memcmp(src->sha256, zero, sizeof zero) == 0) {
        if (!src->buf)
            return ff_error(FF_EINVAL, "upload: callback source needs its sha256");
        ff_sha256(src->buf, src->size, src->sha256);
    }
    Fedfuse__UploadHeader h = *hdr;
    h.total_size = src->size;
    h.sha256.data = src->sha256;
    h.sha256.len = FF_SHA256_BYTES;
    ul_arg a = {.hdr = &h, .src = src, .ack = ack, .timeout_ms = timeout_ms};
    double t0 = ff_now();
    int rc = with_retry(c, "Upload", ul_attempt, &a);
    if (rc == FF_OK) {
        double dt = ff_now() - t0;
        ff_log(FF_LOG_INFO, "uploaded %llu bytes (round %u) in %.2f s, %.0f MB/s",
               (unsigned long long)src->size, hdr->round, dt,
               dt > 0 ? (double)src->size / dt / 1e6 : 0.0);
    }
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/* Runs after gRPC has verified the chain: the server must hold the coordinator role (a site,
 * operator or audit certificate of the same CA is not the coordinator). */
static int verify_coordinator(const char *target, const char *peer_pem, void *user)
{
    (void)user;
    X509 *x = NULL;
    int rc = peer_pem ? ff_pki_cert_from_pem(peer_pem, strlen(peer_pem), &x) : FF_EFORMAT;
    if (rc == FF_OK)
        rc = ff_pki_check_role(x, FF_PKI_COORDINATOR, NULL);
    X509_free(x);
    if (rc != FF_OK) {
        char why[300];
        snprintf(why, sizeof why, "%s", ff_error_message());
        ff_tls_note(0, why);
        ff_log(FF_LOG_WARN, "refused the server at %s: %s", target ? target : "?", why);
        ff_error_clear();
    }
    return rc != FF_OK;
}

static grpc_channel_credentials *client_creds(const ff_rpc_opts *o)
{
    ff_pem_files pem;
    if (ff_pem_files_read(&pem, o->ca, o->cert, o->key) != FF_OK)
        return NULL;
    grpc_ssl_pem_key_cert_pair pair = {.private_key = pem.key, .cert_chain = pem.cert};
    verify_peer_options vo = {.verify_peer_callback = verify_coordinator};
    grpc_channel_credentials *cr = grpc_ssl_credentials_create(pem.ca, &pair, &vo, NULL);
    if (!cr)
        ff_error(FF_ECRYPTO, "gRPC refused the site certificate/key %s / %s", o->cert, o->key);
    ff_pem_files_free(&pem);
    return cr;
}

int ff_rpc_new(ff_rpc **out, const ff_rpc_opts *o)
{
    *out = NULL;
    if (!o->target || strlen(o->target) >= 256)
        return ff_error(FF_EINVAL, "client: bad coordinator address");
    if (o->insecure && !ff_addr_is_loopback(o->target))
        return ff_error(FF_EPOLICY, "--insecure refused: '%s' is not a loopback address "
                        "(plaintext is for local tests only)", o->target);
    ff_rpc *c = calloc(1, sizeof *c);
    if (!c)
        return ff_error(FF_ENOMEM, "client: out of memory");
    ff_transport_log_init();
    grpc_init();
    snprintf(c->target, sizeof c->target, "%s", o->target);
    c->insecure = o->insecure;
    if (o->insecure_site)
        snprintf(c->site, sizeof c->site, "%s", o->insecure_site);
    c->attempts = o->attempts > 0 ? o->attempts : 6;
    c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 500;
    c->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 15000;
    c->chunk = o->chunk_size ? FF_MIN(o->chunk_size, FF_CHUNK_MAX) : FF_CHUNK_DEFAULT;
    pthread_mutex_init(&c->rng_lock, NULL);
    ff_tls_events ev;
    ff_tls_events_get(&ev);
    c->tls_we = ev.we_refused;
    c->tls_peer = ev.peer_refused;
    ff_rng_init(&c->rng, (uint64_t)(ff_wall_time() * 1e6), (uint64_t)(uintptr_t)c);
    int ka = o->keepalive_ms > 0 ? o->keepalive_ms : 15000;
    int kt = o->keepalive_timeout_ms > 0 ? o->keepalive_timeout_ms : 5000;
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = 2 * FF_MSG_MAX}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = ka}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = kt}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = c->backoff_ms}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
         {.integer = c->backoff_ms > CONNECT_MIN_MS ? c->backoff_ms : CONNECT_MIN_MS}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = c->backoff_max_ms}},
        {GRPC_ARG_INTEGER, GRPC_ARG_TSI_MAX_FRAME_SIZE, {.integer = 1 << 20}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, {.integer = 1 << 20}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, {.integer = 8 << 20}},
        {GRPC_ARG_STRING, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, {.string = NULL}},
        {GRPC_ARG_STRING, GRPC_ARG_HTTP_PROXY, {.string = NULL}},
    };
    /* the optional two last: name override, then the proxy (gRPC tunnels with HTTP CONNECT
     * and runs TLS inside the tunnel, so the proxy sees only ciphertext) */
    size_t nargs = FF_ARRAY_LEN(args) - 2;
    if (o->server_name)
        args[nargs++].value.string = (char *)o->server_name;
    char proxy[300];
    if (o->proxy && o->proxy[0]) {
        snprintf(proxy, sizeof proxy, "%s%s", strstr(o->proxy, "://") ? "" : "http://", o->proxy);
        args[nargs] = args[FF_ARRAY_LEN(args) - 1];
        args[nargs++].value.string = proxy;
    }
    grpc_channel_args ca = {nargs, args};
    /* Our own files, checked here so a wrong path or an expired certificate gets a clear
     * message instead of gRPC's "empty address list" on the first call. */
    int rc = o->insecure ? FF_OK
           : (!o->ca || !o->cert || !o->key)
               ? ff_error(FF_EINVAL, "client: mutual TLS needs ca, cert and key")
               : ff_pki_check_own(o->cert, o->key, o->ca);
    if (rc == FF_EPOLICY) {
        ff_log(FF_LOG_WARN, "site certificate: %s; the coordinator will likely refuse it",
               ff_error_message());
        rc = FF_OK;
    }
    if (rc != FF_OK) {
        ff_error_prefix(rc, "site credentials: ");
        ff_rpc_free(c);
        return rc;
    }
    grpc_channel_credentials *cr = o->insecure ? grpc_insecure_credentials_create()
                                               : client_creds(o);
    if (!cr) {
        rc = ff_error_prefix(FF_ECRYPTO, "site credentials: ");
        ff_rpc_free(c);
        return rc;
    }
    c->ch = grpc_channel_create(o->target, cr, &ca);
    grpc_channel_credentials_release(cr);
    if (!c->ch) {
        ff_rpc_free(c);
        return ff_error(FF_ENET, "cannot create a channel to %s", o->target);
    }
    *out = c;
    return FF_OK;
}

void ff_rpc_free(ff_rpc *c)
{
    if (!c)
        return;
    if (c->ch)
        grpc_channel_destroy(c->ch);
    pthread_mutex_destroy(&c->rng_lock);
    free(c);
    grpc_shutdown();
}
