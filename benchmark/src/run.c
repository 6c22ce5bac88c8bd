/* The methods of the FLamby benchmark: pooled and local training (Adam, as FLamby), and the
 * federated strategies through the coordinator's round engine with an in-process driver
 * (each selected site trains from the global model and submits its update, as a client node
 * does over the transport); then results.csv and comparison.md. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FB_MAX_PARAMS 64 /* linear models over ≤ 39 features */

static int strategy_of(int m)
{
    switch (m) {
    case FF_FB_FEDPROX: return FF_STRATEGY_FEDPROX;
    case FF_FB_SCAFFOLD: return FF_STRATEGY_SCAFFOLD;
    case FF_FB_FEDADAM: return FF_STRATEGY_FEDADAM;
    case FF_FB_FEDYOGI: return FF_STRATEGY_FEDYOGI;
    case FF_FB_FEDADAGRAD: return FF_STRATEGY_FEDADAGRAD;
    case FF_FB_CYCLIC:
    case FF_FB_CYCLIC_FLAMBY: return FF_STRATEGY_CYCLIC;
    default: return FF_STRATEGY_FEDAVG;
    }
}

static int write_row(fb_ctx *b, int64_t seed, const char *method, const char *test, double v)
{
    if (!b->csv) /* the validation search (tune.c) writes no results */
        return FF_OK;
    if (fprintf(b->csv, "%lld,%s,%s,%.17g\n", (long long)seed, method, test, v) < 0)
        return ff_error(FF_EIO, "results.csv: write failed (%s)", strerror(errno));
    return FF_OK;
}

static int write_rows(fb_ctx *b, int64_t seed, const char *method, const double *client,
                      double pooled)
{
    int rc = FF_OK, i = 0;
    while (i < b->nsum && strcmp(b->sum[i].name, method) != 0)
        i++;
    if (i == FB_MAX_SUMMARIES)
        return ff_error(FF_EINTERNAL, "benchmark: too many methods");
    if (i == b->nsum)
        snprintf(b->sum[b->nsum++].name, sizeof b->sum[0].name, "%s", method);
    double sites = 0;
    for (int k = 0; k < b->data.ncenters; k++)
        sites += client[k] / b->data.ncenters;
    b->sum[i].pooled_sum += pooled;
    b->sum[i].sites_sum += sites;
    b->sum[i].count++;
    for (int k = 0; k < b->data.ncenters && rc == FF_OK; k++) {
        char test[32];
        snprintf(test, sizeof test, "client_test_%d", k);
        rc = write_row(b, seed, method, test, client[k]);
    }
    return rc == FF_OK ? write_row(b, seed, method, "Pooled Test", pooled) : rc;
}

static void progress(fb_ctx *b, int64_t seed, const char *method)
{
    char extra[128];
    snprintf(extra, sizeof extra, "seed %lld %s", (long long)seed, method);
    b->done++;
    if (b->opts->progress)
        ff_progress_update(&b->prog, b->done, extra);
}

/* Adam over epochs of split s from the seed's initial model (pooled and local training). */
static int run_centralised(fb_ctx *b, int64_t seed, const ff_flamby_split *s, int stream,
                           const char *name)
{
    ff_tab *t = b->tab;
    ff_tab_init(t, (uint64_t)seed);
    ff_vec_optim o;
    int rc = ff_vec_optim_init(&o, FF_OPTIM_ADAMW, ff_tab_nparams(t), (float)b->hp.pooled_lr);
    if (rc != FF_OK)
        return rc;
    fb_loader L = {.perm = b->perm[stream]};
    fb_loader_init(&L, s, (uint64_t)seed, 0x10000u + (uint64_t)stream);
    int steps = b->hp.pooled_epochs * ((s->n + b->hp.batch - 1) / b->hp.batch);
    rc = fb_train(b, &L, &o, steps, NULL, 0, NULL, NULL);
    ff_vec_optim_free(&o);
    float w[FB_MAX_PARAMS];
    memcpy(w, ff_tab_params(t), ff_tab_nparams(t) * sizeof(float));
    const float *models[FF_FLAMBY_MAX_CENTERS];
    for (int k = 0; k < FF_FLAMBY_MAX_CENTERS; k++)
        models[k] = w;
    double client[FF_FLAMBY_MAX_CENTERS], pooled;
    if (rc == FF_OK)
        rc = fb_evaluate(b, models, client, &pooled);
    if (rc == FF_OK)
        rc = write_rows(b, seed, name, client, pooled);
    return rc;
}

/* The per-site state of a federated run. */
typedef struct {
    fb_loader L[FF_FLAMBY_MAX_CENTERS];
    float ci[FF_FLAMBY_MAX_CENTERS][FB_MAX_PARAMS];  /* SCAFFOLD client control variates */
    float own[FF_FLAMBY_MAX_CENTERS][FB_MAX_PARAMS]; /* per-site models (local layers, FT) */
} fb_sites;

/* One site's task: train from the global vector g and write its update u (n_vec floats). */
static int site_update(fb_ctx *b, int method, fb_sites *st, int k, const float *g,
                       const unsigned char *local, float *u)
{
    ff_tab *t = b->tab;
    const size_t n = ff_tab_nparams(t);
    const fb_mhp *h = &b->hp.m[method];
    float *w = ff_tab_params(t), start[FB_MAX_PARAMS];
    memcpy(w, g, n * sizeof(float));
    if (local) /* the site's own values of its local layers */
        for (size_t j = 0; j < n; j++)
            if (local[j])
                w[j] = st->own[k][j];
    memcpy(start, w, n * sizeof(float));
    ff_vec_optim o;
    int rc = ff_vec_optim_init(&o, FF_OPTIM_SGD, n, (float)h->lr);
    if (rc != FF_OK)
        return rc;
    const int scaffold = method == FF_FB_SCAFFOLD;
    rc = fb_train(b, &st->L[k], &o, b->hp.updates, method == FF_FB_FEDPROX ? g : NULL,
                  (float)h->mu, scaffold ? g + n : NULL, scaffold ? st->ci[k] : NULL);
    ff_vec_optim_free(&o);
    if (rc != FF_OK)
        return rc;
    ff_round_update(u, w, start, n);
    if (scaffold)
        ff_scaffold_control_delta(u + n, st->ci[k], g + n, g, w, b->hp.updates, h->lr, n);
    if (local)
        memcpy(st->own[k], w, n * sizeof(float));
    return FF_OK;
}

static int prepare_dir(const char *dir)
{
    int rc = ff_mkdir_p(dir, 0755);
    const char *files[] = {"checkpoint.safetensors", "checkpoint.safetensors.next", "rounds.csv"};
    for (size_t i = 0; i < FF_ARRAY_LEN(files) && rc == FF_OK; i++) {
        char p[FF_COORD_PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (unlink(p) != 0 && errno != ENOENT)
            rc = ff_error(FF_EIO, "%s: cannot remove (%s)", p, strerror(errno));
    }
    return rc;
}

/* strategy.local of a method: FedAvgLocalBias keeps fc.bias at the sites; FLamby's Cyclic
 * rule keeps every tensor there (each site trains its own copy in its turn, as FLamby's
 * Cyclic does with one deep copy of the model per client). */
static const char *local_layers(int method)
{
    if (method == FF_FB_FEDAVG_LOCALBIAS)
        return "  local: [fc.bias]\n";
    return method == FF_FB_CYCLIC_FLAMBY ? "  local: [fc.weight, fc.bias]\n" : "";
}

int fb_run_federated(fb_ctx *b, int64_t seed, int method)
{
    ff_tab *t = b->tab;
    const ff_flamby_data *d = &b->data;
    const size_t n = ff_tab_nparams(t);
    const int scaffold = method == FF_FB_SCAFFOLD;
    const size_t nv = scaffold ? 2 * n : n;
    const fb_mhp *h = &b->hp.m[method];
    ff_tab_init(t, (uint64_t)seed);
    float init[2 * FB_MAX_PARAMS] = {0};
    memcpy(init, ff_tab_params(t), n * sizeof(float));

    /* the engine's tensor table: the model's, then SCAFFOLD's control variate */
    ff_coord_tensor table[8];
    char names[8][48];
    size_t nt = ff_tab_ntensors(t);
    for (size_t i = 0; i < nt; i++) {
        const ff_param_info *p = ff_tab_tensor(t, i);
        table[i] = (ff_coord_tensor){.name = p->name, .ndim = p->ndim, .offset = p->offset};
        memcpy(table[i].shape, p->shape, sizeof p->shape);
        if (scaffold) {
            snprintf(names[i], sizeof names[i], "scaffold.c.%s", p->name);
            table[nt + i] = table[i];
            table[nt + i].name = names[i];
            table[nt + i].offset += n;
        }
    }
    ff_coord_model model = {.n = nv, .tensors = table, .ntensors = scaffold ? 2 * nt : nt,
                            .init = init};

    ff_coord_config cfg;
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "run_name: flamby-%s\nrounds: %d\nseed: %lld\nstrategy:\n  name: %s\n"
             "  server_lr: %.17g\n  beta1: %.17g\n  beta2: %.17g\n  tau: %.17g\n%s",
             ff_benchmark_method_key(method), b->hp.rounds, (long long)seed,
             ff_strategy_name(strategy_of(method)), h->slr, h->b1, h->b2, h->tau,
             local_layers(method));
    int rc = ff_coord_config_load_str(&cfg, "benchmark", yaml, strlen(yaml));
    if (rc != FF_OK) {
        ff_coord_config_free(&cfg);
        return rc;
    }
    snprintf(cfg.checkpoint_dir, sizeof cfg.checkpoint_dir, "%s/runs/%s/%s/seed%lld",
             b->opts->out_dir, b->opts->dataset, ff_benchmark_method_key(method), (long long)seed);
    memcpy(cfg.out_dir, cfg.checkpoint_dir, sizeof cfg.out_dir);
    rc = prepare_dir(cfg.checkpoint_dir);

    const char *sites[FF_FLAMBY_MAX_CENTERS];
    char site_names[FF_FLAMBY_MAX_CENTERS][16];
    for (int k = 0; k < d->ncenters; k++) {
        snprintf(site_names[k], sizeof site_names[k], "center-%d", k);
        sites[k] = site_names[k];
    }
    static fb_sites st;
    memset(&st, 0, sizeof st);
    for (int k = 0; k < d->ncenters; k++) {
        st.L[k].perm = b->perm[k];
        fb_loader_init(&st.L[k], &d->train[k], (uint64_t)seed, (uint64_t)k);
        memcpy(st.own[k], init, n * sizeof(float));
    }
    ff_coord *c = NULL;
    if (rc == FF_OK)
        rc = ff_coord_new(&c, &cfg, &model, sites, (size_t)d->ncenters);
    if (rc == FF_OK)
        rc = ff_coord_phase_remove(c, FF_PHASE_EVALUATE); /* evaluation happens after the run */
    if (rc == FF_OK && !b->csv) /* the search's hundreds of runs: no per-round fsync */
        rc = ff_coord_phase_remove(c, FF_PHASE_CHECKPOINT);
    const unsigned char *local = rc == FF_OK ? ff_coord_strategy(c)->local : NULL;
    ff_coord_status s;
    while (rc == FF_OK && (rc = ff_coord_poll(c, &s)) == FF_OK && s.state != FF_COORD_DONE) {
        int pend[FF_FLAMBY_MAX_CENTERS];
        size_t np = s.npending;
        memcpy(pend, s.pending, np * sizeof(int));
        for (size_t i = 0; i < np && rc == FF_OK; i++) {
            float u[2 * FB_MAX_PARAMS];
            int k = pend[i];
            rc = site_update(b, method, &st, k, ff_coord_global(c), local, u);
            if (rc == FF_OK)
                rc = ff_coord_submit_update(c, sites[k], s.round, u, nv, d->train[k].n);
        }
    }
    float g[2 * FB_MAX_PARAMS];
    if (rc == FF_OK)
        memcpy(g, ff_coord_global(c), nv * sizeof(float));
    ff_coord_free(c);
    ff_coord_config_free(&cfg);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "%s, seed %lld: ", fb_method_name(method), (long long)seed);

    /* the models evaluated: the global one, or one per site (fine-tuned, or its own layers) */
    const float *models[FF_FLAMBY_MAX_CENTERS];
    for (int k = 0; k < d->ncenters; k++) {
        models[k] = g;
        if (method == FF_FB_CYCLIC_FLAMBY) {
            models[k] = st.own[0]; /* FLamby: `s.run()[0]`, the first client's copy */
        } else if (method == FF_FB_FEDAVG_LOCALBIAS) {
            float *w = st.own[k];
            for (size_t j = 0; j < n; j++)
                w[j] = local && local[j] ? w[j] : g[j];
            models[k] = w;
        } else if (method == FF_FB_FEDAVG_FT) {
            ff_vec_optim o;
            rc = ff_vec_optim_init(&o, FF_OPTIM_SGD, n, (float)h->ft_lr);
            memcpy(ff_tab_params(t), g, n * sizeof(float));
            if (rc == FF_OK)
                rc = fb_train(b, &st.L[k], &o, h->ft_steps, NULL, 0, NULL, NULL);
            ff_vec_optim_free(&o);
            if (rc != FF_OK)
                return rc;
            memcpy(st.own[k], ff_tab_params(t), n * sizeof(float));
            models[k] = st.own[k];
        }
    }
    double client[FF_FLAMBY_MAX_CENTERS], pooled, loss = 0;
    rc = fb_evaluate(b, models, client, &pooled);
    if (rc == FF_OK && !b->csv && (rc = fb_pooled_loss(b, models, &loss)) == FF_OK)
        b->search_loss += loss, b->search_runs++;
    if (rc == FF_OK)
        rc = write_rows(b, seed, fb_method_name(method), client, pooled);
    return rc;
}

static int ctx_init(fb_ctx *b, const ff_benchmark_opts *o)
{
    memset(b, 0, sizeof *b);
    b->opts = o;
    int rc = ff_flamby_load(o->data_dir, &b->data);
    if (rc != FF_OK)
        return rc;
    const ff_flamby_data *d = &b->data;
    int want = strcmp(o->dataset, "heart-disease") == 0 ? FF_FLAMBY_HEART : FF_FLAMBY_TCGA;
    if (d->dataset != want || d->nfeatures + 1 > FB_MAX_PARAMS)
        return ff_error(FF_EINVAL, "%s: holds %s data, not %s (import it with `fedfuse import "
                        "flamby --dataset %s`)", o->data_dir,
                        d->dataset == FF_FLAMBY_HEART ? "heart-disease" : "tcga-brca", o->dataset,
                        o->dataset);
    fb_hparams(d->dataset, &b->hp);
    /* fedfuse's recommended configuration standardises TCGA-BRCA's features as FLamby does
     * heart disease's (training statistics only): FLamby feeds the Cox model age in years */
    if (o->tuned && d->dataset == FF_FLAMBY_TCGA && (rc = ff_flamby_standardise(&b->data)) != FF_OK)
        return rc;
    ff_tab_config tc = {.arch = FF_TAB_LINEAR, .features = d->nfeatures, .outputs = 1,
                        .head = d->dataset == FF_FLAMBY_HEART ? FF_TAB_LOGISTIC : FF_TAB_COX};
    if ((rc = ff_tab_new(&b->tab, &tc, FB_EVAL_CHUNK)) != FF_OK)
        return rc;
    int maxn = d->pooled_train.n > d->pooled_test.n ? d->pooled_train.n : d->pooled_test.n;
    b->xb = malloc((size_t)b->hp.batch * d->nfeatures * sizeof(float));
    b->yb = malloc((size_t)b->hp.batch * 2 * sizeof(float));
    b->out = malloc(FB_EVAL_CHUNK * sizeof(float));
    b->dout = malloc(FB_EVAL_CHUNK * sizeof(float));
    b->score = malloc((size_t)maxn * sizeof(double));
    b->time = malloc((size_t)maxn * sizeof(double));
    b->event = malloc((size_t)maxn);
    int ok = b->xb && b->yb && b->out && b->dout && b->score && b->time && b->event;
    for (int k = 0; k <= FF_FLAMBY_MAX_CENTERS && ok; k++)
        ok = (b->perm[k] = malloc((size_t)maxn * sizeof(int))) != NULL;
    return ok ? FF_OK : ff_error(FF_ENOMEM, "benchmark: no memory");
}

static void ctx_free(fb_ctx *b)
{
    ff_tab_free(b->tab);
    free(b->xb);
    free(b->yb);
    free(b->out);
    free(b->dout);
    free(b->score);
    free(b->time);
    free(b->event);
    for (int k = 0; k <= FF_FLAMBY_MAX_CENTERS; k++)
        free(b->perm[k]);
    ff_flamby_data_free(&b->data);
}

int ff_benchmark_flamby_run(const ff_benchmark_opts *o)
{
    fb_ctx b;
    int rc = ctx_init(&b, o);
    char path[1024];
    if (rc == FF_OK)
        rc = ff_mkdir_p(o->out_dir, 0755);
    snprintf(path, sizeof path, "%s/results.csv", o->out_dir);
    if (rc == FF_OK && !(b.csv = fopen(path, "w")))
        rc = ff_error(FF_EIO, "%s: cannot create (%s)", path, strerror(errno));
    if (rc == FF_OK && fputs("seed,Method,Test,Metric\n", b.csv) < 0)
        rc = ff_error(FF_EIO, "%s: write failed", path);
    if (rc == FF_OK && o->tuned)
        rc = fb_tune(&b);
    int nruns = 0;
    for (int m = 0; m < FF_FB_COUNT; m++)
        if (o->methods & (1u << m))
            nruns += m == FF_FB_LOCAL ? b.data.ncenters : 1;
    if (rc == FF_OK && o->progress)
        ff_progress_start(&b.prog, o->progress, o->dataset, (uint64_t)nruns * (uint64_t)o->nseeds);
    for (int si = 0; si < o->nseeds && rc == FF_OK; si++) {
        const int64_t seed = o->seeds[si];
        for (int m = 0; m < FF_FB_COUNT && rc == FF_OK; m++) {
            if (!(o->methods & (1u << m)))
                continue;
            if (m == FF_FB_POOLED) {
                rc = run_centralised(&b, seed, &b.data.pooled_train, FF_FLAMBY_MAX_CENTERS,
                                     fb_method_name(m));
                progress(&b, seed, fb_method_name(m));
            } else if (m == FF_FB_LOCAL) {
                for (int k = 0; k < b.data.ncenters && rc == FF_OK; k++) {
                    char name[32];
                    snprintf(name, sizeof name, "Local %d", k);
                    rc = run_centralised(&b, seed, &b.data.train[k], k, name);
                    progress(&b, seed, name);
                }
            } else {
                rc = fb_run_federated(&b, seed, m);
                progress(&b, seed, fb_method_name(m));
            }
        }
    }
    if (rc == FF_OK && o->progress)
        ff_progress_finish(&b.prog);
    if (b.csv && fclose(b.csv) != 0 && rc == FF_OK)
        rc = ff_error(FF_EIO, "%s: write failed (%s)", path, strerror(errno));
    if (rc == FF_OK)
        rc = fb_write_comparison(&b);
    ctx_free(&b);
    return rc;
}
