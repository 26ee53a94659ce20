/* Every way mutual TLS can go wrong, against a real gRPC server on loopback, with the certificates
 * of `certs/dev-pki.sh --extras`: each is refused, and the side that can fix it is told why.
 *
 *   client certificate    none, self-signed, other CA, expired, not yet valid, serverAuth only,
 *                         revoked (CRL), valid but CN not allow-listed (a handler's PERMISSION_DENIED)
 *   server certificate    wrong name, CA the client does not trust
 *   protocol              TLS 1.1 refused, 1.2 accepted, 1.3 negotiated by default
 *   CRL                   reload picks up a newly revoked site; bad CRL files stop the server starting
 *
 * The server's side of a refused handshake is gRPC's own log line; it is captured and printed next
 * to the client's message so the two can be read together. */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpc/support/log.h>

#include "federation_api.h"
#include "harness.h"
#include "rpc.h"

/* ------------------------------------------------------------------ PKI and server log */

static char pki_dir[256];

static const char *pki(const char *file) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", pki_dir, file);
  return p;
}

static void pki_make(void) {
  snprintf(pki_dir, sizeof pki_dir, "%s", harness_tmpdir());
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash '%s' --extras '%s' alpha beta gamma >/dev/null", harness_source("certs/dev-pki.sh"),
           pki_dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "certs/dev-pki.sh --extras failed\n");
    exit(2);
  }
}

static void pki_run(const char *what, const char *cmd) {
  CHECK_MSG(system(cmd) == 0, "%s: %s", what, cmd);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char server_log[4096];

static void log_capture(gpr_log_func_args *args) {
  pthread_mutex_lock(&log_mu);
  size_t n = strlen(server_log);
  if (n + 2 < sizeof server_log)
    snprintf(server_log + n, sizeof server_log - n, "%s%s", n ? " | " : "", args->message);
  pthread_mutex_unlock(&log_mu);
}

static void log_reset(void) {
  pthread_mutex_lock(&log_mu);
  server_log[0] = '\0';
  pthread_mutex_unlock(&log_mu);
}

/* ------------------------------------------------------------------ the server */

/* Who may join is the application's decision, made on the verified CN. */
static grpc_status_code handle_join(rpc_call *call, void *user) {
  (void)user;
  static const char *const allowed[] = {"alpha", "beta", "revoked"};
  const char *site = rpc_call_peer(call);
  int ok = 0;
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) ok |= strcmp(site, allowed[i]) == 0;
  if (!ok) return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED, "site '%s' is not in allowed_clients", site);
  Fedlora__V1__JoinResponse resp = FEDLORA__V1__JOIN_RESPONSE__INIT;
  resp.site = (char *)site;
  return rpc_call_reply(call, &resp.base);
}

static const rpc_method methods[] = {
    {FED_JOIN, RPC_UNARY, &fedlora__v1__join_request__descriptor, handle_join},
};

static rpc_server *server_start(const char *cert, const char *key, const char *client_ca, const char *crl, char *err,
                                size_t errlen) {
  rpc_server_config cfg = {.listen = "127.0.0.1:0", .cert_file = cert, .key_file = key, .client_ca_file = client_ca,
                           .crl_file = crl, .methods = methods, .n_methods = 1, .threads = 2};
  return rpc_server_start(&cfg, err, errlen);
}

/* ------------------------------------------------------------------ the client */

/* Joins as the holder of NAME.pem (NULL: no certificate) trusting ca; returns the status code and
 * the message the client would show (the site's CN on success). */
static grpc_status_code join_as(int port, const char *name, const char *ca, char *msg, size_t cap) {
  char target[64], err[512], cert[512] = "", key[512] = "";
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  if (name) {
    snprintf(cert, sizeof cert, "%s/%s.pem", pki_dir, name);
    snprintf(key, sizeof key, "%s/%s.key", pki_dir, name);
  }
  rpc_client_config cfg = {.target = target, .ca_file = ca, .cert_file = name ? cert : NULL,
                           .key_file = name ? key : NULL};
  rpc_client *c = rpc_client_create(&cfg, err, sizeof err);
  CHECK_MSG(c != NULL, "client %s: %s", name ? name : "(none)", err);
  if (!c) return GRPC_STATUS_INTERNAL;
  log_reset();
  Fedlora__V1__JoinRequest req = FEDLORA__V1__JOIN_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  rpc_status st = {GRPC_STATUS_OK, ""};
  if (rpc_unary(c, FED_JOIN, &req.base, &fedlora__v1__join_response__descriptor, &resp, 10, &st) == 0) {
    snprintf(msg, cap, "%s", ((Fedlora__V1__JoinResponse *)resp)->site);
    protobuf_c_message_free_unpacked(resp, NULL);
  } else {
    snprintf(msg, cap, "%s", st.message);
  }
  rpc_client_free(c);
  return st.code;
}

/* ------------------------------------------------------------------ the cases */

static void expect_admitted(int port, const char *name) {
  char msg[1024];
  grpc_status_code code = join_as(port, name, pki("ca.pem"), msg, sizeof msg);
  CHECK_MSG(code == GRPC_STATUS_OK, "%s was refused: %d %s", name, code, msg);
  CHECK_STR_CONTAINS(msg, name[0] == 'r' ? "revoked" : name);
}

/* A client certificate the aggregator must refuse in the handshake: the site is told its
 * certificate was refused, and why, in the words of `expect`. */
static void expect_client_refused(int port, const char *what, const char *name, const char *expect) {
  char msg[1024];
  grpc_status_code code = join_as(port, name, pki("ca.pem"), msg, sizeof msg);
  CHECK_MSG(code == GRPC_STATUS_UNAVAILABLE, "%s: status %d (%s)", what, code, msg);
  CHECK_STR_CONTAINS(msg, "TLS handshake refused: the aggregator refused this client's certificate");
  CHECK_STR_CONTAINS(msg, expect);
  pthread_mutex_lock(&log_mu);
  printf("%-22s client: %s\n%-22s server: %s\n", what, msg, "", server_log[0] ? server_log : "(nothing logged)");
  pthread_mutex_unlock(&log_mu);
}

static void test_client_certificates(int port) {
  expect_admitted(port, "alpha");
  expect_client_refused(port, "no client certificate", NULL, "this client presented no certificate");
  expect_client_refused(port, "self-signed", "selfsigned-client", "it is self-signed");
  expect_client_refused(port, "other CA", "untrusted-client",
                        "issued by /O=fedlora dev/CN=untrusted CA; it is valid here, so the aggregator does not trust its "
                        "issuer");
  expect_client_refused(port, "expired", "expired-client", "expired on Jan  1 00:00:00 2021 GMT");
  expect_client_refused(port, "not yet valid", "future-client", "not valid before Jan  1 00:00:00 2099 GMT");
  expect_client_refused(port, "serverAuth only", "serverauth-client", "not for client authentication");
  expect_client_refused(port, "revoked", "revoked-client", "does not trust its issuer or has revoked it");

  /* A valid certificate whose CN the application does not admit: the handshake succeeds and the
   * handler says no, by name, to both sides. */
  char msg[1024];
  grpc_status_code code = join_as(port, "gamma", pki("ca.pem"), msg, sizeof msg);
  CHECK_EQ_INT(code, GRPC_STATUS_PERMISSION_DENIED);
  CHECK_STR_CONTAINS(msg, "site 'gamma' is not in allowed_clients");
  printf("%-22s client: %s\n", "CN not allow-listed", msg);
}

/* The aggregator's certificate, as judged by the site. */
static void test_server_certificates(int port) {
  char err[512], msg[1024];
  rpc_server *wrong = server_start(pki("wrongname-aggregator.pem"), pki("wrongname-aggregator.key"), pki("ca.pem"),
                                   NULL, err, sizeof err);
  CHECK_MSG(wrong != NULL, "wrong-name server: %s", err);
  if (wrong) {
    grpc_status_code code = join_as(rpc_server_port(wrong), "alpha", pki("ca.pem"), msg, sizeof msg);
    CHECK_EQ_INT(code, GRPC_STATUS_UNAVAILABLE);
    CHECK_STR_CONTAINS(msg, "the aggregator's certificate was not accepted by this client");
    CHECK_STR_CONTAINS(msg, "IP address mismatch");
    CHECK_STR_CONTAINS(msg, "it does not name '127.0.0.1'");
    printf("%-22s client: %s\n", "aggregator wrong name", msg);
    rpc_server_stop(wrong);
  }
  grpc_status_code code = join_as(port, "alpha", pki("untrusted-ca.pem"), msg, sizeof msg);
  CHECK_EQ_INT(code, GRPC_STATUS_UNAVAILABLE);
  CHECK_STR_CONTAINS(msg, "the aggregator's certificate was not accepted by this client");
  CHECK_STR_CONTAINS(msg, "it is issued by /O=fedlora dev/CN=fedlora dev CA, which is not a CA in");
  printf("%-22s client: %s\n", "aggregator wrong CA", msg);
}

/* ------------------------------------------------------------------ protocol versions */

/* Handshakes with alpha's certificate, offering TLS versions up to max_version; returns the
 * version agreed on, or 0 if the handshake failed. */
static int handshake_version(int port, int max_version) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  /* TLS 1.0 and 1.1 need SHA-1 signatures, which OpenSSL 3's default security level forbids. */
  SSL_CTX_set_security_level(ctx, 0);
  static const unsigned char alpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
  SSL_CTX_load_verify_locations(ctx, pki("ca.pem"), NULL);
  SSL_CTX_use_certificate_chain_file(ctx, pki("alpha.pem"));
  SSL_CTX_use_PrivateKey_file(ctx, pki("alpha.key"), SSL_FILETYPE_PEM);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  int version = 0;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) version = SSL_version(ssl);
    SSL_free(ssl);
  }
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return version;
}

static void test_versions(int port) {
  CHECK_EQ_INT(handshake_version(port, TLS1_1_VERSION), 0);
  CHECK_EQ_INT(handshake_version(port, TLS1_2_VERSION), TLS1_2_VERSION);
  CHECK_EQ_INT(handshake_version(port, TLS1_3_VERSION), TLS1_3_VERSION);
}

/* ------------------------------------------------------------------ CRL files */

/* Revoking beta changes nothing until the server is told to reload; then beta is refused and
 * alpha is not. */
static void test_crl_reload(rpc_server *server, int port) {
  char err[512];
  /* CRL times have one-second resolution and OpenSSL keeps the newer of two CRLs, so the new one
   * must be dated later than the one in use. */
  sleep(1);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash '%s' --revoke '%s' beta >/dev/null", harness_source("certs/dev-pki.sh"), pki_dir);
  pki_run("revoke beta", cmd);
  expect_admitted(port, "beta");
  CHECK_MSG(rpc_server_reload(server, err, sizeof err) == 0, "reload: %s", err);
  expect_client_refused(port, "revoked after reload", "beta", "has revoked it");
  expect_admitted(port, "alpha");
}

static void expect_start_refused(const char *client_ca, const char *crl, const char *expect) {
  char err[512] = "";
  rpc_server *s = server_start(pki("aggregator.pem"), pki("aggregator.key"), client_ca, crl, err, sizeof err);
  CHECK_MSG(s == NULL, "started with CRL %s", crl);
  if (s) rpc_server_stop(s);
  CHECK_STR_CONTAINS(err, expect);
  printf("%-22s server: %s\n", "bad CRL file", err);
}

static void test_crl_files(rpc_server *server) {
  char err[512] = "";
  expect_start_refused(pki("ca.pem"), pki("no-such-crl.pem"), "cannot read the CRL file");
  expect_start_refused(pki("ca.pem"), pki("alpha.pem"), "holds no CRL");
  /* ca's CRL means nothing to a server that trusts only the other CA. */
  expect_start_refused(pki("untrusted-ca.pem"), pki("crl.pem"), "is not signed by any CA in the client CA file");
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "openssl ca -config '%s/ca-db/ca.cnf' -gencrl -crl_lastupdate 20200101000000Z "
           "-crl_nextupdate 20200201000000Z -out '%s' 2>/dev/null",
           pki_dir, pki("expired-crl.pem"));
  pki_run("expired CRL", cmd);
  expect_start_refused(pki("ca.pem"), pki("expired-crl.pem"), "expired (next update was due Feb  1 00:00:00 2020");

  rpc_server *plain = server_start(pki("aggregator.pem"), pki("aggregator.key"), pki("ca.pem"), NULL, err, sizeof err);
  CHECK_MSG(plain != NULL, "%s", err);
  if (plain) {
    /* Without a CRL, a reload rereads the certificates only. */
    CHECK_MSG(rpc_server_reload(plain, err, sizeof err) == 0, "reload without a CRL: %s", err);
    rpc_server_stop(plain);
  }
  /* A reload that fails keeps the CRLs in use. */
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", pki("crl.pem"), pki("crl.pem.good"));
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", pki("expired-crl.pem"), pki("crl.pem"));
  CHECK(system(cmd) == 0);
  CHECK(rpc_server_reload(server, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "expired");
  snprintf(cmd, sizeof cmd, "mv '%s' '%s'", pki("crl.pem.good"), pki("crl.pem"));
  CHECK(system(cmd) == 0);
}

int main(void) {
  pki_make();
  gpr_set_log_function(log_capture);
  char err[512] = "";
  rpc_server *server = server_start(pki("aggregator.pem"), pki("aggregator.key"), pki("ca.pem"), pki("crl.pem"), err,
                                    sizeof err);
  CHECK_MSG(server != NULL, "server: %s", err);
  if (!server) return harness_finish();
  int port = rpc_server_port(server);

  test_client_certificates(port);
  test_server_certificates(port);
  test_versions(port);
  test_crl_reload(server, port);
  test_crl_files(server);
  /* After the failed reload the server still refuses revoked clients and admits the others. */
  expect_client_refused(port, "revoked, still", "revoked-client", "has revoked it");
  expect_admitted(port, "alpha");
  rpc_server_stop(server);
  return harness_finish();
}
