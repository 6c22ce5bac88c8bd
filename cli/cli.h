/* cli.h — the fedfuse command table and helpers shared by the subcommands.
 *
 * A subcommand is a function `int cmd_x(int argc, char **argv)` (argv[0] is its own name)
 * returning the process exit status: 0 success, 1 runtime failure (network, peer, deadline),
 * 2 bad usage or bad input (config, file, data), with a one-line "fedfuse: error: ..." that
 * names the place. */
#ifndef FF_CLI_H
#define FF_CLI_H

#include <stdio.h>

#include "ff/common.h"

typedef struct {
    const char *name;    /* "model" */
    const char *summary; /* one line for `fedfuse help` */
    int (*run)(int argc, char **argv);
    const char *usage; /* full help text for `fedfuse NAME --help` */
} ff_cli_cmd;

#define FF_EXIT_OK 0
#define FF_EXIT_FAIL 1
#define FF_EXIT_USAGE 2

/* Prints "fedfuse: error: <ff_error_message()>" and returns the exit status for rc. */
int ff_cli_fail(int rc);
/* Prints "fedfuse: error: <formatted>" plus a pointer to --help; returns FF_EXIT_USAGE. */
int ff_cli_usage_error(const char *cmd, const char *fmt, ...) FF_PRINTF(2, 3);
/* True when argv holds -h or --help. */
int ff_cli_wants_help(int argc, char **argv);

/* Option scanning for "--name value" and "--flag": returns the value of --name (NULL when
 * absent), and marks consumed slots so ff_cli_check_unused can report strays. */
typedef struct {
    int argc;
    char **argv;
    unsigned char used[256];
    const char *cmd;
} ff_cli_args;
void ff_cli_args_init(ff_cli_args *a, const char *cmd, int argc, char **argv);
const char *ff_cli_opt(ff_cli_args *a, const char *name);
/* All values of a repeatable option into out (at most max); returns the count. */
int ff_cli_opt_all(ff_cli_args *a, const char *name, const char **out, int max);
int ff_cli_flag(ff_cli_args *a, const char *name);
/* Positional argument i (0-based, among unconsumed non-option args), or NULL. */
const char *ff_cli_pos(ff_cli_args *a, int i);
/* Parses an option as integer/double with a default; errors name the option. */
int ff_cli_opt_i64(ff_cli_args *a, const char *name, int64_t def, int64_t *out) FF_WARN_UNUSED;
int ff_cli_opt_f64(ff_cli_args *a, const char *name, double def, double *out) FF_WARN_UNUSED;
/* FF_OK when every argument was consumed, else FF_EINVAL naming the first stray one. */
int ff_cli_check_unused(ff_cli_args *a) FF_WARN_UNUSED;

/* Looks a command up in every group; NULL when unknown. */
const ff_cli_cmd *ff_cli_find(const char *name);

#endif
