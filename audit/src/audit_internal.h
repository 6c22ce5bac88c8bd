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
X509 *au_cert_from_pem(const char *pem);
X509 *au_cert_from_file(const char *path);
/* FF_OK when cert chains to ca; otherwise why holds OpenSSL's reason. */
int au_cert_check(X509 *ca, X509 *cert, char *why, size_t n);

#endif
