/* The aggregator's durable state in state_dir, written the SQLite way (temp, fsync, rename, fsync
 * the directory) so that kill -9 at any moment leaves either the old state or the new one.
 *
 *   state.json              run id, base fingerprint, joined sites, abort attempt of the open round
 *   rounds/0000/            the initial global adapter (PEFT directory)
 *   rounds/NNNN/            committed round NNNN: adapter_model.safetensors, adapter_config.json,
 *                           server_state.safetensors (server optimiser moments), round.json (its
 *                           metrics line). A round directory appears whole by one rename: its
 *                           presence IS the commit.
 *   pending/NNNN/SITE.bin   an accepted update of the open round (raw payload), then SITE.json
 *                           (example count, digest, metrics) written last as its commit marker.
 *   metrics.jsonl           one line per committed round, regenerated from the round.json files.
 * Functions returning int give 0, or -1 with a message in err naming the path. */
#ifndef FEDLORA_STORE_H
#define FEDLORA_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lora.h"
#include "model.h"

typedef struct {
  char dir[2048];
} store;

/* Creates the layout if missing and removes temporary leftovers of an interrupted write. */
int store_open(store *st, const char *state_dir, char *err, size_t errlen);
/* Highest round directory present (0 when only the initial adapter or nothing exists); -1 if
 * even rounds/0000 is missing. */
int store_last_round(const store *st);

/* state.json: NULL when absent. */
json_t *store_state_load(const store *st, char *err, size_t errlen);
int store_state_save(const store *st, const json_t *state, char *err, size_t errlen);

/* Writes round `round` whole: adapter, server optimiser state (n_state floats, may be 0) and its
 * metrics line; then regenerates metrics.jsonl and drops the round's pending updates. */
int store_round_commit(const store *st, uint32_t round, const lora_adapter *global, const model_config *c,
                       const char *base_model, const float *server_state, size_t n_state, const json_t *metrics,
                       char *err, size_t errlen);
/* Loads a committed round's adapter (ad built for c) and, when server_state is not NULL, its
 * server optimiser state of n_state floats (zeros when the round has none). */
int store_round_load(const store *st, uint32_t round, lora_adapter *ad, const model_config *c, float *server_state,
                     size_t n_state, char *err, size_t errlen);
/* Path of a committed round's PEFT directory. */
void store_round_path(const store *st, uint32_t round, char *out, size_t cap);
/* Rebuilds metrics.jsonl from every committed round's round.json. */
int store_metrics_rebuild(const store *st, char *err, size_t errlen);

/* Pending updates of the open round. */
int store_pending_save(const store *st, uint32_t round, const char *site, const void *payload, size_t len,
                       const json_t *meta, char *err, size_t errlen);
/* The complete pending updates of a round in site-name order, each payload `len` bytes (a file of
 * another size, or without its SITE.json, is skipped with a warning). The payloads are mapped
 * read-only from the files, not copied: they live in the kernel's page cache, which can drop them
 * under memory pressure, so holding every site's update costs the process no memory of its own. */
typedef struct {
  int count;
  char **sites;             /* (count) */
  json_t **metas;           /* (count) SITE.json */
  const uint8_t **payloads; /* (count) len bytes each */
  size_t len;
} store_pending_set;
int store_pending_map(const store *st, uint32_t round, size_t len, store_pending_set *set, char *err,
                      size_t errlen);
void store_pending_unmap(store_pending_set *set);
/* Calls fn for each update of store_pending_map's set, in order. fn returns non-zero to stop. */
typedef int (*store_pending_fn)(const char *site, const uint8_t *payload, size_t len, const json_t *meta, void *user);
int store_pending_each(const store *st, uint32_t round, size_t len, store_pending_fn fn, void *user, char *err,
                       size_t errlen);
int store_pending_clear(const store *st, uint32_t round, char *err, size_t errlen);

#endif
