#include "secagg_server.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "federation_api.h"
#include "fsutil.h"
#include "log.h"
#include "payload.h"
#include "payload_stream.h"
#include "secagg_metrics.h"
#include "site_metrics.h"

static const char *const stage_names[] = {"keys", "shares", "masked", "unmask", "done", "aborted"};

const char *secagg_stage_name(const secagg_round *sr) { return sr->active ? stage_names[sr->v.stage] : "none"; }

/* Values each site masks and sums: the update's floats, then its loss coordinates. */
static size_t masked_floats(const secagg_host *h) { return h->d + SECAGG_METRIC_WORDS; }

static int site_index(const secagg_round *sr, const char *name) {
  for (int k = 0; k < sr->v.p.n; k++)
    if (strcmp(sr->v.p.names[k], name) == 0) return k;
  return -1;
}

static int count(const uint8_t *set, int n) {
  int c = 0;
  for (int k = 0; k < n; k++) c += set[k] != 0;
  return c;
}

/* ------------------------------------------------------------------ the attempt */

void secagg_round_close(secagg_round *sr) {
  if (sr->active) {
    for (int k = 0; k < sr->v.p.n; k++) free(sr->cert[k]);
    if (sr->shares) OPENSSL_cleanse(sr->shares, (size_t)sr->v.p.n * (size_t)sr->v.p.n * sizeof *sr->shares);
    secagg_server_free(&sr->v);
  }
  free(sr->shares);
  free(sr->mean);
  json_decref(sr->metrics);
  memset(sr, 0, sizeof *sr);
}

int secagg_round_open(secagg_host *h, const char *run_id, const char *state_dir, const uint64_t *examples, double now,
                      char *err, size_t errlen) {
  secagg_round *sr = h->sr;
  const round_machine *rm = h->rm;
  const agg_config *c = h->cfg;
  secagg_round_close(sr);
  secagg_params p = {.round = rm->round, .range = c->privacy.secagg_clip_range, .scale = c->privacy.secagg_scale,
                     .d = masked_floats(h)};
  snprintf(p.run_id, sizeof p.run_id, "%s", run_id);
  uint64_t most = 0;
  for (int i = 0; i < rm->n_sites; i++) {
    if (!rm->sites[i].selected) continue;
    if (p.n == SECAGG_MAX_SITES)
      return snprintf(err, errlen, "secagg: more than %d sites selected", SECAGG_MAX_SITES), -1;
    snprintf(p.names[p.n++], SECAGG_NAME_BYTES, "%s", rm->sites[i].name); /* rm keeps them sorted */
    if (examples[i] > most) most = examples[i];
  }
  p.t = c->privacy.secagg_threshold ? c->privacy.secagg_threshold : secagg_default_threshold(p.n);
  if (secagg_server_build(&sr->v, &p, err, errlen) != 0) return -1;
  sr->active = 1;
  sr->round = rm->round;
  sr->attempt = rm->attempt;
  sr->stage_opened = now;
  sr->weight_scale = c->privacy.dp != AGG_DP_OFF || c->aggregation.weighting == AGG_WEIGHT_UNIFORM ? 0 : most;
  sr->shares = calloc((size_t)p.n * (size_t)p.n, sizeof *sr->shares);
  sr->metrics = json_object();
  if (!sr->shares) {
    secagg_round_close(sr);
    return snprintf(err, errlen, "secagg: out of memory for %d x %d shares", p.n, p.n), -1;
  }
  if (c->privacy.secagg_transcript) {
    snprintf(sr->dir, sizeof sr->dir, "%s/secagg/r%04u-a%u", state_dir, sr->round, sr->attempt);
    if (fs_mkdir_p(sr->dir, 0700, err, errlen) != 0) {
      secagg_round_close(sr);
      return -1;
    }
  }
  log_info("round %u attempt %u: secure aggregation over %d sites, threshold %d", sr->round, sr->attempt, p.n, p.t);
  return 0;
}

static void stage_advance(secagg_round *sr, double now) {
  sr->stage_opened = now;
  log_info("round %u attempt %u: secagg stage %s", sr->round, sr->attempt, stage_names[sr->v.stage]);
}

static void log_abort(const secagg_round *sr, const char *why) {
  log_warn("round %u attempt %u: secure aggregation aborted: %s; nothing was unmasked", sr->round, sr->attempt, why);
}

secagg_tick secagg_round_tick(secagg_host *h, double now) {
  secagg_round *sr = h->sr;
  if (!sr->active) return SECAGG_TICK_NONE;
  secagg_server *v = &sr->v;
  int n = v->p.n, due = now - sr->stage_opened >= h->cfg->privacy.secagg_stage_s;
  char err[512];
  int rc = 0;
  switch (v->stage) {
    case SECAGG_KEYS:
      if (!due && count(v->in_u1, n) < n) return SECAGG_TICK_NONE;
      rc = secagg_server_close_keys(v, err, sizeof err);
      break;
    case SECAGG_SHARES:
      if (!due && count(v->in_u2, n) < count(v->in_u1, n)) return SECAGG_TICK_NONE;
      rc = secagg_server_close_shares(v, err, sizeof err);
      break;
    case SECAGG_UNMASK: {
      if (!due && count(v->revealed, n) < count(v->in_u3, n)) return SECAGG_TICK_NONE;
      free(sr->mean);
      sr->mean = malloc(v->p.d * sizeof(float) + 1);
      if (!sr->mean) return log_abort(sr, "out of memory"), SECAGG_TICK_ABORT;
      if (secagg_server_finish(v, sr->mean, &sr->w_sum, err, sizeof err) != 0) return log_abort(sr, err), SECAGG_TICK_ABORT;
      log_info("round %u attempt %u: unmasked the sum of %d masked updates (%d reveals)", sr->round, sr->attempt,
               count(v->in_u3, n), count(v->revealed, n));
      return SECAGG_TICK_UNMASKED;
    }
    default:
      return SECAGG_TICK_NONE;
  }
  if (rc != 0) return log_abort(sr, err), SECAGG_TICK_ABORT;
  stage_advance(sr, now);
  return SECAGG_TICK_CHANGED;
}

int secagg_round_close_masked(secagg_host *h, double now) {
  secagg_round *sr = h->sr;
  char err[512];
  if (!sr->active) return -1;
  if (sr->v.stage == SECAGG_UNMASK) return 0;
  if (sr->v.stage != SECAGG_MASKED) {
    /* Quorum of masked inputs before the share stage closed cannot happen; refuse anyway. */
    log_abort(sr, "the round closed before the masked stage");
    return -1;
  }
  if (secagg_server_close_masked(&sr->v, err, sizeof err) != 0) return log_abort(sr, err), -1;
  stage_advance(sr, now);
  return 0;
}

int secagg_round_may_start(const secagg_round *sr, const char *site) {
  int k = sr->active ? site_index(sr, site) : -1;
  return k >= 0 && sr->v.stage == SECAGG_KEYS && !sr->advertised[k];
}

void secagg_round_task(const secagg_round *sr, Fedlora__V1__RoundTask *task, char **names) {
  for (int k = 0; k < sr->v.p.n; k++) names[k] = (char *)sr->v.p.names[k];
  task->secagg_sites = names;
  task->n_secagg_sites = (size_t)sr->v.p.n;
  task->secagg_threshold = (uint32_t)sr->v.p.t;
  task->secagg_weight_scale = sr->weight_scale;
}

/* ------------------------------------------------------------------ handler helpers */

/* Testing hook (see the header). */
static void crash_hook(const secagg_round *sr, const char *stage) {
  const char *want = getenv("FEDLORA_TEST_SECAGG_CRASH");
  if (!want || sr->attempt != 0 || strcmp(want, stage) != 0) return;
  log_warn("FEDLORA_TEST_SECAGG_CRASH=%s: killing the aggregator in stage %s", want, stage);
  raise(SIGKILL);
}

static void transcript(const secagg_round *sr, const char *site, const char *what, const void *bytes, size_t len) {
  if (!sr->dir[0]) return;
  char path[2300], err[512];
  snprintf(path, sizeof path, "%s/%s.%s", sr->dir, site, what);
  if (fs_write_atomic(path, bytes, len, err, sizeof err) != 0) log_error("secagg transcript: %s", err);
}

static void transcript_message(const secagg_round *sr, const char *site, const char *what,
                               const ProtobufCMessage *m) {
  if (!sr->dir[0]) return;
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len + 1);
  if (!buf) return;
  protobuf_c_message_pack(m, buf);
  transcript(sr, site, what, buf, len);
  free(buf);
}

/* The call names the open attempt and its caller is one of the attempt's sites. Lock held.
 * Sets *me, or fails the call. */
static grpc_status_code session_check(rpc_call *call, const secagg_host *h, uint32_t round, uint32_t attempt, int *me) {
  const secagg_round *sr = h->sr;
  const char *site = rpc_call_peer(call);
  if (!sr->active || sr->round != round || sr->attempt != attempt || sr->v.stage >= SECAGG_DONE)
    return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                         "round %u attempt %u is not the open secure-aggregation attempt (open: %s%u attempt %u)",
                         round, attempt, sr->active ? "round " : "none, last ", sr->round, sr->attempt);
  *me = site_index(sr, site);
  if (*me < 0)
    return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "site '%s' is not among the sites of round %u attempt %u",
                         site, round, attempt);
  return GRPC_STATUS_OK;
}

/* The long-polls (GetAdverts, GetShares, GetSurvivors): takes the lock, waits until the attempt of
 * the request has left `stage` (at most poll_seconds; *ready = 0 then, and the site asks again), and
 * checks the caller's session. GRPC_STATUS_OK with the lock held and *me set, or the refusal with
 * the lock released. */
static grpc_status_code poll_past(rpc_call *call, secagg_host *h, secagg_stage stage, int *me, int *ready) {
  const Fedlora__V1__SecAggPoll *q = (const Fedlora__V1__SecAggPoll *)rpc_call_request(call);
  pthread_mutex_lock(h->mu);
  double deadline = clock_seconds() + h->cfg->server.poll_seconds;
  for (;;) {
    const secagg_round *sr = h->sr;
    *ready = 1;
    if (!sr->active || sr->round != q->round || sr->attempt != q->attempt) break; /* session_check refuses */
    if (sr->v.stage > stage) break;
    *ready = 0;
    if (clock_seconds() >= deadline || atomic_load(h->stop) || rpc_call_done(call)) break;
    clock_cond_wait_ms(h->changed, h->mu, 200);
  }
  grpc_status_code code = session_check(call, h, q->round, q->attempt, me);
  if (code != GRPC_STATUS_OK) pthread_mutex_unlock(h->mu);
  return code;
}

static grpc_status_code reply_ack(rpc_call *call, secagg_host *h) {
  Fedlora__V1__SecAggAck ack = FEDLORA__V1__SEC_AGG_ACK__INIT;
  pthread_cond_broadcast(h->changed);
  return rpc_call_reply(call, &ack.base);
}

/* ------------------------------------------------------------------ stage 0: keys */

grpc_status_code secagg_handle_advertise(rpc_call *call, secagg_host *h) {
  const Fedlora__V1__SecAggAdvert *a = (const Fedlora__V1__SecAggAdvert *)rpc_call_request(call);
  if (a->c_pk.len != CRYPTO_X25519_BYTES || a->s_pk.len != CRYPTO_X25519_BYTES)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg advert: public keys of %zu and %zu bytes, want %d",
                         a->c_pk.len, a->s_pk.len, CRYPTO_X25519_BYTES);
  if (a->signature.len == 0 || a->signature.len > SECAGG_SIG_MAX)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg advert: signature of %zu bytes, want 1..%d",
                         a->signature.len, SECAGG_SIG_MAX);
  size_t cert_len = a->cert_pem ? strlen(a->cert_pem) : 0;
  if (cert_len == 0 || cert_len > FED_SECAGG_CERT_MAX)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg advert: certificate of %zu bytes, want 1..%d",
                         cert_len, FED_SECAGG_CERT_MAX);
  pthread_mutex_lock(h->mu);
  secagg_round *sr = h->sr;
  int me;
  grpc_status_code code = session_check(call, h, a->round, a->attempt, &me);
  char err[512];
  if (code == GRPC_STATUS_OK && a->from != (uint32_t)me)
    code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg advert: index %u, but '%s' is site %d", a->from,
                         rpc_call_peer(call), me);
  if (code == GRPC_STATUS_OK && sr->advertised[me])
    code = rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS, "'%s' already advertised keys for round %u attempt %u",
                         rpc_call_peer(call), a->round, a->attempt);
  if (code == GRPC_STATUS_OK) {
    crash_hook(sr, "keys");
    secagg_advert adv = {.from = me, .sig_len = a->signature.len};
    memcpy(adv.c_pk, a->c_pk.data, CRYPTO_X25519_BYTES);
    memcpy(adv.s_pk, a->s_pk.data, CRYPTO_X25519_BYTES);
    if (secagg_server_add_advert(&sr->v, &adv, err, sizeof err) != 0) {
      code = rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "%s", err);
    } else {
      sr->advertised[me] = 1;
      memcpy(sr->c_pk[me], adv.c_pk, CRYPTO_X25519_BYTES);
      memcpy(sr->s_pk[me], adv.s_pk, CRYPTO_X25519_BYTES);
      memcpy(sr->sig[me], a->signature.data, a->signature.len);
      sr->sig_len[me] = a->signature.len;
      sr->cert[me] = strdup(a->cert_pem);
      transcript_message(sr, rpc_call_peer(call), "advert", &a->base);
      code = reply_ack(call, h);
    }
  }
  pthread_mutex_unlock(h->mu);
  return code;
}

grpc_status_code secagg_handle_get_adverts(rpc_call *call, secagg_host *h) {
  int me, ready;
  grpc_status_code code = poll_past(call, h, SECAGG_KEYS, &me, &ready);
  if (code != GRPC_STATUS_OK) return code;
  const secagg_round *sr = h->sr;
  Fedlora__V1__SecAggAdverts out = FEDLORA__V1__SEC_AGG_ADVERTS__INIT;
  Fedlora__V1__SecAggAdvert items[SECAGG_MAX_SITES], *ptrs[SECAGG_MAX_SITES];
  out.ready = ready;
  for (int k = 0; ready && k < sr->v.p.n; k++) {
    if (!sr->v.in_u1[k]) continue;
    Fedlora__V1__SecAggAdvert *a = &items[out.n_adverts];
    fedlora__v1__sec_agg_advert__init(a);
    a->round = sr->round;
    a->attempt = sr->attempt;
    a->from = (uint32_t)k;
    a->c_pk = (ProtobufCBinaryData){CRYPTO_X25519_BYTES, (uint8_t *)sr->c_pk[k]};
    a->s_pk = (ProtobufCBinaryData){CRYPTO_X25519_BYTES, (uint8_t *)sr->s_pk[k]};
    a->signature = (ProtobufCBinaryData){sr->sig_len[k], (uint8_t *)sr->sig[k]};
    a->cert_pem = sr->cert[k];
    ptrs[out.n_adverts++] = a;
  }
  out.adverts = ptrs;
  code = rpc_call_reply(call, &out.base);
  pthread_mutex_unlock(h->mu);
  return code;
}

/* ------------------------------------------------------------------ stage 1: shares */

grpc_status_code secagg_handle_share_keys(rpc_call *call, secagg_host *h) {
  const Fedlora__V1__SecAggShares *m = (const Fedlora__V1__SecAggShares *)rpc_call_request(call);
  pthread_mutex_lock(h->mu);
  secagg_round *sr = h->sr;
  int me;
  char err[512];
  grpc_status_code code = session_check(call, h, m->round, m->attempt, &me);
  int n = sr->v.p.n;
  if (code == GRPC_STATUS_OK && m->n_shares > (size_t)n)
    code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg shares: %zu, at most %d", m->n_shares, n);
  if (code == GRPC_STATUS_OK && sr->v.in_u2[me])
    code = rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS, "'%s' already sent its shares", rpc_call_peer(call));
  uint8_t seen[SECAGG_MAX_SITES] = {0};
  for (size_t k = 0; code == GRPC_STATUS_OK && k < m->n_shares; k++) {
    const Fedlora__V1__SecAggSealedShare *s = m->shares[k];
    if (s->from != (uint32_t)me || s->to >= (uint32_t)n || s->to == (uint32_t)me || !sr->v.in_u1[s->to] ||
        seen[s->to] || s->ciphertext.len != SECAGG_SHARE_PLAIN || s->tag.len != CRYPTO_TAG_BYTES)
      code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                           "secagg share #%zu: from %u to %u with %zu + %zu bytes is not a share '%s' may send", k,
                           s->from, s->to, s->ciphertext.len, s->tag.len, rpc_call_peer(call));
    else
      seen[s->to] = 1;
  }
  if (code == GRPC_STATUS_OK && count(seen, n) != count(sr->v.in_u1, n) - 1)
    code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg shares: %d sent, %d sites advertised besides '%s'",
                         count(seen, n), count(sr->v.in_u1, n) - 1, rpc_call_peer(call));
  if (code == GRPC_STATUS_OK) {
    crash_hook(sr, "shares");
    if (secagg_server_add_shares(&sr->v, me, err, sizeof err) != 0) {
      code = rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "%s", err);
    } else {
      for (size_t k = 0; k < m->n_shares; k++) {
        const Fedlora__V1__SecAggSealedShare *s = m->shares[k];
        secagg_sealed_share *to = &sr->shares[(size_t)me * (size_t)n + s->to];
        to->from = me;
        to->to = (int)s->to;
        memcpy(to->ct, s->ciphertext.data, SECAGG_SHARE_PLAIN);
        memcpy(to->tag, s->tag.data, CRYPTO_TAG_BYTES);
      }
      transcript_message(sr, rpc_call_peer(call), "shares", &m->base);
      code = reply_ack(call, h);
    }
  }
  pthread_mutex_unlock(h->mu);
  return code;
}

grpc_status_code secagg_handle_get_shares(rpc_call *call, secagg_host *h) {
  int me, ready;
  grpc_status_code code = poll_past(call, h, SECAGG_SHARES, &me, &ready);
  if (code != GRPC_STATUS_OK) return code;
  const secagg_round *sr = h->sr;
  int n = sr->v.p.n;
  Fedlora__V1__SecAggShares out = FEDLORA__V1__SEC_AGG_SHARES__INIT;
  Fedlora__V1__SecAggSealedShare items[SECAGG_MAX_SITES], *ptrs[SECAGG_MAX_SITES];
  out.round = sr->round;
  out.attempt = sr->attempt;
  out.ready = ready;
  for (int i = 0; ready && i < n; i++) {
    if (i == me || !sr->v.in_u2[i]) continue;
    const secagg_sealed_share *s = &sr->shares[(size_t)i * (size_t)n + (size_t)me];
    Fedlora__V1__SecAggSealedShare *o = &items[out.n_shares];
    fedlora__v1__sec_agg_sealed_share__init(o);
    o->from = (uint32_t)i;
    o->to = (uint32_t)me;
    o->ciphertext = (ProtobufCBinaryData){SECAGG_SHARE_PLAIN, (uint8_t *)s->ct};
    o->tag = (ProtobufCBinaryData){CRYPTO_TAG_BYTES, (uint8_t *)s->tag};
    ptrs[out.n_shares++] = o;
  }
  out.shares = ptrs;
  code = rpc_call_reply(call, &out.base);
  pthread_mutex_unlock(h->mu);
  return code;
}

/* ------------------------------------------------------------------ stage 2: masked */

/* Checks the header against the open attempt (lock held). */
static grpc_status_code masked_check(rpc_call *call, secagg_host *h, const Fedlora__V1__SecAggMaskedHeader *hd,
                                     int *me) {
  grpc_status_code code = session_check(call, h, hd->round, hd->attempt, me);
  if (code != GRPC_STATUS_OK) return code;
  const secagg_round *sr = h->sr;
  if (sr->v.stage != SECAGG_MASKED || !sr->v.in_u2[*me] || sr->v.in_u3[*me])
    return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                         "a masked vector from '%s' is not expected now (stage %s)", rpc_call_peer(call),
                         secagg_stage_name(sr));
  if (round_check_submission(h->rm, rpc_call_peer(call), hd->round) != ROUND_ACCEPT)
    return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "round %u takes no submission from '%s' now",
                         hd->round, rpc_call_peer(call));
  if (hd->words != sr->v.p.d + 1 || hd->sha256.len != 32)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "masked vector of %llu words, want %zu (and a digest)",
                         (unsigned long long)hd->words, sr->v.p.d + 1);
  return GRPC_STATUS_OK;
}

static payload_chunk_view masked_chunk_view(const ProtobufCMessage *msg) {
  const Fedlora__V1__SecAggMaskedChunk *c = (const Fedlora__V1__SecAggMaskedChunk *)msg;
  return (payload_chunk_view){c->header != NULL, c->offset, c->data.data, c->data.len};
}

grpc_status_code secagg_handle_submit_masked(rpc_call *call, secagg_host *h) {
  ProtobufCMessage *msg = NULL;
  int rc = rpc_call_recv(call, &msg);
  if (rc <= 0)
    return rc < 0 ? rpc_call_status(call)
                  : rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "the masked stream carried no message");
  Fedlora__V1__SecAggMaskedChunk *first = (Fedlora__V1__SecAggMaskedChunk *)msg;
  const Fedlora__V1__SecAggMaskedHeader *hd = first->header;
  char err[512];
  int me = -1;
  grpc_status_code code = GRPC_STATUS_OK;
  if (!hd) code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "the first masked chunk must carry the header");
  if (code == GRPC_STATUS_OK) {
    pthread_mutex_lock(h->mu);
    code = masked_check(call, h, hd, &me);
    pthread_mutex_unlock(h->mu);
  }
  payload_rx rx = {0};
  if (code == GRPC_STATUS_OK &&
      payload_rx_begin(&rx, hd->words * 4, hd->sha256.data, (masked_floats(h) + 1) * 4, err, sizeof err) != 0)
    code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
  if (code == GRPC_STATUS_OK) code = payload_receive(call, &rx, &first->base, masked_chunk_view);
  if (code == GRPC_STATUS_OK && payload_rx_end(&rx, err, sizeof err) != 0)
    code = rpc_call_fail(call, GRPC_STATUS_DATA_LOSS, "%s", err);
  if (code == GRPC_STATUS_OK) {
    pthread_mutex_lock(h->mu);
    secagg_round *sr = h->sr;
    code = masked_check(call, h, hd, &me); /* the attempt may have moved on meanwhile */
    if (code == GRPC_STATUS_OK) crash_hook(sr, "masked");
    if (code == GRPC_STATUS_OK && secagg_server_add_masked(&sr->v, me, (const uint32_t *)rx.data, err, sizeof err) != 0)
      code = rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "%s", err);
    if (code == GRPC_STATUS_OK) {
      const char *site = rpc_call_peer(call);
      round_record_submission(h->rm, site);
      json_t *m = site_metrics_json(hd->metrics);
      /* Measurements of the site's data: a site sends them masked, and one that sent them in the
       * clear anyway (an older version) does not have them kept. */
      json_object_set_new(m, "train_loss", json_null());
      json_object_set_new(m, "val_loss_before", json_null());
      json_object_set_new(m, "tokens", json_null());
      json_object_set_new(sr->metrics, site, m);
      *h->bytes_in += rx.size;
      transcript(sr, site, "masked", rx.data, rx.size);
      log_info("round %u attempt %u: masked vector from %s accepted (%zu bytes)", sr->round, sr->attempt, site,
               rx.size);
      code = reply_ack(call, h);
    }
    pthread_mutex_unlock(h->mu);
  }
  payload_rx_free(&rx);
  protobuf_c_message_free_unpacked(msg, NULL);
  return code;
}

/* ------------------------------------------------------------------ stage 3: unmask */

grpc_status_code secagg_handle_get_survivors(rpc_call *call, secagg_host *h) {
  int me, ready;
  grpc_status_code code = poll_past(call, h, SECAGG_MASKED, &me, &ready);
  if (code != GRPC_STATUS_OK) return code;
  const secagg_round *sr = h->sr;
  uint32_t sites[SECAGG_MAX_SITES];
  Fedlora__V1__SecAggSurvivors out = FEDLORA__V1__SEC_AGG_SURVIVORS__INIT;
  out.ready = ready;
  for (int k = 0; ready && k < sr->v.p.n; k++)
    if (sr->v.in_u3[k]) sites[out.n_sites++] = (uint32_t)k;
  out.sites = sites;
  code = rpc_call_reply(call, &out.base);
  pthread_mutex_unlock(h->mu);
  return code;
}

grpc_status_code secagg_handle_unmask(rpc_call *call, secagg_host *h) {
  const Fedlora__V1__SecAggReveal *m = (const Fedlora__V1__SecAggReveal *)rpc_call_request(call);
  pthread_mutex_lock(h->mu);
  secagg_round *sr = h->sr;
  int me;
  char err[512];
  grpc_status_code code = session_check(call, h, m->round, m->attempt, &me);
  int n = sr->v.p.n;
  if (code == GRPC_STATUS_OK && (m->n_kinds != (size_t)n || m->n_shares != (size_t)n))
    code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg reveal: %zu kinds and %zu shares, want %d each",
                         m->n_kinds, m->n_shares, n);
  secagg_reveal r = {.from = me};
  for (int i = 0; code == GRPC_STATUS_OK && i < n; i++) {
    int kind = m->kinds[i];
    size_t want = kind == SECAGG_REVEAL_NONE ? 0 : SHAMIR_SECRET_BYTES;
    if (kind < SECAGG_REVEAL_NONE || kind > SECAGG_REVEAL_SELF_SEED || m->shares[i].len != want) {
      code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "secagg reveal: entry %d is kind %d with %zu bytes", i,
                           kind, m->shares[i].len);
      break;
    }
    r.kind[i] = (uint8_t)kind;
    if (want) memcpy(r.y[i], m->shares[i].data, want);
  }
  if (code == GRPC_STATUS_OK) {
    crash_hook(sr, "unmask");
    if (secagg_server_add_reveal(&sr->v, &r, err, sizeof err) != 0) {
      code = rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "%s", err);
    } else {
      transcript_message(sr, rpc_call_peer(call), "reveal", &m->base);
      code = reply_ack(call, h);
    }
  }
  OPENSSL_cleanse(&r, sizeof r);
  pthread_mutex_unlock(h->mu);
  return code;
}
