/* Disk-full tests: a small tmpfs mounted on a fresh folder (root only; the test exits 77 =
 * skipped when mount is not permitted), and a filler that takes every free byte. */
#ifndef FF_TEST_TMPFS_H
#define FF_TEST_TMPFS_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static char ft_tmpfs_dir[256];

/* Mounts a tmpfs of `size` ("256k") and returns its path, or NULL after printing why. */
static const char *ft_tmpfs_mount(const char *size)
{
    snprintf(ft_tmpfs_dir, sizeof ft_tmpfs_dir, "/tmp/ff_diskfull.XXXXXX");
    if (!mkdtemp(ft_tmpfs_dir))
        return NULL;
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
    if (mount("tmpfs", ft_tmpfs_dir, "tmpfs", 0, opts) != 0) {
        fprintf(stderr, "skipped: cannot mount a tmpfs (%s); run as root\n", strerror(errno));
        rmdir(ft_tmpfs_dir);
        return NULL;
    }
    return ft_tmpfs_dir;
}

static void ft_tmpfs_umount(void)
{
    if (ft_tmpfs_dir[0] && umount2(ft_tmpfs_dir, MNT_DETACH) == 0)
        rmdir(ft_tmpfs_dir);
}

/* Creates DIR/filler and writes until the file system is full (ENOSPC). Returns bytes. */
static long ft_tmpfs_fill(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        return -1;
    static char block[512];
    long total = 0;
    ssize_t w;
    while ((w = write(fd, block, sizeof block)) > 0)
        total += w;
    while ((w = write(fd, block, 1)) > 0) /* the last bytes of a partial page */
        total += w;
    close(fd);
    return total;
}

static void ft_tmpfs_unfill(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/filler", dir);
    unlink(path);
}

/* Whole file into a malloc'd buffer (NULL if unreadable). */
static char *ft_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        *len = (size_t)n;
    return b;
}

#endif
