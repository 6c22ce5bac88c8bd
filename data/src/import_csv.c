/* Shared helpers of the importers: CSV rows streamed from .csv.gz through zlib into the one
 * CSV reader (ff_csv_read_lines; no table is ever loaded whole), a column map, an int64 hash
 * map and field parsers. */
#include "import_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    gzFile f;
    const char *shown;
} gz_src;

/* One physical line of the (decompressed) table, as getline would give it. */
static ssize_t gz_line(void *src, char **buf, size_t *cap)
{
    gz_src *g = src;
    size_t len = 0;
    for (;;) {
        if (ff_grow(buf, cap, len + (1 << 16), 1) != FF_OK)
            return -2;
        if (!gzgets(g->f, *buf + len, (int)FF_MIN(*cap - len, (size_t)INT_MAX)))
            break;
        len += strlen(*buf + len);
        if (len > 0 && (*buf)[len - 1] == '\n')
            break;
    }
    /* A truncated gzip stream ends with a short read and Z_BUF_ERROR, not an error return:
     * without this check a cut-off table would be taken as a short one. */
    int zerr = Z_OK;
    const char *msg = gzerror(g->f, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        ff_error(FF_EIO, "%s: read error (%s)", g->shown, zerr == Z_ERRNO ? strerror(errno) : msg);
        return -2;
    }
    return len ? (ssize_t)len : -1;
}

int ff_gzcsv_read(const char *path, const char *shown, int strict, ff_csv_row_fn fn, void *ctx)
{
    gz_src g = {gzopen(path, "rb"), shown};
    if (!g.f)
        return ff_error(FF_EIO, "%s: cannot open (%s)", shown, errno ? strerror(errno) : "zlib");
    gzbuffer(g.f, 1 << 17);
    int rc = ff_csv_read_lines(shown, strict, gz_line, &g, fn, ctx);
    gzclose(g.f);
    return rc;
}

int ff_gzcsv_columns(const ff_csv_row *hdr, const char *shown, const char *const *names, int n,
                     int *idx)
{
    for (int k = 0; k < n; k++) {
        idx[k] = -1;
        for (int i = 0; i < hdr->nfields && idx[k] < 0; i++)
            if (strcmp(hdr->fields[i], names[k]) == 0)
                idx[k] = i;
        if (idx[k] < 0)
            return ff_error(FF_EFORMAT, "%s:1: missing required column '%s'", shown, names[k]);
    }
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */

static size_t i64_slot(int64_t key, size_t mask)
{
    uint64_t x = (uint64_t)key * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29)) & mask;
}

int ff_i64map_init(ff_i64map *m, size_t expect)
{
    size_t cap = 64;
    while (cap < expect * 2)
        cap *= 2;
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        ff_i64map_free(m);
        return ff_error(FF_ENOMEM, "out of memory for an index of %zu entries", cap);
    }
    for (size_t i = 0; i < cap; i++)
        m->keys[i] = -1;
    m->mask = cap - 1;
    m->count = 0;
    return FF_OK;
}

void ff_i64map_free(ff_i64map *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->mask = m->count = 0;
}

int ff_i64map_get(const ff_i64map *m, int64_t key)
{
    if (!m->keys || key < 0)
        return -1;
    for (size_t i = i64_slot(key, m->mask);; i = (i + 1) & m->mask) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (m->keys[i] < 0)
            return -1;
    }
}

static void i64map_place(ff_i64map *m, int64_t key, int val)
{
    size_t i = i64_slot(key, m->mask);
    while (m->keys[i] >= 0 && m->keys[i] != key)
        i = (i + 1) & m->mask;
    if (m->keys[i] < 0)
        m->count++;
    m->keys[i] = key;
    m->vals[i] = val;
}

int ff_i64map_put(ff_i64map *m, int64_t key, int val)
{
    if (key < 0)
        return ff_error(FF_EINVAL, "negative key in an id index");
    if ((m->count + 1) * 2 > m->mask + 1) {
        ff_i64map old = *m;
        if (ff_i64map_init(m, old.mask + 1) != FF_OK) {
            *m = old;
            return FF_ENOMEM;
        }
        for (size_t i = 0; i <= old.mask; i++)
            if (old.keys[i] >= 0)
                i64map_place(m, old.keys[i], old.vals[i]);
        ff_i64map_free(&old);
    }
    i64map_place(m, key, val);
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d (Howard Hinnant's days_from_civil). */
int64_t ff_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int ff_data_parse_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int ff_parse_datetime(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (n < 10 || ff_data_parse_digits(s, 4, &y) || s[4] != '-' || ff_data_parse_digits(s + 5, 2, &mo) || s[7] != '-' ||
        ff_data_parse_digits(s + 8, 2, &d))
        return -1;
    if (n > 10) {
        if ((s[10] != ' ' && s[10] != 'T') || n < 16 || ff_data_parse_digits(s + 11, 2, &h) || s[13] != ':' ||
            ff_data_parse_digits(s + 14, 2, &mi))
            return -1;
        if (n > 16 && (n != 19 || s[16] != ':' || ff_data_parse_digits(s + 17, 2, &se)))
            return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    *out = ff_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}

int ff_parse_id(const char *s, int64_t *out)
{
    if (!*s)
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

int ff_parse_num(const char *s, double *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}
