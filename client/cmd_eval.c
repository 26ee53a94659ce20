/* `fedlora eval`: mean next-token loss and perplexity of a model (plus adapter) on an .ids file. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "dataset_ids.h"
#include "model.h"
#include "ops.h"
#include "peft.h"
#include "train.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora eval --model PATH --data FILE [OPTIONS]\n"
          "  --model PATH     llama2.c .bin checkpoint or Hugging Face directory\n"
          "  --adapter DIR    PEFT LoRA adapter to apply\n"
          "  --data FILE      .ids file: whitespace-separated token ids\n"
          "  --seq-len T      window length (default: min(256, the model's max_seq_len))\n"
          "  --batch B        windows per forward pass (default 4)\n"
          "  --threads N      compute threads (default: OpenMP's)\n"
          "  --json           print {\"loss\":..,\"perplexity\":..,\"tokens\":..}\n"
          "Every window of T + 1 tokens (stride T) is scored once, the last partial one too.\n");
}

int cmd_eval(int argc, char **argv) {
  static const struct option options[] = {
      {"model", required_argument, NULL, 'm'},   {"adapter", required_argument, NULL, 'a'},
      {"data", required_argument, NULL, 'd'},    {"seq-len", required_argument, NULL, 't'},
      {"batch", required_argument, NULL, 'b'},   {"threads", required_argument, NULL, 'j'},
      {"json", no_argument, NULL, 'J'},          {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *model_path = NULL, *adapter_dir = NULL, *data_path = NULL;
  int seq_len = 0, batch = 4, threads = 0, json = 0, opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    int bad = 0;
    switch (opt) {
      case 'm': model_path = optarg; break;
      case 'a': adapter_dir = optarg; break;
      case 'd': data_path = optarg; break;
      case 't': bad = arg_int("eval", "--seq-len", optarg, 1, 1 << 20, &seq_len); break;
      case 'b': bad = arg_int("eval", "--batch", optarg, 1, 1 << 16, &batch); break;
      case 'j': bad = arg_int("eval", "--threads", optarg, 1, 4096, &threads); break;
      case 'J': json = 1; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
    if (bad) return 2;
  }
  if (optind != argc || !model_path || !data_path) {
    fprintf(stderr, "fedlora eval: %s\n", optind != argc ? "unexpected argument" : "--model and --data are required");
    usage(stderr);
    return 2;
  }
  if (threads) compute_threads_set(threads);

  char err[1024];
  model m;
  lora_adapter ad;
  token_ids data;
  int have_adapter = 0, have_data = 0, rc = 1;
  double loss, tokens;
  if (model_load(&m, model_path, err, sizeof err)) goto fail_model;
  if (adapter_dir && peft_load(&ad, &m.config, adapter_dir, err, sizeof err)) goto fail;
  have_adapter = adapter_dir != NULL;
  if (ids_load(&data, data_path, m.config.vocab_size, err, sizeof err)) goto fail;
  have_data = 1;
  if (!seq_len) seq_len = m.config.max_seq_len < 256 ? m.config.max_seq_len : 256;
  if (evaluate_loss(&m, have_adapter ? &ad : NULL, &data, batch, seq_len, &loss, &tokens, err, sizeof err)) goto fail;
  if (json) {
    json_t *o = json_pack("{s:f, s:f, s:I}", "loss", loss, "perplexity", exp(loss), "tokens", (json_int_t)tokens);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", text);
    free(text);
    json_decref(o);
  } else {
    printf("loss %.6f perplexity %.4f tokens %.0f\n", loss, exp(loss), tokens);
  }
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "fedlora eval: %s\n", err);
done:
  if (have_data) ids_free(&data);
  if (have_adapter) lora_free(&ad);
  model_free(&m);
  return rc;
fail_model:
  fprintf(stderr, "fedlora eval: %s\n", err);
  return 1;
}
