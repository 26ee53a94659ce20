/* A site's own report of its round (SiteMetrics) as the JSON object the aggregator keeps with the
 * update and in the round's metrics line. One definition for plain and secure aggregation. */
#ifndef FEDLORA_SITE_METRICS_H
#define FEDLORA_SITE_METRICS_H

#include <jansson.h>

#include "fedlora.pb-c.h"

/* {train_loss, val_loss_before (null when not finite), tokens, steps, seconds, eval_seconds};
 * m may be NULL (every field then empty). */
json_t *site_metrics_json(const Fedlora__V1__SiteMetrics *m);

#endif
