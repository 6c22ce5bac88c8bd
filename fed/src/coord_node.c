/* The coordinator process: the transport server's handlers feed the round engine; one mutex
 * serialises every engine call (the engine is not thread-safe) and one condition variable
 * wakes long-polls when the engine moves. The main thread polls the engine, sleeping at most
 * until the open phase's deadline, so no wait is unbounded. */
#include "coord_internal.h"

int64_t fed_coord_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fed_coord_site_index(const node *nd, const char *name)
{
    for (size_t i = 0; i < nd->nsites; i++)
        if (strcmp(nd->names[i], name) == 0)
            return (int)i;
    return -1;
}

static void blob_release_locked(node *nd, blob *b)
{
    if (--b->refs > 0 || b->current)
        return;
    for (blob **p = &nd->blobs; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    free(b->data);
    free(b);
}

/* Makes the engine's global model the current blob (a copy: the engine's pointer is valid
 * only until the next poll). */
static int blob_refresh_locked(node *nd)
{
    size_t n = ff_coord_nparams(nd->c);
    blob *b = calloc(1, sizeof *b);
    if (!b || !(b->data = malloc(n * sizeof(float)))) {
        free(b);
        return ff_error(FF_ENOMEM, "coordinator: out of memory for the model blob");
    }
    memcpy(b->data, ff_coord_global(nd->c), n * sizeof(float));
    b->bytes = n * sizeof(float);
    ff_sha256(b->data, b->bytes, b->sha);
    b->current = 1;
    b->next = nd->blobs;
    nd->blobs = b;
    if (nd->cur) {
        /* Retire the previous model; a download still streaming it keeps it alive. */
        nd->cur->current = 0;
        nd->cur->refs++;
        blob_release_locked(nd, nd->cur);
    }
    nd->cur = b;
    return FF_OK;
}

int fed_coord_phase_is(const node *nd, const char *p)
{
    return strcmp(nd->phase, p) == 0;
}

static int snapshot_locked(node *nd, const ff_coord_status *st)
{
    nd->state = st->state;
    nd->round = st->round;
    nd->attempt = st->attempt;
    ff_strlcpy(nd->phase, st->phase ? st->phase : "", sizeof nd->phase);
    memset(nd->pending, 0, nd->nsites);
    for (size_t i = 0; i < st->npending; i++)
        if (st->pending[i] >= 0 && (size_t)st->pending[i] < nd->nsites)
            nd->pending[st->pending[i]] = 1;
    nd->deadline_ms = fed_coord_unix_ms() + (int64_t)(st->deadline_in * 1000.0);
    /* done: the final model, for the sites' local fine-tuning (plan fine_tune) */
    int serving = fed_coord_phase_is(nd, FF_PHASE_TRAIN) || fed_coord_phase_is(nd, FF_PHASE_EVALUATE) ||
                  fed_coord_phase_is(nd, FF_PHASE_ADVERTISE) || nd->state == FF_COORD_DONE;
    if (serving && (nd->blob_round != nd->round || nd->blob_attempt != nd->attempt ||
                    strcmp(nd->blob_phase, nd->phase) != 0 || !nd->cur)) {
        int rc = blob_refresh_locked(nd);
        if (rc != FF_OK)
            return rc;
        nd->blob_round = nd->round;
        nd->blob_attempt = nd->attempt;
        ff_strlcpy(nd->blob_phase, nd->phase, sizeof nd->blob_phase);
    }
    return FF_OK;
}

/* A change of the roster (a certificate or the CRL): a new version, sent to every site. */
static void roster_rebuild_locked(node *nd)
{
    nd->roster_version++;
}

/* The roster as it is now, into the call's memory (the certificates may be replaced once the
 * lock is released). */
static int roster_wire_locked(const node *nd, ff_call *c, Fedfuse__Roster **out)
{
    Fedfuse__Roster *r = ff_call_alloc(c, sizeof *r);
    Fedfuse__RosterSite *rs = ff_call_alloc(c, (nd->nsites + 1) * sizeof *rs);
    Fedfuse__RosterSite **ps = ff_call_alloc(c, (nd->nsites + 1) * sizeof *ps);
    size_t crl_len = nd->crl_pem ? strlen(nd->crl_pem) : 0;
    uint8_t *crl = ff_call_alloc(c, crl_len + 1);
    if (!r || !rs || !ps || !crl)
        return ff_error(FF_ENOMEM, "roster: out of memory");
    fedfuse__roster__init(r);
    r->version = nd->roster_version;
    memcpy(crl, nd->crl_pem ? nd->crl_pem : "", crl_len);
    r->crl_pem = (ProtobufCBinaryData){crl_len, crl};
    for (size_t i = 0; i < nd->nsites; i++) {
        if (!nd->cert_pem[i])
            continue;
        Fedfuse__RosterSite *e = &rs[r->n_sites];
        fedfuse__roster_site__init(e);
        e->name = ff_call_strdup(c, nd->names[i]);
        size_t len = strlen(nd->cert_pem[i]);
        uint8_t *pem = ff_call_alloc(c, len + 1);
        if (!e->name || !pem)
            return ff_error(FF_ENOMEM, "roster: out of memory");
        memcpy(pem, nd->cert_pem[i], len);
        e->cert_pem = (ProtobufCBinaryData){len, pem};
        ps[r->n_sites++] = e;
    }
    r->sites = ps;
    *out = r;
    return FF_OK;
}

/* Site idx's certificate (PEM, already checked against the CA and CRL by the transport or
 * read from site_certs): kept for the roster, its key for secure aggregation. */
static void roster_set_cert_locked(node *nd, size_t idx, const char *pem)
{
    if (!pem || (nd->cert_pem[idx] && strcmp(nd->cert_pem[idx], pem) == 0))
        return;
    X509 *x = NULL;
    char *copy = strdup(pem);
    if (!copy || ff_pki_cert_from_pem(pem, strlen(pem), &x) != FF_OK) {
        FF_LOG_WARN("site '%s': certificate not kept for the roster: %s", nd->names[idx],
                    copy ? ff_error_message() : "out of memory");
        free(copy);
        return;
    }
    free(nd->cert_pem[idx]);
    nd->cert_pem[idx] = copy;
    EVP_PKEY_free(nd->site_keys[idx]);
    nd->site_keys[idx] = X509_get_pubkey(x);
    X509_free(x);
    roster_rebuild_locked(nd);
}

/* A new CRL file: into the roster, and the sites whose certificate it revokes are gone. */
static void roster_crl_locked(node *nd)
{
    ff_file_stamp st = nd->cons.crl[0] ? ff_file_stamp_of(nd->cons.crl) : nd->crl_stamp;
    if (ff_file_stamp_eq(st, nd->crl_stamp))
        return;
    nd->crl_stamp = st; /* a file that does not load is tried again when it changes */
    char *pem = NULL;
    size_t len = 0;
    X509_CRL *crl = NULL;
    if (ff_file_read_all(nd->cons.crl, 16u << 20, &pem, &len) != FF_OK ||
        ff_pki_crl_from_pem(pem, len, nd->ca, &crl) != FF_OK) {
        FF_LOG_ERROR("roster: keeping the previous revocation list: %s", ff_error_message());
        free(pem);
        return;
    }
    free(nd->crl_pem);
    nd->crl_pem = pem;
    struct tm tm;
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    nd->crl_next = next && ASN1_TIME_to_tm(next, &tm) == 1 ? timegm(&tm) : 0;
    nd->crl_logged = 0; /* a new list: say at once whether it too needs renewing */
    for (size_t i = 0; i < nd->nsites; i++) {
        X509 *x = NULL;
        X509_REVOKED *rv = NULL;
        if (nd->cert_pem[i] &&
            ff_pki_cert_from_pem(nd->cert_pem[i], strlen(nd->cert_pem[i]), &x) == FF_OK &&
            X509_CRL_get0_by_cert(crl, &rv, x) == 1 && !nd->gone[i][0]) {
            ff_strlcpy(nd->gone[i], "certificate revoked", sizeof nd->gone[i]);
            FF_LOG_WARN("site '%s' is gone: certificate revoked", nd->names[i]);
        }
        X509_free(x);
    }
    X509_CRL_free(crl);
    roster_rebuild_locked(nd);
}

/* The CRL's expiry, limits.crl_warn_days ahead: a warning in the log (every hour) and in
 * status while it is near; at expiry the transport refuses every peer (fail closed: an
 * expired list may hide a revocation) until a renewed crl.pem is copied in (docs/security.md). */
static void crl_expiry_locked(node *nd)
{
    double left = nd->crl_next ? difftime(nd->crl_next, time(NULL)) : 1e18;
    if (left > nd->cfg.limits.crl_warn_days * 86400.0) {
        nd->crl_warning[0] = '\0';
        return;
    }
    char when[32];
    struct tm tm;
    gmtime_r(&nd->crl_next, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (left > 0)
        snprintf(nd->crl_warning, sizeof nd->crl_warning, "the revocation list %s expires in "
                 "%.1f days (%s): renew it (fedfuse pki crl --ca CA_DIR, then copy crl.pem "
                 "here); once expired, every site is refused", nd->cons.crl, left / 86400, when);
    else
        snprintf(nd->crl_warning, sizeof nd->crl_warning, "the revocation list %s expired at "
                 "%s: every site is refused until it is renewed (fedfuse pki crl --ca CA_DIR, "
                 "then copy crl.pem here)", nd->cons.crl, when);
    double now = ff_now();
    if (nd->crl_logged > 0 && now - nd->crl_logged < 3600)
        return;
    nd->crl_logged = now;
    if (left > 0)
        FF_LOG_WARN("%s", nd->crl_warning);
    else
        FF_LOG_ERROR("%s", nd->crl_warning);
}

/* The CRL file as it is now, into the roster and the expiry warning: the transport checks
 * the file at every call, so what status says must come from the same file. */
void fed_coord_crl_refresh_locked(node *nd)
{
    roster_crl_locked(nd);
    crl_expiry_locked(nd);
}

/* secure_aggregation.site_certs (optional): <site>.pem of sites the coordinator should know
 * before they connect. */
static int roster_load_site_certs(node *nd, const char *dir, size_t from)
{
    for (size_t i = from; dir[0] && i < nd->nsites; i++) {
        char path[FF_COORD_PATH_MAX + 80], *pem = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s.pem", dir, nd->names[i]);
        if (access(path, R_OK) != 0)
            continue; /* that site's certificate comes when it connects */
        int rc = ff_file_read_all(path, 1u << 20, &pem, &len);
        if (rc != FF_OK)
            return ff_error_prefix(rc, "secure_aggregation.site_certs: ");
        roster_set_cert_locked(nd, i, pem);
        free(pem);
    }
    return FF_OK;
}

/* Tells the engine which sites it may select: gone (a reason is known), quiet (nothing heard
 * for site_timeout seconds, counted from the start for a site never heard from) or up. */
static int liveness_locked(node *nd, int *hold)
{
    double now = ff_now();
    *hold = 0;
    fed_coord_crl_refresh_locked(nd);
    for (size_t i = 0; i < nd->nsites; i++) {
        double since = now - FF_MAX(nd->last_seen[i], nd->t_start);
        /* secure aggregation needs the site's key: known once it has connected */
        int nokey = nd->cfg.secure_aggregation.enabled && !nd->site_keys[i];
        /* at start, every enrolled site is waited for up to site_timeout before the first
         * round (as a plain round waits for a site that has not connected yet) */
        *hold |= nokey && !nd->gone[i][0] && (nd->cfg.site_timeout <= 0 || since <= nd->cfg.site_timeout);
        int want = nd->gone[i][0] ? FF_SITE_GONE
                   : nokey || (nd->cfg.site_timeout > 0 && since > nd->cfg.site_timeout)
                       ? FF_SITE_QUIET
                       : FF_SITE_UP;
        if (want == ff_coord_site_state(nd->c, (int)i))
            continue;
        char why[300];
        if (want == FF_SITE_QUIET && nokey)
            snprintf(why, sizeof why, "its certificate is not known yet (it has not connected)");
        else if (want == FF_SITE_QUIET)
            snprintf(why, sizeof why, "no call for %.0f s (site_timeout %g s)", since,
                     nd->cfg.site_timeout);
        else
            ff_strlcpy(why, nd->gone[i], sizeof why);
        int rc = ff_coord_set_site_state(nd->c, (int)i, want, why);
        if (rc != FF_OK)
            return rc;
    }
    return FF_OK;
}

/* A site is known gone for why (the transport saw its certificate revoked, it refused the
 * job, its start-up failed): the round stops waiting for it at the next poll. */
static void site_gone(node *nd, const char *site, const char *why)
{
    pthread_mutex_lock(&nd->mu);
    int idx = fed_coord_site_index(nd, site);
    if (idx >= 0 && strcmp(nd->gone[idx], why) != 0) {
        ff_strlcpy(nd->gone[idx], why, sizeof nd->gone[idx]);
        FF_LOG_WARN("site '%s' is gone: %s", site, why);
    }
    pthread_cond_broadcast(&nd->cv);
    pthread_mutex_unlock(&nd->mu);
}

static void on_refused(void *user, const char *site, const char *why)
{
    site_gone(user, site, why);
}

#define FED_NOT_LISTED "no longer in the consortium file"

/* A site listed in the consortium file for the first time: it joins the engine (selectable
 * from the next round), secure aggregation and evaluation; its certificate comes with its
 * first call (or from site_certs), as for every site. */
static int enrol_locked(node *nd, const char *name)
{
    if (nd->nsites >= FF_COORD_MAX_SITES)
        return ff_error(FF_ERANGE, "site '%s': already %d sites", name, FF_COORD_MAX_SITES);
    int idx = ff_coord_add_site(nd->c, name);
    if (idx < 0)
        return idx;
    if ((size_t)idx != nd->nsites)
        return ff_error(FF_EINTERNAL, "site '%s': engine index %d, node has %zu sites", name,
                        idx, nd->nsites);
    ff_strlcpy(nd->name_buf[idx], name, sizeof nd->name_buf[idx]);
    nd->names[idx] = nd->name_buf[idx];
    nd->nsites++;
    nd->ev.nsites = nd->nsites;
    fed_secagg_add_site(&nd->sa);
    return roster_load_site_certs(nd, nd->cfg.secure_aggregation.site_certs, (size_t)idx);
}

/* The transport re-read the consortium file (`fedfuse consortium add`, or an edit): new sites
 * join the run now, without a restart; a site taken off the list is gone (the transport
 * refuses its calls) until it is listed again. */
static void on_enrolled(void *user, const ff_consortium *cons)
{
    node *nd = user;
    const ff_consortium_site *cs = cons->sites.items;
    int changed = 0;
    pthread_mutex_lock(&nd->mu);
    for (size_t k = 0; k < cons->sites.count; k++) {
        int idx = fed_coord_site_index(nd, cs[k].name);
        if (idx >= 0 && strcmp(nd->gone[idx], FED_NOT_LISTED) == 0) {
            FF_LOG_INFO("site '%s' is in the consortium file again", cs[k].name);
            nd->gone[idx][0] = '\0';
            changed = 1;
        } else if (idx < 0 && enrol_locked(nd, cs[k].name) == FF_OK) {
            FF_LOG_INFO("site '%s' enrolled while running (consortium file): selectable from "
                        "the next round once it connects", cs[k].name);
            changed = 1;
        } else if (idx < 0) {
            FF_LOG_ERROR("site '%s' not enrolled: %s", cs[k].name, ff_error_message());
        }
    }
    for (size_t i = 0; i < nd->nsites; i++)
        if (!ff_consortium_has(cons, nd->names[i]) && !nd->gone[i][0]) {
            ff_strlcpy(nd->gone[i], FED_NOT_LISTED, sizeof nd->gone[i]);
            FF_LOG_WARN("site '%s' is gone: %s", nd->names[i], FED_NOT_LISTED);
            changed = 1;
        }
    if (changed)
        roster_rebuild_locked(nd); /* a new version: the consortium's membership changed */
    pthread_cond_broadcast(&nd->cv);
    pthread_mutex_unlock(&nd->mu);
}

/* ---- handlers ---------------------------------------------------------------------------- */

static int on_hello(void *user, ff_call *c, const Fedfuse__HelloRequest *req,
                    Fedfuse__HelloReply *reply)
{
    node *nd = user;
    if (req->protocol_version != FF_PROTOCOL_VERSION) {
        /* messages of another version would be misread (protocol 1 sent its parameters as
         * text in fields that are gone): refused at the door, said on both sides */
        FF_LOG_WARN("site %s refused: it speaks fedfuse protocol version %u (software %.32s), "
                    "this coordinator version %u", c->site, req->protocol_version,
                    req->software_version ? req->software_version : "?", FF_PROTOCOL_VERSION);
        return ff_error(FF_EPOLICY, "protocol version %u refused: this coordinator speaks fedfuse "
                        "protocol version %u (software %s); run the same fedfuse version on the "
                        "coordinator and the sites", req->protocol_version, FF_PROTOCOL_VERSION,
                        FF_VERSION);
    }
    reply->consortium = ff_call_strdup(c, nd->cons.consortium);
    reply->run_id = ff_call_strdup(c, nd->run_id);
    reply->site = ff_call_strdup(c, c->site);
    reply->protocol_version = FF_PROTOCOL_VERSION;
    reply->poll_timeout_ms = FED_POLL_TIMEOUT_MS;
    FF_LOG_INFO("site %s connected", c->site);
    pthread_mutex_lock(&nd->mu);
    int idx = fed_coord_site_index(nd, c->site);
    if (idx >= 0 && nd->gone[idx][0]) {
        FF_LOG_INFO("site '%s' is back (it was: %s)", c->site, nd->gone[idx]);
        nd->gone[idx][0] = '\0';
    }
    if (idx >= 0) {
        nd->last_seen[idx] = ff_now();
        roster_set_cert_locked(nd, (size_t)idx, c->cert_pem);
    }
    pthread_mutex_unlock(&nd->mu);
    return reply->consortium && reply->run_id && reply->site ? FF_OK
                                                             : ff_error(FF_ENOMEM, "hello: out of memory");
}

static int fill_task_locked(node *nd, ff_call *c, int phase, Fedfuse__Task *t);

/* The secure-aggregation phase open now, as the Task.phase the sites see (0 = none). */
int fed_coord_secagg_phase(const node *nd)
{
    if (!nd->cfg.secure_aggregation.enabled)
        return 0;
    const ff_phase_info *p = ff_phase_by_name(nd->phase);
    return p && p->secagg_step > 0 ? p->wire : 0;
}

/* What every task says: the attempt of the round, the per-site layers and, once a round
 * with this site's update is aggregated, its inclusion proof (the site completes its
 * receipt with it). */
static int task_attempt_locked(node *nd, ff_call *c, Fedfuse__Task *t)
{
    if (nd->attempt < 0 || nd->attempt > UINT32_MAX)
        return ff_error(FF_EINTERNAL, "get_task: attempt %lld out of range", (long long)nd->attempt);
    t->attempt = (uint32_t)nd->attempt;
    /* strategy.local: the tensor prefixes every site keeps (fed/src/client_local.c); the
     * config lives as long as the node, the reply is sent within it */
    const ff_cfg_strlist *loc = &nd->cfg.strategy.local;
    t->n_local_prefixes = loc->count;
    t->local_prefixes = loc->count ? (char **)loc->items : NULL;
    /* with the run's name: a site's saved local layers belong to one run */
    t->run_name = loc->count ? nd->cfg.run_name : NULL;
    return fed_audit_inclusion(&nd->audit, c->site, c, &t->inclusion);
}

static int fill_task_locked(node *nd, ff_call *c, int phase, Fedfuse__Task *t)
{
    t->run_id = ff_call_strdup(c, nd->run_id);
    t->round = (uint32_t)nd->round;
    t->total_rounds = (uint32_t)nd->cfg.rounds;
    t->phase = phase;
    t->deadline_unix_ms = nd->deadline_ms;
    t->plan_yaml.data = (uint8_t *)nd->plan_yaml;
    t->plan_yaml.len = nd->plan_len;
    t->job_sha256.data = nd->job;
    t->job_sha256.len = FF_SHA256_BYTES;
    if (nd->is_stats)
        t->job_kind = (char *)FED_JOB_STATISTICS;
    uint8_t *sha = ff_call_alloc(c, FF_SHA256_BYTES);
    if (!t->run_id || !sha)
        return ff_error(FF_ENOMEM, "get_task: out of memory");
    int rc = task_attempt_locked(nd, c, t);
    if (rc != FF_OK)
        return rc;
    memcpy(sha, nd->cur->sha, FF_SHA256_BYTES);
    t->model_sha256.data = sha;
    t->model_sha256.len = FF_SHA256_BYTES;
    t->model_size = nd->cur->bytes;
    if (nd->dp.on) {
        /* what the site's policy checks (dp:) and the site compares with the approved plan */
        Fedfuse__DpParams *dp = ff_call_alloc(c, sizeof *dp);
        if (!dp)
            return ff_error(FF_ENOMEM, "get_task: out of memory");
        fedfuse__dp_params__init(dp);
        dp->enabled = 1;
        dp->noise_multiplier = nd->dp.cfg.noise_multiplier;
        dp->clip_norm = nd->dp.cfg.clip_norm;
        dp->epsilon = nd->dp.cfg.epsilon_budget;
        dp->delta = nd->dp.cfg.delta;
        t->dp = dp;
    }
    if (fed_coord_secagg_phase(nd) == phase)
        return fed_secagg_task(&nd->sa, fed_coord_site_index(nd, c->site), nd->phase, c, t);
    if (nd->cfg.secure_aggregation.enabled) {
        /* every task of the run says so: a site's policy may require it */
        Fedfuse__SecAggParams *sp = ff_call_alloc(c, sizeof *sp);
        if (!sp)
            return ff_error(FF_ENOMEM, "get_task: out of memory");
        fedfuse__sec_agg_params__init(sp);
        sp->enabled = 1;
        sp->threshold = (uint32_t)nd->cfg.secure_aggregation.threshold;
        sp->num_sites = (uint32_t)nd->nsites;
        sp->field_bits = 32;
        t->secagg = sp;
    }
    return FF_OK;
}

static void cv_wait_until(node *nd, double until)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    double t = FF_MIN(until, now + 0.25); /* re-check cancellation four times a second */
    if (t <= now)
        return;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&nd->cv, &nd->mu, &ts);
}

/* Keeps a site's report: only text that looks like what our sites send (a code of [a-z0-9_],
 * printable ASCII), cut to size, so a report cannot inject anything into status or logs. */
static void clean_copy(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    for (; src && *src && k + 1 < n; src++)
        dst[k++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
    dst[k] = '\0';
}

static void report_locked(node *nd, int idx, const Fedfuse__TaskRequest *req)
{
    fed_site_report *r = &nd->reports[idx];
    clean_copy(r->state, sizeof r->state, req->state);
    if (req->error_code && req->error_code[0] && fed_err_code_valid(req->error_code)) {
        int changed = strcmp(r->code, req->error_code) != 0;
        ff_strlcpy(r->code, req->error_code, sizeof r->code);
        clean_copy(r->message, sizeof r->message, req->error_message);
        r->error_at = ff_wall_time() - (double)FF_MAX(req->error_age_ms, 0) / 1e3;
        /* A connectivity code from a site that reaches us again is history, not a fault now:
         * info, so a site that started before the coordinator does not raise a warning. */
        int past = !strcmp(r->code, fed_err_code(FED_ERR_COORDINATOR_UNREACHABLE)) ||
                   !strcmp(r->code, fed_err_code(FED_ERR_LINK_LOST));
        if (changed && past)
            FF_LOG_INFO("site %s reported %s: %s", nd->names[idx], r->code, r->message);
        else if (changed)
            FF_LOG_WARN("site %s reports error %s: %s", nd->names[idx], r->code, r->message);
    } else {
        r->code[0] = r->message[0] = '\0';
    }
    clean_copy(r->version, sizeof r->version, req->software_version);
    if (req->wait_ms != r->wait_ms)
        FF_LOG_INFO("site %s long-polls with wait_ms %u (poll timeout sent: %u ms)",
                    nd->names[idx], req->wait_ms, FED_POLL_TIMEOUT_MS);
    r->wait_ms = req->wait_ms;
    r->have_skew = req->site_unix_ms > 0;
    if (r->have_skew)
        r->skew_s = (double)(req->site_unix_ms - fed_coord_unix_ms()) / 1e3;
}

static int on_get_task(void *user, ff_call *c, const Fedfuse__TaskRequest *req,
                       Fedfuse__Task *reply)
{
    node *nd = user;
    uint32_t wait = req->wait_ms ? FF_MIN(req->wait_ms, FED_POLL_MAX_MS) : FED_POLL_TIMEOUT_MS;
    int rc = FF_OK;
    pthread_mutex_lock(&nd->mu);
    int idx = fed_coord_site_index(nd, c->site), first = 1;
    double until = ff_wall_time() + wait / 1000.0;
    for (;;) {
        if (idx < 0) {
            rc = ff_error(FF_EPOLICY, "site %s is not in the run", c->site);
            break;
        }
        nd->last_seen[idx] = ff_now();
        if (first) {
            report_locked(nd, idx, req);
            /* a site that said Hello to a previous coordinator process only polls: its
             * certificate (for the roster and secure aggregation) comes with this call */
            roster_set_cert_locked(nd, (size_t)idx, c->cert_pem);
            first = 0;
        }
        if (nd->fatal) {
            rc = ff_error(FF_ENET, "the coordinator is stopping");
            break;
        }
        if (nd->state == FF_COORD_DONE) {
            reply->phase = FEDFUSE__PHASE__PHASE_DONE;
            reply->run_id = ff_call_strdup(c, nd->run_id);
            reply->round = (uint32_t)nd->round;
            reply->total_rounds = (uint32_t)nd->cfg.rounds;
            uint8_t *sha = nd->cur ? ff_call_alloc(c, FF_SHA256_BYTES) : NULL;
            if (sha) { /* the final model: a site fine-tunes it when the plan says so */
                memcpy(sha, nd->cur->sha, FF_SHA256_BYTES);
                reply->model_sha256.data = sha;
                reply->model_sha256.len = FF_SHA256_BYTES;
                reply->model_size = nd->cur->bytes;
            }
            if (task_attempt_locked(nd, c, reply) != FF_OK) /* the proof is a bonus here */
                FF_LOG_WARN("site %s: %s", c->site, ff_error_message());
            nd->done_sent[idx] = 1;
            pthread_cond_broadcast(&nd->cv);
            break;
        }
        if (nd->pending[idx] && nd->cur && fed_coord_phase_is(nd, FF_PHASE_TRAIN)) {
            rc = fill_task_locked(nd, c, FEDFUSE__PHASE__PHASE_TRAIN, reply);
            break;
        }
        if (nd->pending[idx] && nd->cur && fed_coord_secagg_phase(nd)) {
            rc = fill_task_locked(nd, c, fed_coord_secagg_phase(nd), reply);
            break;
        }
        if (nd->pending[idx] && nd->cur && fed_coord_phase_is(nd, FF_PHASE_EVALUATE)) {
            rc = fill_task_locked(nd, c, FEDFUSE__PHASE__PHASE_EVALUATE, reply);
            break;
        }
        if (ff_wall_time() >= until || ff_call_cancelled(c)) {
            reply->phase = FEDFUSE__PHASE__PHASE_WAIT;
            reply->run_id = ff_call_strdup(c, nd->run_id);
            reply->round = (uint32_t)nd->round;
            break;
        }
        cv_wait_until(nd, until);
    }
    if (rc == FF_OK && nd->roster_version > 0 && req->roster_version != nd->roster_version &&
        roster_wire_locked(nd, c, &reply->roster) != FF_OK)
        FF_LOG_WARN("site %s: roster not sent: %s", c->site, ff_error_message());
    pthread_mutex_unlock(&nd->mu);
    return rc;
}

static int on_download(void *user, ff_call *c, const Fedfuse__DownloadRequest *req,
                       ff_source *src)
{
    node *nd = user;
    int rc = ff_error(FF_ENOTFOUND, "download: no model with that sha256 (site %s)", c->site);
    pthread_mutex_lock(&nd->mu);
    for (blob *b = nd->blobs; b; b = b->next)
        if (req->sha256.len == FF_SHA256_BYTES && memcmp(b->sha, req->sha256.data, FF_SHA256_BYTES) == 0) {
            b->refs++;
            src->buf = b->data;
            src->size = b->bytes;
            src->ctx = b;
            memcpy(src->sha256, b->sha, FF_SHA256_BYTES);
            rc = FF_OK;
            break;
        }
    pthread_mutex_unlock(&nd->mu);
    return rc;
}

static void on_download_release(void *user, ff_call *c, ff_source *src)
{
    node *nd = user;
    (void)c;
    pthread_mutex_lock(&nd->mu);
    if (src->ctx)
        blob_release_locked(nd, src->ctx);
    src->ctx = NULL;
    pthread_mutex_unlock(&nd->mu);
}

/* Waits for a free upload slot (until the call is cancelled or the server stops) and points
 * sink at its buffer; sink->ctx points at the slot's busy flag for slot_give_locked. */
static int slot_take(node *nd, ff_call *c, size_t want, ff_sink *sink)
{
    int rc = FF_OK, slot = -1, held = 0;
    pthread_mutex_lock(&nd->mu);
    const int site = fed_coord_site_index(nd, c->site);
    const double until = ff_wall_time() + nd->cfg.limits.slot_wait;
    for (int i = 0; i < FED_UPLOAD_SLOTS; i++)
        held += nd->slot_busy[i] && nd->slot_site[i] == site;
    for (;;) {
        for (int i = 0; slot < 0 && held < FED_SITE_SLOTS && i < FED_UPLOAD_SLOTS; i++)
            if (!nd->slot_busy[i])
                slot = i;
        if (slot >= 0 || held >= FED_SITE_SLOTS || nd->fatal || ff_call_cancelled(c) ||
            ff_wall_time() >= until)
            break;
        cv_wait_until(nd, until);
    }
    if (held >= FED_SITE_SLOTS) {
        rc = ff_error(FF_ENOMEM, "upload from %s: it already has %d uploads in progress, the "
                      "most one site may hold", c->site, held);
    } else if (slot < 0 && !nd->fatal && !ff_call_cancelled(c)) {
        /* UNAVAILABLE: the site retries later, with back-off */
        rc = ff_error(FF_ENET, "upload from %s: all %d upload buffers stayed busy for %g s "
                      "(limits.slot_wait); retry", c->site, FED_UPLOAD_SLOTS,
                      nd->cfg.limits.slot_wait);
    } else if (slot < 0) {
        rc = ff_error(FF_ENET, "upload from %s: the coordinator is stopping", c->site);
    } else if (nd->slot_cap[slot] < want) {
        free(nd->slot_buf[slot]);
        nd->slot_cap[slot] = 0;
        if (!(nd->slot_buf[slot] = malloc(want)))
            rc = ff_error(FF_ENOMEM, "upload from %s: out of memory for %zu bytes", c->site, want);
        else
            nd->slot_cap[slot] = want;
    }
    if (rc == FF_OK) {
        nd->slot_busy[slot] = 1;
        nd->slot_site[slot] = site;
        sink->buf = nd->slot_buf[slot];
        sink->cap = want;
        sink->ctx = &nd->slot_busy[slot];
    }
    pthread_mutex_unlock(&nd->mu);
    return rc;
}

/* Returns the upload's slot (caller holds nd->mu) and wakes uploads waiting for one. */
static void slot_give_locked(node *nd, ff_sink *sink)
{
    if (sink->ctx)
        *(unsigned char *)sink->ctx = 0;
    sink->ctx = NULL;
    sink->buf = NULL;
    pthread_cond_broadcast(&nd->cv);
}

/* Whether hdr is the upload this site last had accepted, sent again: the link broke after the
 * coordinator took it but before the site heard so, and the site's transport retried. Such a
 * resend is acknowledged again rather than refused as a duplicate or as late, or the site,
 * told "refused", would keep no receipt of a round it was aggregated in (fault_net_link_cut).
 * The signed commitment binds site, round, job, starting model and update hash, so a resend
 * cannot carry a different update. Caller holds nd->mu. */
static int is_resend_locked(const node *nd, const char *site, const Fedfuse__UploadHeader *hdr)
{
    int s = fed_coord_site_index(nd, site);
    if (s < 0 || !nd->accepted[s].set || hdr->commitment_sha256.len != FF_SHA256_BYTES)
        return 0;
    return nd->accepted[s].round == (int64_t)hdr->round &&
           ff_ct_equal(nd->accepted[s].commitment, hdr->commitment_sha256.data, FF_SHA256_BYTES);
}

static void note_accepted_locked(node *nd, const char *site, const Fedfuse__UploadHeader *hdr)
{
    int s = fed_coord_site_index(nd, site);
    if (s < 0 || hdr->commitment_sha256.len != FF_SHA256_BYTES)
        return;
    nd->accepted[s].round = (int64_t)hdr->round;
    memcpy(nd->accepted[s].commitment, hdr->commitment_sha256.data, FF_SHA256_BYTES);
    nd->accepted[s].set = 1;
}

static int on_upload_begin(void *user, ff_call *c, const Fedfuse__UploadHeader *hdr, ff_sink *sink)
{
    node *nd = user;
    pthread_mutex_lock(&nd->mu);
    size_t want = ff_coord_nparams(nd->c) * sizeof(float);
    int64_t round = nd->round;
    int secagg = nd->cfg.secure_aggregation.enabled;
    const int resend = is_resend_locked(nd, c->site, hdr);
    pthread_mutex_unlock(&nd->mu);
    if (secagg) {
        /* the masked input: header + one uint32 lane per parameter (per padded coordinate
         * with the distributed discrete Gaussian) + the weight lane */
        size_t lanes = want / sizeof(float);
        if (nd->dp.on && nd->dp.ddg)
            lanes = ff_privacy_ddg_padded_dim(lanes);
        want = FF_SECAGG_HEADER_BYTES + (lanes + 1) * sizeof(uint32_t);
        if (hdr->kind != FEDFUSE__UPLOAD_KIND__UPLOAD_MASKED_UPDATE ||
            hdr->phase != FEDFUSE__PHASE__PHASE_SECAGG_MASKED_INPUT)
            return ff_error(FF_EINVAL, "upload from %s: secure aggregation is on; only masked "
                            "inputs of the masked_input phase are accepted", c->site);
    } else if (hdr->kind != FEDFUSE__UPLOAD_KIND__UPLOAD_UPDATE ||
               hdr->phase != FEDFUSE__PHASE__PHASE_TRAIN) {
        return ff_error(FF_EINVAL, "upload from %s: only plain updates of the train phase are "
                        "accepted", c->site);
    }
    if ((int64_t)hdr->round != round && !resend)
        return ff_error(FF_ESTATE, "upload from %s: round %u is not the current round %lld",
                        c->site, hdr->round, (long long)round);
    if (hdr->total_size != want)
        return ff_error(FF_EINVAL, "upload from %s: %llu bytes, the model update is %zu bytes",
                        c->site, (unsigned long long)hdr->total_size, want);
    return slot_take(nd, c, want, sink);
}

/* The site's signed commitment to the update just accepted (docs/audit.md): into the log,
 * before the round can be aggregated (the engine aggregates under nd->mu, in drive()). */
static void log_commitment(node *nd, ff_call *c, const Fedfuse__UploadHeader *hdr)
{
    if (hdr->commitment_sha256.len != FF_SHA256_BYTES || hdr->commitment_sig.len != 64) {
        FF_LOG_WARN("round %u: the update of %s carries no signed commitment; the audit log "
                    "cannot bind its participation to the site", hdr->round, c->site);
        return;
    }
    char model[FF_SHA256_HEX];
    ff_hex(nd->cur->sha, FF_SHA256_BYTES, model);
    fed_audit_commitment(&nd->audit, hdr->round, nd->attempt, c->site, model,
                         hdr->commitment_sha256.data, hdr->commitment_sig.data);
}

static int on_upload_end(void *user, ff_call *c, const Fedfuse__UploadHeader *hdr, ff_sink *sink,
                         int status)
{
    node *nd = user;
    int rc = FF_OK, reason = 0;
    pthread_mutex_lock(&nd->mu);
    if (status == FF_OK && is_resend_locked(nd, c->site, hdr)) {
        FF_LOG_INFO("round %u: %s sent its update again (our acknowledgement did not reach it); "
                    "it was counted once, acknowledged again", hdr->round, c->site);
        slot_give_locked(nd, sink);
        pthread_mutex_unlock(&nd->mu);
        return FF_OK;
    }
    if (status == FF_OK && hdr->kind == FEDFUSE__UPLOAD_KIND__UPLOAD_MASKED_UPDATE) {
        rc = ff_coord_submit(nd->c, FF_PHASE_MASKED, c->site, hdr->round, sink->buf, sink->cap,
                             &reason);
        if (rc == FF_OK && fed_coord_site_index(nd, c->site) >= 0)
            nd->pending[fed_coord_site_index(nd, c->site)] = 0;
        if (rc == FF_OK)
            FF_LOG_INFO("round %u: masked input from %s accepted", hdr->round, c->site);
        if (rc == FF_OK)
            fed_test_kill_at(FF_PHASE_MASKED, hdr->round);
    } else if (status == FF_OK) {
        /* the engine adds the update into its running sum; the buffer is reused after this */
        rc = ff_coord_submit_update_ex(nd->c, c->site, hdr->round, -1, sink->buf,
                                       ff_coord_nparams(nd->c), (double)hdr->example_count,
                                       &reason);
        if (rc == FF_OK) {
            FF_LOG_INFO("round %u: update from %s accepted (%llu examples)", hdr->round, c->site,
                        (unsigned long long)hdr->example_count);
            fed_test_kill_at(FF_PHASE_TRAIN, hdr->round);
        }
    }
    if (status == FF_OK && rc == FF_OK) {
        log_commitment(nd, c, hdr);
        note_accepted_locked(nd, c->site, hdr);
    }
    slot_give_locked(nd, sink); /* also wakes the long-polls: the engine may have moved */
    pthread_mutex_unlock(&nd->mu);
    return rc;
}

static int on_submit_eval(void *user, ff_call *c, const Fedfuse__EvalSubmission *req,
                          Fedfuse__Ack *reply)
{
    node *nd = user;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)req->summary.data, req->summary.len, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        return ff_error(FF_EFORMAT, "evaluation from %s: not a JSON object (%s)", c->site, jerr.text);
    }
    ff_coord_eval e = {.n_examples = json_number_value(json_object_get(j, "n_examples")),
                       .loss = json_number_value(json_object_get(j, "loss")),
                       .auroc = NAN,
                       .blob = req->summary.data,
                       .blob_len = req->summary.len};
    json_decref(j);
    pthread_mutex_lock(&nd->mu);
    int reason = 0;
    int rc = ff_coord_submit_eval(nd->c, c->site, req->round, &e, &reason);
    int idx = fed_coord_site_index(nd, c->site);
    if (rc == FF_OK && idx >= 0)
        nd->pending[idx] = 0; /* not offered again before the next poll's snapshot */
    if (rc == FF_OK)
        fed_test_kill_at(FF_PHASE_EVALUATE, req->round);
    pthread_cond_broadcast(&nd->cv);
    pthread_mutex_unlock(&nd->mu);
    reply->accepted = rc == FF_OK;
    return rc;
}

/* A site declines its train or evaluate task (the engine bounds and cleans its reason). */
static int on_decline(void *user, ff_call *c, const Fedfuse__DeclineRequest *req,
                      Fedfuse__Ack *reply)
{
    node *nd = user;
    const ff_phase_info *info = ff_phase_by_wire((int)req->phase);
    const char *phase = info && info->declinable ? info->name : NULL;
    if (!phase && !req->whole_job)
        return ff_error(FF_EINVAL, "decline from %s: phase %d cannot be declined", c->site,
                        (int)req->phase);
    int rc = FF_OK;
    if (phase) {
        pthread_mutex_lock(&nd->mu);
        int reason = 0;
        rc = ff_coord_decline(nd->c, phase, c->site, req->round, req->reason, &reason);
        int idx = fed_coord_site_index(nd, c->site);
        if (rc == FF_OK && idx >= 0)
            nd->pending[idx] = 0;
        pthread_cond_broadcast(&nd->cv);
        pthread_mutex_unlock(&nd->mu);
    }
    if (req->whole_job) {
        /* the site refuses the job itself (or cannot run at all): after the phase has its
         * decline, the site is gone: not selected, nor waited for, until its next Hello */
        char why[256];
        ff_strlcpy(why, req->reason, sizeof why);
        for (char *q = why; *q; q++)
            if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
                *q = '?';
        site_gone(nd, c->site, why);
        rc = FF_OK; /* the phase may have moved on: the site is gone all the same */
    }
    reply->accepted = rc == FF_OK;
    return rc;
}

/* The secure-aggregation messages of the advertise, share, consistency-check and unmask
 * phases (small). */
static int on_secagg(void *user, ff_call *c, const Fedfuse__SecAggEnvelope *req,
                     Fedfuse__SecAggEnvelope *reply)
{
    node *nd = user;
    const ff_phase_info *info = ff_phase_by_wire((int)req->phase);
    const char *phase = info && info->actor == FF_ACT_ENVELOPE ? info->name : NULL;
    if (!phase)
        return ff_error(FF_EINVAL, "secagg from %s: phase %d is not sent as an envelope", c->site,
                        (int)req->phase);
    pthread_mutex_lock(&nd->mu);
    int reason = 0;
    int rc = nd->cfg.secure_aggregation.enabled
                 ? ff_coord_submit(nd->c, phase, c->site, req->round, req->body.data,
                                   req->body.len, &reason)
                 : ff_error(FF_EPOLICY, "secagg from %s: secure aggregation is off", c->site);
    if (rc == FF_OK) {
        /* not offered again before the engine's next poll refreshes the snapshot */
        int idx = fed_coord_site_index(nd, c->site);
        if (idx >= 0)
            nd->pending[idx] = 0;
        FF_LOG_INFO("round %u: %s message from %s accepted", req->round, phase, c->site);
        fed_test_kill_at(phase, req->round);
    }
    pthread_cond_broadcast(&nd->cv);
    reply->run_id = ff_call_strdup(c, nd->run_id);
    reply->round = (uint32_t)nd->round;
    reply->phase = req->phase;
    pthread_mutex_unlock(&nd->mu);
    return rc;
}


/* Test hook (testhook.c), run before the audit log's hook: a kill after the checkpoint is
 * written, before the audit log records the round (the checkpoint's commit point,
 * ff_coord_set_commit_check). */
static void on_test_event_early(void *ud, const ff_coord_event *ev)
{
    (void)ud;
    if (ev->type == FF_EV_CHECKPOINT)
        fed_test_kill_at("checkpoint_unlogged", ev->round);
}

/* Test hook (testhook.c): the server-side steps of a round as kill points, after the
 * audit log has seen the event (its hook was added first). */
static void on_test_event(void *ud, const ff_coord_event *ev)
{
    (void)ud;
    const char *point = ev->type == FF_EV_SITES_SELECTED ? "select"
                        : ev->type == FF_EV_AGGREGATE    ? "aggregate"
                        : ev->type == FF_EV_MODEL        ? "update"
                        : ev->type == FF_EV_CHECKPOINT   ? "checkpoint"
                                                         : NULL;
    if (point)
        fed_test_kill_at(point, ev->round);
}

/* ---- setup ------------------------------------------------------------------------------- */

static const char *config_path_of(const node *nd)
{
    return nd->config_path ? nd->config_path : "coordinator config";
}

/* The plan's privacy section against this run: its sites, secure aggregation and the ε a
 * resumed run already spent. */
static int check_privacy(const node *nd, double spent)
{
    ff_privacy_context ctx = {.num_sites = (int64_t)nd->cons.sites.count,
                              .client_eps_spent = spent};
    const ff_strategy_config *st = &nd->cfg.strategy;
    if (nd->plan.privacy.client.enabled && (st->aggregator != FF_AGG_MEAN || st->clip_multiple > 0))
        return ff_error(FF_ECONFIG, "%s: strategy.%s: cannot be combined with the plan's "
                        "privacy.client (its noise is calibrated to the sum of updates clipped "
                        "to clip_norm)", config_path_of(nd),
                        st->aggregator != FF_AGG_MEAN ? "aggregator" : "clip_multiple");
    return ff_plan_check_privacy(&nd->plan, nd->cfg.plan[0] ? nd->cfg.plan : "(default plan)",
                                 nd->plan_yaml, nd->plan_len, &ctx,
                                 nd->cfg.secure_aggregation.enabled);
}

/* Every file the config names, checked before any work: FILE:LINE:COL: key: why. */
static int check_files(const ff_coord_config *cfg, const char *path)
{
    if (!cfg->model_config[0] && !cfg->query[0])
        return ff_cfg_error_at(FF_ECONFIG, path, "model_config", "needed to run the coordinator");
    if (!cfg->consortium[0])
        return ff_cfg_error_at(FF_ECONFIG, path, "consortium", "needed to run the coordinator");
    const struct {
        const char *key, *p;
        int kind;
    } f[] = {{"model_config", cfg->model_config, FED_PATH_FILE},
             {"plan", cfg->plan, FED_PATH_FILE},
             {"consortium", cfg->consortium, FED_PATH_FILE},
             {"tls.cert", cfg->tls.cert, FED_PATH_FILE},
             {"tls.key", cfg->tls.key, FED_PATH_KEY},
             {"audit.cert", cfg->audit.cert, FED_PATH_FILE},
             {"audit.key", cfg->audit.key, FED_PATH_KEY}};
    int rc = FF_OK;
    for (size_t i = 0; rc == FF_OK && i < FF_ARRAY_LEN(f); i++)
        if (f[i].p[0])
            rc = fed_check_path(path, f[i].key, f[i].p, f[i].kind);
    if (rc == FF_OK && cfg->tls.cert[0])
        rc = fed_check_cert(path, "tls.cert", cfg->tls.cert, NULL);
    if (rc == FF_OK && cfg->audit.cert[0])
        rc = fed_check_cert(path, "audit.cert", cfg->audit.cert, NULL);
    return rc;
}

static int job_bytes(node *nd)
{
    for (int i = 0; i < FF_SHA256_BYTES; i++) {
        unsigned v;
        if (sscanf(nd->job_hex + 2 * i, "%2x", &v) != 1)
            return ff_error(FF_EINTERNAL, "job hash is not hex");
        nd->job[i] = (uint8_t)v;
    }
    return FF_OK;
}

/* A statistics job: the query is the job (its text is sent as the task's plan), one round,
 * no model; the engine's default plan only gives the round its stage. */
static int load_stats(node *nd)
{
    nd->is_stats = 1;
    nd->cfg.rounds = 1;
    int rc = fed_stats_load(&nd->sj, &nd->cfg, nd->config_path);
    if (rc == FF_OK)
        rc = ff_plan_load_str(&nd->plan, "(statistics job)", "{}", 2, 1);
    if (rc == FF_OK && !(nd->plan_yaml = malloc(nd->sj.len + 1)))
        rc = ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK) {
        memcpy(nd->plan_yaml, nd->sj.text, nd->sj.len);
        nd->plan_len = nd->sj.len;
        ff_strlcpy(nd->job_hex, nd->sj.job_hex, sizeof nd->job_hex);
        rc = job_bytes(nd);
    }
    if (rc == FF_OK)
        rc = ff_consortium_load(nd->cfg.consortium, &nd->cons);
    return rc;
}

static int load_inputs(node *nd, const char *config_path, ff_model **model, char **mc_bytes,
                       size_t *mc_len)
{
    int rc = ff_coord_config_load(&nd->cfg, config_path);
    if (rc != FF_OK)
        return rc;
    rc = check_files(&nd->cfg, config_path);
    if (rc != FF_OK)
        return rc;
    if (nd->cfg.query[0])
        return load_stats(nd);
    ff_coord_job job;
    rc = ff_coord_job_load(&job, &nd->cfg, config_path, 1);
    /* the node keeps the job's parts: the plan and its text are sent with every task */
    nd->plan = job.plan;
    nd->plan_yaml = job.plan_yaml;
    nd->plan_len = job.plan_len;
    *mc_bytes = job.model;
    *mc_len = job.model_len;
    ff_strlcpy(nd->job_hex, job.hex, sizeof nd->job_hex);
    if (rc == FF_OK)
        rc = job_bytes(nd);
    ff_model_config mc;
    if (rc == FF_OK)
        rc = ff_model_config_load(nd->cfg.model_config, &mc);
    if (rc == FF_OK)
        rc = ff_model_new(model, &mc, 1);
    if (rc == FF_OK)
        rc = ff_model_init(*model, (uint64_t)nd->cfg.seed);
    if (rc == FF_OK)
        rc = ff_consortium_load(nd->cfg.consortium, &nd->cons);
    if (rc == FF_OK)
        rc = check_privacy(nd, 0);
    return rc;
}

static int make_engine(node *nd, ff_model *m, ff_coord_tensor **tabp)
{
    /* a statistics job's "model" is one tensor of the query's lanes, all zero */
    size_t nt = m ? ff_model_ntensors(m) : 1;
    ff_coord_tensor *tab = calloc(nt, sizeof *tab);
    const size_t cap = FF_COORD_MAX_SITES;
    nd->nsites = nd->cons.sites.count;
    nd->names = calloc(cap, sizeof *nd->names);
    nd->name_buf = calloc(cap, sizeof *nd->name_buf);
    nd->pending = calloc(cap, 1);
    nd->accepted = calloc(cap, sizeof *nd->accepted);
    nd->done_sent = calloc(cap, 1);
    nd->last_seen = calloc(cap, sizeof *nd->last_seen);
    nd->reports = calloc(cap, sizeof *nd->reports);
    nd->gone = calloc(cap, sizeof *nd->gone);
    nd->cert_pem = calloc(cap, sizeof *nd->cert_pem);
    nd->site_keys = calloc(cap, sizeof *nd->site_keys);
    if (!tab || !nd->names || !nd->name_buf || !nd->pending || !nd->accepted || !nd->done_sent ||
        !nd->last_seen ||
        !nd->reports || !nd->gone || !nd->cert_pem || !nd->site_keys) {
        free(tab);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    *tabp = tab;
    size_t off = 0;
    if (!m) {
        tab[0].name = "statistics";
        tab[0].ndim = 1;
        tab[0].shape[0] = (int64_t)ff_stats_lanes(nd->sj.q);
        off = ff_stats_lanes(nd->sj.q);
    }
    for (size_t i = 0; m && i < nt; i++) {
        const ff_param_info *p = ff_model_tensor(m, i);
        tab[i].name = p->name;
        tab[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            tab[i].shape[d] = p->shape[d];
        tab[i].offset = off;
        off += p->numel;
    }
    float *init = calloc(off + 1, sizeof(float));
    if (!init)
        return ff_error(FF_ENOMEM, "out of memory");
    if (m)
        fed_pack(m, init);
    const ff_consortium_site *cs = nd->cons.sites.items;
    for (size_t i = 0; i < nd->nsites; i++) {
        ff_strlcpy(nd->name_buf[i], cs[i].name, sizeof nd->name_buf[i]);
        nd->names[i] = nd->name_buf[i];
    }
    ff_coord_model cm = {.n = off, .tensors = tab, .ntensors = nt, .init = init};
    int rc = ff_coord_new(&nd->c, &nd->cfg, &cm, nd->names, nd->nsites);
    free(init);
    if (rc != FF_OK)
        return rc;
    ff_coord_set_plan(nd->c, &nd->plan, nd->job_hex);
    return FF_OK;
}

/* Lets every site fetch its DONE task (so client processes end cleanly), for at most 10 s. */
static void drain_done_locked(node *nd)
{
    double until = ff_wall_time() + 10.0;
    size_t left = 0;
    while (ff_wall_time() < until) {
        left = 0;
        for (size_t i = 0; i < nd->nsites; i++)
            left += nd->last_seen[i] > 0 && !nd->done_sent[i];
        if (left == 0)
            break;
        cv_wait_until(nd, until);
    }
    for (size_t i = 0; left > 0 && i < nd->nsites; i++)
        if (nd->last_seen[i] > 0 && !nd->done_sent[i])
            FF_LOG_WARN("site %s did not fetch the end of the run within 10 s; it will find the "
                        "coordinator gone and retry until its give_up_after", nd->names[i]);
    /* The last DONE replies are still being sent when their handlers return; stopping the
     * server now would cancel them and leave a client retrying a coordinator that is gone. */
    pthread_mutex_unlock(&nd->mu);
    usleep(1000000);
    pthread_mutex_lock(&nd->mu);
}

/* A phase waiting for sites says so once a minute, naming them (not once per poll). */
static void log_wait_locked(node *nd, const ff_coord_status *st)
{
    double now = ff_wall_time();
    if (st->npending == 0 || nd->stats.phase_opened <= 0) {
        nd->wait_logged = 0;
        return;
    }
    if (nd->wait_logged < nd->stats.phase_opened)
        nd->wait_logged = nd->stats.phase_opened;
    if (now - nd->wait_logged < FED_WAIT_LOG_S)
        return;
    nd->wait_logged = now;
    char names[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < st->npending && len + 1 < sizeof names; i++) {
        int k = st->pending[i];
        if (k < 0 || (size_t)k >= nd->nsites)
            continue;
        int w = snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", nd->names[k]);
        len = w > 0 ? FF_MIN(len + (size_t)w, sizeof names - 1) : len;
    }
    FF_LOG_INFO("round %lld phase %s: waiting for %zu site(s) for %.0f s: %s; deadline in %.0f s",
                (long long)st->round, nd->phase, st->npending, now - nd->stats.phase_opened, names,
                FF_MAX(st->deadline_in, 0.0));
}


static int drive(node *nd, const ff_fed_run_opts *o)
{
    int rc = FF_OK;
    pthread_mutex_lock(&nd->mu);
    /* the enrolled sites are waited for before the first round this process starts, fresh or
     * resumed: a restarted coordinator must not redo a round without the sites still polling */
    const int64_t round0 = ff_coord_round(nd->c);
    while (!(o && o->stop && *o->stop)) {
        ff_coord_status st;
        int hold = 0;
        rc = liveness_locked(nd, &hold);
        if (rc == FF_OK && hold && ff_coord_round(nd->c) == round0) {
            cv_wait_until(nd, ff_wall_time() + 0.2);
            continue;
        }
        if (rc == FF_OK)
            rc = ff_coord_poll(nd->c, &st);
        if (rc == FF_OK && nd->audit.failed)
            rc = ff_error(FF_EIO, "audit log: %s", nd->audit.why);
        if (rc == FF_OK && ff_server_failed(nd->srv))
            rc = ff_error(FF_ENET, "%s: stopping so that the service manager restarts the "
                          "coordinator (it resumes from its checkpoint)", ff_server_failed(nd->srv));
        if (rc == FF_OK)
            rc = snapshot_locked(nd, &st);
        if (rc == FF_OK)
            fed_coord_live_update_locked(nd);
        pthread_cond_broadcast(&nd->cv);
        if (rc != FF_OK || st.state == FF_COORD_DONE)
            break;
        log_wait_locked(nd, &st);
        double now = ff_wall_time();
        cv_wait_until(nd, now + FF_MIN(FF_MAX(st.deadline_in, 0.01), 0.5));
    }
    if (rc != FF_OK) {
        nd->fatal = 1;
        pthread_cond_broadcast(&nd->cv);
    } else if (nd->state == FF_COORD_DONE) {
        drain_done_locked(nd);
        /* the last live.html: the sites told the run is done show as done, not as waiting */
        nd->live_key[0] = '\0';
        fed_coord_live_update_locked(nd);
    }
    pthread_mutex_unlock(&nd->mu);
    if (rc == FF_OK && o && o->stop && *o->stop)
        rc = ff_error(FF_ESTATE, "coordinator stopped by a signal (the checkpoint allows a resume)");
    return rc;
}

int ff_fed_coordinator_run(const char *config_path, const ff_fed_run_opts *o)
{
    node nd;
    memset(&nd, 0, sizeof nd);
    pthread_mutex_init(&nd.mu, NULL);
    pthread_cond_init(&nd.cv, NULL);
    nd.blob_round = -1;
    ff_model *m = NULL;
    char *mc_bytes = NULL;
    size_t mc_len = 0;
    ff_coord_tensor *tab = NULL;
    ff_server *srv = NULL;
    nd.config_path = config_path;
    nd.t_start = ff_now();
    int rc = load_inputs(&nd, config_path, &m, &mc_bytes, &mc_len);
    if (rc == FF_OK) {
        /* the line `fedfuse job hash --config` prints: what the sites approve */
        printf("job %s\n", nd.job_hex);
        fflush(stdout);
    }
    if (rc == FF_OK)
        rc = ff_mkdir_p(nd.cfg.out_dir, 0755);
    if (rc == FF_OK)
        rc = make_engine(&nd, m, &tab);
    snprintf(nd.run_id, sizeof nd.run_id, "%s-%lld-%d", nd.cfg.run_name, (long long)fed_coord_unix_ms(), (int)getpid());
    if (rc == FF_OK && !nd.is_stats)
        rc = fed_evalstate_init(&nd.ev, nd.c, nd.names, nd.nsites, nd.cfg.out_dir,
                                &nd.cfg.report);
    if (rc == FF_OK && fed_test_kill_set())
        rc = ff_coord_add_hook(nd.c, on_test_event_early, NULL);
    if (rc == FF_OK)
        rc = fed_audit_open(&nd.audit, &nd.cfg, config_path, nd.job_hex, nd.c);
    if (rc == FF_OK)
        nd.ev.audit = &nd.audit;
    if (rc == FF_OK)
        rc = ff_pki_load_cert(nd.cons.ca, &nd.ca);
    if (rc == FF_OK) {
        pthread_mutex_lock(&nd.mu);
        rc = roster_load_site_certs(&nd, nd.cfg.secure_aggregation.site_certs, 0);
        roster_crl_locked(&nd);
        if (nd.roster_version == 0)
            roster_rebuild_locked(&nd);
        pthread_mutex_unlock(&nd.mu);
    }
    if (rc == FF_OK && nd.cfg.secure_aggregation.enabled)
        rc = fed_secagg_install(&nd.sa, nd.c, &nd.cfg, nd.names, nd.nsites, nd.site_keys,
                                nd.run_id, &nd.audit);
    if (rc == FF_OK && nd.is_stats)
        rc = fed_stats_install(&nd.sj, nd.c, &nd.sa, &nd.audit);
    if (rc == FF_OK)
        rc = fed_dp_install(&nd.dp, nd.c, &nd.cfg, &nd.plan, &nd.audit);
    nd.sa.dp = &nd.dp;
    if (rc == FF_OK && fed_test_kill_set())
        rc = ff_coord_add_hook(nd.c, on_test_event, NULL);
    nd.stats.started = ff_wall_time();
    if (rc == FF_OK)
        rc = ff_coord_add_hook(nd.c, fed_coord_stats_hook, &nd.stats);
    int resumed = 0;
    double spent = 0;
    if (rc == FF_OK)
        rc = ff_coord_resume(nd.c, &resumed);
    if (rc == FF_OK)
        rc = fed_dp_start(&nd.dp, resumed, &spent);
    if (rc == FF_OK && nd.dp.on)
        rc = check_privacy(&nd, spent);
    if (rc == FF_OK && resumed && !nd.is_stats)
        rc = fed_evalstate_resume(&nd.ev);
    if (rc == FF_OK && o && o->progress)
        ff_coord_set_progress(nd.c, stderr);
    if (rc == FF_OK) {
        ff_server_opts so = {.bind = nd.cfg.listen, .cert = nd.cfg.tls.cert, .key = nd.cfg.tls.key,
                             .consortium = nd.cfg.consortium, .chunk_size = 256u << 10,
                             .handshake_timeout_ms = (int)nd.cfg.limits.handshake_timeout_ms,
                             .site_max_calls = (int)nd.cfg.limits.site_max_calls,
                             .upload_min_rate = (uint32_t)nd.cfg.limits.upload_min_rate,
                             .upload_grace_ms = (int)(nd.cfg.limits.upload_grace * 1000),
                             .watchdog_ms = nd.cfg.limits.watchdog > 0 ? (int)(nd.cfg.limits.watchdog * 1000) : -1};
        ff_server_handlers h = {.user = &nd, .hello = on_hello, .get_task = on_get_task,
                                .download = on_download, .download_release = on_download_release,
                                .upload_begin = on_upload_begin, .upload_end = on_upload_end,
                                .submit_eval = on_submit_eval, .status = fed_coord_on_status, .decline = on_decline,
                                .secagg = on_secagg, .refused = on_refused,
                                .enrolled = on_enrolled};
        rc = ff_server_start(&srv, &so, &h);
        nd.srv = srv;
    }
    fed_metrics *metrics = NULL;
    if (rc == FF_OK && nd.cfg.metrics[0])
        rc = fed_metrics_start(&metrics, nd.cfg.metrics, fed_coord_render_metrics, &nd);
    if (rc == FF_OK) {
        FF_LOG_INFO("coordinator %s: %zu sites, %lld rounds, listening on %s (port %d)%s, job %s",
                    nd.cfg.run_name, nd.nsites, (long long)nd.cfg.rounds, nd.cfg.listen,
                    ff_server_port(srv), resumed ? ", resumed from checkpoint" : "", nd.job_hex);
        rc = drive(&nd, o);
    }
    fed_metrics_stop(metrics);
    if (srv) {
        /* Stopping the server wakes blocked long-polls (cancelled calls). */
        pthread_mutex_lock(&nd.mu);
        nd.fatal = 1;
        pthread_cond_broadcast(&nd.cv);
        pthread_mutex_unlock(&nd.mu);
        ff_server_stop(srv);
    }
    if (nd.is_stats && nd.sj.q) {
        /* written whatever happened: the refusals and their reasons are the answer then */
        int src = fed_stats_finish(&nd.sj);
        if (rc == FF_OK)
            rc = src;
    } else if (rc == FF_OK) {
        rc = fed_evalstate_finish(&nd.ev);
    }
    if (rc == FF_OK && !nd.is_stats)
        FF_LOG_INFO("run %s finished: %s/model.safetensors, rounds.csv, report.html", nd.cfg.run_name,
                    nd.cfg.out_dir);
    fed_secagg_free(&nd.sa);
    fed_stats_free(&nd.sj);
    fed_dp_free(&nd.dp);
    fed_audit_close(&nd.audit);
    fed_evalstate_free(&nd.ev);
    ff_coord_free(nd.c);
    while (nd.blobs) {
        blob *b = nd.blobs;
        nd.blobs = b->next;
        free(b->data);
        free(b);
    }
    for (int i = 0; i < FED_UPLOAD_SLOTS; i++)
        free(nd.slot_buf[i]);
    free(tab);
    free(nd.names);
    free(nd.name_buf);
    free(nd.pending);
    free(nd.accepted);
    free(nd.done_sent);
    free(nd.last_seen);
    free(nd.reports);
    free(nd.gone);
    for (size_t i = 0; nd.cert_pem && i < nd.nsites; i++) {
        free(nd.cert_pem[i]);
        EVP_PKEY_free(nd.site_keys[i]);
    }
    free(nd.cert_pem);
    free(nd.site_keys);
    free(nd.crl_pem);
    X509_free(nd.ca);
    free(nd.plan_yaml);
    free(mc_bytes);
    ff_model_free(m);
    ff_consortium_free(&nd.cons);
    ff_plan_free(&nd.plan);
    ff_coord_config_free(&nd.cfg);
    pthread_cond_destroy(&nd.cv);
    pthread_mutex_destroy(&nd.mu);
    return rc;
}
