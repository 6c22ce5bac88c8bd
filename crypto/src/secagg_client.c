/* Secure aggregation, the site's side: five phases, each consuming the coordinator's message
 * and producing the site's. Any failed check of what the coordinator sent fails the round
 * closed: the secrets are wiped and every later call is refused. */
#include "secagg_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define S FF_SHAMIR_SHARE_BYTES
#define K FF_CRYPTO_KEY_BYTES

enum { C_NEW, C_ADVERTISED, C_SHARED, C_MASKED, C_CHECKED, C_DONE, C_FAILED };

struct ff_secagg_client {
    ff_secagg_params p;
    uint32_t self;
    EVP_PKEY *sign_key;
    EVP_PKEY *const *peer_keys;
    uint8_t tag[32];
    int state;
    uint32_t deg, *nb; /* sorted neighbours */
    /* This round's secrets. */
    uint8_t c_sk[K], c_pk[K], s_sk[K], s_pk[K], b[K];
    uint8_t own_seed_share[S], own_key_share[S];
    /* Per neighbour (index into nb). */
    uint8_t (*peer_c_pk)[K], (*peer_s_pk)[K];
    uint8_t *advertised, *shared;
    uint8_t (*seed_share)[S], (*key_share)[S]; /* our shares of the neighbour's secrets */
    uint8_t *u3; /* the survivor set this site signed (ceil(n/8) bytes), once checked */
};

static void wipe(ff_secagg_client *c)
{
    OPENSSL_cleanse(c->c_sk, K);
    OPENSSL_cleanse(c->s_sk, K);
    OPENSSL_cleanse(c->b, K);
    OPENSSL_cleanse(c->own_seed_share, S);
    OPENSSL_cleanse(c->own_key_share, S);
    if (c->seed_share)
        OPENSSL_cleanse(c->seed_share, (size_t)c->deg * S);
    if (c->key_share)
        OPENSSL_cleanse(c->key_share, (size_t)c->deg * S);
}

/* Records a refusal: the round is over for this site. Returns rc. */
static int fail_closed(ff_secagg_client *c, int rc)
{
    wipe(c);
    c->state = C_FAILED;
    return ff_error_prefix(rc, "secagg site %u: ", c->self);
}

static int want_state(ff_secagg_client *c, int st, const char *phase)
{
    if (c->state == st)
        return FF_OK;
    if (c->state == C_FAILED)
        return ff_error(FF_ESTATE, "secagg site %u: %s refused: the round already failed",
                        c->self, phase);
    return ff_error(FF_ESTATE, "secagg site %u: %s refused in this state (phase %d; a "
                    "replayed or out-of-order request?)", c->self, phase, c->state);
}

/* Index of site in nb, or -1. */
static int nb_index(const ff_secagg_client *c, uint32_t site)
{
    uint32_t lo = 0, hi = c->deg;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->nb[mid] == site)
            return (int)mid;
        if (c->nb[mid] < site)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int ff_secagg_client_new(ff_secagg_client **out, const ff_secagg_params *p, uint32_t self,
                         EVP_PKEY *sign_key, EVP_PKEY *const *peer_keys)
{
    uint32_t *pos = NULL, *perm = NULL;
    *out = NULL;
    int rc = ff_secagg_params_check(p);
    if (rc)
        return rc;
    if (self >= p->n_sites || !sign_key || !peer_keys)
        return ff_error(FF_EINVAL, "secagg client: site %u of %u, keys %s", self, p->n_sites,
                        sign_key && peer_keys ? "given" : "missing");
    ff_secagg_client *c = calloc(1, sizeof *c);
    if (!c)
        return ff_error(FF_ENOMEM, "secagg client: out of memory");
    c->p = *p;
    c->self = self;
    c->sign_key = sign_key;
    c->peer_keys = peer_keys;
    sa_round_tag(p, c->tag);
    uint32_t kk = ff_secagg_degree(p);
    c->nb = calloc(kk, sizeof *c->nb);
    c->peer_c_pk = calloc(kk, K);
    c->peer_s_pk = calloc(kk, K);
    c->advertised = calloc(kk, 1);
    c->shared = calloc(kk, 1);
    c->seed_share = calloc(kk, S);
    c->key_share = calloc(kk, S);
    if (!c->nb || !c->peer_c_pk || !c->peer_s_pk || !c->advertised || !c->shared ||
        !c->seed_share || !c->key_share) {
        rc = ff_error(FF_ENOMEM, "secagg client: out of memory");
        goto out;
    }
    if ((rc = sa_graph_build(p, &pos, &perm)))
        goto out;
    sa_graph_nbrs(p, pos, perm, self, c->nb, &c->deg);
    /* Every site's key, not only the neighbours': any survivor may sign the survivor set. */
    for (uint32_t i = 0; i < p->n_sites; i++)
        if (!peer_keys[i]) {
            rc = ff_error(FF_EINVAL, "secagg client: no public key for site %u", i);
            goto out;
        }
    if (!(c->u3 = calloc((p->n_sites + 7) / 8, 1))) {
        rc = ff_error(FF_ENOMEM, "secagg client: out of memory");
        goto out;
    }
    *out = c;
    c = NULL;
out:
    free(pos);
    free(perm);
    ff_secagg_client_free(c);
    return rc;
}

void ff_secagg_client_free(ff_secagg_client *c)
{
    if (!c)
        return;
    wipe(c);
    free(c->nb);
    free(c->peer_c_pk);
    free(c->peer_s_pk);
    free(c->advertised);
    free(c->shared);
    free(c->seed_share);
    free(c->key_share);
    free(c->u3);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

int ff_secagg_client_advertise(ff_secagg_client *c, ff_secagg_buf *out)
{
    *out = (ff_secagg_buf){0};
    uint8_t m[SA_SIG_MSG_BYTES], sig[FF_CRYPTO_SIG_BYTES];
    sa_writer w;
    int rc = want_state(c, C_NEW, "advertise");
    if (rc)
        return rc;
    if ((rc = ff_crypto_x25519_keygen(c->c_sk, c->c_pk)) ||
        (rc = ff_crypto_x25519_keygen(c->s_sk, c->s_pk)))
        return fail_closed(c, rc);
    sa_adv_sig_msg(c->tag, c->self, c->c_pk, c->s_pk, m);
    if ((rc = ff_crypto_ed25519_sign(c->sign_key, m, sizeof m, sig)))
        return fail_closed(c, rc);
    if ((rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_ADVERTISE, c->p.round_id, c->self,
                           SA_ADV_BYTES)))
        return fail_closed(c, rc);
    sa_put(&w, c->c_pk, K);
    sa_put(&w, c->s_pk, K);
    sa_put(&w, sig, sizeof sig);
    c->state = C_ADVERTISED;
    return FF_OK;
}

/* Reads the advertisement set: checks every neighbour's signature and that our own entry is
 * the keys we sent. */
static int read_adv_set(ff_secagg_client *c, const uint8_t *msg, size_t len)
{
    const char *what = "advertisement set";
    sa_reader r;
    uint32_t sender, count, prev = 0;
    int rc, seen_self = 0;
    if ((rc = sa_msg_open(msg, len, FF_SECAGG_MSG_ADVERTISE_SET, c->p.round_id, &r, &sender,
                          what)))
        return rc;
    if (sender != FF_SECAGG_SERVER)
        return ff_error(FF_EPOLICY, "%s: sender %u is not the coordinator", what, sender);
    if ((rc = sa_get_u32(&r, &count, what)))
        return rc;
    if (count > c->p.n_sites)
        return ff_error(FF_EFORMAT, "%s: %u entries for %u sites", what, count, c->p.n_sites);
    for (uint32_t e = 0; e < count; e++) {
        uint32_t site;
        uint8_t ck[K], sk[K], sig[FF_CRYPTO_SIG_BYTES], m[SA_SIG_MSG_BYTES];
        if ((rc = sa_get_u32(&r, &site, what)) || (rc = sa_get(&r, ck, K, what)) ||
            (rc = sa_get(&r, sk, K, what)) || (rc = sa_get(&r, sig, sizeof sig, what)))
            return rc;
        if (site >= c->p.n_sites || (e > 0 && site <= prev))
            return ff_error(FF_EFORMAT, "%s: entry %u names site %u out of order", what, e,
                            site);
        prev = site;
        if (site == c->self) {
            if (memcmp(ck, c->c_pk, K) || memcmp(sk, c->s_pk, K))
                return ff_error(FF_ECRYPTO, "%s: our own keys were replaced", what);
            seen_self = 1;
            continue;
        }
        int i = nb_index(c, site);
        if (i < 0)
            continue; /* not a neighbour: its keys are never used here */
        sa_adv_sig_msg(c->tag, site, ck, sk, m);
        if (ff_crypto_ed25519_verify(c->peer_keys[site], m, sizeof m, sig))
            return ff_error(FF_ECRYPTO,
                            "%s: keys of site %u do not verify under its certificate key "
                            "(substituted keys or another round's advertisement)",
                            what, site);
        memcpy(c->peer_c_pk[i], ck, K);
        memcpy(c->peer_s_pk[i], sk, K);
        c->advertised[i] = 1;
    }
    if ((rc = sa_end(&r, what)))
        return rc;
    if (!seen_self)
        return ff_error(FF_EPOLICY, "%s: this site is missing from it", what);
    return FF_OK;
}

int ff_secagg_client_share(ff_secagg_client *c, const uint8_t *set, size_t len,
                           ff_secagg_buf *out)
{
    *out = (ff_secagg_buf){0};
    uint32_t *hx = NULL;
    uint8_t *seed_sh = NULL, *key_sh = NULL;
    uint8_t pt[SA_SHARE_PT_BYTES], key[K], aad[40], nonce[FF_CRYPTO_NONCE_BYTES] = {0};
    sa_writer w = {0};
    int rc = want_state(c, C_ADVERTISED, "share keys");
    if (rc)
        return rc;
    if ((rc = read_adv_set(c, set, len)))
        return fail_closed(c, rc);
    /* Share holders: this site (x = self + 1) then each advertised neighbour. */
    uint32_t holders = 1;
    for (uint32_t i = 0; i < c->deg; i++)
        holders += c->advertised[i];
    if (holders < c->p.t)
        return fail_closed(c, ff_error(FF_EPOLICY,
                                "share keys: only %u of the %u share holders advertised keys, "
                                "below the threshold t = %u",
                                holders, c->deg + 1, c->p.t));
    hx = malloc(holders * sizeof *hx);
    seed_sh = malloc((size_t)holders * S);
    key_sh = malloc((size_t)holders * S);
    if (!hx || !seed_sh || !key_sh) {
        rc = ff_error(FF_ENOMEM, "share keys: out of memory");
        goto out;
    }
    hx[0] = c->self + 1;
    for (uint32_t i = 0, h = 1; i < c->deg; i++)
        if (c->advertised[i])
            hx[h++] = c->nb[i] + 1;
    if ((rc = RAND_bytes(c->b, K) == 1 ? FF_OK : ff_error(FF_ECRYPTO, "RAND_bytes failed")) ||
        (rc = ff_shamir_split(c->b, c->p.t, hx, holders, seed_sh)) ||
        (rc = ff_shamir_split(c->s_sk, c->p.t, hx, holders, key_sh)))
        goto out;
    memcpy(c->own_seed_share, seed_sh, S);
    memcpy(c->own_key_share, key_sh, S);
    if ((rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_SHARES, c->p.round_id, c->self,
                           4 + (size_t)(holders - 1) * (4 + SA_SHARE_CT_BYTES))))
        goto out;
    sa_put_u32(&w, holders - 1);
    for (uint32_t i = 0, h = 1; i < c->deg; i++) {
        if (!c->advertised[i])
            continue;
        uint32_t peer = c->nb[i];
        memcpy(pt, &c->self, 4);
        memcpy(pt + 4, &peer, 4);
        memcpy(pt + 8, seed_sh + (size_t)h * S, S);
        memcpy(pt + 8 + S, key_sh + (size_t)h * S, S);
        h++;
        /* A fresh key per (round, sender, recipient) is used once, so a zero nonce is safe. */
        if ((rc = sa_share_key(c->tag, c->c_sk, c->peer_c_pk[i], c->self, peer, key)))
            goto out;
        sa_share_aad(c->tag, c->self, peer, aad);
        sa_put_u32(&w, peer);
        if ((rc = ff_crypto_aead_seal(w.p + w.len, key, nonce, aad, sizeof aad, pt,
                                      sizeof pt)))
            goto out;
        w.len += SA_SHARE_CT_BYTES;
    }
    c->state = C_SHARED;
out:
    OPENSSL_cleanse(pt, sizeof pt);
    OPENSSL_cleanse(key, sizeof key);
    if (seed_sh)
        OPENSSL_cleanse(seed_sh, (size_t)holders * S);
    if (key_sh)
        OPENSSL_cleanse(key_sh, (size_t)holders * S);
    free(hx);
    free(seed_sh);
    free(key_sh);
    if (rc) {
        ff_secagg_buf_free(out);
        return fail_closed(c, rc);
    }
    return FF_OK;
}

/* Opens every ciphertext addressed to this site; any failure is an attack or a fault. */
static int read_shares_in(ff_secagg_client *c, const uint8_t *msg, size_t len)
{
    const char *what = "shares";
    sa_reader r;
    uint32_t sender, count;
    uint8_t ct[SA_SHARE_CT_BYTES], pt[SA_SHARE_PT_BYTES], key[K], aad[40];
    uint8_t nonce[FF_CRYPTO_NONCE_BYTES] = {0};
    int rc;
    if ((rc = sa_msg_open(msg, len, FF_SECAGG_MSG_SHARES_IN, c->p.round_id, &r, &sender, what)))
        return rc;
    if (sender != FF_SECAGG_SERVER)
        return ff_error(FF_EPOLICY, "%s: sender %u is not the coordinator", what, sender);
    if ((rc = sa_get_u32(&r, &count, what)))
        return rc;
    if (count > c->deg)
        return ff_error(FF_EFORMAT, "%s: %u entries for %u neighbours", what, count, c->deg);
    for (uint32_t e = 0; e < count; e++) {
        uint32_t peer;
        if ((rc = sa_get_u32(&r, &peer, what)) || (rc = sa_get(&r, ct, sizeof ct, what)))
            goto out;
        int i = nb_index(c, peer);
        if (i < 0 || !c->advertised[i] || c->shared[i]) {
            rc = ff_error(FF_EPOLICY, "%s: entry %u from site %u, which is not an advertised "
                          "neighbour or repeats", what, e, peer);
            goto out;
        }
        sa_share_aad(c->tag, peer, c->self, aad);
        if ((rc = sa_share_key(c->tag, c->c_sk, c->peer_c_pk[i], peer, c->self, key)))
            goto out;
        if (ff_crypto_aead_open(pt, key, nonce, aad, sizeof aad, ct, sizeof ct)) {
            rc = ff_error(FF_ECRYPTO, "%s: ciphertext from site %u fails authentication "
                          "(tampered, or not for this round and site)", what, peer);
            goto out;
        }
        uint32_t ps, pr;
        memcpy(&ps, pt, 4);
        memcpy(&pr, pt + 4, 4);
        if (ps != peer || pr != c->self) {
            rc = ff_error(FF_ECRYPTO, "%s: share from site %u names %u -> %u", what, peer, ps,
                          pr);
            goto out;
        }
        memcpy(c->seed_share[i], pt + 8, S);
        memcpy(c->key_share[i], pt + 8 + S, S);
        c->shared[i] = 1;
    }
    rc = sa_end(&r, what);
out:
    OPENSSL_cleanse(pt, sizeof pt);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int ff_secagg_client_mask(ff_secagg_client *c, const uint8_t *shares_in, size_t len,
                          const uint32_t *input, ff_secagg_buf *out)
{
    *out = (ff_secagg_buf){0};
    uint8_t (*seeds)[K] = NULL;
    int8_t *signs = NULL;
    sa_writer w = {0};
    size_t n_seeds = 0;
    int rc = want_state(c, C_SHARED, "masked input");
    if (rc)
        return rc;
    if ((rc = read_shares_in(c, shares_in, len)))
        return fail_closed(c, rc);
    uint32_t holders = 1;
    for (uint32_t i = 0; i < c->deg; i++)
        holders += c->shared[i];
    if (holders < c->p.t)
        return fail_closed(c, ff_error(FF_EPOLICY,
                                "masked input: only %u share holders left (threshold t = %u)",
                                holders, c->p.t));
    seeds = malloc((size_t)holders * K);
    signs = malloc(holders);
    if (!seeds || !signs) {
        rc = ff_error(FF_ENOMEM, "masked input: out of memory");
        goto out;
    }
    /* y = x + PRG(b) + sum_j (+1 if self < j else -1) PRG(s_{self,j}). */
    memcpy(seeds[n_seeds], c->b, K);
    signs[n_seeds++] = 1;
    for (uint32_t i = 0; i < c->deg; i++) {
        if (!c->shared[i])
            continue;
        if ((rc = sa_mask_seed(c->tag, c->s_sk, c->peer_s_pk[i], c->self, c->nb[i],
                               seeds[n_seeds])))
            goto out;
        signs[n_seeds++] = c->self < c->nb[i] ? 1 : -1;
    }
    size_t body = (size_t)c->p.n_values * 4;
    if ((rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_MASKED, c->p.round_id, c->self, body)))
        goto out;
    uint32_t *lanes = (uint32_t *)(void *)(w.p + FF_SECAGG_HEADER_BYTES);
    memcpy(lanes, input, body);
    if ((rc = ff_crypto_mask_apply(lanes, c->p.n_values, (const uint8_t(*)[K])seeds, signs,
                                   n_seeds)))
        goto out;
    c->state = C_MASKED;
out:
    if (seeds)
        OPENSSL_cleanse(seeds, (size_t)holders * K);
    free(seeds);
    free(signs);
    if (rc) {
        ff_secagg_buf_free(out);
        return fail_closed(c, rc);
    }
    return FF_OK;
}

static int bit(const uint8_t *bm, uint32_t i)
{
    return (bm[i / 8] >> (i % 8)) & 1;
}

/* Survivors among this site and its neighbours. */
static uint32_t alive_near(const ff_secagg_client *c, const uint8_t *alive)
{
    uint32_t a = bit(alive, c->self);
    for (uint32_t i = 0; i < c->deg; i++)
        a += bit(alive, c->nb[i]);
    return a;
}

/* What a survivor set must satisfy in this site's view: no bits beyond the last site, this
 * site in it, each neighbour in it one whose shares arrived here (U3 within U2), at least t
 * survivors overall and among this site and its neighbours. */
static int check_u3(ff_secagg_client *c, const uint8_t *u3, size_t nb, const char *what)
{
    uint32_t n = c->p.n_sites;
    if (n % 8 && (u3[nb - 1] >> (n % 8)))
        return ff_error(FF_EFORMAT, "%s: bits set beyond site %u", what, n - 1);
    if (!bit(u3, c->self))
        return ff_error(FF_EPOLICY, "%s refused: this site's input is not listed as received",
                        what);
    for (uint32_t i = 0; i < c->deg; i++)
        if (bit(u3, c->nb[i]) && !c->shared[i])
            return ff_error(FF_EPOLICY, "%s refused: it lists site %u as a survivor, but that "
                            "site's shares never reached this site (U3 not within U2)",
                            what, c->nb[i]);
    uint32_t all = sa_popcount(u3, nb), near = alive_near(c, u3);
    if (all < c->p.t || near < c->p.t)
        return ff_error(FF_EPOLICY, "%s refused: it names %u survivors, %u among this site and "
                        "its %u neighbours, fewer than t = %u", what, all, near, c->deg,
                        c->p.t);
    return FF_OK;
}

int ff_secagg_client_check(ff_secagg_client *c, const uint8_t *req, size_t len,
                           ff_secagg_buf *out)
{
    *out = (ff_secagg_buf){0};
    const char *what = "consistency check";
    size_t nb = (c->p.n_sites + 7) / 8, ml = 0;
    uint8_t sig[FF_CRYPTO_SIG_BYTES], *m = NULL;
    sa_reader r;
    sa_writer w;
    uint32_t sender;
    int rc = want_state(c, C_MASKED, what);
    if (rc)
        return rc;
    if ((rc = sa_msg_open(req, len, FF_SECAGG_MSG_CHECK_REQ, c->p.round_id, &r, &sender, what)))
        goto out;
    if (sender != FF_SECAGG_SERVER) {
        rc = ff_error(FF_EPOLICY, "%s: sender %u is not the coordinator", what, sender);
        goto out;
    }
    if ((rc = sa_get(&r, c->u3, nb, what)) || (rc = sa_end(&r, what)) ||
        (rc = check_u3(c, c->u3, nb, what)))
        goto out;
    if (!(m = sa_u3_sig_msg(c->tag, c->u3, nb, &ml))) {
        rc = ff_error(FF_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    if ((rc = ff_crypto_ed25519_sign(c->sign_key, m, ml, sig)) ||
        (rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_CHECK_SIG, c->p.round_id, c->self,
                           sizeof sig)))
        goto out;
    sa_put(&w, sig, sizeof sig);
    c->state = C_CHECKED; /* this site has now committed to one U3 for the round */
out:
    free(m);
    if (rc) {
        ff_secagg_buf_free(out);
        return fail_closed(c, rc);
    }
    return FF_OK;
}

int ff_secagg_client_survivor(const ff_secagg_client *c, uint32_t i)
{
    if (!c || (c->state != C_CHECKED && c->state != C_DONE) || i >= c->p.n_sites)
        return -1;
    return bit(c->u3, i);
}

/* The signatures relayed with the unmask request: every one must verify over the U3 this
 * site signed, from distinct sites of U3 in increasing order; at least the quorum. */
static int check_signatures(ff_secagg_client *c, sa_reader *r, const char *what)
{
    uint32_t count, site, prev = 0, q = ff_secagg_check_quorum(&c->p);
    size_t nb = (c->p.n_sites + 7) / 8, ml;
    uint8_t sig[FF_CRYPTO_SIG_BYTES];
    int rc;
    if ((rc = sa_get_u32(r, &count, what)))
        return rc;
    if (count > c->p.n_sites)
        return ff_error(FF_EFORMAT, "%s: %u signatures for %u sites", what, count,
                        c->p.n_sites);
    uint8_t *m = sa_u3_sig_msg(c->tag, c->u3, nb, &ml);
    if (!m)
        return ff_error(FF_ENOMEM, "%s: out of memory", what);
    for (uint32_t e = 0; e < count; e++) {
        if ((rc = sa_get_u32(r, &site, what)) || (rc = sa_get(r, sig, sizeof sig, what)))
            goto out;
        if (site >= c->p.n_sites || (e > 0 && site <= prev)) {
            rc = ff_error(FF_EFORMAT, "%s: signature %u names site %u out of order or range "
                          "(repeated signers do not count twice)", what, e, site);
            goto out;
        }
        prev = site;
        if (!bit(c->u3, site)) {
            rc = ff_error(FF_EPOLICY, "%s: signature of site %u, which is not a survivor",
                          what, site);
            goto out;
        }
        if (ff_crypto_ed25519_verify(c->peer_keys[site], m, ml, sig)) {
            rc = ff_error(FF_ECRYPTO, "%s: the signature of site %u does not verify over the "
                          "survivor set this site signed (forged, another round's, or the "
                          "coordinator showed that site a different set)", what, site);
            goto out;
        }
    }
    if ((rc = sa_end(r, what)))
        goto out;
    if (count < q)
        rc = ff_error(FF_EPOLICY, "%s refused: %u valid signatures over the survivor set, "
                      "below the quorum %u", what, count, q);
out:
    free(m);
    return rc;
}

/* The safety rule: for no peer both shares, never this site as dropped, at least t survivors
 * among this site and its neighbours. */
static int check_request(ff_secagg_client *c, const uint8_t *alive, const uint8_t *dropped,
                         size_t nb)
{
    uint32_t n = c->p.n_sites;
    for (size_t i = 0; i < nb; i++)
        if (alive[i] & dropped[i]) {
            uint32_t j = (uint32_t)i * 8;
            while (!(bit(alive, j) && bit(dropped, j)))
                j++;
            return ff_error(FF_EPOLICY, "unmask request refused: it asks for both the "
                            "self-mask and the mask-key share of site %u", j);
        }
    if (n % 8 && ((alive[nb - 1] | dropped[nb - 1]) >> (n % 8)))
        return ff_error(FF_EFORMAT, "unmask request: bits set beyond site %u", n - 1);
    if (!bit(alive, c->self) || bit(dropped, c->self))
        return ff_error(FF_EPOLICY, "unmask request refused: this site's input is not listed "
                        "as received");
    uint32_t alive_nb = alive_near(c, alive);
    if (alive_nb < c->p.t)
        return ff_error(FF_EPOLICY, "unmask request refused: it names %u survivors among this "
                        "site and its %u neighbours, fewer than t = %u",
                        alive_nb, c->deg, c->p.t);
    return FF_OK;
}

int ff_secagg_client_unmask(ff_secagg_client *c, const uint8_t *req, size_t len,
                            ff_secagg_buf *out)
{
    *out = (ff_secagg_buf){0};
    const char *what = "unmask request";
    uint8_t *alive = NULL, *dropped = NULL;
    sa_reader r;
    sa_writer w = {0};
    uint32_t sender;
    size_t nb = (c->p.n_sites + 7) / 8;
    int rc = want_state(c, C_CHECKED, "unmask");
    if (rc)
        return rc;
    alive = malloc(nb);
    dropped = malloc(nb);
    if (!alive || !dropped) {
        rc = ff_error(FF_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    if ((rc = sa_msg_open(req, len, FF_SECAGG_MSG_UNMASK_REQ, c->p.round_id, &r, &sender,
                          what)))
        goto out;
    if (sender != FF_SECAGG_SERVER) {
        rc = ff_error(FF_EPOLICY, "%s: sender %u is not the coordinator", what, sender);
        goto out;
    }
    if ((rc = sa_get(&r, alive, nb, what)) || (rc = sa_get(&r, dropped, nb, what)))
        goto out;
    /* The survivor set is public, so a plain comparison is fine. */
    if (memcmp(alive, c->u3, nb) != 0) {
        rc = ff_error(FF_EPOLICY, "%s refused: its survivor set is not the one this site "
                      "signed in the consistency check", what);
        goto out;
    }
    if ((rc = check_signatures(c, &r, what)) || (rc = check_request(c, alive, dropped, nb)))
        goto out;
    uint32_t count = 1;
    for (uint32_t i = 0; i < c->deg; i++)
        count += c->shared[i] && (bit(alive, c->nb[i]) || bit(dropped, c->nb[i]));
    if ((rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_UNMASK_RESP, c->p.round_id, c->self,
                           4 + (size_t)count * (5 + S))))
        goto out;
    sa_put_u32(&w, count);
    sa_put_u32(&w, c->self);
    sa_put_u8(&w, SA_KIND_SEED);
    sa_put(&w, c->own_seed_share, S);
    for (uint32_t i = 0; i < c->deg; i++) {
        uint32_t j = c->nb[i];
        if (!c->shared[i] || !(bit(alive, j) || bit(dropped, j)))
            continue;
        int seed = bit(alive, j);
        sa_put_u32(&w, j);
        sa_put_u8(&w, seed ? SA_KIND_SEED : SA_KIND_KEY);
        sa_put(&w, seed ? c->seed_share[i] : c->key_share[i], S);
    }
    c->state = C_DONE;
    wipe(c); /* one answer per round: nothing left to reveal */
out:
    free(alive);
    free(dropped);
    if (rc) {
        ff_secagg_buf_free(out);
        return fail_closed(c, rc);
    }
    return FF_OK;
}
