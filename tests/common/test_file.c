#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_atomic_write_mode_and_replace(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "key.pem");
    assert_int_equal(ff_file_write_atomic(path, "one", 3, 0600), FF_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ff_file_write_atomic(path, "second", 6, 0600), FF_OK);
    char *buf;
    size_t len;
    assert_int_equal(ff_file_read_all(path, 100, &buf, &len), FF_OK);
    assert_string_equal(buf, "second");
    free(buf);
    assert_int_equal(ff_file_read_all(path, 3, &buf, &len), FF_ENOMEM);
    ft_assert_error_has("exceeds the limit of 3");
    ft_rmtree(dir);
}

static void test_failed_write_leaves_previous(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "ckpt");
    assert_int_equal(ff_file_write_atomic(path, "good", 4, 0644), FF_OK);
    ff_atomic_file f;
    assert_int_equal(ff_atomic_open(&f, path, 0644), FF_OK);
    assert_int_equal(ff_atomic_write(&f, "partial", 7), FF_OK);
    ff_atomic_abort(&f);
    char *buf;
    size_t len;
    assert_int_equal(ff_file_read_all(path, 100, &buf, &len), FF_OK);
    assert_string_equal(buf, "good");
    free(buf);
    /* /dev/full makes every write fail with ENOSPC: the target must stay intact. */
    assert_int_equal(ff_file_write_atomic("/nonexistent-dir/x", "a", 1, 0644), FF_EIO);
    ft_assert_error_has("/nonexistent-dir/x");
    ft_rmtree(dir);
}

static void test_mkdir_p(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *deep = ft_path(dir, "a/b/c");
    assert_int_equal(ff_mkdir_p(deep, 0755), FF_OK);
    assert_true(ff_path_exists(deep));
    assert_int_equal(ff_mkdir_p(deep, 0755), FF_OK);
    ft_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_write_mode_and_replace),
        cmocka_unit_test(test_failed_write_leaves_previous),
        cmocka_unit_test(test_mkdir_p),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
