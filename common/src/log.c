/* Process-wide logger: plain or JSON lines, to stderr or a file. Lines are written with one
 * fwrite under a mutex so concurrent threads never interleave within a line. */
#include "ff/common.h"

#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    ff_log_level level;
    ff_log_format format;
    FILE *file; /* NULL = stderr */
    char component[64];
    pthread_mutex_t mu;
} g_log = {FF_LOG_INFO, FF_LOG_PLAIN, NULL, "fedfuse", PTHREAD_MUTEX_INITIALIZER};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int ff_log_level_parse(const char *s, ff_log_level *out)
{
    for (int i = 0; i <= FF_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (ff_log_level)i;
            return FF_OK;
        }
    }
    return ff_error(FF_EINVAL, "unknown log level '%s' (debug, info, warn, error, off)", s);
}

int ff_log_open(ff_log_level level, ff_log_format format, const char *path, const char *component)
{
    FILE *f = NULL;
    if (path) {
        f = fopen(path, "a");
        if (!f)
            return ff_error(FF_EIO, "%s: cannot open log file for appending", path);
    }
    pthread_mutex_lock(&g_log.mu);
    if (g_log.file)
        fclose(g_log.file);
    g_log.file = f;
    g_log.level = level;
    g_log.format = format;
    ff_strlcpy(g_log.component, component ? component : "fedfuse", sizeof g_log.component);
    pthread_mutex_unlock(&g_log.mu);
    return FF_OK;
}

void ff_log_close(void)
{
    pthread_mutex_lock(&g_log.mu);
    if (g_log.file)
        fclose(g_log.file);
    g_log.file = NULL;
    pthread_mutex_unlock(&g_log.mu);
}

void ff_log_set_level(ff_log_level level)
{
    g_log.level = level;
}

ff_log_level ff_log_get_level(void)
{
    return g_log.level;
}

/* Length of the well-formed UTF-8 sequence at s that is not a C1 control (U+0080..U+009F,
 * which some terminals obey like ESC), or 0. */
static size_t utf8_ok(const unsigned char *s)
{
    size_t n = s[0] > 0xf4 ? 0 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    uint32_t cp = n == 2 ? (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f)
                : n == 3 ? (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f)
                         : (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
                               (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
    if (cp < 0xa0 || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Appends s to out as a JSON string body (no quotes): quotes, backslashes, control
 * characters, DEL, C1 controls and bytes that are not well-formed UTF-8 as \\uXXXX. */
static size_t json_escape(char *out, size_t cap, const char *in)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t n = 0;
    while (*s && n + 7 < cap) {
        size_t k = *s >= 0x80 ? utf8_ok(s) : 0;
        if (k) {
            memcpy(out + n, s, k);
            n += k;
            s += k;
        } else if (*s == '"' || *s == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*s++;
        } else if (*s < 0x20 || *s >= 0x7f) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *s++);
        } else {
            out[n++] = (char)*s++;
        }
    }
    out[n] = '\0';
    return n;
}

size_t ff_log_escape(char *out, size_t cap, const char *in)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t n = 0;
    if (cap == 0)
        return 0;
    while (*s) {
        size_t k = *s >= 0x80 ? utf8_ok(s) : 0;
        if (k) {
            if (n + k >= cap)
                break;
            memcpy(out + n, s, k);
            n += k;
            s += k;
        } else if (*s >= 0x20 && *s < 0x7f && *s != '\\') {
            if (n + 1 >= cap)
                break;
            out[n++] = (char)*s++;
        } else {
            if (n + 4 >= cap)
                break;
            if (*s == '\\')
                n += (size_t)snprintf(out + n, cap - n, "\\\\");
            else
                n += (size_t)snprintf(out + n, cap - n, "\\x%02x", *s);
            s++;
        }
    }
    out[n] = 0;
    return n;
}

void ff_logv(ff_log_level level, const char *fmt, va_list ap)
{
    if (level < g_log.level || level >= FF_LOG_OFF)
        return;
    char msg[2048], line[4600], ts[40];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof ts - k, ".%03ldZ", now.tv_nsec / 1000000);

    pthread_mutex_lock(&g_log.mu);
    int n;
    if (g_log.format == FF_LOG_JSON) {
        char esc[4200], comp[140];
        /* Messages carry peer-controlled strings (site names, method paths, error
         * details): escaped in either format so one message is one line that cannot forge
         * another or drive a terminal. */
        json_escape(esc, sizeof esc, msg);
        json_escape(comp, sizeof comp, g_log.component);
        n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"%s\"}\n",
                     ts, level_names[level], comp, esc);
    } else {
        char esc[2048];
        ff_log_escape(esc, sizeof esc, msg);
        n = snprintf(line, sizeof line, "%s %-5s [%s] %s\n", ts, level_names[level],
                     g_log.component, esc);
    }
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    FILE *f = g_log.file ? g_log.file : stderr;
    fwrite(line, 1, (size_t)n, f);
    fflush(f);
    pthread_mutex_unlock(&g_log.mu);
}

void ff_log(ff_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ff_logv(level, fmt, ap);
    va_end(ap);
}
