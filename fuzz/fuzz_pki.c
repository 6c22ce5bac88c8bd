/* libFuzzer target: the consortium PKI file readers on hostile files. The first byte picks
 * the reader: key, certificate, certificate public key, CRL checked against a CA made once,
 * or a certificate from PEM in memory. */
#include <openssl/x509.h>

#include "ff/transport.h"
#include "fuzz_util.h"

static X509 *ca;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ca) {
        char d[300];
        snprintf(d, sizeof d, "%s/ca", fz_dir());
        if (ff_pki_init(d, "fuzz", 30) != FF_OK)
            abort();
        snprintf(d, sizeof d, "%s/ca/ca.crt", fz_dir());
        if (ff_pki_load_cert(d, &ca) != FF_OK)
            abort();
    }
    if (size < 1)
        return 0;
    int sel = data[0] % 5;
    const char *p = fz_write("f.pem", data + 1, size - 1);
    EVP_PKEY *k = NULL;
    X509 *c = NULL;
    X509_CRL *crl = NULL;
    switch (sel) {
    case 0: (void)ff_pki_load_key(p, &k); break;
    case 1:
        if (ff_pki_load_cert(p, &c) == FF_OK) {
            char cn[128];
            (void)ff_pki_cert_cn(c, cn, sizeof cn);
            (void)ff_pki_check_peer(ca, NULL, c, cn, sizeof cn);
        }
        break;
    case 2: (void)ff_pki_load_cert_pubkey(p, &k); break;
    case 3: (void)ff_pki_load_crl(p, ca, &crl); break;
    default: (void)ff_pki_cert_from_pem((const char *)data + 1, size - 1, &c); break;
    }
    EVP_PKEY_free(k);
    X509_free(c);
    X509_CRL_free(crl);
    return 0;
}
