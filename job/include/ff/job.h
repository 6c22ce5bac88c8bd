/*
 * ff/job.h — what a consortium asks its sites to run, shared by both sides: the training plan
 * (configs/plan.yaml) and its stages, the job hash a site approves before it trains, and the
 * site's side of a round (its update, the FedProx and SCAFFOLD client steps, and the round
 * state that refuses a stale or replayed task). The coordinator's engine (coordinator/) and
 * the hospital's training (client/) both link this library; neither links the other.
 *
 * Usage (a site checking the job it was sent):
 *
 *     ff_plan plan;
 *     char hex[FF_SHA256_HEX];
 *     if (ff_plan_load_str(&plan, "task plan", yaml, len, rounds) != FF_OK) { ... }
 *     if (ff_job_hash(&plan, model_yaml, model_len, hex) != FF_OK) { ... }
 *     // train if hex is in the site's accepted_jobs
 *     ff_plan_free(&plan);
 */
#ifndef FF_JOB_H
#define FF_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "ff/common.h"
#include "ff/privacy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest stage name + 1 (the coordinator's run and site names share it). */
#define FF_JOB_NAME_MAX 64

/* ---------------------------------------------------------------------------------------- */
/* Training plan (configs/plan.yaml): what the sites run; hashed into the job hash            */
/* ---------------------------------------------------------------------------------------- */

typedef enum { FF_OPT_ADAMW = 0, FF_OPT_SGD } ff_plan_optimizer;
typedef enum { FF_OBJ_SUPERVISED = 0, FF_OBJ_CONTRASTIVE, FF_OBJ_MULTITASK } ff_plan_objective;

#define FF_PLAN_DEFAULT_STAGE "default"

typedef struct {
    char name[FF_JOB_NAME_MAX];
    int objective;             /* ff_plan_objective */
    ff_cfg_strlist trainable;  /* name prefixes that train; empty = all parameters */
    ff_cfg_strlist modalities; /* img, txt, ehr; empty = all */
    int64_t rounds;
    int64_t local_steps; /* 0 = the plan's local_epochs/local_steps */
    double lr;           /* 0 = the plan's optimizer.lr */
} ff_plan_stage;

typedef struct {
    int64_t local_epochs; /* used when local_steps = 0 */
    int64_t local_steps;
    int64_t batch_size;
    struct {
        int name; /* ff_plan_optimizer */
        double lr, weight_decay, momentum;
    } optimizer;
    double fedprox_mu;
    double modality_dropout;
    /* FedAvg + local fine-tuning: after the last round each site trains the final global
     * model for steps local steps (0 = off) at lr (0 = optimizer.lr) on its own training rows
     * and evaluates that copy on its own test rows (never sent: the coordinator's model and
     * report are unchanged). */
    struct {
        int64_t steps;
        double lr;
    } fine_tune;
    ff_cfg_list stages; /* of ff_plan_stage; one default stage when the file has none */
    ff_privacy_cfg privacy; /* `privacy:` (docs/privacy.md); both levels off by default */
} ff_plan;

extern const ff_cfg_field ff_plan_schema[];

/* Loads a plan; with no `stages` key one stage FF_PLAN_DEFAULT_STAGE (supervised, every
 * parameter, rounds = default_rounds) is made. Release with ff_plan_free. */
int ff_plan_load(ff_plan *plan, const char *path, int64_t default_rounds) FF_WARN_UNUSED;
int ff_plan_load_str(ff_plan *plan, const char *name, const char *yaml, size_t len,
                     int64_t default_rounds) FF_WARN_UNUSED;
void ff_plan_free(ff_plan *plan);
/* A canonical text of the plan (fixed key order, %.17g numbers): what the job hash covers.
 * Caller frees *out with free(). */
int ff_plan_canonical(const ff_plan *plan, char **out, size_t *len) FF_WARN_UNUSED;
/* Job hash = SHA-256(SHA-256(model config bytes) || SHA-256(canonical plan)), lower-case hex:
 * what a site approves before it trains. */
int ff_job_hash(const ff_plan *plan, const void *model_config, size_t model_config_len,
                char out[FF_SHA256_HEX]) FF_WARN_UNUSED;
/* The plan's `privacy:` section against the run it is used in: the sites of the consortium
 * (δ < 1/sites), the ε already spent (a resumed run), and the mechanism that secure
 * aggregation allows (gaussian needs it off: the coordinator clips single updates;
 * distributed_discrete_gaussian needs it on, with bits ≤ 32, SecAgg's lane width).
 * Record-level DP-SGD is not part of the federated round yet, so privacy.record.enabled is
 * refused rather than ignored. Errors are FF_ECONFIG "NAME:LINE:COL: privacy.LEVEL.KEY: why"
 * placed in yaml (the plan text, name its file). The context-free checks already ran in
 * ff_plan_load. */
int ff_plan_check_privacy(const ff_plan *plan, const char *name, const char *yaml, size_t len,
                          const ff_privacy_context *ctx, int secure_aggregation) FF_WARN_UNUSED;
/* The stage that round r (1-based) runs under: stages run in order, each for its rounds; the
 * last stage continues if the run has more rounds. Returns the stage index. */
size_t ff_plan_stage_of_round(const ff_plan *plan, int64_t round);

/* ---------------------------------------------------------------------------------------- */
/* The site's side of a round: its update, FedProx and SCAFFOLD steps, its round state        */
/* ---------------------------------------------------------------------------------------- */

/* update = params − global. */
void ff_round_update(float *update, const float *params, const float *global, size_t n);
/* Adds the FedProx proximal gradient μ (w − w_global) to grads (Li et al. 2020). */
void ff_fedprox_grad(const float *params, const float *global, float mu, float *grads, size_t n);
/* SCAFFOLD client step correction: grads += c − c_i (n floats each). */
void ff_scaffold_correct(float *grads, const float *c, const float *ci, size_t n);
/* SCAFFOLD option II after K local SGD steps of rate lr from x to y: the new client control
 * variate c_i⁺ = c_i − c + (x − y) / (K lr); writes dci = c_i⁺ − c_i (what the site sends)
 * and updates ci in place. */
void ff_scaffold_control_delta(float *dci, float *ci, const float *c, const float *x,
                               const float *y, int64_t K, double lr, size_t n);
/* Per-site layers: params ← global except where local[j] (the site's own values stay). */
void ff_round_keep_local(float *params, const float *global, const unsigned char *local, size_t n);

/* The client's view of the rounds: accepts a task only for a round newer than the last one
 * it finished (or the same round and a newer retry attempt), so a replayed or stale task is
 * refused. */
typedef struct {
    int64_t round;   /* round of the task in progress, 0 = none */
    int64_t attempt;
    int64_t last_done; /* last round whose update was sent */
    int busy;
} ff_round_state;

void ff_round_init(ff_round_state *s);
/* FF_OK and the state moves to (round, attempt); FF_ESTATE naming both rounds when stale. */
int ff_round_begin(ff_round_state *s, int64_t round, int64_t attempt) FF_WARN_UNUSED;
/* Marks the task's update sent; FF_ESTATE when round is not the one in progress. */
int ff_round_done(ff_round_state *s, int64_t round) FF_WARN_UNUSED;


#ifdef __cplusplus
}
#endif

#endif /* FF_JOB_H */
