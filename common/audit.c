#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "payload.h"

struct audit_log {
  int fd;
  char *path;
  char program[64];
  long seq;               /* of the next line */
  char prev[65];          /* hex SHA-256 of the last line written */
  pthread_mutex_t mu;
};

static const char zeros[65] = "0000000000000000000000000000000000000000000000000000000000000000";

static void line_digest(const char *line, size_t len, char hex[65]) {
  uint8_t d[32];
  sha256_bytes(line, len, d);
  sha256_hex(d, hex);
}

/* Walks the chain: 0 intact (lines, head digest), 1 broken (bad_line, why), -1 unreadable. */
static int chain_walk(const char *path, long *lines, char head[65], long *bad_line, char *err, size_t errlen) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  char expect[65];
  memcpy(expect, zeros, sizeof expect);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long n = 0;
  int rc = 0;
  while ((len = getline(&line, &cap, fp)) > 0) {
    n++;
    if (line[len - 1] != '\n') {
      snprintf(err, errlen, "%s:%ld: the last line is incomplete (no newline): a write was cut short", path, n);
      rc = 1;
      break;
    }
    len--;
    json_error_t je;
    json_t *o = json_loadb(line, (size_t)len, 0, &je);
    const char *prev = json_string_value(json_object_get(o, "prev"));
    json_t *seq = json_object_get(o, "seq");
    if (!json_is_object(o) || !prev || !json_is_integer(seq)) {
      snprintf(err, errlen, "%s:%ld: not an audit record (%s)", path, n,
               !o ? je.text : "expected a JSON object with seq and prev");
      rc = 1;
    } else if (json_integer_value(seq) != n - 1) {
      /* A line removed or moved: this one is not the record that belongs here. */
      snprintf(err, errlen, "%s:%ld: seq is %lld, expected %ld: lines were removed, inserted or reordered here",
               path, n, (long long)json_integer_value(seq), n - 1);
      rc = 1;
    } else if (strcmp(prev, expect) != 0) {
      /* In sequence, yet the digest of its predecessor differs: the line before was changed. */
      n--;
      snprintf(err, errlen, "%s:%ld: altered: its SHA-256 is %.16s..., line %ld records %.16s...", path, n, expect,
               n + 1, prev);
      rc = 1;
    }
    json_decref(o);
    if (rc) break;
    line_digest(line, (size_t)len, expect);
  }
  if (rc == 0 && ferror(fp)) {
    snprintf(err, errlen, "%s: read error after line %ld", path, n);
    rc = -1;
  }
  free(line);
  fclose(fp);
  if (rc == 1) *bad_line = n < 1 ? 1 : n;
  if (rc == 0) {
    *lines = n;
    memcpy(head, expect, 65);
  }
  return rc;
}

int audit_verify(const char *path, long *lines, char head[65], long *bad_line, char *err, size_t errlen) {
  return chain_walk(path, lines, head, bad_line, err, errlen);
}

audit_log *audit_open(const char *path, const char *program, char *err, size_t errlen) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    snprintf(err, errlen, "audit log %s: %s", path, strerror(errno));
    return NULL;
  }
  audit_log *a = calloc(1, sizeof *a);
  a->fd = fd;
  a->path = strdup(path);
  pthread_mutex_init(&a->mu, NULL);
  snprintf(a->program, sizeof a->program, "%s", program);
  long bad = 0;
  char why[512];
  int rc = chain_walk(path, &a->seq, a->prev, &bad, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "audit log %s cannot be extended: %s%s", path, why,
             rc > 0 ? " (move it aside and keep it as evidence; a new log starts a new chain)" : "");
    audit_close(a);
    return NULL;
  }
  return a;
}

static void utc_now(char out[96]) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(out, 96, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

int audit_append(audit_log *a, const char *event, json_t *fields) {
  if (!a) {
    json_decref(fields);
    return 0;
  }
  char ts[96];
  utc_now(ts);
  pthread_mutex_lock(&a->mu);
  json_t *o = json_object();
  json_object_set_new(o, "seq", json_integer(a->seq));
  json_object_set_new(o, "prev", json_string(a->prev));
  json_object_set_new(o, "ts", json_string(ts));
  json_object_set_new(o, "program", json_string(a->program));
  json_object_set_new(o, "event", json_string(event));
  if (fields) json_object_update_missing(o, fields);
  json_decref(fields);
  /* JSON_COMPACT never emits a newline, so one record is one line. */
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
  json_decref(o);
  int rc = -1;
  if (text) {
    size_t len = strlen(text);
    text[len] = '\n';
    /* One write of the whole line (O_APPEND), then fsync: the record is on disk before the event
     * it records is acted on. A failed write leaves the chain head where it was. */
    if (write_all(a->fd, text, len + 1) == 0 && fsync(a->fd) == 0) {
      line_digest(text, len, a->prev);
      a->seq++;
      rc = 0;
    }
    free(text);
  }
  if (rc != 0) log_error("audit log %s: cannot record '%s': %s", a->path, event, strerror(errno));
  pthread_mutex_unlock(&a->mu);
  return rc;
}

void audit_close(audit_log *a) {
  if (!a) return;
  if (a->fd >= 0) close(a->fd);
  pthread_mutex_destroy(&a->mu);
  free(a->path);
  free(a);
}
