/* Every key the programs accept is in the example files of configs/, with a comment (issue
 * 21): the schema tables themselves are walked, so a key added to a table without its line in
 * the example fails here. A key is found when a line of the example has `key:` as a YAML key
 * (block, flow `{key: v}`, list item `- key:`, or commented out `# key:` for keys without a
 * useful default), inside its section's block; it is commented when that line, the line
 * before it, or its section's line carries a `#` comment (a section's own line needs none). */
#include "testutil.h"

#include "ff/audit.h"
#include "ff/coordinator.h"
#include "ff/fed.h"
#include "ff/models.h"
#include "ff/transport.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *text;
    char **line;
    size_t n;
} lines;

static void lines_load(lines *l, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FF_SOURCE_DIR, rel);
    size_t len = 0;
    assert_int_equal(ff_file_read_all(path, 1u << 20, &l->text, &len), FF_OK);
    l->n = 0;
    l->line = calloc(len + 2, sizeof *l->line);
    assert_non_null(l->line);
    for (char *p = l->text; p && *p;) {
        l->line[l->n++] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
}

static size_t indent_of(const char *s)
{
    size_t k = 0;
    while (s[k] == ' ')
        k++;
    return k;
}

static int is_comment_line(const char *s)
{
    return s[indent_of(s)] == '#';
}

/* 1 when key appears as a YAML key in line s (see the file comment). */
static int has_key(const char *s, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = strstr(s, key); p; p = strstr(p + 1, key)) {
        if (p[kl] != ':')
            continue;
        const char *q = p;
        while (q > s && q[-1] == ' ')
            q--;
        if (q == s || q[-1] == '{' || q[-1] == ',' || q[-1] == '-' || q[-1] == '#')
            return 1;
    }
    return 0;
}

/* Checks the fields of schema inside lines [from, to) (a section's block); parent_commented:
 * the section's line has a comment. Reports every missing key before failing. */
static int check_fields(const lines *l, const char *file, const ff_cfg_field *schema,
                        const char *prefix, size_t from, size_t to, int parent_commented)
{
    int bad = 0;
    for (const ff_cfg_field *f = schema; f->key; f++) {
        size_t i = from;
        while (i < to && !has_key(l->line[i], f->key))
            i++;
        if (i == to) {
            fprintf(stderr, "%s: key %s%s is not in the example\n", file, prefix, f->key);
            bad++;
            continue;
        }
        /* a section's own line needs none: its keys carry the comments */
        int section = (f->type == FF_CFG_SECTION || f->type == FF_CFG_LIST) && f->sub;
        int commented = section || parent_commented || strchr(l->line[i], '#') ||
                        (i > 0 && is_comment_line(l->line[i - 1]));
        if (!commented) {
            fprintf(stderr, "%s:%zu: key %s%s has no comment\n", file, i + 1, prefix, f->key);
            bad++;
        }
        if (section) {
            /* the section's block: its own line (flow style) and the lines indented deeper */
            size_t end = i + 1, ind = indent_of(l->line[i]);
            while (end < l->n && (l->line[end][0] == '\0' || is_comment_line(l->line[end]) ||
                                  indent_of(l->line[end]) > ind ||
                                  l->line[end][indent_of(l->line[end])] == '-'))
                end++;
            char sub[128];
            snprintf(sub, sizeof sub, "%s%s.", prefix, f->key);
            bad += check_fields(l, file, f->sub, sub, i, end, strchr(l->line[i], '#') != NULL);
        }
    }
    return bad;
}

static void check_example(const char *rel, const ff_cfg_field *schema)
{
    lines l;
    lines_load(&l, rel);
    int bad = check_fields(&l, rel, schema, "", 0, l.n, 0);
    free(l.line);
    free(l.text);
    assert_int_equal(bad, 0);
}

static void test_coordinator(void **state)
{
    (void)state;
    check_example("configs/coordinator.yaml", ff_coord_config_schema);
}

static void test_site(void **state)
{
    (void)state;
    check_example("configs/site.yaml", ff_fed_site_config_schema);
}

static void test_policy(void **state)
{
    (void)state;
    check_example("configs/site-policy.example.yaml", ff_policy_schema);
}

static void test_plan(void **state)
{
    (void)state;
    check_example("configs/plan.yaml", ff_plan_schema);
}

static void test_audit_policy(void **state)
{
    (void)state;
    check_example("configs/audit-policy.yaml", ff_audit_policy_fields);
}

/* The model config's keys, the tabular modality's included (configs/model-tabular.yaml). */
static void test_model(void **state)
{
    (void)state;
    check_example("configs/model-tabular.yaml", ff_model_config_schema());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coordinator), cmocka_unit_test(test_site),
        cmocka_unit_test(test_policy),      cmocka_unit_test(test_plan),
        cmocka_unit_test(test_audit_policy), cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
