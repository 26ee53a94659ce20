/* model_load: one entry point for both checkpoint formats, chosen by what the path is. */
#include <stdio.h>
#include <sys/stat.h>

#include "hf_model.h"
#include "llama2c.h"
#include "model.h"

int model_load(model *m, const char *path, char *err, size_t err_size) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, err_size, "%s: cannot open model: no such file or directory", path);
    return -1;
  }
  if (S_ISDIR(st.st_mode)) return hf_model_load(m, path, err, err_size);
  return llama2c_load(m, path, err, err_size);
}
