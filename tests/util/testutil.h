/* Shared test fixtures: temporary folders, file helpers and assertions on error messages. */
#ifndef FF_TESTUTIL_H
#define FF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ff/common.h"

/* A fresh temporary folder per call (removed by ft_rmtree); path is static per slot. */
const char *ft_tmpdir(void);
void ft_rmtree(const char *path);
/* path = dir/name into a static rotating buffer. */
const char *ft_path(const char *dir, const char *name);
void ft_write_file(const char *path, const void *data, size_t len);
/* Fails the test unless the last error message contains needle. */
#define ft_assert_error_has(needle) ft_assert_error_has_impl(needle, __FILE__, __LINE__)
void ft_assert_error_has_impl(const char *needle, const char *file, int line);
/* Relative error |a-b| / max(|a|,|b|,floor). */
double ft_rel_err(double a, double b, double floor);

#endif
