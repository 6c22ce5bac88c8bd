/* The plan a task carries, checked once per task (issue #19 item 7): a dishonest coordinator
 * must not be able to pin a site's CPU with a huge or deeply nested plan, re-sent every poll.
 * The size is bounded before anything is read, the YAML loader bounds the nesting depth
 * (FF_CFG_DEPTH_MAX), and the outcome is kept under the SHA-256 of the plan bytes, so a
 * repeated poll of the same task is answered from the cache without parsing again. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ff/fed.h"

void ff_fed_plan_cache_free(ff_fed_plan_cache *c)
{
    if (c->state == 1)
        ff_plan_free(&c->plan);
    memset(c, 0, sizeof *c);
}

/* The cache key: the plan bytes' hash, the job the task claims and the run's round count
 * (the plan's stages default to it), so any change in what the task says is a new key. */
static void plan_key(const void *plan, size_t len, const char *claimed, int64_t rounds,
                     uint8_t key[FF_SHA256_BYTES])
{
    uint8_t buf[FF_SHA256_BYTES + FF_SHA256_HEX + sizeof rounds];
    memset(buf, 0, sizeof buf);
    ff_sha256(plan, len, buf);
    memcpy(buf + FF_SHA256_BYTES, claimed, strnlen(claimed, FF_SHA256_HEX - 1));
    memcpy(buf + FF_SHA256_BYTES + FF_SHA256_HEX, &rounds, sizeof rounds);
    ff_sha256(buf, sizeof buf, key);
}

int ff_fed_task_plan(ff_fed_plan_cache *c, const void *plan_yaml, size_t plan_len,
                     const char *claimed_job, int64_t total_rounds, const void *model_config,
                     size_t model_config_len, const ff_plan **out)
{
    *out = NULL;
    if (plan_len > FF_FED_TASK_PLAN_MAX)
        return ff_error(FF_EPOLICY, "the task's plan has %zu bytes, at most %u are accepted "
                        "(refused before parsing)", plan_len, FF_FED_TASK_PLAN_MAX);
    uint8_t key[FF_SHA256_BYTES];
    plan_key(plan_yaml, plan_len, claimed_job, total_rounds, key);
    if (c->state && CRYPTO_memcmp(key, c->key, sizeof key) == 0) {
        c->hits++;
        if (c->state == 1) {
            *out = &c->plan;
            return FF_OK;
        }
        return ff_error(FF_EPOLICY, "%s", c->why);
    }
    unsigned long parses = c->parses, hits = c->hits;
    ff_fed_plan_cache_free(c);
    c->parses = parses + 1;
    c->hits = hits;
    memcpy(c->key, key, sizeof key);
    int rc = ff_plan_load_str(&c->plan, "task plan", plan_yaml, plan_len, total_rounds);
    if (rc != FF_OK) {
        ff_plan_free(&c->plan);
        rc = ff_error_prefix(FF_EPOLICY, "the task's plan does not load: ");
    } else {
        char job[FF_SHA256_HEX];
        rc = ff_job_hash(&c->plan, model_config, model_config_len, job);
        if (rc == FF_OK && (strnlen(claimed_job, FF_SHA256_HEX) != FF_SHA256_HEX - 1 ||
                            CRYPTO_memcmp(job, claimed_job, FF_SHA256_HEX - 1) != 0))
            rc = ff_error(FF_EPOLICY, "the task's plan and our model config hash to job %s, "
                          "but the task claims job %s", job, claimed_job);
        if (rc != FF_OK)
            ff_plan_free(&c->plan);
    }
    if (rc != FF_OK) {
        c->state = 2;
        snprintf(c->why, sizeof c->why, "%s", ff_error_message());
        return rc == FF_ENOMEM ? rc : FF_EPOLICY;
    }
    c->state = 1;
    *out = &c->plan;
    return FF_OK;
}
