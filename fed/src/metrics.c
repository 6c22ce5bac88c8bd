/* Prometheus text exposition (version 0.0.4) over plain HTTP on the address a node's config
 * names (`metrics:`, off by default): one thread accepts a connection at a time, reads the
 * request line, and answers GET /metrics with what the render callback writes; anything else
 * is a 404. The listener is meant for loopback or a monitoring network: it serves counters
 * only, never patient data, and reads at most 4 KiB of a request. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fed_metrics.h"

struct fed_metrics {
    int fd;
    int port;
    volatile int stop;
    pthread_t th;
    fed_metrics_render render;
    void *ud;
};

void fed_metrics_family(ff_sbuf *b, const char *name, const char *type, const char *help)
{
    ff_sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void fed_metrics_process(ff_sbuf *b)
{
    long pages_total = 0, pages_res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2)
            pages_total = pages_res = 0;
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    fed_metrics_family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    ff_sbuf_printf(b, "process_resident_memory_bytes %ld\n", pages_res * page);
    fed_metrics_family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    ff_sbuf_printf(b, "process_virtual_memory_bytes %ld\n", pages_total * page);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void serve_one(fed_metrics *m, int fd)
{
    char req[4096];
    size_t got = 0;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    while (got + 1 < sizeof req) { /* up to the end of the header (we need the first line) */
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = '\0';
    int ok = strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0;
    ff_sbuf b = {0};
    if (ok)
        m->render(m->ud, &b);
    char head[256];
    if (ok && !b.oom) {
        int n = snprintf(head, sizeof head, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
                         "version=0.0.4; charset=utf-8\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n", b.len);
        write_all(fd, head, (size_t)n);
        write_all(fd, b.buf, b.len);
    } else {
        const char *msg = ok ? "HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
                             : "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 22\r\n\r\nonly GET /metrics here\n";
        write_all(fd, msg, strlen(msg));
    }
    ff_sbuf_free(&b);
}

static void *serve(void *arg)
{
    fed_metrics *m = arg;
    while (!m->stop) {
        struct pollfd p = {.fd = m->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept(m->fd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_one(m, fd);
        close(fd);
    }
    return NULL;
}

int fed_metrics_start(fed_metrics **out, const char *addr, fed_metrics_render render, void *ud)
{
    *out = NULL;
    char host[256] = "127.0.0.1", port[32];
    const char *colon = strrchr(addr, ':');
    if (colon) { /* host:port; a bare port means loopback */
        size_t hl = (size_t)(colon - addr);
        if (hl == 0 || hl >= sizeof host || strlen(colon + 1) >= sizeof port)
            return ff_error(FF_ECONFIG, "metrics: '%s' is not host:port", addr);
        memcpy(host, addr, hl);
        host[hl] = '\0';
        ff_strlcpy(port, colon + 1, sizeof port);
    } else {
        ff_strlcpy(port, addr, sizeof port);
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0)
        return ff_error(FF_ECONFIG, "metrics: %s: %s", addr, gai_strerror(g));
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        int e = errno;
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return ff_error(FF_ENET, "metrics: cannot listen on %s: %s", addr, strerror(e));
    }
    freeaddrinfo(res);
    fed_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return ff_error(FF_ENOMEM, "metrics: out of memory");
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        m->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    m->fd = fd;
    m->render = render;
    m->ud = ud;
    if (pthread_create(&m->th, NULL, serve, m) != 0) {
        close(fd);
        free(m);
        return ff_error(FF_ENOMEM, "metrics: cannot start its thread");
    }
    FF_LOG_INFO("metrics: Prometheus text on http://%s:%d/metrics", host, m->port);
    *out = m;
    return FF_OK;
}

void fed_metrics_stop(fed_metrics *m)
{
    if (!m)
        return;
    m->stop = 1;
    pthread_join(m->th, NULL);
    close(m->fd);
    free(m);
}
