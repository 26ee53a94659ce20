/* Hugging Face tokenizer.json (BPE model) internals, shared by the loader (tok_hf.c), the normalizers and
 * pre-tokenizers (tok_hf_pretok.c) and the decoders (tok_hf_decode.c). */
#ifndef FEDLORA_TOK_HF_H
#define FEDLORA_TOK_HF_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>

#include "tok_internal.h"
#include "tok_map.h"

typedef enum { NORM_PREPEND, NORM_REPLACE, NORM_UNICODE } norm_kind;
typedef struct {
  norm_kind kind;
  char *text, *with;  /* PREPEND: text; REPLACE: every text becomes with */
  int utf8proc_options; /* UNICODE: NFC/NFD/NFKC/NFKD as utf8proc flags */
} norm_step;

/* Metaspace's prepend_scheme: where the replacement is put in front of a pre-token not starting with it. */
typedef enum {
  PREPEND_ALWAYS, /* every pre-token */
  PREPEND_FIRST,  /* only one that begins at offset 0 of the original text */
  PREPEND_NEVER,
} prepend_scheme;

/* Metaspace's options as Hugging Face reads them (the pre-tokenizer and the decoder share the format). */
typedef struct {
  char replacement[5];   /* one character, UTF-8, NUL-terminated */
  prepend_scheme prepend;
  bool split;            /* pre-tokenizer only: cut before every replacement */
} metaspace_opts;

typedef enum { PRE_SPLIT, PRE_BYTE_LEVEL, PRE_METASPACE } pre_kind;
typedef struct {
  pre_kind kind;
  pcre2_code *re;        /* SPLIT: the pattern; BYTE_LEVEL: GPT-2's pattern if use_regex, else NULL */
  bool add_prefix_space; /* BYTE_LEVEL */
  metaspace_opts meta;   /* METASPACE */
} pre_step;

typedef enum { DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_BYTE_LEVEL, DEC_METASPACE } dec_kind;
typedef struct {
  dec_kind kind;
  char *text, *with;  /* REPLACE, METASPACE: every text becomes with; STRIP: text is the character stripped */
  int start, stop;    /* STRIP: at most this many from the front / back of each token */
  bool drop_first;    /* METASPACE: in the first token the replacements vanish instead of becoming spaces */
} dec_step;

typedef struct {
  tokenizer base;
  char *arena;          /* every token string, NUL-terminated */
  const char **token;   // (vocab_size) NULL where no token has that id
  uint32_t *token_len;  // (vocab_size)
  bool *special;        // (vocab_size) added tokens marked "special"
  strmap vocab;         /* the model's vocabulary, piece -> id (added tokens are matched separately) */
  pairmap merges;       /* (left id, right id) -> rank, merged id */
  strmap added;         /* added token content -> id */
  bool added_first[256];/* bytes an added token can start with */
  size_t *added_len;    // (n_added_len) the distinct added token lengths, longest first
  size_t n_added_len;
  int unk;              /* -1: none */
  bool fuse_unk, byte_fallback, ignore_merges;
  int byte_token[256];  /* id of "<0xXX>", -1 if absent */
  norm_step *norm;
  size_t n_norm;
  pre_step *pre;
  size_t n_pre;
  bool byte_level;      /* a ByteLevel pre-tokenizer maps bytes to GPT-2's printable characters */
  dec_step *dec;
  size_t n_dec;
  bool has_decoder;     /* without one, Hugging Face joins the tokens with spaces */
} hf_tokenizer;

/* GPT-2's reversible byte <-> printable character map. */
uint32_t byte_level_char(unsigned char byte);
int byte_level_byte(uint32_t cp);  /* -1 if cp is not one of the 256 characters */

/* Parsers fill t's steps from the JSON node (which may be null); errors name the field and kind. */
int hf_parse_normalizer(hf_tokenizer *t, json_t *node, const char *path, char *err, size_t errlen);
int hf_parse_pre_tokenizer(hf_tokenizer *t, json_t *node, const char *path, char *err, size_t errlen);
int hf_parse_decoder(hf_tokenizer *t, json_t *node, const char *path, char *err, size_t errlen);
/* Reads a Metaspace node's replacement, prepend_scheme (or legacy add_prefix_space) and split. */
int hf_parse_metaspace(json_t *node, const char *where, metaspace_opts *out, char *err, size_t errlen);

/* Normalizes s[0..len) into a fresh malloc'd, NUL-terminated *out. *first_kept turns false when a normalizer
 * deleted the beginning of s, so that the first normalized character no longer maps to s's first one. */
int hf_normalize(const hf_tokenizer *t, const char *s, size_t len, char **out, size_t *out_len, bool *first_kept,
                 char *err, size_t errlen);

typedef int (*hf_piece_fn)(void *ctx, const char *s, size_t len);
/* Runs the pre-tokenizers over s[0..len) and calls emit on each non-empty piece, in order. Metaspace's
 * prepend_scheme "first" needs to know which piece begins at offset 0 of the text being encoded, as Hugging Face
 * counts it: at_origin says s (a normalized segment) starts there, that is, not after an added token; a piece cut
 * from s at its start does too only if first_kept (from hf_normalize). */
int hf_pre_tokenize(const hf_tokenizer *t, const char *s, size_t len, bool at_origin, bool first_kept,
                    hf_piece_fn emit, void *ctx, char *err, size_t errlen);

int hf_decode(const tokenizer *tok, const int *ids, size_t n, bool skip_special, token_text *out, char *err,
              size_t errlen);

/* A string field of obj, or NULL with an error naming where/key. */
const char *hf_json_string(json_t *obj, const char *key, const char *where, char *err, size_t errlen);
/* Pattern {"String": s} or {"Regex": r}; sets *is_regex. */
const char *hf_json_pattern(json_t *obj, const char *where, bool *is_regex, char *err, size_t errlen);

#endif
