/* Private helpers of the importers (import_*.c): gzip-aware CSV streaming, a column map and
 * an integer hash index. */
#ifndef FF_DATA_IMPORT_INTERNAL_H
#define FF_DATA_IMPORT_INTERNAL_H

#include "internal.h"

/* Streams a CSV file through zlib (a plain, uncompressed file is read as is) into the one CSV
 * reader (ff_csv_read_lines), calling fn per row, header first, row->line the physical line
 * the row starts on. strict: libcsv's strict quoting, malformed CSV is an error
 * "SHOWN:LINE: malformed CSV (...)". */
int ff_gzcsv_read(const char *path, const char *shown, int strict, ff_csv_row_fn fn,
                  void *ctx) FF_WARN_UNUSED;

/* Open-addressing map from a non-negative int64 key to an int value (>= 0). */
typedef struct {
    int64_t *keys; /* -1 = empty */
    int *vals;
    size_t mask, count;
} ff_i64map;
int ff_i64map_init(ff_i64map *m, size_t expect) FF_WARN_UNUSED;
void ff_i64map_free(ff_i64map *m);
/* Value of key, or -1. */
int ff_i64map_get(const ff_i64map *m, int64_t key);
/* Sets key (key >= 0) to val, growing as needed. */
int ff_i64map_put(ff_i64map *m, int64_t key, int val) FF_WARN_UNUSED;

/* Parses "YYYY-MM-DD HH:MM:SS" (or "YYYY-MM-DD HH:MM", or "YYYY-MM-DD") as seconds since
 * 1970-01-01 in a proleptic Gregorian calendar with no time zone (MIMIC's shifted dates run
 * to year 2210, beyond what some time_t conversions accept). -1 when malformed. */
int ff_parse_datetime(const char *s, int64_t *out) FF_WARN_UNUSED;
/* Parses a whole field as a non-negative decimal integer; -1 when malformed or empty. */
int ff_parse_id(const char *s, int64_t *out) FF_WARN_UNUSED;
/* Parses a whole field as a finite double; -1 when malformed or empty. */
int ff_parse_num(const char *s, double *out) FF_WARN_UNUSED;

#endif
