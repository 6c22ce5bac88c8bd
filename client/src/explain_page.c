/* fedfuse explain: the signed heat maps and the self-contained explain.html page.
 *
 * Heat map: each image patch coloured by how much blanking it changed the task's log-odds,
 * on a FIXED, signed scale (red = the patch raised the risk, blue = lowered it; full colour
 * at +/- EX_SCALE_LOGIT, clipped beyond). It is not min-max scaled per patient: a patch that
 * moves the prediction by 0.04 log-odds looks faint on every patient, so noise cannot look
 * like a hot spot. Changes below EX_NOISE_LOGIT are drawn as nothing (grey image only): at
 * p = 0.1 that is about 0.2 percentage points, less than the run-to-run jitter of a model
 * retrained with another seed. A colour bar from -scale to +scale sits under the image; its
 * labels are in the page (the PNG has no text). */
#include <openssl/evp.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "explain_internal.h"

#define EX_SCALE_LOGIT 0.5
#define EX_NOISE_LOGIT 0.02

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} ex_buf;

static void ex_buf_put(ex_buf *b, const void *d, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->len + n + 1) * 2;
        uint8_t *q = realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = nc;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void png_mem_write(png_structp png, png_bytep data, png_size_t n)
{
    ex_buf_put(png_get_io_ptr(png), data, n);
}

static void png_mem_flush(png_structp png) { (void)png; }

/* An 8-bit RGB PNG of W x H pixels into b (libpng writing to memory). */
static int png_encode_rgb(const uint8_t *rgb, int W, int H, ex_buf *b)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return ff_error(FF_ENOMEM, "heat map: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return ff_error(FF_EIO, "heat map: PNG encoding failed");
    }
    png_set_write_fn(png, b, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < H; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)W * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return b->oom ? ff_error(FF_ENOMEM, "heat map: out of memory") : FF_OK;
}

/* Grey level g in [0, 1] under the signed attribution d (log-odds): ColorBrewer RdBu ends. */
static void shade(uint8_t *px, double g, double d)
{
    double a = 0;
    if (fabs(d) >= EX_NOISE_LOGIT)
        a = 0.15 + 0.65 * fmin(1.0, fabs(d) / EX_SCALE_LOGIT);
    static const double red[3] = {178, 24, 43}, blue[3] = {33, 102, 172};
    const double *c = d > 0 ? red : blue;
    for (int i = 0; i < 3; i++)
        px[i] = (uint8_t)lround((1 - a) * 255.0 * g + a * c[i]);
}

enum { BAR_GAP = 10, BAR_H = 18, TICK_H = 6 };

/* The colour bar under the image: -scale at the left, 0 in the middle, +scale at the right,
 * white where the value is under the noise floor; ticks at both ends and at 0. */
static void colour_bar(uint8_t *rgb, int W, int y0)
{
    memset(rgb + (size_t)y0 * W * 3, 255, (size_t)(BAR_GAP + BAR_H + TICK_H) * W * 3);
    for (int x = 0; x < W; x++) {
        double d = EX_SCALE_LOGIT * (2.0 * x / (W - 1) - 1.0);
        for (int y = 0; y < BAR_H; y++)
            shade(rgb + ((size_t)(y0 + BAR_GAP + y) * W + x) * 3, 1.0, d);
    }
    int ticks[3] = {0, W / 2, W - 1};
    for (int t = 0; t < 3; t++)
        for (int y = 0; y < TICK_H; y++)
            memset(rgb + ((size_t)(y0 + BAR_GAP + BAR_H + y) * W + ticks[t]) * 3, 0, 3);
}

/* One task's map: the image (channel 0, [-1, 1] to grey) upscaled by nearest neighbour to
 * at least 256 px, each patch shaded by its signed logit change, then the colour bar. */
static int heatmap_png(const ex_state *st, const double *delta, ex_buf *out, int *n_shown)
{
    int S = st->sh->W, g = S / st->P, f = (256 + S - 1) / S, W = S * f;
    int H = W + BAR_GAP + BAR_H + TICK_H;
    uint8_t *rgb = malloc((size_t)W * (size_t)H * 3);
    if (!rgb)
        return ff_error(FF_ENOMEM, "heat map: out of memory");
    *n_shown = 0;
    for (int p = 0; p < st->np; p++)
        *n_shown += fabs(delta[p]) >= EX_NOISE_LOGIT;
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
            int sy = y / f, sx = x / f;
            double v = (st->base.image[(size_t)sy * S + sx] + 1.0) * 0.5;
            shade(rgb + ((size_t)y * W + x) * 3, v < 0 ? 0 : v > 1 ? 1 : v,
                  delta[(sy / st->P) * g + sx / st->P]);
        }
    colour_bar(rgb, W, W);
    int rc = png_encode_rgb(rgb, W, H, out);
    free(rgb);
    return rc;
}

/* DIR of path (up to the last '/'), "." when none. */
static void dir_of(const char *path, char *dir, size_t cap)
{
    const char *sl = strrchr(path, '/');
    if (!sl)
        snprintf(dir, cap, ".");
    else
        snprintf(dir, cap, "%.*s", (int)(sl - path), path);
}

int ex_heatmaps(const ex_state *st, const double *delta, const char *path, json_t *ex)
{
    char dir[4096], file[4200];
    dir_of(path, dir, sizeof dir);
    json_t *maps = json_array();
    int rc = FF_OK;
    for (int k = 0; rc == FF_OK && k < st->K; k++) {
        ex_buf b = {0};
        int shown = 0;
        rc = heatmap_png(st, delta + (size_t)k * (size_t)st->np, &b, &shown);
        snprintf(file, sizeof file, "%s/heatmap-%s.png", dir, st->sh->tasks.t[k].name);
        if (rc == FF_OK)
            rc = ff_file_write_atomic(file, b.p, b.len, 0644);
        if (rc == FF_OK && k == 0)
            rc = ff_file_write_atomic(path, b.p, b.len, 0644);
        free(b.p);
        if (rc == FF_OK)
            json_array_append_new(maps, json_pack("{s:s,s:s,s:i,s:i}", "task",
                                                  st->sh->tasks.t[k].name, "file", file,
                                                  "patches_shown", shown, "patches", st->np));
    }
    if (rc != FF_OK) {
        json_decref(maps);
        return rc;
    }
    json_object_set_new(ex, "heatmaps", maps);
    json_object_set_new(ex, "heatmap_scale",
                        json_pack("{s:f,s:f,s:s}", "scale_logit", EX_SCALE_LOGIT,
                                  "noise_floor_logit", EX_NOISE_LOGIT, "meaning",
                                  "colour = change of the task's log-odds when the patch is "
                                  "blanked; red raised the risk, blue lowered it; full colour "
                                  "at +/- scale (clipped beyond); below the noise floor: no "
                                  "colour"));
    return FF_OK;
}
