/* The hospital client's configuration file (configs/site.yaml documents every key). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fed_internal.h"

#define OFF(f) offsetof(ff_fed_site_config, f)
#define STR(k, f, d, h)                                                                        \
    {.key = k, .type = FF_CFG_STRING, .offset = OFF(f),                                        \
     .size = sizeof(((ff_fed_site_config *)0)->f), .def = d, .help = h}

const ff_cfg_field ff_fed_site_config_schema[] = {
    {.key = "site", .type = FF_CFG_STRING, .offset = OFF(site), .size = 64, .required = 1,
     .help = "site name = CN of the site certificate"},
    {.key = "coordinator", .type = FF_CFG_STRING, .offset = OFF(coordinator), .size = 256,
     .required = 1, .help = "coordinator host:port"},
    STR("server_name", server_name, "", "expected coordinator certificate name (default: host)"),
    STR("cert", cert, "", "site certificate (PEM)"),
    STR("key", key, "", "site private key (PEM, Ed25519); also signs the receipts"),
    STR("ca", ca, "", "consortium CA certificate"),
    STR("data", data, "", "the site's data folder"),
    STR("model_config", model_config, "",
        "model config (must match the approved job); \"\" = a statistics-only node "
        "(docs/statistics.md): data may then be a CSV file"),
    STR("policy", policy, "", "site policy file"),
    STR("out_dir", out_dir, "fedfuse-site", "receipts/ are written here"),
    STR("proxy", proxy, "",
        "outbound HTTP CONNECT proxy host:port; \"\" = grpc_proxy/https_proxy from the environment"),
    STR("metrics", metrics, "", "Prometheus endpoint host:port of this node; \"\" = off"),
    {.key = "threads", .type = FF_CFG_INT, .offset = OFF(threads), .min = 1,
     .max = FF_MODELS_MAX_THREADS, .def = "1", .help = "compute threads for local training"},
    {.key = "seed", .type = FF_CFG_INT, .offset = OFF(seed), .min = 0, .max = 9.0e15, .def = "1",
     .help = "local training seed (mixed with round and site)"},
    {.key = "give_up_after", .type = FF_CFG_DOUBLE, .offset = OFF(give_up_after), .min = 0,
     .max = 1e9, .def = "0", .help = "seconds without the coordinator before exiting; 0 = never"},
    {.key = "label_fraction", .type = FF_CFG_DOUBLE, .offset = OFF(label_fraction), .min = 0.001,
     .max = 1, .def = "1", .help = "share of training patients whose labels are used (1 = all)"},
    {0},
};

int fed_check_path(const char *cfg, const char *key, const char *p, int kind)
{
    struct stat st;
    if (stat(p, &st) != 0)
        return ff_cfg_error_at(FF_ECONFIG, cfg, key, "cannot open '%s': %s", p, strerror(errno));
    if (kind == FED_PATH_DIR && !S_ISDIR(st.st_mode))
        return ff_cfg_error_at(FF_ECONFIG, cfg, key, "'%s' is not a folder", p);
    if (kind != FED_PATH_DIR && kind != FED_PATH_ANY && !S_ISREG(st.st_mode))
        return ff_cfg_error_at(FF_ECONFIG, cfg, key, "'%s' is not a file", p);
    if (access(p, R_OK) != 0)
        return ff_cfg_error_at(FF_ECONFIG, cfg, key, "cannot read '%s': %s", p, strerror(errno));
    if (kind == FED_PATH_KEY && (st.st_mode & 0007))
        return ff_cfg_error_at(FF_ECONFIG, cfg, key, "private key '%s' is readable by others "
                               "(mode %04o): chmod 600 (or 640 with the service's group)", p,
                               (unsigned)(st.st_mode & 07777));
    return FF_OK;
}

int fed_check_cert(const char *cfg, const char *key, const char *p, const char *want_cn)
{
    X509 *x = NULL;
    int rc = ff_pki_load_cert(p, &x);
    if (rc != FF_OK)
        return ff_cfg_error_at(rc, cfg, key, "%s", ff_error_message());
    char cn[FF_SITE_NAME_MAX] = "";
    rc = ff_pki_cert_cn(x, cn, sizeof cn);
    if (rc == FF_OK && want_cn && strcmp(cn, want_cn) != 0)
        rc = ff_cfg_error_at(FF_ECONFIG, cfg, "site", "'%s' is not the name in the certificate "
                             "%s (CN=%s): the coordinator knows this site as '%s'", want_cn, p,
                             cn, cn);
    int days = 0, secs = 0;
    if (rc == FF_OK && ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) &&
        days < FED_CERT_WARN_DAYS) {
        /* to the nearest day, as `fedfuse doctor` says it: a certificate issued for 10 days
         * and checked a second later expires "in 10 days", not in 9 (rounding down made the
         * number depend on whether the check fell in the same second as the issue) */
        if (days >= 0 && secs >= 43200)
            days++;
        FF_LOG_WARN("%s: %s: certificate %s (CN=%s) %s %d day(s): renew it (pki csr + pki sign)",
                    cfg, key, p, cn, days < 0 || (days == 0 && secs < 0) ? "expired" : "expires in",
                    days < 0 ? -days : days);
    }
    X509_free(x);
    return rc;
}

int fed_check_address(const char *cfg, const char *key, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    const char *close = strrchr(addr, ']');
    char *end = NULL;
    long port = colon && (!close || colon > close) ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || (close && colon < close) || colon == addr || !end || *end || port < 1 ||
        port > 65535 || end == colon + 1)
        return ff_cfg_error_at(FF_ECONFIG, cfg, key, "'%s' is not host:port (e.g. "
                               "fl.consortium.example.org:7443)", addr);
    return FF_OK;
}

int ff_fed_site_config_load(ff_fed_site_config *out, const char *path)
{
    memset(out, 0, sizeof *out);
    int rc = ff_cfg_load(path, ff_fed_site_config_schema, out);
    if (rc != FF_OK)
        return rc;
    char *need[] = {out->cert, out->key, out->ca, out->data, out->model_config, out->policy};
    const char *keys[] = {"cert", "key", "ca", "data", "model_config", "policy"};
    ff_cfg_path_resolve(path, out->out_dir, sizeof out->out_dir);
    for (size_t i = 0; i < FF_ARRAY_LEN(need); i++) {
        if (need[i] == out->model_config && !need[i][0])
            continue; /* a statistics-only node */
        if (!need[i][0])
            return ff_cfg_error_at(FF_ECONFIG, path, keys[i], "required to run a client");
        ff_cfg_path_resolve(path, need[i], sizeof out->cert);
    }
    return FF_OK;
}

int ff_fed_site_config_check(const ff_fed_site_config *out, const char *path)
{
    const char *need[] = {out->cert, out->key, out->ca, out->data, out->model_config, out->policy};
    const char *keys[] = {"cert", "key", "ca", "data", "model_config", "policy"};
    /* a statistics-only node (no model_config) reads a site folder or one CSV file */
    int stats_only = !out->model_config[0];
    const int kinds[] = {FED_PATH_FILE, FED_PATH_KEY, FED_PATH_FILE,
                         stats_only ? FED_PATH_ANY : FED_PATH_DIR, FED_PATH_FILE, FED_PATH_FILE};
    int rc = fed_check_address(path, "coordinator", out->coordinator);
    for (size_t i = 0; rc == FF_OK && i < FF_ARRAY_LEN(need); i++)
        if (!(stats_only && need[i] == out->model_config))
            rc = fed_check_path(path, keys[i], need[i], kinds[i]);
    if (rc == FF_OK)
        rc = fed_check_cert(path, "cert", out->cert, out->site);
    if (rc == FF_OK)
        rc = fed_check_cert(path, "ca", out->ca, NULL);
    return rc;
}

size_t fed_packed_size(const ff_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < ff_model_ntensors(m); i++)
        n += ff_model_tensor(m, i)->numel;
    return n;
}

void fed_pack(ff_model *m, float *dst)
{
    const float *p = ff_model_params(m);
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *t = ff_model_tensor(m, i);
        memcpy(dst, p + t->offset, t->numel * sizeof(float));
        dst += t->numel;
    }
}

void fed_unpack(ff_model *m, const float *src)
{
    float *p = ff_model_params(m);
    for (size_t i = 0; i < ff_model_ntensors(m); i++) {
        const ff_param_info *t = ff_model_tensor(m, i);
        memcpy(p + t->offset, src, t->numel * sizeof(float));
        src += t->numel;
    }
}
