/* Local training and prediction on a site's data. */
#include "ff/client.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


int ff_client_parse_modalities(const char *s, int *mask)
{
    *mask = 0;
    if (strcmp(s, "all") == 0) {
        *mask = FF_MOD_ALL;
        return FF_OK;
    }
    char buf[64];
    if (ff_strlcpy(buf, s, sizeof buf) != FF_OK)
        return ff_error(FF_EINVAL, "modalities '%s': too long", s);
    char *save = NULL;
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (strcmp(w, "img") == 0)
            *mask |= FF_MOD_IMG;
        else if (strcmp(w, "txt") == 0)
            *mask |= FF_MOD_TXT;
        else if (strcmp(w, "ehr") == 0)
            *mask |= FF_MOD_EHR;
        else if (strcmp(w, "tab") == 0)
            *mask |= FF_MOD_TAB;
        else
            return ff_error(FF_EINVAL, "modalities: unknown '%s' (img, txt, ehr, tab, all)", w);
    }
    if (!*mask)
        return ff_error(FF_EINVAL, "modalities: empty list");
    return FF_OK;
}

void ff_client_shape(const ff_model_config *mc, ff_data_shape *shape)
{
    memset(shape, 0, sizeof *shape);
    shape->tab = mc->tabular;
    shape->C = (int)mc->image.channels;
    shape->H = shape->W = (int)mc->image.size;
    shape->Lt = (int)mc->text.length;
    shape->Vt = (int)mc->text.vocab;
    shape->Le = (int)mc->ehr.length;
    shape->Vc = (int)mc->ehr.codes;
    shape->Vv = (int)mc->ehr.values;
    shape->Vtime = (int)mc->ehr.times;
    shape->K = (int)mc->tasks;
    shape->tasks = mc->task_set;
}

int ff_client_shape_load(const char *path, ff_data_shape *shape)
{
    ff_model_config mc;
    int rc = ff_model_config_load(path, &mc);
    if (rc != FF_OK)
        return rc;
    ff_client_shape(&mc, shape);
    rc = ff_data_shape_check(shape);
    return rc == FF_OK ? FF_OK : ff_error_prefix(rc, "%s: ", path);
}

void ff_local_opts_from_plan(ff_local_opts *o, const ff_plan *plan, size_t stage, size_t ntrain)
{
    memset(o, 0, sizeof *o);
    const ff_plan_stage *st = plan->stages.count ? (const ff_plan_stage *)plan->stages.items + stage : NULL;
    o->batch = (int)plan->batch_size;
    int64_t steps = st && st->local_steps > 0 ? st->local_steps : plan->local_steps;
    if (steps <= 0) {
        int64_t per_epoch = ((int64_t)ntrain + o->batch - 1) / o->batch;
        steps = plan->local_epochs * (per_epoch > 0 ? per_epoch : 1);
    }
    o->steps = steps;
    ff_optim_config_default(&o->optim);
    o->optim.kind = plan->optimizer.name == FF_OPT_SGD ? FF_OPTIM_SGD : FF_OPTIM_ADAMW;
    o->optim.lr = (float)(st && st->lr > 0 ? st->lr : plan->optimizer.lr);
    o->optim.weight_decay = (float)plan->optimizer.weight_decay;
    o->optim.momentum = (float)plan->optimizer.momentum;
    o->optim.min_lr_ratio = 1.0f; /* constant within a round; rounds are the schedule */
    o->modality_dropout = (float)plan->modality_dropout;
    o->fedprox_mu = (float)plan->fedprox_mu;
    o->trainable = st ? &st->trainable : NULL;
    o->modalities = FF_MOD_ALL;
    o->objective = st ? st->objective : FF_OBJ_SUPERVISED;
    if (st && st->modalities.count) {
        o->modalities = 0; /* names checked when the plan was loaded */
        for (size_t i = 0; i < st->modalities.count; i++) {
            int bit = 0;
            if (ff_client_parse_modalities(st->modalities.items[i], &bit) == FF_OK)
                o->modalities |= bit;
        }
        if (!o->modalities)
            o->modalities = FF_MOD_ALL;
    }
    o->augment = 1;
}

void ff_local_labelled(const ff_site *s, double f, uint64_t seed, uint8_t *labelled)
{
    size_t n = ff_site_count(s, FF_SPLIT_TRAIN);
    if (!(f > 0 && f < 1)) {
        memset(labelled, 1, n);
        return;
    }
    memset(labelled, 0, n);
    uint32_t *order = calloc(n ? n : 1, sizeof *order);
    if (!order) { /* keep every label rather than silently train on none */
        memset(labelled, 1, n);
        return;
    }
    /* mixed with the site's first patient id so two sites of equal size differ */
    const char *id = n ? ff_site_patient_id(s, FF_SPLIT_TRAIN, 0) : "";
    uint64_t site_seed = seed ^ ((uint64_t)ff_fnv1a32(id, strlen(id)) << 17);
    ff_site_shuffle(s, FF_SPLIT_TRAIN, site_seed, 0x1abe11edull, order);
    size_t k = (size_t)ceil(f * (double)n);
    for (size_t i = 0; i < k && i < n; i++)
        labelled[order[i]] = 1;
    free(order);
}

/* The modality pairs a contrastive step uses: image-text, or with EHR the pairs with EHR. */
static int contrastive_pairs(int mods, int pairs[2][2])
{
    int n = 0;
    if (mods & FF_MOD_EHR) {
        if (mods & FF_MOD_IMG)
            pairs[n][0] = 0, pairs[n][1] = 2, n++;
        if (mods & FF_MOD_TXT)
            pairs[n][0] = 1, pairs[n][1] = 2, n++;
    } else if ((mods & FF_MOD_IMG) && (mods & FF_MOD_TXT)) {
        pairs[n][0] = 0, pairs[n][1] = 1, n++;
    }
    return n;
}

/* Zeroes the modalities outside mask; returns 1 when row i keeps at least one. */
static int restrict_row(ff_batch *b, int i, int mask)
{
    size_t img = (size_t)b->C * (size_t)b->H * (size_t)b->W;
    if (!(mask & FF_MOD_IMG)) {
        memset(b->image + (size_t)i * img, 0, img * sizeof(float));
        b->image_present[i] = 0;
    }
    if (!(mask & FF_MOD_TXT))
        memset(b->text_ids + (size_t)i * (size_t)b->Lt, 0, (size_t)b->Lt * sizeof(int32_t));
    if (!(mask & FF_MOD_EHR)) {
        size_t off = (size_t)i * (size_t)b->Le, n = (size_t)b->Le * sizeof(int32_t);
        memset(b->ehr_code + off, 0, n);
        memset(b->ehr_val + off, 0, n);
        memset(b->ehr_time + off, 0, n);
    }
    if (!(mask & FF_MOD_TAB) && b->tab && b->tab_present) {
        memset(b->tab + (size_t)i * (size_t)b->F, 0, (size_t)b->F * sizeof(float));
        b->tab_present[i] = 0;
    }
    return ff_batch_present(b, i, 0) || ff_batch_present(b, i, 1) || ff_batch_present(b, i, 2) ||
           ff_batch_present(b, i, 3);
}

static void copy_row(ff_batch *b, int dst, int src)
{
    size_t img = (size_t)b->C * (size_t)b->H * (size_t)b->W, K = (size_t)b->K;
    memcpy(b->image + (size_t)dst * img, b->image + (size_t)src * img, img * sizeof(float));
    b->image_present[dst] = b->image_present[src];
    memcpy(b->text_ids + (size_t)dst * (size_t)b->Lt, b->text_ids + (size_t)src * (size_t)b->Lt,
           (size_t)b->Lt * sizeof(int32_t));
    size_t Le = (size_t)b->Le;
    memcpy(b->ehr_code + dst * Le, b->ehr_code + src * Le, Le * sizeof(int32_t));
    memcpy(b->ehr_val + dst * Le, b->ehr_val + src * Le, Le * sizeof(int32_t));
    memcpy(b->ehr_time + dst * Le, b->ehr_time + src * Le, Le * sizeof(int32_t));
    memcpy(b->labels + dst * K, b->labels + src * K, K * sizeof(float));
    memcpy(b->label_mask + dst * K, b->label_mask + src * K, K * sizeof(float));
    if (b->tab && b->tab_present) {
        size_t F = (size_t)b->F;
        memcpy(b->tab + dst * F, b->tab + src * F, F * sizeof(float));
        b->tab_present[dst] = b->tab_present[src];
    }
}

/* Restricts rows 0..n-1 to the mask; rows left with no modality are moved out (keep[i] = 0
 * for them) and the kept rows compacted to the front. Returns the kept count. */
static int restrict_batch(ff_batch *b, int n, int mask, uint8_t *keep)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        keep[i] = (uint8_t)(mask == FF_MOD_ALL || restrict_row(b, i, mask));
        if (keep[i]) {
            if (kept != i)
                copy_row(b, kept, i);
            kept++;
        }
    }
    return kept;
}

/* A batch view with B rows (the model computes B rows; padding rows carry no loss). */
static ff_batch batch_rows(const ff_batch *b, int B)
{
    ff_batch v = *b;
    v.B = B;
    return v;
}

static int prefix_trainable(const ff_cfg_strlist *tr, const char *name)
{
    if (!tr || tr->count == 0)
        return 1;
    for (size_t i = 0; i < tr->count; i++)
        if (strncmp(name, tr->items[i], strlen(tr->items[i])) == 0)
            return 1;
    return 0;
}

/* Copies of frozen tensors, restored after each step so nothing outside `trainable` moves
 * (not even by weight decay). */
typedef struct {
    float *saved;
    uint8_t *frozen; /* per tensor */
} freeze_state;

static int freeze_init(freeze_state *fz, ff_model *m, const ff_cfg_strlist *tr)
{
    memset(fz, 0, sizeof *fz);
    if (!tr || tr->count == 0)
        return FF_OK;
    size_t nt = ff_model_ntensors(m);
    fz->frozen = calloc(nt, 1);
    fz->saved = ff_alloc(ff_model_nparams(m) * sizeof(float));
    if (!fz->frozen || !fz->saved)
        return ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++)
        fz->frozen[i] = (uint8_t)!prefix_trainable(tr, ff_model_tensor(m, i)->name);
    memcpy(fz->saved, ff_model_params(m), ff_model_nparams(m) * sizeof(float));
    return FF_OK;
}

static void freeze_restore(freeze_state *fz, ff_model *m)
{
    if (!fz->frozen)
        return;
    float *p = ff_model_params(m);
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *t = ff_model_tensor(m, i);
        if (fz->frozen[i])
            memcpy(p + t->offset, fz->saved + t->offset, t->numel * sizeof(float));
    }
}

static void freeze_free(freeze_state *fz)
{
    free(fz->frozen);
    ff_free(fz->saved);
}

/* Adds the contrastive loss of b (mean over the modality pairs with at least two in-batch
 * pairs) and its gradient; after ff_model_forward on b. */
static int contrastive_step(ff_contrastive *c, const ff_local_opts *o, const ff_batch *b,
                            float *loss, int *usedp)
{
    int pairs[2][2], used = 0;
    int np = contrastive_pairs(o->modalities ? o->modalities : FF_MOD_ALL, pairs);
    float sum = 0, l[2] = {0, 0};
    int cnt[2] = {0, 0};
    int rc = FF_OK;
    /* the losses first, so each backward can carry the 1/used weight */
    for (int k = 0; rc == FF_OK && k < np; k++) {
        rc = ff_contrastive_forward(c, b, pairs[k][0], pairs[k][1], &l[k], &cnt[k]);
        used += rc == FF_OK && cnt[k] >= 2;
    }
    for (int k = 0; rc == FF_OK && k < np; k++) {
        if (cnt[k] < 2)
            continue;
        if (np > 1) /* the scratch holds the last pair: run this pair's forward again */
            rc = ff_contrastive_forward(c, b, pairs[k][0], pairs[k][1], &l[k], &cnt[k]);
        if (rc == FF_OK)
            rc = ff_contrastive_backward(c, b, 1.0f / (float)used);
        sum += l[k] / (float)used;
    }
    *loss = sum;
    *usedp = used;
    return rc;
}

static int any_label(const ff_batch *b)
{
    for (size_t i = 0; i < (size_t)b->B * (size_t)b->K; i++)
        if (b->label_mask[i] > 0)
            return 1;
    return 0;
}

/* One optimiser step on batch b: forward, the objective's backward, FedProx term, clip, step.
 * A batch with nothing to learn from (no known label, no pair) takes no step (*skipped = 1):
 * a step on a zero gradient would still apply weight decay, so a site without pairs for a
 * contrastive stage would shrink the encoders it cannot train. */
static int train_one(ff_model *m, ff_optim *opt, ff_contrastive *c, const ff_local_opts *o,
                     const ff_batch *b, int64_t step, float *loss, int *skipped)
{
    size_t n = ff_model_nparams(m);
    int K = b->K;
    float logits[64 * 8], sup = 0, con = 0;
    float *lg = b->B * K <= (int)FF_ARRAY_LEN(logits) ? logits : malloc((size_t)(b->B * K) * sizeof(float));
    if (!lg)
        return ff_error(FF_ENOMEM, "out of memory");
    ff_model_zero_grad(m);
    int rc = ff_model_forward(m, b, lg, &sup);
    int supervised = o->objective != FF_OBJ_CONTRASTIVE, learned = 0, used = 0;
    if (!supervised)
        sup = 0;
    /* a batch with no known label adds nothing to the supervised gradient: skip its pass */
    if (rc == FF_OK && supervised && any_label(b)) {
        rc = ff_model_backward(m, b);
        learned = 1;
    }
    if (rc == FF_OK && o->objective != FF_OBJ_SUPERVISED) {
        rc = contrastive_step(c, o, b, &con, &used);
        learned |= used > 0;
    }
    *loss = sup + con;
    *skipped = rc == FF_OK && !learned;
    if (*skipped) {
        if (lg != logits)
            free(lg);
        return FF_OK;
    }
    if (rc == FF_OK && !isfinite(*loss))
        rc = ff_error(FF_ENUMERIC, "local training: loss is %f at step %lld", (double)*loss,
                      (long long)step);
    if (rc == FF_OK && o->fedprox_mu > 0 && o->global)
        ff_fedprox_grad(ff_model_params(m), o->global, o->fedprox_mu, ff_model_grads(m), n);
    if (rc == FF_OK) {
        ff_grad_clip_norm(ff_model_grads(m), n, o->optim.clip_norm);
        rc = ff_optim_step(opt, m, ff_lr_schedule(&o->optim, step, o->steps));
    }
    if (lg != logits)
        free(lg);
    return rc;
}

/* Picks a site with probability proportional to its train size. */
static size_t pick_site(ff_rng *rng, ff_site *const *sites, size_t nsites, size_t total)
{
    uint32_t r = ff_rng_below(rng, (uint32_t)total);
    for (size_t i = 0; i < nsites; i++) {
        size_t c = ff_site_count(sites[i], FF_SPLIT_TRAIN);
        if (r < c)
            return i;
        r -= (uint32_t)c;
    }
    return nsites - 1;
}

typedef struct {
    uint32_t *order;
    size_t pos, count;
    uint64_t epoch;
    uint8_t *labelled; /* [count]; NULL = every label is used */
    int only_labelled; /* supervised steps draw the labelled patients only */
} site_cursor;

static void next_indices(const ff_site *s, site_cursor *c, uint64_t seed, uint32_t *idx, int n)
{
    for (int i = 0; i < n;) {
        if (c->pos == c->count) {
            ff_site_shuffle(s, FF_SPLIT_TRAIN, seed, c->epoch++, c->order);
            c->pos = 0;
        }
        uint32_t j = c->order[c->pos++];
        if (!c->only_labelled || !c->labelled || c->labelled[j])
            idx[i++] = j;
    }
}

/* Hides the labels of the rows whose patient is not labelled (before any compaction). */
static void hide_labels(ff_batch *b, const site_cursor *c, const uint32_t *idx, int n)
{
    for (int i = 0; c->labelled && i < n; i++)
        if (!c->labelled[idx[i]])
            memset(b->label_mask + (size_t)i * (size_t)b->K, 0, (size_t)b->K * sizeof(float));
}

/* Cursors over each site's train split, with the labelled patients of o->label_fraction. */
static int cursors_init(site_cursor *cur, ff_site *const *sites, size_t nsites,
                        const ff_local_opts *o)
{
    int partial = o->label_fraction > 0 && o->label_fraction < 1;
    for (size_t i = 0; i < nsites; i++) {
        cur[i].count = cur[i].pos = ff_site_count(sites[i], FF_SPLIT_TRAIN);
        if (!cur[i].count)
            continue;
        if (!(cur[i].order = calloc(cur[i].count, sizeof(uint32_t))))
            return ff_error(FF_ENOMEM, "out of memory");
        if (!partial)
            continue;
        if (!(cur[i].labelled = malloc(cur[i].count)))
            return ff_error(FF_ENOMEM, "out of memory");
        ff_local_labelled(sites[i], o->label_fraction, o->label_seed, cur[i].labelled);
        cur[i].only_labelled = o->objective == FF_OBJ_SUPERVISED;
    }
    return FF_OK;
}

int ff_local_train(ff_model *m, ff_site *const *sites, size_t nsites, const ff_local_opts *o,
                   ff_local_stats *st)
{
    if (o->dp)
        return ff_local_train_dp(m, sites, nsites, o, st);
    memset(st, 0, sizeof *st);
    size_t total = 0;
    for (size_t i = 0; i < nsites; i++)
        total += ff_site_count(sites[i], FF_SPLIT_TRAIN);
    if (total == 0)
        return ff_error(FF_EINVAL, "local training: no training examples");
    if (o->batch < 1 || o->batch > ff_model_max_batch(m))
        return ff_error(FF_EINVAL, "local training: batch %d outside 1..%d", o->batch,
                        ff_model_max_batch(m));
    const ff_data_shape *sh = ff_site_shape(sites[0]);
    double t0 = ff_now();
    ff_batch b = {0};
    ff_optim *opt = NULL;
    site_cursor *cur = calloc(nsites, sizeof *cur);
    uint32_t *idx = calloc((size_t)o->batch, sizeof *idx);
    uint8_t *keep = calloc((size_t)o->batch, 1);
    freeze_state fz = {0};
    ff_contrastive *con = NULL;
    int pairs[2][2];
    int rc = cur && idx && keep ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    if (rc == FF_OK)
        rc = cursors_init(cur, sites, nsites, o);
    if (rc == FF_OK && o->objective != FF_OBJ_SUPERVISED) {
        if (contrastive_pairs(o->modalities ? o->modalities : FF_MOD_ALL, pairs) == 0)
            rc = ff_error(FF_EINVAL, "local training: a contrastive objective needs two "
                                     "modalities (image and text, or EHR with another)");
        else
            rc = ff_contrastive_new(&con, m);
    }
    if (rc == FF_OK)
        rc = ff_site_batch_alloc(&b, o->batch, sh);
    if (rc == FF_OK)
        rc = ff_optim_new(&opt, m, &o->optim);
    if (rc == FF_OK)
        rc = freeze_init(&fz, m, o->trainable);
    ff_rng rng;
    ff_rng_init(&rng, o->seed, 0x10ca1);
    ff_aug aug = ff_aug_default();
    ff_progress prog;
    ff_progress_start(&prog, o->progress ? stderr : NULL, "train", (uint64_t)o->steps);
    double loss_sum = 0;
    for (int64_t step = 0; rc == FF_OK && step < o->steps; step++) {
        size_t si = nsites == 1 ? 0 : pick_site(&rng, sites, nsites, total);
        if (cur[si].count == 0)
            continue;
        next_indices(sites[si], &cur[si], o->seed + si, idx, o->batch);
        rc = ff_site_batch(sites[si], FF_SPLIT_TRAIN, idx, (size_t)o->batch, o->augment ? &aug : NULL,
                           &rng, &b);
        if (rc == FF_OK)
            hide_labels(&b, &cur[si], idx, o->batch);
        int n = rc == FF_OK ? restrict_batch(&b, o->batch, o->modalities, keep) : 0;
        if (rc == FF_OK && n == 0)
            continue;
        if (rc == FF_OK && o->modality_dropout > 0)
            rc = ff_modality_dropout(&b, o->modality_dropout, &rng);
        float loss = 0;
        int skipped = 0;
        ff_batch view = batch_rows(&b, n);
        if (rc == FF_OK)
            rc = train_one(m, opt, con, o, &view, step, &loss, &skipped);
        st->skipped += skipped;
        freeze_restore(&fz, m);
        if (rc != FF_OK)
            break;
        if (st->steps == 0)
            st->loss_first = loss;
        st->loss_last = loss;
        loss_sum += loss;
        st->steps++;
        st->examples += n;
        char extra[64];
        snprintf(extra, sizeof extra, "loss %.4f", loss);
        ff_progress_update(&prog, (uint64_t)step + 1, extra);
    }
    if (o->progress && rc == FF_OK)
        ff_progress_finish(&prog);
    st->loss_mean = st->steps ? loss_sum / (double)st->steps : 0;
    st->seconds = ff_now() - t0;
    for (size_t i = 0; cur && i < nsites; i++) {
        free(cur[i].order);
        free(cur[i].labelled);
    }
    free(cur);
    ff_contrastive_free(con);
    free(idx);
    free(keep);
    freeze_free(&fz);
    ff_optim_free(opt);
    ff_batch_free(&b);
    return rc;
}

int ff_local_predict(ff_model *m, const ff_site *s, ff_split split, int modalities,
                     float fallback, float *probs, float *labels, float *mask)
{
    const ff_data_shape *sh = ff_site_shape(s);
    size_t n = ff_site_count(s, split);
    int B = ff_model_max_batch(m), K = sh->K;
    ff_batch b;
    int rc = ff_site_batch_alloc(&b, B, sh);
    if (rc != FF_OK)
        return rc;
    uint32_t *idx = calloc((size_t)B, sizeof *idx);
    uint8_t *keep = calloc((size_t)B, 1);
    float *logits = calloc((size_t)(B * K), sizeof *logits);
    if (!idx || !keep || !logits)
        rc = ff_error(FF_ENOMEM, "out of memory");
    for (size_t start = 0; rc == FF_OK && start < n; start += (size_t)B) {
        int cnt = (int)FF_MIN((size_t)B, n - start);
        for (int i = 0; i < cnt; i++)
            idx[i] = (uint32_t)(start + (size_t)i);
        rc = ff_site_batch(s, split, idx, (size_t)cnt, NULL, NULL, &b);
        if (rc != FF_OK)
            break;
        /* labels before compaction: every patient keeps its own row in the output */
        memcpy(labels + start * (size_t)K, b.labels, (size_t)(cnt * K) * sizeof(float));
        memcpy(mask + start * (size_t)K, b.label_mask, (size_t)(cnt * K) * sizeof(float));
        int kept = restrict_batch(&b, cnt, modalities, keep);
        float loss;
        ff_batch view = batch_rows(&b, kept);
        if (kept > 0 && (rc = ff_model_forward(m, &view, logits, &loss)) != FF_OK)
            break;
        for (int i = 0, r = 0; i < cnt; i++) {
            ff_model_task_outputs(&sh->tasks, logits + (size_t)r * K, K, fallback, keep[i],
                                  probs + (start + (size_t)i) * (size_t)K);
            r += keep[i];
        }
    }
    free(idx);
    free(keep);
    free(logits);
    ff_batch_free(&b);
    return rc;
}
