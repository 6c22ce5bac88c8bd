/* Private helpers of the importers of ff_ingest. */
#ifndef FF_INGEST_INTERNAL_H
#define FF_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ff/ingest.h"

/* Open-addressing map from a string (copied) to an int >= 0. */
typedef struct {
    char **keys; /* NULL = empty */
    int *vals;
    size_t mask, count;
} ff_strmap;
int ff_strmap_init(ff_strmap *m, size_t expect) FF_WARN_UNUSED;
void ff_strmap_free(ff_strmap *m);
/* Value of key, or -1. */
int ff_strmap_get(const ff_strmap *m, const char *key);
/* Sets key to val (>= 0), growing as needed. */
int ff_strmap_put(ff_strmap *m, const char *key, int val) FF_WARN_UNUSED;

/* A site patient_id: 1-64 bytes, no '/', '\\', control bytes, no leading '.' (it names the
 * image file; the rule of docs/data.md). */
int ff_ingest_valid_id(const char *s);

#endif
