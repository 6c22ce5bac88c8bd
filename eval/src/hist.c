/* Federated evaluation: per-task score histograms that sites compute and the coordinator
 * merges; pooled metrics from merged histograms with their error bounds against the exact
 * pooled values (derivations in docs/evaluation.md). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HIST_FORMAT "fedfuse-eval-hist-1"

static void slice_free(ff_eval_hist_slice *s)
{
    free(s->attribute);
    free(s->level);
    free(s->pos);
    free(s->neg);
    free(s->ssum);
    memset(s, 0, sizeof *s);
}

void ff_eval_hist_free(ff_eval_hist *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nslices; i++)
        slice_free(&h->slices[i]);
    free(h->slices);
    free(h);
}

static int slice_append(ff_eval_hist *h, const char *attribute, const char *level)
{
    ff_eval_hist_slice *s = realloc(h->slices, (h->nslices + 1) * sizeof *s);
    if (!s)
        return ff_error(FF_ENOMEM, "hist: no memory");
    h->slices = s;
    ff_eval_hist_slice *n = &s[h->nslices];
    memset(n, 0, sizeof *n);
    size_t nb = (size_t)h->nbins;
    n->pos = calloc(nb, sizeof(double));
    n->neg = calloc(nb, sizeof(double));
    n->ssum = calloc(nb, sizeof(double));
    if (attribute)
        n->attribute = strdup(attribute);
    if (level)
        n->level = strdup(level);
    if (!n->pos || !n->neg || !n->ssum || (attribute && !n->attribute) ||
        (level && !n->level)) {
        slice_free(n);
        return ff_error(FF_ENOMEM, "hist: no memory for a slice of %d bins", h->nbins);
    }
    h->nslices++;
    return FF_OK;
}

int ff_eval_hist_new(ff_eval_hist **out, const char *task, int nbins)
{
    *out = NULL;
    if (nbins < 10 || nbins > 10000000)
        return ff_error(FF_EINVAL, "hist: nbins %d not in [10, 10^7]", nbins);
    ff_eval_hist *h = calloc(1, sizeof *h);
    if (!h)
        return ff_error(FF_ENOMEM, "hist: no memory");
    if (ff_strlcpy(h->task, task ? task : "", sizeof h->task) != FF_OK) {
        free(h);
        return ff_error(FF_EINVAL, "hist: task name '%s' longer than %zu bytes", task,
                        sizeof h->task - 1);
    }
    h->nbins = nbins;
    int rc = slice_append(h, NULL, NULL);
    if (rc != FF_OK) {
        ff_eval_hist_free(h);
        return rc;
    }
    *out = h;
    return FF_OK;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int ff_eval_hist_slice_find(ff_eval_hist *h, const char *attribute, const char *level,
                            size_t *index)
{
    for (size_t i = 0; i < h->nslices; i++)
        if (same_str(h->slices[i].attribute, attribute) && same_str(h->slices[i].level, level)) {
            *index = i;
            return FF_OK;
        }
    if (!attribute || !level)
        return ff_error(FF_EINVAL, "hist: a subgroup slice needs an attribute and a level");
    int rc = slice_append(h, attribute, level);
    if (rc == FF_OK)
        *index = h->nslices - 1;
    return rc;
}

static size_t bin_of(double s, int nbins)
{
    size_t b = (size_t)(s * nbins); /* monotone in s, so bins preserve the score order */
    return b >= (size_t)nbins ? (size_t)nbins - 1 : b;
}

static void slice_add(ff_eval_hist_slice *sl, int nbins, double s, int y)
{
    size_t b = bin_of(s, nbins);
    sl->ssum[b] += s;
    if (y) {
        sl->pos[b] += 1;
        sl->pos_s += s;
        sl->pos_s2 += s * s;
    } else {
        sl->neg[b] += 1;
        sl->neg_s += s;
        sl->neg_s2 += s * s;
    }
}

int ff_eval_hist_add(ff_eval_hist *h, const double *score, const uint8_t *label, size_t n,
                     const size_t *slice_idx)
{
    int rc = ev_check_inputs(score, label, n);
    if (rc != FF_OK)
        return rc;
    for (size_t i = 0; slice_idx && i < n; i++)
        if (slice_idx[i] >= h->nslices)
            return ff_error(FF_EINVAL, "hist: row %zu: slice %zu does not exist", i,
                            slice_idx[i]);
    for (size_t i = 0; i < n; i++)
        slice_add(&h->slices[slice_idx ? slice_idx[i] : 0], h->nbins, score[i], label[i]);
    return FF_OK;
}

/* The slice keeps its name only: what a site withheld never mixes with what others sent. */
static void slice_withhold(ff_eval_hist_slice *sl, int nbins, int sites, int64_t min_cell)
{
    memset(sl->pos, 0, (size_t)nbins * sizeof(double));
    memset(sl->neg, 0, (size_t)nbins * sizeof(double));
    memset(sl->ssum, 0, (size_t)nbins * sizeof(double));
    sl->pos_s = sl->pos_s2 = sl->neg_s = sl->neg_s2 = 0;
    sl->suppressed = sites;
    sl->min_cell = min_cell;
}

static void slice_counts(const ff_eval_hist *h, const ff_eval_hist_slice *sl, double *P,
                         double *N)
{
    *P = *N = 0;
    for (int b = 0; b < h->nbins; b++) {
        *P += sl->pos[b];
        *N += sl->neg[b];
    }
}

/* The statistics job's test (docs/statistics.md): a count is small when 0 < count < min. */
static int small_cell(double count, int64_t min_cell)
{
    return count > 0 && count < (double)min_cell;
}

static int small_group(double P, double N, int64_t min_cell, int outcomes)
{
    return small_cell(P + N, min_cell) ||
           (outcomes && (small_cell(P, min_cell) || small_cell(N, min_cell)));
}

/* One attribute's slices (indices idx[0..m)): primary, then complementary suppression. */
static size_t suppress_attribute(ff_eval_hist *h, const size_t *idx, size_t m, int64_t min_cell,
                                 int outcomes, const double *P, const double *N, int *out)
{
    double wp = 0, wn = 0; /* the withheld subgroups taken together */
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if ((out[i] = small_group(P[i], N[i], min_cell, outcomes))) {
            wp += P[i];
            wn += N[i];
            k++;
        }
    while (k > 0 && k < m && small_group(wp, wn, min_cell, outcomes)) {
        size_t best = m; /* the smallest subgroup still sent; ties: the first declared */
        for (size_t i = 0; i < m; i++)
            if (!out[i] && (best == m || P[i] + N[i] < P[best] + N[best]))
                best = i;
        out[best] = 1;
        wp += P[best];
        wn += N[best];
        k++;
    }
    for (size_t i = 0; i < m; i++)
        if (out[i])
            slice_withhold(&h->slices[idx[i]], h->nbins, 1, min_cell);
    return k;
}

int ff_eval_hist_suppress(ff_eval_hist *h, int64_t min_cell, int outcomes, size_t *nwithheld)
{
    if (nwithheld)
        *nwithheld = 0;
    if (min_cell <= 1 || h->nslices < 2)
        return FF_OK;
    size_t n = h->nslices;
    size_t *idx = malloc(n * sizeof *idx);
    double *P = malloc(n * sizeof *P), *N = malloc(n * sizeof *N);
    int *out = malloc(n * sizeof *out), *done = calloc(n, sizeof *done);
    int rc = idx && P && N && out && done ? FF_OK : ff_error(FF_ENOMEM, "hist: no memory");
    for (size_t i = 1; rc == FF_OK && i < n; i++) {
        if (done[i])
            continue;
        size_t m = 0; /* every slice of slice i's attribute, in declaration order */
        for (size_t j = i; j < n; j++)
            if (!done[j] && strcmp(h->slices[j].attribute, h->slices[i].attribute) == 0) {
                done[j] = 1;
                idx[m] = j;
                slice_counts(h, &h->slices[j], &P[m], &N[m]);
                m++;
            }
        size_t k = suppress_attribute(h, idx, m, min_cell, outcomes, P, N, out);
        if (nwithheld)
            *nwithheld += k;
    }
    free(idx);
    free(P);
    free(N);
    free(out);
    free(done);
    return rc;
}

int ff_eval_hist_merge(ff_eval_hist *dst, const ff_eval_hist *src)
{
    if (strcmp(dst->task, src->task) != 0)
        return ff_error(FF_EINVAL, "hist merge: task '%s' vs '%s'", dst->task, src->task);
    if (dst->nbins != src->nbins)
        return ff_error(FF_EINVAL, "hist merge: task '%s': %d bins vs %d", dst->task,
                        dst->nbins, src->nbins);
    /* create missing slices first so a failure leaves every count unchanged */
    size_t *map = malloc(src->nslices * sizeof *map);
    if (!map)
        return ff_error(FF_ENOMEM, "hist merge: no memory");
    int rc = FF_OK;
    for (size_t i = 0; i < src->nslices && rc == FF_OK; i++)
        rc = ff_eval_hist_slice_find(dst, src->slices[i].attribute, src->slices[i].level,
                                     &map[i]);
    for (size_t i = 0; i < src->nslices && rc == FF_OK; i++) {
        ff_eval_hist_slice *d = &dst->slices[map[i]];
        const ff_eval_hist_slice *s = &src->slices[i];
        if (s->suppressed > 0 || d->suppressed > 0) {
            slice_withhold(d, dst->nbins, d->suppressed + s->suppressed,
                           s->min_cell > d->min_cell ? s->min_cell : d->min_cell);
            continue;
        }
        for (int b = 0; b < dst->nbins; b++) {
            d->pos[b] += s->pos[b];
            d->neg[b] += s->neg[b];
            d->ssum[b] += s->ssum[b];
        }
        d->pos_s += s->pos_s;
        d->pos_s2 += s->pos_s2;
        d->neg_s += s->neg_s;
        d->neg_s2 += s->neg_s2;
    }
    free(map);
    return rc;
}

/* Non-empty bins as a score table, highest bin first, each at its lower edge, or (mean = 1)
 * at the mean of its scores: inside the bin, so the order is the same, and close to each
 * score on the logit scale, which the calibration fit needs. */
int ev_hist_table(const ff_eval_hist *h, const ff_eval_hist_slice *sl, int mean, ev_table *t)
{
    size_t m = 0;
    for (int b = 0; b < h->nbins; b++)
        m += sl->pos[b] + sl->neg[b] > 0;
    int rc = ev_table_alloc(t, m);
    if (rc != FF_OK)
        return rc;
    size_t k = 0;
    for (int b = h->nbins; b-- > 0;)
        if (sl->pos[b] + sl->neg[b] > 0) {
            t->s[k] = mean ? sl->ssum[b] / (sl->pos[b] + sl->neg[b]) : (double)b / h->nbins;
            t->pos[k] = sl->pos[b];
            t->neg[k++] = sl->neg[b];
        }
    ev_table_totals(t);
    return FF_OK;
}

/* Brier from the exact per-class sums; ECE and reliability from per-bin score sums, each fine
 * bin assigned to the reliability bin holding its midpoint. */
static void slice_calibration(const ff_eval_hist *h, const ff_eval_hist_slice *sl, int ebins,
                              ff_metric *brier, ff_metric *ece, ff_metric *mean,
                              ff_reliability *rel)
{
    double P = 0, N = 0;
    for (int b = 0; b < h->nbins; b++) {
        P += sl->pos[b];
        N += sl->neg[b];
    }
    double n = P + N;
    if (n == 0) {
        ev_undef(brier, "empty subgroup");
        ev_undef(ece, "empty subgroup");
        if (mean)
            ev_undef(mean, "empty subgroup");
        return;
    }
    ev_set(brier, (P - 2 * sl->pos_s + sl->pos_s2 + sl->neg_s2) / n);
    if (mean)
        ev_set(mean, (sl->pos_s + sl->neg_s) / n);
    double *c = calloc((size_t)ebins * 3, sizeof(double));
    if (!c) {
        ev_undef(ece, "out of memory");
        return;
    }
    double *sum = c + ebins, *tru = c + 2 * ebins;
    for (int b = 0; b < h->nbins; b++) {
        if (sl->pos[b] + sl->neg[b] == 0)
            continue;
        int k = ev_rel_bin(((double)b + 0.5) / h->nbins, ebins);
        c[k] += sl->pos[b] + sl->neg[b];
        sum[k] += sl->ssum[b];
        tru[k] += sl->pos[b];
    }
    if (rel)
        ev_ece_finish(c, sum, tru, ebins, ece, rel->count, rel->mean_pred, rel->frac_pos);
    else
        ev_ece_finish(c, sum, tru, ebins, ece, NULL, NULL, NULL);
    free(c);
}

static void bounds(const ev_table *t, const ff_eval_hist *h, int ebins, ff_eval_hist_bound *bd)
{
    memset(bd, 0, sizeof *bd);
    double same = 0, T = 0, F = 0, ap = 0;
    for (size_t k = 0; k < t->n; k++) {
        double p = t->pos[k], q = t->neg[k];
        same += p * q;
        if (p > 0)
            ap += p / t->P * ((T + p) / (T + F + p) - (T + 1) / (T + F + 1 + q));
        T += p;
        F += q;
    }
    bd->auroc = t->P > 0 && t->N > 0 ? same / (2 * t->P * t->N) : 0;
    bd->auprc = t->P > 0 ? ap : 0;
    bd->brier = 0;
    bd->calibration_exact = h->nbins % ebins == 0;
}

int ff_eval_hist_metrics(const ff_eval_hist *h, size_t slice, const ff_eval_opts *o,
                         ff_eval_result *r, ff_eval_hist_bound *bound)
{
    memset(r, 0, sizeof *r);
    ff_eval_opts def;
    o = ev_opts(o, &def);
    if (slice >= h->nslices)
        return ff_error(FF_EINVAL, "hist: slice %zu does not exist", slice);
    ev_table t;
    int rc = ev_hist_table(h, &h->slices[slice], 0, &t);
    if (rc != FF_OK)
        return rc;
    rc = ev_fill_from_table(&t, o, r);
    if (rc == FF_OK) {
        slice_calibration(h, &h->slices[slice], o->ece_bins, &r->brier, &r->ece, NULL, &r->rel);
        if (bound)
            bounds(&t, h, o->ece_bins, bound);
        rc = ev_hist_fit_and_ci(h, &h->slices[slice], o, r);
    }
    ev_table_free(&t);
    if (rc != FF_OK)
        ff_eval_result_free(r);
    return rc;
}

int ff_eval_hist_fairness(const ff_eval_hist *h, const char *attribute, const ff_eval_opts *o,
                          ff_eval_fairness *out)
{
    memset(out, 0, sizeof *out);
    ff_eval_opts def;
    o = ev_opts(o, &def);
    int rc = FF_OK;
    out->attribute = strdup(attribute);
    out->levels = calloc(h->nslices, sizeof *out->levels);
    if (!out->attribute || !out->levels) {
        rc = ff_error(FF_ENOMEM, "hist: no memory");
        goto out;
    }
    for (size_t i = 0; i < h->nslices && rc == FF_OK; i++) {
        const ff_eval_hist_slice *sl = &h->slices[i];
        if (!sl->attribute || strcmp(sl->attribute, attribute) != 0)
            continue;
        ff_eval_subgroup *g = &out->levels[out->nlevels++];
        ev_table t;
        rc = ev_hist_table(h, sl, 0, &t);
        if (rc != FF_OK)
            break;
        ev_subgroup_from_table(&t, o, g);
        if (sl->suppressed > 0)
            ev_subgroup_withheld(g, sl->suppressed, sl->min_cell);
        else if (g->n > 0)
            slice_calibration(h, sl, o->ece_bins, &g->brier, &g->ece, &g->mean_score, NULL);
        ev_table_free(&t);
        if (!(g->name = strdup(sl->level)))
            rc = ff_error(FF_ENOMEM, "hist: no memory");
    }
    if (rc == FF_OK && out->nlevels == 0)
        rc = ff_error(FF_ENOTFOUND, "hist '%s': no slices for attribute '%s'", h->task,
                      attribute);
    if (rc == FF_OK)
        ev_fairness_gaps(out);
    if (rc == FF_OK && o->bootstrap > 0)
        rc = ev_hist_fairness_ci(h, attribute, o, out);
out:
    if (rc != FF_OK)
        ff_eval_fairness_free(out);
    return rc;
}

/* ---- serialisation -------------------------------------------------------------------- */

static json_t *slice_json(const ff_eval_hist *h, const ff_eval_hist_slice *s)
{
    if (s->suppressed > 0) /* the name only: no count, bin or sum of a withheld subgroup */
        return json_pack("{s:s?,s:s?,s:i,s:I}", "attribute", s->attribute, "level", s->level,
                         "suppressed", s->suppressed, "min_cell_size", (json_int_t)s->min_cell);
    json_t *bins = json_array(), *pos = json_array(), *neg = json_array(), *ssum = json_array();
    for (int b = 0; bins && pos && neg && ssum && b < h->nbins; b++) {
        if (s->pos[b] + s->neg[b] == 0)
            continue;
        json_array_append_new(bins, json_integer(b));
        json_array_append_new(pos, json_integer((json_int_t)s->pos[b]));
        json_array_append_new(neg, json_integer((json_int_t)s->neg[b]));
        json_array_append_new(ssum, json_real(s->ssum[b]));
    }
    return json_pack("{s:s?,s:s?,s:o*,s:o*,s:o*,s:o*,s:f,s:f,s:f,s:f}", "attribute",
                     s->attribute, "level", s->level, "bins", bins, "pos", pos, "neg", neg,
                     "ssum", ssum, "pos_s", s->pos_s, "pos_s2", s->pos_s2, "neg_s", s->neg_s,
                     "neg_s2", s->neg_s2);
}

int ff_eval_hist_to_json(const ff_eval_hist *h, json_t **out)
{
    *out = NULL;
    json_t *sl = json_array();
    for (size_t i = 0; sl && i < h->nslices; i++)
        if (json_array_append_new(sl, slice_json(h, &h->slices[i])) != 0) {
            json_decref(sl);
            sl = NULL;
        }
    json_t *j = json_pack("{s:s,s:s,s:i,s:o*}", "format", HIST_FORMAT, "task", h->task,
                          "nbins", h->nbins, "slices", sl);
    if (!j || !sl)
        return ff_error(FF_ENOMEM, "hist: no memory for JSON");
    *out = j;
    return FF_OK;
}

static int num_field(const json_t *o, const char *key, size_t i, double *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_number(x) || !isfinite(json_number_value(x)) || json_number_value(x) < 0)
        return ff_error(FF_EFORMAT, "hist: slices[%zu].%s: missing or not a finite number >= 0",
                        i, key);
    *v = json_number_value(x);
    return FF_OK;
}

static int withheld_from_json(const ff_eval_hist *h, ff_eval_hist_slice *d, const json_t *s,
                              size_t i)
{
    const json_t *k = json_object_get(s, "suppressed"), *mc = json_object_get(s, "min_cell_size");
    if (i == 0)
        return ff_error(FF_EFORMAT, "hist: slices[0] (everyone) cannot be suppressed");
    if (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > 100000 ||
        !json_is_integer(mc) || json_integer_value(mc) < 2 || json_integer_value(mc) > 1000000)
        return ff_error(FF_EFORMAT, "hist: slices[%zu]: 'suppressed' must be a count of sites "
                        "in [1, 100000] and 'min_cell_size' an integer in [2, 10^6]", i);
    if (json_object_get(s, "bins") || json_object_get(s, "pos") || json_object_get(s, "neg"))
        return ff_error(FF_EFORMAT, "hist: slices[%zu]: a suppressed slice carries no bins", i);
    slice_withhold(d, h->nbins, (int)json_integer_value(k), json_integer_value(mc));
    return FF_OK;
}

static int slice_from_json(ff_eval_hist *h, const json_t *s, size_t i)
{
    const json_t *at = json_object_get(s, "attribute"), *lv = json_object_get(s, "level");
    if (i == 0 && (json_is_string(at) || json_is_string(lv)))
        return ff_error(FF_EFORMAT, "hist: slices[0] must be the whole population");
    if (i > 0 && (!json_is_string(at) || !json_is_string(lv)))
        return ff_error(FF_EFORMAT, "hist: slices[%zu]: attribute and level must be strings", i);
    size_t idx = 0;
    int rc = i == 0 ? FF_OK
                    : ff_eval_hist_slice_find(h, json_string_value(at), json_string_value(lv),
                                              &idx);
    if (rc != FF_OK)
        return rc;
    if (i > 0 && idx != h->nslices - 1)
        return ff_error(FF_EFORMAT, "hist: slices[%zu]: duplicate (%s, %s)", i,
                        json_string_value(at), json_string_value(lv));
    ff_eval_hist_slice *d = &h->slices[idx];
    if (json_object_get(s, "suppressed"))
        return withheld_from_json(h, d, s, i);
    const json_t *bins = json_object_get(s, "bins"), *pos = json_object_get(s, "pos"),
                 *neg = json_object_get(s, "neg"), *ssum = json_object_get(s, "ssum");
    size_t m = json_array_size(bins);
    if (!json_is_array(bins) || json_array_size(pos) != m || json_array_size(neg) != m ||
        json_array_size(ssum) != m)
        return ff_error(FF_EFORMAT, "hist: slices[%zu]: bins/pos/neg/ssum must be arrays of "
                        "one length", i);
    json_int_t prev = -1;
    for (size_t k = 0; k < m; k++) {
        json_t *b = json_array_get(bins, k), *p = json_array_get(pos, k),
               *q = json_array_get(neg, k), *s2 = json_array_get(ssum, k);
        if (!json_is_integer(b) || json_integer_value(b) <= prev ||
            json_integer_value(b) >= h->nbins)
            return ff_error(FF_EFORMAT, "hist: slices[%zu].bins[%zu]: not an increasing bin "
                            "index below %d", i, k, h->nbins);
        if (!json_is_integer(p) || !json_is_integer(q) || json_integer_value(p) < 0 ||
            json_integer_value(q) < 0)
            return ff_error(FF_EFORMAT, "hist: slices[%zu]: pos/neg[%zu] must be counts >= 0",
                            i, k);
        if (!json_is_number(s2) || !isfinite(json_number_value(s2)) ||
            json_number_value(s2) < 0)
            return ff_error(FF_EFORMAT, "hist: slices[%zu].ssum[%zu]: not a finite sum >= 0",
                            i, k);
        prev = json_integer_value(b);
        d->pos[prev] = (double)json_integer_value(p);
        d->neg[prev] = (double)json_integer_value(q);
        d->ssum[prev] = json_number_value(s2);
    }
    rc = num_field(s, "pos_s", i, &d->pos_s);
    if (rc == FF_OK)
        rc = num_field(s, "pos_s2", i, &d->pos_s2);
    if (rc == FF_OK)
        rc = num_field(s, "neg_s", i, &d->neg_s);
    if (rc == FF_OK)
        rc = num_field(s, "neg_s2", i, &d->neg_s2);
    return rc;
}

int ff_eval_hist_from_json(const json_t *j, ff_eval_hist **out)
{
    *out = NULL;
    const char *fmt = json_string_value(json_object_get(j, "format"));
    if (!fmt || strcmp(fmt, HIST_FORMAT) != 0)
        return ff_error(FF_EFORMAT, "hist: format is '%s', expected '%s'", fmt ? fmt : "(none)",
                        HIST_FORMAT);
    const char *task = json_string_value(json_object_get(j, "task"));
    json_t *nb = json_object_get(j, "nbins"), *sl = json_object_get(j, "slices");
    if (!task || !json_is_integer(nb) || !json_is_array(sl) || json_array_size(sl) == 0)
        return ff_error(FF_EFORMAT, "hist: needs 'task', integer 'nbins' and a non-empty "
                                    "'slices' array");
    if (json_integer_value(nb) < 10 || json_integer_value(nb) > 10000000)
        return ff_error(FF_EFORMAT, "hist: nbins %lld not in [10, 10^7]",
                        (long long)json_integer_value(nb));
    /* a summary from the network must not make the coordinator allocate without bound */
    if (json_array_size(sl) > 4096 ||
        (double)json_integer_value(nb) * (double)json_array_size(sl) > 5e7)
        return ff_error(FF_EFORMAT, "hist: %zu slices of %lld bins exceed the limit (4096 "
                        "slices, 5e7 bins in all)", json_array_size(sl),
                        (long long)json_integer_value(nb));
    ff_eval_hist *h;
    int rc = ff_eval_hist_new(&h, task, (int)json_integer_value(nb));
    for (size_t i = 0; rc == FF_OK && i < json_array_size(sl); i++)
        rc = slice_from_json(h, json_array_get(sl, i), i);
    if (rc != FF_OK) {
        if (rc != FF_ENOMEM)
            ff_error_prefix(rc, "task '%s': ", task);
        ff_eval_hist_free(h);
        return rc;
    }
    *out = h;
    return FF_OK;
}
