/* Private helpers of ff_data shared between its source files. */
#ifndef FF_DATA_INTERNAL_H
#define FF_DATA_INTERNAL_H

#include "ff/data.h"

/* One CSV row as libcsv delivered it: NUL-terminated fields and the physical line on which
 * the row starts (1-based; the header is line 1). */
typedef struct {
    char **fields;
    size_t *lens;
    int nfields;
    long line;
} ff_csv_row;

/* The fields of the row libcsv is delivering, in reused buffers: shared by the plain and the
 * gzip readers. At most max (<= FF_CSV_FIELDS_CAP) fields; more sets too_many. */
#define FF_CSV_FIELDS_CAP 256
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

/* Called per row (header included, as the first). Returns FF_OK to go on, or an error status
 * (with ff_error set) to stop reading. */
typedef int (*ff_csv_row_fn)(const ff_csv_row *row, void *ctx);

/* Streams a CSV file through libcsv (RFC 4180: quoted fields with commas, quotes and
 * newlines). strict: libcsv's strict quoting and an unterminated quote at the end are errors
 * "FILE:LINE: malformed CSV (...)"; lenient: libcsv's tolerant reading. */
int ff_csv_read(const char *path, const char *shown, int strict, ff_csv_row_fn fn,
                void *ctx) FF_WARN_UNUSED;

/* Writes one CSV field (quoted when it must be) through libcsv; sep is ',' or '\n' after. */
int ff_csv_put(FILE *f, const char *s, char sep);

/* Loads a PNG (8/16-bit gray, gray+alpha, RGB, RGBA, palette; alpha ignored; colour to gray
 * by Rec. 601 luma) and resizes it by area averaging to H x W, values in [0, 1].
 * dst holds H*W floats. */
int ff_png_load_gray(const char *path, int H, int W, float *dst) FF_WARN_UNUSED;
/* Writes an 8- or 16-bit grayscale PNG from values in [0, 1] (clamped), or RGB when rgb. */
int ff_png_write_gray(const char *path, const float *src, int H, int W, int bit_depth,
                      int rgb) FF_WARN_UNUSED;

/* Area-averaging resize of a float image (sh x sw) to (dh x dw): each target pixel is the
 * mean of the source area it covers, with fractional overlaps weighted. */
void ff_resize_area(const float *src, int sh, int sw, float *dst, int dh, int dw);

#endif
