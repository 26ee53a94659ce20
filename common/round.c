#include "round.h"

#include <stdio.h>
#include <string.h>

const char *round_state_name(round_state s) {
  static const char *names[] = {"waiting", "open", "aggregating", "finished"};
  return names[s];
}

void round_init(round_machine *rm, const round_policy *policy, uint32_t committed) {
  memset(rm, 0, sizeof *rm);
  rm->policy = *policy;
  rm->committed = committed;
  rm->round = committed + 1;
  rm->quorum_at = -1;
  rm->state = committed >= policy->total ? ROUND_FINISHED : ROUND_WAITING;
  if (rm->state == ROUND_FINISHED) rm->round = committed;
}

int round_find(const round_machine *rm, const char *site) {
  for (int i = 0; i < rm->n_sites; i++)
    if (strcmp(rm->sites[i].name, site) == 0) return i;
  return -1;
}

int round_join(round_machine *rm, const char *site) {
  int i = round_find(rm, site);
  if (i >= 0) return i;
  if (rm->n_sites >= ROUND_MAX_SITES || strlen(site) >= ROUND_SITE_NAME) return -1;
  /* Keep the table sorted so selection and aggregation order never depend on join order. */
  i = rm->n_sites;
  while (i > 0 && strcmp(rm->sites[i - 1].name, site) > 0) {
    rm->sites[i] = rm->sites[i - 1];
    i--;
  }
  memset(&rm->sites[i], 0, sizeof rm->sites[i]);
  snprintf(rm->sites[i].name, ROUND_SITE_NAME, "%s", site);
  rm->n_sites++;
  if (rm->state == ROUND_OPEN && rm->policy.clients_per_round == 0) rm->sites[i].selected = 1;
  return i;
}

int round_selected_count(const round_machine *rm) {
  int n = 0;
  for (int i = 0; i < rm->n_sites; i++) n += rm->sites[i].selected;
  return n;
}

int round_submitted_count(const round_machine *rm) {
  int n = 0;
  for (int i = 0; i < rm->n_sites; i++) n += rm->sites[i].submitted;
  return n;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* A seeded choice of clients_per_round sites from the sorted table: a partial Fisher-Yates shuffle
 * driven by (seed, round, attempt), so a restarted aggregator picks the same sites. */
static void select_sites(round_machine *rm) {
  int n = rm->n_sites, k = (int)rm->policy.clients_per_round;
  for (int i = 0; i < n; i++) {
    rm->sites[i].selected = k == 0 || k >= n;
    rm->sites[i].submitted = 0;
  }
  if (k == 0 || k >= n) return;
  int idx[ROUND_MAX_SITES];
  for (int i = 0; i < n; i++) idx[i] = i;
  uint64_t state = rm->policy.seed ^ ((uint64_t)rm->round << 32) ^ rm->attempt;
  for (int i = 0; i < k; i++) {
    int j = i + (int)(splitmix64(&state) % (uint64_t)(n - i));
    int t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
    rm->sites[idx[i]].selected = 1;
  }
}

static void open_round(round_machine *rm, double now) {
  rm->state = ROUND_OPEN;
  rm->opened_at = now;
  rm->quorum_at = -1;
  select_sites(rm);
}

void round_abort(round_machine *rm, double now) {
  if (rm->state != ROUND_OPEN && rm->state != ROUND_AGGREGATING) return;
  for (int i = 0; i < rm->n_sites; i++) rm->sites[i].missed = rm->sites[i].selected && !rm->sites[i].submitted;
  rm->attempt++;
  open_round(rm, now);
}

round_event round_tick(round_machine *rm, double now) {
  switch (rm->state) {
    case ROUND_WAITING:
      if ((uint32_t)rm->n_sites >= rm->policy.min_clients && rm->n_sites > 0) {
        open_round(rm, now);
        return ROUND_EVENT_OPENED;
      }
      return ROUND_EVENT_NONE;
    case ROUND_OPEN: {
      int submitted = round_submitted_count(rm), selected = round_selected_count(rm);
      int quorum = (uint32_t)submitted >= rm->policy.min_clients && submitted > 0;
      if (quorum && rm->quorum_at < 0) rm->quorum_at = now;
      if (quorum && (submitted == selected || now - rm->quorum_at >= rm->policy.wait_after_quorum_s)) {
        rm->state = ROUND_AGGREGATING;
        return ROUND_EVENT_AGGREGATE;
      }
      if (!quorum && now - rm->opened_at >= rm->policy.deadline_s) {
        round_abort(rm, now);
        return ROUND_EVENT_ABORTED;
      }
      return ROUND_EVENT_NONE;
    }
    default:
      return ROUND_EVENT_NONE;
  }
}

round_verdict round_check_submission(const round_machine *rm, const char *site, uint32_t round) {
  if (rm->state == ROUND_FINISHED) return ROUND_REJECT_FINISHED;
  if (rm->state != ROUND_OPEN || round != rm->round) return ROUND_REJECT_NOT_OPEN;
  int i = round_find(rm, site);
  if (i < 0 || !rm->sites[i].selected) return ROUND_REJECT_NOT_SELECTED;
  if (rm->sites[i].submitted) return ROUND_REJECT_DUPLICATE;
  return ROUND_ACCEPT;
}

void round_record_submission(round_machine *rm, const char *site) {
  int i = round_find(rm, site);
  if (i >= 0) rm->sites[i].submitted = 1;
}

void round_aggregation_failed(round_machine *rm) {
  if (rm->state == ROUND_AGGREGATING) rm->state = ROUND_OPEN;
}

void round_commit(round_machine *rm) {
  rm->committed = rm->round;
  rm->attempt = 0;
  for (int i = 0; i < rm->n_sites; i++) rm->sites[i].selected = rm->sites[i].submitted = 0;
  if (rm->committed >= rm->policy.total) {
    rm->state = ROUND_FINISHED;
  } else {
    rm->state = ROUND_WAITING;
    rm->round = rm->committed + 1;
  }
}
