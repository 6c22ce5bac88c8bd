/* Client-level (hospital-level) differential privacy in the federation processes (not
 * public): DP-FedAvg with the coordinator's Gaussian noise when secure aggregation is off,
 * the distributed discrete Gaussian of the sites when it is on, and the privacy ledger that
 * advances every round, refuses rounds past the budget and feeds the audit log
 * (docs/privacy.md, "Client-level DP in the federated round"). */
#ifndef FF_FED_DP_H
#define FF_FED_DP_H

#include "ff/privacy.h"
#include "fed_internal.h"

#define FED_DP_LEDGER_FILE "privacy-client-ledger.json"

typedef struct {
    int on;                  /* plan privacy.client.enabled */
    int ddg;                 /* the distributed discrete Gaussian (secure aggregation on) */
    ff_privacy_client_cfg cfg;
    int64_t quorum;          /* fewest survivors a round can aggregate */
    int64_t selected;        /* sites selected for the round in progress: the denominator */
    size_t nparams;
    ff_rng rng;              /* the coordinator's Gaussian noise; seeded from the OS */
    ff_privacy_ledger *ledger;
    fed_audit *audit;
    char ledger_dir[FF_COORD_PATH_MAX];
    char ledger_path[FF_COORD_PATH_MAX + 64];
    /* the round in progress (central mechanism) */
    size_t nupdates, nclipped;
    double max_norm;
} fed_dp;

/* Sets up the mechanism for the plan's privacy.client (nothing when it is off): the engine's
 * mechanism hooks (gaussian) and the budget phase before the round's first collect phase.
 * Call after fed_secagg_install and before ff_coord_resume. */
int fed_dp_install(fed_dp *dp, ff_coord *c, const ff_coord_config *cfg, const ff_plan *plan,
                   fed_audit *audit) FF_WARN_UNUSED;
/* After ff_coord_resume: a resumed run reloads its ledger (the ε it already spent, which
 * ff_plan_check_privacy then checks against the budget); a fresh run starts an empty one. */
int fed_dp_start(fed_dp *dp, int resumed, double *spent) FF_WARN_UNUSED;
void fed_dp_free(fed_dp *dp);

/* The round's distributed discrete Gaussian, computed alike by every site and the
 * coordinator from the approved plan, the number of sites n the secure aggregation round
 * started with and its round id: per-site noise std σ·S/√n (so the sum of n shares has std
 * σ·S), padded dimension d = 2^⌈log2 nparams⌉, γ from bits unless the plan sets it, and the
 * rotation seed derived from the round id (public randomness shared by the sites). */
int fed_dp_ddg_config(const ff_privacy_client_cfg *c, uint32_t n_sites, uint64_t round_id,
                      size_t nparams, ff_privacy_ddg_config *out, size_t *d) FF_WARN_UNUSED;

/* Secure aggregation's sum of the round is decoded: records the round in the ledger with the
 * survivors whose noise is in it (of `sites` that started), writes the audit entry and saves
 * the ledger. FF_EPOLICY when even this would pass the budget (cannot happen when the budget
 * phase passed: it assumed the fewest survivors). */
int fed_dp_record_ddg(fed_dp *dp, int64_t round, int64_t survivors, int64_t sites,
                      const ff_privacy_ddg_config *k, size_t d) FF_WARN_UNUSED;

#endif
