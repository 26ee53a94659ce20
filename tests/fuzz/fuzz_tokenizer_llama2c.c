/* llama2.c tokenizer.bin through tokenizer_load_llama2c (vocabulary size from the file's length);
 * a tokenizer that loads also encodes and decodes a fixed text. */
#include <string.h>

#include "fuzz_input.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];
  tokenizer *tok = tokenizer_load_llama2c(fuzz_write("tokenizer.bin", data, size), 0, err, sizeof err);
  if (!tok) return 0;
  static const char text[] = "Once upon a time, \xc3\xa9t\xc3\xa9 \xff\n";
  token_ids ids = {0};
  token_text back = {0};
  if (tokenizer_encode(tok, text, strlen(text), true, true, &ids, err, sizeof err) == 0)
    tokenizer_decode(tok, ids.ids, ids.len, true, &back, err, sizeof err);
  token_ids_free(&ids);
  token_text_free(&back);
  tokenizer_free(tok);
  return 0;
}
