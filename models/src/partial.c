/* Partial checkpoints: load the tensors a file and the model share by name (encoders
 * pre-trained elsewhere, a smaller model's weights) and say exactly what happened to every
 * other tensor, so a misspelt name or a changed width is seen, not silently re-initialised. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int report_add(ff_model_load_report *r, int what, const char *name, const char *why)
{
    if (ff_grow(&r->items, &r->cap, r->nitems + 1, sizeof *r->items) != FF_OK)
        return ff_error_prefix(FF_ENOMEM, "partial load: ");
    ff_model_load_item *it = &r->items[r->nitems++];
    it->what = what;
    snprintf(it->name, sizeof it->name, "%s", name);
    snprintf(it->why, sizeof it->why, "%s", why ? why : "");
    return FF_OK;
}

void ff_model_load_report_free(ff_model_load_report *r)
{
    free(r->items);
    memset(r, 0, sizeof *r);
}

/* Why file entry e cannot fill parameter p ("" when it can). */
static void mismatch(const ff_st_entry *e, const ff_param_info *p, char *why, size_t n)
{
    why[0] = '\0';
    if (e->dtype != FF_DT_F32) {
        snprintf(why, n, "dtype %s in the file, F32 in the model", ff_dtype_name(e->dtype));
        return;
    }
    int same = e->ndim == p->ndim;
    for (int i = 0; same && i < p->ndim; i++)
        same = e->shape[i] == p->shape[i];
    if (!same) {
        char a[96], b[96];
        snprintf(why, n, "shape %s in the file, %s in the model",
                 ff_shape_str(a, sizeof a, e->ndim, e->shape),
                 ff_shape_str(b, sizeof b, p->ndim, p->shape));
    }
}

/* Fills dst (a copy of the parameters) and the report; the model is untouched. */
static int load_into(const ff_model *m, const ff_safetensors *st, const char *path, float *dst,
                     ff_model_load_report *r)
{
    char why[200];
    int rc = FF_OK;
    for (size_t i = 0; rc == FF_OK && i < m->ntab; i++) {
        const ff_param_info *p = &m->tab[i];
        const ff_st_entry *e = ff_safetensors_find(st, p->name);
        if (e) mismatch(e, p, why, sizeof why);
        if (!e || why[0]) {
            r->kept++, r->kept_values += p->numel;
            rc = report_add(r, FF_LOAD_KEPT, p->name, e ? why : "not in the file");
            continue;
        }
        if ((rc = ff_st_entry_copy(e, dst + p->offset, p->numel * sizeof(float))) != FF_OK) break;
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(dst[p->offset + j]))
                return ff_error(FF_ENUMERIC, "%s: tensor '%s' index %zu is not finite", path,
                                p->name, j);
        r->loaded++, r->loaded_values += p->numel;
        rc = report_add(r, FF_LOAD_LOADED, p->name, NULL);
    }
    for (size_t i = 0; rc == FF_OK && i < ff_safetensors_count(st); i++) {
        const ff_st_entry *e = ff_safetensors_entry(st, i);
        const ff_param_info *p = ff_model_find(m, e->name);
        if (p) {
            mismatch(e, p, why, sizeof why);
            if (!why[0]) continue; /* loaded above */
        } else {
            snprintf(why, sizeof why, "not in the model");
        }
        r->ignored++;
        rc = report_add(r, FF_LOAD_IGNORED, e->name, why);
    }
    return rc;
}

int ff_model_load_partial(ff_model *m, const char *path, ff_model_load_report *r)
{
    memset(r, 0, sizeof *r);
    ff_safetensors *st = NULL;
    int rc = ff_safetensors_open(&st, path);
    if (rc != FF_OK) return rc;
    size_t n = ff_model_nparams(m);
    float *dst = ff_alloc(n * sizeof(float));
    if (!dst) rc = ff_error(FF_ENOMEM, "partial load: out of memory");
    if (rc == FF_OK) {
        memcpy(dst, m->params, n * sizeof(float));
        rc = load_into(m, st, path, dst, r);
    }
    if (rc == FF_OK && r->loaded == 0)
        rc = ff_error(FF_ENOTFOUND,
                      "%s: no tensor matches a parameter of model '%s' by name and shape (%zu "
                      "ignored)",
                      path, m->cfg.name, r->ignored);
    if (rc == FF_OK) memcpy(m->params, dst, n * sizeof(float));
    else ff_model_load_report_free(r);
    ff_free(dst);
    ff_safetensors_close(st);
    return rc;
}

/* Group key of a name: up to and including its first '.', or the whole name. */
static size_t group_len(const char *name)
{
    const char *d = strchr(name, '.');
    return d ? (size_t)(d - name) + 1 : strlen(name);
}

/* "img. (14), txt. (14), head (2)": consecutive names grouped by their first component. */
static void print_groups(const ff_model_load_report *r, int what, FILE *out)
{
    const char *sep = "";
    for (size_t i = 0; i < r->nitems;) {
        if (r->items[i].what != what) {
            i++;
            continue;
        }
        const char *g = r->items[i].name;
        size_t gl = group_len(g), cnt = 0, j = i;
        for (; j < r->nitems; j++) {
            if (r->items[j].what != what) continue;
            if (group_len(r->items[j].name) != gl || strncmp(r->items[j].name, g, gl) != 0) break;
            cnt++;
        }
        fprintf(out, "%s%.*s%s (%zu)", sep, (int)gl, g, g[gl - 1] == '.' ? "*" : "", cnt);
        sep = ", ";
        i = j;
    }
}

void ff_model_load_report_print(const ff_model_load_report *r, const char *path, FILE *out)
{
    fprintf(out, "init from %s: loaded %zu tensors (%zu values), kept %zu as initialised (%zu "
                 "values), ignored %zu\n",
            path, r->loaded, r->loaded_values, r->kept, r->kept_values, r->ignored);
    if (r->loaded) {
        fputs("  loaded: ", out);
        print_groups(r, FF_LOAD_LOADED, out);
        fputc('\n', out);
    }
    for (size_t i = 0; i < r->nitems; i++) {
        const ff_model_load_item *it = &r->items[i];
        if (it->what == FF_LOAD_KEPT && strcmp(it->why, "not in the file") != 0)
            fprintf(out, "  kept: %s (%s)\n", it->name, it->why);
    }
    if (r->kept) {
        fputs("  kept as initialised: ", out);
        print_groups(r, FF_LOAD_KEPT, out);
        fputc('\n', out);
    }
    for (size_t i = 0; i < r->nitems; i++)
        if (r->items[i].what == FF_LOAD_IGNORED)
            fprintf(out, "  ignored: %s (%s)\n", r->items[i].name, r->items[i].why);
}
