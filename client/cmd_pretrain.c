/* `fedlora pretrain`: full-parameter training of a small Llama with the byte-level tokenizer from
 * random weights, on text read by the dataset layer (jsonl, text or ids files); writes a Hugging Face
 * directory with a tokenizer.json that spells the byte-level tokenizer. This is how models/demo-base
 * is made (scripts/make-demo-base.sh).
 *
 * How the directory says "byte-level": tokenizer.json is a BPE model with no merges whose vocabulary
 * is exactly the 256 byte pieces "<0x00>".."<0xFF>" (ids 0..255) with byte_fallback on, plus the
 * added special tokens <s> = 256, </s> = 257, <pad> = 258 and a ByteFallback + Fuse decoder. Every
 * character misses the vocabulary and falls back to its UTF-8 bytes, so this file encodes any text
 * to the same ids as tokenizer_build_bytes(), both here and in Hugging Face `tokenizers`.
 * tokenizer_config.json names the specials (and carries "fedlora_tokenizer": "bytes" for readers
 * that want to take the shortcut). */
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
#include "hf_model.h"
#include "json_util.h"
#include "log.h"
#include "model.h"
#include "ops.h"
#include "tokenizer.h"
#include "train.h"

/* The byte-level tokenizer's ids (tokenizer.h). */
enum { BYTE_BOS = 256, BYTE_EOS = 257, BYTE_PAD = 258, BYTE_VOCAB = 259 };

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora pretrain --data FILE.jsonl --out DIR [OPTIONS]\n"
          "  --data FILES       jsonl ({\"text\"} records), text or .ids files; \"a.jsonl:3,b.txt:1\" weights\n"
          "                     several. Records are packed BOS text EOS as dataset.h describes\n"
          "  --val FILE         evaluated at the end (and every --eval-every steps)\n"
          "  --out DIR          Hugging Face directory: config.json, model.safetensors, tokenizer.json,\n"
          "                     tokenizer_config.json (byte-level: ids 0..255 bytes, 256 <s>, 257 </s>, 258 <pad>)\n"
          "  --dim D            residual width (default 128)\n"
          "  --layers L         (default 4)\n"
          "  --heads H          (default 4)\n"
          "  --kv-heads K       (default: heads)\n"
          "  --hidden F         MLP width (default 344)\n"
          "  --seq-len T        training window and max_position_embeddings (default 256)\n"
          "  --batch B          windows per step (default 8)\n"
          "  --grad-accum K     micro-batches per step (default 1)\n"
          "  --steps N          optimizer steps (default 1000)\n"
          "  --stop-after N     save after N of the --steps steps: the first N steps of the full run, exactly\n"
          "  --lr LR            peak AdamW learning rate (default 2e-3)\n"
          "  --warmup W         warmup steps before the cosine decay to 0 at --steps (default 50)\n"
          "  --weight-decay W   AdamW decoupled weight decay on every weight (default 0)\n"
          "  --grad-clip C      global norm clipping, 0 = off (default 1)\n"
          "  --init-std S       normal init std; o_proj and down_proj get S / sqrt(2 L) (default 0.02)\n"
          "  --seed S           init and window order (default 1)\n"
          "  --threads N        compute threads (default: OpenMP's); results are reproducible per count\n"
          "  --eval-every N     evaluate --val every N steps (default 0: only at the end)\n"
          "  --log-every N      (default 50)\n"
          "  --json             print one JSON object with the figures\n");
}

typedef struct {
  const char *data, *val, *out;
  model_config model;
  train_config train;
  float init_std;
  long stop_after; /* steps actually run (<= train.steps, which the schedule spans) */
  int threads, eval_every, log_every, json;
} pretrain_args;

static int args_parse(pretrain_args *a, int argc, char **argv) {
  static const struct option options[] = {
      {"data", required_argument, NULL, 'd'},     {"val", required_argument, NULL, 'v'},
      {"out", required_argument, NULL, 'o'},      {"dim", required_argument, NULL, 'D'},
      {"layers", required_argument, NULL, 'L'},   {"heads", required_argument, NULL, 'H'},
      {"kv-heads", required_argument, NULL, 'K'}, {"hidden", required_argument, NULL, 'F'},
      {"seq-len", required_argument, NULL, 'T'},  {"batch", required_argument, NULL, 'B'},
      {"grad-accum", required_argument, NULL, 'A'}, {"steps", required_argument, NULL, 'n'},
      {"lr", required_argument, NULL, 'l'},       {"warmup", required_argument, NULL, 'w'},
      {"weight-decay", required_argument, NULL, 'W'}, {"grad-clip", required_argument, NULL, 'c'},
      {"init-std", required_argument, NULL, 'i'}, {"seed", required_argument, NULL, 's'},
      {"threads", required_argument, NULL, 'j'},  {"eval-every", required_argument, NULL, 'e'},
      {"log-every", required_argument, NULL, 'g'}, {"stop-after", required_argument, NULL, 'S'},
      {"json", no_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
  };
  *a = (pretrain_args){.init_std = 0.02f, .log_every = 50};
  a->model = (model_config){.dim = 128, .hidden_dim = 344, .n_layers = 4, .n_heads = 4, .n_kv_heads = 0,
                            .vocab_size = BYTE_VOCAB, .max_seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                            .tied_classifier = 1};
  train_config *t = &a->train;
  *t = (train_config){.batch = 8, .grad_accum = 1, .steps = 1000, .optim = optim_config_default(OPTIM_ADAMW),
                      .grad_clip = 1.0f, .shuffle = 1, .seed = 1};
  t->optim.weight_decay = 0.0f;
  t->schedule = (lr_schedule){.kind = SCHEDULE_COSINE, .lr = 2e-3f, .warmup_steps = 50};
  long seed = 1;
  int opt;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    const char *c = "pretrain";
    int bad = 0;
    switch (opt) {
      case 'd': a->data = optarg; break;
      case 'v': a->val = optarg; break;
      case 'o': a->out = optarg; break;
      case 'D': bad = arg_int(c, "--dim", optarg, 2, 1 << 16, &a->model.dim); break;
      case 'L': bad = arg_int(c, "--layers", optarg, 1, 1024, &a->model.n_layers); break;
      case 'H': bad = arg_int(c, "--heads", optarg, 1, 1024, &a->model.n_heads); break;
      case 'K': bad = arg_int(c, "--kv-heads", optarg, 1, 1024, &a->model.n_kv_heads); break;
      case 'F': bad = arg_int(c, "--hidden", optarg, 1, 1 << 18, &a->model.hidden_dim); break;
      case 'T': bad = arg_int(c, "--seq-len", optarg, 2, 1 << 16, &a->model.max_seq_len); break;
      case 'B': bad = arg_int(c, "--batch", optarg, 1, 1 << 16, &t->batch); break;
      case 'A': bad = arg_int(c, "--grad-accum", optarg, 1, 1 << 16, &t->grad_accum); break;
      case 'n': bad = arg_long(c, "--steps", optarg, 1, 1L << 40, &t->steps); break;
      case 'l': bad = arg_float(c, "--lr", optarg, 0.0, 10.0, &t->schedule.lr); break;
      case 'w': bad = arg_long(c, "--warmup", optarg, 0, 1L << 40, &t->schedule.warmup_steps); break;
      case 'W': bad = arg_float(c, "--weight-decay", optarg, 0.0, 10.0, &t->optim.weight_decay); break;
      case 'c': bad = arg_float(c, "--grad-clip", optarg, 0.0, 1e9, &t->grad_clip); break;
      case 'i': bad = arg_float(c, "--init-std", optarg, 0.0, 10.0, &a->init_std); break;
      case 's': bad = arg_long(c, "--seed", optarg, 0, 0x7FFFFFFFFFFFFFFFL, &seed); break;
      case 'j': bad = arg_int(c, "--threads", optarg, 1, 4096, &a->threads); break;
      case 'e': bad = arg_int(c, "--eval-every", optarg, 0, 1 << 30, &a->eval_every); break;
      case 'g': bad = arg_int(c, "--log-every", optarg, 1, 1 << 30, &a->log_every); break;
      case 'S': bad = arg_long(c, "--stop-after", optarg, 1, 1L << 40, &a->stop_after); break;
      case 'J': a->json = 1; break;
      case 'h': usage(stdout); return 1;
      default: usage(stderr); return -1;
    }
    if (bad) return -1;
  }
  if (optind != argc || !a->data || !a->out) {
    fprintf(stderr, "fedlora pretrain: %s\n", optind != argc ? "unexpected argument" : "--data and --out are required");
    usage(stderr);
    return -1;
  }
  model_config *m = &a->model;
  if (!m->n_kv_heads) m->n_kv_heads = m->n_heads;
  m->head_dim = m->dim / m->n_heads;
  if (m->head_dim * m->n_heads != m->dim) {
    fprintf(stderr, "fedlora pretrain: --dim %d is not a multiple of --heads %d\n", m->dim, m->n_heads);
    return -1;
  }
  t->seq_len = m->max_seq_len;
  t->seed = (uint64_t)seed;
  t->schedule.total_steps = t->steps;
  if (a->stop_after > t->steps) {
    fprintf(stderr, "fedlora pretrain: --stop-after %ld exceeds --steps %ld\n", a->stop_after, t->steps);
    return -1;
  }
  if (!a->stop_after) a->stop_after = t->steps;
  char err[512];
  if (model_config_validate(m, err, sizeof err) != 0) {
    fprintf(stderr, "fedlora pretrain: %s\n", err);
    return -1;
  }
  return 0;
}

/* GPT-2's init: normal(0, std) everywhere, with the two projections that write into the residual
 * stream scaled by 1 / sqrt(2 L) so the stream's variance does not grow with depth. */
static void weights_init(model *m, uint64_t seed, float std) {
  model_init_random(m, seed, std);
  const model_config *c = &m->config;
  float s = 1.0f / sqrtf(2.0f * (float)c->n_layers);
  size_t qd = (size_t)c->n_heads * c->head_dim;
  for (size_t i = 0; i < (size_t)c->n_layers * c->dim * qd; i++) m->weights.wo[i] *= s;
  for (size_t i = 0; i < (size_t)c->n_layers * c->dim * c->hidden_dim; i++) m->weights.w_down[i] *= s;
}

static int tokenizer_files_write(const char *dir, int max_len, char *err, size_t err_size) {
  static const char *const specials[] = {"<s>", "</s>", "<pad>"};
  json_t *vocab = json_object(), *added = json_array();
  for (int b = 0; b < 256; b++) {
    char piece[8];
    snprintf(piece, sizeof piece, "<0x%02X>", b);
    json_object_set_new(vocab, piece, json_integer(b));
  }
  for (int i = 0; i < 3; i++)
    json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", BYTE_BOS + i, "content",
                                           specials[i], "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0,
                                           "special", 1));
  json_t *tok = json_pack(
      "{s:s, s:n, s:n, s:o, s:n, s:n, s:n, s:{s:s, s:[{s:s}, {s:s}]}, s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, "
      "s:o, s:[]}}",
      "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", "pre_tokenizer",
      "post_processor", "decoder", "type", "Sequence", "decoders", "type", "ByteFallback", "type", "Fuse", "model",
      "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
      "byte_fallback", 1, "ignore_merges", 0, "vocab", vocab, "merges");
  json_t *config = json_pack("{s:s, s:s, s:s, s:n, s:b, s:b, s:i, s:s, s:b, s:s}", "bos_token", "<s>", "eos_token",
                             "</s>", "pad_token", "<pad>", "unk_token", "add_bos_token", 1, "add_eos_token", 0,
                             "model_max_length", max_len, "tokenizer_class", "PreTrainedTokenizerFast",
                             "clean_up_tokenization_spaces", 0, "fedlora_tokenizer", "bytes");
  char tok_path[4096], config_path[4096];
  snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", dir);
  snprintf(config_path, sizeof config_path, "%s/tokenizer_config.json", dir);
  int rc = -1;
  if (!tok || !config) snprintf(err, err_size, "%s: cannot build the tokenizer JSON", dir);
  else if (json_write_atomic(tok, tok_path, err, err_size) == 0)
    rc = json_write_atomic(config, config_path, err, err_size);
  json_decref(tok);
  json_decref(config);
  return rc;
}

/* config.json as hf_model_save wrote it, plus the special-token ids generation reads from it. */
static int config_add_token_ids(const char *dir, char *err, size_t err_size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_src src = {path, err, err_size};
  json_t *root = json_src_load(&src);
  if (!root) return -1;
  json_object_set_new(root, "bos_token_id", json_integer(BYTE_BOS));
  json_object_set_new(root, "eos_token_id", json_integer(BYTE_EOS));
  json_object_set_new(root, "pad_token_id", json_integer(BYTE_PAD));
  int rc = json_write_atomic(root, path, err, err_size);
  json_decref(root);
  return rc;
}

static int val_loss(const model *m, const site_data *sd, const pretrain_args *a, double *loss, char *err,
                    size_t err_size) {
  double tokens;
  return evaluate_loss(m, NULL, &sd->val, a->train.batch, loss, &tokens, err, err_size);
}

int cmd_pretrain(int argc, char **argv) {
  pretrain_args a;
  int parsed = args_parse(&a, argc, argv);
  if (parsed) return parsed > 0 ? 0 : 2;
  log_set_program("fedlora pretrain");
  if (a.threads) compute_threads_set(a.threads);
  char err[1024];
  data_spec spec = {.data = a.data, .val = a.val, .format = DATA_FORMAT_AUTO};
  site_data sd = {0};
  model m = {0};
  trainer t = {0};
  int rc = 1, have_data = 0, have_trainer = 0;
  double val_loss_end = NAN;
  tokenizer *bytes = tokenizer_build_bytes();
  if (!bytes) {
    snprintf(err, sizeof err, "out of memory");
    goto done;
  }
  if (site_data_load(&sd, &spec, bytes, BYTE_VOCAB, a.train.seq_len, a.train.shuffle, a.train.seed, err,
                     sizeof err) != 0)
    goto done;
  have_data = 1;
  if (model_build(&m, &a.model, err, sizeof err) != 0) goto done;
  weights_init(&m, a.train.seed, a.init_std);
  if (trainer_build(&t, &m, NULL, &a.train, err, sizeof err) != 0) goto done;
  have_trainer = 1;
  size_t tokens_per_step = (size_t)a.train.batch * a.train.grad_accum * a.train.seq_len;
  log_info("pretraining %zu parameters (dim %d, %d layers, %d heads, hidden %d) for %ld steps, %.2f epochs",
           m.num_params, a.model.dim, a.model.n_layers, a.model.n_heads, a.model.hidden_dim, a.train.steps,
           (double)a.train.steps * a.train.batch * a.train.grad_accum / (double)mixture_windows(&sd.mix));
  double start = clock_seconds(), first_loss = NAN;
  step_report r = {0};
  for (long s = 0; s < a.stop_after; s++) {
    r = trainer_step(&t, &sd.mix);
    if (s == 0) first_loss = r.loss;
    if (!isfinite(r.loss)) {
      snprintf(err, sizeof err, "loss became %g at step %ld; lower --lr", r.loss, s + 1);
      goto done;
    }
    if ((s + 1) % a.log_every == 0 || s + 1 == a.stop_after)
      log_info("step %ld/%ld loss %.4f grad-norm %.3f lr %.3g (%.0f tokens/s)", s + 1, a.train.steps, r.loss,
               r.grad_norm, r.lr, (double)tokens_per_step * (s + 1) / (clock_seconds() - start));
    if (a.val && a.eval_every && (s + 1) % a.eval_every == 0 && s + 1 < a.stop_after) {
      double loss;
      if (val_loss(&m, &sd, &a, &loss, err, sizeof err) != 0) goto done;
      log_info("step %ld val loss %.4f", s + 1, loss);
    }
  }
  double elapsed = clock_seconds() - start;
  if (a.val && val_loss(&m, &sd, &a, &val_loss_end, err, sizeof err) != 0) goto done;
  if (hf_model_save(&m, a.out, ST_F32, 0, err, sizeof err) != 0 || config_add_token_ids(a.out, err, sizeof err) != 0 ||
      tokenizer_files_write(a.out, a.model.max_seq_len, err, sizeof err) != 0)
    goto done;
  double tokens = (double)tokens_per_step * a.stop_after;
  if (a.json) {
    json_t *o = json_pack("{s:I, s:I, s:f, s:f, s:o, s:f, s:f, s:s}", "parameters", (json_int_t)m.num_params, "steps",
                          (json_int_t)a.stop_after, "first_loss", first_loss, "final_loss", r.loss, "val_loss",
                          a.val ? json_real(val_loss_end) : json_null(), "seconds", elapsed, "tokens_per_second",
                          tokens / elapsed, "out", a.out);
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(o);
  } else {
    printf("pretrained %zu parameters for %ld of %ld steps in %.1f s (%.0f tokens/s): loss %.4f -> %.4f",
           m.num_params, a.stop_after, a.train.steps, elapsed, tokens / elapsed, first_loss, r.loss);
    if (a.val) printf(", val loss %.4f", val_loss_end);
    printf("; written to %s\n", a.out);
  }
  rc = 0;
done:
  if (rc) log_error("%s", err);
  if (have_trainer) trainer_free(&t);
  if (m.params) model_free(&m);
  if (have_data) site_data_free(&sd);
  tokenizer_free(bytes);
  return rc;
}
