/* What a site computes for a query, and its disclosure control before anything leaves it
 * (docs/statistics.md, "Disclosure control"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

/* One computation: each cell's value, whether it is suppressed, and (count cells) the rows
 * it counts, which the query history keeps as fingerprints. */
typedef struct {
    const ff_stats_query *q;
    const ff_stats_table *t;
    int64_t *val;
    unsigned char *sup, *primary;
    size_t **rows, *nrows, *caprows;
    unsigned char *in; /* cohort membership per row */
} st_run;

static void run_free(st_run *r)
{
    for (size_t i = 0; r->rows && i < r->q->ncells; i++)
        free(r->rows[i]);
    free(r->rows);
    free(r->nrows);
    free(r->caprows);
    free(r->val);
    free(r->sup);
    free(r->primary);
    free(r->in);
}

static int add_row(st_run *r, size_t cell, size_t row)
{
    r->val[cell]++;
    if (ff_grow(&r->rows[cell], &r->caprows[cell], r->nrows[cell] + 1, sizeof *r->rows[cell]) !=
        FF_OK)
        return ff_error_prefix(FF_ENOMEM, "statistics: ");
    r->rows[cell][r->nrows[cell]++] = row;
    return FF_OK;
}

static int missing_text(const char *s)
{
    return !s || !s[0] || strcmp(s, "NA") == 0 || strcmp(s, "nan") == 0 || strcmp(s, "NaN") == 0;
}

/* The numeric value of row r in column c; 0 when missing or not a number. */
static int num(const st_table *t, size_t r, int c, double *x)
{
    if (c < 0)
        return 0;
    const char *s = st_cell_text(t, r, (size_t)c);
    return !missing_text(s) && ff_parse_f64(s, x) == FF_OK && isfinite(*x);
}

static int code_matches(const char *pat, const char *code)
{
    size_t l = strlen(pat);
    if (l && pat[l - 1] == '*')
        return strncmp(pat, code, l - 1) == 0;
    return strcmp(pat, code) == 0;
}

static int cohort(st_run *r)
{
    const st_cfg *c = &r->q->c;
    const st_table *t = &r->t->rows;
    const st_filter *f = c->where.items;
    for (size_t row = 0; row < t->nrows; row++) {
        int keep = 1;
        for (size_t i = 0; keep && i < c->where.count; i++) {
            int col = st_table_column(t, f[i].column);
            if (col < 0)
                return ff_error(FF_ENOTFOUND, "statistics: the site's data has no column '%s' "
                                "(query where[%zu])", f[i].column, i);
            const char *s = st_cell_text(t, row, (size_t)col);
            if (f[i].values.count) {
                keep = 0;
                for (size_t k = 0; k < f[i].values.count; k++)
                    keep |= strcmp(s, f[i].values.items[k]) == 0;
            } else {
                double x;
                keep = num(t, row, col, &x) && x >= f[i].min && x <= f[i].max;
            }
        }
        r->in[row] = (unsigned char)keep;
    }
    if (c->events.codes.count) {
        if (!r->t->has_events)
            return ff_error(FF_ENOTFOUND, "statistics: the query filters on events and this "
                            "site has no events.csv");
        unsigned char *hit = calloc(t->nrows + 1, 1);
        if (!hit)
            return ff_error(FF_ENOMEM, "statistics: out of memory");
        for (size_t e = 0; e < r->t->nevents; e++) {
            const st_event *ev = &r->t->events[e];
            for (size_t k = 0; ev->hours <= c->events.within_hours && k < c->events.codes.count; k++)
                if (code_matches(c->events.codes.items[k], ev->code))
                    hit[ev->row] = 1;
        }
        for (size_t row = 0; row < t->nrows; row++)
            r->in[row] &= hit[row];
        free(hit);
    }
    return FF_OK;
}

static int column_of(const st_table *t, const char *name, const char *what)
{
    int c = st_table_column(t, name);
    if (c < 0)
        ff_error(FF_ENOTFOUND, "statistics: the site's data has no column '%s' (%s)", name, what);
    return c;
}

static int numeric_var(st_run *r, const st_var *v, int col)
{
    const st_table *t = &r->t->rows;
    double scale = pow(10.0, (double)v->decimals);
    int rc = FF_OK;
    for (size_t row = 0; rc == FF_OK && row < t->nrows; row++) {
        if (!r->in[row])
            continue;
        double x;
        if (!num(t, row, col, &x)) {
            rc = add_row(r, v->c_missing, row);
            continue;
        }
        rc = add_row(r, v->c_count, row);
        /* declared bounds clip the sums (what makes their sensitivity finite under privacy);
         * bins still see the value itself */
        double xs = v->lo > -ST_UNBOUNDED ? fmax(x, v->lo) : x;
        xs = v->hi < ST_UNBOUNDED ? fmin(xs, v->hi) : xs;
        int64_t fx = (int64_t)llround(xs * scale);
        r->val[v->c_sum] += fx;
        r->val[v->c_sumsq] += fx * fx;
        if (rc == FF_OK && v->nhist)
            rc = add_row(r, v->c_hist + st_bin_of(&v->hist, v->nhist, x), row);
        if (v->nfine)
            r->val[v->c_fine + st_bin_of(&v->quantiles, v->nfine, x)]++;
    }
    return rc;
}

/* Index of row's value among v's values: 0..n-1, n = other, -1 = missing. */
static int cat_index(const st_table *t, size_t row, int col, const st_var *v)
{
    const char *s = st_cell_text(t, row, (size_t)col);
    if (missing_text(s))
        return -1;
    for (size_t k = 0; k < v->values.count; k++)
        if (strcmp(s, v->values.items[k]) == 0)
            return (int)k;
    return (int)v->values.count;
}

static int categorical_var(st_run *r, const st_var *v, int col)
{
    const st_table *t = &r->t->rows;
    int rc = FF_OK;
    for (size_t row = 0; rc == FF_OK && row < t->nrows; row++) {
        if (!r->in[row])
            continue;
        int k = cat_index(t, row, col, v);
        if (k < 0) {
            rc = add_row(r, v->c_missing, row);
            continue;
        }
        rc = add_row(r, v->c_count, row);
        if (rc == FF_OK)
            rc = add_row(r, v->c_val + (size_t)k, row);
    }
    return rc;
}

static int crosstab(st_run *r, const st_xtab *x)
{
    const st_table *t = &r->t->rows;
    const st_var *v = r->q->c.variables.items;
    const st_var *vr = &v[x->vr], *vc = &v[x->vc];
    int cr = column_of(t, vr->name, "crosstab"), cc = column_of(t, vc->name, "crosstab");
    if (cr < 0 || cc < 0)
        return FF_ENOTFOUND;
    int rc = FF_OK;
    for (size_t row = 0; rc == FF_OK && row < t->nrows; row++) {
        int a = r->in[row] ? cat_index(t, row, cr, vr) : -1;
        int b = r->in[row] ? cat_index(t, row, cc, vc) : -1;
        if (a >= 0 && b >= 0 && (size_t)a < vr->nval && (size_t)b < vc->nval)
            rc = add_row(r, x->c_cells + (size_t)a * vc->nval + (size_t)b, row);
    }
    return rc;
}

static int survival(st_run *r, const st_surv *s)
{
    const st_table *t = &r->t->rows;
    int ct = column_of(t, s->time, "survival time"), ce = column_of(t, s->event, "survival event");
    if (ct < 0 || ce < 0)
        return FF_ENOTFOUND;
    int rc = FF_OK;
    for (size_t row = 0; rc == FF_OK && row < t->nrows; row++) {
        double tm, ev;
        if (!r->in[row] || !num(t, row, ct, &tm) || !num(t, row, ce, &ev) || tm < 0)
            continue;
        rc = add_row(r, s->c_n, row);
        size_t j = (size_t)(tm / s->width);
        int event = ev != 0 && tm < s->max;
        if (j >= s->nbins)
            j = s->nbins - 1;
        if (rc == FF_OK)
            rc = add_row(r, s->c_bins + 2 * j + (event ? 0 : 1), row);
    }
    return rc;
}

/* ---- suppression ------------------------------------------------------------------------ */

static void suppress(st_run *r, size_t cell) { r->sup[cell] = 1; }

/* Complementary suppression in one table whose cells add up to a released total: never
 * exactly one suppressed cell, or total minus the others gives it back. The second cell is
 * the smallest other non-zero one (a zero when there is none). Returns 1 when it changed. */
static int complement(st_run *r, const size_t *cells, size_t n)
{
    size_t nsup = 0, best = n;
    for (size_t i = 0; i < n; i++)
        nsup += r->sup[cells[i]];
    if (nsup != 1 || n < 2)
        return 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = cells[i];
        if (r->sup[c])
            continue;
        if (best == n || (r->val[c] > 0 && (r->val[cells[best]] == 0 || r->val[c] < r->val[cells[best]])))
            best = i;
    }
    suppress(r, cells[best]);
    return 1;
}

static size_t range_group(size_t *g, size_t first, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = first + i;
    return n;
}

/* One pass over every table of the query; returns 1 when a cell was added. */
static int complement_pass(st_run *r, size_t *g)
{
    const st_cfg *c = &r->q->c;
    const st_var *v = c->variables.items;
    int changed = 0;
    for (size_t i = 0; i < c->variables.count; i++) {
        size_t two[2] = {v[i].c_count, v[i].c_missing};
        changed |= complement(r, two, 2);
        if (v[i].kind == ST_NUMERIC && v[i].nhist)
            changed |= complement(r, g, range_group(g, v[i].c_hist, v[i].nhist + 2));
        if (v[i].kind == ST_CATEGORICAL) {
            size_t n = range_group(g, v[i].c_val, v[i].nval + 1);
            g[n++] = v[i].c_missing;
            changed |= complement(r, g, n);
        }
    }
    const st_xtab *x = c->crosstabs.items;
    for (size_t i = 0; i < c->crosstabs.count; i++) {
        size_t nr = v[x[i].vr].nval, nc = v[x[i].vc].nval;
        for (size_t a = 0; a < nr; a++)
            changed |= complement(r, g, range_group(g, x[i].c_cells + a * nc, nc));
        for (size_t b = 0; b < nc; b++) {
            for (size_t a = 0; a < nr; a++)
                g[a] = x[i].c_cells + a * nc + b;
            changed |= complement(r, g, nr);
        }
    }
    return changed;
}

static int disclosure(st_run *r, int64_t k)
{
    const ff_stats_query *q = r->q;
    const st_cfg *c = &q->c;
    /* a cohort below the minimum: nothing about it leaves the site */
    int all = r->val[q->c_cohort] > 0 && r->val[q->c_cohort] < k;
    for (size_t i = 0; i < q->ncells; i++) {
        if (q->cells[i].kind != ST_CELL_COUNT)
            continue;
        r->primary[i] = all || (r->val[i] > 0 && r->val[i] < k);
        r->sup[i] = r->primary[i];
    }
    /* survival: bins are released while the site's at-risk set is at least the minimum.
     * From the first bin below it the site's remaining patients are censored at the end of
     * the bin before (administrative censoring): their later events never leave the site,
     * and the pooled curve goes on with the other sites. A survival count below the minimum
     * suppresses the whole curve (flags). */
    const st_surv *s = c->survival.items;
    for (size_t i = 0; i < c->survival.count; i++) {
        int64_t risk = r->val[s[i].c_n];
        int all_cut = r->sup[s[i].c_n];
        size_t cut = s[i].nbins;
        for (size_t j = 0; j < s[i].nbins; j++) {
            size_t d = s[i].c_bins + 2 * j;
            r->primary[d] = r->primary[d + 1] = 0;
            r->sup[d] = r->sup[d + 1] = (unsigned char)all_cut;
            if (cut == s[i].nbins && j > 0 && risk < k && risk > 0)
                cut = j;
            risk -= r->val[d] + r->val[d + 1];
        }
        if (all_cut || cut == s[i].nbins)
            continue;
        size_t into = s[i].c_bins + 2 * (cut - 1) + 1;
        for (size_t j = cut; j < s[i].nbins; j++) {
            size_t d = s[i].c_bins + 2 * j;
            for (size_t e = d; e < d + 2; e++) {
                for (size_t m = 0; m < r->nrows[e]; m++)
                    if (add_row(r, into, r->rows[e][m]) != FF_OK)
                        return FF_ENOMEM;
                r->val[e] = 0;
                r->nrows[e] = 0;
            }
        }
    }
    size_t *g = malloc((q->ncells + 1) * sizeof *g);
    if (!g)
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    for (int pass = 0; pass < 64 && complement_pass(r, g); pass++)
        ;
    free(g);
    /* sums of a suppressed count would give its values away */
    const st_var *v = c->variables.items;
    for (size_t i = 0; i < c->variables.count; i++)
        if (v[i].kind == ST_NUMERIC && (r->sup[v[i].c_count] || r->val[v[i].c_count] == 0)) {
            r->sup[v[i].c_sum] = r->sup[v[i].c_sumsq] = 1;
            r->val[v[i].c_sum] = r->val[v[i].c_sumsq] = 0;
        }
    return FF_OK;
}

static int run_compute(st_run *r, const ff_stats_query *q, const ff_stats_table *t, int64_t k)
{
    memset(r, 0, sizeof *r);
    r->q = q;
    r->t = t;
    size_t n = q->ncells + 1;
    r->val = calloc(n, sizeof *r->val);
    r->sup = calloc(n, 1);
    r->primary = calloc(n, 1);
    r->rows = calloc(n, sizeof *r->rows);
    r->nrows = calloc(n, sizeof *r->nrows);
    r->caprows = calloc(n, sizeof *r->caprows);
    r->in = calloc(t->rows.nrows + 1, 1);
    if (!r->val || !r->sup || !r->primary || !r->rows || !r->nrows || !r->caprows || !r->in)
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    int rc = cohort(r);
    for (size_t row = 0; rc == FF_OK && row < t->rows.nrows; row++)
        if (r->in[row])
            rc = add_row(r, q->c_cohort, row);
    const st_cfg *c = &q->c;
    const st_var *v = c->variables.items;
    for (size_t i = 0; rc == FF_OK && i < c->variables.count; i++) {
        int col = column_of(&t->rows, v[i].name, "variables");
        rc = col < 0                      ? FF_ENOTFOUND
             : v[i].kind == ST_NUMERIC ? numeric_var(r, &v[i], col)
                                          : categorical_var(r, &v[i], col);
    }
    const st_xtab *x = c->crosstabs.items;
    for (size_t i = 0; rc == FF_OK && i < c->crosstabs.count; i++)
        rc = crosstab(r, &x[i]);
    const st_surv *s = c->survival.items;
    for (size_t i = 0; rc == FF_OK && i < c->survival.count; i++)
        rc = survival(r, &s[i]);
    if (rc == FF_OK)
        rc = disclosure(r, k);
    return rc;
}

int ff_stats_policy_check(const ff_stats_query *q, const ff_stats_policy *p)
{
    if (p->allow_all)
        return FF_OK;
    for (size_t i = 0; i < q->ncolumns; i++) {
        size_t k = 0;
        while (k < p->nallowed && strcmp(p->allowed[k], q->columns[i]) != 0)
            k++;
        if (k == p->nallowed)
            return ff_error(FF_EPOLICY, "policy: statistics.variables does not allow '%s' (the "
                            "query %s reads it)", q->columns[i], q->c.name);
    }
    return FF_OK;
}

static void put_lanes(const st_run *r, uint32_t *lanes)
{
    const ff_stats_query *q = r->q;
    memset(lanes, 0, q->nlanes * sizeof *lanes);
    const st_var *v = q->c.variables.items;
    for (size_t i = 0; i < q->ncells; i++) {
        const st_cell *c = &q->cells[i];
        if (c->kind == ST_CELL_FINE) {
            lanes[c->lane] = (uint32_t)r->val[i];
            continue;
        }
        size_t w = c->kind == ST_CELL_WIDE ? ST_LIMBS : 1;
        lanes[c->lane + w] = r->sup[i];
        if (r->sup[i])
            continue; /* a suppressed cell leaves the site as 0 */
        uint64_t u = (uint64_t)r->val[i];
        for (size_t l = 0; l < w; l++)
            lanes[c->lane + l] = w == 1 ? (uint32_t)u : (uint32_t)((u >> (16 * l)) & 0xFFFFu);
    }
    /* a suppressed count's fine histogram (quantiles) is not sent either */
    for (size_t i = 0; i < q->c.variables.count; i++)
        if (v[i].nfine && r->sup[v[i].c_count])
            for (size_t j = 0; j < v[i].nfine + 2; j++)
                lanes[q->cells[v[i].c_fine + j].lane] = 0;
}

/* ---- the query history (differencing) --------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int row_fingerprints(const ff_stats_table *t, uint64_t **out)
{
    uint64_t *fp = calloc(t->rows.nrows + 1, sizeof *fp);
    if (!fp)
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    for (size_t i = 0; i < t->rows.nrows; i++) {
        uint8_t h[FF_SHA256_BYTES];
        ff_sha256(t->ids[i].id, strlen(t->ids[i].id), h);
        uint64_t v = 0;
        for (int b = 0; b < 8; b++)
            v = v << 8 | h[b];
        fp[t->ids[i].row] = v >> 1; /* 63 bits: a JSON integer */
    }
    *out = fp;
    return FF_OK;
}

/* The released cells of a run as sorted fingerprint sets (JSON arrays of integers). */
static json_t *released_sets(const st_run *r, const uint64_t *fp)
{
    json_t *cells = json_array();
    uint64_t *tmp = malloc((r->t->rows.nrows + 1) * sizeof *tmp);
    for (size_t i = 0; cells && tmp && i < r->q->ncells; i++) {
        if (r->q->cells[i].kind != ST_CELL_COUNT || r->sup[i] || r->nrows[i] == 0)
            continue;
        for (size_t k = 0; k < r->nrows[i]; k++)
            tmp[k] = fp[r->rows[i][k]];
        qsort(tmp, r->nrows[i], sizeof *tmp, cmp_u64);
        json_t *a = json_array();
        for (size_t k = 0; k < r->nrows[i]; k++)
            json_array_append_new(a, json_integer((json_int_t)tmp[k]));
        json_array_append_new(cells, a);
    }
    free(tmp);
    return cells;
}

/* |A Δ B| of two sorted arrays, stopping once it reaches cap. */
static size_t sym_diff(json_t *a, json_t *b, size_t cap)
{
    size_t i = 0, j = 0, na = json_array_size(a), nb = json_array_size(b), d = 0;
    while ((i < na || j < nb) && d < cap) {
        json_int_t x = i < na ? json_integer_value(json_array_get(a, i)) : 0;
        json_int_t y = j < nb ? json_integer_value(json_array_get(b, j)) : 0;
        if (i < na && j < nb && x == y) {
            i++;
            j++;
        } else if (j >= nb || (i < na && x < y)) {
            i++;
            d++;
        } else {
            j++;
            d++;
        }
    }
    return d;
}

static json_t *history_load(const char *path)
{
    if (!ff_path_exists(path))
        return json_pack("{s:i, s:[]}", "version", 1, "queries");
    json_error_t e;
    json_t *h = json_load_file(path, 0, &e);
    if (!json_is_array(json_object_get(h, "queries"))) {
        json_decref(h);
        ff_error(FF_EFORMAT, "%s:%d: not a statistics query history (%s)", path, e.line, e.text);
        return NULL;
    }
    return h;
}

/* The differencing rule: a new released cell A that was not itself released before, against
 * every cell B released by an earlier query: 0 < |A Δ B| < k isolates fewer than k patients. */
static int history_check(const st_run *r, const ff_stats_policy *p, json_t *cells)
{
    json_t *h = history_load(p->history);
    if (!h)
        return FF_EFORMAT;
    json_t *queries = json_object_get(h, "queries"), *qe, *a;
    size_t i, qi;
    int rc = FF_OK;
    json_array_foreach(cells, i, a)
    {
        int seen = 0;
        json_array_foreach(queries, qi, qe)
        {
            json_t *b;
            size_t bi;
            json_array_foreach(json_object_get(qe, "cells"), bi, b) seen |= sym_diff(a, b, 1) == 0;
        }
        json_array_foreach(queries, qi, qe)
        {
            json_t *b;
            size_t bi;
            json_array_foreach(json_object_get(qe, "cells"), bi, b)
            {
                size_t d = seen ? 0 : sym_diff(a, b, (size_t)p->min_cell);
                if (d > 0 && (int64_t)d < p->min_cell && rc == FF_OK)
                    rc = ff_error(FF_EPOLICY, "statistics: refused as a differencing attempt: a "
                                  "cell of query %s differs from a cell released for query %s by "
                                  "%zu patient(s), fewer than the minimum cell size %lld",
                                  r->q->c.name, json_string_value(json_object_get(qe, "name")), d,
                                  (long long)p->min_cell);
            }
        }
    }
    json_decref(h);
    return rc;
}

int ff_stats_site_compute(const ff_stats_query *q, const ff_stats_table *t,
                          const ff_stats_policy *p, uint32_t *lanes, ff_stats_site_report *rep)
{
    int rc = ff_stats_policy_check(q, p);
    if (rc != FF_OK)
        return rc;
    st_run r;
    uint64_t *fp = NULL;
    rc = run_compute(&r, q, t, p->min_cell);
    if (rc == FF_OK && p->history && p->history[0]) {
        rc = row_fingerprints(t, &fp);
        json_t *cells = rc == FF_OK ? released_sets(&r, fp) : NULL;
        if (rc == FF_OK)
            rc = cells ? history_check(&r, p, cells) : ff_error(FF_ENOMEM, "out of memory");
        json_decref(cells);
    }
    if (rc == FF_OK) {
        put_lanes(&r, lanes);
        if (rep) {
            memset(rep, 0, sizeof *rep);
            rep->rows = t->rows.nrows;
            rep->cohort = (size_t)r.val[q->c_cohort];
            for (size_t i = 0; i < q->ncells; i++) {
                rep->primary += r.primary[i];
                rep->complementary += r.sup[i] && !r.primary[i] && q->cells[i].kind == ST_CELL_COUNT;
            }
        }
    }
    free(fp);
    run_free(&r);
    return rc;
}

int ff_stats_history_record(const ff_stats_query *q, const ff_stats_table *t,
                            const ff_stats_policy *p)
{
    if (!p->history || !p->history[0])
        return FF_OK;
    st_run r;
    uint64_t *fp = NULL;
    json_t *h = NULL, *cells = NULL;
    int rc = run_compute(&r, q, t, p->min_cell);
    if (rc == FF_OK)
        rc = row_fingerprints(t, &fp);
    if (rc == FF_OK && !(cells = released_sets(&r, fp)))
        rc = ff_error(FF_ENOMEM, "statistics: out of memory");
    if (rc == FF_OK && !(h = history_load(p->history)))
        rc = FF_EFORMAT;
    char *text = NULL;
    if (rc == FF_OK) {
        json_array_append_new(json_object_get(h, "queries"),
                              json_pack("{s:s, s:s, s:O}", "name", q->c.name, "job", q->hash,
                                        "cells", cells));
        text = json_dumps(h, JSON_COMPACT);
        rc = text ? ff_file_write_atomic(p->history, text, strlen(text), 0600)
                  : ff_error(FF_ENOMEM, "statistics: out of memory");
    }
    free(text);
    json_decref(h);
    json_decref(cells);
    free(fp);
    run_free(&r);
    return rc;
}
