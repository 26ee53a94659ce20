/* A tamper-evident audit log: append-only JSON lines, each naming the SHA-256 of the line before it.
 *
 * One line per event, written compactly on one line and fsync'd before audit_append returns:
 *   {"seq":0,"prev":"000...0","ts":"2024-05-01T10:00:00.123Z","program":"fedlora-aggregator",
 *    "event":"join","site":"alpha",...}
 * seq counts lines from 0; prev is the lowercase hex SHA-256 of the previous line's bytes without
 * its newline (64 zeros for the first line). Editing, deleting, inserting or reordering lines
 * breaks the chain at the first line touched, which audit_verify reports. Cutting lines off the
 * end cannot be seen from the file alone: compare the last seq with a copy kept elsewhere.
 *
 * What goes in: events and digests (joins, refusals with their reason, rounds opened, committed
 * and aborted, and for every update sent or received its SHA-256, size, example count and round).
 * Never data, keys or anything a site must keep. */
#ifndef FEDLORA_AUDIT_H
#define FEDLORA_AUDIT_H

#include <stddef.h>

#include <jansson.h>

typedef struct audit_log audit_log;

/* Opens (creating) path for appending as `program`. An existing file is verified first and
 * appended to only if its chain holds, so a tampered or torn log is never extended silently.
 * NULL with the reason in err. */
audit_log *audit_open(const char *path, const char *program, char *err, size_t errlen);
/* Appends one event. fields (a JSON object, may be NULL) is consumed; its keys must not be seq,
 * prev, ts, program or event. Safe from several threads. a == NULL (no [audit] file configured)
 * only frees fields. 0, or -1 after logging why (the event is then lost, the chain intact). */
int audit_append(audit_log *a, const char *event, json_t *fields);
void audit_close(audit_log *a);

/* Checks the chain of the log at path. 0: intact, *lines and head (hex SHA-256 of the last line,
 * 64 zeros for an empty log) set. 1: broken, *bad_line set to the first line that was altered,
 * or at which lines were removed, inserted or reordered (1-based), and the reason in err.
 * -1: cannot read the file (reason in err). */
int audit_verify(const char *path, long *lines, char head[65], long *bad_line, char *err, size_t errlen);

#endif
