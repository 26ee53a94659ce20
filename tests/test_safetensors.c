/* safetensors: exact f32 round trip, f16/bf16 against known bit patterns, and a battery of malformed
 * files that must each be rejected with a message naming the problem. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "half.h"
#include "harness.h"
#include "safetensors.h"

static char err[1024];
static const char *dir;

static void test_round_trip_f32(void) {
  float a[6] = {1.0f, -2.5f, 3.0e-39f /* subnormal */, 1e30f, -0.0f, 0.1f};
  float b[1] = {42.0f};
  float c[1];
  const st_entry entries[] = {
      {"layer.a", ST_F32, 2, {2, 3}, a},
      {"scalar", ST_F32, 0, {0}, b},
      {"empty", ST_F32, 2, {0, 7}, c},
  };
  const char *meta[] = {"format", "pt", "note", "round trip", NULL};
  char path[256];
  snprintf(path, sizeof path, "%s/rt.safetensors", dir);
  CHECK_EQ_INT(st_file_write(path, entries, 3, meta, err, sizeof err), 0);
  st_file f;
  int rc = st_file_open(&f, path, err, sizeof err);
  CHECK_MSG(rc == 0, "open: %s", err);
  if (rc != 0) return;
  CHECK_EQ_INT(f.n_tensors, 3);
  CHECK_STR_CONTAINS(st_file_metadata(&f, "format"), "pt");
  CHECK_STR_CONTAINS(st_file_metadata(&f, "note"), "round trip");
  CHECK(st_file_metadata(&f, "absent") == NULL);
  /* the reference writer pads the header so the data section starts 8-aligned */
  CHECK_EQ_INT((f.data - (const unsigned char *)f.map) % 8, 0);
  float got[6];
  CHECK_EQ_INT(st_file_read_f32(&f, "layer.a", 2, (int64_t[]){2, 3}, got, err, sizeof err), 0);
  CHECK(memcmp(got, a, sizeof a) == 0);
  const st_tensor *s = st_file_find(&f, "scalar");
  CHECK(s && s->ndim == 0 && s->numel == 1 && s->dtype == ST_F32);
  CHECK_EQ_INT(st_file_read_f32(&f, "scalar", 0, NULL, got, err, sizeof err), 0);
  CHECK(got[0] == 42.0f);
  const st_tensor *e = st_file_find(&f, "empty");
  CHECK(e && e->numel == 0 && e->begin == e->end);
  /* a shape mismatch names the tensor, what was found and what was expected */
  CHECK_EQ_INT(st_file_read_f32(&f, "layer.a", 2, (int64_t[]){3, 2}, got, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "\"layer.a\": shape (2, 3), expected (3, 2)");
  CHECK_STR_CONTAINS(err, "rt.safetensors");
  CHECK_EQ_INT(st_file_read_f32(&f, "nope", 1, (int64_t[]){1}, got, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "\"nope\" is missing");
  st_file_close(&f);
}

static void test_half_bits(void) {
  static const struct {
    uint16_t bits;
    float value;
  } f16[] = {{0x3c00, 1.0f},        {0xc000, -2.0f},        {0x7bff, 65504.0f},
             {0x0001, 5.9604644775390625e-8f /* 2^-24 */}, {0x0400, 6.103515625e-5f /* 2^-14 */},
             {0x3555, 0.333251953125f}, {0x8000, -0.0f},     {0x03ff, 6.097555160522461e-5f}};
  for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
    CHECK_MSG(f16_to_f32(f16[i].bits) == f16[i].value, "f16 %04x -> %g", f16[i].bits, f16_to_f32(f16[i].bits));
    CHECK_MSG(f32_to_f16(f16[i].value) == f16[i].bits, "f32 %g -> f16 %04x", f16[i].value, f32_to_f16(f16[i].value));
  }
  CHECK(signbit(f16_to_f32(0x8000)));
  CHECK(isinf(f16_to_f32(0x7c00)) && f16_to_f32(0xfc00) < 0);
  CHECK(isnan(f16_to_f32(0x7e00)));
  CHECK((f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (f32_to_f16(NAN) & 0x3ff) != 0);
  /* rounding: nearest, ties to even */
  CHECK_EQ_INT(f32_to_f16(1.0f / 3.0f), 0x3555);
  CHECK_EQ_INT(f32_to_f16(65519.0f), 0x7bff);
  CHECK_EQ_INT(f32_to_f16(65520.0f), 0x7c00);  /* the tie above the max goes to inf */
  CHECK_EQ_INT(f32_to_f16(-1e6f), 0xfc00);
  CHECK_EQ_INT(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);      /* tie, even stays */
  CHECK_EQ_INT(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);  /* tie, odd rounds up */
  CHECK_EQ_INT(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
  CHECK_EQ_INT(f32_to_f16(0x1p-25f), 0x0000);      /* subnormal tie to even (0) */
  CHECK_EQ_INT(f32_to_f16(3 * 0x1p-25f), 0x0002);  /* subnormal tie to even (2) */
  CHECK_EQ_INT(f32_to_f16(1e-8f), 0x0000);
  CHECK_EQ_INT(f32_to_f16(0x1p-14f - 0x1p-26f), 0x0400);  /* rounds up into the smallest normal */

  CHECK(bf16_to_f32(0x3f80) == 1.0f);
  CHECK(bf16_to_f32(0xc049) == -3.140625f);
  CHECK_EQ_INT(f32_to_bf16(3.14159265f), 0x4049);
  CHECK_EQ_INT(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);      /* tie, even stays */
  CHECK_EQ_INT(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);  /* tie, odd rounds up */
  CHECK_EQ_INT(f32_to_bf16(3.4028235e38f), 0x7f80);       /* FLT_MAX rounds to inf, as in torch */
  CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
  CHECK(bf16_to_f32(0x0001) == 0x1p-133f);  /* bf16 keeps f32's subnormals */
}

static void test_round_trip_half(void) {
  float x[5] = {1.0f, -0.333333f, 1000.5f, 7e-6f, 0.0f};
  const st_entry entries[] = {{"h", ST_F16, 1, {5}, x}, {"b", ST_BF16, 1, {5}, x}};
  char path[256];
  snprintf(path, sizeof path, "%s/half.safetensors", dir);
  CHECK_EQ_INT(st_file_write(path, entries, 2, NULL, err, sizeof err), 0);
  st_file f;
  if (st_file_open(&f, path, err, sizeof err) != 0) {
    CHECK_MSG(0, "open: %s", err);
    return;
  }
  CHECK(st_file_find(&f, "h")->dtype == ST_F16 && st_file_find(&f, "b")->dtype == ST_BF16);
  CHECK_EQ_INT(st_file_find(&f, "h")->end - st_file_find(&f, "h")->begin, 10);
  float h[5], b[5];
  CHECK_EQ_INT(st_file_read_f32(&f, "h", 1, (int64_t[]){5}, h, err, sizeof err), 0);
  CHECK_EQ_INT(st_file_read_f32(&f, "b", 1, (int64_t[]){5}, b, err, sizeof err), 0);
  for (int i = 0; i < 5; i++) {
    CHECK(h[i] == f16_to_f32(f32_to_f16(x[i])));
    CHECK(b[i] == bf16_to_f32(f32_to_bf16(x[i])));
  }
  CHECK(h[2] == 1000.5f);     /* exactly representable in f16 */
  CHECK(b[2] == 1000.0f);     /* bf16 has 8 significant bits */
  CHECK(h[1] == -0.333251953125f);
  st_file_close(&f);
}

/* Writes an 8-byte length (header_len, or strlen(header) when header_len is ~0), the header and
 * data_size data bytes. */
static const char *write_raw(const char *name, uint64_t header_len, const char *header, size_t data_size) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
  FILE *fp = fopen(path, "wb");
  if (header_len == ~(uint64_t)0) header_len = strlen(header);
  for (int i = 0; i < 8; i++) fputc((int)((header_len >> (8 * i)) & 0xff), fp);
  fputs(header, fp);
  for (size_t i = 0; i < data_size; i++) fputc(0, fp);
  fclose(fp);
  return path;
}

static void expect_reject(const char *name, uint64_t header_len, const char *header, size_t data_size,
                          const char *message) {
  const char *path = write_raw(name, header_len, header, data_size);
  st_file f;
  err[0] = '\0';
  int rc = st_file_open(&f, path, err, sizeof err);
  CHECK_MSG(rc == -1, "%s: accepted a malformed file", name);
  if (rc == 0) st_file_close(&f);
  CHECK_STR_CONTAINS(err, message);
  CHECK_STR_CONTAINS(err, name);  /* every message names the file */
}

#define ANY (~(uint64_t)0)

static void test_malformed(void) {
  char path[256];
  snprintf(path, sizeof path, "%s/short.safetensors", dir);
  FILE *fp = fopen(path, "wb");
  fputs("abc", fp);
  fclose(fp);
  st_file f;
  CHECK_EQ_INT(st_file_open(&f, path, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "truncated: 3 bytes");

  const char *one = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  expect_reject("truncated_data", ANY, one, 4, "\"t\": field \"data_offsets\" [0, 8] is outside the data section of 4 bytes");
  expect_reject("huge_header", 200ull * 1024 * 1024, one, 8, "header length 209715200 is larger than the 100 MB limit");
  expect_reject("header_past_end", 4000, one, 8, "header length 4000 is larger than the rest of the file");
  expect_reject("overlap", ANY,
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, "\"b\": field \"data_offsets\" [4, 12] overlaps tensor \"a\"");
  expect_reject("gap", ANY,
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                12, "\"b\": field \"data_offsets\" starts at 8, leaving a gap after byte 4");
  expect_reject("not_at_zero", ANY, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                "starts at 4, leaving a gap after byte 0");
  expect_reject("trailing", ANY, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
                "tensors cover 4 bytes of a 8-byte data section");
  expect_reject("span", ANY, "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                "\"t\": field \"data_offsets\" spans 8 bytes, but shape × F32 size needs 12");
  expect_reject("span_f16", ANY, "{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
                "spans 16 bytes, but shape × F16 size needs 8");
  expect_reject("dtype", ANY, "{\"t\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                "\"t\": field \"dtype\": unknown dtype \"F7\"");
  expect_reject("no_dtype", ANY, "{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                "\"t\": field \"dtype\" is missing");
  expect_reject("bad_json", ANY, "{\"t\":{\"dtype\":\"F32\",", 0, "header is not valid JSON");
  expect_reject("duplicate", ANY,
                "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4, "duplicate object key");
  expect_reject("array_header", ANY, "[1, 2]", 0, "header is not a JSON object");
  expect_reject("negative_shape", ANY, "{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
                "\"t\": field \"shape\"[0] is not a non-negative integer");
  expect_reject("float_shape", ANY, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
                "field \"shape\"[0] is not a non-negative integer");
  expect_reject("overflow", ANY,
                "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8,
                "\"t\": field \"shape\": element count overflows");
  expect_reject("bytes_overflow", ANY,
                "{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8,
                "\"t\": field \"data_offsets\" spans 8 bytes");
  expect_reject("reversed", ANY, "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
                "\"t\": field \"data_offsets\" [4, 0] ends before it begins");
  expect_reject("offsets_triple", ANY, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                "field \"data_offsets\" is not a pair");
  expect_reject("meta_not_string", ANY, "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ \"k\" is not a string");
  expect_reject("entry_not_object", ANY, "{\"t\":[1]}", 0, "\"t\": entry is not a JSON object");

  /* a known dtype we cannot convert opens fine but is named when read as floats */
  const char *ints = write_raw("ints", ANY, "{\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  CHECK_EQ_INT(st_file_open(&f, ints, err, sizeof err), 0);
  float out[2];
  CHECK_EQ_INT(st_file_read_f32(&f, "i", 1, (int64_t[]){2}, out, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "\"i\": dtype I32 cannot be loaded as floats");
  st_file_close(&f);
  /* padding spaces after the JSON are legal */
  const char *padded = write_raw("padded", ANY, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}     ", 4);
  CHECK_EQ_INT(st_file_open(&f, padded, err, sizeof err), 0);
  st_file_close(&f);
}

static void test_writer_rejects(void) {
  float x[2] = {0};
  char path[256];
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  const st_entry dup[] = {{"a", ST_F32, 1, {2}, x}, {"a", ST_F32, 1, {2}, x}};
  CHECK_EQ_INT(st_file_write(path, dup, 2, NULL, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "\"a\": the name appears twice");
  const st_entry ints[] = {{"a", ST_I32, 1, {2}, x}};
  CHECK_EQ_INT(st_file_write(path, ints, 1, NULL, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "dtype must be F32, F16 or BF16");
  FILE *fp = fopen(path, "rb");
  CHECK(fp == NULL);  /* nothing half-written left behind */
  if (fp) fclose(fp);
}

/* Entries in dir whose name contains ".tmp-": what a crashed or failed atomic write would leave. */
static int count_temp_files(const char *path) {
  DIR *d = opendir(path);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp-") != NULL;
  if (d) closedir(d);
  return n;
}

static void test_fsutil(void) {
  char nested[256], file[256];
  snprintf(nested, sizeof nested, "%s/a/b/c", dir);
  CHECK_EQ_INT(fs_mkdir_p(nested, 0755, err, sizeof err), 0);
  CHECK_EQ_INT(fs_mkdir_p(nested, 0755, err, sizeof err), 0); /* existing is fine */
  struct stat st;
  CHECK(stat(nested, &st) == 0 && S_ISDIR(st.st_mode));
  snprintf(file, sizeof file, "%s/a/file", dir);
  CHECK_EQ_INT(fs_write_atomic(file, "old", 3, err, sizeof err), 0);
  CHECK_EQ_INT(fs_write_atomic(file, "new!", 4, err, sizeof err), 0);
  CHECK(stat(file, &st) == 0 && st.st_size == 4 && (st.st_mode & 0777) == 0644);
  char sub_of_file[300];
  snprintf(sub_of_file, sizeof sub_of_file, "%s/x", file);
  CHECK_EQ_INT(fs_mkdir_p(sub_of_file, 0755, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "cannot create directory");
  CHECK_EQ_INT(fs_mkdir_p(file, 0755, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "exists and is not a directory");
  /* an aborted write leaves neither the target nor its temp file */
  atomic_file af;
  char aborted[256];
  snprintf(aborted, sizeof aborted, "%s/a/aborted", dir);
  CHECK_EQ_INT(atomic_file_open(&af, aborted, err, sizeof err), 0);
  fputs("partial", af.fp);
  CHECK_EQ_INT(count_temp_files(nested) + count_temp_files(dir), 0);
  char parent[256];
  snprintf(parent, sizeof parent, "%s/a", dir);
  CHECK_EQ_INT(count_temp_files(parent), 1);
  atomic_file_abort(&af);
  CHECK_EQ_INT(count_temp_files(parent), 0);
  CHECK(stat(aborted, &st) != 0);
  CHECK_EQ_INT(fs_write_atomic("/nonexistent-dir/x", "x", 1, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "/nonexistent-dir/x: cannot create temp file");
  CHECK_EQ_INT(fs_remove_tree(parent, err, sizeof err), 0);
  CHECK(stat(parent, &st) != 0);
  CHECK_EQ_INT(fs_remove_tree(parent, err, sizeof err), 0); /* already gone is fine */
}

int main(void) {
  dir = harness_tmpdir();
  test_round_trip_f32();
  test_half_bits();
  test_round_trip_half();
  test_malformed();
  test_writer_rejects();
  test_fsutil();
  CHECK_EQ_INT(count_temp_files(dir), 0); /* every write above, failed or not, cleaned up */
  if (harness_failures == 0) fs_remove_tree(dir, err, sizeof err);
  return harness_finish();
}
