/* In-process secure-aggregation round for the tests: n sites with fresh Ed25519 site keys,
 * a coordinator, and per-site drop-out phases. Each step's outcome is recorded so the tests
 * can predict, independently of the server's bookkeeping, whether the round must succeed. */
#ifndef SA_SIM_H
#define SA_SIM_H

#include <stdlib.h>
#include <string.h>

#include "ff/crypto.h"

typedef struct {
    ff_secagg_params p;
    EVP_PKEY **sk, **pk;
    ff_secagg_client **c;
    ff_secagg_server *s;
    uint32_t **in;      /* encoded inputs */
    int *drop;          /* 0 = stays; 1..5 = silent from that phase on (advertise, share,
                           mask, consistency check, unmask) */
    /* What each site managed: advertised, shared, masked, signed U3, answered (ok flags). */
    uint8_t *adv, *shr, *msk, *sig, *ans;
} sa_sim;

static inline EVP_PKEY *sim_ed25519_new(EVP_PKEY **pub)
{
    EVP_PKEY *k = NULL;
    uint8_t raw[32];
    size_t len = 32;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &k) != 1)
        fail_msg("ed25519 keygen");
    EVP_PKEY_CTX_free(ctx);
    if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1)
        fail_msg("ed25519 public");
    *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
    return k;
}

static inline void sim_init(sa_sim *m, const ff_secagg_params *p, ff_rng *rng)
{
    uint32_t n = p->n_sites;
    memset(m, 0, sizeof *m);
    m->p = *p;
    m->sk = calloc(n, sizeof *m->sk);
    m->pk = calloc(n, sizeof *m->pk);
    m->c = calloc(n, sizeof *m->c);
    m->in = calloc(n, sizeof *m->in);
    m->drop = calloc(n, sizeof *m->drop);
    m->adv = calloc(n, 1);
    m->shr = calloc(n, 1);
    m->msk = calloc(n, 1);
    m->sig = calloc(n, 1);
    m->ans = calloc(n, 1);
    for (uint32_t i = 0; i < n; i++) {
        m->sk[i] = sim_ed25519_new(&m->pk[i]);
        m->in[i] = malloc(p->n_values * 4);
        for (uint64_t v = 0; v < p->n_values; v++)
            m->in[i][v] = ff_rng_u32(rng);
    }
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(ff_secagg_client_new(&m->c[i], p, i, m->sk[i], m->pk), FF_OK);
    assert_int_equal(ff_secagg_server_new(&m->s, p, m->pk), FF_OK);
}

static inline void sim_free(sa_sim *m)
{
    for (uint32_t i = 0; i < m->p.n_sites; i++) {
        ff_secagg_client_free(m->c[i]);
        EVP_PKEY_free(m->sk[i]);
        EVP_PKEY_free(m->pk[i]);
        free(m->in[i]);
    }
    ff_secagg_server_free(m->s);
    free(m->sk);
    free(m->pk);
    free(m->c);
    free(m->in);
    free(m->drop);
    free(m->adv);
    free(m->shr);
    free(m->msk);
    free(m->sig);
    free(m->ans);
}

static inline int sim_alive(const sa_sim *m, uint32_t i, int phase)
{
    return m->drop[i] == 0 || m->drop[i] > phase;
}

/* Runs the consistency check: each site that masked and is still there signs the survivor
 * set. Returns the server status of check_request. */
static inline int sim_run_check(sa_sim *m)
{
    ff_secagg_buf chk, b;
    int rc = ff_secagg_server_check_request(m->s, &chk);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < m->p.n_sites; i++)
        if (m->msk[i] && sim_alive(m, i, 4)) {
            if (ff_secagg_client_check(m->c[i], chk.data, chk.len, &b) != FF_OK)
                continue; /* too few survivors near it: this site stops (fails closed) */
            assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
            ff_secagg_buf_free(&b);
            m->sig[i] = 1;
        }
    ff_secagg_buf_free(&chk);
    return FF_OK;
}

/* Runs phases 1-4 and returns the server status of unmask_request (req filled on success). */
static inline int sim_run_to_request(sa_sim *m, ff_secagg_buf *req)
{
    ff_secagg_buf b, set;
    uint32_t n = m->p.n_sites;
    for (uint32_t i = 0; i < n; i++)
        if (sim_alive(m, i, 1)) {
            assert_int_equal(ff_secagg_client_advertise(m->c[i], &b), FF_OK);
            assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
            ff_secagg_buf_free(&b);
            m->adv[i] = 1;
        }
    int rc = ff_secagg_server_advertise_set(m->s, &set);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++)
        if (m->adv[i] && sim_alive(m, i, 2)) {
            if (ff_secagg_client_share(m->c[i], set.data, set.len, &b) != FF_OK)
                continue; /* too few holders: this site stops (fails closed) */
            assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
            ff_secagg_buf_free(&b);
            m->shr[i] = 1;
        }
    ff_secagg_buf_free(&set);
    for (uint32_t i = 0; i < n; i++)
        if (m->shr[i] && sim_alive(m, i, 3)) {
            ff_secagg_buf in;
            assert_int_equal(ff_secagg_server_shares_for(m->s, i, &in), FF_OK);
            rc = ff_secagg_client_mask(m->c[i], in.data, in.len, m->in[i], &b);
            ff_secagg_buf_free(&in);
            if (rc)
                continue;
            assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
            ff_secagg_buf_free(&b);
            m->msk[i] = 1;
        }
    if ((rc = sim_run_check(m)))
        return rc;
    return ff_secagg_server_unmask_request(m->s, req);
}

static inline void sim_answer(sa_sim *m, const ff_secagg_buf *req)
{
    for (uint32_t i = 0; i < m->p.n_sites; i++)
        if (m->sig[i] && sim_alive(m, i, 5)) {
            ff_secagg_buf b;
            if (ff_secagg_client_unmask(m->c[i], req->data, req->len, &b) != FF_OK)
                continue;
            assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
            ff_secagg_buf_free(&b);
            m->ans[i] = 1;
        }
}

/* The oracle: a site j whose masks remain in the sum (masked, or shared then dropped) needs
 * t answers from its share holders: itself (if masked) and each neighbour that advertised
 * (so j shared to it) and answered. */
static inline int sim_should_succeed(const sa_sim *m)
{
    uint32_t n = m->p.n_sites, nb[FF_SECAGG_MAX_SITES], deg;
    for (uint32_t j = 0; j < n; j++) {
        if (!m->shr[j])
            continue;
        assert_int_equal(ff_secagg_neighbours(&m->p, j, nb, &deg), FF_OK);
        uint32_t have = m->msk[j] && m->ans[j];
        for (uint32_t e = 0; e < deg; e++)
            have += m->ans[nb[e]] && m->adv[nb[e]];
        if (have < m->p.t)
            return 0;
    }
    return 1;
}

/* Plain sum mod 2^32 of the inputs of the sites that masked. */
static inline void sim_plain_sum(const sa_sim *m, uint32_t *sum)
{
    memset(sum, 0, m->p.n_values * 4);
    for (uint32_t i = 0; i < m->p.n_sites; i++)
        if (m->msk[i])
            for (uint64_t v = 0; v < m->p.n_values; v++)
                sum[v] += m->in[i][v];
}

#endif
