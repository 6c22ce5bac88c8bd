/* report.html: one self-contained page (inline CSS and SVG, no scripts, no network). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    const ff_eval_result *r;
    const ff_eval_fairness *fair;
    size_t nfair;
    size_t task; /* index into ff_report.tasks */
} ev_col;

typedef struct {
    char *label;
    double *v;
    size_t n;
} ev_rounds;

struct ff_report {
    char *title;
    char **notes;
    size_t nnotes;
    char **tasks; /* NULL name: the implicit task of a single-task report */
    size_t ntasks;
    ev_col *cols;
    size_t ncols;
    ev_rounds *rounds;
    size_t nrounds;
};

int ff_report_new(ff_report **out, const char *title)
{
    *out = NULL;
    ff_report *r = calloc(1, sizeof *r);
    if (!r || !(r->title = strdup(title ? title : "fedfuse evaluation"))) {
        free(r);
        return ff_error(FF_ENOMEM, "report: no memory");
    }
    *out = r;
    return FF_OK;
}

void ff_report_free(ff_report *rep)
{
    if (!rep)
        return;
    for (size_t i = 0; i < rep->nnotes; i++)
        free(rep->notes[i]);
    for (size_t i = 0; i < rep->ntasks; i++)
        free(rep->tasks[i]);
    free(rep->tasks);
    for (size_t i = 0; i < rep->ncols; i++)
        free(rep->cols[i].name);
    for (size_t i = 0; i < rep->nrounds; i++) {
        free(rep->rounds[i].label);
        free(rep->rounds[i].v);
    }
    free(rep->notes);
    free(rep->cols);
    free(rep->rounds);
    free(rep->title);
    free(rep);
}

int ff_report_add_note(ff_report *rep, const char *text)
{
    char **n = realloc(rep->notes, (rep->nnotes + 1) * sizeof *n);
    if (!n)
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->notes = n;
    if (!(n[rep->nnotes] = strdup(text)))
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->nnotes++;
    return FF_OK;
}

static int push_task(ff_report *rep, const char *name)
{
    char **t = realloc(rep->tasks, (rep->ntasks + 1) * sizeof *t);
    if (!t)
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->tasks = t;
    t[rep->ntasks] = NULL;
    if (name && !(t[rep->ntasks] = strdup(name)))
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->ntasks++;
    return FF_OK;
}

int ff_report_add_task(ff_report *rep, const char *name)
{
    return push_task(rep, name);
}

int ff_report_add_column(ff_report *rep, const char *name, const ff_eval_result *r,
                         const ff_eval_fairness *fair, size_t nfair)
{
    if (rep->ntasks == 0 && push_task(rep, NULL) != FF_OK)
        return FF_ENOMEM;
    ev_col *c = realloc(rep->cols, (rep->ncols + 1) * sizeof *c);
    if (!c)
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->cols = c;
    c[rep->ncols] = (ev_col){strdup(name), r, fair, nfair, rep->ntasks - 1};
    if (!c[rep->ncols].name)
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->ncols++;
    return FF_OK;
}

int ff_report_add_rounds(ff_report *rep, const char *label, const double *value, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(value[i]))
            return ff_error(FF_ENUMERIC, "report: series '%s': round %zu is not finite", label,
                            i + 1);
    ev_rounds *r = realloc(rep->rounds, (rep->nrounds + 1) * sizeof *r);
    if (!r)
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->rounds = r;
    ev_rounds *s = &r[rep->nrounds];
    s->label = strdup(label);
    s->v = malloc((n ? n : 1) * sizeof(double));
    s->n = n;
    if (!s->label || !s->v) {
        free(s->label);
        free(s->v);
        return ff_error(FF_ENOMEM, "report: no memory");
    }
    memcpy(s->v, value, n * sizeof(double));
    rep->nrounds++;
    return FF_OK;
}

static const char CSS[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
    "margin:24px;color:#222;max-width:1180px}"
    "h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px "
    "solid #ddd;padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}"
    "p.note{color:#555;font-size:13px;margin:2px 0}"
    "table{border-collapse:collapse;font-size:13px;margin:6px 0}"
    "th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f5f8}"
    ".ci{color:#666;font-size:11px}.na{color:#999;font-style:italic}"
    ".why{color:#999;font-size:11px;display:block}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}"
    "svg.chart{border:1px solid #e3e3e3;background:#fff}"
    "svg .grid{stroke:#eee;stroke-width:1}svg .frame{fill:none;stroke:#999;stroke-width:1}"
    "svg .diag{stroke:#bbb;stroke-dasharray:4 4}svg text{font-family:inherit}"
    "svg .ct{font-size:13px;font-weight:600}svg .tk{font-size:10px;fill:#444}"
    "svg .al{font-size:11px;fill:#333}svg .lg{font-size:11px}svg .na{font-size:10px;fill:#999}"
    "footer{margin-top:30px;color:#777;font-size:12px}";

static void section(ev_sb *b, const char *title, const char *task)
{
    ev_sb_printf(b, "<h2>%s", title);
    if (task) {
        ev_sb_printf(b, " &mdash; task ");
        ev_sb_puts_html(b, task);
    }
    ev_sb_printf(b, "</h2>");
}

static void cell(ev_sb *b, const ff_metric *m, int digits)
{
    ev_sb_printf(b, "<td>");
    if (m->defined) {
        ev_sb_printf(b, "%.*f", digits, m->value);
        if (m->has_ci) {
            ev_sb_printf(b, "<span class=\"ci\"> (");
            ev_sb_printf(b, "%.*f", digits, m->lo);
            ev_sb_printf(b, "&ndash;");
            ev_sb_printf(b, "%.*f", digits, m->hi);
            ev_sb_printf(b, ")</span>");
        }
    } else {
        ev_sb_printf(b, "<span class=\"na\">undefined</span><span class=\"why\">");
        ev_sb_puts_html(b, m->why ? m->why : "");
        ev_sb_printf(b, "</span>");
    }
    ev_sb_printf(b, "</td>");
}

typedef struct {
    const char *label;
    size_t off;
    int digits;
} ev_row;

static void headline(ev_sb *b, const ev_col *cols, size_t ncols, const char *task)
{
    static const ev_row rows[] = {
        {"AUROC", offsetof(ff_eval_result, auroc), 3},
        {"AUPRC (average precision)", offsetof(ff_eval_result, auprc), 3},
        {"Sensitivity at 90% specificity", offsetof(ff_eval_result, sens_at_spec), 3},
        {"Specificity at 90% sensitivity", offsetof(ff_eval_result, spec_at_sens), 3},
        {"Brier score", offsetof(ff_eval_result, brier), 4},
        {"Expected calibration error", offsetof(ff_eval_result, ece), 4},
        {"Calibration slope", offsetof(ff_eval_result, cal_slope), 3},
        {"Calibration intercept", offsetof(ff_eval_result, cal_intercept), 3},
        {"Alert rate at threshold", offsetof(ff_eval_result, alert_rate), 3},
        {"PPV at threshold", offsetof(ff_eval_result, ppv), 3},
        {"Sensitivity at threshold", offsetof(ff_eval_result, sensitivity), 3},
        {"Specificity at threshold", offsetof(ff_eval_result, specificity), 3},
    };
    section(b, "Headline metrics", task);
    ev_sb_printf(b, "<table><tr><th>metric</th>");
    for (size_t c = 0; c < ncols; c++) {
        ev_sb_printf(b, "<th>");
        ev_sb_puts_html(b, cols[c].name);
        ev_sb_printf(b, "</th>");
    }
    ev_sb_printf(b, "</tr><tr><td>patients (positives)</td>");
    for (size_t c = 0; c < ncols; c++)
        ev_sb_printf(b, "<td>%zu (%zu)</td>", cols[c].r->n, cols[c].r->n_pos);
    ev_sb_printf(b, "</tr><tr><td>operating threshold</td>");
    for (size_t c = 0; c < ncols; c++)
        ev_sb_printf(b, "<td>%g</td>", cols[c].r->threshold);
    ev_sb_printf(b, "</tr>");
    for (size_t i = 0; i < FF_ARRAY_LEN(rows); i++) {
        ev_sb_printf(b, "<tr><td>%s</td>", rows[i].label);
        for (size_t c = 0; c < ncols; c++)
            cell(b, (const ff_metric *)(const void *)((const char *)cols[c].r + rows[i].off),
                 rows[i].digits);
        ev_sb_printf(b, "</tr>");
    }
    ev_sb_printf(b, "</table><p class=\"note\">Intervals in parentheses: bootstrap 95%% "
                    "percentile intervals (when requested).</p>\n");
}

static void curves(ev_sb *b, const ev_col *cols, size_t n, const char *task)
{
    ev_series *s = calloc(n * 2 + 2, sizeof *s);
    if (!s) {
        b->oom = 1;
        return;
    }
    section(b, "Discrimination", task);
    ev_sb_printf(b, "<div class=\"charts\">");
    for (size_t c = 0; c < n; c++)
        s[c] = (ev_series){cols[c].name, cols[c].r->roc.x, cols[c].r->roc.y,
                           cols[c].r->roc.n, 0, 0};
    ev_svg_lines(b, "ROC curve", "1 - specificity (false positive rate)",
                 "sensitivity (true positive rate)", 0, 1, 0, 1, s, n, 1, EV_LEGEND_BR);
    for (size_t c = 0; c < n; c++)
        s[c] = (ev_series){cols[c].name, cols[c].r->pr.x, cols[c].r->pr.y,
                           cols[c].r->pr.n, 0, 0};
    ev_svg_lines(b, "Precision-recall curve", "recall (sensitivity)", "precision (PPV)", 0, 1,
                 0, 1, s, n, 0, EV_LEGEND_BL);
    ev_sb_printf(b, "</div>");
    section(b, "Calibration", task);
    ev_sb_printf(b, "<div class=\"charts\">");
    /* reliability: only bins holding predictions, as sklearn's calibration_curve */
    size_t total = 1, used = 0;
    for (size_t c = 0; c < n; c++)
        total += 2 * (size_t)cols[c].r->rel.nbins;
    double *buf = calloc(total, sizeof(double));
    for (size_t c = 0; buf && c < n; c++) {
        const ff_reliability *rel = &cols[c].r->rel;
        double *x = buf + used, *y = x + rel->nbins;
        size_t k = 0;
        for (int i = 0; i < rel->nbins; i++)
            if (rel->count[i] > 0) {
                x[k] = rel->mean_pred[i];
                y[k++] = rel->frac_pos[i];
            }
        used += 2 * (size_t)rel->nbins;
        s[c] = (ev_series){cols[c].name, x, y, k, 0, 1};
    }
    if (buf)
        ev_svg_lines(b, "Reliability diagram", "mean predicted probability (per bin)",
                     "observed fraction positive", 0, 1, 0, 1, s, n, 1, EV_LEGEND_TL);
    free(buf);
    ev_sb_printf(b, "</div>");
    section(b, "Clinical utility: decision curves", task);
    ev_sb_printf(b, "<div class=\"charts\">");
    double ymax = 0.01;
    for (size_t c = 0; c < n; c++) {
        const ff_dca *d = &cols[c].r->dca;
        for (size_t i = 0; i < d->n; i++)
            ymax = fmax(ymax, fmax(d->model[i], d->treat_all[i]));
    }
    size_t k = 0;
    for (size_t c = 0; c < n; c++) {
        const ff_dca *d = &cols[c].r->dca;
        s[k++] = (ev_series){cols[c].name, d->t, d->model, d->n, 0, 0};
    }
    const ff_dca *d0 = &cols[0].r->dca;
    s[k++] = (ev_series){n > 1 ? "treat all (first column)" : "treat all", d0->t,
                         d0->treat_all, d0->n, 1, 0};
    static const double zx[2] = {0, 1}, zy[2] = {0, 0};
    s[k++] = (ev_series){"treat none", zx, zy, 2, 1, 0};
    ymax = ceil(ymax * 1.1 / 0.05) * 0.05; /* round axes so the ticks read well */
    ev_svg_lines(b, "Decision curve", "threshold probability", "net benefit", 0, 1,
                 -0.25 * ymax, ymax, s, k, 0, EV_LEGEND_TR);
    ev_sb_printf(b, "</div>\n");
    free(s);
}

static void fairness_block(ev_sb *b, const char *col, const ff_eval_fairness *f)
{
    static const ev_row rows[] = {
        {"AUROC", offsetof(ff_eval_subgroup, auroc), 3},
        {"AUPRC", offsetof(ff_eval_subgroup, auprc), 3},
        {"Brier", offsetof(ff_eval_subgroup, brier), 4},
        {"ECE", offsetof(ff_eval_subgroup, ece), 4},
        {"mean score", offsetof(ff_eval_subgroup, mean_score), 3},
        {"prevalence", offsetof(ff_eval_subgroup, prevalence), 3},
        {"alert rate", offsetof(ff_eval_subgroup, alert_rate), 3},
        {"TPR", offsetof(ff_eval_subgroup, sensitivity), 3},
        {"FPR", offsetof(ff_eval_subgroup, fpr), 3},
        {"PPV", offsetof(ff_eval_subgroup, ppv), 3},
    };
    ev_sb_printf(b, "<h3>");
    ev_sb_puts_html(b, f->attribute);
    ev_sb_printf(b, " &mdash; ");
    ev_sb_puts_html(b, col);
    ev_sb_printf(b, "</h3><table><tr><th>subgroup</th><th>n (pos)</th>");
    for (size_t i = 0; i < FF_ARRAY_LEN(rows); i++)
        ev_sb_printf(b, "<th>%s</th>", rows[i].label);
    ev_sb_printf(b, "</tr>");
    for (size_t l = 0; l < f->nlevels; l++) {
        ev_sb_printf(b, "<tr><td>");
        ev_sb_puts_html(b, f->levels[l].name);
        ev_sb_printf(b, "</td><td>%zu (%zu)</td>", f->levels[l].n, f->levels[l].n_pos);
        for (size_t i = 0; i < FF_ARRAY_LEN(rows); i++)
            cell(b, (const ff_metric *)(const void *)((const char *)&f->levels[l] + rows[i].off),
                 rows[i].digits);
        ev_sb_printf(b, "</tr>");
    }
    ev_sb_printf(b, "</table><table><tr><th>gap at the operating threshold</th><th>value</th>"
                    "</tr><tr><td>demographic parity difference (alert rate)</td>");
    cell(b, &f->dp_diff, 3);
    ev_sb_printf(b, "</tr><tr><td>equalized odds difference (max of TPR, FPR gaps)</td>");
    cell(b, &f->eo_diff, 3);
    ev_sb_printf(b, "</tr><tr><td>TPR gap</td>");
    cell(b, &f->tpr_gap, 3);
    ev_sb_printf(b, "</tr><tr><td>FPR gap</td>");
    cell(b, &f->fpr_gap, 3);
    ev_sb_printf(b, "</tr></table><div class=\"charts\">");
    const char **names = calloc(f->nlevels + 1, sizeof *names);
    ff_metric *v = calloc(f->nlevels + 1, sizeof *v);
    if (names && v) {
        for (size_t l = 0; l < f->nlevels; l++) {
            names[l] = f->levels[l].name;
            v[l] = f->levels[l].auroc;
        }
        ev_svg_bars(b, "AUROC by subgroup", names, v, f->nlevels, 0, 1);
        double hi = 0.05;
        for (size_t l = 0; l < f->nlevels; l++) {
            v[l] = f->levels[l].alert_rate;
            if (v[l].defined)
                hi = fmax(hi, v[l].value);
        }
        ev_svg_bars(b, "Alert rate by subgroup", names, v, f->nlevels, 0, fmin(1, hi * 1.15));
        for (size_t l = 0; l < f->nlevels; l++)
            v[l] = f->levels[l].ece;
        ev_svg_bars(b, "ECE by subgroup", names, v, f->nlevels, 0, 0.25);
    } else {
        b->oom = 1;
    }
    free(names);
    free(v);
    ev_sb_printf(b, "</div>\n");
}

static void rounds(ev_sb *b, const ff_report *rep)
{
    ev_series *s = calloc(rep->nrounds, sizeof *s);
    size_t maxn = 1;
    for (size_t i = 0; i < rep->nrounds; i++)
        maxn = rep->rounds[i].n > maxn ? rep->rounds[i].n : maxn;
    double *x = malloc(maxn * sizeof(double));
    if (!s || !x) {
        b->oom = 1;
        goto out;
    }
    for (size_t i = 0; i < maxn; i++)
        x[i] = (double)(i + 1);
    double lo = 1, hi = 0;
    for (size_t i = 0; i < rep->nrounds; i++) {
        s[i] = (ev_series){rep->rounds[i].label, x, rep->rounds[i].v, rep->rounds[i].n, 0, 1};
        for (size_t j = 0; j < rep->rounds[i].n; j++) {
            lo = fmin(lo, rep->rounds[i].v[j]);
            hi = fmax(hi, rep->rounds[i].v[j]);
        }
    }
    if (hi <= lo) {
        lo -= 0.05;
        hi += 0.05;
    }
    double pad = 0.08 * (hi - lo);
    ev_sb_printf(b, "<h2>Federated rounds</h2><div class=\"charts\">");
    double xmax = 5 * ceil((double)maxn / 5); /* integer ticks: 0, xmax/5, ... */
    ev_svg_lines(b, "Metric per round", "round", "value", 0, xmax,
                 lo - pad, hi + pad, s, rep->nrounds, 0, EV_LEGEND_BR);
    ev_sb_printf(b, "</div>\n");
out:
    free(s);
    free(x);
}

int ff_report_write(const ff_report *rep, const char *path)
{
    if (rep->ncols == 0)
        return ff_error(FF_EINVAL, "%s: report has no columns", path);
    ev_sb b = {0};
    ev_sb_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    ev_sb_puts_html(&b, rep->title);
    ev_sb_printf(&b, "</title><style>%s</style></head><body><h1>", CSS);
    ev_sb_puts_html(&b, rep->title);
    ev_sb_printf(&b, "</h1>");
    for (size_t i = 0; i < rep->nnotes; i++) {
        ev_sb_printf(&b, "<p class=\"note\">");
        ev_sb_puts_html(&b, rep->notes[i]);
        ev_sb_printf(&b, "</p>");
    }
    ev_col *view = malloc(rep->ncols * sizeof *view);
    for (size_t t = 0; view && t < rep->ntasks; t++) {
        size_t n = 0;
        for (size_t c = 0; c < rep->ncols; c++)
            if (rep->cols[c].task == t)
                view[n++] = rep->cols[c];
        if (n == 0)
            continue;
        headline(&b, view, n, rep->tasks[t]);
        curves(&b, view, n, rep->tasks[t]);
        int any = 0;
        for (size_t c = 0; c < n; c++)
            any |= view[c].nfair > 0;
        if (any)
            section(&b, "Subgroups and fairness", rep->tasks[t]);
        for (size_t c = 0; c < n; c++)
            for (size_t i = 0; i < view[c].nfair; i++)
                fairness_block(&b, view[c].name, &view[c].fair[i]);
    }
    if (!view)
        b.oom = 1;
    free(view);
    if (rep->nrounds > 0)
        rounds(&b, rep);
    ev_sb_printf(&b, "<footer>Generated by fedfuse %s. Definitions of every metric: "
                     "docs/evaluation.md. Undefined metrics are shown with their reason."
                     "</footer></body></html>\n", FF_VERSION);
    int rc;
    if (b.oom)
        rc = ff_error(FF_ENOMEM, "%s: no memory to build the report", path);
    else
        rc = ff_file_write_atomic(path, b.buf, b.len, 0644);
    free(b.buf);
    return rc;
}
