/* `fedfuse audit verify|report`: the auditor's commands. */
#include "commands.h"

#include <string.h>

#include "ff/audit.h"

static int cmd_audit(int argc, char **argv);

FF_CLI_GROUP_DEFINE(audit,
    {"audit", "verify a signed aggregation log, or render it for auditors", cmd_audit,
     "usage: fedfuse audit verify --log FILE --ca CA.pem [--receipts DIR --certs DIR]\n"
     "                            [--policy POLICY.yaml] [--json]\n"
     "       fedfuse audit report --log FILE --out report.html [--ca CA.pem] [--policy P]\n"
     "\n"
     "verify checks the hash chain, every Ed25519 signature, sequence continuity, that the\n"
     "coordinator's audit certificate chains to the consortium CA, the consistency of round\n"
     "and phase entries, the consortium policy (min sites, secure aggregation, threshold,\n"
     "epsilon caps), every logged epsilon against an independent recomputation, and, with\n"
     "--receipts, each hospital's signed receipts (site certificates <site>.pem in --certs).\n"
     "It prints a summary and one line per finding naming the entry (seq) and the rule.\n"
     "Exit 0 only if everything holds; 1 when there are findings; 2 when the input is\n"
     "unreadable. --json prints {\"ok\",\"summary\",\"findings\"} instead.\n"
     "report writes one self-contained HTML page: rounds, participation matrix, epsilon\n"
     "over rounds and findings.\n"})

/* The independent epsilon recomputation: the privacy library's accountant. */
typedef int (*eps_fn_t)(const json_t *, double *, double *);
static eps_fn_t audit_epsilon_fn(void)
{
    return ff_audit_privacy_epsilon;
}

static void print_summary(const char *log, const ff_audit_summary *s, const ff_audit_findings *f,
                          int eps_checked)
{
    printf("audit log: %s\n", log);
    printf("entries: %llu, aggregated rounds: %lld, sites: %lld, run %s\n",
           (unsigned long long)s->entries, (long long)s->rounds, (long long)s->sites,
           s->ended ? "ended" : "NOT ended");
    printf("coordinator audit key: %s\n", s->coordinator_subject[0] ? s->coordinator_subject : "?");
    if (s->epsilon_record >= 0)
        printf("epsilon spent: record-level %.6g, client-level %.6g (%s)\n", s->epsilon_record,
               s->epsilon_client, eps_checked ? "recomputed independently" : "NOT recomputed");
    else
        printf("epsilon spent: no privacy entries\n");
    if (s->receipts_record_dp > 0)
        printf("record-level epsilon recomputed from the site ledgers of %lld receipts\n",
               (long long)s->receipts_record_dp);
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
    const char *policy_path = ff_cli_opt(a, "--policy");
    const char *out = report ? ff_cli_opt(a, "--out") : NULL;
    int json = ff_cli_flag(a, "--json");
    if (!log)
        return ff_cli_usage_error("audit", "missing --log FILE");
    if (!report && !ca)
        return ff_cli_usage_error("audit", "missing --ca CA.pem");
    if (report && !out)
        return ff_cli_usage_error("audit", "missing --out report.html");
    if (ff_cli_check_unused(a) != FF_OK)
        return ff_cli_fail(FF_EINVAL);
    ff_audit_policy policy;
    if (policy_path && ff_audit_policy_load(policy_path, &policy) != FF_OK)
        return ff_cli_fail(FF_ECONFIG);
    ff_audit_verify_opts o = {.ca_pem_path = ca, .receipts_dir = receipts,
                              .receipt_certs = certs ? certs : receipts,
                              .policy = policy_path ? &policy : NULL,
                              .epsilon_fn = audit_epsilon_fn()};
    ff_audit_summary s;
    ff_audit_findings f;
    int rc = ff_audit_verify(log, &o, &s, &f);
    if (rc != FF_OK)
        return ff_cli_fail(rc);
    if (report) {
        rc = ff_audit_report_html(log, &s, &f, out);
        if (rc == FF_OK)
            printf("wrote %s (%zu finding%s)\n", out, f.count, f.count == 1 ? "" : "s");
    } else if (json) {
        json_t *j = ff_audit_result_json(&s, &f);
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
    } else {
        print_summary(log, &s, &f, o.epsilon_fn != NULL);
    }
    int exit_code = rc != FF_OK ? ff_cli_fail(rc) : report ? FF_EXIT_OK : f.count ? FF_EXIT_FAIL : FF_EXIT_OK;
    ff_audit_findings_free(&f);
    return exit_code;
}

static int cmd_audit(int argc, char **argv)
{
    if (argc < 2)
        return ff_cli_usage_error("audit", "missing verb: verify or report");
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
    return ff_cli_usage_error("audit", "unknown verb '%s' (verify, report)", argv[1]);
}
