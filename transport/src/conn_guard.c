/* The connection guard: keeps gRPC's listener alive when peers hold many connections open
 * before authenticating (hostile review, issue #19 item 2; docs/security.md).
 *
 * gRPC 1.51's TCP server treats any accept4() error but EAGAIN/ECONNABORTED as fatal: after
 * "Failed accept4: Too many open files" it never accepts again, while the process lives on.
 * Its C API has no connection cap (the connection quota came in later releases) and takes
 * no accepted descriptors for TLS servers. So this file defines accept4() itself: the
 * executable's definitions take precedence over the C library's for libgrpc's calls (ELF
 * symbol interposition, as an LD_PRELOAD library would), and so does close(), which tells
 * the guard when gRPC lets a connection go. Every accepted connection passes the guard
 * before gRPC sees it:
 *   - while fewer than `cap` connections are open (the descriptor limit less a reserve for
 *     the process's own files), the connection is admitted;
 *   - past that, the oldest connection that has not yet made an authenticated call is shut
 *     down to make room (gRPC sees the end of the stream and closes it), so a flood of idle
 *     connections cannot keep an honest site out; if there is none, or too many are still
 *     being shut, the new connection is closed at once;
 *   - a connection whose descriptor leaves fewer than 8 free is closed at once;
 *   - EMFILE/ENFILE from the kernel (descriptors taken by something else) are absorbed with
 *     a spare descriptor (accept and close) and turned into EAGAIN, which gRPC survives.
 * Entries are checked against the socket's inode before a descriptor is shut down. */
#define _GNU_SOURCE
#include "transport_internal.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GUARD_PEER_MAX 64
#define GUARD_PORTS 8
#define GUARD_FD_MAX 65536 /* descriptors the guard tracks (LimitNOFILE in the unit) */

typedef struct {
    uint64_t ino;  /* 0 = free */
    double t;      /* admitted at (ff_now) */
    char peer[GUARD_PEER_MAX];
    uint8_t authed, evicted;
} guard_conn;

static struct {
    pthread_mutex_t mu;
    atomic_int on;
    int limit;        /* RLIMIT_NOFILE (soft) when the guard was set up */
    int cap;          /* connections open before the oldest unauthenticated one is evicted */
    int hard;         /* a descriptor number from here on is refused */
    int open, evicting; /* connections in tab; of them shut down, not yet closed */
    int top;          /* 1 + the highest descriptor in tab: scans stop there */
    int spare;        /* /dev/null, given up to accept-and-close on EMFILE */
    guard_conn *tab;  /* by descriptor, limit entries */
    ff_conn_guard_stats st;
    struct {
        int port;
        atomic_uint_fast64_t accepts;
    } ports[GUARD_PORTS];
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .spare = -1};

/* "ipv4:1.2.3.4:5" / "ipv6:::1:5" (brackets dropped, v4-mapped as ipv4), as gRPC's
 * grpc_call_get_peer spells a peer once normalised by peer_norm. */
static void peer_format(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    const char *fam = "ipv4";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof ip);
        } else {
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            fam = "ipv6";
        }
        port = ntohs(a->sin6_port);
    }
    snprintf(out, n, "%s:%s:%u", fam, ip, port);
}

/* gRPC writes "ipv6:[::1]:5" or "ipv6:%5B::1%5D:5": without the brackets, as peer_format. */
static void peer_norm(const char *in, char *out, size_t n)
{
    size_t k = 0;
    for (; *in && k + 1 < n; in++) {
        if (*in == '[' || *in == ']')
            continue;
        if (*in == '%' && (strncmp(in, "%5B", 3) == 0 || strncmp(in, "%5D", 3) == 0)) {
            in += 2;
            continue;
        }
        out[k++] = *in;
    }
    out[k] = '\0';
}

static uint64_t sock_ino(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? (uint64_t)st.st_ino : 0;
}

static void forget_locked(int fd)
{
    guard_conn *e = &g.tab[fd];
    if (!e->ino)
        return;
    g.open--;
    g.evicting -= e->evicted;
    memset(e, 0, sizeof *e);
}

/* Shuts down the oldest connection not yet authenticated (called with g.mu held); 0 when
 * there is none. gRPC sees the end of the stream and closes the descriptor itself. */
static int evict_oldest_locked(void)
{
    for (;;) {
        int best = -1;
        for (int fd = 0; fd < g.top; fd++) {
            const guard_conn *e = &g.tab[fd];
            if (e->ino && !e->authed && !e->evicted && (best < 0 || e->t < g.tab[best].t))
                best = fd;
        }
        if (best < 0)
            return 0;
        guard_conn *e = &g.tab[best];
        if (sock_ino(best) != e->ino) { /* closed behind our back: forget it */
            forget_locked(best);
            continue;
        }
        shutdown(best, SHUT_RDWR);
        e->evicted = 1;
        g.evicting++;
        g.st.evicted++;
        return 1;
    }
}

/* Decides on the connection just accepted; 1 = hand it to gRPC. */
static int admit(int fd, const struct sockaddr_storage *ss)
{
    pthread_mutex_lock(&g.mu);
    int ok = fd < g.hard &&
             (g.open - g.evicting < g.cap || (g.evicting < g.cap / 4 && evict_oldest_locked()));
    if (ok) {
        guard_conn *e = &g.tab[fd];
        forget_locked(fd);
        e->ino = sock_ino(fd);
        e->t = ff_now();
        peer_format(ss, e->peer, sizeof e->peer);
        g.top = FF_MAX(g.top, fd + 1);
        g.open++;
        g.st.admitted++;
    } else if (!ok) {
        g.st.refused++;
    }
    int warn = !ok && (g.st.refused & (g.st.refused - 1)) == 0; /* 1st, 2nd, 4th, ... */
    uint64_t refused = g.st.refused;
    int open = g.open;
    pthread_mutex_unlock(&g.mu);
    if (warn)
        ff_log(FF_LOG_WARN, "connection guard: %llu connection(s) refused so far: %d "
               "connections open (at most %d, descriptor limit %d)",
               (unsigned long long)refused, open, g.cap, g.limit);
    return ok;
}

static void count_accept(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    int port = ss.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
               : ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                          : -1;
    for (int i = 0; i < GUARD_PORTS; i++)
        if (atomic_load(&g.ports[i].accepts) && g.ports[i].port == port) {
            atomic_fetch_add(&g.ports[i].accepts, 1);
            return;
        }
}

/* The kernel has no descriptor for a waiting connection: accept it on the spare one and
 * close it (the peer sees a reset), so the listener's queue drains. -1 when impossible. */
static int shed_one(int listen_fd)
{
    pthread_mutex_lock(&g.mu);
    int ok = g.spare >= 0;
    if (ok) {
        syscall(SYS_close, g.spare); /* not close(): g.mu is held */
        int c = (int)syscall(SYS_accept4, listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            syscall(SYS_close, c);
        ok = c >= 0;
        g.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (ok)
            g.st.refused++;
    }
    pthread_mutex_unlock(&g.mu);
    return ok ? 0 : -1;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int c = (int)syscall(SYS_accept4, fd, (struct sockaddr *)&ss, &sl, flags);
        if (c < 0 && (errno == EMFILE || errno == ENFILE) && g.on) {
            if (shed_one(fd) == 0)
                continue;
            errno = EAGAIN; /* gRPC waits for the next connection instead of giving up */
            return -1;
        }
        if (c < 0)
            return c;
        count_accept(fd);
        if (g.on && !admit(c, &ss)) {
            close(c);
            continue;
        }
        if (addr && addrlen) {
            memcpy(addr, &ss, FF_MIN((size_t)*addrlen, (size_t)sl));
            *addrlen = sl;
        }
        return c;
    }
}

int close(int fd)
{
    if (atomic_load(&g.on) && fd >= 0 && fd < g.limit) {
        /* before the descriptor is free: after, another thread may accept on its number */
        pthread_mutex_lock(&g.mu);
        forget_locked(fd);
        pthread_mutex_unlock(&g.mu);
    }
    return (int)syscall(SYS_close, fd);
}

int ff_conn_guard_setup(int port, int *max_conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return ff_error(FF_EIO, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    /* The soft limit is a default, not a decision: take what the hard limit allows, up to
       the guard's table (descriptors above it are never admitted). */
    if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < GUARD_FD_MAX) {
        struct rlimit up = {.rlim_cur = FF_MIN(rl.rlim_max, (rlim_t)GUARD_FD_MAX),
                            .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = up.rlim_cur;
    }
    int limit = (int)FF_MIN(rl.rlim_cur, (rlim_t)GUARD_FD_MAX);
    pthread_mutex_lock(&g.mu);
    int rc = FF_OK;
    if (!g.tab) {
        /* descriptors kept back for the coordinator's own files and gRPC's internals: an
           eighth, at least 32 */
        int reserve = FF_MAX(32, limit / 8);
        g.limit = limit;
        g.cap = FF_MAX(limit - reserve, 8);
        g.hard = FF_MAX(limit - 8, 8);
        g.tab = calloc((size_t)limit, sizeof *g.tab);
        g.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* active only when libgrpc's accept4 is this one (it is unless linked statically) */
        g.on = g.tab && dlsym(RTLD_DEFAULT, "accept4") == (void *)accept4 &&
               dlsym(RTLD_DEFAULT, "close") == (void *)close;
        if (!g.tab)
            rc = ff_error(FF_ENOMEM, "connection guard: out of memory");
    }
    for (int i = 0; rc == FF_OK && port > 0 && i < GUARD_PORTS; i++)
        if (!atomic_load(&g.ports[i].accepts) || g.ports[i].port == port) {
            g.ports[i].port = port;
            if (!atomic_load(&g.ports[i].accepts))
                atomic_store(&g.ports[i].accepts, 1); /* 1 = registered, no accept yet */
            break;
        }
    *max_conns = g.on ? g.cap : 0;
    pthread_mutex_unlock(&g.mu);
    return rc;
}

int ff_conn_guard_active(void)
{
    return g.on;
}

uint64_t ff_conn_guard_accepts(int port)
{
    for (int i = 0; i < GUARD_PORTS; i++)
        if (g.ports[i].port == port && atomic_load(&g.ports[i].accepts))
            return (uint64_t)atomic_load(&g.ports[i].accepts) - 1;
    return 0;
}

void ff_conn_guard_authenticated(const char *grpc_peer)
{
    if (!g.on || !grpc_peer)
        return;
    char want[GUARD_PEER_MAX];
    peer_norm(grpc_peer, want, sizeof want);
    pthread_mutex_lock(&g.mu);
    for (int fd = 0; fd < g.top; fd++)
        if (g.tab[fd].ino && !g.tab[fd].authed && strcmp(g.tab[fd].peer, want) == 0) {
            g.tab[fd].authed = 1;
            break;
        }
    pthread_mutex_unlock(&g.mu);
}

void ff_conn_guard_stats_get(ff_conn_guard_stats *out)
{
    pthread_mutex_lock(&g.mu);
    *out = g.st;
    pthread_mutex_unlock(&g.mu);
}
