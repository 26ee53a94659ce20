/* Which tokenizer goes with a model. */
#ifndef FEDLORA_MODEL_TOKENIZER_H
#define FEDLORA_MODEL_TOKENIZER_H

#include "tokenizer.h"

/* flag (a --tokenizer value) wins: "bytes" for the byte-level tokenizer, or a tokenizer.json /
 * llama2.c tokenizer.bin. Otherwise, for a Hugging Face directory: byte-level when its
 * tokenizer_config.json says "fedlora_tokenizer": "bytes" (as `fedlora pretrain` writes), else
 * DIR/tokenizer.json; for a llama2.c checkpoint file: tokenizer.bin beside it. The tokenizer's ids
 * must fit the model's vocabulary (model_vocab; 0 skips the check). NULL with err otherwise. */
tokenizer *tokenizer_for_model(const char *model_path, const char *flag, int model_vocab, char *err, size_t err_size);

#endif
