/* Serves a Prometheus registry (prom.h) at GET /metrics over plain HTTP with libmicrohttpd, on its
 * own thread. Plain HTTP because scrapers expect it; bind it to loopback or a management network.
 * Any other path is 404, any other method 405. */
#ifndef FEDLORA_METRICS_HTTP_H
#define FEDLORA_METRICS_HTTP_H

#include <stddef.h>

#include "prom.h"

typedef struct metrics_http metrics_http;

/* listen: "host:port" with a numeric IPv4 or bracketed IPv6 host (port 0 picks a free one). NULL
 * with the reason in err. The registry must outlive the server. */
metrics_http *metrics_http_start(const char *listen, prom_registry *reg, char *err, size_t errlen);
int metrics_http_port(const metrics_http *m);
void metrics_http_stop(metrics_http *m);

#endif
