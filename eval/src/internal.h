/* Private to ff_eval: the score table every metric is computed from. */
#ifndef FF_EVAL_INTERNAL_H
#define FF_EVAL_INTERNAL_H

#include "ff/eval.h"

/* Distinct score values in descending order with the (possibly weighted) number of positives
 * and negatives at each. Exact evaluation builds it from the predictions (one group per
 * distinct score); bootstrap reweights pos/neg; histograms use one group per non-empty bin
 * (s = the bin's lower edge). All counts are whole numbers held in doubles (exact < 2^53). */
typedef struct {
    size_t n;
    double *s, *pos, *neg;
    double P, N; /* totals */
} ev_table;

/* Validates and sorts; grp_of_row (optional, [n], caller frees) maps each row to its group. */
int ev_table_build(const double *score, const uint8_t *label, size_t n, ev_table *t,
                   uint32_t **grp_of_row);
int ev_table_alloc(ev_table *t, size_t n);
void ev_table_free(ev_table *t);
void ev_table_totals(ev_table *t);
int ev_check_inputs(const double *score, const uint8_t *label, size_t n);

/* o itself, or def filled with the defaults when o is NULL. */
const ff_eval_opts *ev_opts(const ff_eval_opts *o, ff_eval_opts *def);

void ev_set(ff_metric *m, double v);
/* Adds key: value-or-null to obj, the reason into undef, the CI into ci (may be NULL).
 * Returns -1 on OOM. */
int ev_put_metric(json_t *obj, json_t *undef, json_t *ci, const char *key, const ff_metric *m);
void ev_undef(ff_metric *m, const char *why);
/* Why a metric needing both classes is undefined, or NULL when it is defined. */
const char *ev_two_class_why(double P, double N);

/* Scalar metrics from a table (no allocation). */
void ev_auroc(const ev_table *t, ff_metric *m);
void ev_auprc(const ev_table *t, ff_metric *m);
void ev_sens_at_spec(const ev_table *t, double target, ff_metric *v, ff_metric *thr);
void ev_spec_at_sens(const ev_table *t, double target, ff_metric *v, ff_metric *thr);
void ev_brier_table(const ev_table *t, ff_metric *m);
/* Reliability bins (sklearn uniform): index of the bin holding s. */
int ev_rel_bin(double s, int nbins);
/* ECE and optional reliability arrays from per-bin count, score sum and positives. */
void ev_ece_finish(const double *cnt, const double *sum, const double *tru, int nbins,
                   ff_metric *m, double *count, double *mean_pred, double *frac_pos);
/* ECE + optional reliability arrays (count/mean_pred/frac_pos of nbins each). */
void ev_ece_table(const ev_table *t, int nbins, ff_metric *m, double *count, double *mean_pred,
                  double *frac_pos);
void ev_threshold_stats(const ev_table *t, double thr, ff_metric *alert, ff_metric *ppv,
                        ff_metric *sens, ff_metric *spec);
/* Discrimination, threshold statistics, curves and DCA into r (allocates the curves). */
int ev_fill_from_table(const ev_table *t, const ff_eval_opts *o, ff_eval_result *r);
/* Calibration slope/intercept from a table. */
void ev_calibration_fit_table(const ev_table *t, ff_metric *slope, ff_metric *intercept);
double ev_logit(double p);

/* Bootstrap CIs into r (binary.c): rows 0..n-1 with grp[row] the table group of the row and
 * label[row] its class; see docs/evaluation.md. */
#define EV_BOOT_FIT_MAX 20000
int ev_bootstrap(const ev_table *t, const uint32_t *grp, const uint8_t *label, size_t n,
                 const ff_eval_opts *o, ff_eval_result *r);
double ev_percentile(const double *sorted, size_t m, double q);
/* Sorts vals[cnt] and sets m's 95% percentile interval (when m is defined and cnt >= 2). */
void ev_set_ci(ff_metric *m, double *vals, size_t cnt);

/* Histograms (hist.c, hist_ci.c): a slice as a table at bin lower edges or bin mean scores;
 * the calibration fit on the mean table and, with o->bootstrap, the bootstrap CIs of r; the
 * bootstrap CIs of a fairness table built from the slices of `attribute`. */
int ev_hist_table(const ff_eval_hist *h, const ff_eval_hist_slice *sl, int mean, ev_table *t);
int ev_hist_fit_and_ci(const ff_eval_hist *h, const ff_eval_hist_slice *sl,
                       const ff_eval_opts *o, ff_eval_result *r);
int ev_hist_fairness_ci(const ff_eval_hist *h, const char *attribute, const ff_eval_opts *o,
                        ff_eval_fairness *f);

/* Subgroup metrics from a table (used by exact and histogram fairness). */
void ev_subgroup_from_table(const ev_table *t, const ff_eval_opts *o, ff_eval_subgroup *g);
void ev_fairness_gaps(ff_eval_fairness *f);
/* A subgroup that sites withheld (ff_eval_hist_suppress): every metric suppressed. */
void ev_subgroup_withheld(ff_eval_subgroup *g, int sites, int64_t min_cell);

/* HTML/SVG helpers (svg.c). */
void ev_sb_puts_html(ff_sbuf *b, const char *s);
/* A curve of a panel: colour from ev_colour; tip is the curve's tooltip (default: name),
 * point_tip[i] that of marker i (markers only). */
enum { EV_SOLID = 0, EV_DASHED, EV_DOTTED, EV_REFERENCE };
typedef struct {
    const char *name;
    const double *x, *y;
    size_t n;
    int style, markers;
    const char *colour;
    const char *tip;
    const char *const *point_tip;
} ev_series;
/* A line chart: title (and subtitle) above, axes [x0,x1] x [y0,y1] with ticks and labels,
 * the legend below the x axis. width/frame_height 0: 250 / 170 px. */
typedef struct {
    const char *title, *subtitle, *xlabel, *ylabel;
    double x0, x1, y0, y1;
    int diagonal, xticks;
    double width, frame_height;
} ev_panel;
void ev_svg_panel(ff_sbuf *b, const ev_panel *p, const ev_series *s, size_t ns);
/* Horizontal bars of values in [x0,x1] with labels and 95% whiskers when has_ci; undefined
 * bars are drawn as "n/a: reason". */
void ev_svg_bars(ff_sbuf *b, const char *title, const char *const *labels, const ff_metric *v,
                 size_t n, double x0, double x1, const char *colour);
#define EV_NPALETTE 7
extern const char *const ev_palette[EV_NPALETTE];
const char *ev_colour(size_t i);
/* Thins a curve to at most max points (keeps first/last and evenly spaced points). */
size_t ev_thin_index(size_t n, size_t max, size_t k);

#endif
