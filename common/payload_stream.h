/* Chunked payloads: the messages of every payload stream of the protocol (Chunk, UpdateChunk,
 * SecAggMaskedChunk) carry a header in the first message only, an offset and a data slice. One
 * sender serves them all (through the fields' descriptors, so no message type needs its own loop),
 * and one receiving loop serves the client-streaming handlers. */
#ifndef FEDLORA_PAYLOAD_STREAM_H
#define FEDLORA_PAYLOAD_STREAM_H

#include "payload.h"
#include "rpc.h"

/* Sends bytes (total) as messages of chunk_type in slices of at most FED_CHUNK_BYTES, header in
 * the first (a payload of 0 bytes is one message, so the header still travels): on a server call
 * (server-streaming) or a client stream. 0, or -1 when the stream failed (its status says why).
 * chunk_type must have the fields header (message), offset (uint64) and data (bytes). *sent (if
 * not NULL) grows by the data bytes of every message that went out, a failed stream's too. */
int payload_send_call(rpc_call *call, const ProtobufCMessageDescriptor *chunk_type, const ProtobufCMessage *header,
                      const void *bytes, size_t total, uint64_t *sent);
int payload_send_stream(rpc_stream *stream, const ProtobufCMessageDescriptor *chunk_type,
                        const ProtobufCMessage *header, const void *bytes, size_t total, uint64_t *sent);

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
