/* Aligned allocation and the bump arena used for per-batch scratch. */
#include "ff/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ff_size_mul(size_t a, size_t b, size_t *out)
{
    *out = 0;
    if (a != 0 && b > SIZE_MAX / a)
        return ff_error(FF_ENOMEM, "size overflow: %zu * %zu", a, b);
    *out = a * b;
    return FF_OK;
}

int ff_size_add(size_t a, size_t b, size_t *out)
{
    *out = 0;
    if (b > SIZE_MAX - a)
        return ff_error(FF_ENOMEM, "size overflow: %zu + %zu", a, b);
    *out = a + b;
    return FF_OK;
}

int ff_grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return FF_OK;
    if (elem == 0 || need > SIZE_MAX / elem)
        return ff_error(FF_ENOMEM, "size overflow: %zu items of %zu bytes", need, elem);
    /* double (at least 16 items), or straight to need when that is more; when the doubled
     * size would overflow, exactly need */
    size_t nc = *cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * *cap;
    nc = nc < 16 ? 16 : nc;
    nc = nc < need ? need : nc;
    if (nc > SIZE_MAX / elem)
        nc = need;
    void *old;
    memcpy(&old, pp, sizeof old); /* pp is a T **: any object pointer has this one's form */
    void *q = realloc(old, nc * elem);
    if (!q)
        return ff_error(FF_ENOMEM, "out of memory growing to %zu items of %zu bytes", nc, elem);
    memcpy(pp, &q, sizeof q);
    *cap = nc;
    return FF_OK;
}

void ff_sbuf_printf(ff_sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->buf && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t need;
        if (ff_size_add(b->len, (size_t)n + 1, &need) != FF_OK ||
            ff_grow(&b->buf, &b->cap, need < 4096 ? 4096 : need, 1) != FF_OK) {
            b->oom = 1;
            return;
        }
    }
}

void ff_sbuf_free(ff_sbuf *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

void *ff_alloc(size_t n)
{
    void *p = NULL;
    size_t rounded = (n + FF_ALIGN - 1) & ~(size_t)(FF_ALIGN - 1);
    if (rounded < n)
        return NULL;
    if (posix_memalign(&p, FF_ALIGN, rounded ? rounded : FF_ALIGN) != 0)
        return NULL;
    return p;
}

void *ff_calloc(size_t count, size_t size)
{
    size_t n = 0;
    if (ff_size_mul(count, size, &n) != FF_OK)
        return NULL;
    void *p = ff_alloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

void ff_free(void *p)
{
    free(p);
}

int ff_arena_init(ff_arena *a, size_t cap)
{
    memset(a, 0, sizeof *a);
    a->base = ff_alloc(cap);
    if (!a->base)
        return ff_error(FF_ENOMEM, "arena: cannot reserve %zu bytes", cap);
    a->cap = cap;
    return FF_OK;
}

void ff_arena_free(ff_arena *a)
{
    ff_free(a->base);
    memset(a, 0, sizeof *a);
}

void *ff_arena_alloc(ff_arena *a, size_t n)
{
    size_t start = (a->used + FF_ALIGN - 1) & ~(size_t)(FF_ALIGN - 1);
    if (start < a->used || start > a->cap || n > a->cap - start) {
        ff_error(FF_ENOMEM, "arena: %zu bytes requested, %zu of %zu used", n, a->used, a->cap);
        return NULL;
    }
    a->used = start + n;
    if (a->used > a->peak)
        a->peak = a->used;
    return a->base + start;
}

float *ff_arena_floats(ff_arena *a, size_t n)
{
    size_t bytes = 0;
    if (ff_size_mul(n, sizeof(float), &bytes) != FF_OK)
        return NULL;
    float *p = ff_arena_alloc(a, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void ff_arena_reset(ff_arena *a)
{
    a->used = 0;
}
