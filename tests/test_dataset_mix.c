/* Mixtures: draw frequencies within tolerance of the weights, the same sequence for the same seed,
 * each source handing out whole epochs of its windows; "path:weight" lists. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "harness.h"

enum { T = 4 };

/* A source whose windows are told apart by their first input: window w of source s starts with
 * 1000 s + w (ids records, all counted). */
static void source_build(dataset *d, int s, int n_windows) {
  memset(d, 0, sizeof *d);
  d->n = (size_t)n_windows * T + 1;
  d->cap = d->n;
  d->tokens = malloc(sizeof(int) * d->n);
  d->counted = malloc(d->n);
  for (size_t i = 0; i < d->n; i++) {
    d->tokens[i] = i % T == 0 ? 1000 * s + (int)(i / T) : 1;
    d->counted[i] = 1;
  }
  char err[256];
  CHECK(dataset_index(d, T, "source", err, sizeof err) == 0);
  CHECK_EQ_INT(d->n_windows, n_windows);
}

int main(void) {
  dataset src[3];
  const int windows[3] = {5, 3, 7};
  for (int s = 0; s < 3; s++) source_build(&src[s], s, windows[s]);
  const dataset *sources[3] = {&src[0], &src[1], &src[2]};
  const double weights[3] = {3.0, 1.0, 2.0};
  char err[256];

  enum { DRAWS = 60000 };
  data_mixture a, b, c;
  CHECK(mixture_build(&a, sources, weights, 3, 1, 42, err, sizeof err) == 0);
  CHECK(mixture_build(&b, sources, weights, 3, 1, 42, err, sizeof err) == 0);
  CHECK(mixture_build(&c, sources, weights, 3, 1, 43, err, sizeof err) == 0);
  CHECK_EQ_INT(mixture_windows(&a), 15);
  long count[3] = {0};
  int in_a[T], in_b[T], in_c[T], tg[T], same = 1, differs = 0, epochs_ok = 1;
  float mk[T];
  /* per source, the windows of the current epoch seen so far */
  int seen[3][8] = {{0}};
  long drawn[3] = {0};
  for (long j = 0; j < DRAWS; j++) {
    int s = mixture_next(&a, in_a, tg, mk);
    int sb = mixture_next(&b, in_b, tg, mk);
    mixture_next(&c, in_c, tg, mk);
    same &= s == sb && in_a[0] == in_b[0];
    differs |= in_a[0] != in_c[0];
    count[s]++;
    CHECK_EQ_INT(s, mixture_source(&a, (uint64_t)j));
    int w = in_a[0] - 1000 * s;
    if (w < 0 || w >= windows[s] || seen[s][w]) epochs_ok = 0;
    else seen[s][w] = 1;
    if (++drawn[s] % windows[s] == 0) memset(seen[s], 0, sizeof seen[s]);
  }
  CHECK(same);
  CHECK(differs);
  CHECK_MSG(epochs_ok, "a source repeated a window within an epoch");
  /* sd of a frequency near 0.5 over 60000 draws is 0.002; 0.01 is five of them */
  for (int s = 0; s < 3; s++)
    CHECK_MSG(fabs((double)count[s] / DRAWS - weights[s] / 6.0) < 0.01, "source %d drawn %.4f of the time, weight %.4f",
              s, (double)count[s] / DRAWS, weights[s] / 6.0);
  mixture_free(&a);
  mixture_free(&b);
  mixture_free(&c);

  /* One source without shuffle hands out its windows in file order, epoch after epoch. */
  data_mixture one;
  const double w1 = 1.0;
  CHECK(mixture_build(&one, sources, &w1, 1, 0, 7, err, sizeof err) == 0);
  int in[T];
  for (int j = 0; j < 12; j++) {
    CHECK_EQ_INT(mixture_next(&one, in, tg, mk), 0);
    CHECK_EQ_INT(in[0], j % 5);
  }
  mixture_free(&one);

  const double bad[2] = {1.0, 0.0};
  CHECK(mixture_build(&one, sources, bad, 2, 1, 7, err, sizeof err) == -1);
  CHECK_STR_CONTAINS(err, "weights must be finite and > 0");

  source_list l;
  CHECK(source_list_parse(&l, "a.jsonl:3,b.txt:0.5,c.ids,dir/data:v2.txt", err, sizeof err) == 0);
  CHECK_EQ_INT(l.n, 4);
  if (l.n == 4) {
    CHECK(!strcmp(l.paths[0], "a.jsonl") && l.weights[0] == 3.0);
    CHECK(!strcmp(l.paths[1], "b.txt") && l.weights[1] == 0.5);
    CHECK(!strcmp(l.paths[2], "c.ids") && l.weights[2] == 1.0);
    CHECK(!strcmp(l.paths[3], "dir/data:v2.txt") && l.weights[3] == 1.0);
  }
  source_list_free(&l);
  CHECK(source_list_parse(&l, "a.jsonl:0", err, sizeof err) == -1);
  CHECK_STR_CONTAINS(err, "a weight must be a finite number > 0");
  CHECK(source_list_parse(&l, ":2", err, sizeof err) == -1);
  CHECK_STR_CONTAINS(err, "an empty path");
  CHECK(source_list_parse(&l, ",", err, sizeof err) == -1);
  for (int s = 0; s < 3; s++) dataset_free(&src[s]);
  return harness_finish();
}
