/* `fedlora merge`: fold a PEFT LoRA adapter into its base model (W' = W + scale * B A) and write the
 * result as a Hugging Face directory that needs no adapter to run. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "hf_model.h"
#include "log.h"
#include "model.h"
#include "peft.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora merge --model PATH --adapter DIR --out DIR [--dtype f32|f16|bf16]\n"
          "  --model PATH     base model: a Hugging Face directory or a llama2.c .bin checkpoint\n"
          "  --adapter DIR    PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors)\n"
          "  --out DIR        where to write the merged model (config.json, model.safetensors)\n"
          "  --dtype T        storage type of the merged weights: f32 (default), f16 or bf16\n");
}

static int dtype_parse(const char *name, st_dtype *out) {
  static const struct {
    const char *name;
    st_dtype dtype;
  } names[] = {{"f32", ST_F32}, {"f16", ST_F16}, {"bf16", ST_BF16}};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (strcmp(name, names[i].name) == 0) {
      *out = names[i].dtype;
      return 0;
    }
  return -1;
}

int cmd_merge(int argc, char **argv) {
  static const struct option options[] = {
      {"model", required_argument, NULL, 'm'}, {"adapter", required_argument, NULL, 'a'},
      {"out", required_argument, NULL, 'o'},   {"dtype", required_argument, NULL, 't'},
      {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
  };
  const char *model_path = NULL, *adapter_dir = NULL, *out_dir = NULL;
  st_dtype dtype = ST_F32;
  int opt;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    switch (opt) {
      case 'm': model_path = optarg; break;
      case 'a': adapter_dir = optarg; break;
      case 'o': out_dir = optarg; break;
      case 't':
        if (dtype_parse(optarg, &dtype) != 0) {
          fprintf(stderr, "fedlora merge: --dtype expects f32, f16 or bf16, got '%s'\n", optarg);
          return 2;
        }
        break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (optind != argc || !model_path || !adapter_dir || !out_dir) {
    fprintf(stderr, "fedlora merge: %s\n", optind != argc ? "unexpected argument" : "--model, --adapter and --out are required");
    usage(stderr);
    return 2;
  }
  log_set_program("fedlora merge");
  char err[1024];
  model m;
  lora_adapter ad;
  if (model_load(&m, model_path, err, sizeof err) != 0) {
    log_error("%s", err);
    return 1;
  }
  if (peft_load(&ad, &m.config, adapter_dir, err, sizeof err) != 0) {
    log_error("%s", err);
    model_free(&m);
    return 1;
  }
  peft_merge_into(&m, &ad);
  int rc = hf_model_save(&m, out_dir, dtype, 0, err, sizeof err);
  if (rc != 0) log_error("%s", err);
  else
    log_info("merged %s (rank %d, scale %g) into %s -> %s (%s)", adapter_dir, ad.config.rank, ad.scale, model_path,
             out_dir, st_dtype_name(dtype));
  lora_free(&ad);
  model_free(&m);
  return rc == 0 ? 0 : 1;
}
