/* A site's rows for statistics: patients.csv of a site folder (and its events.csv), or any
 * CSV file with a header. Cells are kept as text; the query decides how to read them. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ff/data.h"
#include "table.h"

typedef struct {
    st_table *t;
    const char *shown;
} load_ctx;

static int on_row(const ff_csv_row *row, void *ud)
{
    load_ctx *lc = ud;
    st_table *t = lc->t;
    if (t->ncols == 0) {
        t->ncols = (size_t)row->nfields;
        t->names = calloc(t->ncols, sizeof *t->names);
        if (!t->names)
            return ff_error(FF_ENOMEM, "statistics: out of memory");
        for (size_t i = 0; i < t->ncols; i++)
            if (!(t->names[i] = strdup(row->fields[i])))
                return ff_error(FF_ENOMEM, "statistics: out of memory");
        return FF_OK;
    }
    if ((size_t)row->nfields != t->ncols)
        return ff_error(FF_EFORMAT, "%s:%ld: %d fields, the header has %zu", lc->shown, row->line,
                        row->nfields, t->ncols);
    int rc = ff_grow(&t->cells, &t->cap, (t->nrows + 1) * t->ncols, sizeof *t->cells);
    for (size_t i = 0; rc == FF_OK && i < t->ncols; i++)
        if (!(t->cells[t->nrows * t->ncols + i] = strdup(row->fields[i])))
            rc = ff_error(FF_ENOMEM, "statistics: out of memory");
    if (rc == FF_OK)
        t->nrows++;
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    const st_id *x = a, *y = b;
    return strcmp(x->id, y->id);
}

typedef struct {
    ff_stats_table *t;
    const char *shown;
    int ci[3]; /* patient_id, hours_before, code */
} ev_ctx;

static int on_event(const ff_csv_row *row, void *ud)
{
    ev_ctx *ec = ud;
    ff_stats_table *t = ec->t;
    if (row->line == 1) {
        static const char *const want[3] = {"patient_id", "hours_before", "code"};
        return ff_gzcsv_columns(row, ec->shown, want, 3, ec->ci);
    }
    int n = row->nfields;
    if (ec->ci[0] >= n || ec->ci[1] >= n || ec->ci[2] >= n)
        return FF_OK; /* a short row: the site loader reports it; statistics skip it */
    st_id key = {.id = row->fields[ec->ci[0]]};
    st_id *hit = bsearch(&key, t->ids, t->rows.nrows, sizeof *t->ids, cmp_id);
    double h;
    if (!hit || ff_parse_f64(row->fields[ec->ci[1]], &h) != FF_OK)
        return FF_OK;
    int rc = ff_grow(&t->events, &t->evcap, t->nevents + 1, sizeof *t->events);
    if (rc != FF_OK)
        return rc;
    st_event *e = &t->events[t->nevents];
    e->row = hit->row;
    e->hours = h;
    if (!(e->code = strdup(row->fields[ec->ci[2]])))
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    t->nevents++;
    return FF_OK;
}

/* Row keys: patient_id when the table has one, else the row number (a CSV file's rows). */
static int index_rows(ff_stats_table *t)
{
    int idc = st_table_column(&t->rows, "patient_id");
    t->ids = calloc(t->rows.nrows + 1, sizeof *t->ids);
    if (!t->ids)
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    for (size_t r = 0; r < t->rows.nrows; r++) {
        char buf[32];
        snprintf(buf, sizeof buf, "row:%zu", r + 1);
        t->ids[r].id = idc >= 0 ? strdup(st_cell_text(&t->rows, r, (size_t)idc)) : strdup(buf);
        t->ids[r].row = r;
        if (!t->ids[r].id)
            return ff_error(FF_ENOMEM, "statistics: out of memory");
    }
    qsort(t->ids, t->rows.nrows, sizeof *t->ids, cmp_id);
    return FF_OK;
}

int ff_stats_table_load(ff_stats_table **out, const char *path)
{
    *out = NULL;
    ff_stats_table *t = calloc(1, sizeof *t);
    if (!t)
        return ff_error(FF_ENOMEM, "statistics: out of memory");
    struct stat st;
    char file[1200], events[1200] = "";
    int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    snprintf(file, sizeof file, is_dir ? "%s/patients.csv" : "%s", path);
    if (is_dir)
        snprintf(events, sizeof events, "%s/events.csv", path);
    load_ctx lc = {&t->rows, file};
    int rc = ff_csv_read(file, file, 0, on_row, &lc);
    if (rc == FF_OK && t->rows.ncols == 0)
        rc = ff_error(FF_EFORMAT, "%s: no header row", file);
    if (rc == FF_OK)
        rc = index_rows(t);
    if (rc == FF_OK && events[0] && ff_path_exists(events)) {
        ev_ctx ec = {.t = t, .shown = events};
        t->has_events = 1;
        rc = ff_csv_read(events, events, 0, on_event, &ec);
    }
    if (rc != FF_OK) {
        ff_stats_table_free(t);
        return rc;
    }
    *out = t;
    return FF_OK;
}

void ff_stats_table_free(ff_stats_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows.nrows * t->rows.ncols; i++)
        free(t->rows.cells[i]);
    for (size_t i = 0; i < t->rows.ncols; i++)
        free(t->rows.names[i]);
    for (size_t i = 0; t->ids && i < t->rows.nrows; i++)
        free(t->ids[i].id);
    for (size_t i = 0; i < t->nevents; i++)
        free(t->events[i].code);
    free(t->rows.cells);
    free(t->rows.names);
    free(t->ids);
    free(t->events);
    free(t);
}

size_t ff_stats_table_rows(const ff_stats_table *t) { return t->rows.nrows; }

int st_table_column(const st_table *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->names[i], name) == 0)
            return (int)i;
    return -1;
}
