/* Why did the connection fail? gRPC reports a refused client certificate as "Socket closed", so
 * the client repeats the handshake itself with OpenSSL and the same files, and reads the reason
 * (the server's alert, or our own verification of the server's certificate). */
#include "tls_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { PROBE_TIMEOUT_MS = 3000 };

/* Splits "host:port", "[v6]:port" or "ipv4:host:port" / "ipv6:[v6]:port". */
static int target_split(const char *target, char *host, size_t hcap, char *port, size_t pcap) {
  if (strncmp(target, "ipv4:", 5) == 0 || strncmp(target, "ipv6:", 5) == 0) target += 5;
  if (strncmp(target, "dns:///", 7) == 0) target += 7;
  const char *colon;
  if (target[0] == '[') {
    const char *close = strchr(target, ']');
    if (!close || close[1] != ':') return -1;
    snprintf(host, hcap, "%.*s", (int)(close - target - 1), target + 1);
    colon = close + 1;
  } else {
    colon = strrchr(target, ':');
    if (!colon) return -1;
    snprintf(host, hcap, "%.*s", (int)(colon - target), target);
  }
  snprintf(port, pcap, "%s", colon + 1);
  return 0;
}

static int tcp_connect(const char *host, const char *port, char *why, size_t cap) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    snprintf(why, cap, "cannot resolve %s: %s", host, gai_strerror(rc));
    return -1;
  }
  int fd = -1, err = 0;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EINPROGRESS) {
      struct pollfd p = {fd, POLLOUT, 0};
      socklen_t len = sizeof err;
      if (poll(&p, 1, PROBE_TIMEOUT_MS) != 1) err = ETIMEDOUT;
      else getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    } else if (errno != 0 && errno != EINPROGRESS) {
      err = errno;
    }
    if (err) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    snprintf(why, cap, "cannot connect to the aggregator at %s:%s: %s (is it running and listening there?)", host,
             port, strerror(err ? err : ECONNREFUSED));
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  struct timeval tv = {PROBE_TIMEOUT_MS / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

/* Says which certificate this client presented, for the refusal message. */
static void describe_own_certificate(SSL *ssl, const char *cert_file, char *out, size_t cap) {
  X509 *own = SSL_get_certificate(ssl);
  if (!cert_file || !own) {
    snprintf(out, cap, "this client presented no certificate");
    return;
  }
  char issuer[256];
  X509_NAME_oneline(X509_get_issuer_name(own), issuer, sizeof issuer);
  snprintf(out, cap, "this client presented %s, issued by %s", cert_file, issuer);
}

/* verify_ok: our side accepted the aggregator's certificate. With TLS 1.3 the server judges the
 * client certificate after the client has finished its handshake, so a refusal shows up as an
 * alert or as the connection closing before the server's first HTTP/2 frame; with TLS 1.2 it
 * ends the handshake itself. */
static void explain_failure(SSL *ssl, const char *cert_file, const char *name, char *why, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  char reason[200] = "the connection was closed";
  if (e) ERR_error_string_n(e, reason, sizeof reason);
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    snprintf(why, cap,
             "TLS handshake failed: the aggregator's certificate was not accepted by this client: %s "
             "(expected name '%s'; check the CA file and the aggregator's name)",
             X509_verify_cert_error_string(verify), name);
    return;
  }
  char own[400];
  describe_own_certificate(ssl, cert_file, own, sizeof own);
  snprintf(why, cap,
           "TLS handshake refused: the aggregator refused this client's certificate (%s; %s); check that the "
           "site certificate is signed by the CA the aggregator trusts and is valid",
           own, reason);
}

void tls_probe_explain(const char *target, const char *ca_file, const char *cert_file, const char *key_file,
                       const char *server_name, char *why, size_t cap) {
  why[0] = '\0';
  char host[256], port[32];
  if (target_split(target, host, sizeof host, port, sizeof port) != 0) {
    snprintf(why, cap, "the aggregator address '%s' is not host:port", target);
    return;
  }
  const char *name = server_name ? server_name : host;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  static const unsigned char alpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
  if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
    snprintf(why, cap, "cannot load the CA file %s", ca_file);
    SSL_CTX_free(ctx);
    return;
  }
  if (cert_file && (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
                    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)) {
    snprintf(why, cap, "cannot load the client certificate %s and key %s", cert_file, key_file);
    SSL_CTX_free(ctx);
    return;
  }
  int fd = tcp_connect(host, port, why, cap);
  if (fd < 0) {
    SSL_CTX_free(ctx);
    return;
  }
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
  unsigned char ip[16];
  if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name);
  } else {
    X509_VERIFY_PARAM_set1_host(param, name, 0);
    SSL_set_tlsext_host_name(ssl, name);
  }
  char byte;
  if (SSL_connect(ssl) != 1 || SSL_read(ssl, &byte, 1) <= 0) explain_failure(ssl, cert_file, name, why, cap);
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
}
