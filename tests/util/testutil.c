#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ft_tmpdir(void)
{
    static char slots[8][64];
    static int next;
    char *p = slots[next++ % 8];
    snprintf(p, 64, "/tmp/fftest.XXXXXX");
    if (!mkdtemp(p))
        fail_msg("mkdtemp failed");
    return p;
}

void ft_rmtree(const char *path)
{
    char cmd[512];
    if (strncmp(path, "/tmp/fftest.", 12) != 0)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        print_message("warning: could not remove %s\n", path);
}

const char *ft_path(const char *dir, const char *name)
{
    static char slots[8][512];
    static int next;
    char *p = slots[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

void ft_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

void ft_assert_error_has_impl(const char *needle, const char *file, int line)
{
    const char *msg = ff_error_message();
    if (!strstr(msg, needle)) {
        print_error("error message '%s' lacks '%s'\n", msg, needle);
        _fail(file, line);
    }
}

double ft_rel_err(double a, double b, double floor)
{
    double d = fabs(a - b);
    double s = fmax(fmax(fabs(a), fabs(b)), floor);
    return d / s;
}
