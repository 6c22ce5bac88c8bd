/* Secure aggregation in the coordinator's round: the `train` phase is replaced by
 * advertise_keys → share_keys → masked_input → consistency_check → unmask (SecAgg+ with the
 * consistency check of Bonawitz et al., crypto/). The coordinator only
 * relays the sites' messages through ff_secagg_server and, at the close of `unmask`, obtains
 * the SUM of the surviving sites' encoded inputs, decodes it and hands Σ n_i Δ_i, Σ n_i to the
 * engine (ff_coord_provide_sum). It never sees a single site's update in the clear. */
#include <stdlib.h>
#include <string.h>

#include "fed_secagg.h"

static void round_free(fed_secagg *sa)
{
    ff_secagg_server_free(sa->srv);
    sa->srv = NULL;
    ff_secagg_buf_free(&sa->adv);
    ff_secagg_buf_free(&sa->chk);
    ff_secagg_buf_free(&sa->req);
    for (size_t i = 0; sa->shares && i < sa->nsites; i++)
        ff_secagg_buf_free(&sa->shares[i]);
    sa->n = 0;
}

/* The selection of the round (the engine's sites_selected event): secagg index = position. */
static void on_event(void *ud, const ff_coord_event *ev)
{
    fed_secagg *sa = ud;
    if (ev->type == FF_EV_QUORUM_FAIL &&
        (strcmp(ev->phase, FF_PHASE_ADVERTISE) == 0 || strcmp(ev->phase, FF_PHASE_SHARE) == 0 ||
         strcmp(ev->phase, FF_PHASE_MASKED) == 0 || strcmp(ev->phase, FF_PHASE_UNMASK) == 0))
        /* the quorum is at least t (config check), so fewer answers can never be unmasked */
        FF_LOG_ERROR("round %lld: secure aggregation failed closed in phase %s: %lld of %zu sites "
                     "answered, t=%lld; nothing was unmasked and the model is unchanged",
                     (long long)ev->round, ev->phase, (long long)ev->count, sa->n ? sa->n : sa->nsel,
                     (long long)sa->cfg->secure_aggregation.threshold);
    if (ev->type != FF_EV_SITES_SELECTED)
        return;
    sa->nsel = 0;
    for (size_t i = 0; i < sa->nsites; i++)
        sa->index_of[i] = -1;
    const char *p = ev->detail;
    while (p && *p) {
        while (*p == ' ')
            p++;
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        for (size_t i = 0; i < sa->nsites; i++)
            if (strlen(sa->names[i]) == l && strncmp(sa->names[i], p, l) == 0) {
                sa->index_of[i] = (int)sa->nsel;
                sa->site_of[sa->nsel++] = (int)i;
            }
        p = e ? e + 1 : NULL;
    }
    sa->attempt = ev->attempt;
}

static int adv_open(void *ud, ff_coord *c, int64_t round)
{
    fed_secagg *sa = ud;
    round_free(sa);
    if (sa->nsel < 2)
        return ff_error(FF_EPOLICY, "round %lld: secure aggregation needs at least 2 selected "
                        "sites, %zu were selected", (long long)round, sa->nsel);
    /* one lane per parameter, or per padded coordinate of the distributed discrete Gaussian,
     * then the weight lane */
    int ddg = sa->dp && sa->dp->on && sa->dp->ddg;
    size_t nparams = ff_coord_nparams(c);
    uint64_t nv = (uint64_t)(ddg ? ff_privacy_ddg_padded_dim(nparams) : nparams) + 1;
    ff_secagg_params_default(&sa->p, 0, (uint32_t)sa->nsel, nv);
    sa->p.round_id = ((uint64_t)ff_fnv1a32(sa->run_id, strlen(sa->run_id)) << 32) ^
                     ((uint64_t)round << 8) ^ (uint64_t)sa->attempt;
    if (sa->cfg->secure_aggregation.neighbours > 0)
        sa->p.k = (uint32_t)FF_MIN(sa->cfg->secure_aggregation.neighbours, (int64_t)sa->nsel - 1);
    sa->p.t = (uint32_t)sa->cfg->secure_aggregation.threshold;
    uint32_t deg = ff_secagg_degree(&sa->p);
    if (sa->p.t > deg + 1 || 2 * sa->p.t <= deg + 1)
        return ff_error(FF_ECONFIG, "round %lld: secure_aggregation.threshold %u does not fit %u "
                        "selected sites with %u neighbours each (needs %u < t <= %u)",
                        (long long)round, sa->p.t, sa->p.n_sites, deg, (deg + 1) / 2, deg + 1);
    int rc = ff_secagg_params_check(&sa->p);
    for (size_t j = 0; rc == FF_OK && j < sa->nsel; j++)
        if (!(sa->sel_keys[j] = sa->keys[sa->site_of[j]]))
            rc = ff_error(FF_ESTATE, "round %lld: site '%s' was selected before its key was "
                          "known", (long long)round, sa->names[sa->site_of[j]]);
    if (rc == FF_OK)
        rc = ff_secagg_server_new(&sa->srv, &sa->p, sa->sel_keys);
    if (rc == FF_OK)
        rc = ff_secagg_codec_init(&sa->codec, FED_SECAGG_CLIP, 0, sa->p.n_sites,
                                  FED_SECAGG_MAX_WEIGHT);
    if (rc != FF_OK)
        return rc;
    sa->n = sa->nsel;
    json_decref(sa->entry);
    sa->entry = json_pack("{s:I, s:I, s:I, s:I, s:i, s:f}", "round", (json_int_t)round, "n",
                          (json_int_t)sa->p.n_sites, "t", (json_int_t)sa->p.t, "k",
                          (json_int_t)sa->p.k, "modulus_bits", 32, "clip_range", FED_SECAGG_CLIP);
    if (ddg) {
        ff_privacy_ddg_config k;
        size_t d;
        int drc = fed_dp_ddg_config(&sa->dp->cfg, sa->p.n_sites, sa->p.round_id, nparams, &k, &d);
        if (drc != FF_OK)
            return drc;
        json_object_set_new(sa->entry, "dp", json_pack("{s:s, s:I, s:i, s:f, s:f}", "mechanism",
                                                       "distributed_discrete_gaussian", "dim",
                                                       (json_int_t)d, "bits", k.bits, "gamma",
                                                       k.gamma, "site_noise_std", k.sigma));
    }
    uint8_t h[FF_SHA256_BYTES];
    char hex[FF_SHA256_HEX];
    ff_sha256(ff_coord_global(c), ff_coord_nparams(c) * sizeof(float), h);
    ff_hex(h, sizeof h, hex);
    if (sa->audit)
        fed_audit_secagg(sa->audit, hex, sa->entry);
    FF_LOG_INFO("round %lld: secure aggregation n=%u k=%u t=%u, %llu lanes, scale 2^%d",
                (long long)round, sa->p.n_sites, sa->p.k, sa->p.t, (unsigned long long)nv,
                (int)(log2(sa->codec.scale) + 0.5));
    return FF_OK;
}

/* Any client message: it must come from the site the coordinator authenticated. */
static int any_submit(void *ud, ff_coord *c, int site, const void *msg, size_t len)
{
    fed_secagg *sa = ud;
    (void)c;
    ff_secagg_msg_type type;
    uint64_t rid;
    uint32_t sender;
    int rc = ff_secagg_msg_peek(msg, len, &type, &rid, &sender);
    if (rc != FF_OK)
        return rc;
    if (!sa->srv || site < 0 || (size_t)site >= sa->nsites || sa->index_of[site] < 0 ||
        sender != (uint32_t)sa->index_of[site])
        return ff_error(FF_EPOLICY, "secure aggregation: site %s sent a message as index %u",
                        site >= 0 && (size_t)site < sa->nsites ? sa->names[site] : "?", sender);
    return ff_secagg_server_add(sa->srv, msg, len);
}

static int share_open(void *ud, ff_coord *c, int64_t round)
{
    fed_secagg *sa = ud;
    (void)c;
    (void)round;
    return sa->srv ? ff_secagg_server_advertise_set(sa->srv, &sa->adv)
                   : ff_error(FF_ESTATE, "secure aggregation: no round state");
}

static int masked_open(void *ud, ff_coord *c, int64_t round)
{
    fed_secagg *sa = ud;
    (void)c;
    (void)round;
    int rc = sa->srv ? FF_OK : ff_error(FF_ESTATE, "secure aggregation: no round state");
    for (size_t j = 0; rc == FF_OK && j < sa->n; j++)
        if (ff_secagg_server_accepted(sa->srv, FF_SECAGG_MSG_SHARES, (uint32_t)j))
            rc = ff_secagg_server_shares_for(sa->srv, (uint32_t)j, &sa->shares[j]);
    return rc;
}

/* Closes masked_input: the survivor set U3 goes to the survivors, who sign it. */
static int check_open(void *ud, ff_coord *c, int64_t round)
{
    fed_secagg *sa = ud;
    (void)c;
    (void)round;
    return sa->srv ? ff_secagg_server_check_request(sa->srv, &sa->chk)
                   : ff_error(FF_ESTATE, "secure aggregation: no round state");
}

static int unmask_open(void *ud, ff_coord *c, int64_t round)
{
    fed_secagg *sa = ud;
    (void)c;
    (void)round;
    return sa->srv ? ff_secagg_server_unmask_request(sa->srv, &sa->req)
                   : ff_error(FF_ESTATE, "secure aggregation: no round state");
}

/* The distributed discrete Gaussian's sum: lanes [0, d) are Σ (rounded, rotated, scaled
 * clipped update + noise share) mod 2^bits, lane d counts the inputs in the sum (each site
 * puts 1 there): the survivors whose noise the accountant may use. Σ clip(Δ_i) + noise is
 * handed to the engine with the selected sites as the fixed denominator. */
static int ddg_close(fed_secagg *sa, ff_coord *c, const uint32_t *sum)
{
    size_t n = ff_coord_nparams(c), d;
    ff_privacy_ddg_config k;
    int rc = fed_dp_ddg_config(&sa->dp->cfg, sa->p.n_sites, sa->p.round_id, n, &k, &d);
    if (rc != FF_OK)
        return rc;
    if ((uint64_t)d + 1 != sa->p.n_values)
        return ff_error(FF_EINTERNAL, "ddg: %zu padded lanes, secure aggregation has %llu", d,
                        (unsigned long long)sa->p.n_values);
    int64_t survivors = sum[d];
    if (survivors < 1 || survivors > (int64_t)sa->p.n_sites)
        return ff_error(FF_EPOLICY, "round %lld: the weight lane says %lld inputs in the sum of "
                        "%u sites", (long long)ff_coord_round(c), (long long)survivors,
                        sa->p.n_sites);
    uint64_t *s64 = malloc(d * sizeof *s64);
    float *y = malloc(n * sizeof *y);
    rc = s64 && y ? FF_OK : ff_error(FF_ENOMEM, "ddg: out of memory");
    for (size_t i = 0; rc == FF_OK && i < d; i++)
        s64[i] = sum[i]; /* 2^bits divides 2^32: the sum mod 2^32 reduces to the sum mod 2^bits */
    if (rc == FF_OK)
        rc = ff_privacy_ddg_decode(&k, s64, d, y, n);
    if (rc == FF_OK)
        rc = fed_dp_record_ddg(sa->dp, ff_coord_round(c), survivors, sa->p.n_sites, &k, d);
    if (rc == FF_OK)
        rc = ff_coord_provide_sum(c, y, (double)sa->p.n_sites, n);
    if (rc == FF_OK)
        FF_LOG_INFO("round %lld: decoded the noisy sum of %lld sites (distributed discrete "
                    "Gaussian, d=%zu, gamma %.3g, 2^%d)", (long long)ff_coord_round(c),
                    (long long)survivors, d, k.gamma, k.bits);
    free(s64);
    free(y);
    return rc;
}

static int unmask_close(void *ud, ff_coord *c, const int *done, size_t ndone)
{
    fed_secagg *sa = ud;
    (void)done;
    size_t n = ff_coord_nparams(c);
    uint32_t *sum = malloc(sa->p.n_values * sizeof *sum);
    double *dec = malloc((n + 1) * sizeof *dec);
    float *ws = malloc((n + 1) * sizeof *ws);
    int rc = sum && dec && ws ? FF_OK : ff_error(FF_ENOMEM, "secure aggregation: out of memory");
    if (rc == FF_OK && (rc = ff_secagg_server_finish(sa->srv, sum)) != FF_OK)
        rc = ff_error_prefix(rc, "round %lld: secure aggregation failed closed (%zu sites "
                             "answered the unmask request, threshold t=%u): ",
                             (long long)ff_coord_round(c), ndone, sa->p.t);
    uint64_t weight = 0;
    if (rc == FF_OK && sa->raw_sum) {
        /* statistics: integer lanes, exact sums; the engine gets a zero update */
        size_t nl = (size_t)sa->p.n_values - 1;
        rc = sa->raw_sum(sa->raw_ud, c, sum, nl, sum[nl]);
        for (size_t i = 0; rc == FF_OK && i < n; i++)
            ws[i] = 0;
        if (rc == FF_OK)
            rc = ff_coord_provide_sum(c, ws, (double)FF_MAX(sum[nl], 1u), n);
        if (rc == FF_OK)
            ff_coord_provide_sites(c, ff_secagg_server_n_survivors(sa->srv));
        free(sum);
        free(dec);
        free(ws);
        round_free(sa);
        return rc;
    }
    if (rc == FF_OK && sa->dp && sa->dp->on && sa->dp->ddg) {
        rc = ddg_close(sa, c, sum);
        free(sum);
        free(dec);
        free(ws);
        round_free(sa);
        return rc;
    }
    if (rc == FF_OK) {
        ff_secagg_decode(&sa->codec, sum, n, dec, &weight);
        for (size_t i = 0; i < n; i++)
            ws[i] = (float)(dec[i] * FED_SECAGG_MAX_WEIGHT);
        if (weight == 0)
            rc = ff_error(FF_EPOLICY, "round %lld: secure aggregation: the sum holds no examples",
                          (long long)ff_coord_round(c));
    }
    if (rc == FF_OK)
        rc = ff_coord_provide_sum(c, ws, (double)weight, n);
    if (rc == FF_OK)
        ff_coord_provide_sites(c, ff_secagg_server_n_survivors(sa->srv));
    if (rc == FF_OK)
        FF_LOG_INFO("round %lld: unmasked the sum of %u sites (%llu examples)",
                    (long long)ff_coord_round(c), ff_secagg_server_n_survivors(sa->srv),
                    (unsigned long long)weight);
    free(sum);
    free(dec);
    free(ws);
    round_free(sa);
    return rc;
}

void fed_secagg_add_site(fed_secagg *sa)
{
    if (sa->index_of && sa->nsites < FF_COORD_MAX_SITES)
        sa->index_of[sa->nsites++] = -1; /* not in the round under way */
}

int fed_secagg_install(fed_secagg *sa, ff_coord *c, const ff_coord_config *cfg,
                       const char *const *names, size_t nsites, EVP_PKEY **keys,
                       const char *run_id, fed_audit *audit)
{
    memset(sa, 0, sizeof *sa);
    sa->cfg = cfg;
    sa->names = names;
    sa->nsites = nsites;
    sa->audit = audit && audit->log ? audit : NULL;
    ff_strlcpy(sa->run_id, run_id, sizeof sa->run_id);
    sa->keys = keys;
    /* for every site that may join during the run (fed_secagg_add_site) */
    sa->sel_keys = calloc(FF_COORD_MAX_SITES, sizeof *sa->sel_keys);
    sa->index_of = calloc(FF_COORD_MAX_SITES, sizeof *sa->index_of);
    sa->site_of = calloc(FF_COORD_MAX_SITES, sizeof *sa->site_of);
    sa->shares = calloc(FF_COORD_MAX_SITES, sizeof *sa->shares);
    for (size_t i = 0; sa->index_of && i < FF_COORD_MAX_SITES; i++)
        sa->index_of[i] = -1;
    if (!sa->sel_keys || !sa->index_of || !sa->site_of || !sa->shares)
        return ff_error(FF_ENOMEM, "secure aggregation: out of memory");
    int rc = ff_coord_add_hook(c, on_event, sa);
    if (rc == FF_OK)
        rc = ff_coord_phase_remove(c, FF_PHASE_TRAIN);
    /* deadlines from the phase table (the consistency check shares unmask's) */
    ff_coord_phase ph[5] = {
        {.name = FF_PHASE_ADVERTISE, .kind = FF_PHASE_COLLECT, .expect = FF_PHASE_FROM_SELECTED,
         .min_sites = -1, .on_open = adv_open,
         .on_submit = any_submit, .ud = sa},
        {.name = FF_PHASE_SHARE, .kind = FF_PHASE_COLLECT, .expect = FF_PHASE_FROM_PREVIOUS,
         .min_sites = -1, .on_open = share_open,
         .on_submit = any_submit, .ud = sa},
        {.name = FF_PHASE_MASKED, .kind = FF_PHASE_COLLECT, .expect = FF_PHASE_FROM_PREVIOUS,
         .min_sites = -1, .on_open = masked_open,
         .on_submit = any_submit, .ud = sa},
        {.name = FF_PHASE_CHECK, .kind = FF_PHASE_COLLECT, .expect = FF_PHASE_FROM_PREVIOUS,
         .min_sites = -1, .on_open = check_open,
         .on_submit = any_submit, .ud = sa},
        {.name = FF_PHASE_UNMASK, .kind = FF_PHASE_COLLECT, .expect = FF_PHASE_FROM_PREVIOUS,
         .min_sites = -1, .on_open = unmask_open,
         .on_submit = any_submit, .on_close = unmask_close, .ud = sa},
    };
    for (int i = 0; rc == FF_OK && i < 5; i++) {
        ph[i].deadline_s = ff_phase_deadline(ff_phase_by_name(ph[i].name), cfg);
        rc = ff_coord_phase_insert(c, FF_PHASE_AGGREGATE, &ph[i]);
    }
    return rc;
}

void fed_secagg_free(fed_secagg *sa)
{
    round_free(sa);
    free(sa->sel_keys); /* keys are the roster's */
    free(sa->index_of);
    free(sa->site_of);
    free(sa->shares);
    json_decref(sa->entry);
    memset(sa, 0, sizeof *sa);
}

/* The round's audit entry (sa->entry, as logged) in wire form. */
static Fedfuse__SecAggAuditEntry *wire_entry(const json_t *e, ff_call *call)
{
    Fedfuse__SecAggAuditEntry *w = ff_call_alloc(call, sizeof *w);
    if (!w)
        return NULL;
    fedfuse__sec_agg_audit_entry__init(w);
    w->round = (int64_t)json_integer_value(json_object_get(e, "round"));
    w->n = (uint32_t)json_integer_value(json_object_get(e, "n"));
    w->t = (uint32_t)json_integer_value(json_object_get(e, "t"));
    w->k = (uint32_t)json_integer_value(json_object_get(e, "k"));
    w->modulus_bits = (uint32_t)json_integer_value(json_object_get(e, "modulus_bits"));
    w->clip_range = json_number_value(json_object_get(e, "clip_range"));
    const json_t *dp = json_object_get(e, "dp");
    if (!dp)
        return w;
    Fedfuse__DdgParams *d = ff_call_alloc(call, sizeof *d);
    if (!d)
        return NULL;
    fedfuse__ddg_params__init(d);
    d->mechanism = ff_call_strdup(call, json_string_value(json_object_get(dp, "mechanism")));
    d->dim = (uint64_t)json_integer_value(json_object_get(dp, "dim"));
    d->bits = (int32_t)json_integer_value(json_object_get(dp, "bits"));
    d->gamma = json_number_value(json_object_get(dp, "gamma"));
    d->site_noise_std = json_number_value(json_object_get(dp, "site_noise_std"));
    w->dp = d->mechanism ? d : NULL;
    return w->dp ? w : NULL;
}

int fed_secagg_task(fed_secagg *sa, int site, const char *phase, ff_call *call, Fedfuse__Task *t)
{
    const ff_secagg_buf *body = NULL;
    if (strcmp(phase, FF_PHASE_SHARE) == 0)
        body = &sa->adv;
    else if (strcmp(phase, FF_PHASE_MASKED) == 0)
        body = sa->index_of[site] >= 0 ? &sa->shares[sa->index_of[site]] : NULL;
    else if (strcmp(phase, FF_PHASE_CHECK) == 0)
        body = &sa->chk;
    else if (strcmp(phase, FF_PHASE_UNMASK) == 0)
        body = &sa->req;
    Fedfuse__SecAggParams *sp = ff_call_alloc(call, sizeof *sp);
    char **names = ff_call_alloc(call, (sa->n + 1) * sizeof *names);
    if (!sp || !names)
        return ff_error(FF_ENOMEM, "secure aggregation: out of memory");
    fedfuse__sec_agg_params__init(sp);
    sp->enabled = 1;
    sp->threshold = sa->p.t;
    sp->num_sites = sa->p.n_sites;
    sp->field_bits = 32;
    sp->round_id = sa->p.round_id;
    sp->neighbours = sa->p.k;
    sp->n_values = sa->p.n_values;
    sp->index = sa->index_of[site] >= 0 ? (uint32_t)sa->index_of[site] : UINT32_MAX;
    for (size_t j = 0; j < sa->n; j++)
        if (!(names[j] = ff_call_strdup(call, sa->names[sa->site_of[j]])))
            return ff_error(FF_ENOMEM, "secure aggregation: out of memory");
    sp->n_sites = sa->n;
    sp->sites = names;
    sp->clip = sa->codec.clip;
    sp->scale = sa->codec.scale;
    sp->max_weight = FED_SECAGG_MAX_WEIGHT;
    if (!(sp->entry = wire_entry(sa->entry, call)))
        return ff_error(FF_ENOMEM, "secure aggregation: out of memory");
    t->secagg = sp;
    if (body && body->data && body->len) {
        /* a copy: the reply is sent after the node's lock is released, and a new round
         * frees the messages of the last */
        uint8_t *m = ff_call_alloc(call, body->len);
        if (!m)
            return ff_error(FF_ENOMEM, "secure aggregation: out of memory");
        memcpy(m, body->data, body->len);
        t->secagg_message = (ProtobufCBinaryData){body->len, m};
    }
    return FF_OK;
}
