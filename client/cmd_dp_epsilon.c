/* `fedlora dp-epsilon`: the (ε, δ) that DP-SGD / DP-FedAvg with given noise, sampling rate and
 * number of steps satisfies, by the RDP accountant (common/rdp.h). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "rdp.h"

#define MAX_ORDERS 4096

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora dp-epsilon --noise Z --rate Q --steps N --delta D [OPTIONS]\n"
          "  --noise Z          noise multiplier (noise std / clipping norm), > 0\n"
          "  --rate Q           sampling rate per step, in [0, 1]\n"
          "  --steps N          number of steps (rounds)\n"
          "  --delta D          target delta, in (0, 1)\n"
          "  --conversion C     'improved' (default; Balle et al. 2020) or 'classic' (Mironov 2017)\n"
          "  --orders LIST      comma-separated RDP orders > 1 (default: 1.1,1.2,...,10.9,12,...,63)\n"
          "  --json             print a JSON object instead of a sentence\n");
}

/* JSON has no inf or NaN: an unbounded ε (and its undefined order) is reported as null. */
static json_t *json_number(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static int parse_double(const char *option, const char *text, double *out) {
  char *end;
  errno = 0;
  *out = strtod(text, &end);
  if (errno || end == text || *end != '\0' || isnan(*out)) {
    fprintf(stderr, "fedlora dp-epsilon: %s expects a number, got '%s'\n", option, text);
    return -1;
  }
  return 0;
}

static int parse_orders(const char *text, double *orders, int *n) {
  *n = 0;
  const char *p = text;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char item[64];
    if (len == 0 || len >= sizeof item) {
      fprintf(stderr, "fedlora dp-epsilon: --orders: bad item #%d in '%s'\n", *n + 1, text);
      return -1;
    }
    memcpy(item, p, len);
    item[len] = '\0';
    if (*n == MAX_ORDERS) {
      fprintf(stderr, "fedlora dp-epsilon: --orders: more than %d orders\n", MAX_ORDERS);
      return -1;
    }
    if (parse_double("--orders", item, &orders[*n]) != 0) return -1;
    if (!(orders[*n] > 1.0)) {
      fprintf(stderr, "fedlora dp-epsilon: --orders: every order must be > 1, got %s\n", item);
      return -1;
    }
    (*n)++;
    if (!comma) return 0;
    p = comma + 1;
  }
}

int cmd_dp_epsilon(int argc, char **argv) {
  static const struct option options[] = {
      {"noise", required_argument, NULL, 'z'}, {"rate", required_argument, NULL, 'q'},
      {"steps", required_argument, NULL, 'n'}, {"delta", required_argument, NULL, 'd'},
      {"conversion", required_argument, NULL, 'c'}, {"orders", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
  };
  double noise = NAN, rate = NAN, steps = NAN, delta = NAN;
  rdp_conversion conversion = RDP_CONVERSION_IMPROVED;
  static double orders[MAX_ORDERS], rdp[MAX_ORDERS];
  int n_orders = 0, json = 0, opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    int bad = 0;
    switch (opt) {
      case 'z': bad = parse_double("--noise", optarg, &noise); break;
      case 'q': bad = parse_double("--rate", optarg, &rate); break;
      case 'n': bad = parse_double("--steps", optarg, &steps); break;
      case 'd': bad = parse_double("--delta", optarg, &delta); break;
      case 'o': bad = parse_orders(optarg, orders, &n_orders); break;
      case 'j': json = 1; break;
      case 'c':
        if (strcmp(optarg, "classic") == 0) conversion = RDP_CONVERSION_CLASSIC;
        else if (strcmp(optarg, "improved") == 0) conversion = RDP_CONVERSION_IMPROVED;
        else {
          fprintf(stderr, "fedlora dp-epsilon: --conversion must be 'classic' or 'improved', got '%s'\n", optarg);
          bad = 1;
        }
        break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
    if (bad) return 2;
  }
  if (optind < argc) {
    fprintf(stderr, "fedlora dp-epsilon: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (isnan(noise) || isnan(rate) || isnan(steps) || isnan(delta)) {
    fprintf(stderr, "fedlora dp-epsilon: --noise, --rate, --steps and --delta are all required\n");
    usage(stderr);
    return 2;
  }
  if (!(noise > 0.0) || isinf(noise)) {
    fprintf(stderr, "fedlora dp-epsilon: --noise must be finite and > 0, got %g\n", noise);
    return 2;
  }
  if (!(rate >= 0.0 && rate <= 1.0)) {
    fprintf(stderr, "fedlora dp-epsilon: --rate must be in [0, 1], got %g\n", rate);
    return 2;
  }
  if (!(steps >= 0.0 && steps <= 1e15) || steps != floor(steps)) {
    fprintf(stderr, "fedlora dp-epsilon: --steps must be a whole number >= 0, got %g\n", steps);
    return 2;
  }
  if (!(delta > 0.0 && delta < 1.0)) {
    fprintf(stderr, "fedlora dp-epsilon: --delta must be in (0, 1), got %g\n", delta);
    return 2;
  }
  if (n_orders == 0) {
    rdp_default_orders(orders);
    n_orders = RDP_DEFAULT_ORDER_COUNT;
  }
  if (rdp_compute(rate, noise, (long)steps, orders, n_orders, rdp) != 0) return 1;
  double order;
  double eps = rdp_epsilon(orders, rdp, n_orders, delta, conversion, &order);
  const char *conversion_name = conversion == RDP_CONVERSION_CLASSIC ? "classic" : "improved";
  if (json) {
    json_t *o = json_pack("{s:o, s:o, s:f, s:f, s:I, s:f, s:s}", "epsilon", json_number(eps), "order",
                          json_number(order), "delta", delta, "noise_multiplier", noise, "steps", (json_int_t)steps,
                          "sampling_rate", rate, "conversion", conversion_name);
    char *text = json_dumps(o, JSON_REAL_PRECISION(15) | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    free(text);
    json_decref(o);
  } else if (isinf(eps)) {
    printf("epsilon = inf: no order gives a finite bound (delta = %g, %s conversion)\n", delta, conversion_name);
  } else {
    printf("epsilon = %.12g at order %g (delta = %g, %s conversion)\n", eps, order, delta, conversion_name);
  }
  double lowest = orders[0], highest = orders[0];
  for (int i = 1; i < n_orders; i++) {
    lowest = fmin(lowest, orders[i]);
    highest = fmax(highest, orders[i]);
  }
  if (n_orders > 1 && (order == lowest || order == highest))
    fprintf(stderr, "fedlora dp-epsilon: the best order is the %s one given; a wider range of orders may give a "
                    "smaller epsilon\n", order == lowest ? "smallest" : "largest");
  return 0;
}
