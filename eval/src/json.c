/* metrics.json (schema in docs/evaluation.md). Undefined metrics are null with their reason
 * under "undefined"; NaN can never reach the output because ff_metric values are only read
 * when defined. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Adds key: value-or-null, the reason into undef, the CI into ci. Returns -1 on OOM. */
static int put_metric(json_t *obj, json_t *undef, json_t *ci, const char *key,
                      const ff_metric *m)
{
    int rc = 0;
    if (m->defined && isfinite(m->value)) {
        rc |= json_object_set_new(obj, key, json_real(m->value));
    } else {
        rc |= json_object_set_new(obj, key, json_null());
        rc |= json_object_set_new(undef, key, json_string(m->why ? m->why : "undefined"));
    }
    if (ci && m->defined && m->has_ci && isfinite(m->lo) && isfinite(m->hi))
        rc |= json_object_set_new(ci, key, json_pack("[ff]", m->lo, m->hi));
    return rc;
}

static json_t *array_of(const double *v, size_t n, size_t max)
{
    json_t *a = json_array();
    size_t m = max && n > max ? max : n;
    for (size_t k = 0; a && k < m; k++) {
        double x = v[ev_thin_index(n, max, k)];
        if (json_array_append_new(a, isfinite(x) ? json_real(x) : json_null()) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *curves_json(const ff_eval_result *r, size_t max)
{
    const ff_reliability *rel = &r->rel;
    json_t *lo = json_array(), *hi = json_array(), *cnt = json_array(), *mp = json_array(),
           *fp = json_array();
    for (int b = 0; b < rel->nbins && lo && hi && cnt && mp && fp; b++) {
        double step = 1.0 / rel->nbins;
        json_array_append_new(lo, json_real(b * step));
        json_array_append_new(hi, json_real(b + 1 == rel->nbins ? 1.0 : (b + 1) * step));
        json_array_append_new(cnt, json_integer((json_int_t)rel->count[b]));
        json_array_append_new(mp, rel->count[b] > 0 ? json_real(rel->mean_pred[b]) : json_null());
        json_array_append_new(fp, rel->count[b] > 0 ? json_real(rel->frac_pos[b]) : json_null());
    }
    return json_pack("{s:{s:o*,s:o*,s:o*},s:{s:o*,s:o*,s:o*},s:{s:o*,s:o*,s:o*,s:o*,s:o*},"
                     "s:{s:o*,s:o*,s:o*,s:i}}",
                     "roc", "fpr", array_of(r->roc.x, r->roc.n, max), "tpr",
                     array_of(r->roc.y, r->roc.n, max), "threshold",
                     array_of(r->roc.thr, r->roc.n, max),
                     "pr", "recall", array_of(r->pr.x, r->pr.n, max), "precision",
                     array_of(r->pr.y, r->pr.n, max), "threshold",
                     array_of(r->pr.thr, r->pr.n, max),
                     "reliability", "bin_lower", lo, "bin_upper", hi, "count", cnt,
                     "mean_predicted", mp, "fraction_positive", fp,
                     "decision", "threshold", array_of(r->dca.t, r->dca.n, 0), "net_benefit_model",
                     array_of(r->dca.model, r->dca.n, 0), "net_benefit_treat_all",
                     array_of(r->dca.treat_all, r->dca.n, 0), "net_benefit_treat_none", 0);
}

static int subgroup_json(const ff_eval_subgroup *g, json_t **out)
{
    json_t *o = json_pack("{s:I,s:I}", "n", (json_int_t)g->n, "n_pos", (json_int_t)g->n_pos);
    json_t *undef = json_object(), *ci = json_object();
    int rc = !o || !undef || !ci;
    if (!rc) {
        rc |= put_metric(o, undef, ci, "auroc", &g->auroc);
        rc |= put_metric(o, undef, ci, "auprc", &g->auprc);
        rc |= put_metric(o, undef, ci, "brier", &g->brier);
        rc |= put_metric(o, undef, ci, "ece", &g->ece);
        rc |= put_metric(o, undef, NULL, "mean_score", &g->mean_score);
        rc |= put_metric(o, undef, NULL, "prevalence", &g->prevalence);
        rc |= put_metric(o, undef, ci, "alert_rate", &g->alert_rate);
        rc |= put_metric(o, undef, ci, "sensitivity", &g->sensitivity);
        rc |= put_metric(o, undef, ci, "false_positive_rate", &g->fpr);
        rc |= put_metric(o, undef, ci, "ppv", &g->ppv);
        rc |= json_object_set(o, "undefined", undef);
        if (json_object_size(ci) > 0) /* only with a bootstrap */
            rc |= json_object_set(o, "ci95", ci);
        if (g->site_suppressed > 0) /* n and n_pos are then 0: the sites did not say */
            rc |= json_object_set_new(o, "suppressed_at_site",
                                      json_pack("{s:i,s:I}", "sites", g->site_suppressed,
                                                "min_cell_size", (json_int_t)g->site_min_cell));
    }
    json_decref(undef);
    json_decref(ci);
    if (rc) {
        json_decref(o);
        return ff_error(FF_ENOMEM, "eval: no memory for JSON");
    }
    *out = o;
    return FF_OK;
}

static int fairness_json(const ff_eval_fairness *f, json_t **out)
{
    json_t *o = json_object(), *levels = json_object(), *undef = json_object(),
           *ci = json_object();
    int rc = !o || !levels || !undef || !ci;
    for (size_t l = 0; !rc && l < f->nlevels; l++) {
        json_t *g = NULL;
        if (subgroup_json(&f->levels[l], &g) != FF_OK)
            rc = 1;
        else
            rc |= json_object_set_new(levels, f->levels[l].name, g);
    }
    if (!rc) {
        rc |= json_object_set(o, "levels", levels);
        rc |= put_metric(o, undef, ci, "demographic_parity_difference", &f->dp_diff);
        rc |= put_metric(o, undef, ci, "equalized_odds_difference", &f->eo_diff);
        rc |= put_metric(o, undef, ci, "tpr_gap", &f->tpr_gap);
        rc |= put_metric(o, undef, ci, "fpr_gap", &f->fpr_gap);
        if (f->note)
            rc |= json_object_set_new(o, "note", json_string(f->note));
        rc |= json_object_set(o, "undefined", undef);
        if (json_object_size(ci) > 0) /* only with a bootstrap */
            rc |= json_object_set(o, "ci95", ci);
    }
    json_decref(ci);
    json_decref(levels);
    json_decref(undef);
    if (rc) {
        json_decref(o);
        return ff_error(FF_ENOMEM, "eval: no memory for JSON");
    }
    *out = o;
    return FF_OK;
}

int ff_eval_to_json(const ff_eval_result *r, const ff_eval_fairness *fair, size_t nfair,
                    const ff_eval_opts *o, json_t **out)
{
    *out = NULL;
    ff_eval_opts def;
    o = ev_opts(o, &def);
    char k_sens[64], k_spec[64], k_sens_t[80], k_spec_t[80];
    snprintf(k_sens, sizeof k_sens, "sensitivity_at_%g_specificity", o->target_spec * 100);
    snprintf(k_spec, sizeof k_spec, "specificity_at_%g_sensitivity", o->target_sens * 100);
    snprintf(k_sens_t, sizeof k_sens_t, "%s_threshold", k_sens);
    snprintf(k_spec_t, sizeof k_spec_t, "%s_threshold", k_spec);
    json_t *j = json_pack("{s:I,s:I,s:I,s:f}", "n", (json_int_t)r->n, "n_pos",
                          (json_int_t)r->n_pos, "n_neg", (json_int_t)r->n_neg, "threshold",
                          r->threshold);
    json_t *undef = json_object(), *ci = json_object(), *groups = json_object();
    int rc = !j || !undef || !ci || !groups;
    if (!rc) {
        rc |= put_metric(j, undef, ci, "auroc", &r->auroc);
        rc |= put_metric(j, undef, ci, "auprc", &r->auprc);
        rc |= put_metric(j, undef, ci, "brier", &r->brier);
        rc |= put_metric(j, undef, ci, "ece", &r->ece);
        rc |= put_metric(j, undef, ci, k_sens, &r->sens_at_spec);
        rc |= put_metric(j, undef, ci, k_spec, &r->spec_at_sens);
        rc |= put_metric(j, undef, NULL, k_sens_t, &r->sens_at_spec_thr);
        rc |= put_metric(j, undef, NULL, k_spec_t, &r->spec_at_sens_thr);
        rc |= put_metric(j, undef, ci, "calibration_slope", &r->cal_slope);
        rc |= put_metric(j, undef, ci, "calibration_intercept", &r->cal_intercept);
        rc |= put_metric(j, undef, NULL, "alert_rate", &r->alert_rate);
        rc |= put_metric(j, undef, NULL, "ppv", &r->ppv);
        rc |= put_metric(j, undef, NULL, "sensitivity", &r->sensitivity);
        rc |= put_metric(j, undef, NULL, "specificity", &r->specificity);
        rc |= json_object_set(j, "undefined", undef);
        rc |= json_object_set(j, "ci95", ci);
        rc |= json_object_set_new(j, "bootstrap",
                                  json_pack("{s:i,s:i,s:I}", "replicates", o->bootstrap, "used",
                                            r->bootstrap_done, "seed", (json_int_t)o->seed));
        rc |= json_object_set_new(j, "settings",
                                  json_pack("{s:i,s:f,s:f,s:i}", "ece_bins", o->ece_bins,
                                            "target_specificity", o->target_spec,
                                            "target_sensitivity", o->target_sens,
                                            "curve_points", o->curve_points));
        rc |= json_object_set_new(j, "curves", curves_json(r, (size_t)o->curve_points));
    }
    for (size_t i = 0; !rc && i < nfair; i++) {
        json_t *g = NULL;
        if (fairness_json(&fair[i], &g) != FF_OK)
            rc = 1;
        else
            rc |= json_object_set_new(groups, fair[i].attribute, g);
    }
    if (!rc)
        rc |= json_object_set(j, "groups", groups);
    json_decref(undef);
    json_decref(ci);
    json_decref(groups);
    if (rc) {
        json_decref(j);
        return ff_error(FF_ENOMEM, "eval: no memory for JSON");
    }
    *out = j;
    return FF_OK;
}

int ff_eval_json_write(const json_t *j, const char *path)
{
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    if (!s)
        return ff_error(FF_ENOMEM, "%s: cannot serialise JSON", path);
    size_t len = strlen(s);
    s[len] = '\n'; /* replaces the NUL; we pass len + 1 bytes and never use s as a string */
    int rc = ff_file_write_atomic(path, s, len + 1, 0644);
    free(s);
    return rc;
}

int ff_eval_task_to_json(const ff_eval_task_summary *t, const ff_eval_opts *o, json_t **out)
{
    *out = NULL;
    json_t *j = NULL, *sites = json_object();
    int rc = sites ? ff_eval_to_json(t->pooled, t->fair, t->nfair, o, &j)
                   : ff_error(FF_ENOMEM, "eval: no memory for JSON");
    for (size_t s = 0; rc == FF_OK && s < t->nsites; s++) {
        json_t *sj;
        rc = ff_eval_to_json(&t->sites[s], NULL, 0, o, &sj);
        if (rc == FF_OK && json_object_set_new(sites, t->site_names[s], sj) != 0)
            rc = ff_error(FF_ENOMEM, "eval: no memory for JSON");
    }
    if (rc == FF_OK && (json_object_set(j, "sites", sites) != 0 ||
                        json_object_set_new(j, "task", json_string(t->task ? t->task : "")) != 0))
        rc = ff_error(FF_ENOMEM, "eval: no memory for JSON");
    if (rc == FF_OK && t->bound &&
        (json_object_set_new(j, "hist_bins", json_integer(t->hist_bins)) != 0 ||
         json_object_set_new(j, "hist_bounds",
                             json_pack("{s:f,s:f,s:f,s:b}", "auroc", t->bound->auroc, "auprc",
                                       t->bound->auprc, "brier", t->bound->brier,
                                       "calibration_bins_exact",
                                       t->bound->calibration_exact)) != 0))
        rc = ff_error(FF_ENOMEM, "eval: no memory for JSON");
    json_decref(sites);
    if (rc != FF_OK)
        json_decref(j);
    else
        *out = j;
    return rc;
}

int ff_eval_tasks_to_json(const ff_eval_task_summary *t, size_t ntasks, const ff_eval_opts *o,
                          json_t **out)
{
    *out = NULL;
    json_t *tasks = json_object();
    int rc = tasks ? FF_OK : ff_error(FF_ENOMEM, "eval: no memory for JSON");
    for (size_t k = 0; rc == FF_OK && k < ntasks; k++) {
        json_t *tj;
        rc = ff_eval_task_to_json(&t[k], o, &tj);
        if (rc == FF_OK && json_object_set_new(tasks, t[k].task ? t[k].task : "", tj) != 0)
            rc = ff_error(FF_ENOMEM, "eval: no memory for JSON");
    }
    json_t *j = rc == FF_OK ? json_pack("{s:O}", "tasks", tasks) : NULL;
    if (rc == FF_OK && !j)
        rc = ff_error(FF_ENOMEM, "eval: no memory for JSON");
    json_decref(tasks);
    *out = j;
    return rc;
}

int ev_put_metric(json_t *obj, json_t *undef, json_t *ci, const char *key, const ff_metric *m)
{
    return put_metric(obj, undef, ci, key, m);
}
