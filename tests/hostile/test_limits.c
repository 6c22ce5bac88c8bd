/* Hostile review, items 2 and 3, against the transport server over loopback:
 *  - one enrolled site opens 30 Upload streams (a valid header, then nothing: the trickle at
 *    rate zero), more than the server's 24 workers. Its calls beyond site_max_calls are
 *    refused at once with RESOURCE_EXHAUSTED; another site's Hello, Status and Upload are
 *    served while the streams are held; the held streams are cancelled for falling below
 *    the minimum upload rate. Before the fix the 30 streams took every worker and the other
 *    site's calls waited until its deadline.
 *  - the listener watchdog: a listening socket that stops accepting (shut down under gRPC,
 *    as gRPC 1.51 leaves it after "Failed accept4") is reported by ff_server_failed.
 * Waits are for conditions with generous bounds; no duration is asserted. */
#include "tnet.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAMS 30
#define MAX_CALLS 4
#define SENT_TAG 1000 /* the header went out (not counted) */

static const char *dir;
static char logpath[512];

static int setup(void **state)
{
    (void)state;
    dir = ft_tmpdir();
    tnet_pki(dir);
    snprintf(logpath, sizeof logpath, "%s/server.log", dir);
    if (getenv("FF_KEEP"))
        fprintf(stderr, "test folder %s\n", dir);
    return ff_log_open(FF_LOG_INFO, FF_LOG_PLAIN, logpath, "test") == FF_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ff_log_close();
    if (!getenv("FF_KEEP"))
        ft_rmtree(dir);
    return 0;
}

/* A gRPC channel over mutual TLS as site name. */
static grpc_channel *channel_as(const char *target, const char *name)
{
    char cert[512], key[512], ca[512];
    char *pc = NULL, *pk = NULL, *pa = NULL;
    size_t n;
    snprintf(cert, sizeof cert, "%s/%s/%s.crt", dir, name, name);
    snprintf(key, sizeof key, "%s/%s/%s.key", dir, name, name);
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    assert_int_equal(ff_file_read_all(cert, 1 << 20, &pc, &n), FF_OK);
    assert_int_equal(ff_file_read_all(key, 1 << 20, &pk, &n), FF_OK);
    assert_int_equal(ff_file_read_all(ca, 1 << 20, &pa, &n), FF_OK);
    grpc_ssl_pem_key_cert_pair pair = {.private_key = pk, .cert_chain = pc};
    grpc_channel_credentials *cr = grpc_ssl_credentials_create(pa, &pair, NULL, NULL);
    grpc_arg arg = {GRPC_ARG_STRING, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, {.string = "localhost"}};
    grpc_channel_args args = {1, &arg};
    grpc_channel *ch = grpc_channel_create(target, cr, &args);
    grpc_channel_credentials_release(cr);
    free(pc);
    free(pk);
    free(pa);
    return ch;
}

typedef struct {
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code code;
    grpc_slice details;
    grpc_byte_buffer *req;
    int done;
} stream;

/* Starts an Upload: the header of a 1 MiB update, then nothing; the status arrives as tag. */
static void stream_start(stream *st, grpc_channel *ch, grpc_completion_queue *cq, void *tag)
{
    memset(st, 0, sizeof *st);
    st->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                        grpc_slice_from_static_string("/fedfuse.Coordinator/Upload"),
                                        NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    uint8_t sha[32] = {1};
    Fedfuse__UploadHeader h = FEDFUSE__UPLOAD_HEADER__INIT;
    h.round = 1;
    h.total_size = 1u << 20;
    h.sha256.data = sha;
    h.sha256.len = sizeof sha;
    Fedfuse__UploadPart p;
    fedfuse__upload_part__init(&p);
    p.part_case = FEDFUSE__UPLOAD_PART__PART_HEADER;
    p.header = &h;
    uint8_t body[256];
    size_t len = fedfuse__upload_part__pack(&p, body);
    grpc_slice bs = grpc_slice_from_copied_buffer((const char *)body, len);
    st->req = grpc_raw_byte_buffer_create(&bs, 1);
    grpc_slice_unref(bs);
    grpc_metadata_array_init(&st->init_md);
    grpc_metadata_array_init(&st->trail_md);
    st->details = grpc_empty_slice();
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = st->req;
    assert_int_equal(grpc_call_start_batch(st->call, ops, 2, (void *)SENT_TAG, NULL),
                     GRPC_CALL_OK);
    grpc_op rops[2];
    memset(rops, 0, sizeof rops);
    rops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    rops[0].data.recv_initial_metadata.recv_initial_metadata = &st->init_md;
    rops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    rops[1].data.recv_status_on_client.trailing_metadata = &st->trail_md;
    rops[1].data.recv_status_on_client.status = &st->code;
    rops[1].data.recv_status_on_client.status_details = &st->details;
    assert_int_equal(grpc_call_start_batch(st->call, rops, 2, tag, NULL), GRPC_CALL_OK);
}

static void stream_free(stream *st)
{
    grpc_call_unref(st->call);
    grpc_byte_buffer_destroy(st->req);
    grpc_slice_unref(st->details);
    grpc_metadata_array_destroy(&st->init_md);
    grpc_metadata_array_destroy(&st->trail_md);
}

/* Collects finished streams for up to ms; returns how many are done in all. */
static int collect(stream *st, grpc_completion_queue *cq, int ms)
{
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN)),
            NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            break;
        if ((intptr_t)ev.tag == SENT_TAG)
            continue;
        st[(intptr_t)ev.tag].done = 1;
        ms = 0; /* drain what is ready */
    }
    int n = 0;
    for (int i = 0; i < STREAMS; i++)
        n += st[i].done;
    return n;
}

static int count_code(const stream *st, grpc_status_code code)
{
    int n = 0;
    for (int i = 0; i < STREAMS; i++)
        n += st[i].done && st[i].code == code;
    return n;
}

static int details_have(const stream *st, const char *needle)
{
    for (int i = 0; i < STREAMS; i++) {
        char d[256];
        snprintf(d, sizeof d, "%.*s", (int)GRPC_SLICE_LENGTH(st[i].details),
                 (const char *)GRPC_SLICE_START_PTR(st[i].details));
        if (st[i].done && strstr(d, needle))
            return 1;
    }
    return 0;
}

static void test_one_site_cannot_starve_others(void **state)
{
    (void)state;
    tnet_coord tc;
    memset(&tc, 0, sizeof tc);
    tc.current_round = 1;
    tc.idle_timeout_ms = 600000; /* only the quota and the rate may end the held streams */
    tc.lim.site_max_calls = MAX_CALLS;
    tc.lim.upload_min_rate = 1u << 20;  /* the held streams send 0 bytes/s */
    tc.lim.upload_grace_ms = 3000;
    tnet_coord_start(&tc, dir, 0);
    grpc_init();
    grpc_channel *ch = channel_as(tc.addr, "hospital-a");
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    stream *st = calloc(STREAMS, sizeof *st);
    for (int i = 0; i < STREAMS; i++)
        stream_start(&st[i], ch, cq, (void *)(intptr_t)i);
    /* every stream beyond the quota is refused, without waiting for anything */
    for (int waited = 0; count_code(st, GRPC_STATUS_RESOURCE_EXHAUSTED) < STREAMS - MAX_CALLS &&
                         waited < 120000; waited += 100)
        collect(st, cq, 100);
    assert_true(count_code(st, GRPC_STATUS_RESOURCE_EXHAUSTED) >= STREAMS - MAX_CALLS);
    assert_true(details_have(st, "site_max_calls"));

    /* meanwhile hospital-b is served: Hello, Status and an Upload */
    ff_rpc *b = tnet_client(dir, "hospital-b", tc.addr, 1);
    Fedfuse__HelloRequest q = FEDFUSE__HELLO_REQUEST__INIT;
    q.protocol_version = FF_PROTOCOL_VERSION;
    Fedfuse__HelloReply *hr = NULL;
    assert_int_equal(ff_rpc_hello(b, &q, &hr, 60000), FF_OK);
    ff_msg_free(hr);
    Fedfuse__StatusReply *sr = NULL;
    assert_int_equal(ff_rpc_status(b, &sr, 60000), FF_OK);
    int over = 0;
    for (size_t i = 0; i < sr->n_counters; i++)
        if (strcmp(sr->counters[i]->name, "over_quota") == 0)
            over = (int)sr->counters[i]->value;
    assert_true(over >= STREAMS - MAX_CALLS);
    ff_msg_free(sr);
    static uint8_t data[64 << 10];
    memset(data, 7, sizeof data);
    ff_source src = {.size = sizeof data, .buf = data};
    ff_sha256(data, sizeof data, src.sha256);
    Fedfuse__UploadHeader uh = FEDFUSE__UPLOAD_HEADER__INIT;
    uh.round = 1;
    int before = atomic_load(&tc.uploads_ok);
    assert_int_equal(ff_rpc_upload(b, &uh, &src, NULL, 60000), FF_OK);
    assert_int_equal(atomic_load(&tc.uploads_ok), before + 1);
    ff_rpc_free(b);

    /* the held streams fall below the minimum rate and are cancelled */
    for (int waited = 0; collect(st, cq, 100) < STREAMS && waited < 120000; waited += 100)
        ;
    assert_int_equal(collect(st, cq, 0), STREAMS);
    assert_true(details_have(st, "minimum rate"));
    assert_true(tnet_file_has(logpath, "below the minimum rate"));
    for (int i = 0; i < STREAMS; i++)
        stream_free(&st[i]);
    free(st);
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_shutdown();
    tnet_coord_stop(&tc);
}

/* The descriptor of the socket listening on port, found among ours. */
static int listening_fd(int port)
{
    for (int fd = 0; fd < 4096; fd++) {
        struct sockaddr_storage a; /* gRPC listens dual-stack: AF_INET6 for 127.0.0.1 */
        socklen_t al = sizeof a;
        int acc = 0;
        socklen_t accl = sizeof acc;
        int p = getsockname(fd, (struct sockaddr *)&a, &al) != 0 ? -1
                : a.ss_family == AF_INET  ? ntohs(((struct sockaddr_in *)&a)->sin_port)
                : a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                          : -1;
        if (p == port &&
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &accl) == 0 && acc)
            return fd;
    }
    return -1;
}

static void test_watchdog_notices_dead_listener(void **state)
{
    (void)state;
    tnet_coord tc;
    memset(&tc, 0, sizeof tc);
    tc.lim.watchdog_ms = 200;
    tnet_coord_start(&tc, dir, 0);
    assert_null(ff_server_failed(tc.srv));
    int lfd = listening_fd(tc.port);
    assert_true(lfd >= 0);
    /* a listener that no longer accepts, as gRPC leaves it after an accept4 error: the
     * healthy probes before this must not have raised anything */
    for (int waited = 0; waited < 1000; waited += 100)
        usleep(100000);
    assert_null(ff_server_failed(tc.srv));
    assert_int_equal(shutdown(lfd, SHUT_RD), 0);
    for (int waited = 0; !ff_server_failed(tc.srv) && waited < 120000; waited += 100)
        usleep(100000);
    assert_non_null(ff_server_failed(tc.srv));
    assert_non_null(strstr(ff_server_failed(tc.srv), "stopped accepting"));
    assert_true(tnet_file_has(logpath, "watchdog: the listener on port"));
    tnet_coord_stop(&tc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_site_cannot_starve_others),
        cmocka_unit_test(test_watchdog_notices_dead_listener),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
