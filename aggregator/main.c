/* fedlora-aggregator: the operator's side of a federated LoRA run. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agg_config.h"
#include "federation.h"
#include "log.h"

static federation *running;

static void on_signal(int sig) {
  if (!running) return;
  if (sig == SIGHUP)
    federation_request_reload(running);
  else
    federation_request_stop(running);
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora-aggregator --config FILE.ini [--set section.key=value ...] [--print-config]\n"
          "\n"
          "Runs the aggregator of a federated LoRA run: admits the sites listed in [server] allowed_clients\n"
          "over mutual TLS, hands them the run plan, opens rounds, checks and averages their updates, and\n"
          "commits each round's global adapter to [server] state_dir. Restarted on the same state_dir, it\n"
          "resumes from the last committed round. Exits 0 once every round is committed and the sites\n"
          "have been told, or on SIGINT/SIGTERM. SIGHUP rereads [server] cert, key, client_ca and crl and,\n"
          "once they check out, uses them for new connections without stopping the run.\n"
          "\n"
          "  --config FILE        INI configuration (see examples/aggregator.ini)\n"
          "  --set S.K=V          override one key, e.g. --set rounds.total=5 (repeatable)\n"
          "  --print-config       print the effective configuration and exit\n"
          "  --log-format F       text (default) or json: one object per line (ts, level, program, msg)\n"
          "  --log-level L        debug, info, warn, error or off; overrides the configuration's log_level\n"
          "  --help-config        list every key with its default and meaning\n"
          "  --version            print the version\n");
}

int main(int argc, char **argv) {
  log_set_program("fedlora-aggregator");
  config_cli cli = {0};
  log_cli logs = LOG_CLI_INIT;
  char err[1024];
  for (int i = 1; i < argc; i++) {
    int took = config_cli_take(&cli, argc, argv, &i, err, sizeof err);
    if (took < 0) {
      fprintf(stderr, "fedlora-aggregator: %s\n", err);
      return 2;
    }
    if (took) continue;
    if ((took = log_cli_take(&logs, argc, argv, &i, err, sizeof err)) != 0) {
      if (took > 0) continue;
      fprintf(stderr, "fedlora-aggregator: %s\n", err);
      return 2;
    }
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--help-config")) {
      config_describe(&agg_config_schema, stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--version")) {
      printf("fedlora-aggregator %s\n", FEDLORA_VERSION);
      return 0;
    }
    fprintf(stderr, "fedlora-aggregator: unknown option '%s'\n", argv[i]);
    usage(stderr);
    return 2;
  }
  if (!cli.path && cli.n_sets == 0) {
    usage(stderr);
    return 2;
  }
  agg_config cfg;
  if (agg_config_load(&cfg, cli.path, cli.sets, cli.n_sets, err, sizeof err) != 0) {
    fprintf(stderr, "fedlora-aggregator: %s\n", err);
    return 2;
  }
  if (cli.print) {
    config_print(&agg_config_schema, &cfg, stdout);
    agg_config_free(&cfg);
    return 0;
  }
  log_cli_apply(&logs, cfg.server.log_level);
  federation *f = federation_start(&cfg, err, sizeof err);
  if (!f) {
    log_error("%s", err);
    agg_config_free(&cfg);
    return 1;
  }
  running = f;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  federation_wait(f);
  running = NULL;
  federation_stop(f);
  agg_config_free(&cfg);
  log_info("stopped");
  return 0;
}
