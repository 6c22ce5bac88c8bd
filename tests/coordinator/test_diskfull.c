/* Disk full during a coordinator checkpoint (a 256 KiB tmpfs filled to the last byte): the
 * round fails with an error naming the cause, the previous checkpoint is byte-identical, and
 * after space returns the run resumes from it to the same model as an uninterrupted run.
 * Needs root for mount; exits 77 (skipped) otherwise. */
#include "testutil.h"

#include <string.h>

#include "ft_tmpfs.h"
#include "toyfed.h"

static const char *g_mnt;

static void test_checkpoint_disk_full(void **state)
{
    (void)state;
    toy_fed f;
    toy_init(&f);
    ff_coord_config cfg;
    float ref[TOY_N], got[TOY_N];
    /* Reference: 6 rounds uninterrupted on a normal disk. */
    toy_config(&cfg, ft_tmpdir(), 6, FF_STRATEGY_FEDAVG);
    assert_int_equal(toy_run(&f, &cfg, NULL, NULL, ref), 1);
    ff_coord_config_free(&cfg);

    toy_config(&cfg, g_mnt, 3, FF_STRATEGY_FEDAVG);
    assert_int_equal(toy_run(&f, &cfg, NULL, NULL, NULL), 1);
    char ck[600];
    snprintf(ck, sizeof ck, "%s/ckpt/checkpoint.safetensors", g_mnt);
    size_t n0, n1;
    char *before = ft_slurp(ck, &n0);
    assert_non_null(before);

    assert_true(ft_tmpfs_fill(g_mnt) > 0);
    cfg.rounds = 6;
    int rc = toy_run(&f, &cfg, NULL, NULL, NULL);
    assert_true(rc < 0);
    printf("disk full: rc %d: %s\n", rc, ff_error_message());
    ft_assert_error_has("No space left on device");
    char *after = ft_slurp(ck, &n1);
    assert_non_null(after);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);

    ft_tmpfs_unfill(g_mnt);
    assert_int_equal(toy_run(&f, &cfg, NULL, NULL, got), 1);
    assert_memory_equal(ref, got, sizeof ref);
    free(before);
    free(after);
    ff_coord_config_free(&cfg);
    toy_free(&f);
}

int main(void)
{
    if (!(g_mnt = ft_tmpfs_mount("256k")))
        return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_checkpoint_disk_full)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ft_tmpfs_umount();
    return rc;
}
