/* A one-hospital synthetic site with the tiny model's shape, shared by the client tests. */
#ifndef FF_TEST_SITE_FIXTURE_H
#define FF_TEST_SITE_FIXTURE_H

#include "ff/client.h"

/* Generates DIR/cohort/site-1 (patients, seed; every modality, 32x32 images), loads
 * configs/model-tiny.yaml into *mc and the site into *site; site_dir (may be NULL) receives
 * the site's path. FF_OK or the failing call's status. */
int ftc_site_make(const char *dir, long patients, uint64_t seed, ff_model_config *mc,
                  ff_site **site, char *site_dir, size_t n);

/* The fixture of the tests that need only the site and the model config. */
typedef struct {
    const char *dir;
    ff_model_config mc;
    ff_site *site;
} ftc_fixture;

/* ftc_site_make in a fresh temporary folder; NULL if it fails. */
ftc_fixture *ftc_fixture_new(long patients, uint64_t seed);

/* cmocka group teardown of an ftc_fixture: frees the site, removes the folder. */
int ftc_fixture_teardown(void **state);

/* The local-training options the tests start from: steps, batch 16, the default optimizer
 * at lr 2e-3, every modality, augmentation on, seed. */
ff_local_opts ftc_local_opts(int64_t steps, uint64_t seed);

#endif
