/* The whole model against an independent PyTorch implementation written from the spec alone
 * (bench/torch_peer.py, float64 oracle): committed golden files for fusion-tiny in the cross,
 * early and late modes, mixed presence patterns, weights with std ~0.1. Logits, loss and
 * every gradient must match to relative error < 1e-4 per tensor:
 * max|C − torch| / max|torch|, the metric of `torch_peer.py compare`. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ff/models.h"

#define GOLD FF_SOURCE_DIR "/tests/models/golden/"
#define TOL 1e-4

static double tensor_err(const ff_st_entry *e, const float *actual, size_t n)
{
    float *want = malloc(n * sizeof *want);
    assert_non_null(want);
    assert_int_equal(e->dtype, FF_DT_F32);
    assert_int_equal(ff_st_entry_copy(e, want, n * sizeof *want), FF_OK);
    double maxd = 0, maxe = 0;
    for (size_t i = 0; i < n; i++) {
        maxd = fmax(maxd, fabs((double)actual[i] - want[i]));
        maxe = fmax(maxe, fabs((double)want[i]));
    }
    free(want);
    if (maxe == 0) return maxd; /* an all-zero expected gradient must be (near) zero here too */
    return maxd / maxe;
}

static void run_mode(const char *mode, int fusion, int threads)
{
    char path[512];
    ff_models_set_threads(threads);
    ff_model_config c;
    assert_int_equal(ff_model_config_default(&c, "fusion-tiny"), FF_OK);
    c.fusion = fusion;
    ff_batch b;
    snprintf(path, sizeof path, GOLD "tiny_%s_inputs.safetensors", mode);
    if (ff_model_read_inputs(&c, path, &b) != FF_OK) fail_msg("%s", ff_error_message());
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &c, b.B), FF_OK);
    assert_int_equal(ff_model_check_batch(m, &b), FF_OK);
    snprintf(path, sizeof path, GOLD "tiny_%s_weights.safetensors", mode);
    if (ff_model_load(m, path) != FF_OK) fail_msg("%s", ff_error_message());
    float *logits = malloc((size_t)b.B * c.tasks * sizeof *logits), loss;
    ff_model_zero_grad(m);
    assert_int_equal(ff_model_forward(m, &b, logits, &loss), FF_OK);
    assert_int_equal(ff_model_backward(m, &b), FF_OK);

    ff_safetensors *st;
    snprintf(path, sizeof path, GOLD "tiny_%s_expected.safetensors", mode);
    assert_int_equal(ff_safetensors_open(&st, path), FF_OK);
    double worst = 0;
    const char *worst_name = "";
    int bad = 0;
    const ff_st_entry *e = ff_safetensors_find(st, "logits");
    assert_non_null(e);
    double err = tensor_err(e, logits, (size_t)b.B * c.tasks);
    if (err > TOL) print_error("%s logits: rel err %g\n", mode, err), bad = 1;
    e = ff_safetensors_find(st, "loss");
    assert_non_null(e);
    err = tensor_err(e, &loss, 1);
    if (err > TOL) print_error("%s loss: rel err %g\n", mode, err), bad = 1;
    size_t ngrad = 0;
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *p = ff_model_tensor(m, i);
        char name[192];
        snprintf(name, sizeof name, "grad.%s", p->name);
        e = ff_safetensors_find(st, name);
        if (!e) {
            print_error("%s: expected file lacks %s\n", mode, name);
            bad = 1;
            continue;
        }
        ngrad++;
        err = tensor_err(e, ff_model_grads(m) + p->offset, p->numel);
        if (err > worst) worst = err, worst_name = p->name;
        if (err > TOL) {
            print_error("%s %s: rel err %g\n", mode, name, err);
            bad = 1;
        }
    }
    /* and no parameter of the peer is unknown to us */
    size_t peer_grads = 0;
    for (size_t i = 0; i < ff_safetensors_count(st); i++)
        peer_grads += strncmp(ff_safetensors_entry(st, i)->name, "grad.", 5) == 0;
    assert_int_equal(peer_grads, ngrad);
    print_message("%s (%d threads): %zu gradients, worst rel err %.3g (%s)\n", mode, threads, ngrad,
                  worst, worst_name);
    ff_safetensors_close(st);
    free(logits);
    ff_batch_free(&b);
    ff_model_free(m);
    ff_models_set_threads(1);
    if (bad) fail();
}

static void test_cross(void **state)
{
    (void)state;
    run_mode("cross", FF_FUSION_CROSS, 1);
}
static void test_early(void **state)
{
    (void)state;
    run_mode("early", FF_FUSION_EARLY, 1);
}
static void test_late(void **state)
{
    (void)state;
    run_mode("late", FF_FUSION_LATE, 1);
}
static void test_cross_2threads(void **state)
{
    (void)state;
    run_mode("cross", FF_FUSION_CROSS, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross),
        cmocka_unit_test(test_early),
        cmocka_unit_test(test_late),
        cmocka_unit_test(test_cross_2threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
