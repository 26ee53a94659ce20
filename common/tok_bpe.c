#include "tok_bpe.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct {
  double priority;
  uint32_t left, right;  /* positions in the original symbol array */
  int a, b;              /* the ids the pair had when pushed; a mismatch on pop means it is stale */
  int merged;
} candidate;  /* 32 bytes; a SentencePiece-style word is a whole document, so this adds up */

typedef struct {
  candidate *items;  // (cap) binary min-heap
  size_t len;
} heap;

static int candidate_less(const candidate *x, const candidate *y) {
  return x->priority < y->priority || (x->priority == y->priority && x->left < y->left);
}

static void heap_push(heap *h, candidate c) {
  size_t i = h->len++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!candidate_less(&c, &h->items[parent])) break;
    h->items[i] = h->items[parent];
    i = parent;
  }
  h->items[i] = c;
}

static candidate heap_pop(heap *h) {
  candidate top = h->items[0], last = h->items[--h->len];
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->len) break;
    if (child + 1 < h->len && candidate_less(&h->items[child + 1], &h->items[child])) child++;
    if (!candidate_less(&h->items[child], &last)) break;
    h->items[i] = h->items[child];
    i = child;
  }
  if (h->len) h->items[i] = last;
  return top;
}

#define NONE UINT32_MAX

static void push_pair(heap *h, const int *ids, uint32_t left, uint32_t right, bpe_pair_fn pair, const void *ctx) {
  candidate c = {.left = left, .right = right, .a = ids[left], .b = ids[right]};
  if (pair(ctx, c.a, c.b, &c.priority, &c.merged)) heap_push(h, c);
}

int bpe_merge(int *ids, size_t *n, bpe_pair_fn pair, const void *ctx) {
  size_t len = *n;
  if (len < 2) return 0;
  if (len >= UINT32_MAX) return -1;
  /* Each merge pushes at most two new candidates onto the n - 1 initial ones. */
  heap h = {.items = malloc(3 * len * sizeof(candidate))};
  uint32_t *prev = malloc(len * sizeof *prev), *next = malloc(len * sizeof *next);
  if (!h.items || !prev || !next) {
    free(h.items), free(prev), free(next);
    return -1;
  }
  for (uint32_t i = 0; i < len; i++) prev[i] = i ? i - 1 : NONE, next[i] = i + 1 < len ? i + 1 : NONE;
  for (uint32_t i = 0; i + 1 < len; i++) push_pair(&h, ids, i, i + 1, pair, ctx);
  while (h.len) {
    candidate c = heap_pop(&h);
    if (ids[c.left] != c.a || next[c.left] != c.right || ids[c.right] != c.b) continue;
    ids[c.left] = c.merged;
    ids[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.right] != NONE) prev[next[c.right]] = c.left;
    if (prev[c.left] != NONE) push_pair(&h, ids, prev[c.left], c.left, pair, ctx);
    if (next[c.left] != NONE) push_pair(&h, ids, c.left, next[c.left], pair, ctx);
  }
  size_t out = 0;
  for (uint32_t i = 0; i != NONE; i = next[i]) ids[out++] = ids[i];
  *n = out;
  free(h.items), free(prev), free(next);
  return 0;
}
