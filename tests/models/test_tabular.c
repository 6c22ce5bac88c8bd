/* Tabular models (models/src/tabular.c): every parameter gradient of linear and mlp models
 * for each head against central finite differences of forward + loss (dropout drawn from the
 * same RNG state each time, so the mask is fixed), the config rules, and the optimizers
 * against torch.optim.SGD/Adam's update rules computed in numpy (oracle_tabular.py). */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "ff/models.h"

enum { B = 5, F = 4 };

static void make_batch(float *x, float *y, int head, int K)
{
    ff_rng r;
    ff_rng_init(&r, 7, 0);
    for (int i = 0; i < B * F; i++)
        x[i] = (float)ff_rng_normal(&r);
    for (int i = 0; i < B; i++) {
        switch (head) {
        case FF_TAB_LOGISTIC: y[i] = (float)(i % 2); break;
        case FF_TAB_SOFTMAX: y[i] = (float)(i % K); break;
        case FF_TAB_COX: y[2 * i] = (float)(i % 3 != 0); y[2 * i + 1] = (float)(1 + i % 3); break;
        default:
            for (int k = 0; k < K; k++)
                y[i * K + k] = (float)ff_rng_normal(&r);
        }
    }
}

static double loss_at(ff_tab *t, const float *x, const float *y, int train)
{
    float out[B * 8];
    ff_rng r;
    ff_rng_init(&r, 99, 1);
    assert_int_equal(ff_tab_forward(t, x, B, out, train ? &r : NULL), FF_OK);
    double L;
    assert_int_equal(ff_tab_loss(t, out, y, B, &L, NULL), FF_OK);
    return L;
}

static void check_model(const char *yaml)
{
    ff_tab_config c;
    if (ff_tab_config_load_str("t.yaml", yaml, strlen(yaml), &c) != FF_OK)
        fail_msg("%s", ff_error_message());
    ff_tab *t;
    assert_int_equal(ff_tab_new(&t, &c, B), FF_OK);
    ff_tab_init(t, 3);
    float x[B * F], y[B * 8], out[B * 8], dout[B * 8] = {0};
    make_batch(x, y, c.head, (int)c.outputs);
    const int train = c.dropout > 0;
    ff_rng r;
    ff_rng_init(&r, 99, 1);
    ff_tab_zero_grad(t);
    assert_int_equal(ff_tab_forward(t, x, B, out, train ? &r : NULL), FF_OK);
    double L;
    assert_int_equal(ff_tab_loss(t, out, y, B, &L, dout), FF_OK);
    assert_int_equal(ff_tab_backward(t, x, dout, B), FF_OK);
    float *p = ff_tab_params(t);
    const float *g = ff_tab_grads(t);
    float gcopy[512];
    size_t n = ff_tab_nparams(t);
    assert_true(n <= 512);
    memcpy(gcopy, g, n * sizeof *g);
    double maxerr = 0, maxg = 0;
    for (size_t j = 0; j < n; j++) {
        const float h = 2e-3f; /* small: ReLU's kink must not fall inside [p − h, p + h] */
        float pj = p[j];
        p[j] = pj + h;
        double lp = loss_at(t, x, y, train);
        p[j] = pj - h;
        double lm = loss_at(t, x, y, train);
        p[j] = pj;
        double fd = (lp - lm) / (2.0 * h);
        maxerr = fmax(maxerr, fabs(fd - gcopy[j]));
        maxg = fmax(maxg, fabs(gcopy[j]));
    }
    if (!(maxerr < 2e-3 * (1 + maxg)))
        fail_msg("%s: max |fd - grad| = %g (max |grad| %g)", yaml, maxerr, maxg);
    assert_true(maxg > 1e-3); /* a gradient that is all zero would pass trivially */
    ff_tab_free(t);
    ff_tab_config_free(&c);
}

static void test_linear_heads(void **st)
{
    (void)st;
    check_model("model: linear\nfeatures: 4\nhead: logistic\n");
    check_model("model: linear\nfeatures: 4\nhead: cox\n");
    check_model("model: linear\nfeatures: 4\nhead: linear\n");
    check_model("model: linear\nfeatures: 4\nhead: softmax\noutputs: 3\n");
}

static void test_mlp(void **st)
{
    (void)st;
    check_model("model: mlp\nfeatures: 4\nhead: logistic\nhidden: [6, 5]\nactivation: tanh\n");
    check_model("model: mlp\nfeatures: 4\nhead: cox\nhidden: [7]\nactivation: gelu\n");
    check_model("model: mlp\nfeatures: 4\nhead: softmax\noutputs: 3\nhidden: [8, 3]\n"
                "activation: relu\ndropout: 0.3\n");
    check_model("model: mlp\nfeatures: 4\nhead: linear\nhidden: [5]\nactivation: tanh\n"
                "dropout: 0.5\n");
}

static void test_config_rules(void **st)
{
    (void)st;
    ff_tab_config c;
    /* the documented examples load */
    assert_int_equal(ff_tab_config_load(FF_SOURCE_DIR "/configs/model-linear.yaml", &c), FF_OK);
    assert_true(c.arch == FF_TAB_LINEAR && c.head == FF_TAB_COX && c.features == 39);
    ff_tab_config_free(&c);
    assert_int_equal(ff_tab_config_load(FF_SOURCE_DIR "/configs/model-mlp.yaml", &c), FF_OK);
    assert_true(c.arch == FF_TAB_MLP && c.nhidden == 2 && c.hidden[1] == 16 && c.dropout == 0.1);
    ff_tab_config_free(&c);
    const char *bad[][2] = {
        {"model: linear\nfeatures: 4\nhead: cox\nhidden: [3]\n", "no hidden layers"},
        {"model: mlp\nfeatures: 4\nhead: cox\n", "at least one hidden layer"},
        {"model: mlp\nfeatures: 4\nhead: cox\nhidden: [0]\n", "hidden[0]: '0'"},
        {"model: linear\nfeatures: 4\nhead: softmax\n", "at least 2 classes"},
        {"model: linear\nfeatures: 4\nhead: logistic\noutputs: 2\n", "1 output"},
        {"model: tree\nfeatures: 4\nhead: cox\n", "t.yaml:1:8: model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(ff_tab_config_load_str("t.yaml", bad[i][0], strlen(bad[i][0]), &c), FF_OK);
        ft_assert_error_has(bad[i][1]);
        ff_tab_config_free(&c);
    }
}

/* Output of /usr/bin/python3 tests/models/oracle_tabular.py: three steps of each optimizer
 * from w0 with gradients G[k] (lr 0.1, weight decay 0.01; Adam betas 0.9/0.999, eps 1e-8). */
static const float W0[] = {0.5f, -1.0f, 2.0f};
static const float G[3][3] = {{0.1f, -0.2f, 0.3f}, {-0.5f, 0.0f, 1.0f}, {0.2f, 0.2f, -0.1f}};
static const double SGD_W[] = {0.518471489087, -0.997042979067, 1.87416596709};
static const double ADAM_W[] = {0.477256399798, -0.832901285005, 1.74363558576};

static void test_optimizers(void **st)
{
    (void)st;
    for (int kind = 0; kind < 2; kind++) {
        ff_vec_optim o;
        assert_int_equal(ff_vec_optim_init(&o, kind ? FF_OPTIM_SGD : FF_OPTIM_ADAMW, 3, 0.1f), FF_OK);
        o.weight_decay = 0.01f;
        float w[3];
        memcpy(w, W0, sizeof w);
        for (int k = 0; k < 3; k++)
            ff_vec_optim_step(&o, w, G[k]);
        const double *ref = kind ? SGD_W : ADAM_W;
        for (int j = 0; j < 3; j++)
            if (!(fabs(w[j] - ref[j]) < 1e-6))
                fail_msg("%s w[%d] = %.9g, expected %.9g", kind ? "sgd" : "adam", j, w[j], ref[j]);
        ff_vec_optim_free(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_heads), cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_config_rules), cmocka_unit_test(test_optimizers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
