/* libFuzzer target: secure-aggregation messages from hostile peers. The first byte picks
 * the reader: 0 the header peek, 1 the coordinator's ff_secagg_server_add (phase 1, any
 * client message), 2 a site's ff_secagg_client_share on a hostile ADVERTISE_SET, 3 a site's
 * ff_secagg_client_mask on hostile SHARES_IN after a valid share phase, 4 a site's
 * ff_secagg_client_check on a hostile CHECK_REQ after a valid masked input, 5 a site's
 * ff_secagg_client_unmask on a hostile UNMASK_REQ (survivor set, signatures) after a valid
 * consistency check, 6 the coordinator's ff_secagg_server_add of a hostile CHECK_SIG. Three
 * sites, keys made once. */
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

/* A valid round of NS sites up to stage (2 = share phase done, 3 = masked inputs in, 4 =
 * every site checked the survivor set), then the hostile message for site 0 (or for the
 * coordinator when server is set). */
static void round_path(const uint8_t *data, size_t size, int stage, int server)
{
    ff_secagg_client *c[NS] = {0};
    ff_secagg_server *s = NULL;
    ff_secagg_buf b = {0}, set = {0}, in = {0}, chk = {0};
    uint32_t input[4] = {1, 2, 3, 4};
    if (ff_secagg_server_new(&s, &prm, keys) != FF_OK)
        abort();
    for (uint32_t i = 0; i < NS; i++) {
        if (ff_secagg_client_new(&c[i], &prm, i, keys[i], keys) != FF_OK ||
            ff_secagg_client_advertise(c[i], &b) != FF_OK ||
            ff_secagg_server_add(s, b.data, b.len) != FF_OK)
            abort();
        ff_secagg_buf_free(&b);
    }
    if (ff_secagg_server_advertise_set(s, &set) != FF_OK)
        abort();
    for (uint32_t i = 0; i < NS; i++) {
        if (ff_secagg_client_share(c[i], set.data, set.len, &b) != FF_OK ||
            ff_secagg_server_add(s, b.data, b.len) != FF_OK)
            abort();
        ff_secagg_buf_free(&b);
    }
    if (stage == 2) {
        (void)ff_secagg_client_mask(c[0], data, size, input, &b);
        goto out;
    }
    for (uint32_t i = 0; i < NS; i++) {
        if (ff_secagg_server_shares_for(s, i, &in) != FF_OK ||
            ff_secagg_client_mask(c[i], in.data, in.len, input, &b) != FF_OK ||
            ff_secagg_server_add(s, b.data, b.len) != FF_OK)
            abort();
        ff_secagg_buf_free(&b);
        ff_secagg_buf_free(&in);
    }
    if (ff_secagg_server_check_request(s, &chk) != FF_OK)
        abort();
    if (stage == 3 && server) {
        (void)ff_secagg_server_add(s, data, size);
        goto out;
    }
    if (stage == 3) {
        (void)ff_secagg_client_check(c[0], data, size, &b);
        goto out;
    }
    if (ff_secagg_client_check(c[0], chk.data, chk.len, &b) != FF_OK)
        abort();
    ff_secagg_buf_free(&b);
    (void)ff_secagg_client_unmask(c[0], data, size, &b);
out:
    ff_secagg_buf_free(&b);
    ff_secagg_buf_free(&set);
    ff_secagg_buf_free(&in);
    ff_secagg_buf_free(&chk);
    for (int i = 0; i < NS; i++)
        ff_secagg_client_free(c[i]);
    ff_secagg_server_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    init_once();
    int sel = data[0] % 7;
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
    } else if (sel == 2) {
        ff_secagg_client *c = NULL;
        ff_secagg_buf b = {0};
        if (ff_secagg_client_new(&c, &prm, 0, keys[0], keys) != FF_OK)
            abort();
        (void)ff_secagg_client_share(c, data, size, &b);
        ff_secagg_buf_free(&b);
        ff_secagg_client_free(c);
    } else if (sel <= 6) {
        round_path(data, size, sel == 3 ? 2 : sel == 5 ? 4 : 3, sel == 6);
    }
    return 0;
}
