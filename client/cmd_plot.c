/* `fedlora plot`: a federated run's rounds at a glance, drawn from the aggregator's metrics.jsonl with PLplot. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <plplot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"

enum { MAX_SITES = 64 };

/* One column per committed round, in file order; NAN marks a figure the round does not have. */
typedef struct {
  int n, cap, n_sites;
  char *sites[MAX_SITES];
  double *round;         // (n)
  double *pooled;        // (n) weighted validation loss of the global adapter
  double *participants;  // (n) sites whose update was aggregated
  double *epsilon;       // (n) DP epsilon spent so far
  double *site_loss;     // (MAX_SITES, cap) each site's val_loss_before, row per site
} rounds;

static void free_rounds(rounds *r) {
  for (int s = 0; s < r->n_sites; s++) free(r->sites[s]);
  free(r->round);
  free(r->pooled);
  free(r->participants);
  free(r->epsilon);
  free(r->site_loss);
}

static int rounds_grow(rounds *r) {
  int cap = r->cap ? 2 * r->cap : 16;
  double **cols[] = {&r->round, &r->pooled, &r->participants, &r->epsilon};
  for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
    double *p = realloc(*cols[i], (size_t)cap * sizeof(double));
    if (!p) return -1;
    *cols[i] = p;
  }
  double *loss = malloc((size_t)MAX_SITES * cap * sizeof(double));
  if (!loss) return -1;
  for (int s = 0; s < MAX_SITES; s++)
    for (int i = 0; i < cap; i++) loss[(size_t)s * cap + i] = i < r->n ? r->site_loss[(size_t)s * r->cap + i] : NAN;
  free(r->site_loss);
  r->site_loss = loss;
  r->cap = cap;
  return 0;
}

static double number_or_nan(json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

static int site_index(rounds *r, const char *name) {
  for (int s = 0; s < r->n_sites; s++)
    if (strcmp(r->sites[s], name) == 0) return s;
  if (r->n_sites == MAX_SITES) return -1;
  r->sites[r->n_sites] = strdup(name);
  return r->sites[r->n_sites] ? r->n_sites++ : -1;
}

/* One metrics.jsonl line into column r->n; errors name the line and the field. */
static int rounds_add(rounds *r, json_t *line, const char *path, int lineno) {
  json_t *round = json_object_get(line, "round"), *sites = json_object_get(line, "sites");
  if (!json_is_integer(round)) {
    fprintf(stderr, "fedlora plot: %s:%d: field \"round\" must be an integer\n", path, lineno);
    return -1;
  }
  if (r->n == r->cap && rounds_grow(r) != 0) {
    fprintf(stderr, "fedlora plot: out of memory at %s:%d\n", path, lineno);
    return -1;
  }
  int i = r->n;
  json_t *submitted = json_object_get(line, "submitted");
  r->round[i] = (double)json_integer_value(round);
  r->pooled[i] = number_or_nan(json_object_get(line, "val_loss"));
  r->participants[i] = json_is_array(submitted) ? (double)json_array_size(submitted) : NAN;
  r->epsilon[i] = number_or_nan(json_object_get(json_object_get(line, "dp"), "epsilon"));
  const char *name;
  json_t *site;
  json_object_foreach(sites, name, site) {
    int s = site_index(r, name);
    if (s < 0) {
      fprintf(stderr, "fedlora plot: %s:%d: more than %d sites are not plotted\n", path, lineno, MAX_SITES);
      return -1;
    }
    r->site_loss[(size_t)s * r->cap + i] = number_or_nan(json_object_get(site, "val_loss_before"));
  }
  r->n++;
  return 0;
}

static int rounds_read(rounds *r, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "fedlora plot: cannot read %s: %s\n", path, strerror(errno));
    return -1;
  }
  char *buf = NULL;
  size_t len = 0;
  int lineno = 0, rc = 0;
  while (rc == 0 && getline(&buf, &len, f) != -1) {
    lineno++;
    if (strspn(buf, " \t\r\n") == strlen(buf)) continue;
    json_error_t jerr;
    json_t *line = json_loads(buf, 0, &jerr);
    if (!line) {
      fprintf(stderr, "fedlora plot: %s:%d:%d: %s\n", path, lineno, jerr.column, jerr.text);
      rc = -1;
    } else {
      rc = rounds_add(r, line, path, lineno);
      json_decref(line);
    }
  }
  free(buf);
  fclose(f);
  if (rc == 0 && r->n == 0) {
    fprintf(stderr, "fedlora plot: %s has no rounds yet\n", path);
    rc = -1;
  }
  return rc;
}

/* The finite points of a series, compacted so a round a site missed does not break the line to zero. */
static int finite_points(const double *x, const double *y, int n, double *xo, double *yo) {
  int m = 0;
  for (int i = 0; i < n; i++)
    if (isfinite(y[i])) xo[m] = x[i], yo[m++] = y[i];
  return m;
}

static int any_finite(const double *y, int n) {
  for (int i = 0; i < n; i++)
    if (isfinite(y[i])) return 1;
  return 0;
}

static const double *site_series(const rounds *r, int s) { return r->site_loss + (size_t)s * r->cap; }

/* Under secure aggregation the aggregator knows no site's own loss (only the pooled one), and with
 * DP on top not even that: a site without a loss is left out of the legend, and a run without any
 * loss gets no loss panel. */
static int sites_with_loss(const rounds *r) {
  int n = 0;
  for (int s = 0; s < r->n_sites; s++) n += any_finite(site_series(r, s), r->n);
  return n;
}

static int losses_known(const rounds *r) { return any_finite(r->pooled, r->n) || sites_with_loss(r) > 0; }

static void range_update(const double *y, int n, double *lo, double *hi) {
  for (int i = 0; i < n; i++)
    if (isfinite(y[i])) *lo = fmin(*lo, y[i]), *hi = fmax(*hi, y[i]);
}

/* Axes of one panel, its y range padded so the lines do not run along the frame. */
static void panel_begin(const rounds *r, double lo, double hi, const char *ylabel, const char *title) {
  double pad = hi > lo ? 0.08 * (hi - lo) : fmax(0.5, 0.1 * fabs(hi));
  double xlo = r->round[0], xhi = r->round[0];
  range_update(r->round, r->n, &xlo, &xhi);
  pladv(0);
  plvpor(0.09, 0.78, 0.16, 0.86);
  plwind(xlo - 0.25, xhi + 0.25, lo - pad, hi + pad);
  plcol0(1);
  plwidth(1);
  pllsty(1);
  /* integer ticks only: rounds are whole numbers */
  plbox("bcnst", ceil((xhi - xlo + 1) / 10), 1, "bcnstv", 0, 0);
  pllab("round", ylabel, title);
}

static void series_draw(const rounds *r, const double *y, int color, int style, double width, double *xs,
                        double *ys) {
  int m = finite_points(r->round, y, r->n, xs, ys);
  plcol0(color);
  pllsty(style);
  plwidth(width);
  plline(m, xs, ys);
  plpoin(m, xs, ys, 17);
}

static void legend_draw(int n, const char **text, const int *colors, const int *styles, const double *widths) {
  PLINT opt[MAX_SITES + 1];
  for (int i = 0; i < n; i++) opt[i] = PL_LEGEND_LINE;
  PLFLT w, h;
  plwidth(1);
  pllsty(1);
  pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, PL_POSITION_RIGHT | PL_POSITION_OUTSIDE, 0.01, 0,
           0.06, 0, 1, 1, n, 1, n, opt, 0.8, 0.8, 2.0, 0, colors, text, NULL, NULL, NULL, NULL, colors, styles, widths,
           NULL, NULL, NULL, NULL);
}

/* A palette that stays apart on white: index 0 background, 1 axes and the pooled line, then the sites. */
static void palette_set(void) {
  static const int rgb[][3] = {{255, 255, 255}, {0, 0, 0},       {31, 119, 180}, {255, 127, 14},
                               {44, 160, 44},   {214, 39, 40},   {148, 103, 189}, {140, 86, 75},
                               {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  int n = sizeof rgb / sizeof *rgb;
  plscmap0n(n);
  for (int i = 0; i < n; i++) plscol0(i, rgb[i][0], rgb[i][1], rgb[i][2]);
}

static void loss_panel_draw(const rounds *r, double *xs, double *ys) {
  int site_colors = 10;  // palette entries 2..11
  double lo = INFINITY, hi = -INFINITY;
  range_update(r->pooled, r->n, &lo, &hi);
  for (int s = 0; s < r->n_sites; s++) range_update(site_series(r, s), r->n, &lo, &hi);
  panel_begin(r, lo, hi, "loss",
              sites_with_loss(r) ? "validation loss of the global adapter, per site and pooled"
                                 : "validation loss of the global adapter, pooled (no site's own: secure aggregation)");
  const char *text[MAX_SITES + 1];
  int colors[MAX_SITES + 1], styles[MAX_SITES + 1], n = 0;
  double widths[MAX_SITES + 1];
  for (int s = 0; s < r->n_sites; s++) {
    if (!any_finite(site_series(r, s), r->n)) continue;
    /* beyond the palette, dashes tell sites of the same colour apart */
    colors[n] = 2 + s % site_colors, styles[n] = 1 + (s / site_colors) % 8, widths[n] = 2, text[n] = r->sites[s];
    series_draw(r, site_series(r, s), colors[n], styles[n], widths[n], xs, ys);
    n++;
  }
  if (any_finite(r->pooled, r->n)) {
    colors[n] = 1, styles[n] = 1, widths[n] = 3, text[n] = "pooled";
    series_draw(r, r->pooled, colors[n], styles[n], widths[n], xs, ys);
    n++;
  }
  legend_draw(n, text, colors, styles, widths);
}

static void plot_draw(const rounds *r, double *xs, double *ys) {
  if (losses_known(r)) loss_panel_draw(r, xs, ys);

  double lo = 0, hi = 1;
  range_update(r->participants, r->n, &lo, &hi);
  panel_begin(r, 0, hi, "sites", "participants per round");
  series_draw(r, r->participants, 2, 1, 2, xs, ys);

  if (!any_finite(r->epsilon, r->n)) return;
  lo = 0, hi = 0;
  range_update(r->epsilon, r->n, &lo, &hi);
  panel_begin(r, 0, hi, "#ge", "differential privacy: #ge spent");
  series_draw(r, r->epsilon, 5, 1, 2, xs, ys);
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora plot STATE_DIR -o FILE.png|FILE.svg\n"
          "  STATE_DIR     the aggregator's state directory (holding metrics.jsonl)\n"
          "  -o FILE       the picture; its extension picks PNG or SVG\n"
          "Panels: validation loss per site and pooled, participants per round, and epsilon spent when the run\n"
          "used differential privacy. Under secure aggregation the aggregator knows only the pooled loss, and\n"
          "with differential privacy on top no loss at all: the loss panel shows what there is, or is left out.\n");
}

/* The PLplot device for the output's extension, or NULL. */
static const char *device_for(const char *out) {
  const char *dot = strrchr(out, '.');
  if (!dot) return NULL;
  if (strcasecmp(dot, ".png") == 0) return "pngcairo";
  /* PLplot's own SVG driver keeps labels as <text>, so the file stays searchable */
  if (strcasecmp(dot, ".svg") == 0) return "svg";
  return NULL;
}

int cmd_plot(int argc, char **argv) {
  const char *dir = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else if (argv[i][0] != '-' && !dir) {
      dir = argv[i];
    } else {
      fprintf(stderr, "fedlora plot: unexpected argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (!dir || !out) {
    fprintf(stderr, "fedlora plot: STATE_DIR and -o FILE are required\n");
    usage(stderr);
    return 2;
  }
  const char *device = device_for(out);
  if (!device) {
    fprintf(stderr, "fedlora plot: -o %s: the extension must be .png or .svg\n", out);
    return 2;
  }
  char path[4096];
  if (snprintf(path, sizeof path, "%s/metrics.jsonl", dir) >= (int)sizeof path) {
    fprintf(stderr, "fedlora plot: state directory path too long: %s\n", dir);
    return 2;
  }
  rounds r = {0};
  if (rounds_read(&r, path) != 0) {
    free_rounds(&r);
    return 2;
  }
  /* PLplot exits the process when it cannot open its output; say why in our words first */
  FILE *probe = fopen(out, "w");
  if (!probe) {
    fprintf(stderr, "fedlora plot: cannot write %s: %s\n", out, strerror(errno));
    free_rounds(&r);
    return 1;
  }
  fclose(probe);
  double *xs = malloc((size_t)r.n * sizeof *xs), *ys = malloc((size_t)r.n * sizeof *ys);
  if (!xs || !ys) {
    fprintf(stderr, "fedlora plot: out of memory for %d rounds\n", r.n);
    free(xs), free(ys), free_rounds(&r);
    return 1;
  }
  int panels = losses_known(&r) + 1 + any_finite(r.epsilon, r.n);
  plsdev(device);
  plsfnam(out);
  plspage(0, 0, 1000, 330 * panels, 0, 0);
  palette_set();
  plssub(1, panels);
  plinit();
  plot_draw(&r, xs, ys);
  plend();
  printf("%s: %d rounds, %d sites, %s%s\n", out, r.n, r.n_sites,
         !losses_known(&r) ? "no losses" : sites_with_loss(&r) ? "losses per site and pooled" : "pooled loss only",
         any_finite(r.epsilon, r.n) ? ", epsilon" : "");
  free(xs), free(ys), free_rounds(&r);
  return 0;
}
