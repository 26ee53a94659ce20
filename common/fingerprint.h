/* The base model's fingerprint: SHA-256 over its weight files, so an aggregator can refuse a site
 * whose base model differs by a single byte. */
#ifndef FEDLORA_FINGERPRINT_H
#define FEDLORA_FINGERPRINT_H

#include <stddef.h>

/* path: a llama2.c .bin (its bytes) or a Hugging Face directory (every *.safetensors file in name
 * order, each as name, NUL, 8-byte little-endian size, bytes). hex gets 64 digits and a NUL.
 * 0, or -1 with a message naming the file. */
int model_fingerprint(const char *path, char hex[65], char *err, size_t errlen);

#endif
