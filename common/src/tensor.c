/* Tensor views and dtypes. */
#include "ff/common.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[FF_DT_COUNT] = {
    [FF_DT_F32] = {"F32", 4}, [FF_DT_F64] = {"F64", 8}, [FF_DT_I32] = {"I32", 4},
    [FF_DT_I64] = {"I64", 8}, [FF_DT_U8] = {"U8", 1},
};

size_t ff_dtype_size(ff_dtype dt)
{
    return (unsigned)dt < FF_DT_COUNT ? dtypes[dt].size : 0;
}

const char *ff_dtype_name(ff_dtype dt)
{
    return (unsigned)dt < FF_DT_COUNT ? dtypes[dt].name : "?";
}

int ff_dtype_parse(const char *name, ff_dtype *out)
{
    for (int i = 0; i < FF_DT_COUNT; i++) {
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (ff_dtype)i;
            return FF_OK;
        }
    }
    return ff_error(FF_EFORMAT, "unsupported dtype '%s' (F32, F64, I32, I64, U8)", name);
}

int ff_tensor_view(ff_tensor *t, ff_dtype dt, void *data, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > FF_MAX_DIMS)
        return ff_error(FF_EINVAL, "tensor: %d dimensions (at most %d)", ndim, FF_MAX_DIMS);
    if ((unsigned)dt >= FF_DT_COUNT)
        return ff_error(FF_EINVAL, "tensor: bad dtype %d", (int)dt);
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    t->data = data;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] < 0)
            return ff_error(FF_EINVAL, "tensor: negative dimension %d", i);
        t->shape[i] = shape[i];
        t->strides[i] = stride;
        stride *= shape[i] ? shape[i] : 1;
    }
    return FF_OK;
}

size_t ff_tensor_numel(const ff_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

size_t ff_tensor_nbytes(const ff_tensor *t)
{
    return ff_tensor_numel(t) * ff_dtype_size(t->dtype);
}

int ff_tensor_is_contiguous(const ff_tensor *t)
{
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != stride)
            return 0;
        stride *= t->shape[i];
    }
    return 1;
}

const char *ff_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}
