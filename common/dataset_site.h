/* A site's training data as the commands take it: several weighted files, a validation set (a file,
 * or the records each data file holds out by the content hash), and optional replay of general
 * text, all packed for one window length and drawn from as one mixture. See dataset.h. */
#ifndef FEDLORA_DATASET_SITE_H
#define FEDLORA_DATASET_SITE_H

#include "dataset.h"

typedef struct {
  const char *data;        /* "a.jsonl:3,b.txt:1" (see source_list_parse) */
  const char *val;         /* NULL: held out from the data files by val_fraction */
  double val_fraction;     /* 0 with no val file: no validation set */
  const char *replay;      /* NULL: none. Replay is never held out: it is not the site's task */
  double replay_fraction;  /* share of drawn windows from replay, in [0, 1); 0 leaves replay out */
  data_format format;      /* for data and val; replay is always detected */
  int skip_bad;
  uint64_t split_seed;
} data_spec;

typedef struct {
  int n;               /* training sources: the data files, then replay */
  dataset *train;      /* (n) */
  double *weights;     /* (n) */
  char **names;        /* (n) file paths, for reports */
  dataset val;         /* indexed when has_val */
  int has_val;
  data_mixture mix;    /* over train */
} site_data;

/* Reads, splits, tokenises and indexes everything for windows of seq_len; logs the counts of
 * records, tokens, counted tokens and windows per file. */
int site_data_load(site_data *sd, const data_spec *spec, const tokenizer *tok, int vocab_size, int seq_len,
                   int shuffle, uint64_t seed, char *err, size_t err_size);
void site_data_free(site_data *sd);

#endif
