/*
 * ff/phases.h — the federation protocol's phases, in one table (docs/federation.md, "Phase
 * table"): each phase's name (the engine's phase, the audit log's and the kill points'),
 * its wire id (the Phase enum of transport/proto/fedfuse.proto that Task, Upload, Decline and
 * SecAggEnvelope carry), the config key of its deadline and who acts in it. The engine, the
 * coordinator and client nodes, `fedfuse status` and the docs read this table; the unit test
 * fed_phase_table checks it against the proto enum and the config schema.
 *
 * The engine does no I/O and does not link the wire code, so the wire ids are plain ints
 * here (FF_WIRE_*, equal to FEDFUSE__PHASE__PHASE_*: checked by the test).
 */
#ifndef FF_PHASES_H
#define FF_PHASES_H

#include <stddef.h>

#include "ff/coordinator.h"

/* Wire ids (fedfuse.proto, enum Phase). */
enum {
    FF_WIRE_NONE = -1, /* a server phase: never on the wire */
    FF_WIRE_WAIT = 0,
    FF_WIRE_TRAIN = 1,
    FF_WIRE_EVALUATE = 2,
    FF_WIRE_SECAGG_ADVERTISE = 3,
    FF_WIRE_SECAGG_SHARE = 4,
    FF_WIRE_SECAGG_MASKED_INPUT = 5,
    FF_WIRE_SECAGG_UNMASK = 6,
    FF_WIRE_DONE = 7,
    FF_WIRE_SECAGG_CONSISTENCY = 8,
};

/* Secure-aggregation phase names (the built-in ones are in ff/coordinator.h). */
#define FF_PHASE_ADVERTISE "advertise_keys"
#define FF_PHASE_SHARE "share_keys"
#define FF_PHASE_MASKED "masked_input"
#define FF_PHASE_CHECK "consistency_check"
#define FF_PHASE_UNMASK "unmask"
/* The client-level DP budget check (fed/src/coord_dp.c), a server phase before train. */
#define FF_PHASE_PRIVACY "privacy_budget"
/* Not engine phases: what a Task says when no phase wants the site, and after the last round. */
#define FF_PHASE_WAIT "wait"
#define FF_PHASE_DONE "done"

/* Who acts in a phase, and how the sites' answer travels. */
typedef enum {
    FF_ACT_NONE = 0,   /* wait/done: nobody (the site polls again, or stops) */
    FF_ACT_SERVER,     /* the coordinator alone, at once */
    FF_ACT_UPLOAD,     /* sites: a model-sized Upload (update or masked input) */
    FF_ACT_EVAL,       /* sites: SubmitEval */
    FF_ACT_ENVELOPE,   /* sites: a small SecAggMessage */
} ff_phase_actor;

typedef struct {
    const char *name;         /* engine, audit log, kill points (FEDFUSE_TEST_KILL_AT) */
    int wire;                 /* FF_WIRE_* (FF_WIRE_NONE for server phases) */
    const char *wire_name;    /* the proto enum value's name, NULL for server phases */
    const char *deadline_key; /* deadlines.<key> in the coordinator config, NULL = none */
    size_t deadline_offset;   /* of that double in ff_coord_config */
    int actor;                /* ff_phase_actor */
    int secagg_step;          /* position in secure aggregation's order (1..5), 0 = other */
    int declinable;           /* a site may Decline its task in this phase */
} ff_phase_info;

/* The whole table (n rows), in round order. */
const ff_phase_info *ff_phase_table(size_t *n);
/* The row of a phase name or a wire id, NULL when there is none (never trust a wire id:
 * this is the range check). */
const ff_phase_info *ff_phase_by_name(const char *name);
const ff_phase_info *ff_phase_by_wire(int wire);
/* The phase's deadline in seconds from cfg (0 when it has no deadline key). */
double ff_phase_deadline(const ff_phase_info *p, const ff_coord_config *cfg);
/* A wire id's name for messages ("?" when out of range). */
const char *ff_phase_wire_label(int wire);

#endif
