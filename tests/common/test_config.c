#include "testutil.h"

#include <stddef.h>
#include <string.h>

typedef struct {
    char name[32];
    double lr;
} stage;

typedef struct {
    int64_t rounds;
    double fraction;
    int secure;
    int strategy;
    char site[16];
    struct {
        int64_t port;
        char host[64];
    } net;
    ff_cfg_list stages;
    ff_cfg_strlist tags;
} test_cfg;

static const char *const strategies[] = {"fedavg", "fedprox", "fedadam", NULL};

static const ff_cfg_field net_fields[] = {
    {.key = "port", .type = FF_CFG_INT, .offset = offsetof(test_cfg, net.port) - offsetof(test_cfg, net),
     .min = 1, .max = 65535, .def = "7000"},
    {.key = "host", .type = FF_CFG_STRING, .offset = offsetof(test_cfg, net.host) - offsetof(test_cfg, net),
     .size = 64, .def = "127.0.0.1"},
    {0},
};

static const ff_cfg_field stage_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = offsetof(stage, name), .size = 32, .required = 1},
    {.key = "lr", .type = FF_CFG_DOUBLE, .offset = offsetof(stage, lr), .min = 0, .max = 1, .def = "0.001"},
    {0},
};

static const ff_cfg_field schema[] = {
    {.key = "rounds", .type = FF_CFG_INT, .offset = offsetof(test_cfg, rounds), .required = 1,
     .min = 1, .max = 10000},
    {.key = "fraction", .type = FF_CFG_DOUBLE, .offset = offsetof(test_cfg, fraction), .min = 0,
     .max = 1, .def = "1.0"},
    {.key = "secure", .type = FF_CFG_BOOL, .offset = offsetof(test_cfg, secure), .def = "true"},
    {.key = "strategy", .type = FF_CFG_ENUM, .offset = offsetof(test_cfg, strategy),
     .choices = strategies, .def = "fedavg"},
    {.key = "site", .type = FF_CFG_STRING, .offset = offsetof(test_cfg, site), .size = 16},
    {.key = "net", .type = FF_CFG_SECTION, .offset = offsetof(test_cfg, net), .sub = net_fields},
    {.key = "stages", .type = FF_CFG_LIST, .offset = offsetof(test_cfg, stages),
     .size = sizeof(stage), .sub = stage_fields, .min = 1, .max = 8},
    {.key = "tags", .type = FF_CFG_STRLIST, .offset = offsetof(test_cfg, tags)},
    {0},
};

static int load(const char *yaml, test_cfg *c)
{
    memset(c, 0, sizeof *c);
    return ff_cfg_load_str("plan.yaml", yaml, strlen(yaml), schema, c);
}

static void test_good_file_and_defaults(void **state)
{
    (void)state;
    test_cfg c;
    assert_int_equal(load("rounds: 5\nstrategy: fedadam\nnet:\n  port: 9000\n"
                          "stages:\n  - name: pre\n    lr: 0.01\n  - name: fine\n"
                          "tags: [a, b]\nsite: 'st-1'\n", &c), FF_OK);
    assert_int_equal(c.rounds, 5);
    assert_true(c.fraction == 1.0);
    assert_int_equal(c.secure, 1);
    assert_int_equal(c.strategy, 2);
    assert_int_equal(c.net.port, 9000);
    assert_string_equal(c.net.host, "127.0.0.1");
    assert_string_equal(c.site, "st-1");
    assert_int_equal(c.stages.count, 2);
    stage *s = c.stages.items;
    assert_string_equal(s[0].name, "pre");
    assert_true(s[0].lr == 0.01);
    assert_true(s[1].lr == 0.001);
    assert_int_equal(c.tags.count, 2);
    assert_string_equal(c.tags.items[1], "b");
    ff_cfg_free(schema, &c);
}

static void expect_error(const char *yaml, const char *msg)
{
    test_cfg c;
    assert_int_equal(load(yaml, &c), FF_ECONFIG);
    ft_assert_error_has(msg);
    ff_cfg_free(schema, &c);
}

static void test_each_kind_of_bad_config(void **state)
{
    (void)state;
    expect_error("rounds: 5\nroundz: 3\n", "plan.yaml:2:1: roundz: unknown key (known keys: rounds,");
    expect_error("rounds: five\n", "plan.yaml:1:9: rounds: 'five' is not an integer");
    expect_error("rounds: \"5\"\n", "plan.yaml:1:9: rounds: expected an integer, found the quoted string \"5\"");
    expect_error("rounds: 0\n", "plan.yaml:1:9: rounds: 0 is out of range [1, 10000]");
    expect_error("fraction: 0.5\n", "plan.yaml:1:1: rounds: required key is missing");
    expect_error("rounds: 1\nfraction: 1.5\n", "plan.yaml:2:11: fraction: 1.5 is out of range [0, 1]");
    expect_error("rounds: 1\nsecure: yes\n", "plan.yaml:2:9: secure: 'yes' is not true or false");
    expect_error("rounds: 1\nstrategy: fedsgd\n",
                 "plan.yaml:2:11: strategy: 'fedsgd' is not one of: fedavg, fedprox, fedadam");
    expect_error("rounds: 1\nnet:\n  port: 70000\n", "plan.yaml:3:9: net.port: 70000 is out of range");
    expect_error("rounds: 1\nnet:\n  proto: tcp\n", "plan.yaml:3:3: net.proto: unknown key");
    expect_error("rounds: 1\nnet: 5\n", "plan.yaml:2:6: net: expected a mapping");
    expect_error("rounds: 1\nstages:\n  - lr: 0.1\n", "stages[0].name: required key is missing");
    expect_error("rounds: 1\nstages: []\n", "stages: 0 items, expected 1 to 8");
    expect_error("rounds: 1\nsite: a-very-long-site-name-indeed\n", "site: value is 28 bytes, at most 15 allowed");
    expect_error("rounds: 1\nrounds: 2\n", "plan.yaml:2:1: rounds: duplicate key");
    expect_error("rounds: [1\n", "plan.yaml:2:1: YAML syntax error");
    expect_error("rounds:\n", "rounds: missing value (expected an integer)");
    expect_error("- 1\n- 2\n", "plan.yaml:1:1: (top level): expected a mapping");
}

static void test_missing_file(void **state)
{
    (void)state;
    test_cfg c;
    memset(&c, 0, sizeof c);
    assert_int_equal(ff_cfg_load("/nonexistent/plan.yaml", schema, &c), FF_EIO);
    ft_assert_error_has("/nonexistent/plan.yaml: cannot open");
    ff_cfg_free(schema, &c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file_and_defaults),
        cmocka_unit_test(test_each_kind_of_bad_config),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
