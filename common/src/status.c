/* Status codes and the thread-local error message. */
#include "ff/common.h"

#include <stdlib.h>
#include <string.h>

#define FF_ERRMSG_MAX 1024

static _Thread_local char g_msg[FF_ERRMSG_MAX];

const char *ff_status_name(int status)
{
    static const char *const names[] = {"OK",      "EINVAL",   "ENOMEM",  "EIO",
                                        "EFORMAT", "ECONFIG",  "ERANGE",  "ENOTFOUND",
                                        "ECRYPTO", "ESTATE",   "ENUMERIC", "EPOLICY",
                                        "ENET",    "ETIMEOUT", "EINTERNAL"};
    int i = -status;
    if (i < 0 || (size_t)i >= FF_ARRAY_LEN(names))
        return "?";
    return names[i];
}

int ff_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return status;
}

int ff_error_prefix(int status, const char *fmt, ...)
{
    char prefix[FF_ERRMSG_MAX];
    char old[FF_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t n = strlen(prefix);
    memcpy(g_msg, prefix, n + 1);
    ff_strlcpy(g_msg + n, old, sizeof g_msg - n);
    return status;
}

const char *ff_error_message(void)
{
    return g_msg;
}

void ff_error_clear(void)
{
    g_msg[0] = '\0';
}

void ff_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "fedfuse: internal error: assertion '%s' failed at %s:%d\n", cond, file,
            line);
    abort();
}
