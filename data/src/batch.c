/* Assembling model input batches from a loaded site, with meaning-preserving augmentation. */
#include "site_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ff_aug ff_aug_default(void)
{
    return (ff_aug){.rot_deg = 8.0f, .scale = 0.08f, .intensity = 0.1f, .allow_flip = 0,
                    .token_drop = 0.1f, .time_jitter = 0.1f};
}

void ff_site_shuffle(const ff_site *s, ff_split split, uint64_t seed, uint64_t epoch,
                     uint32_t *order)
{
    size_t n = ff_site_count(s, split);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    ff_rng r;
    /* One stream per (split, epoch): reshuffling one split never disturbs another. */
    ff_rng_init(&r, seed, 0xD47A000000000000ull ^ ((uint64_t)split << 40) ^ epoch);
    ff_rng_shuffle(&r, order, n);
}

/* Bilinear sample; outside the frame the nearest border pixel (no artificial black edge). */
static float sample(const float *img, int H, int W, double y, double x)
{
    if (y < 0)
        y = 0;
    if (x < 0)
        x = 0;
    if (y > H - 1)
        y = H - 1;
    if (x > W - 1)
        x = W - 1;
    int y0 = (int)y, x0 = (int)x;
    int y1 = y0 + 1 < H ? y0 + 1 : y0, x1 = x0 + 1 < W ? x0 + 1 : x0;
    double fy = y - y0, fx = x - x0;
    double a = img[y0 * W + x0] * (1 - fx) + img[y0 * W + x1] * fx;
    double b = img[y1 * W + x0] * (1 - fx) + img[y1 * W + x1] * fx;
    return (float)(a * (1 - fy) + b * fy);
}

/* Rotation by θ and zoom by z about the centre (inverse mapping), optional mirror, then
 * gain and offset. */
static void augment_image(const float *src, float *dst, int H, int W, const ff_aug *aug,
                          ff_rng *rng)
{
    double th = aug->rot_deg > 0 ? (2 * ff_rng_uniform_d(rng) - 1) * aug->rot_deg * M_PI / 180
                                 : 0;
    double z = aug->scale > 0 ? 1 + (2 * ff_rng_uniform_d(rng) - 1) * aug->scale : 1;
    int flip = aug->allow_flip ? (int)(ff_rng_u32(rng) & 1) : 0;
    double gain = aug->intensity > 0 ? 1 + (2 * ff_rng_uniform_d(rng) - 1) * aug->intensity : 1;
    double off = aug->intensity > 0 ? (2 * ff_rng_uniform_d(rng) - 1) * aug->intensity : 0;
    double cy = (H - 1) / 2.0, cx = (W - 1) / 2.0, c = cos(th) / z, s = sin(th) / z;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double dx = (flip ? (W - 1 - x) : x) - cx, dy = y - cy;
            double sx = c * dx + s * dy + cx, sy = -s * dx + c * dy + cy;
            float v = (float)(sample(src, H, W, sy, sx) * gain + off);
            dst[y * W + x] = v < -1.5f ? -1.5f : v > 1.5f ? 1.5f : v;
        }
}

static void fill_row(const ff_site *s, uint32_t p, const ff_aug *aug, ff_rng *rng, ff_batch *b,
                     size_t row, float *scratch)
{
    const ff_data_shape *sh = &s->shape;
    size_t hw = (size_t)sh->H * (size_t)sh->W;
    float *img = b->image + row * hw;
    if (s->img_slot[p] >= 0) {
        const uint16_t *q = s->img + (size_t)s->img_slot[p] * hw;
        float *plain = aug ? scratch : img;
        for (size_t k = 0; k < hw; k++)
            plain[k] = (float)q[k] * (2.0f / 65535.0f) - 1.0f; /* [0, 1] -> [-1, 1] */
        if (aug)
            augment_image(scratch, img, sh->H, sh->W, aug, rng);
        b->image_present[row] = 1;
    }
    int32_t *t = b->text_ids + row * (size_t)sh->Lt;
    const int32_t *ts = s->text + (size_t)p * (size_t)sh->Lt;
    size_t nt = 0, len = s->text_len[p];
    for (size_t i = 0; i < len; i++) {
        /* Never drop the last remaining token: the note must stay present. */
        if (aug && aug->token_drop > 0 && ff_rng_uniform(rng) < aug->token_drop &&
            !(nt == 0 && i + 1 == len))
            continue;
        t[nt++] = ts[i];
    }
    size_t o = s->ev_off[p], ne = s->ev_off[p + 1] - o;
    size_t Le = (size_t)sh->Le;
    for (size_t i = 0; i < ne && i < Le; i++) {
        double h = s->ev_hours[o + i];
        if (aug && aug->time_jitter > 0)
            h *= exp(aug->time_jitter * ff_rng_normal(rng));
        b->ehr_code[row * Le + i] = s->ev_code[o + i];
        b->ehr_val[row * Le + i] = s->ev_val[o + i];
        b->ehr_time[row * Le + i] = ff_tok_time_bin(h, sh->Vtime);
    }
    memcpy(b->labels + row * (size_t)sh->K, s->labels + (size_t)p * (size_t)sh->K,
           (size_t)sh->K * sizeof(float));
    for (int k = 0; k < sh->tasks.n; k++) {
        const ff_task *tk = &sh->tasks.t[k];
        float known = s->known[(size_t)p * (size_t)sh->tasks.n + (size_t)k] ? 1.0f : 0.0f;
        for (int j = 0; j < ff_task_width(tk); j++)
            b->label_mask[row * (size_t)sh->K + (size_t)(tk->col + j)] = known;
    }
}

int ff_site_batch(const ff_site *s, ff_split split, const uint32_t *idx, size_t n,
                  const ff_aug *aug, ff_rng *rng, ff_batch *out)
{
    const ff_data_shape *sh = &s->shape;
    if (split >= FF_SPLIT_COUNT)
        return ff_error(FF_EINVAL, "batch: bad split %d", (int)split);
    if (out->K != sh->K || out->C != sh->C || out->H != sh->H || out->W != sh->W ||
        out->Lt != sh->Lt || out->Le != sh->Le || out->B < 0 || (size_t)out->B < n)
        return ff_error(FF_EINVAL, "batch: allocated as B=%d K=%d %dx%dx%d Lt=%d Le=%d, need "
                        "B>=%zu K=%d %dx%dx%d Lt=%d Le=%d", out->B, out->K, out->C, out->H,
                        out->W, out->Lt, out->Le, n, sh->K, sh->C, sh->H, sh->W, sh->Lt, sh->Le);
    if (aug && !rng)
        return ff_error(FF_EINVAL, "batch: augmentation needs an rng");
    if (sh->tab.n > 0 && (out->F != sh->tab.width || !out->tab || !out->tab_present))
        return ff_error(FF_EINVAL, "batch: %d tabular columns allocated, the declared features "
                        "take %d (ff_site_batch_alloc)", out->F, sh->tab.width);
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= s->count[split])
            return ff_error(FF_ERANGE, "batch: index %u outside the %s split (%zu patients)",
                            idx[i], ff_split_name(split), s->count[split]);
    size_t B = (size_t)out->B, hw = (size_t)sh->H * (size_t)sh->W;
    memset(out->image, 0, B * hw * sizeof(float));
    memset(out->image_present, 0, B * sizeof(float));
    memset(out->text_ids, 0, B * (size_t)sh->Lt * sizeof(int32_t));
    memset(out->ehr_code, 0, B * (size_t)sh->Le * sizeof(int32_t));
    memset(out->ehr_val, 0, B * (size_t)sh->Le * sizeof(int32_t));
    memset(out->ehr_time, 0, B * (size_t)sh->Le * sizeof(int32_t));
    memset(out->labels, 0, B * (size_t)sh->K * sizeof(float));
    memset(out->label_mask, 0, B * (size_t)sh->K * sizeof(float));
    if (out->tab && out->tab_present) {
        memset(out->tab, 0, B * (size_t)out->F * sizeof(float));
        memset(out->tab_present, 0, B * sizeof(float));
    }
    float *scratch = aug ? malloc(hw * sizeof *scratch) : NULL;
    if (aug && !scratch)
        return ff_error(FF_ENOMEM, "batch: out of memory");
    for (size_t i = 0; i < n; i++) {
        uint32_t p = s->members[split][idx[i]];
        fill_row(s, p, aug, rng, out, i, scratch);
        if (sh->tab.n > 0)
            ff_site_tabular_row(s, p, out->tab + i * (size_t)out->F, out->tab_present + i);
    }
    free(scratch);
    return FF_OK;
}

int ff_site_batch_alloc(ff_batch *b, int B, const ff_data_shape *sh)
{
    int rc = ff_batch_alloc(b, B, sh->K, sh->C, sh->H, sh->W, sh->Lt, sh->Le);
    if (rc == FF_OK && sh->tab.n > 0 && (rc = ff_batch_alloc_tab(b, sh->tab.width)) != FF_OK)
        ff_batch_free(b);
    return rc;
}
