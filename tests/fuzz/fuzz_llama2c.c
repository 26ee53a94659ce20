/* llama2.c checkpoints: the seven-int header and the size it implies, through llama2c_load. */
#include "fuzz_input.h"
#include "llama2c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  model m;
  char err[512];
  if (llama2c_load(&m, fuzz_write("model.bin", data, size), err, sizeof err) == 0) model_free(&m);
  return 0;
}
