/* Tokenizers: text <-> token ids, one interface over three kinds.
 *
 *  - byte-level (tokenizer_build_bytes): the embedded demo model's. Ids 0..255 are the bytes 0x00..0xFF,
 *    then BOS = 256, EOS = 257, PAD = 258; vocab_size 259. Any byte string round-trips.
 *  - llama2.c tokenizer.bin (tokenizer_load_llama2c): SentencePiece scores, encoded the way llama2.c's
 *    run.c does (dummy " " prefix, byte fallback as id = byte + 3, greedy best-score merges). BOS = 1, EOS = 2.
 *  - Hugging Face tokenizer.json with a BPE model (SentencePiece-style, byte-level, NFC byte-level).
 *    SentencePiece-style files come in both exports: the older Prepend("▁") + Replace(" ", "▁") normalizer,
 *    and the Metaspace pre-tokenizer and decoder (prepend_scheme always / first / never or the legacy
 *    add_prefix_space, split or not), alone or inside a Sequence. "first" prefixes only the text at offset 0,
 *    so nothing after an added token, as Hugging Face does.
 *    BOS/EOS/PAD come from tokenizer_config.json beside the file when it exists (its bos_token /
 *    eos_token / pad_token, a string or {"content": ...}, null meaning "none"); otherwise BOS and EOS are
 *    the special tokens before and after $A in a TemplateProcessing post-processor's "single" template.
 *    A kind of model, normalizer, pre-tokenizer, decoder or added-token option the loader does not
 *    implement is a load error naming it, never a silent difference from Hugging Face.
 *
 * A tokenizer is immutable once built: encode/decode may run concurrently from several threads. */
#ifndef FEDLORA_TOKENIZER_H
#define FEDLORA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tokenizer tokenizer;

/* A growable id list; zero-initialise, then encode appends to it. */
typedef struct {
  int *ids;
  size_t len, cap;
} token_ids;

/* A growable byte string, always NUL-terminated after a successful decode (data may hold NULs too). */
typedef struct {
  char *data;
  size_t len, cap;
} token_text;

/* Appends one id; returns -1 when memory runs out (err filled), 0 otherwise. */
int token_ids_push(token_ids *list, int id, char *err, size_t errlen);
void token_ids_free(token_ids *list);
void token_text_free(token_text *text);

/* Chooses the kind by content: a JSON object is a tokenizer.json, anything else is read as a llama2.c
 * tokenizer.bin whose vocabulary size is taken from the file's length. NULL on error, with err filled. */
tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
/* vocab_size 0 reads entries to the end of the file; otherwise exactly that many must be present. */
tokenizer *tokenizer_load_llama2c(const char *path, int vocab_size, char *err, size_t errlen);
tokenizer *tokenizer_load_hf(const char *path, char *err, size_t errlen);
tokenizer *tokenizer_build_bytes(void);
void tokenizer_free(tokenizer *tok);

/* Appends the ids of text[0..len) to out. add_bos/add_eos wrap the text in the tokenizer's BOS/EOS and
 * fail if it has none. Hugging Face tokenizers match added tokens (special or not) in the text, as
 * Hugging Face does by default, and reject text that is not valid UTF-8. Returns 0, or -1 with err. */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool add_bos, bool add_eos,
                     token_ids *out, char *err, size_t errlen);

/* Appends the text of ids[0..n) to out. skip_special drops special tokens (BOS/EOS/PAD, and added tokens
 * marked "special"). Bytes are emitted raw: a byte-fallback or byte-level sequence that is not valid
 * UTF-8 comes out as those bytes, where Hugging Face would print U+FFFD. Returns 0, or -1 with err
 * (an id outside the vocabulary). */
int tokenizer_decode(const tokenizer *tok, const int *ids, size_t n, bool skip_special, token_text *out,
                     char *err, size_t errlen);

int tokenizer_vocab_size(const tokenizer *tok);  /* one more than the largest id */
int tokenizer_bos(const tokenizer *tok);         /* -1 when the tokenizer has none */
int tokenizer_eos(const tokenizer *tok);
int tokenizer_pad(const tokenizer *tok);
const char *tokenizer_kind_name(const tokenizer *tok);  /* "bytes", "llama2c" or "hf-bpe" */

#endif
