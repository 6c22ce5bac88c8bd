/* libFuzzer target: the model config YAML (ff_model_config_load_str: schema, ranges,
 * divisibility rules). */
#include "ff/models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ff_model_config cfg;
    (void)ff_model_config_load_str("fuzz.yaml", (const char *)data, size, &cfg);
    return 0;
}
