#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Builds a safetensors image from a header string and a data section. */
static size_t make_st(uint8_t *buf, const char *header, const void *data, size_t dlen)
{
    uint64_t h = strlen(header);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(h >> (8 * i));
    memcpy(buf + 8, header, h);
    memcpy(buf + 8 + h, data, dlen);
    return 8 + h + dlen;
}

static int open_hdr(const char *header, size_t dlen)
{
    static uint8_t buf[4096];
    static const uint8_t zeros[1024];
    size_t n = make_st(buf, header, zeros, dlen);
    ff_safetensors *st = NULL;
    int rc = ff_safetensors_open_mem(&st, buf, n, "m.safetensors");
    ff_safetensors_close(st);
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "w.safetensors");
    float w[6] = {1, 2, 3, 4, 5, 6};
    int32_t ids[3] = {7, -8, 9};
    int64_t sw[2] = {2, 3}, si[1] = {3};
    ff_st_writer *wr;
    assert_int_equal(ff_st_writer_new(&wr), FF_OK);
    assert_int_equal(ff_st_writer_add(wr, "head.weight", FF_DT_F32, 2, sw, w), FF_OK);
    assert_int_equal(ff_st_writer_add(wr, "ids", FF_DT_I32, 1, si, ids), FF_OK);
    assert_int_equal(ff_st_writer_add(wr, "ids", FF_DT_I32, 1, si, ids), FF_EINVAL);
    ft_assert_error_has("duplicate tensor 'ids'");
    assert_int_equal(ff_st_writer_meta(wr, "format", "fedfuse"), FF_OK);
    assert_int_equal(ff_st_writer_save(wr, path), FF_OK);
    ff_st_writer_free(wr);

    ff_safetensors *st;
    assert_int_equal(ff_safetensors_open(&st, path), FF_OK);
    assert_int_equal(ff_safetensors_count(st), 2);
    assert_string_equal(ff_safetensors_meta(st, "format"), "fedfuse");
    float back[6];
    assert_int_equal(ff_safetensors_read(st, "head.weight", FF_DT_F32, 2, sw, back), FF_OK);
    assert_memory_equal(back, w, sizeof w);
    int32_t iback[3];
    assert_int_equal(ff_safetensors_read(st, "ids", FF_DT_I32, 1, si, iback), FF_OK);
    assert_memory_equal(iback, ids, sizeof ids);
    int64_t wrong[2] = {3, 2};
    assert_int_equal(ff_safetensors_read(st, "head.weight", FF_DT_F32, 2, wrong, back), FF_EFORMAT);
    ft_assert_error_has("tensor 'head.weight' has shape [2,3], expected [3,2]");
    assert_int_equal(ff_safetensors_read(st, "ids", FF_DT_F32, 1, si, back), FF_EFORMAT);
    ft_assert_error_has("dtype I32, expected F32");
    assert_int_equal(ff_safetensors_read(st, "nope", FF_DT_F32, 1, si, back), FF_ENOTFOUND);
    ft_assert_error_has("tensor 'nope' is missing");
    ff_safetensors_close(st);
    ft_rmtree(dir);
}

static void test_accepts_any_order_and_padding(void **state)
{
    (void)state;
    /* data order differs from key order; header padded with spaces */
    assert_int_equal(open_hdr("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}    ", 8),
                     FF_OK);
}

static void test_rejects_bad_headers(void **state)
{
    (void)state;
    uint8_t tiny[4] = {1, 2, 3, 4};
    ff_safetensors *st = (ff_safetensors *)1;
    assert_int_equal(ff_safetensors_open_mem(&st, tiny, 4, "t.st"), FF_EFORMAT);
    assert_null(st);
    ft_assert_error_has("t.st: 4 bytes: too short");

    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    assert_int_equal(ff_safetensors_open_mem(&st, huge, 16, "h.st"), FF_EFORMAT);
    ft_assert_error_has("exceeds the");

    uint8_t trunc[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_int_equal(ff_safetensors_open_mem(&st, trunc, 10, "tr.st"), FF_EFORMAT);
    ft_assert_error_has("does not fit the 10-byte file (truncated?)");

    assert_int_equal(open_hdr("{\"a\":", 0), FF_EFORMAT);
    ft_assert_error_has("m.safetensors: header JSON");
    assert_int_equal(open_hdr("[1,2]", 0), FF_EFORMAT);
    ft_assert_error_has("header is not a JSON object");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4),
                     FF_EFORMAT);
    ft_assert_error_has("tensor 'a': data_offsets end 8 beyond the data section (4 bytes)");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
                     FF_EFORMAT);
    ft_assert_error_has("tensor 'a': 8 data bytes, but dtype F32 and its shape need 12");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                     FF_EFORMAT);
    ft_assert_error_has("tensor 'a': unsupported dtype 'Q4'");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                     FF_EFORMAT);
    ft_assert_error_has("overlap");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4),
                     FF_EFORMAT);
    ft_assert_error_has("shape[0] is not a non-negative integer");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4),
                     FF_EFORMAT);
    ft_assert_error_has("0 <= begin <= end");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), FF_EFORMAT);
    ft_assert_error_has("'data_offsets' must be [begin, end]");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                     FF_EFORMAT);
    ft_assert_error_has("duplicate");
    assert_int_equal(open_hdr("{\"__metadata__\":{\"k\":1}}", 0), FF_EFORMAT);
    ft_assert_error_has("__metadata__ 'k' is not a string");
    assert_int_equal(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                              "\"data_offsets\":[0,4]}}", 4),
                     FF_EFORMAT);
    ft_assert_error_has("shape overflows");
}

static void test_truncated_file_on_disk(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "x.safetensors");
    float w[256] = {0};
    int64_t s[1] = {256};
    ff_st_writer *wr;
    assert_int_equal(ff_st_writer_new(&wr), FF_OK);
    assert_int_equal(ff_st_writer_add(wr, "w", FF_DT_F32, 1, s, w), FF_OK);
    assert_int_equal(ff_st_writer_save(wr, path), FF_OK);
    ff_st_writer_free(wr);
    assert_int_equal(truncate(path, 500), 0);
    ff_safetensors *st;
    assert_int_equal(ff_safetensors_open(&st, path), FF_EFORMAT);
    ft_assert_error_has("tensor 'w': data_offsets end 1024 beyond the data section");
    assert_int_equal(ff_safetensors_open(&st, ft_path(dir, "missing")), FF_EIO);
    ft_assert_error_has("missing: cannot open");
    ft_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_accepts_any_order_and_padding),
        cmocka_unit_test(test_rejects_bad_headers),
        cmocka_unit_test(test_truncated_file_on_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
