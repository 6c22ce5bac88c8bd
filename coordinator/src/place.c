/* Finds where a key path ("sampling.count", "stages[1].name") sits in a YAML text, so the
 * cross-field checks that the field table cannot express still report FILE:LINE:COL. */
#include "place.h"

#include "ff/common.h"

void coord_key_place(const char *yaml, size_t len, const char *path, size_t *line, size_t *col)
{
    ff_cfg_key_place(yaml, len, path, line, col);
}
