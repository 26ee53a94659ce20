/* INI configuration: defaults, file and --set precedence, every kind of error with its location,
 * relative paths, the printed configuration reloading to itself, and the shipped examples. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "agg_config.h"
#include "config.h"
#include "fsutil.h"
#include "harness.h"
#include "log.h"
#include "lora.h"
#include "optim.h"
#include "server_opt.h"
#include "site_config.h"

static const char *dir;  /* this run's scratch directory */
static char err[1024];

/* Writes text to dir/name and returns the path (static storage, one per call site is enough). */
static const char *write_ini(const char *name, const char *text) {
  static char paths[8][512];
  static int next;
  char *path = paths[next++ % 8];
  snprintf(path, 512, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  return path;
}

/* The required keys, so each test adds only what it is about. */
#define AGG_REQUIRED                                                             \
  "[server]\ncert = /pki/agg.pem\nkey = /pki/agg.key\nclient_ca = /pki/ca.pem\n" \
  "allowed_clients = alpha, beta, gamma\nstate_dir = /state\n[model]\nbase = /models/b\n"

/* Loads text as an aggregator file with the given --set list; expects failure and an error that
 * contains want (with "%s" standing for the file's path). */
static void expect_agg_error(const char *text, const char *const *sets, int n_sets, const char *want) {
  const char *path = write_ini("bad.ini", text);
  agg_config c;
  char expect[1024];
  snprintf(expect, sizeof expect, want, path);
  CHECK_EQ_INT(agg_config_load(&c, path, sets, n_sets, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, expect);
}

static void test_defaults(void) {
  const char *path = write_ini("min.ini", AGG_REQUIRED);
  agg_config c;
  CHECK_EQ_INT(agg_config_load(&c, path, NULL, 0, err, sizeof err), 0);
  CHECK_STR_CONTAINS(c.server.listen, "127.0.0.1:7443");
  CHECK_EQ_INT(c.server.allowed_clients.count, 3);
  CHECK(c.server.allowed_clients.count == 3 && strcmp(c.server.allowed_clients.items[2], "gamma") == 0);
  CHECK_EQ_INT(c.server.threads, 8);
  CHECK_EQ_INT(c.server.poll_seconds, 10);
  CHECK_EQ_INT(c.server.max_update_mb, 512);
  CHECK_EQ_INT(c.server.log_level, LOG_INFO);
  CHECK_EQ_INT(c.model.lora_rank, 8);
  CHECK_NEAR(c.model.lora_alpha, 16, 0);
  CHECK_EQ_INT(c.model.lora_target_mask, (1u << LORA_Q) | (1u << LORA_V));
  CHECK_NEAR(c.model.lora_dropout, 0, 0);
  CHECK_EQ_INT(c.model.use_rslora, 0);
  CHECK_EQ_INT(c.model.lora_mode, AGG_LORA_STANDARD);
  CHECK_EQ_INT(c.model.init_seed, 0);
  CHECK(c.rounds.total == 3 && c.rounds.min_clients == 1 && c.rounds.clients_per_round == 0);
  CHECK(c.rounds.deadline_s == 600 && c.rounds.wait_after_quorum_s == 30 && c.rounds.seed == 0);
  CHECK_EQ_INT(c.train.optimizer, OPTIM_ADAMW);
  CHECK_NEAR(c.train.lr, 1e-3, 0);
  CHECK(c.train.local_steps == 20 && c.train.local_epochs == 0 && c.train.batch == 8 && c.train.seq_len == 128);
  CHECK(c.train.weight_decay == 0 && c.train.fedprox_mu == 0 && c.train.grad_clip == 1.0);
  CHECK(c.train.beta1 == 0.9 && c.train.beta2 == 0.999 && c.train.eps == 1e-8 && c.train.warmup == 0);
  CHECK_EQ_INT(c.train.schedule, SCHEDULE_CONSTANT);
  CHECK_EQ_INT(c.aggregation.strategy, SERVER_OPT_FEDAVG);
  CHECK(c.aggregation.server_lr == 1.0 && c.aggregation.beta1 == 0.9 && c.aggregation.beta2 == 0.99 &&
        c.aggregation.tau == 1e-3);
  CHECK_EQ_INT(c.aggregation.weighting, AGG_WEIGHT_EXAMPLES);
  CHECK(c.privacy.secagg == 0 && c.privacy.dp == AGG_DP_OFF && c.privacy.dp_delta == 1e-5);
  CHECK(c.privacy.secagg_threshold == 0 && c.privacy.secagg_clip_range == 1.0 && c.privacy.secagg_scale == 1048576);
  server_opt_config so = agg_config_server_opt(&c);
  CHECK(so.strategy == SERVER_OPT_FEDAVG && so.server_lr == 1.0 && so.tau == 1e-3);
  CHECK_EQ_INT(server_opt_check(&so, err, sizeof err), 0);
  agg_config_free(&c);
  CHECK(c.server.cert == NULL && c.server.allowed_clients.items == NULL);
}

static void test_overrides(void) {
  const char *path = write_ini("ovr.ini", AGG_REQUIRED
                               "lora_rank = 4\nlora_targets = q, k, v ; inline comment\n"
                               "[train]\nlr = 0.5\n");
  const char *sets[] = {"model.lora_rank=16", "model.lora_targets=all", "train.lr=2e-4",
                        "model.lora_rank=32", "server.cert=rel/c.pem",  "aggregation.strategy=FedYogi",
                        "privacy.secagg=YES", "rounds.min_clients=2",   "model.base="};
  agg_config c;
  /* The last --set empties a required key: refused, naming the override. */
  CHECK_EQ_INT(agg_config_load(&c, path, sets, 9, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "--set model.base: required, got an empty value");
  CHECK_EQ_INT(agg_config_load(&c, path, sets, 8, err, sizeof err), 0);
  CHECK_EQ_INT(c.model.lora_rank, 32);  /* later --set wins over earlier --set and the file */
  CHECK_EQ_INT(c.model.lora_target_mask, LORA_TARGETS_ALL);
  CHECK(c.model.lora_targets.count == 1);  /* a --set list replaces, never appends */
  CHECK_NEAR(c.train.lr, 2e-4, 0);
  CHECK_STR_CONTAINS(c.server.cert, "rel/c.pem");
  CHECK(c.server.cert && strcmp(c.server.cert, "rel/c.pem") == 0);  /* --set paths stay as written */
  CHECK_EQ_INT(c.aggregation.strategy, SERVER_OPT_FEDYOGI);
  CHECK_EQ_INT(c.privacy.secagg, 1);
  agg_config_free(&c);

  const char *only_file[] = {"model.lora_targets=o_proj"};
  CHECK_EQ_INT(agg_config_load(&c, path, only_file, 1, err, sizeof err), 0);
  CHECK_EQ_INT(c.model.lora_rank, 4);
  CHECK_NEAR(c.train.lr, 0.5, 0);
  CHECK_EQ_INT(c.model.lora_target_mask, 1u << LORA_O);
  agg_config_free(&c);
  const char *file_list[] = {"train.lr=0.25"};
  CHECK_EQ_INT(agg_config_load(&c, path, file_list, 1, err, sizeof err), 0);
  CHECK_EQ_INT(c.model.lora_target_mask, (1u << LORA_Q) | (1u << LORA_K) | (1u << LORA_V));
  agg_config_free(&c);

  /* Without a file, everything can come from --set. */
  const char *all[] = {"server.cert=c",      "server.key=k", "server.client_ca=ca", "server.allowed_clients=x",
                       "server.state_dir=s", "model.base=b"};
  CHECK_EQ_INT(agg_config_load(&c, NULL, all, 6, err, sizeof err), 0);
  agg_config_free(&c);
  CHECK_EQ_INT(agg_config_load(&c, NULL, all, 5, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "[model] base: required, not set");
}

/* Each stored enum equals the engine's own parse of the name. */
static void test_enum_order(void) {
  static const char *const levels[] = {"debug", "info", "warn", "error"};
  static const char *const optims[] = {"adamw", "sgd"}, *const scheds[] = {"constant", "cosine"};
  char set[128];
  const char *sets[1] = {set};
  agg_config c;
  for (int i = 0; i < 4; i++) {
    snprintf(set, sizeof set, "server.log_level=%s", levels[i]);
    CHECK_EQ_INT(agg_config_load(&c, write_ini("enum.ini", AGG_REQUIRED), sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.server.log_level, log_level_parse(levels[i]));
    agg_config_free(&c);
  }
  const char *path = write_ini("enum.ini", AGG_REQUIRED);
  for (int i = 0; i < 2; i++) {
    snprintf(set, sizeof set, "train.optimizer=%s", optims[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.train.optimizer, optim_kind_parse(optims[i]));
    agg_config_free(&c);
    snprintf(set, sizeof set, "train.schedule=%s", scheds[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.train.schedule, schedule_kind_parse(scheds[i]));
    agg_config_free(&c);
  }
  for (int i = 0; server_opt_names[i]; i++) {
    snprintf(set, sizeof set, "aggregation.strategy=%s", server_opt_names[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.aggregation.strategy, server_opt_parse(server_opt_names[i]));
    agg_config_free(&c);
  }
  static const char *const weights[] = {"examples", "tokens", "uniform"};
  static const char *const lmodes[] = {"standard", "ffa"}, *const dps[] = {"off", "central"};
  for (int i = 0; i < 3; i++) {
    snprintf(set, sizeof set, "aggregation.weighting=%s", weights[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.aggregation.weighting, i);
    agg_config_free(&c);
  }
  for (int i = 0; i < 2; i++) {
    snprintf(set, sizeof set, "model.lora_mode=%s", lmodes[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.model.lora_mode, i);
    agg_config_free(&c);
    snprintf(set, sizeof set, "privacy.dp=%s", dps[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.privacy.dp, i);
    agg_config_free(&c);
  }
  /* Booleans in every spelling. */
  static const char *const yes[] = {"true", "ON", "yes", "1"}, *const no[] = {"false", "off", "No", "0"};
  for (int i = 0; i < 4; i++) {
    snprintf(set, sizeof set, "model.use_rslora=%s", yes[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.model.use_rslora, 1);
    agg_config_free(&c);
    snprintf(set, sizeof set, "model.use_rslora=%s", no[i]);
    CHECK_EQ_INT(agg_config_load(&c, path, sets, 1, err, sizeof err), 0);
    CHECK_EQ_INT(c.model.use_rslora, 0);
    agg_config_free(&c);
  }
}

static void test_file_errors(void) {
  expect_agg_error(AGG_REQUIRED "bogus = 1\n", NULL, 0,
                   "%s:9: [model] bogus: unknown key ([model] has base, lora_rank");
  expect_agg_error(
      AGG_REQUIRED "[sever]\nthreads = 2\n", NULL, 0,
      "%s:10: [sever]: unknown section (expected one of server, model, rounds, train, aggregation, privacy, audit, metrics)");
  expect_agg_error("threads = 2\n" AGG_REQUIRED, NULL, 0, "%s:1: threads: key outside any section");
  expect_agg_error(AGG_REQUIRED "[server]\nthreads = eight\n", NULL, 0,
                   "%s:10: [server] threads: expected an integer, got 'eight'");
  expect_agg_error(AGG_REQUIRED "[server]\nthreads = 4x\n", NULL, 0, "%s:10: [server] threads: expected an integer");
  expect_agg_error(AGG_REQUIRED "[server]\nthreads = 0\n", NULL, 0,
                   "%s:10: [server] threads: must be in [1, 256], got 0");
  expect_agg_error(AGG_REQUIRED "lora_dropout = 1\n", NULL, 0,
                   "%s:9: [model] lora_dropout: must be in [0, 1), got 1");
  expect_agg_error(AGG_REQUIRED "[train]\nlr = 0\n", NULL, 0, "%s:10: [train] lr: must be in (0, 10], got 0");
  expect_agg_error(AGG_REQUIRED "[train]\nlr = nan\n", NULL, 0, "%s:10: [train] lr: expected a number, got 'nan'");
  expect_agg_error(AGG_REQUIRED "[rounds]\nseed = -1\n", NULL, 0,
                   "%s:10: [rounds] seed: expected an unsigned integer, got '-1'");
  expect_agg_error(AGG_REQUIRED "[rounds]\nseed = 18446744073709551616\n", NULL, 0,
                   "%s:10: [rounds] seed: expected an unsigned integer");
  expect_agg_error(AGG_REQUIRED "[aggregation]\nstrategy = fedprox\n", NULL, 0,
                   "%s:10: [aggregation] strategy: expected one of fedavg, fedavgm, fedadam, fedyogi, fedadagrad, "
                   "got 'fedprox'");
  expect_agg_error(AGG_REQUIRED "use_rslora = maybe\n", NULL, 0,
                   "%s:9: [model] use_rslora: expected true/false, on/off, yes/no or 1/0, got 'maybe'");
  expect_agg_error(AGG_REQUIRED "lora_targets = q_proj, w_proj\n", NULL, 0,
                   "%s:9: [model] lora_targets: LoRA targets 'q_proj,w_proj': unknown module 'w_proj'");
  expect_agg_error(AGG_REQUIRED "lora_targets = ,\n", NULL, 0,
                   "%s:9: [model] lora_targets: required, got an empty value");
  expect_agg_error(AGG_REQUIRED "[server]\nthreads = 99999999999\n", NULL, 0,
                   "%s:10: [server] threads: expected an integer, got '99999999999'");
  expect_agg_error(AGG_REQUIRED "[server]\nlisten = localhost\n", NULL, 0,
                   "%s:10: [server] listen: expected host:port with a port in 1..65535");
  expect_agg_error(AGG_REQUIRED "[server]\nlisten = ::1:7443\n", NULL, 0,
                   "%s:10: [server] listen: expected host:port");
  expect_agg_error(AGG_REQUIRED "[server]\nlisten = h:70000\n", NULL, 0,
                   "%s:10: [server] listen: expected host:port");
  /* Found by fuzz_ini: a port that does not start with a digit was read through a NULL end. */
  expect_agg_error(AGG_REQUIRED "[server]\nlisten = localhost:\n", NULL, 0,
                   "%s:10: [server] listen: expected host:port");
  expect_agg_error(AGG_REQUIRED "[server]\nlisten = localhost:https\n", NULL, 0,
                   "%s:10: [server] listen: expected host:port");
  expect_agg_error(AGG_REQUIRED "[server]\nthreads = 2\nthreads = 3\n", NULL, 0,
                   "%s:11: [server] threads: set twice (first on line 10)");
  expect_agg_error(
      AGG_REQUIRED "[server]\nthreads = 2\n  4\n", NULL, 0,
      "%s:11: [server] threads: an indented line continues the value above it; only lists may span lines");
  expect_agg_error(AGG_REQUIRED "[server]\nthreads 2\n", NULL, 0, "%s:10: expected '[section]' or 'key = value'");
  expect_agg_error(AGG_REQUIRED "[server\nthreads = 2\n", NULL, 0, "%s:9: expected '[section]' or 'key = value'");
  /* A syntax error before a refused value is the one reported. */
  expect_agg_error("[server]\nnonsense\nthreads = 0\n" AGG_REQUIRED, NULL, 0, "%s:2: expected '[section]'");
  expect_agg_error("[server]\nallowed_clients = a, b, a\n", NULL, 0,
                   "%s:2: [server] allowed_clients: 'a' is listed twice");
  expect_agg_error("[server]\nallowed_clients = a,\n  threads = 4\n", NULL, 0,
                   "%s:3: [server] allowed_clients: item 'threads = 4' contains '='");
  /* Missing required keys name the file and the key. */
  expect_agg_error("[server]\ncert = c\n", NULL, 0, "%s: [server] key: required, not set");
  expect_agg_error(AGG_REQUIRED "[server]\nstate_dir =\n", NULL, 0, "%s:10: [server] state_dir: set twice");
  expect_agg_error(
      "[server]\ncert = c\nkey = k\nclient_ca = ca\nallowed_clients =\nstate_dir = s\n[model]\nbase = b\n", NULL, 0,
      "%s:5: [server] allowed_clients: required, got an empty value");
  /* A line over inih's limit would be split silently; it is refused instead. */
  char long_line[1024];
  snprintf(long_line, sizeof long_line, "%s[rounds]\ntotal = 3 ; %0250d\n", AGG_REQUIRED, 0);
  expect_agg_error(long_line, NULL, 0, "%s:10: line longer than 199 characters");
  const char *missing = "/nonexistent/agg.ini";
  agg_config c;
  CHECK_EQ_INT(agg_config_load(&c, missing, NULL, 0, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "/nonexistent/agg.ini: cannot open: No such file or directory");
}

static void test_set_errors(void) {
  const char *s1[] = {"server.threads"};
  expect_agg_error(AGG_REQUIRED, s1, 1, "--set server.threads: expected section.key=value");
  const char *s2[] = {"threads=3"};
  expect_agg_error(AGG_REQUIRED, s2, 1, "--set threads=3: expected section.key=value");
  const char *s3[] = {"server.thread=3"};
  expect_agg_error(AGG_REQUIRED, s3, 1, "--set server.thread: unknown key ([server] has listen, cert");
  const char *s4[] = {"srv.threads=3"};
  expect_agg_error(AGG_REQUIRED, s4, 1, "--set srv.threads: unknown section [srv]");
  const char *s5[] = {"train.lr=fast"};
  expect_agg_error(AGG_REQUIRED, s5, 1, "--set train.lr: expected a number, got 'fast'");
  const char *s6[] = {"rounds.total=0"};
  expect_agg_error(AGG_REQUIRED, s6, 1, "--set rounds.total: must be in [1, 1000000000], got 0");
  /* The file's error comes first even when a --set is also wrong. */
  expect_agg_error(AGG_REQUIRED "[server]\nthreads = 0\n", s6, 1, "%s:10: [server] threads: must be in");
}

static void test_cross_field(void) {
  expect_agg_error(AGG_REQUIRED "[rounds]\nmin_clients = 4\n", NULL, 0,
                   "%s:10: [rounds] min_clients: 4 exceeds the 3 site(s) in server.allowed_clients");
  const char *s1[] = {"rounds.min_clients=3"};
  expect_agg_error(AGG_REQUIRED "[rounds]\nclients_per_round = 2\n", s1, 1,
                   "%s:10: [rounds] clients_per_round: 2 is below rounds.min_clients = 3");
  expect_agg_error(AGG_REQUIRED "[rounds]\nclients_per_round = 5\n", NULL, 0,
                   "%s:10: [rounds] clients_per_round: 5 exceeds the 3 site(s)");
  expect_agg_error(AGG_REQUIRED "[train]\nlocal_epochs = 1\n", NULL, 0,
                   "%s: [train] local_steps: exactly one of local_steps (20) and local_epochs (1) must be > 0");
  expect_agg_error(AGG_REQUIRED "[train]\nlocal_steps = 0\n", NULL, 0, "%s:10: [train] local_steps: exactly one of");
  expect_agg_error(AGG_REQUIRED "[train]\nwarmup = 21\n", NULL, 0,
                   "%s:10: [train] warmup: 21 exceeds local_steps = 20");
  expect_agg_error(AGG_REQUIRED "[privacy]\nsecagg = on\n", NULL, 0,
                   "%s: [rounds] min_clients: secure aggregation needs at least 2");
  const char *s2[] = {"rounds.min_clients=2", "privacy.secagg_threshold=1"};
  expect_agg_error(AGG_REQUIRED "[privacy]\nsecagg = on\n", s2, 2,
                   "--set privacy.secagg_threshold: 1 must be 0 (automatic) or in [2, 3 sites]: above half the "
                   "sites, or an aggregator could unmask one site's update alone (and the sites refuse such a round)");
  /* 2 is above half of three sites (the ok file below), but half of four */
  const char *s2b[] = {"rounds.min_clients=2", "privacy.secagg_threshold=2", "server.allowed_clients=a,b,c,d"};
  expect_agg_error(AGG_REQUIRED "[privacy]\nsecagg = on\n", s2b, 3,
                   "--set privacy.secagg_threshold: 2 must be 0 (automatic) or in [3, 4 sites]");
  const char *s2c[] = {"rounds.min_clients=2", "privacy.secagg_threshold=3"};
  expect_agg_error(AGG_REQUIRED "[privacy]\nsecagg = on\n", s2c, 2,
                   "--set privacy.secagg_threshold: 3 exceeds rounds.min_clients = 2: a round opens with that many");
  const char *s3[] = {"rounds.min_clients=2", "privacy.secagg_scale=1e9"};
  expect_agg_error(
      AGG_REQUIRED "[privacy]\nsecagg = on\n", s3, 2,
      "--set privacy.secagg_scale: 1e+09 x secagg_clip_range 1 x 3 sites overflows the 32-bit masked sum");
  expect_agg_error(AGG_REQUIRED "[privacy]\ndp = distributed\n", NULL, 0,
                   "%s:10: [privacy] dp: distributed noise protects nothing without secagg = on");
  expect_agg_error(AGG_REQUIRED "[privacy]\ndp = central\ndp_noise_multiplier = 0\n", NULL, 0,
                   "%s:11: [privacy] dp_noise_multiplier: must be > 0 when dp is on");
  /* The same rules pass when satisfied. */
  const char *ok = write_ini("ok.ini", AGG_REQUIRED
                             "[rounds]\nmin_clients = 2\nclients_per_round = 3\n"
                             "[train]\nlocal_steps = 0\nlocal_epochs = 1.5\n"
                             "[privacy]\nsecagg = on\ndp = distributed\nsecagg_threshold = 2\n");
  agg_config c;
  CHECK_EQ_INT(agg_config_load(&c, ok, NULL, 0, err, sizeof err), 0);
  CHECK_NEAR(c.train.local_epochs, 1.5, 0);
  CHECK_EQ_INT(c.privacy.dp, AGG_DP_DISTRIBUTED);
  agg_config_free(&c);
}

static void test_paths_and_lists(void) {
  char sub[512];
  snprintf(sub, sizeof sub, "%s/conf", dir);
  CHECK_EQ_INT(fs_mkdir_p(sub, 0755, err, sizeof err), 0);
  const char *path = write_ini("conf/site.ini",
                               "[client]\nserver = [::1]:7443\ncert = pki/alpha.pem\nkey = ../keys/alpha.key\n"
                               "ca = /etc/fedlora/ca.pem\nstate_dir = .\n[model]\nbase = models/b\n"
                               "tokenizer =\n[data]\ntrain = data/alpha.jsonl\nformat = IDS\n");
  site_config s;
  CHECK_EQ_INT(site_config_load(&s, path, NULL, 0, err, sizeof err), 0);
  char want[1024];
  snprintf(want, sizeof want, "%s/pki/alpha.pem", sub);
  CHECK(s.client.cert && strcmp(s.client.cert, want) == 0);
  snprintf(want, sizeof want, "%s/../keys/alpha.key", sub);
  CHECK(s.client.key && strcmp(s.client.key, want) == 0);
  CHECK(s.client.ca && strcmp(s.client.ca, "/etc/fedlora/ca.pem") == 0);
  snprintf(want, sizeof want, "%s/.", sub);
  CHECK(s.client.state_dir && strcmp(s.client.state_dir, want) == 0);
  CHECK(s.model.tokenizer == NULL && s.data.val == NULL && s.client.server_name == NULL);
  CHECK_EQ_INT(s.data.format, 3);  /* ids */
  CHECK_EQ_INT(s.client.threads, 0);
  CHECK_NEAR(s.data.val_fraction, 0.1, 0);
  site_config_free(&s);

  /* A relative config path: its directory is made absolute from the working directory. */
  char *cwd = getcwd(NULL, 0);
  CHECK_EQ_INT(chdir(dir), 0);
  CHECK_EQ_INT(site_config_load(&s, "conf/site.ini", NULL, 0, err, sizeof err), 0);
  snprintf(want, sizeof want, "%s/pki/alpha.pem", sub);
  CHECK_MSG(s.client.cert && strcmp(s.client.cert, want) == 0, "cert %s, want %s", s.client.cert, want);
  site_config_free(&s);
  CHECK_EQ_INT(chdir(sub), 0);
  CHECK_EQ_INT(site_config_load(&s, "site.ini", NULL, 0, err, sizeof err), 0);
  CHECK_MSG(s.client.cert && strcmp(s.client.cert, want) == 0, "cert %s, want %s", s.client.cert, want);
  site_config_free(&s);
  CHECK_EQ_INT(chdir(cwd), 0);
  free(cwd);

  const char *bad_server = write_ini("conf/bad.ini", "[client]\nserver = 10.0.0.1\n");
  CHECK_EQ_INT(site_config_load(&s, bad_server, NULL, 0, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, ":2: [client] server: expected host:port");
  CHECK_EQ_INT(site_config_load(&s, NULL, NULL, 0, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "[client] server: required, not set");

  /* Lists continue on indented lines (a trailing comma is fine), and a long list prints over
   * several lines that reload to the same items. */
  expect_agg_error(AGG_REQUIRED "[server]\nallowed_clients = a\n", NULL, 0,
                   "%s:10: [server] allowed_clients: set twice");
  const char *cont2 = write_ini("cont2.ini",
                                "[server]\ncert = c\nkey = k\nclient_ca = ca\nstate_dir = s\n"
                                "allowed_clients = alpha,\n    beta,\n\tgamma\n[model]\nbase = b\n");
  agg_config c;
  expect_agg_error("[server]\nallowed_clients = a,\n  b\nallowed_clients = c\n", NULL, 0,
                   "%s:4: [server] allowed_clients: set twice (first on line 2)");
  CHECK_EQ_INT(agg_config_load(&c, cont2, NULL, 0, err, sizeof err), 0);
  CHECK_EQ_INT(c.server.allowed_clients.count, 3);
  CHECK(c.server.allowed_clients.count == 3 && strcmp(c.server.allowed_clients.items[1], "beta") == 0);
  agg_config_free(&c);
}

/* --print-config output is itself a configuration that loads to the same values. */
static void test_print_roundtrip(void) {
  char many[4096] = "server.allowed_clients=";
  for (int i = 0; i < 60; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "%shospital-%02d.example.org", i ? "," : "", i);
  const char *sets[] = {many,
                        "rounds.min_clients=7",
                        "train.lr=3e-4",
                        "rounds.seed=18446744073709551615",
                        "privacy.dp_delta=1e-7",
                        "aggregation.strategy=fedadam"};
  const char *path = write_ini("print.ini", AGG_REQUIRED);
  agg_config a, b;
  CHECK_EQ_INT(agg_config_load(&a, path, sets, 6, err, sizeof err), 0);
  char out1[512], out2[512];
  snprintf(out1, sizeof out1, "%s/printed1.ini", dir);
  snprintf(out2, sizeof out2, "%s/printed2.ini", dir);
  FILE *f = fopen(out1, "w");
  config_print(&agg_config_schema, &a, f);
  fclose(f);
  CHECK_EQ_INT(agg_config_load(&b, out1, NULL, 0, err, sizeof err), 0);
  CHECK_MSG(err[0] == '\0', "reloading the printed configuration: %s", err);
  CHECK_EQ_INT(b.server.allowed_clients.count, 60);
  CHECK_EQ_INT(b.rounds.min_clients, 7);
  CHECK(b.train.lr == a.train.lr && b.privacy.dp_delta == 1e-7);
  CHECK(b.rounds.seed == UINT64_MAX);
  CHECK_EQ_INT(b.aggregation.strategy, SERVER_OPT_FEDADAM);
  CHECK(b.server.cert && strcmp(b.server.cert, "/pki/agg.pem") == 0);
  f = fopen(out2, "w");
  config_print(&agg_config_schema, &b, f);
  fclose(f);
  char *t1 = NULL, *t2 = NULL;
  size_t n1 = 0, n2 = 0;
  FILE *r1 = fopen(out1, "r"), *r2 = fopen(out2, "r");
  CHECK(getdelim(&t1, &n1, '\0', r1) > 0 && getdelim(&t2, &n2, '\0', r2) > 0);
  CHECK(t1 && t2 && strcmp(t1, t2) == 0);
  CHECK_STR_CONTAINS(t1, "lr = 0.0003\n");
  CHECK_STR_CONTAINS(t1, "\n[privacy]\nsecagg = false\ndp = off\n");
  fclose(r1);
  fclose(r2);
  free(t1);
  free(t2);
  agg_config_free(&a);
  agg_config_free(&b);

  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  config_describe(&site_config_schema, mem);
  fclose(mem);
  CHECK_STR_CONTAINS(text, "[data]\n  train (path, required)\n");
  CHECK_STR_CONTAINS(text, "  val_fraction (double in [0, 1), default 0.1)\n");
  CHECK_STR_CONTAINS(text, "  format (enum: auto, jsonl, text, ids, default auto)");
  free(text);
}

static void test_examples(void) {
  agg_config a;
  const char *agg = harness_source("examples/aggregator.ini");
  CHECK_EQ_INT(agg_config_load(&a, agg, NULL, 0, err, sizeof err), 0);
  CHECK_MSG(err[0] == '\0', "%s", err);
  if (err[0] == '\0') {
    CHECK_STR_CONTAINS(a.server.cert, "/examples/../runs/demo/pki/aggregator.pem");
    CHECK(a.server.cert[0] == '/');
    CHECK_STR_CONTAINS(a.model.base, "/examples/../models/demo-base");
    CHECK_EQ_INT(a.server.allowed_clients.count, 3);
    CHECK_EQ_INT(a.rounds.min_clients, 3);
    agg_config_free(&a);
  }
  site_config s;
  CHECK_EQ_INT(site_config_load(&s, harness_source("examples/client.ini"), NULL, 0, err, sizeof err), 0);
  CHECK_MSG(err[0] == '\0', "%s", err);
  if (err[0] == '\0') {
    CHECK_STR_CONTAINS(s.data.train, "/examples/../runs/demo/data/cardiology.jsonl");
    CHECK(s.model.tokenizer == NULL && s.client.server_name == NULL);
    /* Unset keys print as "key =" and reload unset. */
    char printed[512];
    snprintf(printed, sizeof printed, "%s/site-printed.ini", dir);
    FILE *f = fopen(printed, "w");
    config_print(&site_config_schema, &s, f);
    fclose(f);
    site_config_free(&s);
    CHECK_EQ_INT(site_config_load(&s, printed, NULL, 0, err, sizeof err), 0);
    CHECK(s.model.tokenizer == NULL && s.data.val == NULL && s.data.train && s.data.train[0] == '/');
    site_config_free(&s);
  }
}

static void test_cli(void) {
  char *argv[] = {"prog",        "--config",       "a.ini",   "--set",          "x.y=1",
                  "--set=z.w=2", "--print-config", "--other", "--config=b.ini", "--set"};
  int argc = 10;
  config_cli cli = {0};
  int i = 1;
  CHECK_EQ_INT(config_cli_take(&cli, argc, argv, &i, err, sizeof err), 1);
  CHECK_EQ_INT(i, 2);
  i++;
  CHECK_EQ_INT(config_cli_take(&cli, argc, argv, &i, err, sizeof err), 1);
  i++;
  CHECK_EQ_INT(config_cli_take(&cli, argc, argv, &i, err, sizeof err), 1);
  CHECK_EQ_INT(i, 5);
  i++;
  CHECK_EQ_INT(config_cli_take(&cli, argc, argv, &i, err, sizeof err), 1);
  i++;
  CHECK_EQ_INT(config_cli_take(&cli, argc, argv, &i, err, sizeof err), 0);
  i++;
  CHECK_EQ_INT(config_cli_take(&cli, argc, argv, &i, err, sizeof err), 1);
  i++;
  CHECK_EQ_INT(config_cli_take(&cli, argc, argv, &i, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "--set needs a value");
  CHECK(cli.path && strcmp(cli.path, "b.ini") == 0);
  CHECK_EQ_INT(cli.n_sets, 2);
  CHECK(strcmp(cli.sets[0], "x.y=1") == 0 && strcmp(cli.sets[1], "z.w=2") == 0);
  CHECK_EQ_INT(cli.print, 1);
  char *settle[] = {"prog", "--settings"};
  i = 1;
  CHECK_EQ_INT(config_cli_take(&cli, 2, settle, &i, err, sizeof err), 0);  /* not --set */
}

int main(void) {
  dir = harness_tmpdir();
  test_defaults();
  test_overrides();
  test_enum_order();
  test_file_errors();
  test_set_errors();
  test_cross_field();
  test_paths_and_lists();
  test_print_roundtrip();
  test_examples();
  test_cli();
  fs_remove_tree(dir, err, sizeof err);
  return harness_finish();
}
