/* Issue #19 item 7: a dishonest coordinator must not pin a site's CPU with the task's plan.
 * The YAML loader refuses nesting deeper than 64 levels at the first too-deep collection
 * (libyaml alone is quadratic in depth); a client node refuses an oversize plan before
 * parsing it, refuses a plan whose bytes do not hash to the claimed job, and answers a
 * re-sent task from its cache without parsing again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "ff/fed.h"

#define DEEP 100000

static char *nested(size_t depth)
{
    char *s = malloc(2 * depth + 32);
    assert_non_null(s);
    size_t n = (size_t)sprintf(s, "batch_size: ");
    memset(s + n, '[', depth);
    memset(s + n + depth, ']', depth);
    strcpy(s + n + 2 * depth, "\n");
    return s;
}

static void test_deep_yaml_refused_by_depth(void **state)
{
    (void)state;
    char *y = nested(DEEP);
    ff_plan p;
    memset(&p, 0, sizeof p);
    int rc = ff_plan_load_str(&p, "deep.yaml", y, strlen(y), 3);
    assert_int_equal(rc, FF_ECONFIG);
    /* the 64th [ (column 12 + 64) is level 65 under the top-level mapping: the loader stops */
    assert_string_equal(ff_error_message(),
                        "deep.yaml:1:76: nesting deeper than 64 levels (refused before loading)");
    ff_plan_free(&p);
    free(y);
    /* 64 levels (the top-level mapping + 63) are not refused for depth (the value is then
     * the wrong type) */
    y = nested(63);
    memset(&p, 0, sizeof p);
    assert_int_equal(ff_plan_load_str(&p, "ok.yaml", y, strlen(y), 3), FF_ECONFIG);
    assert_null(strstr(ff_error_message(), "nesting"));
    ff_plan_free(&p);
    free(y);
}

static const char model[] = "model: tiny\n";
static const char plan_text[] = "batch_size: 16\n";

static void job_of(const char *yaml, char hex[FF_SHA256_HEX])
{
    ff_plan p;
    memset(&p, 0, sizeof p);
    assert_int_equal(ff_plan_load_str(&p, "plan", yaml, strlen(yaml), 3), FF_OK);
    assert_int_equal(ff_job_hash(&p, model, strlen(model), hex), FF_OK);
    ff_plan_free(&p);
}

static void test_plan_hash_mismatch_refused(void **state)
{
    (void)state;
    char approved[FF_SHA256_HEX];
    job_of(plan_text, approved);
    ff_fed_plan_cache c;
    memset(&c, 0, sizeof c);
    const ff_plan *p;
    /* other bytes under the approved job's hash */
    const char *other = "batch_size: 17\n";
    int rc = ff_fed_task_plan(&c, other, strlen(other), approved, 3, model, strlen(model), &p);
    assert_int_equal(rc, FF_EPOLICY);
    assert_null(p);
    assert_non_null(strstr(ff_error_message(), "but the task claims job"));
    assert_non_null(strstr(ff_error_message(), approved));
    /* the same task again: refused from the cache, not parsed again */
    rc = ff_fed_task_plan(&c, other, strlen(other), approved, 3, model, strlen(model), &p);
    assert_int_equal(rc, FF_EPOLICY);
    assert_non_null(strstr(ff_error_message(), "but the task claims job"));
    assert_int_equal(c.parses, 1);
    /* a deeply nested plan (under the size bound) under the approved hash: refused by
     * depth, parsed once */
    char *y = nested(30000);
    assert_true(strlen(y) <= FF_FED_TASK_PLAN_MAX);
    for (int i = 0; i < 3; i++) {
        rc = ff_fed_task_plan(&c, y, strlen(y), approved, 3, model, strlen(model), &p);
        assert_int_equal(rc, FF_EPOLICY);
        if (!strstr(ff_error_message(), "nesting deeper than 64 levels"))
            fail_msg("%s", ff_error_message());
    }
    assert_int_equal(c.parses, 2);
    free(y);
    /* the approved plan: accepted, parsed once for any number of polls */
    for (int i = 0; i < 3; i++) {
        rc = ff_fed_task_plan(&c, plan_text, strlen(plan_text), approved, 3, model,
                              strlen(model), &p);
        assert_int_equal(rc, FF_OK);
        assert_non_null(p);
        assert_int_equal(p->batch_size, 16);
    }
    assert_int_equal(c.parses, 3);
    assert_int_equal(c.hits, 5);
    ff_fed_plan_cache_free(&c);
}

static void test_oversize_plan_refused(void **state)
{
    (void)state;
    size_t n = FF_FED_TASK_PLAN_MAX + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '#', n); /* a YAML comment: cheap to parse, refused by size alone */
    char approved[FF_SHA256_HEX];
    job_of(plan_text, approved);
    ff_fed_plan_cache c;
    memset(&c, 0, sizeof c);
    const ff_plan *p;
    int rc = ff_fed_task_plan(&c, big, n, approved, 3, model, strlen(model), &p);
    assert_int_equal(rc, FF_EPOLICY);
    assert_string_equal(ff_error_message(), "the task's plan has 65537 bytes, at most 65536 are "
                                            "accepted (refused before parsing)");
    assert_int_equal(c.parses, 0);
    ff_fed_plan_cache_free(&c);
    /* the coordinator refuses such a plan file at job load: it would never be accepted */
    char path[] = "/tmp/ff_hostile_planXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, big, n), (ssize_t)n);
    close(fd);
    ff_coord_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.plan, sizeof cfg.plan, "%s", path);
    cfg.rounds = 3;
    ff_coord_job job;
    assert_int_not_equal(ff_coord_job_load(&job, &cfg, "coord.yaml", 0), FF_OK);
    assert_non_null(strstr(ff_error_message(), "exceeds the limit of 65536"));
    ff_coord_job_free(&job);
    unlink(path);
    assert_int_equal(FF_COORD_PLAN_MAX, FF_FED_TASK_PLAN_MAX);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_yaml_refused_by_depth),
        cmocka_unit_test(test_plan_hash_mismatch_refused),
        cmocka_unit_test(test_oversize_plan_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
