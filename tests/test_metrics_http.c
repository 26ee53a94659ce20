/* The Prometheus endpoint (prom.h, metrics_http.h): scraped over loopback with a plain socket
 * client, the body is parsed line by line against the text format (HELP/TYPE before samples,
 * metric and label names, quoted label values with escapes, numeric values, histogram buckets
 * cumulative and ascending in le with +Inf equal to _count) and the values are those recorded.
 * Other paths get 404, other methods 405. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "metrics_http.h"

/* The whole HTTP response to "METHOD PATH", or NULL. */
static char *http_get(int port, const char *method, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[256];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", method, path);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return NULL;
  }
  size_t len = 0, cap = 1 << 16;
  char *buf = malloc(cap);
  ssize_t r;
  while ((r = read(fd, buf + len, cap - len - 1)) > 0) len += (size_t)r;
  buf[len] = 0;
  close(fd);
  return buf;
}

typedef struct {
  char name[128], type[16];
  double value;
  int samples;
} seen;

/* Parses the exposition body; returns the number of format errors (each reported). */
static int exposition_check(char *body, seen *out, int *n_out) {
  regex_t help, type, sample;
  regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$", REG_EXTENDED);
  regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$", REG_EXTENDED);
  regcomp(&sample,
          "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\""
          "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\")*)?\\})? ([^ ]+)$",
          REG_EXTENDED);
  int errors = 0, n = 0;
  seen *cur = NULL;
  double last_le = -INFINITY, last_cum = 0;
  for (char *save = NULL, *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    regmatch_t g[10];
    if (regexec(&help, line, 3, g, 0) == 0) continue;
    if (regexec(&type, line, 3, g, 0) == 0) {
      cur = &out[n++];
      memset(cur, 0, sizeof *cur);
      snprintf(cur->name, sizeof cur->name, "%.*s", (int)(g[1].rm_eo - g[1].rm_so), line + g[1].rm_so);
      snprintf(cur->type, sizeof cur->type, "%.*s", (int)(g[2].rm_eo - g[2].rm_so), line + g[2].rm_so);
      last_le = -INFINITY, last_cum = 0;
      continue;
    }
    if (regexec(&sample, line, 10, g, 0) != 0 || !cur) {
      fprintf(stderr, "not a HELP, TYPE or sample line (or a sample before its TYPE): %s\n", line);
      errors++;
      continue;
    }
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(g[1].rm_eo - g[1].rm_so), line + g[1].rm_so);
    char *end;
    const char *vtext = line + g[7].rm_so;
    double v = strcmp(vtext, "+Inf") == 0 ? INFINITY : strcmp(vtext, "NaN") == 0 ? NAN : strtod(vtext, &end);
    if (strcmp(vtext, "+Inf") && strcmp(vtext, "NaN") && *end) {
      fprintf(stderr, "bad value: %s\n", line);
      errors++;
    }
    size_t bl = strlen(cur->name);
    int is_hist = strcmp(cur->type, "histogram") == 0;
    if (is_hist && strncmp(name, cur->name, bl) == 0 && strcmp(name + bl, "_bucket") == 0) {
      const char *le = strstr(line, "le=\"");
      double bound = le ? (strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL)) : NAN;
      if (!(bound > last_le) || v < last_cum) {
        fprintf(stderr, "histogram %s: buckets not ascending or not cumulative at %s\n", cur->name, line);
        errors++;
      }
      last_le = bound, last_cum = v;
    } else if (is_hist && strncmp(name, cur->name, bl) == 0 && strcmp(name + bl, "_count") == 0) {
      if (!isinf(last_le) || v != last_cum) {
        fprintf(stderr, "histogram %s: _count %g differs from the +Inf bucket %g (or no +Inf)\n", cur->name, v,
                last_cum);
        errors++;
      }
      cur->value = v;
    } else if (is_hist && strncmp(name, cur->name, bl) == 0 && strcmp(name + bl, "_sum") == 0) {
    } else if (strcmp(name, cur->name) != 0) {
      fprintf(stderr, "sample %s under TYPE %s\n", name, cur->name);
      errors++;
    } else {
      cur->value = v;
    }
    cur->samples++;
  }
  regfree(&help), regfree(&type), regfree(&sample);
  *n_out = n;
  return errors;
}

static const seen *find(const seen *s, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(s[i].name, name) == 0) return &s[i];
  return NULL;
}

int main(void) {
  prom_registry *r = prom_build();
  static const double buckets[] = {1, 5, 30, 120};
  int rounds = prom_define(r, "fedlora_rounds_committed_total", PROM_COUNTER, "Rounds committed", NULL, NULL, 0);
  int rej = prom_define(r, "fedlora_update_rejections_total", PROM_COUNTER, "Updates refused, by reason\nsecond line",
                        "reason", NULL, 0);
  int loss = prom_define(r, "fedlora_val_loss", PROM_GAUGE, "Last weighted validation loss", NULL, NULL, 0);
  int dur = prom_define(r, "fedlora_round_duration_seconds", PROM_HISTOGRAM, "Round duration", NULL, buckets, 4);
  CHECK(rounds >= 0 && rej >= 0 && loss >= 0 && dur >= 0);
  CHECK_EQ_INT(prom_define(r, "bad name", PROM_GAUGE, "x", NULL, NULL, 0), -1);
  static const double unsorted[] = {2, 1};
  CHECK_EQ_INT(prom_define(r, "h", PROM_HISTOGRAM, "x", NULL, unsorted, 2), -1);
  prom_add(r, rounds, NULL, 1);
  prom_add(r, rounds, NULL, 2);
  prom_add(r, rounds, NULL, -5); /* refused: counters only go up */
  prom_add(r, rej, "not_selected", 1);
  prom_add(r, rej, "sha256 \"mismatch\"\\", 2);
  prom_set(r, loss, NULL, 2.375);
  double obs[] = {0.5, 1, 3, 7, 200, 31};
  for (int i = 0; i < 6; i++) prom_observe(r, dur, obs[i]);

  char err[256];
  metrics_http *m = metrics_http_start("127.0.0.1:0", r, err, sizeof err);
  CHECK_MSG(m != NULL, "metrics_http_start: %s", err);
  if (!m) return harness_finish();
  CHECK(metrics_http_start("localhost:1", r, err, sizeof err) == NULL);
  CHECK_STR_CONTAINS(err, "expected IPv4:port");
  char *resp = http_get(metrics_http_port(m), "GET", "/metrics");
  CHECK(resp != NULL);
  if (resp) {
    CHECK_STR_CONTAINS(resp, "HTTP/1.1 200");
    CHECK_STR_CONTAINS(resp, "text/plain; version=0.0.4");
    CHECK_STR_CONTAINS(resp, "fedlora_update_rejections_total{reason=\"sha256 \\\"mismatch\\\"\\\\\"} 2\n");
    CHECK_STR_CONTAINS(resp, "fedlora_round_duration_seconds_bucket{le=\"1\"} 2\n");
    CHECK_STR_CONTAINS(resp, "fedlora_round_duration_seconds_bucket{le=\"5\"} 3\n");
    CHECK_STR_CONTAINS(resp, "fedlora_round_duration_seconds_bucket{le=\"30\"} 4\n");
    CHECK_STR_CONTAINS(resp, "fedlora_round_duration_seconds_bucket{le=\"120\"} 5\n");
    CHECK_STR_CONTAINS(resp, "fedlora_round_duration_seconds_bucket{le=\"+Inf\"} 6\n");
    CHECK_STR_CONTAINS(resp, "fedlora_round_duration_seconds_sum 242.5\n");
    CHECK_STR_CONTAINS(resp, "# HELP fedlora_update_rejections_total Updates refused, by reason\\nsecond line\n");
    char *body = strstr(resp, "\r\n\r\n");
    seen s[16];
    int n = 0;
    CHECK_EQ_INT(body ? exposition_check(body + 4, s, &n) : -1, 0);
    CHECK_EQ_INT(n, 4);
    const seen *x = find(s, n, "fedlora_rounds_committed_total");
    CHECK(x && strcmp(x->type, "counter") == 0 && x->value == 3);
    x = find(s, n, "fedlora_val_loss");
    CHECK(x && strcmp(x->type, "gauge") == 0 && x->value == 2.375);
    x = find(s, n, "fedlora_update_rejections_total");
    CHECK(x && x->samples == 2);
    x = find(s, n, "fedlora_round_duration_seconds");
    CHECK(x && x->value == 6 && x->samples == 7);
    free(resp);
  }
  /* The checker itself catches a non-cumulative histogram and a sample without TYPE. */
  char broken[] = "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nstray 1\n";
  seen s2[4];
  int n2;
  CHECK_EQ_INT(exposition_check(broken, s2, &n2), 2);

  resp = http_get(metrics_http_port(m), "GET", "/other");
  CHECK(resp && strstr(resp, "HTTP/1.1 404"));
  free(resp);
  resp = http_get(metrics_http_port(m), "POST", "/metrics");
  CHECK(resp && strstr(resp, "HTTP/1.1 405"));
  free(resp);
  metrics_http_stop(m);
  prom_free(r);
  return harness_finish();
}
