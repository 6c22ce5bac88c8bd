/* tabular.csv: one row per patient, patient_id and the model config's declared features
 * (docs/data.md). Numeric cells are numbers, categorical cells one of the declared
 * categories; an empty cell is a missing value. The batch row encodes each feature as
 * ff_feature_set describes (standardised value or one-hot, then a missing indicator). */
#include "site_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    reader r;
    int ncols;                       /* 0 until the header is read */
    int col_id;
    int feat[FF_CSV_FIELDS_CAP];     /* csv column -> feature index, -1 = ignored */
} tab_ctx;

static int tab_header(tab_ctx *t, const ff_csv_row *r)
{
    const ff_feature_set *fs = &t->r.s->shape.tab;
    int rc = ff_site_header_check(r, t->r.shown);
    if (rc != FF_OK)
        return rc;
    t->ncols = r->nfields;
    t->col_id = -1;
    int seen[FF_FEATURES_MAX] = {0};
    for (int i = 0; i < r->nfields; i++) {
        t->feat[i] = -1;
        if (strcmp(r->fields[i], "patient_id") == 0) {
            t->col_id = i;
            continue;
        }
        int f = ff_feature_find(fs, r->fields[i], r->lens[i]);
        char why[200];
        if (f >= 0 && seen[f])
            return ff_error(FF_EFORMAT, "%s:1: column '%s' appears twice", t->r.shown,
                            fs->f[f].name);
        if (f < 0) {
            snprintf(why, sizeof why, "column %d '%.64s' is not a declared tabular feature "
                     "(model config tabular.features)", i + 1, r->fields[i]);
            if ((rc = ff_site_skip_row(t->r.opts, t->r.rep, FF_SKIP_TABULAR_CELL, t->r.shown, 1,
                                       why)) != FF_OK)
                return rc;
            continue;
        }
        seen[f] = 1;
        t->feat[i] = f;
    }
    if (t->col_id < 0)
        return ff_error(FF_EFORMAT, "%s:1: missing required column 'patient_id'", t->r.shown);
    for (int f = 0; f < fs->n; f++)
        if (!seen[f]) {
            char why[160];
            snprintf(why, sizeof why, "no column '%s' (a declared feature)",
                     fs->f[f].name);
            if ((rc = ff_site_skip_row(t->r.opts, t->r.rep, FF_SKIP_TABULAR_CELL, t->r.shown, 1,
                                       why)) != FF_OK)
                return rc;
        }
    return FF_OK;
}

/* The value of one cell (NaN = missing); a cell that does not fit its feature is reported
 * (never its content: it is patient data) and read as missing in lenient mode. */
static int tab_cell(tab_ctx *t, const ff_csv_row *r, int col, const ff_feature *f, float *out)
{
    const char *v = r->fields[col];
    size_t n = r->lens[col];
    *out = NAN;
    while (n > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    if (n == 0)
        return FF_OK;
    char why[200];
    if (f->kind == FF_FEATURE_CATEGORICAL) {
        int c = ff_feature_category(f, v, n);
        if (c >= 0) {
            *out = (float)c;
            return FF_OK;
        }
        snprintf(why, sizeof why, "column '%s': value is not one of the %d declared categories",
                 f->name, f->ncat);
    } else {
        char buf[64];
        char *end = NULL;
        double d = NAN;
        if (n < sizeof buf) {
            memcpy(buf, v, n);
            buf[n] = 0;
            d = strtod(buf, &end);
        }
        if (end && *end == 0 && isfinite(d) && fabs(d) < 3e38) {
            *out = (float)d;
            return FF_OK;
        }
        snprintf(why, sizeof why, "column '%s': not a finite number", f->name);
    }
    return ff_site_skip_row(t->r.opts, t->r.rep, FF_SKIP_TABULAR_CELL, t->r.shown, r->line, why);
}

static int tab_row(const ff_csv_row *r, void *vctx)
{
    tab_ctx *t = vctx;
    reader *c = &t->r;
    ff_site *s = c->s;
    if (t->ncols == 0)
        return tab_header(t, r);
    if (r->bad_utf8_line)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_BAD_UTF8, c->shown, r->bad_utf8_line,
                                "not valid UTF-8 text; save the file as UTF-8");
    if (r->nfields != t->ncols)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_TABULAR_ROW, c->shown, r->line,
                                "wrong number of fields");
    long p = ff_site_index_find(c->ix, s->ids, r->fields[t->col_id], r->lens[t->col_id]);
    if (p < 0)
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_TABULAR_ROW, c->shown, r->line,
                                "patient_id not in patients.csv");
    if (s->tab_has[p])
        return ff_site_skip_row(c->opts, c->rep, FF_SKIP_TABULAR_ROW, c->shown, r->line,
                                "second row of a patient (the first is kept)");
    s->tab_has[p] = 1;
    size_t nf = (size_t)s->shape.tab.n;
    for (int i = 0; i < t->ncols; i++) {
        int f = t->feat[i];
        if (f < 0)
            continue;
        int rc = tab_cell(t, r, i, &s->shape.tab.f[f], &s->tabv[(size_t)p * nf + (size_t)f]);
        if (rc != FF_OK)
            return rc;
    }
    return FF_OK;
}

int ff_site_tabular_read(ff_site *s, const char *dir, const ff_site_opts *o, ff_load_report *rep,
                         const id_index *ix)
{
    size_t nf = (size_t)s->shape.tab.n, n1 = s->n + 1;
    s->tabv = malloc(n1 * nf * sizeof *s->tabv);
    s->tab_has = calloc(n1, 1);
    if (!s->tabv || !s->tab_has)
        return ff_error(FF_ENOMEM, "tabular.csv: out of memory for %zu patients", s->n);
    for (size_t i = 0; i < n1 * nf; i++)
        s->tabv[i] = NAN;
    size_t dl = strlen(dir) + 16;
    char *path = malloc(dl);
    if (!path)
        return ff_error(FF_ENOMEM, "out of memory");
    snprintf(path, dl, "%s/tabular.csv", dir);
    int rc = FF_OK;
    if ((rep->has_tabular_file = ff_path_exists(path))) {
        tab_ctx t = {.r = {s, o, rep, path, ix}};
        rc = ff_csv_read(path, path, o->strict, tab_row, &t);
        if (rc == FF_OK && t.ncols == 0)
            rc = ff_error(FF_EFORMAT, "%s:1: empty file (no header)", path);
    }
    free(path);
    return rc;
}

/* Mean and sd (population, as scikit-learn's StandardScaler) of each numeric feature over
 * the kept train patients with a value; over every kept patient when the train split has
 * fewer than two values (a test-only site), and 0 / 1 when there are none. */
void ff_site_tabular_stats(ff_site *s)
{
    const ff_feature_set *fs = &s->shape.tab;
    for (int f = 0; f < fs->n; f++) {
        s->tab_mean[f] = 0, s->tab_sd[f] = 1;
        if (fs->f[f].kind != FF_FEATURE_NUMERIC)
            continue;
        for (int pass = 0; pass < 2; pass++) {
            double sum = 0, sq = 0, cnt = 0;
            for (int sp = 0; sp < FF_SPLIT_COUNT; sp++) {
                if (pass == 0 && sp != FF_SPLIT_TRAIN)
                    continue;
                for (size_t i = 0; i < s->count[sp]; i++) {
                    uint32_t p = s->members[sp][i];
                    float v = s->tabv[(size_t)p * (size_t)fs->n + (size_t)f];
                    if (!s->tab_has[p] || isnan(v))
                        continue;
                    sum += v, sq += (double)v * v, cnt++;
                }
            }
            if (cnt < 2 && pass == 0)
                continue;
            if (cnt < 1)
                break;
            double mean = sum / cnt, var = sq / cnt - mean * mean;
            s->tab_mean[f] = (float)mean;
            s->tab_sd[f] = var > 1e-24 ? (float)sqrt(var) : 1.0f;
            break;
        }
    }
}

void ff_site_tabular_row(const ff_site *s, size_t p, float *row, float *present)
{
    const ff_feature_set *fs = &s->shape.tab;
    memset(row, 0, (size_t)fs->width * sizeof *row);
    *present = s->tab_has && s->tab_has[p] ? 1.0f : 0.0f;
    if (*present == 0)
        return;
    for (int f = 0; f < fs->n; f++) {
        const ff_feature *ft = &fs->f[f];
        float v = s->tabv[p * (size_t)fs->n + (size_t)f];
        float *o = row + ft->col;
        if (isnan(v)) {
            o[ff_feature_width(ft) - 1] = 1.0f; /* the missing indicator */
        } else if (ft->kind == FF_FEATURE_NUMERIC) {
            o[0] = (v - s->tab_mean[f]) / s->tab_sd[f];
        } else {
            o[(int)v] = 1.0f;
        }
    }
}
