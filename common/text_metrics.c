/* Exact match, F1, ROUGE-L and corpus BLEU-4 over lowercased whitespace words; see text_metrics.h. */
#include "text_metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "utf8.h"

typedef struct {
  const char *text; /* into the lowercased copy */
  size_t len;
  int *id;          /* where the word's dense id goes */
} word_ref;

/* One text as words: a lowercased copy, its word spans and, once numbered, their ids. */
typedef struct {
  char *lower;      /* (at most 2 * input length) lowercased bytes */
  word_ref *words;  /* (n) */
  int *ids;         /* (n) dense ids shared with the other text of the pair */
  size_t n;
} word_list;

static int is_separator(uint32_t cp) {
  if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return 1;
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static void word_list_free(word_list *w) {
  free(w->lower);
  free(w->words);
  free(w->ids);
  memset(w, 0, sizeof *w);
}

/* Lowercasing can lengthen a character (U+023A, 2 bytes, lowers to U+2C65, 3 bytes) by at most half. */
static int word_list_build(word_list *w, const char *text, size_t len) {
  memset(w, 0, sizeof *w);
  w->lower = malloc(len * 2 + 4);
  w->words = malloc(sizeof(word_ref) * (len / 2 + 1));
  w->ids = malloc(sizeof(int) * (len / 2 + 1));
  if (!w->lower || !w->words || !w->ids) return -1;
  const unsigned char *s = (const unsigned char *)text;
  size_t out = 0, start = 0;
  int in_word = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = utf8_char(s + i, len - i, &cp);
    if (n && is_separator(cp)) {
      if (in_word) w->words[w->n++] = (word_ref){w->lower + start, out - start, NULL};
      in_word = 0;
      i += n;
      continue;
    }
    if (!in_word) start = out;
    in_word = 1;
    if (!n) { /* an invalid byte stays itself */
      w->lower[out++] = (char)s[i++];
      continue;
    }
    out += utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), (unsigned char *)w->lower + out);
    i += n;
  }
  if (in_word) w->words[w->n++] = (word_ref){w->lower + start, out - start, NULL};
  for (size_t i = 0; i < w->n; i++) w->words[i].id = &w->ids[i];
  return 0;
}

static int word_cmp(const void *a, const void *b) {
  const word_ref *x = *(word_ref *const *)a, *y = *(word_ref *const *)b;
  int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Numbers the words of both lists so equal words get equal ids; n-grams then compare as int arrays. */
static int words_number(word_list *a, word_list *b) {
  size_t n = a->n + b->n;
  word_ref **all = malloc(sizeof(word_ref *) * (n ? n : 1));
  if (!all) return -1;
  for (size_t i = 0; i < a->n; i++) all[i] = &a->words[i];
  for (size_t i = 0; i < b->n; i++) all[a->n + i] = &b->words[i];
  qsort(all, n, sizeof *all, word_cmp);
  int id = 0;
  for (size_t i = 0; i < n; i++) {
    if (i && word_cmp(&all[i - 1], &all[i])) id++;
    *all[i]->id = id;
  }
  free(all);
  return 0;
}

typedef struct {
  const int *ids;
  int order;
} ngram_ctx;

static int ids_cmp(const int *x, const int *y, int order) {
  for (int k = 0; k < order; k++)
    if (x[k] != y[k]) return x[k] < y[k] ? -1 : 1;
  return 0;
}

static int ngram_cmp(const void *a, const void *b, void *arg) {
  const ngram_ctx *c = arg;
  return ids_cmp(c->ids + *(const size_t *)a, c->ids + *(const size_t *)b, c->order);
}

/* Sum over distinct n-grams of min(count in a, count in b): BLEU's clipped matches, and for n = 1
 * F1's common words. starts_a/starts_b are scratch of a->n and b->n entries. */
static size_t ngram_overlap(const word_list *a, const word_list *b, int order, size_t *starts_a, size_t *starts_b) {
  if (a->n < (size_t)order || b->n < (size_t)order) return 0;
  size_t na = a->n - order + 1, nb = b->n - order + 1;
  for (size_t i = 0; i < na; i++) starts_a[i] = i;
  for (size_t i = 0; i < nb; i++) starts_b[i] = i;
  ngram_ctx ca = {a->ids, order}, cb = {b->ids, order};
  qsort_r(starts_a, na, sizeof(size_t), ngram_cmp, &ca);
  qsort_r(starts_b, nb, sizeof(size_t), ngram_cmp, &cb);
  size_t i = 0, j = 0, common = 0;
  while (i < na && j < nb) {
    const int *x = a->ids + starts_a[i], *y = b->ids + starts_b[j];
    int c = ids_cmp(x, y, order);
    if (c < 0) {
      i++;
    } else if (c > 0) {
      j++;
    } else {
      size_t ri = 0, rj = 0;
      while (i + ri < na && !ids_cmp(a->ids + starts_a[i + ri], x, order)) ri++;
      while (j + rj < nb && !ids_cmp(b->ids + starts_b[j + rj], y, order)) rj++;
      common += ri < rj ? ri : rj;
      i += ri;
      j += rj;
    }
  }
  return common;
}

/* Longest common subsequence by the classic dynamic programme, one row at a time. */
static int lcs_length(const word_list *a, const word_list *b, size_t *out) {
  size_t *row = calloc(b->n + 1, sizeof(size_t));
  if (!row) return -1;
  for (size_t i = 0; i < a->n; i++) {
    size_t diag = 0; /* row[j - 1] of the previous i */
    for (size_t j = 1; j <= b->n; j++) {
      size_t up = row[j];
      row[j] = a->ids[i] == b->ids[j - 1] ? diag + 1 : (row[j] > row[j - 1] ? row[j] : row[j - 1]);
      diag = up;
    }
  }
  *out = row[b->n];
  free(row);
  return 0;
}

/* Harmonic mean of overlap / |pred| and overlap / |ref|, with the empty-text conventions. */
static double f_measure(size_t overlap, size_t pred, size_t ref) {
  if (!pred && !ref) return 1.0;
  if (!overlap) return 0.0;
  double p = (double)overlap / (double)pred, r = (double)overlap / (double)ref;
  return 2.0 * p * r / (p + r);
}

int text_metrics_add(text_metrics *m, const char *prediction, size_t prediction_len, const char *reference,
                     size_t reference_len, char *err, size_t err_size) {
  word_list pred, ref;
  size_t *starts_p = NULL, *starts_r = NULL;
  int rc = -1;
  int built = word_list_build(&pred, prediction, prediction_len);
  built |= word_list_build(&ref, reference, reference_len);
  if (built || words_number(&pred, &ref)) goto done;
  starts_p = malloc(sizeof(size_t) * (pred.n + 1));
  starts_r = malloc(sizeof(size_t) * (ref.n + 1));
  size_t lcs;
  if (!starts_p || !starts_r || lcs_length(&pred, &ref, &lcs)) goto done;
  int exact = pred.n == ref.n && (pred.n == 0 || memcmp(pred.ids, ref.ids, sizeof(int) * pred.n) == 0);
  m->exact_match_sum += exact;
  m->rouge_l_sum += f_measure(lcs, pred.n, ref.n);
  for (int n = 1; n <= BLEU_MAX_ORDER; n++) {
    size_t matches = ngram_overlap(&pred, &ref, n, starts_p, starts_r);
    if (n == 1) m->f1_sum += f_measure(matches, pred.n, ref.n);
    m->bleu_matches[n - 1] += (double)matches;
    m->bleu_totals[n - 1] += pred.n >= (size_t)n ? (double)(pred.n - n + 1) : 0.0;
  }
  m->prediction_words += (double)pred.n;
  m->reference_words += (double)ref.n;
  m->pairs++;
  rc = 0;
done:
  if (rc) snprintf(err, err_size, "text metrics: out of memory for texts of %zu and %zu bytes", prediction_len,
                   reference_len);
  free(starts_p);
  free(starts_r);
  word_list_free(&pred);
  word_list_free(&ref);
  return rc;
}

static double corpus_bleu(const text_metrics *m) {
  double c = m->prediction_words, r = m->reference_words, log_sum = 0.0, zero_scale = 1.0;
  if (c <= 0.0) return 0.0;
  for (int n = 0; n < BLEU_MAX_ORDER; n++) {
    if (m->bleu_totals[n] <= 0.0) return 0.0;
    double p;
    if (m->bleu_matches[n] > 0.0) {
      p = m->bleu_matches[n] / m->bleu_totals[n];
    } else {
      zero_scale *= 2.0;
      p = 1.0 / (zero_scale * m->bleu_totals[n]);
    }
    log_sum += log(p);
  }
  double brevity = c <= r ? exp(1.0 - r / c) : 1.0;
  return brevity * exp(log_sum / BLEU_MAX_ORDER);
}

text_scores text_metrics_scores(const text_metrics *m) {
  text_scores s = {0};
  if (!m->pairs) return s;
  double n = (double)m->pairs;
  s.pairs = m->pairs;
  s.exact_match = m->exact_match_sum / n;
  s.f1 = m->f1_sum / n;
  s.rouge_l = m->rouge_l_sum / n;
  s.bleu4 = corpus_bleu(m);
  return s;
}
