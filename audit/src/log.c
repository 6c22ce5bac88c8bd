/* The coordinator's append-only, hash-chained, signed log. Each entry is written with one
 * write() and fsynced before ff_audit_append returns, so a round never moves on before its
 * record is durable. */
#include "audit_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct ff_audit_log {
    int fd;
    char *path;
    EVP_PKEY *key;
    uint64_t next_seq;
    uint8_t prev[FF_SHA256_BYTES]; /* hash of the last line */
};

static void iso_now(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Builds the unsigned body of entry seq. */
static char *entry_body(const ff_audit_log *log, const char *event, json_t *data)
{
    char ts[40], prev[FF_SHA256_HEX];
    iso_now(ts, sizeof ts);
    ff_hex(log->prev, sizeof log->prev, prev);
    json_t *e = json_pack("{s:I, s:s, s:s, s:s, s:O}", "seq", (json_int_t)log->next_seq, "ts", ts,
                          "prev", prev, "event", event, "data", data);
    if (!e)
        return NULL;
    char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(e);
    return s;
}

static int write_line(ff_audit_log *log, const char *line, size_t len)
{
    struct stat st;
    if (fstat(log->fd, &st) != 0)
        return ff_error(FF_EIO, "%s: stat failed: %s", log->path, strerror(errno));
    char *buf = malloc(len + 1);
    if (!buf)
        return ff_error(FF_ENOMEM, "out of memory");
    memcpy(buf, line, len);
    buf[len] = '\n';
    size_t done = 0;
    int err = 0;
    while (done < len + 1) {
        ssize_t n = write(log->fd, buf + done, len + 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)n;
    }
    free(buf);
    if (!err && fsync(log->fd) != 0)
        err = errno;
    if (err) {
        /* Cut the partial entry back so the log stays a sequence of whole entries. */
        if (ftruncate(log->fd, st.st_size) == 0)
            fsync(log->fd);
        return ff_error(FF_EIO, "%s: cannot append audit entry: %s (log left at %lld bytes)",
                        log->path, strerror(err), (long long)st.st_size);
    }
    return FF_OK;
}

int ff_audit_append(ff_audit_log *log, const char *event, json_t *data)
{
    if (!json_is_object(data))
        return ff_error(FF_EINVAL, "audit: event '%s' data must be a JSON object", event);
    char *body = entry_body(log, event, data);
    if (!body)
        return ff_error(FF_ENOMEM, "audit: cannot serialise event '%s'", event);
    size_t len = 0;
    char *line = au_seal_line(log->key, body, &len);
    free(body);
    if (!line)
        return ff_error(FF_ECRYPTO, "audit: cannot sign event '%s'", event);
    int rc = FF_OK;
    if (len > FF_AUDIT_MAX_LINE)
        rc = ff_error(FF_ERANGE, "audit: event '%s' is %zu bytes (max %u)", event, len, FF_AUDIT_MAX_LINE);
    if (rc == FF_OK)
        rc = write_line(log, line, len);
    if (rc == FF_OK) {
        ff_sha256(line, len, log->prev);
        log->next_seq++;
    }
    free(line);
    return rc;
}

int64_t ff_audit_head(const ff_audit_log *log, uint8_t hash[32])
{
    memcpy(hash, log->prev, FF_SHA256_BYTES);
    return (int64_t)log->next_seq - 1;
}

uint64_t ff_audit_next_seq(const ff_audit_log *log)
{
    return log->next_seq;
}

/* Reads an existing log: finds the last complete line, cuts a torn tail, and checks that the
 * last entry is ours (its signature verifies with our key). */
static int resume(ff_audit_log *log, size_t *torn)
{
    char *buf;
    size_t len;
    int rc = ff_file_read_all(log->path, (size_t)1 << 34, &buf, &len);
    if (rc != FF_OK)
        return rc;
    size_t end = len;
    while (end > 0 && buf[end - 1] != '\n')
        end--;
    *torn = len - end;
    if (*torn && ftruncate(log->fd, (off_t)end) != 0) {
        free(buf);
        return ff_error(FF_EIO, "%s: cannot cut the torn last entry: %s", log->path, strerror(errno));
    }
    if (end == 0) {
        free(buf);
        return FF_ENOTFOUND; /* empty: start afresh with a genesis entry */
    }
    size_t start = end - 1;
    while (start > 0 && buf[start - 1] != '\n')
        start--;
    const char *last = buf + start;
    size_t n = end - 1 - start;
    json_error_t jerr;
    json_t *e = json_loadb(last, n, 0, &jerr);
    json_t *seq = e ? json_object_get(e, "seq") : NULL;
    if (!json_is_integer(seq))
        rc = ff_error(FF_EFORMAT, "%s: the last complete entry is not valid JSON with a seq", log->path);
    else if (au_open_line(log->key, last, n) != FF_OK)
        rc = ff_error(FF_ECRYPTO, "%s: the last entry was not signed by this audit key", log->path);
    else {
        log->next_seq = (uint64_t)json_integer_value(seq) + 1;
        ff_sha256(last, n, log->prev);
    }
    json_decref(e);
    free(buf);
    return rc;
}

int ff_audit_open(ff_audit_log **out, const char *path, EVP_PKEY *key, const char *cert_pem,
                  json_t *genesis, size_t *torn_bytes)
{
    *out = NULL;
    *torn_bytes = 0;
    ff_audit_log *log = calloc(1, sizeof *log);
    if (!log || !(log->path = strdup(path))) {
        free(log);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    log->key = key;
    log->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log->fd < 0) {
        int rc = ff_error(FF_EIO, "%s: cannot open audit log: %s", path, strerror(errno));
        ff_audit_close(log);
        return rc;
    }
    int rc = resume(log, torn_bytes);
    if (rc == FF_ENOTFOUND) {
        json_t *g = genesis ? json_deep_copy(genesis) : json_object();
        json_object_set_new(g, "audit_cert", json_string(cert_pem ? cert_pem : ""));
        json_object_set_new(g, "format", json_string("fedfuse-audit-1"));
        rc = ff_audit_append(log, "genesis", g);
        json_decref(g);
    }
    if (rc != FF_OK) {
        ff_audit_close(log);
        return rc;
    }
    *out = log;
    return FF_OK;
}

void ff_audit_close(ff_audit_log *log)
{
    if (!log)
        return;
    if (log->fd >= 0)
        close(log->fd);
    free(log->path);
    free(log);
}

int ff_audit_receipt_write(const char *path, json_t *fields, EVP_PKEY *site_key)
{
    if (!json_is_object(fields))
        return ff_error(FF_EINVAL, "receipt: fields must be a JSON object");
    char *body = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!body)
        return ff_error(FF_ENOMEM, "receipt: cannot serialise");
    size_t len = 0;
    char *line = au_seal_line(site_key, body, &len);
    free(body);
    if (!line)
        return ff_error(FF_ECRYPTO, "receipt: cannot sign (is the site key Ed25519?)");
    line[len] = '\0';
    char *withnl = malloc(len + 2);
    int rc = FF_ENOMEM;
    if (withnl) {
        memcpy(withnl, line, len);
        withnl[len] = '\n';
        rc = ff_file_write_atomic(path, withnl, len + 1, 0644);
        free(withnl);
    }
    free(line);
    return rc;
}
