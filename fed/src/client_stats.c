/* A statistics task at a hospital (docs/statistics.md): the site's own policy decides, the
 * site's disclosure control runs here, and only integer lanes with suppressed cells zeroed
 * leave, masked by secure aggregation. */
#include <stdlib.h>
#include <string.h>

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

int fed_site_stats_check(fed_site_stats *s, const ff_policy *pol, const ff_fed_site_config *sc,
                         const Fedfuse__Task *t)
{
    if (!pol->statistics.enabled)
        return ff_error(FF_EPOLICY, "policy: statistics jobs are not enabled at this site "
                        "(statistics.enabled)");
    int rc = ff_policy_check(pol, t, NULL);
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
    FF_LOG_INFO("statistics %s: %zu of %zu patients in the cohort; %zu cells suppressed below "
                "the minimum cell size %lld, %zu more to protect them", ff_stats_query_name(s->q),
                s->rep.cohort, s->rep.rows, s->rep.primary, (long long)p.min_cell,
                s->rep.complementary);
    return FF_OK;
}

int fed_site_stats_per_site(fed_site_stats *s, const ff_policy *pol, const char *site,
                            char **json)
{
    *json = NULL;
    if (!s->q || !s->lanes || !ff_stats_query_per_site(s->q) || !pol->statistics.per_site)
        return FF_OK;
    json_t *res = json_array(), *sup = json_array();
    int rc = ff_stats_release(s->q, s->lanes, site, res, sup);
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
    memset(s, 0, sizeof *s);
}
