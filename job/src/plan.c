/* The training plan sent to sites, its stages (issue 13) and the job hash sites approve. */
#include "ff/job.h"

#include <stdlib.h>
#include <string.h>


#define POFF(f) offsetof(ff_plan, f)
#define PSUB(sec, f) (offsetof(ff_plan, sec.f) - offsetof(ff_plan, sec))
#define SOFF(f) offsetof(ff_plan_stage, f)

static const char *const optimizers[] = {"adamw", "sgd", NULL};
static const char *const objectives[] = {"supervised", "contrastive", "multitask", NULL};

static const ff_cfg_field optimizer_fields[] = {
    {.key = "name", .type = FF_CFG_ENUM, .offset = PSUB(optimizer, name), .choices = optimizers,
     .def = "adamw", .help = "local optimiser"},
    {.key = "lr", .type = FF_CFG_DOUBLE, .offset = PSUB(optimizer, lr), .min = 1e-12, .max = 10,
     .def = "0.001", .help = "local learning rate"},
    {.key = "weight_decay", .type = FF_CFG_DOUBLE, .offset = PSUB(optimizer, weight_decay),
     .min = 0, .max = 10, .def = "0.01", .help = "decoupled weight decay (adamw) or L2 (sgd)"},
    {.key = "momentum", .type = FF_CFG_DOUBLE, .offset = PSUB(optimizer, momentum), .min = 0,
     .max = 0.999999, .def = "0.9", .help = "sgd momentum (ignored by adamw)"},
    {0},
};

static const ff_cfg_field fine_tune_fields[] = {
    {.key = "steps", .type = FF_CFG_INT, .offset = PSUB(fine_tune, steps), .min = 0,
     .max = 10000000, .def = "0", .help = "local steps on the final model at each site; 0 = off"},
    {.key = "lr", .type = FF_CFG_DOUBLE, .offset = PSUB(fine_tune, lr), .min = 0, .max = 10,
     .def = "0", .help = "0 = the plan's optimizer.lr"},
    {0},
};

static const ff_cfg_field stage_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = SOFF(name), .size = FF_JOB_NAME_MAX,
     .required = 1, .help = "stage name"},
    {.key = "objective", .type = FF_CFG_ENUM, .offset = SOFF(objective), .choices = objectives,
     .def = "supervised", .help = "training objective"},
    {.key = "trainable", .type = FF_CFG_STRLIST, .offset = SOFF(trainable),
     .help = "parameter name prefixes that train (img., txt., ehr., fuse., head); empty = all"},
    {.key = "modalities", .type = FF_CFG_STRLIST, .offset = SOFF(modalities),
     .help = "modalities used (img, txt, ehr, tab: the tabular one); empty = all"},
    {.key = "rounds", .type = FF_CFG_INT, .offset = SOFF(rounds), .required = 1, .min = 1,
     .max = 1000000, .help = "rounds of this stage"},
    {.key = "local_steps", .type = FF_CFG_INT, .offset = SOFF(local_steps), .min = 0,
     .max = 10000000, .def = "0", .help = "0 = the plan's local_epochs/local_steps"},
    {.key = "lr", .type = FF_CFG_DOUBLE, .offset = SOFF(lr), .min = 0, .max = 10, .def = "0",
     .help = "0 = the plan's optimizer.lr"},
    {0},
};

const ff_cfg_field ff_plan_schema[] = {
    {.key = "local_epochs", .type = FF_CFG_INT, .offset = POFF(local_epochs), .min = 0,
     .max = 10000, .def = "1", .help = "local epochs per round (when local_steps is 0)"},
    {.key = "local_steps", .type = FF_CFG_INT, .offset = POFF(local_steps), .min = 0,
     .max = 10000000, .def = "0", .help = "local steps per round; 0 = use local_epochs"},
    {.key = "batch_size", .type = FF_CFG_INT, .offset = POFF(batch_size), .min = 1, .max = 65536,
     .def = "32", .help = "local batch size"},
    {.key = "optimizer", .type = FF_CFG_SECTION, .offset = POFF(optimizer), .sub = optimizer_fields},
    {.key = "fedprox_mu", .type = FF_CFG_DOUBLE, .offset = POFF(fedprox_mu), .min = 0, .max = 100,
     .def = "0", .help = "FedProx proximal weight mu (0 = off)"},
    {.key = "modality_dropout", .type = FF_CFG_DOUBLE, .offset = POFF(modality_dropout), .min = 0,
     .max = 0.999, .def = "0", .help = "probability of hiding a present modality in training"},
    {.key = "stages", .type = FF_CFG_LIST, .offset = POFF(stages), .size = sizeof(ff_plan_stage),
     .sub = stage_fields, .min = 1, .max = 16, .help = "training stages, run in order"},
    {.key = "fine_tune", .type = FF_CFG_SECTION, .offset = POFF(fine_tune),
     .sub = fine_tune_fields, .help = "FedAvg + local fine-tuning (FLamby's FedAvgFineTuning)"},
    {.key = "privacy", .type = FF_CFG_SECTION, .offset = POFF(privacy),
     .sub = ff_privacy_cfg_schema, .help = "differential privacy (docs/privacy.md)"},
    {0},
};

/* The privacy validator's message starts with the key it blames ("privacy.client.delta:
 * ..."): re-issue it at that key's place in the text, like every other config error. */
static int privacy_place_error(int rc, const char *name, const char *yaml, size_t len)
{
    char msg[512], key[96];
    ff_strlcpy(msg, ff_error_message(), sizeof msg);
    const char *sep = strstr(msg, ": ");
    size_t kl = sep ? (size_t)(sep - msg) : 0;
    if (!sep || kl >= sizeof key || strncmp(msg, "privacy.", 8) != 0)
        return ff_error(rc, "%s: %s", name, msg);
    memcpy(key, msg, kl);
    key[kl] = '\0';
    return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, key, "%s", sep + 2);
}

int ff_plan_check_privacy(const ff_plan *plan, const char *name, const char *yaml, size_t len,
                          const ff_privacy_context *ctx, int secure_aggregation)
{
    const ff_privacy_cfg *p = &plan->privacy;
    /* Record-level DP-SGD runs at each site (client/src/dpsgd.c); δ < 1/patients and the
     * spent ε are checked there, against the site's own ledger. */
    if (!p->record.enabled && !p->client.enabled)
        return FF_OK;
    if (ff_privacy_cfg_validate(p, ctx) != FF_OK)
        return privacy_place_error(FF_ECONFIG, name, yaml, len);
    int ddg = p->client.mechanism == FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN;
    if (!p->client.enabled)
        return FF_OK;
    if (ddg && !secure_aggregation)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "privacy.client.mechanism",
                               "distributed_discrete_gaussian needs secure_aggregation.enabled "
                               "(the sites' noise shares only protect inside the secure sum); "
                               "use gaussian without secure aggregation");
    if (!ddg && secure_aggregation)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "privacy.client.mechanism",
                               "gaussian clips single updates at the coordinator, which secure "
                               "aggregation hides; use distributed_discrete_gaussian");
    if (ddg && p->client.bits > 32)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "privacy.client.bits",
                               "%lld exceeds the 32-bit lanes of secure aggregation",
                               (long long)p->client.bits);
    return FF_OK;
}

static int check_plan(const ff_plan *p, const char *name, const char *yaml, size_t len)
{
    char path[64];
    if (p->local_epochs == 0 && p->local_steps == 0)
        return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, "local_steps",
                               "local_epochs and local_steps are both 0");
    /* What needs no knowledge of the run (σ = 0 with DP on, δ outside (0, 1), no budget);
     * ff_plan_check_privacy adds the run's sites, spent ε and secure aggregation. */
    if (ff_privacy_cfg_validate(&p->privacy, NULL) != FF_OK)
        return privacy_place_error(FF_ECONFIG, name, yaml, len);
    const ff_plan_stage *st = p->stages.items;
    for (size_t i = 0; i < p->stages.count; i++) {
        /* DP-SGD clips one patient's supervised gradient; an InfoNCE loss couples the
         * patients of a batch, and a subset of parameters or modalities is not clipped */
        if (p->privacy.record.enabled && st[i].objective != FF_OBJ_SUPERVISED) {
            snprintf(path, sizeof path, "stages[%zu].objective", i);
            return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, path,
                                   "privacy.record (DP-SGD) supports only the supervised "
                                   "objective");
        }
        if (p->privacy.record.enabled && (st[i].trainable.count || st[i].modalities.count)) {
            snprintf(path, sizeof path, "stages[%zu].%s", i,
                     st[i].trainable.count ? "trainable" : "modalities");
            return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, path,
                                   "privacy.record (DP-SGD) trains every parameter on every "
                                   "modality");
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(st[i].name, st[j].name) == 0) {
                snprintf(path, sizeof path, "stages[%zu].name", i);
                return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, path, "'%s' is used twice",
                                       st[i].name);
            }
        for (size_t k = 0; k < st[i].modalities.count; k++) {
            const char *m = st[i].modalities.items[k];
            if (strcmp(m, "img") && strcmp(m, "txt") && strcmp(m, "ehr") && strcmp(m, "tab")) {
                snprintf(path, sizeof path, "stages[%zu].modalities", i);
                return ff_cfg_error_in(FF_ECONFIG, name, yaml, len, path,
                                       "'%s' is not one of img, txt, ehr, tab", m);
            }
        }
    }
    return FF_OK;
}

static int default_stage(ff_plan *p, int64_t rounds)
{
    if (p->stages.count > 0)
        return FF_OK;
    ff_plan_stage *s = calloc(1, sizeof *s);
    if (!s)
        return ff_error(FF_ENOMEM, "out of memory");
    ff_strlcpy(s->name, FF_PLAN_DEFAULT_STAGE, sizeof s->name);
    s->objective = FF_OBJ_SUPERVISED;
    s->rounds = rounds > 0 ? rounds : 1;
    free(p->stages.items);
    p->stages.items = s;
    p->stages.count = 1;
    return FF_OK;
}

int ff_plan_load_str(ff_plan *plan, const char *name, const char *yaml, size_t len,
                     int64_t default_rounds)
{
    memset(plan, 0, sizeof *plan);
    int rc = ff_cfg_load_str(name, yaml, len, ff_plan_schema, plan);
    if (rc == FF_OK)
        rc = default_stage(plan, default_rounds);
    if (rc == FF_OK)
        rc = check_plan(plan, name, yaml, len);
    return rc;
}

int ff_plan_load(ff_plan *plan, const char *path, int64_t default_rounds)
{
    memset(plan, 0, sizeof *plan);
    char *buf;
    size_t len;
    int rc = ff_file_read_all(path, FF_CFG_MAX_FILE, &buf, &len);
    if (rc != FF_OK)
        return rc;
    rc = ff_plan_load_str(plan, path, buf, len, default_rounds);
    free(buf);
    return rc;
}

void ff_plan_free(ff_plan *plan)
{
    ff_cfg_free(ff_plan_schema, plan);
}

static void sb_list(ff_sbuf *b, const char *key, const ff_cfg_strlist *l)
{
    ff_sbuf_printf(b, "%s=[", key);
    for (size_t i = 0; i < l->count; i++)
        ff_sbuf_printf(b, "%s%s", i ? "," : "", l->items[i]);
    ff_sbuf_printf(b, "]\n");
}

int ff_plan_canonical(const ff_plan *p, char **out, size_t *len)
{
    ff_sbuf b = {0};
    ff_sbuf_printf(&b, "fedfuse-plan-v1\n");
    ff_sbuf_printf(&b, "local_epochs=%lld\nlocal_steps=%lld\nbatch_size=%lld\n",
                   (long long)p->local_epochs, (long long)p->local_steps, (long long)p->batch_size);
    ff_sbuf_printf(&b, "optimizer.name=%s\noptimizer.lr=%.17g\noptimizer.weight_decay=%.17g\n"
                  "optimizer.momentum=%.17g\n",
              optimizers[p->optimizer.name], p->optimizer.lr, p->optimizer.weight_decay,
              p->optimizer.momentum);
    ff_sbuf_printf(&b, "fedprox_mu=%.17g\nmodality_dropout=%.17g\n", p->fedprox_mu, p->modality_dropout);
    /* only plans that fine-tune carry the lines: every earlier plan keeps its job hash */
    if (p->fine_tune.steps > 0)
        ff_sbuf_printf(&b, "fine_tune.steps=%lld\nfine_tune.lr=%.17g\n", (long long)p->fine_tune.steps,
                       p->fine_tune.lr);
    const ff_plan_stage *st = p->stages.items;
    for (size_t i = 0; i < p->stages.count; i++) {
        ff_sbuf_printf(&b, "stage[%zu].name=%s\nobjective=%s\n", i, st[i].name,
                       objectives[st[i].objective]);
        sb_list(&b, "trainable", &st[i].trainable);
        sb_list(&b, "modalities", &st[i].modalities);
        ff_sbuf_printf(&b, "rounds=%lld\nlocal_steps=%lld\nlr=%.17g\n", (long long)st[i].rounds,
                       (long long)st[i].local_steps, st[i].lr);
    }
    /* Only plans with DP on carry privacy lines, so the job hash of every plan written
     * before the section existed is unchanged. */
    const ff_privacy_cfg *pv = &p->privacy;
    if (pv->record.enabled || pv->client.enabled) {
        const ff_privacy_record_cfg *r = &pv->record;
        const ff_privacy_client_cfg *c = &pv->client;
        ff_sbuf_printf(&b, "privacy.record=%d,%.17g,%.17g,%.17g,%.17g\n", r->enabled,
                       r->noise_multiplier, r->clip_norm, r->delta, r->epsilon_budget);
        ff_sbuf_printf(&b, "privacy.client=%d,%.17g,%.17g,%.17g,%.17g,%d,%lld,%.17g,%.17g\n",
                       c->enabled, c->noise_multiplier, c->clip_norm, c->delta, c->epsilon_budget,
                       c->mechanism, (long long)c->bits, c->gamma, c->beta);
    }
    if (b.oom) {
        free(b.buf);
        return ff_error(FF_ENOMEM, "plan: out of memory");
    }
    *out = b.buf;
    *len = b.len;
    return FF_OK;
}

int ff_job_hash(const ff_plan *plan, const void *model_config, size_t model_config_len,
                char out[FF_SHA256_HEX])
{
    char *text;
    size_t len;
    int rc = ff_plan_canonical(plan, &text, &len);
    if (rc != FF_OK)
        return rc;
    uint8_t both[2 * FF_SHA256_BYTES], h[FF_SHA256_BYTES];
    ff_sha256(model_config, model_config_len, both);
    ff_sha256(text, len, both + FF_SHA256_BYTES);
    free(text);
    ff_sha256(both, sizeof both, h);
    ff_hex(h, sizeof h, out);
    return FF_OK;
}

size_t ff_plan_stage_of_round(const ff_plan *plan, int64_t round)
{
    const ff_plan_stage *st = plan->stages.items;
    int64_t end = 0;
    for (size_t i = 0; i < plan->stages.count; i++) {
        end += st[i].rounds;
        if (round <= end)
            return i;
    }
    return plan->stages.count ? plan->stages.count - 1 : 0;
}
