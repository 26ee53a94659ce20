/* The one small RPC layer over gRPC core: mutual TLS only, protobuf-c messages, blocking handlers
 * on a pool of threads on the server, blocking calls with deadlines on the client.
 *
 * Server: each arriving call gets its own completion queue and runs start to finish on one worker
 * thread, so a handler is plain sequential code (receive, decide, reply). The handler sees the
 * decoded request and the verified peer identity (the CN of the client certificate).
 * Client: one channel per rpc_client; every call has a deadline; a refused TLS handshake is
 * reported in words a person can act on. */
#ifndef FEDLORA_RPC_H
#define FEDLORA_RPC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "cert_info.h"

/* ------------------------------------------------------------------ server */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef enum { RPC_UNARY, RPC_SERVER_STREAMING, RPC_CLIENT_STREAMING } rpc_kind;

/* Returns GRPC_STATUS_OK after rpc_call_reply (unary, client streaming) or after the last
 * rpc_call_send (server streaming), or the code returned by rpc_call_fail. */
typedef grpc_status_code (*rpc_handler)(rpc_call *call, void *user);

typedef struct {
  const char *path;                           /* "/fedlora.v1.Federation/Join" */
  rpc_kind kind;
  const ProtobufCMessageDescriptor *request;  /* type of every message the client sends */
  rpc_handler handler;
} rpc_method;

typedef struct {
  const char *listen;         /* "127.0.0.1:0" picks a free port; see rpc_server_port */
  const char *cert_file;      /* the server's certificate chain (PEM) */
  const char *key_file;       /* its private key (PEM) */
  const char *client_ca_file; /* CA(s) that client certificates must chain to (PEM) */
  const char *crl_file;       /* optional: CRLs (PEM) of those CAs; a revoked client certificate is
                               * refused in the handshake. CAs without a CRL here are not checked. */
  const rpc_method *methods;
  size_t n_methods;
  void *user;                 /* passed to every handler */
  int threads;                /* handler threads; 0 = 8 */
  int max_queued;             /* calls waiting for a free thread before RESOURCE_EXHAUSTED; 0 = 64 */
  size_t max_message_bytes;   /* largest message accepted; 0 = 4 MiB + 64 KiB (1 MiB chunks fit easily) */
  int idle_timeout_ms;        /* a stream that sends nothing for this long is cut off; 0 = 60 s */
  int max_calls_per_peer;     /* calls of one client identity (CN) in flight or waiting before the
                               * next is refused with RESOURCE_EXHAUSTED; 0 = 8 */
  /* Optional: told the client certificate of every call (on the thread that accepts calls, so it
   * must be quick), e.g. to watch its expiry. */
  void (*on_peer_certificate)(void *user, const char *peer, const cert_info *cert);
  void *peer_certificate_user;
} rpc_server_config;

/* Binds, starts the threads and returns the running server, or NULL with a message in err
 * (unreadable or mismatched key/certificate, expired certificate, address in use, ...). */
rpc_server *rpc_server_start(const rpc_server_config *cfg, char *err, size_t errlen);
int rpc_server_port(const rpc_server *server);
/* Reads cert_file, key_file, client_ca_file and crl_file again (after a certificate was renewed, a
 * CA added, a CRL reissued) and, once they check out together (cert_check_identity, CRLs signed by
 * the new CAs and current), puts them in force: new handshakes use them within RPC_TLS_REFRESH_S
 * seconds, calls and connections already up go on, and every call from then on is checked
 * against the new CRLs. 0, or -1 with the file and the reason, and the material in force stays.
 * One caller at a time (e.g. the thread that handles SIGHUP). */
int rpc_server_reload(rpc_server *server, char *err, size_t errlen);
/* The certificates in force: the server's (leaf) and the client CA bundle's; returns how many CA
 * certificates were written to cas (at most cap). */
int rpc_server_certificates(rpc_server *server, cert_info *leaf, cert_info *cas, int cap);
/* Cancels calls in flight, waits for every handler to return, and frees the server. */
void rpc_server_stop(rpc_server *server);

/* Handler side. */
const char *rpc_call_peer(const rpc_call *call);    /* verified CN of the client certificate */
const char *rpc_call_method(const rpc_call *call);
/* The request of a unary or server-streaming call, decoded; owned by the call. */
const ProtobufCMessage *rpc_call_request(const rpc_call *call);
/* Client streaming: 1 with *msg set (free it with protobuf_c_message_free_unpacked(msg, NULL)),
 * 0 at the end of the stream, -1 if the stream broke or a message did not decode (the call has
 * then failed; return rpc_call_status from the handler). */
int rpc_call_recv(rpc_call *call, ProtobufCMessage **msg);
/* Server streaming: sends one message; 0 on success, -1 if the client has gone. */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *msg);
/* Unary and client streaming: the response, sent with status OK when the handler returns. */
grpc_status_code rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg);
/* Sets the failure status and its message (also logged) and returns code. */
grpc_status_code rpc_call_fail(rpc_call *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The status a failed rpc_call_recv left behind. */
grpc_status_code rpc_call_status(const rpc_call *call);
/* The message of the failure status set by rpc_call_fail ("" while none). */
const char *rpc_call_message(const rpc_call *call);
/* True once the client has cancelled, the deadline has passed, or the server is stopping:
 * long waits in handlers poll this. */
int rpc_call_done(rpc_call *call);

/* ------------------------------------------------------------------ client */

typedef struct rpc_client rpc_client;
typedef struct rpc_stream rpc_stream;

typedef struct {
  grpc_status_code code;
  char message[1024];
} rpc_status;

typedef struct {
  const char *target;       /* "127.0.0.1:50051", "[::1]:50051" or "host:port" */
  const char *ca_file;      /* CA the aggregator's certificate must chain to */
  const char *cert_file;    /* this site's certificate (NULL: none, for tests of refusal) */
  const char *key_file;
  const char *server_name;  /* name to verify in the aggregator's certificate; NULL = target host */
  size_t max_message_bytes; /* 0 = 4 MiB + 64 KiB */
} rpc_client_config;

rpc_client *rpc_client_create(const rpc_client_config *cfg, char *err, size_t errlen);
void rpc_client_free(rpc_client *client);

/* One request, one response. Returns 0 on OK with *response set (free with
 * protobuf_c_message_free_unpacked), else -1 with st filled. */
int rpc_unary(rpc_client *client, const char *path, const ProtobufCMessage *request,
              const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response,
              double timeout_s, rpc_status *st);

/* Streams: open, send*, close_send, recv*, finish. Every step after a failure is a no-op that
 * returns -1; rpc_stream_finish always frees the stream and reports the call's status. */
rpc_stream *rpc_stream_open(rpc_client *client, const char *path, double timeout_s);
int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg);
int rpc_stream_send_raw(rpc_stream *s, const void *bytes, size_t len); /* any bytes at all */
int rpc_stream_close_send(rpc_stream *s);
/* 1 with *msg set, 0 at the end of the server's messages, -1 on failure. */
int rpc_stream_recv(rpc_stream *s, const ProtobufCMessageDescriptor *type, ProtobufCMessage **msg);
int rpc_stream_finish(rpc_stream *s, rpc_status *st);

#endif
