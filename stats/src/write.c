/* stats.json and stats.html: what a statistics job released, for people and for programs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_internal.h"

#define esc ff_html_fputs

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void num(FILE *f, json_t *v)
{
    if (json_is_integer(v))
        fprintf(f, "%lld", (long long)json_integer_value(v));
    else if (json_is_number(v) && isfinite(json_number_value(v)))
        fprintf(f, "%.4g", json_number_value(v));
    else
        fputs("&ndash;", f);
}

/* The distinct values of key over results, in order of first appearance. */
static json_t *distinct(json_t *res, const char *key, const char *stat)
{
    json_t *out = json_array(), *o;
    size_t i;
    json_array_foreach(res, i, o)
    {
        if (stat && strcmp(str(o, "statistic"), stat) != 0)
            continue;
        const char *s = str(o, key);
        int seen = 0;
        json_t *x;
        size_t k;
        json_array_foreach(out, k, x) seen |= strcmp(json_string_value(x), s) == 0;
        if (!seen)
            json_array_append_new(out, json_string(s));
    }
    return out;
}

static int cmp_site(const void *a, const void *b)
{
    const char *x = json_string_value(*(json_t *const *)a), *y = json_string_value(*(json_t *const *)b);
    int px = strcmp(x, "pooled") == 0, py = strcmp(y, "pooled") == 0;
    return px != py ? py - px : strcmp(x, y);
}

/* The sites of the results: pooled first, then by name. */
static json_t *sites_of(json_t *res)
{
    json_t *d = distinct(res, "site", NULL), *out = json_array();
    size_t n = json_array_size(d);
    json_t **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(d, i);
    if (v)
        qsort(v, n, sizeof *v, cmp_site);
    for (size_t i = 0; v && i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    json_decref(d);
    return out;
}

static const char *const scalar_stats[] = {"count", "missing", "sum", "mean", "var", "sd",
                                           "q25", "q50", "q75"};

static void summary_table(FILE *f, json_t *res, json_t *sites)
{
    json_t *vars = distinct(res, "variable", NULL), *v;
    size_t i;
    fputs("<h2>Summary</h2>\n<table><tr><th>variable</th><th>site</th>", f);
    for (size_t k = 0; k < FF_ARRAY_LEN(scalar_stats); k++)
        fprintf(f, "<th>%s</th>", scalar_stats[k]);
    fputs("</tr>\n", f);
    json_array_foreach(vars, i, v)
    {
        json_t *s;
        size_t si;
        json_array_foreach(sites, si, s)
        {
            int any = 0;
            json_t *row[FF_ARRAY_LEN(scalar_stats)] = {0}, *o;
            size_t oi;
            json_array_foreach(res, oi, o)
            {
                if (strcmp(str(o, "variable"), json_string_value(v)) != 0 ||
                    strcmp(str(o, "site"), json_string_value(s)) != 0)
                    continue;
                for (size_t k = 0; k < FF_ARRAY_LEN(scalar_stats); k++)
                    if (strcmp(str(o, "statistic"), scalar_stats[k]) == 0) {
                        row[k] = o;
                        any = 1;
                    }
            }
            if (!any)
                continue;
            fputs("<tr><td>", f);
            esc(f, json_string_value(v));
            fputs("</td><td>", f);
            esc(f, json_string_value(s));
            fputs("</td>", f);
            for (size_t k = 0; k < FF_ARRAY_LEN(scalar_stats); k++) {
                fputs("<td>", f);
                num(f, row[k] ? json_object_get(row[k], "value") : NULL);
                if (row[k] && json_object_get(row[k], "bound")) {
                    fputs(" &plusmn; ", f);
                    num(f, json_object_get(row[k], "bound"));
                }
                fputs("</td>", f);
            }
            fputs("</tr>\n", f);
        }
    }
    fputs("</table>\n", f);
    json_decref(vars);
}

/* One bar chart (SVG) per variable and site: the released bins, labelled. */
/* One histogram as an SVG bar chart: title, a y axis (patients, 0 to the largest bin), the
 * bins' lower edges on the x axis, the count of each bar as its tooltip, and a legend that
 * says where suppressed bins went (they are absent, listed under "Suppressed cells"). */
static void hist_chart(FILE *f, const char *var, const char *site, json_t *bins, double top)
{
    size_t n = json_array_size(bins), oi;
    json_t *o;
    const double L = 54, T = 26, PH = 140, bw = fmin(60, 1000.0 / (double)n);
    double W = L + bw * (double)n + 20;
    fprintf(f, "<figure><svg width=\"%.0f\" height=\"%.0f\" role=\"img\"><title>", fmax(W, 380),
            T + PH + 62);
    esc(f, var);
    fputs(" &mdash; ", f);
    esc(f, site);
    fputs(": patients per bin</title><text x=\"0\" y=\"16\" font-weight=\"bold\">", f);
    esc(f, var);
    fputs(" &mdash; ", f);
    esc(f, site);
    fprintf(f, "</text><g class=\"axis y\"><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" "
               "y2=\"%.0f\" stroke=\"#333\"/><text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" "
               "text-anchor=\"end\">0</text><text x=\"%.0f\" y=\"%.0f\" font-size=\"10\" "
               "text-anchor=\"end\">%.0f</text><text transform=\"translate(12,%.0f) rotate(-90)\" "
               "font-size=\"11\" text-anchor=\"middle\">patients</text></g>",
            L - 2, T, L - 2, T + PH, L - 6, T + PH + 4, L - 6, T + 8, top, T + PH / 2);
    fprintf(f, "<g class=\"axis x\"><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
               "stroke=\"#333\"/>", L - 2, T + PH, L + bw * (double)n, T + PH);
    json_array_foreach(bins, oi, o)
    {
        json_t *bin = json_object_get(o, "bin");
        char label[64];
        if (bin && json_is_number(json_object_get(bin, "lo")))
            snprintf(label, sizeof label, "%g", json_number_value(json_object_get(bin, "lo")));
        else if (bin)
            snprintf(label, sizeof label, "<%g", json_number_value(json_object_get(bin, "hi")));
        else
            snprintf(label, sizeof label, "%s", str(o, "category"));
        if (n <= 24 || oi % (n / 12 + 1) == 0) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\">", L + bw * (double)oi,
                    T + PH + 14);
            esc(f, label);
            fputs("</text>", f);
        }
    }
    fputs("</g>", f);
    json_array_foreach(bins, oi, o)
    {
        double h = PH * (double)json_integer_value(json_object_get(o, "value")) / top;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#0072B2\">"
                   "<title>%lld patients</title></rect>",
                L + bw * (double)oi, T + PH - h, bw * 0.9, h,
                (long long)json_integer_value(json_object_get(o, "value")));
    }
    fprintf(f, "<g class=\"legend\"><rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"10\" "
               "fill=\"#0072B2\"/><text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">patients in the "
               "bin; no bar: none or suppressed (listed below)</text></g></svg></figure>\n",
            L, T + PH + 30, L + 16, T + PH + 39);
}

static void histograms(FILE *f, json_t *res, json_t *sites)
{
    json_t *vars = distinct(res, "variable", "hist"), *v;
    size_t i;
    if (json_array_size(vars))
        fputs("<h2>Histograms</h2>\n", f);
    json_array_foreach(vars, i, v)
    {
        json_t *s;
        size_t si;
        json_array_foreach(sites, si, s)
        {
            json_t *bins = json_array(), *o;
            size_t oi;
            double top = 1;
            json_array_foreach(res, oi, o) if (strcmp(str(o, "statistic"), "hist") == 0 &&
                                               strcmp(str(o, "variable"), json_string_value(v)) == 0 &&
                                               strcmp(str(o, "site"), json_string_value(s)) == 0)
            {
                json_array_append(bins, o);
                top = fmax(top, (double)json_integer_value(json_object_get(o, "value")));
            }
            size_t n = json_array_size(bins);
            if (n == 0) {
                json_decref(bins);
                continue;
            }
            hist_chart(f, json_string_value(v), json_string_value(s), bins, top);
            json_decref(bins);
        }
    }
    json_decref(vars);
}

static void crosstabs(FILE *f, json_t *res)
{
    json_t *o;
    size_t i;
    int any = 0;
    json_array_foreach(res, i, o)
    {
        if (strcmp(str(o, "statistic"), "crosstab") != 0)
            continue;
        if (!any++)
            fputs("<h2>Cross-tabulations</h2>\n<table><tr><th>variables</th><th>site</th><th>row</th>"
                  "<th>column</th><th>count</th></tr>\n", f);
        fputs("<tr><td>", f);
        esc(f, str(o, "variable"));
        fputs("</td><td>", f);
        esc(f, str(o, "site"));
        fputs("</td><td>", f);
        esc(f, str(o, "row"));
        fputs("</td><td>", f);
        esc(f, str(o, "col"));
        fputs("</td><td>", f);
        num(f, json_object_get(o, "value"));
        fputs("</td></tr>\n", f);
    }
    if (any)
        fputs("</table>\n", f);
}

/* Okabe-Ito (colour-blind safe), black first for the pooled curve. */
static const char *const colours[] = {"#000000", "#E69F00", "#56B4E9", "#009E73",
                                      "#D55E00", "#0072B2", "#CC79A7", "#F0E442"};

#define KM_W 900.0
#define KM_H 360.0
#define KM_L 50.0

static int is_step(json_t *o, const char *var, const char *site)
{
    return strcmp(str(o, "statistic"), "km") == 0 && strcmp(str(o, "variable"), var) == 0 &&
           strcmp(str(o, "site"), site) == 0;
}

/* One step path of a site's curve through the released steps: key = value, lower or upper
 * (the band, dashed). Returns the number of steps. */
static int km_path(FILE *f, json_t *res, const char *var, const char *site, const char *key,
                   const char *colour, double tmax)
{
    json_t *o;
    size_t i;
    int n = 0, band = strcmp(key, "value") != 0;
    fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s d=\"M%.1f 0", colour,
            band ? "0.8" : "1.6", band ? " stroke-dasharray=\"4 3\"" : "", KM_L);
    json_array_foreach(res, i, o)
    {
        if (!is_step(o, var, site))
            continue;
        double x = KM_L + KM_W * json_number_value(json_object_get(o, "time")) / tmax;
        double y = KM_H - KM_H * json_number_value(json_object_get(o, key));
        fprintf(f, " H%.1f V%.1f", x, y);
        n++;
    }
    fputs("\"/>", f);
    return n;
}

/* Kaplan–Meier step curves, one SVG per curve, a line per site; the pooled curve with its
 * 95% band (dashed). */
static void km_curves(FILE *f, json_t *res, json_t *sites)
{
    json_t *vars = distinct(res, "variable", "km"), *v;
    size_t i;
    if (json_array_size(vars))
        fputs("<h2>Kaplan&ndash;Meier</h2>\n", f);
    json_array_foreach(vars, i, v)
    {
        const char *var = json_string_value(v);
        double tmax = 1;
        json_t *o, *s;
        size_t oi, si;
        json_array_foreach(res, oi, o) if (strcmp(str(o, "statistic"), "km") == 0 &&
                                           strcmp(str(o, "variable"), var) == 0)
            tmax = fmax(tmax, json_number_value(json_object_get(o, "time")));
        fputs("<figure><figcaption>", f);
        esc(f, var);
        fprintf(f, ": survival against time (0 to %g); dashed: the pooled curve's 95%% band"
                   "</figcaption><svg width=\"%.0f\" height=\"%.0f\" role=\"img\"><title>",
                tmax, KM_W + KM_L + 200, KM_H + 60);
        esc(f, var);
        fputs(": Kaplan&ndash;Meier survival per site</title><g transform=\"translate(0,12)\">",
              f);
        fprintf(f, "<g class=\"axis x\"><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
                   "stroke=\"#888\"/>", KM_L, KM_H, KM_L + KM_W, KM_H);
        for (int k = 0; k <= 4; k++)
            fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%.0f</text>",
                    KM_L + KM_W * k / 4.0 - 8, KM_H + 16, tmax * k / 4.0);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\">time"
                   "</text></g>", KM_L + KM_W / 2, KM_H + 34);
        fprintf(f, "<g class=\"axis y\"><line x1=\"%.0f\" y1=\"0\" x2=\"%.0f\" y2=\"%.0f\" "
                   "stroke=\"#888\"/>", KM_L, KM_L, KM_H);
        for (int k = 0; k <= 4; k++)
            fprintf(f, "<text x=\"18\" y=\"%.0f\" font-size=\"11\">%.2f</text>",
                    KM_H - KM_H * k / 4.0 + 4, k / 4.0);
        fprintf(f, "<text transform=\"translate(10,%.0f) rotate(-90)\" font-size=\"12\" "
                   "text-anchor=\"middle\">survival</text></g><g class=\"legend\">", KM_H / 2);
        json_array_foreach(sites, si, s)
        {
            const char *col = colours[si % FF_ARRAY_LEN(colours)];
            fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                       "stroke-width=\"2\"/>", KM_L + KM_W + 10, KM_L + KM_W + 26,
                    16 + 16.0 * (double)si, 16 + 16.0 * (double)si, col);
        }
        fputs("</g>", f);
        json_array_foreach(sites, si, s)
        {
            const char *site = json_string_value(s), *col = colours[si % FF_ARRAY_LEN(colours)];
            int n = km_path(f, res, var, site, "value", col, tmax);
            if (n && strcmp(site, "pooled") == 0) {
                km_path(f, res, var, site, "lower", col, tmax);
                km_path(f, res, var, site, "upper", col, tmax);
            }
            fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" fill=\"%s\">", KM_L + KM_W + 30,
                    20 + 16.0 * (double)si, col);
            esc(f, site);
            fprintf(f, "%s</text>", n ? "" : " (no released steps)");
        }
        fputs("</g></svg></figure>\n", f);
    }
    json_decref(vars);
}

/* What was not released, by name (a site's small cell, or one protecting it). */
static void suppressed_table(FILE *f, json_t *sup)
{
    json_t *o;
    size_t i;
    if (!json_array_size(sup))
        return;
    fputs("<h2>Suppressed cells</h2>\n<table><tr><th>variable</th><th>site</th><th>statistic</th>"
          "<th>cell</th></tr>\n", f);
    json_array_foreach(sup, i, o)
    {
        static const char *const keys[] = {"variable", "site", "statistic", "cell"};
        fputs("<tr>", f);
        for (size_t k = 0; k < FF_ARRAY_LEN(keys); k++) {
            fputs("<td>", f);
            esc(f, str(o, keys[k]));
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

static int write_html(const char *path, json_t *doc)
{
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ff_error(FF_EIO, "%s: cannot write", tmp);
    json_t *res = json_object_get(doc, "results");
    json_t *sites = sites_of(res);
    fputs("<!doctype html><html><head><meta charset=\"utf-8\"><title>fedfuse statistics</title>"
          "<style>body{font-family:sans-serif;max-width:1360px;margin:1em auto;padding:0 1em}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
          "text-align:right}td:first-child,td:nth-child(2){text-align:left}figure{display:inline-block;"
          "margin:.5em}svg{max-width:100%;height:auto}code{word-break:break-all}</style></head><body>\n", f);
    fputs("<h1>Statistics: ", f);
    esc(f, str(doc, "query"));
    fputs("</h1>\n<p>Job <code>", f);
    esc(f, str(doc, "job"));
    fprintf(f, "</code>. %zu released numbers, %zu suppressed cells (below a site's minimum cell "
               "size, or protecting one).</p>\n",
            json_array_size(res), json_array_size(json_object_get(doc, "suppressed")));
    json_t *priv = json_object_get(doc, "privacy");
    if (json_is_true(json_object_get(priv, "enabled")))
        fprintf(f, "<p>Differential privacy: every number is noised at the sites (discrete "
                   "Gaussian shares under secure aggregation); the pooled release cost each "
                   "site &epsilon; = %.4g at &delta; = %g, a site's own results &epsilon; = "
                   "%.4g more. A <i>bound</i> holds except with probability 5.5e-7; var, sd, "
                   "quartiles and curves are computed from the noised numbers.</p>\n",
                json_number_value(json_object_get(priv, "epsilon")),
                json_number_value(json_object_get(priv, "delta")),
                json_number_value(json_object_get(priv, "epsilon_per_site_release")));
    json_t *ref = json_object_get(doc, "refusals"), *o;
    size_t i;
    json_array_foreach(ref, i, o)
    {
        fputs("<p><b>Refused by ", f);
        esc(f, str(o, "site"));
        fputs("</b>: ", f);
        esc(f, str(o, "reason"));
        fputs("</p>\n", f);
    }
    summary_table(f, res, sites);
    histograms(f, res, sites);
    crosstabs(f, res);
    km_curves(f, res, sites);
    suppressed_table(f, json_object_get(doc, "suppressed"));
    fputs("</body></html>\n", f);
    json_decref(sites);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return ff_error(FF_EIO, "%s: write failed", tmp);
    return ff_file_rename_durable(tmp, path);
}

int ff_stats_write(const char *out_dir, json_t *doc)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/stats.json", out_dir);
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    int rc = text ? ff_file_write_atomic(path, text, strlen(text), 0644)
                  : ff_error(FF_ENOMEM, "statistics: out of memory");
    free(text);
    snprintf(path, sizeof path, "%s/stats.html", out_dir);
    if (rc == FF_OK)
        rc = write_html(path, doc);
    return rc;
}
