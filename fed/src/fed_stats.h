/* Statistics jobs in the federation processes (not public; docs/statistics.md): the
 * coordinator's decoding of the secure sum (coord_stats.c) and the site's side of a
 * statistics task (client_stats.c). */
#ifndef FF_FED_STATS_H
#define FF_FED_STATS_H

#include "ff/stats.h"
#include "fed_internal.h"
#include "fed_secagg.h"

#define FED_JOB_STATISTICS "statistics"

typedef struct {
    ff_stats_query *q;
    char *text; /* the query file's bytes: the job hash covers them, sites get them */
    size_t len;
    char job_hex[FF_SHA256_HEX];
    char out_dir[FF_COORD_PATH_MAX];
    json_t *results, *suppressed, *refusals, *sites;
    json_t *per_site_declined; /* sites whose policy keeps their own results: {site, reason} */
    fed_audit *audit;
    int pooled; /* the pooled sum was decoded */
    ff_stats_dp dp; /* the query's noise (privacy:), as every site calibrates it */
} fed_stats;

/* Reads and checks cfg->query (errors name the config and the key), fills the job hash. */
int fed_stats_load(fed_stats *st, const ff_coord_config *cfg, const char *config_path) FF_WARN_UNUSED;
/* Hooks the engine (declines become refusals) and secure aggregation (the raw sum). */
int fed_stats_install(fed_stats *st, ff_coord *c, fed_secagg *sa, fed_audit *audit) FF_WARN_UNUSED;
/* Writes out_dir/stats.json and stats.html, and the audit log's `statistics` entry. */
int fed_stats_finish(fed_stats *st) FF_WARN_UNUSED;
void fed_stats_free(fed_stats *st);

/* The site's side (client_stats.c): the data is read on the first statistics task, the
 * query parsed once per job, the vector computed once per round (secure aggregation's
 * retries reuse it). */
typedef struct {
    ff_stats_table *table;
    ff_stats_query *q;
    char job[FF_SHA256_HEX];
    uint32_t *lanes; /* nlanes = ff_stats_lanes(q) + 1: the last lane is 1 (inputs counted) */
    size_t nlanes;
    int64_t round;
    ff_stats_site_report rep;
    char history[700];
    /* a query with privacy: its noise (for the task's threshold), the exact vector kept for
     * a release of the site's own, and the round whose lanes carry the noise share */
    ff_stats_dp dp;
    uint32_t *exact;
    int64_t noised_round;
} fed_site_stats;

/* The task's job against the site's policy: statistics enabled, the job approved and its hash
 * recomputed from the query bytes sent, secure aggregation on, the query parsed, its noise
 * (privacy:) against dp: and statistics.max_query_epsilon, every column allowed.
 * FF_EPOLICY / FF_ECONFIG with the reason. */
int fed_site_stats_check(fed_site_stats *s, const ff_policy *pol, const ff_fed_site_config *sc,
                         const Fedfuse__Task *t) FF_WARN_UNUSED;
/* The round's vector with the site's disclosure control (ff_stats_site_compute), once per
 * round; FF_EPOLICY when the query history refuses it. */
int fed_site_stats_compute(fed_site_stats *s, const ff_policy *pol, int64_t round) FF_WARN_UNUSED;
/* This site's own results for the evaluate phase, when the query asks for them and the
 * policy's statistics.per_site allows: the summary JSON {"n_examples", "loss": 0,
 * "statistics": {"results", "suppressed"}}, decoded here from the same suppressed vector, so
 * only released numbers leave (never the fine histograms behind the quartiles). *json = NULL
 * (FF_OK) when they are not to be released; caller frees with free(). */
int fed_site_stats_per_site(fed_site_stats *s, const ff_policy *pol, const char *site,
                            char **json) FF_WARN_UNUSED;
/* A query with privacy: this site's noise share added to the round's lanes, once per round
 * (retries send the same noised vector; never a second draw to average). Call only after
 * the round was charged to the site's ledger. FF_OK and nothing done without privacy. */
int fed_site_stats_noise(fed_site_stats *s, const char *site) FF_WARN_UNUSED;
/* 1 when the site's own results would be a noised release (to charge before it). */
int fed_site_stats_own_dp(const fed_site_stats *s, const ff_policy *pol);
/* The vector has left the site: its released cells go into the query history. */
int fed_site_stats_released(fed_site_stats *s, const ff_policy *pol) FF_WARN_UNUSED;
void fed_site_stats_free(fed_site_stats *s);

/* The statistics part of an audit log (audit.c). */
void fed_audit_statistics(fed_audit *a, json_t *data);

#endif
