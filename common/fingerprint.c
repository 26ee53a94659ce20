#include "fingerprint.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "payload.h"

static int hash_file(EVP_MD_CTX *md, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  static __thread unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(md, buf, n);
  int bad = ferror(f);
  fclose(f);
  if (bad) snprintf(err, errlen, "error reading %s", path);
  return bad ? -1 : 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int hash_dir(EVP_MD_CTX *md, const char *dir, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
    return -1;
  }
  char *names[4096];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 4096) {
    size_t l = strlen(e->d_name);
    if (l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  int rc = 0;
  if (n == 0) {
    snprintf(err, errlen, "%s holds no .safetensors weight files", dir);
    rc = -1;
  }
  qsort(names, n, sizeof *names, name_cmp);
  for (size_t i = 0; i < n && rc == 0; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    struct stat st;
    if (stat(path, &st) != 0) {
      snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
      rc = -1;
      break;
    }
    uint8_t size[8];
    for (int b = 0; b < 8; b++) size[b] = (uint8_t)((uint64_t)st.st_size >> (8 * b));
    EVP_DigestUpdate(md, names[i], strlen(names[i]) + 1);
    EVP_DigestUpdate(md, size, 8);
    rc = hash_file(md, path, err, errlen);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  return rc;
}

int model_fingerprint(const char *path, char hex[65], char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, errlen, "cannot open the base model %s: %s", path, strerror(errno));
    return -1;
  }
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  int rc = S_ISDIR(st.st_mode) ? hash_dir(md, path, err, errlen) : hash_file(md, path, err, errlen);
  uint8_t digest[32];
  unsigned len = 32;
  EVP_DigestFinal_ex(md, digest, &len);
  EVP_MD_CTX_free(md);
  if (rc == 0) sha256_hex(digest, hex);
  return rc;
}
