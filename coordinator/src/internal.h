/* The engine's state, shared by engine.c and checkpoint.c only. */
#ifndef FF_COORD_INTERNAL_H
#define FF_COORD_INTERNAL_H

#include "ff/coordinator.h"

#define COORD_MAX_PHASES 24
#define COORD_MAX_HOOKS 8

enum { BI_NONE = 0, BI_SELECT, BI_TRAIN, BI_AGGREGATE, BI_UPDATE, BI_EVALUATE, BI_CHECKPOINT };

typedef struct {
    ff_coord_phase def;
    int builtin;
} coord_phase;

struct ff_coord {
    ff_coord_config cfg;
    size_t n;
    const ff_coord_tensor *tensors;
    size_t ntensors;
    float *global;
    char **names;
    size_t nsites;
    ff_strategy strat;
    ff_rng rng;
    char config_hash[FF_SHA256_HEX];

    double (*clock)(void *ud);
    void *clock_ud;
    const ff_plan *plan;
    char job_hash[FF_SHA256_HEX];
    FILE *progress_out;
    ff_progress prog;
    char prog_label[64];

    coord_phase phases[COORD_MAX_PHASES];
    size_t nphases;
    struct {
        ff_coord_hook fn;
        void *ud;
    } hooks[COORD_MAX_HOOKS];
    size_t nhooks;
    ff_coord_mechanism mech;
    ff_coord_commit_check commit_check; /* NULL: a pending checkpoint is kept on resume */
    void *commit_ud;

    /* run state */
    int state;
    int run_started;
    int resume_done;
    int resumed;
    int stop_status;
    char stop_msg[768];
    int64_t round; /* current round; when idle, the last finished one */
    int64_t attempt;
    size_t phase_idx;
    double phase_open_t, phase_deadline;
    double round_t0;

    /* per round (per attempt) */
    int *selected;
    size_t nselected;
    unsigned char *expected, *done, *has_update;
    unsigned char *site_state; /* ff_coord_presence per site (not per round) */
    int select_all;            /* this attempt selected every site: gone ones are waited for */
    int *prev_done;
    size_t nprev;
    int *pending;
    size_t npending, ndone;
    float **updates;
    double *weights;
    float *avg;
    double *acc; /* aggregation accumulator, allocated at the first aggregate */
    const float **sel_updates; /* scratch: the updates of a round, in site order */
    double *sel_weights;
    float *provided;
    double provided_weight;
    size_t provided_sites; /* sites in the provided sum; 0 = unknown */
    int have_provided;
    double eval_w, eval_loss_acc, eval_auroc_acc, eval_auroc_w;
    size_t eval_sites;
    double pooled_auroc;
    int have_pooled;
    size_t r_updates, r_dropouts, r_refusals;
    double r_examples, r_update_norm, r_eval_loss, r_auroc;
    int64_t r_attempts;

    uint64_t refusals[FF_REFUSE_COUNT];
    double last_auroc;
    char model_hash[FF_SHA256_HEX];
};

double coord_now(const ff_coord *c);
int coord_find_phase(const ff_coord *c, const char *name); /* index or -1 */
void coord_emit(ff_coord *c, int type, const char *phase, const char *site, int reason,
                int64_t count, const char *hash, const char *detail);
void coord_hash_floats(const float *x, size_t n, char out[FF_SHA256_HEX]);
/* A server strategy module: whether it keeps the moments m and v (checkpointed), and its
 * step on the averaged update. One per file under strategies/. */
typedef struct {
    const char *name;
    int moments;
    void (*apply)(ff_strategy *s, float *w, const float *d);
} coord_strategy_ops;
extern const coord_strategy_ops coord_fedavg_ops, coord_fedprox_ops, coord_fedadam_ops,
    coord_fedyogi_ops, coord_fedadagrad_ops, coord_scaffold_ops, coord_cyclic_ops;

/* strategy.c: acc = Σ weights[i] updates[i] in double, in the given order */
void coord_weighted_sum(double *acc, const float *const *updates, const double *weights,
                        size_t k, size_t n);
/* checkpoint.c */
/* Writes the round's checkpoint complete to checkpoint.safetensors.next; path_out gets the
 * name it will have once coord_checkpoint_publish renames it into place. */
int coord_checkpoint_write(ff_coord *c, char *path_out, size_t path_len) FF_WARN_UNUSED;
int coord_checkpoint_publish(ff_coord *c) FF_WARN_UNUSED;
int coord_checkpoint_load(ff_coord *c, int *found) FF_WARN_UNUSED;
int coord_csv_append(ff_coord *c) FF_WARN_UNUSED;
int coord_csv_trim(ff_coord *c) FF_WARN_UNUSED;
int coord_save_model(const ff_coord *c, const char *path) FF_WARN_UNUSED;

#endif
