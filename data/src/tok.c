/* Tokenizers, time bins and the value-bin statistics (histograms, merge, decile edges).
 * Everything here is a pure function of its inputs so that another implementation can
 * reproduce the ids exactly (docs/data.md gives worked examples). */
#include "ff/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ff_data_shape_base(ff_data_shape *s)
{
    *s = (ff_data_shape){.C = 1, .H = 64, .W = 64, .Lt = 64, .Vt = 8192, .Le = 128,
                         .Vc = 4096, .Vv = 11, .Vtime = 32, .K = 3, .bigrams = 0};
    ff_task_set_ed(&s->tasks, 3);
}

void ff_data_shape_tiny(ff_data_shape *s)
{
    *s = (ff_data_shape){.C = 1, .H = 32, .W = 32, .Lt = 32, .Vt = 2048, .Le = 48,
                         .Vc = 1024, .Vv = 11, .Vtime = 16, .K = 3, .bigrams = 0};
    ff_task_set_ed(&s->tasks, 3);
}

int ff_data_shape_check(ff_data_shape *s)
{
    if (s->C != 1)
        return ff_error(FF_EINVAL, "data shape: image channels must be 1 (got %d)", s->C);
    if (s->H < 4 || s->W < 4 || s->H > 1024 || s->W > 1024)
        return ff_error(FF_EINVAL, "data shape: image size %dx%d outside 4..1024", s->H, s->W);
    if (s->Lt < 1 || s->Le < 1 || s->Lt > 65535 || s->Le > 65535)
        return ff_error(FF_EINVAL, "data shape: Lt=%d Le=%d outside 1..65535", s->Lt, s->Le);
    if (s->Vt < 2 || s->Vc < 2 || s->Vtime < 3)
        return ff_error(FF_EINVAL, "data shape: Vt=%d Vc=%d must be >= 2 and Vtime=%d >= 3",
                        s->Vt, s->Vc, s->Vtime);
    if (s->Vv != FF_VALUE_BINS)
        return ff_error(FF_EINVAL, "data shape: Vv must be %d (no value + deciles), got %d",
                        FF_VALUE_BINS, s->Vv);
    if (s->tasks.n == 0) { /* a shape written by hand: the emergency-department tasks */
        if (s->K < 1 || s->K > FF_DATA_TASKS)
            return ff_error(FF_EINVAL, "data shape: K=%d outside 1..%d", s->K, FF_DATA_TASKS);
        ff_task_set_ed(&s->tasks, s->K);
    }
    if (s->K != s->tasks.width)
        return ff_error(FF_EINVAL, "data shape: K=%d but the tasks take %d columns", s->K,
                        s->tasks.width);
    if (s->tab.n > 0)
        return ff_feature_set_finish(&s->tab);
    return FF_OK;
}

/* ---------------------------------------------------------------------------------------- */

int32_t ff_tok_word(const char *word, size_t len, int Vt)
{
    return (int32_t)(1u + ff_fnv1a32(word, len) % (uint32_t)(Vt - 1));
}

int32_t ff_tok_code(const char *code, size_t len, int Vc)
{
    return (int32_t)(1u + ff_fnv1a32(code, len) % (uint32_t)(Vc - 1));
}

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}


int ff_tok_next_word(const char *text, size_t len, size_t *pos, char *word, size_t *wl)
{
    size_t i = *pos;
    while (i < len && !is_word_byte((unsigned char)text[i]))
        i++;
    *wl = 0;
    if (i >= len) {
        *pos = i;
        return 0;
    }
    while (i < len && is_word_byte((unsigned char)text[i])) {
        unsigned char c = (unsigned char)text[i++];
        if (*wl < FF_TOK_MAX_WORD)
            word[(*wl)++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    *pos = i;
    return 1;
}

size_t ff_tok_text(const char *text, size_t len, int Vt, int bigrams, int32_t *ids, size_t cap,
                   size_t *nwords)
{
    char prev[FF_TOK_MAX_WORD], cur[FF_TOK_MAX_WORD];
    char pair[2 * FF_TOK_MAX_WORD + 1];
    size_t prev_len = 0, n = 0, words = 0, i = 0, wl;
    while (ff_tok_next_word(text, len, &i, cur, &wl)) {
        words++;
        if (n < cap)
            ids[n++] = ff_tok_word(cur, wl, Vt);
        if (bigrams && prev_len > 0 && n < cap) {
            memcpy(pair, prev, prev_len);
            pair[prev_len] = ' ';
            memcpy(pair + prev_len + 1, cur, wl);
            ids[n++] = ff_tok_word(pair, prev_len + 1 + wl, Vt);
        }
        memcpy(prev, cur, wl);
        prev_len = wl;
    }
    if (nwords)
        *nwords = words;
    return n;
}

int32_t ff_tok_time_bin(double h, int Vtime)
{
    if (!(h > 0)) /* 0, negative and NaN: the most recent bin */
        h = 0;
    double x = (double)(Vtime - 1) * log1p(h) / log1p(FF_TIME_HORIZON_H);
    int b = (int)floor(x);
    if (b > Vtime - 2)
        b = Vtime - 2;
    return (int32_t)(1 + b);
}

/* ---------------------------------------------------------------------------------------- */

static double vgrid_g(double v)
{
    return v < 0 ? -log1p(-v) : log1p(v);
}

#define VGRID_W ((FF_VGRID_HI - FF_VGRID_LO) / FF_VGRID_BINS)

int ff_value_grid_bin(double v)
{
    double g = vgrid_g(v);
    if (!(g > FF_VGRID_LO)) /* also NaN */
        return 0;
    int b = (int)floor((g - FF_VGRID_LO) / VGRID_W);
    return b >= FF_VGRID_BINS ? FF_VGRID_BINS - 1 : b;
}

int ff_value_hist_init(ff_value_hist *h, int ncodes)
{
    h->ncodes = 0;
    h->counts = NULL;
    if (ncodes < 2)
        return ff_error(FF_EINVAL, "value histogram: %d codes", ncodes);
    /* Plain calloc: most (code, bin) cells stay zero and their pages are never touched, so a
     * 16 MB table for Vc = 4096 costs only the pages of the codes a site uses. */
    h->counts = calloc((size_t)ncodes * FF_VGRID_BINS, sizeof(uint32_t));
    if (!h->counts)
        return ff_error(FF_ENOMEM, "value histogram: out of memory for %d codes", ncodes);
    h->ncodes = ncodes;
    return FF_OK;
}

void ff_value_hist_free(ff_value_hist *h)
{
    free(h->counts);
    h->counts = NULL;
    h->ncodes = 0;
}

void ff_value_hist_add(ff_value_hist *h, int32_t c, double v)
{
    if (c <= 0 || c >= h->ncodes || isnan(v))
        return;
    uint32_t *slot = &h->counts[(size_t)c * FF_VGRID_BINS + (size_t)ff_value_grid_bin(v)];
    if (*slot < UINT32_MAX)
        (*slot)++;
}

int ff_value_hist_merge(ff_value_hist *dst, const ff_value_hist *src)
{
    if (dst->ncodes != src->ncodes)
        return ff_error(FF_EINVAL, "value histogram merge: %d codes vs %d codes", dst->ncodes,
                        src->ncodes);
    size_t n = (size_t)dst->ncodes * FF_VGRID_BINS;
    for (size_t i = 0; i < n; i++)
        if (dst->counts[i] > UINT32_MAX - src->counts[i])
            return ff_error(FF_ERANGE, "value histogram merge: count overflow at code %zu",
                            i / FF_VGRID_BINS);
    for (size_t i = 0; i < n; i++)
        dst->counts[i] += src->counts[i];
    return FF_OK;
}

static void code_edges(const uint32_t *cnt, float *edges, uint8_t *has)
{
    uint64_t total = 0;
    for (int b = 0; b < FF_VGRID_BINS; b++)
        total += cnt[b];
    *has = total > 0;
    if (!total) {
        for (int k = 0; k < 9; k++)
            edges[k] = INFINITY;
        return;
    }
    uint64_t cum = 0;
    int b = 0;
    for (int k = 1; k <= 9; k++) {
        double target = (double)total * k / 10.0;
        while (b < FF_VGRID_BINS - 1 && (double)(cum + cnt[b]) < target) {
            cum += cnt[b];
            b++;
        }
        double frac = cnt[b] ? (target - (double)cum) / (double)cnt[b] : 0.0;
        edges[k - 1] = (float)(FF_VGRID_LO + ((double)b + frac) * VGRID_W);
    }
}

int ff_value_edges_from_hist(const ff_value_hist *h, ff_value_edges *out)
{
    memset(out, 0, sizeof *out);
    out->edges = ff_calloc((size_t)h->ncodes * 9, sizeof(float));
    out->has = ff_calloc((size_t)h->ncodes, 1);
    if (!out->edges || !out->has) {
        ff_value_edges_free(out);
        return ff_error(FF_ENOMEM, "value edges: out of memory");
    }
    out->ncodes = h->ncodes;
    for (int c = 0; c < h->ncodes; c++)
        code_edges(h->counts + (size_t)c * FF_VGRID_BINS, out->edges + (size_t)c * 9,
                   out->has + c);
    return FF_OK;
}

int ff_value_edges_local(const ff_value_hist *h, ff_value_edges *out)
{
    int rc = ff_value_edges_from_hist(h, out);
    if (rc == FF_OK)
        out->local = 1;
    return rc;
}

void ff_value_edges_free(ff_value_edges *e)
{
    ff_free(e->edges);
    ff_free(e->has);
    memset(e, 0, sizeof *e);
}

int32_t ff_value_bin(const ff_value_edges *e, int32_t c, double v)
{
    if (c <= 0 || c >= e->ncodes || !e->has[c] || isnan(v))
        return 1;
    double g = vgrid_g(v);
    const float *ed = e->edges + (size_t)c * 9;
    int32_t bin = 1;
    for (int k = 0; k < 9; k++)
        if (g >= (double)ed[k])
            bin++;
    return bin;
}
