#include "fuzz_input.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char dir[256];

/* Empties and removes one directory of ours (only plain files are ever put there). */
static void dir_remove_at(const char *path) {
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char file[512];
    snprintf(file, sizeof file, "%s/%s", path, e->d_name);
    unlink(file);
  }
  closedir(d);
  rmdir(path);
}

static void dir_remove(void) { dir_remove_at(dir); }

/* A crash (or libFuzzer's own exits) skips atexit, so directories of processes that are gone are
 * removed by the next one. They are named by process id for that. */
static void stale_dirs_remove(const char *base) {
  DIR *d = opendir(base);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    int pid;
    char path[512];
    if (sscanf(e->d_name, "fedlora-fuzz-%d", &pid) != 1 || pid == (int)getpid()) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    snprintf(path, sizeof path, "%s/%s", base, e->d_name);
    dir_remove_at(path);
  }
  closedir(d);
}

const char *fuzz_dir(void) {
  if (dir[0]) return dir;
  struct stat st;
  const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
  stale_dirs_remove(base);
  snprintf(dir, sizeof dir, "%s/fedlora-fuzz-%d", base, (int)getpid());
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    perror(dir);
    abort();
  }
  atexit(dir_remove);
  log_set_level(LOG_OFF);
  return dir;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    perror(path);
    abort();
  }
  for (size_t done = 0; done < size;) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) {
      perror(path);
      abort();
    }
    done += (size_t)n;
  }
  close(fd);
  return path;
}
