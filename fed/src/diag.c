/* The site error codes of remote diagnosis (fed_diag.h). Codes are never renamed: monitoring
 * and docs/operations.md refer to them. */
#include <string.h>

#include "fed_diag.h"

static const struct {
    const char *code, *text;
} errs[FED_ERR_COUNT] = {
    [FED_ERR_NONE] = {"", ""},
    [FED_ERR_COORDINATOR_UNREACHABLE] = {"coordinator_unreachable",
                                         "could not reach the coordinator; retrying"},
    [FED_ERR_LINK_LOST] = {"link_lost", "lost the coordinator during a task; reconnected"},
    [FED_ERR_TASK_REFUSED_POLICY] = {"task_refused_policy",
                                     "the site policy refused a task (job, secure aggregation, "
                                     "DP or size rule)"},
    [FED_ERR_TRAINING_REFUSED] = {"training_refused",
                                  "the site declined to train (its record-level privacy budget "
                                  "or policy limit)"},
    [FED_ERR_TASK_INVALID] = {"task_invalid",
                              "a task did not match the approved plan or was malformed"},
    [FED_ERR_TASK_STALE] = {"task_stale", "a task arrived after its round had moved on"},
    [FED_ERR_SECAGG_GUARD] = {"secagg_guard_refused",
                              "the site refused to add its update to a sum over other sites "
                              "than before for the same job, round and model"},
};

const char *fed_err_code(fed_err e)
{
    return e >= 0 && e < FED_ERR_COUNT ? errs[e].code : "";
}

const char *fed_err_text(fed_err e)
{
    return e >= 0 && e < FED_ERR_COUNT ? errs[e].text : "";
}

int fed_err_code_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 47)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}
