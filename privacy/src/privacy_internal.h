/* Helpers shared by the privacy sources; not part of the public API. */
#ifndef FF_PRIVACY_INTERNAL_H
#define FF_PRIVACY_INTERNAL_H

#include "ff/privacy.h"

/* log(e^a + e^b) with -inf as log 0. */
long double ffp_log_add(long double a, long double b);

#endif
