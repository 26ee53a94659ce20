/* PEFT adapter_config.json as peft_config_load reads it from an adapter directory. */
#include "fuzz_input.h"
#include "peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_write("adapter_config.json", data, size);
  lora_config cfg;
  char err[512];
  peft_config_load(&cfg, fuzz_dir(), err, sizeof err);
  return 0;
}
