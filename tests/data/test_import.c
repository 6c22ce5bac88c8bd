/* fedfuse import mimic-iv-ed: the real demo files (../shared/data/mimic-iv-demo) give the
 * README's published counts (222 stays, 150 admitted, 64 ICU within 24 h, 8 deaths), the
 * output loads as a site, --sites keeps patients whole, and the attribution is kept.
 * Small hand-made tables pin the leakage rule (an event at or after ED intime, or a lab
 * stored after it, is never written) and the error messages. The exact event-by-event
 * comparison with an independent Python oracle is test_import_oracle.c. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ff/data.h"
#include "import_internal.h"

#define DEMO FF_MIMIC_DEMO /* ../shared/data/mimic-iv-demo, found by tests/data/CMakeLists.txt */
#define ED_DIR DEMO "/mimic-iv-ed-demo-2.2/ed"
#define HOSP_DIR DEMO "/mimic-iv-clinical-database-demo-2.2/hosp"
#define ICU_DIR DEMO "/mimic-iv-clinical-database-demo-2.2/icu"

static ff_mimic_opts demo_opts(void)
{
    ff_mimic_opts o = ff_mimic_opts_default();
    o.ed_dir = ED_DIR;
    o.hosp_dir = HOSP_DIR;
    o.icu_dir = ICU_DIR;
    return o;
}

static int have_demo(void)
{
    struct stat sb;
    return stat(ED_DIR "/edstays.csv.gz", &sb) == 0;
}

static char *slurp(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    if (ff_file_read_all(path, 64u << 20, &buf, &len) != FF_OK)
        return NULL;
    return buf;
}

static void test_demo_counts(void **state)
{
    (void)state;
    if (!have_demo())
        skip();
    const char *tmp = ft_tmpdir();
    char out[600];
    snprintf(out, sizeof out, "%s/mimic", tmp);
    ff_mimic_opts o = demo_opts();
    ff_mimic_report rep;
    assert_int_equal(ff_mimic_import(&o, out, &rep), FF_OK);
    /* The README's counts, derived by its own stdlib script. */
    assert_int_equal(rep.stays, 222);
    assert_int_equal(rep.subjects, 64);
    assert_int_equal(rep.admitted, 150);
    assert_int_equal(rep.icu24, 64);
    assert_int_equal(rep.deaths, 8);
    /* Every in-hospital death of the demo went through the ICU within 24 h (the oracle
     * recomputes this from the raw tables). */
    assert_int_equal(rep.critical, 64);
    assert_int_equal(rep.with_note, 222);
    assert_true(rep.ev_lab > 0 && rep.ev_dx > 0 && rep.ev_vital > 0);
    for (int t = 0; t < FF_MIMIC_TABLES; t++)
        assert_int_equal(rep.bad_rows[t], 0);
    assert_int_equal(rep.split_stays[0] + rep.split_stays[1] + rep.split_stays[2], 222);

    /* The output is a valid site for the tiny model (what `fedfuse data check` runs). */
    ff_data_shape sh;
    ff_data_shape_tiny(&sh);
    ff_site_opts so = ff_site_opts_default();
    so.strict = 1;
    ff_load_report lr;
    ff_site *site = NULL;
    assert_int_equal(ff_site_load(&site, out, &sh, &so, &lr), FF_OK);
    long n = 0, pos[3] = {0};
    for (int s = 0; s < FF_SPLIT_COUNT; s++) {
        n += lr.patients[s];
        for (int k = 0; k < 3; k++)
            pos[k] += lr.positives[s][k];
    }
    assert_int_equal(n, 222);
    assert_int_equal(pos[0], 150);
    assert_int_equal(pos[1], 64);
    assert_int_equal(pos[2], 64);
    assert_int_equal(lr.with_image, 0);
    assert_int_equal(lr.with_text, 222);
    ff_site_free(site);

    char *attr = slurp(ft_path(out, "ATTRIBUTION.md"));
    assert_non_null(attr);
    assert_non_null(strstr(attr, "MIMIC-IV-ED Demo"));
    assert_non_null(strstr(attr, "MIMIC-IV Clinical Database Demo"));
    assert_non_null(strstr(attr, "ODbL"));
    free(attr);
    char *lic = slurp(ft_path(out, "LICENSE.md"));
    assert_non_null(lic);
    assert_non_null(strstr(lic, "Open Database License"));
    free(lic);

    /* A second import into the same folder is refused, not mixed in. */
    assert_int_equal(ff_mimic_import(&o, out, NULL), FF_ESTATE);
    ft_assert_error_has("already exists");
    ft_rmtree(tmp);
}

static void test_demo_sites(void **state)
{
    (void)state;
    if (!have_demo())
        skip();
    const char *tmp = ft_tmpdir();
    char a[600], b[600], c[600];
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    snprintf(c, sizeof c, "%s/c", tmp);
    ff_mimic_opts o = demo_opts();
    o.sites = 3;
    ff_mimic_report rep;
    assert_int_equal(ff_mimic_import(&o, a, &rep), FF_OK);
    long stays = 0, subj = 0;
    for (int s = 0; s < 3; s++) {
        assert_true(rep.site_subjects[s] > 0);
        /* balanced by stays: each site within 222/3 +- the largest patient's stays */
        assert_true(rep.site_stays[s] > 40 && rep.site_stays[s] < 110);
        stays += rep.site_stays[s];
        subj += rep.site_subjects[s];
        char dir[700];
        snprintf(dir, sizeof dir, "%s/site-%d", a, s + 1);
        char *attr = slurp(ft_path(dir, "ATTRIBUTION.md"));
        assert_non_null(attr);
        free(attr);
    }
    assert_int_equal(stays, 222);
    assert_int_equal(subj, 64); /* no patient counted in two sites */

    /* Same seed, same assignment; another seed, another one. */
    assert_int_equal(ff_mimic_import(&o, b, NULL), FF_OK);
    o.seed = 2;
    assert_int_equal(ff_mimic_import(&o, c, NULL), FF_OK);
    char pa[700], pb[700], pc[700], ha[FF_SHA256_HEX], hb[FF_SHA256_HEX], hc[FF_SHA256_HEX];
    snprintf(pa, sizeof pa, "%s/site-1/patients.csv", a);
    snprintf(pb, sizeof pb, "%s/site-1/patients.csv", b);
    snprintf(pc, sizeof pc, "%s/site-1/patients.csv", c);
    assert_int_equal(ff_sha256_file(pa, ha), FF_OK);
    assert_int_equal(ff_sha256_file(pb, hb), FF_OK);
    assert_int_equal(ff_sha256_file(pc, hc), FF_OK);
    assert_string_equal(ha, hb);
    assert_string_not_equal(ha, hc);

    /* More sites than patients cannot be honoured. */
    o.sites = 64;
    snprintf(c, sizeof c, "%s/d", tmp);
    assert_int_equal(ff_mimic_import(&o, c, NULL), FF_EINVAL);
    ft_assert_error_has("without patients");
    ft_rmtree(tmp);
}

/* ---------------------------------------------------------------------------------------- */
/* Hand-made tables                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char root[512], ed[600], hosp[600], icu[600], out[600];
} fixture;

static void put(const char *dir, const char *name, const char *text)
{
    ft_write_file(ft_path(dir, name), text, strlen(text));
}

/* Two subjects: 1 has two ED stays (the second 30 days after the first), 2 has one.
 * Labs of subject 1 are placed around the second stay's intime 2150-02-01 10:00:00. */
static void fixture_make(fixture *fx, const char *edstays)
{
    snprintf(fx->root, sizeof fx->root, "%s", ft_tmpdir());
    snprintf(fx->ed, sizeof fx->ed, "%s/ed", fx->root);
    snprintf(fx->hosp, sizeof fx->hosp, "%s/hosp", fx->root);
    snprintf(fx->icu, sizeof fx->icu, "%s/icu", fx->root);
    snprintf(fx->out, sizeof fx->out, "%s/out", fx->root);
    assert_int_equal(ff_mkdir_p(fx->ed, 0755), FF_OK);
    assert_int_equal(ff_mkdir_p(fx->hosp, 0755), FF_OK);
    assert_int_equal(ff_mkdir_p(fx->icu, 0755), FF_OK);
    put(fx->ed, "edstays.csv",
        edstays ? edstays
                : "subject_id,hadm_id,stay_id,intime,outtime,gender,race,arrival_transport,"
                  "disposition\n"
                  "1,100,11,2150-01-02 10:00:00,2150-01-02 14:00:00,F,WHITE,WALK IN,ADMITTED\n"
                  "1,101,12,2150-02-01 10:00:00,2150-02-01 15:00:00,F,WHITE,AMBULANCE,ADMITTED\n"
                  "2,,21,2151-05-05 08:00:00,2151-05-05 09:00:00,M,BLACK,WALK IN,HOME\n");
    put(fx->ed, "triage.csv",
        "subject_id,stay_id,temperature,heartrate,resprate,o2sat,sbp,dbp,pain,acuity,"
        "chiefcomplaint\n"
        "1,11,98.6,120,18,97,85,50,8,2,Chest pain\n1,12,,,,,,,,,\n2,21,,,,,,,,3,Cough\n");
    put(fx->ed, "vitalsign.csv",
        "subject_id,stay_id,charttime,temperature,heartrate,resprate,o2sat,sbp,dbp,rhythm,pain\n"
        "1,11,2150-01-02 11:00:00,,90,,,,,,unable\n"  /* before stay 12 only */
        "1,12,2150-02-01 10:00:00,,95,,,,,,\n");      /* at stay 12's intime: never */
    put(fx->hosp, "patients.csv",
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
        "1,F,50,2148,2011 - 2013,\n2,M,30,2151,2011 - 2013,\n");
    put(fx->hosp, "admissions.csv",
        "subject_id,hadm_id,dischtime,hospital_expire_flag\n"
        "1,100,2150-01-10 12:00:00,0\n1,101,2150-02-09 12:00:00,1\n");
    put(fx->hosp, "diagnoses_icd.csv",
        "subject_id,hadm_id,seq_num,icd_code,icd_version\n1,100,1,I10,10\n1,101,1,E119,10\n");
    put(fx->hosp, "d_labitems.csv", "itemid,label,fluid,category\n500,Troponin,Blood,Chem\n");
    put(fx->hosp, "labevents.csv",
        "labevent_id,subject_id,itemid,charttime,storetime,valuenum\n"
        "1,1,500,2150-02-01 09:00:00,2150-02-01 09:30:00,0.5\n"  /* 1 h before stay 12 */
        "2,1,500,2150-02-01 09:00:00,2150-02-01 10:30:00,0.6\n"  /* stored after: never */
        "3,1,500,2150-02-01 10:00:00,,0.7\n"                     /* at intime: never */
        "4,1,500,2150-02-01 09:59:59,,\n"                        /* 1 s before, no value */
        "5,1,999,2150-01-01 00:00:00,,1\n");                     /* unknown item */
    put(fx->icu, "icustays.csv",
        "subject_id,hadm_id,stay_id,intime\n1,101,9,2150-02-02 15:00:00\n"  /* 24 h: yes */
        "1,100,8,2150-01-03 14:00:01\n");                                   /* 24 h + 1 s */
}

static int import_fixture(fixture *fx, int strict, ff_mimic_report *rep)
{
    ff_mimic_opts o = ff_mimic_opts_default();
    o.ed_dir = fx->ed;
    o.hosp_dir = fx->hosp;
    o.icu_dir = fx->icu;
    o.strict = strict;
    return ff_mimic_import(&o, fx->out, rep);
}

static void test_leakage_rule(void **state)
{
    (void)state;
    fixture fx;
    fixture_make(&fx, NULL);
    ff_mimic_report rep;
    assert_int_equal(import_fixture(&fx, 0, &rep), FF_OK);
    assert_int_equal(rep.stays, 3);
    assert_int_equal(rep.admitted, 2);
    assert_int_equal(rep.icu24, 1);    /* 12 (at exactly 24 h); not 11 (24 h + 1 s) */
    assert_int_equal(rep.deaths, 1);   /* 12 */
    assert_int_equal(rep.critical, 1);
    assert_int_equal(rep.lab_unknown_item, 1);
    char *ev = slurp(ft_path(fx.out, "events.csv"));
    assert_non_null(ev);
    /* Exactly these events, in table order (diagnoses, labs, vitals): the I10 admission was
     * discharged 2150-01-10 12:00 = 526 h before stay 12; E119 belongs to stay 12's own
     * admission (discharged later) and never appears. */
    assert_string_equal(ev, "patient_id,hours_before,code,value\n"
                            "12,526.000000,ICD10:I10,\n"
                            "12,1.000000,LAB:500,0.5\n"
                            "12,0.000278,LAB:500,\n"
                            "12,719.000000,VITAL:heartrate,90\n");
    free(ev);
    char *pat = slurp(ft_path(fx.out, "patients.csv"));
    assert_non_null(pat);
    /* age = anchor_age + (stay year - anchor_year); subject 1's stays share a split */
    assert_non_null(strstr(pat, "11,52,F,"));
    assert_non_null(strstr(pat, ",1,0,0,white,walk in\n"));
    assert_non_null(strstr(pat, "12,52,F,"));
    assert_non_null(strstr(pat, ",1,1,1,white,ambulance\n"));
    assert_non_null(strstr(pat, "21,30,M,"));
    free(pat);
    char *notes = slurp(ft_path(fx.out, "notes.csv"));
    assert_non_null(notes);
    assert_non_null(strstr(notes, "11,Chest pain acuity 2. temperature normal. heart rate high."
                                  " resp rate normal. oxygen saturation normal. blood pressure"
                                  " low. pain severe.\n"));
    assert_non_null(strstr(notes, "21,Cough acuity 3.\n"));
    assert_null(strstr(notes, "\n12,")); /* an empty triage row gives no note */
    free(notes);
    ft_rmtree(fx.root);
}

static void test_lookback(void **state)
{
    (void)state;
    fixture fx;
    fixture_make(&fx, NULL);
    ff_mimic_opts o = ff_mimic_opts_default();
    o.ed_dir = fx.ed;
    o.hosp_dir = fx.hosp;
    o.icu_dir = fx.icu;
    o.lookback_days = 1; /* keeps the labs 1 h and 1 s before, not the 526 h / 719 h ones */
    ff_mimic_report rep;
    assert_int_equal(ff_mimic_import(&o, fx.out, &rep), FF_OK);
    char *ev = slurp(ft_path(fx.out, "events.csv"));
    assert_non_null(ev);
    assert_string_equal(ev, "patient_id,hours_before,code,value\n"
                            "12,1.000000,LAB:500,0.5\n"
                            "12,0.000278,LAB:500,\n");
    free(ev);
    assert_int_equal(rep.ev_dx + rep.ev_vital, 0);
    o.lookback_days = -1;
    assert_int_equal(ff_mimic_import(&o, fx.out, NULL), FF_ERANGE);
    ft_rmtree(fx.root);
}

static void test_errors(void **state)
{
    (void)state;
    fixture fx;
    /* A missing column names the file and the column. */
    fixture_make(&fx, "subject_id,hadm_id,stay_id,intime,outtime,race,arrival_transport\n");
    assert_int_equal(import_fixture(&fx, 0, NULL), FF_EFORMAT);
    ft_assert_error_has("ed/edstays.csv:1: missing required column 'disposition'");
    ft_rmtree(fx.root);

    /* A missing table names the file. */
    fixture_make(&fx, NULL);
    assert_int_equal(remove(ft_path(fx.icu, "icustays.csv")), 0);
    assert_int_equal(import_fixture(&fx, 0, NULL), FF_ENOTFOUND);
    ft_assert_error_has("icu/icustays.csv.gz: table not found");
    ft_rmtree(fx.root);

    /* Malformed records: counted and skipped (lenient), or the first is an error naming the
     * record (strict); the message never quotes the record. */
    static const char bad[] =
        "subject_id,hadm_id,stay_id,intime,outtime,gender,race,arrival_transport,disposition\n"
        "1,100,11,2150-01-02 10:00:00,2150-01-02 14:00:00,F,WHITE,WALK IN,ADMITTED\n"
        "1,101,12,2150-02-31X,2150-02-01 15:00:00,F,WHITE,AMBULANCE,ADMITTED\n"
        "2,,21,2151-05-05 08:00:00,2151-05-05 09:00:00,M,BLACK,WALK IN\n"
        "2,,21,2151-05-05 08:00:00,2151-05-05 09:00:00,M,BLACK,WALK IN,HOME\n";
    fixture_make(&fx, bad);
    ff_mimic_report rep;
    assert_int_equal(import_fixture(&fx, 0, &rep), FF_OK);
    assert_int_equal(rep.stays, 2);
    assert_int_equal(rep.bad_rows[FF_MIMIC_EDSTAYS], 2);
    ft_rmtree(fx.root);
    fixture_make(&fx, bad);
    assert_int_equal(import_fixture(&fx, 1, NULL), FF_EFORMAT);
    ft_assert_error_has("edstays.csv:3: intime or outtime is not a date-time");
    assert_null(strstr(ff_error_message(), "2150-02-31X"));
    ft_rmtree(fx.root);

    /* A truncated .csv.gz (preferred over the .csv beside it) is a read error, not a short
     * table taken silently. */
    if (!have_demo())
        return;
    fixture_make(&fx, NULL);
    char *gz = NULL;
    size_t len = 0;
    assert_int_equal(ff_file_read_all(ED_DIR "/edstays.csv.gz", 1 << 20, &gz, &len), FF_OK);
    assert_true(len > 400);
    ft_write_file(ft_path(fx.ed, "edstays.csv.gz"), gz, 400);
    free(gz);
    assert_int_equal(import_fixture(&fx, 0, NULL), FF_EIO);
    ft_assert_error_has("edstays.csv.gz: read error");
    ft_rmtree(fx.root);
}

static void test_parsers(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(ff_parse_datetime("1970-01-01 00:00:00", &t), 0);
    assert_int_equal(t, 0);
    /* 2000-03-01 = 11017 days after the epoch (leap year 2000) */
    assert_int_equal(ff_parse_datetime("2000-03-01 01:02:03", &t), 0);
    assert_int_equal(t, 11017LL * 86400 + 3723);
    /* beyond 2038 and 2100 (not a leap year): 2201-01-01 = 84371 days (Python's date) */
    assert_int_equal(ff_parse_datetime("2201-01-01", &t), 0);
    assert_int_equal(t, 84371LL * 86400);
    assert_int_equal(ff_parse_datetime("2201-01-01 10:00", &t), 0);
    assert_int_equal(ff_parse_datetime("2201-13-01 10:00:00", &t), -1);
    assert_int_equal(ff_parse_datetime("2201-01-01 10:00:0", &t), -1);
    assert_int_equal(ff_parse_datetime("", &t), -1);
    int64_t id;
    assert_int_equal(ff_parse_id("12x", &id), -1);
    assert_int_equal(ff_parse_id("", &id), -1);
    assert_int_equal(ff_parse_id("10014729", &id), 0);
    assert_int_equal(id, 10014729);
    double v;
    assert_int_equal(ff_parse_num("nan", &v), -1);
    assert_int_equal(ff_parse_num("1e999", &v), -1);
    assert_int_equal(ff_parse_num("-2.5", &v), 0);
    ff_i64map m;
    assert_int_equal(ff_i64map_init(&m, 1), FF_OK);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(ff_i64map_put(&m, (int64_t)i * 7919, i), FF_OK);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(ff_i64map_get(&m, (int64_t)i * 7919), i);
    assert_int_equal(ff_i64map_get(&m, 1), -1);
    ff_i64map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_leakage_rule),
        cmocka_unit_test(test_lookback),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_demo_counts),
        cmocka_unit_test(test_demo_sites),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
