/* Secure aggregation, the coordinator's side: collects each phase's messages, relays what
 * the sites need, and at the end rebuilds from the shares exactly the masks that remain in
 * the running sum: the self masks of the survivors and the pairwise masks between survivors
 * and sites that dropped after sharing. */
#include "secagg_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define S FF_SHAMIR_SHARE_BYTES
#define K FF_CRYPTO_KEY_BYTES

enum { S_ADVERTISE, S_SHARE, S_MASK, S_CHECK, S_UNMASK, S_DONE, S_FAILED };

struct ff_secagg_server {
    ff_secagg_params p;
    EVP_PKEY *const *site_keys;
    uint8_t tag[32];
    int state;
    uint32_t k;          /* effective degree */
    uint32_t *deg, *nb;  /* nb[i*k + slot], sorted */
    uint8_t *adv;        /* n x SA_ADV_BYTES */
    uint8_t *has_adv, *has_shares, *has_masked, *has_sig, *responded;
    uint8_t *sig;        /* n x 64: consistency-check signatures over U3 */
    uint8_t *u3_msg;     /* the bytes those signatures cover */
    size_t u3_len;
    uint8_t *ct;         /* n x k ciphertexts: ct[(sender*k + slot)] addressed to nb slot */
    uint8_t *has_ct;     /* n x k */
    uint32_t *acc;       /* running sum of masked inputs */
    /* Shares received for each site j: x coordinates and shares, up to k+1 of each kind. */
    uint32_t *n_sh;      /* n */
    uint32_t *sh_x;      /* n x (k+1) */
    uint8_t *sh;         /* n x (k+1) x S */
    uint32_t n_survivors;
};

static int slot_of(const ff_secagg_server *s, uint32_t site, uint32_t peer)
{
    const uint32_t *nb = s->nb + (size_t)site * s->k;
    for (uint32_t i = 0; i < s->deg[site]; i++)
        if (nb[i] == peer)
            return (int)i;
    return -1;
}

int ff_secagg_server_new(ff_secagg_server **out, const ff_secagg_params *p,
                         EVP_PKEY *const *site_keys)
{
    uint32_t *pos = NULL, *perm = NULL;
    *out = NULL;
    int rc = ff_secagg_params_check(p);
    if (rc)
        return rc;
    if (!site_keys)
        return ff_error(FF_EINVAL, "secagg server: site keys missing");
    ff_secagg_server *s = calloc(1, sizeof *s);
    if (!s)
        return ff_error(FF_ENOMEM, "secagg server: out of memory");
    size_t n = p->n_sites, k = ff_secagg_degree(p);
    s->p = *p;
    s->site_keys = site_keys;
    s->k = (uint32_t)k;
    sa_round_tag(p, s->tag);
    s->deg = calloc(n, 4);
    s->nb = calloc(n * k, 4);
    s->adv = calloc(n, SA_ADV_BYTES);
    s->has_adv = calloc(n, 1);
    s->has_shares = calloc(n, 1);
    s->has_masked = calloc(n, 1);
    s->has_sig = calloc(n, 1);
    s->sig = calloc(n, FF_CRYPTO_SIG_BYTES);
    s->responded = calloc(n, 1);
    s->ct = calloc(n * k, SA_SHARE_CT_BYTES);
    s->has_ct = calloc(n * k, 1);
    s->acc = ff_calloc(p->n_values, 4);
    s->n_sh = calloc(n, 4);
    s->sh_x = calloc(n * (k + 1), 4);
    s->sh = calloc(n * (k + 1), S);
    if (!s->deg || !s->nb || !s->adv || !s->has_adv || !s->has_shares || !s->has_masked ||
        !s->has_sig || !s->sig || !s->responded || !s->ct || !s->has_ct || !s->acc || !s->n_sh || !s->sh_x || !s->sh) {
        rc = ff_error(FF_ENOMEM, "secagg server: out of memory for %zu sites", n);
        goto out;
    }
    if ((rc = sa_graph_build(p, &pos, &perm)))
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        sa_graph_nbrs(p, pos, perm, i, s->nb + (size_t)i * k, &s->deg[i]);
        if (!site_keys[i]) {
            rc = ff_error(FF_EINVAL, "secagg server: no public key for site %u", i);
            goto out;
        }
    }
    *out = s;
    s = NULL;
out:
    free(pos);
    free(perm);
    ff_secagg_server_free(s);
    return rc;
}

void ff_secagg_server_free(ff_secagg_server *s)
{
    if (!s)
        return;
    if (s->sh)
        OPENSSL_cleanse(s->sh, (size_t)s->p.n_sites * (s->k + 1) * S);
    free(s->deg);
    free(s->nb);
    free(s->adv);
    free(s->has_adv);
    free(s->has_shares);
    free(s->has_masked);
    free(s->has_sig);
    free(s->sig);
    free(s->u3_msg);
    free(s->responded);
    free(s->ct);
    free(s->has_ct);
    ff_free(s->acc);
    free(s->n_sh);
    free(s->sh_x);
    free(s->sh);
    free(s);
}

static int add_advertise(ff_secagg_server *s, uint32_t from, sa_reader *r)
{
    const char *what = "advertisement";
    uint8_t *a = s->adv + (size_t)from * SA_ADV_BYTES, m[SA_SIG_MSG_BYTES], tmp[SA_ADV_BYTES];
    int rc;
    if ((rc = sa_get(r, tmp, SA_ADV_BYTES, what)) || (rc = sa_end(r, what)))
        return rc;
    sa_adv_sig_msg(s->tag, from, tmp, tmp + K, m);
    if (ff_crypto_ed25519_verify(s->site_keys[from], m, sizeof m, tmp + 2 * K))
        return ff_error(FF_ECRYPTO, "%s of site %u does not verify under its certificate key",
                        what, from);
    memcpy(a, tmp, SA_ADV_BYTES);
    s->has_adv[from] = 1;
    return FF_OK;
}

static int add_shares(ff_secagg_server *s, uint32_t from, sa_reader *r)
{
    const char *what = "shares";
    uint32_t count;
    int rc;
    uint8_t *seen = calloc(s->k ? s->k : 1, 1);
    if (!seen)
        return ff_error(FF_ENOMEM, "%s: out of memory", what);
    if ((rc = sa_get_u32(r, &count, what)))
        goto out;
    if (count > s->deg[from]) {
        rc = ff_error(FF_EFORMAT, "%s of site %u: %u entries for %u neighbours", what, from,
                      count, s->deg[from]);
        goto out;
    }
    for (uint32_t e = 0; e < count; e++) {
        uint32_t to;
        if ((rc = sa_get_u32(r, &to, what)))
            goto out;
        int slot = slot_of(s, from, to);
        if (slot < 0 || seen[slot] || !s->has_adv[to]) {
            rc = ff_error(FF_EPOLICY, "%s of site %u: entry %u for site %u, not an advertised "
                          "neighbour or repeated", what, from, e, to);
            goto out;
        }
        seen[slot] = 1;
        if ((rc = sa_get(r, s->ct + ((size_t)from * s->k + slot) * SA_SHARE_CT_BYTES,
                         SA_SHARE_CT_BYTES, what)))
            goto out;
    }
    if ((rc = sa_end(r, what)))
        goto out;
    memcpy(s->has_ct + (size_t)from * s->k, seen, s->deg[from]);
    s->has_shares[from] = 1;
out:
    free(seen);
    return rc;
}

static int add_masked(ff_secagg_server *s, uint32_t from, sa_reader *r)
{
    size_t m = s->p.n_values;
    if (r->len != m * 4)
        return ff_error(FF_EFORMAT, "masked input of site %u: %zu bytes, expected %zu", from,
                        r->len, m * 4);
    const uint8_t *src = r->p;
    uint32_t *acc = s->acc;
    for (size_t i = 0; i < m; i++) {
        uint32_t v;
        memcpy(&v, src + 4 * i, 4);
        acc[i] += v;
    }
    s->has_masked[from] = 1;
    s->n_survivors++;
    return FF_OK;
}

static int add_check_sig(ff_secagg_server *s, uint32_t from, sa_reader *r)
{
    const char *what = "consistency-check signature";
    uint8_t sig[FF_CRYPTO_SIG_BYTES];
    int rc;
    if ((rc = sa_get(r, sig, sizeof sig, what)) || (rc = sa_end(r, what)))
        return rc;
    if (ff_crypto_ed25519_verify(s->site_keys[from], s->u3_msg, s->u3_len, sig))
        return ff_error(FF_ECRYPTO, "%s of site %u does not verify over this round's survivor "
                        "set", what, from);
    memcpy(s->sig + (size_t)from * sizeof sig, sig, sizeof sig);
    s->has_sig[from] = 1;
    return FF_OK;
}

static int add_unmask(ff_secagg_server *s, uint32_t from, sa_reader *r)
{
    const char *what = "unmask response";
    uint32_t count;
    int rc;
    if (!s->has_masked[from])
        return ff_error(FF_EPOLICY, "%s from site %u, which was not asked", what, from);
    if ((rc = sa_get_u32(r, &count, what)))
        return rc;
    if (count > s->deg[from] + 1)
        return ff_error(FF_EFORMAT, "%s of site %u: %u entries", what, from, count);
    /* Validate the whole message before keeping any share. */
    size_t start = r->off;
    for (int pass = 0; pass < 2; pass++) {
        r->off = start;
        for (uint32_t e = 0; e < count; e++) {
            uint32_t peer;
            uint8_t kind;
            if ((rc = sa_get_u32(r, &peer, what)) || (rc = sa_get_u8(r, &kind, what)))
                return rc;
            int ok = peer < s->p.n_sites && (peer == from || slot_of(s, from, peer) >= 0);
            ok = ok && s->has_shares[peer] &&
                 kind == (s->has_masked[peer] ? SA_KIND_SEED : SA_KIND_KEY);
            if (!ok)
                return ff_error(FF_EPOLICY, "%s of site %u: unexpected share of site %u",
                                what, from, peer);
            if (pass == 1) {
                size_t at = (size_t)peer * (s->k + 1) + s->n_sh[peer]++;
                s->sh_x[at] = from + 1;
                if ((rc = sa_get(r, s->sh + at * S, S, what)))
                    return rc;
            } else {
                r->off += S;
            }
        }
        if (pass == 0 && (rc = sa_end(r, what)))
            return rc;
    }
    s->responded[from] = 1;
    return FF_OK;
}

int ff_secagg_server_add(ff_secagg_server *s, const uint8_t *msg, size_t len)
{
    static const ff_secagg_msg_type expect[] = {FF_SECAGG_MSG_ADVERTISE, FF_SECAGG_MSG_SHARES,
                                                FF_SECAGG_MSG_MASKED, FF_SECAGG_MSG_CHECK_SIG,
                                                FF_SECAGG_MSG_UNMASK_RESP};
    sa_reader r;
    uint32_t from;
    if (s->state > S_UNMASK)
        return ff_error(FF_ESTATE, "secagg server: round is closed");
    int rc = sa_msg_open(msg, len, expect[s->state], s->p.round_id, &r, &from, "secagg server");
    if (rc)
        return rc;
    if (from >= s->p.n_sites)
        return ff_error(FF_EPOLICY, "secagg server: sender %u is not a site of this round",
                        from);
    const uint8_t *done[] = {s->has_adv, s->has_shares, s->has_masked, s->has_sig,
                             s->responded};
    const uint8_t *prev[] = {NULL, s->has_adv, s->has_shares, s->has_masked, s->has_sig};
    if (done[s->state][from])
        return ff_error(FF_EPOLICY, "secagg server: duplicate message from site %u", from);
    if (prev[s->state] && !prev[s->state][from])
        return ff_error(FF_EPOLICY, "secagg server: site %u skipped the previous phase", from);
    switch (s->state) {
    case S_ADVERTISE: return add_advertise(s, from, &r);
    case S_SHARE: return add_shares(s, from, &r);
    case S_MASK: return add_masked(s, from, &r);
    case S_CHECK: return add_check_sig(s, from, &r);
    default: return add_unmask(s, from, &r);
    }
}

int ff_secagg_server_advertise_set(ff_secagg_server *s, ff_secagg_buf *out)
{
    sa_writer w;
    uint32_t count = 0;
    *out = (ff_secagg_buf){0};
    if (s->state != S_ADVERTISE)
        return ff_error(FF_ESTATE, "secagg server: advertisement phase already closed");
    for (uint32_t i = 0; i < s->p.n_sites; i++)
        count += s->has_adv[i];
    if (count < s->p.t)
        return ff_error(FF_EPOLICY, "secagg server: %u sites advertised keys, below t = %u",
                        count, s->p.t);
    int rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_ADVERTISE_SET, s->p.round_id,
                          FF_SECAGG_SERVER, 4 + (size_t)count * (4 + SA_ADV_BYTES));
    if (rc)
        return rc;
    sa_put_u32(&w, count);
    for (uint32_t i = 0; i < s->p.n_sites; i++)
        if (s->has_adv[i]) {
            sa_put_u32(&w, i);
            sa_put(&w, s->adv + (size_t)i * SA_ADV_BYTES, SA_ADV_BYTES);
        }
    s->state = S_SHARE;
    return FF_OK;
}

int ff_secagg_server_shares_for(ff_secagg_server *s, uint32_t site, ff_secagg_buf *out)
{
    sa_writer w;
    uint32_t count = 0;
    *out = (ff_secagg_buf){0};
    if (site >= s->p.n_sites)
        return ff_error(FF_EINVAL, "secagg server: site %u out of range", site);
    if (s->state == S_SHARE)
        s->state = S_MASK;
    if (s->state != S_MASK)
        return ff_error(FF_ESTATE, "secagg server: shares can only be relayed before inputs");
    const uint32_t *nb = s->nb + (size_t)site * s->k;
    for (uint32_t i = 0; i < s->deg[site]; i++) {
        int slot = slot_of(s, nb[i], site);
        count += s->has_shares[nb[i]] && s->has_ct[(size_t)nb[i] * s->k + slot];
    }
    int rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_SHARES_IN, s->p.round_id, FF_SECAGG_SERVER,
                          4 + (size_t)count * (4 + SA_SHARE_CT_BYTES));
    if (rc)
        return rc;
    sa_put_u32(&w, count);
    for (uint32_t i = 0; i < s->deg[site]; i++) {
        uint32_t j = nb[i];
        size_t at = (size_t)j * s->k + (size_t)slot_of(s, j, site);
        if (s->has_shares[j] && s->has_ct[at]) {
            sa_put_u32(&w, j);
            sa_put(&w, s->ct + at * SA_SHARE_CT_BYTES, SA_SHARE_CT_BYTES);
        }
    }
    return FF_OK;
}

int ff_secagg_server_check_request(ff_secagg_server *s, ff_secagg_buf *out)
{
    sa_writer w;
    size_t nb = (s->p.n_sites + 7) / 8;
    *out = (ff_secagg_buf){0};
    if (s->state == S_SHARE)
        s->state = S_MASK; /* nobody asked for shares: every site dropped before masking */
    if (s->state != S_MASK)
        return ff_error(FF_ESTATE, "secagg server: consistency check already sent");
    if (s->n_survivors < s->p.t)
        return ff_error(FF_EPOLICY, "secagg server: %u masked inputs, below t = %u; round "
                        "failed", s->n_survivors, s->p.t);
    int rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_CHECK_REQ, s->p.round_id, FF_SECAGG_SERVER, nb);
    if (rc)
        return rc;
    uint8_t *u3 = w.p + w.len;
    memset(u3, 0, nb);
    for (uint32_t i = 0; i < s->p.n_sites; i++)
        if (s->has_masked[i])
            u3[i / 8] |= (uint8_t)(1u << (i % 8));
    w.len += nb;
    if (!(s->u3_msg = sa_u3_sig_msg(s->tag, u3, nb, &s->u3_len))) {
        ff_secagg_buf_free(out);
        return ff_error(FF_ENOMEM, "secagg server: out of memory");
    }
    s->state = S_CHECK;
    return FF_OK;
}

int ff_secagg_server_unmask_request(ff_secagg_server *s, ff_secagg_buf *out)
{
    sa_writer w;
    size_t nb = (s->p.n_sites + 7) / 8;
    uint32_t q = ff_secagg_check_quorum(&s->p), n_sig = 0;
    *out = (ff_secagg_buf){0};
    if (s->state != S_CHECK)
        return ff_error(FF_ESTATE, "secagg server: the unmask request follows the consistency "
                        "check, once (phase %d)", s->state);
    for (uint32_t i = 0; i < s->p.n_sites; i++)
        n_sig += s->has_sig[i];
    if (n_sig < q)
        return ff_error(FF_EPOLICY, "secagg server: %u sites signed the survivor set, below the "
                        "consistency quorum %u; round failed", n_sig, q);
    int rc = sa_msg_begin(out, &w, FF_SECAGG_MSG_UNMASK_REQ, s->p.round_id, FF_SECAGG_SERVER,
                          2 * nb + 4 + (size_t)n_sig * (4 + FF_CRYPTO_SIG_BYTES));
    if (rc)
        return rc;
    memset(w.p + w.len, 0, 2 * nb);
    for (uint32_t i = 0; i < s->p.n_sites; i++) {
        if (s->has_masked[i])
            w.p[w.len + i / 8] |= (uint8_t)(1u << (i % 8));
        else if (s->has_shares[i])
            w.p[w.len + nb + i / 8] |= (uint8_t)(1u << (i % 8));
    }
    w.len += 2 * nb;
    sa_put_u32(&w, n_sig);
    for (uint32_t i = 0; i < s->p.n_sites; i++)
        if (s->has_sig[i]) {
            sa_put_u32(&w, i);
            sa_put(&w, s->sig + (size_t)i * FF_CRYPTO_SIG_BYTES, FF_CRYPTO_SIG_BYTES);
        }
    s->state = S_UNMASK;
    return FF_OK;
}

/* Rebuilds site j's secret from its first t shares. */
static int recover(ff_secagg_server *s, uint32_t j, uint8_t secret[K], const char *kind)
{
    if (s->n_sh[j] < s->p.t)
        return ff_error(FF_ECRYPTO, "secagg server: only %u shares of the %s of site %u, "
                        "threshold t = %u: the round fails closed", s->n_sh[j], kind, j,
                        s->p.t);
    size_t at = (size_t)j * (s->k + 1);
    return ff_shamir_recover(secret, s->sh_x + at, s->sh + at * S, s->p.t);
}

int ff_secagg_server_finish(ff_secagg_server *s, uint32_t *sum)
{
    uint8_t (*seeds)[K] = NULL;
    int8_t *signs = NULL;
    size_t n_seeds = 0, cap = 0;
    uint8_t secret[K], pk[K];
    int rc = FF_OK;
    uint32_t n = s->p.n_sites;
    if (s->state != S_UNMASK)
        return ff_error(FF_ESTATE, "secagg server: finish before the unmask phase");
    for (uint32_t j = 0; j < n; j++)
        cap += s->has_masked[j] ? 1 : s->has_shares[j] ? s->deg[j] : 0;
    seeds = malloc((cap ? cap : 1) * K);
    signs = malloc(cap ? cap : 1);
    if (!seeds || !signs) {
        rc = ff_error(FF_ENOMEM, "secagg server: out of memory");
        goto out;
    }
    for (uint32_t j = 0; j < n; j++) {
        if (s->has_masked[j]) { /* survivor: remove its self mask */
            if ((rc = recover(s, j, seeds[n_seeds], "self-mask seed")))
                goto out;
            signs[n_seeds++] = -1;
        } else if (s->has_shares[j]) {
            /* Dropped after sharing: its neighbours that received its shares masked with
             * it; rebuild its mask key and remove those pairwise masks. */
            if ((rc = recover(s, j, secret, "mask key")) ||
                (rc = ff_crypto_x25519_public(pk, secret)))
                goto out;
            const uint8_t *adv = s->adv + (size_t)j * SA_ADV_BYTES;
            if (!ff_ct_equal(pk, adv + K, K)) {
                rc = ff_error(FF_ECRYPTO, "secagg server: rebuilt mask key of site %u does "
                              "not match its advertised key (bad shares)", j);
                goto out;
            }
            const uint32_t *nb = s->nb + (size_t)j * s->k;
            for (uint32_t e = 0; e < s->deg[j]; e++) {
                uint32_t i = nb[e];
                if (!s->has_masked[i] || !s->has_ct[(size_t)j * s->k + e])
                    continue;
                if ((rc = sa_mask_seed(s->tag, secret, s->adv + (size_t)i * SA_ADV_BYTES + K,
                                       i, j, seeds[n_seeds])))
                    goto out;
                /* Site i added +PRG if i < j, -PRG otherwise: undo it. */
                signs[n_seeds++] = i < j ? -1 : 1;
            }
        }
    }
    if ((rc = ff_crypto_mask_apply(s->acc, s->p.n_values, (const uint8_t(*)[K])seeds, signs,
                                   n_seeds)))
        goto out;
    memcpy(sum, s->acc, (size_t)s->p.n_values * 4);
    s->state = S_DONE;
out:
    /* The shares have served their one purpose; a failed round keeps nothing either. */
    OPENSSL_cleanse(s->sh, (size_t)n * (s->k + 1) * S);
    OPENSSL_cleanse(secret, sizeof secret);
    if (seeds)
        OPENSSL_cleanse(seeds, (cap ? cap : 1) * K);
    free(seeds);
    free(signs);
    if (rc && s->state != S_DONE)
        s->state = S_FAILED;
    return rc;
}

uint32_t ff_secagg_server_n_survivors(const ff_secagg_server *s)
{
    return s->n_survivors;
}

int ff_secagg_server_is_survivor(const ff_secagg_server *s, uint32_t site)
{
    return site < s->p.n_sites && s->has_masked[site];
}

int ff_secagg_server_accepted(const ff_secagg_server *s, ff_secagg_msg_type type, uint32_t site)
{
    if (site >= s->p.n_sites)
        return 0;
    switch (type) {
    case FF_SECAGG_MSG_ADVERTISE: return s->has_adv[site];
    case FF_SECAGG_MSG_SHARES: return s->has_shares[site];
    case FF_SECAGG_MSG_MASKED: return s->has_masked[site];
    case FF_SECAGG_MSG_CHECK_SIG: return s->has_sig[site];
    case FF_SECAGG_MSG_UNMASK_RESP: return s->responded[site];
    default: return 0;
    }
}
