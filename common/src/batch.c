/* The model input batch shared by data/ and models/. */
#include "ff/common.h"

#include <string.h>

int ff_batch_alloc(ff_batch *b, int B, int K, int C, int H, int W, int Lt, int Le)
{
    memset(b, 0, sizeof *b);
    if (B <= 0 || K <= 0 || C <= 0 || H <= 0 || W <= 0 || Lt <= 0 || Le <= 0)
        return ff_error(FF_EINVAL, "batch: every dimension must be positive (B=%d K=%d C=%d "
                        "H=%d W=%d Lt=%d Le=%d)", B, K, C, H, W, Lt, Le);
    b->B = B, b->K = K, b->C = C, b->H = H, b->W = W, b->Lt = Lt, b->Le = Le;
    size_t nb = (size_t)B;
    b->image = ff_calloc(nb * (size_t)C * (size_t)H * (size_t)W, sizeof(float));
    b->image_present = ff_calloc(nb, sizeof(float));
    b->text_ids = ff_calloc(nb * (size_t)Lt, sizeof(int32_t));
    b->ehr_code = ff_calloc(nb * (size_t)Le, sizeof(int32_t));
    b->ehr_val = ff_calloc(nb * (size_t)Le, sizeof(int32_t));
    b->ehr_time = ff_calloc(nb * (size_t)Le, sizeof(int32_t));
    b->labels = ff_calloc(nb * (size_t)K, sizeof(float));
    b->label_mask = ff_calloc(nb * (size_t)K, sizeof(float));
    if (!b->image || !b->image_present || !b->text_ids || !b->ehr_code || !b->ehr_val ||
        !b->ehr_time || !b->labels || !b->label_mask) {
        ff_batch_free(b);
        return ff_error(FF_ENOMEM, "batch: out of memory for B=%d", B);
    }
    return FF_OK;
}

void ff_batch_free(ff_batch *b)
{
    ff_free(b->image);
    ff_free(b->image_present);
    ff_free(b->text_ids);
    ff_free(b->ehr_code);
    ff_free(b->ehr_val);
    ff_free(b->ehr_time);
    ff_free(b->labels);
    ff_free(b->label_mask);
    memset(b, 0, sizeof *b);
}
