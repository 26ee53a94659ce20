/* A site's update as the aggregator takes it apart: protobuf UpdateChunk messages, the header
 * checked against the planned layout (payload_header_check), the bytes reassembled
 * (payload_rx_begin/chunk/end) and every value checked finite (payload_check_finite).
 *
 * Input: messages, each a 2-byte little-endian length and that many bytes of an UpdateChunk. The
 * layout is fixed: a one-layer model (D 8, F 16, 2 heads, 1 KV head) with rank-2 LoRA on q, v and
 * down, so q's B travels RoPE-reordered: 6 tensors, 104 floats. */
#include <stdlib.h>

#include "fedlora.pb-c.h"
#include "fuzz_input.h"
#include "payload.h"

/* What the aggregator's max_update_mb would be for a model this small. */
#define MAX_UPDATE_BYTES ((uint64_t)1 << 20)

static payload_layout layout;

static void layout_build_once(void) {
  if (layout.n) return;
  fuzz_dir(); /* quiets the log */
  model_config c = {.dim = 8, .hidden_dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4,
                    .vocab_size = 16, .max_seq_len = 8, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                    .tied_classifier = 1};
  lora_config lc = {.rank = 2, .alpha = 4.0f, .targets = (1u << LORA_Q) | (1u << LORA_V) | (1u << LORA_DOWN)};
  lora_adapter ad;
  char err[256];
  if (lora_build(&ad, &c, &lc, err, sizeof err) != 0 || payload_layout_build(&layout, &ad, &c, 0, err, sizeof err) != 0)
    abort();
  lora_free(&ad);
}

/* The next framed message; NULL at the end of the input (a short frame ends it too) or, with
 * *undecodable set, when the bytes are not an UpdateChunk. */
static Fedlora__V1__UpdateChunk *chunk_next(const uint8_t **data, size_t *size, int *undecodable) {
  if (*size < 2) return NULL;
  size_t len = (size_t)(*data)[0] | (size_t)(*data)[1] << 8;
  if (len > *size - 2) return NULL;
  Fedlora__V1__UpdateChunk *chunk = fedlora__v1__update_chunk__unpack(NULL, len, *data + 2);
  *data += 2 + len;
  *size -= 2 + len;
  if (!chunk) *undecodable = 1;
  return chunk;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  layout_build_once();
  char err[512];
  int undecodable = 0;
  Fedlora__V1__UpdateChunk *first = chunk_next(&data, &size, &undecodable);
  if (!first) return 0;
  const Fedlora__V1__PayloadHeader *h = first->header ? first->header->payload : NULL;
  int header_ok = h && payload_header_check(&layout, h, err, sizeof err) == 0;
  /* The receiver is driven even when the header was refused (as long as the digest it needs is
   * there): it must stand on its own limits, not on the caller having checked the header. */
  payload_rx rx = {0};
  if (h && h->sha256.len == 32 &&
      payload_rx_begin(&rx, h->total_size, h->sha256.data, MAX_UPDATE_BYTES, err, sizeof err) == 0) {
    /* As the aggregator does: only the first chunk may carry a header; stop at the first refusal. */
    Fedlora__V1__UpdateChunk *chunk = first;
    while (chunk && !(chunk != first && chunk->header) &&
           payload_rx_chunk(&rx, chunk->offset, chunk->data.data, chunk->data.len, err, sizeof err) == 0) {
      if (chunk != first) fedlora__v1__update_chunk__free_unpacked(chunk, NULL);
      chunk = chunk_next(&data, &size, &undecodable);
    }
    if (chunk && chunk != first) fedlora__v1__update_chunk__free_unpacked(chunk, NULL);
    if (!chunk && !undecodable) payload_rx_end(&rx, err, sizeof err);
  }
  /* A digest the fuzzer cannot forge would hide the value check behind it, so the values are
   * checked whenever the header was right and the size matches. */
  if (header_ok && rx.data && rx.received == payload_bytes(&layout))
    payload_check_finite(&layout, (const float *)rx.data, err, sizeof err);
  payload_rx_free(&rx);
  fedlora__v1__update_chunk__free_unpacked(first, NULL);
  return 0;
}
