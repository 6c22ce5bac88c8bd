/* A node's Prometheus metrics endpoint (not public): GET /metrics on the configured address,
 * text format 0.0.4, rendered on each scrape by the node's callback (docs/operations.md,
 * "Metrics"). */
#ifndef FF_FED_METRICS_H
#define FF_FED_METRICS_H

#include "ff/common.h"
#include "ff/coordinator.h"

/* Scrapes are written into an ff_sbuf; out of memory (oom) gets a 500. */
/* "# HELP name help" and "# TYPE name type" */
void fed_metrics_family(ff_sbuf *b, const char *name, const char *type, const char *help);
/* process_resident_memory_bytes and process_virtual_memory_bytes from /proc/self/statm */
void fed_metrics_process(ff_sbuf *b);

/* Called on the endpoint's thread for each scrape; takes the node's own locks. */
typedef void (*fed_metrics_render)(void *ud, ff_sbuf *b);

typedef struct fed_metrics fed_metrics;
/* Listens on addr ("host:port", or "port" for 127.0.0.1:port; port 0 picks one, logged). */
int fed_metrics_start(fed_metrics **out, const char *addr, fed_metrics_render render,
                      void *ud) FF_WARN_UNUSED;
void fed_metrics_stop(fed_metrics *m);

/* ---- the coordinator's round statistics, kept by an engine hook (under the node's lock) ---- */

#define FED_METRICS_PHASES 16
typedef struct {
    char name[32];
    uint64_t opened, answered, dropouts, refusals, declines;
} fed_phase_stats;

typedef struct {
    double started;            /* wall time the process started */
    int64_t rounds_completed;  /* the last round that ended (its number) */
    int64_t selected;          /* sites selected for the round in progress */
    char phase[32];            /* the open phase ("" between phases) */
    double phase_opened;       /* wall time it opened */
    uint64_t quorum_failures, secagg_recoveries;
    fed_phase_stats ph[FED_METRICS_PHASES];
    size_t nph;
} fed_coord_stats;

/* An ff_coord_hook (ud = fed_coord_stats). */
void fed_coord_stats_hook(void *ud, const ff_coord_event *ev);
/* The families of st: rounds, phase and its age, per-phase sites, recoveries. */
void fed_coord_stats_render(const fed_coord_stats *st, ff_sbuf *b);

#endif
