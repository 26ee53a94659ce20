/* Hugging Face's Metaspace pre-tokenizer and decoder.
 *
 * 1. The shipped llama2 tokenizer.json rewritten into the newer export form (normalizer null, Metaspace
 *    pre-tokenizer with prepend_scheme "first" and split false, Metaspace decoder) reproduces the reference
 *    ids of every vector. The one place the two forms differ is text starting with a space: Prepend adds
 *    "▁" unconditionally, Metaspace only when the text does not already start with one, so those vectors
 *    are checked against what Hugging Face's rule gives, worked out by hand.
 * 2. A tiny vocabulary in which a token ("a▁") spans a word boundary, so that split, each prepend_scheme,
 *    the legacy add_prefix_space and the section after an added token each change the ids; the expected
 *    ids are worked out by hand in the comments. */
#include <jansson.h>
#include <stdlib.h>

#include "harness.h"
#include "tokenizer.h"

#define SP "\xe2\x96\x81" /* U+2581, the replacement */

static void check_ids(const tokenizer *tok, const char *what, const char *text, const int *want, size_t n) {
  char err[512] = "";
  token_ids got = {0};
  int rc = tokenizer_encode(tok, text, strlen(text), false, false, &got, err, sizeof err);
  CHECK_MSG(rc == 0, "%s: encode \"%s\": %s", what, text, err);
  bool same = got.len == n;
  for (size_t k = 0; same && k < n; k++) same = got.ids[k] == want[k];
  if (!same) {
    fprintf(stderr, "%s: \"%s\"\n  got :", what, text);
    for (size_t k = 0; k < got.len; k++) fprintf(stderr, " %d", got.ids[k]);
    fprintf(stderr, "\n  want:");
    for (size_t k = 0; k < n; k++) fprintf(stderr, " %d", want[k]);
    fprintf(stderr, "\n");
  }
  CHECK_MSG(same, "%s: ids of \"%s\" differ", what, text);
  token_ids_free(&got);
}

static void check_text(const tokenizer *tok, const char *what, const int *ids, size_t n, bool skip_special,
                       const char *want) {
  char err[512] = "";
  token_text got = {0};
  int rc = tokenizer_decode(tok, ids, n, skip_special, &got, err, sizeof err);
  CHECK_MSG(rc == 0 && got.len == strlen(want) && !memcmp(got.data, want, got.len),
            "%s: decoded \"%s\", want \"%s\" (%s)", what, got.data ? got.data : "", want, rc ? err : "");
  token_text_free(&got);
}

#define IDS(...) (const int[]){__VA_ARGS__}, sizeof((const int[]){__VA_ARGS__}) / sizeof(int)

/* ---- 1. llama2 in the Metaspace form ---- */

static json_t *metaspace_node(const char *scheme, bool split) {
  return json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", SP, "prepend_scheme", scheme, "split",
                   split);
}

/* Writes the llama2 tokenizer.json with its normalizer and decoder replaced by Metaspace ones. ByteFallback and
 * Fuse stay after the Metaspace decoder so that <0xXX> tokens still decode to bytes. */
static const char *write_llama2_metaspace(const char *dir, const char *scheme) {
  json_error_t jerr;
  json_t *root = json_load_file(harness_shared("tokenizers/llama2/tokenizer.json"), 0, &jerr);
  CHECK_MSG(root != NULL, "llama2 tokenizer.json: %s", jerr.text);
  if (!root) return NULL;
  json_object_set_new(root, "normalizer", json_null());
  json_object_set_new(root, "pre_tokenizer", metaspace_node(scheme, false));
  json_object_set_new(root, "decoder", json_pack("{s:s, s:[o, {s:s}, {s:s}]}", "type", "Sequence", "decoders",
                                                 metaspace_node(scheme, false), "type", "ByteFallback", "type",
                                                 "Fuse"));
  static char path[512];
  snprintf(path, sizeof path, "%s/llama2-metaspace-%s.json", dir, scheme);
  CHECK_MSG(json_dump_file(root, path, 0) == 0, "writing %s", path);
  json_decref(root);
  return path;
}

static void check_llama2(const char *dir) {
  char err[512] = "";
  const char *path = write_llama2_metaspace(dir, "first");
  tokenizer *tok = path ? tokenizer_load(path, err, sizeof err) : NULL;
  CHECK_MSG(tok != NULL, "llama2 Metaspace form: %s", err);
  if (!tok) return;
  json_error_t jerr;
  json_t *vectors = json_load_file(harness_shared("tokenizers/llama2/vectors.json"), 0, &jerr);
  CHECK_MSG(json_is_array(vectors) && json_array_size(vectors) > 0, "llama2 vectors.json: %s", jerr.text);
  size_t i, same_form = 0, leading_space = 0;
  json_t *v;
  json_array_foreach(vectors, i, v) {
    const char *text = json_string_value(json_object_get(v, "text"));
    json_t *want_json = json_object_get(v, "ids");
    if (text[0] == ' ') {
      leading_space++;
      continue;
    }
    size_t n = json_array_size(want_json);
    int *want = malloc((n ? n : 1) * sizeof *want);
    for (size_t k = 0; k < n; k++) want[k] = (int)json_integer_value(json_array_get(want_json, k));
    check_ids(tok, "llama2 Metaspace first", text, want, n);
    check_text(tok, "llama2 Metaspace first", want, n, false, text);
    free(want);
    same_form++;
  }
  /* " leading space": reference [28705 "▁", 5374 "▁leading", 2764 "▁space"] comes from "▁▁leading▁space";
   * Metaspace sees "▁leading▁space" already starting with "▁" and adds nothing. The decoder then drops the
   * first token's "▁", so the leading space does not come back (Hugging Face does the same). */
  check_ids(tok, "llama2 Metaspace first", " leading space", IDS(5374, 2764));
  check_text(tok, "llama2 Metaspace first", IDS(5374, 2764), false, "leading space");
  /* "   ": reference [260 "▁▁▁▁"]; Metaspace gives "▁▁▁", one token 2287, whose "▁"s all vanish as the first
   * token's do in Hugging Face's decoder. */
  check_ids(tok, "llama2 Metaspace first", "   ", IDS(2287));
  check_text(tok, "llama2 Metaspace first", IDS(2287), false, "");
  CHECK_EQ_INT(leading_space, 2);
  printf("llama2 Metaspace form: %zu vectors identical to the reference, %zu leading-space ones by hand\n", same_form,
         leading_space);

  /* "first" prefixes only the text at offset 0: "world" after </s> (id 2) gets no "▁", so it is 9471 "world",
   * not 1526 "▁world"; text that begins with an added token gets no "▁" at all (16230 "Hello"). */
  check_ids(tok, "llama2 first, added token in the middle", "Hello</s>world", IDS(22557, 2, 9471));
  check_ids(tok, "llama2 first, added token at the start", "<s>Hello", IDS(1, 16230));
  /* The first token decoded is "<s>", so "▁Hello" keeps its space; skipping <s> makes "▁Hello" the first. */
  check_text(tok, "llama2 decode after <s>", IDS(1, 22557, 1526), false, "<s> Hello world");
  check_text(tok, "llama2 decode skipping <s>", IDS(1, 22557, 1526), true, "Hello world");
  json_decref(vectors);
  tokenizer_free(tok);

  path = write_llama2_metaspace(dir, "always");
  tok = path ? tokenizer_load(path, err, sizeof err) : NULL;
  CHECK_MSG(tok != NULL, "llama2 Metaspace always: %s", err);
  if (tok) check_ids(tok, "llama2 always, added token in the middle", "Hello</s>world", IDS(22557, 2, 1526));
  tokenizer_free(tok);
}

/* ---- 2. a vocabulary where the prefix and the split show ---- */

/* <unk> 0, ▁ 1, a 2, b 3, ▁a 4, ▁b 5, a▁ 6, ▁▁ 7; added <sep> 8 (special). Merges by rank: "a ▁" (0), "▁ a" (1),
 * "▁ b" (2), "▁ ▁" (3). Without split, "▁a▁b" merges a+▁ first and ends as ▁ a▁ b; with split the pieces are
 * "▁a" and "▁b". */
static const char *write_tiny(const char *dir, const char *norm, const char *pre, const char *dec) {
  static char path[512];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) return NULL;
  fprintf(f,
          "{\"added_tokens\":[{\"id\":8,\"content\":\"<sep>\",\"special\":true}],\"normalizer\":%s,"
          "\"pre_tokenizer\":%s,\"decoder\":%s,\"post_processor\":null,"
          "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,\"" SP "\":1,\"a\":2,\"b\":3,"
          "\"" SP "a\":4,\"" SP "b\":5,\"a" SP "\":6,\"" SP SP "\":7},"
          "\"merges\":[\"a " SP "\",\"" SP " a\",\"" SP " b\",\"" SP " " SP "\"]}}",
          norm, pre, dec);
  fclose(f);
  return path;
}

static tokenizer *load_tiny(const char *dir, const char *norm, const char *pre, const char *dec) {
  char err[512] = "";
  const char *path = write_tiny(dir, norm, pre, dec);
  tokenizer *tok = path ? tokenizer_load(path, err, sizeof err) : NULL;
  CHECK_MSG(tok != NULL, "pre_tokenizer %s, decoder %s: %s", pre, dec, err);
  return tok;
}

static void check_rejected(const char *dir, const char *pre, const char *dec, const char *named) {
  char err[512] = "";
  const char *path = write_tiny(dir, "null", pre, dec);
  tokenizer *tok = path ? tokenizer_load(path, err, sizeof err) : NULL;
  CHECK_MSG(tok == NULL, "pre_tokenizer %s, decoder %s loaded", pre, dec);
  tokenizer_free(tok);
  CHECK_STR_CONTAINS(err, named);
}

#define META(options) "{\"type\":\"Metaspace\",\"replacement\":\"" SP "\"" options "}"
/* A literal Split on pattern, then Metaspace "first". */
#define SPLIT_THEN_FIRST(pattern)                                                                              \
  "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\"" pattern "\"},"     \
  "\"behavior\":\"Isolated\",\"invert\":false}," META(",\"prepend_scheme\":\"first\"") "]}"

static void check_tiny_encode(const char *dir) {
  static const struct {
    const char *options, *text;
    int want[6];
    size_t n;
  } cases[] = {
      /* "a b" -> "▁a▁b": split gives ▁a ▁b; whole, a+▁ merges first: ▁ a▁ b. */
      {",\"prepend_scheme\":\"always\",\"split\":true", "a b", {4, 5}, 2},
      {",\"prepend_scheme\":\"always\",\"split\":false", "a b", {1, 6, 3}, 3},
      /* "never": "a▁b" -> pieces a, ▁b; whole: a▁ b. */
      {",\"prepend_scheme\":\"never\",\"split\":true", "a b", {2, 5}, 2},
      {",\"prepend_scheme\":\"never\",\"split\":false", "a b", {6, 3}, 2},
      /* split absent means true; prepend_scheme absent means always. */
      {"", "a b", {4, 5}, 2},
      /* Legacy add_prefix_space: true is always, false is never. */
      {",\"add_prefix_space\":true", "a b", {4, 5}, 2},
      {",\"add_prefix_space\":false", "a b", {2, 5}, 2},
      {",\"add_prefix_space\":true,\"prepend_scheme\":\"first\"", "a<sep>a b", {4, 8, 2, 5}, 4},
      /* "first": the section after <sep> is not prefixed (a, ▁b); "always" prefixes it (▁a, ▁b). */
      {",\"prepend_scheme\":\"first\",\"split\":true", "a<sep>a b", {4, 8, 2, 5}, 4},
      {",\"prepend_scheme\":\"always\",\"split\":true", "a<sep>a b", {4, 8, 4, 5}, 4},
      /* Text starting with an added token has no section at offset 0, so nothing is prefixed. */
      {",\"prepend_scheme\":\"first\",\"split\":true", "<sep>a", {8, 2}, 2},
      /* Text that already starts with a space (or ▁) gets no second ▁. Two spaces: split cuts before each ▁. */
      {",\"prepend_scheme\":\"always\",\"split\":true", " a", {4}, 1},
      {",\"prepend_scheme\":\"always\",\"split\":true", SP "a", {4}, 1},
      {",\"prepend_scheme\":\"always\",\"split\":true", "a  b", {4, 1, 5}, 3},
      /* Without split "▁a▁▁b": a+▁ (rank 0) first, then ▁+b (rank 2); ▁+a is gone and ▁+▁ no longer adjacent. */
      {",\"prepend_scheme\":\"always\",\"split\":false", "a  b", {1, 6, 5}, 3},
      /* Text ending in a space: the trailing ▁ is a piece of its own. */
      {",\"prepend_scheme\":\"never\",\"split\":true", "b ", {3, 1}, 2},
      {",\"prepend_scheme\":\"first\",\"split\":true", "", {0}, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char pre[256], what[320];
    snprintf(pre, sizeof pre, META("%s"), cases[i].options);
    snprintf(what, sizeof what, "Metaspace{%s}", cases[i].options);
    tokenizer *tok = load_tiny(dir, "null", pre, "null");
    if (!tok) continue;
    check_ids(tok, what, cases[i].text, cases[i].want, cases[i].n);
    tokenizer_free(tok);
  }
  /* Inside a Sequence, after a literal Split on "b": pieces "a", "b", " a"; only "a" is at offset 0, so "first"
   * prefixes it alone: ▁a | b | ▁a (the last already starts with the replacement once its space is). */
  tokenizer *tok = load_tiny(dir, "null", SPLIT_THEN_FIRST("b"), "null");
  if (tok) check_ids(tok, "Sequence[Split, Metaspace first]", "ab a", IDS(4, 3, 4));
  tokenizer_free(tok);

  /* Hugging Face's offset of a segment is where it starts in the input, whatever the normalizer did, but a
   * piece cut from it starts where its first character came from. A normalizer deleting the leading "x" of
   * "xa b" therefore leaves Metaspace alone prefixing "a b" (▁a ▁b), while after a Split (matching nothing,
   * still a cut) the piece starts at offset 1 and gets no prefix (a ▁b). */
  static const char drop_x[] = "{\"type\":\"Replace\",\"pattern\":{\"String\":\"x\"},\"content\":\"\"}";
  tok = load_tiny(dir, drop_x, META(",\"prepend_scheme\":\"first\""), "null");
  if (tok) check_ids(tok, "Replace x->\"\", Metaspace first", "xa b", IDS(4, 5));
  tokenizer_free(tok);
  tok = load_tiny(dir, drop_x, SPLIT_THEN_FIRST("q"), "null");
  if (tok) {
    check_ids(tok, "Replace x->\"\", Sequence[Split, Metaspace first]", "xa b", IDS(2, 5));
    check_ids(tok, "Replace x->\"\", Sequence[Split, Metaspace first]", "ax b", IDS(4, 5));
  }
  tokenizer_free(tok);
}

static void check_tiny_decode(const char *dir) {
  tokenizer *tok = load_tiny(dir, "null", META(""), META(",\"prepend_scheme\":\"first\",\"split\":false"));
  if (tok) {
    check_text(tok, "decode first", IDS(4, 5), false, "a b");
    check_text(tok, "decode first", IDS(1, 6, 3), false, "a b");
    /* Every ▁ of the first token vanishes, not just one: "▁▁" then "▁a" gives " a". */
    check_text(tok, "decode first", IDS(7, 4), false, " a");
    check_text(tok, "decode first", IDS(6, 6), false, "aa ");
    /* The first token is the first one decoded: <sep> when it is kept, ▁a when it is skipped. */
    check_text(tok, "decode first", IDS(8, 4), false, "<sep> a");
    check_text(tok, "decode first", IDS(8, 4), true, "a");
    check_text(tok, "decode first", IDS(8), true, "");
  }
  tokenizer_free(tok);
  tok = load_tiny(dir, "null", META(""), META(",\"prepend_scheme\":\"never\""));
  if (tok) check_text(tok, "decode never", IDS(4, 5), false, " a b");
  tokenizer_free(tok);
  tok = load_tiny(dir, "null", META(""), META(",\"add_prefix_space\":false"));
  if (tok) check_text(tok, "decode add_prefix_space false", IDS(7, 4), false, "   a");
  tokenizer_free(tok);
  tok = load_tiny(dir, "null", META(""), META(",\"add_prefix_space\":true"));
  if (tok) check_text(tok, "decode add_prefix_space true", IDS(4, 5), false, "a b");
  tokenizer_free(tok);
  /* In a Sequence the later steps see Metaspace's output: Strip then removes one more leading space. */
  tok = load_tiny(dir, "null", META(""),
                  "{\"type\":\"Sequence\",\"decoders\":[" META(",\"prepend_scheme\":\"never\"") ",{\"type\":\"Fuse\"},"
                  "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}");
  if (tok) check_text(tok, "decode Sequence[Metaspace never, Fuse, Strip]", IDS(7, 4), false, "  a");
  tokenizer_free(tok);
}

static void check_tiny_rejected(const char *dir) {
  check_rejected(dir, META(",\"prepend_scheme\":\"sometimes\""), "null", "prepend_scheme must be");
  check_rejected(dir, META(",\"prepend_scheme\":true"), "null", "prepend_scheme must be a string");
  check_rejected(dir, META(",\"add_prefix_space\":false,\"prepend_scheme\":\"always\""), "null",
                 "add_prefix_space false contradicts prepend_scheme \"always\"");
  check_rejected(dir, META(",\"split\":\"yes\""), "null", "split must be true or false");
  check_rejected(dir, META(",\"add_prefix_space\":1"), "null", "add_prefix_space must be true or false");
  check_rejected(dir, "{\"type\":\"Metaspace\",\"replacement\":\"" SP SP "\"}", "null",
                 "replacement \"" SP SP "\" must be exactly one character");
  check_rejected(dir, "{\"type\":\"Metaspace\"}", "null", "field \"replacement\" must be a string");
  check_rejected(dir, "null", META(",\"prepend_scheme\":\"Always\""), "decoder: Metaspace prepend_scheme must be");
  check_rejected(dir, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"}," META("") "]}", "null",
                 "Metaspace after a ByteLevel pre-tokenizer is not supported");
}

int main(void) {
  const char *dir = harness_tmpdir();
  check_llama2(dir);
  check_tiny_encode(dir);
  check_tiny_decode(dir);
  check_tiny_rejected(dir);
  return harness_finish();
}
