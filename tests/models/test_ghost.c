/* Ghost clipping against independent single-example runs: for every example of a batch with
 * missing modalities, repeated ids and interior padding, each parameter tensor's per-example
 * squared gradient norm from the ghost pass (Gram form, materialised form and the automatic
 * choice) equals the one of the gradient a separate max-batch-1 model materialises for that
 * example alone; whole norms likewise, for fusion-tiny in every fusion mode and for
 * fusion-base; and the ghost clipped sum (book-keeping, and a second backward) equals
 * Σ clip_C(g_i) of the single runs. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_fixture.h"
#include "ff/models.h"

#define GOLD FF_SOURCE_DIR "/tests/models/golden/"

static void make_batch(const ff_model_config *c, ff_batch *b, int B, uint64_t seed)
{
    ftm_make_batch(c, b, B, seed, 1);
}

typedef struct {
    ff_model_config c;
    ff_model *m;
    ff_batch b;
    size_t n, nt;
    int B;
    double *g;  /* [B][n] single-run gradients */
    double *sq; /* [B][nt] their per-tensor squared norms */
} setup_t;

static void setup_make(setup_t *s, const char *cfg, int fusion, int B, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(ff_model_config_default(&s->c, cfg), FF_OK);
    s->c.fusion = fusion;
    s->B = B;
    assert_int_equal(ff_model_new(&s->m, &s->c, B), FF_OK);
    assert_int_equal(ff_model_init_std(s->m, seed, 0.1f), FF_OK);
    make_batch(&s->c, &s->b, B, seed + 1);
    s->n = ff_model_nparams(s->m), s->nt = ff_model_ntensors(s->m);
    s->g = malloc((size_t)B * s->n * sizeof *s->g);
    s->sq = calloc((size_t)B * s->nt, sizeof *s->sq);
    assert_non_null(s->g);
    assert_non_null(s->sq);
    for (int i = 0; i < B; i++) {
        double *gi = s->g + (size_t)i * s->n;
        ftm_single_grad(&s->c, ff_model_params(s->m), &s->b, i, gi, s->n);
        for (size_t t = 0; t < s->nt; t++) {
            const ff_param_info *p = ff_model_tensor(s->m, t);
            for (size_t j = 0; j < p->numel; j++)
                s->sq[(size_t)i * s->nt + t] += gi[p->offset + j] * gi[p->offset + j];
        }
    }
}

static void setup_free(setup_t *s)
{
    free(s->g);
    free(s->sq);
    ff_batch_free(&s->b);
    ff_model_free(s->m);
}

static double total(const setup_t *s, int i)
{
    double t = 0;
    for (size_t k = 0; k < s->nt; k++)
        t += s->sq[(size_t)i * s->nt + k];
    return t;
}

/* Per tensor and example: |ghost − single| ≤ tol · single + 1e-9 · the example's total (a
 * tensor with no gradient for that example, e.g. an absent modality, must get ~0). Returns
 * the worst relative error over tensors with a non-negligible share. */
static double check_tensors(setup_t *s, int policy, double tol, int *nonzero)
{
    ff_model_set_ghost_policy(s->m, policy);
    double *gs = malloc((size_t)s->B * s->nt * sizeof *gs), *norms = malloc(s->B * sizeof *norms);
    assert_int_equal(ff_model_ghost_tensor_sqnorms(s->m, &s->b, norms, gs), FF_OK);
    double worst = 0;
    *nonzero = 0;
    for (int i = 0; i < s->B; i++) {
        double tot = total(s, i), gt = 0;
        for (size_t t = 0; t < s->nt; t++) {
            double want = s->sq[(size_t)i * s->nt + t], got = gs[(size_t)i * s->nt + t];
            gt += got;
            if (fabs(got - want) > tol * want + 1e-9 * tot)
                fail_msg("example %d tensor %s: ghost %.9g, single run %.9g (policy %d)", i,
                         ff_model_tensor(s->m, t)->name, got, want, policy);
            if (want > 1e-9 * tot) {
                (*nonzero)++;
                worst = fmax(worst, fabs(got - want) / want);
            }
        }
        assert_true(fabs(norms[i] - sqrt(tot)) <= tol * sqrt(tot));
        assert_true(fabs(gt - norms[i] * norms[i]) <= 1e-9 * gt);
    }
    free(gs);
    free(norms);
    return worst;
}

/* The ghost clipped sum at clip C (book-keeping or, with FF_GHOST_TWO_BACKWARD in policy, a
 * second backward) against Σ_i min(1, C/‖g_i‖) g_i of the single runs, in double; also
 * checks the model's gradient buffer is left alone. Returns the relative error. */
static double clipped_sum_err(setup_t *s, double C, int policy)
{
    float *sum = calloc(s->n, sizeof *sum), *g = ff_model_grads(s->m);
    double *want = calloc(s->n, sizeof *want), *norms = malloc(s->B * sizeof *norms);
    for (size_t j = 0; j < s->n; j++)
        g[j] = 7.0f;
    ff_model_set_ghost_policy(s->m, policy);
    assert_int_equal(ff_model_ghost_clipped_grad_sum(s->m, &s->b, C, sum, norms, NULL), FF_OK);
    ff_model_set_ghost_policy(s->m, FF_GHOST_AUTO);
    for (size_t j = 0; j < s->n; j++)
        assert_true(g[j] == 7.0f);
    for (int i = 0; i < s->B; i++) {
        double nrm = sqrt(total(s, i)), sc = nrm > C ? C / nrm : 1.0;
        for (size_t j = 0; j < s->n; j++)
            want[j] += sc * s->g[(size_t)i * s->n + j];
    }
    double num = 0, den = 0;
    for (size_t j = 0; j < s->n; j++)
        num += (sum[j] - want[j]) * (sum[j] - want[j]), den += want[j] * want[j];
    free(sum);
    free(want);
    free(norms);
    return sqrt(num / den);
}

/* Clip below every norm, at the median norm, and C = inf; both ways of forming the sum. */
static void check_clipped_sums(setup_t *s, const char *what)
{
    double *nr = malloc(s->B * sizeof *nr);
    for (int i = 0; i < s->B; i++)
        nr[i] = sqrt(total(s, i));
    for (int i = 1; i < s->B; i++)
        for (int j = i; j > 0 && nr[j - 1] > nr[j]; j--) {
            double t = nr[j];
            nr[j] = nr[j - 1], nr[j - 1] = t;
        }
    double Cs[] = {0.5 * nr[0], nr[s->B / 2], INFINITY};
    for (int k = 0; k < 3; k++)
        for (int two = 0; two < 2; two++) {
            double e = clipped_sum_err(s, Cs[k], two ? FF_GHOST_TWO_BACKWARD : FF_GHOST_AUTO);
            printf("%s clipped sum (C = %.4g, %s): rel. err %.2e vs single runs\n", what,
                   Cs[k], two ? "second backward" : "book-keeping", e);
            assert_true(e < 1e-5);
        }
    free(nr);
}

static void run_layers(const char *cfg, int fusion, int B)
{
    setup_t s;
    setup_make(&s, cfg, fusion, B, 31);
    const char *pol[] = {"auto", "gram", "materialised"};
    for (int p = 0; p < 3; p++) {
        int nz;
        double w = check_tensors(&s, p, 1e-4, &nz);
        printf("%s %s, %s: %d (example, tensor) norms, worst rel. err %.2e\n", cfg,
               ff_fusion_name(fusion), pol[p], nz, w);
        assert_true(w < 1e-4);
    }
    long long gram, mat;
    ff_model_ghost_stats(s.m, &gram, &mat);
    assert_true(gram > 0 && mat > 0);
    char what[96];
    snprintf(what, sizeof what, "%s %s", cfg, ff_fusion_name(fusion));
    check_clipped_sums(&s, what);
    setup_free(&s);
}

static void test_layers_tiny_cross(void **state)
{
    (void)state;
    run_layers("fusion-tiny", FF_FUSION_CROSS, 9);
}

static void test_layers_tiny_early_late(void **state)
{
    (void)state;
    run_layers("fusion-tiny", FF_FUSION_EARLY, 7);
    run_layers("fusion-tiny", FF_FUSION_LATE, 7);
}

/* Whole norms of fusion-base (every presence pattern) against the single runs and against the
 * library's own batch-of-1 path; then the clipped sum. */
static void test_base_norms_and_clipped_sum(void **state)
{
    (void)state;
    setup_t s;
    int B = 7;
    setup_make(&s, "fusion-base", FF_FUSION_CROSS, B, 5);
    double ghost[7], exact[7];
    float gl[7], el[7];
    assert_int_equal(ff_model_ghost_norms(s.m, &s.b, ghost, gl), FF_OK);
    assert_int_equal(ff_model_perexample_norms(s.m, &s.b, exact, el), FF_OK);
    double worst = 0, worst_b1 = 0;
    for (int i = 0; i < B; i++) {
        double want = sqrt(total(&s, i));
        worst = fmax(worst, fabs(ghost[i] - want) / want);
        worst_b1 = fmax(worst_b1, fabs(exact[i] - want) / want);
        assert_true(fabs(gl[i] - el[i]) <= 1e-5f * fabsf(el[i]));
    }
    printf("fusion-base norms: ghost vs single runs worst rel. err %.2e (batch-of-1 path %.2e)\n",
           worst, worst_b1);
    assert_true(worst < 1e-5);
    int nz;
    double wt = check_tensors(&s, FF_GHOST_AUTO, 1e-4, &nz);
    printf("fusion-base per tensor: %d norms, worst rel. err %.2e\n", nz, wt);

    check_clipped_sums(&s, "fusion-base cross");
    setup_free(&s);
}

/* Against the PyTorch peer (bench/torch_peer.py, float64, each example alone through
 * autograd): the committed golden sets of fusion-tiny, per-tensor squared norms from
 * tests/models/oracle_pernorms.py. */
static void test_vs_torch(void **state)
{
    (void)state;
    const char *modes[] = {"cross", "early", "late"};
    int fusions[] = {FF_FUSION_CROSS, FF_FUSION_EARLY, FF_FUSION_LATE};
    for (int k = 0; k < 3; k++) {
        char path[512];
        ff_model_config c;
        assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
        c.fusion = fusions[k];
        ff_batch b;
        snprintf(path, sizeof path, GOLD "tiny_%s_inputs.safetensors", modes[k]);
        if (ff_model_read_inputs(&c, path, &b) != FF_OK) fail_msg("%s", ff_error_message());
        ff_model *m;
        assert_int_equal(ff_model_new(&m, &c, b.B), FF_OK);
        snprintf(path, sizeof path, GOLD "tiny_%s_weights.safetensors", modes[k]);
        if (ff_model_load(m, path) != FF_OK) fail_msg("%s", ff_error_message());
        size_t nt = ff_model_ntensors(m);
        double *sq = malloc((size_t)b.B * nt * sizeof *sq), *norms = malloc(b.B * sizeof *norms);
        double *want = malloc(b.B * sizeof *want), *tn = malloc(b.B * sizeof *tn);
        assert_int_equal(ff_model_ghost_tensor_sqnorms(m, &b, norms, sq), FF_OK);
        ff_safetensors *st;
        snprintf(path, sizeof path, GOLD "tiny_%s_pernorm.safetensors", modes[k]);
        assert_int_equal(ff_safetensors_open(&st, path), FF_OK);
        int64_t shape[1] = {b.B};
        assert_int_equal(ff_safetensors_read(st, "norm", FF_DT_F64, 1, shape, tn), FF_OK);
        double worst = 0, worst_t = 0;
        for (int i = 0; i < b.B; i++)
            worst = fmax(worst, fabs(norms[i] - tn[i]) / tn[i]);
        for (size_t t = 0; t < nt; t++) {
            char name[160];
            snprintf(name, sizeof name, "sq.%s", ff_model_tensor(m, t)->name);
            if (ff_safetensors_read(st, name, FF_DT_F64, 1, shape, want) != FF_OK)
                fail_msg("%s", ff_error_message());
            for (int i = 0; i < b.B; i++) {
                double got = sq[(size_t)i * nt + t], tot = tn[i] * tn[i];
                if (fabs(got - want[i]) > 1e-4 * want[i] + 1e-9 * tot)
                    fail_msg("%s example %d %s: ghost %.9g, torch %.9g", modes[k], i, name, got,
                             want[i]);
                if (want[i] > 1e-9 * tot) worst_t = fmax(worst_t, fabs(got - want[i]) / want[i]);
            }
        }
        printf("tiny %s vs torch: norms worst rel. err %.2e, per tensor %.2e\n", modes[k], worst,
               worst_t);
        assert_true(worst < 1e-5);
        ff_safetensors_close(st);
        free(sq), free(norms), free(want), free(tn);
        ff_batch_free(&b);
        ff_model_free(m);
    }
}

/* With a pool of 3 threads the linear hooks split examples over it: same checks, and the
 * norms agree with a 1-thread pass (not bit for bit: the model's batched GEMMs split their
 * work by the thread count). */
static void test_threads(void **state)
{
    (void)state;
    ff_models_set_threads(3);
    setup_t s;
    setup_make(&s, "fusion-tiny", FF_FUSION_CROSS, 9, 41);
    int nz;
    double w = check_tensors(&s, FF_GHOST_AUTO, 1e-4, &nz);
    printf("fusion-tiny cross, 3 threads: %d norms, worst rel. err %.2e\n", nz, w);
    check_clipped_sums(&s, "fusion-tiny cross, 3 threads");
    double n3[9], n1[9];
    assert_int_equal(ff_model_ghost_norms(s.m, &s.b, n3, NULL), FF_OK);
    ff_models_set_threads(1);
    assert_int_equal(ff_model_ghost_norms(s.m, &s.b, n1, NULL), FF_OK);
    for (int i = 0; i < 9; i++)
        assert_true(fabs(n1[i] - n3[i]) <= 1e-6 * n1[i]);
    setup_free(&s);
}

/* B = 0 and a bad clip norm. */
static void test_edge_cases(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, 4), FF_OK);
    ff_batch b;
    make_batch(&c, &b, 4, 3);
    float *sum = calloc(ff_model_nparams(m), sizeof *sum);
    b.B = 0;
    assert_int_equal(ff_model_ghost_norms(m, &b, NULL, NULL), FF_OK);
    assert_int_equal(ff_model_ghost_clipped_grad_sum(m, &b, 1.0, sum, NULL, NULL), FF_OK);
    b.B = 4;
    assert_int_equal(ff_model_ghost_clipped_grad_sum(m, &b, 0.0, sum, NULL, NULL), FF_EINVAL);
    b.B = 5;
    assert_int_equal(ff_model_ghost_clipped_grad_sum(m, &b, 1.0, sum, NULL, NULL), FF_EINVAL);
    b.B = 4;
    free(sum);
    ff_batch_free(&b);
    ff_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_tiny_cross),
        cmocka_unit_test(test_layers_tiny_early_late),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_vs_torch),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_base_norms_and_clipped_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
