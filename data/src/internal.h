/* Private helpers of ff_data shared between its source files. */
#ifndef FF_DATA_INTERNAL_H
#define FF_DATA_INTERNAL_H

#include "ff/data.h"

#include <sys/types.h>

/* The fields of the row libcsv is delivering, in reused buffers: shared by the plain and the
 * gzip readers. At most max (<= FF_CSV_FIELDS_CAP) fields; more sets too_many. */
#define FF_CSV_FIELDS_CAP FF_CSV_MAX_FIELDS
typedef struct {
    char *fields[FF_CSV_FIELDS_CAP];
    size_t lens[FF_CSV_FIELDS_CAP];
    size_t caps[FF_CSV_FIELDS_CAP];
    int max, nfields, too_many, oom;
} ff_csv_fields;

/* Appends one field (libcsv's field callback body). */
void ff_csv_fields_add(ff_csv_fields *f, const void *s, size_t len);
/* Clears the row for the next one. */
void ff_csv_fields_next(ff_csv_fields *f);
void ff_csv_fields_free(ff_csv_fields *f);

/* A source of physical lines for ff_csv_read_lines: getline's contract (the line's length in
 * *buf, grown as needed), -1 at the end, -2 after a read error (ff_error set). */
typedef ssize_t (*ff_csv_line_fn)(void *src, char **buf, size_t *cap);
/* The one CSV reader (ff_csv_read is it over a plain file; the importers' gzip tables use it
 * over zlib): rows with their physical line, BOM, delimiter and UTF-8 handling, strictness. */
int ff_csv_read_lines(const char *shown, int strict, ff_csv_line_fn next, void *src,
                      ff_csv_row_fn fn, void *ctx) FF_WARN_UNUSED;

/* Loads a PNG (8/16-bit gray, gray+alpha, RGB, RGBA, palette; alpha ignored; colour to gray
 * by Rec. 601 luma) and resizes it by area averaging to H x W, values in [0, 1].
 * dst holds H*W floats. */
int ff_png_load_gray(const char *path, int H, int W, float *dst) FF_WARN_UNUSED;
#endif
