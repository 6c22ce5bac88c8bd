/* `fedfuse doctor`: every check a node needs before it runs, one line each (docs/operations.md,
 * "fedfuse doctor"). A site config gets the local checks (config, files and permissions, key and
 * certificate, data, policy, disk) and the path to the coordinator step by step (DNS, TCP, TLS
 * handshake with our certificate, an authenticated Status call, clock skew), through the
 * outbound proxy when one is set; a coordinator config gets its own files, certificate, CRL,
 * consortium, plan and disk. A check that cannot run because an earlier one failed is "skip". */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fed_internal.h"

#define DOCTOR_EXPIRY_DAYS 30
#define DOCTOR_CRL_DAYS 7 /* the coordinator warns from limits.crl_warn_days, default 7 */
#define DOCTOR_SKEW_MAX_S 30.0      /* deadlines travel as wall-clock times */
#define DOCTOR_DISK_MIN (1ull << 30) /* checkpoints, receipts, logs */
#define DOCTOR_TIMEOUT_MS 5000

typedef struct {
    FILE *out;
    int json;
    json_t *checks;
    int failed;
} doctor;

static void report(doctor *d, const char *status, const char *check, const char *fmt, ...)
    FF_PRINTF(4, 5);

static void report(doctor *d, const char *status, const char *check, const char *fmt, ...)
{
    char detail[768] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    if (strcmp(status, "FAIL") == 0)
        d->failed++;
    if (d->json) {
        json_array_append_new(d->checks, json_pack("{s:s, s:s, s:s}", "check", check, "status",
                                                   status, "detail", detail));
        return;
    }
    if (strcmp(status, "ok") == 0)
        fprintf(d->out, detail[0] ? "ok %s (%s)\n" : "ok %s\n", check, detail);
    else
        fprintf(d->out, "%s %s: %s\n", status, check, detail);
}

#define OK(d, check, ...) report(d, "ok", check, __VA_ARGS__)
#define FAIL(d, check, ...) report(d, "FAIL", check, __VA_ARGS__)
#define SKIP(d, check, ...) report(d, "skip", check, __VA_ARGS__)

/* ---- files ---------------------------------------------------------------------------------- */

typedef struct {
    const char *what, *path;
    int secret; /* a private key: no access for others, no write for the group */
    int dir;
} doctor_file;

/* Exists, is the right kind, and its mode is safe: secrets 0600 or 0640 (root:fedfuse), nothing
 * world-writable. Returns 1 when usable. */
static int check_files(doctor *d, const doctor_file *f, size_t n)
{
    int all = 1;
    char missing[1024] = "";
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!f[i].path[0])
            continue;
        if (stat(f[i].path, &st) != 0 || (f[i].dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof missing - l, "%s%s %s (%s)", l ? "; " : "", f[i].what,
                     f[i].path, errno && stat(f[i].path, &st) != 0 ? strerror(errno)
                                                                   : "not a regular file/folder");
            all = 0;
        }
    }
    if (missing[0])
        FAIL(d, "files exist", "%s: fix the path in the config or install the file", missing);
    else
        OK(d, "files exist", NULL);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!f[i].path[0] || stat(f[i].path, &st) != 0)
            continue;
        unsigned mode = st.st_mode & 07777;
        char check[64];
        snprintf(check, sizeof check, "%s permissions", f[i].what);
        if (f[i].secret && (mode & 0027))
            FAIL(d, check, "%s is mode %04o (%s); fix: chmod 0600 %s (or 0640 owned by "
                 "root:fedfuse)", f[i].path, mode,
                 (mode & 0007) ? "readable by every user" : "writable by its group", f[i].path);
        else if (mode & 0002)
            FAIL(d, check, "%s is mode %04o (writable by every user); fix: chmod o-w %s",
                 f[i].path, mode, f[i].path);
        else if (f[i].secret)
            OK(d, check, "%04o", mode);
    }
    return all;
}

/* ---- certificates ------------------------------------------------------------------------------ */

/* Days from now until t (negative: in the past). */
static double days_until(const ASN1_TIME *t)
{
    int days = 0, secs = 0;
    if (!t || ASN1_TIME_diff(&days, &secs, NULL, t) != 1)
        return NAN;
    return days + secs / 86400.0;
}

/* Key matches certificate, chains to the CA within its dates, not revoked (crl may be NULL),
 * not expiring within 30 days, the CRL not stale, and the CN. Writes the CN. */
static void check_certificate(doctor *d, const char *cert_path, const char *key_path,
                              const char *ca_path, const char *crl_path, ff_pki_role want,
                              char *cn, size_t cn_len)
{
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *key = NULL;
    X509_CRL *crl = NULL;
    cn[0] = '\0';
    if (ff_pki_load_cert(cert_path, &x) != FF_OK) {
        FAIL(d, "certificate readable", "%s; fix: install the certificate the CA signed", ff_error_message());
        goto out;
    }
    if (ff_pki_load_key(key_path, &key) != FF_OK)
        FAIL(d, "key matches certificate", "%s; fix: install the Ed25519 key made by `fedfuse pki csr`",
             ff_error_message());
    else if (X509_check_private_key(x, key) != 1)
        FAIL(d, "key matches certificate", "%s does not belong to %s; fix: install the certificate "
             "signed for this key (or the key its request came from)", key_path, cert_path);
    else
        OK(d, "key matches certificate", NULL);
    ERR_clear_error();
    if (ff_pki_cert_cn(x, cn, cn_len) != FF_OK)
        cn[0] = '\0';
    ff_pki_role role;
    if (ff_pki_cert_role(x, &role) != FF_OK)
        FAIL(d, "certificate role", "%s: %s; fix: a new certificate with --role %s", cert_path,
             ff_error_message(), ff_pki_role_name(want));
    else if (role != want)
        FAIL(d, "certificate role", "%s has role %s, this node needs %s; fix: a certificate "
             "issued with --role %s", cert_path, ff_pki_role_name(role), ff_pki_role_name(want),
             ff_pki_role_name(want));
    else
        OK(d, "certificate role", "%s", ff_pki_role_name(role));
    if (ff_pki_load_cert(ca_path, &ca) != FF_OK) {
        FAIL(d, "certificate chains to CA", "%s; fix: install the consortium's ca.crt", ff_error_message());
        goto out;
    }
    if (crl_path && crl_path[0] && ff_pki_load_crl(crl_path, ca, &crl) != FF_OK) {
        FAIL(d, "CRL not stale", "%s; fix: copy the CA's current crl.pem (fedfuse pki revoke writes it)",
             ff_error_message());
        crl = NULL;
    }
    /* the chain alone first, so a revoked certificate is named as such and not as a bad chain */
    char tmp[FF_SITE_NAME_MAX];
    int rc = ff_pki_check_peer(ca, NULL, x, tmp, sizeof tmp);
    if (rc != FF_OK)
        FAIL(d, "certificate chains to CA", "%s: %s (against %s); fix: a certificate signed by "
             "this consortium's CA, valid now (pki csr + pki sign)", cert_path, ff_error_message(), ca_path);
    else
        OK(d, "certificate chains to CA", NULL);
    if (crl) {
        X509_REVOKED *rev = NULL;
        if (X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(x)) == 1)
            FAIL(d, "certificate not revoked", "%s is on the revocation list %s; fix: ask the "
                 "consortium operator for a new certificate (pki csr + pki sign)", cert_path, crl_path);
        else
            OK(d, "certificate not revoked", "checked against %s", crl_path);
        double next = days_until(X509_CRL_get0_nextUpdate(crl));
        if (isnan(next) || next < 0)
            FAIL(d, "CRL not stale", "%s: its next update was due %.0f days ago; fix: the CA "
                 "operator re-signs it (fedfuse pki crl) and copies it here", crl_path, -next);
        else if (next < DOCTOR_CRL_DAYS)
            FAIL(d, "CRL not stale", "%s expires in %.1f days, after which the coordinator "
                 "refuses every site; fix: the CA operator re-signs it now (fedfuse pki crl, or "
                 "deploy/fedfuse-crl.timer) and copies it here", crl_path, next);
        else
            OK(d, "CRL not stale", "next update in %.0f days", next);
    }
    double left = days_until(X509_get0_notAfter(x));
    if (isnan(left) || left < 0)
        FAIL(d, "certificate not expiring", "%s expired %.0f days ago; fix: a new certificate "
             "(pki csr + pki sign)", cert_path, isnan(left) ? 0 : -left);
    else if (left < DOCTOR_EXPIRY_DAYS)
        FAIL(d, "certificate not expiring", "%s expires in %.0f days; fix: renew it now (pki csr "
             "+ pki sign)", cert_path, left);
    else
        OK(d, "certificate not expiring", "%.0f days left", left);
out:
    ERR_clear_error();
    X509_CRL_free(crl);
    EVP_PKEY_free(key);
    X509_free(x);
    X509_free(ca);
}

static void check_disk(doctor *d, const char *dir)
{
    char probe[1024];
    ff_strlcpy(probe, dir[0] ? dir : ".", sizeof probe);
    struct statvfs sv;
    /* the folder may not exist yet: measure the nearest existing parent */
    while (statvfs(probe, &sv) != 0) {
        char *slash = strrchr(probe, '/');
        if (!slash || slash == probe) {
            ff_strlcpy(probe, slash == probe ? "/" : ".", sizeof probe);
            if (statvfs(probe, &sv) != 0) {
                FAIL(d, "free disk", "%s: %s", dir, strerror(errno));
                return;
            }
            break;
        }
        *slash = '\0';
    }
    unsigned long long avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
    if (avail < DOCTOR_DISK_MIN)
        FAIL(d, "free disk", "%s has %.2f GiB free, fewer than 1 GiB for checkpoints and receipts; "
             "fix: free space or move out_dir", probe, avail / 1073741824.0);
    else
        OK(d, "free disk", "%.1f GiB free in %s", avail / 1073741824.0, probe);
}

/* ---- the path to the coordinator ---------------------------------------------------------------- */

static int split_host_port(const char *target, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || !colon[1])
        return ff_error(FF_EINVAL, "'%s' is not host:port", target);
    const char *h = target;
    size_t len = (size_t)(colon - target);
    if (h[0] == '[' && len > 2 && h[len - 1] == ']') { /* [v6]:port */
        h++;
        len -= 2;
    }
    if (len >= hn || strlen(colon + 1) >= pn)
        return ff_error(FF_EINVAL, "'%s': too long", target);
    memcpy(host, h, len);
    host[len] = '\0';
    ff_strlcpy(port, colon + 1, pn);
    return FF_OK;
}

/* TCP connection to host:port (first address that answers); -1 with errno's text in why. */
static int tcp_connect(const char *host, const char *port, char *why, size_t wn)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        snprintf(why, wn, "%s", gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = DOCTOR_TIMEOUT_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            snprintf(why, wn, "%s", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Asks an HTTP proxy (already connected on fd) for a tunnel to target. */
static int proxy_connect(int fd, const char *target, char *why, size_t wn)
{
    char req[600], resp[1024];
    int n = snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
    if (write(fd, req, (size_t)n) != n) {
        snprintf(why, wn, "writing to the proxy: %s", strerror(errno));
        return -1;
    }
    size_t got = 0;
    while (got + 1 < sizeof resp) { /* the reply header, byte by byte so no TLS byte is eaten */
        ssize_t r = read(fd, resp + got, 1);
        if (r <= 0) {
            snprintf(why, wn, "the proxy closed the connection");
            return -1;
        }
        got++;
        resp[got] = '\0';
        if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    int code = 0;
    if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1 || code != 200) {
        char *eol = strchr(resp, '\r');
        if (eol)
            *eol = '\0';
        snprintf(why, wn, "the proxy refused CONNECT %s: '%.100s'", target, resp);
        return -1;
    }
    return 0;
}

/* TLS 1.3 with our certificate, checking the coordinator's against the CA and its name. */
static int tls_handshake(int fd, const ff_fed_site_config *sc, const char *host, char *why,
                         size_t wn)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int ok = -1;
    static const unsigned char alpn[] = {2, 'h', '2'};
    const char *name = sc->server_name[0] ? sc->server_name : host;
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(ctx, sc->ca, NULL) != 1 ||
        SSL_CTX_use_certificate_file(ctx, sc->cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, sc->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn) != 0 || !(ssl = SSL_new(ctx))) {
        snprintf(why, wn, "cannot set up TLS with %s / %s / %s", sc->cert, sc->key, sc->ca);
        goto out;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    SSL_set_tlsext_host_name(ssl, name);
    SSL_set1_host(ssl, name);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        unsigned long e = ERR_peek_last_error();
        if (v != X509_V_OK)
            snprintf(why, wn, "the coordinator's certificate is not accepted: %s (name %s)",
                     X509_verify_cert_error_string(v), name);
        else
            snprintf(why, wn, "%s", e ? ERR_reason_error_string(e) : "handshake failed");
        goto out;
    }
    ok = 0;
    SSL_shutdown(ssl);
out:
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return ok;
}

/* The proxy a client uses for target: the config's, else grpc_proxy / https_proxy /
 * http_proxy (gRPC's order), "" for none. Returns host:port of the proxy in out. */
static void proxy_for(const ff_fed_site_config *sc, char *out, size_t n)
{
    const char *p = sc->proxy[0] ? sc->proxy : NULL;
    const char *env[] = {"grpc_proxy", "https_proxy", "http_proxy"};
    for (size_t i = 0; !p && i < FF_ARRAY_LEN(env); i++)
        if (getenv(env[i]) && getenv(env[i])[0])
            p = getenv(env[i]);
    out[0] = '\0';
    if (!p)
        return;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    ff_strlcpy(out, p, n);
    char *slash = strchr(out, '/');
    if (slash)
        *slash = '\0';
}

static void check_coordinator_link(doctor *d, const ff_fed_site_config *sc)
{
    char host[256], port[32], why[512] = "", proxy[256], via[300] = "";
    if (split_host_port(sc->coordinator, host, sizeof host, port, sizeof port) != FF_OK) {
        FAIL(d, "coordinator DNS", "coordinator: %s; fix: host:port in the config", ff_error_message());
        return;
    }
    proxy_for(sc, proxy, sizeof proxy);
    char dhost[256], dport[32];
    if (proxy[0]) {
        snprintf(via, sizeof via, " via proxy %s", proxy);
        if (split_host_port(proxy, dhost, sizeof dhost, dport, sizeof dport) != FF_OK) {
            FAIL(d, "coordinator DNS", "proxy '%s' is not host:port; fix: the proxy key or "
                 "https_proxy", proxy);
            return;
        }
    } else {
        ff_strlcpy(dhost, host, sizeof dhost);
        ff_strlcpy(dport, port, sizeof dport);
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(dhost, dport, &hints, &res);
    if (g != 0) {
        FAIL(d, "coordinator DNS", "cannot resolve %s: %s; fix: the host name in the config, or "
             "this machine's DNS", dhost, gai_strerror(g));
        SKIP(d, "coordinator TCP", "no address");
        SKIP(d, "coordinator TLS handshake", "no address");
        SKIP(d, "coordinator authenticated ping", "no address");
        SKIP(d, "clock skew", "no answer from the coordinator");
        return;
    }
    char addr[INET6_ADDRSTRLEN] = "?";
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr,
                  addr, sizeof addr);
    else if (res->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)res->ai_addr)->sin6_addr,
                  addr, sizeof addr);
    freeaddrinfo(res);
    OK(d, "coordinator DNS", "%s is %s%s", dhost, addr, proxy[0] ? " (the proxy)" : "");
    int fd = tcp_connect(dhost, dport, why, sizeof why);
    if (fd >= 0 && proxy[0] && proxy_connect(fd, sc->coordinator, why, sizeof why) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        FAIL(d, "coordinator TCP", "cannot connect to %s%s (%s): the coordinator is down or a "
             "firewall blocks the port; fix: ask the consortium whether it runs, allow outbound "
             "TCP to port %s", sc->coordinator, via, why, port);
        SKIP(d, "coordinator TLS handshake", "no TCP connection");
        SKIP(d, "coordinator authenticated ping", "no TCP connection");
        SKIP(d, "clock skew", "no answer from the coordinator");
        return;
    }
    OK(d, "coordinator TCP", "%s%s", sc->coordinator, via);
    int tls = tls_handshake(fd, sc, host, why, sizeof why);
    close(fd);
    if (tls != 0) {
        FAIL(d, "coordinator TLS handshake", "%s; fix: check ca (the consortium's ca.crt), "
             "server_name, and that the certificate is this consortium's (fedfuse pki check)", why);
        SKIP(d, "coordinator authenticated ping", "no TLS");
        SKIP(d, "clock skew", "no answer from the coordinator");
        return;
    }
    OK(d, "coordinator TLS handshake", "mutual TLS%s", via);

    ff_rpc_opts o = {.target = sc->coordinator, .cert = sc->cert, .key = sc->key, .ca = sc->ca,
                     .server_name = sc->server_name[0] ? sc->server_name : NULL,
                     .proxy = sc->proxy[0] ? sc->proxy : NULL, .attempts = 1};
    ff_rpc *c = NULL;
    Fedfuse__StatusReply *st = NULL;
    double t0 = ff_wall_time(), t1 = t0;
    int rc = ff_rpc_new(&c, &o);
    if (rc == FF_OK) {
        rc = ff_rpc_status(c, &st, DOCTOR_TIMEOUT_MS);
        t1 = ff_wall_time();
    }
    if (rc != FF_OK) {
        const char *msg = ff_error_message();
        if (strstr(msg, "revoked")) {
            SKIP(d, "coordinator authenticated ping", "refused: certificate revoked");
            FAIL(d, "certificate not revoked", "the coordinator refuses this certificate: %s; fix: "
                 "ask the consortium operator for a new certificate (pki csr + pki sign)", msg);
        } else if (strstr(msg, "not enrolled")) {
            FAIL(d, "coordinator authenticated ping", "%s; fix: ask the consortium operator to "
                 "list site '%s' in the consortium file", msg, sc->site);
        } else {
            FAIL(d, "coordinator authenticated ping", "%s", msg);
        }
        SKIP(d, "clock skew", "no answer from the coordinator");
        ff_rpc_free(c);
        return;
    }
    OK(d, "coordinator authenticated ping", "consortium %s, round trip %.1f ms",
       st->consortium ? st->consortium : "?", (t1 - t0) * 1e3);
    int64_t now = st->detail ? st->detail->now_unix_ms : 0;
    if (now <= 0) {
        SKIP(d, "clock skew", "the coordinator does not report its clock (older version)");
    } else {
        double skew = (double)now / 1e3 - (t0 + t1) / 2;
        if (fabs(skew) > DOCTOR_SKEW_MAX_S)
            FAIL(d, "clock skew", "the coordinator's clock is %+.1f s from ours (more than %.0f s); "
                 "fix: run NTP (timedatectl set-ntp true) here and ask the consortium to",
                 skew, DOCTOR_SKEW_MAX_S);
        else
            OK(d, "clock skew", "%+.3f s, round trip %.1f ms", skew, (t1 - t0) * 1e3);
    }
    ff_msg_free(st);
    ff_rpc_free(c);
}

/* ---- site and coordinator ------------------------------------------------------------------------ */

static void check_policy(doctor *d, const ff_fed_site_config *sc)
{
    ff_policy p;
    if (ff_policy_load(sc->policy, &p) != FF_OK) {
        FAIL(d, "policy", "%s; fix: the policy file (configs/site-policy.example.yaml)",
             ff_error_message());
    } else if (strcmp(p.site, sc->site) != 0) {
        FAIL(d, "policy", "%s is the policy of site '%s', this node is '%s'; fix: site: in the "
             "policy", sc->policy, p.site, sc->site);
    } else if (p.accepted_jobs.count == 0) {
        FAIL(d, "policy", "%s accepts no job; fix: add the approved job hash to accepted_jobs",
             sc->policy);
    } else {
        OK(d, "policy", "accepts %zu job(s): %.12s…", p.accepted_jobs.count, p.accepted_jobs.items[0]);
    }
    ff_policy_free(&p);
}

static void check_data(doctor *d, const ff_fed_site_config *sc)
{
    ff_data_shape sh;
    if (ff_client_shape_load(sc->model_config, &sh) != FF_OK) {
        FAIL(d, "data check", "model_config: %s", ff_error_message());
        return;
    }
    ff_site_opts so = ff_site_opts_default();
    ff_load_report rep;
    ff_site *s = NULL;
    if (ff_site_load(&s, sc->data, &sh, &so, &rep) != FF_OK) {
        FAIL(d, "data check", "%s; fix: run `fedfuse data check %s` and correct the export",
             ff_error_message(), sc->data);
        return;
    }
    OK(d, "data check", "%zu training, %zu test patients", ff_site_count(s, FF_SPLIT_TRAIN),
       ff_site_count(s, FF_SPLIT_TEST));
    ff_site_free(s);
}

static void doctor_site(doctor *d, const ff_fed_site_config *sc)
{
    doctor_file files[] = {
        {"cert", sc->cert, 0, 0},         {"key", sc->key, 1, 0},
        {"ca", sc->ca, 0, 0},             {"model_config", sc->model_config, 0, 0},
        {"policy", sc->policy, 0, 0},     {"data", sc->data, 0, 1},
    };
    int have = check_files(d, files, FF_ARRAY_LEN(files));
    char cn[FF_SITE_NAME_MAX] = "";
    if (ff_path_exists(sc->cert) && ff_path_exists(sc->key) && ff_path_exists(sc->ca)) {
        check_certificate(d, sc->cert, sc->key, sc->ca, NULL, FF_PKI_SITE, cn, sizeof cn);
        SKIP(d, "CRL not stale", "a site keeps no CRL; the coordinator checks revocation (below)");
        if (strcmp(cn, sc->site) != 0)
            FAIL(d, "site name matches certificate", "site: '%s' but the certificate's CN is '%s'; "
                 "fix: site: in the config, or a certificate for '%s'", sc->site, cn, sc->site);
        else
            OK(d, "site name matches certificate", "CN=%s", cn);
    }
    if (have || ff_path_exists(sc->policy))
        check_policy(d, sc);
    if (have)
        check_data(d, sc);
    check_disk(d, sc->out_dir);
    check_coordinator_link(d, sc);
}

static void doctor_coordinator(doctor *d, const ff_coord_config *cfg)
{
    if (!cfg->model_config[0] || !cfg->consortium[0] || !cfg->tls.cert[0] || !cfg->tls.key[0]) {
        FAIL(d, "coordinator config complete", "%s is empty; fix: set it (configs/coordinator.yaml)",
             !cfg->model_config[0] ? "model_config" : !cfg->consortium[0] ? "consortium"
             : !cfg->tls.cert[0] ? "tls.cert" : "tls.key");
        return;
    }
    ff_consortium cons;
    memset(&cons, 0, sizeof cons);
    int have_cons = ff_consortium_load(cfg->consortium, &cons) == FF_OK;
    if (!have_cons)
        FAIL(d, "consortium", "%s; fix: the consortium file (configs/consortium.example.yaml)",
             ff_error_message());
    else if (cons.sites.count == 0)
        FAIL(d, "consortium", "%s lists no site; fix: add the enrolled sites", cfg->consortium);
    else
        OK(d, "consortium", "%s: %zu enrolled sites", cons.consortium, cons.sites.count);
    doctor_file files[] = {
        {"tls.cert", cfg->tls.cert, 0, 0},      {"tls.key", cfg->tls.key, 1, 0},
        {"audit.cert", cfg->audit.cert, 0, 0},  {"audit.key", cfg->audit.key, 1, 0},
        {"model_config", cfg->model_config, 0, 0}, {"plan", cfg->plan, 0, 0},
        {"ca", have_cons ? cons.ca : "", 0, 0}, {"crl", have_cons ? cons.crl : "", 0, 0},
    };
    check_files(d, files, FF_ARRAY_LEN(files));
    char cn[FF_SITE_NAME_MAX];
    if (have_cons && ff_path_exists(cfg->tls.cert) && ff_path_exists(cons.ca))
        check_certificate(d, cfg->tls.cert, cfg->tls.key, cons.ca, cons.crl, FF_PKI_COORDINATOR,
                          cn, sizeof cn);
    ff_plan p;
    memset(&p, 0, sizeof p);
    int rc = cfg->plan[0] ? ff_plan_load(&p, cfg->plan, cfg->rounds)
                          : ff_plan_load_str(&p, "(default plan)", "", 0, cfg->rounds);
    char *model = NULL;
    size_t mlen = 0;
    char hash[FF_SHA256_HEX];
    if (rc == FF_OK && cfg->model_config[0])
        rc = ff_file_read_all(cfg->model_config, 16u << 20, &model, &mlen);
    if (rc == FF_OK)
        rc = ff_job_hash(&p, model ? model : "", mlen, hash);
    if (rc != FF_OK)
        FAIL(d, "plan", "%s", ff_error_message());
    else
        OK(d, "plan", "%zu stage(s), job sha256 %.12s…", p.stages.count, hash);
    free(model);
    ff_plan_free(&p);
    check_disk(d, cfg->out_dir);
    ff_consortium_free(&cons);
}

int ff_fed_doctor(const char *config_path, int json, FILE *out, int *failed)
{
    doctor d = {.out = out, .json = json, .checks = json_array()};
    const char *kind = "site";
    ff_fed_site_config sc;
    ff_coord_config cc;
    memset(&cc, 0, sizeof cc);
    int rc = ff_fed_site_config_load(&sc, config_path);
    char site_err[512];
    ff_strlcpy(site_err, ff_error_message(), sizeof site_err);
    if (rc != FF_OK) {
        /* not a site config: a coordinator's? (the schema that knows every key decides) */
        int rc2 = ff_coord_config_load(&cc, config_path);
        if (rc2 == FF_OK || !strstr(ff_error_message(), "unknown key")) {
            kind = "coordinator";
            rc = rc2;
        } else {
            ff_error(rc, "%s", site_err);
        }
    }
    if (rc != FF_OK) {
        FAIL(&d, "config parses", "%s", ff_error_message());
    } else {
        OK(&d, "config parses", "%s config %s", kind, config_path);
        if (strcmp(kind, "site") == 0)
            doctor_site(&d, &sc);
        else
            doctor_coordinator(&d, &cc);
    }
    if (strcmp(kind, "site") == 0)
        ff_cfg_free(ff_fed_site_config_schema, &sc);
    ff_coord_config_free(&cc);
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:b, s:i, s:o}", "config", config_path, "kind", kind,
                              "ok", d.failed == 0, "failed", d.failed, "checks", d.checks);
        char *s = json_dumps(j, JSON_INDENT(2));
        if (s)
            fprintf(out, "%s\n", s);
        free(s);
        json_decref(j);
    } else {
        json_decref(d.checks);
        fprintf(out, d.failed ? "%d check(s) failed\n" : "all checks passed\n", d.failed);
    }
    *failed = d.failed;
    return FF_OK;
}
