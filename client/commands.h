/* The `fedlora` command's subcommands; each lives in its own cmd_<name>.c. */
#ifndef FEDLORA_COMMANDS_H
#define FEDLORA_COMMANDS_H

typedef struct {
  const char *name;
  const char *summary;  /* one line for `fedlora --help` */
  int (*run)(int argc, char **argv);  /* argv[0] is the subcommand's name */
} command;

int cmd_audit(int argc, char **argv);
int cmd_dp_epsilon(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_manifest(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);

#endif
