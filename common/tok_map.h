/* Hash maps for tokenizer vocabularies (piece -> id) and BPE merges ((left, right) -> rank, merged id).
 * Open addressing with linear probing, kept at most half full. Sizes reach ~300k entries (llama3's merges). */
#ifndef FEDLORA_TOK_MAP_H
#define FEDLORA_TOK_MAP_H

#include <stddef.h>
#include <stdint.h>

/* Keys are borrowed: the caller keeps the bytes alive as long as the map. */
typedef struct {
  const char **key;  // (cap) NULL = empty slot
  uint32_t *klen;    // (cap)
  int *val;          // (cap)
  size_t cap, count;
} strmap;

typedef struct {
  uint64_t *key;  // (cap) left << 32 | right; UINT64_MAX = empty slot
  int *rank;      // (cap)
  int *merged;    // (cap)
  size_t cap, count;
} pairmap;

/* init and put return 0, or -1 when out of memory. */
int strmap_init(strmap *m, size_t expected);
/* Inserts key -> val unless key is present; *existing = the value already there, or -1 if it was new. */
int strmap_put(strmap *m, const char *key, size_t len, int val, int *existing);
int strmap_get(const strmap *m, const char *key, size_t len);  /* -1 if absent */
void strmap_free(strmap *m);

int pairmap_init(pairmap *m, size_t expected);
/* Keeps the first (lowest-rank) entry for a pair; *existing = 1 if the pair was already present. */
int pairmap_put(pairmap *m, int left, int right, int rank, int merged, int *existing);
/* 1 and fills rank/merged if (left, right) merges, else 0. */
int pairmap_get(const pairmap *m, int left, int right, int *rank, int *merged);
void pairmap_free(pairmap *m);

#endif
