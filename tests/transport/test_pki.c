/* Consortium PKI: files, modes, key types, chain/expiry/revocation checks. The oracle for the
 * certificates themselves is the `openssl` command-line tool (a separate implementation of
 * path validation). */
#include "testutil.h"

#include <openssl/evp.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_and_modes),     cmocka_unit_test(test_openssl_accepts_chain),
        cmocka_unit_test(test_cn_and_check),        cmocka_unit_test(test_ed25519_sign_verify),
        cmocka_unit_test(test_revoke),              cmocka_unit_test(test_expired_and_foreign),
        cmocka_unit_test(test_check_own),           cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
