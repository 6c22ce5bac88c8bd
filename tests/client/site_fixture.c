#include "site_fixture.h"

#include <stdio.h>

int ftc_site_make(const char *dir, long patients, uint64_t seed, ff_model_config *mc,
                  ff_site **site, char *site_dir, size_t n)
{
    ff_synth_opts so = ff_synth_opts_default();
    so.sites = 1;
    so.patients = patients;
    so.seed = seed;
    so.image_size = 32;
    so.no_image_site = 0;
    so.quiet = 1;
    char out[512];
    snprintf(out, sizeof out, "%s/cohort", dir);
    int rc = ff_synth_generate(&so, out);
    if (rc == FF_OK)
        rc = ff_model_config_load(FF_SOURCE_DIR "/configs/model-tiny.yaml", mc);
    if (rc != FF_OK)
        return rc;
    ff_data_shape shape;
    ff_client_shape(mc, &shape);
    ff_site_opts opts = ff_site_opts_default();
    snprintf(out, sizeof out, "%s/cohort/site-1", dir);
    if (site_dir)
        snprintf(site_dir, n, "%s", out);
    return ff_site_load(site, out, &shape, &opts, NULL);
}
