/* fedfuse explain: explain.html, one self-contained page (the heat maps inlined as data:
 * URIs) for the clinician at the hospital. It holds the patient's words and codes like
 * explain.json beside it: a local file, never logged, never sent. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain_internal.h"

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The PNG at path inlined as a data: URI (EVP_EncodeBlock: base64 without line breaks). */
static int put_png(FILE *f, const char *path, const char *alt)
{
    char *raw = NULL;
    size_t n = 0;
    int rc = ff_file_read_all(path, 64u << 20, &raw, &n);
    if (rc != FF_OK)
        return rc;
    unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);
    if (!b64) {
        free(raw);
        return ff_error(FF_ENOMEM, "explain page: out of memory");
    }
    EVP_EncodeBlock(b64, (const unsigned char *)raw, (int)n);
    fputs("<img class=\"hm\" alt=\"", f);
    ff_html_fputs(f, alt);
    fprintf(f, "\" src=\"data:image/png;base64,%s\">", (const char *)b64);
    free(b64);
    free(raw);
    return FF_OK;
}

static double task_value(const json_t *arr, int k)
{
    return json_number_value(json_array_get(arr, (size_t)k));
}

/* Items of one view (words or events) whose change of task k passes the noise floor, top n
 * by |change|, as table rows. */
static void items_table(FILE *f, const json_t *arr, int k, const char *label_key, double floor,
                        int top, const char *what)
{
    fprintf(f, "<table><caption>%s</caption><tr><th>item</th><th>change of log-odds when "
               "removed</th></tr>", what);
    size_t i, shown = 0, quiet = 0;
    json_t *it;
    json_array_foreach(arr, i, it) {
        double d = task_value(json_object_get(it, "occlusion"), k);
        if (fabs(d) < floor) {
            quiet++;
            continue;
        }
        if ((int)shown++ >= top)
            continue;
        fputs("<tr><td>", f);
        ff_html_fputs(f, jstr(it, label_key));
        json_t *h = json_object_get(it, "hours_before");
        if (json_is_number(h))
            fprintf(f, " (%.1f h before)", json_number_value(h));
        fprintf(f, "</td><td class=\"%s\">%+.3f</td></tr>", d > 0 ? "up" : "down", d);
    }
    if (shown == 0)
        fprintf(f, "<tr><td colspan=2>none above the noise floor</td></tr>");
    fprintf(f, "</table><p class=note>%zu below the noise floor (|change| &lt; %.2f) not shown."
               "</p>", quiet, floor);
}

static void faith_block(FILE *f, const json_t *fa)
{
    const json_t *a = json_object_get(fa, "attribution_order");
    const json_t *r = json_object_get(fa, "random_order");
    size_t last = json_array_size(a) - 1;
    fprintf(f, "<p><b>Faithfulness %.2f</b> (deletion test: 0 = no better than random, 1 = "
               "removing the named items takes the risk away). Removing the %zu items this "
               "explanation ranks as raising the risk most takes the calibrated probability "
               "from %.3f to %.3f; removing %zu random items (mean of %lld orders) takes it to "
               "%.3f.</p>",
            json_number_value(json_object_get(fa, "faithfulness")), last,
            task_value(a, 0), task_value(a, (int)last), last,
            (long long)json_integer_value(json_object_get(fa, "random_orders")),
            task_value(r, (int)last));
}

static const char page_css[] =
    "body{font-family:sans-serif;max-width:1300px;margin:16px auto;padding:0 12px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left}caption{text-align:left;font-weight:bold;padding:4px 0}"
    ".up{color:#b2182b}.down{color:#2166ac}.note{color:#555;font-size:90%}"
    ".task{display:flex;flex-wrap:wrap;gap:24px;border-top:2px solid #ddd;margin-top:16px}"
    "figure{margin:0;flex:0 0 360px;width:360px}.task>div{flex:1 1 300px;max-width:440px}"
    ".scale{display:flex;justify-content:space-between;font-size:85%}"
    ".hm{display:block;width:360px;image-rendering:pixelated}";

static int task_section(FILE *f, const json_t *ex, int k)
{
    const json_t *pred = json_array_get(json_object_get(ex, "predictions"), (size_t)k);
    const json_t *sc = json_object_get(ex, "heatmap_scale");
    double scale = json_number_value(json_object_get(sc, "scale_logit"));
    double floor = json_number_value(json_object_get(sc, "noise_floor_logit"));
    const char *task = jstr(pred, "task");
    fputs("<h2>", f);
    ff_html_fputs(f, task);
    const char *named = jstr(pred, "explained");
    if (json_object_get(pred, "explained")) { /* multiclass, regression: name the quantity */
        fprintf(f, ": %s %.3f</h2><p class=note>Explained quantity: ",
                jstr(pred, "kind"), json_number_value(json_object_get(pred, "probability")));
        ff_html_fputs(f, named);
        fputs("; the changes below are changes of it.</p><div class=task>", f);
    } else {
        fprintf(f, ": calibrated risk %.3f</h2><div class=task>",
                json_number_value(json_object_get(pred, "calibrated")));
    }
    const json_t *hm = json_array_get(json_object_get(ex, "heatmaps"), (size_t)k);
    int rc = FF_OK;
    if (hm) {
        fputs("<figure><figcaption><b>Patient ", f);
        ff_html_fputs(f, jstr(ex, "patient"));
        fputs(", image: change of the ", f);
        ff_html_fputs(f, task);
        int bin = json_object_get(pred, "explained") == NULL;
        /* the other kinds: the explained quantity named above, not a risk's log-odds */
        const char *unit = bin ? "log-odds" : "explained quantity", *what = bin ? "the risk" : "it";
        fprintf(f, " %s when each patch is blanked</b></figcaption>", unit);
        char alt[256];
        snprintf(alt, sizeof alt, "heat map of %s", task);
        rc = put_png(f, jstr(hm, "file"), alt);
        fprintf(f, "<div class=scale><span>&minus;%.2f lowered %s</span><span>0</span>"
                   "<span>+%.2f raised %s</span></div><p class=note>Legend: red = the "
                   "patch raised %s, blue = lowered it; full colour at &plusmn;%.2f "
                   "%s (fixed scale, clipped beyond); no colour below the noise floor "
                   "%.2f. %lld of %lld patches above it.</p></figure>",
                scale, what, scale, what, what, scale, bin ? "log-odds" : "units", floor,
                (long long)json_integer_value(json_object_get(hm, "patches_shown")),
                (long long)json_integer_value(json_object_get(hm, "patches")));
    }
    fputs("<div>", f);
    items_table(f, json_object_get(ex, "words"), k, "word", floor, 10, "Note words");
    items_table(f, json_object_get(ex, "events"), k, "code", floor, 10, "Record events");
    fputs("</div><div>", f);
    size_t j; /* by name: a regression task has no faithfulness entry */
    const json_t *fa;
    json_array_foreach(json_object_get(ex, "faithfulness"), j, fa)
        if (strcmp(jstr(fa, "task"), task) == 0)
            faith_block(f, fa);
    fputs("</div></div>", f);
    return rc;
}

static void head_tables(FILE *f, const json_t *ex)
{
    fputs("<table><caption>Prediction per task</caption><tr><th>task</th><th>model "
          "probability</th><th>calibrated</th><th>recorded outcome</th></tr>", f);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(ex, "predictions"), i, p) {
        json_t *l = json_object_get(p, "label");
        fputs("<tr><td>", f);
        ff_html_fputs(f, jstr(p, "task"));
        char rec[64]; /* multiclass: the class; regression: the value; binary: yes/no */
        int binary = json_object_get(p, "explained") == NULL;
        if (json_is_integer(l) && !binary)
            snprintf(rec, sizeof rec, "class %lld", (long long)json_integer_value(l));
        else if (json_is_number(l) && !binary)
            snprintf(rec, sizeof rec, "%.3f", json_number_value(l));
        else
            snprintf(rec, sizeof rec, "%s",
                     json_is_integer(l) ? (json_integer_value(l) ? "yes" : "no") : "unknown");
        fprintf(f, "</td><td>%.3f</td><td>%.3f</td><td>%s</td></tr>",
                json_number_value(json_object_get(p, "probability")),
                json_number_value(json_object_get(p, "calibrated")), rec);
    }
    fputs("</table><table><caption>Calibrated probability with one input removed</caption>"
          "<tr><th>change</th>", f);
    json_array_foreach(json_object_get(ex, "predictions"), i, p) {
        fputs("<th>", f);
        ff_html_fputs(f, jstr(p, "task"));
        fputs("</th>", f);
    }
    fputs("</tr>", f);
    json_array_foreach(json_object_get(ex, "ablation"), i, p) {
        fputs("<tr><td>", f);
        ff_html_fputs(f, jstr(p, "change"));
        fputs("</td>", f);
        size_t k;
        json_t *v;
        json_t *cal = json_object_get(p, "calibrated");
        if (!cal)
            fputs("<td colspan=9>no prediction: no input left</td>", f);
        json_array_foreach(cal, k, v)
            fprintf(f, "<td>%.3f</td>", json_number_value(v));
        fputs("</tr>", f);
    }
    fputs("</table>", f);
}

int ff_explain_page_write(const json_t *ex, const char *path)
{
    ff_atomic_file af;
    int rc = ff_atomic_open(&af, path, 0644);
    if (rc != FF_OK)
        return rc;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        ff_atomic_abort(&af);
        return ff_error(FF_ENOMEM, "%s: out of memory", path);
    }
    fputs("<!doctype html><html lang=en><head><meta charset=utf-8><title>Explanation: patient ",
          f);
    ff_html_fputs(f, jstr(ex, "patient"));
    fprintf(f, "</title><style>%s</style></head><body><h1>Why the model predicted what it did: "
               "patient ", page_css);
    ff_html_fputs(f, jstr(ex, "patient"));
    fputs(" (", f);
    ff_html_fputs(f, jstr(ex, "split"));
    fputs(" split)</h1><p class=note>Local to this hospital: this page holds the patient's own "
          "words and codes. Each change is the task's log-odds with the item removed "
          "(occlusion), subtracted from the prediction.</p>", f);
    head_tables(f, ex);
    for (size_t k = 0; rc == FF_OK && k < json_array_size(json_object_get(ex, "predictions")); k++)
        rc = task_section(f, ex, (int)k);
    fputs("</body></html>\n", f);
    fclose(f);
    if (rc == FF_OK)
        rc = ff_atomic_write(&af, buf, len);
    if (rc == FF_OK)
        rc = ff_atomic_commit(&af);
    else
        ff_atomic_abort(&af);
    free(buf);
    return rc;
}
