#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_alloc_aligned(void **state)
{
    (void)state;
    for (size_t n = 0; n < 300; n += 37) {
        void *p = ff_alloc(n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % FF_ALIGN, 0);
        ff_free(p);
    }
    assert_null(ff_calloc(SIZE_MAX / 2, 4));
}

static void test_size_overflow(void **state)
{
    (void)state;
    size_t out;
    assert_int_equal(ff_size_mul(SIZE_MAX / 2 + 1, 2, &out), FF_ENOMEM);
    assert_int_equal(ff_size_add(SIZE_MAX, 1, &out), FF_ENOMEM);
    assert_int_equal(ff_size_mul(3, 5, &out), FF_OK);
    assert_int_equal(out, 15);
}

/* ff_grow: appends keep their values, the capacity doubles (at least 16), a request past
 * size_t or past what realloc can give is FF_ENOMEM with the old block untouched. */
static void test_grow(void **state)
{
    (void)state;
    int64_t *v = NULL;
    size_t cap = 0, n = 0;
    for (int64_t i = 0; i < 1000; i++) {
        assert_int_equal(ff_grow(&v, &cap, n + 1, sizeof *v), FF_OK);
        v[n++] = i * i;
    }
    assert_int_equal(cap, 1024); /* 16, 32, ..., 1024 */
    for (size_t i = 0; i < n; i++)
        assert_true(v[i] == (int64_t)(i * i));
    assert_int_equal(ff_grow(&v, &cap, 10, sizeof *v), FF_OK); /* no shrinking */
    assert_int_equal(cap, 1024);
    assert_int_equal(ff_grow(&v, &cap, 5000, sizeof *v), FF_OK); /* more than double */
    assert_int_equal(cap, 5000);
    assert_true(v[999] == 999 * 999);

    /* need * elem overflows size_t */
    int64_t *keep = v;
    assert_int_equal(ff_grow(&v, &cap, SIZE_MAX / 4, sizeof *v), FF_ENOMEM);
    assert_int_equal(ff_grow(&v, &cap, SIZE_MAX, 2), FF_ENOMEM);
    ft_assert_error_has("size overflow");
    assert_ptr_equal(v, keep);
    assert_int_equal(cap, 5000);
    assert_int_equal(ff_grow(&v, &cap, 2, 0), FF_OK); /* already big enough */
    assert_int_equal(ff_grow(&v, &cap, 6000, 0), FF_ENOMEM);
    assert_ptr_equal(v, keep);
    assert_int_equal(cap, 5000);
    free(v);
}

/* ff_sbuf: appends past several growths keep every byte, NUL-terminated. */
static void test_sbuf(void **state)
{
    (void)state;
    ff_sbuf b = {0};
    for (int i = 0; i < 3000; i++)
        ff_sbuf_printf(&b, "%d,", i % 10);
    ff_sbuf_printf(&b, "%s", "end");
    assert_false(b.oom);
    assert_int_equal(b.len, 6003);
    assert_int_equal(strlen(b.buf), 6003);
    assert_memory_equal(b.buf, "0,1,2,", 6);
    assert_string_equal(b.buf + 6000, "end");
    ff_sbuf_free(&b);
    assert_null(b.buf);
}

static void test_arena_bounds(void **state)
{
    (void)state;
    ff_arena a;
    assert_int_equal(ff_arena_init(&a, 1024), FF_OK);
    float *x = ff_arena_floats(&a, 10);
    assert_non_null(x);
    assert_true(x[9] == 0.0f);
    void *y = ff_arena_alloc(&a, 100);
    assert_int_equal((uintptr_t)y % FF_ALIGN, 0);
    assert_null(ff_arena_alloc(&a, 2000));
    ft_assert_error_has("arena: 2000 bytes requested");
    assert_null(ff_arena_alloc(&a, SIZE_MAX));
    size_t peak = a.peak;
    ff_arena_reset(&a);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.peak, peak);
    ff_arena_free(&a);
}

static void test_tensor_view(void **state)
{
    (void)state;
    float buf[24];
    ff_tensor t;
    int64_t shape[3] = {2, 3, 4};
    assert_int_equal(ff_tensor_view(&t, FF_DT_F32, buf, 3, shape), FF_OK);
    assert_int_equal(ff_tensor_numel(&t), 24);
    assert_int_equal(ff_tensor_nbytes(&t), 96);
    assert_int_equal(t.strides[0], 12);
    assert_true(ff_tensor_is_contiguous(&t));
    int64_t bad[2] = {2, -1};
    assert_int_equal(ff_tensor_view(&t, FF_DT_F32, buf, 2, bad), FF_EINVAL);
    assert_int_equal(ff_tensor_view(&t, FF_DT_F32, buf, 9, shape), FF_EINVAL);
    char s[32];
    assert_string_equal(ff_shape_str(s, sizeof s, 3, shape), "[2,3,4]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_aligned),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_sbuf),
        cmocka_unit_test(test_arena_bounds),
        cmocka_unit_test(test_tensor_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
