/* Internal helpers of the audit library. */
#ifndef FF_AUDIT_INTERNAL_H
#define FF_AUDIT_INTERNAL_H

#include <openssl/x509.h>

#include "ff/audit.h"

#define AU_SIG_BYTES 64

int au_sign(EVP_PKEY *key, const void *msg, size_t n, uint8_t sig[AU_SIG_BYTES]);
/* 0 when the signature verifies; touches nothing. */
int au_verify(EVP_PKEY *pub, const void *msg, size_t n, const uint8_t sig[AU_SIG_BYTES]);
/* Signs body (a compact JSON object) and returns the sealed line (malloc'd, no newline). */
char *au_seal_line(EVP_PKEY *key, const char *body, size_t *len);
/* Checks the signature of a sealed line of n bytes (no newline). */
int au_open_line(EVP_PKEY *pub, const char *line, size_t n);
/* n bytes from 2n lower-case hex digits; FF_EFORMAT otherwise. */
int au_unhex(const char *s, uint8_t *out, size_t n);
/* FF_OK when a `commitment` entry's site_sig verifies with pub. */
int au_commitment_check(EVP_PKEY *pub, const json_t *entry_data);
X509 *au_cert_from_pem(const char *pem);
X509 *au_cert_from_file(const char *path);
/* FF_OK when cert chains to ca; otherwise why holds OpenSSL's reason. */
int au_cert_check(X509 *ca, X509 *cert, char *why, size_t n);

void au_add_finding(ff_audit_findings *f, const char *rule, int64_t seq, const char *fmt, ...)
    FF_PRINTF(4, 5);
/* RFC 3161 anchors beside the log (<log>.anchors/<seq>.tsr): each response must time-stamp
 * the hash of its entry (line_hashes: hex SHA-256 of every line) and, with opts->tsa_ca_path,
 * verify to that CA. Returns 1 when the log was cut after an anchored entry (a finding). */
int au_check_anchors(const char *log_path, const ff_audit_verify_opts *opts, json_t *line_hashes,
                     json_t *line_ts, ff_audit_summary *s, ff_audit_findings *f);
#endif
