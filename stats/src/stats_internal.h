/* The stats library's shared layout: a query's parsed form and its lane plan. */
#ifndef FF_STATS_INTERNAL_H
#define FF_STATS_INTERNAL_H

#include "ff/stats.h"

#define ST_NAME 64
#define ST_MAX_BINS 20000 /* declared histogram, fine histogram or survival bins */
#define ST_LIMBS 4        /* a wide value: int64 as four 16-bit limbs (exact sums, n < 2^16) */

typedef struct {
    char column[ST_NAME];
    ff_cfg_strlist values; /* text values kept (empty: a numeric range) */
    double min, max;       /* inclusive range of a numeric column */
} st_filter;

typedef struct {
    double min, max, width; /* width 0 = none */
} st_bins;

enum { ST_NUMERIC = 0, ST_CATEGORICAL };

typedef struct {
    char name[ST_NAME]; /* a column */
    int kind;
    int64_t decimals;    /* fixed point of sums: value × 10^decimals rounded */
    st_bins hist;        /* released histogram */
    st_bins quantiles;   /* fine histogram for q25/q50/q75 (error bound = width) */
    ff_cfg_strlist values; /* categorical: the values counted (anything else is "other") */
    double lo, hi;         /* declared bounds (min, max): values are clipped into them under
                            * privacy, which makes the sum's sensitivity finite */
    /* layout (cell indices) */
    size_t c_count, c_missing, c_sum, c_sumsq, c_hist, nhist, c_fine, nfine, c_val, nval;
} st_var;

typedef struct {
    char rows[ST_NAME], cols[ST_NAME];
    size_t vr, vc;   /* variable indices (categorical) */
    size_t c_cells;  /* nr × nc cells, row-major */
} st_xtab;

typedef struct {
    char name[ST_NAME], time[ST_NAME], event[ST_NAME];
    double width, max; /* bins [k w, (k+1) w) up to max; later times are censored at max */
    size_t nbins, c_n, c_bins; /* per bin: events cell then censored cell */
} st_surv;

/* One cell of the vector: a count (1 lane) or a wide fixed-point value (ST_LIMBS lanes),
 * then its flag lane (1 = suppressed by the site). Fine-histogram cells have no flag of their
 * own: their variable's count flag covers them. */
enum { ST_CELL_COUNT = 0, ST_CELL_WIDE, ST_CELL_FINE };
typedef struct {
    int kind;
    size_t lane; /* first lane */
} st_cell;

typedef struct {
    char name[ST_NAME];
    int per_site;
    ff_cfg_list where;  /* of st_filter */
    struct {
        ff_cfg_strlist codes;
        double within_hours;
    } events;
    ff_cfg_list variables; /* of st_var */
    ff_cfg_list crosstabs; /* of st_xtab */
    ff_cfg_list survival;  /* of st_surv */
    struct {
        double epsilon, delta; /* epsilon 0 = no noise */
    } privacy;
} st_cfg;

struct ff_stats_query {
    st_cfg c;
    char *text;
    size_t len;
    char hash[FF_SHA256_HEX];
    st_cell *cells;
    size_t ncells, nlanes;
    size_t c_cohort;
    char (*columns)[ST_NAME];
    size_t ncolumns;
    /* under privacy: each cell's sensitivity in its own integer units (1 for counts), and
     * how many cells one patient can change (the release vector's L2 sensitivity is √m once
     * every cell is scaled by its own) */
    uint64_t *sens;
    int64_t touched;
};

/* Bounds of a variable not declared (the keys' defaults). */
#define ST_UNBOUNDED 1e300

static inline size_t st_nbins(const st_bins *b)
{
    return b->width > 0 ? (size_t)((b->max - b->min) / b->width + 0.5) : 0;
}

/* Index of the bin of x in [min, max): 0 = below, 1..n = the bins, n + 1 = at or above max. */
static inline size_t st_bin_of(const st_bins *b, size_t n, double x)
{
    if (x < b->min)
        return 0;
    if (x >= b->max)
        return n + 1;
    size_t k = (size_t)((x - b->min) / b->width);
    return (k >= n ? n - 1 : k) + 1;
}

#endif
