/* Ed25519 signing of exact byte strings, and the line framing shared by the log and receipts:
 * a signed line is BODY with its closing brace replaced by `,"sig":"<hex>"}`. */
#include "audit_internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <string.h>

int au_sign(EVP_PKEY *key, const void *msg, size_t n, uint8_t sig[AU_SIG_BYTES])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = AU_SIG_BYTES;
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(ctx, sig, &len, msg, n) == 1 && len == AU_SIG_BYTES;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok ? FF_OK : ff_error(FF_ECRYPTO, "audit: Ed25519 signing failed (is the key Ed25519?)");
}

int au_verify(EVP_PKEY *pub, const void *msg, size_t n, const uint8_t sig[AU_SIG_BYTES])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, AU_SIG_BYTES, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok ? FF_OK : FF_ECRYPTO;
}

int au_unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + (size_t)j];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return FF_EFORMAT;
        }
        out[i] = (uint8_t)v;
    }
    return FF_OK;
}

int ff_audit_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n || au_unhex(hex, out, n) != FF_OK)
        return ff_error(FF_EFORMAT, "'%.16s...' is not %zu bytes of lower-case hex", hex ? hex : "", n);
    return FF_OK;
}

char *au_seal_line(EVP_PKEY *key, const char *body, size_t *len)
{
    size_t n = strlen(body);
    uint8_t sig[AU_SIG_BYTES];
    if (n < 2 || body[n - 1] != '}' || au_sign(key, body, n, sig) != FF_OK)
        return NULL;
    char hex[2 * AU_SIG_BYTES + 1];
    ff_hex(sig, sizeof sig, hex);
    size_t cap = n + sizeof hex + 16;
    char *line = malloc(cap);
    if (!line)
        return NULL;
    int k = snprintf(line, cap, "%.*s,\"sig\":\"%s\"}", (int)(n - 1), body, hex);
    *len = (size_t)k;
    return line;
}

int au_open_line(EVP_PKEY *pub, const char *line, size_t n)
{
    static const char tag[] = ",\"sig\":\"";
    const size_t taglen = sizeof tag - 1, hexlen = 2 * AU_SIG_BYTES;
    /* The signature is the last field: `,"sig":"<128 hex>"}` closes the line. */
    if (n < taglen + hexlen + 3 || line[n - 1] != '}' || line[n - 2] != '"' ||
        memcmp(line + n - 2 - hexlen - taglen, tag, taglen) != 0)
        return ff_error(FF_EFORMAT, "no signature field at the end of the entry");
    size_t body_len = n - 2 - hexlen - taglen;
    uint8_t sig[AU_SIG_BYTES];
    if (au_unhex(line + body_len + taglen, sig, AU_SIG_BYTES) != FF_OK)
        return ff_error(FF_EFORMAT, "signature is not lower-case hex");
    char *body = malloc(body_len + 2);
    if (!body)
        return ff_error(FF_ENOMEM, "out of memory");
    memcpy(body, line, body_len);
    body[body_len] = '}';
    int rc = au_verify(pub, body, body_len + 1, sig);
    free(body);
    return rc == FF_OK ? FF_OK : ff_error(FF_ECRYPTO, "signature does not verify");
}

int ff_audit_load_key(const char *path, EVP_PKEY **out)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return ff_error(FF_EIO, "%s: cannot open key", path);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    ERR_clear_error();
    if (!k)
        return ff_error(FF_EFORMAT, "%s: not a PEM private key", path);
    if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return ff_error(FF_EFORMAT, "%s: audit keys must be Ed25519", path);
    }
    *out = k;
    return FF_OK;
}

X509 *au_cert_from_pem(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ERR_clear_error();
    return x;
}

X509 *au_cert_from_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    ERR_clear_error();
    return x;
}

int au_cert_check(X509 *ca, X509 *cert, char *why, size_t n)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = 0;
    if (store && ctx && X509_STORE_add_cert(store, ca) == 1 &&
        X509_STORE_CTX_init(ctx, store, cert, NULL) == 1) {
        ok = X509_verify_cert(ctx) == 1;
        if (!ok)
            snprintf(why, n, "%s",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    } else {
        snprintf(why, n, "cannot set up certificate verification");
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok ? FF_OK : FF_ECRYPTO;
}
