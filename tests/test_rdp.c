/* The RDP accountant against published numbers (TF Privacy's and Opacus' own tests) and against
 * an independent numerical integration of A_α. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "rdp.h"

/* log A_α by brute force: trapezoid rule over x of μ0(x)·(μ(x)/μ0(x))^α, summed in log space.
 * The integrand is smooth and decays like a Gaussian on both sides, so the trapezoid rule with a
 * step of σ/64 is exact to double precision; the grid spans every mode of the integrand (0 and α). */
static double log_a_quadrature(double q, double sigma, double alpha) {
  double h = sigma / 64.0, lo = -40.0 * sigma, hi = alpha + 40.0 * sigma;
  long n = (long)ceil((hi - lo) / h);
  double peak = -INFINITY;
  for (int pass = 0; pass < 2; pass++) {
    long double sum = 0.0L;
    for (long k = 0; k <= n; k++) {
      double x = lo + k * h;
      double t = (2.0 * x - 1.0) / (2.0 * sigma * sigma);
      double log_ratio = t > 0 ? t + log(q + (1.0 - q) * exp(-t)) : log1p(q * expm1(t));
      double f = -x * x / (2.0 * sigma * sigma) - log(sigma * sqrt(2.0 * M_PI)) + alpha * log_ratio;
      if (pass == 0) peak = fmax(peak, f);
      else sum += (k == 0 || k == n ? 0.5L : 1.0L) * expl((long double)(f - peak));
    }
    if (pass == 1) return peak + (double)logl(sum * h);
  }
  return NAN;
}

static void check_against_quadrature(double q, double sigma, double order, double rtol) {
  double got = rdp_sampled_gaussian(q, sigma, order) * (order - 1.0);
  double want = log_a_quadrature(q, sigma, order);
  CHECK_MSG(fabs(got - want) <= rtol * fabs(want), "log A(q=%g, sigma=%g, order=%g): series %.12g, quadrature %.12g", q,
            sigma, order, got, want);
}

/* TF Privacy's compute_dp_sgd_privacy (the version whose test pins these numbers) uses these
 * orders, steps = ceil(epochs·n/batch), and the improved conversion. */
static void check_tf_dp_sgd(double n, double batch, double z, double epochs, double delta, double want_eps,
                            double want_order) {
  double orders[80];
  int k = 0;
  const double small[] = {1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5};
  for (int i = 0; i < 10; i++) orders[k++] = small[i];
  for (int a = 5; a < 64; a++) orders[k++] = a;
  orders[k++] = 128;
  orders[k++] = 256;
  orders[k++] = 512;
  double rdp[80], order;
  long steps = (long)ceil(epochs * n / batch);
  CHECK_EQ_INT(rdp_compute(batch / n, z, steps, orders, k, rdp), 0);
  double eps = rdp_epsilon(orders, rdp, k, delta, RDP_CONVERSION_IMPROVED, &order);
  CHECK_MSG(fabs(eps - want_eps) <= 1e-6 * want_eps, "TF dp-sgd n=%g batch=%g z=%g: eps %.15g, want %.15g", n, batch, z,
            eps, want_eps);
  CHECK_NEAR(order, want_order, 0);
}

int main(void) {
  /* Opacus: z = 1.5, q = 0.04, 2250 steps, δ = 1e-5, default orders, improved conversion. */
  double orders[RDP_DEFAULT_ORDER_COUNT], rdp[RDP_DEFAULT_ORDER_COUNT], order;
  rdp_default_orders(orders);
  CHECK_NEAR(orders[0], 1.1, 0);
  CHECK_NEAR(orders[98], 10.9, 1e-15);
  CHECK_NEAR(orders[99], 12, 0);
  CHECK_NEAR(orders[RDP_DEFAULT_ORDER_COUNT - 1], 63, 0);
  CHECK_EQ_INT(rdp_compute(0.04, 1.5, 2250, orders, RDP_DEFAULT_ORDER_COUNT, rdp), 0);
  double eps = rdp_epsilon(orders, rdp, RDP_DEFAULT_ORDER_COUNT, 1e-5, RDP_CONVERSION_IMPROVED, &order);
  CHECK_MSG(fabs(eps - 7.32911117143) <= 1e-6 * 7.32911117143, "Opacus eps %.12g, want 7.32911117143", eps);

  check_tf_dp_sgd(60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19.0);
  check_tf_dp_sgd(100000, 100, 1.0, 30, 1e-7, 1.4154988495444845, 13.0);
  check_tf_dp_sgd(100000000, 1024, 0.1, 10, 1e-7, 5907982.31138195, 1.25);

  /* TF Privacy rdp_accountant_test: scalar and sequence values. */
  double five = 5.0, r;
  CHECK_EQ_INT(rdp_compute(0.1, 2.0, 10, &five, 1, &r), 0);
  CHECK_MSG(fabs(r - 0.07737) < 5e-6, "compute_rdp(0.1, 2, 10, 5) = %.8f, want 0.07737", r);
  const double seq_orders[] = {1.5, 2.5, 5, 50, 100, INFINITY};
  const double seq_want[] = {6.5007e-04, 1.0854e-03, 2.1808e-03, 2.3846e-02, 1.6742e+02};
  double seq[6];
  CHECK_EQ_INT(rdp_compute(0.01, 2.5, 50, seq_orders, 6, seq), 0);
  for (int i = 0; i < 5; i++)
    CHECK_MSG(fabs(seq[i] - seq_want[i]) <= 1e-4 * seq_want[i], "order %g: %.6g, want %.6g", seq_orders[i], seq[i],
              seq_want[i]);
  CHECK(isinf(seq[5]));
  CHECK_NEAR(rdp_sampled_gaussian(1.0, 10.0, 20.0), 0.1, 1e-15);
  CHECK_NEAR(rdp_sampled_gaussian(0.0, 10.0, 20.0), 0.0, 0);
  CHECK(isnan(rdp_sampled_gaussian(0.5, 1.0, 1.0)));
  CHECK(isnan(rdp_sampled_gaussian(1.5, 1.0, 2.0)));
  CHECK_EQ_INT(rdp_compute(-0.1, 1.0, 1, &five, 1, &r), -1);

  /* Constant RDP is pure DP: the largest order wins; the value is TF Privacy's. */
  double const_orders[31], const_rdp[31];
  for (int i = 0; i < 31; i++) {
    const_orders[i] = 2 + i;
    const_rdp[i] = 1.1;
  }
  eps = rdp_epsilon(const_orders, const_rdp, 31, 1e-5, RDP_CONVERSION_IMPROVED, &order);
  CHECK_NEAR(eps, 1.32783806176, 1e-10);
  CHECK_NEAR(order, 32, 0);
  /* Classic conversion by hand: 1.1 − log(1e-5)/31. */
  eps = rdp_epsilon(const_orders, const_rdp, 31, 1e-5, RDP_CONVERSION_CLASSIC, &order);
  CHECK_NEAR(eps, 1.1 - log(1e-5) / 31.0, 1e-14);

  /* No subsampling: σ = 4.530877117 is exactly (1, 1e-6)-DP by the improved conversion on a
   * fine grid of orders (TF Privacy's test). */
  int n_fine = 99000;
  double *fine_orders = malloc(sizeof(double) * n_fine), *fine_rdp = malloc(sizeof(double) * n_fine);
  for (int i = 0; i < n_fine; i++) fine_orders[i] = 0.001 * (i + 1000);
  fine_orders[0] = 1.0000001;  /* order 1 itself is excluded: RDP is only defined for α > 1 */
  CHECK_EQ_INT(rdp_compute(1.0, 4.530877117, 1, fine_orders, n_fine, fine_rdp), 0);
  eps = rdp_epsilon(fine_orders, fine_rdp, n_fine, 1e-6, RDP_CONVERSION_IMPROVED, &order);
  CHECK_NEAR(eps, 1.0, 1e-7);
  free(fine_orders);
  free(fine_rdp);

  /* ε = 0 when δ already covers the KL bound; ε = +inf with no usable order. */
  double tiny = 1e-14, two = 2.0, inf = INFINITY;
  CHECK_NEAR(rdp_epsilon(&two, &tiny, 1, 1e-5, RDP_CONVERSION_IMPROVED, &order), 0.0, 0);
  CHECK(isinf(rdp_epsilon(&two, &inf, 1, 1e-5, RDP_CONVERSION_IMPROVED, &order)) && isnan(order));

  /* Series against quadrature, integer and fractional orders, over TF Privacy's parameter grid. */
  check_against_quadrature(1e-4, 1.0, 1.5, 1e-7);
  check_against_quadrature(1e-3, 1.0, 2.0, 1e-7);
  check_against_quadrature(0.01, 10.0, 20.0, 1e-7);
  check_against_quadrature(0.1, 100.0, 20.5, 1e-7);
  check_against_quadrature(1e-6, 1.0, 27.0, 1e-7);
  check_against_quadrature(0.04, 1.5, 7.3, 1e-7);
  check_against_quadrature(0.0025, 1.3, 1.25, 1e-7);
  check_against_quadrature(0.0025, 1.3, 19.0, 1e-7);
  check_against_quadrature(0.3, 0.8, 3.7, 1e-7);
  check_against_quadrature(1e-5, 0.1, 256.1, 1e-7);
  check_against_quadrature(0.99, 0.1, 256.0, 1e-7);
  check_against_quadrature(0.999, 100.0, 256.1, 1e-7);

  /* The command line reports the same number (the binary sits in the build tree's root). */
  char command[4200], out[512] = "";
  snprintf(command, sizeof command, "%s dp-epsilon --noise 1.5 --rate 0.04 --steps 2250 --delta 1e-5 --json",
           harness_build("fedlora"));
  FILE *p = popen(command, "r");
  CHECK(p != NULL);
  if (p) {
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    CHECK_EQ_INT(pclose(p), 0);
  }
  CHECK_STR_CONTAINS(out, "\"epsilon\": 7.329111171");
  CHECK_STR_CONTAINS(out, "\"order\": 3.9");
  return harness_finish();
}
