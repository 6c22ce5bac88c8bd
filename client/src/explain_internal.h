/* Internal to fedfuse explain (client/src/explain*.c): the state of one patient's
 * explanation and the input variants run through the model. */
#ifndef FF_CLIENT_EXPLAIN_INTERNAL_H
#define FF_CLIENT_EXPLAIN_INTERNAL_H

#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "ff/client.h"

/* An event with its raw text, as data/ read it for the loader (ff_site_patient_events). */
typedef ff_site_event ex_event;

typedef struct {
    ff_model *m;
    const ff_data_shape *sh;
    int K, B, P, np;          /* tasks, max batch, patch side, patches */
    int KW;                   /* the model's output columns (K when every task is binary) */
    int cls[FF_DATA_TASKS];   /* multiclass task k: the class predicted for the patient */
    float out0[FF_DATA_TASKS]; /* the patient's outputs (ex_variant.out) */
    ff_batch base;            /* row 0 = the patient */
    ff_batch work;            /* variants */
    float logit0[FF_DATA_TASKS];
    double T[FF_DATA_TASKS];  /* temperatures (1 = not calibrated) */
    int calibrated[FF_DATA_TASKS];
    char *note;               /* the patient's note text (ff_site_patient_notes) */
    size_t note_len;
    ex_event *ev;             /* the patient's events, loader's order (ff_site_patient_events) */
    size_t nev;
    ex_event **ev_at;         /* [Le]: raw event at each batch position, NULL if unknown */
    char **word_of;           /* [Lt]: word of each token position, NULL if unknown */
    int32_t lab_code;
} ex_state;

/* V_SET removes several items at once: set[0..nset) are single-item variants (word, patch,
 * event), borrowed (the deletion curves of explain_faith.c). */
enum { V_WORD, V_PATCH, V_EVENT, V_DROP, V_LAB, V_SET, V_COUNT };
typedef struct ex_variant {
    int kind, arg;
    const struct ex_variant **set;
    int nset;
    int ok;                   /* 1: forward ran (some modality left) */
    /* per task, the explained quantity (ex_quantities): binary the logit, multiclass the
     * logit of the patient's predicted class, regression the standardised predicted value
     * (value - center) / scale, the model's own output */
    float logit[FF_DATA_TASKS];
    float out[FF_DATA_TASKS]; /* binary σ(logit), multiclass that class's probability,
                               * regression the predicted value */
} ex_variant;

/* The explained quantities q[K] and outputs out[K] of one row of model outputs z[KW]. */
void ex_quantities(const ex_state *st, const float *z, float *q, float *out);

/* Task k's shown value: binary the calibrated probability σ(q / T), the others out. */
double ex_shown(const ex_state *st, int k, float q, float out);

/* Runs every variant through the model, max-batch rows at a time (explain.c). */
int ex_run_variants(ex_state *st, ex_variant *v, size_t n);

/* Deletion curves per task from the single-item variants v[0..n) (already run): the
 * explanation's faithfulness, into ex["faithfulness"] (explain_faith.c). */
int ex_faithfulness(ex_state *st, const ex_variant *v, size_t n, json_t *ex);

/* Signed per-task heat maps of the patch occlusions (explain_page.c): delta[k * np + p] is
 * task k's logit change for patch p. Writes path (the first task) and DIR/heatmap-TASK.png
 * beside it; records scale, noise floor and files in ex["heatmap_scale"]. */
int ex_heatmaps(const ex_state *st, const double *delta, const char *path, json_t *ex);

static inline double ex_sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

#endif
