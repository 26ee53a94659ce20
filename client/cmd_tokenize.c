/* `fedlora tokenize`: text to token ids (or ids to text with --decode) with a model's tokenizer,
 * to check what a model will see before training on a site's data. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora tokenize (--model DIR | --tokenizer FILE) [OPTIONS] (TEXT | --file F)\n"
          "       fedlora tokenize ... --decode (ID... | --file F)\n"
          "  --model DIR        a Hugging Face model folder: uses DIR/tokenizer.json (and tokenizer_config.json)\n"
          "  --tokenizer FILE   tokenizer.json, a llama2.c tokenizer.bin, or 'bytes' for the byte-level one;\n"
          "                     a llama2.c checkpoint has no tokenizer inside, so it always needs this\n"
          "  --file F           read the text (or, with --decode, the ids) from F; '-' is stdin\n"
          "  --decode           turn ids (separated by spaces or commas, brackets allowed) into text\n"
          "  --bos, --eos       wrap the encoding in the tokenizer's BOS / EOS\n"
          "  --skip-special     with --decode, drop special tokens\n"
          "  --json             print a JSON array of ids, or the decoded text as a JSON string\n"
          "Prints ids separated by spaces, or the decoded text followed by a newline.\n");
}

static char *read_input(const char *path, size_t *len) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f) {
    fprintf(stderr, "fedlora tokenize: %s: %s\n", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *data = malloc(cap);
  while (data) {
    n += fread(data + n, 1, cap - n, f);
    if (n < cap) break;
    char *grown = realloc(data, cap *= 2);
    if (!grown) free(data);
    data = grown;
  }
  bool failed = ferror(f);
  if (f != stdin) fclose(f);
  if (!data || failed) {
    fprintf(stderr, "fedlora tokenize: %s: %s\n", path, data ? "read error" : "out of memory");
    free(data);
    return NULL;
  }
  data[n] = '\0';  /* the loop stops with n < cap; --decode parses the ids as a string */
  *len = n;
  return data;
}

static tokenizer *open_tokenizer(const char *model, const char *file) {
  char err[1024], path[4096];
  if (file && !strcmp(file, "bytes")) return tokenizer_build_bytes();
  if (!file) {
    struct stat st;
    if (stat(model, &st) != 0) {
      fprintf(stderr, "fedlora tokenize: --model %s: %s\n", model, strerror(errno));
      return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
      fprintf(stderr, "fedlora tokenize: --model %s is a file; a llama2.c checkpoint carries no tokenizer, "
              "so pass its tokenizer.bin with --tokenizer\n", model);
      return NULL;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", model);
    file = path;
  }
  tokenizer *tok = tokenizer_load(file, err, sizeof err);
  if (!tok) fprintf(stderr, "fedlora tokenize: %s\n", err);
  return tok;
}

static int parse_ids(const char *text, token_ids *ids) {
  const char *p = text;
  char err[128];
  for (;;) {
    while (*p && strchr(" \t\r\n,[]", *p)) p++;
    if (!*p) return 0;
    char *end;
    errno = 0;
    long id = strtol(p, &end, 10);
    if (errno || end == p || id < 0 || id > 0x7FFFFFFF || (*end && !strchr(" \t\r\n,[]", *end))) {
      fprintf(stderr, "fedlora tokenize: --decode: '%.*s' is not a token id\n", (int)strcspn(p, " \t\r\n,[]"), p);
      return -1;
    }
    if (token_ids_push(ids, (int)id, err, sizeof err) < 0) return -1;
    p = end;
  }
}

static int print_ids(const token_ids *ids, bool as_json) {
  if (as_json) {
    json_t *array = json_array();
    for (size_t i = 0; i < ids->len; i++) json_array_append_new(array, json_integer(ids->ids[i]));
    int rc = json_dumpf(array, stdout, JSON_COMPACT);
    json_decref(array);
    putchar('\n');
    return rc;
  }
  for (size_t i = 0; i < ids->len; i++) printf(i ? " %d" : "%d", ids->ids[i]);
  putchar('\n');
  return 0;
}

static int print_text(const token_text *text, bool as_json) {
  if (!as_json) {
    fwrite(text->data, 1, text->len, stdout);
    putchar('\n');
    return 0;
  }
  json_t *s = json_stringn(text->data, text->len);
  if (!s) {
    fprintf(stderr, "fedlora tokenize: the decoded bytes are not valid UTF-8, so they cannot be a JSON string\n");
    return -1;
  }
  int rc = json_dumpf(s, stdout, JSON_ENCODE_ANY);
  json_decref(s);
  putchar('\n');
  return rc;
}

int cmd_tokenize(int argc, char **argv) {
  static const struct option options[] = {
      {"model", required_argument, NULL, 'm'}, {"tokenizer", required_argument, NULL, 't'},
      {"file", required_argument, NULL, 'f'},  {"decode", no_argument, NULL, 'd'},
      {"bos", no_argument, NULL, 'b'},         {"eos", no_argument, NULL, 'e'},
      {"skip-special", no_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
  };
  const char *model = NULL, *tokenizer_file = NULL, *input_file = NULL;
  bool decode = false, bos = false, eos = false, skip_special = false, as_json = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (c) {
      case 'm': model = optarg; break;
      case 't': tokenizer_file = optarg; break;
      case 'f': input_file = optarg; break;
      case 'd': decode = true; break;
      case 'b': bos = true; break;
      case 'e': eos = true; break;
      case 's': skip_special = true; break;
      case 'j': as_json = true; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  int positional = argc - optind;
  if ((!model && !tokenizer_file) || (input_file && positional) || (!input_file && !positional) ||
      (!decode && positional > 1)) {
    fprintf(stderr, "fedlora tokenize: need --model or --tokenizer, and %s\n",
            decode ? "ids or --file" : "one TEXT argument (quote it) or --file");
    usage(stderr);
    return 2;
  }
  tokenizer *tok = open_tokenizer(model, tokenizer_file);
  if (!tok) return 1;
  size_t len = 0;
  char *input = NULL;
  if (input_file && !(input = read_input(input_file, &len))) {
    tokenizer_free(tok);
    return 1;
  }
  char err[1024];
  int status = 0;
  token_ids ids = {0};
  token_text text = {0};
  if (!decode) {
    const char *source = input ? input : argv[optind];
    status = tokenizer_encode(tok, source, input ? len : strlen(source), bos, eos, &ids, err, sizeof err);
    if (status == 0) status = print_ids(&ids, as_json);
    else fprintf(stderr, "fedlora tokenize: %s\n", err);
  } else {
    if (input) status = parse_ids(input, &ids);
    for (int i = optind; i < argc && status == 0; i++) status = parse_ids(argv[i], &ids);
    if (status == 0 && (status = tokenizer_decode(tok, ids.ids, ids.len, skip_special, &text, err, sizeof err)) < 0)
      fprintf(stderr, "fedlora tokenize: %s\n", err);
    if (status == 0) status = print_text(&text, as_json);
  }
  token_ids_free(&ids);
  token_text_free(&text);
  free(input);
  tokenizer_free(tok);
  return status == 0 ? 0 : 1;
}
