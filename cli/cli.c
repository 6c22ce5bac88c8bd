/* Helpers shared by the subcommands: errors, exit codes and option scanning. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

int ff_cli_fail(int rc)
{
    fprintf(stderr, "fedfuse: error: %s\n", ff_error_message());
    switch (rc) {
    case FF_EINVAL:
    case FF_EFORMAT:
    case FF_ECONFIG:
    case FF_ERANGE:
    case FF_ENOTFOUND:
    case FF_ENUMERIC:
    case FF_EPOLICY:
    case FF_EIO: /* a file the user named could not be read or written */
        return FF_EXIT_USAGE;
    default:
        return FF_EXIT_FAIL;
    }
}

int ff_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "fedfuse: error: %s\n(see 'fedfuse %s --help')\n", msg, cmd);
    return FF_EXIT_USAGE;
}

int ff_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

void ff_cli_args_init(ff_cli_args *a, const char *cmd, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc < 256 ? argc : 256;
    a->argv = argv;
}

static int find_opt(ff_cli_args *a, const char *name, int from)
{
    for (int i = from; i < a->argc; i++)
        if (!a->used[i] && strcmp(a->argv[i], name) == 0)
            return i;
    return -1;
}

const char *ff_cli_opt(ff_cli_args *a, const char *name)
{
    int i = find_opt(a, name, 1);
    if (i < 0 || i + 1 >= a->argc)
        return NULL;
    a->used[i] = a->used[i + 1] = 1;
    return a->argv[i + 1];
}

int ff_cli_opt_all(ff_cli_args *a, const char *name, const char **out, int max)
{
    int n = 0;
    for (int i = find_opt(a, name, 1); i >= 0 && i + 1 < a->argc && n < max;
         i = find_opt(a, name, i + 2)) {
        a->used[i] = a->used[i + 1] = 1;
        out[n++] = a->argv[i + 1];
    }
    return n;
}

int ff_cli_flag(ff_cli_args *a, const char *name)
{
    int i = find_opt(a, name, 1);
    if (i < 0)
        return 0;
    a->used[i] = 1;
    return 1;
}

const char *ff_cli_pos(ff_cli_args *a, int want)
{
    int k = 0;
    for (int i = 1; i < a->argc; i++) {
        if (a->used[i] || a->argv[i][0] == '-')
            continue;
        if (k++ == want) {
            a->used[i] = 1;
            return a->argv[i];
        }
    }
    return NULL;
}

int ff_cli_opt_i64(ff_cli_args *a, const char *name, int64_t def, int64_t *out)
{
    const char *v = ff_cli_opt(a, name);
    *out = def;
    if (!v)
        return FF_OK;
    if (ff_parse_i64(v, out) != FF_OK)
        return ff_error(FF_EINVAL, "%s: '%s' is not an integer", name, v);
    return FF_OK;
}

int ff_cli_opt_f64(ff_cli_args *a, const char *name, double def, double *out)
{
    const char *v = ff_cli_opt(a, name);
    *out = def;
    if (!v)
        return FF_OK;
    if (ff_parse_f64(v, out) != FF_OK)
        return ff_error(FF_EINVAL, "%s: '%s' is not a number", name, v);
    return FF_OK;
}

int ff_cli_check_unused(ff_cli_args *a)
{
    for (int i = 1; i < a->argc; i++)
        if (!a->used[i])
            return ff_error(FF_EINVAL, "unexpected argument '%s' (see 'fedfuse %s --help')",
                            a->argv[i], a->cmd);
    return FF_OK;
}
