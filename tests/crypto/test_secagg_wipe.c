/* Per-round key material is wiped: after answering the unmask request, and after refusing
 * the coordinator. Includes the client's source to see its private state (the archive's
 * copy of secagg_client.o is then never linked). */
#include "testutil.h"

#include "../../crypto/src/secagg_client.c"
#include "sa_sim.h"

static int all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= b[i];
    return acc == 0;
}

static void assert_wiped(const ff_secagg_client *c)
{
    assert_true(all_zero(c->c_sk, K));
    assert_true(all_zero(c->s_sk, K));
    assert_true(all_zero(c->b, K));
    assert_true(all_zero(c->own_seed_share, S));
    assert_true(all_zero(c->own_key_share, S));
    assert_true(all_zero(c->seed_share, (size_t)c->deg * S));
    assert_true(all_zero(c->key_share, (size_t)c->deg * S));
}

static void test_wiped_after_unmask_and_refusal(void **state)
{
    (void)state;
    ff_rng rng;
    ff_rng_init(&rng, 1, 1);
    ff_secagg_params p;
    ff_secagg_params_default(&p, 9, 5, 8);
    sa_sim m;
    sim_init(&m, &p, &rng);
    ff_secagg_buf req, b;
    assert_int_equal(sim_run_to_request(&m, &req), FF_OK);
    /* Before the last phase the secrets are live. */
    assert_false(all_zero(m.c[0]->s_sk, K));
    assert_false(all_zero(m.c[0]->b, K));
    assert_false(all_zero(m.c[0]->seed_share, (size_t)m.c[0]->deg * S));
    assert_int_equal(ff_secagg_client_unmask(m.c[0], req.data, req.len, &b), FF_OK);
    ff_secagg_buf_free(&b);
    assert_wiped(m.c[0]);
    /* A refused request (site 2 in both lists) wipes too. */
    req.data[FF_SECAGG_HEADER_BYTES + 1] |= 1u << 2;
    assert_int_equal(ff_secagg_client_unmask(m.c[1], req.data, req.len, &b), FF_EPOLICY);
    assert_wiped(m.c[1]);
    ff_secagg_buf_free(&req);
    sim_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wiped_after_unmask_and_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
