/* Durable file writes and whole-file reads. */
#include "ff/common.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ff_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

ff_file_stamp ff_file_stamp_of(const char *path)
{
    struct stat st;
    ff_file_stamp s = {0, 0, 0};
    if (stat(path, &st) == 0) {
        s.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        s.size = (int64_t)st.st_size;
        s.ino = (uint64_t)st.st_ino;
    }
    return s;
}

int ff_file_stamp_eq(ff_file_stamp a, ff_file_stamp b)
{
    return a.mtime_ns == b.mtime_ns && a.size == b.size && a.ino == b.ino;
}

static int fsync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return ff_error(FF_ENOMEM, "out of memory");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return FF_OK; /* a directory we cannot open is not fsynced; rename stays atomic */
    fsync(fd);
    close(fd);
    return FF_OK;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ff_atomic_open(ff_atomic_file *f, const char *path, unsigned mode)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    size_t n = strlen(path) + 32;
    f->tmp = malloc(n);
    f->path = strdup(path);
    if (!f->tmp || !f->path) {
        ff_atomic_abort(f);
        return ff_error(FF_ENOMEM, "out of memory");
    }
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (f->fd < 0 || fchmod(f->fd, (mode_t)mode) != 0) {
        int rc = ff_error(FF_EIO, "%s: cannot create: %s", f->tmp, strerror(errno));
        ff_atomic_abort(f);
        return rc;
    }
    return FF_OK;
}

int ff_atomic_write(ff_atomic_file *f, const void *buf, size_t len)
{
    if (f->err)
        return ff_error(FF_EIO, "%s: earlier write failed: %s", f->path, strerror(f->err));
    if (write_full(f->fd, buf, len) != 0) {
        f->err = errno;
        return ff_error(FF_EIO, "%s: write failed: %s", f->path, strerror(f->err));
    }
    return FF_OK;
}

void ff_atomic_abort(ff_atomic_file *f)
{
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->tmp)
        unlink(f->tmp);
    FF_FREE(f->tmp);
    FF_FREE(f->path);
}

int ff_atomic_commit(ff_atomic_file *f)
{
    int err = f->err;
    if (!err && fsync(f->fd) != 0)
        err = errno;
    if (close(f->fd) != 0 && !err)
        err = errno;
    f->fd = -1;
    if (!err && rename(f->tmp, f->path) != 0)
        err = errno;
    if (err) {
        int rc = ff_error(FF_EIO, "%s: write failed: %s (previous file left intact)", f->path,
                          strerror(err));
        ff_atomic_abort(f);
        return rc;
    }
    int rc = fsync_parent_dir(f->path);
    FF_FREE(f->tmp);
    FF_FREE(f->path);
    return rc;
}

int ff_file_rename_durable(const char *from, const char *to)
{
    if (rename(from, to) != 0)
        return ff_error(FF_EIO, "rename %s to %s: %s", from, to, strerror(errno));
    return fsync_parent_dir(to);
}

int ff_file_write_atomic(const char *path, const void *buf, size_t len, unsigned mode)
{
    ff_atomic_file f;
    int rc = ff_atomic_open(&f, path, mode);
    if (rc != FF_OK)
        return rc;
    rc = ff_atomic_write(&f, buf, len);
    if (rc != FF_OK) {
        ff_atomic_abort(&f);
        return rc;
    }
    return ff_atomic_commit(&f);
}

int ff_file_open_regular(const char *path, int *fd_out)
{
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer forever. The check is
     * on the opened descriptor (fstat), so the file cannot be swapped after it. */
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ff_error(FF_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || fl < 0 ||
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        close(fd);
        return ff_error(FF_EIO, "%s: not a regular file", path);
    }
    *fd_out = fd;
    return FF_OK;
}

FILE *ff_file_fopen_regular(const char *path)
{
    int fd;
    if (ff_file_open_regular(path, &fd) != FF_OK)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f)
        close(fd);
    return f;
}

int ff_file_read_all(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd, rc = ff_file_open_regular(path, &fd);
    if (rc != FF_OK)
        return rc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ff_error(FF_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ff_error(FF_ENOMEM, "%s: %lld bytes exceeds the limit of %zu", path,
                        (long long)st.st_size, max);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return ff_error(FF_ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != size) {
        free(buf);
        return ff_error(FF_EIO, "%s: short read (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return FF_OK;
}

int ff_mkdir_p(const char *path, unsigned mode)
{
    char buf[4096];
    if (ff_strlcpy(buf, path, sizeof buf) != FF_OK)
        return ff_error(FF_EINVAL, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return ff_error(FF_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
        return ff_error(FF_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
    return FF_OK;
}
