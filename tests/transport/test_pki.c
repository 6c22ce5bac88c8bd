/* Consortium PKI: files, modes, key types, chain/expiry/revocation checks. The oracle for the
 * certificates themselves is the `openssl` command-line tool (a separate implementation of
 * path validation). */
#include "testutil.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ff/transport.h"

static const char *dir;

static int setup(void **state)
{
    (void)state;
    dir = ft_tmpdir();
    if (ff_pki_init(ft_path(dir, "ca"), "test-consortium", 30) != FF_OK)
        return -1;
    ff_pki_issue_opts o = {.name = "hospital-a"};
    if (ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "a"), &o) != FF_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ft_rmtree(dir);
    return 0;
}

static int openssl_verify(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "openssl verify %s >/dev/null 2>&1", args);
    return system(cmd);
}

static void test_files_and_modes(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(stat(ft_path(dir, "ca/ca.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(ft_path(dir, "a/hospital-a.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(ff_path_exists(ft_path(dir, "a/ca.crt")));
    assert_true(ff_path_exists(ft_path(dir, "ca/crl.pem")));
    /* Refuses to overwrite a CA. */
    assert_int_equal(ff_pki_init(ft_path(dir, "ca"), "x", 30), FF_EINVAL);
    ft_assert_error_has("refusing to overwrite");
}

static void test_openssl_accepts_chain(void **state)
{
    (void)state;
    char args[1024];
    snprintf(args, sizeof args, "-purpose sslclient -CAfile %s/ca/ca.crt %s/a/hospital-a.crt",
             dir, dir);
    assert_int_equal(openssl_verify(args), 0);
    /* The empty CRL is well-formed and signed: CRL checking passes. */
    snprintf(args, sizeof args, "-crl_check -CRLfile %s/ca/crl.pem -CAfile %s/ca/ca.crt "
             "%s/a/hospital-a.crt", dir, dir, dir);
    assert_int_equal(openssl_verify(args), 0);
    /* A site certificate is not a TLS server certificate. */
    snprintf(args, sizeof args, "-purpose sslserver -CAfile %s/ca/ca.crt %s/a/hospital-a.crt",
             dir, dir);
    assert_int_not_equal(openssl_verify(args), 0);
}

static void test_cn_and_check(void **state)
{
    (void)state;
    char cn[FF_SITE_NAME_MAX];
    assert_int_equal(ff_pki_check_files(ft_path(dir, "ca/ca.crt"), ft_path(dir, "ca/crl.pem"),
                                        ft_path(dir, "a/hospital-a.crt"), cn, sizeof cn), FF_OK);
    assert_string_equal(cn, "hospital-a");
}

static void test_ed25519_sign_verify(void **state)
{
    (void)state;
    EVP_PKEY *sk = NULL, *pk = NULL;
    assert_int_equal(ff_pki_load_key(ft_path(dir, "a/hospital-a.key"), &sk), FF_OK);
    assert_int_equal(ff_pki_load_cert_pubkey(ft_path(dir, "a/hospital-a.crt"), &pk), FF_OK);
    assert_int_equal(EVP_PKEY_get_id(sk), EVP_PKEY_ED25519);
    const unsigned char msg[] = "round 3 advertise";
    unsigned char sig[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(m, NULL, NULL, NULL, sk), 1);
    assert_int_equal(EVP_DigestSign(m, sig, &siglen, msg, sizeof msg), 1);
    EVP_MD_CTX_free(m);
    m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(m, NULL, NULL, NULL, pk), 1);
    assert_int_equal(EVP_DigestVerify(m, sig, siglen, msg, sizeof msg), 1);
    sig[0] ^= 1;
    assert_int_not_equal(EVP_DigestVerify(m, sig, siglen, msg, sizeof msg), 1);
    EVP_MD_CTX_free(m);
    EVP_PKEY_free(sk);
    EVP_PKEY_free(pk);
    /* A certificate is not a private key. */
    assert_int_not_equal(ff_pki_load_key(ft_path(dir, "a/hospital-a.crt"), &sk), FF_OK);
}

static void test_revoke(void **state)
{
    (void)state;
    ff_pki_issue_opts o = {.name = "hospital-r"};
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "r"), &o), FF_OK);
    assert_int_equal(ff_pki_revoke(ft_path(dir, "ca"), ft_path(dir, "r/hospital-r.crt")), FF_OK);
    char cn[FF_SITE_NAME_MAX], args[1024];
    assert_int_equal(ff_pki_check_files(ft_path(dir, "ca/ca.crt"), ft_path(dir, "ca/crl.pem"),
                                        ft_path(dir, "r/hospital-r.crt"), cn, sizeof cn),
                     FF_EPOLICY);
    ft_assert_error_has("revoked");
    snprintf(args, sizeof args, "-crl_check -CRLfile %s/ca/crl.pem -CAfile %s/ca/ca.crt "
             "%s/r/hospital-r.crt", dir, dir, dir);
    assert_int_not_equal(openssl_verify(args), 0);
    /* Others stay valid; revoking twice is refused. */
    assert_int_equal(ff_pki_check_files(ft_path(dir, "ca/ca.crt"), ft_path(dir, "ca/crl.pem"),
                                        ft_path(dir, "a/hospital-a.crt"), cn, sizeof cn), FF_OK);
    assert_int_equal(ff_pki_revoke(ft_path(dir, "ca"), ft_path(dir, "r/hospital-r.crt")),
                     FF_EINVAL);
    ft_assert_error_has("already revoked");
}

static void test_expired_and_foreign(void **state)
{
    (void)state;
    ff_pki_issue_opts o = {.name = "hospital-old", .days = 1, .backdate_days = 10};
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "old"), &o), FF_OK);
    char cn[FF_SITE_NAME_MAX];
    assert_int_equal(ff_pki_check_files(ft_path(dir, "ca/ca.crt"), NULL,
                                        ft_path(dir, "old/hospital-old.crt"), cn, sizeof cn),
                     FF_ECRYPTO);
    ft_assert_error_has("expired");
    assert_int_equal(ff_pki_init(ft_path(dir, "ca2"), "other", 30), FF_OK);
    ff_pki_issue_opts f = {.name = "hospital-a"};
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca2"), ft_path(dir, "f"), &f), FF_OK);
    assert_int_equal(ff_pki_check_files(ft_path(dir, "ca/ca.crt"), NULL,
                                        ft_path(dir, "f/hospital-a.crt"), cn, sizeof cn),
                     FF_ECRYPTO);
    ft_assert_error_has("local issuer");
    /* A CRL signed by another CA is refused. */
    X509 *ca = NULL;
    X509_CRL *crl = NULL;
    assert_int_equal(ff_pki_load_cert(ft_path(dir, "ca/ca.crt"), &ca), FF_OK);
    assert_int_equal(ff_pki_load_crl(ft_path(dir, "ca2/crl.pem"), ca, &crl), FF_ECRYPTO);
    X509_free(ca);
}

static void test_check_own(void **state)
{
    (void)state;
    assert_int_equal(ff_pki_check_own(ft_path(dir, "a/hospital-a.crt"),
                                      ft_path(dir, "a/hospital-a.key"), ft_path(dir, "ca/ca.crt")),
                     FF_OK);
    ff_pki_issue_opts o = {.name = "hospital-z"};
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "z"), &o), FF_OK);
    assert_int_equal(ff_pki_check_own(ft_path(dir, "a/hospital-a.crt"),
                                      ft_path(dir, "z/hospital-z.key"), ft_path(dir, "ca/ca.crt")),
                     FF_ECRYPTO);
    ft_assert_error_has("key and certificate differ");
    ff_pki_issue_opts e = {.name = "hospital-e", .days = 2, .backdate_days = 3};
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "e"), &e), FF_OK);
    assert_int_equal(ff_pki_check_own(ft_path(dir, "e/hospital-e.crt"),
                                      ft_path(dir, "e/hospital-e.key"), ft_path(dir, "ca/ca.crt")),
                     FF_EPOLICY);
    ft_assert_error_has("expired");
    assert_int_equal(ff_pki_check_own(ft_path(dir, "a/hospital-a.crt"),
                                      ft_path(dir, "a/missing.key"), ft_path(dir, "ca/ca.crt")),
                     FF_EIO);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    ff_pki_issue_opts o = {.name = "bad name/../x"};
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "b"), &o), FF_EINVAL);
    ft_assert_error_has("--site");
    const char *reserved[] = {"ca", "..", ".hidden", "-x", ""};
    for (size_t i = 0; i < 5; i++) {
        ff_pki_issue_opts r = {.name = reserved[i]};
        assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "b"), &r), FF_EINVAL);
    }
    ff_pki_issue_opts d = {.name = "ok", .days = 5000};
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "b"), &d), FF_ERANGE);
    ff_pki_issue_opts n = {.name = "ok"};
    assert_int_equal(ff_pki_issue(ft_path(dir, "nope"), ft_path(dir, "b"), &n), FF_EIO);
    ff_pki_role r;
    assert_int_equal(ff_pki_role_parse("coordinator", &r), FF_OK);
    assert_int_equal(r, FF_PKI_COORDINATOR);
    assert_int_equal(ff_pki_role_parse("admin", &r), FF_EINVAL);
}

/* ---- certificate requests (the site's key never leaves the site) ------------------------ */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* 0 when openssl finds the request's self-signature valid (OpenSSL 3.0's `req -verify`
 * exits 0 either way: read its verdict). */
static int req_verify(const char *csr)
{
    return sh("openssl req -verify -noout -in %s 2>&1 | grep -q 'self-signature verify OK'", csr);
}

/* openssl's own rendering of the extensions that carry the key usages and names. */
static void ext_text(const char *crt, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "openssl x509 -in %s -noout -ext "
             "basicConstraints,keyUsage,extendedKeyUsage,subjectAltName", crt);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = 0;
    assert_int_equal(pclose(f), 0);
}

static int lifetime_days(const char *crt)
{
    X509 *x = NULL;
    int days = -1, secs = 0;
    assert_int_equal(ff_pki_load_cert(crt, &x), FF_OK);
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
                     1);
    X509_free(x);
    return days;
}

/* Rewrites a PEM request after f changed its DER bytes (no re-signing). */
static void tamper(const char *in, const char *out, void (*f)(uint8_t *der, int len))
{
    FILE *fp = fopen(in, "r");
    assert_non_null(fp);
    X509_REQ *r = PEM_read_X509_REQ(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(r);
    uint8_t *der = NULL;
    int len = i2d_X509_REQ(r, &der);
    assert_true(len > 0);
    f(der, len);
    fp = fopen(out, "w");
    assert_non_null(fp);
    assert_true(PEM_write(fp, "CERTIFICATE REQUEST", "", der, len) > 0);
    fclose(fp);
    OPENSSL_free(der);
    X509_REQ_free(r);
}

static void flip_signature(uint8_t *der, int len) { der[len - 1] ^= 0x01; }

static void rename_site(uint8_t *der, int len)
{
    int at = -1;
    for (int i = 0; i + 10 <= len && at < 0; i++)
        if (memcmp(der + i, "hospital-c", 10) == 0)
            at = i;
    assert_true(at >= 0);
    der[at + 9] = 'x'; /* hospital-c -> hospital-x, signature untouched */
}

static void test_csr_flow(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(ff_pki_csr(ft_path(dir, "c-site"), "hospital-c"), FF_OK);
    assert_int_equal(stat(ft_path(dir, "c-site/hospital-c.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Oracle: openssl checks the request's self-signature and reads its subject. */
    assert_int_equal(req_verify(ft_path(dir, "c-site/hospital-c.csr")), 0);
    assert_int_equal(sh("openssl req -noout -subject -in %s/c-site/hospital-c.csr | "
                        "grep -qx 'subject=CN = hospital-c'", dir), 0);
    /* A second request for the same name would overwrite the site's key: refused. */
    assert_int_equal(ff_pki_csr(ft_path(dir, "c-site"), "hospital-c"), FF_EINVAL);
    ft_assert_error_has("refusing to overwrite");

    /* The CA signs it (no key crosses over) exactly as `pki issue` would. */
    char name[FF_SITE_NAME_MAX] = "";
    ff_pki_issue_opts o = {0};
    assert_int_equal(ff_pki_sign_csr(ft_path(dir, "ca"), ft_path(dir, "c-site/hospital-c.csr"),
                                     ft_path(dir, "c-ca"), &o, name, sizeof name), FF_OK);
    assert_string_equal(name, "hospital-c");
    assert_false(ff_path_exists(ft_path(dir, "c-ca/hospital-c.key")));
    char args[1024];
    snprintf(args, sizeof args, "-purpose sslclient -CAfile %s/ca/ca.crt %s/c-ca/hospital-c.crt",
             dir, dir);
    assert_int_equal(openssl_verify(args), 0);
    snprintf(args, sizeof args, "-purpose sslserver -CAfile %s/ca/ca.crt %s/c-ca/hospital-c.crt",
             dir, dir);
    assert_int_not_equal(openssl_verify(args), 0);
    /* The certificate carries the key generated at the site. */
    assert_int_equal(ff_pki_check_own(ft_path(dir, "c-ca/hospital-c.crt"),
                                      ft_path(dir, "c-site/hospital-c.key"),
                                      ft_path(dir, "c-ca/ca.crt")), FF_OK);
    char cn[FF_SITE_NAME_MAX];
    assert_int_equal(ff_pki_check_files(ft_path(dir, "ca/ca.crt"), ft_path(dir, "ca/crl.pem"),
                                        ft_path(dir, "c-ca/hospital-c.crt"), cn, sizeof cn),
                     FF_OK);
    assert_string_equal(cn, "hospital-c");
    /* Same extensions and lifetime as an issued site certificate (hospital-a from setup),
     * with the name swapped in the SAN. */
    char want[2048], got[2048];
    ext_text(ft_path(dir, "a/hospital-a.crt"), want, sizeof want);
    ext_text(ft_path(dir, "c-ca/hospital-c.crt"), got, sizeof got);
    char *p = strstr(want, "DNS:hospital-a");
    assert_non_null(p);
    p[13] = 'c';
    assert_string_equal(got, want);
    assert_int_equal(lifetime_days(ft_path(dir, "c-ca/hospital-c.crt")), 730);
    assert_int_equal(lifetime_days(ft_path(dir, "a/hospital-a.crt")), 730);

    /* Coordinator role, --days and --san through a request, checked like `pki issue`. */
    assert_int_equal(ff_pki_csr(ft_path(dir, "k-site"), "coord-k"), FF_OK);
    const char *sans[] = {"coord.example.org", "10.0.0.7"};
    ff_pki_issue_opts k = {.name = "coord-k", .role = FF_PKI_COORDINATOR, .days = 90,
                           .sans = sans, .nsans = 2};
    assert_int_equal(ff_pki_sign_csr(ft_path(dir, "ca"), ft_path(dir, "k-site/coord-k.csr"),
                                     ft_path(dir, "k-ca"), &k, NULL, 0), FF_OK);
    ff_pki_issue_opts ki = k;
    ki.name = "coord-i";
    assert_int_equal(ff_pki_issue(ft_path(dir, "ca"), ft_path(dir, "k-iss"), &ki), FF_OK);
    ext_text(ft_path(dir, "k-iss/coord-i.crt"), want, sizeof want);
    ext_text(ft_path(dir, "k-ca/coord-k.crt"), got, sizeof got);
    p = strstr(want, "DNS:coord-i");
    assert_non_null(p);
    p[10] = 'k';
    assert_string_equal(got, want);
    assert_int_equal(lifetime_days(ft_path(dir, "k-ca/coord-k.crt")), 90);
    snprintf(args, sizeof args, "-purpose sslserver -CAfile %s/ca/ca.crt %s/k-ca/coord-k.crt",
             dir, dir);
    assert_int_equal(openssl_verify(args), 0);

    /* A request made by the openssl tool (another implementation) is accepted too. */
    assert_int_equal(sh("cd %s && openssl genpkey -algorithm ed25519 -out o.key 2>/dev/null && "
                        "openssl req -new -key o.key -subj /CN=hospital-o -out o.csr", dir), 0);
    assert_int_equal(ff_pki_sign_csr(ft_path(dir, "ca"), ft_path(dir, "o.csr"),
                                     ft_path(dir, "o-ca"), &o, NULL, 0), FF_OK);
    assert_int_equal(ff_pki_check_own(ft_path(dir, "o-ca/hospital-o.crt"), ft_path(dir, "o.key"),
                                      ft_path(dir, "ca/ca.crt")), FF_OK);
}

/* Each refused request: the reason named, and no certificate written. */
static void refused(const char *csr, const ff_pki_issue_opts *o, int want, const char *why)
{
    ft_rmtree(ft_path(dir, "bad-out"));
    assert_int_equal(ff_pki_sign_csr(ft_path(dir, "ca"), ft_path(dir, csr), ft_path(dir, "bad-out"),
                                     o, NULL, 0), want);
    ft_assert_error_has(why);
    assert_false(ff_path_exists(ft_path(dir, "bad-out")));
}

static void test_csr_refused(void **state)
{
    (void)state;
    ff_pki_issue_opts o = {0};
    assert_int_equal(ff_pki_csr(ft_path(dir, "t-site"), "hospital-c"), FF_OK);
    /* A flipped signature bit and a renamed subject: openssl agrees both are broken. */
    tamper(ft_path(dir, "t-site/hospital-c.csr"), ft_path(dir, "flip.csr"), flip_signature);
    tamper(ft_path(dir, "t-site/hospital-c.csr"), ft_path(dir, "renamed.csr"), rename_site);
    assert_int_not_equal(req_verify(ft_path(dir, "flip.csr")), 0);
    assert_int_not_equal(req_verify(ft_path(dir, "renamed.csr")), 0);
    assert_int_equal(sh("openssl req -noout -subject -in %s/renamed.csr | grep -q hospital-x", dir),
                     0);
    refused("flip.csr", &o, FF_EINVAL, "signature does not verify");
    refused("renamed.csr", &o, FF_EINVAL, "signature does not verify");
    /* Malformed subjects, each validly signed by openssl. */
    assert_int_equal(sh("cd %s && openssl genpkey -algorithm ed25519 -out m.key 2>/dev/null", dir), 0);
    static const struct {
        const char *subj, *why;
    } subj[] = {
        {"/O=Other/CN=hospital-m", "exactly CN=<site name>"},
        {"/CN=hospital-m/CN=hospital-n", "exactly CN=<site name>"},
        {"/O=hospital-m", "exactly CN=<site name>"},
        {"/CN=bad name", "not a site name"},
        {"/CN=ca", "not a site name"},
        {"/CN=..", "not a site name"},
    };
    for (size_t i = 0; i < FF_ARRAY_LEN(subj); i++) {
        assert_int_equal(sh("cd %s && openssl req -new -key m.key -subj '%s' -out m.csr", dir,
                            subj[i].subj), 0);
        assert_int_equal(req_verify(ft_path(dir, "m.csr")), 0);
        refused("m.csr", &o, FF_EINVAL, subj[i].why);
    }
    /* Not an Ed25519 key (P-256), properly signed: refused. */
    assert_int_equal(sh("cd %s && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                        "-nodes -keyout p.key -subj /CN=hospital-p -out p.csr 2>/dev/null", dir),
                     0);
    refused("p.csr", &o, FF_EINVAL, "not Ed25519");
    /* The CA operator expected another site. */
    ff_pki_issue_opts named = {.name = "hospital-z"};
    refused("t-site/hospital-c.csr", &named, FF_EINVAL, "not --site 'hospital-z'");
    /* Not a request at all, a missing file, a bad lifetime. */
    refused("a/hospital-a.crt", &o, FF_EFORMAT, "hospital-a.crt");
    refused("missing.csr", &o, FF_EIO, "missing.csr");
    ff_pki_issue_opts d = {.days = 5000};
    refused("t-site/hospital-c.csr", &d, FF_ERANGE, "--days 5000");
    assert_int_equal(ff_pki_csr(ft_path(dir, "t2"), "bad/name"), FF_EINVAL);
    ft_assert_error_has("--site 'bad/name'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_and_modes),     cmocka_unit_test(test_openssl_accepts_chain),
        cmocka_unit_test(test_cn_and_check),        cmocka_unit_test(test_ed25519_sign_verify),
        cmocka_unit_test(test_revoke),              cmocka_unit_test(test_expired_and_foreign),
        cmocka_unit_test(test_check_own),           cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_csr_flow),            cmocka_unit_test(test_csr_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
