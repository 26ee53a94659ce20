/* Site data files through records_read. The first byte picks the format (auto by content, jsonl,
 * text, ids) and whether bad records are skipped; the rest is the file. */
#include "dataset.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const data_format formats[] = {DATA_FORMAT_AUTO, DATA_FORMAT_JSONL, DATA_FORMAT_TEXT, DATA_FORMAT_IDS};
  data_format format = formats[data[0] & 3];
  int skip_bad = (data[0] >> 2) & 1;
  /* No extension, so auto goes by the first non-blank line. */
  const char *path = fuzz_write("records", data + 1, size - 1);
  record_set s = {0};
  char err[512];
  records_read(&s, path, format, skip_bad, err, sizeof err);
  records_free(&s);
  return 0;
}
