/* The coordinator's round statistics for its Prometheus endpoint, from the engine's events:
 * rounds completed, the open phase and its age, per phase how many sites answered, dropped
 * out, were refused or declined, quorum failures and secure-aggregation recoveries (a site
 * that dropped out after sharing its keys, whose mask the survivors' shares removed). */
#include <stddef.h>
#include <string.h>

#include "fed_internal.h"
#include "fed_metrics.h"

static size_t phase_slot(fed_coord_stats *st, const char *name)
{
    for (size_t i = 0; i < st->nph; i++)
        if (strcmp(st->ph[i].name, name) == 0)
            return i;
    if (st->nph == FED_METRICS_PHASES)
        return FED_METRICS_PHASES - 1; /* more phases than any round has: share the last */
    ff_strlcpy(st->ph[st->nph].name, name, sizeof st->ph[0].name);
    return st->nph++;
}

void fed_coord_stats_hook(void *ud, const ff_coord_event *ev)
{
    fed_coord_stats *st = ud;
    size_t i = ev->phase && ev->phase[0] ? phase_slot(st, ev->phase) : FED_METRICS_PHASES;
    switch (ev->type) {
    case FF_EV_SITES_SELECTED:
        st->selected = ev->count;
        break;
    case FF_EV_PHASE_OPEN:
        ff_strlcpy(st->phase, ev->phase, sizeof st->phase);
        st->phase_opened = ff_wall_time();
        if (i < FED_METRICS_PHASES)
            st->ph[i].opened++;
        break;
    case FF_EV_PHASE_CLOSE:
        if (i < FED_METRICS_PHASES)
            st->ph[i].answered += (uint64_t)(ev->count > 0 ? ev->count : 0);
        break;
    case FF_EV_DROPOUT:
        if (i < FED_METRICS_PHASES)
            st->ph[i].dropouts++;
        if (strcmp(ev->phase, FF_PHASE_MASKED) == 0 || strcmp(ev->phase, FF_PHASE_CHECK) == 0 ||
            strcmp(ev->phase, FF_PHASE_UNMASK) == 0)
            st->secagg_recoveries++;
        break;
    case FF_EV_REFUSAL:
        if (i < FED_METRICS_PHASES)
            st->ph[i].refusals++;
        break;
    case FF_EV_DECLINE:
        if (i < FED_METRICS_PHASES)
            st->ph[i].declines++;
        break;
    case FF_EV_QUORUM_FAIL:
        st->quorum_failures++;
        break;
    case FF_EV_ROUND_END:
        st->rounds_completed = ev->round;
        break;
    default:
        break;
    }
}

static void per_phase(const fed_coord_stats *st, ff_sbuf *b, const char *name,
                      const char *help, size_t field)
{
    fed_metrics_family(b, name, "counter", help);
    for (size_t i = 0; i < st->nph; i++) {
        uint64_t v; /* the counter at offset `field` of the phase's stats */
        memcpy(&v, (const char *)&st->ph[i] + field, sizeof v);
        ff_sbuf_printf(b, "%s{phase=\"%s\"} %llu\n", name, st->ph[i].name,
                       (unsigned long long)v);
    }
}

#define PH_OFF(f) offsetof(fed_phase_stats, f)

void fed_coord_stats_render(const fed_coord_stats *st, ff_sbuf *b)
{
    double now = ff_wall_time();
    fed_metrics_family(b, "fedfuse_rounds_completed_total", "counter",
                       "Federated rounds completed (the number of the last round that ended).");
    ff_sbuf_printf(b, "fedfuse_rounds_completed_total %lld\n", (long long)st->rounds_completed);
    fed_metrics_family(b, "fedfuse_phase", "gauge", "The open phase of the round (1 for it).");
    ff_sbuf_printf(b, "fedfuse_phase{phase=\"%s\"} 1\n", st->phase[0] ? st->phase : "none");
    fed_metrics_family(b, "fedfuse_phase_age_seconds", "gauge", "Seconds since the open phase opened.");
    ff_sbuf_printf(b, "fedfuse_phase_age_seconds %.3f\n",
                   st->phase_opened > 0 ? now - st->phase_opened : 0.0);
    fed_metrics_family(b, "fedfuse_sites_selected", "gauge", "Sites selected for the round in progress.");
    ff_sbuf_printf(b, "fedfuse_sites_selected %lld\n", (long long)st->selected);
    per_phase(st, b, "fedfuse_phase_opened_total", "Times each phase opened.", PH_OFF(opened));
    per_phase(st, b, "fedfuse_phase_sites_answered_total", "Sites that answered each phase.",
              PH_OFF(answered));
    per_phase(st, b, "fedfuse_phase_sites_failed_total",
              "Sites expected in a phase that did not answer by its deadline.", PH_OFF(dropouts));
    per_phase(st, b, "fedfuse_phase_sites_refused_total", "Submissions refused in each phase.",
              PH_OFF(refusals));
    per_phase(st, b, "fedfuse_phase_sites_declined_total",
              "Sites that declined their task (their policy or budget) in each phase.",
              PH_OFF(declines));
    fed_metrics_family(b, "fedfuse_quorum_failures_total", "counter",
                       "Collect phases that closed with fewer answers than the quorum.");
    ff_sbuf_printf(b, "fedfuse_quorum_failures_total %llu\n",
                   (unsigned long long)st->quorum_failures);
    fed_metrics_family(b, "fedfuse_secagg_recoveries_total", "counter",
                       "Sites that dropped out after sharing their keys; the survivors' shares "
                       "removed their masks.");
    ff_sbuf_printf(b, "fedfuse_secagg_recoveries_total %llu\n",
                   (unsigned long long)st->secagg_recoveries);
    fed_metrics_family(b, "fedfuse_process_start_time_seconds", "gauge",
                       "Unix time the process started.");
    ff_sbuf_printf(b, "fedfuse_process_start_time_seconds %.3f\n", st->started);
}
