/* Shared internals of the secure-aggregation client and server: wire reader/writer, round
 * tag, key derivations and the neighbour graph. */
#ifndef FF_SECAGG_INTERNAL_H
#define FF_SECAGG_INTERNAL_H

#include "ff/crypto.h"

#define SA_VERSION 2 /* 2: consistency check, signatures in UNMASK_REQ */
#define SA_SIG_MSG_BYTES (13 + 32 + 4 + 64) /* "ff-secagg-adv" | tag | sender | keys */
#define SA_ADV_BYTES (2 * FF_CRYPTO_KEY_BYTES + FF_CRYPTO_SIG_BYTES)
#define SA_SHARE_PT_BYTES (8 + 2 * FF_SHAMIR_SHARE_BYTES)
#define SA_SHARE_CT_BYTES (SA_SHARE_PT_BYTES + FF_CRYPTO_TAG_BYTES)
#define SA_KIND_SEED 1
#define SA_KIND_KEY 2

/* Bounds-checked little-endian writer into a buffer sized exactly in advance. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} sa_writer;

/* A reader over a received message; every get fails once the message is exhausted. */
typedef struct {
    const uint8_t *p;
    size_t len, off;
} sa_reader;

int sa_msg_begin(ff_secagg_buf *out, sa_writer *w, ff_secagg_msg_type type, uint64_t round_id,
                 uint32_t sender, size_t body_len);
void sa_put(sa_writer *w, const void *src, size_t n);
void sa_put_u32(sa_writer *w, uint32_t v);
void sa_put_u8(sa_writer *w, uint8_t v);
/* Checks header (type, round, sender) and returns a reader positioned on the body. what
 * names the phase in errors. */
int sa_msg_open(const uint8_t *msg, size_t len, ff_secagg_msg_type want, uint64_t round_id,
                sa_reader *r, uint32_t *sender, const char *what);
int sa_get(sa_reader *r, void *dst, size_t n, const char *what);
int sa_get_u32(sa_reader *r, uint32_t *v, const char *what);
int sa_get_u8(sa_reader *r, uint8_t *v, const char *what);
int sa_end(const sa_reader *r, const char *what);

void sa_round_tag(const ff_secagg_params *p, uint8_t tag[32]);
/* The bytes an advertisement signs. */
void sa_adv_sig_msg(const uint8_t tag[32], uint32_t sender, const uint8_t c_pk[32],
                    const uint8_t s_pk[32], uint8_t out[SA_SIG_MSG_BYTES]);
/* The bytes a consistency-check signature covers: "ff-secagg-u3" | tag | U3 bitmap (nb
 * bytes). Returns a malloc'd buffer of *len bytes, NULL when out of memory. */
uint8_t *sa_u3_sig_msg(const uint8_t tag[32], const uint8_t *u3, size_t nb, size_t *len);
/* Number of set bits in a site bitmap of nb bytes. */
uint32_t sa_popcount(const uint8_t *bm, size_t nb);
/* Directional share-encryption key from X25519(c_sk_self, c_pk_peer). */
int sa_share_key(const uint8_t tag[32], const uint8_t c_sk[32], const uint8_t c_pk_peer[32],
                 uint32_t sender, uint32_t recipient, uint8_t key[32]);
void sa_share_aad(const uint8_t tag[32], uint32_t sender, uint32_t recipient, uint8_t aad[40]);
/* Pairwise mask seed from X25519(s_sk_a, s_pk_b), symmetric in (a, b). */
int sa_mask_seed(const uint8_t tag[32], const uint8_t s_sk[32], const uint8_t s_pk_peer[32],
                 uint32_t a, uint32_t b, uint8_t seed[32]);

/* Graph positions: pos[site] (n entries, caller frees) and perm[position] = site. */
int sa_graph_build(const ff_secagg_params *p, uint32_t **pos, uint32_t **perm);
/* Sorted neighbours of site into nb (capacity ff_secagg_degree). */
void sa_graph_nbrs(const ff_secagg_params *p, const uint32_t *pos, const uint32_t *perm,
                   uint32_t site, uint32_t *nb, uint32_t *deg);

#endif
