/* The protocol's phase table (declared in ff/coordinator.h) against its other spellings: the proto enum
 * (every wire id once, under its name), the coordinator config's deadlines.* keys, and the
 * table in docs/federation.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fedfuse.pb-c.h"
#include "ff/coordinator.h"

static void test_every_wire_id_once(void **state)
{
    (void)state;
    size_t n;
    const ff_phase_info *t = ff_phase_table(&n);
    const ProtobufCEnumDescriptor *d = &fedfuse__phase__descriptor;
    for (unsigned v = 0; v < d->n_values; v++) {
        int seen = 0;
        for (size_t i = 0; i < n; i++)
            if (t[i].wire == d->values[v].value) {
                seen++;
                assert_non_null(t[i].wire_name);
                assert_string_equal(t[i].wire_name, d->values[v].name);
            }
        if (seen != 1)
            fail_msg("wire id %d (%s) is in the table %d times", d->values[v].value,
                     d->values[v].name, seen);
        assert_string_equal(ff_phase_by_wire(d->values[v].value)->wire_name, d->values[v].name);
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i].wire == FF_WIRE_NONE) {
            assert_null(t[i].wire_name);
            assert_int_equal(t[i].actor, FF_ACT_SERVER); /* sites only act in wire phases */
        } else {
            assert_non_null(protobuf_c_enum_descriptor_get_value(d, t[i].wire));
            assert_int_not_equal(t[i].actor, FF_ACT_SERVER);
        }
    }
    /* never trust a wire id: out of range has no row */
    assert_null(ff_phase_by_wire(-1));
    assert_null(ff_phase_by_wire((int)d->n_values + 100));
    assert_string_equal(ff_phase_wire_label(12345), "?");
}

static void test_names_unique_and_found(void **state)
{
    (void)state;
    size_t n;
    const ff_phase_info *t = ff_phase_table(&n);
    for (size_t i = 0; i < n; i++) {
        assert_true(strlen(t[i].name) > 0 && strlen(t[i].name) < 32); /* ff_coord_phase.name */
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(t[i].name, t[j].name) == 0)
                fail_msg("phase name %s twice", t[i].name);
        assert_ptr_equal(ff_phase_by_name(t[i].name), &t[i]);
    }
    assert_null(ff_phase_by_name("no_such_phase"));
    assert_null(ff_phase_by_name(NULL));
}

/* The secure-aggregation steps are 1..5 in round order, each once; the engine's built-in
 * phases are all in the table. */
static void test_secagg_order_and_builtins(void **state)
{
    (void)state;
    size_t n;
    const ff_phase_info *t = ff_phase_table(&n);
    int last = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].secagg_step) {
            assert_int_equal(t[i].secagg_step, last + 1);
            last = t[i].secagg_step;
        }
    assert_int_equal(last, 5);
    assert_int_equal(ff_phase_by_wire(FEDFUSE__PHASE__PHASE_SECAGG_CONSISTENCY)->secagg_step, 4);
    assert_int_equal(ff_phase_by_wire(FEDFUSE__PHASE__PHASE_SECAGG_UNMASK)->secagg_step, 5);
    const char *builtin[] = {FF_PHASE_SELECT,    FF_PHASE_TRAIN,    FF_PHASE_AGGREGATE,
                             FF_PHASE_UPDATE,    FF_PHASE_EVALUATE, FF_PHASE_CHECKPOINT,
                             FF_PHASE_PRIVACY};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        assert_non_null(ff_phase_by_name(builtin[i]));
}

/* Each deadline key is a key of the config's deadlines section, read from the right field:
 * a config setting every key to a different value gives each phase its own. */
static void test_deadline_keys_match_config(void **state)
{
    (void)state;
    size_t n;
    const ff_phase_info *t = ff_phase_table(&n);
    char yaml[1024] = "run_name: r\nrounds: 1\ndeadlines:\n";
    const char *keys[16];
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].deadline_key)
            continue;
        int dup = 0;
        for (size_t k = 0; k < nk; k++)
            dup |= strcmp(keys[k], t[i].deadline_key) == 0;
        if (dup)
            continue;
        keys[nk++] = t[i].deadline_key;
        size_t len = strlen(yaml);
        snprintf(yaml + len, sizeof yaml - len, "  %s: %zu\n", t[i].deadline_key, 100 + nk);
    }
    assert_int_equal(nk, 6); /* train, evaluate and the four secure-aggregation ones */
    ff_coord_config cfg;
    if (ff_coord_config_load_str(&cfg, "coordinator.yaml", yaml, strlen(yaml)) != FF_OK)
        fail_msg("%s", ff_error_message());
    for (size_t i = 0; i < n; i++) {
        if (!t[i].deadline_key) {
            assert_true(ff_phase_deadline(&t[i], &cfg) == 0);
            continue;
        }
        size_t k = 0;
        while (strcmp(keys[k], t[i].deadline_key) != 0)
            k++;
        assert_true(ff_phase_deadline(&t[i], &cfg) == (double)(101 + k));
    }
    assert_true(ff_phase_deadline(ff_phase_by_name(FF_PHASE_CHECK), &cfg) ==
                ff_phase_deadline(ff_phase_by_name(FF_PHASE_UNMASK), &cfg));
    ff_coord_config_free(&cfg);
}

/* docs/federation.md, "Phase table", has one row per phase: | `name` | wire | deadline | */
static void test_docs_table(void **state)
{
    (void)state;
    FILE *f = fopen(FF_SOURCE_DIR "/docs/federation.md", "rb");
    assert_non_null(f);
    static char doc[1 << 20];
    size_t len = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[len] = '\0';
    size_t n;
    const ff_phase_info *t = ff_phase_table(&n);
    for (size_t i = 0; i < n; i++) {
        char row[256], wire[64], dl[64];
        if (t[i].wire == FF_WIRE_NONE)
            snprintf(wire, sizeof wire, "—");
        else
            snprintf(wire, sizeof wire, "%d `%s`", t[i].wire, t[i].wire_name);
        if (t[i].deadline_key)
            snprintf(dl, sizeof dl, "`deadlines.%s`", t[i].deadline_key);
        else
            snprintf(dl, sizeof dl, "—");
        snprintf(row, sizeof row, "\n| `%s` | %s | %s |", t[i].name, wire, dl);
        if (!strstr(doc, row))
            fail_msg("docs/federation.md has no row starting %s", row + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_wire_id_once),
        cmocka_unit_test(test_names_unique_and_found),
        cmocka_unit_test(test_secagg_order_and_builtins),
        cmocka_unit_test(test_deadline_keys_match_config),
        cmocka_unit_test(test_docs_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
