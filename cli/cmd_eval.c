/* Commands of the evaluation library: metrics of any model's predictions from a CSV. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ff/eval.h"

static int cmd_metrics(int argc, char **argv);

FF_CLI_GROUP_DEFINE(eval,
    {"metrics", "AUROC, AUPRC, calibration, fairness and decision curves of predictions in a CSV",
     cmd_metrics,
     "usage: fedfuse metrics --csv FILE [--group COL]... [--threshold T] [--bins N]\n"
     "                       [--bootstrap N [--seed S]] [--curve-points N]\n"
     "                       [--out metrics.json] [--html report.html]\n"
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
     "  Bad input (missing column, label not 0/1, score not a probability, NaN) stops with\n"
     "  FILE:LINE: column 'NAME': reason, exit 2.\n"})

#define MAX_GROUPS 16

typedef struct {
    const char *csv, *out, *html;
    const char *groups[MAX_GROUPS];
    int ngroups;
    ff_eval_opts o;
} metrics_args;

static int parse_metrics_args(int argc, char **argv, metrics_args *m)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "metrics", argc, argv);
    memset(m, 0, sizeof *m);
    ff_eval_opts_default(&m->o);
    m->csv = ff_cli_opt(&a, "--csv");
    m->out = ff_cli_opt(&a, "--out");
    m->html = ff_cli_opt(&a, "--html");
    m->ngroups = ff_cli_opt_all(&a, "--group", m->groups, MAX_GROUPS);
    int64_t bins, boot, seed, pts;
    double thr;
    int rc = ff_cli_opt_f64(&a, "--threshold", 0.5, &thr);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--bins", 10, &bins);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--bootstrap", 0, &boot);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--seed", 0, &seed);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--curve-points", 400, &pts);
    if (rc == FF_OK)
        rc = ff_cli_check_unused(&a);
    if (rc != FF_OK)
        return rc;
    if (!m->csv)
        return ff_error(FF_EINVAL, "metrics: --csv FILE is required (see 'fedfuse metrics "
                                   "--help')");
    if (!(thr >= 0 && thr <= 1))
        return ff_error(FF_EINVAL, "--threshold: %g is not in [0,1]", thr);
    if (bins < 1 || bins > 1000)
        return ff_error(FF_EINVAL, "--bins: %lld is not in [1, 1000]", (long long)bins);
    if (boot < 0 || boot > 100000)
        return ff_error(FF_EINVAL, "--bootstrap: %lld is not in [0, 100000]", (long long)boot);
    if (seed < 0)
        return ff_error(FF_EINVAL, "--seed: %lld is negative", (long long)seed);
    if (pts < 0 || pts > 1000000)
        return ff_error(FF_EINVAL, "--curve-points: %lld is not in [0, 1000000]",
                        (long long)pts);
    m->o.threshold = thr;
    m->o.ece_bins = (int)bins;
    m->o.bootstrap = (int)boot;
    m->o.seed = (uint64_t)seed;
    m->o.curve_points = (int)pts;
    return FF_OK;
}

static int write_html(const metrics_args *m, const ff_eval_result *r,
                      const ff_eval_fairness *fair, size_t nfair)
{
    ff_report *rep = NULL;
    char note[1024];
    int rc = ff_report_new(&rep, "fedfuse metrics");
    if (rc == FF_OK) {
        snprintf(note, sizeof note, "Predictions: %s (%zu rows, %zu positive). Threshold %g, "
                 "%d calibration bins, %d bootstrap replicates (seed %llu).", m->csv, r->n,
                 r->n_pos, m->o.threshold, m->o.ece_bins, m->o.bootstrap,
                 (unsigned long long)m->o.seed);
        rc = ff_report_add_note(rep, note);
    }
    if (rc == FF_OK)
        rc = ff_report_add_column(rep, "all", r, fair, nfair);
    if (rc == FF_OK)
        rc = ff_report_write(rep, m->html);
    ff_report_free(rep);
    return rc;
}

static int cmd_metrics(int argc, char **argv)
{
    metrics_args m;
    int rc = parse_metrics_args(argc, argv, &m);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    ff_eval_csv csv;
    rc = ff_eval_csv_read(m.csv, m.groups, (size_t)m.ngroups, &csv);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    ff_eval_result r;
    ff_eval_fairness fair[MAX_GROUPS];
    size_t nfair = 0;
    json_t *j = NULL;
    rc = ff_eval_binary(csv.score, csv.label, csv.n, &m.o, &r);
    if (rc != FF_OK) {
        ff_error_prefix(rc, "%s: ", m.csv);
        goto out_csv;
    }
    for (; rc == FF_OK && nfair < csv.ngroups; nfair++) {
        const ff_eval_csv_group *g = &csv.groups[nfair];
        rc = ff_eval_fairness_compute(csv.score, csv.label, g->level, csv.n, g->column,
                                      (const char *const *)g->names, g->nlevels, &m.o,
                                      &fair[nfair]);
        if (rc != FF_OK)
            break;
    }
    if (rc == FF_OK)
        rc = ff_eval_to_json(&r, fair, nfair, &m.o, &j);
    if (rc == FF_OK && m.out)
        rc = ff_eval_json_write(j, m.out);
    if (rc == FF_OK && !m.out && !m.html && json_dumpf(j, stdout, JSON_INDENT(1) |
                                                      JSON_REAL_PRECISION(17)) != 0)
        rc = ff_error(FF_EIO, "stdout: write failed");
    if (rc == FF_OK && !m.out && !m.html)
        putchar('\n');
    if (rc == FF_OK && m.html)
        rc = write_html(&m, &r, fair, nfair);
    if (rc == FF_OK)
        FF_LOG_INFO("metrics: %zu rows, %zu groups%s%s%s%s", csv.n, nfair,
                    m.out ? ", json " : "", m.out ? m.out : "", m.html ? ", html " : "",
                    m.html ? m.html : "");
    json_decref(j);
    for (size_t i = 0; i < nfair; i++)
        ff_eval_fairness_free(&fair[i]);
    ff_eval_result_free(&r);
out_csv:
    ff_eval_csv_free(&csv);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}
