/* Declared tasks (issue 23): the model config's `tasks:` as a list or a count (errors name
 * the task), each task's columns, and ff_model_task_loss — its value is the mean of the per-kind
 * losses of models/src/loss.c over each task's labelled rows, and its gradient matches central
 * finite differences; tasks with no labelled row (or a survival task with no event) do not
 * count; an all-binary model keeps the spec's BCE. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "ff/models.h"

static const char *BASE = "name: t\nwidth: 8\nheads: 2\nmlp: 8\nlayers: 1\n"
                          "image: {size: 8, patch: 4}\ntext: {length: 4, vocab: 16}\n"
                          "ehr: {length: 4, codes: 16, values: 11, times: 8}\n";

static int load(const char *tasks, ff_model_config *c)
{
    char y[2048];
    snprintf(y, sizeof y, "%s%s", BASE, tasks);
    return ff_model_config_load_str("cfg.yaml", y, strlen(y), c);
}

static void test_config(void **state)
{
    (void)state;
    ff_model_config c;
    assert_int_equal(load("tasks: 3\n", &c), FF_OK);
    assert_int_equal(c.tasks, 3);
    assert_int_equal(c.task_set.n, 3);
    assert_string_equal(c.task_set.t[1].name, "icu");
    assert_string_equal(c.task_set.t[1].label, "label_icu");
    assert_int_equal(load("tasks:\n  - {name: g, kind: multiclass, classes: 4}\n"
                          "  - {name: r, kind: regression, label: y, center: 2, scale: 3}\n"
                          "  - {name: s, kind: survival, time: t, event: e, horizon: 5}\n"
                          "  - {name: b}\n", &c), FF_OK);
    assert_int_equal(c.task_set.n, 4);
    assert_int_equal(c.tasks, 4 + 1 + 2 + 1);
    int cols[] = {0, 4, 5, 7};
    for (int k = 0; k < 4; k++)
        assert_int_equal(c.task_set.t[k].col, cols[k]);
    assert_string_equal(c.task_set.t[0].label, "label_g");
    assert_string_equal(c.task_set.t[3].label, "label_b");
    assert_int_equal(c.task_set.t[3].kind, FF_TASK_BINARY);
    assert_true(c.task_set.t[1].scale == 3.0);
    static const struct {
        const char *yaml, *msg;
    } bad[] = {
        {"tasks:\n  - {name: g, kind: multiclass}\n", "task g: a multiclass task needs classes"},
        {"tasks:\n  - {name: s, kind: survival, time: t, event: e}\n", "task s: a survival task needs horizon"},
        {"tasks:\n  - {name: s, kind: survival, time: t, horizon: 1}\n", "task s: a survival task needs its time and event"},
        {"tasks:\n  - {name: a}\n  - {name: a}\n", "tasks[1]: name 'a' is used twice"},
        {"tasks:\n  - {name: b, classes: 3}\n", "task b: classes is for multiclass tasks only"},
        {"tasks:\n  - {name: b, kind: poisson}\n", "cfg.yaml:"},
        {"tasks: []\n", "cfg.yaml:"},
        {"", "tasks: required key is missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = load(bad[i].yaml, &c);
        assert_int_not_equal(rc, FF_OK);
        if (!strstr(ff_error_message(), bad[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, ff_error_message(), bad[i].msg);
    }
}

/* A mixed batch: multiclass (3), regression, survival, binary; K = 7. */
enum { B = 6, K = 7 };

static void mixed(ff_task_set *ts)
{
    memset(ts, 0, sizeof *ts);
    ts->n = 4;
    const char *names[] = {"g", "r", "s", "b"};
    int kinds[] = {FF_TASK_MULTICLASS, FF_TASK_REGRESSION, FF_TASK_SURVIVAL, FF_TASK_BINARY};
    for (int k = 0; k < 4; k++) {
        snprintf(ts->t[k].name, sizeof ts->t[k].name, "%s", names[k]);
        ts->t[k].kind = kinds[k];
        ts->t[k].scale = 1;
    }
    ts->t[0].classes = 3;
    ts->t[1].center = 1.0, ts->t[1].scale = 2.0;
    snprintf(ts->t[2].time, 64, "t");
    snprintf(ts->t[2].event, 64, "e");
    ts->t[2].horizon = 3;
    assert_int_equal(ff_task_set_finish(ts), FF_OK);
    assert_int_equal(ts->width, K);
}

static void batch(float *z, float *y, float *m)
{
    static const float Z[B * K] = {
        0.2f, -0.3f, 0.5f, 0.7f, 0.1f, 0.0f, 0.4f, 1.0f, 0.2f, -1.0f, -0.5f, -0.2f, 0.0f, -0.6f,
        -0.4f, 0.9f, 0.3f, 1.2f, 0.8f, 0.0f, 0.9f, 0.1f, 0.1f, 0.1f, 0.3f, -1.1f, 0.0f, -1.3f,
        0.6f, -0.7f, 0.2f, -0.9f, 0.5f, 0.0f, 0.2f, -0.2f, 0.4f, 1.1f, 0.0f, 0.3f, 0.0f, 0.5f};
    /* rows: class one-hot, regression y, survival (time, event), binary */
    static const float Y[B * K] = {
        0, 1, 0, 2.5f, 4, 1, 1,  1, 0, 0, -0.5f, 2, 0, 0,  0, 0, 1, 3.0f, 2, 1, 1,
        0, 1, 0, 0.0f, 6, 1, 0,  0, 0, 0, 0.0f, 0, 0, 0,  0, 0, 1, 1.5f, 1, 0, 1};
    /* row 4 knows nothing; row 1's regression and row 5's binary label are missing */
    static const float M[B * K] = {
        1, 1, 1, 1, 1, 1, 1,  1, 1, 1, 0, 1, 1, 1,  1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1,  0, 0, 0, 0, 0, 0, 0,  1, 1, 1, 1, 1, 1, 0};
    memcpy(z, Z, sizeof Z);
    memcpy(y, Y, sizeof Y);
    memcpy(m, M, sizeof M);
}

/* The mean of the four per-kind losses, each over its labelled rows, with loss.c directly. */
static double by_hand(const float *z, const float *y, const float *m)
{
    double l, sum = 0;
    float zc[B * 3], zr[B], yr[B], zs[B], ts[B], es[B], zb[B], yb[B];
    int32_t cls[B];
    int nc = 0, nr = 0, ns = 0, nb = 0;
    for (int i = 0; i < B; i++) {
        const float *zi = z + i * K, *yi = y + i * K, *mi = m + i * K;
        if (mi[0] > 0) {
            memcpy(zc + nc * 3, zi, 3 * sizeof(float));
            cls[nc++] = yi[0] > 0 ? 0 : yi[1] > 0 ? 1 : 2;
        }
        if (mi[3] > 0)
            zr[nr] = zi[3], yr[nr++] = (yi[3] - 1.0f) / 2.0f;
        if (mi[4] > 0)
            zs[ns] = zi[4], ts[ns] = yi[4], es[ns++] = yi[5];
        if (mi[6] > 0)
            zb[nb] = zi[6], yb[nb++] = yi[6];
    }
    assert_int_equal(ff_loss_ce_forward(&l, zc, cls, nc, 3), FF_OK);
    sum += l;
    sum += ff_loss_mse_forward(zr, yr, (size_t)nr);
    assert_int_equal(ff_loss_cox_forward(&l, zs, ts, es, ns), FF_OK);
    sum += l;
    assert_int_equal(ff_loss_bce_forward(&l, zb, yb, nb), FF_OK);
    sum += l;
    return sum / 4;
}

static void test_loss_value_and_gradient(void **state)
{
    (void)state;
    ff_task_set ts;
    mixed(&ts);
    float z[B * K], y[B * K], m[B * K], d[B * K] = {0};
    batch(z, y, m);
    double L;
    assert_int_equal(ff_model_task_loss(&ts, z, y, m, B, &L, d), FF_OK);
    double want = by_hand(z, y, m);
    if (fabs(L - want) > 1e-12)
        fail_msg("loss %.15g, by hand %.15g", L, want);
    for (int j = 0; j < B * K; j++) {
        float save = z[j];
        double h = 1e-2, lp, lm;
        z[j] = save + (float)h;
        assert_int_equal(ff_model_task_loss(&ts, z, y, m, B, &lp, NULL), FF_OK);
        z[j] = save - (float)h;
        assert_int_equal(ff_model_task_loss(&ts, z, y, m, B, &lm, NULL), FF_OK);
        z[j] = save;
        double fd = (lp - lm) / (2 * h);
        if (fabs(fd - d[j]) > 2e-3 * (1 + fabs(fd)))
            fail_msg("d loss / d z[%d] = %.6g, finite difference %.6g", j, (double)d[j], fd);
    }
    /* the survival column 1 (event) and rows with no label get no gradient */
    for (int i = 0; i < B; i++)
        assert_true(d[i * K + 5] == 0.0f);
    for (int j = 0; j < K; j++)
        assert_true(d[4 * K + j] == 0.0f);
}

static void test_loss_tasks_that_count(void **state)
{
    (void)state;
    ff_task_set ts;
    mixed(&ts);
    float z[B * K], y[B * K], m[B * K], d[B * K];
    batch(z, y, m);
    /* no event: the survival task does not count; no binary label: neither does the binary */
    for (int i = 0; i < B; i++) {
        y[i * K + 5] = 0;
        m[i * K + 6] = 0;
    }
    double L, want = 0, l;
    memset(d, 0, sizeof d);
    assert_int_equal(ff_model_task_loss(&ts, z, y, m, B, &L, d), FF_OK);
    ff_task_set two = ts;
    two.n = 2; /* multiclass and regression only: the same columns */
    assert_int_equal(ff_model_task_loss(&two, z, y, m, B, &want, NULL), FF_OK);
    if (fabs(L - want) > 1e-12)
        fail_msg("loss %.15g, the two counting tasks %.15g", L, want);
    for (int i = 0; i < B; i++)
        assert_true(d[i * K + 4] == 0.0f && d[i * K + 6] == 0.0f);
    /* nothing labelled at all: loss 0, no gradient */
    memset(m, 0, sizeof m);
    memset(d, 0, sizeof d);
    assert_int_equal(ff_model_task_loss(&ts, z, y, m, B, &l, d), FF_OK);
    assert_true(l == 0.0);
    for (int j = 0; j < B * K; j++)
        assert_true(d[j] == 0.0f);
}

static void test_outputs(void **state)
{
    (void)state;
    ff_task_set ts;
    mixed(&ts);
    float z[K] = {1.0f, 2.0f, 3.0f, 0.5f, -0.7f, 9.0f, 0.0f}, o[K];
    ff_model_task_outputs(&ts, z, K, 0.5f, 1, o);
    double e = exp(1) + exp(2) + exp(3);
    for (int c = 0; c < 3; c++)
        assert_true(fabs(o[c] - exp(c + 1) / e) < 1e-6);
    assert_true(fabs(o[3] - (1.0 + 2.0 * 0.5)) < 1e-6); /* center + scale z */
    assert_true(o[4] == -0.7f && o[5] == 0.0f);
    assert_true(fabs(o[6] - 0.5) < 1e-7);
    ff_model_task_outputs(&ts, z, K, 0.25f, 0, o); /* no input the model may see */
    assert_true(fabs(o[0] - 1.0 / 3) < 1e-6 && o[3] == 1.0f && o[4] == 0.0f && o[6] == 0.25f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config), cmocka_unit_test(test_loss_value_and_gradient),
        cmocka_unit_test(test_loss_tasks_that_count), cmocka_unit_test(test_outputs)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
