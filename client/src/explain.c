/* fedfuse explain: why the fusion model predicted what it did for one patient of a site.
 *
 * Primary method everywhere is occlusion (model-agnostic, always available): remove one note
 * word (all its positions), blank one image patch (set to 0, the mid-grey of the [-1, 1]
 * input scale) or drop one record event, run the model again and report the change of the
 * logit per task (original - occluded: positive = the item pushed the risk up). All variants
 * of a patient are batched through ff_model_forward. Attention weights of the last forward
 * (ff_model_attention_received) are a second view: they say where the model looked, not what
 * changed its answer.
 *
 * Privacy: this file handles one patient's words, codes and values and the outcomes of
 * similar patients; they go into the returned JSON only (printed to the local terminal and
 * written to the output folder by the caller). Nothing here calls ff_log. */
#include <ctype.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "ff/client.h"
#include "explain_internal.h"

void ff_explain_opts_default(ff_explain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->k = 5;
    o->top = 8;
}

int ff_explain_check(const ff_data_shape *sh)
{
    /* one explained quantity per task: binary the risk's logit, multiclass the predicted
     * class's logit, regression the standardised predicted value (ex_quantities) */
    if (sh->tasks.n < 1 || sh->tasks.n > FF_DATA_TASKS)
        return ff_error(FF_ECONFIG, "explain: explains 1 to %d tasks; this model declares %d",
                        FF_DATA_TASKS, sh->tasks.n);
    for (int k = 0; k < sh->tasks.n; k++)
        if (sh->tasks.t[k].kind == FF_TASK_SURVIVAL)
            return ff_error(FF_ECONFIG, "explain: task %s is a survival task: its risk score "
                            "is relative (only its order among patients means something), so "
                            "a change of one patient's score explains nothing by itself; "
                            "explain supports binary (the risk's logit), multiclass (the "
                            "predicted class's logit) and regression (the predicted value) "
                            "tasks", sh->tasks.t[k].name);
    /* occlusion, modality removal and the fusion's attention are those of the three inputs */
    if (sh->tab.n > 0)
        return ff_error(FF_ECONFIG, "explain: the tabular modality (the model config's "
                        "tabular: section) is not explained yet; explain supports models of "
                        "image, note and record inputs");
    return FF_OK;
}

int ff_explain_find(const ff_site *s, const char *site_name, const char *patient_id,
                    ff_split *split, size_t *index)
{
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++) {
        size_t n = ff_site_count(s, (ff_split)sp);
        for (size_t i = 0; i < n; i++)
            if (strcmp(ff_site_patient_id(s, (ff_split)sp, i), patient_id) == 0) {
                *split = (ff_split)sp;
                *index = i;
                return FF_OK;
            }
    }
    return ff_error(FF_ENOTFOUND, "patient '%s' is not in %s (no such id in patients.csv, or "
                    "the patient has no image, note or event)", patient_id, site_name);
}

/* ---------------------------------------------------------------------------------------- */
/* Explanation state                                                                         */
/* ---------------------------------------------------------------------------------------- */


static void copy_row(ff_batch *dst, int r, const ff_batch *src)
{
    size_t img = (size_t)src->C * (size_t)src->H * (size_t)src->W, K = (size_t)src->K;
    size_t Lt = (size_t)src->Lt, Le = (size_t)src->Le, ru = (size_t)r;
    memcpy(dst->image + ru * img, src->image, img * sizeof(float));
    dst->image_present[r] = src->image_present[0];
    memcpy(dst->text_ids + ru * Lt, src->text_ids, Lt * sizeof(int32_t));
    memcpy(dst->ehr_code + ru * Le, src->ehr_code, Le * sizeof(int32_t));
    memcpy(dst->ehr_val + ru * Le, src->ehr_val, Le * sizeof(int32_t));
    memcpy(dst->ehr_time + ru * Le, src->ehr_time, Le * sizeof(int32_t));
    memcpy(dst->labels + ru * K, src->labels, K * sizeof(float));
    memcpy(dst->label_mask + ru * K, src->label_mask, K * sizeof(float));
}

/* Applies variant v's edit to row r of b (already a copy of the patient). */
static void apply_edit(const ex_state *st, ff_batch *b, int r, const ex_variant *v)
{
    size_t Lt = (size_t)b->Lt, Le = (size_t)b->Le, ru = (size_t)r;
    int32_t *t = b->text_ids + ru * Lt;
    int32_t *ec = b->ehr_code + ru * Le, *ev = b->ehr_val + ru * Le, *et = b->ehr_time + ru * Le;
    if (v->kind == V_WORD) {
        for (size_t i = 0; i < Lt; i++)
            if (t[i] == v->arg)
                t[i] = 0;
    } else if (v->kind == V_PATCH) {
        int S = b->W, g = S / st->P, pr = v->arg / g, pc = v->arg % g;
        for (int c = 0; c < b->C; c++)
            for (int y = pr * st->P; y < (pr + 1) * st->P; y++) {
                size_t row = (ru * (size_t)b->C + (size_t)c) * (size_t)S + (size_t)y;
                memset(b->image + row * (size_t)S + (size_t)(pc * st->P), 0,
                       (size_t)st->P * sizeof(float));
            }
    } else if (v->kind == V_EVENT) {
        ec[v->arg] = ev[v->arg] = et[v->arg] = 0;
    } else if (v->kind == V_DROP) {
        if (v->arg == 0) {
            size_t img = (size_t)b->C * (size_t)b->H * (size_t)b->W;
            memset(b->image + ru * img, 0, img * sizeof(float));
            b->image_present[r] = 0;
        } else if (v->arg == 1) {
            memset(t, 0, Lt * sizeof *t);
        } else {
            memset(ec, 0, Le * sizeof *ec);
            memset(ev, 0, Le * sizeof *ev);
            memset(et, 0, Le * sizeof *et);
        }
    } else if (v->kind == V_LAB) { /* arg = the value bin every event of the code gets */
        for (size_t i = 0; i < Le; i++)
            if (ec[i] == st->lab_code && ec[i] != 0)
                ev[i] = v->arg;
    }
}

/* Row r of b becomes the patient with variant v applied (every item of a V_SET). */
static void apply_variant(const ex_state *st, ff_batch *b, int r, const ex_variant *v)
{
    copy_row(b, r, &st->base);
    if (v->kind != V_SET) {
        apply_edit(st, b, r, v);
        return;
    }
    for (int i = 0; i < v->nset; i++)
        apply_edit(st, b, r, v->set[i]);
}

/* Runs every variant through the model, max-batch rows at a time. */
void ex_quantities(const ex_state *st, const float *z, float *q, float *out)
{
    for (int k = 0; k < st->K; k++) {
        const ff_task *t = &st->sh->tasks.t[k];
        const float *zt = z + t->col;
        if (t->kind == FF_TASK_MULTICLASS) {
            double m = zt[0], sum = 0;
            for (int j = 1; j < (int)t->classes; j++)
                m = fmax(m, zt[j]);
            for (int j = 0; j < (int)t->classes; j++)
                sum += exp((double)zt[j] - m);
            q[k] = zt[st->cls[k]];
            out[k] = (float)(exp((double)q[k] - m) / sum);
        } else if (t->kind == FF_TASK_REGRESSION) { /* changes in units of the task's scale,
                                                       * like the logit thresholds of the views */
            q[k] = zt[0];
            out[k] = (float)(t->center + t->scale * (double)zt[0]);
        } else {
            q[k] = zt[0];
            out[k] = (float)ex_sigm(zt[0]);
        }
    }
}

double ex_shown(const ex_state *st, int k, float q, float out)
{
    return st->sh->tasks.t[k].kind == FF_TASK_BINARY ? ex_sigm((double)q / st->T[k]) : out;
}

int ex_run_variants(ex_state *st, ex_variant *v, size_t n)
{
    int rows[1024];
    size_t i = 0;
    float *logits = malloc((size_t)FF_MIN(st->B, 1024) * (size_t)st->KW * sizeof *logits);
    if (!logits)
        return ff_error(FF_ENOMEM, "out of memory");
    while (i < n) {
        int r = 0;
        for (; i < n && r < st->B && r < 1024; i++) {
            apply_variant(st, &st->work, r, &v[i]);
            v[i].ok = ff_batch_present(&st->work, r, 0) || ff_batch_present(&st->work, r, 1) ||
                      ff_batch_present(&st->work, r, 2);
            if (v[i].ok)
                rows[r++] = (int)i;
        }
        if (r == 0)
            continue;
        ff_batch view = st->work;
        view.B = r;
        int rc = ff_model_forward(st->m, &view, logits, NULL);
        if (rc != FF_OK) {
            free(logits);
            return rc;
        }
        for (int j = 0; j < r; j++)
            ex_quantities(st, logits + (size_t)j * st->KW, v[rows[j]].logit, v[rows[j]].out);
    }
    free(logits);
    return FF_OK;
}


/* Temperature per task from the site's val split (FF_ENUMERIC or too few labels: T = 1). */
static int fit_temperatures(ex_state *st, const ff_site *s)
{
    size_t n = ff_site_count(s, FF_SPLIT_VAL), K = (size_t)st->KW;
    for (int k = 0; k < st->K; k++)
        st->T[k] = 1.0, st->calibrated[k] = 0;
    if (n < 2)
        return FF_OK;
    float *p = malloc(n * K * sizeof *p), *y = malloc(n * K * sizeof *y);
    float *mk = malloc(n * K * sizeof *mk);
    double *sc = malloc(n * sizeof *sc);
    uint8_t *lb = malloc(n);
    int rc = p && y && mk && sc && lb ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK)
        rc = ff_local_predict(st->m, s, FF_SPLIT_VAL, FF_MOD_ALL, 0.5f, p, y, mk);
    for (int k = 0; rc == FF_OK && k < st->K; k++) {
        size_t c = 0, col = (size_t)st->sh->tasks.t[k].col;
        if (st->sh->tasks.t[k].kind != FF_TASK_BINARY)
            continue; /* calibration is of binary risks */
        for (size_t i = 0; i < n; i++)
            if (mk[i * K + col] > 0.5f) {
                sc[c] = p[i * K + col];
                lb[c++] = y[i * K + col] > 0.5f;
            }
        double T = 1.0;
        if (c >= 2 && ff_temperature_fit(sc, lb, c, &T) == FF_OK && isfinite(T) && T > 0) {
            st->T[k] = T;
            st->calibrated[k] = 1;
        }
    }
    free(p);
    free(y);
    free(mk);
    free(sc);
    free(lb);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Words and events of the patient                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Maps each token position to the word of the note that hashes to its id (re-tokenising
 * the note exactly as ff_tok_text does: lower-case ASCII, split on every non-[a-z0-9]). */
static int map_words(ex_state *st)
{
    size_t Lt = (size_t)st->sh->Lt;
    st->word_of = calloc(Lt, sizeof *st->word_of);
    if (!st->word_of)
        return ff_error(FF_ENOMEM, "out of memory");
    const char *t = st->note;
    size_t n = st->note_len, pos = 0, len;
    char w[FF_TOK_MAX_WORD + 1];
    /* the loader's own splitter: the same words, folded and cut as the model saw them */
    while (ff_tok_next_word(t, n, &pos, w, &len)) {
        w[len] = '\0';
        int32_t id = ff_tok_word(w, len, st->sh->Vt);
        for (size_t p = 0; p < Lt; p++)
            if (st->base.text_ids[p] == id && !st->word_of[p] && !(st->word_of[p] = strdup(w)))
                return ff_error(FF_ENOMEM, "out of memory");
    }
    return FF_OK;
}

/* Events in the loader's order (most recent first, Le kept, stored oldest first). */
static void map_events(ex_state *st)
{
    size_t Le = (size_t)st->sh->Le, n = st->nev; /* already in the loader's order */
    size_t take = FF_MIN(n, Le);
    for (size_t k = 0; k < take; k++) {
        size_t pos = take - 1 - k;
        if (st->base.ehr_code[pos] == st->ev[k].code_id)
            st->ev_at[pos] = &st->ev[k];
    }
}

/* ---------------------------------------------------------------------------------------- */
/* JSON pieces                                                                               */
/* ---------------------------------------------------------------------------------------- */

static json_t *delta_arr(const ex_state *st, const ex_variant *v, double *imp)
{
    json_t *a = json_array();
    *imp = 0;
    for (int k = 0; k < st->K; k++) {
        double dl = (double)st->logit0[k] - (double)v->logit[k];
        json_array_append_new(a, json_real(dl));
        *imp = fmax(*imp, fabs(dl));
    }
    return a;
}

static json_t *prob_arr(const ex_state *st, const ex_variant *v)
{
    json_t *a = json_array();
    for (int k = 0; k < st->K; k++)
        json_array_append_new(a, json_real(ex_shown(st, k, v->logit[k], v->out[k])));
    return a;
}

static json_t *raw_prob_arr(const ex_state *st, const ex_variant *v)
{
    json_t *a = json_array();
    for (int k = 0; k < st->K; k++) /* binary: from the logit in double, as always */
        json_array_append_new(a, json_real(st->sh->tasks.t[k].kind == FF_TASK_BINARY
                                               ? ex_sigm((double)v->logit[k]) : v->out[k]));
    return a;
}

static int cmp_importance(const void *a, const void *b)
{
    double x = json_real_value(json_object_get(*(json_t *const *)a, "importance"));
    double y = json_real_value(json_object_get(*(json_t *const *)b, "importance"));
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sorts an array of objects by "importance", descending. */
static json_t *sorted(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **v = malloc((n ? n : 1) * sizeof *v);
    json_t *out = json_array();
    if (!v)
        return arr;
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(arr, i);
    qsort(v, n, sizeof *v, cmp_importance);
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    json_decref(arr);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Nearest training patients                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    double dist;
    size_t idx;
} ex_nn;

static int cmp_nn(const void *a, const void *b)
{
    const ex_nn *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The embedding of the last forward's rows: z, or the three pooled vectors (late fusion). */
static const float *embedding(const ff_model *m, int *width)
{
    const float *z = ff_model_fused(m);
    *width = z ? ff_model_fused_width(m) : 3 * ff_model_fused_width(m);
    return z ? z : ff_model_pooled(m);
}

/* A known label of task t from its label columns y: binary 0/1, multiclass the class,
 * regression the value. */
static json_t *label_json(const ff_task *t, const float *y)
{
    if (t->kind == FF_TASK_REGRESSION)
        return json_real(y[0]);
    if (t->kind != FF_TASK_MULTICLASS)
        return json_integer(y[0] > 0.5f);
    int best = 0;
    for (int j = 1; j < (int)t->classes; j++)
        best = y[j] > y[best] ? j : best;
    return json_integer(best);
}

static int neighbours(ex_state *st, const ff_site *s, ff_split split, size_t self,
                      const float *e0, int k, json_t *out)
{
    size_t n = ff_site_count(s, FF_SPLIT_TRAIN), K = (size_t)st->KW, T = (size_t)st->K;
    ex_nn *nn = calloc(n ? n : 1, sizeof *nn);
    uint32_t *idx = calloc((size_t)st->B, sizeof *idx);
    float *lab = calloc(n * K + 1, sizeof *lab), *msk = calloc(n * K + 1, sizeof *msk);
    float *prob = calloc(n * T + 1, sizeof *prob), q[FF_DATA_TASKS];
    float *logits = malloc((size_t)st->B * K * sizeof *logits);
    int rc = nn && idx && lab && msk && prob && logits ? FF_OK
                                                       : ff_error(FF_ENOMEM, "out of memory");
    size_t cnt = 0;
    for (size_t start = 0; rc == FF_OK && start < n; start += (size_t)st->B) {
        int c = (int)FF_MIN((size_t)st->B, n - start);
        for (int i = 0; i < c; i++)
            idx[i] = (uint32_t)(start + (size_t)i);
        rc = ff_site_batch(s, FF_SPLIT_TRAIN, idx, (size_t)c, NULL, NULL, &st->work);
        ff_batch view = st->work;
        view.B = c;
        if (rc == FF_OK)
            rc = ff_model_forward(st->m, &view, logits, NULL);
        int w;
        const float *e = rc == FF_OK ? embedding(st->m, &w) : NULL;
        for (int i = 0; rc == FF_OK && i < c; i++) {
            size_t p = start + (size_t)i;
            memcpy(lab + p * K, st->work.labels + (size_t)i * K, K * sizeof(float));
            memcpy(msk + p * K, st->work.label_mask + (size_t)i * K, K * sizeof(float));
            ex_quantities(st, logits + (size_t)i * K, q, prob + p * T);
            if (split == FF_SPLIT_TRAIN && p == self)
                continue; /* never the patient itself */
            double d2 = 0;
            for (int j = 0; j < w; j++) {
                double dd = (double)e[(size_t)i * w + j] - (double)e0[j];
                d2 += dd * dd;
            }
            nn[cnt++] = (ex_nn){sqrt(d2), p};
        }
    }
    if (rc == FF_OK) {
        qsort(nn, cnt, sizeof *nn, cmp_nn);
        for (size_t i = 0; i < cnt && i < (size_t)k; i++) {
            json_t *o = json_object(), *labs = json_array(), *pr = json_array();
            for (size_t t = 0; t < T; t++) {
                size_t c = nn[i].idx * K + (size_t)st->sh->tasks.t[t].col;
                json_array_append_new(labs, msk[c] > 0.5f
                                                ? label_json(&st->sh->tasks.t[t], lab + c)
                                                : json_null());
                json_array_append_new(pr, json_real(prob[nn[i].idx * T + t]));
            }
            json_object_set_new(o, "patient", json_string(ff_site_patient_id(s, FF_SPLIT_TRAIN,
                                                                             nn[i].idx)));
            json_object_set_new(o, "distance", json_real(nn[i].dist));
            json_object_set_new(o, "labels", labs);
            json_object_set_new(o, "probability", pr);
            json_array_append_new(out, o);
        }
    }
    free(nn);
    free(idx);
    free(lab);
    free(msk);
    free(prob);
    free(logits);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The explanation                                                                           */
/* ---------------------------------------------------------------------------------------- */

static const char *const mod_names[3] = {"image", "note", "events"};

static void state_free(ex_state *st)
{
    ff_batch_free(&st->base);
    ff_batch_free(&st->work);
    free(st->note);
    ff_site_events_free(st->ev, st->nev);
    if (st->word_of)
        for (int i = 0; i < st->sh->Lt; i++)
            free(st->word_of[i]);
    free(st->word_of);
    free(st->ev_at);
}

/* Collects the variants: one per distinct word id, patch and event, the three ablations and
 * the counterfactuals asked for. Returns the count (v has room for all). */
static size_t make_variants(const ex_state *st, const ff_explain_opts *o, ex_variant *v)
{
    size_t n = 0, Lt = (size_t)st->sh->Lt, Le = (size_t)st->sh->Le;
    const int32_t *t = st->base.text_ids;
    for (size_t i = 0; i < Lt; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = t[j] == t[i];
        if (t[i] != 0 && !seen)
            v[n++] = (ex_variant){.kind = V_WORD, .arg = t[i]};
    }
    if (st->base.image_present[0] > 0.5f)
        for (int p = 0; p < st->np; p++)
            v[n++] = (ex_variant){.kind = V_PATCH, .arg = p};
    for (size_t i = 0; i < Le; i++)
        if (st->base.ehr_code[i] != 0)
            v[n++] = (ex_variant){.kind = V_EVENT, .arg = (int)i};
    for (int j = 0; j < 3; j++)
        v[n++] = (ex_variant){.kind = V_DROP, .arg = j};
    if (o->lab) {
        v[n++] = (ex_variant){.kind = V_LAB, .arg = 5};
        v[n++] = (ex_variant){.kind = V_LAB, .arg = 6};
        v[n++] = (ex_variant){.kind = V_LAB, .arg = 0};
    }
    if (o->word) /* -1 = the word's id, filled by the caller */
        v[n++] = (ex_variant){.kind = V_WORD, .arg = -1};
    return n;
}

/* Words the word view leaves out: single characters, numbers alone and English function
 * words ("o", "m", "see" ranked at the top tell a clinician nothing). Negations ("no", "not",
 * "denies") stay: they change what a note means. The words still count in the deletion test. */
static int ex_word_hidden(const char *w)
{
    static const char *const stop[] = {
        "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
        "been", "before", "being", "both", "but", "by", "can", "could", "did", "do", "does",
        "for", "from", "had", "has", "have", "he", "her", "here", "him", "his", "how", "i",
        "if", "in", "into", "is", "it", "its", "may", "me", "more", "most", "my", "of", "on",
        "or", "other", "our", "over", "per", "pt", "same", "see", "she", "should", "so", "some",
        "such", "than", "that", "the", "their", "them", "then", "there", "these", "they",
        "this", "those", "to", "too", "under", "up", "upon", "very", "via", "was", "we",
        "were", "what", "when", "where", "which", "while", "who", "will", "with", "would",
        "you", "your"};
    size_t len = w ? strlen(w) : 0, digits = 0;
    if (len <= 1)
        return 1;
    for (size_t i = 0; i < len; i++)
        digits += isdigit((unsigned char)w[i]) != 0;
    if (digits == len)
        return 1;
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++)
        if (strcmp(w, stop[i]) == 0)
            return 1;
    return 0;
}

static json_t *word_json(const ex_state *st, const ex_variant *v, const float *att)
{
    json_t *o = json_object(), *pos = json_array();
    const char *w = NULL;
    double a = 0;
    for (int i = 0; i < st->sh->Lt; i++)
        if (st->base.text_ids[i] == v->arg) {
            json_array_append_new(pos, json_integer(i));
            if (!w)
                w = st->word_of[i];
            a += att ? att[i] : 0;
        }
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "#%d", v->arg);
    double imp;
    json_object_set_new(o, "word", json_string(w ? w : idbuf));
    json_object_set_new(o, "positions", pos);
    json_object_set_new(o, "occlusion", delta_arr(st, v, &imp));
    json_object_set_new(o, "importance", json_real(imp));
    json_object_set_new(o, "attention", att ? json_real(a) : json_null());
    return o;
}

static json_t *event_json(const ex_state *st, const ex_variant *v, const float *att)
{
    json_t *o = json_object();
    const ex_event *e = st->ev_at[v->arg];
    double imp;
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "#%d", st->base.ehr_code[v->arg]);
    json_object_set_new(o, "position", json_integer(v->arg));
    json_object_set_new(o, "code", json_string(e ? e->code : idbuf));
    json_object_set_new(o, "hours_before", e ? json_real(e->hours) : json_null());
    json_object_set_new(o, "value", e && e->value[0] ? json_string(e->value) : json_null());
    json_object_set_new(o, "value_bin", json_integer(st->base.ehr_val[v->arg]));
    json_object_set_new(o, "occlusion", delta_arr(st, v, &imp));
    json_object_set_new(o, "importance", json_real(imp));
    json_object_set_new(o, "attention", att ? json_real(att[v->arg]) : json_null());
    return o;
}

static json_t *outcome_json(const ex_state *st, const ex_variant *v, const char *what)
{
    json_t *o = json_object();
    json_object_set_new(o, "change", json_string(what));
    if (v->ok) {
        json_object_set_new(o, "probability", raw_prob_arr(st, v));
        json_object_set_new(o, "calibrated", prob_arr(st, v));
    } else {
        json_object_set_new(o, "probability", json_null());
        json_object_set_new(o, "reason", json_string("no modality left: the model cannot "
                                                     "predict without any input"));
    }
    return o;
}

/* Attention views of the base forward (NULL arrays when absent), with the name of the view
 * each came from. */
typedef struct {
    float *words, *events, *patches;
    const char *words_view, *events_view, *patches_view;
    float mods[3];
    int has_mods;
} ex_attn;

static void attn_free(ex_attn *a)
{
    free(a->words);
    free(a->events);
    free(a->patches);
}

/* Reads the first view of views[] that exists into *dst (freed and NULL when none). A cross
 * view whose queries come from an absent modality is skipped: that modality's fusion token is
 * masked, so where its tokens looked cannot matter for the prediction. */
static void attn_pick(const ff_model *m, float **dst, int cap, const int *views,
                      const int *usable, const char *const *names, int n, const char **name)
{
    *name = NULL;
    for (int i = 0; i < n; i++)
        if (usable[i] && ff_model_attention_received(m, views[i], 0, *dst, cap) > 0) {
            *name = names[i];
            return;
        }
    free(*dst);
    *dst = NULL;
}

static int attn_read(const ex_state *st, ex_attn *a)
{
    memset(a, 0, sizeof *a);
    int Lt = st->sh->Lt, Le = st->sh->Le;
    int img = ff_batch_present(&st->base, 0, 0), txt = ff_batch_present(&st->base, 0, 1);
    a->words = calloc((size_t)Lt, sizeof(float));
    a->events = calloc((size_t)Le, sizeof(float));
    a->patches = calloc((size_t)st->np, sizeof(float));
    if (!a->words || !a->events || !a->patches)
        return ff_error(FF_ENOMEM, "out of memory");
    static const char *const wn[2] = {"fuse.x_img: image tokens attending to note tokens",
                                      "last text-encoder block: note tokens attending to note "
                                      "tokens (no image)"};
    static const char *const en[2] = {"fuse.x_txt: note tokens attending to record events",
                                      "last EHR-encoder block: events attending to events (no "
                                      "note)"};
    static const char *const pn[1] = {"last image-encoder block: patches attending to patches"};
    int wv[2] = {FF_ATTN_IMG_TXT, FF_ATTN_TXT_SELF}, wu[2] = {img, 1};
    int ev[2] = {FF_ATTN_TXT_EHR, FF_ATTN_EHR_SELF}, eu[2] = {txt, 1};
    int pv[1] = {FF_ATTN_IMG_SELF}, pu[1] = {img};
    attn_pick(st->m, &a->words, Lt, wv, wu, wn, 2, &a->words_view);
    attn_pick(st->m, &a->events, Le, ev, eu, en, 2, &a->events_view);
    attn_pick(st->m, &a->patches, st->np, pv, pu, pn, 1, &a->patches_view);
    a->has_mods = ff_model_modality_attention(st->m, 0, a->mods) == 3;
    return FF_OK;
}

static json_t *predictions_json(const ex_state *st)
{
    json_t *a = json_array();
    for (int k = 0; k < st->K; k++) {
        json_t *o = json_object();
        const ff_task *t = &st->sh->tasks.t[k];
        int known = st->base.label_mask[t->col] > 0.5f;
        json_object_set_new(o, "task", json_string(t->name));
        json_object_set_new(o, "logit", json_real(st->logit0[k]));
        if (t->kind == FF_TASK_BINARY) {
            json_object_set_new(o, "probability", json_real(ex_sigm(st->logit0[k])));
            json_object_set_new(o, "calibrated", json_real(ex_sigm(st->logit0[k] / st->T[k])));
        } else { /* logit = the explained quantity; no calibration of other kinds */
            char what[160];
            if (t->kind == FF_TASK_MULTICLASS)
                snprintf(what, sizeof what, "logit of class %d, the predicted class (its "
                         "probability: %.3f)", st->cls[k], (double)st->out0[k]);
            else
                snprintf(what, sizeof what, "predicted value in units of its scale: (value - "
                         "%g) / %g, the value itself %.3f", t->center, t->scale,
                         (double)st->out0[k]);
            json_object_set_new(o, "kind", json_string(ff_task_kind_name(t->kind)));
            json_object_set_new(o, "explained", json_string(what));
            if (t->kind == FF_TASK_MULTICLASS)
                json_object_set_new(o, "class", json_integer(st->cls[k]));
            json_object_set_new(o, "probability", json_real(st->out0[k]));
            json_object_set_new(o, "calibrated", json_real(st->out0[k]));
        }
        json_object_set_new(o, "temperature", json_real(st->T[k]));
        json_object_set_new(o, "temperature_fitted", json_boolean(st->calibrated[k]));
        json_object_set_new(o, "label", known ? label_json(t, st->base.labels + t->col)
                                              : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

/* The views from the variants' logits, into ex. */
static void views_json(ex_state *st, const ff_explain_opts *o, const ex_variant *v, size_t n,
                       const ex_attn *at, double *patch_delta, json_t *ex)
{
    json_t *words = json_array(), *events = json_array(), *patches = json_array();
    json_t *abl = json_array(), *cf = json_array();
    int g = st->sh->W / st->P;
    long hidden = 0;
    json_t *hidden_words = json_array();
    for (size_t i = 0; i < n; i++) {
        const ex_variant *x = &v[i];
        double imp;
        if (x->kind == V_WORD && i + 1 == n && o->word) {
            char what[300];
            snprintf(what, sizeof what, "word '%s' absent", o->word);
            json_t *c = outcome_json(st, x, what);
            if (x->arg == 0 || x->arg == -1)
                json_object_set_new(c, "note", json_string("the word is not in this patient's "
                                                           "note: prediction unchanged"));
            json_array_append_new(cf, c);
        } else if (x->kind == V_WORD && x->ok) {
            json_t *wj = word_json(st, x, at->words);
            if (ex_word_hidden(json_string_value(json_object_get(wj, "word")))) {
                json_array_append_new(hidden_words, wj);
                hidden++;
            } else {
                json_array_append_new(words, wj);
            }
        } else if (x->kind == V_PATCH && x->ok) {
            json_t *p = json_object();
            json_object_set_new(p, "row", json_integer(x->arg / g));
            json_object_set_new(p, "col", json_integer(x->arg % g));
            json_object_set_new(p, "occlusion", delta_arr(st, x, &imp));
            json_object_set_new(p, "importance", json_real(imp));
            json_object_set_new(p, "attention", at->patches ? json_real(at->patches[x->arg])
                                                            : json_null());
            for (int k = 0; k < st->K; k++)
                patch_delta[(size_t)k * (size_t)st->np + (size_t)x->arg] =
                    (double)st->logit0[k] - (double)x->logit[k];
            json_array_append_new(patches, p);
        } else if (x->kind == V_EVENT && x->ok) {
            json_array_append_new(events, event_json(st, x, at->events));
        } else if (x->kind == V_DROP) {
            char what[64];
            snprintf(what, sizeof what, "without %s", mod_names[x->arg]);
            json_t *c = outcome_json(st, x, what);
            json_object_set_new(c, "removed", json_string(mod_names[x->arg]));
            json_object_set_new(c, "present", json_boolean(ff_batch_present(&st->base, 0,
                                                                            x->arg)));
            json_array_append_new(abl, c);
        } else if (x->kind == V_LAB) {
            char what[300];
            snprintf(what, sizeof what, "%s %s", o->lab,
                     x->arg == 0   ? "with no value"
                     : x->arg == 5 ? "normal (bin 5)"
                                   : "normal (bin 6)");
            json_t *c = outcome_json(st, x, what);
            int has = 0;
            for (int e = 0; e < st->sh->Le; e++)
                has |= st->lab_code != 0 && st->base.ehr_code[e] == st->lab_code;
            if (!has)
                json_object_set_new(c, "note", json_string("the code is not in this patient's "
                                                           "record: prediction unchanged"));
            json_object_set_new(c, "value_bin", json_integer(x->arg));
            json_array_append_new(cf, c);
        }
    }
    json_object_set_new(ex, "words", sorted(words));
    json_object_set_new(ex, "words_hidden", json_integer(hidden));
    json_object_set_new(ex, "hidden_words", sorted(hidden_words)); /* out of the word view */
    json_object_set_new(ex, "patches", patches);
    json_object_set_new(ex, "events", sorted(events));
    json_object_set_new(ex, "ablation", abl);
    json_object_set_new(ex, "counterfactuals", cf);
    json_object_set_new(ex, "attention_views",
                        json_pack("{s:s?,s:s?,s:s?}", "words", at->words_view, "events",
                                  at->events_view, "patches", at->patches_view));
    if (at->has_mods)
        json_object_set_new(ex, "modality_attention",
                            json_pack("{s:f,s:f,s:f}", "image", at->mods[0], "note", at->mods[1],
                                      "events", at->mods[2]));
}

static json_t *methods_json(void)
{
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:s}", "occlusion",
        "change of the logit per task when the item is removed (original - occluded; positive "
        "= the item raised the risk): word = every position of the word set to padding, patch "
        "= pixels set to 0 (mid-grey), event = row set to padding",
        "attention",
        "weight each token received, mean over heads and queries (attention_views names the "
        "layer: fuse.x_img for words and fuse.x_txt for events when the querying modality is "
        "present, else the encoder's last self-attention; patches: the image encoder's last "
        "self-attention). Where the model looked, not what changed its answer",
        "calibration",
        "temperature scaling per task fitted on this site's validation split (T = 1 when it "
        "cannot be fitted)",
        "neighbours", "Euclidean distance of the pooled fused vector, training split of this site",
        "counterfactuals", "the model's prediction on the modified input (raw and calibrated)");
}

static int explain_body(ex_state *st, const ff_site *s, ff_split split, size_t idx,
                        const ff_explain_opts *o, json_t *ex)
{
    int w, Lt = st->sh->Lt;
    ex_variant *v = NULL;
    ex_attn at = {0};
    float *e0 = NULL;
    double *patch_delta = calloc((size_t)st->np * (size_t)st->K + 1, sizeof *patch_delta);
    int rc = patch_delta ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK)
        rc = fit_temperatures(st, s);
    ff_batch one = st->base;
    one.B = 1;
    float *z0 = malloc((size_t)st->KW * sizeof *z0);
    if (rc == FF_OK && !z0)
        rc = ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK)
        rc = ff_model_forward(st->m, &one, z0, NULL);
    for (int k = 0; rc == FF_OK && k < st->K; k++) { /* a multiclass task: the predicted class */
        const ff_task *t = &st->sh->tasks.t[k];
        st->cls[k] = 0;
        for (int j = 1; t->kind == FF_TASK_MULTICLASS && j < (int)t->classes; j++)
            st->cls[k] = z0[t->col + j] > z0[t->col + st->cls[k]] ? j : st->cls[k];
    }
    if (rc == FF_OK)
        ex_quantities(st, z0, st->logit0, st->out0);
    free(z0);
    if (rc == FF_OK)
        rc = attn_read(st, &at);
    const float *e = rc == FF_OK ? embedding(st->m, &w) : NULL;
    if (rc == FF_OK && !(e0 = malloc((size_t)w * sizeof *e0)))
        rc = ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK)
        memcpy(e0, e, (size_t)w * sizeof *e0);
    json_t *nn = json_array();
    if (rc == FF_OK && o->k > 0)
        rc = neighbours(st, s, split, idx, e0, o->k, nn);
    json_object_set_new(ex, "neighbours", nn);
    size_t cap = (size_t)Lt + (size_t)st->np + (size_t)st->sh->Le + 8;
    if (rc == FF_OK && !(v = calloc(cap, sizeof *v)))
        rc = ff_error(FF_ENOMEM, "out of memory");
    size_t n = rc == FF_OK ? make_variants(st, o, v) : 0;
    if (rc == FF_OK && o->word) {
        char lw[FF_TOK_MAX_WORD + 1];
        size_t l = 0, pos = 0;
        if (!ff_tok_next_word(o->word, strlen(o->word), &pos, lw, &l))
            l = 0; /* no word in it: matches no token below */
        lw[l] = '\0';
        v[n - 1].arg = ff_tok_word(lw, l, st->sh->Vt);
        int has = 0;
        for (int i = 0; i < Lt; i++)
            has |= st->base.text_ids[i] == v[n - 1].arg;
        if (!has)
            v[n - 1].arg = -1; /* matches no token: the input is unchanged */
    }
    if (rc == FF_OK)
        rc = ex_run_variants(st, v, n);
    if (rc == FF_OK) {
        json_object_set_new(ex, "predictions", predictions_json(st));
        views_json(st, o, v, n, &at, patch_delta, ex);
        json_object_set_new(ex, "methods", methods_json());
    }
    size_t singles = 0; /* words, patches, events come first (make_variants) */
    while (singles < n && v[singles].kind != V_DROP)
        singles++;
    if (rc == FF_OK)
        rc = ex_faithfulness(st, v, singles, ex);
    if (rc == FF_OK && o->heatmap_path && st->base.image_present[0] > 0.5f)
        rc = ex_heatmaps(st, patch_delta, o->heatmap_path, ex);
    json_object_set_new(ex, "heatmap", rc == FF_OK && o->heatmap_path &&
                                           st->base.image_present[0] > 0.5f
                                           ? json_string(o->heatmap_path) : json_null());
    attn_free(&at);
    free(v);
    free(e0);
    free(patch_delta);
    return rc;
}

int ff_explain(ff_model *m, const ff_site *s, const char *site_dir, const char *patient_id,
               const ff_explain_opts *o, json_t **out)
{
    *out = NULL;
    ex_state st;
    memset(&st, 0, sizeof st);
    st.m = m, st.sh = ff_site_shape(s), st.K = st.sh->tasks.n, st.KW = st.sh->K;
    st.B = FF_MIN(ff_model_max_batch(m), 1024);
    st.P = (int)ff_model_cfg(m)->image.patch;
    st.np = (st.sh->W / st.P) * (st.sh->W / st.P);
    if (st.B < 2)
        return ff_error(FF_EINVAL, "explain: the model needs a max batch of at least 2");
    int rc = ff_explain_check(st.sh);
    if (rc != FF_OK)
        return rc;
    ff_split split = FF_SPLIT_TRAIN; /* read below (the JSON's "split") even when not found */
    size_t idx = 0;
    rc = ff_explain_find(s, site_dir, patient_id, &split, &idx);
    const ff_data_shape *sh = st.sh;
    if (rc == FF_OK)
        rc = ff_batch_alloc(&st.base, 1, sh->K, sh->C, sh->H, sh->W, sh->Lt, sh->Le);
    if (rc == FF_OK)
        rc = ff_batch_alloc(&st.work, st.B, sh->K, sh->C, sh->H, sh->W, sh->Lt, sh->Le);
    uint32_t i32 = (uint32_t)idx;
    if (rc == FF_OK)
        rc = ff_site_batch(s, split, &i32, 1, NULL, NULL, &st.base);
    if (rc == FF_OK)
        rc = ff_site_patient_notes(site_dir, patient_id, &st.note, &st.note_len);
    if (rc == FF_OK)
        rc = ff_site_patient_events(site_dir, patient_id, sh->Vc, &st.ev, &st.nev);
    if (rc == FF_OK && !(st.ev_at = calloc((size_t)sh->Le, sizeof *st.ev_at)))
        rc = ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK)
        rc = map_words(&st);
    if (rc == FF_OK)
        map_events(&st);
    st.lab_code = o->lab ? ff_tok_code(o->lab, strlen(o->lab), sh->Vc) : 0;
    json_t *ex = json_object();
    json_object_set_new(ex, "patient", json_string(patient_id));
    json_object_set_new(ex, "split", json_string(ff_split_name(split)));
    if (rc == FF_OK) {
        json_t *mods = json_object();
        for (int j = 0; j < 3; j++)
            json_object_set_new(mods, mod_names[j], json_boolean(ff_batch_present(&st.base, 0, j)));
        json_object_set_new(ex, "modalities", mods);
        rc = explain_body(&st, s, split, idx, o, ex);
    }
    state_free(&st);
    if (rc != FF_OK) {
        json_decref(ex);
        return rc;
    }
    *out = ex;
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Readable summary                                                                          */
/* ---------------------------------------------------------------------------------------- */

static void print_vec(const json_t *a, int sign, FILE *out)
{
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) {
        if (json_is_number(x))
            fprintf(out, sign ? " %+9.3f" : " %9.3f", json_number_value(x));
        else
            fprintf(out, "   n/a ");
    }
}

static void print_task_header(const json_t *ex, const char *lead, FILE *out)
{
    size_t i;
    json_t *p;
    fprintf(out, "%s", lead);
    json_array_foreach(json_object_get(ex, "predictions"), i, p)
        fprintf(out, " %9.9s", json_string_value(json_object_get(p, "task")));
    fputc('\n', out);
}

static void print_outcomes(const json_t *arr, FILE *out)
{
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) {
        fprintf(out, "  %-44.44s", json_string_value(json_object_get(c, "change")));
        json_t *p = json_object_get(c, "calibrated");
        if (p)
            print_vec(p, 0, out);
        else
            fprintf(out, " (no prediction: no modality left)");
        json_t *note = json_object_get(c, "note");
        if (note)
            fprintf(out, "  [%s]", json_string_value(note));
        fputc('\n', out);
    }
}

static void print_words_events(const json_t *ex, int top, FILE *out)
{
    size_t i;
    json_t *w;
    print_task_header(ex, "Note words (occlusion: logit change per task; attention)\n"
                          "                                            ", out);
    json_array_foreach(json_object_get(ex, "words"), i, w) {
        if ((int)i >= top)
            break;
        fprintf(out, "  %-42.42s", json_string_value(json_object_get(w, "word")));
        print_vec(json_object_get(w, "occlusion"), 1, out);
        json_t *a = json_object_get(w, "attention");
        if (json_is_number(a))
            fprintf(out, "   attn %.3f", json_number_value(a));
        fputc('\n', out);
    }
    print_task_header(ex, "Record events (occlusion; attention)\n"
                          "                                            ", out);
    json_array_foreach(json_object_get(ex, "events"), i, w) {
        if ((int)i >= top)
            break;
        char line[128];
        json_t *h = json_object_get(w, "hours_before"), *v = json_object_get(w, "value");
        int n = snprintf(line, sizeof line, "%s = %s",
                         json_string_value(json_object_get(w, "code")),
                         json_is_string(v) ? json_string_value(v) : "(no value)");
        if (json_is_number(h) && n > 0 && (size_t)n < sizeof line)
            snprintf(line + n, sizeof line - (size_t)n, ", %.1f h before", json_number_value(h));
        fprintf(out, "  %-42.42s", line);
        print_vec(json_object_get(w, "occlusion"), 1, out);
        json_t *a = json_object_get(w, "attention");
        if (json_is_number(a))
            fprintf(out, "   attn %.3f", json_number_value(a));
        fputc('\n', out);
    }
}

static void print_patches(const json_t *ex, int top, FILE *out)
{
    json_t *pa = json_object_get(ex, "patches");
    if (json_array_size(pa) == 0) {
        fprintf(out, "Image: none for this patient\n");
        return;
    }
    json_t *s = json_deep_copy(pa);
    s = sorted(s);
    size_t i;
    json_t *p;
    print_task_header(ex, "Image patches (row, col; occlusion; self-attention)\n"
                          "                                            ", out);
    json_array_foreach(s, i, p) {
        if ((int)i >= top)
            break;
        char cell[64];
        snprintf(cell, sizeof cell, "patch (%lld, %lld)",
                 (long long)json_integer_value(json_object_get(p, "row")),
                 (long long)json_integer_value(json_object_get(p, "col")));
        fprintf(out, "  %-42s", cell);
        print_vec(json_object_get(p, "occlusion"), 1, out);
        json_t *a = json_object_get(p, "attention");
        if (json_is_number(a))
            fprintf(out, "   attn %.3f", json_number_value(a));
        fputc('\n', out);
    }
    json_decref(s);
    json_t *sc = json_object_get(ex, "heatmap_scale");
    json_array_foreach(json_object_get(ex, "heatmaps"), i, p)
        fprintf(out, "  heat map %-10s %s (%lld of %lld patches above the noise floor)\n",
                json_string_value(json_object_get(p, "task")),
                json_string_value(json_object_get(p, "file")),
                (long long)json_integer_value(json_object_get(p, "patches_shown")),
                (long long)json_integer_value(json_object_get(p, "patches")));
    if (sc)
        fprintf(out, "  (signed, fixed scale: red raised the risk, blue lowered it, full colour "
                     "at +/-%.2f log-odds, nothing below %.2f)\n",
                json_number_value(json_object_get(sc, "scale_logit")),
                json_number_value(json_object_get(sc, "noise_floor_logit")));
}

/* One line per task: the deletion test of explain_faith.c. */
static void print_faithfulness(const json_t *ex, FILE *out)
{
    size_t i;
    json_t *f;
    fprintf(out, "Faithfulness (deletion test: remove the top items one by one; 0 = no better "
                 "than random, 1 = the risk is gone)\n");
    json_array_foreach(json_object_get(ex, "faithfulness"), i, f) {
        json_t *a = json_object_get(f, "attribution_order"), *r = json_object_get(f, "random_order");
        size_t last = json_array_size(a) - 1;
        fprintf(out, "  %-12s faithfulness %+.2f: top %zu items %.3f -> %.3f, random %.3f -> %.3f\n",
                json_string_value(json_object_get(f, "task")),
                json_number_value(json_object_get(f, "faithfulness")), last,
                json_number_value(json_array_get(a, 0)), json_number_value(json_array_get(a, last)),
                json_number_value(json_array_get(r, 0)), json_number_value(json_array_get(r, last)));
    }
}

void ff_explain_print(const json_t *ex, int top, FILE *out)
{
    json_t *mods = json_object_get(ex, "modalities");
    fprintf(out, "Patient %s (%s split): image %s, note %s, events %s\n",
            json_string_value(json_object_get(ex, "patient")),
            json_string_value(json_object_get(ex, "split")),
            json_is_true(json_object_get(mods, "image")) ? "yes" : "no",
            json_is_true(json_object_get(mods, "note")) ? "yes" : "no",
            json_is_true(json_object_get(mods, "events")) ? "yes" : "no");
    fprintf(out, "\nPrediction        model  calibrated  temperature  recorded outcome\n");
    size_t i;
    json_t *p;
    int named = 0;
    json_array_foreach(json_object_get(ex, "predictions"), i, p)
        named |= json_object_get(p, "explained") != NULL;
    if (named)
        fprintf(out, "  (the changes below are of each task's explained quantity: a binary "
                     "task's logit, the others' as named here)\n");
    json_array_foreach(json_object_get(ex, "predictions"), i, p) {
        json_t *l = json_object_get(p, "label"), *what = json_object_get(p, "explained");
        if (what) { /* multiclass, regression: the quantity explained below, by name */
            char rec[64] = "unknown";
            if (json_is_integer(l))
                snprintf(rec, sizeof rec, "class %lld", (long long)json_integer_value(l));
            else if (json_is_number(l))
                snprintf(rec, sizeof rec, "%.3f", json_number_value(l));
            fprintf(out, "  %-12s %s %.3f (%s); recorded outcome %s\n",
                    json_string_value(json_object_get(p, "task")),
                    json_string_value(json_object_get(p, "kind")),
                    json_number_value(json_object_get(p, "probability")),
                    json_string_value(what), rec);
            continue;
        }
        fprintf(out, "  %-12s %7.3f  %10.3f  %7.2f%-4s  %s\n",
                json_string_value(json_object_get(p, "task")),
                json_number_value(json_object_get(p, "probability")),
                json_number_value(json_object_get(p, "calibrated")),
                json_number_value(json_object_get(p, "temperature")),
                json_is_true(json_object_get(p, "temperature_fitted")) ? "" : " (*)",
                json_is_integer(l) ? (json_integer_value(l) ? "yes" : "no") : "unknown");
    }
    json_t *ma = json_object_get(ex, "modality_attention");
    if (ma)
        fprintf(out, "  fusion attention to image %.2f, note %.2f, events %.2f\n",
                json_number_value(json_object_get(ma, "image")),
                json_number_value(json_object_get(ma, "note")),
                json_number_value(json_object_get(ma, "events")));
    fputc('\n', out);
    print_task_header(ex, "Modality ablation (calibrated probability)\n"
                          "                                            ", out);
    print_outcomes(json_object_get(ex, "ablation"), out);
    fputc('\n', out);
    print_words_events(ex, top, out);
    fputc('\n', out);
    print_patches(ex, top, out);
    fputc('\n', out);
    print_faithfulness(ex, out);
    fputc('\n', out);
    print_task_header(ex, "Most similar training patients (distance; outcomes)\n"
                          "                                            ", out);
    json_array_foreach(json_object_get(ex, "neighbours"), i, p) {
        char who[96];
        snprintf(who, sizeof who, "%s  d=%.3f", json_string_value(json_object_get(p, "patient")),
                 json_number_value(json_object_get(p, "distance")));
        fprintf(out, "  %-42.42s", who);
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(p, "labels"), k, l)
            fprintf(out, " %9s", json_is_integer(l) ? (json_integer_value(l) ? "yes" : "no")
                                                    : "unknown");
        fputc('\n', out);
    }
    json_t *cf = json_object_get(ex, "counterfactuals");
    if (json_array_size(cf)) {
        fputc('\n', out);
        print_task_header(ex, "Counterfactuals (calibrated probability)\n"
                              "                                            ", out);
        print_outcomes(cf, out);
    }
    int unfitted = 0;
    json_array_foreach(json_object_get(ex, "predictions"), i, p)
        unfitted |= !json_is_true(json_object_get(p, "temperature_fitted"));
    if (unfitted)
        fprintf(out, "\n(*) temperature not fitted (too few or one-class validation labels): "
                     "uncalibrated.");
    fprintf(out, "\nOcclusion = logit change when the item is removed (+ = raised "
                 "the risk). Attention = where the model looked:\n");
    json_t *av = json_object_get(ex, "attention_views");
    const char *const keys[3] = {"words", "events", "patches"};
    for (int k = 0; k < 3; k++) {
        json_t *v = json_object_get(av, keys[k]);
        fprintf(out, "  %-8s %s\n", keys[k], json_is_string(v) ? json_string_value(v)
                                                              : "(not available)");
    }
}
