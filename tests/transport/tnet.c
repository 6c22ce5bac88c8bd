#include "tnet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void issue(const char *ca, const char *dir, const char *name, ff_pki_role role, int days,
                  int back)
{
    ff_pki_issue_opts o = {.name = name, .role = role, .days = days, .backdate_days = back};
    if (ff_pki_issue(ca, ft_path(dir, name), &o) != FF_OK)
        fail_msg("issue %s: %s", name, ff_error_message());
}

void tnet_pki(const char *dir)
{
    char ca[512], ca2[512];
    snprintf(ca, sizeof ca, "%s/ca", dir);
    snprintf(ca2, sizeof ca2, "%s/ca2", dir);
    assert_int_equal(ff_pki_init(ca, "test-consortium", 30), FF_OK);
    assert_int_equal(ff_pki_init(ca2, "other-consortium", 30), FF_OK);
    issue(ca, dir, "coord", FF_PKI_COORDINATOR, 0, 0);
    issue(ca, dir, "hospital-a", FF_PKI_SITE, 0, 0);
    issue(ca, dir, "hospital-b", FF_PKI_SITE, 0, 0);
    issue(ca, dir, "stranger", FF_PKI_SITE, 0, 0);
    issue(ca, dir, "revoked", FF_PKI_SITE, 0, 0);
    issue(ca, dir, "expired", FF_PKI_SITE, 1, 5);
    issue(ca2, dir, "foreign", FF_PKI_SITE, 0, 0);
    assert_int_equal(ff_pki_revoke(ca, ft_path(dir, "revoked/revoked.crt")), FF_OK);
    const char *yaml = "consortium: test-consortium\nca: ca/ca.crt\ncrl: ca/crl.pem\n"
                       "sites:\n  - name: hospital-a\n  - name: hospital-b\n"
                       "  - name: revoked\n  - name: expired\n  - name: foreign\n";
    ft_write_file(ft_path(dir, "consortium.yaml"), yaml, strlen(yaml));
}

void tnet_fill(uint64_t off, uint8_t *dst, size_t n)
{
    /* Word-wise mix of the offset: cheap, position-dependent, not periodic. */
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (off + i) >> 3;
        x ^= x >> 17;
        x *= 0x9E3779B97F4A7C15ull;
        dst[i] = (uint8_t)(x >> (8 * ((off + i) & 7)));
    }
}

/* ---- coordinator handlers -------------------------------------------------------------- */

static int on_hello(void *user, ff_call *c, const Fedfuse__HelloRequest *req,
                    Fedfuse__HelloReply *reply)
{
    tnet_coord *tc = user;
    if (req->protocol_version != FF_PROTOCOL_VERSION)
        return ff_error(FF_EINVAL, "protocol version %u, expected %d", req->protocol_version,
                        FF_PROTOCOL_VERSION);
    atomic_fetch_add(&tc->hellos, 1);
    reply->consortium = "test-consortium";
    reply->run_id = "run-1";
    reply->site = ff_call_strdup(c, c->site);
    reply->protocol_version = FF_PROTOCOL_VERSION;
    return FF_OK;
}

static int on_get_task(void *user, ff_call *c, const Fedfuse__TaskRequest *req,
                       Fedfuse__Task *reply)
{
    tnet_coord *tc = user;
    tc->last_deadline_ms = c->deadline_ms;
    /* A long-poll that honours cancellation: wait up to wait_ms for "work". */
    double t0 = ff_now();
    while (ff_now() - t0 < req->wait_ms / 1000.0 && !ff_call_cancelled(c)) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    reply->run_id = "run-1";
    reply->round = tc->current_round;
    reply->total_rounds = 10;
    reply->phase = FEDFUSE__PHASE__PHASE_TRAIN;
    reply->model_sha256.data = tc->blob_sha;
    reply->model_sha256.len = 32;
    reply->model_size = tc->blob_size;
    return FF_OK;
}

static int gen_read(void *ctx, uint64_t off, void *dst, size_t n)
{
    (void)ctx;
    tnet_fill(off, dst, n);
    return FF_OK;
}

static int on_download(void *user, ff_call *c, const Fedfuse__DownloadRequest *req,
                       ff_source *src)
{
    tnet_coord *tc = user;
    (void)c;
    if (memcmp(req->sha256.data, tc->blob_sha, 32) != 0)
        return ff_error(FF_ENOTFOUND, "no blob with that sha256");
    src->size = tc->blob_size;
    memcpy(src->sha256, tc->blob_sha, 32);
    if (tc->blob)
        src->buf = tc->blob;
    else
        src->read = gen_read;
    return FF_OK;
}

typedef struct {
    ff_sha256_ctx *h;
} hash_sink;

static int hash_write(void *ctx, uint64_t off, const void *p, size_t n)
{
    (void)off;
    ff_sha256_update(((hash_sink *)ctx)->h, p, n);
    return FF_OK;
}

static int on_upload_begin(void *user, ff_call *c, const Fedfuse__UploadHeader *hdr,
                           ff_sink *sink)
{
    tnet_coord *tc = user;
    if (hdr->round < tc->current_round)
        return ff_error(FF_ESTATE, "round %u is over (current %u)", hdr->round,
                        tc->current_round);
    if (tc->upload_buf) {
        if (hdr->total_size > tc->upload_cap)
            return ff_error(FF_ERANGE, "upload of %llu bytes too large",
                            (unsigned long long)hdr->total_size);
        sink->buf = tc->upload_buf;
        sink->cap = tc->upload_cap;
        return FF_OK;
    }
    hash_sink *hs = ff_call_alloc(c, sizeof *hs);
    if (!hs || ff_sha256_new(&hs->h) != FF_OK)
        return FF_ENOMEM;
    sink->write = hash_write;
    sink->ctx = hs;
    return FF_OK;
}

static int on_upload_end(void *user, ff_call *c, const Fedfuse__UploadHeader *hdr, ff_sink *sink,
                         int status)
{
    tnet_coord *tc = user;
    (void)c;
    (void)hdr;
    if (!tc->upload_buf) {
        uint8_t d[32];
        ff_sha256_final(((hash_sink *)sink->ctx)->h, d);
    }
    if (status == FF_OK)
        atomic_fetch_add(&tc->uploads_ok, 1);
    return FF_OK;
}

static int on_status(void *user, ff_call *c, const Fedfuse__StatusRequest *req,
                     Fedfuse__StatusReply *reply)
{
    (void)user;
    (void)c;
    (void)req;
    reply->consortium = "test-consortium";
    return FF_OK;
}

void tnet_coord_start(tnet_coord *tc, const char *dir, int insecure)
{
    tnet_coord_start_port(tc, dir, insecure, 0);
}

void tnet_coord_start_port(tnet_coord *tc, const char *dir, int insecure, int port)
{
    char cert[512], key[512], cons[512], bind[64];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", port);
    snprintf(cert, sizeof cert, "%s/coord/coord.crt", dir);
    snprintf(key, sizeof key, "%s/coord/coord.key", dir);
    snprintf(cons, sizeof cons, "%s/consortium.yaml", dir);
    ff_server_opts so = {.bind = bind, .cert = cert, .key = key, .consortium = cons,
                         .insecure = insecure, .threads = 24,
                         .idle_timeout_ms = tc->idle_timeout_ms,
                         .site_max_calls = tc->lim.site_max_calls,
                         .upload_min_rate = tc->lim.upload_min_rate,
                         .upload_grace_ms = tc->lim.upload_grace_ms,
                         .handshake_timeout_ms = tc->lim.handshake_timeout_ms,
                         .watchdog_ms = tc->lim.watchdog_ms};
    ff_server_handlers h = {.user = tc, .hello = on_hello, .get_task = on_get_task,
                            .download = on_download, .upload_begin = on_upload_begin,
                            .upload_end = on_upload_end, .status = on_status};
    if (ff_server_start(&tc->srv, &so, &h) != FF_OK)
        fail_msg("server start: %s", ff_error_message());
    tc->port = ff_server_port(tc->srv);
    snprintf(tc->addr, sizeof tc->addr, "127.0.0.1:%d", tc->port);
}

void tnet_coord_stop(tnet_coord *tc)
{
    ff_server_stop(tc->srv);
    tc->srv = NULL;
}

ff_rpc *tnet_client(const char *dir, const char *name, const char *target, int attempts)
{
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof cert, "%s/%s/%s.crt", dir, name, name);
    snprintf(key, sizeof key, "%s/%s/%s.key", dir, name, name);
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    ff_rpc_opts o = {.target = target, .cert = cert, .key = key, .ca = ca,
                     .server_name = "localhost", .attempts = attempts, .backoff_ms = 100,
                     .backoff_max_ms = 1000, .keepalive_ms = 2000,
                     .keepalive_timeout_ms = 2000};
    ff_rpc *c = NULL;
    if (ff_rpc_new(&c, &o) != FF_OK)
        fail_msg("client: %s", ff_error_message());
    return c;
}

/* ---- relay ----------------------------------------------------------------------------- */

typedef struct {
    tnet_relay *r;
    int a, b;
} relay_conn;

static void *relay_pump(void *arg)
{
    relay_conn *rc = arg;
    tnet_relay *r = rc->r;
    static __thread uint8_t buf[1 << 16];
    struct pollfd p[2] = {{rc->a, POLLIN, 0}, {rc->b, POLLIN, 0}};
    for (;;) {
        if (atomic_load(&r->freeze)) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
            if (atomic_load(&r->stop))
                break;
            continue;
        }
        if (poll(p, 2, 50) < 0 || atomic_load(&r->stop))
            break;
        long long cut = atomic_load(&r->cut_after);
        if (cut && atomic_load(&r->forwarded) >= cut) {
            atomic_store(&r->cut_after, 0);
            atomic_fetch_add(&r->cuts, 1);
            if (atomic_load(&r->close_on_cut))
                atomic_store(&r->stop, 1);
            break;
        }
        int dead = 0;
        for (int i = 0; i < 2 && !dead; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            int delay = atomic_load(&r->delay_ms);
            if (n > 0 && delay > 0) {
                struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            if (n <= 0 || write(p[1 - i].fd, buf, (size_t)n) != n)
                dead = 1;
            else
                atomic_fetch_add(&r->forwarded, n);
        }
        if (dead)
            break;
    }
    shutdown(rc->a, SHUT_RDWR);
    shutdown(rc->b, SHUT_RDWR);
    close(rc->a);
    close(rc->b);
    free(rc);
    return NULL;
}

static void *relay_main(void *arg)
{
    tnet_relay *r = arg;
    for (;;) {
        struct pollfd p = {r->lfd, POLLIN, 0};
        if (atomic_load(&r->stop))
            break;
        if (poll(&p, 1, 50) <= 0)
            continue;
        int a = accept(r->lfd, NULL, NULL);
        if (a < 0)
            continue;
        int b = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->dst)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(b, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(a);
            close(b);
            continue;
        }
        relay_conn *rc = malloc(sizeof *rc);
        rc->r = r;
        rc->a = a;
        rc->b = b;
        pthread_t t;
        pthread_create(&t, NULL, relay_pump, rc);
        pthread_detach(t);
    }
    close(r->lfd);
    return NULL;
}

void tnet_relay_start(tnet_relay *r, int dst_port)
{
    memset(r, 0, sizeof *r);
    r->dst = dst_port;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(r->lfd, 16), 0);
    getsockname(r->lfd, (struct sockaddr *)&sa, &len);
    r->port = ntohs(sa.sin_port);
    pthread_create(&r->thread, NULL, relay_main, r);
}

void tnet_relay_stop(tnet_relay *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    struct timespec ts = {0, 120 * 1000000L}; /* let pumps notice and exit */
    nanosleep(&ts, NULL);
}

double tnet_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int tnet_file_has(const char *path, const char *needle)
{
    char *buf = NULL;
    size_t n;
    if (ff_file_read_all(path, 64u << 20, &buf, &n) != FF_OK)
        return 0;
    int has = strstr(buf, needle) != NULL;
    free(buf);
    return has;
}
