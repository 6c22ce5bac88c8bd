/* Secure aggregation: parameters, the neighbour graph, the float codec, the wire format and
 * the key derivations both sides share. */
#include "secagg_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* ------------------------------------------------------------------------------------ */
/* Parameters                                                                             */
/* ------------------------------------------------------------------------------------ */

uint32_t ff_secagg_default_k(uint32_t n_sites)
{
    /* Bell et al. need k = O(log n) for the honest survivors' graph to stay connected and
     * every neighbourhood to keep t shares; 2*ceil(log2 n) + 2 gives the margins computed
     * in docs/secagg.md (k = 14 at n = 64, 18 at n = 256). */
    if (n_sites < 2)
        return 1;
    uint32_t lg = 0;
    while ((1ull << lg) < n_sites)
        lg++;
    return FF_MIN(n_sites - 1, 2 * lg + 2);
}

uint32_t ff_secagg_default_t(uint32_t k)
{
    return (k + 1) / 2 + 1; /* strict majority of the k + 1 share holders */
}

uint32_t ff_secagg_check_quorum(const ff_secagg_params *p)
{
    /* Any two sets of q signers out of n share 2q - n of them; an honest site signs one
     * survivor set per round, so a majority quorum makes the coordinator's two stories
     * need colluding signers. t alone would be a local majority only (k < n - 1). */
    return FF_MAX(p->t, p->n_sites / 2 + 1);
}

void ff_secagg_params_default(ff_secagg_params *p, uint64_t round_id, uint32_t n_sites,
                              uint64_t n_values)
{
    memset(p, 0, sizeof *p);
    p->round_id = round_id;
    p->n_sites = n_sites;
    p->n_values = n_values;
    p->k = ff_secagg_default_k(n_sites);
    p->t = ff_secagg_default_t(ff_secagg_degree(p));
}

uint32_t ff_secagg_degree(const ff_secagg_params *p)
{
    if (p->k >= p->n_sites - 1)
        return p->n_sites - 1;
    if ((p->k & 1) && (p->n_sites & 1))
        return p->k + 1; /* no k-regular graph exists on n nodes when k and n are odd */
    return p->k;
}

int ff_secagg_params_check(const ff_secagg_params *p)
{
    if (p->n_sites < 2 || p->n_sites > FF_SECAGG_MAX_SITES)
        return ff_error(FF_EINVAL, "secagg params: n_sites = %u not in 2..%u", p->n_sites,
                        FF_SECAGG_MAX_SITES);
    if (p->k < 1 || p->k > p->n_sites - 1)
        return ff_error(FF_EINVAL, "secagg params: k = %u not in 1..%u", p->k,
                        p->n_sites - 1);
    uint32_t k = ff_secagg_degree(p);
    if (2 * p->t <= k + 1 || p->t > k + 1)
        return ff_error(FF_EINVAL,
                        "secagg params: t = %u must satisfy %u < t <= %u (a strict majority "
                        "of the %u share holders of each site)",
                        p->t, (k + 1) / 2, k + 1, k + 1);
    if (p->n_values < 1 || p->n_values > (1ull << 30))
        return ff_error(FF_EINVAL, "secagg params: n_values = %llu not in 1..2^30",
                        (unsigned long long)p->n_values);
    return FF_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Neighbour graph                                                                        */
/* ------------------------------------------------------------------------------------ */

int sa_graph_build(const ff_secagg_params *p, uint32_t **pos_out, uint32_t **perm_out)
{
    uint32_t n = p->n_sites;
    uint32_t *pos = malloc(n * sizeof *pos), *perm = malloc(n * sizeof *perm);
    if (!pos || !perm) {
        free(pos);
        free(perm);
        return ff_error(FF_ENOMEM, "secagg graph: out of memory");
    }
    /* The permutation is a public function of the round parameters: every party derives
     * the same graph and the coordinator cannot choose it after seeing the keys. */
    uint8_t tag[32], h[32];
    sa_round_tag(p, tag);
    uint8_t in[32 + 15];
    memcpy(in, "ff-secagg-graph", 15);
    memcpy(in + 15, tag, 32);
    ff_sha256(in, sizeof in, h);
    uint64_t seed;
    memcpy(&seed, h, 8);
    ff_rng r;
    ff_rng_init(&r, seed, 0);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    ff_rng_shuffle(&r, perm, n);
    for (uint32_t i = 0; i < n; i++)
        pos[perm[i]] = i;
    *pos_out = pos;
    *perm_out = perm;
    return FF_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void sa_graph_nbrs(const ff_secagg_params *p, const uint32_t *pos, const uint32_t *perm,
                   uint32_t site, uint32_t *nb, uint32_t *deg)
{
    uint32_t n = p->n_sites, k = ff_secagg_degree(p), d = 0;
    if (k == n - 1) {
        for (uint32_t j = 0; j < n; j++)
            if (j != site)
                nb[d++] = j;
    } else {
        /* Harary graph H(k, n): offsets +-1..+-k/2 on the cycle of positions, and the
         * diametric position when k is odd (then n is even). */
        uint32_t q = pos[site];
        for (uint32_t o = 1; o <= k / 2; o++) {
            nb[d++] = perm[(q + o) % n];
            nb[d++] = perm[(q + n - o) % n];
        }
        if (k & 1)
            nb[d++] = perm[(q + n / 2) % n];
        qsort(nb, d, sizeof *nb, cmp_u32);
    }
    *deg = d;
}

int ff_secagg_neighbours(const ff_secagg_params *p, uint32_t site, uint32_t *nb, uint32_t *deg)
{
    uint32_t *pos = NULL, *perm = NULL;
    int rc = ff_secagg_params_check(p);
    if (rc)
        return rc;
    if (site >= p->n_sites)
        return ff_error(FF_EINVAL, "secagg graph: site %u not below n = %u", site, p->n_sites);
    if ((rc = sa_graph_build(p, &pos, &perm)))
        return rc;
    sa_graph_nbrs(p, pos, perm, site, nb, deg);
    free(pos);
    free(perm);
    return FF_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Codec                                                                                  */
/* ------------------------------------------------------------------------------------ */

int ff_secagg_codec_init(ff_secagg_codec *c, double clip, double scale, uint32_t n_sites,
                         uint32_t max_weight)
{
    const double lim = 2147483647.0; /* |sum| must stay below 2^31 to read back as int32 */
    if (!(clip > 0) || !isfinite(clip))
        return ff_error(FF_ERANGE, "secagg codec: clip = %g must be positive and finite", clip);
    if (n_sites < 1)
        return ff_error(FF_ERANGE, "secagg codec: n_sites = 0");
    if ((uint64_t)n_sites * max_weight > 0xFFFFFFFFull)
        return ff_error(FF_ERANGE,
                        "secagg codec: %u sites x max_weight %u overflow the 32-bit lane",
                        n_sites, max_weight);
    double room = (lim / n_sites - 1.0) / clip; /* largest scale allowed */
    if (scale == 0) {
        int e;
        frexp(room, &e); /* room = m * 2^e, m in [0.5, 1) */
        scale = ldexp(1.0, e - 1);
    } else {
        int e;
        if (!isfinite(scale) || frexp(scale, &e) != 0.5)
            return ff_error(FF_ERANGE, "secagg codec: scale = %g is not a power of two", scale);
    }
    if (scale < 1.0 || scale > room)
        return ff_error(FF_ERANGE,
                        "secagg codec: scale %g with clip %g and %u sites overflows 32-bit "
                        "lanes (largest scale %g; need scale >= 1)",
                        scale, clip, n_sites, room);
    c->clip = clip;
    c->scale = scale;
    c->n_sites = n_sites;
    c->max_weight = max_weight;
    return FF_OK;
}

int ff_secagg_encode(const ff_secagg_codec *c, ff_rng *rng, const float *x, size_t n,
                     uint32_t weight, uint32_t *out)
{
    if (weight > c->max_weight)
        return ff_error(FF_ERANGE, "secagg encode: weight %u above max_weight %u", weight,
                        c->max_weight);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return ff_error(FF_ENUMERIC, "secagg encode: value %zu is not finite", i);
    for (size_t i = 0; i < n; i++) {
        double v = FF_MAX(-c->clip, FF_MIN(c->clip, (double)x[i])) * c->scale;
        double f = floor(v);
        /* Stochastic rounding: up with probability v - f, so E[q] = v exactly. */
        int64_t q = (int64_t)f + (ff_rng_uniform_d(rng) < v - f);
        out[i] = (uint32_t)(int32_t)q;
    }
    out[n] = weight;
    return FF_OK;
}

void ff_secagg_decode(const ff_secagg_codec *c, const uint32_t *sum, size_t n, double *out,
                      uint64_t *weight)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (double)(int32_t)sum[i] / c->scale;
    if (weight)
        *weight = sum[n];
}

/* ------------------------------------------------------------------------------------ */
/* Wire format                                                                            */
/* ------------------------------------------------------------------------------------ */

void ff_secagg_buf_free(ff_secagg_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

static const char *type_name(unsigned t)
{
    static const char *names[] = {"?",           "ADVERTISE",  "ADVERTISE_SET", "SHARES",
                                  "SHARES_IN",   "MASKED",     "UNMASK_REQ",    "UNMASK_RESP",
                                  "CHECK_REQ",   "CHECK_SIG"};
    return t < FF_ARRAY_LEN(names) ? names[t] : "?";
}

void sa_put(sa_writer *w, const void *src, size_t n)
{
    FF_ASSERT(w->len + n <= w->cap);
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

void sa_put_u32(sa_writer *w, uint32_t v)
{
    sa_put(w, &v, 4);
}

void sa_put_u8(sa_writer *w, uint8_t v)
{
    sa_put(w, &v, 1);
}

int sa_msg_begin(ff_secagg_buf *out, sa_writer *w, ff_secagg_msg_type type, uint64_t round_id,
                 uint32_t sender, size_t body_len)
{
    if (body_len > 0xFFFFFFFFu)
        return ff_error(FF_ERANGE, "secagg: message body of %zu bytes too long", body_len);
    w->cap = FF_SECAGG_HEADER_BYTES + body_len;
    w->len = 0;
    w->p = malloc(w->cap);
    if (!w->p)
        return ff_error(FF_ENOMEM, "secagg: out of memory for a %zu-byte message", w->cap);
    sa_put(w, "FFSA", 4);
    sa_put_u8(w, SA_VERSION);
    sa_put_u8(w, (uint8_t)type);
    sa_put_u8(w, 0);
    sa_put_u8(w, 0);
    sa_put(w, &round_id, 8);
    sa_put_u32(w, sender);
    sa_put_u32(w, (uint32_t)body_len);
    out->data = w->p;
    out->len = w->cap;
    return FF_OK;
}

int ff_secagg_msg_peek(const uint8_t *msg, size_t len, ff_secagg_msg_type *type,
                       uint64_t *round_id, uint32_t *sender)
{
    uint32_t body;
    if (!msg || len < FF_SECAGG_HEADER_BYTES || memcmp(msg, "FFSA", 4) != 0)
        return ff_error(FF_EFORMAT, "secagg message: bad magic or %zu bytes < header", len);
    if (msg[4] != SA_VERSION || msg[6] || msg[7])
        return ff_error(FF_EFORMAT, "secagg message: version %u unsupported", msg[4]);
    if (msg[5] < FF_SECAGG_MSG_ADVERTISE || msg[5] > FF_SECAGG_MSG_CHECK_SIG)
        return ff_error(FF_EFORMAT, "secagg message: unknown type %u", msg[5]);
    memcpy(&body, msg + 20, 4);
    if ((size_t)body != len - FF_SECAGG_HEADER_BYTES)
        return ff_error(FF_EFORMAT, "secagg message: body_len %u but %zu bytes follow", body,
                        len - FF_SECAGG_HEADER_BYTES);
    *type = (ff_secagg_msg_type)msg[5];
    memcpy(round_id, msg + 8, 8);
    memcpy(sender, msg + 16, 4);
    return FF_OK;
}

int sa_msg_open(const uint8_t *msg, size_t len, ff_secagg_msg_type want, uint64_t round_id,
                sa_reader *r, uint32_t *sender, const char *what)
{
    ff_secagg_msg_type type = 0;
    uint64_t rid = 0;
    int rc = ff_secagg_msg_peek(msg, len, &type, &rid, sender);
    if (rc)
        return ff_error_prefix(rc, "%s: ", what);
    if (rid != round_id)
        return ff_error(FF_EPOLICY,
                        "%s: message of round %llu refused in round %llu (replayed or stale)",
                        what, (unsigned long long)rid, (unsigned long long)round_id);
    if (type != want)
        return ff_error(FF_EPOLICY, "%s: got a %s message, expected %s", what, type_name(type),
                        type_name(want));
    r->p = msg + FF_SECAGG_HEADER_BYTES;
    r->len = len - FF_SECAGG_HEADER_BYTES;
    r->off = 0;
    return FF_OK;
}

int sa_get(sa_reader *r, void *dst, size_t n, const char *what)
{
    if (r->len - r->off < n)
        return ff_error(FF_EFORMAT, "%s: message truncated at body byte %zu", what, r->off);
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return FF_OK;
}

int sa_get_u32(sa_reader *r, uint32_t *v, const char *what)
{
    return sa_get(r, v, 4, what);
}

int sa_get_u8(sa_reader *r, uint8_t *v, const char *what)
{
    return sa_get(r, v, 1, what);
}

int sa_end(const sa_reader *r, const char *what)
{
    if (r->off != r->len)
        return ff_error(FF_EFORMAT, "%s: %zu trailing bytes", what, r->len - r->off);
    return FF_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Bindings and key derivations                                                           */
/* ------------------------------------------------------------------------------------ */

void sa_round_tag(const ff_secagg_params *p, uint8_t tag[32])
{
    uint8_t in[12 + 8 + 4 + 4 + 4 + 8];
    memcpy(in, "ff-secagg-v1", 12);
    memcpy(in + 12, &p->round_id, 8);
    memcpy(in + 20, &p->n_sites, 4);
    memcpy(in + 24, &p->k, 4);
    memcpy(in + 28, &p->t, 4);
    memcpy(in + 32, &p->n_values, 8);
    ff_sha256(in, sizeof in, tag);
}

void sa_adv_sig_msg(const uint8_t tag[32], uint32_t sender, const uint8_t c_pk[32],
                    const uint8_t s_pk[32], uint8_t out[SA_SIG_MSG_BYTES])
{
    memcpy(out, "ff-secagg-adv", 13);
    memcpy(out + 13, tag, 32);
    memcpy(out + 45, &sender, 4);
    memcpy(out + 49, c_pk, 32);
    memcpy(out + 81, s_pk, 32);
}

uint8_t *sa_u3_sig_msg(const uint8_t tag[32], const uint8_t *u3, size_t nb, size_t *len)
{
    uint8_t *m = malloc(12 + 32 + nb);
    if (!m)
        return NULL;
    memcpy(m, "ff-secagg-u3", 12);
    memcpy(m + 12, tag, 32);
    memcpy(m + 44, u3, nb);
    *len = 44 + nb;
    return m;
}

uint32_t sa_popcount(const uint8_t *bm, size_t nb)
{
    uint32_t c = 0;
    for (size_t i = 0; i < nb; i++)
        c += (uint32_t)__builtin_popcount(bm[i]);
    return c;
}

void sa_share_aad(const uint8_t tag[32], uint32_t sender, uint32_t recipient, uint8_t aad[40])
{
    memcpy(aad, tag, 32);
    memcpy(aad + 32, &sender, 4);
    memcpy(aad + 36, &recipient, 4);
}

static int derive(const uint8_t tag[32], const uint8_t sk[32], const uint8_t pk[32],
                  const char *label, uint32_t a, uint32_t b, uint8_t out[32])
{
    uint8_t ss[32], info[32];
    size_t ll = strlen(label);
    int rc = ff_crypto_x25519(ss, sk, pk);
    if (rc)
        return rc;
    memcpy(info, label, ll);
    memcpy(info + ll, &a, 4);
    memcpy(info + ll + 4, &b, 4);
    rc = ff_crypto_hkdf_sha256(out, 32, tag, 32, ss, sizeof ss, info, ll + 8);
    OPENSSL_cleanse(ss, sizeof ss);
    return rc;
}

int sa_share_key(const uint8_t tag[32], const uint8_t c_sk[32], const uint8_t c_pk_peer[32],
                 uint32_t sender, uint32_t recipient, uint8_t key[32])
{
    return derive(tag, c_sk, c_pk_peer, "ff-secagg-share", sender, recipient, key);
}

int sa_mask_seed(const uint8_t tag[32], const uint8_t s_sk[32], const uint8_t s_pk_peer[32],
                 uint32_t a, uint32_t b, uint8_t seed[32])
{
    return derive(tag, s_sk, s_pk_peer, "ff-secagg-mask", FF_MIN(a, b), FF_MAX(a, b), seed);
}
