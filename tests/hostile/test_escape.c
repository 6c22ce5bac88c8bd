/* Hostile review item 8 and the loopback check: a peer-controlled string with a newline and a
 * terminal escape cannot forge a log line or drive a terminal (plain format), and plaintext
 * mode refuses a DNS name that merely starts like a loopback address. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ff/transport.h"
#include "testutil.h"

static void test_plain_log_escaped(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "log.txt");
    assert_int_equal(ff_log_open(FF_LOG_INFO, FF_LOG_PLAIN, path, "test"), FF_OK);
    ff_log(FF_LOG_WARN, "refused unknown method '%s' from %s",
           "/x\n2026-01-01T00:00:00.000Z info  [coordinator] FORGED\x1b[2J\xc2\x9b", "site-1");
    ff_log_close();
    char *buf = NULL;
    size_t n = 0;
    assert_int_equal(ff_file_read_all(path, 1 << 20, &buf, &n), FF_OK);
    assert_non_null(strchr(buf, '\n'));
    assert_true(strchr(buf, '\n') == buf + n - 1); /* one line */
    assert_null(strchr(buf, 0x1b));
    assert_null(strstr(buf, "\xc2\x9b"));             /* C1 CSI */
    assert_non_null(strstr(buf, "\\x0a2026-01-01"));
    assert_non_null(strstr(buf, "\\x1b[2J"));
    free(buf);
    ft_rmtree(dir);
}

static void test_loopback_prefix_refused(void **state)
{
    (void)state;
    ff_rpc *c = NULL;
    ff_rpc_opts o = {.target = "127.0.0.1.evil.example:7443", .insecure = 1,
                     .insecure_site = "site-1"};
    assert_int_equal(ff_rpc_new(&c, &o), FF_EPOLICY);
    ft_assert_error_has("not a loopback address");
    o.target = "127.0.0.1:7443";
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    ff_rpc_free(c);
    o.target = "[::1]:7443";
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    ff_rpc_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_log_escaped),
        cmocka_unit_test(test_loopback_prefix_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
