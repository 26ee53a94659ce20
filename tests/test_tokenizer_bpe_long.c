/* Long inputs: the heap-based BPE must equal the textbook algorithm (rescan every adjacent pair, merge
 * the lowest-ranked, leftmost on ties, until none merges). The SentencePiece-style llama2 file has no
 * pre-tokenizer, so a whole paragraph is one word, the case where merge order matters most. The
 * reference here is written from the format alone: jansson objects as maps, strings as symbols.
 * Also prints encode throughput on ~256 KiB for each family. */
#include <jansson.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"
#include "tokenizer.h"

static const char *const words[] = {"patient", "presents", "with", "chest", "pain", "BP", "140/90", "mmHg,",
                                    "HR", "88.", "café", "naïve", "日本語", "русский", "😀🏥", "\t", "\n",
                                    "don't", "x[i]", "=", "0;", "  ", "Ελληνικά", "3.14159", "über", "a"};

static size_t make_text(char *buf, size_t cap, unsigned seed) {
  size_t len = 0;
  for (;;) {
    const char *w = words[rand_r(&seed) % (sizeof words / sizeof *words)];
    size_t n = strlen(w);
    if (len + n + 1 >= cap) break;
    memcpy(buf + len, w, n);
    len += n;
    buf[len++] = ' ';
  }
  buf[len] = '\0';
  return len;
}

/* The textbook BPE over the llama2 file: normalize, one symbol per character (or <0xXX> per byte when
 * the character is not a token), then merge the lowest rank until nothing merges. */
static size_t reference_encode(json_t *vocab, json_t *ranks, const char *text, int *ids) {
  size_t cap = 4 * strlen(text) + 8, n = 0;
  char **sym = malloc(cap * sizeof *sym);
  const char *p = text;
  char ch[8];
  /* Prepend "▁", then every " " becomes "▁". */
  sym[n++] = strdup("\xe2\x96\x81");
  while (*p) {
    size_t k = 1;
    while ((p[k] & 0xC0) == 0x80) k++;
    if (k == 1 && *p == ' ') {
      snprintf(ch, sizeof ch, "\xe2\x96\x81");
    } else {
      memcpy(ch, p, k);
      ch[k] = '\0';
    }
    if (json_object_get(vocab, ch)) {
      sym[n++] = strdup(ch);
    } else {
      for (size_t j = 0; j < k; j++) {
        char byte[8];
        snprintf(byte, sizeof byte, "<0x%02X>", (unsigned char)p[j]);
        sym[n++] = strdup(byte);
      }
    }
    p += k;
  }
  for (;;) {
    long best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; i++) {
      char key[256];
      snprintf(key, sizeof key, "%s %s", sym[i], sym[i + 1]);
      json_t *rank = json_object_get(ranks, key);
      if (rank && (best < 0 || json_integer_value(rank) < best)) best = (long)json_integer_value(rank), at = i;
    }
    if (best < 0) break;
    char *merged = malloc(strlen(sym[at]) + strlen(sym[at + 1]) + 1);
    strcpy(merged, sym[at]);
    strcat(merged, sym[at + 1]);
    free(sym[at]);
    free(sym[at + 1]);
    sym[at] = merged;
    memmove(&sym[at + 1], &sym[at + 2], (n - at - 2) * sizeof *sym);
    n--;
  }
  for (size_t i = 0; i < n; i++) {
    ids[i] = (int)json_integer_value(json_object_get(vocab, sym[i]));
    free(sym[i]);
  }
  free(sym);
  return n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void report_throughput(const char *family, const char *big, size_t len) {
  char rel[128], err[512] = "";
  snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", family);
  tokenizer *tok = tokenizer_load(harness_shared(rel), err, sizeof err);
  CHECK_MSG(tok != NULL, "%s", err);
  if (!tok) return;
  token_ids ids = {0};
  token_text back = {0};
  double t0 = now();
  CHECK_MSG(tokenizer_encode(tok, big, len, false, false, &ids, err, sizeof err) == 0, "%s", err);
  double t1 = now();
  CHECK(tokenizer_decode(tok, ids.ids, ids.len, false, &back, err, sizeof err) == 0);
  CHECK_MSG(back.len == len && !memcmp(back.data, big, len), "%s: %zu bytes did not round-trip", family, len);
  printf("%s: %zu bytes -> %zu ids in %.1f ms (%.2f MB/s)\n", family, len, ids.len, 1e3 * (t1 - t0),
         (double)len / 1e6 / (t1 - t0));
  token_ids_free(&ids);
  token_text_free(&back);
  tokenizer_free(tok);
}

int main(void) {
  const char *path = harness_shared("tokenizers/llama2/tokenizer.json");
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  CHECK_MSG(root != NULL, "%s", jerr.text);
  if (!root) return harness_finish();
  json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
  json_t *merges = json_object_get(json_object_get(root, "model"), "merges"), *m;
  json_t *ranks = json_object();
  size_t i;
  json_array_foreach(merges, i, m) json_object_set_new(ranks, json_string_value(m), json_integer((json_int_t)i));

  char err[512] = "";
  tokenizer *tok = tokenizer_load(path, err, sizeof err);
  CHECK_MSG(tok != NULL, "%s", err);
  static char text[2400];
  static int want[4 * sizeof text];
  for (unsigned seed = 1; tok && seed <= 4; seed++) {
    size_t len = make_text(text, sizeof text, seed);
    size_t n = reference_encode(vocab, ranks, text, want);
    token_ids got = {0};
    CHECK_MSG(tokenizer_encode(tok, text, len, false, false, &got, err, sizeof err) == 0, "%s", err);
    size_t same = 0;
    while (same < n && same < got.len && got.ids[same] == want[same]) same++;
    CHECK_MSG(got.len == n && same == n, "seed %u: %zu-byte text: %zu ids vs reference %zu, first difference at %zu",
              seed, len, got.len, n, same);
    token_ids_free(&got);
  }
  tokenizer_free(tok);
  json_decref(ranks);
  json_decref(root);

  size_t big_cap = 256 * 1024;
  char *big = malloc(big_cap);
  size_t big_len = make_text(big, big_cap, 99);
  report_throughput("llama2", big, big_len);
  report_throughput("llama3", big, big_len);
  report_throughput("qwen3", big, big_len);
  free(big);
  return harness_finish();
}
