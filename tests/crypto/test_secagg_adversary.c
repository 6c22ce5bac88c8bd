/* A dishonest coordinator: asks for both shares of one site, names too few survivors, asks
 * twice, substitutes advertised keys, replays another round's messages, tampers with or
 * redirects share ciphertexts. Each is detected and refused with a clear error, and the
 * site then refuses everything else in the round (fail closed). Also malformed input to the
 * coordinator. */
#include "testutil.h"

#include "sa_sim.h"

#define N 6
#define M 16

typedef struct {
    sa_sim m;
    ff_secagg_buf set, in[N], chk, req;
} fixture;

static ff_rng g_rng;

/* A round of 6 sites (k = 5, t = 4) run to the point named: 1 = advertise set built,
 * 2 = SHARES_IN built for every site, 3 = consistency-check request built, 4 = every
 * survivor signed it and the unmask request is built. */
static void run_to(fixture *f, int stage, uint64_t round_id)
{
    ff_secagg_params p;
    ff_secagg_params_default(&p, round_id, N, M);
    memset(f, 0, sizeof *f);
    sim_init(&f->m, &p, &g_rng);
    ff_secagg_buf b;
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_client_advertise(f->m.c[i], &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(f->m.s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    assert_int_equal(ff_secagg_server_advertise_set(f->m.s, &f->set), FF_OK);
    if (stage < 2)
        return;
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_client_share(f->m.c[i], f->set.data, f->set.len, &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(f->m.s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(ff_secagg_server_shares_for(f->m.s, i, &f->in[i]), FF_OK);
    if (stage < 3)
        return;
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_client_mask(f->m.c[i], f->in[i].data, f->in[i].len,
                                               f->m.in[i], &b), FF_OK);
        if (i != 5) /* site 5's input "does not arrive": it is a dropped site */
            assert_int_equal(ff_secagg_server_add(f->m.s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    assert_int_equal(ff_secagg_server_check_request(f->m.s, &f->chk), FF_OK);
    if (stage < 4)
        return;
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(ff_secagg_client_check(f->m.c[i], f->chk.data, f->chk.len, &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(f->m.s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    assert_int_equal(ff_secagg_server_unmask_request(f->m.s, &f->req), FF_OK);
}

static void done(fixture *f)
{
    ff_secagg_buf_free(&f->set);
    ff_secagg_buf_free(&f->chk);
    ff_secagg_buf_free(&f->req);
    for (int i = 0; i < N; i++)
        ff_secagg_buf_free(&f->in[i]);
    sim_free(&f->m);
}

static void set_bit(uint8_t *msg, int which, uint32_t site, int on)
{
    uint8_t *bm = msg + FF_SECAGG_HEADER_BYTES + which * ((N + 7) / 8);
    if (on)
        bm[site / 8] |= (uint8_t)(1u << (site % 8));
    else
        bm[site / 8] &= (uint8_t)~(1u << (site % 8));
}

/* Every later phase is refused once a site has refused the coordinator. */
static void assert_site_closed(fixture *f, uint32_t i)
{
    ff_secagg_buf b;
    assert_int_equal(ff_secagg_client_check(f->m.c[i], f->chk.data, f->chk.len, &b), FF_ESTATE);
    ft_assert_error_has("already failed");
    assert_int_equal(ff_secagg_client_unmask(f->m.c[i], f->req.data, f->req.len, &b), FF_ESTATE);
    ft_assert_error_has("already failed");
    assert_null(b.data);
}

static void test_refuses_both_shares(void **state)
{
    (void)state;
    fixture f;
    run_to(&f, 4, 10);
    ff_secagg_buf b = {0};
    /* Site 2 named both survivor (seed share) and dropped (key share). */
    set_bit(f.req.data, 1, 2, 1);
    assert_int_equal(ff_secagg_client_unmask(f.m.c[0], f.req.data, f.req.len, &b), FF_EPOLICY);
    ft_assert_error_has("both the self-mask and the mask-key share of site 2");
    assert_null(b.data);
    set_bit(f.req.data, 1, 2, 0); /* the honest request afterwards: still refused */
    assert_site_closed(&f, 0);
    /* A site that answered once refuses a second, different request. */
    assert_int_equal(ff_secagg_client_unmask(f.m.c[1], f.req.data, f.req.len, &b), FF_OK);
    ff_secagg_buf_free(&b);
    set_bit(f.req.data, 0, 3, 0);
    set_bit(f.req.data, 1, 3, 1); /* now claims 3 dropped, to get its mask-key share */
    assert_int_equal(ff_secagg_client_unmask(f.m.c[1], f.req.data, f.req.len, &b), FF_ESTATE);
    ft_assert_error_has("unmask refused");
    done(&f);
}

static void test_refuses_too_few_survivors(void **state)
{
    (void)state;
    fixture f;
    run_to(&f, 3, 11);
    ff_secagg_buf b;
    for (uint32_t j = 3; j < 5; j++) /* only sites 0, 1, 2 alive: 3 < t = 4 */
        set_bit(f.chk.data, 0, j, 0);
    assert_int_equal(ff_secagg_client_check(f.m.c[0], f.chk.data, f.chk.len, &b), FF_EPOLICY);
    ft_assert_error_has("fewer than t = 4");
    assert_null(b.data);
    assert_site_closed(&f, 0);
    /* Naming the site itself as dropped is refused too. */
    done(&f);
    run_to(&f, 3, 12);
    set_bit(f.chk.data, 0, 1, 0);
    assert_int_equal(ff_secagg_client_check(f.m.c[1], f.chk.data, f.chk.len, &b), FF_EPOLICY);
    ft_assert_error_has("not listed as received");
    /* Bits beyond the last site (site 1 restored). */
    set_bit(f.chk.data, 0, 1, 1);
    set_bit(f.chk.data, 0, 7, 1);
    assert_int_equal(ff_secagg_client_check(f.m.c[2], f.chk.data, f.chk.len, &b), FF_EFORMAT);
    done(&f);
    /* The unmask request cannot change the survivor set the sites signed. */
    run_to(&f, 4, 13);
    set_bit(f.req.data, 0, 4, 0);
    set_bit(f.req.data, 1, 4, 1); /* "4 dropped": its mask-key share */
    assert_int_equal(ff_secagg_client_unmask(f.m.c[0], f.req.data, f.req.len, &b), FF_EPOLICY);
    ft_assert_error_has("not the one this site signed");
    assert_site_closed(&f, 0);
    done(&f);
}

static void test_refuses_substituted_keys(void **state)
{
    (void)state;
    fixture f;
    ff_secagg_buf b;
    /* Entry of site 3 in the set: header, count, then 4 + 128 bytes per entry. */
    const size_t entry = 4 + 2 * FF_CRYPTO_KEY_BYTES + FF_CRYPTO_SIG_BYTES;
    const size_t at3 = FF_SECAGG_HEADER_BYTES + 4 + 3 * entry + 4;
    /* The coordinator puts its own share-encryption key in place of site 3's. */
    run_to(&f, 1, 20);
    uint8_t sk[32], pk[32];
    assert_int_equal(ff_crypto_x25519_keygen(sk, pk), FF_OK);
    memcpy(f.set.data + at3, pk, 32);
    assert_int_equal(ff_secagg_client_share(f.m.c[0], f.set.data, f.set.len, &b), FF_ECRYPTO);
    ft_assert_error_has("keys of site 3 do not verify");
    assert_null(b.data);
    /* ... or its mask key. */
    assert_int_equal(ff_secagg_client_share(f.m.c[1], f.set.data, f.set.len, &b), FF_ECRYPTO);
    done(&f);
    run_to(&f, 1, 21);
    memcpy(f.set.data + at3 + 32, pk, 32);
    assert_int_equal(ff_secagg_client_share(f.m.c[0], f.set.data, f.set.len, &b), FF_ECRYPTO);
    /* Site 3's own entry replaced: site 3 notices its keys changed. */
    assert_int_equal(ff_secagg_client_share(f.m.c[3], f.set.data, f.set.len, &b), FF_ECRYPTO);
    ft_assert_error_has("our own keys were replaced");
    /* Swapping the whole entries of sites 3 and 4 (valid signatures, wrong ids). */
    done(&f);
    run_to(&f, 1, 22);
    uint8_t tmp[128];
    memcpy(tmp, f.set.data + at3, 128);
    memcpy(f.set.data + at3, f.set.data + at3 + entry, 128);
    memcpy(f.set.data + at3 + entry, tmp, 128);
    assert_int_equal(ff_secagg_client_share(f.m.c[0], f.set.data, f.set.len, &b), FF_ECRYPTO);
    done(&f);
    /* The coordinator refuses a forged advertisement too. */
    run_to(&f, 1, 23);
    ff_secagg_server *s2;
    assert_int_equal(ff_secagg_server_new(&s2, &f.m.p, f.m.pk), FF_OK);
    ff_secagg_client *c2;
    assert_int_equal(ff_secagg_client_new(&c2, &f.m.p, 2, f.m.sk[1], f.m.pk), FF_OK);
    assert_int_equal(ff_secagg_client_advertise(c2, &b), FF_OK); /* site 2 signed by key 1 */
    assert_int_equal(ff_secagg_server_add(s2, b.data, b.len), FF_ECRYPTO);
    ff_secagg_buf_free(&b);
    ff_secagg_client_free(c2);
    ff_secagg_server_free(s2);
    done(&f);
}

static void test_refuses_replay(void **state)
{
    (void)state;
    fixture old, cur;
    ff_secagg_buf b;
    run_to(&old, 2, 30);
    run_to(&cur, 1, 31);
    /* Round 30's advertisement set in round 31, as is: refused by the round id. */
    assert_int_equal(ff_secagg_client_share(cur.m.c[0], old.set.data, old.set.len, &b),
                     FF_EPOLICY);
    ft_assert_error_has("round 30 refused in round 31");
    /* ... with the header rewritten to 31: the signatures bind the round. */
    uint64_t r31 = 31;
    memcpy(old.set.data + 8, &r31, 8);
    assert_int_equal(ff_secagg_client_share(cur.m.c[1], old.set.data, old.set.len, &b),
                     FF_ECRYPTO);
    /* Old round's share ciphertexts in the new round, header rewritten: AEAD fails. */
    ff_secagg_buf_free(&cur.set);
    done(&cur);
    run_to(&cur, 2, 31);
    ff_secagg_buf_free(&cur.req);
    memcpy(old.in[2].data + 8, &r31, 8);
    assert_int_equal(ff_secagg_client_mask(cur.m.c[2], old.in[2].data, old.in[2].len,
                                           cur.m.in[2], &b), FF_ECRYPTO);
    ft_assert_error_has("fails authentication");
    /* The coordinator refuses a client message of another round. */
    ff_secagg_client *c;
    assert_int_equal(ff_secagg_client_new(&c, &old.m.p, 0, old.m.sk[0], old.m.pk), FF_OK);
    assert_int_equal(ff_secagg_client_advertise(c, &b), FF_OK);
    ff_secagg_server *s;
    assert_int_equal(ff_secagg_server_new(&s, &cur.m.p, cur.m.pk), FF_OK);
    assert_int_equal(ff_secagg_server_add(s, b.data, b.len), FF_EPOLICY);
    ft_assert_error_has("replayed");
    ff_secagg_buf_free(&b);
    ff_secagg_client_free(c);
    ff_secagg_server_free(s);
    done(&old);
    done(&cur);
}

static void test_refuses_tampered_ciphertext(void **state)
{
    (void)state;
    fixture f;
    ff_secagg_buf b;
    run_to(&f, 2, 40);
    /* One flipped bit inside the first ciphertext addressed to site 0. */
    f.in[0].data[FF_SECAGG_HEADER_BYTES + 4 + 4 + 17] ^= 0x04;
    assert_int_equal(ff_secagg_client_mask(f.m.c[0], f.in[0].data, f.in[0].len, f.m.in[0], &b),
                     FF_ECRYPTO);
    ft_assert_error_has("fails authentication");
    assert_null(b.data);
    /* The ciphertext from site 0 to site 2 handed to site 1 as site 0's: refused. */
    uint32_t from2, from1;
    memcpy(&from2, f.in[2].data + FF_SECAGG_HEADER_BYTES + 4, 4);
    memcpy(&from1, f.in[1].data + FF_SECAGG_HEADER_BYTES + 4, 4);
    assert_int_equal(from1, 0); /* complete graph: entries sorted by sender */
    assert_int_equal(from2, 0);
    memcpy(f.in[1].data + FF_SECAGG_HEADER_BYTES + 8, f.in[2].data + FF_SECAGG_HEADER_BYTES + 8,
           8 + 2 * FF_SHAMIR_SHARE_BYTES + FF_CRYPTO_TAG_BYTES);
    assert_int_equal(ff_secagg_client_mask(f.m.c[1], f.in[1].data, f.in[1].len, f.m.in[1], &b),
                     FF_ECRYPTO);
    ft_assert_error_has("from site 0 fails authentication");
    /* Truncated and padded messages. */
    assert_int_equal(ff_secagg_client_mask(f.m.c[3], f.in[3].data, f.in[3].len - 1, f.m.in[3],
                                           &b), FF_EFORMAT);
    assert_site_closed(&f, 3);
    done(&f);
}

static void test_server_refuses_bad_input(void **state)
{
    (void)state;
    fixture f;
    ff_secagg_buf b;
    ff_secagg_params p;
    ff_secagg_params_default(&p, 50, N, M);
    memset(&f, 0, sizeof f);
    sim_init(&f.m, &p, &g_rng);
    assert_int_equal(ff_secagg_client_advertise(f.m.c[0], &b), FF_OK);
    assert_int_equal(ff_secagg_server_add(f.m.s, b.data, 10), FF_EFORMAT);
    assert_int_equal(ff_secagg_server_add(f.m.s, b.data, b.len), FF_OK);
    assert_int_equal(ff_secagg_server_add(f.m.s, b.data, b.len), FF_EPOLICY);
    ft_assert_error_has("duplicate");
    uint8_t version = b.data[4];
    b.data[4] = 9;
    assert_int_equal(ff_secagg_server_add(f.m.s, b.data, b.len), FF_EFORMAT);
    ff_secagg_msg_type ty;
    uint64_t rid;
    uint32_t snd;
    b.data[4] = version;
    assert_int_equal(ff_secagg_msg_peek(b.data, b.len, &ty, &rid, &snd), FF_OK);
    assert_int_equal(ty, FF_SECAGG_MSG_ADVERTISE);
    assert_true(rid == 50 && snd == 0);
    ff_secagg_buf_free(&b);
    /* Too few advertisements for t: the coordinator will not start the round. */
    assert_int_equal(ff_secagg_server_advertise_set(f.m.s, &b), FF_EPOLICY);
    /* A site out of order: advertise twice, mask before sharing. */
    assert_int_equal(ff_secagg_client_advertise(f.m.c[0], &b), FF_ESTATE);
    assert_int_equal(ff_secagg_client_mask(f.m.c[1], NULL, 0, f.m.in[1], &b), FF_ESTATE);
    sim_free(&f.m);
}

int main(void)
{
    ff_rng_init(&g_rng, 8, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_both_shares),
        cmocka_unit_test(test_refuses_too_few_survivors),
        cmocka_unit_test(test_refuses_substituted_keys),
        cmocka_unit_test(test_refuses_replay),
        cmocka_unit_test(test_refuses_tampered_ciphertext),
        cmocka_unit_test(test_server_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
