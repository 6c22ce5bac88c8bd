#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void test_json_lines_escaped_and_filtered(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "log.jsonl");
    assert_int_equal(ff_log_open(FF_LOG_INFO, FF_LOG_JSON, path, "client:site-a"), FF_OK);
    ff_log(FF_LOG_DEBUG, "hidden %d", 1);
    ff_log(FF_LOG_INFO, "round %d \"done\"\nnext", 3);
    ff_log(FF_LOG_ERROR, "tab\there");
    ff_log_close();
    char *buf;
    size_t len;
    assert_int_equal(ff_file_read_all(path, 1 << 20, &buf, &len), FF_OK);
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "\"level\":\"info\",\"component\":\"client:site-a\","
                                "\"msg\":\"round 3 \\\"done\\\"\\u000anext\"}\n"));
    assert_non_null(strstr(buf, "\"msg\":\"tab\\u0009here\""));
    /* exactly two lines: a log line is never split by an embedded newline */
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    assert_int_equal(lines, 2);
    free(buf);
    ft_rmtree(dir);
}

static void test_level_parse(void **state)
{
    (void)state;
    ff_log_level l;
    assert_int_equal(ff_log_level_parse("warn", &l), FF_OK);
    assert_int_equal(l, FF_LOG_WARN);
    assert_int_equal(ff_log_level_parse("loud", &l), FF_EINVAL);
    ft_assert_error_has("unknown log level 'loud'");
}

static void test_open_unwritable_path(void **state)
{
    (void)state;
    assert_int_equal(ff_log_open(FF_LOG_INFO, FF_LOG_PLAIN, "/nonexistent/dir/x.log", NULL), FF_EIO);
    ft_assert_error_has("/nonexistent/dir/x.log");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines_escaped_and_filtered),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_open_unwritable_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
