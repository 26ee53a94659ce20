#include "payload_stream.h"

grpc_status_code payload_receive(rpc_call *call, payload_rx *rx, const ProtobufCMessage *first,
                                 payload_chunk_fn view) {
  char err[512];
  const ProtobufCMessage *chunk = first;
  ProtobufCMessage *owned = NULL; /* every message but the caller's first */
  grpc_status_code code = GRPC_STATUS_OK;
  for (;;) {
    payload_chunk_view v = view(chunk);
    if (v.has_header && chunk != first) {
      code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "a second header at offset %llu",
                           (unsigned long long)v.offset);
      break;
    }
    if (payload_rx_chunk(rx, v.offset, v.data, v.len, err, sizeof err) != 0) {
      code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
      break;
    }
    if (owned) protobuf_c_message_free_unpacked(owned, NULL);
    owned = NULL;
    int rc = rpc_call_recv(call, &owned);
    if (rc < 0) code = rpc_call_status(call);
    if (rc <= 0) break;
    chunk = owned;
  }
  if (owned) protobuf_c_message_free_unpacked(owned, NULL);
  return code;
}
