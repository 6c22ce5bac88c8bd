/* Site policy, consortium file and message validation (no network). */
#include "testutil.h"

#include <math.h>
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

/* The good policy and a task it accepts (client-level DP on, secure aggregation on). */
typedef struct {
    ff_policy p;
    Fedfuse__Task t;
    Fedfuse__SecAggParams sa;
    Fedfuse__DpParams dp;
} policy_fx;

static void fx_init(policy_fx *f)
{
    load_policy(&f->p, good_policy);
    make_task(&f->t, &f->sa, &f->dp);
}

static void test_policy_accepts_and_refuses(void **state)
{
    (void)state;
    policy_fx f;
    fx_init(&f);
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_OK);

    job[0] ^= 1;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_EPOLICY);
    /* both hashes: the task's job and what the site approved */
    ft_assert_error_has("policy: job 0e3a5c1e8b2d");
    ft_assert_error_has("(accepted_jobs: 0f3a5c1e8b2d");
    ft_assert_error_has("fedfuse policy approve --policy POLICY --job 0e3a5c1e8b2d");
    job[0] ^= 1;

    f.sa.enabled = 0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_EPOLICY);
    ft_assert_error_has("secure aggregation is required");
    f.sa.enabled = 1;

    f.dp.epsilon = 9.0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_EPOLICY);
    ft_assert_error_has("max_epsilon 8");
    f.dp.epsilon = 4.0;

    f.dp.noise_multiplier = 0.1;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_EPOLICY);
    ft_assert_error_has("min_noise_multiplier");
    f.dp.noise_multiplier = 1.1;

    f.dp.enabled = 0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_EPOLICY);
    ft_assert_error_has("differential privacy is required");
    f.dp.enabled = 1;

    f.t.total_rounds = 50;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_EPOLICY);
    ft_assert_error_has("max_rounds is 20");
    f.t.total_rounds = 10;

    f.t.job_sha256.len = 5;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_EINVAL);
    f.t.job_sha256.len = 32;

    f.t.phase = FEDFUSE__PHASE__PHASE_WAIT; /* nothing to approve */
    f.sa.enabled = 0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, NULL), FF_OK);
    ff_policy_free(&f.p);
}

/* Record-level DP (DP-SGD the site runs itself) meets dp.required; each enabled level meets
 * the limits; a record budget above max_epsilon is capped by the site, not refused. */
static void test_policy_record_dp(void **state)
{
    (void)state;
    policy_fx f;
    fx_init(&f);
    f.dp.enabled = 0;
    ff_policy_record_dp rec = {.enabled = 1, .epsilon_budget = 100.0, .delta = 1e-6,
                               .noise_multiplier = 1.0, .clip_norm = 1.0};
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_OK);
    assert_true(ff_policy_record_budget(&f.p, 100.0) == 8.0);
    assert_true(ff_policy_record_budget(&f.p, 3.0) == 3.0);

    rec.noise_multiplier = 0.4;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("privacy.record noise multiplier 0.4 is below min_noise_multiplier 0.5");
    rec.noise_multiplier = 1.0;
    rec.delta = 1e-3;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("privacy.record delta 0.001 exceeds max_delta 1e-05");
    rec.delta = 1e-6;
    rec.clip_norm = 0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("privacy.record clip norm 0 is outside (0, 10]");
    rec.clip_norm = 1.0;
    rec.epsilon_budget = NAN;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    rec.epsilon_budget = 100.0;

    /* both levels: both are checked */
    f.dp.enabled = 1;
    f.dp.epsilon = 9.0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("max_epsilon 8");
    f.dp.epsilon = 4.0;
    rec.noise_multiplier = 0.1;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("privacy.record noise multiplier");
    rec.noise_multiplier = 1.0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_OK);

    /* neither level */
    f.dp.enabled = 0;
    rec.enabled = 0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("enables neither client-level (privacy.client) nor record-level");

    /* dp.level: which level must be on */
    rec.enabled = 1;
    f.p.dp.level = FF_POLICY_DP_CLIENT;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("dp.level client requires client-level DP (privacy.client)");
    f.dp.enabled = 1;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_OK);
    f.p.dp.level = FF_POLICY_DP_BOTH;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_OK);
    rec.enabled = 0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("dp.level both requires record-level DP");
    f.p.dp.level = FF_POLICY_DP_RECORD;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("dp.level record requires record-level DP (privacy.record");
    f.dp.enabled = 0;
    f.p.dp.level = FF_POLICY_DP_ANY;

    /* max_epsilon 0 is the strictest policy: no record-level round either */
    f.p.dp.max_epsilon = 0;
    rec.enabled = 1;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_EPOLICY);
    ft_assert_error_has("max_epsilon 0 allows no record-level DP round");
    assert_true(ff_policy_record_budget(&f.p, 100.0) == 0.0);
    assert_int_equal(ff_policy_check_job(&f.p, &f.t), FF_OK);
    job[0] ^= 1;
    assert_int_equal(ff_policy_check_job(&f.p, &f.t), FF_EPOLICY);
    job[0] ^= 1;

    /* without dp.required nothing is capped and no DP is needed */
    f.p.dp.required = 0;
    assert_int_equal(ff_policy_check(&f.p, &f.t, &rec), FF_OK);
    assert_true(ff_policy_record_budget(&f.p, 100.0) == 100.0);
    ff_policy_free(&f.p);
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
    /* dp.level is one of its names, with the place of a wrong one */
    const char *lvl = "site: a\naccepted_jobs: [0f3a5c1e8b2d4f6a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a]\n"
                      "dp: {required: true, level: patients}\n";
    ft_write_file(ft_path(d, "p.yaml"), lvl, strlen(lvl));
    assert_int_equal(ff_policy_load(ft_path(d, "p.yaml"), &p), FF_ECONFIG);
    ft_assert_error_has("dp.level");
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
    char *sites[2] = {(char *)"site-1", big};
    sa.sites = sites;
    sa.n_sites = 2;
    t.secagg = &sa;
    assert_int_equal(ff_msg_validate(&t.base), FF_EINVAL);
    ft_assert_error_has("SecAggParams.sites");
    sa.n_sites = 1;
    assert_int_equal(ff_msg_validate(&t.base), FF_OK);
    /* the inclusion proof's hashes are 32 bytes each, repeated ones included */
    Fedfuse__InclusionProof inc = FEDFUSE__INCLUSION_PROOF__INIT;
    uint8_t h32[32] = {0};
    ProtobufCBinaryData path[2] = {{sizeof h32, h32}, {sizeof h32 - 1, h32}};
    inc.path_sha256 = path;
    inc.n_path_sha256 = 2;
    t.inclusion = &inc;
    assert_int_equal(ff_msg_validate(&t.base), FF_EINVAL);
    ft_assert_error_has("InclusionProof.path_sha256");
    inc.n_path_sha256 = 1;
    assert_int_equal(ff_msg_validate(&t.base), FF_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_accepts_and_refuses),
        cmocka_unit_test(test_policy_record_dp),
        cmocka_unit_test(test_policy_file_errors),
        cmocka_unit_test(test_consortium),
        cmocka_unit_test(test_message_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
