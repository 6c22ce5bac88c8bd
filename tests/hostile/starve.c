/* The attacker of hostile review item 3, as an enrolled site: waits for its train task, then
 * opens STREAMS Upload streams with a valid header for the round (the model's size) and sends
 * one byte per stream every 10 s, until killed. Prints each stream's end as
 * "stream I: CODE DETAILS" and "held N" after each trickle.
 *   hostile_starve TARGET CA CERT KEY STREAMS */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ff/transport.h"

#define MAXS 64

typedef struct {
    grpc_call *call;
    grpc_metadata_array md, trail;
    grpc_status_code code;
    grpc_slice details;
    int done;
} stream;

static grpc_byte_buffer *bytes(const void *p, size_t n)
{
    grpc_slice s = grpc_slice_from_copied_buffer(p, n);
    grpc_byte_buffer *b = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return b;
}

static int send_msg(grpc_call *c, grpc_byte_buffer *b, int with_md)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (with_md)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = b;
    return grpc_call_start_batch(c, ops, n, (void *)-1, NULL) == GRPC_CALL_OK;
}

static void drain(stream *st, int n, grpc_completion_queue *cq, int ms)
{
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN)),
            NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            return;
        ms = 0;
        intptr_t i = (intptr_t)ev.tag;
        if (i < 0 || i >= n)
            continue;
        st[i].done = 1;
        printf("stream %d: %d %.*s\n", (int)i, (int)st[i].code, (int)GRPC_SLICE_LENGTH(st[i].details),
               (const char *)GRPC_SLICE_START_PTR(st[i].details));
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    if (argc != 6)
        return 2;
    const char *target = argv[1], *ca = argv[2], *cert = argv[3], *key = argv[4];
    int n = atoi(argv[5]);
    n = n < 1 ? 1 : n > MAXS ? MAXS : n;
    ff_rpc_opts o = {.target = target, .ca = ca, .cert = cert, .key = key,
                     .server_name = "coordinator", .attempts = 6};
    ff_rpc *fc = NULL;
    if (ff_rpc_new(&fc, &o) != FF_OK) {
        fprintf(stderr, "client: %s\n", ff_error_message());
        return 1;
    }
    Fedfuse__HelloRequest hq = FEDFUSE__HELLO_REQUEST__INIT;
    hq.protocol_version = FF_PROTOCOL_VERSION;
    Fedfuse__HelloReply *hr = NULL;
    if (ff_rpc_hello(fc, &hq, &hr, 30000) != FF_OK) {
        fprintf(stderr, "hello: %s\n", ff_error_message());
        return 1;
    }
    ff_msg_free(hr);
    uint32_t round = 0;
    uint64_t size = 0;
    for (int tries = 0; tries < 60 && !size; tries++) {
        Fedfuse__TaskRequest tq = FEDFUSE__TASK_REQUEST__INIT;
        tq.wait_ms = 5000;
        Fedfuse__Task *t = NULL;
        if (ff_rpc_get_task(fc, &tq, &t, 30000) == FF_OK && t->phase == FEDFUSE__PHASE__PHASE_TRAIN) {
            round = t->round;
            size = t->model_size;
        }
        ff_msg_free(t);
    }
    if (!size) {
        fprintf(stderr, "no train task\n");
        return 1;
    }
    printf("train task: round %u, update of %llu bytes\n", round, (unsigned long long)size);
    fflush(stdout);

    char *pc = NULL, *pk = NULL, *pa = NULL;
    size_t len;
    if (ff_file_read_all(cert, 1 << 20, &pc, &len) != FF_OK || ff_file_read_all(key, 1 << 20, &pk, &len) != FF_OK ||
        ff_file_read_all(ca, 1 << 20, &pa, &len) != FF_OK)
        return 1;
    grpc_ssl_pem_key_cert_pair pair = {.private_key = pk, .cert_chain = pc};
    grpc_channel_credentials *cr = grpc_ssl_credentials_create(pa, &pair, NULL, NULL);
    grpc_arg arg = {GRPC_ARG_STRING, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, {.string = "coordinator"}};
    grpc_channel_args args = {1, &arg};
    grpc_channel *ch = grpc_channel_create(target, cr, &args);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    static stream st[MAXS];
    uint8_t sha[32] = {0}, hdrbuf[256];
    Fedfuse__UploadHeader h = FEDFUSE__UPLOAD_HEADER__INIT;
    h.round = round;
    h.total_size = size;
    h.kind = FEDFUSE__UPLOAD_KIND__UPLOAD_UPDATE;
    h.phase = FEDFUSE__PHASE__PHASE_TRAIN;
    h.example_count = 1;
    h.sha256.data = sha;
    h.sha256.len = sizeof sha;
    Fedfuse__UploadPart p;
    fedfuse__upload_part__init(&p);
    p.part_case = FEDFUSE__UPLOAD_PART__PART_HEADER;
    p.header = &h;
    size_t hl = fedfuse__upload_part__pack(&p, hdrbuf);
    for (int i = 0; i < n; i++) {
        st[i].call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                              grpc_slice_from_static_string("/fedfuse.Coordinator/Upload"),
                                              NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_metadata_array_init(&st[i].md);
        grpc_metadata_array_init(&st[i].trail);
        st[i].details = grpc_empty_slice();
        send_msg(st[i].call, bytes(hdrbuf, hl), 1);
        grpc_op r[2];
        memset(r, 0, sizeof r);
        r[0].op = GRPC_OP_RECV_INITIAL_METADATA;
        r[0].data.recv_initial_metadata.recv_initial_metadata = &st[i].md;
        r[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        r[1].data.recv_status_on_client.trailing_metadata = &st[i].trail;
        r[1].data.recv_status_on_client.status = &st[i].code;
        r[1].data.recv_status_on_client.status_details = &st[i].details;
        grpc_call_start_batch(st[i].call, r, 2, (void *)(intptr_t)i, NULL);
    }
    static const uint8_t one[3] = {0x0a, 0x01, 0x00}; /* a data part of 1 byte */
    for (;;) { /* until killed */
        drain(st, n, cq, 10000);
        int held = 0;
        for (int i = 0; i < n; i++)
            if (!st[i].done && send_msg(st[i].call, bytes(one, sizeof one), 0))
                held++;
        printf("held %d\n", held);
        fflush(stdout);
    }
}
