/* Loading a site's data files into a training mixture and a validation set; see dataset_site.h. */
#include "dataset_site.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void counts_log(const char *what, const char *path, const dataset *d, size_t skipped) {
  log_info("%s %s: %zu records, %zu tokens, %zu counted by the loss, %zu windows of %d; %zu bad records skipped",
           what, path, d->records, d->n, d->counted_tokens, d->n_windows, d->seq_len, skipped);
}

/* Reads one file into train (and the held-out part into val when val is not NULL). */
static int file_load(dataset *train, dataset *val, const char *path, data_format format, double val_fraction,
                     const data_spec *spec, const tokenizer *tok, int vocab_size, size_t *skipped, char *err,
                     size_t err_size) {
  record_set s;
  if (records_read(&s, path, format, spec->skip_bad, err, err_size)) return -1;
  int rc = dataset_add_records(train, val, &s, val_fraction, spec->split_seed, tok, vocab_size, err, err_size);
  *skipped = s.skipped;
  records_free(&s);
  return rc;
}

int site_data_load(site_data *sd, const data_spec *spec, const tokenizer *tok, int vocab_size, int seq_len,
                   int shuffle, uint64_t seed, char *err, size_t err_size) {
  memset(sd, 0, sizeof *sd);
  if (spec->replay && !(spec->replay_fraction >= 0.0 && spec->replay_fraction < 1.0)) {
    snprintf(err, err_size, "--replay-fraction must be in [0, 1), got %g", spec->replay_fraction);
    return -1;
  }
  source_list list;
  if (source_list_parse(&list, spec->data, err, err_size)) return -1;
  int replaying = spec->replay && spec->replay_fraction > 0.0;
  int n = list.n + replaying, rc = -1;
  sd->train = calloc(n, sizeof(dataset));
  sd->weights = calloc(n, sizeof(double));
  sd->names = calloc(n, sizeof(char *));
  if (!sd->train || !sd->weights || !sd->names) {
    snprintf(err, err_size, "out of memory");
    goto done;
  }
  sd->n = n;
  double split = spec->val ? 0.0 : spec->val_fraction, total = 0.0;
  for (int i = 0; i < n; i++) {
    int replay = i == list.n;
    const char *path = replay ? spec->replay : list.paths[i];
    size_t skipped = 0, val_before = sd->val.records;
    if (!(sd->names[i] = strdup(path))) {
      snprintf(err, err_size, "out of memory");
      goto done;
    }
    if (file_load(&sd->train[i], replay ? NULL : &sd->val, path, replay ? DATA_FORMAT_AUTO : spec->format,
                  replay ? 0.0 : split, spec, tok, vocab_size, &skipped, err, err_size))
      goto done;
    if (dataset_index(&sd->train[i], seq_len, path, err, err_size)) goto done;
    counts_log(replay ? "replay" : "train", path, &sd->train[i], skipped);
    if (split > 0.0) log_info("validation: %zu records held out of %s", sd->val.records - val_before, path);
    sd->weights[i] = replay ? 0.0 : list.weights[i];
    total += sd->weights[i];
  }
  /* replay's weight makes its share of draws exactly replay_fraction */
  if (replaying) sd->weights[n - 1] = total * spec->replay_fraction / (1.0 - spec->replay_fraction);
  if (spec->val) {
    size_t skipped = 0;
    if (file_load(&sd->val, NULL, spec->val, spec->format, 0.0, spec, tok, vocab_size, &skipped, err, err_size))
      goto done;
  }
  if (sd->val.records) {
    if (dataset_index(&sd->val, seq_len, spec->val ? spec->val : "validation split", err, err_size)) goto done;
    counts_log("validation", spec->val ? spec->val : "(held out)", &sd->val, 0);
    sd->has_val = 1;
  } else if (split > 0.0) {
    log_warn("no record fell in the validation split (fraction %g); training without validation", split);
  }
  const dataset **sources = malloc(sizeof(dataset *) * n);
  if (!sources) {
    snprintf(err, err_size, "out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++) sources[i] = &sd->train[i];
  rc = mixture_build(&sd->mix, sources, sd->weights, n, shuffle, seed, err, err_size);
  free(sources);
done:
  source_list_free(&list);
  if (rc) site_data_free(sd);
  return rc;
}

void site_data_free(site_data *sd) {
  mixture_free(&sd->mix);
  for (int i = 0; sd->train && i < sd->n; i++) dataset_free(&sd->train[i]);
  for (int i = 0; sd->names && i < sd->n; i++) free(sd->names[i]);
  free(sd->train);
  free(sd->weights);
  free(sd->names);
  dataset_free(&sd->val);
  memset(sd, 0, sizeof *sd);
}
