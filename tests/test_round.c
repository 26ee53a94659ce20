/* The round state machine: opening at quorum, committing when all or enough have submitted,
 * aborting below quorum at the deadline, seeded selection, and rejection verdicts. */
#include "harness.h"
#include "round.h"

static void test_all_submit(void) {
  round_policy p = {.total = 2, .min_clients = 2, .deadline_s = 100, .wait_after_quorum_s = 10, .seed = 1};
  round_machine rm;
  round_init(&rm, &p, 0);
  CHECK_EQ_INT(rm.state, ROUND_WAITING);
  round_join(&rm, "beta");
  CHECK_EQ_INT(round_tick(&rm, 0), ROUND_EVENT_NONE); /* below min_clients */
  round_join(&rm, "alpha");
  CHECK(strcmp(rm.sites[0].name, "alpha") == 0);    /* sorted */
  CHECK_EQ_INT(round_tick(&rm, 1), ROUND_EVENT_OPENED);
  CHECK_EQ_INT(rm.round, 1);
  CHECK_EQ_INT(round_check_submission(&rm, "alpha", 2), ROUND_REJECT_NOT_OPEN);
  CHECK_EQ_INT(round_check_submission(&rm, "gamma", 1), ROUND_REJECT_NOT_SELECTED);
  CHECK_EQ_INT(round_check_submission(&rm, "alpha", 1), ROUND_ACCEPT);
  round_record_submission(&rm, "alpha");
  CHECK_EQ_INT(round_check_submission(&rm, "alpha", 1), ROUND_REJECT_DUPLICATE);
  CHECK_EQ_INT(round_tick(&rm, 2), ROUND_EVENT_NONE);
  round_record_submission(&rm, "beta");
  CHECK_EQ_INT(round_tick(&rm, 3), ROUND_EVENT_AGGREGATE);
  CHECK_EQ_INT(round_check_submission(&rm, "beta", 1), ROUND_REJECT_NOT_OPEN);
  round_commit(&rm);
  CHECK_EQ_INT(rm.committed, 1);
  CHECK_EQ_INT(round_tick(&rm, 4), ROUND_EVENT_OPENED);
  CHECK_EQ_INT(rm.round, 2);
  round_record_submission(&rm, "alpha");
  round_record_submission(&rm, "beta");
  CHECK_EQ_INT(round_tick(&rm, 5), ROUND_EVENT_AGGREGATE);
  round_commit(&rm);
  CHECK_EQ_INT(rm.state, ROUND_FINISHED);
  CHECK_EQ_INT(round_check_submission(&rm, "alpha", 3), ROUND_REJECT_FINISHED);
}

static void test_quorum_wait_and_abort(void) {
  round_policy p = {.total = 5, .min_clients = 2, .deadline_s = 60, .wait_after_quorum_s = 10, .seed = 7};
  round_machine rm;
  round_init(&rm, &p, 2); /* resumed after round 2 */
  CHECK_EQ_INT(rm.round, 3);
  round_join(&rm, "a");
  round_join(&rm, "b");
  round_join(&rm, "c");
  CHECK_EQ_INT(round_tick(&rm, 100), ROUND_EVENT_OPENED);
  round_record_submission(&rm, "a");
  /* Below quorum at the deadline: aborted and reopened, the same round, nobody counted. */
  CHECK_EQ_INT(round_tick(&rm, 159), ROUND_EVENT_NONE);
  CHECK_EQ_INT(round_tick(&rm, 160), ROUND_EVENT_ABORTED);
  CHECK_EQ_INT(rm.round, 3);
  CHECK_EQ_INT(rm.attempt, 1);
  CHECK_EQ_INT(round_submitted_count(&rm), 0);
  CHECK_EQ_INT(rm.state, ROUND_OPEN);
  CHECK(!rm.sites[0].missed && rm.sites[1].missed && rm.sites[2].missed); /* a submitted; b, c silent */
  /* Quorum but one site missing: commits only after wait_after_quorum_s. */
  round_record_submission(&rm, "a");
  round_record_submission(&rm, "c");
  CHECK_EQ_INT(round_tick(&rm, 170), ROUND_EVENT_NONE);
  CHECK_EQ_INT(round_tick(&rm, 179.9), ROUND_EVENT_NONE);
  CHECK_EQ_INT(round_tick(&rm, 180), ROUND_EVENT_AGGREGATE);
  /* A commit that fails (disk full) leaves the round open with its submissions, to retry. */
  round_aggregation_failed(&rm);
  CHECK_EQ_INT(rm.state, ROUND_OPEN);
  CHECK_EQ_INT(round_tick(&rm, 181), ROUND_EVENT_AGGREGATE);
}

static void test_selection(void) {
  round_policy p = {.total = 3, .min_clients = 2, .clients_per_round = 2, .deadline_s = 60, .seed = 42};
  round_machine a, b;
  round_init(&a, &p, 0);
  round_init(&b, &p, 0);
  const char *names[] = {"s1", "s2", "s3", "s4", "s5"};
  for (int i = 0; i < 5; i++) round_join(&a, names[i]);
  for (int i = 4; i >= 0; i--) round_join(&b, names[i]); /* other join order */
  round_tick(&a, 0);
  round_tick(&b, 0);
  CHECK_EQ_INT(round_selected_count(&a), 2);
  for (int i = 0; i < 5; i++) CHECK_EQ_INT(a.sites[i].selected, b.sites[i].selected);
  /* Over many seeds every site gets picked sometimes: the choice is not stuck. */
  int picked[5] = {0};
  for (uint64_t seed = 0; seed < 200; seed++) {
    p.seed = seed;
    round_init(&a, &p, 0);
    for (int i = 0; i < 5; i++) round_join(&a, names[i]);
    round_tick(&a, 0);
    for (int i = 0; i < 5; i++) picked[i] += a.sites[i].selected;
  }
  for (int i = 0; i < 5; i++) CHECK_MSG(picked[i] > 40 && picked[i] < 120, "site %d picked %d/200", i, picked[i]);
  /* A late joiner joins an open all-sites round. */
  round_policy all = {.total = 1, .min_clients = 1, .deadline_s = 60};
  round_init(&a, &all, 0);
  round_join(&a, "x");
  round_tick(&a, 0);
  round_join(&a, "y");
  CHECK_EQ_INT(round_selected_count(&a), 2);
}

int main(void) {
  test_all_submit();
  test_quorum_wait_and_abort();
  test_selection();
  return harness_finish();
}
