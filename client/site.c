#include "site.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "federation_api.h"
#include "fsutil.h"
#include "json_util.h"
#include "log.h"
#include "payload.h"
#include "payload_stream.h"
#include "rpc.h"
#include "site_audit.h"
#include "site_manifest.h"
#include "site_secagg.h"
#include "site_tls.h"
#include "site_train.h"

enum { RPC_TIMEOUT_S = 60, TRANSFER_TIMEOUT_S = 600, BACKOFF_MAX_MS = 30000 };

typedef struct {
  const site_config *cfg;
  volatile int *stop;
  site_tls tls;     /* the certificate in use, reloaded on SIGHUP */
  rpc_client *rpc;  /* replaced by site_tls_tick between calls */
  site_trainer *trainer;
  char site[128];
  uint64_t run_seed;
  char run_id[64];
  uint8_t plan_sha[32];          /* manifest_plan_digest of the plan applied at the first Join */
  int secagg;                    /* the plan's privacy.secagg, with its fixed-point encoding */
  double secagg_range, secagg_scale;
  int dp;                        /* the plan's privacy.dp is on */
  uint32_t last_round;
  int backoff_ms;
  int tls_refusals; /* handshakes refused in a row */
  int tty;
  audit_log *audit;  /* [audit] file; NULL: none */
} site;

/* ------------------------------------------------------------------ retries */

/* Exponential backoff with full jitter, interruptible by stop. */
static void backoff_sleep(site *s) {
  s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 250;
  if (s->backoff_ms > BACKOFF_MAX_MS) s->backoff_ms = BACKOFF_MAX_MS;
  int ms = s->backoff_ms / 2 + rand() % (s->backoff_ms / 2 + 1);
  for (int slept = 0; slept < ms && !*s->stop; slept += 50) usleep(50000);
}

/* A status after which retrying cannot help: the aggregator (or TLS) refused this site. A refused
 * client certificate is inferred from the connection closing during the handshake, which an
 * aggregator killed or restarting at that instant also does, so that one counts only when the
 * next attempt, after a backoff, ends the same way. */
static int status_is_refusal(site *s, const rpc_status *st) {
  if (st->code == GRPC_STATUS_PERMISSION_DENIED || st->code == GRPC_STATUS_UNAUTHENTICATED) return 1;
  if (st->code != GRPC_STATUS_UNAVAILABLE) return 0;
  if (strstr(st->message, "not accepted by this client")) return 1;
  return strstr(st->message, "TLS handshake refused") && s->tls_refusals++ > 0;
}

/* ------------------------------------------------------------------ join */

static int site_join(site *s, Fedlora__V1__JoinResponse **plan, rpc_status *st) {
  Fedlora__V1__JoinRequest req = FEDLORA__V1__JOIN_REQUEST__INIT;
  req.base_model_fingerprint = (char *)site_trainer_fingerprint(s->trainer);
  req.client_version = "fedlora-client " FEDLORA_VERSION;
  site_trainer_describe(s->trainer, &req);
  return rpc_unary(s->rpc, FED_JOIN, &req.base, &fedlora__v1__join_response__descriptor, (ProtobufCMessage **)plan,
                   RPC_TIMEOUT_S, st);
}

/* Checks a Join's plan: the first is applied, and every round's manifest must vouch for it; a
 * later one (the aggregator restarted) must not change what the site follows, else it would train
 * under a plan the aggregator no longer vouches for. 0, or the exit code. */
static int site_plan_take(site *s, const Fedlora__V1__JoinResponse *plan, int first) {
  char err[512];
  uint8_t sha[32];
  if (manifest_plan_digest(plan, sha) != 0) {
    log_error("out of memory hashing the run plan");
    return SITE_EXIT_FAILED;
  }
  if (first && site_trainer_plan(s->trainer, plan, err, sizeof err) != 0) {
    log_error("the run plan cannot be followed here: %s", err);
    return SITE_EXIT_FAILED;
  }
  if (first) {
    memcpy(s->plan_sha, sha, 32);
  } else if (memcmp(s->plan_sha, sha, 32) != 0) {
    snprintf(err, sizeof err, "the aggregator's plan changed beyond its round policy since this site joined "
             "(LoRA, training or privacy settings); restart the site to follow the new plan");
    log_error("%s", err);
    site_audit_refused(s->audit, "join", s->last_round, GRPC_STATUS_FAILED_PRECONDITION, err);
    return SITE_EXIT_REFUSED;
  }
  return 0;
}

/* Joins, retrying while the aggregator is unreachable. 0, or the exit code. */
static int site_join_retry(site *s, int first) {
  for (;;) {
    if (*s->stop) return SITE_EXIT_STOPPED;
    site_tls_tick(&s->tls, &s->rpc);
    Fedlora__V1__JoinResponse *plan = NULL;
    rpc_status st;
    if (site_join(s, &plan, &st) == 0) {
      int rc = site_plan_take(s, plan, first);
      if (rc == 0 && first) {
        snprintf(s->site, sizeof s->site, "%s", plan->site);
        s->run_seed = plan->rounds ? plan->rounds->seed : 0;
        snprintf(s->run_id, sizeof s->run_id, "%s", plan->run_id);
        s->secagg = plan->privacy && plan->privacy->secagg;
        s->secagg_range = s->secagg ? plan->privacy->secagg_clip_range : 0;
        s->secagg_scale = s->secagg ? plan->privacy->secagg_scale : 0;
        s->dp = plan->privacy && plan->privacy->dp != FEDLORA__V1__DP_MODE__DP_OFF;
        site_audit_joined(s->audit, plan->run_id, plan->site, s->cfg->client.server,
                          site_trainer_fingerprint(s->trainer));
        log_info("joined run %s as '%s': %u rounds, LoRA r=%u on %zu modules, %u local steps", plan->run_id,
                 plan->site, plan->rounds ? plan->rounds->total_rounds : 0, plan->lora ? plan->lora->rank : 0,
                 plan->lora ? plan->lora->n_target_modules : 0, plan->train ? plan->train->local_steps : 0);
      }
      protobuf_c_message_free_unpacked(&plan->base, NULL);
      s->backoff_ms = s->tls_refusals = 0;
      return rc;
    }
    if (status_is_refusal(s, &st) || st.code == GRPC_STATUS_FAILED_PRECONDITION ||
        st.code == GRPC_STATUS_INVALID_ARGUMENT) {
      log_error("the aggregator refused this site: %s", st.message);
      site_audit_refused(s->audit, "join", 0, st.code, st.message);
      return SITE_EXIT_REFUSED;
    }
    log_warn("cannot join yet (%s); retrying", st.message);
    backoff_sleep(s);
  }
}

/* ------------------------------------------------------------------ transfers */

/* Downloads a round's global adapter into out (layout floats), checking its digest. */
static int site_download(site *s, uint32_t round, const uint8_t *want_sha, float *out, rpc_status *st) {
  const payload_layout *pl = site_trainer_layout(s->trainer);
  Fedlora__V1__DownloadRequest req = FEDLORA__V1__DOWNLOAD_REQUEST__INIT;
  req.round = round;
  rpc_stream *call = rpc_stream_open(s->rpc, FED_DOWNLOAD_ADAPTER, TRANSFER_TIMEOUT_S);
  rpc_stream_send(call, &req.base);
  rpc_stream_close_send(call);
  payload_rx rx = {0};
  char err[512] = "";
  int ok = 1, got_header = 0;
  ProtobufCMessage *m;
  while (rpc_stream_recv(call, &fedlora__v1__chunk__descriptor, &m) == 1) {
    Fedlora__V1__Chunk *c = (Fedlora__V1__Chunk *)m;
    if (ok && !got_header) {
      ok = c->header && payload_header_check(pl, c->header, err, sizeof err) == 0 &&
           (!want_sha || memcmp(c->header->sha256.data, want_sha, 32) == 0) &&
           payload_rx_begin(&rx, c->header->total_size, c->header->sha256.data, payload_bytes(pl), err,
                            sizeof err) == 0;
      if (!ok && !err[0]) snprintf(err, sizeof err, "the adapter is not the one the round announced");
      got_header = 1;
    }
    if (ok) ok = payload_rx_chunk(&rx, c->offset, c->data.data, c->data.len, err, sizeof err) == 0;
    protobuf_c_message_free_unpacked(m, NULL);
  }
  int rc = rpc_stream_finish(call, st);
  if (rc == 0 && ok && got_header && payload_rx_end(&rx, err, sizeof err) == 0 &&
      payload_check_finite(pl, (const float *)rx.data, err, sizeof err) == 0) {
    memcpy(out, rx.data, payload_bytes(pl));
    site_audit_adapter_received(s->audit, round, rx.want, rx.size);
  } else if (rc == 0) {
    st->code = GRPC_STATUS_DATA_LOSS;
    snprintf(st->message, sizeof st->message, "global adapter of round %u: %s", round,
             err[0] ? err : "no data received");
    rc = -1;
  }
  payload_rx_free(&rx);
  return rc;
}

static int site_submit(site *s, uint32_t round, const float *update, const Fedlora__V1__SiteMetrics *metrics,
                       int *duplicate, rpc_status *st) {
  const payload_layout *pl = site_trainer_layout(s->trainer);
  size_t total = payload_bytes(pl);
  uint8_t sha[32];
  sha256_bytes(update, total, sha);
  Fedlora__V1__PayloadHeader ph = FEDLORA__V1__PAYLOAD_HEADER__INIT;
  payload_header_fill(pl, &ph, sha);
  Fedlora__V1__UpdateHeader header = FEDLORA__V1__UPDATE_HEADER__INIT;
  header.round = round;
  header.example_count = site_trainer_examples(s->trainer);
  header.payload = &ph;
  header.metrics = (Fedlora__V1__SiteMetrics *)metrics;
  rpc_stream *call = rpc_stream_open(s->rpc, FED_SUBMIT_UPDATE, TRANSFER_TIMEOUT_S);
  /* a stream that failed says why at rpc_stream_finish */
  payload_send_stream(call, &fedlora__v1__update_chunk__descriptor, &header.base, update, total, NULL);
  rpc_stream_close_send(call);
  ProtobufCMessage *m = NULL;
  rpc_stream_recv(call, &fedlora__v1__submit_response__descriptor, &m);
  int rc = rpc_stream_finish(call, st);
  payload_header_free_tensors(&ph);
  if (m) {
    Fedlora__V1__SubmitResponse *r = (Fedlora__V1__SubmitResponse *)m;
    *duplicate = r->duplicate;
    if (r->sha256.len != 32 || memcmp(r->sha256.data, sha, 32) != 0) {
      st->code = GRPC_STATUS_DATA_LOSS;
      snprintf(st->message, sizeof st->message, "the aggregator acknowledged other bytes than those sent");
      rc = -1;
    }
    protobuf_c_message_free_unpacked(m, NULL);
  }
  site_audit_update_sent(s->audit, round, sha, total, header.example_count,
                         rc == 0 ? (*duplicate ? "duplicate" : "accepted") : "not_taken", rc == 0 ? NULL : st->message);
  return rc;
}

/* ------------------------------------------------------------------ the round */

/* state_dir/updates/rNNNN-<first 16 hex of the global digest>.bin: this round's update, written
 * before it is sent. */
static void update_cache_path(const site *s, uint32_t round, const uint8_t *global_sha, char *out, size_t cap) {
  char hex[65];
  sha256_hex(global_sha, hex);
  snprintf(out, cap, "%s/updates/r%04u-%.16s.bin", s->cfg->client.state_dir, round, hex);
}

/* The cache file: the update's bytes, then its metrics as six doubles. */
enum { CACHE_METRICS = 6 };

static int cache_read(const char *path, float *update, size_t bytes, Fedlora__V1__SiteMetrics *metrics) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  double m[CACHE_METRICS];
  size_t got = fread(update, 1, bytes, f), got_m = fread(m, sizeof(double), CACHE_METRICS, f);
  fclose(f);
  if (got != bytes || got_m != CACHE_METRICS) return -1;
  fedlora__v1__site_metrics__init(metrics);
  metrics->train_loss = m[0];
  metrics->val_loss_before = m[1];
  metrics->tokens = (uint64_t)m[2];
  metrics->steps = (uint32_t)m[3];
  metrics->seconds = m[4];
  metrics->eval_seconds = m[5];
  return 0;
}

static int cache_write(const char *path, const float *update, size_t bytes, const Fedlora__V1__SiteMetrics *metrics,
                       char *err, size_t errlen) {
  double m[CACHE_METRICS] = {metrics->train_loss, metrics->val_loss_before, (double)metrics->tokens, metrics->steps,
                             metrics->seconds, metrics->eval_seconds};
  atomic_file af;
  if (atomic_file_open(&af, path, err, errlen) != 0) return -1;
  fwrite(update, 1, bytes, af.fp);
  fwrite(m, sizeof(double), CACHE_METRICS, af.fp);
  return atomic_file_commit(&af, err, errlen);
}

static void progress_line(void *user, long step, long steps, double loss, double tps) {
  site *s = user;
  if (s->tty)
    fprintf(stderr, "\rround %u  step %ld/%ld  loss %.4f  %.0f tokens/s   ", s->last_round + 1, step, steps, loss,
            tps);
  else if (step == steps || step % 10 == 0)
    log_info("round %u: step %ld/%ld, loss %.4f, %.0f tokens/s", s->last_round + 1, step, steps, loss, tps);
}

/* Does one TRAIN task. 0 when the update is in (or the round has moved on); -1 to back off and
 * retry; an exit code > 0 to stop. */
static int site_round(site *s, const Fedlora__V1__RoundTask *task) {
  const payload_layout *pl = site_trainer_layout(s->trainer);
  size_t bytes = payload_bytes(pl);
  float *global = malloc(bytes + 4), *update = malloc(bytes + 4);
  Fedlora__V1__SiteMetrics metrics;
  char path[4096], err[512];
  rpc_status st;
  int rc = -1, duplicate = 0;
  site_secagg sa = {0};
  if (task->adapter_sha256.len != 32) {
    log_error("round %u: the task carries no adapter digest", task->round);
    goto done;
  }
  /* Nothing of the task is acted on before the aggregator's signature vouches for it. */
  manifest vouched;
  int verdict = site_manifest_accept(s->cfg, s->audit, s->run_id, s->plan_sha, task, &vouched);
  if (verdict != 0) {
    rc = verdict;
    goto done;
  }
  /* Secure aggregation exchanges keys and shares before training (secagg_server.h). */
  if (s->secagg) {
    int r = site_secagg_begin(&sa, s->rpc, s->cfg, s->stop, s->run_id, s->secagg_range, s->secagg_scale, task, s->site,
                              pl->floats);
    if (r == SITE_SECAGG_REFUSED) {
      site_audit_refused(s->audit, "secagg", task->round, GRPC_STATUS_FAILED_PRECONDITION, sa.refusal);
      rc = SITE_EXIT_REFUSED;
      goto done;
    }
    if (r != 0) {
      rc = r == SITE_SECAGG_GONE ? 0 : -1;
      goto done;
    }
  }
  update_cache_path(s, task->round, vouched.adapter_sha, path, sizeof path);
  int cached = cache_read(path, update, bytes, &metrics) == 0;
  /* The masked vector is the delta from the global adapter, so secagg needs it even then. The
   * bytes must hash to the digest the manifest vouches for. */
  if ((!cached || s->secagg) && site_download(s, task->base_round, vouched.adapter_sha, global, &st) != 0) {
    log_warn("round %u: download failed: %s", task->round, st.message);
    goto done;
  }
  if (cached) {
    log_info("round %u: resubmitting the update trained before a restart", task->round);
  } else {
    s->last_round = task->round - 1;
    fedlora__v1__site_metrics__init(&metrics);
    if (site_trainer_round(s->trainer, global, task->site_seed, update, &metrics, progress_line, s, err,
                           sizeof err) != 0) {
      log_error("round %u: local training failed: %s", task->round, err);
      rc = SITE_EXIT_FAILED;
      goto done;
    }
    if (s->tty) fputc('\n', stderr);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/updates", s->cfg->client.state_dir);
    if (fs_mkdir_p(dir, 0700, err, sizeof err) != 0 || cache_write(path, update, bytes, &metrics, err, sizeof err)) {
      log_error("cannot keep the update in %s: %s", dir, err);
      rc = SITE_EXIT_FAILED;
      goto done;
    }
    log_info("round %u: trained %u steps, loss %.4f (validation before: %.4f) in %.1f s", task->round, metrics.steps,
             metrics.train_loss, metrics.val_loss_before, metrics.seconds);
  }
  if (s->secagg) {
    for (size_t i = 0; i < pl->floats; i++) global[i] = update[i] - global[i]; /* now the delta */
    /* Under DP the guarantee covers the noised update only: the losses, not noised, stay here. */
    Fedlora__V1__SiteMetrics sent = metrics;
    if (s->dp) sent.train_loss = sent.val_loss_before = NAN;
    int r = site_secagg_finish(&sa, global, site_trainer_examples(s->trainer), task->site_seed, &sent);
    if (r == 0) s->last_round = task->round;
    rc = r == SITE_SECAGG_GONE ? 0 : r;
  } else if (site_submit(s, task->round, update, &metrics, &duplicate, &st) == 0) {
    log_info("round %u: update %s", task->round, duplicate ? "was already in (acknowledged again)" : "accepted");
    s->last_round = task->round;
    rc = 0;
  } else if (st.code == GRPC_STATUS_FAILED_PRECONDITION || st.code == GRPC_STATUS_ALREADY_EXISTS) {
    log_warn("round %u: update not taken: %s", task->round, st.message);
    s->last_round = task->round;
    rc = 0;
  } else if (status_is_refusal(s, &st)) {
    log_error("round %u: the aggregator refused the update: %s", task->round, st.message);
    rc = SITE_EXIT_REFUSED;
  } else {
    log_warn("round %u: submit failed (%s); will retry", task->round, st.message);
  }
done:
  site_secagg_clear(&sa);
  free(global);
  free(update);
  return rc;
}

/* The run is over: the final adapter, vouched for by the FINISHED task's manifest like a round's
 * start, is downloaded and kept in state_dir/final. Returns the site's exit status. */
static int site_finish(site *s, const Fedlora__V1__RoundTask *task) {
  uint32_t final_round = task->final_round;
  manifest vouched;
  if (task->round != final_round || task->base_round != final_round) {
    log_error("the run's end names round %u but its task round %u and base round %u", final_round, task->round,
              task->base_round);
    return SITE_EXIT_FAILED;
  }
  int verdict = site_manifest_accept(s->cfg, s->audit, s->run_id, s->plan_sha, task, &vouched);
  if (verdict != 0) return verdict;
  const payload_layout *pl = site_trainer_layout(s->trainer);
  float *final = malloc(payload_bytes(pl) + 4);
  rpc_status st;
  char dir[4096], err[512];
  snprintf(dir, sizeof dir, "%s/final", s->cfg->client.state_dir);
  int rc = SITE_EXIT_FAILED;
  if (site_download(s, final_round, vouched.adapter_sha, final, &st) != 0)
    log_warn("cannot download the final adapter: %s", st.message);
  else if (site_trainer_save(s->trainer, final, dir, err, sizeof err) != 0)
    log_error("cannot save the final adapter: %s", err);
  else
    rc = SITE_EXIT_DONE;
  free(final);
  if (rc == SITE_EXIT_DONE) {
    site_audit_finished(s->audit, final_round, dir);
    log_info("the run has finished after round %u; final adapter in %s", final_round, dir);
  }
  return rc;
}

int site_run(const site_config *cfg, volatile int *stop, volatile int *reload) {
  site s = {.cfg = cfg, .stop = stop, .tls = {.cfg = cfg, .reload = reload}, .tty = isatty(2)};
  char err[1024];
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  if (fs_mkdir_p(cfg->client.state_dir, 0700, err, sizeof err) != 0) {
    log_error("%s", err);
    return SITE_EXIT_FAILED;
  }
  if (cfg->audit.file && !(s.audit = audit_open(cfg->audit.file, "fedlora-client", err, sizeof err))) {
    log_error("%s", err);
    return SITE_EXIT_FAILED;
  }
  s.trainer = site_trainer_build(cfg, err, sizeof err);
  if (!s.trainer) {
    log_error("%s", err);
    audit_close(s.audit);
    return SITE_EXIT_FAILED;
  }
  s.rpc = site_tls_connect(&s.tls, err, sizeof err);
  if (!s.rpc) {
    log_error("%s", err);
    site_trainer_free(s.trainer);
    audit_close(s.audit);
    return SITE_EXIT_FAILED;
  }
  int rc = site_join_retry(&s, 1);
  while (rc == 0) {
    if (*stop) {
      rc = SITE_EXIT_STOPPED;
      break;
    }
    site_tls_tick(&s.tls, &s.rpc);
    Fedlora__V1__AwaitRoundRequest req = FEDLORA__V1__AWAIT_ROUND_REQUEST__INIT;
    req.last_round = s.last_round;
    Fedlora__V1__RoundTask *task = NULL;
    rpc_status st;
    if (rpc_unary(s.rpc, FED_AWAIT_ROUND, &req.base, &fedlora__v1__round_task__descriptor, (ProtobufCMessage **)&task,
                  RPC_TIMEOUT_S, &st) != 0) {
      if (status_is_refusal(&s, &st)) {
        log_error("the aggregator refused this site: %s", st.message);
        site_audit_refused(s.audit, "await", s.last_round, st.code, st.message);
        rc = SITE_EXIT_REFUSED;
      } else if (st.code == GRPC_STATUS_FAILED_PRECONDITION) {
        rc = site_join_retry(&s, 0); /* a new aggregator state that does not know us yet */
      } else {
        log_warn("waiting for a round failed (%s); retrying", st.message);
        backoff_sleep(&s);
        if (st.code == GRPC_STATUS_UNAVAILABLE) rc = site_join_retry(&s, 0);
      }
      continue;
    }
    s.backoff_ms = s.tls_refusals = 0;
    if (task->kind == FEDLORA__V1__ROUND_TASK__KIND__FINISHED) {
      rc = site_finish(&s, task);
      protobuf_c_message_free_unpacked(&task->base, NULL);
      break;
    }
    if (task->kind == FEDLORA__V1__ROUND_TASK__KIND__TRAIN) {
      int r = site_round(&s, task);
      if (r > 0) rc = r;
      if (r < 0) backoff_sleep(&s);
    }
    protobuf_c_message_free_unpacked(&task->base, NULL);
  }
  rpc_client_free(s.rpc);
  site_trainer_free(s.trainer);
  audit_close(s.audit);
  return rc;
}
