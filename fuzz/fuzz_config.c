/* libFuzzer target: the YAML config loader over a schema with every field type. */
#include <stddef.h>
#include <string.h>

#include "ff/common.h"

typedef struct {
    char name[16];
    double lr;
} fz_stage;

typedef struct {
    int64_t rounds;
    double frac;
    int flag;
    int mode;
    char site[32];
    struct {
        int64_t port;
    } net;
    ff_cfg_list stages;
    ff_cfg_strlist tags;
} fz_cfg;

static const char *const modes[] = {"a", "b", NULL};
static const ff_cfg_field net_f[] = {
    {.key = "port", .type = FF_CFG_INT, .offset = 0, .min = 1, .max = 65535, .def = "1"},
    {0}};
static const ff_cfg_field stage_f[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = offsetof(fz_stage, name), .size = 16, .required = 1},
    {.key = "lr", .type = FF_CFG_DOUBLE, .offset = offsetof(fz_stage, lr), .min = 0, .max = 1},
    {0}};
static const ff_cfg_field schema[] = {
    {.key = "rounds", .type = FF_CFG_INT, .offset = offsetof(fz_cfg, rounds), .min = 1, .max = 100},
    {.key = "frac", .type = FF_CFG_DOUBLE, .offset = offsetof(fz_cfg, frac)},
    {.key = "flag", .type = FF_CFG_BOOL, .offset = offsetof(fz_cfg, flag)},
    {.key = "mode", .type = FF_CFG_ENUM, .offset = offsetof(fz_cfg, mode), .choices = modes, .def = "a"},
    {.key = "site", .type = FF_CFG_STRING, .offset = offsetof(fz_cfg, site), .size = 32},
    {.key = "net", .type = FF_CFG_SECTION, .offset = offsetof(fz_cfg, net), .sub = net_f},
    {.key = "stages", .type = FF_CFG_LIST, .offset = offsetof(fz_cfg, stages), .size = sizeof(fz_stage),
     .sub = stage_f, .min = 0, .max = 16},
    {.key = "tags", .type = FF_CFG_STRLIST, .offset = offsetof(fz_cfg, tags)},
    {0}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_cfg c;
    memset(&c, 0, sizeof c);
    (void)ff_cfg_load_str("fuzz.yaml", (const char *)data, size, schema, &c);
    ff_cfg_free(schema, &c);
    return 0;
}
