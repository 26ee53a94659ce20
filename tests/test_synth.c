/* fedlora synth: byte-for-byte determinism pinned by SHA-256, valid JSON Lines with the right fields,
 * distinct vocabularies per department, completions that follow the stated rules (re-derived here
 * from the prompt text, independently of the generator) and the CLI. */
#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "synth.h"

enum { RECORDS = 300, MAX_WORDS = 4096 };

/* The whole output of synth_write for (source, seed, count), NUL-terminated. */
static char *synth_bytes(synth_source s, uint64_t seed, long count, size_t *len) {
  char *buf = NULL, err[256];
  FILE *f = open_memstream(&buf, len);
  int rc = synth_write(f, s, seed, count, err, sizeof err);
  fclose(f);
  CHECK_MSG(rc == 0, "synth_write: %s", err);
  return buf;
}

static void sha256_hex(const char *data, size_t len, char hex[65]) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
}

/* Golden digests of 50 records under seed 7: any change to the generator's output shows here. */
static void check_digests(void) {
  static const char *const golden[SYNTH_NUM_SOURCES] = {
      "e9a029b03c5d8e3b98cd4b924b20762578b379efbd3f93367862d00e6ad2f260",
      "3b89a5eccbddcc5475be1e0957e63bbbc173326d8c6c27f74cfcc87d992687ab",
      "3a98bf6e9c4d994eca6ad5ae09d53e4ee6baae91e38f500525320b194ef5d1ef",
      "74d5be9238480fe270bdd77c543462a27d79a0fb1fa5f13c526869afbd72a78c"};
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++) {
    size_t a_len, b_len, c_len, p_len;
    char *a = synth_bytes(s, 7, 50, &a_len), *b = synth_bytes(s, 7, 50, &b_len);
    char *c = synth_bytes(s, 8, 50, &c_len), *prefix = synth_bytes(s, 7, 20, &p_len);
    char hex[65];
    sha256_hex(a, a_len, hex);
    printf("%s: %zu bytes, sha256 %s\n", synth_source_name(s), a_len, hex);
    CHECK_MSG(!strcmp(hex, golden[s]), "%s digest %s, expected %s", synth_source_name(s), hex, golden[s]);
    CHECK(a_len == b_len && !memcmp(a, b, a_len));
    CHECK_MSG(c_len != a_len || memcmp(a, c, a_len), "seeds 7 and 8 gave the same %s bytes", synth_source_name(s));
    CHECK_MSG(p_len < a_len && !memcmp(a, prefix, p_len), "the first 20 %s records differ from a 20-record run",
              synth_source_name(s));
    free(a), free(b), free(c), free(prefix);
  }
}

typedef struct {
  char *word[MAX_WORDS];
  int n;
} word_set;

static int word_set_has(const word_set *w, const char *word) {
  for (int i = 0; i < w->n; i++)
    if (!strcmp(w->word[i], word)) return 1;
  return 0;
}

static void word_set_add_text(word_set *w, const char *text) {
  char word[64];
  size_t len = 0;
  for (const char *p = text;; p++) {
    if (*p && (isalnum((unsigned char)*p) || *p == '-') && len + 1 < sizeof word) {
      word[len++] = *p;
      continue;
    }
    word[len] = '\0';
    if (len && !isdigit((unsigned char)word[0]) && !word_set_has(w, word) && w->n < MAX_WORDS)
      w->word[w->n++] = strdup(word);
    len = 0;
    if (!*p) break;
  }
}

static void word_set_free(word_set *w) {
  for (int i = 0; i < w->n; i++) free(w->word[i]);
}

static double jaccard(const word_set *a, const word_set *b) {
  int both = 0;
  for (int i = 0; i < a->n; i++) both += word_set_has(b, a->word[i]);
  return (double)both / (a->n + b->n - both);
}

/* The number after `key` in text, read as tenths when it has one decimal ("4.1" -> 41); -1 if absent. */
static int number_after(const char *text, const char *key) {
  const char *p = strstr(text, key);
  if (!p) return -1;
  p += strlen(key);
  int whole = atoi(p);
  while (isdigit((unsigned char)*p)) p++;
  return *p == '.' && isdigit((unsigned char)p[1]) ? whole * 10 + (p[1] - '0') : whole;
}

/* number_after for the first of the NULL-terminated keys that occurs in text (templates differ). */
static int number_after_any(const char *text, const char *const *keys) {
  for (; *keys; keys++)
    if (strstr(text, *keys)) return number_after(text, *keys);
  return -1;
}

/* Re-derives one rule per department from the prompt and checks the completion states it. */
static void check_rule(synth_source s, const char *prompt, const char *completion, long i) {
  char want[64];
  if (s == SYNTH_CARDIOLOGY) {
    const char *bp = strstr(prompt, "BP ") ? strstr(prompt, "BP ") + 3 : strstr(prompt, "pressure ") + 9;
    int sys = atoi(bp), dia = atoi(strchr(bp, '/') + 1);
    const char *cls = sys > 180 || dia > 120   ? "hypertensive crisis"
                      : sys >= 140 || dia >= 90 ? "stage 2 hypertension"
                      : sys >= 130 || dia >= 80 ? "stage 1 hypertension"
                      : sys >= 120              ? "elevated"
                                                : "normal";
    snprintf(want, sizeof want, " BP: %s.", cls);
  } else if (s == SYNTH_ONCOLOGY) {
    /* "Size 28 mm", "tumour 2.8 cm" and "Imaging: 2.8 cm" all read as 28 */
    int mm = number_after_any(prompt, (const char *[]){"Size ", "tumour ", "Imaging: ", NULL});
    int pos = number_after_any(prompt, (const char *[]){"Nodes ", "Pathology: ", "cm, ", NULL});
    int t = mm <= 20 ? 1 : mm <= 50 ? 2 : 3, n = pos == 0 ? 0 : pos <= 3 ? 1 : pos <= 9 ? 2 : 3;
    int m = !strstr(prompt, "no distant metastases") && !strstr(prompt, "Metastases: none");
    snprintf(want, sizeof want, " T%d N%d M%d, stage ", t, n, m);
  } else {
    int temp = number_after_any(prompt, (const char *[]){"Temp ", "temperature ", "T ", NULL});
    snprintf(want, sizeof want, " Fever: %s.", temp >= 390 ? "high" : temp >= 380 ? "yes" : "none");
  }
  CHECK_MSG(!strncmp(completion, want, strlen(want)), "%s record %ld: completion \"%s\" should start \"%s\" "
            "(prompt \"%s\")", synth_source_name(s), i, completion, want, prompt);
}

/* Every line parses, has exactly the expected string fields, and the rule holds; collects the words. */
static void check_records(synth_source s, word_set *words, int *quotes, int *degrees) {
  size_t len;
  char *all = synth_bytes(s, 11, RECORDS, &len), *save = NULL;
  long i = 0;
  for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
    json_error_t jerr;
    json_t *obj = json_loads(line, 0, &jerr);
    CHECK_MSG(obj != NULL, "%s line %ld is not JSON: %s", synth_source_name(s), i + 1, jerr.text);
    if (!obj) continue;
    if (s == SYNTH_GENERIC) {
      const char *text = json_string_value(json_object_get(obj, "text"));
      CHECK_MSG(text && json_object_size(obj) == 1, "generic line %ld: want exactly {\"text\"}", i + 1);
      if (text) word_set_add_text(words, text);
    } else {
      const char *prompt = json_string_value(json_object_get(obj, "prompt"));
      const char *completion = json_string_value(json_object_get(obj, "completion"));
      CHECK_MSG(prompt && completion && json_object_size(obj) == 2, "%s line %ld: want exactly prompt and completion",
                synth_source_name(s), i + 1);
      if (prompt && completion) {
        size_t pl = strlen(prompt), cl = strlen(completion);
        const char *cue = s == SYNTH_ONCOLOGY ? " Summary:" : " Assessment:";
        CHECK(pl > strlen(cue) && !strcmp(prompt + pl - strlen(cue), cue));
        CHECK(cl > 2 && completion[0] == ' ' && completion[1] != ' ' && completion[cl - 1] == '.');
        check_rule(s, prompt, completion, i);
        word_set_add_text(words, prompt);
        word_set_add_text(words, completion);
        *quotes += strchr(prompt, '"') != NULL;
        *degrees += strstr(prompt, "\u00b0C") != NULL;
      }
    }
    json_decref(obj);
  }
  CHECK_EQ_INT(i, RECORDS);
  free(all);
}

static void check_vocabularies(void) {
  static const char *const markers[SYNTH_NUM_SOURCES][4] = {
      {"mmHg", "LDL", "ramipril", "atorvastatin"},
      {"ECOG", "HER2", "MDT", "lobectomy"},
      {"paracetamol", "triage", "amoxicillin", "bronchiolitis"},
      {"Once", "kite", "pancakes", "train"},
  };
  word_set words[SYNTH_NUM_SOURCES] = {0};
  int quotes = 0, degrees = 0;
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++) check_records(s, &words[s], &quotes, &degrees);
  CHECK_MSG(quotes > 0 && degrees > 0, "paediatric prompts should quote parents (%d) and use \u00b0C (%d)", quotes,
            degrees);
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++) {
    printf("%s: %d distinct words\n", synth_source_name(s), words[s].n);
    CHECK_MSG(words[s].n >= 60, "%s has only %d distinct words", synth_source_name(s), words[s].n);
    for (int o = 0; o < SYNTH_NUM_SOURCES; o++)
      for (int k = 0; k < 4; k++)
        CHECK_MSG(word_set_has(&words[o], markers[s][k]) == (o == s), "\"%s\" (%s) %s in %s", markers[s][k],
                  synth_source_name(s), o == s ? "missing" : "found", synth_source_name(o));
    for (int o = s + 1; o < SYNTH_NUM_SOURCES; o++) {
      double j = jaccard(&words[s], &words[o]);
      printf("  vocabulary overlap %s/%s: Jaccard %.3f\n", synth_source_name(s), synth_source_name(o), j);
      CHECK_MSG(j < 0.3, "%s and %s share too much vocabulary (Jaccard %.3f)", synth_source_name(s),
                synth_source_name(o), j);
    }
  }
  static const char *const clinical[] = {"patient", "Patient", "mg", "Assessment", "Plan", "stage"};
  for (size_t k = 0; k < sizeof clinical / sizeof *clinical; k++)
    CHECK_MSG(!word_set_has(&words[SYNTH_GENERIC], clinical[k]), "generic text contains \"%s\"", clinical[k]);
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++) word_set_free(&words[s]);
}

static int run(const char *cmd) {
  int status = system(cmd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The CLI writes exactly synth_write's bytes, and rejects bad arguments with exit code 2. */
static void check_cli(const char *dir) {
  const char *bin = harness_build("fedlora");
  char cmd[8192], path[4096];
  snprintf(path, sizeof path, "%s/onc.jsonl", dir);
  snprintf(cmd, sizeof cmd, "%s synth --site oncology --records 40 --seed 3 --out %s", bin, path);
  CHECK_EQ_INT(run(cmd), 0);
  size_t len;
  char *want = synth_bytes(SYNTH_ONCOLOGY, 3, 40, &len);
  FILE *f = fopen(path, "rb");
  char *got = calloc(1, len + 2);
  size_t n = f ? fread(got, 1, len + 1, f) : 0;
  if (f) fclose(f);
  CHECK_MSG(n == len && !memcmp(got, want, len), "CLI output (%zu bytes) differs from synth_write (%zu bytes)", n, len);
  free(want), free(got);
  unlink(path);
  static const char *const bad[] = {
      "synth --site dermatology --records 1 --seed 1 --out -",
      "synth --kind generic --site oncology --records 1 --seed 1 --out -",
      "synth --site oncology --records -1 --seed 1 --out -",
      "synth --site oncology --records 1 --out -",
      "synth --kind poems --records 1 --seed 1 --out -",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", bin, bad[i]);
    CHECK_MSG(run(cmd) == 2, "`fedlora %s` should exit 2", bad[i]);
  }
}

int main(void) {
  CHECK_EQ_INT(synth_source_parse("pediatrics"), SYNTH_PAEDIATRICS);
  CHECK_EQ_INT(synth_source_parse("radiology"), -1);
  check_digests();
  check_vocabularies();
  const char *dir = harness_tmpdir();
  check_cli(dir);
  rmdir(dir);
  return harness_finish();
}
