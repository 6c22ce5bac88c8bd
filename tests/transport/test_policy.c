/* Site policy, consortium file and message validation (no network). */
#include "testutil.h"

#include <string.h>

#include "ff/transport.h"

static const char *good_policy =
    "site: hospital-a\n"
    "accepted_jobs:\n"
    "  - 0f3a5c1e8b2d4f6a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a\n"
    "require_secure_aggregation: true\n"
    "dp: {required: true, max_epsilon: 8.0, max_delta: 1.0e-5, min_noise_multiplier: 0.5,\n"
    "     max_clip_norm: 10.0}\n"
    "max_rounds: 20\n";

static uint8_t job[32];

static void load_policy(ff_policy *p, const char *yaml)
{
    const char *d = ft_tmpdir();
    ft_write_file(ft_path(d, "p.yaml"), yaml, strlen(yaml));
    assert_int_equal(ff_policy_load(ft_path(d, "p.yaml"), p), FF_OK);
    ft_rmtree(d);
}

static void make_task(Fedfuse__Task *t, Fedfuse__SecAggParams *sa, Fedfuse__DpParams *dp)
{
    static const char hex[] = "0f3a5c1e8b2d4f6a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        job[i] = (uint8_t)v;
    }
    fedfuse__task__init(t);
    fedfuse__sec_agg_params__init(sa);
    fedfuse__dp_params__init(dp);
    t->phase = FEDFUSE__PHASE__PHASE_TRAIN;
    t->round = 3;
    t->total_rounds = 10;
    t->job_sha256.data = job;
    t->job_sha256.len = 32;
    sa->enabled = 1;
    dp->enabled = 1;
    dp->epsilon = 4.0;
    dp->delta = 1e-6;
    dp->noise_multiplier = 1.1;
    dp->clip_norm = 1.0;
    t->secagg = sa;
    t->dp = dp;
}

static void test_policy_accepts_and_refuses(void **state)
{
    (void)state;
    ff_policy p;
    load_policy(&p, good_policy);
    Fedfuse__Task t;
    Fedfuse__SecAggParams sa;
    Fedfuse__DpParams dp;
    make_task(&t, &sa, &dp);
    assert_int_equal(ff_policy_check(&p, &t), FF_OK);

    job[0] ^= 1;
    assert_int_equal(ff_policy_check(&p, &t), FF_EPOLICY);
    ft_assert_error_has("not in accepted_jobs");
    job[0] ^= 1;

    sa.enabled = 0;
    assert_int_equal(ff_policy_check(&p, &t), FF_EPOLICY);
    ft_assert_error_has("secure aggregation is required");
    sa.enabled = 1;

    dp.epsilon = 9.0;
    assert_int_equal(ff_policy_check(&p, &t), FF_EPOLICY);
    ft_assert_error_has("max_epsilon 8");
    dp.epsilon = 4.0;

    dp.noise_multiplier = 0.1;
    assert_int_equal(ff_policy_check(&p, &t), FF_EPOLICY);
    ft_assert_error_has("min_noise_multiplier");
    dp.noise_multiplier = 1.1;

    dp.enabled = 0;
    assert_int_equal(ff_policy_check(&p, &t), FF_EPOLICY);
    ft_assert_error_has("differential privacy is required");
    dp.enabled = 1;

    t.total_rounds = 50;
    assert_int_equal(ff_policy_check(&p, &t), FF_EPOLICY);
    ft_assert_error_has("max_rounds is 20");
    t.total_rounds = 10;

    t.job_sha256.len = 5;
    assert_int_equal(ff_policy_check(&p, &t), FF_EINVAL);
    t.job_sha256.len = 32;

    t.phase = FEDFUSE__PHASE__PHASE_WAIT; /* nothing to approve */
    sa.enabled = 0;
    assert_int_equal(ff_policy_check(&p, &t), FF_OK);
    ff_policy_free(&p);
}

static void test_policy_file_errors(void **state)
{
    (void)state;
    const char *d = ft_tmpdir();
    ff_policy p;
    const char *bad = "site: a\naccepted_jobs: [abc]\n";
    ft_write_file(ft_path(d, "p.yaml"), bad, strlen(bad));
    assert_int_equal(ff_policy_load(ft_path(d, "p.yaml"), &p), FF_ECONFIG);
    ft_assert_error_has("accepted_jobs[0]");
    ff_policy_free(&p);
    const char *unknown = "site: a\naccepted_jobs: []\nallow_everything: true\n";
    ft_write_file(ft_path(d, "p.yaml"), unknown, strlen(unknown));
    assert_int_not_equal(ff_policy_load(ft_path(d, "p.yaml"), &p), FF_OK);
    ff_policy_free(&p);
    /* The shipped example loads. */
    assert_int_equal(ff_policy_load(FF_SOURCE_DIR "/configs/site-policy.example.yaml", &p), FF_OK);
    assert_int_equal(p.require_secagg, 1);
    assert_int_equal(p.max_rounds, 200);
    ff_policy_free(&p);
    ft_rmtree(d);
}

static void test_consortium(void **state)
{
    (void)state;
    ff_consortium c;
    assert_int_equal(ff_consortium_load(FF_SOURCE_DIR "/configs/consortium.example.yaml", &c),
                     FF_OK);
    assert_string_equal(c.consortium, "ed-outcomes-2026");
    assert_non_null(strstr(c.ca, "/configs/pki/ca.crt")); /* relative to the file */
    assert_true(ff_consortium_has(&c, "hospital-b"));
    assert_false(ff_consortium_has(&c, "hospital-z"));
    ff_consortium_free(&c);
    const char *d = ft_tmpdir();
    const char *dup = "consortium: x\nca: ca.crt\nsites: [{name: a}, {name: a}]\n";
    ft_write_file(ft_path(d, "c.yaml"), dup, strlen(dup));
    assert_int_equal(ff_consortium_load(ft_path(d, "c.yaml"), &c), FF_ECONFIG);
    ft_assert_error_has("listed twice");
    ff_consortium_free(&c);
    ft_rmtree(d);
}

static void test_message_validation(void **state)
{
    (void)state;
    Fedfuse__Task t = FEDFUSE__TASK__INIT;
    assert_int_equal(ff_msg_validate(&t.base), FF_OK);
    t.phase = 42;
    assert_int_equal(ff_msg_validate(&t.base), FF_EINVAL);
    ft_assert_error_has("unknown enum value 42");
    t.phase = FEDFUSE__PHASE__PHASE_TRAIN;
    uint8_t h[31] = {0};
    t.model_sha256.data = h;
    t.model_sha256.len = sizeof h;
    assert_int_equal(ff_msg_validate(&t.base), FF_EINVAL);
    ft_assert_error_has("model_sha256");
    t.model_sha256.len = 0;
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    t.run_id = big;
    assert_int_equal(ff_msg_validate(&t.base), FF_EINVAL);
    t.run_id = (char *)"";
    /* Nested messages are checked too. */
    Fedfuse__SecAggParams sa = FEDFUSE__SEC_AGG_PARAMS__INIT;
    sa.params.len = FF_PAYLOAD_MAX + 1;
    sa.params.data = (uint8_t *)big;
    t.secagg = &sa;
    assert_int_equal(ff_msg_validate(&t.base), FF_EINVAL);
    ft_assert_error_has("SecAggParams.params");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_accepts_and_refuses),
        cmocka_unit_test(test_policy_file_errors),
        cmocka_unit_test(test_consortium),
        cmocka_unit_test(test_message_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
