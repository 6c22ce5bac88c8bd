/* libFuzzer target: the safetensors reader must reject any malformed buffer with an error,
 * never crash or read out of bounds; a buffer it accepts must round-trip every tensor. */
#include <stdlib.h>
#include <string.h>

#include "ff/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ff_safetensors *st = NULL;
    if (ff_safetensors_open_mem(&st, data, size, "fuzz") != FF_OK)
        return 0;
    for (size_t i = 0; i < ff_safetensors_count(st); i++) {
        const ff_st_entry *e = ff_safetensors_entry(st, i);
        void *buf = malloc(e->nbytes ? e->nbytes : 1);
        if (buf && ff_st_entry_copy(e, buf, e->nbytes) != FF_OK)
            abort();
        free(buf);
    }
    ff_safetensors_close(st);
    return 0;
}
