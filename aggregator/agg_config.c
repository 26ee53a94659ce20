/* The aggregator's configuration schema and its cross-field rules; see agg_config.h. */
#include "agg_config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "secagg_math.h"

/* Enum members are written through int pointers by config.c. */
_Static_assert(sizeof(log_level) == sizeof(int) && sizeof(optim_kind) == sizeof(int) &&
                   sizeof(schedule_kind) == sizeof(int) && sizeof(server_opt_strategy) == sizeof(int) &&
                   sizeof(agg_weighting) == sizeof(int) && sizeof(agg_lora_mode) == sizeof(int) &&
                   sizeof(agg_dp_mode) == sizeof(int) && sizeof(agg_robust) == sizeof(int),
               "enum members must be int-sized");

/* In the order of the enums they index (log_level, optim_kind, schedule_kind, agg_lora_mode,
 * agg_dp_mode); test_config checks them against the engine's own parsers. */
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const optimizers[] = {"adamw", "sgd", NULL};
static const char *const schedules[] = {"constant", "cosine", NULL};
static const char *const lora_modes[] = {"standard", "ffa", NULL};
static const char *const dp_modes[] = {"off", "central", "distributed", NULL};
static const char *const robust_rules[] = {"none", "median", "trimmed_mean", "krum", "multi_krum", NULL};

static int targets_mask(const config_list *l, unsigned *mask, char *err, size_t err_size) {
  char joined[512];
  size_t len = 0;
  joined[0] = '\0';
  for (int i = 0; i < l->count && len < sizeof joined; i++)
    len += (size_t)snprintf(joined + len, sizeof joined - len, "%s%s", i ? "," : "", l->items[i]);
  if (len >= sizeof joined) return snprintf(err, err_size, "too many LoRA targets"), -1;
  return lora_targets_parse(joined, mask, err, err_size);
}

static int check_targets(const void *value, char *err, size_t err_size) {
  unsigned mask;
  const config_list *l = value;
  return l->count ? targets_mask(l, &mask, err, err_size) : 0;  /* empty: refused as required */
}

#define AT(member) offsetof(agg_config, member)
#define INTS 1e9  /* "no practical upper bound" for counts and seconds */

static const config_field fields[] = {
    {"server", "listen", CFG_STRING, AT(server.listen), "127.0.0.1:7443", .check = config_check_host_port,
     .help = "address:port the gRPC server listens on (0.0.0.0:PORT for every interface)"},
    {"server", "cert", CFG_PATH, AT(server.cert), NULL, .flags = CFG_REQUIRED,
     .help = "the aggregator's TLS certificate (PEM; serverAuth, SAN = the name sites connect to)"},
    {"server", "key", CFG_PATH, AT(server.key), NULL, .flags = CFG_REQUIRED,
     .help = "its private key (unencrypted PEM, mode 0600)"},
    {"server", "manifest_cert", CFG_PATH, AT(server.manifest_cert), NULL,
     .help = "certificate whose key signs each round's manifest (sites accept only a serverAuth certificate from "
             "their CA naming the aggregator); unset: cert"},
    {"server", "manifest_key", CFG_PATH, AT(server.manifest_key), NULL,
     .help = "private key of manifest_cert (set both or neither); unset: key"},
    {"server", "client_ca", CFG_PATH, AT(server.client_ca), NULL, .flags = CFG_REQUIRED,
     .help = "CA certificate(s) that issued the sites' client certificates (PEM, may hold several)"},
    {"server", "crl", CFG_PATH, AT(server.crl), NULL,
     .help = "certificate revocation list of client_ca (PEM); revoked site certificates are refused during the "
             "TLS handshake; SIGHUP rereads it without stopping the run"},
    {"server", "allowed_clients", CFG_LIST, AT(server.allowed_clients), NULL, .flags = CFG_REQUIRED,
     .help = "Common Names of the site certificates admitted to the run, comma-separated"},
    {"server", "state_dir", CFG_PATH, AT(server.state_dir), NULL, .flags = CFG_REQUIRED,
     .help = "directory for the run's durable state (adapters, updates, round log); created if missing"},
    {"server", "threads", CFG_INT, AT(server.threads), "8", 1, 256, .help = "RPC handler threads"},
    {"server", "poll_seconds", CFG_INT, AT(server.poll_seconds), "10", 1, 3600,
     .help = "AwaitRound long-poll: a site waiting for a round is answered WAIT after this long"},
    {"server", "idle_timeout_s", CFG_INT, AT(server.idle_timeout_s), "60", 1, 3600,
     .help = "a call whose client sends or reads nothing for this long is cut off (DEADLINE_EXCEEDED)"},
    {"server", "max_update_mb", CFG_INT, AT(server.max_update_mb), "512", 1, 65536,
     .help = "largest update payload accepted from a site, MiB"},
    {"server", "log_level", CFG_ENUM, AT(server.log_level), "info", .choices = log_levels,
     .help = "least severe log level written to stderr"},

    {"model", "base", CFG_PATH, AT(model.base), NULL, .flags = CFG_REQUIRED,
     .help = "base model (Hugging Face directory or llama2.c checkpoint); every site must hold the same"},
    {"model", "lora_rank", CFG_INT, AT(model.lora_rank), "8", 1, 4096, .help = "LoRA rank r"},
    {"model", "lora_alpha", CFG_DOUBLE, AT(model.lora_alpha), "16", 0, 1e6, .flags = CFG_ABOVE_MIN,
     .help = "LoRA alpha; the adapter is scaled by alpha / r (alpha / sqrt(r) with use_rslora)"},
    {"model", "lora_targets", CFG_LIST, AT(model.lora_targets), "q_proj,v_proj", .flags = CFG_REQUIRED,
     .check = check_targets,
     .help = "adapted projections: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj (or q, k, ..., all)"},
    {"model", "lora_dropout", CFG_DOUBLE, AT(model.lora_dropout), "0", 0, 1, .flags = CFG_BELOW_MAX,
     .help = "dropout probability on the LoRA input during local training"},
    {"model", "use_rslora", CFG_BOOL, AT(model.use_rslora), "false", .help = "rank-stabilised scale alpha / sqrt(r)"},
    {"model", "lora_mode", CFG_ENUM, AT(model.lora_mode), "standard", .choices = lora_modes,
     .help = "standard: A and B trained and averaged; ffa: A frozen from init_seed at every site, only B sent"},
    {"model", "init_seed", CFG_UINT, AT(model.init_seed), "0", 0, 18446744073709551615.0,
     .help = "seed of A's initialisation; 0 derives it from rounds.seed"},

    {"rounds", "total", CFG_INT, AT(rounds.total), "3", 1, INTS, .help = "rounds in the run"},
    {"rounds", "min_clients", CFG_INT, AT(rounds.min_clients), "1", 1, INTS,
     .help = "quorum: updates needed for a round to commit"},
    {"rounds", "clients_per_round", CFG_INT, AT(rounds.clients_per_round), "0", 0, INTS,
     .help = "sites selected per round (seeded draw); 0 selects every joined site"},
    {"rounds", "deadline_s", CFG_INT, AT(rounds.deadline_s), "600", 1, INTS,
     .help = "a round still below quorum after this many seconds is aborted and reopened"},
    {"rounds", "wait_after_quorum_s", CFG_INT, AT(rounds.wait_after_quorum_s), "30", 0, INTS,
     .help = "once quorum is reached, how long to wait for the other selected sites"},
    {"rounds", "seed", CFG_UINT, AT(rounds.seed), "0", 0, 18446744073709551615.0,
     .help = "run seed: site selection and local training seeds derive from it"},

    {"train", "optimizer", CFG_ENUM, AT(train.optimizer), "adamw", .choices = optimizers,
     .help = "local optimizer (moments restart every round)"},
    {"train", "lr", CFG_DOUBLE, AT(train.lr), "1e-3", 0, 10, .flags = CFG_ABOVE_MIN,
     .help = "local peak learning rate"},
    {"train", "local_steps", CFG_INT, AT(train.local_steps), "20", 0, INTS,
     .help = "optimizer steps per round; 0 lets local_epochs decide"},
    {"train", "local_epochs", CFG_DOUBLE, AT(train.local_epochs), "0", 0, 1e6,
     .help = "passes over the site's training windows per round; 0 lets local_steps decide"},
    {"train", "batch", CFG_INT, AT(train.batch), "8", 1, 65536, .help = "sequences per step"},
    {"train", "seq_len", CFG_INT, AT(train.seq_len), "128", 1, 1 << 20, .help = "tokens per sequence"},
    {"train", "weight_decay", CFG_DOUBLE, AT(train.weight_decay), "0", 0, 1e3, .help = "decoupled weight decay"},
    {"train", "fedprox_mu", CFG_DOUBLE, AT(train.fedprox_mu), "0", 0, 1e6,
     .help = "FedProx proximal weight mu (pulls local weights toward the round's global adapter); 0 disables"},
    {"train", "grad_clip", CFG_DOUBLE, AT(train.grad_clip), "1.0", 0, 1e9,
     .help = "global gradient-norm bound; 0 disables"},
    {"train", "beta1", CFG_DOUBLE, AT(train.beta1), "0.9", 0, 1, .flags = CFG_BELOW_MAX, .help = "AdamW beta1"},
    {"train", "beta2", CFG_DOUBLE, AT(train.beta2), "0.999", 0, 1, .flags = CFG_BELOW_MAX, .help = "AdamW beta2"},
    {"train", "eps", CFG_DOUBLE, AT(train.eps), "1e-8", 0, 1, .flags = CFG_ABOVE_MIN, .help = "AdamW epsilon"},
    {"train", "warmup", CFG_INT, AT(train.warmup), "0", 0, INTS,
     .help = "linear warmup steps at the start of each round"},
    {"train", "schedule", CFG_ENUM, AT(train.schedule), "constant", .choices = schedules,
     .help = "learning-rate schedule within a round after warmup"},

    {"aggregation", "strategy", CFG_ENUM, AT(aggregation.strategy), "fedavg", .choices = server_opt_names,
     .help = "server optimiser applied to the weighted mean delta (Reddi et al. 2021)"},
    {"aggregation", "server_lr", CFG_DOUBLE, AT(aggregation.server_lr), "1.0", 0, 1e3, .flags = CFG_ABOVE_MIN,
     .help = "server learning rate eta; fedavg with 1.0 is plain averaging"},
    {"aggregation", "beta1", CFG_DOUBLE, AT(aggregation.beta1), "0.9", 0, 1, .flags = CFG_BELOW_MAX,
     .help = "fedavgm momentum; first-moment decay of fedadam/fedyogi/fedadagrad"},
    {"aggregation", "beta2", CFG_DOUBLE, AT(aggregation.beta2), "0.99", 0, 1, .flags = CFG_BELOW_MAX,
     .help = "second-moment decay of fedadam and fedyogi"},
    {"aggregation", "tau", CFG_DOUBLE, AT(aggregation.tau), "1e-3", 0, 1e3, .flags = CFG_ABOVE_MIN,
     .help = "adaptivity floor of fedadam/fedyogi/fedadagrad; their v starts at tau^2"},
    {"aggregation", "weighting", CFG_ENUM, AT(aggregation.weighting), "examples", .choices = agg_weighting_names,
     .help = "weight of a site's update: its training examples, its tokens, or 1"},
    {"aggregation", "robust", CFG_ENUM, AT(aggregation.robust), "none", .choices = robust_rules,
     .help = "robust rule instead of the weighted mean: median, trimmed_mean, krum, multi_krum (secagg off; "
             "keeps every update of a round in memory)"},
    {"aggregation", "trim_beta", CFG_DOUBLE, AT(aggregation.trim_beta), "0.1", 0, 0.5, .flags = CFG_BELOW_MAX,
     .help = "trimmed_mean: fraction of the values dropped at each end, per coordinate"},
    {"aggregation", "krum_f", CFG_INT, AT(aggregation.krum_f), "1", 0, 1000,
     .help = "krum, multi_krum: Byzantine sites tolerated (needs more than 2f + 2 updates)"},
    {"aggregation", "krum_m", CFG_INT, AT(aggregation.krum_m), "0", 0, 1000,
     .help = "multi_krum: updates with the best scores that are averaged; 0 = n - f"},
    {"aggregation", "norm_bound", CFG_DOUBLE, AT(aggregation.norm_bound), "0", 0, 1e6,
     .help = "each site's delta is scaled down to this L2 norm before aggregation (secagg off); 0 = off"},

    {"privacy", "secagg", CFG_BOOL, AT(privacy.secagg), "off",
     .help = "secure aggregation: the server sees only the sum of the masked updates"},
    {"privacy", "dp", CFG_ENUM, AT(privacy.dp), "off", .choices = dp_modes,
     .help = "differential privacy: central (server adds the noise) or distributed (sites add shares; needs secagg)"},
    {"privacy", "dp_clip", CFG_DOUBLE, AT(privacy.dp_clip), "1.0", 0, 1e6, .flags = CFG_ABOVE_MIN,
     .help = "L2 bound of each site's update under DP"},
    {"privacy", "dp_noise_multiplier", CFG_DOUBLE, AT(privacy.dp_noise_multiplier), "1.0", 0, 1e3,
     .help = "Gaussian noise std = multiplier * dp_clip"},
    {"privacy", "dp_delta", CFG_DOUBLE, AT(privacy.dp_delta), "1e-5", 0, 1, .flags = CFG_ABOVE_MIN | CFG_BELOW_MAX,
     .help = "delta of the (epsilon, delta) guarantee reported"},
    {"privacy", "dp_epsilon_budget", CFG_DOUBLE, AT(privacy.dp_epsilon_budget), "0", 0, 1e6,
     .help = "stop the run before epsilon would exceed this; 0 = no budget"},
    {"privacy", "secagg_threshold", CFG_INT, AT(privacy.secagg_threshold), "0", 0, INTS,
     .help = "Shamir threshold t: shares needed to recover a dropped site's masks; above half the sites; "
             "0 = automatic (the smallest above 2/3)"},
    {"privacy", "secagg_clip_range", CFG_DOUBLE, AT(privacy.secagg_clip_range), "1.0", 0, 1e6, .flags = CFG_ABOVE_MIN,
     .help = "update values are clipped to [-range, range] before fixed-point encoding"},
    {"privacy", "secagg_scale", CFG_DOUBLE, AT(privacy.secagg_scale), "1048576", 0, 2147483647.0,
     .flags = CFG_ABOVE_MIN,
     .help = "fixed-point scale (2^20: steps of 1e-6; range 1 leaves room for 2047 sites in 32 bits)"},
    {"privacy", "secagg_stage_s", CFG_INT, AT(privacy.secagg_stage_s), "30", 1, 86400,
     .help = "the key, share and unmask stages of secure aggregation close at this age (or when all answered)"},
    {"privacy", "secagg_transcript", CFG_BOOL, AT(privacy.secagg_transcript), "off",
     .help = "keep every secure-aggregation message received in state_dir/secagg/ (an audit of what the server saw)"},
    {"audit", "file", CFG_PATH, AT(audit.file), NULL,
     .help = "tamper-evident audit log (JSON lines, SHA-256 chained; check with `fedlora audit verify`); unset: none"},
    {"metrics", "listen", CFG_STRING, AT(metrics.listen), NULL, .check = config_check_host_port,
     .help = "serve Prometheus metrics at http://HOST:PORT/metrics (numeric IP, e.g. 127.0.0.1:9464); unset: none"},
    {"metrics", "linger_s", CFG_INT, AT(metrics.linger_s), "0", 0, 86400,
     .help = "after the run finishes, keep serving this many seconds more, so a scraper that polls every "
             "few seconds sees the final state (0: exit once every site has the final adapter)"},
};

static int validate(void *p, config_ctx *ctx) {
  agg_config *c = p;
  int sites = c->server.allowed_clients.count;
  char err[256];
  targets_mask(&c->model.lora_targets, &c->model.lora_target_mask, err, sizeof err);  /* checked on load */
  if (!c->server.manifest_cert != !c->server.manifest_key)
    return config_fail(ctx, "server", c->server.manifest_cert ? "manifest_key" : "manifest_cert",
                       "must be set together with %s (or neither: the TLS cert and key sign the manifests)",
                       c->server.manifest_cert ? "manifest_cert" : "manifest_key");
  if (c->rounds.min_clients > sites)
    return config_fail(ctx, "rounds", "min_clients", "%d exceeds the %d site(s) in server.allowed_clients",
                       c->rounds.min_clients, sites);
  if (c->rounds.clients_per_round != 0 && c->rounds.clients_per_round < c->rounds.min_clients)
    return config_fail(ctx, "rounds", "clients_per_round",
                       "%d is below rounds.min_clients = %d (0 selects every site)", c->rounds.clients_per_round,
                       c->rounds.min_clients);
  if (c->rounds.clients_per_round > sites)
    return config_fail(ctx, "rounds", "clients_per_round", "%d exceeds the %d site(s) in server.allowed_clients",
                       c->rounds.clients_per_round, sites);
  if ((c->train.local_steps > 0) == (c->train.local_epochs > 0))
    return config_fail(ctx, "train", "local_steps",
                       "exactly one of local_steps (%d) and local_epochs (%g) must be > 0: set the other to 0",
                       c->train.local_steps, c->train.local_epochs);
  if (c->train.local_steps > 0 && c->train.warmup > c->train.local_steps)
    return config_fail(ctx, "train", "warmup", "%d exceeds local_steps = %d", c->train.warmup, c->train.local_steps);
  if (c->privacy.dp != AGG_DP_OFF && !(c->privacy.dp_noise_multiplier > 0))
    return config_fail(ctx, "privacy", "dp_noise_multiplier", "must be > 0 when dp is on");
  if (c->privacy.dp == AGG_DP_DISTRIBUTED && !c->privacy.secagg)
    return config_fail(
        ctx, "privacy", "dp",
        "distributed noise protects nothing without secagg = on (the server would see each noisy share)");
  if (c->aggregation.robust != AGG_ROBUST_NONE && c->privacy.secagg)
    return config_fail(ctx, "aggregation", "robust",
                       "%s needs every site's update, which secure aggregation hides by design (the aggregator "
                       "sees only the sum): set privacy.secagg = off or aggregation.robust = none",
                       robust_rules[c->aggregation.robust]);
  if ((c->aggregation.robust != AGG_ROBUST_NONE || c->aggregation.norm_bound > 0) && c->privacy.dp != AGG_DP_OFF)
    return config_fail(ctx, "aggregation", c->aggregation.robust != AGG_ROBUST_NONE ? "robust" : "norm_bound",
                       "cannot be combined with dp: the noise is calibrated to the plain sum of dp_clip-bounded "
                       "updates (dp_clip already bounds every update)");
  if (c->aggregation.norm_bound > 0 && c->privacy.secagg)
    return config_fail(ctx, "aggregation", "norm_bound",
                       "is applied by the aggregator, which sees only the masked sum under secagg; with secagg "
                       "bound the sites' updates by dp = central/distributed and dp_clip");
  if ((c->aggregation.robust == AGG_ROBUST_KRUM || c->aggregation.robust == AGG_ROBUST_MULTI_KRUM) &&
      c->rounds.min_clients <= 2 * c->aggregation.krum_f + 2)
    return config_fail(ctx, "rounds", "min_clients",
                       "%d: %s with krum_f = %d needs a quorum above 2f + 2 = %d", c->rounds.min_clients,
                       robust_rules[c->aggregation.robust], c->aggregation.krum_f, 2 * c->aggregation.krum_f + 2);
  if (c->privacy.secagg) {
    if (c->rounds.min_clients < 2)
      return config_fail(ctx, "rounds", "min_clients",
                         "secure aggregation needs at least 2 (a sum of one update is that update)");
    int least = sites / 2 + 1 > 2 ? sites / 2 + 1 : 2;
    if (c->privacy.secagg_threshold != 0 &&
        (c->privacy.secagg_threshold < least || c->privacy.secagg_threshold > sites))
      return config_fail(ctx, "privacy", "secagg_threshold",
                         "%d must be 0 (automatic) or in [%d, %d sites]: above half the sites, or an aggregator "
                         "could unmask one site's update alone (and the sites refuse such a round)",
                         c->privacy.secagg_threshold, least, sites);
    if (c->privacy.secagg_threshold > c->rounds.min_clients)
      return config_fail(ctx, "privacy", "secagg_threshold",
                         "%d exceeds rounds.min_clients = %d: a round opens with that many sites, and fewer sites "
                         "than the threshold cannot run secure aggregation",
                         c->privacy.secagg_threshold, c->rounds.min_clients);
    if (secagg_fixed_check(c->privacy.secagg_clip_range, c->privacy.secagg_scale, sites) != 0)
      return config_fail(ctx, "privacy", "secagg_scale",
                         "%g x secagg_clip_range %g x %d sites overflows the 32-bit masked sum; lower it",
                         c->privacy.secagg_scale, c->privacy.secagg_clip_range, sites);
  }
  return 0;
}

const config_schema agg_config_schema = {"aggregator", sizeof(agg_config), fields, sizeof fields / sizeof fields[0],
                                         validate};

int agg_config_load(agg_config *cfg, const char *path, const char *const *sets, int n_sets, char *err,
                    size_t err_size) {
  return config_load(&agg_config_schema, cfg, path, sets, n_sets, err, err_size);
}

void agg_config_free(agg_config *cfg) { config_free(&agg_config_schema, cfg); }

server_opt_config agg_config_server_opt(const agg_config *cfg) {
  return (server_opt_config){cfg->aggregation.strategy, cfg->aggregation.server_lr, cfg->aggregation.beta1,
                             cfg->aggregation.beta2, cfg->aggregation.tau};
}
