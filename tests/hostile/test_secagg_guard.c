/* Issue #19 item 1: the site's secure-aggregation guard (ff_fed_guard_*) and the site
 * policy's secure_aggregation limits. One (job, round, starting model) is summed over one
 * set of sites only; the record is on disk (every call reads the file, as a restarted node
 * does), written with mode 0600; a file that does not load refuses everything. The attack
 * against the real binary is secagg_rerun.sh. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ff/fed.h"
#include "ff/transport.h"
#include "testutil.h"

static const char JOB[] = "1111111111111111111111111111111111111111111111111111111111111111";
static const char MODEL[] = "2222222222222222222222222222222222222222222222222222222222222222";
static const char UPD[] = "3333333333333333333333333333333333333333333333333333333333333333";

static ff_fed_guard_use use(const char *const *sites, size_t n, int64_t round, const char *upd)
{
    ff_fed_guard_use u;
    memset(&u, 0, sizeof u);
    memcpy(u.job, JOB, sizeof JOB);
    memcpy(u.model, MODEL, sizeof MODEL);
    u.round = round;
    u.sites = sites;
    u.nsites = n;
    ff_strlcpy(u.update, upd, sizeof u.update);
    return u;
}

static void test_guard_one_set_per_contribution(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    char path[512];
    /* a state folder that does not exist yet is made (a site's first contribution) */
    snprintf(path, sizeof path, "%s/state/secagg-guard-a.json", dir);
    const char *four[] = {"site-1", "site-2", "site-3", "site-4"};
    const char *shuffled[] = {"site-3", "site-1", "site-4", "site-2"};
    const char *three[] = {"site-1", "site-2", "site-3"};
    ff_fed_guard_use u4 = use(four, 4, 1, UPD), u3 = use(three, 3, 1, UPD);

    /* nothing recorded: any set is fine until a contribution is committed */
    assert_int_equal(ff_fed_guard_check(path, &u3), FF_OK);
    uint8_t seed[32], again[32];
    assert_int_equal(ff_fed_guard_commit(path, &u4, "run-1", seed), FF_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* the same set (any order), the same update: a retry of the round, the same noise seed */
    ff_fed_guard_use us = use(shuffled, 4, 1, UPD);
    assert_int_equal(ff_fed_guard_check(path, &us), FF_OK);
    assert_int_equal(ff_fed_guard_commit(path, &us, "run-2", again), FF_OK);
    assert_memory_equal(seed, again, sizeof seed);

    /* a new run id, one site dropped: refused, before training (no update yet) and after */
    ff_fed_guard_use pre = use(three, 3, 1, "");
    assert_int_equal(ff_fed_guard_check(path, &pre), FF_EPOLICY);
    ft_assert_error_has("was already summed over {site-1, site-2, site-3, site-4}; refusing a "
                        "sum over {site-1, site-2, site-3}");
    assert_int_equal(ff_fed_guard_commit(path, &u3, "run-2", again), FF_EPOLICY);
    /* a bigger set is a different set too */
    const char *five[] = {"site-1", "site-2", "site-3", "site-4", "site-5"};
    ff_fed_guard_use u5 = use(five, 5, 1, UPD);
    assert_int_equal(ff_fed_guard_check(path, &u5), FF_EPOLICY);

    /* the same set with another update (the site's data changed): refused */
    ff_fed_guard_use other = use(four, 4, 1,
                                 "4444444444444444444444444444444444444444444444444444444444444444");
    assert_int_equal(ff_fed_guard_check(path, &other), FF_EPOLICY);
    ft_assert_error_has("was contributed as update 333333333333, this one is 444444444444");

    /* another round, or another starting model: another contribution */
    ff_fed_guard_use r2 = use(three, 3, 2, UPD);
    assert_int_equal(ff_fed_guard_commit(path, &r2, "run-2", again), FF_OK);
    ff_fed_guard_use m2 = use(three, 3, 1, UPD);
    m2.model[0] = 'f';
    assert_int_equal(ff_fed_guard_check(path, &m2), FF_OK);

    /* the survivor set: the first is recorded, the same again is fine, another is refused */
    assert_int_equal(ff_fed_guard_survivors(path, &u4, four, 4), FF_OK);
    assert_int_equal(ff_fed_guard_survivors(path, &us, shuffled, 4), FF_OK);
    assert_int_equal(ff_fed_guard_survivors(path, &u4, three, 3), FF_EPOLICY);
    ft_assert_error_has("was unmasked over the survivors {site-1, site-2, site-3, site-4}; "
                        "refusing to sign {site-1, site-2, site-3}");
    /* no survivor set for a contribution that was never committed */
    assert_int_equal(ff_fed_guard_survivors(path, &m2, three, 3), FF_EPOLICY);
    ft_assert_error_has("no recorded contribution");

    /* the record is the file: still refused after the file is read anew (a restart), and a
     * record that does not load refuses instead of starting from zero */
    assert_int_equal(ff_fed_guard_check(path, &u3), FF_EPOLICY);
    ft_write_file(path, "{\"contributions\": [", 19);
    assert_int_equal(ff_fed_guard_check(path, &u4), FF_EPOLICY);
    ft_assert_error_has("does not load (refusing rather than starting from zero)");
    assert_int_equal(ff_fed_guard_commit(path, &u4, "run-3", again), FF_EPOLICY);
    ft_rmtree(dir);
}

static void test_guard_not_written_not_sent(void **state)
{
    (void)state;
    const char *four[] = {"site-1", "site-2", "site-3", "site-4"};
    ff_fed_guard_use u = use(four, 4, 1, UPD);
    uint8_t seed[32];
    /* the state folder cannot be made (a file is in the way, even for root): nothing may be
     * sent (FF_EPOLICY, the caller does not upload) */
    const char *dir = ft_tmpdir();
    ft_write_file(ft_path(dir, "state"), "x", 1);
    char path[512];
    snprintf(path, sizeof path, "%s/state/secagg-guard-a.json", dir);
    assert_int_equal(ff_fed_guard_commit(path, &u, "r", seed), FF_EPOLICY);
    ft_assert_error_has("the secure-aggregation guard was not written (not sending)");
    /* a site listed twice is not a set */
    const char *dup[] = {"site-1", "site-1"};
    ff_fed_guard_use d = use(dup, 2, 1, UPD);
    assert_int_equal(ff_fed_guard_check(ft_path(dir, "g.json"), &d), FF_EPOLICY);
    ft_rmtree(dir);
}

static void test_policy_secagg_limits(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    const char *path = ft_path(dir, "policy.yaml");
    const char *text = "site: hospital-a\naccepted_jobs: []\n"
                       "secure_aggregation: {min_sites: 4, min_threshold: 3, min_neighbours: 2}\n";
    ft_write_file(path, text, strlen(text));
    ff_policy p;
    assert_int_equal(ff_policy_load(path, &p), FF_OK);
    assert_int_equal(ff_policy_check_secagg(&p, 4, 3, 3), FF_OK);
    assert_int_equal(ff_policy_check_secagg(&p, 3, 3, 2), FF_EPOLICY);
    ft_assert_error_has("secure aggregation over 3 sites, secure_aggregation.min_sites is 4");
    assert_int_equal(ff_policy_check_secagg(&p, 4, 2, 3), FF_EPOLICY);
    ft_assert_error_has("threshold 2, secure_aggregation.min_threshold is 3");
    assert_int_equal(ff_policy_check_secagg(&p, 5, 3, 1), FF_EPOLICY);
    ft_assert_error_has("1 neighbours per site, secure_aggregation.min_neighbours is 2");
    ff_policy_free(&p);
    /* without the section: the protocol's own minimums (every valid round) */
    text = "site: hospital-a\naccepted_jobs: []\n";
    ft_write_file(path, text, strlen(text));
    assert_int_equal(ff_policy_load(path, &p), FF_OK);
    assert_int_equal(ff_policy_check_secagg(&p, 2, 1, 1), FF_OK);
    ff_policy_free(&p);
    /* min_sites below the protocol's 2 is a config error at its place */
    text = "site: hospital-a\naccepted_jobs: []\nsecure_aggregation: {min_sites: 1}\n";
    ft_write_file(path, text, strlen(text));
    assert_int_equal(ff_policy_load(path, &p), FF_ECONFIG);
    ft_assert_error_has("policy.yaml:3:33: secure_aggregation.min_sites");
    ff_policy_free(&p);
    ft_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_one_set_per_contribution),
        cmocka_unit_test(test_guard_not_written_not_sent),
        cmocka_unit_test(test_policy_secagg_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
