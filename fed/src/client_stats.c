/* A statistics task at a hospital (docs/statistics.md): the site's own policy decides, the
 * site's disclosure control runs here, and only integer lanes with suppressed cells zeroed
 * leave, masked by secure aggregation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "fed_stats.h"

static ff_stats_policy policy_of(const fed_site_stats *s, const ff_policy *pol)
{
    const ff_cfg_strlist *v = &pol->statistics.variables;
    int all = 0;
    for (size_t i = 0; i < v->count; i++)
        all |= strcmp(v->items[i], "*") == 0;
    ff_stats_policy p = {.min_cell = pol->statistics.min_cell_size, .allow_all = all,
                         .allowed = (const char *const *)v->items, .nallowed = v->count,
                         .per_site = pol->statistics.per_site, .history = s->history};
    return p;
}

/* 1 when this site will release its own results for the query. */
static int releases_own(const fed_site_stats *s, const ff_policy *pol)
{
    return ff_stats_query_per_site(s->q) && pol->statistics.per_site;
}

/* The query's noise against the policy: calibrated for the task's threshold (the fewest
 * noise shares a decoded sum holds), then dp: (with dp.required a query without noise is
 * refused like a training task without DP; the noise is record-level, patient-level DP at
 * this site, so it meets dp.level any or record), and statistics.max_query_epsilon on what
 * the whole query costs this site. */
static int site_dp(fed_site_stats *s, const ff_policy *pol, const Fedfuse__Task *t)
{
    int64_t shares = t->secagg->threshold ? (int64_t)t->secagg->threshold : 1;
    int rc = FF_OK;
    if (!s->dp.on || s->dp.shares != shares)
        rc = ff_stats_dp_plan(s->q, shares, &s->dp);
    if (rc != FF_OK)
        return ff_error_prefix(FF_EPOLICY, "statistics: ");
    ff_policy_record_dp rec = {.enabled = s->dp.on, .epsilon_budget = s->dp.epsilon,
                               .delta = s->dp.delta,
                               .noise_multiplier = s->dp.sigma / sqrt((double)s->dp.touched),
                               .clip_norm = sqrt((double)s->dp.touched)};
    rc = ff_policy_check(pol, t, s->dp.on ? &rec : NULL);
    if (rc != FF_OK && !s->dp.on && pol->dp.required)
        return ff_error_prefix(rc, "statistics: the query adds no noise (no privacy: section): ");
    if (rc != FF_OK || !s->dp.on)
        return rc;
    if (s->dp.delta > pol->dp.max_delta)
        return ff_error(FF_EPOLICY, "policy: the query's privacy.delta %g exceeds dp.max_delta %g",
                        s->dp.delta, pol->dp.max_delta);
    double cost;
    rc = ff_stats_dp_cost(&s->dp, releases_own(s, pol), &cost);
    if (rc == FF_OK && cost > pol->statistics.max_query_epsilon)
        rc = ff_error(FF_EPOLICY, "policy: the query would cost this site epsilon %.4g%s, above "
                      "statistics.max_query_epsilon %g", cost,
                      releases_own(s, pol) ? " (pooled and its own results)" : "",
                      pol->statistics.max_query_epsilon);
    return rc;
}

int fed_site_stats_check(fed_site_stats *s, const ff_policy *pol, const ff_fed_site_config *sc,
                         const Fedfuse__Task *t)
{
    if (!pol->statistics.enabled)
        return ff_error(FF_EPOLICY, "policy: statistics jobs are not enabled at this site "
                        "(statistics.enabled)");
    int rc = ff_policy_check_job(pol, t);
    if (rc != FF_OK)
        return rc;
    if (!t->secagg || !t->secagg->enabled)
        return ff_error(FF_EPOLICY, "policy: a statistics task without secure aggregation");
    char sent[FF_SHA256_HEX] = "", mine[FF_SHA256_HEX];
    if (t->job_sha256.len == FF_SHA256_BYTES)
        ff_hex(t->job_sha256.data, FF_SHA256_BYTES, sent);
    if (t->plan_yaml.len > FF_FED_TASK_PLAN_MAX)
        return ff_error(FF_EPOLICY, "statistics: the query has %zu bytes (at most %u)",
                        t->plan_yaml.len, FF_FED_TASK_PLAN_MAX);
    rc = ff_stats_job_hash(t->plan_yaml.data, t->plan_yaml.len, mine);
    if (rc == FF_OK && strcmp(sent, mine) != 0)
        rc = ff_error(FF_EPOLICY, "statistics: the query sent hashes to job %s, the task claims "
                      "%s", mine, sent);
    if (rc == FF_OK && strcmp(s->job, mine) != 0) {
        ff_stats_query_free(s->q);
        s->q = NULL;
        s->job[0] = '\0';
        s->round = 0;
        s->noised_round = 0;
        memset(&s->dp, 0, sizeof s->dp);
        rc = ff_stats_query_load_str(&s->q, "(the task's query)", (const char *)t->plan_yaml.data,
                                     t->plan_yaml.len);
        if (rc == FF_OK)
            ff_strlcpy(s->job, mine, sizeof s->job);
    }
    if (rc == FF_OK && !s->table) {
        snprintf(s->history, sizeof s->history, "%s/stats-history-%s.json", sc->out_dir, sc->site);
        rc = ff_mkdir_p(sc->out_dir, 0700);
        if (rc == FF_OK)
            rc = ff_stats_table_load(&s->table, sc->data);
    }
    if (rc == FF_OK)
        rc = site_dp(s, pol, t);
    if (rc == FF_OK) {
        ff_stats_policy p = policy_of(s, pol);
        rc = ff_stats_policy_check(s->q, &p);
    }
    return rc;
}

int fed_site_stats_compute(fed_site_stats *s, const ff_policy *pol, int64_t round)
{
    if (s->lanes && s->round == round)
        return FF_OK;
    free(s->lanes);
    s->nlanes = ff_stats_lanes(s->q) + 1;
    s->lanes = calloc(s->nlanes, sizeof *s->lanes);
    if (!s->lanes)
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    ff_stats_policy p = policy_of(s, pol);
    int rc = ff_stats_site_compute(s->q, s->table, &p, s->lanes, &s->rep);
    if (rc != FF_OK) {
        free(s->lanes);
        s->lanes = NULL;
        return rc;
    }
    s->lanes[s->nlanes - 1] = 1;
    s->round = round;
    s->noised_round = 0;
    free(s->exact);
    s->exact = malloc(s->nlanes * sizeof *s->exact);
    if (!s->exact)
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    memcpy(s->exact, s->lanes, s->nlanes * sizeof *s->exact);
    FF_LOG_INFO("statistics %s: %zu of %zu patients in the cohort; %zu cells suppressed below "
                "the minimum cell size %lld, %zu more to protect them", ff_stats_query_name(s->q),
                s->rep.cohort, s->rep.rows, s->rep.primary, (long long)p.min_cell,
                s->rep.complementary);
    return FF_OK;
}

/* A generator only this site knows (the OS's), or the test hook's fixed seed. */
static int noise_rng(const fed_site_stats *s, const char *site, int per_site, ff_rng *rng)
{
    uint64_t seed[2];
    if (fed_test_noise_seed(&seed[0])) {
        seed[1] = (uint64_t)ff_fnv1a32(site, strlen(site)) << 1 | (uint64_t)per_site;
    } else if (RAND_bytes((unsigned char *)seed, sizeof seed) != 1) {
        return ff_error(FF_ECRYPTO, "statistics: the OS random generator failed");
    }
    (void)s;
    ff_rng_init(rng, seed[0], seed[1]);
    ff_secure_zero(seed, sizeof seed);
    return FF_OK;
}

int fed_site_stats_noise(fed_site_stats *s, const char *site)
{
    if (!s->dp.on || s->noised_round == s->round)
        return FF_OK;
    ff_rng rng;
    int rc = noise_rng(s, site, 0, &rng);
    if (rc == FF_OK)
        rc = ff_stats_dp_noise(s->q, &s->dp, 0, &rng, s->lanes);
    ff_secure_zero(&rng, sizeof rng);
    if (rc == FF_OK) {
        s->noised_round = s->round;
        FF_LOG_INFO("statistics %s: noise share added to %zu lanes (pooled sigma %.4g per unit "
                    "of sensitivity over %lld shares, %lld cells per patient): epsilon %.4g, "
                    "delta %g", ff_stats_query_name(s->q), s->nlanes - 1, s->dp.sigma,
                    (long long)s->dp.shares, (long long)s->dp.touched, s->dp.eps_pooled,
                    s->dp.delta);
    }
    return rc;
}

int fed_site_stats_own_dp(const fed_site_stats *s, const ff_policy *pol)
{
    return s->q && s->exact && s->dp.on && releases_own(s, pol);
}

int fed_site_stats_per_site(fed_site_stats *s, const ff_policy *pol, const char *site,
                            char **json)
{
    *json = NULL;
    if (!s->q || !s->lanes || !releases_own(s, pol))
        return FF_OK;
    json_t *res = json_array(), *sup = json_array();
    uint32_t *own = s->lanes;
    int rc = FF_OK;
    if (s->dp.on) {
        /* the share in s->lanes is too little noise for a release of its own: full noise on
         * the exact vector, drawn afresh (charged by the caller before this) */
        own = s->exact ? malloc(s->nlanes * sizeof *own) : NULL;
        ff_rng rng;
        rc = own ? noise_rng(s, site, 1, &rng) : ff_error(FF_ENOMEM, "statistics: out of memory");
        if (rc == FF_OK) {
            memcpy(own, s->exact, s->nlanes * sizeof *own);
            rc = ff_stats_dp_noise(s->q, &s->dp, 1, &rng, own);
        }
        ff_secure_zero(&rng, sizeof rng);
    }
    if (rc == FF_OK)
        rc = s->dp.on ? ff_stats_release_noised(s->q, own, site,
                                                 (double)s->dp.site_num / (double)s->dp.den,
                                                 s->dp.eps_site, s->dp.delta, res, sup)
                      : ff_stats_release(s->q, own, site, res, sup);
    if (own != s->lanes) {
        if (own)
            ff_secure_zero(own, s->nlanes * sizeof *own);
        free(own);
    }
    json_t *j = rc == FF_OK ? json_pack("{s:I, s:f, s:{s:O, s:O}}", "n_examples",
                                        (json_int_t)s->rep.cohort, "loss", 0.0, "statistics",
                                        "results", res, "suppressed", sup)
                            : NULL;
    if (rc == FF_OK && !(j && (*json = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)))))
        rc = ff_error(FF_ENOMEM, "statistics: out of memory");
    json_decref(j);
    json_decref(res);
    json_decref(sup);
    return rc;
}

int fed_site_stats_released(fed_site_stats *s, const ff_policy *pol)
{
    ff_stats_policy p = policy_of(s, pol);
    return ff_stats_history_record(s->q, s->table, &p);
}

void fed_site_stats_free(fed_site_stats *s)
{
    ff_stats_table_free(s->table);
    ff_stats_query_free(s->q);
    free(s->lanes);
    if (s->exact)
        ff_secure_zero(s->exact, s->nlanes * sizeof *s->exact);
    free(s->exact);
    memset(s, 0, sizeof *s);
}
