/* `--tuned`: each federated method's hyperparameters chosen by a grid search on a validation
 * split carved from every centre's training rows. The search runs on a data set built from
 * the training splits alone (its "test" splits are the validation rows), so no test row can
 * reach it; the chosen values are then used to train on the full training rows and are
 * printed and written to OUT/tuned.json with every candidate's validation score. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TUNE_VAL_FRACTION 0.2
#define TUNE_SPLIT_SEED 0x7a11dULL /* fixed: the same validation rows for every seed */
#define TUNE_MAX_CANDIDATES 64

/* The grids: client SGD rate for every method; then FedProx's mu, the adaptive methods'
 * server rate, fine-tuning's number of steps (0 = none). Powers of √10 around FLamby's. */
static const double grid_lr[] = {0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316};
static const double grid_mu[] = {0.001, 0.01, 0.1, 1.0};
static const double grid_slr[] = {0.01, 0.0316, 0.1, 0.316, 1.0};
static const double grid_ft[] = {0, 3, 10, 30};

static int tunable(int m)
{
    return m >= FF_FB_FEDAVG && m <= FF_FB_FEDAVG_LOCALBIAS;
}

/* What the method's second grid is, or NULL (name in *what, values in *vals, count). */
static const double *second_grid(int m, const char **what, size_t *count)
{
    *what = NULL;
    *count = 1;
    if (m == FF_FB_FEDPROX) {
        *what = "mu";
        *count = FF_ARRAY_LEN(grid_mu);
        return grid_mu;
    }
    if (m == FF_FB_FEDADAM || m == FF_FB_FEDYOGI || m == FF_FB_FEDADAGRAD) {
        *what = "server_lr";
        *count = FF_ARRAY_LEN(grid_slr);
        return grid_slr;
    }
    if (m == FF_FB_FEDAVG_FT) {
        *what = "fine_tuning_steps";
        *count = FF_ARRAY_LEN(grid_ft);
        return grid_ft;
    }
    return NULL;
}

static void set_candidate(fb_mhp *h, int m, double lr, double second)
{
    h->lr = lr;
    if (m == FF_FB_FEDPROX)
        h->mu = second;
    else if (m == FF_FB_FEDADAM || m == FF_FB_FEDYOGI || m == FF_FB_FEDADAGRAD)
        h->slr = second;
    else if (m == FF_FB_FEDAVG_FT) {
        h->ft_steps = (int)second;
        h->ft_lr = lr;
    }
}

static int split_alloc(ff_flamby_split *s, int n, int d, int t)
{
    s->d = d, s->t = t, s->n = 0, s->cap = n;
    s->x = malloc((size_t)(n ? n : 1) * d * sizeof(float));
    s->y = malloc((size_t)(n ? n : 1) * t * sizeof(float));
    s->center = malloc((size_t)(n ? n : 1) * sizeof(int));
    return s->x && s->y && s->center ? FF_OK : ff_error(FF_ENOMEM, "tuning: no memory");
}

static void split_add(ff_flamby_split *s, const ff_flamby_split *from, int row, int center)
{
    memcpy(s->x + (size_t)s->n * s->d, from->x + (size_t)row * s->d, (size_t)s->d * sizeof(float));
    memcpy(s->y + (size_t)s->n * s->t, from->y + (size_t)row * s->t, (size_t)s->t * sizeof(float));
    s->center[s->n++] = center;
}

/* v: each centre's training rows in a fixed shuffle, the last TUNE_VAL_FRACTION of them
 * (at least one) as its validation ("test") split; the pooled splits their concatenation.
 * Only d->train[] is read. */
static int carve(const ff_flamby_data *d, ff_flamby_data *v)
{
    memset(v, 0, sizeof *v);
    v->dataset = d->dataset, v->ncenters = d->ncenters;
    v->nfeatures = d->nfeatures, v->ntargets = d->ntargets;
    int ntr = 0, nva = 0, rc = FF_OK, nval[FF_FLAMBY_MAX_CENTERS];
    for (int k = 0; k < d->ncenters; k++) {
        int n = d->train[k].n;
        nval[k] = FF_MAX(1, (int)lround(TUNE_VAL_FRACTION * n));
        if (nval[k] >= n)
            return ff_error(FF_EINVAL, "tuning: centre %d has %d training rows, too few to "
                            "hold out a validation split", k, n);
        ntr += n - nval[k], nva += nval[k];
    }
    rc = split_alloc(&v->pooled_train, ntr, d->nfeatures, d->ntargets);
    if (rc == FF_OK)
        rc = split_alloc(&v->pooled_test, nva, d->nfeatures, d->ntargets);
    for (int k = 0; k < d->ncenters && rc == FF_OK; k++) {
        const ff_flamby_split *s = &d->train[k];
        int *perm = malloc((size_t)s->n * sizeof(int));
        rc = perm ? split_alloc(&v->train[k], s->n - nval[k], s->d, s->t) : FF_ENOMEM;
        if (rc == FF_OK)
            rc = split_alloc(&v->test[k], nval[k], s->d, s->t);
        if (rc == FF_OK) {
            ff_rng r;
            ff_rng_init(&r, TUNE_SPLIT_SEED, (uint64_t)k);
            for (int i = 0; i < s->n; i++)
                perm[i] = i;
            for (int i = s->n - 1; i > 0; i--) {
                int j = (int)ff_rng_below(&r, (uint32_t)(i + 1)), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
            for (int i = 0; i < s->n; i++) {
                int val = i >= s->n - nval[k];
                split_add(val ? &v->test[k] : &v->train[k], s, perm[i], k);
                split_add(val ? &v->pooled_test : &v->pooled_train, s, perm[i], k);
            }
        }
        free(perm);
    }
    if (rc != FF_OK)
        ff_flamby_data_free(v);
    return rc == FF_ENOMEM ? ff_error(FF_ENOMEM, "tuning: no memory") : rc;
}

int fb_pooled_loss(fb_ctx *b, const float *const *models, double *loss)
{
    const ff_flamby_split *p = &b->data.pooled_test;
    int rc = FF_OK;
    for (int i = 0; i < p->n && rc == FF_OK; i++)
        rc = fb_scores(b, models[p->center[i]], p, i, i + 1, b->score);
    if (rc != FF_OK)
        return rc;
    double sum = 0;
    int nev = 0;
    for (int i = 0; i < p->n; i++) {
        const double s = b->score[i];
        if (b->data.dataset == FF_FLAMBY_HEART) { /* log(1 + e^s) - y s, overflow-safe */
            sum += (s > 0 ? s + log1p(exp(-s)) : log1p(exp(s))) - (p->y[i] > 0.5f ? s : 0);
            continue;
        }
        if (!(p->y[2 * i] > 0.5f))
            continue;
        double at_risk = 0; /* Breslow: every row with time >= t_i, ties included */
        for (int j = 0; j < p->n; j++)
            if (p->y[2 * j + 1] >= p->y[2 * i + 1])
                at_risk += exp(b->score[j] - s);
        sum += log(at_risk), nev++;
    }
    const int den = b->data.dataset == FF_FLAMBY_HEART ? p->n : nev;
    *loss = den ? sum / den : 0;
    return FF_OK;
}

/* Mean over the seeds of method m's validation loss (pooled validation rows) under
 * candidate h, and its validation metric in *metric. The loss, a proper scoring rule, ranks
 * the candidates: on ~100 validation rows accuracy moves in steps of 0.01 and ties across
 * most of a grid. +inf when a run fails (a diverging rate): never chosen. */
static double score(fb_ctx *sv, int m, const fb_mhp *h, double *metric)
{
    sv->hp.m[m] = *h;
    sv->nsum = 0;
    sv->search_loss = 0;
    sv->search_runs = 0;
    *metric = NAN;
    for (int si = 0; si < sv->opts->nseeds; si++)
        if (fb_run_federated(sv, sv->opts->seeds[si], m) != FF_OK) {
            ff_error_clear();
            return INFINITY;
        }
    if (sv->nsum != 1 || sv->search_runs == 0 || !isfinite(sv->search_loss))
        return INFINITY;
    *metric = sv->sum[0].pooled_sum / sv->sum[0].count;
    return sv->search_loss / sv->search_runs;
}

#define PUT(...) len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, __VA_ARGS__)

static size_t put_grid(char *buf, size_t len, size_t cap, const char *name, const double *g,
                       size_t n)
{
    PUT("\"%s\": [", name);
    for (size_t i = 0; i < n; i++)
        PUT(i ? ", %g" : "%g", g[i]);
    PUT("]");
    return len;
}

/* One method's search: every candidate's validation score into the JSON buffer, the best
 * (first on ties, grid order) into b->hp.m[m]. */
static size_t tune_method(fb_ctx *b, fb_ctx *sv, int m, int first, char *buf, size_t len,
                          size_t cap)
{
    const char *what;
    size_t n2;
    const double *g2 = second_grid(m, &what, &n2);
    fb_mhp best = b->hp.m[m];
    double best_score = INFINITY, best_metric = NAN;
    PUT("%s    \"%s\": {\"grid\": {", first ? "" : ",\n", fb_method_name(m));
    len = put_grid(buf, len, cap, "lr", grid_lr, FF_ARRAY_LEN(grid_lr));
    if (g2) {
        PUT(", ");
        len = put_grid(buf, len, cap, what, g2, n2);
    }
    PUT("},\n      \"candidates\": [");
    for (size_t i = 0; i < FF_ARRAY_LEN(grid_lr); i++)
        for (size_t j = 0; j < n2; j++) {
            fb_mhp h = b->hp.m[m];
            set_candidate(&h, m, grid_lr[i], g2 ? g2[j] : 0);
            double metric, s = score(sv, m, &h, &metric);
            PUT("%s{\"lr\": %g", i + j ? ", " : "", grid_lr[i]);
            if (g2)
                PUT(", \"%s\": %g", what, g2[j]);
            if (isfinite(s))
                PUT(", \"validation_loss\": %.6f, \"validation_metric\": %.6f}", s, metric);
            else
                PUT(", \"validation_loss\": null, \"validation_metric\": null}");
            if (s < best_score)
                best_score = s, best = h, best_metric = metric;
        }
    b->hp.m[m] = best;
    PUT("],\n      \"chosen\": {\"lr\": %g", best.lr);
    char line[160];
    int ll = snprintf(line, sizeof line, "tuned %s: lr %g", fb_method_name(m), best.lr);
    if (g2) {
        double v = m == FF_FB_FEDPROX ? best.mu : m == FF_FB_FEDAVG_FT ? best.ft_steps : best.slr;
        PUT(", \"%s\": %g", what, v);
        ll += snprintf(line + ll, sizeof line - (size_t)ll, ", %s %g", what, v);
    }
    if (!isfinite(best_score)) /* every candidate failed: FLamby's values stay */
        PUT("}, \"validation_loss\": null}");
    else
        PUT("}, \"validation_loss\": %.6f, \"validation_metric\": %.6f}", best_score, best_metric);
    if (b->opts->progress)
        fprintf(b->opts->progress, "%s (validation loss %.4f, %s %.3f)\n", line, best_score,
                b->data.dataset == FF_FLAMBY_HEART ? "accuracy" : "C-index", best_metric);
    return len;
}

int fb_tune(fb_ctx *b)
{
    const ff_benchmark_opts *o = b->opts;
    fb_ctx sv = *b; /* shares the model and buffers; its own data, summaries and output */
    ff_benchmark_opts so = *o;
    char out[1024], path[1100];
    snprintf(out, sizeof out, "%s/tuning", o->out_dir);
    so.out_dir = out;
    so.progress = NULL;
    sv.opts = &so;
    sv.csv = NULL;
    sv.nsum = 0;
    int rc = carve(&b->data, &sv.data);
    if (rc != FF_OK)
        return rc;
    size_t cap = 1 << 18, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        ff_flamby_data_free(&sv.data);
        return ff_error(FF_ENOMEM, "tuning: no memory");
    }
    PUT("{\n  \"dataset\": \"%s\",\n  \"validation\": \"%.0f%% of each centre's training rows "
        "(fixed shuffle); the test splits are not read\",\n  \"seeds\": [", o->dataset,
        100 * TUNE_VAL_FRACTION);
    for (int i = 0; i < o->nseeds; i++)
        PUT(i ? ", %lld" : "%lld", (long long)o->seeds[i]);
    PUT("],\n  \"methods\": {\n");
    int first = 1;
    for (int m = 0; m < FF_FB_COUNT; m++)
        if (tunable(m) && (o->methods & (1u << m))) {
            len = tune_method(b, &sv, m, first, buf, len, cap);
            first = 0;
        }
    PUT("\n  }\n}\n");
    ff_flamby_data_free(&sv.data);
    snprintf(path, sizeof path, "%s/tuned.json", o->out_dir);
    rc = len < cap ? ff_file_write_atomic(path, buf, len, 0644)
                   : ff_error(FF_EINTERNAL, "tuned.json: too long");
    free(buf);
    return rc;
}
