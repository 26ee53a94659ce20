#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "half.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; F32 tensors are copied as-is"
#endif

static const struct {
  const char *name;
  size_t size;
} dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},     [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_U16] = {"U16", 2}, [ST_U32] = {"U32", 4},
    [ST_U64] = {"U64", 8}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *st_dtype_name(st_dtype d) { return (int)d >= 0 && (int)d < N_DTYPES ? dtypes[d].name : "?"; }
size_t st_dtype_size(st_dtype d) { return (int)d >= 0 && (int)d < N_DTYPES ? dtypes[d].size : 0; }

static int dtype_parse(const char *name) {
  for (int i = 0; i < N_DTYPES; i++)
    if (strcmp(name, dtypes[i].name) == 0) return i;
  return -1;
}

void st_file_close(st_file *f) {
  if (f->map) munmap(f->map, f->map_size);
  for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
  free(f->tensors);
  for (int i = 0; i < 2 * f->n_metadata; i++) free(f->metadata[i]);
  free(f->metadata);
  free(f->path);
  memset(f, 0, sizeof *f);
}

/* A non-negative JSON integer, or -1. */
static long long json_nonneg_int(const json_t *j) {
  if (!json_is_integer(j)) return -1;
  long long v = json_integer_value(j);
  return v < 0 ? -1 : v;
}

static int parse_metadata(st_file *f, json_t *meta, char *err, size_t err_size) {
  if (!json_is_object(meta)) {
    snprintf(err, err_size, "%s: __metadata__ is not a JSON object", f->path);
    return -1;
  }
  size_t n = json_object_size(meta);
  f->metadata = calloc(2 * n + 1, sizeof *f->metadata);
  if (!f->metadata) {
    snprintf(err, err_size, "%s: out of memory", f->path);
    return -1;
  }
  const char *key;
  json_t *value;
  json_object_foreach(meta, key, value) {
    if (!json_is_string(value)) {
      snprintf(err, err_size, "%s: __metadata__ \"%s\" is not a string", f->path, key);
      return -1;
    }
    f->metadata[2 * f->n_metadata] = strdup(key);
    f->metadata[2 * f->n_metadata + 1] = strdup(json_string_value(value));
    f->n_metadata++;
    if (!f->metadata[2 * f->n_metadata - 2] || !f->metadata[2 * f->n_metadata - 1]) {
      snprintf(err, err_size, "%s: out of memory", f->path);
      return -1;
    }
  }
  return 0;
}

static int parse_tensor(st_file *f, st_tensor *t, json_t *info, char *err, size_t err_size) {
  const char *path = f->path, *name = t->name;
  if (!json_is_object(info)) {
    snprintf(err, err_size, "%s: tensor \"%s\": entry is not a JSON object", path, name);
    return -1;
  }
  json_t *dtype = json_object_get(info, "dtype");
  if (!json_is_string(dtype)) {
    snprintf(err, err_size, "%s: tensor \"%s\": field \"dtype\" is missing or not a string", path, name);
    return -1;
  }
  int d = dtype_parse(json_string_value(dtype));
  if (d < 0) {
    snprintf(err, err_size, "%s: tensor \"%s\": field \"dtype\": unknown dtype \"%s\"", path, name,
             json_string_value(dtype));
    return -1;
  }
  t->dtype = (st_dtype)d;
  json_t *shape = json_object_get(info, "shape");
  if (!json_is_array(shape)) {
    snprintf(err, err_size, "%s: tensor \"%s\": field \"shape\" is missing or not an array", path, name);
    return -1;
  }
  if (json_array_size(shape) > SAFETENSORS_MAX_DIMS) {
    snprintf(err, err_size, "%s: tensor \"%s\": field \"shape\" has %zu dimensions, at most %d supported",
             path, name, json_array_size(shape), SAFETENSORS_MAX_DIMS);
    return -1;
  }
  t->ndim = (int)json_array_size(shape);
  uint64_t numel = 1;
  for (int i = 0; i < t->ndim; i++) {
    long long dim = json_nonneg_int(json_array_get(shape, (size_t)i));
    if (dim < 0) {
      snprintf(err, err_size, "%s: tensor \"%s\": field \"shape\"[%d] is not a non-negative integer", path,
               name, i);
      return -1;
    }
    t->shape[i] = dim;
    if (__builtin_mul_overflow(numel, (uint64_t)dim, &numel) || numel > INT64_MAX) {
      snprintf(err, err_size, "%s: tensor \"%s\": field \"shape\": element count overflows", path, name);
      return -1;
    }
  }
  t->numel = (int64_t)numel;
  json_t *offsets = json_object_get(info, "data_offsets");
  long long begin = json_nonneg_int(json_array_get(offsets, 0));
  long long end = json_nonneg_int(json_array_get(offsets, 1));
  if (!json_is_array(offsets) || json_array_size(offsets) != 2 || begin < 0 || end < 0) {
    snprintf(err, err_size, "%s: tensor \"%s\": field \"data_offsets\" is not a pair of non-negative integers",
             path, name);
    return -1;
  }
  if (begin > end) {
    snprintf(err, err_size, "%s: tensor \"%s\": field \"data_offsets\" [%lld, %lld] ends before it begins", path,
             name, begin, end);
    return -1;
  }
  if ((uint64_t)end > f->data_size) {
    snprintf(err, err_size,
             "%s: tensor \"%s\": field \"data_offsets\" [%lld, %lld] is outside the data section of %zu bytes",
             path, name, begin, end, f->data_size);
    return -1;
  }
  t->begin = (uint64_t)begin;
  t->end = (uint64_t)end;
  uint64_t bytes;
  if (__builtin_mul_overflow(numel, (uint64_t)dtypes[d].size, &bytes) || bytes != t->end - t->begin) {
    snprintf(err, err_size,
             "%s: tensor \"%s\": field \"data_offsets\" spans %llu bytes, but shape × %s size needs %llu",
             path, name, (unsigned long long)(t->end - t->begin), dtypes[d].name,
             (unsigned long long)numel * dtypes[d].size);
    return -1;
  }
  t->data = f->data + t->begin;
  return 0;
}

static int compare_by_offset(const void *a, const void *b) {
  const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* The data section must be exactly the tensors laid end to end: no gap hides data a reader would
 * skip, no overlap lets two tensors alias the same bytes. */
static int check_layout(st_file *f, char *err, size_t err_size) {
  const st_tensor **order = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *order);
  if (!order) {
    snprintf(err, err_size, "%s: out of memory", f->path);
    return -1;
  }
  for (int i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
  qsort(order, (size_t)f->n_tensors, sizeof *order, compare_by_offset);
  uint64_t at = 0;
  int rc = 0;
  for (int i = 0; i < f->n_tensors && rc == 0; i++) {
    if (order[i]->begin < at) {
      snprintf(err, err_size, "%s: tensor \"%s\": field \"data_offsets\" [%llu, %llu] overlaps tensor \"%s\"",
               f->path, order[i]->name, (unsigned long long)order[i]->begin,
               (unsigned long long)order[i]->end, order[i - 1]->name);
      rc = -1;
    } else if (order[i]->begin > at) {
      snprintf(err, err_size, "%s: tensor \"%s\": field \"data_offsets\" starts at %llu, leaving a gap after byte %llu",
               f->path, order[i]->name, (unsigned long long)order[i]->begin, (unsigned long long)at);
      rc = -1;
    }
    at = order[i]->end;
  }
  if (rc == 0 && at != f->data_size) {
    snprintf(err, err_size, "%s: tensors cover %llu bytes of a %zu-byte data section (trailing bytes)", f->path,
             (unsigned long long)at, f->data_size);
    rc = -1;
  }
  free(order);
  return rc;
}

static int parse_header(st_file *f, const char *text, size_t len, char *err, size_t err_size) {
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    snprintf(err, err_size, "%s: header is not valid JSON (byte %d): %s", f->path, jerr.position, jerr.text);
    return -1;
  }
  int rc = -1;
  if (!json_is_object(root)) {
    snprintf(err, err_size, "%s: header is not a JSON object", f->path);
    goto done;
  }
  f->tensors = calloc(json_object_size(root) + 1, sizeof *f->tensors);
  if (!f->tensors) {
    snprintf(err, err_size, "%s: out of memory", f->path);
    goto done;
  }
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (strcmp(key, "__metadata__") == 0) {
      if (parse_metadata(f, value, err, err_size) != 0) goto done;
      continue;
    }
    st_tensor *t = &f->tensors[f->n_tensors];
    if (!(t->name = strdup(key))) {
      snprintf(err, err_size, "%s: out of memory", f->path);
      goto done;
    }
    f->n_tensors++;
    if (parse_tensor(f, t, value, err, err_size) != 0) goto done;
  }
  rc = check_layout(f, err, err_size);
done:
  json_decref(root);
  return rc;
}

int st_file_open(st_file *f, const char *path, char *err, size_t err_size) {
  memset(f, 0, sizeof *f);
  if (!(f->path = strdup(path))) {
    snprintf(err, err_size, "%s: out of memory", path);
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    st_file_close(f);
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, err_size, "%s: not a regular file", path);
    close(fd);
    st_file_close(f);
    return -1;
  }
  if (st.st_size < 8) {
    snprintf(err, err_size, "%s: truncated: %lld bytes, shorter than the 8-byte header length", path,
             (long long)st.st_size);
    close(fd);
    st_file_close(f);
    return -1;
  }
  f->map_size = (size_t)st.st_size;
  void *map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    snprintf(err, err_size, "%s: mmap failed: %s", path, strerror(errno));
    st_file_close(f);
    return -1;
  }
  f->map = map;
  const unsigned char *bytes = map;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | bytes[i];
  if (header_len > SAFETENSORS_MAX_HEADER || header_len > f->map_size - 8) {
    snprintf(err, err_size, "%s: header length %llu is larger than %s (%llu bytes)", path,
             (unsigned long long)header_len,
             header_len > SAFETENSORS_MAX_HEADER ? "the 100 MB limit" : "the rest of the file",
             header_len > SAFETENSORS_MAX_HEADER ? (unsigned long long)SAFETENSORS_MAX_HEADER
                                                 : (unsigned long long)(f->map_size - 8));
    st_file_close(f);
    return -1;
  }
  f->data = bytes + 8 + header_len;
  f->data_size = f->map_size - 8 - (size_t)header_len;
  if (parse_header(f, (const char *)bytes + 8, (size_t)header_len, err, err_size) != 0) {
    st_file_close(f);
    return -1;
  }
  return 0;
}

const st_tensor *st_file_find(const st_file *f, const char *name) {
  for (int i = 0; i < f->n_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
  return NULL;
}

const char *st_file_metadata(const st_file *f, const char *key) {
  for (int i = 0; i < f->n_metadata; i++)
    if (strcmp(f->metadata[2 * i], key) == 0) return f->metadata[2 * i + 1];
  return NULL;
}

int st_tensor_to_f32(const st_file *f, const st_tensor *t, float *dst, char *err, size_t err_size) {
  size_t n = (size_t)t->numel;
  switch (t->dtype) {
    case ST_F32: memcpy(dst, t->data, n * 4); return 0;
    case ST_F16: f16_bytes_to_f32(t->data, dst, n); return 0;
    case ST_BF16: bf16_bytes_to_f32(t->data, dst, n); return 0;
    default:
      snprintf(err, err_size, "%s: tensor \"%s\": dtype %s cannot be loaded as floats (F32, F16, BF16 can)",
               f->path, t->name, st_dtype_name(t->dtype));
      return -1;
  }
}

static void format_shape(char *out, size_t size, int ndim, const int64_t *shape) {
  size_t at = 0;
  at += (size_t)snprintf(out, size, "(");
  for (int i = 0; i < ndim && at < size; i++)
    at += (size_t)snprintf(out + at, size - at, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (at < size) snprintf(out + at, size - at, ")");
}

int st_file_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, float *dst,
                     char *err, size_t err_size) {
  const st_tensor *t = st_file_find(f, name);
  if (!t) {
    snprintf(err, err_size, "%s: tensor \"%s\" is missing", f->path, name);
    return -1;
  }
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
  if (!same) {
    char want[128], got[128];
    format_shape(want, sizeof want, ndim, shape);
    format_shape(got, sizeof got, t->ndim, t->shape);
    snprintf(err, err_size, "%s: tensor \"%s\": shape %s, expected %s", f->path, name, got, want);
    return -1;
  }
  return st_tensor_to_f32(f, t, dst, err, err_size);
}

/* ---- writer ---- */

static json_t *build_header(const char *path, const st_entry *entries, int n, const char *const *metadata,
                            char *err, size_t err_size) {
  json_t *root = json_object();
  if (metadata && metadata[0]) {
    json_t *meta = json_object();
    for (int i = 0; metadata[i]; i += 2) {
      if (!metadata[i + 1]) {
        snprintf(err, err_size, "%s: metadata key \"%s\" has no value", path, metadata[i]);
        json_decref(meta);
        json_decref(root);
        return NULL;
      }
      json_object_set_new(meta, metadata[i], json_string(metadata[i + 1]));
    }
    json_object_set_new(root, "__metadata__", meta);
  }
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    const st_entry *e = &entries[i];
    const char *problem = NULL;
    if (e->dtype != ST_F32 && e->dtype != ST_F16 && e->dtype != ST_BF16) problem = "dtype must be F32, F16 or BF16";
    else if (e->ndim < 0 || e->ndim > SAFETENSORS_MAX_DIMS) problem = "bad number of dimensions";
    else if (strcmp(e->name, "__metadata__") == 0) problem = "the name is reserved";
    else if (json_object_get(root, e->name)) problem = "the name appears twice";
    json_t *shape = json_array();
    uint64_t numel = 1;
    for (int d = 0; !problem && d < e->ndim; d++) {
      if (e->shape[d] < 0) problem = "negative dimension";
      else numel *= (uint64_t)e->shape[d];
      json_array_append_new(shape, json_integer(e->shape[d]));
    }
    if (problem) {
      snprintf(err, err_size, "%s: tensor \"%s\": %s", path, e->name, problem);
      json_decref(shape);
      json_decref(root);
      return NULL;
    }
    uint64_t bytes = numel * st_dtype_size(e->dtype);
    json_t *info = json_object();
    json_object_set_new(info, "dtype", json_string(st_dtype_name(e->dtype)));
    json_object_set_new(info, "shape", shape);
    json_object_set_new(info, "data_offsets", json_pack("[II]", (json_int_t)at, (json_int_t)(at + bytes)));
    json_object_set_new(root, e->name, info);
    at += bytes;
  }
  return root;
}

static int write_entry(FILE *fp, const st_entry *e) {
  size_t n = 1;
  for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
  if (e->dtype == ST_F32) return fwrite(e->data, 4, n, fp) == n ? 0 : -1;
  enum { CHUNK = 4096 };
  unsigned char buf[2 * CHUNK];
  for (size_t i = 0; i < n; i += CHUNK) {
    size_t k = n - i < CHUNK ? n - i : CHUNK;
    if (e->dtype == ST_F16) f32_to_f16_bytes(e->data + i, buf, k);
    else f32_to_bf16_bytes(e->data + i, buf, k);
    if (fwrite(buf, 2, k, fp) != k) return -1;
  }
  return 0;
}

int st_file_write(const char *path, const st_entry *entries, int n_entries, const char *const *metadata,
                  char *err, size_t err_size) {
  json_t *root = build_header(path, entries, n_entries, metadata, err, err_size);
  if (!root) return -1;
  char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!text) {
    snprintf(err, err_size, "%s: out of memory", path);
    return -1;
  }
  /* pad the header with spaces to a multiple of 8 so the data section starts aligned, as the
   * reference writer does; JSON parsers skip trailing whitespace */
  size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
  unsigned char prefix[8];
  for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) {
    free(text);
    return -1;
  }
  int ok = fwrite(prefix, 1, 8, af.fp) == 8 && fwrite(text, 1, len, af.fp) == len;
  for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', af.fp) != EOF;
  free(text);
  for (int i = 0; ok && i < n_entries; i++) ok = write_entry(af.fp, &entries[i]) == 0;
  if (!ok) {
    snprintf(err, err_size, "%s: write failed: %s", af.tmp_path, strerror(errno));
    atomic_file_abort(&af);
    return -1;
  }
  return atomic_file_commit(&af, err, err_size);
}
