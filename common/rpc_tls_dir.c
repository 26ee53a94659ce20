/* The server's TLS material in a private directory watched by gRPC; see rpc_tls_dir.h. */
#include "rpc_tls_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes path.tmp (mode 0600: it holds the private key), syncs it, stamps it with mtime and renames
 * it over path. */
static int file_replace(const char *path, const char *first, const char *second, time_t mtime, char *err,
                        size_t errlen) {
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    return -1;
  }
  const char *parts[2] = {first, second};
  int ok = 1;
  for (int i = 0; i < 2 && ok; i++) {
    size_t len = parts[i] ? strlen(parts[i]) : 0, off = 0;
    while (ok && off < len) {
      ssize_t n = write(fd, parts[i] + off, len - off);
      if (n < 0 && errno == EINTR) continue;
      ok = n > 0;
      if (ok) off += (size_t)n;
    }
    /* PEM blocks must start on a line of their own. */
    if (ok && len > 0 && parts[i][len - 1] != '\n') ok = write(fd, "\n", 1) == 1;
  }
  struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
  ok = ok && fsync(fd) == 0 && futimens(fd, times) == 0;
  int saved = errno;
  if (close(fd) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(ok ? errno : saved));
    unlink(tmp);
    return -1;
  }
  return 0;
}

int rpc_tls_dir_write(rpc_tls_dir *d, const char *cert_pem, const char *key_pem, const char *ca_pem, char *err,
                      size_t errlen) {
  time_t now = time(NULL), mtime = now > d->mtime ? now : d->mtime + 1;
  if (file_replace(d->ca, ca_pem, NULL, mtime, err, errlen) != 0) return -1;
  if (file_replace(d->identity, key_pem, cert_pem, mtime, err, errlen) != 0) return -1;
  d->mtime = mtime;
  int dfd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return 0;
}

int rpc_tls_dir_open(rpc_tls_dir *d, const char *cert_pem, const char *key_pem, const char *ca_pem, char *err,
                     size_t errlen) {
  memset(d, 0, sizeof *d);
  const char *tmp = getenv("TMPDIR");
  snprintf(d->dir, sizeof d->dir, "%s/fedlora-tls-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
  if (!mkdtemp(d->dir)) {
    snprintf(err, errlen, "cannot make a private directory for the TLS files in %s: %s", d->dir, strerror(errno));
    d->dir[0] = '\0';
    return -1;
  }
  snprintf(d->identity, sizeof d->identity, "%s/identity.pem", d->dir);
  snprintf(d->ca, sizeof d->ca, "%s/ca.pem", d->dir);
  if (rpc_tls_dir_write(d, cert_pem, key_pem, ca_pem, err, errlen) != 0) {
    rpc_tls_dir_close(d);
    return -1;
  }
  return 0;
}

void rpc_tls_dir_close(rpc_tls_dir *d) {
  if (!d->dir[0]) return;
  unlink(d->identity);
  unlink(d->ca);
  rmdir(d->dir);
  d->dir[0] = '\0';
}
