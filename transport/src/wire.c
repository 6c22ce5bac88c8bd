/* Wire helpers: method table, protobuf packing, the raw data-part framing of streams,
 * message validation, status-code mapping and gRPC's log routing. */
#include "transport_internal.h"

#include <arpa/inet.h>
#include <grpc/support/log.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const ff_method_names[FF_M_COUNT] = {
    "Hello", "GetTask", "Download", "Upload", "SubmitEval", "SecAggMessage", "Status",
    "Decline",
};

int ff_method_lookup(grpc_slice path)
{
    size_t plen = strlen(FF_METHOD_PREFIX), n = GRPC_SLICE_LENGTH(path);
    const char *p = (const char *)GRPC_SLICE_START_PTR(path);
    if (n <= plen || memcmp(p, FF_METHOD_PREFIX, plen) != 0)
        return -1;
    for (int i = 0; i < FF_M_COUNT; i++)
        if (strlen(ff_method_names[i]) == n - plen && memcmp(p + plen, ff_method_names[i],
                                                             n - plen) == 0)
            return i;
    return -1;
}

void ff_msg_free(void *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

grpc_byte_buffer *ff_wire_pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

int ff_wire_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d,
                   ProtobufCMessage **out)
{
    grpc_byte_buffer_reader r;
    *out = NULL;
    if (!bb || !grpc_byte_buffer_reader_init(&r, bb))
        return ff_error(FF_EFORMAT, "%s: empty or unreadable message", d->short_name);
    grpc_slice all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    *out = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    if (!*out)
        return ff_error(FF_EFORMAT, "%s: malformed protobuf", d->short_name);
    int rc = ff_msg_validate(*out);
    if (rc != FF_OK) {
        protobuf_c_message_free_unpacked(*out, NULL);
        *out = NULL;
    }
    return rc;
}

/* ---- validation ------------------------------------------------------------------------ */

#define STR_MAX 255
#define REPEAT_MAX 4096

static int enum_ok(const ProtobufCEnumDescriptor *e, int v)
{
    for (unsigned i = 0; i < e->n_values; i++)
        if (e->values[i].value == v)
            return 1;
    return 0;
}

static int check_bytes(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                       size_t len)
{
    size_t nl = strlen(f->name);
    if (nl >= 6 && strcmp(f->name + nl - 6, "sha256") == 0 && len != 0 &&
        len != FF_SHA256_BYTES)
        return ff_error(FF_EINVAL, "%s.%s: %zu bytes, a sha256 has 32", d->short_name, f->name,
                        len);
    size_t max = strcmp(f->name, "plan_yaml") == 0 ? FF_PLAN_MAX
               : (strcmp(f->name, "data") == 0 ? FF_CHUNK_MAX : FF_PAYLOAD_MAX);
    if (len > max)
        return ff_error(FF_EINVAL, "%s.%s: %zu bytes exceeds %zu", d->short_name, f->name, len,
                        max);
    return FF_OK;
}

static int check_value(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                       const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (s && strlen(s) > STR_MAX)
            return ff_error(FF_EINVAL, "%s.%s: string of %zu bytes exceeds %d", d->short_name,
                            f->name, strlen(s), STR_MAX);
        return FF_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return check_bytes(d, f, ((const ProtobufCBinaryData *)p)->len);
    case PROTOBUF_C_TYPE_ENUM:
        if (!enum_ok(f->descriptor, *(const int *)p))
            return ff_error(FF_EINVAL, "%s.%s: unknown enum value %d", d->short_name, f->name,
                            *(const int *)p);
        return FF_OK;
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;
        return m ? ff_msg_validate(m) : FF_OK;
    }
    default:
        return FF_OK;
    }
}

int ff_msg_validate(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        /* fields are reached by the descriptor's byte offsets: read them with memcpy, not
         * through casts that assume the alignment of the target type */
        const uint8_t *base = (const uint8_t *)m;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, base + f->quantifier_offset, sizeof which);
            if (which != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            memcpy(&n, base + f->quantifier_offset, sizeof n);
            if (n > REPEAT_MAX)
                return ff_error(FF_EINVAL, "%s.%s: %zu items exceeds %d", d->short_name,
                                f->name, n, REPEAT_MAX);
            const uint8_t *arr;
            memcpy(&arr, base + f->offset, sizeof arr);
            size_t esz = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE
                       ? sizeof(void *)
                       : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
                       : f->type == PROTOBUF_C_TYPE_ENUM ? sizeof(int) : 0;
            for (size_t k = 0; esz && k < n; k++) {
                int rc = check_value(d, f, arr + k * esz);
                if (rc != FF_OK)
                    return rc;
            }
            continue;
        }
        int rc = check_value(d, f, base + f->offset);
        if (rc != FF_OK)
            return rc;
    }
    return FF_OK;
}

/* ---- data parts ------------------------------------------------------------------------ */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

void ff_wire_pin_init(ff_wire_pin *pin)
{
    pthread_mutex_init(&pin->mu, NULL);
    pthread_cond_init(&pin->cv, NULL);
    pin->refs = 0;
}

static void pin_unref(void *arg)
{
    ff_wire_pin *pin = arg;
    pthread_mutex_lock(&pin->mu);
    if (--pin->refs == 0)
        pthread_cond_broadcast(&pin->cv);
    pthread_mutex_unlock(&pin->mu);
}

void ff_wire_pin_wait(ff_wire_pin *pin, const char *what)
{
    double t0 = ff_now();
    int logged = 0;
    pthread_mutex_lock(&pin->mu);
    while (pin->refs > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&pin->cv, &pin->mu, &ts);
        /* gRPC drops its references when the stream or, for a dead link, the connection
           is torn down (keepalive bounds that); say why the caller is still waiting. */
        if (pin->refs > 0 && !logged && ff_now() - t0 > 1.0) {
            ff_log(FF_LOG_WARN, "%s: waiting for gRPC to release %d sent chunk(s)", what,
                   pin->refs);
            logged = 1;
        }
    }
    pthread_mutex_unlock(&pin->mu);
    pthread_mutex_destroy(&pin->mu);
    pthread_cond_destroy(&pin->cv);
}

int ff_wire_data_part(const ff_source *src, uint64_t off, size_t n, ff_wire_pin *pin,
                      grpc_byte_buffer **out)
{
    uint8_t hdr[16];
    hdr[0] = 0x0a; /* field 1, wire type 2 */
    size_t h = 1 + put_varint(hdr + 1, n);
    *out = NULL;
    if (src->buf) {
        /* Two slices, the header copied and the payload referenced in place: the sender's
           copy was a tenth of the CPU time of a broadcast (perf, docs/benchmarks.md).
           gRPC only reads send slices, so dropping const here is safe. */
        grpc_slice s[2];
        s[0] = grpc_slice_from_copied_buffer((const char *)hdr, h);
        pthread_mutex_lock(&pin->mu);
        pin->refs++;
        pthread_mutex_unlock(&pin->mu);
        s[1] = grpc_slice_new_with_user_data((uint8_t *)src->buf + off, n, pin_unref, pin);
        *out = grpc_raw_byte_buffer_create(s, 2);
        grpc_slice_unref(s[0]);
        grpc_slice_unref(s[1]);
        return FF_OK;
    }
    grpc_slice s = grpc_slice_malloc(h + n);
    uint8_t *p = GRPC_SLICE_START_PTR(s);
    memcpy(p, hdr, h);
    int rc = src->read(src->ctx, off, p + h, n);
    if (rc != FF_OK) {
        grpc_slice_unref(s);
        return ff_error_prefix(rc, "reading upload source at offset %llu: ",
                               (unsigned long long)off);
    }
    *out = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return FF_OK;
}

int ff_wire_is_data(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    grpc_slice s;
    int is = 0;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return 0;
    while (grpc_byte_buffer_reader_next(&r, &s)) {
        size_t n = GRPC_SLICE_LENGTH(s);
        if (n)
            is = GRPC_SLICE_START_PTR(s)[0] == 0x0a;
        grpc_slice_unref(s);
        if (n)
            break;
    }
    grpc_byte_buffer_reader_destroy(&r);
    return is;
}

static int sink_put(ff_sink *sink, uint64_t off, const uint8_t *p, size_t n)
{
    if (sink->buf) {
        memcpy((uint8_t *)sink->buf + off, p, n);
        return FF_OK;
    }
    return sink->write(sink->ctx, off, p, n);
}

int ff_wire_data_deliver(grpc_byte_buffer *bb, ff_sink *sink, uint64_t *off, uint64_t limit,
                         ff_sha256_ctx *h)
{
    grpc_byte_buffer_reader r;
    grpc_slice s;
    uint64_t len = 0, got = 0;
    int state = 0, shift = 0, rc = FF_OK; /* 0 = tag, 1 = varint, 2 = payload */
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return ff_error(FF_EFORMAT, "data part: unreadable");
    while (rc == FF_OK && grpc_byte_buffer_reader_next(&r, &s)) {
        const uint8_t *p = GRPC_SLICE_START_PTR(s);
        size_t n = GRPC_SLICE_LENGTH(s), i = 0;
        while (state < 2 && i < n && rc == FF_OK) {
            uint8_t b = p[i++];
            if (state == 0) {
                if (b != 0x0a)
                    rc = ff_error(FF_EFORMAT, "data part: tag 0x%02x, expected 0x0a", b);
                state = 1;
            } else {
                len |= (uint64_t)(b & 0x7f) << shift;
                shift += 7;
                if (!(b & 0x80))
                    state = 2;
                else if (shift > 28)
                    rc = ff_error(FF_EFORMAT, "data part: length varint too long");
            }
        }
        if (rc == FF_OK && state == 2 && i < n) {
            size_t m = n - i;
            if (len > FF_CHUNK_MAX || got + m > len || *off + m > limit)
                rc = ff_error(FF_EFORMAT, "data part: %llu bytes beyond the announced size "
                              "(offset %llu, total %llu)", (unsigned long long)(got + m),
                              (unsigned long long)*off, (unsigned long long)limit);
            else {
                rc = sink_put(sink, *off, p + i, m);
                ff_sha256_update(h, p + i, m);
                *off += m;
                got += m;
            }
        }
        grpc_slice_unref(s);
    }
    grpc_byte_buffer_reader_destroy(&r);
    if (rc == FF_OK && (state != 2 || got != len))
        rc = ff_error(FF_EFORMAT, "data part: truncated (%llu of %llu bytes)",
                      (unsigned long long)got, (unsigned long long)len);
    return rc;
}

/* ---- status codes ---------------------------------------------------------------------- */

grpc_status_code ff_status_to_grpc(int rc)
{
    switch (rc) {
    case FF_OK: return GRPC_STATUS_OK;
    case FF_EINVAL: case FF_EFORMAT: case FF_ERANGE: case FF_ENUMERIC:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case FF_EPOLICY: return GRPC_STATUS_PERMISSION_DENIED;
    case FF_ESTATE: return GRPC_STATUS_FAILED_PRECONDITION;
    case FF_ENOTFOUND: return GRPC_STATUS_NOT_FOUND;
    case FF_ETIMEOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case FF_ECRYPTO: return GRPC_STATUS_DATA_LOSS;
    case FF_ENOMEM: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case FF_ENET: return GRPC_STATUS_UNAVAILABLE;
    default: return GRPC_STATUS_INTERNAL;
    }
}

int ff_status_from_grpc(grpc_status_code code)
{
    switch (code) {
    case GRPC_STATUS_OK: return FF_OK;
    case GRPC_STATUS_INVALID_ARGUMENT: case GRPC_STATUS_OUT_OF_RANGE: return FF_EINVAL;
    case GRPC_STATUS_PERMISSION_DENIED: case GRPC_STATUS_UNAUTHENTICATED: return FF_EPOLICY;
    case GRPC_STATUS_FAILED_PRECONDITION: case GRPC_STATUS_ALREADY_EXISTS: return FF_ESTATE;
    case GRPC_STATUS_NOT_FOUND: return FF_ENOTFOUND;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return FF_ETIMEOUT;
    case GRPC_STATUS_DATA_LOSS: return FF_ECRYPTO;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return FF_ENOMEM;
    case GRPC_STATUS_UNAVAILABLE: case GRPC_STATUS_CANCELLED: case GRPC_STATUS_ABORTED:
        return FF_ENET;
    default: return FF_EINTERNAL;
    }
}

const char *ff_grpc_code_name(grpc_status_code code)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    return (unsigned)code < FF_ARRAY_LEN(names) ? names[code] : "?";
}

gpr_timespec ff_deadline_ms(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

int ff_addr_is_loopback(const char *addr)
{
    char host[256];
    if (strncmp(addr, "ipv4:", 5) == 0 || strncmp(addr, "ipv6:", 5) == 0)
        addr += 5;
    else if (strncmp(addr, "dns:", 4) == 0)
        addr += 4;
    while (*addr == '/') /* dns:///host:port */
        addr++;
    const char *end;
    if (addr[0] == '[') { /* [v6]:port */
        end = strchr(++addr, ']');
        if (!end || (end[1] && end[1] != ':'))
            return 0;
    } else {
        end = strrchr(addr, ':');
        if (!end || strchr(addr, ':') != end) /* no port, or a bare IPv6 address */
            end = addr + strlen(addr);
    }
    size_t n = (size_t)(end - addr);
    if (n == 0 || n >= sizeof host)
        return 0;
    memcpy(host, addr, n);
    host[n] = 0;
    /* The whole host must be the address: "127.0.0.1.evil.example" is a DNS name. */
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return strcmp(host, "localhost") == 0;
}

/* ---- who refused a TLS handshake ------------------------------------------------------- */

/* gRPC tells the client only "handshake failed"; its log lines (and our verify callback) say
 * which side refused. Counted per process, so a caller compares before/after its call. */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static ff_tls_events tls_ev;

void ff_tls_note(int peer_refused, const char *why)
{
    pthread_mutex_lock(&tls_lock);
    if (peer_refused) {
        tls_ev.peer_refused++;
        snprintf(tls_ev.peer_why, sizeof tls_ev.peer_why, "%s", why);
    } else {
        tls_ev.we_refused++;
        snprintf(tls_ev.we_why, sizeof tls_ev.we_why, "%s", why);
    }
    pthread_mutex_unlock(&tls_lock);
}

void ff_tls_events_get(ff_tls_events *out)
{
    pthread_mutex_lock(&tls_lock);
    *out = tls_ev;
    pthread_mutex_unlock(&tls_lock);
}

/* ---- gRPC's log ------------------------------------------------------------------------ */

static void grpc_log_to_ff(gpr_log_func_args *a)
{
    ff_log_level lv = a->severity == GPR_LOG_SEVERITY_ERROR ? FF_LOG_WARN
                    : a->severity == GPR_LOG_SEVERITY_INFO ? FF_LOG_INFO : FF_LOG_DEBUG;
    const char *f = strrchr(a->file, '/');
    /* gRPC does not say whose certificate failed or why; say what it means for us. */
    const char *hint = strstr(a->message, "certificate verify failed")
        ? " [a peer certificate was refused at the TLS handshake: not issued by the consortium "
          "CA, expired or not yet valid; check it with `fedfuse pki check`]"
        : strstr(a->message, "wrong version number")
        ? " [a peer spoke plaintext or another protocol to the TLS port]" : "";
    if (strstr(a->message, "certificate verify failed"))
        ff_tls_note(0, "its certificate does not verify against our consortium CA (another "
                    "CA, expired or not yet valid)");
    else if (strstr(a->message, "Handshake failed") && strstr(a->message, "alert"))
        ff_tls_note(1, strstr(a->message, "alert"));
    ff_log(lv, "grpc: %s%s (%s:%d)", a->message, hint, f ? f + 1 : a->file,
           a->line);
}

static void log_init_once(void)
{
    gpr_set_log_function(grpc_log_to_ff);
}

void ff_transport_log_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, log_init_once);
}
