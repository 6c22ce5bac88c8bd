/* Commands of the client library: centralised and local-only baselines (`fedfuse train`) and
 * the evaluation report of any model on site data (`fedfuse eval`). */
#include "commands.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ff/client.h"

static int cmd_train(int argc, char **argv);
static int cmd_eval(int argc, char **argv);
static int cmd_explain(int argc, char **argv);

FF_CLI_GROUP_DEFINE(client,
    {"train", "train centrally on pooled sites, or on each site alone (--local)", cmd_train,
     "usage: fedfuse train --config MODEL.yaml --data SITE_DIR... [--local]\n"
     "                     [--steps N] [--batch B] [--lr LR] [--seed S] [--modalities LIST]\n"
     "                     [--dropout P] [--threads T] [--init W.safetensors]\n"
     "                     [--init-partial W.safetensors] [--label-fraction F]\n"
     "                     [--plan PLAN.yaml [--stages N] [--resume]] --out DIR\n"
     "  The baselines a federated run is compared with, on the same model and budget.\n"
     "  Pooled (default): one model trained on the train splits of all sites together\n"
     "  (each batch from one site, drawn in proportion to its size), evaluated on every\n"
     "  site's test split and on the pooled test predictions. --local: one model per site,\n"
     "  trained on that site alone and evaluated on every site's test split.\n"
     "  --modalities img,txt,ehr restricts what the model sees (single-modality baselines;\n"
     "  patients left with no modality score 0.5). Defaults: 300 steps, batch 32, lr 1e-3,\n"
     "  seed 1. Writes DIR/model.safetensors (DIR/local-<site>/ with --local),\n"
     "  DIR/metrics.json, DIR/report.html. Prints `auroc_<task> X` for the pooled test set.\n"
     "  --dp-sigma S --dp-clip C --dp-delta D [--dp-epsilon-budget E]: record-level DP-SGD\n"
     "  (Poisson sampling at q = batch / patients, per-patient clip C, noise S*C; see\n"
     "  docs/privacy.md); prints `epsilon X` at delta D (refused past the budget E).\n"
     "  Per-patient gradient norms by ghost clipping; --dp-exact uses batch-of-1 passes.\n"
     "  --init loads every parameter from W (all must be there); --init-partial loads the\n"
     "  tensors W shares with the model by name and shape (e.g. pre-trained encoders) and\n"
     "  prints what was loaded, kept as initialised and ignored.\n"
     "  --label-fraction F: only ceil(F * n) training patients of each site keep their\n"
     "  labels (fixed by --seed); supervised steps use those, contrastive steps everyone.\n"
     "  --plan PLAN.yaml: run the plan's stages in order (objective, trainable prefixes,\n"
     "  modalities, rounds x local steps, lr and batch from the plan; --steps, --batch and\n"
     "  --lr are not used). After each stage: DIR/stage-<i>.safetensors and\n"
     "  DIR/plan-state.json; --resume continues after the last finished stage; --stages N\n"
     "  stops after stage N. After a contrastive stage with images and notes it prints\n"
     "  image->text retrieval on the test splits (`retrieval_top1_<stage> X`, top5).\n"
     "  Contrastive stages need a model config with `projection: p` (configs/plan-pretrain.yaml,\n"
     "  docs/training.md).\n"},
    {"eval", "evaluate a model on site data: metrics.json and report.html", cmd_eval,
     "usage: fedfuse eval --config MODEL.yaml --weights W.safetensors --data SITE_DIR...\n"
     "                    [--split test|val|train] [--bootstrap N] [--seed S] [--retrieval]\n"
     "                    [--operating-point RULE:TARGET] [--predictions] --out DIR\n"
     "  Exact metrics per declared task for each site and pooled: binary tasks AUROC, AUPRC,\n"
     "  Brier, ECE, calibration slope, sensitivity at 90% specificity, decision curves,\n"
     "  fairness by every declared attribute, and alert rate, sensitivity, specificity and\n"
     "  PPV at each task's operating point, chosen on the validation split pooled over the\n"
     "  sites as the federated report does: --operating-point specificity:0.9 (default),\n"
     "  sensitivity:T, alert_rate:T or threshold:T (a fixed threshold);\n"
     "  multiclass accuracy and macro/per-class AUROC;\n"
     "  regression MAE, RMSE, R²; survival C-index and time-dependent AUROC. Prints\n"
     "  `METRIC_TASK X` (pooled). Writes DIR/metrics.json (schema: docs/evaluation.md) and\n"
     "  DIR/report.html (self-contained); --predictions also DIR/predictions.csv (site,\n"
     "  patient_id, the model's outputs per task). Runs locally at the hospital: no data\n"
     "  leaves the machine.\n"
     "  --retrieval (models with projection heads): also image->text retrieval on the split,\n"
     "  each site's patients as candidates (`retrieval_top1 X`, `retrieval_top5 X`).\n"},
    {"explain", "explain one patient's prediction (local, for clinicians)", cmd_explain,
     "usage: fedfuse explain --config MODEL.yaml --weights W.safetensors --site SITE_DIR\n"
     "                       --patient ID [--k 5] [--lab CODE] [--word WORD] [--top N]\n"
     "                       [--out DIR] [--json]\n"
     "  For one patient of SITE_DIR: the prediction per task with its calibrated probability\n"
     "  (temperature scaling fitted on the site's val split); the note words, image patches\n"
     "  and record events that changed the prediction most when removed (occlusion), with\n"
     "  the fusion's attention as a second view; the prediction with each modality removed;\n"
     "  the k most similar training patients of the site (distance of the fused embedding)\n"
     "  with their outcomes; counterfactuals: --lab CODE (that lab at a normal value, bins\n"
     "  5 and 6, or with no value) and --word WORD (the word absent from the note).\n"
     "  Writes DIR/explain.html (the page), DIR/explain.json, DIR/heatmap.png (the first\n"
     "  task's signed map) and DIR/heatmap-TASK.png (default DIR: explain-out). --json prints\n"
     "  the JSON instead of the summary. Runs locally: the patient's words and codes are\n"
     "  printed to this terminal only; nothing of them goes to the log.\n"})

#define MAX_SITES 64

typedef struct {
    ff_model_config mc;
    ff_site *sites[MAX_SITES];
    char names[MAX_SITES][128];
    const char *namep[MAX_SITES];
    size_t n;
} site_set;

static void sites_free(site_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        ff_site_free(s->sites[i]);
    s->n = 0;
}

static int sites_load(site_set *s, const char *cfg, const char **dirs, int n)
{
    memset(s, 0, sizeof *s);
    int rc = ff_model_config_load(cfg, &s->mc);
    if (rc != FF_OK)
        return rc;
    ff_data_shape shape;
    ff_client_shape(&s->mc, &shape);
    ff_site_opts so = ff_site_opts_default();
    for (int i = 0; i < n; i++) {
        ff_load_report rep;
        rc = ff_site_load(&s->sites[i], dirs[i], &shape, &so, &rep);
        if (rc != FF_OK) {
            sites_free(s);
            return ff_error_prefix(rc, "%s: ", dirs[i]);
        }
        char tmp[512];
        ff_strlcpy(tmp, dirs[i], sizeof tmp);
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/')
            tmp[--l] = '\0';
        ff_strlcpy(s->names[i], basename(tmp), sizeof s->names[i]);
        s->namep[i] = s->names[i];
        s->n++;
        ff_load_report_log(&rep, s->names[i]);
    }
    return FF_OK;
}

static void print_headlines(const json_t *j, const ff_task_set *ts);

/* The federated report's default rule (configs/coordinator.yaml report.operating_point). */
static const ff_eval_op_point default_op = {FF_OP_SPECIFICITY, 0.9};

/* --operating-point RULE:TARGET (a rule of ff_eval_op_rule_names; a target in (0, 1)). */
static int parse_op(const char *s, ff_eval_op_point *op)
{
    *op = default_op;
    if (!s)
        return FF_OK;
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : 0;
    int rule = -1;
    for (int k = 0; colon && ff_eval_op_rule_names[k]; k++)
        if (strlen(ff_eval_op_rule_names[k]) == len && strncmp(s, ff_eval_op_rule_names[k], len) == 0)
            rule = k;
    char *end = NULL;
    double v = colon ? strtod(colon + 1, &end) : 0;
    if (rule < 0 || !end || end == colon + 1 || *end || !(v > 0 && v < 1))
        return ff_error(FF_EINVAL, "--operating-point '%s': expected RULE:TARGET with RULE one of "
                        "threshold, specificity, sensitivity, alert_rate and TARGET in (0, 1), "
                        "e.g. specificity:0.9", s);
    op->rule = (ff_op_rule)rule;
    op->target = v;
    return FF_OK;
}

/* Evaluates m on every site's split; writes metrics.json and report.html under dir and
 * prints the pooled AUROC per task. */
static int evaluate_to(ff_model *m, site_set *s, ff_split split, const ff_eval_opts *eo,
                       const ff_eval_op_point *op, int modalities, const char *dir, json_t *extra)
{
    char jpath[1024], hpath[1024];
    snprintf(jpath, sizeof jpath, "%s/metrics.json", dir);
    snprintf(hpath, sizeof hpath, "%s/report.html", dir);
    json_t *j = NULL;
    int rc = ff_client_evaluate(m, s->sites, s->namep, s->n, split, modalities, eo, op, hpath,
                                &j);
    if (rc != FF_OK)
        return rc;
    if (extra)
        json_object_update(j, extra);
    rc = ff_eval_json_write(j, jpath);
    print_headlines(j, &s->mc.task_set);
    json_decref(j);
    return rc;
}

/* `METRIC_TASK X` per task for the pooled split: auroc for binary tasks; accuracy and
 * macro_auroc, mae/rmse/r2, cindex and td_auroc for the other kinds; "undefined (why)" when
 * a metric is. */
static void print_headlines(const json_t *j, const ff_task_set *ts)
{
    static const char *const keys[FF_TASK_KIND_COUNT][3] = {
        {"auroc", NULL, NULL}, {"accuracy", "macro_auroc", NULL}, {"mae", "rmse", "r2"},
        {"cindex", "td_auroc", NULL}};
    for (int k = 0; k < ts->n; k++) {
        const ff_task *t = &ts->t[k];
        json_t *pooled = json_object_get(json_object_get(json_object_get(j, "tasks"), t->name),
                                         "pooled");
        for (int q = 0; q < 3 && keys[t->kind][q]; q++) {
            const char *key = keys[t->kind][q];
            json_t *v = json_object_get(pooled, key);
            const char *why =
                json_string_value(json_object_get(json_object_get(pooled, "undefined"), key));
            if (json_is_number(v))
                printf("%s_%s %.4f\n", key, t->name, json_number_value(v));
            else if (why)
                printf("%s_%s undefined (%s)\n", key, t->name, why);
            else
                printf("%s_%s undefined\n", key, t->name);
        }
    }
}

/* DIR/predictions.csv: site, patient_id, then the model's outputs per task (binary and
 * regression `TASK`, multiclass `TASK.pC` per class, survival `TASK.risk`). Patient ids and
 * outputs: written at the hospital, for its own checks; never logged. */
static int write_predictions(ff_model *m, const site_set *s, ff_split split, const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/predictions.csv", dir);
    const ff_task_set *ts = &s->mc.task_set;
    FILE *f = fopen(path, "w");
    if (!f)
        return ff_error(FF_EIO, "%s: cannot write", path);
    fprintf(f, "site,patient_id");
    for (int k = 0; k < ts->n; k++) {
        const ff_task *t = &ts->t[k];
        if (t->kind == FF_TASK_MULTICLASS)
            for (int c = 0; c < (int)t->classes; c++)
                fprintf(f, ",%s.p%d", t->name, c);
        else
            fprintf(f, ",%s%s", t->name, t->kind == FF_TASK_SURVIVAL ? ".risk" : "");
    }
    fputc('\n', f);
    int rc = FF_OK, K = ts->width;
    for (size_t i = 0; rc == FF_OK && i < s->n; i++) {
        size_t n = ff_site_count(s->sites[i], split);
        float *p = malloc((n + 1) * (size_t)K * sizeof *p), *y = malloc((n + 1) * (size_t)K * sizeof *y);
        float *mk = malloc((n + 1) * (size_t)K * sizeof *mk);
        rc = p && y && mk ? ff_local_predict(m, s->sites[i], split, FF_MOD_ALL, 0.5f, p, y, mk)
                          : ff_error(FF_ENOMEM, "out of memory");
        for (size_t r = 0; rc == FF_OK && r < n; r++) {
            fprintf(f, "%s,%s", s->namep[i], ff_site_patient_id(s->sites[i], split, r));
            for (int k = 0; k < ts->n; k++) {
                const ff_task *t = &ts->t[k];
                int w = t->kind == FF_TASK_SURVIVAL ? 1 : ff_task_width(t);
                for (int c = 0; c < w; c++)
                    fprintf(f, ",%.9g", (double)p[r * (size_t)K + (size_t)(t->col + c)]);
            }
            fputc('\n', f);
        }
        free(p);
        free(y);
        free(mk);
    }
    if (fclose(f) != 0 && rc == FF_OK)
        rc = ff_error(FF_EIO, "%s: write failed", path);
    return rc;
}

typedef struct {
    const char *cfg, *out, *init, *init_partial, *mods, *plan;
    const char *dirs[MAX_SITES];
    int ndirs, local, resume;
    int64_t steps, batch, seed, threads, stages;
    double lr, dropout, label_fraction;
    int dp, dp_exact;
    double dp_sigma, dp_clip, dp_delta, dp_budget;
} train_args;

static int parse_train(ff_cli_args *a, train_args *t)
{
    memset(t, 0, sizeof *t);
    t->cfg = ff_cli_opt(a, "--config");
    t->out = ff_cli_opt(a, "--out");
    t->init = ff_cli_opt(a, "--init");
    t->init_partial = ff_cli_opt(a, "--init-partial");
    t->plan = ff_cli_opt(a, "--plan");
    t->resume = ff_cli_flag(a, "--resume");
    t->mods = ff_cli_opt(a, "--modalities");
    t->local = ff_cli_flag(a, "--local");
    t->dp_exact = ff_cli_flag(a, "--dp-exact");
    t->ndirs = ff_cli_opt_all(a, "--data", t->dirs, MAX_SITES);
    int rc = ff_cli_opt_i64(a, "--steps", 300, &t->steps);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--batch", 32, &t->batch);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--seed", 1, &t->seed);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--threads", 1, &t->threads);
    if (rc == FF_OK)
        rc = ff_cli_opt_f64(a, "--lr", 1e-3, &t->lr);
    if (rc == FF_OK)
        rc = ff_cli_opt_f64(a, "--dropout", 0.0, &t->dropout);
    if (rc == FF_OK)
        rc = ff_cli_opt_f64(a, "--label-fraction", 1.0, &t->label_fraction);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(a, "--stages", 0, &t->stages);
    if (rc == FF_OK)
        rc = ff_cli_opt_f64(a, "--dp-sigma", NAN, &t->dp_sigma);
    t->dp = !isnan(t->dp_sigma); /* DP-SGD when --dp-sigma is given */
    if (rc == FF_OK)
        rc = ff_cli_opt_f64(a, "--dp-clip", 1.0, &t->dp_clip);
    if (rc == FF_OK)
        rc = ff_cli_opt_f64(a, "--dp-delta", 1e-5, &t->dp_delta);
    if (rc == FF_OK)
        rc = ff_cli_opt_f64(a, "--dp-epsilon-budget", 0.0, &t->dp_budget);
    if (rc == FF_OK)
        rc = ff_cli_check_unused(a);
    if (rc == FF_OK && t->dp && !(t->dp_sigma > 0))
        rc = ff_error(FF_EINVAL, "--dp-sigma %g: expected > 0", t->dp_sigma);
    if (rc == FF_OK && t->dp && !(t->dp_clip > 0 && isfinite(t->dp_clip)))
        rc = ff_error(FF_EINVAL, "--dp-clip %g: expected a finite value > 0", t->dp_clip);
    if (rc == FF_OK && t->dp && !(t->dp_delta > 0 && t->dp_delta < 1))
        rc = ff_error(FF_EINVAL, "--dp-delta %g: expected 0 < delta < 1", t->dp_delta);
    if (rc == FF_OK && !(t->dp_budget >= 0))
        rc = ff_error(FF_EINVAL, "--dp-epsilon-budget %g: expected > 0", t->dp_budget);
    if (rc == FF_OK && (!t->cfg || !t->out || t->ndirs == 0))
        rc = ff_error(FF_EINVAL, "train needs --config, --data and --out (see 'fedfuse train --help')");
    if (rc == FF_OK && (t->steps < 1 || t->batch < 1 || t->batch > 1024))
        rc = ff_error(FF_EINVAL, "--steps and --batch (1..1024) must be positive");
    if (rc == FF_OK && (t->threads < 1 || t->threads > FF_MODELS_MAX_THREADS))
        rc = ff_error(FF_EINVAL, "--threads %lld: outside [1, %d]", (long long)t->threads,
                      FF_MODELS_MAX_THREADS);
    if (rc == FF_OK && !(t->lr > 0 && t->lr < 1))
        rc = ff_error(FF_EINVAL, "--lr %g: expected 0 < lr < 1", t->lr);
    if (rc == FF_OK && !(t->dropout >= 0 && t->dropout < 1))
        rc = ff_error(FF_EINVAL, "--dropout %g: expected 0 <= p < 1", t->dropout);
    if (rc == FF_OK && !(t->label_fraction > 0 && t->label_fraction <= 1))
        rc = ff_error(FF_EINVAL, "--label-fraction %g: expected 0 < F <= 1", t->label_fraction);
    if (rc == FF_OK && t->init && t->init_partial)
        rc = ff_error(FF_EINVAL, "--init and --init-partial: give one");
    if (rc == FF_OK && !t->plan && (t->resume || t->stages))
        rc = ff_error(FF_EINVAL, "--resume and --stages need --plan");
    if (rc == FF_OK && t->stages < 0)
        rc = ff_error(FF_EINVAL, "--stages %lld: expected >= 1", (long long)t->stages);
    if (rc == FF_OK && t->plan && (t->local || t->dp))
        rc = ff_error(FF_EINVAL, "--plan: not with --local or DP-SGD");
    return rc;
}

/* A model with max batch B, initialised from the seed, then --init or --init-partial. */
static int model_start(const train_args *t, const ff_model_config *mc, int B, ff_model **out)
{
    int rc = ff_model_new(out, mc, B);
    if (rc == FF_OK)
        rc = ff_model_init(*out, (uint64_t)t->seed);
    if (rc == FF_OK && t->init)
        rc = ff_model_load(*out, t->init);
    if (rc == FF_OK && t->init_partial) {
        ff_model_load_report rep;
        rc = ff_model_load_partial(*out, t->init_partial, &rep);
        if (rc == FF_OK)
            ff_model_load_report_print(&rep, t->init_partial, stdout);
        ff_model_load_report_free(&rep);
    }
    return rc;
}

/* Trains one model on sites[0..n) and evaluates it on every site of s. */
static int train_one_model(const train_args *t, site_set *s, ff_site *const *train_sites,
                           size_t n, int modalities, const char *dir)
{
    ff_model *m = NULL;
    int rc = ff_mkdir_p(dir, 0755);
    if (rc == FF_OK)
        rc = model_start(t, &s->mc, (int)t->batch, &m);
    ff_local_opts o;
    memset(&o, 0, sizeof o);
    o.steps = t->steps;
    o.batch = (int)t->batch;
    ff_optim_config_default(&o.optim);
    o.optim.lr = (float)t->lr;
    o.optim.warmup = t->steps / 20;
    o.modality_dropout = (float)t->dropout;
    o.modalities = modalities;
    o.augment = 1;
    o.seed = (uint64_t)t->seed;
    o.label_fraction = t->label_fraction;
    o.label_seed = (uint64_t)t->seed;
    o.progress = 1;
    o.dp = t->dp;
    o.dp_sigma = t->dp_sigma;
    o.dp_clip = t->dp_clip;
    o.dp_exact = t->dp_exact;
    o.dp_delta = t->dp_delta;
    o.dp_epsilon_budget = t->dp_budget;
    ff_local_stats st = {0};
    if (rc == FF_OK)
        rc = ff_local_train(m, train_sites, n, &o, &st);
    if (rc == FF_OK) {
        FF_LOG_INFO("trained %lld steps (%lld examples) in %.1f s; loss %.4f -> %.4f",
                    (long long)st.steps, (long long)st.examples, st.seconds, st.loss_first,
                    st.loss_last);
        if (o.dp)
            printf("epsilon %.6f\n", st.epsilon);
        char path[1024];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = ff_model_save(m, path);
    }
    /* The training figures exist only when the model was set up and trained. */
    if (rc == FF_OK) {
        ff_eval_opts eo;
        ff_eval_opts_default(&eo);
        json_t *extra = json_pack("{s:I, s:I, s:f, s:f}", "train_steps", (json_int_t)st.steps,
                                  "train_examples", (json_int_t)st.examples, "train_seconds",
                                  st.seconds, "final_loss", st.loss_last);
        rc = evaluate_to(m, s, FF_SPLIT_TEST, &eo, &default_op, modalities, dir, extra);
        json_decref(extra);
    }
    ff_model_free(m);
    return rc;
}

/* ---- fedfuse train --plan: the stages of a training plan, in order, on pooled sites ---- */

static const char *const objective_names[] = {"supervised", "contrastive", "multitask"};

static int plan_hash(const ff_plan *p, char hex[FF_SHA256_HEX])
{
    char *txt = NULL;
    size_t len = 0;
    int rc = ff_plan_canonical(p, &txt, &len);
    if (rc != FF_OK)
        return rc;
    uint8_t h[FF_SHA256_BYTES];
    ff_sha256(txt, len, h);
    ff_hex(h, sizeof h, hex);
    free(txt);
    return FF_OK;
}

/* Stages already finished in dir for this plan (0 without a state file when not resuming). */
static int plan_resume_point(const char *dir, const char *hash, size_t *done)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/plan-state.json", dir);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        return ff_error(FF_ENOTFOUND, "--resume: %s: %s", path, err.text);
    const char *h = json_string_value(json_object_get(j, "plan_sha256"));
    json_t *d = json_object_get(j, "stages_done");
    int rc = FF_OK;
    if (!h || !json_is_integer(d) || json_integer_value(d) < 0)
        rc = ff_error(FF_EFORMAT, "%s: expected plan_sha256 and stages_done", path);
    else if (strcmp(h, hash) != 0)
        rc = ff_error(FF_EINVAL, "--resume: %s was written for another plan (plan_sha256 %.12s..., "
                                 "this plan %.12s...)", path, h, hash);
    else
        *done = (size_t)json_integer_value(d);
    json_decref(j);
    return rc;
}

/* The stage's rounds, each a call of local training with a fresh optimiser (as a site does in
 * a federated round), seeded by (seed, stage, round) so a resumed run repeats the same steps. */
static int run_stage(const train_args *t, site_set *s, const ff_plan *plan, size_t i, ff_model *m)
{
    const ff_plan_stage *st = (const ff_plan_stage *)plan->stages.items + i;
    size_t ntrain = 0;
    for (size_t k = 0; k < s->n; k++)
        ntrain += ff_site_count(s->sites[k], FF_SPLIT_TRAIN);
    ff_local_opts o;
    ff_local_opts_from_plan(&o, plan, i, ntrain);
    o.label_fraction = t->label_fraction;
    o.label_seed = (uint64_t)t->seed;
    double t0 = ff_now(), first = 0, last = 0;
    int64_t steps = 0;
    int rc = FF_OK;
    for (int64_t r = 0; rc == FF_OK && r < st->rounds; r++) {
        o.seed = (uint64_t)t->seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)(i + 1) << 40) ^ (uint64_t)r;
        ff_local_stats ls;
        rc = ff_local_train(m, s->sites, s->n, &o, &ls);
        if (rc == FF_OK && r == 0)
            first = ls.loss_first;
        last = ls.loss_last;
        steps += ls.steps;
    }
    if (rc != FF_OK)
        return ff_error_prefix(rc, "stage %zu '%s': ", i + 1, st->name);
    printf("stage %zu %s: %s, %lld rounds, %lld steps, loss %.4f -> %.4f (%.1f s)\n", i + 1,
           st->name, objective_names[st->objective], (long long)st->rounds, (long long)steps,
           first, last, ff_now() - t0);
    int mods = o.modalities ? o.modalities : FF_MOD_ALL;
    if (st->objective == FF_OBJ_SUPERVISED || !(mods & FF_MOD_IMG) || !(mods & FF_MOD_TXT))
        return FF_OK;
    double t1, t5, ch;
    size_t np;
    rc = ff_local_retrieval(m, s->sites, s->n, FF_SPLIT_TEST, 0, 1, &t1, &t5, &np, &ch);
    if (rc != FF_OK)
        return rc;
    printf("stage %zu %s: image->text retrieval on %zu held-out pairs (candidates: the same "
           "site's): top1 %.4f top5 %.4f (chance %.4f, %.4f)\n",
           i + 1, st->name, np, t1, t5, ch, FF_MIN(1.0, 5 * ch));
    printf("retrieval_top1_%s %.4f\nretrieval_top5_%s %.4f\n", st->name, t1, st->name, t5);
    return FF_OK;
}

static int save_stage(ff_model *m, const char *dir, size_t done, const char *hash)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/stage-%zu.safetensors", dir, done);
    int rc = ff_model_save(m, path);
    json_t *j = json_pack("{s:s, s:I, s:s}", "plan_sha256", hash, "stages_done", (json_int_t)done,
                          "checkpoint", path);
    snprintf(path, sizeof path, "%s/plan-state.json", dir);
    if (rc == FF_OK)
        rc = j ? ff_eval_json_write(j, path) : ff_error(FF_ENOMEM, "out of memory");
    json_decref(j);
    return rc;
}

static int train_plan(const train_args *t, site_set *s, const char *dir)
{
    ff_plan plan;
    char hash[FF_SHA256_HEX], path[1100];
    size_t done = 0;
    ff_model *m = NULL;
    int rc = ff_plan_load(&plan, t->plan, 1);
    if (rc != FF_OK)
        return rc;
    rc = plan_hash(&plan, hash);
    if (rc == FF_OK)
        rc = ff_mkdir_p(dir, 0755);
    if (rc == FF_OK && t->resume)
        rc = plan_resume_point(dir, hash, &done);
    if (rc == FF_OK)
        rc = model_start(t, &s->mc, (int)plan.batch_size, &m);
    if (rc == FF_OK && done > 0) {
        snprintf(path, sizeof path, "%s/stage-%zu.safetensors", dir, done);
        rc = ff_model_load(m, path);
        if (rc == FF_OK)
            printf("resumed after stage %zu from %s\n", done, path);
    }
    size_t end = plan.stages.count;
    if (t->stages > 0 && (size_t)t->stages < end)
        end = (size_t)t->stages;
    for (size_t i = done; rc == FF_OK && i < end; i++) {
        rc = run_stage(t, s, &plan, i, m);
        if (rc == FF_OK)
            rc = save_stage(m, dir, i + 1, hash);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (rc == FF_OK)
        rc = ff_model_save(m, path);
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    json_t *extra = json_pack("{s:s, s:s, s:I, s:f}", "plan", t->plan, "plan_sha256", hash,
                              "stages_done", (json_int_t)FF_MAX(end, done), "label_fraction",
                              t->label_fraction);
    if (rc == FF_OK)
        rc = evaluate_to(m, s, FF_SPLIT_TEST, &eo, &default_op, FF_MOD_ALL, dir, extra);
    json_decref(extra);
    ff_model_free(m);
    ff_plan_free(&plan);
    return rc;
}

static int cmd_train(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "train", argc, argv);
    train_args t;
    int mods = FF_MOD_ALL;
    int rc = parse_train(&a, &t);
    if (rc == FF_OK && t.mods)
        rc = ff_client_parse_modalities(t.mods, &mods);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    if (ff_models_set_threads((int)t.threads) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    site_set s;
    rc = sites_load(&s, t.cfg, t.dirs, t.ndirs);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    if (t.plan) {
        rc = train_plan(&t, &s, t.out);
    } else if (!t.local) {
        rc = train_one_model(&t, &s, s.sites, s.n, mods, t.out);
    } else {
        for (size_t i = 0; rc == FF_OK && i < s.n; i++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/local-%s", t.out, s.names[i]);
            printf("local model of %s\n", s.names[i]);
            rc = train_one_model(&t, &s, &s.sites[i], 1, mods, dir);
        }
    }
    sites_free(&s);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

static int cmd_eval(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "eval", argc, argv);
    const char *cfg = ff_cli_opt(&a, "--config"), *w = ff_cli_opt(&a, "--weights");
    const char *out = ff_cli_opt(&a, "--out"), *split_s = ff_cli_opt(&a, "--split");
    const char *dirs[MAX_SITES];
    int nd = ff_cli_opt_all(&a, "--data", dirs, MAX_SITES);
    int64_t boot, seed;
    int retrieval = ff_cli_flag(&a, "--retrieval");
    int predictions = ff_cli_flag(&a, "--predictions");
    ff_eval_op_point op;
    int rc = parse_op(ff_cli_opt(&a, "--operating-point"), &op);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--bootstrap", 200, &boot);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--seed", 1, &seed);
    if (rc == FF_OK)
        rc = ff_cli_check_unused(&a);
    if (rc == FF_OK && (!cfg || !w || !out || nd == 0))
        rc = ff_error(FF_EINVAL, "eval needs --config, --weights, --data and --out");
    ff_split split = FF_SPLIT_TEST;
    if (rc == FF_OK && split_s) {
        if (strcmp(split_s, "val") == 0)
            split = FF_SPLIT_VAL;
        else if (strcmp(split_s, "train") == 0)
            split = FF_SPLIT_TRAIN;
        else if (strcmp(split_s, "test") != 0)
            rc = ff_error(FF_EINVAL, "--split '%s': expected test, val or train", split_s);
    }
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    site_set s;
    rc = sites_load(&s, cfg, dirs, nd);
    ff_model *m = NULL;
    if (rc == FF_OK)
        rc = ff_model_new(&m, &s.mc, 64);
    if (rc == FF_OK)
        rc = ff_model_load(m, w);
    if (rc == FF_OK)
        rc = ff_mkdir_p(out, 0755);
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    eo.bootstrap = (int)boot;
    eo.seed = (uint64_t)seed;
    if (rc == FF_OK)
        rc = evaluate_to(m, &s, split, &eo, &op, FF_MOD_ALL, out, NULL);
    if (rc == FF_OK && predictions)
        rc = write_predictions(m, &s, split, out);
    double t1, t5, ch;
    size_t np;
    if (rc == FF_OK && retrieval)
        rc = ff_local_retrieval(m, s.sites, s.n, split, 0, 1, &t1, &t5, &np, &ch);
    if (rc == FF_OK && retrieval)
        printf("retrieval image->text on %zu pairs: chance top1 %.4f\nretrieval_top1 %.4f\n"
               "retrieval_top5 %.4f\n", np, ch, t1, t5);
    ff_model_free(m);
    sites_free(&s);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

/* fedfuse explain: one patient, locally. The explanation holds the patient's own words and
 * codes: it goes to stdout and DIR only, never to ff_log. */
static int cmd_explain(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "explain", argc, argv);
    const char *cfg = ff_cli_opt(&a, "--config"), *w = ff_cli_opt(&a, "--weights");
    const char *dir = ff_cli_opt(&a, "--site"), *pid = ff_cli_opt(&a, "--patient");
    const char *out = ff_cli_opt(&a, "--out");
    ff_explain_opts eo;
    ff_explain_opts_default(&eo);
    eo.lab = ff_cli_opt(&a, "--lab");
    eo.word = ff_cli_opt(&a, "--word");
    int as_json = ff_cli_flag(&a, "--json");
    int64_t k, top;
    int rc = ff_cli_opt_i64(&a, "--k", 5, &k);
    if (rc == FF_OK)
        rc = ff_cli_opt_i64(&a, "--top", 8, &top);
    if (rc == FF_OK)
        rc = ff_cli_check_unused(&a);
    if (rc == FF_OK && (!cfg || !w || !dir || !pid))
        rc = ff_error(FF_EINVAL, "explain needs --config, --weights, --site and --patient");
    if (rc == FF_OK && (k < 0 || k > 1000 || top < 1 || top > 1000))
        rc = ff_error(FF_EINVAL, "--k (0..1000) and --top (1..1000) out of range");
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    if (!out)
        out = "explain-out";
    eo.k = (int)k;
    eo.top = (int)top;
    char hpath[1024], jpath[1024], ppath[1024];
    snprintf(hpath, sizeof hpath, "%s/heatmap.png", out);
    snprintf(jpath, sizeof jpath, "%s/explain.json", out);
    snprintf(ppath, sizeof ppath, "%s/explain.html", out);
    eo.heatmap_path = hpath;
    site_set s;
    rc = sites_load(&s, cfg, &dir, 1);
    ff_model *m = NULL;
    json_t *ex = NULL;
    ff_split sp;
    size_t ix;
    if (rc == FF_OK) /* an unsupported model or an unknown id fail before the weights are read */
        rc = ff_explain_check(ff_site_shape(s.sites[0]));
    if (rc == FF_OK)
        rc = ff_explain_find(s.sites[0], dir, pid, &sp, &ix);
    if (rc == FF_OK)
        rc = ff_model_new(&m, &s.mc, 32); /* variants run 32 at a time */
    if (rc == FF_OK)
        rc = ff_model_load(m, w);
    if (rc == FF_OK)
        rc = ff_mkdir_p(out, 0755);
    if (rc == FF_OK)
        rc = ff_explain(m, s.sites[0], dir, pid, &eo, &ex);
    if (rc == FF_OK)
        rc = ff_eval_json_write(ex, jpath);
    if (rc == FF_OK)
        rc = ff_explain_page_write(ex, ppath);
    if (rc == FF_OK && as_json) {
        json_dumpf(ex, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
    } else if (rc == FF_OK) {
        ff_explain_print(ex, eo.top, stdout);
        int hm = json_is_string(json_object_get(ex, "heatmap"));
        printf("\nwrote %s, %s%s%s\n", ppath, jpath, hm ? " and " : "", hm ? hpath : "");
    }
    json_decref(ex);
    ff_model_free(m);
    sites_free(&s);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}
