/* Client half of the RPC layer: one channel per rpc_client, one completion queue per call,
 * a deadline on every call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "log.h"
#include "rpc.h"
#include "rpc_wire.h"
#include "tls_probe.h"

struct rpc_client {
  grpc_channel *channel;
  char *target, *ca_file, *cert_file, *key_file, *server_name; /* kept to explain failures */
};

struct rpc_stream {
  rpc_client *client;
  grpc_call *call;
  grpc_completion_queue *cq;
  grpc_metadata_array initial_metadata, trailing_metadata;
  grpc_status_code status;
  grpc_slice status_details;
  const char *error_string;
  rpc_bytes rbuf;
  int send_failed;      /* the server has ended the call: later sends are no-ops */
  int initial_received; /* RECV_INITIAL_METADATA done */
  int send_closed;
  int status_posted;
  char op_tag, status_tag;
  char path[256];
};

static char *strdup_or_null(const char *s) { return s ? strdup(s) : NULL; }

rpc_client *rpc_client_create(const rpc_client_config *cfg, char *err, size_t errlen) {
  char *ca = rpc_read_pem(cfg->ca_file, "CA certificate", err, errlen);
  if (!ca) return NULL;
  char *cert = NULL, *key = NULL;
  if (cfg->cert_file) {
    cert = rpc_read_pem(cfg->cert_file, "client certificate", err, errlen);
    key = cert ? rpc_read_pem(cfg->key_file, "client key", err, errlen) : NULL;
    if (!key || rpc_check_key_pair(cert, key, cfg->cert_file, err, errlen) != 0) {
      free(ca);
      free(cert);
      free(key);
      return NULL;
    }
  }
  rpc_grpc_init();
  grpc_ssl_pem_key_cert_pair pair = {key, cert};
  grpc_channel_credentials *creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
  free(ca);
  free(cert);
  if (key) {
    memset(key, 0, strlen(key));
    free(key);
  }

  grpc_arg args[2];
  int n = 0;
  args[n].type = GRPC_ARG_INTEGER;
  args[n].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[n++].value.integer = (int)(cfg->max_message_bytes ? cfg->max_message_bytes : RPC_DEFAULT_MAX_MESSAGE);
  if (cfg->server_name) {
    args[n].type = GRPC_ARG_STRING;
    args[n].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[n++].value.string = (char *)cfg->server_name;
  }
  grpc_channel_args channel_args = {(size_t)n, args};
  rpc_client *c = calloc(1, sizeof *c);
  c->channel = grpc_channel_create(cfg->target, creds, &channel_args);
  grpc_channel_credentials_release(creds);
  c->target = strdup(cfg->target);
  c->ca_file = strdup(cfg->ca_file);
  c->cert_file = strdup_or_null(cfg->cert_file);
  c->key_file = strdup_or_null(cfg->key_file);
  c->server_name = strdup_or_null(cfg->server_name);
  return c;
}

void rpc_client_free(rpc_client *c) {
  if (!c) return;
  grpc_channel_destroy(c->channel);
  free(c->target);
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  free(c->server_name);
  free(c);
  grpc_shutdown();
}

/* ------------------------------------------------------------------ streams */

/* The call's own deadline bounds every wait, so plucks need none of their own. */
static int stream_batch(rpc_stream *s, const grpc_op *ops, size_t n) {
  if (grpc_call_start_batch(s->call, ops, n, &s->op_tag, NULL) != GRPC_CALL_OK) return -1;
  grpc_event ev = grpc_completion_queue_pluck(s->cq, &s->op_tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  return ev.success ? 0 : -1;
}

/* A failed send means the server has already ended the call; its status is still to be read,
 * and gRPC delivers it only once the receiving side has been asked for. */
static int stream_send_batch(rpc_stream *s, const grpc_op *ops, size_t n) {
  if (s->send_failed) return -1;
  if (stream_batch(s, ops, n) != 0) s->send_failed = 1;
  return s->send_failed ? -1 : 0;
}

rpc_stream *rpc_stream_open(rpc_client *c, const char *path, double timeout_s) {
  rpc_stream *s = calloc(1, sizeof *s);
  s->client = c;
  snprintf(s->path, sizeof s->path, "%s", path);
  s->cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_metadata_array_init(&s->initial_metadata);
  grpc_metadata_array_init(&s->trailing_metadata);
  grpc_slice method = grpc_slice_from_copied_string(path);
  s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, method, NULL,
                                     rpc_deadline_after_ms((int64_t)(timeout_s * 1000.0)), NULL);
  grpc_slice_unref(method);

  /* The status is watched from the start so it is there whenever the call ends. */
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &s->trailing_metadata;
  op.data.recv_status_on_client.status = &s->status;
  op.data.recv_status_on_client.status_details = &s->status_details;
  op.data.recv_status_on_client.error_string = &s->error_string;
  if (grpc_call_start_batch(s->call, &op, 1, &s->status_tag, NULL) == GRPC_CALL_OK) s->status_posted = 1;

  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  stream_send_batch(s, &op, 1);
  return s;
}

/* Sends one message and releases its buffer. */
static int stream_send_buffer(rpc_stream *s, grpc_byte_buffer *bb) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  int rc = stream_send_batch(s, &op, 1);
  grpc_byte_buffer_destroy(bb);
  return rc;
}

int rpc_stream_send_raw(rpc_stream *s, const void *bytes, size_t len) {
  return s->send_failed ? -1 : stream_send_buffer(s, rpc_buffer_from_bytes(bytes, len));
}

int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg) {
  return s->send_failed ? -1 : stream_send_buffer(s, rpc_buffer_from_message(msg));
}

int rpc_stream_close_send(rpc_stream *s) {
  if (s->send_closed) return 0;
  s->send_closed = 1;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  return stream_send_batch(s, &op, 1);
}

int rpc_stream_recv(rpc_stream *s, const ProtobufCMessageDescriptor *type, ProtobufCMessage **msg) {
  *msg = NULL;
  grpc_byte_buffer *bb = NULL;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!s->initial_received) {
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->initial_metadata;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n++].data.recv_message.recv_message = &bb;
  int rc = stream_batch(s, ops, n);
  s->initial_received = 1;
  if (rc != 0) return -1;
  if (!bb) return 0;
  rc = rpc_bytes_from_buffer(&s->rbuf, bb);
  grpc_byte_buffer_destroy(bb);
  if (rc == 0) *msg = rpc_bytes_decode(&s->rbuf, type);
  if (!*msg) {
    log_error("rpc %s: the server's message is not a valid %s", s->path, type->name);
    grpc_call_cancel_with_status(s->call, GRPC_STATUS_INTERNAL, "undecodable response", NULL);
    return -1;
  }
  return 1;
}

/* Replaces gRPC's "Socket closed"-style details with what a person can act on. */
static void status_explain(const rpc_stream *s, rpc_status *st) {
  char details[400];
  snprintf(details, sizeof details, "%.*s", (int)GRPC_SLICE_LENGTH(s->status_details),
           (const char *)GRPC_SLICE_START_PTR(s->status_details));
  snprintf(st->message, sizeof st->message, "%s", details);
  if (st->code != GRPC_STATUS_UNAVAILABLE) return;
  const rpc_client *c = s->client;
  char why[600];
  tls_probe_explain(c->target, c->ca_file, c->cert_file, c->key_file, c->server_name, why, sizeof why);
  if (why[0]) snprintf(st->message, sizeof st->message, "%s (gRPC: %s)", why, details);
}

int rpc_stream_finish(rpc_stream *s, rpc_status *st) {
  rpc_status local;
  if (!st) st = &local;
  /* The status arrives when the server ends the call or the deadline passes, whichever is first. */
  if (!s->initial_received) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_INITIAL_METADATA;
    op.data.recv_initial_metadata.recv_initial_metadata = &s->initial_metadata;
    stream_batch(s, &op, 1);
    s->initial_received = 1;
  }
  if (s->status_posted) {
    grpc_completion_queue_pluck(s->cq, &s->status_tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    st->code = s->status;
    status_explain(s, st);
  } else {
    st->code = GRPC_STATUS_INTERNAL;
    snprintf(st->message, sizeof st->message, "the call could not be started");
  }
  grpc_slice_unref(s->status_details);
  if (s->error_string) gpr_free((void *)s->error_string);
  grpc_metadata_array_destroy(&s->initial_metadata);
  grpc_metadata_array_destroy(&s->trailing_metadata);
  grpc_call_unref(s->call);
  grpc_completion_queue_shutdown(s->cq);
  while (grpc_completion_queue_pluck(s->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(s->cq);
  rpc_bytes_free(&s->rbuf);
  free(s);
  return st->code == GRPC_STATUS_OK ? 0 : -1;
}

int rpc_unary(rpc_client *c, const char *path, const ProtobufCMessage *request,
              const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response, double timeout_s,
              rpc_status *st) {
  *response = NULL;
  rpc_stream *s = rpc_stream_open(c, path, timeout_s);
  rpc_stream_send(s, request);
  rpc_stream_close_send(s);
  ProtobufCMessage *msg = NULL;
  rpc_stream_recv(s, response_type, &msg);
  if (rpc_stream_finish(s, st) != 0 || !msg) {
    if (msg) protobuf_c_message_free_unpacked(msg, NULL);
    if (st->code == GRPC_STATUS_OK) {
      st->code = GRPC_STATUS_INTERNAL;
      snprintf(st->message, sizeof st->message, "the server sent no response");
    }
    return -1;
  }
  *response = msg;
  return 0;
}
