/* RDP of the sampled Gaussian mechanism, computed in log space.
 *
 * With μ0 = N(0, σ²) and μ = (1 − q)·N(0, σ²) + q·N(1, σ²), the RDP at order α is
 * log(A_α)/(α − 1) where A_α = E_{x~μ0}[(μ(x)/μ0(x))^α] (Mironov et al. 2019, Sec. 3.3).
 * Integer α: the binomial expansion gives the finite sum
 *   A_α = Σ_{i=0..α} C(α,i) q^i (1−q)^(α−i) exp((i² − i)/(2σ²)).
 * Fractional α: split the integral at z0 = σ² log(1/q − 1) + 1/2 (where q·N(1) and (1−q)·N(0)
 * cross), expand each half with the generalised binomial series (convergent on that half), and
 * integrate each term against a Gaussian, which turns into an erfc tail. Terms are summed with
 * a signed log-sum so that nothing overflows for large orders or small σ. */
#include "rdp.h"

#include <math.h>

#include "log.h"

void rdp_default_orders(double orders[RDP_DEFAULT_ORDER_COUNT]) {
  int n = 0;
  for (int x = 1; x < 100; x++) orders[n++] = 1.0 + x / 10.0;
  for (int a = 12; a < 64; a++) orders[n++] = a;
}

/* Σ sign_k·exp(log_k), kept as (largest log seen, sum scaled by it) so no term overflows. */
typedef struct {
  double max;
  double scaled;
} log_sum;

static void log_sum_add(log_sum *s, double log_term, int sign) {
  if (log_term == -INFINITY) return;
  if (log_term > s->max) {
    s->scaled = s->scaled * exp(s->max - log_term) + sign;
    s->max = log_term;
  } else {
    s->scaled += sign * exp(log_term - s->max);
  }
}

static double log_sum_value(const log_sum *s) { return s->scaled > 0 ? s->max + log(s->scaled) : -INFINITY; }

/* log(erfc(x)). erfc itself is accurate to a few ulp until it nears the subnormal range
 * (x ≈ 26.5); beyond that use the asymptotic series
 * erfc(x) = exp(−x²)/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸) − ...),
 * whose first omitted term is below 1e-14 there. */
static double log_erfc(double x) {
  if (x < 26.0) return log(erfc(x));
  double u = 1.0 / (2.0 * x * x);
  double series = 1.0 - u * (1.0 - 3.0 * u * (1.0 - 5.0 * u * (1.0 - 7.0 * u)));
  return -x * x - log(x) - 0.5 * log(M_PI) + log(series);
}

static double log_a_integer(double q, double sigma, int alpha) {
  log_sum acc = {-INFINITY, 0.0};
  double log_binom = 0.0;  /* log C(alpha, i), built up term by term */
  for (int i = 0; i <= alpha; i++) {
    if (i > 0) log_binom += log((double)(alpha - i + 1)) - log((double)i);
    double term = log_binom + i * log(q) + (alpha - i) * log1p(-q) + (double)i * (i - 1) / (2.0 * sigma * sigma);
    log_sum_add(&acc, term, 1);
  }
  return log_sum_value(&acc);
}

/* A term below e^-45 ≈ 3e-20 cannot change A_α ≥ 1 in double precision; the series only
 * decays for good once i has passed α, so the cut-off is not tested before that. */
#define FRAC_TERM_CUTOFF (-45.0)
#define FRAC_MAX_TERMS 1000000

static double log_a_fractional(double q, double sigma, double alpha) {
  log_sum below = {-INFINITY, 0.0}, above = {-INFINITY, 0.0};  /* the halves (−∞, z0] and [z0, ∞) */
  double z0 = sigma * sigma * log(1.0 / q - 1.0) + 0.5;
  double log_q = log(q), log_1mq = log1p(-q), two_var = 2.0 * sigma * sigma, scale = M_SQRT2 * sigma;
  double log_binom = 0.0;  /* log |C(alpha, i)|, sign in binom_sign */
  int binom_sign = 1;
  for (int i = 0; i < FRAC_MAX_TERMS; i++) {
    if (i > 0) {
      double factor = alpha - i + 1;
      log_binom += log(fabs(factor)) - log((double)i);
      if (factor < 0) binom_sign = -binom_sign;
    }
    double j = alpha - i;
    double s0 = log_binom + i * log_q + j * log_1mq + (double)i * (i - 1) / two_var - M_LN2 + log_erfc((i - z0) / scale);
    double s1 = log_binom + j * log_q + i * log_1mq + j * (j - 1) / two_var - M_LN2 + log_erfc((z0 - j) / scale);
    log_sum_add(&below, s0, binom_sign);
    log_sum_add(&above, s1, binom_sign);
    if (i > alpha && fmax(s0, s1) < FRAC_TERM_CUTOFF) {
      log_sum total = below;
      log_sum_add(&total, log_sum_value(&above), 1);
      return log_sum_value(&total);
    }
  }
  return NAN;
}

double rdp_sampled_gaussian(double q, double noise_multiplier, double order) {
  if (!(q >= 0.0 && q <= 1.0) || !(noise_multiplier >= 0.0) || !(order > 1.0)) return NAN;
  if (q == 0.0) return 0.0;
  if (noise_multiplier == 0.0 || isinf(order)) return INFINITY;
  if (q == 1.0) return order / (2.0 * noise_multiplier * noise_multiplier);
  double log_a = order == floor(order) && order <= 1e6 ? log_a_integer(q, noise_multiplier, (int)order)
                                                       : log_a_fractional(q, noise_multiplier, order);
  return log_a / (order - 1.0);
}

int rdp_compute(double q, double noise_multiplier, long steps, const double *orders, int n_orders, double *rdp) {
  if (!(q >= 0.0 && q <= 1.0)) {
    log_error("rdp: sampling rate q must be in [0, 1], got %g", q);
    return -1;
  }
  if (!(noise_multiplier >= 0.0) || isinf(noise_multiplier)) {
    log_error("rdp: noise multiplier must be finite and >= 0, got %g", noise_multiplier);
    return -1;
  }
  if (steps < 0) {
    log_error("rdp: steps must be >= 0, got %ld", steps);
    return -1;
  }
  for (int i = 0; i < n_orders; i++) {
    if (!(orders[i] > 1.0)) {
      log_error("rdp: order #%d must be > 1, got %g", i + 1, orders[i]);
      return -1;
    }
    double one = rdp_sampled_gaussian(q, noise_multiplier, orders[i]);
    if (isnan(one)) {
      log_error("rdp: the series for order %g (q=%g, z=%g) did not converge", orders[i], q, noise_multiplier);
      return -1;
    }
    rdp[i] = steps == 0 ? 0.0 : one * (double)steps;
  }
  return 0;
}

/* ε at one order; +inf where the bound is unusable. */
static double epsilon_at(double order, double rdp, double delta, rdp_conversion conversion) {
  if (isnan(rdp) || isinf(rdp)) return INFINITY;
  if (conversion == RDP_CONVERSION_CLASSIC) return rdp - log(delta) / (order - 1.0);
  /* δ ≥ sqrt(1 − exp(−KL)) with KL ≤ rdp: the guarantee already holds with ε = 0. */
  if (delta * delta + expm1(-rdp) >= 0.0) return 0.0;
  /* The improved bound loses all precision as α → 1 and is useless there anyway. */
  if (order <= 1.01) return INFINITY;
  return rdp + log1p(-1.0 / order) - (log(delta) + log(order)) / (order - 1.0);
}

double rdp_epsilon(const double *orders, const double *rdp, int n_orders, double delta, rdp_conversion conversion,
                   double *best_order) {
  double best = INFINITY;
  *best_order = NAN;
  if (!(delta > 0.0 && delta < 1.0)) return NAN;
  for (int i = 0; i < n_orders; i++) {
    double eps = epsilon_at(orders[i], rdp[i], delta, conversion);
    if (eps < best) {
      best = eps;
      *best_order = orders[i];
    }
  }
  return best < 0.0 ? 0.0 : best;
}
