/* Known-answer tests of the composed primitives against published vectors: RFC 5869
 * (HKDF-SHA256), RFC 7748 (X25519), RFC 8032 (Ed25519), McGrew-Viega GCM test cases 14 and
 * 16 (AES-256-GCM), NIST SP 800-38A F.5.1 (AES-128-CTR, our PRG); and Shamir sharing at its
 * boundaries against a direct polynomial evaluation. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "ff/crypto.h"

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], want[42], got[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    /* Test case 1 */
    unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
          want);
    assert_int_equal(ff_crypto_hkdf_sha256(got, 42, salt, 13, ikm, 22, info, 10), FF_OK);
    assert_memory_equal(got, want, 42);
    /* Test case 3: empty salt and info */
    unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
          want);
    assert_int_equal(ff_crypto_hkdf_sha256(got, 42, NULL, 0, ikm, 22, NULL, 0), FF_OK);
    assert_memory_equal(got, want, 42);
    assert_int_equal(ff_crypto_hkdf_sha256(got, 0, NULL, 0, ikm, 22, NULL, 0), FF_EINVAL);
}

static void test_x25519_rfc7748(void **state)
{
    (void)state;
    uint8_t a[32], b[32], apk[32], bpk[32], want[32], got[32], u[32];
    /* Section 5.2, first vector */
    unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", a);
    unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", u);
    unhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552", want);
    assert_int_equal(ff_crypto_x25519(got, a, u), FF_OK);
    assert_memory_equal(got, want, 32);
    /* Section 6.1 */
    unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a);
    unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b);
    assert_int_equal(ff_crypto_x25519_public(apk, a), FF_OK);
    assert_int_equal(ff_crypto_x25519_public(bpk, b), FF_OK);
    unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want);
    assert_memory_equal(apk, want, 32);
    unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", want);
    assert_memory_equal(bpk, want, 32);
    unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want);
    assert_int_equal(ff_crypto_x25519(got, a, bpk), FF_OK);
    assert_memory_equal(got, want, 32);
    assert_int_equal(ff_crypto_x25519(got, b, apk), FF_OK);
    assert_memory_equal(got, want, 32);
    /* A low-order point (zero) gives the all-zero secret: refused, output untouched. */
    memset(u, 0, 32);
    memset(got, 0xAA, 32);
    assert_int_equal(ff_crypto_x25519(got, a, u), FF_ECRYPTO);
    for (int i = 0; i < 32; i++)
        assert_int_equal(got[i], 0xAA);
    /* Fresh pairs agree. */
    uint8_t s1[32], p1[32], s2[32], p2[32], k1[32], k2[32];
    assert_int_equal(ff_crypto_x25519_keygen(s1, p1), FF_OK);
    assert_int_equal(ff_crypto_x25519_keygen(s2, p2), FF_OK);
    assert_int_equal(ff_crypto_x25519(k1, s1, p2), FF_OK);
    assert_int_equal(ff_crypto_x25519(k2, s2, p1), FF_OK);
    assert_memory_equal(k1, k2, 32);
}

static void test_ed25519_rfc8032(void **state)
{
    (void)state;
    static const struct {
        const char *sk, *pk, *msg, *sig;
    } v[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
         "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f"
         "3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(v); i++) {
        uint8_t sk[32], pk[32], msg[4], want[64], sig[64];
        unhex(v[i].sk, sk);
        unhex(v[i].pk, pk);
        size_t ml = unhex(v[i].msg, msg);
        unhex(v[i].sig, want);
        EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
        EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
        assert_non_null(key);
        assert_non_null(pub);
        assert_int_equal(ff_crypto_ed25519_sign(key, msg, ml, sig), FF_OK);
        assert_memory_equal(sig, want, 64);
        assert_int_equal(ff_crypto_ed25519_verify(pub, msg, ml, sig), FF_OK);
        sig[5] ^= 1;
        assert_int_equal(ff_crypto_ed25519_verify(pub, msg, ml, sig), FF_ECRYPTO);
        ft_assert_error_has("does not verify");
        EVP_PKEY_free(key);
        EVP_PKEY_free(pub);
    }
}

static void test_aes_gcm_vectors(void **state)
{
    (void)state;
    uint8_t key[32], iv[12], pt[64], aad[20], want[80], ct[80], back[64];
    /* McGrew-Viega test case 16 (AES-256, 60-byte plaintext, 20-byte AAD) */
    unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key);
    unhex("cafebabefacedbaddecaf888", iv);
    size_t n = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95"
                     "956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", pt);
    unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad);
    unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b0"
          "8b1056828838c5f61e6393ba7a0abcc9f662" "76fc6ece0f4e1768cddf8853bb2d551b", want);
    assert_int_equal(ff_crypto_aead_seal(ct, key, iv, aad, 20, pt, n), FF_OK);
    assert_memory_equal(ct, want, n + 16);
    assert_int_equal(ff_crypto_aead_open(back, key, iv, aad, 20, ct, n + 16), FF_OK);
    assert_memory_equal(back, pt, n);
    /* Tampered ciphertext, tag or AAD: refused, output untouched. */
    memset(back, 0x55, sizeof back);
    for (size_t at = 0; at < n + 16; at += 7) {
        ct[at] ^= 0x80;
        assert_int_equal(ff_crypto_aead_open(back, key, iv, aad, 20, ct, n + 16), FF_ECRYPTO);
        ct[at] ^= 0x80;
    }
    aad[0] ^= 1;
    assert_int_equal(ff_crypto_aead_open(back, key, iv, aad, 20, ct, n + 16), FF_ECRYPTO);
    for (size_t i = 0; i < sizeof back; i++)
        assert_int_equal(back[i], 0x55);
    assert_int_equal(ff_crypto_aead_open(back, key, iv, NULL, 0, ct, 15), FF_ECRYPTO);
    /* Test case 14: zero key and IV, one zero block, no AAD */
    memset(key, 0, 32);
    memset(iv, 0, 12);
    memset(pt, 0, 16);
    unhex("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919", want);
    assert_int_equal(ff_crypto_aead_seal(ct, key, iv, NULL, 0, pt, 16), FF_OK);
    assert_memory_equal(ct, want, 32);
}

static void test_prg_sp800_38a(void **state)
{
    (void)state;
    uint8_t seed[32], pt[64], want[64], ks[64];
    unhex("2b7e151628aed2a6abf7158809cf4f3c" "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", seed);
    unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
          "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710", pt);
    unhex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
          "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee", want);
    assert_int_equal(ff_crypto_prg_expand(seed, ks, 64), FF_OK);
    for (int i = 0; i < 64; i++)
        assert_int_equal(ks[i] ^ pt[i], want[i]);
}

/* mask_apply (blocked, many seeds) against expand + scalar add, across block edges. */
static void test_mask_apply_matches_expand(void **state)
{
    (void)state;
    const size_t m = 3 * 4096 + 17;
    uint8_t seeds[3][32];
    int8_t signs[3] = {1, -1, 1};
    uint32_t *acc = malloc(m * 4), *ref = malloc(m * 4), *ks = malloc(m * 4);
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 32; i++)
            seeds[s][i] = (uint8_t)(s * 31 + i * 7);
    for (size_t i = 0; i < m; i++)
        acc[i] = ref[i] = (uint32_t)(i * 2654435761u);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(ff_crypto_prg_expand(seeds[s], (uint8_t *)ks, m * 4), FF_OK);
        for (size_t i = 0; i < m; i++)
            ref[i] += signs[s] > 0 ? ks[i] : (uint32_t)-ks[i];
    }
    assert_int_equal(ff_crypto_mask_apply(acc, m, (const uint8_t(*)[32])seeds, signs, 3), FF_OK);
    assert_memory_equal(acc, ref, m * 4);
    free(acc);
    free(ref);
    free(ks);
}

/* f(x) evaluated directly (no Horner) for the oracle. */
static uint64_t poly_at(const uint64_t *coef, unsigned t, uint64_t x)
{
    unsigned __int128 y = 0, xp = 1;
    for (unsigned d = 0; d < t; d++) {
        y = (y + (unsigned __int128)coef[d] * (uint64_t)xp) % FF_SHAMIR_P;
        xp = (xp * x) % FF_SHAMIR_P;
    }
    return (uint64_t)y;
}

static void test_shamir_boundaries(void **state)
{
    (void)state;
    const uint64_t secrets[] = {0, 1, FF_SHAMIR_P - 1, 123456789};
    uint64_t xs[9], ys[9], got;
    for (unsigned i = 0; i < 9; i++)
        xs[i] = i + 1;
    for (size_t s = 0; s < FF_ARRAY_LEN(secrets); s++)
        for (unsigned n = 1; n <= 9; n += 4)
            for (unsigned t = 1; t <= n; t++) {
                assert_int_equal(ff_shamir_split_elem(secrets[s], t, xs, n, ys), FF_OK);
                if (t == 1) /* degree 0: every share is the secret */
                    for (unsigned i = 0; i < n; i++)
                        assert_true(ys[i] == secrets[s]);
                /* the last t shares */
                assert_int_equal(ff_shamir_recover_elem(xs + n - t, ys + n - t, t, &got), FF_OK);
                assert_true(got == secrets[s]);
                assert_int_equal(ff_shamir_recover_elem(xs, ys, n, &got), FF_OK); /* all n */
                assert_true(got == secrets[s]);
                if (t >= 2) { /* t-1 shares give another value (with overwhelming chance) */
                    assert_int_equal(ff_shamir_recover_elem(xs, ys, t - 1, &got), FF_OK);
                    assert_true(got != secrets[s]);
                }
            }
    /* Interpolation against a known polynomial. */
    const uint64_t coef[3] = {FF_SHAMIR_P - 1, 5, FF_SHAMIR_P - 2};
    for (unsigned i = 0; i < 3; i++)
        ys[i] = poly_at(coef, 3, xs[i + 4]);
    assert_int_equal(ff_shamir_recover_elem(xs + 4, ys, 3, &got), FF_OK);
    assert_true(got == FF_SHAMIR_P - 1);
    /* Out-of-field input refused. */
    assert_int_equal(ff_shamir_split_elem(FF_SHAMIR_P, 2, xs, 3, ys), FF_ERANGE);
    ys[0] = FF_SHAMIR_P;
    assert_int_equal(ff_shamir_recover_elem(xs, ys, 2, &got), FF_EFORMAT);
    uint64_t dup[2] = {3, 3};
    assert_int_equal(ff_shamir_split_elem(1, 2, dup, 2, ys), FF_EINVAL);
    assert_int_equal(ff_shamir_split_elem(1, 4, xs, 3, ys), FF_EINVAL);
}

static void test_shamir_bytes(void **state)
{
    (void)state;
    uint8_t secret[32], back[32], sh[7 * FF_SHAMIR_SHARE_BYTES];
    const uint32_t xs[7] = {3, 9, 1, 40, 41, 100, 4096};
    for (int pattern = 0; pattern < 3; pattern++) {
        memset(secret, pattern == 0 ? 0x00 : 0xFF, 32);
        if (pattern == 2)
            for (int i = 0; i < 32; i++)
                secret[i] = (uint8_t)(i * 37 + 1);
        assert_int_equal(ff_shamir_split(secret, 4, xs, 7, sh), FF_OK);
        assert_int_equal(ff_shamir_recover(back, xs + 3, sh + 3 * FF_SHAMIR_SHARE_BYTES, 4),
                         FF_OK);
        assert_memory_equal(back, secret, 32);
        assert_int_equal(ff_shamir_recover(back, xs, sh, 7), FF_OK);
        assert_memory_equal(back, secret, 32);
        /* A corrupted share makes the chunks overflow their bytes (caught) or differ. */
        sh[8 * FF_SHAMIR_SHARE_BYTES / 8 + 2] ^= 0x10;
        memset(back, 0, 32);
        int rc = ff_shamir_recover(back, xs, sh, 4);
        assert_true(rc == FF_ECRYPTO || memcmp(back, secret, 32) != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hkdf_rfc5869),      cmocka_unit_test(test_x25519_rfc7748),
        cmocka_unit_test(test_ed25519_rfc8032),   cmocka_unit_test(test_aes_gcm_vectors),
        cmocka_unit_test(test_prg_sp800_38a),     cmocka_unit_test(test_mask_apply_matches_expand),
        cmocka_unit_test(test_shamir_boundaries), cmocka_unit_test(test_shamir_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
