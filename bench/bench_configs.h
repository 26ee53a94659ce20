/* The three model sizes every training benchmark uses (issue 8), shared by train_bench and
 * sgemm_peak so the shapes timed in isolation are the ones training runs. */
#ifndef FEDLORA_BENCH_CONFIGS_H
#define FEDLORA_BENCH_CONFIGS_H

#include "model.h"

typedef struct {
  const char *name;
  model_config model;
  int batch, seq_len; /* one optimizer step is batch x seq_len tokens */
  int steps;          /* timed steps by default */
} bench_config;

extern const bench_config bench_configs[];
extern const int bench_config_count;

/* The named configuration, or NULL. */
const bench_config *bench_config_find(const char *name);

#endif
