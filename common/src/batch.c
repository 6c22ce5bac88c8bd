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

int ff_batch_alloc_tab(ff_batch *b, int F)
{
    if (F < 0 || b->B <= 0)
        return ff_error(FF_EINVAL, "batch: tabular width %d for B=%d", F, b->B);
    if (F == 0) return FF_OK;
    b->tab = ff_calloc((size_t)b->B * (size_t)F, sizeof(float));
    b->tab_present = ff_calloc((size_t)b->B, sizeof(float));
    if (!b->tab || !b->tab_present) {
        ff_free(b->tab), ff_free(b->tab_present);
        b->tab = b->tab_present = NULL;
        return ff_error(FF_ENOMEM, "batch: out of memory for %d tabular columns", F);
    }
    b->F = F;
    return FF_OK;
}

void ff_batch_free(ff_batch *b)
{
    ff_free(b->tab);
    ff_free(b->tab_present);
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

int ff_batch_present(const ff_batch *b, int i, int j)
{
    if (j == 0) return b->image_present[i] > 0.5f;
    if (j == 3) return b->tab_present && b->F > 0 && b->tab_present[i] > 0.5f;
    const int32_t *ids = j == 1 ? b->text_ids + (size_t)i * b->Lt : b->ehr_code + (size_t)i * b->Le;
    int L = j == 1 ? b->Lt : b->Le;
    for (int t = 0; t < L; t++)
        if (ids[t] != 0) return 1;
    return 0;
}

ff_batch ff_batch_row(const ff_batch *b, int i)
{
    ff_batch v = *b;
    size_t img = (size_t)b->C * (size_t)b->H * (size_t)b->W, r = (size_t)i;
    v.B = 1;
    v.image = b->image ? b->image + r * img : NULL;
    v.image_present = b->image_present ? b->image_present + r : NULL;
    v.text_ids = b->text_ids ? b->text_ids + r * (size_t)b->Lt : NULL;
    v.ehr_code = b->ehr_code ? b->ehr_code + r * (size_t)b->Le : NULL;
    v.ehr_val = b->ehr_val ? b->ehr_val + r * (size_t)b->Le : NULL;
    v.ehr_time = b->ehr_time ? b->ehr_time + r * (size_t)b->Le : NULL;
    v.labels = b->labels ? b->labels + r * (size_t)b->K : NULL;
    v.label_mask = b->label_mask ? b->label_mask + r * (size_t)b->K : NULL;
    v.tab = b->tab ? b->tab + r * (size_t)b->F : NULL;
    v.tab_present = b->tab_present ? b->tab_present + r : NULL;
    return v;
}
