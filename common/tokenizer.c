/* The kind-independent half of tokenizer.h: dispatch, BOS/EOS wrapping, buffers, errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok_internal.h"

void tok_error(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int token_ids_push(token_ids *list, int id, char *err, size_t errlen) {
  if (list->len == list->cap) {
    size_t cap = list->cap ? 2 * list->cap : 64;
    int *ids = realloc(list->ids, cap * sizeof *ids);
    if (!ids) {
      tok_error(err, errlen, "out of memory growing the id list to %zu ids", cap);
      return -1;
    }
    list->ids = ids, list->cap = cap;
  }
  list->ids[list->len++] = id;
  return 0;
}

int token_text_append(token_text *text, const void *bytes, size_t n, char *err, size_t errlen) {
  if (text->len + n + 1 > text->cap) {
    size_t cap = text->cap ? text->cap : 64;
    while (cap < text->len + n + 1) cap *= 2;
    char *data = realloc(text->data, cap);
    if (!data) {
      tok_error(err, errlen, "out of memory growing the decoded text to %zu bytes", cap);
      return -1;
    }
    text->data = data, text->cap = cap;
  }
  if (n) memcpy(text->data + text->len, bytes, n);
  text->len += n;
  text->data[text->len] = '\0';
  return 0;
}

void token_ids_free(token_ids *list) {
  free(list->ids);
  memset(list, 0, sizeof *list);
}

void token_text_free(token_text *text) {
  free(text->data);
  memset(text, 0, sizeof *text);
}

char *tok_read_file(const char *path, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    tok_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  char *data = NULL;
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
    tok_error(err, errlen, "%s: cannot determine its size: %s", path, strerror(errno));
  } else if (!(data = malloc((size_t)size + 1))) {
    tok_error(err, errlen, "%s: out of memory reading %ld bytes", path, size);
  } else if (fread(data, 1, (size_t)size, f) != (size_t)size) {
    tok_error(err, errlen, "%s: short read", path);
    free(data);
    data = NULL;
  } else {
    data[size] = '\0';
    *len = (size_t)size;
  }
  fclose(f);
  return data;
}

int tok_parse_byte_piece(const char *piece, size_t len) {
  if (len != 6 || memcmp(piece, "<0x", 3) != 0 || piece[5] != '>') return -1;
  int value = 0;
  for (int i = 3; i < 5; i++) {
    char c = piece[i];
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

tokenizer *tokenizer_load(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    tok_error(err, errlen, "%s is a directory; give the tokenizer.json or tokenizer.bin inside it", path);
    return NULL;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    tok_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  /* A tokenizer.bin starts with a little-endian int32 max_token_length, never with '{'. */
  int c;
  do c = fgetc(f);
  while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
  fclose(f);
  return c == '{' ? tokenizer_load_hf(path, err, errlen) : tokenizer_load_llama2c(path, 0, err, errlen);
}

void tokenizer_free(tokenizer *tok) {
  if (tok) tok->destroy(tok);
}

int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool add_bos, bool add_eos,
                     token_ids *out, char *err, size_t errlen) {
  if ((add_bos && tok->bos < 0) || (add_eos && tok->eos < 0)) {
    tok_error(err, errlen, "this %s tokenizer has no %s token", tok->kind, add_bos && tok->bos < 0 ? "BOS" : "EOS");
    return -1;
  }
  size_t start = out->len;
  if ((add_bos && token_ids_push(out, tok->bos, err, errlen) < 0) ||
      tok->encode(tok, text, len, out, err, errlen) < 0 ||
      (add_eos && token_ids_push(out, tok->eos, err, errlen) < 0)) {
    out->len = start;
    return -1;
  }
  return 0;
}

int tokenizer_decode(const tokenizer *tok, const int *ids, size_t n, bool skip_special, token_text *out,
                     char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= tok->vocab_size) {
      tok_error(err, errlen, "token id %d at position %zu is outside the vocabulary [0, %d)", ids[i], i,
                tok->vocab_size);
      return -1;
    }
  }
  size_t start = out->len;
  if (token_text_append(out, "", 0, err, errlen) < 0) return -1;  /* NUL-terminated even when empty */
  if (tok->decode(tok, ids, n, skip_special, out, err, errlen) < 0) {
    out->len = start;
    out->data[start] = '\0';
    return -1;
  }
  return 0;
}

int tokenizer_vocab_size(const tokenizer *tok) { return tok->vocab_size; }
int tokenizer_bos(const tokenizer *tok) { return tok->bos; }
int tokenizer_eos(const tokenizer *tok) { return tok->eos; }
int tokenizer_pad(const tokenizer *tok) { return tok->pad; }
const char *tokenizer_kind_name(const tokenizer *tok) { return tok->kind; }
