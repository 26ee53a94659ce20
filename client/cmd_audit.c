/* `fedlora audit verify FILE`: checks the hash chain of an audit log (common/audit.h). */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "commands.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora audit verify FILE\n"
          "  Checks that every line of the audit log FILE ([audit] file of the aggregator or a site)\n"
          "  names the SHA-256 of the line before it and its own position. Prints the line count and\n"
          "  the digest of the last line (keep it elsewhere: lines cut off the end are only seen by\n"
          "  comparing it), or the first line that was altered, removed, inserted or reordered.\n"
          "  Exit status: 0 intact, 1 broken, 2 cannot read the file or bad usage.\n");
}

int cmd_audit(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  if (argc != 3 || strcmp(argv[1], "verify") != 0) {
    usage(stderr);
    return 2;
  }
  long lines = 0, bad = 0;
  char head[65], err[1024];
  int rc = audit_verify(argv[2], &lines, head, &bad, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "fedlora audit: %s\n", err);
    return 2;
  }
  if (rc > 0) {
    printf("BROKEN at line %ld: %s\n", bad, err);
    return 1;
  }
  printf("OK: %ld lines, chain intact; last line's SHA-256 %s\n", lines, head);
  return 0;
}
