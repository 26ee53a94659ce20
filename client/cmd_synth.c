/* `fedlora synth`: write a site's synthetic prompt/completion records, or generic pretraining text,
 * as JSON Lines. The same arguments always give the same bytes. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "fsutil.h"
#include "synth.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora synth --site NAME --records N --seed S --out FILE.jsonl\n"
          "       fedlora synth --kind generic --records N --seed S --out FILE.jsonl\n"
          "  --site NAME     cardiology, oncology or paediatrics: {\"prompt\", \"completion\"} records whose\n"
          "                  completions follow fixed rules from the prompt's values\n"
          "  --kind K        site (default) or generic: {\"text\"} stories and everyday prose for pretraining,\n"
          "                  which belongs to no site (use a different --seed per holder)\n"
          "  --records N     how many records\n"
          "  --seed S        record i depends only on (site or kind, S, i)\n"
          "  --out FILE      written atomically; '-' is stdout\n"
          "The data is synthetic and its clinical rules are simplified: it is not medical guidance.\n");
}

int cmd_synth(int argc, char **argv) {
  static const struct option options[] = {
      {"site", required_argument, NULL, 's'}, {"kind", required_argument, NULL, 'k'},
      {"records", required_argument, NULL, 'n'}, {"seed", required_argument, NULL, 'S'},
      {"out", required_argument, NULL, 'o'},  {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *site = NULL, *kind = "site", *out_path = NULL;
  long records = -1, seed = -1;
  int opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    int bad = 0;
    switch (opt) {
      case 's': site = optarg; break;
      case 'k': kind = optarg; break;
      case 'n': bad = arg_long("synth", "--records", optarg, 0, 1L << 40, &records); break;
      case 'S': bad = arg_long("synth", "--seed", optarg, 0, 0x7FFFFFFFFFFFFFFFL, &seed); break;
      case 'o': out_path = optarg; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
    if (bad) return 2;
  }
  int generic = !strcmp(kind, "generic");
  if (!generic && strcmp(kind, "site") != 0) {
    fprintf(stderr, "fedlora synth: --kind expects site or generic, got '%s'\n", kind);
    return 2;
  }
  if (optind != argc || records < 0 || seed < 0 || !out_path || (!generic && !site)) {
    fprintf(stderr, "fedlora synth: %s\n",
            optind != argc ? "unexpected argument"
                           : "--records, --seed, --out and (unless --kind generic) --site are required");
    usage(stderr);
    return 2;
  }
  if (generic && site) {
    fprintf(stderr, "fedlora synth: --kind generic takes no --site: generic text belongs to no department "
                    "(give each holder its own --seed)\n");
    return 2;
  }
  int source = generic ? SYNTH_GENERIC : synth_source_parse(site);
  if (source < 0 || (!generic && source == SYNTH_GENERIC)) {
    fprintf(stderr, "fedlora synth: --site expects cardiology, oncology or paediatrics, got '%s'\n", site);
    return 2;
  }

  char err[1024];
  if (!strcmp(out_path, "-")) {
    if (synth_write(stdout, source, (uint64_t)seed, records, err, sizeof err) == 0 && fflush(stdout) == 0) return 0;
    fprintf(stderr, "fedlora synth: %s\n", err);
    return 1;
  }
  atomic_file af;
  if (atomic_file_open(&af, out_path, err, sizeof err) != 0) {
    fprintf(stderr, "fedlora synth: %s\n", err);
    return 1;
  }
  if (synth_write(af.fp, source, (uint64_t)seed, records, err, sizeof err) != 0) {
    atomic_file_abort(&af);
    fprintf(stderr, "fedlora synth: %s: %s\n", out_path, err);
    return 1;
  }
  if (atomic_file_commit(&af, err, sizeof err) != 0) {
    fprintf(stderr, "fedlora synth: %s\n", err);
    return 1;
  }
  return 0;
}
