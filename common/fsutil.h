/* Durable file writes the SQLite way: write a temp file in the same directory, fsync it, rename it
 * over the target, fsync the directory. A reader sees the old file or the new one, never half of one.
 * Every function returns 0 on success, -1 on failure with a message naming the path in `err`. */
#ifndef FEDLORA_FSUTIL_H
#define FEDLORA_FSUTIL_H

#include <stdio.h>
#include <sys/types.h>

typedef struct {
  FILE *fp;          /* write the content here */
  char *tmp_path;    /* "<dir>/.<name>.tmp-XXXXXX", removed on abort */
  char *final_path;  /* where commit renames it */
} atomic_file;

int atomic_file_open(atomic_file *af, const char *path, char *err, size_t err_size);
/* Flushes, fsyncs, renames into place, fsyncs the directory and frees `af`. On failure the temp
 * file is removed and `af` freed: there is nothing left to abort. */
int atomic_file_commit(atomic_file *af, char *err, size_t err_size);
/* Discards the temp file and frees `af`; safe on an `af` that commit already consumed. */
void atomic_file_abort(atomic_file *af);

/* Whole-buffer convenience over atomic_file_*. */
int fs_write_atomic(const char *path, const void *data, size_t size, char *err, size_t err_size);
/* mkdir -p: creates missing parents; an existing directory is not an error. */
int fs_mkdir_p(const char *path, mode_t mode, char *err, size_t err_size);
/* fsync a directory so a rename or create inside it survives a crash. */
int fs_fsync_dir(const char *dir, char *err, size_t err_size);
/* rm -r of a directory we created (temp dirs, test output). Missing path is not an error. */
int fs_remove_tree(const char *path, char *err, size_t err_size);

#endif
