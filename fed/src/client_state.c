/* The hospital node's state table (client_state.h). */
#include "client_state.h"

#include <string.h>

static const char *const names[FED_CN_NSTATES] = {
    [FED_CN_STARTING] = "starting",       [FED_CN_WAITING] = "waiting",
    [FED_CN_TRAINING] = "training",       [FED_CN_EVALUATING] = "evaluating",
    [FED_CN_SECAGG] = "secure_aggregation", [FED_CN_DECLINED] = "declined",
    [FED_CN_RECONNECTING] = "reconnecting", [FED_CN_DONE] = "done",
    [FED_CN_FAILED] = "failed",
};

#define B(s) (1u << (s))
/* Where each state may go. A task (training, evaluating, secure aggregation) ends in waiting,
 * or declined when the site refuses it part-way (budget, guard); any live state may lose the
 * link (reconnecting), learn the run is over (done) or hit an error it cannot retry
 * (failed). done and failed are final. */
#define TASKS (B(FED_CN_TRAINING) | B(FED_CN_EVALUATING) | B(FED_CN_SECAGG) | B(FED_CN_DECLINED))
#define ENDS (B(FED_CN_RECONNECTING) | B(FED_CN_DONE) | B(FED_CN_FAILED))
static const unsigned next[FED_CN_NSTATES] = {
    [FED_CN_STARTING] = B(FED_CN_WAITING) | TASKS | ENDS,
    [FED_CN_WAITING] = TASKS | ENDS,
    [FED_CN_TRAINING] = B(FED_CN_WAITING) | B(FED_CN_DECLINED) | ENDS,
    [FED_CN_EVALUATING] = B(FED_CN_WAITING) | B(FED_CN_DECLINED) | ENDS,
    [FED_CN_SECAGG] = B(FED_CN_WAITING) | B(FED_CN_DECLINED) | ENDS,
    [FED_CN_DECLINED] = B(FED_CN_WAITING) | TASKS | ENDS,
    [FED_CN_RECONNECTING] = B(FED_CN_WAITING) | TASKS | ENDS,
    [FED_CN_DONE] = 0,
    [FED_CN_FAILED] = 0,
};

const char *fed_cn_state_name(int s)
{
    return s >= 0 && s < FED_CN_NSTATES ? names[s] : "?";
}

int fed_cn_state_may(int from, int to)
{
    if (from < 0 || from >= FED_CN_NSTATES || to < 0 || to >= FED_CN_NSTATES)
        return 0;
    return from == to || (next[from] & B(to)) != 0;
}

fed_refusal fed_refusal_of(int kind, uint32_t round, int phase, int64_t attempt,
                           const uint8_t *job, size_t job_len)
{
    fed_refusal r;
    memset(&r, 0, sizeof r); /* compared field by field, padding never read */
    r.kind = kind;
    r.round = round;
    r.phase = phase;
    r.attempt = attempt;
    if (job && job_len == sizeof r.job)
        memcpy(r.job, job, sizeof r.job);
    return r;
}

int fed_refusal_same(const fed_refusal *a, const fed_refusal *b)
{
    return a->kind == b->kind && a->round == b->round && a->phase == b->phase &&
           a->attempt == b->attempt && memcmp(a->job, b->job, sizeof a->job) == 0;
}
