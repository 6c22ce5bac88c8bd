/* libFuzzer target: secure-aggregation messages from hostile peers. The first byte picks
 * the reader: 0 the header peek, 1 the coordinator's ff_secagg_server_add (phase 1, any
 * client message), 2 a site's ff_secagg_client_share on a hostile ADVERTISE_SET, 3 a site's
 * ff_secagg_client_mask on hostile SHARES_IN after a valid share phase. Three sites, keys
 * made once. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "ff/crypto.h"

#define NS 3
static EVP_PKEY *keys[NS];
static ff_secagg_params prm;

static void init_once(void)
{
    if (keys[0])
        return;
    for (int i = 0; i < NS; i++)
        if (!(keys[i] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")))
            abort();
    ff_secagg_params_default(&prm, 7, NS, 4);
}

static void client_path(const uint8_t *data, size_t size, int mask)
{
    ff_secagg_client *c = NULL;
    ff_secagg_server *s = NULL;
    ff_secagg_buf b = {0}, set = {0};
    if (ff_secagg_client_new(&c, &prm, 0, keys[0], keys) != FF_OK)
        abort();
    if (!mask) {
        (void)ff_secagg_client_share(c, data, size, &b);
        goto out;
    }
    /* A valid round up to the share phase, then hostile SHARES_IN. */
    ff_secagg_client *peers[NS] = {c, NULL, NULL};
    if (ff_secagg_server_new(&s, &prm, keys) != FF_OK)
        abort();
    for (uint32_t i = 0; i < NS; i++) {
        if (i && ff_secagg_client_new(&peers[i], &prm, i, keys[i], keys) != FF_OK)
            abort();
        if (ff_secagg_client_advertise(peers[i], &b) != FF_OK ||
            ff_secagg_server_add(s, b.data, b.len) != FF_OK)
            abort();
        ff_secagg_buf_free(&b);
    }
    if (ff_secagg_server_advertise_set(s, &set) != FF_OK ||
        ff_secagg_client_share(c, set.data, set.len, &b) != FF_OK)
        abort();
    ff_secagg_buf_free(&b);
    uint32_t input[4] = {1, 2, 3, 4};
    (void)ff_secagg_client_mask(c, data, size, input, &b);
    for (int i = 1; i < NS; i++)
        ff_secagg_client_free(peers[i]);
out:
    ff_secagg_buf_free(&b);
    ff_secagg_buf_free(&set);
    ff_secagg_server_free(s);
    ff_secagg_client_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    init_once();
    int sel = data[0] & 3;
    data++, size--;
    if (sel == 0) {
        ff_secagg_msg_type t;
        uint64_t r;
        uint32_t who;
        (void)ff_secagg_msg_peek(data, size, &t, &r, &who);
    } else if (sel == 1) {
        ff_secagg_server *s = NULL;
        if (ff_secagg_server_new(&s, &prm, keys) != FF_OK)
            abort();
        (void)ff_secagg_server_add(s, data, size);
        ff_secagg_server_free(s);
    } else {
        client_path(data, size, sel == 3);
    }
    return 0;
}
