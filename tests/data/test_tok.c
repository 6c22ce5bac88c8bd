/* Tokenizers, time bins and value-bin statistics against known answers computed by an
 * independent Python implementation of FNV-1a (docs/data.md shows the same numbers) and
 * against exact deciles of sorted values. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/data.h"

static const char *kText = "Pt denies chest-pain; SOB x2 days, \"severe\" 9/10";

static void test_text_known_answers(void **state)
{
    (void)state;
    int32_t ids[64];
    size_t nw = 0;
    static const int32_t base[] = {6028, 3289, 4543, 4059, 5656, 2060, 1879, 3300, 5161, 2469};
    static const int32_t tiny[] = {69, 530, 706, 69, 1639, 399, 160, 252, 1595, 26};
    size_t n = ff_tok_text(kText, strlen(kText), 8192, 0, ids, 64, &nw);
    assert_int_equal(n, 10);
    assert_int_equal(nw, 10);
    assert_memory_equal(ids, base, sizeof base);
    n = ff_tok_text(kText, strlen(kText), 2048, 0, ids, 64, NULL);
    assert_int_equal(n, 10);
    assert_memory_equal(ids, tiny, sizeof tiny);
    static const int32_t bi[] = {6028, 3289, 1826, 4543, 1969, 4059, 6230, 5656, 8032, 2060,
                                 8170, 1879, 6051, 3300, 763, 5161, 7685, 2469, 520};
    n = ff_tok_text(kText, strlen(kText), 8192, 1, ids, 64, NULL);
    assert_int_equal(n, 19);
    assert_memory_equal(ids, bi, sizeof bi);
}

static void test_text_truncation_keeps_beginning(void **state)
{
    (void)state;
    int32_t ids[4] = {0};
    size_t nw = 0;
    size_t n = ff_tok_text(kText, strlen(kText), 8192, 0, ids, 3, &nw);
    assert_int_equal(n, 3);
    assert_int_equal(nw, 10); /* the whole text is still counted */
    assert_int_equal(ids[0], 6028);
    assert_int_equal(ids[2], 4543);
    assert_int_equal(ids[3], 0);
    assert_int_equal(ff_tok_text("", 0, 8192, 0, ids, 3, &nw), 0);
    assert_int_equal(ff_tok_text(" ,;-- ", 6, 8192, 0, ids, 3, &nw), 0);
    assert_int_equal(nw, 0);
    /* Case folding: "PAIN" and "pain" are one word. */
    assert_int_equal(ff_tok_text("PAIN", 4, 8192, 0, ids, 1, NULL), 1);
    assert_int_equal(ids[0], 4059);
}

/* ff_tok_next_word (the explainer's words) splits, folds and cuts exactly as ff_tok_text: a
 * 100-byte word (cut at FF_TOK_MAX_WORD), UTF-8 bytes, punctuation, upper case. */
static void test_next_word_is_the_loaders(void **state)
{
    (void)state;
    char text[256];
    char longw[101];
    memset(longw, 'Q', 100);
    longw[100] = '\0';
    snprintf(text, sizeof text, "Chest-PAIN, caf\xc3\xa9 %s ok!", longw);
    int32_t ids[16];
    size_t nw = 0, n = ff_tok_text(text, strlen(text), 5000, 0, ids, 16, &nw);
    assert_int_equal(n, nw);
    size_t pos = 0, wl, k = 0;
    char w[FF_TOK_MAX_WORD];
    while (ff_tok_next_word(text, strlen(text), &pos, w, &wl)) {
        assert_true(k < n);
        assert_true(wl <= FF_TOK_MAX_WORD);
        assert_int_equal(ff_tok_word(w, wl, 5000), ids[k++]);
    }
    assert_int_equal(k, n);
    assert_int_equal(n, 5); /* chest pain café QQQ... ok */
}

static void test_codes_known_answers(void **state)
{
    (void)state;
    assert_int_equal(ff_tok_code("LAB:TROPONIN", 12, 4096), 2394);
    assert_int_equal(ff_tok_code("I10", 3, 4096), 3727);
    assert_int_equal(ff_tok_code("VITAL:HR", 8, 4096), 2047);
    assert_int_equal(ff_tok_code("LAB:TROPONIN", 12, 1024), 459);
    assert_int_equal(ff_tok_code("I10", 3, 1024), 748);
}

static void test_time_bins(void **state)
{
    (void)state;
    static const double h[] = {0, 0.5, 1, 2, 6, 24, 168, 720, 8760, 87600, 1e6};
    static const int b32[] = {1, 2, 2, 3, 6, 9, 14, 18, 25, 31, 31};
    static const int b16[] = {1, 1, 1, 2, 3, 5, 7, 9, 12, 15, 15};
    for (size_t i = 0; i < FF_ARRAY_LEN(h); i++) {
        assert_int_equal(ff_tok_time_bin(h[i], 32), b32[i]);
        assert_int_equal(ff_tok_time_bin(h[i], 16), b16[i]);
    }
    assert_int_equal(ff_tok_time_bin(-3, 32), 1);
    assert_int_equal(ff_tok_time_bin(NAN, 32), 1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Bins from the histogram agree with exact deciles of the sorted values except for values
 * that sit within one grid bin of an edge. */
static void test_value_bins_match_exact_deciles(void **state)
{
    (void)state;
    enum { N = 5000 };
    double *v = malloc(N * sizeof *v), *sorted = malloc(N * sizeof *sorted);
    ff_rng r;
    ff_rng_init(&r, 42, 1);
    for (int i = 0; i < N; i++)
        v[i] = sorted[i] = exp(1.0 + 0.8 * ff_rng_normal(&r)); /* lab-like, log-normal */
    qsort(sorted, N, sizeof *sorted, cmp_double);
    ff_value_hist h;
    assert_int_equal(ff_value_hist_init(&h, 16), FF_OK);
    for (int i = 0; i < N; i++)
        ff_value_hist_add(&h, 5, v[i]);
    ff_value_edges e;
    assert_int_equal(ff_value_edges_local(&h, &e), FF_OK);
    assert_int_equal(e.local, 1);
    int off = 0, counts[11] = {0};
    for (int i = 0; i < N; i++) {
        /* exact decile: 1 + number of exact edges (sorted[k*N/10]) <= v */
        int exact = 1;
        for (int k = 1; k <= 9; k++)
            exact += v[i] >= sorted[k * N / 10];
        int got = ff_value_bin(&e, 5, v[i]);
        assert_true(got >= 1 && got <= 10);
        counts[got]++;
        off += got != exact;
        assert_true(abs(got - exact) <= 1);
    }
    assert_true(off < N / 50); /* < 2 % near edges */
    for (int b = 1; b <= 10; b++)
        assert_true(counts[b] > N / 10 - N / 50 && counts[b] < N / 10 + N / 50);
    /* The worked example of docs/data.md: values 1..10 of one code fall in bins 1..10. */
    ff_value_hist h10;
    ff_value_edges e10;
    assert_int_equal(ff_value_hist_init(&h10, 4), FF_OK);
    for (int i = 1; i <= 10; i++)
        ff_value_hist_add(&h10, 2, i);
    assert_int_equal(ff_value_edges_local(&h10, &e10), FF_OK);
    for (int i = 1; i <= 10; i++)
        assert_int_equal(ff_value_bin(&e10, 2, i), i);
    assert_int_equal(ff_value_grid_bin(0.8), 244);
    assert_int_equal(ff_value_grid_bin(140), 542);
    assert_int_equal(ff_value_grid_bin(-2.5), 119);
    assert_int_equal(ff_value_grid_bin(1e9), 1023);
    ff_value_edges_free(&e10);
    ff_value_hist_free(&h10);
    /* A code with no statistics bins to 1; out-of-range codes too. */
    assert_int_equal(ff_value_bin(&e, 6, 3.0), 1);
    assert_int_equal(ff_value_bin(&e, 99, 3.0), 1);
    ff_value_edges_free(&e);
    ff_value_hist_free(&h);
    free(v);
    free(sorted);
}

/* Merging two hospitals' histograms gives exactly the edges of the pooled values, and those
 * differ from either hospital's local edges. */
static void test_merge_equals_pooled(void **state)
{
    (void)state;
    ff_value_hist a, b, pooled;
    assert_int_equal(ff_value_hist_init(&a, 8), FF_OK);
    assert_int_equal(ff_value_hist_init(&b, 8), FF_OK);
    assert_int_equal(ff_value_hist_init(&pooled, 8), FF_OK);
    ff_rng r;
    ff_rng_init(&r, 7, 2);
    for (int i = 0; i < 3000; i++) {
        double x = 80 + 10 * ff_rng_normal(&r), y = 110 + 15 * ff_rng_normal(&r);
        ff_value_hist_add(&a, 3, x);
        ff_value_hist_add(&b, 3, y);
        ff_value_hist_add(&pooled, 3, x);
        ff_value_hist_add(&pooled, 3, y);
    }
    ff_value_edges ea, ep, em;
    assert_int_equal(ff_value_edges_local(&a, &ea), FF_OK);
    assert_int_equal(ff_value_edges_from_hist(&pooled, &ep), FF_OK);
    assert_int_equal(ff_value_hist_merge(&a, &b), FF_OK);
    assert_int_equal(ff_value_edges_from_hist(&a, &em), FF_OK);
    assert_int_equal(em.local, 0);
    assert_memory_equal(em.edges, ep.edges, 8 * 9 * sizeof(float));
    assert_true(fabsf(ea.edges[3 * 9 + 4] - em.edges[3 * 9 + 4]) > 0.05f);
    /* 100 is above the median of the first hospital, near the pooled median. */
    assert_int_equal(ff_value_bin(&ea, 3, 100.0), 10);
    int pooled_bin = ff_value_bin(&em, 3, 100.0);
    assert_true(pooled_bin >= 5 && pooled_bin <= 7);
    ff_value_hist other;
    assert_int_equal(ff_value_hist_init(&other, 9), FF_OK);
    assert_int_equal(ff_value_hist_merge(&a, &other), FF_EINVAL);
    ft_assert_error_has("8 codes vs 9 codes");
    ff_value_hist_free(&other);
    ff_value_edges_free(&ea);
    ff_value_edges_free(&ep);
    ff_value_edges_free(&em);
    ff_value_hist_free(&a);
    ff_value_hist_free(&b);
    ff_value_hist_free(&pooled);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_known_answers),
        cmocka_unit_test(test_text_truncation_keeps_beginning),
        cmocka_unit_test(test_next_word_is_the_loaders),
        cmocka_unit_test(test_codes_known_answers),
        cmocka_unit_test(test_time_bins),
        cmocka_unit_test(test_value_bins_match_exact_deciles),
        cmocka_unit_test(test_merge_equals_pooled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
