/* The RPC layer against a real gRPC peer on loopback, over mutual TLS made by certs/dev-pki.sh:
 * unary with the peer's CN, 64 MiB each way in chunks (sent by payload_stream.h, received and
 * checked here: offsets, header only first, chunk count, digest), refusals with words a person can
 * act on, UNIMPLEMENTED, deadlines, malformed requests and a busy port. */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "federation_api.h"
#include "harness.h"
#include "payload_stream.h"
#include "rpc.h"

#define BIG ((size_t)64 << 20)

static char pki_path[8][512];
static const char *pki(const char *file) {
  static int next;
  char *p = pki_path[next++ % 8];
  snprintf(p, 512, "%s/%s", harness_pki(), file);
  return p;
}

/* Deterministic payload so both sides can produce and check it. */
static uint8_t *make_payload(size_t n, uint32_t seed) {
  uint8_t *p = malloc(n);
  uint32_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x = x * 1664525u + 1013904223u;
    p[i] = (uint8_t)(x >> 24);
  }
  return p;
}

static void sha256(const void *data, size_t n, uint8_t out[32]) {
  unsigned len = 32;
  EVP_Digest(data, n, out, &len, EVP_sha256(), NULL);
}

/* ------------------------------------------------------------------ server handlers */

static grpc_status_code handle_join(rpc_call *call, void *user) {
  (void)user;
  const Fedlora__V1__JoinRequest *req = (const Fedlora__V1__JoinRequest *)rpc_call_request(call);
  Fedlora__V1__JoinResponse resp = FEDLORA__V1__JOIN_RESPONSE__INIT;
  resp.site = (char *)rpc_call_peer(call);
  resp.base_model_fingerprint = req->base_model_fingerprint;
  return rpc_call_reply(call, &resp.base);
}

/* Sends BIG bytes in 1 MiB chunks; the header in the first chunk carries the digest. */
static grpc_status_code handle_download(rpc_call *call, void *user) {
  (void)user;
  const Fedlora__V1__DownloadRequest *req = (const Fedlora__V1__DownloadRequest *)rpc_call_request(call);
  uint8_t *payload = make_payload(BIG, req->round);
  uint8_t digest[32];
  sha256(payload, BIG, digest);
  Fedlora__V1__PayloadHeader header = FEDLORA__V1__PAYLOAD_HEADER__INIT;
  header.total_size = BIG;
  header.sha256 = (ProtobufCBinaryData){32, digest};
  uint64_t sent = 0;
  int rc = payload_send_call(call, &fedlora__v1__chunk__descriptor, &header.base, payload, BIG, &sent);
  free(payload);
  if (rc != 0) return rpc_call_status(call);
  if (sent != BIG)
    return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "counted %llu bytes sent", (unsigned long long)sent);
  return GRPC_STATUS_OK;
}

/* Receives chunks into a buffer, checks offsets, size and digest, and replies with the digest. */
static grpc_status_code handle_submit(rpc_call *call, void *user) {
  (void)user;
  uint8_t *buf = NULL;
  uint64_t total = 0, got = 0;
  uint8_t want[32] = {0};
  ProtobufCMessage *m;
  int rc;
  grpc_status_code code = GRPC_STATUS_OK;
  while ((rc = rpc_call_recv(call, &m)) == 1) {
    Fedlora__V1__UpdateChunk *chunk = (Fedlora__V1__UpdateChunk *)m;
    if (!buf) {
      if (!chunk->header || !chunk->header->payload || chunk->header->payload->total_size > BIG ||
          chunk->header->payload->sha256.len != 32) {
        code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "the first chunk must carry a header");
      } else {
        total = chunk->header->payload->total_size;
        memcpy(want, chunk->header->payload->sha256.data, 32);
        buf = malloc(total);
      }
    }
    if (code == GRPC_STATUS_OK && got > 0 && chunk->header)
      code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "a second header at offset %llu",
                           (unsigned long long)chunk->offset);
    if (code == GRPC_STATUS_OK && (chunk->offset != got || got + chunk->data.len > total))
      code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "chunk at offset %llu out of order",
                           (unsigned long long)chunk->offset);
    if (code == GRPC_STATUS_OK) {
      memcpy(buf + got, chunk->data.data, chunk->data.len);
      got += chunk->data.len;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    if (code != GRPC_STATUS_OK) break;
  }
  if (code == GRPC_STATUS_OK && rc < 0) code = rpc_call_status(call);
  uint8_t digest[32];
  if (code == GRPC_STATUS_OK) {
    sha256(buf, got, digest);
    if (got != total || memcmp(digest, want, 32) != 0)
      code = rpc_call_fail(call, GRPC_STATUS_DATA_LOSS, "received %llu of %llu bytes or digest mismatch",
                           (unsigned long long)got, (unsigned long long)total);
  }
  free(buf);
  if (code != GRPC_STATUS_OK) return code;
  Fedlora__V1__SubmitResponse resp = FEDLORA__V1__SUBMIT_RESPONSE__INIT;
  resp.sha256.data = digest;
  resp.sha256.len = 32;
  return rpc_call_reply(call, &resp.base);
}

/* Slower than any deadline the tests give it; returns early only when the call is over. */
static grpc_status_code handle_slow(rpc_call *call, void *user) {
  (void)user;
  for (int i = 0; i < 300 && !rpc_call_done(call); i++) usleep(10000);
  Fedlora__V1__Status resp = FEDLORA__V1__STATUS__INIT;
  return rpc_call_reply(call, &resp.base);
}

static const rpc_method methods[] = {
    {FED_JOIN, RPC_UNARY, &fedlora__v1__join_request__descriptor, handle_join},
    {FED_DOWNLOAD_ADAPTER, RPC_SERVER_STREAMING, &fedlora__v1__download_request__descriptor, handle_download},
    {FED_SUBMIT_UPDATE, RPC_CLIENT_STREAMING, &fedlora__v1__update_chunk__descriptor, handle_submit},
    {FED_GET_STATUS, RPC_UNARY, &fedlora__v1__status_request__descriptor, handle_slow},
};

/* ------------------------------------------------------------------ client side */

static rpc_client *client_for(int port, const char *ca, const char *cert, const char *key) {
  char target[64], err[512];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  rpc_client_config cfg = {.target = target, .ca_file = ca, .cert_file = cert, .key_file = key};
  rpc_client *c = rpc_client_create(&cfg, err, sizeof err);
  CHECK_MSG(c != NULL, "client: %s", err);
  return c;
}

static int join(rpc_client *c, char *site_out, size_t cap, rpc_status *st) {
  Fedlora__V1__JoinRequest req = FEDLORA__V1__JOIN_REQUEST__INIT;
  req.base_model_fingerprint = "abc123";
  ProtobufCMessage *resp = NULL;
  int rc = rpc_unary(c, FED_JOIN, &req.base, &fedlora__v1__join_response__descriptor, &resp, 10, st);
  if (rc == 0) {
    Fedlora__V1__JoinResponse *r = (Fedlora__V1__JoinResponse *)resp;
    snprintf(site_out, cap, "%s", r->site);
    CHECK(strcmp(r->base_model_fingerprint, "abc123") == 0);
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  return rc;
}

static void test_unary_sees_cn(int port) {
  rpc_client *c = client_for(port, pki("ca.pem"), pki("beta.pem"), pki("beta.key"));
  char site[64] = "";
  rpc_status st;
  CHECK_MSG(join(c, site, sizeof site, &st) == 0, "join: %d %s", st.code, st.message);
  CHECK(strcmp(site, "beta") == 0);
  /* A second call reuses the channel. */
  CHECK_MSG(join(c, site, sizeof site, &st) == 0, "second join: %d %s", st.code, st.message);
  rpc_client_free(c);
}

static void test_server_streaming_64mib(rpc_client *c) {
  Fedlora__V1__DownloadRequest req = FEDLORA__V1__DOWNLOAD_REQUEST__INIT;
  req.round = 7;
  rpc_stream *s = rpc_stream_open(c, FED_DOWNLOAD_ADAPTER, 120);
  CHECK(rpc_stream_send(s, &req.base) == 0);
  CHECK(rpc_stream_close_send(s) == 0);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  uint8_t want[32] = {0};
  uint64_t got = 0, chunks = 0, total = 0;
  ProtobufCMessage *m;
  while (rpc_stream_recv(s, &fedlora__v1__chunk__descriptor, &m) == 1) {
    Fedlora__V1__Chunk *chunk = (Fedlora__V1__Chunk *)m;
    if (chunks == 0 && chunk->header && chunk->header->sha256.len == 32) {
      memcpy(want, chunk->header->sha256.data, 32);
      total = chunk->header->total_size;
    }
    CHECK_EQ_INT(chunk->offset, got);
    CHECK((chunks == 0) == (chunk->header != NULL)); /* the header in the first chunk only */
    EVP_DigestUpdate(md, chunk->data.data, chunk->data.len);
    got += chunk->data.len;
    chunks++;
    protobuf_c_message_free_unpacked(m, NULL);
  }
  rpc_status st;
  CHECK_MSG(rpc_stream_finish(s, &st) == 0, "download: %d %s", st.code, st.message);
  uint8_t digest[32];
  unsigned len = 32;
  EVP_DigestFinal_ex(md, digest, &len);
  EVP_MD_CTX_free(md);
  CHECK_EQ_INT(got, BIG);
  CHECK_EQ_INT(total, BIG);
  CHECK_EQ_INT(chunks, BIG / FED_CHUNK_BYTES);
  CHECK(memcmp(digest, want, 32) == 0);
  /* And against an independent copy of what the server was asked to send. */
  uint8_t *expect = make_payload(BIG, 7), direct[32];
  sha256(expect, BIG, direct);
  free(expect);
  CHECK(memcmp(digest, direct, 32) == 0);
}

/* Sends payload in chunks; corrupt_at >= 0 flips one byte after the digest was computed. */
static int submit(rpc_client *c, const uint8_t *payload, size_t n, long corrupt_at, rpc_status *st,
                  uint8_t ack[32]) {
  uint8_t digest[32];
  sha256(payload, n, digest);
  rpc_stream *s = rpc_stream_open(c, FED_SUBMIT_UPDATE, 120);
  uint8_t *copy = NULL;
  if (corrupt_at >= 0) {
    copy = malloc(n);
    memcpy(copy, payload, n);
    copy[corrupt_at] ^= 1;
    payload = copy;
  }
  Fedlora__V1__UpdateHeader header = FEDLORA__V1__UPDATE_HEADER__INIT;
  Fedlora__V1__PayloadHeader ph = FEDLORA__V1__PAYLOAD_HEADER__INIT;
  ph.total_size = n;
  ph.sha256.data = digest;
  ph.sha256.len = 32;
  header.payload = &ph;
  payload_send_stream(s, &fedlora__v1__update_chunk__descriptor, &header.base, payload, n, NULL);
  rpc_stream_close_send(s);
  ProtobufCMessage *m = NULL;
  rpc_stream_recv(s, &fedlora__v1__submit_response__descriptor, &m);
  int rc = rpc_stream_finish(s, st);
  if (m) {
    Fedlora__V1__SubmitResponse *r = (Fedlora__V1__SubmitResponse *)m;
    if (r->sha256.len == 32) memcpy(ack, r->sha256.data, 32);
    protobuf_c_message_free_unpacked(m, NULL);
  }
  free(copy);
  return rc;
}

static void test_client_streaming_64mib(rpc_client *c) {
  uint8_t *payload = make_payload(BIG, 99), digest[32], ack[32] = {0};
  sha256(payload, BIG, digest);
  rpc_status st;
  CHECK_MSG(submit(c, payload, BIG, -1, &st, ack) == 0, "submit: %d %s", st.code, st.message);
  CHECK(memcmp(ack, digest, 32) == 0);
  /* A byte changed in transit is caught by the digest and reported with a status. */
  CHECK(submit(c, payload, 3 * FED_CHUNK_BYTES + 17, 2 * FED_CHUNK_BYTES + 5, &st, ack) != 0);
  CHECK_EQ_INT(st.code, GRPC_STATUS_DATA_LOSS);
  CHECK_STR_CONTAINS(st.message, "digest mismatch");
  free(payload);
}

static void test_refused(int port, const char *cert, const char *key, const char *what) {
  rpc_client *c = client_for(port, pki("ca.pem"), cert ? pki(cert) : NULL, key ? pki(key) : NULL);
  char site[64];
  rpc_status st;
  CHECK_MSG(join(c, site, sizeof site, &st) != 0, "%s was let in", what);
  CHECK_EQ_INT(st.code, GRPC_STATUS_UNAVAILABLE);
  CHECK_STR_CONTAINS(st.message, "TLS handshake refused: the aggregator refused this client's certificate");
  printf("%s: %s\n", what, st.message);
  rpc_client_free(c);
}

static void test_wrong_server_ca(int port) {
  /* The client trusts only the untrusted CA, so the aggregator's certificate must be rejected here. */
  rpc_client *c = client_for(port, pki("untrusted-ca.pem"), pki("alpha.pem"), pki("alpha.key"));
  char site[64];
  rpc_status st;
  CHECK(join(c, site, sizeof site, &st) != 0);
  CHECK_EQ_INT(st.code, GRPC_STATUS_UNAVAILABLE);
  CHECK_STR_CONTAINS(st.message, "the aggregator's certificate was not accepted by this client");
  printf("wrong CA: %s\n", st.message);
  rpc_client_free(c);
}

static void test_unimplemented_and_malformed(rpc_client *c) {
  rpc_stream *s = rpc_stream_open(c, "/fedlora.v1.Federation/NoSuchMethod", 10);
  rpc_stream_send_raw(s, "x", 1);
  rpc_stream_close_send(s);
  ProtobufCMessage *m = NULL;
  rpc_stream_recv(s, &fedlora__v1__status__descriptor, &m);
  rpc_status st;
  CHECK(rpc_stream_finish(s, &st) != 0);
  CHECK_EQ_INT(st.code, GRPC_STATUS_UNIMPLEMENTED);
  CHECK_STR_CONTAINS(st.message, "NoSuchMethod");

  /* Bytes that are not a JoinRequest (a truncated length-delimited field). */
  s = rpc_stream_open(c, FED_JOIN, 10);
  rpc_stream_send_raw(s, "\x0a\x50zz", 4);
  rpc_stream_close_send(s);
  rpc_stream_recv(s, &fedlora__v1__join_response__descriptor, &m);
  CHECK(rpc_stream_finish(s, &st) != 0);
  CHECK_EQ_INT(st.code, GRPC_STATUS_INVALID_ARGUMENT);
  CHECK_STR_CONTAINS(st.message, "not a valid fedlora.v1.JoinRequest");
}

static void test_deadline(rpc_client *c) {
  Fedlora__V1__StatusRequest req = FEDLORA__V1__STATUS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  CHECK(rpc_unary(c, FED_GET_STATUS, &req.base, &fedlora__v1__status__descriptor, &resp, 0.3, &st) != 0);
  CHECK_EQ_INT(st.code, GRPC_STATUS_DEADLINE_EXCEEDED);
}

static void test_busy_port(int port) {
  char listen[64], err[512] = "";
  snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
  rpc_server_config cfg = {.listen = listen, .cert_file = pki("aggregator.pem"), .key_file = pki("aggregator.key"),
                           .client_ca_file = pki("ca.pem"), .methods = methods, .n_methods = 4};
  rpc_server *second = rpc_server_start(&cfg, err, sizeof err);
  CHECK_MSG(second == NULL, "a second server bound the busy port %d", port);
  CHECK_STR_CONTAINS(err, "cannot listen on");
  if (second) rpc_server_stop(second);
}

static void test_bad_key_files(void) {
  char err[512] = "";
  rpc_server_config cfg = {.listen = "127.0.0.1:0", .cert_file = pki("aggregator.pem"), .key_file = pki("alpha.key"),
                           .client_ca_file = pki("ca.pem"), .methods = methods, .n_methods = 4};
  CHECK(rpc_server_start(&cfg, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "does not belong to the certificate");
  cfg.key_file = "/nonexistent/key.pem";
  CHECK(rpc_server_start(&cfg, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "/nonexistent/key.pem");
}

int main(void) {
  char err[512] = "";
  rpc_server_config cfg = {.listen = "127.0.0.1:0", .cert_file = pki("aggregator.pem"),
                           .key_file = pki("aggregator.key"), .client_ca_file = pki("ca.pem"),
                           .methods = methods, .n_methods = 4, .threads = 4};
  rpc_server *server = rpc_server_start(&cfg, err, sizeof err);
  CHECK_MSG(server != NULL, "server: %s", err);
  if (!server) return harness_finish();
  int port = rpc_server_port(server);
  CHECK(port > 0);

  test_unary_sees_cn(port);
  rpc_client *alpha = client_for(port, pki("ca.pem"), pki("alpha.pem"), pki("alpha.key"));
  test_server_streaming_64mib(alpha);
  test_client_streaming_64mib(alpha);
  test_unimplemented_and_malformed(alpha);
  test_deadline(alpha);
  rpc_client_free(alpha);
  test_refused(port, NULL, NULL, "no client certificate");
  test_refused(port, "untrusted-client.pem", "untrusted-client.key", "untrusted CA");
  test_wrong_server_ca(port);
  test_busy_port(port);
  test_bad_key_files();
  rpc_server_stop(server);
  return harness_finish();
}
