/* Rényi DP accountant for the sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019,
 * "Rényi Differential Privacy of the Sampled Gaussian Mechanism"), and the conversion of an RDP
 * curve to an (ε, δ) guarantee. Each step adds N(0, (z·C)²) noise to a sum of clipped (norm C)
 * contributions, each record included independently with probability q (Poisson sampling). */
#ifndef FEDLORA_RDP_H
#define FEDLORA_RDP_H

typedef enum {
  /* Mironov 2017, Prop. 3: ε = rdp − log δ / (α − 1). */
  RDP_CONVERSION_CLASSIC,
  /* Balle et al. 2020 / Canonne, Kamath, Steinke 2020 (Prop. 12):
   * ε = rdp + log1p(−1/α) − (log δ + log α)/(α − 1), as TF Privacy and Opacus compute it. */
  RDP_CONVERSION_IMPROVED,
} rdp_conversion;

/* Opacus' default orders: 1.1, 1.2, ..., 10.9, then 12, 13, ..., 63. */
#define RDP_DEFAULT_ORDER_COUNT 151
void rdp_default_orders(double orders[RDP_DEFAULT_ORDER_COUNT]);

/* RDP of ONE step at order `order` (> 1). q in [0, 1], noise_multiplier > 0 (0 gives +inf).
 * Returns NaN for parameters outside those ranges. */
double rdp_sampled_gaussian(double q, double noise_multiplier, double order);

/* rdp[i] = steps × rdp_sampled_gaussian(q, z, orders[i]). Returns 0, or -1 (logged, naming the
 * offending parameter) if any parameter is out of range. */
int rdp_compute(double q, double noise_multiplier, long steps, const double *orders, int n_orders,
                double *rdp);

/* The smallest ε over the orders for the given δ in (0, 1); *best_order receives the order that
 * attains it (NaN if every order gives +inf). ε is never negative. */
double rdp_epsilon(const double *orders, const double *rdp, int n_orders, double delta,
                   rdp_conversion conversion, double *best_order);

#endif
