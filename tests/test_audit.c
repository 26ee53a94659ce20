/* The audit log's hash chain (common/audit.h): records written by several threads verify; every
 * line names the SHA-256 (computed here with OpenSSL directly) of the line before; an edited value,
 * a deleted line, swapped lines and a torn last line are each reported at the line touched, by
 * audit_verify and by `fedlora audit verify` (exit 1); a tampered log is not extended. */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "harness.h"

enum { THREADS = 4, PER_THREAD = 25 };

typedef struct {
  audit_log *a;
  int id;
} worker;

static void *append_many(void *arg) {
  worker *w = arg;
  for (int i = 0; i < PER_THREAD; i++)
    audit_append(w->a, "update_received",
                 json_pack("{s:i,s:s,s:i,s:i}", "round", i, "sha256", "ab12", "bytes", 4096 + w->id, "examples", 7));
  return NULL;
}

/* The file as an array of lines (newline kept), count in *n. */
static char **lines_read(const char *path, int *n) {
  FILE *fp = fopen(path, "rb");
  char **v = NULL, *line = NULL;
  size_t cap = 0;
  *n = 0;
  while (fp && getline(&line, &cap, fp) > 0) {
    v = realloc(v, (size_t)(*n + 1) * sizeof *v);
    v[(*n)++] = strdup(line);
  }
  free(line);
  if (fp) fclose(fp);
  return v;
}

static void lines_write(const char *path, char **v, int n, int skip) {
  FILE *fp = fopen(path, "wb");
  for (int i = 0; i < n; i++)
    if (i != skip) fputs(v[i], fp);
  fclose(fp);
}

static void lines_free(char **v, int n) {
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

static void hex_sha256(const char *s, size_t len, char out[65]) {
  unsigned char d[32];
  unsigned int dl = 0;
  EVP_Digest(s, len, d, &dl, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* audit_verify's line, and the CLI's exit status and first word, for one file. */
static long broken_at(const char *path, int *cli_rc, char *cli_out, size_t cap) {
  long lines = 0, bad = 0;
  char head[65], err[1024];
  int rc = audit_verify(path, &lines, head, &bad, err, sizeof err);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' audit verify '%s'", harness_build("fedlora"), path);
  FILE *p = popen(cmd, "r");
  cli_out[0] = 0;
  if (p) {
    if (!fgets(cli_out, (int)cap, p)) cli_out[0] = 0;
    int st = pclose(p);
    *cli_rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  return rc == 1 ? bad : rc == 0 ? 0 : -1;
}

int main(void) {
  const char *dir = harness_tmpdir();
  char path[1024], copy[1024], err[1024];
  snprintf(path, sizeof path, "%s/audit.jsonl", dir);
  snprintf(copy, sizeof copy, "%s/tampered.jsonl", dir);

  audit_log *a = audit_open(path, "test", err, sizeof err);
  CHECK_MSG(a != NULL, "audit_open: %s", err);
  if (!a) return harness_finish();
  audit_append(a, "join", json_pack("{s:s,s:i}", "site", "alpha", "train_examples", 120));
  worker w[THREADS];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){a, i};
    pthread_create(&t[i], NULL, append_many, &w[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  audit_close(a);
  /* Reopened, the chain continues from the last line. */
  a = audit_open(path, "test", err, sizeof err);
  CHECK_MSG(a != NULL, "reopen: %s", err);
  audit_append(a, "round_committed", json_pack("{s:i}", "round", 1));
  audit_close(a);
  const int total = 1 + THREADS * PER_THREAD + 1;

  int n = 0;
  char **v = lines_read(path, &n);
  CHECK_EQ_INT(n, total);
  char expect[65] = "0000000000000000000000000000000000000000000000000000000000000000";
  int chained = 0;
  for (int i = 0; i < n; i++) {
    json_t *o = json_loads(v[i], 0, NULL);
    const char *prev = json_string_value(json_object_get(o, "prev"));
    if (prev && strcmp(prev, expect) == 0 && json_integer_value(json_object_get(o, "seq")) == i) chained++;
    if (i == 0) {
      CHECK_STR_CONTAINS(json_string_value(json_object_get(o, "event")), "join");
      CHECK_STR_CONTAINS(json_string_value(json_object_get(o, "site")), "alpha");
      CHECK_STR_CONTAINS(json_string_value(json_object_get(o, "ts")), "Z");
    }
    json_decref(o);
    hex_sha256(v[i], strlen(v[i]) - 1, expect);
  }
  CHECK_EQ_INT(chained, total);

  int cli_rc = -1;
  char out[2048];
  long lines = 0, bad = -1;
  char head[65];
  CHECK_EQ_INT(audit_verify(path, &lines, head, &bad, err, sizeof err), 0);
  CHECK_EQ_INT(lines, total);
  CHECK(strcmp(head, expect) == 0);
  CHECK_EQ_INT(broken_at(path, &cli_rc, out, sizeof out), 0);
  CHECK_EQ_INT(cli_rc, 0);
  CHECK_STR_CONTAINS(out, "OK");

  /* An edited value on line 40 (index 39): the value, not the structure, changes. */
  char *orig = v[39], *edited = strdup(orig), *bytes = strstr(edited, "\"bytes\":409");
  CHECK(bytes != NULL);
  if (bytes) { /* a different digit, whatever it was */
    char *d = bytes + strlen("\"bytes\":409");
    *d = *d == '9' ? '8' : '9';
  }
  v[39] = edited;
  lines_write(copy, v, n, -1);
  CHECK_EQ_INT(broken_at(copy, &cli_rc, out, sizeof out), 40);
  CHECK_EQ_INT(cli_rc, 1);
  CHECK_STR_CONTAINS(out, "line 40");
  CHECK(audit_open(copy, "test", err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "cannot be extended");
  v[39] = orig;
  free(edited);

  /* Line 17 deleted. */
  lines_write(copy, v, n, 16);
  CHECK_EQ_INT(broken_at(copy, &cli_rc, out, sizeof out), 17);
  CHECK_EQ_INT(cli_rc, 1);
  CHECK_STR_CONTAINS(out, "line 17");

  /* Lines 60 and 61 swapped. */
  char *tmp = v[59];
  v[59] = v[60];
  v[60] = tmp;
  lines_write(copy, v, n, -1);
  CHECK_EQ_INT(broken_at(copy, &cli_rc, out, sizeof out), 60);
  v[60] = v[59];
  v[59] = tmp;

  /* The first line edited: its successor's digest no longer matches. */
  char *first = v[0], *renamed = strdup(first), *site = strstr(renamed, "alpha");
  if (site) site[0] = 'A';
  v[0] = renamed;
  lines_write(copy, v, n, -1);
  CHECK_EQ_INT(broken_at(copy, &cli_rc, out, sizeof out), 1);
  v[0] = first;
  free(renamed);

  /* A torn last line (no newline). */
  v[n - 1][strlen(v[n - 1]) - 1] = 0;
  lines_write(copy, v, n, -1);
  CHECK_EQ_INT(broken_at(copy, &cli_rc, out, sizeof out), n);
  CHECK_EQ_INT(cli_rc, 1);

  /* A missing file is "cannot check", not "broken". */
  snprintf(copy, sizeof copy, "%s/absent.jsonl", dir);
  CHECK_EQ_INT(broken_at(copy, &cli_rc, out, sizeof out), -1);
  CHECK_EQ_INT(cli_rc, 2);

  lines_free(v, n);
  return harness_finish();
}
