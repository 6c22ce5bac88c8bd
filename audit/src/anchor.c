/* External anchoring of the log's chain head with RFC 3161 time stamps (OpenSSL's TS API).
 * The coordinator writes a query (DER, what `openssl ts -query` writes) for its head entry
 * into <log>.anchors/<seq>.tsq at the end of the run and every N rounds; an operator sends it
 * to the consortium's time-stamp authority and stores the answer with `fedfuse audit anchor`
 * (<log>.anchors/<seq>.tsr). The verifier checks every response: status, the hash it stamps
 * against the entry, its time, and with the authority's CA its signature and chain. A log
 * that ends before an anchored entry was cut: tampering, not an unfinished run. */
#include "audit_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void anchor_path(const char *log_path, int64_t seq, const char *ext, char *out, size_t n)
{
    if (seq < 0)
        snprintf(out, n, "%s.anchors", log_path);
    else
        snprintf(out, n, "%s.anchors/%08lld.%s", log_path, (long long)seq, ext);
}

static TS_MSG_IMPRINT *imprint_of(const uint8_t hash[FF_SHA256_BYTES])
{
    TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
    X509_ALGOR *algo = X509_ALGOR_new();
    int ok = mi && algo && X509_ALGOR_set0(algo, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) == 1 &&
             TS_MSG_IMPRINT_set_algo(mi, algo) == 1 &&
             TS_MSG_IMPRINT_set_msg(mi, (unsigned char *)hash, FF_SHA256_BYTES) == 1;
    X509_ALGOR_free(algo);
    if (!ok) {
        TS_MSG_IMPRINT_free(mi);
        return NULL;
    }
    return mi;
}

int ff_audit_anchor_query(const char *log_path, int64_t seq, const uint8_t head[FF_SHA256_BYTES])
{
    TS_REQ *req = TS_REQ_new();
    TS_MSG_IMPRINT *mi = imprint_of(head);
    ASN1_INTEGER *nonce = ASN1_INTEGER_new();
    uint8_t rnd[8];
    BIGNUM *bn = NULL;
    int ok = req && mi && nonce && RAND_bytes(rnd, sizeof rnd) == 1 &&
             (bn = BN_bin2bn(rnd, sizeof rnd, NULL)) && BN_to_ASN1_INTEGER(bn, nonce) &&
             TS_REQ_set_version(req, 1) == 1 && TS_REQ_set_msg_imprint(req, mi) == 1 &&
             TS_REQ_set_nonce(req, nonce) == 1 && TS_REQ_set_cert_req(req, 1) == 1;
    unsigned char *der = NULL;
    int len = ok ? i2d_TS_REQ(req, &der) : -1;
    BN_free(bn);
    ASN1_INTEGER_free(nonce);
    TS_MSG_IMPRINT_free(mi);
    TS_REQ_free(req);
    ERR_clear_error();
    if (len <= 0) {
        OPENSSL_free(der);
        return ff_error(FF_ECRYPTO, "audit anchor: cannot build the time-stamp query");
    }
    char dir[1100], path[1100];
    anchor_path(log_path, -1, NULL, dir, sizeof dir);
    anchor_path(log_path, seq, "tsq", path, sizeof path);
    int rc = ff_mkdir_p(dir, 0755);
    if (rc == FF_OK)
        rc = ff_file_write_atomic(path, der, (size_t)len, 0644);
    OPENSSL_free(der);
    return rc;
}

/* Hex SHA-256 of every complete line of the log. */
static int line_hashes(const char *log_path, json_t **out)
{
    char *buf;
    size_t len;
    int rc = ff_file_read_all(log_path, (size_t)1 << 34, &buf, &len);
    if (rc != FF_OK)
        return rc;
    *out = json_array();
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(buf + start, '\n', len - start);
        if (!nl)
            break;
        uint8_t h[FF_SHA256_BYTES];
        char hex[FF_SHA256_HEX];
        ff_sha256(buf + start, (size_t)(nl - (buf + start)), h);
        ff_hex(h, sizeof h, hex);
        json_array_append_new(*out, json_string(hex));
        start = (size_t)(nl - buf) + 1;
    }
    free(buf);
    return FF_OK;
}

/* The hash a response stamps (hex), or "" when it is not a granted SHA-256 stamp. */
static void stamped_hash(TS_RESP *resp, char hex[FF_SHA256_HEX])
{
    hex[0] = '\0';
    TS_TST_INFO *tst = resp ? TS_RESP_get_tst_info(resp) : NULL;
    TS_MSG_IMPRINT *mi = tst ? TS_TST_INFO_get_msg_imprint(tst) : NULL;
    ASN1_OCTET_STRING *msg = mi ? TS_MSG_IMPRINT_get_msg(mi) : NULL;
    X509_ALGOR *alg = mi ? TS_MSG_IMPRINT_get_algo(mi) : NULL;
    const ASN1_OBJECT *obj = NULL;
    if (alg)
        X509_ALGOR_get0(&obj, NULL, NULL, alg);
    if (msg && obj && OBJ_obj2nid(obj) == NID_sha256 && ASN1_STRING_length(msg) == FF_SHA256_BYTES)
        ff_hex(ASN1_STRING_get0_data(msg), FF_SHA256_BYTES, hex);
}

static TS_RESP *read_resp(const char *path)
{
    char *buf;
    size_t len;
    if (ff_file_read_all(path, 1u << 20, &buf, &len) != FF_OK)
        return NULL;
    const unsigned char *p = (const unsigned char *)buf;
    TS_RESP *r = d2i_TS_RESP(NULL, &p, (long)len);
    free(buf);
    ERR_clear_error();
    return r;
}

int ff_audit_anchor_store(const char *log_path, const char *response_path, int64_t *seq_out)
{
    TS_RESP *resp = read_resp(response_path);
    if (!resp)
        return ff_error(FF_EFORMAT, "%s: not an RFC 3161 time-stamp response (DER)", response_path);
    char hex[FF_SHA256_HEX];
    stamped_hash(resp, hex);
    TS_RESP_free(resp);
    if (!hex[0])
        return ff_error(FF_EFORMAT, "%s: the response grants no SHA-256 time stamp", response_path);
    json_t *lines = NULL;
    int rc = line_hashes(log_path, &lines);
    if (rc != FF_OK)
        return rc;
    int64_t seq = -1;
    for (size_t i = 0; i < json_array_size(lines) && seq < 0; i++)
        if (strcmp(json_string_value(json_array_get(lines, i)), hex) == 0)
            seq = (int64_t)i;
    json_decref(lines);
    if (seq < 0)
        return ff_error(FF_EINVAL, "%s: the response stamps %.16s..., which is no entry of %s",
                        response_path, hex, log_path);
    char *buf;
    size_t len;
    rc = ff_file_read_all(response_path, 1u << 20, &buf, &len);
    char dir[1100], path[1100];
    anchor_path(log_path, -1, NULL, dir, sizeof dir);
    anchor_path(log_path, seq, "tsr", path, sizeof path);
    if (rc == FF_OK)
        rc = ff_mkdir_p(dir, 0755);
    if (rc == FF_OK)
        rc = ff_file_write_atomic(path, buf, len, 0644);
    free(buf);
    *seq_out = seq;
    return rc;
}

/* ASN1 generalized time -> "YYYY-MM-DDTHH:MM:SSZ"; 0 on failure. */
static int tsa_time(TS_RESP *resp, char *out, size_t n, time_t *t)
{
    const ASN1_GENERALIZEDTIME *gt = TS_TST_INFO_get_time(TS_RESP_get_tst_info(resp));
    struct tm tm;
    if (!gt || ASN1_TIME_to_tm(gt, &tm) != 1)
        return 0;
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    *t = timegm(&tm);
    return 1;
}

static int verify_resp(TS_RESP *resp, const char *tsq_path, X509_STORE *store,
                       const uint8_t hash[FF_SHA256_BYTES], char *why, size_t n)
{
    TS_VERIFY_CTX *ctx = NULL;
    char *buf = NULL;
    size_t len;
    if (ff_file_read_all(tsq_path, 1u << 16, &buf, &len) == FF_OK) {
        const unsigned char *p = (const unsigned char *)buf;
        TS_REQ *req = d2i_TS_REQ(NULL, &p, (long)len);
        if (req)
            ctx = TS_REQ_to_TS_VERIFY_CTX(req, NULL); /* version, imprint and nonce */
        TS_REQ_free(req);
        free(buf);
    }
    if (!ctx) {
        ctx = TS_VERIFY_CTX_new();
        unsigned char *imp = OPENSSL_malloc(FF_SHA256_BYTES);
        if (ctx && imp) {
            memcpy(imp, hash, FF_SHA256_BYTES);
            TS_VERIFY_CTX_set_imprint(ctx, imp, FF_SHA256_BYTES);
            TS_VERIFY_CTX_add_flags(ctx, TS_VFY_VERSION | TS_VFY_IMPRINT);
        } else {
            OPENSSL_free(imp);
        }
    }
    if (!ctx)
        return 0;
    TS_VERIFY_CTX_add_flags(ctx, TS_VFY_SIGNATURE);
    X509_STORE_up_ref(store);
    TS_VERIFY_CTX_set_store(ctx, store);
    int ok = TS_RESP_verify_response(ctx, resp) == 1;
    if (!ok) {
        unsigned long e = ERR_peek_last_error();
        snprintf(why, n, "%s", e ? ERR_reason_error_string(e) : "does not verify");
    }
    ERR_clear_error();
    TS_VERIFY_CTX_free(ctx);
    return ok;
}

static X509_STORE *load_store(const char *path)
{
    X509_STORE *st = X509_STORE_new();
    if (st && X509_STORE_load_file(st, path) != 1) {
        X509_STORE_free(st);
        st = NULL;
    }
    ERR_clear_error();
    return st;
}

/* "YYYY-MM-DDTHH:MM:SS(.mmm)Z" -> seconds; 0 when it is not such a time. */
static int parse_utc(const char *s, time_t *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *t = timegm(&tm);
    return 1;
}

/* An entry cannot be stamped before it was written: the authority's time may trail the
 * coordinator's clock by at most this much (clock skew). */
#define ANCHOR_SKEW_S 300

int au_check_anchors(const char *log_path, const ff_audit_verify_opts *opts, json_t *lines,
                     json_t *line_ts, ff_audit_summary *s, ff_audit_findings *f)
{
    char dir[1100];
    anchor_path(log_path, -1, NULL, dir, sizeof dir);
    X509_STORE *store = opts->tsa_ca_path ? load_store(opts->tsa_ca_path) : NULL;
    if (opts->tsa_ca_path && !store)
        au_add_finding(f, "anchor.authority", -1, "%s: cannot read the time-stamp authority's CA",
                       opts->tsa_ca_path);
    s->tsa_checked = store != NULL;
    DIR *d = opendir(dir);
    int cut = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l != 12 || strcmp(de->d_name + 8, ".tsr") != 0)
            continue;
        char *end;
        long long seq = strtoll(de->d_name, &end, 10);
        if (end != de->d_name + 8 || seq < 0)
            continue;
        char path[1400], tsq[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        snprintf(tsq, sizeof tsq, "%s/%08lld.tsq", dir, seq);
        s->anchors++;
        TS_RESP *resp = read_resp(path);
        char hex[FF_SHA256_HEX], when[40] = "", why[160] = "";
        time_t t = 0;
        if (resp)
            stamped_hash(resp, hex);
        if (!resp || !hex[0] || !tsa_time(resp, when, sizeof when, &t)) {
            au_add_finding(f, "anchor.response", seq, "%s: not a granted SHA-256 time stamp", path);
            TS_RESP_free(resp);
            continue;
        }
        const char *line = json_string_value(json_array_get(lines, (size_t)seq));
        if (!line) {
            au_add_finding(f, "anchor.truncated", seq, "tampering: the time-stamp authority "
                           "anchored entry %lld at %s, but the log ends at entry %lld: entries "
                           "were cut off after an anchored head", seq, when,
                           (long long)json_array_size(lines) - 1);
            cut = 1;
        } else if (strcmp(line, hex) != 0) {
            au_add_finding(f, "anchor.mismatch", seq, "the time-stamp of %s stamps %.12s..., entry "
                           "%lld hashes to %.12s...: the entry was changed after it was anchored",
                           when, hex, seq, line);
        } else {
            uint8_t h[FF_SHA256_BYTES];
            au_unhex(hex, h, sizeof h);
            const char *logged = json_string_value(json_array_get(line_ts, (size_t)seq));
            time_t lt;
            if (parse_utc(logged, &lt) && t + ANCHOR_SKEW_S < lt)
                au_add_finding(f, "anchor.time", seq, "the authority stamped entry %lld at %s, "
                               "before the time the entry says it was written (%s): the entry "
                               "or the coordinator's clock is wrong", seq, when, logged);
            if (store && !verify_resp(resp, tsq, store, h, why, sizeof why))
                au_add_finding(f, "anchor.signature", seq, "%s: the time stamp does not verify "
                               "with the authority's CA: %s", path, why);
            else if (store)
                s->anchors_verified++;
            if (seq > s->anchored_seq) {
                s->anchored_seq = seq;
                ff_strlcpy(s->anchor_time, when, sizeof s->anchor_time);
            }
        }
        TS_RESP_free(resp);
    }
    if (d)
        closedir(d);
    X509_STORE_free(store);
    return cut;
}
