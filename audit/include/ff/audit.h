/*
 * ff/audit.h — the verifiable aggregation log and the auditor's checks.
 *
 * The coordinator appends one signed JSON line per event; each line carries a sequence
 * number, a timestamp, the SHA-256 of the previous line (a hash chain from a genesis entry)
 * and an Ed25519 signature by the coordinator's audit key, whose certificate the consortium
 * CA issued. Hospitals keep signed receipts of what they received and sent. An auditor
 * verifies the whole log without trusting the coordinator.
 *
 *     ff_audit_log *log;
 *     ff_audit_open(&log, "out/audit.jsonl", audit_key, audit_cert_pem, &torn);  // resumes
 *     json_t *d = json_pack("{s:i, s:[s,s]}", "round", 1, "selected", "site-1", "site-2");
 *     ff_audit_append(log, "round_start", d);   // fsynced before it returns
 *     ff_audit_close(log);
 *
 *     ff_audit_findings *f;
 *     ff_audit_verify("out/audit.jsonl", &opts, &summary, &f);  // FF_OK only if all holds
 *
 * Line format (no whitespace, one line per entry):
 *     {"seq":N,"ts":"...Z","prev":"<hex sha256 of the previous line>","event":"...",
 *      "data":{...},"sig":"<hex Ed25519 signature>"}
 * The signature covers the exact bytes of the line up to (not including) `,"sig":` followed
 * by `}`; the hash chain covers each whole previous line without its newline. The genesis
 * entry (seq 0) has prev = 64 zeros and carries the audit certificate in data.audit_cert.
 */
#ifndef FF_AUDIT_H
#define FF_AUDIT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>

#include "ff/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FF_AUDIT_MAX_LINE (1u << 20) /* one entry: 1 MiB at most */

/* ---------------------------------------------------------------------------------------- */
/* Writing (coordinator)                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct ff_audit_log ff_audit_log;

/* Opens path for appending. A new file starts with a genesis entry whose data is `genesis`
 * (the caller's consortium/job/policy hashes; the audit certificate PEM is added as
 * data.audit_cert). An existing file is checked: the last complete entry's signature must
 * verify with key; a torn last line (a crash mid-write) is cut off, *torn_bytes says how many
 * bytes were dropped (0 if none), and the caller should log a "restart" event saying so.
 * key is borrowed (the caller keeps ownership and must keep it alive until close). genesis
 * is borrowed. */
int ff_audit_open(ff_audit_log **out, const char *path, EVP_PKEY *key, const char *cert_pem,
                  json_t *genesis, size_t *torn_bytes) FF_WARN_UNUSED;
/* Appends one entry (event name + data object, borrowed) and fsyncs before returning. On
 * error nothing was appended (a partial write is cut back) and the message says why. */
int ff_audit_append(ff_audit_log *log, const char *event, json_t *data) FF_WARN_UNUSED;
/* Sequence number the next entry will get. */
uint64_t ff_audit_next_seq(const ff_audit_log *log);
/* The head: the last entry's sequence number and the SHA-256 of its line (-1 when empty). */
int64_t ff_audit_head(const ff_audit_log *log, uint8_t hash[32]);

/* RFC 3161 anchoring (docs/audit.md): writes a time-stamp query (DER, SHA-256 of the entry's
 * line, a nonce, certificate requested) for entry seq into <log>.anchors/<seq 8 digits>.tsq. */
int ff_audit_anchor_query(const char *log_path, int64_t seq, const uint8_t head[32]) FF_WARN_UNUSED;
/* Stores the authority's response beside the log as <log>.anchors/<seq>.tsr, after finding
 * which entry it stamps (*seq_out); an error when it stamps none. */
int ff_audit_anchor_store(const char *log_path, const char *response_path,
                          int64_t *seq_out) FF_WARN_UNUSED;
void ff_audit_close(ff_audit_log *log);

/* ---------------------------------------------------------------------------------------- */
/* Receipts (hospitals)                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* A receipt is a signed JSON object {"site","round","model_sha256","update_sha256",
 * "secagg":{...},"privacy":{...},"epsilon":{...},"sig"}: written by a client for each round
 * it takes part in, with its own site key. fields is borrowed; the signature covers the
 * compact, key-sorted serialisation of the object without "sig". */
int ff_audit_receipt_write(const char *path, json_t *fields, EVP_PKEY *site_key) FF_WARN_UNUSED;

/* Two-way binding (docs/audit.md, "Receipts bound to the log"). A site commits to its update
 * of a round: commitment = SHA-256 of the compact, key-sorted JSON {"job_sha256","kind":
 * "fedfuse-update-v1","model_sha256","round","site","update_sha256"}; it signs (Ed25519, site
 * key) the statement {"commitment","job_sha256","kind":"fedfuse-commitment-v1","model_sha256",
 * "round","site"} and sends both with the update; the coordinator logs them in a `commitment`
 * entry, and its receipt names that entry. */
#define FF_AUDIT_SIG_HEX 129
/* n bytes from exactly 2n lower-case hex digits (hashes and signatures of the log). */
int ff_audit_unhex(const char *hex, uint8_t *out, size_t n) FF_WARN_UNUSED;
int ff_audit_commitment(const char *site, int64_t round, const char *job_sha256,
                        const char *model_sha256, const char *update_sha256,
                        char commitment_hex[FF_SHA256_HEX]) FF_WARN_UNUSED;
int ff_audit_commitment_sign(EVP_PKEY *site_key, const char *site, int64_t round,
                             const char *job_sha256, const char *model_sha256,
                             const char *commitment_hex, char sig_hex[FF_AUDIT_SIG_HEX]) FF_WARN_UNUSED;

/* The per-round Merkle tree over the aggregated sites' commitments (RFC 6962 hashing with
 * domain separation: leaf SHA-256(0x00||c), node SHA-256(0x01||l||r)). path gets at most 64
 * hashes, deepest first; verify returns FF_OK when the path leads from leaf index of n to
 * root. */
int ff_audit_merkle_root(const uint8_t (*leaves)[FF_SHA256_BYTES], size_t n,
                         uint8_t root[FF_SHA256_BYTES]) FF_WARN_UNUSED;
int ff_audit_merkle_proof(const uint8_t (*leaves)[FF_SHA256_BYTES], size_t n, size_t index,
                          uint8_t (*path)[FF_SHA256_BYTES], size_t *path_len) FF_WARN_UNUSED;
int ff_audit_merkle_verify(const uint8_t leaf[FF_SHA256_BYTES], size_t index, size_t n,
                           const uint8_t (*path)[FF_SHA256_BYTES], size_t path_len,
                           const uint8_t root[FF_SHA256_BYTES]) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Verification (auditors)                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Consortium rules an auditor checks (from --policy FILE, YAML). Zero values mean "no rule". */
typedef struct {
    int64_t min_sites;          /* minimum sites aggregated per round */
    int require_secagg;         /* secure aggregation on in every round */
    int64_t min_threshold;      /* minimum secure-aggregation threshold t */
    double max_epsilon_record;  /* cap on cumulative record-level epsilon */
    double max_epsilon_client;  /* cap on cumulative client-level epsilon */
} ff_audit_policy;

extern const ff_cfg_field ff_audit_policy_fields[];
int ff_audit_policy_load(const char *path, ff_audit_policy *p) FF_WARN_UNUSED;

typedef struct {
    const char *ca_pem_path;     /* consortium CA certificate; NULL skips the chain check
                                    (reports only) */
    const char *receipts_dir;    /* folder of receipt files (*.json), or NULL */
    const char *receipt_certs;   /* folder of site certificates <site>.pem, or NULL (site
                                    commitments and receipts are then not signature-checked) */
    const char *tsa_ca_path;     /* CA of the time-stamp authority (PEM), or NULL */
    const ff_audit_policy *policy; /* or NULL */
    /* Recomputes cumulative epsilon from the parameters a privacy entry logs; NULL skips the
     * check (reported as such). Returns FF_OK and *eps. */
    int (*epsilon_fn)(const json_t *privacy_params, double *eps_record, double *eps_client);
    /* Decides whether a certificate that chains to the CA may sign what it signs: the audit
     * certificate of the genesis entry (role "audit", name audit_name) and each receipt's
     * site certificate (role "site", that site's name): role, name, revocation. Returns
     * FF_OK and says in why what it established ("role audit, not revoked in ..."), or an
     * error with the reason in why (a finding). NULL: the chain alone decides (library
     * callers; the CLI passes the transport's role and CRL check). */
    int (*cert_fn)(void *ctx, X509 *cert, const char *role, const char *name, char *why,
                   size_t why_len);
    void *cert_ctx;
    const char *audit_name;      /* expected CN of the audit certificate; NULL = "audit" */
} ff_audit_verify_opts;

typedef struct {
    char rule[48];     /* stable identifier: "chain", "signature", "seq", "policy.min_sites" ... */
    int64_t seq;       /* the entry at fault, -1 for the file as a whole */
    char detail[256];
} ff_audit_finding;

typedef struct {
    ff_audit_finding *items;
    size_t count, cap;
} ff_audit_findings;

typedef struct {
    uint64_t entries;
    int64_t rounds;            /* rounds with a signed aggregate entry */
    int64_t sites;             /* distinct sites aggregated in any round */
    /* Cumulative epsilon after the last privacy entry, as the VERIFIER recomputed it from the
     * logged mechanism parameters (never the logged value); -1 when that level is not enabled
     * or could not be recomputed (eps_recomputed says which). */
    double epsilon_record;
    double epsilon_client;
    int dp_record, dp_client;  /* the level is on in some privacy entry */
    int eps_recomputed;        /* 1: every privacy entry's epsilon was recomputed */
    double budget_record, budget_client; /* the logged plan budget (-1 none) */
    int ended;                 /* a run_end entry is present */
    int ca_checked;            /* the audit certificate was checked against the CA */
    char coordinator_subject[128];
    char ca_subject[128];
    char audit_trust[512];     /* why the audit key was trusted (or not), for the summary */
    int64_t receipts_record_dp; /* receipts whose record-level ε was recomputed from their ledger */
    /* commitments: logged; with receipt_certs, how many site signatures verified */
    int64_t commitments, commitments_verified;
    int certs_checked;
    /* receipts (receipts_dir given): files read, valid, missing, invalid (bad signature,
     * substituted, extra, contradicting the log), valid ones without an inclusion proof */
    int receipts_given;
    int64_t receipts_checked, receipts_valid, receipts_missing, receipts_invalid, receipts_no_proof;
    /* RFC 3161 anchors (responses beside the log): read and verified; the latest anchored
     * entry and its authority time */
    int64_t anchors, anchors_verified, anchored_seq;
    char anchor_time[40];
    int tsa_checked;           /* the authorities' chains were checked (tsa_ca_path) */
    /* The verifier's own view for reports (owned; ff_audit_summary_free): "rounds" (per-round
     * selection, aggregation, secagg, survivors, recomputed ε, receipt status per site),
     * "timeline" (run_start, restarts, rounds, quorum failures, run_end with their UTC
     * times), "job" (genesis and run_start hashes and settings). */
    json_t *detail;
} ff_audit_summary;

void ff_audit_summary_free(ff_audit_summary *s);

/* Checks everything: the chain, every signature, sequence continuity, that the audit
 * certificate chains to the CA, consistency of round and phase entries, the policy, epsilon
 * recomputation, receipts. Returns FF_OK when the log parsed (even with findings; *findings
 * lists every problem, each naming the entry), or an error when the log or CA could not be
 * read at all. The caller frees *findings with ff_audit_findings_free. */
int ff_audit_verify(const char *log_path, const ff_audit_verify_opts *opts,
                    ff_audit_summary *summary, ff_audit_findings *findings) FF_WARN_UNUSED;
void ff_audit_findings_free(ff_audit_findings *f);

/* The auditor's own epsilon for a `privacy` entry: its `record_ledger` and `client_ledger`
 * objects (the privacy library's ledger JSON, or null) are re-accounted from their per-round
 * parameters with the privacy library's accountant. Usable as opts.epsilon_fn. */
int ff_audit_privacy_epsilon(const json_t *privacy_entry, double *eps_record,
                             double *eps_client);

/* Machine-readable verdict: {"ok":bool,"summary":{...},"findings":[{"seq","rule","detail"}]}. */
json_t *ff_audit_result_json(const ff_audit_summary *s, const ff_audit_findings *f);

/* One self-contained HTML page for auditors: rounds table, participation matrix, epsilon over
 * rounds (inline SVG), findings. */
int ff_audit_report_html(const char *log_path, const ff_audit_summary *s,
                         const ff_audit_findings *f, const char *out_path) FF_WARN_UNUSED;

/* Export for hospital audit systems: format "fhir" writes a FHIR R4 Bundle (type collection)
 * of one AuditEvent per entry following the IHE Basic Audit Log Patterns; "csv" one row per
 * entry (seq, ts, event, round, site, outcome, data). Only hashes, names and settings. */
int ff_audit_export(const char *log_path, const char *format, const char *out_path) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Keys and certificates (PEM files)                                                          */
/* ---------------------------------------------------------------------------------------- */

/* Loads a private key (PEM). The caller owns *out (EVP_PKEY_free). */
int ff_audit_load_key(const char *path, EVP_PKEY **out) FF_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
