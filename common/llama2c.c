/* llama2.c legacy checkpoints; see llama2c.h. The weight arena uses the file's order, so the tensors
 * before the RoPE tables are one read, and wcls (if present) a second. */
#include "llama2c.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum { HEADER_INTS = 7 };

/* Floats of the two legacy RoPE tables the file carries and we skip. */
static size_t rope_table_floats(const model_config *c) {
  return 2 * (size_t)c->max_seq_len * (size_t)(c->dim / c->n_heads / 2);
}

int llama2c_load(model *m, const char *path, char *err, size_t err_size) {
  memset(m, 0, sizeof *m);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  int32_t h[HEADER_INTS];
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || fread(h, sizeof(int32_t), HEADER_INTS, f) != HEADER_INTS) {
    snprintf(err, err_size, "%s: too short for a llama2.c header (%d bytes)", path, HEADER_INTS * 4);
    fclose(f);
    return -1;
  }
  /* INT32_MIN has no positive counterpart; as 0 it is refused by the check below. */
  int32_t vocab = h[5] == INT32_MIN ? 0 : h[5] < 0 ? -h[5] : h[5];
  model_config c = {.dim = h[0], .hidden_dim = h[1], .n_layers = h[2], .n_heads = h[3], .n_kv_heads = h[4],
                    .vocab_size = vocab, .max_seq_len = h[6], .norm_eps = 1e-5f,
                    .rope_theta = 10000.0f, .tied_classifier = h[5] > 0};
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  char why[256];
  if (model_config_validate(&c, why, sizeof why) || c.dim % c.n_heads != 0) {
    snprintf(err, err_size, "%s: bad llama2.c header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, "
             "n_kv_heads %d, vocab_size %d, seq_len %d): %s", path, h[0], h[1], h[2], h[3], h[4], h[5], h[6],
             c.dim % (c.n_heads > 0 ? c.n_heads : 1) ? "dim is not a multiple of n_heads" : why);
    fclose(f);
    return -1;
  }
  size_t total = model_weights_count(&c), cls = c.tied_classifier ? 0 : (size_t)c.vocab_size * c.dim;
  size_t body = total - cls, rope = rope_table_floats(&c);
  uint64_t expected = (uint64_t)HEADER_INTS * 4 + ((uint64_t)total + rope) * 4;
  if ((uint64_t)st.st_size != expected) {
    snprintf(err, err_size, "%s: file size %lld does not match its header (expected %llu bytes for dim %d, "
             "%d layers, vocab %d, %s classifier); not a legacy version-0 llama2.c checkpoint?", path,
             (long long)st.st_size, (unsigned long long)expected, c.dim, c.n_layers, c.vocab_size,
             c.tied_classifier ? "shared" : "separate");
    fclose(f);
    return -1;
  }
  if (model_build(m, &c, err, err_size)) {
    fclose(f);
    return -1;
  }
  int ok = fread(m->params, sizeof(float), body, f) == body;
  if (ok && cls) ok = fseek(f, (long)(rope * 4), SEEK_CUR) == 0 && fread(m->weights.wcls, sizeof(float), cls, f) == cls;
  fclose(f);
  if (!ok) {
    snprintf(err, err_size, "%s: read error after the header", path);
    model_free(m);
    return -1;
  }
  return 0;
}

int llama2c_save(const model *m, const char *path, char *err, size_t err_size) {
  const model_config *c = &m->config;
  if (c->head_dim * c->n_heads != c->dim) {
    snprintf(err, err_size, "%s: llama2.c files need head_dim * n_heads == dim (%d * %d != %d)", path,
             c->head_dim, c->n_heads, c->dim);
    return -1;
  }
  FILE *f = fopen(path, "wb");
  if (!f) {
    snprintf(err, err_size, "%s: cannot create: %s", path, strerror(errno));
    return -1;
  }
  int32_t h[HEADER_INTS] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                            c->tied_classifier ? c->vocab_size : -c->vocab_size, c->max_seq_len};
  size_t cls = c->tied_classifier ? 0 : (size_t)c->vocab_size * c->dim, body = m->num_params - cls;
  int ok = fwrite(h, sizeof(int32_t), HEADER_INTS, f) == HEADER_INTS &&
           fwrite(m->params, sizeof(float), body, f) == body;
  /* The legacy RoPE tables are never read back; zeros keep the layout. */
  float zero = 0.0f;
  for (size_t i = 0; ok && i < rope_table_floats(c); i++) ok = fwrite(&zero, sizeof zero, 1, f) == 1;
  if (ok && cls) ok = fwrite(m->weights.wcls, sizeof(float), cls, f) == cls;
  if (fclose(f) != 0) ok = 0;
  if (!ok) {
    snprintf(err, err_size, "%s: write error: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}
