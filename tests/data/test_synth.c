/* The generator: deterministic in the seed, output loads in strict mode with every modality
 * kind present, hospitals differ as designed, and labels agree with the oracle's risks. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/data.h"

static void slurp_into(const char *path, char **out)
{
    size_t len = 0;
    int rc = ff_file_read_all(path, 64u << 20, out, &len);
    assert_int_equal(rc, FF_OK);
}

static void gen(const char *dir, uint64_t seed, long patients)
{
    ff_synth_opts o = ff_synth_opts_default();
    o.quiet = 1;
    o.seed = seed;
    o.patients = patients;
    o.image_size = 16;
    assert_int_equal(ff_synth_generate(&o, dir), FF_OK);
}

static void test_deterministic(void **state)
{
    (void)state;
    const char *tmp = ft_tmpdir();
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    snprintf(c, sizeof c, "%s/c", tmp);
    gen(a, 11, 40);
    gen(b, 11, 40);
    gen(c, 12, 40);
    static const char *const files[] = {"site-1/patients.csv", "site-2/notes.csv",
                                        "site-4/events.csv", "site-1/oracle.csv",
                                        "site-2/images/H2-000003.png"};
    for (size_t i = 0; i < FF_ARRAY_LEN(files); i++) {
        char pa[600], pb[600], pc[600];
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        snprintf(pc, sizeof pc, "%s/%s", c, files[i]);
        if (!ff_path_exists(pa))
            continue; /* that patient may have no image */
        char *x = NULL, *y = NULL;
        slurp_into(pa, &x);
        slurp_into(pb, &y);
        assert_string_equal(x, y);
        if (ff_path_exists(pc) && strstr(files[i], ".csv")) {
            char *z = NULL;
            slurp_into(pc, &z);
            assert_string_not_equal(x, z);
            free(z);
        }
        free(x);
        free(y);
    }
    /* A second run into the same folder is refused. */
    ff_synth_opts o = ff_synth_opts_default();
    o.quiet = 1;
    assert_int_equal(ff_synth_generate(&o, a), FF_ESTATE);
    ft_assert_error_has("already holds a cohort");
    ft_rmtree(tmp);
}

static void test_loads_and_differs(void **state)
{
    (void)state;
    const char *tmp = ft_tmpdir();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/cohort", tmp);
    gen(dir, 3, 150);
    ff_data_shape sh;
    ff_data_shape_tiny(&sh);
    ff_site_opts o = ff_site_opts_default();
    o.strict = 1;
    long sizes[4], images[4];
    double prev[4];
    for (int k = 0; k < 4; k++) {
        char sd[600];
        snprintf(sd, sizeof sd, "%s/site-%d", dir, k + 1);
        ff_site *s = NULL;
        ff_load_report rep;
        assert_int_equal(ff_site_load(&s, sd, &sh, &o, &rep), FF_OK);
        sizes[k] = rep.patients[0] + rep.patients[1] + rep.patients[2];
        images[k] = rep.with_image;
        assert_true(rep.with_text > sizes[k] / 2 && rep.with_ehr > sizes[k] / 2);
        assert_true(rep.patients[0] > rep.patients[1] && rep.patients[0] > rep.patients[2]);
        prev[k] = (double)rep.positives[0][0] / rep.labelled[0][0];
        print_message("site %d: %ld patients, %ld images, admission %.2f\n", k + 1, sizes[k],
                      images[k], prev[k]);
        ff_site_free(s);
    }
    /* Sizes differ (2:1.6 between site-1 and site-3) and site-3 has no images. */
    assert_int_equal(sizes[0] + sizes[1] + sizes[2] + sizes[3], 600);
    assert_true(sizes[0] > sizes[2]);
    assert_int_equal(images[2], 0);
    assert_true(images[0] > 0 && images[1] > 0 && images[3] > 0);
    /* Prevalence shift: site-2 (older, +0.25) above site-3 (younger, -0.35). */
    assert_true(prev[1] > prev[2]);
    ft_rmtree(tmp);
}

/* Mean label matches mean oracle risk per task (calibration of the generator itself). */
static void test_labels_follow_oracle(void **state)
{
    (void)state;
    const char *tmp = ft_tmpdir();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/cohort", tmp);
    ff_synth_opts o = ff_synth_opts_default();
    o.quiet = 1;
    o.sites = 1;
    o.patients = 3000;
    o.image_size = 8;
    o.no_image_site = 1; /* no PNGs: keeps the test fast */
    assert_int_equal(ff_synth_generate(&o, dir), FF_OK);
    char p[600];
    snprintf(p, sizeof p, "%s/site-1/oracle.csv", dir);
    char *orc = NULL, *pat = NULL;
    slurp_into(p, &orc);
    snprintf(p, sizeof p, "%s/site-1/patients.csv", dir);
    slurp_into(p, &pat);
    double risk[3] = {0}, lab[3] = {0};
    long n = 0;
    char *so = strchr(orc, '\n') + 1, *sp = strchr(pat, '\n') + 1;
    while (*so && *sp) {
        double r0, r1, r2;
        int l0, l1, l2;
        assert_int_equal(sscanf(strchr(so, ',') + 1, "%lf,%lf,%lf", &r0, &r1, &r2), 3);
        char *f = sp;
        for (int c = 0; c < 4; c++)
            f = strchr(f, ',') + 1;
        assert_int_equal(sscanf(f, "%d,%d,%d", &l0, &l1, &l2), 3);
        risk[0] += r0, risk[1] += r1, risk[2] += r2;
        lab[0] += l0, lab[1] += l1, lab[2] += l2;
        n++;
        so = strchr(so, '\n') + 1;
        sp = strchr(sp, '\n') + 1;
    }
    assert_int_equal(n, 3000);
    for (int k = 0; k < 3; k++) {
        double pm = risk[k] / n, lm = lab[k] / n;
        double se = sqrt(pm * (1 - pm) / n);
        print_message("task %d: mean risk %.3f, label rate %.3f\n", k, pm, lm);
        assert_true(fabs(pm - lm) < 4 * se);
    }
    free(orc);
    free(pat);
    ft_rmtree(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_loads_and_differs),
        cmocka_unit_test(test_labels_follow_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
