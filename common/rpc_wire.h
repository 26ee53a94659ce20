/* Internal to the RPC layer (rpc_server.c, rpc_client.c): moving protobuf-c messages in and out
 * of gRPC byte buffers, deadlines, and reading the PEM files TLS needs. */
#ifndef FEDLORA_RPC_WIRE_H
#define FEDLORA_RPC_WIRE_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_DEFAULT_MAX_MESSAGE ((size_t)4 * 1024 * 1024 + 64 * 1024)

/* A growable buffer reused for every message of a call, so a stream of 1 MiB chunks does not
 * page-fault a fresh buffer per message. */
typedef struct {
  uint8_t *data;
  size_t len, cap;
} rpc_bytes;

void rpc_bytes_free(rpc_bytes *b);
/* Copies the byte buffer's slices into b. */
int rpc_bytes_from_buffer(rpc_bytes *b, grpc_byte_buffer *bb);
/* Decodes b as type; NULL if it is not a valid message of that type. */
ProtobufCMessage *rpc_bytes_decode(const rpc_bytes *b, const ProtobufCMessageDescriptor *type);
/* A byte buffer holding the packed message or the raw bytes; the caller destroys it. */
grpc_byte_buffer *rpc_buffer_from_message(const ProtobufCMessage *msg);
grpc_byte_buffer *rpc_buffer_from_bytes(const void *bytes, size_t len);

gpr_timespec rpc_deadline_after_ms(int64_t ms);

/* Reads a whole PEM file into a NUL-terminated string; NULL with a message naming the file. */
char *rpc_read_pem(const char *path, const char *what, char *err, size_t errlen);
/* Checks that the key belongs to the certificate, and warns if the certificate is not valid now. */
int rpc_check_key_pair(const char *cert_pem, const char *key_pem, const char *cert_path, char *err,
                       size_t errlen);

/* grpc_init with the library's log noise turned down; paired with grpc_shutdown. */
void rpc_grpc_init(void);

#endif
