/* A statistics job on the coordinator (docs/statistics.md): one round of the engine whose
 * "model" is the query's lane vector. Secure aggregation's phases carry the sites' integer
 * lanes; at the close of unmask the coordinator holds only their sum, which it decodes into
 * the released statistics. A site's refusal (policy, differencing) arrives as a decline and
 * is kept with its reason. */
#include <stdlib.h>
#include <string.h>

#include "fed_stats.h"

int fed_stats_load(fed_stats *st, const ff_coord_config *cfg, const char *config_path)
{
    memset(st, 0, sizeof *st);
    if (!cfg->secure_aggregation.enabled)
        return ff_cfg_error_at(FF_ECONFIG, config_path, "query", "a statistics job runs under "
                               "secure aggregation (secure_aggregation.enabled: true): the "
                               "coordinator must only see sums");
    int rc = ff_file_read_all(cfg->query, 1u << 20, &st->text, &st->len);
    if (rc != FF_OK)
        return ff_cfg_error_at(rc, config_path, "query", "%s", ff_error_message());
    rc = ff_stats_query_load_str(&st->q, cfg->query, st->text, st->len);
    if (rc == FF_OK)
        rc = ff_stats_job_hash(st->text, st->len, st->job_hex);
    /* the sites calibrate the same noise from the query and the threshold (dp.c) */
    if (rc == FF_OK)
        rc = ff_stats_dp_plan(st->q, cfg->secure_aggregation.threshold, &st->dp);
    if (rc != FF_OK && st->q)
        rc = ff_cfg_error_at(rc, config_path, "query", "%s", ff_error_message());
    ff_strlcpy(st->out_dir, cfg->out_dir, sizeof st->out_dir);
    st->results = json_array();
    st->suppressed = json_array();
    st->refusals = json_array();
    st->sites = json_array();
    st->per_site_declined = json_array();
    if (rc == FF_OK && (!st->results || !st->suppressed || !st->refusals || !st->sites))
        rc = ff_error(FF_ENOMEM, "statistics: out of memory");
    return rc;
}

/* The pooled sum of the sites that survived secure aggregation. */
static int on_sum(void *ud, ff_coord *c, const uint32_t *sum, size_t n, uint32_t inputs)
{
    fed_stats *st = ud;
    (void)c;
    if (n != ff_stats_lanes(st->q))
        return ff_error(FF_EINTERNAL, "statistics: %zu lanes summed, the query has %zu", n,
                        ff_stats_lanes(st->q));
    /* each site in the sum added a share of variance share_num / den */
    int rc = st->dp.on ? ff_stats_release_noised(st->q, sum, "pooled",
                                                 (double)inputs * (double)st->dp.share_num /
                                                     (double)st->dp.den,
                                                 st->dp.eps_pooled, st->dp.delta, st->results,
                                                 st->suppressed)
                       : ff_stats_release(st->q, sum, "pooled", st->results, st->suppressed);
    if (rc == FF_OK) {
        st->pooled = 1;
        FF_LOG_INFO("statistics: decoded the secure sum of %u sites: %zu numbers released, %zu "
                    "cells suppressed", inputs, json_array_size(st->results),
                    json_array_size(st->suppressed));
    }
    return rc;
}

static void on_event(void *ud, const ff_coord_event *ev)
{
    fed_stats *st = ud;
    if (ev->type == FF_EV_DECLINE && strcmp(ev->phase, FF_PHASE_EVALUATE) == 0) {
        FF_LOG_INFO("statistics: site %s keeps its own results: %s", ev->site, ev->detail);
        json_array_append_new(st->per_site_declined,
                              json_pack("{s:s, s:s}", "site", ev->site, "reason", ev->detail));
    } else if (ev->type == FF_EV_DECLINE) {
        json_array_append_new(st->refusals, json_pack("{s:s, s:s, s:s}", "site", ev->site,
                                                      "phase", ev->phase, "reason", ev->detail));
        FF_LOG_WARN("statistics: site %s refused the query: %s", ev->site, ev->detail);
    } else if (ev->type == FF_EV_PHASE_CLOSE && strcmp(ev->phase, FF_PHASE_MASKED) == 0) {
        json_array_clear(st->sites);
        const char *p = ev->detail;
        while (p && *p) { /* the sites whose input is in the sum */
            while (*p == ' ')
                p++;
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l)
                json_array_append_new(st->sites, json_stringn(p, l));
            p = e ? e + 1 : NULL;
        }
    }
}

/* Copies a site's released objects, each stamped with the site the coordinator
 * authenticated (whatever the site wrote there). */
static int take(json_t *dst, json_t *src, const char *site, const char *what)
{
    json_t *o;
    size_t i;
    if (!json_is_array(src))
        return ff_error(FF_EFORMAT, "statistics from %s: %s is not an array", site, what);
    json_array_foreach(src, i, o)
    {
        if (!json_is_object(o) || !json_is_string(json_object_get(o, "variable")) ||
            !json_is_string(json_object_get(o, "statistic")))
            return ff_error(FF_EFORMAT, "statistics from %s: %s[%zu] is not a statistic", site,
                            what, i);
    }
    json_array_foreach(src, i, o)
    {
        json_t *c = json_copy(o);
        json_object_set_new(c, "site", json_string(site));
        json_array_append_new(dst, c);
    }
    return FF_OK;
}

/* The evaluate phase of a statistics job: a site's own results, released by its policy
 * (decoded at the site from its suppressed vector: only released numbers arrive). */
static int on_site(void *ud, ff_coord *c, int site, const void *msg, size_t len)
{
    fed_stats *st = ud;
    const char *name = ff_coord_site_name(c, site);
    json_t *j = json_loadb(msg, len, 0, NULL), *s = json_object_get(j, "statistics");
    int rc = take(st->results, json_object_get(s, "results"), name, "results");
    if (rc == FF_OK)
        rc = take(st->suppressed, json_object_get(s, "suppressed"), name, "suppressed");
    json_decref(j);
    if (rc == FF_OK)
        FF_LOG_INFO("statistics: %s released its own results", name);
    return rc;
}

int fed_stats_install(fed_stats *st, ff_coord *c, fed_secagg *sa, fed_audit *audit)
{
    st->audit = audit && audit->log ? audit : NULL;
    sa->raw_sum = on_sum;
    sa->raw_ud = st;
    int rc = FF_OK;
    ff_coord_phase *ev = ff_coord_phase_find(c, FF_PHASE_EVALUATE);
    if (!ff_stats_query_per_site(st->q)) /* the evaluate phase has nothing to do */
        rc = ff_coord_phase_remove(c, FF_PHASE_EVALUATE);
    else if (ev) {
        ev->on_submit = on_site;
        ev->on_close = NULL;
        ev->ud = st;
    }
    if (rc == FF_OK)
        rc = ff_coord_add_hook(c, on_event, st);
    return rc;
}

/* The query's noise as stats.json and the audit log state it: what the pooled release cost
 * each site in it, and the per-site one (a site's own results carry their own epsilon). */
static json_t *privacy_of(const fed_stats *st)
{
    const ff_stats_dp *dp = &st->dp;
    if (!dp->on)
        return json_pack("{s:b, s:f, s:f}", "enabled", 0, "epsilon", 0.0, "delta", 0.0);
    return json_pack("{s:b, s:s, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:f}", "enabled", 1,
                     "mechanism", "distributed_discrete_gaussian", "epsilon", dp->eps_pooled,
                     "delta", dp->delta, "epsilon_declared", dp->epsilon,
                     "epsilon_per_site_release", dp->eps_site, "sigma", dp->sigma, "shares",
                     (json_int_t)dp->shares, "cells_per_patient", (json_int_t)dp->touched,
                     "share_variance", (double)dp->share_num / (double)dp->den);
}

int fed_stats_finish(fed_stats *st)
{
    json_t *priv = privacy_of(st);
    json_t *doc = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:f, s:f}", "query",
                            ff_stats_query_name(st->q), "job", st->job_hex, "sites", st->sites,
                            "results", st->results, "suppressed", st->suppressed, "refusals",
                            st->refusals, "per_site_declined", st->per_site_declined, "privacy",
                            priv, "epsilon", st->dp.eps_pooled, "delta", st->dp.delta);
    if (!doc) {
        json_decref(priv);
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    }
    if (st->audit)
        /* what was released and what was not (suppressed cells by name, never a value) */
        fed_audit_statistics(st->audit,
                             json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:f, s:f, s:O}",
                                       "query", ff_stats_query_name(st->q), "job_sha256",
                                       st->job_hex, "approved_by", st->sites, "released",
                                       st->results, "suppressed", st->suppressed, "refusals",
                                       st->refusals, "epsilon", st->dp.eps_pooled, "delta",
                                       st->dp.delta, "privacy", priv));
    int rc = st->pooled ? FF_OK
                        : ff_error(FF_ESTATE, "statistics: no pooled result (fewer sites than "
                                   "secure aggregation's threshold took part)");
    int wrc = ff_stats_write(st->out_dir, doc);
    json_decref(doc);
    json_decref(priv);
    if (wrc == FF_OK)
        FF_LOG_INFO("statistics: %s/stats.json and stats.html written (%zu released, %zu "
                    "suppressed, %zu refusals)", st->out_dir, json_array_size(st->results),
                    json_array_size(st->suppressed), json_array_size(st->refusals));
    return rc != FF_OK ? rc : wrc;
}

void fed_stats_free(fed_stats *st)
{
    ff_stats_query_free(st->q);
    free(st->text);
    json_decref(st->results);
    json_decref(st->suppressed);
    json_decref(st->refusals);
    json_decref(st->sites);
    json_decref(st->per_site_declined);
    memset(st, 0, sizeof *st);
}
