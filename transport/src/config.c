/* The consortium file (who may connect) and the site policy (what a site agrees to run). */
#include "transport_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static const ff_cfg_field site_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = offsetof(ff_consortium_site, name),
     .size = FF_SITE_NAME_MAX, .required = 1, .help = "site name = certificate CN"},
    {.key = "contact", .type = FF_CFG_STRING, .offset = offsetof(ff_consortium_site, contact),
     .size = 128, .help = "who to call at the site"},
    {0},
};

static const ff_cfg_field consortium_schema[] = {
    {.key = "consortium", .type = FF_CFG_STRING, .offset = offsetof(ff_consortium, consortium),
     .size = FF_SITE_NAME_MAX, .required = 1, .help = "consortium name"},
    {.key = "ca", .type = FF_CFG_STRING, .offset = offsetof(ff_consortium, ca), .size = 1024,
     .required = 1, .help = "consortium CA certificate (relative to this file)"},
    {.key = "crl", .type = FF_CFG_STRING, .offset = offsetof(ff_consortium, crl), .size = 1024,
     .help = "revocation list from `fedfuse pki revoke` (relative to this file)"},
    {.key = "sites", .type = FF_CFG_LIST, .offset = offsetof(ff_consortium, sites),
     .size = sizeof(ff_consortium_site), .sub = site_fields, .min = 1, .max = 4096,
     .required = 1, .help = "enrolled sites"},
    {0},
};

/* Relative paths in a config resolve against the config's folder, not the working dir. */
static int resolve(const char *cfg_path, char *p, size_t n)
{
    if (!p[0] || p[0] == '/')
        return FF_OK;
    const char *slash = strrchr(cfg_path, '/');
    if (!slash)
        return FF_OK;
    char tmp[2048];
    int k = snprintf(tmp, sizeof tmp, "%.*s/%s", (int)(slash - cfg_path), cfg_path, p);
    if (k < 0 || (size_t)k >= n)
        return ff_error(FF_ERANGE, "%s: path '%s' too long", cfg_path, p);
    memcpy(p, tmp, (size_t)k + 1);
    return FF_OK;
}

int ff_consortium_load(const char *path, ff_consortium *out)
{
    memset(out, 0, sizeof *out);
    int rc = ff_cfg_load(path, consortium_schema, out);
    if (rc != FF_OK)
        return rc;
    if ((rc = resolve(path, out->ca, sizeof out->ca)) != FF_OK ||
        (rc = resolve(path, out->crl, sizeof out->crl)) != FF_OK)
        return rc;
    ff_consortium_site *s = out->sites.items;
    for (size_t i = 0; i < out->sites.count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(s[i].name, s[j].name) == 0)
                return ff_error(FF_ECONFIG, "%s: sites: '%s' listed twice", path, s[i].name);
    return FF_OK;
}

void ff_consortium_free(ff_consortium *c)
{
    ff_cfg_free(consortium_schema, c);
}

int ff_consortium_has(const ff_consortium *c, const char *name)
{
    const ff_consortium_site *s = c->sites.items;
    for (size_t i = 0; i < c->sites.count; i++)
        if (strcmp(s[i].name, name) == 0)
            return 1;
    return 0;
}

/* The certificate at cert_path as a site of this consortium: chains to its CA, inside its
 * dates, not on its CRL, role site. Writes the CN. */
static int check_site_cert(const ff_consortium *c, const char *cert_path, char *cn, size_t n)
{
    int rc = ff_pki_check_files(c->ca, c->crl[0] ? c->crl : NULL, cert_path, cn, n);
    if (rc == FF_ECRYPTO) {
        /* another CA's, expired, not a client certificate: refused as revoked ones are */
        char why[512];
        ff_strlcpy(why, ff_error_message(), sizeof why);
        rc = ff_error(FF_EPOLICY, "%s", why);
    }
    X509 *x = NULL;
    if (rc == FF_OK)
        rc = ff_pki_load_cert(cert_path, &x);
    if (rc == FF_OK && (rc = ff_pki_check_role(x, FF_PKI_SITE, NULL)) != FF_OK)
        ff_error_prefix(rc, "%s: ", cert_path);
    X509_free(x);
    return rc;
}

int ff_consortium_add(const char *path, const char *cert_path, const char *contact, char *name,
                      size_t name_len, int *added)
{
    *added = 0;
    ff_consortium c;
    char cn[FF_SITE_NAME_MAX] = "";
    int rc = ff_consortium_load(path, &c);
    if (rc == FF_OK)
        rc = check_site_cert(&c, cert_path, cn, sizeof cn);
    ff_consortium_free(&c);
    /* the contact as a YAML double-quoted scalar: printable ASCII, quotes escaped */
    char more[300] = "";
    if (rc == FF_OK && contact) {
        size_t k = (size_t)snprintf(more, sizeof more, "contact: \"");
        for (const char *p = contact; *p && rc == FF_OK; p++) {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || k + 4 >= sizeof more ||
                (size_t)(p - contact) >= 127)
                rc = ff_error(FF_EINVAL, "contact: printable text of at most 127 characters");
            else if (*p == '"' || *p == '\\')
                more[k++] = '\\';
            more[k++] = *p;
        }
        more[k++] = '"';
        more[k] = '\0';
    }
    if (rc == FF_OK)
        rc = ff_cfg_list_add(path, "sites", "name", cn, contact ? more : NULL, added);
    if (rc == FF_OK && (rc = ff_consortium_load(path, &c)) != FF_OK)
        ff_error_prefix(rc, "after adding '%s': ", cn);
    else if (rc == FF_OK)
        ff_consortium_free(&c);
    if (name)
        ff_strlcpy(name, cn, name_len);
    return rc;
}

#define DPOFF(f) (offsetof(ff_policy, dp.f) - offsetof(ff_policy, dp))
static const char *const dp_levels[] = {"any", "client", "record", "both", NULL};
static const ff_cfg_field dp_fields[] = {
    {.key = "required", .type = FF_CFG_BOOL, .offset = DPOFF(required), .def = "true",
     .help = "refuse tasks without differential privacy"},
    {.key = "level", .type = FF_CFG_ENUM, .offset = DPOFF(level), .choices = dp_levels,
     .def = "any",
     .help = "which DP meets `required`: any, client (privacy.client), record (patient-level "
             "privacy.record at this site) or both"},
    {.key = "max_epsilon", .type = FF_CFG_DOUBLE, .offset = DPOFF(max_epsilon), .min = 0,
     .max = 1e6, .def = "10.0", .help = "largest run epsilon accepted"},
    {.key = "max_delta", .type = FF_CFG_DOUBLE, .offset = DPOFF(max_delta), .min = 0, .max = 1,
     .def = "1e-5", .help = "largest delta accepted"},
    {.key = "min_noise_multiplier", .type = FF_CFG_DOUBLE, .offset = DPOFF(min_noise_multiplier),
     .min = 0, .max = 1e3, .def = "0.0", .help = "smallest noise multiplier accepted"},
    {.key = "max_clip_norm", .type = FF_CFG_DOUBLE, .offset = DPOFF(max_clip_norm), .min = 0,
     .max = 1e9, .def = "1e9", .help = "largest clipping norm accepted"},
    {0},
};

#define STOFF(f) (offsetof(ff_policy, statistics.f) - offsetof(ff_policy, statistics))
static const ff_cfg_field statistics_fields[] = {
    {.key = "enabled", .type = FF_CFG_BOOL, .offset = STOFF(enabled), .def = "false",
     .help = "take part in approved statistics jobs (off: every statistics task is refused)"},
    {.key = "min_cell_size", .type = FF_CFG_INT, .offset = STOFF(min_cell_size), .min = 1,
     .max = 1000000, .def = "10", .help = "counts below it (but above 0) are suppressed here"},
    {.key = "variables", .type = FF_CFG_STRLIST, .offset = STOFF(variables), .min = 0,
     .max = FF_CFG_STRLIST_MAX,
     .help = "columns a query may read (\"*\" = any; events.csv for the event filter)"},
    {.key = "per_site", .type = FF_CFG_BOOL, .offset = STOFF(per_site), .def = "false",
     .help = "release this site's own (suppressed) results, not only the pooled sum"},
    {.key = "max_query_epsilon", .type = FF_CFG_DOUBLE, .offset = STOFF(max_query_epsilon),
     .min = 0, .max = 1e6, .def = "1.0",
     .help = "largest epsilon one noised query may cost this site (its total: dp.max_epsilon)"},
    {.key = "outcome_cells", .type = FF_CFG_BOOL, .offset = STOFF(outcome_cells), .def = "true",
     .help = "evaluation: a subgroup's positives and negatives count as cells too (withheld "
             "below min_cell_size), not only its patients"},
    {0},
};

/* Fewer sites in a sum, or a lower threshold, leave each site's update less hidden (a sum
 * of 2 is the other site's update to either of them; t shares unmask a site). */
#define SAOFF(f) (offsetof(ff_policy, secagg.f) - offsetof(ff_policy, secagg))
static const ff_cfg_field secagg_fields[] = {
    {.key = "min_sites", .type = FF_CFG_INT, .offset = SAOFF(min_sites), .min = 2, .max = 100000,
     .def = "2", .help = "fewest sites selected for a secure-aggregation round"},
    {.key = "min_threshold", .type = FF_CFG_INT, .offset = SAOFF(min_threshold), .min = 1,
     .max = 100000, .def = "1", .help = "lowest threshold t (shares needed to unmask)"},
    {.key = "min_neighbours", .type = FF_CFG_INT, .offset = SAOFF(min_neighbours), .min = 1,
     .max = 100000, .def = "1",
     .help = "fewest neighbours each site masks with (SecAgg+'s degree; n - 1 = all)"},
    {0},
};

const ff_cfg_field ff_policy_schema[] = {
    {.key = "site", .type = FF_CFG_STRING, .offset = offsetof(ff_policy, site),
     .size = FF_SITE_NAME_MAX, .required = 1, .help = "this site's name (certificate CN)"},
    {.key = "accepted_jobs", .type = FF_CFG_STRLIST, .offset = offsetof(ff_policy, accepted_jobs),
     .min = 0, .max = FF_CFG_STRLIST_MAX, .required = 1,
     .help = "sha256 (hex) of model config || training plan the site approved"},
    {.key = "require_secure_aggregation", .type = FF_CFG_BOOL,
     .offset = offsetof(ff_policy, require_secagg), .def = "true",
     .help = "refuse tasks without secure aggregation"},
    {.key = "dp", .type = FF_CFG_SECTION, .offset = offsetof(ff_policy, dp), .sub = dp_fields,
     .help = "minimum differential-privacy settings"},
    {.key = "max_rounds", .type = FF_CFG_INT, .offset = offsetof(ff_policy, max_rounds), .min = 1,
     .max = 1000000, .def = "100", .help = "largest number of rounds the site takes part in"},
    {.key = "max_model_bytes", .type = FF_CFG_INT, .offset = offsetof(ff_policy, max_model_bytes),
     .min = 1, .max = 1e12, .def = "4294967296", .help = "largest global model downloaded"},
    {.key = "statistics", .type = FF_CFG_SECTION, .offset = offsetof(ff_policy, statistics),
     .sub = statistics_fields, .help = "statistics jobs: disclosure control (docs/statistics.md)"},
    {.key = "secure_aggregation", .type = FF_CFG_SECTION, .offset = offsetof(ff_policy, secagg),
     .sub = secagg_fields, .help = "the least a secure-aggregation round must have"},
    {0},
};

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int ff_policy_load(const char *path, ff_policy *out)
{
    memset(out, 0, sizeof *out);
    int rc = ff_cfg_load(path, ff_policy_schema, out);
    if (rc != FF_OK)
        return rc;
    for (size_t i = 0; i < out->accepted_jobs.count; i++)
        if (!is_hex64(out->accepted_jobs.items[i]))
            return ff_error(FF_ECONFIG, "%s: accepted_jobs[%zu]: '%s' is not 64 lower-case hex "
                            "digits (sha256)", path, i, out->accepted_jobs.items[i]);
    return FF_OK;
}

void ff_policy_free(ff_policy *p)
{
    ff_cfg_free(ff_policy_schema, p);
}

/* The dp: limits that every enabled level meets (epsilon: client level only, see
 * ff_policy_check). what names the level in the message. */
static int check_dp_limits(const ff_policy *p, const char *what, double delta, double sigma,
                           double clip)
{
    if (!isfinite(delta) || delta < 0 || delta > p->dp.max_delta)
        return ff_error(FF_EPOLICY, "policy: %s delta %g exceeds max_delta %g", what, delta,
                        p->dp.max_delta);
    if (!isfinite(sigma) || sigma < p->dp.min_noise_multiplier)
        return ff_error(FF_EPOLICY, "policy: %s noise multiplier %g is below "
                        "min_noise_multiplier %g", what, sigma, p->dp.min_noise_multiplier);
    if (!isfinite(clip) || clip <= 0 || clip > p->dp.max_clip_norm)
        return ff_error(FF_EPOLICY, "policy: %s clip norm %g is outside (0, %g]", what, clip,
                        p->dp.max_clip_norm);
    return FF_OK;
}

static int check_dp(const ff_policy *p, const Fedfuse__Task *t, const ff_policy_record_dp *rec)
{
    const Fedfuse__DpParams *dp = t->dp;
    int client = dp && dp->enabled, record = rec && rec->enabled;
    if (!client && !record)
        return ff_error(FF_EPOLICY, "policy: differential privacy is required but the task "
                        "enables neither client-level (privacy.client) nor record-level "
                        "(privacy.record) DP");
    int lv = p->dp.level;
    if (!client && (lv == FF_POLICY_DP_CLIENT || lv == FF_POLICY_DP_BOTH))
        return ff_error(FF_EPOLICY, "policy: dp.level %s requires client-level DP "
                        "(privacy.client) but the task does not enable it", dp_levels[lv]);
    if (!record && (lv == FF_POLICY_DP_RECORD || lv == FF_POLICY_DP_BOTH))
        return ff_error(FF_EPOLICY, "policy: dp.level %s requires record-level DP "
                        "(privacy.record, DP-SGD at this site) but the task does not enable it",
                        dp_levels[lv]);
    if (client) {
        if (!isfinite(dp->epsilon) || dp->epsilon <= 0 || dp->epsilon > p->dp.max_epsilon)
            return ff_error(FF_EPOLICY, "policy: task epsilon %g exceeds max_epsilon %g",
                            dp->epsilon, p->dp.max_epsilon);
        int rc = check_dp_limits(p, "task", dp->delta, dp->noise_multiplier, dp->clip_norm);
        if (rc != FF_OK)
            return rc;
    }
    if (record) {
        if (!isfinite(rec->epsilon_budget) || rec->epsilon_budget <= 0)
            return ff_error(FF_EPOLICY, "policy: privacy.record.epsilon_budget %g is not a "
                            "budget", rec->epsilon_budget);
        if (!(p->dp.max_epsilon > 0))
            return ff_error(FF_EPOLICY, "policy: max_epsilon %g allows no record-level DP round",
                            p->dp.max_epsilon);
        return check_dp_limits(p, "privacy.record", rec->delta, rec->noise_multiplier,
                               rec->clip_norm);
    }
    return FF_OK;
}

int ff_policy_check_job(const ff_policy *p, const Fedfuse__Task *t)
{
    if (t->phase == FEDFUSE__PHASE__PHASE_WAIT || t->phase == FEDFUSE__PHASE__PHASE_DONE)
        return FF_OK;
    if (t->job_sha256.len != FF_SHA256_BYTES)
        return ff_error(FF_EINVAL, "task: job_sha256 has %zu bytes, expected 32",
                        t->job_sha256.len);
    char hex[FF_SHA256_HEX];
    ff_hex(t->job_sha256.data, FF_SHA256_BYTES, hex);
    int found = 0;
    for (size_t i = 0; i < p->accepted_jobs.count && !found; i++)
        found = strcmp(p->accepted_jobs.items[i], hex) == 0;
    if (!found) {
        char list[3 * FF_SHA256_HEX] = "";
        for (size_t i = 0; i < p->accepted_jobs.count && i < 2; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     p->accepted_jobs.items[i]);
        return ff_error(FF_EPOLICY, "policy: job %s is not approved by this site (accepted_jobs: "
                        "%s%s); after review: fedfuse policy approve --policy POLICY --job %s",
                        hex, list[0] ? list : "none", p->accepted_jobs.count > 2 ? ", ..." : "",
                        hex);
    }
    return FF_OK;
}

int ff_policy_check(const ff_policy *p, const Fedfuse__Task *t, const ff_policy_record_dp *rec)
{
    if (t->phase == FEDFUSE__PHASE__PHASE_WAIT || t->phase == FEDFUSE__PHASE__PHASE_DONE)
        return FF_OK;
    int rc = ff_policy_check_job(p, t);
    if (rc != FF_OK)
        return rc;
    if (t->total_rounds > (uint64_t)p->max_rounds || t->round > (uint64_t)p->max_rounds)
        return ff_error(FF_EPOLICY, "policy: task asks for round %u of %u, max_rounds is %lld",
                        t->round, t->total_rounds, (long long)p->max_rounds);
    if (t->model_size > (uint64_t)p->max_model_bytes)
        return ff_error(FF_EPOLICY, "policy: model of %llu bytes exceeds max_model_bytes %lld",
                        (unsigned long long)t->model_size, (long long)p->max_model_bytes);
    int secagg = t->secagg && t->secagg->enabled;
    if (p->require_secagg && !secagg)
        return ff_error(FF_EPOLICY, "policy: secure aggregation is required but the task "
                        "does not enable it");
    return p->dp.required ? check_dp(p, t, rec) : FF_OK;
}

int ff_policy_check_secagg(const ff_policy *p, int64_t n_sites, int64_t t, int64_t neighbours)
{
    if (n_sites < p->secagg.min_sites)
        return ff_error(FF_EPOLICY, "policy: secure aggregation over %lld sites, "
                        "secure_aggregation.min_sites is %lld", (long long)n_sites,
                        (long long)p->secagg.min_sites);
    if (t < p->secagg.min_threshold)
        return ff_error(FF_EPOLICY, "policy: secure aggregation with threshold %lld, "
                        "secure_aggregation.min_threshold is %lld", (long long)t,
                        (long long)p->secagg.min_threshold);
    if (neighbours < p->secagg.min_neighbours)
        return ff_error(FF_EPOLICY, "policy: secure aggregation with %lld neighbours per site, "
                        "secure_aggregation.min_neighbours is %lld", (long long)neighbours,
                        (long long)p->secagg.min_neighbours);
    return FF_OK;
}

double ff_policy_record_budget(const ff_policy *p, double plan_budget)
{
    return p->dp.required ? FF_MIN(plan_budget, p->dp.max_epsilon) : plan_budget;
}
