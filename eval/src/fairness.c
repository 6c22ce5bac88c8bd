/* Fairness per protected attribute: metrics per level and the gaps between levels. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ev_subgroup_from_table(const ev_table *t, const ff_eval_opts *o, ff_eval_subgroup *g)
{
    g->n = (size_t)(t->P + t->N);
    g->n_pos = (size_t)t->P;
    int small = o->min_cell > 0 && g->n > 0 && g->n < (size_t)o->min_cell;
    if (g->n == 0 || small) {
        const char *why = small ? FF_EVAL_SUPPRESSED : "empty subgroup";
        ff_metric *all[] = {&g->auroc, &g->auprc, &g->brier, &g->ece, &g->mean_score,
                            &g->prevalence, &g->alert_rate, &g->sensitivity, &g->fpr, &g->ppv};
        for (size_t i = 0; i < FF_ARRAY_LEN(all); i++)
            ev_undef(all[i], why);
        return;
    }
    ev_auroc(t, &g->auroc);
    ev_auprc(t, &g->auprc);
    ev_brier_table(t, &g->brier);
    ev_ece_table(t, o->ece_bins, &g->ece, NULL, NULL, NULL);
    double ssum = 0;
    for (size_t k = 0; k < t->n; k++)
        ssum += t->s[k] * (t->pos[k] + t->neg[k]);
    ev_set(&g->mean_score, ssum / (double)g->n);
    ev_set(&g->prevalence, t->P / (double)g->n);
    ff_metric spec;
    ev_threshold_stats(t, o->threshold, &g->alert_rate, &g->ppv, &g->sensitivity, &spec);
    if (spec.defined)
        ev_set(&g->fpr, 1 - spec.value);
    else
        ev_undef(&g->fpr, spec.why);
}

void ev_subgroup_withheld(ff_eval_subgroup *g, int sites, int64_t min_cell)
{
    ff_metric *all[] = {&g->auroc, &g->auprc, &g->brier, &g->ece, &g->mean_score,
                        &g->prevalence, &g->alert_rate, &g->sensitivity, &g->fpr, &g->ppv};
    for (size_t i = 0; i < FF_ARRAY_LEN(all); i++)
        ev_undef(all[i], FF_EVAL_SUPPRESSED_SITE);
    g->n = g->n_pos = 0; /* unknown: the site did not say */
    g->site_suppressed = sites;
    g->site_min_cell = min_cell;
}

/* max - min of one rate over the levels where it is defined; undefined with fewer than two. */
static void gap(const ff_eval_fairness *f, size_t offset, ff_metric *out)
{
    double lo = INFINITY, hi = -INFINITY;
    size_t m = 0;
    for (size_t i = 0; i < f->nlevels; i++) {
        const ff_metric *v = (const ff_metric *)(const void *)((const char *)&f->levels[i] + offset);
        if (!v->defined)
            continue;
        lo = fmin(lo, v->value);
        hi = fmax(hi, v->value);
        m++;
    }
    if (m < 2)
        ev_undef(out, "fewer than two subgroups where the rate is defined");
    else
        ev_set(out, hi - lo);
}

void ev_fairness_gaps(ff_eval_fairness *f)
{
    gap(f, offsetof(ff_eval_subgroup, alert_rate), &f->dp_diff);
    gap(f, offsetof(ff_eval_subgroup, sensitivity), &f->tpr_gap);
    gap(f, offsetof(ff_eval_subgroup, fpr), &f->fpr_gap);
    if (f->tpr_gap.defined && f->fpr_gap.defined)
        ev_set(&f->eo_diff, fmax(f->tpr_gap.value, f->fpr_gap.value));
    else
        ev_undef(&f->eo_diff, f->tpr_gap.defined ? f->fpr_gap.why : f->tpr_gap.why);
}

void ff_eval_fairness_free(ff_eval_fairness *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nlevels; i++)
        free(f->levels[i].name);
    free(f->levels);
    free(f->attribute);
    free(f->note);
    memset(f, 0, sizeof *f);
}

int ff_eval_fairness_compute(const double *score, const uint8_t *label, const int32_t *level,
                             size_t n, const char *attribute, const char *const *level_names,
                             size_t nlevels, const ff_eval_opts *o, ff_eval_fairness *out)
{
    memset(out, 0, sizeof *out);
    ff_eval_opts def;
    o = ev_opts(o, &def);
    int rc = ev_check_inputs(score, label, n);
    if (rc != FF_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (level[i] < 0 || (size_t)level[i] >= nlevels)
            return ff_error(FF_EINVAL, "fairness '%s': row %zu: level %d not in [0, %zu)",
                            attribute, i, (int)level[i], nlevels);
    /* rows grouped by level with a counting sort: O(n + levels), not O(n * levels) */
    double *s = malloc((n ? n : 1) * sizeof *s);
    uint8_t *y = malloc(n ? n : 1);
    size_t *start = calloc(nlevels + 1, sizeof *start);
    out->attribute = strdup(attribute ? attribute : "");
    out->levels = calloc(nlevels ? nlevels : 1, sizeof *out->levels);
    if (!s || !y || !start || !out->attribute || !out->levels) {
        rc = ff_error(FF_ENOMEM, "fairness: no memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        start[level[i] + 1]++;
    for (size_t l = 0; l < nlevels; l++)
        start[l + 1] += start[l];
    for (size_t i = 0; i < n; i++) {
        size_t at = start[level[i]]++;
        s[at] = score[i];
        y[at] = label[i];
    }
    for (size_t l = 0; l < nlevels; l++) { /* start[l] now ends level l */
        size_t from = l == 0 ? 0 : start[l - 1];
        ev_table t;
        rc = ev_table_build(s + from, y + from, start[l] - from, &t, NULL);
        if (rc != FF_OK)
            goto out;
        out->nlevels = l + 1;
        out->levels[l].name = strdup(level_names[l] ? level_names[l] : "");
        ev_subgroup_from_table(&t, o, &out->levels[l]);
        ev_table_free(&t);
        if (!out->levels[l].name) {
            rc = ff_error(FF_ENOMEM, "fairness: no memory");
            goto out;
        }
    }
    ev_fairness_gaps(out);
out:
    free(s);
    free(y);
    free(start);
    if (rc != FF_OK)
        ff_eval_fairness_free(out);
    return rc;
}
