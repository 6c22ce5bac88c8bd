/* Checkpoints and rounds.csv. The checkpoint is one safetensors file replaced atomically
 * after every round (temp file, fsync, rename, fsync folder), so at any instant the folder
 * holds a complete checkpoint of the last finished round, or none. The new one is first
 * written as checkpoint.safetensors.next and takes its name only after the hooks recorded
 * the round (ff_coord_set_commit_check), so the audit log and the checkpoint cannot
 * disagree about which rounds the run kept. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_FORMAT "fedfuse-coordinator-checkpoint-v1"
#define CKPT_NAME "checkpoint.safetensors"
#define CKPT_NEXT CKPT_NAME ".next"
#define OPT_M "__ff_opt_m"
#define OPT_V "__ff_opt_v"

static void ckpt_path(const ff_coord *c, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", c->cfg.checkpoint_dir, CKPT_NAME);
}

static void next_path(const ff_coord *c, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", c->cfg.checkpoint_dir, CKPT_NEXT);
}

static int add_model(ff_st_writer *w, const ff_coord *c)
{
    for (size_t i = 0; i < c->ntensors; i++) {
        const ff_coord_tensor *t = &c->tensors[i];
        int rc = ff_st_writer_add(w, t->name, FF_DT_F32, t->ndim, t->shape, c->global + t->offset);
        if (rc != FF_OK)
            return rc;
    }
    return FF_OK;
}

int coord_save_model(const ff_coord *c, const char *path)
{
    ff_st_writer *w;
    int rc = ff_st_writer_new(&w);
    if (rc != FF_OK)
        return rc;
    rc = add_model(w, c);
    if (rc == FF_OK)
        rc = ff_st_writer_meta(w, "run_name", c->cfg.run_name);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, c->round);
    if (rc == FF_OK)
        rc = ff_st_writer_meta(w, "round", buf);
    if (rc == FF_OK)
        rc = ff_st_writer_save(w, path);
    ff_st_writer_free(w);
    return rc;
}

static void rng_to_text(const ff_rng *r, char *out, size_t n)
{
    snprintf(out, n, "%08x%08x:%08x%08x%08x%08x:%08x%08x%08x%08x:%d", r->key[0], r->key[1],
             r->ctr[0], r->ctr[1], r->ctr[2], r->ctr[3], r->buf[0], r->buf[1], r->buf[2],
             r->buf[3], r->pos);
}

static int rng_from_text(ff_rng *r, const char *s)
{
    unsigned v[10];
    int pos, used = 0;
    if (sscanf(s, "%8x%8x:%8x%8x%8x%8x:%8x%8x%8x%8x:%d%n", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7], &v[8], &v[9], &pos, &used) != 11 ||
        s[used] != '\0' || pos < 0 || pos > 4)
        return FF_EFORMAT;
    r->key[0] = v[0];
    r->key[1] = v[1];
    for (int i = 0; i < 4; i++) {
        r->ctr[i] = v[2 + i];
        r->buf[i] = v[6 + i];
    }
    r->pos = pos;
    return FF_OK;
}

int coord_checkpoint_write(ff_coord *c, char *path, size_t path_len)
{
    int rc = ff_mkdir_p(c->cfg.checkpoint_dir, 0755);
    if (rc != FF_OK)
        return rc;
    ckpt_path(c, path, path_len);
    char next[FF_COORD_PATH_MAX + 64];
    next_path(c, next, sizeof next);
    ff_st_writer *w;
    rc = ff_st_writer_new(&w);
    if (rc != FF_OK)
        return rc;
    rc = add_model(w, c);
    int64_t shape[1] = {(int64_t)c->n};
    if (rc == FF_OK && c->strat.m)
        rc = ff_st_writer_add(w, OPT_M, FF_DT_F32, 1, shape, c->strat.m);
    if (rc == FF_OK && c->strat.v)
        rc = ff_st_writer_add(w, OPT_V, FF_DT_F32, 1, shape, c->strat.v);
    char num[64], rng[128];
    struct {
        const char *k;
        const char *v;
    } meta[16];
    size_t nm = 0;
    char round[32], steps[32], auroc[40];
    snprintf(round, sizeof round, "%" PRId64, c->round);
    snprintf(steps, sizeof steps, "%" PRId64, c->strat.steps);
    snprintf(auroc, sizeof auroc, "%.17g", c->last_auroc);
    snprintf(num, sizeof num, "%zu", c->n);
    rng_to_text(&c->rng, rng, sizeof rng);
    meta[nm].k = "format", meta[nm++].v = CKPT_FORMAT;
    meta[nm].k = "run_name", meta[nm++].v = c->cfg.run_name;
    meta[nm].k = "round", meta[nm++].v = round;
    meta[nm].k = "strategy", meta[nm++].v = ff_strategy_name(c->strat.kind);
    meta[nm].k = "strategy_steps", meta[nm++].v = steps;
    meta[nm].k = "rng", meta[nm++].v = rng;
    meta[nm].k = "n_params", meta[nm++].v = num;
    meta[nm].k = "config_sha256", meta[nm++].v = c->config_hash;
    meta[nm].k = "job_sha256", meta[nm++].v = c->job_hash;
    meta[nm].k = "model_sha256", meta[nm++].v = c->model_hash;
    meta[nm].k = "last_auroc", meta[nm++].v = auroc;
    for (size_t i = 0; rc == FF_OK && i < nm; i++)
        rc = ff_st_writer_meta(w, meta[i].k, meta[i].v);
    if (rc == FF_OK)
        rc = ff_st_writer_save(w, next);
    ff_st_writer_free(w);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "round %lld checkpoint: ", (long long)c->round);
    return FF_OK;
}

int coord_checkpoint_publish(ff_coord *c)
{
    char path[FF_COORD_PATH_MAX + 64], next[FF_COORD_PATH_MAX + 64];
    ckpt_path(c, path, sizeof path);
    next_path(c, next, sizeof next);
    int rc = ff_file_rename_durable(next, path);
    return rc == FF_OK ? FF_OK
                       : ff_error_prefix(rc, "round %lld checkpoint: ", (long long)c->round);
}

/* A process killed while writing leaves PATH.tmp.PID behind; the rename never happened, so
 * the file is garbage and goes. */
static void remove_stale_temps(const ff_coord *c)
{
    DIR *d = opendir(c->cfg.checkpoint_dir);
    if (!d)
        return;
    struct dirent *e;
    const char *pre = CKPT_NAME ".tmp.", *pre_next = CKPT_NEXT ".tmp.";
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, pre, strlen(pre)) != 0 &&
            strncmp(e->d_name, pre_next, strlen(pre_next)) != 0)
            continue;
        char p[FF_COORD_PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", c->cfg.checkpoint_dir, e->d_name);
        if (unlink(p) == 0)
            FF_LOG_WARN("removed the partial checkpoint %s left by a killed run", p);
    }
    closedir(d);
}

static const char *need_meta(const ff_safetensors *st, const char *key, const char *path, int *rc)
{
    const char *v = ff_safetensors_meta(st, key);
    if (!v && *rc == FF_OK)
        *rc = ff_error(FF_EFORMAT, "%s: checkpoint metadata '%s' is missing", path, key);
    return v;
}

static int load_opt(ff_coord *c, const ff_safetensors *st, const char *name, float *dst)
{
    if (!dst)
        return FF_OK;
    int64_t shape[1] = {(int64_t)c->n};
    return ff_safetensors_read(st, name, FF_DT_F32, 1, shape, dst);
}

/* The checkpoint at path was made by this run: its format, configuration and job. */
static int check_identity(const ff_coord *c, const ff_safetensors *st, const char *path)
{
    int rc = FF_OK;
    const char *fmt = need_meta(st, "format", path, &rc);
    const char *cfgh = need_meta(st, "config_sha256", path, &rc);
    const char *job = need_meta(st, "job_sha256", path, &rc);
    if (rc == FF_OK && strcmp(fmt, CKPT_FORMAT) != 0)
        rc = ff_error(FF_EFORMAT, "%s: format '%s', expected '%s'", path, fmt, CKPT_FORMAT);
    if (rc == FF_OK && strcmp(cfgh, c->config_hash) != 0)
        rc = ff_error(FF_ESTATE,
                      "%s: made under another configuration (seed, strategy, sampling, sites or "
                      "model differ: config hash %.12s…, now %.12s…); use the original config "
                      "or another checkpoint_dir",
                      path, cfgh, c->config_hash);
    if (rc == FF_OK && c->job_hash[0] && strcmp(job, c->job_hash) != 0)
        rc = ff_error(FF_ESTATE, "%s: made for another job (job hash %.12s…, now %.12s…)", path,
                      job, c->job_hash);
    return rc;
}

/* A killed run may have left a complete checkpoint.safetensors.next: it takes its name when
 * the caller's record (commit check) has its round, and goes otherwise. */
static int resolve_next(ff_coord *c)
{
    char path[FF_COORD_PATH_MAX + 64], next[FF_COORD_PATH_MAX + 64];
    ckpt_path(c, path, sizeof path);
    next_path(c, next, sizeof next);
    if (!ff_path_exists(next))
        return FF_OK;
    ff_safetensors *st;
    int rc = ff_safetensors_open(&st, next);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "resume: ");
    rc = check_identity(c, st, next); /* never replace a good checkpoint with a stranger */
    const char *round = need_meta(st, "round", next, &rc);
    const char *sha = need_meta(st, "model_sha256", next, &rc);
    int64_t r = 0;
    if (rc == FF_OK && ff_parse_i64(round, &r) != FF_OK)
        rc = ff_error(FF_EFORMAT, "%s: bad round metadata", next);
    int keep = rc == FF_OK && (!c->commit_check || c->commit_check(c->commit_ud, r, sha) == 1);
    ff_safetensors_close(st);
    if (rc != FF_OK)
        return ff_error_prefix(rc, "resume: ");
    if (keep) {
        FF_LOG_INFO("completed the checkpoint of round %lld: the run stopped after recording "
                    "the round and before renaming %s", (long long)r, next);
        return ff_file_rename_durable(next, path);
    }
    FF_LOG_WARN("discarded the checkpoint of round %lld (%s): the run stopped before the audit "
                "log recorded the round, so the round is redone", (long long)r, next);
    if (unlink(next) != 0)
        return ff_error(FF_EIO, "resume: cannot remove %s: %s", next, strerror(errno));
    return FF_OK;
}

int coord_checkpoint_load(ff_coord *c, int *found)
{
    *found = 0;
    char path[FF_COORD_PATH_MAX + 64];
    ckpt_path(c, path, sizeof path);
    remove_stale_temps(c);
    int rc0 = resolve_next(c);
    if (rc0 != FF_OK)
        return rc0;
    if (!ff_path_exists(path))
        return FF_OK;
    ff_safetensors *st;
    int rc = ff_safetensors_open(&st, path);
    if (rc != FF_OK)
        return rc;
    rc = check_identity(c, st, path);
    const char *round = need_meta(st, "round", path, &rc);
    const char *steps = need_meta(st, "strategy_steps", path, &rc);
    const char *rng = need_meta(st, "rng", path, &rc);
    const char *auroc = need_meta(st, "last_auroc", path, &rc);
    int64_t r = 0, s = 0;
    ff_rng g;
    if (rc == FF_OK && (ff_parse_i64(round, &r) != FF_OK || r < 0 ||
                        ff_parse_i64(steps, &s) != FF_OK || s < 0 ||
                        rng_from_text(&g, rng) != FF_OK))
        rc = ff_error(FF_EFORMAT, "%s: bad round, strategy_steps or rng metadata", path);
    for (size_t i = 0; rc == FF_OK && i < c->ntensors; i++) {
        const ff_coord_tensor *t = &c->tensors[i];
        rc = ff_safetensors_read(st, t->name, FF_DT_F32, t->ndim, t->shape, c->global + t->offset);
    }
    if (rc == FF_OK)
        rc = load_opt(c, st, OPT_M, c->strat.m);
    if (rc == FF_OK)
        rc = load_opt(c, st, OPT_V, c->strat.v);
    if (rc == FF_OK) {
        c->round = r;
        c->strat.steps = s;
        c->rng = g;
        double a;
        c->last_auroc = ff_parse_f64(auroc, &a) == FF_OK ? a : NAN;
        coord_hash_floats(c->global, c->n, c->model_hash);
        *found = 1;
    } else {
        rc = ff_error_prefix(rc, "resume: ");
    }
    ff_safetensors_close(st);
    return rc;
}

/* ---- rounds.csv ---------------------------------------------------------------------- */

static void csv_path(const ff_coord *c, char *out, size_t n)
{
    snprintf(out, n, "%s/rounds.csv", c->cfg.out_dir);
}

static void fmt_num(char *out, size_t n, double v)
{
    if (isfinite(v))
        snprintf(out, n, "%.6g", v);
    else
        out[0] = '\0'; /* empty cell = not measured */
}

int coord_csv_append(ff_coord *c)
{
    int rc = ff_mkdir_p(c->cfg.out_dir, 0755);
    if (rc != FF_OK)
        return rc;
    char path[FF_COORD_PATH_MAX + 32];
    csv_path(c, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return ff_error(FF_EIO, "%s: cannot open: %s", path, strerror(errno));
    char line[1024], norm[32], loss[32], auc[32];
    size_t len = 0;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end == 0)
        len = (size_t)snprintf(line, sizeof line, "%s\n", FF_ROUNDS_CSV_HEADER);
    fmt_num(norm, sizeof norm, c->r_update_norm);
    fmt_num(loss, sizeof loss, c->r_eval_loss);
    fmt_num(auc, sizeof auc, c->r_auroc);
    size_t stage = c->plan ? ff_plan_stage_of_round(c->plan, c->round) : 0;
    len += (size_t)snprintf(line + len, sizeof line - len,
                            "%lld,%zu,%lld,%zu,%zu,%zu,%zu,%.17g,%s,%zu,%s,%s,%s,%.3f\n",
                            (long long)c->round, stage, (long long)c->r_attempts, c->nselected,
                            c->r_updates, c->r_dropouts, c->r_refusals, c->r_examples, norm,
                            c->eval_sites, loss, auc, c->model_hash,
                            c->clock(c->clock_ud) - c->round_t0);
    ssize_t wr = write(fd, line, len);
    int err = wr == (ssize_t)len ? 0 : (wr < 0 ? errno : EIO);
    if (!err && fsync(fd) != 0)
        err = errno;
    close(fd);
    if (err)
        return ff_error(FF_EIO, "%s: cannot append round %lld: %s", path, (long long)c->round,
                        strerror(err));
    return FF_OK;
}

/* Keeps the header and the complete lines of rounds ≤ the checkpointed round; a torn last
 * line (killed mid-write) or a line of a round the checkpoint lacks is dropped. */
int coord_csv_trim(ff_coord *c)
{
    char path[FF_COORD_PATH_MAX + 32];
    csv_path(c, path, sizeof path);
    if (!ff_path_exists(path))
        return FF_OK;
    char *buf;
    size_t len;
    int rc = ff_file_read_all(path, (size_t)1 << 30, &buf, &len);
    if (rc != FF_OK)
        return rc;
    char *out = malloc(len + 1);
    if (!out) {
        free(buf);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    size_t olen = 0, dropped = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            dropped++;
            break;
        }
        size_t ll = (size_t)(nl - p) + 1;
        int64_t r;
        char first[24] = "";
        size_t fl = strcspn(p, ",\n");
        if (fl < sizeof first)
            memcpy(first, p, fl);
        int keep = ff_parse_i64(first, &r) != FF_OK ? olen == 0 : r <= c->round;
        if (keep) {
            memcpy(out + olen, p, ll);
            olen += ll;
        } else {
            dropped++;
        }
        p = nl + 1;
    }
    if (dropped) {
        FF_LOG_WARN("%s: dropped %zu line(s) after round %lld (written after the last checkpoint)",
                    path, dropped, (long long)c->round);
        rc = ff_file_write_atomic(path, out, olen, 0644);
    }
    free(out);
    free(buf);
    return rc;
}

int ff_coord_resume(ff_coord *c, int *resumed)
{
    *resumed = 0;
    if (c->run_started || c->resume_done)
        return ff_error(FF_ESTATE, "resume: the run has started or resumed already");
    c->resume_done = 1;
    int found;
    int rc = coord_checkpoint_load(c, &found);
    if (rc != FF_OK)
        return rc;
    if (!found)
        c->round = 0;
    rc = coord_csv_trim(c);
    if (rc != FF_OK)
        return rc;
    if (found) {
        c->resumed = 1;
        *resumed = 1;
        FF_LOG_INFO("resumed run '%s' after round %lld of %lld", c->cfg.run_name,
                    (long long)c->round, (long long)c->cfg.rounds);
    }
    return FF_OK;
}
