/* The round engine with a fake clock: sampling, quorum failure (retry and stop), deadlines
 * naming the missing sites, every refusal, events for the audit log, rounds.csv content,
 * extension phases (the secure-aggregation shape), mechanisms, resume checks. */
#include "testutil.h"

#include "ff/coordinator.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures ------------------------------------------------------------------------ */

#define MAXEV 2048

typedef struct {
    int type;
    int64_t round, attempt, count;
    int reason;
    char phase[32], site[64], hash[FF_SHA256_HEX], detail[512];
} rec_event;

typedef struct {
    rec_event ev[MAXEV];
    size_t n;
} recorder;

static void record(void *ud, const ff_coord_event *e)
{
    recorder *r = ud;
    if (r->n == MAXEV)
        return;
    rec_event *x = &r->ev[r->n++];
    x->type = e->type;
    x->round = e->round;
    x->attempt = e->attempt;
    x->count = e->count;
    x->reason = e->reason;
    ff_strlcpy(x->phase, e->phase, sizeof x->phase);
    ff_strlcpy(x->site, e->site, sizeof x->site);
    ff_strlcpy(x->hash, e->hash, sizeof x->hash);
    ff_strlcpy(x->detail, e->detail, sizeof x->detail);
}

static size_t count_events(const recorder *r, int type)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        k += r->ev[i].type == type;
    return k;
}

static const rec_event *last_event(const recorder *r, int type)
{
    for (size_t i = r->n; i-- > 0;)
        if (r->ev[i].type == type)
            return &r->ev[i];
    static rec_event none;
    fail_msg("no %s event", ff_event_name(type));
    return &none;
}

typedef struct {
    double t;
} fake_clock;

static double fake_now(void *ud)
{
    return ((fake_clock *)ud)->t;
}

#define NP 3
static const char *const SITES[] = {"alpha", "bravo", "charlie", "delta", "echo",
                                    "foxtrot", "golf", "hotel", "india", "juliet"};
static ff_coord_tensor TABLE[] = {{.name = "w", .ndim = 1, .shape = {NP}, .offset = 0}};
static const float INIT[NP] = {1.0f, 2.0f, 3.0f};

typedef struct {
    const char *tmp;
    ff_coord_config cfg;
    ff_coord *c;
    fake_clock clk;
    recorder *rec;
} fixture;

static void cfg_init(fixture *f, const char *extra_yaml, int rounds)
{
    f->tmp = ft_tmpdir();
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "run_name: t\nrounds: %d\ndeadlines: {train: 10, evaluate: 5}\n%s",
             rounds, extra_yaml ? extra_yaml : "");
    assert_int_equal(ff_coord_config_load_str(&f->cfg, "t.yaml", yaml, strlen(yaml)), FF_OK);
    snprintf(f->cfg.checkpoint_dir, sizeof f->cfg.checkpoint_dir, "%s/ckpt", f->tmp);
    snprintf(f->cfg.out_dir, sizeof f->cfg.out_dir, "%s/out", f->tmp);
}

static void engine_new(fixture *f, size_t nsites)
{
    ff_coord_model m = {.n = NP, .tensors = TABLE, .ntensors = 1, .init = INIT};
    assert_int_equal(ff_coord_new(&f->c, &f->cfg, &m, SITES, nsites), FF_OK);
    ff_coord_set_clock(f->c, fake_now, &f->clk);
    f->rec = calloc(1, sizeof *f->rec);
    assert_int_equal(ff_coord_add_hook(f->c, record, f->rec), FF_OK);
}

static void setup(fixture *f, const char *extra_yaml, size_t nsites, int rounds)
{
    memset(f, 0, sizeof *f);
    cfg_init(f, extra_yaml, rounds);
    engine_new(f, nsites);
}

static void teardown(fixture *f)
{
    ff_coord_free(f->c);
    free(f->rec);
    ff_coord_config_free(&f->cfg);
    ft_rmtree(f->tmp);
}

/* rounds.csv of the fixture's run into *csv (caller frees). */
static void read_csv(const fixture *f, char **csv, size_t *len)
{
    assert_int_equal(ff_file_read_all(ft_path(f->cfg.out_dir, "rounds.csv"), 1 << 20, csv, len), FF_OK);
}

/* Lower-case hex SHA-256 of n bytes: an independent recomputation of the engine's hashes. */
static void sha_hex(const void *p, size_t n, char hex[FF_SHA256_HEX])
{
    uint8_t h[FF_SHA256_BYTES];
    ff_sha256(p, n, h);
    ff_hex(h, sizeof h, hex);
}

/* Site i's update: (i+1) * {1, -1, 0.5}, with i+1 examples. */
static void site_update(int i, float u[NP])
{
    u[0] = (float)(i + 1);
    u[1] = -(float)(i + 1);
    u[2] = 0.5f * (float)(i + 1);
}

/* Answers every pending site of the open phase except those in skip (a bit mask). */
static void answer(fixture *f, const ff_coord_status *st, unsigned skip)
{
    int pend[FF_COORD_MAX_SITES];
    size_t np = st->npending;
    memcpy(pend, st->pending, np * sizeof(int));
    for (size_t k = 0; k < np; k++) {
        int s = pend[k];
        if (skip & (1u << s))
            continue;
        if (strcmp(st->phase, FF_PHASE_TRAIN) == 0) {
            float u[NP];
            site_update(s, u);
            assert_int_equal(ff_coord_submit_update(f->c, SITES[s], st->round, u, NP, s + 1), FF_OK);
        } else if (strcmp(st->phase, FF_PHASE_EVALUATE) == 0) {
            ff_coord_eval e = {.n_examples = s + 1, .loss = 0.1 * (s + 1), .auroc = 0.6 + 0.01 * s};
            assert_int_equal(ff_coord_submit_eval(f->c, SITES[s], st->round, &e, NULL), FF_OK);
        }
    }
}

/* Runs to the end, answering everyone; returns the last poll status. */
static int run_all(fixture *f, unsigned skip)
{
    ff_coord_status st;
    int rc;
    while ((rc = ff_coord_poll(f->c, &st)) == FF_OK && st.state != FF_COORD_DONE) {
        if (st.npending == 0)
            continue;
        answer(f, &st, skip);
        ff_coord_status st2;
        rc = ff_coord_poll(f->c, &st2);
        if (rc != FF_OK)
            return rc;
        if (st2.state == FF_COORD_IN_ROUND && st2.npending > 0 && st2.round == st.round &&
            strcmp(st2.phase, st.phase) == 0)
            f->clk.t += 100; /* only skipped sites left: let the deadline pass */
    }
    return rc;
}

/* ---- sampling ------------------------------------------------------------------------ */

static void selections(const char *yaml, size_t nsites, int64_t rounds, char out[][256])
{
    fixture f;
    memset(&f, 0, sizeof f);
    cfg_init(&f, yaml, (int)rounds);
    engine_new(&f, nsites);
    assert_int_equal(run_all(&f, 0), FF_OK);
    size_t k = 0;
    for (size_t i = 0; i < f.rec->n; i++)
        if (f.rec->ev[i].type == FF_EV_SITES_SELECTED)
            ff_strlcpy(out[k++], f.rec->ev[i].detail, 256);
    assert_int_equal(k, (size_t)rounds);
    teardown(&f);
}

static void test_sampling_modes_and_determinism(void **state)
{
    (void)state;
    enum { R = 60 };
    static char a[R][256], b[R][256], c[R][256];
    selections("seed: 7\nsampling: {mode: fraction, fraction: 0.25}\n", 10, R, a);
    selections("seed: 7\nsampling: {mode: fraction, fraction: 0.25}\n", 10, R, b);
    selections("seed: 8\nsampling: {mode: fraction, fraction: 0.25}\n", 10, R, c);
    int same = 1, differ = 0;
    int hits[10] = {0};
    for (int r = 0; r < R; r++) {
        same &= strcmp(a[r], b[r]) == 0;
        differ += strcmp(a[r], c[r]) != 0;
        /* ceil(0.25 * 10) = 3 sites, each once */
        int commas = 0;
        for (const char *p = a[r]; *p; p++)
            commas += *p == ',';
        assert_int_equal(commas, 2);
        for (int s = 0; s < 10; s++)
            hits[s] += strstr(a[r], SITES[s]) != NULL;
    }
    assert_true(same);
    assert_true(differ > R / 2);
    /* every site is drawn about 3/10 of the time: 18 expected of 60, binomial sd 3.5 */
    for (int s = 0; s < 10; s++)
        assert_true(hits[s] >= 6 && hits[s] <= 32);

    static char d[5][256];
    selections("sampling: {mode: count, count: 4}\n", 6, 5, d);
    for (int r = 0; r < 5; r++) {
        int commas = 0;
        for (const char *p = d[r]; *p; p++)
            commas += *p == ',';
        assert_int_equal(commas, 3);
    }
    selections("sampling: {mode: all}\n", 3, 2, d);
    assert_string_equal(d[0], "alpha, bravo, charlie");
    /* count above the number of sites: all of them */
    selections("sampling: {mode: count, count: 9}\n", 3, 1, d);
    assert_string_equal(d[0], "alpha, bravo, charlie");
}

static void test_sampling_below_quorum_is_a_config_error(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    cfg_init(&f, "sampling: {mode: fraction, fraction: 0.2}\nquorum: {min_sites: 2}\n", 3);
    ff_coord_model m = {.n = NP, .tensors = TABLE, .ntensors = 1, .init = INIT};
    assert_int_equal(ff_coord_new(&f.c, &f.cfg, &m, SITES, 5), FF_ECONFIG);
    ft_assert_error_has("sampling picks 1 of 5 sites per round, below quorum.min_sites 2");
    assert_null(f.c);
    ff_coord_config_free(&f.cfg);
    ft_rmtree(f.tmp);
}

/* ---- FedAvg through the engine, events, rounds.csv ------------------------------------ */

static void test_round_events_and_weighted_average(void **state)
{
    (void)state;
    fixture f;
    setup(&f, NULL, 3, 1);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.state, FF_COORD_IN_ROUND);
    assert_string_equal(st.phase, FF_PHASE_TRAIN);
    assert_int_equal(st.round, 1);
    assert_int_equal(st.npending, 3);
    assert_true(st.deadline_in == 10.0);
    f.clk.t = 4;
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_EVALUATE);
    /* weighted mean of (i+1)^2 * {1,-1,.5} / Σ(i+1) = 14/6 */
    double m = 14.0 / 6.0;
    const float *g = ff_coord_global(f.c);
    assert_true(fabs(g[0] - (1 + m)) < 1e-6 && fabs(g[1] - (2 - m)) < 1e-6 &&
                fabs(g[2] - (3 + 0.5 * m)) < 1e-6);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.state, FF_COORD_DONE); /* the last round: the run ends in this poll */

    int want[] = {FF_EV_RUN_START, FF_EV_ROUND_START, FF_EV_SITES_SELECTED, FF_EV_PHASE_OPEN,
                  FF_EV_PHASE_CLOSE, FF_EV_AGGREGATE, FF_EV_MODEL, FF_EV_PHASE_OPEN,
                  FF_EV_PHASE_CLOSE, FF_EV_CHECKPOINT, FF_EV_ROUND_END};
    assert_true(f.rec->n >= FF_ARRAY_LEN(want));
    for (size_t i = 0; i < FF_ARRAY_LEN(want); i++)
        if (f.rec->ev[i].type != want[i])
            fail_msg("event %zu is %s, expected %s", i, ff_event_name(f.rec->ev[i].type),
                     ff_event_name(want[i]));
    /* hashes: the model sent, the aggregate, the new model; independent SHA-256 here */
    char hex[FF_SHA256_HEX];
    sha_hex(INIT, sizeof INIT, hex);
    assert_string_equal(f.rec->ev[3].hash, hex);
    assert_string_equal(f.rec->ev[3].phase, "train");
    float avg[NP] = {(float)m, (float)-m, (float)(0.5 * m)};
    sha_hex(avg, sizeof avg, hex);
    assert_string_equal(f.rec->ev[5].hash, hex);
    assert_int_equal(f.rec->ev[5].count, 3);
    sha_hex(g, NP * sizeof(float), hex);
    assert_string_equal(f.rec->ev[6].hash, hex);
    assert_string_equal(f.rec->ev[4].detail, "alpha, bravo, charlie");
    assert_true(strstr(f.rec->ev[9].detail, "checkpoint.safetensors") != NULL);
    /* final model written */
    assert_string_equal(last_event(f.rec, FF_EV_RUN_END)->detail, "done");
    ff_safetensors *sf;
    assert_int_equal(ff_safetensors_open(&sf, ft_path(f.cfg.out_dir, "model.safetensors")), FF_OK);
    float w[NP];
    int64_t shape[1] = {NP};
    assert_int_equal(ff_safetensors_read(sf, "w", FF_DT_F32, 1, shape, w), FF_OK);
    assert_memory_equal(w, g, sizeof w);
    ff_safetensors_close(sf);
    teardown(&f);
}

static void test_rounds_csv(void **state)
{
    (void)state;
    fixture f;
    setup(&f, NULL, 3, 2);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    f.clk.t = 1.5;
    answer(&f, &st, 0);
    /* one refusal in round 1: a duplicate */
    float u[NP] = {0};
    assert_int_equal(ff_coord_submit_update(f.c, "alpha", 1, u, NP, 1), FF_EPOLICY);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 0);
    f.clk.t = 2.25;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK); /* round 2 train open */
    answer(&f, &st, 4); /* charlie silent */
    f.clk.t = 2.25 + 11;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.state, FF_COORD_DONE);

    char *csv;
    size_t len;
    read_csv(&f, &csv, &len);
    const char *nl1 = strchr(csv, '\n');
    assert_non_null(nl1);
    const char *l1 = nl1 + 1;
    const char *nl2 = strchr(l1, '\n');
    assert_non_null(nl2);
    const char *l2 = nl2 + 1;
    assert_memory_equal(csv, FF_ROUNDS_CSV_HEADER "\n", strlen(FF_ROUNDS_CSV_HEADER) + 1);
    /* round 1: 3 updates, 1 refusal, 6 examples, |avg| = (14/6)*sqrt(2.25), 3 eval sites,
     * eval loss Σ n·loss / Σ n = (0.1+0.8+2.7... ) */
    float a0 = (float)(14.0 / 6.0), a1 = (float)(-14.0 / 6.0), a2 = (float)(7.0 / 6.0);
    double norm = sqrt((double)a0 * a0 + (double)a1 * a1 + (double)a2 * a2);
    double loss = (1 * 0.1 + 2 * 0.2 + 3 * 0.3) / 6.0;
    double auc = (1 * 0.60 + 2 * 0.61 + 3 * 0.62) / 6.0;
    char want[512];
    snprintf(want, sizeof want, "1,0,1,3,3,0,1,6,%.6g,3,%.6g,%.6g,", norm, loss, auc);
    if (strncmp(l1, want, strlen(want)) != 0)
        fail_msg("line 1: %.*s\nwant  : %s", (int)(l2 - l1), l1, want);
    assert_true(strstr(l1, ",2.250\n") != NULL); /* seconds on the injected clock */
    /* round 2: charlie dropped: 2 updates, 1 dropout, 3 examples; avg = (1+4)/3 */
    float b0 = (float)(5.0 / 3.0), b1 = (float)(-5.0 / 3.0), b2 = (float)(2.5 / 3.0);
    snprintf(want, sizeof want, "2,0,1,3,2,1,0,3,%.6g,3,",
             sqrt((double)b0 * b0 + (double)b1 * b1 + (double)b2 * b2));
    if (strncmp(l2, want, strlen(want)) != 0)
        fail_msg("line 2: %s\nwant  : %s", l2, want);
    /* the model hash column is the SHA-256 of the final vector */
    char hex[FF_SHA256_HEX];
    sha_hex(ff_coord_global(f.c), NP * sizeof(float), hex);
    assert_non_null(strstr(l2, hex));
    free(csv);
    teardown(&f);
}

/* ---- deadlines and quorum -------------------------------------------------------------- */

static void test_deadline_names_missing_sites(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "quorum: {min_sites: 1}\n", 4, 3);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, (1u << 1) | (1u << 3)); /* bravo and delta never answer */
    f.clk.t = 9.99;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_TRAIN); /* still waiting */
    assert_int_equal(st.npending, 2);
    assert_true(fabs(st.deadline_in - 0.01) < 1e-9);
    f.clk.t = 10.0;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_EVALUATE); /* the round went on */
    assert_int_equal(count_events(f.rec, FF_EV_DROPOUT), 2);
    size_t k = 0;
    for (size_t i = 0; i < f.rec->n; i++)
        if (f.rec->ev[i].type == FF_EV_DROPOUT) {
            assert_string_equal(f.rec->ev[i].site, k == 0 ? "bravo" : "delta");
            assert_string_equal(f.rec->ev[i].phase, "train");
            k++;
        }
    const rec_event *close = last_event(f.rec, FF_EV_PHASE_CLOSE);
    assert_string_equal(close->detail, "alpha, charlie");
    assert_int_equal(close->count, 2);
    /* the aggregate used only the two that answered: (1*1 + 3*3)/4 = 2.5 */
    assert_true(fabsf(ff_coord_global(f.c)[0] - 3.5f) < 1e-6f);
    teardown(&f);
}

/* A site that declines its task is no longer awaited: the phase closes when the others
 * have answered, long before the deadline, with no drop-out; the decline is an event with
 * the site's reason; only train/evaluate can be declined, once, and only by a selected site. */
static void test_decline_closes_the_phase_early(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "quorum: {min_sites: 1}\n", 3, 1);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_TRAIN);
    assert_int_equal(ff_coord_decline(f.c, FF_PHASE_TRAIN, "charlie", 1,
                                      "training refused by this site: budget", NULL), FF_OK);
    int reason;
    assert_int_equal(ff_coord_decline(f.c, FF_PHASE_TRAIN, "charlie", 1, "again", &reason),
                     FF_EPOLICY); /* no longer expected */
    assert_int_equal(reason, FF_REFUSE_NOT_SELECTED);
    assert_int_equal(ff_coord_decline(f.c, FF_PHASE_EVALUATE, "alpha", 1, "x", &reason),
                     FF_EPOLICY);
    assert_int_equal(reason, FF_REFUSE_WRONG_PHASE);
    assert_int_equal(ff_coord_decline(f.c, FF_PHASE_TRAIN, "zulu", 1, "x", &reason), FF_EPOLICY);
    assert_int_equal(reason, FF_REFUSE_UNKNOWN_SITE);
    float u[NP];
    site_update(2, u);
    assert_int_equal(ff_coord_submit_update(f.c, "charlie", 1, u, NP, 3), FF_EPOLICY);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 0); /* alpha and bravo */
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_EVALUATE); /* no wait for the deadline (clock 0) */
    assert_true(f.clk.t == 0);
    assert_int_equal(count_events(f.rec, FF_EV_DROPOUT), 0);
    const rec_event *d = last_event(f.rec, FF_EV_DECLINE);
    assert_string_equal(d->site, "charlie");
    assert_string_equal(d->phase, "train");
    assert_string_equal(d->detail, "training refused by this site: budget");
    assert_string_equal(last_event(f.rec, FF_EV_PHASE_CLOSE)->detail, "alpha, bravo");
    /* the aggregate is of the two that trained: (1*1 + 2*2)/3 */
    assert_true(fabsf(ff_coord_global(f.c)[0] - (1.0f + 5.0f / 3.0f)) < 1e-6f);
    teardown(&f);
}

/* Sites join and leave a running consortium: a site known gone (revoked) is no longer awaited
 * in the open phase (a drop-out naming why, no deadline wait), a quiet site is still awaited
 * where expected but not selected again, a site added during the run is selected from the
 * next round, and a site that comes back is selected again. */
static void test_sites_join_and_leave(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "quorum: {min_sites: 1}\n", 3, 3);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_TRAIN);
    assert_int_equal(st.npending, 3);
    assert_int_equal(ff_coord_set_site_state(f.c, 2, FF_SITE_GONE, "certificate revoked"), FF_OK);
    assert_int_equal(ff_coord_set_site_state(f.c, 1, FF_SITE_QUIET, "no call for 301 s"), FF_OK);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.npending, 2); /* alpha, and bravo: quiet sites are still awaited */
    const rec_event *d = last_event(f.rec, FF_EV_DROPOUT);
    assert_string_equal(d->site, "charlie");
    assert_string_equal(d->detail, "certificate revoked");
    assert_int_equal(ff_coord_add_site(f.c, "delta"), 3);
    assert_int_equal(ff_coord_add_site(f.c, "delta"), 3); /* once */
    assert_int_equal(ff_coord_nsites(f.c), 4);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_EVALUATE);
    assert_true(f.clk.t == 0); /* nobody waited for the revoked site's deadline */
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.round, 2);
    assert_string_equal(last_event(f.rec, FF_EV_SITES_SELECTED)->detail, "alpha, delta");
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_set_site_state(f.c, 1, FF_SITE_UP, NULL), FF_OK);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.round, 3);
    assert_string_equal(last_event(f.rec, FF_EV_SITES_SELECTED)->detail, "alpha, bravo, delta");
    assert_int_equal(ff_coord_set_site_state(f.c, 7, FF_SITE_UP, NULL), FF_EINVAL);
    teardown(&f);
}

static void test_quorum_fail_retry_then_success(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "quorum: {min_sites: 3}\non_quorum_fail: retry\nmax_retries: 2\n", 3, 1);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 1u << 2); /* charlie silent */
    f.clk.t = 10;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.attempt, 1);
    assert_int_equal(st.round, 1);
    assert_string_equal(st.phase, FF_PHASE_TRAIN);
    const rec_event *q = last_event(f.rec, FF_EV_QUORUM_FAIL);
    assert_non_null(q);
    assert_string_equal(q->detail,
                        "round 1 phase train: 2 of 3 expected sites answered within 10 s, quorum "
                        "is 3; missing: charlie");
    /* an update of the failed attempt is stale for the new one */
    float u[NP] = {0};
    int why;
    assert_int_equal(ff_coord_submit_update_ex(f.c, "alpha", 1, 0, u, NP, 1, &why), FF_EPOLICY);
    assert_int_equal(why, FF_REFUSE_STALE_ROUND);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.state, FF_COORD_DONE);
    char *csv;
    size_t len;
    read_csv(&f, &csv, &len);
    assert_non_null(strstr(csv, "\n1,0,2,3,3,1,1,6,")); /* 2 attempts, 1 dropout, 1 refusal */
    free(csv);
    teardown(&f);
}

static void test_quorum_fail_stop(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "quorum: {min_sites: 2}\non_quorum_fail: stop\n", 3, 3);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 6); /* only alpha */
    f.clk.t = 12;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_ETIMEOUT);
    ft_assert_error_has("round 1 phase train: 1 of 3 expected sites answered within 12 s, quorum "
                        "is 2; missing: bravo, charlie; on_quorum_fail is stop");
    assert_int_equal(st.state, FF_COORD_STOPPED);
    /* it stays stopped, with the same message, and never hangs */
    assert_int_equal(ff_coord_poll(f.c, &st), FF_ETIMEOUT);
    ft_assert_error_has("on_quorum_fail is stop");
    const rec_event *end = last_event(f.rec, FF_EV_RUN_END);
    assert_non_null(end);
    assert_non_null(strstr(end->detail, "missing: bravo, charlie"));
    teardown(&f);
}

static void test_quorum_retries_exhausted(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "quorum: {min_sites: 2}\nmax_retries: 2\n", 2, 3);
    ff_coord_status st;
    int rc = FF_OK;
    for (int i = 0; i < 10 && rc == FF_OK; i++) {
        rc = ff_coord_poll(f.c, &st);
        if (rc == FF_OK) {
            answer(&f, &st, 2); /* bravo never answers */
            f.clk.t += 10;
        }
    }
    assert_int_equal(rc, FF_ETIMEOUT);
    ft_assert_error_has("no retries left (max_retries reached)");
    assert_int_equal(count_events(f.rec, FF_EV_QUORUM_FAIL), 3);
    assert_int_equal(last_event(f.rec, FF_EV_QUORUM_FAIL)->attempt, 2);
    teardown(&f);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void expect_refusal(fixture *f, int rc, int why, int want, const char *site, const char *msg)
{
    assert_int_equal(rc, FF_EPOLICY);
    if (why != want)
        fail_msg("refusal %s, expected %s", ff_refusal_name(why), ff_refusal_name(want));
    ft_assert_error_has(msg);
    const rec_event *e = last_event(f->rec, FF_EV_REFUSAL);
    assert_int_equal(e->reason, want);
    assert_string_equal(e->site, site);
}

static void test_refusals(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "sampling: {mode: count, count: 3}\nseed: 1\n", 4, 3);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    int out = -1;
    for (int s = 0; s < 4; s++) {
        int selected = 0;
        for (size_t k = 0; k < st.npending; k++)
            selected |= st.pending[k] == s;
        if (!selected)
            out = s;
    }
    assert_true(out >= 0);
    int a = st.pending[0], b = st.pending[1], c = st.pending[2];
    float u[NP] = {1, 1, 1}, big[NP + 1] = {0};
    int why;
    int rc = ff_coord_submit_update_ex(f.c, "zulu", 1, -1, u, NP, 1, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_UNKNOWN_SITE, "zulu", "site 'zulu': train submission for round 1 refused: unknown site");
    rc = ff_coord_submit_update_ex(f.c, SITES[a], 2, -1, u, NP, 1, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_STALE_ROUND, SITES[a], "refused: stale round — the current round is 1");
    rc = ff_coord_submit_update_ex(f.c, SITES[a], 0, -1, u, NP, 1, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_STALE_ROUND, SITES[a], "stale round");
    rc = ff_coord_submit_update_ex(f.c, SITES[out], 1, -1, u, NP, 1, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_NOT_SELECTED, SITES[out], "not selected");
    rc = ff_coord_submit_update_ex(f.c, SITES[a], 1, -1, big, NP + 1, 1, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_WRONG_SIZE, SITES[a], "wrong size — 4 values, the model has 3");
    float bad[NP] = {1, NAN, 1};
    rc = ff_coord_submit_update_ex(f.c, SITES[a], 1, -1, bad, NP, 1, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_NONFINITE, SITES[a], "non-finite values — value 1 is NaN");
    bad[1] = 1;
    bad[2] = INFINITY;
    rc = ff_coord_submit_update_ex(f.c, SITES[a], 1, -1, bad, NP, 1, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_NONFINITE, SITES[a], "value 2 is Inf");
    rc = ff_coord_submit_update_ex(f.c, SITES[a], 1, -1, u, NP, 0, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_BAD_WEIGHT, SITES[a], "bad example count — example count 0");
    ff_coord_eval e = {.n_examples = 1, .loss = 0.1, .auroc = NAN};
    rc = ff_coord_submit_eval(f.c, SITES[a], 1, &e, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_WRONG_PHASE, SITES[a], "phase evaluate is not open; the open phase is train");
    /* accepted, then a duplicate */
    assert_int_equal(ff_coord_submit_update_ex(f.c, SITES[a], 1, 0, u, NP, 2, &why), FF_OK);
    assert_int_equal(why, FF_REFUSE_NONE);
    rc = ff_coord_submit_update_ex(f.c, SITES[a], 1, -1, u, NP, 2, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_DUPLICATE, SITES[a], "duplicate");
    assert_int_equal(ff_coord_submit_update(f.c, SITES[b], 1, u, NP, 2), FF_OK);
    /* after the deadline, before anyone polled: late */
    f.clk.t = 10.5;
    rc = ff_coord_submit_update_ex(f.c, SITES[c], 1, -1, u, NP, 2, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_LATE, SITES[c], "late — arrived 0.500 s after the deadline");
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_EVALUATE);
    /* the train phase has closed: an update now is late */
    rc = ff_coord_submit_update_ex(f.c, SITES[c], 1, -1, u, NP, 2, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_LATE, SITES[c], "phase train is closed; the open phase is evaluate");
    /* bad evaluation summaries */
    e.n_examples = -1;
    rc = ff_coord_submit_eval(f.c, SITES[a], 1, &e, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_BAD_WEIGHT, SITES[a], "example count -1");
    e.n_examples = 1;
    e.loss = NAN;
    rc = ff_coord_submit_eval(f.c, SITES[a], 1, &e, &why);
    expect_refusal(&f, rc, why, FF_REFUSE_NONFINITE, SITES[a], "loss nan");
    /* counters, and the refused values never reached the model: avg of two u's = 1 */
    assert_int_equal(ff_coord_refusals(f.c, FF_REFUSE_STALE_ROUND), 2);
    assert_int_equal(ff_coord_refusals(f.c, FF_REFUSE_NONFINITE), 3);
    assert_int_equal(ff_coord_refusals(f.c, FF_REFUSE_LATE), 2);
    assert_int_equal(count_events(f.rec, FF_EV_REFUSAL), 14);
    assert_true(ff_coord_global(f.c)[0] == 2.0f && ff_coord_global(f.c)[1] == 3.0f);
    teardown(&f);
}

/* ---- extension phases: the shape secure aggregation takes ------------------------------- */

typedef struct {
    float sum[NP];
    double weight;
    int opened, advertised;
} secagg_sim;

typedef struct {
    float v[NP];
    double w;
} masked_msg;

static int adv_submit(void *ud, ff_coord *c, int site, const void *msg, size_t len)
{
    (void)c;
    (void)site;
    secagg_sim *s = ud;
    if (len != 4 || memcmp(msg, "keys", 4) != 0)
        return ff_error(FF_ECRYPTO, "bad key advertisement");
    s->advertised++;
    return FF_OK;
}

static int masked_open(void *ud, ff_coord *c, int64_t round)
{
    (void)c;
    (void)round;
    secagg_sim *s = ud;
    memset(s->sum, 0, sizeof s->sum);
    s->weight = 0;
    s->opened++;
    return FF_OK;
}

static int masked_submit(void *ud, ff_coord *c, int site, const void *msg, size_t len)
{
    (void)c;
    (void)site;
    secagg_sim *s = ud;
    if (len != sizeof(masked_msg))
        return ff_error(FF_EINVAL, "masked input of %zu bytes", len);
    const masked_msg *m = msg;
    for (int j = 0; j < NP; j++)
        s->sum[j] += (float)m->w * m->v[j];
    s->weight += m->w;
    return FF_OK;
}

static int unmask_close(void *ud, ff_coord *c, const int *done, size_t ndone)
{
    (void)done;
    (void)ndone;
    secagg_sim *s = ud;
    return ff_coord_provide_sum(c, s->sum, s->weight, NP);
}

static void test_extension_phases_secagg_shape(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "quorum: {min_sites: 2}\n", 3, 1);
    secagg_sim sim = {0};
    assert_true(ff_coord_config_of(f.c)->deadlines.advertise_keys == 60);
    ff_coord_phase adv = {.name = "advertise_keys", .kind = FF_PHASE_COLLECT,
                          .expect = FF_PHASE_FROM_SELECTED, .deadline_s = 3, .min_sites = -1,
                          .on_submit = adv_submit, .ud = &sim};
    ff_coord_phase masked = {.name = "masked_input", .kind = FF_PHASE_COLLECT,
                             .expect = FF_PHASE_FROM_PREVIOUS, .deadline_s = 7, .min_sites = -1,
                             .on_open = masked_open, .on_submit = masked_submit,
                             .on_close = unmask_close, .ud = &sim};
    assert_int_equal(ff_coord_phase_remove(f.c, FF_PHASE_TRAIN), FF_OK);
    assert_int_equal(ff_coord_phase_insert(f.c, FF_PHASE_AGGREGATE, &adv), FF_OK);
    assert_int_equal(ff_coord_phase_insert(f.c, FF_PHASE_AGGREGATE, &masked), FF_OK);
    assert_int_equal(ff_coord_phase_insert(f.c, NULL, &masked), FF_EINVAL);
    ff_coord_phase other = adv;
    ff_strlcpy(other.name, "other", sizeof other.name);
    assert_int_equal(ff_coord_phase_insert(f.c, "nope", &other), FF_ENOTFOUND);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, "advertise_keys");
    int why;
    assert_int_equal(ff_coord_submit(f.c, "advertise_keys", "alpha", 1, "keys", 4, &why), FF_OK);
    assert_int_equal(ff_coord_submit(f.c, "advertise_keys", "bravo", 1, "kezs", 4, &why), FF_EPOLICY);
    assert_int_equal(why, FF_REFUSE_REJECTED);
    ft_assert_error_has("bad key advertisement");
    assert_int_equal(ff_coord_submit(f.c, "advertise_keys", "bravo", 1, "keys", 4, &why), FF_OK);
    /* charlie drops out in advertise_keys */
    f.clk.t = 3;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, "masked_input");
    assert_int_equal(st.npending, 2);
    assert_int_equal(sim.opened, 1);
    /* the engine's deadline for this phase is its own: 7 s from t = 3 */
    assert_true(st.deadline_in == 7.0);
    masked_msg m = {{1, 1, 1}, 1};
    assert_int_equal(ff_coord_submit(f.c, "masked_input", "charlie", 1, &m, sizeof m, &why), FF_EPOLICY);
    assert_int_equal(why, FF_REFUSE_NOT_SELECTED); /* dropped earlier: not expected any more */
    assert_int_equal(ff_coord_submit(f.c, "masked_input", "alpha", 1, &m, sizeof m, &why), FF_OK);
    masked_msg m2 = {{4, 4, 4}, 3};
    assert_int_equal(ff_coord_submit(f.c, "masked_input", "bravo", 1, &m2, sizeof m2, &why), FF_OK);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    /* Σ w v / Σ w = (1 + 12)/4 = 3.25 */
    assert_true(ff_coord_global(f.c)[0] == 4.25f);
    assert_int_equal(count_events(f.rec, FF_EV_DROPOUT), 1);
    assert_string_equal(last_event(f.rec, FF_EV_DROPOUT)->phase, "advertise_keys");
    teardown(&f);
}

/* ---- mechanisms (privacy) and evaluate callbacks ---------------------------------------- */

static int clip_update(void *ud, int site, float *u, size_t n, double *w)
{
    (void)ud;
    (void)site;
    double norm = 0;
    for (size_t j = 0; j < n; j++)
        norm += (double)u[j] * u[j];
    norm = sqrt(norm);
    if (norm > 1)
        for (size_t j = 0; j < n; j++)
            u[j] = (float)(u[j] / norm);
    *w = 1; /* DP-FedAvg style: equal weights */
    return FF_OK;
}

static int noise_sum(void *ud, int64_t round, float *sum, size_t n, double *total, size_t k)
{
    (void)round;
    (void)total;
    size_t *seen = ud;
    *seen = k;
    for (size_t j = 0; j < n; j++)
        sum[j] += 0.5f; /* a deterministic "noise" the test can predict */
    return FF_OK;
}

static int eval_close(void *ud, ff_coord *c, const int *done, size_t ndone)
{
    (void)ud;
    (void)done;
    ff_coord_set_pooled_auroc(c, 0.5 + 0.1 * (double)ndone);
    return FF_OK;
}

static void test_mechanism_and_pooled_auroc(void **state)
{
    (void)state;
    fixture f;
    setup(&f, NULL, 2, 1);
    size_t seen = 0;
    ff_coord_mechanism mech = {.on_update = clip_update, .on_sum = noise_sum, .ud = &seen};
    ff_coord_set_mechanism(f.c, &mech);
    ff_coord_phase *ev = ff_coord_phase_find(f.c, FF_PHASE_EVALUATE);
    assert_non_null(ev);
    ev->on_close = eval_close;
    assert_null(ff_coord_phase_find(f.c, "nope"));
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    float a[NP] = {3, 0, 4}, b[NP] = {0.1f, 0.2f, 0.2f};
    assert_int_equal(ff_coord_submit_update(f.c, "alpha", 1, a, NP, 100), FF_OK);
    assert_int_equal(ff_coord_submit_update(f.c, "bravo", 1, b, NP, 1), FF_OK);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(seen, 2);
    /* clipped a = {0.6, 0, 0.8}; sum + 0.5 then / 2 */
    const float *g = ff_coord_global(f.c);
    assert_true(fabsf(g[0] - (1 + (0.6f + 0.1f + 0.5f) / 2)) < 1e-6f);
    assert_true(fabsf(g[2] - (3 + (0.8f + 0.2f + 0.5f) / 2)) < 1e-6f);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    char *csv;
    size_t len;
    read_csv(&f, &csv, &len);
    assert_non_null(strstr(csv, ",0.7,")); /* pooled AUROC from the callback, 0.5 + 0.1*2 */
    free(csv);
    teardown(&f);
}

/* ---- resume checks ----------------------------------------------------------------------- */

static void test_resume_refuses_other_config_and_trims_csv(void **state)
{
    (void)state;
    fixture f;
    setup(&f, NULL, 3, 2);
    assert_int_equal(run_all(&f, 0), FF_OK);
    ff_coord_free(f.c);
    free(f.rec);
    /* a torn line and a line of a round the checkpoint lacks */
    const char *csvp = ft_path(f.cfg.out_dir, "rounds.csv");
    FILE *fp = fopen(csvp, "a");
    fputs("3,0,1,3,3,0,0,6,1,3,0.1,0.6,abc,1.0\n4,0,1,3", fp);
    fclose(fp);
    f.cfg.rounds = 3;
    engine_new(&f, 3);
    int resumed;
    assert_int_equal(ff_coord_resume(f.c, &resumed), FF_OK);
    assert_int_equal(resumed, 1);
    assert_int_equal(ff_coord_round(f.c), 2);
    char *csv;
    size_t len;
    assert_int_equal(ff_file_read_all(csvp, 1 << 20, &csv, &len), FF_OK);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += csv[i] == '\n';
    assert_int_equal(lines, 3);
    assert_int_equal(csv[len - 1], '\n');
    free(csv);
    assert_int_equal(run_all(&f, 0), FF_OK);
    assert_int_equal(ff_coord_round(f.c), 3);
    assert_string_equal(f.rec->ev[0].detail, "resumed");
    ff_coord_free(f.c);
    free(f.rec);
    /* another seed = another trajectory: refused, naming the checkpoint */
    f.cfg.seed = 5;
    engine_new(&f, 3);
    assert_int_equal(ff_coord_resume(f.c, &resumed), FF_ESTATE);
    ft_assert_error_has("checkpoint.safetensors: made under another configuration");
    ff_coord_free(f.c);
    free(f.rec);
    /* a corrupt checkpoint is an error, not a silent fresh start */
    f.cfg.seed = 0;
    ft_write_file(ft_path(f.cfg.checkpoint_dir, "checkpoint.safetensors"), "garbage!", 8);
    engine_new(&f, 3);
    assert_int_equal(ff_coord_resume(f.c, &resumed), FF_EFORMAT);
    ft_assert_error_has("checkpoint.safetensors");
    teardown(&f);
}

/* The commit check of a pending checkpoint: answers `answer`, remembers what it was asked. */
typedef struct {
    int answer, calls;
    int64_t round;
    char sha[FF_SHA256_HEX];
} commit_probe;

static int commit_check(void *ud, int64_t round, const char *sha)
{
    commit_probe *p = ud;
    p->calls++;
    p->round = round;
    ff_strlcpy(p->sha, sha, sizeof p->sha);
    return p->answer;
}

/* A run killed between writing round 2's checkpoint.safetensors.next and renaming it: resume
 * keeps it only when the caller's record (the audit log) has round 2 with that model. */
static void test_pending_checkpoint_commit_check(void **state)
{
    (void)state;
    fixture f;
    setup(&f, NULL, 3, 1);
    /* a record that fails (an audit append that did not happen): nothing is published */
    commit_probe no = {.answer = 0};
    ff_coord_set_commit_check(f.c, commit_check, &no);
    assert_int_not_equal(run_all(&f, 0), FF_OK);
    ft_assert_error_has("round 1: the audit log did not record the round, so its checkpoint is not published");
    assert_false(ff_path_exists(ft_path(f.cfg.checkpoint_dir, "checkpoint.safetensors")));
    assert_true(ff_path_exists(ft_path(f.cfg.checkpoint_dir, "checkpoint.safetensors.next")));
    ff_coord_free(f.c);
    free(f.rec);
    engine_new(&f, 3); /* no check: the complete pending round 1 is kept */
    assert_int_equal(run_all(&f, 0), FF_OK);
    const char *ck = ft_path(f.cfg.checkpoint_dir, "checkpoint.safetensors");
    char *r1, *r2;
    size_t n1, n2;
    assert_int_equal(ff_file_read_all(ck, 1 << 20, &r1, &n1), FF_OK);
    ff_coord_free(f.c);
    free(f.rec);
    f.cfg.rounds = 2;
    engine_new(&f, 3);
    assert_int_equal(run_all(&f, 0), FF_OK);
    char sha2[FF_SHA256_HEX] = "";
    for (size_t i = 0; i < f.rec->n; i++)
        if (f.rec->ev[i].type == FF_EV_CHECKPOINT)
            ff_strlcpy(sha2, f.rec->ev[i].hash, sizeof sha2);
    assert_int_equal(ff_file_read_all(ck, 1 << 20, &r2, &n2), FF_OK);
    const char *next = ft_path(f.cfg.checkpoint_dir, "checkpoint.safetensors.next");
    assert_false(ff_path_exists(next)); /* a finished round leaves no pending file */
    for (int answer = 0; answer <= 2; answer++) { /* 2: no check set */
        ff_coord_free(f.c);
        free(f.rec);
        ft_write_file(ck, r1, n1);
        ft_write_file(ft_path(f.cfg.checkpoint_dir, "checkpoint.safetensors.next"), r2, n2);
        engine_new(&f, 3);
        commit_probe probe = {.answer = answer};
        if (answer < 2)
            ff_coord_set_commit_check(f.c, commit_check, &probe);
        int resumed;
        assert_int_equal(ff_coord_resume(f.c, &resumed), FF_OK);
        assert_int_equal(ff_coord_round(f.c), answer == 0 ? 1 : 2);
        assert_false(ff_path_exists(next));
        if (answer < 2) {
            assert_int_equal(probe.calls, 1);
            assert_int_equal(probe.round, 2);
            assert_string_equal(probe.sha, sha2);
        }
        char *now;
        size_t nn;
        assert_int_equal(ff_file_read_all(ck, 1 << 20, &now, &nn), FF_OK);
        assert_true(answer == 0 ? nn == n1 && memcmp(now, r1, n1) == 0
                                : nn == n2 && memcmp(now, r2, n2) == 0);
        free(now);
    }
    free(r1);
    free(r2);
    teardown(&f);
}

static void test_stages_auto_resume_and_evaluate_all(void **state)
{
    (void)state;
    fixture f;
    setup(&f, "sampling: {mode: count, count: 1}\n", 3, 3);
    ff_plan plan;
    const char *py = "stages:\n  - {name: clip, rounds: 2, objective: contrastive}\n"
                     "  - {name: tune, rounds: 1}\n";
    assert_int_equal(ff_plan_load_str(&plan, "p.yaml", py, strlen(py), 3), FF_OK);
    char job[FF_SHA256_HEX];
    assert_int_equal(ff_job_hash(&plan, "m", 1, job), FF_OK);
    ff_coord_set_plan(f.c, &plan, job);
    /* every site evaluates, not only the one that trained */
    ff_coord_phase_find(f.c, FF_PHASE_EVALUATE)->expect = FF_PHASE_FROM_ALL;
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.npending, 1);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_string_equal(st.phase, FF_PHASE_EVALUATE);
    assert_int_equal(st.npending, 3);
    assert_int_equal(st.stage, 0);
    answer(&f, &st, 0);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.round, 2);
    /* crash in round 2; restart without calling ff_coord_resume: the first poll resumes */
    ff_coord_free(f.c);
    free(f.rec);
    engine_new(&f, 3);
    ff_coord_set_plan(f.c, &plan, job);
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    assert_int_equal(st.round, 2);
    assert_string_equal(f.rec->ev[0].detail, "resumed");
    assert_int_equal(run_all(&f, 0), FF_OK);
    size_t k = 0;
    const char *want[] = {"clip", "tune"};
    for (size_t i = 0; i < f.rec->n; i++)
        if (f.rec->ev[i].type == FF_EV_ROUND_START)
            assert_string_equal(f.rec->ev[i].detail, want[k++]);
    assert_int_equal(k, 2);
    char *csv;
    size_t len;
    read_csv(&f, &csv, &len);
    assert_non_null(strstr(csv, "\n1,0,"));
    assert_non_null(strstr(csv, "\n2,0,"));
    assert_non_null(strstr(csv, "\n3,1,"));
    free(csv);
    /* another job (plan) must not resume this checkpoint */
    ff_coord_free(f.c);
    free(f.rec);
    engine_new(&f, 3);
    ff_coord_set_plan(f.c, &plan, "0000");
    assert_int_equal(ff_coord_poll(f.c, &st), FF_ESTATE);
    ft_assert_error_has("made for another job");
    ff_plan_free(&plan);
    teardown(&f);
}

static void test_refusals_and_dropouts_are_logged_with_site_names(void **state)
{
    (void)state;
    fixture f;
    setup(&f, NULL, 3, 1);
    const char *log = ft_path(f.tmp, "coordinator.log");
    assert_int_equal(ff_log_open(FF_LOG_WARN, FF_LOG_PLAIN, log, "coordinator"), FF_OK);
    ff_coord_status st;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    answer(&f, &st, 2); /* bravo silent */
    float u[NP] = {0};
    assert_int_equal(ff_coord_submit_update(f.c, "alpha", 1, u, NP, 1), FF_EPOLICY);
    f.clk.t = 10;
    assert_int_equal(ff_coord_poll(f.c, &st), FF_OK);
    ff_log_close();
    ff_log_set_level(FF_LOG_OFF);
    char *text;
    size_t len;
    assert_int_equal(ff_file_read_all(log, 1 << 20, &text, &len), FF_OK);
    assert_non_null(strstr(text, "refused train submission from site 'alpha' for round 1: duplicate"));
    assert_non_null(strstr(text, "round 1 phase train: deadline of 10 s passed; 1 site(s) did not answer: bravo"));
    free(text);
    teardown(&f);
}

static void test_model_table_validation(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    cfg_init(&f, NULL, 3);
    ff_coord_tensor gap[] = {{.name = "a", .ndim = 1, .shape = {1}, .offset = 0},
                             {.name = "b", .ndim = 1, .shape = {1}, .offset = 2}};
    ff_coord_model m = {.n = NP, .tensors = gap, .ntensors = 2, .init = INIT};
    assert_int_equal(ff_coord_new(&f.c, &f.cfg, &m, SITES, 2), FF_EINVAL);
    ft_assert_error_has("tensor 'b' starts at 2, expected 1");
    ff_coord_tensor shortt[] = {{.name = "a", .ndim = 1, .shape = {2}, .offset = 0}};
    m.tensors = shortt;
    m.ntensors = 1;
    assert_int_equal(ff_coord_new(&f.c, &f.cfg, &m, SITES, 2), FF_EINVAL);
    ft_assert_error_has("covers 2 floats, the model has 3");
    m.tensors = TABLE;
    const char *dup[] = {"x", "x"};
    assert_int_equal(ff_coord_new(&f.c, &f.cfg, &m, dup, 2), FF_EINVAL);
    ft_assert_error_has("site 'x' is listed twice");
    ff_coord_config_free(&f.cfg);
    ft_rmtree(f.tmp);
}

static void test_progress_line(void **state)
{
    (void)state;
    fixture f;
    setup(&f, NULL, 3, 3);
    FILE *pf = tmpfile();
    ff_coord_set_progress(f.c, pf);
    assert_int_equal(run_all(&f, 0), FF_OK);
    rewind(pf);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, pf);
    buf[n] = '\0';
    fclose(pf);
    /* the final line: round 3/3, 3 of 3 rounds done, the last pooled AUROC (site-weighted) */
    assert_non_null(strstr(buf, "t: 3/3 (100%)"));
    assert_non_null(strstr(buf, "round 3/3 phase - sites"));
    assert_non_null(strstr(buf, "AUROC 0.6133"));
    teardown(&f);
}

int main(void)
{
    ff_log_set_level(FF_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampling_modes_and_determinism),
        cmocka_unit_test(test_sampling_below_quorum_is_a_config_error),
        cmocka_unit_test(test_round_events_and_weighted_average),
        cmocka_unit_test(test_rounds_csv),
        cmocka_unit_test(test_deadline_names_missing_sites),
        cmocka_unit_test(test_quorum_fail_retry_then_success),
        cmocka_unit_test(test_quorum_fail_stop),
        cmocka_unit_test(test_quorum_retries_exhausted),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_extension_phases_secagg_shape),
        cmocka_unit_test(test_mechanism_and_pooled_auroc),
        cmocka_unit_test(test_resume_refuses_other_config_and_trims_csv),
        cmocka_unit_test(test_pending_checkpoint_commit_check),
        cmocka_unit_test(test_decline_closes_the_phase_early),
        cmocka_unit_test(test_sites_join_and_leave),
        cmocka_unit_test(test_stages_auto_resume_and_evaluate_all),
        cmocka_unit_test(test_refusals_and_dropouts_are_logged_with_site_names),
        cmocka_unit_test(test_model_table_validation),
        cmocka_unit_test(test_progress_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
