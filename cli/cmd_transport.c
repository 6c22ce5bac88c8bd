/* `fedfuse pki`: the consortium's certificate authority (init, issue, revoke, check). */
#include <string.h>

#include "commands.h"
#include "ff/transport.h"

static int cmd_pki(int argc, char **argv);

FF_CLI_GROUP_DEFINE(transport,
    {"pki", "consortium PKI: create the CA, issue and revoke site certificates", cmd_pki,
     "usage: fedfuse pki init --out DIR [--name CONSORTIUM] [--days N]\n"
     "       fedfuse pki issue --site NAME --ca DIR --out DIR [--role site|coordinator|audit]\n"
     "                         [--days N] [--san HOST]... [--backdate-days N]\n"
     "       fedfuse pki revoke --ca DIR --cert CERT\n"
     "       fedfuse pki check --ca-cert CA.crt [--crl CRL] --cert CERT\n"
     "  init    creates DIR/ca.key (0600), DIR/ca.crt (Ed25519, default 3650 days) and an\n"
     "          empty signed revocation list DIR/crl.pem. Keep DIR offline.\n"
     "  issue   creates OUT/NAME.key (0600), OUT/NAME.crt signed by the CA and OUT/ca.crt.\n"
     "          The name becomes the certificate CN and is the site's identity. Roles:\n"
     "          site and audit (TLS client, 730 days), coordinator (TLS server and client,\n"
     "          365 days; --san adds host names/addresses, default localhost,127.0.0.1).\n"
     "          --backdate-days starts the validity in the past (tests of expiry).\n"
     "  revoke  adds the certificate to DIR/crl.pem; the coordinator re-reads it within a\n"
     "          second.\n"
     "  check   verifies a certificate against the CA (and CRL) and prints its CN.\n"})

static int pki_init(ff_cli_args *a)
{
    const char *out = ff_cli_opt(a, "--out");
    const char *name = ff_cli_opt(a, "--name");
    int64_t days;
    if (ff_cli_opt_i64(a, "--days", 3650, &days) != FF_OK || ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    if (!out)
        return ff_cli_usage_error("pki", "init: missing --out DIR");
    int rc = ff_pki_init(out, name ? name : "fedfuse", (int)FF_MIN(FF_MAX(days, 0), 100000));
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("CA created in %s (ca.key is secret: keep it offline)\n", out);
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
    printf("%s: valid, CN=%s\n", cert, cn);
    return FF_EXIT_OK;
}

static int cmd_pki(int argc, char **argv)
{
    if (ff_cli_wants_help(argc, argv)) {
        fputs(ff_cli_find("pki")->usage, stdout);
        return FF_EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-')
        return ff_cli_usage_error("pki", "missing subcommand (init, issue, revoke, check)");
    ff_cli_args a;
    ff_cli_args_init(&a, "pki", argc - 1, argv + 1);
    const char *sub = argv[1];
    if (strcmp(sub, "init") == 0)
        return pki_init(&a);
    if (strcmp(sub, "issue") == 0)
        return pki_issue(&a);
    if (strcmp(sub, "revoke") == 0)
        return pki_revoke(&a);
    if (strcmp(sub, "check") == 0)
        return pki_check(&a);
    return ff_cli_usage_error("pki", "unknown subcommand '%s'", sub);
}
