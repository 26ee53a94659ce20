/* Site datasets: the completion-only loss mask position by position (byte-level tokenizer), every
 * malformed-input error with its file:line:col, --skip-bad-records counts, the content-hashed split
 * (checked against sha256sum, and unchanged by reordering the file), long records split across
 * windows with the token counts adding up, text documents, and ids files as one stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "harness.h"
#include "tokenizer.h"

enum { BOS = 256, EOS = 257, V = 259 };

static const char *dir;

static const char *write_file(const char *name, const char *content, size_t len) {
  static char path[8][512];
  static int next;
  char *p = path[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  fwrite(content, 1, len, f);
  fclose(f);
  return p;
}

static const char *write_text(const char *name, const char *content) { return write_file(name, content, strlen(content)); }

/* The error of reading content as `name`, or "" when it reads. */
static const char *read_error(const char *name, const char *content, data_format format) {
  static char err[1024];
  record_set s;
  err[0] = '\0';
  if (!records_read(&s, write_text(name, content), format, 0, err, sizeof err)) records_free(&s);
  return err;
}

static void check_error(const char *name, const char *content, const char *where_what) {
  char expected[1024];
  snprintf(expected, sizeof expected, "%s/%s:%s", dir, name, where_what);
  const char *got = read_error(name, content, DATA_FORMAT_AUTO);
  CHECK_MSG(!strcmp(got, expected), "error\n  got      '%s'\n  expected '%s'", got, expected);
}

static void test_mask(const tokenizer *tok) {
  char err[1024];
  record_set s;
  const char *path = write_text("mask.jsonl", "{\"prompt\": \"ab\", \"completion\": \"cd\"}\n\n{\"text\": \"xy\"}\n");
  CHECK_MSG(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(s.n, 2);
  CHECK_EQ_INT(s.format, DATA_FORMAT_JSONL);
  dataset d = {0};
  CHECK(dataset_add_records(&d, NULL, &s, 0.0, 0, tok, V, err, sizeof err) == 0);
  /* BOS a b c d EOS | BOS x y EOS: the prompt (and BOS) uncounted, completion + EOS counted;
   * for text everything after BOS */
  const int tokens[] = {BOS, 'a', 'b', 'c', 'd', EOS, BOS, 'x', 'y', EOS};
  const int counted[] = {0, 0, 0, 1, 1, 1, 0, 1, 1, 1};
  CHECK_EQ_INT(d.n, 10);
  CHECK_EQ_INT(d.records, 2);
  CHECK_EQ_INT(d.counted_tokens, 6);
  for (size_t i = 0; i < 10 && i < d.n; i++) {
    CHECK_MSG(d.tokens[i] == tokens[i], "token %zu: %d, expected %d", i, d.tokens[i], tokens[i]);
    CHECK_MSG(d.counted[i] == counted[i], "counted %zu: %d, expected %d", i, d.counted[i], counted[i]);
  }
  /* one window of T = 12: inputs the stream then padding; target t is token t + 1 when counted */
  CHECK(dataset_index(&d, 12, "mask", err, sizeof err) == 0);
  CHECK_EQ_INT(d.n_windows, 1);
  int in[12], tg[12];
  float mk[12];
  CHECK_EQ_INT(dataset_window(&d, 0, in, tg, mk), 6);
  const int want_in[12] = {BOS, 'a', 'b', 'c', 'd', EOS, BOS, 'x', 'y', EOS, 0, 0};
  const int want_tg[12] = {-1, -1, 'c', 'd', EOS, -1, 'x', 'y', EOS, -1, -1, -1};
  for (int t = 0; t < 12; t++) {
    CHECK_MSG(in[t] == want_in[t], "input %d: %d, expected %d", t, in[t], want_in[t]);
    CHECK_MSG(tg[t] == want_tg[t], "target %d: %d, expected %d", t, tg[t], want_tg[t]);
    CHECK_MSG(mk[t] == (want_tg[t] >= 0 ? 1.0f : 0.0f), "mask %d: %g", t, mk[t]);
  }
  dataset_free(&d);
  records_free(&s);
}

static void test_errors(void) {
  /* {"prompt": "a" "completion": "b"}: jansson stops at the end of "completion", byte 27 */
  check_error("bad.jsonl", "{\"text\": \"fine\"}\n{\"prompt\": \"a\" \"completion\": \"b\"}\n",
              "2:27: '}' expected near '\"completion\"'");
  check_error("missing.jsonl", "{\"prompt\": \"a\"}\n", "1:1: missing field \"completion\"");
  check_error("neither.jsonl", "\n\n{\"title\": \"a\"}\n", "3:1: missing field \"text\" (or \"prompt\" and \"completion\")");
  /* the value 5 starts at byte 31 */
  check_error("nonstring.jsonl", "{\"prompt\": \"a\", \"completion\": 5}\n",
              "1:31: field \"completion\" must be a string, got an integer");
  check_error("nonstring2.jsonl", "{\"text\":   [\"a\"]}\n", "1:12: field \"text\" must be a string, got an array");
  check_error("both.jsonl", "{\"text\": \"a\", \"prompt\": \"b\"}\n", "1:1: a record has \"text\" or \"prompt\", not both");
  check_error("array.jsonl", "  [1, 2]\n", "1:3: expected a JSON object, got an array");
  /* {"text": "ab<FF>"}: the bad byte is byte 13 */
  check_error("utf8.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"ab\xff\"}\n", "2:13: invalid UTF-8 (byte 0xff)");
  check_error("utf8.txt", "fine\n\nstill fine\nbad \xc3\x28 here\n", "4:5: invalid UTF-8 (byte 0xc3)");
  check_error("empty.jsonl", "", "1:1: empty file");
  check_error("empty.txt", "", "1:1: empty file");
  check_error("blank.jsonl", "\n  \n\n", "3:1: no records, only blank lines");
  check_error("dup.jsonl", "{\"text\": \"a\", \"text\": \"b\"}\n", "1:20: duplicate object key near '\"text\"'");
  check_error("bad.ids", "1 2 3\n4 x5 6\n", "2:3: 'x5' is not a token id");
  check_error("neg.ids", "1 -2\n", "1:3: '-2' is not a token id");

  /* a line one past the bound: the column is the first byte beyond it */
  size_t big = DATA_MAX_LINE + 5;
  char *text = malloc(big + 1024);
  int head = snprintf(text, 64, "{\"text\": \"ok\"}\n{\"text\": \"");
  memset(text + head, 'a', big);
  memcpy(text + head + big, "\"}\n", 4);
  record_set s;
  char err[1024], expected[1024];
  const char *path = write_file("long.jsonl", text, strlen(text));
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == -1);
  snprintf(expected, sizeof expected, "%s:2:%zu: line is longer than %zu bytes", path, DATA_MAX_LINE + 1, DATA_MAX_LINE);
  CHECK_MSG(!strcmp(err, expected), "got '%s', expected '%s'", err, expected);
  /* a line of exactly the bound is fine */
  size_t fit = DATA_MAX_LINE - 12; /* {"text": "..."} adds 12 bytes */
  head = snprintf(text, 64, "{\"text\": \"");
  memset(text + head, 'b', fit);
  memcpy(text + head + fit, "\"}\n", 4);
  path = write_file("fits.jsonl", text, strlen(text));
  CHECK_MSG(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(s.n, 1);
  CHECK_EQ_INT(s.records[0].body_len, fit);
  records_free(&s);

  /* --skip-bad-records: every kind of bad line is counted, the good ones kept */
  head = snprintf(text, 1024,
                  "{\"prompt\": \"p1\", \"completion\": \"c1\"}\n"
                  "{\"prompt\": \"a\" \"completion\": \"b\"}\n"
                  "{\"prompt\": \"a\"}\n"
                  "{\"prompt\": \"a\", \"completion\": 5}\n"
                  "{\"text\": \"ab\xff\"}\n"
                  "[1]\n"
                  "{\"text\": \"t2\"}\n"
                  "{\"text\": \"");
  memset(text + head, 'a', big);
  const char *tail = "\"}\n{\"text\": \"t3\"}\n";
  memcpy(text + head + big, tail, strlen(tail) + 1);
  path = write_file("skip.jsonl", text, strlen(text));
  CHECK_MSG(records_read(&s, path, DATA_FORMAT_AUTO, 1, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(s.n, 3);
  CHECK_EQ_INT(s.skipped, 6);
  CHECK(s.n == 3 && !strcmp(record_body(&s, &s.records[2]), "t3") && s.records[2].line == 9);
  CHECK(s.n == 3 && !strcmp(record_prompt(&s, &s.records[0]), "p1") && s.records[0].kind == RECORD_PROMPT);
  records_free(&s);
  path = write_text("allbad.jsonl", "{\"prompt\": 1}\n[]\n");
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 1, err, sizeof err) == -1);
  CHECK_STR_CONTAINS(err, "no usable records (2 bad records skipped)");
  /* text: a bad line spoils its document, counted once */
  path = write_text("skip.txt", "good one\n\nbad \xff\nand \xfe again\n\ngood two\n");
  CHECK_MSG(records_read(&s, path, DATA_FORMAT_AUTO, 1, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(s.n, 2);
  CHECK_EQ_INT(s.skipped, 1);
  CHECK(s.n == 2 && !strcmp(record_body(&s, &s.records[1]), "good two") && s.records[1].line == 6);
  records_free(&s);
  path = write_text("skip.ids", "1 2\n3 q 4\n5\n");
  CHECK_MSG(records_read(&s, path, DATA_FORMAT_AUTO, 1, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(s.n, 2);
  CHECK_EQ_INT(s.skipped, 1);
  CHECK_EQ_INT(s.n_ids, 3);
  records_free(&s);
  free(text);
}

static void test_formats(const tokenizer *tok) {
  char err[1024];
  record_set s;
  /* documents separated by blank lines (whitespace-only too), CRLF tolerated */
  const char *path = write_text("docs.txt", "one\r\ntwo\n \n\n\nthree\n");
  CHECK_MSG(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(s.format, DATA_FORMAT_TEXT);
  CHECK_EQ_INT(s.n, 2);
  CHECK(s.n == 2 && !strcmp(record_body(&s, &s.records[0]), "one\ntwo") && s.records[0].body_len == 7);
  CHECK(s.n == 2 && !strcmp(record_body(&s, &s.records[1]), "three") && s.records[1].line == 6);
  records_free(&s);
  /* no known extension: the first line decides */
  path = write_text("guess1.data", "\n  {\"text\": \"a\"}\n");
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0 && s.format == DATA_FORMAT_JSONL);
  records_free(&s);
  path = write_text("guess2.data", "\n12 7\n9\n");
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0 && s.format == DATA_FORMAT_IDS);
  records_free(&s);
  path = write_text("guess3.data", "12 apples\n");
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0 && s.format == DATA_FORMAT_TEXT);
  records_free(&s);
  /* --format overrides the extension */
  path = write_text("forced.txt", "{\"text\": \"a\"}\n");
  CHECK(records_read(&s, path, DATA_FORMAT_JSONL, 0, err, sizeof err) == 0 && s.records[0].kind == RECORD_TEXT);
  records_free(&s);
  CHECK_EQ_INT(data_format_parse("ids"), DATA_FORMAT_IDS);
  CHECK_EQ_INT(data_format_parse("csv"), -1);

  /* ids: one stream of the ids as written, every target counted; windows as the old .ids rule
   * (stride T, the last partial one kept with >= 2 tokens): 5 tokens, T = 2 -> 2 windows */
  path = write_text("stream.ids", "1 2 3\n\n4 5\n");
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  CHECK_EQ_INT(s.n, 2);
  dataset d = {0};
  CHECK(dataset_add_records(&d, NULL, &s, 0.0, 0, tok, V, err, sizeof err) == 0);
  CHECK_EQ_INT(d.n, 5);
  CHECK_EQ_INT(d.counted_tokens, 5);
  CHECK(dataset_index(&d, 2, "stream", err, sizeof err) == 0);
  CHECK_EQ_INT(d.n_windows, 2);
  int in[2], tg[2];
  float mk[2];
  CHECK_EQ_INT(dataset_window(&d, 1, in, tg, mk), 2);
  CHECK(in[0] == 3 && in[1] == 4 && tg[0] == 4 && tg[1] == 5);
  dataset_free(&d);
  records_free(&s);
  path = write_text("vocab.ids", "1 2\n3 259\n");
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  CHECK(dataset_add_records(&d, NULL, &s, 0.0, 0, tok, V, err, sizeof err) == -1);
  char expected[1024];
  snprintf(expected, sizeof expected, "%s:2: token id 259 is outside the model's vocabulary [0, 259)", path);
  CHECK_MSG(!strcmp(err, expected), "got '%s'", err);
  dataset_free(&d);
  records_free(&s);
}

/* Long records continue in the next window; windows inside a prompt are left out. */
static void test_long_records(const tokenizer *tok) {
  char err[1024], line[256];
  record_set s;
  char body[51];
  for (int i = 0; i < 50; i++) body[i] = (char)('a' + i % 26);
  body[50] = '\0';
  snprintf(line, sizeof line, "{\"text\": \"%s\"}\n", body);
  CHECK(records_read(&s, write_text("long.jsonl", line), DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  dataset d = {0};
  CHECK(dataset_add_records(&d, NULL, &s, 0.0, 0, tok, V, err, sizeof err) == 0);
  CHECK_EQ_INT(d.n, 52);             /* BOS + 50 + EOS */
  CHECK_EQ_INT(d.counted_tokens, 51);
  CHECK(dataset_index(&d, 8, "long", err, sizeof err) == 0);
  CHECK_EQ_INT(d.n_windows, 7);      /* targets 1..51 in windows of 8 */
  int in[8], tg[8], next = 1;
  float mk[8];
  long total = 0;
  for (size_t w = 0; w < d.n_windows; w++) {
    total += dataset_window(&d, w, in, tg, mk);
    for (int t = 0; t < 8; t++)
      if (mk[t] > 0.0f) {
        CHECK_MSG(tg[t] == d.tokens[next], "window %zu target %d: %d, expected stream token %d", w, t, tg[t], next);
        next++;
      }
  }
  CHECK_EQ_INT(total, 51);
  CHECK_EQ_INT(next, 52);
  dataset_free(&d);
  records_free(&s);

  /* prompt of 30, completion of 3: tokens BOS p*30 c*3 EOS = 35, counted 31..34; with T = 8
   * windows 0-2 (targets 1..24) count nothing and are left out, windows 3 and 4 remain */
  snprintf(line, sizeof line, "{\"prompt\": \"%.30s\", \"completion\": \"xyz\"}\n", body);
  CHECK(records_read(&s, write_text("prompt.jsonl", line), DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  CHECK(dataset_add_records(&d, NULL, &s, 0.0, 0, tok, V, err, sizeof err) == 0);
  CHECK_EQ_INT(d.n, 35);
  CHECK(dataset_index(&d, 8, "prompt", err, sizeof err) == 0);
  CHECK_EQ_INT(d.n_windows, 2);
  CHECK(d.n_windows == 2 && d.windows[0] == 3 && d.windows[1] == 4);
  CHECK_EQ_INT(dataset_window(&d, 0, in, tg, mk) + dataset_window(&d, 1, in, tg, mk), 4);
  CHECK(tg[0] == 'z' && tg[1] == EOS && mk[2] == 0.0f); /* window 4: targets 33, 34, then padding */
  dataset_free(&d);
  records_free(&s);
}

/* SHA-256 of a file by coreutils, an implementation independent of OpenSSL's. */
static int sha256_prefix(const char *path, unsigned long long *out) {
  char cmd[1024], hex[17] = {0};
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  int ok = fread(hex, 1, 16, p) == 16;
  pclose(p);
  *out = strtoull(hex, NULL, 16);
  return ok ? 0 : -1;
}

static void test_split(const tokenizer *tok) {
  enum { N = 1000 };
  char err[1024];
  /* N distinct records, written in order and in a shuffled order */
  size_t cap = (size_t)N * 80;
  char *a = malloc(cap), *b = malloc(cap);
  int perm[N];
  for (int i = 0; i < N; i++) perm[i] = i;
  srand(7);
  for (int i = N - 1; i > 0; i--) {
    int j = rand() % (i + 1), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  size_t la = 0, lb = 0;
  for (int i = 0; i < N; i++) {
    la += (size_t)snprintf(a + la, cap - la, "{\"prompt\": \"question %d\", \"completion\": \"answer %d\"}\n", i, i);
    lb += (size_t)snprintf(b + lb, cap - lb, "{\"prompt\": \"question %d\", \"completion\": \"answer %d\"}\n", perm[i],
                           perm[i]);
  }
  record_set sa, sb, sa2;
  CHECK(records_read(&sa, write_file("ordered.jsonl", a, la), DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  CHECK(records_read(&sb, write_file("shuffled.jsonl", b, lb), DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  CHECK(records_read(&sa2, write_file("ordered2.jsonl", a, la), DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  int in_a[N], held = 0, same_run = 1, same_shuffled = 1, other_seed_differs = 0;
  for (int i = 0; i < N; i++) {
    in_a[i] = record_in_validation(&sa, (size_t)i, 0, 0.1);
    held += in_a[i];
    same_run &= in_a[i] == record_in_validation(&sa2, (size_t)i, 0, 0.1);
    other_seed_differs |= in_a[i] != record_in_validation(&sa, (size_t)i, 1, 0.1);
  }
  for (int i = 0; i < N; i++) same_shuffled &= record_in_validation(&sb, (size_t)i, 0, 0.1) == in_a[perm[i]];
  CHECK(same_run);
  CHECK(same_shuffled);
  CHECK(other_seed_differs);
  /* Binomial(1000, 0.1): mean 100, sd 9.5 */
  CHECK_MSG(held > 60 && held < 140, "%d of %d records held out at fraction 0.1", held, N);
  /* the packed sides split the records exactly */
  dataset train = {0}, val = {0};
  CHECK(dataset_add_records(&train, &val, &sa, 0.1, 0, tok, V, err, sizeof err) == 0);
  CHECK_EQ_INT(val.records, held);
  CHECK_EQ_INT(train.records + val.records, N);
  dataset_free(&train);
  dataset_free(&val);

  /* The documented hash: SHA-256(seed LE64 || kind || len LE64 || prompt || len LE64 || completion),
   * first 8 bytes big-endian, compared with fraction * 2^64. */
  unsigned char msg[256];
  size_t m = 0;
  const char *prompt = "question 0", *completion = "answer 0";
  memset(msg, 0, 8); /* seed 0 */
  m = 8;
  msg[m++] = RECORD_PROMPT;
  const char *fields[2] = {prompt, completion};
  for (int f = 0; f < 2; f++) {
    unsigned long long len = strlen(fields[f]);
    for (int k = 0; k < 8; k++) msg[m++] = (unsigned char)(len >> (8 * k));
    memcpy(msg + m, fields[f], len);
    m += len;
  }
  unsigned long long h = 0;
  CHECK(sha256_prefix(write_file("hashed.bin", (const char *)msg, m), &h) == 0);
  double frac = (double)h / 18446744073709551616.0;
  CHECK(record_in_validation(&sa, 0, 0, frac * 1.001 + 1e-12) == 1);
  CHECK(record_in_validation(&sa, 0, 0, frac * 0.999) == 0);
  CHECK(record_in_validation(&sa, 0, 0, 0.0) == 0);
  CHECK(record_in_validation(&sa, 0, 0, 1.0) == 1);
  records_free(&sa);
  records_free(&sb);
  records_free(&sa2);
  free(a);
  free(b);
}

int main(void) {
  dir = harness_tmpdir();
  tokenizer *tok = tokenizer_build_bytes();
  CHECK(tokenizer_bos(tok) == BOS && tokenizer_eos(tok) == EOS && tokenizer_vocab_size(tok) == V);
  test_mask(tok);
  test_errors();
  test_formats(tok);
  test_long_records(tok);
  test_split(tok);
  tokenizer_free(tok);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return harness_finish();
}
