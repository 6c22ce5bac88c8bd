/* safetensors reader (mmap, header validated before any data is touched) and atomic writer.
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data section; offsets are relative to the start of the data section. */
#include "ff/common.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct ff_safetensors {
    char *name;
    uint8_t *map; /* whole file (mmap) or heap copy */
    size_t map_len;
    int is_mmap;
    const uint8_t *data; /* data section */
    size_t data_len;
    ff_st_entry *entries;
    size_t count;
    json_t *meta; /* "__metadata__" object or NULL */
};

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Parses one tensor description; errors name the file and the tensor. */
static int parse_entry(ff_safetensors *st, const char *key, json_t *desc, ff_st_entry *e)
{
    const char *f = st->name;
    if (!json_is_object(desc))
        return ff_error(FF_EFORMAT, "%s: header: tensor '%s' is not an object", f, key);
    json_t *dt = json_object_get(desc, "dtype");
    json_t *shape = json_object_get(desc, "shape");
    json_t *offs = json_object_get(desc, "data_offsets");
    if (!json_is_string(dt))
        return ff_error(FF_EFORMAT, "%s: header: tensor '%s': missing or non-string 'dtype'", f, key);
    if (!json_is_array(shape))
        return ff_error(FF_EFORMAT, "%s: header: tensor '%s': missing or non-array 'shape'", f, key);
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return ff_error(FF_EFORMAT, "%s: header: tensor '%s': 'data_offsets' must be [begin, end]",
                        f, key);
    if (json_object_size(desc) != 3)
        return ff_error(FF_EFORMAT, "%s: header: tensor '%s': unexpected extra field", f, key);
    if (ff_dtype_parse(json_string_value(dt), &e->dtype) != FF_OK)
        return ff_error_prefix(FF_EFORMAT, "%s: header: tensor '%s': ", f, key);
    size_t nd = json_array_size(shape);
    if (nd > FF_MAX_DIMS)
        return ff_error(FF_EFORMAT, "%s: header: tensor '%s': %zu dimensions (at most %d)", f, key,
                        nd, FF_MAX_DIMS);
    e->ndim = (int)nd;
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return ff_error(FF_EFORMAT, "%s: header: tensor '%s': shape[%zu] is not a non-negative integer",
                            f, key, i);
        e->shape[i] = json_integer_value(d);
        if (ff_size_mul(numel, (size_t)e->shape[i], &numel) != FF_OK)
            return ff_error(FF_EFORMAT, "%s: header: tensor '%s': shape overflows", f, key);
    }
    json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b))
        return ff_error(FF_EFORMAT, "%s: header: tensor '%s': data_offsets must be 0 <= begin <= end",
                        f, key);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(en);
    if (end > st->data_len)
        return ff_error(FF_EFORMAT,
                        "%s: header: tensor '%s': data_offsets end %llu beyond the data section (%zu bytes)",
                        f, key, (unsigned long long)end, st->data_len);
    size_t want;
    if (ff_size_mul(numel, ff_dtype_size(e->dtype), &want) != FF_OK || want != end - begin)
        return ff_error(FF_EFORMAT,
                        "%s: header: tensor '%s': %llu data bytes, but dtype %s and its shape need %zu",
                        f, key, (unsigned long long)(end - begin), ff_dtype_name(e->dtype), want);
    e->offset = (size_t)begin;
    e->nbytes = (size_t)(end - begin);
    e->data = st->data + begin;
    e->name = strdup(key);
    if (!e->name)
        return ff_error(FF_ENOMEM, "out of memory");
    return FF_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const ff_st_entry *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_overlap(const ff_safetensors *st)
{
    ff_st_entry *sorted = malloc(st->count * sizeof *sorted + 1);
    if (!sorted)
        return ff_error(FF_ENOMEM, "out of memory");
    memcpy(sorted, st->entries, st->count * sizeof *sorted);
    qsort(sorted, st->count, sizeof *sorted, cmp_offset);
    int rc = FF_OK;
    for (size_t i = 1; i < st->count; i++) {
        if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].nbytes) {
            rc = ff_error(FF_EFORMAT, "%s: header: tensors '%s' and '%s' overlap", st->name,
                          sorted[i - 1].name, sorted[i].name);
            break;
        }
    }
    free(sorted);
    return rc;
}

static int check_meta(ff_safetensors *st, json_t *meta)
{
    if (!json_is_object(meta))
        return ff_error(FF_EFORMAT, "%s: header: '__metadata__' is not an object", st->name);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        if (!json_is_string(v))
            return ff_error(FF_EFORMAT, "%s: header: __metadata__ '%s' is not a string", st->name, k);
    }
    st->meta = json_incref(meta);
    return FF_OK;
}

/* Validates the header of the buffer st->map and fills entries. */
static int parse_header(ff_safetensors *st)
{
    if (st->map_len < 8)
        return ff_error(FF_EFORMAT, "%s: %zu bytes: too short for a safetensors header", st->name,
                        st->map_len);
    uint64_t hlen = read_le64(st->map);
    if (hlen > FF_ST_MAX_HEADER)
        return ff_error(FF_EFORMAT, "%s: header length %llu exceeds the %u-byte cap", st->name,
                        (unsigned long long)hlen, FF_ST_MAX_HEADER);
    if (hlen < 2 || hlen > st->map_len - 8)
        return ff_error(FF_EFORMAT, "%s: header length %llu does not fit the %zu-byte file (truncated?)",
                        st->name, (unsigned long long)hlen, st->map_len);
    st->data = st->map + 8 + hlen;
    st->data_len = st->map_len - 8 - (size_t)hlen;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)st->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ff_error(FF_EFORMAT, "%s: header JSON, column %d: %s", st->name, jerr.column, jerr.text);
    int rc = FF_OK;
    if (!json_is_object(root)) {
        rc = ff_error(FF_EFORMAT, "%s: header is not a JSON object", st->name);
        goto out;
    }
    size_t n = json_object_size(root);
    if (n > FF_ST_MAX_TENSORS + 1) {
        rc = ff_error(FF_EFORMAT, "%s: %zu tensors exceeds the cap of %d", st->name, n, FF_ST_MAX_TENSORS);
        goto out;
    }
    st->entries = calloc(n + 1, sizeof *st->entries);
    if (!st->entries) {
        rc = ff_error(FF_ENOMEM, "out of memory");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0)
            rc = check_meta(st, val);
        else if ((rc = parse_entry(st, key, val, &st->entries[st->count])) == FF_OK)
            st->count++;
        if (rc != FF_OK)
            goto out;
    }
    rc = check_overlap(st);
out:
    json_decref(root);
    return rc;
}

static int finish_open(ff_safetensors *st, ff_safetensors **out)
{
    int rc = parse_header(st);
    if (rc != FF_OK) {
        ff_safetensors_close(st);
        return rc;
    }
    *out = st;
    return FF_OK;
}

int ff_safetensors_open(ff_safetensors **out, const char *path)
{
    *out = NULL;
    ff_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->name = strdup(path))) {
        free(st);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int rc = ff_error(FF_EIO, "%s: cannot open: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        ff_safetensors_close(st);
        return rc;
    }
    st->map_len = (size_t)sb.st_size;
    if (st->map_len > 0) {
        void *m = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            int rc = ff_error(FF_EIO, "%s: mmap failed: %s", path, strerror(errno));
            st->map_len = 0;
            ff_safetensors_close(st);
            return rc;
        }
        st->map = m;
        st->is_mmap = 1;
    }
    close(fd);
    return finish_open(st, out);
}

int ff_safetensors_open_mem(ff_safetensors **out, const void *buf, size_t len, const char *name)
{
    *out = NULL;
    ff_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->name = strdup(name ? name : "<memory>")) || !(st->map = malloc(len + 1))) {
        if (st)
            free(st->name);
        free(st);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    if (len)
        memcpy(st->map, buf, len);
    st->map_len = len;
    return finish_open(st, out);
}

void ff_safetensors_close(ff_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->count; i++)
        free(st->entries[i].name);
    free(st->entries);
    if (st->is_mmap)
        munmap(st->map, st->map_len);
    else
        free(st->map);
    json_decref(st->meta);
    free(st->name);
    free(st);
}

size_t ff_safetensors_count(const ff_safetensors *st)
{
    return st->count;
}

const ff_st_entry *ff_safetensors_entry(const ff_safetensors *st, size_t i)
{
    return i < st->count ? &st->entries[i] : NULL;
}

const ff_st_entry *ff_safetensors_find(const ff_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->count; i++)
        if (strcmp(st->entries[i].name, name) == 0)
            return &st->entries[i];
    return NULL;
}

const char *ff_safetensors_meta(const ff_safetensors *st, const char *key)
{
    return st->meta ? json_string_value(json_object_get(st->meta, key)) : NULL;
}

int ff_st_entry_copy(const ff_st_entry *e, void *dst, size_t n)
{
    if (n != e->nbytes)
        return ff_error(FF_EINVAL, "tensor '%s': %zu bytes, destination holds %zu", e->name,
                        e->nbytes, n);
    if (n)
        memcpy(dst, e->data, n);
    return FF_OK;
}

int ff_safetensors_read(const ff_safetensors *st, const char *name, ff_dtype dt, int ndim,
                        const int64_t *shape, void *dst)
{
    const ff_st_entry *e = ff_safetensors_find(st, name);
    if (!e)
        return ff_error(FF_ENOTFOUND, "%s: tensor '%s' is missing", st->name, name);
    char want[96], got[96];
    if (e->dtype != dt)
        return ff_error(FF_EFORMAT, "%s: tensor '%s' has dtype %s, expected %s", st->name, name,
                        ff_dtype_name(e->dtype), ff_dtype_name(dt));
    int same = e->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = e->shape[i] == shape[i];
    if (!same)
        return ff_error(FF_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", st->name, name,
                        ff_shape_str(got, sizeof got, e->ndim, e->shape),
                        ff_shape_str(want, sizeof want, ndim, shape));
    return ff_st_entry_copy(e, dst, e->nbytes);
}

/* ---------------------------------------------------------------------------------------- */
/* Writer                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char *name;
    ff_dtype dtype;
    int ndim;
    int64_t shape[FF_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_item;

struct ff_st_writer {
    st_item *items;
    size_t count, cap;
    json_t *meta;
};

int ff_st_writer_new(ff_st_writer **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
}

void ff_st_writer_free(ff_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++)
        free(w->items[i].name);
    free(w->items);
    json_decref(w->meta);
    free(w);
}

int ff_st_writer_add(ff_st_writer *w, const char *name, ff_dtype dt, int ndim,
                     const int64_t *shape, const void *data)
{
    ff_tensor t;
    int rc = ff_tensor_view(&t, dt, (void *)data, ndim, shape);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "safetensors writer: '%s': ", name);
    if (strcmp(name, "__metadata__") == 0 || !*name)
        return ff_error(FF_EINVAL, "safetensors writer: invalid tensor name '%s'", name);
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->items[i].name, name) == 0)
            return ff_error(FF_EINVAL, "safetensors writer: duplicate tensor '%s'", name);
    if (ff_grow(&w->items, &w->cap, w->count + 1, sizeof *w->items) != FF_OK)
        return FF_ENOMEM;
    st_item *it = &w->items[w->count];
    memset(it, 0, sizeof *it);
    if (!(it->name = strdup(name)))
        return ff_error(FF_ENOMEM, "out of memory");
    it->dtype = dt;
    it->ndim = ndim;
    memcpy(it->shape, shape, (size_t)ndim * sizeof *shape);
    it->data = data;
    it->nbytes = ff_tensor_nbytes(&t);
    w->count++;
    return FF_OK;
}

int ff_st_writer_meta(ff_st_writer *w, const char *key, const char *value)
{
    if (!w->meta && !(w->meta = json_object()))
        return ff_error(FF_ENOMEM, "out of memory");
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return ff_error(FF_EINVAL, "safetensors writer: bad metadata '%s' (UTF-8 required)", key);
    return FF_OK;
}

static char *build_header(const ff_st_writer *w, size_t *len)
{
    json_t *root = json_object();
    size_t off = 0;
    if (w->meta)
        json_object_set(root, "__metadata__", w->meta);
    for (size_t i = 0; i < w->count; i++) {
        const st_item *it = &w->items[i];
        json_t *shape = json_array();
        for (int d = 0; d < it->ndim; d++)
            json_array_append_new(shape, json_integer(it->shape[d]));
        json_t *desc = json_pack("{s:s, s:o, s:[I,I]}", "dtype", ff_dtype_name(it->dtype),
                                 "shape", shape, "data_offsets", (json_int_t)off,
                                 (json_int_t)(off + it->nbytes));
        json_object_set_new(root, it->name, desc);
        off += it->nbytes;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s)
        return NULL;
    /* Pad with spaces so the data section starts 8-byte aligned, as the format suggests. */
    size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
    char *h = realloc(s, padded + 1);
    if (!h) {
        free(s);
        return NULL;
    }
    memset(h + n, ' ', padded - n);
    h[padded] = '\0';
    *len = padded;
    return h;
}

int ff_st_writer_save(ff_st_writer *w, const char *path)
{
    size_t hlen = 0;
    char *header = build_header(w, &hlen);
    if (!header)
        return ff_error(FF_ENOMEM, "safetensors writer: cannot build header");
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    ff_atomic_file f;
    int rc = ff_atomic_open(&f, path, 0644);
    if (rc == FF_OK) {
        rc = ff_atomic_write(&f, lenbuf, 8);
        if (rc == FF_OK)
            rc = ff_atomic_write(&f, header, hlen);
        for (size_t i = 0; rc == FF_OK && i < w->count; i++)
            rc = ff_atomic_write(&f, w->items[i].data, w->items[i].nbytes);
        rc = rc == FF_OK ? ff_atomic_commit(&f) : (ff_atomic_abort(&f), rc);
    }
    free(header);
    return rc;
}
