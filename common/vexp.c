/* Row reductions around vexp; see vexp.h. Eight independent lanes per loop: the compiler turns
 * them into vector registers, and the lanes are combined in one fixed order at the end. */
#include "vexp.h"

#include "cpu_dispatch.h"

enum { LANES = 8 };

static inline __attribute__((always_inline)) float vmax_body(const float *x, int n) {
  float m[LANES];
  for (int l = 0; l < LANES; l++) m[l] = x[0];
  int j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  for (int l = 0; j + l < n; l++) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  float best = m[0];
  for (int l = 1; l < LANES; l++) best = m[l] > best ? m[l] : best;
  return best;
}
CPU_DISPATCH(, float, vmax, (const float *x, int n), (x, n))

static inline __attribute__((always_inline)) double vexp_shift_sum_body(float *x, int n, float shift) {
  double s[LANES] = {0};
  int j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) {
      float e = vexp(x[j + l] - shift);
      x[j + l] = e;
      s[l] += e;
    }
  for (int l = 0; j + l < n; l++) {
    float e = vexp(x[j + l] - shift);
    x[j + l] = e;
    s[l] += e;
  }
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
CPU_DISPATCH(, double, vexp_shift_sum, (float *x, int n, float shift), (x, n, shift))

static inline __attribute__((always_inline)) float vdot_body(const float *a, const float *b, int n) {
  float s[LANES] = {0};
  int j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int l = 0; l < LANES; l++) s[l] += a[j + l] * b[j + l];
  for (int l = 0; j + l < n; l++) s[l] += a[j + l] * b[j + l];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
CPU_DISPATCH(, float, vdot, (const float *a, const float *b, int n), (a, b, n))
