/* Disk full while appending to the audit log (a 64 KiB tmpfs filled to the last byte): the
 * append fails with a clear error, the log on disk is byte-identical to before it (no torn
 * entry), reopening finds no torn tail and the same next sequence number, and appending
 * works again once space returns. Needs root for mount; exits 77 (skipped) otherwise. */
#include "testutil.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "ff/audit.h"
#include "ft_tmpfs.h"

static const char *g_mnt;

static char *self_signed_pem(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"audit", -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, NULL) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    X509_free(x);
    return s;
}

static void test_audit_append_disk_full(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char *pem = self_signed_pem(key);
    char path[600];
    snprintf(path, sizeof path, "%s/audit.jsonl", g_mnt);
    json_t *genesis = json_pack("{s:s}", "job_sha256", "00");
    ff_audit_log *log = NULL;
    size_t torn = 99;
    assert_int_equal(ff_audit_open(&log, path, key, pem, genesis, &torn), FF_OK);
    for (int i = 0; i < 5; i++) {
        json_t *d = json_pack("{s:i}", "round", i);
        assert_int_equal(ff_audit_append(log, "round_start", d), FF_OK);
        json_decref(d);
    }
    /* Fill, then append until the remainder of the last page is used up too. */
    assert_true(ft_tmpfs_fill(g_mnt) > 0);
    size_t n0 = 0, n1 = 0;
    char *before = NULL;
    int rc = FF_OK, ok = 0;
    for (int i = 0; i < 200 && rc == FF_OK; i++) {
        free(before);
        before = ft_slurp(path, &n0);
        json_t *d = json_pack("{s:i,s:s}", "round", 100 + i, "note", "disk is filling up");
        rc = ff_audit_append(log, "round_start", d);
        json_decref(d);
        ok += rc == FF_OK;
    }
    assert_int_not_equal(rc, FF_OK);
    printf("disk full after %d more entries: rc %d: %s\n", ok, rc, ff_error_message());
    ft_assert_error_has("No space left on device");
    uint64_t seq = ff_audit_next_seq(log);
    char *after = ft_slurp(path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    ff_audit_close(log);

    ft_tmpfs_unfill(g_mnt);
    log = NULL;
    assert_int_equal(ff_audit_open(&log, path, key, pem, genesis, &torn), FF_OK);
    assert_int_equal(torn, 0);
    assert_int_equal(ff_audit_next_seq(log), seq);
    json_t *d = json_pack("{s:s}", "why", "disk space restored");
    assert_int_equal(ff_audit_append(log, "restart", d), FF_OK);
    json_decref(d);
    ff_audit_close(log);
    json_decref(genesis);
    free(before);
    free(after);
    free(pem);
    EVP_PKEY_free(key);
}

int main(void)
{
    if (!(g_mnt = ft_tmpfs_mount("64k")))
        return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_audit_append_disk_full)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ft_tmpfs_umount();
    return rc;
}
