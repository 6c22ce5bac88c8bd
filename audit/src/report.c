/* The auditor's HTML page: self-contained (inline CSS and SVG, no scripts, no network). */
#include "audit_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void html_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

typedef struct {
    json_t *rounds; /* array of {round, selected, sites, eps_r, eps_c} */
    json_t *sites;  /* sorted unique site names */
} report_data;

static json_t *current_round(report_data *d)
{
    size_t n = json_array_size(d->rounds);
    return n ? json_array_get(d->rounds, n - 1) : NULL;
}

static void collect(report_data *d, const char *buf, size_t len)
{
    size_t start = 0;
    while (start < len) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t n = nl ? (size_t)(nl - (buf + start)) : len - start;
        json_t *e = json_loadb(buf + start, n, 0, NULL);
        const char *ev = e ? json_string_value(json_object_get(e, "event")) : NULL;
        json_t *data = e ? json_object_get(e, "data") : NULL;
        json_t *cur = current_round(d);
        if (ev && strcmp(ev, "round_start") == 0) {
            json_array_append_new(d->rounds, json_pack("{s:O?, s:O?, s:[], s:f, s:f}", "round",
                                                       json_object_get(data, "round"), "selected",
                                                       json_object_get(data, "selected"), "sites",
                                                       "eps_r", -1.0, "eps_c", -1.0));
        } else if (ev && cur && strcmp(ev, "aggregate") == 0) {
            json_object_set(cur, "sites", json_object_get(data, "sites"));
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(data, "sites"), i, v)
            {
                if (json_is_string(v))
                    json_object_set_new(d->sites, json_string_value(v), json_true());
            }
        } else if (ev && cur && strcmp(ev, "privacy") == 0) {
            json_object_set(cur, "eps_r", json_object_get(data, "epsilon_record"));
            json_object_set(cur, "eps_c", json_object_get(data, "epsilon_client"));
        }
        json_decref(e);
        start += n + 1;
    }
}

static void write_eps_svg(FILE *f, json_t *rounds)
{
    size_t n = json_array_size(rounds);
    double maxe = 1e-9;
    size_t i;
    json_t *r;
    json_array_foreach(rounds, i, r)
    {
        maxe = fmax(maxe, json_number_value(json_object_get(r, "eps_r")));
        maxe = fmax(maxe, json_number_value(json_object_get(r, "eps_c")));
    }
    const int W = 560, H = 220, L = 50, B = 30;
    fprintf(f, "<svg width='%d' height='%d' role='img' aria-label='epsilon over rounds'>"
               "<rect x='%d' y='10' width='%d' height='%d' fill='#fafafa' stroke='#999'/>",
            W, H, L, W - L - 10, H - B - 10);
    fprintf(f, "<text x='5' y='20' font-size='11'>%.3g</text><text x='5' y='%d' font-size='11'>0</text>"
               "<text x='%d' y='%d' font-size='11'>round</text>",
            maxe, H - B, W / 2, H - 5);
    const char *keys[2] = {"eps_r", "eps_c"}, *colors[2] = {"#c0392b", "#2471a3"};
    for (int k = 0; k < 2; k++) {
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", colors[k]);
        json_array_foreach(rounds, i, r)
        {
            double e = json_number_value(json_object_get(r, keys[k]));
            if (e < 0)
                continue;
            double x = L + (n > 1 ? (double)i / (double)(n - 1) : 0.5) * (W - L - 20) + 5;
            double y = 10 + (H - B - 10) * (1 - e / maxe);
            fprintf(f, "%.1f,%.1f ", x, y);
        }
        fprintf(f, "'/>");
    }
    fprintf(f, "<text x='%d' y='28' font-size='11' fill='%s'>record-level</text>"
               "<text x='%d' y='42' font-size='11' fill='%s'>client-level</text></svg>\n",
            W - 110, colors[0], W - 110, colors[1]);
}

static void write_page(FILE *f, report_data *d, const ff_audit_summary *s, const ff_audit_findings *fd)
{
    fprintf(f, "<!doctype html><html><head><meta charset='utf-8'><title>fedfuse audit report</title>"
               "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:"
               "collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:center}"
               ".ok{color:#1e8449}.bad{color:#c0392b}</style></head><body>\n");
    fprintf(f, "<h1>Audit report</h1><p class='%s'><b>%s</b> — %zu finding(s)</p>", fd->count ? "bad" : "ok",
            fd->count ? "VERIFICATION FAILED" : "ALL CHECKS PASSED", fd->count);
    fprintf(f, "<p>%llu entries, %lld aggregated rounds, %lld sites, run %s. Coordinator audit key: ",
            (unsigned long long)s->entries, (long long)s->rounds, (long long)s->sites,
            s->ended ? "ended" : "not ended");
    html_escape(f, s->coordinator_subject);
    fprintf(f, "</p>\n<h2>Findings</h2>");
    if (!fd->count)
        fprintf(f, "<p>None.</p>");
    else {
        fprintf(f, "<table><tr><th>entry</th><th>rule</th><th>detail</th></tr>");
        for (size_t i = 0; i < fd->count; i++) {
            fprintf(f, "<tr><td>%lld</td><td>", (long long)fd->items[i].seq);
            html_escape(f, fd->items[i].rule);
            fprintf(f, "</td><td style='text-align:left'>");
            html_escape(f, fd->items[i].detail);
            fprintf(f, "</td></tr>");
        }
        fprintf(f, "</table>");
    }
    fprintf(f, "<h2>Participation</h2><table><tr><th>round</th>");
    const char *site;
    json_t *v;
    json_object_foreach(d->sites, site, v)
    {
        fprintf(f, "<th>");
        html_escape(f, site);
        fprintf(f, "</th>");
    }
    fprintf(f, "<th>record ε</th><th>client ε</th></tr>");
    size_t i;
    json_t *r;
    json_array_foreach(d->rounds, i, r)
    {
        fprintf(f, "<tr><td>%lld</td>", (long long)json_integer_value(json_object_get(r, "round")));
        json_object_foreach(d->sites, site, v)
        {
            int in = 0, sel = 0;
            size_t j;
            json_t *x;
            json_array_foreach(json_object_get(r, "sites"), j, x) in |= strcmp(json_string_value(x) ? json_string_value(x) : "", site) == 0;
            json_array_foreach(json_object_get(r, "selected"), j, x) sel |= strcmp(json_string_value(x) ? json_string_value(x) : "", site) == 0;
            fprintf(f, "<td>%s</td>", in ? "✔" : sel ? "dropped" : "");
        }
        double er = json_number_value(json_object_get(r, "eps_r"));
        double ec = json_number_value(json_object_get(r, "eps_c"));
        fprintf(f, "<td>%s%.4g</td><td>%s%.4g</td></tr>", "", er < 0 ? 0 : er, "", ec < 0 ? 0 : ec);
    }
    fprintf(f, "</table><h2>Privacy budget over rounds</h2>");
    write_eps_svg(f, d->rounds);
    fprintf(f, "</body></html>\n");
}

int ff_audit_report_html(const char *log_path, const ff_audit_summary *s,
                         const ff_audit_findings *fd, const char *out_path)
{
    char *buf;
    size_t len;
    int rc = ff_file_read_all(log_path, (size_t)1 << 34, &buf, &len);
    if (rc != FF_OK)
        return rc;
    report_data d = {json_array(), json_object()};
    collect(&d, buf, len);
    free(buf);
    char *page = NULL;
    size_t plen = 0;
    FILE *f = open_memstream(&page, &plen);
    if (!f) {
        rc = ff_error(FF_ENOMEM, "out of memory");
    } else {
        write_page(f, &d, s, fd);
        fclose(f);
        rc = ff_file_write_atomic(out_path, page, plen, 0644);
    }
    free(page);
    json_decref(d.rounds);
    json_decref(d.sites);
    return rc;
}
