/* Hugging Face tokenizer.json with a BPE model: loading, and encoding (added tokens, then per segment
 * normalize -> pre-tokenize -> BPE by merge rank). Decoding lives in tok_hf_decode.c, normalizers and
 * pre-tokenizers in tok_hf_pretok.c. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok_bpe.h"
#include "tok_hf.h"
#include "utf8.h"

const char *hf_json_string(json_t *obj, const char *key, const char *where, char *err, size_t errlen) {
  json_t *v = json_object_get(obj, key);
  if (json_is_string(v)) return json_string_value(v);
  tok_error(err, errlen, "%s: field \"%s\" must be a string", where, key);
  return NULL;
}

/* ---- encoding ---- */

typedef struct {
  const hf_tokenizer *t;
  token_ids *out;
  token_text word;  /* scratch: a piece after the byte-level map */
  char *err;
  size_t errlen;
} encode_ctx;

static int hf_pair(const void *ctx, int a, int b, double *priority, int *merged) {
  const hf_tokenizer *t = ctx;
  int rank;
  if (!pairmap_get(&t->merges, a, b, &rank, merged)) return 0;
  *priority = rank;
  return 1;
}

/* The initial symbol(s) for one character that is not itself in the vocabulary. */
static int push_unknown(encode_ctx *c, const char *ch, size_t k, size_t start) {
  const hf_tokenizer *t = c->t;
  bool bytes_known = t->byte_fallback;
  for (size_t j = 0; j < k; j++) bytes_known = bytes_known && t->byte_token[(unsigned char)ch[j]] >= 0;
  if (bytes_known) {
    for (size_t j = 0; j < k; j++)
      if (token_ids_push(c->out, t->byte_token[(unsigned char)ch[j]], c->err, c->errlen) < 0) return -1;
    return 0;
  }
  if (t->unk >= 0) {
    if (t->fuse_unk && c->out->len > start && c->out->ids[c->out->len - 1] == t->unk) return 0;
    return token_ids_push(c->out, t->unk, c->err, c->errlen);
  }
  tok_error(c->err, c->errlen, "character \"%.*s\" is not in the vocabulary, and the model has neither "
            "byte_fallback nor an unk_token", (int)k, ch);
  return -1;
}

static int encode_piece(void *ctx, const char *s, size_t len) {
  encode_ctx *c = ctx;
  const hf_tokenizer *t = c->t;
  if (t->byte_level) {
    c->word.len = 0;
    for (size_t i = 0; i < len; i++) {
      unsigned char ch[4];
      size_t k = utf8_put(byte_level_char((unsigned char)s[i]), ch);
      if (token_text_append(&c->word, ch, k, c->err, c->errlen) < 0) return -1;
    }
    s = c->word.data, len = c->word.len;
  }
  if (t->ignore_merges) {
    int id = strmap_get(&t->vocab, s, len);
    if (id >= 0) return token_ids_push(c->out, id, c->err, c->errlen);
  }
  size_t start = c->out->len;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t k = utf8_char((const unsigned char *)s + i, len - i, &cp);
    int id = strmap_get(&t->vocab, s + i, k);
    if (id >= 0 ? token_ids_push(c->out, id, c->err, c->errlen) : push_unknown(c, s + i, k, start)) return -1;
    i += k;
  }
  size_t n = c->out->len - start;
  if (bpe_merge(c->out->ids + start, &n, hf_pair, t) < 0) {
    tok_error(c->err, c->errlen, "out of memory merging a %zu-symbol word", n);
    return -1;
  }
  c->out->len = start + n;
  return 0;
}

/* at_origin: the segment is the start of the text, not the part after an added token. */
static int encode_segment(encode_ctx *c, const char *s, size_t len, bool at_origin) {
  char *normalized;
  size_t nlen;
  bool first_kept;
  if (hf_normalize(c->t, s, len, &normalized, &nlen, &first_kept, c->err, c->errlen) < 0) return -1;
  int status = hf_pre_tokenize(c->t, normalized, nlen, at_origin, first_kept, encode_piece, c, c->err, c->errlen);
  free(normalized);
  return status;
}

/* The longest added token starting at s, as Hugging Face's leftmost-longest matcher finds it; -1 if none. */
static int match_added(const hf_tokenizer *t, const char *s, size_t left, size_t *match_len) {
  if (!t->added_first[(unsigned char)*s]) return -1;
  for (size_t i = 0; i < t->n_added_len; i++) {
    if (t->added_len[i] > left) continue;
    int id = strmap_get(&t->added, s, t->added_len[i]);
    if (id >= 0) {
      *match_len = t->added_len[i];
      return id;
    }
  }
  return -1;
}

static int hf_encode(const tokenizer *tok, const char *text, size_t len, token_ids *out, char *err, size_t errlen) {
  const hf_tokenizer *t = (const hf_tokenizer *)tok;
  size_t bad = utf8_invalid_at((const unsigned char *)text, len);
  if (bad < len) {
    tok_error(err, errlen, "text is not valid UTF-8 at byte %zu (0x%02X); Hugging Face tokenizers take text only",
              bad, (unsigned char)text[bad]);
    return -1;
  }
  encode_ctx c = {.t = t, .out = out, .err = err, .errlen = errlen};
  int status = 0;
  size_t segment = 0, i = 0;
  while (i < len && status == 0) {
    size_t match_len;
    int id = match_added(t, text + i, len - i, &match_len);
    if (id < 0) {
      i++;
      continue;
    }
    if (i > segment) status = encode_segment(&c, text + segment, i - segment, segment == 0);
    if (status == 0) status = token_ids_push(out, id, err, errlen);
    i += match_len, segment = i;
  }
  if (status == 0 && len > segment) status = encode_segment(&c, text + segment, len - segment, segment == 0);
  token_text_free(&c.word);
  return status;
}

/* ---- loading ---- */

static void hf_destroy(tokenizer *tok) {
  hf_tokenizer *t = (hf_tokenizer *)tok;
  strmap_free(&t->vocab);
  strmap_free(&t->added);
  pairmap_free(&t->merges);
  for (size_t i = 0; i < t->n_norm; i++) free(t->norm[i].text), free(t->norm[i].with);
  for (size_t i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
  for (size_t i = 0; i < t->n_dec; i++) free(t->dec[i].text), free(t->dec[i].with);
  free(t->norm);
  free(t->pre);
  free(t->dec);
  free(t->added_len);
  free(t->token);
  free(t->token_len);
  free(t->special);
  free(t->arena);
  free(t);
}

static bool is_null_or_absent(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return !v || json_is_null(v);
}

static bool is_empty_or_null(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return !v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v));
}

/* Checks the model's options against what encode implements; every unsupported one is named. */
static int check_model(hf_tokenizer *t, json_t *model, const char *path, char *err, size_t errlen) {
  json_t *type = json_object_get(model, "type");
  if (!json_is_object(model) || (type && strcmp(json_string_value(type) ? json_string_value(type) : "", "BPE") != 0)) {
    tok_error(err, errlen, "%s: model type \"%s\" is not supported (only BPE)", path,
              json_is_string(type) ? json_string_value(type) : "?");
    return -1;
  }
  if (!json_is_object(json_object_get(model, "vocab")) || !json_is_array(json_object_get(model, "merges"))) {
    tok_error(err, errlen, "%s: model needs a \"vocab\" object and a \"merges\" array", path);
    return -1;
  }
  json_t *dropout = json_object_get(model, "dropout");
  if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0) {
    tok_error(err, errlen, "%s: model.dropout %g is not supported (encoding would be random)", path,
              json_number_value(dropout));
    return -1;
  }
  if (!is_empty_or_null(model, "continuing_subword_prefix") || !is_empty_or_null(model, "end_of_word_suffix")) {
    tok_error(err, errlen, "%s: model.continuing_subword_prefix / end_of_word_suffix are not supported", path);
    return -1;
  }
  t->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
  t->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
  t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
  return 0;
}

/* Tables are sized by the largest id, so one far-off id in a small file would cost gigabytes; the
 * largest real vocabularies are a quarter of this (and a model's vocab_size is bounded alike). */
enum { HF_MAX_ID = (1 << 20) - 1 };

/* Every token string goes into one arena, indexed by id; the vocab and added maps borrow from it. */
static int load_tokens(hf_tokenizer *t, json_t *vocab, json_t *added, const char *path, char *err, size_t errlen) {
  size_t bytes = 0;
  long max_id = -1;
  const char *key;
  json_t *value;
  json_object_foreach(vocab, key, value) {
    if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) > HF_MAX_ID) {
      tok_error(err, errlen, "%s: model.vocab[\"%s\"] is not an id in 0..%d", path, key, HF_MAX_ID);
      return -1;
    }
    bytes += strlen(key) + 1;
    if (json_integer_value(value) > max_id) max_id = (long)json_integer_value(value);
  }
  size_t i;
  json_array_foreach(added, i, value) {
    json_t *id = json_object_get(value, "id"), *content = json_object_get(value, "content");
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > HF_MAX_ID ||
        !json_is_string(content) || !*json_string_value(content)) {
      tok_error(err, errlen, "%s: added_tokens[%zu] needs an id in 0..%d and a non-empty content", path, i,
                HF_MAX_ID);
      return -1;
    }
    static const char *const unsupported[] = {"lstrip", "rstrip", "single_word", "normalized"};
    for (size_t k = 0; k < 4; k++) {
      if (json_is_true(json_object_get(value, unsupported[k]))) {
        tok_error(err, errlen, "%s: added_tokens[%zu] \"%s\" sets %s, which is not supported", path, i,
                  json_string_value(content), unsupported[k]);
        return -1;
      }
    }
    bytes += json_string_length(content) + 1;
    if (json_integer_value(id) > max_id) max_id = (long)json_integer_value(id);
  }
  if (max_id < 0) {
    tok_error(err, errlen, "%s: empty vocabulary", path);
    return -1;
  }
  size_t n = (size_t)max_id + 1;
  t->base.vocab_size = (int)n;
  t->arena = malloc(bytes ? bytes : 1);
  t->token = calloc(n, sizeof *t->token);
  t->token_len = calloc(n, sizeof *t->token_len);
  t->special = calloc(n, sizeof *t->special);
  if (!t->arena || !t->token || !t->token_len || !t->special || strmap_init(&t->vocab, json_object_size(vocab)) < 0 ||
      strmap_init(&t->added, json_array_size(added)) < 0) {
    tok_error(err, errlen, "%s: out of memory for %zu tokens", path, n);
    return -1;
  }
  char *w = t->arena;
  json_object_foreach(vocab, key, value) {
    int id = (int)json_integer_value(value), existing;
    size_t len = strlen(key);
    if (t->token[id]) {
      tok_error(err, errlen, "%s: model.vocab gives id %d to both \"%s\" and \"%s\"", path, id, t->token[id], key);
      return -1;
    }
    memcpy(w, key, len + 1);
    t->token[id] = w, t->token_len[id] = (uint32_t)len;
    if (strmap_put(&t->vocab, w, len, id, &existing) < 0) goto oom;
    w += len + 1;
  }
  json_array_foreach(added, i, value) {
    int id = (int)json_integer_value(json_object_get(value, "id")), existing;
    json_t *content = json_object_get(value, "content");
    size_t len = json_string_length(content);
    memcpy(w, json_string_value(content), len + 1);
    /* An added token may repeat a vocabulary entry (llama2's <s>); the added entry decides its id. */
    t->token[id] = w, t->token_len[id] = (uint32_t)len;
    t->special[id] = json_is_true(json_object_get(value, "special"));
    if (strmap_put(&t->added, w, len, id, &existing) < 0) goto oom;
    t->added_first[(unsigned char)w[0]] = true;
    size_t k = 0;
    while (k < t->n_added_len && t->added_len[k] > len) k++;
    if (k == t->n_added_len || t->added_len[k] != len) {
      size_t *grown = realloc(t->added_len, (t->n_added_len + 1) * sizeof *grown);
      if (!grown) goto oom;
      t->added_len = grown;
      memmove(&grown[k + 1], &grown[k], (t->n_added_len - k) * sizeof *grown);
      grown[k] = len;
      t->n_added_len++;
    }
    w += len + 1;
  }
  return 0;
oom:
  tok_error(err, errlen, "%s: out of memory", path);
  return -1;
}

static int load_merges(hf_tokenizer *t, json_t *merges, const char *path, char *err, size_t errlen) {
  if (pairmap_init(&t->merges, json_array_size(merges)) < 0) {
    tok_error(err, errlen, "%s: out of memory for %zu merges", path, json_array_size(merges));
    return -1;
  }
  char *joined = NULL;
  size_t joined_cap = 0, i;
  json_t *merge;
  int status = 0;
  json_array_foreach(merges, i, merge) {
    const char *left, *right;
    size_t left_len, right_len;
    const char *space = json_is_string(merge) ? strchr(json_string_value(merge), ' ') : NULL;
    if (space && !strchr(space + 1, ' ')) {  /* "a b" */
      left = json_string_value(merge), left_len = (size_t)(space - left);
      right = space + 1, right_len = strlen(right);
    } else if (json_is_array(merge) && json_array_size(merge) == 2 && json_is_string(json_array_get(merge, 0)) &&
               json_is_string(json_array_get(merge, 1))) {  /* ["a", "b"] */
      left = json_string_value(json_array_get(merge, 0)), left_len = json_string_length(json_array_get(merge, 0));
      right = json_string_value(json_array_get(merge, 1)), right_len = json_string_length(json_array_get(merge, 1));
    } else {
      tok_error(err, errlen, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
      status = -1;
      break;
    }
    if (left_len + right_len > joined_cap) {
      joined_cap = 2 * (left_len + right_len);
      char *grown = realloc(joined, joined_cap);
      if (!grown) {
        tok_error(err, errlen, "%s: out of memory", path);
        status = -1;
        break;
      }
      joined = grown;
    }
    memcpy(joined, left, left_len);
    memcpy(joined + left_len, right, right_len);
    int a = strmap_get(&t->vocab, left, left_len), b = strmap_get(&t->vocab, right, right_len);
    int merged = strmap_get(&t->vocab, joined, left_len + right_len), existing;
    if (a < 0 || b < 0 || merged < 0) {
      tok_error(err, errlen, "%s: model.merges[%zu] (\"%.*s\" + \"%.*s\"): \"%.*s\" is not in the vocabulary", path,
                i, (int)left_len, left, (int)right_len, right, a < 0 ? (int)left_len : b < 0 ? (int)right_len : (int)(left_len + right_len),
                a < 0 ? left : b < 0 ? right : joined);
      status = -1;
      break;
    }
    if (pairmap_put(&t->merges, a, b, (int)i, merged, &existing) < 0) {
      tok_error(err, errlen, "%s: out of memory", path);
      status = -1;
      break;
    }
  }
  free(joined);
  return status;
}

/* The id of a token named in tokenizer_config.json or a post-processor; added tokens first. */
static int token_id(const hf_tokenizer *t, const char *name) {
  int id = strmap_get(&t->added, name, strlen(name));
  return id >= 0 ? id : strmap_get(&t->vocab, name, strlen(name));
}

static int check_post_processor(hf_tokenizer *t, json_t *node, const char *path, char *err, size_t errlen) {
  if (!node || json_is_null(node)) return 0;
  const char *type = hf_json_string(node, "type", "post_processor", err, errlen);
  if (!type) return -1;
  if (!strcmp(type, "Sequence")) {
    json_t *list = json_object_get(node, "processors"), *item;
    size_t i;
    json_array_foreach(list, i, item) if (check_post_processor(t, item, path, err, errlen) < 0) return -1;
    return 0;
  }
  if (!strcmp(type, "ByteLevel")) return 0;  /* only moves offsets */
  if (strcmp(type, "TemplateProcessing") != 0) {
    tok_error(err, errlen, "%s: post_processor type \"%s\" is not supported (supported: TemplateProcessing, "
              "ByteLevel, Sequence)", path, type);
    return -1;
  }
  /* Special tokens before $A are the BOS, after it the EOS (used when tokenizer_config.json is absent). */
  json_t *single = json_object_get(node, "single"), *item;
  bool seen_a = false;
  size_t i;
  json_array_foreach(single, i, item) {
    json_t *special = json_object_get(item, "SpecialToken");
    if (json_object_get(item, "Sequence")) seen_a = true;
    if (!special) continue;
    const char *name = json_string_value(json_object_get(special, "id"));
    int id = name ? token_id(t, name) : -1;
    if (id < 0) {
      tok_error(err, errlen, "%s: post_processor names special token \"%s\", which is not in the vocabulary", path,
                name ? name : "?");
      return -1;
    }
    if (seen_a) t->base.eos = id;
    else t->base.bos = id;
  }
  return 0;
}

/* bos_token etc. in tokenizer_config.json: a string, {"content": ...}, or null for none. Absent keeps *id. */
static int config_token(hf_tokenizer *t, json_t *config, const char *key, int *id, const char *path, char *err,
                        size_t errlen) {
  json_t *v = json_object_get(config, key);
  if (!v) return 0;
  if (json_is_null(v)) {
    *id = -1;
    return 0;
  }
  const char *name = json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "content"));
  *id = name ? token_id(t, name) : -1;
  if (*id < 0) {
    tok_error(err, errlen, "%s: %s \"%s\" is not a token of the tokenizer", path, key, name ? name : "(not a string)");
    return -1;
  }
  return 0;
}

static int load_config(hf_tokenizer *t, const char *path, char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  size_t dir = slash ? (size_t)(slash - path + 1) : 0;
  char config_path[4096];
  snprintf(config_path, sizeof config_path, "%.*stokenizer_config.json", (int)dir, path);
  struct stat st;
  if (stat(config_path, &st) != 0) return 0;
  json_error_t jerr;
  /* model_max_length is often 1e30, beyond json_int_t. */
  json_t *config = json_load_file(config_path, JSON_DECODE_INT_AS_REAL, &jerr);
  if (!config) {
    tok_error(err, errlen, "%s:%d:%d: %s", config_path, jerr.line, jerr.column, jerr.text);
    return -1;
  }
  int status = config_token(t, config, "bos_token", &t->base.bos, config_path, err, errlen) < 0 ||
                       config_token(t, config, "eos_token", &t->base.eos, config_path, err, errlen) < 0 ||
                       config_token(t, config, "pad_token", &t->base.pad, config_path, err, errlen) < 0
                   ? -1
                   : 0;
  json_decref(config);
  return status;
}

tokenizer *tokenizer_load_hf(const char *path, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
  if (!root) {
    tok_error(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    return NULL;
  }
  hf_tokenizer *t = calloc(1, sizeof *t);
  if (!t) {
    json_decref(root);
    tok_error(err, errlen, "%s: out of memory", path);
    return NULL;
  }
  t->base = (tokenizer){.kind = "hf-bpe", .bos = -1, .eos = -1, .pad = -1,
                        .encode = hf_encode, .decode = hf_decode, .destroy = hf_destroy};
  t->unk = -1;
  json_t *model = json_object_get(root, "model");
  int status = -1;
  char where[4096];
  if (!json_is_object(root)) {
    tok_error(err, errlen, "%s: not a JSON object", path);
  } else if (!is_null_or_absent(root, "truncation") || !is_null_or_absent(root, "padding")) {
    tok_error(err, errlen, "%s: \"truncation\" / \"padding\" are set; they are not supported", path);
  } else if (check_model(t, model, path, err, errlen) == 0 &&
             load_tokens(t, json_object_get(model, "vocab"), json_object_get(root, "added_tokens"), path, err,
                         errlen) == 0 &&
             load_merges(t, json_object_get(model, "merges"), path, err, errlen) == 0) {
    status = 0;
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk && (t->unk = token_id(t, unk)) < 0) {
      tok_error(err, errlen, "%s: model.unk_token \"%s\" is not in the vocabulary", path, unk);
      status = -1;
    }
    for (int b = 0; b < 256; b++) {
      char piece[8];
      snprintf(piece, sizeof piece, "<0x%02X>", b);
      t->byte_token[b] = strmap_get(&t->vocab, piece, 6);
    }
    snprintf(where, sizeof where, "%s: normalizer", path);
    if (status == 0) status = hf_parse_normalizer(t, json_object_get(root, "normalizer"), where, err, errlen);
    snprintf(where, sizeof where, "%s: pre_tokenizer", path);
    if (status == 0) status = hf_parse_pre_tokenizer(t, json_object_get(root, "pre_tokenizer"), where, err, errlen);
    snprintf(where, sizeof where, "%s: decoder", path);
    if (status == 0) status = hf_parse_decoder(t, json_object_get(root, "decoder"), where, err, errlen);
    if (status == 0) status = check_post_processor(t, json_object_get(root, "post_processor"), path, err, errlen);
    if (status == 0) status = load_config(t, path, err, errlen);
  }
  json_decref(root);
  if (status < 0) {
    hf_destroy(&t->base);
    return NULL;
  }
  return &t->base;
}
