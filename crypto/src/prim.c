/* Composed primitives on OpenSSL EVP: Ed25519, X25519, HKDF-SHA256, AES-256-GCM, and the
 * AES-128-CTR PRG with the blocked mask-addition loop secure aggregation spends its time in. */
#include "ff/crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the PRG lanes and the wire format assume a little-endian machine"
#endif

/* OpenSSL's own reason, cleared from its queue, for our message. */
static const char *ossl_reason(void)
{
    static _Thread_local char buf[160];
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e)
        return "no OpenSSL detail";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

int ff_crypto_ed25519_sign(EVP_PKEY *key, const uint8_t *msg, size_t len,
                           uint8_t sig[FF_CRYPTO_SIG_BYTES])
{
    int rc = FF_ECRYPTO;
    EVP_MD_CTX *md = NULL;
    size_t siglen = FF_CRYPTO_SIG_BYTES;
    if (!key || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519)
        return ff_error(FF_EINVAL, "ed25519 sign: key is not an Ed25519 key");
    md = EVP_MD_CTX_new();
    if (!md) {
        rc = ff_error(FF_ENOMEM, "ed25519 sign: out of memory");
        goto out;
    }
    if (EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &siglen, msg, len) != 1 || siglen != FF_CRYPTO_SIG_BYTES) {
        rc = ff_error(FF_ECRYPTO, "ed25519 sign: %s", ossl_reason());
        goto out;
    }
    rc = FF_OK;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

int ff_crypto_ed25519_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len,
                             const uint8_t sig[FF_CRYPTO_SIG_BYTES])
{
    int rc = FF_ECRYPTO;
    EVP_MD_CTX *md = NULL;
    if (!pub || EVP_PKEY_get_id(pub) != EVP_PKEY_ED25519)
        return ff_error(FF_EINVAL, "ed25519 verify: key is not an Ed25519 key");
    md = EVP_MD_CTX_new();
    if (!md) {
        rc = ff_error(FF_ENOMEM, "ed25519 verify: out of memory");
        goto out;
    }
    if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub) != 1 ||
        EVP_DigestVerify(md, sig, FF_CRYPTO_SIG_BYTES, msg, len) != 1) {
        ERR_clear_error();
        rc = ff_error(FF_ECRYPTO, "ed25519 verify: signature does not verify");
        goto out;
    }
    rc = FF_OK;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

int ff_crypto_x25519_public(uint8_t pk[FF_CRYPTO_KEY_BYTES],
                            const uint8_t sk[FF_CRYPTO_KEY_BYTES])
{
    size_t len = FF_CRYPTO_KEY_BYTES;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, FF_CRYPTO_KEY_BYTES);
    if (!k)
        return ff_error(FF_ECRYPTO, "x25519: bad private key: %s", ossl_reason());
    int ok = EVP_PKEY_get_raw_public_key(k, pk, &len) == 1 && len == FF_CRYPTO_KEY_BYTES;
    EVP_PKEY_free(k);
    return ok ? FF_OK : ff_error(FF_ECRYPTO, "x25519: public key: %s", ossl_reason());
}

int ff_crypto_x25519_keygen(uint8_t sk[FF_CRYPTO_KEY_BYTES], uint8_t pk[FF_CRYPTO_KEY_BYTES])
{
    int rc = FF_ECRYPTO;
    EVP_PKEY *k = NULL;
    size_t sl = FF_CRYPTO_KEY_BYTES, pl = FF_CRYPTO_KEY_BYTES;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &k) != 1 ||
        EVP_PKEY_get_raw_private_key(k, sk, &sl) != 1 ||
        EVP_PKEY_get_raw_public_key(k, pk, &pl) != 1 || sl != FF_CRYPTO_KEY_BYTES ||
        pl != FF_CRYPTO_KEY_BYTES) {
        rc = ff_error(FF_ECRYPTO, "x25519 keygen: %s", ossl_reason());
        goto out;
    }
    rc = FF_OK;
out:
    EVP_PKEY_free(k); /* OpenSSL wipes the private key it held */
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int ff_crypto_x25519(uint8_t out[FF_CRYPTO_KEY_BYTES], const uint8_t sk[FF_CRYPTO_KEY_BYTES],
                     const uint8_t pk[FF_CRYPTO_KEY_BYTES])
{
    int rc = FF_ECRYPTO;
    uint8_t tmp[FF_CRYPTO_KEY_BYTES];
    size_t len = sizeof tmp;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *me = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, FF_CRYPTO_KEY_BYTES);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pk, FF_CRYPTO_KEY_BYTES);
    if (!me || !peer || !(ctx = EVP_PKEY_CTX_new(me, NULL))) {
        rc = ff_error(FF_ECRYPTO, "x25519: key setup: %s", ossl_reason());
        goto out;
    }
    /* OpenSSL refuses the all-zero output of low-order points (RFC 7748 section 6.1). */
    if (EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
        EVP_PKEY_derive(ctx, tmp, &len) != 1 || len != sizeof tmp) {
        ERR_clear_error();
        rc = ff_error(FF_ECRYPTO, "x25519: key agreement failed (low-order peer key?)");
        goto out;
    }
    memcpy(out, tmp, sizeof tmp);
    rc = FF_OK;
out:
    OPENSSL_cleanse(tmp, sizeof tmp);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(me);
    EVP_PKEY_free(peer);
    return rc;
}

int ff_crypto_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                          const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                          size_t info_len)
{
    static const uint8_t empty[1] = {0};
    int rc = FF_ECRYPTO;
    if (out_len == 0 || out_len > 255 * 32)
        return ff_error(FF_EINVAL, "hkdf: output length %zu not in 1..8160", out_len);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM ps[5], *p = ps;
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                             (void *)(ikm_len ? ikm : empty), ikm_len);
    if (salt_len)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    if (info_len)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    *p = OSSL_PARAM_construct_end();
    if (!ctx || EVP_KDF_derive(ctx, out, out_len, ps) != 1) {
        rc = ff_error(FF_ECRYPTO, "hkdf: %s", ossl_reason());
        goto out;
    }
    rc = FF_OK;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

static int aead_ctx(EVP_CIPHER_CTX **out, int enc, const uint8_t *key, const uint8_t *nonce,
                    const uint8_t *aad, size_t aad_len)
{
    int len;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return ff_error(FF_ENOMEM, "aead: out of memory");
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, FF_CRYPTO_NONCE_BYTES, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1 ||
        (aad_len && EVP_CipherUpdate(c, NULL, &len, aad, (int)aad_len) != 1)) {
        EVP_CIPHER_CTX_free(c);
        return ff_error(FF_ECRYPTO, "aead: setup: %s", ossl_reason());
    }
    *out = c;
    return FF_OK;
}

int ff_crypto_aead_seal(uint8_t *out, const uint8_t key[FF_CRYPTO_KEY_BYTES],
                        const uint8_t nonce[FF_CRYPTO_NONCE_BYTES], const uint8_t *aad,
                        size_t aad_len, const uint8_t *pt, size_t len)
{
    EVP_CIPHER_CTX *c = NULL;
    int l1 = 0, l2 = 0;
    if (len > (1u << 30) || aad_len > (1u << 30))
        return ff_error(FF_EINVAL, "aead seal: input of %zu bytes too long", len);
    int rc = aead_ctx(&c, 1, key, nonce, aad, aad_len);
    if (rc)
        return rc;
    if ((len && EVP_CipherUpdate(c, out, &l1, pt, (int)len) != 1) ||
        EVP_CipherFinal_ex(c, out + l1, &l2) != 1 || (size_t)(l1 + l2) != len ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, FF_CRYPTO_TAG_BYTES, out + len) != 1)
        rc = ff_error(FF_ECRYPTO, "aead seal: %s", ossl_reason());
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int ff_crypto_aead_open(uint8_t *out, const uint8_t key[FF_CRYPTO_KEY_BYTES],
                        const uint8_t nonce[FF_CRYPTO_NONCE_BYTES], const uint8_t *aad,
                        size_t aad_len, const uint8_t *ct, size_t ct_len)
{
    EVP_CIPHER_CTX *c = NULL;
    uint8_t *tmp = NULL;
    int l1 = 0, l2 = 0;
    if (ct_len < FF_CRYPTO_TAG_BYTES || ct_len > (1u << 30) || aad_len > (1u << 30))
        return ff_error(FF_ECRYPTO, "aead open: ciphertext length %zu invalid", ct_len);
    size_t len = ct_len - FF_CRYPTO_TAG_BYTES;
    /* Decrypt into scratch so out is untouched unless the tag verifies. */
    tmp = malloc(len ? len : 1);
    if (!tmp)
        return ff_error(FF_ENOMEM, "aead open: out of memory");
    int rc = aead_ctx(&c, 0, key, nonce, aad, aad_len);
    if (rc)
        goto out;
    if ((len && EVP_CipherUpdate(c, tmp, &l1, ct, (int)len) != 1) ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, FF_CRYPTO_TAG_BYTES,
                            (void *)(ct + len)) != 1 ||
        EVP_CipherFinal_ex(c, tmp + l1, &l2) != 1) {
        ERR_clear_error();
        rc = ff_error(FF_ECRYPTO, "aead open: authentication failed (tampered or wrong key)");
        goto out;
    }
    memcpy(out, tmp, len);
out:
    OPENSSL_cleanse(tmp, len);
    free(tmp);
    EVP_CIPHER_CTX_free(c);
    return rc;
}

static int prg_ctx(EVP_CIPHER_CTX **out, const uint8_t seed[FF_CRYPTO_KEY_BYTES])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return ff_error(FF_ENOMEM, "prg: out of memory");
    if (EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, seed, seed + 16) != 1) {
        EVP_CIPHER_CTX_free(c);
        return ff_error(FF_ECRYPTO, "prg: setup: %s", ossl_reason());
    }
    *out = c;
    return FF_OK;
}

/* Keystream = encryption of zeros; one static block of zeros serves as the plaintext. */
#define PRG_BLOCK 16384
static const uint8_t zeros[PRG_BLOCK];

static int prg_next(EVP_CIPHER_CTX *c, uint8_t *out, size_t n)
{
    while (n) {
        int chunk = (int)FF_MIN(n, (size_t)PRG_BLOCK), got = 0;
        if (EVP_EncryptUpdate(c, out, &got, zeros, chunk) != 1 || got != chunk)
            return ff_error(FF_ECRYPTO, "prg: %s", ossl_reason());
        out += chunk;
        n -= (size_t)chunk;
    }
    return FF_OK;
}

int ff_crypto_prg_expand(const uint8_t seed[FF_CRYPTO_KEY_BYTES], uint8_t *out, size_t n)
{
    EVP_CIPHER_CTX *c = NULL;
    int rc = prg_ctx(&c, seed);
    if (rc)
        return rc;
    rc = prg_next(c, out, n);
    EVP_CIPHER_CTX_free(c);
    return rc;
}

/* The hot loop: plain uint32 lanes so the compiler vectorises it. */
static void lanes_add(uint32_t *restrict acc, const uint32_t *restrict ks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += ks[i];
}

static void lanes_sub(uint32_t *restrict acc, const uint32_t *restrict ks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] -= ks[i];
}

int ff_crypto_mask_apply(uint32_t *acc, size_t m, const uint8_t (*seeds)[FF_CRYPTO_KEY_BYTES],
                         const int8_t *signs, size_t n_seeds)
{
    int rc = FF_OK;
    EVP_CIPHER_CTX **ctx = NULL;
    uint32_t *ks = NULL;
    size_t nbytes;
    if (n_seeds == 0 || m == 0)
        return FF_OK;
    if (ff_size_mul(m, 4, &nbytes))
        return ff_error(FF_ENOMEM, "mask: %zu lanes overflow", m);
    ctx = calloc(n_seeds, sizeof *ctx);
    ks = ff_alloc(PRG_BLOCK);
    if (!ctx || !ks) {
        rc = ff_error(FF_ENOMEM, "mask: out of memory");
        goto out;
    }
    for (size_t s = 0; s < n_seeds; s++)
        if ((rc = prg_ctx(&ctx[s], seeds[s])))
            goto out;
    /* One pass over acc: each block stays in L1 while every seed's keystream is added. */
    for (size_t off = 0; off < m; off += PRG_BLOCK / 4) {
        size_t lanes = FF_MIN(m - off, (size_t)PRG_BLOCK / 4);
        for (size_t s = 0; s < n_seeds; s++) {
            if ((rc = prg_next(ctx[s], (uint8_t *)ks, lanes * 4)))
                goto out;
            if (signs[s] > 0)
                lanes_add(acc + off, ks, lanes);
            else
                lanes_sub(acc + off, ks, lanes);
        }
    }
out:
    if (ctx)
        for (size_t s = 0; s < n_seeds; s++)
            EVP_CIPHER_CTX_free(ctx[s]);
    free(ctx);
    if (ks)
        OPENSSL_cleanse(ks, PRG_BLOCK);
    ff_free(ks);
    return rc;
}
