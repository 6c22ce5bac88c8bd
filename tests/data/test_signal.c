/* The signal split is real: on a generated cohort, per-modality features exported from the
 * loader's own batches (bag of token ids for notes, code counts and mean value bins for the
 * EHR, 4x4-block means for images) feed scikit-learn logistic regressions in
 * signal_split.py, which checks that each single modality's test AUROC is clearly below the
 * three together, and all are below the oracle's (the true risks in oracle.csv). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "ff/data.h"

#define NSITES 4

static void export_site(const char *dir, int site_no, FILE *feat, FILE *meta, long *rows)
{
    ff_data_shape sh;
    ff_data_shape_tiny(&sh);
    ff_site_opts o = ff_site_opts_default();
    ff_load_report rep;
    ff_site *s = NULL;
    assert_int_equal(ff_site_load(&s, dir, &sh, &o, &rep), FF_OK);
    int nt = sh.Vt, nc = sh.Vc, ni = (sh.H / 4) * (sh.W / 4);
    size_t cols = (size_t)nt + 1 + 2 * (size_t)nc + 1 + (size_t)ni + 1;
    float *row = malloc(cols * sizeof *row);
    ff_batch b;
    assert_int_equal(ff_batch_alloc(&b, 1, sh.K, sh.C, sh.H, sh.W, sh.Lt, sh.Le), FF_OK);
    for (int sp = 0; sp < FF_SPLIT_COUNT; sp++)
        for (uint32_t i = 0; i < ff_site_count(s, (ff_split)sp); i++) {
            assert_int_equal(ff_site_batch(s, (ff_split)sp, &i, 1, NULL, NULL, &b), FF_OK);
            memset(row, 0, cols * sizeof *row);
            float *t = row, *e = row + nt + 1, *im = e + 2 * nc + 1;
            for (int k = 0; k < sh.Lt; k++)
                if (b.text_ids[k])
                    t[b.text_ids[k]] += 1, t[nt] = 1;
            for (int k = 0; k < sh.Le; k++)
                if (b.ehr_code[k]) {
                    e[b.ehr_code[k]] += 1;
                    e[nc + b.ehr_code[k]] += (float)b.ehr_val[k];
                    e[2 * nc] = 1;
                }
            for (int c = 0; c < nc; c++)
                if (e[c] > 0)
                    e[nc + c] /= e[c];
            if (b.image_present[0] > 0) {
                for (int y = 0; y < sh.H; y++)
                    for (int x = 0; x < sh.W; x++)
                        im[(y / 4) * (sh.W / 4) + x / 4] += b.image[y * sh.W + x] / 16.0f;
                im[ni] = 1;
            }
            assert_int_equal(fwrite(row, sizeof *row, cols, feat), cols);
            fprintf(meta, "%s,%d,%d,%g,%g,%g,%g,%g,%g\n", ff_site_patient_id(s, (ff_split)sp, i),
                    site_no, sp, b.labels[0], b.labels[1], b.labels[2], b.label_mask[0],
                    b.label_mask[1], b.label_mask[2]);
            (*rows)++;
        }
    print_message("site %d: %zu columns: text %d+1, ehr %d+%d+1, image %d+1\n", site_no, cols,
                  nt, nc, nc, ni);
    ff_batch_free(&b);
    free(row);
    ff_site_free(s);
}

static void test_signal_split(void **state)
{
    (void)state;
    const char *tmp = ft_tmpdir();
    char cohort[512], path[600];
    snprintf(cohort, sizeof cohort, "%s/cohort", tmp);
    ff_synth_opts o = ff_synth_opts_default(); /* the default cohort: 4 x ~2000 patients */
    o.quiet = 1;
    o.seed = getenv("FF_SIGNAL_SEED") ? strtoull(getenv("FF_SIGNAL_SEED"), NULL, 10) : 2024;
    o.image_size = 32; /* the tiny model's input: no resize, and a faster test */
    double t0 = ff_now();
    assert_int_equal(ff_synth_generate(&o, cohort), FF_OK);
    print_message("synth: %.1f s\n", ff_now() - t0);
    snprintf(path, sizeof path, "%s/features.f32", tmp);
    FILE *feat = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/rows.csv", tmp);
    FILE *meta = fopen(path, "w");
    assert_non_null(feat);
    assert_non_null(meta);
    long rows = 0;
    for (int k = 1; k <= NSITES; k++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/site-%d", cohort, k);
        export_site(dir, k, feat, meta, &rows);
    }
    fclose(feat);
    fclose(meta);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/data/signal_split.py %s %ld", FF_SOURCE_DIR,
             tmp, rows);
    int rc = system(cmd);
    assert_int_equal(rc, 0);
    ft_rmtree(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_signal_split)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
