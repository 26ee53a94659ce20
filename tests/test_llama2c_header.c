/* llama2.c checkpoint headers: a tiny model round-trips exactly, and headers that lie are refused
 * with a message naming the field, not loaded. The hostile headers are the ones fuzz_llama2c found
 * (tests/fuzz/corpus/llama2c) or that follow from them. */
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"
#include "llama2c.h"

static const char *write_file(const char *name, const void *data, size_t len) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", harness_tmpdir(), name);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f) {
    fwrite(data, 1, len, f);
    fclose(f);
  }
  return path;
}

/* Header plus `floats` zero floats. */
static const char *write_header(const char *name, const int32_t h[7], size_t floats) {
  size_t len = 28 + floats * 4;
  unsigned char *buf = calloc(1, len);
  memcpy(buf, h, 28);
  const char *path = write_file(name, buf, len);
  free(buf);
  return path;
}

static void expect_refused(const char *what, const int32_t h[7], size_t floats, const char *needle) {
  model m;
  char err[512] = "";
  int rc = llama2c_load(&m, write_header(what, h, floats), err, sizeof err);
  CHECK_MSG(rc != 0, "%s was loaded (dim %d, %zu weights)", what, m.config.dim, m.num_params);
  if (rc == 0) model_free(&m);
  CHECK_STR_CONTAINS(err, needle);
}

static void test_round_trip(void) {
  model_config c = {.dim = 8, .hidden_dim = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4,
                    .vocab_size = 11, .max_seq_len = 5, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                    .tied_classifier = 0};
  model m, back;
  char err[512];
  CHECK(model_build(&m, &c, err, sizeof err) == 0);
  model_init_random(&m, 7, 0.5f);
  char path[512];
  snprintf(path, sizeof path, "%s/tiny.bin", harness_tmpdir());
  CHECK_MSG(llama2c_save(&m, path, err, sizeof err) == 0, "%s", err);
  CHECK_MSG(llama2c_load(&back, path, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(back.num_params, m.num_params);
  CHECK_EQ_INT(back.config.vocab_size, 11);
  CHECK_EQ_INT(back.config.tied_classifier, 0);
  CHECK(memcmp(back.params, m.params, m.num_params * sizeof(float)) == 0);
  model_free(&back);
  model_free(&m);
}

static void test_hostile_headers(void) {
  /* vocab_size INT32_MIN: its negation (the "separate classifier" flag) does not exist. */
  const int32_t int_min_vocab[7] = {8, 16, 1, 2, 2, INT32_MIN, 4};
  expect_refused("int-min-vocab.bin", int_min_vocab, 0, "vocab_size");

  /* Sizes whose weight count wraps size_t to exactly 0: dim 2^30 with 2^29 heads of 2, two layers
   * and hidden_dim 2147483645 make every product a multiple of 2^64, so the file only needs room
   * for the RoPE tables (2 floats). Without a bound it loads as a "model" with no weights at all. */
  const int32_t wrapping[7] = {1 << 30, 2147483645, 2, 1 << 29, 1, 5, 1};
  expect_refused("wrapping.bin", wrapping, 2, "dim");

  const int32_t zero_heads[7] = {8, 16, 1, 0, 0, 11, 4};
  expect_refused("zero-heads.bin", zero_heads, 0, "n_heads must be > 0");
  const int32_t short_file[7] = {8, 16, 1, 2, 2, 11, 4};
  expect_refused("short.bin", short_file, 10, "does not match its header");
  expect_refused("truncated-header.bin", short_file, 0, "does not match its header");
  model m;
  char err[512];
  CHECK(llama2c_load(&m, write_file("six-bytes.bin", "abcdef", 6), err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "too short for a llama2.c header");
}

int main(void) {
  test_round_trip();
  test_hostile_headers();
  return harness_finish();
}
