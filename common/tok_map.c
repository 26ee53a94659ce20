#include "tok_map.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a, then a multiply-shift finaliser so short keys still spread over the table's high bits. */
static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

static size_t capacity_for(size_t expected) {
  size_t cap = 16;
  while (cap < 2 * expected + 2) cap *= 2;
  return cap;
}

int strmap_init(strmap *m, size_t expected) {
  memset(m, 0, sizeof *m);
  m->cap = capacity_for(expected);
  m->key = calloc(m->cap, sizeof *m->key);
  m->klen = calloc(m->cap, sizeof *m->klen);
  m->val = calloc(m->cap, sizeof *m->val);
  if (!m->key || !m->klen || !m->val) {
    strmap_free(m);
    return -1;
  }
  return 0;
}

void strmap_free(strmap *m) {
  free(m->key);
  free(m->klen);
  free(m->val);
  memset(m, 0, sizeof *m);
}

static size_t strmap_slot(const strmap *m, const char *key, size_t len) {
  size_t mask = m->cap - 1, i = (size_t)hash_bytes(key, len) & mask;
  while (m->key[i] && !(m->klen[i] == len && memcmp(m->key[i], key, len) == 0)) i = (i + 1) & mask;
  return i;
}

static int strmap_grow(strmap *m) {
  strmap bigger;
  if (strmap_init(&bigger, m->cap) < 0) return -1;  /* cap >= 2 * count, so this doubles it */
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->key[i]) continue;
    size_t j = strmap_slot(&bigger, m->key[i], m->klen[i]);
    bigger.key[j] = m->key[i], bigger.klen[j] = m->klen[i], bigger.val[j] = m->val[i];
  }
  bigger.count = m->count;
  strmap_free(m);
  *m = bigger;
  return 0;
}

int strmap_put(strmap *m, const char *key, size_t len, int val, int *existing) {
  if (2 * (m->count + 1) > m->cap && strmap_grow(m) < 0) return -1;
  size_t i = strmap_slot(m, key, len);
  if (m->key[i]) {
    *existing = m->val[i];
    return 0;
  }
  m->key[i] = key, m->klen[i] = (uint32_t)len, m->val[i] = val;
  m->count++;
  *existing = -1;
  return 0;
}

int strmap_get(const strmap *m, const char *key, size_t len) {
  if (!m->cap) return -1;
  size_t i = strmap_slot(m, key, len);
  return m->key[i] ? m->val[i] : -1;
}

int pairmap_init(pairmap *m, size_t expected) {
  memset(m, 0, sizeof *m);
  m->cap = capacity_for(expected);
  m->key = malloc(m->cap * sizeof *m->key);
  m->rank = calloc(m->cap, sizeof *m->rank);
  m->merged = calloc(m->cap, sizeof *m->merged);
  if (!m->key || !m->rank || !m->merged) {
    pairmap_free(m);
    return -1;
  }
  memset(m->key, 0xFF, m->cap * sizeof *m->key);
  return 0;
}

void pairmap_free(pairmap *m) {
  free(m->key);
  free(m->rank);
  free(m->merged);
  memset(m, 0, sizeof *m);
}

static size_t pairmap_slot(const pairmap *m, uint64_t key) {
  size_t mask = m->cap - 1, i = (size_t)hash_u64(key) & mask;
  while (m->key[i] != UINT64_MAX && m->key[i] != key) i = (i + 1) & mask;
  return i;
}

static uint64_t pair_key(int left, int right) { return (uint64_t)(uint32_t)left << 32 | (uint32_t)right; }

static int pairmap_grow(pairmap *m) {
  pairmap bigger;
  if (pairmap_init(&bigger, m->cap) < 0) return -1;
  for (size_t i = 0; i < m->cap; i++) {
    if (m->key[i] == UINT64_MAX) continue;
    size_t j = pairmap_slot(&bigger, m->key[i]);
    bigger.key[j] = m->key[i], bigger.rank[j] = m->rank[i], bigger.merged[j] = m->merged[i];
  }
  bigger.count = m->count;
  pairmap_free(m);
  *m = bigger;
  return 0;
}

int pairmap_put(pairmap *m, int left, int right, int rank, int merged, int *existing) {
  if (2 * (m->count + 1) > m->cap && pairmap_grow(m) < 0) return -1;
  uint64_t key = pair_key(left, right);
  size_t i = pairmap_slot(m, key);
  *existing = m->key[i] == key;
  if (*existing) return 0;
  m->key[i] = key, m->rank[i] = rank, m->merged[i] = merged;
  m->count++;
  return 0;
}

int pairmap_get(const pairmap *m, int left, int right, int *rank, int *merged) {
  if (!m->cap) return 0;
  size_t i = pairmap_slot(m, pair_key(left, right));
  if (m->key[i] == UINT64_MAX) return 0;
  *rank = m->rank[i], *merged = m->merged[i];
  return 1;
}
