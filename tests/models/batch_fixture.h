/* Synthetic batches in the spec's presence patterns and the single-example gradient oracle,
 * shared by the model tests and the client DP-SGD test. */
#ifndef FF_TEST_BATCH_FIXTURE_H
#define FF_TEST_BATCH_FIXTURE_H

#include <stdint.h>

#include "ff/models.h"

/* Allocates *b and fills it with B samples of config c drawn from seed; sample i has presence
 * pattern i % 7 (0 all, 1 no image, 2 no text, 3 no EHR, 4 image, 5 text, 6 EHR alone).
 * hard = 0: notes of 1..length ids, every label known. hard = 1 (ghost clipping): notes of
 * 2..length ids, even samples draw note ids from 1..4 and EHR codes from 1..3 so ids repeat,
 * every third sample's note has a pad (id 0) inside, and label 0 is unknown on samples with
 * i % 4 == 1. */
void ftm_make_batch(const ff_model_config *c, ff_batch *b, int B, uint64_t seed, int hard);

/* Oracle: example i's gradient, materialised by a separate max-batch-1 model of config c with
 * the given parameters on a copy of row i of b (nothing shared with the code under test);
 * g receives the n gradients. */
void ftm_single_grad(const ff_model_config *c, const float *params, const ff_batch *b, int i,
                     double *g, size_t n);

/* Adds the tabular arrays of config c (a `tabular:` section) to b: sample i has no tabular row
 * when i % 5 == 3, a quarter of the cells are missing, and samples with i % 7 == 6 (EHR alone
 * in ftm_make_batch) become tabular alone. */
void ftm_add_tabular(const ff_model_config *c, ff_batch *b, uint64_t seed);

/* Whole-model gradient check in float of m on b: for every tensor with a gradient, the
 * directional derivative along the gradient and along a random direction against central
 * differences (the test fails naming what and the tensor). Returns the directions checked. */
int ftm_fd_check(ff_model *m, const ff_batch *b, const char *what);

#endif
