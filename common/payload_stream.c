#include "payload_stream.h"

#include <stdlib.h>

#include "federation_api.h"

typedef int (*send_fn)(void *to, const ProtobufCMessage *msg);
static int call_send(void *to, const ProtobufCMessage *msg) { return rpc_call_send(to, msg); }
static int stream_send(void *to, const ProtobufCMessage *msg) { return rpc_stream_send(to, msg); }

/* Where a field of the chunk message lives, checked against the type it must have. */
static void *field_of(ProtobufCMessage *m, const char *name, ProtobufCType want) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
  return f && f->type == want && f->label != PROTOBUF_C_LABEL_REPEATED ? (char *)m + f->offset : NULL;
}

static int send_slices(send_fn send, void *to, const ProtobufCMessageDescriptor *chunk_type,
                       const ProtobufCMessage *header, const void *bytes, size_t total, uint64_t *sent) {
  ProtobufCMessage *m = calloc(1, chunk_type->sizeof_message);
  if (!m) return -1;
  protobuf_c_message_init(chunk_type, m);
  const ProtobufCMessage **head = field_of(m, "header", PROTOBUF_C_TYPE_MESSAGE);
  uint64_t *offset = field_of(m, "offset", PROTOBUF_C_TYPE_UINT64);
  ProtobufCBinaryData *data = field_of(m, "data", PROTOBUF_C_TYPE_BYTES);
  int rc = head && offset && data ? 0 : -1;
  for (size_t off = 0; rc == 0;) {
    *head = off == 0 ? header : NULL;
    *offset = off;
    data->len = total - off < FED_CHUNK_BYTES ? total - off : FED_CHUNK_BYTES;
    data->data = (uint8_t *)bytes + off;
    rc = send(to, m);
    if (rc == 0 && sent) *sent += data->len;
    off += data->len;
    if (off >= total) break;
  }
  free(m); /* it owns nothing: header and data are the caller's */
  return rc;
}

int payload_send_call(rpc_call *call, const ProtobufCMessageDescriptor *chunk_type, const ProtobufCMessage *header,
                      const void *bytes, size_t total, uint64_t *sent) {
  return send_slices(call_send, call, chunk_type, header, bytes, total, sent);
}

int payload_send_stream(rpc_stream *stream, const ProtobufCMessageDescriptor *chunk_type,
                        const ProtobufCMessage *header, const void *bytes, size_t total, uint64_t *sent) {
  return send_slices(stream_send, stream, chunk_type, header, bytes, total, sent);
}

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
