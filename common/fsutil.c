#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir_of(const char *path) {
  char *copy = strdup(path);
  if (!copy) return NULL;
  char *d = strdup(dirname(copy));
  free(copy);
  return d;
}

int fs_fsync_dir(const char *dir, char *err, size_t err_size) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_size, "%s: cannot open directory to fsync: %s", dir, strerror(errno));
    return -1;
  }
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  if (rc != 0) {
    snprintf(err, err_size, "%s: fsync of directory failed: %s", dir, strerror(saved));
    return -1;
  }
  return 0;
}

int atomic_file_open(atomic_file *af, const char *path, char *err, size_t err_size) {
  memset(af, 0, sizeof *af);
  char *copy = strdup(path);
  char *dir = dir_of(path);
  if (!copy || !dir) {
    free(copy);
    free(dir);
    snprintf(err, err_size, "%s: out of memory", path);
    return -1;
  }
  /* the temp file lives in the target's directory so the final rename never crosses filesystems */
  if (asprintf(&af->tmp_path, "%s/.%s.tmp-XXXXXX", dir, basename(copy)) < 0) af->tmp_path = NULL;
  free(copy);
  free(dir);
  af->final_path = strdup(path);
  if (!af->tmp_path || !af->final_path) {
    snprintf(err, err_size, "%s: out of memory", path);
    atomic_file_abort(af);
    return -1;
  }
  int fd = mkostemp(af->tmp_path, O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_size, "%s: cannot create temp file %s: %s", path, af->tmp_path, strerror(errno));
    free(af->tmp_path);
    af->tmp_path = NULL;
    atomic_file_abort(af);
    return -1;
  }
  fchmod(fd, 0644);  /* mkostemp creates 0600; outputs are ordinary files */
  af->fp = fdopen(fd, "wb");
  if (!af->fp) {
    close(fd);
    snprintf(err, err_size, "%s: fdopen: %s", af->tmp_path, strerror(errno));
    atomic_file_abort(af);
    return -1;
  }
  return 0;
}

void atomic_file_abort(atomic_file *af) {
  if (af->fp) fclose(af->fp);
  if (af->tmp_path) unlink(af->tmp_path);
  free(af->tmp_path);
  free(af->final_path);
  memset(af, 0, sizeof *af);
}

int atomic_file_commit(atomic_file *af, char *err, size_t err_size) {
  if (fflush(af->fp) != 0 || ferror(af->fp)) {
    snprintf(err, err_size, "%s: write failed: %s", af->tmp_path, strerror(errno));
    atomic_file_abort(af);
    return -1;
  }
  if (fsync(fileno(af->fp)) != 0) {
    snprintf(err, err_size, "%s: fsync failed: %s", af->tmp_path, strerror(errno));
    atomic_file_abort(af);
    return -1;
  }
  int rc = fclose(af->fp);
  af->fp = NULL;
  if (rc != 0) {
    snprintf(err, err_size, "%s: close failed: %s", af->tmp_path, strerror(errno));
    atomic_file_abort(af);
    return -1;
  }
  if (rename(af->tmp_path, af->final_path) != 0) {
    snprintf(err, err_size, "%s: rename from %s failed: %s", af->final_path, af->tmp_path, strerror(errno));
    atomic_file_abort(af);
    return -1;
  }
  free(af->tmp_path);
  af->tmp_path = NULL;  /* renamed: abort must not unlink the target's new name */
  char *dir = dir_of(af->final_path);
  rc = dir ? fs_fsync_dir(dir, err, err_size) : -1;
  if (!dir) snprintf(err, err_size, "%s: out of memory", af->final_path);
  free(dir);
  atomic_file_abort(af);
  return rc;
}

int fs_write_atomic(const char *path, const void *data, size_t size, char *err, size_t err_size) {
  atomic_file af;
  if (atomic_file_open(&af, path, err, err_size) != 0) return -1;
  if (size && fwrite(data, 1, size, af.fp) != size) {
    snprintf(err, err_size, "%s: write failed: %s", af.tmp_path, strerror(errno));
    atomic_file_abort(&af);
    return -1;
  }
  return atomic_file_commit(&af, err, err_size);
}

int fs_mkdir_p(const char *path, mode_t mode, char *err, size_t err_size) {
  if (!*path) {
    snprintf(err, err_size, "mkdir -p: empty path");
    return -1;
  }
  char *p = strdup(path);
  if (!p) {
    snprintf(err, err_size, "%s: out of memory", path);
    return -1;
  }
  int rc = 0;
  /* create each prefix ending at a '/', then the whole path */
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0') continue;
    char saved = *s;
    *s = '\0';
    if (mkdir(p, mode) != 0 && errno != EEXIST) {
      snprintf(err, err_size, "%s: cannot create directory %s: %s", path, p, strerror(errno));
      rc = -1;
    }
    *s = saved;
    if (rc != 0 || saved == '\0') break;
  }
  struct stat st;
  if (rc == 0 && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) {
    snprintf(err, err_size, "%s: exists and is not a directory", path);
    rc = -1;
  }
  free(p);
  return rc;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

int fs_remove_tree(const char *path, char *err, size_t err_size) {
  struct stat st;
  if (lstat(path, &st) != 0 && errno == ENOENT) return 0;
  /* FTW_DEPTH visits children before their directory; FTW_PHYS never follows symlinks out of the tree */
  if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    snprintf(err, err_size, "%s: cannot remove: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}
