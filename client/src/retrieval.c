/* Cross-modal retrieval on held-out pairs: how well contrastive pre-training aligned two
 * encoders. Candidates are the site's own patients only, as pairs never leave a site. */
#include "ff/client.h"

#include <stdlib.h>
#include <string.h>

/* Unit embeddings of modalities a and e for the patients of split with both present;
 * *count receives how many (rows of ea, ec, each [n, p]). */
static int embed_site(ff_model *m, ff_contrastive *c, const ff_site *s, ff_split split, int a,
                      int e, float *ea, float *ec, size_t *count)
{
    const ff_data_shape *sh = ff_site_shape(s);
    size_t n = ff_site_count(s, split), got = 0;
    int B = ff_model_max_batch(m), p = (int)ff_model_cfg(m)->projection;
    ff_batch b;
    int rc = ff_site_batch_alloc(&b, B, sh);
    if (rc != FF_OK)
        return rc;
    uint32_t *idx = calloc((size_t)B, sizeof *idx);
    float *ua = malloc((size_t)B * (size_t)p * sizeof *ua);
    float *uc = malloc((size_t)B * (size_t)p * sizeof *uc);
    if (!idx || !ua || !uc)
        rc = ff_error(FF_ENOMEM, "out of memory");
    for (size_t start = 0; rc == FF_OK && start < n; start += (size_t)B) {
        int cnt = (int)FF_MIN((size_t)B, n - start);
        for (int i = 0; i < cnt; i++)
            idx[i] = (uint32_t)(start + (size_t)i);
        rc = ff_site_batch(s, split, idx, (size_t)cnt, NULL, NULL, &b);
        ff_batch view = b;
        view.B = cnt;
        if (rc == FF_OK)
            rc = ff_model_forward(m, &view, NULL, NULL);
        if (rc == FF_OK)
            rc = ff_contrastive_embed(c, a, ua);
        if (rc == FF_OK)
            rc = ff_contrastive_embed(c, e, uc);
        for (int i = 0; rc == FF_OK && i < cnt; i++) {
            if (!ff_batch_present(&view, i, a) || !ff_batch_present(&view, i, e))
                continue;
            memcpy(ea + got * (size_t)p, ua + (size_t)i * p, (size_t)p * sizeof(float));
            memcpy(ec + got * (size_t)p, uc + (size_t)i * p, (size_t)p * sizeof(float));
            got++;
        }
    }
    *count = got;
    free(idx);
    free(ua);
    free(uc);
    ff_batch_free(&b);
    return rc;
}

/* Rank of query q's own partner among n candidates (0 = first); ties count against it. */
static size_t partner_rank(const float *ea, const float *ec, size_t n, int p, size_t q)
{
    double own = 0;
    const float *x = ea + q * (size_t)p;
    for (int k = 0; k < p; k++)
        own += (double)x[k] * ec[q * (size_t)p + k];
    size_t rank = 0;
    for (size_t j = 0; j < n; j++) {
        if (j == q)
            continue;
        double s = 0;
        for (int k = 0; k < p; k++)
            s += (double)x[k] * ec[j * (size_t)p + k];
        rank += s >= own;
    }
    return rank;
}

int ff_local_retrieval(ff_model *m, ff_site *const *sites, size_t n, ff_split split, int a,
                       int e, double *top1, double *top5, size_t *npairs, double *chance)
{
    *top1 = *top5 = *chance = 0;
    *npairs = 0;
    if (a < 0 || a > 2 || e < 0 || e > 2 || a == e)
        return ff_error(FF_EINVAL, "retrieval: modality pair (%d,%d) is not two of 0..2", a, e);
    ff_contrastive *c = NULL;
    int rc = ff_contrastive_new(&c, m);
    if (rc != FF_OK)
        return rc;
    int p = (int)ff_model_cfg(m)->projection;
    size_t hit1 = 0, hit5 = 0, total = 0;
    double ch = 0;
    for (size_t si = 0; rc == FF_OK && si < n; si++) {
        size_t cap = ff_site_count(sites[si], split), cnt = 0;
        float *ea = malloc((cap + 1) * (size_t)p * sizeof *ea);
        float *ec = malloc((cap + 1) * (size_t)p * sizeof *ec);
        rc = ea && ec ? embed_site(m, c, sites[si], split, a, e, ea, ec, &cnt)
                      : ff_error(FF_ENOMEM, "out of memory");
        for (size_t q = 0; rc == FF_OK && q < cnt; q++) {
            size_t r = partner_rank(ea, ec, cnt, p, q);
            hit1 += r < 1;
            hit5 += r < 5;
        }
        total += cnt;
        ch += cnt ? 1.0 : 0.0; /* a random ranking puts the partner first with p = 1/cnt */
        free(ea);
        free(ec);
    }
    ff_contrastive_free(c);
    if (rc != FF_OK)
        return rc;
    if (total == 0)
        return ff_error(FF_EINVAL, "retrieval: no held-out patient has both modalities");
    *top1 = (double)hit1 / (double)total;
    *top5 = (double)hit5 / (double)total;
    *chance = ch / (double)total; /* Σ_sites cnt · (1/cnt) / total */
    *npairs = total;
    return FF_OK;
}
