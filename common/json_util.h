/* Reading typed fields out of JSON files (config.json, adapter_config.json, index files) with errors
 * that name the file and the field, expected vs found. A missing key and a JSON null are treated
 * alike: the _opt readers return their fallback, the required ones fail. */
#ifndef FEDLORA_JSON_UTIL_H
#define FEDLORA_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>

/* Where the JSON came from and where errors go. */
typedef struct {
  const char *path;
  char *err;
  size_t err_size;
} json_src;

/* Parses the file, which must hold an object; the error names the line and column. NULL on error. */
json_t *json_src_load(const json_src *s);

/* Each returns 0, or -1 with "<path>: field \"key\" ..." in s->err. */
int json_src_int(const json_src *s, const json_t *obj, const char *key, int *out);
int json_src_int_opt(const json_src *s, const json_t *obj, const char *key, int fallback, int *out);
/* Integers are accepted where a number is wanted, as Python writes 1 for 1.0. */
int json_src_number(const json_src *s, const json_t *obj, const char *key, double *out);
int json_src_number_opt(const json_src *s, const json_t *obj, const char *key, double fallback, double *out);
int json_src_bool_opt(const json_src *s, const json_t *obj, const char *key, int fallback, int *out);
/* *out points into obj (valid while obj lives); the _opt form gives fallback when absent. */
int json_src_string(const json_src *s, const json_t *obj, const char *key, const char **out);
int json_src_string_opt(const json_src *s, const json_t *obj, const char *key, const char *fallback,
                        const char **out);

/* A JSON real that prints as the shortest decimal reading back as f (1e-05, not 9.99999975e-06),
 * given json_write_atomic's 9-digit precision. */
json_t *json_float(float f);

/* Serialises root (indent 2, keys in insertion order, trailing newline) and writes it atomically. */
int json_write_atomic(const json_t *root, const char *path, char *err, size_t err_size);

#endif
