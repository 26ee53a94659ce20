/* --log-format json: every line is one JSON object (parsed here with jansson) with ts, level,
 * program and msg, even for messages holding quotes, backslashes, newlines, control characters
 * and bytes that are not UTF-8; --log-level wins over the configured level; bad values refused. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"

int main(void) {
  char path[1024], err[256];
  snprintf(path, sizeof path, "%s/log.jsonl", harness_tmpdir());
  char *argv[] = {"prog", "--log-format", "json", "--log-level", "debug", "--log-format", "xml", "--log-level"};
  log_cli cli = LOG_CLI_INIT;
  int i = 1;
  CHECK_EQ_INT(log_cli_take(&cli, 8, argv, &i, err, sizeof err), 1);
  CHECK_EQ_INT(i, 2);
  i = 3;
  CHECK_EQ_INT(log_cli_take(&cli, 8, argv, &i, err, sizeof err), 1);
  i = 5;
  CHECK_EQ_INT(log_cli_take(&cli, 8, argv, &i, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "'xml'");
  i = 7;
  CHECK_EQ_INT(log_cli_take(&cli, 8, argv, &i, err, sizeof err), -1);
  i = 0;
  CHECK_EQ_INT(log_cli_take(&cli, 8, argv, &i, err, sizeof err), 0);
  CHECK_EQ_INT(cli.format, LOG_FORMAT_JSON);
  CHECK_EQ_INT(cli.level, LOG_DEBUG);

  fflush(stderr);
  int saved = dup(fileno(stderr));
  if (!freopen(path, "w", stderr)) return 1;
  log_set_program("fedlora-\"test\"");
  log_cli_apply(&cli, LOG_ERROR); /* the command line's debug wins */
  log_debug("round %u: \"quoted\" back\\slash\nnew line\ttab \x01 bad \xff\xfe byte, caf\xc3\xa9", 3u);
  log_info("plain");
  log_cli apply_config = LOG_CLI_INIT;
  apply_config.format = LOG_FORMAT_JSON;
  log_cli_apply(&apply_config, LOG_WARN); /* no --log-level: the configuration's warn */
  log_info("filtered out");
  log_error("last");
  fflush(stderr);
  dup2(saved, fileno(stderr));
  close(saved);

  FILE *fp = fopen(path, "r");
  char line[8192];
  const char *want_msg[] = {"round 3: \"quoted\" back\\slash\nnew line\ttab \x01 bad \xef\xbf\xbd\xef\xbf\xbd byte, caf\xc3\xa9",
                            "plain", "last"};
  const char *want_level[] = {"debug", "info", "error"};
  int n = 0;
  while (fp && fgets(line, sizeof line, fp)) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    CHECK_MSG(json_is_object(o), "line %d is not a JSON object: %s: %s", n + 1, je.text, line);
    if (n < 3 && o) {
      CHECK_EQ_INT(json_object_size(o), 4);
      const char *ts = json_string_value(json_object_get(o, "ts"));
      CHECK(ts && strlen(ts) == 24 && ts[10] == 'T' && ts[23] == 'Z');
      CHECK(strcmp(json_string_value(json_object_get(o, "level")) ?: "", want_level[n]) == 0);
      CHECK(strcmp(json_string_value(json_object_get(o, "program")) ?: "", "fedlora-\"test\"") == 0);
      const char *msg = json_string_value(json_object_get(o, "msg"));
      CHECK_MSG(msg && strcmp(msg, want_msg[n]) == 0, "line %d msg: %s", n + 1, msg ? msg : "(none)");
    }
    json_decref(o);
    n++;
  }
  if (fp) fclose(fp);
  CHECK_EQ_INT(n, 3);
  return harness_finish();
}
