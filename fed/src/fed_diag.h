/* Remote diagnosis (not public): what a site reports about itself on every task poll — its
 * state and its last error as a stable code with a fixed text — and what the coordinator
 * keeps of it for `fedfuse status` and its metrics. The texts are constants: a report can
 * never carry data values, paths under the data folder or patient ids. docs/operations.md,
 * "Site states and error codes", lists every code with what to do. */
#ifndef FF_FED_DIAG_H
#define FF_FED_DIAG_H

#include <stddef.h>
#include <stdint.h>

/* A node waiting for its task, or a coordinator waiting for sites, says so this often,
 * naming whom it waits for (not once per poll). */
#define FED_WAIT_LOG_S 60.0
/* The GetTask long-poll (docs/federation.md, "Timeouts"): the coordinator holds a GetTask up
 * to FED_POLL_TIMEOUT_MS when nothing is ready and sends that value in
 * HelloReply.poll_timeout_ms; a site asks for that wait. A site's wait_ms is capped at
 * FED_POLL_MAX_MS (a call cannot pin a handler thread longer), and a site takes a received
 * value only within [FED_POLL_MIN_MS, FED_POLL_MAX_MS] (a smaller one would make it spin). */
#define FED_POLL_TIMEOUT_MS 20000u
#define FED_POLL_MIN_MS 100u
#define FED_POLL_MAX_MS 30000u

/* The node's states (reported as TaskRequest.state) are in client_state.h. */

typedef enum {
    FED_ERR_NONE = 0,
    FED_ERR_COORDINATOR_UNREACHABLE,
    FED_ERR_LINK_LOST,
    FED_ERR_TASK_REFUSED_POLICY,
    FED_ERR_TRAINING_REFUSED,
    FED_ERR_TASK_INVALID,
    FED_ERR_TASK_STALE,
    FED_ERR_SECAGG_GUARD,
    FED_ERR_COUNT
} fed_err;

/* What a site says about itself on each task poll (remote diagnosis). */
typedef struct {
    char state[24], code[48], message[160], version[32];
    double skew_s;      /* site clock - ours, at the poll (+ the one-way delay) */
    double error_at;    /* ff_wall_time() the error happened, by the site's account */
    int have_skew;
    uint32_t wait_ms;   /* the long-poll wait the site asks for (logged when it changes) */
} fed_site_report;

/* The stable code ("coordinator_unreachable") and its fixed text. */
const char *fed_err_code(fed_err e);
const char *fed_err_text(fed_err e);

/* A code as received from a site: lower-case letters, digits and '_', 1..47 bytes. */
int fed_err_code_valid(const char *s);

#endif
