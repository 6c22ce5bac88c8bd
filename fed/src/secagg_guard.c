/* The site's secure-aggregation guard (issue #19 item 1, ff/fed.h): one set of sites per
 * (job, round, starting model), kept durably in the site's state folder. Without it a
 * coordinator reruns a round under a new run id with one site left out, and the two unmasked
 * sums differ by exactly that site's update (sites retrain deterministically and reset their
 * per-run replay guard). The check runs before training; the record is written before the
 * masked input leaves and again (with the survivor set) before the survivor set is signed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "ff/audit.h"
#include "ff/fed.h"

#define GUARD_MAX_BYTES (64u << 20)

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The set as a JSON array of names in byte order (the order sites were selected in does not
 * matter: a sum is over a set). NULL when out of memory or a name repeats. */
static json_t *sorted_set(const char *const *names, size_t n)
{
    const char **s = malloc((n + 1) * sizeof *s);
    json_t *a = s ? json_array() : NULL;
    if (a) {
        memcpy(s, names, n * sizeof *s);
        qsort(s, n, sizeof *s, cmp_name);
        for (size_t i = 0; a && i < n; i++)
            if (!s[i] || (i && strcmp(s[i - 1], s[i]) == 0) ||
                json_array_append_new(a, json_string(s[i])) != 0) {
                json_decref(a);
                a = NULL;
            }
    }
    free(s);
    return a;
}

/* "a, b, c" for a message, cut with "..." to fit. */
static void set_text(const json_t *set, char *out, size_t cap)
{
    out[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(set, i, v) {
        size_t l = strlen(out);
        if (l + strlen(json_string_value(v)) + 6 >= cap) {
            snprintf(out + l, cap - l, "...");
            return;
        }
        snprintf(out + l, cap - l, "%s%s", i ? ", " : "", json_string_value(v));
    }
}

/* The whole file, or an empty record list when there is none yet. */
static int guard_load(const char *path, json_t **root)
{
    *root = NULL;
    char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0) {
        *root = json_pack("{s:i, s:[]}", "version", 1, "contributions");
        return *root ? FF_OK : ff_error(FF_ENOMEM, "out of memory");
    }
    int rc = ff_file_read_all(path, GUARD_MAX_BYTES, &text, &len);
    if (rc == FF_OK) {
        json_error_t e;
        *root = json_loadb(text, len, 0, &e);
        if (!*root || !json_is_array(json_object_get(*root, "contributions")))
            rc = ff_error(FF_EFORMAT, "%s:%d: %s", path, e.line,
                          *root ? "no contributions list" : e.text);
    }
    free(text);
    if (rc != FF_OK) {
        json_decref(*root);
        *root = NULL;
        return ff_error_prefix(FF_EPOLICY, "the secure-aggregation guard does not load "
                               "(refusing rather than starting from zero): ");
    }
    return FF_OK;
}

static json_t *guard_find(json_t *root, const ff_fed_guard_use *u)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(root, "contributions"), i, e) {
        const char *job = json_string_value(json_object_get(e, "job_sha256"));
        const char *model = json_string_value(json_object_get(e, "model_sha256"));
        if (job && model && strcmp(job, u->job) == 0 && strcmp(model, u->model) == 0 &&
            json_integer_value(json_object_get(e, "round")) == u->round)
            return e;
    }
    return NULL;
}

/* The record e (may be NULL) against this use: same set, same update. */
static int guard_match(const json_t *e, const ff_fed_guard_use *u, const json_t *set)
{
    if (!e)
        return FF_OK;
    const json_t *had = json_object_get(e, "sites");
    char a[200], b[200];
    if (!json_equal(had, set)) {
        set_text(had, a, sizeof a);
        set_text(set, b, sizeof b);
        return ff_error(FF_EPOLICY, "secure-aggregation guard: round %lld of this job from "
                        "model %.12s was already summed over {%s}; refusing a sum over {%s} "
                        "(their difference would reveal an update)", (long long)u->round,
                        u->model, a, b);
    }
    const char *upd = json_string_value(json_object_get(e, "update_sha256"));
    if (u->update[0] && upd && strcmp(upd, u->update) != 0)
        return ff_error(FF_EPOLICY, "secure-aggregation guard: round %lld of this job from "
                        "model %.12s was contributed as update %.12s, this one is %.12s (the "
                        "site's data or training changed); refusing a second sum over the same "
                        "sites", (long long)u->round, u->model, upd, u->update);
    return FF_OK;
}

/* The state folder may not exist yet on a site's first contribution (it is made on first
 * use, like receipts/). */
static int guard_mkdir(const char *path)
{
    char dir[1024];
    ff_strlcpy(dir, path, sizeof dir);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return FF_OK;
    *slash = '\0';
    return ff_mkdir_p(dir, 0755);
}

static int guard_save(const char *path, json_t *root)
{
    char *s = json_dumps(root, JSON_INDENT(1));
    if (!s)
        return ff_error(FF_ENOMEM, "out of memory");
    size_t l = strlen(s);
    s[l] = '\n'; /* json_dumps' NUL is ours to replace: the file ends with a newline */
    int rc = guard_mkdir(path);
    if (rc == FF_OK)
        rc = ff_file_write_atomic(path, s, l + 1, 0600);
    free(s);
    return rc != FF_OK ? ff_error_prefix(FF_EPOLICY, "the secure-aggregation guard was not "
                                         "written (not sending): ")
                       : FF_OK;
}

int ff_fed_guard_check(const char *path, const ff_fed_guard_use *u)
{
    json_t *root = NULL, *set = sorted_set(u->sites, u->nsites);
    int rc = set ? guard_load(path, &root)
                 : ff_error(FF_EPOLICY, "secure-aggregation guard: the round's sites repeat");
    if (rc == FF_OK)
        rc = guard_match(guard_find(root, u), u, set);
    json_decref(set);
    json_decref(root);
    return rc;
}

int ff_fed_guard_commit(const char *path, const ff_fed_guard_use *u, const char *run_id,
                        uint8_t noise_seed[32])
{
    json_t *root = NULL, *set = sorted_set(u->sites, u->nsites);
    int rc = set ? guard_load(path, &root)
                 : ff_error(FF_EPOLICY, "secure-aggregation guard: the round's sites repeat");
    json_t *e = rc == FF_OK ? guard_find(root, u) : NULL;
    if (rc == FF_OK)
        rc = guard_match(e, u, set);
    if (rc == FF_OK && e) {
        const char *hex = json_string_value(json_object_get(e, "noise_seed"));
        rc = hex && strlen(hex) == 64 && ff_audit_unhex(hex, noise_seed, 32) == FF_OK
                 ? FF_OK
                 : ff_error(FF_EPOLICY, "secure-aggregation guard %s: round %lld has no noise "
                            "seed", path, (long long)u->round);
    } else if (rc == FF_OK) {
        char hex[65];
        if (RAND_bytes(noise_seed, 32) != 1)
            rc = ff_error(FF_ECRYPTO, "secure-aggregation guard: no randomness from the OS");
        ff_hex(noise_seed, 32, hex);
        e = rc == FF_OK ? json_pack("{s:s, s:I, s:s, s:O, s:s, s:s, s:s}", "job_sha256", u->job,
                                    "round", (json_int_t)u->round, "model_sha256", u->model,
                                    "sites", set, "update_sha256", u->update, "first_run_id",
                                    run_id ? run_id : "", "noise_seed", hex)
                        : NULL;
        ff_secure_zero(hex, sizeof hex);
        if (rc == FF_OK && (!e || json_array_append_new(json_object_get(root, "contributions"), e)))
            rc = ff_error(FF_ENOMEM, "out of memory");
        if (rc == FF_OK)
            rc = guard_save(path, root);
    }
    json_decref(set);
    json_decref(root);
    return rc;
}

int ff_fed_guard_survivors(const char *path, const ff_fed_guard_use *u,
                           const char *const *survivors, size_t n)
{
    json_t *root = NULL, *set = sorted_set(u->sites, u->nsites), *u3 = sorted_set(survivors, n);
    int rc = set && u3 ? guard_load(path, &root)
                       : ff_error(FF_EPOLICY, "secure-aggregation guard: the round's sites repeat");
    json_t *e = rc == FF_OK ? guard_find(root, u) : NULL;
    if (rc == FF_OK && !e)
        rc = ff_error(FF_EPOLICY, "secure-aggregation guard: round %lld from model %.12s has "
                      "no recorded contribution to sign a survivor set for", (long long)u->round,
                      u->model);
    if (rc == FF_OK)
        rc = guard_match(e, u, set);
    const json_t *had = rc == FF_OK ? json_object_get(e, "survivors") : NULL;
    char a[200], b[200];
    if (rc == FF_OK && had && !json_equal(had, u3)) {
        set_text(had, a, sizeof a);
        set_text(u3, b, sizeof b);
        rc = ff_error(FF_EPOLICY, "secure-aggregation guard: round %lld of this job from model "
                      "%.12s was unmasked over the survivors {%s}; refusing to sign {%s} (their "
                      "difference would reveal an update)", (long long)u->round, u->model, a, b);
    } else if (rc == FF_OK && !had) {
        rc = json_object_set(e, "survivors", u3) == 0 ? guard_save(path, root)
                                                      : ff_error(FF_ENOMEM, "out of memory");
    }
    json_decref(u3);
    json_decref(set);
    json_decref(root);
    return rc;
}
