/* The job exactly as the coordinator sends it: the plan file, the model config and their
 * job hash (the plan and the hash themselves are job/, shared with the sites). */
#include "ff/coordinator.h"

#include <stdlib.h>
#include <string.h>

int ff_coord_job_load(ff_coord_job *j, const ff_coord_config *cfg, const char *config_path,
                      int need_model)
{
    memset(j, 0, sizeof *j);
    const char *cp = config_path ? config_path : "coordinator config";
    if (need_model && !cfg->model_config[0])
        return ff_error(FF_ECONFIG, "%s: model_config: needed (the model config is half of "
                        "the job the sites approve)", cp);
    int rc;
    if (cfg->plan[0]) {
        rc = ff_file_read_all(cfg->plan, FF_COORD_PLAN_MAX, &j->plan_yaml, &j->plan_len);
        if (rc != FF_OK)
            return ff_error_prefix(rc, "%s: plan: ", cp);
        rc = ff_plan_load_str(&j->plan, cfg->plan, j->plan_yaml, j->plan_len, cfg->rounds);
    } else {
        /* the default plan, as the coordinator sends it */
        j->plan_yaml = strdup("{}\n");
        j->plan_len = 3;
        rc = j->plan_yaml ? ff_plan_load_str(&j->plan, "(default plan)", j->plan_yaml, 3, cfg->rounds)
                          : ff_error(FF_ENOMEM, "out of memory");
    }
    if (rc != FF_OK)
        return rc;
    rc = cfg->model_config[0] ? ff_file_read_all(cfg->model_config, 16u << 20, &j->model, &j->model_len)
                              : FF_OK;
    if (rc != FF_OK)
        return ff_error_prefix(rc, "%s: model_config: ", cp);
    return ff_job_hash(&j->plan, j->model ? j->model : "", j->model_len, j->hex);
}

void ff_coord_job_free(ff_coord_job *j)
{
    ff_plan_free(&j->plan);
    free(j->plan_yaml);
    free(j->model);
    memset(j, 0, sizeof *j);
}
