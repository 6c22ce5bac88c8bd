/* A received StatusDetail (protocol 2's typed status) becomes the object `fedfuse status
 * --json` has always printed: the same keys, null where a value is absent (never seen, no
 * error, no clock, no CRL), no non-finite number. The other direction runs in every status
 * call of the process tests (ops_status, hostile_crl_expiry, fed_client_killed). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ff/fed.h"

static void test_status_json_shape(void **state)
{
    (void)state;
    Fedfuse__SiteStatus a = FEDFUSE__SITE_STATUS__INIT, b = FEDFUSE__SITE_STATUS__INIT;
    a.name = "site-1";
    a.seen = 1;
    a.last_seen_s = 2.5;
    a.state = "training";
    a.error_code = "link_lost";
    a.error = "the link broke";
    a.error_age_s = 30;
    a.version = "0.1.0";
    a.has_skew = 1;
    a.clock_skew_s = NAN; /* no JSON form: null */
    a.pending = 1;
    b.name = "site-2"; /* never polled */
    Fedfuse__SiteStatus *sites[] = {&a, &b};
    Fedfuse__NotSelected ns = FEDFUSE__NOT_SELECTED__INIT;
    ns.name = "site-2";
    ns.reason = "not heard from lately";
    Fedfuse__NotSelected *nsp[] = {&ns};
    Fedfuse__Counter late = FEDFUSE__COUNTER__INIT;
    late.name = "late";
    late.value = 3;
    Fedfuse__Counter *ref[] = {&late};
    char *pending[] = {"site-1"};
    Fedfuse__StatusDetail w = FEDFUSE__STATUS_DETAIL__INIT;
    w.run = "r1";
    w.rounds = 4;
    w.round = 2;
    w.attempt = 1;
    w.phase = "train";
    w.pending = pending;
    w.n_pending = 1;
    w.sites = sites;
    w.n_sites = 2;
    w.deadline_in_s = 12;
    w.enrolled = 2;
    w.now_unix_ms = 1700000000000;
    w.not_selected = nsp;
    w.n_not_selected = 1;
    w.refusals = ref;
    w.n_refusals = 1;
    json_t *d = ff_fed_status_json(&w);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "run")), "r1");
    assert_int_equal(json_integer_value(json_object_get(d, "rounds")), 4);
    assert_int_equal(json_integer_value(json_object_get(d, "sites")), 2);
    assert_int_equal(json_integer_value(json_object_get(d, "now_unix_ms")), 1700000000000);
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "pending"), 0)), "site-1");
    json_t *s1 = json_object_get(json_object_get(d, "site_status"), "site-1");
    json_t *s2 = json_object_get(json_object_get(d, "site_status"), "site-2");
    assert_true(json_real_value(json_object_get(s1, "last_seen_s")) == 2.5);
    assert_true(json_is_null(json_object_get(s1, "clock_skew_s")));
    assert_true(json_real_value(json_object_get(s1, "error_age_s")) == 30);
    assert_true(json_is_true(json_object_get(s1, "pending")));
    assert_string_equal(json_string_value(json_object_get(s2, "state")), "unknown");
    assert_true(json_is_null(json_object_get(s2, "last_seen_s")));
    assert_true(json_is_null(json_object_get(s2, "error_age_s")));
    assert_true(json_is_false(json_object_get(s2, "pending")));
    json_t *seen = json_object_get(d, "seconds_since_seen");
    assert_int_equal(json_object_size(seen), 1);
    assert_true(json_real_value(json_object_get(seen, "site-1")) == 2.5);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "not_selected"), "site-2")),
                        "not heard from lately");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "refusals"), "late")), 3);
    assert_true(json_is_null(json_object_get(d, "crl_expires_in_s")));
    assert_true(json_is_null(json_object_get(d, "crl_warning")));
    assert_null(json_object_get(d, "privacy"));
    json_decref(d);
    Fedfuse__PrivacySpent pv = FEDFUSE__PRIVACY_SPENT__INIT;
    pv.epsilon_spent = 0.5;
    pv.epsilon_budget = 2;
    pv.delta = 1e-5;
    w.privacy = &pv;
    w.has_crl = 1;
    w.crl_expires_in_s = 86400;
    w.crl_warning = "the CRL expires in 1 day";
    d = ff_fed_status_json(&w);
    assert_true(json_real_value(json_object_get(json_object_get(d, "privacy"), "epsilon_spent")) == 0.5);
    assert_true(json_real_value(json_object_get(d, "crl_expires_in_s")) == 86400);
    assert_string_equal(json_string_value(json_object_get(d, "crl_warning")), "the CRL expires in 1 day");
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_json_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
