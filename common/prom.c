#include "prom.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *label_value;  /* NULL: the unlabelled series */
  double value;
} series;

typedef struct {
  char *name, *help, *label;
  prom_type type;
  series s[PROM_MAX_SERIES];
  int n_series;
  double bounds[PROM_MAX_BUCKETS];  /* (n_buckets) upper bounds; +Inf is implied */
  unsigned long long counts[PROM_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
  int n_buckets;
  double sum;
} metric;

struct prom_registry {
  metric m[PROM_MAX_METRICS];
  int n;
  pthread_mutex_t mu;
};

prom_registry *prom_build(void) {
  prom_registry *r = calloc(1, sizeof *r);
  if (r) pthread_mutex_init(&r->mu, NULL);
  return r;
}

void prom_free(prom_registry *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) {
    free(r->m[i].name);
    free(r->m[i].help);
    free(r->m[i].label);
    for (int j = 0; j < r->m[i].n_series; j++) free(r->m[i].s[j].label_value);
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static int name_ok(const char *s) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
          *s == ':'))
      return 0;
  return 1;
}

int prom_define(prom_registry *r, const char *name, prom_type type, const char *help, const char *label,
                const double *buckets, int n_buckets) {
  if (!name_ok(name) || (label && (!name_ok(label) || strcmp(label, "le") == 0)) ||
      (type == PROM_HISTOGRAM && (label || n_buckets < 1 || n_buckets > PROM_MAX_BUCKETS)))
    return -1;
  for (int i = 1; type == PROM_HISTOGRAM && i < n_buckets; i++)
    if (!(buckets[i] > buckets[i - 1])) return -1;
  pthread_mutex_lock(&r->mu);
  int id = r->n < PROM_MAX_METRICS ? r->n++ : -1;
  if (id >= 0) {
    metric *m = &r->m[id];
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    m->label = label ? strdup(label) : NULL;
    m->type = type;
    m->n_buckets = type == PROM_HISTOGRAM ? n_buckets : 0;
    if (m->n_buckets) memcpy(m->bounds, buckets, (size_t)n_buckets * sizeof(double));
    if (!label) m->n_series = 1; /* the unlabelled series exists from the start, at 0 */
  }
  pthread_mutex_unlock(&r->mu);
  return id;
}

/* The series of lv in metric id, created if missing; NULL if the id is bad or the table full. */
static series *series_get(prom_registry *r, int id, const char *lv) {
  if (id < 0 || id >= r->n) return NULL;
  metric *m = &r->m[id];
  if (!m->label) return &m->s[0];
  if (!lv) return NULL;
  for (int i = 0; i < m->n_series; i++)
    if (strcmp(m->s[i].label_value, lv) == 0) return &m->s[i];
  if (m->n_series >= PROM_MAX_SERIES) return NULL;
  series *s = &m->s[m->n_series++];
  s->label_value = strdup(lv);
  s->value = 0;
  return s;
}

void prom_add(prom_registry *r, int id, const char *lv, double v) {
  if (!(v >= 0)) return; /* a counter never goes down */
  pthread_mutex_lock(&r->mu);
  series *s = series_get(r, id, lv);
  if (s) s->value += v;
  pthread_mutex_unlock(&r->mu);
}

void prom_set(prom_registry *r, int id, const char *lv, double v) {
  pthread_mutex_lock(&r->mu);
  series *s = series_get(r, id, lv);
  if (s) s->value = v;
  pthread_mutex_unlock(&r->mu);
}

void prom_observe(prom_registry *r, int id, double v) {
  pthread_mutex_lock(&r->mu);
  if (id >= 0 && id < r->n && r->m[id].type == PROM_HISTOGRAM) {
    metric *m = &r->m[id];
    int b = 0;
    while (b < m->n_buckets && !(v <= m->bounds[b])) b++;
    m->counts[b]++;
    m->sum += v;
  }
  pthread_mutex_unlock(&r->mu);
}

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} text;

static void text_printf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(text *t, const char *fmt, ...) {
  if (t->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = 1;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = (t->cap + (size_t)n) * 2;
    char *q = realloc(t->p, cap);
    if (!q) {
      t->oom = 1;
      return;
    }
    t->p = q;
    t->cap = cap;
  }
}

/* Sample values as the format spells them: NaN, +Inf, -Inf, or the shortest exact decimal. */
static void text_value(text *t, double v) {
  if (isnan(v)) text_printf(t, "NaN");
  else if (isinf(v)) text_printf(t, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 1e15) text_printf(t, "%.0f", v);
  else {
    char buf[32];
    for (int prec = 1; prec <= 17; prec++) { /* the shortest text that reads back as v */
      snprintf(buf, sizeof buf, "%.*g", prec, v);
      if (strtod(buf, NULL) == v) break;
    }
    text_printf(t, "%s", buf);
  }
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void text_escaped(text *t, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\') text_printf(t, "\\\\");
    else if (*s == '\n') text_printf(t, "\\n");
    else if (quote && *s == '"') text_printf(t, "\\\"");
    else text_printf(t, "%c", *s);
  }
}

char *prom_render(prom_registry *r) {
  static const char *types[] = {"counter", "gauge", "histogram"};
  text t = {.p = malloc(4096), .cap = 4096};
  if (!t.p) return NULL;
  t.p[0] = 0;
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < r->n; i++) {
    const metric *m = &r->m[i];
    text_printf(&t, "# HELP %s ", m->name);
    text_escaped(&t, m->help, 0);
    text_printf(&t, "\n# TYPE %s %s\n", m->name, types[m->type]);
    if (m->type == PROM_HISTOGRAM) {
      unsigned long long cum = 0;
      for (int b = 0; b <= m->n_buckets; b++) {
        cum += m->counts[b];
        text_printf(&t, "%s_bucket{le=\"", m->name);
        text_value(&t, b < m->n_buckets ? m->bounds[b] : INFINITY);
        text_printf(&t, "\"} %llu\n", cum);
      }
      text_printf(&t, "%s_sum ", m->name);
      text_value(&t, m->sum);
      text_printf(&t, "\n%s_count %llu\n", m->name, cum);
      continue;
    }
    for (int j = 0; j < m->n_series; j++) {
      text_printf(&t, "%s", m->name);
      if (m->label) {
        text_printf(&t, "{%s=\"", m->label);
        text_escaped(&t, m->s[j].label_value, 1);
        text_printf(&t, "\"}");
      }
      text_printf(&t, " ");
      text_value(&t, m->s[j].value);
      text_printf(&t, "\n");
    }
  }
  pthread_mutex_unlock(&r->mu);
  if (t.oom) {
    free(t.p);
    return NULL;
  }
  return t.p;
}
