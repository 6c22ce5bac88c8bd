/* Shamir t-of-n secret sharing over GF(p), p = 2^61 - 1 (a Mersenne prime, so reduction is a
 * shift and an add). Any field with p > number of shares works; security is information
 * theoretic per chunk, so a small field costs nothing but more chunks per secret. */
#include "ff/crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

__extension__ typedef unsigned __int128 u128;
#define P FF_SHAMIR_P

static uint64_t f_add(uint64_t a, uint64_t b)
{
    uint64_t r = a + b;
    return r >= P ? r - P : r;
}

static uint64_t f_sub(uint64_t a, uint64_t b)
{
    return a >= b ? a - b : a + P - b;
}

static uint64_t f_mul(uint64_t a, uint64_t b)
{
    u128 x = (u128)a * b; /* < 2^122 */
    uint64_t r = (uint64_t)(x & P) + (uint64_t)(x >> 61); /* 2^61 = 1 (mod p) */
    return r >= P ? r - P : r;
}

static uint64_t f_inv(uint64_t a)
{
    /* Fermat: a^(p-2). */
    uint64_t r = 1, e = P - 2;
    while (e) {
        if (e & 1)
            r = f_mul(r, a);
        a = f_mul(a, a);
        e >>= 1;
    }
    return r;
}

static int f_random(uint64_t *out)
{
    for (;;) {
        uint64_t v;
        if (RAND_bytes((unsigned char *)&v, sizeof v) != 1)
            return ff_error(FF_ECRYPTO, "shamir: RAND_bytes failed");
        v &= P;
        if (v != P) { /* only p itself is outside the field: uniform by rejection */
            *out = v;
            OPENSSL_cleanse(&v, sizeof v);
            return FF_OK;
        }
    }
}

int ff_shamir_split_elem(uint64_t secret, unsigned t, const uint64_t *xs, size_t n,
                         uint64_t *shares)
{
    uint64_t *coef = NULL;
    int rc = FF_OK;
    if (secret >= P)
        return ff_error(FF_ERANGE, "shamir: secret not below p");
    if (t < 1 || t > n || n >= P)
        return ff_error(FF_EINVAL, "shamir: threshold %u not in 1..%zu", t, n);
    for (size_t i = 0; i < n; i++) {
        if (xs[i] == 0 || xs[i] >= P)
            return ff_error(FF_EINVAL, "shamir: x[%zu] = %llu not in 1..p-1", i,
                            (unsigned long long)xs[i]);
        for (size_t j = 0; j < i; j++)
            if (xs[j] == xs[i])
                return ff_error(FF_EINVAL, "shamir: x[%zu] repeats x[%zu]", i, j);
    }
    if (!(coef = malloc(t * sizeof *coef)))
        return ff_error(FF_ENOMEM, "shamir: out of memory");
    coef[0] = secret;
    for (unsigned d = 1; d < t; d++)
        if ((rc = f_random(&coef[d])))
            goto out;
    for (size_t i = 0; i < n; i++) {
        uint64_t y = 0; /* Horner */
        for (unsigned d = t; d-- > 0;)
            y = f_add(f_mul(y, xs[i]), coef[d]);
        shares[i] = y;
    }
out:
    OPENSSL_cleanse(coef, t * sizeof *coef);
    free(coef);
    return rc;
}

/* Lagrange weights at 0: w_i = prod_{j != i} x_j / (x_j - x_i). */
static int lagrange_weights(const uint64_t *xs, size_t n, uint64_t *w)
{
    for (size_t i = 0; i < n; i++) {
        if (xs[i] == 0 || xs[i] >= P)
            return ff_error(FF_EFORMAT, "shamir: share %zu has x outside 1..p-1", i);
        uint64_t num = 1, den = 1;
        for (size_t j = 0; j < n; j++) {
            if (j == i)
                continue;
            if (xs[j] == xs[i])
                return ff_error(FF_EFORMAT, "shamir: duplicate share x = %llu",
                                (unsigned long long)xs[i]);
            num = f_mul(num, xs[j]);
            den = f_mul(den, f_sub(xs[j], xs[i]));
        }
        w[i] = f_mul(num, f_inv(den));
    }
    return FF_OK;
}

static int combine(const uint64_t *w, const uint64_t *ys, size_t n, uint64_t *secret)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (ys[i] >= P)
            return ff_error(FF_EFORMAT, "shamir: share %zu is not a field element", i);
        acc = f_add(acc, f_mul(ys[i], w[i]));
    }
    *secret = acc;
    return FF_OK;
}

int ff_shamir_recover_elem(const uint64_t *xs, const uint64_t *ys, size_t n, uint64_t *secret)
{
    if (n == 0)
        return ff_error(FF_EINVAL, "shamir: no shares");
    uint64_t *w = malloc(n * sizeof *w);
    if (!w)
        return ff_error(FF_ENOMEM, "shamir: out of memory");
    int rc = lagrange_weights(xs, n, w);
    if (!rc)
        rc = combine(w, ys, n, secret);
    free(w);
    return rc;
}

static size_t chunk_len(int c)
{
    return c < FF_SHAMIR_CHUNKS - 1 ? 7 : FF_CRYPTO_KEY_BYTES - 7 * (FF_SHAMIR_CHUNKS - 1);
}

int ff_shamir_split(const uint8_t secret[FF_CRYPTO_KEY_BYTES], unsigned t, const uint32_t *xs,
                    size_t n, uint8_t *shares)
{
    int rc = FF_OK;
    uint64_t *x = calloc(n ? n : 1, sizeof *x), *y = calloc(n ? n : 1, sizeof *y);
    if (!x || !y) {
        rc = ff_error(FF_ENOMEM, "shamir: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = xs[i];
    for (int c = 0; c < FF_SHAMIR_CHUNKS; c++) {
        uint64_t s = 0;
        memcpy(&s, secret + 7 * c, chunk_len(c));
        rc = ff_shamir_split_elem(s, t, x, n, y);
        OPENSSL_cleanse(&s, sizeof s);
        if (rc)
            goto out;
        for (size_t i = 0; i < n; i++)
            memcpy(shares + i * FF_SHAMIR_SHARE_BYTES + 8 * c, &y[i], 8);
    }
out:
    if (y)
        OPENSSL_cleanse(y, n * sizeof *y);
    free(x);
    free(y);
    return rc;
}

int ff_shamir_recover(uint8_t secret[FF_CRYPTO_KEY_BYTES], const uint32_t *xs,
                      const uint8_t *shares, size_t n)
{
    int rc = FF_OK;
    uint8_t tmp[FF_CRYPTO_KEY_BYTES];
    if (n == 0)
        return ff_error(FF_EINVAL, "shamir: no shares");
    uint64_t *x = calloc(n, sizeof *x), *y = calloc(n, sizeof *y), *w = calloc(n, sizeof *w);
    if (!x || !y || !w) {
        rc = ff_error(FF_ENOMEM, "shamir: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = xs[i];
    /* The x coordinates are the same for every chunk: one set of weights serves all. */
    if ((rc = lagrange_weights(x, n, w)))
        goto out;
    for (int c = 0; c < FF_SHAMIR_CHUNKS; c++) {
        uint64_t s;
        for (size_t i = 0; i < n; i++)
            memcpy(&y[i], shares + i * FF_SHAMIR_SHARE_BYTES + 8 * c, 8);
        if ((rc = combine(w, y, n, &s)))
            goto out;
        /* A chunk that does not fit its bytes means inconsistent or too few shares. */
        if (s >> (8 * chunk_len(c))) {
            OPENSSL_cleanse(&s, sizeof s);
            rc = ff_error(FF_ECRYPTO, "shamir: shares are inconsistent (chunk %d)", c);
            goto out;
        }
        memcpy(tmp + 7 * c, &s, chunk_len(c));
        OPENSSL_cleanse(&s, sizeof s);
    }
    memcpy(secret, tmp, sizeof tmp);
out:
    OPENSSL_cleanse(tmp, sizeof tmp);
    if (y)
        OPENSSL_cleanse(y, n * sizeof *y);
    free(x);
    free(y);
    free(w);
    return rc;
}
