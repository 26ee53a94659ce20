/* Reading records from jsonl, text and ids files, with file:line:column errors; see dataset.h. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "log.h"
#include "utf8.h"

int data_format_parse(const char *name) {
  static const char *names[] = {"auto", "jsonl", "text", "ids"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, names[i])) return i;
  return -1;
}

const char *data_format_name(data_format format) {
  static const char *names[] = {"auto", "jsonl", "text", "ids"};
  return names[format];
}

/* State of one read: the set being filled, and where bad records go. */
typedef struct {
  record_set *s;
  int skip_bad;
  char *err;
  size_t err_size;
} reader;

/* A bad record: with skip_bad a counted warning (returns 0), otherwise the error (returns -1). */
__attribute__((format(printf, 4, 5))) static int record_bad(reader *r, size_t line, size_t col, const char *fmt,
                                                            ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!r->skip_bad) {
    snprintf(r->err, r->err_size, "%s:%zu:%zu: %s", r->s->path, line, col, msg);
    return -1;
  }
  r->s->skipped++;
  log_warn("%s:%zu:%zu: %s (record skipped)", r->s->path, line, col, msg);
  return 0;
}

static int out_of_memory(reader *r) {
  snprintf(r->err, r->err_size, "%s: out of memory after %zu records", r->s->path, r->s->n);
  return -1;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t cap2 = *cap ? *cap : 256;
  while (cap2 < need) cap2 *= 2;
  void *q = realloc(*p, cap2 * elem);
  if (!q) return -1;
  *p = q;
  *cap = cap2;
  return 0;
}

/* Appends bytes to the pool (one field may take several appends); *offset gets their start. */
static int bytes_append(record_set *s, const char *data, size_t len, size_t *offset) {
  if (grow((void **)&s->bytes, &s->cap_bytes, s->n_bytes + len + 1, 1)) return -1;
  *offset = s->n_bytes;
  memcpy(s->bytes + s->n_bytes, data, len);
  s->n_bytes += len;
  return 0;
}

/* Ends a field with a NUL kept in the pool, so fields read as C strings too. */
static int field_end(record_set *s) {
  size_t at;
  return bytes_append(s, "", 1, &at);
}

static data_record *record_push(record_set *s) {
  if (grow((void **)&s->records, &s->cap, s->n + 1, sizeof(data_record))) return NULL;
  data_record *rec = &s->records[s->n++];
  memset(rec, 0, sizeof *rec);
  return rec;
}

/* Lines of at most DATA_MAX_LINE bytes; longer ones are consumed and flagged. */
typedef struct {
  FILE *f;
  char *buf;     /* (DATA_MAX_LINE + 1) */
  size_t len;
  size_t line;   /* number of the line in buf, from 1 */
  int overlong;
  int any;       /* the file had at least one byte */
} line_reader;

/* 1 with the next line in buf, 0 at the end of the file, -1 on a read error. */
static int line_next(line_reader *lr) {
  int ch, got = 0;
  lr->len = 0;
  lr->overlong = 0;
  while ((ch = getc_unlocked(lr->f)) != EOF) {
    got = 1;
    if (ch == '\n') break;
    if (lr->len < DATA_MAX_LINE) lr->buf[lr->len++] = (char)ch;
    else lr->overlong = 1;
  }
  if (ferror(lr->f)) return -1;
  if (!got) return 0;
  lr->any = 1;
  lr->line++;
  if (!lr->overlong && lr->len && lr->buf[lr->len - 1] == '\r') lr->len--;
  lr->buf[lr->len] = '\0';
  return 1;
}

static int is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!isspace((unsigned char)s[i])) return 0;
  return 1;
}

/* Checks a line for length and UTF-8 the same way in every text format. */
static int line_check(reader *r, const line_reader *lr, int *ok) {
  *ok = 0;
  if (lr->overlong)
    return record_bad(r, lr->line, DATA_MAX_LINE + 1, "line is longer than %zu bytes", DATA_MAX_LINE);
  size_t bad = utf8_invalid_at((const unsigned char *)lr->buf, lr->len);
  if (bad < lr->len)
    return record_bad(r, lr->line, bad + 1, "invalid UTF-8 (byte 0x%02x)", (unsigned char)lr->buf[bad]);
  *ok = 1;
  return 0;
}

/* Byte offset of the value of top-level key `key` in a JSON object's text, or 0 when it cannot be
 * found literally (a key written with escapes): jansson keeps no positions. */
static size_t json_value_offset(const char *s, size_t len, const char *key) {
  size_t klen = strlen(key);
  int depth = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') depth--;
    if (c != '"') continue;
    size_t start = ++i;
    while (i < len && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    if (depth != 1 || i - start != klen || memcmp(s + start, key, klen)) continue;
    size_t j = i + 1;
    while (j < len && isspace((unsigned char)s[j])) j++;
    if (j >= len || s[j] != ':') continue;
    for (j++; j < len && isspace((unsigned char)s[j]);) j++;
    return j;
  }
  return 0;
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
  }
}

/* Field `key` of obj as a string. A missing or non-string field is a bad record: -1 when that is an
 * error, 0 with *value NULL when it was skipped. */
static int json_field(reader *r, const line_reader *lr, const json_t *obj, const char *key, const json_t **value) {
  *value = NULL;
  const json_t *v = json_object_get(obj, key);
  if (!v) return record_bad(r, lr->line, 1, "missing field \"%s\"", key);
  if (!json_is_string(v))
    return record_bad(r, lr->line, json_value_offset(lr->buf, lr->len, key) + 1,
                      "field \"%s\" must be a string, got %s", key, json_kind(v));
  *value = v;
  return 0;
}

static int jsonl_record(reader *r, const line_reader *lr, const json_t *obj) {
  const json_t *text = json_object_get(obj, "text"), *prompt = json_object_get(obj, "prompt");
  const json_t *a = NULL, *b = NULL;
  if (text && prompt) return record_bad(r, lr->line, 1, "a record has \"text\" or \"prompt\", not both");
  if (!text && !prompt && !json_object_get(obj, "completion"))
    return record_bad(r, lr->line, 1, "missing field \"text\" (or \"prompt\" and \"completion\")");
  if (text) {
    if (json_field(r, lr, obj, "text", &b)) return -1;
  } else {
    if (json_field(r, lr, obj, "prompt", &a)) return -1;
    if (a && json_field(r, lr, obj, "completion", &b)) return -1;
  }
  if (!b) return 0; /* skipped */
  data_record *rec = record_push(r->s);
  if (!rec) return out_of_memory(r);
  rec->kind = a ? RECORD_PROMPT : RECORD_TEXT;
  rec->line = lr->line;
  rec->prompt_len = a ? json_string_length(a) : 0;
  rec->body_len = json_string_length(b);
  if ((a && (bytes_append(r->s, json_string_value(a), rec->prompt_len, &rec->prompt) || field_end(r->s))) ||
      bytes_append(r->s, json_string_value(b), rec->body_len, &rec->body) || field_end(r->s))
    return out_of_memory(r);
  return 0;
}

static int read_jsonl(reader *r, line_reader *lr) {
  int got;
  while ((got = line_next(lr)) == 1) {
    int ok;
    if (is_blank(lr->buf, lr->len) && !lr->overlong) continue;
    if (line_check(r, lr, &ok)) return -1;
    if (!ok) continue;
    json_error_t je;
    json_t *obj = json_loadb(lr->buf, lr->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!obj) {
      if (record_bad(r, lr->line, je.position > 0 ? (size_t)je.position : 1, "%s", je.text)) return -1;
      continue;
    }
    int rc = json_is_object(obj)
                 ? jsonl_record(r, lr, obj)
                 : record_bad(r, lr->line, strspn(lr->buf, " \t") + 1, "expected a JSON object, got %s",
                              json_kind(obj));
    json_decref(obj);
    if (rc) return -1;
  }
  return got;
}

/* Documents separated by blank lines. A bad line spoils its whole document. */
static int read_text(reader *r, line_reader *lr) {
  int got, in_doc = 0, doc_bad = 0;
  size_t start = 0, first_line = 0;
  for (;;) {
    got = line_next(lr);
    int blank = got == 1 && !lr->overlong && is_blank(lr->buf, lr->len);
    if (in_doc && (got != 1 || blank)) { /* the document ends */
      if (doc_bad) {
        r->s->n_bytes = start;
      } else {
        data_record *rec = record_push(r->s);
        if (!rec) return out_of_memory(r);
        *rec = (data_record){.kind = RECORD_TEXT, .line = first_line, .body = start,
                             .body_len = r->s->n_bytes - start};
        if (field_end(r->s)) return out_of_memory(r);
      }
      in_doc = doc_bad = 0;
    }
    if (got != 1) return got;
    if (blank) continue;
    if (!in_doc) {
      in_doc = 1;
      start = r->s->n_bytes;
      first_line = lr->line;
    }
    int ok;
    if (doc_bad) continue; /* counted once per document */
    if (line_check(r, lr, &ok)) return -1;
    if (!ok) {
      doc_bad = 1;
      continue;
    }
    size_t at;
    if ((r->s->n_bytes > start && bytes_append(r->s, "\n", 1, &at)) || bytes_append(r->s, lr->buf, lr->len, &at))
      return out_of_memory(r);
  }
}

/* One record per non-blank line, read id by id: ids lines are not bounded. */
static int read_ids(reader *r, FILE *f, int *any) {
  char word[32];
  size_t len = 0, line = 1, col = 0, word_col = 0;
  data_record *rec = NULL;
  int ch, line_bad = 0;
  do {
    ch = getc_unlocked(f);
    if (ch != EOF) {
      *any = 1;
      col++;
    }
    if (ch != EOF && !isspace(ch)) {
      if (!len) word_col = col;
      if (len + 1 < sizeof word) word[len] = (char)ch;
      len++;
      continue;
    }
    if (len && !line_bad) {
      char *end;
      word[len < sizeof word ? len : sizeof word - 1] = '\0';
      errno = 0;
      long v = strtol(word, &end, 10);
      if (len >= sizeof word || *end || errno || v < 0 || v > 0x7fffffff) {
        if (record_bad(r, line, word_col, "'%s%s' is not a token id", word, len >= sizeof word ? "..." : ""))
          return -1;
        line_bad = 1;
        if (rec) { /* drop the line's ids read so far */
          r->s->n_ids = rec->body;
          r->s->n--;
          rec = NULL;
        }
      } else {
        if (!rec) {
          if (!(rec = record_push(r->s))) return out_of_memory(r);
          *rec = (data_record){.kind = RECORD_IDS, .line = line, .body = r->s->n_ids};
        }
        if (grow((void **)&r->s->ids, &r->s->cap_ids, r->s->n_ids + 1, sizeof(int))) return out_of_memory(r);
        r->s->ids[r->s->n_ids++] = (int)v;
        rec->body_len++;
      }
    }
    len = 0;
    if (ch == '\n') {
      line++;
      col = 0;
      rec = NULL;
      line_bad = 0;
    }
  } while (ch != EOF);
  return ferror(f) ? -1 : 0;
}

static data_format format_guess(const char *path, FILE *f) {
  static const struct {
    const char *ext;
    data_format format;
  } by_ext[] = {{".jsonl", DATA_FORMAT_JSONL}, {".json", DATA_FORMAT_JSONL}, {".ndjson", DATA_FORMAT_JSONL},
                {".txt", DATA_FORMAT_TEXT},    {".text", DATA_FORMAT_TEXT}, {".md", DATA_FORMAT_TEXT},
                {".ids", DATA_FORMAT_IDS}};
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (dot && (!slash || dot > slash))
    for (size_t i = 0; i < sizeof by_ext / sizeof by_ext[0]; i++)
      if (!strcasecmp(dot, by_ext[i].ext)) return by_ext[i].format;
  /* the first non-blank line decides; it is read and the file rewound */
  int ch, digits_only = 1, seen = 0;
  data_format guess = DATA_FORMAT_TEXT;
  while ((ch = getc_unlocked(f)) != EOF) {
    if (!seen && isspace(ch)) continue;
    if (!seen && ch == '{') {
      guess = DATA_FORMAT_JSONL;
      break;
    }
    seen = 1;
    if (ch == '\n') break;
    if (!isdigit(ch) && !isspace(ch)) digits_only = 0;
  }
  if (seen && digits_only) guess = DATA_FORMAT_IDS;
  rewind(f);
  return guess;
}

int records_read(record_set *s, const char *path, data_format format, int skip_bad, char *err, size_t err_size) {
  memset(s, 0, sizeof *s);
  reader r = {s, skip_bad, err, err_size};
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  if (!(s->path = strdup(path))) {
    fclose(f);
    snprintf(err, err_size, "%s: out of memory", path);
    return -1;
  }
  s->format = format == DATA_FORMAT_AUTO ? format_guess(path, f) : format;
  int rc, any = 0;
  size_t last_line = 1;
  if (s->format == DATA_FORMAT_IDS) {
    rc = read_ids(&r, f, &any);
  } else {
    line_reader lr = {.f = f, .buf = malloc(DATA_MAX_LINE + 1)};
    if (!lr.buf) {
      rc = out_of_memory(&r);
    } else {
      rc = s->format == DATA_FORMAT_JSONL ? read_jsonl(&r, &lr) : read_text(&r, &lr);
      any = lr.any;
      last_line = lr.line ? lr.line : 1;
    }
    free(lr.buf);
  }
  if (rc > 0) rc = 0;
  if (rc == -1 && ferror(f)) snprintf(err, err_size, "%s: read error: %s", path, strerror(errno));
  fclose(f);
  if (!rc && !any) {
    snprintf(err, err_size, "%s:1:1: empty file", path);
    rc = -1;
  } else if (!rc && !s->n && s->skipped) {
    snprintf(err, err_size, "%s: no usable records (%zu bad records skipped)", path, s->skipped);
    rc = -1;
  } else if (!rc && !s->n) {
    snprintf(err, err_size, "%s:%zu:1: no records, only blank lines", path, last_line);
    rc = -1;
  }
  if (rc) records_free(s);
  else if (s->skipped) log_warn("%s: %zu bad records skipped, %zu read", path, s->skipped, s->n);
  return rc;
}

void records_free(record_set *s) {
  free(s->path);
  free(s->records);
  free(s->bytes);
  free(s->ids);
  memset(s, 0, sizeof *s);
}
