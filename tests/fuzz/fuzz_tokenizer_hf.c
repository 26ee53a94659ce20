/* Hugging Face tokenizer.json through tokenizer_load_hf; a tokenizer that loads also encodes and
 * decodes a fixed text, so the tables the loader built are used, not only allocated. */
#include <string.h>

#include "fuzz_input.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  tokenizer *tok = tokenizer_load_hf(fuzz_write("tokenizer.json", data, size), err, sizeof err);
  if (!tok) return 0;
  static const char text[] = "Hello wörld 123 <s> \xe2\x96\x81x\n\tend";
  token_ids ids = {0};
  token_text back = {0};
  if (tokenizer_encode(tok, text, strlen(text), false, false, &ids, err, sizeof err) == 0)
    tokenizer_decode(tok, ids.ids, ids.len, false, &back, err, sizeof err);
  token_ids_free(&ids);
  token_text_free(&back);
  tokenizer_free(tok);
  return 0;
}
