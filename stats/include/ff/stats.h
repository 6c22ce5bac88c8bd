/*
 * ff/stats.h — federated statistics and cohort discovery (docs/statistics.md): the query
 * language (a YAML file hashed into the job like a training plan), what a site computes from
 * its own rows, the site's disclosure control (minimum cell size with complementary
 * suppression, allowed variables, refusal of queries that difference out a small cell), and
 * the coordinator's decoding of the (securely) summed vector into released statistics.
 *
 *     ff_stats_query *q;
 *     ff_stats_query_load(&q, "configs/stats-demo.yaml");       // FILE:LINE:COL errors
 *     size_t n = ff_stats_lanes(q);                              // uint32 lanes per site
 *     // at each site:
 *     ff_stats_table *t;
 *     ff_stats_table_load(&t, "demo-data/site-1");               // patients.csv or a CSV file
 *     ff_stats_policy pol = {.min_cell = 5, .allow_all = 1};
 *     uint32_t *lanes = calloc(n, 4);
 *     ff_stats_site_compute(q, t, &pol, lanes, NULL);            // suppressed cells are 0
 *     // the coordinator receives Σ lanes over the sites (secure aggregation), then:
 *     json_t *res = json_array(), *sup = json_array();
 *     ff_stats_release(q, sum, "pooled", res, sup);              // {variable, statistic, ...}
 *
 * Every number a site sends is an integer lane (counts; fixed-point sums split into 16-bit
 * limbs), so sums over sites are exact modulo 2^32 per lane; a cell a site suppressed is sent
 * as 0 with its flag lane set to 1, and a pooled cell is released only when no site flagged it.
 */
#ifndef FF_STATS_H
#define FF_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ff/common.h"
#include "ff/privacy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the query -------------------------------------------------------------------------- */

typedef struct ff_stats_query ff_stats_query;

/* Parses and checks a query (FF_ECONFIG "NAME:LINE:COL: key: why"). *q is NULL on error;
 * free with ff_stats_query_free. */
int ff_stats_query_load(ff_stats_query **q, const char *path) FF_WARN_UNUSED;
int ff_stats_query_load_str(ff_stats_query **q, const char *name, const char *yaml,
                            size_t len) FF_WARN_UNUSED;
void ff_stats_query_free(ff_stats_query *q);
/* The query's name (its `name:` key). */
const char *ff_stats_query_name(const ff_stats_query *q);
/* Whether the query asks for per-site results as well as pooled ones (`per_site: true`). */
int ff_stats_query_per_site(const ff_stats_query *q);
/* The columns the query reads (filters, variables, crosstabs, survival), each once, in
 * order of first use: what a site's policy must allow. */
size_t ff_stats_query_ncolumns(const ff_stats_query *q);
const char *ff_stats_query_column(const ff_stats_query *q, size_t i);

/* Job hash of a statistics job: SHA-256("fedfuse-statistics-v1\n" || query bytes), hex. A
 * site approves it in accepted_jobs like a training job's; the prefix keeps the two kinds
 * apart (a query text can never be taken for a training plan's hash). */
int ff_stats_job_hash(const void *yaml, size_t len, char hex[FF_SHA256_HEX]) FF_WARN_UNUSED;

/* Number of uint32 lanes of one site's vector for this query. */
size_t ff_stats_lanes(const ff_stats_query *q);

/* ---- a site's rows ---------------------------------------------------------------------- */

typedef struct ff_stats_table ff_stats_table;

/* Loads a site's rows: a site folder (patients.csv, and events.csv when present, docs/data.md)
 * or a CSV file with a header (e.g. a FLamby centre file). Every column is kept as text; a
 * variable reads it as a number where it parses, an empty cell (or NA) is missing. */
int ff_stats_table_load(ff_stats_table **t, const char *path) FF_WARN_UNUSED;
void ff_stats_table_free(ff_stats_table *t);
size_t ff_stats_table_rows(const ff_stats_table *t);

/* ---- a site's disclosure control --------------------------------------------------------- */

/* The `statistics:` section of a site policy (docs/statistics.md). */
typedef struct {
    int64_t min_cell;          /* any count below it (but > 0) is suppressed */
    int allow_all;             /* variables: ["*"] */
    const char *const *allowed; /* columns the site lets be queried (when !allow_all) */
    size_t nallowed;
    int per_site;              /* the site releases its own (suppressed) results */
    const char *history;       /* durable query history file ("" / NULL = no differencing check) */
} ff_stats_policy;

/* What a site computed, for its log and receipt: cells suppressed (primary: below min_cell;
 * complementary: to protect a primary one within the same table). */
typedef struct {
    size_t rows, cohort;
    size_t primary, complementary;
} ff_stats_site_report;

/* The policy's checks of the query alone: every column allowed. FF_EPOLICY naming the first
 * column the policy does not allow. */
int ff_stats_policy_check(const ff_stats_query *q, const ff_stats_policy *p) FF_WARN_UNUSED;

/* Computes the site's vector (ff_stats_lanes(q) lanes) with disclosure control applied:
 * suppressed cells are 0 with their flag lane 1. Checks the policy first, then (with a
 * history file) refuses a query one of whose released cells differs from a cell released
 * before by fewer than min_cell patients (but at least one): FF_EPOLICY with the reason,
 * lanes untouched. Nothing is written. rep may be NULL. */
int ff_stats_site_compute(const ff_stats_query *q, const ff_stats_table *t,
                          const ff_stats_policy *p, uint32_t *lanes,
                          ff_stats_site_report *rep) FF_WARN_UNUSED;
/* Appends this query's released cells (as sets of row fingerprints) to the history file
 * (atomic rewrite): call once the vector has left the site. */
int ff_stats_history_record(const ff_stats_query *q, const ff_stats_table *t,
                            const ff_stats_policy *p) FF_WARN_UNUSED;

/* ---- differential privacy (the query's privacy: section) --------------------------------- */

/* The noise of a query with privacy (docs/statistics.md, "Noise"), the same at every site and
 * at the coordinator: derived from the query and t, the number of noise shares any decoded
 * sum holds (secure aggregation's threshold). Lane j's noise has variance sens_j² num / den. */
typedef struct {
    int on;                 /* the query has privacy: (else all zero) */
    double epsilon, delta;  /* declared: the pooled release's (ε, δ) */
    int64_t touched;        /* m: cells one patient can change (L2 sensitivity √m, scaled) */
    int64_t shares;         /* t */
    double sigma;           /* noise std of the pooled sum per unit of sensitivity */
    uint64_t den, share_num, site_num; /* per-site share σ²/t and full σ², as num / den */
    double eps_pooled;      /* ε (at delta) the pooled release costs each site: <= epsilon */
    double eps_site;        /* ε (at delta) a site's own noised results cost it */
} ff_stats_dp;

/* 1 when the query declares privacy (noise on every released number). */
int ff_stats_query_private(const ff_stats_query *q);
/* Calibrates σ for t shares (bisection on KLS21's bound; see dp.c). With no privacy section
 * dp->on = 0 and FF_OK. FF_ECONFIG when ε cannot be reached or a sensitivity needs noise
 * beyond the sampler's range. */
int ff_stats_dp_plan(const ff_stats_query *q, int64_t shares, ff_stats_dp *dp) FF_WARN_UNUSED;
/* Adds the site's noise to its lanes (ff_stats_lanes(q) of them; suppressed cells stay 0):
 * a share of the pooled noise, or (per_site) the full noise of a release of its own. rng
 * must be private to the site. FF_OK and nothing done when !dp->on. */
int ff_stats_dp_noise(const ff_stats_query *q, const ff_stats_dp *dp, int per_site, ff_rng *rng,
                      uint32_t *lanes) FF_WARN_UNUSED;
/* ε (at delta) the whole query costs a site: the pooled release, composed with its own
 * results' when per_site (what statistics.max_query_epsilon caps). */
int ff_stats_dp_cost(const ff_stats_dp *dp, int per_site, double *eps) FF_WARN_UNUSED;
/* The record-level ledger round of one release (pooled: the distributed discrete Gaussian of
 * `shares` survivors of `sites`; per_site: the Gaussian mechanism), for
 * ff_privacy_ledger_record: its ε at delta is eps_pooled or eps_site. */
void ff_stats_dp_round(const ff_stats_dp *dp, int per_site, int64_t round, int64_t sites,
                       ff_privacy_round *r);

/* ---- the coordinator's side ------------------------------------------------------------- */

/* Decodes a vector (one site's, or the sum over sites) into released statistics appended to
 * results: objects {variable, statistic, site, value[, bound][, bin|row|col|time...]}, and the
 * names of suppressed cells appended to suppressed: {variable, statistic, site, cell}. A
 * pooled cell that any site suppressed is not released. */
int ff_stats_release(const ff_stats_query *q, const uint32_t *lanes, const char *site,
                     json_t *results, json_t *suppressed) FF_WARN_UNUSED;
/* The same for a noised vector: var is the total noise variance per unit of sensitivity in
 * it (inputs × share σ², or σ² for a site's own), eps/delta what its release cost. Counts
 * decode as signed; counts, sums and means carry `bound` (|noise| <= bound except with
 * probability 2 exp(-z²/2) ≈ 5.5e-7 per number, z = 5.5, the discrete Gaussian being
 * sub-Gaussian), every object `epsilon` and `delta`. Derived numbers (var, sd, quantiles,
 * Kaplan-Meier) are post-processing of the noised cells (docs/statistics.md). */
int ff_stats_release_noised(const ff_stats_query *q, const uint32_t *lanes, const char *site,
                            double var, double eps, double delta, json_t *results,
                            json_t *suppressed) FF_WARN_UNUSED;

/* Writes out_dir/stats.json ({"query", "job", "results", "suppressed", "refusals"}) and
 * out_dir/stats.html (tables, histograms, Kaplan–Meier curves) from a stats document. */
int ff_stats_write(const char *out_dir, json_t *doc) FF_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
