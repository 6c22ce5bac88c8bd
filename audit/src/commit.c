/* Two-way binding of receipts and log: the commitment a site signs for its update of a round
 * (logged by the coordinator in a `commitment` entry), and the per-round Merkle tree over the
 * aggregated sites' commitments (RFC 6962 §2.1: leaf = SHA-256(0x00 || commitment), node =
 * SHA-256(0x01 || left || right), split at the largest power of two below n). */
#include "audit_internal.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static int hash_json(json_t *o, uint8_t out[FF_SHA256_BYTES], char **text_out)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!text)
        return ff_error(FF_ENOMEM, "audit: commitment JSON");
    if (out)
        ff_sha256(text, strlen(text), out);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return FF_OK;
}

int ff_audit_commitment(const char *site, int64_t round, const char *job_sha256,
                        const char *model_sha256, const char *update_sha256,
                        char commitment_hex[FF_SHA256_HEX])
{
    uint8_t h[FF_SHA256_BYTES];
    int rc = hash_json(json_pack("{s:s, s:s?, s:s?, s:I, s:s, s:s?}", "kind", "fedfuse-update-v1",
                                 "job_sha256", job_sha256, "model_sha256", model_sha256, "round",
                                 (json_int_t)round, "site", site, "update_sha256", update_sha256),
                       h, NULL);
    if (rc == FF_OK)
        ff_hex(h, sizeof h, commitment_hex);
    return rc;
}

/* What the site signs: the commitment with the round, site, job and model it is for. */
static int statement(const char *site, int64_t round, const char *job, const char *model,
                     const char *commitment_hex, char **text)
{
    return hash_json(json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:s}", "kind", "fedfuse-commitment-v1",
                               "commitment", commitment_hex, "job_sha256", job, "model_sha256",
                               model, "round", (json_int_t)round, "site", site),
                     NULL, text);
}

int ff_audit_commitment_sign(EVP_PKEY *site_key, const char *site, int64_t round,
                             const char *job_sha256, const char *model_sha256,
                             const char *commitment_hex, char sig_hex[FF_AUDIT_SIG_HEX])
{
    char *text = NULL;
    uint8_t sig[AU_SIG_BYTES];
    int rc = statement(site, round, job_sha256, model_sha256, commitment_hex, &text);
    if (rc == FF_OK)
        rc = au_sign(site_key, text, strlen(text), sig);
    free(text);
    if (rc == FF_OK)
        ff_hex(sig, sizeof sig, sig_hex);
    return rc;
}

int au_commitment_check(EVP_PKEY *pub, const json_t *entry_data)
{
    const char *site = json_string_value(json_object_get(entry_data, "site"));
    const char *commit = json_string_value(json_object_get(entry_data, "commitment"));
    const char *sig_hex = json_string_value(json_object_get(entry_data, "site_sig"));
    json_t *r = json_object_get(entry_data, "round");
    uint8_t sig[AU_SIG_BYTES];
    if (!site || !commit || !sig_hex || !json_is_integer(r) || strlen(sig_hex) != 2 * AU_SIG_BYTES ||
        au_unhex(sig_hex, sig, sizeof sig) != FF_OK)
        return ff_error(FF_EFORMAT, "commitment entry lacks site, round, commitment or site_sig");
    char *text = NULL;
    int rc = statement(site, json_integer_value(r),
                       json_string_value(json_object_get(entry_data, "job_sha256")),
                       json_string_value(json_object_get(entry_data, "model_sha256")), commit, &text);
    if (rc == FF_OK && au_verify(pub, text, strlen(text), sig) != FF_OK)
        rc = ff_error(FF_ECRYPTO, "the site's signature does not verify");
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Merkle tree (RFC 6962)                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void leaf_hash(const uint8_t c[FF_SHA256_BYTES], uint8_t out[FF_SHA256_BYTES])
{
    uint8_t b[1 + FF_SHA256_BYTES] = {0x00};
    memcpy(b + 1, c, FF_SHA256_BYTES);
    ff_sha256(b, sizeof b, out);
}

static void node_hash(const uint8_t l[FF_SHA256_BYTES], const uint8_t r[FF_SHA256_BYTES],
                      uint8_t out[FF_SHA256_BYTES])
{
    uint8_t b[1 + 2 * FF_SHA256_BYTES] = {0x01};
    memcpy(b + 1, l, FF_SHA256_BYTES);
    memcpy(b + 1 + FF_SHA256_BYTES, r, FF_SHA256_BYTES);
    ff_sha256(b, sizeof b, out);
}

static size_t split_point(size_t n)
{
    size_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

/* MTH(D[lo:lo+n]); with want < n also the audit path of leaf `want` (appended at path[*len]),
 * deepest first. */
static void mth(const uint8_t (*leaves)[FF_SHA256_BYTES], size_t n, size_t want,
                uint8_t out[FF_SHA256_BYTES], uint8_t (*path)[FF_SHA256_BYTES], size_t *len)
{
    if (n == 1) {
        leaf_hash(leaves[0], out);
        return;
    }
    size_t k = split_point(n);
    uint8_t l[FF_SHA256_BYTES], r[FF_SHA256_BYTES];
    mth(leaves, k, want < k ? want : n, l, path, len);
    mth(leaves + k, n - k, want >= k && want < n ? want - k : n, r, path, len);
    if (want < n && path)
        memcpy(path[(*len)++], want < k ? r : l, FF_SHA256_BYTES);
    node_hash(l, r, out);
}

int ff_audit_merkle_root(const uint8_t (*leaves)[FF_SHA256_BYTES], size_t n,
                         uint8_t root[FF_SHA256_BYTES])
{
    if (n == 0)
        return ff_error(FF_EINVAL, "merkle: no leaves");
    size_t len = 0;
    mth(leaves, n, n, root, NULL, &len);
    return FF_OK;
}

int ff_audit_merkle_proof(const uint8_t (*leaves)[FF_SHA256_BYTES], size_t n, size_t index,
                          uint8_t (*path)[FF_SHA256_BYTES], size_t *path_len)
{
    if (index >= n)
        return ff_error(FF_EINVAL, "merkle: leaf %zu of %zu", index, n);
    uint8_t root[FF_SHA256_BYTES];
    *path_len = 0;
    mth(leaves, n, index, root, path, path_len);
    return FF_OK;
}

int ff_audit_merkle_verify(const uint8_t leaf[FF_SHA256_BYTES], size_t index, size_t n,
                           const uint8_t (*path)[FF_SHA256_BYTES], size_t path_len,
                           const uint8_t root[FF_SHA256_BYTES])
{
    if (index >= n)
        return FF_EINVAL;
    /* RFC 9162 §2.1.3.2: walk up from the leaf with (fn, sn) = (index, n - 1). */
    uint8_t r[FF_SHA256_BYTES];
    leaf_hash(leaf, r);
    size_t fn = index, sn = n - 1;
    for (size_t i = 0; i < path_len; i++) {
        if (sn == 0)
            return FF_ECRYPTO;
        if ((fn & 1) || fn == sn) {
            node_hash(path[i], r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && CRYPTO_memcmp(r, root, FF_SHA256_BYTES) == 0 ? FF_OK : FF_ECRYPTO;
}
