/* The hospital client's side of secure aggregation (docs/federation.md, "Secure aggregation in
 * the round"): the verified roster's peer keys, the durable guard (docs/secagg.md), and the
 * SecAgg+ phases from advertise_keys to unmask, for training and statistics jobs. */
#include "client_internal.h"

/* ---- secure aggregation (docs/federation.md, "Secure aggregation in the round") ------------ */

/* The Ed25519 key of peer `name`, from the verified roster. */
static int peer_key(cnode *cn, const char *name, EVP_PKEY **out)
{
    for (size_t i = 0; i < cn->sa.nkeys; i++)
        if (strcmp(cn->sa.names[i], name) == 0) {
            *out = cn->sa.keys[i];
            return FF_OK;
        }
    return ff_error(FF_EPOLICY, "secure aggregation: site '%s' is not in the consortium roster "
                    "(version %llu) with a certificate this site could verify", name,
                    (unsigned long long)cn->roster_version);
}

/* Takes a roster (Task.roster): every certificate must chain to our CA, be valid now, not be
 * on the CRL (which our CA must have signed) and carry the CN it is listed under; the others
 * are left out with a warning. The previous keys are retired. */
int fed_cn_roster_take(cnode *cn, const Fedfuse__Roster *r)
{
    if (r->version == 0 || r->n_sites > FF_COORD_MAX_SITES)
        return ff_error(FF_EFORMAT, "roster: version %llu with %zu sites",
                        (unsigned long long)r->version, r->n_sites);
    X509_CRL *crl = NULL;
    if (r->crl_pem.len &&
        ff_pki_crl_from_pem((const char *)r->crl_pem.data, r->crl_pem.len, cn->ca, &crl) != FF_OK) {
        FF_LOG_WARN("roster version %llu refused: %s", (unsigned long long)r->version,
                    ff_error_message());
        return FF_OK; /* keep the previous one */
    }
    size_t n = r->n_sites, k = 0;
    EVP_PKEY **keys = calloc(n + 1, sizeof *keys);
    char(*names)[FF_SITE_NAME_MAX] = calloc(n + 1, sizeof *names);
    EVP_PKEY **ret = realloc(cn->retired, (cn->nretired + cn->sa.nkeys + 1) * sizeof *ret);
    if (ret)
        cn->retired = ret;
    if (!keys || !names || !ret) {
        free(keys);
        free(names);
        X509_CRL_free(crl);
        return ff_error(FF_ENOMEM, "roster: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = r->sites[i]->name;
        const ProtobufCBinaryData *pem = &r->sites[i]->cert_pem;
        X509 *x = NULL;
        char cn_[FF_SITE_NAME_MAX];
        int rc = name && name[0] && strlen(name) < FF_SITE_NAME_MAX && pem->len
                     ? ff_pki_cert_from_pem((const char *)pem->data, pem->len, &x)
                     : ff_error(FF_EFORMAT, "entry %zu has no valid name or cert", i);
        if (rc == FF_OK)
            rc = ff_pki_check_peer(cn->ca, crl, x, cn_, sizeof cn_);
        if (rc == FF_OK && strcmp(cn_, name) != 0)
            rc = ff_error(FF_EPOLICY, "listed as '%s' but its CN is '%s'", name, cn_);
        if (rc == FF_OK && (keys[k] = X509_get_pubkey(x)) != NULL)
            ff_strlcpy(names[k++], name, FF_SITE_NAME_MAX);
        else
            FF_LOG_WARN("roster: site '%s' left out: %s", name ? name : "?", ff_error_message());
        X509_free(x);
    }
    for (size_t q = 0; q < cn->sa.nkeys; q++)
        cn->retired[cn->nretired++] = cn->sa.keys[q];
    free(cn->sa.keys);
    free(cn->sa.names);
    cn->sa.keys = keys;
    cn->sa.names = names;
    cn->sa.nkeys = k;
    cn->roster_version = r->version;
    FF_LOG_INFO("roster version %llu: %zu of %zu sites verified against the CA and CRL",
                (unsigned long long)r->version, k, n);
    X509_CRL_free(crl);
    return FF_OK;
}

static const char *site_name_at(json_t *sites, size_t i)
{
    const char *s = json_string_value(json_array_get(sites, i));
    return s ? s : "";
}

void fed_cn_secagg_reset(cnode *cn)
{
    ff_secagg_client_free(cn->sa.c);
    cn->sa.c = NULL;
    json_decref(cn->sa.entry);
    cn->sa.entry = NULL;
    json_decref(cn->sa.sites);
    cn->sa.sites = NULL;
    cn->sa.step = 0;
}

/* ---- the secure-aggregation guard (ff_fed_guard_*, docs/secagg.md) ---- */

static void guard_path(const cnode *cn, char *path, size_t cap)
{
    snprintf(path, cap, "%s/secagg-guard-%s.json", cn->sc->out_dir, cn->sc->site);
}

/* The guard's view of round t: its job, starting model and the sites selected at
 * advertise_keys; *names (pointers into cn->sa.sites) is the caller's to free. */
static int guard_use(cnode *cn, const Fedfuse__Task *t, ff_fed_guard_use *u, const char ***names)
{
    memset(u, 0, sizeof *u);
    size_t n = json_array_size(cn->sa.sites);
    *names = calloc(n + 1, sizeof **names);
    if (!*names)
        return ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        (*names)[i] = site_name_at(cn->sa.sites, i);
    fed_cn_hex_of(&t->job_sha256, u->job);
    fed_cn_hex_of(&t->model_sha256, u->model);
    u->round = t->round;
    u->sites = *names;
    u->nsites = n;
    if (cn->sa.upd_round == t->round)
        ff_strlcpy(u->update, cn->sa.update_sha, sizeof u->update);
    return FF_OK;
}

typedef enum {
    GUARD_CHECK,     /* before this site trains or takes part */
    GUARD_COMMIT,    /* before the masked input leaves; seed: the contribution's noise seed */
    GUARD_SURVIVORS, /* the survivor set this site just signed, before the signature leaves */
} guard_op;

/* The guard's op for round t (ff_fed_guard_*): FF_EPOLICY when it refuses. */
static int guard_run(cnode *cn, const Fedfuse__Task *t, guard_op op, uint8_t seed[32])
{
    char path[700];
    const char **names = NULL, **u3 = NULL;
    ff_fed_guard_use u;
    guard_path(cn, path, sizeof path);
    int rc = guard_use(cn, t, &u, &names);
    size_t k = 0;
    if (rc == FF_OK && op == GUARD_SURVIVORS && !(u3 = calloc(u.nsites + 1, sizeof *u3)))
        rc = ff_error(FF_ENOMEM, "out of memory");
    for (size_t i = 0; rc == FF_OK && u3 && i < u.nsites; i++)
        if (ff_secagg_client_survivor(cn->sa.c, (uint32_t)i) == 1)
            u3[k++] = names[i];
    if (rc == FF_OK)
        rc = op == GUARD_CHECK    ? ff_fed_guard_check(path, &u)
             : op == GUARD_COMMIT ? ff_fed_guard_commit(path, &u, cn->run_id, seed)
                                  : ff_fed_guard_survivors(path, &u, u3, k);
    free(u3);
    free(names);
    return rc;
}

/* Before a masked input leaves: the contribution recorded, or refused (FF_EPOLICY, said in
 * the site's error code); seed: its noise seed. */
static int guard_commit(cnode *cn, const Fedfuse__Task *t, uint8_t seed[32])
{
    int rc = guard_run(cn, t, GUARD_COMMIT, seed);
    if (rc == FF_EPOLICY)
        fed_cn_set_error(cn, FED_ERR_SECAGG_GUARD);
    return rc;
}


/* The secure-aggregation parameters of a task of its phases, range-checked before any is
 * used (the protocol's own rules are checked again by ff_secagg_params_check). */
static int secagg_params(const Fedfuse__Task *t, const Fedfuse__SecAggParams **out)
{
    const Fedfuse__SecAggParams *sp = t->secagg;
    *out = NULL;
    if (!sp || !sp->enabled || !sp->entry)
        return ff_error(FF_EFORMAT, "round %u: secure-aggregation task without parameters", t->round);
    if (sp->n_sites != sp->num_sites || sp->index >= sp->num_sites)
        return ff_error(FF_EFORMAT, "round %u: secure-aggregation parameters name %zu sites for "
                        "n=%u, index %u", t->round, sp->n_sites, sp->num_sites, sp->index);
    for (size_t i = 0; i < sp->n_sites; i++)
        if (!sp->sites[i] || !sp->sites[i][0] || strlen(sp->sites[i]) >= FF_SITE_NAME_MAX)
            return ff_error(FF_EFORMAT, "round %u: secure-aggregation site %zu has no valid name",
                            t->round, i);
    if (!isfinite(sp->clip) || !isfinite(sp->scale) || sp->clip <= 0 || sp->scale <= 0 ||
        sp->max_weight == 0)
        return ff_error(FF_EFORMAT, "round %u: secure-aggregation encoding out of range (clip %g, "
                        "scale %g, max weight %u)", t->round, sp->clip, sp->scale, sp->max_weight);
    const Fedfuse__SecAggAuditEntry *e = sp->entry;
    if (e->round != (int64_t)t->round || e->n != sp->num_sites || e->t != sp->threshold ||
        e->k != sp->neighbours || !isfinite(e->clip_range) ||
        (e->dp && (!e->dp->mechanism || !isfinite(e->dp->gamma) || !isfinite(e->dp->site_noise_std))))
        return ff_error(FF_EFORMAT, "round %u: the secure-aggregation audit entry does not match "
                        "the round's parameters", t->round);
    *out = sp;
    return FF_OK;
}

/* The round's audit entry as its log has it (the receipt copies it). */
static json_t *entry_json(const Fedfuse__SecAggAuditEntry *e)
{
    json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:i, s:f}", "round", (json_int_t)e->round, "n",
                          (json_int_t)e->n, "t", (json_int_t)e->t, "k", (json_int_t)e->k,
                          "modulus_bits", (int)e->modulus_bits, "clip_range", e->clip_range);
    if (j && e->dp)
        json_object_set_new(j, "dp", json_pack("{s:s, s:I, s:i, s:f, s:f}", "mechanism",
                                               e->dp->mechanism, "dim", (json_int_t)e->dp->dim,
                                               "bits", (int)e->dp->bits, "gamma", e->dp->gamma,
                                               "site_noise_std", e->dp->site_noise_std));
    return j;
}

static int secagg_send(cnode *cn, const Fedfuse__Task *t, const ff_secagg_buf *b)
{
    Fedfuse__SecAggEnvelope env = FEDFUSE__SEC_AGG_ENVELOPE__INIT;
    env.run_id = cn->run_id;
    env.round = t->round;
    env.phase = t->phase;
    env.body.data = b->data;
    env.body.len = b->len;
    Fedfuse__SecAggEnvelope *reply = NULL;
    int rc = ff_rpc_secagg(cn->cl, &env, &reply, FED_CALL_MESSAGE_MS);
    ff_msg_free(reply);
    return rc;
}

/* The round's parameters against what this site accepts, before it trains: the site's
 * policy (secure_aggregation: min_sites, min_threshold, min_neighbours) and its guard (the
 * same job, round and starting model never summed over another set of sites). *refused says
 * which refused (FF_EPOLICY then, with the reason). */
static int secagg_accept(cnode *cn, const Fedfuse__Task *t, const ff_secagg_params *p,
                         fed_err *refused)
{
    int rc = ff_policy_check_secagg(&cn->pol, p->n_sites, p->t, ff_secagg_degree(p));
    if (rc != FF_OK) {
        *refused = FED_ERR_TASK_REFUSED_POLICY;
        return rc;
    }
    rc = guard_run(cn, t, GUARD_CHECK, NULL);
    if (rc == FF_EPOLICY)
        *refused = FED_ERR_SECAGG_GUARD;
    return rc;
}

/* Phase 1: train (the update stays here), new secagg state, signed advertisement. A
 * statistics job (plan NULL) has its lanes ready (fed_site_stats). */
static int secagg_advertise(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan,
                            const Fedfuse__SecAggParams *sp, ff_secagg_buf *out, fed_err *refused)
{
    int64_t attempt = (int64_t)t->attempt;
    if (ff_round_begin(&cn->fs, t->round, attempt) != FF_OK) {
        FF_LOG_WARN("round %u: %s; not taking part again", t->round, ff_error_message());
        return FF_OK;
    }
    fed_cn_secagg_reset(cn);
    int stats = plan == NULL;
    ff_secagg_params p = {.round_id = sp->round_id, .n_sites = sp->num_sites, .k = sp->neighbours,
                          .t = sp->threshold, .n_values = sp->n_values};
    json_t *sites = json_array();
    for (size_t i = 0; sites && i < sp->n_sites; i++)
        json_array_append_new(sites, json_string(sp->sites[i]));
    uint32_t self = sp->index; /* < n_sites (secagg_params) */
    int rc = sites && json_array_size(sites) == sp->n_sites
                 ? ff_secagg_params_check(&p)
                 : ff_error(FF_ENOMEM, "out of memory");
    int ddg = !stats && plan->privacy.client.enabled &&
              plan->privacy.client.mechanism == FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN;
    uint64_t lanes = stats ? cn->st.nlanes
                           : (uint64_t)(ddg ? ff_privacy_ddg_padded_dim(cn->n) : cn->n) + 1;
    if (rc == FF_OK && (p.n_values != lanes || strcmp(site_name_at(sites, self), cn->sc->site) != 0))
        rc = ff_error(FF_EPOLICY, "round %u: secure-aggregation parameters do not match this "
                      "site (%llu lanes for %zu parameters, index %u)", t->round,
                      (unsigned long long)p.n_values, cn->n, self);
    cn->sa.sites = rc == FF_OK ? json_incref(sites) : NULL;
    json_decref(sites); /* cn->sa.sites holds it from here (or nobody) */
    if (rc == FF_OK)
        rc = secagg_accept(cn, t, &p, refused);
    if (rc == FF_OK && stats && cn->st.dp.on && (int64_t)p.t < cn->st.dp.shares) {
        /* the noise share was drawn for sums of at least dp.shares sites */
        rc = ff_error(FF_EPOLICY, "round %u: threshold %u is below the %lld noise shares this "
                      "site's statistics noise was drawn for", t->round, p.t,
                      (long long)cn->st.dp.shares);
        *refused = FED_ERR_TASK_REFUSED_POLICY;
    }
    if (rc == FF_OK && stats) {
        uint8_t h[FF_SHA256_BYTES];
        ff_sha256(cn->st.lanes, cn->st.nlanes * sizeof *cn->st.lanes, h);
        ff_hex(h, sizeof h, cn->sa.update_sha);
        cn->sa.ntrain = cn->st.rep.cohort;
        cn->sa.upd_round = t->round;
    } else if (rc == FF_OK && cn->sa.upd_round != t->round) {
        /* a retry of the round keeps the update: the global model did not change */
        ff_local_stats st;
        rc = fed_cn_train_local(cn, t, plan, &cn->sa.ntrain, &st);
        if (rc != FF_OK)
            return rc;
        cn->sa.upd_round = t->round;
        uint8_t h[FF_SHA256_BYTES];
        ff_sha256(cn->update, cn->n * sizeof(float), h);
        ff_hex(h, sizeof h, cn->sa.update_sha);
        FF_LOG_INFO("round %u: trained %lld steps on %zu patients, loss %.3f -> %.3f (kept for "
                    "secure aggregation)", t->round, (long long)st.steps, cn->sa.ntrain,
                    st.loss_first, st.loss_last);
    }
    /* the update (or statistics) must be the one contributed before, if any (data changed?) */
    if (rc == FF_OK && (rc = guard_run(cn, t, GUARD_CHECK, NULL)) == FF_EPOLICY)
        *refused = FED_ERR_SECAGG_GUARD;
    free(cn->sa.peers);
    cn->sa.peers = rc == FF_OK ? calloc(p.n_sites, sizeof *cn->sa.peers) : NULL;
    if (rc == FF_OK && !cn->sa.peers)
        rc = ff_error(FF_ENOMEM, "out of memory");
    for (uint32_t i = 0; rc == FF_OK && i < p.n_sites; i++)
        rc = peer_key(cn, site_name_at(sites, i), &cn->sa.peers[i]);
    if (rc == FF_OK)
        rc = ff_secagg_client_new(&cn->sa.c, &p, (uint32_t)self, cn->key, cn->sa.peers);
    if (rc == FF_OK)
        rc = ff_secagg_client_advertise(cn->sa.c, out);
    if (rc == FF_OK) {
        cn->sa.round = t->round;
        cn->sa.attempt = attempt;
        cn->sa.entry = entry_json(sp->entry);
    }
    return rc;
}

/* The distributed discrete Gaussian (KLS21): clip to S, pad, rotate, scale, round, add this
 * site's noise share N_Z(0, (σS/√n/γ)²), wrap mod 2^bits; the last lane is 1 so the sum
 * counts the inputs it holds. The noise seed comes from the OS's generator, drawn once per
 * contribution and kept by the site's guard: nobody else can reproduce (and subtract) the
 * noise, and a retry over the same sites adds the same noise (no second, independent draw
 * the coordinator could average away). */
static int ddg_lanes(cnode *cn, const ff_plan *plan, const Fedfuse__SecAggParams *sp,
                     const uint8_t noise_seed[32], uint32_t *lanes)
{
    ff_privacy_ddg_config k;
    size_t d;
    uint32_t n_sites = sp->num_sites;
    int rc = fed_dp_ddg_config(&plan->privacy.client, n_sites, sp->round_id, cn->n, &k, &d);
    if (rc == FF_OK && sp->n_values != d + 1)
        rc = ff_error(FF_EPOLICY, "ddg: the round has %llu lanes, the plan needs %zu",
                      (unsigned long long)sp->n_values, d + 1);
    uint64_t *out = rc == FF_OK ? malloc(d * sizeof *out) : NULL;
    if (rc == FF_OK && !out)
        rc = ff_error(FF_ENOMEM, "out of memory");
    uint64_t seed[2];
    memcpy(seed, noise_seed, sizeof seed);
    ff_rng rng;
    if (rc == FF_OK) {
        ff_rng_init(&rng, seed[0], seed[1]);
        rc = ff_privacy_ddg_encode(&k, &rng, cn->update, cn->n, out, d);
    }
    for (size_t i = 0; rc == FF_OK && i < d; i++)
        lanes[i] = (uint32_t)out[i];
    if (rc == FF_OK) {
        lanes[d] = 1;
        FF_LOG_INFO("ddg: update clipped to %g, noise share std %.4g (of %u sites), gamma %.3g, "
                    "2^%d, %zu lanes", k.clip_norm, k.sigma, n_sites, k.gamma, k.bits, d + 1);
    }
    ff_secure_zero(seed, sizeof seed);
    ff_secure_zero(&rng, sizeof rng);
    if (out)
        ff_secure_zero(out, d * sizeof *out);
    free(out);
    return rc;
}

static int stats_masked(cnode *cn, const Fedfuse__Task *t, const uint8_t *body, size_t blen);
static int masked_upload(cnode *cn, const Fedfuse__Task *t, ff_secagg_buf *out);

/* Phase 3: encode clip(Δ · n / W) and n (or the ddg lanes), mask, upload as a stream
 * (n_values lanes). */
static int secagg_masked(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan,
                         const Fedfuse__SecAggParams *sp, const uint8_t *body, size_t blen)
{
    if (!plan)
        return stats_masked(cn, t, body, blen);
    int ddg = plan->privacy.client.enabled &&
              plan->privacy.client.mechanism == FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN;
    ff_secagg_codec codec;
    uint32_t w = sp->max_weight;
    int rc = ff_secagg_codec_init(&codec, sp->clip, sp->scale, sp->num_sites, w);
    if (rc == FF_OK && !ddg && (cn->sa.ntrain == 0 || cn->sa.ntrain > w))
        rc = ff_error(FF_EPOLICY, "round %u: %zu training examples; secure aggregation encodes "
                      "1..%u", t->round, cn->sa.ntrain, w);
    uint64_t nv = sp->n_values;
    /* the lanes this site advertised for (secagg_advertise): nothing else is allocated */
    if (rc == FF_OK && nv != (uint64_t)(ddg ? ff_privacy_ddg_padded_dim(cn->n) : cn->n) + 1)
        rc = ff_error(FF_EPOLICY, "round %u: the masked input has %llu lanes, not the %zu "
                      "parameters' (+1)", t->round, (unsigned long long)nv, cn->n);
    /* recorded durably before anything derived from the update leaves (ff_fed_guard_commit) */
    uint8_t noise_seed[32];
    if (rc == FF_OK)
        rc = guard_commit(cn, t, noise_seed);
    float *x = rc == FF_OK ? malloc(cn->n * sizeof *x) : NULL;
    uint32_t *lanes = rc == FF_OK && nv >= cn->n + 1 ? malloc(nv * sizeof *lanes) : NULL;
    if (rc == FF_OK && (!x || !lanes))
        rc = ff_error(FF_ENOMEM, "out of memory (%llu lanes)", (unsigned long long)nv);
    ff_secagg_buf out = {0};
    if (rc == FF_OK && ddg) {
        rc = ddg_lanes(cn, plan, sp, noise_seed, lanes);
    } else if (rc == FF_OK) {
        float f = (float)((double)cn->sa.ntrain / w);
        for (size_t i = 0; i < cn->n; i++)
            x[i] = cn->update[i] * f;
        /* the rounding depends on the round alone, not the attempt: a retry over the same
         * sites gives the coordinator the same sum again */
        ff_rng rng;
        ff_rng_init(&rng, fed_cn_train_seed(cn->sc, t->round) ^ 0x5EC466ull, 0);
        rc = ff_secagg_encode(&codec, &rng, x, cn->n, (uint32_t)cn->sa.ntrain, lanes);
    }
    ff_secure_zero(noise_seed, sizeof noise_seed);
    if (rc == FF_OK)
        rc = ff_secagg_client_mask(cn->sa.c, body, blen, lanes, &out);
    free(x);
    free(lanes);
    return rc == FF_OK ? masked_upload(cn, t, &out) : rc;
}

/* A statistics job's masked input: the integer lanes as computed (suppressed cells are 0);
 * once acknowledged they have left the site and go into its query history. */
static int stats_masked(cnode *cn, const Fedfuse__Task *t, const uint8_t *body, size_t blen)
{
    ff_secagg_buf out = {0};
    uint8_t noise_seed[32]; /* unused: a noised query's share is in its lanes already */
    int rc = guard_commit(cn, t, noise_seed);
    if (rc == FF_OK)
        rc = ff_secagg_client_mask(cn->sa.c, body, blen, cn->st.lanes, &out);
    if (rc == FF_OK)
        rc = masked_upload(cn, t, &out);
    if (rc == FF_OK && fed_site_stats_released(&cn->st, &cn->pol) != FF_OK)
        FF_LOG_WARN("statistics: the query history was not updated: %s", ff_error_message());
    return rc;
}

/* Uploads a masked input (a stream) with this site's signed commitment; frees out. */
static int masked_upload(cnode *cn, const Fedfuse__Task *t, ff_secagg_buf *out)
{
    int rc;
    ff_source src = {.buf = out->data, .size = out->len};
    ff_sha256(out->data, out->len, src.sha256);
    Fedfuse__UploadHeader hdr = FEDFUSE__UPLOAD_HEADER__INIT;
    hdr.run_id = cn->run_id;
    hdr.round = t->round;
    hdr.phase = FEDFUSE__PHASE__PHASE_SECAGG_MASKED_INPUT;
    hdr.kind = FEDFUSE__UPLOAD_KIND__UPLOAD_MASKED_UPDATE;
    uint8_t cbin[FF_SHA256_BYTES], csig[64];
    rc = fed_cn_commit_update(cn, t, cn->sa.update_sha, &hdr, cbin, csig);
    if (rc != FF_OK) {
        ff_secagg_buf_free(out);
        return rc;
    }
    rc = fed_cn_upload(cn, &hdr, &src, FF_PHASE_MASKED);
    if (rc == FF_OK)
        FF_LOG_INFO("round %u: masked input sent (%.1f MB)", t->round, (double)out->len / 1e6);
    ff_secagg_buf_free(out);
    return rc;
}

/* Position of a secure-aggregation phase in the round (the phase table's order: the
 * consistency check has wire id 8 but runs fourth). 0 for other phases. */
int fed_cn_secagg_step(int phase)
{
    const ff_phase_info *p = ff_phase_by_wire(phase);
    return p ? p->secagg_step : 0;
}

int fed_cn_secagg_task(cnode *cn, const Fedfuse__Task *t, const ff_plan *plan)
{
    const Fedfuse__SecAggParams *sp = NULL;
    const uint8_t *body = t->secagg_message.data;
    size_t blen = t->secagg_message.len;
    int rc = secagg_params(t, &sp);
    int64_t attempt = (int64_t)t->attempt;
    int ours = cn->sa.c && cn->sa.round == t->round && cn->sa.attempt == attempt;
    int again = ours && cn->sa.step >= fed_cn_secagg_step((int)t->phase);
    if (rc == FF_OK && (again || (!ours && t->phase != FEDFUSE__PHASE__PHASE_SECAGG_ADVERTISE))) {
        /* we missed an earlier phase of this round (or answered this one already) */
        fed_refusal key = fed_refusal_of(FED_REFUSAL_SECAGG_MISSED, t->round, 0, attempt, NULL, 0);
        if (!ours && !fed_refusal_same(&key, &cn->refused))
            FF_LOG_INFO("round %u: secure aggregation is past advertise_keys (attempt %lld) "
                        "without this site; waiting for the next round", t->round, (long long)attempt);
        if (!ours)
            cn->refused = key;
        sleep(FED_TASK_PAUSE_S);
        return FF_OK;
    }
    ff_secagg_buf out = {0};
    const char *what = "";
    fed_err refused = FED_ERR_NONE;
    switch (rc == FF_OK ? (int)t->phase : -1) {
    case FEDFUSE__PHASE__PHASE_SECAGG_ADVERTISE:
        rc = secagg_advertise(cn, t, plan, sp, &out, &refused);
        what = "keys advertised";
        break;
    case FEDFUSE__PHASE__PHASE_SECAGG_SHARE:
        rc = ff_secagg_client_share(cn->sa.c, body, blen, &out);
        what = "keys shared";
        break;
    case FEDFUSE__PHASE__PHASE_SECAGG_MASKED_INPUT:
        rc = secagg_masked(cn, t, plan, sp, body, blen);
        /* acknowledged: receipted now, like a plain update (a kill before unmask keeps it) */
        if (rc == FF_OK &&
            fed_cn_write_receipt(cn, t, cn->sa.update_sha, (double)cn->sa.ntrain, cn->sa.entry) != FF_OK)
            FF_LOG_WARN("round %u: receipt not written: %s", t->round, ff_error_message());
        break;
    case FEDFUSE__PHASE__PHASE_SECAGG_CONSISTENCY:
        rc = ff_secagg_client_check(cn->sa.c, body, blen, &out);
        /* the sum will be over this set: the guard records it, or refuses, before it leaves */
        if (rc == FF_OK && (rc = guard_run(cn, t, GUARD_SURVIVORS, NULL)) != FF_OK) {
            ff_secagg_buf_free(&out);
            if (rc == FF_EPOLICY)
                fed_cn_set_error(cn, FED_ERR_SECAGG_GUARD);
        }
        what = "survivor set signed";
        break;
    case FEDFUSE__PHASE__PHASE_SECAGG_UNMASK:
        rc = ff_secagg_client_unmask(cn->sa.c, body, blen, &out);
        what = "unmask shares sent";
        break;
    default:
        break;
    }
    if (rc == FF_OK && out.data) {
        fed_test_kill_at(ff_phase_wire_label((int)t->phase), t->round); /* ready, not sent */
        rc = secagg_send(cn, t, &out);
    }
    ff_secagg_buf_free(&out);
    if (refused) {
        /* the site's policy or guard says no to this round: the coordinator is told (it logs
         * the reason and `fedfuse status` shows the code), once per attempt */
        fed_refusal key = fed_refusal_of(FED_REFUSAL_SECAGG, t->round, 0, attempt, NULL, 0);
        fed_cn_secagg_reset(cn);
        fed_cn_refuse_task(cn, t, &key, "secure aggregation refused by this site", refused, 0);
        return FF_OK;
    }
    if (rc == FF_OK && cn->sa.c) {
        cn->sa.step = fed_cn_secagg_step((int)t->phase);
        if (what[0])
            FF_LOG_INFO("round %u: %s", t->round, what);
        /* Test hook (testhook.c; tests/fed, secagg_killed): hold after sharing so a test can
         * kill the process between share_keys and masked_input. */
        unsigned hold = fed_test_hold_after_share();
        if (hold && t->phase == FEDFUSE__PHASE__PHASE_SECAGG_SHARE)
            sleep(hold);
    }
    if (rc == FF_OK && t->phase == FEDFUSE__PHASE__PHASE_SECAGG_UNMASK) {
        if (ff_round_done(&cn->fs, t->round) != FF_OK)
            FF_LOG_WARN("%s", ff_error_message());
        fed_cn_secagg_reset(cn);
    }
    if (rc == FF_ENET || rc == FF_ETIMEOUT || rc == FF_ENOMEM || rc == FF_EIO)
        return rc;
    if (rc != FF_OK) {
        /* a refused or failed check: this round goes on without us (fail closed) */
        FF_LOG_WARN("round %u: secure aggregation: %s", t->round, ff_error_message());
        fed_cn_secagg_reset(cn);
    }
    return FF_OK;
}
