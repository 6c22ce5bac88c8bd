/* Record-level DP-SGD: per-example norms and clipped sums against independent single-example
 * runs (a separate model instance of max batch 1 on copied rows), the clipped sum at C = inf
 * against the batched gradient, DP training at sigma 0 / C inf against an SGD replay with
 * the same Poisson batches, the ledger refusing a round, and the noise scale. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/client.h"
#include "../models/batch_fixture.h"
#include "site_fixture.h"

#define NB 8

typedef struct {
    const char *dir;
    ff_model_config mc;
    ff_site *site;
    ff_batch b; /* NB rows of the train split */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = ft_tmpdir();
    if (ftc_site_make(f->dir, 200, 23, &f->mc, &f->site, NULL, 0) != FF_OK)
        return -1;
    ff_data_shape sh;
    ff_client_shape(&f->mc, &sh);
    if (ff_batch_alloc(&f->b, NB, sh.K, sh.C, sh.H, sh.W, sh.Lt, sh.Le) != FF_OK)
        return -1;
    uint32_t idx[NB];
    for (int i = 0; i < NB; i++)
        idx[i] = (uint32_t)(3 * i + 1);
    if (ff_site_batch(f->site, FF_SPLIT_TRAIN, idx, NB, NULL, NULL, &f->b) != FF_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ff_batch_free(&f->b);
    ff_site_free(f->site);
    ft_rmtree(f->dir);
    free(f);
    return 0;
}

/* Oracle: example i's gradient from a fresh max-batch-1 model with the same parameters. */
static void single_grad(const fixture *f, const float *params, int i, double *g, size_t n)
{
    ftm_single_grad(&f->mc, params, &f->b, i, g, n);
}

static double dnorm(const double *x, size_t n)
{
    double s = 0;
    for (size_t j = 0; j < n; j++)
        s += x[j] * x[j];
    return sqrt(s);
}

static void test_norms_and_clipped_sum_match_single_runs(void **state)
{
    fixture *f = *state;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &f->mc, NB), FF_OK);
    assert_int_equal(ff_model_init_std(m, 7, 0.1f), FF_OK);
    size_t n = ff_model_nparams(m);
    double *g = malloc(n * sizeof *g), *ref = calloc(n, sizeof *ref), rn[NB];
    double norms[NB], norms2[NB];
    float *sum = calloc(n, sizeof *sum);
    assert_int_equal(ff_model_perexample_norms(m, &f->b, norms, NULL), FF_OK);
    for (int i = 0; i < NB; i++) {
        single_grad(f, ff_model_params(m), i, g, n);
        rn[i] = dnorm(g, n);
        print_message("norm %d: %.9g vs single run %.9g\n", i, norms[i], rn[i]);
        assert_true(ft_rel_err(norms[i], rn[i], 0) < 1e-5);
    }
    /* clip at the median so some examples are clipped and some are not */
    double sorted[NB];
    memcpy(sorted, rn, sizeof sorted);
    for (int a = 0; a < NB; a++)
        for (int c = a + 1; c < NB; c++)
            if (sorted[c] < sorted[a]) {
                double t = sorted[a];
                sorted[a] = sorted[c], sorted[c] = t;
            }
    double clip = 0.5 * (sorted[NB / 2 - 1] + sorted[NB / 2]);
    int clipped = 0;
    for (int i = 0; i < NB; i++) {
        single_grad(f, ff_model_params(m), i, g, n);
        double s = rn[i] > clip ? clip / rn[i] : 1.0;
        clipped += rn[i] > clip;
        for (size_t j = 0; j < n; j++)
            ref[j] += s * g[j];
    }
    assert_true(clipped > 0 && clipped < NB);
    assert_int_equal(ff_model_clipped_grad_sum(m, &f->b, clip, sum, norms2, NULL), FF_OK);
    double dn = 0, rn2 = 0;
    for (size_t j = 0; j < n; j++) {
        dn += ((double)sum[j] - ref[j]) * ((double)sum[j] - ref[j]);
        rn2 += ref[j] * ref[j];
    }
    print_message("clipped sum vs single runs: rel err %.3g (%d of %d clipped)\n",
                  sqrt(dn / rn2), clipped, NB);
    assert_true(sqrt(dn / rn2) < 1e-5);
    for (int i = 0; i < NB; i++)
        assert_true(ft_rel_err(norms2[i], rn[i], 0) < 1e-5);
    /* the example-parallel path (thread pool > 1, one replica per thread) */
    float *sum2 = calloc(n, sizeof *sum2);
    double norms3[NB];
    ff_models_set_threads(3);
    assert_int_equal(ff_model_clipped_grad_sum(m, &f->b, clip, sum2, norms3, NULL), FF_OK);
    ff_models_set_threads(1);
    dn = 0;
    for (size_t j = 0; j < n; j++)
        dn += ((double)sum2[j] - ref[j]) * ((double)sum2[j] - ref[j]);
    print_message("3 threads: clipped sum rel err %.3g\n", sqrt(dn / rn2));
    assert_true(sqrt(dn / rn2) < 1e-5);
    for (int i = 0; i < NB; i++)
        assert_true(ft_rel_err(norms3[i], rn[i], 0) < 1e-5);
    /* ghost clipping (the default of DP training), at 1 and at 3 threads */
    for (int th = 1; th <= 3; th += 2) {
        memset(sum2, 0, n * sizeof *sum2);
        ff_models_set_threads(th);
        assert_int_equal(ff_model_ghost_clipped_grad_sum(m, &f->b, clip, sum2, norms3, NULL),
                         FF_OK);
        ff_models_set_threads(1);
        dn = 0;
        for (size_t j = 0; j < n; j++)
            dn += ((double)sum2[j] - ref[j]) * ((double)sum2[j] - ref[j]);
        double wn = 0;
        for (int i = 0; i < NB; i++)
            wn = fmax(wn, ft_rel_err(norms3[i], rn[i], 0));
        print_message("ghost, %d thread(s): norms worst rel err %.3g, clipped sum rel err %.3g\n",
                      th, wn, sqrt(dn / rn2));
        assert_true(wn < 1e-5);
        assert_true(sqrt(dn / rn2) < 1e-5);
    }
    free(sum2);
    free(g), free(ref), free(sum);
    ff_model_free(m);
}

/* With every label known, the batched loss is the mean of the per-example losses: the
 * unclipped sum / B is the batched gradient (a different code path: B-row GEMMs). */
static void test_unclipped_sum_is_batched_gradient(void **state)
{
    fixture *f = *state;
    ff_batch b = f->b;
    size_t nk = (size_t)NB * (size_t)b.K;
    float *mask = malloc(nk * sizeof *mask);
    for (size_t j = 0; j < nk; j++)
        mask[j] = 1.0f;
    b.label_mask = mask;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &f->mc, NB), FF_OK);
    assert_int_equal(ff_model_init_std(m, 9, 0.1f), FF_OK);
    size_t n = ff_model_nparams(m);
    float *sum = calloc(n, sizeof *sum), *batched = malloc(n * sizeof *batched), loss;
    assert_int_equal(ff_model_clipped_grad_sum(m, &b, INFINITY, sum, NULL, NULL), FF_OK);
    ff_model_zero_grad(m);
    assert_int_equal(ff_model_forward(m, &b, NULL, &loss), FF_OK);
    assert_int_equal(ff_model_backward(m, &b), FF_OK);
    memcpy(batched, ff_model_grads(m), n * sizeof(float));
    double dn = 0, rn = 0;
    for (size_t j = 0; j < n; j++) {
        double d = (double)sum[j] / NB - (double)batched[j];
        dn += d * d;
        rn += (double)batched[j] * batched[j];
    }
    print_message("unclipped sum / B vs batched gradient: rel err %.3g\n", sqrt(dn / rn));
    assert_true(sqrt(dn / rn) < 1e-5);
    free(mask), free(sum), free(batched);
    ff_model_free(m);
}

/* The batched reweighted pass (ghost clipping's second pass) with scales from the norms
 * equals the batch-of-1 clipped sum. */
static void test_weighted_sum_equals_clipped_sum(void **state)
{
    fixture *f = *state;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &f->mc, NB), FF_OK);
    assert_int_equal(ff_model_init_std(m, 13, 0.1f), FF_OK);
    size_t n = ff_model_nparams(m);
    float *a = calloc(n, sizeof *a), *w_sum = calloc(n, sizeof *w_sum), w[NB];
    double norms[NB], clip;
    assert_int_equal(ff_model_perexample_norms(m, &f->b, norms, NULL), FF_OK);
    clip = 0.5 * (norms[0] + norms[1]);
    for (int i = 0; i < NB; i++)
        w[i] = (float)ff_dp_clip_scale(norms[i], clip);
    assert_int_equal(ff_model_clipped_grad_sum(m, &f->b, clip, a, NULL, NULL), FF_OK);
    assert_int_equal(ff_model_weighted_grad_sum(m, &f->b, w, w_sum), FF_OK);
    double dn = 0, rn = 0;
    for (size_t j = 0; j < n; j++) {
        dn += ((double)a[j] - w_sum[j]) * ((double)a[j] - w_sum[j]);
        rn += (double)a[j] * a[j];
    }
    print_message("weighted batched pass vs clipped sum: rel err %.3g\n", sqrt(dn / rn));
    assert_true(sqrt(dn / rn) < 1e-5);
    free(a), free(w_sum);
    ff_model_free(m);
}

static ff_local_opts dp_opts(int64_t steps)
{
    ff_local_opts o;
    memset(&o, 0, sizeof o);
    o.steps = steps;
    o.batch = 8;
    ff_optim_config_default(&o.optim);
    o.optim.kind = FF_OPTIM_SGD;
    o.optim.lr = 0.05f;
    o.optim.weight_decay = 0;
    o.optim.momentum = 0;
    o.optim.min_lr_ratio = 1.0f; /* constant lr: the replay needs no schedule */
    o.modalities = FF_MOD_ALL;
    o.seed = 4;
    o.dp = 1;
    o.dp_sigma = 0;
    o.dp_clip = INFINITY;
    o.dp_delta = 1e-5;
    o.dp_noise_seed = 77;
    return o;
}

/* sigma 0, C inf: DP training is plain SGD on the mean per-patient gradient over the same
 * Poisson batches (drawn by ff_privacy_poisson_sample from stream 0xd95a of o.seed). The
 * replay computes each batch's gradient from single-example runs of its own model. */
static void test_sigma0_equals_sgd_replay(void **state)
{
    fixture *f = *state;
    ff_local_opts o = dp_opts(4);
    ff_model *m, *r;
    assert_int_equal(ff_model_new(&m, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_new(&r, &f->mc, 1), FF_OK);
    assert_int_equal(ff_model_init(m, 3), FF_OK);
    assert_int_equal(ff_model_init(r, 3), FF_OK);
    ff_local_stats st;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_OK);
    assert_true(isinf(st.epsilon));
    size_t n = ff_model_nparams(r), ntrain = ff_site_count(f->site, FF_SPLIT_TRAIN);
    const ff_data_shape *sh = ff_site_shape(f->site);
    uint32_t *idx = malloc(ntrain * sizeof *idx);
    double *g = calloc(n, sizeof *g);
    ff_batch one;
    assert_int_equal(ff_batch_alloc(&one, 1, sh->K, sh->C, sh->H, sh->W, sh->Lt, sh->Le), FF_OK);
    ff_rng rng;
    ff_rng_init(&rng, o.seed, 0xd95a);
    double q = (double)o.batch / (double)ntrain;
    int64_t seen = 0;
    for (int64_t s = 0; s < o.steps; s++) {
        size_t cnt;
        assert_int_equal(ff_privacy_poisson_sample(&rng, ntrain, q, idx, &cnt), FF_OK);
        memset(g, 0, n * sizeof *g);
        for (size_t i = 0; i < cnt; i++) {
            float loss;
            assert_int_equal(ff_site_batch(f->site, FF_SPLIT_TRAIN, idx + i, 1, NULL, NULL, &one), FF_OK);
            ff_model_zero_grad(r);
            assert_int_equal(ff_model_forward(r, &one, NULL, &loss), FF_OK);
            assert_int_equal(ff_model_backward(r, &one), FF_OK);
            for (size_t j = 0; j < n; j++)
                g[j] += ff_model_grads(r)[j];
        }
        float *p = ff_model_params(r);
        for (size_t j = 0; j < n; j++)
            p[j] -= (float)(o.optim.lr * (g[j] / o.batch));
        seen += (int64_t)cnt;
    }
    assert_int_equal(st.examples, seen);
    double dn = 0, rn = 0;
    for (size_t j = 0; j < n; j++) {
        double d = (double)ff_model_params(m)[j] - ff_model_params(r)[j];
        dn += d * d;
        rn += (double)ff_model_params(r)[j] * ff_model_params(r)[j];
    }
    print_message("sigma 0 DP training vs SGD replay: rel err %.3g\n", sqrt(dn / rn));
    assert_true(sqrt(dn / rn) < 1e-5);
    free(idx), free(g);
    ff_batch_free(&one);
    ff_model_free(m), ff_model_free(r);
}

/* The default (ghost clipping) and dp_exact (batch-of-1) train to the same weights with
 * clipping active and noise on (same noise seed, so the same noise). */
static void test_ghost_training_equals_exact(void **state)
{
    fixture *f = *state;
    ff_model *m[2];
    for (int k = 0; k < 2; k++) {
        ff_local_opts o = dp_opts(4);
        o.dp_sigma = 0.5;
        o.dp_clip = 0.3; /* below every norm seen at init: every patient clipped */
        o.dp_exact = k;
        assert_int_equal(ff_model_new(&m[k], &f->mc, 16), FF_OK);
        assert_int_equal(ff_model_init_std(m[k], 3, 0.1f), FF_OK);
        ff_local_stats st;
        assert_int_equal(ff_local_train(m[k], &f->site, 1, &o, &st), FF_OK);
        assert_true(st.examples > 0);
    }
    size_t n = ff_model_nparams(m[0]);
    const float *p0 = ff_model_params(m[0]), *p1 = ff_model_params(m[1]);
    double dn = 0, rn = 0;
    for (size_t j = 0; j < n; j++) {
        dn += ((double)p0[j] - p1[j]) * ((double)p0[j] - p1[j]);
        rn += (double)p1[j] * p1[j];
    }
    print_message("DP training, ghost vs exact: weights rel err %.3g after 4 steps\n",
                  sqrt(dn / rn));
    assert_true(sqrt(dn / rn) < 1e-6);
    ff_model_free(m[0]), ff_model_free(m[1]);
}

static void test_ledger_refuses_round_past_budget(void **state)
{
    fixture *f = *state;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_init(m, 3), FF_OK);
    size_t n = ff_model_nparams(m), ntrain = ff_site_count(f->site, FF_SPLIT_TRAIN);
    float *before = malloc(n * sizeof *before);
    ff_local_opts o = dp_opts(3);
    o.dp_sigma = 1.0;
    o.dp_clip = 1.0;
    o.dp_delta = 1.0 / (2.0 * (double)ntrain);
    double orders[FF_PRIVACY_MAX_ORDERS], eps1, eps_ref, order;
    size_t no = ff_privacy_orders_dp_accounting(orders);
    double q = (double)o.batch / (double)ntrain;
    assert_int_equal(ff_privacy_epsilon_sgm(q, 1.0, 3, o.dp_delta, orders, no,
                                            FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                            FF_PRIVACY_CONV_IMPROVED, &eps1, &order), FF_OK);
    double eps2;
    assert_int_equal(ff_privacy_epsilon_sgm(q, 1.0, 6, o.dp_delta, orders, no,
                                            FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                            FF_PRIVACY_CONV_IMPROVED, &eps2, &order), FF_OK);
    assert_true(eps2 > eps1);
    /* budget fits one round of 3 steps but not two */
    ff_privacy_ledger *l;
    assert_int_equal(ff_privacy_ledger_new(&l, FF_PRIVACY_LEVEL_RECORD, 0.5 * (eps1 + eps2),
                                           o.dp_delta,
                                           orders, no, FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                           FF_PRIVACY_CONV_IMPROVED), FF_OK);
    o.dp_ledger = l;
    o.dp_round = 1;
    ff_local_stats st;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_OK);
    assert_true(ft_rel_err(st.epsilon, eps1, 0) < 1e-12);
    assert_int_equal(ff_privacy_ledger_count(l), 1);
    memcpy(before, ff_model_params(m), n * sizeof(float));
    o.dp_round = 2;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_EPOLICY);
    ft_assert_error_has("round 2 refused");
    assert_int_equal(ff_privacy_ledger_count(l), 1);
    assert_memory_equal(before, ff_model_params(m), n * sizeof(float));
    assert_int_equal(ff_privacy_ledger_epsilon(l, &eps_ref, &order), FF_OK);
    assert_true(ft_rel_err(eps_ref, eps1, 0) < 1e-12);
    /* without a ledger: the budget option alone */
    o.dp_ledger = NULL;
    o.dp_epsilon_budget = eps1 * 0.5;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_EPOLICY);
    /* and sigma 0 can never fit a budget */
    o.dp_sigma = 0;
    o.dp_epsilon_budget = 100;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_EPOLICY);
    ff_privacy_ledger_free(l);
    free(before);
    ff_model_free(m);
}

/* The same data order with sigma 0 and sigma S differ (SGD, one step, lr 1) by exactly the
 * noise / batch: each coordinate N(0, (S C / batch)²). Checks the std to 2 % (the estimate's
 * own relative error is 1/sqrt(2 n), under 0.2 % for the tiny model), the mean, and the
 * one-sigma mass 0.6827. */
static void test_noise_has_the_right_scale(void **state)
{
    fixture *f = *state;
    ff_model *a, *b;
    assert_int_equal(ff_model_new(&a, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_new(&b, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_init(a, 3), FF_OK);
    assert_int_equal(ff_model_init(b, 3), FF_OK);
    ff_local_opts o = dp_opts(1);
    o.optim.lr = 1.0f;
    o.dp_clip = 0.5;
    ff_local_stats st;
    assert_int_equal(ff_local_train(a, &f->site, 1, &o, &st), FF_OK);
    o.dp_sigma = 1.5;
    assert_int_equal(ff_local_train(b, &f->site, 1, &o, &st), FF_OK);
    assert_true(st.epsilon > 0 && isfinite(st.epsilon));
    size_t n = ff_model_nparams(a);
    double want = o.dp_sigma * o.dp_clip / o.batch, s1 = 0, s2 = 0;
    size_t within = 0;
    for (size_t j = 0; j < n; j++) {
        double d = (double)ff_model_params(a)[j] - ff_model_params(b)[j];
        s1 += d, s2 += d * d;
        within += fabs(d) < want;
    }
    double mean = s1 / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
    print_message("noise: %zu coordinates, std %.6g (want %.6g), mean %.3g, 1-sigma mass "
                  "%.4f\n", n, sd, want, mean, (double)within / (double)n);
    assert_true(fabs(sd / want - 1) < 0.02);
    assert_true(fabs(mean) < 5 * want / sqrt((double)n));
    assert_true(fabs((double)within / (double)n - 0.6827) < 0.01);
    ff_model_free(a), ff_model_free(b);
}

/* The site's three label columns declared as other kinds, K unchanged: a multiclass task of 2
 * classes on columns 0-1 (the class is the larger of the two 0/1 labels) and a regression
 * task on column 2 (0/1 as a value); with survival, a survival task on columns 0-1 (time,
 * event) and a binary task on column 2. */
static ff_model_config mixed_config(const ff_model_config *base, int survival)
{
    ff_model_config c = *base;
    ff_task_set *ts = &c.task_set;
    memset(ts, 0, sizeof *ts);
    ts->n = 2;
    ff_task *a = &ts->t[0], *b = &ts->t[1];
    snprintf(a->name, sizeof a->name, "%s", survival ? "s" : "g");
    a->kind = survival ? FF_TASK_SURVIVAL : FF_TASK_MULTICLASS;
    a->scale = 1;
    if (survival) {
        snprintf(a->time, sizeof a->time, "t");
        snprintf(a->event, sizeof a->event, "e");
        a->horizon = 1;
    } else {
        a->classes = 2;
    }
    snprintf(b->name, sizeof b->name, "%s", survival ? "b" : "r");
    b->kind = survival ? FF_TASK_BINARY : FF_TASK_REGRESSION;
    b->center = survival ? 0 : 0.5, b->scale = survival ? 1 : 0.5;
    assert_int_equal(ff_task_set_finish(ts), FF_OK);
    c.tasks = ts->width;
    return c;
}

/* Multiclass and regression tasks: ghost clipping's and the batch-of-1 path's clipped sums
 * against single-example runs (the oracle's gradient is ff_model_backward's, whose loss is
 * ff_model_task_loss), with some patients clipped. */
static void test_mixed_tasks_clipped_sum_match_single_runs(void **state)
{
    fixture *f = *state;
    ff_model_config mc = mixed_config(&f->mc, 0);
    assert_int_equal(mc.tasks, f->mc.tasks);
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &mc, NB), FF_OK);
    assert_int_equal(ff_model_init_std(m, 7, 0.1f), FF_OK);
    size_t n = ff_model_nparams(m);
    double *g = malloc(n * sizeof *g), *ref = calloc(n, sizeof *ref), rn[NB], norms[NB];
    for (int i = 0; i < NB; i++) {
        ftm_single_grad(&mc, ff_model_params(m), &f->b, i, g, n);
        rn[i] = dnorm(g, n);
    }
    double lo = rn[0], hi = rn[0];
    for (int i = 1; i < NB; i++)
        lo = fmin(lo, rn[i]), hi = fmax(hi, rn[i]);
    double clip = 0.5 * (lo + hi);
    int clipped = 0;
    for (int i = 0; i < NB; i++) {
        ftm_single_grad(&mc, ff_model_params(m), &f->b, i, g, n);
        double s = rn[i] > clip ? clip / rn[i] : 1.0;
        clipped += rn[i] > clip;
        for (size_t j = 0; j < n; j++)
            ref[j] += s * g[j];
    }
    assert_true(clipped > 0 && clipped < NB);
    float *sum = malloc(n * sizeof *sum);
    for (int ghost = 0; ghost < 2; ghost++) {
        memset(sum, 0, n * sizeof *sum);
        int rc = ghost ? ff_model_ghost_clipped_grad_sum(m, &f->b, clip, sum, norms, NULL)
                       : ff_model_clipped_grad_sum(m, &f->b, clip, sum, norms, NULL);
        assert_int_equal(rc, FF_OK);
        double dn = 0, r2 = 0, wn = 0;
        for (size_t j = 0; j < n; j++) {
            dn += ((double)sum[j] - ref[j]) * ((double)sum[j] - ref[j]);
            r2 += ref[j] * ref[j];
        }
        for (int i = 0; i < NB; i++)
            wn = fmax(wn, ft_rel_err(norms[i], rn[i], 0));
        print_message("multiclass + regression, %s: norms worst rel err %.3g, clipped sum rel "
                      "err %.3g (%d of %d clipped)\n", ghost ? "ghost" : "batch of 1", wn,
                      sqrt(dn / r2), clipped, NB);
        assert_true(wn < 1e-5);
        assert_true(sqrt(dn / r2) < 1e-5);
    }
    free(g), free(ref), free(sum);
    ff_model_free(m);
}

/* DP-SGD trains a model with multiclass and regression tasks (the loss falls at sigma 0 with
 * clipping active); with noise, its epsilon is the binary model's for the same sigma, clip,
 * q and steps, and the accountant's value. A survival task is refused, naming why. */
static void test_mixed_tasks_train_with_binary_epsilon(void **state)
{
    fixture *f = *state;
    ff_model_config mc = mixed_config(&f->mc, 0);
    size_t ntrain = ff_site_count(f->site, FF_SPLIT_TRAIN);
    ff_model *m, *bin;
    assert_int_equal(ff_model_new(&m, &mc, 16), FF_OK);
    assert_int_equal(ff_model_init(m, 3), FF_OK);
    ff_local_opts o = dp_opts(40);
    o.dp_clip = 1.0;
    o.optim.lr = 0.1f;
    ff_local_stats st;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_OK);
    print_message("multiclass + regression under DP-SGD (sigma 0, clip 1): loss %.4f -> %.4f "
                  "over %lld steps\n", st.loss_first, st.loss_last, (long long)st.steps);
    assert_true(isfinite(st.loss_mean) && st.loss_last < st.loss_first);
    o = dp_opts(5);
    o.dp_sigma = 1.1;
    o.dp_clip = 0.7;
    o.dp_delta = 1.0 / (2.0 * (double)ntrain);
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_OK);
    double eps_mixed = st.epsilon, eps_ref, order, orders[FF_PRIVACY_MAX_ORDERS];
    assert_int_equal(ff_model_new(&bin, &f->mc, 16), FF_OK);
    assert_int_equal(ff_model_init(bin, 3), FF_OK);
    assert_int_equal(ff_local_train(bin, &f->site, 1, &o, &st), FF_OK);
    size_t no = ff_privacy_orders_dp_accounting(orders);
    assert_int_equal(ff_privacy_epsilon_sgm((double)o.batch / (double)ntrain, o.dp_sigma,
                                            o.steps, o.dp_delta, orders, no,
                                            FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                            FF_PRIVACY_CONV_IMPROVED, &eps_ref, &order), FF_OK);
    print_message("epsilon: multiclass + regression %.9g, binary %.9g, accountant %.9g\n",
                  eps_mixed, st.epsilon, eps_ref);
    assert_true(isfinite(eps_mixed) && eps_mixed > 0);
    assert_true(eps_mixed == st.epsilon);
    assert_true(ft_rel_err(eps_mixed, eps_ref, 0) < 1e-12);
    ff_model_free(m), ff_model_free(bin);
    ff_model_config sc = mixed_config(&f->mc, 1);
    ff_model *s;
    assert_int_equal(ff_model_new(&s, &sc, 16), FF_OK);
    assert_int_equal(ff_local_train(s, &f->site, 1, &o, &st), FF_ECONFIG);
    ft_assert_error_has("task s is a survival task");
    ff_model_free(s);
}

static void test_bad_options_are_errors(void **state)
{
    fixture *f = *state;
    ff_model *m;
    assert_int_equal(ff_model_new(&m, &f->mc, 16), FF_OK);
    ff_local_opts o = dp_opts(1);
    ff_local_stats st;
    o.dp_sigma = 1.0; /* noise with no clip bound */
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_EINVAL);
    ft_assert_error_has("finite clip");
    o.dp_clip = 1.0;
    o.dp_delta = 0.5;
    assert_int_equal(ff_local_train(m, &f->site, 1, &o, &st), FF_EINVAL);
    ft_assert_error_has("delta");
    ff_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norms_and_clipped_sum_match_single_runs),
        cmocka_unit_test(test_unclipped_sum_is_batched_gradient),
        cmocka_unit_test(test_weighted_sum_equals_clipped_sum),
        cmocka_unit_test(test_sigma0_equals_sgd_replay),
        cmocka_unit_test(test_ghost_training_equals_exact),
        cmocka_unit_test(test_ledger_refuses_round_past_budget),
        cmocka_unit_test(test_noise_has_the_right_scale),
        cmocka_unit_test(test_bad_options_are_errors),
        cmocka_unit_test(test_mixed_tasks_clipped_sum_match_single_runs),
        cmocka_unit_test(test_mixed_tasks_train_with_binary_epsilon),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
