#include "dp.h"

#include <math.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "log.h"
#include "rdp.h"

double dp_delta_norm(const float *update, const float *global, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)update[i] - (double)global[i];
    s += d * d;
  }
  return sqrt(s);
}

double dp_clip_update(float *update, const float *global, size_t n, double clip) {
  double norm = dp_delta_norm(update, global, n), now = norm;
  /* Rounding g + s·d back to float can leave the norm a few ulps above the bound; shrinking a
   * little more until the exact check passes makes the bound hold for what is sent, bit for bit. */
  for (int tries = 0; now > clip && tries < 16; tries++) {
    double s = clip / now * (1.0 - ldexp(1.0, -24) * (1 << tries));
    for (size_t i = 0; i < n; i++)
      update[i] = (float)((double)global[i] + ((double)update[i] - (double)global[i]) * s);
    now = dp_delta_norm(update, global, n);
  }
  if (now > clip)  /* not seen in practice (the last tries shrink by 2^-9 more): send no change */
    for (size_t i = 0; i < n; i++) update[i] = global[i];
  return norm;
}

enum { NOISE_PAIRS = 256 };  /* normals are drawn in pairs; 256 pairs = 4 KiB of keystream = 64 blocks */

int dp_noise_add(double *out, size_t n, double std, const uint8_t key[DP_KEY_BYTES]) {
  static const uint8_t nonce[CRYPTO_NONCE_BYTES] = {'f', 'e', 'd', 'l', 'o', 'r', 'a', '-', 'd', 'p', 0, 0};
  uint64_t words[2 * NOISE_PAIRS];
  uint32_t block = 0;
  for (size_t done = 0; done < n; done += 2 * NOISE_PAIRS) {
    if (crypto_chacha20(key, nonce, block, NULL, (uint8_t *)words, sizeof words) != 0) {
      log_error("dp: the noise keystream failed at block %u", block);
      return -1;
    }
    block += sizeof words / 64;
    for (size_t k = 0; k < NOISE_PAIRS && done + 2 * k < n; k++) {
      /* Uniforms in (0, 1), never 0, so the logarithm is finite. */
      double u1 = ((double)(words[2 * k] >> 11) + 0.5) * ldexp(1.0, -53);
      double u2 = ((double)(words[2 * k + 1] >> 11) + 0.5) * ldexp(1.0, -53);
      double r = std * sqrt(-2.0 * log(u1));
      out[done + 2 * k] += r * cos(2.0 * M_PI * u2);
      if (done + 2 * k + 1 < n) out[done + 2 * k + 1] += r * sin(2.0 * M_PI * u2);
    }
  }
  return 0;
}

double dp_site_noise_std(double noise_multiplier, double clip, int min_clients) {
  return noise_multiplier * clip / sqrt(min_clients > 0 ? min_clients : 1);
}

double dp_epsilon(double q, double noise_multiplier, long rounds, double delta) {
  double orders[RDP_DEFAULT_ORDER_COUNT], rdp[RDP_DEFAULT_ORDER_COUNT], order;
  rdp_default_orders(orders);
  if (rounds <= 0) return 0;
  if (rdp_compute(q, noise_multiplier, rounds, orders, RDP_DEFAULT_ORDER_COUNT, rdp) != 0) return INFINITY;
  return rdp_epsilon(orders, rdp, RDP_DEFAULT_ORDER_COUNT, delta, RDP_CONVERSION_IMPROVED, &order);
}

int dp_rounds_within(double q, double noise_multiplier, double delta, double budget, int max_rounds) {
  /* ε grows with the rounds: bisect for the last one within the budget. */
  if (dp_epsilon(q, noise_multiplier, max_rounds, delta) <= budget) return max_rounds;
  int lo = 0, hi = max_rounds;  /* ε(lo) ≤ budget < ε(hi) */
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (dp_epsilon(q, noise_multiplier, mid, delta) <= budget)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

double dp_site_apply(float *update, const float *global, size_t n, double clip, double noise_std) {
  double norm = dp_clip_update(update, global, n, clip);
  if (noise_std <= 0) return norm;
  uint8_t key[DP_KEY_BYTES];
  double *noise = calloc(n + 1, sizeof *noise);
  int rc = noise ? crypto_random(key, sizeof key) : -1;
  if (rc == 0) rc = dp_noise_add(noise, n, noise_std, key);
  if (rc == 0)
    for (size_t i = 0; i < n; i++) update[i] = (float)((double)update[i] + noise[i]);
  OPENSSL_cleanse(key, sizeof key);
  free(noise);
  if (rc != 0) log_error("dp: cannot draw this site's noise share (%zu values)", n);
  return rc == 0 ? norm : -1;
}
