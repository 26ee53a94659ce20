#include "harness.h"

#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int harness_failures;
int harness_checks;

void harness_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: FAIL: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  harness_failures++;
}

static const char *env_path(const char *var, const char *relative) {
  const char *root = getenv(var);
  if (!root) {
    fprintf(stderr, "%s is not set: run this test through ctest\n", var);
    exit(2);
  }
  static __thread char paths[8][4096];
  static __thread int next;
  char *p = paths[next++ % 8];
  snprintf(p, 4096, "%s/%s", root, relative);
  return p;
}

const char *harness_shared(const char *relative) {
  char rel[4000];
  snprintf(rel, sizeof rel, "testdata/%s", relative);
  const char *p = env_path("FEDLORA_SHARED", rel);
  FILE *f = fopen(p, "rb");
  if (!f) {
    fprintf(stderr, "SKIPPED: this test needs %s (the shared/ folder beside the checkout); it is absent\n", p);
    exit(77);
  }
  fclose(f);
  return p;
}

const char *harness_source(const char *relative) { return env_path("FEDLORA_SOURCE_DIR", relative); }
const char *harness_build(const char *relative) { return env_path("FEDLORA_BUILD_DIR", relative); }

/* The scratch directories made so far, removed at exit when every check passed (kept for a look
 * when one failed, or with FEDLORA_TEST_KEEP set). */
enum { TMPDIRS_MAX = 256 };
static char tmpdirs[TMPDIRS_MAX][64];
static int n_tmpdirs;
static pthread_mutex_t tmpdirs_mu = PTHREAD_MUTEX_INITIALIZER;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path) == 0 ? 0 : (perror(path), 0);
}

static void tmpdirs_remove(void) {
  if (getenv("FEDLORA_TEST_KEEP") || harness_failures) {
    for (int i = 0; i < n_tmpdirs; i++) fprintf(stderr, "kept %s\n", tmpdirs[i]);
    return;
  }
  for (int i = 0; i < n_tmpdirs; i++) nftw(tmpdirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *harness_tmpdir(void) {
  static __thread char dir[64];
  snprintf(dir, sizeof dir, "/tmp/fedlora-test-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    exit(2);
  }
  pthread_mutex_lock(&tmpdirs_mu);
  if (n_tmpdirs == 0) atexit(tmpdirs_remove);
  if (n_tmpdirs < TMPDIRS_MAX) snprintf(tmpdirs[n_tmpdirs++], sizeof tmpdirs[0], "%s", dir);
  pthread_mutex_unlock(&tmpdirs_mu);
  return dir;
}

const char *harness_pki(void) {
  static char dir[64];
  if (dir[0]) return dir;
  snprintf(dir, sizeof dir, "%s", harness_tmpdir());
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "bash '%s' '%s' alpha beta gamma >/dev/null", harness_source("certs/dev-pki.sh"), dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "certs/dev-pki.sh failed\n");
    exit(2);
  }
  return dir;
}

int harness_finish(void) {
  if (harness_checks == 0) {
    fprintf(stderr, "FAIL: the test made no checks\n");
    return 1;
  }
  printf("%d checks, %d failed\n", harness_checks, harness_failures);
  return harness_failures ? 1 : 0;
}
