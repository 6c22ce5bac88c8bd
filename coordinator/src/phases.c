/* The protocol's phase table (declared in ff/coordinator.h): the one place a phase is spelled out. */
#include <stddef.h>
#include <string.h>

#include "ff/coordinator.h"

#define DL(k) #k, offsetof(ff_coord_config, deadlines.k)
#define NO_DL NULL, 0

/* Round order. The consistency check came after unmask in the enum (its wire id is 8) but
 * runs before it, and it shares unmask's deadline (one signature per site: short). */
static const ff_phase_info table[] = {
    {FF_PHASE_WAIT, FF_WIRE_WAIT, "PHASE_WAIT", NO_DL, FF_ACT_NONE, 0, 0},
    {FF_PHASE_SELECT, FF_WIRE_NONE, NULL, NO_DL, FF_ACT_SERVER, 0, 0},
    {FF_PHASE_PRIVACY, FF_WIRE_NONE, NULL, NO_DL, FF_ACT_SERVER, 0, 0},
    {FF_PHASE_ADVERTISE, FF_WIRE_SECAGG_ADVERTISE, "PHASE_SECAGG_ADVERTISE", DL(advertise_keys),
     FF_ACT_ENVELOPE, 1, 1},
    {FF_PHASE_SHARE, FF_WIRE_SECAGG_SHARE, "PHASE_SECAGG_SHARE", DL(share_keys), FF_ACT_ENVELOPE, 2, 0},
    {FF_PHASE_MASKED, FF_WIRE_SECAGG_MASKED_INPUT, "PHASE_SECAGG_MASKED_INPUT", DL(masked_input),
     FF_ACT_UPLOAD, 3, 0},
    {FF_PHASE_CHECK, FF_WIRE_SECAGG_CONSISTENCY, "PHASE_SECAGG_CONSISTENCY", DL(unmask),
     FF_ACT_ENVELOPE, 4, 0},
    {FF_PHASE_UNMASK, FF_WIRE_SECAGG_UNMASK, "PHASE_SECAGG_UNMASK", DL(unmask), FF_ACT_ENVELOPE, 5, 0},
    {FF_PHASE_TRAIN, FF_WIRE_TRAIN, "PHASE_TRAIN", DL(train), FF_ACT_UPLOAD, 0, 1},
    {FF_PHASE_AGGREGATE, FF_WIRE_NONE, NULL, NO_DL, FF_ACT_SERVER, 0, 0},
    {FF_PHASE_UPDATE, FF_WIRE_NONE, NULL, NO_DL, FF_ACT_SERVER, 0, 0},
    {FF_PHASE_EVALUATE, FF_WIRE_EVALUATE, "PHASE_EVALUATE", DL(evaluate), FF_ACT_EVAL, 0, 1},
    {FF_PHASE_CHECKPOINT, FF_WIRE_NONE, NULL, NO_DL, FF_ACT_SERVER, 0, 0},
    {FF_PHASE_DONE, FF_WIRE_DONE, "PHASE_DONE", NO_DL, FF_ACT_NONE, 0, 0},
};

const ff_phase_info *ff_phase_table(size_t *n)
{
    *n = sizeof table / sizeof table[0];
    return table;
}

const ff_phase_info *ff_phase_by_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

const ff_phase_info *ff_phase_by_wire(int wire)
{
    for (size_t i = 0; wire >= 0 && i < sizeof table / sizeof table[0]; i++)
        if (table[i].wire == wire)
            return &table[i];
    return NULL;
}

double ff_phase_deadline(const ff_phase_info *p, const ff_coord_config *cfg)
{
    if (!p || !p->deadline_key || !cfg)
        return 0;
    double d;
    memcpy(&d, (const char *)cfg + p->deadline_offset, sizeof d);
    return d;
}

const char *ff_phase_wire_label(int wire)
{
    const ff_phase_info *p = ff_phase_by_wire(wire);
    return p ? p->name : "?";
}
