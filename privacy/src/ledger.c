/* The privacy ledger: every round's parameters, the RDP they add, the budget check that
 * lets a site refuse a round, and a JSON form from which anyone can recompute ε. */
#include "ff/privacy.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ff_privacy_ledger {
    int level;
    double budget, delta;
    ff_privacy_conversion conv;
    ff_privacy_accountant acc; /* RDP of every recorded round */
    ff_privacy_round *rounds;
    size_t count, cap;
};

static const char *const level_names[] = {"record", "client"};
static const char *const mech_names[] = {"gaussian", "distributed_discrete_gaussian"};
static const char *const series_names[] = {"dp_accounting", "tf_privacy"};
static const char *const conv_names[] = {"improved", "classic"};

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(names[i], s))
            return (int)i;
    return -1;
}

int ff_privacy_ledger_new(ff_privacy_ledger **out, int level, double epsilon_budget,
                          double delta, const double *orders, size_t n,
                          ff_privacy_series series, ff_privacy_conversion conv)
{
    *out = NULL;
    if (level != FF_PRIVACY_LEVEL_RECORD && level != FF_PRIVACY_LEVEL_CLIENT)
        return ff_error(FF_EINVAL, "ledger: unknown level %d", level);
    if (!(epsilon_budget > 0.0))
        return ff_error(FF_ERANGE, "ledger: epsilon budget %g must be > 0", epsilon_budget);
    if (!(delta > 0.0 && delta < 1.0))
        return ff_error(FF_ERANGE, "ledger: delta %g is outside (0, 1)", delta);
    if (conv != FF_PRIVACY_CONV_IMPROVED && conv != FF_PRIVACY_CONV_CLASSIC)
        return ff_error(FF_EINVAL, "ledger: unknown conversion %d", (int)conv);
    ff_privacy_ledger *l = calloc(1, sizeof *l);
    if (!l)
        return ff_error(FF_ENOMEM, "ledger: allocation");
    int rc = ff_privacy_accountant_init(&l->acc, orders, n, series);
    if (rc != FF_OK) {
        free(l);
        return rc;
    }
    l->level = level;
    l->budget = epsilon_budget;
    l->delta = delta;
    l->conv = conv;
    *out = l;
    return FF_OK;
}

void ff_privacy_ledger_free(ff_privacy_ledger *l)
{
    if (!l)
        return;
    free(l->rounds);
    free(l);
}

/* The RDP one round adds, into a copy of acc. Errors name the round and the field. */
static int round_rdp(const ff_privacy_ledger *l, const ff_privacy_round *r,
                     ff_privacy_accountant *acc)
{
    int rc;
    if (r->level != l->level)
        return ff_error(FF_EINVAL, "round %lld: level %d does not match the ledger's %s",
                        (long long)r->round, r->level, level_names[l->level]);
    /* A record-level round may be a statistics query's distributed discrete Gaussian too:
     * patients, not sites, are the unit either way. */
    if (r->mechanism == FF_PRIVACY_MECH_GAUSSIAN) {
        if (!(r->sigma > 0.0))
            return ff_error(FF_ERANGE, "round %lld: sigma %g must be > 0", (long long)r->round,
                            r->sigma);
        if (r->steps < 1)
            return ff_error(FF_ERANGE, "round %lld: steps %lld must be >= 1",
                            (long long)r->round, (long long)r->steps);
        rc = ff_privacy_accountant_add_sgm(acc, r->q, r->sigma, r->steps);
    } else if (r->mechanism == FF_PRIVACY_MECH_DISTRIBUTED_DISCRETE_GAUSSIAN) {
        if (r->survivors > r->sites)
            return ff_error(FF_EINVAL, "round %lld: %lld survivors of %lld sites",
                            (long long)r->round, (long long)r->survivors,
                            (long long)r->sites);
        /* Only the survivors' noise shares are in the sum: account with them. */
        ff_privacy_ddg_params p = {.clip_norm = r->clip_norm, .gamma = r->ddg_gamma,
                                   .beta = r->ddg_beta, .sigma = r->ddg_sigma,
                                   .dim = r->ddg_dim, .survivors = r->survivors,
                                   .integer = r->ddg_integer};
        rc = ff_privacy_accountant_add_ddg(acc, &p, r->q, 1);
    } else {
        return ff_error(FF_EINVAL, "round %lld: unknown mechanism %d", (long long)r->round,
                        r->mechanism);
    }
    if (rc != FF_OK)
        return ff_error_prefix(rc, "round %lld: ", (long long)r->round);
    return FF_OK;
}

int ff_privacy_ledger_epsilon(const ff_privacy_ledger *l, double *eps, double *order)
{
    if (l->count == 0) {
        *eps = 0.0;
        *order = l->acc.orders[0];
        return FF_OK;
    }
    return ff_privacy_accountant_epsilon(&l->acc, l->delta, l->conv, eps, order);
}

/* The accountant and ε after adding r, computed once for both check and record. */
static int after_round(const ff_privacy_ledger *l, const ff_privacy_round *r,
                       ff_privacy_accountant *acc, double *eps_after)
{
    double order;
    *acc = l->acc;
    int rc = round_rdp(l, r, acc);
    if (rc != FF_OK)
        return rc;
    return ff_privacy_accountant_epsilon(acc, l->delta, l->conv, eps_after, &order);
}

int ff_privacy_ledger_check(const ff_privacy_ledger *l, const ff_privacy_round *r,
                            double *eps_after, int *would_exceed)
{
    ff_privacy_accountant acc;
    int rc = after_round(l, r, &acc, eps_after);
    if (rc != FF_OK)
        return rc;
    *would_exceed = *eps_after > l->budget;
    return FF_OK;
}

int ff_privacy_ledger_record(ff_privacy_ledger *l, const ff_privacy_round *r)
{
    ff_privacy_accountant acc;
    double after;
    int rc = after_round(l, r, &acc, &after);
    if (rc != FF_OK)
        return rc;
    if (after > l->budget) {
        double now, order;
        if (ff_privacy_ledger_epsilon(l, &now, &order) != FF_OK)
            now = NAN;
        return ff_error(FF_EPOLICY,
                        "round %lld refused: %s-level epsilon would reach %.6g, past the budget "
                        "%.6g (spent so far %.6g at delta %g)",
                        (long long)r->round, level_names[l->level], after, l->budget, now,
                        l->delta);
    }
    if (ff_grow(&l->rounds, &l->cap, l->count + 1, sizeof *l->rounds) != FF_OK)
        return ff_error_prefix(FF_ENOMEM, "ledger: ");
    l->acc = acc;
    l->rounds[l->count++] = *r;
    return FF_OK;
}

size_t ff_privacy_ledger_count(const ff_privacy_ledger *l)
{
    return l->count;
}

const ff_privacy_round *ff_privacy_ledger_get(const ff_privacy_ledger *l, size_t i)
{
    return i < l->count ? &l->rounds[i] : NULL;
}

/* ------------------------------------------------------------------ JSON */

static json_t *round_to_json(const ff_privacy_round *r)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:f, s:I, s:f}", "round", (json_int_t)r->round,
                          "level", level_names[r->level], "mechanism",
                          mech_names[r->mechanism == 1], "q", r->q, "steps",
                          (json_int_t)r->steps, "clip_norm", r->clip_norm);
    if (!o)
        return NULL;
    if (r->mechanism == FF_PRIVACY_MECH_GAUSSIAN) {
        json_object_set_new(o, "sigma", json_real(r->sigma));
        if (r->sites > 0) { /* a federated round: who was in the sum (informational) */
            json_object_set_new(o, "survivors", json_integer(r->survivors));
            json_object_set_new(o, "sites", json_integer(r->sites));
        }
    } else {
        json_object_set_new(o, "survivors", json_integer(r->survivors));
        json_object_set_new(o, "sites", json_integer(r->sites));
        json_object_set_new(o, "ddg_sigma", json_real(r->ddg_sigma));
        json_object_set_new(o, "ddg_gamma", json_real(r->ddg_gamma));
        json_object_set_new(o, "ddg_beta", json_real(r->ddg_beta));
        json_object_set_new(o, "ddg_dim", json_integer(r->ddg_dim));
        if (r->ddg_integer) /* only then: older ledgers load unchanged */
            json_object_set_new(o, "ddg_integer", json_true());
    }
    return o;
}

int ff_privacy_ledger_to_json(const ff_privacy_ledger *l, char **out)
{
    double eps, order;
    int rc = ff_privacy_ledger_epsilon(l, &eps, &order);
    if (rc != FF_OK)
        return rc;
    json_t *orders = json_array(), *rounds = json_array();
    json_t *root = json_pack("{s:i, s:s, s:f, s:f, s:s, s:s, s:o, s:o, s:f, s:f}", "version", 1,
                             "level", level_names[l->level], "epsilon_budget", l->budget,
                             "delta", l->delta, "series", series_names[l->acc.series],
                             "conversion", conv_names[l->conv], "orders", orders, "rounds",
                             rounds, "epsilon", eps, "optimal_order", order);
    if (!root)
        return ff_error(FF_ENOMEM, "ledger: JSON");
    for (size_t i = 0; i < l->acc.n; i++)
        json_array_append_new(orders, json_real(l->acc.orders[i]));
    for (size_t i = 0; i < l->count; i++) {
        json_t *r = round_to_json(&l->rounds[i]);
        if (!r || json_array_append_new(rounds, r)) {
            json_decref(root);
            return ff_error(FF_ENOMEM, "ledger: JSON round %zu", i);
        }
    }
    /* 17 significant digits so a reloaded ledger recomputes the same ε bit for bit. */
    *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!*out)
        return ff_error(FF_ENOMEM, "ledger: JSON text");
    return FF_OK;
}

static int get_num(json_t *o, const char *key, const char *where, double *out, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (!required)
            return FF_OK;
        return ff_error(FF_EFORMAT, "%s: missing '%s'", where, key);
    }
    if (!json_is_number(v))
        return ff_error(FF_EFORMAT, "%s: '%s' is not a number", where, key);
    *out = json_number_value(v);
    return FF_OK;
}

static int get_int(json_t *o, const char *key, const char *where, int64_t *out, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (!required)
            return FF_OK;
        return ff_error(FF_EFORMAT, "%s: missing '%s'", where, key);
    }
    if (!json_is_integer(v))
        return ff_error(FF_EFORMAT, "%s: '%s' is not an integer", where, key);
    *out = json_integer_value(v);
    return FF_OK;
}

static int get_name(json_t *o, const char *key, const char *where, const char *const *names,
                    size_t n, int *out)
{
    const char *s = json_string_value(json_object_get(o, key));
    int i = name_index(names, n, s);
    if (i < 0)
        return ff_error(FF_EFORMAT, "%s: '%s' is missing or not a known value", where, key);
    *out = i;
    return FF_OK;
}

static int round_from_json(json_t *o, const char *name, size_t i, ff_privacy_round *r)
{
    char where[256];
    snprintf(where, sizeof where, "%s: rounds[%zu]", name, i);
    if (!json_is_object(o))
        return ff_error(FF_EFORMAT, "%s: not an object", where);
    memset(r, 0, sizeof *r);
    int rc;
    if ((rc = get_int(o, "round", where, &r->round, 1)) ||
        (rc = get_name(o, "level", where, level_names, 2, &r->level)) ||
        (rc = get_name(o, "mechanism", where, mech_names, 2, &r->mechanism)) ||
        (rc = get_num(o, "q", where, &r->q, 1)) ||
        (rc = get_int(o, "steps", where, &r->steps, 1)) ||
        (rc = get_num(o, "clip_norm", where, &r->clip_norm, 1)) ||
        (rc = get_num(o, "sigma", where, &r->sigma, 0)) ||
        (rc = get_int(o, "survivors", where, &r->survivors, 0)) ||
        (rc = get_int(o, "sites", where, &r->sites, 0)) ||
        (rc = get_num(o, "ddg_sigma", where, &r->ddg_sigma, 0)) ||
        (rc = get_num(o, "ddg_gamma", where, &r->ddg_gamma, 0)) ||
        (rc = get_num(o, "ddg_beta", where, &r->ddg_beta, 0)) ||
        (rc = get_int(o, "ddg_dim", where, &r->ddg_dim, 0)))
        return rc;
    json_t *integer = json_object_get(o, "ddg_integer");
    if (integer && !json_is_boolean(integer))
        return ff_error(FF_EFORMAT, "%s: 'ddg_integer' is not true or false", where);
    r->ddg_integer = json_is_true(integer);
    return FF_OK;
}

int ff_privacy_ledger_from_json(ff_privacy_ledger **out, const char *json, const char *name)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    if (!root)
        return ff_error(FF_EFORMAT, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
    ff_privacy_ledger *l = NULL;
    int rc, level = 0, series = 0, conv = 0;
    double budget = 0, delta = 0, stored = NAN;
    double orders[FF_PRIVACY_MAX_ORDERS];
    json_t *jo = json_object_get(root, "orders"), *jr = json_object_get(root, "rounds");
    if ((rc = get_name(root, "level", name, level_names, 2, &level)) ||
        (rc = get_name(root, "series", name, series_names, 2, &series)) ||
        (rc = get_name(root, "conversion", name, conv_names, 2, &conv)) ||
        (rc = get_num(root, "epsilon_budget", name, &budget, 1)) ||
        (rc = get_num(root, "delta", name, &delta, 1)) ||
        (rc = get_num(root, "epsilon", name, &stored, 0)))
        goto out;
    if (!json_is_array(jo) || json_array_size(jo) > FF_PRIVACY_MAX_ORDERS ||
        !json_is_array(jr)) {
        rc = ff_error(FF_EFORMAT, "%s: 'orders' and 'rounds' must be arrays (orders <= %d)",
                      name, FF_PRIVACY_MAX_ORDERS);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(jo); i++) {
        json_t *v = json_array_get(jo, i);
        if (!json_is_number(v)) {
            rc = ff_error(FF_EFORMAT, "%s: orders[%zu] is not a number", name, i);
            goto out;
        }
        orders[i] = json_number_value(v);
    }
    rc = ff_privacy_ledger_new(&l, level, budget, delta, orders, json_array_size(jo),
                               (ff_privacy_series)series, (ff_privacy_conversion)conv);
    if (rc != FF_OK) {
        rc = ff_error_prefix(rc, "%s: ", name);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(jr); i++) {
        ff_privacy_round r;
        if ((rc = round_from_json(json_array_get(jr, i), name, i, &r)) != FF_OK)
            goto out;
        if ((rc = ff_privacy_ledger_record(l, &r)) != FF_OK) {
            rc = ff_error_prefix(rc, "%s: rounds[%zu]: ", name, i);
            goto out;
        }
    }
    /* The stored ε is informational; a mismatch means the file was edited or written by a
     * different accountant, which an auditor must hear about. */
    if (!isnan(stored)) {
        double eps, order;
        if ((rc = ff_privacy_ledger_epsilon(l, &eps, &order)) != FF_OK)
            goto out;
        if (fabs(eps - stored) > 1e-9 * fmax(1.0, fabs(eps))) {
            rc = ff_error(FF_EFORMAT,
                          "%s: stored epsilon %.17g disagrees with the recomputed %.17g", name,
                          stored, eps);
            goto out;
        }
    }
    *out = l;
    l = NULL;
out:
    ff_privacy_ledger_free(l);
    json_decref(root);
    return rc;
}
