/* Shared by the file-reading fuzz targets: a per-process scratch folder (in /dev/shm when it
 * exists, so the loop does not hit the disk) and a whole-file write. */
#ifndef FF_FUZZ_UTIL_H
#define FF_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *fz_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/fffuzz.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

/* Writes data to DIR/name and returns the path (static buffer, one per name slot). */
static const char *fz_write(const char *name, const uint8_t *data, size_t size)
{
    static char path[4][256];
    static int slot;
    char *p = path[slot++ & 3];
    snprintf(p, 256, "%s/%s", fz_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
    return p;
}

/* Splits data at the first occurrence of sep (a byte string); part two may be empty. */
static size_t fz_split(const uint8_t *data, size_t size, const char *sep, size_t *rest)
{
    size_t m = strlen(sep);
    for (size_t i = 0; i + m <= size; i++)
        if (memcmp(data + i, sep, m) == 0) {
            *rest = i + m;
            return i;
        }
    *rest = size;
    return size;
}

#endif
