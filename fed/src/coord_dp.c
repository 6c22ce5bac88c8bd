/* Client-level differential privacy in the coordinator's round (docs/privacy.md).
 *
 * Without secure aggregation, DP-FedAvg (McMahan, Ramage, Talwar, Zhang 2018, Alg. 1 with
 * the fixed-denominator estimator): each accepted update is clipped to L2 norm S and
 * weighted 1 (an example count would let one hospital's weight — and the sensitivity — grow
 * without bound); the sum gets N(0, (σS)²) per coordinate and is divided by the number of
 * sites SELECTED for the round, not the number that answered, so a drop-out changes the
 * scale of nothing but its own missing term and the noise stays calibrated to S.
 *
 * With secure aggregation, the sites add the noise (client_node.c, ddg encoding) and the
 * coordinator only decodes the sum (coord_secagg.c); this file supplies the shared
 * parameters and the accounting, which uses the survivors' noise only.
 *
 * Either way the ledger advances once per aggregated round, a server phase before the first
 * collect phase refuses a round that could pass the budget (the run stops), and every round
 * leaves a `privacy` audit entry from which `fedfuse audit verify` recomputes ε. Site
 * sampling draws a fixed-size subset, not a Poisson sample, so no amplification by sampling
 * is claimed: q = 1 in every record. */
#include <math.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "fed_dp.h"

static const char *mech_name(const fed_dp *dp)
{
    return dp->ddg ? "distributed_discrete_gaussian" : "gaussian";
}

int fed_dp_ddg_config(const ff_privacy_client_cfg *c, uint32_t n_sites, uint64_t round_id,
                      size_t nparams, ff_privacy_ddg_config *out, size_t *d)
{
    if (n_sites < 1 || nparams < 1)
        return ff_error(FF_EINVAL, "ddg: %u sites, %zu parameters", n_sites, nparams);
    *d = ff_privacy_ddg_padded_dim(nparams);
    double site_std = c->noise_multiplier * c->clip_norm / sqrt((double)n_sites);
    memset(out, 0, sizeof *out);
    out->clip_norm = c->clip_norm;
    out->sigma = site_std;
    out->beta = c->beta;
    out->bits = (int)c->bits;
    out->gamma = c->gamma > 0 ? c->gamma
                              : ff_privacy_ddg_choose_gamma(c->clip_norm, site_std, n_sites, *d,
                                                            (int)c->bits);
    /* A fixed public mix of the round id: every site derives the same rotation. */
    out->rotation_seed = (round_id ^ 0xD1B54A32D192ED03ull) * 0x9E3779B97F4A7C15ull;
    if (!(site_std / out->gamma >= 0.5))
        return ff_error(FF_ECONFIG,
                        "privacy.client.gamma: %g is more than twice the per-site noise std %g "
                        "(%u sites); lower gamma or raise bits",
                        out->gamma, site_std, n_sites);
    return FF_OK;
}

/* The record of a round as the ledger and the auditor see it. */
static int round_record(const fed_dp *dp, int64_t round, int64_t survivors, int64_t sites,
                        ff_privacy_round *r)
{
    memset(r, 0, sizeof *r);
    r->round = round;
    r->level = FF_PRIVACY_LEVEL_CLIENT;
    r->q = 1.0;
    r->steps = 1;
    r->clip_norm = dp->cfg.clip_norm;
    r->survivors = survivors;
    r->sites = sites;
    if (!dp->ddg) {
        r->mechanism = FF_PRIVACY_MECH_GAUSSIAN;
        r->sigma = dp->cfg.noise_multiplier;
        return FF_OK;
    }
    ff_privacy_ddg_config k;
    size_t d;
    int rc = fed_dp_ddg_config(&dp->cfg, (uint32_t)sites, 0, dp->nparams, &k, &d);
    if (rc != FF_OK)
        return rc;
    r->mechanism = FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN;
    r->ddg_sigma = k.sigma;
    r->ddg_gamma = k.gamma;
    r->ddg_beta = k.beta;
    r->ddg_dim = (int64_t)d;
    return FF_OK;
}

static int save_ledger(const fed_dp *dp, char **text)
{
    int rc = ff_privacy_ledger_to_json(dp->ledger, text);
    if (rc == FF_OK)
        rc = ff_mkdir_p(dp->ledger_dir, 0755);
    if (rc == FF_OK)
        rc = ff_file_write_atomic(dp->ledger_path, *text, strlen(*text), 0644);
    return rc;
}

/* Ledger, file, audit entry, log line: after the mechanism released round r. */
static int record(fed_dp *dp, const ff_privacy_round *r, double noise_std)
{
    int rc = ff_privacy_ledger_record(dp->ledger, r);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "privacy: ");
    double eps, order;
    char *text = NULL;
    rc = ff_privacy_ledger_epsilon(dp->ledger, &eps, &order);
    if (rc == FF_OK)
        rc = save_ledger(dp, &text);
    if (rc == FF_OK && dp->audit && dp->audit->log) {
        json_t *ledger = json_loads(text, 0, NULL);
        json_t *d = json_pack("{s:I, s:n, s:f, s:n, s:o, s:s, s:f, s:f, s:I, s:f, s:f, s:I, s:I, "
                              "s:f, s:f}",
                              "round", (json_int_t)r->round, "epsilon_record", "epsilon_client",
                              eps, "record_ledger", "client_ledger", ledger, "mechanism",
                              mech_name(dp), "q", r->q, "noise_multiplier",
                              dp->cfg.noise_multiplier, "steps", (json_int_t)r->steps,
                              "clip_norm", r->clip_norm, "delta", dp->cfg.delta, "survivors",
                              (json_int_t)r->survivors, "sites", (json_int_t)r->sites,
                              "noise_std", noise_std, "epsilon_budget", dp->cfg.epsilon_budget);
        if (!d)
            rc = ff_error(FF_ENOMEM, "privacy: audit entry");
        else
            fed_audit_privacy(dp->audit, d);
    }
    free(text);
    if (rc == FF_OK)
        FF_LOG_INFO("round %lld: client-level DP (%s): noise std %.4g in the sum of %lld of %lld "
                    "sites, epsilon %.4f of budget %g (delta %g, order %g)",
                    (long long)r->round, mech_name(dp), noise_std, (long long)r->survivors,
                    (long long)r->sites, eps, dp->cfg.epsilon_budget, dp->cfg.delta, order);
    return rc;
}

int fed_dp_record_ddg(fed_dp *dp, int64_t round, int64_t survivors, int64_t sites,
                      const ff_privacy_ddg_config *k, size_t d)
{
    ff_privacy_round r;
    int rc = round_record(dp, round, survivors, sites, &r);
    if (rc != FF_OK)
        return rc;
    /* the parameters the sites used, as decoded (the same function made both) */
    r.ddg_sigma = k->sigma;
    r.ddg_gamma = k->gamma;
    r.ddg_beta = k->beta;
    r.ddg_dim = (int64_t)d;
    if (survivors < sites)
        FF_LOG_WARN("round %lld: %lld of %lld sites' noise shares are missing from the secure "
                    "sum (drop-outs); the round is accounted with the %lld shares in it (noise "
                    "std %.4g instead of %.4g)",
                    (long long)round, (long long)(sites - survivors), (long long)sites,
                    (long long)survivors, k->sigma * sqrt((double)survivors),
                    k->sigma * sqrt((double)sites));
    return record(dp, &r, k->sigma * sqrt((double)survivors));
}

/* ---- the engine's hooks (central Gaussian) ------------------------------------------- */

static int on_update(void *ud, int site, float *update, size_t n, double *weight)
{
    fed_dp *dp = ud;
    (void)site;
    double norm = 0;
    int rc = ff_privacy_clip(update, n, dp->cfg.clip_norm, &norm);
    if (rc != FF_OK)
        return rc;
    dp->nupdates++;
    dp->nclipped += norm > dp->cfg.clip_norm;
    dp->max_norm = fmax(dp->max_norm, norm);
    *weight = 1.0;
    return FF_OK;
}

static int on_sum(void *ud, int64_t round, float *sum, size_t n, double *total_weight,
                  size_t nsites)
{
    fed_dp *dp = ud;
    double std = dp->cfg.noise_multiplier * dp->cfg.clip_norm;
    ff_privacy_gaussian_noise(&dp->rng, sum, n, std);
    *total_weight = (double)dp->selected;
    FF_LOG_INFO("round %lld: %zu updates clipped to norm %g (%zu were above it, largest %.4g); "
                "Gaussian noise std %g added to the sum, divided by the %lld selected sites",
                (long long)round, dp->nupdates, dp->cfg.clip_norm, dp->nclipped, dp->max_norm, std,
                (long long)dp->selected);
    ff_privacy_round r;
    int rc = round_record(dp, round, (int64_t)nsites, dp->selected, &r);
    return rc == FF_OK ? record(dp, &r, std) : rc;
}

static void on_event(void *ud, const ff_coord_event *ev)
{
    fed_dp *dp = ud;
    if (ev->type != FF_EV_SITES_SELECTED)
        return;
    dp->selected = ev->count;
    dp->nupdates = dp->nclipped = 0;
    dp->max_norm = 0;
}

/* The budget phase: the round runs only if it stays within the budget even with the fewest
 * survivors the quorum allows (the distributed mechanism's noise shrinks with drop-outs). */
static int budget_open(void *ud, ff_coord *c, int64_t round)
{
    fed_dp *dp = ud;
    (void)c;
    int64_t worst = dp->ddg ? FF_MAX(1, FF_MIN(dp->quorum, dp->selected)) : dp->selected;
    ff_privacy_round r;
    double after = 0, now = 0, order;
    int exceed = 0;
    int rc = round_record(dp, round, worst, dp->selected, &r);
    if (rc == FF_OK)
        rc = ff_privacy_ledger_check(dp->ledger, &r, &after, &exceed);
    if (rc == FF_OK)
        rc = ff_privacy_ledger_epsilon(dp->ledger, &now, &order);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "privacy: ");
    if (exceed)
        return ff_error(FF_EPOLICY,
                        "privacy budget exhausted: round %lld refused, client-level epsilon "
                        "would reach %.4f (delta %g%s), past privacy.client.epsilon_budget %g "
                        "(spent %.4f in %zu rounds); the run stops here, the last checkpoint "
                        "holds the model of round %lld",
                        (long long)round, after, dp->cfg.delta,
                        dp->ddg ? ", assuming only the quorum survives" : "",
                        dp->cfg.epsilon_budget, now, ff_privacy_ledger_count(dp->ledger),
                        (long long)round - 1);
    return FF_OK;
}

/* ---- set-up ----------------------------------------------------------------------------- */

int fed_dp_install(fed_dp *dp, ff_coord *c, const ff_coord_config *cfg, const ff_plan *plan,
                   fed_audit *audit)
{
    memset(dp, 0, sizeof *dp);
    if (!plan->privacy.client.enabled)
        return FF_OK;
    dp->on = 1;
    dp->cfg = plan->privacy.client;
    dp->ddg = dp->cfg.mechanism == FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN;
    dp->quorum = cfg->quorum.min_sites;
    dp->nparams = ff_coord_nparams(c);
    dp->audit = audit;
    ff_strlcpy(dp->ledger_dir, cfg->checkpoint_dir, sizeof dp->ledger_dir);
    snprintf(dp->ledger_path, sizeof dp->ledger_path, "%s/%s", cfg->checkpoint_dir,
             FED_DP_LEDGER_FILE);
    /* The noise must be unpredictable to the sites: a seed from the OS, never the config. */
    uint64_t seed[2];
    if (RAND_bytes((unsigned char *)seed, sizeof seed) != 1)
        return ff_error(FF_ECRYPTO, "privacy: no randomness from the OS for the noise");
    ff_rng_init(&dp->rng, seed[0], seed[1]);
    ff_secure_zero(seed, sizeof seed);
    int rc = ff_coord_add_hook(c, on_event, dp);
    if (rc == FF_OK && !dp->ddg) {
        ff_coord_mechanism m = {.on_update = on_update, .on_sum = on_sum, .ud = dp};
        ff_coord_set_mechanism(c, &m);
    }
    ff_coord_phase ph = {.kind = FF_PHASE_SERVER, .on_open = budget_open, .ud = dp};
    ff_strlcpy(ph.name, FF_PHASE_PRIVACY, sizeof ph.name);
    if (rc == FF_OK)
        rc = ff_coord_phase_insert(c, dp->ddg ? FF_PHASE_ADVERTISE : FF_PHASE_TRAIN, &ph);
    return rc;
}

int fed_dp_start(fed_dp *dp, int resumed, double *spent)
{
    *spent = 0;
    if (!dp->on)
        return FF_OK;
    int rc;
    /* Also without a checkpoint: a run killed in its first round may have released a noised
     * model already, and its charge stays (ε is never under-counted). */
    if (ff_path_exists(dp->ledger_path)) {
        char *text = NULL;
        size_t len = 0;
        rc = ff_file_read_all(dp->ledger_path, 64u << 20, &text, &len);
        if (rc == FF_OK)
            rc = ff_privacy_ledger_from_json(&dp->ledger, text, dp->ledger_path);
        free(text);
    } else {
        double orders[FF_PRIVACY_MAX_ORDERS];
        size_t n = ff_privacy_orders_dp_accounting(orders);
        rc = ff_privacy_ledger_new(&dp->ledger, FF_PRIVACY_LEVEL_CLIENT, dp->cfg.epsilon_budget,
                                   dp->cfg.delta, orders, n, FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                   FF_PRIVACY_CONV_IMPROVED);
    }
    double order;
    if (rc == FF_OK)
        rc = ff_privacy_ledger_epsilon(dp->ledger, spent, &order);
    if (rc == FF_OK && ff_privacy_ledger_count(dp->ledger) > 0)
        FF_LOG_INFO("privacy: resumed ledger of %zu rounds, client-level epsilon %.4f spent of "
                    "%g%s", ff_privacy_ledger_count(dp->ledger), *spent, dp->cfg.epsilon_budget,
                    resumed ? "" : " (no checkpoint yet: the rounds are redone, their charges stay)");
    return rc;
}

void fed_dp_free(fed_dp *dp)
{
    ff_privacy_ledger_free(dp->ledger);
    memset(dp, 0, sizeof *dp);
}
