/* The auditor's verification: chain, signatures, sequence, certificate, round consistency,
 * consortium policy, epsilon recomputation and receipts. Every problem becomes a finding
 * that names the entry and the rule; verification never stops at the first one. */
#include "audit_internal.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const ff_audit_verify_opts *o;
    ff_audit_summary *s;
    ff_audit_findings *f;
    X509 *ca;
    EVP_PKEY *pub;      /* audit key from the genesis certificate */
    int64_t round;      /* current round, 0 before the first */
    json_t *selected;   /* sites selected in the current round */
    json_t *answered;   /* sites in the phase entries of the current attempt */
    char last_model[FF_SHA256_HEX];
    json_t *rounds;     /* "r" -> {"sites":[..],"model_sha256":..,"secagg":{..},"failed":[..]} */
    json_t *sites;      /* set of all sites */
    double eps_rec, eps_cli;
    json_t *commits;    /* site -> {"commitment","seq"} of the current attempt */
    json_t *prev_ledger[2]; /* rounds of the previous privacy entry's record/client ledger */
    int64_t prev_ledger_seq;
    int64_t seq;        /* the entry being checked */
    int sig_ok;         /* its signature verified */
    const char *ts;     /* its time */
    json_t *timeline, *job;
    json_t *lines;      /* SHA-256 (hex) of every line, for anchors */
    json_t *line_ts;    /* and its logged time ("" when unreadable) */
    char ts_buf[40];
} vctx;

void au_add_finding(ff_audit_findings *f, const char *rule, int64_t seq, const char *fmt, ...)
{
    if (ff_grow(&f->items, &f->cap, f->count + 1, sizeof *f->items) != FF_OK)
        return; /* out of memory: the verdict is still "not ok" via earlier findings */
    ff_audit_finding *it = &f->items[f->count++];
    ff_strlcpy(it->rule, rule, sizeof it->rule);
    it->seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->detail, sizeof it->detail, fmt, ap);
    va_end(ap);
}

void ff_audit_findings_free(ff_audit_findings *f)
{
    free(f->items);
    memset(f, 0, sizeof *f);
}

static int str_in(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return 1;
    }
    return 0;
}

/* Every string of sub must be in super; names the first one that is not. */
static const char *first_not_in(json_t *sub, json_t *super)
{
    size_t i;
    json_t *v;
    json_array_foreach(sub, i, v)
    {
        if (!json_is_string(v) || !super || !str_in(super, json_string_value(v)))
            return json_is_string(v) ? json_string_value(v) : "(non-string)";
    }
    return NULL;
}

static json_t *round_info(vctx *c, int64_t r)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)r);
    json_t *ri = json_object_get(c->rounds, key);
    if (!ri) {
        ri = json_pack("{s:I, s:I, s:{}}", "round", (json_int_t)r, "attempts", (json_int_t)0,
                       "receipts");
        json_object_set_new(c->rounds, key, ri);
    }
    return ri;
}

static void timeline(vctx *c, const char *what, json_t *extra)
{
    json_t *t = json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)c->seq, "ts", c->ts ? c->ts : "",
                          "event", what);
    if (t && extra)
        json_object_update(t, extra);
    json_decref(extra);
    json_array_append_new(c->timeline, t);
}

/* a and b differ beyond rounding (17 significant digits are logged) */
static int differs(double a, double b)
{
    return !(fabs(a - b) <= 1e-9 * fmax(1.0, fmax(fabs(a), fabs(b))));
}

static void check_genesis(vctx *c, int64_t seq, json_t *data)
{
    const char *pem = json_string_value(json_object_get(data, "audit_cert"));
    X509 *cert = pem ? au_cert_from_pem(pem) : NULL;
    if (!cert) {
        au_add_finding(c->f, "certificate", seq, "genesis entry has no readable audit_cert");
        return;
    }
    char why[160];
    if (c->ca && au_cert_check(c->ca, cert, why, sizeof why) != FF_OK) {
        au_add_finding(c->f, "certificate", seq, "audit certificate does not chain to the CA: %s", why);
        snprintf(c->s->audit_trust, sizeof c->s->audit_trust, "NOT trusted: does not chain to "
                 "the CA: %s", why);
    } else if (c->ca) {
        c->s->ca_checked = 1;
        char how[sizeof c->s->audit_trust - 16];
        const char *name = c->o->audit_name ? c->o->audit_name : "audit";
        if (!c->o->cert_fn)
            snprintf(c->s->audit_trust, sizeof c->s->audit_trust, "chains to the CA (role, "
                     "name and revocation not checked)");
        else if (c->o->cert_fn(c->o->cert_ctx, cert, "audit", name, how, sizeof how) != FF_OK) {
            au_add_finding(c->f, "certificate.trust", seq, "audit certificate refused: %s", how);
            snprintf(c->s->audit_trust, sizeof c->s->audit_trust, "NOT trusted: %s", how);
        } else {
            snprintf(c->s->audit_trust, sizeof c->s->audit_trust, "trusted: %s", how);
        }
    }
    json_t *g = json_deep_copy(data);
    json_object_del(g, "audit_cert");
    json_object_set_new(c->job, "genesis", g);
    X509_NAME_oneline(X509_get_subject_name(cert), c->s->coordinator_subject,
                      sizeof c->s->coordinator_subject);
    c->pub = X509_get_pubkey(cert);
    X509_free(cert);
}

/* 1 when the caller's certificate check refuses cert as site's (reason in why). */
static int site_refused(vctx *c, X509 *cert, const char *site, char *why, size_t n)
{
    char how[256];
    if (c->o->cert_fn(c->o->cert_ctx, cert, "site", site, how, sizeof how) == FF_OK)
        return 0;
    snprintf(why, n, "%s", how);
    return 1;
}

static void check_round_start(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = json_integer_value(json_object_get(d, "round"));
    json_t *sel = json_object_get(d, "selected");
    if (r != c->round + 1 && r != c->round)
        au_add_finding(c->f, "consistency.round_order", seq, "round %lld starts after round %lld",
                    (long long)r, (long long)c->round);
    if (!json_is_array(sel))
        au_add_finding(c->f, "format", seq, "round_start without a 'selected' list");
    c->round = r;
    json_decref(c->selected);
    c->selected = json_incref(sel);
    json_array_clear(c->answered);
    json_object_clear(c->commits);
    json_t *ri = round_info(c, r);
    json_object_set_new(ri, "attempts", json_integer(json_integer_value(json_object_get(ri, "attempts")) + 1));
    json_object_set(ri, "selected", sel);
    if (!json_object_get(ri, "ts"))
        json_object_set_new(ri, "ts", json_string(c->ts ? c->ts : ""));
    timeline(c, "round_start", json_pack("{s:I, s:O?, s:O?}", "round", (json_int_t)r, "attempt",
                                         json_object_get(d, "attempt"), "selected", sel));
}

static int64_t entry_round(vctx *c, int64_t seq, json_t *d, const char *event)
{
    int64_t r = json_integer_value(json_object_get(d, "round"));
    if (r != c->round)
        au_add_finding(c->f, "consistency.round", seq, "%s entry for round %lld inside round %lld",
                    event, (long long)r, (long long)c->round);
    return r;
}

static void check_phase(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "phase");
    const char *bad = first_not_in(json_object_get(d, "participants"), c->selected);
    const char *phase = json_string_value(json_object_get(d, "phase"));
    if (bad)
        au_add_finding(c->f, "consistency.participants", seq,
                    "site '%s' took part in phase '%s' but was not selected", bad,
                    phase ? phase : "?");
    json_t *part = json_object_get(d, "participants");
    if (json_is_array(part))
        json_array_extend(c->answered, part);
    /* secure aggregation: the survivors of masked_input are what was summed */
    if (phase && (strcmp(phase, "masked_input") == 0 || strcmp(phase, "unmask") == 0))
        json_object_set_new(round_info(c, r), strcmp(phase, "unmask") == 0 ? "unmasked_by" : "survivors",
                            json_integer((json_int_t)json_array_size(part)));
}

/* A site that said no to its task (policy, budget) must have been selected for it. */
static void check_decline(vctx *c, int64_t seq, json_t *d)
{
    entry_round(c, seq, d, "decline");
    const char *site = json_string_value(json_object_get(d, "site"));
    if (!site || !c->selected || !str_in(c->selected, site))
        au_add_finding(c->f, "consistency.decline", seq,
                    "site '%s' declined a task of round %lld but was not selected",
                    site ? site : "?", (long long)c->round);
}

/* An attempt that missed its quorum: its sites may hold receipts (a plain update is receipted
 * when acknowledged) for a round that aggregated without them, or never did. */
static void check_quorum_fail(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "quorum_fail");
    json_t *ri = round_info(c, r);
    json_t *failed = json_object_get(ri, "failed");
    if (!failed) {
        failed = json_array();
        json_object_set_new(ri, "failed", failed);
    }
    json_array_extend(failed, c->answered);
    json_array_clear(c->answered);
    timeline(c, "quorum_fail", json_pack("{s:I, s:O?}", "round", (json_int_t)r, "phase",
                                         json_object_get(d, "phase")));
}

static void check_secagg(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "secagg");
    int64_t n = json_integer_value(json_object_get(d, "n"));
    int64_t t = json_integer_value(json_object_get(d, "t"));
    int64_t k = json_integer_value(json_object_get(d, "k"));
    if (t < 1 || t > n || k < 1 || k > n - 1)
        au_add_finding(c->f, "consistency.secagg", seq, "impossible parameters n=%lld t=%lld k=%lld",
                    (long long)n, (long long)t, (long long)k);
    const ff_audit_policy *p = c->o->policy;
    if (p && p->min_threshold > 0 && t < p->min_threshold)
        au_add_finding(c->f, "policy.threshold", seq, "round %lld: threshold t=%lld below the policy's %lld",
                    (long long)r, (long long)t, (long long)p->min_threshold);
    json_object_set_new(round_info(c, r), "secagg", json_deep_copy(d));
}

/* A site's signed commitment to its update (docs/audit.md): its signature is checked with
 * the site's certificate when certificates are given; the aggregate entry must cover it. */
static void check_commitment(vctx *c, int64_t seq, json_t *d)
{
    entry_round(c, seq, d, "commitment");
    const char *site = json_string_value(json_object_get(d, "site"));
    const char *cm = json_string_value(json_object_get(d, "commitment"));
    if (!site || !cm || strlen(cm) != FF_SHA256_HEX - 1) {
        au_add_finding(c->f, "format", seq, "commitment entry lacks site or commitment");
        return;
    }
    if (!c->selected || !str_in(c->selected, site))
        au_add_finding(c->f, "consistency.participants", seq,
                    "site '%s' committed to an update in round %lld but was not selected", site,
                    (long long)c->round);
    c->s->commitments++;
    if (c->o->receipt_certs) {
        char cpath[1024], why[160] = "";
        snprintf(cpath, sizeof cpath, "%s/%s.pem", c->o->receipt_certs, site);
        X509 *cert = au_cert_from_file(cpath);
        EVP_PKEY *pub = cert ? X509_get_pubkey(cert) : NULL;
        if (!cert)
            au_add_finding(c->f, "commitment.signature", seq, "no certificate %s for site '%s'", cpath, site);
        else if (!c->ca || au_cert_check(c->ca, cert, why, sizeof why) != FF_OK)
            au_add_finding(c->f, "commitment.signature", seq, "site '%s': its certificate does not "
                        "chain to the CA: %s", site, why);
        else if (c->o->cert_fn && site_refused(c, cert, site, why, sizeof why))
            au_add_finding(c->f, "commitment.signature", seq, "site '%s': its certificate is "
                        "refused: %s", site, why);
        else if (!pub || au_commitment_check(pub, d) != FF_OK)
            au_add_finding(c->f, "commitment.signature", seq, "the commitment of site '%s' in round "
                        "%lld is not signed by that site: %s", site, (long long)c->round,
                        ff_error_message());
        else
            c->s->commitments_verified++;
        EVP_PKEY_free(pub);
        X509_free(cert);
    }
    json_object_set_new(c->commits, site, json_pack("{s:s, s:I, s:O?}", "commitment", cm, "seq",
                                                    (json_int_t)seq, "model_sha256",
                                                    json_object_get(d, "model_sha256")));
}

/* Every aggregated site must have committed in this attempt; the logged Merkle root must be
 * the root of those commitments in the order of `sites`. */
static void check_commit_root(vctx *c, int64_t seq, int64_t r, json_t *d, json_t *sites,
                              json_t *ri)
{
    size_t n = json_array_size(sites), i;
    json_t *v;
    uint8_t(*leaves)[FF_SHA256_BYTES] = calloc(n ? n : 1, FF_SHA256_BYTES);
    json_t *seqs = json_array(), *bound = json_object();
    int complete = leaves != NULL;
    json_array_foreach(sites, i, v)
    {
        const char *site = json_is_string(v) ? json_string_value(v) : "?";
        json_t *cm = json_object_get(c->commits, site);
        const char *hex = json_string_value(json_object_get(cm, "commitment"));
        if (!hex || !leaves || au_unhex(hex, leaves[i], FF_SHA256_BYTES) != FF_OK) {
            au_add_finding(c->f, "commitment.missing", seq, "site '%s' is listed as aggregated in "
                        "round %lld, but no commitment signed by it is logged for this attempt",
                        site, (long long)r);
            complete = 0;
            json_array_append_new(seqs, json_integer(-1));
            continue;
        }
        const char *m = json_string_value(json_object_get(cm, "model_sha256"));
        const char *sent = json_string_value(json_object_get(d, "model_sha256"));
        if (m && sent && strcmp(m, sent) != 0)
            au_add_finding(c->f, "commitment.model", json_integer_value(json_object_get(cm, "seq")),
                        "site '%s' committed to an update of model %.12s..., round %lld sent %.12s...",
                        site, m, (long long)r, sent);
        json_array_append(seqs, json_object_get(cm, "seq"));
        json_object_set(bound, site, cm);
    }
    const char *root_hex = json_string_value(json_object_get(d, "commitments_root"));
    json_t *lseqs = json_object_get(d, "commitment_seqs");
    uint8_t root[FF_SHA256_BYTES];
    char want[FF_SHA256_HEX] = "";
    if (complete && n > 0 && ff_audit_merkle_root((const uint8_t(*)[FF_SHA256_BYTES])leaves, n, root) == FF_OK)
        ff_hex(root, sizeof root, want);
    if (!root_hex)
        au_add_finding(c->f, "commitment.root", seq, "round %lld: the aggregate entry has no "
                    "commitments_root", (long long)r);
    else if (want[0] && strcmp(want, root_hex) != 0)
        au_add_finding(c->f, "commitment.root", seq, "round %lld: commitments_root %.12s... is not "
                    "the Merkle root %.12s... of the logged commitments", (long long)r, root_hex, want);
    if (root_hex && lseqs && !json_equal(lseqs, seqs))
        au_add_finding(c->f, "commitment.root", seq, "round %lld: commitment_seqs do not name the "
                    "commitment entries of the aggregated sites", (long long)r);
    json_object_set_new(ri, "commitments", bound);
    json_object_set_new(ri, "commitments_root", json_string(want));
    json_decref(seqs);
    free(leaves);
}

static void check_aggregate(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "aggregate");
    json_t *sites = json_object_get(d, "sites");
    const char *bad = first_not_in(sites, c->selected);
    if (bad)
        au_add_finding(c->f, "consistency.participants", seq,
                    "site '%s' aggregated in round %lld but was not selected", bad, (long long)r);
    const char *sent = json_string_value(json_object_get(d, "model_sha256"));
    const char *next = json_string_value(json_object_get(d, "new_model_sha256"));
    if (!sent || !next)
        au_add_finding(c->f, "format", seq, "aggregate entry lacks model hashes");
    else if (c->last_model[0] && strcmp(sent, c->last_model) != 0)
        au_add_finding(c->f, "consistency.model_chain", seq,
                    "round %lld sent model %.12s..., but the previous round produced %.12s...",
                    (long long)r, sent, c->last_model);
    if (next)
        ff_strlcpy(c->last_model, next, sizeof c->last_model);
    const ff_audit_policy *p = c->o->policy;
    size_t n = json_array_size(sites);
    if (p && p->min_sites > 0 && (int64_t)n < p->min_sites)
        au_add_finding(c->f, "policy.min_sites", seq, "round %lld aggregated %zu sites, policy minimum is %lld",
                    (long long)r, n, (long long)p->min_sites);
    if (p && p->require_secagg && !json_is_true(json_object_get(d, "secure_aggregation")))
        au_add_finding(c->f, "policy.secure_aggregation", seq,
                    "round %lld was aggregated without secure aggregation", (long long)r);
    json_t *ri = round_info(c, r);
    check_commit_root(c, seq, r, d, sites, ri);
    size_t i;
    json_t *v;
    json_array_foreach(sites, i, v)
    {
        if (json_is_string(v) && c->sig_ok)
            json_object_set_new(c->sites, json_string_value(v), json_true());
    }
    json_object_set(ri, "sites", sites);
    json_object_set(ri, "model_sha256", json_object_get(d, "model_sha256"));
    json_object_set(ri, "new_model_sha256", json_object_get(d, "new_model_sha256"));
    json_object_set_new(ri, "secure_aggregation", json_boolean(json_is_true(json_object_get(d, "secure_aggregation"))));
    json_object_set_new(ri, "aggregate_seq", json_integer((json_int_t)seq));
    if (c->sig_ok)
        c->s->rounds++;
}

/* The privacy library's names of a ledger round's mechanism parameters, and how a finding
 * names them. */
static const struct {
    const char *key, *name;
} mech_params[] = {{"sigma", "noise_multiplier"}, {"clip_norm", "clip_norm"}, {"q", "sampling"},
                   {"steps", "steps"},           {"ddg_sigma", "ddg_sigma"},  {"ddg_gamma", "ddg_gamma"},
                   {"ddg_beta", "ddg_beta"},     {"ddg_dim", "ddg_dim"},     {"mechanism", "mechanism"}};

/* The ledger's rounds must extend the previous privacy entry's unchanged: a rewritten
 * parameter of an earlier round is named. */
static void check_ledger_history(vctx *c, int64_t seq, int level, json_t *rounds)
{
    json_t *prev = c->prev_ledger[level];
    const char *lv = level ? "client" : "record";
    if (!prev)
        goto keep;
    if (json_array_size(rounds) < json_array_size(prev))
        au_add_finding(c->f, "privacy.ledger", seq, "the %s-level ledger has %zu rounds, entry %lld's "
                    "had %zu: charged rounds were removed", lv, json_array_size(rounds),
                    (long long)c->prev_ledger_seq, json_array_size(prev));
    for (size_t i = 0; i < json_array_size(prev) && i < json_array_size(rounds); i++) {
        json_t *a = json_array_get(prev, i), *b = json_array_get(rounds, i);
        for (size_t k = 0; k < FF_ARRAY_LEN(mech_params); k++) {
            json_t *x = json_object_get(a, mech_params[k].key), *y = json_object_get(b, mech_params[k].key);
            if ((x || y) && !(x && y && json_equal(x, y)) &&
                !(json_is_number(x) && json_is_number(y) && !differs(json_number_value(x), json_number_value(y))))
                au_add_finding(c->f, mech_params[k].name[0] == 'm' ? "privacy.mechanism" : "privacy.ledger", seq,
                            "%s-level ledger: %s of round %lld changed from %.9g (entry %lld) to %.9g",
                            lv, mech_params[k].name, (long long)json_integer_value(json_object_get(b, "round")),
                            json_number_value(x), (long long)c->prev_ledger_seq, json_number_value(y));
        }
    }
keep:
    json_decref(c->prev_ledger[level]);
    c->prev_ledger[level] = json_deep_copy(rounds);
}

/* The entry's mechanism parameters of round r against the ledger's record of round r. */
static void check_mechanism(vctx *c, int64_t seq, int64_t r, json_t *d, json_t *ledger, int level)
{
    json_t *rounds = json_object_get(ledger, "rounds");
    json_t *last = json_array_get(rounds, json_array_size(rounds) - 1);
    const char *lv = level ? "client" : "record";
    if (!last || json_integer_value(json_object_get(last, "round")) != r) {
        au_add_finding(c->f, "privacy.ledger", seq, "round %lld: the %s-level ledger does not end at "
                    "this round", (long long)r, lv);
        return;
    }
    check_ledger_history(c, seq, level, rounds);
    if (level == 0)
        return; /* record-level: the sites' own DP-SGD, checked in their receipts */
    static const struct {
        const char *entry, *ledger, *name;
    } pairs[] = {{"noise_multiplier", "sigma", "privacy.noise_multiplier"},
                 {"clip_norm", "clip_norm", "privacy.clip_norm"},
                 {"q", "q", "privacy.sampling"},
                 {"steps", "steps", "privacy.steps"}};
    for (size_t k = 0; k < FF_ARRAY_LEN(pairs); k++) {
        json_t *x = json_object_get(d, pairs[k].entry), *y = json_object_get(last, pairs[k].ledger);
        if (!y)
            continue; /* the distributed discrete Gaussian ledger has no sigma */
        if (!json_is_number(x) || differs(json_number_value(x), json_number_value(y)))
            au_add_finding(c->f, pairs[k].name, seq, "round %lld: the entry says %s = %.9g, the "
                        "accounted %s-level ledger has %.9g for this round", (long long)r,
                        pairs[k].entry, json_number_value(x), lv, json_number_value(y));
    }
    json_t *x = json_object_get(d, "delta"), *y = json_object_get(ledger, "delta");
    if (x && y && differs(json_number_value(x), json_number_value(y)))
        au_add_finding(c->f, "privacy.delta", seq, "round %lld: the entry says delta = %.9g, the ledger "
                    "accounts with %.9g", (long long)r, json_number_value(x), json_number_value(y));
}

static void check_privacy(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "privacy");
    json_t *jer = json_object_get(d, "epsilon_record"), *jec = json_object_get(d, "epsilon_client");
    json_t *rl = json_object_get(d, "record_ledger"), *cl = json_object_get(d, "client_ledger");
    int on[2] = {json_is_object(rl) || json_is_number(jer), json_is_object(cl) || json_is_number(jec)};
    c->s->dp_record |= on[0];
    c->s->dp_client |= on[1];
    double rr = -1, rc = -1;
    int ok = 0;
    if (!c->o->epsilon_fn) {
        c->s->eps_recomputed = 0;
    } else if (c->o->epsilon_fn(d, &rr, &rc) != FF_OK) {
        au_add_finding(c->f, "privacy.epsilon", seq, "round %lld: cannot recompute epsilon from the "
                    "logged parameters: %s", (long long)r, ff_error_message());
        c->s->eps_recomputed = 0;
    } else {
        ok = 1;
    }
    double logged[2] = {json_number_value(jer), json_number_value(jec)}, mine[2] = {rr, rc};
    json_t *ledgers[2] = {rl, cl};
    for (int lv = 0; ok && lv < 2; lv++) {
        if (!on[lv])
            continue;
        const char *name = lv ? "client" : "record";
        json_t *lj = lv ? jec : jer;
        if (!json_is_number(lj) || differs(logged[lv], mine[lv]))
            au_add_finding(c->f, "privacy.epsilon", seq, "round %lld: the logged %s-level epsilon %.9g "
                        "differs from the verifier's recomputation %.9g from the logged mechanism "
                        "parameters", (long long)r, name, logged[lv], mine[lv]);
        json_t *le = json_object_get(ledgers[lv], "epsilon");
        if (le && differs(json_number_value(le), mine[lv]))
            au_add_finding(c->f, "privacy.epsilon", seq, "round %lld: the %s-level ledger states "
                        "epsilon %.9g, its rounds recompute to %.9g", (long long)r, name,
                        json_number_value(le), mine[lv]);
        double *prev = lv ? &c->eps_cli : &c->eps_rec;
        if (mine[lv] + 1e-12 < *prev)
            au_add_finding(c->f, "consistency.epsilon", seq, "round %lld: cumulative %s-level epsilon "
                        "decreased from %.9g to %.9g", (long long)r, name, *prev, mine[lv]);
        *prev = mine[lv];
    }
    /* the caps: the verifier's own ε, and a logged value over the cap is a breach too */
    for (int lv = 0; lv < 2 && c->o->policy; lv++) {
        double cap = lv ? c->o->policy->max_epsilon_client : c->o->policy->max_epsilon_record;
        double worst = fmax(ok && on[lv] ? mine[lv] : -1, json_is_number(lv ? jec : jer) ? logged[lv] : -1);
        if (cap > 0 && worst > cap)
            au_add_finding(c->f, lv ? "policy.max_epsilon_client" : "policy.max_epsilon_record", seq,
                        "round %lld: %s-level epsilon %.6g exceeds the cap %.6g", (long long)r,
                        lv ? "client" : "record", worst, cap);
    }
    if (on[0] && json_is_object(rl))
        check_mechanism(c, seq, r, d, rl, 0);
    if (on[1] && json_is_object(cl))
        check_mechanism(c, seq, r, d, cl, 1);
    c->s->epsilon_record = ok && on[0] ? rr : -1;
    c->s->epsilon_client = ok && on[1] ? rc : -1;
    json_t *budget = json_object_get(d, "epsilon_budget");
    if (on[1] && json_is_number(budget))
        c->s->budget_client = json_number_value(budget);
    if (on[0] && json_is_number(json_object_get(rl, "epsilon_budget")))
        c->s->budget_record = json_number_value(json_object_get(rl, "epsilon_budget"));
    c->prev_ledger_seq = seq;
    json_t *ri = round_info(c, r);
    json_object_set_new(ri, "eps_record", ok && on[0] ? json_real(rr) : json_null());
    json_object_set_new(ri, "eps_client", ok && on[1] ? json_real(rc) : json_null());
    json_object_set_new(ri, "privacy_seq", json_integer((json_int_t)seq));
    json_object_set_new(ri, "dp_client", json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "noise_multiplier",
                                                   json_object_get(d, "noise_multiplier"), "clip_norm",
                                                   json_object_get(d, "clip_norm"), "delta",
                                                   json_object_get(d, "delta"), "epsilon_budget", budget,
                                                   "survivors", json_object_get(d, "survivors")));
}

static void check_event(vctx *c, int64_t seq, const char *event, json_t *d)
{
    if (strcmp(event, "genesis") == 0) {
        if (seq != 0)
            au_add_finding(c->f, "consistency.genesis", seq, "a second genesis entry");
    } else if (strcmp(event, "round_start") == 0) {
        check_round_start(c, seq, d);
    } else if (strcmp(event, "phase") == 0) {
        check_phase(c, seq, d);
    } else if (strcmp(event, "secagg") == 0) {
        check_secagg(c, seq, d);
    } else if (strcmp(event, "commitment") == 0) {
        check_commitment(c, seq, d);
    } else if (strcmp(event, "aggregate") == 0) {
        check_aggregate(c, seq, d);
    } else if (strcmp(event, "privacy") == 0) {
        check_privacy(c, seq, d);
    } else if (strcmp(event, "quorum_fail") == 0) {
        check_quorum_fail(c, seq, d);
    } else if (strcmp(event, "decline") == 0) {
        check_decline(c, seq, d);
    } else if (strcmp(event, "run_start") == 0) {
        json_object_set(c->job, "run_start", d);
        timeline(c, "run_start", json_pack("{s:O?}", "resumed", json_object_get(d, "resumed")));
    } else if (strcmp(event, "restart") == 0) {
        timeline(c, "restart", json_pack("{s:O?, s:O?}", "resumed_round", json_object_get(d, "resumed_round"),
                                         "torn_bytes", json_object_get(d, "torn_bytes")));
    } else if (strcmp(event, "run_end") == 0) {
        c->s->ended = 1;
        timeline(c, "run_end", json_pack("{s:O?, s:O?}", "rounds", json_object_get(d, "rounds"),
                                         "status", json_object_get(d, "status")));
    }
    /* checkpoint, refusal, stage: recorded, no cross-entry rule. */
}

/* Checks one line (no newline) at position i. prev is the previous line's hash. */
static void check_line(vctx *c, size_t i, const char *line, size_t n, const uint8_t prev[32])
{
    int64_t seq = (int64_t)i;
    json_error_t jerr;
    json_t *e = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!e || !json_is_object(e)) {
        au_add_finding(c->f, "format", seq, "line %zu is not a JSON object: %s", i + 1, e ? "" : jerr.text);
        json_decref(e);
        return;
    }
    json_t *jseq = json_object_get(e, "seq");
    const char *phex = json_string_value(json_object_get(e, "prev"));
    const char *event = json_string_value(json_object_get(e, "event"));
    json_t *data = json_object_get(e, "data");
    if (!json_is_integer(jseq) || !phex || !event || !json_is_object(data)) {
        au_add_finding(c->f, "format", seq, "line %zu lacks seq, prev, event or data", i + 1);
        json_decref(e);
        return;
    }
    if (json_integer_value(jseq) != seq)
        au_add_finding(c->f, "seq", seq, "line %zu has seq %lld, expected %lld (an entry was deleted, "
                    "inserted or moved)", i + 1, (long long)json_integer_value(jseq), (long long)seq);
    char want[FF_SHA256_HEX];
    ff_hex(prev, FF_SHA256_BYTES, want);
    if (strcmp(phex, want) != 0)
        au_add_finding(c->f, "chain", seq, "prev hash does not match the preceding entry");
    if (i == 0)
        check_genesis(c, seq, data);
    c->seq = seq;
    c->ts = json_string_value(json_object_get(e, "ts"));
    ff_strlcpy(c->ts_buf, c->ts ? c->ts : "", sizeof c->ts_buf);
    c->sig_ok = c->pub && au_open_line(c->pub, line, n) == FF_OK;
    if (!c->sig_ok)
        au_add_finding(c->f, "signature", seq, "entry '%s' is not signed by the audit key", event);
    check_event(c, seq, event, data);
    json_decref(e);
}

/* A receipt's record-level DP-SGD (privacy.record): the site's ledger up to this round is
 * replayed with the accountant; the ε it claims must be what the ledger gives, within its
 * budget, and the ledger's last round this one. */
static void check_receipt_record(vctx *c, const char *path, const char *site, int64_t round,
                                 json_t *rec)
{
    char rkey[32];
    snprintf(rkey, sizeof rkey, "%lld", (long long)round);
    json_t *agg = json_object_get(json_object_get(c->rounds, rkey), "aggregate_seq");
    int64_t at = agg ? (int64_t)json_integer_value(agg) : -1;
    if (!json_is_true(json_object_get(rec, "enabled")))
        return;
    json_t *ledger = json_object_get(rec, "ledger");
    json_t *rounds = json_object_get(ledger, "rounds");
    json_t *last = json_array_get(rounds, json_array_size(rounds) - 1);
    json_t *e = json_pack("{s:O?}", "record_ledger", ledger);
    double eps = 0, unused = 0;
    int rc = ledger && last ? ff_audit_privacy_epsilon(e, &eps, &unused) : FF_EFORMAT;
    json_decref(e);
    double claim = json_number_value(json_object_get(rec, "epsilon"));
    double budget = json_number_value(json_object_get(rec, "epsilon_budget"));
    if (rc != FF_OK)
        au_add_finding(c->f, "receipt.privacy", at, "%s: site '%s' round %lld: the record-level "
                    "ledger does not replay: %s", path, site, (long long)round,
                    rc == FF_EFORMAT && !last ? "no rounds" : ff_error_message());
    else if (json_integer_value(json_object_get(last, "round")) != round)
        au_add_finding(c->f, "receipt.privacy", at, "%s: site '%s' round %lld: the record-level "
                    "ledger ends at round %lld", path, site, (long long)round,
                    (long long)json_integer_value(json_object_get(last, "round")));
    else if (!(fabs(eps - claim) <= 1e-9 * fmax(1.0, eps)))
        au_add_finding(c->f, "receipt.privacy.epsilon", at, "%s: site '%s' round %lld claims "
                    "record-level epsilon %.10g, its ledger recomputes to %.10g", path, site,
                    (long long)round, claim, eps);
    else if (eps > budget)
        au_add_finding(c->f, "receipt.privacy.budget", at, "%s: site '%s' round %lld: record-level "
                    "epsilon %.10g is past its budget %g", path, site, (long long)round, eps,
                    budget);
    else
        c->s->receipts_record_dp++;
}

static int64_t round_seq(json_t *ri)
{
    json_t *v = json_object_get(ri, "aggregate_seq");
    return v ? (int64_t)json_integer_value(v) : -1;
}

/* The inclusion proof a receipt carries: its commitment is a leaf of the round's logged root. */
static int check_inclusion(vctx *c, const char *path, const char *site, int64_t round, json_t *inc,
                           json_t *ri, json_t *cm, const char *commit)
{
    int64_t seq = json_integer_value(json_object_get(cm, "seq"));
    json_t *p = json_object_get(inc, "path");
    size_t n = json_array_size(p), i;
    uint8_t leaf[FF_SHA256_BYTES], root[FF_SHA256_BYTES], path_h[64][FF_SHA256_BYTES];
    const char *root_hex = json_string_value(json_object_get(inc, "root"));
    const char *logged = json_string_value(json_object_get(ri, "commitments_root"));
    int64_t size = json_integer_value(json_object_get(inc, "size"));
    int64_t index = json_integer_value(json_object_get(inc, "index"));
    const char *why = NULL;
    if (!root_hex || strlen(root_hex) != FF_SHA256_HEX - 1 || n > 64 || size < 1 || index < 0 ||
        au_unhex(root_hex, root, sizeof root) != FF_OK || au_unhex(commit, leaf, sizeof leaf) != FF_OK)
        why = "it is malformed";
    else if (!logged || strcmp(root_hex, logged) != 0)
        why = "its root is not the round's logged commitments_root";
    else if (json_integer_value(json_object_get(inc, "aggregate_seq")) != round_seq(ri) ||
             json_integer_value(json_object_get(inc, "commitment_seq")) != seq)
        why = "it names other log entries than the round's aggregate and the site's commitment";
    else if ((size_t)size != json_array_size(json_object_get(ri, "sites")))
        why = "its tree size is not the number of aggregated sites";
    for (i = 0; !why && i < n; i++) {
        const char *h = json_string_value(json_array_get(p, i));
        if (!h || strlen(h) != FF_SHA256_HEX - 1 || au_unhex(h, path_h[i], FF_SHA256_BYTES) != FF_OK)
            why = "a path hash is malformed";
    }
    if (!why && ff_audit_merkle_verify(leaf, (size_t)index, (size_t)size,
                                       (const uint8_t(*)[FF_SHA256_BYTES])path_h, n, root) != FF_OK)
        why = "the path does not lead from the site's commitment to the root";
    if (why)
        au_add_finding(c->f, "receipt.inclusion", seq, "%s: the inclusion proof of site '%s' for round "
                    "%lld does not hold: %s", path, site, (long long)round, why);
    return why == NULL;
}

/* Client-level DP parameters the site was given (its receipt) against the log's. */
static int check_receipt_dp(vctx *c, const char *path, const char *site, int64_t round,
                            json_t *pv, json_t *ri)
{
    if (!json_is_true(json_object_get(pv, "enabled")))
        return 1;
    json_t *dp = json_object_get(ri, "dp_client");
    if (!dp) {
        au_add_finding(c->f, "receipt.privacy", round_seq(ri), "%s: site '%s' was told client-level DP "
                    "is on in round %lld, the log has no privacy entry for that round", path, site,
                    (long long)round);
        return 0;
    }
    static const char *keys[] = {"noise_multiplier", "clip_norm", "delta", "epsilon_budget"};
    int ok = 1;
    for (size_t k = 0; k < FF_ARRAY_LEN(keys); k++) {
        json_t *x = json_object_get(pv, keys[k]), *y = json_object_get(dp, keys[k]);
        if (x && (!y || differs(json_number_value(x), json_number_value(y)))) {
            char rule[48];
            snprintf(rule, sizeof rule, "receipt.privacy.%s", keys[k]);
            au_add_finding(c->f, rule, json_integer_value(json_object_get(ri, "privacy_seq")),
                        "%s: site '%s' was given %s = %.9g in round %lld, the log's privacy entry "
                        "says %.9g", path, site, keys[k], json_number_value(x), (long long)round,
                        json_number_value(y));
            ok = 0;
        }
    }
    return ok;
}

static void set_status(vctx *c, int64_t round, const char *site, const char *status)
{
    json_t *rs = json_object_get(round_info(c, round), "receipts");
    const char *old = json_string_value(json_object_get(rs, site));
    if (!old || strcmp(old, "valid") == 0 || strcmp(old, "not aggregated") == 0)
        json_object_set_new(rs, site, json_string(status));
}

/* One receipt file: signature, which (site, round) it is, and what it says against the log.
 * Returns 1 when it holds. */
static int check_receipt(vctx *c, const char *path, const char *base, json_t *seen)
{
    char *buf;
    size_t len;
    if (ff_file_read_all(path, FF_AUDIT_MAX_LINE, &buf, &len) != FF_OK) {
        au_add_finding(c->f, "receipt.format", -1, "%s", ff_error_message());
        return 0;
    }
    while (len && buf[len - 1] == '\n')
        buf[--len] = '\0';
    json_error_t jerr;
    int ok = 0;
    json_t *r = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *site = r ? json_string_value(json_object_get(r, "site")) : NULL;
    int64_t round = r ? json_integer_value(json_object_get(r, "round")) : 0;
    if (!site || round < 1) {
        au_add_finding(c->f, "receipt.format", -1, "%s: not a receipt (site, round)", path);
        goto out;
    }
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)round);
    json_t *ri = json_object_get(c->rounds, key);
    int64_t at = round_seq(ri);
    char cpath[1024];
    snprintf(cpath, sizeof cpath, "%s/%s.pem", c->o->receipt_certs ? c->o->receipt_certs : ".", site);
    X509 *cert = c->o->receipt_certs ? au_cert_from_file(cpath) : NULL;
    char why[160] = "";
    EVP_PKEY *pub = cert ? X509_get_pubkey(cert) : NULL;
    int sig = cert && c->ca && au_cert_check(c->ca, cert, why, sizeof why) == FF_OK && pub &&
              !(c->o->cert_fn && site_refused(c, cert, site, why, sizeof why)) &&
              au_open_line(pub, buf, len) == FF_OK;
    EVP_PKEY_free(pub);
    X509_free(cert);
    if (!sig) {
        au_add_finding(c->f, "receipt.signature", at, "%s: receipt of site '%s' round %lld is not signed "
                    "by a CA-certified key of that site%s%s", path, site, (long long)round,
                    why[0] ? ": " : "", why);
        goto out;
    }
    /* the client names its files <site>-round-NNNN.json: a file holding another's receipt */
    char want[200];
    snprintf(want, sizeof want, "%s-round-%04lld.json", site, (long long)round);
    const char *tail = strstr(base, "-round-");
    if (tail && strcmp(base, want) != 0) {
        au_add_finding(c->f, "receipt.substituted", at, "%s: the file of %.*s holds the receipt of site "
                    "'%s' round %lld", path, (int)(strlen(base) - 5), base, site, (long long)round);
        if (!ri || !str_in(json_object_get(ri, "sites"), site))
            goto out;
    }
    char skey[160];
    snprintf(skey, sizeof skey, "%s/%lld", site, (long long)round);
    if (json_object_get(seen, skey)) {
        au_add_finding(c->f, "receipt.substituted", at, "%s: a second receipt of site '%s' for round "
                    "%lld (the first is %s)", path, site, (long long)round,
                    json_string_value(json_object_get(seen, skey)));
        goto out;
    }
    json_object_set_new(seen, skey, json_string(path));
    if (ri && !str_in(json_object_get(ri, "sites"), site) && str_in(json_object_get(ri, "failed"), site)) {
        ok = 1; /* its attempt failed closed (quorum_fail): not aggregated, nothing to compare */
        set_status(c, round, site, "not aggregated");
        goto out;
    }
    if (!ri || !str_in(json_object_get(ri, "sites"), site)) {
        au_add_finding(c->f, "receipt.extra", at, "%s: site '%s' holds a receipt for round %lld, but "
                    "the log does not list it among the aggregated sites", path, site, (long long)round);
        if (ri)
            set_status(c, round, site, "extra");
        goto out;
    }
    ok = 1;
    json_t *cm = json_object_get(json_object_get(ri, "commitments"), site);
    int64_t cseq = cm ? json_integer_value(json_object_get(cm, "seq")) : at;
    char mine[FF_SHA256_HEX] = "";
    if (ff_audit_commitment(site, round, json_string_value(json_object_get(r, "job_sha256")),
                            json_string_value(json_object_get(r, "model_sha256")),
                            json_string_value(json_object_get(r, "update_sha256")), mine) != FF_OK)
        mine[0] = '\0';
    const char *claimed = json_string_value(json_object_get(r, "commitment"));
    const char *logged = json_string_value(json_object_get(cm, "commitment"));
    if (!claimed || strcmp(claimed, mine) != 0) {
        au_add_finding(c->f, "receipt.format", cseq, "%s: the receipt of site '%s' round %lld does not "
                    "carry the commitment of what it acknowledges", path, site, (long long)round);
        ok = 0;
    } else if (!logged || strcmp(logged, mine) != 0) {
        au_add_finding(c->f, "receipt.substituted", cseq, "%s: site '%s' acknowledges update commitment "
                    "%.12s... in round %lld, the log's commitment entry holds %.12s...", path, site,
                    mine, (long long)round, logged ? logged : "(none)");
        set_status(c, round, site, "substituted");
        ok = 0;
        goto out;
    }
    const char *m = json_string_value(json_object_get(r, "model_sha256"));
    const char *lm = json_string_value(json_object_get(ri, "model_sha256"));
    if (!m || !lm || strcmp(m, lm) != 0) {
        au_add_finding(c->f, "receipt.model", at, "%s: site '%s' received model %.12s... in round %lld, "
                    "the log says %.12s...", path, site, m ? m : "?", (long long)round, lm ? lm : "?");
        ok = 0;
    }
    json_t *rs = json_object_get(r, "secagg"), *ls = json_object_get(ri, "secagg");
    if (rs && ls && !json_equal(rs, ls)) {
        au_add_finding(c->f, "receipt.secagg", at, "%s: site '%s' applied other secure aggregation "
                    "parameters in round %lld than the log records", path, site, (long long)round);
        ok = 0;
    }
    ok &= check_receipt_dp(c, path, site, round, json_object_get(r, "privacy"), ri);
    json_t *inc = json_object_get(r, "inclusion");
    if (inc)
        ok &= check_inclusion(c, path, site, round, inc, ri, cm, mine);
    else if (ok)
        c->s->receipts_no_proof++;
    set_status(c, round, site, ok ? (inc ? "valid" : "valid (no inclusion proof)") : "invalid");
out:
    if (r && site && round >= 1)
        check_receipt_record(c, path, site, round, json_object_get(json_object_get(r, "privacy"), "record"));
    json_decref(r);
    free(buf);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_receipts(vctx *c)
{
    c->s->receipts_given = 1;
    DIR *d = opendir(c->o->receipts_dir);
    if (!d) {
        au_add_finding(c->f, "receipt.format", -1, "%s: cannot open receipts folder", c->o->receipts_dir);
        return;
    }
    char *names[4096];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < FF_ARRAY_LEN(names)) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    json_t *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", c->o->receipts_dir, names[i]);
        if (names[i]) {
            c->s->receipts_checked++;
            if (check_receipt(c, path, names[i], seen))
                c->s->receipts_valid++;
            else
                c->s->receipts_invalid++;
        }
        free(names[i]);
    }
    json_decref(seen);
    /* every aggregated site of every round must hold its receipt */
    const char *key;
    json_t *ri;
    json_object_foreach(c->rounds, key, ri)
    {
        size_t i;
        json_t *v;
        json_t *rs = json_object_get(ri, "receipts");
        json_array_foreach(json_object_get(ri, "sites"), i, v)
        {
            const char *site = json_string_value(v);
            if (!site || json_object_get(rs, site))
                continue;
            json_t *cm = json_object_get(json_object_get(ri, "commitments"), site);
            au_add_finding(c->f, "receipt.missing", cm ? json_integer_value(json_object_get(cm, "seq")) : round_seq(ri),
                        "site '%s' was aggregated in round %s, but its receipt is missing", site, key);
            json_object_set_new(rs, site, json_string("missing"));
            c->s->receipts_missing++;
        }
    }
}

static void walk_lines(vctx *c, const char *buf, size_t len)
{
    uint8_t prev[FF_SHA256_BYTES] = {0};
    size_t i = 0, start = 0;
    while (start < len) {
        const char *nl = memchr(buf + start, '\n', len - start);
        if (!nl) {
            au_add_finding(c->f, "truncated", (int64_t)i,
                        "the file ends inside entry %zu (%zu bytes without a newline): torn or "
                        "truncated", i, len - start);
            break;
        }
        size_t n = (size_t)(nl - (buf + start));
        c->ts_buf[0] = '\0';
        check_line(c, i, buf + start, n, prev);
        json_array_append_new(c->line_ts, json_string(c->ts_buf));
        ff_sha256(buf + start, n, prev);
        char hex[FF_SHA256_HEX];
        ff_hex(prev, sizeof prev, hex);
        json_array_append_new(c->lines, json_string(hex));
        c->s->entries++;
        start += n + 1;
        i++;
    }
}

int ff_audit_verify(const char *log_path, const ff_audit_verify_opts *opts,
                    ff_audit_summary *summary, ff_audit_findings *findings)
{
    memset(summary, 0, sizeof *summary);
    memset(findings, 0, sizeof *findings);
    summary->epsilon_record = summary->epsilon_client = -1;
    summary->budget_record = summary->budget_client = -1;
    summary->anchored_seq = -1;
    summary->eps_recomputed = opts->epsilon_fn != NULL;
    summary->certs_checked = opts->receipt_certs != NULL;
    X509 *ca = opts->ca_pem_path ? au_cert_from_file(opts->ca_pem_path) : NULL;
    if (opts->ca_pem_path && !ca)
        return ff_error(FF_EFORMAT, "%s: cannot read the CA certificate (PEM)", opts->ca_pem_path);
    if (ca)
        X509_NAME_oneline(X509_get_subject_name(ca), summary->ca_subject, sizeof summary->ca_subject);
    char *buf;
    size_t len;
    int rc = ff_file_read_all(log_path, (size_t)1 << 34, &buf, &len);
    if (rc != FF_OK) {
        X509_free(ca);
        return rc;
    }
    vctx c = {.o = opts, .s = summary, .f = findings, .ca = ca, .rounds = json_object(),
              .sites = json_object(), .answered = json_array(), .commits = json_object(),
              .timeline = json_array(), .job = json_object(), .lines = json_array(), .line_ts = json_array(),
              .eps_rec = 0, .eps_cli = 0};
    if (len == 0)
        au_add_finding(findings, "format", -1, "the log is empty");
    walk_lines(&c, buf, len);
    int cut = au_check_anchors(log_path, opts, c.lines, c.line_ts, summary, findings);
    if (len > 0 && !summary->ended && !cut)
        au_add_finding(findings, "incomplete", (int64_t)summary->entries,
                    "no run_end entry: the run is still going, or the log was cut short");
    if (opts->receipts_dir)
        check_receipts(&c);
    summary->sites = (int64_t)json_object_size(c.sites);
    json_t *rounds = json_array();
    const char *key;
    json_t *ri;
    json_object_foreach(c.rounds, key, ri) json_array_append(rounds, ri);
    summary->detail = json_pack("{s:o, s:o, s:o}", "rounds", rounds, "timeline", c.timeline, "job", c.job);
    EVP_PKEY_free(c.pub);
    json_decref(c.selected);
    json_decref(c.answered);
    json_decref(c.rounds);
    json_decref(c.sites);
    json_decref(c.commits);
    json_decref(c.lines);
    json_decref(c.line_ts);
    json_decref(c.prev_ledger[0]);
    json_decref(c.prev_ledger[1]);
    X509_free(ca);
    free(buf);
    return FF_OK;
}

void ff_audit_summary_free(ff_audit_summary *s)
{
    json_decref(s->detail);
    s->detail = NULL;
}

json_t *ff_audit_result_json(const ff_audit_summary *s, const ff_audit_findings *f)
{
    json_t *fs = json_array();
    for (size_t i = 0; i < f->count; i++)
        json_array_append_new(fs, json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)f->items[i].seq,
                                            "rule", f->items[i].rule, "detail", f->items[i].detail));
    json_t *sum = json_pack("{s:I, s:I, s:I, s:b, s:s, s:b, s:s}", "entries", (json_int_t)s->entries,
                            "rounds", (json_int_t)s->rounds, "sites", (json_int_t)s->sites, "ended",
                            s->ended, "coordinator", s->coordinator_subject, "ca_checked",
                            s->ca_checked, "ca", s->ca_subject);
    /* ε: the verifier's own recomputation; "not enabled" levels are null */
    json_object_set_new(sum, "epsilon_recomputed", json_boolean(s->eps_recomputed));
    json_object_set_new(sum, "epsilon_record",
                        s->epsilon_record >= 0 ? json_real(s->epsilon_record) : json_null());
    json_object_set_new(sum, "epsilon_client",
                        s->epsilon_client >= 0 ? json_real(s->epsilon_client) : json_null());
    json_object_set_new(sum, "dp", json_pack("{s:b, s:b}", "record", s->dp_record, "client", s->dp_client));
    json_object_set_new(sum, "commitments", json_pack("{s:I, s:I, s:b}", "logged", (json_int_t)s->commitments,
                                                      "verified", (json_int_t)s->commitments_verified,
                                                      "signatures_checked", s->certs_checked));
    if (s->receipts_given)
        json_object_set_new(sum, "receipts", json_pack("{s:I, s:I, s:I, s:I, s:I}", "checked",
                                                       (json_int_t)s->receipts_checked, "valid",
                                                       (json_int_t)s->receipts_valid, "missing",
                                                       (json_int_t)s->receipts_missing, "invalid",
                                                       (json_int_t)s->receipts_invalid, "without_proof",
                                                       (json_int_t)s->receipts_no_proof));
    json_object_set_new(sum, "anchors", json_pack("{s:I, s:I, s:I, s:s, s:b}", "found", (json_int_t)s->anchors,
                                                  "verified", (json_int_t)s->anchors_verified, "anchored_seq",
                                                  (json_int_t)s->anchored_seq, "time", s->anchor_time,
                                                  "authority_checked", s->tsa_checked));
    return json_pack("{s:b, s:o, s:o}", "ok", f->count == 0, "summary", sum, "findings", fs);
}

const ff_cfg_field ff_audit_policy_fields[] = {
    {.key = "min_sites", .type = FF_CFG_INT, .offset = offsetof(ff_audit_policy, min_sites),
     .min = 0, .max = 100000, .def = "0", .help = "minimum sites aggregated in every round"},
    {.key = "require_secure_aggregation", .type = FF_CFG_BOOL,
     .offset = offsetof(ff_audit_policy, require_secagg), .def = "false",
     .help = "every round must use secure aggregation"},
    {.key = "min_threshold", .type = FF_CFG_INT, .offset = offsetof(ff_audit_policy, min_threshold),
     .min = 0, .max = 100000, .def = "0", .help = "minimum secure-aggregation threshold t"},
    {.key = "max_epsilon_record", .type = FF_CFG_DOUBLE,
     .offset = offsetof(ff_audit_policy, max_epsilon_record), .min = 0, .max = 1e6, .def = "0",
     .help = "cap on cumulative record-level epsilon (0 = no cap)"},
    {.key = "max_epsilon_client", .type = FF_CFG_DOUBLE,
     .offset = offsetof(ff_audit_policy, max_epsilon_client), .min = 0, .max = 1e6, .def = "0",
     .help = "cap on cumulative client-level epsilon (0 = no cap)"},
    {0},
};

int ff_audit_policy_load(const char *path, ff_audit_policy *p)
{
    memset(p, 0, sizeof *p);
    return ff_cfg_load(path, ff_audit_policy_fields, p);
}
