/* llama2.c tokenizer.bin: a hand-made vocabulary whose encodings are worked out by hand from run.c's
 * rules (dummy " " prefix, byte fallback id = byte + 3, highest-score merge first, leftmost on ties),
 * and round-trips of arbitrary bytes, valid UTF-8 or not. Also the byte-level tokenizer's round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "tokenizer.h"

typedef struct {
  const char *piece;
  float score;
} entry;

/* ids 0..2 specials, 3..258 <0x00>..<0xFF>, then these from 259 on. */
static const entry extra[] = {
    {" ", -1e4f},   // 259
    {"a", -1e4f},   // 260
    {"b", -1e4f},   // 261
    {"c", -1e4f},   // 262
    {"\xc3\xa9", -1e4f},  // 263 é
    {" a", -1.0f},  // 264
    {"ab", -2.0f},  // 265
    {"bc", -0.5f},  // 266
    {" ab", -3.0f}, // 267
    {"abc", -4.0f}, // 268
    {" abc", -0.1f},// 269
    {"aa", -2.0f},  // 270
    {"cc", -1.0f},  // 271
};

static void put_entry(FILE *f, const char *piece, size_t len, float score) {
  int32_t n = (int32_t)len;
  fwrite(&score, 4, 1, f);
  fwrite(&n, 4, 1, f);
  fwrite(piece, 1, len, f);
}

static const char *write_vocab(const char *dir) {
  static char path[256];
  snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
  FILE *f = fopen(path, "wb");
  int32_t max_len = 16;
  fwrite(&max_len, 4, 1, f);
  put_entry(f, "<unk>", 5, 0);
  put_entry(f, "\n<s>\n", 5, 0);
  put_entry(f, "\n</s>\n", 6, 0);
  for (int b = 0; b < 256; b++) {
    char piece[8];
    snprintf(piece, sizeof piece, "<0x%02X>", b);
    put_entry(f, piece, 6, 0);
  }
  for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) put_entry(f, extra[i].piece, strlen(extra[i].piece), extra[i].score);
  fclose(f);
  return path;
}

static void check_encoding(const tokenizer *tok, const char *text, size_t len, const int *want, size_t n) {
  token_ids got = {0};
  char err[256] = "";
  CHECK_MSG(tokenizer_encode(tok, text, len, false, false, &got, err, sizeof err) == 0, "%s", err);
  bool same = got.len == n;
  for (size_t i = 0; same && i < n; i++) same = got.ids[i] == want[i];
  CHECK_MSG(same, "encoding of \"%.*s\": got %zu ids starting %d, want %zu starting %d", (int)len, text, got.len,
            got.len ? got.ids[0] : -1, n, n ? want[0] : -1);
  token_ids_free(&got);
}

#define ENC(tok, text, ...)                                                                       \
  do {                                                                                             \
    static const int want_[] = {__VA_ARGS__};                                                      \
    check_encoding(tok, text, sizeof text - 1, want_, sizeof want_ / sizeof *want_);               \
  } while (0)

static void check_round_trip(const tokenizer *tok, const char *text, size_t len) {
  token_ids ids = {0};
  token_text back = {0};
  char err[256] = "";
  CHECK_MSG(tokenizer_encode(tok, text, len, true, false, &ids, err, sizeof err) == 0, "%s", err);
  CHECK_MSG(tokenizer_decode(tok, ids.ids, ids.len, true, &back, err, sizeof err) == 0, "%s", err);
  CHECK_MSG(back.len == len && memcmp(back.data, text, len) == 0, "%s: %zu bytes did not round-trip (got %zu)",
            tokenizer_kind_name(tok), len, back.len);
  token_ids_free(&ids);
  token_text_free(&back);
}

/* Random mixes of ASCII, the vocabulary's pieces, multi-byte UTF-8 and stray invalid bytes. */
static void fuzz_round_trips(const tokenizer *tok, unsigned seed) {
  static const char *const parts[] = {"a", "b", "c", " ", "ab", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
                                      "\xff", "\xc3", "\x80", "\xed\xa0\x80", "\0", "\n", "zz"};
  for (int round = 0; round < 300; round++) {
    char text[256];
    size_t len = 0;
    int n = rand_r(&seed) % 40;
    for (int i = 0; i < n; i++) {
      const char *p = parts[rand_r(&seed) % (sizeof parts / sizeof *parts)];
      size_t plen = p[0] ? strlen(p) : 1;
      memcpy(text + len, p, plen);
      len += plen;
    }
    check_round_trip(tok, text, len);
  }
}

int main(void) {
  const char *path = write_vocab(harness_tmpdir());
  char err[256] = "";
  tokenizer *tok = tokenizer_load(path, err, sizeof err);
  CHECK_MSG(tok != NULL, "%s", err);
  if (!tok) return harness_finish();
  CHECK_STR_CONTAINS(tokenizer_kind_name(tok), "llama2c");
  CHECK_EQ_INT(tokenizer_vocab_size(tok), 272);
  CHECK_EQ_INT(tokenizer_bos(tok), 1);
  CHECK_EQ_INT(tokenizer_eos(tok), 2);

  /* " "+a+b+c: "bc" (-0.5) first, then " a" (-1), then " abc" (-0.1). */
  ENC(tok, "abc", 269);
  /* " a" (-1) beats "ab" (-2); then " ab". */
  ENC(tok, "ab", 267);
  /* Only "ab" merges; " c" and "cab" are not pieces. */
  ENC(tok, "cab", 259, 262, 265);
  /* é is a piece; "!" falls back to byte 0x21 -> id 36. */
  ENC(tok, "\xc3\xa9!", 259, 263, 36);
  /* Invalid UTF-8: each byte falls back. */
  ENC(tok, "\xff\xc3", 259, 258, 198);
  /* Two "cc" candidates with equal score: the leftmost merges. */
  ENC(tok, "ccc", 259, 271, 262);
  ENC(tok, "aaa", 264, 270);
  check_encoding(tok, "", 0, NULL, 0);  /* no dummy prefix for empty text */

  token_ids ids = {0};
  CHECK(tokenizer_encode(tok, "abc", 3, true, true, &ids, err, sizeof err) == 0);
  CHECK_EQ_INT(ids.len, 3);
  CHECK_EQ_INT(ids.ids[0], 1);
  CHECK_EQ_INT(ids.ids[2], 2);
  token_text text = {0};
  /* run.c: the space after BOS is the dummy prefix and is dropped; without BOS it stays. */
  CHECK(tokenizer_decode(tok, (int[]){1, 269}, 2, true, &text, err, sizeof err) == 0 && !strcmp(text.data, "abc"));
  text.len = 0;
  CHECK(tokenizer_decode(tok, (int[]){269, 36}, 2, false, &text, err, sizeof err) == 0 && !strcmp(text.data, " abc!"));
  text.len = 0;
  CHECK(tokenizer_decode(tok, (int[]){1, 269}, 2, false, &text, err, sizeof err) == 0 &&
        !strcmp(text.data, "\n<s>\nabc"));
  CHECK(tokenizer_decode(tok, (int[]){272}, 1, false, &text, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "outside the vocabulary");
  token_text_free(&text);
  token_ids_free(&ids);

  fuzz_round_trips(tok, 7);
  check_round_trip(tok, " leading space", 14);
  tokenizer_free(tok);

  /* The vocabulary size from the model must match the file; truncation is reported. */
  CHECK(tokenizer_load_llama2c(path, 300, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "expected 300 tokens, file holds 272");
  tok = tokenizer_load_llama2c(path, 272, err, sizeof err);
  CHECK(tok != NULL);
  tokenizer_free(tok);
  FILE *f = fopen(path, "r+b");
  CHECK(f && ftruncate(fileno(f), 4 + 8 + 5 + 3) == 0);
  if (f) fclose(f);
  CHECK(tokenizer_load(path, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "truncated");

  /* Byte-level: ids are bytes, then BOS 256, EOS 257, PAD 258. */
  tok = tokenizer_build_bytes();
  CHECK_EQ_INT(tokenizer_vocab_size(tok), 259);
  CHECK_EQ_INT(tokenizer_bos(tok), 256);
  CHECK_EQ_INT(tokenizer_eos(tok), 257);
  CHECK_EQ_INT(tokenizer_pad(tok), 258);
  ENC(tok, "A\xff\0", 65, 255, 0);
  fuzz_round_trips(tok, 11);
  char all[256];
  for (int b = 0; b < 256; b++) all[b] = (char)b;
  check_round_trip(tok, all, 256);
  tokenizer_free(tok);
  return harness_finish();
}
