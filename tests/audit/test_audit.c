/* Audit log: a good run verifies; every kind of tampering is detected and located. */
#include "testutil.h"

#include <math.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ff/audit.h"
#include "ff/privacy.h"

typedef struct {
    EVP_PKEY *ca_key, *audit_key, *site_key, *other_key, *site_keys[3];
    X509 *ca, *audit_cert, *site_cert;
    char *audit_pem;
    const char *dir;
    char ca_path[512], log_path[512], receipts[512];
    json_t *details; /* every summary's detail, released at teardown */
} fixture;

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(ff_fnv1a32(cn, strlen(cn)) & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (!issuer) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, issuer_key, NULL) > 0);
    return x;
}

static char *cert_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void write_cert(X509 *x, const char *path)
{
    char *p = cert_pem(x);
    ft_write_file(path, p, strlen(p));
    free(p);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->audit_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->site_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->other_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->ca = make_cert(f->ca_key, "consortium-ca", NULL, f->ca_key);
    f->audit_cert = make_cert(f->audit_key, "coordinator-audit", f->ca, f->ca_key);
    f->site_cert = make_cert(f->site_key, "site-1", f->ca, f->ca_key);
    f->audit_pem = cert_pem(f->audit_cert);
    f->dir = ft_tmpdir();
    snprintf(f->ca_path, sizeof f->ca_path, "%s/ca.pem", f->dir);
    snprintf(f->log_path, sizeof f->log_path, "%s/audit.jsonl", f->dir);
    snprintf(f->receipts, sizeof f->receipts, "%s/receipts", f->dir);
    write_cert(f->ca, f->ca_path);
    assert_int_equal(ff_mkdir_p(f->receipts, 0755), FF_OK);
    write_cert(f->site_cert, ft_path(f->receipts, "site-1.pem"));
    f->site_keys[0] = f->site_key;
    f->details = json_array();
    for (int i = 1; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "site-%d", i + 1);
        f->site_keys[i] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        X509 *x = make_cert(f->site_keys[i], name, f->ca, f->ca_key);
        write_cert(x, ft_path(f->receipts, strcat(name, ".pem")));
        X509_free(x);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ft_rmtree(f->dir);
    EVP_PKEY_free(f->ca_key);
    EVP_PKEY_free(f->audit_key);
    EVP_PKEY_free(f->site_key);
    EVP_PKEY_free(f->other_key);
    json_decref(f->details);
    EVP_PKEY_free(f->site_keys[1]);
    EVP_PKEY_free(f->site_keys[2]);
    X509_free(f->ca);
    X509_free(f->audit_cert);
    X509_free(f->site_cert);
    free(f->audit_pem);
    free(f);
    return 0;
}

static const char *MODEL0 = "aaaa000000000000000000000000000000000000000000000000000000000000";
static const char *MODEL1 = "bbbb000000000000000000000000000000000000000000000000000000000000";
static const char *MODEL2 = "cccc000000000000000000000000000000000000000000000000000000000000";

static void append(ff_audit_log *log, const char *event, json_t *data)
{
    assert_int_equal(ff_audit_append(log, event, data), FF_OK);
    json_decref(data);
}

static const char *SITES[3] = {"site-1", "site-2", "site-3"};
static const char *UPDATE = "dddd000000000000000000000000000000000000000000000000000000000000";

/* The commitment of site i (0-based) to its update of round r under model, into the log;
 * hex gets the commitment. */
static void append_commitment(fixture *f, ff_audit_log *log, int i, int r, const char *model,
                              char hex[FF_SHA256_HEX])
{
    char sig[FF_AUDIT_SIG_HEX];
    assert_int_equal(ff_audit_commitment(SITES[i], r, MODEL1, model, UPDATE, hex), FF_OK);
    assert_int_equal(ff_audit_commitment_sign(f->site_keys[i], SITES[i], r, MODEL1, model, hex, sig), FF_OK);
    append(log, "commitment", json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:s}", "round", r, "attempt",
                                        0, "site", SITES[i], "job_sha256", MODEL1, "model_sha256",
                                        model, "commitment", hex, "site_sig", sig));
}

/* The Merkle root (hex) of the commitments of the first n sites. */
static void root_of(char hexes[3][FF_SHA256_HEX], size_t n, char out[FF_SHA256_HEX])
{
    uint8_t leaves[3][FF_SHA256_BYTES], root[FF_SHA256_BYTES];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ff_audit_unhex(hexes[i], leaves[i], FF_SHA256_BYTES), FF_OK);
    assert_int_equal(ff_audit_merkle_root((const uint8_t(*)[FF_SHA256_BYTES])leaves, n, root), FF_OK);
    ff_hex(root, sizeof root, out);
}

/* Writes a two-round run. sites_round2 lets a test log a round below the minimum; secagg2 and
 * eps2 likewise break the policy. */
static void write_run(fixture *f, int sites_round2, int secagg2, double eps2)
{
    ff_audit_log *log;
    size_t torn;
    unlink(f->log_path);
    json_t *g = json_pack("{s:s, s:s}", "consortium_sha256", MODEL0, "job_sha256", MODEL1);
    assert_int_equal(ff_audit_open(&log, f->log_path, f->audit_key, f->audit_pem, g, &torn), FF_OK);
    json_decref(g);
    assert_int_equal(torn, 0);
    append(log, "run_start", json_pack("{s:s, s:i}", "config_sha256", MODEL0, "rounds", 2));
    const char *models[3] = {MODEL0, MODEL1, MODEL2};
    for (int r = 1; r <= 2; r++) {
        json_t *sel = json_pack("[s,s,s]", "site-1", "site-2", "site-3");
        append(log, "round_start", json_pack("{s:i, s:O}", "round", r, "selected", sel));
        append(log, "phase", json_pack("{s:i, s:s, s:O, s:[]}", "round", r, "phase", "train",
                                       "participants", sel, "dropped"));
        append(log, "secagg", json_pack("{s:i, s:i, s:i, s:i, s:i}", "round", r, "n", 3, "t", 2,
                                        "k", 2, "modulus_bits", 32));
        char hexes[3][FF_SHA256_HEX], root[FF_SHA256_HEX];
        int first = (int)ff_audit_next_seq(log);
        for (int i = 0; i < 3; i++)
            append_commitment(f, log, i, r, models[r - 1], hexes[i]);
        int one = r == 2 && sites_round2 < 3;
        json_t *agg = one ? json_pack("[s]", "site-1") : json_incref(sel);
        root_of(hexes, one ? 1 : 3, root);
        append(log, "aggregate", json_pack("{s:i, s:O, s:b, s:s, s:s, s:s, s:s, s:o}", "round", r,
                                           "sites", agg, "secure_aggregation", r == 2 ? secagg2 : 1,
                                           "model_sha256", models[r - 1], "aggregate_sha256", MODEL0,
                                           "new_model_sha256", models[r], "commitments_root", root,
                                           "commitment_seqs",
                                           one ? json_pack("[i]", first)
                                               : json_pack("[i,i,i]", first, first + 1, first + 2)));
        append(log, "privacy", json_pack("{s:i, s:f, s:f}", "round", r, "epsilon_record",
                                         r == 2 ? eps2 : 1.0, "epsilon_client", 0.5 * r));
        json_decref(agg);
        json_decref(sel);
    }
    append(log, "run_end", json_pack("{s:i, s:s}", "rounds", 2, "final_model_sha256", MODEL2));
    ff_audit_close(log);
}

static void verify(fixture *f, const ff_audit_policy *p, const char *receipts,
                   ff_audit_summary *s, ff_audit_findings *fd)
{
    ff_audit_verify_opts o = {.ca_pem_path = f->ca_path, .receipts_dir = receipts,
                              .receipt_certs = receipts, .policy = p};
    assert_int_equal(ff_audit_verify(f->log_path, &o, s, fd), FF_OK);
    json_array_append_new(f->details, s->detail); /* borrowed by s until teardown */
}

static int has_finding(const ff_audit_findings *fd, const char *rule, int64_t seq)
{
    for (size_t i = 0; i < fd->count; i++)
        if (strcmp(fd->items[i].rule, rule) == 0 && (seq < -1 || fd->items[i].seq == seq))
            return 1;
    for (size_t i = 0; i < fd->count; i++)
        print_message("  finding: seq %lld %s: %s\n", (long long)fd->items[i].seq,
                      fd->items[i].rule, fd->items[i].detail);
    return 0;
}

static void test_good_log_verifies(void **state)
{
    fixture *f = *state;
    write_run(f, 3, 1, 2.0);
    ff_audit_policy p = {.min_sites = 3, .require_secagg = 1, .min_threshold = 2,
                         .max_epsilon_record = 3};
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, &p, NULL, &s, &fd);
    if (fd.count)
        has_finding(&fd, "-", 0);
    assert_int_equal(fd.count, 0);
    assert_int_equal(s.entries, 19);
    assert_int_equal(s.rounds, 2);
    assert_int_equal(s.sites, 3);
    assert_true(s.ended);
    /* no accountant given: the logged 2.0 is never the headline */
    assert_true(s.dp_record);
    assert_false(s.eps_recomputed);
    assert_true(s.epsilon_record < 0);
    assert_int_equal(s.commitments, 6);
    assert_non_null(strstr(s.coordinator_subject, "coordinator-audit"));
    json_t *j = ff_audit_result_json(&s, &fd);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    ff_audit_findings_free(&fd);
}

/* Reads the log into lines for tampering. */
static char **read_lines(const char *path, size_t *n)
{
    char *buf;
    size_t len;
    assert_int_equal(ff_file_read_all(path, 1 << 24, &buf, &len), FF_OK);
    char **lines = calloc(64, sizeof *lines);
    *n = 0;
    for (char *tok = strtok(buf, "\n"); tok && *n < 64; tok = strtok(NULL, "\n"))
        lines[(*n)++] = strdup(tok);
    free(buf);
    return lines;
}

static void write_lines(const char *path, char **lines, size_t n)
{
    FILE *fp = fopen(path, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s\n", lines[i]);
    fclose(fp);
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static void test_edited_field(void **state)
{
    fixture *f = *state;
    write_run(f, 3, 1, 2.0);
    size_t n;
    char **l = read_lines(f->log_path, &n);
    char *p = strstr(l[8], "\"site-3\""); /* aggregate of round 1: claim another site */
    assert_non_null(p);
    p[6] = '9';
    write_lines(f->log_path, l, n);
    free_lines(l, n);
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, NULL, NULL, &s, &fd);
    assert_true(has_finding(&fd, "signature", 8));
    assert_true(has_finding(&fd, "chain", 9));
    assert_true(has_finding(&fd, "consistency.participants", 8));
    assert_true(has_finding(&fd, "commitment.missing", 8)); /* site-9 never signed anything */
    ff_audit_findings_free(&fd);
}

static void test_deleted_and_swapped_entries(void **state)
{
    fixture *f = *state;
    write_run(f, 3, 1, 2.0);
    size_t n;
    char **l = read_lines(f->log_path, &n);
    free(l[9]);
    memmove(&l[9], &l[10], (n - 10) * sizeof *l); /* delete round 1's privacy entry */
    write_lines(f->log_path, l, n - 1);
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, NULL, NULL, &s, &fd);
    assert_true(has_finding(&fd, "seq", 9));
    assert_true(has_finding(&fd, "chain", 9));
    ff_audit_findings_free(&fd);
    free_lines(l, n - 1);

    write_run(f, 3, 1, 2.0);
    unlink(f->log_path);
    write_run(f, 3, 1, 2.0);
    l = read_lines(f->log_path, &n);
    char *t = l[3];
    l[3] = l[4];
    l[4] = t;
    write_lines(f->log_path, l, n);
    free_lines(l, n);
    verify(f, NULL, NULL, &s, &fd);
    assert_true(has_finding(&fd, "seq", 3));
    assert_true(has_finding(&fd, "seq", 4));
    assert_true(has_finding(&fd, "chain", 3));
    ff_audit_findings_free(&fd);
}

static void test_truncated_file(void **state)
{
    fixture *f = *state;
    write_run(f, 3, 1, 2.0);
    char *buf;
    size_t len;
    assert_int_equal(ff_file_read_all(f->log_path, 1 << 24, &buf, &len), FF_OK);
    ft_write_file(f->log_path, buf, len - 40);
    free(buf);
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, NULL, NULL, &s, &fd);
    assert_true(has_finding(&fd, "truncated", 18));
    assert_true(has_finding(&fd, "incomplete", 18));
    ff_audit_findings_free(&fd);
}

static void test_resigned_with_other_key(void **state)
{
    fixture *f = *state;
    unlink(f->log_path);
    write_run(f, 3, 1, 2.0);
    /* An attacker rewrites the log from scratch with its own key and a self-made cert. */
    unlink(f->log_path);
    X509 *fake = make_cert(f->other_key, "coordinator-audit", NULL, f->other_key);
    char *pem = cert_pem(fake);
    ff_audit_log *log;
    size_t torn;
    assert_int_equal(ff_audit_open(&log, f->log_path, f->other_key, pem, NULL, &torn), FF_OK);
    append(log, "run_end", json_pack("{s:i}", "rounds", 0));
    ff_audit_close(log);
    free(pem);
    X509_free(fake);
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, NULL, NULL, &s, &fd);
    assert_true(has_finding(&fd, "certificate", 0));
    ff_audit_findings_free(&fd);

    /* One entry of a genuine log re-signed with another key. */
    unlink(f->log_path);
    write_run(f, 3, 1, 2.0);
    size_t n;
    char **l = read_lines(f->log_path, &n);
    char *sig = strstr(l[2], ",\"sig\":\"");
    *sig = '\0';
    char body[8192];
    snprintf(body, sizeof body, "%s}", l[2]);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t s64[64];
    size_t slen = 64;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, f->other_key), 1);
    assert_int_equal(EVP_DigestSign(ctx, s64, &slen, (const uint8_t *)body, strlen(body)), 1);
    EVP_MD_CTX_free(ctx);
    char hex[129];
    ff_hex(s64, 64, hex);
    char *nl = malloc(strlen(l[2]) + 200);
    sprintf(nl, "%s,\"sig\":\"%s\"}", l[2], hex);
    free(l[2]);
    l[2] = nl;
    write_lines(f->log_path, l, n);
    free_lines(l, n);
    verify(f, NULL, NULL, &s, &fd);
    assert_true(has_finding(&fd, "signature", 2));
    ff_audit_findings_free(&fd);
}

static void test_policy_violations(void **state)
{
    fixture *f = *state;
    unlink(f->log_path);
    write_run(f, 1, 0, 9.0);
    ff_audit_policy p = {.min_sites = 3, .require_secagg = 1, .min_threshold = 3,
                         .max_epsilon_record = 3};
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, &p, NULL, &s, &fd);
    assert_true(has_finding(&fd, "policy.min_sites", 16));
    assert_true(has_finding(&fd, "policy.secure_aggregation", 16));
    assert_true(has_finding(&fd, "policy.max_epsilon_record", 17));
    assert_true(has_finding(&fd, "policy.threshold", 4));
    assert_false(has_finding(&fd, "signature", -2));
    ff_audit_findings_free(&fd);
}

/* Site i's receipt of round r, written as the client names it (or as name). */
static void write_receipt_of(fixture *f, int i, int r, const char *model, EVP_PKEY *key,
                             const char *name)
{
    char hex[FF_SHA256_HEX], fname[64];
    assert_int_equal(ff_audit_commitment(SITES[i], r, MODEL1, model, UPDATE, hex), FF_OK);
    json_t *rc = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:{s:b}}", "site", SITES[i], "round", r,
                           "model_sha256", model, "update_sha256", UPDATE, "job_sha256", MODEL1,
                           "commitment", hex, "privacy", "enabled", 0);
    snprintf(fname, sizeof fname, "%s-round-%04d.json", SITES[i], r);
    assert_int_equal(ff_audit_receipt_write(ft_path(f->receipts, name ? name : fname), rc, key), FF_OK);
    json_decref(rc);
}

static void clear_receipts(fixture *f)
{
    for (int i = 0; i < 3; i++)
        for (int r = 1; r <= 2; r++) {
            char fname[64];
            snprintf(fname, sizeof fname, "%s-round-%04d.json", SITES[i], r);
            unlink(ft_path(f->receipts, fname));
        }
    unlink(ft_path(f->receipts, "extra.json"));
}

static void test_receipts(void **state)
{
    fixture *f = *state;
    unlink(f->log_path);
    write_run(f, 3, 1, 2.0);
    const char *models[3] = {MODEL0, MODEL1, MODEL2};
    for (int i = 0; i < 3; i++)
        for (int r = 1; r <= 2; r++)
            write_receipt_of(f, i, r, models[r - 1], f->site_keys[i], NULL);
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, NULL, f->receipts, &s, &fd);
    if (fd.count)
        has_finding(&fd, "-", 0);
    assert_int_equal(fd.count, 0);
    assert_int_equal(s.receipts_checked, 6);
    assert_int_equal(s.receipts_valid, 6);
    assert_int_equal(s.receipts_no_proof, 6);
    assert_int_equal(s.commitments_verified, 6);
    ff_audit_findings_free(&fd);

    /* deleted: site-2's receipt of round 2 (its commitment is entry 14) */
    unlink(ft_path(f->receipts, "site-2-round-0002.json"));
    verify(f, NULL, f->receipts, &s, &fd);
    assert_true(has_finding(&fd, "receipt.missing", 14));
    assert_non_null(strstr(fd.items[0].detail, "site-2"));
    assert_int_equal(s.receipts_missing, 1);
    assert_int_equal(fd.count, 1);
    ff_audit_findings_free(&fd);

    /* substituted: site-2's round-1 receipt copied in place of its round-2 one */
    char *buf;
    size_t len;
    assert_int_equal(ff_file_read_all(ft_path(f->receipts, "site-2-round-0001.json"), 1 << 20, &buf, &len), FF_OK);
    ft_write_file(ft_path(f->receipts, "site-2-round-0002.json"), buf, len);
    free(buf);
    verify(f, NULL, f->receipts, &s, &fd);
    assert_true(has_finding(&fd, "receipt.substituted", -2));
    assert_true(has_finding(&fd, "receipt.missing", 14));
    ff_audit_findings_free(&fd);

    /* another model than the log claims was sent: the coordinator lied (or the receipt is of
     * another update than the site committed to) */
    write_receipt_of(f, 1, 2, MODEL0, f->site_keys[1], NULL);
    /* forged: site-1's receipt signed with a key that is not site-1's */
    write_receipt_of(f, 0, 1, MODEL0, f->other_key, NULL);
    /* extra: a receipt for a round the log never aggregated */
    write_receipt_of(f, 0, 3, MODEL2, f->site_keys[0], "extra.json");
    verify(f, NULL, f->receipts, &s, &fd);
    assert_true(has_finding(&fd, "receipt.substituted", 14));
    assert_true(has_finding(&fd, "receipt.signature", 8));
    assert_true(has_finding(&fd, "receipt.missing", 5)); /* the forged one does not count */
    assert_true(has_finding(&fd, "receipt.extra", -1));
    assert_int_equal(s.receipts_invalid, 3);
    ff_audit_findings_free(&fd);

    /* an empty receipts folder: every aggregated site of every round is missing */
    clear_receipts(f);
    verify(f, NULL, f->receipts, &s, &fd);
    assert_int_equal(s.receipts_missing, 6);
    assert_int_equal(s.receipts_checked, 0);
    ff_audit_findings_free(&fd);
}

/* RFC 6962 trees: every leaf's path verifies for every size up to 9, a wrong index or leaf
 * does not; the two-leaf root is SHA-256(0x01 || SHA-256(0x00||a) || SHA-256(0x00||b)). */
static void test_merkle(void **state)
{
    (void)state;
    uint8_t leaves[9][FF_SHA256_BYTES], root[FF_SHA256_BYTES], path[64][FF_SHA256_BYTES];
    for (int i = 0; i < 9; i++)
        memset(leaves[i], i + 1, FF_SHA256_BYTES);
    for (size_t n = 1; n <= 9; n++) {
        assert_int_equal(ff_audit_merkle_root((const uint8_t(*)[FF_SHA256_BYTES])leaves, n, root), FF_OK);
        for (size_t i = 0; i < n; i++) {
            size_t len;
            assert_int_equal(ff_audit_merkle_proof((const uint8_t(*)[FF_SHA256_BYTES])leaves, n, i, path, &len), FF_OK);
            assert_int_equal(ff_audit_merkle_verify(leaves[i], i, n, (const uint8_t(*)[FF_SHA256_BYTES])path, len, root), FF_OK);
            if (n > 1)
                assert_int_not_equal(ff_audit_merkle_verify(leaves[(i + 1) % n], i, n,
                                                            (const uint8_t(*)[FF_SHA256_BYTES])path, len, root), FF_OK);
        }
    }
    uint8_t b[1 + 2 * FF_SHA256_BYTES], la[1 + FF_SHA256_BYTES] = {0}, want[FF_SHA256_BYTES];
    b[0] = 1;
    memcpy(la + 1, leaves[0], FF_SHA256_BYTES);
    ff_sha256(la, sizeof la, b + 1);
    memcpy(la + 1, leaves[1], FF_SHA256_BYTES);
    ff_sha256(la, sizeof la, b + 1 + FF_SHA256_BYTES);
    ff_sha256(b, sizeof b, want);
    assert_int_equal(ff_audit_merkle_root((const uint8_t(*)[FF_SHA256_BYTES])leaves, 2, root), FF_OK);
    assert_memory_equal(root, want, FF_SHA256_BYTES);
}

/* A round whose attempt missed its quorum: site-1's update was acknowledged (so it holds a
 * receipt) but nothing was aggregated. The log says so (phase participants, quorum_fail), so
 * the receipt is consistent; a receipt of a site the failed phase does not list is not. */
static void write_failed_round(fixture *f, const char *answered)
{
    ff_audit_log *log;
    size_t torn;
    unlink(f->log_path);
    json_t *g = json_pack("{s:s, s:s}", "consortium_sha256", MODEL0, "job_sha256", MODEL1);
    assert_int_equal(ff_audit_open(&log, f->log_path, f->audit_key, f->audit_pem, g, &torn), FF_OK);
    json_decref(g);
    append(log, "run_start", json_pack("{s:s, s:i}", "config_sha256", MODEL0, "rounds", 1));
    append(log, "round_start", json_pack("{s:i, s:[s,s,s]}", "round", 1, "selected", "site-1",
                                         "site-2", "site-3"));
    append(log, "phase", json_pack("{s:i, s:s, s:[s], s:[s,s]}", "round", 1, "phase", "train",
                                   "participants", answered, "dropped", "site-2", "site-3"));
    append(log, "quorum_fail", json_pack("{s:i, s:s, s:i, s:s}", "round", 1, "phase", "train",
                                         "answered", 1, "detail", "1 of 3, quorum is 2"));
    append(log, "run_end", json_pack("{s:i, s:s, s:s}", "rounds", 1, "final_model_sha256", MODEL0,
                                     "status", "quorum is 2"));
    ff_audit_close(log);
}

static void test_receipt_of_failed_attempt(void **state)
{
    fixture *f = *state;
    clear_receipts(f);
    write_receipt_of(f, 0, 1, MODEL0, f->site_key, "r1.json");
    ff_audit_summary s;
    ff_audit_findings fd;
    write_failed_round(f, "site-1");
    verify(f, NULL, f->receipts, &s, &fd);
    if (fd.count)
        has_finding(&fd, "-", 0);
    assert_int_equal(fd.count, 0);
    ff_audit_findings_free(&fd);
    write_failed_round(f, "site-3");
    verify(f, NULL, f->receipts, &s, &fd);
    assert_true(has_finding(&fd, "receipt.extra", -1));
    assert_int_equal(fd.count, 1);
    ff_audit_findings_free(&fd);
    unlink(ft_path(f->receipts, "r1.json"));
}

static void test_resume_after_torn_write(void **state)
{
    fixture *f = *state;
    unlink(f->log_path);
    ff_audit_log *log;
    size_t torn;
    assert_int_equal(ff_audit_open(&log, f->log_path, f->audit_key, f->audit_pem, NULL, &torn), FF_OK);
    append(log, "run_start", json_pack("{s:i}", "rounds", 1));
    ff_audit_close(log);
    FILE *fp = fopen(f->log_path, "a");
    fputs("{\"seq\":2,\"ts\":\"2026-", fp); /* a crash mid-write */
    fclose(fp);
    assert_int_equal(ff_audit_open(&log, f->log_path, f->audit_key, f->audit_pem, NULL, &torn), FF_OK);
    assert_int_equal(torn, 20);
    assert_int_equal(ff_audit_next_seq(log), 2);
    append(log, "restart", json_pack("{s:i}", "torn_bytes", (int)torn));
    append(log, "run_end", json_pack("{s:i}", "rounds", 0));
    ff_audit_close(log);
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, NULL, NULL, &s, &fd);
    assert_int_equal(fd.count, 0);
    assert_int_equal(s.entries, 4);
    ff_audit_findings_free(&fd);
    /* Another key may not continue this log. */
    assert_int_equal(ff_audit_open(&log, f->log_path, f->other_key, f->audit_pem, NULL, &torn),
                     FF_ECRYPTO);
    ft_assert_error_has("not signed by this audit key");
}

static void test_report_html(void **state)
{
    fixture *f = *state;
    unlink(f->log_path);
    write_run(f, 3, 1, 2.0);
    ff_audit_summary s;
    ff_audit_findings fd;
    verify(f, NULL, NULL, &s, &fd);
    const char *out = ft_path(f->dir, "report.html");
    assert_int_equal(ff_audit_report_html(f->log_path, &s, &fd, out), FF_OK);
    char *buf;
    size_t len;
    assert_int_equal(ff_file_read_all(out, 1 << 20, &buf, &len), FF_OK);
    assert_non_null(strstr(buf, "ALL CHECKS PASSED"));
    assert_non_null(strstr(buf, "<th>site-3</th>"));
    /* the logged ε (2.0) is never shown: nothing recomputed it */
    assert_non_null(strstr(buf, "NOT recomputed"));
    assert_null(strstr(buf, "http"));
    free(buf);
    ff_audit_findings_free(&fd);
}

/* A privacy entry carrying the client-level ledger: the auditor's own accountant must agree
 * with the logged epsilon, and catch a misreported one. */
static void test_epsilon_recomputed(void **state)
{
    fixture *f = *state;
    double orders[FF_PRIVACY_MAX_ORDERS];
    size_t no = ff_privacy_orders_dp_accounting(orders);
    ff_privacy_ledger *l;
    assert_int_equal(ff_privacy_ledger_new(&l, FF_PRIVACY_LEVEL_CLIENT, 10.0, 1e-5, orders, no,
                                           FF_PRIVACY_SERIES_DP_ACCOUNTING, FF_PRIVACY_CONV_IMPROVED),
                     FF_OK);
    ff_privacy_round r = {.round = 1, .level = FF_PRIVACY_LEVEL_CLIENT,
                          .mechanism = FF_PRIVACY_MECH_GAUSSIAN, .q = 1.0, .sigma = 1.2,
                          .steps = 1, .clip_norm = 1.0};
    assert_int_equal(ff_privacy_ledger_record(l, &r), FF_OK);
    double eps, order;
    assert_int_equal(ff_privacy_ledger_epsilon(l, &eps, &order), FF_OK);
    char *text;
    assert_int_equal(ff_privacy_ledger_to_json(l, &text), FF_OK);
    json_t *lj = json_loads(text, 0, NULL);
    assert_non_null(lj);
    free(text);
    ff_privacy_ledger_free(l);
    /* lie 0: honest; 1: the logged ε halved; 2: the entry's noise multiplier misreported */
    for (int lie = 0; lie < 3; lie++) {
        ff_audit_log *log;
        size_t torn;
        unlink(f->log_path);
        assert_int_equal(ff_audit_open(&log, f->log_path, f->audit_key, f->audit_pem, NULL, &torn), FF_OK);
        append(log, "round_start", json_pack("{s:i, s:[s]}", "round", 1, "selected", "site-1"));
        append(log, "privacy", json_pack("{s:i, s:n, s:f, s:n, s:O, s:f, s:f, s:f, s:i, s:f}", "round", 1,
                                         "epsilon_record", "epsilon_client",
                                         lie == 1 ? eps / 2 : eps, "record_ledger", "client_ledger",
                                         lj, "noise_multiplier", lie == 2 ? 2.4 : 1.2, "clip_norm",
                                         1.0, "q", 1.0, "steps", 1, "delta", 1e-5));
        append(log, "run_end", json_pack("{s:i}", "rounds", 1));
        ff_audit_close(log);
        ff_audit_verify_opts o = {.ca_pem_path = f->ca_path, .epsilon_fn = ff_audit_privacy_epsilon};
        ff_audit_summary s;
        ff_audit_findings fd;
        assert_int_equal(ff_audit_verify(f->log_path, &o, &s, &fd), FF_OK);
        json_array_append_new(f->details, s.detail);
        if (lie == 1)
            assert_true(has_finding(&fd, "privacy.epsilon", 2));
        else if (lie == 2)
            assert_true(has_finding(&fd, "privacy.noise_multiplier", 2));
        else
            assert_int_equal(fd.count, 0);
        /* the headline is the verifier's ε, never the logged one */
        assert_true(fabs(s.epsilon_client - eps) < 1e-9);
        assert_false(s.dp_record);
        ff_audit_findings_free(&fd);
    }
    json_decref(lj);
}

static void test_policy_file(void **state)
{
    fixture *f = *state;
    ff_audit_policy p;
    assert_int_equal(ff_audit_policy_load(FF_SOURCE_DIR "/configs/audit-policy.yaml", &p), FF_OK);
    assert_int_equal(p.min_sites, 3);
    assert_true(p.require_secagg);
    assert_true(p.max_epsilon_record == 8.0);
    const char *bad = ft_path(f->dir, "bad-policy.yaml");
    ft_write_file(bad, "min_sites: 3\nmax_epsilon: 2\n", 27);
    assert_int_equal(ff_audit_policy_load(bad, &p), FF_ECONFIG);
    ft_assert_error_has("bad-policy.yaml:2:1: max_epsilon: unknown key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_log_verifies),
        cmocka_unit_test(test_edited_field),
        cmocka_unit_test(test_deleted_and_swapped_entries),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_resigned_with_other_key),
        cmocka_unit_test(test_policy_violations),
        cmocka_unit_test(test_receipts),
        cmocka_unit_test(test_merkle),
        cmocka_unit_test(test_receipt_of_failed_attempt),
        cmocka_unit_test(test_resume_after_torn_write),
        cmocka_unit_test(test_report_html),
        cmocka_unit_test(test_policy_file),
        cmocka_unit_test(test_epsilon_recomputed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
