/* Record-level (patient-level) DP-SGD at a site (Abadi et al. 2016): Poisson sampling of
 * patients, per-patient clipping (ghost clipping by default, batch-of-1 passes with
 * dp_exact), Gaussian noise on the clipped sum, division by the expected batch. The round is charged to the site's ledger before any record is read. */
#include "ff/client.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seed for the noise: the OS entropy pool unless a test fixes it. Noise drawn from a seed an
 * observer could know (the data-order seed) would be subtractable, voiding the guarantee. */
static int noise_seed(uint64_t fixed, uint64_t *seed)
{
    if (fixed) {
        *seed = fixed;
        return FF_OK;
    }
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f)
        return ff_error(FF_EIO, "DP-SGD: cannot open /dev/urandom for the noise seed");
    size_t got = fread(seed, sizeof *seed, 1, f);
    fclose(f);
    return got == 1 ? FF_OK : ff_error(FF_EIO, "DP-SGD: short read from /dev/urandom");
}

static int check_opts(const ff_local_opts *o, size_t total, int max_batch)
{
    if (total == 0)
        return ff_error(FF_EINVAL, "DP-SGD: no training examples");
    if (o->batch < 1 || (size_t)o->batch > total)
        return ff_error(FF_EINVAL, "DP-SGD: expected batch %d outside 1..%zu (patients)",
                        o->batch, total);
    if (max_batch < 1)
        return ff_error(FF_EINVAL, "DP-SGD: model max batch %d", max_batch);
    if (!(o->dp_sigma >= 0) || isinf(o->dp_sigma))
        return ff_error(FF_EINVAL, "DP-SGD: noise multiplier %g must be finite and >= 0",
                        o->dp_sigma);
    if (!(o->dp_clip > 0))
        return ff_error(FF_EINVAL, "DP-SGD: clip norm %g must be > 0", o->dp_clip);
    if (isinf(o->dp_clip) && o->dp_sigma > 0)
        return ff_error(FF_EINVAL, "DP-SGD: noise needs a finite clip norm (noise std = "
                        "sigma * clip)");
    if (!(o->dp_delta > 0 && o->dp_delta < 1.0 / (double)total))
        return ff_error(FF_EINVAL, "DP-SGD: delta %g must be in (0, 1/%zu) (1 / patients)",
                        o->dp_delta, total);
    if (o->trainable && o->trainable->count)
        return ff_error(FF_EINVAL, "DP-SGD: a trainable subset is not supported");
    if (o->modalities && o->modalities != FF_MOD_ALL)
        return ff_error(FF_EINVAL, "DP-SGD: a modality restriction is not supported");
    if (o->objective != FF_OBJ_SUPERVISED)
        return ff_error(FF_EINVAL, "DP-SGD: only the supervised objective is supported");
    if (o->label_fraction > 0 && o->label_fraction < 1)
        return ff_error(FF_EINVAL, "DP-SGD: a label fraction is not supported");
    return FF_OK;
}

/* Per-patient clipping bounds a patient's influence only when the loss is a sum of
 * per-patient terms: binary BCE, multiclass cross-entropy and regression MSE are; the Cox
 * partial likelihood is not (a patient sits in the risk sets of the others, and alone in a
 * batch of 1 its gradient is zero), so a survival task is refused rather than not learnt. */
static int check_tasks(const ff_task_set *ts)
{
    for (int k = 0; k < ts->n; k++)
        if (ts->t[k].kind == FF_TASK_SURVIVAL)
            return ff_error(FF_ECONFIG, "DP-SGD: task %s is a survival task: its Cox partial "
                            "likelihood couples the patients of a batch, so per-patient "
                            "clipping does not bound one patient's influence; record-level "
                            "DP-SGD supports binary, multiclass and regression tasks",
                            ts->t[k].name);
    return FF_OK;
}

/* Charges the round to the ledger (or refuses it) and returns ε afterwards. σ = 0 gives no
 * guarantee: allowed only without a budget, ε = +inf, nothing recorded. */
static int charge(const ff_local_opts *o, ff_privacy_ledger **own, double q, double *eps)
{
    ff_privacy_ledger *l = o->dp_ledger;
    double budget = o->dp_epsilon_budget > 0 ? o->dp_epsilon_budget : INFINITY;
    if (o->dp_sigma == 0) {
        if (l || o->dp_epsilon_budget > 0)
            return ff_error(FF_EPOLICY, "round %lld refused: noise multiplier 0 gives epsilon "
                            "inf, past the budget", (long long)o->dp_round);
        *eps = INFINITY;
        return FF_OK;
    }
    if (!l) {
        double orders[FF_PRIVACY_MAX_ORDERS];
        size_t n = ff_privacy_orders_dp_accounting(orders);
        int rc = ff_privacy_ledger_new(own, FF_PRIVACY_LEVEL_RECORD, budget, o->dp_delta,
                                       orders, n, FF_PRIVACY_SERIES_DP_ACCOUNTING,
                                       FF_PRIVACY_CONV_IMPROVED);
        if (rc != FF_OK)
            return rc;
        l = *own;
    }
    ff_privacy_round r;
    memset(&r, 0, sizeof r);
    r.round = o->dp_round;
    r.level = FF_PRIVACY_LEVEL_RECORD;
    r.mechanism = FF_PRIVACY_MECH_GAUSSIAN;
    r.q = q;
    r.sigma = o->dp_sigma;
    r.steps = o->steps;
    r.clip_norm = o->dp_clip;
    int rc = ff_privacy_ledger_record(l, &r);
    double order;
    if (rc == FF_OK)
        rc = ff_privacy_ledger_epsilon(l, eps, &order);
    return rc;
}

/* Site and row of pooled train index g. */
static void locate(ff_site *const *sites, size_t nsites, uint32_t g, size_t *si, uint32_t *row)
{
    size_t i = 0;
    while (i + 1 < nsites && g >= ff_site_count(sites[i], FF_SPLIT_TRAIN)) {
        g -= (uint32_t)ff_site_count(sites[i], FF_SPLIT_TRAIN);
        i++;
    }
    *si = i;
    *row = g;
}

typedef struct {
    ff_batch b;
    uint32_t *idx, *rows;
    float *sum, *losses;
    ff_optim *opt;
} dp_state;

static void state_free(dp_state *s)
{
    ff_batch_free(&s->b);
    free(s->idx);
    free(s->rows);
    ff_free(s->sum);
    free(s->losses);
    ff_optim_free(s->opt);
}

/* The clipped sum of the sampled patients idx[0..cnt) into s->sum, loading at most `chunk`
 * rows of one site at a time; *loss_sum += their losses. */
static int clipped_sum(ff_model *m, ff_site *const *sites, size_t nsites, const ff_local_opts *o,
                       dp_state *s, size_t cnt, int chunk, ff_rng *rng, double *loss_sum)
{
    ff_aug aug = ff_aug_default();
    size_t i = 0;
    while (i < cnt) {
        size_t si, sj;
        uint32_t row;
        locate(sites, nsites, s->idx[i], &si, &row);
        size_t n = 0;
        s->rows[n++] = row;
        for (i++; i < cnt && n < (size_t)chunk; i++) {
            locate(sites, nsites, s->idx[i], &sj, &row);
            if (sj != si)
                break;
            s->rows[n++] = row;
        }
        int rc = ff_site_batch(sites[si], FF_SPLIT_TRAIN, s->rows, n, o->augment ? &aug : NULL,
                               rng, &s->b);
        ff_batch v = s->b;
        v.B = (int)n;
        if (rc == FF_OK && o->modality_dropout > 0)
            rc = ff_modality_dropout(&v, o->modality_dropout, rng);
        if (rc == FF_OK && o->dp_exact)
            rc = ff_model_clipped_grad_sum(m, &v, o->dp_clip, s->sum, NULL, s->losses);
        else if (rc == FF_OK)
            rc = ff_model_ghost_clipped_grad_sum(m, &v, o->dp_clip, s->sum, NULL, s->losses);
        if (rc != FF_OK)
            return rc;
        for (size_t k = 0; k < n; k++)
            *loss_sum += s->losses[k];
    }
    return FF_OK;
}

int ff_local_train_dp(ff_model *m, ff_site *const *sites, size_t nsites, const ff_local_opts *o,
                      ff_local_stats *st)
{
    memset(st, 0, sizeof *st);
    size_t total = 0;
    for (size_t i = 0; i < nsites; i++)
        total += ff_site_count(sites[i], FF_SPLIT_TRAIN);
    int chunk = ff_model_max_batch(m);
    int rc = check_opts(o, total, chunk);
    if (rc == FF_OK)
        rc = check_tasks(&ff_model_cfg(m)->task_set);
    if (rc != FF_OK)
        return rc;
    double q = (double)o->batch / (double)total, t0 = ff_now();
    ff_privacy_ledger *own = NULL;
    rc = charge(o, &own, q, &st->epsilon);
    ff_privacy_ledger_free(own);
    if (rc != FF_OK)
        return rc;
    size_t np = ff_model_nparams(m);
    const ff_data_shape *sh = ff_site_shape(sites[0]);
    dp_state s;
    memset(&s, 0, sizeof s);
    s.idx = calloc(total, sizeof *s.idx);
    s.rows = calloc((size_t)chunk, sizeof *s.rows);
    s.losses = calloc((size_t)chunk, sizeof *s.losses);
    s.sum = ff_alloc(np * sizeof(float));
    if (!s.idx || !s.rows || !s.losses || !s.sum)
        rc = ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK)
        rc = ff_site_batch_alloc(&s.b, chunk, sh);
    ff_optim_config oc = o->optim;
    oc.clip_norm = 0; /* per-patient clipping replaces the global clip */
    if (rc == FF_OK)
        rc = ff_optim_new(&s.opt, m, &oc);
    uint64_t nseed = 0;
    if (rc == FF_OK)
        rc = noise_seed(o->dp_noise_seed, &nseed);
    ff_rng rng, noise;
    ff_rng_init(&rng, o->seed, 0xd95a);
    ff_rng_init(&noise, nseed, 0x4015e);
    ff_progress prog;
    ff_progress_start(&prog, o->progress ? stderr : NULL, "dp-sgd", (uint64_t)o->steps);
    double loss_sum = 0;
    for (int64_t step = 0; rc == FF_OK && step < o->steps; step++) {
        size_t cnt = 0;
        rc = ff_privacy_poisson_sample(&rng, total, q, s.idx, &cnt);
        memset(s.sum, 0, np * sizeof(float));
        double step_loss = 0;
        if (rc == FF_OK)
            rc = clipped_sum(m, sites, nsites, o, &s, cnt, chunk, &rng, &step_loss);
        if (rc != FF_OK)
            break;
        /* an empty batch still takes its noisy step: skipping it would reveal the count */
        if (o->dp_sigma > 0)
            ff_privacy_gaussian_noise(&noise, s.sum, np, o->dp_sigma * o->dp_clip);
        float *g = ff_model_grads(m), inv = 1.0f / (float)o->batch;
        for (size_t j = 0; j < np; j++)
            g[j] = s.sum[j] * inv;
        if (o->fedprox_mu > 0 && o->global)
            ff_fedprox_grad(ff_model_params(m), o->global, o->fedprox_mu, g, np);
        rc = ff_optim_step(s.opt, m, ff_lr_schedule(&o->optim, step, o->steps));
        double loss = cnt ? step_loss / (double)cnt : 0;
        if (st->steps == 0)
            st->loss_first = loss;
        st->loss_last = loss;
        loss_sum += loss;
        st->steps++;
        st->examples += (int64_t)cnt;
        char extra[64];
        snprintf(extra, sizeof extra, "loss %.4f", loss);
        ff_progress_update(&prog, (uint64_t)step + 1, extra);
    }
    if (o->progress && rc == FF_OK)
        ff_progress_finish(&prog);
    st->loss_mean = st->steps ? loss_sum / (double)st->steps : 0;
    st->seconds = ff_now() - t0;
    state_free(&s);
    return rc;
}
