/* `fedfuse pki`: the consortium's certificate authority (init, issue, csr, sign, revoke,
 * check). */
#include <ctype.h>
#include <string.h>

#include "commands.h"
#include "ff/transport.h"

static int cmd_pki(int argc, char **argv);
static int cmd_ping(int argc, char **argv);
static int cmd_policy(int argc, char **argv);

FF_CLI_GROUP_DEFINE(transport,
    {"pki", "consortium PKI: create the CA, issue and revoke site certificates", cmd_pki,
     "usage: fedfuse pki init --out DIR [--name CONSORTIUM] [--days N] [--san HOST]...\n"
     "       fedfuse pki issue --site NAME --ca DIR --out DIR [--role ROLE]\n"
     "                         [--days N] [--san HOST]... [--backdate-days N]\n"
     "       fedfuse pki csr --site NAME --out DIR\n"
     "       fedfuse pki sign --csr FILE --ca DIR --out DIR [--site NAME]\n"
     "                        [--role ROLE] [--days N] [--san HOST]...\n"
     "       fedfuse pki revoke --ca DIR --cert CERT\n"
     "       fedfuse pki check --ca-cert CA.crt [--crl CRL] --cert CERT\n"
     "       fedfuse pki crl --ca DIR\n"
     "  init    creates DIR/ca.key (0600), DIR/ca.crt (Ed25519, default 3650 days), an\n"
     "          empty signed revocation list DIR/crl.pem, and the consortium's two keys:\n"
     "          DIR/coordinator.crt|key (role coordinator, --san as for issue) and\n"
     "          DIR/audit.crt|key (role audit, signs the audit log). Keep ca.key offline.\n"
     "  issue   creates OUT/NAME.key (0600), OUT/NAME.crt signed by the CA and OUT/ca.crt.\n"
     "          The name becomes the certificate CN. ROLE (default site) is written into\n"
     "          the certificate (policy OID, docs/security.md) and enforced everywhere:\n"
     "          site (a hospital; the only role the coordinator serves), coordinator (TLS\n"
     "          server and client, 365 days; --san adds host names/addresses, default\n"
     "          localhost,127.0.0.1), operator (consortium staff and tools), audit (signs\n"
     "          the audit log); all but coordinator are TLS clients valid 730 days.\n"
     "          --backdate-days starts the validity in the past (tests of expiry).\n"
     "  csr     at the site: creates OUT/NAME.key (0600, never leaves the site) and a\n"
     "          certificate request OUT/NAME.csr (CN=NAME) to send to the CA operator.\n"
     "  sign    at the CA: checks the request (signature, Ed25519 key, subject exactly\n"
     "          CN=<site name>, equal to --site when given) and writes OUT/NAME.crt and\n"
     "          OUT/ca.crt, with the same roles, lifetimes and key usages as issue.\n"
     "  revoke  adds the certificate to DIR/crl.pem; the coordinator re-reads it within a\n"
     "          second.\n"
     "  check   verifies a certificate against the CA (and CRL) and prints its CN.\n"
     "  crl     re-signs DIR/crl.pem without revoking anyone (valid 30 more days): run it\n"
     "          at least weekly (deploy/fedfuse-crl.timer); coordinators refuse every site\n"
     "          once the list has expired.\n"},
    {"ping", "check the link to the coordinator: TLS, enrolment, round-trip time", cmd_ping,
     "usage: fedfuse ping --coordinator HOST:PORT --cert SITE.crt --key SITE.key --ca CA.crt\n"
     "                    [--server-name NAME] [--count N] [--timeout-ms MS]\n"
     "  Calls the coordinator's Status method N times (default 3) over mutual TLS and prints\n"
     "  the consortium, the round-trip times and the coordinator's refusal counters. Exit 1\n"
     "  when the coordinator is unreachable or refuses this site (the message says why).\n"},
    {"policy", "validate a site policy file and show what it accepts", cmd_policy,
     "usage: fedfuse policy check --policy FILE\n"
     "       fedfuse policy approve --policy FILE --job HASH\n"
     "  check: loads the site policy (schema: configs/site-policy.example.yaml) and prints the\n"
     "  rules it enforces. Exit 2 with FILE:LINE:COL: key: reason when it is invalid.\n"
     "  approve: adds HASH (the `job` line of `fedfuse job hash`, or of the coordinator's\n"
     "  start-up log, after review) to accepted_jobs, keeping the file's comments and mode.\n"
     "  A running client reads its policy at start: restart it to use the new approval.\n"})

static int pki_init(ff_cli_args *a)
{
    const char *out = ff_cli_opt(a, "--out");
    const char *name = ff_cli_opt(a, "--name");
    const char *sans[16];
    int nsans = ff_cli_opt_all(a, "--san", sans, 16);
    int64_t days;
    if (ff_cli_opt_i64(a, "--days", 3650, &days) != FF_OK || ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!out)
        return ff_cli_usage_error("pki", "init: missing --out DIR");
    int rc = ff_pki_init(out, name ? name : "fedfuse", (int)FF_MIN(FF_MAX(days, 0), 100000));
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    /* The consortium's own two keys, each with its role: the coordinator's TLS key and the
     * key that signs the audit log (separate, so neither can stand in for the other). */
    ff_pki_issue_opts co = {.name = "coordinator", .role = FF_PKI_COORDINATOR,
                            .sans = sans, .nsans = nsans};
    ff_pki_issue_opts ao = {.name = "audit", .role = FF_PKI_AUDIT};
    if ((rc = ff_pki_issue(out, out, &co)) != FF_OK || (rc = ff_pki_issue(out, out, &ao)) != FF_OK)
        return ff_cli_fail(rc);
    printf("CA created in %s (ca.key is secret: keep it offline)\n", out);
    printf("issued %s/coordinator.crt (role coordinator) and %s/audit.crt (role audit) with "
           "their keys: install them on the coordinator\n", out, out);
    return FF_EXIT_OK;
}

static int pki_issue(ff_cli_args *a)
{
    ff_pki_issue_opts o = {0};
    const char *sans[16];
    o.name = ff_cli_opt(a, "--site");
    const char *ca = ff_cli_opt(a, "--ca"), *out = ff_cli_opt(a, "--out");
    const char *role = ff_cli_opt(a, "--role");
    int64_t days, back;
    o.nsans = ff_cli_opt_all(a, "--san", sans, 16);
    o.sans = sans;
    if (ff_cli_opt_i64(a, "--days", 0, &days) != FF_OK ||
        ff_cli_opt_i64(a, "--backdate-days", 0, &back) != FF_OK ||
        (role && ff_pki_role_parse(role, &o.role) != FF_OK) || ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!o.name || !ca || !out)
        return ff_cli_usage_error("pki", "issue: needs --site NAME --ca DIR --out DIR");
    if (days < 0 || days > 3650 || back < 0 || back > 36500)
        return ff_cli_usage_error("pki", "issue: --days must be 1..3650, --backdate-days 0..36500");
    o.days = (int)days;
    o.backdate_days = (int)back;
    int rc = ff_pki_issue(ca, out, &o);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("issued %s/%s.crt and %s/%s.key (role %s)\n", out, o.name, out, o.name,
           role ? role : "site");
    return FF_EXIT_OK;
}

static int pki_csr(ff_cli_args *a)
{
    const char *name = ff_cli_opt(a, "--site"), *out = ff_cli_opt(a, "--out");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!name || !out)
        return ff_cli_usage_error("pki", "csr: needs --site NAME --out DIR");
    int rc = ff_pki_csr(out, name);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("created %s/%s.key (secret: keep it at the site) and %s/%s.csr (send it to the CA "
           "operator)\n", out, name, out, name);
    return FF_EXIT_OK;
}

static int pki_sign(ff_cli_args *a)
{
    ff_pki_issue_opts o = {0};
    const char *sans[16];
    o.name = ff_cli_opt(a, "--site");
    const char *csr = ff_cli_opt(a, "--csr"), *ca = ff_cli_opt(a, "--ca");
    const char *out = ff_cli_opt(a, "--out"), *role = ff_cli_opt(a, "--role");
    int64_t days;
    o.nsans = ff_cli_opt_all(a, "--san", sans, 16);
    o.sans = sans;
    if (ff_cli_opt_i64(a, "--days", 0, &days) != FF_OK ||
        (role && ff_pki_role_parse(role, &o.role) != FF_OK) || ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!csr || !ca || !out)
        return ff_cli_usage_error("pki", "sign: needs --csr FILE --ca DIR --out DIR");
    if (days < 0 || days > 3650)
        return ff_cli_usage_error("pki", "sign: --days must be 1..3650");
    o.days = (int)days;
    char name[FF_SITE_NAME_MAX];
    int rc = ff_pki_sign_csr(ca, csr, out, &o, name, sizeof name);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("signed %s: %s/%s.crt (CN=%s, role %s) and %s/ca.crt\n", csr, out, name, name,
           role ? role : "site", out);
    return FF_EXIT_OK;
}

static int pki_revoke(ff_cli_args *a)
{
    const char *ca = ff_cli_opt(a, "--ca"), *cert = ff_cli_opt(a, "--cert");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!ca || !cert)
        return ff_cli_usage_error("pki", "revoke: needs --ca DIR --cert CERT");
    int rc = ff_pki_revoke(ca, cert);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("revoked %s; %s/crl.pem updated\n", cert, ca);
    return FF_EXIT_OK;
}

static int pki_crl(ff_cli_args *a)
{
    const char *ca = ff_cli_opt(a, "--ca");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!ca)
        return ff_cli_usage_error("pki", "crl: needs --ca DIR");
    int rc = ff_pki_crl_renew(ca);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("re-signed %s/crl.pem (same revocations, valid 30 more days)\n", ca);
    return FF_EXIT_OK;
}

static int pki_check(ff_cli_args *a)
{
    const char *ca = ff_cli_opt(a, "--ca-cert"), *crl = ff_cli_opt(a, "--crl");
    const char *cert = ff_cli_opt(a, "--cert");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!ca || !cert)
        return ff_cli_usage_error("pki", "check: needs --ca-cert CA.crt --cert CERT");
    char cn[FF_SITE_NAME_MAX];
    int rc = ff_pki_check_files(ca, crl, cert, cn, sizeof cn);
    if (rc != FF_OK)
        return ff_cli_fail(rc == FF_ECRYPTO ? FF_EPOLICY : rc);
    X509 *x = NULL;
    ff_pki_role role;
    if ((rc = ff_pki_load_cert(cert, &x)) != FF_OK || (rc = ff_pki_cert_role(x, &role)) != FF_OK) {
        X509_free(x);
        return ff_cli_fail(rc == FF_EPOLICY ? FF_EPOLICY : rc);
    }
    X509_free(x);
    printf("%s: valid, CN=%s, role %s\n", cert, cn, ff_pki_role_name(role));
    return FF_EXIT_OK;
}

static int cmd_pki(int argc, char **argv)
{
    if (ff_cli_wants_help(argc, argv)) {
        fputs(ff_cli_find("pki")->usage, stdout);
        return FF_EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-')
        return ff_cli_usage_error("pki", "missing subcommand (init, issue, csr, sign, revoke, check)");
    ff_cli_args a;
    ff_cli_args_init(&a, "pki", argc - 1, argv + 1);
    const char *sub = argv[1];
    if (strcmp(sub, "init") == 0)
        return pki_init(&a);
    if (strcmp(sub, "issue") == 0)
        return pki_issue(&a);
    if (strcmp(sub, "csr") == 0)
        return pki_csr(&a);
    if (strcmp(sub, "sign") == 0)
        return pki_sign(&a);
    if (strcmp(sub, "revoke") == 0)
        return pki_revoke(&a);
    if (strcmp(sub, "check") == 0)
        return pki_check(&a);
    if (strcmp(sub, "crl") == 0)
        return pki_crl(&a);
    return ff_cli_usage_error("pki", "unknown subcommand '%s'", sub);
}

static int cmd_ping(int argc, char **argv)
{
    ff_cli_args a;
    ff_cli_args_init(&a, "ping", argc, argv);
    ff_rpc_opts o = {.attempts = 1};
    o.target = ff_cli_opt(&a, "--coordinator");
    o.cert = ff_cli_opt(&a, "--cert");
    o.key = ff_cli_opt(&a, "--key");
    o.ca = ff_cli_opt(&a, "--ca");
    o.server_name = ff_cli_opt(&a, "--server-name");
    int64_t count, timeout;
    if (ff_cli_opt_i64(&a, "--count", 3, &count) != FF_OK ||
        ff_cli_opt_i64(&a, "--timeout-ms", 5000, &timeout) != FF_OK ||
        ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!o.target || !o.cert || !o.key || !o.ca)
        return ff_cli_usage_error("ping", "needs --coordinator --cert --key --ca");
    if (count < 1 || count > 1000 || timeout < 1 || timeout > 600000)
        return ff_cli_usage_error("ping", "--count 1..1000, --timeout-ms 1..600000");
    ff_rpc *c;
    int rc = ff_rpc_new(&c, &o);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    for (int64_t i = 0; i < count && rc == FF_OK; i++) {
        Fedfuse__StatusReply *st = NULL;
        double t0 = ff_now();
        rc = ff_rpc_status(c, &st, (int)timeout);
        if (rc != FF_OK)
            break;
        printf("%s: consortium %s, round trip %.1f ms\n", o.target,
               st->consortium ? st->consortium : "?", (ff_now() - t0) * 1e3);
        if (i + 1 == count)
            for (size_t k = 0; k < st->n_counters; k++)
                printf("  %-18s %llu\n", st->counters[k]->name,
                       (unsigned long long)st->counters[k]->value);
        ff_msg_free(st);
    }
    ff_rpc_free(c);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc == FF_EPOLICY ? FF_ENET : rc);
}

static int policy_approve(const char *path, const char *job)
{
    char hex[FF_SHA256_HEX];
    size_t n = strlen(job);
    for (size_t i = 0; i < n && i < sizeof hex - 1; i++)
        hex[i] = (char)tolower((unsigned char)job[i]);
    hex[FF_MIN(n, sizeof hex - 1)] = '\0';
    if (n != 64 || strspn(hex, "0123456789abcdef") != 64)
        return ff_cli_usage_error("policy", "approve: --job '%s' is not a job hash (64 hex "
                                  "digits, the `job` line of `fedfuse job hash`)", job);
    ff_policy p;
    int added = 0;
    int rc = ff_policy_load(path, &p);
    ff_policy_free(&p);
    if (rc == FF_OK)
        rc = ff_cfg_strlist_add(path, "accepted_jobs", hex, &added);
    if (rc == FF_OK)
        rc = ff_policy_load(path, &p);
    if (rc == FF_OK)
        printf("%s job %s in %s (%zu approved job(s))\n", added ? "approved" : "already approved",
               hex, path, p.accepted_jobs.count);
    ff_policy_free(&p);
    return rc == FF_OK ? FF_EXIT_OK : ff_cli_fail(rc);
}

static int cmd_policy(int argc, char **argv)
{
    int approve = argc >= 2 && strcmp(argv[1], "approve") == 0;
    if (argc < 2 || (!approve && strcmp(argv[1], "check") != 0))
        return ff_cli_usage_error("policy", "expected 'check' or 'approve'");
    ff_cli_args a;
    ff_cli_args_init(&a, "policy", argc - 1, argv + 1);
    const char *path = ff_cli_opt(&a, "--policy");
    const char *job = approve ? ff_cli_opt(&a, "--job") : NULL;
    if (ff_cli_check_unused(&a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!path)
        return ff_cli_usage_error("policy", "%s: missing --policy FILE", argv[1]);
    if (approve && !job)
        return ff_cli_usage_error("policy", "approve: missing --job HASH");
    if (approve)
        return policy_approve(path, job);
    ff_policy p;
    int rc = ff_policy_load(path, &p);
    if (rc != FF_OK) {
        ff_policy_free(&p);
        return ff_cli_fail(rc);
    }
    printf("site %s: %zu approved job(s)\n", p.site, p.accepted_jobs.count);
    for (size_t i = 0; i < p.accepted_jobs.count; i++)
        printf("  job %s\n", p.accepted_jobs.items[i]);
    printf("secure aggregation: %s; a round needs >= %lld sites, threshold >= %lld, >= %lld "
           "neighbours per site\n", p.require_secagg ? "required" : "optional",
           (long long)p.secagg.min_sites, (long long)p.secagg.min_threshold,
           (long long)p.secagg.min_neighbours);
    static const char *const levels[] = { /* by ff_policy_dp_level (the loader checks it) */
        "client-level, or record-level run by this site", "client-level",
        "record-level, run by this site", "client-level and record-level run by this site"};
    if (p.dp.required)
        printf("differential privacy: required (%s), epsilon <= %g, delta <= %g, noise "
               "multiplier >= %g, clip norm <= %g\n",
               levels[p.dp.level], p.dp.max_epsilon, p.dp.max_delta,
               p.dp.min_noise_multiplier, p.dp.max_clip_norm);
    else
        printf("differential privacy: optional\n");
    printf("rounds <= %lld, model <= %lld bytes\n", (long long)p.max_rounds,
           (long long)p.max_model_bytes);
    if (p.statistics.enabled) {
        printf("statistics: minimum cell size %lld, per-site release %s, columns:",
               (long long)p.statistics.min_cell_size, p.statistics.per_site ? "allowed" : "off");
        for (size_t i = 0; i < p.statistics.variables.count; i++)
            printf(" %s", p.statistics.variables.items[i]);
        printf("%s\n", p.statistics.variables.count ? "" : " (none)");
    } else {
        printf("statistics: refused (statistics.enabled is off)\n");
    }
    ff_policy_free(&p);
    return FF_EXIT_OK;
}
