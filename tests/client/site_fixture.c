#include "site_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

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

ftc_fixture *ftc_fixture_new(long patients, uint64_t seed)
{
    ftc_fixture *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->dir = ft_tmpdir();
    if (ftc_site_make(f->dir, patients, seed, &f->mc, &f->site, NULL, 0) != FF_OK)
        return NULL;
    return f;
}

int ftc_fixture_teardown(void **state)
{
    ftc_fixture *f = *state;
    ff_site_free(f->site);
    ft_rmtree(f->dir);
    free(f);
    return 0;
}

ff_local_opts ftc_local_opts(int64_t steps, uint64_t seed)
{
    ff_local_opts o;
    memset(&o, 0, sizeof o);
    o.steps = steps;
    o.batch = 16;
    ff_optim_config_default(&o.optim);
    o.optim.lr = 2e-3f;
    o.modalities = FF_MOD_ALL;
    o.augment = 1;
    o.seed = seed;
    return o;
}
