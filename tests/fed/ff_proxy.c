/* ff_proxy: a TCP proxy on loopback for the link-fault tests (tests/fed/fault_net.sh), the
 * process-level sibling of tests/transport's in-process relay (tnet.c).
 *
 *   ff_proxy PORTFILE DST_PORT [--cut-every BYTES] [--cuts N] [--down-ms MS]
 *
 * Listens on 127.0.0.1:0 and writes the port to PORTFILE (written whole, then renamed, so a
 * reader never sees half a number); forwards every connection to 127.0.0.1:DST_PORT.
 *   --cut-every BYTES  after each BYTES forwarded (both directions), every open connection is
 *                      reset (SO_LINGER 0: the peers see ECONNRESET mid-message), at most
 *                      --cuts N times (default 1). Byte-driven, so the cuts land inside model
 *                      downloads and update uploads rather than at a random time.
 *   --down-ms MS       after each cut the link stays down for MS: new connections are reset
 *                      at once, so the clients have to back off and retry.
 *   SIGUSR1            cut every open connection now (same as a --cut-every cut).
 *   SIGUSR2            toggle a stall: nothing is forwarded and nothing is closed (a silent dead
 *                      link); new connections are accepted and stall too.
 *   SIGTERM            print the counters and exit.
 * Each event is one line on stderr ("proxy: cut 3 connections after 1048576 bytes").
 * Single-threaded: one poll loop, non-blocking sockets, one 64 KiB buffer per direction. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 64
#define BUFSZ 65536

typedef struct {
    int fd[2];          /* 0: accepted (client side), 1: towards DST */
    char buf[2][BUFSZ]; /* buf[i]: read from fd[i], to be written to fd[1 - i] */
    size_t len[2], off[2];
} conn;

static conn *conns[MAXC];
static volatile sig_atomic_t want_cut, want_stall_toggle, want_exit;

static void on_signal(int s)
{
    if (s == SIGUSR1)
        want_cut = 1;
    else if (s == SIGUSR2)
        want_stall_toggle = 1;
    else
        want_exit = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reset rather than FIN: a cut link does not say goodbye. */
static void hard_close(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void conn_drop(int i)
{
    hard_close(conns[i]->fd[0]);
    hard_close(conns[i]->fd[1]);
    free(conns[i]);
    conns[i] = NULL;
}

static int cut_all(void)
{
    int n = 0;
    for (int i = 0; i < MAXC; i++)
        if (conns[i]) {
            conn_drop(i);
            n++;
        }
    return n;
}

static int dial(int port)
{
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (b < 0 || connect(b, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (b >= 0)
            close(b);
        return -1;
    }
    return b;
}

static void accept_one(int lfd, int dst, int down)
{
    int a = accept(lfd, NULL, NULL);
    if (a < 0)
        return;
    int b = down ? -1 : dial(dst);
    int slot = -1;
    for (int i = 0; i < MAXC && slot < 0; i++)
        if (!conns[i])
            slot = i;
    conn *c = b >= 0 && slot >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        hard_close(a);
        if (b >= 0)
            close(b);
        return;
    }
    fcntl(a, F_SETFL, O_NONBLOCK);
    fcntl(b, F_SETFL, O_NONBLOCK);
    c->fd[0] = a;
    c->fd[1] = b;
    conns[slot] = c;
}

/* Moves what is ready on connection i; returns bytes forwarded, -1 when it closed. */
static long pump(conn *c, const struct pollfd *p)
{
    long moved = 0;
    for (int s = 0; s < 2; s++) {
        if (p[s].revents & (POLLERR | POLLNVAL))
            return -1;
        if ((p[s].revents & (POLLIN | POLLHUP)) && c->len[s] == 0) {
            ssize_t n = read(c->fd[s], c->buf[s], BUFSZ);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                return -1;
            if (n > 0) {
                c->len[s] = (size_t)n;
                c->off[s] = 0;
            }
        }
        int d = 1 - s; /* fd[s] writable: send what came from fd[d] */
        if ((p[s].revents & POLLOUT) && c->len[d] > c->off[d]) {
            ssize_t n = write(c->fd[s], c->buf[d] + c->off[d], c->len[d] - c->off[d]);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            if (n > 0) {
                c->off[d] += (size_t)n;
                moved += n;
                if (c->off[d] == c->len[d])
                    c->len[d] = c->off[d] = 0;
            }
        }
    }
    return moved;
}

static int listen_loopback(const char *portfile)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
        perror("proxy: listen");
        return -1;
    }
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0 ||
        rename(tmp, portfile) != 0) {
        fprintf(stderr, "proxy: cannot write %s\n", portfile);
        return -1;
    }
    return lfd;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ff_proxy PORTFILE DST_PORT [--cut-every BYTES] [--cuts N] "
                        "[--down-ms MS]\n");
        return 2;
    }
    int dst = atoi(argv[2]);
    long long cut_every = 0;
    int max_cuts = 1, down_ms = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cut-every"))
            cut_every = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--cuts"))
            max_cuts = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--down-ms"))
            down_ms = atoi(argv[i + 1]);
    }
    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGUSR1, &act, NULL);
    sigaction(SIGUSR2, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);
    int lfd = listen_loopback(argv[1]);
    if (lfd < 0)
        return 1;
    long long total = 0, since_cut = 0;
    int cuts = 0, stalled = 0;
    double down_until = 0;
    while (!want_exit) {
        if (want_stall_toggle) {
            want_stall_toggle = 0;
            stalled = !stalled;
            fprintf(stderr, "proxy: %s after %lld bytes\n", stalled ? "stalled" : "resumed",
                    total);
        }
        int auto_cut = cut_every > 0 && cuts < max_cuts && since_cut >= cut_every;
        if (want_cut || auto_cut) {
            want_cut = 0;
            int n = cut_all();
            cuts++;
            since_cut = 0;
            down_until = now_s() + down_ms / 1000.0;
            fprintf(stderr, "proxy: cut %d connections after %lld bytes (cut %d)\n", n, total,
                    cuts);
        }
        struct pollfd p[1 + 2 * MAXC];
        int map[1 + 2 * MAXC];
        int np = 0;
        p[np++] = (struct pollfd){lfd, POLLIN, 0};
        for (int i = 0; i < MAXC && !stalled; i++) {
            conn *c = conns[i];
            if (!c)
                continue;
            for (int s = 0; s < 2; s++) {
                short ev = (short)((c->len[s] == 0 ? POLLIN : 0) |
                                   (c->len[1 - s] > c->off[1 - s] ? POLLOUT : 0));
                map[np] = i;
                p[np++] = (struct pollfd){c->fd[s], ev, 0};
            }
        }
        if (poll(p, (nfds_t)np, 50) < 0) {
            if (errno == EINTR)
                continue;
            perror("proxy: poll");
            return 1;
        }
        if (p[0].revents & POLLIN)
            accept_one(lfd, dst, now_s() < down_until);
        for (int k = 1; k < np; k += 2) {
            int i = map[k];
            if (!conns[i])
                continue;
            long m = pump(conns[i], &p[k]);
            if (m < 0) {
                conn_drop(i);
                continue;
            }
            total += m;
            since_cut += m;
        }
    }
    fprintf(stderr, "proxy: exit after %lld bytes, %d cuts\n", total, cuts);
    cut_all();
    close(lfd);
    return 0;
}
