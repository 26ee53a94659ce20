/* A tiny test harness: every CHECK counts, a test exits non-zero if any failed. */
#ifndef FEDLORA_TEST_HARNESS_H
#define FEDLORA_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <string.h>

extern int harness_failures;
extern int harness_checks;

void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                            \
  do {                                                                         \
    harness_checks++;                                                          \
    if (!(cond)) harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);         \
  } while (0)

#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    harness_checks++;                                                          \
    if (!(cond)) harness_fail(__FILE__, __LINE__, __VA_ARGS__);                \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    harness_checks++;                                                          \
    if (a_ != b_)                                                              \
      harness_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
  } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                        \
  do {                                                                         \
    const char *h_ = (hay), *n_ = (needle);                                    \
    harness_checks++;                                                          \
    if (!h_ || !strstr(h_, n_))                                                \
      harness_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"",       \
                   h_ ? h_ : "(null)", n_);                                    \
  } while (0)

/* |a - b| <= tol * max(1, |a|, |b|) */
#define CHECK_NEAR(a, b, tol)                                                  \
  do {                                                                         \
    double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);             \
    double s_ = fmax(1.0, fmax(fabs(a_), fabs(b_)));                           \
    harness_checks++;                                                          \
    if (!(fabs(a_ - b_) <= t_ * s_))                                           \
      harness_fail(__FILE__, __LINE__, "%s ~ %s: %.10g vs %.10g (tol %g)", #a, #b, a_, b_, t_); \
  } while (0)

/* Path of a file under ../shared/testdata; exits 77 (ctest: skipped) with the reason if absent. */
const char *harness_shared(const char *relative);
/* Path under the source tree (FEDLORA_SOURCE_DIR) or the build tree (FEDLORA_BUILD_DIR). */
const char *harness_source(const char *relative);
const char *harness_build(const char *relative);
/* A fresh empty directory under /tmp, removed by the caller if it wishes. */
const char *harness_tmpdir(void);

/* A development PKI (certs/dev-pki.sh) with sites alpha, beta and gamma, made once per process
 * in a fresh directory; returns that directory. */
const char *harness_pki(void);

/* Prints the summary and returns the process exit code. */
int harness_finish(void);

#endif
