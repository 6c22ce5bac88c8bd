/* Federated evaluation of the declared tasks that are not binary (multiclass, regression,
 * survival): the sites send mergeable statistics (ff_eval_kind_stats) beside the binary
 * tasks' score histograms; here they are merged per round (the headline metric of each task,
 * in rounds.csv's evaluation entry and the audit log) and for the final metrics.json and
 * report. Kept apart from report.c, which handles the binary tasks' histograms. */
#include <math.h>
#include <string.h>

#include "fed_internal.h"

void fed_kinds_free(ff_eval_kind_stats **p)
{
    for (int k = 0; k < FF_TASKS_MAX; k++) {
        ff_eval_kind_stats_free(p[k]);
        p[k] = NULL;
    }
}

/* Merges a site's JSON array of statistics into pooled (slots by task name, in order). */
int fed_kinds_merge(ff_eval_kind_stats **pooled, const json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        ff_eval_kind_stats *s = NULL;
        int rc = ff_eval_kind_stats_from_json(v, &s);
        if (rc != FF_OK)
            return rc;
        int k = 0;
        while (k < FF_TASKS_MAX && pooled[k] && strcmp(pooled[k]->task, s->task) != 0)
            k++;
        if (k == FF_TASKS_MAX) {
            ff_eval_kind_stats_free(s);
            return ff_error(FF_EFORMAT, "evaluation: more than %d tasks", FF_TASKS_MAX);
        }
        if (!pooled[k]) {
            pooled[k] = s;
            continue;
        }
        rc = ff_eval_kind_stats_merge(pooled[k], s);
        ff_eval_kind_stats_free(s);
        if (rc != FF_OK)
            return rc;
    }
    return FF_OK;
}

/* headline[task] = the kind's headline metric or null, undef[task] = why (when undefined). */
static int put_headline(const ff_eval_kind_result *r, const char *task, json_t *headline,
                        json_t *undef)
{
    const char *name = NULL;
    const ff_metric *m = ff_eval_kind_headline(r, &name);
    int def = m->defined && isfinite(m->value);
    json_object_set_new(headline, task, json_pack("{s:s, s:o}", "metric", name,
                                                  "value", def ? json_real(m->value) : json_null()));
    if (!def)
        json_object_set_new(undef, task, json_string(m->why ? m->why : "undefined"));
    return def;
}

int fed_kinds_round(ff_eval_kind_stats **pooled, int64_t round, json_t *headline, json_t *undef)
{
    for (int k = 0; k < FF_TASKS_MAX && pooled[k]; k++) {
        ff_eval_kind_result r;
        int rc = ff_eval_kind_stats_metrics(pooled[k], &r);
        if (rc != FF_OK)
            return rc;
        if (!put_headline(&r, pooled[k]->task, headline, undef))
            FF_LOG_WARN("round %lld: pooled test metric of task %s is undefined: %s",
                        (long long)round, pooled[k]->task,
                        json_string_value(json_object_get(undef, pooled[k]->task)));
    }
    return FF_OK;
}

/* The console name of a headline metric key (ff_eval_kind_headline's names). */
static const char *headline_label(const char *key)
{
    return !key ? "metric"
           : strcmp(key, "macro_auroc") == 0 ? "macro AUROC"
           : strcmp(key, "r2") == 0 ? "R²"
           : strcmp(key, "cindex") == 0 ? "C-index" : key;
}

static void summary_add(char *buf, size_t n, size_t *len, const char *task, const char *label,
                        const json_t *value, const json_t *undef)
{
    if (*len >= n)
        return;
    const char *why = json_string_value(json_object_get(undef, task));
    int w;
    if (json_is_number(value) && isfinite(json_number_value(value)))
        w = snprintf(buf + *len, n - *len, "%s%s %s %.3f", *len ? ", " : "", task, label,
                     json_number_value(value));
    else
        w = snprintf(buf + *len, n - *len, "%s%s %s undefined (%s)", *len ? ", " : "", task,
                     label, why ? why : "no value");
    *len = w < 0 ? n : FF_MIN(n, *len + (size_t)w);
}

void fed_round_summary(const json_t *entry, char *buf, size_t n)
{
    size_t len = 0;
    const json_t *undef = json_object_get(entry, "undefined"), *v;
    const char *task;
    buf[0] = '\0';
    json_object_foreach((json_t *)json_object_get(entry, "auroc"), task, v)
        summary_add(buf, n, &len, task, "AUROC", v, undef);
    json_object_foreach((json_t *)json_object_get(entry, "headline"), task, v)
        summary_add(buf, n, &len, task,
                    headline_label(json_string_value(json_object_get(v, "metric"))),
                    json_object_get(v, "value"), undef);
}

/* One report line: "Task T (kind) · WHERE: n ..., metric v, ...". */
static int report_line(ff_report *rep, const ff_eval_kind_stats *s, const char *where,
                       const ff_eval_kind_result *r)
{
    char sum[600], line[800];
    ff_eval_kind_summary(r, sum, sizeof sum);
    snprintf(line, sizeof line, "Task %s (%s) · %s: %s.", s->task, ff_task_kind_name(s->kind),
             where, sum);
    return ff_report_add_note(rep, line);
}

int fed_kinds_report(const json_t *stats, const char *const *names, size_t nnames,
                     json_t *tasks, json_t *headline, json_t *undef, ff_report *rep)
{
    ff_eval_kind_stats *pooled[FF_TASKS_MAX] = {0};
    int rc = FF_OK;
    for (size_t i = 0; rc == FF_OK && i < nnames; i++) {
        const json_t *arr = json_object_get(stats, names[i]);
        if (arr)
            rc = fed_kinds_merge(pooled, arr);
    }
    for (int k = 0; rc == FF_OK && k < FF_TASKS_MAX && pooled[k]; k++) {
        ff_eval_kind_result r;
        json_t *pj = NULL, *sj = json_object();
        if ((rc = ff_eval_kind_stats_metrics(pooled[k], &r)) == FF_OK &&
            (rc = ff_eval_kind_to_json(&r, &pj)) == FF_OK) {
            put_headline(&r, pooled[k]->task, headline, undef);
            rc = report_line(rep, pooled[k], "pooled (site-stratified C-index)", &r);
        }
        for (size_t i = 0; rc == FF_OK && i < nnames; i++) {
            const char *site = names[i];
            const json_t *arr = json_object_get(stats, site);
            if (!arr)
                continue;
            ff_eval_kind_stats *one[FF_TASKS_MAX] = {0};
            if (rc == FF_OK)
                rc = fed_kinds_merge(one, arr);
            for (int q = 0; rc == FF_OK && q < FF_TASKS_MAX && one[q]; q++) {
                if (strcmp(one[q]->task, pooled[k]->task) != 0)
                    continue;
                ff_eval_kind_result sr;
                json_t *o = NULL;
                if ((rc = ff_eval_kind_stats_metrics(one[q], &sr)) == FF_OK &&
                    (rc = ff_eval_kind_to_json(&sr, &o)) == FF_OK) {
                    json_object_set_new(sj, site, o);
                    rc = report_line(rep, pooled[k], site, &sr);
                }
            }
            fed_kinds_free(one);
        }
        if (rc == FF_OK)
            json_object_set_new(tasks, pooled[k]->task,
                                json_pack("{s:s, s:o, s:O}", "kind",
                                          ff_task_kind_name(pooled[k]->kind), "pooled", pj,
                                          "sites", sj));
        else
            json_decref(pj);
        json_decref(sj);
    }
    fed_kinds_free(pooled);
    return rc;
}
