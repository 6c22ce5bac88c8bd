/*
 * ff/crypto.h — composed cryptographic primitives (on OpenSSL) and secure aggregation
 * (Bonawitz et al., CCS 2017, with the sparse neighbour graph of SecAgg+, Bell et al., CCS
 * 2020) as a pure state machine: no I/O, messages in and out as length-checked byte strings
 * the transport carries opaquely. Protocol, parameters and bounds: docs/secagg.md.
 *
 * Usage (one round, in-process; a real run moves each buffer over the network):
 *
 *     ff_secagg_params p;
 *     ff_secagg_params_default(&p, round_id, n_sites, n_values);   // k, t by the default rule
 *     // each site i:  ff_secagg_client_new(&c[i], &p, i, my_ed25519_key, peer_pubkeys);
 *     // server:       ff_secagg_server_new(&s, &p, peer_pubkeys);
 *     ff_secagg_client_advertise(c[i], &buf);      ff_secagg_server_add(s, buf.data, buf.len);
 *     ff_secagg_server_advertise_set(s, &set);     // broadcast to all
 *     ff_secagg_client_share(c[i], set.data, set.len, &buf);   -> server_add
 *     ff_secagg_server_shares_for(s, i, &in);      // per site
 *     ff_secagg_client_mask(c[i], in.data, in.len, encoded_input, &buf);   -> server_add
 *     ff_secagg_server_check_request(s, &chk);     // the survivor set U3, to survivors
 *     ff_secagg_client_check(c[i], chk.data, chk.len, &buf);   -> server_add (signature)
 *     ff_secagg_server_unmask_request(s, &req);    // U3 + signatures, to the signers
 *     ff_secagg_client_unmask(c[i], req.data, req.len, &buf);  -> server_add
 *     ff_secagg_server_finish(s, sum);             // sum of surviving inputs, mod 2^32
 *
 * Every function returns FF_OK or a negative FF_E... with ff_error_message() naming the
 * site, phase and check at fault. A failed check of a peer's message (signature, AEAD,
 * round id, unsafe unmask request) is FF_ECRYPTO or FF_EPOLICY and leaves the object in a
 * failed state: the round fails closed and secrets are wiped.
 */
#ifndef FF_CRYPTO_H
#define FF_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ff/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Primitives                                                                                */
/* ---------------------------------------------------------------------------------------- */

#define FF_CRYPTO_KEY_BYTES 32   /* X25519 keys, AEAD keys, PRG seeds, HKDF outputs */
#define FF_CRYPTO_SIG_BYTES 64   /* Ed25519 signature */
#define FF_CRYPTO_NONCE_BYTES 12 /* AES-256-GCM nonce */
#define FF_CRYPTO_TAG_BYTES 16   /* AES-256-GCM tag, appended to the ciphertext */

/* Ed25519 signature of msg with key (an EVP_PKEY of type Ed25519 holding a private key; the
 * caller keeps ownership). */
int ff_crypto_ed25519_sign(EVP_PKEY *key, const uint8_t *msg, size_t len,
                           uint8_t sig[FF_CRYPTO_SIG_BYTES]) FF_WARN_UNUSED;
/* 0 when sig is a valid signature of msg under pub (Ed25519 public key), FF_ECRYPTO if not. */
int ff_crypto_ed25519_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len,
                             const uint8_t sig[FF_CRYPTO_SIG_BYTES]) FF_WARN_UNUSED;

/* Fresh X25519 key pair (sk is secret: the caller wipes it). */
int ff_crypto_x25519_keygen(uint8_t sk[FF_CRYPTO_KEY_BYTES],
                            uint8_t pk[FF_CRYPTO_KEY_BYTES]) FF_WARN_UNUSED;
/* Public key of a raw private key. */
int ff_crypto_x25519_public(uint8_t pk[FF_CRYPTO_KEY_BYTES],
                            const uint8_t sk[FF_CRYPTO_KEY_BYTES]) FF_WARN_UNUSED;
/* Raw shared secret X25519(sk, pk); FF_ECRYPTO (out untouched) for a low-order pk giving
 * the all-zero secret. The caller wipes out. */
int ff_crypto_x25519(uint8_t out[FF_CRYPTO_KEY_BYTES], const uint8_t sk[FF_CRYPTO_KEY_BYTES],
                     const uint8_t pk[FF_CRYPTO_KEY_BYTES]) FF_WARN_UNUSED;

/* HKDF-SHA256 (RFC 5869), extract then expand into out_len bytes (<= 255*32). */
int ff_crypto_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                          const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                          size_t info_len) FF_WARN_UNUSED;

/* AES-256-GCM. seal writes len + FF_CRYPTO_TAG_BYTES bytes (ciphertext || tag) to out.
 * open reads ct_len >= FF_CRYPTO_TAG_BYTES bytes and writes ct_len - 16 bytes of plaintext
 * to out only when the tag verifies; on failure returns FF_ECRYPTO and out is untouched. */
int ff_crypto_aead_seal(uint8_t *out, const uint8_t key[FF_CRYPTO_KEY_BYTES],
                        const uint8_t nonce[FF_CRYPTO_NONCE_BYTES], const uint8_t *aad,
                        size_t aad_len, const uint8_t *pt, size_t len) FF_WARN_UNUSED;
int ff_crypto_aead_open(uint8_t *out, const uint8_t key[FF_CRYPTO_KEY_BYTES],
                        const uint8_t nonce[FF_CRYPTO_NONCE_BYTES], const uint8_t *aad,
                        size_t aad_len, const uint8_t *ct, size_t ct_len) FF_WARN_UNUSED;

/* PRG: AES-128-CTR keystream with key = seed[0..16) and initial counter block =
 * seed[16..32) (big-endian 128-bit increment, as NIST SP 800-38A). Writes n bytes. */
int ff_crypto_prg_expand(const uint8_t seed[FF_CRYPTO_KEY_BYTES], uint8_t *out,
                         size_t n) FF_WARN_UNUSED;

/* acc[i] += sum_s sign[s] * prg(seed[s])[i] (mod 2^32), the PRG output read as little-endian
 * uint32 lanes. The keystreams are produced in cache-sized blocks and added while the block
 * of acc is hot, so acc is traversed once whatever the number of seeds. sign[s] is +1 or -1. */
int ff_crypto_mask_apply(uint32_t *acc, size_t m, const uint8_t (*seeds)[FF_CRYPTO_KEY_BYTES],
                         const int8_t *signs, size_t n_seeds) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Shamir secret sharing over GF(p), p = 2^61 - 1                                            */
/* ---------------------------------------------------------------------------------------- */
/*
 * A 32-byte secret is cut into 5 chunks of 7, 7, 7, 7, 4 bytes (little-endian, < 2^56 < p);
 * each chunk is shared with its own random polynomial of degree t-1. A share is the 5 field
 * elements at x, 8 bytes each little-endian: FF_SHAMIR_SHARE_BYTES.
 */
#define FF_SHAMIR_P 0x1FFFFFFFFFFFFFFFull
#define FF_SHAMIR_CHUNKS 5
#define FF_SHAMIR_SHARE_BYTES (8 * FF_SHAMIR_CHUNKS)

/* Field-level: shares[i] = f(xs[i]) for a random f of degree t-1 with f(0) = secret.
 * secret < p, 1 <= t <= n, xs distinct and nonzero. */
int ff_shamir_split_elem(uint64_t secret, unsigned t, const uint64_t *xs, size_t n,
                         uint64_t *shares) FF_WARN_UNUSED;
/* f(0) by Lagrange interpolation from n >= 1 points (all are used: pass exactly t). */
int ff_shamir_recover_elem(const uint64_t *xs, const uint64_t *ys, size_t n,
                           uint64_t *secret) FF_WARN_UNUSED;
/* Byte-level: shares is n * FF_SHAMIR_SHARE_BYTES; xs are small positive integers. */
int ff_shamir_split(const uint8_t secret[FF_CRYPTO_KEY_BYTES], unsigned t, const uint32_t *xs,
                    size_t n, uint8_t *shares) FF_WARN_UNUSED;
/* From n >= t shares (uses all n); FF_EFORMAT for a share element >= p or duplicate xs.
 * secret is written only on success. */
int ff_shamir_recover(uint8_t secret[FF_CRYPTO_KEY_BYTES], const uint32_t *xs,
                      const uint8_t *shares, size_t n) FF_WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Secure aggregation: parameters, neighbour graph, encoding                                 */
/* ---------------------------------------------------------------------------------------- */

#define FF_SECAGG_MAX_SITES 4096
#define FF_SECAGG_SERVER 0xFFFFFFFFu /* sender id of the coordinator's messages */

typedef struct {
    uint64_t round_id;  /* unique per round; bound into signatures, keys and AAD */
    uint32_t n_sites;   /* sites are numbered 0..n_sites-1 in this round */
    uint32_t k;         /* neighbours per site; n_sites-1 = classic SecAgg */
    uint32_t t;         /* shares needed per site, among its k neighbours and itself */
    uint64_t n_values;  /* uint32 lanes per input vector */
} ff_secagg_params;

/* The project's default: k = min(n-1, 2*ceil(log2 n) + 2), t = floor((k+1)/2) + 1. */
/* Signatures over one survivor set a site needs before it unmasks: max(t, floor(n/2) + 1),
 * counted over all sites of the round. Two different survivor sets can then both reach the
 * quorum only if 2q - n signers collude with the coordinator (docs/secagg.md). */
uint32_t ff_secagg_check_quorum(const ff_secagg_params *p);
uint32_t ff_secagg_default_k(uint32_t n_sites);
uint32_t ff_secagg_default_t(uint32_t k);
void ff_secagg_params_default(ff_secagg_params *p, uint64_t round_id, uint32_t n_sites,
                              uint64_t n_values);
/* Checks 2 <= n <= MAX, 1 <= k <= n-1, (k+1)/2 < t <= k+1 (the honest-majority rule that
 * keeps a coordinator from collecting both shares of a site), n_values >= 1. */
int ff_secagg_params_check(const ff_secagg_params *p) FF_WARN_UNUSED;

/* The degree every site has: k, or k + 1 when k and n are both odd, or n - 1 when k >= n - 1.
 * t is checked against this. */
uint32_t ff_secagg_degree(const ff_secagg_params *p);
/* The neighbour graph: a Harary graph (circulant, offsets +-1..+-k/2, plus the diametric
 * edge when k is odd and n even) on a permutation of the sites drawn from SHA-256 of the
 * round parameters. k odd with n odd is rounded up to k+1 (near-regular, documented).
 * Writes the sorted neighbours of site into nb (capacity k+1) and their count to *deg. */
int ff_secagg_neighbours(const ff_secagg_params *p, uint32_t site, uint32_t *nb,
                         uint32_t *deg) FF_WARN_UNUSED;

/* Encoding of float updates into uint32 lanes summed modulo 2^32 (read back as int32). */
typedef struct {
    double clip;         /* values are clipped to [-clip, clip] */
    double scale;        /* a power of two; q = stochastic_round(x * scale) */
    uint32_t n_sites;    /* the most inputs ever summed */
    uint32_t max_weight; /* largest example weight one site may send */
} ff_secagg_codec;

/* Picks the largest power-of-two scale with n_sites * (clip * scale + 1) <= 2^31 - 1;
 * FF_ERANGE when no scale >= 1 fits or n_sites * max_weight >= 2^32. scale = 0 means
 * automatic; a given scale is checked against the same bound. */
int ff_secagg_codec_init(ff_secagg_codec *c, double clip, double scale, uint32_t n_sites,
                         uint32_t max_weight) FF_WARN_UNUSED;
/* out[0..n) = stochastically rounded clip(x) * scale (rng draws one uniform per value),
 * out[n] = weight (exact). out has n + 1 lanes. FF_ENUMERIC on NaN/Inf. */
int ff_secagg_encode(const ff_secagg_codec *c, ff_rng *rng, const float *x, size_t n,
                     uint32_t weight, uint32_t *out) FF_WARN_UNUSED;
/* Inverse on a sum of n + 1 lanes: out[i] = (int32)sum[i] / scale, *weight = sum[n].
 * |out[i] - sum over sites of clip(x)[i]| < n_summed / scale (the quantisation bound). */
void ff_secagg_decode(const ff_secagg_codec *c, const uint32_t *sum, size_t n, double *out,
                      uint64_t *weight);

/* ---------------------------------------------------------------------------------------- */
/* Secure aggregation: messages and state machines                                           */
/* ---------------------------------------------------------------------------------------- */
/*
 * Wire format (all integers little-endian), every message:
 *   magic "FFSA" | version u8 (=2) | type u8 | reserved u16 (=0) | round_id u64 |
 *   sender u32 | body_len u32 | body (body_len bytes; total length must match exactly)
 * Bodies (n = n_sites, K = FF_CRYPTO_KEY_BYTES, S = FF_SHAMIR_SHARE_BYTES):
 *   ADVERTISE     c_pk[K] s_pk[K] sig[64]   (sig over "ff-secagg-adv", round tag, sender, keys)
 *   ADVERTISE_SET count u32, then count x { site u32, c_pk, s_pk, sig }, sites increasing
 *   SHARES        count u32, then count x { peer u32, ct[8 + 2S + 16] } (peer = recipient)
 *   SHARES_IN     count u32, then count x { peer u32, ct[...] }         (peer = sender)
 *   MASKED        n_values x u32
 *   CHECK_REQ     bitmap[ceil(n/8)] survivors U3 (the sites whose MASKED input arrived)
 *   CHECK_SIG     sig[64]   (Ed25519 over "ff-secagg-u3" | round tag | U3 bitmap)
 *   UNMASK_REQ    bitmap[ceil(n/8)] survivors (= U3; reveal self-mask shares),
 *                 bitmap[ceil(n/8)] dropped   (reveal mask-key shares),
 *                 count u32, then count x { site u32, sig[64] }, sites increasing (the
 *                 CHECK_SIG signatures the coordinator collected)
 *   UNMASK_RESP   count u32, then count x { peer u32, kind u8 (1 seed, 2 key), share[S] }
 * The round tag is SHA-256("ff-secagg-v1" | round_id | n | k | t | n_values).
 */
typedef enum {
    FF_SECAGG_MSG_ADVERTISE = 1,
    FF_SECAGG_MSG_ADVERTISE_SET = 2,
    FF_SECAGG_MSG_SHARES = 3,
    FF_SECAGG_MSG_SHARES_IN = 4,
    FF_SECAGG_MSG_MASKED = 5,
    FF_SECAGG_MSG_UNMASK_REQ = 6,
    FF_SECAGG_MSG_UNMASK_RESP = 7,
    FF_SECAGG_MSG_CHECK_REQ = 8, /* consistency check (Bonawitz et al. Round 3) */
    FF_SECAGG_MSG_CHECK_SIG = 9
} ff_secagg_msg_type;

#define FF_SECAGG_HEADER_BYTES 24

/* A message produced by a state machine; the caller owns data and frees it with
 * ff_secagg_buf_free. */
typedef struct {
    uint8_t *data;
    size_t len;
} ff_secagg_buf;
void ff_secagg_buf_free(ff_secagg_buf *b);

/* Reads a message header (for routing) after checking magic, version and length. */
int ff_secagg_msg_peek(const uint8_t *msg, size_t len, ff_secagg_msg_type *type,
                       uint64_t *round_id, uint32_t *sender) FF_WARN_UNUSED;

typedef struct ff_secagg_client ff_secagg_client;
typedef struct ff_secagg_server ff_secagg_server;

/* A site's state for one round. sign_key is this site's Ed25519 private key; peer_keys[i]
 * is site i's Ed25519 public key (from its certificate), n_sites entries, all present (any
 * survivor may sign the survivor set). Both are borrowed and must outlive the client. */
int ff_secagg_client_new(ff_secagg_client **out, const ff_secagg_params *p, uint32_t self,
                         EVP_PKEY *sign_key, EVP_PKEY *const *peer_keys) FF_WARN_UNUSED;
/* Wipes every secret and frees. NULL is fine. */
void ff_secagg_client_free(ff_secagg_client *c);
/* Phase 1: fresh X25519 pairs, signed advertisement. */
int ff_secagg_client_advertise(ff_secagg_client *c, ff_secagg_buf *out) FF_WARN_UNUSED;
/* Phase 2: verifies the advertised keys of the neighbours (signature, round), needs at least
 * t share holders, shares the self-mask seed and the mask key, encrypts to each neighbour. */
int ff_secagg_client_share(ff_secagg_client *c, const uint8_t *set, size_t len,
                           ff_secagg_buf *out) FF_WARN_UNUSED;
/* Phase 3: decrypts the shares addressed to this site (any failure aborts), then sends
 * input (n_values lanes) + self mask + pairwise masks with the neighbours that shared. */
int ff_secagg_client_mask(ff_secagg_client *c, const uint8_t *shares_in, size_t len,
                          const uint32_t *input, ff_secagg_buf *out) FF_WARN_UNUSED;
/* Phase 4, consistency check (Bonawitz et al.'s Round 3, active-adversary version): reads the
 * survivor set U3 and signs "ff-secagg-u3" | round tag | U3 with the site key. Refuses
 * (FF_EPOLICY) a set that omits this site, names a neighbour whose shares this site did not
 * receive (U3 must lie in its U2), or has fewer than t survivors in all or among this site and
 * its neighbours. A site signs one survivor set per round. */
int ff_secagg_client_check(ff_secagg_client *c, const uint8_t *req, size_t len,
                           ff_secagg_buf *out) FF_WARN_UNUSED;
/* After ff_secagg_client_check: 1 when the survivor set this site signed lists site i, 0
 * when it does not, -1 before a set was signed or for i out of range. (The site's guard
 * records the set its sum is over before the signature leaves.) */
int ff_secagg_client_survivor(const ff_secagg_client *c, uint32_t i);
/* Phase 5: answers one unmask request, once. Refuses (FF_EPOLICY) a request whose survivor set
 * is not the U3 this site signed, that carries fewer than ff_secagg_check_quorum() valid
 * signatures over that U3 from distinct sites of U3 (FF_ECRYPTO for any signature that does
 * not verify: forged, or from another round), that names a peer in both lists, names this
 * site as dropped, or has fewer than t survivors among this site and its neighbours. Wipes
 * the round's secrets afterwards. */
int ff_secagg_client_unmask(ff_secagg_client *c, const uint8_t *req, size_t len,
                            ff_secagg_buf *out) FF_WARN_UNUSED;

/* The coordinator's state for one round. site_keys as for the client (borrowed). */
int ff_secagg_server_new(ff_secagg_server **out, const ff_secagg_params *p,
                         EVP_PKEY *const *site_keys) FF_WARN_UNUSED;
void ff_secagg_server_free(ff_secagg_server *s);
/* Accepts a client message of the current phase (ADVERTISE, SHARES, MASKED, CHECK_SIG,
 * UNMASK_RESP);
 * a duplicate, a message of another round or phase, or a bad signature is refused and
 * ignored (the round goes on without it). */
int ff_secagg_server_add(ff_secagg_server *s, const uint8_t *msg, size_t len) FF_WARN_UNUSED;
/* Closes phase 1 and returns the advertisement set for every site. */
int ff_secagg_server_advertise_set(ff_secagg_server *s, ff_secagg_buf *out) FF_WARN_UNUSED;
/* Closes phase 2 (first call) and returns the ciphertexts addressed to site. */
int ff_secagg_server_shares_for(ff_secagg_server *s, uint32_t site,
                                ff_secagg_buf *out) FF_WARN_UNUSED;
/* Closes phase 3 and returns the consistency-check request (the survivor set U3) for the
 * survivors; FF_EPOLICY when fewer than t inputs arrived. */
int ff_secagg_server_check_request(ff_secagg_server *s, ff_secagg_buf *out) FF_WARN_UNUSED;
/* Closes the consistency check and returns the unmask request (U3, the dropped sites and the
 * collected signatures) for the sites that signed; FF_EPOLICY below the check quorum. */
int ff_secagg_server_unmask_request(ff_secagg_server *s, ff_secagg_buf *out) FF_WARN_UNUSED;
/* Reconstructs and removes the masks; sum gets n_values lanes. Fails closed (FF_ECRYPTO,
 * sum untouched) when a site's secret has fewer than t shares. */
int ff_secagg_server_finish(ff_secagg_server *s, uint32_t *sum) FF_WARN_UNUSED;
/* Whether the coordinator accepted site's message of the given client type (ADVERTISE,
 * SHARES, MASKED, CHECK_SIG, UNMASK_RESP): the round driver relays SHARES_IN to the sites
 * that sent SHARES, the check request to those whose MASKED input arrived and the unmask
 * request to those whose CHECK_SIG arrived. */
int ff_secagg_server_accepted(const ff_secagg_server *s, ff_secagg_msg_type type,
                              uint32_t site);
/* After finish: number of inputs in the sum, and whether site i's input is in it. */
uint32_t ff_secagg_server_n_survivors(const ff_secagg_server *s);
int ff_secagg_server_is_survivor(const ff_secagg_server *s, uint32_t site);

#ifdef __cplusplus
}
#endif
#endif
