/* PNG input and output on libpng, and the area-averaging resize. */
#include "internal.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* Images larger than this are refused (a 64 MP scan is already far beyond any ED sketch). */
#define PNG_MAX_PIXELS (64u * 1024u * 1024u)

typedef struct {
    char msg[160];
} png_err_ctx;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_err_ctx *e = png_get_error_ptr(png);
    if (e)
        snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Decodes into a malloc'd float gray image in [0, 1]. Errors never longjmp past this frame. */
static int png_decode(const char *path, float **out, int *oh, int *ow)
{
    volatile int rc = FF_OK;
    png_err_ctx ectx = {{0}};
    png_structp png = NULL;
    png_infop info = NULL;
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    float *volatile img = NULL;
    FILE *f = ff_file_fopen_regular(path);
    if (!f)
        return FF_EIO;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, on_png_error, on_png_warning);
    info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        rc = ff_error(FF_ENOMEM, "%s: cannot start libpng", path);
        goto out;
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = ff_error(FF_EFORMAT, "%s: unreadable PNG (%s)", path, ectx.msg);
        goto out;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w == 0 || h == 0 || (uint64_t)w * h > PNG_MAX_PIXELS) {
        rc = ff_error(FF_EFORMAT, "%s: image size %ux%u outside 1..%u pixels", path,
                      (unsigned)w, (unsigned)h, PNG_MAX_PIXELS);
        goto out;
    }
    /* Normalise every colour type to 16-bit (big-endian from libpng) gray, alpha stripped. */
    png_set_expand(png);
    png_set_strip_alpha(png);
    int ct = png_get_color_type(png, info);
    if (ct == PNG_COLOR_TYPE_RGB || ct == PNG_COLOR_TYPE_RGB_ALPHA || ct == PNG_COLOR_TYPE_PALETTE)
        png_set_rgb_to_gray_fixed(png, 1, 29900, 58700); /* Rec. 601 weights */
    if (png_get_bit_depth(png, info) < 16)
        png_set_expand_16(png);
    png_read_update_info(png, info);
    size_t rb = png_get_rowbytes(png, info);
    if (rb != (size_t)w * 2) {
        rc = ff_error(FF_EFORMAT, "%s: unexpected row layout after conversion", path);
        goto out;
    }
    raw = malloc(rb * h);
    rows = malloc(sizeof(png_bytep) * h);
    img = malloc(sizeof(float) * (size_t)w * h);
    if (!raw || !rows || !img) {
        rc = ff_error(FF_ENOMEM, "%s: out of memory for %ux%u", path, (unsigned)w, (unsigned)h);
        goto out;
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = raw + (size_t)y * rb;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    for (size_t i = 0; i < (size_t)w * h; i++)
        img[i] = (float)((raw[2 * i] << 8) | raw[2 * i + 1]) / 65535.0f;
    *out = img;
    img = NULL;
    *oh = (int)h;
    *ow = (int)w;
out:
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    fclose(f);
    free(raw);
    free(rows);
    free(img);
    return rc;
}

/* Weight of source cell [i, i+1) inside target interval [a, b). */
static double overlap(double a, double b, int i)
{
    double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
    return hi > lo ? hi - lo : 0;
}

void ff_resize_area(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    double sy = (double)sh / dh, sx = (double)sw / dw;
    for (int y = 0; y < dh; y++) {
        double y0 = y * sy, y1 = (y + 1) * sy;
        int iy0 = (int)y0, iy1 = (int)y1 < sh ? (int)y1 : sh - 1;
        for (int x = 0; x < dw; x++) {
            double x0 = x * sx, x1 = (x + 1) * sx;
            int ix0 = (int)x0, ix1 = (int)x1 < sw ? (int)x1 : sw - 1;
            double acc = 0, wsum = 0;
            for (int i = iy0; i <= iy1; i++) {
                double wy = overlap(y0, y1, i);
                if (wy <= 0)
                    continue;
                for (int j = ix0; j <= ix1; j++) {
                    double w = wy * overlap(x0, x1, j);
                    acc += w * src[(size_t)i * sw + j];
                    wsum += w;
                }
            }
            dst[(size_t)y * dw + x] = (float)(wsum > 0 ? acc / wsum : 0);
        }
    }
}

int ff_png_load_gray(const char *path, int H, int W, float *dst)
{
    float *img = NULL;
    int h = 0, w = 0;
    int rc = png_decode(path, &img, &h, &w);
    if (rc != FF_OK)
        return rc;
    ff_resize_area(img, h, w, dst, H, W);
    free(img);
    return FF_OK;
}

int ff_png_write_gray(const char *path, const float *src, int H, int W, int bit_depth, int rgb)
{
    volatile int rc = FF_OK;
    png_err_ctx ectx = {{0}};
    png_structp png = NULL;
    png_infop info = NULL;
    int ch = rgb ? 3 : 1, bpc = bit_depth == 16 ? 2 : 1;
    uint8_t *volatile row = malloc((size_t)W * ch * bpc);
    FILE *f = fopen(path, "wb");
    if (!f || !row) {
        rc = ff_error(FF_EIO, "%s: cannot create (%s)", path, strerror(errno));
        goto out;
    }
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ectx, on_png_error, on_png_warning);
    info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        rc = ff_error(FF_ENOMEM, "%s: cannot start libpng", path);
        goto out;
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = ff_error(FF_EIO, "%s: PNG write failed (%s)", path, ectx.msg);
        goto out;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, bpc * 8,
                 rgb ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 3);
    png_write_info(png, info);
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            float v = src[(size_t)y * W + x];
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            unsigned q = (unsigned)(v * (bpc == 2 ? 65535.0f : 255.0f) + 0.5f);
            for (int c = 0; c < ch; c++) {
                size_t o = ((size_t)x * ch + c) * bpc;
                if (bpc == 2) {
                    row[o] = (uint8_t)(q >> 8);
                    row[o + 1] = (uint8_t)q;
                } else {
                    row[o] = (uint8_t)q;
                }
            }
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
out:
    if (png)
        png_destroy_write_struct(&png, info ? &info : NULL);
    if (f && fclose(f) != 0 && rc == FF_OK)
        rc = ff_error(FF_EIO, "%s: close failed (%s)", path, strerror(errno));
    free(row);
    return rc;
}
