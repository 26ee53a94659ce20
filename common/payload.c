#include "payload.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ layout */

int payload_layout_build(payload_layout *pl, const lora_adapter *ad, const model_config *c, int b_only, char *err,
                         size_t errlen) {
  memset(pl, 0, sizeof *pl);
  int per_module = b_only ? 1 : 2, n = 0;
  for (int m = 0; m < LORA_NUM_MODULES; m++) n += (ad->config.targets >> m) & 1;
  pl->tensors = calloc((size_t)(n * per_module * c->n_layers), sizeof *pl->tensors);
  if (!pl->tensors) {
    snprintf(err, errlen, "payload layout: out of memory");
    return -1;
  }
  int64_t r = ad->config.rank;
  for (int l = 0; l < c->n_layers; l++)
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
      const float *a = lora_a(ad, ad->params, l, (lora_module)m);
      if (!a) continue;
      const char *block = m <= LORA_O ? "self_attn" : "mlp";
      for (int which = b_only; which < 2; which++) {
        payload_tensor *t = &pl->tensors[pl->n++];
        snprintf(t->name, sizeof t->name, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l, block,
                 lora_module_name((lora_module)m), which ? 'B' : 'A');
        t->rows = which ? ad->out_features[m] : r;
        t->cols = which ? r : ad->in_features[m];
        t->param_offset = (size_t)((which ? lora_b(ad, ad->params, l, (lora_module)m) : a) - ad->params);
        t->offset = pl->floats;
        t->rope_heads = which ? (m == LORA_Q ? c->n_heads : m == LORA_K ? c->n_kv_heads : 0) : 0;
        pl->floats += (size_t)(t->rows * t->cols);
      }
    }
  (void)c;
  return 0;
}

void payload_layout_free(payload_layout *pl) {
  free(pl->tensors);
  memset(pl, 0, sizeof *pl);
}

size_t payload_bytes(const payload_layout *pl) { return pl->floats * sizeof(float); }

/* head_dim is rows / heads for the rotated projections. */
void payload_pack(const payload_layout *pl, const lora_adapter *ad, float *out) {
  for (int i = 0; i < pl->n; i++) {
    const payload_tensor *t = &pl->tensors[i];
    float *dst = out + t->offset;
    memcpy(dst, ad->params + t->param_offset, (size_t)(t->rows * t->cols) * sizeof(float));
    if (t->rope_heads)
      rope_rows_internal_to_hf(dst, t->rope_heads, (int)(t->rows / t->rope_heads), (int)t->cols);
  }
}

void payload_unpack(const payload_layout *pl, lora_adapter *ad, const float *in) {
  for (int i = 0; i < pl->n; i++) {
    const payload_tensor *t = &pl->tensors[i];
    float *dst = ad->params + t->param_offset;
    memcpy(dst, in + t->offset, (size_t)(t->rows * t->cols) * sizeof(float));
    if (t->rope_heads) rope_rows_hf_to_internal(dst, t->rope_heads, (int)(t->rows / t->rope_heads), (int)t->cols);
  }
}

/* ------------------------------------------------------------------ header */

void payload_header_fill(const payload_layout *pl, Fedlora__V1__PayloadHeader *h, const uint8_t sha256[32]) {
  h->n_tensors = (size_t)pl->n;
  h->tensors = calloc((size_t)pl->n, sizeof *h->tensors);
  Fedlora__V1__TensorSpec *specs = calloc((size_t)pl->n, sizeof *specs);
  uint64_t *shapes = calloc((size_t)pl->n * 2, sizeof *shapes);
  for (int i = 0; i < pl->n; i++) {
    const payload_tensor *t = &pl->tensors[i];
    Fedlora__V1__TensorSpec *s = &specs[i];
    fedlora__v1__tensor_spec__init(s);
    s->name = (char *)t->name;
    s->n_shape = 2;
    s->shape = &shapes[2 * i];
    s->shape[0] = (uint64_t)t->rows;
    s->shape[1] = (uint64_t)t->cols;
    s->dtype = FEDLORA__V1__DTYPE__DTYPE_F32;
    s->offset = t->offset * sizeof(float);
    s->length = (uint64_t)(t->rows * t->cols) * sizeof(float);
    h->tensors[i] = s;
  }
  h->total_size = payload_bytes(pl);
  h->sha256.data = (uint8_t *)sha256;
  h->sha256.len = 32;
}

void payload_header_free_tensors(Fedlora__V1__PayloadHeader *h) {
  if (h->n_tensors) {
    free(h->tensors[0]->shape);
    free(h->tensors[0]);
  }
  free(h->tensors);
  h->tensors = NULL;
  h->n_tensors = 0;
}

static const char *dtype_name(int d) {
  switch (d) {
    case FEDLORA__V1__DTYPE__DTYPE_F32: return "F32";
    case FEDLORA__V1__DTYPE__DTYPE_F16: return "F16";
    case FEDLORA__V1__DTYPE__DTYPE_BF16: return "BF16";
    case FEDLORA__V1__DTYPE__DTYPE_U32: return "U32";
    default: return "unspecified";
  }
}

static int layout_find(const payload_layout *pl, const char *name) {
  for (int i = 0; i < pl->n; i++)
    if (strcmp(pl->tensors[i].name, name) == 0) return i;
  return -1;
}

int payload_header_check(const payload_layout *pl, const Fedlora__V1__PayloadHeader *h, char *err, size_t errlen) {
  if (h->sha256.len != 32) {
    snprintf(err, errlen, "sha256 must be 32 bytes, got %zu", h->sha256.len);
    return -1;
  }
  for (size_t i = 0; i < h->n_tensors; i++) {
    const Fedlora__V1__TensorSpec *s = h->tensors[i];
    int j = layout_find(pl, s->name);
    if (j < 0) {
      snprintf(err, errlen, "unknown tensor '%.120s' (not in the plan's adapter)", s->name);
      return -1;
    }
    if ((size_t)j != i) {
      snprintf(err, errlen, "tensor '%.120s' is at position %zu, expected %d (or a tensor is repeated)", s->name, i, j);
      return -1;
    }
  }
  if (h->n_tensors < (size_t)pl->n) {
    snprintf(err, errlen, "missing tensor '%s' (%zu of %d tensors sent)", pl->tensors[h->n_tensors].name,
             h->n_tensors, pl->n);
    return -1;
  }
  for (int i = 0; i < pl->n; i++) {
    const payload_tensor *t = &pl->tensors[i];
    const Fedlora__V1__TensorSpec *s = h->tensors[i];
    if (s->n_shape != 2 || s->shape[0] != (uint64_t)t->rows || s->shape[1] != (uint64_t)t->cols) {
      char got[96] = "";
      for (size_t k = 0, off = 0; k < s->n_shape && k < 4 && off < sizeof got; k++)
        off += (size_t)snprintf(got + off, sizeof got - off, "%s%llu", k ? "," : "", (unsigned long long)s->shape[k]);
      snprintf(err, errlen, "tensor '%s': shape [%s], expected [%lld,%lld]", t->name, got, (long long)t->rows,
               (long long)t->cols);
      return -1;
    }
    if (s->dtype != FEDLORA__V1__DTYPE__DTYPE_F32) {
      snprintf(err, errlen, "tensor '%s': dtype %s, expected F32", t->name, dtype_name(s->dtype));
      return -1;
    }
    uint64_t want_len = (uint64_t)(t->rows * t->cols) * sizeof(float);
    if (s->length != want_len) {
      snprintf(err, errlen, "tensor '%s': length %llu bytes does not match its shape and dtype (%llu bytes)", t->name,
               (unsigned long long)s->length, (unsigned long long)want_len);
      return -1;
    }
    if (s->offset != t->offset * sizeof(float)) {
      snprintf(err, errlen, "tensor '%s': offset %llu, expected %zu", t->name, (unsigned long long)s->offset,
               t->offset * sizeof(float));
      return -1;
    }
  }
  if (h->total_size != payload_bytes(pl)) {
    snprintf(err, errlen, "total_size %llu does not match the tensors (%zu bytes)", (unsigned long long)h->total_size,
             payload_bytes(pl));
    return -1;
  }
  return 0;
}

int payload_check_finite(const payload_layout *pl, const float *values, char *err, size_t errlen) {
  for (int i = 0; i < pl->n; i++) {
    const payload_tensor *t = &pl->tensors[i];
    size_t n = (size_t)(t->rows * t->cols);
    for (size_t k = 0; k < n; k++) {
      float v = values[t->offset + k];
      if (!isfinite(v)) {
        snprintf(err, errlen, "tensor '%s' element %zu is %s", t->name, k, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        return -1;
      }
    }
  }
  return 0;
}

double payload_norm(const float *values, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)values[i] * values[i];
  return sqrt(s);
}

/* ------------------------------------------------------------------ chunks */

int payload_rx_begin(payload_rx *rx, uint64_t size, const uint8_t sha256[32], uint64_t max_size, char *err,
                     size_t errlen) {
  memset(rx, 0, sizeof *rx);
  if (size > max_size) {
    snprintf(err, errlen, "declared size %llu bytes exceeds the limit of %llu", (unsigned long long)size,
             (unsigned long long)max_size);
    return -1;
  }
  rx->data = malloc(size ? size : 1);
  rx->md = EVP_MD_CTX_new();
  if (!rx->data || !rx->md || !EVP_DigestInit_ex(rx->md, EVP_sha256(), NULL)) {
    snprintf(err, errlen, "out of memory for a %llu-byte payload", (unsigned long long)size);
    payload_rx_free(rx);
    return -1;
  }
  rx->size = size;
  memcpy(rx->want, sha256, 32);
  return 0;
}

int payload_rx_chunk(payload_rx *rx, uint64_t offset, const uint8_t *data, size_t len, char *err, size_t errlen) {
  if (offset != rx->received) {
    snprintf(err, errlen, "chunk at offset %llu, expected %zu (chunks missing, repeated or out of order)",
             (unsigned long long)offset, rx->received);
    return -1;
  }
  if (len > rx->size - rx->received) {
    snprintf(err, errlen, "chunk at offset %llu with %zu bytes runs past the declared size %zu",
             (unsigned long long)offset, len, rx->size);
    return -1;
  }
  if (len) memcpy(rx->data + rx->received, data, len);
  EVP_DigestUpdate(rx->md, data, len);
  rx->received += len;
  return 0;
}

int payload_rx_end(payload_rx *rx, char *err, size_t errlen) {
  if (rx->received != rx->size) {
    snprintf(err, errlen, "the stream ended after %zu of %zu declared bytes", rx->received, rx->size);
    return -1;
  }
  uint8_t got[32];
  unsigned len = 32;
  EVP_DigestFinal_ex(rx->md, got, &len);
  if (memcmp(got, rx->want, 32) != 0) {
    char g[65], w[65];
    sha256_hex(got, g);
    sha256_hex(rx->want, w);
    snprintf(err, errlen, "SHA-256 mismatch: the data hashes to %.16s..., the header declared %.16s...", g, w);
    return -1;
  }
  return 0;
}

void payload_rx_free(payload_rx *rx) {
  free(rx->data);
  EVP_MD_CTX_free(rx->md);
  memset(rx, 0, sizeof *rx);
}

void sha256_bytes(const void *data, size_t len, uint8_t out[32]) {
  unsigned n = 32;
  EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void sha256_hex(const uint8_t d[32], char out[65]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}
