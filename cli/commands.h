/* Command groups. Each library's cmd_<module>.c defines
 *     const ff_cli_cmd ff_cli_cmds_<module>[];  const size_t ff_cli_ncmds_<module>;
 * and main.c lists the groups of the libraries that exist (FF_HAVE_<MODULE>, set by
 * cli/CMakeLists.txt), so adding a command never touches a shared file. */
#ifndef FF_CLI_COMMANDS_H
#define FF_CLI_COMMANDS_H

#include "cli.h"

#define FF_CLI_GROUP_DECL(mod)                                                                \
    extern const ff_cli_cmd ff_cli_cmds_##mod[];                                              \
    extern const size_t ff_cli_ncmds_##mod;

#define FF_CLI_GROUP_DEFINE(mod, ...)                                                         \
    const ff_cli_cmd ff_cli_cmds_##mod[] = {__VA_ARGS__};                                     \
    const size_t ff_cli_ncmds_##mod = sizeof(ff_cli_cmds_##mod) / sizeof(ff_cli_cmd);

FF_CLI_GROUP_DECL(basic)
#ifdef FF_HAVE_MODELS
FF_CLI_GROUP_DECL(models)
#endif
#ifdef FF_HAVE_DATA
FF_CLI_GROUP_DECL(data)
#endif
#ifdef FF_HAVE_INGEST
/* `fedfuse import dicom|fhir` (cmd_ingest.c), reached through the import command of
 * cmd_data.c; argv[0] is "import", argv[1] the source. */
int ff_cli_import_dicom(int argc, char **argv);
int ff_cli_import_fhir(int argc, char **argv);
#endif
#ifdef FF_HAVE_EVAL
FF_CLI_GROUP_DECL(eval)
#endif
#ifdef FF_HAVE_CRYPTO
FF_CLI_GROUP_DECL(crypto)
#endif
#ifdef FF_HAVE_PRIVACY
FF_CLI_GROUP_DECL(privacy)
#endif
#ifdef FF_HAVE_AUDIT
FF_CLI_GROUP_DECL(audit)
#endif
#ifdef FF_HAVE_TRANSPORT
FF_CLI_GROUP_DECL(transport)
#endif
#ifdef FF_HAVE_COORDINATOR
FF_CLI_GROUP_DECL(coordinator)
#endif
#ifdef FF_HAVE_CLIENT
FF_CLI_GROUP_DECL(client)
#endif
#ifdef FF_HAVE_FED
FF_CLI_GROUP_DECL(fed)
#endif
#ifdef FF_HAVE_BENCHMARK
FF_CLI_GROUP_DECL(benchmark)
#endif

#endif
