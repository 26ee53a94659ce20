/* Synthetic site data: deterministic prompt/completion records that look like what each hospital
 * department holds, and general text for pretraining the demo base model.
 *
 * Clinical records ({"prompt": ..., "completion": ...}) state a patient's values in the prompt; the
 * completion is a structured finding and plan that follows fixed rules from those values (blood
 * pressure classes, TNM staging, weight-band dosing), so a model can learn them. Each department has
 * its own vocabulary, templates and value distributions. The rules are plausible, simplified and
 * NOT clinical guidance. Generic records ({"text": ...}) are simple stories and everyday prose with
 * no clinical words.
 *
 * Record i of a source under a seed depends only on (source, seed, i): the first N records of a
 * longer run are the N records of a shorter one, and the bytes never depend on the platform. */
#ifndef FEDLORA_SYNTH_H
#define FEDLORA_SYNTH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { SYNTH_CARDIOLOGY, SYNTH_ONCOLOGY, SYNTH_PAEDIATRICS, SYNTH_GENERIC, SYNTH_NUM_SOURCES } synth_source;

/* "cardiology", "oncology", "paediatrics" (or "pediatrics"), "generic"; -1 if unknown. */
int synth_source_parse(const char *name);
const char *synth_source_name(synth_source s);

/* A new JSON object holding record `index`, or NULL with err filled. */
json_t *synth_record(synth_source s, uint64_t seed, long index, char *err, size_t err_size);

/* Writes records 0..count-1 as JSON Lines (compact, keys in order, one object per line). */
int synth_write(FILE *out, synth_source s, uint64_t seed, long count, char *err, size_t err_size);

#endif
