/* The privacy: section: loads through the common YAML loader embedded in a plan as the
 * training-plan loader will embed it, and the validator names the setting at fault. */
#include "testutil.h"

#include <stddef.h>
#include <string.h>

#include "ff/privacy.h"

typedef struct {
    int64_t rounds;
    ff_privacy_cfg privacy;
} plan;

static const ff_cfg_field plan_schema[] = {
    {.key = "rounds", .type = FF_CFG_INT, .offset = offsetof(plan, rounds), .min = 1,
     .max = 1000, .def = "10"},
    {.key = "privacy", .type = FF_CFG_SECTION, .offset = offsetof(plan, privacy),
     .sub = ff_privacy_cfg_schema, .help = "differential privacy"},
    {0},
};

static int load(const char *yaml, plan *p)
{
    memset(p, 0, sizeof *p);
    int rc = ff_cfg_load_str("plan.yaml", yaml, strlen(yaml), plan_schema, p);
    ff_cfg_free(plan_schema, p);
    return rc;
}

static void test_defaults_and_load(void **state)
{
    (void)state;
    plan p;
    assert_int_equal(load("rounds: 5\n", &p), FF_OK);
    assert_false(p.privacy.record.enabled);
    assert_true(p.privacy.record.delta == 1e-5 && p.privacy.record.clip_norm == 1.0);
    assert_int_equal(p.privacy.client.mechanism, FF_PRIVACY_MECH_GAUSSIAN);
    assert_int_equal(p.privacy.client.bits, 20);
    assert_int_equal(ff_privacy_cfg_validate(&p.privacy, NULL), FF_OK); /* DP off: fine */
    assert_int_equal(load("privacy:\n"
                          "  record: {enabled: true, noise_multiplier: 1.1, clip_norm: 1.0,\n"
                          "           delta: 1e-6, epsilon_budget: 8}\n"
                          "  client:\n"
                          "    enabled: true\n"
                          "    noise_multiplier: 0.8\n"
                          "    clip_norm: 0.5\n"
                          "    epsilon_budget: 3\n"
                          "    delta: 0.01\n"
                          "    mechanism: distributed_discrete_gaussian\n",
                          &p),
                     FF_OK);
    assert_true(p.privacy.record.enabled && p.privacy.record.noise_multiplier == 1.1);
    assert_int_equal(p.privacy.client.mechanism, FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN);
    ff_privacy_context ctx = {.dataset_size = 20000, .num_sites = 8};
    assert_int_equal(ff_privacy_cfg_validate(&p.privacy, &ctx), FF_OK);
}

static void test_schema_errors_name_key(void **state)
{
    (void)state;
    plan p;
    assert_int_equal(load("privacy:\n  client:\n    mechanism: laplace\n", &p), FF_ECONFIG);
    ft_assert_error_has("privacy.client.mechanism");
    assert_int_equal(load("privacy:\n  record:\n    delta: 2\n", &p), FF_ECONFIG);
    ft_assert_error_has("privacy.record.delta");
    assert_int_equal(load("privacy:\n  record:\n    sigma: 1\n", &p), FF_ECONFIG);
    ft_assert_error_has("sigma");
}

static ff_privacy_cfg on(void)
{
    ff_privacy_cfg c;
    memset(&c, 0, sizeof c);
    assert_int_equal(ff_cfg_defaults(ff_privacy_cfg_schema, &c), FF_OK);
    c.record = (ff_privacy_record_cfg){1, 1.0, 1.0, 1e-5, 8.0};
    c.client.enabled = 1;
    c.client.noise_multiplier = 1.0;
    c.client.epsilon_budget = 4;
    c.client.delta = 1e-3;
    return c;
}

static void test_validator(void **state)
{
    (void)state;
    ff_privacy_context ctx = {.dataset_size = 1000, .num_sites = 10};
    ff_privacy_cfg c = on();
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_OK);

    c.record.noise_multiplier = 0;
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_ECONFIG);
    ft_assert_error_has("privacy.record.noise_multiplier: DP is enabled with noise_multiplier 0");

    c = on();
    c.record.delta = 1e-3; /* = 1/1000 patients */
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_ECONFIG);
    ft_assert_error_has("privacy.record.delta: 0.001 is not below 1/1000 patients");

    c = on();
    c.client.delta = 0.2; /* ≥ 1/10 sites */
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_ECONFIG);
    ft_assert_error_has("privacy.client.delta");

    c = on();
    ctx.record_eps_spent = 8.0;
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_ECONFIG);
    ft_assert_error_has("privacy.record.epsilon_budget: 8 is already spent");
    ctx.record_eps_spent = 0;

    c = on();
    c.client.epsilon_budget = 0;
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_ECONFIG);
    ft_assert_error_has("privacy.client.epsilon_budget");

    c = on();
    c.client.clip_norm = 0;
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_ECONFIG);
    ft_assert_error_has("privacy.client.clip_norm");

    c = on();
    c.client.mechanism = FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN;
    c.client.gamma = 1.0; /* per-site std 1·1/√10 ≈ 0.32 < γ/2 */
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_ECONFIG);
    ft_assert_error_has("privacy.client.gamma");
    c.client.gamma = 0.01;
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_OK);

    /* A disabled level is not checked. */
    c = on();
    c.record.enabled = 0;
    c.record.noise_multiplier = 0;
    assert_int_equal(ff_privacy_cfg_validate(&c, &ctx), FF_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_load),
        cmocka_unit_test(test_schema_errors_name_key),
        cmocka_unit_test(test_validator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
