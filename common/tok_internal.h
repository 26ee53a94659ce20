/* What the tokenizer kinds share behind tokenizer.h: the object layout, growable buffers, errors. */
#ifndef FEDLORA_TOK_INTERNAL_H
#define FEDLORA_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "tokenizer.h"

/* Each kind embeds this as its first member and fills the three functions. */
struct tokenizer {
  const char *kind;
  int vocab_size, bos, eos, pad;  /* -1: none */
  /* Encodes text without BOS/EOS; tokenizer_encode adds those. */
  int (*encode)(const tokenizer *tok, const char *text, size_t len, token_ids *out, char *err, size_t errlen);
  int (*decode)(const tokenizer *tok, const int *ids, size_t n, bool skip_special, token_text *out, char *err,
                size_t errlen);
  void (*destroy)(tokenizer *tok);
};

/* Returns -1 when memory runs out (err filled), 0 otherwise. */
int token_text_append(token_text *text, const void *bytes, size_t n, char *err, size_t errlen);

void tok_error(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole file; NULL with err naming the path on failure. */
char *tok_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* Parses "<0xXX>" (SentencePiece's byte-fallback pieces); returns the byte or -1. */
int tok_parse_byte_piece(const char *piece, size_t len);

#endif
