/* `fedlora status`: the run's state as the aggregator reports it, for the operator. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "federation_api.h"
#include "rpc.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora status --server HOST:PORT --ca FILE --cert FILE --key FILE [--server-name NAME] [--json]\n"
          "  --server HOST:PORT   the aggregator\n"
          "  --ca FILE            CA that issued the aggregator's certificate\n"
          "  --cert/--key FILE    a client certificate the aggregator's CA accepts (a site's or the operator's)\n"
          "  --server-name NAME   name to verify in the aggregator's certificate (default: the host)\n"
          "  --timeout S          seconds to wait for the answer (default 10)\n"
          "  --json               one JSON object instead of the table\n");
}

static const char *run_state_name(int s) {
  return s == FEDLORA__V1__STATUS__RUN_STATE__FINISHED  ? "finished"
         : s == FEDLORA__V1__STATUS__RUN_STATE__RUNNING ? "running"
                                                         : "waiting for sites";
}

static const char *round_state_name(int s) {
  static const char *names[] = {"none", "open", "aggregating", "committed"};
  return s >= 0 && s < 4 ? names[s] : "?";
}

int cmd_status(int argc, char **argv) {
  static const struct option options[] = {
      {"server", required_argument, NULL, 's'},      {"ca", required_argument, NULL, 'a'},
      {"cert", required_argument, NULL, 'c'},        {"key", required_argument, NULL, 'k'},
      {"server-name", required_argument, NULL, 'n'}, {"timeout", required_argument, NULL, 't'},
      {"json", no_argument, NULL, 'j'},              {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  rpc_client_config cfg = {0};
  double timeout = 10;
  int json = 0, opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    switch (opt) {
      case 's': cfg.target = optarg; break;
      case 'a': cfg.ca_file = optarg; break;
      case 'c': cfg.cert_file = optarg; break;
      case 'k': cfg.key_file = optarg; break;
      case 'n': cfg.server_name = optarg; break;
      case 't':
        if (sscanf(optarg, "%lf", &timeout) != 1 || timeout <= 0) {
          fprintf(stderr, "fedlora status: --timeout expects seconds, got '%s'\n", optarg);
          return 2;
        }
        break;
      case 'j': json = 1; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (!cfg.target || !cfg.ca_file || !cfg.cert_file || !cfg.key_file) {
    fprintf(stderr, "fedlora status: --server, --ca, --cert and --key are required\n");
    usage(stderr);
    return 2;
  }
  char err[1024];
  rpc_client *c = rpc_client_create(&cfg, err, sizeof err);
  if (!c) {
    fprintf(stderr, "fedlora status: %s\n", err);
    return 1;
  }
  Fedlora__V1__StatusRequest req = FEDLORA__V1__STATUS_REQUEST__INIT;
  Fedlora__V1__Status *st = NULL;
  rpc_status rs;
  if (rpc_unary(c, FED_GET_STATUS, &req.base, &fedlora__v1__status__descriptor, (ProtobufCMessage **)&st, timeout,
                &rs) != 0) {
    fprintf(stderr, "fedlora status: %s\n", rs.message);
    rpc_client_free(c);
    return 1;
  }
  time_t now = time(NULL);
  if (json) {
    printf("{\"run_id\":\"%s\",\"state\":\"%s\",\"round\":%u,\"total_rounds\":%u,\"round_state\":\"%s\","
           "\"rounds_committed\":%u,\"sites\":[",
           st->run_id, run_state_name(st->run_state), st->round, st->total_rounds, round_state_name(st->round_state),
           st->rounds_committed);
    for (size_t i = 0; i < st->n_sites; i++)
      printf("%s{\"name\":\"%s\",\"last_submitted_round\":%u,\"last_seen_unix\":%lld}", i ? "," : "",
             st->sites[i]->name, st->sites[i]->last_submitted_round, (long long)st->sites[i]->last_seen_unix);
    printf("]}\n");
  } else {
    printf("run %s: %s, round %u of %u (%s), %u committed\n", st->run_id, run_state_name(st->run_state), st->round,
           st->total_rounds, round_state_name(st->round_state), st->rounds_committed);
    printf("  %-24s %-16s %s\n", "site", "last submitted", "last seen");
    for (size_t i = 0; i < st->n_sites; i++) {
      const Fedlora__V1__SiteStatus *s = st->sites[i];
      char seen[32] = "never";
      if (s->last_seen_unix > 0) snprintf(seen, sizeof seen, "%llds ago", (long long)(now - s->last_seen_unix));
      printf("  %-24s %-16u %s\n", s->name, s->last_submitted_round, seen);
    }
  }
  protobuf_c_message_free_unpacked(&st->base, NULL);
  rpc_client_free(c);
  return 0;
}
