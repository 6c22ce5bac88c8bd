/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11). Counter-based: the stream is a pure function of (seed, stream, counter), so runs
 * reproduce bit for bit on any machine and any thread count. */
#include "ff/common.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void ff_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void ff_rng_init(ff_rng *r, uint64_t seed, uint64_t stream)
{
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)stream;
    r->ctr[3] = (uint32_t)(stream >> 32);
    r->pos = 4;
}

uint32_t ff_rng_u32(ff_rng *r)
{
    if (r->pos >= 4) {
        ff_philox4x32(r->key, r->ctr, r->buf);
        if (++r->ctr[0] == 0)
            r->ctr[1]++;
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t ff_rng_u64(ff_rng *r)
{
    uint64_t hi = ff_rng_u32(r);
    return (hi << 32) | ff_rng_u32(r);
}

float ff_rng_uniform(ff_rng *r)
{
    return (float)(ff_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

double ff_rng_uniform_d(ff_rng *r)
{
    return (double)(ff_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t ff_rng_below(ff_rng *r, uint32_t n)
{
    /* Lemire-style rejection: reject the low (2^32 mod n) values so every residue is equally
     * likely. */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = ff_rng_u32(r);
        if (x >= threshold)
            return x % n;
    }
}

double ff_rng_normal(ff_rng *r)
{
    double u1 = ff_rng_uniform_d(r);
    double u2 = ff_rng_uniform_d(r);
    /* 1 - u1 lies in (0, 1], so the log is finite. */
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

void ff_rng_normal_fill(ff_rng *r, float *out, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++)
        out[i] = mean + std * (float)ff_rng_normal(r);
}

void ff_rng_shuffle(ff_rng *r, uint32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = ff_rng_below(r, (uint32_t)i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
