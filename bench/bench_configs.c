/* See bench_configs.h. */
#include "bench_configs.h"

#include <string.h>

const bench_config bench_configs[] = {
    {"tiny", {.dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4, .head_dim = 8,
              .vocab_size = 512, .max_seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
              .tied_classifier = 1}, 8, 256, 10},
    {"small", {.dim = 288, .hidden_dim = 768, .n_layers = 6, .n_heads = 6, .n_kv_heads = 6, .head_dim = 48,
               .vocab_size = 32000, .max_seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
               .tied_classifier = 1}, 4, 256, 5},
    {"medium", {.dim = 768, .hidden_dim = 2048, .n_layers = 12, .n_heads = 12, .n_kv_heads = 12, .head_dim = 64,
                .vocab_size = 32000, .max_seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                .tied_classifier = 1}, 2, 256, 3},
};
const int bench_config_count = sizeof bench_configs / sizeof bench_configs[0];

const bench_config *bench_config_find(const char *name) {
  for (int i = 0; i < bench_config_count; i++)
    if (!strcmp(bench_configs[i].name, name)) return &bench_configs[i];
  return NULL;
}
