/* libFuzzer target: the privacy ledger JSON (ff_privacy_ledger_from_json), which a restarted
 * coordinator or client reads back; an accepted ledger is written out again. */
#include <stdlib.h>
#include <string.h>

#include "ff/privacy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    ff_privacy_ledger *l = NULL;
    if (ff_privacy_ledger_from_json(&l, s, "fuzz.json") == FF_OK) {
        char *out = NULL;
        if (ff_privacy_ledger_to_json(l, &out) == FF_OK)
            free(out);
        ff_privacy_ledger_free(l);
    }
    free(s);
    return 0;
}
