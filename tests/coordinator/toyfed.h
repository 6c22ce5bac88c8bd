/* A toy federation for the engine tests: per-site linear regression on synthetic,
 * heterogeneous data, trained with plain C loops; the pooled least-squares optimum comes
 * from the normal equations (an oracle independent of the engine). */
#ifndef FF_TEST_TOYFED_H
#define FF_TEST_TOYFED_H

#include "ff/coordinator.h"

#define TOY_D 4            /* features */
#define TOY_N (TOY_D + 1)  /* parameters: weight [1,4] then bias [1] */
#define TOY_SITES 4

typedef struct {
    int m;       /* examples */
    double *x;   /* [m, TOY_D] */
    double *y;   /* [m] */
} toy_site;

typedef struct {
    toy_site site[TOY_SITES];
    const char *names[TOY_SITES];
    ff_coord_tensor table[2];
    float init[TOY_N];
    int local_steps;
    float lr;
    float mu; /* FedProx */
    /* driver controls */
    long submissions;   /* counted across the run */
    long crash_after;   /* drop the engine after this many submissions (-1 = never) */
    unsigned sleep_us;  /* per local training, for the kill -9 test */
    int skip_site;      /* a site that never answers (-1 = none) */
    int hostile_site;   /* a site whose update is multiplied by hostile_scale (-1 = none) */
    float hostile_scale;
} toy_fed;

typedef struct {
    double t;
} toy_clock;

double toy_clock_now(void *ud);

void toy_init(toy_fed *f);
void toy_free(toy_fed *f);
ff_coord_model toy_model(toy_fed *f);
/* Mean squared error / 2 of params on the pooled data. */
double toy_pooled_loss(const toy_fed *f, const float *w);
/* The pooled least-squares optimum (normal equations in double). */
void toy_pooled_optimum(const toy_fed *f, double out[TOY_N]);
/* Local training from global: local_steps of full-batch GD; writes the update. */
void toy_local_update(const toy_fed *f, int s, const float *global, float *update);
/* A config for tests: rounds, strategy; dirs under tmp. */
void toy_config(ff_coord_config *cfg, const char *tmp, int64_t rounds, int strategy);
/* Runs the federation to the end (or to the crash point): 1 when finished, 0 when crashed
 * (engine dropped), < 0 on error. final (may be NULL) gets the global model. */
int toy_run(toy_fed *f, const ff_coord_config *cfg, double (*clock)(void *), void *clock_ud,
            float *final);

#endif
