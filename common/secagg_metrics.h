/* A site's losses under secure aggregation. They are measurements of its private data, so they
 * do not travel in the clear: they ride in the masked vector as SECAGG_METRIC_WORDS coordinates
 * after the update, each weighted like it, and the aggregator learns only their weighted means.
 *
 * Coordinates (each in [0, range], so the masked sum's overflow bound still holds):
 *   [has_train·range, has_train·range·train_loss/L, has_val·range, has_val·range·val_loss/L]
 * with L = SECAGG_LOSS_MAX and a loss clamped to [0, L]. A loss the site does not report (NaN:
 * no validation split, or a plan under differential privacy, whose guarantee covers only the
 * noised update) contributes exact zeros, so a pooled loss nobody reported decodes as NaN. */
#ifndef FEDLORA_SECAGG_METRICS_H
#define FEDLORA_SECAGG_METRICS_H

enum { SECAGG_METRIC_WORDS = 4 };
#define SECAGG_LOSS_MAX 64.0

/* out (SECAGG_METRIC_WORDS) = the coordinates above. */
void secagg_metrics_encode(double train_loss, double val_loss, double range, float *out);

/* mean (SECAGG_METRIC_WORDS): the unmasked weighted mean of the sites' coordinates. Sets the
 * pooled losses Σ w·loss / Σ w over the sites that reported one, or NaN when none did. */
void secagg_metrics_decode(const float *mean, double *train_loss, double *val_loss);

#endif
