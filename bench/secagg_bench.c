/* secagg_bench: one secure-aggregation round simulated in-process (all sites and the
 * coordinator in this process, messages passed as bytes), timed per phase in
 * thread CPU seconds.
 *
 *   secagg_bench --sites N [--neighbours K] --values M [--dropout P] [--seed S]
 *   secagg_bench --sweep [--full]
 *
 * Inputs are float updates encoded with the project codec (clip 1, stochastic rounding),
 * plus the example-weight lane. The decoded sum is checked against the plain sums: the
 * integer sum of the encoded inputs exactly, the float sum within the quantisation bound.
 * Drop-outs (a fraction P of the sites) leave after sharing their keys and before sending
 * their input, the costliest case for the coordinator (their pairwise masks must be
 * rebuilt). The consistency check (survivors sign the survivor set; each site verifies the
 * quorum of signatures relayed with the unmask request) has its own columns: client check s
 * is the signing, the verification is inside client unmask s (the per-signature cost is
 * printed once), server check s is the coordinator verifying each signature on arrival. The ratio printed is mask throughput against plain AES-128-CTR keystream
 * measured in the same run. Ends with `exact_sum`, `client_s`, `server_s`, `mask_gbps`,
 * `upload_overhead` lines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/evp.h>

#include "ff/crypto.h"

typedef struct {
    uint32_t n, k;
    size_t m;
    double dropout;
    uint64_t seed;
} config;

typedef struct {
    int exact, within_bound;
    double client_phase[5], client_s; /* mean per site over the sites that did the phase */
    double server_phase[6], server_s; /* collect+advertise, relay, accumulate, check, request,
                                         finish */
    size_t bytes[5];                  /* sent by one site that stays, per phase */
    size_t req_bytes;                 /* the unmask request one site receives (signatures) */
    uint32_t n_sig;                   /* signatures over the survivor set */
    double upload_overhead;
    double worst_err, bound;
    uint32_t survivors, t, k_eff;
} result;

static void die(int rc, const char *what)
{
    fprintf(stderr, "secagg_bench: %s: %s (%s)\n", what, ff_error_message(), ff_status_name(rc));
    exit(1);
}

#define CHECK(call, what)                                                                     \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_)                                                                              \
            die(rc_, what);                                                                   \
    } while (0)

static EVP_PKEY *ed25519_new(EVP_PKEY **pub)
{
    EVP_PKEY *k = NULL;
    uint8_t raw[32];
    size_t len = 32;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &k) != 1 ||
        EVP_PKEY_get_raw_public_key(k, raw, &len) != 1) {
        fprintf(stderr, "secagg_bench: Ed25519 keygen failed\n");
        exit(1);
    }
    EVP_PKEY_CTX_free(ctx);
    *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
    return k;
}

/* CPU seconds of this thread: the machine is shared, so wall time would count other
 * processes' turns on the core. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static result run_round(const config *cf)
{
    result R;
    memset(&R, 0, sizeof R);
    uint32_t n = cf->n;
    size_t m = cf->m, lanes = m + 1;
    ff_secagg_params p;
    ff_secagg_params_default(&p, cf->seed * 1000003u + n, n, lanes);
    if (cf->k) {
        p.k = cf->k;
        p.t = ff_secagg_default_t(ff_secagg_degree(&p));
    }
    R.k_eff = ff_secagg_degree(&p);
    R.t = p.t;
    ff_secagg_codec codec;
    CHECK(ff_secagg_codec_init(&codec, 1.0, 0, n, 1u << 20), "codec");

    EVP_PKEY **sk = calloc(n, sizeof *sk), **pk = calloc(n, sizeof *pk);
    ff_secagg_client **c = calloc(n, sizeof *c);
    uint8_t *drop = calloc(n, 1), *alive = calloc(n, 1);
    for (uint32_t i = 0; i < n; i++)
        sk[i] = ed25519_new(&pk[i]);
    for (uint32_t i = 0; i < n; i++)
        CHECK(ff_secagg_client_new(&c[i], &p, i, sk[i], pk), "client_new");
    ff_secagg_server *s;
    CHECK(ff_secagg_server_new(&s, &p, pk), "server_new");
    /* Drop-outs: a seeded random subset of round(P * n) sites. */
    ff_rng rng;
    ff_rng_init(&rng, cf->seed, n);
    uint32_t *perm = malloc(n * 4);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    ff_rng_shuffle(&rng, perm, n);
    uint32_t n_drop = (uint32_t)lround(cf->dropout * n);
    for (uint32_t d = 0; d < n_drop; d++)
        drop[perm[d]] = 1;
    uint32_t probe = perm[n - 1]; /* a site that stays: its bytes are reported */
    free(perm);

    /* Base update; site i sends a rotation of it, so inputs differ without n copies. */
    float *base = malloc(m * sizeof *base), *x = malloc(m * sizeof *x);
    ff_rng_normal_fill(&rng, base, m, 0.0f, 0.3f);
    uint32_t *enc = malloc(lanes * 4), *plain = calloc(lanes, 4), *sum = malloc(lanes * 4);
    double *fsum = calloc(m, sizeof *fsum), *dec = malloc(m * sizeof *dec);

    ff_secagg_buf b, set, req = {0}, chk = {0};
    double t0;
    /* Phase 1 */
    for (uint32_t i = 0; i < n; i++) {
        t0 = cpu_now();
        CHECK(ff_secagg_client_advertise(c[i], &b), "advertise");
        R.client_phase[0] += cpu_now() - t0;
        if (i == probe)
            R.bytes[0] = b.len;
        t0 = cpu_now();
        CHECK(ff_secagg_server_add(s, b.data, b.len), "server add advertise");
        R.server_phase[0] += cpu_now() - t0;
        ff_secagg_buf_free(&b);
    }
    t0 = cpu_now();
    CHECK(ff_secagg_server_advertise_set(s, &set), "advertise set");
    R.server_phase[0] += cpu_now() - t0;
    /* Phase 2 */
    for (uint32_t i = 0; i < n; i++) {
        t0 = cpu_now();
        CHECK(ff_secagg_client_share(c[i], set.data, set.len, &b), "share");
        R.client_phase[1] += cpu_now() - t0;
        if (i == probe)
            R.bytes[1] = b.len;
        t0 = cpu_now();
        CHECK(ff_secagg_server_add(s, b.data, b.len), "server add shares");
        R.server_phase[1] += cpu_now() - t0;
        ff_secagg_buf_free(&b);
    }
    ff_secagg_buf_free(&set);
    /* Phase 3: encode (not counted as protocol cost), mask, accumulate. */
    uint32_t n_masked = 0;
    for (uint32_t i = 0; i < n; i++) {
        ff_secagg_buf in;
        t0 = cpu_now();
        CHECK(ff_secagg_server_shares_for(s, i, &in), "shares_for");
        R.server_phase[1] += cpu_now() - t0;
        if (drop[i]) {
            ff_secagg_buf_free(&in);
            continue;
        }
        size_t rot = (size_t)i * 7919 % m;
        memcpy(x, base + rot, (m - rot) * sizeof *x);
        memcpy(x + (m - rot), base, rot * sizeof *x);
        ff_rng er;
        ff_rng_init(&er, cf->seed + i, p.round_id);
        CHECK(ff_secagg_encode(&codec, &er, x, m, 100 + i, enc), "encode");
        for (size_t v = 0; v < m; v++)
            fsum[v] += FF_MAX(-1.0, FF_MIN(1.0, (double)x[v]));
        for (size_t v = 0; v < lanes; v++)
            plain[v] += enc[v];
        t0 = cpu_now();
        CHECK(ff_secagg_client_mask(c[i], in.data, in.len, enc, &b), "mask");
        R.client_phase[2] += cpu_now() - t0;
        ff_secagg_buf_free(&in);
        if (i == probe)
            R.bytes[2] = b.len;
        t0 = cpu_now();
        CHECK(ff_secagg_server_add(s, b.data, b.len), "server add masked");
        R.server_phase[2] += cpu_now() - t0;
        ff_secagg_buf_free(&b);
        alive[i] = 1;
        n_masked++;
    }
    /* Too many drop-outs end the round closed (no request, refusals, missing shares): the
     * run then reports exact_sum FAILED with the reason. */
    t0 = cpu_now();
    int frc = ff_secagg_server_check_request(s, &chk);
    R.server_phase[3] += cpu_now() - t0;
    uint32_t refused = 0;
    /* Consistency check: survivors sign U3, the coordinator verifies each signature. */
    for (uint32_t i = 0; i < n && !frc; i++) {
        if (!alive[i])
            continue;
        t0 = cpu_now();
        int crc = ff_secagg_client_check(c[i], chk.data, chk.len, &b);
        R.client_phase[3] += cpu_now() - t0;
        if (crc == FF_EPOLICY) { /* too few survivors around this site */
            alive[i] = 0;
            refused++;
            continue;
        }
        CHECK(crc, "consistency check");
        if (i == probe)
            R.bytes[3] = b.len;
        t0 = cpu_now();
        CHECK(ff_secagg_server_add(s, b.data, b.len), "server add signature");
        R.server_phase[3] += cpu_now() - t0;
        ff_secagg_buf_free(&b);
        R.n_sig++;
    }
    ff_secagg_buf_free(&chk);
    t0 = cpu_now();
    if (!frc)
        frc = ff_secagg_server_unmask_request(s, &req);
    R.server_phase[4] += cpu_now() - t0;
    R.req_bytes = req.len;
    for (uint32_t i = 0; i < n && !frc; i++) {
        if (!alive[i])
            continue;
        t0 = cpu_now();
        int urc = ff_secagg_client_unmask(c[i], req.data, req.len, &b);
        R.client_phase[4] += cpu_now() - t0;
        if (urc == FF_EPOLICY) { /* too few survivors around this site */
            refused++;
            continue;
        }
        CHECK(urc, "unmask");
        if (i == probe)
            R.bytes[4] = b.len;
        t0 = cpu_now();
        CHECK(ff_secagg_server_add(s, b.data, b.len), "server add unmask");
        R.server_phase[4] += cpu_now() - t0;
        ff_secagg_buf_free(&b);
    }
    ff_secagg_buf_free(&req);
    if (refused)
        fprintf(stderr, "secagg_bench: %u sites refused the check or unmask request\n",
                refused);
    t0 = cpu_now();
    if (!frc)
        frc = ff_secagg_server_finish(s, sum);
    R.server_phase[5] = cpu_now() - t0;
    if (frc) {
        fprintf(stderr, "secagg_bench: round failed: %s\n", ff_error_message());
        memset(sum, 0, lanes * 4);
    }

    R.survivors = n_masked;
    R.exact = frc == 0 && memcmp(sum, plain, lanes * 4) == 0;
    uint64_t w;
    ff_secagg_decode(&codec, sum, m, dec, &w);
    R.bound = n_masked / codec.scale;
    for (size_t v = 0; v < m; v++)
        R.worst_err = FF_MAX(R.worst_err, fabs(dec[v] - fsum[v]));
    R.within_bound = R.worst_err < R.bound;
    R.client_phase[0] /= n;
    R.client_phase[1] /= n;
    R.client_phase[2] /= n_masked;
    R.client_phase[3] /= n_masked;
    R.client_phase[4] /= n_masked;
    for (int ph = 0; ph < 5; ph++)
        R.client_s += R.client_phase[ph];
    for (int ph = 0; ph < 6; ph++)
        R.server_s += R.server_phase[ph];
    R.upload_overhead = (double)(R.bytes[0] + R.bytes[1] + R.bytes[2] + R.bytes[3] +
                                 R.bytes[4]) / (4.0 * (double)m);

    for (uint32_t i = 0; i < n; i++) {
        ff_secagg_client_free(c[i]);
        EVP_PKEY_free(sk[i]);
        EVP_PKEY_free(pk[i]);
    }
    ff_secagg_server_free(s);
    free(sk);
    free(pk);
    free(c);
    free(drop);
    free(alive);
    free(base);
    free(x);
    free(enc);
    free(plain);
    free(sum);
    free(fsum);
    free(dec);
    return R;
}

/* CPU seconds of one Ed25519 signature (sign = 1) or verification over a survivor-set
 * message of 44 + 8 bytes, the mean of 500. */
static double ed25519_cost(int sign)
{
    EVP_PKEY *pub, *key = ed25519_new(&pub);
    uint8_t msg[52] = {1}, sig[FF_CRYPTO_SIG_BYTES];
    CHECK(ff_crypto_ed25519_sign(key, msg, sizeof msg, sig), "sign");
    double t0 = cpu_now();
    for (int i = 0; i < 500; i++) {
        if (sign)
            CHECK(ff_crypto_ed25519_sign(key, msg, sizeof msg, sig), "sign");
        else
            CHECK(ff_crypto_ed25519_verify(pub, msg, sizeof msg, sig), "verify");
    }
    double dt = (cpu_now() - t0) / 500;
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    return dt;
}

/* Mask generation + addition with 16 seeds over m lanes, against the peer: AES-128-CTR
 * keystream alone into a cache-sized buffer (the lower bound of any AES-CTR mask). */
static void mask_throughput(size_t m, double *mask_gbps, double *aes_gbps)
{
    enum { SEEDS = 16 };
    uint8_t seeds[SEEDS][32];
    int8_t signs[SEEDS];
    for (int s = 0; s < SEEDS; s++) {
        memset(seeds[s], s + 1, 32);
        signs[s] = s & 1 ? -1 : 1;
    }
    uint32_t *acc = calloc(m, 4);
    CHECK(ff_crypto_mask_apply(acc, m, (const uint8_t(*)[32])seeds, signs, 1), "warm-up");
    double t0 = cpu_now();
    CHECK(ff_crypto_mask_apply(acc, m, (const uint8_t(*)[32])seeds, signs, SEEDS), "mask");
    double dt = cpu_now() - t0;
    *mask_gbps = (double)SEEDS * m * 4 / dt / 1e9;
    /* Peer: raw EVP AES-128-CTR. */
    static uint8_t zero[16384], out[16384];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, seeds[0], seeds[0] + 16);
    size_t total = (size_t)SEEDS * m * 4;
    int got;
    t0 = cpu_now();
    for (size_t done = 0; done < total; done += sizeof out)
        EVP_EncryptUpdate(ctx, out, &got, zero, sizeof out);
    dt = cpu_now() - t0;
    *aes_gbps = (double)total / dt / 1e9;
    EVP_CIPHER_CTX_free(ctx);
    free(acc);
}

static void print_row(const config *cf, const result *R)
{
    printf("| %4u | %4u%s | %2u | %8zu | %3.0f%% | %.4f | %.4f | %.6f | %.4f | %.4f | %.4f | "
           "%.4f | %.4f | %.4f | %.4f | %u | %zu | %zu | %zu | %.4f | %s |\n",
           cf->n, R->k_eff, cf->k ? "" : "*", R->t, cf->m, 100 * cf->dropout,
           R->client_phase[0] + R->client_phase[1], R->client_phase[2], R->client_phase[3],
           R->client_phase[4], R->client_s, R->server_phase[0] + R->server_phase[1],
           R->server_phase[2], R->server_phase[3], R->server_phase[4] + R->server_phase[5],
           R->server_s, R->n_sig, R->bytes[1], R->bytes[2], R->req_bytes, R->upload_overhead,
           R->exact && R->within_bound ? "ok" : "FAILED");
    fflush(stdout);
}

static void print_header(void)
{
    printf("| n | k | t | values | drop | client adv+share s | client mask s | client check s "
           "| client unmask s | client_s | server adv+share s | server collect s | server check s "
           "| server unmask s | server_s | sigs | shares B | masked B | unmask req B "
           "| upload_overhead | exact |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
           "---|\n");
}

static int parse(int argc, char **argv, config *cf, int *sweep, int *full)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t iv;
        double dv;
        if (!strcmp(a, "--sweep")) {
            *sweep = 1;
            continue;
        }
        if (!strcmp(a, "--full")) {
            *full = 1;
            continue;
        }
        if (!v)
            goto bad;
        if (!strcmp(a, "--sites") && !ff_parse_i64(v, &iv) && iv >= 2 && iv <= 4096)
            cf->n = (uint32_t)iv;
        else if (!strcmp(a, "--neighbours") && !ff_parse_i64(v, &iv) && iv >= 1)
            cf->k = (uint32_t)iv;
        else if (!strcmp(a, "--values") && !ff_parse_i64(v, &iv) && iv >= 1 && iv < (1 << 30))
            cf->m = (size_t)iv;
        else if (!strcmp(a, "--dropout") && !ff_parse_f64(v, &dv) && dv >= 0 && dv < 1)
            cf->dropout = dv;
        else if (!strcmp(a, "--seed") && !ff_parse_i64(v, &iv) && iv >= 0)
            cf->seed = (uint64_t)iv;
        else
            goto bad;
        i++;
    }
    if (cf->k >= cf->n)
        cf->k = cf->n - 1;
    return 0;
bad:
    fprintf(stderr, "usage: secagg_bench --sites N [--neighbours K] --values M [--dropout P "
                    "(fraction, 0 <= P < 1)] [--seed S] | --sweep [--full]\n");
    return 2;
}

int main(int argc, char **argv)
{
    config cf = {.n = 16, .k = 0, .m = 1000000, .dropout = 0.0, .seed = 1};
    int sweep = 0, full = 0;
    if (parse(argc, argv, &cf, &sweep, &full))
        return 2;
    double mask_gbps, aes_gbps;
    mask_throughput(1u << 20, &mask_gbps, &aes_gbps);
    printf("mask generation+addition: %.2f GB/s; AES-128-CTR keystream alone: %.2f GB/s; "
           "ratio %.2f\n", mask_gbps, aes_gbps, mask_gbps / aes_gbps);
    printf("consistency check: one Ed25519 verification %.1f us, one signature %.1f us "
           "(a site verifies `sigs` signatures inside client unmask s)\n",
           1e6 * ed25519_cost(0), 1e6 * ed25519_cost(1));
    int all_ok = 1;
    result head;
    memset(&head, 0, sizeof head);
    if (!sweep) {
        printf("(* = default k)\n");
        print_header();
        result R = run_round(&cf);
        print_row(&cf, &R);
        printf("worst |decoded - float sum| %.3g, bound n/scale %.3g\n", R.worst_err, R.bound);
        all_ok = R.exact && R.within_bound;
        head = R;
    } else {
        static const uint32_t ns[] = {4, 16, 64, 256};
        static const size_t ms[] = {1000000, 3400000};
        static const double ds[] = {0.0, 0.1};
        printf("(* = default k; 10%% drop-out = sites leaving after sharing keys)\n");
        print_header();
        for (size_t a = 0; a < 4; a++)
            for (int kd = 0; kd < 2; kd++)
                for (size_t b = 0; b < 2; b++)
                    for (size_t d = 0; d < 2; d++) {
                        config c2 = cf;
                        c2.n = ns[a];
                        c2.k = kd ? 0 : ns[a] - 1;
                        c2.m = ms[b];
                        c2.dropout = ds[d];
                        if (kd && ff_secagg_default_k(c2.n) == c2.n - 1)
                            continue; /* default is already n-1 */
                        /* n = 256, k = 255, 3.4M values: every site expands 256 seeds of
                         * 13.6 MB (about 90 CPU seconds for the row); run with --full. */
                        if (!full && !kd && c2.n == 256 && c2.m > 1000000) {
                            printf("| %u | %u | | %zu | %.0f%% | skipped without --full |\n",
                                   c2.n, c2.n - 1, c2.m, 100 * c2.dropout);
                            continue;
                        }
                        result R = run_round(&c2);
                        print_row(&c2, &R);
                        all_ok &= R.exact && R.within_bound;
                        if (c2.n == 64 && kd && c2.m == 3400000 && d == 1)
                            head = R; /* the targets' configuration */
                    }
        printf("(summary lines: n = 64, default k, 3.4M values, 10%% drop-out)\n");
    }
    printf("peak_rss_mb %.1f\n", peak_rss_mb());
    printf("exact_sum %s\n", all_ok ? "ok" : "FAILED");
    printf("client_s %.4f\n", head.client_s);
    printf("server_s %.4f\n", head.server_s);
    printf("mask_gbps %.3f\n", mask_gbps);
    printf("upload_overhead %.5f\n", head.upload_overhead);
    return all_ok ? 0 : 1;
}
