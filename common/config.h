/* INI configuration described by a table: each binary lists its keys once (section, key, type,
 * where the value lives in its config struct, default, bounds, help) and this module loads, checks,
 * documents and prints them.
 *
 * Sources, later ones winning: the table's defaults, the file (--config FILE.ini), then the
 * overrides (--set section.key=value) in command-line order.
 *
 * File syntax (inih): `[section]` headers, `key = value` lines, comments on their own line
 * starting with ';' or '#', or after a value as " ; comment". Keys outside a section, unknown
 * sections or keys, a key given twice, and malformed values are errors. A list may continue on
 * indented lines ("allowed_clients = alpha,\n    beta"); inih reads at most 199 characters per
 * line, so long lists must be split that way.
 *
 * Values:
 *   string   as written; an empty value unsets the key (stored as NULL)
 *   path     like string; a relative path in the FILE is taken relative to the directory that
 *            holds the file (and stored absolute), so a configuration can sit beside its
 *            certificates and be started from anywhere. In --set it is relative to the working
 *            directory, like any command-line path. Paths are not opened here.
 *   int      decimal, within [min, max] (either end exclusive by flag); stored as int
 *   uint     decimal without sign, within [min, max]; stored as uint64_t
 *   double   strtod syntax (1e-3), finite, within [min, max]; stored as double
 *   bool     true/false, on/off, yes/no, 1/0 (any case); stored as int 0/1
 *   enum     one of the field's choices (any case); stored as int, the index in choices
 *   list     comma-separated items, blanks around items trimmed, empty items skipped,
 *            duplicates refused; stored as config_list
 *
 * Errors name where the offending value came from, e.g.
 *   agg.ini:12: [rounds] min_clients: must be between 1 and 100000, got 0
 *   --set train.lr: expected a number, got 'fast'
 *   agg.ini: [server] cert: required, not set
 * The configuration holds no secrets (keys are paths to files), so printing it is safe. */
#ifndef FEDLORA_CONFIG_H
#define FEDLORA_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { CFG_STRING, CFG_PATH, CFG_INT, CFG_UINT, CFG_DOUBLE, CFG_BOOL, CFG_ENUM, CFG_LIST } config_type;

typedef struct {
  char **items;  /* (count) owned strings */
  int count;
} config_list;

#define CFG_REQUIRED 1u     /* must be set (non-empty) by the file or --set */
#define CFG_ABOVE_MIN 2u    /* the lower bound is exclusive: value > min */
#define CFG_BELOW_MAX 4u    /* the upper bound is exclusive: value < max */

typedef struct config_ctx config_ctx;

typedef struct {
  const char *section, *key;
  config_type type;
  size_t offset;               /* of the value in the config struct */
  const char *def;             /* default, written as in a file; NULL: unset */
  double min, max;             /* CFG_INT, CFG_UINT, CFG_DOUBLE: bounds, inclusive unless flagged */
  const char *const *choices;  /* CFG_ENUM: NULL-terminated names */
  unsigned flags;
  /* Optional check of one parsed value (value points into the config struct); on failure writes
   * the problem (without location) to err and returns -1. */
  int (*check)(const void *value, char *err, size_t err_size);
  const char *help;
} config_field;

typedef struct {
  const char *name;  /* "aggregator" or "client", for --help-config */
  size_t size;       /* of the config struct */
  const config_field *fields;
  size_t n_fields;
  /* Cross-field rules, run last on the complete configuration; report with config_fail. */
  int (*validate)(void *cfg, config_ctx *ctx);
} config_schema;

/* Zeroes cfg, applies defaults, reads path (NULL: no file), applies the n_sets "section.key=value"
 * overrides, checks required keys and runs the schema's validate. Returns 0, or -1 with the first
 * error in err (see above) and cfg freed. */
int config_load(const config_schema *s, void *cfg, const char *path, const char *const *sets, int n_sets,
                char *err, size_t err_size);
/* Frees the strings and lists config_load allocated; cfg is left zeroed. */
void config_free(const config_schema *s, void *cfg);

/* For validate callbacks: writes "<where [section] key was set>: <message>" to the load's error
 * and returns -1. */
int config_fail(config_ctx *ctx, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The effective configuration as an INI file that loads back to the same values (for
 * --print-config). Unset optional keys are written as comments. */
void config_print(const config_schema *s, const void *cfg, FILE *out);
/* Every key with its type, default, bounds and help (for --help-config). */
void config_describe(const config_schema *s, FILE *out);

/* Command-line options shared by both binaries: --config FILE, --set section.key=value (repeatable),
 * --print-config. config_cli_take looks at argv[*i]: if it is one of these it consumes it (and its
 * argument, advancing *i) and returns 1; 0 if it is some other option; -1 with a message in err if
 * its argument is missing or the table of --set is full. */
#define CONFIG_CLI_MAX_SETS 64
typedef struct {
  const char *path;
  const char *sets[CONFIG_CLI_MAX_SETS];
  int n_sets;
  int print;
} config_cli;
int config_cli_take(config_cli *cli, int argc, char **argv, int *i, char *err, size_t err_size);

/* Checks for CFG_STRING fields: "host:port" with a non-empty host (IPv6 in brackets) and a port in
 * 1..65535. */
int config_check_host_port(const void *value, char *err, size_t err_size);

#endif
