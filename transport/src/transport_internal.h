/* Shared between the transport sources: wire framing, status mapping, gRPC helpers. */
#ifndef FF_TRANSPORT_INTERNAL_H
#define FF_TRANSPORT_INTERNAL_H

#include "ff/transport.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>

#define FF_METHOD_PREFIX "/fedfuse.Coordinator/"
#define FF_SITE_METADATA "ff-site"

typedef enum {
    FF_M_HELLO = 0,
    FF_M_GET_TASK,
    FF_M_DOWNLOAD,
    FF_M_UPLOAD,
    FF_M_SUBMIT_EVAL,
    FF_M_SECAGG,
    FF_M_STATUS,
    FF_M_DECLINE,
    FF_M_COUNT
} ff_method_id;

extern const char *const ff_method_names[FF_M_COUNT];
/* Method id from "/fedfuse.Coordinator/Name", or -1. */
int ff_method_lookup(grpc_slice path);

/* A packed protobuf message as a byte buffer (one copy into a gRPC slice). */
grpc_byte_buffer *ff_wire_pack(const ProtobufCMessage *m);
/* Unpacks a received buffer (copies it out of the slices; small control messages only). */
int ff_wire_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                   ProtobufCMessage **out) FF_WARN_UNUSED;
/* Counts the gRPC slices that still point into a source buffer sent without a copy. gRPC
 * may hold a sent slice after SEND_MESSAGE completes (until its TLS layer has encrypted it or
 * the stream is destroyed), so the owner of the buffer waits for the count to reach zero
 * before giving the buffer back. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
} ff_wire_pin;
void ff_wire_pin_init(ff_wire_pin *pin);
/* Blocks until no slice references the buffer any more, then destroys the pin. what names
 * the transfer in the log line written when that takes longer than a second. */
void ff_wire_pin_wait(ff_wire_pin *pin, const char *what);

/* A data part: 0x0a varint(n) then n bytes. A buffer source is referenced, not copied (its
 * slice holds a reference on pin); a read() source is read into a fresh slice. */
int ff_wire_data_part(const ff_source *src, uint64_t off, size_t n, ff_wire_pin *pin,
                      grpc_byte_buffer **out) FF_WARN_UNUSED;
/* 1 when bb starts like a data part (field 1, length-delimited). */
int ff_wire_is_data(grpc_byte_buffer *bb);
/* Walks a data part's payload slice by slice into sink at *off (advancing *off, bounded by
 * limit) and into the running hash. FF_EFORMAT when the framing is wrong. */
int ff_wire_data_deliver(grpc_byte_buffer *bb, ff_sink *sink, uint64_t *off, uint64_t limit,
                         ff_sha256_ctx *h) FF_WARN_UNUSED;

/* The PEM texts gRPC's credentials take: CA, certificate chain, private key. */
typedef struct {
    char *ca, *cert, *key;
} ff_pem_files;
int ff_pem_files_read(ff_pem_files *f, const char *ca, const char *cert,
                      const char *key) FF_WARN_UNUSED;
/* Wipes the key text and frees all three. */
void ff_pem_files_free(ff_pem_files *f);

grpc_status_code ff_status_to_grpc(int rc);
int ff_status_from_grpc(grpc_status_code code);
const char *ff_grpc_code_name(grpc_status_code code);

gpr_timespec ff_deadline_ms(int64_t ms);
/* 1 when host:port names a loopback address (127.x, ::1, localhost); the whole host must
 * be the address ("127.0.0.1.evil.example:1" is not). */
int ff_addr_is_loopback(const char *addr);

/* TLS handshakes this process refused (we_refused: the peer's certificate failed our checks)
 * or saw refused by the peer (peer_refused: it sent an alert), with the last reason of each.
 * A client compares the counts before and after a failed call to say which side refused. */
typedef struct {
    uint64_t we_refused, peer_refused;
    char we_why[256], peer_why[256];
} ff_tls_events;
void ff_tls_note(int peer_refused, const char *why);
void ff_tls_events_get(ff_tls_events *out);

/* The connection guard (conn_guard.c): interposes accept4() so that gRPC's listener survives
 * a flood of connections that never authenticate (issue #19 item 2). */
typedef struct {
    uint64_t admitted, refused, evicted;
} ff_conn_guard_stats;
/* Reads RLIMIT_NOFILE (raising the soft limit to the hard one, up to the guard's table),
 * sets the guard up once per process and registers port for ff_conn_guard_accepts.
 * *max_conns: connections admitted before the oldest unauthenticated one is evicted (0 when
 * the guard is inactive: libgrpc does not call our accept4). */
int ff_conn_guard_setup(int port, int *max_conns) FF_WARN_UNUSED;
int ff_conn_guard_active(void);
/* Connections the kernel handed out on port's listener so far (admitted or not): the
 * watchdog's sign that gRPC still accepts. */
uint64_t ff_conn_guard_accepts(int port);
/* The connection of peer (grpc_call_get_peer's text) made an authenticated call: it is
 * never evicted. */
void ff_conn_guard_authenticated(const char *grpc_peer);
void ff_conn_guard_stats_get(ff_conn_guard_stats *out);

#endif
