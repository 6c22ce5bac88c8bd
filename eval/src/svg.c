/* Small string builder and SVG line charts for the HTML report. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void ev_sb_printf(ev_sb *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->buf && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)k + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

void ev_sb_puts_html(ev_sb *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': ev_sb_printf(b, "&lt;"); break;
        case '>': ev_sb_printf(b, "&gt;"); break;
        case '&': ev_sb_printf(b, "&amp;"); break;
        case '"': ev_sb_printf(b, "&quot;"); break;
        default: ev_sb_printf(b, "%c", *s);
        }
    }
}

size_t ev_thin_index(size_t n, size_t max, size_t k)
{
    if (max == 0 || n <= max)
        return k;
    if (max == 1)
        return 0;
    return (size_t)llround((double)k * (double)(n - 1) / (double)(max - 1));
}
