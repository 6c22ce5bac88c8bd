/* live.html: the operator's view of a running federation, kept current by the coordinator.
 *
 * Written (atomically: temp + fsync + rename, so a browser never reads half a page) when the
 * round or phase changes and when the run ends. It is built from two things the coordinator
 * already has: the status snapshot it answers `fedfuse status` with (sites, states, pending,
 * privacy) and rounds.csv (one fsynced line per finished round, so a restarted coordinator
 * shows the rounds before the restart too). It reloads itself every 5 s while the run goes on
 * (<meta http-equiv=refresh>; no script) and stops reloading when the run is done. Like
 * status, it holds no patient data: site names, counts, metrics of the pooled evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fed_internal.h"
#include "ff/data.h"

#define LIVE_MAX_ROUNDS 100000

typedef struct {
    long round, selected, updates, dropouts, refusals;
    double eval_loss, auroc, seconds;
} live_row;

typedef struct {
    live_row *rows;
    size_t n, cap;
    int col[8]; /* round selected updates dropouts refusals eval_loss pooled_auroc seconds */
} live_rounds;

static double field_num(const ff_csv_row *r, int c)
{
    if (c < 0 || c >= r->nfields || !r->fields[c][0])
        return NAN;
    char *end;
    double v = strtod(r->fields[c], &end);
    return *end ? NAN : v;
}

static int rounds_row(const ff_csv_row *r, void *ctx)
{
    live_rounds *lr = ctx;
    static const char *const names[8] = {"round",    "selected",  "updates",      "dropouts",
                                         "refusals", "eval_loss", "pooled_auroc", "seconds"};
    if (r->line == 1) {
        for (int k = 0; k < 8; k++) {
            lr->col[k] = -1;
            for (int c = 0; c < r->nfields; c++)
                if (strcmp(r->fields[c], names[k]) == 0)
                    lr->col[k] = c;
        }
        return FF_OK;
    }
    if (lr->n >= LIVE_MAX_ROUNDS)
        return FF_OK;
    if (ff_grow(&lr->rows, &lr->cap, lr->n + 1, sizeof *lr->rows) != FF_OK)
        return ff_error_prefix(FF_ENOMEM, "live view: ");
    live_row *w = &lr->rows[lr->n++];
    double v[8];
    for (int k = 0; k < 8; k++)
        v[k] = field_num(r, lr->col[k]);
    *w = (live_row){(long)v[0], (long)v[1], (long)v[2], (long)v[3], (long)v[4], v[5], v[6], v[7]};
    return FF_OK;
}

/* A small line chart (title, axes with min/max ticks, legend outside the plot). */
static void live_chart(FILE *f, const char *title, const char *ylabel, const live_rounds *lr,
                       int which, const char *colour, const char *legend)
{
    const int W = 420, H = 220, L = 56, R = 12, T = 30, B = 44;
    double y0 = INFINITY, y1 = -INFINITY;
    long x0 = lr->n ? lr->rows[0].round : 0, x1 = lr->n ? lr->rows[lr->n - 1].round : 1;
    for (size_t i = 0; i < lr->n; i++) {
        const live_row *r = &lr->rows[i];
        double v = which == 0 ? r->auroc : which == 1 ? r->eval_loss : r->updates;
        if (isfinite(v))
            y0 = fmin(y0, v), y1 = fmax(y1, v);
    }
    if (which == 2) /* counts of sites: from 0 to the most selected */
        for (size_t i = 0; i < lr->n; i++)
            y0 = 0, y1 = fmax(y1, (double)lr->rows[i].selected);
    if (!isfinite(y0))
        y0 = 0, y1 = 1;
    if (y1 - y0 < 1e-9)
        y0 -= 0.5, y1 += 0.5;
    if (x1 <= x0)
        x1 = x0 + 1;
    /* classes axis x / axis y / legend: what tests/pages/check_pages.py looks for */
    fprintf(f, "<figure><svg role=img width=%d height=%d viewBox=\"0 0 %d %d\"><title>%s</title>"
               "<text x=%d y=18 font-weight=bold>%s</text>"
               "<g class=\"axis x\"><line x1=%d y1=%d x2=%d y2=%d stroke=#333 />",
            W, H + 24, W, H + 24, title, L, title, L, H - B, W - R, H - B);
    fprintf(f, "<text x=%d y=%d font-size=11 text-anchor=middle>%ld</text><text x=%d y=%d "
               "font-size=11 text-anchor=middle>%ld</text><text x=%d y=%d font-size=12 "
               "text-anchor=middle>round</text></g><g class=\"axis y\"><line x1=%d y1=%d x2=%d "
               "y2=%d stroke=#333 /><text x=%d y=%d font-size=11 text-anchor=end>%.3g</text>"
               "<text x=%d y=%d font-size=11 text-anchor=end>%.3g</text>"
               "<text transform=\"translate(14,%d) rotate(-90)\" font-size=12 "
               "text-anchor=middle>%s</text></g>",
            L, H - B + 16, x0, W - R, H - B + 16, x1, (L + W - R) / 2, H - B + 32, L, T, L,
            H - B, L - 4, H - B + 4, y0, L - 4, T + 4, y1, (T + H - B) / 2, ylabel);
    fprintf(f, "<polyline fill=none stroke=\"%s\" stroke-width=2 points=\"", colour);
    for (size_t i = 0; i < lr->n; i++) {
        const live_row *r = &lr->rows[i];
        double v = which == 0 ? r->auroc : which == 1 ? r->eval_loss : r->updates;
        if (!isfinite(v))
            continue;
        double px = L + (double)(r->round - x0) / (double)(x1 - x0) * (W - L - R);
        double py = (H - B) - (v - y0) / (y1 - y0) * (H - B - T);
        fprintf(f, "%.1f,%.1f ", px, py);
    }
    fprintf(f, "\"><title>%s</title></polyline><g class=legend><rect x=%d y=%d width=14 "
               "height=4 fill=\"%s\" /><text x=%d y=%d font-size=12>%s</text></g></svg></figure>",
            legend, L, H + 8, colour, L + 20, H + 14, legend);
}

static void live_sites(FILE *f, const json_t *st)
{
    fputs("<table><caption>Sites</caption><tr><th>site</th><th>state</th><th>pending</th>"
          "<th>last seen</th><th>last error</th><th>not selected because</th></tr>", f);
    const char *name;
    json_t *s;
    json_t *unav = json_object_get(st, "not_selected");
    json_object_foreach(json_object_get(st, "site_status"), name, s) {
        json_t *seen = json_object_get(s, "last_seen_s");
        fputs("<tr><td>", f);
        ff_html_fputs(f, name);
        fputs("</td><td>", f);
        ff_html_fputs(f, json_string_value(json_object_get(s, "state")));
        fprintf(f, "</td><td>%s</td><td>", json_is_true(json_object_get(s, "pending")) ? "yes"
                                                                                       : "no");
        if (json_is_number(seen))
            fprintf(f, "%.0f s ago", json_number_value(seen));
        else
            fputs("never", f);
        fputs("</td><td>", f);
        ff_html_fputs(f, json_string_value(json_object_get(s, "error_code")));
        fputs("</td><td>", f);
        ff_html_fputs(f, json_string_value(json_object_get(unav, name)));
        fputs("</td></tr>", f);
    }
    fputs("</table>", f);
}

static void live_rounds_table(FILE *f, const live_rounds *lr)
{
    fputs("<table><caption>Finished rounds (rounds.csv)</caption><tr><th>round</th><th>selected"
          "</th><th>updates aggregated (secure-aggregation survivors)</th><th>dropouts</th>"
          "<th>refusals</th><th>pooled eval loss</th><th>pooled AUROC</th><th>seconds</th></tr>",
          f);
    size_t from = lr->n > 30 ? lr->n - 30 : 0; /* the last 30; the charts show them all */
    for (size_t i = lr->n; i-- > from;) {
        const live_row *r = &lr->rows[i];
        fprintf(f, "<tr><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td>", r->round,
                r->selected, r->updates, r->dropouts, r->refusals);
        if (isfinite(r->eval_loss))
            fprintf(f, "<td>%.4f</td>", r->eval_loss);
        else
            fputs("<td>not evaluated</td>", f);
        if (isfinite(r->auroc))
            fprintf(f, "<td>%.3f</td>", r->auroc);
        else
            fputs("<td>not evaluated</td>", f);
        fprintf(f, "<td>%.1f</td></tr>", isfinite(r->seconds) ? r->seconds : 0.0);
    }
    if (lr->n == 0)
        fputs("<tr><td colspan=8>no round finished yet</td></tr>", f);
    fputs("</table>", f);
}

static void live_privacy(FILE *f, const json_t *st)
{
    json_t *p = json_object_get(st, "privacy");
    if (!p) {
        fputs("<p><b>Privacy:</b> client-level differential privacy is off for this run.</p>",
              f);
        return;
    }
    double eps = json_number_value(json_object_get(p, "epsilon_spent"));
    double bud = json_number_value(json_object_get(p, "epsilon_budget"));
    double frac = bud > 0 ? fmin(1.0, eps / bud) : 0;
    fprintf(f, "<figure><svg role=img width=420 height=82 viewBox=\"0 0 420 82\"><title>"
               "Privacy spent against budget</title><text x=0 y=14 font-weight=bold>Privacy "
               "spent: &#949; %.3f of budget %.3g (&#948; %.1e)</text><g class=\"axis y\">"
               "<rect x=0 y=24 width=400 height=16 fill=#eee stroke=#999 /></g><rect x=0 y=24 "
               "width=%.1f height=16 fill=#D55E00 /><g class=\"axis x\"><text x=0 y=54 "
               "font-size=11>0</text><text x=400 y=54 font-size=11 text-anchor=end>budget "
               "%.3g</text></g><g class=legend><rect x=0 y=66 width=12 height=10 fill=#D55E00 />"
               "<text x=16 y=75 font-size=11>&#949; spent</text><rect x=90 y=66 width=12 "
               "height=10 fill=#eee stroke=#999 /><text x=106 y=75 font-size=11>rest of the "
               "budget</text></g></svg></figure>",
            eps, bud, json_number_value(json_object_get(p, "delta")), 400 * frac, bud);
}

int fed_live_write(const char *out_dir, const json_t *status)
{
    char path[FF_COORD_PATH_MAX + 32], csv[FF_COORD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/live.html", out_dir);
    snprintf(csv, sizeof csv, "%s/rounds.csv", out_dir);
    live_rounds lr = {0};
    FILE *probe = fopen(csv, "r"); /* no rounds.csv yet: no finished round */
    int rc = FF_OK;
    if (probe) {
        fclose(probe);
        rc = ff_csv_read(csv, csv, 0, rounds_row, &lr);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = rc == FF_OK ? open_memstream(&buf, &len) : NULL;
    if (rc == FF_OK && !f)
        rc = ff_error(FF_ENOMEM, "live view: out of memory");
    if (rc == FF_OK) {
        const char *phase = json_string_value(json_object_get(status, "phase"));
        int done = phase && strcmp(phase, "done") == 0;
        fprintf(f, "<!doctype html><html lang=en><head><meta charset=utf-8>%s<title>fedfuse "
                   "live: ", done ? "" : "<meta http-equiv=refresh content=5>");
        ff_html_fputs(f, json_string_value(json_object_get(status, "run")));
        fputs("</title><style>body{font-family:sans-serif;max-width:1300px;margin:16px auto;"
              "padding:0 12px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid "
              "#ccc;padding:3px 8px;text-align:left}caption{text-align:left;font-weight:bold}"
              ".charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}</style></head><body>"
              "<h1>Run ", f);
        ff_html_fputs(f, json_string_value(json_object_get(status, "run")));
        fprintf(f, ": round %lld of %lld, %s</h1><p>Phase <b>", 
                (long long)json_integer_value(json_object_get(status, "round")),
                (long long)json_integer_value(json_object_get(status, "rounds")),
                done ? "finished" : "running");
        ff_html_fputs(f, phase);
        fprintf(f, "</b> (attempt %lld); %zu finished round(s); %s</p>",
                (long long)json_integer_value(json_object_get(status, "attempt")), lr.n,
                done ? "this page no longer reloads." : "this page reloads every 5 s.");
        live_sites(f, status);
        live_privacy(f, status);
        fputs("<div class=charts>", f);
        live_chart(f, "Pooled test AUROC per round", "AUROC", &lr, 0, "#0072B2", "pooled AUROC");
        live_chart(f, "Pooled evaluation loss per round", "loss", &lr, 1, "#009E73",
                   "pooled eval loss");
        live_chart(f, "Updates aggregated per round", "sites", &lr, 2, "#E69F00",
                   "updates (survivors)");
        fputs("</div>", f);
        live_rounds_table(f, &lr);
        fputs("</body></html>\n", f);
        fclose(f);
        rc = ff_file_write_atomic(path, buf, len, 0644);
    }
    free(buf);
    free(lr.rows);
    return rc;
}
