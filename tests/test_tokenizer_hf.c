/* Hugging Face tokenizer.json: every reference vector (tokenizers.js encodings of the shipped llama2,
 * llama3 and qwen3 files) is reproduced exactly, and decoding gives the text back. */
#include <jansson.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"
#include "tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check_family(const char *family, int want_bos, int want_eos, int want_vocab) {
  char rel[256], err[512] = "";
  snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", family);
  const char *path = harness_shared(rel);
  double t0 = now();
  tokenizer *tok = tokenizer_load(path, err, sizeof err);
  double load_s = now() - t0;
  CHECK_MSG(tok != NULL, "%s: %s", family, err);
  if (!tok) return;
  CHECK_EQ_INT(tokenizer_bos(tok), want_bos);
  CHECK_EQ_INT(tokenizer_eos(tok), want_eos);
  CHECK_EQ_INT(tokenizer_vocab_size(tok), want_vocab);

  snprintf(rel, sizeof rel, "tokenizers/%s/vectors.json", family);
  json_error_t jerr;
  json_t *vectors = json_load_file(harness_shared(rel), 0, &jerr);
  CHECK_MSG(json_is_array(vectors) && json_array_size(vectors) > 0, "%s: vectors.json: %s", family, jerr.text);
  size_t i, checked = 0, total_ids = 0;
  json_t *v;
  double encode_s = 0;
  json_array_foreach(vectors, i, v) {
    const char *text = json_string_value(json_object_get(v, "text"));
    json_t *want = json_object_get(v, "ids");
    token_ids got = {0};
    double e0 = now();
    int rc = tokenizer_encode(tok, text, strlen(text), false, false, &got, err, sizeof err);
    encode_s += now() - e0;
    CHECK_MSG(rc == 0, "%s: encode \"%s\": %s", family, text, err);
    bool same = got.len == json_array_size(want);
    for (size_t k = 0; same && k < got.len; k++) same = got.ids[k] == json_integer_value(json_array_get(want, k));
    if (!same) {
      fprintf(stderr, "%s: \"%s\"\n  got :", family, text);
      for (size_t k = 0; k < got.len; k++) fprintf(stderr, " %d", got.ids[k]);
      fprintf(stderr, "\n  want:");
      for (size_t k = 0; k < json_array_size(want); k++)
        fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, k)));
      fprintf(stderr, "\n");
    }
    CHECK_MSG(same, "%s: encoding of \"%s\" differs from the reference", family, text);
    token_text back = {0};
    rc = tokenizer_decode(tok, got.ids, got.len, false, &back, err, sizeof err);
    CHECK_MSG(rc == 0 && back.len == strlen(text) && memcmp(back.data, text, back.len) == 0,
              "%s: decode gave \"%s\" for \"%s\" (%s)", family, back.data ? back.data : "", text, rc ? err : "");
    checked += same, total_ids += got.len;
    token_ids_free(&got);
    token_text_free(&back);
  }
  printf("%s: %zu/%zu vectors reproduced (%zu ids); load %.3f s, encode %.2f ms total\n", family, checked,
         json_array_size(vectors), total_ids, load_s, 1e3 * encode_s);
  json_decref(vectors);
  tokenizer_free(tok);
}

int main(void) {
  check_family("llama2", 1, 2, 32000);
  check_family("llama3", 128000, 128001, 128256);
  check_family("qwen3", -1, 151645, 151669);
  return harness_finish();
}
