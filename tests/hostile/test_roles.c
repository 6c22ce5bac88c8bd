/* Hostile review, item 4: certificate roles. A certificate of the consortium CA is trusted only
 * for its role: an audit or operator certificate named like an enrolled site is not that site
 * (refused on every RPC), a server that is not the coordinator is refused by the site, and
 * `fedfuse audit verify` (the real binary) refuses a log signed by a site key, by the
 * coordinator's TLS key or by a revoked audit key, and says which key it trusted and why. */
#include "tnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ff/audit.h"

static const char *dir;
static char logpath[512];
static tnet_coord tc;

static void issue(const char *sub, const char *name, ff_pki_role role)
{
    ff_pki_issue_opts o = {.name = name, .role = role};
    if (ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, sub), &o) != FF_OK)
        fail_msg("issue %s/%s: %s", sub, name, ff_error_message());
}

static int setup(void **state)
{
    (void)state;
    dir = ft_tmpdir();
    tnet_pki(dir);
    issue("as-audit", "hospital-a", FF_PKI_AUDIT);
    issue("as-operator", "hospital-a", FF_PKI_OPERATOR);
    issue("as-coordinator", "hospital-a", FF_PKI_COORDINATOR);
    issue("operator", "alice", FF_PKI_OPERATOR);
    issue("keys", "audit", FF_PKI_AUDIT);
    issue("revoked-audit", "audit", FF_PKI_AUDIT);
    if (ff_pki_revoke(ft_path(dir, "ca"), ft_path(dir, "revoked-audit/audit.crt")) != FF_OK)
        return -1;
    snprintf(logpath, sizeof logpath, "%s/server.log", dir);
    if (ff_log_open(FF_LOG_INFO, FF_LOG_PLAIN, logpath, "test") != FF_OK)
        return -1;
    memset(&tc, 0, sizeof tc);
    tnet_coord_start(&tc, dir, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tnet_coord_stop(&tc);
    ff_log_close();
    if (!getenv("FF_KEEP"))
        ft_rmtree(dir);
    return 0;
}

static int hello_as(const char *sub, const char *name)
{
    char cert[600], key[600], ca[600];
    snprintf(cert, sizeof cert, "%s/%s/%s.crt", dir, sub, name);
    snprintf(key, sizeof key, "%s/%s/%s.key", dir, sub, name);
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    ff_rpc_opts o = {.target = tc.addr, .cert = cert, .key = key, .ca = ca,
                     .server_name = "localhost", .attempts = 1};
    ff_rpc *c = NULL;
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    Fedfuse__HelloRequest q = FEDFUSE__HELLO_REQUEST__INIT;
    q.protocol_version = FF_PROTOCOL_VERSION;
    Fedfuse__HelloReply *r = NULL;
    int rc = ff_rpc_hello(c, &q, &r, 5000);
    ff_msg_free(r);
    ff_rpc_free(c);
    return rc;
}

/* The genuine site passes; the same name with any other role is refused as a site. */
static void test_role_named_like_site_refused(void **state)
{
    (void)state;
    assert_int_equal(hello_as("hospital-a", "hospital-a"), FF_OK);
    assert_int_equal(hello_as("as-audit", "hospital-a"), FF_EPOLICY);
    ft_assert_error_has("role audit");
    assert_int_equal(hello_as("as-operator", "hospital-a"), FF_EPOLICY);
    ft_assert_error_has("role operator");
    assert_int_equal(hello_as("as-coordinator", "hospital-a"), FF_EPOLICY);
    ft_assert_error_has("role coordinator");
    ff_server_counters k;
    ff_server_counters_get(tc.srv, &k);
    assert_true(k.wrong_role >= 3);
    assert_true(tnet_file_has(logpath, "served to sites only"));
}

/* Issue 21 item 2: an operator certificate (not enrolled as a site) reads the round state
 * (Status, what `fedfuse status` and `ping` call) and is refused every other RPC with
 * PERMISSION_DENIED naming its role; an audit certificate is refused Status too. */
static void test_operator_status_only(void **state)
{
    (void)state;
    static const char *const site_rpcs[] = {"Hello", "GetTask", "Download", "Upload",
                                            "SubmitEval", "SecAggMessage", "Decline"};
    char cert[600], key[600], ca[600];
    snprintf(cert, sizeof cert, "%s/operator/alice.crt", dir);
    snprintf(key, sizeof key, "%s/operator/alice.key", dir);
    snprintf(ca, sizeof ca, "%s/ca/ca.crt", dir);
    ff_rpc_opts o = {.target = tc.addr, .cert = cert, .key = key, .ca = ca,
                     .server_name = "localhost", .attempts = 1};
    ff_rpc *c = NULL;
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    Fedfuse__StatusReply *st = NULL;
    assert_int_equal(ff_rpc_status(c, &st, 5000), FF_OK);
    assert_string_equal(st->consortium, "test-consortium");
    ff_msg_free(st);
    for (size_t i = 0; i < sizeof site_rpcs / sizeof *site_rpcs; i++) {
        int code = -1;
        assert_int_not_equal(ff_rpc_raw_call(c, site_rpcs[i], "", 0, 5000, &code), FF_OK);
        assert_int_equal(code, 7 /* PERMISSION_DENIED */);
        ft_assert_error_has("role operator");
        ft_assert_error_has("an operator may call Status only");
    }
    /* The typed calls a client node makes fail the same way. */
    Fedfuse__HelloRequest hq = FEDFUSE__HELLO_REQUEST__INIT;
    hq.protocol_version = FF_PROTOCOL_VERSION;
    Fedfuse__HelloReply *hr = NULL;
    assert_int_equal(ff_rpc_hello(c, &hq, &hr, 5000), FF_EPOLICY);
    Fedfuse__TaskRequest tq = FEDFUSE__TASK_REQUEST__INIT;
    Fedfuse__Task *t = NULL;
    assert_int_equal(ff_rpc_get_task(c, &tq, &t, 5000), FF_EPOLICY);
    ft_assert_error_has("GetTask is served to sites only");
    ff_rpc_free(c);
    /* An audit certificate reads nothing. */
    snprintf(cert, sizeof cert, "%s/keys/audit.crt", dir);
    snprintf(key, sizeof key, "%s/keys/audit.key", dir);
    assert_int_equal(ff_rpc_new(&c, &o), FF_OK);
    assert_int_equal(ff_rpc_status(c, &st, 5000), FF_EPOLICY);
    ft_assert_error_has("role audit");
    ff_rpc_free(c);
}

static void test_cert_role_helper(void **state)
{
    (void)state;
    X509 *x = NULL;
    ff_pki_role r;
    assert_int_equal(ff_pki_load_cert(ft_path(dir, "as-operator/hospital-a.crt"), &x), FF_OK);
    assert_int_equal(ff_pki_cert_role(x, &r), FF_OK);
    assert_int_equal(r, FF_PKI_OPERATOR);
    assert_int_equal(ff_pki_check_role(x, FF_PKI_SITE, NULL), FF_EPOLICY);
    X509_free(x);
    /* The CA certificate carries no role at all. */
    assert_int_equal(ff_pki_load_cert(ft_path(dir, "ca/ca.crt"), &x), FF_OK);
    assert_int_equal(ff_pki_cert_role(x, &r), FF_EPOLICY);
    ft_assert_error_has("no fedfuse role");
    X509_free(x);
}

/* A small audit log signed with key/cert of folder sub (genesis + one entry). */
static void write_log(const char *path, const char *sub, const char *name)
{
    char kp[600], cp[600];
    snprintf(kp, sizeof kp, "%s/%s/%s.key", dir, sub, name);
    snprintf(cp, sizeof cp, "%s/%s/%s.crt", dir, sub, name);
    EVP_PKEY *key = NULL;
    char *pem = NULL;
    size_t n = 0, torn = 0;
    assert_int_equal(ff_audit_load_key(kp, &key), FF_OK);
    assert_int_equal(ff_file_read_all(cp, 1u << 20, &pem, &n), FF_OK);
    json_t *gen = json_pack("{s:s, s:s}", "format", "fedfuse-audit-v1", "run_name", "hostile");
    ff_audit_log *log = NULL;
    assert_int_equal(ff_audit_open(&log, path, key, pem, gen, &torn), FF_OK);
    json_t *d = json_pack("{s:s}", "model_sha256",
                          "0000000000000000000000000000000000000000000000000000000000000000");
    assert_int_equal(ff_audit_append(log, "run_end", d), FF_OK);
    json_decref(d);
    json_decref(gen);
    ff_audit_close(log);
    EVP_PKEY_free(key);
    free(pem);
}

/* Runs `fedfuse audit verify` on a log signed by sub/name; returns the exit status and keeps
 * the output in dir/verify.txt. */
static int verify(const char *sub, const char *name, const char *extra)
{
    char logf[600], cmd[3000];
    snprintf(logf, sizeof logf, "%s/%s-%s.jsonl", dir, sub, name);
    write_log(logf, sub, name);
    snprintf(cmd, sizeof cmd, "'%s/fedfuse' audit verify --log '%s' --ca '%s/ca/ca.crt' %s "
             "> '%s/verify.txt' 2>&1", FF_BINARY_DIR, logf, dir, extra, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_audit_verify_roles(void **state)
{
    (void)state;
    const char *out = ft_path(dir, "verify.txt");
    /* The genuine audit key: no certificate finding; the summary says why it is trusted. */
    (void)verify("keys", "audit", "");
    assert_false(tnet_file_has(out, "finding: seq 0: certificate"));
    assert_true(tnet_file_has(out, "audit key trusted: CN=audit carries role audit"));
    assert_true(tnet_file_has(out, "not revoked in"));
    /* Re-signed with a site's key, with the coordinator's TLS key, with a revoked audit
     * key: each refused, exit 1. */
    assert_int_equal(verify("hospital-a", "hospital-a", ""), 1);
    assert_true(tnet_file_has(out, "certificate.trust"));
    assert_true(tnet_file_has(out, "role site, not audit"));
    assert_int_equal(verify("coord", "coord", ""), 1);
    assert_true(tnet_file_has(out, "role coordinator, not audit"));
    assert_int_equal(verify("revoked-audit", "audit", ""), 1);
    assert_true(tnet_file_has(out, "revoked"));
    assert_true(tnet_file_has(out, "audit key NOT trusted"));
    /* Audit role but the wrong name: refused when the auditor expects "audit". */
    assert_int_equal(verify("as-audit", "hospital-a", ""), 1);
    assert_true(tnet_file_has(out, "named 'hospital-a', expected 'audit'"));
    /* No revocation list given and none beside the CA: nothing is trusted. */
    assert_int_equal(verify("keys", "audit", "--crl /nonexistent/crl.pem"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_named_like_site_refused),
        cmocka_unit_test(test_operator_status_only),
        cmocka_unit_test(test_cert_role_helper),
        cmocka_unit_test(test_audit_verify_roles),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
