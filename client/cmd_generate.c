/* `fedlora generate`: a completion of a text prompt (or of a prompt of ids), greedy or sampled, like
 * llama2.c's run.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "generate.h"
#include "model.h"
#include "model_tokenizer.h"
#include "ops.h"
#include "peft.h"

enum { MAX_PROMPT = 65536, MAX_STOP = 16 };

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora generate --model PATH (--prompt TEXT | --prompt-ids \"1 ...\") [OPTIONS]\n"
          "  --model PATH        llama2.c .bin checkpoint or Hugging Face directory\n"
          "  --adapter DIR       PEFT LoRA adapter to apply\n"
          "  --prompt TEXT       prompt text, encoded with BOS by the model's tokenizer; prints the prompt\n"
          "                      and its completion as text\n"
          "  --tokenizer FILE    tokenizer.json, tokenizer.bin or 'bytes' (default: the model's own)\n"
          "  --prompt-ids IDS    prompt token ids, space or comma separated (usually starting with BOS = 1)\n"
          "  -n N                positions to run, prompt included, as run.c's -n (default 256)\n"
          "  --temperature T     0 = greedy (default); > 0 samples from softmax(logits / T)\n"
          "  --seed S            sampling seed (default 1)\n"
          "  --stop-ids IDS      stop before emitting any of these (default: the tokenizer's BOS and EOS\n"
          "                      with --prompt, \"1,2\" with --prompt-ids)\n"
          "  --threads N         compute threads (default: OpenMP's)\n"
          "Prints the ids after the first prompt token, space-separated on one line.\n");
}

/* The prompt and its completion as text: ids the tokenizer has no text for (a model vocabulary larger
 * than the tokenizer's) are left out. */
static int print_text(const tokenizer *tok, int first, int *out, int n_out) {
  char err[256];
  token_text text = {0};
  int kept = 0;
  for (int i = 0; i < n_out; i++)
    if (out[i] < tokenizer_vocab_size(tok)) out[kept++] = out[i];
  int rc = tokenizer_decode(tok, &first, 1, 1, &text, err, sizeof err) ||
           tokenizer_decode(tok, out, (size_t)kept, 1, &text, err, sizeof err);
  if (rc) fprintf(stderr, "fedlora generate: %s\n", err);
  else printf("%.*s\n", (int)text.len, text.data);
  token_text_free(&text);
  return rc ? 1 : 0;
}

int cmd_generate(int argc, char **argv) {
  static const struct option options[] = {
      {"model", required_argument, NULL, 'm'},       {"adapter", required_argument, NULL, 'a'},
      {"prompt-ids", required_argument, NULL, 'p'},  {"temperature", required_argument, NULL, 't'},
      {"seed", required_argument, NULL, 's'},        {"stop-ids", required_argument, NULL, 'x'},
      {"threads", required_argument, NULL, 'j'},     {"help", no_argument, NULL, 'h'},
      {"prompt", required_argument, NULL, 'P'},      {"tokenizer", required_argument, NULL, 'K'},
      {NULL, 0, NULL, 0},
  };
  const char *model_path = NULL, *adapter_dir = NULL, *prompt_text = NULL, *stop_text = NULL, *text = NULL,
             *tokenizer_flag = NULL;
  int steps = 256, threads = 0, opt;
  long seed = 1;
  float temperature = 0.0f;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "n:h", options, NULL)) != -1) {
    int bad = 0;
    switch (opt) {
      case 'm': model_path = optarg; break;
      case 'a': adapter_dir = optarg; break;
      case 'p': prompt_text = optarg; break;
      case 'x': stop_text = optarg; break;
      case 'P': text = optarg; break;
      case 'K': tokenizer_flag = optarg; break;
      case 'n': bad = arg_int("generate", "-n", optarg, 1, 1 << 20, &steps); break;
      case 't': bad = arg_float("generate", "--temperature", optarg, 0.0, 1e6, &temperature); break;
      case 's': bad = arg_long("generate", "--seed", optarg, 0, 0x7fffffffffffffffL, &seed); break;
      case 'j': bad = arg_int("generate", "--threads", optarg, 1, 4096, &threads); break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
    if (bad) return 2;
  }
  if (optind != argc || !model_path || !prompt_text == !text) {
    fprintf(stderr, "fedlora generate: %s\n",
            optind != argc ? "unexpected argument" : "--model and one of --prompt and --prompt-ids are required");
    usage(stderr);
    return 2;
  }
  static int prompt[MAX_PROMPT];
  int n_prompt = 0, stop[MAX_STOP], n_stop = 0;
  if ((prompt_text && arg_int_list("generate", "--prompt-ids", prompt_text, prompt, MAX_PROMPT, &n_prompt)) ||
      ((stop_text || prompt_text) &&
       arg_int_list("generate", "--stop-ids", stop_text ? stop_text : "1,2", stop, MAX_STOP, &n_stop)))
    return 2;
  if (threads) compute_threads_set(threads);

  char err[1024];
  model m;
  lora_adapter ad;
  int have_adapter = adapter_dir != NULL, rc = 1;
  if (model_load(&m, model_path, err, sizeof err)) {
    fprintf(stderr, "fedlora generate: %s\n", err);
    return 1;
  }
  if (have_adapter && peft_load(&ad, &m.config, adapter_dir, err, sizeof err)) {
    fprintf(stderr, "fedlora generate: %s\n", err);
    model_free(&m);
    return 1;
  }
  tokenizer *tok = NULL;
  if (text) {
    token_ids ids = {0};
    int bos = -1;
    if (!(tok = tokenizer_for_model(model_path, tokenizer_flag, m.config.vocab_size, err, sizeof err)) ||
        tokenizer_encode(tok, text, strlen(text), (bos = tokenizer_bos(tok)) >= 0, 0, &ids, err, sizeof err) ||
        (ids.len > MAX_PROMPT && snprintf(err, sizeof err, "the prompt is %zu tokens, more than %d", ids.len,
                                          MAX_PROMPT) > 0)) {
      fprintf(stderr, "fedlora generate: %s\n", err);
      token_ids_free(&ids);
      tokenizer_free(tok);
      if (have_adapter) lora_free(&ad);
      model_free(&m);
      return 1;
    }
    n_prompt = (int)ids.len;
    memcpy(prompt, ids.ids, sizeof(int) * ids.len);
    token_ids_free(&ids);
    if (!stop_text) {
      stop[n_stop++] = tokenizer_eos(tok);
      if (bos >= 0) stop[n_stop++] = bos;
    }
  }
  int *out = malloc(sizeof(int) * (size_t)steps), n_out = 0;
  generate_config cfg = {.steps = steps, .temperature = temperature, .seed = (uint64_t)seed, .stop_ids = stop,
                         .n_stop = n_stop};
  if (!out) {
    fprintf(stderr, "fedlora generate: out of memory\n");
  } else if (generate_ids(&m, have_adapter ? &ad : NULL, prompt, n_prompt, &cfg, out, &n_out, err, sizeof err)) {
    fprintf(stderr, "fedlora generate: %s\n", err);
  } else if (tok) {
    rc = print_text(tok, prompt[0], out, n_out);
  } else {
    for (int i = 0; i < n_out; i++) printf(i ? " %d" : "%d", out[i]);
    printf("\n");
    rc = 0;
  }
  tokenizer_free(tok);
  free(out);
  if (have_adapter) lora_free(&ad);
  model_free(&m);
  return rc;
}
