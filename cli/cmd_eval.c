/* Commands of the evaluation library: metrics of any model's predictions from a CSV. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/eval.h"

static int cmd_metrics(int argc, char **argv);
static int cmd_metrics_pool(int argc, char **argv);

FF_CLI_GROUP_DEFINE(eval,
    {"metrics", "AUROC, AUPRC, calibration, fairness and decision curves of predictions in a CSV",
     cmd_metrics,
     "usage: fedfuse metrics --csv FILE [--group COL]... [--threshold T] [--bins N]\n"
     "                       [--bootstrap N [--seed S]] [--curve-points N]\n"
     "                       [--site-column COL] [--calibrate-on VAL.csv]\n"
     "                       [--out metrics.json] [--html report.html]\n"
     "                       [--hist-out SITE.hist.json [--task NAME] [--hist-bins N]]\n"
     "  FILE has a header row with a 'label' column (0/1) and a 'score' column (probability\n"
     "  in [0,1]); each --group COL names a protected-attribute column (any text) for the\n"
     "  per-subgroup metrics and fairness gaps.\n"
     "  --threshold T     operating threshold, positive when score >= T (default 0.5)\n"
     "  --bins N          equal-width bins for ECE and the reliability curve (default 10)\n"
     "  --bootstrap N     bootstrap replicates for 95% CIs of the headline metrics (default 0)\n"
     "  --seed S          bootstrap seed (default 0); same seed, same intervals\n"
     "  --curve-points N  at most N points per ROC/PR curve in the output (default 400, 0=all)\n"
     "  --out FILE        metrics JSON (schema: docs/evaluation.md); stdout when neither\n"
     "                    --out nor --html is given\n"
     "  --html FILE       self-contained HTML report (inline SVG, no scripts, no network)\n"
     "  --site-column COL one column per site (and the pooled 'all') in the JSON ('sites')\n"
     "                    and the report, from a CSV that holds several sites' predictions\n"
     "  --calibrate-on VAL.csv  fit temperature scaling (minimum NLL) on a validation CSV\n"
     "                    of the same form and rescale the scores before every metric; the\n"
     "                    JSON gets 'temperature'\n"
     "  --hist-out FILE   also write the federated summary of these predictions: score\n"
     "                    histograms per class on a fixed grid (and per --group level), the\n"
     "                    only thing a site sends for pooled evaluation (see metrics-pool)\n"
     "  --task NAME       task name stored in the histogram (default 'task')\n"
     "  --hist-bins N     histogram grid size (default 10000)\n"
     "  Bad input (missing column, label not 0/1, score not a probability, NaN) stops with\n"
     "  FILE:LINE: column 'NAME': reason, exit 2.\n"},
    {"metrics-pool", "pooled and per-site metrics from sites' score histograms (no predictions pooled)",
     cmd_metrics_pool,
     "usage: fedfuse metrics-pool --hist SITE.json [--hist SITE.json]... [--site NAME]...\n"
     "                            [--threshold T] [--bins N] [--bootstrap N [--seed S]]\n"
     "                            [--out pooled.json] [--html report.html]\n"
     "  Merges the histograms written by 'fedfuse metrics --hist-out' (same task and grid)\n"
     "  and reports the pooled AUROC, AUPRC, calibration and subgroup metrics with their\n"
     "  error bounds against the exact pooled values ('hist_bounds'), plus one column per\n"
     "  site ('sites'). --site names the sites in order (default: the file names).\n"
     "  --bootstrap N adds 95% intervals from a bootstrap of the histograms' cells\n"
     "  (patients drawn with replacement through their bins; docs/evaluation.md).\n"})

#define MAX_GROUPS 16

typedef struct {
    const char *csv, *out, *html, *hist_out, *task, *calib, *site_col;
    int hist_bins;
    const char *groups[MAX_GROUPS];
    int ngroups;
    ff_eval_opts o;
} metrics_args;

/* --threshold, --bins, --curve-points, --bootstrap and --seed, shared by metrics and
 * metrics-pool. */
static int parse_eval_opts(ff_cli_args *a, ff_eval_opts *o)
{
    int64_t bins, pts, boot, seed;
    int rc = ff_cli_opt_f64(a, "--threshold", 0.5, &o->threshold);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--bins", 10, &bins);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--curve-points", 400, &pts);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--bootstrap", 0, &boot);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--seed", 0, &seed);
    if (rc != FF_OK)
        return rc;
    if (boot < 0 || boot > 100000)
        return ff_error(FF_EINVAL, "--bootstrap: %lld is not in [0, 100000]", (long long)boot);
    if (seed < 0)
        return ff_error(FF_EINVAL, "--seed: %lld is negative", (long long)seed);
    o->bootstrap = (int)boot;
    o->seed = (uint64_t)seed;
    if (!(o->threshold >= 0 && o->threshold <= 1))
        return ff_error(FF_EINVAL, "--threshold: %g is not in [0,1]", o->threshold);
    if (bins < 1 || bins > 1000)
        return ff_error(FF_EINVAL, "--bins: %lld is not in [1, 1000]", (long long)bins);
    if (pts < 0 || pts > 1000000)
        return ff_error(FF_EINVAL, "--curve-points: %lld is not in [0, 1000000]",
                        (long long)pts);
    o->ece_bins = (int)bins;
    o->curve_points = (int)pts;
    return FF_OK;
}

static int parse_metrics_args(int argc, char **argv, metrics_args *m)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "metrics", argc, argv);
    memset(m, 0, sizeof *m);
    ff_eval_opts_default(&m->o);
    m->csv = ff_cli_opt(&a, "--csv");
    m->out = ff_cli_opt(&a, "--out");
    m->html = ff_cli_opt(&a, "--html");
    m->hist_out = ff_cli_opt(&a, "--hist-out");
    m->calib = ff_cli_opt(&a, "--calibrate-on");
    m->site_col = ff_cli_opt(&a, "--site-column");
    m->task = ff_cli_opt(&a, "--task");
    if (!m->task)
        m->task = "task";
    m->ngroups = ff_cli_opt_all(&a, "--group", m->groups, MAX_GROUPS - 1);
    int64_t hbins;
    int rc = parse_eval_opts(&a, &m->o);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--hist-bins", FF_EVAL_HIST_BINS, &hbins);
    if (rc == FF_OK)
        rc = ff_cli_check_unused(&a);
    if (rc != FF_OK)
        return rc;
    if (!m->csv)
        return ff_error(FF_EINVAL, "metrics: --csv FILE is required (see 'fedfuse metrics "
                                   "--help')");
    if (hbins < 10 || hbins > 10000000)
        return ff_error(FF_EINVAL, "--hist-bins: %lld is not in [10, 10^7]", (long long)hbins);
    m->hist_bins = (int)hbins;
    return FF_OK;
}

/* The site side of federated evaluation: all rows into slice 0, then each row into its
 * level's slice, one pass per group column. */
static int write_hist(const metrics_args *m, const ff_eval_csv *csv, size_t ngroups)
{
    ff_eval_hist *h = NULL;
    json_t *j = NULL;
    size_t *idx = calloc(csv->n ? csv->n : 1, sizeof *idx);
    size_t *slice_of_level = NULL;
    int rc = idx ? ff_eval_hist_new(&h, m->task, m->hist_bins)
                 : ff_error(FF_ENOMEM, "no memory for %zu rows", csv->n);
    if (rc == FF_OK)
        rc = ff_eval_hist_add(h, csv->score, csv->label, csv->n, NULL);
    for (size_t g = 0; rc == FF_OK && g < ngroups; g++) {
        const ff_eval_csv_group *grp = &csv->groups[g];
        free(slice_of_level);
        slice_of_level = calloc(grp->nlevels ? grp->nlevels : 1, sizeof *slice_of_level);
        if (!slice_of_level)
            rc = ff_error(FF_ENOMEM, "no memory");
        for (size_t l = 0; rc == FF_OK && l < grp->nlevels; l++)
            rc = ff_eval_hist_slice_find(h, grp->column, grp->names[l], &slice_of_level[l]);
        for (size_t i = 0; rc == FF_OK && i < csv->n; i++)
            idx[i] = slice_of_level[grp->level[i]];
        if (rc == FF_OK)
            rc = ff_eval_hist_add(h, csv->score, csv->label, csv->n, idx);
    }
    if (rc == FF_OK)
        rc = ff_eval_hist_to_json(h, &j);
    char *txt = NULL;
    if (rc == FF_OK && !(txt = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17))))
        rc = ff_error(FF_ENOMEM, "%s: cannot serialise the histogram", m->hist_out);
    if (rc == FF_OK)
        rc = ff_file_write_atomic(m->hist_out, txt, strlen(txt), 0644);
    free(txt);
    json_decref(j);
    ff_eval_hist_free(h);
    free(slice_of_level);
    free(idx);
    return rc;
}

/* Temperature fitted on the validation CSV, applied to the scores in place. */
static int calibrate(const char *val_path, ff_eval_csv *csv, double *T)
{
    ff_eval_csv val;
    int rc = ff_eval_csv_read(val_path, NULL, 0, &val);
    if (rc != FF_OK)
        return rc;
    rc = ff_temperature_fit(val.score, val.label, val.n, T);
    ff_eval_csv_free(&val);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "--calibrate-on %s: ", val_path);
    ff_temperature_apply(csv->score, csv->n, *T, csv->score);
    return FF_OK;
}

/* Everything `fedfuse metrics` computes; freed by run_free. */
typedef struct {
    ff_eval_csv csv;
    size_t ngroups; /* fairness attributes: the --group columns (the site column is after) */
    ff_eval_result all;
    ff_eval_fairness fair[MAX_GROUPS];
    size_t nfair;
    const ff_eval_csv_group *site; /* --site-column, or NULL */
    ff_eval_result *sites;         /* [site->nlevels] */
    size_t nsites;
    double T;
} metrics_run;

static void run_free(metrics_run *r)
{
    for (size_t i = 0; i < r->nfair; i++)
        ff_eval_fairness_free(&r->fair[i]);
    for (size_t i = 0; i < r->nsites; i++)
        ff_eval_result_free(&r->sites[i]);
    free(r->sites);
    ff_eval_result_free(&r->all);
    ff_eval_csv_free(&r->csv);
}

/* One ff_eval_binary per site level, on that site's rows. */
static int compute_sites(const metrics_args *m, metrics_run *r)
{
    const ff_eval_csv_group *g = r->site;
    size_t n = r->csv.n;
    double *s = malloc((n ? n : 1) * sizeof *s);
    uint8_t *y = malloc(n ? n : 1);
    r->sites = calloc(g->nlevels ? g->nlevels : 1, sizeof *r->sites);
    int rc = s && y && r->sites ? FF_OK : ff_error(FF_ENOMEM, "no memory for %zu rows", n);
    for (size_t l = 0; rc == FF_OK && l < g->nlevels; l++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if ((size_t)g->level[i] == l) {
                s[k] = r->csv.score[i];
                y[k++] = r->csv.label[i];
            }
        rc = ff_eval_binary(s, y, k, &m->o, &r->sites[l]);
        if (rc == FF_OK)
            r->nsites++;
    }
    free(s);
    free(y);
    return rc;
}

static int compute(const metrics_args *m, metrics_run *r)
{
    const char *cols[MAX_GROUPS];
    for (int i = 0; i < m->ngroups; i++)
        cols[i] = m->groups[i];
    size_t ncols = (size_t)m->ngroups;
    if (m->site_col)
        cols[ncols++] = m->site_col;
    r->ngroups = (size_t)m->ngroups;
    r->T = 1;
    int rc = ff_eval_csv_read(m->csv, cols, ncols, &r->csv);
    if (rc == FF_OK && m->calib)
        rc = calibrate(m->calib, &r->csv, &r->T);
    if (rc != FF_OK)
        return rc;
    rc = ff_eval_binary(r->csv.score, r->csv.label, r->csv.n, &m->o, &r->all);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "%s: ", m->csv);
    for (; rc == FF_OK && r->nfair < r->ngroups; r->nfair++) {
        const ff_eval_csv_group *g = &r->csv.groups[r->nfair];
        rc = ff_eval_fairness_compute(r->csv.score, r->csv.label, g->level, r->csv.n, g->column,
                                      (const char *const *)g->names, g->nlevels, &m->o,
                                      &r->fair[r->nfair]);
        if (rc != FF_OK)
            return rc;
    }
    if (m->site_col) {
        r->site = &r->csv.groups[r->ngroups];
        rc = compute_sites(m, r);
    }
    return rc;
}

static int run_json(const metrics_args *m, const metrics_run *r, json_t **j)
{
    ff_eval_task_summary t = {m->task, &r->all, r->fair, r->nfair,
                              r->site ? (const char *const *)r->site->names : NULL, r->sites,
                              r->nsites, NULL, 0};
    int rc = r->site ? ff_eval_task_to_json(&t, &m->o, j)
                     : ff_eval_to_json(&r->all, r->fair, r->nfair, &m->o, j);
    if (rc == FF_OK && m->calib &&
        (json_object_set_new(*j, "temperature", json_real(r->T)) != 0 ||
         json_object_set_new(*j, "temperature_fitted_on", json_string(m->calib)) != 0))
        rc = ff_error(FF_ENOMEM, "no memory");
    return rc;
}

static int write_html(const metrics_args *m, const metrics_run *r)
{
    ff_report *rep = NULL;
    char note[1024];
    int rc = ff_report_new(&rep, "fedfuse metrics");
    if (rc == FF_OK) {
        snprintf(note, sizeof note, "Predictions: %s (%zu rows, %zu positive). Threshold %g, "
                 "%d calibration bins, %d bootstrap replicates (seed %llu)%s.", m->csv,
                 r->all.n, r->all.n_pos, m->o.threshold, m->o.ece_bins, m->o.bootstrap,
                 (unsigned long long)m->o.seed,
                 m->calib ? ", scores temperature-scaled on the validation CSV" : "");
        rc = ff_report_add_note(rep, note);
    }
    if (rc == FF_OK)
        rc = ff_report_add_column(rep, "all", &r->all, r->fair, r->nfair);
    for (size_t i = 0; rc == FF_OK && i < r->nsites; i++)
        rc = ff_report_add_column(rep, r->site->names[i], &r->sites[i], NULL, 0);
    if (rc == FF_OK)
        rc = ff_report_write(rep, m->html);
    ff_report_free(rep);
    return rc;
}

static int write_json(const metrics_args *m, const json_t *j)
{
    if (m->out)
        return ff_eval_json_write(j, m->out);
    if (m->html)
        return FF_OK;
    if (json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0 ||
        putchar('\n') == EOF)
        return ff_error(FF_EIO, "stdout: write failed");
    return FF_OK;
}

static int cmd_metrics(int argc, char **argv)
{
    metrics_args m;
    int rc = parse_metrics_args(argc, argv, &m);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    metrics_run r;
    memset(&r, 0, sizeof r);
    json_t *j = NULL;
    rc = compute(&m, &r);
    if (rc == FF_OK)
        rc = run_json(&m, &r, &j);
    if (rc == FF_OK)
        rc = write_json(&m, j);
    if (rc == FF_OK && m.html)
        rc = write_html(&m, &r);
    if (rc == FF_OK && m.hist_out)
        rc = write_hist(&m, &r.csv, r.ngroups);
    if (rc == FF_OK)
        FF_LOG_INFO("metrics: %zu rows, %zu groups, %zu sites%s%s%s%s", r.csv.n, r.nfair,
                    r.nsites, m.out ? ", json " : "", m.out ? m.out : "",
                    m.html ? ", html " : "", m.html ? m.html : "");
    json_decref(j);
    run_free(&r);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

#define MAX_SITES 64

typedef struct {
    size_t nsites;
    const char *path[MAX_SITES], *name[MAX_SITES];
    ff_eval_hist *site[MAX_SITES];
    ff_eval_hist *pooled;
    ff_eval_result site_r[MAX_SITES], pooled_r;
    ff_eval_hist_bound bound;
    ff_eval_fairness fair[MAX_GROUPS];
    size_t nfair;
} pool_state;

static int load_hist(const char *path, ff_eval_hist **out)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        return ff_error(FF_EFORMAT, "%s:%d: %s", path, err.line, err.text);
    int rc = ff_eval_hist_from_json(j, out);
    json_decref(j);
    return rc == FF_OK ? rc : ff_error_prefix(rc, "%s: ", path);
}

/* Distinct attribute names of the pooled slices, into the fairness tables. */
static int pool_fairness(pool_state *p, const ff_eval_opts *o)
{
    int rc = FF_OK;
    for (size_t i = 1; rc == FF_OK && i < p->pooled->nslices; i++) {
        const char *attr = p->pooled->slices[i].attribute;
        int seen = 0;
        for (size_t k = 0; k < p->nfair; k++)
            seen |= strcmp(p->fair[k].attribute, attr) == 0;
        if (seen)
            continue;
        if (p->nfair == MAX_GROUPS)
            return ff_error(FF_EINVAL, "more than %d attributes in the histograms", MAX_GROUPS);
        rc = ff_eval_hist_fairness(p->pooled, attr, o, &p->fair[p->nfair]);
        if (rc == FF_OK)
            p->nfair++;
    }
    return rc;
}

static int pool_json(pool_state *p, const ff_eval_opts *o, json_t **out)
{
    ff_eval_task_summary t = {p->pooled->task, &p->pooled_r, p->fair, p->nfair, p->name,
                              p->site_r, p->nsites, &p->bound, p->pooled->nbins};
    return ff_eval_task_to_json(&t, o, out);
}

static int pool_html(pool_state *p, const char *path)
{
    ff_report *rep = NULL;
    char note[512];
    int rc = ff_report_new(&rep, "fedfuse federated evaluation");
    if (rc == FF_OK) {
        snprintf(note, sizeof note, "Task '%s': pooled from %zu sites' score histograms (%d "
                 "bins); no prediction left its site. Pooled AUROC within %.2g and AUPRC within "
                 "%.2g of the exact pooled values (bounds derived in docs/evaluation.md).",
                 p->pooled->task, p->nsites, p->pooled->nbins, p->bound.auroc, p->bound.auprc);
        rc = ff_report_add_note(rep, note);
    }
    if (rc == FF_OK)
        rc = ff_report_add_column(rep, "pooled", &p->pooled_r, p->fair, p->nfair);
    for (size_t s = 0; rc == FF_OK && s < p->nsites; s++)
        rc = ff_report_add_column(rep, p->name[s], &p->site_r[s], NULL, 0);
    if (rc == FF_OK)
        rc = ff_report_write(rep, path);
    ff_report_free(rep);
    return rc;
}

static int run_pool(pool_state *p, const ff_eval_opts *o, const char *out, const char *html)
{
    int rc = FF_OK;
    for (size_t s = 0; rc == FF_OK && s < p->nsites; s++)
        rc = load_hist(p->path[s], &p->site[s]);
    if (rc == FF_OK)
        rc = ff_eval_hist_new(&p->pooled, p->site[0]->task, p->site[0]->nbins);
    for (size_t s = 0; rc == FF_OK && s < p->nsites; s++) {
        rc = ff_eval_hist_merge(p->pooled, p->site[s]);
        if (rc != FF_OK)
            ff_error_prefix(rc, "%s: ", p->path[s]);
    }
    if (rc == FF_OK)
        rc = ff_eval_hist_metrics(p->pooled, 0, o, &p->pooled_r, &p->bound);
    for (size_t s = 0; rc == FF_OK && s < p->nsites; s++)
        rc = ff_eval_hist_metrics(p->site[s], 0, o, &p->site_r[s], NULL);
    if (rc == FF_OK)
        rc = pool_fairness(p, o);
    json_t *j = NULL;
    if (rc == FF_OK)
        rc = pool_json(p, o, &j);
    if (rc == FF_OK && out)
        rc = ff_eval_json_write(j, out);
    if (rc == FF_OK && !out && !html &&
        json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0)
        rc = ff_error(FF_EIO, "stdout: write failed");
    if (rc == FF_OK && html)
        rc = pool_html(p, html);
    json_decref(j);
    return rc;
}

static int cmd_metrics_pool(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "metrics-pool", argc, argv);
    static pool_state p; /* large; one per process */
    memset(&p, 0, sizeof p);
    ff_eval_opts o;
    ff_eval_opts_default(&o);
    p.nsites = (size_t)ff_cli_opt_all(&a, "--hist", p.path, MAX_SITES);
    int nnames = ff_cli_opt_all(&a, "--site", p.name, MAX_SITES);
    const char *out = ff_cli_opt(&a, "--out"), *html = ff_cli_opt(&a, "--html");
    int rc = parse_eval_opts(&a, &o);
    if (rc == FF_OK)
        rc = ff_cli_check_unused(&a);
    if (rc == FF_OK && p.nsites == 0)
        rc = ff_error(FF_EINVAL, "metrics-pool: at least one --hist FILE is required");
    if (rc == FF_OK && nnames != 0 && (size_t)nnames != p.nsites)
        rc = ff_error(FF_EINVAL, "metrics-pool: %d --site names for %zu --hist files", nnames,
                      p.nsites);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    for (size_t s = 0; nnames == 0 && s < p.nsites; s++) {
        const char *slash = strrchr(p.path[s], '/');
        p.name[s] = slash ? slash + 1 : p.path[s];
    }
    rc = run_pool(&p, &o, out, html);
    for (size_t s = 0; s < p.nsites; s++) {
        ff_eval_result_free(&p.site_r[s]);
        ff_eval_hist_free(p.site[s]);
    }
    for (size_t k = 0; k < p.nfair; k++)
        ff_eval_fairness_free(&p.fair[k]);
    ff_eval_result_free(&p.pooled_r);
    ff_eval_hist_free(p.pooled);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}
