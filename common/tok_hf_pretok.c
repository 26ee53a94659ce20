/* Hugging Face normalizers and pre-tokenizers: the text a BPE model sees, and where it is cut into words. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_hf.h"
#include "utf8.h"

/* GPT-2's map: printable Latin-1 bytes stand for themselves, the other 68 bytes take U+0100 upwards in
 * byte order, so every byte has a visible, distinct character. */
static bool byte_is_printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

/* The 68 others in order are 0x00..0x20, 0x7F..0xA0 and 0xAD. */
uint32_t byte_level_char(unsigned char byte) {
  if (byte_is_printable(byte)) return byte;
  if (byte <= 0x20) return 0x100 + byte;
  if (byte <= 0xA0) return 0x121 + (byte - 0x7Fu);
  return 0x143;
}

int byte_level_byte(uint32_t cp) {
  if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
  if (cp <= 0x120) return (int)(cp - 0x100);
  if (cp <= 0x142) return (int)(0x7F + cp - 0x121);
  return cp == 0x143 ? 0xAD : -1;
}

const char *hf_json_pattern(json_t *obj, const char *where, bool *is_regex, char *err, size_t errlen) {
  json_t *pattern = json_object_get(obj, "pattern");
  json_t *s = json_object_get(pattern, "String"), *r = json_object_get(pattern, "Regex");
  *is_regex = r != NULL;
  if (json_is_string(s) || json_is_string(r)) return json_string_value(s ? s : r);
  tok_error(err, errlen, "%s: pattern must be {\"String\": ...} or {\"Regex\": ...}", where);
  return NULL;
}

static char *dup_string(const char *s, char *err, size_t errlen) {
  char *d = strdup(s);
  if (!d) tok_error(err, errlen, "out of memory");
  return d;
}

static int unicode_form(const char *type) {
  if (!strcmp(type, "NFC")) return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (!strcmp(type, "NFD")) return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
  if (!strcmp(type, "NFKC")) return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  if (!strcmp(type, "NFKD")) return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  return 0;
}

int hf_parse_normalizer(hf_tokenizer *t, json_t *node, const char *where, char *err, size_t errlen) {
  if (json_is_null(node) || !node) return 0;
  const char *type = hf_json_string(node, "type", where, err, errlen);
  if (!type) return -1;
  char inner[256];
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(node, "normalizers");
    if (!json_is_array(list)) {
      tok_error(err, errlen, "%s: Sequence without a \"normalizers\" array", where);
      return -1;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
      snprintf(inner, sizeof inner, "%s.normalizers[%zu]", where, i);
      if (hf_parse_normalizer(t, json_array_get(list, i), inner, err, errlen) < 0) return -1;
    }
    return 0;
  }
  norm_step step = {0};
  if (!strcmp(type, "Prepend")) {
    const char *text = hf_json_string(node, "prepend", where, err, errlen);
    if (!text || !(step.text = dup_string(text, err, errlen))) return -1;
    step.kind = NORM_PREPEND;
  } else if (!strcmp(type, "Replace")) {
    bool is_regex;
    const char *pattern = hf_json_pattern(node, where, &is_regex, err, errlen);
    const char *content = pattern ? hf_json_string(node, "content", where, err, errlen) : NULL;
    if (!content) return -1;
    if (is_regex || !*pattern) {
      tok_error(err, errlen, "%s: Replace normalizer with a %s pattern is not supported", where,
                is_regex ? "Regex" : "empty");
      return -1;
    }
    step.kind = NORM_REPLACE;
    step.text = dup_string(pattern, err, errlen);
    step.with = step.text ? dup_string(content, err, errlen) : NULL;
    if (!step.with) {
      free(step.text);
      return -1;
    }
  } else if (unicode_form(type)) {
    step.kind = NORM_UNICODE;
    step.utf8proc_options = unicode_form(type);
  } else {
    tok_error(err, errlen, "%s: normalizer type \"%s\" is not supported (supported: Sequence, Prepend, "
              "Replace with a String pattern, NFC, NFD, NFKC, NFKD)", where, type);
    return -1;
  }
  norm_step *grown = realloc(t->norm, (t->n_norm + 1) * sizeof *grown);
  if (!grown) {
    free(step.text), free(step.with);
    tok_error(err, errlen, "out of memory");
    return -1;
  }
  t->norm = grown;
  t->norm[t->n_norm++] = step;
  return 0;
}

static pcre2_code *compile_regex(const char *pattern, uint32_t extra, const char *where, char *err,
                                 size_t errlen) {
  int code;
  PCRE2_SIZE at;
  /* PCRE2 refuses UCP alongside LITERAL, and a literal has no classes for it to change anyway. */
  uint32_t options = PCRE2_UTF | (extra & PCRE2_LITERAL ? 0 : PCRE2_UCP) | extra;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options, &code, &at, NULL);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    tok_error(err, errlen, "%s: regex does not compile at offset %zu: %s", where, (size_t)at, (char *)msg);
    return NULL;
  }
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  /* a failure only means the slower interpreter runs */
  return re;
}

/* GPT-2's split, which ByteLevel applies when use_regex is true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static bool json_flag(json_t *node, const char *key) { return json_is_true(json_object_get(node, key)); }

/* A key that is absent or null takes its default, as serde reads an Option. */
static json_t *json_optional(json_t *node, const char *key) {
  json_t *v = json_object_get(node, key);
  return json_is_null(v) ? NULL : v;
}

/* As Hugging Face's deserializer: prepend_scheme defaults to "always"; the legacy add_prefix_space false means
 * "never" and contradicts any other scheme given, while true changes nothing; split defaults to true. */
int hf_parse_metaspace(json_t *node, const char *where, metaspace_opts *out, char *err, size_t errlen) {
  const char *replacement = hf_json_string(node, "replacement", where, err, errlen);
  if (!replacement) return -1;
  size_t n = strlen(replacement);
  uint32_t cp;
  if (!n || utf8_char((const unsigned char *)replacement, n, &cp) != n) {
    tok_error(err, errlen, "%s: Metaspace replacement \"%s\" must be exactly one character", where, replacement);
    return -1;
  }
  memcpy(out->replacement, replacement, n + 1);
  json_t *scheme = json_optional(node, "prepend_scheme"), *legacy = json_optional(node, "add_prefix_space");
  json_t *split = json_optional(node, "split");
  static const char *const scheme_names[] = {[PREPEND_ALWAYS] = "always", [PREPEND_FIRST] = "first",
                                             [PREPEND_NEVER] = "never"};
  out->prepend = PREPEND_ALWAYS;
  if (scheme) {
    if (!json_is_string(scheme)) {
      tok_error(err, errlen, "%s: Metaspace prepend_scheme must be a string: \"always\", \"first\" or \"never\"",
                where);
      return -1;
    }
    const char *name = json_string_value(scheme);
    size_t k = 0;
    while (k < 3 && strcmp(name, scheme_names[k]) != 0) k++;
    if (k == 3) {
      tok_error(err, errlen, "%s: Metaspace prepend_scheme must be \"always\", \"first\" or \"never\", not \"%s\"",
                where, name);
      return -1;
    }
    out->prepend = (prepend_scheme)k;
  }
  if ((legacy && !json_is_boolean(legacy)) || (split && !json_is_boolean(split))) {
    tok_error(err, errlen, "%s: Metaspace %s must be true or false", where,
              legacy && !json_is_boolean(legacy) ? "add_prefix_space" : "split");
    return -1;
  }
  if (json_is_false(legacy)) {
    if (out->prepend != PREPEND_NEVER && scheme) {
      tok_error(err, errlen, "%s: Metaspace add_prefix_space false contradicts prepend_scheme \"%s\"", where,
                scheme_names[out->prepend]);
      return -1;
    }
    out->prepend = PREPEND_NEVER;
  }
  out->split = !json_is_false(split);
  return 0;
}

int hf_parse_pre_tokenizer(hf_tokenizer *t, json_t *node, const char *where, char *err, size_t errlen) {
  if (json_is_null(node) || !node) return 0;
  const char *type = hf_json_string(node, "type", where, err, errlen);
  if (!type) return -1;
  char inner[256];
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(node, "pretokenizers");
    if (!json_is_array(list)) {
      tok_error(err, errlen, "%s: Sequence without a \"pretokenizers\" array", where);
      return -1;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
      snprintf(inner, sizeof inner, "%s.pretokenizers[%zu]", where, i);
      if (hf_parse_pre_tokenizer(t, json_array_get(list, i), inner, err, errlen) < 0) return -1;
    }
    return 0;
  }
  pre_step step = {0};
  if (!strcmp(type, "Split")) {
    bool is_regex;
    const char *pattern = hf_json_pattern(node, where, &is_regex, err, errlen);
    const char *behavior = pattern ? hf_json_string(node, "behavior", where, err, errlen) : NULL;
    if (!behavior) return -1;
    if (strcmp(behavior, "Isolated") != 0 || json_flag(node, "invert")) {
      tok_error(err, errlen, "%s: Split with behavior \"%s\"%s is not supported (only Isolated, not inverted)",
                where, behavior, json_flag(node, "invert") ? " and invert" : "");
      return -1;
    }
    /* Once bytes are mapped to GPT-2 characters a later regex would see those, not the text. */
    if (t->byte_level) {
      tok_error(err, errlen, "%s: Split after a ByteLevel pre-tokenizer is not supported", where);
      return -1;
    }
    step.kind = PRE_SPLIT;
    if (!(step.re = compile_regex(pattern, is_regex ? 0 : PCRE2_LITERAL, where, err, errlen))) return -1;
  } else if (!strcmp(type, "ByteLevel")) {
    step.kind = PRE_BYTE_LEVEL;
    step.add_prefix_space = json_flag(node, "add_prefix_space");
    if (json_flag(node, "use_regex") && !(step.re = compile_regex(gpt2_pattern, 0, where, err, errlen))) return -1;
    t->byte_level = true;
  } else if (!strcmp(type, "Metaspace")) {
    /* Encoding maps bytes to GPT-2 characters only at the end, so Metaspace would still see the spaces that
     * Hugging Face's ByteLevel has already turned into U+0120. */
    if (t->byte_level) {
      tok_error(err, errlen, "%s: Metaspace after a ByteLevel pre-tokenizer is not supported", where);
      return -1;
    }
    step.kind = PRE_METASPACE;
    if (hf_parse_metaspace(node, where, &step.meta, err, errlen) < 0) return -1;
  } else {
    tok_error(err, errlen, "%s: pre-tokenizer type \"%s\" is not supported (supported: Sequence, Split, ByteLevel, "
              "Metaspace)", where, type);
    return -1;
  }
  pre_step *grown = realloc(t->pre, (t->n_pre + 1) * sizeof *grown);
  if (!grown) {
    pcre2_code_free(step.re);
    tok_error(err, errlen, "out of memory");
    return -1;
  }
  t->pre = grown;
  t->pre[t->n_pre++] = step;
  return 0;
}

/* Replaces every non-overlapping occurrence of from, scanning left to right. */
static char *replace_all(const char *s, size_t len, const char *from, const char *to, size_t *out_len) {
  size_t from_len = strlen(from), to_len = strlen(to), count = 0;
  for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), from, from_len)); p += from_len) count++;
  size_t n = len + count * to_len - count * from_len;
  char *out = malloc(n + 1), *w = out;
  if (!out) return NULL;
  const char *p = s, *end = s + len;
  for (const char *hit; (hit = memmem(p, (size_t)(end - p), from, from_len)); p = hit + from_len) {
    memcpy(w, p, (size_t)(hit - p)), w += hit - p;
    memcpy(w, to, to_len), w += to_len;
  }
  memcpy(w, p, (size_t)(end - p)), w += end - p;
  *w = '\0';
  *out_len = n;
  return out;
}

int hf_normalize(const hf_tokenizer *t, const char *s, size_t len, char **out, size_t *out_len, bool *first_kept,
                 char *err, size_t errlen) {
  *first_kept = true;
  char *cur = malloc(len + 1);
  if (!cur) goto oom;
  memcpy(cur, s, len);
  cur[len] = '\0';
  for (size_t i = 0; i < t->n_norm; i++) {
    const norm_step *step = &t->norm[i];
    char *next = NULL;
    size_t next_len = 0;
    if (step->kind == NORM_PREPEND) {
      if (!len) continue;  /* Hugging Face prepends only to non-empty text */
      size_t plen = strlen(step->text);
      if (!(next = malloc(plen + len + 1))) goto oom;
      memcpy(next, step->text, plen);
      memcpy(next + plen, cur, len + 1);
      next_len = plen + len;
    } else if (step->kind == NORM_REPLACE) {
      /* A match replaced by nothing at the front leaves the text starting at a later original character;
       * a non-empty replacement, a prepend or a Unicode form map their first character to the old first one. */
      size_t tlen = strlen(step->text);
      if (!*step->with && len >= tlen && !memcmp(cur, step->text, tlen)) *first_kept = false;
      if (!(next = replace_all(cur, len, step->text, step->with, &next_len))) goto oom;
    } else {
      utf8proc_uint8_t *mapped = NULL;
      utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)len, &mapped,
                                        (utf8proc_option_t)step->utf8proc_options);
      if (n < 0) {
        free(cur);
        tok_error(err, errlen, "Unicode normalization failed: %s", utf8proc_errmsg(n));
        return -1;
      }
      next = (char *)mapped, next_len = (size_t)n;
    }
    free(cur);
    cur = next, len = next_len;
  }
  *out = cur, *out_len = len;
  return 0;
oom:
  free(cur);
  tok_error(err, errlen, "out of memory normalizing %zu bytes", len);
  return -1;
}

typedef struct {
  const hf_tokenizer *t;
  hf_piece_fn emit;
  void *ctx;
  pcre2_match_context *mctx;
  bool first_kept;  /* see hf_pre_tokenize */
  char *err;
  size_t errlen;
} pretok_run;

/* at_origin throughout: s begins at offset 0 of the text being encoded, as Hugging Face's offsets_original
 * says. A piece cut from s is a slice whose offset is that of its first character: the origin only when it
 * starts s and that character was not moved off the origin by a normalizer. */
static int run_from(const pretok_run *r, size_t step, const char *s, size_t len, bool at_origin);

static bool slice_at_origin(const pretok_run *r, bool at_origin, size_t start) {
  return at_origin && start == 0 && r->first_kept;
}

/* Splits s at the pattern's matches; matches and the text between them both become pieces (Isolated). */
static int split_isolated(const pretok_run *r, size_t step, pcre2_code *re, const char *s, size_t len,
                          bool at_origin) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  if (!md) {
    tok_error(r->err, r->errlen, "out of memory for regex match data");
    return -1;
  }
  size_t done = 0, from = 0;
  int status = 0;
  while (from <= len && status == 0) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, md, r->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      tok_error(r->err, r->errlen, "pre-tokenizer regex failed at byte %zu: %s", from, (char *)msg);
      status = -1;
      break;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1];
    if (start == end) {  /* empty matches cut nothing; step over one character */
      uint32_t cp;
      size_t k = start < len ? utf8_char((const unsigned char *)s + start, len - start, &cp) : 1;
      from = start + (k ? k : 1);
      continue;
    }
    if (start > done) status = run_from(r, step + 1, s + done, start - done, slice_at_origin(r, at_origin, done));
    if (status == 0) status = run_from(r, step + 1, s + start, end - start, slice_at_origin(r, at_origin, start));
    done = from = end;
  }
  if (status == 0 && done < len)
    status = run_from(r, step + 1, s + done, len - done, slice_at_origin(r, at_origin, done));
  pcre2_match_data_free(md);
  return status;
}

/* Metaspace: every ' ' becomes the replacement, which is also put in front when the scheme says so and the
 * text does not already start with it; with split, each replacement starts a new piece
 * ("▁Hello▁world" -> "▁Hello", "▁world"), and text before the first one is a piece of its own. */
static int run_metaspace(const pretok_run *r, size_t step, const char *s, size_t len, bool at_origin) {
  const metaspace_opts *m = &r->t->pre[step].meta;
  size_t rlen = strlen(m->replacement), spaces = 0;
  for (size_t i = 0; i < len; i++) spaces += s[i] == ' ';
  bool starts_with = s[0] == ' ' || (len >= rlen && !memcmp(s, m->replacement, rlen));
  bool prepend = !starts_with && (m->prepend == PREPEND_ALWAYS || (m->prepend == PREPEND_FIRST && at_origin));
  size_t n = (prepend ? rlen : 0) + len + spaces * (rlen - 1);
  char *text = malloc(n), *w = text;
  if (!text) {
    tok_error(r->err, r->errlen, "out of memory for a %zu-byte Metaspace piece", n);
    return -1;
  }
  if (prepend) memcpy(w, m->replacement, rlen), w += rlen;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == ' ') memcpy(w, m->replacement, rlen), w += rlen;
    else *w++ = s[i];
  }
  int status = 0;
  if (!m->split) {
    status = run_from(r, step + 1, text, n, at_origin);
  } else {
    /* The text is valid UTF-8, so a byte match of the replacement is a character match. */
    size_t from = 0;
    for (const char *hit; status == 0 && (hit = memmem(text + from + 1, n - from - 1, m->replacement, rlen));
         from = (size_t)(hit - text))
      status = run_from(r, step + 1, text + from, (size_t)(hit - text) - from, slice_at_origin(r, at_origin, from));
    if (status == 0) status = run_from(r, step + 1, text + from, n - from, slice_at_origin(r, at_origin, from));
  }
  free(text);
  return status;
}

static int run_from(const pretok_run *r, size_t step, const char *s, size_t len, bool at_origin) {
  if (len == 0) return 0;
  if (step == r->t->n_pre) return r->emit(r->ctx, s, len);
  const pre_step *p = &r->t->pre[step];
  if (p->kind == PRE_METASPACE) return run_metaspace(r, step, s, len, at_origin);
  if (p->kind == PRE_BYTE_LEVEL && p->add_prefix_space && s[0] != ' ') {
    char *spaced = malloc(len + 1);
    if (!spaced) {
      tok_error(r->err, r->errlen, "out of memory");
      return -1;
    }
    spaced[0] = ' ';
    memcpy(spaced + 1, s, len);
    int status = p->re ? split_isolated(r, step, p->re, spaced, len + 1, at_origin)
                       : run_from(r, step + 1, spaced, len + 1, at_origin);
    free(spaced);
    return status;
  }
  return p->re ? split_isolated(r, step, p->re, s, len, at_origin) : run_from(r, step + 1, s, len, at_origin);
}

int hf_pre_tokenize(const hf_tokenizer *t, const char *s, size_t len, bool at_origin, bool first_kept,
                    hf_piece_fn emit, void *ctx, char *err, size_t errlen) {
  pretok_run r = {.t = t, .emit = emit, .ctx = ctx, .first_kept = first_kept, .err = err, .errlen = errlen};
  /* The JIT's default 32 KiB stack is too small for long runs of whitespace under \s+(?!\S). */
  pcre2_jit_stack *stack = NULL;
  if (t->n_pre) {
    r.mctx = pcre2_match_context_create(NULL);
    stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL);
    if (!r.mctx || !stack) {
      pcre2_match_context_free(r.mctx);
      pcre2_jit_stack_free(stack);
      tok_error(err, errlen, "out of memory for the regex matcher");
      return -1;
    }
    pcre2_jit_stack_assign(r.mctx, NULL, stack);
  }
  int status = run_from(&r, 0, s, len, at_origin);
  pcre2_match_context_free(r.mctx);
  pcre2_jit_stack_free(stack);
  return status;
}
