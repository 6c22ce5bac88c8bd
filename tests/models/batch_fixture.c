#include "batch_fixture.h"

#include "testutil.h"

void ftm_make_batch(const ff_model_config *c, ff_batch *b, int B, uint64_t seed, int hard)
{
    assert_int_equal(ff_batch_alloc(b, B, (int)c->tasks, (int)c->image.channels, (int)c->image.size,
                                    (int)c->image.size, (int)c->text.length, (int)c->ehr.length),
                     FF_OK);
    ff_rng r;
    ff_rng_init(&r, seed, 7);
    size_t img = (size_t)c->image.channels * c->image.size * c->image.size;
    for (int i = 0; i < B; i++) {
        int pat = i % 7; /* 0 all, 1 no image, 2 no text, 3 no EHR, 4 img, 5 text, 6 EHR */
        int has_img = pat == 0 || pat == 2 || pat == 3 || pat == 4;
        int has_txt = pat == 0 || pat == 1 || pat == 3 || pat == 5;
        int has_ehr = pat == 0 || pat == 1 || pat == 2 || pat == 6;
        int repeat = hard && i % 2 == 0; /* ids from a small range, so they repeat */
        ff_rng_normal_fill(&r, b->image + i * img, img, 0, 1);
        b->image_present[i] = (float)has_img;
        int lt = !has_txt ? 0
                 : hard   ? 2 + (int)ff_rng_below(&r, (uint32_t)c->text.length - 1)
                          : 1 + (int)ff_rng_below(&r, (uint32_t)c->text.length);
        uint32_t vocab = repeat ? 4 : (uint32_t)c->text.vocab - 1;
        for (int t = 0; t < lt; t++)
            b->text_ids[(size_t)i * c->text.length + t] =
                (hard && i % 3 == 0 && t == lt / 2) ? 0 : 1 + (int32_t)ff_rng_below(&r, vocab);
        int le = has_ehr ? 1 + (int)ff_rng_below(&r, (uint32_t)c->ehr.length) : 0;
        for (int t = 0; t < le; t++) {
            size_t k = (size_t)i * c->ehr.length + t;
            b->ehr_code[k] = 1 + (int32_t)ff_rng_below(&r, repeat ? 3 : (uint32_t)c->ehr.codes - 1);
            b->ehr_val[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.values);
            b->ehr_time[k] = (int32_t)ff_rng_below(&r, (uint32_t)c->ehr.times);
        }
        for (int k = 0; k < c->tasks; k++) {
            b->labels[(size_t)i * c->tasks + k] = (float)ff_rng_below(&r, 2);
            /* one unknown label on some samples: per-example loss is the mean of ITS labels */
            b->label_mask[(size_t)i * c->tasks + k] = (hard && i % 4 == 1 && k == 0) ? 0.0f : 1.0f;
        }
    }
}
