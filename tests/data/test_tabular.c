/* tabular.csv (the tabular modality): reading against the declared features, the encoded
 * batch row (standardised with the train split's mean and population sd, one-hot, missing
 * indicators) against values computed here by hand, a patient with only a tabular row kept,
 * and every bad cell, column and row with its file:line message (strict) or count (lenient). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/data.h"

static void put(const char *dir, const char *name, const char *text)
{
    ft_write_file(ft_path(dir, name), text, strlen(text));
}

/* Tiny shape, one binary task `y`, features lactate (numeric) and triage (low, mid, high). */
static ff_data_shape tab_shape(void)
{
    ff_data_shape s;
    ff_data_shape_tiny(&s);
    s.H = s.W = 4, s.Lt = 8, s.Le = 2, s.K = 1;
    memset(&s.tasks, 0, sizeof s.tasks);
    s.tasks.n = 1;
    snprintf(s.tasks.t[0].name, 64, "y");
    s.tasks.t[0].scale = 1;
    assert_int_equal(ff_task_set_finish(&s.tasks), FF_OK);
    ff_feature_set *fs = &s.tab;
    fs->n = 2;
    snprintf(fs->f[0].name, 64, "lactate");
    snprintf(fs->f[1].name, 64, "triage");
    fs->f[1].kind = FF_FEATURE_CATEGORICAL;
    fs->f[1].ncat = 3;
    snprintf(fs->f[1].cat[0], 32, "low");
    snprintf(fs->f[1].cat[1], 32, "mid");
    snprintf(fs->f[1].cat[2], 32, "high");
    assert_int_equal(ff_feature_set_finish(fs), FF_OK);
    return s;
}

static const char *kPatients = "patient_id,split,y\n"
                               "a,train,1\nb,train,0\nc,train,1\nd,test,0\ne,val,1\n";

static int load(const char *dir, int strict, ff_site **s, ff_load_report *rep)
{
    ff_data_shape sh = tab_shape();
    ff_site_opts o = ff_site_opts_default();
    o.strict = strict;
    return ff_site_load(s, dir, &sh, &o, rep);
}

static void test_encoded_rows(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    put(dir, "patients.csv", kPatients);
    put(dir, "notes.csv", "patient_id,text\na,x\nb,y\nc,z\n");
    /* d has only its tabular row (kept); e has nothing (excluded); c's lactate is missing */
    put(dir, "tabular.csv", "triage,patient_id,lactate\n"
                            "low,a,1.0\nhigh,b, 3.0 \n,c,\nmid,d,5.5\n");
    ff_site *s = NULL;
    ff_load_report rep;
    if (load(dir, 0, &s, &rep) != FF_OK)
        fail_msg("%s", ff_error_message());
    assert_int_equal(rep.has_tabular_file, 1);
    assert_int_equal(rep.with_tab, 4);
    assert_int_equal(rep.patients[FF_SPLIT_TRAIN], 3);
    assert_int_equal(rep.patients[FF_SPLIT_TEST], 1);       /* d: tabular alone */
    assert_int_equal(rep.skipped[FF_SKIP_NO_MODALITY], 1);  /* e */
    assert_int_equal(rep.tab_missing[0], 1);
    assert_int_equal(rep.tab_missing[1], 1);
    ff_data_shape sh = tab_shape();
    ff_batch b;
    assert_int_equal(ff_site_batch_alloc(&b, 3, &sh), FF_OK);
    assert_int_equal(b.F, 2 + 4);
    uint32_t idx[3] = {0, 1, 2};
    assert_int_equal(ff_site_batch(s, FF_SPLIT_TRAIN, idx, 3, NULL, NULL, &b), FF_OK);
    /* train lactate values 1 and 3: mean 2, population sd 1 */
    static const float want[3 * 6] = {-1, 0, 1, 0, 0, 0, /* a: low */
                                      1,  0, 0, 0, 1, 0, /* b: high */
                                      0,  1, 0, 0, 0, 1 /* c: both missing */};
    for (int j = 0; j < 18; j++)
        if (fabsf(b.tab[j] - want[j]) > 1e-6f)
            fail_msg("column %d: %g, want %g", j, (double)b.tab[j], (double)want[j]);
    assert_true(b.tab_present[0] == 1 && b.tab_present[1] == 1 && b.tab_present[2] == 1);
    assert_int_equal(ff_site_batch(s, FF_SPLIT_TEST, idx, 1, NULL, NULL, &b), FF_OK);
    assert_true(fabsf(b.tab[0] - 3.5f) < 1e-6f && b.tab[3] == 1 && b.tab_present[0] == 1);
    assert_true(b.tab_present[1] == 0 && b.tab[6] == 0); /* rows past n are zeroed */
    ff_batch_free(&b);
    /* a batch without the tabular arrays is refused */
    assert_int_equal(ff_batch_alloc(&b, 3, sh.K, sh.C, sh.H, sh.W, sh.Lt, sh.Le), FF_OK);
    assert_int_equal(ff_site_batch(s, FF_SPLIT_TRAIN, idx, 1, NULL, NULL, &b), FF_EINVAL);
    ft_assert_error_has("0 tabular columns allocated, the declared features take 6");
    ff_batch_free(&b);
    ff_site_free(s);
    /* no declared features: tabular.csv is not read, d and e are excluded */
    ff_data_shape plain = tab_shape();
    memset(&plain.tab, 0, sizeof plain.tab);
    assert_int_equal(ff_site_load(&s, dir, &plain, NULL, &rep), FF_OK);
    assert_int_equal(rep.has_tabular_file, 0);
    assert_int_equal(rep.skipped[FF_SKIP_NO_MODALITY], 2);
    ff_site_free(s);
    ft_rmtree(dir);
}

typedef struct {
    int n;
    char last[256];
} skips;

/* Keeps the first tabular.csv skip (patients left with no modality come after). */
static void on_skip(void *ud, const char *where, long line, const char *reason)
{
    skips *k = ud;
    if (k->n++ || !strstr(where, "tabular.csv"))
        return;
    snprintf(k->last, sizeof k->last, "%s:%ld: %s", strrchr(where, '/') + 1, line, reason);
}

static void test_bad_cells(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    put(dir, "patients.csv", kPatients);
    static const struct {
        const char *csv, *msg;
        int skip;
    } bad[] = {
        {"patient_id,lactate,bmi,triage\na,1,2,low\n",
         "tabular.csv:1: column 3 'bmi' is not a declared tabular feature (model config "
         "tabular.features)", FF_SKIP_TABULAR_CELL},
        {"patient_id,lactate,triage\na,1,low\nb,1.2.3,low\n",
         "tabular.csv:3: column 'lactate': not a finite number",
         FF_SKIP_TABULAR_CELL},
        {"patient_id,lactate,triage\na,inf,low\n", "tabular.csv:2: column 'lactate': not a "
         "finite number", FF_SKIP_TABULAR_CELL},
        {"patient_id,lactate,triage\na,1,LOW\n", "tabular.csv:2: column 'triage': value is not "
         "one of the 3 declared categories", FF_SKIP_TABULAR_CELL},
        {"patient_id,lactate\na,1\n", "tabular.csv:1: no column 'triage' (a declared feature)",
         FF_SKIP_TABULAR_CELL},
        {"patient_id,lactate,triage\nzz,1,low\n", "tabular.csv:2: patient_id not in patients.csv",
         FF_SKIP_TABULAR_ROW},
        {"patient_id,lactate,triage\na,1,low\na,2,mid\n", "tabular.csv:3: second row of a "
         "patient (the first is kept)", FF_SKIP_TABULAR_ROW},
        {"patient_id,lactate,triage\na,1\n", "tabular.csv:2: wrong number of fields",
         FF_SKIP_TABULAR_ROW},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(bad); i++) {
        put(dir, "tabular.csv", bad[i].csv);
        ff_site *s = NULL;
        ff_load_report rep;
        assert_int_equal(load(dir, 1, &s, &rep), FF_EFORMAT);
        if (!strstr(ff_error_message(), bad[i].msg))
            fail_msg("case %zu strict: '%s' lacks '%s'", i, ff_error_message(), bad[i].msg);
        /* lenient: counted, told to on_skip with the same words, the load goes on */
        ff_data_shape sh = tab_shape();
        ff_site_opts o = ff_site_opts_default();
        skips k = {0};
        o.on_skip = on_skip, o.skip_ud = &k;
        put(dir, "notes.csv", "patient_id,text\na,x\nb,y\n");
        assert_int_equal(ff_site_load(&s, dir, &sh, &o, &rep), FF_OK);
        assert_int_equal(rep.skipped[bad[i].skip], 1);
        if (!strstr(bad[i].msg, k.last) && !strstr(k.last, strchr(bad[i].msg, ' ') + 1))
            fail_msg("case %zu lenient: '%s' vs '%s'", i, k.last, bad[i].msg);
        ff_site_free(s);
        remove(ft_path(dir, "notes.csv"));
    }
    /* a value never appears in a message: it is patient data */
    put(dir, "tabular.csv", "patient_id,lactate,triage\na,SECRET7,low\n");
    ff_site *s = NULL;
    assert_int_equal(load(dir, 1, &s, NULL), FF_EFORMAT);
    assert_null(strstr(ff_error_message(), "SECRET7"));
    /* the header must name patient_id */
    put(dir, "tabular.csv", "id,lactate,triage\na,1,low\n");
    assert_int_equal(load(dir, 0, &s, NULL), FF_EFORMAT);
    ft_assert_error_has("tabular.csv:1: missing required column 'patient_id'");
    ft_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoded_rows),
        cmocka_unit_test(test_bad_cells),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
