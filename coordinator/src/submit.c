/* Submissions from sites: the checks every message goes through (site, round, attempt,
 * phase, deadline, selection, duplicate), then the checks of its kind, and refusals that are
 * counted, reported to the hooks and logged with the site name. */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const refusal_names[FF_REFUSE_COUNT] = {
    "none", "unknown site", "not selected", "stale round", "wrong phase", "late",
    "duplicate", "wrong size", "non-finite values", "bad example count", "rejected",
};

const char *ff_refusal_name(int reason)
{
    if (reason < 0 || reason >= FF_REFUSE_COUNT)
        return "?";
    return refusal_names[reason];
}

int ff_coord_update_check(const float *update, size_t n, size_t expected, double weight,
                        size_t *bad_index)
{
    if (n != expected)
        return FF_REFUSE_WRONG_SIZE;
    for (size_t j = 0; j < n; j++) {
        if (!isfinite(update[j])) {
            if (bad_index)
                *bad_index = j;
            return FF_REFUSE_NONFINITE;
        }
    }
    if (!isfinite(weight) || !(weight > 0))
        return FF_REFUSE_BAD_WEIGHT;
    return FF_REFUSE_NONE;
}

static int refuse(ff_coord *c, const char *phase, int site_idx, const char *site, int64_t round,
                  int reason, const char *detail, int *reason_out)
{
    char detail_copy[256]; /* detail may be the error buffer that ff_error rewrites */
    ff_strlcpy(detail_copy, detail, sizeof detail_copy);
    detail = detail_copy;
    c->refusals[reason]++;
    c->r_refusals++;
    if (reason_out)
        *reason_out = reason;
    const char *name = site_idx >= 0 ? c->names[site_idx] : site;
    coord_emit(c, FF_EV_REFUSAL, phase, name, reason, (int64_t)round, NULL, detail);
    FF_LOG_WARN("refused %s submission from site '%s' for round %lld: %s%s%s", phase, name,
                (long long)round, ff_refusal_name(reason), detail[0] ? " — " : "", detail);
    return ff_error(FF_EPOLICY, "site '%s': %s submission for round %lld refused: %s%s%s", name,
                    phase, (long long)round, ff_refusal_name(reason), detail[0] ? " — " : "",
                    detail);
}

static int site_index(const ff_coord *c, const char *site)
{
    for (size_t i = 0; i < c->nsites; i++)
        if (strcmp(c->names[i], site) == 0)
            return (int)i;
    return -1;
}

/* The checks common to every submission: site, round, attempt, phase, deadline, selection,
 * duplicate. Returns the site index, or < 0 after refusing. */
static int admit(ff_coord *c, const char *phase, const char *site, int64_t round,
                 int64_t attempt, int *reason)
{
    char d[160] = "";
    int s = site_index(c, site ? site : "");
    if (s < 0)
        return refuse(c, phase, -1, site ? site : "(null)", round, FF_REFUSE_UNKNOWN_SITE,
                      "not a site of this consortium", reason);
    if (c->state != FF_COORD_IN_ROUND || round != c->round || (attempt >= 0 && attempt != c->attempt)) {
        snprintf(d, sizeof d, "the current round is %lld attempt %lld%s", (long long)c->round,
                 (long long)c->attempt, c->state == FF_COORD_IN_ROUND ? "" : " (no round open)");
        return refuse(c, phase, s, site, round, FF_REFUSE_STALE_ROUND, d, reason);
    }
    int at = coord_find_phase(c, phase);
    if (at < 0 || (size_t)at != c->phase_idx) {
        int late = at >= 0 && (size_t)at < c->phase_idx;
        snprintf(d, sizeof d, "phase %s is %s; the open phase is %s", phase,
                 late ? "closed" : "not open", c->phases[c->phase_idx].def.name);
        return refuse(c, phase, s, site, round, late ? FF_REFUSE_LATE : FF_REFUSE_WRONG_PHASE, d,
                      reason);
    }
    double t = coord_now(c);
    if (t >= c->phase_deadline) {
        snprintf(d, sizeof d, "arrived %.3f s after the deadline", t - c->phase_deadline);
        return refuse(c, phase, s, site, round, FF_REFUSE_LATE, d, reason);
    }
    if (!c->expected[s])
        return refuse(c, phase, s, site, round, FF_REFUSE_NOT_SELECTED,
                      "this site is not expected in this phase", reason);
    if (c->done[s])
        return refuse(c, phase, s, site, round, FF_REFUSE_DUPLICATE,
                      "this site already answered this phase", reason);
    return s;
}

static void accepted(ff_coord *c, int s)
{
    c->done[s] = 1;
    c->ndone++;
}

int ff_coord_submit_update_ex(ff_coord *c, const char *site, int64_t round, int64_t attempt,
                              const float *update, size_t n, double n_examples, int *reason)
{
    if (reason)
        *reason = FF_REFUSE_NONE;
    int s = admit(c, FF_PHASE_TRAIN, site, round, attempt, reason);
    if (s < 0)
        return s;
    size_t bad = 0;
    int why = update ? ff_coord_update_check(update, n, c->n, n_examples, &bad) : FF_REFUSE_WRONG_SIZE;
    if (why != FF_REFUSE_NONE) {
        char d[160];
        if (why == FF_REFUSE_WRONG_SIZE)
            snprintf(d, sizeof d, "%zu values, the model has %zu", update ? n : 0, c->n);
        else if (why == FF_REFUSE_NONFINITE)
            snprintf(d, sizeof d, "value %zu is %s", bad, isnan(update[bad]) ? "NaN" : "Inf");
        else
            snprintf(d, sizeof d, "example count %g", n_examples);
        return refuse(c, FF_PHASE_TRAIN, s, site, round, why, d, reason);
    }
    if (!c->updates[s] && !(c->updates[s] = ff_alloc(c->n * sizeof(float))))
        return ff_error(FF_ENOMEM, "coordinator: no memory for the update of site '%s'", site);
    memcpy(c->updates[s], update, n * sizeof(float));
    double w = n_examples;
    if (c->mech.on_update) {
        int rc = c->mech.on_update(c->mech.ud, s, c->updates[s], n, &w);
        if (rc < 0 || !(w > 0) || !isfinite(w))
            return refuse(c, FF_PHASE_TRAIN, s, site, round, FF_REFUSE_REJECTED,
                          "refused by the privacy mechanism", reason);
    }
    c->weights[s] = w;
    c->has_update[s] = 1;
    c->r_updates++;
    accepted(c, s);
    return FF_OK;
}

int ff_coord_submit_update(ff_coord *c, const char *site, int64_t round, const float *update,
                           size_t n, double n_examples)
{
    return ff_coord_submit_update_ex(c, site, round, -1, update, n, n_examples, NULL);
}

int ff_coord_decline(ff_coord *c, const char *phase, const char *site, int64_t round,
                     const char *why, int *reason)
{
    if (reason)
        *reason = FF_REFUSE_NONE;
    int s = admit(c, phase, site, round, -1, reason);
    if (s < 0)
        return s;
    const coord_phase *ph = &c->phases[c->phase_idx];
    if (ph->builtin != BI_TRAIN && ph->builtin != BI_EVALUATE && ph->def.expect != FF_PHASE_FROM_SELECTED)
        return refuse(c, phase, s, site, round, FF_REFUSE_WRONG_PHASE,
                      "only the first phase of a round (train, secure aggregation's first) and "
                      "evaluate can be declined", reason);
    char w[256]; /* the site's words go to the log and the audit log: printable, bounded */
    ff_strlcpy(w, why ? why : "", sizeof w);
    for (char *p = w; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    c->expected[s] = 0;
    coord_emit(c, FF_EV_DECLINE, phase, c->names[s], 0, 0, NULL, w);
    FF_LOG_WARN("round %lld phase %s: site '%s' declined its task: %s", (long long)round, phase,
                c->names[s], w);
    return FF_OK;
}

int ff_coord_submit_eval(ff_coord *c, const char *site, int64_t round, const ff_coord_eval *e,
                         int *reason)
{
    if (reason)
        *reason = FF_REFUSE_NONE;
    int s = admit(c, FF_PHASE_EVALUATE, site, round, -1, reason);
    if (s < 0)
        return s;
    if (!isfinite(e->n_examples) || !(e->n_examples > 0) || !isfinite(e->loss)) {
        char d[160];
        snprintf(d, sizeof d, "example count %g, loss %g", e->n_examples, e->loss);
        return refuse(c, FF_PHASE_EVALUATE, s, site, round,
                      isfinite(e->loss) ? FF_REFUSE_BAD_WEIGHT : FF_REFUSE_NONFINITE, d, reason);
    }
    coord_phase *p = &c->phases[c->phase_idx];
    if (p->def.on_submit && p->def.on_submit(p->def.ud, c, s, e->blob, e->blob_len) < 0)
        return refuse(c, FF_PHASE_EVALUATE, s, site, round, FF_REFUSE_REJECTED, ff_error_message(),
                      reason);
    c->eval_w += e->n_examples;
    c->eval_loss_acc += e->n_examples * e->loss;
    if (isfinite(e->auroc)) {
        c->eval_auroc_acc += e->n_examples * e->auroc;
        c->eval_auroc_w += e->n_examples;
    }
    c->eval_sites++;
    accepted(c, s);
    return FF_OK;
}

int ff_coord_submit(ff_coord *c, const char *phase, const char *site, int64_t round,
                    const void *msg, size_t len, int *reason)
{
    if (reason)
        *reason = FF_REFUSE_NONE;
    int s = admit(c, phase, site, round, -1, reason);
    if (s < 0)
        return s;
    coord_phase *p = &c->phases[c->phase_idx];
    if (p->builtin != BI_NONE)
        return refuse(c, phase, s, site, round, FF_REFUSE_WRONG_PHASE,
                      "built-in phases take their own submit calls", reason);
    if (p->def.on_submit && p->def.on_submit(p->def.ud, c, s, msg, len) < 0) {
        char d[256];
        ff_strlcpy(d, ff_error_message(), sizeof d);
        return refuse(c, phase, s, site, round, FF_REFUSE_REJECTED, d, reason);
    }
    accepted(c, s);
    return FF_OK;
}
