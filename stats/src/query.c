/* The query language (docs/statistics.md): a typed schema over the YAML file, cross-field
 * checks placed at the key, and the lane plan every site and the coordinator derive from it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats_internal.h"

static const char *const kinds[] = {"numeric", "categorical", NULL};

#define BOFF(f) offsetof(st_bins, f)
static const ff_cfg_field bins_fields[] = {
    {.key = "min", .type = FF_CFG_DOUBLE, .offset = BOFF(min), .required = 1, .min = -1e15,
     .max = 1e15, .help = "lower edge of the first bin"},
    {.key = "max", .type = FF_CFG_DOUBLE, .offset = BOFF(max), .required = 1, .min = -1e15,
     .max = 1e15, .help = "upper edge of the last bin"},
    {.key = "width", .type = FF_CFG_DOUBLE, .offset = BOFF(width), .required = 1, .min = 1e-9,
     .max = 1e15, .help = "bin width; (max - min) / width bins"},
    {0}};

#define FOFF(f) offsetof(st_filter, f)
static const ff_cfg_field filter_fields[] = {
    {.key = "column", .type = FF_CFG_STRING, .offset = FOFF(column), .size = ST_NAME,
     .required = 1, .help = "a column of patients.csv (age, sex, label_icu, ...) or the CSV"},
    {.key = "values", .type = FF_CFG_STRLIST, .offset = FOFF(values), .min = 1,
     .help = "keep rows whose value is one of these"},
    {.key = "min", .type = FF_CFG_DOUBLE, .offset = FOFF(min), .def = "-1e300", .min = -1e300,
     .max = 1e300, .help = "keep rows whose numeric value is >= min"},
    {.key = "max", .type = FF_CFG_DOUBLE, .offset = FOFF(max), .def = "1e300", .min = -1e300,
     .max = 1e300, .help = "keep rows whose numeric value is <= max"},
    {0}};

#define EOFF(f) (offsetof(st_cfg, events.f) - offsetof(st_cfg, events))
static const ff_cfg_field events_fields[] = {
    {.key = "codes", .type = FF_CFG_STRLIST, .offset = EOFF(codes), .min = 1,
     .help = "keep patients with an event of one of these codes (a trailing * is a prefix)"},
    {.key = "within_hours", .type = FF_CFG_DOUBLE, .offset = EOFF(within_hours), .def = "1e300",
     .min = 0, .max = 1e300, .help = "... at most this many hours before the visit"},
    {0}};

#define VOFF(f) offsetof(st_var, f)
static const ff_cfg_field var_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = VOFF(name), .size = ST_NAME, .required = 1,
     .help = "the column"},
    {.key = "type", .type = FF_CFG_ENUM, .offset = VOFF(kind), .choices = kinds, .def = "numeric",
     .help = "numeric: count, missing, sum, mean, var, sd (+ hist, quantiles); categorical: "
             "counts per value"},
    {.key = "decimals", .type = FF_CFG_INT, .offset = VOFF(decimals), .def = "0", .min = 0,
     .max = 6, .help = "fixed point of sums (value x 10^decimals, rounded)"},
    {.key = "hist", .type = FF_CFG_SECTION, .offset = VOFF(hist), .sub = bins_fields,
     .help = "released histogram with declared bins"},
    {.key = "quantiles", .type = FF_CFG_SECTION, .offset = VOFF(quantiles), .sub = bins_fields,
     .help = "fine histogram from which q25, q50, q75 are read (bound = width)"},
    {.key = "values", .type = FF_CFG_STRLIST, .offset = VOFF(values), .min = 1,
     .help = "categorical: the values counted"},
    {.key = "min", .type = FF_CFG_DOUBLE, .offset = VOFF(lo), .def = "-1e300", .min = -1e300,
     .max = 1e300, .help = "numeric: clipping bound; values below count as min in the sum "
                           "(required under privacy)"},
    {.key = "max", .type = FF_CFG_DOUBLE, .offset = VOFF(hi), .def = "1e300", .min = -1e300,
     .max = 1e300, .help = "numeric: clipping bound; values above count as max in the sum "
                           "(required under privacy)"},
    {0}};

#define POFF(f) (offsetof(st_cfg, privacy.f) - offsetof(st_cfg, privacy))
static const ff_cfg_field privacy_fields[] = {
    {.key = "epsilon", .type = FF_CFG_DOUBLE, .offset = POFF(epsilon), .required = 1,
     .min = 1e-3, .max = 100, .help = "epsilon of the pooled release at each site (each site "
                                     "charges it to its privacy ledger)"},
    {.key = "delta", .type = FF_CFG_DOUBLE, .offset = POFF(delta), .def = "1e-6", .min = 1e-15,
     .max = 0.1, .help = "delta of the (epsilon, delta) guarantee"},
    {0}};

#define XOFF(f) offsetof(st_xtab, f)
static const ff_cfg_field xtab_fields[] = {
    {.key = "rows", .type = FF_CFG_STRING, .offset = XOFF(rows), .size = ST_NAME, .required = 1,
     .help = "a categorical variable of the query"},
    {.key = "cols", .type = FF_CFG_STRING, .offset = XOFF(cols), .size = ST_NAME, .required = 1,
     .help = "another categorical variable of the query"},
    {0}};

#define SOFF(f) offsetof(st_surv, f)
static const ff_cfg_field surv_fields[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = SOFF(name), .size = ST_NAME, .required = 1,
     .help = "the curve's name in the results"},
    {.key = "time", .type = FF_CFG_STRING, .offset = SOFF(time), .size = ST_NAME, .required = 1,
     .help = "column of the follow-up time"},
    {.key = "event", .type = FF_CFG_STRING, .offset = SOFF(event), .size = ST_NAME,
     .required = 1, .help = "column of the event indicator (1 event, 0 censored)"},
    {.key = "width", .type = FF_CFG_DOUBLE, .offset = SOFF(width), .required = 1, .min = 1e-9,
     .max = 1e15, .help = "time bin width (the curve steps at bin ends)"},
    {.key = "max", .type = FF_CFG_DOUBLE, .offset = SOFF(max), .required = 1, .min = 1e-9,
     .max = 1e15, .help = "last time; later times count as censored there"},
    {0}};

#define QOFF(f) offsetof(st_cfg, f)
static const ff_cfg_field query_schema[] = {
    {.key = "name", .type = FF_CFG_STRING, .offset = QOFF(name), .size = ST_NAME, .required = 1,
     .help = "the query's name"},
    {.key = "per_site", .type = FF_CFG_BOOL, .offset = QOFF(per_site), .def = "false",
     .help = "ask for per-site results too (each site's policy decides)"},
    {.key = "where", .type = FF_CFG_LIST, .offset = QOFF(where), .size = sizeof(st_filter),
     .sub = filter_fields, .max = 32, .help = "cohort filters, all must hold"},
    {.key = "events", .type = FF_CFG_SECTION, .offset = QOFF(events), .sub = events_fields,
     .help = "cohort filter on events.csv"},
    {.key = "variables", .type = FF_CFG_LIST, .offset = QOFF(variables), .size = sizeof(st_var),
     .sub = var_fields, .max = 64, .help = "variables and their statistics"},
    {.key = "crosstabs", .type = FF_CFG_LIST, .offset = QOFF(crosstabs), .size = sizeof(st_xtab),
     .sub = xtab_fields, .max = 16, .help = "cross-tabulations of two categorical variables"},
    {.key = "survival", .type = FF_CFG_LIST, .offset = QOFF(survival), .size = sizeof(st_surv),
     .sub = surv_fields, .max = 8, .help = "Kaplan-Meier curves"},
    {.key = "privacy", .type = FF_CFG_SECTION, .offset = QOFF(privacy), .sub = privacy_fields,
     .help = "differential privacy: noise on every released number (docs/statistics.md)"},
    {0}};

/* A cross-field error at the key's place in the query text: NAME:LINE:COL: key: why. */
static int at(const ff_stats_query *q, const char *name, const char *key, const char *why)
{
    size_t line = 1, col = 1;
    ff_cfg_key_place(q->text, q->len, key, &line, &col);
    return ff_error(FF_ECONFIG, "%s:%zu:%zu: %s: %s", name, line, col, key, why);
}

static void add_column(ff_stats_query *q, const char *c)
{
    for (size_t i = 0; i < q->ncolumns; i++)
        if (strcmp(q->columns[i], c) == 0)
            return;
    ff_strlcpy(q->columns[q->ncolumns++], c, ST_NAME);
}

static size_t cell(ff_stats_query *q, int kind)
{
    size_t i = q->ncells++;
    q->cells[i].kind = kind;
    q->cells[i].lane = q->nlanes;
    q->nlanes += kind == ST_CELL_WIDE ? ST_LIMBS + 1 : kind == ST_CELL_FINE ? 1 : 2;
    return i;
}

static size_t cells(ff_stats_query *q, int kind, size_t n)
{
    size_t first = q->ncells;
    for (size_t i = 0; i < n; i++)
        cell(q, kind);
    return first;
}

/* Cross-field checks (placed at the key) and the number of cells the plan needs. */
static int check(ff_stats_query *q, const char *name, size_t *ncells)
{
    st_cfg *c = &q->c;
    char key[96];
    size_t n = 1;
    const st_filter *f = c->where.items;
    for (size_t i = 0; i < c->where.count; i++) {
        snprintf(key, sizeof key, "where[%zu].column", i);
        if (f[i].values.count && (f[i].min > -1e300 || f[i].max < 1e300))
            return at(q, name, key, "give either values or min/max, not both");
        if (f[i].min > f[i].max)
            return at(q, name, key, "min is above max");
    }
    st_var *v = c->variables.items;
    for (size_t i = 0; i < c->variables.count; i++) {
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[i].name, v[j].name) == 0) {
                snprintf(key, sizeof key, "variables[%zu].name", i);
                return at(q, name, key, "this variable is listed twice");
            }
        const st_bins *b[2] = {&v[i].hist, &v[i].quantiles};
        static const char *const bn[2] = {"hist", "quantiles"};
        for (int k = 0; k < 2; k++) {
            if (b[k]->width <= 0)
                continue;
            snprintf(key, sizeof key, "variables[%zu].%s.max", i, bn[k]);
            double nb = (b[k]->max - b[k]->min) / b[k]->width;
            if (!(nb >= 1) || nb > ST_MAX_BINS || fabs(nb - floor(nb + 0.5)) > 1e-9)
                return at(q, name, key, "(max - min) / width must be a whole number of bins, "
                                        "1 to 20000");
        }
        snprintf(key, sizeof key, "variables[%zu].values", i);
        if (v[i].kind == ST_CATEGORICAL && v[i].values.count == 0)
            return at(q, name, key, "a categorical variable lists its values");
        if (v[i].kind == ST_NUMERIC && v[i].values.count)
            return at(q, name, key, "values are for categorical variables");
        if (v[i].kind == ST_CATEGORICAL && (v[i].hist.width > 0 || v[i].quantiles.width > 0))
            return at(q, name, key, "hist and quantiles are for numeric variables");
        int bounded = v[i].lo > -ST_UNBOUNDED && v[i].hi < ST_UNBOUNDED;
        snprintf(key, sizeof key, "variables[%zu].name", i);
        if (v[i].kind == ST_NUMERIC && c->privacy.epsilon > 0 && !bounded)
            return at(q, name, key, "under privacy (the query's privacy: section) a numeric "
                                    "variable declares min and max: its sum is clipped to them, "
                                    "which bounds the noise it needs");
        snprintf(key, sizeof key, "variables[%zu].max", i);
        if (bounded && !(v[i].lo < v[i].hi))
            return at(q, name, key, "min must be below max");
        if (bounded && fmax(fabs(v[i].lo), fabs(v[i].hi)) * pow(10.0, (double)v[i].decimals) > 1e9)
            return at(q, name, key, "max(|min|, |max|) x 10^decimals must be at most 1e9");
        n += 2 + (v[i].kind == ST_NUMERIC ? 2 + st_nbins(&v[i].hist) + 2 +
                                                st_nbins(&v[i].quantiles) + 2
                                          : v[i].values.count + 1);
    }
    st_xtab *x = c->crosstabs.items;
    for (size_t i = 0; i < c->crosstabs.count; i++) {
        const char *want[2] = {x[i].rows, x[i].cols};
        size_t *idx[2] = {&x[i].vr, &x[i].vc};
        for (int k = 0; k < 2; k++) {
            size_t j = 0;
            while (j < c->variables.count &&
                   (strcmp(v[j].name, want[k]) != 0 || v[j].kind != ST_CATEGORICAL))
                j++;
            snprintf(key, sizeof key, "crosstabs[%zu].%s", i, k ? "cols" : "rows");
            if (j == c->variables.count)
                return at(q, name, key, "not a categorical variable of this query");
            *idx[k] = j;
        }
        n += v[x[i].vr].values.count * v[x[i].vc].values.count;
    }
    st_surv *s = c->survival.items;
    for (size_t i = 0; i < c->survival.count; i++) {
        double nb = ceil(s[i].max / s[i].width - 1e-9);
        snprintf(key, sizeof key, "survival[%zu].max", i);
        if (nb > ST_MAX_BINS)
            return at(q, name, key, "more than 20000 time bins (max / width)");
        s[i].nbins = (size_t)nb;
        n += 1 + 2 * s[i].nbins;
    }
    if (c->variables.count == 0 && c->survival.count == 0)
        return at(q, name, "variables", "the query asks for nothing (no variables, no survival)");
    *ncells = n;
    return FF_OK;
}

/* Under privacy: each cell's sensitivity (a patient added or removed changes a count by at
 * most 1, a clipped sum by at most max(|min|, |max|) in fixed point, the sum of squares by
 * its square) and how many cells one patient touches: the cohort count; per numeric
 * variable count or missing, sum, sum of squares, one histogram bin, one fine bin; per
 * categorical variable count or missing, and one value; one cell per crosstab; per curve its
 * count and one bin. Scaled by its own sensitivity every cell moves by at most 1, so the
 * whole vector's L2 sensitivity is √touched. */
static void sensitivities(ff_stats_query *q)
{
    const st_cfg *c = &q->c;
    for (size_t i = 0; i < q->ncells; i++)
        q->sens[i] = 1;
    int64_t m = 1;
    const st_var *v = c->variables.items;
    for (size_t i = 0; i < c->variables.count; i++) {
        if (v[i].kind == ST_CATEGORICAL) {
            m += 2;
            continue;
        }
        double b = fmax(fabs(v[i].lo), fabs(v[i].hi)) * pow(10.0, (double)v[i].decimals);
        uint64_t s = (uint64_t)llround(b); /* llround is monotone: |fx| <= llround(b) */
        s = s ? s : 1;
        q->sens[v[i].c_sum] = s;
        q->sens[v[i].c_sumsq] = s * s;
        m += 3 + (v[i].nhist > 0) + (v[i].nfine > 0);
    }
    m += (int64_t)c->crosstabs.count + 2 * (int64_t)c->survival.count;
    q->touched = m;
}

/* The lane plan: cohort count, then per variable, crosstab and curve its cells. */
static void plan(ff_stats_query *q)
{
    st_cfg *c = &q->c;
    q->c_cohort = cell(q, ST_CELL_COUNT);
    const st_filter *f = c->where.items;
    for (size_t i = 0; i < c->where.count; i++)
        add_column(q, f[i].column);
    if (c->events.codes.count)
        add_column(q, "events.csv");
    st_var *v = c->variables.items;
    for (size_t i = 0; i < c->variables.count; i++) {
        add_column(q, v[i].name);
        v[i].c_count = cell(q, ST_CELL_COUNT);
        v[i].c_missing = cell(q, ST_CELL_COUNT);
        if (v[i].kind == ST_NUMERIC) {
            v[i].c_sum = cell(q, ST_CELL_WIDE);
            v[i].c_sumsq = cell(q, ST_CELL_WIDE);
            v[i].nhist = st_nbins(&v[i].hist);
            v[i].c_hist = cells(q, ST_CELL_COUNT, v[i].nhist ? v[i].nhist + 2 : 0);
            v[i].nfine = st_nbins(&v[i].quantiles);
            v[i].c_fine = cells(q, ST_CELL_FINE, v[i].nfine ? v[i].nfine + 2 : 0);
        } else {
            v[i].nval = v[i].values.count;
            v[i].c_val = cells(q, ST_CELL_COUNT, v[i].nval + 1); /* + other */
        }
    }
    st_xtab *x = c->crosstabs.items;
    for (size_t i = 0; i < c->crosstabs.count; i++)
        x[i].c_cells = cells(q, ST_CELL_COUNT, v[x[i].vr].nval * v[x[i].vc].nval);
    st_surv *s = c->survival.items;
    for (size_t i = 0; i < c->survival.count; i++) {
        add_column(q, s[i].time);
        add_column(q, s[i].event);
        s[i].c_n = cell(q, ST_CELL_COUNT);
        s[i].c_bins = cells(q, ST_CELL_COUNT, 2 * s[i].nbins);
    }
}

int ff_stats_query_load_str(ff_stats_query **out, const char *name, const char *yaml, size_t len)
{
    *out = NULL;
    ff_stats_query *q = calloc(1, sizeof *q);
    if (!q)
        return ff_error(FF_ENOMEM, "%s: out of memory", name);
    int rc = (q->text = malloc(len + 1)) ? FF_OK : ff_error(FF_ENOMEM, "%s: out of memory", name);
    if (rc == FF_OK) {
        memcpy(q->text, yaml, len);
        q->text[len] = '\0';
        q->len = len;
        rc = ff_cfg_load_str(name, yaml, len, query_schema, &q->c);
    }
    size_t n = 0;
    if (rc == FF_OK)
        rc = check(q, name, &n);
    if (rc == FF_OK) {
        q->cells = calloc(n, sizeof *q->cells);
        q->columns = calloc(n + q->c.where.count + 2 * q->c.survival.count + 2, ST_NAME);
        if (q->c.privacy.epsilon > 0)
            q->sens = calloc(n, sizeof *q->sens);
        if (!q->cells || !q->columns || (q->c.privacy.epsilon > 0 && !q->sens))
            rc = ff_error(FF_ENOMEM, "%s: out of memory", name);
    }
    if (rc != FF_OK) {
        ff_stats_query_free(q);
        return rc;
    }
    rc = ff_stats_job_hash(yaml, len, q->hash);
    if (rc != FF_OK) {
        ff_stats_query_free(q);
        return rc;
    }
    plan(q);
    if (q->sens)
        sensitivities(q);
    *out = q;
    return FF_OK;
}

int ff_stats_query_load(ff_stats_query **q, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    *q = NULL;
    int rc = ff_file_read_all(path, 1u << 20, &text, &len);
    if (rc == FF_OK)
        rc = ff_stats_query_load_str(q, path, text, len);
    free(text);
    return rc;
}

void ff_stats_query_free(ff_stats_query *q)
{
    if (!q)
        return;
    ff_cfg_free(query_schema, &q->c);
    free(q->cells);
    free(q->columns);
    free(q->sens);
    free(q->text);
    free(q);
}

const char *ff_stats_query_name(const ff_stats_query *q) { return q->c.name; }
int ff_stats_query_per_site(const ff_stats_query *q) { return q->c.per_site; }
size_t ff_stats_query_ncolumns(const ff_stats_query *q) { return q->ncolumns; }
const char *ff_stats_query_column(const ff_stats_query *q, size_t i) { return q->columns[i]; }
size_t ff_stats_lanes(const ff_stats_query *q) { return q->nlanes; }

int ff_stats_job_hash(const void *yaml, size_t len, char hex[FF_SHA256_HEX])
{
    static const char prefix[] = "fedfuse-statistics-v1\n";
    ff_sha256_ctx *c = NULL;
    int rc = ff_sha256_new(&c);
    if (rc != FF_OK)
        return rc;
    uint8_t h[FF_SHA256_BYTES];
    ff_sha256_update(c, prefix, sizeof prefix - 1);
    ff_sha256_update(c, yaml, len);
    ff_sha256_final(c, h);
    ff_hex(h, sizeof h, hex);
    return FF_OK;
}
