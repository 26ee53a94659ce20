/* exp for the element-wise loops of training (softmax, SiLU, cross-entropy), written so that the
 * compiler vectorises the loops it sits in: glibc's expf is a call per element that no loop can
 * vectorise. Relative error below 2e-7 (about 2 ulp; tests/test_vexp.c checks it against exp in
 * double over the whole range), and the same bits on every x86-64 machine because it is nothing
 * but IEEE float arithmetic in a fixed order. */
#ifndef FEDLORA_VEXP_H
#define FEDLORA_VEXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float vexp(float x) {
  /* exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln 2 / 2; ln 2 split in two so n ln 2 is exact */
  /* written so that NaN clamps to -88 too: the bit arithmetic below then stays in range (NaN is
   * returned at the end) */
  float xc = x > -88.0f ? x : -88.0f;
  xc = xc < 89.0f ? xc : 89.0f;
  float shifted = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
  float n = shifted - 12582912.0f;
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  /* Taylor to r^7: the remainder is below 3e-9 relative on |r| <= 0.347 */
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  /* the integer n sits in the low mantissa bits; 2^n as two normal factors, since n reaches -127
   * and 128 at the ends of the range, where 2^n alone is not a normal float */
  int32_t bits;
  memcpy(&bits, &shifted, sizeof bits);
  int32_t ni = bits - 0x4B400000, n1 = ni / 2;
  uint32_t e1 = (uint32_t)(n1 + 127) << 23, e2 = (uint32_t)(ni - n1 + 127) << 23;
  float s1, s2;
  memcpy(&s1, &e1, sizeof s1);
  memcpy(&s2, &e2, sizeof s2);
  float y = p * s1 * s2;
  y = x < -87.33654f ? 0.0f : y;       /* below the smallest normal result: flush */
  y = x > 88.72283f ? INFINITY : y;    /* above FLT_MAX: overflow */
  return x != x ? x : y;               /* NaN stays NaN, so a diverged run is still seen */
}

/* Largest of x[0..n), n >= 1. */
float vmax(const float *x, int n);
/* x[j] = vexp(x[j] - shift) for j < n, and returns their sum (in double, in a fixed order of
 * lanes, so the result does not depend on the vector width the compiler chose). */
double vexp_shift_sum(float *x, int n, float shift);
/* Σ a[j] b[j] over j < n, in the same fixed order of lanes. */
float vdot(const float *a, const float *b, int n);

#endif
