/* safetensors files: an 8-byte little-endian header length N, N bytes of JSON header
 *   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
 * then the data section; offsets are relative to its start.
 *
 * The reader trusts nothing before checking it against the file size: header bounds, JSON shape,
 * known dtypes, shapes, offsets in range, entries contiguous and non-overlapping, covering the whole
 * data section, and numel × dtype size == span (with overflow checks). The file is memory-mapped,
 * so opening a multi-GB checkpoint costs only the header parse.
 * Functions returning int give 0 on success, -1 with a message in `err` naming the file, the tensor
 * and the field. */
#ifndef FEDLORA_SAFETENSORS_H
#define FEDLORA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)
#define SAFETENSORS_MAX_DIMS 8

typedef enum {
  ST_F32, ST_F16, ST_BF16,  /* converted to f32 on load */
  ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL, ST_U16, ST_U32, ST_U64,
  ST_F8_E4M3, ST_F8_E5M2,  /* recognised for validation; reading them as f32 is an error naming them */
} st_dtype;

const char *st_dtype_name(st_dtype d);  /* "F32", ... */
size_t st_dtype_size(st_dtype d);       /* bytes per element */

typedef struct {
  char *name;
  st_dtype dtype;
  int ndim;
  int64_t shape[SAFETENSORS_MAX_DIMS];
  int64_t numel;
  uint64_t begin, end;        /* data_offsets, relative to the data section */
  const unsigned char *data;  /* points into the mapping, (end - begin) bytes, any alignment */
} st_tensor;

typedef struct {
  char *path;
  void *map;            /* the whole file, read-only */
  size_t map_size;
  const unsigned char *data;  /* start of the data section */
  size_t data_size;
  int n_tensors;
  st_tensor *tensors;   /* (n_tensors) in header order */
  int n_metadata;
  char **metadata;      /* (2 * n_metadata) key, value, key, value ... */
} st_file;

int st_file_open(st_file *f, const char *path, char *err, size_t err_size);
void st_file_close(st_file *f);
/* NULL if absent. */
const st_tensor *st_file_find(const st_file *f, const char *name);
const char *st_file_metadata(const st_file *f, const char *key);

/* Converts tensor `name` to f32 into dst (n floats), after checking that it exists and has exactly the
 * shape `shape[0..ndim)`; the error names the file, the tensor and expected vs found. */
int st_file_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, float *dst,
                     char *err, size_t err_size);
/* Same for an already-found tensor without the shape check: dst holds t->numel floats. */
int st_tensor_to_f32(const st_file *f, const st_tensor *t, float *dst, char *err, size_t err_size);

/* Writer: tensors come from f32 and are stored as `dtype` (F32, F16 or BF16). */
typedef struct {
  const char *name;
  st_dtype dtype;
  int ndim;
  int64_t shape[SAFETENSORS_MAX_DIMS];
  const float *data;  /* (numel) */
} st_entry;

/* Writes atomically (temp file, fsync, rename, fsync dir). `metadata` is NULL or a NULL-terminated
 * key, value, key, value, ..., NULL list for `__metadata__`. */
int st_file_write(const char *path, const st_entry *entries, int n_entries, const char *const *metadata,
                  char *err, size_t err_size);

#endif
