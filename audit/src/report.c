/* The auditor's HTML page: self-contained (inline CSS and SVG, no scripts, no network). Every
 * number on it is the verifier's own (ff_audit_summary and its detail); nothing is re-read
 * from the log. */
#include "audit_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Client-level ε per round (the verifier's recomputation) against the budget line. */
static void eps_svg(FILE *f, json_t *rounds, double budget)
{
    size_t n = json_array_size(rounds), i;
    json_t *r;
    double maxe = budget > 0 ? budget : 0;
    json_array_foreach(rounds, i, r) maxe = fmax(maxe, json_number_value(json_object_get(r, "eps_client")));
    if (maxe <= 0)
        return;
    maxe *= 1.1;
    const int W = 560, H = 220, L = 50, B = 30;
    fprintf(f, "<svg width='%d' height='%d' role='img' aria-label='client-level epsilon per round "
               "against the budget'><rect x='%d' y='10' width='%d' height='%d' fill='#fafafa' "
               "stroke='#999'/>",
            W, H, L, W - L - 10, H - B - 10);
    fprintf(f, "<text x='5' y='20' font-size='11'>%.3g</text><text x='5' y='%d' font-size='11'>0"
               "</text><text x='%d' y='%d' font-size='11'>round</text>",
            maxe, H - B, W / 2, H - 5);
    if (budget > 0) {
        double y = 10 + (H - B - 10) * (1 - budget / maxe);
        fprintf(f, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#c0392b' stroke-dasharray='6 3'/>"
                   "<text x='%d' y='%.1f' font-size='11' fill='#c0392b'>budget %g</text>",
                L, W - 10, y, y, L + 5, y - 3, budget);
    }
    fprintf(f, "<polyline fill='none' stroke='#2471a3' stroke-width='2' points='");
    json_array_foreach(rounds, i, r)
    {
        json_t *e = json_object_get(r, "eps_client");
        if (!json_is_number(e))
            continue;
        double x = L + (n > 1 ? (double)i / (double)(n - 1) : 0.5) * (W - L - 20) + 5;
        double y = 10 + (H - B - 10) * (1 - json_number_value(e) / maxe);
        fprintf(f, "%.1f,%.1f ", x, y);
    }
    fprintf(f, "'/></svg>\n");
}

static void eps_cell(FILE *f, json_t *v, int on)
{
    if (!on)
        fprintf(f, "<td>not enabled</td>");
    else if (!json_is_number(v))
        fprintf(f, "<td class='bad'>not recomputed</td>");
    else
        fprintf(f, "<td>%.4g</td>", json_number_value(v));
}

static void write_header(FILE *f, const ff_audit_summary *s, const ff_audit_findings *fd)
{
    fprintf(f, "<!doctype html><html><head><meta charset='utf-8'><title>fedfuse audit report</title>"
               "<style>body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:"
               "collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:"
               "center;overflow-wrap:anywhere}.ok{color:#1e8449}.bad{color:#c0392b}td.l{text-align:left}"
               "code{word-break:break-all}</style></head>"
               "<body>\n<h1>Audit report</h1>\n");
    if (!s->ca_checked)
        fprintf(f, "<p class='bad'><b>NOT VERIFIED: signatures NOT checked</b> (no consortium CA "
                   "was given): nothing on this page is verified.</p>");
    else
        /* the headline says what it did not check: a pass without receipts is a pass of the
         * coordinator's own log only */
        fprintf(f, "<p class='%s'><b>%s</b> — %zu finding(s)%s</p>", fd->count ? "bad" : "ok",
                fd->count ? "VERIFICATION FAILED" : "ALL CHECKS PASSED", fd->count,
                s->receipts_given ? "" : "; the sites' receipts were NOT checked (give --receipts and --certs)");
    fprintf(f, "<h2>What was checked, with which keys</h2><table>");
    fprintf(f, "<tr><th>check</th><th>result</th></tr><tr><td class='l'>consortium CA</td><td class='l'>");
    ff_html_fputs(f, s->ca_subject[0] ? s->ca_subject : "none given");
    fprintf(f, "</td></tr><tr><td class='l'>coordinator audit key (signs every entry)</td><td class='l'>");
    ff_html_fputs(f, s->coordinator_subject);
    fprintf(f, " — %s</td></tr>", s->ca_checked ? "chains to the CA" : "NOT checked");
    fprintf(f, "<tr><td class='l'>hash chain, sequence, signatures</td><td class='l'>%llu entries</td></tr>",
            (unsigned long long)s->entries);
    fprintf(f, "<tr><td class='l'>site commitments</td><td class='l'>%lld logged, %s</td></tr>",
            (long long)s->commitments,
            s->certs_checked ? "signatures checked with the site certificates" : "signatures NOT checked");
    if (s->receipts_given)
        fprintf(f, "<tr><td class='l'>receipts</td><td class='l'>%lld checked, %lld missing, %lld "
                   "invalid, %lld without inclusion proof</td></tr>",
                (long long)s->receipts_checked, (long long)s->receipts_missing,
                (long long)s->receipts_invalid, (long long)s->receipts_no_proof);
    else
        fprintf(f, "<tr><td class='l'>receipts</td><td class='l bad'>NOT checked</td></tr>");
    fprintf(f, "<tr><td class='l'>privacy</td><td class='l'>%s</td></tr>",
            !s->dp_client && !s->dp_record ? "differential privacy not enabled"
            : s->eps_recomputed             ? "epsilon recomputed by the verifier from the logged parameters"
                                            : "epsilon NOT recomputed");
    if (s->anchors)
        fprintf(f, "<tr><td class='l'>RFC 3161 anchors</td><td class='l'>%lld, %s; latest entry %lld "
                   "at %s</td></tr>",
                (long long)s->anchors, s->tsa_checked ? "authority checked" : "authority NOT checked",
                (long long)s->anchored_seq, s->anchor_time);
    else
        fprintf(f, "<tr><td class='l'>RFC 3161 anchors</td><td class='l'>none</td></tr>");
    fprintf(f, "</table>\n");
}

static void write_findings(FILE *f, const ff_audit_findings *fd)
{
    fprintf(f, "<h2>Findings</h2>");
    if (!fd->count) {
        fprintf(f, "<p>None.</p>");
        return;
    }
    /* grouped by kind: the rule's first part (signature, receipt, privacy, ...) */
    int *done = calloc(fd->count, sizeof *done);
    for (size_t i = 0; done && i < fd->count; i++) {
        if (done[i])
            continue;
        char kind[48];
        ff_strlcpy(kind, fd->items[i].rule, sizeof kind);
        char *dot = strchr(kind, '.');
        if (dot)
            *dot = '\0';
        fprintf(f, "<h3>");
        ff_html_fputs(f, kind);
        fprintf(f, "</h3><table><tr><th>entry</th><th>rule</th><th>detail</th></tr>");
        for (size_t j = i; j < fd->count; j++) {
            size_t kl = strlen(kind);
            const char *r = fd->items[j].rule;
            if (done[j] || strncmp(r, kind, kl) != 0 || (r[kl] && r[kl] != '.'))
                continue;
            done[j] = 1;
            if (fd->items[j].seq >= 0)
                fprintf(f, "<tr><td>%lld</td><td>", (long long)fd->items[j].seq);
            else
                fprintf(f, "<tr><td>(file)</td><td>");
            ff_html_fputs(f, r);
            fprintf(f, "</td><td class='l'>");
            ff_html_fputs(f, fd->items[j].detail);
            fprintf(f, "</td></tr>");
        }
        fprintf(f, "</table>");
    }
    free(done);
}

static void write_job(FILE *f, json_t *job)
{
    fprintf(f, "<h2>Job and plan</h2><table>");
    json_t *g = json_object_get(job, "genesis"), *rs = json_object_get(job, "run_start");
    const char *keys[][2] = {{"job_sha256", "job hash (model config + training plan the sites approved)"},
                             {"consortium_sha256", "consortium file"},
                             {"policy_sha256", "coordinator config"},
                             {"run_name", "run name"}};
    for (size_t i = 0; i < FF_ARRAY_LEN(keys); i++) {
        fprintf(f, "<tr><td class='l'>%s</td><td class='l'><code>", keys[i][1]);
        ff_html_fputs(f, jstr(g, keys[i][0]) ? jstr(g, keys[i][0]) : "—");
        fprintf(f, "</code></td></tr>");
    }
    if (rs) {
        char *t = json_dumps(rs, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(f, "<tr><td class='l'>run settings (run_start)</td><td class='l'><code>");
        ff_html_fputs(f, t);
        fprintf(f, "</code></td></tr>");
        free(t);
    }
    fprintf(f, "</table>");
}

static void write_timeline(FILE *f, json_t *tl)
{
    fprintf(f, "<h2>Run timeline (UTC, as logged by the coordinator)</h2><table><tr><th>entry"
               "</th><th>time (UTC)</th><th>event</th><th>detail</th></tr>");
    size_t i;
    json_t *t;
    json_array_foreach(tl, i, t)
    {
        fprintf(f, "<tr><td>%lld</td><td>", (long long)json_integer_value(json_object_get(t, "seq")));
        ff_html_fputs(f, jstr(t, "ts"));
        fprintf(f, "</td><td>");
        ff_html_fputs(f, jstr(t, "event"));
        fprintf(f, "</td><td class='l'>");
        json_t *d = json_deep_copy(t);
        json_object_del(d, "seq");
        json_object_del(d, "ts");
        json_object_del(d, "event");
        char *txt = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
        ff_html_fputs(f, txt);
        free(txt);
        json_decref(d);
        fprintf(f, "</td></tr>");
    }
    fprintf(f, "</table>");
}

static void write_rounds(FILE *f, const ff_audit_summary *s, json_t *rounds)
{
    fprintf(f, "<h2>Rounds</h2><table><tr><th>round</th><th>started (UTC)</th><th>attempts</th>"
               "<th>selected</th><th>aggregated</th><th>secure aggregation t / k / survivors</th>"
               "<th>client ε (recomputed)</th><th>record ε (recomputed)</th></tr>");
    size_t i;
    json_t *r;
    json_array_foreach(rounds, i, r)
    {
        json_t *sa = json_object_get(r, "secagg");
        fprintf(f, "<tr><td>%lld</td><td>", (long long)json_integer_value(json_object_get(r, "round")));
        ff_html_fputs(f, jstr(r, "ts"));
        fprintf(f, "</td><td>%lld</td><td>%zu</td><td>%zu</td>",
                (long long)json_integer_value(json_object_get(r, "attempts")),
                json_array_size(json_object_get(r, "selected")), json_array_size(json_object_get(r, "sites")));
        if (sa)
            fprintf(f, "<td>%lld / %lld / %lld</td>", (long long)json_integer_value(json_object_get(sa, "t")),
                    (long long)json_integer_value(json_object_get(sa, "k")),
                    (long long)json_integer_value(json_object_get(r, "survivors")));
        else
            fprintf(f, "<td>off</td>");
        eps_cell(f, json_object_get(r, "eps_client"), s->dp_client);
        eps_cell(f, json_object_get(r, "eps_record"), s->dp_record);
        fprintf(f, "</tr>");
    }
    fprintf(f, "</table>");
}

static void write_sites(FILE *f, const ff_audit_summary *s, json_t *rounds)
{
    json_t *names = json_object();
    size_t i, j;
    json_t *r, *v;
    json_array_foreach(rounds, i, r) json_array_foreach(json_object_get(r, "selected"), j, v)
    {
        if (json_is_string(v))
            json_object_set_new(names, json_string_value(v), json_true());
    }
    fprintf(f, "<h2>Per-site participation%s</h2><table><tr><th>round</th>",
            s->receipts_given ? " and receipt status" : " (receipts NOT checked)");
    const char *site;
    json_object_foreach(names, site, v)
    {
        fprintf(f, "<th>");
        ff_html_fputs(f, site);
        fprintf(f, "</th>");
    }
    fprintf(f, "</tr>");
    json_array_foreach(rounds, i, r)
    {
        fprintf(f, "<tr><td>%lld</td>", (long long)json_integer_value(json_object_get(r, "round")));
        json_object_foreach(names, site, v)
        {
            int in = 0, sel = 0;
            json_t *x;
            json_array_foreach(json_object_get(r, "sites"), j, x) in |= json_is_string(x) && strcmp(json_string_value(x), site) == 0;
            json_array_foreach(json_object_get(r, "selected"), j, x) sel |= json_is_string(x) && strcmp(json_string_value(x), site) == 0;
            const char *rs = jstr(json_object_get(r, "receipts"), site);
            int bad = rs && strncmp(rs, "valid", 5) != 0 && strcmp(rs, "not aggregated") != 0;
            fprintf(f, "<td class='%s'>%s", bad ? "bad" : "", in ? "aggregated" : sel ? "dropped" : "");
            if (rs) {
                fprintf(f, "<br>receipt: ");
                ff_html_fputs(f, rs);
            }
            fprintf(f, "</td>");
        }
        fprintf(f, "</tr>");
    }
    fprintf(f, "</table>");
    json_decref(names);
}

static void write_page(FILE *f, const ff_audit_summary *s, const ff_audit_findings *fd)
{
    json_t *rounds = json_object_get(s->detail, "rounds");
    write_header(f, s, fd);
    write_findings(f, fd);
    write_job(f, json_object_get(s->detail, "job"));
    write_timeline(f, json_object_get(s->detail, "timeline"));
    write_rounds(f, s, rounds);
    write_sites(f, s, rounds);
    fprintf(f, "<h2>Privacy per round</h2>");
    if (!s->dp_client && !s->dp_record)
        fprintf(f, "<p>Differential privacy: <b>not enabled</b> in this run (no privacy "
                   "guarantee beyond secure aggregation).</p>");
    else if (!s->dp_client)
        fprintf(f, "<p>Client-level DP: not enabled. Record-level DP (the sites' DP-SGD): final "
                   "ε %.4g (recomputed).</p>", s->epsilon_record);
    else if (s->epsilon_client < 0)
        fprintf(f, "<p class='bad'>Client-level ε could NOT be recomputed (see findings).</p>");
    else {
        fprintf(f, "<p>Client-level ε after the last round: %.4g", s->epsilon_client);
        if (s->budget_client > 0)
            fprintf(f, " of the plan's budget %g", s->budget_client);
        fprintf(f, " (recomputed by the verifier).</p>");
        eps_svg(f, rounds, s->budget_client);
    }
    fprintf(f, "</body></html>\n");
}

int ff_audit_report_html(const char *log_path, const ff_audit_summary *s,
                         const ff_audit_findings *fd, const char *out_path)
{
    (void)log_path;
    char *page = NULL;
    size_t plen = 0;
    FILE *f = open_memstream(&page, &plen);
    int rc;
    if (!f) {
        rc = ff_error(FF_ENOMEM, "out of memory");
    } else {
        write_page(f, s, fd);
        fclose(f);
        rc = ff_file_write_atomic(out_path, page, plen, 0644);
    }
    free(page);
    return rc;
}
