#ifndef FF_COORD_PLACE_H
#define FF_COORD_PLACE_H
#include <stddef.h>
/* Line and column (1-based) of the deepest key of path found in the YAML text; 1:1 when the
 * text does not parse or has none of it. */
void coord_key_place(const char *yaml, size_t len, const char *path, size_t *line, size_t *col);
#define COORD_CFG_MAX_FILE (4u * 1024u * 1024u)
int coord_place_error(const char *name, const char *yaml, size_t len, const char *path,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#endif
