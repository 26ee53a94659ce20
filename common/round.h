/* The aggregator's round state machine. Pure logic: no I/O, no clock of its own (callers pass
 * `now` in seconds), no locking (the aggregator holds its lock around every call).
 *
 * States and their invariants:
 *   ROUND_WAITING      no round is open: fewer than min_clients sites have joined, or the run has
 *                      not started. round = committed + 1 is the next round to open.
 *   ROUND_OPEN         round `round` is open for the `selected` sites; their first update for it is
 *                      accepted; committed == round - 1.
 *   ROUND_AGGREGATING  quorum reached and every selected site submitted or wait_after_quorum_s
 *                      passed; no more updates are accepted; the caller aggregates and commits.
 *   ROUND_FINISHED     committed == total; nothing is accepted any more.
 * An open round that reaches deadline_s below quorum is aborted and reopened at once with the same
 * global adapter (attempt + 1, a fresh selection); missing sites are never filled in. */
#ifndef FEDLORA_ROUND_H
#define FEDLORA_ROUND_H

#include <stdint.h>

typedef enum { ROUND_WAITING, ROUND_OPEN, ROUND_AGGREGATING, ROUND_FINISHED } round_state;

typedef struct {
  uint32_t total;          /* rounds in the run */
  uint32_t min_clients;    /* quorum */
  uint32_t clients_per_round; /* 0 = every joined site */
  double deadline_s;
  double wait_after_quorum_s;
  uint64_t seed;
} round_policy;

#define ROUND_MAX_SITES 256
#define ROUND_SITE_NAME 128

typedef struct {
  char name[ROUND_SITE_NAME];
  int selected;   /* in the open round */
  int submitted;  /* update for the open round accepted */
  int missed;     /* selected but silent when the previous attempt of this round was aborted */
} round_site;

typedef struct {
  round_policy policy;
  round_state state;
  uint32_t round;       /* the open round, or the next one to open */
  uint32_t committed;   /* last committed round, 0 before the first */
  uint32_t attempt;     /* 0 for the first opening of `round`, +1 per abort */
  double opened_at;     /* when `round` was opened */
  double quorum_at;     /* when quorum was reached, < 0 before */
  round_site sites[ROUND_MAX_SITES]; /* joined sites, sorted by name */
  int n_sites;
} round_machine;

typedef enum {
  ROUND_EVENT_NONE,
  ROUND_EVENT_OPENED,     /* WAITING -> OPEN */
  ROUND_EVENT_AGGREGATE,  /* OPEN -> AGGREGATING: the caller aggregates, then calls round_commit */
  ROUND_EVENT_ABORTED,    /* OPEN -> OPEN (attempt + 1): quorum missed by the deadline */
} round_event;

typedef enum {
  ROUND_ACCEPT,           /* the update may be checked further and recorded */
  ROUND_REJECT_NOT_OPEN,  /* no round open, or a different round */
  ROUND_REJECT_NOT_SELECTED,
  ROUND_REJECT_DUPLICATE, /* already submitted for this round */
  ROUND_REJECT_FINISHED,
} round_verdict;

/* committed: the last committed round found in durable state. */
void round_init(round_machine *rm, const round_policy *policy, uint32_t committed);
/* Adds a site (idempotent). Returns its index, or -1 when the table is full. A site joining an
 * open round that takes every site joins that round too. */
int round_join(round_machine *rm, const char *site);
int round_find(const round_machine *rm, const char *site);

/* Advances timers and opens rounds; call after every change and periodically. */
round_event round_tick(round_machine *rm, double now);

round_verdict round_check_submission(const round_machine *rm, const char *site, uint32_t round);
/* Records an accepted update (after round_check_submission said ROUND_ACCEPT and it validated);
 * the next round_tick decides whether the round is ready. */
void round_record_submission(round_machine *rm, const char *site);
/* OPEN or AGGREGATING -> OPEN (attempt + 1, a fresh selection): the round cannot complete this
 * attempt (e.g. its secure aggregation fell below the threshold); as at the deadline. */
void round_abort(round_machine *rm, double now);
/* AGGREGATING -> OPEN: the aggregation could not be committed (e.g. the disk is full); the next
 * tick tries again with the same submissions. */
void round_aggregation_failed(round_machine *rm);
/* AGGREGATING -> WAITING for the next round (opened by the next tick) or FINISHED. */
void round_commit(round_machine *rm);

int round_selected_count(const round_machine *rm);
int round_submitted_count(const round_machine *rm);
const char *round_state_name(round_state s);

#endif
