/* The BPE merge loop both llama2.c's scores and Hugging Face's merge ranks drive.
 * Symbols sit in a linked list; candidate pairs in a min-heap keyed by (priority, position), so each
 * step merges the best pair and, on ties, the leftmost one, as run.c's rescans and Hugging Face's
 * heap both do. Stale heap entries are skipped when popped. O(n log n) in the word length. */
#ifndef FEDLORA_TOK_BPE_H
#define FEDLORA_TOK_BPE_H

#include <stddef.h>

/* 1 if symbols a then b merge, with *priority (lower merges first) and the *merged id; else 0. */
typedef int (*bpe_pair_fn)(const void *ctx, int a, int b, double *priority, int *merged);

/* Merges ids[0..*n) in place until no pair merges; *n shrinks to the result's length.
 * Returns 0, or -1 when out of memory (or the word has 2^32 symbols). */
int bpe_merge(int *ids, size_t *n, bpe_pair_fn pair, const void *ctx);

#endif
