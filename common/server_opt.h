/* Server optimisers: how the global adapter x moves by the round's mean delta Δ (aggregate.h).
 * Δ is the negative of a pseudo-gradient, so every rule below steps along +Δ. Per coordinate, with
 * η = server_lr:
 *
 *   FedAvg      x ← x + η·Δ                        η = 1 is plain averaging of the sites' adapters
 *   FedAvgM     m ← β1·m + Δ;  x ← x + η·m         heavy-ball momentum without dampening
 *   FedAdagrad  v ← v + Δ²
 *   FedYogi     v ← v − (1 − β2)·Δ²·sign(v − Δ²)   sign(0) = 0
 *   FedAdam     v ← β2·v + (1 − β2)·Δ²
 *               for the three adaptive rules:  m ← β1·m + (1 − β1)·Δ;  x ← x + η·m / (√v + τ)
 *
 * The adaptive rules are Algorithm 2 of Reddi et al. 2021, "Adaptive Federated Optimization"
 * (ICLR), as printed: m starts at 0, v starts at τ² (the paper asks v ≥ τ²; the smallest allowed
 * value keeps the first steps as large as the paper's), and there is NO bias correction of m or v.
 * Flower's FedAdam/FedYogi/FedAdagrad differ on both points (v from 0, Adam bias-corrected), so
 * their numbers do not match these.
 *
 * FedAvgM follows Hsu et al. 2019 ("Measuring the Effects of Non-Identical Data Distribution"),
 * Flower's FedAvgM and torch.optim.SGD(momentum=β1, dampening=0): m accumulates Δ undamped, so
 * β1 = 0 is exactly FedAvg and a steady Δ moves x by η·Δ/(1 − β1) per round (10× at β1 = 0.9;
 * lower η to compensate). The adaptive rules' m is damped by (1 − β1) as the paper writes it.
 *
 * State: one flat float array the caller persists with the adapter, laid out as
 *   FedAvg: nothing;  FedAvgM: m (n);  FedAdagrad, FedYogi, FedAdam: m (n) then v (n)
 * in the adapter's own parameter order. Arithmetic is in double per element; results are
 * stored as float. */
#ifndef FEDLORA_SERVER_OPT_H
#define FEDLORA_SERVER_OPT_H

#include <stddef.h>

/* Values index server_opt_names. */
typedef enum {
  SERVER_OPT_FEDAVG,
  SERVER_OPT_FEDAVGM,
  SERVER_OPT_FEDADAM,
  SERVER_OPT_FEDYOGI,
  SERVER_OPT_FEDADAGRAD,
} server_opt_strategy;

/* "fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad", NULL. */
extern const char *const server_opt_names[];

typedef struct {
  server_opt_strategy strategy;
  double server_lr;  /* η > 0 */
  double beta1;      /* [0, 1): FedAvgM's momentum, the adaptive rules' first-moment decay */
  double beta2;      /* [0, 1): FedAdam's and FedYogi's second-moment decay */
  double tau;        /* > 0: adaptivity floor of the adaptive rules; v starts at τ² */
} server_opt_config;

/* Parses a strategy name (exact, lower case); -1 if unknown. */
int server_opt_parse(const char *name);
/* 0, or -1 with the offending field and value in err. */
int server_opt_check(const server_opt_config *c, char *err, size_t err_size);

/* Number of floats of state for n parameters: 0, n or 2n. */
size_t server_opt_state_floats(server_opt_strategy strategy, size_t n);
/* Initial state (m = 0, v = τ²) into state (server_opt_state_floats). */
void server_opt_state_init(const server_opt_config *c, float *state, size_t n);
/* One round: x (n) moves by delta (n); state is updated in place. Allocates nothing. */
void server_opt_apply(const server_opt_config *c, float *x, const float *delta, float *state, size_t n);

#endif
