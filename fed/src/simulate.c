/* `fedfuse simulate`: the whole consortium on one machine, as real processes. Makes the
 * synthetic cohort and a throw-away PKI, writes every config a real deployment would have
 * (out/config), runs one coordinator and one client per hospital over mutual TLS on loopback,
 * then trains the baselines in-process and writes the comparison. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ff/crypto.h"
#include "ff/privacy.h"
#include "ff/stats.h"
#include "fed_internal.h"

#define SIM_PKI_DAYS (3 * FED_CERT_WARN_DAYS)

#define MAX_DEMO_SITES 256
/* The synthetic generator makes at most this many hospitals (ff_synth_opts.sites); above it,
 * client i reads the data of hospital (i mod 64) + 1, so a load test can run 256 clients. */
#define MAX_COHORT_SITES 64

typedef struct {
    char run_name[64];
    struct {
        char dir[512];
        int64_t sites, patients, seed;
        ff_cfg_strlist site_dirs; /* existing site folders, any names (instead of dir) */
    } data;
    char model_config[512];
    int64_t rounds, seed;
    struct {
        int64_t local_steps, batch_size;
        double lr, fedprox_mu, modality_dropout;
    } plan;
    struct {
        int name;
        double server_lr;
    } strategy;
    int64_t min_sites;
    struct {
        double train, evaluate;
    } deadlines;
    struct {
        int enabled;
        int64_t threshold, neighbours; /* 0 = the crypto library's default rule */
    } secagg;
    int64_t threads;
    int baselines;
    double timeout;
    ff_privacy_cfg privacy; /* copied into the plan (docs/privacy.md) */
    char plan_file[512]; /* a training plan with stages, used instead of the `plan` section */
    double label_fraction;
    ff_coord_report_config report;
    struct { /* written into each generated site policy's statistics: section */
        int64_t min_cell_size;
        int outcome_cells;
    } site_policy;
} demo_cfg;

static const char *const strategies[] = {"fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", NULL};

#define D(f) offsetof(demo_cfg, f)
#define DS(s, f) (offsetof(demo_cfg, s.f) - offsetof(demo_cfg, s))
static const ff_cfg_field data_fields[] = {
    {.key = "dir", .type = FF_CFG_STRING, .offset = DS(data, dir), .size = 512, .def = "demo-data",
     .help = "synthetic cohort folder of site-1..N (generated only when missing or empty)"},
    {.key = "site_dirs", .type = FF_CFG_STRLIST, .offset = DS(data, site_dirs),
     .help = "existing site folders, any names (then dir, sites, patients and seed are unused; "
             "the command line's --site replaces them)"},
    {.key = "sites", .type = FF_CFG_INT, .offset = DS(data, sites), .min = 2, .max = MAX_DEMO_SITES,
     .def = "4", .help = "hospitals"},
    {.key = "patients", .type = FF_CFG_INT, .offset = DS(data, patients), .min = 50, .max = 1e6,
     .def = "1000", .help = "patients per hospital on average"},
    {.key = "seed", .type = FF_CFG_INT, .offset = DS(data, seed), .min = 0, .max = 9e15, .def = "7",
     .help = "cohort seed"},
    {0},
};
static const ff_cfg_field plan_fields[] = {
    {.key = "local_steps", .type = FF_CFG_INT, .offset = DS(plan, local_steps), .min = 1, .max = 1e6,
     .def = "40", .help = "local steps per round"},
    {.key = "batch_size", .type = FF_CFG_INT, .offset = DS(plan, batch_size), .min = 1, .max = 64,
     .def = "32", .help = "batch size"},
    {.key = "lr", .type = FF_CFG_DOUBLE, .offset = DS(plan, lr), .min = 1e-7, .max = 1, .def = "0.002",
     .help = "AdamW learning rate"},
    {.key = "fedprox_mu", .type = FF_CFG_DOUBLE, .offset = DS(plan, fedprox_mu), .min = 0, .max = 100,
     .def = "0", .help = "FedProx mu"},
    {.key = "modality_dropout", .type = FF_CFG_DOUBLE, .offset = DS(plan, modality_dropout), .min = 0,
     .max = 0.99, .def = "0", .help = "modality dropout"},
    {0},
};
static const ff_cfg_field strategy_fields[] = {
    {.key = "name", .type = FF_CFG_ENUM, .offset = DS(strategy, name), .choices = strategies,
     .def = "fedavg", .help = "server strategy"},
    {.key = "server_lr", .type = FF_CFG_DOUBLE, .offset = DS(strategy, server_lr), .min = 1e-9,
     .max = 100, .def = "1.0", .help = "server learning rate"},
    {0},
};
static const ff_cfg_field deadline_fields[] = {
    {.key = "train", .type = FF_CFG_DOUBLE, .offset = DS(deadlines, train), .min = 1, .max = 86400,
     .def = "120", .help = "seconds for local training + upload"},
    {.key = "evaluate", .type = FF_CFG_DOUBLE, .offset = DS(deadlines, evaluate), .min = 1,
     .max = 86400, .def = "60", .help = "seconds for evaluation"},
    {0},
};
static const ff_cfg_field secagg_fields[] = {
    {.key = "enabled", .type = FF_CFG_BOOL, .offset = DS(secagg, enabled), .def = "false",
     .help = "SecAgg+: the coordinator only sees the sum of the masked updates"},
    {.key = "threshold", .type = FF_CFG_INT, .offset = DS(secagg, threshold), .min = 0,
     .max = MAX_DEMO_SITES, .def = "0", .help = "t; 0 = default rule floor((k+1)/2)+1"},
    {.key = "neighbours", .type = FF_CFG_INT, .offset = DS(secagg, neighbours), .min = 0,
     .max = MAX_DEMO_SITES, .def = "0", .help = "k; 0 = default rule"},
    {0},
};
static const ff_cfg_field site_policy_fields[] = {
    {.key = "min_cell_size", .type = FF_CFG_INT, .offset = DS(site_policy, min_cell_size),
     .min = 1, .max = 1000000, .def = "10",
     .help = "each site policy's statistics.min_cell_size (fairness subgroups withheld below it)"},
    {.key = "outcome_cells", .type = FF_CFG_BOOL, .offset = DS(site_policy, outcome_cells),
     .def = "true", .help = "each site policy's statistics.outcome_cells"},
    {0},
};
static const ff_cfg_field demo_schema[] = {
    {.key = "run_name", .type = FF_CFG_STRING, .offset = D(run_name), .size = 64, .def = "demo",
     .help = "run name"},
    {.key = "data", .type = FF_CFG_SECTION, .offset = D(data), .sub = data_fields},
    {.key = "model_config", .type = FF_CFG_STRING, .offset = D(model_config), .size = 512,
     .def = "configs/model-tiny.yaml", .help = "model config"},
    {.key = "rounds", .type = FF_CFG_INT, .offset = D(rounds), .min = 1, .max = 10000, .def = "8",
     .help = "federated rounds"},
    {.key = "seed", .type = FF_CFG_INT, .offset = D(seed), .min = 0, .max = 9e15, .def = "1",
     .help = "model init, sampling and training seed"},
    {.key = "plan", .type = FF_CFG_SECTION, .offset = D(plan), .sub = plan_fields},
    {.key = "strategy", .type = FF_CFG_SECTION, .offset = D(strategy), .sub = strategy_fields},
    {.key = "min_sites", .type = FF_CFG_INT, .offset = D(min_sites), .min = 1, .max = MAX_DEMO_SITES,
     .def = "2", .help = "quorum"},
    {.key = "deadlines", .type = FF_CFG_SECTION, .offset = D(deadlines), .sub = deadline_fields},
    {.key = "secure_aggregation", .type = FF_CFG_SECTION, .offset = D(secagg), .sub = secagg_fields},
    {.key = "threads", .type = FF_CFG_INT, .offset = D(threads), .min = 1, .max = 64, .def = "1",
     .help = "threads per client process"},
    {.key = "baselines", .type = FF_CFG_BOOL, .offset = D(baselines), .def = "true",
     .help = "train pooled and local-only baselines after the run"},
    {.key = "timeout", .type = FF_CFG_DOUBLE, .offset = D(timeout), .min = 10, .max = 604800,
     .def = "900", .help = "seconds before the simulation gives up and kills its processes"},
    {.key = "privacy", .type = FF_CFG_SECTION, .offset = D(privacy), .sub = ff_privacy_cfg_schema,
     .help = "the plan's privacy section (record- and client-level DP in the round)"},
    {.key = "plan_file", .type = FF_CFG_STRING, .offset = D(plan_file), .size = 512, .def = "",
     .help = "training plan file with stages (configs/plan-pretrain.yaml); \"\" = the plan section"},
    {.key = "report", .type = FF_CFG_SECTION, .offset = D(report), .sub = ff_coord_report_schema,
     .help = "the final report: operating-point rule, minimum cell size, bootstrap"},
    {.key = "label_fraction", .type = FF_CFG_DOUBLE, .offset = D(label_fraction), .min = 0.001,
     .max = 1, .def = "1", .help = "share of each site's training patients with labels"},
    {.key = "site_policy", .type = FF_CFG_SECTION, .offset = D(site_policy),
     .sub = site_policy_fields, .help = "the generated site policies' disclosure control"},
    {0},
};

typedef struct {
    demo_cfg d;
    char out[512], abs_out[1024], data[1024], model_cfg[1024], exe[1024];
    char names[MAX_DEMO_SITES][FF_SITE_NAME_MAX];
    char dirs[MAX_DEMO_SITES][1024]; /* each hospital's data folder (absolute) */
    int real_sites;                  /* dirs are the user's folders: never generate into them */
    size_t nsites, ncohort; /* ncohort = hospitals with their own data folder */
    pid_t coord, clients[MAX_DEMO_SITES];
    int port;
    /* The coordinator's own resource use, from wait4 when it exits (the load benchmark reads
     * the line printed from it), and how many clients exited with an error. */
    struct rusage coord_ru;
    int coord_reaped;
    size_t clients_failed;
    int stats; /* a statistics job (ff_fed_stats): no rounds to show */
    int kinds; /* tasks other than binary: the round line names each task's headline */
} sim;

static int write_text(const char *path, const char *fmt, ...) FF_PRINTF(2, 3);
static int write_text(const char *path, const char *fmt, ...)
{
    char buf[16384]; /* the consortium file of 256 sites is about 5 KB */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return ff_error(FF_ERANGE, "%s: text too long", path);
    return ff_file_write_atomic(path, buf, (size_t)n, 0644);
}

static int abspath(const char *p, char *out, size_t n)
{
    if (p[0] == '/') {
        ff_strlcpy(out, p, n);
        return FF_OK;
    }
    char cwd[768];
    if (!getcwd(cwd, sizeof cwd))
        return ff_error(FF_EIO, "getcwd: %s", strerror(errno));
    snprintf(out, n, "%s/%s", cwd, p);
    return FF_OK;
}

static int free_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             getsockname(fd, (struct sockaddr *)&a, &l) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok)
        return ff_error(FF_ENET, "cannot find a free loopback port: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return FF_OK;
}

/* 1 when dir is missing or an empty directory (the only places a cohort is generated). */
static int dir_missing_or_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

static int make_cohort(sim *s, const ff_model_config *mc)
{
    if (s->real_sites) {
        printf("data: %zu site folders given, used as they are\n", s->nsites);
        return FF_OK;
    }
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/site-1", s->data);
    if (ff_path_exists(probe)) {
        for (size_t i = 1; i < s->ncohort; i++)
            if (!ff_path_exists(s->dirs[i]))
                return ff_error(FF_EINVAL, "data.dir %s has site-1 but no %s (data.sites = %zu); "
                                "pass existing folders with --site DIR or data.site_dirs",
                                s->data, s->names[i], s->nsites);
        printf("cohort: using %s\n", s->data);
        return FF_OK;
    }
    /* A folder that holds something else (e.g. a hospital's own site folders under other
     * names) is never written into. */
    if (!dir_missing_or_empty(s->data))
        return ff_error(FF_EINVAL, "data.dir %s is not empty and holds no site-1 folder: fedfuse "
                        "generates a synthetic cohort only into a missing or empty folder; to use "
                        "your own site folders pass them with --site DIR (or data.site_dirs)",
                        s->data);
    ff_synth_opts so = ff_synth_opts_default();
    so.sites = (int)s->ncohort;
    so.patients = (long)s->d.data.patients;
    so.seed = (uint64_t)s->d.data.seed;
    so.image_size = mc->image.size;
    so.quiet = 1;
    printf("cohort: generating %d synthetic hospitals x ~%ld patients in %s\n", so.sites,
           so.patients, s->data);
    return ff_synth_generate(&so, s->data);
}

static int make_pki(sim *s)
{
    char ca[1100], dir[1100];
    snprintf(ca, sizeof ca, "%s/pki/ca", s->abs_out);
    /* a throw-away PKI, but valid well past FED_CERT_WARN_DAYS: a fresh run must not warn
     * that its own certificates are about to expire */
    int rc = ff_pki_init(ca, "fedfuse-demo", SIM_PKI_DAYS);
    ff_pki_issue_opts co = {.name = "coordinator", .role = FF_PKI_COORDINATOR,
                            .days = SIM_PKI_DAYS};
    ff_pki_issue_opts ao = {.name = "audit", .role = FF_PKI_AUDIT, .days = SIM_PKI_DAYS};
    snprintf(dir, sizeof dir, "%s/pki/coordinator", s->abs_out);
    if (rc == FF_OK)
        rc = ff_pki_issue(ca, dir, &co);
    snprintf(dir, sizeof dir, "%s/pki/audit", s->abs_out);
    if (rc == FF_OK)
        rc = ff_pki_issue(ca, dir, &ao);
    for (size_t i = 0; rc == FF_OK && i < s->nsites; i++) {
        ff_pki_issue_opts so = {.name = s->names[i], .role = FF_PKI_SITE, .days = SIM_PKI_DAYS};
        snprintf(dir, sizeof dir, "%s/pki/sites", s->abs_out);
        rc = ff_pki_issue(ca, dir, &so);
        /* the auditor's receipt check reads <site>.pem */
        char crt[1200], pem_path[1200], *b = NULL;
        size_t bl = 0;
        snprintf(crt, sizeof crt, "%s/%s.crt", dir, s->names[i]);
        snprintf(pem_path, sizeof pem_path, "%s/pki/receipt-certs/%s.pem", s->abs_out, s->names[i]);
        if (rc == FF_OK)
            rc = ff_file_read_all(crt, 1u << 20, &b, &bl);
        if (rc == FF_OK) {
            snprintf(crt, sizeof crt, "%s/pki/receipt-certs", s->abs_out);
            rc = ff_mkdir_p(crt, 0755);
        }
        if (rc == FF_OK)
            rc = ff_file_write_atomic(pem_path, b, bl, 0644);
        free(b);
    }
    /* The CA certificate as pki/ca.pem, and the revocation list beside it, where `audit
     * verify --ca pki/ca.pem` looks for it. */
    static const char *const copies[][2] = {{"ca.crt", "ca.pem"}, {"crl.pem", "crl.pem"}};
    for (size_t i = 0; rc == FF_OK && i < FF_ARRAY_LEN(copies); i++) {
        char *pem = NULL;
        size_t len = 0;
        snprintf(dir, sizeof dir, "%s/%s", ca, copies[i][0]);
        rc = ff_file_read_all(dir, 1u << 20, &pem, &len);
        snprintf(dir, sizeof dir, "%s/pki/%s", s->abs_out, copies[i][1]);
        if (rc == FF_OK)
            rc = ff_file_write_atomic(dir, pem, len, 0644);
        free(pem);
    }
    return rc;
}

/* OUT/config/consortium.yaml: every site, the throw-away CA and its CRL. */
static int write_consortium(const sim *s, const char *name)
{
    char sites[MAX_DEMO_SITES * 24] = "", path[1200];
    for (size_t i = 0; i < s->nsites; i++) {
        size_t l = strlen(sites);
        snprintf(sites + l, sizeof sites - l, "  - name: %s\n", s->names[i]);
    }
    snprintf(path, sizeof path, "%s/config/consortium.yaml", s->abs_out);
    return write_text(path, "consortium: %s\nca: ../pki/ca/ca.crt\ncrl: ../pki/ca/crl.pem\n"
                            "sites:\n%s", name, sites);
}

static int write_configs(sim *s, char *job_hex)
{
    const char *o = s->abs_out;
    char path[1200], plan_path[1200];
    int rc = FF_OK;
    snprintf(path, sizeof path, "%s/config", o);
    rc = ff_mkdir_p(path, 0755);
    snprintf(plan_path, sizeof plan_path, "%s/config/plan.yaml", o);
    if (rc == FF_OK && s->d.plan_file[0]) {
        char *pb = NULL; /* the given plan as it is: its bytes are what the job hash covers */
        size_t pl = 0;
        rc = ff_file_read_all(s->d.plan_file, 1u << 20, &pb, &pl);
        if (rc == FF_OK)
            rc = ff_file_write_atomic(plan_path, pb, pl, 0644);
        free(pb);
    } else if (rc == FF_OK)
        rc = write_text(plan_path,
                        "# Training plan of the demo (written by fedfuse simulate).\n"
                        "local_steps: %lld\nbatch_size: %lld\n"
                        "optimizer: {name: adamw, lr: %.17g, weight_decay: 0.01}\n"
                        "fedprox_mu: %.17g\nmodality_dropout: %.17g\n",
                        (long long)s->d.plan.local_steps, (long long)s->d.plan.batch_size,
                        s->d.plan.lr, s->d.plan.fedprox_mu, s->d.plan.modality_dropout);
    const ff_privacy_record_cfg *pr = &s->d.privacy.record;
    const ff_privacy_client_cfg *pc = &s->d.privacy.client;
    static const char *const mechs[] = {"gaussian", "distributed_discrete_gaussian"};
    char pv[1024] = "", dp[512] = "dp: {required: false}";
    if (pr->enabled || pc->enabled) {
        snprintf(pv, sizeof pv,
                 "privacy:\n"
                 "  record: {enabled: %s, noise_multiplier: %.17g, clip_norm: %.17g, delta: %.17g, "
                 "epsilon_budget: %.17g}\n"
                 "  client: {enabled: %s, noise_multiplier: %.17g, clip_norm: %.17g, delta: %.17g, "
                 "epsilon_budget: %.17g, mechanism: %s, bits: %lld, gamma: %.17g, beta: %.17g}\n",
                 pr->enabled ? "true" : "false", pr->noise_multiplier, pr->clip_norm, pr->delta,
                 pr->epsilon_budget, pc->enabled ? "true" : "false", pc->noise_multiplier,
                 pc->clip_norm, pc->delta, pc->epsilon_budget, mechs[pc->mechanism == 1],
                 (long long)pc->bits, pc->gamma, pc->beta);
    }
    if (pr->enabled || pc->enabled) {
        /* the sites require DP and accept exactly the plan's settings as their limits (the
         * looser of the two levels' when both are on: each level is checked) */
        double eps = FF_MAX(pc->enabled ? pc->epsilon_budget : 0,
                            pr->enabled ? pr->epsilon_budget : 0);
        double del = FF_MAX(pc->enabled ? pc->delta : 0, pr->enabled ? pr->delta : 0);
        double sig = FF_MIN(pc->enabled ? pc->noise_multiplier : INFINITY,
                            pr->enabled ? pr->noise_multiplier : INFINITY);
        double clip = FF_MAX(pc->enabled ? pc->clip_norm : 0, pr->enabled ? pr->clip_norm : 0);
        snprintf(dp, sizeof dp,
                 "dp: {required: true, max_epsilon: %.17g, max_delta: %.17g, "
                 "min_noise_multiplier: %.17g, max_clip_norm: %.17g}",
                 eps, del, sig, clip);
    }
    if (rc == FF_OK && pv[0]) {
        FILE *pf = fopen(plan_path, "a");
        if (!pf || fputs(pv, pf) < 0)
            rc = ff_error(FF_EIO, "%s: cannot append the privacy section", plan_path);
        if (pf && fclose(pf) != 0 && rc == FF_OK)
            rc = ff_error(FF_EIO, "%s: cannot append the privacy section", plan_path);
    }
    if (rc == FF_OK)
        rc = write_consortium(s, "fedfuse-demo");
    /* secure aggregation: t by the crypto library's rule unless given; the quorum must reach t */
    uint32_t nsa = (uint32_t)s->nsites;
    uint32_t k = s->d.secagg.neighbours > 0 ? (uint32_t)FF_MIN(s->d.secagg.neighbours, (int64_t)nsa - 1)
                                            : ff_secagg_default_k(nsa);
    int64_t t = s->d.secagg.threshold > 0 ? s->d.secagg.threshold : (int64_t)ff_secagg_default_t(k);
    int64_t quorum = s->d.secagg.enabled ? FF_MAX(s->d.min_sites, t) : s->d.min_sites;
    if (quorum != s->d.min_sites)
        FF_LOG_INFO("secure aggregation: threshold t=%lld, so the quorum is raised to %lld sites",
                    (long long)t, (long long)quorum);
    char sa[1400];
    snprintf(sa, sizeof sa,
             "secure_aggregation: {enabled: %s, threshold: %lld, neighbours: %lld}\n"
             "deadlines: {train: %.17g, evaluate: %.17g, advertise_keys: %.17g, share_keys: %.17g, "
             "masked_input: %.17g, unmask: %.17g}\n",
             s->d.secagg.enabled ? "true" : "false", (long long)t, (long long)k,
             s->d.deadlines.train, s->d.deadlines.evaluate, s->d.deadlines.train,
             s->d.deadlines.evaluate, s->d.deadlines.evaluate, s->d.deadlines.evaluate);
    snprintf(path, sizeof path, "%s/config/coordinator.yaml", o);
    if (rc == FF_OK)
        rc = write_text(path,
                        "# Coordinator of the demo (written by fedfuse simulate).\n"
                        "run_name: %s\nrounds: %lld\nseed: %lld\n"
                        "strategy: {name: %s, server_lr: %.17g}\n"
                        "quorum: {min_sites: %lld}\n%s"
                        "checkpoint_dir: %s/checkpoints\nout_dir: %s\nlisten: 127.0.0.1:%d\n"
                        "consortium: %s/config/consortium.yaml\nplan: %s\nmodel_config: %s\n"
                        "tls: {cert: %s/pki/coordinator/coordinator.crt, key: %s/pki/coordinator/coordinator.key}\n"
                        "audit: {cert: %s/pki/audit/audit.crt, key: %s/pki/audit/audit.key}\n"
                        "report: {operating_point: {rule: %s, target: %.17g}, min_cell_size: %lld, "
                        "bootstrap: %lld, min_positives: %lld}\n",
                        s->d.run_name, (long long)s->d.rounds, (long long)s->d.seed,
                        strategies[s->d.strategy.name], s->d.strategy.server_lr,
                        (long long)quorum, sa, o,
                        o, s->port, o, plan_path, s->model_cfg, o, o, o, o,
                        ff_eval_op_rule_names[s->d.report.operating_point.rule],
                        s->d.report.operating_point.target, (long long)s->d.report.min_cell_size,
                        (long long)s->d.report.bootstrap, (long long)s->d.report.min_positives);
    /* the job hash each site's policy approves: that of the coordinator config just written,
     * exactly as `fedfuse job hash --config` computes it */
    ff_coord_config cc;
    ff_coord_job job;
    memset(&job, 0, sizeof job);
    int crc = ff_coord_config_load(&cc, path);
    if (rc == FF_OK)
        rc = crc;
    if (rc == FF_OK)
        rc = ff_coord_job_load(&job, &cc, path, 1);
    if (rc == FF_OK)
        ff_strlcpy(job_hex, job.hex, FF_SHA256_HEX);
    ff_coord_job_free(&job);
    ff_coord_config_free(&cc);
    for (size_t i = 0; rc == FF_OK && i < s->nsites; i++) {
        const char *n = s->names[i];
        snprintf(path, sizeof path, "%s/config/policy-%s.yaml", o, n);
        rc = write_text(path, "site: %s\naccepted_jobs:\n  - %s\nrequire_secure_aggregation: %s\n"
                              "%s\nmax_rounds: 10000\n"
                              "statistics: {min_cell_size: %lld, outcome_cells: %s}\n",
                        n, job_hex, s->d.secagg.enabled ? "true" : "false", dp,
                        (long long)s->d.site_policy.min_cell_size,
                        s->d.site_policy.outcome_cells ? "true" : "false");
        snprintf(path, sizeof path, "%s/config/site-%s.yaml", o, n);
        if (rc == FF_OK)
            rc = write_text(path,
                            "# Client node of %s (written by fedfuse simulate).\n"
                            "site: %s\ncoordinator: 127.0.0.1:%d\nserver_name: coordinator\n"
                            "cert: %s/pki/sites/%s.crt\nkey: %s/pki/sites/%s.key\nca: %s/pki/ca.pem\n"
                            "data: %s\nmodel_config: %s\npolicy: %s/config/policy-%s.yaml\n"
                            "out_dir: %s\n"
                            "threads: %lld\nseed: %lld\ngive_up_after: 120\n"
                            "label_fraction: %.17g\n",
                            n, n, s->port, o, n, o, n, o, s->dirs[i % s->ncohort],
                            s->model_cfg, o, n, o,
                            (long long)s->d.threads, (long long)s->d.seed, s->d.label_fraction);
    }
    return rc;
}

static pid_t spawn(sim *s, const char *log_name, char *const argv[])
{
    char log[1200];
    snprintf(log, sizeof log, "%s/logs/%s.log", s->abs_out, log_name);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child: die with the simulation; one BLAS thread (determinism, shared cores) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    setenv("MALLOC_ARENA_MAX", "2", 1);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execv(s->exe, argv);
    _exit(127);
}

/* Waits (at most 30 s) until the coordinator accepts TCP connections, so the clients' first
 * calls find it up. */
static void wait_listening(sim *s)
{
    double until = ff_now() + 30.0;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        /* WNOWAIT: a coordinator that died is left for wait_run to reap and report. */
        if (ff_now() > until || waitid(P_PID, (id_t)s->coord, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
            si.si_pid != 0)
            return;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return;
        usleep(50000);
    }
}

static void kill_all(sim *s)
{
    pid_t all[MAX_DEMO_SITES + 1];
    size_t n = 0;
    if (s->coord > 0)
        all[n++] = s->coord;
    for (size_t i = 0; i < s->nsites; i++)
        if (s->clients[i] > 0)
            all[n++] = s->clients[i];
    for (size_t i = 0; i < n; i++)
        kill(all[i], SIGTERM);
    double until = ff_now() + 3.0;
    for (size_t i = 0; i < n; i++) {
        while (waitpid(all[i], NULL, WNOHANG) == 0) {
            if (ff_now() > until) {
                kill(all[i], SIGKILL);
                waitpid(all[i], NULL, 0);
                break;
            }
            usleep(20000);
        }
    }
    s->coord = 0;
    for (size_t i = 0; i < s->nsites; i++)
        s->clients[i] = 0;
}

/* "pooled test admission AUROC 0.770, grade macro AUROC ..." for round `round` from the
 * coordinator's fedeval.json (written before the round's rounds.csv line); buf unchanged when
 * the round is not there. */
static void round_tasks(const sim *s, const char *round, char *buf, size_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/fedeval.json", s->abs_out);
    json_t *j = json_load_file(path, 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "rounds"), i, v)
    {
        if (json_integer_value(json_object_get(v, "round")) == atoll(round)) {
            char line[2048];
            fed_round_summary(v, line, sizeof line);
            snprintf(buf, n, "pooled test %s", line);
        }
    }
    json_decref(j);
}

/* Prints a line per finished round from rounds.csv (the coordinator's own record). */
static void show_rounds(sim *s, int *shown)
{
    if (s->stats)
        return;
    char path[1200];
    snprintf(path, sizeof path, "%s/rounds.csv", s->abs_out);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    int i = 0;
    while (fgets(line, sizeof line, f)) {
        if (i++ == 0 || i - 1 <= *shown)
            continue;
        char *fld[16];
        int nf = 0;
        line[strcspn(line, "\r\n")] = '\0';
        for (char *p = line; nf < 16; p++) { /* empty cells (not measured) kept */
            fld[nf++] = p;
            if (!(p = strchr(p, ',')))
                break;
            *p = '\0';
        }
        char au[2100] = "pooled test AUROC undefined";
        if (nf >= 14 && fld[11][0])
            snprintf(au, sizeof au, "pooled test AUROC %.3f", atof(fld[11]));
        if (nf >= 14 && s->kinds)
            round_tasks(s, fld[0], au, sizeof au);
        if (nf >= 14 && s->d.secagg.enabled) /* the coordinator saw only the masked sum */
            printf("round %s/%lld: secure sum of the masked updates, %s examples, %s (%.1fs)\n",
                   fld[0], (long long)s->d.rounds, fld[7], au, atof(fld[13]));
        else if (nf >= 14)
            printf("round %s/%lld: %s sites trained, %s examples, %s (%.1fs)\n",
                   fld[0], (long long)s->d.rounds, fld[4], fld[7], au, atof(fld[13]));
        *shown = i - 1;
    }
    fclose(f);
    fflush(stdout);
}

static int wait_run(sim *s, const ff_fed_run_opts *o)
{
    double until = ff_now() + s->d.timeout, clients_until = 0;
    int shown = 0, rc = FF_OK;
    for (;;) {
        if (o && o->stop && *o->stop) {
            rc = ff_error(FF_ESTATE, "interrupted; stopped the coordinator and the clients");
            break;
        }
        if (ff_now() > until) {
            rc = ff_error(FF_ETIMEOUT, "the run did not finish within timeout %.0f s (logs: %s/logs)",
                          s->d.timeout, s->out);
            break;
        }
        show_rounds(s, &shown);
        int st;
        if (s->coord > 0 && wait4(s->coord, &st, WNOHANG, &s->coord_ru) == s->coord) {
            s->coord = 0;
            s->coord_reaped = 1;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                rc = ff_error(FF_ESTATE, "the coordinator failed (status %d); see %s/logs/coordinator.log",
                              WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), s->out);
                break;
            }
            clients_until = ff_now() + 30.0;
        }
        size_t alive = 0;
        for (size_t i = 0; i < s->nsites; i++) {
            if (s->clients[i] > 0 && waitpid(s->clients[i], &st, WNOHANG) == s->clients[i]) {
                s->clients[i] = 0;
                s->clients_failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                    fprintf(stderr, "warning: client %s exited with status %d (see %s/logs/%s.log)\n",
                            s->names[i], WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), s->out,
                            s->names[i]);
            }
            alive += s->clients[i] > 0;
        }
        if (s->coord == 0 && (alive == 0 || ff_now() > clients_until))
            break;
        usleep(200000);
    }
    for (size_t i = 0; s->coord_reaped && i < s->nsites; i++)
        if (s->clients[i] > 0) { /* still running 30 s after the coordinator finished */
            s->clients_failed++;
            fprintf(stderr, "warning: client %s did not exit after the run (see %s/logs/%s.log)\n",
                    s->names[i], s->out, s->names[i]);
        }
    show_rounds(s, &shown);
    kill_all(s);
    return rc;
}

/* One coordinator and one client process per site from OUT/config, until the run ends. */
static int run_processes(sim *s, const ff_fed_run_opts *o)
{
    char cpath[1200];
    snprintf(cpath, sizeof cpath, "%s/config/coordinator.yaml", s->abs_out);
    char *cargv[] = {s->exe, "coordinator", "--config", cpath, "--no-progress", NULL};
    s->coord = spawn(s, "coordinator", cargv);
    wait_listening(s);
    for (size_t i = 0; i < s->nsites && s->coord > 0; i++) {
        char spath[1200];
        snprintf(spath, sizeof spath, "%s/config/site-%s.yaml", s->abs_out, s->names[i]);
        char *argv[] = {s->exe, "client", "--config", spath, NULL};
        s->clients[i] = spawn(s, s->names[i], argv);
    }
    int rc = s->coord > 0 ? wait_run(s, o) : ff_error(FF_EIO, "fork: %s", strerror(errno));
    kill_all(s);
    return rc;
}

/* ---- baselines ------------------------------------------------------------------------- */

/* Pooled test headline metric per declared task (binary: AUROC; ff_eval_kind_headline for
 * the others); NaN = undefined, with the reason in why[k]. */
typedef struct {
    const ff_task_set *ts;
    double auroc[FF_TASKS_MAX];
    char why[FF_TASKS_MAX][128];
} aurocs;

/* The metrics.json key of a task's headline metric. */
static const char *headline_key(const ff_task *t)
{
    static const char *const keys[] = {"auroc", "macro_auroc", "r2", "cindex"};
    return t->kind >= 0 && t->kind < FF_TASK_KIND_COUNT ? keys[t->kind] : "auroc";
}

static void aurocs_undefined(aurocs *a, const char *why)
{
    for (int k = 0; k < a->ts->n; k++) {
        a->auroc[k] = NAN;
        ff_strlcpy(a->why[k], why, sizeof a->why[k]);
    }
}

/* "0.812" or "undefined" (never "nan" on the console or in the report). */
static const char *fmt_auroc(char *buf, size_t n, double v)
{
    if (isfinite(v))
        snprintf(buf, n, "%.3f", v);
    else
        ff_strlcpy(buf, "undefined", n);
    return buf;
}

static int eval_model(ff_model *m, ff_site **sites, const char **names, size_t n, aurocs *a)
{
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    eo.bootstrap = 0;
    json_t *j = NULL;
    int rc = ff_client_evaluate(m, sites, names, n, FF_SPLIT_TEST, FF_MOD_ALL, &eo, NULL, NULL, &j);
    for (int k = 0; rc == FF_OK && k < a->ts->n; k++) {
        const char *tn = a->ts->t[k].name, *key = headline_key(&a->ts->t[k]);
        json_t *pooled = json_object_get(json_object_get(json_object_get(j, "tasks"), tn), "pooled");
        json_t *v = json_object_get(pooled, key);
        a->auroc[k] = json_is_number(v) ? json_number_value(v) : NAN;
        const char *w = json_string_value(json_object_get(json_object_get(pooled, "undefined"), key));
        ff_strlcpy(a->why[k], isfinite(a->auroc[k]) ? "" : w ? w : "undefined", sizeof a->why[k]);
    }
    json_decref(j);
    return rc;
}

static void baseline_failed(aurocs *a, const char *which, const char *msg)
{
    char why[128];
    snprintf(why, sizeof why, "baseline not trained: %s", msg);
    fprintf(stderr, "warning: %s baseline: %s\n", which, msg);
    aurocs_undefined(a, why);
}

static int train_baseline(sim *s, const ff_model_config *mc, ff_site **train, size_t ntrain,
                          int64_t steps, ff_site **all, const char **names, aurocs *a)
{
    ff_model *m = NULL;
    int rc = ff_model_new(&m, mc, (int)s->d.plan.batch_size);
    if (rc == FF_OK)
        rc = ff_model_init(m, (uint64_t)s->d.seed);
    ff_local_opts o;
    memset(&o, 0, sizeof o);
    o.steps = steps;
    o.batch = (int)s->d.plan.batch_size;
    ff_optim_config_default(&o.optim);
    o.optim.lr = (float)s->d.plan.lr;
    o.optim.weight_decay = 0.01f;
    o.optim.min_lr_ratio = 1.0f; /* the federated rounds use a constant rate too */
    o.modality_dropout = (float)s->d.plan.modality_dropout;
    o.modalities = FF_MOD_ALL;
    o.augment = 1;
    o.seed = (uint64_t)s->d.seed;
    ff_local_stats st;
    if (rc == FF_OK)
        rc = ff_local_train(m, train, ntrain, &o, &st);
    if (rc == FF_OK)
        rc = eval_model(m, all, names, s->ncohort, a);
    ff_model_free(m);
    return rc;
}

/* The oracle: the cohort's true risks as scores, pooled test split. */
static int oracle_auroc(sim *s, aurocs *a)
{
    size_t cap = 1 << 16, n = 0;
    double *sc[FF_DATA_TASKS];
    uint8_t *lb[FF_DATA_TASKS];
    size_t cnt[FF_DATA_TASKS] = {0};
    int rc = FF_OK;
    for (int k = 0; k < FF_DATA_TASKS; k++) {
        sc[k] = malloc(cap * sizeof(double));
        lb[k] = malloc(cap);
        if (!sc[k] || !lb[k])
            rc = ff_error(FF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; rc == FF_OK && i < s->ncohort; i++) {
        char p1[1200], p2[1200];
        snprintf(p1, sizeof p1, "%s/patients.csv", s->dirs[i]);
        snprintf(p2, sizeof p2, "%s/oracle.csv", s->dirs[i]);
        FILE *fp = fopen(p1, "r"), *fo = fopen(p2, "r");
        if (!fp || !fo) {
            rc = ff_error(FF_EIO, "%s: cannot read the cohort's oracle", !fp ? p1 : p2);
        } else {
            /* Both files list the same patients in the same order (the generator writes them
             * together); ids are checked. */
            char a1[4096], a2[4096];
            if (!fgets(a1, sizeof a1, fp) || !fgets(a2, sizeof a2, fo))
                rc = ff_error(FF_EFORMAT, "%s: empty", p1);
            while (rc == FF_OK && fgets(a1, sizeof a1, fp) && fgets(a2, sizeof a2, fo)) {
                char *f1[12] = {0}, *f2[12] = {0};
                int n1 = 0, n2 = 0;
                for (char *q = a1, *e; n1 < 12; q = e + 1) {
                    f1[n1++] = q;
                    if (!(e = strchr(q, ',')))
                        break;
                    *e = '\0';
                }
                for (char *q = a2, *e; n2 < 12; q = e + 1) {
                    f2[n2++] = q;
                    if (!(e = strchr(q, ',')))
                        break;
                    *e = '\0';
                }
                if (n1 < 7 || n2 < 4 || strcmp(f1[0], f2[0]) != 0) {
                    rc = ff_error(FF_EFORMAT, "%s: rows do not match %s", p2, p1);
                    break;
                }
                if (strcmp(f1[3], "test") != 0)
                    continue;
                for (int k = 0; k < FF_DATA_TASKS; k++) {
                    if (f1[4 + k][0] == '\0' || cnt[k] >= cap)
                        continue;
                    sc[k][cnt[k]] = atof(f2[1 + k]);
                    lb[k][cnt[k]++] = (uint8_t)(atoi(f1[4 + k]) != 0);
                }
                n++;
            }
        }
        if (fp)
            fclose(fp);
        if (fo)
            fclose(fo);
    }
    ff_eval_opts eo;
    ff_eval_opts_default(&eo);
    eo.bootstrap = 0;
    for (int k = 0; k < FF_DATA_TASKS; k++) {
        a->auroc[k] = NAN;
        ff_eval_result r;
        if (rc == FF_OK && ff_eval_binary(sc[k], lb[k], cnt[k], &eo, &r) == FF_OK) {
            a->auroc[k] = r.auroc.defined ? r.auroc.value : NAN;
            ff_strlcpy(a->why[k], r.auroc.defined ? "" : r.auroc.why, sizeof a->why[k]);
            ff_eval_result_free(&r);
        }
        free(sc[k]);
        free(lb[k]);
    }
    return rc;
}

/* {task: value | null, "undefined": {task: why}} (the second only when a task is undefined) */
static json_t *au_json(const aurocs *a)
{
    json_t *j = json_object(), *u = json_object();
    for (int k = 0; k < a->ts->n; k++) {
        int def = isfinite(a->auroc[k]);
        json_object_set_new(j, a->ts->t[k].name, def ? json_real(a->auroc[k]) : json_null());
        if (!def)
            json_object_set_new(u, a->ts->t[k].name,
                                json_string(a->why[k][0] ? a->why[k] : "undefined"));
    }
    if (json_object_size(u) > 0)
        json_object_set(j, "undefined", u);
    json_decref(u);
    return j;
}

/* The cohort's oracle.csv holds the three emergency-department tasks' true risks: it is
 * used only when those are the declared tasks. */
static int is_ed_tasks(const ff_task_set *ts)
{
    ff_task_set ed;
    ff_task_set_ed(&ed, ts->n);
    if (ts->n > FF_DATA_TASKS)
        return 0;
    for (int k = 0; k < ts->n; k++)
        if (ts->t[k].kind != FF_TASK_BINARY || strcmp(ts->t[k].name, ed.t[k].name) != 0 ||
            strcmp(ts->t[k].label, ed.t[k].label) != 0)
            return 0;
    return 1;
}

/* "admission" for a binary task (its AUROC), "grade (macro_auroc)" for the other kinds. */
static void task_label(const ff_task *t, char *buf, size_t n)
{
    if (t->kind == FF_TASK_BINARY)
        snprintf(buf, n, "%s", t->name);
    else
        snprintf(buf, n, "%s (%s)", t->name, headline_key(t));
}

static int baselines(sim *s, const ff_model_config *mc)
{
    ff_data_shape shape;
    ff_client_shape(mc, &shape);
    ff_site_opts so = ff_site_opts_default();
    ff_site *sites[MAX_DEMO_SITES] = {0};
    const char *names[MAX_DEMO_SITES];
    int rc = FF_OK;
    ff_log_level lvl = ff_log_get_level();
    ff_log_set_level(FF_LOG_WARN);
    for (size_t i = 0; rc == FF_OK && i < s->ncohort; i++) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s", s->dirs[i]);
        ff_load_report rep;
        rc = ff_site_load(&sites[i], dir, &shape, &so, &rep);
        names[i] = s->names[i];
    }
    aurocs fed, pooled, oracle, local[MAX_DEMO_SITES], local_mean;
    memset(&fed, 0, sizeof fed);
    memset(&pooled, 0, sizeof pooled);
    memset(&oracle, 0, sizeof oracle);
    memset(&local_mean, 0, sizeof local_mean);
    memset(local, 0, sizeof local);
    const ff_task_set *ts = &mc->task_set;
    fed.ts = pooled.ts = oracle.ts = local_mean.ts = ts;
    for (size_t i = 0; i < MAX_DEMO_SITES; i++)
        local[i].ts = ts;
    ff_model *m = NULL;
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", s->abs_out);
    if (rc == FF_OK)
        rc = ff_model_new(&m, mc, 64);
    if (rc == FF_OK)
        rc = ff_model_load(m, path);
    if (rc == FF_OK)
        rc = eval_model(m, sites, names, s->ncohort, &fed);
    ff_model_free(m);
    /* Same total budget: the federation ran rounds x local_steps steps at each site. */
    int64_t total = s->d.rounds * s->d.plan.local_steps * (int64_t)s->nsites;
    double t0 = ff_now();
    /* A baseline that cannot be trained (e.g. a site with no training patient) is reported as
     * undefined with the reason; the comparison and the report are written all the same. */
    if (rc == FF_OK) {
        printf("baselines: pooled (centralised) training, %lld steps...\n", (long long)total);
        fflush(stdout);
        if (train_baseline(s, mc, sites, s->ncohort, total, sites, names, &pooled) != FF_OK)
            baseline_failed(&pooled, "pooled", ff_error_message());
    }
    size_t ndef[FF_TASKS_MAX] = {0};
    for (size_t i = 0; rc == FF_OK && i < s->ncohort; i++) {
        printf("baselines: local-only at %s, %lld steps...\n", s->names[i], (long long)total);
        fflush(stdout);
        if (train_baseline(s, mc, &sites[i], 1, total, sites, names, &local[i]) != FF_OK)
            baseline_failed(&local[i], s->names[i], ff_error_message());
        for (int k = 0; k < ts->n; k++)
            if (isfinite(local[i].auroc[k])) {
                local_mean.auroc[k] += local[i].auroc[k];
                ndef[k]++;
            }
    }
    for (int k = 0; k < ts->n; k++) { /* the mean over the sites where it is defined */
        local_mean.auroc[k] = ndef[k] ? local_mean.auroc[k] / (double)ndef[k] : NAN;
        ff_strlcpy(local_mean.why[k], ndef[k] ? "" : "undefined for every local-only model",
                   sizeof local_mean.why[k]);
    }
    /* Real data has no oracle (only the synthetic cohort knows each patient's true risk). */
    char opath[1300];
    snprintf(opath, sizeof opath, "%s/oracle.csv", s->dirs[0]);
    int have_oracle = ff_path_exists(opath) && is_ed_tasks(ts);
    for (int k = 0; k < ts->n; k++)
        oracle.auroc[k] = -1;
    if (rc == FF_OK && have_oracle)
        rc = oracle_auroc(s, &oracle);
    ff_log_set_level(lvl);
    for (size_t i = 0; i < s->ncohort; i++)
        ff_site_free(sites[i]);
    if (rc != FF_OK)
        return rc;
    json_t *loc = json_object();
    for (size_t i = 0; i < s->ncohort; i++)
        json_object_set_new(loc, s->names[i], au_json(&local[i]));
    /* the targets over the tasks where both sides are defined (none: not met) */
    int pass_pooled = 1, pass_local = 1, npool = 0, nloc = 0;
    for (int k = 0; k < ts->n; k++) {
        if (isfinite(fed.auroc[k]) && isfinite(pooled.auroc[k])) {
            pass_pooled &= fed.auroc[k] >= pooled.auroc[k] - 0.02;
            npool++;
        }
        if (isfinite(fed.auroc[k]) && isfinite(local_mean.auroc[k])) {
            pass_local &= fed.auroc[k] >= local_mean.auroc[k] + 0.03;
            nloc++;
        }
    }
    pass_pooled &= npool > 0;
    pass_local &= nloc > 0;
    json_t *cmp = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:{s:b, s:b}, s:f}",
                            "metric", "pooled test AUROC (exact, every site's test split)",
                            "budget", "pooled and each local-only model: rounds x local_steps x sites optimiser steps",
                            "rounds", (json_int_t)s->d.rounds, "steps", (json_int_t)total,
                            "federated", au_json(&fed), "pooled", au_json(&pooled), "local_only", loc,
                            "local_only_mean", au_json(&local_mean), "oracle",
                            have_oracle ? au_json(&oracle) : json_null(),
                            "targets", "federated_ge_pooled_minus_0.02", pass_pooled,
                            "federated_ge_local_mean_plus_0.03", pass_local, "baseline_seconds",
                            ff_now() - t0);
    snprintf(path, sizeof path, "%s/comparison.json", s->abs_out);
    rc = ff_eval_json_write(cmp, path);
    json_decref(cmp);
    char lines[4 + FF_TASKS_MAX][256];
    const char *notes[4 + FF_TASKS_MAX];
    size_t nn = 0;
    snprintf(lines[nn], 256, "Comparison (pooled test AUROC, exact; same budget of %lld steps for "
             "the pooled and each local-only model): federated | pooled | local-only mean | oracle",
             (long long)total);
    notes[nn] = lines[nn];
    nn++;
    printf("\n%-10s %10s %10s %12s %10s\n", "task", "federated", "pooled", "local mean", "oracle");
    for (int k = 0; k < ts->n; k++) {
        char orc[32] = "-", f[32], p[32], l[32], tn[96];
        task_label(&ts->t[k], tn, sizeof tn);
        if (have_oracle)
            fmt_auroc(orc, sizeof orc, oracle.auroc[k]);
        snprintf(lines[nn], 256, "%s: %s | %s | %s | %s%s%s", tn,
                 fmt_auroc(f, sizeof f, fed.auroc[k]), fmt_auroc(p, sizeof p, pooled.auroc[k]),
                 fmt_auroc(l, sizeof l, local_mean.auroc[k]), orc,
                 isfinite(fed.auroc[k]) ? "" : " (federated undefined: ",
                 isfinite(fed.auroc[k]) ? "" : fed.why[k]);
        if (!isfinite(fed.auroc[k]))
            snprintf(lines[nn] + strlen(lines[nn]), 256 - strlen(lines[nn]), ")");
        notes[nn] = lines[nn];
        nn++;
        printf("%-10s %10s %10s %12s %10s", tn, f, p, l, orc);
        if (!isfinite(fed.auroc[k]))
            printf("   (%s)", fed.why[k]);
        printf("\n");
    }
    snprintf(lines[nn], 256, "Targets: federated >= pooled - 0.02 on every task: %s; federated >= "
             "mean local-only + 0.03 on every task: %s%s", pass_pooled ? "met" : "NOT met",
             pass_local ? "met" : "NOT met",
             npool < ts->n ? " (tasks with an undefined AUROC left out)" : "");
    notes[nn] = lines[nn];
    nn++;
    printf("%s\n", lines[nn - 1]);
    if (rc == FF_OK)
        rc = ff_fed_write_report(s->abs_out, notes, nn);
    return rc;
}

/* ---- driver ------------------------------------------------------------------------------ */

/* The site name of a folder: its last path component, with bytes a certificate name cannot
 * hold turned into '_' (names then made unique by the caller). */
static void site_name_of(const char *dir, char *out, size_t n)
{
    char tmp[1024];
    ff_strlcpy(tmp, dir, sizeof tmp);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/')
        tmp[--l] = '\0';
    const char *b = strrchr(tmp, '/');
    b = b ? b + 1 : tmp;
    size_t j = 0;
    if (b[0] == '.' || b[0] == '-' || b[0] == '\0' || strcmp(b, "ca") == 0 || strcmp(b, "crl") == 0)
        j = (size_t)snprintf(out, n, "site-");
    for (; *b && j + 1 < n && j < 48; b++) {
        char c = *b;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.' || c == '_';
        out[j++] = ok ? c : '_';
    }
    out[j] = '\0';
}

/* An existing site folder: a readable directory with a readable patients.csv that loads
 * (lenient, as its client will) with at least one usable patient. Checked before anything is
 * written, so a typo stops the run at once. */
static int check_site_dir(const char *dir, const ff_model_config *mc)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return ff_error(FF_EINVAL, "site folder %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ff_error(FF_EINVAL, "site folder %s: not a directory", dir);
    if (access(dir, R_OK | X_OK) != 0)
        return ff_error(FF_EINVAL, "site folder %s: not readable (%s)", dir, strerror(errno));
    char pp[1100];
    snprintf(pp, sizeof pp, "%s/patients.csv", dir);
    FILE *f = fopen(pp, "r");
    if (!f)
        return ff_error(FF_EINVAL, "site folder %s: cannot read patients.csv (%s)", dir,
                        strerror(errno));
    fclose(f);
    ff_data_shape shape;
    ff_client_shape(mc, &shape);
    ff_site_opts so = ff_site_opts_default();
    ff_load_report rep;
    ff_site *site = NULL;
    ff_log_level lvl = ff_log_get_level();
    ff_log_set_level(FF_LOG_WARN);
    int rc = ff_site_load(&site, dir, &shape, &so, &rep);
    ff_log_set_level(lvl);
    ff_site_free(site);
    if (rc != FF_OK)
        return ff_error(FF_EINVAL, "site folder %s: %s", dir, ff_error_message());
    return FF_OK;
}

/* The hospitals: the given site folders (names from the folders), else data.dir/site-1..N. */
static int set_sites(sim *s, const char *config_path, const ff_fed_run_opts *o,
                     const ff_model_config *mc)
{
    const char *const *given = o && o->nsite_dirs ? o->site_dirs
                                                  : (const char *const *)s->d.data.site_dirs.items;
    size_t ng = o && o->nsite_dirs ? o->nsite_dirs : s->d.data.site_dirs.count;
    if (ng == 0) {
        s->nsites = (size_t)s->d.data.sites;
        s->ncohort = FF_MIN(s->nsites, (size_t)MAX_COHORT_SITES);
        for (size_t i = 0; i < s->nsites; i++) {
            snprintf(s->names[i], sizeof s->names[i], "site-%zu", i + 1);
            if (i < s->ncohort)
                snprintf(s->dirs[i], sizeof s->dirs[i], "%s/site-%zu", s->data, i + 1);
        }
        if (s->d.min_sites > s->d.data.sites)
            return ff_error(FF_ECONFIG, "%s: min_sites %lld is above data.sites %lld", config_path,
                            (long long)s->d.min_sites, (long long)s->d.data.sites);
        return FF_OK;
    }
    if (ng > MAX_COHORT_SITES)
        return ff_error(FF_EINVAL, "%zu site folders: at most %d", ng, MAX_COHORT_SITES);
    if ((int64_t)ng < s->d.min_sites)
        return ff_error(FF_ECONFIG, "%s: min_sites %lld is above the %zu site folders given",
                        config_path, (long long)s->d.min_sites, ng);
    s->real_sites = 1;
    s->nsites = s->ncohort = ng;
    int rc = FF_OK;
    for (size_t i = 0; rc == FF_OK && i < ng; i++) {
        rc = abspath(given[i], s->dirs[i], sizeof s->dirs[i]);
        if (rc == FF_OK)
            rc = check_site_dir(s->dirs[i], mc);
        char base[FF_SITE_NAME_MAX];
        site_name_of(s->dirs[i], base, sizeof base);
        ff_strlcpy(s->names[i], base, sizeof s->names[i]);
        for (int dup = 2; rc == FF_OK; dup++) { /* two folders of the same name: -2, -3... */
            size_t j = 0;
            while (j < i && strcmp(s->names[j], s->names[i]) != 0)
                j++;
            if (j == i)
                break;
            snprintf(s->names[i], sizeof s->names[i], "%.48s-%d", base, dup);
        }
    }
    for (size_t i = 0; rc == FF_OK && i < ng; i++)
        printf("site %s: %s\n", s->names[i], s->dirs[i]);
    return rc;
}

static int prepare(sim *s, const char *config_path, const char *out_dir, const char *exe,
                   const ff_fed_run_opts *o, ff_model_config *mc)
{
    int rc = ff_cfg_load(config_path, demo_schema, &s->d);
    if (rc != FF_OK)
        return rc;
    ff_strlcpy(s->out, out_dir, sizeof s->out);
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/rounds.csv", out_dir);
    if (ff_path_exists(probe))
        return ff_error(FF_ESTATE, "%s already holds a run (rounds.csv); remove it or pass --out", out_dir);
    rc = abspath(out_dir, s->abs_out, sizeof s->abs_out);
    if (rc == FF_OK)
        rc = abspath(s->d.data.dir, s->data, sizeof s->data);
    if (rc == FF_OK)
        rc = abspath(s->d.model_config, s->model_cfg, sizeof s->model_cfg);
    if (rc == FF_OK) {
        ssize_t l = readlink(exe, s->exe, sizeof s->exe - 1);
        if (l > 0)
            s->exe[l] = '\0';
        else
            rc = abspath(exe, s->exe, sizeof s->exe);
    }
    if (rc == FF_OK)
        rc = ff_model_config_load(s->model_cfg, mc);
    if (rc == FF_OK)
        s->kinds = !ff_task_set_all_binary(&mc->task_set);
    if (rc == FF_OK) /* before anything is written: bad site folders stop here */
        rc = set_sites(s, config_path, o, mc);
    char logs[1100];
    snprintf(logs, sizeof logs, "%s/logs", s->abs_out);
    if (rc == FF_OK)
        rc = ff_mkdir_p(logs, 0755);
    return rc;
}

int ff_fed_simulate(const char *config_path, const char *out_dir, const char *exe,
                    const ff_fed_run_opts *o)
{
    sim *s = calloc(1, sizeof *s);
    if (!s)
        return ff_error(FF_ENOMEM, "out of memory");
    ff_model_config mc;
    double t0 = ff_now();
    char job[FF_SHA256_HEX];
    int rc = prepare(s, config_path, out_dir, exe, o, &mc);
    if (rc == FF_OK)
        rc = make_cohort(s, &mc);
    if (rc == FF_OK)
        rc = make_pki(s);
    if (rc == FF_OK)
        rc = free_port(&s->port);
    if (rc == FF_OK)
        rc = write_configs(s, job);
    if (rc == FF_OK) {
        printf("consortium: %zu hospitals, CA and certificates in %s/pki, configs in %s/config\n",
               s->nsites, s->out, s->out);
        printf("job %s\n", job);
        printf("starting 1 coordinator (127.0.0.1:%d, mutual TLS) and %zu client processes; logs in %s/logs\n",
               s->port, s->nsites, s->out);
        fflush(stdout);
        rc = run_processes(s, o);
    }
    double fed_s = ff_now() - t0;
    if (s->coord_reaped) {
        const struct rusage *u = &s->coord_ru;
        double us = (double)u->ru_utime.tv_sec + u->ru_utime.tv_usec * 1e-6;
        double ss = (double)u->ru_stime.tv_sec + u->ru_stime.tv_usec * 1e-6;
        /* ru_maxrss is the peak resident set (VmHWM) in KiB on Linux */
        printf("coordinator process: cpu %.2f s (user %.2f, system %.2f), peak RSS %.1f MB; "
               "%zu of %zu clients failed\n", us + ss, us, ss, (double)u->ru_maxrss / 1024.0,
               s->clients_failed, s->nsites);
    }
    if (rc == FF_OK)
        printf("federated run finished in %.1f s: %s/model.safetensors, rounds.csv, metrics.json, "
               "report.html, audit.jsonl, receipts/\n", fed_s, s->out);
    if (rc == FF_OK && s->d.baselines)
        rc = baselines(s, &mc);
    if (rc == FF_OK)
        printf("done in %.1f s. Check the audit log: fedfuse audit verify --log %s/audit.jsonl "
               "--ca %s/pki/ca.pem\n", ff_now() - t0, s->out, s->out);
    ff_cfg_free(demo_schema, &s->d);
    free(s);
    return rc;
}

/* ---- fedfuse stats ------------------------------------------------------------------------ */

static int stats_sites(sim *s, const ff_fed_stats_opts *so)
{
    if (so->nsites < 2 || so->nsites > MAX_COHORT_SITES)
        return ff_error(FF_EINVAL, "%zu sites: a statistics job needs 2 to %d (--site)", so->nsites,
                        MAX_COHORT_SITES);
    s->real_sites = 1;
    s->nsites = s->ncohort = so->nsites;
    int rc = FF_OK;
    for (size_t i = 0; rc == FF_OK && i < so->nsites; i++) {
        rc = abspath(so->sites[i], s->dirs[i], sizeof s->dirs[i]);
        ff_stats_table *t = NULL;
        if (rc == FF_OK) /* the loader's message names the file */
            rc = ff_stats_table_load(&t, s->dirs[i]);
        ff_stats_table_free(t);
        char base[FF_SITE_NAME_MAX];
        site_name_of(s->dirs[i], base, sizeof base);
        char *dot = strstr(base, ".csv");
        if (dot && dot[4] == '\0')
            *dot = '\0';
        ff_strlcpy(s->names[i], base, sizeof s->names[i]);
        for (size_t j = 0; rc == FF_OK && j < i; j++)
            if (strcmp(s->names[j], s->names[i]) == 0)
                rc = ff_error(FF_EINVAL, "two sites are named %s (%s, %s)", base, so->sites[j],
                              so->sites[i]);
    }
    return rc;
}

/* Consortium, coordinator (query: instead of a plan and a model), and per site its policy
 * (statistics section) and its statistics-only client config. */
static int stats_configs(sim *s, const ff_fed_stats_opts *so, const ff_stats_query *q,
                         const char *job, const char *history)
{
    const char *o = s->abs_out;
    char path[1200], qpath[1200], allow[2048] = "";
    snprintf(path, sizeof path, "%s/config", o);
    int rc = ff_mkdir_p(path, 0755);
    if (rc == FF_OK)
        rc = ff_mkdir_p(history, 0700);
    /* the query itself is written by the caller as it is: its bytes are what the job hash covers */
    snprintf(qpath, sizeof qpath, "%s/config/query.yaml", o);
    if (rc == FF_OK)
        rc = write_consortium(s, "fedfuse-stats");
    uint32_t k = ff_secagg_default_k((uint32_t)s->nsites);
    int64_t t = (int64_t)ff_secagg_default_t(k);
    snprintf(path, sizeof path, "%s/config/coordinator.yaml", o);
    if (rc == FF_OK)
        rc = write_text(path,
                        "# Coordinator of a statistics job (written by fedfuse stats).\n"
                        "run_name: statistics\nrounds: 1\nquorum: {min_sites: %lld}\n"
                        "on_quorum_fail: stop\n"
                        "secure_aggregation: {enabled: true, threshold: %lld, neighbours: %u}\n"
                        "deadlines: {advertise_keys: 120, share_keys: 60, masked_input: 120, "
                        "unmask: 60}\nsite_timeout: 60\n"
                        "checkpoint_dir: %s/checkpoints\nout_dir: %s\nlisten: 127.0.0.1:%d\n"
                        "consortium: %s/config/consortium.yaml\nquery: %s\n"
                        "tls: {cert: %s/pki/coordinator/coordinator.crt, key: %s/pki/coordinator/coordinator.key}\n"
                        "audit: {cert: %s/pki/audit/audit.crt, key: %s/pki/audit/audit.key}\n",
                        (long long)t, (long long)t, k, o, o, s->port, o, qpath, o, o, o, o);
    if (so->allow) {
        snprintf(allow, sizeof allow, "[%s]", so->allow);
    } else {
        size_t l = (size_t)snprintf(allow, sizeof allow, "[");
        for (size_t i = 0; i < ff_stats_query_ncolumns(q) && l + 1 < sizeof allow; i++)
            l += (size_t)snprintf(allow + l, sizeof allow - l, "%s\"%s\"", i ? ", " : "",
                                  ff_stats_query_column(q, i));
        snprintf(allow + FF_MIN(l, sizeof allow - 2), sizeof allow - FF_MIN(l, sizeof allow - 2), "]");
    }
    for (size_t i = 0; rc == FF_OK && i < s->nsites; i++) {
        const char *n = s->names[i];
        snprintf(path, sizeof path, "%s/config/policy-%s.yaml", o, n);
        rc = write_text(path, "site: %s\naccepted_jobs:\n  - %s\nrequire_secure_aggregation: true\n"
                              "dp: {required: %s, max_epsilon: %.17g}\nmax_rounds: 10\n"
                              "statistics: {enabled: true, min_cell_size: %lld, variables: %s, "
                              "per_site: %s, max_query_epsilon: %.17g}\n", n, job,
                        so->dp_required ? "true" : "false", so->max_epsilon,
                        (long long)so->min_cell, allow, so->per_site ? "true" : "false",
                        so->max_query_epsilon);
        snprintf(path, sizeof path, "%s/config/site-%s.yaml", o, n);
        if (rc == FF_OK)
            rc = write_text(path,
                            "# Statistics-only client node of %s (written by fedfuse stats).\n"
                            "site: %s\ncoordinator: 127.0.0.1:%d\nserver_name: coordinator\n"
                            "cert: %s/pki/sites/%s.crt\nkey: %s/pki/sites/%s.key\nca: %s/pki/ca.pem\n"
                            "data: %s\npolicy: %s/config/policy-%s.yaml\nout_dir: %s\n"
                            "give_up_after: 120\n",
                            n, n, s->port, o, n, o, n, o, s->dirs[i], o, n, history);
    }
    return rc;
}

int ff_fed_stats(const ff_fed_stats_opts *so, const ff_fed_run_opts *o)
{
    sim *s = calloc(1, sizeof *s);
    if (!s)
        return ff_error(FF_ENOMEM, "out of memory");
    s->stats = 1;
    ff_stats_query *q = NULL;
    char *text = NULL, job[FF_SHA256_HEX], history[1100], qpath[1200];
    size_t len = 0;
    int rc = ff_cfg_defaults(demo_schema, &s->d);
    s->d.timeout = 600;
    ff_strlcpy(s->out, so->out_dir, sizeof s->out);
    if (rc == FF_OK)
        rc = ff_file_read_all(so->query, 1u << 20, &text, &len);
    if (rc == FF_OK)
        rc = ff_stats_query_load_str(&q, so->query, text, len);
    if (rc == FF_OK)
        rc = ff_stats_job_hash(text, len, job);
    if (rc == FF_OK)
        rc = abspath(so->out_dir, s->abs_out, sizeof s->abs_out);
    if (rc == FF_OK) {
        ssize_t l = readlink(so->exe, s->exe, sizeof s->exe - 1);
        if (l > 0)
            s->exe[l] = '\0';
        else
            rc = abspath(so->exe, s->exe, sizeof s->exe);
    }
    if (rc == FF_OK)
        rc = stats_sites(s, so);
    if (rc == FF_OK && so->history_dir)
        rc = abspath(so->history_dir, history, sizeof history);
    else
        snprintf(history, sizeof history, "%s/history", s->abs_out);
    snprintf(qpath, sizeof qpath, "%s/logs", s->abs_out);
    if (rc == FF_OK)
        rc = ff_mkdir_p(qpath, 0755);
    if (rc == FF_OK)
        rc = make_pki(s);
    if (rc == FF_OK)
        rc = free_port(&s->port);
    if (rc == FF_OK)
        rc = stats_configs(s, so, q, job, history);
    snprintf(qpath, sizeof qpath, "%s/config/query.yaml", s->abs_out);
    if (rc == FF_OK)
        rc = ff_file_write_atomic(qpath, text, len, 0644);
    if (rc == FF_OK) {
        printf("statistics job %s (query %s): %zu sites, secure aggregation on\n", job,
               ff_stats_query_name(q), s->nsites);
        fflush(stdout);
        rc = run_processes(s, o);
    }
    if (rc == FF_OK)
        printf("statistics written: %s/stats.json, %s/stats.html (audit log %s/audit.jsonl)\n",
               s->out, s->out, s->out);
    ff_stats_query_free(q);
    free(text);
    ff_cfg_free(demo_schema, &s->d);
    free(s);
    return rc;
}
