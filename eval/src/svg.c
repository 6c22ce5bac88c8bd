/* HTML escaping and the SVG charts of the HTML report: line panels (small multiples)
 * and bar charts, each with a title, both axes with ticks and labels, a legend outside the
 * plotting area, and <title> tooltips on every curve, point and bar (docs/evaluation.md,
 * "Report"). */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void ev_sb_puts_html(ff_sbuf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': ff_sbuf_printf(b, "&lt;"); break;
        case '>': ff_sbuf_printf(b, "&gt;"); break;
        case '&': ff_sbuf_printf(b, "&amp;"); break;
        case '"': ff_sbuf_printf(b, "&quot;"); break;
        default: ff_sbuf_printf(b, "%c", *s);
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

/* Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour
 * vision deficiency. Black first (the pooled column); yellow, weak on white, is left out. */
const char *const ev_palette[EV_NPALETTE] = {"#000000", "#E69F00", "#56B4E9", "#009E73",
                                             "#0072B2", "#D55E00", "#CC79A7"};

const char *ev_colour(size_t i)
{
    return ev_palette[i % EV_NPALETTE];
}

#define MT 40.0 /* title and subtitle */
#define ML 46.0 /* y tick labels and the y axis label */
#define MR 12.0
#define MB 38.0 /* x tick labels and the x axis label */
#define LEGEND_ROW 15.0

typedef struct {
    const ev_panel *p;
    double fw, fh; /* frame size */
} ev_geom;

static double gx(const ev_geom *g, double x)
{
    const ev_panel *p = g->p;
    double f = p->x1 > p->x0 ? (x - p->x0) / (p->x1 - p->x0) : 0;
    return ML + fmin(fmax(f, -0.02), 1.02) * g->fw;
}

static double gy(const ev_geom *g, double y)
{
    const ev_panel *p = g->p;
    double f = p->y1 > p->y0 ? (y - p->y0) / (p->y1 - p->y0) : 0;
    return MT + g->fh - fmin(fmax(f, -0.02), 1.02) * g->fh;
}

static void text_el(ff_sbuf *b, double x, double y, const char *anchor, const char *cls,
                    const char *s)
{
    ff_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y,
                   anchor, cls);
    ev_sb_puts_html(b, s);
    ff_sbuf_printf(b, "</text>");
}

/* The chart's root, its <title> (name for screen readers and the tooltip), title, subtitle. */
static void chart_open(ff_sbuf *b, const char *cls, double w, double h, const char *title,
                       const char *subtitle)
{
    ff_sbuf_printf(b, "<svg width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" class=\"chart %s\" "
                    "role=\"img\"><title>", w, h, w, h, cls);
    ev_sb_puts_html(b, title);
    if (subtitle) {
        ff_sbuf_printf(b, " (");
        ev_sb_puts_html(b, subtitle);
        ff_sbuf_printf(b, ")");
    }
    ff_sbuf_printf(b, "</title><rect x=\"0\" y=\"0\" width=\"%g\" height=\"%g\" fill=\"#fff\"/>",
                   w, h);
    text_el(b, w / 2, 16, "middle", "ct", title);
    if (subtitle)
        text_el(b, w / 2, 30, "middle", "cs", subtitle);
}

/* Ticks at "nice" steps (1, 2, 2.5 or 5 times a power of ten), about n of them. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return p * (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10);
}

static void axes(ff_sbuf *b, const ev_geom *g)
{
    const ev_panel *p = g->p;
    double sx = nice_step(p->x1 - p->x0, p->xticks ? p->xticks : 4);
    double sy = nice_step(p->y1 - p->y0, 4);
    ff_sbuf_printf(b, "<g class=\"axis x\">");
    for (double v = ceil(p->x0 / sx - 1e-9) * sx; v <= p->x1 + 1e-9; v += sx) {
        double X = gx(g, v);
        ff_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tk\">%g</text>",
                     X, MT, X, MT + g->fh, X, MT + g->fh + 12, fabs(v) < 1e-12 ? 0 : v);
    }
    text_el(b, ML + g->fw / 2, MT + g->fh + 28, "middle", "al", p->xlabel);
    ff_sbuf_printf(b, "</g><g class=\"axis y\">");
    for (double v = ceil(p->y0 / sy - 1e-9) * sy; v <= p->y1 + 1e-9; v += sy) {
        double Y = gy(g, v);
        ff_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"tk\">%g</text>",
                     ML, Y, ML + g->fw, Y, ML - 4, Y + 3.5, fabs(v) < 1e-12 ? 0 : v);
    }
    ff_sbuf_printf(b, "<text transform=\"translate(11,%.1f) rotate(-90)\" text-anchor=\"middle\" "
                    "class=\"al\">", MT + g->fh / 2);
    ev_sb_puts_html(b, p->ylabel);
    ff_sbuf_printf(b, "</text></g><rect x=\"%g\" y=\"%g\" width=\"%.1f\" height=\"%.1f\" "
                    "class=\"frame\"/>", ML, MT, g->fw, g->fh);
}

static const char *dash(int style)
{
    return style == EV_DASHED ? " stroke-dasharray=\"6 4\"" : style == EV_DOTTED ? " stroke-dasharray=\"2 3\"" : "";
}

static void series(ff_sbuf *b, const ev_geom *g, const ev_series *s)
{
    if (s->n == 0)
        return;
    size_t m = s->n > 400 ? 400 : s->n;
    double w = s->style == EV_REFERENCE ? 1.2 : 2;
    ff_sbuf_printf(b, "<g class=\"series\"><polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%g\"%s "
                    "points=\"", s->colour, w, dash(s->style));
    for (size_t i = 0; i < m; i++) {
        size_t j = ev_thin_index(s->n, 400, i);
        ff_sbuf_printf(b, "%.1f,%.1f ", gx(g, s->x[j]), gy(g, s->y[j]));
    }
    ff_sbuf_printf(b, "\"><title>");
    ev_sb_puts_html(b, s->tip ? s->tip : s->name);
    ff_sbuf_printf(b, "</title></polyline>");
    for (size_t i = 0; s->markers && i < s->n; i++) {
        ff_sbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>",
                       gx(g, s->x[i]), gy(g, s->y[i]), s->colour);
        if (s->point_tip)
            ev_sb_puts_html(b, s->point_tip[i]);
        else
            ff_sbuf_printf(b, "%.3f, %.3f", s->x[i], s->y[i]);
        ff_sbuf_printf(b, "</title></circle>");
    }
    ff_sbuf_printf(b, "</g>");
}

/* One legend entry per series, one per row, under the x axis label: never on the data. */
static void legend(ff_sbuf *b, double x, double y, const ev_series *s, size_t ns)
{
    ff_sbuf_printf(b, "<g class=\"legend\">");
    for (size_t k = 0; k < ns; k++) {
        double Y = y + LEGEND_ROW * (double)k;
        ff_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                        "stroke-width=\"%g\"%s/>", x, Y - 4, x + 20, Y - 4, s[k].colour,
                     s[k].style == EV_REFERENCE ? 1.2 : 2, dash(s[k].style));
        if (s[k].markers)
            ff_sbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", x + 10,
                           Y - 4, s[k].colour);
        ff_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">", x + 25, Y);
        ev_sb_puts_html(b, s[k].name);
        ff_sbuf_printf(b, "%s</text>", s[k].n == 0 ? " (no curve)" : "");
    }
    ff_sbuf_printf(b, "</g>");
}

void ev_svg_panel(ff_sbuf *b, const ev_panel *p, const ev_series *s, size_t ns)
{
    double w = p->width > 0 ? p->width : 250, fh = p->frame_height > 0 ? p->frame_height : 170;
    ev_geom g = {p, w - ML - MR, fh};
    double h = MT + fh + MB + 6 + LEGEND_ROW * (double)ns;
    chart_open(b, "lines", w, h, p->title, p->subtitle);
    axes(b, &g);
    if (p->diagonal)
        ff_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"diag\"/>",
                       gx(&g, p->x0), gy(&g, p->y0), gx(&g, p->x1), gy(&g, p->y1));
    for (size_t k = 0; k < ns; k++)
        series(b, &g, &s[k]);
    legend(b, ML, MT + fh + MB + 10, s, ns);
    ff_sbuf_printf(b, "</svg>\n");
}

void ev_svg_bars(ff_sbuf *b, const char *title, const char *const *labels, const ff_metric *v,
                 size_t n, double x0, double x1, const char *colour)
{
    double bh = 22, left = 120, w = 400, span = w - left - 70, top = 28;
    double h = top + bh * (double)n + 34 + 2 * LEGEND_ROW;
    chart_open(b, "bars", w, h, title, NULL);
    double base = top + bh * (double)n;
    ff_sbuf_printf(b, "<g class=\"axis y\">");
    for (size_t i = 0; i < n; i++)
        text_el(b, left - 6, top + bh * (double)i + 15, "end", "tk", labels[i]);
    ff_sbuf_printf(b, "</g><g class=\"axis x\">");
    double st = nice_step(x1 - x0, 4);
    for (double t = ceil(x0 / st - 1e-9) * st; t <= x1 + 1e-9; t += st) {
        double X = left + (t - x0) / (x1 - x0) * span;
        ff_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tk\">%g</text>",
                     X, top - 2, X, base, X, base + 12, fabs(t) < 1e-12 ? 0 : t);
    }
    ff_sbuf_printf(b, "</g>");
    for (size_t i = 0; i < n; i++) {
        double y = top + bh * (double)i;
        if (!v[i].defined) {
            ff_sbuf_printf(b, "<text x=\"%g\" y=\"%.1f\" class=\"na\">n/a: ", left + 4, y + 15);
            ev_sb_puts_html(b, v[i].why ? v[i].why : "not computed");
            ff_sbuf_printf(b, "</text>");
            continue;
        }
        double f = fmin(fmax((v[i].value - x0) / (x1 - x0), 0), 1);
        ff_sbuf_printf(b, "<g class=\"bar\"><title>");
        ev_sb_puts_html(b, labels[i]);
        ff_sbuf_printf(b, ": %.3f", v[i].value);
        if (v[i].has_ci)
            ff_sbuf_printf(b, " (95%% interval %.3f to %.3f)", v[i].lo, v[i].hi);
        ff_sbuf_printf(b, "</title><rect x=\"%g\" y=\"%.1f\" width=\"%.1f\" height=\"%g\" "
                        "fill=\"%s\" fill-opacity=\"0.75\"/>", left, y + 4, f * span, bh - 8, colour);
        if (v[i].has_ci) {
            double a = left + fmin(fmax((v[i].lo - x0) / (x1 - x0), 0), 1) * span;
            double c = left + fmin(fmax((v[i].hi - x0) / (x1 - x0), 0), 1) * span;
            ff_sbuf_printf(b, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fV%.1f\" "
                            "class=\"whisker\"/>", a, y + 6, y + bh - 6, a, y + bh / 2, c, c,
                         y + 6, y + bh - 6);
        }
        ff_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\">%.3f</text></g>",
                       left + span + 6, y + 15, v[i].value);
    }
    ff_sbuf_printf(b, "<g class=\"legend\"><rect x=\"%g\" y=\"%.1f\" width=\"16\" height=\"9\" "
                    "fill=\"%s\" fill-opacity=\"0.75\"/><text x=\"%g\" y=\"%.1f\" class=\"lg\">"
                    "estimate (value at the right)</text>"
                    "<path d=\"M%g %.1fH%g\" class=\"whisker\"/><text x=\"%g\" y=\"%.1f\" "
                    "class=\"lg\">95%% interval (bootstrap), when computed</text></g></svg>\n",
                 left, base + 22, colour, left + 22, base + 30, left, base + 22 + LEGEND_ROW + 4,
                 left + 16, left + 22, base + 30 + LEGEND_ROW);
}
