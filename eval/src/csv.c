/* Predictions from CSV (libcsv): `label`, `score` and optional group columns. */
#include "internal.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EV_MAX_LEVELS 1000
#define EV_MAX_COLS 4096

typedef struct {
    /* per group column: hash of level names -> index (open addressing, 2048 slots) */
    int32_t slot[2048];
} ev_levels;

typedef struct {
    const char *path;
    ff_eval_csv *out;
    const char *const *group_cols;
    size_t ngroups;
    size_t line;      /* physical line where the current record starts */
    size_t extra_nl;  /* newlines inside quoted fields of the current record */
    size_t field;     /* index of the field within the record */
    int header_done;
    int last_term; /* terminator of the previous record, to count CR LF as one line */
    int col_label, col_score;
    int *col_group; /* [ngroups] */
    size_t cap;
    ev_levels *lv;  /* [ngroups] */
    int rc;
    char **header;
    size_t nheader;
} ev_csv_state;

static int grow(ev_csv_state *st)
{
    if (st->out->n < st->cap)
        return FF_OK;
    size_t cap = st->cap ? st->cap * 2 : 1024;
    double *s = realloc(st->out->score, cap * sizeof(double));
    if (s)
        st->out->score = s;
    uint8_t *y = realloc(st->out->label, cap);
    if (y)
        st->out->label = y;
    if (!s || !y)
        return ff_error(FF_ENOMEM, "%s: no memory for %zu rows", st->path, cap);
    for (size_t g = 0; g < st->ngroups; g++) {
        int32_t *l = realloc(st->out->groups[g].level, cap * sizeof(int32_t));
        if (!l)
            return ff_error(FF_ENOMEM, "%s: no memory for %zu rows", st->path, cap);
        st->out->groups[g].level = l;
    }
    st->cap = cap;
    return FF_OK;
}

static int level_index(ev_csv_state *st, size_t g, const char *name, int32_t *idx)
{
    ff_eval_csv_group *grp = &st->out->groups[g];
    uint32_t h = ff_fnv1a32(name, strlen(name)) & 2047u;
    for (;; h = (h + 1) & 2047u) {
        int32_t v = st->lv[g].slot[h];
        if (v < 0)
            break;
        if (strcmp(grp->names[v], name) == 0) {
            *idx = v;
            return FF_OK;
        }
    }
    if (grp->nlevels >= EV_MAX_LEVELS)
        return ff_error(FF_EINVAL, "%s:%zu: column '%s': more than %d distinct values "
                        "(not a group column?)", st->path, st->line, grp->column, EV_MAX_LEVELS);
    char **names = realloc(grp->names, (grp->nlevels + 1) * sizeof(char *));
    if (!names)
        return ff_error(FF_ENOMEM, "%s: no memory", st->path);
    grp->names = names;
    grp->names[grp->nlevels] = strdup(name);
    if (!grp->names[grp->nlevels])
        return ff_error(FF_ENOMEM, "%s: no memory", st->path);
    st->lv[g].slot[h] = (int32_t)grp->nlevels;
    *idx = (int32_t)grp->nlevels++;
    return FF_OK;
}

/* A cell as shown in a one-line error message: at most 40 bytes, control bytes as '?'. */
static const char *shown(const char *v, char buf[48])
{
    size_t i = 0;
    for (; v[i] && i < 40; i++)
        buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
    if (v[i])
        buf[i++] = '~';
    buf[i] = 0;
    return buf;
}

static int parse_cell(ev_csv_state *st, const char *v)
{
    char sb[48];
    size_t i = st->out->n;
    if ((int)st->field == st->col_label) {
        double x;
        if (ff_parse_f64(v, &x) != FF_OK || !(x == 0 || x == 1))
            return ff_error(FF_EINVAL, "%s:%zu: column 'label': '%s' is not 0 or 1", st->path,
                            st->line, shown(v, sb));
        st->out->label[i] = (uint8_t)x;
    }
    if ((int)st->field == st->col_score) {
        double x;
        if (ff_parse_f64(v, &x) != FF_OK || !isfinite(x))
            return ff_error(FF_EINVAL, "%s:%zu: column 'score': '%s' is not a finite number",
                            st->path, st->line, shown(v, sb));
        if (x < 0 || x > 1)
            return ff_error(FF_EINVAL, "%s:%zu: column 'score': %s is not a probability in "
                            "[0,1]", st->path, st->line, shown(v, sb));
        st->out->score[i] = x;
    }
    for (size_t g = 0; g < st->ngroups; g++)
        if ((int)st->field == st->col_group[g]) {
            int rc = level_index(st, g, v[0] ? v : "(empty)", &st->out->groups[g].level[i]);
            if (rc != FF_OK)
                return rc;
        }
    return FF_OK;
}

static void on_field(void *data, size_t len, void *ctx)
{
    ev_csv_state *st = ctx;
    const char *v = data ? data : "";
    for (size_t i = 0; i < len; i++)
        st->extra_nl += v[i] == '\n';
    if (st->rc == FF_OK && !st->header_done) {
        if (st->nheader == 0 && len >= 3 && memcmp(v, "\xef\xbb\xbf", 3) == 0)
            v += 3; /* UTF-8 byte-order mark written by spreadsheet programs */
        if (st->nheader >= EV_MAX_COLS) {
            st->rc = ff_error(FF_EINVAL, "%s:1: more than %d columns", st->path, EV_MAX_COLS);
        } else {
            char *c = strdup(v);
            if (!c)
                st->rc = ff_error(FF_ENOMEM, "%s: no memory", st->path);
            else
                st->header[st->nheader++] = c;
        }
    } else if (st->rc == FF_OK) {
        if (st->field == 0)
            st->rc = grow(st);
        if (st->rc == FF_OK)
            st->rc = parse_cell(st, v);
    }
    st->field++;
}

static int find_col(ev_csv_state *st, const char *name, int *col)
{
    for (size_t i = 0; i < st->nheader; i++)
        if (strcmp(st->header[i], name) == 0) {
            *col = (int)i;
            return FF_OK;
        }
    return ff_error(FF_EINVAL, "%s:1: no column '%s' in the header", st->path, name);
}

static int finish_header(ev_csv_state *st)
{
    int rc = find_col(st, "label", &st->col_label);
    if (rc == FF_OK)
        rc = find_col(st, "score", &st->col_score);
    for (size_t g = 0; g < st->ngroups && rc == FF_OK; g++)
        rc = find_col(st, st->group_cols[g], &st->col_group[g]);
    return rc;
}

static const char *missing_col(ev_csv_state *st)
{
    int need = st->col_label > st->col_score ? st->col_label : st->col_score;
    const char *name = st->col_label > st->col_score ? "label" : "score";
    for (size_t g = 0; g < st->ngroups; g++)
        if (st->col_group[g] > need) {
            need = st->col_group[g];
            name = st->group_cols[g];
        }
    return (int)st->field > need ? NULL : name;
}

/* With CSV_REPALL_NL every line break outside a record arrives as an empty record, so blank
 * lines are counted; the LF of a CR LF pair is not a line of its own. */
static void on_record(int term, void *ctx)
{
    ev_csv_state *st = ctx;
    int prev = st->last_term;
    st->last_term = term;
    if (st->field == 0) {
        if (!(term == '\n' && prev == '\r'))
            st->line++;
        return;
    }
    if (st->rc == FF_OK && !st->header_done) {
        st->rc = finish_header(st);
        st->header_done = 1;
    } else if (st->rc == FF_OK) {
        const char *miss = missing_col(st);
        if (miss)
            st->rc = ff_error(FF_EINVAL, "%s:%zu: column '%s': missing (row has %zu fields)",
                              st->path, st->line, miss, st->field);
        else
            st->out->n++;
    }
    st->line += 1 + st->extra_nl;
    st->extra_nl = 0;
    st->field = 0;
}

typedef struct {
    char *name;
    int32_t old;
} ev_named;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const ev_named *)a)->name, ((const ev_named *)b)->name);
}

/* Levels renumbered in byte order of their names, so reports list them predictably. */
static int sort_levels(ff_eval_csv_group *g, size_t n)
{
    size_t m = g->nlevels ? g->nlevels : 1;
    ev_named *order = malloc(m * sizeof *order);
    int32_t *rank = malloc(m * sizeof *rank);
    if (!order || !rank) {
        free(order);
        free(rank);
        return ff_error(FF_ENOMEM, "no memory");
    }
    for (size_t l = 0; l < g->nlevels; l++)
        order[l] = (ev_named){g->names[l], (int32_t)l};
    qsort(order, g->nlevels, sizeof *order, by_name);
    for (size_t l = 0; l < g->nlevels; l++) {
        rank[order[l].old] = (int32_t)l;
        g->names[l] = order[l].name;
    }
    for (size_t i = 0; i < n; i++)
        g->level[i] = rank[g->level[i]];
    free(order);
    free(rank);
    return FF_OK;
}

void ff_eval_csv_free(ff_eval_csv *c)
{
    if (!c)
        return;
    for (size_t g = 0; g < c->ngroups; g++) {
        for (size_t l = 0; l < c->groups[g].nlevels; l++)
            free(c->groups[g].names[l]);
        free(c->groups[g].names);
        free(c->groups[g].level);
        free(c->groups[g].column);
    }
    free(c->groups);
    free(c->score);
    free(c->label);
    memset(c, 0, sizeof *c);
}

int ff_eval_csv_read(const char *path, const char *const *group_cols, size_t ngroups,
                     ff_eval_csv *out)
{
    memset(out, 0, sizeof *out);
    ev_csv_state st = {.path = path, .out = out, .group_cols = group_cols, .ngroups = ngroups,
                       .line = 1};
    struct csv_parser p;
    int rc = FF_OK, have_parser = 0;
    FILE *f = NULL;
    st.header = calloc(EV_MAX_COLS, sizeof(char *));
    st.col_group = calloc(ngroups ? ngroups : 1, sizeof(int));
    st.lv = malloc((ngroups ? ngroups : 1) * sizeof(ev_levels));
    out->groups = calloc(ngroups ? ngroups : 1, sizeof *out->groups);
    if (!st.header || !st.col_group || !st.lv || !out->groups) {
        rc = ff_error(FF_ENOMEM, "%s: no memory", path);
        goto out;
    }
    out->ngroups = ngroups;
    for (size_t g = 0; g < ngroups; g++) {
        memset(st.lv[g].slot, 0xff, sizeof st.lv[g].slot);
        out->groups[g].column = strdup(group_cols[g]);
        if (!out->groups[g].column) {
            rc = ff_error(FF_ENOMEM, "%s: no memory", path);
            goto out;
        }
    }
    f = fopen(path, "rb");
    if (!f) {
        rc = ff_error(FF_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    if (csv_init(&p, CSV_APPEND_NULL | CSV_REPALL_NL) != 0) {
        rc = ff_error(FF_ENOMEM, "%s: cannot initialise the CSV parser", path);
        goto out;
    }
    have_parser = 1;
    char buf[1 << 16];
    size_t got;
    while (st.rc == FF_OK && (got = fread(buf, 1, sizeof buf, f)) > 0)
        if (csv_parse(&p, buf, got, on_field, on_record, &st) != got) {
            rc = ff_error(FF_EFORMAT, "%s:%zu: malformed CSV: %s", path, st.line,
                          csv_strerror(csv_error(&p)));
            goto out;
        }
    if (ferror(f)) {
        rc = ff_error(FF_EIO, "%s: read error", path);
        goto out;
    }
    if (st.rc == FF_OK)
        csv_fini(&p, on_field, on_record, &st);
    rc = st.rc;
    if (rc == FF_OK && !st.header_done)
        rc = ff_error(FF_EINVAL, "%s:1: empty file (expected a header with 'label' and "
                      "'score')", path);
    for (size_t g = 0; rc == FF_OK && g < ngroups; g++)
        rc = sort_levels(&out->groups[g], out->n);
out:
    if (have_parser)
        csv_free(&p);
    if (f)
        fclose(f);
    for (size_t i = 0; st.header && i < st.nheader; i++)
        free(st.header[i]);
    free(st.header);
    free(st.col_group);
    free(st.lv);
    if (rc != FF_OK)
        ff_eval_csv_free(out);
    return rc;
}
