/* The sites' losses under secure aggregation (common/secagg_metrics.h): encoded next to the
 * update, summed in fixed point the way the masked vectors are (secagg_math.h: [w·range, w·x],
 * stochastic rounding, int32 sum, divided by the unmasked weight), and decoded to the pooled
 * losses Σ w·loss / Σ w of the sites that reported one, within the quantisation bound; a loss no
 * site reported decodes as NaN exactly. */
#include "harness.h"
#include "secagg_math.h"
#include "secagg_metrics.h"

enum { SITES = 3, WORDS = 1 + SECAGG_METRIC_WORDS };

/* The pooled losses of SITES sites (weights w, losses train and val) through the fixed point. */
static void pool(const double *w, const double *train, const double *val, double range, double scale,
                 double *train_out, double *val_out) {
  uint32_t sum[WORDS] = {0}, q[WORDS];
  for (int k = 0; k < SITES; k++) {
    float c[SECAGG_METRIC_WORDS], v[WORDS];
    secagg_metrics_encode(train[k], val[k], range, c);
    for (int i = 0; i < SECAGG_METRIC_WORDS; i++) {
      CHECK_MSG(c[i] >= 0 && c[i] <= range, "site %d coordinate %d = %g outside [0, %g]", k, i, c[i], range);
      v[1 + i] = (float)(w[k] * c[i]);
    }
    v[0] = (float)(w[k] * range);
    CHECK_EQ_INT(secagg_quantize(v, WORDS, range, scale, 40 + (uint64_t)k, q), 0);
    secagg_add(sum, q, WORDS);
  }
  float w_sum, mean[SECAGG_METRIC_WORDS];
  secagg_decode(sum, 1, scale, range, &w_sum);
  secagg_decode(sum + 1, SECAGG_METRIC_WORDS, scale, w_sum, mean);
  secagg_metrics_decode(mean, train_out, val_out);
}

int main(void) {
  const double range = 0.5, scale = 1048576.0;
  const double w[SITES] = {0.5, 1.0, 0.25};
  /* site 2's training loss is above the loss scale and counts as 64; site 0 has no validation */
  const double train[SITES] = {2.1, 3.7, 70.0}, val[SITES] = {NAN, 4.3, 1.13};
  double want_train = (0.5 * 2.1 + 1.0 * 3.7 + 0.25 * SECAGG_LOSS_MAX) / 1.75;
  double want_val = (1.0 * 4.3 + 0.25 * 1.13) / 1.25;
  double got_train, got_val;
  pool(w, train, val, range, scale, &got_train, &got_val);
  /* |S2/S1 − T2/T1| ≤ (k/scale)(1 + T2/T1) / (T1 − k/scale) per loss, T1 = range·Σ w (reporting
   * sites), times L; plus float32 rounding of the decoded means. */
  double k = SITES / scale;
  double bound_train = SECAGG_LOSS_MAX * 2 * k / (range * 1.75 - k) + 4 * SECAGG_LOSS_MAX * 0x1p-23;
  double bound_val = SECAGG_LOSS_MAX * 2 * k / (range * 1.25 - k) + 4 * SECAGG_LOSS_MAX * 0x1p-23;
  printf("pooled train loss %.7f (want %.7f, bound %.2g), validation %.7f (want %.7f, bound %.2g)\n", got_train,
         want_train, bound_train, got_val, want_val, bound_val);
  CHECK_NEAR(got_train, want_train, bound_train);
  CHECK_NEAR(got_val, want_val, bound_val);
  /* sharp: the mean with site 0's missing validation counted as 0 is far outside the bound */
  CHECK(fabs(got_val - (1.0 * 4.3 + 0.25 * 1.13) / 1.75) > 100 * bound_val);

  /* nobody reported a validation loss (or, under DP, any loss): NaN, not 0 */
  const double none[SITES] = {NAN, NAN, NAN};
  pool(w, none, none, range, scale, &got_train, &got_val);
  CHECK(isnan(got_train) && isnan(got_val));

  /* the encoding itself: indicator and scaled loss, clamped; NaN and infinities send zeros */
  float c[SECAGG_METRIC_WORDS];
  secagg_metrics_encode(16.0, -1.0, 2.0, c);
  CHECK(c[0] == 2.0f && c[1] == 0.5f && c[2] == 2.0f && c[3] == 0.0f);
  secagg_metrics_encode(INFINITY, NAN, 2.0, c);
  CHECK(c[0] == 0.0f && c[1] == 0.0f && c[2] == 0.0f && c[3] == 0.0f);
  return harness_finish();
}
