/* The `privacy:` section of the training plan: its schema and the checks a schema cannot
 * express (settings that contradict each other or the data). */
#include "ff/privacy.h"

#include <math.h>
#include <stddef.h>

static const char *const mechanisms[] = {"gaussian", "distributed_discrete_gaussian", NULL};

#define RECORD(f) offsetof(ff_privacy_record_cfg, f)
#define CLIENT(f) offsetof(ff_privacy_client_cfg, f)

static const ff_cfg_field record_fields[] = {
    {.key = "enabled", .type = FF_CFG_BOOL, .offset = RECORD(enabled), .def = "false",
     .help = "patient-level DP-SGD at each hospital"},
    {.key = "noise_multiplier", .type = FF_CFG_DOUBLE, .offset = RECORD(noise_multiplier),
     .min = 0, .max = 1e4, .def = "0",
     .help = "sigma: Gaussian noise std / clip_norm (must be > 0 when enabled)"},
    {.key = "clip_norm", .type = FF_CFG_DOUBLE, .offset = RECORD(clip_norm), .min = 0,
     .max = 1e6, .def = "1.0", .help = "C: per-example gradient L2 clip"},
    {.key = "delta", .type = FF_CFG_DOUBLE, .offset = RECORD(delta), .min = 0, .max = 1,
     .def = "1e-5", .help = "delta of the (epsilon, delta) guarantee; < 1/patients"},
    {.key = "epsilon_budget", .type = FF_CFG_DOUBLE, .offset = RECORD(epsilon_budget),
     .min = 0, .max = 1e6, .def = "0",
     .help = "epsilon the site never exceeds; rounds past it are refused (> 0 when enabled)"},
    {0},
};

static const ff_cfg_field client_fields[] = {
    {.key = "enabled", .type = FF_CFG_BOOL, .offset = CLIENT(enabled), .def = "false",
     .help = "hospital-level DP on the aggregate (DP-FedAvg)"},
    {.key = "noise_multiplier", .type = FF_CFG_DOUBLE, .offset = CLIENT(noise_multiplier),
     .min = 0, .max = 1e4, .def = "0",
     .help = "sigma: total noise std on the sum / clip_norm (must be > 0 when enabled)"},
    {.key = "clip_norm", .type = FF_CFG_DOUBLE, .offset = CLIENT(clip_norm), .min = 0,
     .max = 1e6, .def = "1.0", .help = "S: per-hospital update L2 clip"},
    {.key = "delta", .type = FF_CFG_DOUBLE, .offset = CLIENT(delta), .min = 0, .max = 1,
     .def = "1e-5", .help = "delta; < 1/number of sites"},
    {.key = "epsilon_budget", .type = FF_CFG_DOUBLE, .offset = CLIENT(epsilon_budget),
     .min = 0, .max = 1e6, .def = "0", .help = "epsilon of the federation (> 0 when enabled)"},
    {.key = "mechanism", .type = FF_CFG_ENUM, .offset = CLIENT(mechanism),
     .choices = mechanisms, .def = "gaussian",
     .help = "gaussian (coordinator adds noise; secure aggregation off) or "
             "distributed_discrete_gaussian (sites add integer noise under secure aggregation)"},
    {.key = "bits", .type = FF_CFG_INT, .offset = CLIENT(bits), .min = 8, .max = 62,
     .def = "20", .help = "distributed mechanism: modulus 2^bits of secure aggregation"},
    {.key = "gamma", .type = FF_CFG_DOUBLE, .offset = CLIENT(gamma), .min = 0, .max = 1e6,
     .def = "0", .help = "distributed mechanism: granularity (0 = chosen from bits)"},
    {.key = "beta", .type = FF_CFG_DOUBLE, .offset = CLIENT(beta), .min = 0, .max = 0.999,
     .def = "0.6065306597126334", .help = "conditional rounding beta (default exp(-1/2))"},
    {0},
};

const ff_cfg_field ff_privacy_cfg_schema[] = {
    {.key = "record", .type = FF_CFG_SECTION, .offset = offsetof(ff_privacy_cfg, record),
     .sub = record_fields, .help = "record-level (patient) DP"},
    {.key = "client", .type = FF_CFG_SECTION, .offset = offsetof(ff_privacy_cfg, client),
     .sub = client_fields, .help = "client-level (hospital) DP"},
    {0},
};

/* The checks both levels share; prefix is "privacy.record" or "privacy.client". */
static int validate_level(const char *prefix, double sigma, double clip, double delta,
                          double budget, double spent, int64_t population, const char *unit)
{
    if (!(sigma > 0.0))
        return ff_error(FF_ECONFIG,
                        "%s.noise_multiplier: DP is enabled with noise_multiplier %g (no noise, "
                        "no privacy)",
                        prefix, sigma);
    if (!(clip > 0.0))
        return ff_error(FF_ECONFIG, "%s.clip_norm: DP is enabled with clip_norm %g", prefix,
                        clip);
    if (!(delta > 0.0 && delta < 1.0))
        return ff_error(FF_ECONFIG, "%s.delta: %g is outside (0, 1)", prefix, delta);
    if (population > 0 && delta >= 1.0 / (double)population)
        return ff_error(FF_ECONFIG,
                        "%s.delta: %g is not below 1/%lld %s (a delta that large allows "
                        "releasing a whole record)",
                        prefix, delta, (long long)population, unit);
    if (!(budget > 0.0))
        return ff_error(FF_ECONFIG, "%s.epsilon_budget: DP is enabled with budget %g", prefix,
                        budget);
    if (spent >= budget)
        return ff_error(FF_ECONFIG,
                        "%s.epsilon_budget: %g is already spent (epsilon so far %g); no round "
                        "can run",
                        prefix, budget, spent);
    return FF_OK;
}

int ff_privacy_cfg_validate(const ff_privacy_cfg *cfg, const ff_privacy_context *ctx)
{
    ff_privacy_context none = {0};
    if (!ctx)
        ctx = &none;
    const ff_privacy_record_cfg *r = &cfg->record;
    const ff_privacy_client_cfg *c = &cfg->client;
    int rc;
    if (r->enabled &&
        (rc = validate_level("privacy.record", r->noise_multiplier, r->clip_norm, r->delta,
                             r->epsilon_budget, ctx->record_eps_spent, ctx->dataset_size,
                             "patients")) != FF_OK)
        return rc;
    if (!c->enabled)
        return FF_OK;
    if ((rc = validate_level("privacy.client", c->noise_multiplier, c->clip_norm, c->delta,
                             c->epsilon_budget, ctx->client_eps_spent, ctx->num_sites,
                             "sites")) != FF_OK)
        return rc;
    if (c->mechanism == FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN) {
        if (c->bits < 8 || c->bits > 62)
            return ff_error(FF_ECONFIG, "privacy.client.bits: %lld is outside [8, 62]",
                            (long long)c->bits);
        /* KLS21 Thm 1 needs each site's share σ/√n to be at least γ/2 in original units. */
        if (c->gamma > 0.0 && ctx->num_sites > 0) {
            double share = c->noise_multiplier * c->clip_norm / sqrt((double)ctx->num_sites);
            if (share < 0.5 * c->gamma)
                return ff_error(FF_ECONFIG,
                                "privacy.client.gamma: %g is more than twice the per-site "
                                "noise std %g (noise_multiplier * clip_norm / sqrt(%lld "
                                "sites)); lower gamma or raise bits",
                                c->gamma, share, (long long)ctx->num_sites);
        }
    }
    return FF_OK;
}
