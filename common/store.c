#include "store.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "json_util.h"
#include "log.h"
#include "peft.h"
#include "safetensors.h"

static void path_join(char *out, size_t cap, const store *st, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void path_join(char *out, size_t cap, const store *st, const char *fmt, ...) {
  int n = snprintf(out, cap, "%s/", st->dir);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < cap) vsnprintf(out + n, cap - (size_t)n, fmt, ap);
  va_end(ap);
}

void store_round_path(const store *st, uint32_t round, char *out, size_t cap) {
  path_join(out, cap, st, "rounds/%04u", round);
}

/* Leftovers of an interrupted write start with '.' (rounds/.NNNN.tmp, fsutil's .name.tmp-XXXXXX). */
static void remove_dot_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[4096], err[256];
  while ((e = readdir(d))) {
    if (e->d_name[0] != '.' || !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    log_info("store: removing %s left by an interrupted write", path);
    fs_remove_tree(path, err, sizeof err);
  }
  closedir(d);
}

int store_open(store *st, const char *state_dir, char *err, size_t errlen) {
  if (snprintf(st->dir, sizeof st->dir, "%s", state_dir) >= (int)sizeof st->dir) {
    snprintf(err, errlen, "state_dir path is too long");
    return -1;
  }
  char path[4096];
  path_join(path, sizeof path, st, "rounds");
  if (fs_mkdir_p(path, 0750, err, errlen) != 0) return -1;
  remove_dot_entries(path);
  path_join(path, sizeof path, st, "pending");
  if (fs_mkdir_p(path, 0750, err, errlen) != 0) return -1;
  remove_dot_entries(st->dir);
  return 0;
}

int store_last_round(const store *st) {
  char path[4096];
  path_join(path, sizeof path, st, "rounds");
  DIR *d = opendir(path);
  if (!d) return -1;
  int best = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long r = strtol(e->d_name, &end, 10);
    if (*end == '\0' && end - e->d_name == 4 && r >= 0 && r > best) best = (int)r;
  }
  closedir(d);
  return best;
}

json_t *store_state_load(const store *st, char *err, size_t errlen) {
  char path[4096];
  path_join(path, sizeof path, st, "state.json");
  if (access(path, F_OK) != 0) return NULL;
  json_src src = {path, err, errlen};
  return json_src_load(&src);
}

int store_state_save(const store *st, const json_t *state, char *err, size_t errlen) {
  char path[4096];
  path_join(path, sizeof path, st, "state.json");
  return json_write_atomic(state, path, err, errlen);
}

static const char *const no_metadata[] = {"format", "fedlora", NULL};

int store_round_commit(const store *st, uint32_t round, const lora_adapter *global, const model_config *c,
                       const char *base_model, const float *server_state, size_t n_state, const json_t *metrics,
                       char *err, size_t errlen) {
  char tmp[4096], final[4096], file[4200];
  path_join(tmp, sizeof tmp, st, "rounds/.%04u.tmp", round);
  store_round_path(st, round, final, sizeof final);
  if (fs_remove_tree(tmp, err, errlen) != 0) return -1;
  if (peft_save(global, c, tmp, base_model, err, errlen) != 0) return -1;
  if (n_state) {
    snprintf(file, sizeof file, "%s/server_state.safetensors", tmp);
    st_entry e = {"state", ST_F32, 1, {(int64_t)n_state}, (float *)server_state};
    if (st_file_write(file, &e, 1, no_metadata, err, errlen) != 0) return -1;
  }
  if (metrics) {
    snprintf(file, sizeof file, "%s/round.json", tmp);
    if (json_write_atomic(metrics, file, err, errlen) != 0) return -1;
  }
  if (fs_fsync_dir(tmp, err, errlen) != 0) return -1;
  if (rename(tmp, final) != 0) {
    snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    return -1;
  }
  path_join(file, sizeof file, st, "rounds");
  if (fs_fsync_dir(file, err, errlen) != 0) return -1;
  if (store_metrics_rebuild(st, err, errlen) != 0) return -1;
  return store_pending_clear(st, round, err, errlen);
}

int store_round_load(const store *st, uint32_t round, lora_adapter *ad, const model_config *c, float *server_state,
                     size_t n_state, char *err, size_t errlen) {
  char dir[4096], file[4200];
  store_round_path(st, round, dir, sizeof dir);
  if (peft_load(ad, c, dir, err, errlen) != 0) return -1;
  if (!server_state) return 0;
  memset(server_state, 0, n_state * sizeof(float));
  snprintf(file, sizeof file, "%s/server_state.safetensors", dir);
  if (access(file, F_OK) != 0 || n_state == 0) return 0;
  st_file f;
  if (st_file_open(&f, file, err, errlen) != 0) return -1;
  int64_t shape[1] = {(int64_t)n_state};
  int rc = st_file_read_f32(&f, "state", 1, shape, server_state, err, errlen);
  st_file_close(&f);
  return rc;
}

int store_metrics_rebuild(const store *st, char *err, size_t errlen) {
  char path[4096], file[4200];
  path_join(path, sizeof path, st, "metrics.jsonl");
  atomic_file af;
  if (atomic_file_open(&af, path, err, errlen) != 0) return -1;
  int last = store_last_round(st);
  for (int r = 1; r <= last; r++) {
    store_round_path(st, (uint32_t)r, file, sizeof file);
    strncat(file, "/round.json", sizeof file - strlen(file) - 1);
    json_error_t je;
    json_t *line = json_load_file(file, 0, &je);
    if (!line) continue;
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    if (text) fprintf(af.fp, "%s\n", text);
    free(text);
    json_decref(line);
  }
  return atomic_file_commit(&af, err, errlen);
}

int store_pending_save(const store *st, uint32_t round, const char *site, const void *payload, size_t len,
                       const json_t *meta, char *err, size_t errlen) {
  char dir[4096], file[4400];
  path_join(dir, sizeof dir, st, "pending/%04u", round);
  if (fs_mkdir_p(dir, 0750, err, errlen) != 0) return -1;
  snprintf(file, sizeof file, "%s/%s.bin", dir, site);
  if (fs_write_atomic(file, payload, len, err, errlen) != 0) return -1;
  snprintf(file, sizeof file, "%s/%s.json", dir, site);
  return json_write_atomic(meta, file, err, errlen);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void store_pending_unmap(store_pending_set *set) {
  for (int i = 0; i < set->count; i++) {
    free(set->sites[i]);
    json_decref(set->metas[i]);
    if (set->payloads[i]) munmap((void *)set->payloads[i], set->len ? set->len : 1);
  }
  free(set->sites);
  free(set->metas);
  free(set->payloads);
  memset(set, 0, sizeof *set);
}

/* pending/NNNN/SITE.bin mapped if it holds exactly len bytes; NULL otherwise. */
static const uint8_t *payload_map(const char *path, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat sb;
  void *p = MAP_FAILED;
  if (fstat(fd, &sb) == 0 && (size_t)sb.st_size == len && len > 0) p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  return p == MAP_FAILED ? NULL : p;
}

int store_pending_map(const store *st, uint32_t round, size_t len, store_pending_set *set, char *err,
                      size_t errlen) {
  char dir[4096], file[4400];
  memset(set, 0, sizeof *set);
  set->len = len;
  path_join(dir, sizeof dir, st, "pending/%04u", round);
  DIR *d = opendir(dir);
  if (!d) return 0;
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) && rc == 0) {
    size_t l = strlen(e->d_name);
    if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **grown = realloc(names, cap * sizeof *names);
      if (!grown) rc = -1;
      else names = grown;
    }
    if (rc == 0 && !(names[n++] = strndup(e->d_name, l - 5))) rc = -1;
  }
  closedir(d);
  if (rc == 0) {
    qsort(names, n, sizeof *names, name_cmp);
    set->sites = calloc(n + 1, sizeof *set->sites);
    set->metas = calloc(n + 1, sizeof *set->metas);
    set->payloads = calloc(n + 1, sizeof *set->payloads);
    if (!set->sites || !set->metas || !set->payloads) rc = -1;
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    snprintf(file, sizeof file, "%s/%s.json", dir, names[i]);
    json_error_t je;
    json_t *meta = json_load_file(file, 0, &je);
    snprintf(file, sizeof file, "%s/%s.bin", dir, names[i]);
    const uint8_t *payload = meta ? payload_map(file, len) : NULL;
    if (!payload) {
      log_warn("store: skipping pending update %s (incomplete or not the planned size)", file);
      json_decref(meta);
      continue;
    }
    set->sites[set->count] = names[i];
    set->metas[set->count] = meta;
    set->payloads[set->count++] = payload;
    names[i] = NULL;
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  if (rc != 0) {
    snprintf(err, errlen, "store: out of memory listing %s", dir);
    store_pending_unmap(set);
  }
  return rc;
}

int store_pending_each(const store *st, uint32_t round, size_t len, store_pending_fn fn, void *user, char *err,
                       size_t errlen) {
  store_pending_set set;
  if (store_pending_map(st, round, len, &set, err, errlen) != 0) return -1;
  int rc = 0;
  for (int i = 0; i < set.count && rc == 0; i++)
    if (fn(set.sites[i], set.payloads[i], len, set.metas[i], user) != 0) {
      snprintf(err, errlen, "pending update of %s for round %u was refused", set.sites[i], round);
      rc = -1;
    }
  store_pending_unmap(&set);
  return rc;
}

int store_pending_clear(const store *st, uint32_t round, char *err, size_t errlen) {
  char dir[4096];
  path_join(dir, sizeof dir, st, "pending/%04u", round);
  return fs_remove_tree(dir, err, errlen);
}
