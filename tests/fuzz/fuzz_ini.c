/* The two INI schemas through their loaders (agg_config_load, site_config_load). The first byte
 * picks the schema; the rest is the file. */
#include "agg_config.h"
#include "fuzz_input.h"
#include "site_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *path = fuzz_write("config.ini", data + 1, size - 1);
  char err[512];
  if (data[0] & 1) {
    site_config cfg;
    if (site_config_load(&cfg, path, NULL, 0, err, sizeof err) == 0) site_config_free(&cfg);
  } else {
    agg_config cfg;
    if (agg_config_load(&cfg, path, NULL, 0, err, sizeof err) == 0) agg_config_free(&cfg);
  }
  return 0;
}
