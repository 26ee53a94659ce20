#include "metrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_http {
  struct MHD_Daemon *d;
  prom_registry *reg;
  int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, char *body, const char *type) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
  (void)version, (void)upload, (void)upload_size, (void)state;
  metrics_http *m = cls;
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("only GET /metrics\n"), "text/plain");
  if (strcmp(url, "/metrics") != 0) return reply(c, MHD_HTTP_NOT_FOUND, strdup("not found: try /metrics\n"), "text/plain");
  char *body = prom_render(m->reg);
  if (!body) return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, strdup("out of memory\n"), "text/plain");
  return reply(c, MHD_HTTP_OK, body, "text/plain; version=0.0.4; charset=utf-8");
}

/* "1.2.3.4:p" or "[::1]:p" into a socket address. */
static int address_parse(const char *listen, struct sockaddr_storage *ss, int *v6, char *err, size_t errlen) {
  const char *colon = strrchr(listen, ':');
  char host[64];
  if (!colon || (size_t)(colon - listen) >= sizeof host) goto bad;
  memcpy(host, listen, (size_t)(colon - listen));
  host[colon - listen] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535) goto bad;
  memset(ss, 0, sizeof *ss);
  size_t hl = strlen(host);
  *v6 = hl > 2 && host[0] == '[' && host[hl - 1] == ']';
  if (*v6) {
    host[hl - 1] = 0;
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) goto bad;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) goto bad;
  }
  return 0;
bad:
  snprintf(err, errlen, "metrics listen address '%s': expected IPv4:port or [IPv6]:port", listen);
  return -1;
}

metrics_http *metrics_http_start(const char *listen, prom_registry *reg, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  int v6;
  if (address_parse(listen, &ss, &v6, err, errlen) != 0) return NULL;
  metrics_http *m = calloc(1, sizeof *m);
  m->reg = reg;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | (v6 ? MHD_USE_IPv6 : 0);
  /* Few connections and a short timeout: a scraper is one client, and nobody else should be able
   * to hold the aggregator's threads. */
  m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  if (!m->d) {
    snprintf(err, errlen, "cannot serve metrics on %s (address in use or not local?)", listen);
    free(m);
    return NULL;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
  m->port = info ? info->port : 0;
  return m;
}

int metrics_http_port(const metrics_http *m) { return m->port; }

void metrics_http_stop(metrics_http *m) {
  if (!m) return;
  MHD_stop_daemon(m->d);
  free(m);
}
