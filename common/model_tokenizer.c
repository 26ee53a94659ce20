/* The tokenizer beside a model, or the one named on the command line; see model_tokenizer.h. */
#include "model_tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int says_bytes(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  json_t *root = json_load_file(path, 0, NULL);
  const char *kind = json_string_value(json_object_get(root, "fedlora_tokenizer"));
  int bytes = kind && !strcmp(kind, "bytes");
  json_decref(root);
  return bytes;
}

static tokenizer *tokenizer_find(const char *model_path, const char *flag, char *err, size_t err_size) {
  if (flag) return strcmp(flag, "bytes") ? tokenizer_load(flag, err, err_size) : tokenizer_build_bytes();
  struct stat st;
  if (stat(model_path, &st) != 0) {
    snprintf(err, err_size, "%s: %s", model_path, strerror(errno));
    return NULL;
  }
  char path[4096];
  if (S_ISDIR(st.st_mode)) {
    if (says_bytes(model_path)) return tokenizer_build_bytes();
    snprintf(path, sizeof path, "%s/tokenizer.json", model_path);
  } else {
    const char *slash = strrchr(model_path, '/');
    int dir_len = slash ? (int)(slash - model_path) : 1;
    snprintf(path, sizeof path, "%.*s/tokenizer.bin", dir_len, slash ? model_path : ".");
  }
  if (access(path, R_OK) != 0) {
    snprintf(err, err_size, "%s has no tokenizer beside it (looked for %s); pass --tokenizer FILE, or 'bytes'",
             model_path, path);
    return NULL;
  }
  return tokenizer_load(path, err, err_size);
}

tokenizer *tokenizer_for_model(const char *model_path, const char *flag, int model_vocab, char *err, size_t err_size) {
  tokenizer *tok = tokenizer_find(model_path, flag, err, err_size);
  if (tok && model_vocab > 0 && tokenizer_vocab_size(tok) > model_vocab) {
    snprintf(err, err_size, "the %s tokenizer has %d ids but the model %s only %d", tokenizer_kind_name(tok),
             tokenizer_vocab_size(tok), model_path, model_vocab);
    tokenizer_free(tok);
    return NULL;
  }
  return tok;
}
