/* The hospital client process: Hello, then GetTask long-polls; each task is checked against
 * the site's own policy and the approved job, the global model is downloaded (SHA-256
 * checked), trained on locally or evaluated, and the result sent; every round it trains in
 * leaves a signed receipt. It dials out only and reconnects by itself. */
#include "client_internal.h"


/* Moves the node to state `to` along the state table (client_state.c); a move off the table
 * is a bug in this file, said with both names (the move is made: the report stays true). */
static void set_state_locked(cnode *cn, int to)
{
    if (!fed_cn_state_may(cn->state, to))
        FF_LOG_ERROR("client node: state %s -> %s is not in the state table",
                     fed_cn_state_name(cn->state), fed_cn_state_name(to));
    cn->state = to;
}

static void set_state(cnode *cn, int to)
{
    pthread_mutex_lock(&cn->mu);
    set_state_locked(cn, to);
    pthread_mutex_unlock(&cn->mu);
}

void fed_cn_set_error(cnode *cn, fed_err e)
{
    pthread_mutex_lock(&cn->mu);
    cn->err = e;
    cn->err_at = ff_wall_time();
    cn->errors[e]++;
    pthread_mutex_unlock(&cn->mu);
}

void fed_cn_hex_of(const ProtobufCBinaryData *b, char out[FF_SHA256_HEX])
{
    if (b->len == FF_SHA256_BYTES)
        ff_hex(b->data, FF_SHA256_BYTES, out);
    else
        ff_strlcpy(out, "(none)", FF_SHA256_HEX);
}


/* The task's DP claims (what the policy's dp: limits were checked against) must be the
 * approved plan's privacy.client, which the job hash covers (privacy.record is run by
 * fed_cn_train_local from the plan itself). */
static int check_task_dp(const Fedfuse__Task *t, const ff_plan *plan)
{
    const ff_privacy_cfg *p = &plan->privacy;
    const Fedfuse__DpParams *dp = t->dp;
    int claims = dp && dp->enabled;
    if (claims != p->client.enabled ||
        (claims && (dp->noise_multiplier != p->client.noise_multiplier ||
                    dp->clip_norm != p->client.clip_norm ||
                    dp->epsilon != p->client.epsilon_budget || dp->delta != p->client.delta)))
        return ff_error(FF_EPOLICY, "the task's dp parameters (enabled %d, noise multiplier %g, "
                        "clip %g, epsilon %g, delta %g) are not the approved plan's "
                        "privacy.client", claims, claims ? dp->noise_multiplier : 0,
                        claims ? dp->clip_norm : 0, claims ? dp->epsilon : 0,
                        claims ? dp->delta : 0);
    return FF_OK;
}

/* Policy, job hash recomputed from the plan we were sent and our own model config, size.
 * An unapproved job is refused first (before the plan is read); the plan is bounded in size
 * and depth and checked once per task (ff_fed_task_plan's cache); then its record-level DP
 * (run by this site) can meet dp.required. */
static int check_task(cnode *cn, const Fedfuse__Task *t, const ff_plan **planp, int *whole_job)
{
    *whole_job = 1; /* refusing the job itself: every round would be refused the same way */
    int rc = ff_policy_check_job(&cn->pol, t);
    if (rc != FF_OK)
        return rc;
    char sent[FF_SHA256_HEX];
    fed_cn_hex_of(&t->job_sha256, sent);
    const ff_plan *plan;
    rc = ff_fed_task_plan(&cn->plan_cache, t->plan_yaml.data, t->plan_yaml.len, sent,
                          t->total_rounds, cn->mc_bytes, cn->mc_len, &plan);
    if (rc != FF_OK)
        return rc;
    *planp = plan;
    *whole_job = 0;
    const ff_privacy_record_cfg *pr = &plan->privacy.record;
    ff_policy_record_dp rec = {pr->enabled, pr->epsilon_budget, pr->delta, pr->noise_multiplier,
                               pr->clip_norm};
    rc = ff_policy_check(&cn->pol, t, &rec);
    if (rc != FF_OK) {
        *whole_job = 1;
        return rc;
    }
    rc = check_task_dp(t, plan);
    if (rc == FF_OK && t->model_size != cn->n * sizeof(float))
        rc = ff_error(FF_EPOLICY, "the task's model has %llu bytes, our model config has %zu",
                      (unsigned long long)t->model_size, cn->n * sizeof(float));
    return rc;
}


static int kill_read(void *ctx, uint64_t off, void *dst, size_t n)
{
    const kill_xfer *k = ctx;
    fed_test_kill_at(k->point, k->round);
    memcpy(dst, (const uint8_t *)k->buf + off, n);
    return FF_OK;
}

static int kill_write(void *ctx, uint64_t off, const void *src, size_t n)
{
    const kill_xfer *k = ctx;
    memcpy((uint8_t *)k->buf + off, src, n);
    fed_test_kill_at(k->point, k->round);
    return FF_OK;
}

/* src must have its sha256 set already (a read source needs it). */
void fed_cn_arm_source(ff_source *src, kill_xfer *k, const char *point, uint32_t round)
{
    if (!fed_test_kill_armed(point, round))
        return;
    *k = (kill_xfer){.buf = (void *)src->buf, .point = point, .round = round};
    src->buf = NULL;
    src->read = kill_read;
    src->ctx = k;
}

/* Loads the task's global model into cn->m. The model evaluated after round r is the one
 * trained from in round r + 1, so a model whose SHA-256 matches the last download is not
 * fetched again (half the coordinator's download traffic; bench/load_bench). */
static int fetch_model(cnode *cn, const Fedfuse__Task *t)
{
    ff_sink sink = {.buf = cn->global, .cap = cn->n * sizeof(float)};
    kill_xfer kx = {.buf = cn->global, .point = "download", .round = t->round};
    int rc = fed_cn_local_setup(cn, t);
    if (rc != FF_OK)
        return rc;
    if (!cn->have_global || t->model_sha256.len != FF_SHA256_BYTES ||
        !ff_ct_equal(cn->global_sha, t->model_sha256.data, FF_SHA256_BYTES)) {
        if (fed_test_kill_armed(kx.point, t->round)) {
            sink.buf = NULL;
            sink.write = kill_write;
            sink.ctx = &kx;
        }
        cn->have_global = 0; /* a failed download leaves cn->global partly overwritten */
        rc = ff_rpc_download(cn->cl, t->model_sha256.data, t->model_size, &sink, FED_CALL_TRANSFER_MS);
        if (rc == FF_OK && t->model_sha256.len == FF_SHA256_BYTES) {
            memcpy(cn->global_sha, t->model_sha256.data, FF_SHA256_BYTES);
            cn->have_global = 1;
        }
    }
    if (rc == FF_OK) {
        fed_unpack(cn->m, cn->global);
        fed_cn_local_apply(cn); /* per-site layers: ours, not the global copy */
        memcpy(cn->global_full, ff_model_params(cn->m), ff_model_nparams(cn->m) * sizeof(float));
    }
    return rc;
}

/* The receipt's record-level part: the plan's settings, the site's ε after this round and
 * its whole ledger (every round's q, σ, steps, clip), so an auditor recomputes ε. */
static json_t *plan_record(cnode *cn, const Fedfuse__Task *t)
{
    if (!cn->rec_ledger || ff_privacy_ledger_count(cn->rec_ledger) == 0)
        return NULL;
    const ff_privacy_round *last =
        ff_privacy_ledger_get(cn->rec_ledger, ff_privacy_ledger_count(cn->rec_ledger) - 1);
    if (last->round != (int64_t)t->round)
        return NULL; /* this round trained without record-level DP */
    char *text = NULL;
    if (ff_privacy_ledger_to_json(cn->rec_ledger, &text) != FF_OK)
        return NULL;
    json_t *l = json_loads(text, 0, NULL);
    free(text);
    return json_pack("{s:b, s:f, s:f, s:f, s:f, s:f, s:o}", "enabled", 1, "noise_multiplier",
                     last->sigma, "clip_norm", last->clip_norm, "delta", cn->rec_delta,
                     "epsilon_budget", cn->rec_budget, "epsilon", cn->rec_eps, "ledger", l);
}

/* The site's commitment to its update of round t (docs/audit.md) and its signature, into
 * the upload header (bin and sig must outlive the upload). */
int fed_cn_commit_update(cnode *cn, const Fedfuse__Task *t, const char *update_sha,
                         Fedfuse__UploadHeader *hdr, uint8_t bin[FF_SHA256_BYTES], uint8_t sig[64])
{
    char model[FF_SHA256_HEX], job[FF_SHA256_HEX], hex[FF_SHA256_HEX], sig_hex[FF_AUDIT_SIG_HEX];
    fed_cn_hex_of(&t->model_sha256, model);
    fed_cn_hex_of(&t->job_sha256, job);
    int rc = ff_audit_commitment(cn->sc->site, t->round, job, model, update_sha, hex);
    if (rc == FF_OK)
        rc = ff_audit_commitment_sign(cn->key, cn->sc->site, t->round, job, model, hex, sig_hex);
    if (rc == FF_OK)
        rc = ff_audit_unhex(hex, bin, FF_SHA256_BYTES);
    if (rc == FF_OK)
        rc = ff_audit_unhex(sig_hex, sig, 64);
    if (rc == FF_OK) {
        hdr->commitment_sha256 = (ProtobufCBinaryData){FF_SHA256_BYTES, bin};
        hdr->commitment_sig = (ProtobufCBinaryData){64, sig};
    }
    return rc;
}

/* The coordinator's inclusion proof for the round of our last receipt (in any task's
 * parameters, once that round is aggregated): checked against our own commitment, then the
 * receipt is re-signed with it. */
static void complete_receipt(cnode *cn, const Fedfuse__Task *t)
{
    const Fedfuse__InclusionProof *inc = t->inclusion;
    if (!cn->receipt || !inc ||
        (json_int_t)inc->round != json_integer_value(json_object_get(cn->receipt, "round")))
        return;
    uint8_t leaf[FF_SHA256_BYTES];
    size_t n = inc->n_path_sha256;
    int rc = n <= 64 && inc->root_sha256.len == FF_SHA256_BYTES && inc->size >= 1 &&
                     inc->index < inc->size
                 ? FF_OK
                 : ff_error(FF_EFORMAT, "malformed (%zu path hashes, leaf %llu of %llu)", n,
                            (unsigned long long)inc->index, (unsigned long long)inc->size);
    uint8_t(*path)[FF_SHA256_BYTES] = rc == FF_OK ? calloc(n + 1, sizeof *path) : NULL;
    if (rc == FF_OK && !path)
        rc = ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < n; i++) {
        if (inc->path_sha256[i].len != FF_SHA256_BYTES)
            rc = ff_error(FF_EFORMAT, "path hash %zu has %zu bytes", i, inc->path_sha256[i].len);
        else
            memcpy(path[i], inc->path_sha256[i].data, FF_SHA256_BYTES);
    }
    if (rc == FF_OK)
        rc = ff_audit_unhex(json_string_value(json_object_get(cn->receipt, "commitment")), leaf, sizeof leaf);
    if (rc == FF_OK &&
        ff_audit_merkle_verify(leaf, (size_t)inc->index, (size_t)inc->size,
                               (const uint8_t(*)[FF_SHA256_BYTES])path, n, inc->root_sha256.data) != FF_OK)
        rc = ff_error(FF_ECRYPTO, "the proof does not lead from our commitment to its root");
    if (rc == FF_OK) {
        /* the receipt keeps the proof as the audit log's verifier reads it (hex) */
        char root[FF_SHA256_HEX], h[FF_SHA256_HEX];
        ff_hex(inc->root_sha256.data, FF_SHA256_BYTES, root);
        json_t *pa = json_array();
        for (size_t i = 0; pa && i < n; i++) {
            ff_hex(path[i], FF_SHA256_BYTES, h);
            json_array_append_new(pa, json_string(h));
        }
        json_t *keep = json_pack("{s:I, s:s, s:I, s:I, s:I, s:o}", "aggregate_seq",
                                 (json_int_t)inc->aggregate_seq, "root", root, "size",
                                 (json_int_t)inc->size, "index", (json_int_t)inc->index,
                                 "commitment_seq", (json_int_t)inc->commitment_seq, "path", pa);
        rc = keep ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
        if (rc == FF_OK) {
            json_object_set_new(cn->receipt, "inclusion", keep);
            rc = ff_audit_receipt_write(cn->receipt_path, cn->receipt, cn->key);
        }
    }
    free(path);
    if (rc == FF_OK)
        FF_LOG_INFO("round %lld: receipt completed with the proof that our update is in the "
                    "aggregate", (long long)json_integer_value(json_object_get(cn->receipt, "round")));
    else
        FF_LOG_WARN("round %lld: the coordinator's inclusion proof is refused: %s",
                    (long long)json_integer_value(json_object_get(cn->receipt, "round")),
                    ff_error_message());
    json_decref(cn->receipt);
    cn->receipt = NULL;
}

int fed_cn_write_receipt(cnode *cn, const Fedfuse__Task *t, const char *update_sha, double examples,
                         json_t *secagg)
{
    char dir[600], path[700], model[FF_SHA256_HEX], job[FF_SHA256_HEX];
    snprintf(dir, sizeof dir, "%s/receipts", cn->sc->out_dir);
    snprintf(path, sizeof path, "%s/%s-round-%04u.json", dir, cn->sc->site, t->round);
    fed_cn_hex_of(&t->model_sha256, model);
    fed_cn_hex_of(&t->job_sha256, job);
    json_t *sp = secagg ? json_deep_copy(secagg) : json_pack("{s:b}", "enabled", 0);
    /* t->dp was checked against the approved plan (check_task_dp) */
    const Fedfuse__DpParams *dp = t->dp && t->dp->enabled ? t->dp : NULL;
    json_t *pv = dp ? json_pack("{s:b, s:s, s:f, s:f, s:f, s:f}", "enabled", 1, "level", "client",
                                "noise_multiplier", dp->noise_multiplier, "clip_norm",
                                dp->clip_norm, "delta", dp->delta, "epsilon_budget", dp->epsilon)
                    : json_pack("{s:b}", "enabled", 0);
    json_t *rec = plan_record(cn, t);
    if (rec)
        json_object_set_new(pv, "record", rec);
    char commit[FF_SHA256_HEX];
    int rc = ff_audit_commitment(cn->sc->site, t->round, job, model, update_sha, commit);
    /* the log entry this receipt acknowledges: the coordinator's `commitment` entry */
    json_t *f = json_pack("{s:s, s:I, s:s, s:s, s:s, s:f, s:o, s:o, s:{}, s:s, s:{s:s, s:I, s:s, s:s}}",
                          "site", cn->sc->site, "round", (json_int_t)t->round, "model_sha256", model,
                          "update_sha256", update_sha, "job_sha256", job, "examples", examples,
                          "secagg", sp, "privacy", pv, "epsilon", "commitment", commit, "log_entry",
                          "event", "commitment", "round", (json_int_t)t->round, "site", cn->sc->site,
                          "commitment", commit);
    if (rc == FF_OK)
        rc = f ? ff_mkdir_p(dir, 0755) : ff_error(FF_ENOMEM, "receipt: out of memory");
    if (rc == FF_OK)
        rc = ff_audit_receipt_write(path, f, cn->key);
    json_decref(cn->receipt);
    cn->receipt = rc == FF_OK ? f : NULL;
    ff_strlcpy(cn->receipt_path, path, sizeof cn->receipt_path);
    if (rc != FF_OK)
        json_decref(f);
    return rc;
}

static void rec_ledger_path(const cnode *cn, char *path, size_t cap)
{
    snprintf(path, cap, "%s/privacy-ledger-%s.json", cn->sc->out_dir, cn->sc->site);
}

/* The site's record-level ledger for this plan: the rounds already charged (from the file,
 * replayed: ε is recomputed, never read) under the plan's δ and the stricter of the plan's
 * budget and the site policy's dp.max_epsilon (when the policy requires DP). FF_EPOLICY
 * when the replayed rounds already pass that budget. */
static int rec_ledger_open(cnode *cn, const ff_privacy_record_cfg *rc_cfg)
{
    double budget = ff_policy_record_budget(&cn->pol, rc_cfg->epsilon_budget);
    if (cn->rec_ledger && cn->rec_budget == budget && cn->rec_delta == rc_cfg->delta)
        return FF_OK;
    char path[700], *text = NULL;
    size_t len;
    rec_ledger_path(cn, path, sizeof path);
    ff_privacy_ledger *old = NULL, *l = NULL;
    int rc = FF_OK;
    if (access(path, F_OK) == 0) {
        rc = ff_file_read_all(path, 16u << 20, &text, &len);
        if (rc == FF_OK)
            rc = ff_privacy_ledger_from_json(&old, text, path);
        free(text);
        if (rc != FF_OK)
            return ff_error_prefix(FF_EPOLICY, "privacy.record: the site's ledger does not load "
                                   "(refusing rather than starting from zero): ");
    }
    double orders[FF_PRIVACY_MAX_ORDERS];
    size_t no = ff_privacy_orders_dp_accounting(orders);
    rc = ff_privacy_ledger_new(&l, FF_PRIVACY_LEVEL_RECORD, budget, rc_cfg->delta, orders, no,
                               FF_PRIVACY_SERIES_DP_ACCOUNTING, FF_PRIVACY_CONV_IMPROVED);
    for (size_t i = 0; rc == FF_OK && old && i < ff_privacy_ledger_count(old); i++)
        rc = ff_privacy_ledger_record(l, ff_privacy_ledger_get(old, i));
    size_t nold = old ? ff_privacy_ledger_count(old) : 0;
    ff_privacy_ledger_free(old);
    if (rc != FF_OK) {
        ff_privacy_ledger_free(l);
        return ff_error_prefix(FF_EPOLICY, "privacy.record.epsilon_budget %g is already spent by "
                               "the %zu rounds in %s: ", budget, nold, path);
    }
    double eps = 0, order;
    if (ff_privacy_ledger_epsilon(l, &eps, &order) == FF_OK && nold)
        FF_LOG_INFO("privacy.record: resumed the site's ledger of %zu rounds from %s, epsilon "
                    "%.6g of budget %g", nold, path, eps, budget);
    if (budget < rc_cfg->epsilon_budget)
        FF_LOG_INFO("privacy.record: the plan's epsilon_budget %g is above this site's "
                    "dp.max_epsilon: this site takes part until epsilon %g", rc_cfg->epsilon_budget,
                    budget);
    ff_privacy_ledger_free(cn->rec_ledger);
    cn->rec_ledger = l;
    cn->rec_budget = budget;
    cn->rec_delta = rc_cfg->delta;
    return FF_OK;
}

static int rec_ledger_save(cnode *cn)
{
    char path[700], *text = NULL;
    rec_ledger_path(cn, path, sizeof path);
    int rc = ff_privacy_ledger_to_json(cn->rec_ledger, &text);
    if (rc == FF_OK)
        rc = ff_mkdir_p(cn->sc->out_dir, 0755);
    if (rc == FF_OK)
        rc = ff_file_write_atomic(path, text, strlen(text), 0600);
    free(text);
    return rc;
}

uint64_t fed_cn_train_seed(const ff_fed_site_config *sc, uint32_t round)
{
    return (uint64_t)sc->seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)round << 32) ^
           ff_fnv1a32(sc->site, strlen(sc->site));
}

/* Downloads the task's model and trains on it: cn->update = params - global. */
int fed_cn_train_local(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan, size_t *ntrainp,
                       ff_local_stats *stp)
{
    int rc = fetch_model(cn, t);
    size_t ntrain = ff_site_count(cn->site, FF_SPLIT_TRAIN);
    size_t stage = ff_plan_stage_of_round(plan, t->round);
    ff_local_opts o;
    ff_local_opts_from_plan(&o, plan, stage, ntrain);
    o.global = cn->global_full;
    o.seed = fed_cn_train_seed(cn->sc, t->round);
    o.label_fraction = cn->sc->label_fraction;
    o.label_seed = (uint64_t)cn->sc->seed; /* fixed across rounds: the same patients */
    if (rc == FF_OK && o.batch > ff_model_max_batch(cn->m))
        rc = ff_error(FF_EPOLICY, "plan batch_size %d is above this node's limit %d", o.batch,
                      ff_model_max_batch(cn->m));
    const ff_privacy_record_cfg *pr = &plan->privacy.record;
    size_t charged = cn->rec_ledger ? ff_privacy_ledger_count(cn->rec_ledger) : 0;
    if (rc == FF_OK && pr->enabled) {
        /* δ must be below 1/patients: only the site knows its patients */
        ff_privacy_context ctx = {.dataset_size = (int64_t)ntrain};
        ff_privacy_cfg only = {.record = *pr};
        rc = ff_privacy_cfg_validate(&only, &ctx);
        if (rc != FF_OK)
            rc = ff_error_prefix(FF_EPOLICY, "this site has %zu training patients: ", ntrain);
        if (rc == FF_OK)
            rc = rec_ledger_open(cn, pr);
        charged = rc == FF_OK ? ff_privacy_ledger_count(cn->rec_ledger) : 0;
        o.dp = 1;
        o.dp_sigma = pr->noise_multiplier;
        o.dp_clip = pr->clip_norm;
        o.dp_delta = pr->delta;
        o.dp_ledger = cn->rec_ledger;
        o.dp_round = t->round;
    }
    if (rc == FF_OK) {
        rc = ff_local_train(cn->m, &cn->site, 1, &o, stp);
        if (rc == FF_EPOLICY && pr->enabled)
            rc = ff_error_prefix(FF_EPOLICY, "%s %g: ",
                                 cn->rec_budget < pr->epsilon_budget
                                     ? "the site policy's dp.max_epsilon (stricter than "
                                       "privacy.record.epsilon_budget)"
                                     : "privacy.record.epsilon_budget",
                                 cn->rec_budget);
    }
    /* A round charged to the ledger is saved whether training then succeeded or not: its
     * noise may have been drawn, so it counts (never under-count ε). */
    if (pr->enabled && cn->rec_ledger && ff_privacy_ledger_count(cn->rec_ledger) > charged) {
        int sr = rec_ledger_save(cn);
        if (sr != FF_OK)
            return ff_error_prefix(FF_EIO, "privacy.record: the site's ledger was not saved "
                                   "(not sending the update): ");
        cn->rec_eps = stp->epsilon;
        FF_LOG_INFO("round %u: record-level DP-SGD, q %.6g, noise multiplier %g, clip %g, "
                    "%lld steps; site epsilon %.6f of budget %g (delta %g)", t->round,
                    (double)o.batch / (double)ntrain, o.dp_sigma, o.dp_clip, (long long)o.steps,
                    stp->epsilon, cn->rec_budget, o.dp_delta);
    }
    if (rc != FF_OK)
        return rc;
    fed_pack(cn->m, cn->update);
    ff_round_update(cn->update, cn->update, cn->global, cn->n);
    fed_cn_local_keep(cn, cn->update);
    *ntrainp = ntrain;
    return FF_OK;
}

/* Tells the coordinator this site says no to a train or evaluate task (policy, budget), so
 * the phase does not wait for us until its deadline. why is our log line: settings and counts
 * only. A coordinator that cannot take it (older, or a secure-aggregation phase) just sees a
 * drop-out at the deadline, as before: its answer is logged, not acted on. */
static void decline(cnode *cn, const Fedfuse__Task *t, const char *why, int whole_job)
{
    const ff_phase_info *info = ff_phase_by_wire((int)t->phase);
    if (!whole_job && !(info && info->declinable))
        return;
    char reason[256];
    ff_strlcpy(reason, why, sizeof reason);
    Fedfuse__DeclineRequest d = FEDFUSE__DECLINE_REQUEST__INIT;
    d.run_id = cn->run_id;
    d.round = t->round;
    d.phase = t->phase;
    d.reason = reason;
    d.whole_job = whole_job;
    Fedfuse__Ack *ack = NULL;
    if (ff_rpc_decline(cn->cl, &d, &ack, FED_CALL_DECLINE_MS) == FF_OK)
        FF_LOG_INFO("round %u: told the coordinator this site declines the task", t->round);
    else
        FF_LOG_INFO("round %u: the coordinator did not take the decline (%s); it will count "
                    "this site as missing at the deadline", t->round, ff_error_message());
    ff_msg_free(ack);
}

/* This site says no to task t (ff_error_message() says why): logged and declined once per
 * key (the coordinator may offer the same task again until it takes the decline), then a
 * pause so a repeated offer does not spin. */
void fed_cn_refuse_task(cnode *cn, const Fedfuse__Task *t, const fed_refusal *key,
                        const char *what, fed_err code, int whole_job)
{
    set_state(cn, FED_CN_DECLINED);
    if (!fed_refusal_same(key, &cn->refused)) {
        fed_cn_set_error(cn, code);
        char why[512];
        snprintf(why, sizeof why, "%s: %s", what, ff_error_message());
        FF_LOG_WARN("round %u: %s", t->round, why);
        decline(cn, t, why, whole_job);
    }
    cn->refused = *key;
    sleep(FED_TASK_PAUSE_S);
}

/* Uploads src under hdr (kill point `point`, tests) until the coordinator answers. With the
 * test hook FEDFUSE_TEST_RESEND_AT armed the first acknowledgement is dropped, as when the
 * link breaks after the coordinator took the upload and stays down past the transport's
 * retries. */
static int cnode_connect(cnode *cn);

int fed_cn_upload(cnode *cn, const Fedfuse__UploadHeader *hdr, ff_source *src, const char *point)
{
    kill_xfer kx;
    fed_cn_arm_source(src, &kx, point, hdr->round);
    Fedfuse__UploadAck *ack = NULL;
    int rc = ff_rpc_upload(cn->cl, hdr, src, &ack, FED_CALL_TRANSFER_MS);
    ff_msg_free(ack);
    if (rc == FF_OK && fed_test_resend_armed(point, hdr->round))
        rc = ff_error(FF_ENET, "test hook FEDFUSE_TEST_RESEND_AT: the acknowledgement of the %s "
                      "is dropped", point);
    /* A link down for longer than the transport's retries may have lost the acknowledgement
     * of an upload the coordinator took: the site cannot tell, so it sends the same bytes
     * again until the coordinator answers. It counts an update once and acknowledges a resend
     * (coord_node.c, is_resend_locked), or refuses it as late when it never had it. Giving up
     * instead left a site aggregated in a round with no receipt of it (fault_net_link_cut,
     * receipt.missing in audit verify). */
    const double until = ff_now() + FED_RESEND_S;
    int pause_ms = FED_RESEND_PAUSE_MIN_MS;
    while ((rc == FF_ENET || rc == FF_ETIMEOUT) && ff_now() < until && !(cn->stop && *cn->stop)) {
        FF_LOG_WARN("round %u: the %s did not get through (%s); sending it again in %d ms (the "
                    "coordinator counts an update once)", hdr->round, point, ff_error_message(),
                    pause_ms);
        struct timespec ts = {pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        pause_ms = FF_MIN(2 * pause_ms, FED_RESEND_PAUSE_MAX_MS);
        /* on a fresh channel: gRPC keeps a channel whose connection was cut in its own
         * reconnect back-off, where every call fails at once (seen in fault_net_link_cut) */
        ff_rpc_free(cn->cl);
        cn->cl = NULL;
        if ((rc = cnode_connect(cn)) != FF_OK)
            break;
        ack = NULL;
        rc = ff_rpc_upload(cn->cl, hdr, src, &ack, FED_CALL_TRANSFER_MS);
        ff_msg_free(ack);
    }
    return rc;
}

static int do_train(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan)
{
    int64_t attempt = (int64_t)t->attempt;
    if (ff_round_begin(&cn->fs, t->round, attempt) != FF_OK) {
        FF_LOG_WARN("round %u: %s; not training again", t->round, ff_error_message());
        return FF_OK;
    }
    size_t ntrain = 0;
    ff_local_stats st;
    fed_test_kill_at("task", t->round);
    int rc = fed_cn_train_local(cn, t, plan, &ntrain, &st);
    if (rc == FF_EPOLICY) {
        /* the site's policy or privacy budget says no: the round goes on without us (the
         * coordinator offers the task until its deadline: say so once, do not spin) */
        fed_refusal key = fed_refusal_of(FED_REFUSAL_TRAINING, t->round, 0, attempt, NULL, 0);
        fed_cn_refuse_task(cn, t, &key, "training refused by this site", FED_ERR_TRAINING_REFUSED, 0);
        return FF_OK;
    }
    if (rc != FF_OK)
        return rc;
    ff_source src = {.buf = cn->update, .size = cn->n * sizeof(float)};
    uint8_t h[FF_SHA256_BYTES];
    ff_sha256(cn->update, cn->n * sizeof(float), h);
    memcpy(src.sha256, h, sizeof h);
    char uh[FF_SHA256_HEX];
    ff_hex(h, sizeof h, uh);
    Fedfuse__UploadHeader hdr = FEDFUSE__UPLOAD_HEADER__INIT;
    hdr.run_id = cn->run_id;
    hdr.round = t->round;
    hdr.phase = FEDFUSE__PHASE__PHASE_TRAIN;
    hdr.kind = FEDFUSE__UPLOAD_KIND__UPLOAD_UPDATE;
    hdr.example_count = ntrain;
    uint8_t cbin[FF_SHA256_BYTES], csig[64];
    rc = fed_cn_commit_update(cn, t, uh, &hdr, cbin, csig);
    if (rc != FF_OK)
        return rc;
    rc = fed_cn_upload(cn, &hdr, &src, "upload");
    if (rc == FF_EPOLICY || rc == FF_ESTATE) {
        FF_LOG_WARN("round %u: the coordinator refused our update: %s", t->round, ff_error_message());
        return FF_OK;
    }
    if (rc != FF_OK)
        return rc;
    FF_LOG_INFO("round %u: trained %lld steps on %zu patients, loss %.3f -> %.3f, update sent "
                "(%.1f MB)", t->round, (long long)st.steps, ntrain, st.loss_first, st.loss_last,
                (double)src.size / 1e6);
    if (ff_round_done(&cn->fs, t->round) != FF_OK)
        FF_LOG_WARN("%s", ff_error_message());
    rc = fed_cn_write_receipt(cn, t, uh, (double)ntrain, NULL);
    if (rc != FF_OK)
        FF_LOG_WARN("round %u: receipt not written: %s", t->round, ff_error_message());
    return FF_OK;
}

/* Mean binary cross-entropy of the test split over labelled (patient, binary task) pairs. */
static int column_is_binary(const ff_task_set *ts, int col)
{
    for (int k = 0; k < ts->n; k++)
        if (ts->t[k].col == col)
            return ts->t[k].kind == FF_TASK_BINARY;
    return 0;
}

static int test_loss(cnode *cn, double *loss, size_t *n)
{
    *n = ff_site_count(cn->site, FF_SPLIT_TEST);
    const ff_task_set *ts = &ff_site_shape(cn->site)->tasks;
    int K = ts->width;
    float *p = malloc((*n + 1) * K * sizeof *p), *y = malloc((*n + 1) * K * sizeof *y);
    float *mk = malloc((*n + 1) * K * sizeof *mk);
    int rc = p && y && mk ? ff_local_predict(cn->m, cn->site, FF_SPLIT_TEST, FF_MOD_ALL, 0.5f, p, y, mk)
                          : ff_error(FF_ENOMEM, "out of memory");
    double s = 0, c = 0;
    for (size_t i = 0; rc == FF_OK && i < *n * (size_t)K; i++)
        if (mk[i] > 0 && column_is_binary(ts, (int)(i % (size_t)K))) {
            double q = FF_MIN(FF_MAX((double)p[i], 1e-7), 1 - 1e-7);
            s -= y[i] > 0.5f ? log(q) : log(1 - q);
            c += 1;
        }
    *loss = c > 0 ? s / c : 0;
    free(p);
    free(y);
    free(mk);
    return rc;
}

static int do_eval(cnode *cn, const Fedfuse__Task *t)
{
    int rc = fetch_model(cn, t);
    json_t *arr = NULL, *val = NULL, *stats = NULL;
    double loss = 0;
    size_t n = 0, wt = 0, wv = 0;
    /* the statistics jobs' minimum cell size: a site sets it once, for both */
    int64_t min_cell = cn->pol.statistics.min_cell_size;
    int oc = cn->pol.statistics.outcome_cells;
    if (rc == FF_OK)
        rc = ff_client_eval_hist(cn->m, cn->site, FF_SPLIT_TEST, FF_EVAL_HIST_BINS, min_cell, oc,
                                 &wt, &arr);
    if (rc == FF_OK) /* the coordinator picks each task's operating point on these */
        rc = ff_client_eval_hist(cn->m, cn->site, FF_SPLIT_VAL, FF_EVAL_HIST_BINS, min_cell, oc,
                                 &wv, &val);
    if (rc == FF_OK && wt + wv > 0)
        FF_LOG_INFO("round %u: %zu test and %zu validation subgroup histograms withheld (fewer "
                    "than %lld patients%s, or complementary); only their names are sent",
                    t->round, wt, wv, (long long)min_cell, oc ? ", positives or negatives" : "");
    if (rc == FF_OK)
        rc = ff_client_eval_stats(cn->m, cn->site, FF_SPLIT_TEST, FF_EVAL_HIST_BINS, &stats);
    if (rc == FF_OK)
        rc = test_loss(cn, &loss, &n);
    if (rc != FF_OK) {
        json_decref(arr);
        json_decref(val);
        json_decref(stats);
        return rc;
    }
    json_t *j = json_pack("{s:I, s:f, s:o, s:o}", "n_examples", (json_int_t)n, "loss", loss,
                          "hists", arr, "val_hists", val);
    if (json_array_size(stats) > 0) /* only with tasks of other kinds: a binary run's message is unchanged */
        json_object_set(j, "stats", stats);
    json_decref(stats);
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!s)
        return ff_error(FF_ENOMEM, "out of memory");
    Fedfuse__EvalSubmission es = FEDFUSE__EVAL_SUBMISSION__INIT;
    es.run_id = cn->run_id;
    es.round = t->round;
    es.summary.data = (uint8_t *)s;
    es.summary.len = strlen(s);
    fed_test_kill_at("evaluate", t->round);
    Fedfuse__Ack *ack = NULL;
    rc = ff_rpc_submit_eval(cn->cl, &es, &ack, FED_CALL_MESSAGE_MS);
    ff_msg_free(ack);
    free(s);
    if (rc == FF_EPOLICY || rc == FF_ESTATE) {
        FF_LOG_WARN("round %u: evaluation refused: %s", t->round, ff_error_message());
        rc = FF_OK;
    } else if (rc == FF_OK) {
        FF_LOG_INFO("round %u: evaluated the global model on %zu test patients (loss %.3f), "
                    "histograms sent", t->round, n, loss);
    }
    cn->last_eval_round = t->round;
    return rc;
}


/* With per-site layers: the final global model with this site's own local layers, the model
 * this site uses, into OUT/model-personal-SITE.safetensors. */
static int personal_model(cnode *cn, const Fedfuse__Task *t)
{
    if (t->model_sha256.len != FF_SHA256_BYTES)
        return ff_error(FF_ESTATE, "the coordinator's done message names no final model");
    int rc = fetch_model(cn, t);
    char path[1100];
    snprintf(path, sizeof path, "%s/model-personal-%s.safetensors", cn->sc->out_dir, cn->sc->site);
    if (rc == FF_OK)
        rc = ff_model_save(cn->m, path);
    if (rc == FF_OK)
        FF_LOG_INFO("%s: the final model with this site's own local layers: %s", cn->sc->site, path);
    return rc;
}

/* FedAvg + local fine-tuning (the plan's fine_tune; FLamby's FedAvgFineTuning): the final
 * global model named by the done message is evaluated on this site's test rows, trained
 * fine_tune.steps local steps on its training rows (the last stage's settings, no FedProx
 * term) and evaluated again. Both evaluations go to OUT/fine_tune-SITE.json and the copy to
 * OUT/model-finetuned-SITE.safetensors; nothing is sent: the fine-tuned model is the site's. */
static int fine_tune(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan)
{
    if (t->model_sha256.len != FF_SHA256_BYTES)
        return ff_error(FF_ESTATE, "the coordinator's done message names no final model (a "
                        "coordinator older than plan fine_tune)");
    int rc = fetch_model(cn, t);
    const char *name = cn->sc->site;
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    json_t *before = NULL, *after = NULL;
    if (rc == FF_OK)
        rc = ff_client_evaluate(cn->m, &cn->site, &name, 1, FF_SPLIT_TEST, FF_MOD_ALL, &eo,
                                NULL, NULL, &before);
    ff_local_opts o;
    ff_local_opts_from_plan(&o, plan, ff_plan_stage_of_round(plan, t->round),
                            ff_site_count(cn->site, FF_SPLIT_TRAIN));
    o.steps = plan->fine_tune.steps;
    if (plan->fine_tune.lr > 0)
        o.optim.lr = (float)plan->fine_tune.lr;
    o.fedprox_mu = 0;
    o.global = cn->global_full;
    o.seed = fed_cn_train_seed(cn->sc, t->round + 1); /* a round's seed the run never used */
    o.label_fraction = cn->sc->label_fraction;
    o.label_seed = (uint64_t)cn->sc->seed;
    ff_local_stats st;
    if (rc == FF_OK)
        rc = ff_local_train(cn->m, &cn->site, 1, &o, &st);
    if (rc == FF_OK)
        rc = ff_client_evaluate(cn->m, &cn->site, &name, 1, FF_SPLIT_TEST, FF_MOD_ALL, &eo,
                                NULL, NULL, &after);
    char path[1100];
    if (rc == FF_OK) {
        snprintf(path, sizeof path, "%s/model-finetuned-%s.safetensors", cn->sc->out_dir, name);
        rc = ff_model_save(cn->m, path);
    }
    if (rc == FF_OK) {
        json_t *j = json_pack("{s:s, s:I, s:f, s:I, s:O, s:O}", "site", name, "steps",
                              (json_int_t)o.steps, "lr", (double)o.optim.lr, "final_round",
                              (json_int_t)t->round, "global", before, "fine_tuned", after);
        snprintf(path, sizeof path, "%s/fine_tune-%s.json", cn->sc->out_dir, name);
        rc = !j ? ff_error(FF_ENOMEM, "out of memory")
                : json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS) == 0
                      ? FF_OK
                      : ff_error(FF_EIO, "%s: cannot write", path);
        json_decref(j);
    }
    json_decref(before);
    json_decref(after);
    if (rc == FF_OK)
        FF_LOG_INFO("%s: fine-tuned the final model %lld local steps on its own data; "
                    "evaluations of the global and the fine-tuned model in %s",
                    name, (long long)o.steps, path);
    return rc;
}

/* A noised statistics query (docs/statistics.md, "Noise") spends the same patient-level
 * budget as DP-SGD: its releases are rounds of the site's record-level ledger, under the
 * policy's dp.max_epsilon and the query's δ. charge 0 only checks that the release fits;
 * charge 1 records it and saves the ledger, before anything derived from the data leaves
 * (a round recorded whose vector then never leaves is over-counted, never under-). */
static int stats_charge(cnode *cn, const Fedfuse__Task *t, int own, int charge)
{
    const ff_stats_dp *dp = &cn->st.dp;
    ff_privacy_record_cfg cfg = {.enabled = 1, .epsilon_budget = cn->pol.dp.max_epsilon,
                                 .delta = dp->delta};
    int rc = rec_ledger_open(cn, &cfg);
    ff_privacy_round r;
    ff_stats_dp_round(dp, own, t->round, t->secagg ? (int64_t)t->secagg->num_sites : 0, &r);
    double after = 0;
    int exceed = 0;
    if (rc == FF_OK)
        rc = ff_privacy_ledger_check(cn->rec_ledger, &r, &after, &exceed);
    if (rc == FF_OK && exceed) {
        double now = 0, order;
        if (ff_privacy_ledger_epsilon(cn->rec_ledger, &now, &order) != FF_OK)
            now = NAN;
        return ff_error(FF_EPOLICY, "privacy budget: this query%s would take the site's epsilon "
                        "from %.4g to %.4g, past dp.max_epsilon %g (the ledger training uses, "
                        "delta %g)", own ? "'s own results" : "", now, after, cn->rec_budget,
                        dp->delta);
    }
    if (rc != FF_OK || !charge)
        return rc;
    rc = ff_privacy_ledger_record(cn->rec_ledger, &r);
    if (rc == FF_OK && rec_ledger_save(cn) != FF_OK)
        rc = ff_error_prefix(FF_EPOLICY, "privacy: the site's ledger was not saved (nothing "
                             "sent): ");
    if (rc == FF_OK)
        FF_LOG_INFO("statistics %s: %s charged to the privacy ledger: epsilon %.4g, site total "
                    "%.4g of dp.max_epsilon %g (delta %g)", ff_stats_query_name(cn->st.q),
                    own ? "this site's own results" : "the pooled release",
                    own ? dp->eps_site : dp->eps_pooled, after, cn->rec_budget, dp->delta);
    return rc;
}

/* A statistics task (docs/statistics.md): only secure aggregation's phases concern the site.
 * The query is checked against the site's policy (and, at advertise_keys, its history) on
 * every task; a refusal declines the whole job with the reason, which the coordinator keeps. */
/* The evaluate phase of a statistics job: this site's own results when the query asks and
 * the policy allows, else a decline saying why. */
static int stats_per_site(cnode *cn, const Fedfuse__Task *t)
{
    if (cn->last_eval_round == t->round)
        return FF_OK;
    char *s = NULL;
    int rc = FF_OK;
    if (fed_site_stats_own_dp(&cn->st, &cn->pol))
        rc = stats_charge(cn, t, 1, 1);
    if (rc == FF_OK)
        rc = fed_site_stats_per_site(&cn->st, &cn->pol, cn->sc->site, &s);
    cn->last_eval_round = t->round;
    if (rc != FF_OK || !s) {
        decline(cn, t, rc != FF_OK ? ff_error_message()
                                   : "per-site results: not released (the query does not ask "
                                     "for them, or this site's policy statistics.per_site is off)",
                0);
        return FF_OK;
    }
    Fedfuse__EvalSubmission es = FEDFUSE__EVAL_SUBMISSION__INIT;
    es.run_id = cn->run_id;
    es.round = t->round;
    es.summary.data = (uint8_t *)s;
    es.summary.len = strlen(s);
    Fedfuse__Ack *ack = NULL;
    rc = ff_rpc_submit_eval(cn->cl, &es, &ack, FED_CALL_MESSAGE_MS);
    ff_msg_free(ack);
    free(s);
    if (rc == FF_OK)
        FF_LOG_INFO("statistics: this site's own results sent (its policy allows per-site release)");
    return rc == FF_EPOLICY || rc == FF_ESTATE ? FF_OK : rc;
}

static int handle_stats(cnode *cn, const Fedfuse__Task *t)
{
    if (t->phase == FEDFUSE__PHASE__PHASE_EVALUATE)
        return stats_per_site(cn, t);
    if (fed_cn_secagg_step((int)t->phase) == 0)
        return FF_OK;
    int rc = fed_site_stats_check(&cn->st, &cn->pol, cn->sc, t);
    fed_site_stats *st = &cn->st;
    if (rc == FF_OK && st->dp.on && st->noised_round == 0)
        rc = stats_charge(cn, t, 0, 0); /* a query past the budget is refused before work */
    if (rc == FF_OK && t->phase == FEDFUSE__PHASE__PHASE_SECAGG_ADVERTISE) {
        rc = fed_site_stats_compute(st, &cn->pol, t->round);
        if (rc == FF_OK && st->dp.on && st->noised_round != st->round)
            rc = stats_charge(cn, t, 0, 1);
        if (rc == FF_OK)
            rc = fed_site_stats_noise(st, cn->sc->site);
    }
    if (rc == FF_EPOLICY || rc == FF_ECONFIG || rc == FF_ENOTFOUND || rc == FF_EFORMAT) {
        fed_refusal key = fed_refusal_of(FED_REFUSAL_STATS, t->round, 0, 0, t->job_sha256.data,
                                         t->job_sha256.len);
        fed_cn_refuse_task(cn, t, &key, "statistics query refused", FED_ERR_TASK_REFUSED_POLICY, 1);
        return FF_OK;
    }
    if (rc != FF_OK)
        return rc;
    set_state(cn, FED_CN_SECAGG);
    return fed_cn_secagg_task(cn, t, NULL);
}

static int handle(cnode *cn, const Fedfuse__Task *t)
{
    if (t->roster) {
        int rc = fed_cn_roster_take(cn, t->roster);
        if (rc != FF_OK)
            FF_LOG_WARN("%s", ff_error_message());
    }
    if (t->run_id && strcmp(t->run_id, cn->run_id) != 0) {
        /* A new coordinator process (a restart): it redoes the unfinished round, so our
         * replay guard starts over for the new run incarnation. */
        if (cn->run_id[0])
            FF_LOG_INFO("coordinator restarted (run %s); continuing", t->run_id);
        ff_strlcpy(cn->run_id, t->run_id, sizeof cn->run_id);
        ff_round_init(&cn->fs);
        memset(&cn->refused, 0, sizeof cn->refused);
        /* Nor does a secure-aggregation round in progress survive it: its keys were for the
         * old incarnation's round id, and a kept step count would make us skip the new
         * round's advertise_keys as already answered. Training again is deterministic. */
        fed_cn_secagg_reset(cn);
        cn->sa.upd_round = 0;
    }
    if (t->job_kind && strcmp(t->job_kind, FED_JOB_STATISTICS) == 0)
        return handle_stats(cn, t);
    int secagg = fed_cn_secagg_step((int)t->phase) > 0;
    if (t->phase != FEDFUSE__PHASE__PHASE_TRAIN && t->phase != FEDFUSE__PHASE__PHASE_EVALUATE &&
        !secagg)
        return FF_OK;
    if (cn->stats_only) {
        fed_refusal key = fed_refusal_of(FED_REFUSAL_STATS_ONLY, t->round, 0, 0, NULL, 0);
        ff_error(FF_EPOLICY, "this node has no model_config: it runs statistics jobs only");
        fed_cn_refuse_task(cn, t, &key, "task refused", FED_ERR_TASK_REFUSED_POLICY, 1);
        return FF_OK;
    }
    const ff_plan *plan = NULL;
    int whole_job = 0;
    int rc = check_task(cn, t, &plan, &whole_job);
    if (rc == FF_EPOLICY || rc == FF_EINVAL) {
        fed_refusal key = fed_refusal_of(FED_REFUSAL_TASK, t->round, (int)t->phase, 0,
                                         t->job_sha256.data, t->job_sha256.len);
        fed_cn_refuse_task(cn, t, &key, "task refused",
                    rc == FF_EPOLICY ? FED_ERR_TASK_REFUSED_POLICY : FED_ERR_TASK_INVALID,
                    whole_job);
        return FF_OK;
    }
    set_state(cn, secagg ? FED_CN_SECAGG
                  : t->phase == FEDFUSE__PHASE__PHASE_TRAIN ? FED_CN_TRAINING
                                                            : FED_CN_EVALUATING);
    if (rc == FF_OK)
        rc = secagg                                   ? fed_cn_secagg_task(cn, t, plan)
             : t->phase == FEDFUSE__PHASE__PHASE_TRAIN ? do_train(cn, t, plan)
                                                       : do_eval(cn, t);
    if (rc == FF_ENOTFOUND) {
        /* The coordinator only serves the current round's model: a task that reached us late
         * (a stalled link delivered it after the round moved on) names a model that is gone.
         * That task is over, the node is fine: wait for the next one instead of exiting. */
        FF_LOG_WARN("round %u: task no longer current (%s); waiting for the next task", t->round,
                    ff_error_message());
        fed_cn_set_error(cn, FED_ERR_TASK_STALE);
        return FF_OK;
    }
    return rc;
}

static int cnode_connect(cnode *cn)
{
    const ff_fed_site_config *sc = cn->sc;
    ff_rpc_opts co = {.target = sc->coordinator, .cert = sc->cert, .key = sc->key, .ca = sc->ca,
                      .server_name = sc->server_name[0] ? sc->server_name : NULL,
                      .proxy = sc->proxy[0] ? sc->proxy : NULL,
                      .attempts = 2, .backoff_ms = 300, .backoff_max_ms = 2000,
                      /* gRPC hands the coordinator whole messages: a part is what one
                       * upload in progress costs it (docs/benchmarks.md, "Load") */
                      .chunk_size = 256u << 10};
    return ff_rpc_new(&cn->cl, &co);
}

/* GET /metrics of a site's own node (docs/operations.md, "Metrics"). */
static void render_site_metrics(void *ud, ff_sbuf *b)
{
    cnode *cn = ud;
    pthread_mutex_lock(&cn->mu);
    fed_metrics_family(b, "fedfuse_site_state", "gauge", "This node's state (1 for it).");
    ff_sbuf_printf(b, "fedfuse_site_state{state=\"%s\"} 1\n", fed_cn_state_name(cn->state));
    fed_metrics_family(b, "fedfuse_site_rounds_trained_total", "counter",
                       "Rounds this site trained and uploaded.");
    ff_sbuf_printf(b, "fedfuse_site_rounds_trained_total %lld\n", (long long)cn->rounds_trained);
    fed_metrics_family(b, "fedfuse_site_evaluations_total", "counter",
                       "Evaluation tasks this site answered.");
    ff_sbuf_printf(b, "fedfuse_site_evaluations_total %lld\n", (long long)cn->evals);
    fed_metrics_family(b, "fedfuse_site_errors_total", "counter",
                       "Errors of this node by code (docs/operations.md).");
    for (int e = 1; e < FED_ERR_COUNT; e++)
        ff_sbuf_printf(b, "fedfuse_site_errors_total{code=\"%s\"} %llu\n", fed_err_code(e),
                       (unsigned long long)cn->errors[e]);
    fed_metrics_family(b, "fedfuse_site_last_contact_age_seconds", "gauge",
                       "Seconds since the coordinator last answered this node (-1: never).");
    ff_sbuf_printf(b, "fedfuse_site_last_contact_age_seconds %.3f\n",
                   cn->last_contact > 0 ? ff_wall_time() - cn->last_contact : -1.0);
    pthread_mutex_unlock(&cn->mu);
    fed_metrics_process(b);
}

/* The model config, the model and the site's data for training and evaluation. */
static int cnode_open_model(cnode *cn, const ff_fed_site_config *sc)
{
    int rc = ff_file_read_all(sc->model_config, 16u << 20, &cn->mc_bytes, &cn->mc_len);
    if (rc == FF_OK)
        rc = ff_model_config_load(sc->model_config, &cn->mc);
    if (rc == FF_OK)
        rc = ff_model_new(&cn->m, &cn->mc, 64);
    ff_data_shape shape;
    ff_client_shape(&cn->mc, &shape);
    ff_site_opts so = ff_site_opts_default();
    ff_load_report rep;
    if (rc == FF_OK && (rc = ff_site_load(&cn->site, sc->data, &shape, &so, &rep)) == FF_OK)
        ff_load_report_log(&rep, sc->site);
    return rc;
}

static int cnode_open(cnode *cn, const ff_fed_site_config *sc)
{
    memset(cn, 0, sizeof *cn);
    pthread_mutex_init(&cn->mu, NULL);
    cn->state = FED_CN_STARTING;
    cn->sc = sc;
    cn->poll_ms = FED_POLL_TIMEOUT_MS; /* until a Hello brings the coordinator's */
    ff_round_init(&cn->fs);
    ff_models_set_threads((int)sc->threads);
    int rc = ff_policy_load(sc->policy, &cn->pol);
    /* the node's state folder (receipts, the secure-aggregation guard, the privacy ledger)
     * exists before the first round: the guard is written before any receipt */
    if (rc == FF_OK)
        rc = ff_mkdir_p(sc->out_dir, 0755);
    if (rc == FF_OK && strcmp(cn->pol.site, sc->site) != 0)
        rc = ff_error(FF_ECONFIG, "%s: site '%s' does not match the client config's site '%s'",
                      sc->policy, cn->pol.site, sc->site);
    /* no model_config: a statistics-only node, whose data is read by its first query */
    cn->stats_only = !sc->model_config[0];
    if (rc == FF_OK && !cn->stats_only)
        rc = cnode_open_model(cn, sc);
    if (rc == FF_OK)
        rc = ff_pki_load_key(sc->key, &cn->key);
    if (rc == FF_OK)
        rc = ff_pki_load_cert(sc->ca, &cn->ca);
    if (rc == FF_OK && !cn->stats_only) {
        cn->n = fed_packed_size(cn->m);
        cn->global = malloc(cn->n * sizeof(float));
        cn->update = malloc(cn->n * sizeof(float));
        cn->global_full = malloc(ff_model_nparams(cn->m) * sizeof(float));
        if (!cn->global || !cn->update || !cn->global_full)
            rc = ff_error(FF_ENOMEM, "out of memory");
    }
    if (rc == FF_OK)
        rc = cnode_connect(cn);
    if (rc == FF_OK && sc->metrics[0])
        rc = fed_metrics_start(&cn->metrics, sc->metrics, render_site_metrics, cn);
    return rc;
}

static void cnode_close(cnode *cn)
{
    fed_metrics_stop(cn->metrics);
    fed_cn_local_free(cn);
    ff_secagg_client_free(cn->sa.c);
    json_decref(cn->sa.entry);
    for (size_t i = 0; i < cn->sa.nkeys; i++)
        EVP_PKEY_free(cn->sa.keys[i]);
    for (size_t i = 0; i < cn->nretired; i++)
        EVP_PKEY_free(cn->retired[i]);
    free(cn->retired);
    X509_free(cn->ca);
    free(cn->sa.keys);
    free(cn->sa.names);
    free(cn->sa.peers);
    ff_rpc_free(cn->cl);
    ff_site_free(cn->site);
    ff_model_free(cn->m);
    EVP_PKEY_free(cn->key);
    json_decref(cn->receipt);
    free(cn->global);
    free(cn->update);
    free(cn->global_full);
    free(cn->mc_bytes);
    ff_fed_plan_cache_free(&cn->plan_cache);
    fed_site_stats_free(&cn->st);
    ff_policy_free(&cn->pol);
    ff_privacy_ledger_free(cn->rec_ledger);
    pthread_mutex_destroy(&cn->mu);
}

/* This site cannot run (its data folder, model config or policy failed the start-up checks):
 * say so to the coordinator once, so no round waits for us, then exit with the error. Best
 * effort: without a working certificate there is nobody to tell. */
static void tell_startup_failure(cnode *cn, int rc)
{
    char why[256];
    snprintf(why, sizeof why, "start-up checks failed: %s", ff_error_message());
    if (!cn->cl && cnode_connect(cn) != FF_OK) {
        ff_error(rc, "%s", why + strlen("start-up checks failed: "));
        return;
    }
    Fedfuse__DeclineRequest d = FEDFUSE__DECLINE_REQUEST__INIT;
    d.run_id = "";
    d.phase = FEDFUSE__PHASE__PHASE_WAIT;
    d.reason = why;
    d.whole_job = 1;
    Fedfuse__Ack *ack = NULL;
    if (ff_rpc_decline(cn->cl, &d, &ack, FED_CALL_EXIT_MS) == FF_OK)
        FF_LOG_INFO("told the coordinator this site cannot run");
    ff_msg_free(ack);
    ff_error(rc, "%s", why + strlen("start-up checks failed: "));
}

/* The refusal in ff_error_message() says our certificate is revoked: the node stops with
 * that reason (once: a message already worded so is kept; the message is copied first, as
 * ff_error reuses its buffer). */
static int revoked_error(void)
{
    static const char head[] = "certificate revoked: the coordinator refuses this site's";
    if (strncmp(ff_error_message(), head, sizeof head - 1) == 0)
        return FF_EPOLICY;
    char why[512];
    ff_strlcpy(why, ff_error_message(), sizeof why);
    return ff_error(FF_EPOLICY, "%s certificate (%s); contact the consortium", head, why);
}

/* The poll timeout a coordinator sent (HelloReply.poll_timeout_ms), range-checked: 0 (a
 * coordinator that sends none) keeps ours; out of range is clamped, said when it changes. */
static uint32_t poll_timeout(uint32_t sent, uint32_t had)
{
    if (sent == 0)
        return FED_POLL_TIMEOUT_MS;
    uint32_t ms = FF_MAX(FF_MIN(sent, FED_POLL_MAX_MS), FED_POLL_MIN_MS);
    if (ms != sent && ms != had)
        FF_LOG_WARN("the coordinator's poll timeout of %u ms is out of range [%u, %u]; using %u ms",
                    sent, FED_POLL_MIN_MS, FED_POLL_MAX_MS, ms);
    return ms;
}

static int stopped(const ff_fed_run_opts *o)
{
    return o && o->stop && *o->stop;
}

/* Hello on a new connection: checks the coordinator's protocol version and takes its poll
 * timeout. FF_OK also when the coordinator is not reachable yet (retried); an error is a
 * refusal that retrying cannot change. */
static int say_hello(cnode *cn)
{
    const ff_fed_site_config *sc = cn->sc;
    Fedfuse__HelloRequest hq = FEDFUSE__HELLO_REQUEST__INIT;
    hq.software_version = FF_VERSION;
    hq.protocol_version = FF_PROTOCOL_VERSION;
    Fedfuse__HelloReply *hr = NULL;
    int rc = FF_OK, h = ff_rpc_hello(cn->cl, &hq, &hr, FED_CALL_HELLO_MS);
    if (h == FF_OK && hr->protocol_version != FF_PROTOCOL_VERSION)
        h = ff_error(FF_EPOLICY, "coordinator %s speaks fedfuse protocol version %u, this "
                     "site version %u (software %s); run the same fedfuse version on the "
                     "coordinator and the sites", sc->coordinator, hr->protocol_version,
                     FF_PROTOCOL_VERSION, FF_VERSION);
    if (h == FF_OK) {
        FF_LOG_INFO("%s: connected to %s (consortium %s, run %s)", sc->site, sc->coordinator,
                    hr->consortium, hr->run_id);
        cn->link.hello = 1;
        cn->link.warned = 0;
        cn->poll_ms = poll_timeout(hr->poll_timeout_ms, cn->poll_ms);
        cn->link.last_ok = ff_now();
    } else if (h == FF_EPOLICY) {
        /* refused, not unreachable: retrying cannot help */
        rc = strstr(ff_error_message(), "revoked") ? revoked_error() : h;
    } else if (++cn->hello_failures % 3 == 0) {
        /* A fresh channel: gRPC can keep a sub-channel in a failed TLS state (seen when
         * the coordinator was starting); the certificate itself is re-checked. */
        ff_rpc_free(cn->cl);
        cn->cl = NULL;
        rc = cnode_connect(cn);
    }
    ff_msg_free(hr);
    return rc;
}

/* One long-poll: what the node says about itself, and the coordinator's task. */
static int poll_task(cnode *cn, Fedfuse__Task **t)
{
    Fedfuse__TaskRequest tq = FEDFUSE__TASK_REQUEST__INIT;
    tq.run_id = cn->run_id;
    tq.last_round = (uint32_t)FF_MAX(cn->fs.last_done, 0);
    tq.wait_ms = cn->poll_ms;
    pthread_mutex_lock(&cn->mu);
    tq.state = (char *)fed_cn_state_name(cn->state);
    tq.error_code = (char *)fed_err_code(cn->err);
    tq.error_message = (char *)fed_err_text(cn->err);
    tq.error_age_ms = cn->err ? (int64_t)((ff_wall_time() - cn->err_at) * 1e3) : 0;
    pthread_mutex_unlock(&cn->mu);
    tq.software_version = FF_VERSION;
    tq.site_unix_ms = (int64_t)(ff_wall_time() * 1e3);
    tq.roster_version = cn->roster_version;
    return ff_rpc_get_task(cn->cl, &tq, t, (int)(cn->poll_ms + FED_CALL_POLL_MARGIN_MS));
}

/* A long wait is said at a steady rate, not per poll. */
static void log_waiting(cnode *cn, const Fedfuse__Task *t)
{
    if (t->phase != FEDFUSE__PHASE__PHASE_WAIT) {
        cn->link.wait_since = 0;
        return;
    }
    double now = ff_now();
    if (cn->link.wait_since == 0)
        cn->link.wait_since = cn->link.wait_logged = now;
    if (now - cn->link.wait_logged >= FED_WAIT_LOG_S) {
        FF_LOG_INFO("%s: waiting for a task from coordinator %s for %.0f s (round %u; the "
                    "coordinator has nothing for this site yet)", cn->sc->site,
                    cn->sc->coordinator, now - cn->link.wait_since, t->round);
        cn->link.wait_logged = now;
    }
}

/* A task from the coordinator: handled, then the node waits again (unless it declined). */
static int on_task(cnode *cn, const Fedfuse__Task *t)
{
    cn->link.last_ok = ff_now();
    complete_receipt(cn, t);
    cn->link.lost_logged = 0;
    pthread_mutex_lock(&cn->mu);
    cn->last_contact = ff_wall_time();
    pthread_mutex_unlock(&cn->mu);
    log_waiting(cn, t);
    int hr = handle(cn, t);
    pthread_mutex_lock(&cn->mu);
    if (t->phase != FEDFUSE__PHASE__PHASE_WAIT && hr == FF_OK && cn->state != FED_CN_DECLINED) {
        cn->rounds_trained += t->phase == FEDFUSE__PHASE__PHASE_TRAIN ||
                              t->phase == FEDFUSE__PHASE__PHASE_SECAGG_MASKED_INPUT;
        cn->evals += t->phase == FEDFUSE__PHASE__PHASE_EVALUATE;
        set_state_locked(cn, FED_CN_WAITING);
    } else if (t->phase == FEDFUSE__PHASE__PHASE_WAIT) {
        set_state_locked(cn, FED_CN_WAITING);
    }
    pthread_mutex_unlock(&cn->mu);
    if (hr == FF_ENET || hr == FF_ETIMEOUT) {
        FF_LOG_WARN("round %u: lost the coordinator (%s); will retry", t->round,
                    ff_error_message());
        fed_cn_set_error(cn, FED_ERR_LINK_LOST);
        set_state(cn, FED_CN_RECONNECTING);
        cn->link.hello = 0;
        return FF_OK;
    }
    return hr;
}

/* The coordinator did not answer (g): said once, then at a steady rate; gives up after
 * give_up_after seconds without contact. */
static int on_unreachable(cnode *cn)
{
    const ff_fed_site_config *sc = cn->sc;
    if (!cn->link.warned) {
        FF_LOG_WARN("%s: coordinator %s unreachable (%s); retrying", sc->site, sc->coordinator,
                    ff_error_message());
        fed_cn_set_error(cn, FED_ERR_COORDINATOR_UNREACHABLE);
        set_state(cn, FED_CN_RECONNECTING);
        cn->link.lost_logged = ff_now();
    } else if (ff_now() - cn->link.lost_logged >= FED_WAIT_LOG_S) {
        FF_LOG_WARN("%s: still waiting for coordinator %s: unreachable for %.0f s (%s)", sc->site,
                    sc->coordinator, ff_now() - cn->link.last_ok, ff_error_message());
        cn->link.lost_logged = ff_now();
    }
    cn->link.warned = 1;
    cn->link.wait_since = 0;
    cn->link.hello = 0;
    if (sc->give_up_after > 0 && ff_now() - cn->link.last_ok > sc->give_up_after)
        return ff_error(FF_ENET, "no contact with coordinator %s for %.0f s; giving up",
                        sc->coordinator, sc->give_up_after);
    usleep(FED_RECONNECT_PAUSE_US);
    return FF_OK;
}

/* The task loop: the node's state moves along the table of client_state.c (the diagram is in
 * docs/federation.md, "The client node's states"). */
int ff_fed_client_run(const ff_fed_site_config *sc, const ff_fed_run_opts *o)
{
    cnode cn;
    int rc = cnode_open(&cn, sc);
    cn.stop = o ? o->stop : NULL;
    if (rc != FF_OK)
        tell_startup_failure(&cn, rc);
    cn.link.last_ok = ff_now();
    while (rc == FF_OK && !stopped(o)) {
        if (!cn.link.hello && (rc = say_hello(&cn)) != FF_OK)
            break;
        Fedfuse__Task *t = NULL;
        int g = cn.link.hello ? poll_task(&cn, &t) : FF_ENET;
        if (g == FF_OK && t->phase == FEDFUSE__PHASE__PHASE_DONE) {
            cn.link.last_ok = ff_now();
            complete_receipt(&cn, t);
            FF_LOG_INFO("%s: the run is done (%u rounds)", sc->site, t->round);
            /* the plan of the run's last task, already checked against the approved job */
            if (cn.local_m && personal_model(&cn, t) != FF_OK)
                FF_LOG_ERROR("%s: the personal model was not saved: %s", sc->site,
                             ff_error_message());
            const ff_plan *plan = cn.plan_cache.state == 1 ? &cn.plan_cache.plan : NULL;
            if (plan && plan->fine_tune.steps > 0 && fine_tune(&cn, t, plan) != FF_OK)
                FF_LOG_ERROR("%s: local fine-tuning failed: %s", sc->site, ff_error_message());
            set_state(&cn, FED_CN_DONE);
            ff_msg_free(t);
            break;
        }
        if (g == FF_OK)
            rc = on_task(&cn, t);
        else if (g == FF_ENET || g == FF_ETIMEOUT || g == FF_ESTATE)
            rc = on_unreachable(&cn);
        else if (g == FF_EPOLICY && strstr(ff_error_message(), "revoked"))
            rc = revoked_error();
        else
            rc = g;
        ff_msg_free(t);
    }
    if (rc != FF_OK)
        set_state(&cn, FED_CN_FAILED);
    cnode_close(&cn);
    return rc;
}
