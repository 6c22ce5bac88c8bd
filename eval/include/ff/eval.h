/*
 * ff/eval.h — clinical evaluation of binary risk scores: discrimination (AUROC, AUPRC, ROC and
 * PR curves, sensitivity/specificity at fixed operating points), calibration (Brier, ECE,
 * reliability curve, calibration slope/intercept, temperature scaling), fairness per protected
 * attribute, decision curves, seeded bootstrap CIs, federated evaluation from mergeable score
 * histograms, JSON output and a self-contained HTML report. Definitions: docs/evaluation.md.
 *
 * Usage (one task; a model with K tasks calls this K times):
 *
 *     ff_eval_opts o;
 *     ff_eval_opts_default(&o);                      // 10 ECE bins, threshold 0.5, ...
 *     ff_eval_result r;
 *     int rc = ff_eval_binary(score, label, n, &o, &r);          // score in [0,1], label 0/1
 *     if (rc != FF_OK)
 *         return ff_error_prefix(rc, "task icu: ");
 *     if (r.auroc.defined) printf("AUROC %.3f\n", r.auroc.value);
 *     else                 printf("AUROC undefined: %s\n", r.auroc.why);
 *     json_t *j = NULL;
 *     if (ff_eval_to_json(&r, NULL, 0, &o, &j) == FF_OK) { ...; json_decref(j); }
 *     ff_eval_result_free(&r);
 *
 * Federated: each site fills an ff_eval_hist per task (ff_eval_hist_add), serialises it
 * (ff_eval_hist_to_json), the coordinator merges (ff_eval_hist_merge) and calls
 * ff_eval_hist_metrics, which also returns the error bounds against the exact pooled values.
 *
 * A run's outputs ('fedfuse eval'): per task an ff_eval_task_summary (pooled result, fairness,
 * per-site results) -> ff_eval_tasks_to_json -> metrics.json, and an ff_report with one
 * ff_report_add_task + ff_report_add_column per site -> report.html.
 *
 * Undefined metrics (one class only, empty subgroup, non-convergent fit) have defined = 0 and
 * why = a static string; value is then 0 and must not be used. Nothing here produces NaN.
 */
#ifndef FF_EVAL_H
#define FF_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ff/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Options and results                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    int ece_bins;        /* equal-width bins on [0,1] for ECE and the reliability curve (10) */
    double threshold;    /* operating threshold: predicted positive when score >= threshold (0.5) */
    double target_spec;  /* specificity floor for sensitivity_at_spec (0.9) */
    double target_sens;  /* sensitivity floor for specificity_at_sens (0.9) */
    int dca_points;      /* decision-curve thresholds 1/(p+1) ... p/(p+1) (99 -> 0.01..0.99) */
    int bootstrap;       /* bootstrap replicates for 95% CIs; 0 = none (0) */
    uint64_t seed;       /* bootstrap seed (0) */
    int curve_points;    /* max points per curve in JSON/HTML (thinned); 0 = all (400) */
    int min_cell;        /* subgroups with 0 < n < min_cell are suppressed: metrics undefined
                          * (FF_EVAL_SUPPRESSED), left out of the gaps; 0 = none (0) */
} ff_eval_opts;

/* The reason a suppressed subgroup's metrics are undefined. */
#define FF_EVAL_SUPPRESSED "suppressed: fewer patients than the minimum cell size"
/* ... and of a subgroup a site withheld (ff_eval_hist_suppress): nothing of it left the site. */
#define FF_EVAL_SUPPRESSED_SITE "suppressed at the site"

void ff_eval_opts_default(ff_eval_opts *o);

/* A scalar metric. defined = 0 means value is meaningless and why says why (static string).
 * has_ci = 1 when a bootstrap 95% percentile interval [lo, hi] was computed. */
typedef struct {
    double value;
    int defined;
    const char *why;
    int has_ci;
    double lo, hi;
} ff_metric;

/* A curve as parallel arrays of n points (owned by the result that holds it). thr[i] is the
 * score threshold of point i (predicted positive when score >= thr); NULL when not meaningful. */
typedef struct {
    size_t n;
    double *x, *y, *thr;
} ff_curve;

/* Reliability curve over the equal-width bins (sklearn.calibration.calibration_curve,
 * strategy='uniform'): bin b holds scores s with edge[b] < s <= edge[b+1] (bin 0 also holds
 * s = 0), edge[b] = b * (1.0 / nbins). Bins with count 0 have mean_pred = frac_pos = 0. */
typedef struct {
    int nbins;
    double *count, *mean_pred, *frac_pos;
} ff_reliability;

/* Decision curve: net benefit of the model, treat-all and treat-none (0) at thresholds t. */
typedef struct {
    size_t n;
    double *t, *model, *treat_all;
} ff_dca;

typedef struct {
    size_t n, n_pos, n_neg;
    /* discrimination */
    ff_metric auroc, auprc;
    ff_metric sens_at_spec, sens_at_spec_thr; /* max TPR over ROC points with FPR <= 1-target */
    ff_metric spec_at_sens, spec_at_sens_thr; /* max 1-FPR over ROC points with TPR >= target */
    /* calibration */
    ff_metric brier, ece, cal_slope, cal_intercept;
    /* at the operating threshold */
    double threshold;
    ff_metric alert_rate, ppv, sensitivity, specificity;
    /* curves */
    ff_curve roc; /* x = FPR, y = TPR, starts at (0,0), one point per distinct score */
    ff_curve pr;  /* x = recall, y = precision, sklearn order: recall decreasing, ends (0,1) */
    ff_reliability rel;
    ff_dca dca;
    int bootstrap_done; /* replicates used for the CIs (those with both classes) */
} ff_eval_result;

/* Computes every metric for one task. score[i] must be finite and in [0,1], label[i] 0 or 1
 * (FF_EINVAL naming the index otherwise). n may be 0 or one class only: the metrics that need
 * both classes are then undefined with the reason. O(n log n) (one sort); the bootstrap adds
 * O(n) per replicate. On success the caller owns *out (ff_eval_result_free); on error *out is
 * zeroed and owns nothing. */
int ff_eval_binary(const double *score, const uint8_t *label, size_t n, const ff_eval_opts *o,
                   ff_eval_result *out) FF_WARN_UNUSED;
void ff_eval_result_free(ff_eval_result *r);

/* Harrell's C-index of survival risks (higher risk = earlier event), as lifelines'
 * concordance_index(time, -risk, event): comparable pairs are (i, j) with event_i and
 * T_i < T_j, or T_i = T_j and j censored; concordant when risk_i > risk_j, ties count 1/2.
 * FF_EINVAL for a non-finite value (names the row) or no comparable pair. O(n²). */
int ff_eval_cindex(const double *risk, const double *time, const uint8_t *event, size_t n,
                   double *out) FF_WARN_UNUSED;

/* The sums behind it: concordant (ties 1/2) and comparable pairs; 0 and 0 with none, so
 * that sites' counts add up (a site-stratified C-index). FF_EINVAL for a non-finite value. */
int ff_eval_cindex_counts(const double *risk, const double *time, const uint8_t *event,
                          size_t n, double *concordant, double *comparable) FF_WARN_UNUSED;

/* Regression metrics, as scikit-learn's mean_absolute_error, sqrt(mean_squared_error) and
 * r2_score. n = 0: all undefined ("no labelled patients"); a constant target: R² undefined.
 * FF_EINVAL for a non-finite value (names the row). */
int ff_eval_regression(const double *pred, const double *y, size_t n, ff_metric *mae,
                       ff_metric *rmse, ff_metric *r2) FF_WARN_UNUSED;

/* Multiclass metrics of K >= 2 classes from scores prob[n*K] (row-major; probabilities or any
 * scores where higher = more likely) and labels in [0, K): accuracy of the argmax (the first
 * of tied maxima, as numpy), class_auroc[K] one-vs-rest AUROC per class, and macro_auroc their
 * mean — scikit-learn's roc_auc_score(multi_class="ovr", average="macro"), undefined (with
 * the class's reason) when a class has no positive or no negative. FF_EINVAL for a label
 * outside [0, K) or a non-finite score (names the row). */
int ff_eval_multiclass(const double *prob, const int32_t *label, size_t n, int K,
                       ff_metric *accuracy, ff_metric *macro_auroc,
                       ff_metric *class_auroc) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Fairness per protected attribute                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char *name; /* level name ("F", "65-79"); owned */
    size_t n, n_pos;
    ff_metric auroc, auprc, brier, ece;
    ff_metric mean_score, prevalence; /* calibration-in-the-large: compare the two */
    ff_metric alert_rate, sensitivity, fpr, ppv; /* at the operating threshold */
    /* > 0: this many sites withheld the subgroup (ff_eval_hist_suppress) under a minimum cell
     * size of at most site_min_cell; its metrics are undefined (FF_EVAL_SUPPRESSED_SITE) */
    int site_suppressed;
    int64_t site_min_cell;
} ff_eval_subgroup;

typedef struct {
    char *attribute; /* "sex"; owned */
    size_t nlevels;
    ff_eval_subgroup *levels;
    /* max - min over levels of: alert rate (demographic parity), TPR, FPR; equalized odds =
     * max(TPR gap, FPR gap). Levels where a rate is undefined are left out of that gap. */
    ff_metric dp_diff, tpr_gap, fpr_gap, eo_diff;
    char *note; /* owned, may be NULL: shown under the subgroup table (e.g. which sites) */
} ff_eval_fairness;

/* level[i] in [0, nlevels) names the subgroup of row i (level_names[level[i]]); levels with no
 * rows are reported as empty (metrics undefined, "empty subgroup"). Caller owns *out
 * (ff_eval_fairness_free); on error *out owns nothing. */
int ff_eval_fairness_compute(const double *score, const uint8_t *label, const int32_t *level,
                             size_t n, const char *attribute, const char *const *level_names,
                             size_t nlevels, const ff_eval_opts *o,
                             ff_eval_fairness *out) FF_WARN_UNUSED;
void ff_eval_fairness_free(ff_eval_fairness *f);

/* ---------------------------------------------------------------------------------------- */
/* Calibration fits                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* Probabilities are clipped to [FF_EVAL_CLIP, 1 - FF_EVAL_CLIP] before taking logits. */
#define FF_EVAL_CLIP 1e-12

/* Calibration slope b and intercept a: unpenalised logistic regression
 * P(y=1) = sigmoid(a + b * logit(score)), fitted by Newton's method. Undefined (with reason)
 * for one class, perfect separation or no convergence. */
void ff_eval_calibration_fit(const double *score, const uint8_t *label, size_t n,
                             ff_metric *slope, ff_metric *intercept);

/* Temperature T > 0 minimising the NLL of sigmoid(logit(p)/T) on a validation split (one
 * task). FF_EINVAL for bad inputs; FF_ENUMERIC when the optimum is not a finite positive T
 * (one class only, or scores anti-correlated with labels); *T is 1 then. */
int ff_temperature_fit(const double *score, const uint8_t *label, size_t n,
                       double *T) FF_WARN_UNUSED;
/* out[i] = sigmoid(logit(clip(score[i])) / T); out may equal score. */
void ff_temperature_apply(const double *score, size_t n, double T, double *out);

/* ---------------------------------------------------------------------------------------- */
/* Predictions from CSV (fedfuse metrics)                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char *column;
    int32_t *level;  /* [n] */
    char **names;    /* [nlevels], sorted by byte order */
    size_t nlevels;
} ff_eval_csv_group;

typedef struct {
    size_t n;
    double *score;
    uint8_t *label;
    size_t ngroups;
    ff_eval_csv_group *groups;
} ff_eval_csv;

/* Reads a CSV with a header row holding `label` (0/1) and `score` (probability in [0,1]) plus
 * the named group columns (any text; empty is a level of its own, "(empty)"). Errors name the
 * file, line and column ("preds.csv:14: column 'score': 'nan' is not a finite number").
 * Caller owns *out (ff_eval_csv_free); on error *out owns nothing. */
int ff_eval_csv_read(const char *path, const char *const *group_cols, size_t ngroups,
                     ff_eval_csv *out) FF_WARN_UNUSED;
void ff_eval_csv_free(ff_eval_csv *c);

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* Builds the metrics.json object of docs/evaluation.md: top-level numbers (null when
 * undefined, with the reason in "undefined"), "ci95", curves, and "groups" keyed by
 * attribute. fair may be NULL when nfair is 0. Caller owns *out (json_decref). */
int ff_eval_to_json(const ff_eval_result *r, const ff_eval_fairness *fair, size_t nfair,
                    const ff_eval_opts *o, json_t **out) FF_WARN_UNUSED;
/* Writes a JSON value to path atomically, numbers with 17 significant digits. */
int ff_eval_json_write(const json_t *j, const char *path) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Federated evaluation: mergeable score histograms                                          */
/* ---------------------------------------------------------------------------------------- */
/*
 * One ff_eval_hist per task. Score s goes to fine bin min(floor(s * nbins), nbins - 1) of
 * "slice" 0 (everyone) and of one slice per (attribute, level) the site declares. Per slice and
 * bin we keep positive and negative counts and the sum of scores; per slice and class the sums
 * of s and s^2 (so Brier is exact). Merging is element-wise addition, so the merged histogram
 * equals the histogram of the pooled predictions. No prediction leaves the site.
 */
#define FF_EVAL_HIST_BINS 10000

typedef struct {
    char *attribute; /* NULL for slice 0 */
    char *level;
    double *pos, *neg, *ssum; /* [nbins] */
    double pos_s, pos_s2, neg_s, neg_s2;
    /* > 0: withheld by that many sites (ff_eval_hist_suppress): every count is 0 and the slice
     * carries no data, merged or not; min_cell is the largest minimum they applied */
    int suppressed;
    int64_t min_cell;
} ff_eval_hist_slice;

typedef struct {
    char task[64];
    int nbins;
    size_t nslices;
    ff_eval_hist_slice *slices;
} ff_eval_hist;

/* New histogram with slice 0 only. nbins in [10, 10^7]. Caller owns *out (ff_eval_hist_free). */
int ff_eval_hist_new(ff_eval_hist **out, const char *task, int nbins) FF_WARN_UNUSED;
void ff_eval_hist_free(ff_eval_hist *h);
/* Index of the slice (attribute, level), created if absent; FF_ENOMEM on failure. */
int ff_eval_hist_slice_find(ff_eval_hist *h, const char *attribute, const char *level,
                            size_t *index) FF_WARN_UNUSED;
/* Adds row i to slice slice_idx[i], or every row to slice 0 when slice_idx is NULL. A site
 * calls it once with NULL, then once per attribute with each row's level slice. Validates
 * scores and labels as ff_eval_binary; on error nothing is added. */
int ff_eval_hist_add(ff_eval_hist *h, const double *score, const uint8_t *label, size_t n,
                     const size_t *slice_idx) FF_WARN_UNUSED;
/* dst += src: same task name and nbins required (FF_EINVAL otherwise); slices matched by
 * (attribute, level), missing ones created. A slice withheld in either is withheld in dst (its
 * counts zeroed: a pool of the sites that did send it would compare subgroups over different
 * sites). On error dst is unchanged. */
int ff_eval_hist_merge(ff_eval_hist *dst, const ff_eval_hist *src) FF_WARN_UNUSED;

/* Disclosure control at the site, before the histogram leaves it. Per attribute, a subgroup
 * slice is withheld when its patients (and, with outcomes, its positives or its negatives)
 * number more than 0 but fewer than min_cell (primary); then, while the withheld subgroups of
 * that attribute taken together would themselves fail that test (one alone always does: slice
 * 0 minus the sent ones gives it back), the smallest sent subgroup of the attribute is
 * withheld too (complementary), down to the whole attribute. A withheld slice keeps only its
 * name (suppressed = 1, min_cell); slice 0 is never touched. min_cell <= 1 withholds nothing.
 * *nwithheld (may be NULL) counts the slices withheld. */
int ff_eval_hist_suppress(ff_eval_hist *h, int64_t min_cell, int outcomes,
                          size_t *nwithheld) FF_WARN_UNUSED;

/* Pooled metrics of one slice and their bounds (absolute) against the exact metrics of the
 * same predictions; see docs/evaluation.md for the derivations. */
typedef struct {
    double auroc;  /* sum_b pos_b neg_b / (2 P N) */
    double auprc;  /* sum_b pos_b / P * (precision range achievable inside bin b) */
    double brier;  /* 0 (up to rounding): computed from exact sums */
    int calibration_exact; /* 1 when nbins is a multiple of ece_bins: same reliability bins */
} ff_eval_hist_bound;

/* Fills r (as ff_eval_binary would, with bins as tied scores at their lower edges: ROC/PR
 * points, sens/spec operating points, threshold statistics, DCA; Brier, ECE, reliability from
 * the sums; calibration slope/intercept fitted on the bins' mean scores) for slice `slice`.
 * With o->bootstrap > 0, 95% intervals from a bootstrap of the histogram's cells (the exact
 * bootstrap seen through the bins; docs/evaluation.md). Caller owns r (ff_eval_result_free). */
int ff_eval_hist_metrics(const ff_eval_hist *h, size_t slice, const ff_eval_opts *o,
                         ff_eval_result *r, ff_eval_hist_bound *bound) FF_WARN_UNUSED;
/* Fairness for one attribute from the slices of that attribute; with o->bootstrap > 0 also
 * intervals for the subgroup metrics and the gaps (one bootstrap over all levels). */
int ff_eval_hist_fairness(const ff_eval_hist *h, const char *attribute, const ff_eval_opts *o,
                          ff_eval_fairness *out) FF_WARN_UNUSED;

/* Operating-point rules: a fixed threshold (target is the threshold), the lowest threshold
 * keeping specificity >= target, the highest keeping sensitivity >= target, the lowest keeping
 * the alert rate (share flagged) <= target. */
typedef enum { FF_OP_THRESHOLD = 0, FF_OP_SPECIFICITY, FF_OP_SENSITIVITY, FF_OP_ALERT_RATE } ff_op_rule;
/* Their names in configs and JSON ("threshold", "specificity", "sensitivity", "alert_rate"),
 * in ff_op_rule order, NULL-terminated. */
extern const char *const ff_eval_op_rule_names[];

/* A declared operating-point rule (config report.operating_point, `fedfuse eval
 * --operating-point RULE:TARGET`). */
typedef struct {
    ff_op_rule rule;
    double target;
} ff_eval_op_point;

/* The threshold the rule picks on slice 0 of h (a bin edge, so the threshold statistics of any
 * histogram with the same bins are exact at it). When the rule cannot be met (one class),
 * *thr = 0.5 and *why says why (static string); otherwise *why = NULL. */
int ff_eval_hist_operating_point(const ff_eval_hist *h, ff_op_rule rule, double target,
                                 double *thr, const char **why) FF_WARN_UNUSED;
/* The rule in words ("specificity at least 90%"). */
void ff_eval_op_rule_text(const ff_eval_op_point *op, char *buf, size_t n);
/* The line a report page shows at the top of a task: the threshold and the rule, chosen on
 * `chosen_on` (e.g. "the pooled validation split"), or why the rule could not be applied.
 * `source` names where the rule was declared ("config report.operating_point"). */
void ff_eval_op_note(const ff_eval_op_point *op, double thr, const char *why,
                     const char *chosen_on, const char *source, char *buf, size_t n);
/* metrics.json's "operating_point": {"rule", "target", "threshold", "chosen_on", "text"[,
 * "undefined": why]}; NULL when out of memory. */
json_t *ff_eval_op_json(const ff_eval_op_point *op, double thr, const char *why,
                        const char *chosen_on);

/* Serialisation for the transport: {"task","nbins","slices":[{"attribute","level","pos",
 * "neg","ssum" (sparse: [[bin, value], ...]), "pos_s",...}]}; a withheld slice is only
 * {"attribute","level","suppressed": sites,"min_cell_size"}. from_json validates everything
 * (names the field) and owns nothing on error. */
int ff_eval_hist_to_json(const ff_eval_hist *h, json_t **out) FF_WARN_UNUSED;
int ff_eval_hist_from_json(const json_t *j, ff_eval_hist **out) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Declared tasks of the other kinds (eval/src/taskeval.c): exact metrics, and mergeable      */
/* statistics for federated evaluation. Binary tasks use ff_eval_binary and ff_eval_hist.     */
/* ---------------------------------------------------------------------------------------- */
/*
 * Rows are in the task's own columns (ff/common.h "Prediction tasks"): pred [n, width] the
 * model's outputs (multiclass: class probabilities; regression: the predicted value;
 * survival: column 0 the risk score), lab [n, width] the labels (multiclass one-hot;
 * regression the value; survival time, event). Metrics (docs/evaluation.md):
 *   multiclass  accuracy, macro one-vs-rest AUROC, per class AUROC and support;
 *   regression  MAE, RMSE, R²;
 *   survival    Harrell's C-index, and the time-dependent AUROC at the task's horizon h
 *               (cumulative/dynamic: cases had the event at T <= h, controls T > h; patients
 *               censored before h are left out).
 * Federated: each site adds its rows once (ff_eval_kind_stats_add); sums and counts add up,
 * AUROCs come from per-class (multiclass) or case/control (survival) score histograms, and the
 * pooled C-index is site-stratified (concordant and comparable pairs within each site,
 * summed). Undefined metrics carry their reason, as everywhere in ff_eval.
 */
typedef struct {
    int kind;       /* ff_task_kind (never binary here) */
    double n;       /* labelled patients */
    int classes;
    ff_metric accuracy, macro_auroc;
    ff_metric class_auroc[FF_TASK_CLASSES_MAX];
    double class_n[FF_TASK_CLASSES_MAX];
    ff_metric mae, rmse, r2;
    double events, horizon;
    ff_metric cindex, td_auroc;
} ff_eval_kind_result;

/* Exact metrics of n rows. FF_EINVAL for a non-finite value or a bad label (names the row). */
int ff_eval_kind_exact(const ff_task *t, const double *pred, const double *lab, size_t n,
                       ff_eval_kind_result *r) FF_WARN_UNUSED;
/* {"kind", "n", metric: value|null, ..., "undefined": {metric: why}} (+ "classes", "per_class"
 * [{"class", "n", "auroc"}], "events", "horizon" by kind). */
int ff_eval_kind_to_json(const ff_eval_kind_result *r, json_t **out) FF_WARN_UNUSED;
/* "accuracy 0.612, macro AUROC 0.741" — the headline metrics for a console or report line. */
void ff_eval_kind_summary(const ff_eval_kind_result *r, char *buf, size_t n);
/* The headline metric of the kind (multiclass macro AUROC, regression R², survival C-index). */
const ff_metric *ff_eval_kind_headline(const ff_eval_kind_result *r, const char **name);

typedef struct {
    char task[64];
    int kind, classes, nbins;
    double horizon;
    double n, correct, class_n[FF_TASK_CLASSES_MAX];
    double sum_abs, sum_sq, sum_y, sum_y2; /* regression */
    double events, concordant, comparable; /* survival */
    ff_eval_hist *hist[FF_TASK_CLASSES_MAX]; /* multiclass: per class; survival: [0] cases */
    int nhist;
} ff_eval_kind_stats;

int ff_eval_kind_stats_new(ff_eval_kind_stats **out, const ff_task *t, int nbins) FF_WARN_UNUSED;
void ff_eval_kind_stats_free(ff_eval_kind_stats *s);
/* One site's rows (call once per site: the C-index pairs are counted within the call). */
int ff_eval_kind_stats_add(ff_eval_kind_stats *s, const double *pred, const double *lab,
                           size_t n) FF_WARN_UNUSED;
/* dst += src: same task, kind, classes, horizon and nbins (FF_EINVAL otherwise). */
int ff_eval_kind_stats_merge(ff_eval_kind_stats *dst, const ff_eval_kind_stats *src) FF_WARN_UNUSED;
int ff_eval_kind_stats_metrics(const ff_eval_kind_stats *s, ff_eval_kind_result *r) FF_WARN_UNUSED;
/* {"task", "kind", "classes", "horizon", "nbins", sums..., "hists": [...]}; from_json
 * validates every field (names it) and owns nothing on error. */
int ff_eval_kind_stats_to_json(const ff_eval_kind_stats *s, json_t **out) FF_WARN_UNUSED;
int ff_eval_kind_stats_from_json(const json_t *j, ff_eval_kind_stats **out) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Run summaries ('fedfuse eval', 'fedfuse metrics-pool')                                    */
/* ---------------------------------------------------------------------------------------- */

/* One task of an evaluation run: pooled (or single-site) results, fairness tables, per-site
 * results and, when pooled from histograms, the error bounds. Pointers only; nothing owned. */
typedef struct {
    const char *task;
    const ff_eval_result *pooled;
    const ff_eval_fairness *fair;
    size_t nfair;
    const char *const *site_names;
    const ff_eval_result *sites; /* [nsites] */
    size_t nsites;
    const ff_eval_hist_bound *bound; /* NULL when computed from predictions */
    int hist_bins;                   /* with bound */
} ff_eval_task_summary;

/* The object of ff_eval_to_json for t->pooled plus "task", "sites" {name: object without
 * groups} and, with a bound, "hist_bins" and "hist_bounds". */
int ff_eval_task_to_json(const ff_eval_task_summary *t, const ff_eval_opts *o,
                         json_t **out) FF_WARN_UNUSED;
/* metrics.json of a multi-task run ('fedfuse eval'): {"tasks": {name: task object}}. */
int ff_eval_tasks_to_json(const ff_eval_task_summary *t, size_t ntasks, const ff_eval_opts *o,
                          json_t **out) FF_WARN_UNUSED;
/* ---------------------------------------------------------------------------------------- */
/* HTML report                                                                               */
/* ---------------------------------------------------------------------------------------- */
/*
 * One self-contained page (inline SVG and CSS, no scripts, no network). Columns are "pooled"
 * plus one per site; each column has a result and optional fairness tables. The report keeps
 * pointers: every added result must outlive ff_report_write.
 *
 *     ff_report *rep; ff_report_new(&rep, "fedfuse evaluation — task icu");
 *     ff_report_add_column(rep, "pooled", &pooled, fair, nfair);
 *     ff_report_add_column(rep, "site-a", &site_a, NULL, 0);
 *     ff_report_add_rounds(rep, "AUROC per round", auroc_per_round, nrounds);   // optional
 *     ff_report_write(rep, "report.html"); ff_report_free(rep);
 */
typedef struct ff_report ff_report;

int ff_report_new(ff_report **out, const char *title) FF_WARN_UNUSED;
void ff_report_free(ff_report *rep);
/* Starts a task section (multi-task runs); the columns added next belong to it. Without it
 * the report has one unnamed task. */
int ff_report_add_task(ff_report *rep, const char *name) FF_WARN_UNUSED;
/* A free-text line under the title (data source, settings); copied. */
int ff_report_add_note(ff_report *rep, const char *text) FF_WARN_UNUSED;
/* A line at the top of the current task's section (e.g. how its threshold was chosen). */
int ff_report_add_task_note(ff_report *rep, const char *text) FF_WARN_UNUSED;
/* Columns with fewer positives get a warning beside their threshold statistics (10). */
void ff_report_set_min_positives(ff_report *rep, size_t n);
int ff_report_add_column(ff_report *rep, const char *name, const ff_eval_result *r,
                         const ff_eval_fairness *fair, size_t nfair) FF_WARN_UNUSED;
/* A per-round series (federated runs); values copied. Several series may be added. */
int ff_report_add_rounds(ff_report *rep, const char *label, const double *value,
                         size_t nrounds) FF_WARN_UNUSED;
/* Writes the page atomically. */
int ff_report_write(const ff_report *rep, const char *path) FF_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
