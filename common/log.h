/* Logging: one line per event, with a UTC timestamp and level, to stderr.
 * Nothing secret goes through here: keys, seeds and shares are never passed to log_*.
 *
 * Two formats: text for people ("2024-05-01T10:00:00.123Z INFO  fedlora-client: message") and JSON
 * for log shippers, one object per line:
 *   {"ts":"2024-05-01T10:00:00.123Z","level":"info","program":"fedlora-client","msg":"message"} */
#ifndef FEDLORA_LOG_H
#define FEDLORA_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level;
typedef enum { LOG_FORMAT_TEXT, LOG_FORMAT_JSON } log_format;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error" or "off"; returns -1 for anything else. */
int log_level_parse(const char *name);
/* Every message starts with the program's name, e.g. "fedlora-aggregator". */
void log_set_program(const char *name);
void log_set_format(log_format format);
/* Parses "text" or "json"; returns -1 for anything else. */
int log_format_parse(const char *name);

/* --log-format text|json and --log-level LEVEL, shared by the binaries. log_cli_take looks at
 * argv[*i]: 1 if it was one of these (consumed with its argument, *i advanced), 0 if it is another
 * option, -1 with a message in err if the value is missing or unknown. The level given here wins
 * over the configuration's: log_cli_apply(cli, configured level) sets both once the
 * configuration is loaded. */
typedef struct {
  int level;   /* a log_level, or -1: the configuration decides */
  int format;  /* a log_format */
} log_cli;
#define LOG_CLI_INIT {-1, LOG_FORMAT_TEXT}
int log_cli_take(log_cli *cli, int argc, char **argv, int *i, char *err, unsigned long err_size);
void log_cli_apply(const log_cli *cli, log_level configured);

void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
