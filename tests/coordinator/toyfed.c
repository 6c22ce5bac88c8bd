#include "toyfed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double toy_clock_now(void *ud)
{
    return ((toy_clock *)ud)->t;
}

void toy_init(toy_fed *f)
{
    memset(f, 0, sizeof *f);
    static const int sizes[TOY_SITES] = {40, 70, 110, 180};
    static const char *const names[TOY_SITES] = {"site-a", "site-b", "site-c", "site-d"};
    for (int s = 0; s < TOY_SITES; s++) {
        toy_site *t = &f->site[s];
        t->m = sizes[s];
        t->x = calloc((size_t)t->m * TOY_D, sizeof(double));
        t->y = calloc((size_t)t->m, sizeof(double));
        ff_rng r;
        ff_rng_init(&r, 1234, (uint64_t)s);
        /* Heterogeneous sites: shifted features and a site-specific true model, so the
         * pooled optimum is none of the local optima. */
        double wtrue[TOY_D];
        for (int j = 0; j < TOY_D; j++)
            wtrue[j] = 0.5 * (j + 1) * (j % 2 ? -1 : 1) + 0.3 * s;
        double btrue = 1.0 - 0.4 * s;
        for (int i = 0; i < t->m; i++) {
            double yv = btrue;
            for (int j = 0; j < TOY_D; j++) {
                double xv = ff_rng_normal(&r) + 0.25 * s;
                t->x[i * TOY_D + j] = xv;
                yv += wtrue[j] * xv;
            }
            t->y[i] = yv + 0.1 * ff_rng_normal(&r);
        }
        f->names[s] = names[s];
    }
    f->table[0] = (ff_coord_tensor){.name = "lin.weight", .ndim = 2, .shape = {1, TOY_D}, .offset = 0};
    f->table[1] = (ff_coord_tensor){.name = "lin.bias", .ndim = 1, .shape = {1}, .offset = TOY_D};
    f->local_steps = 1;
    f->lr = 0.1f;
    f->crash_after = -1;
    f->skip_site = -1;
    f->hostile_site = -1;
}

void toy_free(toy_fed *f)
{
    for (int s = 0; s < TOY_SITES; s++) {
        free(f->site[s].x);
        free(f->site[s].y);
    }
}

ff_coord_model toy_model(toy_fed *f)
{
    return (ff_coord_model){.n = TOY_N, .tensors = f->table, .ntensors = 2, .init = f->init};
}

static double pred(const double *x, const double *w)
{
    double p = w[TOY_D];
    for (int j = 0; j < TOY_D; j++)
        p += w[j] * x[j];
    return p;
}

double toy_pooled_loss(const toy_fed *f, const float *wf)
{
    double w[TOY_N], acc = 0;
    int m = 0;
    for (int j = 0; j < TOY_N; j++)
        w[j] = wf[j];
    for (int s = 0; s < TOY_SITES; s++)
        for (int i = 0; i < f->site[s].m; i++, m++) {
            double e = pred(&f->site[s].x[i * TOY_D], w) - f->site[s].y[i];
            acc += 0.5 * e * e;
        }
    return acc / m;
}

void toy_pooled_optimum(const toy_fed *f, double out[TOY_N])
{
    double a[TOY_N][TOY_N + 1] = {{0}};
    for (int s = 0; s < TOY_SITES; s++)
        for (int i = 0; i < f->site[s].m; i++) {
            double z[TOY_N];
            for (int j = 0; j < TOY_D; j++)
                z[j] = f->site[s].x[i * TOY_D + j];
            z[TOY_D] = 1;
            for (int p = 0; p < TOY_N; p++) {
                for (int q = 0; q < TOY_N; q++)
                    a[p][q] += z[p] * z[q];
                a[p][TOY_N] += z[p] * f->site[s].y[i];
            }
        }
    /* Gauss-Jordan with partial pivoting on the 5x5 normal equations. */
    for (int c = 0; c < TOY_N; c++) {
        int piv = c;
        for (int r = c + 1; r < TOY_N; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c]))
                piv = r;
        for (int k = 0; k <= TOY_N; k++) {
            double t = a[c][k];
            a[c][k] = a[piv][k];
            a[piv][k] = t;
        }
        for (int r = 0; r < TOY_N; r++) {
            if (r == c)
                continue;
            double g = a[r][c] / a[c][c];
            for (int k = c; k <= TOY_N; k++)
                a[r][k] -= g * a[c][k];
        }
    }
    for (int c = 0; c < TOY_N; c++)
        out[c] = a[c][TOY_N] / a[c][c];
}

void toy_local_update(const toy_fed *f, int s, const float *global, float *update)
{
    const toy_site *t = &f->site[s];
    float w[TOY_N], g[TOY_N];
    memcpy(w, global, sizeof w);
    for (int step = 0; step < f->local_steps; step++) {
        double gd[TOY_N] = {0}, wd[TOY_N];
        for (int j = 0; j < TOY_N; j++)
            wd[j] = w[j];
        for (int i = 0; i < t->m; i++) {
            double e = pred(&t->x[i * TOY_D], wd) - t->y[i];
            for (int j = 0; j < TOY_D; j++)
                gd[j] += e * t->x[i * TOY_D + j];
            gd[TOY_D] += e;
        }
        for (int j = 0; j < TOY_N; j++)
            g[j] = (float)(gd[j] / t->m);
        ff_fedprox_grad(w, global, f->mu, g, TOY_N);
        for (int j = 0; j < TOY_N; j++)
            w[j] -= f->lr * g[j];
    }
    ff_round_update(update, w, global, TOY_N);
}

void toy_config(ff_coord_config *cfg, const char *tmp, int64_t rounds, int strategy)
{
    char yaml[256];
    snprintf(yaml, sizeof yaml, "run_name: toy\nrounds: %lld\n", (long long)rounds);
    if (ff_coord_config_load_str(cfg, "toy.yaml", yaml, strlen(yaml)) != FF_OK)
        abort();
    cfg->strategy.name = strategy;
    snprintf(cfg->checkpoint_dir, sizeof cfg->checkpoint_dir, "%s/ckpt", tmp);
    snprintf(cfg->out_dir, sizeof cfg->out_dir, "%s/out", tmp);
}

int toy_run(toy_fed *f, const ff_coord_config *cfg, double (*clock)(void *), void *clock_ud,
            float *final)
{
    ff_coord_model m = toy_model(f);
    ff_coord *c;
    int rc = ff_coord_new(&c, cfg, &m, f->names, TOY_SITES);
    if (rc != FF_OK)
        return rc;
    if (clock)
        ff_coord_set_clock(c, clock, clock_ud);
    int resumed;
    rc = ff_coord_resume(c, &resumed);
    ff_coord_status st;
    while (rc == FF_OK && (rc = ff_coord_poll(c, &st)) == FF_OK && st.state != FF_COORD_DONE) {
        if (st.npending == 0)
            continue;
        int pend[FF_COORD_MAX_SITES];
        size_t np = st.npending;
        memcpy(pend, st.pending, np * sizeof(int));
        int skipped = 0;
        for (size_t k = 0; k < np && rc == FF_OK; k++) {
            int s = pend[k];
            if (s == f->skip_site) {
                skipped = 1;
                continue;
            }
            if (f->crash_after >= 0 && f->submissions >= f->crash_after) {
                ff_coord_free(c); /* the "crash": everything in memory is lost */
                return 0;
            }
            f->submissions++;
            if (strcmp(st.phase, FF_PHASE_TRAIN) == 0) {
                float u[TOY_N];
                if (f->sleep_us)
                    usleep(f->sleep_us);
                toy_local_update(f, s, ff_coord_global(c), u);
                if (s == f->hostile_site) /* finite, so it passes validation */
                    for (int j = 0; j < TOY_N; j++)
                        u[j] *= f->hostile_scale;
                rc = ff_coord_submit_update(c, f->names[s], st.round, u, TOY_N, f->site[s].m);
            } else if (strcmp(st.phase, FF_PHASE_EVALUATE) == 0) {
                ff_coord_eval e = {.n_examples = f->site[s].m,
                                   .loss = toy_pooled_loss(f, ff_coord_global(c)),
                                   .auroc = 0.5 + 0.1 * s};
                rc = ff_coord_submit_eval(c, f->names[s], st.round, &e, NULL);
            }
        }
        if (skipped && clock) /* only the silent site is left: let the deadline pass */
            ((toy_clock *)clock_ud)->t += 1e6;
    }
    if (rc == FF_OK && final)
        memcpy(final, ff_coord_global(c), TOY_N * sizeof(float));
    ff_coord_free(c);
    return rc == FF_OK ? 1 : rc;
}
