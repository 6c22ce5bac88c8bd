/* libFuzzer target: a hospital's site folder. The input is patients.csv, then notes.csv and
 * events.csv after "\n#--\n" separators; all three are written to a scratch site folder and
 * loaded by ff_site_load in lenient and strict mode (tiny shape). */
#include "ff/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t r1, r2;
    size_t n1 = fz_split(data, size, "\n#--\n", &r1);
    size_t n2 = fz_split(data + r1, size - r1, "\n#--\n", &r2);
    (void)fz_write("patients.csv", data, n1);
    (void)fz_write("notes.csv", data + r1, n2);
    (void)fz_write("events.csv", data + r1 + r2, size - r1 - r2);
    ff_data_shape shape;
    ff_data_shape_tiny(&shape);
    for (int strict = 0; strict < 2; strict++) {
        ff_site_opts o = ff_site_opts_default();
        o.strict = strict;
        ff_site *s = NULL;
        ff_load_report rep;
        if (ff_site_load(&s, fz_dir(), &shape, &o, &rep) == FF_OK)
            ff_site_free(s);
    }
    return 0;
}
