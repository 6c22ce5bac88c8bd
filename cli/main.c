/* fedfuse: one program, many subcommands. `fedfuse help` lists them. */
#include "cli.h"
#include "commands.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const ff_cli_cmd *cmds;
    const size_t *n;
} cli_group;

#define GROUP(mod) {ff_cli_cmds_##mod, &ff_cli_ncmds_##mod},
static const cli_group groups[] = {
#ifdef FF_HAVE_DATA
    GROUP(data)
#endif
#ifdef FF_HAVE_MODELS
    GROUP(models)
#endif
#ifdef FF_HAVE_EVAL
    GROUP(eval)
#endif
#ifdef FF_HAVE_CRYPTO
    GROUP(crypto)
#endif
#ifdef FF_HAVE_PRIVACY
    GROUP(privacy)
#endif
#ifdef FF_HAVE_TRANSPORT
    GROUP(transport)
#endif
#ifdef FF_HAVE_COORDINATOR
    GROUP(coordinator)
#endif
#ifdef FF_HAVE_CLIENT
    GROUP(client)
#endif
#ifdef FF_HAVE_FED
    GROUP(fed)
#endif
#ifdef FF_HAVE_BENCHMARK
    GROUP(benchmark)
#endif
#ifdef FF_HAVE_AUDIT
    GROUP(audit)
#endif
    GROUP(basic)
};

const ff_cli_cmd *ff_cli_find(const char *name)
{
    for (size_t g = 0; g < FF_ARRAY_LEN(groups); g++)
        for (size_t i = 0; i < *groups[g].n; i++)
            if (strcmp(name, groups[g].cmds[i].name) == 0)
                return &groups[g].cmds[i];
    return NULL;
}

static void print_help(void)
{
    printf("fedfuse %s — federated multimodal learning for hospitals\n\n"
           "usage: fedfuse COMMAND [options]   (fedfuse COMMAND --help for details)\n\n"
           "commands:\n",
           FF_VERSION);
    for (size_t g = 0; g < FF_ARRAY_LEN(groups); g++)
        for (size_t i = 0; i < *groups[g].n; i++)
            printf("  %-12s %s\n", groups[g].cmds[i].name, groups[g].cmds[i].summary);
    printf("  %-12s %s\n", "help", "this list, or `fedfuse help COMMAND`");
}

/* Logging for operators, from the environment so that a systemd unit (or a parent process
 * such as `fedfuse simulate`) sets it once for every command: FEDFUSE_LOG_FORMAT=plain|json,
 * FEDFUSE_LOG_LEVEL=debug|info|warn|error|off. A bad value is a usage error, never ignored. */
static int log_from_env(void)
{
    const char *fmt = getenv("FEDFUSE_LOG_FORMAT"), *lvl = getenv("FEDFUSE_LOG_LEVEL");
    ff_log_format format = FF_LOG_PLAIN;
    ff_log_level level = FF_LOG_INFO;
    if (fmt && strcmp(fmt, "json") == 0)
        format = FF_LOG_JSON;
    else if (fmt && *fmt && strcmp(fmt, "plain") != 0)
        return ff_error(FF_EINVAL, "FEDFUSE_LOG_FORMAT: unknown log format '%s' (plain, json)",
                        fmt);
    if (lvl && *lvl && ff_log_level_parse(lvl, &level) != FF_OK)
        return ff_error(FF_EINVAL, "FEDFUSE_LOG_LEVEL: unknown log level '%s' (debug, info, "
                        "warn, error, off)", lvl);
    return (fmt || lvl) ? ff_log_open(level, format, NULL, "fedfuse") : FF_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_help();
        return argc < 2 ? FF_EXIT_USAGE : FF_EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0) {
        const ff_cli_cmd *c = argc >= 3 ? ff_cli_find(argv[2]) : NULL;
        if (c)
            fputs(c->usage, stdout);
        else
            print_help();
        return FF_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        argv[1] = "version";
    if (log_from_env() != FF_OK) {
        fprintf(stderr, "fedfuse: error: %s\n", ff_error_message());
        return FF_EXIT_USAGE;
    }
    const ff_cli_cmd *c = ff_cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "fedfuse: error: unknown command '%s' (see 'fedfuse help')\n", argv[1]);
        return FF_EXIT_USAGE;
    }
    /* `fedfuse X --help` prints X's usage; commands with verbs (model info, pki init) get
     * `fedfuse X VERB --help` themselves so each verb can explain itself. */
    if (argc == 3 && ff_cli_wants_help(argc - 1, argv + 1)) {
        fputs(c->usage, stdout);
        return FF_EXIT_OK;
    }
    return c->run(argc - 1, argv + 1);
}
