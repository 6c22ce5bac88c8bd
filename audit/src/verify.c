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
} vctx;

static void add_finding(ff_audit_findings *f, const char *rule, int64_t seq, const char *fmt, ...)
    FF_PRINTF(4, 5);

static void add_finding(ff_audit_findings *f, const char *rule, int64_t seq, const char *fmt, ...)
{
    if (f->count == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        ff_audit_finding *items = realloc(f->items, cap * sizeof *items);
        if (!items)
            return; /* out of memory: the verdict is still "not ok" via earlier findings */
        f->items = items;
        f->cap = cap;
    }
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
        ri = json_object();
        json_object_set_new(c->rounds, key, ri);
    }
    return ri;
}

static void check_genesis(vctx *c, int64_t seq, json_t *data)
{
    const char *pem = json_string_value(json_object_get(data, "audit_cert"));
    X509 *cert = pem ? au_cert_from_pem(pem) : NULL;
    if (!cert) {
        add_finding(c->f, "certificate", seq, "genesis entry has no readable audit_cert");
        return;
    }
    char why[160];
    if (c->ca && au_cert_check(c->ca, cert, why, sizeof why) != FF_OK)
        add_finding(c->f, "certificate", seq, "audit certificate does not chain to the CA: %s", why);
    X509_NAME_oneline(X509_get_subject_name(cert), c->s->coordinator_subject,
                      sizeof c->s->coordinator_subject);
    c->pub = X509_get_pubkey(cert);
    X509_free(cert);
}

static void check_round_start(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = json_integer_value(json_object_get(d, "round"));
    json_t *sel = json_object_get(d, "selected");
    if (r != c->round + 1 && r != c->round)
        add_finding(c->f, "consistency.round_order", seq, "round %lld starts after round %lld",
                    (long long)r, (long long)c->round);
    if (!json_is_array(sel))
        add_finding(c->f, "format", seq, "round_start without a 'selected' list");
    c->round = r;
    json_decref(c->selected);
    c->selected = json_incref(sel);
    json_array_clear(c->answered);
}

static int64_t entry_round(vctx *c, int64_t seq, json_t *d, const char *event)
{
    int64_t r = json_integer_value(json_object_get(d, "round"));
    if (r != c->round)
        add_finding(c->f, "consistency.round", seq, "%s entry for round %lld inside round %lld",
                    event, (long long)r, (long long)c->round);
    return r;
}

static void check_phase(vctx *c, int64_t seq, json_t *d)
{
    entry_round(c, seq, d, "phase");
    const char *bad = first_not_in(json_object_get(d, "participants"), c->selected);
    const char *phase = json_string_value(json_object_get(d, "phase"));
    if (bad)
        add_finding(c->f, "consistency.participants", seq,
                    "site '%s' took part in phase '%s' but was not selected", bad,
                    phase ? phase : "?");
    json_t *part = json_object_get(d, "participants");
    if (json_is_array(part))
        json_array_extend(c->answered, part);
}

/* A site that said no to its task (policy, budget) must have been selected for it. */
static void check_decline(vctx *c, int64_t seq, json_t *d)
{
    entry_round(c, seq, d, "decline");
    const char *site = json_string_value(json_object_get(d, "site"));
    if (!site || !c->selected || !str_in(c->selected, site))
        add_finding(c->f, "consistency.decline", seq,
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
}

static void check_secagg(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "secagg");
    int64_t n = json_integer_value(json_object_get(d, "n"));
    int64_t t = json_integer_value(json_object_get(d, "t"));
    int64_t k = json_integer_value(json_object_get(d, "k"));
    if (t < 1 || t > n || k < 1 || k > n - 1)
        add_finding(c->f, "consistency.secagg", seq, "impossible parameters n=%lld t=%lld k=%lld",
                    (long long)n, (long long)t, (long long)k);
    const ff_audit_policy *p = c->o->policy;
    if (p && p->min_threshold > 0 && t < p->min_threshold)
        add_finding(c->f, "policy.threshold", seq, "round %lld: threshold t=%lld below the policy's %lld",
                    (long long)r, (long long)t, (long long)p->min_threshold);
    json_object_set(round_info(c, r), "secagg", d);
}

static void check_aggregate(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "aggregate");
    json_t *sites = json_object_get(d, "sites");
    const char *bad = first_not_in(sites, c->selected);
    if (bad)
        add_finding(c->f, "consistency.participants", seq,
                    "site '%s' aggregated in round %lld but was not selected", bad, (long long)r);
    const char *sent = json_string_value(json_object_get(d, "model_sha256"));
    const char *next = json_string_value(json_object_get(d, "new_model_sha256"));
    if (!sent || !next)
        add_finding(c->f, "format", seq, "aggregate entry lacks model hashes");
    else if (c->last_model[0] && strcmp(sent, c->last_model) != 0)
        add_finding(c->f, "consistency.model_chain", seq,
                    "round %lld sent model %.12s..., but the previous round produced %.12s...",
                    (long long)r, sent, c->last_model);
    if (next)
        ff_strlcpy(c->last_model, next, sizeof c->last_model);
    const ff_audit_policy *p = c->o->policy;
    size_t n = json_array_size(sites);
    if (p && p->min_sites > 0 && (int64_t)n < p->min_sites)
        add_finding(c->f, "policy.min_sites", seq, "round %lld aggregated %zu sites, policy minimum is %lld",
                    (long long)r, n, (long long)p->min_sites);
    if (p && p->require_secagg && !json_is_true(json_object_get(d, "secure_aggregation")))
        add_finding(c->f, "policy.secure_aggregation", seq,
                    "round %lld was aggregated without secure aggregation", (long long)r);
    size_t i;
    json_t *v;
    json_array_foreach(sites, i, v)
    {
        if (json_is_string(v))
            json_object_set_new(c->sites, json_string_value(v), json_true());
    }
    json_t *ri = round_info(c, r);
    json_object_set(ri, "sites", sites);
    json_object_set(ri, "model_sha256", json_object_get(d, "model_sha256"));
    c->s->rounds++;
}

static void check_privacy(vctx *c, int64_t seq, json_t *d)
{
    int64_t r = entry_round(c, seq, d, "privacy");
    double er = json_number_value(json_object_get(d, "epsilon_record"));
    double ec = json_number_value(json_object_get(d, "epsilon_client"));
    if (er + 1e-12 < c->eps_rec || ec + 1e-12 < c->eps_cli)
        add_finding(c->f, "consistency.epsilon", seq, "round %lld: cumulative epsilon decreased", (long long)r);
    c->eps_rec = er;
    c->eps_cli = ec;
    c->s->epsilon_record = er;
    c->s->epsilon_client = ec;
    const ff_audit_policy *p = c->o->policy;
    if (p && p->max_epsilon_record > 0 && er > p->max_epsilon_record)
        add_finding(c->f, "policy.max_epsilon_record", seq,
                    "round %lld: record-level epsilon %.6g exceeds the cap %.6g", (long long)r, er,
                    p->max_epsilon_record);
    if (p && p->max_epsilon_client > 0 && ec > p->max_epsilon_client)
        add_finding(c->f, "policy.max_epsilon_client", seq,
                    "round %lld: client-level epsilon %.6g exceeds the cap %.6g", (long long)r, ec,
                    p->max_epsilon_client);
    if (c->o->epsilon_fn) {
        double rr = 0, rc = 0;
        if (c->o->epsilon_fn(d, &rr, &rc) != FF_OK)
            add_finding(c->f, "privacy.epsilon", seq, "cannot recompute epsilon: %s", ff_error_message());
        else if (fabs(rr - er) > 1e-6 * fmax(1, fabs(rr)) || fabs(rc - ec) > 1e-6 * fmax(1, fabs(rc)))
            add_finding(c->f, "privacy.epsilon", seq,
                        "round %lld: logged epsilon (record %.9g, client %.9g) differs from the "
                        "recomputed (record %.9g, client %.9g)",
                        (long long)r, er, ec, rr, rc);
    }
}

static void check_event(vctx *c, int64_t seq, const char *event, json_t *d)
{
    if (strcmp(event, "genesis") == 0) {
        if (seq != 0)
            add_finding(c->f, "consistency.genesis", seq, "a second genesis entry");
    } else if (strcmp(event, "round_start") == 0) {
        check_round_start(c, seq, d);
    } else if (strcmp(event, "phase") == 0) {
        check_phase(c, seq, d);
    } else if (strcmp(event, "secagg") == 0) {
        check_secagg(c, seq, d);
    } else if (strcmp(event, "aggregate") == 0) {
        check_aggregate(c, seq, d);
    } else if (strcmp(event, "privacy") == 0) {
        check_privacy(c, seq, d);
    } else if (strcmp(event, "quorum_fail") == 0) {
        check_quorum_fail(c, seq, d);
    } else if (strcmp(event, "decline") == 0) {
        check_decline(c, seq, d);
    } else if (strcmp(event, "run_end") == 0) {
        c->s->ended = 1;
    }
    /* run_start, checkpoint, refusal, restart, stage: recorded, no cross-entry rule. */
}

/* Checks one line (no newline) at position i. prev is the previous line's hash. */
static void check_line(vctx *c, size_t i, const char *line, size_t n, const uint8_t prev[32])
{
    int64_t seq = (int64_t)i;
    json_error_t jerr;
    json_t *e = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!e || !json_is_object(e)) {
        add_finding(c->f, "format", seq, "line %zu is not a JSON object: %s", i + 1, e ? "" : jerr.text);
        json_decref(e);
        return;
    }
    json_t *jseq = json_object_get(e, "seq");
    const char *phex = json_string_value(json_object_get(e, "prev"));
    const char *event = json_string_value(json_object_get(e, "event"));
    json_t *data = json_object_get(e, "data");
    if (!json_is_integer(jseq) || !phex || !event || !json_is_object(data)) {
        add_finding(c->f, "format", seq, "line %zu lacks seq, prev, event or data", i + 1);
        json_decref(e);
        return;
    }
    if (json_integer_value(jseq) != seq)
        add_finding(c->f, "seq", seq, "line %zu has seq %lld, expected %lld (an entry was deleted, "
                    "inserted or moved)", i + 1, (long long)json_integer_value(jseq), (long long)seq);
    char want[FF_SHA256_HEX];
    ff_hex(prev, FF_SHA256_BYTES, want);
    if (strcmp(phex, want) != 0)
        add_finding(c->f, "chain", seq, "prev hash does not match the preceding entry");
    if (i == 0)
        check_genesis(c, seq, data);
    if (!c->pub || au_open_line(c->pub, line, n) != FF_OK)
        add_finding(c->f, "signature", seq, "entry '%s' is not signed by the audit key", event);
    check_event(c, seq, event, data);
    json_decref(e);
}

/* A receipt's record-level DP-SGD (privacy.record): the site's ledger up to this round is
 * replayed with the accountant; the ε it claims must be what the ledger gives, within its
 * budget, and the ledger's last round this one. */
static void check_receipt_record(vctx *c, const char *path, const char *site, int64_t round,
                                 json_t *rec)
{
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
        add_finding(c->f, "receipt.privacy", -1, "%s: site '%s' round %lld: the record-level "
                    "ledger does not replay: %s", path, site, (long long)round,
                    rc == FF_EFORMAT && !last ? "no rounds" : ff_error_message());
    else if (json_integer_value(json_object_get(last, "round")) != round)
        add_finding(c->f, "receipt.privacy", -1, "%s: site '%s' round %lld: the record-level "
                    "ledger ends at round %lld", path, site, (long long)round,
                    (long long)json_integer_value(json_object_get(last, "round")));
    else if (!(fabs(eps - claim) <= 1e-9 * fmax(1.0, eps)))
        add_finding(c->f, "receipt.privacy.epsilon", -1, "%s: site '%s' round %lld claims "
                    "record-level epsilon %.10g, its ledger recomputes to %.10g", path, site,
                    (long long)round, claim, eps);
    else if (eps > budget)
        add_finding(c->f, "receipt.privacy.budget", -1, "%s: site '%s' round %lld: record-level "
                    "epsilon %.10g is past its budget %g", path, site, (long long)round, eps,
                    budget);
    else
        c->s->receipts_record_dp++;
}

static void check_receipt(vctx *c, const char *path)
{
    char *buf;
    size_t len;
    if (ff_file_read_all(path, FF_AUDIT_MAX_LINE, &buf, &len) != FF_OK) {
        add_finding(c->f, "receipt.format", -1, "%s", ff_error_message());
        return;
    }
    while (len && buf[len - 1] == '\n')
        buf[--len] = '\0';
    json_error_t jerr;
    json_t *r = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *site = r ? json_string_value(json_object_get(r, "site")) : NULL;
    int64_t round = r ? json_integer_value(json_object_get(r, "round")) : 0;
    if (!site || round < 1) {
        add_finding(c->f, "receipt.format", -1, "%s: not a receipt (site, round)", path);
        goto out;
    }
    char cpath[1024];
    snprintf(cpath, sizeof cpath, "%s/%s.pem", c->o->receipt_certs ? c->o->receipt_certs : ".", site);
    X509 *cert = au_cert_from_file(cpath);
    char why[160] = "";
    EVP_PKEY *pub = cert ? X509_get_pubkey(cert) : NULL;
    if (!cert || !c->ca || au_cert_check(c->ca, cert, why, sizeof why) != FF_OK || !pub ||
        au_open_line(pub, buf, len) != FF_OK)
        add_finding(c->f, "receipt.signature", -1, "%s: receipt of site '%s' round %lld is not signed "
                    "by a CA-certified key of that site%s%s", path, site, (long long)round,
                    why[0] ? ": " : "", why);
    EVP_PKEY_free(pub);
    X509_free(cert);
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)round);
    json_t *ri = json_object_get(c->rounds, key);
    if (ri && !str_in(json_object_get(ri, "sites"), site) && str_in(json_object_get(ri, "failed"), site))
        goto out; /* its attempt failed closed (quorum_fail): not aggregated, nothing to compare */
    if (!ri || !str_in(json_object_get(ri, "sites"), site))
        add_finding(c->f, "receipt.participation", -1,
                    "%s: site '%s' holds a receipt for round %lld, but the log does not list it "
                    "among the aggregated sites", path, site, (long long)round);
    else {
        const char *m = json_string_value(json_object_get(r, "model_sha256"));
        const char *lm = json_string_value(json_object_get(ri, "model_sha256"));
        if (!m || !lm || strcmp(m, lm) != 0)
            add_finding(c->f, "receipt.model", -1, "%s: site '%s' received model %.12s... in round %lld, "
                        "the log says %.12s...", path, site, m ? m : "?", (long long)round, lm ? lm : "?");
        json_t *rs = json_object_get(r, "secagg"), *ls = json_object_get(ri, "secagg");
        if (rs && ls && !json_equal(rs, ls))
            add_finding(c->f, "receipt.secagg", -1, "%s: site '%s' applied other secure aggregation "
                        "parameters in round %lld than the log records", path, site, (long long)round);
    }
    check_receipt_record(c, path, site, round, json_object_get(json_object_get(r, "privacy"), "record"));
out:
    json_decref(r);
    free(buf);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_receipts(vctx *c)
{
    DIR *d = opendir(c->o->receipts_dir);
    if (!d) {
        add_finding(c->f, "receipt.format", -1, "%s: cannot open receipts folder", c->o->receipts_dir);
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
    for (size_t i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", c->o->receipts_dir, names[i]);
        if (names[i])
            check_receipt(c, path);
        free(names[i]);
    }
}

static void walk_lines(vctx *c, const char *buf, size_t len)
{
    uint8_t prev[FF_SHA256_BYTES] = {0};
    size_t i = 0, start = 0;
    while (start < len) {
        const char *nl = memchr(buf + start, '\n', len - start);
        if (!nl) {
            add_finding(c->f, "truncated", (int64_t)i,
                        "the file ends inside entry %zu (%zu bytes without a newline): torn or "
                        "truncated", i, len - start);
            break;
        }
        size_t n = (size_t)(nl - (buf + start));
        check_line(c, i, buf + start, n, prev);
        ff_sha256(buf + start, n, prev);
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
    X509 *ca = opts->ca_pem_path ? au_cert_from_file(opts->ca_pem_path) : NULL;
    if (opts->ca_pem_path && !ca)
        return ff_error(FF_EFORMAT, "%s: cannot read the CA certificate (PEM)", opts->ca_pem_path);
    char *buf;
    size_t len;
    int rc = ff_file_read_all(log_path, (size_t)1 << 34, &buf, &len);
    if (rc != FF_OK) {
        X509_free(ca);
        return rc;
    }
    vctx c = {.o = opts, .s = summary, .f = findings, .ca = ca, .rounds = json_object(),
              .sites = json_object(), .answered = json_array()};
    if (len == 0)
        add_finding(findings, "format", -1, "the log is empty");
    walk_lines(&c, buf, len);
    if (len > 0 && !summary->ended)
        add_finding(findings, "incomplete", (int64_t)summary->entries,
                    "no run_end entry: the run is still going, or the log was cut short");
    if (opts->receipts_dir)
        check_receipts(&c);
    if (!opts->epsilon_fn && summary->epsilon_record >= 0)
        ff_log(FF_LOG_WARN, "audit: epsilon values were not recomputed (no accountant linked)");
    summary->sites = (int64_t)json_object_size(c.sites);
    EVP_PKEY_free(c.pub);
    json_decref(c.selected);
    json_decref(c.answered);
    json_decref(c.rounds);
    json_decref(c.sites);
    X509_free(ca);
    free(buf);
    return FF_OK;
}

json_t *ff_audit_result_json(const ff_audit_summary *s, const ff_audit_findings *f)
{
    json_t *fs = json_array();
    for (size_t i = 0; i < f->count; i++)
        json_array_append_new(fs, json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)f->items[i].seq,
                                            "rule", f->items[i].rule, "detail", f->items[i].detail));
    json_t *sum = json_pack("{s:I, s:I, s:I, s:b, s:s}", "entries", (json_int_t)s->entries, "rounds",
                            (json_int_t)s->rounds, "sites", (json_int_t)s->sites, "ended", s->ended,
                            "coordinator", s->coordinator_subject);
    json_object_set_new(sum, "epsilon_record",
                        s->epsilon_record >= 0 ? json_real(s->epsilon_record) : json_null());
    json_object_set_new(sum, "epsilon_client",
                        s->epsilon_client >= 0 ? json_real(s->epsilon_client) : json_null());
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
