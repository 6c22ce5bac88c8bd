/* The hospital node's states, in one table (client_state.c; docs/federation.md, "The client
 * node's states"): the name it reports on every poll (TaskRequest.state, `fedfuse status`,
 * its metrics) and the transitions it may make. The task loop (client_node.c) moves only
 * along the table; a move off it is a bug, logged with both names. */
#ifndef FF_FED_CLIENT_STATE_H
#define FF_FED_CLIENT_STATE_H

#include <stdint.h>

#include "ff/common.h"

typedef enum {
    FED_CN_STARTING = 0, /* loading data and model, first Hello */
    FED_CN_WAITING,      /* connected, polling: no task for this site */
    FED_CN_TRAINING,
    FED_CN_EVALUATING,
    FED_CN_SECAGG,       /* a secure-aggregation phase (training included) or a statistics job */
    FED_CN_DECLINED,     /* refused the current task (its error code says why) */
    FED_CN_RECONNECTING, /* lost or cannot reach the coordinator; retrying */
    FED_CN_DONE,         /* the run is over: the node exits 0 */
    FED_CN_FAILED,       /* cannot go on (start-up checks, refused, revoked): exits 1 */
    FED_CN_NSTATES
} fed_cn_state;

/* The name reported for s ("?" out of range). */
const char *fed_cn_state_name(int s);
/* 1 when the table allows from -> to (staying in a state is always allowed). */
int fed_cn_state_may(int from, int to);

/* The task a refusal was about (logged and declined once: the coordinator offers the same
 * task again until it takes the decline or its phase moves on). A refusal is the same as
 * another when every field is. */
typedef enum {
    FED_REFUSAL_NONE = 0,
    FED_REFUSAL_TASK,          /* the policy or the task check refused: round, phase, job */
    FED_REFUSAL_TRAINING,      /* training refused (record-level budget): round, attempt */
    FED_REFUSAL_STATS,         /* a statistics query refused: round, job */
    FED_REFUSAL_STATS_ONLY,    /* a training task at a node without model_config: round */
    FED_REFUSAL_SECAGG_MISSED, /* secure aggregation went on without us: round, attempt */
    FED_REFUSAL_SECAGG,        /* our policy or guard refused the sum: round, attempt */
} fed_refusal_kind;

typedef struct {
    int kind; /* fed_refusal_kind */
    uint32_t round;
    int phase;
    int64_t attempt;
    uint8_t job[32];
} fed_refusal;

/* The refusal of kind about round/phase/attempt/job (job NULL or not 32 bytes = none). */
fed_refusal fed_refusal_of(int kind, uint32_t round, int phase, int64_t attempt,
                           const uint8_t *job, size_t job_len);
int fed_refusal_same(const fed_refusal *a, const fed_refusal *b);

#endif
