/* Predictions from CSV (read with data/'s one CSV reader, ff_csv_read): `label`, `score` and
 * optional group columns. */
#include "internal.h"

#include "ff/data.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EV_MAX_LEVELS 1000

typedef struct {
    /* per group column: hash of level names -> index (open addressing, 2048 slots) */
    int32_t slot[2048];
} ev_levels;

typedef struct {
    const char *path;
    ff_eval_csv *out;
    const char *const *group_cols;
    size_t ngroups;
    long line;    /* physical line where the current row starts */
    size_t field; /* index of the field within the row */
    int header_done;
    int col_label, col_score;
    int *col_group; /* [ngroups] */
    size_t cap;     /* rows allocated in score, label and every group's level */
    ev_levels *lv;  /* [ngroups] */
} ev_csv_state;

/* Room for one more row in every per-row array (each grows to the same capacity). */
static int grow(ev_csv_state *st)
{
    size_t need = st->out->n + 1, cap = st->cap;
    if (need <= cap)
        return FF_OK;
    int rc = ff_grow(&st->out->score, &cap, need, sizeof *st->out->score);
    for (size_t g = 0; rc == FF_OK && g <= st->ngroups; g++) {
        cap = st->cap;
        rc = g < st->ngroups ? ff_grow(&st->out->groups[g].level, &cap, need, sizeof(int32_t))
                             : ff_grow(&st->out->label, &cap, need, 1);
    }
    if (rc != FF_OK)
        return ff_error_prefix(rc, "%s: ", st->path);
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
        return ff_error(FF_EINVAL, "%s:%ld: column '%s': more than %d distinct values "
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
            return ff_error(FF_EINVAL, "%s:%ld: column 'label': '%s' is not 0 or 1", st->path,
                            st->line, shown(v, sb));
        st->out->label[i] = (uint8_t)x;
    }
    if ((int)st->field == st->col_score) {
        double x;
        if (ff_parse_f64(v, &x) != FF_OK || !isfinite(x))
            return ff_error(FF_EINVAL, "%s:%ld: column 'score': '%s' is not a finite number",
                            st->path, st->line, shown(v, sb));
        if (x < 0 || x > 1)
            return ff_error(FF_EINVAL, "%s:%ld: column 'score': %s is not a probability in "
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

static int find_col(ev_csv_state *st, const ff_csv_row *hdr, const char *name, int *col)
{
    for (int i = 0; i < hdr->nfields; i++)
        if (strcmp(hdr->fields[i], name) == 0) {
            *col = (int)i;
            return FF_OK;
        }
    return ff_error(FF_EINVAL, "%s:1: no column '%s' in the header", st->path, name);
}

static int finish_header(ev_csv_state *st, const ff_csv_row *hdr)
{
    int rc = find_col(st, hdr, "label", &st->col_label);
    if (rc == FF_OK)
        rc = find_col(st, hdr, "score", &st->col_score);
    for (size_t g = 0; g < st->ngroups && rc == FF_OK; g++)
        rc = find_col(st, hdr, st->group_cols[g], &st->col_group[g]);
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

/* The header row names the columns; every other row is parsed field by field (the first bad
 * field in column order is the one reported), then checked for the columns it lacks. */
static int on_row(const ff_csv_row *row, void *ctx)
{
    ev_csv_state *st = ctx;
    st->line = row->line;
    if (row->nfields < 0)
        return ff_error(FF_EINVAL, "%s:%ld: more than %d columns", st->path, row->line,
                        FF_CSV_MAX_FIELDS);
    if (!st->header_done) {
        st->header_done = 1;
        return finish_header(st, row);
    }
    int rc = grow(st);
    for (st->field = 0; rc == FF_OK && st->field < (size_t)row->nfields; st->field++)
        rc = parse_cell(st, row->fields[st->field]);
    if (rc != FF_OK)
        return rc;
    const char *miss = missing_col(st);
    if (miss)
        return ff_error(FF_EINVAL, "%s:%ld: column '%s': missing (row has %zu fields)", st->path,
                        row->line, miss, st->field);
    st->out->n++;
    return FF_OK;
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
    ev_csv_state st = {.path = path, .out = out, .group_cols = group_cols, .ngroups = ngroups};
    int rc = FF_OK;
    st.col_group = calloc(ngroups ? ngroups : 1, sizeof(int));
    st.lv = malloc((ngroups ? ngroups : 1) * sizeof(ev_levels));
    out->groups = calloc(ngroups ? ngroups : 1, sizeof *out->groups);
    if (!st.col_group || !st.lv || !out->groups) {
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
    rc = ff_csv_read(path, path, 0, on_row, &st);
    if (rc == FF_OK && !st.header_done)
        rc = ff_error(FF_EINVAL, "%s:1: empty file (expected a header with 'label' and "
                      "'score')", path);
    for (size_t g = 0; rc == FF_OK && g < ngroups; g++)
        rc = sort_levels(&out->groups[g], out->n);
out:
    free(st.col_group);
    free(st.lv);
    if (rc != FF_OK)
        ff_eval_csv_free(out);
    return rc;
}
