/* stories260K greedy decoding must reproduce the 256 ids upstream llama2.c run.c prints, through the
 * library and through `fedlora generate`. */
#include <stdio.h>
#include <stdlib.h>

#include "generate.h"
#include "harness.h"
#include "model.h"

enum { STEPS = 256 };

static int read_ids(const char *path, int *ids, int cap) {
  FILE *f = fopen(path, "r");
  int n = 0;
  if (!f) return -1;
  while (n < cap && fscanf(f, "%d", &ids[n]) == 1) n++;
  fclose(f);
  return n;
}

int main(void) {
  const char *ckpt = harness_shared("stories260K/stories260K.bin");
  const char *golden = harness_shared("stories260K/greedy_256.txt");
  int expected[STEPS + 1];
  int n_expected = read_ids(golden, expected, STEPS + 1);
  CHECK_EQ_INT(n_expected, STEPS);

  model m;
  char err[512];
  int rc = model_load(&m, ckpt, err, sizeof err);
  CHECK_MSG(rc == 0, "model_load: %s", err);
  if (rc) return harness_finish();
  CHECK_EQ_INT(m.config.dim, 64);
  CHECK_EQ_INT(m.config.n_kv_heads, 4);
  CHECK_EQ_INT(m.config.tied_classifier, 1);

  int prompt[1] = {1}, stop[1] = {1}, out[STEPS], n_out = 0;
  generate_config cfg = {.steps = STEPS, .temperature = 0.0f, .stop_ids = stop, .n_stop = 1};
  rc = generate_ids(&m, NULL, prompt, 1, &cfg, out, &n_out, err, sizeof err);
  CHECK_MSG(rc == 0, "generate_ids: %s", err);
  CHECK_EQ_INT(n_out, STEPS);
  int first_diff = -1;
  for (int i = 0; i < n_out && i < n_expected; i++)
    if (out[i] != expected[i]) {
      first_diff = i;
      break;
    }
  CHECK_MSG(first_diff < 0, "library: first mismatch at %d: got %d, expected %d", first_diff,
            first_diff >= 0 ? out[first_diff] : 0, first_diff >= 0 ? expected[first_diff] : 0);
  model_free(&m);

  /* The command line prints the same ids, space-separated on one line. */
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s generate --model %s --prompt-ids 1 -n 256 --temperature 0",
           harness_build("fedlora"), ckpt);
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  if (p) {
    int got[STEPS + 8], n_got = 0;
    while (n_got < STEPS + 8 && fscanf(p, "%d", &got[n_got]) == 1) n_got++;
    CHECK_EQ_INT(pclose(p), 0);
    CHECK_EQ_INT(n_got, STEPS);
    int same = n_got == n_expected;
    for (int i = 0; same && i < n_got; i++) same = got[i] == expected[i];
    CHECK_MSG(same, "`fedlora generate` output differs from greedy_256.txt");
  }
  return harness_finish();
}
