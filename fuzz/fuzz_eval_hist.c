/* libFuzzer target: a site's evaluation histogram JSON (ff_eval_hist_from_json), as pooled
 * by metrics-pool and the coordinator; an accepted histogram is summarised, merged into an
 * empty one, and put through the site's disclosure control (ff_eval_hist_suppress). */
#include <jansson.h>

#include "ff/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)data, size, 0, &err);
    if (!j)
        return 0;
    ff_eval_hist *h = NULL;
    if (ff_eval_hist_from_json(j, &h) == FF_OK) {
        json_t *back = NULL;
        if (ff_eval_hist_to_json(h, &back) == FF_OK)
            json_decref(back);
        ff_eval_hist *pool = NULL;
        if (ff_eval_hist_new(&pool, h->task, h->nbins) == FF_OK &&
            ff_eval_hist_merge(pool, h) == FF_OK &&
            ff_eval_hist_suppress(pool, 10, 1, NULL) == FF_OK &&
            ff_eval_hist_to_json(pool, &back) == FF_OK)
            json_decref(back);
        ff_eval_hist_free(pool);
        ff_eval_hist_free(h);
    }
    json_decref(j);
    return 0;
}
