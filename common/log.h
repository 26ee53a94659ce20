/* Logging: one line per event, with a UTC timestamp and level, to stderr.
 * Nothing secret goes through here: keys, seeds and shares are never passed to log_*. */
#ifndef FEDLORA_LOG_H
#define FEDLORA_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error" or "off"; returns -1 for anything else. */
int log_level_parse(const char *name);
/* Every message starts with the program's name, e.g. "fedlora-aggregator". */
void log_set_program(const char *name);

void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
