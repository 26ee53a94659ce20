/* `fedlora eval`: mean next-token loss and perplexity of a model (plus adapter) on a data file (jsonl,
 * text or ids; see dataset.h), and with --generate the task metrics of greedy completions of its
 * prompts against the reference completions (see text_metrics.h). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "commands.h"
#include "dataset.h"
#include "generate.h"
#include "log.h"
#include "model.h"
#include "model_tokenizer.h"
#include "ops.h"
#include "peft.h"
#include "text_metrics.h"
#include "train.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora eval --model PATH (--data FILE | --val FILE) [OPTIONS]\n"
          "  --model PATH         llama2.c .bin checkpoint or Hugging Face directory\n"
          "  --adapter DIR        PEFT LoRA adapter to apply\n"
          "  --data FILE          evaluation data: every record, or with --val-fraction only the records\n"
          "                       `fedlora train` holds out of FILE (same --val-fraction and --split-seed)\n"
          "  --val FILE           evaluate every record of FILE (the file given to train's --val)\n"
          "  --val-fraction F     see --data (default 0: the whole file)\n"
          "  --split-seed S       (default 0)\n"
          "  --format F           jsonl, text, ids or auto (default: by extension and first line)\n"
          "  --skip-bad-records   warn about and count malformed records instead of failing\n"
          "  --tokenizer FILE     tokenizer.json, tokenizer.bin or 'bytes' (default: the model's own)\n"
          "  --generate           also complete each prompt greedily and score it against its completion:\n"
          "                       exact match, word F1, ROUGE-L (means) and corpus BLEU-4, on lowercased\n"
          "                       whitespace-separated words\n"
          "  --max-new-tokens N   generated tokens per prompt at most (default 64)\n"
          "  --seq-len T          window length (default: min(256, the model's max_seq_len))\n"
          "  --batch B            windows per forward pass (default 4)\n"
          "  --threads N          compute threads (default: OpenMP's)\n"
          "  --json               print one JSON object with the figures\n"
          "Every packed window of T + 1 tokens (stride T) with a counted target is scored once.\n");
}

typedef struct {
  const char *model_path, *adapter_dir, *data_path, *tokenizer;
  double fraction;   /* > 0: only the held-out records */
  uint64_t split_seed;
  data_format format;
  int skip_bad, generate, max_new, seq_len, batch, threads, json;
} eval_args;

static int args_parse(eval_args *a, int argc, char **argv) {
  static const struct option options[] = {
      {"model", required_argument, NULL, 'm'},     {"adapter", required_argument, NULL, 'a'},
      {"data", required_argument, NULL, 'd'},      {"val", required_argument, NULL, 'v'},
      {"val-fraction", required_argument, NULL, 'f'}, {"split-seed", required_argument, NULL, 'X'},
      {"format", required_argument, NULL, 'M'},    {"skip-bad-records", no_argument, NULL, 'B'},
      {"tokenizer", required_argument, NULL, 'K'}, {"generate", no_argument, NULL, 'g'},
      {"max-new-tokens", required_argument, NULL, 'n'}, {"seq-len", required_argument, NULL, 't'},
      {"batch", required_argument, NULL, 'b'},     {"threads", required_argument, NULL, 'j'},
      {"json", no_argument, NULL, 'J'},            {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  *a = (eval_args){.max_new = 64, .batch = 4};
  const char *val_path = NULL;
  float fraction;
  long seed;
  int opt, kind;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    int bad = 0;
    switch (opt) {
      case 'm': a->model_path = optarg; break;
      case 'a': a->adapter_dir = optarg; break;
      case 'd': a->data_path = optarg; break;
      case 'v': val_path = optarg; break;
      case 'f':
        bad = arg_float("eval", "--val-fraction", optarg, 0.0, 0.99, &fraction);
        a->fraction = fraction;
        break;
      case 'X':
        bad = arg_long("eval", "--split-seed", optarg, 0, 0x7fffffffffffffffL, &seed);
        a->split_seed = (uint64_t)seed;
        break;
      case 'M':
        if ((bad = (kind = data_format_parse(optarg)) < 0))
          fprintf(stderr, "fedlora eval: --format expects jsonl, text, ids or auto, got '%s'\n", optarg);
        else
          a->format = (data_format)kind;
        break;
      case 'B': a->skip_bad = 1; break;
      case 'K': a->tokenizer = optarg; break;
      case 'g': a->generate = 1; break;
      case 'n': bad = arg_int("eval", "--max-new-tokens", optarg, 1, 1 << 20, &a->max_new); break;
      case 't': bad = arg_int("eval", "--seq-len", optarg, 1, 1 << 20, &a->seq_len); break;
      case 'b': bad = arg_int("eval", "--batch", optarg, 1, 1 << 16, &a->batch); break;
      case 'j': bad = arg_int("eval", "--threads", optarg, 1, 4096, &a->threads); break;
      case 'J': a->json = 1; break;
      case 'h': usage(stdout); return 1;
      default: usage(stderr); return -1;
    }
    if (bad) return -1;
  }
  const char *problem = optind != argc                ? "unexpected argument"
                        : !a->model_path              ? "--model is required"
                        : !a->data_path == !val_path  ? "give one of --data and --val"
                        : val_path && a->fraction > 0 ? "--val-fraction selects records of --data, not of --val"
                                                      : NULL;
  if (problem) {
    fprintf(stderr, "fedlora eval: %s\n", problem);
    usage(stderr);
    return -1;
  }
  if (val_path) a->data_path = val_path;
  return 0;
}

/* Greedy completions of the selected prompt records, scored against their completions. */
static int generate_scores(const model *m, const lora_adapter *lora, const tokenizer *tok, const record_set *s,
                           const eval_args *a, text_scores *scores, size_t *too_long, size_t *untokenizable,
                           char *err, size_t err_size) {
  text_metrics tm = {0};
  token_ids prompt = {0};
  token_text text = {0};
  int stop[2] = {tokenizer_eos(tok), tokenizer_bos(tok)}, n_stop = stop[1] >= 0 ? 2 : 1, rc = 0;
  int *out = malloc(sizeof(int) * ((size_t)m->config.max_seq_len + 1));
  if (!out) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  *too_long = *untokenizable = 0;
  for (size_t i = 0; i < s->n && !rc; i++) {
    const data_record *r = &s->records[i];
    if (r->kind != RECORD_PROMPT || (a->fraction > 0 && !record_in_validation(s, i, a->split_seed, a->fraction)))
      continue;
    prompt.len = text.len = 0;
    if ((rc = tokenizer_encode(tok, record_prompt(s, r), r->prompt_len, tokenizer_bos(tok) >= 0, 0, &prompt, err,
                               err_size)))
      break;
    if (prompt.len >= (size_t)m->config.max_seq_len) {
      log_warn("%s:%zu: prompt of %zu tokens leaves no room under max_seq_len %d; not scored", s->path, r->line,
               prompt.len, m->config.max_seq_len);
      ++*too_long;
      continue;
    }
    /* the output repeats prompt[1..]; then come the generated tokens */
    generate_config gc = {.steps = (int)prompt.len - 1 + a->max_new, .stop_ids = stop, .n_stop = n_stop};
    int n_out, first = (int)prompt.len - 1;
    if ((rc = generate_ids(m, lora, prompt.ids, (int)prompt.len, &gc, out, &n_out, err, err_size))) break;
    /* a model whose vocabulary is larger than its tokenizer's can emit ids with no text: drop them */
    int kept = first;
    for (int j = first; j < n_out; j++)
      if (out[j] < tokenizer_vocab_size(tok)) out[kept++] = out[j];
      else ++*untokenizable;
    if ((rc = tokenizer_decode(tok, out + first, (size_t)(kept - first), 1, &text, err, err_size))) break;
    rc = text_metrics_add(&tm, text.data, text.len, record_body(s, r), r->body_len, err, err_size);
  }
  *scores = text_metrics_scores(&tm);
  free(out);
  token_ids_free(&prompt);
  token_text_free(&text);
  return rc;
}

int cmd_eval(int argc, char **argv) {
  eval_args a;
  int parsed = args_parse(&a, argc, argv);
  if (parsed) return parsed > 0 ? 0 : 2;
  if (a.threads) compute_threads_set(a.threads);

  char err[1024], tok_err[1024] = "";
  model m;
  lora_adapter ad;
  record_set s;
  dataset data = {0};
  tokenizer *tok = NULL;
  text_scores scores = {0};
  size_t too_long = 0, untokenizable = 0;
  int have_adapter = 0, have_records = 0, rc = 1;
  double loss, tokens;
  if (model_load(&m, a.model_path, err, sizeof err)) {
    fprintf(stderr, "fedlora eval: %s\n", err);
    return 1;
  }
  if (a.adapter_dir && peft_load(&ad, &m.config, a.adapter_dir, err, sizeof err)) goto fail;
  have_adapter = a.adapter_dir != NULL;
  tok = tokenizer_for_model(a.model_path, a.tokenizer, m.config.vocab_size, tok_err, sizeof tok_err);
  if (!tok && (a.tokenizer || a.generate)) {
    snprintf(err, sizeof err, "%s", tok_err);
    goto fail;
  }
  if (records_read(&s, a.data_path, a.format, a.skip_bad, err, sizeof err)) goto fail;
  have_records = 1;
  if (!a.seq_len) a.seq_len = m.config.max_seq_len < 256 ? m.config.max_seq_len : 256;
  /* with a fraction the held-out records are the "val" side; otherwise every record is taken */
  if (dataset_add_records(a.fraction > 0 ? NULL : &data, &data, &s, a.fraction, a.split_seed, tok,
                          m.config.vocab_size, err, sizeof err) ||
      dataset_index(&data, a.seq_len, a.data_path, err, sizeof err))
    goto fail;
  log_info("eval %s: %zu records, %zu tokens, %zu counted, %zu windows; %zu bad records skipped", a.data_path,
           data.records, data.n, data.counted_tokens, data.n_windows, s.skipped);
  if (evaluate_loss(&m, have_adapter ? &ad : NULL, &data, a.batch, &loss, &tokens, err, sizeof err)) goto fail;
  if (a.generate &&
      generate_scores(&m, have_adapter ? &ad : NULL, tok, &s, &a, &scores, &too_long, &untokenizable, err,
                      sizeof err))
    goto fail;
  if (a.json) {
    json_t *o = json_pack("{s:f, s:f, s:I, s:I, s:I}", "loss", loss, "perplexity", exp(loss), "tokens",
                          (json_int_t)tokens, "records", (json_int_t)data.records, "skipped_records",
                          (json_int_t)s.skipped);
    if (a.generate)
      json_object_set_new(o, "generate",
                          json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "pairs", (json_int_t)scores.pairs,
                                    "prompts_too_long", (json_int_t)too_long, "ids_without_text",
                                    (json_int_t)untokenizable, "max_new_tokens", (json_int_t)a.max_new,
                                    "exact_match", scores.exact_match, "f1", scores.f1, "rouge_l", scores.rouge_l,
                                    "bleu4", scores.bleu4));
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", text);
    free(text);
    json_decref(o);
  } else {
    printf("loss %.6f perplexity %.4f tokens %.0f records %zu\n", loss, exp(loss), tokens, data.records);
    if (a.generate)
      printf("generate: %zu prompts, exact match %.4f, F1 %.4f, ROUGE-L %.4f, BLEU-4 (corpus) %.4f\n", scores.pairs,
             scores.exact_match, scores.f1, scores.rouge_l, scores.bleu4);
  }
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "fedlora eval: %s\n", err);
done:
  dataset_free(&data);
  if (have_records) records_free(&s);
  tokenizer_free(tok);
  if (have_adapter) lora_free(&ad);
  model_free(&m);
  return rc;
}
