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

int tls_target_split(const char *target, char *host, size_t hcap, char *port, size_t pcap) {
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

static void time_string(const ASN1_TIME *t, char *out, size_t cap) {
  BIO *b = BIO_new(BIO_s_mem());
  ASN1_TIME_print(b, t);
  int n = BIO_read(b, out, (int)cap - 1);
  out[n > 0 ? n : 0] = '\0';
  BIO_free(b);
}

/* Says which certificate this client presented and what is wrong with it as far as this side can
 * tell: a refusing gRPC server closes the connection without saying why. */
static void describe_own_certificate(SSL *ssl, const char *cert_file, char *out, size_t cap) {
  X509 *own = SSL_get_certificate(ssl);
  if (!cert_file || !own) {
    snprintf(out, cap, "this client presented no certificate; set the site's cert and key");
    return;
  }
  char issuer[256], when[64], finding[256];
  X509_NAME_oneline(X509_get_issuer_name(own), issuer, sizeof issuer);
  if (X509_cmp_current_time(X509_get0_notAfter(own)) <= 0) {
    time_string(X509_get0_notAfter(own), when, sizeof when);
    snprintf(finding, sizeof finding, "it expired on %s: ask the CA for a new one", when);
  } else if (X509_cmp_current_time(X509_get0_notBefore(own)) >= 0) {
    time_string(X509_get0_notBefore(own), when, sizeof when);
    snprintf(finding, sizeof finding, "it is not valid before %s: check this machine's clock and the certificate's dates",
             when);
  } else if ((X509_get_extension_flags(own) & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(own) & XKU_SSL_CLIENT)) {
    snprintf(finding, sizeof finding,
             "its extended key usage is not for client authentication (a server certificate?): it needs clientAuth");
  } else if (X509_get_extension_flags(own) & EXFLAG_SS) {
    snprintf(finding, sizeof finding, "it is self-signed: the aggregator accepts only certificates issued by its client CA");
  } else {
    snprintf(finding, sizeof finding,
             "it is valid here, so the aggregator does not trust its issuer or has revoked it: ask its operator");
  }
  snprintf(out, cap, "this client presented %s, issued by %s; %s", cert_file, issuer, finding);
}

enum { ISSUER_CAP = 256 };

/* Keeps the issuer of the aggregator's certificate (in the SSL's app data) for the message: after a
 * failed handshake OpenSSL no longer hands out the peer's certificate. */
static int verify_note_issuer(int ok, X509_STORE_CTX *store) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
  char *issuer = ssl ? SSL_get_app_data(ssl) : NULL;
  X509 *leaf = X509_STORE_CTX_get0_cert(store);
  if (issuer && leaf) X509_NAME_oneline(X509_get_issuer_name(leaf), issuer, ISSUER_CAP);
  return ok;
}

/* What is wrong with the aggregator's certificate, after this client's verification failed. */
static void describe_server_certificate(const char *issuer, long verify, const char *name, const char *ca_file,
                                        char *out, size_t cap) {
  switch (verify) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      snprintf(out, cap,
               "it does not name '%s': connect by a name in its subjectAltName or set server_name to one", name);
      break;
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      snprintf(out, cap, "it is issued by %s, which is not a CA in %s: check the site's ca file", issuer, ca_file);
      break;
    default:
      snprintf(out, cap, "expected name '%s' and a CA in %s", name, ca_file);
  }
}

/* verify_ok: our side accepted the aggregator's certificate. With TLS 1.3 the server judges the
 * client certificate after the client has finished its handshake, so a refusal shows up as an
 * alert or as the connection closing before the server's first HTTP/2 frame; with TLS 1.2 it
 * ends the handshake itself. */
static void explain_failure(SSL *ssl, const char *ca_file, const char *cert_file, const char *name, char *why,
                            size_t cap) {
  unsigned long e = ERR_peek_last_error();
  char reason[200] = "";
  /* An alert is the server's own reason; anything else is only the connection closing. */
  if (e && strstr(ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "", "alert")) {
    snprintf(reason, sizeof reason, "; the aggregator said: ");
    ERR_error_string_n(e, reason + strlen(reason), sizeof reason - strlen(reason));
  }
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    char detail[400];
    describe_server_certificate(SSL_get_app_data(ssl), verify, name, ca_file, detail, sizeof detail);
    snprintf(why, cap, "TLS handshake failed: the aggregator's certificate was not accepted by this client: %s (%s)",
             X509_verify_cert_error_string(verify), detail);
    return;
  }
  char own[600];
  describe_own_certificate(ssl, cert_file, own, sizeof own);
  snprintf(why, cap, "TLS handshake refused: the aggregator refused this client's certificate (%s%s)", own, reason);
}

void tls_probe_explain(const char *target, const char *ca_file, const char *cert_file, const char *key_file,
                       const char *server_name, char *why, size_t cap) {
  why[0] = '\0';
  char host[256], port[32];
  if (tls_target_split(target, host, sizeof host, port, sizeof port) != 0) {
    snprintf(why, cap, "the aggregator address '%s' is not host:port", target);
    return;
  }
  const char *name = server_name ? server_name : host;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_note_issuer);
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
  char issuer[ISSUER_CAP] = "?";
  SSL_set_app_data(ssl, issuer);
  X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
  unsigned char ip[16];
  if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name);
  } else {
    X509_VERIFY_PARAM_set1_host(param, name, 0);
    SSL_set_tlsext_host_name(ssl, name);
  }
  char byte;
  if (SSL_connect(ssl) != 1 || SSL_read(ssl, &byte, 1) <= 0) explain_failure(ssl, ca_file, cert_file, name, why, cap);
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
}
