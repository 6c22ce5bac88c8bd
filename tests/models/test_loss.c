/* Losses of models/src/loss.c: each gradient against central finite differences of its own
 * forward (in double on perturbed floats), each value and gradient against numpy/scipy
 * (tests/models/oracle_loss.py, output pasted below), Breslow ties independent of row order
 * (FLamby's sort-order ties are not), and the targets that must be refused. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "ff/models.h"

/* Output of /usr/bin/python3 tests/models/oracle_loss.py */
static const float BCE_Z[] = {0.3f, -1.2f, 2.5f, 0.0f, -4.0f, 7.5f};
static const float BCE_Y[] = {1.0f, 0.0f, 1.0f, 0.5f, 0.0f, 0.0f};
static const double BCE_L = 1.51806291434;
static const double BCE_D[] = {-0.0709262471981, 0.0385792027502, -0.0126430300035, 0, 0.00299770166035, 0.166574536894};
static const float CE_Z[] = {0.5f, -1.0f, 2.0f, 3.0f, 3.0f, -2.0f, -0.1f, 0.2f, 0.3f, 10.0f, -10.0f, 0.0f};
static const int32_t CE_LAB[] = {2, 0, 1, 1};
static const double CE_L = 5.49594446819;
static const double CE_D[] = {0.043822598035, 0.00977814331767, -0.0536007413527, -0.125419707703, 0.124580292297, 0.000839415406626, 0.0650756366735, -0.162157078678, 0.0970814420042, 0.249988650018, -0.249999999485, 1.13494671522e-05};
static const float MSE_P[] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -2.0f};
static const float MSE_Y[] = {1.0f, 0.0f, 1.5f, 0.25f, -1.0f, -2.5f};
static const double MSE_L = 2.95833333333;
static const double MSE_D[] = {-0.166666666667, -0.333333333333, 0.166666666667, 0, 1.33333333333, 0.166666666667};
static const float COX_S[] = {0.2f, -0.5f, 1.0f, 0.3f, -1.5f, 0.8f, 0.0f, 2.0f};
static const float COX_T[] = {5.0f, 2.0f, 5.0f, 7.0f, 2.0f, 1.0f, 5.0f, 9.0f};
static const float COX_E[] = {1.0f, 1.0f, 0.0f, 1.0f, 0.0f, 1.0f, 1.0f, 0.0f};
static const double COX_L = 1.51144999439;
static const double COX_D[] = {-0.0830296491093, -0.115243534566, 0.0934067336904, -0.0593074306388, 0.00358920305175, -0.108375408131, -0.0906375830083, 0.359597668711};

enum { BCE, CE, MSE, COX };

/* |a − b| ≤ tol (1 + |b|) */
#define assert_double_close(a, b, tol)                                                         \
    do {                                                                                       \
        double a_ = (a), b_ = (b);                                                             \
        if (!(fabs(a_ - b_) <= (tol) * (1.0 + fabs(b_))))                                      \
            fail_msg("%s = %.9g, expected %.9g", #a, a_, b_);                                  \
    } while (0)

/* The loss of kind at x (n rows; CE: n rows of k). */
static double eval_loss(int kind, const float *x, int n, int k)
{
    double L = 0;
    switch (kind) {
    case BCE: assert_int_equal(ff_loss_bce_forward(&L, x, BCE_Y, n), FF_OK); break;
    case CE: assert_int_equal(ff_loss_ce_forward(&L, x, CE_LAB, n, k), FF_OK); break;
    case MSE: L = ff_loss_mse_forward(x, MSE_Y, (size_t)n); break;
    default: assert_int_equal(ff_loss_cox_forward(&L, x, COX_T, COX_E, n), FF_OK); break;
    }
    return L;
}

static void eval_grad(int kind, float *g, const float *x, int n, int k, float scale)
{
    switch (kind) {
    case BCE: ff_loss_bce_backward(g, x, BCE_Y, n, scale); break;
    case CE: assert_int_equal(ff_loss_ce_backward(g, x, CE_LAB, n, k, scale), FF_OK); break;
    case MSE: ff_loss_mse_backward(g, x, MSE_Y, (size_t)n, scale); break;
    default: assert_int_equal(ff_loss_cox_backward(g, x, COX_T, COX_E, n, scale), FF_OK); break;
    }
}

static void check_kind(int kind, const float *x0, int n, int k, double Lref, const double *dref)
{
    const int m = n * k;
    float x[16], g[16];
    memcpy(x, x0, (size_t)m * sizeof *x);
    /* value and gradient against the oracle */
    assert_double_close(eval_loss(kind, x, n, k), Lref, 1e-6);
    for (int i = 0; i < m; i++)
        g[i] = 1.0f; /* backward adds */
    eval_grad(kind, g, x, n, k, 2.0f);
    for (int i = 0; i < m; i++)
        assert_double_close(g[i], 1.0 + 2.0 * dref[i], 1e-6);
    /* central finite differences of the forward */
    memset(g, 0, sizeof g);
    eval_grad(kind, g, x, n, k, 1.0f);
    for (int i = 0; i < m; i++) {
        const float h = 1e-2f;
        float xi = x[i];
        x[i] = xi + h;
        double lp = eval_loss(kind, x, n, k);
        x[i] = xi - h;
        double lm = eval_loss(kind, x, n, k);
        x[i] = xi;
        double fd = (lp - lm) / (2.0 * h);
        assert_double_close(g[i], fd, 2e-4);
    }
}

static void test_bce(void **st)
{
    (void)st;
    check_kind(BCE, BCE_Z, 6, 1, BCE_L, BCE_D);
}
static void test_ce(void **st)
{
    (void)st;
    check_kind(CE, CE_Z, 4, 3, CE_L, CE_D);
}
static void test_mse(void **st)
{
    (void)st;
    check_kind(MSE, MSE_P, 6, 1, MSE_L, MSE_D);
}
static void test_cox(void **st)
{
    (void)st;
    check_kind(COX, COX_S, 8, 1, COX_L, COX_D);
}

/* Breslow: a permutation of the rows permutes the gradient and keeps the loss; within a tie
 * group the sort order must not matter (reversing the rows reverses every tie group). */
static void test_cox_ties_order_free(void **st)
{
    (void)st;
    enum { N = 8 };
    float s[N], t[N], e[N], g[N] = {0}, g0[N] = {0};
    for (int i = 0; i < N; i++) {
        s[i] = COX_S[N - 1 - i];
        t[i] = COX_T[N - 1 - i];
        e[i] = COX_E[N - 1 - i];
    }
    double L, L0;
    assert_int_equal(ff_loss_cox_forward(&L, s, t, e, N), FF_OK);
    assert_int_equal(ff_loss_cox_forward(&L0, COX_S, COX_T, COX_E, N), FF_OK);
    assert_double_close(L, L0, 1e-12);
    assert_int_equal(ff_loss_cox_backward(g, s, t, e, N, 1.0f), FF_OK);
    assert_int_equal(ff_loss_cox_backward(g0, COX_S, COX_T, COX_E, N, 1.0f), FF_OK);
    for (int i = 0; i < N; i++)
        assert_double_close(g[i], g0[N - 1 - i], 1e-7);
    /* stable at large scores (max subtracted) */
    float big[N];
    for (int i = 0; i < N; i++)
        big[i] = COX_S[i] + 500.0f;
    assert_int_equal(ff_loss_cox_forward(&L, big, COX_T, COX_E, N), FF_OK);
    assert_double_close(L, L0, 1e-4);
}

static void test_refused(void **st)
{
    (void)st;
    double L = 42;
    float z[2] = {0, 0}, y[2] = {0, 2}, g[2] = {0, 0};
    assert_int_equal(ff_loss_bce_forward(&L, z, y, 2), FF_EINVAL);
    assert_non_null(strstr(ff_error_message(), "row 1"));
    int32_t lab[2] = {0, 3};
    assert_int_equal(ff_loss_ce_forward(&L, z, lab, 2, 1), FF_EINVAL);
    assert_int_equal(ff_loss_ce_backward(g, z, lab, 2, 1, 1.0f), FF_EINVAL);
    float t[2] = {1, NAN}, e[2] = {1, 0};
    assert_int_equal(ff_loss_cox_forward(&L, z, t, e, 2), FF_EINVAL);
    float t2[2] = {1, 2}, e2[2] = {1, 0.5f};
    assert_int_equal(ff_loss_cox_backward(g, z, t2, e2, 2, 1.0f), FF_EINVAL);
    assert_true(g[0] == 0 && g[1] == 0);
    assert_true(L == 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bce),    cmocka_unit_test(test_ce),
        cmocka_unit_test(test_mse),    cmocka_unit_test(test_cox),
        cmocka_unit_test(test_cox_ties_order_free), cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
