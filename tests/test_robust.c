/* Robust aggregation rules on small inputs worked out by hand. */
#include <stdlib.h>

#include "harness.h"
#include "robust.h"

static void test_median(void) {
  const float odd[3 * 2] = {1, 5, 3, -1, 2, 100};  /* three clients, two coordinates */
  float out[2];
  CHECK_EQ_INT(robust_median(odd, NULL, 3, 2, out), 0);
  CHECK_NEAR(out[0], 2, 0);
  CHECK_NEAR(out[1], 5, 0);
  const float even[4] = {10, 1, 3, 2};  /* one coordinate: sorted 1 2 3 10 → 2.5 */
  CHECK_EQ_INT(robust_median(even, NULL, 4, 1, out), 0);
  CHECK_NEAR(out[0], 2.5, 0);
  const float three[3] = {3, 1, 2};
  const float heavy[3] = {5, 1, 1};  /* value 3 carries 5 of 7 */
  CHECK_EQ_INT(robust_median(three, heavy, 3, 1, out), 0);
  CHECK_NEAR(out[0], 3, 0);
  const float half[3] = {2, 1, 1};  /* 1 and 2 carry exactly half: midpoint of 2 and 3 */
  CHECK_EQ_INT(robust_median(three, half, 3, 1, out), 0);
  CHECK_NEAR(out[0], 2.5, 0);
  const float skip_zero[3] = {1, 1, 0};  /* weight 0 on value 2: midpoint of 1 and 3 */
  CHECK_EQ_INT(robust_median(three, skip_zero, 3, 1, out), 0);
  CHECK_NEAR(out[0], 2, 0);
  const float bad_w[3] = {1, -1, 1};
  CHECK_EQ_INT(robust_median(three, bad_w, 3, 1, out), -1);
  const float nan_in[3] = {1, NAN, 2};
  CHECK_EQ_INT(robust_median(nan_in, NULL, 3, 1, out), -1);
}

static void test_trimmed_mean(void) {
  const float v[5] = {4, 100, 1, 3, 2};
  float out[1];
  CHECK_EQ_INT(robust_trimmed_mean(v, NULL, 5, 1, 0.2, out), 0);  /* drop 1 and 100 → mean(2,3,4) */
  CHECK_NEAR(out[0], 3, 1e-7);
  CHECK_EQ_INT(robust_trimmed_mean(v, NULL, 5, 1, 0.39, out), 0);  /* floor(1.95) = 1 */
  CHECK_NEAR(out[0], 3, 1e-7);
  CHECK_EQ_INT(robust_trimmed_mean(v, NULL, 5, 1, 0.4, out), 0);  /* drop 2 each side → 3 */
  CHECK_NEAR(out[0], 3, 1e-7);
  CHECK_EQ_INT(robust_trimmed_mean(v, NULL, 5, 1, 0.0, out), 0);  /* plain mean 110/5 */
  CHECK_NEAR(out[0], 22, 1e-7);
  const float w[5] = {3, 1, 1, 1, 1};  /* kept 4(w3), 3, 2 → (12 + 3 + 2)/5 */
  CHECK_EQ_INT(robust_trimmed_mean(v, w, 5, 1, 0.2, out), 0);
  CHECK_NEAR(out[0], 17.0 / 5, 1e-7);
  CHECK_EQ_INT(robust_trimmed_mean(v, NULL, 5, 1, 0.5, out), -1);
  /* Two coordinates are trimmed independently. */
  const float two[3 * 2] = {0, 9, 5, -9, 1, 0};
  float out2[2];
  CHECK_EQ_INT(robust_trimmed_mean(two, NULL, 3, 2, 0.34, out2), 0);
  CHECK_NEAR(out2[0], 1, 0);
  CHECK_NEAR(out2[1], 0, 0);
}

static void test_krum(void) {
  /* 1-D points 0, 1, 2.5, 3, 100 with f = 1: each score sums the 2 nearest squared distances:
   * 0 → 1 + 6.25, 1 → 1 + 2.25, 2.5 → 0.25 + 2.25, 3 → 0.25 + 4, 100 → 97² + 97.5². */
  const float p[5] = {0, 1, 2.5f, 3, 100};
  double scores[5];
  CHECK_EQ_INT(robust_krum_scores(p, 5, 1, 1, scores), 0);
  const double want[5] = {7.25, 3.25, 2.5, 4.25, 9409 + 9506.25};
  for (int i = 0; i < 5; i++) CHECK_NEAR(scores[i], want[i], 1e-12);
  float out[1];
  int sel[4];
  CHECK_EQ_INT(robust_multi_krum(p, NULL, 5, 1, 1, 1, out, sel), 0);
  CHECK_NEAR(out[0], 2.5, 0);
  CHECK_EQ_INT(sel[0], 2);
  CHECK_EQ_INT(robust_multi_krum(p, NULL, 5, 1, 1, 3, out, sel), 0);
  CHECK_NEAR(out[0], 6.5 / 3, 1e-7);
  CHECK(sel[0] == 2 && sel[1] == 1 && sel[2] == 3);
  const float w[5] = {1, 1, 1, 3, 1};
  CHECK_EQ_INT(robust_multi_krum(p, w, 5, 1, 1, 3, out, NULL), 0);
  CHECK_NEAR(out[0], (1 + 2.5 + 9) / 5.0, 1e-7);
  CHECK_EQ_INT(robust_krum_scores(p, 4, 1, 1, scores), -1);  /* n = 2f + 2: not enough */
  CHECK_EQ_INT(robust_multi_krum(p, NULL, 5, 1, 1, 6, out, sel), -1);

  /* In 2-D, with ties broken by index: squares (0,0) (1,0) (0,1) (1,1) and an attacker at (50,50),
   * f = 1, so 2 nearest each: corners score 1 + 1 = 2, the attacker far more. */
  const float sq[5 * 2] = {0, 0, 1, 0, 0, 1, 1, 1, 50, 50};
  float mean[2];
  CHECK_EQ_INT(robust_krum_scores(sq, 5, 2, 1, scores), 0);
  for (int i = 0; i < 4; i++) CHECK_NEAR(scores[i], 2, 0);
  CHECK_NEAR(scores[4], 49 * 49 + 50 * 50 + 49 * 49 + 49 * 49, 0);  /* to (1,1) and (1,0)|(0,1) */
  CHECK_EQ_INT(robust_multi_krum(sq, NULL, 5, 2, 1, 4, mean, sel), 0);
  CHECK_NEAR(mean[0], 0.5, 0);
  CHECK_NEAR(mean[1], 0.5, 0);
}

static void test_norm_bound(void) {
  float u[2] = {3, 4};
  CHECK_NEAR(robust_norm_bound(u, 2, 10), 5, 1e-12);
  CHECK(u[0] == 3 && u[1] == 4);
  CHECK_NEAR(robust_norm_bound(u, 2, 1), 5, 1e-12);
  CHECK_NEAR(u[0], 0.6, 1e-7);
  CHECK_NEAR(u[1], 0.8, 1e-7);
  CHECK_NEAR(robust_norm_bound(u, 2, 1), 1, 1e-7);
}

/* A Byzantine client with a huge update moves the mean arbitrarily, but not the median, the
 * trimmed mean or Krum. */
static void test_attack(void) {
  enum { N = 9, D = 64 };
  static float updates[N * D];
  unsigned s = 7;
  for (int c = 0; c < N; c++)
    for (int i = 0; i < D; i++) {
      s = s * 1103515245u + 12345u;
      updates[c * D + i] = 1.0f + 0.01f * (float)((int)((s >> 16) % 200) - 100) / 100.0f;
    }
  for (int i = 0; i < D; i++) updates[8 * D + i] = 1e6f;  /* client 8 attacks */
  float med[D], trim[D], krum[D];
  int sel[1];
  CHECK_EQ_INT(robust_median(updates, NULL, N, D, med), 0);
  CHECK_EQ_INT(robust_trimmed_mean(updates, NULL, N, D, 0.12, trim), 0);
  CHECK_EQ_INT(robust_multi_krum(updates, NULL, N, D, 2, 1, krum, sel), 0);
  CHECK(sel[0] != 8);
  for (int i = 0; i < D; i++) {
    CHECK(fabsf(med[i] - 1) <= 0.01f);
    CHECK(fabsf(trim[i] - 1) <= 0.01f);
    CHECK(fabsf(krum[i] - 1) <= 0.01f);
  }
}

int main(void) {
  test_median();
  test_trimmed_mean();
  test_krum();
  test_norm_bound();
  test_attack();
  return harness_finish();
}
