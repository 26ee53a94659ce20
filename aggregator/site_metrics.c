/* See site_metrics.h. */
#include "site_metrics.h"

#include <math.h>

static json_t *finite_or_null(int have, double v) { return have && isfinite(v) ? json_real(v) : json_null(); }

json_t *site_metrics_json(const Fedlora__V1__SiteMetrics *m) {
  json_t *j = json_object();
  json_object_set_new(j, "train_loss", finite_or_null(m != NULL, m ? m->train_loss : 0));
  json_object_set_new(j, "val_loss_before", finite_or_null(m != NULL, m ? m->val_loss_before : 0));
  json_object_set_new(j, "tokens", json_integer(m ? (json_int_t)m->tokens : 0));
  json_object_set_new(j, "steps", json_integer(m ? m->steps : 0));
  /* times are informative only: a site that sends nonsense gets 0 */
  json_object_set_new(j, "seconds", json_real(m && isfinite(m->seconds) ? m->seconds : 0));
  json_object_set_new(j, "eval_seconds", json_real(m && isfinite(m->eval_seconds) ? m->eval_seconds : 0));
  return j;
}
