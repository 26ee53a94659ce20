/* Table-driven INI configuration; see config.h. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct config_ctx {
  const config_schema *s;
  void *cfg;
  const char *path;  /* the file, or NULL */
  char *dir;         /* absolute directory of the file: base of its relative paths */
  int *line;         /* (n_fields) origin of each value: 0 default, > 0 file line, -1 --set */
  FILE *fp;
  int lineno;        /* lines the reader has handed to inih */
  int indented;      /* that line starts with a blank, so inih reads it as a continuation */
  int too_long;      /* a line over inih's limit (reading stops there), 0 if none */
  int max_line;      /* inih's line buffer, including the newline and NUL */
  int failed;        /* the first error is in err; later ones are ignored */
  int fail_line;     /* its file line, 0 if it did not come from the file */
  char *err;
  size_t err_size;
};

static const char *const type_names[] = {"string", "path", "int", "uint", "double", "bool", "enum", "list"};

static void *field_ptr(const config_field *f, void *cfg) { return (char *)cfg + f->offset; }
static const void *field_cptr(const config_field *f, const void *cfg) { return (const char *)cfg + f->offset; }

static int field_find(const config_schema *s, const char *section, const char *key) {
  for (size_t i = 0; i < s->n_fields; i++)
    if (strcmp(s->fields[i].section, section) == 0 && strcmp(s->fields[i].key, key) == 0) return (int)i;
  return -1;
}

static int section_known(const config_schema *s, const char *section) {
  for (size_t i = 0; i < s->n_fields; i++)
    if (strcmp(s->fields[i].section, section) == 0) return 1;
  return 0;
}

/* True for the first field of each section, in table order: sections are listed in that order. */
static int section_starts(const config_schema *s, size_t i) {
  for (size_t j = 0; j < i; j++)
    if (strcmp(s->fields[j].section, s->fields[i].section) == 0) return 0;
  return 1;
}

static void list_free(config_list *l) {
  for (int i = 0; i < l->count; i++) free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->count = 0;
}

static void value_free(const config_field *f, void *cfg) {
  void *p = field_ptr(f, cfg);
  if (f->type == CFG_STRING || f->type == CFG_PATH) {
    free(*(char **)p);
    *(char **)p = NULL;
  } else if (f->type == CFG_LIST) {
    list_free(p);
  }
}

void config_free(const config_schema *s, void *cfg) {
  for (size_t i = 0; i < s->n_fields; i++) value_free(&s->fields[i], cfg);
}

/* ---------------------------------------------------------------- parsing one value */

static int parse_bool(const char *t, int *out) {
  static const char *const yes[] = {"true", "on", "yes", "1"}, *const no[] = {"false", "off", "no", "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(t, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(t, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

static void choices_join(const char *const *choices, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; choices[i] && len < size; i++)
    len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", choices[i]);
}

/* "[min, max]", with ( or ) for an exclusive end. */
static void range_format(const config_field *f, char *buf, size_t size) {
  snprintf(buf, size, "%c%.15g, %.15g%c", f->flags & CFG_ABOVE_MIN ? '(' : '[', f->min, f->max,
           f->flags & CFG_BELOW_MAX ? ')' : ']');
}

static int in_range(const config_field *f, double v, const char *text, char *why, size_t why_size) {
  int above = f->flags & CFG_ABOVE_MIN ? v > f->min : v >= f->min;
  int below = f->flags & CFG_BELOW_MAX ? v < f->max : v <= f->max;
  if (above && below) return 0;
  char range[96];
  range_format(f, range, sizeof range);
  snprintf(why, why_size, "must be in %s, got %s", range, text);
  return -1;
}

/* Adds the comma-separated items of text to l, refusing duplicates and items with '=' (an
 * indented "key = value" line that inih took for a continuation of the list). */
static int list_append(config_list *l, const char *text, char *why, size_t why_size) {
  const char *p = text;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *a = p, *b = p + len;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    p = end ? end + 1 : p + len;
    if (a == b) continue;
    char *item = strndup(a, (size_t)(b - a));
    if (!item) return snprintf(why, why_size, "out of memory"), -1;
    int dup = 0;
    for (int i = 0; i < l->count && !dup; i++) dup = strcmp(l->items[i], item) == 0;
    char **grown = NULL;
    if (strchr(item, '='))
      snprintf(why, why_size, "item '%s' contains '=' (an indented line continues the list above it)", item);
    else if (dup)
      snprintf(why, why_size, "'%s' is listed twice", item);
    else if (!(grown = realloc(l->items, (size_t)(l->count + 1) * sizeof *grown)))
      snprintf(why, why_size, "out of memory");
    if (!grown) {
      free(item);
      return -1;
    }
    l->items = grown;
    l->items[l->count++] = item;
  }
  return 0;
}

/* Joins base_dir and a relative path; absolute paths and base_dir NULL copy text. */
static char *path_resolve(const char *base_dir, const char *text) {
  if (!base_dir || text[0] == '/') return strdup(text);
  char *out = NULL;
  const char *sep = base_dir[strlen(base_dir) - 1] == '/' ? "" : "/";
  return asprintf(&out, "%s%s%s", base_dir, sep, text) < 0 ? NULL : out;
}

/* Parses text into field f of cfg. append: a continuation line of a list. base_dir: directory for
 * relative paths (NULL: keep them as written). The problem, without location, goes to why. */
static int value_set(const config_field *f, void *cfg, const char *text, int append, const char *base_dir, char *why,
                     size_t why_size) {
  void *p = field_ptr(f, cfg);
  char *end = NULL;
  errno = 0;
  switch (f->type) {
    case CFG_STRING:
    case CFG_PATH: {
      char *copy = NULL;  /* an empty value unsets the key */
      if (*text && !(copy = f->type == CFG_PATH ? path_resolve(base_dir, text) : strdup(text)))
        return snprintf(why, why_size, "out of memory"), -1;
      free(*(char **)p);
      *(char **)p = copy;
      break;
    }
    case CFG_INT: {
      long v = strtol(text, &end, 10);
      if (!*text || *end || errno == ERANGE || v < INT_MIN || v > INT_MAX)
        return snprintf(why, why_size, "expected an integer, got '%s'", text), -1;
      if (in_range(f, (double)v, text, why, why_size) != 0) return -1;
      *(int *)p = (int)v;
      break;
    }
    case CFG_UINT: {
      /* strtoull would accept "-1" as 2^64 - 1. */
      uint64_t v = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
      if (!end || *end || errno == ERANGE)
        return snprintf(why, why_size, "expected an unsigned integer, got '%s'", text), -1;
      if (in_range(f, (double)v, text, why, why_size) != 0) return -1;
      *(uint64_t *)p = v;
      break;
    }
    case CFG_DOUBLE: {
      double v = strtod(text, &end);
      if (!*text || *end || !isfinite(v)) return snprintf(why, why_size, "expected a number, got '%s'", text), -1;
      if (in_range(f, v, text, why, why_size) != 0) return -1;
      *(double *)p = v;
      break;
    }
    case CFG_BOOL:
      if (parse_bool(text, p) != 0)
        return snprintf(why, why_size, "expected true/false, on/off, yes/no or 1/0, got '%s'", text), -1;
      break;
    case CFG_ENUM: {
      int i = 0;
      while (f->choices[i] && strcasecmp(f->choices[i], text) != 0) i++;
      if (!f->choices[i]) {
        char names[256];
        choices_join(f->choices, names, sizeof names);
        return snprintf(why, why_size, "expected one of %s, got '%s'", names, text), -1;
      }
      *(int *)p = i;
      break;
    }
    case CFG_LIST:
      if (!append) list_free(p);
      if (list_append(p, text, why, why_size) != 0) return -1;
      break;
  }
  return f->check ? f->check(p, why, why_size) : 0;
}

/* ---------------------------------------------------------------- locations and errors */

/* "FILE:LINE: [s] k", "--set s.k", "FILE: [s] k" or "[s] k", by where the value came from. */
static void where(const config_ctx *ctx, const config_field *f, int line, char *buf, size_t size) {
  if (line > 0)
    snprintf(buf, size, "%s:%d: [%s] %s", ctx->path, line, f->section, f->key);
  else if (line < 0)
    snprintf(buf, size, "--set %s.%s", f->section, f->key);
  else if (ctx->path)
    snprintf(buf, size, "%s: [%s] %s", ctx->path, f->section, f->key);
  else
    snprintf(buf, size, "[%s] %s", f->section, f->key);
}

static __attribute__((format(printf, 2, 3))) void fail(config_ctx *ctx, const char *fmt, ...) {
  if (ctx->failed) return;
  ctx->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->err, ctx->err_size, fmt, ap);
  va_end(ap);
}

int config_fail(config_ctx *ctx, const char *section, const char *key, const char *fmt, ...) {
  char msg[512], loc[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int f = field_find(ctx->s, section, key);
  if (f >= 0)
    where(ctx, &ctx->s->fields[f], ctx->line[f], loc, sizeof loc);
  else
    snprintf(loc, sizeof loc, "[%s] %s", section, key);
  fail(ctx, "%s: %s", loc, msg);
  return -1;
}

/* ---------------------------------------------------------------- the file */

static void section_keys(const config_schema *s, const char *section, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < s->n_fields && len < size; i++)
    if (strcmp(s->fields[i].section, section) == 0)
      len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", s->fields[i].key);
}

static void section_names(const config_schema *s, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < s->n_fields && len < size; i++)
    if (section_starts(s, i))
      len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", s->fields[i].section);
}

/* inih's reader: fgets that counts lines (inih's handler has no line number in this build) and
 * stops at a line inih would split in two. */
static char *reader_next(char *str, int num, void *stream) {
  config_ctx *ctx = stream;
  if (ctx->too_long || !fgets(str, num, ctx->fp)) return NULL;
  ctx->lineno++;
  ctx->max_line = num;
  size_t len = strlen(str);
  if (len + 1 == (size_t)num && str[len - 1] != '\n') {
    int c = fgetc(ctx->fp);
    if (c != '\n' && c != EOF) {
      ctx->too_long = ctx->lineno;
      return NULL;
    }
  }
  ctx->indented = str[0] == ' ' || str[0] == '\t';
  return str;
}

static int on_entry(void *user, const char *section, const char *key, const char *value) {
  config_ctx *ctx = user;
  if (ctx->failed) return 1;
  const config_schema *s = ctx->s;
  char known[1024];
  int at = ctx->lineno;
  if (!*section) {
    fail(ctx, "%s:%d: %s: key outside any section (put it under a [section] header)", ctx->path, at, key);
  } else if (!section_known(s, section)) {
    section_names(s, known, sizeof known);
    fail(ctx, "%s:%d: [%s]: unknown section (expected one of %s)", ctx->path, at, section, known);
  } else {
    int fi = field_find(s, section, key);
    const config_field *f = fi >= 0 ? &s->fields[fi] : NULL;
    char why[512];
    if (!f) {
      section_keys(s, section, known, sizeof known);
      fail(ctx, "%s:%d: [%s] %s: unknown key ([%s] has %s)", ctx->path, at, section, key, section, known);
    } else if (ctx->line[fi] > 0 && !(ctx->indented && f->type == CFG_LIST)) {
      if (ctx->indented)
        fail(ctx, "%s:%d: [%s] %s: an indented line continues the value above it; only lists may span lines",
             ctx->path, at, section, key);
      else
        fail(ctx, "%s:%d: [%s] %s: set twice (first on line %d)", ctx->path, at, section, key, ctx->line[fi]);
    } else if (value_set(f, ctx->cfg, value, ctx->line[fi] > 0, ctx->dir, why, sizeof why) != 0) {
      fail(ctx, "%s:%d: [%s] %s: %s", ctx->path, at, section, key, why);
    } else {
      if (ctx->line[fi] <= 0) ctx->line[fi] = at;  /* a list's continuation keeps its first line */
      return 1;
    }
  }
  ctx->fail_line = at;
  return 0;
}

/* Directory of path, absolute, without resolving symlinks (the kernel resolves "dir/../x" the
 * same way when the value is opened). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir || dir[0] == '/') return dir;
  char *cwd = getcwd(NULL, 0), *out = NULL;
  if (cwd && asprintf(&out, "%s/%s", cwd, dir) < 0) out = NULL;
  if (out && strcmp(dir, ".") == 0) {
    free(out);
    out = cwd, cwd = NULL;
  }
  free(cwd);
  free(dir);
  return out;
}

static void file_read(config_ctx *ctx) {
  ctx->fp = fopen(ctx->path, "r");
  if (!ctx->fp) {
    fail(ctx, "%s: cannot open: %s", ctx->path, strerror(errno));
    return;
  }
  ctx->dir = dir_of(ctx->path);
  if (!ctx->dir) {
    fail(ctx, "%s: cannot find the file's directory: %s", ctx->path, strerror(errno));
    return;
  }
  int rc = ini_parse_stream(reader_next, ctx, on_entry, ctx);
  if (rc == -2) {
    ctx->failed = 0;
    fail(ctx, "%s: out of memory while reading", ctx->path);
  } else if (rc > 0 && (!ctx->failed || rc < ctx->fail_line)) {
    /* A line inih could not read, before any value we refused. */
    ctx->failed = 0;
    fail(ctx, "%s:%d: expected '[section]' or 'key = value'", ctx->path, rc);
  } else if (ctx->too_long) {
    fail(ctx, "%s:%d: line longer than %d characters; continue a long list on indented lines", ctx->path,
         ctx->too_long, ctx->max_line - 1);
  }
}

/* ---------------------------------------------------------------- overrides */

static void override_apply(config_ctx *ctx, const char *set) {
  const char *eq = strchr(set, '='), *dot = strchr(set, '.');
  if (!eq || !dot || dot > eq) {
    fail(ctx, "--set %s: expected section.key=value", set);
    return;
  }
  char *section = strndup(set, (size_t)(dot - set)), *key = strndup(dot + 1, (size_t)(eq - dot - 1));
  if (!section || !key) {
    fail(ctx, "--set %s: out of memory", set);
  } else {
    int fi = field_find(ctx->s, section, key);
    char known[1024], why[512];
    if (fi >= 0) {
      if (value_set(&ctx->s->fields[fi], ctx->cfg, eq + 1, 0, NULL, why, sizeof why) != 0)
        fail(ctx, "--set %s.%s: %s", section, key, why);
      else
        ctx->line[fi] = -1;
    } else if (!section_known(ctx->s, section)) {
      section_names(ctx->s, known, sizeof known);
      fail(ctx, "--set %s.%s: unknown section [%s] (expected one of %s)", section, key, section, known);
    } else {
      section_keys(ctx->s, section, known, sizeof known);
      fail(ctx, "--set %s.%s: unknown key ([%s] has %s)", section, key, section, known);
    }
  }
  free(section);
  free(key);
}

/* ---------------------------------------------------------------- load */

static int is_unset(const config_field *f, const void *cfg) {
  const void *p = field_cptr(f, cfg);
  if (f->type == CFG_LIST) return ((const config_list *)p)->count == 0;
  if (f->type == CFG_STRING || f->type == CFG_PATH) return !*(char *const *)p || !**(char *const *)p;
  return 0;
}

int config_load(const config_schema *s, void *cfg, const char *path, const char *const *sets, int n_sets, char *err,
                size_t err_size) {
  config_ctx ctx = {.s = s, .cfg = cfg, .path = path, .err = err, .err_size = err_size};
  err[0] = '\0';
  memset(cfg, 0, s->size);
  ctx.line = calloc(s->n_fields ? s->n_fields : 1, sizeof *ctx.line);
  if (!ctx.line) return snprintf(err, err_size, "configuration: out of memory"), -1;
  for (size_t i = 0; i < s->n_fields && !ctx.failed; i++) {
    const config_field *f = &s->fields[i];
    char why[512];
    if (f->def && value_set(f, cfg, f->def, 0, NULL, why, sizeof why) != 0)
      fail(&ctx, "[%s] %s: default '%s' is invalid: %s", f->section, f->key, f->def, why);
  }
  if (!ctx.failed && path) file_read(&ctx);
  for (int i = 0; i < n_sets && !ctx.failed; i++) override_apply(&ctx, sets[i]);
  for (size_t i = 0; i < s->n_fields && !ctx.failed; i++) {
    const config_field *f = &s->fields[i];
    if ((f->flags & CFG_REQUIRED) && is_unset(f, cfg))
      config_fail(&ctx, f->section, f->key, ctx.line[i] ? "required, got an empty value" : "required, not set");
  }
  if (!ctx.failed && s->validate && s->validate(cfg, &ctx) != 0 && !ctx.failed)
    fail(&ctx, "%s configuration: invalid", s->name);
  if (ctx.fp) fclose(ctx.fp);
  free(ctx.dir);
  free(ctx.line);
  if (ctx.failed) config_free(s, cfg);
  return ctx.failed ? -1 : 0;
}

/* ---------------------------------------------------------------- printing */

/* The shortest %g form that reads back as the same double. */
static void double_format(double v, char *buf, size_t size) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
}

static void value_print(const config_field *f, const void *cfg, FILE *out) {
  const void *p = field_cptr(f, cfg);
  char num[32];
  switch (f->type) {
    case CFG_STRING:
    case CFG_PATH: fputs(*(char *const *)p ? *(char *const *)p : "", out); break;
    case CFG_INT: fprintf(out, "%d", *(const int *)p); break;
    case CFG_UINT: fprintf(out, "%" PRIu64, *(const uint64_t *)p); break;
    case CFG_DOUBLE:
      double_format(*(const double *)p, num, sizeof num);
      fputs(num, out);
      break;
    case CFG_BOOL: fputs(*(const int *)p ? "true" : "false", out); break;
    case CFG_ENUM: fputs(f->choices[*(const int *)p], out); break;
    case CFG_LIST: {
      const config_list *l = p;
      /* Continuation lines keep every line within inih's limit. */
      size_t width = strlen(f->key) + 3;
      for (int i = 0; i < l->count; i++) {
        size_t len = strlen(l->items[i]);
        if (i && width + len > 150) {
          fputs(",\n    ", out);
          width = 4;
        } else if (i) {
          fputs(", ", out);
        }
        fputs(l->items[i], out);
        width += len + 2;
      }
      break;
    }
  }
}

void config_print(const config_schema *s, const void *cfg, FILE *out) {
  for (size_t i = 0; i < s->n_fields; i++) {
    const config_field *f = &s->fields[i];
    if (section_starts(s, i)) fprintf(out, "%s[%s]\n", i ? "\n" : "", f->section);
    fprintf(out, "%s =", f->key);
    if (!is_unset(f, cfg)) {
      fputc(' ', out);
      value_print(f, cfg, out);
    }
    fputc('\n', out);
  }
}

void config_describe(const config_schema *s, FILE *out) {
  fprintf(out, "Keys of the %s configuration (INI; --set section.key=value overrides the file):\n", s->name);
  for (size_t i = 0; i < s->n_fields; i++) {
    const config_field *f = &s->fields[i];
    if (section_starts(s, i)) fprintf(out, "\n[%s]\n", f->section);
    fprintf(out, "  %s (%s", f->key, type_names[f->type]);
    if (f->type == CFG_ENUM) {
      char names[256];
      choices_join(f->choices, names, sizeof names);
      fprintf(out, ": %s", names);
    }
    if (f->type == CFG_INT || f->type == CFG_UINT || f->type == CFG_DOUBLE) {
      char range[96];
      range_format(f, range, sizeof range);
      fprintf(out, " in %s", range);
    }
    if (f->flags & CFG_REQUIRED) fputs(", required", out);
    if (f->def) fprintf(out, ", default %s", f->def);
    fprintf(out, ")\n      %s\n", f->help);
  }
}

/* ---------------------------------------------------------------- command line */

int config_cli_take(config_cli *cli, int argc, char **argv, int *i, char *err, size_t err_size) {
  const char *arg = argv[*i];
  if (strcmp(arg, "--print-config") == 0) return cli->print = 1, 1;
  int is_config = strncmp(arg, "--config", 8) == 0, is_set = strncmp(arg, "--set", 5) == 0;
  const char *rest = arg + (is_config ? 8 : 5);
  if ((!is_config && !is_set) || (*rest && *rest != '=')) return 0;
  const char *value = *rest ? rest + 1 : NULL;
  if (!value) {
    if (*i + 1 >= argc) return snprintf(err, err_size, "%s needs a value", arg), -1;
    value = argv[++*i];
  }
  if (is_config) {
    cli->path = value;
  } else {
    if (cli->n_sets == CONFIG_CLI_MAX_SETS)
      return snprintf(err, err_size, "more than %d --set", CONFIG_CLI_MAX_SETS), -1;
    cli->sets[cli->n_sets++] = value;
  }
  return 1;
}

int config_check_host_port(const void *value, char *err, size_t err_size) {
  const char *s = *(char *const *)value;
  if (!s || !*s) return 0;  /* unset: the required flag decides */
  const char *colon;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    colon = close && close > s + 1 && close[1] == ':' ? close + 1 : NULL;
  } else {
    colon = strchr(s, ':');
    if (colon && (colon == s || strchr(colon + 1, ':'))) colon = NULL;  /* bare IPv6 or no host */
  }
  char *end = NULL;
  long port = colon && colon[1] >= '0' && colon[1] <= '9' ? strtol(colon + 1, &end, 10) : 0;
  if (!colon || !end || *end || port < 1 || port > 65535) {
    snprintf(err, err_size, "expected host:port with a port in 1..65535 (IPv6 as [addr]:port), got '%s'", s);
    return -1;
  }
  return 0;
}
