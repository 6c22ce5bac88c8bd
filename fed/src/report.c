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

static int task_index(const char *name)
{
    for (int k = 0; k < FF_CLIENT_TASKS; k++)
        if (strcmp(ff_client_task_names[k], name) == 0)
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
        int k = task_index(h->task);
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
    for (int k = 0; k < FF_CLIENT_TASKS; k++) {
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
    json_t *j = json_pack("{s:s, s:o, s:O, s:O}", "format", "fedfuse-fedeval-v1", "sites", names,
                          "rounds", e->rounds, "hists", e->site_hists);
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
    ff_eval_hist *mine[FF_CLIENT_TASKS] = {0};
    if (rc == FF_OK)
        rc = merge_hists(mine, arr); /* validate before touching the pooled state */
    for (int k = 0; rc == FF_OK && k < FF_CLIENT_TASKS; k++)
        if (mine[k]) {
            if (!e->pooled[k]) {
                e->pooled[k] = mine[k];
                mine[k] = NULL;
            } else {
                rc = ff_eval_hist_merge(e->pooled[k], mine[k]);
            }
        }
    pooled_free(mine);
    if (rc == FF_OK)
        json_object_set(e->site_hists, e->names[site], arr);
    else
        FF_LOG_WARN("%s", ff_error_message());
    json_decref(j);
    return rc;
}

static int ev_close(void *ud, ff_coord *c, const int *done, size_t ndone)
{
    fed_evalstate *e = ud;
    (void)done;
    json_t *au = json_object(), *undef = json_object();
    double sum = 0;
    int nd = 0;
    for (int k = 0; k < FF_CLIENT_TASKS; k++) {
        const char *why = NULL;
        double v = fed_hist_auroc(e->pooled[k], &why);
        json_object_set_new(au, ff_client_task_names[k], isfinite(v) ? json_real(v) : json_null());
        if (isfinite(v)) {
            sum += v;
            nd++;
        } else {
            json_object_set_new(undef, ff_client_task_names[k], json_string(why));
            FF_LOG_WARN("round %lld: pooled test AUROC of task %s is undefined: %s",
                        (long long)ff_coord_round(c), ff_client_task_names[k], why);
        }
    }
    /* the mean over the tasks whose AUROC is defined (NaN in rounds.csv when none is) */
    ff_coord_set_pooled_auroc(c, nd > 0 ? sum / nd : NAN);
    json_t *entry = json_pack("{s:I, s:I, s:o}", "round", (json_int_t)ff_coord_round(c),
                              "eval_sites", (json_int_t)ndone, "auroc", au);
    if (json_object_size(undef) > 0)
        json_object_set(entry, "undefined", undef);
    if (e->audit)
        fed_audit_evaluation(e->audit, entry);
    json_array_append_new(e->rounds, entry);
    json_decref(undef);
    pooled_free(e->pooled);
    int rc = state_write(e);
    return rc == FF_OK ? FF_OK : (FF_LOG_WARN("%s", ff_error_message()), FF_OK);
}

int fed_evalstate_init(fed_evalstate *e, ff_coord *c, const char *const *names, size_t nsites,
                       const char *out_dir)
{
    memset(e, 0, sizeof *e);
    e->c = c;
    e->names = names;
    e->nsites = nsites;
    ff_strlcpy(e->out_dir, out_dir, sizeof e->out_dir);
    e->site_hists = json_object();
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
    json_t *h = json_object_get(j, "hists");
    if (json_is_object(h))
        json_object_update(e->site_hists, h);
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
    json_decref(e->site_hists);
    json_decref(e->rounds);
    memset(e, 0, sizeof *e);
}

/* ---- the report ------------------------------------------------------------------------- */

typedef struct {
    ff_eval_result res[64][FF_CLIENT_TASKS];
    int have[64][FF_CLIENT_TASKS];
} results;

static int metrics_of(ff_eval_hist *h, ff_eval_result *r, const ff_eval_opts *eo, json_t **out)
{
    int rc = ff_eval_hist_metrics(h, 0, eo, r, NULL);
    if (rc == FF_OK && out)
        rc = ff_eval_to_json(r, NULL, 0, eo, out);
    return rc;
}

/* The pooled AUROC per round of task tn as a chart when every round has it; otherwise a note
 * naming the rounds where it is undefined and why (a chart cannot show "undefined"). */
static int add_curve(ff_report *rep, const json_t *rounds, const char *tn)
{
    size_t nr = json_array_size(rounds), nundef = 0, first = 0, last = 0;
    const char *why = NULL;
    double *curve = calloc(nr + 1, sizeof *curve);
    if (!curve)
        return ff_error(FF_ENOMEM, "out of memory");
    for (size_t r = 0; r < nr; r++) {
        const json_t *e = json_array_get(rounds, r);
        json_t *v = json_object_get(json_object_get(e, "auroc"), tn);
        curve[r] = json_is_number(v) ? json_number_value(v) : NAN;
        if (!isfinite(curve[r])) {
            json_int_t rn = json_integer_value(json_object_get(e, "round"));
            first = nundef++ ? first : (size_t)rn;
            last = (size_t)rn;
            const char *w = json_string_value(json_object_get(json_object_get(e, "undefined"), tn));
            why = w ? w : why ? why : "undefined";
        }
    }
    char label[160];
    int rc = FF_OK;
    if (nr > 0 && nundef == 0) {
        snprintf(label, sizeof label, "pooled test AUROC per round: %s", tn);
        rc = ff_report_add_rounds(rep, label, curve, nr);
    } else if (nundef > 0) {
        snprintf(label, sizeof label,
                 "Task %s: pooled test AUROC undefined in %zu of %zu rounds (rounds %zu..%zu): %s.",
                 tn, nundef, nr, first, last, why);
        rc = ff_report_add_note(rep, label);
    }
    free(curve);
    return rc;
}

int ff_fed_write_report(const char *out_dir, const char *const *notes, size_t nnotes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fedeval.json", out_dir);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j)
        return ff_error(FF_EFORMAT, "%s: %s", path, jerr.text);
    json_t *hists = json_object_get(j, "hists"), *rounds = json_object_get(j, "rounds");
    const char *names[64];
    size_t ns = 0;
    const char *key;
    json_t *val;
    json_object_foreach(hists, key, val)
    {
        if (ns < 64)
            names[ns++] = key;
    }
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    eo.bootstrap = 0;
    results *R = calloc(1, sizeof *R);
    ff_eval_hist *pooled[FF_CLIENT_TASKS] = {0};
    ff_eval_result pres[FF_CLIENT_TASKS];
    int phave[FF_CLIENT_TASKS] = {0};
    ff_report *rep = NULL;
    json_t *mj = json_object(), *tasks = json_object(), *au = json_object(),
           *undef = json_object();
    int rc = R ? ff_report_new(&rep, "fedfuse federated run: pooled and per-site test metrics")
               : ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && i < ns; i++)
        rc = merge_hists(pooled, json_object_get(hists, names[i]));
    if (rc == FF_OK)
        rc = ff_report_add_note(rep, "Computed at the coordinator from the sites' score histograms "
                                     "(no prediction left a site); test split of the final model.");
    for (size_t i = 0; rc == FF_OK && i < nnotes; i++)
        rc = ff_report_add_note(rep, notes[i]);
    for (int k = 0; rc == FF_OK && k < FF_CLIENT_TASKS; k++) {
        const char *tn = ff_client_task_names[k];
        json_t *tj = json_object(), *sj = json_object(), *pj = NULL;
        json_object_set_new(tasks, tn, tj);
        json_object_set_new(tj, "sites", sj);
        if (pooled[k]) {
            rc = metrics_of(pooled[k], &pres[k], &eo, &pj);
            phave[k] = rc == FF_OK;
            if (rc == FF_OK) {
                json_object_set_new(tj, "pooled", pj);
                json_object_set_new(au, tn, pres[k].auroc.defined ? json_real(pres[k].auroc.value)
                                                                  : json_null());
                if (!pres[k].auroc.defined)
                    json_object_set_new(undef, tn, json_string(pres[k].auroc.why));
                char col[96];
                snprintf(col, sizeof col, "%s: pooled", tn);
                rc = ff_report_add_column(rep, col, &pres[k], NULL, 0);
            }
        } else {
            json_object_set_new(au, tn, json_null());
            json_object_set_new(undef, tn, json_string("no site sent test results for this task"));
        }
        for (size_t i = 0; rc == FF_OK && i < ns; i++) {
            ff_eval_hist *one[FF_CLIENT_TASKS] = {0};
            rc = merge_hists(one, json_object_get(hists, names[i]));
            json_t *sm = NULL;
            if (rc == FF_OK && one[k]) {
                rc = metrics_of(one[k], &R->res[i][k], &eo, &sm);
                R->have[i][k] = rc == FF_OK;
                if (rc == FF_OK) {
                    json_object_set_new(sj, names[i], sm);
                    char col[160];
                    snprintf(col, sizeof col, "%s: %s", tn, names[i]);
                    rc = ff_report_add_column(rep, col, &R->res[i][k], NULL, 0);
                }
            }
            pooled_free(one);
        }
        if (rc == FF_OK)
            rc = add_curve(rep, rounds, tn);
    }
    json_object_set_new(mj, "source", json_string("federated score histograms, test split"));
    json_object_set_new(mj, "split", json_string("test"));
    json_object_set_new(mj, "auroc", au);
    json_object_set_new(mj, "undefined", undef); /* task -> why its pooled AUROC is undefined */
    json_object_set_new(mj, "tasks", tasks);
    json_object_set(mj, "rounds", rounds);
    if (rc == FF_OK) {
        snprintf(path, sizeof path, "%s/metrics.json", out_dir);
        rc = ff_eval_json_write(mj, path);
    }
    if (rc == FF_OK) {
        snprintf(path, sizeof path, "%s/report.html", out_dir);
        rc = ff_report_write(rep, path);
    }
    ff_report_free(rep);
    for (int k = 0; k < FF_CLIENT_TASKS; k++) {
        if (phave[k])
            ff_eval_result_free(&pres[k]);
        for (size_t i = 0; R && i < ns; i++)
            if (R->have[i][k])
                ff_eval_result_free(&R->res[i][k]);
    }
    pooled_free(pooled);
    free(R);
    json_decref(mj);
    json_decref(j);
    return rc;
}
