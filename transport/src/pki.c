/* Consortium PKI on OpenSSL 3: an Ed25519 CA, site/coordinator/audit certificates signed by
 * it, a CRL, and the checks the coordinator applies to a peer certificate. Ed25519 everywhere
 * so one site key both authenticates TLS and signs secure-aggregation messages. */
#include "transport_internal.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PEM_MAX (1u << 20)

/* Appends OpenSSL's queued error text to msg so messages say what OpenSSL disliked. */
static int ssl_error(int status, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return ff_error(status, "%s%s%s", what, e ? ": " : "", buf);
}

static int write_pem(const char *path, unsigned mode, int (*emit)(BIO *, const void *),
                     const void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    int rc = FF_OK;
    if (!b || !emit(b, obj)) {
        rc = ssl_error(FF_ECRYPTO, path);
        goto out;
    }
    long n = BIO_get_mem_data(b, &data);
    rc = ff_file_write_atomic(path, data, (size_t)n, mode);
out:
    BIO_free(b);
    return rc;
}

static int emit_key(BIO *b, const void *k)
{
    return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}
static int emit_cert(BIO *b, const void *c) { return PEM_write_bio_X509(b, (X509 *)c); }
static int emit_crl(BIO *b, const void *c) { return PEM_write_bio_X509_CRL(b, (X509_CRL *)c); }
static int emit_req(BIO *b, const void *r) { return PEM_write_bio_X509_REQ(b, (X509_REQ *)r); }

static BIO *open_pem(const char *path, char **buf)
{
    size_t len = 0;
    *buf = NULL;
    if (ff_file_read_all(path, PEM_MAX, buf, &len) != FF_OK)
        return NULL;
    return BIO_new_mem_buf(*buf, (int)len);
}

int ff_pki_load_key(const char *path, EVP_PKEY **out)
{
    char *buf;
    *out = NULL;
    BIO *b = open_pem(path, &buf);
    if (!b)
        return ff_error_prefix(FF_EIO, "loading key: ");
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (buf)
        ff_secure_zero(buf, strlen(buf));
    free(buf);
    if (!k)
        return ssl_error(FF_EFORMAT, path);
    if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return ff_error(FF_ECRYPTO, "%s: not an Ed25519 key", path);
    }
    *out = k;
    return FF_OK;
}

int ff_pki_load_cert(const char *path, X509 **out)
{
    char *buf;
    *out = NULL;
    BIO *b = open_pem(path, &buf);
    if (!b)
        return ff_error_prefix(FF_EIO, "loading certificate: ");
    X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    free(buf);
    if (!c)
        return ssl_error(FF_EFORMAT, path);
    *out = c;
    return FF_OK;
}

int ff_pki_cert_from_pem(const char *pem, size_t len, X509 **out)
{
    *out = NULL;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!c)
        return ssl_error(FF_EFORMAT, "peer certificate");
    *out = c;
    return FF_OK;
}

int ff_pki_load_cert_pubkey(const char *path, EVP_PKEY **out)
{
    X509 *c;
    *out = NULL;
    int rc = ff_pki_load_cert(path, &c);
    if (rc != FF_OK)
        return rc;
    EVP_PKEY *k = X509_get_pubkey(c);
    X509_free(c);
    if (!k || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return ff_error(FF_ECRYPTO, "%s: certificate key is not Ed25519", path);
    }
    *out = k;
    return FF_OK;
}

int ff_pki_load_site_pubkey(const char *path, const char *site, EVP_PKEY **out)
{
    X509 *c;
    *out = NULL;
    int rc = ff_pki_load_cert(path, &c);
    if (rc == FF_OK && (rc = ff_pki_check_role(c, FF_PKI_SITE, site)) != FF_OK)
        ff_error_prefix(rc, "%s: ", path);
    X509_free(c);
    return rc == FF_OK ? ff_pki_load_cert_pubkey(path, out) : rc;
}

int ff_pki_cert_cn(X509 *cert, char *cn, size_t n)
{
    X509_NAME *nm = X509_get_subject_name(cert);
    int len = X509_NAME_get_text_by_NID(nm, NID_commonName, cn, (int)n);
    if (len <= 0 || (size_t)len >= n)
        return ff_error(FF_EFORMAT, "certificate subject has no usable common name");
    return FF_OK;
}

/* Random positive 127-bit serial: unique without a CA database. */
static int set_serial(X509 *x)
{
    uint8_t raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return ssl_error(FF_ECRYPTO, "serial");
    raw[0] &= 0x7f;
    raw[0] |= 0x01;
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? FF_OK : ssl_error(FF_ECRYPTO, "serial");
}

static int add_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = e && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? FF_OK : ssl_error(FF_ECRYPTO, value);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    /* "ca" would overwrite the CA certificate copied next to the site's files. */
    if (n == 0 || n > FF_SITE_NAME_MAX - 1 || s[0] == '.' || s[0] == '-' ||
        strcmp(s, "ca") == 0 || strcmp(s, "crl") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

/* Builds the subject/validity/key part of a certificate; the caller adds extensions and signs.
 * Validity starts FF_PKI_SKEW_S before from_s: a certificate issued now must already be valid
 * for a peer whose clock is a little behind the CA's (without it, a node 1 s behind refuses a
 * freshly issued coordinator certificate as "not yet valid"). notAfter is not moved. */
static int cert_skeleton(X509 *x, EVP_PKEY *key, const char *cn, const char *org,
                         const char *ou, long from_s, long days)
{
    X509_NAME *nm = X509_get_subject_name(x);
    if (X509_set_version(x, 2) != 1 || set_serial(x) != FF_OK ||
        !X509_gmtime_adj(X509_getm_notBefore(x), from_s - FF_PKI_SKEW_S) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), from_s + days * 86400L) ||
        X509_set_pubkey(x, key) != 1 ||
        !X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1,
                                    0) ||
        (ou && !X509_NAME_add_entry_by_txt(nm, "OU", MBSTRING_UTF8, (const unsigned char *)ou,
                                           -1, -1, 0)) ||
        !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0))
        return ssl_error(FF_ECRYPTO, "building certificate");
    return FF_OK;
}

static int new_crl(X509 *ca, EVP_PKEY *cakey, X509_CRL *old, const X509 *revoke,
                   X509_CRL **out);

int ff_pki_init(const char *out_dir, const char *consortium, int days)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509_CRL *crl = NULL;
    char path[4096];
    int rc;
    if (!consortium || !valid_name(consortium))
        return ff_error(FF_EINVAL, "consortium name '%s': use letters, digits, '-', '.', '_'",
                        consortium ? consortium : "");
    if (days < 1 || days > 36500)
        return ff_error(FF_ERANGE, "--days %d: must be 1..36500", days);
    snprintf(path, sizeof path, "%s/ca.key", out_dir);
    if (ff_path_exists(path))
        return ff_error(FF_EINVAL, "%s exists: refusing to overwrite a CA key", path);
    if ((rc = ff_mkdir_p(out_dir, 0700)) != FF_OK)
        return rc;
    if (!(key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) || !(x = X509_new())) {
        rc = ssl_error(FF_ECRYPTO, "CA key generation");
        goto out;
    }
    char cn[FF_SITE_NAME_MAX + 8];
    snprintf(cn, sizeof cn, "%s CA", consortium);
    if ((rc = cert_skeleton(x, key, cn, consortium, "ca", 0, days)) != FF_OK)
        goto out;
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if ((rc = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) != FF_OK ||
        (rc = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign")) != FF_OK ||
        (rc = add_ext(x, x, NID_subject_key_identifier, "hash")) != FF_OK)
        goto out;
    if (X509_sign(x, key, NULL) <= 0) {
        rc = ssl_error(FF_ECRYPTO, "signing CA certificate");
        goto out;
    }
    if ((rc = new_crl(x, key, NULL, NULL, &crl)) != FF_OK)
        goto out;
    if ((rc = write_pem(path, 0600, emit_key, key)) != FF_OK)
        goto out;
    snprintf(path, sizeof path, "%s/ca.crt", out_dir);
    if ((rc = write_pem(path, 0644, emit_cert, x)) != FF_OK)
        goto out;
    snprintf(path, sizeof path, "%s/crl.pem", out_dir);
    rc = write_pem(path, 0644, emit_crl, crl);
out:
    X509_CRL_free(crl);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static int load_ca(const char *ca_dir, X509 **ca, EVP_PKEY **cakey)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ca.crt", ca_dir);
    int rc = ff_pki_load_cert(path, ca);
    if (rc != FF_OK)
        return rc;
    snprintf(path, sizeof path, "%s/ca.key", ca_dir);
    if ((rc = ff_pki_load_key(path, cakey)) != FF_OK) {
        X509_free(*ca);
        *ca = NULL;
    }
    return rc;
}

const char *ff_pki_role_name(ff_pki_role r)
{
    switch (r) {
    case FF_PKI_SITE: return "site";
    case FF_PKI_COORDINATOR: return "coordinator";
    case FF_PKI_AUDIT: return "audit";
    case FF_PKI_OPERATOR: return "operator";
    case FF_PKI_NROLES: break;
    }
    return "?";
}

int ff_pki_role_parse(const char *s, ff_pki_role *out)
{
    for (int r = 0; r < FF_PKI_NROLES; r++)
        if (strcmp(s, ff_pki_role_name((ff_pki_role)r)) == 0) {
            *out = (ff_pki_role)r;
            return FF_OK;
        }
    return ff_error(FF_EINVAL, "--role '%s': expected site, coordinator, operator or audit", s);
}

/* The role OID of r: FF_PKI_ROLE_OID_ARC.<1 site | 2 coordinator | 3 operator | 4 audit>. */
static void role_oid(ff_pki_role r, char *buf, size_t n)
{
    static const int arc[FF_PKI_NROLES] = {[FF_PKI_SITE] = 1, [FF_PKI_COORDINATOR] = 2,
                                           [FF_PKI_OPERATOR] = 3, [FF_PKI_AUDIT] = 4};
    snprintf(buf, n, "%s.%d", FF_PKI_ROLE_OID_ARC, arc[r]);
}

/* The certificatePolicies extension holding only the role's OID. */
static int add_role(X509 *x, ff_pki_role r)
{
    char oid[160];
    role_oid(r, oid, sizeof oid);
    CERTIFICATEPOLICIES *pols = sk_POLICYINFO_new_null();
    POLICYINFO *pi = POLICYINFO_new();
    int ok = pols && pi && (pi->policyid = OBJ_txt2obj(oid, 1)) != NULL;
    if (ok && (ok = sk_POLICYINFO_push(pols, pi) > 0))
        pi = NULL;
    ok = ok && X509_add1_ext_i2d(x, NID_certificate_policies, pols, 0, X509V3_ADD_DEFAULT) == 1;
    POLICYINFO_free(pi);
    CERTIFICATEPOLICIES_free(pols);
    return ok ? FF_OK : ssl_error(FF_ECRYPTO, "certificate role policy");
}

int ff_pki_cert_role(X509 *cert, ff_pki_role *out)
{
    int crit = 0, found = 0;
    CERTIFICATEPOLICIES *pol = X509_get_ext_d2i(cert, NID_certificate_policies, &crit, NULL);
    for (int i = 0; pol && i < sk_POLICYINFO_num(pol); i++) {
        char txt[128], want[128];
        const POLICYINFO *pi = sk_POLICYINFO_value(pol, i);
        if (OBJ_obj2txt(txt, sizeof txt, pi->policyid, 1) <= 0)
            continue;
        for (int r = 0; r < FF_PKI_NROLES; r++) {
            role_oid((ff_pki_role)r, want, sizeof want);
            if (strcmp(txt, want) == 0) {
                found++;
                *out = (ff_pki_role)r;
            }
        }
    }
    CERTIFICATEPOLICIES_free(pol);
    ERR_clear_error();
    if (found == 1)
        return FF_OK;
    if (found > 1)
        return ff_error(FF_EPOLICY, "certificate carries %d fedfuse roles (exactly one allowed)",
                        found);
    return ff_error(FF_EPOLICY, "certificate carries no fedfuse role (certificate policy "
                    "%s.N): re-issue it with `fedfuse pki issue|sign --role`",
                    FF_PKI_ROLE_OID_ARC);
}

int ff_pki_check_role(X509 *cert, ff_pki_role want, const char *want_name)
{
    ff_pki_role r;
    char cn[FF_SITE_NAME_MAX] = "?";
    if (ff_pki_cert_cn(cert, cn, sizeof cn) != FF_OK)
        return FF_EFORMAT;
    if (ff_pki_cert_role(cert, &r) != FF_OK)
        return ff_error_prefix(FF_EPOLICY, "'%s': ", cn);
    if (r != want)
        return ff_error(FF_EPOLICY, "'%s' holds a certificate of role %s, not %s", cn,
                        ff_pki_role_name(r), ff_pki_role_name(want));
    if (want_name && strcmp(cn, want_name) != 0)
        return ff_error(FF_EPOLICY, "certificate of role %s is named '%s', expected '%s'",
                        ff_pki_role_name(r), cn, want_name);
    return FF_OK;
}

/* SAN list: the name itself as DNS (so gRPC's peer identity equals the CN), plus extras; a
 * coordinator also gets localhost/127.0.0.1 when no extra names are given, for local runs. */
static int san_value(const ff_pki_issue_opts *o, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "DNS:%s", o->name);
    for (int i = 0; i < o->nsans; i++) {
        const char *s = o->sans[i];
        int ip = strspn(s, "0123456789.:") == strlen(s) && strchr(s, '.') != NULL;
        if (strchr(s, ',') || strlen(s) > 253)
            return ff_error(FF_EINVAL, "--san '%s': not a host name or address", s);
        used += (size_t)snprintf(buf + used, n - FF_MIN(used, n), ",%s:%s", ip ? "IP" : "DNS", s);
    }
    if (o->role == FF_PKI_COORDINATOR && o->nsans == 0)
        used += (size_t)snprintf(buf + used, n - FF_MIN(used, n), ",DNS:localhost,IP:127.0.0.1");
    return used < n ? FF_OK : ff_error(FF_ERANGE, "too many subject alternative names");
}

/* Checks what a certificate request for o can be signed with (name, days, names). */
static int check_issue_opts(const ff_pki_issue_opts *o, char *san, size_t san_len)
{
    if (!o->name || !valid_name(o->name))
        return ff_error(FF_EINVAL, "--site '%s': use 1-%d letters, digits, '-', '.', '_'",
                        o->name ? o->name : "", FF_SITE_NAME_MAX - 1);
    int days = o->days ? o->days : (o->role == FF_PKI_COORDINATOR ? 365 : 730);
    if (days < 1 || days > 3650)
        return ff_error(FF_ERANGE, "--days %d: must be 1..3650", days);
    if (o->backdate_days < 0 || o->backdate_days > 36500)
        return ff_error(FF_ERANGE, "backdate %d days: must be 0..36500", o->backdate_days);
    return san_value(o, san, san_len);
}

/* Builds and signs the certificate of pub for o (options already checked), then writes
 * OUT/NAME.crt and the CA certificate as OUT/ca.crt. The one place that decides a
 * certificate's subject, lifetime and key usages, for `pki issue` and `pki sign` alike. */
static int sign_cert(X509 *ca, EVP_PKEY *cakey, EVP_PKEY *pub, const ff_pki_issue_opts *o,
                     const char *san, const char *out_dir)
{
    char path[4096], org[FF_SITE_NAME_MAX];
    X509 *x = X509_new();
    int rc;
    if (!x)
        return ssl_error(FF_ENOMEM, "certificate");
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_organizationName, org,
                                  sizeof org) <= 0)
        snprintf(org, sizeof org, "fedfuse");
    int days = o->days ? o->days : (o->role == FF_PKI_COORDINATOR ? 365 : 730);
    long from = -(long)o->backdate_days * 86400L;
    if ((rc = cert_skeleton(x, pub, o->name, org, ff_pki_role_name(o->role), from, days)) != FF_OK)
        goto out;
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    const char *eku = o->role == FF_PKI_COORDINATOR ? "serverAuth,clientAuth" : "clientAuth";
    if ((rc = add_ext(ca, x, NID_basic_constraints, "critical,CA:FALSE")) != FF_OK ||
        (rc = add_ext(ca, x, NID_key_usage, "critical,digitalSignature")) != FF_OK ||
        (rc = add_ext(ca, x, NID_ext_key_usage, eku)) != FF_OK ||
        (rc = add_ext(ca, x, NID_subject_key_identifier, "hash")) != FF_OK ||
        (rc = add_ext(ca, x, NID_authority_key_identifier, "keyid:always")) != FF_OK ||
        (rc = add_ext(ca, x, NID_subject_alt_name, san)) != FF_OK ||
        (rc = add_role(x, o->role)) != FF_OK)
        goto out;
    if (X509_sign(x, cakey, NULL) <= 0) {
        rc = ssl_error(FF_ECRYPTO, "signing certificate");
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s.crt", out_dir, o->name);
    if ((rc = write_pem(path, 0644, emit_cert, x)) != FF_OK)
        goto out;
    /* The site needs the CA certificate to check the coordinator: ship it alongside. */
    snprintf(path, sizeof path, "%s/ca.crt", out_dir);
    rc = write_pem(path, 0644, emit_cert, ca);
out:
    X509_free(x);
    return rc;
}

int ff_pki_issue(const char *ca_dir, const char *out_dir, const ff_pki_issue_opts *o)
{
    X509 *ca = NULL;
    EVP_PKEY *cakey = NULL, *key = NULL;
    char path[4096], san[4096];
    int rc;
    if ((rc = check_issue_opts(o, san, sizeof san)) != FF_OK)
        return rc;
    if ((rc = load_ca(ca_dir, &ca, &cakey)) != FF_OK)
        return rc;
    if ((rc = ff_mkdir_p(out_dir, 0700)) != FF_OK)
        goto out;
    if (!(key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"))) {
        rc = ssl_error(FF_ECRYPTO, "key generation");
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s.key", out_dir, o->name);
    if ((rc = write_pem(path, 0600, emit_key, key)) != FF_OK)
        goto out;
    rc = sign_cert(ca, cakey, key, o, san, out_dir);
out:
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(cakey);
    return rc;
}

/* ---- certificate requests -------------------------------------------------------------- */

int ff_pki_csr(const char *out_dir, const char *name)
{
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    char path[4096];
    int rc;
    if (!name || !valid_name(name))
        return ff_error(FF_EINVAL, "--site '%s': use 1-%d letters, digits, '-', '.', '_'",
                        name ? name : "", FF_SITE_NAME_MAX - 1);
    snprintf(path, sizeof path, "%s/%s.key", out_dir, name);
    if (ff_path_exists(path))
        return ff_error(FF_EINVAL, "%s exists: refusing to overwrite a site key", path);
    if ((rc = ff_mkdir_p(out_dir, 0700)) != FF_OK)
        return rc;
    if (!(key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) || !(req = X509_REQ_new())) {
        rc = ssl_error(FF_ECRYPTO, "key generation");
        goto out;
    }
    /* Only the CN: the CA writes the organisation, role and extensions itself. */
    X509_NAME *nm = X509_REQ_get_subject_name(req);
    if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
        !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)name, -1,
                                    -1, 0) ||
        X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, NULL) <= 0) {
        rc = ssl_error(FF_ECRYPTO, "building certificate request");
        goto out;
    }
    if ((rc = write_pem(path, 0600, emit_key, key)) != FF_OK)
        goto out;
    snprintf(path, sizeof path, "%s/%s.csr", out_dir, name);
    rc = write_pem(path, 0644, emit_req, req);
out:
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

/* The CN of a request whose subject is exactly one CN holding a valid site name; the CA
 * refuses anything else rather than guess which part names the site. */
static int csr_site_name(X509_REQ *req, const char *path, char *cn, size_t n)
{
    X509_NAME *nm = X509_REQ_get_subject_name(req);
    if (!nm || X509_NAME_entry_count(nm) != 1 ||
        OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(nm, 0))) != NID_commonName)
        return ff_error(FF_EINVAL, "%s: subject must be exactly CN=<site name> (the CA sets "
                        "the organisation and role)", path);
    unsigned char *u = NULL;
    int len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, 0)));
    int ok = len > 0 && (size_t)len < n && memchr(u, 0, (size_t)len) == NULL;
    if (ok) {
        memcpy(cn, u, (size_t)len);
        cn[len] = 0;
        ok = valid_name(cn);
    }
    OPENSSL_free(u);
    ERR_clear_error();
    if (!ok)
        return ff_error(FF_EINVAL, "%s: subject CN is not a site name (1-%d letters, digits, "
                        "'-', '.', '_')", path, FF_SITE_NAME_MAX - 1);
    return FF_OK;
}

int ff_pki_sign_csr(const char *ca_dir, const char *csr_path, const char *out_dir,
                    const ff_pki_issue_opts *o, char *name, size_t name_len)
{
    X509 *ca = NULL;
    EVP_PKEY *cakey = NULL;
    X509_REQ *req = NULL;
    char *buf = NULL, san[4096], cn[FF_SITE_NAME_MAX];
    int rc;
    BIO *b = open_pem(csr_path, &buf);
    if (!b) {
        free(buf);
        return ff_error_prefix(FF_EIO, "loading certificate request: ");
    }
    req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    free(buf);
    if (!req)
        return ssl_error(FF_EFORMAT, csr_path);
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (X509_REQ_get_version(req) != X509_REQ_VERSION_1)
        rc = ff_error(FF_EFORMAT, "%s: request version %ld, expected 1", csr_path,
                      X509_REQ_get_version(req) + 1);
    else if (!pub || EVP_PKEY_get_id(pub) != EVP_PKEY_ED25519)
        rc = ff_error(FF_EINVAL, "%s: key is not Ed25519 (the consortium signs secure "
                      "aggregation messages with site keys; use `fedfuse pki csr`)", csr_path);
    else if (X509_REQ_verify(req, pub) != 1)
        rc = ff_error(FF_EINVAL, "%s: signature does not verify: the request was altered or "
                      "not signed by the key it carries", csr_path);
    else
        rc = csr_site_name(req, csr_path, cn, sizeof cn);
    ERR_clear_error();
    if (rc != FF_OK)
        goto out;
    if (o->name && strcmp(o->name, cn) != 0) {
        rc = ff_error(FF_EINVAL, "%s: request is for '%s', not --site '%s'", csr_path, cn,
                      o->name);
        goto out;
    }
    ff_pki_issue_opts so = *o;
    so.name = cn;
    if ((rc = check_issue_opts(&so, san, sizeof san)) != FF_OK ||
        (rc = load_ca(ca_dir, &ca, &cakey)) != FF_OK ||
        (rc = ff_mkdir_p(out_dir, 0700)) != FF_OK)
        goto out;
    if ((rc = sign_cert(ca, cakey, pub, &so, san, out_dir)) == FF_OK && name)
        snprintf(name, name_len, "%s", cn);
out:
    X509_REQ_free(req);
    X509_free(ca);
    EVP_PKEY_free(cakey);
    return rc;
}

/* A fresh CRL: old's entries (if any) plus revoke (if any), number = old + 1, next update in
 * 30 days, signed with the CA key. */
static int new_crl(X509 *ca, EVP_PKEY *cakey, X509_CRL *old, const X509 *revoke,
                   X509_CRL **out)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = ASN1_TIME_new(), *next = ASN1_TIME_new();
    ASN1_INTEGER *num = NULL;
    long number = 1;
    int rc = FF_OK;
    *out = NULL;
    if (!crl || !now || !next || X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 ||
        !X509_gmtime_adj(now, 0) || !X509_gmtime_adj(next, 30L * 86400L) ||
        X509_CRL_set1_lastUpdate(crl, now) != 1 || X509_CRL_set1_nextUpdate(crl, next) != 1)
        goto fail;
    if (old) {
        STACK_OF(X509_REVOKED) *rs = X509_CRL_get_REVOKED(old);
        for (int i = 0; i < sk_X509_REVOKED_num(rs); i++) {
            X509_REVOKED *r = X509_REVOKED_dup(sk_X509_REVOKED_value(rs, i));
            if (!r || X509_CRL_add0_revoked(crl, r) != 1)
                goto fail;
        }
        ASN1_INTEGER *on = X509_CRL_get_ext_d2i(old, NID_crl_number, NULL, NULL);
        if (on) {
            number = ASN1_INTEGER_get(on) + 1;
            ASN1_INTEGER_free(on);
        }
    }
    if (revoke) {
        X509_REVOKED *r = X509_REVOKED_new();
        if (!r || X509_REVOKED_set_serialNumber(r, (ASN1_INTEGER *)X509_get0_serialNumber(revoke)) != 1 ||
            X509_REVOKED_set_revocationDate(r, now) != 1 || X509_CRL_add0_revoked(crl, r) != 1) {
            X509_REVOKED_free(r);
            goto fail;
        }
    }
    num = ASN1_INTEGER_new();
    if (!num || ASN1_INTEGER_set(num, number) != 1 ||
        X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
        goto fail;
    X509_CRL_sort(crl);
    if (X509_CRL_sign(crl, cakey, NULL) <= 0)
        goto fail;
    *out = crl;
    crl = NULL;
    goto out;
fail:
    rc = ssl_error(FF_ECRYPTO, "building revocation list");
out:
    X509_CRL_free(crl);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    ASN1_INTEGER_free(num);
    return rc;
}

/* Takes crl (NULL = it did not parse): *out when ca (may be NULL) signed it. */
static int crl_signed_by(X509_CRL *crl, X509 *ca, const char *name, X509_CRL **out)
{
    if (!crl)
        return ssl_error(FF_EFORMAT, name);
    EVP_PKEY *pk = ca ? X509_get0_pubkey(ca) : NULL;
    if (ca && (!pk || X509_CRL_verify(crl, pk) != 1)) {
        X509_CRL_free(crl);
        ERR_clear_error();
        return ff_error(FF_ECRYPTO, "%s: revocation list not signed by the consortium CA", name);
    }
    *out = crl;
    return FF_OK;
}

int ff_pki_load_crl(const char *path, X509 *ca, X509_CRL **out)
{
    char *buf;
    *out = NULL;
    BIO *b = open_pem(path, &buf);
    if (!b)
        return ff_error_prefix(FF_EIO, "loading revocation list: ");
    X509_CRL *crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
    BIO_free(b);
    free(buf);
    return crl_signed_by(crl, ca, path, out);
}

int ff_pki_crl_from_pem(const char *pem, size_t len, X509 *ca, X509_CRL **out)
{
    *out = NULL;
    BIO *b = len <= INT_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
    X509_CRL *crl = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return crl_signed_by(crl, ca, "revocation list", out);
}

/* Re-signs ca_dir/crl.pem (CRL number + 1, 30 more days), adding cert_path's serial when
 * cert_path is given (revoke) or keeping the entries as they are (renew). */
static int crl_update(const char *ca_dir, const char *cert_path)
{
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *cakey = NULL;
    X509_CRL *old = NULL, *crl = NULL;
    char path[4096];
    int rc;
    if ((rc = load_ca(ca_dir, &ca, &cakey)) != FF_OK)
        return rc;
    if (cert_path && (rc = ff_pki_load_cert(cert_path, &x)) != FF_OK)
        goto out;
    if (x && (X509_check_issued(ca, x) != X509_V_OK || X509_verify(x, X509_get0_pubkey(ca)) != 1)) {
        ERR_clear_error();
        rc = ff_error(FF_EINVAL, "%s: not issued by the CA in %s", cert_path, ca_dir);
        goto out;
    }
    snprintf(path, sizeof path, "%s/crl.pem", ca_dir);
    if ((!x || ff_path_exists(path)) && (rc = ff_pki_load_crl(path, ca, &old)) != FF_OK)
        goto out;
    X509_REVOKED *dummy = NULL;
    if (x && old && X509_CRL_get0_by_serial(old, &dummy, X509_get0_serialNumber(x)) == 1) {
        rc = ff_error(FF_EINVAL, "%s: already revoked", cert_path);
        goto out;
    }
    if ((rc = new_crl(ca, cakey, old, x, &crl)) != FF_OK)
        goto out;
    rc = write_pem(path, 0644, emit_crl, crl);
out:
    X509_CRL_free(old);
    X509_CRL_free(crl);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(cakey);
    return rc;
}

int ff_pki_revoke(const char *ca_dir, const char *cert_path)
{
    return crl_update(ca_dir, cert_path);
}

int ff_pki_crl_renew(const char *ca_dir)
{
    return crl_update(ca_dir, NULL);
}

int ff_pki_check_peer(X509 *ca, X509_CRL *crl, X509 *cert, char *cn, size_t cn_len)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = FF_OK;
    if (!st || !ctx || X509_STORE_add_cert(st, ca) != 1 ||
        (crl && X509_STORE_add_crl(st, crl) != 1) ||
        X509_STORE_CTX_init(ctx, st, cert, NULL) != 1) {
        rc = ssl_error(FF_ECRYPTO, "certificate check setup");
        goto out;
    }
    if (crl)
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_CRL_CHECK);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        rc = ff_error(err == X509_V_ERR_CERT_REVOKED ? FF_EPOLICY : FF_ECRYPTO,
                      "certificate rejected: %s", X509_verify_cert_error_string(err));
        goto out;
    }
    rc = ff_pki_cert_cn(cert, cn, cn_len);
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return rc;
}

int ff_pki_check_files(const char *ca_path, const char *crl_path, const char *cert_path,
                       char *cn, size_t cn_len)
{
    X509 *ca = NULL, *x = NULL;
    X509_CRL *crl = NULL;
    int rc;
    if ((rc = ff_pki_load_cert(ca_path, &ca)) != FF_OK ||
        (crl_path && (rc = ff_pki_load_crl(crl_path, ca, &crl)) != FF_OK) ||
        (rc = ff_pki_load_cert(cert_path, &x)) != FF_OK)
        goto out;
    rc = ff_pki_check_peer(ca, crl, x, cn, cn_len);
    if (rc != FF_OK)
        ff_error_prefix(rc, "%s: ", cert_path);
out:
    X509_CRL_free(crl);
    X509_free(x);
    X509_free(ca);
    return rc;
}

int ff_pki_check_own(const char *cert_path, const char *key_path, const char *ca_path)
{
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *key = NULL;
    X509_STORE *st = NULL;
    X509_STORE_CTX *ctx = NULL;
    int rc;
    if ((rc = ff_pki_load_cert(ca_path, &ca)) != FF_OK ||
        (rc = ff_pki_load_cert(cert_path, &x)) != FF_OK ||
        (rc = ff_pki_load_key(key_path, &key)) != FF_OK)
        goto out;
    if (X509_check_private_key(x, key) != 1) {
        rc = ff_error(FF_ECRYPTO, "%s does not belong to %s (key and certificate differ)",
                      key_path, cert_path);
        goto out;
    }
    if (!(st = X509_STORE_new()) || !(ctx = X509_STORE_CTX_new()) ||
        X509_STORE_add_cert(st, ca) != 1 || X509_STORE_CTX_init(ctx, st, x, NULL) != 1) {
        rc = ssl_error(FF_ECRYPTO, "certificate check setup");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1)
        rc = ff_error(FF_EPOLICY, "%s: %s (against %s)", cert_path,
                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)), ca_path);
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    EVP_PKEY_free(key);
    X509_free(x);
    X509_free(ca);
    return rc;
}

int ff_pem_files_read(ff_pem_files *f, const char *ca, const char *cert, const char *key)
{
    size_t n;
    memset(f, 0, sizeof *f);
    int rc;
    if ((rc = ff_file_read_all(ca, PEM_MAX, &f->ca, &n)) != FF_OK ||
        (rc = ff_file_read_all(cert, PEM_MAX, &f->cert, &n)) != FF_OK ||
        (rc = ff_file_read_all(key, PEM_MAX, &f->key, &n)) != FF_OK)
        ff_pem_files_free(f);
    return rc;
}

void ff_pem_files_free(ff_pem_files *f)
{
    if (f->key)
        ff_secure_zero(f->key, strlen(f->key));
    FF_FREE(f->ca);
    FF_FREE(f->cert);
    FF_FREE(f->key);
}
