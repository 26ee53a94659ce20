/* Issues 5 and 7: requests the aggregator must refuse, crafted by a raw client (common/rpc.h,
 * payload.h) against the real fedlora-aggregator started as a subprocess. Each one is answered with
 * its exact status and a message naming the problem, the aggregator answers a good call right
 * after, and its state_dir is unchanged byte for byte (every file hashed before and after):
 *   bytes that are not protobuf on every RPC, an empty stream, no header, chunk gaps, repeats,
 *   reordering and overruns, a short stream INVALID_ARGUMENT; a message above the receive limit
 *   RESOURCE_EXHAUSTED; a digest that does not match DATA_LOSS; a closed round or a site that never
 *   joined FAILED_PRECONDITION; a wrong shape / missing tensor / dtype / name / length
 *   INVALID_ARGUMENT; NaN and Inf INVALID_ARGUMENT; bad example counts INVALID_ARGUMENT; Join with
 *   another base model FAILED_PRECONDITION; an unknown method UNIMPLEMENTED; more than 8 concurrent
 *   calls from one site RESOURCE_EXHAUSTED (while another site is still served); a stream that
 *   stops sending DEADLINE_EXCEEDED at the 2 s idle timeout.
 * Then a good update is accepted and stored as sent, the same bytes again are OK with duplicate set,
 * and different bytes for the same round are ALREADY_EXISTS. A second site sends an update of
 * absurd norm (1e38 per element): with norm bounding on it is accepted, and the committed round
 * equals an independent recomputation of the weighted mean of the bounded deltas. After the run has
 * finished, a submission is FAILED_PRECONDITION and a round never committed NOT_FOUND.
 * The shared base model and PKI come from tests/fed/fixture.sh. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "federation_api.h"
#include "fingerprint.h"
#include "harness.h"
#include "model.h"
#include "payload.h"
#include "plan.h"
#include "rpc.h"

enum { DECLARED_EXAMPLES = 100, CHUNK = 1000, PEER_LIMIT = 8, IDLE_TIMEOUT_S = 2 };
static const double NORM_BOUND = 1.0; /* above the good update's delta norm (about 0.2) */

static char fixture[1024], run[256], state_dir[512], agg_log[512];
static pid_t agg_pid;
static int agg_port;

/* ------------------------------------------------------------------ the aggregator process */

static void agg_kill(void) {
  if (agg_pid > 0) {
    kill(agg_pid, SIGKILL);
    waitpid(agg_pid, NULL, 0);
    agg_pid = 0;
  }
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

static char *file_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  fclose(f);
  buf[got] = '\0';
  if (len) *len = got;
  return buf;
}

static int log_contains(const char *text) {
  char *log = file_read(agg_log, NULL);
  int found = log && strstr(log, text);
  free(log);
  return found;
}

/* Starts fedlora-aggregator on a free loopback port and waits (30 s at most) until it listens.
 * Quorum 2 of alpha, beta and gamma, one round, and deadlines far away: the round stays open
 * until both joined sites have submitted. Threads beyond the per-site call limit, so one site's
 * flood leaves workers for the others; a short idle timeout for the slowloris case. */
static int agg_start(void) {
  char ini[512];
  snprintf(ini, sizeof ini, "%s/agg.ini", run);
  FILE *f = fopen(ini, "w");
  fprintf(f,
          "[server]\ncert = %1$s/pki/aggregator.pem\nkey = %1$s/pki/aggregator.key\nclient_ca = %1$s/pki/ca.pem\n"
          "allowed_clients = alpha, beta, gamma\nstate_dir = %2$s\nthreads = 16\npoll_seconds = 1\n"
          "idle_timeout_s = %3$d\n"
          "[model]\nbase = %1$s/base\nlora_rank = 4\nlora_alpha = 8\nlora_targets = q_proj, v_proj\n"
          "[rounds]\ntotal = 1\nmin_clients = 2\ndeadline_s = 3600\nwait_after_quorum_s = 3600\nseed = 1\n"
          "[train]\nlocal_steps = 1\nbatch = 1\nseq_len = 16\n"
          "[aggregation]\nnorm_bound = %4$g\n",
          fixture, state_dir, IDLE_TIMEOUT_S, NORM_BOUND);
  fclose(f);
  for (int attempt = 0; attempt < 3; attempt++) {
    agg_port = free_port();
    char listen[64], bin[1024];
    snprintf(listen, sizeof listen, "server.listen=127.0.0.1:%d", agg_port);
    snprintf(bin, sizeof bin, "%s", harness_build("fedlora-aggregator"));
    agg_pid = fork();
    if (agg_pid == 0) {
      FILE *out = freopen(agg_log, "w", stdout);
      if (!out || dup2(fileno(stdout), 2) < 0) _exit(127);
      execl(bin, bin, "--config", ini, "--set", listen, (char *)NULL);
      _exit(127);
    }
    for (int i = 0; i < 300; i++) {
      if (log_contains("listening on")) return 0;
      int status;
      if (waitpid(agg_pid, &status, WNOHANG) == agg_pid) {
        agg_pid = 0;
        break;
      }
      usleep(100000);
    }
    if (agg_pid == 0 && log_contains("in use")) continue; /* the port was taken meanwhile */
    break;
  }
  char *log = file_read(agg_log, NULL);
  fprintf(stderr, "the aggregator does not listen; its log:\n%s\n", log ? log : "(none)");
  free(log);
  agg_kill();
  return -1;
}

/* SIGTERM, then its exit status within 30 s (-1 if it had to be killed). */
static int agg_stop(void) {
  kill(agg_pid, SIGTERM);
  for (int i = 0; i < 300; i++) {
    int status;
    if (waitpid(agg_pid, &status, WNOHANG) == agg_pid) {
      agg_pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    usleep(100000);
  }
  agg_kill();
  return -1;
}

/* ------------------------------------------------------------------ state_dir snapshot */

typedef struct {
  char **lines;
  int n, cap;
} lines;

static void snapshot_walk(const char *root, const char *rel, lines *out) {
  char path[2048];
  snprintf(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char sub[1024], full[3072], line[1200];
    snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    snprintf(full, sizeof full, "%s/%s", root, sub);
    struct stat st;
    if (lstat(full, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      snprintf(line, sizeof line, "%s/", sub);
      snapshot_walk(root, sub, out);
    } else {
      size_t len = 0;
      char *bytes = file_read(full, &len);
      uint8_t sha[32];
      char hex[65];
      sha256_bytes(bytes ? bytes : "", len, sha);
      sha256_hex(sha, hex);
      free(bytes);
      snprintf(line, sizeof line, "%s %zu %s", sub, len, hex);
    }
    if (out->n == out->cap) {
      out->cap = out->cap ? 2 * out->cap : 32;
      out->lines = realloc(out->lines, (size_t)out->cap * sizeof *out->lines);
    }
    out->lines[out->n++] = strdup(line);
  }
  closedir(d);
}

static int line_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every file and directory under state_dir with its size and SHA-256, sorted, one per line. */
static char *snapshot(void) {
  lines l = {0};
  snapshot_walk(state_dir, "", &l);
  qsort(l.lines, (size_t)l.n, sizeof *l.lines, line_cmp);
  size_t total = 1;
  for (int i = 0; i < l.n; i++) total += strlen(l.lines[i]) + 1;
  char *s = calloc(total, 1);
  for (int i = 0; i < l.n; i++) {
    strcat(s, l.lines[i]);
    strcat(s, "\n");
    free(l.lines[i]);
  }
  free(l.lines);
  return s;
}

/* ------------------------------------------------------------------ a raw site */

static rpc_client *client_for(const char *site) {
  char cert[1200], key[1200], ca[1200], target[64], err[512];
  snprintf(cert, sizeof cert, "%s/pki/%s.pem", fixture, site);
  snprintf(key, sizeof key, "%s/pki/%s.key", fixture, site);
  snprintf(ca, sizeof ca, "%s/pki/ca.pem", fixture);
  snprintf(target, sizeof target, "127.0.0.1:%d", agg_port);
  rpc_client_config cfg = {.target = target, .ca_file = ca, .cert_file = cert, .key_file = key};
  rpc_client *c = rpc_client_create(&cfg, err, sizeof err);
  CHECK_MSG(c != NULL, "rpc client for %s: %s", site, err);
  return c;
}

static Fedlora__V1__JoinResponse *join(rpc_client *c, const char *fingerprint) {
  Fedlora__V1__JoinRequest req = FEDLORA__V1__JOIN_REQUEST__INIT;
  req.base_model_fingerprint = (char *)fingerprint;
  req.train_examples = DECLARED_EXAMPLES;
  req.client_version = "test_fed_bad_updates";
  Fedlora__V1__JoinResponse *plan = NULL;
  rpc_status st;
  int rc = rpc_unary(c, FED_JOIN, &req.base, &fedlora__v1__join_response__descriptor, (ProtobufCMessage **)&plan, 30,
                     &st);
  CHECK_MSG(rc == 0, "Join: %s", st.message);
  return plan;
}

static int round_is_open(rpc_client *c) {
  Fedlora__V1__StatusRequest req = FEDLORA__V1__STATUS_REQUEST__INIT;
  Fedlora__V1__Status *s = NULL;
  rpc_status st;
  if (rpc_unary(c, FED_GET_STATUS, &req.base, &fedlora__v1__status__descriptor, (ProtobufCMessage **)&s, 10, &st) != 0)
    return 0;
  int open = s->round == 1 && s->round_state == FEDLORA__V1__STATUS__ROUND_STATE__OPEN;
  protobuf_c_message_free_unpacked(&s->base, NULL);
  return open;
}

/* The global adapter of a committed round into out (payload_bytes(pl)); 0 or -1. */
static int download(rpc_client *c, const payload_layout *pl, uint32_t round, float *out) {
  Fedlora__V1__DownloadRequest req = FEDLORA__V1__DOWNLOAD_REQUEST__INIT;
  req.round = round;
  rpc_stream *s = rpc_stream_open(c, FED_DOWNLOAD_ADAPTER, 30);
  rpc_stream_send(s, &req.base);
  rpc_stream_close_send(s);
  payload_rx rx = {0};
  char err[512] = "";
  int ok = 1, started = 0;
  ProtobufCMessage *m;
  while (rpc_stream_recv(s, &fedlora__v1__chunk__descriptor, &m) == 1) {
    Fedlora__V1__Chunk *ch = (Fedlora__V1__Chunk *)m;
    if (!started)
      ok = ch->header && payload_header_check(pl, ch->header, err, sizeof err) == 0 &&
           payload_rx_begin(&rx, ch->header->total_size, ch->header->sha256.data, payload_bytes(pl), err,
                            sizeof err) == 0;
    started = 1;
    if (ok) ok = payload_rx_chunk(&rx, ch->offset, ch->data.data, ch->data.len, err, sizeof err) == 0;
    protobuf_c_message_free_unpacked(m, NULL);
  }
  rpc_status st;
  int rc = rpc_stream_finish(s, &st);
  ok = ok && started && rc == 0 && payload_rx_end(&rx, err, sizeof err) == 0;
  CHECK_MSG(ok, "download of round %u: %s %s", round, st.message, err);
  if (ok) memcpy(out, rx.data, payload_bytes(pl));
  payload_rx_free(&rx);
  return ok ? 0 : -1;
}

/* One update as the test wants it sent: the header as given, then bytes[0..len) in chunks of CHUNK
 * starting at offset `skew` instead of 0 when skew is non-zero. Returns the status; *duplicate
 * from the response when OK. */
static grpc_status_code submit(rpc_client *c, const Fedlora__V1__UpdateHeader *h, const void *bytes, size_t len,
                               size_t skew, int *duplicate, rpc_status *st) {
  rpc_stream *s = rpc_stream_open(c, FED_SUBMIT_UPDATE, 30);
  size_t off = 0;
  do {
    Fedlora__V1__UpdateChunk chunk = FEDLORA__V1__UPDATE_CHUNK__INIT;
    chunk.header = off == 0 ? (Fedlora__V1__UpdateHeader *)h : NULL;
    chunk.offset = off + (off ? skew : 0);
    chunk.data.data = (uint8_t *)bytes + off;
    chunk.data.len = len - off < CHUNK ? len - off : CHUNK;
    if (rpc_stream_send(s, &chunk.base) != 0) break;
    off += chunk.data.len;
  } while (off < len);
  rpc_stream_close_send(s);
  ProtobufCMessage *m = NULL;
  rpc_stream_recv(s, &fedlora__v1__submit_response__descriptor, &m);
  rpc_stream_finish(s, st);
  if (m) {
    *duplicate = ((Fedlora__V1__SubmitResponse *)m)->duplicate;
    protobuf_c_message_free_unpacked(m, NULL);
  }
  return st->code;
}

/* ------------------------------------------------------------------ the cases */

typedef struct {
  rpc_client *alpha, *beta, *gamma;
  const char *fingerprint;
  const payload_layout *pl;
  float *global0;           /* (pl->floats) the global adapter of round 0 */
  float *good;              /* (pl->floats) a valid update: the global adapter nudged */
  size_t bytes;
  uint8_t sha[32];          /* of good */
  Fedlora__V1__PayloadHeader ph;
  Fedlora__V1__UpdateHeader h;
  char *before;             /* state_dir snapshot the case must leave as it is */
} bench;

/* The header of `good` for round 1 from a site that declared DECLARED_EXAMPLES. */
static void header_reset(bench *b) {
  payload_header_free_tensors(&b->ph);
  fedlora__v1__payload_header__init(&b->ph);
  payload_header_fill(b->pl, &b->ph, b->sha);
  fedlora__v1__update_header__init(&b->h);
  b->h.round = 1;
  b->h.example_count = DECLARED_EXAMPLES / 2;
  b->h.payload = &b->ph;
}

/* GetStatus from c answers OK: the aggregator still serves. */
static int serving(rpc_client *c) {
  Fedlora__V1__StatusRequest req = FEDLORA__V1__STATUS_REQUEST__INIT;
  Fedlora__V1__Status *s = NULL;
  rpc_status st;
  if (rpc_unary(c, FED_GET_STATUS, &req.base, &fedlora__v1__status__descriptor, (ProtobufCMessage **)&s, 10, &st) != 0)
    return 0;
  protobuf_c_message_free_unpacked(&s->base, NULL);
  return 1;
}

/* Checks the status and its message, that a good call is answered after it, and that state_dir
 * is as before. */
static void expect_refused(bench *b, const char *what, grpc_status_code got, const rpc_status *st,
                           grpc_status_code want, const char *words) {
  CHECK_MSG(got == want, "%s: status %d (%s), expected %d", what, (int)got, st->message, (int)want);
  CHECK_MSG(strstr(st->message, words) != NULL, "%s: message \"%s\" lacks \"%s\"", what, st->message, words);
  CHECK_MSG(serving(b->alpha), "%s: the aggregator does not answer GetStatus after it", what);
  char *after = snapshot();
  CHECK_MSG(strcmp(b->before, after) == 0, "%s: state_dir changed:\nbefore\n%safter\n%s", what, b->before, after);
  free(after);
  printf("ok   %-44s %d  %.110s\n", what, (int)got, st->message);
}

static void send_refused(bench *b, const char *what, rpc_client *c, const void *bytes, size_t len, size_t skew,
                         grpc_status_code want, const char *words) {
  rpc_status st;
  int dup = 0;
  grpc_status_code got = submit(c, &b->h, bytes, len, skew, &dup, &st);
  expect_refused(b, what, got, &st, want, words);
  header_reset(b);
}

static void malformed_streams(bench *b) {
  rpc_status st;
  rpc_stream *s = rpc_stream_open(b->alpha, FED_SUBMIT_UPDATE, 30);
  rpc_stream_send_raw(s, "\xff\xff\xff\xff not protobuf", 17);
  rpc_stream_close_send(s);
  rpc_stream_finish(s, &st);
  expect_refused(b, "undecodable message", st.code, &st, GRPC_STATUS_INVALID_ARGUMENT, "is not a valid");

  s = rpc_stream_open(b->alpha, FED_SUBMIT_UPDATE, 30);
  rpc_stream_close_send(s);
  rpc_stream_finish(s, &st);
  expect_refused(b, "empty stream", st.code, &st, GRPC_STATUS_INVALID_ARGUMENT, "carried no message");

  Fedlora__V1__UpdateChunk chunk = FEDLORA__V1__UPDATE_CHUNK__INIT;
  chunk.data.data = (uint8_t *)b->good;
  chunk.data.len = CHUNK;
  s = rpc_stream_open(b->alpha, FED_SUBMIT_UPDATE, 30);
  rpc_stream_send(s, &chunk.base);
  rpc_stream_close_send(s);
  rpc_stream_finish(s, &st);
  expect_refused(b, "first chunk without a header", st.code, &st, GRPC_STATUS_INVALID_ARGUMENT,
                 "must carry its header");

  send_refused(b, "a gap between chunks", b->alpha, b->good, b->bytes, 4, GRPC_STATUS_INVALID_ARGUMENT,
               "expected 1000");
  float *longer = calloc(b->pl->floats + 1, sizeof(float));
  memcpy(longer, b->good, b->bytes);
  send_refused(b, "more bytes than declared", b->alpha, longer, b->bytes + 4, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "runs past the declared size");
  free(longer);
  send_refused(b, "fewer bytes than declared", b->alpha, b->good, b->bytes - 4, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "the stream ended after");
  b->ph.sha256.data = (uint8_t *)"0123456789abcdef0123456789abcdef";
  send_refused(b, "digest of other bytes", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_DATA_LOSS,
               "SHA-256 mismatch");
  b->ph.sha256.len = 16;
  send_refused(b, "a 16-byte digest", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "sha256 must be 32 bytes");
  b->h.payload = NULL;
  send_refused(b, "no payload header", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "has no payload header");
}

static void wrong_round_and_site(bench *b) {
  b->h.round = 2;
  send_refused(b, "round 2 while round 1 is open", b->alpha, b->good, b->bytes, 0,
               GRPC_STATUS_FAILED_PRECONDITION, "round 2 is not open (the open round is 1)");
  b->h.round = 0;
  send_refused(b, "round 0", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_FAILED_PRECONDITION,
               "round 0 is not open");
  send_refused(b, "a site that never joined", b->gamma, b->good, b->bytes, 0, GRPC_STATUS_FAILED_PRECONDITION,
               "site 'gamma' is not selected for round 1");
}

static void wrong_shapes(bench *b) {
  b->ph.tensors[0]->shape[0] += 1;
  send_refused(b, "A with one row too many", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "shape [5,64], expected [4,64]");
  b->ph.tensors[1]->n_shape = 1;
  send_refused(b, "B as a vector", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT, "shape [64]");
  b->ph.n_tensors -= 1;
  b->ph.total_size -= b->ph.tensors[b->ph.n_tensors]->length;
  send_refused(b, "the last tensor left out", b->alpha, b->good, b->ph.total_size, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "missing tensor");
  b->ph.tensors[2]->dtype = FEDLORA__V1__DTYPE__DTYPE_F16;
  send_refused(b, "F16 instead of F32", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "dtype F16, expected F32");
  b->ph.tensors[0]->name = "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight";
  send_refused(b, "a tensor the plan does not train", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "unknown tensor");
  Fedlora__V1__TensorSpec *t0 = b->ph.tensors[0];
  b->ph.tensors[0] = b->ph.tensors[1];
  b->ph.tensors[1] = t0;
  rpc_status st;
  int dup;
  grpc_status_code got = submit(b->alpha, &b->h, b->good, b->bytes, 0, &dup, &st);
  b->ph.tensors[1] = b->ph.tensors[0];
  b->ph.tensors[0] = t0; /* payload_header_free_tensors frees through tensors[0] */
  expect_refused(b, "two tensors swapped", got, &st, GRPC_STATUS_INVALID_ARGUMENT, "is at position 0, expected 1");
  b->ph.total_size += 4;
  send_refused(b, "total_size off by one float", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "total_size");
}

static void bad_values(bench *b) {
  float *v = malloc(b->bytes);
  const float bad[] = {NAN, INFINITY, -INFINITY};
  const char *names[] = {"NaN", "+Inf", "-Inf"};
  for (int i = 0; i < 3; i++) {
    memcpy(v, b->good, b->bytes);
    v[b->pl->floats - 1] = bad[i];
    sha256_bytes(v, b->bytes, b->sha);
    header_reset(b);
    char what[64];
    snprintf(what, sizeof what, "%s in the last element", names[i]);
    send_refused(b, what, b->alpha, v, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT, names[i]);
  }
  free(v);
  sha256_bytes(b->good, b->bytes, b->sha);
  header_reset(b);
  b->h.example_count = 0;
  send_refused(b, "example_count 0", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "example_count must be positive");
  b->h.example_count = DECLARED_EXAMPLES + 1;
  send_refused(b, "more examples than declared at Join", b->alpha, b->good, b->bytes, 0,
               GRPC_STATUS_INVALID_ARGUMENT, "exceeds the 100 training examples");
}

/* Sends raw bytes as the only message of a call to path and returns its status. */
static grpc_status_code raw_call(rpc_client *c, const char *path, const void *bytes, size_t len, rpc_status *st) {
  rpc_stream *s = rpc_stream_open(c, path, 30);
  if (bytes) rpc_stream_send_raw(s, bytes, len);
  rpc_stream_close_send(s);
  ProtobufCMessage *m = NULL;
  while (rpc_stream_recv(s, &fedlora__v1__chunk__descriptor, &m) == 1) protobuf_c_message_free_unpacked(m, NULL);
  rpc_stream_finish(s, st);
  return st->code;
}

/* Not protobuf on every method, and messages above the 4 MiB + 64 KiB receive limit. */
static void garbage_on_every_rpc(bench *b) {
  static const struct {
    const char *path, *type;
  } rpcs[] = {{FED_JOIN, "JoinRequest"},
              {FED_AWAIT_ROUND, "AwaitRoundRequest"},
              {FED_DOWNLOAD_ADAPTER, "DownloadRequest"},
              {FED_GET_STATUS, "StatusRequest"}};
  rpc_status st;
  for (size_t i = 0; i < sizeof rpcs / sizeof rpcs[0]; i++) {
    char what[96], words[96];
    snprintf(what, sizeof what, "not protobuf: %s", strrchr(rpcs[i].path, '/') + 1);
    snprintf(words, sizeof words, "is not a valid fedlora.v1.%s", rpcs[i].type);
    grpc_status_code got = raw_call(b->alpha, rpcs[i].path, "\xff\xff\xff\xff not protobuf", 17, &st);
    expect_refused(b, what, got, &st, GRPC_STATUS_INVALID_ARGUMENT, words);
  }
  size_t big = 5u << 20;
  char *junk = calloc(big, 1);
  grpc_status_code got = raw_call(b->alpha, FED_SUBMIT_UPDATE, junk, big, &st);
  expect_refused(b, "a 5 MiB message to SubmitUpdate", got, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, "larger than max");
  got = raw_call(b->alpha, FED_JOIN, junk, big, &st);
  expect_refused(b, "a 5 MiB Join request", got, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, "larger than max");
  free(junk);
  got = raw_call(b->alpha, FED_JOIN, NULL, 0, &st);
  expect_refused(b, "Join without a request message", got, &st, GRPC_STATUS_INVALID_ARGUMENT,
                 "carried no request message");
}

/* The good update in chunks of CHUNK bytes sent in the order of `chunks` (chunk indices). */
static void send_chunks_refused(bench *b, const char *what, const int *chunks, int n, const char *words) {
  rpc_stream *s = rpc_stream_open(b->alpha, FED_SUBMIT_UPDATE, 30);
  for (int k = 0; k < n; k++) {
    Fedlora__V1__UpdateChunk chunk = FEDLORA__V1__UPDATE_CHUNK__INIT;
    size_t off = (size_t)chunks[k] * CHUNK;
    chunk.header = k == 0 ? &b->h : NULL;
    chunk.offset = off;
    chunk.data.data = (uint8_t *)b->good + off;
    chunk.data.len = b->bytes - off < CHUNK ? b->bytes - off : CHUNK;
    if (rpc_stream_send(s, &chunk.base) != 0) break;
  }
  rpc_stream_close_send(s);
  rpc_status st;
  rpc_stream_finish(s, &st);
  expect_refused(b, what, st.code, &st, GRPC_STATUS_INVALID_ARGUMENT, words);
}

static void chunk_order(bench *b) {
  const int repeated[] = {0, 1, 1, 2, 3, 4, 5, 6, 7, 8}, reordered[] = {0, 2, 1, 3, 4, 5, 6, 7, 8};
  send_chunks_refused(b, "a chunk sent twice", repeated, 10, "chunk at offset 1000, expected 2000");
  send_chunks_refused(b, "two chunks swapped", reordered, 9, "chunk at offset 2000, expected 1000");
  b->ph.tensors[1]->length += 4;
  send_refused(b, "a tensor's length not its shape's", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_INVALID_ARGUMENT,
               "does not match its shape and dtype");
}

static void wrong_identity_and_method(bench *b) {
  Fedlora__V1__JoinRequest req = FEDLORA__V1__JOIN_REQUEST__INIT;
  char other[65];
  snprintf(other, sizeof other, "%s", b->fingerprint);
  other[0] = other[0] == '0' ? '1' : '0';
  req.base_model_fingerprint = other;
  req.train_examples = DECLARED_EXAMPLES;
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  rpc_unary(b->alpha, FED_JOIN, &req.base, &fedlora__v1__join_response__descriptor, &resp, 30, &st);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  expect_refused(b, "Join with another base model's fingerprint", st.code, &st, GRPC_STATUS_FAILED_PRECONDITION,
                 "base model mismatch");
  req.base_model_fingerprint = (char *)b->fingerprint;
  req.train_examples = 0;
  rpc_unary(b->alpha, FED_JOIN, &req.base, &fedlora__v1__join_response__descriptor, &resp, 30, &st);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  expect_refused(b, "Join declaring no training examples", st.code, &st, GRPC_STATUS_INVALID_ARGUMENT,
                 "train_examples must be positive");
  Fedlora__V1__StatusRequest any = FEDLORA__V1__STATUS_REQUEST__INIT;
  rpc_unary(b->alpha, "/fedlora.v1.Federation/DropTables", &any.base, &fedlora__v1__status__descriptor, &resp, 30,
            &st);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  expect_refused(b, "an unknown method", st.code, &st, GRPC_STATUS_UNIMPLEMENTED,
                 "unknown method /fedlora.v1.Federation/DropTables");
}

static double seconds_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* 3 x PEER_LIMIT / 2 update streams from alpha that never send: PEER_LIMIT are taken (and cut off
 * at the idle timeout), the rest refused at once; beta is served meanwhile. Then a stream that
 * sends its header and first chunk and then nothing. */
static void flood_and_slowloris(bench *b) {
  enum { STREAMS = 3 * PEER_LIMIT / 2 };
  rpc_stream *s[STREAMS];
  for (int i = 0; i < STREAMS; i++) s[i] = rpc_stream_open(b->alpha, FED_SUBMIT_UPDATE, 30);
  usleep(300000); /* every call has reached the dispatcher */
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK_MSG(serving(b->beta), "beta is not served while alpha floods");
  double beta_s = seconds_since(&t0);
  CHECK_MSG(beta_s < 1.0, "beta waited %.2f s while alpha flooded", beta_s);
  int refused = 0, cut = 0;
  rpc_status st, other = {.code = GRPC_STATUS_OK, .message = ""};
  for (int i = 0; i < STREAMS; i++) {
    rpc_stream_finish(s[i], &st);
    if (st.code == GRPC_STATUS_RESOURCE_EXHAUSTED && strstr(st.message, "per-client limit"))
      refused++;
    else if (st.code == GRPC_STATUS_DEADLINE_EXCEEDED && strstr(st.message, "nothing from the client"))
      cut++;
    else
      other = st;
  }
  CHECK_MSG(refused == STREAMS - PEER_LIMIT && cut == PEER_LIMIT,
            "%d streams from one site: %d refused, %d cut off (expected %d and %d); another: %d %s", STREAMS,
            refused, cut, STREAMS - PEER_LIMIT, PEER_LIMIT, (int)other.code, other.message);
  st = (rpc_status){.code = GRPC_STATUS_RESOURCE_EXHAUSTED};
  snprintf(st.message, sizeof st.message, "%d refused with the per-client limit, %d cut off, beta served in %.2f s",
           refused, cut, beta_s);
  expect_refused(b, "12 concurrent streams from one site", st.code, &st, GRPC_STATUS_RESOURCE_EXHAUSTED, "refused");

  clock_gettime(CLOCK_MONOTONIC, &t0);
  rpc_stream *slow = rpc_stream_open(b->alpha, FED_SUBMIT_UPDATE, 30);
  Fedlora__V1__UpdateChunk chunk = FEDLORA__V1__UPDATE_CHUNK__INIT;
  chunk.header = &b->h;
  chunk.data.data = (uint8_t *)b->good;
  chunk.data.len = CHUNK;
  rpc_stream_send(slow, &chunk.base);
  rpc_stream_finish(slow, &st); /* never half-closed: only the server can end it */
  double slow_s = seconds_since(&t0);
  CHECK_MSG(slow_s > IDLE_TIMEOUT_S - 0.5 && slow_s < IDLE_TIMEOUT_S + 5, "the stalled stream ended after %.1f s",
            slow_s);
  expect_refused(b, "a stream that stops sending (slowloris)", st.code, &st, GRPC_STATUS_DEADLINE_EXCEEDED,
                 "nothing from the client for 2000 ms");
}

/* The good update is accepted and stored as sent; again the same bytes: OK and duplicate; other
 * bytes for the same round: ALREADY_EXISTS. */
static void accepted_then_duplicates(bench *b) {
  rpc_status st;
  int dup = -1;
  grpc_status_code got = submit(b->alpha, &b->h, b->good, b->bytes, 0, &dup, &st);
  CHECK_MSG(got == GRPC_STATUS_OK && dup == 0, "the good update: status %d (%s), duplicate %d", (int)got, st.message,
            dup);
  char pending[1024];
  snprintf(pending, sizeof pending, "%s/pending/0001/alpha.bin", state_dir);
  size_t len = 0;
  char *stored = file_read(pending, &len);
  CHECK_MSG(stored && len == b->bytes && memcmp(stored, b->good, len) == 0, "%s is not the update sent", pending);
  free(stored);
  char *after = snapshot();
  CHECK_MSG(strcmp(after, b->before) != 0, "accepting an update changed nothing in state_dir");
  free(b->before);
  b->before = after;
  printf("ok   %-44s %d  stored in %s\n", "the good update", (int)got, pending);

  dup = -1;
  got = submit(b->alpha, &b->h, b->good, b->bytes, 0, &dup, &st);
  CHECK_MSG(got == GRPC_STATUS_OK && dup == 1, "the same bytes again: status %d (%s), duplicate %d", (int)got,
            st.message, dup);
  expect_refused(b, "the same bytes again (acknowledged)", got, &st, GRPC_STATUS_OK, "");

  float *other = malloc(b->bytes);
  memcpy(other, b->good, b->bytes);
  other[0] += 0.5f;
  sha256_bytes(other, b->bytes, b->sha);
  header_reset(b);
  send_refused(b, "a different second update", b->alpha, other, b->bytes, 0, GRPC_STATUS_ALREADY_EXISTS,
               "already submitted a different update for round 1");
  free(other);
}

static int run_finished(rpc_client *c) {
  Fedlora__V1__StatusRequest req = FEDLORA__V1__STATUS_REQUEST__INIT;
  Fedlora__V1__Status *s = NULL;
  rpc_status st;
  if (rpc_unary(c, FED_GET_STATUS, &req.base, &fedlora__v1__status__descriptor, (ProtobufCMessage **)&s, 10, &st) != 0)
    return 0;
  int done = s->run_state == FEDLORA__V1__STATUS__RUN_STATE__FINISHED;
  protobuf_c_message_free_unpacked(&s->base, NULL);
  return done;
}

/* delta ← u - g as the aggregator forms it (in float), scaled to NORM_BOUND when above. */
static void bounded_delta(const float *u, const float *g, size_t n, float *delta) {
  double norm = 0;
  for (size_t i = 0; i < n; i++) {
    delta[i] = u[i] - g[i];
    norm += (double)delta[i] * delta[i];
  }
  norm = sqrt(norm);
  if (norm > NORM_BOUND)
    for (size_t i = 0; i < n; i++) delta[i] = (float)(delta[i] * (NORM_BOUND / norm));
}

/* beta sends an update of norm about 1e38 x sqrt(n): accepted, and round 1 (the last) commits as
 * global + the example-weighted mean of alpha's delta and beta's delta bounded to NORM_BOUND.
 * Then the run is over: a submission and a round never committed are refused. */
static void absurd_norm_then_finished(bench *b) {
  size_t n = b->pl->floats;
  float *absurd = malloc(b->bytes), *da = malloc(b->bytes), *db = malloc(b->bytes), *got = malloc(b->bytes);
  for (size_t i = 0; i < n; i++) absurd[i] = i % 2 ? -1e38f : 1e38f;
  sha256_bytes(absurd, b->bytes, b->sha);
  header_reset(b);
  b->h.example_count = DECLARED_EXAMPLES;
  rpc_status st;
  int dup = -1;
  grpc_status_code code = submit(b->beta, &b->h, absurd, b->bytes, 0, &dup, &st);
  CHECK_MSG(code == GRPC_STATUS_OK && dup == 0, "beta's absurd-norm update under norm bounding: status %d (%s)",
            (int)code, st.message);
  int finished = 0;
  for (int i = 0; i < 300 && !(finished = run_finished(b->alpha)); i++) usleep(100000);
  CHECK_MSG(finished, "the run did not finish within 30 s of both updates");
  if (finished && download(b->alpha, b->pl, 1, got) == 0) {
    bounded_delta(b->good, b->global0, n, da);
    bounded_delta(absurd, b->global0, n, db);
    double wa = DECLARED_EXAMPLES / 2, wb = DECLARED_EXAMPLES, worst = 0;
    for (size_t i = 0; i < n; i++) {
      float want = b->global0[i] + (float)((wa * da[i] + wb * db[i]) / (wa + wb));
      double diff = fabs((double)got[i] - want);
      if (!(diff <= worst)) worst = diff;
    }
    CHECK_MSG(worst < 1e-6, "round 1 differs from global + the mean of the bounded deltas by %g", worst);
    printf("ok   %-44s %d  committed round 1 = the bounded mean within %.2g\n", "an update of norm 1e38 (bounded)",
           (int)code, worst);
  }
  free(b->before);
  b->before = snapshot();
  sha256_bytes(b->good, b->bytes, b->sha);
  header_reset(b);
  b->h.round = 2;
  send_refused(b, "an update after the run finished", b->alpha, b->good, b->bytes, 0, GRPC_STATUS_FAILED_PRECONDITION,
               "the run has finished (1 rounds)");
  Fedlora__V1__DownloadRequest req = FEDLORA__V1__DOWNLOAD_REQUEST__INIT;
  req.round = 2;
  uint8_t wire[16];
  size_t len = fedlora__v1__download_request__pack(&req, wire);
  code = raw_call(b->alpha, FED_DOWNLOAD_ADAPTER, wire, len, &st);
  expect_refused(b, "download of a round never committed", code, &st, GRPC_STATUS_NOT_FOUND,
                 "round 2 has no committed adapter (last committed: 1)");
  free(absurd);
  free(da);
  free(db);
  free(got);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with the aggregator's, should it abort */
  snprintf(fixture, sizeof fixture, "%s/fedtest-base", harness_build(""));
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "bash '%s'", harness_source("tests/fed/fixture.sh"));
  if (system(cmd) != 0) {
    fprintf(stderr, "tests/fed/fixture.sh failed\n");
    return 1;
  }
  snprintf(run, sizeof run, "%s", harness_tmpdir());
  snprintf(state_dir, sizeof state_dir, "%s/agg", run);
  snprintf(agg_log, sizeof agg_log, "%s/agg.log", run);
  atexit(agg_kill);
  if (agg_start() != 0) return 1;

  char base[1100], fingerprint[65], err[512];
  snprintf(base, sizeof base, "%s/base", fixture);
  model m;
  CHECK_MSG(model_fingerprint(base, fingerprint, err, sizeof err) == 0, "%s", err);
  CHECK_MSG(model_load(&m, base, err, sizeof err) == 0, "%s", err);
  if (harness_failures) return harness_finish();
  bench b = {.alpha = client_for("alpha"), .beta = client_for("beta"), .gamma = client_for("gamma"),
             .fingerprint = fingerprint};
  Fedlora__V1__JoinResponse *plan = join(b.alpha, fingerprint), *plan_beta = join(b.beta, fingerprint);
  lora_config lc;
  lora_adapter ad;
  payload_layout pl;
  if (!plan || !plan_beta) return harness_finish(); /* the aggregator is killed at exit */
  CHECK_MSG(plan_lora_config(plan->lora, &lc, err, sizeof err) == 0, "plan: %s", err);
  CHECK_MSG(lora_build(&ad, &m.config, &lc, err, sizeof err) == 0, "%s", err);
  CHECK_MSG(payload_layout_build(&pl, &ad, &m.config, lc.freeze_a, err, sizeof err) == 0, "%s", err);
  if (harness_failures) return harness_finish();
  b.pl = &pl;
  b.bytes = payload_bytes(&pl);
  b.good = malloc(b.bytes);
  b.global0 = malloc(b.bytes);
  int open = 0;
  for (int i = 0; i < 100 && !(open = round_is_open(b.alpha)); i++) usleep(100000);
  CHECK_MSG(open, "round 1 did not open within 10 s of two sites joining");
  if (harness_failures == 0 && download(b.alpha, &pl, 0, b.global0) == 0) {
    for (size_t i = 0; i < pl.floats; i++) b.good[i] = b.global0[i] + 1e-3f * (float)((i % 7) + 1);
    sha256_bytes(b.good, b.bytes, b.sha);
    header_reset(&b);
    b.before = snapshot();
    CHECK_STR_CONTAINS(b.before, "rounds/0000/adapter_model.safetensors");
    malformed_streams(&b);
    garbage_on_every_rpc(&b);
    chunk_order(&b);
    wrong_round_and_site(&b);
    wrong_shapes(&b);
    bad_values(&b);
    wrong_identity_and_method(&b);
    flood_and_slowloris(&b);
    accepted_then_duplicates(&b);
    CHECK_MSG(round_is_open(b.alpha), "the round should still be open (beta has not submitted)");
    absurd_norm_then_finished(&b);
    CHECK_EQ_INT(agg_stop(), 0);
    char *after = snapshot();
    CHECK_MSG(strcmp(after, b.before) == 0, "stopping the aggregator changed state_dir:\nbefore\n%safter\n%s", b.before,
              after);
    free(after);
    free(b.before);
  }
  payload_header_free_tensors(&b.ph);
  free(b.good);
  free(b.global0);
  payload_layout_free(&pl);
  lora_free(&ad);
  model_free(&m);
  protobuf_c_message_free_unpacked(&plan->base, NULL);
  protobuf_c_message_free_unpacked(&plan_beta->base, NULL);
  rpc_client_free(b.alpha);
  rpc_client_free(b.gamma);
  rpc_client_free(b.beta);
  if (harness_failures == 0) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", run);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", run);
  } else {
    printf("aggregator log and state kept in %s\n", run);
  }
  return harness_finish();
}
