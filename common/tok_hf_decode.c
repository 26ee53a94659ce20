/* Hugging Face decoders: token strings back to text. Each step maps a list of token strings to a new
 * list, as Hugging Face's decode_chain does, so the steps compose in the order the file gives. */
#include <stdlib.h>
#include <string.h>

#include "tok_hf.h"
#include "utf8.h"

int hf_parse_decoder(hf_tokenizer *t, json_t *node, const char *where, char *err, size_t errlen) {
  if (json_is_null(node) || !node) return 0;
  t->has_decoder = true;
  const char *type = hf_json_string(node, "type", where, err, errlen);
  if (!type) return -1;
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(node, "decoders");
    if (!json_is_array(list)) {
      tok_error(err, errlen, "%s: Sequence without a \"decoders\" array", where);
      return -1;
    }
    char inner[256];
    for (size_t i = 0; i < json_array_size(list); i++) {
      snprintf(inner, sizeof inner, "%s.decoders[%zu]", where, i);
      if (hf_parse_decoder(t, json_array_get(list, i), inner, err, errlen) < 0) return -1;
    }
    return 0;
  }
  dec_step step = {0};
  const char *text = NULL, *with = "";
  metaspace_opts meta;  /* text points into it until the strdup below */
  if (!strcmp(type, "Replace")) {
    bool is_regex;
    step.kind = DEC_REPLACE;
    text = hf_json_pattern(node, where, &is_regex, err, errlen);
    with = text ? hf_json_string(node, "content", where, err, errlen) : NULL;
    if (!with) return -1;
    if (is_regex || !*text) {
      tok_error(err, errlen, "%s: Replace decoder with a %s pattern is not supported", where,
                is_regex ? "Regex" : "empty");
      return -1;
    }
  } else if (!strcmp(type, "ByteFallback")) {
    step.kind = DEC_BYTE_FALLBACK;
  } else if (!strcmp(type, "Fuse")) {
    step.kind = DEC_FUSE;
  } else if (!strcmp(type, "Strip")) {
    step.kind = DEC_STRIP;
    text = hf_json_string(node, "content", where, err, errlen);
    json_t *start = json_object_get(node, "start"), *stop = json_object_get(node, "stop");
    if (!text) return -1;
    uint32_t cp;
    if (!json_is_integer(start) || !json_is_integer(stop) || json_integer_value(start) < 0 ||
        json_integer_value(stop) < 0 || !*text || utf8_char((const unsigned char *)text, strlen(text), &cp) != strlen(text)) {
      tok_error(err, errlen, "%s: Strip decoder needs one content character and non-negative start/stop", where);
      return -1;
    }
    step.start = (int)json_integer_value(start), step.stop = (int)json_integer_value(stop);
  } else if (!strcmp(type, "ByteLevel")) {
    step.kind = DEC_BYTE_LEVEL;
  } else if (!strcmp(type, "Metaspace")) {
    if (hf_parse_metaspace(node, where, &meta, err, errlen) < 0) return -1;
    step.kind = DEC_METASPACE;
    step.drop_first = meta.prepend != PREPEND_NEVER;
    text = meta.replacement, with = " ";
  } else {
    tok_error(err, errlen, "%s: decoder type \"%s\" is not supported (supported: Sequence, Replace, ByteFallback, "
              "Fuse, Strip, ByteLevel, Metaspace)", where, type);
    return -1;
  }
  if (text && (!(step.text = strdup(text)) || !(step.with = strdup(with)))) {
    free(step.text);
    tok_error(err, errlen, "out of memory");
    return -1;
  }
  dec_step *grown = realloc(t->dec, (t->n_dec + 1) * sizeof *grown);
  if (!grown) {
    free(step.text), free(step.with);
    tok_error(err, errlen, "out of memory");
    return -1;
  }
  t->dec = grown;
  t->dec[t->n_dec++] = step;
  return 0;
}

typedef struct {
  token_text bytes;
  size_t *end;  // (n) piece i is bytes[end[i-1] .. end[i])
  size_t n, cap;
} piece_list;

static int pieces_add(piece_list *p, const char *s, size_t len, char *err, size_t errlen) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 64;
    size_t *end = realloc(p->end, cap * sizeof *end);
    if (!end) {
      tok_error(err, errlen, "out of memory decoding");
      return -1;
    }
    p->end = end, p->cap = cap;
  }
  if (token_text_append(&p->bytes, s, len, err, errlen) < 0) return -1;
  p->end[p->n++] = p->bytes.len;
  return 0;
}

/* Appends to the last piece rather than starting a new one. */
static int pieces_extend(piece_list *p, const char *s, size_t len, char *err, size_t errlen) {
  if (!p->n) return pieces_add(p, s, len, err, errlen);
  if (token_text_append(&p->bytes, s, len, err, errlen) < 0) return -1;
  p->end[p->n - 1] = p->bytes.len;
  return 0;
}

static int apply_replace(const char *text, const char *with, const char *s, size_t len, piece_list *dst, char *err,
                         size_t errlen) {
  size_t tlen = strlen(text), wlen = strlen(with);
  if (pieces_add(dst, "", 0, err, errlen) < 0) return -1;
  const char *p = s, *end = s + len;
  for (const char *hit; (hit = memmem(p, (size_t)(end - p), text, tlen)); p = hit + tlen)
    if (pieces_extend(dst, p, (size_t)(hit - p), err, errlen) < 0 || pieces_extend(dst, with, wlen, err, errlen) < 0)
      return -1;
  return pieces_extend(dst, p, (size_t)(end - p), err, errlen);
}

static int apply_strip(const dec_step *d, const char *s, size_t len, piece_list *dst, char *err, size_t errlen) {
  size_t c = strlen(d->text);
  for (int i = 0; i < d->start && len >= c && !memcmp(s, d->text, c); i++) s += c, len -= c;
  for (int i = 0; i < d->stop && len >= c && !memcmp(s + len - c, d->text, c); i++) len -= c;
  return pieces_add(dst, s, len, err, errlen);
}

/* A token whose characters are not all GPT-2 byte characters (an added token, say) passes through as is. */
static int apply_byte_level(const char *s, size_t len, piece_list *dst, char *err, size_t errlen) {
  size_t start = dst->bytes.len;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t k = utf8_char((const unsigned char *)s + i, len - i, &cp);
    int b = k ? byte_level_byte(cp) : -1;
    if (b < 0) {
      dst->bytes.len = start;
      return pieces_extend(dst, s, len, err, errlen);
    }
    char byte = (char)b;
    if (pieces_extend(dst, &byte, 1, err, errlen) < 0) return -1;
    i += k;
  }
  return 0;
}

static int apply_step(const dec_step *d, const piece_list *src, piece_list *dst, char *err, size_t errlen) {
  /* Fuse and ByteLevel both yield a single string. */
  if ((d->kind == DEC_FUSE || d->kind == DEC_BYTE_LEVEL) && pieces_add(dst, "", 0, err, errlen) < 0) return -1;
  for (size_t i = 0; i < src->n; i++) {
    size_t from = i ? src->end[i - 1] : 0, len = src->end[i] - from;
    const char *s = src->bytes.data + from;
    int status = 0;
    switch (d->kind) {
      case DEC_REPLACE: status = apply_replace(d->text, d->with, s, len, dst, err, errlen); break;
      /* Hugging Face drops every replacement of the first token, not only a leading one ("▁▁a" -> "a"). */
      case DEC_METASPACE:
        status = apply_replace(d->text, i == 0 && d->drop_first ? "" : d->with, s, len, dst, err, errlen);
        break;
      case DEC_STRIP: status = apply_strip(d, s, len, dst, err, errlen); break;
      case DEC_FUSE: status = pieces_extend(dst, s, len, err, errlen); break;
      case DEC_BYTE_LEVEL: status = apply_byte_level(s, len, dst, err, errlen); break;
      case DEC_BYTE_FALLBACK: {
        int byte = tok_parse_byte_piece(s, len);
        char b = (char)byte;
        status = byte >= 0 ? pieces_add(dst, &b, 1, err, errlen) : pieces_add(dst, s, len, err, errlen);
        break;
      }
    }
    if (status < 0) return -1;
  }
  return 0;
}

static void pieces_free(piece_list *p) {
  token_text_free(&p->bytes);
  free(p->end);
  memset(p, 0, sizeof *p);
}

int hf_decode(const tokenizer *tok, const int *ids, size_t n, bool skip_special, token_text *out, char *err,
              size_t errlen) {
  const hf_tokenizer *t = (const hf_tokenizer *)tok;
  piece_list a = {0}, b = {0};
  int status = 0;
  for (size_t i = 0; i < n && status == 0; i++) {
    int id = ids[i];
    if (skip_special && t->special[id]) continue;
    if (!t->token[id]) {
      tok_error(err, errlen, "token id %d at position %zu has no token in this vocabulary", id, i);
      status = -1;
    } else {
      status = pieces_add(&a, t->token[id], t->token_len[id], err, errlen);
    }
  }
  for (size_t s = 0; s < t->n_dec && status == 0; s++) {
    b.n = 0, b.bytes.len = 0;
    status = apply_step(&t->dec[s], &a, &b, err, errlen);
    piece_list swap = a;
    a = b, b = swap;
  }
  /* Without a decoder, Hugging Face joins the token strings with spaces. */
  for (size_t i = 0; i < a.n && status == 0; i++) {
    size_t from = i ? a.end[i - 1] : 0;
    if (i && !t->has_decoder) status = token_text_append(out, " ", 1, err, errlen);
    if (status == 0) status = token_text_append(out, a.bytes.data + from, a.end[i] - from, err, errlen);
  }
  pieces_free(&a);
  pieces_free(&b);
  return status;
}
