/* fedlora-client: a site's side of a federated LoRA run. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dist.h"
#include "log.h"
#include "site.h"
#include "site_config.h"
#include "site_dist.h"
#include "site_train.h"

static volatile int stop_requested, reload_requested;

static void on_signal(int sig) {
  if (sig == SIGHUP)
    reload_requested = 1;
  else
    stop_requested = 1;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora-client --config FILE.ini [--set section.key=value ...] [--print-config]\n"
          "\n"
          "Takes part in a federated LoRA run as one site: joins the aggregator in [client] server over\n"
          "mutual TLS, and for every round it is selected for downloads the global adapter, trains on the\n"
          "local data in [data] (which never leaves this machine) and sends back only the adapter update.\n"
          "The training settings come from the aggregator's plan. Restarted on the same state_dir it\n"
          "resumes where it stopped. SIGHUP rereads [client] cert, key and ca and, once they check out,\n"
          "uses them from the next call on without stopping the run.\n"
          "\n"
          "  --config FILE        INI configuration (see examples/client.ini)\n"
          "  --set S.K=V          override one key, e.g. --set client.threads=2 (repeatable)\n"
          "  --print-config       print the effective configuration and exit\n"
          "  --log-format F       text (default) or json: one object per line (ts, level, program, msg)\n"
          "  --log-level L        debug, info, warn, error or off; overrides the configuration's log_level\n"
          "  --simulate           load test: read no data, train nothing, send a seeded random update of\n"
          "                       the planned shape each round (declares %d training examples)\n"
          "  --help-config        list every key with its default and meaning\n"
          "  --version            print the version\n"
          "\n"
          "Exit status: 0 the run finished (final adapter in state_dir/final), 2 bad usage or\n"
          "configuration, 3 refused by the aggregator (certificate, allowed_clients, base model),\n"
          "4 local failure (model, data, disk), 5 stopped by a signal.\n",
          SITE_SIMULATED_EXAMPLES);
}

int main(int argc, char **argv) {
  log_set_program("fedlora-client");
  config_cli cli = {0};
  log_cli logs = LOG_CLI_INIT;
  char err[1024];
  int simulate = 0;
  for (int i = 1; i < argc; i++) {
    int took = config_cli_take(&cli, argc, argv, &i, err, sizeof err);
    if (took < 0) {
      fprintf(stderr, "fedlora-client: %s\n", err);
      return SITE_EXIT_USAGE;
    }
    if (took) continue;
    if ((took = log_cli_take(&logs, argc, argv, &i, err, sizeof err)) != 0) {
      if (took > 0) continue;
      fprintf(stderr, "fedlora-client: %s\n", err);
      return SITE_EXIT_USAGE;
    }
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--help-config")) {
      config_describe(&site_config_schema, stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--simulate")) {
      simulate = 1;
      continue;
    }
    if (!strcmp(argv[i], "--version")) {
      printf("fedlora-client %s\n", FEDLORA_VERSION);
      return 0;
    }
    fprintf(stderr, "fedlora-client: unknown option '%s'\n", argv[i]);
    usage(stderr);
    return SITE_EXIT_USAGE;
  }
  if (!cli.path && cli.n_sets == 0) {
    usage(stderr);
    return SITE_EXIT_USAGE;
  }
  site_config cfg;
  if (site_config_load(&cfg, cli.path, cli.sets, cli.n_sets, err, sizeof err) != 0) {
    fprintf(stderr, "fedlora-client: %s\n", err);
    return SITE_EXIT_USAGE;
  }
  cfg.simulate = simulate;
  if (cli.print) {
    config_print(&site_config_schema, &cfg, stdout);
    site_config_free(&cfg);
    return 0;
  }
  log_cli_apply(&logs, cfg.client.log_level);
  /* under mpirun: rank 0 is the site, the other ranks train with it (site_dist.h) */
  if (dist_init(&argc, &argv, err, sizeof err) != 0) {
    log_error("%s", err);
    site_config_free(&cfg);
    return SITE_EXIT_FAILED;
  }
  if (dist_rank() != 0) {
    char program[64];
    snprintf(program, sizeof program, "fedlora-client[rank %d]", dist_rank());
    log_set_program(program);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  /* A reload waits for the next call: the reads and writes it interrupts should just go on. */
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, NULL);
  int rc = dist_rank() == 0 ? site_run(&cfg, &stop_requested, &reload_requested) : site_dist_follow(&cfg);
  if (dist_rank() == 0) site_dist_stop(rc);
  site_config_free(&cfg);
  dist_finalize();
  return rc;
}
