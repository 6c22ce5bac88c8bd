/* String map and id rule shared by the importers. */
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int ff_strmap_init(ff_strmap *m, size_t expect)
{
    size_t n = 16;
    while (n < 2 * expect)
        n *= 2;
    m->keys = calloc(n, sizeof *m->keys);
    m->vals = calloc(n, sizeof *m->vals);
    m->mask = n - 1;
    m->count = 0;
    if (!m->keys || !m->vals) {
        ff_strmap_free(m);
        return ff_error(FF_ENOMEM, "out of memory for a map of %zu keys", expect);
    }
    return FF_OK;
}

void ff_strmap_free(ff_strmap *m)
{
    if (m->keys)
        for (size_t i = 0; i <= m->mask; i++)
            free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

int ff_strmap_get(const ff_strmap *m, const char *key)
{
    if (!m->keys)
        return -1;
    for (size_t i = hash(key) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->keys[i])
            return -1;
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    }
}

static void insert(char **keys, int *vals, size_t mask, char *key, int val)
{
    size_t i = hash(key) & mask;
    while (keys[i])
        i = (i + 1) & mask;
    keys[i] = key;
    vals[i] = val;
}

int ff_strmap_put(ff_strmap *m, const char *key, int val)
{
    for (size_t i = hash(key) & m->mask; m->keys[i]; i = (i + 1) & m->mask)
        if (strcmp(m->keys[i], key) == 0) {
            m->vals[i] = val;
            return FF_OK;
        }
    if (2 * (m->count + 1) > m->mask + 1) {
        size_t n = 2 * (m->mask + 1);
        char **k = calloc(n, sizeof *k);
        int *v = calloc(n, sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return ff_error(FF_ENOMEM, "out of memory for a map of %zu keys", m->count);
        }
        for (size_t i = 0; i <= m->mask; i++)
            if (m->keys[i])
                insert(k, v, n - 1, m->keys[i], m->vals[i]);
        free(m->keys);
        free(m->vals);
        m->keys = k;
        m->vals = v;
        m->mask = n - 1;
    }
    char *dup = strdup(key);
    if (!dup)
        return ff_error(FF_ENOMEM, "out of memory");
    insert(m->keys, m->vals, m->mask, dup, val);
    m->count++;
    return FF_OK;
}

int ff_ingest_valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\')
            return 0;
    }
    return 1;
}
