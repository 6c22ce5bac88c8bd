/* fedfuse explain: how faithful is the explanation? A deletion curve per task (Samek et al.,
 * "Evaluating the visualization of what a deep neural network has learned", 2017; RISE's
 * "deletion" metric, Petsiuk et al. 2018): remove the items the occlusion view ranked as
 * raising the risk most, cumulatively, 1, 2, ... M at a time, and follow the calibrated
 * probability; do the same for random orders of the same items. If the explanation points at
 * what the model uses, the attribution-ordered curve falls faster than the random ones.
 *
 *   faithfulness = 1 - AUC(attribution order) / mean AUC(random orders)
 *
 * over steps 0..M (AUC = mean calibrated probability along the curve): 0 = no better than
 * random, towards 1 = removing the named items takes the risk away, negative = worse than
 * random. The random orders come from a fixed seed, so a rerun prints the same number. */
#include <stdlib.h>
#include <string.h>

#include "explain_internal.h"

enum { FAITH_STEPS = 20, FAITH_RANDOM = 8 };

typedef struct {
    const ex_variant *v;
    double delta;
} faith_item;

static int cmp_delta_desc(const void *a, const void *b)
{
    double x = ((const faith_item *)a)->delta, y = ((const faith_item *)b)->delta;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* xorshift64*: a reproducible shuffle, not a secret. */
static uint64_t faith_rand(uint64_t *s)
{
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Variants for one task: row 0..M of curve c (c = 0 attribution order, 1.. random) removes the
 * first m items of that order. sets holds the orders (M + 1 pointers per curve is enough:
 * variant m borrows the first m entries of its order). */
static void faith_variants(const faith_item *it, size_t n, int M, uint64_t seed,
                           const ex_variant **orders, ex_variant *var)
{
    for (int c = 0; c <= FAITH_RANDOM; c++) {
        const ex_variant **o = orders + (size_t)c * n;
        for (size_t i = 0; i < n; i++)
            o[i] = it[i].v;
        for (size_t i = n; c > 0 && i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)(faith_rand(&seed) % i);
            const ex_variant *t = o[i - 1];
            o[i - 1] = o[j], o[j] = t;
        }
        for (int m = 1; m <= M; m++)
            var[(size_t)c * (size_t)M + (size_t)(m - 1)] =
                (ex_variant){.kind = V_SET, .set = o, .nset = m};
    }
}

static double faith_prob(const ex_state *st, int k, const ex_variant *v)
{
    return v->ok ? ex_shown(st, k, v->logit[k], v->out[k])
                 : ex_shown(st, k, st->logit0[k], st->out0[k]);
}

/* One task's curves and score, as JSON. */
static json_t *faith_json(const ex_state *st, int k, const ex_variant *var, int M)
{
    double p0 = ex_shown(st, k, st->logit0[k], st->out0[k]), auc_a = p0, auc_r = p0;
    json_t *attr = json_array(), *rnd = json_array(), *steps = json_array();
    json_array_append_new(steps, json_integer(0));
    json_array_append_new(attr, json_real(p0));
    json_array_append_new(rnd, json_real(p0));
    for (int m = 1; m <= M; m++) {
        double a = faith_prob(st, k, &var[m - 1]), r = 0;
        for (int c = 1; c <= FAITH_RANDOM; c++)
            r += faith_prob(st, k, &var[(size_t)c * (size_t)M + (size_t)(m - 1)]);
        r /= FAITH_RANDOM;
        auc_a += a, auc_r += r;
        json_array_append_new(steps, json_integer(m));
        json_array_append_new(attr, json_real(a));
        json_array_append_new(rnd, json_real(r));
    }
    auc_a /= M + 1, auc_r /= M + 1;
    double score = auc_r > 0 ? 1.0 - auc_a / auc_r : 0.0;
    return json_pack("{s:s,s:o,s:o,s:o,s:f,s:f,s:f,s:i}", "task", st->sh->tasks.t[k].name,
                     "removed", steps, "attribution_order", attr, "random_order", rnd,
                     "deletion_auc", auc_a, "deletion_auc_random", auc_r, "faithfulness",
                     score, "random_orders", FAITH_RANDOM);
}

int ex_faithfulness(ex_state *st, const ex_variant *v, size_t n, json_t *ex)
{
    faith_item *it = calloc(n ? n : 1, sizeof *it);
    const ex_variant **orders = calloc((n ? n : 1) * (FAITH_RANDOM + 1), sizeof *orders);
    ex_variant *var = calloc((size_t)(FAITH_RANDOM + 1) * FAITH_STEPS, sizeof *var);
    json_t *out = json_array();
    int rc = it && orders && var ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    for (int k = 0; rc == FF_OK && k < st->K; k++) {
        /* the score is a ratio of probabilities (binary risk, multiclass class probability);
         * a regression value has no such scale */
        if (st->sh->tasks.t[k].kind == FF_TASK_REGRESSION)
            continue;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (v[i].ok && (v[i].kind == V_WORD || v[i].kind == V_PATCH || v[i].kind == V_EVENT))
                it[m++] = (faith_item){&v[i], (double)st->logit0[k] - (double)v[i].logit[k]};
        int M = (int)(m < FAITH_STEPS ? m : FAITH_STEPS);
        if (M == 0)
            break;
        qsort(it, m, sizeof *it, cmp_delta_desc);
        faith_variants(it, m, M, 0x9e3779b97f4a7c15ULL + (uint64_t)k, orders, var);
        rc = ex_run_variants(st, var, (size_t)(FAITH_RANDOM + 1) * (size_t)M);
        if (rc == FF_OK)
            json_array_append_new(out, faith_json(st, k, var, M));
    }
    if (rc == FF_OK)
        json_object_set_new(ex, "faithfulness", out);
    else
        json_decref(out);
    free(it);
    free(orders);
    free(var);
    return rc;
}
