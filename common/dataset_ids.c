/* `.ids` files and their windows; see dataset_ids.h. */
#include "dataset_ids.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ids_load(token_ids *d, const char *path, int vocab_size, char *err, size_t err_size) {
  memset(d, 0, sizeof *d);
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, line = 1;
  d->ids = malloc(sizeof(int) * cap);
  char word[32];
  size_t len = 0;
  int ch, rc = 0;
  do {
    ch = fgetc(f);
    if (ch != EOF && !isspace(ch)) {
      if (len + 1 < sizeof word) word[len] = (char)ch;
      len++;
      continue;
    }
    if (len) {
      char *end;
      word[len < sizeof word ? len : sizeof word - 1] = '\0';
      errno = 0;
      long v = strtol(word, &end, 10);
      if (len >= sizeof word || *end || errno || v < 0 || v >= vocab_size) {
        snprintf(err, err_size, "%s:%zu: '%s' is not a token id in [0, %d)", path, line, word, vocab_size);
        rc = -1;
        break;
      }
      if (d->n == cap) {
        int *grown = d->ids ? realloc(d->ids, sizeof(int) * (cap *= 2)) : NULL;
        if (!grown) {
          snprintf(err, err_size, "%s: out of memory after %zu ids", path, d->n);
          rc = -1;
          break;
        }
        d->ids = grown;
      }
      d->ids[d->n++] = (int)v;
      len = 0;
    }
    if (ch == '\n') line++;
  } while (ch != EOF);
  if (!rc && ferror(f)) {
    snprintf(err, err_size, "%s: read error", path);
    rc = -1;
  }
  fclose(f);
  if (!rc && d->n < 2) {
    snprintf(err, err_size, "%s: needs at least 2 token ids, found %zu", path, d->n);
    rc = -1;
  }
  if (rc) ids_free(d);
  return rc;
}

void ids_free(token_ids *d) {
  free(d->ids);
  memset(d, 0, sizeof *d);
}

size_t ids_num_windows(const token_ids *d, int seq_len) {
  if (d->n < 2) return 0;
  size_t full = (d->n - 1) / (size_t)seq_len, rest = d->n - full * (size_t)seq_len;
  return full + (rest >= 2);
}

int ids_window(const token_ids *d, size_t w, int seq_len, int *inputs, int *targets, float *mask) {
  size_t start = w * (size_t)seq_len;
  int real = 0;
  for (int t = 0; t < seq_len; t++) {
    int ok = start + t + 1 < d->n;
    inputs[t] = start + t < d->n ? d->ids[start + t] : 0;
    targets[t] = ok ? d->ids[start + t + 1] : -1;
    mask[t] = ok ? 1.0f : 0.0f;
    real += ok;
  }
  return real;
}

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void ids_epoch_order(size_t *order, size_t n_windows, long epoch, int shuffle, uint64_t seed) {
  for (size_t i = 0; i < n_windows; i++) order[i] = i;
  if (!shuffle) return;
  uint64_t state = mix64(seed ^ mix64((uint64_t)epoch));
  for (size_t i = n_windows; i > 1; i--) { /* Fisher-Yates */
    state = mix64(state);
    size_t j = (size_t)(state % i);
    size_t tmp = order[i - 1];
    order[i - 1] = order[j];
    order[j] = tmp;
  }
}
