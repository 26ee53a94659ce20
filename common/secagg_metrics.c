/* See secagg_metrics.h. */
#include "secagg_metrics.h"

#include <math.h>

static void encode_loss(double loss, double range, float *out) {
  if (!isfinite(loss)) { /* not reported (NaN), or diverged: the pooled figure leaves it out */
    out[0] = out[1] = 0;
    return;
  }
  double clamped = loss < 0 ? 0 : loss > SECAGG_LOSS_MAX ? SECAGG_LOSS_MAX : loss;
  out[0] = (float)range;
  out[1] = (float)(range * clamped / SECAGG_LOSS_MAX);
}

void secagg_metrics_encode(double train_loss, double val_loss, double range, float *out) {
  encode_loss(train_loss, range, out);
  encode_loss(val_loss, range, out + 2);
}

/* The indicator's sum is an exact zero when no site reported the loss (zeros encode and mask
 * to zeros), so the test needs no tolerance. */
static double decode_loss(const float *mean) { return mean[0] > 0 ? SECAGG_LOSS_MAX * mean[1] / mean[0] : NAN; }

void secagg_metrics_decode(const float *mean, double *train_loss, double *val_loss) {
  *train_loss = decode_loss(mean);
  *val_loss = decode_loss(mean + 2);
}
