/* Receiving a chunked payload inside a client-streaming handler: the same loop for every stream
 * whose messages carry (an optional header,) an offset and a data slice. */
#ifndef FEDLORA_PAYLOAD_STREAM_H
#define FEDLORA_PAYLOAD_STREAM_H

#include "payload.h"
#include "rpc.h"

typedef struct {
  int has_header;
  uint64_t offset;
  const uint8_t *data;
  size_t len;
} payload_chunk_view;

/* The fields of one message of the stream's type. */
typedef payload_chunk_view (*payload_chunk_fn)(const ProtobufCMessage *msg);

/* Feeds first (already received; its header checked by the caller) and every further message of the
 * call into rx until the client half-closes. A repeated header, a chunk out of order or past the
 * declared size fails the call with INVALID_ARGUMENT; a broken stream with its own status. Returns
 * GRPC_STATUS_OK or the failure; the caller still calls payload_rx_end. */
grpc_status_code payload_receive(rpc_call *call, payload_rx *rx, const ProtobufCMessage *first, payload_chunk_fn view);

#endif
