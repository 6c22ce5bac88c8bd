/* The hospital client's configuration file (configs/site.yaml documents every key). */
#include <stddef.h>
#include <string.h>

#include "fed_internal.h"

#define OFF(f) offsetof(ff_site_config, f)
#define STR(k, f, d, h)                                                                        \
    {.key = k, .type = FF_CFG_STRING, .offset = OFF(f), .size = sizeof(((ff_site_config *)0)->f), \
     .def = d, .help = h}

const ff_cfg_field ff_site_config_schema[] = {
    {.key = "site", .type = FF_CFG_STRING, .offset = OFF(site), .size = 64, .required = 1,
     .help = "site name = CN of the site certificate"},
    {.key = "coordinator", .type = FF_CFG_STRING, .offset = OFF(coordinator), .size = 256,
     .required = 1, .help = "coordinator host:port"},
    STR("server_name", server_name, "", "expected coordinator certificate name (default: host)"),
    STR("cert", cert, "", "site certificate (PEM)"),
    STR("key", key, "", "site private key (PEM, Ed25519); also signs the receipts"),
    STR("ca", ca, "", "consortium CA certificate"),
    STR("data", data, "", "the site's data folder"),
    STR("model_config", model_config, "", "model config (must match the approved job)"),
    STR("policy", policy, "", "site policy file"),
    STR("out_dir", out_dir, "fedfuse-site", "receipts/ are written here"),
    STR("proxy", proxy, "",
        "outbound HTTP CONNECT proxy host:port; \"\" = grpc_proxy/https_proxy from the environment"),
    STR("metrics", metrics, "", "Prometheus endpoint host:port of this node; \"\" = off"),
    STR("peers_dir", peers_dir, "",
        "secure aggregation: folder of <site>.pem certificates of the other sites"),
    {.key = "threads", .type = FF_CFG_INT, .offset = OFF(threads), .min = 1, .max = 256,
     .def = "1", .help = "compute threads for local training"},
    {.key = "seed", .type = FF_CFG_INT, .offset = OFF(seed), .min = 0, .max = 9.0e15, .def = "1",
     .help = "local training seed (mixed with round and site)"},
    {.key = "give_up_after", .type = FF_CFG_DOUBLE, .offset = OFF(give_up_after), .min = 0,
     .max = 1e9, .def = "0", .help = "seconds without the coordinator before exiting; 0 = never"},
    {.key = "label_fraction", .type = FF_CFG_DOUBLE, .offset = OFF(label_fraction), .min = 0.001,
     .max = 1, .def = "1", .help = "share of training patients whose labels are used (1 = all)"},
    {0},
};

int ff_site_config_load(ff_site_config *out, const char *path)
{
    memset(out, 0, sizeof *out);
    int rc = ff_cfg_load(path, ff_site_config_schema, out);
    if (rc != FF_OK)
        return rc;
    const char *need[] = {out->cert, out->key, out->ca, out->data, out->model_config, out->policy};
    const char *keys[] = {"cert", "key", "ca", "data", "model_config", "policy"};
    for (size_t i = 0; i < FF_ARRAY_LEN(need); i++)
        if (!need[i][0])
            return ff_error(FF_ECONFIG, "%s: %s: required to run a client", path, keys[i]);
    return FF_OK;
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
