/* Model inputs and outputs as safetensors files (the forward/grad interface of the spec). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Checks that entry name exists with dtype dt, ndim dims and the given dims (-1 = any, taken
 * from the file into *got0 for dim 0). */
static int want_tensor(const ff_safetensors *st, const char *path, const char *name, ff_dtype dt,
                       int ndim, const int64_t *shape, const ff_st_entry **out)
{
    const ff_st_entry *e = ff_safetensors_find(st, name);
    if (!e) return ff_error(FF_ENOTFOUND, "%s: missing tensor '%s'", path, name);
    if (e->dtype != dt)
        return ff_error(FF_EFORMAT, "%s: tensor '%s' has dtype %s, expected %s", path, name,
                        ff_dtype_name(e->dtype), ff_dtype_name(dt));
    int ok = e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = e->shape[i] == shape[i];
    if (!ok) {
        char a[96], b[96];
        return ff_error(FF_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", path, name,
                        ff_shape_str(a, sizeof a, e->ndim, e->shape),
                        ff_shape_str(b, sizeof b, ndim, shape));
    }
    *out = e;
    return FF_OK;
}

int ff_model_read_inputs(const ff_model_config *c, const char *path, ff_batch *b)
{
    memset(b, 0, sizeof *b);
    ff_safetensors *st = NULL;
    int rc = ff_safetensors_open(&st, path);
    if (rc != FF_OK) return rc;
    const ff_st_entry *e = ff_safetensors_find(st, "image");
    if (!e) {
        rc = ff_error(FF_ENOTFOUND, "%s: missing tensor 'image'", path);
        goto out;
    }
    if (e->ndim != 4 || e->shape[0] < 1 || e->shape[0] > 65536) {
        rc = ff_error(FF_EFORMAT,
                      "%s: tensor 'image' must be [B,%lld,%lld,%lld] with 1 <= B <= "
                      "65536",
                      path, (long long)c->image.channels, (long long)c->image.size,
                      (long long)c->image.size);
        goto out;
    }
    int64_t B = e->shape[0];
    rc = ff_batch_alloc(b, (int)B, (int)c->tasks, (int)c->image.channels, (int)c->image.size,
                        (int)c->image.size, (int)c->text.length, (int)c->ehr.length);
    if (rc != FF_OK) goto out;
    struct {
        const char *name;
        ff_dtype dt;
        int ndim;
        int64_t shape[4];
        void *dst;
        size_t bytes;
    } t[] = {
        {"image",
         FF_DT_F32,
         4,
         {B, c->image.channels, c->image.size, c->image.size},
         b->image,
         (size_t)(B * c->image.channels * c->image.size * c->image.size) * 4},
        {"image_present", FF_DT_F32, 1, {B}, b->image_present, (size_t)B * 4},
        {"text_ids",
         FF_DT_I32,
         2,
         {B, c->text.length},
         b->text_ids,
         (size_t)(B * c->text.length) * 4},
        {"ehr_code",
         FF_DT_I32,
         2,
         {B, c->ehr.length},
         b->ehr_code,
         (size_t)(B * c->ehr.length) * 4},
        {"ehr_val", FF_DT_I32, 2, {B, c->ehr.length}, b->ehr_val, (size_t)(B * c->ehr.length) * 4},
        {"ehr_time",
         FF_DT_I32,
         2,
         {B, c->ehr.length},
         b->ehr_time,
         (size_t)(B * c->ehr.length) * 4},
        {"labels", FF_DT_F32, 2, {B, c->tasks}, b->labels, (size_t)(B * c->tasks) * 4},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(t); i++) {
        if ((rc = want_tensor(st, path, t[i].name, t[i].dt, t[i].ndim, t[i].shape, &e)) != FF_OK)
            goto out;
        if ((rc = ff_st_entry_copy(e, t[i].dst, t[i].bytes)) != FF_OK) goto out;
    }
    /* label_mask is optional: all labels known unless the file says otherwise */
    if (ff_safetensors_find(st, "label_mask")) {
        int64_t s[2] = {B, c->tasks};
        if ((rc = want_tensor(st, path, "label_mask", FF_DT_F32, 2, s, &e)) != FF_OK ||
            (rc = ff_st_entry_copy(e, b->label_mask, (size_t)(B * c->tasks) * 4)) != FF_OK)
            goto out;
    } else {
        for (int64_t i = 0; i < B * c->tasks; i++)
            b->label_mask[i] = 1.0f;
    }
    /* With a tabular section: tabular [B,F] and tabular_present [B], both required */
    if (c->tabular.n > 0) {
        int64_t F = c->tabular.width, s2[2] = {B, F}, s1[1] = {B};
        if ((rc = ff_batch_alloc_tab(b, (int)F)) != FF_OK ||
            (rc = want_tensor(st, path, "tabular", FF_DT_F32, 2, s2, &e)) != FF_OK ||
            (rc = ff_st_entry_copy(e, b->tab, (size_t)(B * F) * 4)) != FF_OK ||
            (rc = want_tensor(st, path, "tabular_present", FF_DT_F32, 1, s1, &e)) != FF_OK ||
            (rc = ff_st_entry_copy(e, b->tab_present, (size_t)B * 4)) != FF_OK)
            goto out;
    }
out:
    ff_safetensors_close(st);
    if (rc != FF_OK) ff_batch_free(b);
    return rc;
}

int ff_model_write_outputs(const ff_model *m, const char *path, const float *logits, int B,
                           float loss, int with_grads)
{
    ff_st_writer *w = NULL;
    char(*names)[192] = NULL;
    int rc = ff_st_writer_new(&w);
    if (rc != FF_OK) return rc;
    int64_t ls[2] = {B, m->K}, one[1] = {1};
    if ((rc = ff_st_writer_add(w, "logits", FF_DT_F32, 2, ls, logits)) != FF_OK ||
        (rc = ff_st_writer_add(w, "loss", FF_DT_F32, 1, one, &loss)) != FF_OK)
        goto out;
    if (with_grads) {
        names = calloc(m->ntab, sizeof *names);
        if (!names) {
            rc = ff_error(FF_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < m->ntab && rc == FF_OK; i++) {
            const ff_param_info *p = &m->tab[i];
            snprintf(names[i], sizeof names[i], "grad.%s", p->name);
            rc = ff_st_writer_add(w, names[i], FF_DT_F32, p->ndim, p->shape, m->grads + p->offset);
        }
        if (rc != FF_OK) goto out;
    }
    rc = ff_st_writer_save(w, path);
out:
    ff_st_writer_free(w);
    free(names);
    return rc;
}
