/* The demo base model's tokenizer.json (a BPE with only the 256 byte pieces, byte_fallback and no
 * merges, as fedlora pretrain writes it) must encode every text exactly as the byte-level tokenizer
 * does and decode back to the same bytes, with the same special ids. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "synth.h"
#include "tokenizer.h"

static void check_same(const tokenizer *hf, const tokenizer *bytes, const char *text, size_t len, const char *what) {
  char err[512];
  token_ids a = {0}, b = {0};
  int ra = tokenizer_encode(hf, text, len, true, true, &a, err, sizeof err);
  CHECK_MSG(ra == 0, "%s: %s", what, err);
  CHECK(tokenizer_encode(bytes, text, len, true, true, &b, err, sizeof err) == 0);
  CHECK_MSG(a.len == b.len && !memcmp(a.ids, b.ids, a.len * sizeof *a.ids), "%s: tokenizer.json gives %zu ids, "
            "the byte-level tokenizer %zu (or different ids)", what, a.len, b.len);
  token_text back = {0};
  CHECK(ra == 0 && tokenizer_decode(hf, a.ids, a.len, true, &back, err, sizeof err) == 0);
  CHECK_MSG(back.len == len && !memcmp(back.data, text, len), "%s: decode does not give the text back", what);
  token_ids_free(&a);
  token_ids_free(&b);
  token_text_free(&back);
}

int main(void) {
  char err[512];
  tokenizer *hf = tokenizer_load(harness_source("models/demo-base/tokenizer.json"), err, sizeof err);
  CHECK_MSG(hf != NULL, "%s", err);
  tokenizer *bytes = tokenizer_build_bytes();
  if (!hf) return harness_finish();
  CHECK(!strcmp(tokenizer_kind_name(hf), "hf-bpe"));
  CHECK_EQ_INT(tokenizer_vocab_size(hf), tokenizer_vocab_size(bytes));
  CHECK_EQ_INT(tokenizer_bos(hf), tokenizer_bos(bytes));
  CHECK_EQ_INT(tokenizer_eos(hf), tokenizer_eos(bytes));
  CHECK_EQ_INT(tokenizer_pad(hf), tokenizer_pad(bytes));

  static const char *const samples[] = {
      "", " ", "a", "  two  spaces\tand a tab\n", "<0x41> is not a byte token here",
      "Temp 39.1 \u00b0C, caf\u00e9, \u20ac5, \xf0\x9f\x99\x82 and \xe4\xb8\xad\xe6\x96\x87", "\x01\x7f control bytes",
  };
  for (size_t i = 0; i < sizeof samples / sizeof *samples; i++)
    check_same(hf, bytes, samples[i], strlen(samples[i]), samples[i]);
  /* all of ASCII but NUL; the multi-byte samples above cover bytes >= 0x80 */
  char all[128];
  for (int c = 1; c < 128; c++) all[c - 1] = (char)c;
  check_same(hf, bytes, all, 127, "ASCII 1..127");
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++)
    for (long i = 0; i < 20; i++) {
      json_t *rec = synth_record(s, 5, i, err, sizeof err);
      CHECK_MSG(rec != NULL, "%s", err);
      const char *key;
      json_t *value;
      json_object_foreach(rec, key, value)
        check_same(hf, bytes, json_string_value(value), json_string_length(value), key);
      json_decref(rec);
    }
  tokenizer_free(hf);
  tokenizer_free(bytes);
  return harness_finish();
}
