/* vexp (common/vexp.h) against exp in double: relative error below 2e-7 over the whole float
 * range that does not flush or overflow, and the edge cases (flush to 0, overflow to inf, NaN). */
#include "harness.h"
#include "vexp.h"

int main(void) {
  double worst = 0.0, worst_x = 0.0;
  /* every 2^-12 step over [-87.3, 88.7] plus a fine sweep around 0 */
  for (double x = -87.33; x <= 88.72; x += 1.0 / 4096) {
    double want = exp((double)(float)x), got = vexp((float)x);
    double rel = fabs(got - want) / want;
    if (rel > worst) worst = rel, worst_x = x;
  }
  for (double x = -1e-3; x <= 1e-3; x += 1e-7) {
    double want = exp((double)(float)x), rel = fabs(vexp((float)x) - want) / want;
    if (rel > worst) worst = rel, worst_x = x;
  }
  printf("vexp: worst relative error %.3g at x = %.6f\n", worst, worst_x);
  CHECK_MSG(worst < 2e-7, "worst relative error %.3g at x = %.6f", worst, worst_x);
  CHECK(vexp(0.0f) == 1.0f);
  CHECK(vexp(-100.0f) == 0.0f);
  CHECK(vexp(-INFINITY) == 0.0f);
  CHECK(isinf(vexp(89.0f)) && vexp(89.0f) > 0);
  CHECK(isinf(vexp(INFINITY)));
  CHECK(isnan(vexp(NAN)));
  /* the smallest normal result and the largest finite one are still computed */
  CHECK_NEAR(vexp(-87.0f) / exp(-87.0), 1.0, 2e-7);
  CHECK_NEAR(vexp(88.5f) / exp(88.5), 1.0, 2e-7);
  return harness_finish();
}
