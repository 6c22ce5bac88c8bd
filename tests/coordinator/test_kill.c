/* A real kill -9: coord_toyrun is killed at random moments (mid-training, mid-checkpoint,
 * between rounds) and restarted with the same arguments until it finishes; its final model
 * must equal, bit for bit, the model of an uninterrupted run of the same program. */
#include "testutil.h"
#include "toyfed.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOYRUN FF_BINARY_DIR "/tests/coordinator/coord_toyrun"
#define ROUNDS "25"
#define STRATEGY "2" /* FedAdam: optimiser state and sampling RNG both matter */

static pid_t spawn(const char *dir, const char *sleep_us)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(TOYRUN, TOYRUN, dir, ROUNDS, STRATEGY, sleep_us, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void read_model(const char *dir, float *w)
{
    char p[600];
    snprintf(p, sizeof p, "%s/out/model.safetensors", dir);
    ff_safetensors *st;
    assert_int_equal(ff_safetensors_open(&st, p), FF_OK);
    int64_t s2[2] = {1, TOY_D}, s1[1] = {1};
    assert_int_equal(ff_safetensors_read(st, "lin.weight", FF_DT_F32, 2, s2, w), FF_OK);
    assert_int_equal(ff_safetensors_read(st, "lin.bias", FF_DT_F32, 1, s1, w + TOY_D), FF_OK);
    assert_string_equal(ff_safetensors_meta(st, "round"), ROUNDS);
    ff_safetensors_close(st);
}

static void test_kill9_and_restart_gives_the_same_model(void **state)
{
    (void)state;
    const char *ref = ft_tmpdir(), *run = ft_tmpdir();
    int st = wait_exit(spawn(ref, "0"));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    ff_rng r;
    ff_rng_init(&r, (uint64_t)time(NULL), 0);
    int killed = 0, restarts = 0, finished = 0;
    while (!finished && restarts < 60) {
        pid_t pid = spawn(run, "2000");
        /* 2 ms per local training, 2 sites per round: a round takes ~5-15 ms with fsyncs */
        unsigned delay_us = 2000 + ff_rng_below(&r, 25000);
        usleep(delay_us);
        if (restarts < 8)
            kill(pid, SIGKILL);
        st = wait_exit(pid);
        restarts++;
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
            killed++;
        else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            finished = 1;
        else
            fail_msg("coord_toyrun failed with status %d after %d restarts", st, restarts);
    }
    print_message("killed %d times, %d starts\n", killed, restarts);
    assert_true(finished);
    /* A fast machine may finish the remaining rounds before a late kill lands; two kills
     * mid-run already exercise resume twice. */
    assert_true(killed >= 2);
    float a[TOY_N], b[TOY_N];
    read_model(ref, a);
    read_model(run, b);
    assert_memory_equal(a, b, sizeof a);
    /* rounds.csv: the header and exactly one line per round, whatever the kills did */
    char p[600], *csv;
    size_t len;
    snprintf(p, sizeof p, "%s/out/rounds.csv", run);
    assert_int_equal(ff_file_read_all(p, 1 << 20, &csv, &len), FF_OK);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += csv[i] == '\n';
    assert_int_equal(lines, 1 + atoi(ROUNDS));
    free(csv);
    ft_rmtree(ref);
    ft_rmtree(run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_and_restart_gives_the_same_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
