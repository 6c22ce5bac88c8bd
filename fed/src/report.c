/* Federated evaluation on the coordinator (the evaluate phase's callbacks) and the final
 * report built from the sites' score histograms: metrics.json and report.html per site and
 * pooled, with the per-round pooled AUROC curve. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fed_internal.h"

double fed_hist_auroc(const ff_eval_hist *h, const char **why)
{
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    eo.bootstrap = 0;
    ff_eval_result r;
    if (why)
        *why = "no test patients with this label at any site";
    if (!h || ff_eval_hist_metrics(h, 0, &eo, &r, NULL) != FF_OK)
        return NAN;
    double v = r.auroc.defined && isfinite(r.auroc.value) ? r.auroc.value : NAN;
    if (why) /* the eval library's reasons are static strings */
        *why = r.auroc.defined ? NULL : r.auroc.why ? r.auroc.why : "undefined";
    ff_eval_result_free(&r);
    return v;
}

/* The slot of task name in pooled: its own, else the first free one (tasks keep the order
 * the sites send them in, which is their declaration order); -1 when full. */
static int task_index(ff_eval_hist *const *pooled, const char *name)
{
    for (int k = 0; k < FF_TASKS_MAX; k++)
        if (!pooled[k] || strcmp(pooled[k]->task, name) == 0)
            return k;
    return -1;
}

/* Merges a JSON array of histograms into pooled[task]. */
static int merge_hists(ff_eval_hist **pooled, const json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        ff_eval_hist *h = NULL;
        int rc = ff_eval_hist_from_json(v, &h);
        if (rc != FF_OK)
            return rc;
        int k = task_index(pooled, h->task);
        if (k < 0) {
            ff_eval_hist_free(h);
            continue;
        }
        if (!pooled[k]) {
            pooled[k] = h;
            continue;
        }
        rc = ff_eval_hist_merge(pooled[k], h);
        ff_eval_hist_free(h);
        if (rc != FF_OK)
            return rc;
    }
    return FF_OK;
}

static void pooled_free(ff_eval_hist **p)
{
    for (int k = 0; k < FF_TASKS_MAX; k++) {
        ff_eval_hist_free(p[k]);
        p[k] = NULL;
    }
}

static int state_write(fed_evalstate *e)
{
    char path[FF_COORD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/fedeval.json", e->out_dir);
    json_t *names = json_array();
    for (size_t i = 0; i < e->nsites; i++)
        json_array_append_new(names, json_string(e->names[i]));
    const ff_coord_report_config *r = &e->report;
    json_t *j = json_pack("{s:s, s:o, s:O, s:O, s:O, s:O, s:{s:{s:s, s:f}, s:I, s:I, s:I}}",
                          "format", "fedfuse-fedeval-v1", "sites", names, "rounds", e->rounds,
                          "hists", e->site_hists, "val_hists", e->site_val, "stats",
                          e->site_stats, "report", "operating_point",
                          "rule", ff_eval_op_rule_names[r->operating_point.rule], "target",
                          r->operating_point.target, "min_cell_size", (json_int_t)r->min_cell_size,
                          "bootstrap", (json_int_t)r->bootstrap, "min_positives",
                          (json_int_t)r->min_positives);
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!s)
        return ff_error(FF_ENOMEM, "fedeval.json: out of memory");
    int rc = ff_file_write_atomic(path, s, strlen(s), 0644);
    free(s);
    return rc;
}

static int ev_open(void *ud, ff_coord *c, int64_t round)
{
    fed_evalstate *e = ud;
    (void)c;
    (void)round;
    pooled_free(e->pooled);
    fed_kinds_free(e->kpooled);
    return FF_OK;
}

static int ev_submit(void *ud, ff_coord *c, int site, const void *msg, size_t len)
{
    fed_evalstate *e = ud;
    (void)c;
    json_error_t jerr;
    json_t *j = json_loadb(msg, len, 0, &jerr);
    json_t *arr = json_object_get(j, "hists");
    int rc = json_is_array(arr) ? FF_OK
                                : ff_error(FF_EFORMAT, "evaluation from %s: no 'hists' array",
                                           e->names[site]);
    /* the other kinds' statistics (absent from a site whose tasks are all binary) */
    json_t *stats = json_object_get(j, "stats");
    if (rc == FF_OK && stats && !json_is_array(stats))
        rc = ff_error(FF_EFORMAT, "evaluation from %s: 'stats' is not an array", e->names[site]);
    ff_eval_hist *mine[FF_TASKS_MAX] = {0};
    ff_eval_kind_stats *kmine[FF_TASKS_MAX] = {0};
    if (rc == FF_OK)
        rc = merge_hists(mine, arr); /* validate before touching the pooled state */
    if (rc == FF_OK && stats)
        rc = fed_kinds_merge(kmine, stats);
    for (int k = 0; rc == FF_OK && k < FF_TASKS_MAX && mine[k]; k++) {
        int q = task_index(e->pooled, mine[k]->task);
        if (q < 0) {
            rc = ff_error(FF_EFORMAT, "evaluation from %s: too many tasks", e->names[site]);
        } else if (!e->pooled[q]) {
            e->pooled[q] = mine[k];
            mine[k] = NULL;
        } else {
            rc = ff_eval_hist_merge(e->pooled[q], mine[k]);
        }
    }
    for (int k = 0; rc == FF_OK && k < FF_TASKS_MAX && kmine[k]; k++) {
        json_t *one = json_array(); /* merged into the pooled slots by name */
        json_t *kj = NULL;
        rc = ff_eval_kind_stats_to_json(kmine[k], &kj);
        if (rc == FF_OK) {
            json_array_append_new(one, kj);
            rc = fed_kinds_merge(e->kpooled, one);
        }
        json_decref(one);
    }
    pooled_free(mine);
    json_t *val = json_object_get(j, "val_hists"); /* absent from sites of older versions */
    if (rc == FF_OK && json_is_array(val)) {
        ff_eval_hist *v[FF_TASKS_MAX] = {0};
        rc = merge_hists(v, val); /* validated here, merged when the report is made */
        pooled_free(v);
    }
    fed_kinds_free(kmine);
    if (rc == FF_OK) {
        json_object_set(e->site_hists, e->names[site], arr);
        if (json_is_array(val))
            json_object_set(e->site_val, e->names[site], val);
        if (stats)
            json_object_set(e->site_stats, e->names[site], stats);
    } else
        FF_LOG_WARN("%s", ff_error_message());
    json_decref(j);
    return rc;
}

static int ev_close(void *ud, ff_coord *c, const int *done, size_t ndone)
{
    fed_evalstate *e = ud;
    (void)done;
    json_t *au = json_object(), *undef = json_object(), *headline = json_object();
    double sum = 0;
    int nd = 0;
    for (int k = 0; k < FF_TASKS_MAX && e->pooled[k]; k++) {
        const char *why = NULL, *tn = e->pooled[k]->task;
        double v = fed_hist_auroc(e->pooled[k], &why);
        json_object_set_new(au, tn, isfinite(v) ? json_real(v) : json_null());
        if (isfinite(v)) {
            sum += v;
            nd++;
        } else {
            json_object_set_new(undef, tn, json_string(why));
            FF_LOG_WARN("round %lld: pooled test AUROC of task %s is undefined: %s",
                        (long long)ff_coord_round(c), tn, why);
        }
    }
    if (fed_kinds_round(e->kpooled, ff_coord_round(c), headline, undef) != FF_OK)
        FF_LOG_WARN("%s", ff_error_message());
    /* the mean over the tasks whose AUROC is defined (NaN in rounds.csv when none is) */
    ff_coord_set_pooled_auroc(c, nd > 0 ? sum / nd : NAN);
    json_t *entry = json_pack("{s:I, s:I, s:o}", "round", (json_int_t)ff_coord_round(c),
                              "eval_sites", (json_int_t)ndone, "auroc", au);
    if (json_object_size(headline) > 0)
        json_object_set(entry, "headline", headline);
    if (json_object_size(undef) > 0)
        json_object_set(entry, "undefined", undef);
    if (json_object_size(headline) > 0) { /* a run with other kinds: every task's headline */
        char line[2048];
        fed_round_summary(entry, line, sizeof line);
        FF_LOG_INFO("round %lld: pooled test %s", (long long)ff_coord_round(c), line);
    }
    if (e->audit)
        fed_audit_evaluation(e->audit, entry);
    json_array_append_new(e->rounds, entry);
    json_decref(undef);
    json_decref(headline);
    pooled_free(e->pooled);
    fed_kinds_free(e->kpooled);
    int rc = state_write(e);
    return rc == FF_OK ? FF_OK : (FF_LOG_WARN("%s", ff_error_message()), FF_OK);
}

int fed_evalstate_init(fed_evalstate *e, ff_coord *c, const char *const *names, size_t nsites,
                       const char *out_dir, const ff_coord_report_config *report)
{
    memset(e, 0, sizeof *e);
    e->c = c;
    e->names = names;
    e->nsites = nsites;
    e->report = *report;
    ff_strlcpy(e->out_dir, out_dir, sizeof e->out_dir);
    e->site_hists = json_object();
    e->site_val = json_object();
    e->site_stats = json_object();
    e->rounds = json_array();
    ff_coord_phase *p = ff_coord_phase_find(c, FF_PHASE_EVALUATE);
    if (!p)
        return ff_error(FF_EINTERNAL, "the engine has no evaluate phase");
    p->on_open = ev_open;
    p->on_submit = ev_submit;
    p->on_close = ev_close;
    p->ud = e;
    return FF_OK;
}

/* Keeps the rounds the checkpoint covers (a killed run may have evaluated one more). */
int fed_evalstate_resume(fed_evalstate *e)
{
    char path[FF_COORD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/fedeval.json", e->out_dir);
    if (!ff_path_exists(path))
        return FF_OK;
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        return ff_error(FF_EFORMAT, "%s: %s", path, jerr.text);
    int64_t last = ff_coord_round(e->c);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "rounds"), i, v)
    {
        if (json_integer_value(json_object_get(v, "round")) <= last)
            json_array_append(e->rounds, v);
    }
    json_t *h = json_object_get(j, "hists"), *vh = json_object_get(j, "val_hists");
    if (json_is_object(h))
        json_object_update(e->site_hists, h);
    if (json_is_object(vh))
        json_object_update(e->site_val, vh);
    json_t *st = json_object_get(j, "stats");
    if (json_is_object(st))
        json_object_update(e->site_stats, st);
    json_decref(j);
    return FF_OK;
}

int fed_evalstate_finish(fed_evalstate *e)
{
    int rc = state_write(e);
    if (rc == FF_OK)
        rc = ff_fed_write_report(e->out_dir, NULL, 0);
    return rc;
}

void fed_evalstate_free(fed_evalstate *e)
{
    pooled_free(e->pooled);
    fed_kinds_free(e->kpooled);
    json_decref(e->site_hists);
    json_decref(e->site_val);
    json_decref(e->site_stats);
    json_decref(e->rounds);
    memset(e, 0, sizeof *e);
}

