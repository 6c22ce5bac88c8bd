/* Per-site layers on the client node (the coordinator's strategy.local, FedBN-style): the
 * tensors whose names start with one of the prefixes the coordinator lists in every task's
 * parameters stay at this site. The site trains and evaluates its own values of them (the
 * first global model's values to start with), and sends no change of them: their update
 * coordinates are zero, so neither the aggregate nor the global model carries them. They are
 * saved after every round (OUT/local-layers-SITE.bin, keyed by run name and job hash) so a
 * node restarted mid-run goes on with them. */
#include "client_internal.h"

#include <stdio.h>

#define LOCAL_MAX_PREFIXES 64
#define LOCAL_MAGIC "fedfuse-local-layers-v1"

static void local_path(const cnode *cn, char *path, size_t cap)
{
    snprintf(path, cap, "%s/local-layers-%s.bin", cn->sc->out_dir, cn->sc->site);
}

/* The file's first line: magic, run name, job hash and the number of floats that follow. */
static void local_header(const cnode *cn, char *h, size_t cap)
{
    char job[FF_SHA256_HEX];
    ff_hex(cn->local_job, FF_SHA256_BYTES, job);
    snprintf(h, cap, "%s %s %s %zu\n", LOCAL_MAGIC, cn->local_run, job, ff_model_nparams(cn->m));
}

/* This run's saved values, if the file is this run's (same run name, job and size). */
static int local_restore(cnode *cn)
{
    char path[1100], h[512], *buf = NULL;
    size_t len = 0, nm = ff_model_nparams(cn->m);
    local_path(cn, path, sizeof path);
    if (access(path, F_OK) != 0)
        return FF_OK;
    int rc = ff_file_read_all(path, nm * sizeof(float) + sizeof h, &buf, &len);
    if (rc != FF_OK)
        return rc;
    local_header(cn, h, sizeof h);
    size_t hl = strlen(h);
    if (len == hl + nm * sizeof(float) && memcmp(buf, h, hl) == 0) {
        memcpy(cn->own, buf + hl, nm * sizeof(float));
        cn->have_own = 1;
        FF_LOG_INFO("restored this site's own local layers from %s", path);
    } else {
        FF_LOG_INFO("%s is not this run's (run name, job or model differ): local layers start "
                    "from the global model", path);
    }
    free(buf);
    return FF_OK;
}

static int local_save(const cnode *cn)
{
    char path[1100], h[512];
    size_t nm = ff_model_nparams(cn->m);
    local_path(cn, path, sizeof path);
    local_header(cn, h, sizeof h);
    size_t hl = strlen(h);
    char *buf = malloc(hl + nm * sizeof(float));
    if (!buf)
        return ff_error(FF_ENOMEM, "out of memory");
    memcpy(buf, h, hl);
    memcpy(buf + hl, cn->own, nm * sizeof(float));
    int rc = ff_file_write_atomic(path, buf, hl + nm * sizeof(float), 0600);
    free(buf);
    return rc;
}

/* Reads the task's local_prefixes once per node and marks the local coordinates in the
 * model's layout (local_m) and the wire layout (local_w). A prefix that matches none of
 * this site's tensors is refused: the coordinator's model and ours would differ. */
int fed_cn_local_setup(cnode *cn, const Fedfuse__Task *t)
{
    if (cn->local_set)
        return FF_OK;
    size_t np = t->n_local_prefixes;
    const char *run = t->run_name;
    int rc = FF_OK;
    if (np > LOCAL_MAX_PREFIXES)
        rc = ff_error(FF_EFORMAT, "the task's local layers: %zu prefixes (at most %d)", np,
                      LOCAL_MAX_PREFIXES);
    const size_t nm = ff_model_nparams(cn->m);
    if (rc == FF_OK && np > 0) {
        cn->local_m = calloc(nm, 1);
        cn->local_w = calloc(cn->n, 1);
        cn->own = malloc(nm * sizeof(float));
        if (!cn->local_m || !cn->local_w || !cn->own)
            rc = ff_error(FF_ENOMEM, "out of memory");
    }
    for (size_t k = 0; rc == FF_OK && k < np; k++) {
        const char *pre = t->local_prefixes[k];
        size_t wire = 0, hits = 0;
        if (!pre || !pre[0] || strlen(pre) > 128)
            rc = ff_error(FF_EFORMAT, "the task's local layers: item %zu is not a name prefix", k);
        for (size_t i = 0; rc == FF_OK && i < ff_model_ntensors(cn->m); i++) {
            const ff_param_info *ti = ff_model_tensor(cn->m, i);
            if (strncmp(ti->name, pre, strlen(pre)) == 0) {
                memset(cn->local_m + ti->offset, 1, ti->numel);
                memset(cn->local_w + wire, 1, ti->numel);
                hits++;
            }
            wire += ti->numel;
        }
        if (rc == FF_OK && hits == 0)
            rc = ff_error(FF_EPOLICY, "strategy.local: '%s' matches no tensor of this site's "
                          "model", pre);
    }
    if (rc == FF_OK && np > 0) {
        ff_strlcpy(cn->local_run, run && strlen(run) < sizeof cn->local_run && !strpbrk(run, " \n")
                                      ? run : "-", sizeof cn->local_run);
        memset(cn->local_job, 0, sizeof cn->local_job);
        if (t->job_sha256.len == FF_SHA256_BYTES)
            memcpy(cn->local_job, t->job_sha256.data, FF_SHA256_BYTES);
        rc = local_restore(cn);
    }
    if (rc == FF_OK && np > 0)
        FF_LOG_INFO("%zu tensor prefix(es) stay at this site (strategy.local): trained and "
                    "evaluated here, never sent", np);
    cn->local_set = rc == FF_OK;
    return rc;
}

/* After the global model is unpacked into cn->m: the local coordinates take this site's own
 * values (the first time, the global's become ours). */
void fed_cn_local_apply(cnode *cn)
{
    if (!cn->local_m)
        return;
    float *p = ff_model_params(cn->m);
    const size_t nm = ff_model_nparams(cn->m);
    for (size_t j = 0; j < nm; j++)
        if (cn->local_m[j]) {
            if (!cn->have_own)
                cn->own[j] = p[j];
            p[j] = cn->own[j];
        }
    cn->have_own = 1;
}

/* After local training: keeps (and saves) the trained local values; zeroes their update
 * coordinates. A failed save is logged: this round's update is still right. */
void fed_cn_local_keep(cnode *cn, float *update)
{
    if (!cn->local_m)
        return;
    const float *p = ff_model_params(cn->m);
    const size_t nm = ff_model_nparams(cn->m);
    for (size_t j = 0; j < nm; j++)
        if (cn->local_m[j])
            cn->own[j] = p[j];
    for (size_t k = 0; k < cn->n; k++)
        if (cn->local_w[k])
            update[k] = 0;
    if (local_save(cn) != FF_OK)
        FF_LOG_WARN("this site's local layers were not saved (a restart would start them from "
                    "the global model): %s", ff_error_message());
}

void fed_cn_local_free(cnode *cn)
{
    free(cn->local_m);
    free(cn->local_w);
    free(cn->own);
    cn->local_m = cn->local_w = NULL;
    cn->own = NULL;
}
