/* `fedlora`: the site's toolbox (train, eval, generate, merge, ...), one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const command commands[] = {
    {"audit", "verify the hash chain of an audit log (aggregator's or a site's)", cmd_audit},
    {"dp-epsilon", "the (epsilon, delta) of noisy training, by the RDP accountant", cmd_dp_epsilon},
    {"eval", "mean next-token loss and perplexity of a model (+ adapter) on a data file", cmd_eval},
    {"generate", "continue a prompt (text or ids), greedy or sampled (like llama2.c run.c)", cmd_generate},
    {"manifest", "verify a signed round manifest a site kept (signer, CA, name, what it vouches for)", cmd_manifest},
    {"merge", "fold a LoRA adapter into its base model, written as a Hugging Face directory", cmd_merge},
    {"plot", "validation loss, participants and epsilon per round of a run, as PNG or SVG", cmd_plot},
    {"pretrain", "full-parameter training of a small byte-level model from random weights", cmd_pretrain},
    {"status", "the state of a federated run, asked of its aggregator", cmd_status},
    {"synth", "synthetic site records (cardiology, oncology, paediatrics) or generic text, as JSONL", cmd_synth},
    {"tokenize", "text to token ids (or back) with a model's tokenizer", cmd_tokenize},
    {"train", "LoRA fine-tuning on jsonl, text or ids data, written as a PEFT adapter directory", cmd_train},
    {NULL, NULL, NULL},
};

static void print_help(FILE *out) {
  fprintf(out, "usage: fedlora COMMAND [OPTIONS]\n\nCommands:\n");
  for (const command *c = commands; c->name; c++) fprintf(out, "  %-12s %s\n", c->name, c->summary);
  fprintf(out, "\n`fedlora COMMAND --help` describes each command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    print_help(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("fedlora %s\n", FEDLORA_VERSION);
    return 0;
  }
  for (const command *c = commands; c->name; c++)
    if (strcmp(argv[1], c->name) == 0) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "fedlora: unknown command '%s'\n", argv[1]);
  print_help(stderr);
  return 2;
}
