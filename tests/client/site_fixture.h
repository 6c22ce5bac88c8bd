/* A one-hospital synthetic site with the tiny model's shape, shared by the client tests. */
#ifndef FF_TEST_SITE_FIXTURE_H
#define FF_TEST_SITE_FIXTURE_H

#include "ff/client.h"

/* Generates DIR/cohort/site-1 (patients, seed; every modality, 32x32 images), loads
 * configs/model-tiny.yaml into *mc and the site into *site; site_dir (may be NULL) receives
 * the site's path. FF_OK or the failing call's status. */
int ftc_site_make(const char *dir, long patients, uint64_t seed, ff_model_config *mc,
                  ff_site **site, char *site_dir, size_t n);

#endif
