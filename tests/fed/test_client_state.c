/* The hospital node's state table (fed/src/client_state.c) against its other spellings: the
 * transition list and diagram in docs/federation.md ("The client node's states") and the
 * state table of docs/operations.md; and its shape: every state reachable from starting,
 * done and failed final and reachable from every live state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client_state.h"

static char *read_doc(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FF_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    static char buf[2][1 << 20];
    static int which;
    char *doc = buf[which++ % 2];
    size_t len = fread(doc, 1, sizeof buf[0] - 1, f);
    fclose(f);
    doc[len] = '\0';
    return doc;
}

static void test_names(void **state)
{
    (void)state;
    for (int s = 0; s < FED_CN_NSTATES; s++) {
        assert_true(strlen(fed_cn_state_name(s)) > 0 && strcmp(fed_cn_state_name(s), "?") != 0);
        for (int u = s + 1; u < FED_CN_NSTATES; u++)
            assert_string_not_equal(fed_cn_state_name(s), fed_cn_state_name(u));
    }
    assert_string_equal(fed_cn_state_name(-1), "?");
    assert_string_equal(fed_cn_state_name(FED_CN_NSTATES), "?");
    assert_false(fed_cn_state_may(-1, FED_CN_WAITING));
    assert_false(fed_cn_state_may(FED_CN_WAITING, FED_CN_NSTATES));
}

static void test_shape(void **state)
{
    (void)state;
    int seen[FED_CN_NSTATES] = {[FED_CN_STARTING] = 1};
    for (int pass = 0; pass < FED_CN_NSTATES; pass++)
        for (int s = 0; s < FED_CN_NSTATES; s++)
            for (int u = 0; seen[s] && u < FED_CN_NSTATES; u++)
                seen[u] |= fed_cn_state_may(s, u);
    for (int s = 0; s < FED_CN_NSTATES; s++)
        if (!seen[s])
            fail_msg("state %s cannot be reached from starting", fed_cn_state_name(s));
    for (int u = 0; u < FED_CN_NSTATES; u++) {
        if (u != FED_CN_DONE)
            assert_false(fed_cn_state_may(FED_CN_DONE, u));
        if (u != FED_CN_FAILED)
            assert_false(fed_cn_state_may(FED_CN_FAILED, u));
    }
    for (int s = 0; s < FED_CN_DONE; s++) {
        assert_true(fed_cn_state_may(s, FED_CN_FAILED));
        assert_true(fed_cn_state_may(s, FED_CN_DONE));
        assert_true(fed_cn_state_may(s, FED_CN_RECONNECTING)); /* the link can always break */
        assert_false(fed_cn_state_may(s, FED_CN_STARTING) && s != FED_CN_STARTING);
    }
    /* a task ends in waiting (or declined), not in another task */
    assert_false(fed_cn_state_may(FED_CN_TRAINING, FED_CN_EVALUATING));
    assert_true(fed_cn_state_may(FED_CN_TRAINING, FED_CN_WAITING));
}

/* Each "    from -> a, b, c" line of the docs' transition list is the table's row. */
static void test_docs_transitions(void **state)
{
    (void)state;
    const char *doc = read_doc("docs/federation.md");
    const char *sec = strstr(doc, "### The client node's states");
    assert_non_null(sec);
    for (int s = 0; s < FED_CN_NSTATES; s++) {
        char head[64];
        snprintf(head, sizeof head, "\n    %-18s -> ", fed_cn_state_name(s));
        const char *line = strstr(sec, head);
        if (!line)
            fail_msg("docs/federation.md has no transition line for %s", fed_cn_state_name(s));
        line += strlen(head);
        char row[512];
        size_t n = strcspn(line, "\n");
        snprintf(row, sizeof row, "%.*s", (int)n, line);
        char want[512] = "";
        for (int u = 0; u < FED_CN_NSTATES; u++)
            if (u != s && fed_cn_state_may(s, u)) {
                size_t l = strlen(want);
                snprintf(want + l, sizeof want - l, "%s%s", l ? ", " : "", fed_cn_state_name(u));
            }
        if (!want[0])
            snprintf(want, sizeof want, "(final)");
        if (strcmp(row, want) != 0)
            fail_msg("docs/federation.md: %s -> %s; the table says %s", fed_cn_state_name(s), row,
                     want);
    }
    /* every state a site reports is explained to the operator */
    const char *ops = read_doc("docs/operations.md");
    for (int s = 0; s < FED_CN_DONE; s++) {
        char cell[64];
        snprintf(cell, sizeof cell, "`%s`", fed_cn_state_name(s));
        if (!strstr(ops, cell))
            fail_msg("docs/operations.md does not explain state %s", cell);
    }
}

static void test_refusal_keys(void **state)
{
    (void)state;
    uint8_t job[32] = {1}, other[32] = {2};
    fed_refusal a = fed_refusal_of(FED_REFUSAL_TASK, 3, 1, 0, job, sizeof job);
    fed_refusal b = fed_refusal_of(FED_REFUSAL_TASK, 3, 1, 0, job, sizeof job);
    assert_true(fed_refusal_same(&a, &b));
    b = fed_refusal_of(FED_REFUSAL_TASK, 3, 1, 0, other, sizeof other); /* another job */
    assert_false(fed_refusal_same(&a, &b));
    b = fed_refusal_of(FED_REFUSAL_TASK, 3, 2, 0, job, sizeof job); /* another phase */
    assert_false(fed_refusal_same(&a, &b));
    b = fed_refusal_of(FED_REFUSAL_STATS, 3, 1, 0, job, sizeof job); /* another kind */
    assert_false(fed_refusal_same(&a, &b));
    b = fed_refusal_of(FED_REFUSAL_TASK, 3, 1, 0, job, 31); /* not a hash: no job */
    fed_refusal c = fed_refusal_of(FED_REFUSAL_TASK, 3, 1, 0, NULL, 0);
    assert_true(fed_refusal_same(&b, &c));
    fed_refusal none;
    memset(&none, 0, sizeof none);
    assert_false(fed_refusal_same(&a, &none));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_docs_transitions),
        cmocka_unit_test(test_refusal_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
