/* Server optimisers (FedAvg, FedAvgM, FedAdam, FedYogi, FedAdagrad); see server_opt.h. */
#include "server_opt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const server_opt_names[] = {"fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad", NULL};

int server_opt_parse(const char *name) {
  for (int i = 0; server_opt_names[i]; i++)
    if (strcmp(name, server_opt_names[i]) == 0) return i;
  return -1;
}

static int is_adaptive(server_opt_strategy s) {
  return s == SERVER_OPT_FEDADAM || s == SERVER_OPT_FEDYOGI || s == SERVER_OPT_FEDADAGRAD;
}

int server_opt_check(const server_opt_config *c, char *err, size_t err_size) {
  if ((int)c->strategy < 0 || c->strategy > SERVER_OPT_FEDADAGRAD) {
    snprintf(err, err_size, "server optimiser: unknown strategy %d", (int)c->strategy);
    return -1;
  }
  if (!(c->server_lr > 0) || !isfinite(c->server_lr)) {
    snprintf(err, err_size, "server optimiser: server_lr must be finite and > 0, got %g", c->server_lr);
    return -1;
  }
  if (!(c->beta1 >= 0 && c->beta1 < 1)) {
    snprintf(err, err_size, "server optimiser: beta1 must be in [0, 1), got %g", c->beta1);
    return -1;
  }
  if (!(c->beta2 >= 0 && c->beta2 < 1)) {
    snprintf(err, err_size, "server optimiser: beta2 must be in [0, 1), got %g", c->beta2);
    return -1;
  }
  if (is_adaptive(c->strategy) && (!(c->tau > 0) || !isfinite(c->tau))) {
    snprintf(err, err_size, "server optimiser: tau must be finite and > 0 for %s, got %g",
             server_opt_names[c->strategy], c->tau);
    return -1;
  }
  return 0;
}

size_t server_opt_state_floats(server_opt_strategy strategy, size_t n) {
  if (strategy == SERVER_OPT_FEDAVG) return 0;
  if (strategy == SERVER_OPT_FEDAVGM) return n;
  return 2 * n;
}

void server_opt_state_init(const server_opt_config *c, float *state, size_t n) {
  if (c->strategy == SERVER_OPT_FEDAVG) return;
  memset(state, 0, n * sizeof *state);  /* m */
  if (!is_adaptive(c->strategy)) return;
  float *v = state + n;
  for (size_t i = 0; i < n; i++) v[i] = (float)(c->tau * c->tau);
}

/* Second-moment rules of the adaptive strategies: v after a round with delta d. */
static double second_moment(server_opt_strategy s, double v, double d, double beta2) {
  double d2 = d * d;
  switch (s) {
    case SERVER_OPT_FEDADAGRAD: return v + d2;
    case SERVER_OPT_FEDYOGI: return v - (1 - beta2) * d2 * (double)((v > d2) - (v < d2));
    default: return beta2 * v + (1 - beta2) * d2;  /* FedAdam */
  }
}

void server_opt_apply(const server_opt_config *c, float *x, const float *delta, float *state, size_t n) {
  const double lr = c->server_lr, b1 = c->beta1;
  switch (c->strategy) {
    case SERVER_OPT_FEDAVG:
      for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] + lr * (double)delta[i]);
      return;
    case SERVER_OPT_FEDAVGM:
      for (size_t i = 0; i < n; i++) {
        double m = b1 * (double)state[i] + (double)delta[i];
        state[i] = (float)m;
        x[i] = (float)((double)x[i] + lr * m);
      }
      return;
    default: {
      float *mv = state, *vv = state + n;
      for (size_t i = 0; i < n; i++) {
        double d = delta[i];
        double m = b1 * (double)mv[i] + (1 - b1) * d;
        double v = second_moment(c->strategy, (double)vv[i], d, c->beta2);
        mv[i] = (float)m;
        vv[i] = (float)v;
        x[i] = (float)((double)x[i] + lr * m / (sqrt(v) + c->tau));
      }
    }
  }
}
