#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "utf8.h"

static _Atomic int current_level = LOG_INFO;
static _Atomic int current_format = LOG_FORMAT_TEXT;
static char program[64] = "fedlora";

void log_set_level(log_level level) { atomic_store(&current_level, (int)level); }
log_level log_get_level(void) { return (log_level)atomic_load(&current_level); }
void log_set_format(log_format format) { atomic_store(&current_format, (int)format); }

void log_set_program(const char *name) { snprintf(program, sizeof program, "%s", name); }

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int log_level_parse(const char *name) {
  for (int i = 0; i < 5; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

int log_format_parse(const char *name) {
  return strcmp(name, "text") == 0 ? LOG_FORMAT_TEXT : strcmp(name, "json") == 0 ? LOG_FORMAT_JSON : -1;
}

int log_cli_take(log_cli *cli, int argc, char **argv, int *i, char *err, unsigned long err_size) {
  const char *opt = argv[*i];
  int is_level = strcmp(opt, "--log-level") == 0, is_format = strcmp(opt, "--log-format") == 0;
  if (!is_level && !is_format) return 0;
  if (*i + 1 >= argc) {
    snprintf(err, err_size, "%s needs a value", opt);
    return -1;
  }
  const char *v = argv[++*i];
  int parsed = is_level ? log_level_parse(v) : log_format_parse(v);
  if (parsed < 0) {
    snprintf(err, err_size, "%s: expected %s, got '%s'", opt,
             is_level ? "debug, info, warn, error or off" : "text or json", v);
    return -1;
  }
  if (is_level) cli->level = parsed;
  else cli->format = parsed;
  return 1;
}

void log_cli_apply(const log_cli *cli, log_level configured) {
  log_set_format((log_format)cli->format);
  log_set_level(cli->level >= 0 ? (log_level)cli->level : configured);
}

/* Appends s as the body of a JSON string (RFC 8259 escapes); bytes that are not well-formed UTF-8
 * become U+FFFD so a shipper never rejects the line. Returns the new length (truncated at cap). */
static size_t json_escape(char *out, size_t n, size_t cap, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t left = strlen(s);
  while (left > 0 && n + 8 < cap) {
    uint32_t cp;
    size_t k = utf8_char(p, left, &cp);
    if (k == 0) {
      n += (size_t)snprintf(out + n, cap - n, "\\ufffd");
      p++, left--;
      continue;
    }
    if (cp == '"' || cp == '\\') {
      out[n++] = '\\';
      out[n++] = (char)cp;
    } else if (cp == '\n') {
      out[n++] = '\\', out[n++] = 'n';
    } else if (cp == '\t') {
      out[n++] = '\\', out[n++] = 't';
    } else if (cp < 0x20 || cp == 0x7f) {
      n += (size_t)snprintf(out + n, cap - n, "\\u%04x", (unsigned)cp);
    } else {
      memcpy(out + n, p, k);
      n += k;
    }
    p += k;
    left -= k;
  }
  return n;
}

void log_write(log_level level, const char *fmt, ...) {
  if ((int)level < atomic_load(&current_level)) return;
  static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char stamp[96];
  snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* Format the whole line first so concurrent threads never interleave within a line. */
  char line[8192];
  if (atomic_load(&current_format) == LOG_FORMAT_JSON) {
    size_t n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"program\":\"", stamp,
                                level_names[level]);
    n = json_escape(line, n, sizeof line, program);
    n += (size_t)snprintf(line + n, sizeof line - n, "\",\"msg\":\"");
    n = json_escape(line, n, sizeof line, msg);
    snprintf(line + n, sizeof line - n, "\"}");
  } else {
    snprintf(line, sizeof line, "%s %-5s %s: %s", stamp, tags[level], program, msg);
  }
  fprintf(stderr, "%s\n", line);
}
