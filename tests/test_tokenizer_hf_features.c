/* Hugging Face tokenizer.json features on a tiny hand-made file whose encodings are worked out by hand
 * (added tokens matched first, literal Split, merge ranks, fused unk, pair-form merges), and rejection,
 * with the feature named, of every option the loader does not implement. */
#include <stdlib.h>

#include "harness.h"
#include "tokenizer.h"

/* Vocabulary: <unk> 0, a 1, b 2, ab 3, " " 4, aab 5; added <eos> 6 (special), <x> 7 (not special).
 * The @...@ markers are replaced to make the variants. */
static const char base[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":[{\"id\":6,\"content\":\"<eos>\",\"single_word\":false,\"lstrip\":@LSTRIP@,\"rstrip\":false,"
    "\"normalized\":false,\"special\":true},{\"id\":7,\"content\":\"<x>\",\"special\":false}],"
    "\"normalizer\":@NORM@,"
    "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"@BEHAVIOR@\",\"invert\":false},"
    "\"post_processor\":@POST@,\"decoder\":@DEC@,"
    "\"model\":{\"type\":\"@MODEL@\",\"dropout\":null,\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":false,"
    "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\" \":4,\"aab\":5},\"merges\":[\"a b\",[\"a\",\"@MERGE@\"]]}}";

typedef struct {
  const char *marker, *value;
} subst;

static const subst defaults[] = {
    {"@LSTRIP@", "false"}, {"@NORM@", "null"}, {"@BEHAVIOR@", "Isolated"},
    {"@POST@", "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
               "{\"SpecialToken\":{\"id\":\"<eos>\",\"type_id\":0}}]}"},
    {"@DEC@", "{\"type\":\"Fuse\"}"}, {"@MODEL@", "BPE"}, {"@MERGE@", "ab"},
};

/* Writes base with one marker overridden (or none) to dir/tokenizer.json. */
static const char *write_variant(const char *dir, const char *marker, const char *value) {
  static char path[256];
  char text[4096];
  snprintf(text, sizeof text, "%s", base);
  for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
    const char *v = marker && !strcmp(marker, defaults[i].marker) ? value : defaults[i].value;
    char *at = strstr(text, defaults[i].marker);
    char rest[4096];
    snprintf(rest, sizeof rest, "%s", at + strlen(defaults[i].marker));
    snprintf(at, sizeof text - (size_t)(at - text), "%s%s", v, rest);
  }
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

static void check_rejected(const char *dir, const char *marker, const char *value, const char *named) {
  char err[512] = "";
  tokenizer *tok = tokenizer_load(write_variant(dir, marker, value), err, sizeof err);
  CHECK_MSG(tok == NULL, "a tokenizer with %s = %s loaded", marker, value);
  tokenizer_free(tok);
  CHECK_STR_CONTAINS(err, named);
}

int main(void) {
  const char *dir = harness_tmpdir();
  char err[512] = "";
  tokenizer *tok = tokenizer_load(write_variant(dir, NULL, NULL), err, sizeof err);
  CHECK_MSG(tok != NULL, "%s", err);
  if (!tok) return harness_finish();
  /* No tokenizer_config.json: BOS/EOS come from the template (nothing before $A, <eos> after). */
  CHECK_EQ_INT(tokenizer_bos(tok), -1);
  CHECK_EQ_INT(tokenizer_eos(tok), 6);
  CHECK_EQ_INT(tokenizer_vocab_size(tok), 8);

  /* "aab b" | <eos> | "xy" | <x>: the split gives "aab", " ", "b"; "aab" merges a+b (rank 0) then
   * a+ab (rank 1); "xy" is two unknown characters fused into one <unk>. */
  const char text[] = "aab b<eos>xy<x>";
  token_ids ids = {0};
  CHECK_MSG(tokenizer_encode(tok, text, sizeof text - 1, false, true, &ids, err, sizeof err) == 0, "%s", err);
  static const int want[] = {5, 4, 2, 6, 0, 7, 6};
  CHECK_EQ_INT(ids.len, 7);
  for (size_t i = 0; i < ids.len && i < 7; i++) CHECK_EQ_INT(ids.ids[i], want[i]);
  CHECK(tokenizer_encode(tok, "a", 1, true, false, &ids, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "no BOS");
  CHECK(tokenizer_encode(tok, "a\xff", 2, false, false, &ids, err, sizeof err) < 0);
  CHECK_STR_CONTAINS(err, "not valid UTF-8 at byte 1");

  token_text out = {0};
  CHECK(tokenizer_decode(tok, ids.ids, 6, false, &out, err, sizeof err) == 0);
  CHECK_MSG(out.data && !strcmp(out.data, "aab b<eos><unk><x>"), "decoded \"%s\"", out.data);
  out.len = 0;
  /* skip_special drops <eos> but keeps <x>, an added token not marked special. */
  CHECK(tokenizer_decode(tok, ids.ids, 7, true, &out, err, sizeof err) == 0);
  CHECK_MSG(out.data && !strcmp(out.data, "aab b<unk><x>"), "decoded \"%s\"", out.data);
  token_text_free(&out);
  token_ids_free(&ids);
  tokenizer_free(tok);

  /* tokenizer_config.json beside the file decides BOS/EOS/PAD; an object with "content" works too. */
  char config[300];
  snprintf(config, sizeof config, "%s/tokenizer_config.json", dir);
  FILE *f = fopen(config, "w");
  fputs("{\"bos_token\":{\"content\":\"<x>\"},\"eos_token\":null,\"pad_token\":\"<unk>\",\"model_max_length\":"
        "1000000000000000019884624838656}", f);
  fclose(f);
  tok = tokenizer_load(write_variant(dir, NULL, NULL), err, sizeof err);
  CHECK_MSG(tok != NULL, "%s", err);
  if (tok) {
    CHECK_EQ_INT(tokenizer_bos(tok), 7);
    CHECK_EQ_INT(tokenizer_eos(tok), -1);
    CHECK_EQ_INT(tokenizer_pad(tok), 0);
  }
  tokenizer_free(tok);
  remove(config);

  CHECK(tokenizer_load(dir, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "is a directory");
  check_rejected(dir, "@MODEL@", "WordPiece", "model type \"WordPiece\"");
  check_rejected(dir, "@NORM@", "{\"type\":\"Lowercase\"}", "normalizer type \"Lowercase\"");
  check_rejected(dir, "@NORM@", "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Strip\"}]}",
                 "normalizer type \"Strip\"");
  check_rejected(dir, "@NORM@", "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\" \"}", "Regex");
  check_rejected(dir, "@BEHAVIOR@", "Removed", "behavior \"Removed\"");
  check_rejected(dir, "@DEC@", "{\"type\":\"WordPiece\"}", "decoder type \"WordPiece\"");
  check_rejected(dir, "@POST@", "{\"type\":\"RobertaProcessing\"}", "post_processor type \"RobertaProcessing\"");
  check_rejected(dir, "@LSTRIP@", "true", "sets lstrip");
  check_rejected(dir, "@MERGE@", "zz", "\"zz\" is not in the vocabulary");

  /* Found by fuzz_tokenizer_hf: the tables are sized by the largest id, so one id of 385000000 in
   * a file of a few hundred bytes asked for 3 GB. */
  char sparse[300];
  snprintf(sparse, sizeof sparse, "%s/sparse.json", dir);
  f = fopen(sparse, "w");
  fputs("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":385000000},\"merges\":[]}}", f);
  fclose(f);
  CHECK(tokenizer_load(sparse, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "model.vocab[\"b\"] is not an id in 0..1048575");
  return harness_finish();
}
