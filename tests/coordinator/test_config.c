/* Coordinator config and training plan: defaults, the documented examples, each kind of
 * error with FILE:LINE:COL, stages, canonical form and job hash. */
#include "testutil.h"

#include "ff/coordinator.h"

#include <stdlib.h>
#include <string.h>

static int load(ff_coord_config *c, const char *yaml)
{
    return ff_coord_config_load_str(c, "coordinator.yaml", yaml, strlen(yaml));
}

static void test_minimal_and_defaults(void **state)
{
    (void)state;
    ff_coord_config c;
    assert_int_equal(load(&c, "run_name: r1\nrounds: 7\n"), FF_OK);
    assert_string_equal(c.run_name, "r1");
    assert_int_equal(c.rounds, 7);
    assert_int_equal(c.strategy.name, FF_STRATEGY_FEDAVG);
    assert_true(c.strategy.server_lr == 1.0 && c.strategy.beta1 == 0.9);
    assert_true(c.strategy.beta2 == 0.99 && c.strategy.tau == 0.001);
    assert_int_equal(c.sampling.mode, FF_SAMPLE_ALL);
    assert_int_equal(c.quorum.min_sites, 1);
    assert_true(c.deadlines.train == 3600 && c.deadlines.evaluate == 600);
    assert_int_equal(c.on_quorum_fail, FF_QUORUM_RETRY);
    assert_int_equal(c.max_retries, 3);
    assert_string_equal(c.checkpoint_dir, "out/checkpoints");
    assert_string_equal(c.out_dir, "out");
    assert_int_equal(c.secure_aggregation.enabled, 0);
    ff_coord_config_free(&c);
}

static void test_example_files_load(void **state)
{
    (void)state;
    ff_coord_config c;
    assert_int_equal(ff_coord_config_load(&c, FF_SOURCE_DIR "/configs/coordinator.yaml"), FF_OK);
    assert_string_equal(c.run_name, "demo");
    assert_int_equal(c.rounds, 20);
    ff_coord_config_free(&c);
    ff_plan p;
    assert_int_equal(ff_plan_load(&p, FF_SOURCE_DIR "/configs/plan.yaml", 20), FF_OK);
    assert_int_equal(p.stages.count, 1);
    assert_string_equal(((ff_plan_stage *)p.stages.items)[0].name, "default");
    ff_plan_free(&p);
}

static void expect_error(const char *yaml, const char *msg)
{
    ff_coord_config c;
    assert_int_equal(load(&c, yaml), FF_ECONFIG);
    ft_assert_error_has(msg);
    ff_coord_config_free(&c);
}

static void test_errors_name_the_place(void **state)
{
    (void)state;
    expect_error("rounds: 3\n", "coordinator.yaml:1:1: run_name: required key is missing");
    expect_error("run_name: a\nrounds: 3\nstrategy:\n  name: fedsgd\n",
                 "coordinator.yaml:4:9: strategy.name: 'fedsgd' is not one of: fedavg, fedprox, "
                 "fedadam, fedyogi, fedadagrad");
    expect_error("run_name: a\nrounds: 0\n", "coordinator.yaml:2:9: rounds: 0 is out of range");
    expect_error("run_name: a\nrounds: 3\nsampling:\n  mode: some\n",
                 "coordinator.yaml:4:9: sampling.mode: 'some' is not one of: all, fraction, count");
    expect_error("run_name: a\nrounds: 3\nsampling:\n  fraction: 1.5\n",
                 "coordinator.yaml:4:13: sampling.fraction: 1.5 is out of range");
    expect_error("run_name: a\nrounds: 3\nquorum:\n  min_sites: 0\n",
                 "coordinator.yaml:4:14: quorum.min_sites: 0 is out of range");
    expect_error("run_name: a\nrounds: 3\ndeadlines:\n  train: -1\n",
                 "coordinator.yaml:4:10: deadlines.train: -1 is out of range");
    expect_error("run_name: a\nrounds: 3\non_quorum_fail: wait\n",
                 "coordinator.yaml:3:17: on_quorum_fail: 'wait' is not one of: retry, stop");
    expect_error("run_name: a\nrounds: 3\nstrategy:\n  beta1: 1.0\n",
                 "coordinator.yaml:4:10: strategy.beta1: 1 is out of range");
    expect_error("run_name: a\nrounds: 3\nprivacy:\n  epsilon: 3\n",
                 "coordinator.yaml:3:1: privacy: unknown key");
    expect_error("run_name: a\nrounds: 3\nsecure_aggregation:\n  enabled: maybe\n",
                 "coordinator.yaml:4:12: secure_aggregation.enabled: 'maybe' is not true or false");
    /* cross-field checks name the file and the key */
    expect_error("run_name: a\nrounds: 3\nsampling:\n  mode: count\n  count: 1\nquorum:\n  min_sites: 2\n",
                 "coordinator.yaml:5:3: sampling.count: 1 sites per round can never reach quorum.min_sites 2");
    expect_error("run_name: a\nrounds: 3\nsecure_aggregation:\n  enabled: true\n  threshold: 3\n",
                 "coordinator.yaml:5:3: secure_aggregation.threshold: 3 is above quorum.min_sites 1");
    expect_error("run_name: ''\nrounds: 3\n", "coordinator.yaml:1:1: run_name: must not be empty");
    expect_error("rounds: 3\nrun_name: ''\n", "coordinator.yaml:2:1: run_name: must not be empty");
}

static int load_plan(ff_plan *p, const char *yaml)
{
    return ff_plan_load_str(p, "plan.yaml", yaml, strlen(yaml), 10);
}

static void test_plan_default_stage_and_stages(void **state)
{
    (void)state;
    ff_plan p;
    assert_int_equal(load_plan(&p, ""), FF_OK);
    assert_int_equal(p.stages.count, 1);
    ff_plan_stage *s = p.stages.items;
    assert_string_equal(s[0].name, FF_PLAN_DEFAULT_STAGE);
    assert_int_equal(s[0].rounds, 10);
    assert_int_equal(p.batch_size, 32);
    assert_int_equal(p.optimizer.name, FF_OPT_ADAMW);
    assert_int_equal(ff_plan_stage_of_round(&p, 1), 0);
    assert_int_equal(ff_plan_stage_of_round(&p, 99), 0);
    ff_plan_free(&p);

    const char *three =
        "local_steps: 50\noptimizer:\n  name: sgd\n  lr: 0.1\nstages:\n"
        "  - name: clip\n    objective: contrastive\n    trainable: [img., txt.]\n"
        "    modalities: [img, txt]\n    rounds: 3\n    lr: 0.01\n"
        "  - name: ehr\n    trainable: [ehr.]\n    rounds: 2\n"
        "  - name: finetune\n    objective: supervised\n    rounds: 5\n";
    assert_int_equal(load_plan(&p, three), FF_OK);
    assert_int_equal(p.stages.count, 3);
    s = p.stages.items;
    assert_int_equal(s[0].objective, FF_OBJ_CONTRASTIVE);
    assert_int_equal(s[0].trainable.count, 2);
    assert_string_equal(s[0].trainable.items[1], "txt.");
    assert_int_equal(p.optimizer.name, FF_OPT_SGD);
    /* rounds 1-3 stage 0, 4-5 stage 1, 6.. stage 2 */
    size_t want[] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2};
    for (int r = 1; r <= 11; r++)
        assert_int_equal(ff_plan_stage_of_round(&p, r), want[r - 1]);
    ff_plan_free(&p);
}

static void expect_plan_error(const char *yaml, const char *msg)
{
    ff_plan p;
    assert_int_equal(load_plan(&p, yaml), FF_ECONFIG);
    ft_assert_error_has(msg);
    ff_plan_free(&p);
}

static void test_plan_errors(void **state)
{
    (void)state;
    expect_plan_error("optimizer:\n  name: lion\n",
                      "plan.yaml:2:9: optimizer.name: 'lion' is not one of: adamw, sgd");
    expect_plan_error("batch_size: 0\n", "plan.yaml:1:13: batch_size: 0 is out of range");
    expect_plan_error("stages:\n  - name: a\n", "plan.yaml:2:5: stages[0].rounds: required key is missing");
    expect_plan_error("stages:\n  - name: a\n    rounds: 1\n    objective: clip\n",
                      "plan.yaml:4:16: stages[0].objective: 'clip' is not one of");
    expect_plan_error("stages:\n  - {name: a, rounds: 1}\n  - {name: a, rounds: 2}\n",
                      "plan.yaml:3:6: stages[1].name: 'a' is used twice");
    expect_plan_error("stages:\n  - {name: a, rounds: 1, modalities: [img, xray]}\n",
                      "plan.yaml:2:26: stages[0].modalities: 'xray' is not one of img, txt, ehr");
    expect_plan_error("local_epochs: 0\n", "plan.yaml:1:1: local_steps: local_epochs and local_steps are both 0");
    expect_plan_error("fedprox_mu: -1\n", "plan.yaml:1:13: fedprox_mu: -1 is out of range");
}

static void test_job_hash(void **state)
{
    (void)state;
    ff_plan a, b;
    assert_int_equal(load_plan(&a, "batch_size: 16\n"), FF_OK);
    /* same content, other spelling and key order: same hash */
    assert_int_equal(load_plan(&b, "optimizer: {lr: 0.001}\nbatch_size: 16\n"), FF_OK);
    char ha[FF_SHA256_HEX], hb[FF_SHA256_HEX], hc[FF_SHA256_HEX];
    const char model[] = "model: fusion-base\n";
    assert_int_equal(ff_job_hash(&a, model, strlen(model), ha), FF_OK);
    assert_int_equal(ff_job_hash(&b, model, strlen(model), hb), FF_OK);
    assert_string_equal(ha, hb);
    /* another model config or another plan value: another hash */
    assert_int_equal(ff_job_hash(&a, "model: tiny\n", 12, hc), FF_OK);
    assert_string_not_equal(ha, hc);
    ((ff_plan_stage *)b.stages.items)[0].lr = 0.5;
    assert_int_equal(ff_job_hash(&b, model, strlen(model), hb), FF_OK);
    assert_string_not_equal(ha, hb);
    /* the hash is SHA-256(SHA-256(model) || SHA-256(canonical plan)): recompute it */
    char *text;
    size_t len;
    assert_int_equal(ff_plan_canonical(&a, &text, &len), FF_OK);
    assert_non_null(strstr(text, "batch_size=16\n"));
    uint8_t both[64], h[32];
    ff_sha256(model, strlen(model), both);
    ff_sha256(text, len, both + 32);
    ff_sha256(both, 64, h);
    char hex[FF_SHA256_HEX];
    ff_hex(h, 32, hex);
    assert_string_equal(hex, ha);
    free(text);
    ff_plan_free(&a);
    ff_plan_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_and_defaults),
        cmocka_unit_test(test_example_files_load),
        cmocka_unit_test(test_errors_name_the_place),
        cmocka_unit_test(test_plan_default_stage_and_stages),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_job_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
