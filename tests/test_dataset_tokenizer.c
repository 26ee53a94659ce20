/* tokenizer_for_model: the --tokenizer flag, a directory that says byte-level, tokenizer.json beside
 * an HF model, tokenizer.bin beside a llama2.c file, and the errors when none is found or it does not
 * fit the model's vocabulary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "model_tokenizer.h"

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

int main(void) {
  const char *hf = harness_shared("tokenizers/llama2/tokenizer.json");
  char dir[512], path[1024], err[1024];
  snprintf(dir, sizeof dir, "%s", harness_tmpdir());

  tokenizer *tok = tokenizer_for_model("/nonexistent", "bytes", 512, err, sizeof err);
  CHECK(tok && !strcmp(tokenizer_kind_name(tok), "bytes"));
  tokenizer_free(tok);
  tok = tokenizer_for_model("/nonexistent", "bytes", 100, err, sizeof err);
  CHECK(!tok);
  CHECK_STR_CONTAINS(err, "has 259 ids but the model /nonexistent only 100");

  /* an HF directory whose tokenizer_config.json says byte-level */
  write_file((snprintf(path, sizeof path, "%s/tokenizer_config.json", dir), path), "{\"fedlora_tokenizer\": \"bytes\"}");
  tok = tokenizer_for_model(dir, NULL, 259, err, sizeof err);
  CHECK_MSG(tok && !strcmp(tokenizer_kind_name(tok), "bytes"), "%s", err);
  tokenizer_free(tok);
  /* otherwise its tokenizer.json */
  write_file(path, "{}");
  tok = tokenizer_for_model(dir, NULL, 0, err, sizeof err);
  CHECK(!tok);
  CHECK_STR_CONTAINS(err, "has no tokenizer beside it");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s/tokenizer.json' && rm '%s/tokenizer_config.json'", hf, dir, dir);
  CHECK(system(cmd) == 0);
  tok = tokenizer_for_model(dir, NULL, 32000, err, sizeof err);
  CHECK_MSG(tok && !strcmp(tokenizer_kind_name(tok), "hf-bpe"), "%s", err);
  tokenizer_free(tok);

  /* a llama2.c checkpoint file: tokenizer.bin beside it, or an error naming the flag */
  snprintf(path, sizeof path, "%s/model.bin", dir);
  write_file(path, "x");
  tok = tokenizer_for_model(path, NULL, 0, err, sizeof err);
  CHECK(!tok);
  CHECK_STR_CONTAINS(err, "/tokenizer.bin); pass --tokenizer FILE, or 'bytes'");

  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return harness_finish();
}
