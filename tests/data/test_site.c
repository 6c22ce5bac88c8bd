/* Site loading: the format (RFC 4180 notes, optional modalities, attributes), every bad-input
 * case with its exact message or count, PNG decoding and area resize, and batch assembly. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ff/data.h"
#include "internal.h"

static void put(const char *dir, const char *name, const char *text)
{
    ft_write_file(ft_path(dir, name), text, strlen(text));
}

static const char *kPatients =
    "patient_id,age,sex,split,label_admission,label_icu,label_critical,insurance\n"
    "p1,71,F,train,1,0,0,public\n"
    "p2,34,M,train,0,0,,private\n"
    "p3,50,f,val,1,1,1,public\n"
    "p4,66,M,test,0,0,0,public\n";

/* p1: two notes (one multi-line with quotes and commas) and events; p2: note only; p3: image
 * only; p4: events only. */
static const char *kNotes = "patient_id,text\n"
                            "p1,\"Chest pain, \"\"crushing\"\"\nsince 2h\"\n"
                            "p2,mild headache\n"
                            "p1,denies SOB\n";

static const char *kEvents = "patient_id,hours_before,code,value\n"
                             "p1,1.5,LAB:TROPONIN,0.8\n"
                             "p1,200,I10,\n"
                             "p1,0.2,VITAL:HR,118\n"
                             "p4,5,LAB:TROPONIN,0.01\n"
                             "p4,30000,E11,\n";

static const char *make_site(void)
{
    const char *dir = ft_tmpdir();
    put(dir, "patients.csv", kPatients);
    put(dir, "notes.csv", kNotes);
    put(dir, "events.csv", kEvents);
    char img[512];
    snprintf(img, sizeof img, "%s/images", dir);
    assert_int_equal(mkdir(img, 0700), 0);
    float px[16];
    for (int i = 0; i < 16; i++)
        px[i] = (float)i / 15.0f;
    assert_int_equal(ff_png_write_gray(ft_path(img, "p3.png"), px, 4, 4, 16, 0), FF_OK);
    return dir;
}

static ff_data_shape small_shape(void)
{
    ff_data_shape s;
    ff_data_shape_tiny(&s);
    s.H = s.W = 4;
    s.Lt = 8;
    s.Le = 2;
    return s;
}

static int load(const char *dir, int strict, ff_site **site, ff_load_report *rep)
{
    ff_data_shape sh = small_shape();
    ff_site_opts o = ff_site_opts_default();
    o.strict = strict;
    return ff_site_load(site, dir, &sh, &o, rep);
}

static void test_good_site(void **state)
{
    (void)state;
    const char *dir = make_site();
    ff_site *s = NULL;
    ff_load_report rep;
    assert_int_equal(load(dir, 1, &s, &rep), FF_OK);
    assert_int_equal(ff_site_count(s, FF_SPLIT_TRAIN), 2);
    assert_int_equal(ff_site_count(s, FF_SPLIT_VAL), 1);
    assert_int_equal(ff_site_count(s, FF_SPLIT_TEST), 1);
    assert_string_equal(ff_site_patient_id(s, FF_SPLIT_TRAIN, 1), "p2");
    assert_int_equal(rep.with_image, 1);
    assert_int_equal(rep.with_text, 2);
    assert_int_equal(rep.with_ehr, 2);
    assert_int_equal(rep.note_rows, 3);
    assert_int_equal(rep.event_rows, 5);
    assert_int_equal(rep.events_dropped, 1); /* p1 has 3 events, Le = 2 */
    assert_int_equal(rep.positives[FF_SPLIT_TRAIN][0], 1);
    assert_int_equal(rep.labelled[FF_SPLIT_TRAIN][2], 1);
    assert_int_equal(rep.edges_local, 1);
    /* attributes */
    assert_int_equal(ff_site_attr_count(s), 3);
    assert_string_equal(ff_site_attr_name(s, 2), "insurance");
    assert_string_equal(ff_site_attr_value(s, 2, ff_site_patient_attr(s, FF_SPLIT_TRAIN, 1, 2)),
                        "private");
    assert_string_equal(ff_site_attr_value(s, 0, ff_site_patient_attr(s, FF_SPLIT_VAL, 0, 0)), "F");
    assert_string_equal(ff_site_attr_value(s, 1, ff_site_patient_attr(s, FF_SPLIT_TRAIN, 0, 1)),
                        "65+");

    ff_batch b;
    assert_int_equal(ff_batch_alloc(&b, 3, 3, 1, 4, 4, 8, 2), FF_OK);
    uint32_t idx[2] = {0, 1};
    assert_int_equal(ff_site_batch(s, FF_SPLIT_TRAIN, idx, 2, NULL, NULL, &b), FF_OK);
    /* p1's notes in file order: the quoted note (commas, quotes, newline) then "denies SOB". */
    const char *joined = "Chest pain, \"crushing\"\nsince 2h denies SOB";
    int32_t want[8] = {0};
    ff_tok_text(joined, strlen(joined), 2048, 0, want, 8, NULL);
    assert_memory_equal(b.text_ids, want, sizeof want);
    /* p1 keeps its two most recent events, oldest first: troponin (1.5 h) then HR (0.2 h). */
    assert_int_equal(b.ehr_code[0], ff_tok_code("LAB:TROPONIN", 12, 1024));
    assert_int_equal(b.ehr_code[1], ff_tok_code("VITAL:HR", 8, 1024));
    assert_int_equal(b.ehr_time[0], ff_tok_time_bin(1.5, 16));
    assert_int_equal(b.ehr_time[1], ff_tok_time_bin(0.2, 16));
    /* Troponin 0.8 is the larger of the two troponin values: top decile; HR has one value. */
    assert_int_equal(b.ehr_val[0], 10);
    assert_true(b.ehr_val[1] >= 1 && b.ehr_val[1] <= 10);
    assert_true(b.image_present[0] == 0.0f);
    assert_true(b.labels[0] == 1.0f && b.label_mask[2] == 1.0f);
    /* p2: empty label_critical is unknown: mask 0 */
    assert_true(b.label_mask[3 + 2] == 0.0f);
    assert_int_equal(b.ehr_code[2], 0);
    /* row 2 unused: zeroed, mask 0 */
    assert_true(b.label_mask[6] == 0.0f && b.text_ids[16] == 0);

    /* p3's 16-bit image: values i/15 normalised to [-1, 1]. */
    ff_batch bv;
    assert_int_equal(ff_batch_alloc(&bv, 1, 3, 1, 4, 4, 8, 2), FF_OK);
    idx[0] = 0;
    assert_int_equal(ff_site_batch(s, FF_SPLIT_VAL, idx, 1, NULL, NULL, &bv), FF_OK);
    assert_true(bv.image_present[0] == 1.0f);
    for (int i = 0; i < 16; i++)
        assert_true(fabsf(bv.image[i] - ((float)i / 15.0f * 2 - 1)) < 1e-4f);
    /* Augmentation with every transform off is the identity; on, it changes the image but
     * keeps it close, and never empties a note. */
    ff_aug none = {0};
    ff_rng rng;
    ff_rng_init(&rng, 1, 1);
    ff_batch ba;
    assert_int_equal(ff_batch_alloc(&ba, 1, 3, 1, 4, 4, 8, 2), FF_OK);
    assert_int_equal(ff_site_batch(s, FF_SPLIT_VAL, idx, 1, &none, &rng, &ba), FF_OK);
    assert_memory_equal(ba.image, bv.image, 16 * sizeof(float));
    ff_aug aug = ff_aug_default();
    aug.token_drop = 0.99f;
    assert_int_equal(ff_site_batch(s, FF_SPLIT_VAL, idx, 1, &aug, &rng, &ba), FF_OK);
    double diff = 0;
    for (int i = 0; i < 16; i++)
        diff += fabs(ba.image[i] - bv.image[i]);
    assert_true(diff > 0 && diff / 16 < 0.5);
    assert_int_equal(ff_site_batch(s, FF_SPLIT_TRAIN, idx, 1, &aug, &rng, &ba), FF_OK);
    assert_int_not_equal(ba.text_ids[0], 0);
    /* index outside the split */
    idx[0] = 5;
    assert_int_equal(ff_site_batch(s, FF_SPLIT_VAL, idx, 1, NULL, NULL, &bv), FF_ERANGE);
    ft_assert_error_has("outside the val split");
    ff_batch_free(&b);
    ff_batch_free(&bv);
    ff_batch_free(&ba);

    /* Shuffle: a permutation, the same for the same (seed, epoch), another for epoch 1. */
    uint32_t o1[2], o2[2];
    ff_site_shuffle(s, FF_SPLIT_TRAIN, 9, 0, o1);
    ff_site_shuffle(s, FF_SPLIT_TRAIN, 9, 0, o2);
    assert_memory_equal(o1, o2, sizeof o1);
    assert_int_equal(o1[0] + o1[1], 1);
    ff_site_free(s);
    ft_rmtree(dir);
}

/* Each bad-input case: strict stops with the exact place, lenient counts. */
typedef struct {
    const char *file, *content;
    const char *strict_msg; /* substring of the strict error */
    ff_skip_reason reason;  /* counted in lenient mode */
} bad_case;

static void test_bad_inputs(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"notes.csv", "patient_id,text\np1,ok\np2,a,b\n", "notes.csv:3: wrong number of fields",
         FF_SKIP_NOTE_ROW},
        {"notes.csv", "patient_id,text\np1,\"multi\nline\"\nzz,hello\n",
         "notes.csv:4: patient_id not in patients.csv", FF_SKIP_NOTE_UNKNOWN},
        {"events.csv", "patient_id,hours_before,code,value\np1,-2,X,\n",
         "events.csv:2: hours_before is not a finite number >= 0", FF_SKIP_EVENT_ROW},
        {"events.csv", "patient_id,hours_before,code,value\np1,2,X,abc\n",
         "events.csv:2: value is neither empty nor a finite number", FF_SKIP_EVENT_ROW},
        {"events.csv", "patient_id,hours_before,code,value\np1,2,,1\n",
         "events.csv:2: code is empty", FF_SKIP_EVENT_ROW},
        {"events.csv", "patient_id,hours_before,code,value\nq9,2,X,1\n",
         "events.csv:2: patient_id not in patients.csv", FF_SKIP_EVENT_UNKNOWN},
        {"patients.csv",
         "patient_id,age,sex,split,label_admission,label_icu,label_critical\n"
         "p1,71,F,train,1,0,0\np2,abc,M,train,0,0,0\n",
         "patients.csv:3: age is not a number in 0..130", FF_SKIP_PATIENT_ROW},
        {"patients.csv",
         "patient_id,age,sex,split,label_admission,label_icu,label_critical\n"
         "p1,71,F,train,1,0,0\np2,40,M,holdout,0,0,0\n",
         "patients.csv:3: split is not one of train, val, test", FF_SKIP_PATIENT_ROW},
        {"patients.csv",
         "patient_id,age,sex,split,label_admission,label_icu,label_critical\n"
         "p1,71,F,train,1,0,0\np1,40,M,train,0,0,0\n",
         "patients.csv:3: patient_id appears on an earlier line", FF_SKIP_DUPLICATE_ID},
        {"patients.csv",
         "patient_id,age,sex,split,label_admission,label_icu,label_critical\n"
         "p1,71,F,train,1,0,0\n../x,40,M,train,0,0,0\n",
         "patients.csv:3: patient_id is empty", FF_SKIP_PATIENT_ROW},
        {"patients.csv",
         "patient_id,age,sex,split,label_admission,label_icu,label_critical\n"
         "p1,71,F,train,1,0,0\np5,40,M,train,0,0,0\n",
         "patients.csv:3: patient has no image, note or event", FF_SKIP_NO_MODALITY},
        {"images/p1.png", "this is not a png", "p1.png: unreadable PNG", FF_SKIP_IMAGE_BAD},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(cases); i++) {
        const bad_case *c = &cases[i];
        const char *dir = ft_tmpdir();
        put(dir, "patients.csv", "patient_id,age,sex,split,label_admission,label_icu,"
                                 "label_critical\np1,71,F,train,1,0,0\n");
        put(dir, "notes.csv", "patient_id,text\np1,chest pain\n");
        if (strncmp(c->file, "images/", 7) == 0) {
            char img[512];
            snprintf(img, sizeof img, "%s/images", dir);
            assert_int_equal(mkdir(img, 0700), 0);
        }
        put(dir, c->file, c->content);
        ff_site *s = NULL;
        ff_load_report rep;
        print_message("case %zu: %s\n", i, c->strict_msg);
        assert_int_not_equal(load(dir, 1, &s, &rep), FF_OK);
        assert_null(s);
        ft_assert_error_has(c->strict_msg);
        assert_int_equal(load(dir, 0, &s, &rep), FF_OK);
        assert_int_equal(rep.skipped[c->reason], 1);
        long total = 0;
        for (int r = 0; r < FF_SKIP_COUNT; r++)
            total += rep.skipped[r];
        assert_int_equal(total, 1);
        ff_site_free(s);
        ft_rmtree(dir);
    }
}

/* Errors in both modes: labels, missing columns, malformed quoting, nothing usable. */
static void test_hard_errors(void **state)
{
    (void)state;
    static const struct {
        const char *file, *content, *msg;
        int lenient_too;
    } cases[] = {
        {"patients.csv", "patient_id,age,sex,split,label_admission,label_icu,label_critical\n"
                         "p1,71,F,train,1,0,0\np2,3,M,val,0,2,0\n",
         "patients.csv:3: label_icu must be 0, 1 or empty", 1},
        {"patients.csv", "age,sex,split,label_admission,label_icu,label_critical\n"
                         "71,F,train,1,0,0\n",
         "patients.csv:1: missing required column 'patient_id'", 1},
        {"site.yaml", "format: 3\n", "site.yaml:1:9: format", 1},
        {"site.yaml", "format: 2\nattributes: [ward]\n",
         "patients.csv:1: attribute column 'ward' (declared in site.yaml) is missing", 1},
        {"notes.csv", "patient_id,text\np1,\"never closed\n", "notes.csv:2: malformed CSV", 0},
        {"notes.csv", "patient_id,text\np1,ab\"c\"d\n", "notes.csv:2: malformed CSV", 0},
        {"notes.csv", "patient_id\np1\n", "notes.csv:1: missing required column 'text'", 1},
        {"patients.csv", "patient_id,age,sex,split,label_admission,label_icu,label_critical\n"
                         "p1,71,Q,train,1,0,0\n",
         "no usable patient", 1},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(cases); i++) {
        const char *dir = ft_tmpdir();
        put(dir, "patients.csv", "patient_id,age,sex,split,label_admission,label_icu,"
                                 "label_critical\np1,71,F,train,1,0,0\n");
        put(dir, "notes.csv", "patient_id,text\np1,chest pain\n");
        put(dir, cases[i].file, cases[i].content);
        ff_site *s = NULL;
        ff_load_report rep;
        print_message("case %zu: %s\n", i, cases[i].msg);
        if (i != 7) {
            assert_int_not_equal(load(dir, 1, &s, &rep), FF_OK);
            ft_assert_error_has(cases[i].msg);
        }
        int rc = load(dir, 0, &s, &rep);
        if (cases[i].lenient_too) {
            assert_int_not_equal(rc, FF_OK);
            ft_assert_error_has(cases[i].msg);
        } else {
            assert_int_equal(rc, FF_OK); /* libcsv's tolerant reading */
            ff_site_free(s);
        }
        ft_rmtree(dir);
    }
    ff_site *s = NULL;
    assert_int_equal(load("/nonexistent/site", 0, &s, NULL), FF_EIO);
    ft_assert_error_has("/nonexistent/site: not a readable directory");
}

/* FNV-1a-32 written out again (the split of a patients.csv without a split column). */
static int split_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h % 10 < 6 ? FF_SPLIT_TRAIN : h % 10 < 8 ? FF_SPLIT_VAL : FF_SPLIT_TEST;
}

/* Format 2: only patient_id is required; unknown age and sex; absent label columns are
 * unknown labels; no split column = split from the id; site.yaml declares the attributes
 * (other columns ignored). The first layout (kPatients) still loads (test_good_site). */
static void test_format2(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    put(dir, "site.yaml", "format: 2\nattributes: [ward]\n");
    char pat[4096] = "patient_id,label_icu,ward,free_text_comment,age,sex\n", row[128];
    char note[4096] = "patient_id,text\n";
    for (int i = 0; i < 40; i++) {
        snprintf(row, sizeof row, "q%d,%s,%s,anything,%s,%s\n", i, i % 3 ? "1" : "",
                 i % 2 ? "A" : "B", i % 4 ? "55" : i % 8 ? "" : "unknown", i % 5 ? "F" : "");
        strcat(pat, row);
        snprintf(row, sizeof row, "q%d,chest pain\n", i);
        strcat(note, row);
    }
    put(dir, "patients.csv", pat);
    put(dir, "notes.csv", note);
    ff_site *s = NULL;
    ff_load_report rep;
    assert_int_equal(load(dir, 1, &s, &rep), FF_OK);
    assert_int_equal(rep.format, 2);
    assert_true(rep.label_missing[0] && !rep.label_missing[1] && rep.label_missing[2]);
    assert_true(rep.split_derived);
    long want[FF_SPLIT_COUNT] = {0}, icu = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(row, sizeof row, "q%d", i);
        want[split_of(row)]++;
        icu += i % 3 != 0;
    }
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++)
        assert_int_equal(rep.patients[sp], want[sp]);
    long lab_icu = 0, lab_adm = 0;
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++)
        lab_icu += rep.labelled[sp][1], lab_adm += rep.labelled[sp][0];
    assert_int_equal(lab_icu, icu);
    assert_int_equal(lab_adm, 0);
    /* sex, age_band, then only the declared attribute */
    assert_int_equal(ff_site_attr_count(s), 3);
    assert_string_equal(ff_site_attr_name(s, 2), "ward");
    assert_int_equal(ff_site_attr_nvalues(s, 1), 4);
    assert_string_equal(ff_site_attr_value(s, 1, 3), "unknown");
    int unknown_age = 0, unknown_sex = 0, n = 0;
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++)
        for (size_t i = 0; i < ff_site_count(s, (ff_split)sp); i++, n++) {
            unknown_age += ff_site_patient_attr(s, (ff_split)sp, i, 1) == 3;
            unknown_sex += ff_site_patient_attr(s, (ff_split)sp, i, 0) == 3;
        }
    assert_int_equal(n, 40);
    assert_int_equal(unknown_age, 10); /* i % 4 == 0 */
    assert_int_equal(unknown_sex, 8);  /* i % 5 == 0 */
    ff_site_free(s);
    ft_rmtree(dir);
}

/* Declared tasks (issue 23): each kind's label columns into the batch (one-hot classes, raw
 * regression values, survival time and event), unknown per row and per missing column,
 * undeclared label_* columns not taken as attributes, and the errors naming line and task. */
static void declared_shape(ff_data_shape *sh)
{
    *sh = small_shape();
    ff_task_set *ts = &sh->tasks;
    memset(ts, 0, sizeof *ts);
    ts->n = 4;
    const char *names[] = {"grade", "los", "death", "flag"};
    int kinds[] = {FF_TASK_MULTICLASS, FF_TASK_REGRESSION, FF_TASK_SURVIVAL, FF_TASK_BINARY};
    for (int k = 0; k < 4; k++) {
        snprintf(ts->t[k].name, sizeof ts->t[k].name, "%s", names[k]);
        ts->t[k].kind = kinds[k];
        ts->t[k].scale = 1;
    }
    ts->t[0].classes = 3;
    snprintf(ts->t[0].label, 64, "g");
    snprintf(ts->t[1].label, 64, "los");
    snprintf(ts->t[2].time, 64, "t");
    snprintf(ts->t[2].event, 64, "e");
    ts->t[2].horizon = 10;
    assert_int_equal(ff_task_set_finish(ts), FF_OK);
    sh->K = ts->width; /* 3 + 1 + 2 + 1 */
}

static void test_declared_tasks(void **state)
{
    (void)state;
    const char *dir = ft_tmpdir();
    put(dir, "patients.csv", "patient_id,split,g,los,t,e,label_icu\n"
                             "a,train,2,12.5,3.5,1,1\n"
                             "b,train,,-4,7,0,0\n"
                             "c,train,0,,,,1\n");
    put(dir, "notes.csv", "patient_id,text\na,x\nb,y\nc,z\n");
    ff_data_shape sh;
    declared_shape(&sh);
    ff_site *s = NULL;
    ff_load_report rep;
    ff_site_opts o = ff_site_opts_default();
    o.strict = 1;
    assert_int_equal(ff_site_load(&s, dir, &sh, &o, &rep), FF_OK);
    assert_true(!rep.label_missing[0] && !rep.label_missing[2] && rep.label_missing[3]);
    assert_int_equal(rep.labelled[0][0], 2);
    assert_int_equal(rep.labelled[0][1], 2);
    assert_int_equal(rep.labelled[0][2], 2);
    assert_int_equal(rep.positives[0][2], 1); /* one event */
    assert_int_equal(ff_site_attr_count(s), 2); /* label_icu is not an attribute */
    ff_batch b;
    assert_int_equal(ff_batch_alloc(&b, 3, sh.K, sh.C, sh.H, sh.W, sh.Lt, sh.Le), FF_OK);
    uint32_t idx[3] = {0, 1, 2};
    assert_int_equal(ff_site_batch(s, FF_SPLIT_TRAIN, idx, 3, NULL, NULL, &b), FF_OK);
    static const float Y[3 * 7] = {0, 0, 1, 12.5f, 3.5f, 1, 0, 0, 0, 0, -4, 7, 0, 0,
                                   1, 0, 0, 0, 0, 0, 0};
    static const float M[3 * 7] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0,
                                   1, 1, 1, 0, 0, 0, 0};
    for (int j = 0; j < 21; j++) {
        if (b.labels[j] != Y[j] || b.label_mask[j] != M[j])
            fail_msg("column %d: label %g mask %g, want %g %g", j, (double)b.labels[j],
                     (double)b.label_mask[j], (double)Y[j], (double)M[j]);
    }
    ff_batch_free(&b);
    ff_site_free(s);
    static const struct {
        const char *row, *msg;
    } bad[] = {
        {"d,train,3,1,1,1\n", "patients.csv:2: g must be a class 0 .. classes-1 or empty (task grade)"},
        {"d,train,1.5,1,1,1\n", "patients.csv:2: g must be a class"},
        {"d,train,1,x,1,1\n", "patients.csv:2: los must be a finite number or empty (task los)"},
        {"d,train,1,1,-1,1\n", "patients.csv:2: t time must be a number >= 0 and event 0 or 1 (task death)"},
        {"d,train,1,1,1,2\n", "(task death)"},
        {"d,train,1,1,1,\n", "patients.csv:2: task death: t and e must both be given or both empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[256];
        snprintf(text, sizeof text, "patient_id,split,g,los,t,e\n%s", bad[i].row);
        put(dir, "patients.csv", text);
        o.strict = (int)(i % 2); /* labels are checked in both modes */
        assert_int_not_equal(ff_site_load(&s, dir, &sh, &o, &rep), FF_OK);
        if (!strstr(ff_error_message(), bad[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, ff_error_message(), bad[i].msg);
    }
    ft_rmtree(dir);
}

/* Area resize against hand-computed means, and PNG round trips of 8-bit, 16-bit, RGB. */
static void test_png_and_resize(void **state)
{
    (void)state;
    const float src[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    float dst[4];
    ff_resize_area(src, 3, 3, dst, 2, 2);
    /* Target (0,0) covers rows [0,1.5) x cols [0,1.5): weights 1, .5, .5, .25 on 0,1,3,4. */
    assert_true(fabsf(dst[0] - (0 * 1 + 1 * .5f + 3 * .5f + 4 * .25f) / 2.25f) < 1e-6f);
    assert_true(fabsf(dst[3] - (4 * .25f + 5 * .5f + 7 * .5f + 8 * 1) / 2.25f) < 1e-6f);
    const float big[16] = {0, 0, 1, 1, 0, 0, 1, 1, .5f, .5f, .25f, .25f, .5f, .5f, .25f, .25f};
    ff_resize_area(big, 4, 4, dst, 2, 2);
    assert_true(dst[0] == 0 && dst[1] == 1 && dst[2] == .5f && dst[3] == .25f);
    const char *dir = ft_tmpdir();
    float back[16];
    for (int depth = 8; depth <= 16; depth += 8)
        for (int rgb = 0; rgb <= 1; rgb++) {
            const char *p = ft_path(dir, "x.png");
            assert_int_equal(ff_png_write_gray(p, big, 4, 4, depth, rgb), FF_OK);
            assert_int_equal(ff_png_load_gray(p, 4, 4, back), FF_OK);
            for (int i = 0; i < 16; i++)
                assert_true(fabsf(back[i] - big[i]) < (depth == 8 ? 3e-3f : 1e-4f));
            assert_int_equal(ff_png_load_gray(p, 2, 2, back), FF_OK);
            assert_true(fabsf(back[1] - 1) < 1e-3f && fabsf(back[3] - .25f) < 3e-3f);
        }
    ft_write_file(ft_path(dir, "t.png"), "\x89PNG\r\n\x1a\n\0\0", 10);
    assert_int_equal(ff_png_load_gray(ft_path(dir, "t.png"), 2, 2, back), FF_EFORMAT);
    ft_assert_error_has("t.png: unreadable PNG");
    ft_rmtree(dir);
}

/* Never a crash: random mixtures of CSV syntax in every file, both modes. The load either
 * succeeds or fails with a message; ASan/UBSan runs make this meaningful. */
static void test_garbage_never_crashes(void **state)
{
    (void)state;
    static const char alphabet[] = "p1,\"\n\r 0123456789.-abcFMtrainvl\xff\x00";
    ff_rng r;
    ff_rng_init(&r, 99, 3);
    char buf[600];
    for (int iter = 0; iter < 60; iter++) {
        const char *dir = ft_tmpdir();
        put(dir, "patients.csv", kPatients);
        put(dir, "notes.csv", kNotes);
        put(dir, "events.csv", kEvents);
        static const char *const files[] = {"patients.csv", "notes.csv", "events.csv"};
        const char *target = files[iter % 3];
        const char *header = iter % 3 == 0 ? "patient_id,age,sex,split,label_admission,"
                                             "label_icu,label_critical\n"
                             : iter % 3 == 1 ? "patient_id,text\n"
                                             : "patient_id,hours_before,code,value\n";
        size_t n = strlen(header);
        memcpy(buf, header, n);
        size_t len = n + ff_rng_below(&r, 400);
        for (size_t i = n; i < len; i++)
            buf[i] = alphabet[ff_rng_below(&r, sizeof alphabet - 1)];
        ft_write_file(ft_path(dir, target), buf, len);
        for (int strict = 0; strict <= 1; strict++) {
            ff_site *s = NULL;
            ff_load_report rep;
            int rc = load(dir, strict, &s, &rep);
            if (rc == FF_OK) {
                assert_non_null(s);
                ff_site_free(s);
            } else {
                assert_null(s);
                assert_true(strlen(ff_error_message()) > 0);
            }
        }
        ft_rmtree(dir);
    }
}

/* The federated statistics path: two hospitals' histograms merged by the coordinator give
 * shared edges; loading with them bins equal values equally in both and is not flagged
 * local. */
static void test_shared_edges(void **state)
{
    (void)state;
    const char *a = make_site(), *b = ft_tmpdir();
    put(b, "patients.csv", kPatients);
    put(b, "events.csv", "patient_id,hours_before,code,value\n"
                         "p1,1,LAB:TROPONIN,5.0\np2,1,LAB:TROPONIN,9.0\n"
                         "p3,1,LAB:TROPONIN,0.8\np4,1,LAB:TROPONIN,7.0\n");
    ff_data_shape sh = small_shape();
    ff_site *sa = NULL, *sb = NULL;
    ff_load_report rep;
    assert_int_equal(load(a, 0, &sa, &rep), FF_OK);
    assert_int_equal(load(b, 0, &sb, &rep), FF_OK);
    ff_value_hist merged;
    assert_int_equal(ff_value_hist_init(&merged, sh.Vc), FF_OK);
    assert_int_equal(ff_value_hist_merge(&merged, ff_site_value_hist(sa)), FF_OK);
    assert_int_equal(ff_value_hist_merge(&merged, ff_site_value_hist(sb)), FF_OK);
    ff_value_edges shared;
    assert_int_equal(ff_value_edges_from_hist(&merged, &shared), FF_OK);
    ff_site_free(sa);
    ff_site_free(sb);
    ff_site_opts o = ff_site_opts_default();
    o.edges = &shared;
    assert_int_equal(ff_site_load(&sa, a, &sh, &o, &rep), FF_OK);
    assert_int_equal(rep.edges_local, 0);
    assert_int_equal(ff_site_load(&sb, b, &sh, &o, &rep), FF_OK);
    /* Site a's troponin 0.8 (p1) and site b's 0.8 (p3, val split) get the same bin, which is
     * no longer the top bin it had among site a's two values alone. */
    ff_batch ba, bb;
    assert_int_equal(ff_batch_alloc(&ba, 1, 3, 1, 4, 4, 8, 2), FF_OK);
    assert_int_equal(ff_batch_alloc(&bb, 1, 3, 1, 4, 4, 8, 2), FF_OK);
    uint32_t i0 = 0;
    assert_int_equal(ff_site_batch(sa, FF_SPLIT_TRAIN, &i0, 1, NULL, NULL, &ba), FF_OK);
    assert_int_equal(ff_site_batch(sb, FF_SPLIT_VAL, &i0, 1, NULL, NULL, &bb), FF_OK);
    assert_int_equal(ba.ehr_code[0], bb.ehr_code[0]);
    assert_int_equal(ba.ehr_val[0], bb.ehr_val[0]);
    assert_true(ba.ehr_val[0] < 10);
    ff_batch_free(&ba);
    ff_batch_free(&bb);
    ff_site_free(sa);
    ff_site_free(sb);
    /* Edges for another vocabulary size are refused. */
    ff_value_hist small;
    ff_value_edges wrong;
    assert_int_equal(ff_value_hist_init(&small, 16), FF_OK);
    assert_int_equal(ff_value_edges_from_hist(&small, &wrong), FF_OK);
    o.edges = &wrong;
    assert_int_equal(ff_site_load(&sa, a, &sh, &o, &rep), FF_EINVAL);
    ft_assert_error_has("value edges: 16 codes, the shape has Vc=1024");
    ff_value_edges_free(&wrong);
    ff_value_hist_free(&small);
    ff_value_edges_free(&shared);
    ff_value_hist_free(&merged);
    ft_rmtree(a);
    ft_rmtree(b);
}

/* ff_site_patient_events (what explain shows): the loader's row checks and its order. */
static void test_patient_events(void **state)
{
    (void)state;
    const char *d = ft_tmpdir();
    const char *csv = "patient_id,hours_before,code,value\n"
                      "p1,5,LAB:b,1.5\n"
                      "p2,1,LAB:a,\n"
                      "p1,0.5,DX:x,\n"
                      "p1,-1,DX:neg,\n"      /* skipped: negative hours */
                      "p1,2,,\n"             /* skipped: empty code */
                      "p1,3,LAB:c,abc\n"     /* skipped: value not a number */
                      "p1,4,LAB:d\n"         /* skipped: wrong number of fields */
                      "p1,5,LAB:a,2\n";
    ft_write_file(ft_path(d, "events.csv"), csv, strlen(csv));
    ff_site_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(ff_site_patient_events(d, "p1", 1000, &ev, &n), FF_OK);
    assert_int_equal(n, 3);
    assert_string_equal(ev[0].code, "DX:x"); /* most recent first */
    assert_true(ev[0].hours == 0.5 && ev[0].value[0] == '\0');
    /* equal times: by code id, as the loader orders them */
    int32_t a = ff_tok_code("LAB:a", 5, 1000), b = ff_tok_code("LAB:b", 5, 1000);
    assert_string_equal(ev[1].code, a < b ? "LAB:a" : "LAB:b");
    assert_string_equal(ev[2].code, a < b ? "LAB:b" : "LAB:a");
    assert_int_equal(ev[1].code_id, a < b ? a : b);
    ff_site_events_free(ev, n);
    assert_int_equal(ff_site_patient_events(d, "nobody", 1000, &ev, &n), FF_OK);
    assert_int_equal(n, 0);
    ff_site_events_free(ev, n);
    ft_rmtree(d);
    assert_int_equal(ff_site_patient_events(d, "p1", 1000, &ev, &n), FF_OK); /* no file */
    assert_int_equal(n, 0);
}

/* The text ids the loader stored for patient id (shape sh), through a one-row batch. */
static void loader_text(const ff_site *s, const ff_data_shape *sh, const char *id, int32_t *ids)
{
    ff_batch b;
    assert_int_equal(ff_site_batch_alloc(&b, 1, sh), FF_OK);
    int found = 0;
    for (int sp = 0; sp < FF_SPLIT_COUNT && !found; sp++)
        for (uint32_t i = 0; i < ff_site_count(s, (ff_split)sp) && !found; i++)
            if (strcmp(ff_site_patient_id(s, (ff_split)sp, i), id) == 0) {
                assert_int_equal(ff_site_batch(s, (ff_split)sp, &i, 1, NULL, NULL, &b), FF_OK);
                found = 1;
            }
    assert_true(found);
    memcpy(ids, b.text_ids, (size_t)sh->Lt * sizeof *ids);
    ff_batch_free(&b);
}

/* ff_site_patient_notes (what explain reads words from): the loader's row checks and order;
 * tokenised (no bigrams), the text gives exactly the ids the loader fed the model. */
static void test_patient_notes(void **state)
{
    (void)state;
    const char *d = make_site();
    const char *notes = "patient_id,text\n"
                        "p1,\"Chest pain, \"\"crushing\"\"\nsince 2h\"\n"
                        "p2,mild headache\n"
                        "p2,\"extra\",field\n"   /* skipped: wrong number of fields */
                        "p2,caf\xff\n"          /* skipped: not UTF-8 */
                        "p22,other patient\n"   /* another id (p2 is a prefix) */
                        "p1,denies SOB\n";
    put(d, "notes.csv", notes);
    ff_data_shape sh = small_shape();
    sh.Lt = 16;
    sh.bigrams = 0;
    ff_site_opts o = ff_site_opts_default();
    ff_site *s = NULL;
    ff_load_report rep;
    assert_int_equal(ff_site_load(&s, d, &sh, &o, &rep), FF_OK);
    assert_int_equal(rep.skipped[FF_SKIP_NOTE_ROW], 1);
    assert_int_equal(rep.skipped[FF_SKIP_BAD_UTF8], 1);
    static const char *const ids[] = {"p1", "p2", "p3", "p4"};
    static const char *const want[] = {"Chest pain, \"crushing\"\nsince 2h denies SOB",
                                       "mild headache", "", ""};
    for (int k = 0; k < 4; k++) {
        char *text = NULL;
        size_t len = 99;
        assert_int_equal(ff_site_patient_notes(d, ids[k], &text, &len), FF_OK);
        assert_string_equal(text, want[k]);
        assert_int_equal(len, strlen(want[k]));
        int32_t got[16] = {0}, fed[16];
        ff_tok_text(text, len, sh.Vt, 0, got, 16, NULL);
        loader_text(s, &sh, ids[k], fed);
        assert_memory_equal(got, fed, sizeof fed);
        free(text);
    }
    ff_site_free(s);
    char *text = NULL;
    size_t len = 0;
    unlink(ft_path(d, "notes.csv"));
    assert_int_equal(ff_site_patient_notes(d, "p1", &text, &len), FF_OK); /* no file: "" */
    assert_string_equal(text, "");
    free(text);
    ft_rmtree(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_site),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_hard_errors),
        cmocka_unit_test(test_format2),
        cmocka_unit_test(test_declared_tasks),
        cmocka_unit_test(test_png_and_resize),
        cmocka_unit_test(test_garbage_never_crashes),
        cmocka_unit_test(test_shared_edges),
        cmocka_unit_test(test_patient_events),
        cmocka_unit_test(test_patient_notes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
