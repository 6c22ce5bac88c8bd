/* The coordinator's audit log: the engine's events mapped to the entries of docs/audit.md.
 * Only hashes, counts, names and settings are written; never a parameter or patient value. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fed_internal.h"
#include "fed_stats.h"

static void names_into(json_t *arr, const char *csv)
{
    json_array_clear(arr);
    const char *p = csv;
    while (p && *p) {
        while (*p == ' ')
            p++;
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > 0)
            json_array_append_new(arr, json_stringn(p, l));
        p = e ? e + 1 : NULL;
    }
}

/* 1 when the entry is in the log. After one failure nothing more is appended (the chain
 * would have a gap); the coordinator stops on a->failed. */
static int append(fed_audit *a, const char *event, json_t *d)
{
    if (!a->failed && ff_audit_append(a->log, event, d) != FF_OK) {
        a->failed = 1;
        ff_strlcpy(a->why, ff_error_message(), sizeof a->why);
        FF_LOG_ERROR("audit log: %s", a->why);
    }
    json_decref(d);
    return !a->failed;
}

/* An RFC 3161 query for the log's head, beside the log (docs/audit.md, anchoring). */
static void anchor(fed_audit *a)
{
    uint8_t head[FF_SHA256_BYTES];
    int64_t seq = ff_audit_head(a->log, head);
    if (seq >= 0 && ff_audit_anchor_query(a->path, seq, head) != FF_OK)
        FF_LOG_WARN("audit log: no time-stamp query written: %s", ff_error_message());
    else if (seq >= 0)
        FF_LOG_INFO("audit log: time-stamp query for entry %lld written to %s.anchors/ (send it "
                    "to the time-stamp authority, store the answer with fedfuse audit anchor)",
                    (long long)seq, a->path);
}

/* The aggregate's binding to the sites: the Merkle root over the commitments of the
 * aggregated sites (in the order of `sites`), their entries, and each site's proof. */
static void bind_commitments(fed_audit *a, int64_t round, json_t *agg)
{
    size_t n = json_array_size(a->train_sites), i;
    uint8_t(*leaves)[FF_SHA256_BYTES] = calloc(n ? n : 1, FF_SHA256_BYTES);
    json_t *seqs = json_array(), *v;
    int complete = leaves != NULL && n > 0;
    json_array_foreach(a->train_sites, i, v)
    {
        json_t *cm = json_object_get(a->commits, json_string_value(v));
        const char *hex = json_string_value(json_object_get(cm, "commitment"));
        json_array_append_new(seqs, cm ? json_incref(json_object_get(cm, "seq")) : json_integer(-1));
        if (!hex || !leaves || ff_audit_unhex(hex, leaves[i], FF_SHA256_BYTES) != FF_OK)
            complete = 0;
    }
    json_decref(a->inclusion);
    a->inclusion = NULL;
    uint8_t root[FF_SHA256_BYTES];
    char rhex[FF_SHA256_HEX] = "";
    if (complete && ff_audit_merkle_root((const uint8_t(*)[FF_SHA256_BYTES])leaves, n, root) == FF_OK) {
        ff_hex(root, sizeof root, rhex);
        a->inclusion = json_pack("{s:I, s:I, s:s, s:I, s:{}}", "round", (json_int_t)round,
                                 "aggregate_seq", (json_int_t)ff_audit_next_seq(a->log), "root",
                                 rhex, "size", (json_int_t)n, "sites");
        json_array_foreach(a->train_sites, i, v)
        {
            uint8_t path[64][FF_SHA256_BYTES];
            size_t plen = 0;
            if (ff_audit_merkle_proof((const uint8_t(*)[FF_SHA256_BYTES])leaves, n, i, path, &plen) != FF_OK)
                continue;
            json_t *p = json_array();
            for (size_t k = 0; k < plen; k++) {
                char h[FF_SHA256_HEX];
                ff_hex(path[k], FF_SHA256_BYTES, h);
                json_array_append_new(p, json_string(h));
            }
            json_t *cm = json_object_get(a->commits, json_string_value(v));
            json_object_set_new(json_object_get(a->inclusion, "sites"), json_string_value(v),
                                json_pack("{s:I, s:O, s:o}", "index", (json_int_t)i, "commitment_seq",
                                          json_object_get(cm, "seq"), "path", p));
        }
    } else {
        FF_LOG_WARN("round %lld: not every aggregated site's commitment is logged; the aggregate "
                    "has no commitments root (audit verify reports it)", (long long)round);
    }
    if (rhex[0])
        json_object_set_new(agg, "commitments_root", json_string(rhex));
    json_object_set_new(agg, "commitment_seqs", seqs);
    free(leaves);
}

void fed_audit_commitment(fed_audit *a, int64_t round, int64_t attempt, const char *site,
                          const char *model_hex, const uint8_t *commitment, const uint8_t *sig)
{
    if (!a->log)
        return;
    char c[FF_SHA256_HEX], s[FF_AUDIT_SIG_HEX];
    ff_hex(commitment, FF_SHA256_BYTES, c);
    ff_hex(sig, 64, s);
    json_int_t seq = (json_int_t)ff_audit_next_seq(a->log);
    if (append(a, "commitment", json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "round",
                                          (json_int_t)round, "attempt", (json_int_t)attempt, "site",
                                          site, "job_sha256", a->job, "model_sha256", model_hex,
                                          "commitment", c, "site_sig", s)))
        json_object_set_new(a->commits, site, json_pack("{s:s, s:I}", "commitment", c, "seq", seq));
}

int fed_audit_inclusion(const fed_audit *a, const char *site, ff_call *c,
                        Fedfuse__InclusionProof **out)
{
    *out = NULL;
    json_t *s = json_object_get(json_object_get(a->inclusion, "sites"), site);
    json_t *path = json_object_get(s, "path");
    if (!s || !json_is_integer(json_object_get(s, "commitment_seq")))
        return FF_OK; /* nothing to prove for this site */
    size_t n = json_array_size(path);
    Fedfuse__InclusionProof *p = ff_call_alloc(c, sizeof *p);
    uint8_t *hashes = ff_call_alloc(c, (n + 1) * FF_SHA256_BYTES);
    ProtobufCBinaryData *pb = ff_call_alloc(c, (n + 1) * sizeof *pb);
    if (!p || !hashes || !pb)
        return ff_error(FF_ENOMEM, "inclusion proof: out of memory");
    fedfuse__inclusion_proof__init(p);
    p->round = (uint32_t)json_integer_value(json_object_get(a->inclusion, "round"));
    p->aggregate_seq = (uint64_t)json_integer_value(json_object_get(a->inclusion, "aggregate_seq"));
    p->size = (uint64_t)json_integer_value(json_object_get(a->inclusion, "size"));
    p->index = (uint64_t)json_integer_value(json_object_get(s, "index"));
    p->commitment_seq = (uint64_t)json_integer_value(json_object_get(s, "commitment_seq"));
    int rc = ff_audit_unhex(json_string_value(json_object_get(a->inclusion, "root")), hashes,
                            FF_SHA256_BYTES);
    p->root_sha256 = (ProtobufCBinaryData){FF_SHA256_BYTES, hashes};
    for (size_t k = 0; rc == FF_OK && k < n; k++) {
        uint8_t *h = hashes + (k + 1) * FF_SHA256_BYTES;
        rc = ff_audit_unhex(json_string_value(json_array_get(path, k)), h, FF_SHA256_BYTES);
        pb[k] = (ProtobufCBinaryData){FF_SHA256_BYTES, h};
    }
    p->n_path_sha256 = n;
    p->path_sha256 = pb;
    if (rc == FF_OK)
        *out = p;
    return rc;
}

static void recorded(fed_audit *a, int64_t round, const char *model_sha)
{
    a->logged_round = round;
    ff_strlcpy(a->logged_sha, model_sha, sizeof a->logged_sha);
}

static void on_event(void *ud, const ff_coord_event *ev)
{
    fed_audit *a = ud;
    json_int_t r = (json_int_t)ev->round;
    switch (ev->type) {
    case FF_EV_RUN_START:
        append(a, "run_start",
               json_pack("{s:s, s:s, s:I, s:{s:s, s:f}, s:b}", "config_sha256", a->config_sha,
                         "job_sha256", a->job, "rounds", (json_int_t)a->rounds, "strategy", "name",
                         a->strategy, "server_lr", a->server_lr, "resumed",
                         strcmp(ev->detail, "resumed") == 0));
        /* Also a coordinator killed before its first checkpoint starts the run over on the
         * same log: the second run_start must not look like the first (resumed_round 0). */
        if (strcmp(ev->detail, "resumed") == 0 || a->torn > 0 || a->existed)
            append(a, "restart", json_pack("{s:I, s:I}", "torn_bytes", (json_int_t)a->torn,
                                           "resumed_round", r));
        break;
    case FF_EV_ROUND_START:
        ff_strlcpy(a->stage, ev->detail, sizeof a->stage);
        break;
    case FF_EV_SITES_SELECTED: {
        json_t *sel = json_array();
        names_into(sel, ev->detail);
        json_t *d = json_pack("{s:I, s:I, s:o}", "round", r, "attempt", (json_int_t)ev->attempt,
                              "selected", sel);
        if (d && a->stage[0]) /* the training plan's stage: which objective ran this round */
            json_object_set_new(d, "stage", json_string(a->stage));
        append(a, "round_start", d);
        json_array_clear(a->dropped);
        json_object_clear(a->commits); /* commitments count for this attempt only */
        break;
    }
    case FF_EV_PHASE_OPEN:
        if (strcmp(ev->phase, FF_PHASE_TRAIN) == 0)
            ff_strlcpy(a->sent, ev->hash, sizeof a->sent);
        json_array_clear(a->dropped);
        break;
    case FF_EV_DROPOUT:
        json_array_append_new(a->dropped, json_string(ev->site));
        break;
    case FF_EV_PHASE_CLOSE: {
        json_t *part = json_array();
        names_into(part, ev->detail);
        if (strcmp(ev->phase, FF_PHASE_TRAIN) == 0 || strcmp(ev->phase, FF_PHASE_MASKED) == 0) {
            json_array_clear(a->train_sites);
            json_array_extend(a->train_sites, part);
        }
        append(a, "phase", json_pack("{s:I, s:s, s:o, s:O}", "round", r, "phase", ev->phase,
                                     "participants", part, "dropped", a->dropped));
        json_array_clear(a->dropped);
        break;
    }
    case FF_EV_REFUSAL:
        append(a, "refusal", json_pack("{s:I, s:s, s:s, s:s}", "round", r, "phase", ev->phase,
                                       "site", ev->site, "reason", ff_refusal_name(ev->reason)));
        break;
    case FF_EV_DECLINE:
        append(a, "decline", json_pack("{s:I, s:s, s:s, s:s}", "round", r, "phase", ev->phase,
                                       "site", ev->site, "reason", ev->detail));
        break;
    case FF_EV_QUORUM_FAIL:
        append(a, "quorum_fail", json_pack("{s:I, s:s, s:I, s:s}", "round", r, "phase", ev->phase,
                                           "answered", (json_int_t)ev->count, "detail", ev->detail));
        break;
    case FF_EV_AGGREGATE:
        ff_strlcpy(a->agg, ev->hash, sizeof a->agg);
        break;
    case FF_EV_MODEL:
        ff_strlcpy(a->newmodel, ev->hash, sizeof a->newmodel);
        a->agg_round = ev->round;
        break;
    case FF_EV_CHECKPOINT:
        /* The aggregate entry is written once the round is checkpointed: a coordinator killed
         * before that redoes the round from the previous model, and the log's model chain
         * must not contain a model that was never kept. */
        if (a->agg_round == ev->round) {
            json_t *agg = json_pack("{s:I, s:O, s:b, s:s, s:s, s:s}", "round", r, "sites",
                                    a->train_sites, "secure_aggregation", a->secagg, "model_sha256",
                                    a->sent, "aggregate_sha256", a->agg, "new_model_sha256",
                                    a->newmodel);
            if (agg)
                bind_commitments(a, ev->round, agg);
            if (append(a, "aggregate", agg))
                recorded(a, ev->round, a->newmodel);
        }
        /* what the engine's commit check reads before it publishes the checkpoint */
        if (append(a, "checkpoint", json_pack("{s:I, s:s}", "round", r, "sha256", ev->hash)))
            recorded(a, ev->round, ev->hash);
        if (a->anchor_every > 0 && ev->round % a->anchor_every == 0 && !a->failed)
            anchor(a);
        break;
    case FF_EV_RUN_END:
        if (append(a, "run_end", json_pack("{s:I, s:s, s:s}", "rounds", r, "final_model_sha256",
                                           ev->hash, "status", ev->detail)))
            anchor(a);
        break;
    default:
        break;
    }
}

void fed_audit_evaluation(fed_audit *a, const json_t *round_entry)
{
    if (a->log)
        append(a, "evaluation", json_deep_copy(round_entry));
}

/* Round and model of an aggregate (new_model_sha256) or checkpoint (sha256) entry; 0 when
 * the line is neither. */
static int recorded_round(const char *line, int64_t *round, char *sha)
{
    if (!strstr(line, "\"event\":\"aggregate\"") && !strstr(line, "\"event\":\"checkpoint\""))
        return 0;
    json_t *e = json_loads(line, 0, NULL);
    const char *ev = json_string_value(json_object_get(e, "event"));
    const char *key = !ev                              ? NULL
                      : strcmp(ev, "aggregate") == 0  ? "new_model_sha256"
                      : strcmp(ev, "checkpoint") == 0 ? "sha256"
                                                      : NULL;
    json_t *d = json_object_get(e, "data");
    json_t *r = json_object_get(d, "round");
    const char *h = key ? json_string_value(json_object_get(d, key)) : NULL;
    int ok = json_is_integer(r) && h && strlen(h) == FF_SHA256_HEX - 1;
    if (ok) {
        *round = (int64_t)json_integer_value(r);
        ff_strlcpy(sha, h, FF_SHA256_HEX);
    }
    json_decref(e);
    return ok;
}

/* The last round the log records, as it was when this process started (ff_audit_open has
 * cut a torn tail and checked the last entry's signature): read backwards to its last
 * aggregate or checkpoint entry, not past a fresh start (an earlier run on this log). */
static int scan_logged_round(fed_audit *a, const char *path)
{
    a->logged_round = -1;
    char *buf;
    size_t len;
    int rc = ff_file_read_all(path, (size_t)1 << 34, &buf, &len);
    if (rc != FF_OK)
        return rc;
    for (size_t end = len; end > 0;) {
        size_t start = end - 1;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        buf[end - 1] = buf[end - 1] == '\n' ? '\0' : buf[end - 1];
        const char *line = buf + start;
        if ((strstr(line, "\"event\":\"run_start\"") && strstr(line, "\"resumed\":false")) ||
            recorded_round(line, &a->logged_round, a->logged_sha))
            break;
        end = start;
    }
    free(buf);
    return FF_OK;
}

int fed_audit_committed(void *ud, int64_t round, const char *model_sha256)
{
    const fed_audit *a = ud;
    return !a->log || (a->logged_round == round && strcmp(a->logged_sha, model_sha256) == 0);
}

int fed_audit_open(fed_audit *a, const ff_coord_config *cfg, const char *config_path,
                   const char *job_hex, ff_coord *c)
{
    memset(a, 0, sizeof *a);
    a->train_sites = json_array();
    a->dropped = json_array();
    a->commits = json_object();
    a->anchor_every = cfg->audit.anchor_every;
    if (!cfg->audit.key[0]) {
        FF_LOG_WARN("no audit key in the config (audit.key): running without an audit log");
        return FF_OK;
    }
    ff_strlcpy(a->job, job_hex, sizeof a->job);
    a->rounds = cfg->rounds;
    a->server_lr = cfg->strategy.server_lr;
    ff_strlcpy(a->strategy, ff_strategy_name(cfg->strategy.name), sizeof a->strategy);
    char *path = a->path, cons_sha[FF_SHA256_HEX];
    if (cfg->audit.log[0])
        ff_strlcpy(path, cfg->audit.log, sizeof a->path);
    else
        snprintf(path, sizeof a->path, "%s/audit.jsonl", cfg->out_dir);
    char *pem = NULL;
    size_t pem_len = 0;
    int rc = ff_sha256_file(config_path, a->config_sha);
    if (rc == FF_OK)
        rc = ff_sha256_file(cfg->consortium, cons_sha);
    if (rc == FF_OK)
        rc = ff_audit_load_key(cfg->audit.key, &a->key);
    if (rc == FF_OK)
        rc = ff_file_read_all(cfg->audit.cert, 1u << 20, &pem, &pem_len);
    if (rc == FF_OK) { /* auditors trust only an audit-role certificate: refuse any other */
        X509 *x = NULL;
        if ((rc = ff_pki_cert_from_pem(pem, pem_len, &x)) == FF_OK)
            rc = ff_pki_check_role(x, FF_PKI_AUDIT, NULL);
        X509_free(x);
        if (rc != FF_OK)
            ff_error_prefix(rc, "audit.cert %s: ", cfg->audit.cert);
    }
    json_t *gen = json_pack("{s:s, s:s, s:s, s:s, s:s}", "format", "fedfuse-audit-v1",
                            "consortium_sha256", cons_sha, "job_sha256", job_hex, "policy_sha256",
                            a->config_sha, "run_name", cfg->run_name);
    struct stat st;
    a->existed = stat(path, &st) == 0 && st.st_size > 0;
    if (rc == FF_OK)
        rc = ff_audit_open(&a->log, path, a->key, pem, gen, &a->torn);
    json_decref(gen);
    free(pem);
    if (rc == FF_OK && a->torn)
        FF_LOG_WARN("audit log %s: cut %zu bytes of a torn last entry", path, a->torn);
    if (rc == FF_OK)
        rc = scan_logged_round(a, path);
    if (rc == FF_OK)
        rc = ff_coord_add_hook(c, on_event, a);
    if (rc == FF_OK)
        ff_coord_set_commit_check(c, fed_audit_committed, a);
    return rc;
}

void fed_audit_secagg(fed_audit *a, const char *model_sha, json_t *params)
{
    a->secagg = 1;
    ff_strlcpy(a->sent, model_sha, sizeof a->sent);
    if (a->log)
        append(a, "secagg", json_incref(params));
}

void fed_audit_privacy(fed_audit *a, json_t *data)
{
    if (a->log)
        append(a, "privacy", data);
    else
        json_decref(data);
}

void fed_audit_close(fed_audit *a)
{
    if (a->log)
        ff_audit_close(a->log);
    EVP_PKEY_free(a->key);
    json_decref(a->train_sites);
    json_decref(a->dropped);
    json_decref(a->commits);
    json_decref(a->inclusion);
    memset(a, 0, sizeof *a);
}

void fed_audit_statistics(fed_audit *a, json_t *data)
{
    if (a->log)
        append(a, "statistics", data);
    else
        json_decref(data);
}
