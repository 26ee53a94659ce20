/* Inside the synthetic-data generator: a counter-based RNG with integer-only draws (so the same seed
 * gives the same bytes on any platform and libm), a bounded text builder, and one generator per source. */
#ifndef FEDLORA_SYNTH_INTERNAL_H
#define FEDLORA_SYNTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t state;
} synth_rng;

uint64_t synth_rng_next(synth_rng *r);
/* Uniform in [lo, hi]. */
int synth_rng_int(synth_rng *r, int lo, int hi);
/* Mean of three uniform draws in [lo, hi], rounded: bell-shaped around the middle of the range. */
int synth_rng_bell(synth_rng *r, int lo, int hi);
/* 1 with probability percent / 100. */
int synth_rng_chance(synth_rng *r, int percent);
const char *synth_rng_pick(synth_rng *r, const char *const *items, int n);
#define SYNTH_PICK(r, items) synth_rng_pick((r), (items), (int)(sizeof(items) / sizeof *(items)))

enum { SYNTH_TEXT_MAX = 2048 };

/* Records are short by construction; overflow is recorded rather than truncating silently. */
typedef struct {
  char data[SYNTH_TEXT_MAX];
  size_t len;
  int overflow;
} synth_text;

void synth_text_add(synth_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds "a", "a and b" or "a, b and c" for the n items. */
void synth_text_list(synth_text *t, const char *const *items, int n);

/* One record of each source, drawn from r. Clinical sources fill a prompt and its completion. */
void synth_cardiology(synth_rng *r, synth_text *prompt, synth_text *completion);
void synth_oncology(synth_rng *r, synth_text *prompt, synth_text *completion);
void synth_paediatrics(synth_rng *r, synth_text *prompt, synth_text *completion);
void synth_generic(synth_rng *r, synth_text *text);

#endif
