/* Small string and number helpers. */
#include "ff/common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ff_strlcpy(char *dst, const char *src, size_t n)
{
    if (n == 0)
        return FF_ERANGE;
    size_t len = strlen(src);
    size_t k = len < n - 1 ? len : n - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
    return len < n ? FF_OK : FF_ERANGE;
}

int ff_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return ff_error(FF_EINVAL, "empty number");
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return ff_error(FF_EINVAL, "'%s' is not an integer", s);
    *out = v;
    return FF_OK;
}

int ff_parse_f64(const char *s, double *out)
{
    if (!s || !*s)
        return ff_error(FF_EINVAL, "empty number");
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return ff_error(FF_EINVAL, "'%s' is not a finite number", s);
    *out = v;
    return FF_OK;
}

void ff_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

uint32_t ff_fnv1a32(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void ff_html_fputs(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}
