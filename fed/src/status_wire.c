/* The coordinator's status snapshot on the wire (StatusDetail) and back: the snapshot is built
 * once, as the object live.html and `fedfuse status --json` show (coord_status.c); these two
 * functions are its only mapping to and from the typed message, so the two directions cannot
 * drift apart (tests/fed/test_status_wire.c turns a snapshot around and compares). */
#include <string.h>

#include "ff/fed.h"

#define WIRE_STR_MAX 255 /* the transport's limit on a string (transport/src/wire.c) */

/* s, cut to what the wire carries, in the call's memory (NULL when out of memory). */
static char *wire_str(ff_call *c, const char *s)
{
    size_t n = s ? strnlen(s, WIRE_STR_MAX) : 0;
    char *o = ff_call_alloc(c, n + 1);
    if (o) {
        memcpy(o, s ? s : "", n);
        o[n] = '\0';
    }
    return o;
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int site_to_wire(ff_call *c, const char *name, const json_t *o, Fedfuse__SiteStatus *w)
{
    fedfuse__site_status__init(w);
    const json_t *seen = json_object_get(o, "last_seen_s");
    const json_t *age = json_object_get(o, "error_age_s");
    const json_t *skew = json_object_get(o, "clock_skew_s");
    w->name = wire_str(c, name);
    w->seen = json_is_number(seen);
    w->last_seen_s = json_number_value(seen);
    w->state = wire_str(c, str_of(o, "state"));
    w->error_code = wire_str(c, str_of(o, "error_code"));
    w->error = wire_str(c, str_of(o, "error"));
    w->error_age_s = json_number_value(age);
    w->version = wire_str(c, str_of(o, "version"));
    w->has_skew = json_is_number(skew);
    w->clock_skew_s = json_number_value(skew);
    w->pending = json_is_true(json_object_get(o, "pending"));
    return w->name && w->state && w->error_code && w->error && w->version ? FF_OK : FF_ENOMEM;
}

/* The string-valued members of object o as NotSelected pairs. */
static int pairs_to_wire(ff_call *c, const json_t *o, Fedfuse__NotSelected ***out, size_t *n)
{
    size_t k = 0, cap = json_object_size(o);
    Fedfuse__NotSelected *e = ff_call_alloc(c, (cap + 1) * sizeof *e);
    Fedfuse__NotSelected **p = ff_call_alloc(c, (cap + 1) * sizeof *p);
    if (!e || !p)
        return FF_ENOMEM;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        fedfuse__not_selected__init(&e[k]);
        e[k].name = wire_str(c, key);
        e[k].reason = wire_str(c, json_string_value(v));
        if (!e[k].name || !e[k].reason)
            return FF_ENOMEM;
        p[k] = &e[k];
        k++;
    }
    *out = p;
    *n = k;
    return FF_OK;
}

static int counters_to_wire(ff_call *c, const json_t *o, Fedfuse__Counter ***out, size_t *n)
{
    size_t k = 0, cap = json_object_size(o);
    Fedfuse__Counter *e = ff_call_alloc(c, (cap + 1) * sizeof *e);
    Fedfuse__Counter **p = ff_call_alloc(c, (cap + 1) * sizeof *p);
    if (!e || !p)
        return FF_ENOMEM;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        fedfuse__counter__init(&e[k]);
        e[k].name = wire_str(c, key);
        e[k].value = (uint64_t)json_integer_value(v);
        if (!e[k].name)
            return FF_ENOMEM;
        p[k] = &e[k];
        k++;
    }
    *out = p;
    *n = k;
    return FF_OK;
}

int ff_fed_status_to_wire(const json_t *d, ff_call *c, Fedfuse__StatusDetail **out)
{
    Fedfuse__StatusDetail *w = ff_call_alloc(c, sizeof *w);
    const json_t *pend = json_object_get(d, "pending"), *sites = json_object_get(d, "site_status");
    size_t np = json_array_size(pend), ns = json_object_size(sites);
    char **pn = ff_call_alloc(c, (np + 1) * sizeof *pn);
    Fedfuse__SiteStatus *se = ff_call_alloc(c, (ns + 1) * sizeof *se);
    Fedfuse__SiteStatus **sp = ff_call_alloc(c, (ns + 1) * sizeof *sp);
    if (!w || !pn || !se || !sp)
        return ff_error(FF_ENOMEM, "status: out of memory");
    fedfuse__status_detail__init(w);
    int rc = FF_OK;
    w->run = wire_str(c, str_of(d, "run"));
    w->rounds = json_integer_value(json_object_get(d, "rounds"));
    w->round = json_integer_value(json_object_get(d, "round"));
    w->attempt = json_integer_value(json_object_get(d, "attempt"));
    w->phase = wire_str(c, str_of(d, "phase"));
    for (size_t i = 0; i < np; i++)
        if (!(pn[i] = wire_str(c, json_string_value(json_array_get(pend, i)))))
            rc = FF_ENOMEM;
    w->pending = pn;
    w->n_pending = np;
    const char *name;
    const json_t *o;
    json_object_foreach((json_t *)sites, name, o)
    {
        if (rc == FF_OK)
            rc = site_to_wire(c, name, o, &se[w->n_sites]);
        sp[w->n_sites] = &se[w->n_sites];
        w->n_sites++;
    }
    w->sites = sp;
    w->deadline_in_s = json_number_value(json_object_get(d, "deadline_in_s"));
    w->enrolled = json_integer_value(json_object_get(d, "sites"));
    w->now_unix_ms = json_integer_value(json_object_get(d, "now_unix_ms"));
    if (rc == FF_OK)
        rc = pairs_to_wire(c, json_object_get(d, "not_selected"), &w->not_selected, &w->n_not_selected);
    if (rc == FF_OK)
        rc = counters_to_wire(c, json_object_get(d, "refusals"), &w->refusals, &w->n_refusals);
    const json_t *crl = json_object_get(d, "crl_expires_in_s");
    w->has_crl = json_is_number(crl);
    w->crl_expires_in_s = json_number_value(crl);
    w->crl_warning = wire_str(c, str_of(d, "crl_warning"));
    const json_t *pv = json_object_get(d, "privacy");
    if (pv) {
        Fedfuse__PrivacySpent *p = ff_call_alloc(c, sizeof *p);
        if (!p)
            return ff_error(FF_ENOMEM, "status: out of memory");
        fedfuse__privacy_spent__init(p);
        p->epsilon_spent = json_number_value(json_object_get(pv, "epsilon_spent"));
        p->epsilon_budget = json_number_value(json_object_get(pv, "epsilon_budget"));
        p->delta = json_number_value(json_object_get(pv, "delta"));
        w->privacy = p;
    }
    if (rc != FF_OK || !w->run || !w->phase || !w->crl_warning)
        return ff_error(FF_ENOMEM, "status: out of memory");
    *out = w;
    return FF_OK;
}

/* A number from the wire, or null (NaN and infinities have no JSON form). */
static json_t *num(double v)
{
    json_t *j = json_real(v);
    return j ? j : json_null();
}

static json_t *site_json(const Fedfuse__SiteStatus *s)
{
    const char *state = s->state && s->state[0] ? s->state : "unknown";
    int err = s->error_code && s->error_code[0];
    return json_pack("{s:o, s:s, s:s, s:s, s:o, s:s, s:o, s:b}", "last_seen_s",
                     s->seen ? num(s->last_seen_s) : json_null(), "state", state, "error_code",
                     s->error_code ? s->error_code : "", "error", s->error ? s->error : "",
                     "error_age_s", err ? num(s->error_age_s) : json_null(), "version",
                     s->version ? s->version : "", "clock_skew_s",
                     s->has_skew ? num(s->clock_skew_s) : json_null(), "pending", s->pending);
}

json_t *ff_fed_status_json(const Fedfuse__StatusDetail *w)
{
    json_t *d = json_object(), *pend = json_array(), *seen = json_object(), *sites = json_object();
    json_t *unav = json_object(), *ref = json_object();
    if (!d || !pend || !seen || !sites || !unav || !ref) {
        json_decref(d), json_decref(pend), json_decref(seen), json_decref(sites);
        json_decref(unav), json_decref(ref);
        return NULL;
    }
    for (size_t i = 0; i < w->n_pending; i++)
        json_array_append_new(pend, json_string(w->pending[i] ? w->pending[i] : ""));
    for (size_t i = 0; i < w->n_sites; i++) {
        const Fedfuse__SiteStatus *s = w->sites[i];
        if (!s->name)
            continue;
        if (s->seen)
            json_object_set_new(seen, s->name, num(s->last_seen_s));
        json_object_set_new(sites, s->name, site_json(s));
    }
    for (size_t i = 0; i < w->n_not_selected; i++)
        if (w->not_selected[i]->name)
            json_object_set_new(unav, w->not_selected[i]->name,
                                json_string(w->not_selected[i]->reason ? w->not_selected[i]->reason : ""));
    for (size_t i = 0; i < w->n_refusals; i++)
        if (w->refusals[i]->name)
            json_object_set_new(ref, w->refusals[i]->name,
                                json_integer((json_int_t)w->refusals[i]->value));
    json_object_set_new(d, "run", json_string(w->run ? w->run : ""));
    json_object_set_new(d, "rounds", json_integer((json_int_t)w->rounds));
    json_object_set_new(d, "round", json_integer((json_int_t)w->round));
    json_object_set_new(d, "attempt", json_integer((json_int_t)w->attempt));
    json_object_set_new(d, "phase", json_string(w->phase ? w->phase : ""));
    json_object_set_new(d, "pending", pend);
    json_object_set_new(d, "seconds_since_seen", seen);
    json_object_set_new(d, "site_status", sites);
    json_object_set_new(d, "deadline_in_s", num(w->deadline_in_s));
    json_object_set_new(d, "sites", json_integer((json_int_t)w->enrolled));
    json_object_set_new(d, "now_unix_ms", json_integer((json_int_t)w->now_unix_ms));
    json_object_set_new(d, "not_selected", unav);
    json_object_set_new(d, "refusals", ref);
    json_object_set_new(d, "crl_expires_in_s", w->has_crl ? num(w->crl_expires_in_s) : json_null());
    json_object_set_new(d, "crl_warning", w->crl_warning && w->crl_warning[0]
                                              ? json_string(w->crl_warning)
                                              : json_null());
    if (w->privacy)
        json_object_set_new(d, "privacy",
                            json_pack("{s:o, s:o, s:o}", "epsilon_spent",
                                      num(w->privacy->epsilon_spent), "epsilon_budget",
                                      num(w->privacy->epsilon_budget), "delta",
                                      num(w->privacy->delta)));
    return d;
}
