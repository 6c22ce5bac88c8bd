#include "testutil.h"

#include <math.h>
#include <string.h>

/* Known-answer vectors of Philox4x32-10 from Random123's kat_vectors. */
static void test_philox_kat(void **state)
{
    (void)state;
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(kat); i++) {
        uint32_t out[4];
        ff_philox4x32(kat[i].key, kat[i].ctr, out);
        assert_memory_equal(out, kat[i].out, sizeof out);
    }
}

static void test_streams_reproducible_and_distinct(void **state)
{
    (void)state;
    ff_rng a, b, c;
    ff_rng_init(&a, 42, 0);
    ff_rng_init(&b, 42, 0);
    ff_rng_init(&c, 42, 1);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = ff_rng_u32(&a);
        assert_int_equal(x, ff_rng_u32(&b));
        same_c += x == ff_rng_u32(&c);
    }
    assert_true(same_c < 3);
}

static void test_distributions(void **state)
{
    (void)state;
    ff_rng r;
    ff_rng_init(&r, 7, 3);
    const int n = 200000;
    double s = 0, s2 = 0, u = 0;
    int counts[7] = {0};
    for (int i = 0; i < n; i++) {
        double z = ff_rng_normal(&r);
        s += z;
        s2 += z * z;
        float f = ff_rng_uniform(&r);
        assert_true(f >= 0.0f && f < 1.0f);
        u += f;
        counts[ff_rng_below(&r, 7)]++;
    }
    /* Bounds are ~5 standard errors wide. */
    assert_true(fabs(s / n) < 0.012);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
    assert_true(fabs(u / n - 0.5) < 0.004);
    for (int k = 0; k < 7; k++)
        assert_true(fabs(counts[k] / (double)n - 1.0 / 7) < 0.005);
}

static void test_shuffle_is_permutation(void **state)
{
    (void)state;
    ff_rng r;
    ff_rng_init(&r, 1, 2);
    uint32_t idx[100];
    for (uint32_t i = 0; i < 100; i++)
        idx[i] = i;
    ff_rng_shuffle(&r, idx, 100);
    int seen[100] = {0}, moved = 0;
    for (uint32_t i = 0; i < 100; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_streams_reproducible_and_distinct),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_shuffle_is_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
