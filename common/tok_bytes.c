/* The byte-level tokenizer: id = byte value, then three specials. It cannot fail to round-trip. */
#include <stdlib.h>

#include "tok_internal.h"

enum { BYTES_BOS = 256, BYTES_EOS = 257, BYTES_PAD = 258, BYTES_VOCAB = 259 };

static int bytes_encode(const tokenizer *tok, const char *text, size_t len, token_ids *out, char *err,
                        size_t errlen) {
  (void)tok;
  for (size_t i = 0; i < len; i++)
    if (token_ids_push(out, (unsigned char)text[i], err, errlen) < 0) return -1;
  return 0;
}

/* The specials have no text of their own: any spelling would collide with a byte sequence. */
static int bytes_decode(const tokenizer *tok, const int *ids, size_t n, bool skip_special, token_text *out,
                        char *err, size_t errlen) {
  (void)tok, (void)skip_special;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] > 255) continue;
    unsigned char b = (unsigned char)ids[i];
    if (token_text_append(out, &b, 1, err, errlen) < 0) return -1;
  }
  return 0;
}

static void bytes_destroy(tokenizer *tok) { free(tok); }

tokenizer *tokenizer_build_bytes(void) {
  tokenizer *tok = malloc(sizeof *tok);
  if (!tok) return NULL;
  *tok = (tokenizer){.kind = "bytes",
                     .vocab_size = BYTES_VOCAB,
                     .bos = BYTES_BOS,
                     .eos = BYTES_EOS,
                     .pad = BYTES_PAD,
                     .encode = bytes_encode,
                     .decode = bytes_decode,
                     .destroy = bytes_destroy};
  return tok;
}
