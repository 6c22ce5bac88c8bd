/* CSV reading and writing on libcsv, with the physical line number of each row. */
#include "internal.h"

#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ff_csv_fields f;
    long line;      /* physical line being fed */
    long row_start; /* line where the current row began; 0 = between rows */
    long bad_line, bad_byte; /* first line of the current row that is not UTF-8, and where */
    char delim;
    int status;     /* first error returned by the row callback */
    ff_csv_row_fn fn;
    void *ctx;
} csv_state;

void ff_csv_fields_add(ff_csv_fields *f, const void *s, size_t len)
{
    if (f->nfields >= f->max) {
        f->too_many = 1;
        return;
    }
    int i = f->nfields;
    if (f->caps[i] < len + 1) {
        size_t cap = len + 1 < 64 ? 64 : len + 1;
        char *p = realloc(f->fields[i], cap);
        if (!p) {
            f->oom = 1;
            return;
        }
        f->fields[i] = p;
        f->caps[i] = cap;
    }
    if (len)
        memcpy(f->fields[i], s, len);
    f->fields[i][len] = '\0';
    f->lens[i] = len;
    f->nfields++;
}

void ff_csv_fields_next(ff_csv_fields *f)
{
    f->nfields = 0;
    f->too_many = 0;
}

void ff_csv_fields_free(ff_csv_fields *f)
{
    for (int i = 0; i < FF_CSV_FIELDS_CAP; i++)
        free(f->fields[i]);
}

static void on_field(void *s, size_t len, void *data)
{
    ff_csv_fields_add(&((csv_state *)data)->f, s, len);
}

static void on_row(int c, void *data)
{
    (void)c;
    csv_state *st = data;
    long line = st->row_start ? st->row_start : st->line;
    if (st->status == FF_OK && !st->f.oom) {
        ff_csv_row row = {st->f.fields, st->f.lens, st->f.too_many ? -1 : st->f.nfields, line,
                          st->bad_line, st->bad_byte, st->delim};
        st->status = st->fn(&row, st->ctx);
    }
    ff_csv_fields_next(&st->f);
    st->row_start = 0;
    st->bad_line = st->bad_byte = 0;
}

/* 0 when s[0..n) is valid UTF-8 (no overlong forms, surrogates or values above U+10FFFF),
 * else the 1-based offset of the first bad sequence. */
static size_t utf8_bad_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > n || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4))
            return i + 1;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i + 1;
        if ((len == 3 && c == 0xE0 && s[i + 1] < 0xA0) || (len == 3 && c == 0xED && s[i + 1] >= 0xA0) ||
            (len == 4 && c == 0xF0 && s[i + 1] < 0x90) || (len == 4 && c == 0xF4 && s[i + 1] >= 0x90))
            return i + 1;
        i += len;
    }
    return 0;
}

/* The delimiter of a header line: ',' unless it has no comma outside quotes and a ';' or a
 * tab (the more frequent of the two). */
static char detect_delim(const char *s, size_t n)
{
    size_t comma = 0, semi = 0, tab = 0;
    int q = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            q = !q;
        else if (!q)
            comma += s[i] == ',', semi += s[i] == ';', tab += s[i] == '\t';
    }
    if (comma > 0 || (semi == 0 && tab == 0))
        return ',';
    return semi >= tab ? ';' : '\t';
}

static int is_blank_line(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '\n') || (n == 2 && s[0] == '\r' && s[1] == '\n');
}

int ff_csv_read_lines(const char *shown, int strict, ff_csv_line_fn next, void *src,
                      ff_csv_row_fn fn, void *ctx)
{
    int rc = FF_OK;
    struct csv_parser p;
    int have_parser = 0;
    char *buf = NULL;
    size_t cap = 0;
    csv_state *st = calloc(1, sizeof *st);
    if (!st) {
        rc = ff_error(FF_ENOMEM, "%s: out of memory", shown);
        goto out;
    }
    st->fn = fn;
    st->ctx = ctx;
    st->f.max = FF_CSV_FIELDS_CAP;
    unsigned char opts = CSV_APPEND_NULL | (strict ? CSV_STRICT | CSV_STRICT_FINI : 0);
    if (csv_init(&p, opts) != 0) {
        rc = ff_error(FF_ENOMEM, "%s: cannot start the CSV parser", shown);
        goto out;
    }
    have_parser = 1;
    ssize_t n;
    /* Feeding one physical line at a time lets rows carry the line they start on, quoted
     * newlines included. */
    st->delim = ',';
    while ((n = next(src, &buf, &cap)) > 0) {
        st->line++;
        char *text = buf;
        if (st->line == 1) {
            if (n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) { /* byte order mark */
                text += 3;
                n -= 3;
            }
            st->delim = detect_delim(text, (size_t)n);
            csv_set_delim(&p, (unsigned char)st->delim);
        }
        size_t bad = utf8_bad_at((const unsigned char *)text, (size_t)n);
        if (bad && !st->bad_line) {
            st->bad_line = st->line;
            st->bad_byte = (long)bad;
        }
        if (st->row_start == 0 && !is_blank_line(text, (size_t)n))
            st->row_start = st->line;
        if (csv_parse(&p, text, (size_t)n, on_field, on_row, st) != (size_t)n) {
            rc = ff_error(FF_EFORMAT, "%s:%ld: malformed CSV (%s)", shown,
                          st->row_start ? st->row_start : st->line,
                          csv_strerror(csv_error(&p)));
            goto out;
        }
        if (st->f.oom) {
            rc = ff_error(FF_ENOMEM, "%s:%ld: out of memory", shown, st->line);
            goto out;
        }
        if (st->status != FF_OK) {
            rc = st->status;
            goto out;
        }
    }
    if (n < -1) {
        rc = FF_EIO; /* the source said why */
        goto out;
    }
    if (csv_fini(&p, on_field, on_row, st) != 0) {
        rc = ff_error(FF_EFORMAT, "%s:%ld: malformed CSV (unterminated quoted field)", shown,
                      st->row_start ? st->row_start : st->line);
        goto out;
    }
    rc = st->f.oom ? ff_error(FF_ENOMEM, "%s: out of memory", shown) : st->status;
out:
    if (have_parser)
        csv_free(&p);
    free(buf);
    if (st)
        ff_csv_fields_free(&st->f);
    free(st);
    return rc;
}

typedef struct {
    FILE *f;
    const char *shown;
} csv_file;

static ssize_t file_line(void *src, char **buf, size_t *cap)
{
    csv_file *cf = src;
    ssize_t n = getline(buf, cap, cf->f);
    if (n < 0 && ferror(cf->f)) {
        ff_error(FF_EIO, "%s: read error (%s)", cf->shown, strerror(errno));
        return -2;
    }
    return n;
}

int ff_csv_read(const char *path, const char *shown, int strict, ff_csv_row_fn fn, void *ctx)
{
    csv_file cf = {ff_file_fopen_regular(path), shown};
    if (!cf.f)
        return ff_error_prefix(FF_EIO, "%s: ", shown);
    int rc = ff_csv_read_lines(shown, strict, file_line, &cf, fn, ctx);
    fclose(cf.f);
    return rc;
}

int ff_csv_put(FILE *f, const char *s, char sep)
{
    size_t n = strlen(s);
    int plain = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            plain = 0;
    if (plain ? fwrite(s, 1, n, f) != n : csv_fwrite(f, s, n) != 0)
        return ff_error(FF_EIO, "CSV write failed");
    return fputc(sep, f) == EOF ? ff_error(FF_EIO, "CSV write failed") : FF_OK;
}
