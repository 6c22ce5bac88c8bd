/* The model config: YAML keys of configs/model-*.yaml through the common field-table loader. */
#include <stddef.h>
#include <string.h>

#include "ff/models.h"

static const char *const fusion_modes[] = {"cross", "early", "late", NULL};

#define SUB(type, member, field) (offsetof(type, member.field) - offsetof(type, member))

static const ff_cfg_field image_fields[] = {
    {.key = "size",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, image, size),
     .required = 1,
     .min = 1,
     .max = 4096,
     .help = "image side in pixels (square images)"},
    {.key = "channels",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, image, channels),
     .min = 1,
     .max = 16,
     .def = "1",
     .help = "image channels"},
    {.key = "patch",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, image, patch),
     .required = 1,
     .min = 1,
     .max = 1024,
     .help = "patch side; must divide size"},
    {0},
};

static const ff_cfg_field text_fields[] = {
    {.key = "length",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, text, length),
     .required = 1,
     .min = 1,
     .max = 65536,
     .help = "text tokens per sample (0 = padding)"},
    {.key = "vocab",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, text, vocab),
     .required = 1,
     .min = 2,
     .max = 1 << 24,
     .help = "hashed token buckets"},
    {0},
};

static const ff_cfg_field ehr_fields[] = {
    {.key = "length",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, ehr, length),
     .required = 1,
     .min = 1,
     .max = 65536,
     .help = "EHR events per sample (code 0 = padding)"},
    {.key = "codes",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, ehr, codes),
     .required = 1,
     .min = 2,
     .max = 1 << 24,
     .help = "event code vocabulary"},
    {.key = "values",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, ehr, values),
     .required = 1,
     .min = 1,
     .max = 1 << 16,
     .help = "value bins (0 = no value)"},
    {.key = "times",
     .type = FF_CFG_INT,
     .offset = SUB(ff_model_config, ehr, times),
     .required = 1,
     .min = 1,
     .max = 1 << 16,
     .help = "time bins"},
    {0},
};

static const char *const task_kinds[] = {"binary", "multiclass", "regression", "survival", NULL};

static const ff_cfg_field task_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = offsetof(ff_task, name), .size = 64,
     .required = 1, .help = "task name (metrics.json, report, console)"},
    {.key = "kind", .type = FF_CFG_ENUM, .offset = offsetof(ff_task, kind), .choices = task_kinds,
     .def = "binary", .help = "binary | multiclass | regression | survival"},
    {.key = "label", .type = FF_CFG_STRING, .offset = offsetof(ff_task, label), .size = 64,
     .help = "label column of patients.csv (default label_<name>; not for survival)"},
    {.key = "classes", .type = FF_CFG_INT, .offset = offsetof(ff_task, classes), .min = 0,
     .max = FF_TASK_CLASSES_MAX, .def = "0", .help = "multiclass: number of classes K (labels 0..K-1)"},
    {.key = "time", .type = FF_CFG_STRING, .offset = offsetof(ff_task, time), .size = 64,
     .help = "survival: time-to-event or censoring column"},
    {.key = "event", .type = FF_CFG_STRING, .offset = offsetof(ff_task, event), .size = 64,
     .help = "survival: event column (1 event, 0 censored)"},
    {.key = "horizon", .type = FF_CFG_DOUBLE, .offset = offsetof(ff_task, horizon), .min = 0,
     .max = 1e12, .def = "0", .help = "survival: time of the time-dependent AUROC"},
    {.key = "center", .type = FF_CFG_DOUBLE, .offset = offsetof(ff_task, center), .min = -1e12,
     .max = 1e12, .def = "0", .help = "regression: the model predicts (y - center) / scale"},
    {.key = "scale", .type = FF_CFG_DOUBLE, .offset = offsetof(ff_task, scale), .min = 0,
     .max = 1e12, .def = "1", .help = "regression: see center"},
    {0},
};

static const char *const feature_types[] = {"numeric", "categorical", NULL};
static const char *const norm_modes[] = {"site", "federated", NULL};

/* One `tabular.features` item as the loader writes it (turned into an ff_feature). */
typedef struct {
    char name[64];
    int kind;
    ff_cfg_strlist categories;
} feature_yaml;

static const ff_cfg_field feature_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = offsetof(feature_yaml, name), .size = 64,
     .required = 1, .help = "column of tabular.csv"},
    {.key = "type", .type = FF_CFG_ENUM, .offset = offsetof(feature_yaml, kind),
     .choices = feature_types, .required = 1, .help = "numeric | categorical"},
    {.key = "categories", .type = FF_CFG_STRLIST, .offset = offsetof(feature_yaml, categories),
     .min = 2, .max = FF_FEATURE_CATEGORIES_MAX,
     .help = "categorical: the values it may take (any other is an error in data check)"},
    {0},
};

#define TAB(field) (offsetof(ff_model_config, tabular_yaml.field) - \
                    offsetof(ff_model_config, tabular_yaml))
static const ff_cfg_field tabular_fields[] = {
    {.key = "features", .type = FF_CFG_LIST, .offset = TAB(features), .size = sizeof(feature_yaml),
     .required = 1, .min = 1, .max = FF_FEATURES_MAX, .sub = feature_fields,
     .help = "the per-patient features of tabular.csv: a list of {name, type, categories}"},
    {.key = "normalisation", .type = FF_CFG_ENUM, .offset = TAB(norm), .choices = norm_modes,
     .def = "site", .help = "numeric features' mean and sd: site (each site's train split) | "
     "federated (not implemented yet: refused)"},
    {.key = "hidden", .type = FF_CFG_INT, .offset = TAB(hidden), .min = 1, .max = 65536,
     .def = "64", .help = "the tabular encoder's hidden width"},
    {0},
};
#undef TAB

/* `tasks: K`: K binary tasks, named by ff_task_set_ed after loading. */
static const ff_cfg_field tasks_count = {.key = "tasks", .type = FF_CFG_INT,
                                         .offset = offsetof(ff_model_config, tasks), .min = 1,
                                         .max = FF_TASKS_MAX,
                                         .help = "K binary emergency-department tasks"};

static const ff_cfg_field model_fields[] = {
    {.key = "name",
     .type = FF_CFG_STRING,
     .offset = offsetof(ff_model_config, name),
     .size = 64,
     .required = 1,
     .help = "config name (fusion-base, fusion-tiny, ...)"},
    {.key = "width",
     .type = FF_CFG_INT,
     .offset = offsetof(ff_model_config, width),
     .required = 1,
     .min = 1,
     .max = 65536,
     .help = "model width d"},
    {.key = "heads",
     .type = FF_CFG_INT,
     .offset = offsetof(ff_model_config, heads),
     .required = 1,
     .min = 1,
     .max = 1024,
     .help = "attention heads; must divide width"},
    {.key = "mlp",
     .type = FF_CFG_INT,
     .offset = offsetof(ff_model_config, mlp),
     .required = 1,
     .min = 1,
     .max = 1 << 20,
     .help = "MLP hidden width m"},
    {.key = "layers",
     .type = FF_CFG_INT,
     .offset = offsetof(ff_model_config, layers),
     .required = 1,
     .min = 1,
     .max = 64,
     .help = "blocks per encoder (fusion has one)"},
    {.key = "fusion",
     .type = FF_CFG_ENUM,
     .offset = offsetof(ff_model_config, fusion),
     .choices = fusion_modes,
     .def = "cross",
     .help = "fusion mode"},
    {.key = "tasks",
     .type = FF_CFG_LIST,
     .offset = offsetof(ff_model_config, task_list),
     .size = sizeof(ff_task),
     .required = 1,
     .min = 1,
     .max = FF_TASKS_MAX,
     .sub = task_fields,
     .alt = &tasks_count,
     .help = "the tasks: a list of {name, kind, label, ...}, or a number K of binary "
             "emergency-department tasks (admission, icu, critical)"},
    {.key = "image",
     .type = FF_CFG_SECTION,
     .offset = offsetof(ff_model_config, image),
     .required = 1,
     .sub = image_fields,
     .help = "image encoder input"},
    {.key = "text",
     .type = FF_CFG_SECTION,
     .offset = offsetof(ff_model_config, text),
     .required = 1,
     .sub = text_fields,
     .help = "text encoder input"},
    {.key = "ehr",
     .type = FF_CFG_SECTION,
     .offset = offsetof(ff_model_config, ehr),
     .required = 1,
     .sub = ehr_fields,
     .help = "EHR encoder input"},
    {.key = "projection",
     .type = FF_CFG_INT,
     .offset = offsetof(ff_model_config, projection),
     .min = 0,
     .max = 65536,
     .def = "0",
     .help = "contrastive projection width p (proj.* heads + logit_scale); 0 = none"},
    {.key = "tabular",
     .type = FF_CFG_SECTION,
     .offset = offsetof(ff_model_config, tabular_yaml),
     .sub = tabular_fields,
     .help = "optional per-patient table (tabular.csv), a fourth modality; absent = none"},
    {0},
};

const ff_cfg_field *ff_model_config_schema(void)
{
    return model_fields;
}

const char *ff_fusion_name(int fusion)
{
    return fusion >= 0 && fusion <= 2 ? fusion_modes[fusion] : "?";
}

int ff_model_config_validate(const ff_model_config *c)
{
    if (c->width <= 0 || c->heads <= 0 || c->mlp <= 0 || c->layers <= 0 || c->tasks <= 0)
        return ff_error(FF_ECONFIG,
                        "model config '%s': width, heads, mlp, layers and tasks "
                        "must be positive",
                        c->name);
    if (c->width % c->heads != 0)
        return ff_error(FF_ECONFIG, "model config '%s': heads: %lld does not divide width %lld",
                        c->name, (long long)c->heads, (long long)c->width);
    if (c->image.patch <= 0 || c->image.size % c->image.patch != 0)
        return ff_error(FF_ECONFIG,
                        "model config '%s': image.patch: %lld does not divide "
                        "image.size %lld",
                        c->name, (long long)c->image.patch, (long long)c->image.size);
    if (c->image.channels <= 0 || c->text.length <= 0 || c->text.vocab <= 1 || c->ehr.length <= 0 ||
        c->ehr.codes <= 1 || c->ehr.values <= 0 || c->ehr.times <= 0)
        return ff_error(FF_ECONFIG,
                        "model config '%s': image.channels, text.*, ehr.* must be "
                        "positive (vocabularies at least 2)",
                        c->name);
    if (c->task_set.n > 0 && c->task_set.width != c->tasks)
        return ff_error(FF_ECONFIG, "model config '%s': tasks: %lld columns but the declared "
                        "tasks take %d", c->name, (long long)c->tasks, c->task_set.width);
    if (c->tabular.n < 0 || c->tabular.n > FF_FEATURES_MAX ||
        (c->tabular.n > 0 && (c->tabular.width < 2 || c->tabular.hidden < 1)))
        return ff_error(FF_ECONFIG, "model config '%s': tabular: %d features of width %d, "
                        "hidden %d", c->name, c->tabular.n, c->tabular.width, c->tabular.hidden);
    if (c->projection < 0)
        return ff_error(FF_ECONFIG, "model config '%s': projection: %lld is negative", c->name,
                        (long long)c->projection);
    if (c->fusion < FF_FUSION_CROSS || c->fusion > FF_FUSION_LATE)
        return ff_error(FF_ECONFIG, "model config '%s': fusion: unknown mode %d", c->name,
                        c->fusion);
    /* Products of sizes must stay within int for the kernels' row counts. */
    if (c->width * c->mlp > (1LL << 30) || c->text.vocab * c->width > (1LL << 31) ||
        c->ehr.codes * c->width > (1LL << 31))
        return ff_error(FF_ECONFIG, "model config '%s': sizes too large", c->name);
    return FF_OK;
}

/* The loaded `tasks:` (a list, or a count) into cfg->task_set and K = its width. */
static int tasks_from_load(ff_model_config *cfg)
{
    ff_task_set *ts = &cfg->task_set;
    if (cfg->task_list.count == 0) {
        ff_task_set_ed(ts, (int)cfg->tasks);
        cfg->tasks = ts->width;
        return FF_OK;
    }
    memset(ts, 0, sizeof *ts);
    ts->n = (int)cfg->task_list.count;
    memcpy(ts->t, cfg->task_list.items, cfg->task_list.count * sizeof(ff_task));
    int rc = ff_task_set_finish(ts);
    cfg->tasks = ts->width;
    return rc;
}

/* The loaded `tabular:` section into cfg->tabular (n = 0 when there is none). */
static int tabular_from_load(ff_model_config *cfg)
{
    ff_feature_set *fs = &cfg->tabular;
    const feature_yaml *items = cfg->tabular_yaml.features.items;
    memset(fs, 0, sizeof *fs);
    if (cfg->tabular_yaml.features.count == 0) {
        /* no section: the config is byte for byte the one built without the key */
        cfg->tabular_yaml.norm = 0, cfg->tabular_yaml.hidden = 0;
        return FF_OK;
    }
    if (cfg->tabular_yaml.norm == FF_NORM_FEDERATED)
        return ff_error(FF_ECONFIG, "tabular.normalisation: federated is not implemented yet "
                        "(mean and sd from a secure-aggregation sum); use site");
    fs->n = (int)cfg->tabular_yaml.features.count;
    fs->norm = cfg->tabular_yaml.norm;
    fs->hidden = (int)cfg->tabular_yaml.hidden;
    for (int k = 0; k < fs->n; k++) {
        ff_feature *f = &fs->f[k];
        ff_strlcpy(f->name, items[k].name, sizeof f->name);
        f->kind = items[k].kind;
        f->ncat = (int)items[k].categories.count;
        for (int c = 0; c < f->ncat; c++)
            if (ff_strlcpy(f->cat[c], items[k].categories.items[c], sizeof f->cat[c]) != FF_OK)
                return ff_error(FF_ECONFIG, "tabular feature %s: category %d longer than %zu "
                                "bytes", f->name, c + 1, sizeof f->cat[c] - 1);
    }
    return ff_feature_set_finish(fs);
}

static int load_done(int rc, const char *name, ff_model_config *cfg)
{
    if (rc == FF_OK && (rc = tasks_from_load(cfg)) != FF_OK)
        ff_error_prefix(rc, "%s: ", name);
    else if (rc == FF_OK && (rc = tabular_from_load(cfg)) != FF_OK)
        ff_error_prefix(rc, "%s: ", name);
    else if (rc == FF_OK && (rc = ff_model_config_validate(cfg)) != FF_OK)
        ff_error_prefix(rc, "%s: ", name);
    ff_cfg_free(model_fields, cfg);
    return rc;
}

int ff_model_config_load_str(const char *name, const char *yaml, size_t len, ff_model_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    return load_done(ff_cfg_load_str(name, yaml, len, model_fields, cfg), name, cfg);
}

int ff_model_config_load(const char *path, ff_model_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    return load_done(ff_cfg_load(path, model_fields, cfg), path, cfg);
}

int ff_model_config_default(ff_model_config *c, const char *name)
{
    memset(c, 0, sizeof *c);
    if (name && strcmp(name, "fusion-base") == 0) {
        *c = (ff_model_config){.width = 128,
                               .heads = 4,
                               .mlp = 512,
                               .layers = 2,
                               .fusion = FF_FUSION_CROSS,
                               .tasks = 3,
                               .image = {64, 1, 8},
                               .text = {64, 8192},
                               .ehr = {128, 4096, 11, 32}};
    } else if (name && strcmp(name, "fusion-tiny") == 0) {
        *c = (ff_model_config){.width = 32,
                               .heads = 2,
                               .mlp = 64,
                               .layers = 1,
                               .fusion = FF_FUSION_CROSS,
                               .tasks = 3,
                               .image = {32, 1, 8},
                               .text = {32, 2048},
                               .ehr = {48, 1024, 11, 16}};
    } else {
        return ff_error(FF_ENOTFOUND,
                        "model config: no built-in config '%s' (fusion-base, "
                        "fusion-tiny)",
                        name ? name : "(null)");
    }
    ff_task_set_ed(&c->task_set, (int)c->tasks);
    return ff_strlcpy(c->name, name, sizeof c->name);
}
