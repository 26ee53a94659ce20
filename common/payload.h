/* The adapter payload that crosses the network: a global adapter (aggregator → sites) or a site's
 * update (site → aggregator).
 *
 * Layout: the adapter's tensors in its params order (layer, module q..down, A then B), each as raw
 * little-endian f32 bytes under its PEFT name, concatenated. q_proj/k_proj B rows travel in Hugging
 * Face's half-split RoPE order, as PEFT files store them, so the names mean what they say. With
 * FFA-LoRA only the B tensors travel (A is fixed from the plan's seed at every site).
 *
 * A receiver trusts nothing: the header is checked against the planned layout tensor by tensor,
 * chunks must arrive in order and within the declared size, the digest must match, and every value
 * must be finite. Functions returning int give 0 on success, -1 with a message in err. */
#ifndef FEDLORA_PAYLOAD_H
#define FEDLORA_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "fedlora.pb-c.h"
#include "lora.h"
#include "model.h"

typedef struct {
  char name[96];         /* PEFT key */
  int64_t rows, cols;    /* shape: A (r, in), B (out, r) */
  size_t param_offset;   /* where the tensor starts in lora_adapter.params */
  size_t offset;         /* where it starts in the payload, in floats */
  int rope_heads;        /* > 0: rows are RoPE-ordered (q/k B) and converted on the wire */
} payload_tensor;

typedef struct {
  payload_tensor *tensors;
  int n;
  size_t floats;         /* payload length in floats */
} payload_layout;

/* b_only: FFA-LoRA, only B tensors travel. */
int payload_layout_build(payload_layout *pl, const lora_adapter *ad, const model_config *c, int b_only, char *err,
                         size_t errlen);
void payload_layout_free(payload_layout *pl);
size_t payload_bytes(const payload_layout *pl);

/* out (pl->floats) ← the adapter's tensors; and back. Tensors not in the layout are left alone. */
void payload_pack(const payload_layout *pl, const lora_adapter *ad, float *out);
void payload_unpack(const payload_layout *pl, lora_adapter *ad, const float *in);

/* Fills header->tensors from the layout (allocated; free with payload_header_free_tensors). */
void payload_header_fill(const payload_layout *pl, Fedlora__V1__PayloadHeader *header, const uint8_t sha256[32]);
void payload_header_free_tensors(Fedlora__V1__PayloadHeader *header);
/* The received header must describe exactly the planned tensors: names in order, shapes, dtype F32,
 * offsets and lengths, total size, and a 32-byte digest. */
int payload_header_check(const payload_layout *pl, const Fedlora__V1__PayloadHeader *header, char *err,
                         size_t errlen);
/* Every value finite (NaN and infinities named with the tensor and element). */
int payload_check_finite(const payload_layout *pl, const float *values, char *err, size_t errlen);
/* L2 norm of a payload. */
double payload_norm(const float *values, size_t n);

/* Reassembles a chunked payload: begin with the header's size and digest, one call per chunk, end. */
typedef struct {
  uint8_t *data;      /* (size) */
  size_t size, received;
  uint8_t want[32];
  void *md;           /* running SHA-256 */
} payload_rx;

int payload_rx_begin(payload_rx *rx, uint64_t size, const uint8_t sha256[32], uint64_t max_size, char *err,
                     size_t errlen);
int payload_rx_chunk(payload_rx *rx, uint64_t offset, const uint8_t *data, size_t len, char *err, size_t errlen);
/* Checks the size and the digest. */
int payload_rx_end(payload_rx *rx, char *err, size_t errlen);
void payload_rx_free(payload_rx *rx);

void sha256_bytes(const void *data, size_t len, uint8_t out[32]);
/* 64 lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t digest[32], char out[65]);

#endif
