/* Hugging Face config.json through hf_config_load (the model directory's first file read). */
#include "fuzz_input.h"
#include "hf_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_write("config.json", data, size);
  model_config c;
  char err[512];
  hf_config_load(&c, fuzz_dir(), err, sizeof err);
  return 0;
}
