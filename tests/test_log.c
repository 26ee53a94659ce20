/* The log level parser accepts exactly the documented names. */
#include "harness.h"
#include "log.h"

int main(void) {
  CHECK_EQ_INT(log_level_parse("debug"), LOG_DEBUG);
  CHECK_EQ_INT(log_level_parse("error"), LOG_ERROR);
  CHECK_EQ_INT(log_level_parse("loud"), -1);
  log_set_level(LOG_WARN);
  CHECK_EQ_INT(log_get_level(), LOG_WARN);
  return harness_finish();
}
