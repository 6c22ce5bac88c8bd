/* The training plan's `privacy:` section: each contradictory or unsafe setting is an
 * FF_ECONFIG "FILE:LINE:COL: privacy.LEVEL.KEY: why" at the key's place, the run checks
 * (sites, spent ε, secure aggregation) likewise, and the section is in the job hash only
 * when DP is on (hashes of older plans unchanged). */
#include "testutil.h"

#include "ff/coordinator.h"

#include <stdlib.h>
#include <string.h>

static int load(ff_plan *p, const char *yaml)
{
    return ff_plan_load_str(p, "plan.yaml", yaml, strlen(yaml), 4);
}

static void expect_load_error(const char *yaml, const char *msg)
{
    ff_plan p;
    assert_int_equal(load(&p, yaml), FF_ECONFIG);
    ft_assert_error_has(msg);
    ff_plan_free(&p);
}

#define CLIENT_ON "privacy:\n  client:\n    enabled: true\n"

static void test_load_errors(void **state)
{
    (void)state;
    /* σ = 0 with DP on: line 5, column 5 is the key */
    expect_load_error("local_steps: 3\n" CLIENT_ON "    noise_multiplier: 0\n"
                      "    epsilon_budget: 3\n",
                      "plan.yaml:5:5: privacy.client.noise_multiplier: DP is enabled with "
                      "noise_multiplier 0");
    /* σ left at its default 0 is the same error, placed at the section */
    expect_load_error("local_steps: 3\n" CLIENT_ON "    epsilon_budget: 3\n",
                      "privacy.client.noise_multiplier: DP is enabled");
    expect_load_error("local_steps: 3\n" CLIENT_ON "    noise_multiplier: 1\n    delta: 0\n"
                      "    epsilon_budget: 3\n",
                      "plan.yaml:6:5: privacy.client.delta: 0 is outside (0, 1)");
    expect_load_error("local_steps: 3\n" CLIENT_ON "    noise_multiplier: 1\n",
                      "privacy.client.epsilon_budget: DP is enabled with budget 0");
    expect_load_error("local_steps: 3\n" CLIENT_ON "    noise_multiplier: 1\n    clip_norm: 0\n"
                      "    epsilon_budget: 3\n",
                      "plan.yaml:6:5: privacy.client.clip_norm: DP is enabled with clip_norm 0");
    /* schema-level: unknown keys and enum values name the place too */
    expect_load_error("privacy:\n  client:\n    sigma: 1\n", "plan.yaml:3:5: privacy.client.sigma: unknown key");
    expect_load_error("privacy:\n  client: {mechanism: laplace}\n", "mechanism: 'laplace'");
}

static const char *ddg_plan = "local_steps: 3\n" CLIENT_ON "    noise_multiplier: 1.2\n"
                              "    delta: 1e-3\n    epsilon_budget: 5\n"
                              "    mechanism: distributed_discrete_gaussian\n    bits: 40\n";

static void expect_run_error(const char *yaml, ff_privacy_context ctx, int secagg,
                             const char *msg)
{
    ff_plan p;
    assert_int_equal(load(&p, yaml), FF_OK);
    assert_int_equal(ff_plan_check_privacy(&p, "plan.yaml", yaml, strlen(yaml), &ctx, secagg),
                     FF_ECONFIG);
    ft_assert_error_has(msg);
    ff_plan_free(&p);
}

static void test_run_errors(void **state)
{
    (void)state;
    const char *g = "local_steps: 3\n" CLIENT_ON "    noise_multiplier: 1.2\n    delta: 0.3\n"
                    "    epsilon_budget: 5\n";
    ff_privacy_context four = {.num_sites = 4};
    /* δ ≥ 1/sites */
    expect_run_error(g, four, 0,
                     "plan.yaml:6:5: privacy.client.delta: 0.3 is not below 1/4 sites");
    const char *g2 = "local_steps: 3\n" CLIENT_ON "    noise_multiplier: 1.2\n    delta: 1e-3\n"
                     "    epsilon_budget: 5\n";
    /* budget already spent (a resumed run) */
    ff_privacy_context spent = {.num_sites = 4, .client_eps_spent = 5.0};
    expect_run_error(g2, spent, 0,
                     "plan.yaml:7:5: privacy.client.epsilon_budget: 5 is already spent");
    /* gaussian needs single updates: not with secure aggregation */
    expect_run_error(g2, four, 1, "privacy.client.mechanism: gaussian clips single updates");
    /* ddg needs secure aggregation, and lanes of at most 32 bits */
    expect_run_error(ddg_plan, four, 0,
                     "plan.yaml:8:5: privacy.client.mechanism: distributed_discrete_gaussian "
                     "needs secure_aggregation.enabled");
    expect_run_error(ddg_plan, four, 1,
                     "plan.yaml:9:5: privacy.client.bits: 40 exceeds the 32-bit lanes");
    /* record-level DP-SGD runs at the sites: accepted here; δ ≥ 1/patients is the site's
     * check (its ledger and its patients), named when the context knows the patients */
    const char *rec = "local_steps: 3\nprivacy:\n  record:\n    enabled: true\n"
                      "    noise_multiplier: 1\n    delta: 0.01\n    epsilon_budget: 2\n";
    ff_plan pr;
    assert_int_equal(load(&pr, rec), FF_OK);
    assert_int_equal(ff_plan_check_privacy(&pr, "plan.yaml", rec, strlen(rec), &four, 0), FF_OK);
    ff_plan_free(&pr);
    ff_privacy_context site = {.dataset_size = 100};
    expect_run_error(rec, site, 0, "plan.yaml:6:5: privacy.record.delta: 0.01 is not below 1/100 patients");
    /* DP-SGD clips a patient's supervised gradient: a contrastive stage is refused */
    expect_load_error("local_steps: 3\nstages:\n  - {name: pre, objective: contrastive, rounds: 1}\n"
                      "privacy:\n  record: {enabled: true, noise_multiplier: 1, epsilon_budget: 2}\n",
                      "stages[0].objective: privacy.record (DP-SGD) supports only the supervised");
    /* and a sound plan passes */
    ff_plan p;
    assert_int_equal(load(&p, g2), FF_OK);
    ff_privacy_context ok = {.num_sites = 4, .client_eps_spent = 4.9};
    assert_int_equal(ff_plan_check_privacy(&p, "plan.yaml", g2, strlen(g2), &ok, 0), FF_OK);
    ff_plan_free(&p);
}

static void hash_of(const char *yaml, char out[FF_SHA256_HEX], int *has_privacy)
{
    ff_plan p;
    assert_int_equal(load(&p, yaml), FF_OK);
    assert_int_equal(ff_job_hash(&p, "m", 1, out), FF_OK);
    char *text;
    size_t len;
    assert_int_equal(ff_plan_canonical(&p, &text, &len), FF_OK);
    *has_privacy = strstr(text, "privacy") != NULL;
    free(text);
    ff_plan_free(&p);
}

static void test_job_hash(void **state)
{
    (void)state;
    char a[FF_SHA256_HEX], b[FF_SHA256_HEX], c[FF_SHA256_HEX], d[FF_SHA256_HEX];
    int pa, pb, pc, pd;
    hash_of("local_steps: 3\n", a, &pa);
    hash_of("local_steps: 3\nprivacy: {client: {enabled: false, noise_multiplier: 3}}\n", b, &pb);
    const char *on = "local_steps: 3\n" CLIENT_ON "    noise_multiplier: 1.2\n"
                     "    delta: 1e-3\n    epsilon_budget: 5\n";
    hash_of(on, c, &pc);
    char *on2 = strdup(on);
    *strstr(on2, "1.2") = '2'; /* σ 2.2: what the sites approve changes */
    hash_of(on2, d, &pd);
    free(on2);
    assert_false(pa || pb);
    assert_true(pc && pd);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(c, d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_run_errors),
        cmocka_unit_test(test_job_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
