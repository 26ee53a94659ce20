/* Byzantine-robust aggregation of client updates. Every function takes the n updates as one
 * row-major array (n, d), one client per row, and optional per-client weights (NULL: equal),
 * e.g. the number of training examples. Non-finite updates are refused (-1, logged with the
 * client and coordinate): robust rules order values, and NaN has no place in an order. */
#ifndef FEDLORA_ROBUST_H
#define FEDLORA_ROBUST_H

#include <stddef.h>

/* out (d): per coordinate, the weighted median: the value where the cumulative weight reaches
 * half the total; if it lands exactly on half, the midpoint of the two values around it (the
 * ordinary median, for equal weights and even n). */
int robust_median(const float *updates, const float *weights, int n, size_t d, float *out);

/* out (d): per coordinate, drop the floor(beta·n) smallest and largest values and take the
 * weighted mean of the rest. 0 ≤ beta < 0.5. */
int robust_trimmed_mean(const float *updates, const float *weights, int n, size_t d, double beta, float *out);

/* scores (n): Krum's score of each update, the sum of squared L2 distances to its n − f − 2
 * nearest other updates (Blanchard et al. 2017). Needs n > 2f + 2. */
int robust_krum_scores(const float *updates, int n, size_t d, int f, double *scores);

/* out (d): weighted mean of the m updates with the lowest Krum scores (m = 1 is Krum itself;
 * ties go to the lower index). selected (m), if not NULL, receives their indices, best first. */
int robust_multi_krum(const float *updates, const float *weights, int n, size_t d, int f, int m, float *out,
                      int *selected);

/* Scales update (d) so its L2 norm is at most bound (> 0); returns the norm it had. */
double robust_norm_bound(float *update, size_t d, double bound);

#endif
