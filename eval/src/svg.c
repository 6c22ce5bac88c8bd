/* Small string builder and SVG line charts for the HTML report. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void ev_sb_printf(ev_sb *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->buf && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)k + 1)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

void ev_sb_puts_html(ev_sb *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': ev_sb_printf(b, "&lt;"); break;
        case '>': ev_sb_printf(b, "&gt;"); break;
        case '&': ev_sb_printf(b, "&amp;"); break;
        case '"': ev_sb_printf(b, "&quot;"); break;
        default: ev_sb_printf(b, "%c", *s);
        }
    }
}

size_t ev_thin_index(size_t n, size_t max, size_t k)
{
    if (max == 0 || n <= max)
        return k;
    if (max == 1)
        return 0;
    return (size_t)llround((double)k * (double)(n - 1) / (double)(max - 1));
}

const char *const ev_palette[8] = {"#1f6fb4", "#d9541e", "#2c9c45", "#8a4fbf",
                                   "#b8860b", "#d6337a", "#17a2b8", "#555555"};

#define W 380.0
#define H 300.0
#define ML 64.0
#define MR 14.0
#define MT 30.0
#define MB 44.0

static double px(double x, double x0, double x1)
{
    double f = x1 > x0 ? (x - x0) / (x1 - x0) : 0;
    return ML + fmin(fmax(f, -0.02), 1.02) * (W - ML - MR);
}

static double py(double y, double y0, double y1)
{
    double f = y1 > y0 ? (y - y0) / (y1 - y0) : 0;
    return H - MB - fmin(fmax(f, -0.02), 1.02) * (H - MT - MB);
}

static void axes(ev_sb *b, const char *title, const char *xl, const char *yl, double x0,
                 double x1, double y0, double y1)
{
    ev_sb_printf(b, "<svg width=\"%g\" height=\"%g\" "
                    "viewBox=\"0 0 %g %g\" class=\"chart\" role=\"img\"><title>",
                 W, H, W, H);
    ev_sb_puts_html(b, title);
    ev_sb_printf(b, "</title><rect x=\"0\" y=\"0\" width=\"%g\" height=\"%g\" fill=\"#fff\"/>",
                 W, H);
    ev_sb_printf(b, "<text x=\"%g\" y=\"18\" text-anchor=\"middle\" class=\"ct\">", W / 2);
    ev_sb_puts_html(b, title);
    ev_sb_printf(b, "</text>");
    for (int i = 0; i <= 5; i++) {
        double fx = x0 + (x1 - x0) * i / 5, fy = y0 + (y1 - y0) * i / 5;
        double X = px(fx, x0, x1), Y = py(fy, y0, y1);
        ev_sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>",
                     X, MT, X, H - MB);
        ev_sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>",
                     ML, Y, W - MR, Y);
        ev_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tk\">%.3g"
                        "</text>", X, H - MB + 14, fx);
        ev_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"tk\">%.3g"
                        "</text>", ML - 4, Y + 4, fy);
    }
    ev_sb_printf(b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"frame\"/>", ML,
                 MT, W - ML - MR, H - MT - MB);
    ev_sb_printf(b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" class=\"al\">",
                 ML + (W - ML - MR) / 2, H - 8);
    ev_sb_puts_html(b, xl);
    ev_sb_printf(b, "</text><text transform=\"translate(13,%g) rotate(-90)\" "
                    "text-anchor=\"middle\" class=\"al\">", MT + (H - MT - MB) / 2);
    ev_sb_puts_html(b, yl);
    ev_sb_printf(b, "</text>");
}

void ev_svg_lines(ev_sb *b, const char *title, const char *xlabel, const char *ylabel,
                  double x0, double x1, double y0, double y1, const ev_series *s, size_t ns,
                  int diagonal, int legend)
{
    axes(b, title, xlabel, ylabel, x0, x1, y0, y1);
    if (diagonal)
        ev_sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"diag\"/>",
                     px(x0, x0, x1), py(y0, y0, y1), px(x1, x0, x1), py(y1, y0, y1));
    for (size_t k = 0; k < ns; k++) {
        const char *col = ev_palette[k % 8];
        if (s[k].n == 0)
            continue;
        size_t m = s[k].n > 400 ? 400 : s[k].n;
        ev_sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                     col, s[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        for (size_t i = 0; i < m; i++) {
            size_t j = ev_thin_index(s[k].n, 400, i);
            ev_sb_printf(b, "%.1f,%.1f ", px(s[k].x[j], x0, x1), py(s[k].y[j], y0, y1));
        }
        ev_sb_printf(b, "\"/>");
        for (size_t i = 0; s[k].markers && i < s[k].n; i++)
            ev_sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>",
                         px(s[k].x[i], x0, x1), py(s[k].y[i], y0, y1), col);
    }
    /* legend inside the frame, in the corner the caller knows the curves avoid */
    size_t longest = 0; /* legend width from its longest label, ~6 px per character */
    for (size_t k = 0; k < ns; k++) {
        size_t len = strlen(s[k].name) + (s[k].n == 0 ? 11 : 0);
        longest = len > longest ? len : longest;
    }
    double lx = (legend == EV_LEGEND_BR || legend == EV_LEGEND_TR)
                    ? fmax(ML + 8, W - MR - 34 - 6.0 * (double)longest)
                    : ML + 8;
    double ly = (legend == EV_LEGEND_BR || legend == EV_LEGEND_BL)
                    ? H - MB - 10 - 14.0 * (double)(ns - 1)
                    : MT + 14;
    for (size_t k = 0; k < ns; k++) {
        ev_sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                        "stroke-width=\"2\"%s/>", lx, ly + 14.0 * (double)k - 4, lx + 18,
                     ly + 14.0 * (double)k - 4, ev_palette[k % 8],
                     s[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        ev_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">", lx + 22,
                     ly + 14.0 * (double)k);
        ev_sb_puts_html(b, s[k].name);
        ev_sb_printf(b, "%s</text>", s[k].n == 0 ? " (no curve)" : "");
    }
    ev_sb_printf(b, "</svg>\n");
}

void ev_svg_bars(ev_sb *b, const char *title, const char *const *labels, const ff_metric *v,
                 size_t n, double x0, double x1)
{
    double bh = 22, h = 40 + bh * (double)n + 24, w = W, left = 110;
    ev_sb_printf(b, "<svg width=\"%g\" height=\"%g\" "
                    "viewBox=\"0 0 %g %g\" class=\"chart\" role=\"img\"><title>", w, h, w, h);
    ev_sb_puts_html(b, title);
    ev_sb_printf(b, "</title><rect x=\"0\" y=\"0\" width=\"%g\" height=\"%g\" fill=\"#fff\"/>"
                    "<text x=\"%g\" y=\"18\" text-anchor=\"middle\" class=\"ct\">", w, h, w / 2);
    ev_sb_puts_html(b, title);
    ev_sb_printf(b, "</text>");
    double span = w - left - 60;
    for (size_t i = 0; i < n; i++) {
        double y = 30 + bh * (double)i;
        ev_sb_printf(b, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\" class=\"tk\">",
                     left - 6, y + 15);
        ev_sb_puts_html(b, labels[i]);
        ev_sb_printf(b, "</text>");
        if (!v[i].defined) {
            ev_sb_printf(b, "<text x=\"%g\" y=\"%.1f\" class=\"na\">n/a: ", left + 4, y + 15);
            ev_sb_puts_html(b, v[i].why ? v[i].why : "undefined");
            ev_sb_printf(b, "</text>");
            continue;
        }
        double f = fmin(fmax((v[i].value - x0) / (x1 - x0), 0), 1);
        ev_sb_printf(b, "<rect x=\"%g\" y=\"%.1f\" width=\"%.1f\" height=\"%g\" fill=\"%s\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\">%.3f</text>",
                     left, y + 3, f * span, bh - 6, ev_palette[i % 8], left + f * span + 4,
                     y + 15, v[i].value);
    }
    ev_sb_printf(b, "<line x1=\"%g\" y1=\"26\" x2=\"%g\" y2=\"%.1f\" class=\"frame\"/>", left,
                 left, 30 + bh * (double)n);
    ev_sb_printf(b, "<text x=\"%g\" y=\"%.1f\" class=\"tk\">%.3g</text><text x=\"%g\" "
                    "y=\"%.1f\" text-anchor=\"end\" class=\"tk\">%.3g</text></svg>\n",
                 left, 30 + bh * (double)n + 14, x0, left + span, 30 + bh * (double)n + 14, x1);
}
