/* safetensors: the header (length, JSON, dtypes, shapes, offsets) of st_file_open, then every
 * tensor converted to floats, so a layout the checks let through is also read end to end. */
#include <stdlib.h>

#include "fuzz_input.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file f;
  char err[512];
  if (st_file_open(&f, fuzz_write("model.safetensors", data, size), err, sizeof err) != 0) return 0;
  for (int i = 0; i < f.n_tensors; i++) {
    const st_tensor *t = &f.tensors[i];
    float *dst = malloc(((size_t)t->numel ? (size_t)t->numel : 1) * sizeof *dst);
    if (dst) st_tensor_to_f32(&f, t, dst, err, sizeof err);
    free(dst);
    st_file_metadata(&f, "format");
  }
  st_file_close(&f);
  return 0;
}
