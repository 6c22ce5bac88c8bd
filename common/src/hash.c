/* SHA-256 and secret hygiene through OpenSSL: no home-made primitives. */
#include "ff/common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

struct ff_sha256_ctx {
    EVP_MD_CTX *md;
};

int ff_sha256_new(ff_sha256_ctx **out)
{
    ff_sha256_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        if (c)
            EVP_MD_CTX_free(c->md);
        free(c);
        *out = NULL;
        return ff_error(FF_ECRYPTO, "sha256: cannot initialise");
    }
    *out = c;
    return FF_OK;
}

void ff_sha256_update(ff_sha256_ctx *c, const void *data, size_t n)
{
    /* EVP_DigestUpdate cannot fail for SHA-256 once initialised. */
    (void)EVP_DigestUpdate(c->md, data, n);
}

void ff_sha256_final(ff_sha256_ctx *c, uint8_t out[FF_SHA256_BYTES])
{
    unsigned len = 0;
    (void)EVP_DigestFinal_ex(c->md, out, &len);
    EVP_MD_CTX_free(c->md);
    free(c);
}

void ff_sha256(const void *data, size_t n, uint8_t out[FF_SHA256_BYTES])
{
    unsigned len = 0;
    (void)EVP_Digest(data, n, out, &len, EVP_sha256(), NULL);
}

int ff_sha256_file(const char *path, char out[FF_SHA256_HEX])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ff_error(FF_EIO, "%s: cannot open: %s", path, strerror(errno));
    ff_sha256_ctx *c;
    int rc = ff_sha256_new(&c);
    if (rc != FF_OK) {
        close(fd);
        return rc;
    }
    /* A local buffer, not a _Thread_local one: static TLS is zeroed in every new thread of
     * the process, so 64 KiB there cost 64 KiB of RSS per thread (the coordinator runs two
     * transport threads per site; docs/benchmarks.md, "Load"). */
    uint8_t buf[1 << 14];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ff_error(FF_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        ff_sha256_update(c, buf, (size_t)n);
    }
    close(fd);
    uint8_t d[FF_SHA256_BYTES];
    ff_sha256_final(c, d);
    if (rc == FF_OK)
        ff_hex(d, sizeof d, out);
    return rc;
}

void ff_secure_zero(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

int ff_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
