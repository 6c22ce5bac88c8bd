/* Secure aggregation end to end in-process: the unmasked sum equals the plain sum of the
 * encoded inputs exactly, for random n, k, t and drop-outs at every phase; below threshold
 * the round fails closed. Also the neighbour graph and the float codec's quantisation bound. */
#include "testutil.h"

#include <math.h>

#include "sa_sim.h"

static void test_graph_regular_symmetric(void **state)
{
    (void)state;
    static const uint32_t cases[][2] = {{3, 1}, {3, 2}, {4, 1}, {4, 3}, {7, 3}, {8, 3},
                                        {16, 10}, {17, 5}, {50, 12}, {64, 14}, {9, 8}};
    for (size_t c = 0; c < FF_ARRAY_LEN(cases); c++) {
        ff_secagg_params p;
        ff_secagg_params_default(&p, 99, cases[c][0], 4);
        p.k = cases[c][1];
        uint32_t n = p.n_sites, want = p.k;
        if (want < n - 1 && (want & 1) && (n & 1))
            want++; /* documented: rounded up to even when n is odd */
        p.t = ff_secagg_default_t(want);
        uint32_t (*nb)[64] = calloc(n, sizeof *nb), deg;
        for (uint32_t i = 0; i < n; i++) {
            assert_int_equal(ff_secagg_neighbours(&p, i, nb[i], &deg), FF_OK);
            assert_int_equal(deg, want);
            for (uint32_t e = 0; e < deg; e++) {
                assert_true(nb[i][e] != i && nb[i][e] < n);
                if (e)
                    assert_true(nb[i][e] > nb[i][e - 1]);
            }
        }
        for (uint32_t i = 0; i < n; i++) /* j in N(i) <=> i in N(j) */
            for (uint32_t e = 0; e < want; e++) {
                uint32_t j = nb[i][e], found = 0;
                for (uint32_t f = 0; f < want; f++)
                    found += nb[j][f] == i;
                assert_int_equal(found, 1);
            }
        free(nb);
    }
    /* Another round id gives another graph. */
    ff_secagg_params a, b;
    ff_secagg_params_default(&a, 1, 64, 4);
    ff_secagg_params_default(&b, 2, 64, 4);
    uint32_t na[64], nbb[64], da, db;
    int differ = 0;
    for (uint32_t i = 0; i < 64; i++) {
        assert_int_equal(ff_secagg_neighbours(&a, i, na, &da), FF_OK);
        assert_int_equal(ff_secagg_neighbours(&b, i, nbb, &db), FF_OK);
        differ += memcmp(na, nbb, da * 4) != 0;
    }
    assert_true(differ > 32);
}

static void test_params_rules(void **state)
{
    (void)state;
    assert_int_equal(ff_secagg_default_k(4), 3);
    assert_int_equal(ff_secagg_default_k(16), 10);
    assert_int_equal(ff_secagg_default_k(64), 14);
    assert_int_equal(ff_secagg_default_k(256), 18);
    ff_secagg_params p;
    ff_secagg_params_default(&p, 1, 64, 10);
    assert_int_equal(p.t, 8);
    assert_int_equal(ff_secagg_params_check(&p), FF_OK);
    p.t = 7; /* 2t <= k+1: a coordinator could collect both kinds of share */
    assert_int_equal(ff_secagg_params_check(&p), FF_EINVAL);
    ft_assert_error_has("strict majority");
    p.t = 16;
    assert_int_equal(ff_secagg_params_check(&p), FF_EINVAL);
    ff_secagg_params_default(&p, 1, 1, 10);
    assert_int_equal(ff_secagg_params_check(&p), FF_EINVAL);
}

/* One random round: n in 3..50, random k and t, random drop-outs at random phases. */
static void one_round(ff_rng *rng, int iter, int complete)
{
    ff_secagg_params p;
    uint32_t n = 3 + ff_rng_below(rng, 48);
    ff_secagg_params_default(&p, 1000 + (uint64_t)iter, n, 1 + ff_rng_below(rng, 200));
    p.k = complete ? n - 1 : 1 + ff_rng_below(rng, n - 1);
    uint32_t k = p.k;
    if (k < n - 1 && (k & 1) && (n & 1))
        k++;
    uint32_t tmin = (k + 1) / 2 + 1;
    p.t = tmin + ff_rng_below(rng, k + 2 - tmin);
    assert_int_equal(ff_secagg_params_check(&p), FF_OK);
    sa_sim m;
    sim_init(&m, &p, rng);
    /* Up to n - t drop-outs, each at a random phase (before advertise .. before unmask). A
     * sparse round may then miss the consistency quorum (a majority of all sites) and stop
     * at the coordinator: checked below for classic SecAgg, where the quorum is t. */
    uint32_t drops = ff_rng_below(rng, n - p.t + 1);
    uint32_t *perm = malloc(n * 4);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    ff_rng_shuffle(rng, perm, n);
    for (uint32_t d = 0; d < drops; d++)
        m.drop[perm[d]] = 1 + (int)ff_rng_below(rng, 5);
    free(perm);

    ff_secagg_buf req = {0};
    uint32_t *sum = malloc(p.n_values * 4), *want = malloc(p.n_values * 4);
    int rc = sim_run_to_request(&m, &req);
    if (rc == FF_OK) {
        sim_answer(&m, &req);
        int ok = sim_should_succeed(&m);
        memset(sum, 0xEE, p.n_values * 4);
        rc = ff_secagg_server_finish(m.s, sum);
        if (ok) {
            assert_int_equal(rc, FF_OK);
            sim_plain_sum(&m, want);
            assert_memory_equal(sum, want, p.n_values * 4); /* exact, integers */
            uint32_t surv = 0;
            for (uint32_t i = 0; i < n; i++) {
                surv += m.msk[i];
                assert_int_equal(ff_secagg_server_is_survivor(m.s, i), m.msk[i]);
                assert_int_equal(ff_secagg_server_accepted(m.s, FF_SECAGG_MSG_ADVERTISE, i),
                                 m.adv[i]);
                assert_int_equal(ff_secagg_server_accepted(m.s, FF_SECAGG_MSG_SHARES, i),
                                 m.shr[i]);
                assert_int_equal(ff_secagg_server_accepted(m.s, FF_SECAGG_MSG_CHECK_SIG, i),
                                 m.sig[i]);
                assert_int_equal(ff_secagg_server_accepted(m.s, FF_SECAGG_MSG_UNMASK_RESP, i),
                                 m.ans[i]);
            }
            assert_int_equal(ff_secagg_server_n_survivors(m.s), surv);
        } else {
            assert_int_equal(rc, FF_ECRYPTO);
            ft_assert_error_has("fails closed");
            for (uint64_t v = 0; v < p.n_values; v++)
                assert_int_equal(sum[v], 0xEEEEEEEEu); /* untouched */
        }
    }
    /* Classic SecAgg with at most n - t drop-outs always completes. */
    if (complete)
        assert_int_equal(rc, FF_OK);
    ff_secagg_buf_free(&req);
    free(sum);
    free(want);
    sim_free(&m);
}

static void test_exact_sum_random_rounds(void **state)
{
    (void)state;
    ff_rng rng;
    ff_rng_init(&rng, 20261128, 1);
    for (int it = 0; it < 24; it++)
        one_round(&rng, it, it % 3 == 0);
}

/* More than n - t drop-outs before unmasking: no t survivors, the round fails closed. */
static void test_below_threshold_fails_closed(void **state)
{
    (void)state;
    ff_rng rng;
    ff_rng_init(&rng, 5, 2);
    ff_secagg_params p;
    ff_secagg_params_default(&p, 77, 6, 8);
    p.k = 5;
    p.t = 4;
    sa_sim m;
    sim_init(&m, &p, &rng);
    m.drop[0] = m.drop[1] = m.drop[2] = 5; /* three of six never answer: 3 < t */
    ff_secagg_buf req;
    assert_int_equal(sim_run_to_request(&m, &req), FF_OK);
    sim_answer(&m, &req);
    uint32_t sum[8];
    assert_int_equal(ff_secagg_server_finish(m.s, sum), FF_ECRYPTO);
    ft_assert_error_has("threshold t = 4");
    assert_int_equal(ff_secagg_server_finish(m.s, sum), FF_ESTATE);
    ff_secagg_buf_free(&req);
    sim_free(&m);

    /* Three drop before masking: the coordinator itself refuses to go on. */
    sim_init(&m, &p, &rng);
    m.drop[3] = m.drop[4] = m.drop[5] = 3;
    assert_int_equal(sim_run_to_request(&m, &req), FF_EPOLICY);
    ft_assert_error_has("below t = 4");
    sim_free(&m);
}

/* Floats -> codec -> secure sum -> decode: within n / scale of the sum of clipped values,
 * weights exact, and the codec refuses parameters that could overflow 32-bit lanes. */
static void test_codec_quantisation_bound(void **state)
{
    (void)state;
    const uint32_t n = 5, m = 257;
    ff_secagg_codec codec;
    assert_int_equal(ff_secagg_codec_init(&codec, 0.5, 0, n, 100000), FF_OK);
    assert_true(n * (codec.clip * codec.scale + 1) <= 2147483647.0);
    assert_true(n * (codec.clip * 2 * codec.scale + 1) > 2147483647.0); /* largest */
    ff_secagg_params p;
    ff_secagg_params_default(&p, 4242, n, m + 1);
    ff_rng rng;
    ff_rng_init(&rng, 3, 3);
    sa_sim sim;
    sim_init(&sim, &p, &rng);
    double *ref = calloc(m, sizeof *ref), *dec = calloc(m, sizeof *dec);
    float *x = malloc(m * 4);
    uint64_t wsum = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t v = 0; v < m; v++) {
            x[v] = (float)(ff_rng_normal(&rng) * 0.4);
            if (v == 0)
                x[v] = 7.0f; /* clipped */
            if (v == 1)
                x[v] = -0.5f;
            ref[v] += FF_MAX(-0.5, FF_MIN(0.5, (double)x[v]));
        }
        ff_rng enc;
        ff_rng_init(&enc, 1000 + i, p.round_id); /* per site and round */
        assert_int_equal(ff_secagg_encode(&codec, &enc, x, m, 1000 * i + 7, sim.in[i]), FF_OK);
        wsum += 1000 * i + 7;
    }
    ff_secagg_buf req;
    assert_int_equal(sim_run_to_request(&sim, &req), FF_OK);
    sim_answer(&sim, &req);
    uint32_t *sum = malloc((m + 1) * 4);
    assert_int_equal(ff_secagg_server_finish(sim.s, sum), FF_OK);
    uint64_t w;
    ff_secagg_decode(&codec, sum, m, dec, &w);
    assert_int_equal(w, wsum);
    double bound = n / codec.scale, worst = 0;
    for (uint32_t v = 0; v < m; v++)
        worst = FF_MAX(worst, fabs(dec[v] - ref[v]));
    assert_true(worst < bound);
    assert_true(fabs(dec[0] - 2.5) < bound);
    /* Errors, one by one. */
    assert_int_equal(ff_secagg_codec_init(&codec, 1.0, 0, 70000, 100000), FF_ERANGE);
    assert_int_equal(ff_secagg_codec_init(&codec, 1.0, 1048576.0, 4096, 1), FF_ERANGE);
    ft_assert_error_has("overflows");
    assert_int_equal(ff_secagg_codec_init(&codec, 1.0, 3.0, 4, 1), FF_ERANGE);
    assert_int_equal(ff_secagg_codec_init(&codec, 1.0, 0, 4, 1), FF_OK);
    x[3] = NAN;
    assert_int_equal(ff_secagg_encode(&codec, &rng, x, m, 1, sum), FF_ENUMERIC);
    assert_int_equal(ff_secagg_encode(&codec, &rng, x, 2, 2, sum), FF_ERANGE);
    ff_secagg_buf_free(&req);
    free(ref);
    free(dec);
    free(x);
    free(sum);
    sim_free(&sim);
}

/* Stochastic rounding is unbiased: the mean of many encodings of 0.3/scale-sized values. */
static void test_stochastic_rounding_unbiased(void **state)
{
    (void)state;
    ff_secagg_codec c;
    assert_int_equal(ff_secagg_codec_init(&c, 1.0, 4.0, 2, 1), FF_OK);
    ff_rng rng;
    ff_rng_init(&rng, 11, 0);
    const int N = 20000;
    float x[1] = {0.325f}; /* 1.3 in units: rounds to 1 or 2 */
    uint32_t out[2];
    double s = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(ff_secagg_encode(&c, &rng, x, 1, 0, out), FF_OK);
        assert_true(out[0] == 1 || out[0] == 2);
        s += out[0];
    }
    assert_true(fabs(s / N - 1.3) < 0.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_regular_symmetric),
        cmocka_unit_test(test_params_rules),
        cmocka_unit_test(test_exact_sum_random_rounds),
        cmocka_unit_test(test_below_threshold_fails_closed),
        cmocka_unit_test(test_codec_quantisation_bound),
        cmocka_unit_test(test_stochastic_rounding_unbiased),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
