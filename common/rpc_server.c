/* Server half of the RPC layer.
 *
 * Threads: one dispatcher waits on the server's completion queue for new calls and hands each to
 * a queue; `threads` workers take calls from it and run them start to finish. Every call is bound
 * to a completion queue of its own, which only its worker plucks, so handlers are plain blocking
 * code and no two threads ever touch one call. Calls that cannot run (unknown method, queue full,
 * stopping, too many from one client) are answered by the dispatcher at once.
 *
 * The per-client bound lives here rather than in a handler: by the time a handler runs, the call
 * already holds a worker, so one client opening streams it never finishes would take every worker
 * and queue slot from the others before any handler could refuse it. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/log.h>
#include <openssl/pem.h>

#include "log.h"
#include "rpc.h"
#include "rpc_crl.h"
#include "rpc_tls_dir.h"
#include "rpc_wire.h"

enum { MAX_CAS = 16 };

/* One armed grpc_server_request_call, and then the call it delivered. */
typedef struct slot {
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array metadata;
  grpc_completion_queue *cq; /* bound to the call; plucked only by the thread owning the call */
  char peer[256];            /* verified CN of the client certificate; "" if none */
  struct slot *next;
} slot;

/* Calls of one client identity that are queued or running. */
typedef struct {
  char peer[256];
  int calls;
} peer_calls;

struct rpc_call {
  rpc_server *server;
  slot *slot;
  const rpc_method *method;
  char path[256];
  char peer[256];
  ProtobufCMessage *request;  /* unary and server streaming */
  rpc_bytes rbuf;             /* reused for every received message */
  grpc_byte_buffer *reply;    /* unary and client streaming, sent with the status */
  int initial_metadata_sent;
  int close_received;         /* RECV_CLOSE_ON_SERVER completed */
  int client_cancelled;       /* filled in by RECV_CLOSE_ON_SERVER */
  int stream_ended;           /* the client half-closed */
  unsigned long received;     /* messages received so far */
  grpc_status_code status;
  char message[512];
  char close_tag;             /* address used as the RECV_CLOSE_ON_SERVER tag */
  char op_tag;                /* address used as the tag of every other batch */
};

struct rpc_server {
  grpc_server *server;
  grpc_completion_queue *cq; /* new-call notifications and the shutdown tag */
  const rpc_method *methods;
  size_t n_methods;
  void *user;
  int port;
  int max_queued;
  int idle_timeout_ms;
  int max_per_peer;
  int n_workers;
  pthread_t dispatcher;
  pthread_t *workers;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  slot *head, *tail; /* calls waiting for a worker */
  int queued;
  peer_calls *peers; /* (n_peers) clients with calls queued or running; under mu */
  int n_peers, cap_peers;
  int dispatcher_done;
  atomic_int stopping;
  int armed; /* request slots outstanding; touched by the dispatcher only after start */
  char shutdown_tag;
  char *cert_file, *key_file, *ca_file; /* as configured: a reload reads them again */
  rpc_tls_dir tls;                     /* the copies gRPC's file watcher reads */
  pthread_mutex_t tls_mu;              /* crl and the certificates in force: reload against dispatcher */
  rpc_crl crl;                         /* crl.file is NULL without a crl_file */
  cert_info leaf;                      /* the server certificate in force */
  cert_info cas[MAX_CAS];              /* (n_cas) the client CA certificates in force */
  int n_cas;
  void (*on_peer_certificate)(void *user, const char *peer, const cert_info *cert);
  void *peer_certificate_user;
};

/* ------------------------------------------------------------------ slots */

static slot *slot_arm(rpc_server *s) {
  slot *sl = calloc(1, sizeof *sl);
  if (!sl) return NULL;
  grpc_call_details_init(&sl->details);
  grpc_metadata_array_init(&sl->metadata);
  sl->cq = grpc_completion_queue_create_for_pluck(NULL);
  if (grpc_server_request_call(s->server, &sl->call, &sl->details, &sl->metadata, sl->cq, s->cq, sl) !=
      GRPC_CALL_OK) {
    log_error("rpc: cannot arm a request slot");
    grpc_completion_queue_shutdown(sl->cq);
    grpc_completion_queue_destroy(sl->cq);
    grpc_call_details_destroy(&sl->details);
    grpc_metadata_array_destroy(&sl->metadata);
    free(sl);
    return NULL;
  }
  s->armed++;
  return sl;
}

static void slot_free(slot *sl) {
  if (sl->call) grpc_call_unref(sl->call);
  grpc_completion_queue_shutdown(sl->cq);
  /* The queue is empty by now (every batch was plucked); this returns GRPC_QUEUE_SHUTDOWN. */
  while (grpc_completion_queue_pluck(sl->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(sl->cq);
  grpc_call_details_destroy(&sl->details);
  grpc_metadata_array_destroy(&sl->metadata);
  free(sl);
}

static void slice_to_string(grpc_slice sl, char *out, size_t cap) {
  size_t n = GRPC_SLICE_LENGTH(sl);
  if (n >= cap) n = cap - 1;
  memcpy(out, GRPC_SLICE_START_PTR(sl), n);
  out[n] = '\0';
}

/* Answers a call that will not run (unknown method, overload, shutdown) and frees its slot. */
static void slot_refuse(slot *sl, grpc_status_code code, const char *message) {
  int cancelled = 0;
  grpc_slice details = grpc_slice_from_copied_string(message);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[1].data.send_status_from_server.status = code;
  ops[1].data.send_status_from_server.status_details = &details;
  ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[2].data.recv_close_on_server.cancelled = &cancelled;
  if (grpc_call_start_batch(sl->call, ops, 3, sl, NULL) == GRPC_CALL_OK)
    grpc_completion_queue_pluck(sl->cq, sl, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  grpc_slice_unref(details);
  slot_free(sl);
}

/* ------------------------------------------------------------------ calls */

const char *rpc_call_peer(const rpc_call *c) { return c->peer; }
const char *rpc_call_method(const rpc_call *c) { return c->path; }
const ProtobufCMessage *rpc_call_request(const rpc_call *c) { return c->request; }
grpc_status_code rpc_call_status(const rpc_call *c) { return c->status; }
const char *rpc_call_message(const rpc_call *c) { return c->message; }

grpc_status_code rpc_call_fail(rpc_call *c, grpc_status_code code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->message, sizeof c->message, fmt, ap);
  va_end(ap);
  c->status = code;
  log_info("rpc %s from %s: status %d: %s", c->path, c->peer[0] ? c->peer : "?", (int)code, c->message);
  return code;
}

/* Runs one batch on the call and waits for it. Batches that wait on the client are bounded by
 * the idle timeout so a client that stops sending or reading cannot hold a thread forever. */
static int call_batch(rpc_call *c, const grpc_op *ops, size_t n) {
  if (grpc_call_start_batch(c->slot->call, ops, n, &c->op_tag, NULL) != GRPC_CALL_OK) {
    rpc_call_fail(c, GRPC_STATUS_INTERNAL, "cannot start a batch on the call");
    return -1;
  }
  grpc_completion_queue *cq = c->slot->cq;
  grpc_event ev = grpc_completion_queue_pluck(cq, &c->op_tag, rpc_deadline_after_ms(c->server->idle_timeout_ms), NULL);
  if (ev.type == GRPC_QUEUE_TIMEOUT) {
    char why[128];
    snprintf(why, sizeof why, "nothing from the client for %d ms", c->server->idle_timeout_ms);
    grpc_call_cancel_with_status(c->slot->call, GRPC_STATUS_DEADLINE_EXCEEDED, why, NULL);
    ev = grpc_completion_queue_pluck(cq, &c->op_tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    rpc_call_fail(c, GRPC_STATUS_DEADLINE_EXCEEDED, "%s", why);
    return -1;
  }
  if (!ev.success) {
    if (c->status == GRPC_STATUS_OK) rpc_call_fail(c, GRPC_STATUS_CANCELLED, "the call was cancelled or the client went away");
    return -1;
  }
  return 0;
}

int rpc_call_done(rpc_call *c) {
  if (atomic_load(&c->server->stopping)) return 1;
  if (!c->close_received) {
    grpc_event ev = grpc_completion_queue_pluck(c->slot->cq, &c->close_tag, gpr_time_0(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_OP_COMPLETE) c->close_received = 1;
  }
  return c->close_received;
}

/* Receives the next message into c->rbuf: 1 got one, 0 end of stream, -1 failure. */
static int call_recv_bytes(rpc_call *c) {
  if (c->stream_ended) return 0;
  grpc_byte_buffer *bb = NULL;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &bb;
  if (call_batch(c, &op, 1) != 0) return -1;
  if (!bb) {
    c->stream_ended = 1;
    return 0;
  }
  int rc = rpc_bytes_from_buffer(&c->rbuf, bb);
  grpc_byte_buffer_destroy(bb);
  if (rc != 0) {
    rpc_call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot hold message %lu", c->received + 1);
    return -1;
  }
  c->received++;
  return 1;
}

int rpc_call_recv(rpc_call *c, ProtobufCMessage **msg) {
  *msg = NULL;
  int rc = call_recv_bytes(c);
  if (rc <= 0) return rc;
  *msg = rpc_bytes_decode(&c->rbuf, c->method->request);
  if (!*msg) {
    rpc_call_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "message %lu of the stream is not a valid %s (%zu bytes)",
                  c->received, c->method->request->name, c->rbuf.len);
    return -1;
  }
  return 1;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *msg) {
  grpc_byte_buffer *bb = rpc_buffer_from_message(msg);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!c->initial_metadata_sent) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = bb;
  int rc = call_batch(c, ops, n);
  grpc_byte_buffer_destroy(bb);
  c->initial_metadata_sent = 1;
  return rc;
}

grpc_status_code rpc_call_reply(rpc_call *c, const ProtobufCMessage *msg) {
  if (c->reply) grpc_byte_buffer_destroy(c->reply);
  c->reply = rpc_buffer_from_message(msg);
  return GRPC_STATUS_OK;
}

/* Sends the reply (if OK) and the status, then waits for the call to close. */
static void call_finish(rpc_call *c, grpc_status_code code) {
  grpc_slice details = grpc_slice_from_copied_string(code == GRPC_STATUS_OK ? "" : c->message);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!c->initial_metadata_sent) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (code == GRPC_STATUS_OK && c->reply) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->reply;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n++].data.send_status_from_server.status_details = &details;
  c->initial_metadata_sent = 1;
  call_batch(c, ops, n);
  grpc_slice_unref(details);
  if (!c->close_received)
    grpc_completion_queue_pluck(c->slot->cq, &c->close_tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
}

static void slot_read_peer(slot *sl) {
  sl->peer[0] = '\0';
  grpc_auth_context *ctx = grpc_call_auth_context(sl->call);
  if (!ctx) return;
  grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
  const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
  if (p) {
    size_t n = p->value_length < sizeof sl->peer - 1 ? p->value_length : sizeof sl->peer - 1;
    memcpy(sl->peer, p->value, n);
    sl->peer[n] = '\0';
  }
  grpc_auth_context_release(ctx);
}

/* Counts a call of peer in (delta = +1, refused with 0 when the peer is at its bound) or out
 * (delta = -1). Lock held. */
static int peer_calls_add(rpc_server *s, const char *peer, int delta) {
  int i = 0;
  while (i < s->n_peers && strcmp(s->peers[i].peer, peer) != 0) i++;
  if (delta > 0) {
    if (i < s->n_peers && s->peers[i].calls >= s->max_per_peer) return 0;
    if (i == s->n_peers) {
      if (s->n_peers == s->cap_peers) {
        int cap = s->cap_peers ? 2 * s->cap_peers : 16;
        peer_calls *grown = realloc(s->peers, (size_t)cap * sizeof *grown);
        if (!grown) return 0;
        s->peers = grown;
        s->cap_peers = cap;
      }
      snprintf(s->peers[i].peer, sizeof s->peers[i].peer, "%s", peer);
      s->peers[i].calls = 0;
      s->n_peers++;
    }
  } else if (i == s->n_peers) {
    return 1;
  }
  s->peers[i].calls += delta;
  if (s->peers[i].calls == 0) s->peers[i] = s->peers[--s->n_peers]; /* the table holds active peers only */
  return 1;
}

static void call_run(rpc_server *s, slot *sl, const rpc_method *m) {
  rpc_call c;
  memset(&c, 0, sizeof c);
  c.server = s;
  c.slot = sl;
  c.method = m;
  slice_to_string(sl->details.method, c.path, sizeof c.path);
  memcpy(c.peer, sl->peer, sizeof c.peer);

  grpc_op close_op;
  memset(&close_op, 0, sizeof close_op);
  close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  close_op.data.recv_close_on_server.cancelled = &c.client_cancelled;
  if (grpc_call_start_batch(sl->call, &close_op, 1, &c.close_tag, NULL) != GRPC_CALL_OK) {
    log_error("rpc %s: cannot watch the call for cancellation", c.path);
    c.close_received = 1;
  }

  grpc_status_code code;
  if (!c.peer[0]) {
    /* Unreachable with REQUIRE_AND_VERIFY, kept because identity is what everything trusts. */
    code = rpc_call_fail(&c, GRPC_STATUS_UNAUTHENTICATED, "the client certificate has no common name");
  } else if (m->kind == RPC_CLIENT_STREAMING) {
    code = m->handler(&c, s->user);
  } else {
    int rc = call_recv_bytes(&c);
    if (rc == 0)
      code = rpc_call_fail(&c, GRPC_STATUS_INVALID_ARGUMENT, "the call carried no request message");
    else if (rc < 0)
      code = c.status;
    else if (!(c.request = rpc_bytes_decode(&c.rbuf, m->request)))
      code = rpc_call_fail(&c, GRPC_STATUS_INVALID_ARGUMENT, "the request is not a valid %s (%zu bytes)",
                           m->request->name, c.rbuf.len);
    else
      code = m->handler(&c, s->user);
  }
  if (code != GRPC_STATUS_OK && c.status == GRPC_STATUS_OK)
    rpc_call_fail(&c, code, "the handler failed without saying why");
  call_finish(&c, code);

  if (c.request) protobuf_c_message_free_unpacked(c.request, NULL);
  if (c.reply) grpc_byte_buffer_destroy(c.reply);
  rpc_bytes_free(&c.rbuf);
  pthread_mutex_lock(&s->mu);
  peer_calls_add(s, sl->peer, -1);
  pthread_mutex_unlock(&s->mu);
  slot_free(sl);
}

static const rpc_method *method_find(const rpc_server *s, grpc_slice path) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (grpc_slice_str_cmp(path, s->methods[i].path) == 0) return &s->methods[i];
  return NULL;
}

/* ------------------------------------------------------------------ threads */

static void *worker_main(void *arg) {
  rpc_server *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (!s->head && !s->dispatcher_done) pthread_cond_wait(&s->cv, &s->mu);
    slot *sl = s->head;
    if (sl) {
      s->head = sl->next;
      if (!s->head) s->tail = NULL;
      s->queued--;
    }
    pthread_mutex_unlock(&s->mu);
    if (!sl) return NULL;
    call_run(s, sl, method_find(s, sl->details.method));
  }
}

/* The client's certificate, for every call: checked against the CRLs in force (gRPC checks them
 * in the handshake only, and a connection outlives a reload) and shown to on_peer_certificate.
 * 0, or -1 with why the call is refused. */
static int slot_check_certificate(rpc_server *s, slot *sl, char *why, size_t cap) {
  grpc_auth_context *ctx = grpc_call_auth_context(sl->call);
  if (!ctx) return 0;
  grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
  const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
  char *pem = p ? strndup(p->value, p->value_length) : NULL;
  grpc_auth_context_release(ctx);
  if (!pem) return 0; /* no certificate: call_run refuses the call for want of a name */
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  cert_info ci;
  int rc = 0;
  if (cert && cert_info_list(pem, &ci, 1) == 1) {
    pthread_mutex_lock(&s->tls_mu);
    int revoked = s->crl.file && rpc_crl_revoked(&s->crl, cert);
    pthread_mutex_unlock(&s->tls_mu);
    if (revoked) {
      snprintf(why, cap, "the client certificate of '%s' (serial %s) has been revoked by its CA", sl->peer, ci.serial);
      rc = -1;
    } else if (s->on_peer_certificate) {
      s->on_peer_certificate(s->peer_certificate_user, sl->peer, &ci);
    }
  }
  X509_free(cert);
  free(pem);
  return rc;
}

static void dispatch(rpc_server *s, slot *sl) {
  const rpc_method *m = method_find(s, sl->details.method);
  if (!m) {
    char path[256], msg[320];
    slice_to_string(sl->details.method, path, sizeof path);
    snprintf(msg, sizeof msg, "unknown method %s", path);
    slot_refuse(sl, GRPC_STATUS_UNIMPLEMENTED, msg);
    return;
  }
  if (atomic_load(&s->stopping)) {
    slot_refuse(sl, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
    return;
  }
  slot_read_peer(sl);
  char why[512];
  if (slot_check_certificate(s, sl, why, sizeof why) != 0) {
    log_warn("rpc: %s", why);
    slot_refuse(sl, GRPC_STATUS_UNAUTHENTICATED, why);
    return;
  }
  pthread_mutex_lock(&s->mu);
  int full = s->queued >= s->max_queued, over = !full && !peer_calls_add(s, sl->peer, +1);
  if (!full && !over) {
    sl->next = NULL;
    if (s->tail)
      s->tail->next = sl;
    else
      s->head = sl;
    s->tail = sl;
    s->queued++;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  if (full) {
    log_warn("rpc: %d calls already waiting; refusing one", s->max_queued);
    slot_refuse(sl, GRPC_STATUS_RESOURCE_EXHAUSTED, "the server is busy: too many calls waiting");
  } else if (over) {
    char path[256], msg[640];
    slice_to_string(sl->details.method, path, sizeof path);
    snprintf(msg, sizeof msg, "client '%s' already has %d calls in flight (the per-client limit); %s refused",
             sl->peer, s->max_per_peer, path);
    log_warn("rpc: %s", msg);
    slot_refuse(sl, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
  }
}

static void *dispatcher_main(void *arg) {
  rpc_server *s = arg;
  int shutdown_seen = 0;
  while (!shutdown_seen || s->armed > 0) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) break;
    if (ev.tag == &s->shutdown_tag) {
      shutdown_seen = 1;
      continue;
    }
    slot *sl = ev.tag;
    s->armed--;
    if (!ev.success) { /* the server is shutting down: the slot never got a call */
      slot_free(sl);
      continue;
    }
    if (!atomic_load(&s->stopping)) slot_arm(s);
    dispatch(s, sl);
  }
  pthread_mutex_lock(&s->mu);
  s->dispatcher_done = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

/* The server's key, certificate and client CA as read from the configured files and checked
 * together; the key is wiped when freed. */
typedef struct {
  char *cert, *key, *ca;
  cert_info leaf;
} tls_material;

static void material_free(tls_material *m) {
  if (m->key) {
    memset(m->key, 0, strlen(m->key));
    free(m->key);
  }
  free(m->cert);
  free(m->ca);
  memset(m, 0, sizeof *m);
}

static int material_read(tls_material *m, const char *cert_file, const char *key_file, const char *ca_file, char *err,
                         size_t errlen) {
  memset(m, 0, sizeof *m);
  m->cert = rpc_read_pem(cert_file, "server certificate", err, errlen);
  m->key = m->cert ? rpc_read_pem(key_file, "server key", err, errlen) : NULL;
  m->ca = m->key ? rpc_read_pem(ca_file, "client CA", err, errlen) : NULL;
  if (m->ca && cert_check_identity(m->cert, cert_file, m->key, key_file, m->ca, ca_file, CERT_FOR_SERVER, &m->leaf,
                                   err, errlen) == 0)
    return 0;
  material_free(m);
  return -1;
}

/* Lock held (or not yet shared). */
static void material_in_force(rpc_server *s, const tls_material *m) {
  s->leaf = m->leaf;
  s->n_cas = cert_info_list(m->ca, s->cas, MAX_CAS);
}

/* gRPC's TLS credentials rather than its SSL ones: only they can check client certificates
 * against CRLs. Both negotiate TLS 1.2 at least, 1.3 when the client offers it. The material is
 * read from the private copies in s->tls (rpc_tls_dir.h explains why). */
static grpc_server_credentials *server_credentials(rpc_server *s, const rpc_server_config *cfg, char *err,
                                                   size_t errlen) {
  tls_material m;
  if (material_read(&m, cfg->cert_file, cfg->key_file, cfg->client_ca_file, err, errlen) != 0) return NULL;
  grpc_server_credentials *creds = NULL;
  if ((!cfg->crl_file || rpc_crl_open(&s->crl, cfg->crl_file, m.ca, err, errlen) == 0) &&
      rpc_tls_dir_open(&s->tls, m.cert, m.key, m.ca, err, errlen) == 0) {
    material_in_force(s, &m);
    grpc_tls_certificate_provider *provider =
        grpc_tls_certificate_provider_file_watcher_create(s->tls.identity, s->tls.identity, s->tls.ca, RPC_TLS_REFRESH_S);
    grpc_tls_credentials_options *options = grpc_tls_credentials_options_create();
    grpc_tls_credentials_options_set_certificate_provider(options, provider);
    grpc_tls_credentials_options_watch_root_certs(options);
    grpc_tls_credentials_options_watch_identity_key_cert_pairs(options);
    grpc_tls_credentials_options_set_cert_request_type(options,
                                                       GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    if (s->crl.file) grpc_tls_credentials_options_set_crl_directory(options, s->crl.dir);
    creds = grpc_tls_server_credentials_create(options);
    grpc_tls_certificate_provider_release(provider);
    if (!creds) snprintf(err, errlen, "gRPC rejected the server's TLS settings");
  }
  material_free(&m);
  return creds;
}

static void server_free_tls(rpc_server *s) {
  rpc_crl_close(&s->crl);
  rpc_tls_dir_close(&s->tls);
  pthread_mutex_destroy(&s->tls_mu);
  free(s->cert_file);
  free(s->key_file);
  free(s->ca_file);
}

rpc_server *rpc_server_start(const rpc_server_config *cfg, char *err, size_t errlen) {
  rpc_grpc_init();
  rpc_server *s = calloc(1, sizeof *s);
  grpc_server_credentials *creds = s ? server_credentials(s, cfg, err, errlen) : NULL;
  if (!s || !creds) {
    if (creds) grpc_server_credentials_release(creds);
    if (s) {
      rpc_crl_close(&s->crl);
      rpc_tls_dir_close(&s->tls);
    }
    free(s);
    grpc_shutdown();
    return NULL;
  }
  s->cert_file = strdup(cfg->cert_file);
  s->key_file = strdup(cfg->key_file);
  s->ca_file = strdup(cfg->client_ca_file);
  s->on_peer_certificate = cfg->on_peer_certificate;
  s->peer_certificate_user = cfg->peer_certificate_user;
  pthread_mutex_init(&s->tls_mu, NULL);
  s->methods = cfg->methods;
  s->n_methods = cfg->n_methods;
  s->user = cfg->user;
  s->n_workers = cfg->threads > 0 ? cfg->threads : 8;
  s->max_queued = cfg->max_queued > 0 ? cfg->max_queued : 64;
  s->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : 60000;
  s->max_per_peer = cfg->max_calls_per_peer > 0 ? cfg->max_calls_per_peer : 8;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);

  grpc_arg args[2];
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)(cfg->max_message_bytes ? cfg->max_message_bytes : RPC_DEFAULT_MAX_MESSAGE);
  /* gRPC sets SO_REUSEPORT by default, which lets a second server bind a busy port silently. */
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_ALLOW_REUSEPORT;
  args[1].value.integer = 0;
  grpc_channel_args channel_args = {2, args};
  s->server = grpc_server_create(&channel_args, NULL);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  s->port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
  grpc_server_credentials_release(creds);
  if (s->port == 0) {
    snprintf(err, errlen, "cannot listen on %s: the address is in use, malformed, or not on this machine",
             cfg->listen);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    server_free_tls(s);
    free(s);
    grpc_shutdown();
    return NULL;
  }
  grpc_server_start(s->server);
  /* More armed slots than workers, so bursts are accepted and queued rather than stalled. */
  for (int i = 0; i < s->n_workers + 4; i++) slot_arm(s);
  s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
  for (int i = 0; i < s->n_workers; i++) pthread_create(&s->workers[i], NULL, worker_main, s);
  pthread_create(&s->dispatcher, NULL, dispatcher_main, s);
  log_debug("rpc: listening on %s (port %d) with %d handler threads", cfg->listen, s->port, s->n_workers);
  return s;
}

int rpc_server_port(const rpc_server *s) { return s->port; }

int rpc_server_reload(rpc_server *s, char *err, size_t errlen) {
  tls_material m;
  if (material_read(&m, s->cert_file, s->key_file, s->ca_file, err, errlen) != 0) return -1;
  /* The CRLs first: they are checked against the new CAs, and if they fail nothing has changed.
   * The lock keeps the dispatcher from reading CRLs half replaced. */
  pthread_mutex_lock(&s->tls_mu);
  int rc = s->crl.file ? rpc_crl_reload(&s->crl, m.ca, err, errlen) : 0;
  if (rc == 0) rc = rpc_tls_dir_write(&s->tls, m.cert, m.key, m.ca, err, errlen);
  if (rc == 0) material_in_force(s, &m);
  pthread_mutex_unlock(&s->tls_mu);
  material_free(&m);
  return rc;
}

int rpc_server_certificates(rpc_server *s, cert_info *leaf, cert_info *cas, int cap) {
  pthread_mutex_lock(&s->tls_mu);
  *leaf = s->leaf;
  int n = s->n_cas < cap ? s->n_cas : cap;
  memcpy(cas, s->cas, (size_t)n * sizeof *cas);
  pthread_mutex_unlock(&s->tls_mu);
  return n;
}

void rpc_server_stop(rpc_server *s) {
  if (!s) return;
  /* The order gRPC requires: shutdown and notify, cancel calls, drain to the shutdown tag,
   * destroy the server, then shut down and drain the queue. */
  atomic_store(&s->stopping, 1);
  grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
  grpc_server_cancel_all_calls(s->server);
  pthread_join(s->dispatcher, NULL);
  for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
  grpc_server_destroy(s->server);
  grpc_completion_queue_shutdown(s->cq);
  while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(s->cq);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->workers);
  free(s->peers);
  server_free_tls(s);
  free(s);
  grpc_shutdown();
}
