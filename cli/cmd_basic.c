/* Commands that need only the common library. */
#include "commands.h"

static int cmd_version(int argc, char **argv);
static int cmd_inspect(int argc, char **argv);

FF_CLI_GROUP_DEFINE(basic,
    {"inspect", "show the tensors of a safetensors file (names, dtypes, shapes)", cmd_inspect,
     "usage: fedfuse inspect FILE.safetensors\n"
     "  Validates the file (header, offsets, sizes) and lists every tensor with its dtype,\n"
     "  shape and byte count. Exit 2 with the place at fault if the file is corrupt.\n"},
    {"version", "print the fedfuse version", cmd_version, "usage: fedfuse version\n"})

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("fedfuse %s\n", FF_VERSION);
    return FF_EXIT_OK;
}

static int cmd_inspect(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "inspect", argc, argv);
    const char *path = ff_cli_pos(&a, 0);
    if (!path)
        return ff_cli_usage_error("inspect", "missing FILE");
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    ff_safetensors *st;
    int rc = ff_safetensors_open(&st, path);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    size_t total = 0;
    for (size_t i = 0; i < ff_safetensors_count(st); i++) {
        const ff_st_entry *e = ff_safetensors_entry(st, i);
        char shape[128];
        printf("%-40s %-4s %-16s %zu bytes\n", e->name, ff_dtype_name(e->dtype),
               ff_shape_str(shape, sizeof shape, e->ndim, e->shape), e->nbytes);
        total += e->nbytes;
    }
    printf("%zu tensors, %zu bytes\n", ff_safetensors_count(st), total);
    ff_safetensors_close(st);
    return FF_EXIT_OK;
}
