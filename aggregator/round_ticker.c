/* The round thread: on every tick (or as soon as f->changed is signalled) it moves the round machine
 * on under the lock: opens a round (and its secure aggregation), aborts one whose deadline passed
 * below quorum, commits one that is ready (round_commit.c), and steps the secure aggregation's own
 * stages; then wakes the AwaitRound long-polls. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "agg_ops.h"
#include "clock.h"
#include "federation_state.h"
#include "log.h"
#include "round.h"
#include "secagg_server.h"
#include "store.h"

static void log_missing(const federation *f) {
  char missing[1024] = "";
  size_t off = 0;
  for (int i = 0; i < f->rm.n_sites && off < sizeof missing; i++)
    if (f->rm.sites[i].missed)
      off += (size_t)snprintf(missing + off, sizeof missing - off, "%s%s", off ? ", " : "", f->rm.sites[i].name);
  log_warn("round %u aborted at its %d s deadline below quorum (%u needed); missing: %s; reopened with the same "
           "global adapter", f->rm.round, f->cfg->rounds.deadline_s, f->rm.policy.min_clients, missing);
}

/* Opens the secure aggregation of the round's current attempt (lock held). */
void round_ticker_open_secagg(federation *f) {
  if (!f->cfg->privacy.secagg || f->rm.state != ROUND_OPEN) return;
  uint64_t examples[ROUND_MAX_SITES];
  for (int i = 0; i < f->rm.n_sites; i++) {
    const site_info *s = site_get(f, f->rm.sites[i].name);
    examples[i] = s ? s->train_examples : 0;
  }
  char err[512];
  if (secagg_round_open(&f->sa_host, f->run_id, f->st.dir, examples, clock_seconds(), err, sizeof err) != 0)
    log_error("round %u: cannot open secure aggregation: %s (the round's deadline will abort it)", f->rm.round, err);
}

/* Commits the round being aggregated, or leaves it to the next tick. Lock held. */
static void commit_round(federation *f) {
  if (round_aggregate_commit(f) == 0) {
    round_commit(&f->rm);
    if (f->rm.state == ROUND_FINISHED) {
      f->finished_at = clock_seconds();
      log_info("the run has finished: %u rounds committed", f->rm.committed);
    }
    if (f->cfg->privacy.secagg) secagg_round_close(&f->sa);
    state_save_logged(f);
  } else {
    round_aggregation_failed(&f->rm);
  }
}

/* The secure aggregation's own stage changes (lock held): 1 when something changed. */
static int secagg_step(federation *f) {
  if (!f->cfg->privacy.secagg || (f->rm.state != ROUND_OPEN && f->rm.state != ROUND_AGGREGATING)) return 0;
  double now = clock_seconds();
  secagg_tick t = f->sa.mean ? SECAGG_TICK_UNMASKED : secagg_round_tick(&f->sa_host, now);
  if (t == SECAGG_TICK_UNMASKED && f->rm.state == ROUND_OPEN) f->rm.state = ROUND_AGGREGATING;
  if (t == SECAGG_TICK_UNMASKED) commit_round(f);
  if (t == SECAGG_TICK_ABORT) {
    round_abort(&f->rm, now);
    round_ticker_open_secagg(f);
  }
  if (t != SECAGG_TICK_NONE) state_save_logged(f);
  return t != SECAGG_TICK_NONE;
}

void *round_ticker_main(void *arg) {
  federation *f = arg;
  while (!atomic_load(&f->stop)) {
    pthread_mutex_lock(&f->mu);
    round_event ev = round_tick(&f->rm, clock_seconds());
    char err[512];
    switch (ev) {
      case ROUND_EVENT_OPENED:
        f->bytes_in = f->bytes_out = 0;
        log_info("round %u/%u open for %d sites", f->rm.round, f->rm.policy.total, round_selected_count(&f->rm));
        agg_ops_round_opened(f->ops, f->rm.round, f->rm.attempt, round_selected_count(&f->rm));
        round_ticker_open_secagg(f);
        state_save_logged(f);
        break;
      case ROUND_EVENT_ABORTED:
        log_missing(f);
        agg_ops_round_aborted(f->ops, f->rm.round, f->rm.attempt, "deadline passed below quorum");
        if (store_pending_clear(&f->st, f->rm.round, err, sizeof err) != 0) log_error("%s", err);
        round_ticker_open_secagg(f);
        state_save_logged(f);
        break;
      case ROUND_EVENT_AGGREGATE:
        if (!f->cfg->privacy.secagg) {
          commit_round(f);
        } else if (secagg_round_close_masked(&f->sa_host, clock_seconds()) != 0) {
          round_abort(&f->rm, clock_seconds()); /* the masks cannot be removed: nothing is revealed */
          round_ticker_open_secagg(f);
        }
        state_save_logged(f); /* under secagg the unmask stage follows in secagg_step */
        break;
      default:
        break;
    }
    if (secagg_step(f)) ev = ROUND_EVENT_OPENED; /* wake the waiters too */
    /* Between ticks the thread sleeps on f->changed, so a round's last update wakes it at once and
     * the round commits (and the next opens) without waiting out a tick. */
    if (ev != ROUND_EVENT_NONE) pthread_cond_broadcast(&f->changed);
    else clock_cond_wait_ms(&f->changed, &f->mu, 100);
    pthread_mutex_unlock(&f->mu);
  }
  return NULL;
}
