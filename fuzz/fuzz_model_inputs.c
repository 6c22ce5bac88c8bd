/* libFuzzer target: model input files (safetensors with the spec's input tensors) read by
 * ff_model_read_inputs against the fusion-tiny config. */
#include "ff/models.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ff_model_config cfg;
    static int ready;
    if (!ready) {
        if (ff_model_config_default(&cfg, "fusion-tiny") != FF_OK)
            abort();
        ready = 1;
    }
    const char *p = fz_write("in.safetensors", data, size);
    ff_batch b;
    memset(&b, 0, sizeof b);
    if (ff_model_read_inputs(&cfg, p, &b) == FF_OK)
        ff_batch_free(&b);
    return 0;
}
