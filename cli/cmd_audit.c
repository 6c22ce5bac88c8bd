/* `fedfuse audit verify|report`: the auditor's commands. */
#include "commands.h"

#include <string.h>

#include "ff/audit.h"
#include "ff/transport.h"

static int cmd_audit(int argc, char **argv);

FF_CLI_GROUP_DEFINE(audit,
    {"audit", "verify a signed aggregation log, anchor it, export it, or render it for auditors",
     cmd_audit,
     "usage: fedfuse audit verify --log FILE --ca CA.pem [--crl CRL.pem] [--audit-name NAME]\n"
     "                            [--receipts DIR --certs DIR] [--certs DIR]\n"
     "                            [--tsa-ca TSA-CA.pem] [--policy POLICY.yaml] [--json]\n"
     "       fedfuse audit report --log FILE --out report.html --ca CA.pem [same options]\n"
     "       fedfuse audit anchor --log FILE --response RESPONSE.tsr\n"
     "       fedfuse audit export --format fhir|csv --log FILE --out FILE\n"
     "\n"
     "verify checks the hash chain, every Ed25519 signature, sequence continuity, that the\n"
     "coordinator's audit certificate chains to the consortium CA, carries the audit role,\n"
     "is named --audit-name (default audit) and is not revoked in the CRL (--crl, default\n"
     "crl.pem beside CA.pem; without one nothing is trusted; site certificates likewise\n"
     "need the site role), the consistency of round\n"
     "and phase entries, every site's signed commitment (--certs: site certificates\n"
     "<site>.pem) and each round's Merkle root over them, the consortium policy, every\n"
     "epsilon against the verifier's own recomputation from the logged mechanism parameters,\n"
     "the RFC 3161 anchors stored beside the log (--tsa-ca: the time-stamp authority's CA),\n"
     "and with --receipts (needs --certs) each hospital's signed receipts: present and\n"
     "valid, missing, substituted or extra. Every number it prints is its own.\n"
     "Exit 0 only if everything holds; 1 when there are findings; 2 for bad usage or\n"
     "unreadable input. --json prints {\"ok\",\"summary\",\"findings\"} instead.\n"
     "report writes the auditor's page (verdict, keys, timeline, rounds, sites, privacy,\n"
     "findings) and exits like verify; without --ca it states that signatures were NOT\n"
     "checked and exits 1.\n"
     "anchor stores a time-stamp authority's response to a query the coordinator wrote\n"
     "(FILE.anchors/NNNNNNNN.tsq) beside the log.\n"
     "export writes a FHIR R4 Bundle of AuditEvent resources (IHE BALP) or CSV.\n"})

/* The certificate check `audit verify` trusts: the consortium PKI's chain + revocation
 * check and the certificate's role and name (transport). */
typedef struct {
    X509 *ca;
    X509_CRL *crl;      /* NULL: no revocation list, every certificate is refused */
    const char *crl_path;
} cert_ctx;

static int audit_cert_check(void *ctx, X509 *cert, const char *role, const char *name,
                            char *why, size_t n)
{
    cert_ctx *k = ctx;
    char cn[FF_SITE_NAME_MAX];
    ff_pki_role want;
    int rc = ff_pki_role_parse(role, &want);
    if (rc == FF_OK && !k->crl)
        rc = ff_error(FF_EPOLICY, "revocation cannot be checked: no revocation list (give "
                      "--crl FILE, or put crl.pem beside the CA certificate)");
    if (rc == FF_OK)
        rc = ff_pki_check_peer(k->ca, k->crl, cert, cn, sizeof cn);
    if (rc == FF_OK)
        rc = ff_pki_check_role(cert, want, name);
    if (rc != FF_OK) {
        snprintf(why, n, "%s", ff_error_message());
        ff_error_clear();
        return rc;
    }
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(k->crl, NID_crl_number, NULL, NULL);
    snprintf(why, n, "CN=%s carries role %s (certificate policy %s), chains to the consortium CA, "
             "not revoked in %s (CRL number %ld)", cn, role, FF_PKI_ROLE_OID_ARC, k->crl_path,
             num ? ASN1_INTEGER_get(num) : 0L);
    ASN1_INTEGER_free(num);
    return FF_OK;
}

/* --crl, else crl.pem in the CA certificate's folder, loaded and checked against the CA.
 * A missing file leaves k->crl NULL (then every certificate is refused, saying why). */
static int load_crl(cert_ctx *k, const char *ca_path, const char *crl_opt, char *buf, size_t n)
{
    if (crl_opt) {
        snprintf(buf, n, "%s", crl_opt);
    } else {
        const char *slash = strrchr(ca_path, '/');
        snprintf(buf, n, "%.*scrl.pem", slash ? (int)(slash - ca_path + 1) : 0, ca_path);
        if (!ff_path_exists(buf))
            return FF_OK;
    }
    k->crl_path = buf;
    return ff_pki_load_crl(buf, k->ca, &k->crl);
}

/* The independent epsilon recomputation: the privacy library's accountant. */
typedef int (*eps_fn_t)(const json_t *, double *, double *);
static eps_fn_t audit_epsilon_fn(void)
{
    return ff_audit_privacy_epsilon;
}

static void print_eps(const char *level, int on, double eps, double budget, int recomputed)
{
    if (!on)
        printf("%s DP: not enabled\n", level);
    else if (eps < 0 || !recomputed)
        printf("%s DP: epsilon NOT recomputed (see findings)\n", level);
    else if (budget > 0)
        printf("%s DP: epsilon %.6g of budget %g (recomputed by the verifier)\n", level, eps, budget);
    else
        printf("%s DP: epsilon %.6g (recomputed by the verifier)\n", level, eps);
}

static void print_summary(const char *log, const ff_audit_summary *s, const ff_audit_findings *f)
{
    printf("audit log: %s\n", log);
    printf("entries: %llu, aggregated rounds: %lld, sites: %lld, run %s\n",
           (unsigned long long)s->entries, (long long)s->rounds, (long long)s->sites,
           s->ended ? "ended" : "NOT ended");
    printf("trusted: consortium CA %s; coordinator audit key %s (%s)\n",
           s->ca_subject[0] ? s->ca_subject : "(none)",
           s->coordinator_subject[0] ? s->coordinator_subject : "?",
           s->ca_checked ? "chains to the CA" : "NOT checked against a CA");
    if (s->certs_checked)
        printf("site commitments: %lld logged, %lld signatures verified with the site certificates\n",
               (long long)s->commitments, (long long)s->commitments_verified);
    if (s->audit_trust[0])
        printf("audit key %s\n", s->audit_trust);
    else
        printf("site commitments: %lld logged, signatures NOT checked (give --certs)\n",
               (long long)s->commitments);
    print_eps("client-level", s->dp_client, s->epsilon_client, s->budget_client, s->eps_recomputed);
    print_eps("record-level", s->dp_record, s->epsilon_record, s->budget_record, s->eps_recomputed);
    if (s->receipts_record_dp > 0)
        printf("record-level epsilon recomputed from the site ledgers of %lld receipts\n",
               (long long)s->receipts_record_dp);
    if (s->receipts_given)
        printf("receipts: %lld checked, %lld missing, %lld invalid (%lld valid, %lld without an "
               "inclusion proof)\n", (long long)s->receipts_checked, (long long)s->receipts_missing,
               (long long)s->receipts_invalid, (long long)s->receipts_valid,
               (long long)s->receipts_no_proof);
    else
        printf("receipts: not checked (give --receipts and --certs)\n");
    if (s->anchors == 0)
        printf("anchors: none (no RFC 3161 time-stamp responses beside the log)\n");
    else
        printf("anchors: %lld time-stamp responses, %s; latest anchored entry %lld at %s\n",
               (long long)s->anchors,
               s->tsa_checked ? "signatures checked with --tsa-ca" : "signatures NOT checked (give --tsa-ca)",
               (long long)s->anchored_seq, s->anchor_time[0] ? s->anchor_time : "?");
    for (size_t i = 0; i < f->count; i++)
        printf("finding: seq %lld: %s: %s\n", (long long)f->items[i].seq, f->items[i].rule,
               f->items[i].detail);
    printf("verdict: %s (%zu finding%s)\n", f->count ? "FAILED" : "OK", f->count,
           f->count == 1 ? "" : "s");
}

static int audit_run(ff_cli_args *a, int report)
{
    const char *log = ff_cli_opt(a, "--log");
    const char *ca = ff_cli_opt(a, "--ca");
    const char *receipts = ff_cli_opt(a, "--receipts");
    const char *certs = ff_cli_opt(a, "--certs");
    const char *tsa_ca = ff_cli_opt(a, "--tsa-ca");
    const char *policy_path = ff_cli_opt(a, "--policy");
    const char *crl = ff_cli_opt(a, "--crl"), *audit_name = ff_cli_opt(a, "--audit-name");
    const char *out = report ? ff_cli_opt(a, "--out") : NULL;
    int json = ff_cli_flag(a, "--json");
    if (!log)
        return ff_cli_usage_error("audit", "missing --log FILE");
    if (!report && !ca)
        return ff_cli_usage_error("audit", "missing --ca CA.pem");
    if (report && !out)
        return ff_cli_usage_error("audit", "missing --out report.html");
    if (receipts && !certs)
        return ff_cli_usage_error("audit", "--receipts needs --certs DIR (the site certificates "
                                  "<site>.pem that signed them)");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    ff_audit_policy policy;
    if (policy_path && ff_audit_policy_load(policy_path, &policy) != FF_OK)
        return ff_cli_fail(FF_ECONFIG);
    cert_ctx ck = {0};
    char crl_buf[4096];
    if (ca && (ff_pki_load_cert(ca, &ck.ca) != FF_OK ||
               load_crl(&ck, ca, crl, crl_buf, sizeof crl_buf) != FF_OK)) {
        X509_free(ck.ca);
        return ff_cli_fail(FF_EFORMAT);
    }
    ff_audit_verify_opts o = {.ca_pem_path = ca, .receipts_dir = receipts, .receipt_certs = certs,
                              .tsa_ca_path = tsa_ca, .policy = policy_path ? &policy : NULL,
                              .epsilon_fn = audit_epsilon_fn(),
                              .cert_fn = ca ? audit_cert_check : NULL, .cert_ctx = &ck,
                              .audit_name = audit_name};
    ff_audit_summary s;
    ff_audit_findings f;
    int rc = ff_audit_verify(log, &o, &s, &f);
    X509_CRL_free(ck.crl);
    X509_free(ck.ca);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    if (report) {
        rc = ff_audit_report_html(log, &s, &f, out);
        if (rc == FF_OK && !ca)
            printf("wrote %s: signatures NOT checked (no --ca): nothing in it is verified\n", out);
        else if (rc == FF_OK)
            printf("wrote %s: verdict %s (%zu finding%s)\n", out, f.count ? "FAILED" : "OK",
                   f.count, f.count == 1 ? "" : "s");
    } else if (json) {
        json_t *j = ff_audit_result_json(&s, &f);
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
    } else {
        print_summary(log, &s, &f);
    }
    int exit_code = rc != FF_OK ? ff_cli_fail(rc) : (f.count || !ca) ? FF_EXIT_FAIL : FF_EXIT_OK;
    ff_audit_findings_free(&f);
    ff_audit_summary_free(&s);
    return exit_code;
}

static int audit_anchor(ff_cli_args *a)
{
    const char *log = ff_cli_opt(a, "--log");
    const char *resp = ff_cli_opt(a, "--response");
    if (!log || !resp)
        return ff_cli_usage_error("audit", "anchor needs --log FILE --response RESPONSE.tsr");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    int64_t seq = -1;
    int rc = ff_audit_anchor_store(log, resp, &seq);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("stored the time stamp of entry %lld as %s.anchors/%08lld.tsr\n", (long long)seq, log,
           (long long)seq);
    return FF_EXIT_OK;
}

static int audit_export(ff_cli_args *a)
{
    const char *log = ff_cli_opt(a, "--log");
    const char *fmt = ff_cli_opt(a, "--format");
    const char *out = ff_cli_opt(a, "--out");
    if (!log || !fmt || !out)
        return ff_cli_usage_error("audit", "export needs --format fhir|csv --log FILE --out FILE");
    if (strcmp(fmt, "fhir") != 0 && strcmp(fmt, "csv") != 0)
        return ff_cli_usage_error("audit", "--format '%s': fhir or csv", fmt);
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    int rc = ff_audit_export(log, fmt, out);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    printf("wrote %s (%s)\n", out, fmt);
    return FF_EXIT_OK;
}

static int cmd_audit(int argc, char **argv)
{
    if (argc < 2)
        return ff_cli_usage_error("audit", "missing verb: verify, report, anchor or export");
    ff_cli_args a;
    ff_cli_args_init(&a, "audit", argc - 1, argv + 1);
    if (ff_cli_wants_help(argc - 1, argv + 1)) {
        fputs(ff_cli_find("audit")->usage, stdout);
        return FF_EXIT_OK;
    }
    if (strcmp(argv[1], "verify") == 0)
        return audit_run(&a, 0);
    if (strcmp(argv[1], "report") == 0)
        return audit_run(&a, 1);
    if (strcmp(argv[1], "anchor") == 0)
        return audit_anchor(&a);
    if (strcmp(argv[1], "export") == 0)
        return audit_export(&a);
    return ff_cli_usage_error("audit", "unknown verb '%s' (verify, report, anchor, export)", argv[1]);
}
