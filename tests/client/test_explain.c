/* fedfuse explain on a small synthetic site with the tiny model, trained briefly. Each view is
 * compared with an independent path: ablation with ff_local_predict, counterfactuals with a
 * direct forward on the modified input, words with the raw notes.csv, the heat map with
 * libpng's reader. */
#include "testutil.h"

#include <ctype.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ff/client.h"
#include "site_fixture.h"

typedef struct {
    const char *dir;
    char site_dir[512];
    ff_model_config mc;
    ff_site *site;
    ff_model *m;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = ft_tmpdir();
    if (ftc_site_make(f->dir, 300, 21, &f->mc, &f->site, f->site_dir, sizeof f->site_dir) != FF_OK)
        return -1;
    if (ff_model_new(&f->m, &f->mc, 32) != FF_OK || ff_model_init(f->m, 7) != FF_OK)
        return -1;
    ff_local_opts o;
    memset(&o, 0, sizeof o);
    o.steps = 100;
    o.batch = 16;
    ff_optim_config_default(&o.optim);
    o.optim.lr = 2e-3f;
    o.modalities = FF_MOD_ALL;
    o.seed = 3;
    ff_local_stats st;
    if (ff_local_train(f->m, &f->site, 1, &o, &st) != FF_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ff_model_free(f->m);
    ff_site_free(f->site);
    ft_rmtree(f->dir);
    free(f);
    return 0;
}

/* The patient's single-row input and its position in the split. */
static void patient_batch(fixture *f, ff_split sp, size_t i, ff_batch *b)
{
    const ff_data_shape *sh = ff_site_shape(f->site);
    assert_int_equal(ff_batch_alloc(b, 1, sh->K, sh->C, sh->H, sh->W, sh->Lt, sh->Le), FF_OK);
    uint32_t u = (uint32_t)i;
    assert_int_equal(ff_site_batch(f->site, sp, &u, 1, NULL, NULL, b), FF_OK);
}

/* First patient of a split with all three modalities. */
static size_t full_patient(fixture *f, ff_split sp)
{
    for (size_t i = 0; i < ff_site_count(f->site, sp); i++) {
        ff_batch b;
        patient_batch(f, sp, i, &b);
        int all = ff_batch_present(&b, 0, 0) && ff_batch_present(&b, 0, 1) &&
                  ff_batch_present(&b, 0, 2);
        ff_batch_free(&b);
        if (all)
            return i;
    }
    fail_msg("no patient with all modalities");
    return 0;
}

static json_t *explain(fixture *f, const char *id, const ff_explain_opts *o)
{
    json_t *ex = NULL;
    int rc = ff_explain(f->m, f->site, f->site_dir, id, o, &ex);
    if (rc != FF_OK)
        fail_msg("ff_explain: %s", ff_error_message());
    return ex;
}

static double num(const json_t *a, size_t i) { return json_number_value(json_array_get(a, i)); }

static void test_predictions_finite(void **state)
{
    fixture *f = *state;
    size_t i = full_patient(f, FF_SPLIT_TEST);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    json_t *ex = explain(f, ff_site_patient_id(f->site, FF_SPLIT_TEST, i), &o);
    json_t *pr = json_object_get(ex, "predictions");
    assert_int_equal(json_array_size(pr), 3);
    for (size_t k = 0; k < 3; k++) {
        json_t *p = json_array_get(pr, k);
        double raw = json_number_value(json_object_get(p, "probability"));
        double cal = json_number_value(json_object_get(p, "calibrated"));
        double T = json_number_value(json_object_get(p, "temperature"));
        assert_true(isfinite(raw) && raw > 0 && raw < 1);
        assert_true(isfinite(cal) && cal > 0 && cal < 1);
        assert_true(T > 0);
        /* calibrated = sigmoid(logit / T) */
        double l = json_number_value(json_object_get(p, "logit"));
        assert_true(fabs(cal - 1.0 / (1.0 + exp(-l / T))) < 1e-9);
    }
    /* the attention over words is a distribution over the note's tokens */
    double s = 0;
    size_t w;
    json_t *x;
    json_array_foreach(json_object_get(ex, "words"), w, x)
        s += json_number_value(json_object_get(x, "attention"));
    /* ... less what the hidden words (stop words, single letters) received */
    json_array_foreach(json_object_get(ex, "hidden_words"), w, x)
        s += json_number_value(json_object_get(x, "attention"));
    assert_true(fabs(s - 1.0) < 1e-4);
    s = 0;
    json_array_foreach(json_object_get(ex, "words"), w, x)
        s += json_number_value(json_object_get(x, "attention"));
    if (json_integer_value(json_object_get(ex, "words_hidden")) == 0)
        assert_true(fabs(s - 1.0) < 1e-4);
    else
        assert_true(s > 0 && s < 1.0 + 1e-4);
    json_array_foreach(json_object_get(ex, "words"), w, x) {
        const char *word = json_string_value(json_object_get(x, "word"));
        assert_true(strlen(word) > 1);
        assert_true(strcmp(word, "the") != 0 && strcmp(word, "see") != 0);
    }
    json_decref(ex);
}

static void test_ablation_matches_local_predict(void **state)
{
    fixture *f = *state;
    size_t i = full_patient(f, FF_SPLIT_TEST), n = ff_site_count(f->site, FF_SPLIT_TEST);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    o.k = 0;
    json_t *ex = explain(f, ff_site_patient_id(f->site, FF_SPLIT_TEST, i), &o);
    json_t *abl = json_object_get(ex, "ablation");
    assert_int_equal(json_array_size(abl), 3);
    float *p = malloc(n * 3 * sizeof *p), *l = malloc(n * 3 * sizeof *l);
    float *k = malloc(n * 3 * sizeof *k);
    static const int without[3] = {FF_MOD_TXT | FF_MOD_EHR, FF_MOD_IMG | FF_MOD_EHR,
                                   FF_MOD_IMG | FF_MOD_TXT};
    for (int j = 0; j < 3; j++) {
        assert_int_equal(ff_local_predict(f->m, f->site, FF_SPLIT_TEST, without[j], -1.0f, p, l, k),
                         FF_OK);
        json_t *pr = json_object_get(json_array_get(abl, (size_t)j), "probability");
        for (size_t t = 0; t < 3; t++) {
            double want = p[i * 3 + t], got = num(pr, t);
            if (fabs(want - got) > 1e-6)
                fail_msg("modality %d task %zu: explain %.9f, ff_local_predict %.9f", j, t, got,
                         want);
        }
    }
    /* removing the events must change the prediction (the tiny model uses them) */
    assert_true(fabs(num(json_object_get(json_array_get(abl, 2), "probability"), 0) -
                     json_number_value(json_object_get(
                         json_array_get(json_object_get(ex, "predictions"), 0), "probability"))) >
                1e-6);
    free(p);
    free(l);
    free(k);
    json_decref(ex);
}

/* The note text of a patient from notes.csv, lower-cased (independent of the tokenizer). */
static char *note_of(fixture *f, const char *id)
{
    char path[600];
    snprintf(path, sizeof path, "%s/notes.csv", f->site_dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char line[8192], *acc = calloc(1, 1);
    size_t len = 0, idl = strlen(id);
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, id, idl) == 0 && line[idl] == ',') {
            size_t add = strlen(line);
            acc = realloc(acc, len + add + 1);
            for (size_t c = 0; c < add; c++)
                acc[len + c] = (char)tolower((unsigned char)line[c]);
            len += add;
            acc[len] = '\0';
        }
    fclose(fp);
    return acc;
}

/* word occurs in text as a whole token (bounded by non-alphanumerics). */
static int has_token(const char *text, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        int left = p == text || !isalnum((unsigned char)p[-1]);
        int right = !isalnum((unsigned char)p[wl]);
        if (left && right)
            return 1;
    }
    return 0;
}

static void test_word_counterfactual_and_top_word(void **state)
{
    fixture *f = *state;
    size_t i = full_patient(f, FF_SPLIT_TEST);
    const char *id = ff_site_patient_id(f->site, FF_SPLIT_TEST, i);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    o.k = 0;
    json_t *ex = explain(f, id, &o);
    json_t *words = json_object_get(ex, "words");
    const char *top = json_string_value(json_object_get(json_array_get(words, 0), "word"));
    assert_non_null(top);
    char *note = note_of(f, id);
    if (!has_token(note, top))
        fail_msg("top word '%s' is not in the patient's note", top);
    /* occlusion is sorted by importance */
    for (size_t w = 1; w < json_array_size(words); w++)
        assert_true(
            json_number_value(json_object_get(json_array_get(words, w - 1), "importance")) >=
            json_number_value(json_object_get(json_array_get(words, w), "importance")));
    char word[128];
    snprintf(word, sizeof word, "%s", top);
    json_decref(ex);

    o.word = word;
    ex = explain(f, id, &o);
    json_t *cf = json_array_get(json_object_get(ex, "counterfactuals"), 0);
    assert_non_null(cf);
    /* oracle: the same input with every token of the word set to padding */
    ff_batch b;
    patient_batch(f, FF_SPLIT_TEST, i, &b);
    int32_t wid = ff_tok_word(word, strlen(word), ff_site_shape(f->site)->Vt);
    int removed = 0;
    for (int t = 0; t < b.Lt; t++)
        if (b.text_ids[t] == wid)
            b.text_ids[t] = 0, removed++;
    assert_true(removed > 0);
    float logits[3];
    assert_int_equal(ff_model_forward(f->m, &b, logits, NULL), FF_OK);
    json_t *pr = json_object_get(cf, "probability");
    for (size_t t = 0; t < 3; t++) {
        double want = 1.0 / (1.0 + exp(-(double)logits[t]));
        if (fabs(num(pr, t) - want) > 1e-6)
            fail_msg("task %zu: counterfactual %.9f, direct forward %.9f", t, num(pr, t), want);
    }
    ff_batch_free(&b);
    free(note);
    json_decref(ex);
}

static void test_lab_counterfactual(void **state)
{
    fixture *f = *state;
    size_t i = full_patient(f, FF_SPLIT_TEST);
    const char *id = ff_site_patient_id(f->site, FF_SPLIT_TEST, i);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    o.k = 0;
    /* take the code of the patient's first event that has a value */
    json_t *ex = explain(f, id, &o);
    char code[64] = "";
    size_t e;
    json_t *x;
    json_array_foreach(json_object_get(ex, "events"), e, x)
        if (!code[0] && json_is_string(json_object_get(x, "value")))
            snprintf(code, sizeof code, "%s", json_string_value(json_object_get(x, "code")));
    json_decref(ex);
    if (!code[0])
        skip();
    o.lab = code;
    ex = explain(f, id, &o);
    json_t *cfs = json_object_get(ex, "counterfactuals");
    assert_int_equal(json_array_size(cfs), 3);
    ff_batch b;
    patient_batch(f, FF_SPLIT_TEST, i, &b);
    int32_t cid = ff_tok_code(code, strlen(code), ff_site_shape(f->site)->Vc);
    int32_t orig[256];
    assert_true(b.Le <= 256);
    memcpy(orig, b.ehr_val, (size_t)b.Le * sizeof(int32_t));
    for (size_t c = 0; c < 3; c++) {
        json_t *cf = json_array_get(cfs, c);
        int bin = (int)json_integer_value(json_object_get(cf, "value_bin"));
        for (int t = 0; t < b.Le; t++)
            b.ehr_val[t] = b.ehr_code[t] == cid ? bin : orig[t];
        float logits[3];
        assert_int_equal(ff_model_forward(f->m, &b, logits, NULL), FF_OK);
        for (size_t t = 0; t < 3; t++)
            assert_true(fabs(num(json_object_get(cf, "probability"), t) -
                             1.0 / (1.0 + exp(-(double)logits[t]))) < 1e-6);
    }
    ff_batch_free(&b);
    json_decref(ex);
}

static void test_neighbours_sorted_without_self(void **state)
{
    fixture *f = *state;
    size_t i = full_patient(f, FF_SPLIT_TRAIN);
    const char *id = ff_site_patient_id(f->site, FF_SPLIT_TRAIN, i);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    o.k = 7;
    json_t *ex = explain(f, id, &o);
    json_t *nn = json_object_get(ex, "neighbours");
    assert_int_equal(json_array_size(nn), 7);
    double prev = -1;
    for (size_t k = 0; k < 7; k++) {
        json_t *x = json_array_get(nn, k);
        assert_string_not_equal(json_string_value(json_object_get(x, "patient")), id);
        double d = json_number_value(json_object_get(x, "distance"));
        assert_true(d >= prev && isfinite(d));
        prev = d;
        assert_int_equal(json_array_size(json_object_get(x, "labels")), 3);
    }
    json_decref(ex);
}

static void test_heatmap_png(void **state)
{
    fixture *f = *state;
    size_t i = full_patient(f, FF_SPLIT_TEST);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    o.k = 0;
    o.heatmap_path = ft_path(f->dir, "heatmap.png");
    json_t *ex = explain(f, ff_site_patient_id(f->site, FF_SPLIT_TEST, i), &o);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, o.heatmap_path));
    /* 32 px upscaled by 8 to 256, then the colour bar (10 + 18 + 6 px) */
    assert_int_equal(img.width, 256);
    assert_int_equal(img.height, 256 + 34);
    img.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL));
    json_t *pa = json_object_get(ex, "patches");
    assert_int_equal(json_array_size(pa), 16);
    /* each patch's colour follows the sign of its change for the first task, on the fixed
     * scale: red above the noise floor, blue below minus it, grey (R = G = B) in between */
    double floor = json_number_value(json_object_get(json_object_get(ex, "heatmap_scale"),
                                                     "noise_floor_logit"));
    assert_true(floor > 0);
    size_t k;
    json_t *p;
    int signs = 0;
    json_array_foreach(pa, k, p) {
        double d = json_number_value(json_array_get(json_object_get(p, "occlusion"), 0));
        size_t row = (size_t)json_integer_value(json_object_get(p, "row"));
        size_t col = (size_t)json_integer_value(json_object_get(p, "col"));
        const unsigned char *px = buf + ((row * 64 + 32) * 256 + col * 64 + 32) * 3;
        if (d >= floor)
            assert_true(px[0] > px[2]), signs++;
        else if (d <= -floor)
            assert_true(px[2] > px[0]), signs++;
        else
            assert_true(px[0] == px[1] && px[1] == px[2]);
    }
    free(buf);
    /* one map per task beside it */
    json_t *maps = json_object_get(ex, "heatmaps");
    assert_int_equal(json_array_size(maps), json_array_size(json_object_get(ex, "predictions")));
    json_array_foreach(maps, k, p)
        assert_true(access(json_string_value(json_object_get(p, "file")), R_OK) == 0);
    (void)signs;
    json_decref(ex);
}

/* The deletion test: step 0 is the prediction itself and step 1 removes exactly the item the
 * occlusion view ranks first, so it must equal that item's own occluded prediction. */
static void test_faithfulness_curve(void **state)
{
    fixture *f = *state;
    size_t i = full_patient(f, FF_SPLIT_TEST);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    o.k = 0;
    json_t *ex = explain(f, ff_site_patient_id(f->site, FF_SPLIT_TEST, i), &o);
    json_t *fa = json_object_get(ex, "faithfulness");
    assert_int_equal(json_array_size(fa), json_array_size(json_object_get(ex, "predictions")));
    size_t k;
    json_t *t;
    json_array_foreach(fa, k, t) {
        json_t *pred = json_array_get(json_object_get(ex, "predictions"), k);
        double T = json_number_value(json_object_get(pred, "temperature"));
        double l0 = json_number_value(json_object_get(pred, "logit"));
        json_t *a = json_object_get(t, "attribution_order");
        assert_true(json_array_size(a) >= 2);
        assert_true(fabs(json_number_value(json_array_get(a, 0)) -
                         json_number_value(json_object_get(pred, "calibrated"))) < 1e-6);
        /* the largest single change over words, events and patches */
        double top = -INFINITY;
        const char *const views[4] = {"words", "hidden_words", "events", "patches"};
        for (int v = 0; v < 4; v++) {
            size_t j;
            json_t *it;
            json_array_foreach(json_object_get(ex, views[v]), j, it)
                top = fmax(top, json_number_value(json_array_get(json_object_get(it, "occlusion"),
                                                                 k)));
        }
        double want = 1.0 / (1.0 + exp(-(l0 - top) / T));
        assert_true(fabs(json_number_value(json_array_get(a, 1)) - want) < 1e-4);
        double sc = json_number_value(json_object_get(t, "faithfulness"));
        assert_true(isfinite(sc) && sc <= 1.0);
    }
    json_decref(ex);
}

/* A patient without an image: no patches, no heat map, and the word attention comes from the
 * text encoder (the image tokens' cross-attention cannot matter for the prediction). */
static void test_patient_without_image(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < ff_site_count(f->site, FF_SPLIT_TEST); i++) {
        ff_batch b;
        patient_batch(f, FF_SPLIT_TEST, i, &b);
        int want = !ff_batch_present(&b, 0, 0) && ff_batch_present(&b, 0, 1);
        ff_batch_free(&b);
        if (!want)
            continue;
        ff_explain_opts o;
        ff_explain_opts_default(&o);
        o.k = 0;
        o.heatmap_path = ft_path(f->dir, "none.png");
        json_t *ex = explain(f, ff_site_patient_id(f->site, FF_SPLIT_TEST, i), &o);
        assert_int_equal(json_array_size(json_object_get(ex, "patches")), 0);
        assert_true(json_is_null(json_object_get(ex, "heatmap")));
        const char *v = json_string_value(json_object_get(json_object_get(ex, "attention_views"),
                                                          "words"));
        assert_non_null(v);
        assert_non_null(strstr(v, "text-encoder"));
        /* ablating the absent image changes nothing */
        json_t *a0 = json_object_get(json_array_get(json_object_get(ex, "ablation"), 0),
                                     "probability");
        json_t *p0 = json_array_get(json_object_get(ex, "predictions"), 0);
        assert_true(fabs(num(a0, 0) - json_number_value(json_object_get(p0, "probability"))) <
                    1e-6);
        json_decref(ex);
        return;
    }
    skip();
}

static void test_unknown_patient(void **state)
{
    fixture *f = *state;
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    json_t *ex = (json_t *)1;
    assert_int_equal(ff_explain(f->m, f->site, f->site_dir, "NO-SUCH-42", &o, &ex), FF_ENOTFOUND);
    assert_null(ex);
    ft_assert_error_has("patient 'NO-SUCH-42' is not in");
    /* nothing about other patients */
    assert_null(strstr(ff_error_message(), "H1-"));
}

/* The synthetic site's label columns declared as other kinds: grade (multiclass, 2 classes,
 * label_admission), stay (regression, label_icu) and crit (binary, label_critical); K = 4. */
static void mixed_tasks(ff_model_config *c, int survival)
{
    ff_task_set *ts = &c->task_set;
    memset(ts, 0, sizeof *ts);
    ts->n = 3;
    const char *names[] = {"grade", "stay", "crit"}, *labels[] = {"label_admission", "label_icu",
                                                                  "label_critical"};
    int kinds[] = {FF_TASK_MULTICLASS, FF_TASK_REGRESSION, FF_TASK_BINARY};
    for (int k = 0; k < 3; k++) {
        snprintf(ts->t[k].name, sizeof ts->t[k].name, "%s", names[k]);
        snprintf(ts->t[k].label, sizeof ts->t[k].label, "%s", labels[k]);
        ts->t[k].kind = kinds[k];
        ts->t[k].scale = 1;
    }
    ts->t[0].classes = 2;
    ts->t[1].center = 2.0, ts->t[1].scale = 3.0; /* the value is center + scale x logit */
    if (survival) {
        ts->t[1].kind = FF_TASK_SURVIVAL;
        ts->t[1].label[0] = '\0';
        snprintf(ts->t[1].time, sizeof ts->t[1].time, "age");
        snprintf(ts->t[1].event, sizeof ts->t[1].event, "label_icu");
        ts->t[1].horizon = 10;
    }
    assert_int_equal(ff_task_set_finish(ts), FF_OK);
    c->tasks = ts->width;
}

/* Multiclass and regression tasks: each task's explained quantity is named; the shown
 * outputs and the modality ablations equal ff_local_predict's task outputs (softmax
 * probability of the predicted class, the predicted value: ff_model_task_outputs, an
 * independent path); faithfulness for the multiclass and binary tasks only. A survival task
 * is refused naming why. */
static void test_multiclass_and_regression(void **state)
{
    fixture *f = *state;
    ff_model_config mc = f->mc;
    mixed_tasks(&mc, 0);
    ff_data_shape sh;
    ff_client_shape(&mc, &sh);
    ff_site_opts so = ff_site_opts_default();
    ff_site *site;
    ff_model *m;
    assert_int_equal(ff_site_load(&site, f->site_dir, &sh, &so, NULL), FF_OK);
    assert_int_equal(ff_model_new(&m, &mc, 32), FF_OK);
    assert_int_equal(ff_model_init(m, 7), FF_OK);
    ff_local_opts lo = ftc_local_opts(40, 3);
    ff_local_stats st;
    assert_int_equal(ff_local_train(m, &site, 1, &lo, &st), FF_OK);
    fixture g = *f;
    g.site = site, g.m = m;
    size_t i = full_patient(&g, FF_SPLIT_TEST), n = ff_site_count(site, FF_SPLIT_TEST);
    ff_explain_opts o;
    ff_explain_opts_default(&o);
    char hm[600];
    snprintf(hm, sizeof hm, "%s/heatmap-mixed.png", f->dir);
    o.heatmap_path = hm;
    json_t *ex = NULL;
    if (ff_explain(m, site, f->site_dir, ff_site_patient_id(site, FF_SPLIT_TEST, i), &o, &ex) !=
        FF_OK)
        fail_msg("ff_explain: %s", ff_error_message());
    int K = mc.tasks;
    float *p = malloc(n * (size_t)K * sizeof *p), *l = malloc(n * (size_t)K * sizeof *l);
    float *mk = malloc(n * (size_t)K * sizeof *mk);
    assert_int_equal(ff_local_predict(m, site, FF_SPLIT_TEST, FF_MOD_ALL, -1.0f, p, l, mk), FF_OK);
    const float *pi = p + i * (size_t)K;
    json_t *pr = json_object_get(ex, "predictions");
    assert_int_equal(json_array_size(pr), 3);
    json_t *g0 = json_array_get(pr, 0), *r0 = json_array_get(pr, 1), *b0 = json_array_get(pr, 2);
    int cls = pi[1] > pi[0];
    assert_int_equal(json_integer_value(json_object_get(g0, "class")), cls);
    assert_non_null(strstr(json_string_value(json_object_get(g0, "explained")),
                           "the predicted class"));
    assert_non_null(strstr(json_string_value(json_object_get(r0, "explained")),
                           "predicted value"));
    assert_null(json_object_get(b0, "explained")); /* binary: as before */
    double want[3] = {pi[cls], pi[2], pi[3]};
    for (int k = 0; k < 3; k++) {
        double got = json_number_value(json_object_get(json_array_get(pr, (size_t)k),
                                                       "probability"));
        print_message("task %d: explain %.9g, ff_local_predict %.9g\n", k, got, want[k]);
        assert_true(fabs(got - want[k]) < 1e-5 * fmax(1, fabs(want[k])));
    }
    /* the regression task's explained quantity (its "logit" entry) is the standardised
     * predicted value (value - center) / scale */
    double zr = (pi[2] - 2.0) / 3.0;
    assert_true(fabs(json_number_value(json_object_get(r0, "logit")) - zr) < 1e-5 * fmax(1, fabs(zr)));
    static const int without[3] = {FF_MOD_TXT | FF_MOD_EHR, FF_MOD_IMG | FF_MOD_EHR,
                                   FF_MOD_IMG | FF_MOD_TXT};
    json_t *abl = json_object_get(ex, "ablation");
    for (int j = 0; j < 3; j++) {
        assert_int_equal(ff_local_predict(m, site, FF_SPLIT_TEST, without[j], -1.0f, p, l, mk),
                         FF_OK);
        double w2[3] = {pi[cls], pi[2], pi[3]};
        json_t *ap = json_object_get(json_array_get(abl, (size_t)j), "probability");
        for (int k = 0; k < 3; k++)
            if (fabs(num(ap, (size_t)k) - w2[k]) > 1e-5 * fmax(1, fabs(w2[k])))
                fail_msg("modality %d task %d: explain %.9f, ff_local_predict %.9f", j, k,
                         num(ap, (size_t)k), w2[k]);
    }
    json_t *fa = json_object_get(ex, "faithfulness");
    assert_int_equal(json_array_size(fa), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(fa, 0), "task")), "grade");
    assert_string_equal(json_string_value(json_object_get(json_array_get(fa, 1), "task")), "crit");
    char *txt = NULL;
    size_t tl = 0;
    FILE *mem = open_memstream(&txt, &tl);
    ff_explain_print(ex, 5, mem);
    fclose(mem);
    assert_non_null(strstr(txt, "multiclass"));
    assert_non_null(strstr(txt, "predicted value"));
    free(txt);
    char page[600];
    snprintf(page, sizeof page, "%s/explain-mixed.html", f->dir);
    assert_int_equal(ff_explain_page_write(ex, page), FF_OK);
    char *html = NULL;
    size_t hl = 0;
    assert_int_equal(ff_file_read_all(page, 1 << 24, &html, &hl), FF_OK);
    assert_non_null(strstr(html, "Explained quantity: logit of class"));
    assert_non_null(strstr(html, "Explained quantity: predicted value"));
    assert_null(strstr(html, "nan"));
    /* the regression task's heat map is of its explained quantity, the binary one's of log-odds */
    assert_non_null(strstr(html, "stay explained quantity when each patch is blanked"));
    assert_non_null(strstr(html, "crit log-odds when each patch is blanked"));
    free(html);
    json_decref(ex);
    free(p), free(l), free(mk);
    ff_model_free(m);
    ff_site_free(site);
    /* survival: refused before anything is computed, naming the task and what is supported */
    mixed_tasks(&mc, 1);
    ff_client_shape(&mc, &sh);
    assert_int_equal(ff_explain_check(&sh), FF_ECONFIG);
    ft_assert_error_has("task stay is a survival task");
    ft_assert_error_has("multiclass (the predicted class's logit)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predictions_finite),
        cmocka_unit_test(test_ablation_matches_local_predict),
        cmocka_unit_test(test_word_counterfactual_and_top_word),
        cmocka_unit_test(test_lab_counterfactual),
        cmocka_unit_test(test_neighbours_sorted_without_self),
        cmocka_unit_test(test_heatmap_png),
        cmocka_unit_test(test_faithfulness_curve),
        cmocka_unit_test(test_patient_without_image),
        cmocka_unit_test(test_unknown_patient),
        cmocka_unit_test(test_multiclass_and_regression),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
