/* `.ids` token files: whitespace-separated token ids. A file is cut into windows of T + 1 tokens
 * with stride T: window w covers tokens [w T, w T + T]; its inputs are the first T, its targets the
 * last T. The last window may be partial; it is kept when it has at least 2 tokens, padded (input
 * 0, target -1) so the padding is never counted. */
#ifndef FEDLORA_DATASET_IDS_H
#define FEDLORA_DATASET_IDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  int *ids;  /* (n) */
  size_t n;
} token_ids;

/* Reads the file, checking every id is an integer in [0, vocab_size); the error names the file,
 * the line and the offending text. */
int ids_load(token_ids *d, const char *path, int vocab_size, char *err, size_t err_size);
void ids_free(token_ids *d);

/* Windows of length seq_len, the partial last one included when it has >= 2 tokens. */
size_t ids_num_windows(const token_ids *d, int seq_len);
/* Fills inputs/targets (seq_len) of window w and mask (seq_len) with 1 for real targets, 0 for
 * padding. Returns the number of real targets. */
int ids_window(const token_ids *d, size_t w, int seq_len, int *inputs, int *targets, float *mask);

/* Window order of one epoch (n_windows entries): file order, or with shuffle a seeded permutation
 * that differs per epoch. */
void ids_epoch_order(size_t *order, size_t n_windows, long epoch, int shuffle, uint64_t seed);

#endif
