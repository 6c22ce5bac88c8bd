/* Input dimensions from a model config YAML. The schema mirrors the keys of the models/
 * config (every key listed, since the loader rejects unknown ones) but reads only what the
 * data pipeline needs; ff_data never links ff_models. */
#include "ff/data.h"

#include <stddef.h>
#include <string.h>

typedef struct {
    char name[64];
    int64_t width, heads, mlp, layers, tasks;
    int fusion;
    struct {
        int64_t size, channels, patch;
    } image;
    struct {
        int64_t length, vocab;
    } text;
    struct {
        int64_t length, codes, values, times;
    } ehr;
} model_yaml;

#define SUB(member, field) (offsetof(model_yaml, member.field) - offsetof(model_yaml, member))

static const char *const fusion_modes[] = {"cross", "early", "late", NULL};

static const ff_cfg_field image_fields[] = {
    {.key = "size", .type = FF_CFG_INT, .offset = SUB(image, size), .required = 1, .min = 4,
     .max = 1024, .help = "image side"},
    {.key = "channels", .type = FF_CFG_INT, .offset = SUB(image, channels), .min = 1, .max = 1,
     .def = "1", .help = "image channels (the data pipeline produces gray images)"},
    {.key = "patch", .type = FF_CFG_INT, .offset = SUB(image, patch), .min = 1, .max = 1024,
     .def = "8", .help = "patch side (not used by data)"},
    {0},
};

static const ff_cfg_field text_fields[] = {
    {.key = "length", .type = FF_CFG_INT, .offset = SUB(text, length), .required = 1, .min = 1,
     .max = 65535, .help = "Lt"},
    {.key = "vocab", .type = FF_CFG_INT, .offset = SUB(text, vocab), .required = 1, .min = 2,
     .max = 1 << 24, .help = "Vt"},
    {0},
};

static const ff_cfg_field ehr_fields[] = {
    {.key = "length", .type = FF_CFG_INT, .offset = SUB(ehr, length), .required = 1, .min = 1,
     .max = 65535, .help = "Le"},
    {.key = "codes", .type = FF_CFG_INT, .offset = SUB(ehr, codes), .required = 1, .min = 2,
     .max = 1 << 24, .help = "Vc"},
    {.key = "values", .type = FF_CFG_INT, .offset = SUB(ehr, values), .required = 1,
     .min = FF_VALUE_BINS, .max = FF_VALUE_BINS, .help = "Vv (no value + deciles)"},
    {.key = "times", .type = FF_CFG_INT, .offset = SUB(ehr, times), .required = 1, .min = 3,
     .max = 65535, .help = "Vtime"},
    {0},
};

static const ff_cfg_field model_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = offsetof(model_yaml, name), .size = 64},
    {.key = "width", .type = FF_CFG_INT, .offset = offsetof(model_yaml, width), .max = 1 << 20},
    {.key = "heads", .type = FF_CFG_INT, .offset = offsetof(model_yaml, heads), .max = 1 << 20},
    {.key = "mlp", .type = FF_CFG_INT, .offset = offsetof(model_yaml, mlp), .max = 1 << 24},
    {.key = "layers", .type = FF_CFG_INT, .offset = offsetof(model_yaml, layers), .max = 1024},
    {.key = "fusion", .type = FF_CFG_ENUM, .offset = offsetof(model_yaml, fusion),
     .choices = fusion_modes, .def = "cross"},
    {.key = "tasks", .type = FF_CFG_INT, .offset = offsetof(model_yaml, tasks), .min = 1,
     .max = FF_DATA_TASKS, .def = "3", .help = "K (admission, icu, critical in that order)"},
    {.key = "image", .type = FF_CFG_SECTION, .offset = offsetof(model_yaml, image),
     .required = 1, .sub = image_fields},
    {.key = "text", .type = FF_CFG_SECTION, .offset = offsetof(model_yaml, text), .required = 1,
     .sub = text_fields},
    {.key = "ehr", .type = FF_CFG_SECTION, .offset = offsetof(model_yaml, ehr), .required = 1,
     .sub = ehr_fields},
    {0},
};

int ff_data_shape_from_yaml(const char *path, ff_data_shape *out)
{
    model_yaml m;
    memset(&m, 0, sizeof m);
    int rc = ff_cfg_load(path, model_fields, &m);
    if (rc == FF_OK) {
        *out = (ff_data_shape){.C = (int)m.image.channels, .H = (int)m.image.size,
                               .W = (int)m.image.size, .Lt = (int)m.text.length,
                               .Vt = (int)m.text.vocab, .Le = (int)m.ehr.length,
                               .Vc = (int)m.ehr.codes, .Vv = (int)m.ehr.values,
                               .Vtime = (int)m.ehr.times, .K = (int)m.tasks, .bigrams = 0};
        rc = ff_data_shape_check(out);
        if (rc != FF_OK)
            rc = ff_error_prefix(rc, "%s: ", path);
    }
    ff_cfg_free(model_fields, &m);
    return rc;
}
