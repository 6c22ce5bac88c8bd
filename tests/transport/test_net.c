/* A real coordinator and real clients on loopback with mutual TLS: the good path and every
 * way a peer can be refused. Server-side reasons are checked in the server's log. */
#include "tnet.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;
static char logpath[512];
static tnet_coord tc;

static int setup(void **state)
{
    (void)state;
    dir = ft_tmpdir();
    tnet_pki(dir);
    snprintf(logpath, sizeof logpath, "%s/server.log", dir);
    if (ff_log_open(FF_LOG_INFO, FF_LOG_PLAIN, logpath, "test") != FF_OK)
        return -1;
    memset(&tc, 0, sizeof tc);
    tc.blob_size = 3u << 20 | 12345; /* not a multiple of the chunk size */
    tc.blob = malloc(tc.blob_size);
    tnet_fill(0, tc.blob, tc.blob_size);
    ff_sha256(tc.blob, tc.blob_size, tc.blob_sha);
    tc.upload_cap = 8u << 20;
    tc.upload_buf = malloc(tc.upload_cap);
    tc.current_round = 2;
    tnet_coord_start(&tc, dir, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tnet_coord_stop(&tc);
    free(tc.blob);
    free(tc.upload_buf);
    ff_log_close();
    if (!getenv("FF_KEEP"))
        ft_rmtree(dir);
    return 0;
}

static int hello(ff_rpc *c, Fedfuse__HelloReply **r)
{
    Fedfuse__HelloRequest q = FEDFUSE__HELLO_REQUEST__INIT;
    q.protocol_version = FF_PROTOCOL_VERSION;
    q.software_version = (char *)FF_VERSION;
    return ff_rpc_hello(c, &q, r, 5000);
}

static void test_good_path(void **state)
{
    (void)state;
    ff_rpc *c = tnet_client(dir, "hospital-a", tc.addr, 3);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_OK);
    assert_string_equal(r->site, "hospital-a"); /* the server saw our certificate's CN */
    assert_string_equal(r->consortium, "test-consortium");
    ff_msg_free(r);

    Fedfuse__TaskRequest tq = FEDFUSE__TASK_REQUEST__INIT;
    tq.wait_ms = 50;
    Fedfuse__Task *t = NULL;
    double before_ms = ff_wall_time() * 1e3;
    assert_int_equal(ff_rpc_get_task(c, &tq, &t, 5000), FF_OK);
    double after_ms = ff_wall_time() * 1e3;
    /* The handler saw the client's deadline (5 s from the call) on the wall clock. The call
     * started somewhere between before_ms and after_ms; bounding by both (not by before_ms
     * alone) keeps the check exact however long a loaded machine takes to make the call. */
    assert_true(tc.last_deadline_ms > before_ms + 4000 && tc.last_deadline_ms < after_ms + 6000);
    assert_int_equal(t->model_size, tc.blob_size);
    assert_int_equal(t->phase, FEDFUSE__PHASE__PHASE_TRAIN);

    /* Download into a buffer: bytes equal the server's blob (independent memcmp). */
    uint8_t *buf = malloc(tc.blob_size);
    ff_sink sink = {.buf = buf, .cap = tc.blob_size};
    assert_int_equal(ff_rpc_download(c, t->model_sha256.data, t->model_size, &sink, 10000),
                     FF_OK);
    assert_int_equal(sink.received, tc.blob_size);
    assert_memory_equal(buf, tc.blob, tc.blob_size);
    ff_msg_free(t);

    /* Upload a buffer; the server stores it; bytes equal. */
    for (size_t i = 0; i < tc.blob_size; i++)
        buf[i] ^= 0x5a;
    ff_source src = {.buf = buf, .size = tc.blob_size};
    Fedfuse__UploadHeader uh = FEDFUSE__UPLOAD_HEADER__INIT;
    uh.run_id = (char *)"run-1";
    uh.round = 2;
    uh.example_count = 100;
    Fedfuse__UploadAck *ack = NULL;
    int before = atomic_load(&tc.uploads_ok);
    assert_int_equal(ff_rpc_upload(c, &uh, &src, &ack, 10000), FF_OK);
    assert_int_equal(ack->received, tc.blob_size);
    ff_msg_free(ack);
    assert_int_equal(atomic_load(&tc.uploads_ok), before + 1);
    assert_memory_equal(tc.upload_buf, buf, tc.blob_size);

    /* Replay of an old round is refused and counted. */
    uh.round = 1;
    assert_int_equal(ff_rpc_upload(c, &uh, &src, NULL, 10000), FF_ESTATE);
    ft_assert_error_has("round 1 is over");
    ff_server_counters k;
    ff_server_counters_get(tc.srv, &k);
    assert_true(k.replayed >= 1);

    /* Status carries the counters. */
    Fedfuse__StatusReply *st = NULL;
    assert_int_equal(ff_rpc_status(c, &st, 5000), FF_OK);
    int found = 0;
    for (size_t i = 0; i < st->n_counters; i++)
        if (strcmp(st->counters[i]->name, "replayed") == 0 && st->counters[i]->value >= 1)
            found = 1;
    assert_true(found);
    ff_msg_free(st);
    free(buf);
    ff_rpc_free(c);
}

/* A certificate the TLS layer refuses: the client gets the handshake message quickly. */
static void expect_handshake_refused(const char *name)
{
    ff_rpc *c = tnet_client(dir, name, tc.addr, 1);
    Fedfuse__HelloReply *r = NULL;
    double t0 = ff_now();
    assert_int_equal(hello(c, &r), FF_ENET);
    assert_true(ff_now() - t0 < 5.0);
    ft_assert_error_has("TLS handshake refused by coordinator");
    assert_null(r);
    ff_rpc_free(c);
}

static void test_foreign_ca(void **state)
{
    (void)state;
    expect_handshake_refused("foreign");
    assert_true(tnet_file_has(logpath, "andshake"));
}

static void test_expired(void **state)
{
    (void)state;
    expect_handshake_refused("expired");
    /* gRPC 1.51 reports only "certificate verify failed"; our log adds what it means. */
    assert_true(tnet_file_has(logpath, "refused at the TLS handshake: not issued by the "
                                       "consortium CA, expired"));
}

static void test_unenrolled(void **state)
{
    (void)state;
    ff_rpc *c = tnet_client(dir, "stranger", tc.addr, 3);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_EPOLICY);
    ft_assert_error_has("not enrolled in consortium 'test-consortium'");
    ff_server_counters k;
    ff_server_counters_get(tc.srv, &k);
    assert_true(k.unenrolled >= 1);
    assert_true(tnet_file_has(logpath, "site 'stranger' is not enrolled"));
    ff_rpc_free(c);
}

static void test_revoked(void **state)
{
    (void)state;
    ff_rpc *c = tnet_client(dir, "revoked", tc.addr, 3);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_EPOLICY);
    ft_assert_error_has("certificate revoked");
    ff_server_counters k;
    ff_server_counters_get(tc.srv, &k);
    assert_true(k.revoked >= 1);
    assert_true(tnet_file_has(logpath, "refused Hello: site 'revoked': certificate rejected: "
                                       "certificate revoked"));
    ff_rpc_free(c);
}

static void test_revocation_takes_effect_live(void **state)
{
    (void)state;
    ff_rpc *c = tnet_client(dir, "hospital-b", tc.addr, 3);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_OK);
    ff_msg_free(r);
    struct timespec ts = {1, 100 * 1000000L}; /* CRL mtime has 1 s resolution */
    nanosleep(&ts, NULL);
    assert_int_equal(ff_pki_revoke(ft_path(dir, "ca"), ft_path(dir, "hospital-b/hospital-b.crt")),
                     FF_OK);
    nanosleep(&ts, NULL);
    assert_int_equal(hello(c, &r), FF_EPOLICY);
    ft_assert_error_has("revoked");
    ff_rpc_free(c);
}

/* A Hello made with gRPC C core directly (not ff_rpc) to target, over mutual TLS with site
 * NAME's certificate (NAME NULL: plaintext), carrying the plaintext-mode "ff-site" header set
 * to SPOOF. Returns the gRPC status; on OK, the site the coordinator says it saw is copied to
 * seen. */
static int raw_hello_spoofed(const char *target, const char *name, const char *spoof, char *seen,
                             size_t cap)
{
    char cert[512], key[512], ca[512];
    char *pc = NULL, *pk = NULL, *pa = NULL;
    size_t n;
    grpc_init();
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    if (name) {
        snprintf(cert, sizeof cert, "%s/%s/%s.crt", dir, name, name);
        snprintf(key, sizeof key, "%s/%s/%s.key", dir, name, name);
        snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
        assert_int_equal(ff_file_read_all(cert, 1 << 20, &pc, &n), FF_OK);
        assert_int_equal(ff_file_read_all(key, 1 << 20, &pk, &n), FF_OK);
        assert_int_equal(ff_file_read_all(ca, 1 << 20, &pa, &n), FF_OK);
        grpc_ssl_pem_key_cert_pair pair = {.private_key = pk, .cert_chain = pc};
        grpc_channel_credentials_release(cr);
        cr = grpc_ssl_credentials_create(pa, &pair, NULL, NULL);
    }
    grpc_arg arg = {GRPC_ARG_STRING, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, {.string = "localhost"}};
    grpc_channel_args ca_args = {1, &arg};
    grpc_channel *ch = grpc_channel_create(target, cr, &ca_args);
    grpc_channel_credentials_release(cr);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice method = grpc_slice_from_static_string("/fedfuse.Coordinator/Hello");
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                               gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                            gpr_time_from_seconds(5, GPR_TIMESPAN)),
                                               NULL);
    Fedfuse__HelloRequest q = FEDFUSE__HELLO_REQUEST__INIT;
    q.protocol_version = FF_PROTOCOL_VERSION;
    q.software_version = (char *)FF_VERSION;
    uint8_t body[256];
    size_t len = fedfuse__hello_request__pack(&q, body);
    grpc_slice bs = grpc_slice_from_copied_buffer((const char *)body, len);
    grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&bs, 1);
    grpc_slice_unref(bs);
    grpc_metadata md = {.key = grpc_slice_from_static_string("ff-site"),
                        .value = grpc_slice_from_copied_string(spoof)};
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *resp = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    assert_int_equal(grpc_call_start_batch(call, ops, 6, (void *)1, NULL), GRPC_CALL_OK);
    grpc_event ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                NULL);
    assert_int_equal(ev.type, GRPC_OP_COMPLETE);
    seen[0] = 0;
    if (code == GRPC_STATUS_OK && resp) {
        grpc_byte_buffer_reader rd;
        assert_true(grpc_byte_buffer_reader_init(&rd, resp));
        grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
        Fedfuse__HelloReply *r =
            fedfuse__hello_reply__unpack(NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
        assert_non_null(r);
        snprintf(seen, cap, "%s", r->site);
        fedfuse__hello_reply__free_unpacked(r, NULL);
        grpc_slice_unref(all);
    }
    grpc_byte_buffer_destroy(req);
    if (resp)
        grpc_byte_buffer_destroy(resp);
    grpc_slice_unref(md.value);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    if (pk)
        OPENSSL_cleanse(pk, strlen(pk));
    free(pc);
    free(pk);
    free(pa);
    return (int)code;
}

/* In TLS mode the site is the certificate's CN; the plaintext-mode "ff-site" header is
 * ignored. hospital-a naming hospital-b is served as hospital-a; a stranger (valid CA, not
 * enrolled) naming an enrolled site is still refused as itself. */
static void test_identity_header_spoof(void **state)
{
    (void)state;
    char seen[64];
    assert_int_equal(raw_hello_spoofed(tc.addr, "hospital-a", "hospital-b", seen, sizeof seen),
                     GRPC_STATUS_OK);
    assert_string_equal(seen, "hospital-a");
    assert_int_equal(raw_hello_spoofed(tc.addr, "stranger", "hospital-a", seen, sizeof seen),
                     GRPC_STATUS_PERMISSION_DENIED);
    assert_true(tnet_file_has(logpath, "site 'stranger' is not enrolled"));
    /* The control: the same raw call in plaintext to a plaintext (loopback, test-only)
     * coordinator is taken as the header's site, so the header is what the TLS server ignores. */
    tnet_coord t2 = tc;
    t2.srv = NULL;
    tnet_coord_start(&t2, dir, 1);
    assert_int_equal(raw_hello_spoofed(t2.addr, NULL, "hospital-b", seen, sizeof seen),
                     GRPC_STATUS_OK);
    assert_string_equal(seen, "hospital-b");
    tnet_coord_stop(&t2);
}

static void test_plaintext_against_tls(void **state)
{
    (void)state;
    ff_rpc_opts o = {.target = tc.addr, .insecure = 1, .insecure_site = "hospital-a",
                     .attempts = 1};
    ff_rpc *c = NULL;
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_ENET);
    assert_null(r);
    ff_rpc_free(c);
    /* Plaintext toward a non-loopback address is refused outright. */
    ff_rpc_opts far = {.target = "10.1.2.3:7443", .insecure = 1};
    assert_int_equal(ff_rpc_new(&c, &far), FF_EPOLICY);
    ft_assert_error_has("not a loopback address");
    ff_server_opts so = {.bind = "0.0.0.0:0", .insecure = 1, .consortium = "x"};
    ff_server *s = NULL;
    ff_server_handlers h = {0};
    assert_int_equal(ff_server_start(&s, &so, &h), FF_EPOLICY);
    assert_null(s);
}

static void test_malformed_and_oversized(void **state)
{
    (void)state;
    ff_rpc *c = tnet_client(dir, "hospital-a", tc.addr, 3);
    /* Connect first (hello retries, the raw calls below do not): on a loaded machine the
     * channel's first TLS handshake can miss a raw call's deadline and come back UNAVAILABLE,
     * which says nothing about how the server treats a malformed message. */
    Fedfuse__HelloReply *r0 = NULL;
    assert_int_equal(hello(c, &r0), FF_OK);
    ff_msg_free(r0);
    ff_server_counters k0, k1;
    ff_server_counters_get(tc.srv, &k0);
    int code = -1;
    /* Truncated length-delimited field: not a protobuf. */
    const uint8_t junk[] = {0x0a, 0x7f, 0x01, 0x02};
    assert_int_not_equal(ff_rpc_raw_call(c, "Hello", junk, sizeof junk, 5000, &code), FF_OK);
    assert_int_equal(code, 3 /* INVALID_ARGUMENT */);
    ft_assert_error_has("malformed protobuf");
    /* Well-formed protobuf with an out-of-range enum: last_phase = 99. */
    const uint8_t bad_enum[] = {0x18, 99};
    assert_int_equal(ff_rpc_raw_call(c, "GetTask", bad_enum, sizeof bad_enum, 5000, &code),
                     FF_EINVAL);
    assert_int_equal(code, 3);
    ft_assert_error_has("unknown enum value 99");
    /* A 31-byte sha256. */
    uint8_t bad_sha[33] = {0x0a, 31};
    assert_int_equal(ff_rpc_raw_call(c, "Download", bad_sha, sizeof bad_sha, 5000, &code),
                     FF_EINVAL);
    /* Oversized: 5 MiB in one message. */
    size_t big = 5u << 20;
    uint8_t *b = calloc(1, big);
    assert_int_not_equal(ff_rpc_raw_call(c, "Hello", b, big, 5000, &code), FF_OK);
    assert_int_equal(code, 8 /* RESOURCE_EXHAUSTED */);
    free(b);
    /* Unknown method. */
    assert_int_not_equal(ff_rpc_raw_call(c, "Frobnicate", junk, 0, 5000, &code), FF_OK);
    assert_int_equal(code, 12 /* UNIMPLEMENTED */);
    ff_server_counters_get(tc.srv, &k1);
    assert_int_equal(k1.invalid_argument - k0.invalid_argument, 3);
    assert_int_equal(k1.oversized - k0.oversized, 1);
    assert_int_equal(k1.unknown_method - k0.unknown_method, 1);
    /* The server still serves. */
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_OK);
    ff_msg_free(r);
    /* And a wrong protocol version from a handler is INVALID_ARGUMENT too. */
    Fedfuse__HelloRequest q = FEDFUSE__HELLO_REQUEST__INIT;
    q.protocol_version = 99;
    assert_int_equal(ff_rpc_hello(c, &q, &r, 5000), FF_EINVAL);
    ft_assert_error_has("protocol version 99");
    ff_rpc_free(c);
}

static void test_deadline_and_long_poll(void **state)
{
    (void)state;
    ff_rpc *c = tnet_client(dir, "hospital-a", tc.addr, 3);
    /* Connect first: on a loaded machine the channel's first TLS handshake alone can take
     * longer than 300 ms, and then the call below would time the handshake, not the
     * long-poll (this test failed 1 run in 15 at load 14). */
    Fedfuse__HelloReply *r0 = NULL;
    assert_int_equal(hello(c, &r0), FF_OK);
    ff_msg_free(r0);
    Fedfuse__TaskRequest tq = FEDFUSE__TASK_REQUEST__INIT;
    /* The server would hold 120 s; our deadline is 300 ms. Returning at all before the hold
     * ends shows the deadline was ours; the bound is half the hold, not a few times 300 ms,
     * so a loaded machine (first TLS handshake, scheduling) cannot fail it. */
    tq.wait_ms = 120000;
    Fedfuse__Task *t = NULL;
    double t0 = ff_now();
    assert_int_equal(ff_rpc_get_task(c, &tq, &t, 300), FF_ETIMEOUT);
    double dt = ff_now() - t0;
    assert_true(dt < 60.0);
    ft_assert_error_has("DEADLINE_EXCEEDED");
    ff_rpc_free(c);
}

static void test_coordinator_down(void **state)
{
    (void)state;
    /* No server on this port: retries are logged, then a clear failure. */
    tnet_coord t2 = tc;
    t2.srv = NULL;
    tnet_coord_start(&t2, dir, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "%s", t2.addr);
    ff_rpc *c = tnet_client(dir, "hospital-a", addr, 3);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_OK);
    ff_msg_free(r);
    tnet_coord_stop(&t2);
    assert_int_equal(hello(c, &r), FF_ENET);
    ft_assert_error_has("after 3 attempts");
    assert_true(tnet_file_has(logpath, "Hello: attempt 1/3 failed"));
    ff_rpc_free(c);
}

typedef struct {
    tnet_coord *t;
    int port;
} restart_arg;

static void *restart_later(void *arg)
{
    restart_arg *ra = arg;
    struct timespec ts = {0, 800 * 1000000L};
    nanosleep(&ts, NULL);
    tnet_coord_start_port(ra->t, dir, 0, ra->port);
    return NULL;
}

static void test_reconnect_after_restart(void **state)
{
    (void)state;
    tnet_coord t2 = tc;
    t2.srv = NULL;
    tnet_coord_start(&t2, dir, 0);
    int port = t2.port;
    ff_rpc *c = tnet_client(dir, "hospital-a", t2.addr, 8);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_OK);
    ff_msg_free(r);
    tnet_coord_stop(&t2);
    /* The coordinator comes back on the same port while the client is retrying. */
    restart_arg ra = {&t2, port};
    pthread_t th;
    pthread_create(&th, NULL, restart_later, &ra);
    double t0 = ff_now();
    assert_int_equal(hello(c, &r), FF_OK);
    pthread_join(th, NULL);
    assert_true(ff_now() - t0 >= 0.7);
    assert_string_equal(r->site, "hospital-a");
    ff_msg_free(r);
    ff_rpc_free(c);
    tnet_coord_stop(&t2);
}

static void test_insecure_loopback(void **state)
{
    (void)state;
    tnet_coord t2 = tc;
    t2.srv = NULL;
    tnet_coord_start(&t2, dir, 1);
    ff_rpc_opts o = {.target = t2.addr, .insecure = 1, .insecure_site = "hospital-a",
                     .attempts = 1};
    ff_rpc *c = NULL;
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    Fedfuse__HelloReply *r = NULL;
    assert_int_equal(hello(c, &r), FF_OK);
    assert_string_equal(r->site, "hospital-a");
    ff_msg_free(r);
    ff_rpc_free(c);
    o.insecure_site = "stranger"; /* enrolment still applies */
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    assert_int_equal(hello(c, &r), FF_EPOLICY);
    ff_rpc_free(c);
    tnet_coord_stop(&t2);
}

static void test_server_start_errors(void **state)
{
    (void)state;
    ff_server_handlers h = {0};
    ff_server *s = NULL;
    char bind[64], cert[512], key[512], cons[512];
    snprintf(cert, sizeof cert, "%s/coord/coord.crt", dir);
    snprintf(key, sizeof key, "%s/coord/coord.key", dir);
    snprintf(cons, sizeof cons, "%s/consortium.yaml", dir);
    /* The port is taken (SO_REUSEPORT is off, so this is an error, not a silent steal). */
    snprintf(bind, sizeof bind, "127.0.0.1:%d", tc.port);
    ff_server_opts so = {.bind = bind, .cert = cert, .key = key, .consortium = cons};
    assert_int_equal(ff_server_start(&s, &so, &h), FF_ENET);
    ft_assert_error_has("cannot listen");
    assert_null(s);
    so.bind = "127.0.0.1:0";
    so.consortium = "/nonexistent/consortium.yaml";
    assert_int_not_equal(ff_server_start(&s, &so, &h), FF_OK);
    ft_assert_error_has("/nonexistent/consortium.yaml");
    so.consortium = cons;
    so.key = cert; /* not a key */
    assert_int_not_equal(ff_server_start(&s, &so, &h), FF_OK);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_path),
        cmocka_unit_test(test_foreign_ca),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_unenrolled),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_revocation_takes_effect_live),
        cmocka_unit_test(test_plaintext_against_tls),
        cmocka_unit_test(test_identity_header_spoof),
        cmocka_unit_test(test_malformed_and_oversized),
        cmocka_unit_test(test_deadline_and_long_poll),
        cmocka_unit_test(test_coordinator_down),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_insecure_loopback),
        cmocka_unit_test(test_server_start_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
