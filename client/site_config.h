/* A site's configuration: an INI file (examples/client.ini documents every key) plus --set
 * overrides, loaded through common/config.h. Everything about training comes from the
 * aggregator's run plan; this file says only where the site's own things are. */
#ifndef FEDLORA_SITE_CONFIG_H
#define FEDLORA_SITE_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "log.h"

typedef struct {
  struct {
    char *server;       /* aggregator host:port */
    char *cert, *key;   /* this site's client certificate (CN = the site's name) and key */
    char *ca;           /* CA that issued the aggregator's certificate */
    char *server_name;  /* name to check in the aggregator's certificate; NULL: the host of server */
    char *state_dir;
    int threads;        /* training threads; 0: every core */
    log_level log_level;
  } client;
  struct {
    char *base;         /* the base model, identical to the aggregator's */
    char *tokenizer;    /* NULL: the one beside the base model */
  } model;
  struct {
    char *train;
    char *val;          /* NULL: hold out val_fraction of train */
    int format;         /* a data_format (dataset.h): auto, jsonl, text, ids, in that order */
    double val_fraction;
  } data;
  struct {
    char *file;         /* the audit log (audit.h); NULL: none */
  } audit;
  int simulate;         /* --simulate (command line only): no data, a seeded random update per round */
} site_config;

extern const config_schema site_config_schema;

/* config_load with site_config_schema: path may be NULL; sets are "section.key=value". 0, or -1
 * with the first error in err and nothing to free. */
int site_config_load(site_config *cfg, const char *path, const char *const *sets, int n_sets, char *err,
                     size_t err_size);
void site_config_free(site_config *cfg);

#endif
