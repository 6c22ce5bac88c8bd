/* libFuzzer target: the data library's PNG reader (site images) on hostile files, resized to
 * 32x32 and 7x5 (odd, so the area-averaging edge cases run). */
#include "../data/src/internal.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fz_write("x.png", data, size);
    static float dst[32 * 32];
    (void)ff_png_load_gray(p, 32, 32, dst);
    (void)ff_png_load_gray(p, 7, 5, dst);
    return 0;
}
