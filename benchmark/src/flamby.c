/* `fedfuse benchmark flamby`: FLamby's Fed-Heart-Disease and Fed-TCGA-BRCA benchmarks with
 * FLamby's splits, models, batch sizes, 100 local updates per round, rounds and per-strategy
 * hyperparameters (the common.py of each FLamby dataset and its results config files), the
 * federated methods through the coordinator's round engine driven in-process. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const method_keys[FF_FB_COUNT] = {
    "pooled", "local", "fedavg", "fedprox", "scaffold", "fedadam", "fedyogi", "fedadagrad",
    "cyclic", "fedavg-ft", "fedavg-localbias", "cyclic-flamby"};
static const char *const method_names[FF_FB_COUNT] = {
    "Pooled Training", "Local", "FedAvg100", "FedProx100", "Scaffold100", "FedAdam100",
    "FedYogi100", "FedAdagrad100", "Cyclic100", "FedAvgFineTuning100", "FedAvgLocalBias100",
    "CyclicFLamby100"};

const char *ff_benchmark_method_key(int m) { return m >= 0 && m < FF_FB_COUNT ? method_keys[m] : "?"; }
const char *fb_method_name(int m) { return m >= 0 && m < FF_FB_COUNT ? method_names[m] : "?"; }

ff_benchmark_opts ff_benchmark_opts_default(void)
{
    ff_benchmark_opts o = {.nseeds = 5, .methods = (1u << FF_FB_COUNT) - 1};
    for (int i = 0; i < 5; i++)
        o.seeds[i] = 42 + i;
    return o;
}

int ff_benchmark_parse_seeds(ff_benchmark_opts *o, const char *list)
{
    char buf[512];
    if (ff_strlcpy(buf, list, sizeof buf) != FF_OK)
        return ff_error(FF_EINVAL, "--seeds: list too long");
    o->nseeds = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (ff_parse_i64(t, &v) != FF_OK || v < 0 || v > INT32_MAX)
            return ff_error(FF_EINVAL, "--seeds: '%s' is not a seed (0..2^31-1)", t);
        if (o->nseeds == FF_FLAMBY_MAX_SEEDS)
            return ff_error(FF_EINVAL, "--seeds: at most %d seeds", FF_FLAMBY_MAX_SEEDS);
        o->seeds[o->nseeds++] = v;
    }
    return o->nseeds ? FF_OK : ff_error(FF_EINVAL, "--seeds: empty list");
}

int ff_benchmark_parse_methods(ff_benchmark_opts *o, const char *list)
{
    char buf[512];
    if (ff_strlcpy(buf, list, sizeof buf) != FF_OK)
        return ff_error(FF_EINVAL, "--methods: list too long");
    o->methods = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int m = -1;
        for (int k = 0; k < FF_FB_COUNT; k++)
            if (strcmp(t, method_keys[k]) == 0)
                m = k;
        if (m < 0)
            return ff_error(FF_EINVAL, "--methods: unknown method '%s' (pooled, local, fedavg, "
                                       "fedprox, scaffold, fedadam, fedyogi, fedadagrad, cyclic, "
                                       "fedavg-ft, fedavg-localbias, cyclic-flamby)", t);
        o->methods |= 1u << m;
    }
    return o->methods ? FF_OK : ff_error(FF_EINVAL, "--methods: empty list");
}

/* ---- hyperparameters -------------------------------------------------------------------- */

/* FLamby's: flamby/datasets/fed_heart_disease/common.py, fed_tcga_brca/common.py and
 * results/config_{heart_disease,tcga_brca}.json. Client optimizer SGD for every strategy,
 * Adam for pooled and local training. FLamby has no fine-tuning run for heart disease: its
 * TCGA values (3 steps at the FedAvg rate) are used for both. */
void fb_hparams(int dataset, fb_hp *h)
{
    memset(h, 0, sizeof *h);
    h->updates = 100;
    for (int m = 0; m < FF_FB_COUNT; m++)
        h->m[m] = (fb_mhp){.slr = 1.0, .b1 = 0.9, .b2 = 0.999, .tau = 1e-8, .ft_steps = 3};
    if (dataset == FF_FLAMBY_HEART) {
        h->batch = 4;
        h->pooled_lr = 0.001;
        h->pooled_epochs = 50;
        h->rounds = (486 / 4 / 4) * 50 / 100; /* FLamby: (samples // centres // batch) * epochs // updates */
        h->m[FF_FB_FEDAVG].lr = h->m[FF_FB_FEDPROX].lr = h->m[FF_FB_SCAFFOLD].lr = 0.001;
        h->m[FF_FB_FEDPROX].mu = 0.01;
        h->m[FF_FB_FEDADAM].lr = 0.01, h->m[FF_FB_FEDADAM].slr = 0.01;
        h->m[FF_FB_FEDYOGI].lr = 0.003162, h->m[FF_FB_FEDYOGI].slr = 0.01;
        h->m[FF_FB_FEDADAGRAD].lr = 0.003162, h->m[FF_FB_FEDADAGRAD].slr = 0.316228;
        h->m[FF_FB_CYCLIC].lr = h->m[FF_FB_CYCLIC_FLAMBY].lr = 0.01;
        h->m[FF_FB_FEDAVG_FT].lr = h->m[FF_FB_FEDAVG_LOCALBIAS].lr = 0.001;
    } else {
        h->batch = 8;
        h->pooled_lr = 0.1;
        h->pooled_epochs = 30;
        h->rounds = (866 / 6 / 8) * 30 / 100;
        h->m[FF_FB_FEDAVG].lr = h->m[FF_FB_FEDPROX].lr = 0.1;
        h->m[FF_FB_FEDPROX].mu = 0.1;
        h->m[FF_FB_SCAFFOLD].lr = 0.01;
        h->m[FF_FB_FEDADAM].lr = 0.01, h->m[FF_FB_FEDADAM].slr = 0.1;
        h->m[FF_FB_FEDYOGI].lr = 0.01, h->m[FF_FB_FEDYOGI].slr = 0.1;
        h->m[FF_FB_FEDADAGRAD].lr = 0.01, h->m[FF_FB_FEDADAGRAD].slr = 1.0;
        h->m[FF_FB_CYCLIC].lr = h->m[FF_FB_CYCLIC_FLAMBY].lr = 0.01;
        h->m[FF_FB_FEDAVG_FT].lr = h->m[FF_FB_FEDAVG_LOCALBIAS].lr = 0.1;
    }
    h->m[FF_FB_FEDAVG_FT].ft_lr = h->m[FF_FB_FEDAVG_FT].lr;
}

/* ---- data loading, FLamby's DataLoaderWithMemory ---------------------------------------- */

/* Batches of a shuffled pass over the rows (the last one partial); a fresh permutation at
 * each pass, as a torch DataLoader(shuffle=True) re-iterated when exhausted. */
void fb_loader_init(fb_loader *L, const ff_flamby_split *s, uint64_t seed, uint64_t stream)
{
    L->s = s;
    L->pos = s->n;
    ff_rng_init(&L->rng, seed, stream);
}

int fb_loader_next(fb_loader *L, int B, float *x, float *y)
{
    const ff_flamby_split *s = L->s;
    if (L->pos >= s->n) {
        for (int i = 0; i < s->n; i++)
            L->perm[i] = i;
        for (int i = s->n - 1; i > 0; i--) {
            int j = (int)ff_rng_below(&L->rng, (uint32_t)(i + 1));
            int t = L->perm[i];
            L->perm[i] = L->perm[j];
            L->perm[j] = t;
        }
        L->pos = 0;
    }
    int b = FF_MIN(B, s->n - L->pos);
    for (int i = 0; i < b; i++) {
        int r = L->perm[L->pos + i];
        memcpy(x + (size_t)i * s->d, s->x + (size_t)r * s->d, (size_t)s->d * sizeof(float));
        memcpy(y + (size_t)i * s->t, s->y + (size_t)r * s->t, (size_t)s->t * sizeof(float));
    }
    L->pos += b;
    return b;
}

/* ---- training and evaluation ------------------------------------------------------------ */

/* steps optimizer steps on batches from L, on the model's parameters in place. prox (may be
 * NULL): FedProx centre with mu; c, ci (may be NULL): SCAFFOLD's correction. */
int fb_train(fb_ctx *b, fb_loader *L, ff_vec_optim *o, int steps, const float *prox, float mu,
             const float *c, const float *ci)
{
    ff_tab *t = b->tab;
    const size_t n = ff_tab_nparams(t);
    for (int s = 0; s < steps; s++) {
        int B = fb_loader_next(L, b->hp.batch, b->xb, b->yb);
        ff_tab_zero_grad(t);
        int rc = ff_tab_forward(t, b->xb, B, b->out, NULL);
        memset(b->dout, 0, (size_t)B * sizeof(float));
        double loss;
        if (rc == FF_OK)
            rc = ff_tab_loss(t, b->out, b->yb, B, &loss, b->dout);
        if (rc == FF_OK)
            rc = ff_tab_backward(t, b->xb, b->dout, B);
        if (rc != FF_OK)
            return rc;
        if (!isfinite(loss))
            return ff_error(FF_ENUMERIC, "training loss is %g at step %d", loss, s);
        if (prox && mu > 0)
            ff_fedprox_grad(ff_tab_params(t), prox, mu, ff_tab_grads(t), n);
        if (c)
            ff_scaffold_correct(ff_tab_grads(t), c, ci, n);
        ff_vec_optim_step(o, ff_tab_params(t), ff_tab_grads(t));
    }
    return FF_OK;
}

/* score[i] for every row of s under parameters w (copied into the model). */
int fb_scores(fb_ctx *b, const float *w, const ff_flamby_split *s, int from, int to, double *score)
{
    memcpy(ff_tab_params(b->tab), w, ff_tab_nparams(b->tab) * sizeof(float));
    for (int i = from; i < to; i += FB_EVAL_CHUNK) {
        int B = FF_MIN(FB_EVAL_CHUNK, to - i);
        int rc = ff_tab_forward(b->tab, s->x + (size_t)i * s->d, B, b->out, NULL);
        if (rc != FF_OK)
            return rc;
        for (int k = 0; k < B; k++)
            score[i + k] = b->out[k];
    }
    return FF_OK;
}

/* Accuracy at threshold 0.5 (logit > 0), or Harrell's C-index (risk = score). */
int fb_metric(const fb_ctx *b, const ff_flamby_split *s, const double *score, double *out)
{
    if (b->data.dataset == FF_FLAMBY_HEART) {
        int ok = 0;
        for (int i = 0; i < s->n; i++)
            ok += (score[i] > 0) == (s->y[i] > 0.5f);
        *out = (double)ok / s->n;
        return FF_OK;
    }
    int rc = FF_OK;
    for (int i = 0; i < s->n; i++) {
        b->time[i] = s->y[2 * i + 1];
        b->event[i] = s->y[2 * i] > 0.5f;
    }
    rc = ff_eval_cindex(score, b->time, b->event, (size_t)s->n, out);
    return rc;
}

/* Metrics of one model per centre (models[k]; a single global model repeats it) on every
 * centre's test set and on the pooled test set (each row scored by its centre's model);
 * in the validation search (no results file) the pooled one only, client[] NaN. */
int fb_evaluate(fb_ctx *b, const float *const *models, double *client, double *pooled)
{
    int rc = FF_OK;
    const ff_flamby_data *d = &b->data;
    for (int k = 0; k < d->ncenters && rc == FF_OK; k++) {
        client[k] = NAN;
        if (!b->csv) /* the validation search ranks on the pooled rows; a centre's few
                      * validation rows may hold no comparable pair */
            continue;
        rc = fb_scores(b, models[k], &d->test[k], 0, d->test[k].n, b->score);
        if (rc == FF_OK)
            rc = fb_metric(b, &d->test[k], b->score, &client[k]);
    }
    const ff_flamby_split *p = &d->pooled_test;
    for (int i = 0; i < p->n && rc == FF_OK; i++)
        rc = fb_scores(b, models[p->center[i]], p, i, i + 1, b->score);
    if (rc == FF_OK)
        rc = fb_metric(b, p, b->score, pooled);
    return rc;
}
