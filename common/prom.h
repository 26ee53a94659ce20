/* A small registry of Prometheus metrics and its text exposition format (version 0.0.4):
 * counters, gauges and histograms, each with at most one label, rendered as
 *   # HELP name help
 *   # TYPE name counter
 *   name{reason="not_selected"} 3
 * Histograms render cumulative name_bucket{le="..."} lines ending with le="+Inf", then name_sum
 * and name_count. Safe from several threads; prom_render takes a consistent snapshot. */
#ifndef FEDLORA_PROM_H
#define FEDLORA_PROM_H

typedef struct prom_registry prom_registry;
typedef enum { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM } prom_type;

enum { PROM_MAX_METRICS = 64, PROM_MAX_SERIES = 32, PROM_MAX_BUCKETS = 16 };

prom_registry *prom_build(void);
void prom_free(prom_registry *r);

/* Declares a metric (name: [a-zA-Z_:][a-zA-Z0-9_:]*; label: the one label's name, or NULL;
 * buckets: histogram upper bounds, strictly increasing, +Inf implied). Returns its id (>= 0), or
 * -1 for a bad name, bucket list, or a full registry. An unlabelled counter or gauge starts at 0
 * and is always rendered; labelled series appear when first touched. */
int prom_define(prom_registry *r, const char *name, prom_type type, const char *help, const char *label,
                const double *buckets, int n_buckets);
/* Counters: adds v >= 0 to the series of label value lv (NULL for an unlabelled metric). */
void prom_add(prom_registry *r, int id, const char *lv, double v);
/* Gauges: sets the series of lv. */
void prom_set(prom_registry *r, int id, const char *lv, double v);
/* Histograms: one observation. */
void prom_observe(prom_registry *r, int id, double v);
/* The whole registry in the text format; malloc'd, free() it. NULL if out of memory. */
char *prom_render(prom_registry *r);

#endif
