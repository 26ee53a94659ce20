/* Strict command-line number parsing; see args.h. */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int arg_long(const char *cmd, const char *option, const char *text, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < lo || v > hi) {
    fprintf(stderr, "fedlora %s: %s expects an integer in [%ld, %ld], got '%s'\n", cmd, option, lo, hi, text);
    return -1;
  }
  *out = v;
  return 0;
}

int arg_int(const char *cmd, const char *option, const char *text, int lo, int hi, int *out) {
  long v;
  if (arg_long(cmd, option, text, lo, hi, &v)) return -1;
  *out = (int)v;
  return 0;
}

int arg_float(const char *cmd, const char *option, const char *text, double lo, double hi, float *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
    fprintf(stderr, "fedlora %s: %s expects a number in [%g, %g], got '%s'\n", cmd, option, lo, hi, text);
    return -1;
  }
  *out = (float)v;
  return 0;
}

int arg_switch(const char *cmd, const char *option, const char *text, int *out) {
  if (!strcmp(text, "on") || !strcmp(text, "1") || !strcmp(text, "true")) *out = 1;
  else if (!strcmp(text, "off") || !strcmp(text, "0") || !strcmp(text, "false")) *out = 0;
  else {
    fprintf(stderr, "fedlora %s: %s expects on or off, got '%s'\n", cmd, option, text);
    return -1;
  }
  return 0;
}

int arg_int_list(const char *cmd, const char *option, const char *text, int *out, int cap, int *n) {
  *n = 0;
  const char *p = text;
  for (;;) {
    while (*p && (isspace((unsigned char)*p) || *p == ',')) p++;
    if (!*p) return 0;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno || end == p || v < 0 || v > 0x7fffffff || (*end && !isspace((unsigned char)*end) && *end != ',')) {
      fprintf(stderr, "fedlora %s: %s expects non-negative integers, got '%s'\n", cmd, option, text);
      return -1;
    }
    if (*n == cap) {
      fprintf(stderr, "fedlora %s: %s: more than %d values\n", cmd, option, cap);
      return -1;
    }
    out[(*n)++] = (int)v;
    p = end;
  }
}
