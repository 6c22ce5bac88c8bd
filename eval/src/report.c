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

typedef struct {
    char *name; /* NULL: the implicit task of a single-task report */
    char **notes;
    size_t nnotes;
} ev_task;

struct ff_report {
    char *title;
    char **notes;
    size_t nnotes;
    size_t min_pos; /* a column with fewer positives gets a warning at the threshold */
    ev_task *tasks;
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
    r->min_pos = 10;
    *out = r;
    return FF_OK;
}

void ff_report_free(ff_report *rep)
{
    if (!rep)
        return;
    for (size_t i = 0; i < rep->nnotes; i++)
        free(rep->notes[i]);
    for (size_t i = 0; i < rep->ntasks; i++) {
        free(rep->tasks[i].name);
        for (size_t k = 0; k < rep->tasks[i].nnotes; k++)
            free(rep->tasks[i].notes[k]);
        free(rep->tasks[i].notes);
    }
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

static int push_note(char ***notes, size_t *n, const char *text)
{
    char **p = realloc(*notes, (*n + 1) * sizeof *p);
    if (!p)
        return ff_error(FF_ENOMEM, "report: no memory");
    *notes = p;
    if (!(p[*n] = strdup(text)))
        return ff_error(FF_ENOMEM, "report: no memory");
    (*n)++;
    return FF_OK;
}

int ff_report_add_note(ff_report *rep, const char *text)
{
    return push_note(&rep->notes, &rep->nnotes, text);
}

static int push_task(ff_report *rep, const char *name)
{
    ev_task *t = realloc(rep->tasks, (rep->ntasks + 1) * sizeof *t);
    if (!t)
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->tasks = t;
    memset(&t[rep->ntasks], 0, sizeof *t);
    if (name && !(t[rep->ntasks].name = strdup(name)))
        return ff_error(FF_ENOMEM, "report: no memory");
    rep->ntasks++;
    return FF_OK;
}

int ff_report_add_task(ff_report *rep, const char *name)
{
    return push_task(rep, name);
}

int ff_report_add_task_note(ff_report *rep, const char *text)
{
    if (rep->ntasks == 0 && push_task(rep, NULL) != FF_OK)
        return FF_ENOMEM;
    ev_task *t = &rep->tasks[rep->ntasks - 1];
    return push_note(&t->notes, &t->nnotes, text);
}

void ff_report_set_min_positives(ff_report *rep, size_t n)
{
    rep->min_pos = n;
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
    "margin:20px;color:#222;max-width:1340px}"
    "h1{font-size:22px;margin:0 0 6px}h2{font-size:19px;margin:30px 0 8px;border-bottom:2px "
    "solid #ccc;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}h4{font-size:13px;"
    "margin:12px 0 4px}p.note{color:#444;font-size:13px;margin:2px 0;max-width:1100px}"
    "p.task{font-size:14px;margin:4px 0}"
    "table{border-collapse:collapse;font-size:13px;margin:6px 0}"
    "th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f5f8;font-weight:600}"
    ".ci{color:#555;font-size:11px;display:block;white-space:nowrap}.na{color:#888;font-style:italic}"
    ".why{color:#888;font-size:11px;display:block;max-width:160px;white-space:normal}"
    ".warn{color:#a04000;font-size:12px;text-align:left;max-width:330px}"
    ".ok{color:#555;font-size:12px;text-align:left}"
    ".sw{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}"
    ".charts{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}"
    "svg.chart{border:1px solid #e3e3e3;background:#fff}"
    "svg .grid{stroke:#eee;stroke-width:1}svg .frame{fill:none;stroke:#999;stroke-width:1}"
    "svg .diag{stroke:#bbb;stroke-dasharray:4 4}svg text{font-family:inherit}"
    "svg .ct{font-size:13px;font-weight:600}svg .cs{font-size:11px;fill:#555}"
    "svg .tk{font-size:10px;fill:#444}svg .al{font-size:11px;fill:#333}"
    "svg .lg{font-size:11px;fill:#222}svg .na{font-size:10px;fill:#888}"
    "svg .whisker{stroke:#222;stroke-width:1.3;fill:none}"
    "details{margin:6px 0}summary{cursor:pointer;font-size:13px;color:#333}"
    "footer{margin-top:30px;color:#666;font-size:12px}";

static void cell_value(ff_sbuf *b, const ff_metric *m, int digits)
{
    if (m->defined) {
        ff_sbuf_printf(b, "%.*f", digits, m->value);
        if (m->has_ci)
            ff_sbuf_printf(b, "<span class=\"ci\">%.*f&ndash;%.*f</span>", digits, m->lo, digits,
                           m->hi);
    } else {
        ff_sbuf_printf(b, "<span class=\"na\">n/a</span><span class=\"why\">");
        ev_sb_puts_html(b, m->why ? m->why : "not computed");
        ff_sbuf_printf(b, "</span>");
    }
}

static void cell(ff_sbuf *b, const ff_metric *m, int digits)
{
    ff_sbuf_printf(b, "<td>");
    cell_value(b, m, digits);
    ff_sbuf_printf(b, "</td>");
}

typedef struct {
    const char *label;
    size_t off;
    int digits;
} ev_row;

static const ff_metric *metric_at(const void *base, size_t off)
{
    return (const ff_metric *)(const void *)((const char *)base + off);
}

static void col_name(ff_sbuf *b, const ev_col *c, size_t i)
{
    ff_sbuf_printf(b, "<td><span class=\"sw\" style=\"background:%s\"></span>", ev_colour(i));
    ev_sb_puts_html(b, c->name);
    ff_sbuf_printf(b, "</td>");
}

/* One row per column (pooled, then each site): the task's discrimination and calibration. */
static void metrics_table(ff_sbuf *b, const ev_col *cols, size_t n, int any_ci)
{
    static const ev_row rows[] = {
        {"AUROC", offsetof(ff_eval_result, auroc), 3},
        {"AUPRC", offsetof(ff_eval_result, auprc), 3},
        {"sensitivity at 90% spec.", offsetof(ff_eval_result, sens_at_spec), 3},
        {"specificity at 90% sens.", offsetof(ff_eval_result, spec_at_sens), 3},
        {"Brier score", offsetof(ff_eval_result, brier), 4},
        {"ECE", offsetof(ff_eval_result, ece), 4},
        {"calibration slope", offsetof(ff_eval_result, cal_slope), 2},
        {"calibration intercept", offsetof(ff_eval_result, cal_intercept), 2},
    };
    ff_sbuf_printf(b, "<h3>Discrimination and calibration</h3><table class=\"metrics\"><tr>"
                    "<th>site</th><th>patients (positives)</th>");
    for (size_t i = 0; i < FF_ARRAY_LEN(rows); i++)
        ff_sbuf_printf(b, "<th>%s</th>", rows[i].label);
    ff_sbuf_printf(b, "</tr>");
    for (size_t c = 0; c < n; c++) {
        ff_sbuf_printf(b, "<tr>");
        col_name(b, &cols[c], c);
        ff_sbuf_printf(b, "<td>%zu (%zu)</td>", cols[c].r->n, cols[c].r->n_pos);
        for (size_t i = 0; i < FF_ARRAY_LEN(rows); i++)
            cell(b, metric_at(cols[c].r, rows[i].off), rows[i].digits);
        ff_sbuf_printf(b, "</tr>");
    }
    ff_sbuf_printf(b, "</table><p class=\"note\">%s Calibration slope 1 and intercept 0 mean "
                    "calibrated; slope &lt; 1: predictions too extreme.</p>\n",
                 any_ci ? "Small numbers under a value: its 95% interval (bootstrap)."
                        : "No intervals: no bootstrap was requested.");
}

/* Threshold statistics per column, with a warning where they say little. */
static void threshold_table(ff_sbuf *b, const ev_col *cols, size_t n, size_t min_pos)
{
    static const ev_row rows[] = {
        {"alert rate", offsetof(ff_eval_result, alert_rate), 3},
        {"sensitivity", offsetof(ff_eval_result, sensitivity), 3},
        {"specificity", offsetof(ff_eval_result, specificity), 3},
        {"PPV", offsetof(ff_eval_result, ppv), 3},
    };
    ff_sbuf_printf(b, "<h3>At the operating threshold</h3><table class=\"op\"><tr><th>site</th>"
                    "<th>threshold</th>");
    for (size_t i = 0; i < FF_ARRAY_LEN(rows); i++)
        ff_sbuf_printf(b, "<th>%s</th>", rows[i].label);
    ff_sbuf_printf(b, "<th>reading</th></tr>");
    for (size_t c = 0; c < n; c++) {
        const ff_eval_result *r = cols[c].r;
        ff_sbuf_printf(b, "<tr>");
        col_name(b, &cols[c], c);
        ff_sbuf_printf(b, "<td>%.4g</td>", r->threshold);
        for (size_t i = 0; i < FF_ARRAY_LEN(rows); i++)
            cell(b, metric_at(r, rows[i].off), rows[i].digits);
        if (r->n_pos < min_pos)
            ff_sbuf_printf(b, "<td class=\"warn\">&#9888; only %zu positive%s (fewer than %zu): "
                            "sensitivity and PPV here say little</td>", r->n_pos,
                         r->n_pos == 1 ? "" : "s", min_pos);
        else if (r->sensitivity.defined && r->sensitivity.value == 0)
            ff_sbuf_printf(b, "<td class=\"warn\">&#9888; no positive patient is flagged at "
                            "this threshold</td>");
        else
            ff_sbuf_printf(b, "<td class=\"ok\">%zu positives</td>", r->n_pos);
        ff_sbuf_printf(b, "</tr>");
    }
    ff_sbuf_printf(b, "</table>\n");
}

static const char *subtitle(char *buf, size_t len, const ff_eval_result *r, const char *what,
                            const ff_metric *m)
{
    if (m && m->defined)
        snprintf(buf, len, "n=%zu, %zu positives, %s %.3f", r->n, r->n_pos, what, m->value);
    else
        snprintf(buf, len, "n=%zu, %zu positives", r->n, r->n_pos);
    return buf;
}

enum { CH_ROC, CH_PR, CH_REL, CH_DCA, CH_COUNT };
#define FF_EVAL_MAX_BINS 1000 /* the CLI's --bins limit; a report shows at most this many */

/* The reliability points of r (bins holding predictions) into x, y and their tooltips. */
static size_t reliability_points(const ff_eval_result *r, double *x, double *y, char (*tip)[96],
                                 const char **tips)
{
    size_t k = 0;
    for (int i = 0; i < r->rel.nbins; i++) {
        if (r->rel.count[i] <= 0)
            continue;
        x[k] = r->rel.mean_pred[i];
        y[k] = r->rel.frac_pos[i];
        snprintf(tip[k], 96, "scores %.2f-%.2f: %.0f patients, predicted %.3f, observed %.3f",
                 (double)i / r->rel.nbins, (double)(i + 1) / r->rel.nbins, r->rel.count[i], x[k],
                 y[k]);
        tips[k] = tip[k];
        k++;
    }
    return k;
}

/* One panel of chart kind ch for column c; the pooled column (0) drawn thin and grey behind
 * a site's curve as the reference. */
static void one_panel(ff_sbuf *b, const ev_col *cols, size_t c, int ch, double dmax)
{
    const ff_eval_result *r = cols[c].r, *p0 = cols[0].r;
    char sub[160], name[200], ref[200];
    ev_series s[4];
    size_t ns = 0;
    ev_panel pn = {.title = cols[c].name, .x0 = 0, .x1 = 1, .y0 = 0, .y1 = 1};
    int ref_on = c > 0;
    snprintf(ref, sizeof ref, "%s (reference)", cols[0].name);
    if (ch == CH_ROC) {
        pn.subtitle = subtitle(sub, sizeof sub, r, "AUROC", &r->auroc);
        pn.xlabel = "1 - specificity";
        pn.ylabel = "sensitivity";
        pn.diagonal = 1;
        snprintf(name, sizeof name, "%s: ROC", cols[c].name);
        s[ns++] = (ev_series){name, r->roc.x, r->roc.y, r->roc.n, EV_SOLID, 0, ev_colour(c),
                              sub, NULL};
        if (ref_on)
            s[ns++] = (ev_series){ref, p0->roc.x, p0->roc.y, p0->roc.n, EV_REFERENCE, 0,
                                  "#999999", NULL, NULL};
    } else if (ch == CH_PR) {
        pn.subtitle = subtitle(sub, sizeof sub, r, "AUPRC", &r->auprc);
        pn.xlabel = "recall (sensitivity)";
        pn.ylabel = "precision (PPV)";
        snprintf(name, sizeof name, "%s: precision-recall", cols[c].name);
        s[ns++] = (ev_series){name, r->pr.x, r->pr.y, r->pr.n, EV_SOLID, 0, ev_colour(c), sub,
                              NULL};
        if (ref_on)
            s[ns++] = (ev_series){ref, p0->pr.x, p0->pr.y, p0->pr.n, EV_REFERENCE, 0, "#999999",
                                  NULL, NULL};
    } else if (ch == CH_REL) {
        double x[FF_EVAL_MAX_BINS], y[FF_EVAL_MAX_BINS];
        char(*tip)[96] = malloc(FF_EVAL_MAX_BINS * sizeof *tip);
        const char **tips = malloc(FF_EVAL_MAX_BINS * sizeof *tips);
        if (!tip || !tips) {
            b->oom = 1;
            free(tip);
            free(tips);
            return;
        }
        pn.subtitle = subtitle(sub, sizeof sub, r, "ECE", &r->ece);
        pn.xlabel = "mean predicted risk (bin)";
        pn.ylabel = "observed fraction";
        pn.diagonal = 1;
        size_t k = r->rel.nbins <= FF_EVAL_MAX_BINS ? reliability_points(r, x, y, tip, tips) : 0;
        snprintf(name, sizeof name, "%s: observed vs predicted", cols[c].name);
        s[ns++] = (ev_series){name, x, y, k, EV_SOLID, 1, ev_colour(c), sub, tips};
        static const double dx[2] = {0, 1};
        s[ns++] = (ev_series){"perfect calibration", dx, dx, 2, EV_DOTTED, 0, "#999999", NULL,
                              NULL};
        ev_svg_panel(b, &pn, s, ns);
        free(tip);
        free(tips);
        return;
    } else {
        static const double zx[2] = {0, 1}, zy[2] = {0, 0};
        pn.subtitle = subtitle(sub, sizeof sub, r, NULL, NULL);
        pn.xlabel = "threshold probability";
        pn.ylabel = "net benefit";
        pn.y0 = -0.25 * dmax;
        pn.y1 = dmax;
        snprintf(name, sizeof name, "%s: model", cols[c].name);
        s[ns++] = (ev_series){name, r->dca.t, r->dca.model, r->dca.n, EV_SOLID, 0, ev_colour(c),
                              sub, NULL};
        s[ns++] = (ev_series){"treat all", r->dca.t, r->dca.treat_all, r->dca.n, EV_DASHED, 0,
                              "#777777", NULL, NULL};
        s[ns++] = (ev_series){"treat none", zx, zy, 2, EV_DOTTED, 0, "#777777", NULL, NULL};
    }
    ev_svg_panel(b, &pn, s, ns);
}

/* Small multiples: one row per chart kind, one panel per column, same axes in a row. */
static void curves(ff_sbuf *b, const ev_col *cols, size_t n)
{
    static const char *const heads[CH_COUNT] = {
        "ROC curves", "Precision-recall curves", "Calibration (reliability)",
        "Clinical utility: decision curves"};
    double dmax = 0.01;
    for (size_t c = 0; c < n; c++)
        for (size_t i = 0; i < cols[c].r->dca.n; i++)
            dmax = fmax(dmax, fmax(cols[c].r->dca.model[i], cols[c].r->dca.treat_all[i]));
    dmax = ceil(dmax * 1.1 / 0.05) * 0.05; /* round so the ticks read well */
    for (int ch = 0; ch < CH_COUNT; ch++) {
        ff_sbuf_printf(b, "<h3>%s</h3><div class=\"charts\">", heads[ch]);
        for (size_t c = 0; c < n; c++)
            one_panel(b, cols, c, ch, dmax);
        ff_sbuf_printf(b, "</div>\n");
    }
}

static const ev_row level_rows[] = {
    {"AUROC", offsetof(ff_eval_subgroup, auroc), 3},
    {"AUPRC", offsetof(ff_eval_subgroup, auprc), 3},
    {"ECE", offsetof(ff_eval_subgroup, ece), 3},
    {"mean risk", offsetof(ff_eval_subgroup, mean_score), 3},
    {"prevalence", offsetof(ff_eval_subgroup, prevalence), 3},
    {"alert rate", offsetof(ff_eval_subgroup, alert_rate), 3},
    {"TPR", offsetof(ff_eval_subgroup, sensitivity), 3},
    {"FPR", offsetof(ff_eval_subgroup, fpr), 3},
    {"PPV", offsetof(ff_eval_subgroup, ppv), 3},
};

static int suppressed(const ff_eval_subgroup *g)
{
    return g->site_suppressed > 0 ||
           (!g->auroc.defined && g->auroc.why && strcmp(g->auroc.why, FF_EVAL_SUPPRESSED) == 0);
}

/* Where the subgroup was suppressed: at the site (nothing of it was sent) or here. */
static void suppressed_cell(ff_sbuf *b, const ff_eval_subgroup *g, int pooled)
{
    ff_sbuf_printf(b, "</td><td colspan=\"%zu\" class=\"ok\">", FF_ARRAY_LEN(level_rows) + 1);
    if (g->site_suppressed > 0 && !pooled)
        ff_sbuf_printf(b, "suppressed at the site (n &lt; %lld)", (long long)g->site_min_cell);
    else if (g->site_suppressed > 0)
        ff_sbuf_printf(b, "suppressed at %d site%s (n &lt; %lld)", g->site_suppressed,
                       g->site_suppressed > 1 ? "s" : "", (long long)g->site_min_cell);
    else
        ff_sbuf_printf(b, "suppressed: fewer patients than the minimum cell size");
    ff_sbuf_printf(b, "</td></tr>");
}

static void levels_table(ff_sbuf *b, const ff_eval_fairness *f, int pooled)
{
    ff_sbuf_printf(b, "<table><tr><th>subgroup</th><th>patients (positives)</th>");
    for (size_t i = 0; i < FF_ARRAY_LEN(level_rows); i++)
        ff_sbuf_printf(b, "<th>%s</th>", level_rows[i].label);
    ff_sbuf_printf(b, "</tr>");
    for (size_t l = 0; l < f->nlevels; l++) {
        const ff_eval_subgroup *g = &f->levels[l];
        ff_sbuf_printf(b, "<tr><td>");
        ev_sb_puts_html(b, g->name);
        if (suppressed(g)) {
            suppressed_cell(b, g, pooled);
            continue;
        }
        ff_sbuf_printf(b, "</td><td>%zu (%zu)</td>", g->n, g->n_pos);
        for (size_t i = 0; i < FF_ARRAY_LEN(level_rows); i++)
            cell(b, metric_at(g, level_rows[i].off), level_rows[i].digits);
        ff_sbuf_printf(b, "</tr>");
    }
    ff_sbuf_printf(b, "</table>");
}

static void level_bars(ff_sbuf *b, const ff_eval_fairness *f, const char *attr_col)
{
    const char **names = calloc(f->nlevels + 1, sizeof *names);
    ff_metric *v = calloc(f->nlevels + 1, sizeof *v);
    if (!names || !v) {
        b->oom = 1;
        free(names);
        free(v);
        return;
    }
    char t[200];
    ff_sbuf_printf(b, "<div class=\"charts\">");
    for (size_t l = 0; l < f->nlevels; l++) {
        names[l] = f->levels[l].name;
        v[l] = f->levels[l].auroc;
    }
    snprintf(t, sizeof t, "AUROC by %s", attr_col);
    ev_svg_bars(b, t, names, v, f->nlevels, 0, 1, ev_colour(0));
    double hi = 0.05;
    for (size_t l = 0; l < f->nlevels; l++) {
        v[l] = f->levels[l].alert_rate;
        if (v[l].defined)
            hi = fmax(hi, v[l].has_ci ? v[l].hi : v[l].value);
    }
    snprintf(t, sizeof t, "Alert rate by %s", attr_col);
    ev_svg_bars(b, t, names, v, f->nlevels, 0, fmin(1, hi * 1.15), ev_colour(4));
    hi = 0.05;
    for (size_t l = 0; l < f->nlevels; l++) {
        v[l] = f->levels[l].ece;
        if (v[l].defined)
            hi = fmax(hi, v[l].has_ci ? v[l].hi : v[l].value);
    }
    snprintf(t, sizeof t, "ECE by %s", attr_col);
    ev_svg_bars(b, t, names, v, f->nlevels, 0, fmin(1, hi * 1.15), ev_colour(5));
    ff_sbuf_printf(b, "</div>");
    free(names);
    free(v);
}

/* Whether any column has a subgroup of attr that a site withheld. */
static int site_withheld(const ev_col *cols, size_t n, const char *attr)
{
    for (size_t c = 0; c < n; c++)
        for (size_t k = 0; k < cols[c].nfair; k++)
            for (size_t l = 0; strcmp(cols[c].fair[k].attribute, attr) == 0 &&
                               l < cols[c].fair[k].nlevels; l++)
                if (cols[c].fair[k].levels[l].site_suppressed > 0)
                    return 1;
    return 0;
}

/* Per attribute: the first column's subgroups (table and bars), every column's gaps, the
 * other columns' subgroup tables folded away. */
static void fairness(ff_sbuf *b, const ev_col *cols, size_t n)
{
    const ev_col *first = NULL;
    for (size_t c = 0; c < n && !first; c++)
        first = cols[c].nfair > 0 ? &cols[c] : NULL;
    if (!first)
        return;
    ff_sbuf_printf(b, "<h3>Subgroups and fairness</h3>");
    for (size_t a = 0; a < first->nfair; a++) {
        const char *attr = first->fair[a].attribute;
        ff_sbuf_printf(b, "<h4>");
        ev_sb_puts_html(b, attr);
        ff_sbuf_printf(b, " &mdash; ");
        ev_sb_puts_html(b, first->name);
        ff_sbuf_printf(b, "</h4>");
        levels_table(b, &first->fair[a], strcmp(first->name, "pooled") == 0);
        if (first->fair[a].note) {
            ff_sbuf_printf(b, "<p class=\"note\">");
            ev_sb_puts_html(b, first->fair[a].note);
            ff_sbuf_printf(b, "</p>");
        }
        level_bars(b, &first->fair[a], attr);
        ff_sbuf_printf(b, "<table><tr><th>site</th><th>demographic parity difference</th>"
                        "<th>equalized odds difference</th><th>TPR gap</th><th>FPR gap</th>"
                        "<th>subgroups suppressed</th></tr>");
        for (size_t c = 0; c < n; c++)
            for (size_t k = 0; k < cols[c].nfair; k++) {
                const ff_eval_fairness *f = &cols[c].fair[k];
                if (strcmp(f->attribute, attr) != 0)
                    continue;
                size_t sup = 0;
                for (size_t l = 0; l < f->nlevels; l++)
                    sup += (size_t)suppressed(&f->levels[l]);
                ff_sbuf_printf(b, "<tr>");
                col_name(b, &cols[c], c);
                cell(b, &f->dp_diff, 3);
                cell(b, &f->eo_diff, 3);
                cell(b, &f->tpr_gap, 3);
                cell(b, &f->fpr_gap, 3);
                ff_sbuf_printf(b, "<td>%zu of %zu</td></tr>", sup, f->nlevels);
            }
        ff_sbuf_printf(b, "</table><p class=\"note\">Gaps: max &minus; min over the subgroups at "
                        "the operating threshold (alert rate; TPR and FPR, equalized odds = the "
                        "larger), suppressed subgroups left out.");
        if (site_withheld(cols, n, attr))
            ff_sbuf_printf(b, " Suppressed at the site: the hospital did not send that subgroup's "
                            "histogram, because its patients (or, by the default policy, its "
                            "positives or negatives) numbered fewer than the hospital's minimum "
                            "cell size (n &lt; the number shown), or along with such a subgroup, so that it cannot be "
                            "recovered by subtraction from the hospital's total.");
        ff_sbuf_printf(b, "</p>");
        int others = 0;
        for (size_t c = 0; c < n; c++)
            others |= &cols[c] != first && cols[c].nfair > 0;
        if (!others)
            continue;
        ff_sbuf_printf(b, "<details><summary>subgroup tables of each site (");
        ev_sb_puts_html(b, attr);
        ff_sbuf_printf(b, ")</summary>");
        for (size_t c = 0; c < n; c++)
            for (size_t k = 0; &cols[c] != first && k < cols[c].nfair; k++)
                if (strcmp(cols[c].fair[k].attribute, attr) == 0) {
                    ff_sbuf_printf(b, "<h4>");
                    ev_sb_puts_html(b, cols[c].name);
                    ff_sbuf_printf(b, "</h4>");
                    levels_table(b, &cols[c].fair[k], strcmp(cols[c].name, "pooled") == 0);
                }
        ff_sbuf_printf(b, "</details>");
    }
}

static void rounds(ff_sbuf *b, const ff_report *rep)
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
        s[i] = (ev_series){rep->rounds[i].label, x, rep->rounds[i].v, rep->rounds[i].n,
                           EV_SOLID, 1, ev_colour(i + 1), rep->rounds[i].label, NULL};
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
    ev_panel pn = {.title = "Pooled test AUROC per round", .subtitle = "one curve per task",
                   .xlabel = "round", .ylabel = "AUROC", .x0 = 1, .x1 = (double)maxn,
                   .y0 = lo - pad, .y1 = hi + pad, .xticks = maxn <= 11 ? (int)maxn - 1 : 6,
                   .width = 520, .frame_height = 220};
    if (maxn < 2)
        pn.x0 = 0;
    ff_sbuf_printf(b, "<h2>Federated rounds</h2><div class=\"charts\">");
    ev_svg_panel(b, &pn, s, rep->nrounds);
    ff_sbuf_printf(b, "</div>\n");
out:
    free(s);
    free(x);
}

static void task_section(ff_sbuf *b, const ff_report *rep, const ev_task *t, const ev_col *view,
                         size_t n)
{
    if (t->name) {
        ff_sbuf_printf(b, "<h2>Task: ");
        ev_sb_puts_html(b, t->name);
        ff_sbuf_printf(b, "</h2>");
    }
    for (size_t i = 0; i < t->nnotes; i++) {
        ff_sbuf_printf(b, "<p class=\"task\">");
        ev_sb_puts_html(b, t->notes[i]);
        ff_sbuf_printf(b, "</p>");
    }
    int any_ci = 0;
    for (size_t c = 0; c < n; c++)
        any_ci |= view[c].r->auroc.has_ci;
    metrics_table(b, view, n, any_ci);
    threshold_table(b, view, n, rep->min_pos);
    curves(b, view, n);
    fairness(b, view, n);
}

int ff_report_write(const ff_report *rep, const char *path)
{
    if (rep->ncols == 0)
        return ff_error(FF_EINVAL, "%s: report has no columns", path);
    ff_sbuf b = {0};
    ff_sbuf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    ev_sb_puts_html(&b, rep->title);
    ff_sbuf_printf(&b, "</title><style>%s</style></head><body><h1>", CSS);
    ev_sb_puts_html(&b, rep->title);
    ff_sbuf_printf(&b, "</h1>");
    for (size_t i = 0; i < rep->nnotes; i++) {
        ff_sbuf_printf(&b, "<p class=\"note\">");
        ev_sb_puts_html(&b, rep->notes[i]);
        ff_sbuf_printf(&b, "</p>");
    }
    ev_col *view = malloc(rep->ncols * sizeof *view);
    for (size_t t = 0; view && t < rep->ntasks; t++) {
        size_t n = 0;
        for (size_t c = 0; c < rep->ncols; c++)
            if (rep->cols[c].task == t)
                view[n++] = rep->cols[c];
        if (n > 0)
            task_section(&b, rep, &rep->tasks[t], view, n);
    }
    if (!view)
        b.oom = 1;
    free(view);
    if (rep->nrounds > 0)
        rounds(&b, rep);
    ff_sbuf_printf(&b, "<footer>Generated by fedfuse %s. Definitions of every metric: "
                     "docs/evaluation.md. A metric that cannot be computed is shown as n/a "
                     "with its reason. Colours: Okabe&ndash;Ito (colour-blind safe); hover a "
                     "curve, point or bar for its values.</footer></body></html>\n", FF_VERSION);
    int rc;
    if (b.oom)
        rc = ff_error(FF_ENOMEM, "%s: no memory to build the report", path);
    else
        rc = ff_file_write_atomic(path, b.buf, b.len, 0644);
    free(b.buf);
    return rc;
}
