/* `fedlora train`: LoRA fine-tuning on a site's data files (jsonl, text or ids; see dataset.h), written
 * as a PEFT adapter directory. With --eval-every the validation loss picks the adapter written.
 * Under `mpirun -np N` (built with FEDLORA_MPI) the N ranks train as one process with batch N * B
 * (train.h); every rank evaluates and decides alike, and only rank 0 prints and writes. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "clock.h"
#include "commands.h"
#include "dataset_site.h"
#include "dist.h"
#include "log.h"
#include "model_tokenizer.h"
#include "model.h"
#include "ops.h"
#include "peft.h"
#include "train.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora train --model PATH --data FILE --out DIR [OPTIONS]\n"
          "  --model PATH         llama2.c .bin checkpoint or Hugging Face directory\n"
          "  --data FILES         training data: FILE or FILE:WEIGHT, comma-separated; windows are drawn\n"
          "                       from the files in proportion to their weights (default 1 each)\n"
          "  --out DIR            where to write the PEFT adapter\n"
          "  --adapter-in DIR     start from this adapter (its rank, alpha and targets)\n"
          "  --val FILE           validation file; without it --val-fraction of the data records are held\n"
          "                       out by a hash of their content (the same records in every run)\n"
          "  --val-fraction F     (default 0.1; 0 = no validation)\n"
          "  --split-seed S       seed of that hash (default 0)\n"
          "  --format F           jsonl, text, ids or auto (default: by extension and first line)\n"
          "  --skip-bad-records   warn about and count malformed records instead of failing\n"
          "  --tokenizer FILE     tokenizer.json, tokenizer.bin or 'bytes' (default: the model's own)\n"
          "  --replay FILE        general text mixed into training, never held out\n"
          "  --replay-fraction F  share of windows drawn from --replay (default 0.2)\n"
          "  --eval-every N       validation loss every N steps; the best adapter is written to --out\n"
          "  --patience P         with --eval-every, stop after P evaluations without improvement\n"
          "  --rank R             LoRA rank (default 8)\n"
          "  --alpha A            LoRA alpha (default 16)\n"
          "  --targets LIST       modules: q,k,v,o,gate,up,down or *_proj names, or all (default q,v)\n"
          "  --dropout P          LoRA dropout (default 0)\n"
          "  --rslora             scale alpha / sqrt(r) instead of alpha / r\n"
          "  --freeze-a           train only B (A stays at its initial value)\n"
          "  --optimizer NAME     adamw (default) or sgd\n"
          "  --lr LR              peak learning rate (default 1e-4)\n"
          "  --weight-decay W     (default 0)\n"
          "  --beta1 B1 --beta2 B2 --eps E   AdamW (defaults 0.9, 0.999, 1e-8)\n"
          "  --batch B            windows per micro-batch (default 4); per rank under mpirun\n"
          "  --seq-len T          window length (default: min(256, the model's max_seq_len))\n"
          "  --grad-accum K       micro-batches per optimizer step (default 1)\n"
          "  --steps N | --epochs E   optimizer steps, or passes over the data (default: 1 epoch)\n"
          "  --grad-clip C        global gradient-norm clipping, 0 = off (default 0)\n"
          "  --warmup W           warmup steps (default 0)\n"
          "  --schedule NAME      constant (default) or cosine\n"
          "  --shuffle on|off     window order per epoch (default on)\n"
          "  --seed S             adapter init, shuffling and dropout (default 0)\n"
          "  --threads N          compute threads (default: OpenMP's)\n"
          "  --json               print one JSON object with the figures\n");
}

typedef struct {
  const char *model_path, *out_dir, *adapter_in, *tokenizer;
  data_spec data;
  int eval_every, patience;
  lora_config lora;
  train_config train;
  float epochs;
  int threads, json;
} train_args;

static int args_parse(train_args *a, int argc, char **argv) {
  static const struct option options[] = {
      {"model", required_argument, NULL, 'm'},     {"data", required_argument, NULL, 'd'},
      {"out", required_argument, NULL, 'o'},       {"adapter-in", required_argument, NULL, 'i'},
      {"val", required_argument, NULL, 'v'},       {"rank", required_argument, NULL, 'r'},
      {"alpha", required_argument, NULL, 'A'},     {"targets", required_argument, NULL, 'T'},
      {"dropout", required_argument, NULL, 'D'},   {"rslora", no_argument, NULL, 'R'},
      {"freeze-a", no_argument, NULL, 'F'},        {"optimizer", required_argument, NULL, 'O'},
      {"lr", required_argument, NULL, 'l'},        {"weight-decay", required_argument, NULL, 'w'},
      {"beta1", required_argument, NULL, '1'},     {"beta2", required_argument, NULL, '2'},
      {"eps", required_argument, NULL, 'e'},       {"batch", required_argument, NULL, 'b'},
      {"seq-len", required_argument, NULL, 't'},   {"grad-accum", required_argument, NULL, 'k'},
      {"steps", required_argument, NULL, 'n'},     {"epochs", required_argument, NULL, 'E'},
      {"grad-clip", required_argument, NULL, 'c'}, {"warmup", required_argument, NULL, 'W'},
      {"schedule", required_argument, NULL, 'S'},  {"shuffle", required_argument, NULL, 's'},
      {"seed", required_argument, NULL, 'x'},      {"threads", required_argument, NULL, 'j'},
      {"json", no_argument, NULL, 'J'},            {"help", no_argument, NULL, 'h'},
      {"val-fraction", required_argument, NULL, 'f'}, {"split-seed", required_argument, NULL, 'X'},
      {"format", required_argument, NULL, 'M'},    {"skip-bad-records", no_argument, NULL, 'B'},
      {"tokenizer", required_argument, NULL, 'K'}, {"replay", required_argument, NULL, 'P'},
      {"replay-fraction", required_argument, NULL, 'Q'}, {"eval-every", required_argument, NULL, 'V'},
      {"patience", required_argument, NULL, 'Y'},  {NULL, 0, NULL, 0},
  };
  const char *C = "train";
  float fraction;
  long split_seed;
  char err[256];
  long seed = 0;
  int kind;
  memset(a, 0, sizeof *a);
  a->lora = (lora_config){.rank = 8, .alpha = 16.0f, .targets = (1u << LORA_Q) | (1u << LORA_V)};
  a->train = (train_config){.batch = 4, .grad_accum = 1, .optim = optim_config_default(OPTIM_ADAMW), .shuffle = 1};
  a->train.optim.weight_decay = 0.0f;
  a->train.schedule = (lr_schedule){.kind = SCHEDULE_CONSTANT, .lr = 1e-4f};
  a->data = (data_spec){.val_fraction = 0.1, .replay_fraction = 0.2};
  int opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    int bad = 0;
    long steps;
    switch (opt) {
      case 'm': a->model_path = optarg; break;
      case 'd': a->data.data = optarg; break;
      case 'o': a->out_dir = optarg; break;
      case 'i': a->adapter_in = optarg; break;
      case 'v': a->data.val = optarg; break;
      case 'f':
        bad = arg_float(C, "--val-fraction", optarg, 0.0, 0.99, &fraction);
        a->data.val_fraction = fraction;
        break;
      case 'X':
        bad = arg_long(C, "--split-seed", optarg, 0, 0x7fffffffffffffffL, &split_seed);
        a->data.split_seed = (uint64_t)split_seed;
        break;
      case 'M':
        if ((bad = (kind = data_format_parse(optarg)) < 0))
          fprintf(stderr, "fedlora train: --format expects jsonl, text, ids or auto, got '%s'\n", optarg);
        else
          a->data.format = (data_format)kind;
        break;
      case 'B': a->data.skip_bad = 1; break;
      case 'K': a->tokenizer = optarg; break;
      case 'P': a->data.replay = optarg; break;
      case 'Q':
        bad = arg_float(C, "--replay-fraction", optarg, 0.0, 0.99, &fraction);
        a->data.replay_fraction = fraction;
        break;
      case 'V': bad = arg_int(C, "--eval-every", optarg, 1, 1 << 30, &a->eval_every); break;
      case 'Y': bad = arg_int(C, "--patience", optarg, 1, 1 << 30, &a->patience); break;
      case 'r': bad = arg_int(C, "--rank", optarg, 1, 65536, &a->lora.rank); break;
      case 'A': bad = arg_float(C, "--alpha", optarg, 1e-9, 1e9, &a->lora.alpha); break;
      case 'T':
        if ((bad = lora_targets_parse(optarg, &a->lora.targets, err, sizeof err)))
          fprintf(stderr, "fedlora train: --targets: %s\n", err);
        break;
      case 'D': bad = arg_float(C, "--dropout", optarg, 0.0, 0.999, &a->lora.dropout); break;
      case 'R': a->lora.use_rslora = 1; break;
      case 'F': a->lora.freeze_a = 1; break;
      case 'O':
        if ((bad = (kind = optim_kind_parse(optarg)) < 0))
          fprintf(stderr, "fedlora train: --optimizer expects adamw or sgd, got '%s'\n", optarg);
        else
          a->train.optim.kind = (optim_kind)kind;
        break;
      case 'l': bad = arg_float(C, "--lr", optarg, 0.0, 1e3, &a->train.schedule.lr); break;
      case 'w': bad = arg_float(C, "--weight-decay", optarg, 0.0, 1e3, &a->train.optim.weight_decay); break;
      case '1': bad = arg_float(C, "--beta1", optarg, 0.0, 0.999999, &a->train.optim.beta1); break;
      case '2': bad = arg_float(C, "--beta2", optarg, 0.0, 0.999999, &a->train.optim.beta2); break;
      case 'e': bad = arg_float(C, "--eps", optarg, 0.0, 1.0, &a->train.optim.eps); break;
      case 'b': bad = arg_int(C, "--batch", optarg, 1, 1 << 16, &a->train.batch); break;
      case 't': bad = arg_int(C, "--seq-len", optarg, 1, 1 << 20, &a->train.seq_len); break;
      case 'k': bad = arg_int(C, "--grad-accum", optarg, 1, 1 << 16, &a->train.grad_accum); break;
      case 'n': bad = arg_long(C, "--steps", optarg, 1, 1L << 40, &a->train.steps); break;
      case 'E': bad = arg_float(C, "--epochs", optarg, 1e-9, 1e9, &a->epochs); break;
      case 'c': bad = arg_float(C, "--grad-clip", optarg, 0.0, 1e9, &a->train.grad_clip); break;
      case 'W':
        bad = arg_long(C, "--warmup", optarg, 0, 1L << 40, &steps);
        a->train.schedule.warmup_steps = steps;
        break;
      case 'S':
        if ((bad = (kind = schedule_kind_parse(optarg)) < 0))
          fprintf(stderr, "fedlora train: --schedule expects constant or cosine, got '%s'\n", optarg);
        else
          a->train.schedule.kind = (schedule_kind)kind;
        break;
      case 's': bad = arg_switch(C, "--shuffle", optarg, &a->train.shuffle); break;
      case 'x': bad = arg_long(C, "--seed", optarg, 0, 0x7fffffffffffffffL, &seed); break;
      case 'j': bad = arg_int(C, "--threads", optarg, 1, 4096, &a->threads); break;
      case 'J': a->json = 1; break;
      case 'h': usage(stdout); return 1;
      default: usage(stderr); return -1;
    }
    if (bad) return -1;
  }
  a->train.seed = (uint64_t)seed;
  if (optind != argc || !a->model_path || !a->data.data || !a->out_dir) {
    fprintf(stderr, "fedlora train: %s\n",
            optind != argc ? "unexpected argument" : "--model, --data and --out are required");
    usage(stderr);
    return -1;
  }
  if (a->train.steps && a->epochs > 0.0f) {
    fprintf(stderr, "fedlora train: give --steps or --epochs, not both\n");
    return -1;
  }
  if (a->patience && !a->eval_every) {
    fprintf(stderr, "fedlora train: --patience needs --eval-every\n");
    return -1;
  }
  return 0;
}

/* The best validation loss so far and the adapter that had it; step 0 (the starting adapter) counts. */
typedef struct {
  double loss;
  long step;
  float *params;  /* (n) copy of the adapter at `step` */
  int stale;      /* evaluations since the last improvement */
} best_adapter;

/* Records an evaluation; returns 1 when patience has run out. */
static int best_update(best_adapter *b, const lora_adapter *ad, double loss, long step, int patience) {
  if (loss < b->loss) {
    b->loss = loss;
    b->step = step;
    b->stale = 0;
    memcpy(b->params, ad->params, sizeof(float) * ad->num_params);
    return 0;
  }
  return patience && ++b->stale >= patience;
}

static int train_run(train_args *args);

int cmd_train(int argc, char **argv) {
  train_args a;
  char err[1024];
  int parsed = args_parse(&a, argc, argv);
  if (parsed) return parsed > 0 ? 0 : 2;
  if (dist_init(&argc, &argv, err, sizeof err) != 0) {
    fprintf(stderr, "fedlora train: %s\n", err);
    return 1;
  }
  if (dist_rank() != 0 && log_get_level() < LOG_WARN) log_set_level(LOG_WARN); /* rank 0 speaks for all */
  int rc = train_run(&a);
  dist_finalize();
  return rc;
}

static int train_run(train_args *args) {
  train_args a = *args;
  if (a.threads) compute_threads_set(a.threads);
  int ranks = dist_size(), writer = dist_rank() == 0;
  char err[1024], tok_err[1024] = "";
  model m;
  lora_adapter ad;
  site_data sd;
  trainer t;
  tokenizer *tok = NULL;
  best_adapter best = {.loss = INFINITY};
  int have_ad = 0, have_data = 0, have_t = 0, rc = 1, stopped_early = 0;
  double val_before = NAN, val_after = NAN, val_tokens = 0.0;
  if (model_load(&m, a.model_path, err, sizeof err)) {
    fprintf(stderr, "fedlora train: %s\n", err);
    return 1;
  }
  if (!a.train.seq_len) a.train.seq_len = m.config.max_seq_len < 256 ? m.config.max_seq_len : 256;
  if (a.adapter_in) {
    int freeze = a.lora.freeze_a;
    if (peft_load(&ad, &m.config, a.adapter_in, err, sizeof err)) goto fail;
    ad.config.freeze_a = freeze;
  } else {
    if (lora_build(&ad, &m.config, &a.lora, err, sizeof err)) goto fail;
    lora_init(&ad, a.train.seed);
  }
  have_ad = 1;
  /* ids files need no tokenizer: a missing one is an error only once a text record needs it */
  tok = tokenizer_for_model(a.model_path, a.tokenizer, m.config.vocab_size, tok_err, sizeof tok_err);
  if (!tok && a.tokenizer) {
    snprintf(err, sizeof err, "%s", tok_err);
    goto fail;
  }
  if (!tok) log_info("no tokenizer: %s", tok_err);
  if (site_data_load(&sd, &a.data, tok, m.config.vocab_size, a.train.seq_len, a.train.shuffle, a.train.seed, err,
                     sizeof err))
    goto fail;
  have_data = 1;
  size_t windows = mixture_windows(&sd.mix);
  long per_step = (long)a.train.batch * a.train.grad_accum * ranks;
  if (!a.train.steps) {
    double epochs = a.epochs > 0.0f ? a.epochs : 1.0;
    a.train.steps = (long)ceil(epochs * (double)windows / (double)per_step);
    if (a.train.steps < 1) a.train.steps = 1;
  }
  a.train.schedule.total_steps = a.train.steps;
  if (trainer_build(&t, &m, &ad, &a.train, err, sizeof err)) goto fail;
  have_t = 1;
  if (sd.has_val &&
      evaluate_loss(&m, &ad, &sd.val, a.train.batch, &val_before, &val_tokens, err, sizeof err))
    goto fail;
  int early = a.eval_every && sd.has_val;
  if (a.eval_every && !sd.has_val) log_warn("--eval-every without a validation set: the last adapter is written");
  if (early) {
    if (!(best.params = malloc(sizeof(float) * ad.num_params))) {
      snprintf(err, sizeof err, "out of memory for a copy of the adapter");
      goto fail;
    }
    best_update(&best, &ad, val_before, 0, 0);
  }
  log_info("training %zu LoRA parameters (r %d, alpha %g, %zu windows of %d) for %ld steps on %d rank%s",
           ad.num_params, ad.config.rank, ad.config.alpha, windows, a.train.seq_len, a.train.steps, ranks,
           ranks == 1 ? "" : "s");
  double first_loss = NAN, last_loss = NAN, tokens = 0.0, start = clock_seconds();
  long steps_run = 0;
  for (long s = 0; s < a.train.steps && !stopped_early; s++) {
    step_report r = trainer_step(&t, &sd.mix);
    if (r.failed) {
      snprintf(err, sizeof err, "step %ld: %s", s + 1, dist_error());
      goto fail;
    }
    if (s == 0) first_loss = r.loss;
    last_loss = r.loss;
    steps_run = s + 1;
    tokens += (double)per_step * a.train.seq_len;
    if (s % 10 == 0 || s + 1 == a.train.steps)
      log_info("step %ld/%ld loss %.4f grad-norm %.4f lr %.3g", s + 1, a.train.steps, r.loss, r.grad_norm, r.lr);
    if (early && ((s + 1) % a.eval_every == 0 || s + 1 == a.train.steps)) {
      double v;
      if (evaluate_loss(&m, &ad, &sd.val, a.train.batch, &v, &val_tokens, err, sizeof err)) goto fail;
      stopped_early = best_update(&best, &ad, v, s + 1, a.patience) && s + 1 < a.train.steps;
      log_info("step %ld val loss %.4f (best %.4f at step %ld)%s", s + 1, v, best.loss, best.step,
               stopped_early ? "; no improvement for --patience evaluations, stopping" : "");
    }
  }
  double elapsed = clock_seconds() - start;
  if (early) memcpy(ad.params, best.params, sizeof(float) * ad.num_params);
  if (sd.has_val &&
      evaluate_loss(&m, &ad, &sd.val, a.train.batch, &val_after, &val_tokens, err, sizeof err))
    goto fail;
  if (!writer) {
    rc = 0;
    goto done;
  }
  if (peft_save(&ad, &m.config, a.out_dir, a.model_path, err, sizeof err)) goto fail;
  if (a.json) {
    json_t *o = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:s}", "steps", (json_int_t)steps_run,
                          "trainable_params", (json_int_t)ad.num_params, "loss_first", first_loss, "loss_last",
                          last_loss, "tokens_per_s", elapsed > 0 ? tokens / elapsed : 0.0, "seconds", elapsed,
                          "out", a.out_dir);
    json_object_set_new(o, "ranks", json_integer(ranks));
    json_object_set_new(o, "allreduce_seconds", json_real(dist_allreduce_seconds()));
    json_t *files = json_array();
    for (int i = 0; i < sd.n; i++)
      json_array_append_new(files, json_pack("{s:s, s:f, s:I, s:I, s:I, s:I}", "path", sd.names[i], "weight",
                                             sd.weights[i], "records", (json_int_t)sd.train[i].records, "tokens",
                                             (json_int_t)sd.train[i].n, "counted_tokens",
                                             (json_int_t)sd.train[i].counted_tokens, "windows",
                                             (json_int_t)sd.train[i].n_windows));
    json_object_set_new(o, "train_files", files);
    if (sd.has_val) {
      json_object_set_new(o, "val_loss_before", json_real(val_before));
      json_object_set_new(o, "val_loss", json_real(val_after));
      json_object_set_new(o, "val_tokens", json_integer((json_int_t)val_tokens));
      json_object_set_new(o, "val_records", json_integer((json_int_t)sd.val.records));
    }
    if (early) {
      json_object_set_new(o, "best_step", json_integer(best.step));
      json_object_set_new(o, "best_val_loss", json_real(best.loss));
      json_object_set_new(o, "stopped_early", json_boolean(stopped_early));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", text);
    free(text);
    json_decref(o);
  } else {
    printf("steps %ld loss %.4f -> %.4f", steps_run, first_loss, last_loss);
    if (sd.has_val) printf(" val %.4f -> %.4f", val_before, val_after);
    if (early) printf(" (best at step %ld%s)", best.step, stopped_early ? ", stopped early" : "");
    printf(" (%.0f tokens/s); adapter written to %s\n", elapsed > 0 ? tokens / elapsed : 0.0, a.out_dir);
  }
  rc = 0;
  goto done;
fail:
  if (ranks > 1) fprintf(stderr, "fedlora train (rank %d of %d): %s\n", dist_rank(), ranks, err);
  else fprintf(stderr, "fedlora train: %s\n", err);
done:
  free(best.params);
  if (have_t) trainer_free(&t);
  if (have_data) site_data_free(&sd);
  tokenizer_free(tok);
  if (have_ad) lora_free(&ad);
  model_free(&m);
  return rc;
}
