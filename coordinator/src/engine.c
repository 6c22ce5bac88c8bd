/* The round engine: a table of phases run in order each round, driven by ff_coord_poll and
 * by submissions. No I/O except checkpoints and rounds.csv; time comes from a clock callback
 * so tests run deadlines in microseconds. */
#include "internal.h"
#include "ff/coordinator.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[FF_EV_COUNT] = {
    "run_start", "round_start", "sites_selected", "phase_open", "phase_close", "dropout",
    "refusal", "quorum_fail", "aggregate", "model", "checkpoint", "round_end", "run_end",
    "decline",
};

const char *ff_event_name(int type)
{
    return type >= 0 && type < FF_EV_COUNT ? event_names[type] : "?";
}

static double sys_clock(void *ud)
{
    (void)ud;
    return ff_now();
}

double coord_now(const ff_coord *c)
{
    return c->clock(c->clock_ud);
}

void coord_emit(ff_coord *c, int type, const char *phase, const char *site, int reason,
                int64_t count, const char *hash, const char *detail)
{
    ff_coord_event ev = {
        .type = type,
        .round = c->round,
        .attempt = c->attempt,
        .phase = phase ? phase : "",
        .site = site ? site : "",
        .reason = reason,
        .count = count,
        .hash = hash ? hash : "",
        .detail = detail ? detail : "",
        .time = coord_now(c),
    };
    for (size_t i = 0; i < c->nhooks; i++)
        c->hooks[i].fn(c->hooks[i].ud, &ev);
}

void coord_hash_floats(const float *x, size_t n, char out[FF_SHA256_HEX])
{
    uint8_t h[FF_SHA256_BYTES];
    ff_sha256(x, n * sizeof(float), h);
    ff_hex(h, sizeof h, out);
}

/* ---- construction ------------------------------------------------------------------- */

static int cmp_off(const void *a, const void *b)
{
    const ff_coord_tensor *x = *(const ff_coord_tensor *const *)a;
    const ff_coord_tensor *y = *(const ff_coord_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The table must tile [0, n) exactly, or the checkpoint would lose or double parameters. */
static int check_table(const ff_coord_model *m)
{
    if (m->n == 0 || !m->init || !m->tensors || m->ntensors == 0)
        return ff_error(FF_EINVAL, "coordinator: model has no parameters or no tensor table");
    const ff_coord_tensor **t = malloc(m->ntensors * sizeof *t);
    if (!t)
        return ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; i < m->ntensors; i++)
        t[i] = &m->tensors[i];
    qsort(t, m->ntensors, sizeof *t, cmp_off);
    size_t at = 0;
    int rc = FF_OK;
    for (size_t i = 0; i < m->ntensors && rc == FF_OK; i++) {
        ff_tensor v;
        if (!t[i]->name || !t[i]->name[0] || strncmp(t[i]->name, "__ff_", 5) == 0)
            rc = ff_error(FF_EINVAL, "coordinator: tensor table entry with an empty or reserved name");
        else if (ff_tensor_view(&v, FF_DT_F32, NULL, t[i]->ndim, t[i]->shape) != FF_OK)
            rc = ff_error_prefix(FF_EINVAL, "coordinator: tensor '%s': ", t[i]->name);
        else if (t[i]->offset != at)
            rc = ff_error(FF_EINVAL,
                          "coordinator: tensor '%s' starts at %zu, expected %zu (the table must "
                          "cover the parameters without gaps or overlaps)",
                          t[i]->name, t[i]->offset, at);
        else
            at += ff_tensor_numel(&v);
    }
    if (rc == FF_OK && at != m->n)
        rc = ff_error(FF_EINVAL, "coordinator: tensor table covers %zu floats, the model has %zu",
                      at, m->n);
    free(t);
    return rc;
}

static const ff_coord_phase builtin_defs[] = {
    {.name = FF_PHASE_SELECT, .kind = FF_PHASE_SERVER},
    {.name = FF_PHASE_TRAIN, .kind = FF_PHASE_COLLECT, .expect = FF_PHASE_FROM_SELECTED,
     .min_sites = -1},
    {.name = FF_PHASE_AGGREGATE, .kind = FF_PHASE_SERVER},
    {.name = FF_PHASE_UPDATE, .kind = FF_PHASE_SERVER},
    {.name = FF_PHASE_EVALUATE, .kind = FF_PHASE_COLLECT, .expect = FF_PHASE_FROM_SELECTED,
     .min_sites = 0},
    {.name = FF_PHASE_CHECKPOINT, .kind = FF_PHASE_SERVER},
};

static void config_hash(ff_coord *c)
{
    /* What determines the trajectory of the model: a checkpoint made under anything else
     * must not be resumed. rounds, deadlines and paths may change between restarts. */
    ff_sha256_ctx *h;
    if (ff_sha256_new(&h) != FF_OK) {
        c->config_hash[0] = '\0';
        return;
    }
    char buf[512];
    const ff_coord_config *k = &c->cfg;
    int len = snprintf(buf, sizeof buf,
                       "seed=%lld strategy=%s lr=%.17g b1=%.17g b2=%.17g tau=%.17g sampling=%d "
                       "frac=%.17g count=%lld secagg=%d n=%zu\n",
                       (long long)k->seed, ff_strategy_name(k->strategy.name),
                       k->strategy.server_lr, k->strategy.beta1, k->strategy.beta2,
                       k->strategy.tau, k->sampling.mode, k->sampling.fraction,
                       (long long)k->sampling.count, k->secure_aggregation.enabled, c->n);
    ff_sha256_update(h, buf, (size_t)len);
    /* Only when set, so that the hashes of existing mean-aggregated checkpoints still match. */
    if (k->strategy.aggregator != FF_AGG_MEAN || k->strategy.clip_multiple > 0) {
        len = snprintf(buf, sizeof buf, "aggregator=%s trim=%.17g clip=%.17g\n",
                       ff_aggregator_name(k->strategy.aggregator), k->strategy.trim_fraction,
                       k->strategy.clip_multiple);
        ff_sha256_update(h, buf, (size_t)len);
    }
    /* Not the sites: hospitals join (ff_coord_add_site) and leave during a run. */
    for (size_t i = 0; i < c->ntensors; i++)
        ff_sha256_update(h, c->tensors[i].name, strlen(c->tensors[i].name) + 1);
    uint8_t d[FF_SHA256_BYTES];
    ff_sha256_final(h, d);
    ff_hex(d, sizeof d, c->config_hash);
}

static size_t sample_size_of(const ff_coord *c, size_t n)
{
    if (c->cfg.strategy.name == FF_STRATEGY_CYCLIC)
        return FF_MIN((size_t)1, n);
    switch (c->cfg.sampling.mode) {
    case FF_SAMPLE_FRACTION: {
        size_t k = (size_t)ceil(c->cfg.sampling.fraction * (double)n - 1e-9);
        return FF_MAX((size_t)1, FF_MIN(k, n));
    }
    case FF_SAMPLE_COUNT:
        return FF_MIN((size_t)c->cfg.sampling.count, n);
    default:
        return n;
    }
}

static size_t sample_size(const ff_coord *c)
{
    return sample_size_of(c, c->nsites);
}

int ff_coord_new(ff_coord **out, const ff_coord_config *cfg, const ff_coord_model *model,
                 const char *const *sites, size_t nsites)
{
    *out = NULL;
    int rc = check_table(model);
    if (rc != FF_OK)
        return rc;
    if (nsites == 0 || nsites > FF_COORD_MAX_SITES)
        return ff_error(FF_EINVAL, "coordinator: %zu sites (1 to %d allowed)", nsites,
                        FF_COORD_MAX_SITES);
    for (size_t i = 0; i < nsites; i++) {
        if (!sites[i] || !sites[i][0] || strlen(sites[i]) >= FF_COORD_NAME_MAX)
            return ff_error(FF_EINVAL, "coordinator: site %zu has an empty or too long name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(sites[i], sites[j]) == 0)
                return ff_error(FF_EINVAL, "coordinator: site '%s' is listed twice", sites[i]);
    }
    ff_coord *c = calloc(1, sizeof *c);
    if (!c)
        return ff_error(FF_ENOMEM, "out of memory");
    c->cfg = *cfg;
    c->n = model->n;
    c->tensors = model->tensors;
    c->ntensors = model->ntensors;
    c->nsites = nsites;
    c->clock = sys_clock;
    const size_t cap = FF_COORD_MAX_SITES; /* sites may join during the run */
    c->last_auroc = NAN;
    c->global = ff_alloc(c->n * sizeof(float));
    c->avg = ff_alloc(c->n * sizeof(float));
    c->names = calloc(cap, sizeof *c->names);
    c->selected = calloc(cap, sizeof(int));
    c->prev_done = calloc(cap, sizeof(int));
    c->pending = calloc(cap, sizeof(int));
    c->expected = calloc(cap, 1);
    c->done = calloc(cap, 1);
    c->has_update = calloc(cap, 1);
    c->site_state = calloc(cap, 1);
    c->updates = calloc(cap, sizeof *c->updates);
    c->weights = calloc(cap, sizeof(double));
    c->sel_updates = calloc(cap, sizeof *c->sel_updates);
    c->sel_weights = calloc(cap, sizeof(double));
    if (!c->sel_updates || !c->sel_weights || !c->global || !c->avg || !c->names || !c->selected || !c->prev_done || !c->pending ||
        !c->expected || !c->done || !c->has_update || !c->site_state || !c->updates || !c->weights) {
        rc = ff_error(FF_ENOMEM, "coordinator: out of memory for %zu parameters", c->n);
        goto out;
    }
    for (size_t i = 0; i < nsites; i++)
        if (!(c->names[i] = strdup(sites[i]))) {
            rc = ff_error(FF_ENOMEM, "out of memory");
            goto out;
        }
    memcpy(c->global, model->init, c->n * sizeof(float));
    coord_hash_floats(c->global, c->n, c->model_hash);
    if (sample_size(c) < (size_t)cfg->quorum.min_sites) {
        rc = ff_error(FF_ECONFIG,
                      "coordinator: sampling picks %zu of %zu sites per round, below "
                      "quorum.min_sites %lld: no round could ever succeed",
                      sample_size(c), nsites, (long long)cfg->quorum.min_sites);
        goto out;
    }
    rc = ff_strategy_init(&c->strat, &cfg->strategy, c->n);
    if (rc != FF_OK)
        goto out;
    if (cfg->strategy.local.count > 0) {
        ff_coord_tensor_ref *refs = calloc(model->ntensors ? model->ntensors : 1, sizeof *refs);
        if (!refs) {
            rc = ff_error(FF_ENOMEM, "coordinator: no memory");
            goto out;
        }
        for (size_t i = 0; i < model->ntensors; i++) {
            size_t numel = 1;
            for (int d = 0; d < model->tensors[i].ndim; d++)
                numel *= (size_t)model->tensors[i].shape[d];
            refs[i] = (ff_coord_tensor_ref){model->tensors[i].name, model->tensors[i].offset, numel};
        }
        rc = ff_strategy_set_local(&c->strat, refs, model->ntensors, &cfg->strategy.local);
        free(refs);
        if (rc != FF_OK)
            goto out;
    }
    memset(&c->cfg.strategy.local, 0, sizeof c->cfg.strategy.local); /* the caller's */
    ff_rng_init(&c->rng, (uint64_t)cfg->seed, 0x5e1ec7);
    for (size_t i = 0; i < FF_ARRAY_LEN(builtin_defs); i++) {
        c->phases[i].def = builtin_defs[i];
        c->phases[i].builtin = (int)i + 1;
    }
    c->nphases = FF_ARRAY_LEN(builtin_defs);
    for (size_t i = 0; i < c->nphases; i++) /* collect phases: their deadlines.<key> */
        c->phases[i].def.deadline_s = ff_phase_deadline(ff_phase_by_name(c->phases[i].def.name), cfg);
    config_hash(c);
    *out = c;
    return FF_OK;
out:
    ff_coord_free(c);
    return rc;
}

void ff_coord_free(ff_coord *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->names && i < c->nsites; i++)
        free(c->names[i]);
    for (size_t i = 0; c->updates && i < c->nsites; i++)
        ff_free(c->updates[i]);
    free(c->names);
    free(c->updates);
    free(c->weights);
    free(c->sel_updates);
    free(c->sel_weights);
    free(c->selected);
    free(c->prev_done);
    free(c->pending);
    free(c->expected);
    free(c->done);
    free(c->has_update);
    free(c->site_state);
    ff_free(c->global);
    ff_free(c->avg);
    ff_free(c->provided);
    ff_free(c->acc);
    ff_strategy_free(&c->strat);
    free(c);
}

void ff_coord_set_clock(ff_coord *c, double (*fn)(void *ud), void *ud)
{
    c->clock = fn ? fn : sys_clock;
    c->clock_ud = ud;
}

void ff_coord_set_plan(ff_coord *c, const ff_plan *plan, const char *job_hash)
{
    c->plan = plan;
    ff_strlcpy(c->job_hash, job_hash ? job_hash : "", sizeof c->job_hash);
}

void ff_coord_set_commit_check(ff_coord *c, ff_coord_commit_check check, void *ud)
{
    c->commit_check = check;
    c->commit_ud = ud;
}

void ff_coord_set_progress(ff_coord *c, FILE *f)
{
    c->progress_out = f;
}

void ff_coord_set_mechanism(ff_coord *c, const ff_coord_mechanism *m)
{
    if (m)
        c->mech = *m;
    else
        memset(&c->mech, 0, sizeof c->mech);
}

int ff_coord_add_hook(ff_coord *c, ff_coord_hook fn, void *ud)
{
    if (!fn || c->nhooks == COORD_MAX_HOOKS)
        return ff_error(FF_EINVAL, "coordinator: at most %d hooks", COORD_MAX_HOOKS);
    c->hooks[c->nhooks].fn = fn;
    c->hooks[c->nhooks].ud = ud;
    c->nhooks++;
    return FF_OK;
}

const float *ff_coord_global(const ff_coord *c) { return c->global; }
size_t ff_coord_nparams(const ff_coord *c) { return c->n; }
int64_t ff_coord_round(const ff_coord *c) { return c->round; }
const ff_strategy *ff_coord_strategy(const ff_coord *c) { return &c->strat; }
const ff_coord_config *ff_coord_config_of(const ff_coord *c) { return &c->cfg; }

int ff_coord_add_site(ff_coord *c, const char *name)
{
    if (!name || !name[0] || strlen(name) >= FF_COORD_NAME_MAX)
        return ff_error(FF_EINVAL, "coordinator: a site has an empty or too long name");
    for (size_t i = 0; i < c->nsites; i++)
        if (strcmp(c->names[i], name) == 0)
            return (int)i;
    if (c->nsites >= FF_COORD_MAX_SITES)
        return ff_error(FF_ERANGE, "coordinator: site '%s': already %d sites", name,
                        FF_COORD_MAX_SITES);
    if (!(c->names[c->nsites] = strdup(name)))
        return ff_error(FF_ENOMEM, "out of memory");
    c->site_state[c->nsites] = FF_SITE_UP;
    FF_LOG_INFO("site '%s' joined the consortium (%zu sites)", name, c->nsites + 1);
    return (int)c->nsites++;
}

int ff_coord_set_site_state(ff_coord *c, int site, int state, const char *why)
{
    if (site < 0 || (size_t)site >= c->nsites || state < FF_SITE_UP || state > FF_SITE_GONE)
        return ff_error(FF_EINVAL, "coordinator: site %d, state %d", site, state);
    int was = c->site_state[site];
    c->site_state[site] = (unsigned char)state;
    if (state != was)
        FF_LOG_INFO("site '%s' %s%s%s", c->names[site],
                    state == FF_SITE_UP      ? "is back: selectable again"
                    : state == FF_SITE_QUIET ? "is not selected until it calls again"
                                             : "is gone: not selected, not waited for",
                    why && why[0] ? ": " : "", why ? why : "");
    if (state != FF_SITE_GONE || c->state != FF_COORD_IN_ROUND)
        return FF_OK;
    coord_phase *p = &c->phases[c->phase_idx];
    if (p->def.kind != FF_PHASE_COLLECT || !c->expected[site] || c->done[site])
        return FF_OK;
    /* known gone: the open phase stops waiting for it now (a drop-out, named with why) */
    c->expected[site] = 0;
    coord_emit(c, FF_EV_DROPOUT, p->def.name, c->names[site], 0, 0, NULL, why ? why : "gone");
    if (p->builtin == BI_TRAIN)
        c->r_dropouts++;
    FF_LOG_WARN("round %lld phase %s: not waiting for site '%s' (%s)", (long long)c->round,
                p->def.name, c->names[site], why ? why : "gone");
    return FF_OK;
}

int ff_coord_site_state(const ff_coord *c, int site)
{
    return site >= 0 && (size_t)site < c->nsites ? c->site_state[site] : FF_SITE_GONE;
}

size_t ff_coord_nsites(const ff_coord *c)
{
    return c->nsites;
}

const char *ff_coord_site_name(const ff_coord *c, int site)
{
    return site >= 0 && (size_t)site < c->nsites ? c->names[site] : "?";
}

uint64_t ff_coord_refusals(const ff_coord *c, int reason)
{
    return reason >= 0 && reason < FF_REFUSE_COUNT ? c->refusals[reason] : 0;
}

int ff_coord_save_model(const ff_coord *c, const char *path)
{
    return coord_save_model(c, path);
}

/* ---- phase table -------------------------------------------------------------------- */

int coord_find_phase(const ff_coord *c, const char *name)
{
    for (size_t i = 0; i < c->nphases; i++)
        if (strcmp(c->phases[i].def.name, name) == 0)
            return (int)i;
    return -1;
}

int ff_coord_phase_insert(ff_coord *c, const char *before, const ff_coord_phase *p)
{
    if (c->state == FF_COORD_IN_ROUND)
        return ff_error(FF_ESTATE, "coordinator: phases can change only between rounds");
    if (!p->name[0] || coord_find_phase(c, p->name) >= 0)
        return ff_error(FF_EINVAL, "coordinator: phase '%s' is empty or exists already", p->name);
    if (c->nphases == COORD_MAX_PHASES)
        return ff_error(FF_ENOMEM, "coordinator: at most %d phases", COORD_MAX_PHASES);
    int at = before ? coord_find_phase(c, before) : (int)c->nphases;
    if (at < 0)
        return ff_error(FF_ENOTFOUND, "coordinator: no phase '%s' to insert before", before);
    memmove(&c->phases[at + 1], &c->phases[at], (c->nphases - (size_t)at) * sizeof c->phases[0]);
    c->phases[at].def = *p;
    c->phases[at].builtin = BI_NONE;
    if (c->phases[at].def.deadline_s <= 0)
        c->phases[at].def.deadline_s = c->cfg.deadlines.train;
    c->nphases++;
    return FF_OK;
}

ff_coord_phase *ff_coord_phase_find(ff_coord *c, const char *name)
{
    int at = coord_find_phase(c, name);
    return at < 0 ? NULL : &c->phases[at].def;
}

int ff_coord_phase_remove(ff_coord *c, const char *name)
{
    if (c->state == FF_COORD_IN_ROUND)
        return ff_error(FF_ESTATE, "coordinator: phases can change only between rounds");
    int at = coord_find_phase(c, name);
    if (at < 0)
        return ff_error(FF_ENOTFOUND, "coordinator: no phase '%s'", name);
    memmove(&c->phases[at], &c->phases[at + 1],
            (c->nphases - (size_t)at - 1) * sizeof c->phases[0]);
    c->nphases--;
    return FF_OK;
}

int ff_coord_provide_sum(ff_coord *c, const float *sum, double total_weight, size_t n)
{
    if (n != c->n)
        return ff_error(FF_EINVAL, "coordinator: provided sum has %zu values, model has %zu", n, c->n);
    if (!(total_weight > 0) || !isfinite(total_weight))
        return ff_error(FF_EINVAL, "coordinator: provided total weight %g is not > 0", total_weight);
    if (!c->provided && !(c->provided = ff_alloc(c->n * sizeof(float))))
        return ff_error(FF_ENOMEM, "out of memory");
    memcpy(c->provided, sum, n * sizeof(float));
    c->provided_weight = total_weight;
    c->have_provided = 1;
    return FF_OK;
}

void ff_coord_provide_sites(ff_coord *c, size_t nsites)
{
    c->provided_sites = nsites;
}

void ff_coord_set_pooled_auroc(ff_coord *c, double auroc)
{
    c->pooled_auroc = auroc;
    c->have_pooled = 1;
}

/* ---- progress ----------------------------------------------------------------------- */

static void progress(ff_coord *c)
{
    if (!c->progress_out)
        return;
    char extra[128];
    const char *ph = c->state == FF_COORD_IN_ROUND ? c->phases[c->phase_idx].def.name : "-";
    char auc[32] = "-";
    if (isfinite(c->last_auroc))
        snprintf(auc, sizeof auc, "%.4f", c->last_auroc);
    snprintf(extra, sizeof extra, "round %lld/%lld phase %s sites %zu/%zu AUROC %s",
             (long long)c->round, (long long)c->cfg.rounds, ph, c->ndone,
             c->ndone + c->npending, auc);
    ff_progress_update(&c->prog, (uint64_t)(c->state == FF_COORD_IN_ROUND ? c->round - 1 : c->round),
                       extra);
}

/* ---- rounds and phases -------------------------------------------------------------- */

static void sites_list(const ff_coord *c, const int *idx, size_t k, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        size_t at = strlen(buf);
        snprintf(buf + at, len - at, "%s%s", i ? ", " : "", c->names[idx[i]]);
    }
}

static void reset_attempt(ff_coord *c)
{
    memset(c->has_update, 0, c->nsites);
    c->have_provided = 0;
    c->provided_sites = 0;
    c->have_pooled = 0;
    c->nselected = c->nprev = c->npending = c->ndone = 0;
    c->eval_w = c->eval_loss_acc = c->eval_auroc_acc = c->eval_auroc_w = 0;
    c->eval_sites = 0;
    c->r_updates = 0;
    c->r_examples = 0;
    c->r_update_norm = c->r_eval_loss = c->r_auroc = NAN;
}

static void select_sites(ff_coord *c)
{
    /* Only sites that are up (ff_coord_set_site_state): a round starts when at least the
     * quorum of them are (ff_coord_poll). */
    int *idx = c->pending; /* scratch */
    size_t n = 0;
    for (size_t i = 0; i < c->nsites; i++)
        if (c->site_state[i] == FF_SITE_UP)
            idx[n++] = (int)i;
    c->select_all = n < FF_MIN((size_t)c->cfg.quorum.min_sites, c->nsites);
    if (c->select_all) {
        /* a retry with too few sites up: every site, and the phase's deadline decides (as
         * without liveness), rather than failing every remaining attempt at once */
        n = 0;
        for (size_t i = 0; i < c->nsites; i++)
            idx[n++] = (int)i;
    }
    size_t k = sample_size_of(c, n);
    if (c->strat.kind == FF_STRATEGY_CYCLIC) {
        /* one site per round in a fixed order of all sites (the strategy's contract) */
        k = 1;
        idx[0] = ff_strategy_cyclic_site((uint64_t)c->cfg.seed, c->round, c->nsites);
    } else if (k < n) {
        /* Partial Fisher-Yates on the engine's RNG: its state is checkpointed, so a resumed
         * run draws the same sites as an uninterrupted one. */
        for (size_t i = 0; i < k; i++) {
            size_t j = i + ff_rng_below(&c->rng, (uint32_t)(n - i));
            int t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
    }
    memset(c->expected, 0, c->nsites);
    for (size_t i = 0; i < k; i++)
        c->expected[idx[i]] = 1;
    c->nselected = 0;
    for (size_t i = 0; i < c->nsites; i++)
        if (c->expected[i])
            c->selected[c->nselected++] = (int)i;
    memcpy(c->prev_done, c->selected, c->nselected * sizeof(int));
    c->nprev = c->nselected;
    char list[4096];
    sites_list(c, c->selected, c->nselected, list, sizeof list);
    coord_emit(c, FF_EV_SITES_SELECTED, FF_PHASE_SELECT, NULL, 0, (int64_t)c->nselected, NULL, list);
    FF_LOG_INFO("round %lld: %zu of %zu sites selected: %s", (long long)c->round, c->nselected,
                c->nsites, list);
}

/* Robust options (secure aggregation off, so single updates are visible): clip the round's
 * updates to clip_multiple × their median norm, in place (they were validated and hashed on
 * submission and are not kept past the round). A privacy mechanism calibrates its noise to
 * the weighted sum, so it is refused with a median or trimmed mean. */
static int robust_prepare(ff_coord *c, size_t k)
{
    const ff_strategy_config *s = &c->cfg.strategy;
    if (s->aggregator != FF_AGG_MEAN && c->mech.on_sum)
        return ff_error(FF_ECONFIG,
                        "round %lld: strategy.aggregator %s cannot be combined with a privacy "
                        "mechanism on the sum (its noise is calibrated to the weighted mean)",
                        (long long)c->round, ff_aggregator_name(s->aggregator));
    if (!(s->clip_multiple > 0))
        return FF_OK;
    size_t nclipped = 0;
    int rc = ff_strategy_clip_updates((float *const *)c->sel_updates, k, c->n, s->clip_multiple,
                                      &nclipped);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "round %lld: ", (long long)c->round);
    if (nclipped)
        FF_LOG_WARN("round %lld: %zu of %zu updates clipped to %g x the median norm",
                    (long long)c->round, nclipped, k, s->clip_multiple);
    return FF_OK;
}

static int run_aggregate(ff_coord *c)
{
    double total = 0;
    size_t k = 0;
    float *sum = c->avg;
    if (c->have_provided) {
        memcpy(sum, c->provided, c->n * sizeof(float));
        total = c->provided_weight;
        k = c->provided_sites ? c->provided_sites : c->r_updates ? c->r_updates : c->nprev;
        c->r_updates = k; /* rounds.csv `updates`: it said 0 for every provided sum */
    } else {
        for (size_t i = 0; i < c->nsites; i++)
            if (c->has_update[i]) {
                c->sel_updates[k] = c->updates[i];
                c->sel_weights[k++] = c->weights[i];
                total += c->weights[i];
            }
        if (k == 0)
            return ff_error(FF_ESTATE,
                            "round %lld: nothing to aggregate (no plain updates, and no phase "
                            "called ff_coord_provide_sum)",
                            (long long)c->round);
        if (!c->acc && !(c->acc = ff_alloc(c->n * sizeof(double))))
            return ff_error(FF_ENOMEM, "round %lld: no memory to aggregate", (long long)c->round);
        int rc = robust_prepare(c, k);
        if (rc != FF_OK)
            return rc;
        if (c->cfg.strategy.aggregator != FF_AGG_MEAN) {
            /* Unweighted robust statistic; the mechanism check above keeps on_sum out. */
            rc = ff_strategy_aggregate_robust(sum, c->sel_updates, k, c->n,
                                              c->cfg.strategy.aggregator,
                                              c->cfg.strategy.trim_fraction);
            if (rc != FF_OK)
                return ff_error_prefix(rc, "round %lld: ", (long long)c->round);
        } else {
            coord_weighted_sum(c->acc, c->sel_updates, c->sel_weights, k, c->n);
            for (size_t j = 0; j < c->n; j++)
                sum[j] = c->mech.on_sum ? (float)c->acc[j] : (float)(c->acc[j] / total);
        }
    }
    if (c->mech.on_sum || c->have_provided) {
        if (c->mech.on_sum) {
            int rc = c->mech.on_sum(c->mech.ud, c->round, sum, c->n, &total, k);
            if (rc < 0)
                return ff_error_prefix(rc, "round %lld: privacy mechanism on the sum: ", (long long)c->round);
        }
        if (!(total > 0))
            return ff_error(FF_ENUMERIC, "round %lld: total weight %g after the mechanism",
                            (long long)c->round, total);
        for (size_t j = 0; j < c->n; j++)
            sum[j] = (float)((double)sum[j] / total);
    }
    double norm = 0;
    for (size_t j = 0; j < c->n; j++) {
        if (!isfinite(sum[j]))
            return ff_error(FF_ENUMERIC, "round %lld: the aggregate has a non-finite value at %zu",
                            (long long)c->round, j);
        norm += (double)sum[j] * sum[j];
    }
    c->r_update_norm = sqrt(norm);
    c->r_examples = total;
    char h[FF_SHA256_HEX];
    coord_hash_floats(sum, c->n, h);
    coord_emit(c, FF_EV_AGGREGATE, FF_PHASE_AGGREGATE, NULL, 0, (int64_t)k, h, NULL);
    return FF_OK;
}

static int run_update(ff_coord *c)
{
    ff_strategy_mask_local(&c->strat, c->avg);
    ff_strategy_apply(&c->strat, c->global, c->avg);
    coord_hash_floats(c->global, c->n, c->model_hash);
    coord_emit(c, FF_EV_MODEL, FF_PHASE_UPDATE, NULL, 0, c->strat.steps, c->model_hash, NULL);
    return FF_OK;
}

static void close_evaluate(ff_coord *c)
{
    if (c->eval_w > 0)
        c->r_eval_loss = c->eval_loss_acc / c->eval_w;
    if (c->have_pooled)
        c->r_auroc = c->pooled_auroc;
    else if (c->eval_auroc_w > 0)
        c->r_auroc = c->eval_auroc_acc / c->eval_auroc_w;
    if (isfinite(c->r_auroc))
        c->last_auroc = c->r_auroc;
}

static int run_checkpoint(ff_coord *c)
{
    /* rounds.csv first, then the checkpoint: a crash between the two leaves a csv line for a
     * round the checkpoint does not have, and resume trims it (coord_csv_trim). */
    int rc = coord_csv_append(c);
    if (rc != FF_OK)
        return rc;
    char path[FF_COORD_PATH_MAX + 64];
    rc = coord_checkpoint_write(c, path, sizeof path);
    if (rc != FF_OK)
        return rc;
    /* the hooks record the round (audit log) before the checkpoint takes its name: see
     * ff_coord_set_commit_check */
    coord_emit(c, FF_EV_CHECKPOINT, FF_PHASE_CHECKPOINT, NULL, 0, c->round, c->model_hash, path);
    if (c->commit_check && c->commit_check(c->commit_ud, c->round, c->model_hash) != 1)
        return ff_error(FF_EIO, "round %lld: the audit log did not record the round, so its "
                        "checkpoint is not published (a restart redoes the round)",
                        (long long)c->round);
    return coord_checkpoint_publish(c);
}

/* Opens phase phase_idx: sets the expected sites and the deadline; runs server phases. */
static int open_phase(ff_coord *c)
{
    coord_phase *p = &c->phases[c->phase_idx];
    double t = coord_now(c);
    c->phase_open_t = t;
    c->phase_deadline = t + p->def.deadline_s;
    c->ndone = 0;
    memset(c->done, 0, c->nsites);
    if (p->def.kind == FF_PHASE_COLLECT) {
        memset(c->expected, 0, c->nsites);
        const int *from = p->def.expect == FF_PHASE_FROM_PREVIOUS ? c->prev_done : c->selected;
        size_t k = p->def.expect == FF_PHASE_FROM_PREVIOUS ? c->nprev : c->nselected;
        if (p->def.expect == FF_PHASE_FROM_ALL)
            memset(c->expected, 1, c->nsites);
        else
            for (size_t i = 0; i < k; i++)
                c->expected[from[i]] = 1;
        for (size_t i = 0; i < c->nsites; i++)
            if (c->site_state[i] == FF_SITE_GONE && !c->select_all)
                c->expected[i] = 0; /* known gone: never waited for */
    }
    if (p->builtin == BI_TRAIN || p->builtin == BI_EVALUATE || p->builtin == BI_NONE)
        coord_emit(c, FF_EV_PHASE_OPEN, p->def.name, NULL, 0, 0,
                   p->builtin == BI_TRAIN ? c->model_hash : NULL, NULL);
    int rc = FF_OK;
    switch (p->builtin) {
    case BI_SELECT: select_sites(c); break;
    case BI_AGGREGATE: rc = run_aggregate(c); break;
    case BI_UPDATE: rc = run_update(c); break;
    case BI_CHECKPOINT: rc = run_checkpoint(c); break;
    default: break;
    }
    if (rc == FF_OK && p->def.on_open) {
        rc = p->def.on_open(p->def.ud, c, c->round);
        if (rc < 0)
            rc = ff_error_prefix(rc, "round %lld phase %s: ", (long long)c->round, p->def.name);
    }
    return rc;
}

static void fill_pending(ff_coord *c)
{
    c->npending = 0;
    if (c->state != FF_COORD_IN_ROUND || c->phases[c->phase_idx].def.kind != FF_PHASE_COLLECT)
        return;
    for (size_t i = 0; i < c->nsites; i++)
        if (c->expected[i] && !c->done[i])
            c->pending[c->npending++] = (int)i;
}

static int stop_run(ff_coord *c, int status, const char *msg)
{
    c->state = FF_COORD_STOPPED;
    c->stop_status = status;
    ff_strlcpy(c->stop_msg, msg, sizeof c->stop_msg);
    FF_LOG_ERROR("run stopped: %s", msg);
    coord_emit(c, FF_EV_RUN_END, NULL, NULL, 0, c->round, c->model_hash, msg);
    if (c->progress_out)
        ff_progress_finish(&c->prog);
    return ff_error(status, "%s", c->stop_msg);
}

/* Closes the open collect phase: names the missing sites, checks the quorum. Returns 1 when
 * the round goes on, 0 when it was restarted for a retry, < 0 when the run stopped. */
static int close_collect(ff_coord *c)
{
    coord_phase *p = &c->phases[c->phase_idx];
    int *done = c->pending; /* reuse as scratch: done list then missing list */
    size_t nd = 0, nm = 0;
    int missing[FF_COORD_MAX_SITES] = {0};
    for (size_t i = 0; i < c->nsites; i++) {
        if (c->expected[i] && c->done[i])
            done[nd++] = (int)i;
        else if (c->expected[i])
            missing[nm++] = (int)i;
    }
    char dlist[4096], mlist[4096];
    sites_list(c, done, nd, dlist, sizeof dlist);
    sites_list(c, missing, nm, mlist, sizeof mlist);
    double elapsed = coord_now(c) - c->phase_open_t;
    for (size_t i = 0; i < nm; i++)
        coord_emit(c, FF_EV_DROPOUT, p->def.name, c->names[missing[i]], 0, 0, NULL,
                   "no answer by the deadline");
    if (nm)
        FF_LOG_WARN("round %lld phase %s: deadline of %g s passed; %zu site(s) did not answer: %s",
                    (long long)c->round, p->def.name, p->def.deadline_s, nm, mlist);
    if (p->builtin == BI_TRAIN)
        c->r_dropouts += nm;
    coord_emit(c, FF_EV_PHASE_CLOSE, p->def.name, NULL, 0, (int64_t)nd, NULL, dlist);
    int64_t quorum = p->def.min_sites < 0 ? c->cfg.quorum.min_sites : p->def.min_sites;
    if ((int64_t)nd < quorum) {
        char msg[768];
        snprintf(msg, sizeof msg,
                 "round %lld phase %s: %zu of %zu expected sites answered within %.3g s, quorum "
                 "is %lld; missing: %s",
                 (long long)c->round, p->def.name, nd, nd + nm, elapsed, (long long)quorum,
                 nm ? mlist : "(none)");
        coord_emit(c, FF_EV_QUORUM_FAIL, p->def.name, NULL, 0, (int64_t)nd, NULL, msg);
        if (c->cfg.on_quorum_fail == FF_QUORUM_RETRY && c->attempt < c->cfg.max_retries) {
            FF_LOG_WARN("%s; retrying the round (attempt %lld of %lld)", msg,
                        (long long)c->attempt + 2, (long long)c->cfg.max_retries + 1);
            c->attempt++;
            c->r_attempts++;
            reset_attempt(c);
            c->phase_idx = 0;
            int rc = open_phase(c);
            return rc < 0 ? stop_run(c, rc, ff_error_message()) : 0;
        }
        char full[768];
        snprintf(full, sizeof full, "%s; %s", msg,
                 c->cfg.on_quorum_fail == FF_QUORUM_STOP
                     ? "on_quorum_fail is stop"
                     : "no retries left (max_retries reached)");
        return stop_run(c, FF_ETIMEOUT, full);
    }
    memcpy(c->prev_done, done, nd * sizeof(int));
    c->nprev = nd;
    if (p->def.on_close) {
        /* before the built-in close, so the evaluate phase's callback can pool histograms
         * and call ff_coord_set_pooled_auroc */
        int rc = p->def.on_close(p->def.ud, c, done, nd);
        if (rc < 0)
            return stop_run(c, rc, ff_error_message());
    }
    if (p->builtin == BI_EVALUATE)
        close_evaluate(c);
    return 1;
}

static int start_round(ff_coord *c)
{
    c->round++;
    c->attempt = 0;
    c->r_attempts = 1;
    c->r_refusals = 0;
    c->r_dropouts = 0;
    c->round_t0 = coord_now(c);
    reset_attempt(c);
    c->state = FF_COORD_IN_ROUND;
    c->phase_idx = 0;
    const char *stage = "";
    if (c->plan && c->plan->stages.count)
        stage = ((const ff_plan_stage *)c->plan->stages.items)[ff_plan_stage_of_round(c->plan, c->round)].name;
    coord_emit(c, FF_EV_ROUND_START, NULL, NULL, 0, c->round, c->model_hash, stage);
    return open_phase(c);
}

static int finish_run(ff_coord *c)
{
    c->state = FF_COORD_DONE;
    char path[FF_COORD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", c->cfg.out_dir);
    int rc = ff_mkdir_p(c->cfg.out_dir, 0755);
    if (rc == FF_OK)
        rc = coord_save_model(c, path);
    if (rc != FF_OK)
        return rc;
    FF_LOG_INFO("run '%s' done: %lld rounds, model %s", c->cfg.run_name, (long long)c->round, path);
    coord_emit(c, FF_EV_RUN_END, NULL, NULL, 0, c->round, c->model_hash, "done");
    if (c->progress_out) {
        progress(c);
        ff_progress_finish(&c->prog);
    }
    return FF_OK;
}

static void fill_status(ff_coord *c, ff_coord_status *st)
{
    fill_pending(c);
    if (!st)
        return;
    memset(st, 0, sizeof *st);
    st->state = c->state;
    st->round = c->round;
    st->attempt = c->attempt;
    st->phase = c->state == FF_COORD_IN_ROUND ? c->phases[c->phase_idx].def.name : "";
    st->stage = c->plan ? ff_plan_stage_of_round(c->plan, c->round) : 0;
    st->nselected = c->nselected;
    st->ndone = c->ndone;
    st->npending = c->npending;
    st->pending = c->pending;
    st->deadline_in = c->state == FF_COORD_IN_ROUND ? FF_MAX(0.0, c->phase_deadline - coord_now(c)) : 0;
}

int ff_coord_poll(ff_coord *c, ff_coord_status *st)
{
    int rc = FF_OK;
    if (c->state == FF_COORD_STOPPED) {
        fill_status(c, st);
        return ff_error(c->stop_status, "%s", c->stop_msg);
    }
    if (!c->run_started && !c->resume_done) {
        /* A driver that forgot ff_coord_resume must not overwrite a checkpoint with round 1. */
        int resumed;
        rc = ff_coord_resume(c, &resumed);
        if (rc != FF_OK)
            return rc;
    }
    if (!c->run_started) {
        c->run_started = 1;
        if (c->progress_out) {
            snprintf(c->prog_label, sizeof c->prog_label, "%s", c->cfg.run_name);
            ff_progress_start(&c->prog, c->progress_out, c->prog_label, (uint64_t)c->cfg.rounds);
        }
        coord_emit(c, FF_EV_RUN_START, NULL, NULL, 0, c->round, c->model_hash,
                   c->resumed ? "resumed" : "fresh");
    }
    /* Each pass either moves a phase on or returns: bounded by phases × rounds. */
    while (c->state == FF_COORD_IDLE || c->state == FF_COORD_IN_ROUND) {
        if (c->state == FF_COORD_IDLE) {
            if (c->round >= c->cfg.rounds) {
                rc = finish_run(c);
                break;
            }
            size_t up = 0;
            for (size_t i = 0; i < c->nsites; i++)
                up += c->site_state[i] == FF_SITE_UP;
            if (up < FF_MIN((size_t)c->cfg.quorum.min_sites, c->nsites))
                break; /* too few sites can be selected: wait for them, do not fail rounds */
            rc = start_round(c);
            if (rc < 0)
                return stop_run(c, rc, ff_error_message());
            continue;
        }
        coord_phase *p = &c->phases[c->phase_idx];
        if (p->def.kind == FF_PHASE_COLLECT) {
            fill_pending(c);
            if (c->npending > 0 && coord_now(c) < c->phase_deadline)
                break; /* waiting for sites */
            int r = close_collect(c);
            if (r < 0) {
                fill_status(c, st);
                return r;
            }
            if (r == 0)
                continue; /* round restarted */
        }
        c->phase_idx++;
        if (c->phase_idx == c->nphases) {
            coord_emit(c, FF_EV_ROUND_END, NULL, NULL, 0, c->round, c->model_hash, NULL);
            c->state = FF_COORD_IDLE;
            continue;
        }
        rc = open_phase(c);
        if (rc < 0)
            return stop_run(c, rc, ff_error_message());
    }
    fill_status(c, st);
    progress(c);
    return rc;
}
