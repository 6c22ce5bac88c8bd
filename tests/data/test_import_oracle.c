/* The importer against an independent oracle: mimic_oracle.py recomputes, from the raw
 * PhysioNet demo tables with Python's stdlib, every label and the exact multiset of events
 * the leakage rule allows (event time strictly before the stay's ED intime), and checks the
 * written sites (one and three) match it, that every hours_before is > 0, that no patient is
 * split across sites or splits, and that the attribution files are there. Spawns Python, so
 * labelled integration. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ff/data.h"

#define DEMO FF_MIMIC_DEMO /* ../shared/data/mimic-iv-demo, found by tests/data/CMakeLists.txt */

static void run_case(int sites)
{
    struct stat sb;
    if (stat(DEMO "/mimic-iv-ed-demo-2.2/ed/edstays.csv.gz", &sb) != 0)
        skip();
    const char *tmp = ft_tmpdir();
    char out[600], cmd[2048];
    snprintf(out, sizeof out, "%s/mimic", tmp);
    ff_mimic_opts o = ff_mimic_opts_default();
    o.ed_dir = DEMO "/mimic-iv-ed-demo-2.2/ed";
    o.hosp_dir = DEMO "/mimic-iv-clinical-database-demo-2.2/hosp";
    o.icu_dir = DEMO "/mimic-iv-clinical-database-demo-2.2/icu";
    o.sites = sites;
    o.seed = 7;
    assert_int_equal(ff_mimic_import(&o, out, NULL), FF_OK);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/data/mimic_oracle.py %s %s %d",
             FF_SOURCE_DIR, out, DEMO, sites);
    assert_int_equal(system(cmd), 0);
    ft_rmtree(tmp);
}

static void test_oracle_one_site(void **state)
{
    (void)state;
    run_case(0);
}

static void test_oracle_three_sites(void **state)
{
    (void)state;
    run_case(3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_oracle_one_site),
                                       cmocka_unit_test(test_oracle_three_sites)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
