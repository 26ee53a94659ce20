/* The aggregator's configuration: an INI file (examples/aggregator.ini documents every key) plus
 * --set overrides, loaded through common/config.h. Enumerations are stored as the engine's own
 * enum types, in the order of the names the file accepts. */
#ifndef FEDLORA_AGG_CONFIG_H
#define FEDLORA_AGG_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "aggregate.h"
#include "config.h"
#include "log.h"
#include "optim.h"
#include "server_opt.h"

/* Values match fedlora.v1.LoraMode and fedlora.v1.DpMode. */
typedef enum { AGG_LORA_STANDARD, AGG_LORA_FFA } agg_lora_mode;
typedef enum { AGG_DP_OFF, AGG_DP_CENTRAL, AGG_DP_DISTRIBUTED } agg_dp_mode;
/* Byzantine-robust rule replacing the weighted mean (common/robust.h); needs every update. */
typedef enum { AGG_ROBUST_NONE, AGG_ROBUST_MEDIAN, AGG_ROBUST_TRIMMED_MEAN, AGG_ROBUST_KRUM, AGG_ROBUST_MULTI_KRUM } agg_robust;

typedef struct {
  struct {
    char *listen;                 /* host:port */
    char *cert, *key;             /* the aggregator's certificate and key (PEM) */
    char *manifest_cert, *manifest_key; /* sign the round manifests; NULL: cert and key */
    char *client_ca;              /* CA bundle the sites' certificates must chain to */
    char *crl;                    /* revocation list of client_ca (PEM); NULL: none; reread on SIGHUP */
    config_list allowed_clients;  /* certificate Common Names admitted as sites */
    char *state_dir;
    int threads;                  /* RPC handler threads */
    int poll_seconds;             /* AwaitRound long-poll */
    int idle_timeout_s;           /* a call silent this long is cut off */
    int max_update_mb;            /* largest update accepted */
    log_level log_level;
  } server;
  struct {
    char *base;                   /* base model directory (Hugging Face) or llama2.c checkpoint */
    int lora_rank;
    double lora_alpha;
    config_list lora_targets;
    unsigned lora_target_mask;    /* lora_targets as lora_module bits (derived) */
    double lora_dropout;
    int use_rslora;
    agg_lora_mode lora_mode;
    uint64_t init_seed;           /* 0: derived from rounds.seed */
  } model;
  struct {
    int total;
    int min_clients;
    int clients_per_round;        /* 0: every joined site */
    int deadline_s;
    int wait_after_quorum_s;
    uint64_t seed;
  } rounds;
  struct {
    optim_kind optimizer;
    double lr;
    int local_steps;              /* 0: local_epochs decides */
    double local_epochs;          /* 0: local_steps decides */
    int batch, seq_len;
    double weight_decay, fedprox_mu, grad_clip;
    double beta1, beta2, eps;
    int warmup;
    schedule_kind schedule;
  } train;
  struct {
    server_opt_strategy strategy;
    double server_lr, beta1, beta2, tau;
    agg_weighting weighting;
    agg_robust robust;
    double trim_beta;             /* trimmed_mean: fraction dropped at each end */
    int krum_f;                   /* krum, multi_krum: Byzantine sites tolerated */
    int krum_m;                   /* multi_krum: updates averaged; 0: n - f */
    double norm_bound;            /* each delta scaled to at most this L2 norm; 0: off */
  } aggregation;
  struct {
    int secagg;
    agg_dp_mode dp;
    double dp_clip, dp_noise_multiplier, dp_delta, dp_epsilon_budget;
    int secagg_threshold;         /* 0: auto */
    double secagg_clip_range, secagg_scale;
    int secagg_stage_s;           /* key, share and unmask stages close at this age */
    int secagg_transcript;        /* keep every secagg message received in state_dir/secagg/ */
  } privacy;
  struct {
    char *file;                   /* the audit log (audit.h); NULL: none */
  } audit;
  struct {
    char *listen;                 /* host:port of the Prometheus endpoint; NULL: none */
    int linger_s;                 /* seconds to stay up after the run finishes */
  } metrics;
} agg_config;

extern const config_schema agg_config_schema;

/* config_load with agg_config_schema: path may be NULL; sets are "section.key=value". 0, or -1 with
 * the first error in err and nothing to free. */
int agg_config_load(agg_config *cfg, const char *path, const char *const *sets, int n_sets, char *err,
                    size_t err_size);
void agg_config_free(agg_config *cfg);
/* The server optimiser settings of [aggregation]. */
server_opt_config agg_config_server_opt(const agg_config *cfg);

#endif
