/* The consistency check (Bonawitz et al. 2017, Round 3 of the active-adversary protocol):
 * survivors sign the survivor set U3 and unmask only with a quorum of signatures over the
 * set they signed. A coordinator that shows different sets to different sites (to collect a
 * site's self-mask shares from some and its mask-key shares from others) is refused; so are
 * forged, replayed, repeated and too few signatures, and sets outside a site's view. Honest
 * rounds with drop-outs in every phase, the new one included, still give the exact sum. */
#include "testutil.h"

#include "sa_sim.h"
#include "../../crypto/src/secagg_internal.h"

#define N 6 /* complete graph: k = 5, t = 4, quorum 4 */
#define M 16
#define NB ((N + 7) / 8)
#define SIG FF_CRYPTO_SIG_BYTES

static ff_rng g_rng;

/* Runs a 6-site round until every site has masked and its input arrived (except those in
 * `silent`, whose masked input the coordinator "did not get"). */
static void run_to_masked(sa_sim *m, uint64_t round_id, unsigned silent)
{
    ff_secagg_params p;
    ff_secagg_params_default(&p, round_id, N, M);
    sim_init(m, &p, &g_rng);
    for (uint32_t i = 0; i < N; i++)
        m->drop[i] = (silent >> i) & 1 ? 4 : 0; /* masks, input lost */
    ff_secagg_buf b, set, in;
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_client_advertise(m->c[i], &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    assert_int_equal(ff_secagg_server_advertise_set(m->s, &set), FF_OK);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_client_share(m->c[i], set.data, set.len, &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    ff_secagg_buf_free(&set);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_server_shares_for(m->s, i, &in), FF_OK);
        assert_int_equal(ff_secagg_client_mask(m->c[i], in.data, in.len, m->in[i], &b), FF_OK);
        if (!m->drop[i]) {
            assert_int_equal(ff_secagg_server_add(m->s, b.data, b.len), FF_OK);
            m->msk[i] = 1;
        }
        ff_secagg_buf_free(&b);
        ff_secagg_buf_free(&in);
    }
}

/* A coordinator message written by hand (the dishonest coordinator is not our server). */
static ff_secagg_buf craft(uint64_t round_id, ff_secagg_msg_type type, const uint8_t *body,
                           size_t len)
{
    ff_secagg_buf b = {malloc(FF_SECAGG_HEADER_BYTES + len), FF_SECAGG_HEADER_BYTES + len};
    uint32_t server = FF_SECAGG_SERVER, bl = (uint32_t)len;
    memcpy(b.data, "FFSA", 4);
    b.data[4] = 2; /* wire version */
    b.data[5] = (uint8_t)type;
    b.data[6] = b.data[7] = 0;
    memcpy(b.data + 8, &round_id, 8);
    memcpy(b.data + 16, &server, 4);
    memcpy(b.data + 20, &bl, 4);
    memcpy(b.data + FF_SECAGG_HEADER_BYTES, body, len);
    return b;
}

static ff_secagg_buf check_req(const sa_sim *m, uint8_t u3)
{
    return craft(m->p.round_id, FF_SECAGG_MSG_CHECK_REQ, &u3, NB);
}

/* Unmask request: U3, dropped, then the signatures of the sites in `signers` (sigs[i]). */
static ff_secagg_buf unmask_req(const sa_sim *m, uint8_t u3, uint8_t dropped, unsigned signers,
                                uint8_t sigs[N][SIG])
{
    uint8_t body[2 * NB + 4 + N * (4 + SIG)];
    size_t len = 2 * NB + 4;
    uint32_t count = 0;
    body[0] = u3;
    body[1] = dropped;
    for (uint32_t i = 0; i < N; i++)
        if ((signers >> i) & 1) {
            memcpy(body + len, &i, 4);
            memcpy(body + len + 4, sigs[i], SIG);
            len += 4 + SIG;
            count++;
        }
    memcpy(body + 2 * NB, &count, 4);
    return craft(m->p.round_id, FF_SECAGG_MSG_UNMASK_REQ, body, len);
}

/* Site i signs the set the coordinator shows it; returns the signature. */
static void site_signs(sa_sim *m, uint32_t i, uint8_t u3, uint8_t sig[SIG])
{
    ff_secagg_buf chk = check_req(m, u3), b;
    assert_int_equal(ff_secagg_client_check(m->c[i], chk.data, chk.len, &b), FF_OK);
    assert_int_equal(b.len, FF_SECAGG_HEADER_BYTES + SIG);
    memcpy(sig, b.data + FF_SECAGG_HEADER_BYTES, SIG);
    ff_secagg_buf_free(&b);
    ff_secagg_buf_free(&chk);
}

/* A colluding site signs whatever the coordinator likes, with its own key. */
static void colluder_signs(sa_sim *m, uint32_t i, uint8_t u3, uint8_t sig[SIG])
{
    uint8_t tag[32];
    size_t ml;
    sa_round_tag(&m->p, tag);
    uint8_t *msg = sa_u3_sig_msg(tag, &u3, NB, &ml);
    assert_int_equal(ff_crypto_ed25519_sign(m->sk[i], msg, ml, sig), FF_OK);
    free(msg);
}

/* The attack on site 5: sites 0-2 and 5 are shown U3a = everyone (5 alive: they reveal its
 * self-mask seed share), sites 3 and 4 are shown U3b without 5 (5 "dropped": they would
 * reveal its mask-key share). With four seed shares and four key shares the coordinator
 * would unmask x_5 alone. Each honest site signs only the set it was shown. */
static void test_equivocation_refused(void **state)
{
    (void)state;
    sa_sim m;
    run_to_masked(&m, 100, 0);
    const uint8_t a = 0x3F, bset = 0x1F;
    uint8_t sig_a[N][SIG], sig_b[N][SIG];
    for (uint32_t i = 0; i < N; i++)
        if (i < 3 || i == 5)
            site_signs(&m, i, a, sig_a[i]);
        else
            site_signs(&m, i, bset, sig_b[i]);
    /* The honest server itself accepts only signatures over the set it sent. */
    ff_secagg_buf chk, b;
    assert_int_equal(ff_secagg_server_check_request(m.s, &chk), FF_OK);
    assert_memory_equal(chk.data + FF_SECAGG_HEADER_BYTES, &a, 1);
    ff_secagg_buf sb = craft(m.p.round_id, FF_SECAGG_MSG_CHECK_SIG, sig_b[3], SIG);
    memcpy(sb.data + 16, &(uint32_t){3}, 4);
    assert_int_equal(ff_secagg_server_add(m.s, sb.data, sb.len), FF_ECRYPTO);
    ft_assert_error_has("does not verify over this round's survivor set");
    ff_secagg_buf_free(&sb);
    ff_secagg_buf_free(&chk);

    /* Side A gets its four signatures and unmasks: seed shares of 5, that alone is fine. */
    ff_secagg_buf ra = unmask_req(&m, a, 0, 0x27, sig_a);
    assert_int_equal(ff_secagg_client_unmask(m.c[0], ra.data, ra.len, &b), FF_OK);
    ff_secagg_buf_free(&b);
    /* Side B: only two sites signed U3b, below the quorum of 4. */
    ff_secagg_buf rb = unmask_req(&m, bset, 0x20, 0x18, sig_b);
    assert_int_equal(ff_secagg_client_unmask(m.c[3], rb.data, rb.len, &b), FF_EPOLICY);
    ft_assert_error_has("2 valid signatures over the survivor set, below the quorum 4");
    assert_null(b.data);
    /* Padding side B with side A's signatures: they do not verify over U3b. */
    uint8_t mix[N][SIG];
    memcpy(mix, sig_a, sizeof mix);
    memcpy(mix[3], sig_b[3], SIG);
    memcpy(mix[4], sig_b[4], SIG);
    ff_secagg_buf rm = unmask_req(&m, bset, 0x20, 0x1F, mix);
    assert_int_equal(ff_secagg_client_unmask(m.c[4], rm.data, rm.len, &b), FF_ECRYPTO);
    ft_assert_error_has("does not verify over the survivor set this site signed");
    /* Site 3 refused and is closed for the round: no key share of 5 ever left 3 or 4. */
    assert_int_equal(ff_secagg_client_unmask(m.c[3], rm.data, rm.len, &b), FF_ESTATE);
    /* Showing side A's request to a side-B site: not the set it signed. */
    ff_secagg_buf_free(&ra);
    ff_secagg_buf_free(&rb);
    ff_secagg_buf_free(&rm);
    sim_free(&m);

    /* Same attack, a site that already signed U3a is shown U3b: it signs one set per round. */
    run_to_masked(&m, 101, 0);
    site_signs(&m, 0, a, sig_a[0]);
    ff_secagg_buf chk2 = check_req(&m, bset);
    assert_int_equal(ff_secagg_client_check(m.c[0], chk2.data, chk2.len, &b), FF_ESTATE);
    ff_secagg_buf_free(&chk2);
    sim_free(&m);
}

/* The bound documented in docs/secagg.md: two sets both reach the quorum q only with 2q - n
 * colluding signers (here 2). One colluder is not enough; two are. */
static void test_equivocation_bound(void **state)
{
    (void)state;
    sa_sim m;
    const uint8_t a = 0x3F, bset = 0x1F;
    uint8_t sig_a[N][SIG], sig_b[N][SIG];
    ff_secagg_buf b;
    for (int colluders = 1; colluders <= 2; colluders++) {
        run_to_masked(&m, 110 + (uint64_t)colluders, 0);
        /* Colluders 0 (and 1) sign both sets; honest 2, 5 see U3a, honest 3, 4 see U3b. */
        for (uint32_t i = 0; i < N; i++) {
            if (i < (uint32_t)colluders) {
                colluder_signs(&m, i, a, sig_a[i]);
                colluder_signs(&m, i, bset, sig_b[i]);
            } else if (i == 3 || i == 4) {
                site_signs(&m, i, bset, sig_b[i]);
            } else {
                site_signs(&m, i, a, sig_a[i]);
            }
        }
        unsigned col = colluders == 1 ? 0x01 : 0x03;
        ff_secagg_buf rb = unmask_req(&m, bset, 0x20, 0x18 | col, sig_b);
        int rc = ff_secagg_client_unmask(m.c[3], rb.data, rb.len, &b);
        if (colluders == 1) {
            assert_int_equal(rc, FF_EPOLICY);
            ft_assert_error_has("3 valid signatures");
        } else {
            assert_int_equal(rc, FF_OK); /* 2q - n = 2 colluders: documented limit */
            ff_secagg_buf_free(&b);
        }
        ff_secagg_buf_free(&rb);
        sim_free(&m);
    }
}

static void test_bad_signatures_refused(void **state)
{
    (void)state;
    sa_sim m, old;
    const uint8_t a = 0x1F; /* site 5's input lost */
    uint8_t sig[N][SIG], osig[N][SIG];
    ff_secagg_buf b, r;
    run_to_masked(&m, 120, 0x20);
    for (uint32_t i = 0; i < 5; i++)
        site_signs(&m, i, a, sig[i]);
    /* Forged: one flipped bit. */
    sig[2][7] ^= 0x10;
    r = unmask_req(&m, a, 0x20, 0x1F, sig);
    assert_int_equal(ff_secagg_client_unmask(m.c[0], r.data, r.len, &b), FF_ECRYPTO);
    ft_assert_error_has("signature of site 2 does not verify");
    ff_secagg_buf_free(&r);
    sig[2][7] ^= 0x10;
    /* A valid signature under the wrong name: site 3's passed off as site 2's. */
    uint8_t keep[SIG];
    memcpy(keep, sig[2], SIG);
    memcpy(sig[2], sig[3], SIG);
    r = unmask_req(&m, a, 0x20, 0x1F, sig);
    assert_int_equal(ff_secagg_client_unmask(m.c[1], r.data, r.len, &b), FF_ECRYPTO);
    ff_secagg_buf_free(&r);
    memcpy(sig[2], keep, SIG);
    /* Too few: three of the four needed. */
    r = unmask_req(&m, a, 0x20, 0x07, sig);
    assert_int_equal(ff_secagg_client_unmask(m.c[2], r.data, r.len, &b), FF_EPOLICY);
    ft_assert_error_has("below the quorum 4");
    ff_secagg_buf_free(&r);
    /* Repeated signer: sites 0, 1, then 0 twice more, to make four. */
    r = unmask_req(&m, a, 0x20, 0x03, sig);
    uint32_t four = 4, zero = 0;
    ff_secagg_buf r2 = {malloc(r.len + 2 * (4 + SIG)), r.len + 2 * (4 + SIG)};
    memcpy(r2.data, r.data, r.len);
    for (int e = 0; e < 2; e++) {
        memcpy(r2.data + r.len + e * (4 + SIG), &zero, 4);
        memcpy(r2.data + r.len + e * (4 + SIG) + 4, sig[0], SIG);
    }
    memcpy(r2.data + FF_SECAGG_HEADER_BYTES + 2 * NB, &four, 4);
    uint32_t bl = (uint32_t)(r2.len - FF_SECAGG_HEADER_BYTES);
    memcpy(r2.data + 20, &bl, 4);
    assert_int_equal(ff_secagg_client_unmask(m.c[3], r2.data, r2.len, &b), FF_EFORMAT);
    ft_assert_error_has("repeated signers do not count twice");
    ff_secagg_buf_free(&r);
    ff_secagg_buf_free(&r2);
    /* A signature by a site outside U3 (site 5, whose input was lost) does not count. */
    colluder_signs(&m, 5, a, sig[5]);
    r = unmask_req(&m, a, 0x20, 0x27, sig);
    assert_int_equal(ff_secagg_client_unmask(m.c[4], r.data, r.len, &b), FF_EPOLICY);
    ft_assert_error_has("signature of site 5, which is not a survivor");
    ff_secagg_buf_free(&r);
    sim_free(&m);

    /* Replayed: an earlier round's signatures over the same survivor bitmap. */
    run_to_masked(&old, 130, 0x20);
    run_to_masked(&m, 131, 0x20);
    for (uint32_t i = 0; i < 5; i++) {
        site_signs(&old, i, a, osig[i]);
        site_signs(&m, i, a, sig[i]);
    }
    r = unmask_req(&m, a, 0x20, 0x1F, osig);
    assert_int_equal(ff_secagg_client_unmask(m.c[0], r.data, r.len, &b), FF_ECRYPTO);
    ft_assert_error_has("another round's");
    ff_secagg_buf_free(&r);
    /* ... and the old request as a whole is refused by its round id. */
    r = unmask_req(&old, a, 0x20, 0x1F, osig);
    assert_int_equal(ff_secagg_client_unmask(m.c[1], r.data, r.len, &b), FF_EPOLICY);
    ft_assert_error_has("round 130 refused in round 131");
    ff_secagg_buf_free(&r);
    /* The honest request of this round still works for the others. */
    r = unmask_req(&m, a, 0x20, 0x1F, sig);
    assert_int_equal(ff_secagg_client_unmask(m.c[2], r.data, r.len, &b), FF_OK);
    ff_secagg_buf_free(&b);
    ff_secagg_buf_free(&r);
    sim_free(&old);
    sim_free(&m);
}

/* U3 must lie within the site's U2: a site whose shares never arrived is no survivor. And
 * the coordinator's own rules: signatures only from survivors, once, of this round. */
static void test_view_and_server_rules(void **state)
{
    (void)state;
    sa_sim m;
    ff_secagg_params p;
    ff_secagg_params_default(&p, 140, N, M);
    sim_init(&m, &p, &g_rng);
    m.drop[5] = 2; /* advertised, never shared */
    ff_secagg_buf req, chk, b;
    assert_int_equal(ff_secagg_server_unmask_request(m.s, &req), FF_ESTATE);
    /* Run by hand to the check request. */
    ff_secagg_buf set;
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_client_advertise(m.c[i], &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(m.s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    assert_int_equal(ff_secagg_server_advertise_set(m.s, &set), FF_OK);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(ff_secagg_client_share(m.c[i], set.data, set.len, &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(m.s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
    }
    ff_secagg_buf_free(&set);
    for (uint32_t i = 0; i < 5; i++) {
        ff_secagg_buf in;
        assert_int_equal(ff_secagg_server_shares_for(m.s, i, &in), FF_OK);
        assert_int_equal(ff_secagg_client_mask(m.c[i], in.data, in.len, m.in[i], &b), FF_OK);
        if (i != 4) /* site 4's input is lost */
            assert_int_equal(ff_secagg_server_add(m.s, b.data, b.len), FF_OK);
        ff_secagg_buf_free(&b);
        ff_secagg_buf_free(&in);
    }
    /* A lying set naming 5 alive: its shares never reached site 0. */
    ff_secagg_buf lie = check_req(&m, 0x2F);
    assert_int_equal(ff_secagg_client_check(m.c[0], lie.data, lie.len, &b), FF_EPOLICY);
    ft_assert_error_has("lists site 5 as a survivor, but that site's shares never reached this site");
    ff_secagg_buf_free(&lie);
    assert_int_equal(ff_secagg_server_check_request(m.s, &chk), FF_OK);
    assert_int_equal(chk.data[FF_SECAGG_HEADER_BYTES], 0x0F);
    assert_int_equal(ff_secagg_server_check_request(m.s, &b), FF_ESTATE);
    /* Site 4 (input lost) cannot sign: it is not in U3, and the server would not take it. */
    assert_int_equal(ff_secagg_client_check(m.c[4], chk.data, chk.len, &b), FF_EPOLICY);
    uint8_t s4[SIG];
    colluder_signs(&m, 4, 0x0F, s4);
    ff_secagg_buf f4 = craft(p.round_id, FF_SECAGG_MSG_CHECK_SIG, s4, SIG);
    memcpy(f4.data + 16, &(uint32_t){4}, 4);
    assert_int_equal(ff_secagg_server_add(m.s, f4.data, f4.len), FF_EPOLICY);
    ft_assert_error_has("skipped the previous phase");
    ff_secagg_buf_free(&f4);
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(ff_secagg_client_check(m.c[i], chk.data, chk.len, &b), FF_OK);
        assert_int_equal(ff_secagg_server_add(m.s, b.data, b.len), FF_OK);
        if (i == 1) {
            assert_int_equal(ff_secagg_server_add(m.s, b.data, b.len), FF_EPOLICY);
            ft_assert_error_has("duplicate");
        }
        ff_secagg_buf_free(&b);
        assert_true(ff_secagg_server_accepted(m.s, FF_SECAGG_MSG_CHECK_SIG, i));
    }
    /* Three signatures (0 refused above): below the quorum of 4, the round stops here. */
    assert_int_equal(ff_secagg_server_unmask_request(m.s, &req), FF_EPOLICY);
    ft_assert_error_has("below the consistency quorum 4");
    ff_secagg_buf_free(&chk);
    sim_free(&m);
}

/* Honest rounds with drop-outs in every phase, the consistency check included: exact sum. */
static void test_honest_dropouts_exact_sum(void **state)
{
    (void)state;
    struct {
        uint32_t n, k;
        int drops[6];
    } cases[] = {
        {10, 9, {1, 2, 3, 4, 0, 0}},  /* classic, q = t = 6: 6 sign */
        {10, 9, {4, 5, 0, 0, 0, 0}},  /* one silent at the check, one at unmask */
        {40, 0, {4, 4, 3, 5, 2, 1}},  /* sparse default k = 14, q = 21 */
        {64, 0, {4, 4, 4, 4, 5, 5}},
    };
    for (size_t c = 0; c < FF_ARRAY_LEN(cases); c++) {
        ff_secagg_params p;
        ff_secagg_params_default(&p, 150 + c, cases[c].n, 33);
        if (cases[c].k) {
            p.k = cases[c].k;
            p.t = ff_secagg_default_t(ff_secagg_degree(&p));
        }
        sa_sim m;
        sim_init(&m, &p, &g_rng);
        for (int d = 0; d < 6; d++)
            m.drop[(uint32_t)d * 3 % cases[c].n] = cases[c].drops[d];
        ff_secagg_buf req;
        assert_int_equal(sim_run_to_request(&m, &req), FF_OK);
        sim_answer(&m, &req);
        assert_true(sim_should_succeed(&m));
        uint32_t sum[33], want[33], signers = 0;
        assert_int_equal(ff_secagg_server_finish(m.s, sum), FF_OK);
        sim_plain_sum(&m, want);
        assert_memory_equal(sum, want, sizeof sum);
        for (uint32_t i = 0; i < p.n_sites; i++) {
            signers += m.sig[i];
            assert_int_equal(ff_secagg_server_accepted(m.s, FF_SECAGG_MSG_CHECK_SIG, i),
                             m.sig[i]);
        }
        assert_true(signers >= ff_secagg_check_quorum(&p));
        ff_secagg_buf_free(&req);
        sim_free(&m);
    }
    /* The quorum rule itself: max(t, floor(n/2) + 1). */
    ff_secagg_params p;
    ff_secagg_params_default(&p, 1, 64, 1);
    assert_int_equal(p.t, 8);
    assert_int_equal(ff_secagg_check_quorum(&p), 33);
    p.k = 63;
    p.t = 50;
    assert_int_equal(ff_secagg_check_quorum(&p), 50);
}

int main(void)
{
    ff_rng_init(&g_rng, 88, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equivocation_refused),
        cmocka_unit_test(test_equivocation_bound),
        cmocka_unit_test(test_bad_signatures_refused),
        cmocka_unit_test(test_view_and_server_rules),
        cmocka_unit_test(test_honest_dropouts_exact_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
