/* What the coordinator says about itself: the status answer (`fedfuse status`), the
 * Prometheus metrics page and live.html, all read from the node under its lock. */
#include "coord_internal.h"

/* The status snapshot (the detail of `fedfuse status`, and what live.html shows). */
json_t *fed_coord_status_json_locked(node *nd)
{
    json_t *d = json_object();
    json_t *pend = json_array(), *seen = json_object();
    double now = ff_now();
    for (size_t i = 0; i < nd->nsites; i++) {
        if (nd->pending[i])
            json_array_append_new(pend, json_string(nd->names[i]));
        if (nd->last_seen[i] > 0)
            json_object_set_new(seen, nd->names[i], json_real(now - nd->last_seen[i]));
    }
    json_object_set_new(d, "run", json_string(nd->cfg.run_name));
    json_object_set_new(d, "rounds", json_integer(nd->cfg.rounds));
    json_object_set_new(d, "round", json_integer(nd->round));
    json_object_set_new(d, "attempt", json_integer(nd->attempt));
    json_object_set_new(d, "phase", json_string(nd->state == FF_COORD_DONE ? "done" : nd->phase));
    json_object_set_new(d, "pending", pend);
    json_object_set_new(d, "seconds_since_seen", seen);
    json_t *sites = json_object();
    double wall = ff_wall_time();
    for (size_t i = 0; i < nd->nsites; i++) {
        const fed_site_report *r = &nd->reports[i];
        json_t *o = json_object();
        json_object_set_new(o, "last_seen_s", nd->last_seen[i] > 0 ? json_real(now - nd->last_seen[i])
                                                                   : json_null());
        /* a site that fetched its DONE task is done, whatever it last said of itself */
        json_object_set_new(o, "state", json_string(nd->done_sent[i] ? "done"
                                                    : r->state[0]   ? r->state
                                                                    : "unknown"));
        json_object_set_new(o, "error_code", json_string(r->code));
        json_object_set_new(o, "error", json_string(r->message));
        json_object_set_new(o, "error_age_s", r->code[0] ? json_real(wall - r->error_at) : json_null());
        json_object_set_new(o, "version", json_string(r->version));
        json_object_set_new(o, "clock_skew_s", r->have_skew ? json_real(r->skew_s) : json_null());
        json_object_set_new(o, "pending", json_boolean(nd->pending[i]));
        json_object_set_new(sites, nd->names[i], o);
    }
    json_object_set_new(d, "site_status", sites);
    json_object_set_new(d, "deadline_in_s", json_real(FF_MAX(0, (nd->deadline_ms - fed_coord_unix_ms()) / 1e3)));
    json_object_set_new(d, "sites", json_integer((json_int_t)nd->nsites));
    /* the coordinator's clock, for the sites' skew check (fedfuse doctor) */
    json_object_set_new(d, "now_unix_ms", json_integer((json_int_t)fed_coord_unix_ms()));
    json_t *unav = json_object();
    for (size_t i = 0; i < nd->nsites; i++) {
        int stt = ff_coord_site_state(nd->c, (int)i);
        if (stt != FF_SITE_UP || nd->gone[i][0])
            json_object_set_new(unav, nd->names[i],
                                json_string(nd->gone[i][0] ? nd->gone[i] : "not heard from lately"));
    }
    json_object_set_new(d, "not_selected", unav);
    json_t *ref = json_object();
    for (int r = 1; r < FF_REFUSE_COUNT; r++)
        json_object_set_new(ref, ff_refusal_name(r), json_integer((json_int_t)ff_coord_refusals(nd->c, r)));
    json_object_set_new(d, "refusals", ref);
    json_object_set_new(d, "crl_expires_in_s",
                        nd->crl_next ? json_real(difftime(nd->crl_next, time(NULL))) : json_null());
    json_object_set_new(d, "crl_warning",
                        nd->crl_warning[0] ? json_string(nd->crl_warning) : json_null());
    if (nd->dp.on && nd->dp.ledger) {
        double eps = 0, order = 0;
        if (ff_privacy_ledger_epsilon(nd->dp.ledger, &eps, &order) == FF_OK)
            json_object_set_new(d, "privacy",
                                json_pack("{s:f,s:f,s:f}", "epsilon_spent", eps, "epsilon_budget",
                                          nd->dp.cfg.epsilon_budget, "delta", nd->dp.cfg.delta));
    }
    return d;
}

int fed_coord_on_status(void *user, ff_call *c, const Fedfuse__StatusRequest *req,
                     Fedfuse__StatusReply *reply)
{
    node *nd = user;
    (void)req;
    pthread_mutex_lock(&nd->mu);
    /* A site's own call (fedfuse doctor, ping) shows it alive too; an operator's does not. */
    int self = c->role == FF_PKI_SITE ? fed_coord_site_index(nd, c->site) : -1;
    if (self >= 0)
        nd->last_seen[self] = ff_now();
    reply->consortium = ff_call_strdup(c, nd->cons.consortium);
    reply->run_id = ff_call_strdup(c, nd->run_id);
    reply->round = (uint32_t)nd->round;
    /* the open phase's wire id when sites act in it; between them, wait (or done) */
    const ff_phase_info *open = ff_phase_by_name(nd->phase);
    reply->phase = open && open->wire > 0 && open->actor != FF_ACT_NONE ? open->wire
                   : nd->state == FF_COORD_DONE                          ? FF_WIRE_DONE
                                                                         : FF_WIRE_WAIT;
    char **conn = ff_call_alloc(c, (nd->nsites + 1) * sizeof *conn);
    size_t nconn = 0;
    double now = ff_now();
    for (size_t i = 0; conn && i < nd->nsites; i++)
        if (nd->last_seen[i] > 0 && now - nd->last_seen[i] < 60)
            conn[nconn++] = ff_call_strdup(c, nd->names[i]);
    fed_coord_crl_refresh_locked(nd);
    json_t *d = fed_coord_status_json_locked(nd);
    pthread_mutex_unlock(&nd->mu);
    int rc = d ? ff_fed_status_to_wire(d, c, &reply->detail)
               : ff_error(FF_ENOMEM, "status: out of memory");
    json_decref(d);
    reply->sites_connected = conn;
    reply->n_sites_connected = nconn;
    return rc;
}

/* GET /metrics (docs/operations.md, "Metrics"). */
void fed_coord_render_metrics(void *ud, ff_sbuf *b)
{
    node *nd = ud;
    pthread_mutex_lock(&nd->mu);
    fed_coord_stats_render(&nd->stats, b);
    double now = ff_now();
    size_t conn = 0;
    for (size_t i = 0; i < nd->nsites; i++)
        conn += nd->last_seen[i] > 0 && now - nd->last_seen[i] < 60;
    fed_metrics_family(b, "fedfuse_round", "gauge", "The round in progress.");
    ff_sbuf_printf(b, "fedfuse_round %lld\n", (long long)nd->round);
    fed_metrics_family(b, "fedfuse_sites_enrolled", "gauge", "Sites in the consortium file.");
    ff_sbuf_printf(b, "fedfuse_sites_enrolled %zu\n", nd->nsites);
    fed_metrics_family(b, "fedfuse_sites_connected", "gauge", "Sites that called in the last minute.");
    ff_sbuf_printf(b, "fedfuse_sites_connected %zu\n", conn);
    size_t pend = 0;
    for (size_t i = 0; i < nd->nsites; i++)
        pend += nd->pending[i];
    fed_metrics_family(b, "fedfuse_sites_pending", "gauge", "Sites the open phase still waits for.");
    ff_sbuf_printf(b, "fedfuse_sites_pending %zu\n", pend);
    fed_metrics_family(b, "fedfuse_site_last_error", "gauge",
                       "1 per site and the last error code it reported (docs/operations.md).");
    for (size_t i = 0; i < nd->nsites; i++)
        if (nd->reports[i].code[0])
            ff_sbuf_printf(b, "fedfuse_site_last_error{site=\"%s\",code=\"%s\"} 1\n",
                           nd->names[i], nd->reports[i].code);
    uint64_t refusals[FF_REFUSE_COUNT];
    for (int r = 1; r < FF_REFUSE_COUNT; r++)
        refusals[r] = ff_coord_refusals(nd->c, r);
    double eps = 0, order = 0;
    int dp = nd->dp.on && nd->dp.ledger && ff_privacy_ledger_epsilon(nd->dp.ledger, &eps, &order) == FF_OK;
    double budget = nd->dp.on ? nd->dp.cfg.epsilon_budget : 0;
    pthread_mutex_unlock(&nd->mu);
    ff_server_counters sc = {0};
    if (nd->srv)
        ff_server_counters_get(nd->srv, &sc);
    fed_metrics_family(b, "fedfuse_transport_received_bytes_total", "counter", "Bytes received from sites.");
    ff_sbuf_printf(b, "fedfuse_transport_received_bytes_total %llu\n", (unsigned long long)sc.bytes_in);
    fed_metrics_family(b, "fedfuse_transport_sent_bytes_total", "counter", "Bytes sent to sites.");
    ff_sbuf_printf(b, "fedfuse_transport_sent_bytes_total %llu\n", (unsigned long long)sc.bytes_out);
    fed_metrics_family(b, "fedfuse_transport_calls_total", "counter", "RPCs served, by result.");
    ff_sbuf_printf(b, "fedfuse_transport_calls_total{result=\"ok\"} %llu\n"
                   "fedfuse_transport_calls_total{result=\"failed\"} %llu\n",
                   (unsigned long long)sc.calls_ok, (unsigned long long)sc.calls_failed);
    fed_metrics_family(b, "fedfuse_errors_total", "counter",
                       "Refused calls and submissions, by error code (docs/operations.md).");
    const struct { const char *code; uint64_t v; } tr[] = {
        {"invalid_argument", sc.invalid_argument}, {"oversized", sc.oversized},
        {"unknown_method", sc.unknown_method},     {"unenrolled", sc.unenrolled},
        {"revoked", sc.revoked},                   {"replayed", sc.replayed},
        {"checksum_mismatch", sc.checksum_mismatch}};
    for (size_t i = 0; i < FF_ARRAY_LEN(tr); i++)
        ff_sbuf_printf(b, "fedfuse_errors_total{code=\"%s\"} %llu\n", tr[i].code,
                       (unsigned long long)tr[i].v);
    for (int r = 1; r < FF_REFUSE_COUNT; r++) {
        char code[64]; /* "stale round" -> refused_stale_round */
        snprintf(code, sizeof code, "refused_%s", ff_refusal_name(r));
        for (char *p = code; *p; p++)
            if (*p == ' ' || *p == '-')
                *p = '_';
        ff_sbuf_printf(b, "fedfuse_errors_total{code=\"%s\"} %llu\n", code,
                       (unsigned long long)refusals[r]);
    }
    fed_metrics_family(b, "fedfuse_privacy_epsilon_spent", "gauge",
                       "Client-level DP: epsilon spent so far (0 when DP is off).");
    ff_sbuf_printf(b, "fedfuse_privacy_epsilon_spent %.6g\n", dp ? eps : 0.0);
    fed_metrics_family(b, "fedfuse_privacy_epsilon_budget", "gauge",
                       "Client-level DP: the plan's epsilon budget (0 when DP is off).");
    ff_sbuf_printf(b, "fedfuse_privacy_epsilon_budget %.6g\n", budget);
    fed_metrics_process(b);
}

/* Rewrites live.html when the round, the attempt, the phase or the state changed since the
 * last write (a few times per round). A failure is logged once and never stops the run: the
 * page is a convenience, rounds.csv and the audit log are the record. */
void fed_coord_live_update_locked(node *nd)
{
    char key[sizeof nd->phase + 64];
    snprintf(key, sizeof key, "%lld/%lld/%s/%d", (long long)nd->round, (long long)nd->attempt,
             nd->phase, nd->state);
    if (strcmp(key, nd->live_key) == 0)
        return;
    ff_strlcpy(nd->live_key, key, sizeof nd->live_key);
    json_t *d = fed_coord_status_json_locked(nd);
    int rc = d ? fed_live_write(nd->cfg.out_dir, d) : FF_ENOMEM;
    json_decref(d);
    if (rc != FF_OK && !nd->live_failed) {
        nd->live_failed = 1;
        FF_LOG_WARN("live view: %s/live.html not written (%s); the run goes on", nd->cfg.out_dir,
                    ff_error_message());
    }
}
