#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void test_error_message_and_prefix(void **state)
{
    (void)state;
    assert_int_equal(ff_error(FF_EINVAL, "field '%s' bad", "x"), FF_EINVAL);
    assert_string_equal(ff_error_message(), "field 'x' bad");
    assert_int_equal(ff_error_prefix(FF_EINVAL, "site %d: ", 3), FF_EINVAL);
    assert_string_equal(ff_error_message(), "site 3: field 'x' bad");
    ff_error_clear();
    assert_string_equal(ff_error_message(), "");
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(ff_status_name(FF_OK), "OK");
    assert_string_equal(ff_status_name(FF_ECONFIG), "ECONFIG");
    assert_string_equal(ff_status_name(FF_EINTERNAL), "EINTERNAL");
    assert_string_equal(ff_status_name(-999), "?");
    assert_string_equal(ff_status_name(5), "?");
}

static void test_parse_numbers(void **state)
{
    (void)state;
    int64_t i;
    double d;
    assert_int_equal(ff_parse_i64("42", &i), FF_OK);
    assert_int_equal(i, 42);
    assert_int_equal(ff_parse_i64("42x", &i), FF_EINVAL);
    assert_int_equal(ff_parse_i64("", &i), FF_EINVAL);
    assert_int_equal(ff_parse_i64("99999999999999999999", &i), FF_EINVAL);
    assert_int_equal(ff_parse_f64("1e-3", &d), FF_OK);
    assert_true(d == 1e-3);
    assert_int_equal(ff_parse_f64("nan", &d), FF_EINVAL);
    assert_int_equal(ff_parse_f64("1e999", &d), FF_EINVAL);
}

static void test_fnv_and_hex(void **state)
{
    (void)state;
    /* Published FNV-1a 32-bit test values. */
    assert_int_equal(ff_fnv1a32("", 0), 0x811c9dc5u);
    assert_int_equal(ff_fnv1a32("a", 1), 0xe40c292cu);
    assert_int_equal(ff_fnv1a32("foobar", 6), 0xbf9cf968u);
    char hex[9];
    ff_hex((const uint8_t *)"\x01\xab\xff\x00", 4, hex);
    assert_string_equal(hex, "01abff00");
    char s[4];
    assert_int_equal(ff_strlcpy(s, "abc", sizeof s), FF_OK);
    assert_int_equal(ff_strlcpy(s, "abcd", sizeof s), FF_ERANGE);
    assert_string_equal(s, "abc");
}

static void test_sha256_known_answers(void **state)
{
    (void)state;
    uint8_t d[FF_SHA256_BYTES];
    char hex[FF_SHA256_HEX];
    /* FIPS 180-2 examples */
    ff_sha256("abc", 3, d);
    ff_hex(d, sizeof d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ff_sha256_ctx *c;
    assert_int_equal(ff_sha256_new(&c), FF_OK);
    ff_sha256_update(c, "ab", 2);
    ff_sha256_update(c, "c", 1);
    uint8_t d2[FF_SHA256_BYTES];
    ff_sha256_final(c, d2);
    assert_true(ff_ct_equal(d, d2, sizeof d));
    d2[31] ^= 1;
    assert_false(ff_ct_equal(d, d2, sizeof d));
    const char *dir = ft_tmpdir();
    ft_write_file(ft_path(dir, "f"), "", 0);
    assert_int_equal(ff_sha256_file(ft_path(dir, "f"), hex), FF_OK);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* FIPS 180-2: one million 'a', read through many buffers of ff_sha256_file */
    char *big = malloc(1000000);
    assert_non_null(big);
    memset(big, 'a', 1000000);
    ft_write_file(ft_path(dir, "big"), big, 1000000);
    free(big);
    assert_int_equal(ff_sha256_file(ft_path(dir, "big"), hex), FF_OK);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    ft_rmtree(dir);
    uint8_t secret[8] = {1, 2, 3, 4, 5, 6, 7, 8}, zero[8] = {0};
    ff_secure_zero(secret, sizeof secret);
    assert_memory_equal(secret, zero, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message_and_prefix),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_fnv_and_hex),
        cmocka_unit_test(test_sha256_known_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
