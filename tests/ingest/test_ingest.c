/* ff_ingest units: the FHIR time parser against Python's datetime (values in the comments
 * computed with datetime.fromisoformat(...).timestamp()), the id rule, the string map, the
 * default rules load, the skip-reason names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ingest_internal.h"

static void test_fhir_time(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t t;
    } ok[] = {{"1989-10-04T02:25:16-04:00", 623485516},
              {"1987-11-19T00:22:16.824-05:00", 564297736},
              {"1927-05-21", -1344902400},
              {"2022-06-22T12:31:08Z", 1655901068},
              {"1600-02-29T23:59:59+14:00", -11670962401LL},
              {"2024", 1704067200}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t t = 0;
        assert_int_equal(ff_fhir_parse_time(ok[i].s, &t), 0);
        assert_int_equal(t, ok[i].t);
    }
    static const char *const bad[] = {"", "19", "1989-13-01", "1989-10-04T25:00:00Z",
                                      "1989-10-04T02:25:16+0400", "1989-10-04 02:25:16",
                                      "1989-10-04T02:25:16Zjunk", "abcd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t;
        assert_int_equal(ff_fhir_parse_time(bad[i], &t), -1);
    }
}

static void test_ids_and_map(void **state)
{
    (void)state;
    assert_true(ff_ingest_valid_id("069907eb-16f5-2c4d-b76f-beef954662b3"));
    assert_false(ff_ingest_valid_id(""));
    assert_false(ff_ingest_valid_id(".hidden"));
    assert_false(ff_ingest_valid_id("a/b"));
    assert_false(ff_ingest_valid_id("a\\b"));
    assert_false(ff_ingest_valid_id("a\nb"));
    char long_id[70];
    memset(long_id, 'x', 65);
    long_id[65] = 0;
    assert_false(ff_ingest_valid_id(long_id));
    ff_strmap m;
    assert_int_equal(ff_strmap_init(&m, 2), FF_OK);
    char key[32];
    for (int i = 0; i < 5000; i++) { /* grows several times */
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(ff_strmap_put(&m, key, i), FF_OK);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(ff_strmap_get(&m, key), i);
    }
    assert_int_equal(ff_strmap_get(&m, "k5000"), -1);
    assert_int_equal(ff_strmap_put(&m, "k7", 70), FF_OK);
    assert_int_equal(ff_strmap_get(&m, "k7"), 70);
    assert_int_equal((int)m.count, 5000);
    ff_strmap_free(&m);
}

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < FF_DICOM_SKIP_COUNT; i++)
        assert_string_not_equal(ff_dicom_skip_name((ff_dicom_skip)i), "?");
    for (int i = 0; i < FF_FHIR_SKIP_COUNT; i++)
        assert_string_not_equal(ff_fhir_skip_name((ff_fhir_skip)i), "?");
    assert_string_equal(ff_fhir_type_name(FF_FHIR_REPORT), "DiagnosticReport");
    assert_non_null(strstr(ff_fhir_default_rules, "index_classes: [EMER]"));
}

/* configs/fhir-rules.yaml states the defaults: the same keys and values, comments aside. */
static void test_rules_file_is_default(void **state)
{
    (void)state;
    FILE *f = fopen(FF_SOURCE_DIR "/configs/fhir-rules.yaml", "r");
    assert_non_null(f);
    char line[512], text[4096] = "";
    while (fgets(line, sizeof line, f)) {
        char *hash = strstr(line, "   #");
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (hash)
            strcpy(hash, "\n");
        strncat(text, line, sizeof text - strlen(text) - 1);
    }
    fclose(f);
    assert_string_equal(text, ff_fhir_default_rules);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fhir_time),
        cmocka_unit_test(test_ids_and_map),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_rules_file_is_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
