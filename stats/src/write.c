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
            double bw = fmin(60, 1200.0 / (double)n);
            fputs("<figure><figcaption>", f);
            esc(f, json_string_value(v));
            fputs(" &mdash; ", f);
            esc(f, json_string_value(s));
            fprintf(f, "</figcaption><svg width=\"%.0f\" height=\"190\" role=\"img\">", bw * (double)n + 20);
            json_array_foreach(bins, oi, o)
            {
                double h = 140.0 * (double)json_integer_value(json_object_get(o, "value")) / top;
                json_t *bin = json_object_get(o, "bin");
                char label[64];
                if (bin && json_is_number(json_object_get(bin, "lo")))
                    snprintf(label, sizeof label, "%g", json_number_value(json_object_get(bin, "lo")));
                else if (bin)
                    snprintf(label, sizeof label, "&lt;%g", json_number_value(json_object_get(bin, "hi")));
                else
                    snprintf(label, sizeof label, "%s", str(o, "category"));
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7ab5\">"
                           "<title>%lld</title></rect>",
                        10 + bw * (double)oi, 150 - h, bw * 0.9, h,
                        (long long)json_integer_value(json_object_get(o, "value")));
                if (n <= 24 || oi % (n / 12 + 1) == 0) {
                    fprintf(f, "<text x=\"%.1f\" y=\"168\" font-size=\"10\">", 10 + bw * (double)oi);
                    esc(f, label);
                    fputs("</text>", f);
                }
            }
            fputs("</svg></figure>\n", f);
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

static const char *const colours[] = {"#1f4e79", "#c55a11", "#548235", "#7030a0",
                                      "#bf9000", "#2e75b6", "#a50021", "#3b3838"};

/* Kaplan–Meier step curves with their bands, one SVG per curve, a line per site. */
static void km_curves(FILE *f, json_t *res, json_t *sites)
{
    json_t *vars = distinct(res, "variable", "km"), *v;
    size_t i;
    if (json_array_size(vars))
        fputs("<h2>Kaplan&ndash;Meier</h2>\n", f);
    json_array_foreach(vars, i, v)
    {
        double tmax = 1, o_t;
        json_t *o, *s;
        size_t oi, si;
        json_array_foreach(res, oi, o) if (strcmp(str(o, "statistic"), "km") == 0 &&
                                           strcmp(str(o, "variable"), json_string_value(v)) == 0)
        {
            o_t = json_number_value(json_object_get(o, "time"));
            tmax = fmax(tmax, o_t);
        }
        const double W = 900, H = 360, L = 50;
        fputs("<figure><figcaption>", f);
        esc(f, json_string_value(v));
        fprintf(f, " (time 0 to %g)</figcaption><svg width=\"%.0f\" height=\"%.0f\" role=\"img\">", tmax,
                W + L + 200, H + 40);
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>", L, H, L + W, H);
        fprintf(f, "<line x1=\"%.0f\" y1=\"0\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>", L, L, H);
        for (int k = 0; k <= 4; k++)
            fprintf(f, "<text x=\"5\" y=\"%.0f\" font-size=\"11\">%.2f</text>", H - H * k / 4.0 + 4, k / 4.0);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%g</text>", L + W - 30, H + 16, tmax);
        json_array_foreach(sites, si, s)
        {
            const char *col = colours[si % FF_ARRAY_LEN(colours)];
            double px = L, py = 0, ly = 0, uy = 0;
            int n = 0;
            fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" d=\"M%.1f %.1f", col, L, 0.0);
            json_array_foreach(res, oi, o)
            {
                if (strcmp(str(o, "statistic"), "km") != 0 || strcmp(str(o, "variable"), json_string_value(v)) != 0 ||
                    strcmp(str(o, "site"), json_string_value(s)) != 0)
                    continue;
                double x = L + W * json_number_value(json_object_get(o, "time")) / tmax;
                double y = H - H * json_number_value(json_object_get(o, "value"));
                fprintf(f, " H%.1f V%.1f", x, y);
                px = x;
                py = y;
                ly = H - H * json_number_value(json_object_get(o, "lower"));
                uy = H - H * json_number_value(json_object_get(o, "upper"));
                n++;
            }
            fputs("\"/>", f);
            (void)px;
            if (n && strcmp(json_string_value(s), "pooled") == 0)
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                           "stroke-dasharray=\"3 2\"><title>95%% band at the last step</title></line>",
                        px, ly, px, uy, col);
            fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" fill=\"%s\">", L + W + 10,
                    20 + 16.0 * (double)si, col);
            esc(f, json_string_value(s));
            fprintf(f, "%s</text>", n ? "" : " (no released steps)");
            (void)py;
        }
        fputs("</svg></figure>\n", f);
    }
    json_decref(vars);
}

static int write_html(const char *path, json_t *doc)
{
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ff_error(FF_EIO, "%s: cannot write", tmp);
    json_t *res = json_object_get(doc, "results");
    json_t *sites = distinct(res, "site", NULL);
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
