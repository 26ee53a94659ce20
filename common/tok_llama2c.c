/* llama2.c's tokenizer.bin: int32 max_token_length, then per token {float score, int32 len, len bytes}.
 * Encoding follows run.c's encode(): a " " dummy prefix when the text is non-empty, one symbol per
 * UTF-8 character (its piece if the vocabulary has it, else one <0xXX> byte token per byte, id byte + 3),
 * then repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece. Invalid
 * UTF-8 bytes take the byte fallback too, so any byte string round-trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tok_bpe.h"
#include "tok_internal.h"
#include "tok_map.h"
#include "utf8.h"

enum { LLAMA2C_UNK = 0, LLAMA2C_BOS = 1, LLAMA2C_EOS = 2, LLAMA2C_BYTE0 = 3 };

typedef struct {
  tokenizer base;
  char *file;          /* the whole tokenizer.bin; pieces point into it */
  const char **piece;  // (vocab_size) not NUL-terminated
  uint32_t *piece_len; // (vocab_size)
  float *score;        // (vocab_size)
  strmap vocab;        /* piece -> first id with that piece */
  uint32_t max_piece_len;
  int space_id;        /* the dummy prefix " " */
} llama2c_tokenizer;

typedef struct {
  const llama2c_tokenizer *t;
  char *buf;  // (2 * max_piece_len) concatenation scratch
} merge_ctx;

static int llama2c_pair(const void *ctx, int a, int b, double *priority, int *merged) {
  const merge_ctx *m = ctx;
  const llama2c_tokenizer *t = m->t;
  memcpy(m->buf, t->piece[a], t->piece_len[a]);
  memcpy(m->buf + t->piece_len[a], t->piece[b], t->piece_len[b]);
  int id = strmap_get(&t->vocab, m->buf, t->piece_len[a] + t->piece_len[b]);
  if (id < 0) return 0;
  *priority = -(double)t->score[id];
  *merged = id;
  return 1;
}

static int llama2c_encode(const tokenizer *tok, const char *text, size_t len, token_ids *out, char *err,
                          size_t errlen) {
  const llama2c_tokenizer *t = (const llama2c_tokenizer *)tok;
  if (len == 0) return 0;
  if (t->space_id < 0) {
    tok_error(err, errlen, "llama2c tokenizer: the vocabulary has no \" \" piece for the dummy prefix");
    return -1;
  }
  size_t start = out->len;
  if (token_ids_push(out, t->space_id, err, errlen) < 0) return -1;
  const unsigned char *s = (const unsigned char *)text;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t k = utf8_char(s + i, len - i, &cp);
    int id = k ? strmap_get(&t->vocab, text + i, k) : -1;
    if (id >= 0) {
      if (token_ids_push(out, id, err, errlen) < 0) return -1;
      i += k;
      continue;
    }
    for (size_t j = 0; j < (k ? k : 1); j++) {
      int byte_id = LLAMA2C_BYTE0 + s[i + j];
      if (byte_id >= tok->vocab_size) {
        tok_error(err, errlen, "llama2c tokenizer: byte 0x%02X at offset %zu needs byte-fallback id %d, "
                  "but the vocabulary has only %d tokens", s[i + j], i + j, byte_id, tok->vocab_size);
        return -1;
      }
      if (token_ids_push(out, byte_id, err, errlen) < 0) return -1;
    }
    i += k ? k : 1;
  }
  merge_ctx ctx = {.t = t, .buf = malloc(2 * (size_t)t->max_piece_len + 1)};
  size_t n = out->len - start;
  if (!ctx.buf || bpe_merge(out->ids + start, &n, llama2c_pair, &ctx) < 0) {
    free(ctx.buf);
    tok_error(err, errlen, "llama2c tokenizer: out of memory merging %zu symbols", n);
    return -1;
  }
  free(ctx.buf);
  out->len = start + n;
  return 0;
}

static int llama2c_decode(const tokenizer *tok, const int *ids, size_t n, bool skip_special, token_text *out,
                          char *err, size_t errlen) {
  const llama2c_tokenizer *t = (const llama2c_tokenizer *)tok;
  for (size_t i = 0; i < n; i++) {
    int id = ids[i];
    if (skip_special && id <= LLAMA2C_EOS) continue;
    const char *p = t->piece[id];
    size_t len = t->piece_len[id];
    /* SentencePiece's dummy prefix: the first piece after BOS carries a space the text did not have. */
    if (i > 0 && ids[i - 1] == LLAMA2C_BOS && len && p[0] == ' ') p++, len--;
    int byte = tok_parse_byte_piece(p, len);
    unsigned char b = (unsigned char)byte;
    if (byte >= 0 ? token_text_append(out, &b, 1, err, errlen) : token_text_append(out, p, len, err, errlen))
      return -1;
  }
  return 0;
}

static void llama2c_destroy(tokenizer *tok) {
  llama2c_tokenizer *t = (llama2c_tokenizer *)tok;
  strmap_free(&t->vocab);
  free(t->piece);
  free(t->piece_len);
  free(t->score);
  free(t->file);
  free(t);
}

static int32_t read_i32(const char *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

tokenizer *tokenizer_load_llama2c(const char *path, int vocab_size, char *err, size_t errlen) {
  size_t size;
  char *file = tok_read_file(path, &size, err, errlen);
  if (!file) return NULL;
  llama2c_tokenizer *t = calloc(1, sizeof *t);
  if (!t) {
    free(file);
    tok_error(err, errlen, "%s: out of memory", path);
    return NULL;
  }
  t->base = (tokenizer){.kind = "llama2c", .bos = LLAMA2C_BOS, .eos = LLAMA2C_EOS, .pad = -1,
                        .encode = llama2c_encode, .decode = llama2c_decode, .destroy = llama2c_destroy};
  t->file = file;
  if (size < 4 || read_i32(file) <= 0) {
    tok_error(err, errlen, "%s: not a llama2.c tokenizer.bin (no positive max_token_length header)", path);
    goto fail;
  }
  /* First pass counts entries, so every array is allocated once. */
  size_t count = 0, off = 4;
  while (off < size && (vocab_size == 0 || count < (size_t)vocab_size)) {
    int32_t len = size - off >= 8 ? read_i32(file + off + 4) : -1;
    if (len < 0 || (size_t)len > size - off - 8) {
      tok_error(err, errlen, "%s: token %zu at byte %zu is truncated or has a bad length %d", path, count, off,
                len);
      goto fail;
    }
    off += 8 + (size_t)len;
    count++;
  }
  if (vocab_size > 0 && count != (size_t)vocab_size) {
    tok_error(err, errlen, "%s: expected %d tokens, file holds %zu", path, vocab_size, count);
    goto fail;
  }
  if (count == 0 || count > INT32_MAX) {
    tok_error(err, errlen, "%s: holds %zu tokens", path, count);
    goto fail;
  }
  t->base.vocab_size = (int)count;
  t->piece = malloc(count * sizeof *t->piece);
  t->piece_len = malloc(count * sizeof *t->piece_len);
  t->score = malloc(count * sizeof *t->score);
  if (!t->piece || !t->piece_len || !t->score || strmap_init(&t->vocab, count) < 0) {
    tok_error(err, errlen, "%s: out of memory for %zu tokens", path, count);
    goto fail;
  }
  off = 4;
  for (size_t i = 0; i < count; i++) {
    memcpy(&t->score[i], file + off, 4);
    t->piece_len[i] = (uint32_t)read_i32(file + off + 4);
    t->piece[i] = file + off + 8;
    off += 8 + t->piece_len[i];
    if (t->piece_len[i] > t->max_piece_len) t->max_piece_len = t->piece_len[i];
    int existing;
    if (strmap_put(&t->vocab, t->piece[i], t->piece_len[i], (int)i, &existing) < 0) {
      tok_error(err, errlen, "%s: out of memory for %zu tokens", path, count);
      goto fail;
    }
  }
  t->space_id = strmap_get(&t->vocab, " ", 1);
  return &t->base;
fail:
  llama2c_destroy(&t->base);
  return NULL;
}
