/* Fault-injection hooks for the process-level tests (tests/fed/fault_kill.sh and others),
 * compiled only when CMake's FF_TEST_HOOKS option is on (fed/CMakeLists.txt).
 *
 * FEDFUSE_TEST_KILL_AT=<point>:<round> makes this process send itself SIGKILL when it reaches
 * <point> in round <round>: the same death as `kill -9` from outside, but at an exact place in
 * the protocol, which an outside observer of a millisecond-long phase cannot hit. Unset (every
 * real deployment) it does nothing; set, it can only end the process that reads it. The points
 * are listed in docs/reliability.md ("Kill points"). FEDFUSE_TEST_STOP_AT=<point>:<round> stops
 * the process there (SIGSTOP) instead: a node that hangs, until the test sends SIGCONT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fed_internal.h"

int fed_test_kill_set(void)
{
    const char *v = getenv("FEDFUSE_TEST_KILL_AT");
    return v && v[0];
}

/* FEDFUSE_TEST_HOLD_AFTER_SHARE=<seconds> (tests/fed/lib.sh, secagg_killed): a client holds
 * after sharing its keys so a test can kill it between share_keys and masked_input. */
unsigned fed_test_hold_after_share(void)
{
    const char *v = getenv("FEDFUSE_TEST_HOLD_AFTER_SHARE");
    return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/* 1 when the variable var is "<point>:<round>" for this point and round. */
static int hook_armed(const char *var, const char *point, int64_t round)
{
    const char *v = getenv(var);
    if (!v || !v[0])
        return 0;
    const char *colon = strrchr(v, ':');
    size_t l = strlen(point);
    return colon && (size_t)(colon - v) == l && strncmp(v, point, l) == 0 &&
           strtoll(colon + 1, NULL, 10) == round;
}

int fed_test_kill_armed(const char *point, int64_t round)
{
    return hook_armed("FEDFUSE_TEST_KILL_AT", point, round);
}

/* FEDFUSE_TEST_RESEND_AT=<point>:<round> (tests/fed/fault_net.sh, lost_ack): a client drops
 * the acknowledgement of that upload and takes it for a lost link, as when the link breaks
 * after the coordinator took the upload but before its acknowledgement arrived. */
int fed_test_resend_armed(const char *point, int64_t round)
{
    return hook_armed("FEDFUSE_TEST_RESEND_AT", point, round);
}

void fed_test_kill_at(const char *point, int64_t round)
{
    if (hook_armed("FEDFUSE_TEST_STOP_AT", point, round)) {
        /* FEDFUSE_TEST_STOP_AT (tests/deploy): a hung node, at an exact place; the test
         * resumes it with SIGCONT when it wants to see what the node does next */
        char line[160];
        int n = snprintf(line, sizeof line, "test hook FEDFUSE_TEST_STOP_AT: SIGSTOP at %s of "
                         "round %lld (pid %d)\n", point, (long long)round, (int)getpid());
        ssize_t w = n > 0 ? write(STDERR_FILENO, line, (size_t)FF_MIN(n, (int)sizeof line - 1)) : 0;
        (void)w;
        raise(SIGSTOP);
    }
    if (!fed_test_kill_armed(point, round))
        return;
    /* One unbuffered write, so the test can see where the process died. */
    char line[160];
    int n = snprintf(line, sizeof line, "test hook FEDFUSE_TEST_KILL_AT: SIGKILL at %s of round %lld\n",
                     point, (long long)round);
    ssize_t w = n > 0 ? write(STDERR_FILENO, line, (size_t)FF_MIN(n, (int)sizeof line - 1)) : 0;
    (void)w;
    raise(SIGKILL);
}

/* FEDFUSE_TEST_NOISE_SEED=<n> (tests/stats, stats_dp): a fixed statistics noise seed, so a
 * test's draw is reproducible. 1 and *seed set when present. */
int fed_test_noise_seed(uint64_t *seed)
{
    const char *v = getenv("FEDFUSE_TEST_NOISE_SEED");
    if (!v || !v[0])
        return 0;
    *seed = strtoull(v, NULL, 10);
    return 1;
}
