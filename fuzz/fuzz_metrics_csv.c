/* libFuzzer target: the metrics CSV reader (label,score[,group...]) of `fedfuse metrics`. */
#include "ff/eval.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fz_write("m.csv", data, size);
    static const char *const groups[] = {"sex", "site"};
    for (size_t g = 0; g <= 2; g++) {
        ff_eval_csv c;
        if (ff_eval_csv_read(p, groups, g, &c) == FF_OK)
            ff_eval_csv_free(&c);
    }
    return 0;
}
