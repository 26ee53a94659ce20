/* Token generation as llama2.c's run.c does it: position 0 holds prompt[0]; while the prompt lasts
 * its next token is forced, afterwards sampled (argmax at temperature 0); the output is every token
 * after position 0, until `steps` positions are done or a stop token comes up. */
#ifndef FEDLORA_GENERATE_H
#define FEDLORA_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"
#include "model.h"

typedef struct {
  int steps;             /* positions to run, prompt included (run.c's -n); capped at max_seq_len */
  float temperature;     /* 0: greedy */
  uint64_t seed;         /* sampling RNG when temperature > 0 */
  const int *stop_ids;   /* generation ends before emitting one of these (run.c: BOS = 1) */
  int n_stop;
} generate_config;

/* Writes at most steps ids (one per position, as run.c prints them) to out and their count to
 * *n_out. lora may be NULL. */
int generate_ids(const model *m, const lora_adapter *lora, const int *prompt, int n_prompt,
                 const generate_config *cfg, int *out, int *n_out, char *err, size_t err_size);

#endif
