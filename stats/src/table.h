/* A site's rows as text cells (table.c), shared by the site's computation. */
#ifndef FF_STATS_TABLE_H
#define FF_STATS_TABLE_H

#include "stats_internal.h"

typedef struct {
    char **names; /* ncols */
    char **cells; /* nrows × ncols, row-major */
    size_t ncols, nrows, cap;
} st_table;

typedef struct {
    char *id;
    size_t row;
} st_id;

typedef struct {
    size_t row;
    double hours;
    char *code;
} st_event;

struct ff_stats_table {
    st_table rows;
    st_id *ids; /* sorted by id: the row keys of the query history */
    st_event *events;
    size_t nevents, evcap;
    int has_events;
};

/* Column index of name, or -1. */
int st_table_column(const st_table *t, const char *name);

static inline const char *st_cell_text(const st_table *t, size_t r, size_t c)
{
    return t->cells[r * t->ncols + c];
}

#endif
