#include "json_util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

json_t *json_src_load(const json_src *s) {
  json_error_t jerr;
  json_t *root = json_load_file(s->path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    snprintf(s->err, s->err_size, "%s:%d:%d: %s", s->path, jerr.line, jerr.column, jerr.text);
    return NULL;
  }
  if (!json_is_object(root)) {
    snprintf(s->err, s->err_size, "%s: expected a JSON object at the top level", s->path);
    json_decref(root);
    return NULL;
  }
  return root;
}

static const char *type_name(const json_t *j) {
  switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
  }
}

/* NULL for a missing key or JSON null. */
static const json_t *field(const json_t *obj, const char *key) {
  const json_t *j = json_object_get(obj, key);
  return j && !json_is_null(j) ? j : NULL;
}

static int wrong_type(const json_src *s, const char *key, const char *want, const json_t *got) {
  snprintf(s->err, s->err_size, "%s: field \"%s\": expected %s, got %s", s->path, key, want, type_name(got));
  return -1;
}

static int missing(const json_src *s, const char *key) {
  snprintf(s->err, s->err_size, "%s: field \"%s\" is missing", s->path, key);
  return -1;
}

int json_src_int_opt(const json_src *s, const json_t *obj, const char *key, int fallback, int *out) {
  const json_t *j = field(obj, key);
  if (!j) {
    *out = fallback;
    return 0;
  }
  if (!json_is_integer(j)) return wrong_type(s, key, "an integer", j);
  json_int_t v = json_integer_value(j);
  if (v < INT_MIN || v > INT_MAX) {
    snprintf(s->err, s->err_size, "%s: field \"%s\": %lld is out of range", s->path, key, (long long)v);
    return -1;
  }
  *out = (int)v;
  return 0;
}

int json_src_int(const json_src *s, const json_t *obj, const char *key, int *out) {
  return field(obj, key) ? json_src_int_opt(s, obj, key, 0, out) : missing(s, key);
}

int json_src_number_opt(const json_src *s, const json_t *obj, const char *key, double fallback, double *out) {
  const json_t *j = field(obj, key);
  if (!j) {
    *out = fallback;
    return 0;
  }
  if (!json_is_number(j)) return wrong_type(s, key, "a number", j);
  *out = json_number_value(j);
  return 0;
}

int json_src_number(const json_src *s, const json_t *obj, const char *key, double *out) {
  return field(obj, key) ? json_src_number_opt(s, obj, key, 0.0, out) : missing(s, key);
}

int json_src_bool_opt(const json_src *s, const json_t *obj, const char *key, int fallback, int *out) {
  const json_t *j = field(obj, key);
  if (!j) {
    *out = fallback;
    return 0;
  }
  if (!json_is_boolean(j)) return wrong_type(s, key, "true or false", j);
  *out = json_is_true(j);
  return 0;
}

int json_src_string_opt(const json_src *s, const json_t *obj, const char *key, const char *fallback,
                        const char **out) {
  const json_t *j = field(obj, key);
  if (!j) {
    *out = fallback;
    return 0;
  }
  if (!json_is_string(j)) return wrong_type(s, key, "a string", j);
  *out = json_string_value(j);
  return 0;
}

int json_src_string(const json_src *s, const json_t *obj, const char *key, const char **out) {
  return field(obj, key) ? json_src_string_opt(s, obj, key, NULL, out) : missing(s, key);
}

int json_write_atomic(const json_t *root, const char *path, char *err, size_t err_size) {
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
  if (!text) {
    snprintf(err, err_size, "%s: cannot serialise JSON", path);
    return -1;
  }
  size_t len = strlen(text);
  char *with_newline = realloc(text, len + 2);
  if (!with_newline) {
    free(text);
    snprintf(err, err_size, "%s: out of memory", path);
    return -1;
  }
  with_newline[len] = '\n';
  int rc = fs_write_atomic(path, with_newline, len + 1, err, err_size);
  free(with_newline);
  return rc;
}

json_t *json_float(float f) {
  char text[32];
  for (int digits = 6; digits <= 9; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, (double)f);
    if (strtof(text, NULL) == f) break;
  }
  return json_real(strtod(text, NULL));
}
