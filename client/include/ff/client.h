/*
 * ff/client.h — what a hospital runs on its own data: local training of the fusion model for
 * one round (or a whole centralised baseline), predictions, and evaluation (exact metrics for
 * the site itself; mergeable score histograms for federated evaluation). No network here: the
 * client node (`fedfuse client`) and the simulator drive these functions.
 *
 *     ff_local_opts o;
 *     ff_local_opts_from_plan(&o, &plan, stage, ff_site_count(site, FF_SPLIT_TRAIN));
 *     o.seed = seed ^ round;                       // data order, dropout, augmentation
 *     ff_local_stats st;
 *     if (ff_local_train(model, &site, 1, &o, &st) != FF_OK) ...   // message names the step
 *
 *     // record-level DP-SGD: o.dp = 1; o.dp_sigma = 1.1; o.dp_clip = 1.0; o.dp_delta = 1e-5;
 *     // o.dp_ledger = site_ledger; o.dp_round = round;   → FF_EPOLICY past the site's budget
 *
 *     json_t *metrics;                            // per site and pooled, every task
 *     ff_eval_op_point op = {FF_OP_SPECIFICITY, 0.9};     // the threshold: on the val split
 *     ff_client_evaluate(model, sites, names, n, FF_SPLIT_TEST, FF_MOD_ALL, &eval_opts, &op,
 *                        report, &metrics);
 *
 * Depends on models, data, eval and coordinator (the training plan).
 */
#ifndef FF_CLIENT_H
#define FF_CLIENT_H

#include <jansson.h>

#include "ff/common.h"
#include "ff/data.h"
#include "ff/eval.h"
#include "ff/job.h"
#include "ff/models.h"
#include "ff/privacy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The tasks are the model config's declaration (ff_model_config.task_set; the site's shape
 * carries them): names, kinds and columns come from there, never from a fixed list. */

/* Modalities as a bit mask. */
/* Modality masks: FF_MOD_ALL is every modality, the tabular one included, so that a stage
 * listing img, txt and ehr in a model with a `tabular:` section leaves the tabular row out. */
enum { FF_MOD_IMG = 1, FF_MOD_TXT = 2, FF_MOD_EHR = 4, FF_MOD_TAB = 8, FF_MOD_ALL = 15 };
/* Parses "img,txt,ehr" (any subset, "all"); errors name the bad word. */
int ff_client_parse_modalities(const char *s, int *mask) FF_WARN_UNUSED;

/* The data shape a model config needs. */
void ff_client_shape(const ff_model_config *mc, ff_data_shape *shape);
/* The data shape of the model config file at path, read with the models/ schema itself (the
 * one schema of a model config: every key it accepts, e.g. `projection`, is accepted here).
 * Errors name FILE:LINE:COL and the key, or the file and the dimension out of range. */
int ff_client_shape_load(const char *path, ff_data_shape *shape) FF_WARN_UNUSED;

typedef struct {
    int64_t steps;            /* optimiser steps */
    int batch;                /* examples per step (<= the model's max batch) */
    ff_optim_config optim;
    float modality_dropout;   /* probability of hiding a present modality */
    float fedprox_mu;         /* > 0: adds mu (w - global) to the gradients */
    const float *global;      /* the round's global model (FedProx), or NULL */
    const ff_cfg_strlist *trainable; /* parameter-name prefixes that train; NULL/empty = all */
    int modalities;           /* FF_MOD_* mask the model may see (single-modality baselines) */
    int augment;              /* clinical-meaning-preserving augmentation on */
    /* Objective (ff_plan_objective): supervised BCE (0), contrastive = symmetric InfoNCE over
     * the in-batch pairs of `modalities` (image-text; with EHR, the pairs that include EHR;
     * rows where both sides are present; labels not read; needs projection heads), or
     * multitask = supervised + contrastive. */
    int objective;
    /* Share of each site's training patients whose labels may be used, in (0,1); 0 or >= 1 =
     * all. The labelled patients are fixed by (label_seed, site) (ff_local_labelled):
     * supervised steps draw only them; contrastive steps draw everyone; multitask steps
     * draw everyone and mask the unlabelled rows out of the supervised loss. */
    double label_fraction;
    uint64_t label_seed;
    uint64_t seed;
    int progress;             /* print a progress bar on stderr */
    /* Record-level (patient-level) DP-SGD (client/src/dpsgd.c), used when dp != 0: each step
     * takes every training patient independently with probability q = batch / patients
     * (Poisson; batch is then the expected size), clips each patient's gradient to dp_clip,
     * adds N(0, (dp_sigma·dp_clip)²) to the sum and divides by batch. optim.clip_norm is not
     * applied (the noisy gradient is already bounded per patient). The round is recorded in
     * dp_ledger before any data is touched; FF_EPOLICY (nothing trained) when it would pass
     * the ledger's budget. Not combinable with `trainable` or a modality restriction. */
    int dp;
    double dp_sigma;          /* noise multiplier σ >= 0 (0: no noise, ε = inf; tests only) */
    double dp_clip;           /* C > 0, +inf = no clipping */
    double dp_delta;          /* δ of the reported ε (< 1 / patients) */
    double dp_epsilon_budget; /* used when dp_ledger is NULL: 0 = no budget */
    ff_privacy_ledger *dp_ledger; /* the site's record-level ledger (caller owns), or NULL */
    int64_t dp_round;         /* round number recorded in the ledger */
    uint64_t dp_noise_seed;   /* 0 = noise from the OS entropy pool (use 0 outside tests) */
    int dp_exact; /* per-patient gradients by batch-of-1 passes (the reference) instead of
                   * ghost clipping (default: one forward, two backward; same sums up to
                   * float rounding) */
} ff_local_opts;

typedef struct {
    int64_t steps, examples;
    int64_t skipped;          /* steps with nothing to learn from (no label, no pair): no update */
    double loss_first, loss_last, loss_mean;
    double seconds;
    double epsilon;           /* DP-SGD: ε at dp_delta after this call (ledger total) */
} ff_local_stats;

/* Fills o from a training plan stage: steps = stage/plan local_steps, or local_epochs over
 * ntrain examples; optimiser, lr, dropout and FedProx mu from the plan; objective,
 * trainable prefixes and modalities from the stage. */
void ff_local_opts_from_plan(ff_local_opts *o, const ff_plan *plan, size_t stage, size_t ntrain);

/* labelled[i] (i < ff_site_count(s, FF_SPLIT_TRAIN)) = 1 for the training patients whose
 * labels are used at label fraction f: exactly ceil(f * n) of them (all when f <= 0 or
 * f >= 1), chosen by a permutation seeded by seed and the site's first patient id, so the
 * same site gets the same patients in every round and process. */
void ff_local_labelled(const ff_site *s, double f, uint64_t seed, uint8_t *labelled);

/* Image→text retrieval on held-out pairs (needs projection heads): for each site, every
 * patient of the split with both modalities a and e is a query (modality a) and a candidate
 * (modality e) among that site's patients only; top1/top5 = share of queries whose own
 * partner ranks first / in the first five by cosine of the projected embeddings. *npairs
 * receives the number of queries, *chance the expected top-1 of a random ranking. */
int ff_local_retrieval(ff_model *m, ff_site *const *sites, size_t n, ff_split split, int a,
                       int e, double *top1, double *top5, size_t *npairs,
                       double *chance) FF_WARN_UNUSED;

/* Trains m in place for o->steps steps on the train splits of sites (pooled: each step draws
 * its batch from one site, chosen with probability proportional to its size). A fresh
 * optimiser state per call (one federated round). A non-finite loss stops with FF_ENUMERIC
 * naming the step. */
int ff_local_train(ff_model *m, ff_site *const *sites, size_t nsites, const ff_local_opts *o,
                   ff_local_stats *st) FF_WARN_UNUSED;
/* The DP-SGD path of ff_local_train (called by it when o->dp is set): the sites' train
 * splits are pooled into one set of patients for sampling and accounting. */
int ff_local_train_dp(ff_model *m, ff_site *const *sites, size_t nsites,
                      const ff_local_opts *o, ff_local_stats *st) FF_WARN_UNUSED;

/* The model's outputs for every patient of a split (ff_model_task_outputs: probabilities of binary
 * and multiclass tasks, predicted values, risk scores): probs, labels and label masks are
 * [n, K] arrays the caller allocates with n = ff_site_count(s, split). With a modality mask
 * other than FF_MOD_ALL, patients left with no modality get the score `fallback` (binary
 * tasks; the others their neutral output). */
int ff_local_predict(ff_model *m, const ff_site *s, ff_split split, int modalities,
                     float fallback, float *probs, float *labels, float *mask) FF_WARN_UNUSED;

/* Exact metrics of each declared task on each site's split and on the pooled predictions,
 * with fairness (sex, age band) of binary tasks on the pooled predictions, as JSON
 * {"split":..,"auroc":{binary task: value|null},"tasks":{"admission":{"kind":"binary",
 * "pooled":{metrics.json},"sites":{"site-1":{..}}}, "grade":{"kind":"multiclass",...}}}.
 * With html_path, also writes one self-contained report page (columns: pooled and each site,
 * per task). With op, each binary task's operating threshold is chosen by op's rule on the
 * validation split pooled over the sites, on the federated report's histogram and with its
 * code (ff_eval_hist_operating_point), and shown at the top of the task with the rule
 * (metrics.json: tasks.<task>.operating_point); without validation patients, 0.5 and why.
 * Without op (NULL), every task at eo->threshold. The caller owns *out. */
int ff_client_evaluate(ff_model *m, ff_site *const *sites, const char *const *names, size_t n,
                       ff_split split, int modalities, const ff_eval_opts *eo,
                       const ff_eval_op_point *op, const char *html_path,
                       json_t **out) FF_WARN_UNUSED;

/* Federated evaluation at one site: per binary task score histograms (with a slice per level
 * of every declared attribute) of the split, as the JSON array the coordinator merges. Small
 * subgroups are withheld first (ff_eval_hist_suppress with min_cell and outcomes: the site
 * policy's statistics.min_cell_size and .outcome_cells): only their names leave the site.
 * *nwithheld (may be NULL) counts the slices withheld over all tasks. */
int ff_client_eval_hist(ff_model *m, const ff_site *s, ff_split split, int nbins,
                        int64_t min_cell, int outcomes, size_t *nwithheld,
                        json_t **out) FF_WARN_UNUSED;
/* The same for the declared tasks of the other kinds: one ff_eval_kind_stats per task, as a
 * JSON array (empty when every task is binary). */
int ff_client_eval_stats(ff_model *m, const ff_site *s, ff_split split, int nbins,
                         json_t **out) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Explanations (fedfuse explain; client/src/explain.c)                                      */
/* ---------------------------------------------------------------------------------------- */
/*
 * One patient of one site, run locally at the hospital. The result holds that patient's own
 * words, codes and values (and the outcomes of similar patients): it is for the local
 * clinician's terminal and the explanation folder only. Nothing of it goes to ff_log.
 *
 *     ff_explain_opts eo; ff_explain_opts_default(&eo);
 *     eo.word = "chest"; eo.heatmap_path = "out/heatmap.png";
 *     json_t *ex;
 *     if (ff_explain(m, site, "cohort/site-1", "p-0042", &eo, &ex) != FF_OK) ...
 *     ff_explain_print(ex, stdout); ff_eval_json_write(ex, "out/explain.json");
 */

typedef struct {
    int k;                    /* nearest training patients (0 = none) */
    const char *lab;          /* EHR code for the "lab value normal" counterfactual, or NULL */
    const char *word;         /* note word for the "word absent" counterfactual, or NULL */
    const char *heatmap_path; /* PNG of the first task's signed patch-occlusion map, or NULL;
                               * every task's map goes beside it as heatmap-TASK.png */
    int top;                  /* items per view in the printed summary */
} ff_explain_opts;
void ff_explain_opts_default(ff_explain_opts *o); /* k 5, top 8, no lab/word/heatmap */

/* What explain supports, checked before anything is computed: 1 to 3 binary, multiclass or
 * regression tasks (one explained quantity each: the risk's logit, the predicted class's
 * logit, the predicted value in units of its scale; survival is refused, naming why) and the image, note and
 * record inputs (a model with the tabular modality is refused, naming it). FF_ECONFIG with
 * the reason. */
int ff_explain_check(const ff_data_shape *sh) FF_WARN_UNUSED;
/* Finds a patient id in every split of the site. FF_ENOTFOUND ("patient 'ID' is not in
 * SITE_NAME") names only the id that was asked for. */
int ff_explain_find(const ff_site *s, const char *site_name, const char *patient_id,
                    ff_split *split, size_t *index) FF_WARN_UNUSED;

/* The explanation of one patient as JSON (schema in docs/evaluation.md): calibrated
 * prediction per task (temperature fitted on the site's val split), occlusion and attention
 * over note words, image patches and record events, modality ablation, the k nearest
 * training patients by distance of the pooled fused vector, and the counterfactuals asked
 * for. site_dir is read again for the raw note words and event rows of that patient. Writes
 * o->heatmap_path when set and the patient has an image. The caller owns *out; on error *out
 * is NULL. The model needs max batch >= 2. */
int ff_explain(ff_model *m, const ff_site *s, const char *site_dir, const char *patient_id,
               const ff_explain_opts *o, json_t **out) FF_WARN_UNUSED;

/* Writes the explanation as one self-contained page at path (atomically): predictions,
 * ablation, per task the signed heat map with its scale and legend, the words and events
 * above the noise floor, and the faithfulness (deletion test). The heat-map files named in
 * ex["heatmaps"] must exist (ff_explain with heatmap_path). Holds the patient's own data,
 * like the JSON: a local file. */
int ff_explain_page_write(const json_t *ex, const char *path) FF_WARN_UNUSED;

/* Prints the readable summary of an explanation (top o->top items per view). */
void ff_explain_print(const json_t *ex, int top, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
