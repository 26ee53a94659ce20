/* The generator's plumbing: RNG, text builder, record dispatch and JSON Lines output. The sources
 * themselves live in synth_clinic.c and synth_generic.c. */
#include "synth.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "synth_internal.h"

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* splitmix64: each draw mixes the next point of a Weyl sequence, so one state word is the generator. */
uint64_t synth_rng_next(synth_rng *r) {
  uint64_t z = r->state;
  r->state += 0x9e3779b97f4a7c15ull;
  return mix64(z);
}

int synth_rng_int(synth_rng *r, int lo, int hi) {
  uint64_t span = (uint64_t)((int64_t)hi - lo + 1);
  /* a 64-bit draw modulo a span below 2^20 has a bias under 1e-13: nothing a model could learn */
  return lo + (int)(synth_rng_next(r) % span);
}

int synth_rng_bell(synth_rng *r, int lo, int hi) {
  long sum = (long)synth_rng_int(r, lo, hi) + synth_rng_int(r, lo, hi) + synth_rng_int(r, lo, hi);
  return (int)((sum + 1) / 3);
}

int synth_rng_chance(synth_rng *r, int percent) { return synth_rng_int(r, 0, 99) < percent; }

const char *synth_rng_pick(synth_rng *r, const char *const *items, int n) { return items[synth_rng_int(r, 0, n - 1)]; }

void synth_text_add(synth_text *t, const char *fmt, ...) {
  if (t->overflow) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->data + t->len, sizeof t->data - t->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof t->data - t->len) {
    t->overflow = 1;
    t->data[t->len] = '\0';
    return;
  }
  t->len += (size_t)n;
}

void synth_text_list(synth_text *t, const char *const *items, int n) {
  for (int i = 0; i < n; i++) synth_text_add(t, "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ", items[i]);
}

static const char *const source_names[SYNTH_NUM_SOURCES] = {"cardiology", "oncology", "paediatrics", "generic"};

int synth_source_parse(const char *name) {
  if (!strcmp(name, "pediatrics")) return SYNTH_PAEDIATRICS;
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++)
    if (!strcmp(name, source_names[s])) return s;
  return -1;
}

const char *synth_source_name(synth_source s) {
  return (unsigned)s < SYNTH_NUM_SOURCES ? source_names[s] : "unknown";
}

json_t *synth_record(synth_source s, uint64_t seed, long index, char *err, size_t err_size) {
  /* the source is part of the key, so two departments under one seed are unrelated streams */
  synth_rng r = {mix64(mix64(mix64(seed) ^ (uint64_t)s) + (uint64_t)index)};
  synth_text first = {.len = 0}, second = {.len = 0};
  switch (s) {
    case SYNTH_CARDIOLOGY: synth_cardiology(&r, &first, &second); break;
    case SYNTH_ONCOLOGY: synth_oncology(&r, &first, &second); break;
    case SYNTH_PAEDIATRICS: synth_paediatrics(&r, &first, &second); break;
    case SYNTH_GENERIC: synth_generic(&r, &first); break;
    default:
      snprintf(err, err_size, "synth: unknown source %d", (int)s);
      return NULL;
  }
  if (first.overflow || second.overflow) {
    snprintf(err, err_size, "synth: %s record %ld is longer than %d bytes", source_names[s], index, SYNTH_TEXT_MAX);
    return NULL;
  }
  json_t *obj = s == SYNTH_GENERIC
                    ? json_pack("{s:s#}", "text", first.data, (int)first.len)
                    : json_pack("{s:s#, s:s#}", "prompt", first.data, (int)first.len, "completion", second.data,
                                (int)second.len);
  if (!obj)
    snprintf(err, err_size, "synth: %s record %ld is not valid UTF-8 or memory ran out", source_names[s], index);
  return obj;
}

int synth_write(FILE *out, synth_source s, uint64_t seed, long count, char *err, size_t err_size) {
  for (long i = 0; i < count; i++) {
    json_t *obj = synth_record(s, seed, i, err, err_size);
    if (!obj) return -1;
    int rc = json_dumpf(obj, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (rc != 0 || fputc('\n', out) == EOF) {
      snprintf(err, err_size, "synth: write failed at record %ld: %s", i, strerror(errno));
      return -1;
    }
  }
  return 0;
}
