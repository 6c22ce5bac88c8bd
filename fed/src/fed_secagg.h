/* Secure aggregation in the federation processes (not public): the coordinator's phases
 * (coord_secagg.c) and the payload of the secagg tasks. */
#ifndef FF_FED_SECAGG_H
#define FF_FED_SECAGG_H

#include <math.h>

#include "ff/crypto.h"
#include "fed_dp.h"
#include "fed_internal.h"

typedef struct {
    const ff_coord_config *cfg;
    const char *const *names;
    size_t nsites;
    char run_id[96];
    fed_audit *audit;
    EVP_PKEY **keys;      /* per consortium site (borrowed: the roster's; NULL = unknown) */
    EVP_PKEY **sel_keys;  /* per secagg index */
    int *index_of;        /* consortium site -> secagg index of this round, -1 */
    int *site_of;         /* secagg index -> consortium site */
    size_t nsel, n;
    int64_t attempt;
    ff_secagg_params p;
    ff_secagg_codec codec;
    ff_secagg_server *srv;
    ff_secagg_buf adv, chk, req, *shares;
    json_t *entry; /* the round's audit `secagg` entry (also in each site's receipt) */
    fed_dp *dp;    /* client-level DP (borrowed; the distributed discrete Gaussian when on) */
    /* A statistics job (coord_stats.c): the lanes are integers, not an encoded update; the
     * unmasked sum (n_values - 1 lanes, then the count of inputs) goes to raw_sum as it is. */
    int (*raw_sum)(void *ud, ff_coord *c, const uint32_t *sum, size_t n, uint32_t inputs);
    void *raw_ud;
} fed_secagg;

/* Removes `train`, inserts the five phases before `aggregate`. keys: each site's Ed25519
 * key, borrowed (filled in as sites connect; a selected site always has one). */
int fed_secagg_install(fed_secagg *sa, ff_coord *c, const ff_coord_config *cfg,
                       const char *const *names, size_t nsites, EVP_PKEY **keys,
                       const char *run_id, fed_audit *audit) FF_WARN_UNUSED;
/* The next consortium site (names[nsites], keys[nsites]) joined the running consortium: it
 * takes part from the next selection. No-op before fed_secagg_install. */
void fed_secagg_add_site(fed_secagg *sa);
void fed_secagg_free(fed_secagg *sa);
/* Fills t->secagg (the round's parameters, site's place) and t->secagg_message (the phase's
 * message for site), in the call's memory. */
int fed_secagg_task(fed_secagg *sa, int site, const char *phase, ff_call *call,
                    Fedfuse__Task *t) FF_WARN_UNUSED;

#endif
