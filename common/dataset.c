/* Records packed into a token stream with a loss mask, and its windows; see dataset.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

static int dataset_reserve(dataset *d, size_t more) {
  if (d->n + more <= d->cap) return 0;
  size_t cap = d->cap ? d->cap : 4096;
  while (cap < d->n + more) cap *= 2;
  int *tokens = realloc(d->tokens, sizeof(int) * cap);
  if (tokens) d->tokens = tokens;
  uint8_t *counted = tokens ? realloc(d->counted, cap) : NULL;
  if (!counted) return -1;
  d->counted = counted;
  d->cap = cap;
  return 0;
}

int dataset_add_tokens(dataset *d, const int *ids, size_t n, size_t given, char *err, size_t err_size) {
  if (dataset_reserve(d, n)) {
    snprintf(err, err_size, "out of memory after %zu tokens", d->n);
    return -1;
  }
  memcpy(d->tokens + d->n, ids, sizeof(int) * n);
  for (size_t j = 0; j < n; j++) d->counted[d->n + j] = j >= given;
  d->n += n;
  d->counted_tokens += n > given ? n - given : 0;
  d->records++;
  return 0;
}

/* dataset_add_tokens after checking the ids fit the model; errors name the record's file and line. */
static int dataset_append(dataset *d, const int *ids, size_t n, size_t given, int vocab_size, const record_set *s,
                          const data_record *r, char *err, size_t err_size) {
  for (size_t j = 0; j < n; j++)
    if (ids[j] < 0 || ids[j] >= vocab_size) {
      snprintf(err, err_size, "%s:%zu: token id %d is outside the model's vocabulary [0, %d)", s->path, r->line,
               ids[j], vocab_size);
      return -1;
    }
  char why[256];
  if (dataset_add_tokens(d, ids, n, given, why, sizeof why)) {
    snprintf(err, err_size, "%s:%zu: %s", s->path, r->line, why);
    return -1;
  }
  return 0;
}

int dataset_add_record(dataset *d, const record_set *s, size_t i, const tokenizer *tok, int vocab_size, char *err,
                       size_t err_size) {
  const data_record *r = &s->records[i];
  if (r->kind == RECORD_IDS)
    return dataset_append(d, s->ids + r->body, r->body_len, 0, vocab_size, s, r, err, err_size);
  if (!tok) {
    snprintf(err, err_size, "%s:%zu: text records need a tokenizer, and none was found for the model "
             "(pass --tokenizer FILE or 'bytes')", s->path, r->line);
    return -1;
  }
  int bos = tokenizer_bos(tok) >= 0, eos = tokenizer_eos(tok) >= 0;
  token_ids ids = {0};
  char why[512];
  int rc = -1;
  if (r->kind == RECORD_PROMPT) {
    if (tokenizer_encode(tok, record_prompt(s, r), r->prompt_len, bos, 0, &ids, why, sizeof why)) goto fail;
  } else if (bos && token_ids_push(&ids, tokenizer_bos(tok), why, sizeof why)) {
    goto fail;
  }
  size_t given = ids.len;
  if (tokenizer_encode(tok, record_body(s, r), r->body_len, 0, eos, &ids, why, sizeof why)) goto fail;
  rc = dataset_append(d, ids.ids, ids.len, given, vocab_size, s, r, err, err_size);
  token_ids_free(&ids);
  return rc;
fail:
  snprintf(err, err_size, "%s:%zu: %s", s->path, r->line, why);
  token_ids_free(&ids);
  return -1;
}

int dataset_add_records(dataset *train, dataset *val, const record_set *s, double val_fraction, uint64_t split_seed,
                        const tokenizer *tok, int vocab_size, char *err, size_t err_size) {
  for (size_t i = 0; i < s->n; i++) {
    dataset *to = val_fraction > 0.0 && record_in_validation(s, i, split_seed, val_fraction) ? val : train;
    if (to && dataset_add_record(to, s, i, tok, vocab_size, err, err_size)) return -1;
  }
  return 0;
}

int dataset_index(dataset *d, int seq_len, const char *name, char *err, size_t err_size) {
  free(d->windows);
  d->windows = NULL;
  d->n_windows = 0;
  d->seq_len = seq_len;
  size_t T = (size_t)seq_len, total = d->n >= 2 ? (d->n - 2) / T + 1 : 0;
  d->windows = malloc(sizeof(size_t) * (total ? total : 1));
  if (!d->windows) {
    snprintf(err, err_size, "%s: out of memory for %zu windows", name, total);
    return -1;
  }
  for (size_t w = 0; w < total; w++) {
    size_t last = w * T + T < d->n - 1 ? w * T + T : d->n - 1;
    for (size_t p = w * T + 1; p <= last; p++)
      if (d->counted[p]) {
        d->windows[d->n_windows++] = w;
        break;
      }
  }
  if (!d->n_windows) {
    snprintf(err, err_size, "%s: no window of %d tokens has a token the loss counts (%zu records, %zu tokens)", name,
             seq_len, d->records, d->n);
    return -1;
  }
  return 0;
}

int dataset_window(const dataset *d, size_t w, int *inputs, int *targets, float *mask) {
  size_t start = d->windows[w] * (size_t)d->seq_len;
  int counted = 0;
  for (int t = 0; t < d->seq_len; t++) {
    size_t p = start + (size_t)t;
    int on = p + 1 < d->n && d->counted[p + 1];
    inputs[t] = p < d->n ? d->tokens[p] : 0;
    targets[t] = on ? d->tokens[p + 1] : -1;
    mask[t] = on ? 1.0f : 0.0f;
    counted += on;
  }
  return counted;
}

void dataset_free(dataset *d) {
  free(d->tokens);
  free(d->counted);
  free(d->windows);
  memset(d, 0, sizeof *d);
}
