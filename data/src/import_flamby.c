/* FLamby's Fed-Heart-Disease and Fed-TCGA-BRCA (Ogier du Terrail et al., NeurIPS 2022):
 * the preprocessing of flamby/datasets/fed_heart_disease/dataset.py and
 * fed_tcga_brca/dataset.py on the user's copy of the source files, into one folder of plain
 * CSV matrices the benchmark (and anyone else) reads with ff_flamby_load. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const heart_centers[FF_FLAMBY_HEART_CENTERS] = {"cleveland", "hungarian",
                                                                   "switzerland", "va"};
/* After dropping slope, ca, thal (10–12) and one-hot encoding cp (2) and restecg (6) with the
 * first level dropped: pandas' get_dummies order, the other columns first. */
static const char *const heart_features[FF_FLAMBY_HEART_FEATURES] = {
    "age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak",
    "cp_2", "cp_3", "cp_4", "restecg_1", "restecg_2"};
static const int heart_plain_cols[8] = {0, 1, 3, 4, 5, 7, 8, 9};

void ff_flamby_split_free(ff_flamby_split *s)
{
    free(s->x);
    free(s->y);
    free(s->center);
    memset(s, 0, sizeof *s);
}

void ff_flamby_data_free(ff_flamby_data *d)
{
    for (int k = 0; k < FF_FLAMBY_MAX_CENTERS; k++) {
        ff_flamby_split_free(&d->train[k]);
        ff_flamby_split_free(&d->test[k]);
    }
    ff_flamby_split_free(&d->pooled_train);
    ff_flamby_split_free(&d->pooled_test);
    for (int j = 0; j < d->nfeatures && d->feature_names; j++)
        free(d->feature_names[j]);
    free(d->feature_names);
    memset(d, 0, sizeof *d);
}

/* Appends one row (x[d], y[t], centre) to a split, growing it. */
static int split_push(ff_flamby_split *s, const float *x, const float *y, int center)
{
    if (s->n == s->cap) {
        /* one capacity for the three parallel arrays: at least double the old one, so each
         * ff_grow grows its array to exactly cap (and checks cap * row bytes for overflow) */
        size_t cap = s->cap ? 2 * (size_t)s->cap : 64, cx = (size_t)s->cap, cy = cx, cc = cx;
        if (cap > INT_MAX)
            return ff_error(FF_ENOMEM, "flamby: more than %d rows", INT_MAX);
        if (ff_grow(&s->x, &cx, cap, (size_t)s->d * sizeof *s->x) != FF_OK ||
            ff_grow(&s->y, &cy, cap, (size_t)s->t * sizeof *s->y) != FF_OK ||
            ff_grow(&s->center, &cc, cap, sizeof *s->center) != FF_OK)
            return ff_error_prefix(FF_ENOMEM, "flamby: %zu rows: ", cap);
        s->cap = (int)cap;
    }
    memcpy(s->x + (size_t)s->n * s->d, x, (size_t)s->d * sizeof(float));
    memcpy(s->y + (size_t)s->n * s->t, y, (size_t)s->t * sizeof(float));
    s->center[s->n++] = center;
    return FF_OK;
}

static int parse_num(const char *s, double *v)
{
    char *end = NULL;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && isfinite(*v) ? FF_OK : FF_EINVAL;
}

/* ---- Fed-Heart-Disease ------------------------------------------------------------------ */

typedef struct {
    /* split.csv: split_of[c][row] = 0 absent, 1 train, 2 test */
    unsigned char *split_of[FF_FLAMBY_HEART_CENTERS];
    int nrows[FF_FLAMBY_HEART_CENTERS];
    int center; /* centre of the file being read */
    long row;   /* 0-based row of that file */
    const char *shown;
    ff_flamby_data *d;
} heart_ctx;

static int heart_split_row(const ff_csv_row *r, void *p)
{
    heart_ctx *h = p;
    if (r->line == 1)
        return r->nfields == 3 && strcmp(r->fields[0], "center") == 0
                   ? FF_OK
                   : ff_error(FF_EFORMAT, "%s:1: expected the header center,row,split", h->shown);
    if (r->nfields != 3)
        return ff_error(FF_EFORMAT, "%s:%ld: expected 3 fields, found %d", h->shown, r->line,
                        r->nfields);
    int c = -1;
    for (int k = 0; k < FF_FLAMBY_HEART_CENTERS; k++)
        if (strcmp(r->fields[0], heart_centers[k]) == 0)
            c = k;
    double row;
    int sp = strcmp(r->fields[2], "train") == 0 ? 1 : (strcmp(r->fields[2], "test") == 0 ? 2 : 0);
    if (c < 0 || parse_num(r->fields[1], &row) != FF_OK || row < 0 || row > 100000 ||
        row != floor(row) || !sp)
        return ff_error(FF_EFORMAT, "%s:%ld: bad row '%s,%s,%s'", h->shown, r->line, r->fields[0],
                        r->fields[1], r->fields[2]);
    int i = (int)row;
    if (i >= h->nrows[c]) {
        int n = i + 64;
        unsigned char *p2 = realloc(h->split_of[c], (size_t)n);
        if (!p2)
            return ff_error(FF_ENOMEM, "flamby: no memory");
        memset(p2 + h->nrows[c], 0, (size_t)(n - h->nrows[c]));
        h->split_of[c] = p2;
        h->nrows[c] = n;
    }
    h->split_of[c][i] = (unsigned char)sp;
    return FF_OK;
}

static int heart_data_row(const ff_csv_row *r, void *p)
{
    heart_ctx *h = p;
    long row = h->row++;
    int c = h->center;
    int sp = row < h->nrows[c] ? h->split_of[c][row] : 0;
    if (!sp)
        return FF_OK; /* FLamby dropped it (a '?' outside slope, ca, thal) */
    if (r->nfields != 14)
        return ff_error(FF_EFORMAT, "%s:%ld: expected 14 fields, found %d", h->shown, r->line,
                        r->nfields);
    double v[14];
    for (int j = 0; j < 14; j++) {
        if (j >= 10 && j <= 12)
            continue; /* slope, ca, thal: dropped */
        if (parse_num(r->fields[j], &v[j]) != FF_OK)
            return ff_error(FF_EFORMAT, "%s:%ld: column %d is '%s', not a number (split.csv keeps "
                            "this row: not FLamby's copy of the file?)", h->shown, r->line, j + 1,
                            r->fields[j]);
    }
    float x[FF_FLAMBY_HEART_FEATURES], y = v[13] > 0 ? 1.0f : 0.0f;
    for (int j = 0; j < 8; j++)
        x[j] = (float)v[heart_plain_cols[j]];
    for (int l = 2; l <= 4; l++)
        x[8 + l - 2] = v[2] == l ? 1.0f : 0.0f; /* cp ∈ {1..4}, level 1 dropped */
    for (int l = 1; l <= 2; l++)
        x[11 + l - 1] = v[6] == l ? 1.0f : 0.0f; /* restecg ∈ {0, 1, 2}, level 0 dropped */
    ff_flamby_split *s = sp == 1 ? &h->d->train[c] : &h->d->test[c];
    return split_push(s, x, &y, c);
}

/* Mean and unbiased std per column of s (FLamby: torch .mean(0), .std(0)). */
static void col_stats(const ff_flamby_split *s, double *mean, double *sd)
{
    for (int j = 0; j < s->d; j++) {
        double m = 0, q = 0;
        for (int i = 0; i < s->n; i++)
            m += s->x[(size_t)i * s->d + j];
        m /= s->n;
        for (int i = 0; i < s->n; i++) {
            double e = s->x[(size_t)i * s->d + j] - m;
            q += e * e;
        }
        mean[j] = m;
        sd[j] = s->n > 1 ? sqrt(q / (s->n - 1)) : 0.0;
    }
}

/* x ← (x − mean) / (std + 1e-9), FLamby's normalisation (a constant column stays 0). */
static void standardise(ff_flamby_split *s, const double *mean, const double *sd)
{
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->d; j++) {
            float *v = &s->x[(size_t)i * s->d + j];
            *v = (float)((*v - mean[j]) / (sd[j] + 1e-9));
        }
}

int ff_flamby_standardise(ff_flamby_data *d)
{
    double *mean = malloc((size_t)d->nfeatures * 2 * sizeof(double));
    if (!mean)
        return ff_error(FF_ENOMEM, "flamby: no memory");
    double *sd = mean + d->nfeatures;
    col_stats(&d->pooled_train, mean, sd);
    standardise(&d->pooled_train, mean, sd);
    standardise(&d->pooled_test, mean, sd);
    for (int k = 0; k < d->ncenters; k++) {
        col_stats(&d->train[k], mean, sd);
        standardise(&d->train[k], mean, sd);
        standardise(&d->test[k], mean, sd);
    }
    free(mean);
    return FF_OK;
}

static int init_splits(ff_flamby_data *d, int ncenters, int nf, int nt)
{
    d->ncenters = ncenters;
    d->nfeatures = nf;
    d->ntargets = nt;
    for (int k = 0; k < ncenters; k++) {
        d->train[k].d = d->test[k].d = nf;
        d->train[k].t = d->test[k].t = nt;
    }
    d->pooled_train.d = d->pooled_test.d = nf;
    d->pooled_train.t = d->pooled_test.t = nt;
    d->feature_names = calloc((size_t)nf, sizeof(char *));
    return d->feature_names ? FF_OK : ff_error(FF_ENOMEM, "flamby: no memory");
}

/* A feature name as a plain CSV header field: commas (brca.csv has "..., NOS") become ';'
 * and quotes '\'', so the files need no quoting. */
static int set_name(ff_flamby_data *d, int j, const char *name)
{
    char *s = d->feature_names[j] = strdup(name);
    if (!s)
        return ff_error(FF_ENOMEM, "flamby: no memory");
    for (; *s; s++)
        *s = *s == ',' ? ';' : (*s == '"' ? '\'' : *s);
    return FF_OK;
}

static int heart_read(const char *in, ff_flamby_data *d)
{
    heart_ctx h = {.d = d};
    char path[1024];
    int rc = init_splits(d, FF_FLAMBY_HEART_CENTERS, FF_FLAMBY_HEART_FEATURES, 1);
    for (int j = 0; j < FF_FLAMBY_HEART_FEATURES && rc == FF_OK; j++)
        rc = set_name(d, j, heart_features[j]);
    d->dataset = FF_FLAMBY_HEART;
    snprintf(path, sizeof path, "%s/split.csv", in);
    h.shown = path;
    if (rc == FF_OK)
        rc = ff_csv_read(path, path, 1, heart_split_row, &h);
    for (int c = 0; c < FF_FLAMBY_HEART_CENTERS && rc == FF_OK; c++) {
        char file[1024];
        snprintf(file, sizeof file, "%s/raw/processed.%s.data", in, heart_centers[c]);
        if (!ff_path_exists(file)) /* also accept the four files directly in DIR */
            snprintf(file, sizeof file, "%s/processed.%s.data", in, heart_centers[c]);
        h.center = c;
        h.row = 0;
        h.shown = file;
        rc = ff_csv_read(file, file, 0, heart_data_row, &h);
    }
    for (int c = 0; c < FF_FLAMBY_HEART_CENTERS; c++)
        free(h.split_of[c]);
    return rc;
}

/* ---- Fed-TCGA-BRCA ---------------------------------------------------------------------- */

typedef struct {
    char **pid;       /* train_test_split.csv */
    signed char *fold; /* centre K of train_K (K) or test_K (K + 8) */
    int n, cap;
    const char *shown;
    ff_flamby_data *d;
} tcga_ctx;

static int tcga_split_row(const ff_csv_row *r, void *p)
{
    tcga_ctx *t = p;
    if (r->line == 1)
        return r->nfields == 3 && strcmp(r->fields[0], "pid") == 0 && strcmp(r->fields[2], "fold2") == 0
                   ? FF_OK
                   : ff_error(FF_EFORMAT, "%s:1: expected the header pid,fold,fold2", t->shown);
    if (r->nfields != 3)
        return ff_error(FF_EFORMAT, "%s:%ld: expected 3 fields", t->shown, r->line);
    const char *f = r->fields[2];
    int test = strncmp(f, "test_", 5) == 0, train = strncmp(f, "train_", 6) == 0;
    const char *k = f + (test ? 5 : 6);
    if ((!test && !train) || k[0] < '0' || k[0] > '5' || k[1] != '\0')
        return ff_error(FF_EFORMAT, "%s:%ld: fold2 '%s' is not train_K or test_K (K 0-5)", t->shown,
                        r->line, f);
    if (t->n == t->cap) {
        /* one capacity for both parallel arrays (see split_push) */
        size_t cap = t->cap ? 2 * (size_t)t->cap : 1024, cp = (size_t)t->cap, cf = cp;
        if (cap > INT_MAX)
            return ff_error(FF_ENOMEM, "%s: more than %d rows", t->shown, INT_MAX);
        if (ff_grow(&t->pid, &cp, cap, sizeof *t->pid) != FF_OK ||
            ff_grow(&t->fold, &cf, cap, sizeof *t->fold) != FF_OK)
            return ff_error_prefix(FF_ENOMEM, "flamby: ");
        t->cap = (int)cap;
    }
    if (!(t->pid[t->n] = strdup(r->fields[0])))
        return ff_error(FF_ENOMEM, "flamby: no memory");
    t->fold[t->n++] = (signed char)((k[0] - '0') + (test ? 8 : 0));
    return FF_OK;
}

static int tcga_data_row(const ff_csv_row *r, void *p)
{
    tcga_ctx *t = p;
    ff_flamby_data *d = t->d;
    if (r->line == 1) {
        if (r->nfields != FF_FLAMBY_TCGA_FEATURES + 3 || strcmp(r->fields[0], "pid") != 0 ||
            strcmp(r->fields[r->nfields - 2], "E") != 0 || strcmp(r->fields[r->nfields - 1], "T") != 0)
            return ff_error(FF_EFORMAT, "%s:1: expected pid, %d features, E, T", t->shown,
                            FF_FLAMBY_TCGA_FEATURES);
        for (int j = 0; j < FF_FLAMBY_TCGA_FEATURES; j++) {
            int rc = set_name(d, j, r->fields[j + 1]);
            if (rc != FF_OK)
                return rc;
        }
        return FF_OK;
    }
    if (r->nfields != FF_FLAMBY_TCGA_FEATURES + 3)
        return ff_error(FF_EFORMAT, "%s:%ld: expected %d fields, found %d", t->shown, r->line,
                        FF_FLAMBY_TCGA_FEATURES + 3, r->nfields);
    int at = -1;
    for (int i = 0; i < t->n && at < 0; i++)
        if (strcmp(t->pid[i], r->fields[0]) == 0)
            at = i;
    if (at < 0)
        return FF_OK; /* not in FLamby's split */
    float x[FF_FLAMBY_TCGA_FEATURES], y[2];
    for (int j = 0; j < FF_FLAMBY_TCGA_FEATURES + 2; j++) {
        double v;
        if (parse_num(r->fields[j + 1], &v) != FF_OK)
            return ff_error(FF_EFORMAT, "%s:%ld: column %d is '%s', not a number", t->shown,
                            r->line, j + 2, r->fields[j + 1]);
        if (j < FF_FLAMBY_TCGA_FEATURES)
            x[j] = (float)v;
        else
            y[j - FF_FLAMBY_TCGA_FEATURES] = (float)v;
    }
    if (y[0] != 0.0f && y[0] != 1.0f)
        return ff_error(FF_EFORMAT, "%s:%ld: E is %g, must be 0 or 1", t->shown, r->line, (double)y[0]);
    int c = t->fold[at] & 7, test = t->fold[at] >= 8;
    if (t->fold[at] < 0)
        return ff_error(FF_EFORMAT, "%s:%ld: pid %s appears twice", t->shown, r->line, r->fields[0]);
    t->fold[at] = -1;
    return split_push(test ? &d->test[c] : &d->train[c], x, y, c);
}

static int tcga_read(const char *in, ff_flamby_data *d)
{
    tcga_ctx t = {.d = d};
    char path[1024];
    int rc = init_splits(d, FF_FLAMBY_TCGA_CENTERS, FF_FLAMBY_TCGA_FEATURES, 2);
    d->dataset = FF_FLAMBY_TCGA;
    snprintf(path, sizeof path, "%s/train_test_split.csv", in);
    t.shown = path;
    if (rc == FF_OK)
        rc = ff_csv_read(path, path, 1, tcga_split_row, &t);
    snprintf(path, sizeof path, "%s/brca.csv", in);
    if (rc == FF_OK)
        rc = ff_csv_read(path, path, 1, tcga_data_row, &t);
    for (int i = 0; i < t.n; i++)
        free(t.pid[i]);
    free(t.pid);
    free(t.fold);
    return rc;
}

/* ---- writing and loading the imported folder -------------------------------------------- */

static const char *target_header(int dataset) { return dataset == FF_FLAMBY_HEART ? "label" : "event,time"; }

static int write_split(const char *dir, const char *name, const ff_flamby_data *d,
                       const ff_flamby_split *s, int with_center)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t cap = 4096 + (size_t)s->n * (size_t)(s->d + s->t + 1) * 18, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return ff_error(FF_ENOMEM, "%s: no memory", path);
#define PUT(...) len += (size_t)snprintf(buf + len, cap - len, __VA_ARGS__)
    if (with_center)
        PUT("center,");
    for (int j = 0; j < d->nfeatures; j++)
        PUT("%s,", d->feature_names[j]);
    PUT("%s\n", target_header(d->dataset));
    for (int i = 0; i < s->n; i++) {
        if (with_center)
            PUT("%d,", s->center[i]);
        for (int j = 0; j < s->d; j++)
            PUT("%.9g,", (double)s->x[(size_t)i * s->d + j]);
        for (int j = 0; j < s->t; j++)
            PUT(j + 1 < s->t ? "%.9g," : "%.9g\n", (double)s->y[(size_t)i * s->t + j]);
    }
#undef PUT
    int rc = len < cap ? ff_file_write_atomic(path, buf, len, 0644)
                       : ff_error(FF_EINTERNAL, "%s: buffer too small", path);
    free(buf);
    return rc;
}

static int pool(ff_flamby_data *d, int test)
{
    ff_flamby_split *dst = test ? &d->pooled_test : &d->pooled_train;
    for (int k = 0; k < d->ncenters; k++) {
        const ff_flamby_split *s = test ? &d->test[k] : &d->train[k];
        for (int i = 0; i < s->n; i++) {
            int rc = split_push(dst, s->x + (size_t)i * s->d, s->y + (size_t)i * s->t, k);
            if (rc != FF_OK)
                return rc;
        }
    }
    return FF_OK;
}

int ff_flamby_import(const char *dataset, const char *in, const char *out,
                     ff_flamby_data *d)
{
    memset(d, 0, sizeof *d);
    int rc;
    if (strcmp(dataset, "heart-disease") == 0)
        rc = heart_read(in, d);
    else if (strcmp(dataset, "tcga-brca") == 0)
        rc = tcga_read(in, d);
    else
        return ff_error(FF_EINVAL, "flamby: unknown dataset '%s' (heart-disease or tcga-brca)",
                        dataset);
    for (int k = 0; k < d->ncenters && rc == FF_OK; k++)
        if (d->train[k].n < 2 || d->test[k].n < 1)
            rc = ff_error(FF_EFORMAT, "%s: centre %d has %d training and %d test rows", in, k,
                          d->train[k].n, d->test[k].n);
    /* pooled rows before the per-centre standardisation: pooled training uses the pooled
     * training set's statistics (FLamby's pooled=True) */
    if (rc == FF_OK)
        rc = pool(d, 0);
    if (rc == FF_OK)
        rc = pool(d, 1);
    if (rc == FF_OK && d->dataset == FF_FLAMBY_HEART)
        rc = ff_flamby_standardise(d);
    if (rc == FF_OK)
        rc = ff_mkdir_p(out, 0755);
    for (int k = 0; k < d->ncenters && rc == FF_OK; k++) {
        char name[64];
        snprintf(name, sizeof name, "center_%d_train.csv", k);
        rc = write_split(out, name, d, &d->train[k], 0);
        snprintf(name, sizeof name, "center_%d_test.csv", k);
        if (rc == FF_OK)
            rc = write_split(out, name, d, &d->test[k], 0);
    }
    if (rc == FF_OK)
        rc = write_split(out, "pooled_train.csv", d, &d->pooled_train, 1);
    if (rc == FF_OK)
        rc = write_split(out, "pooled_test.csv", d, &d->pooled_test, 1);
    if (rc != FF_OK)
        ff_flamby_data_free(d);
    return rc;
}

/* ---- loading ---------------------------------------------------------------------------- */

typedef struct {
    ff_flamby_data *d;
    ff_flamby_split *s;
    int with_center;
    const char *shown;
} load_ctx;

static int load_row(const ff_csv_row *r, void *p)
{
    load_ctx *l = p;
    ff_flamby_data *d = l->d;
    int off = l->with_center;
    if (r->line == 1) {
        int nt = strcmp(r->fields[r->nfields - 1], "time") == 0 ? 2 : 1;
        int nf = r->nfields - off - nt;
        if (nf < 1 || (nt == 1 && strcmp(r->fields[r->nfields - 1], "label") != 0))
            return ff_error(FF_EFORMAT, "%s:1: expected features then 'label' or 'event,time'",
                            l->shown);
        if (!d->feature_names) {
            int rc = init_splits(d, 0, nf, nt);
            for (int j = 0; j < nf && rc == FF_OK; j++)
                rc = set_name(d, j, r->fields[off + j]);
            if (rc != FF_OK)
                return rc;
            d->dataset = nt == 2 ? FF_FLAMBY_TCGA : FF_FLAMBY_HEART;
        } else if (nf != d->nfeatures || nt != d->ntargets) {
            return ff_error(FF_EFORMAT, "%s:1: %d features and %d targets, other files have %d and %d",
                            l->shown, nf, nt, d->nfeatures, d->ntargets);
        }
        l->s->d = nf;
        l->s->t = nt;
        return FF_OK;
    }
    if (r->nfields != off + d->nfeatures + d->ntargets)
        return ff_error(FF_EFORMAT, "%s:%ld: expected %d fields, found %d", l->shown, r->line,
                        off + d->nfeatures + d->ntargets, r->nfields);
    float x[FF_CSV_FIELDS_CAP], y[2];
    double v, c = 0;
    if (off && (parse_num(r->fields[0], &c) != FF_OK || c < 0 || c >= FF_FLAMBY_MAX_CENTERS))
        return ff_error(FF_EFORMAT, "%s:%ld: bad center '%s'", l->shown, r->line, r->fields[0]);
    for (int j = 0; j < d->nfeatures + d->ntargets; j++) {
        if (parse_num(r->fields[off + j], &v) != FF_OK)
            return ff_error(FF_EFORMAT, "%s:%ld: column %d is '%s', not a finite number", l->shown,
                            r->line, off + j + 1, r->fields[off + j]);
        if (j < d->nfeatures)
            x[j] = (float)v;
        else
            y[j - d->nfeatures] = (float)v;
    }
    if ((d->ntargets == 1 && y[0] != 0.0f && y[0] != 1.0f) ||
        (d->ntargets == 2 && y[0] != 0.0f && y[0] != 1.0f))
        return ff_error(FF_EFORMAT, "%s:%ld: label/event %g must be 0 or 1", l->shown, r->line,
                        (double)y[0]);
    return split_push(l->s, x, y, (int)c);
}

int ff_flamby_load(const char *dir, ff_flamby_data *d)
{
    memset(d, 0, sizeof *d);
    int rc = FF_OK;
    char path[1024];
    int k = 0;
    for (; k < FF_FLAMBY_MAX_CENTERS && rc == FF_OK; k++) {
        snprintf(path, sizeof path, "%s/center_%d_train.csv", dir, k);
        if (!ff_path_exists(path))
            break;
        for (int test = 0; test < 2 && rc == FF_OK; test++) {
            snprintf(path, sizeof path, "%s/center_%d_%s.csv", dir, k, test ? "test" : "train");
            load_ctx l = {d, test ? &d->test[k] : &d->train[k], 0, path};
            l.s->center = NULL;
            rc = ff_csv_read(path, path, 1, load_row, &l);
            if (rc == FF_OK && l.s->n < 1)
                rc = ff_error(FF_EFORMAT, "%s: no rows", path);
            for (int i = 0; i < l.s->n && rc == FF_OK; i++)
                l.s->center[i] = k;
        }
    }
    if (rc == FF_OK && k == 0)
        rc = ff_error(FF_ENOTFOUND, "%s: no center_0_train.csv (run `fedfuse import flamby` "
                                    "first)", dir);
    d->ncenters = k;
    for (int test = 0; test < 2 && rc == FF_OK; test++) {
        snprintf(path, sizeof path, "%s/pooled_%s.csv", dir, test ? "test" : "train");
        load_ctx l = {d, test ? &d->pooled_test : &d->pooled_train, 1, path};
        rc = ff_csv_read(path, path, 1, load_row, &l);
        for (int i = 0; i < l.s->n && rc == FF_OK; i++)
            if (l.s->center[i] >= k)
                rc = ff_error(FF_EFORMAT, "%s: row %d names centre %d of %d", path, i + 2,
                              l.s->center[i], k);
    }
    if (rc != FF_OK)
        ff_flamby_data_free(d);
    return rc;
}
