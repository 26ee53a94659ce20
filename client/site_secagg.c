#include "site_secagg.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "federation_api.h"
#include "log.h"
#include "payload.h"
#include "payload_stream.h"
#include "secagg_metrics.h"

enum { CALL_TIMEOUT_S = 60, MASKED_TIMEOUT_S = 600 };

/* Testing hook (see the header). */
static void crash_hook(const char *stage) {
  const char *want = getenv("FEDLORA_TEST_SECAGG_CRASH");
  if (!want || strcmp(want, stage) != 0) return;
  log_warn("FEDLORA_TEST_SECAGG_CRASH=%s: killing this site", want);
  raise(SIGKILL);
}

/* A failed call: the attempt is over (FAILED_PRECONDITION: aborted or superseded), or -1. */
static int call_failed(const site_secagg *sa, const char *what, const rpc_status *st) {
  if (st->code == GRPC_STATUS_FAILED_PRECONDITION) {
    log_warn("round %u attempt %u: %s: %s; waiting for the next attempt", sa->round, sa->attempt, what, st->message);
    return SITE_SECAGG_GONE;
  }
  log_warn("round %u attempt %u: %s failed: %s", sa->round, sa->attempt, what, st->message);
  return -1;
}

/* Asks a long-poll method until its answer is ready (first field after the header: `ready`). */
static int poll_ready(site_secagg *sa, const char *path, const ProtobufCMessageDescriptor *type,
                      ProtobufCMessage **out, const char *what) {
  Fedlora__V1__SecAggPoll q = FEDLORA__V1__SEC_AGG_POLL__INIT;
  q.round = sa->round;
  q.attempt = sa->attempt;
  for (;;) {
    if (*sa->stop) return -1;
    rpc_status st;
    ProtobufCMessage *m = NULL;
    if (rpc_unary(sa->rpc, path, &q.base, type, &m, CALL_TIMEOUT_S, &st) != 0) return call_failed(sa, what, &st);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(type, "ready");
    if (*(const protobuf_c_boolean *)((const uint8_t *)m + f->offset)) {
      *out = m;
      return 0;
    }
    protobuf_c_message_free_unpacked(m, NULL);
  }
}

static int ack_call(site_secagg *sa, const char *path, const ProtobufCMessage *req, const char *what) {
  rpc_status st;
  ProtobufCMessage *ack = NULL;
  if (rpc_unary(sa->rpc, path, req, &fedlora__v1__sec_agg_ack__descriptor, &ack, CALL_TIMEOUT_S, &st) != 0)
    return call_failed(sa, what, &st);
  protobuf_c_message_free_unpacked(ack, NULL);
  return 0;
}

static char *cert_read(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *pem = calloc(1, FED_SECAGG_CERT_MAX + 1);
  size_t len = pem ? fread(pem, 1, FED_SECAGG_CERT_MAX + 1, f) : 0;
  fclose(f);
  if (len == 0 || len > FED_SECAGG_CERT_MAX) {
    free(pem);
    return NULL;
  }
  return pem;
}

/* ------------------------------------------------------------------ stages 0 and 1 */

static int advertise(site_secagg *sa, const secagg_params *p, int me) {
  char err[512];
  EVP_PKEY *key = crypto_private_key_load(sa->cfg->client.key);
  char *cert = cert_read(sa->cfg->client.cert);
  secagg_advert adv;
  int rc = -1;
  if (!key || !cert)
    log_error("secagg: cannot read the site's key %s or certificate %s (at most %d bytes)", sa->cfg->client.key,
              sa->cfg->client.cert, FED_SECAGG_CERT_MAX);
  else if (secagg_site_advertise(&sa->s, p, me, key, &adv, err, sizeof err) != 0)
    log_error("round %u: %s", sa->round, err);
  else
    rc = 0;
  EVP_PKEY_free(key);
  if (rc == 0) {
    Fedlora__V1__SecAggAdvert m = FEDLORA__V1__SEC_AGG_ADVERT__INIT;
    m.round = sa->round;
    m.attempt = sa->attempt;
    m.from = (uint32_t)me;
    m.c_pk = (ProtobufCBinaryData){CRYPTO_X25519_BYTES, adv.c_pk};
    m.s_pk = (ProtobufCBinaryData){CRYPTO_X25519_BYTES, adv.s_pk};
    m.signature = (ProtobufCBinaryData){adv.sig_len, adv.sig};
    m.cert_pem = cert;
    rc = ack_call(sa, FED_SECAGG_ADVERTISE, &m.base, "advertising the keys");
  }
  free(cert);
  return rc;
}

static int share(site_secagg *sa) {
  ProtobufCMessage *m = NULL;
  int rc = poll_ready(sa, FED_SECAGG_GET_ADVERTS, &fedlora__v1__sec_agg_adverts__descriptor, &m, "waiting for adverts");
  if (rc != 0) return rc;
  const Fedlora__V1__SecAggAdverts *in = (const Fedlora__V1__SecAggAdverts *)m;
  const int n = sa->s.p.n;
  secagg_advert *adverts = calloc((size_t)n, sizeof *adverts);
  secagg_sealed_share *out = calloc((size_t)n, sizeof *out);
  char err[512] = "";
  int count = 0;
  rc = adverts && out && in->n_adverts <= (size_t)n ? 0 : -1;
  if (rc != 0) snprintf(err, sizeof err, "%zu adverts for %d sites", in->n_adverts, n);
  for (size_t k = 0; rc == 0 && k < in->n_adverts; k++) {
    const Fedlora__V1__SecAggAdvert *a = in->adverts[k];
    if (a->from >= (uint32_t)n || a->c_pk.len != CRYPTO_X25519_BYTES || a->s_pk.len != CRYPTO_X25519_BYTES ||
        a->signature.len > SECAGG_SIG_MAX || !a->cert_pem || strlen(a->cert_pem) > FED_SECAGG_CERT_MAX) {
      snprintf(err, sizeof err, "relayed advert #%zu is malformed", k);
      rc = -1;
      break;
    }
    secagg_advert *d = &adverts[count++];
    d->from = (int)a->from;
    memcpy(d->c_pk, a->c_pk.data, CRYPTO_X25519_BYTES);
    memcpy(d->s_pk, a->s_pk.data, CRYPTO_X25519_BYTES);
    memcpy(d->sig, a->signature.data, a->signature.len);
    d->sig_len = a->signature.len;
    d->cert_pem = a->cert_pem;
  }
  if (rc == 0) rc = secagg_site_share(&sa->s, adverts, count, sa->cfg->client.ca, out, err, sizeof err);
  if (rc != 0) {
    log_error("round %u attempt %u: %s", sa->round, sa->attempt, err);
  } else {
    Fedlora__V1__SecAggShares msg = FEDLORA__V1__SEC_AGG_SHARES__INIT;
    Fedlora__V1__SecAggSealedShare items[SECAGG_MAX_SITES], *ptrs[SECAGG_MAX_SITES];
    msg.round = sa->round;
    msg.attempt = sa->attempt;
    for (int j = 0; j < n; j++) {
      if (j == sa->s.me || out[j].to < 0) continue;
      Fedlora__V1__SecAggSealedShare *o = &items[msg.n_shares];
      fedlora__v1__sec_agg_sealed_share__init(o);
      o->from = (uint32_t)sa->s.me;
      o->to = (uint32_t)j;
      o->ciphertext = (ProtobufCBinaryData){SECAGG_SHARE_PLAIN, out[j].ct};
      o->tag = (ProtobufCBinaryData){CRYPTO_TAG_BYTES, out[j].tag};
      ptrs[msg.n_shares++] = o;
    }
    msg.shares = ptrs;
    rc = ack_call(sa, FED_SECAGG_SHARE_KEYS, &msg.base, "sending the shares");
    if (rc == 0) log_info("round %u attempt %u: keys of %d sites verified, shares sent", sa->round, sa->attempt, count);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  free(adverts);
  free(out);
  return rc;
}

int site_secagg_begin(site_secagg *sa, rpc_client *rpc, const site_config *cfg, volatile int *stop,
                      const char *run_id, double range, double scale, const Fedlora__V1__RoundTask *task,
                      const char *me, size_t d) {
  memset(sa, 0, sizeof *sa);
  sa->rpc = rpc;
  sa->cfg = cfg;
  sa->stop = stop;
  sa->round = task->round;
  sa->attempt = task->attempt;
  sa->weight_scale = task->secagg_weight_scale;
  secagg_params p = {.round = task->round, .n = (int)task->n_secagg_sites, .t = (int)task->secagg_threshold,
                     .range = range, .scale = scale, .d = d + SECAGG_METRIC_WORDS};
  snprintf(p.run_id, sizeof p.run_id, "%s", run_id);
  int idx = -1;
  if (task->n_secagg_sites > SECAGG_MAX_SITES) {
    log_error("round %u: the task names %zu secagg sites, at most %d", task->round, task->n_secagg_sites,
              SECAGG_MAX_SITES);
    return -1;
  }
  for (int k = 0; k < p.n; k++) {
    if (strlen(task->secagg_sites[k]) >= SECAGG_NAME_BYTES) {
      log_error("round %u: secagg site name #%d is too long", task->round, k);
      return -1;
    }
    snprintf(p.names[k], SECAGG_NAME_BYTES, "%s", task->secagg_sites[k]);
    if (strcmp(p.names[k], me) == 0) idx = k;
  }
  if (idx < 0) {
    log_error("round %u: this site ('%s') is not among the task's secagg sites", task->round, me);
    return -1;
  }
  /* Parameters no honest aggregator sends (a threshold at most half the sites, unsorted names):
   * nothing is advertised, so nothing of this site can be unmasked. */
  if (secagg_params_check(&p, sa->refusal, sizeof sa->refusal) != 0) {
    log_error("round %u attempt %u: secure-aggregation task refused, nothing trained or sent: %s", task->round,
              task->attempt, sa->refusal);
    return SITE_SECAGG_REFUSED;
  }
  int rc = advertise(sa, &p, idx);
  if (rc == 0) rc = share(sa);
  if (rc == 0) crash_hook("shares");
  return rc;
}

/* ------------------------------------------------------------------ stages 2 and 3 */

static int send_masked(site_secagg *sa, const uint32_t *y, size_t words, const Fedlora__V1__SiteMetrics *metrics) {
  size_t total = words * sizeof *y;
  uint8_t sha[32];
  sha256_bytes(y, total, sha);
  Fedlora__V1__SecAggMaskedHeader h = FEDLORA__V1__SEC_AGG_MASKED_HEADER__INIT;
  h.round = sa->round;
  h.attempt = sa->attempt;
  h.words = words;
  h.sha256 = (ProtobufCBinaryData){32, sha};
  h.metrics = (Fedlora__V1__SiteMetrics *)metrics;
  rpc_stream *call = rpc_stream_open(sa->rpc, FED_SECAGG_SUBMIT_MASKED, MASKED_TIMEOUT_S);
  /* a stream that failed says why at rpc_stream_finish */
  payload_send_stream(call, &fedlora__v1__sec_agg_masked_chunk__descriptor, &h.base, y, total, NULL);
  rpc_stream_close_send(call);
  ProtobufCMessage *ack = NULL;
  rpc_stream_recv(call, &fedlora__v1__sec_agg_ack__descriptor, &ack);
  if (ack) protobuf_c_message_free_unpacked(ack, NULL);
  rpc_status st;
  if (rpc_stream_finish(call, &st) != 0) return call_failed(sa, "sending the masked update", &st);
  return 0;
}

static int reveal(site_secagg *sa) {
  ProtobufCMessage *m = NULL;
  int rc = poll_ready(sa, FED_SECAGG_GET_SURVIVORS, &fedlora__v1__sec_agg_survivors__descriptor, &m,
                      "waiting for the survivors");
  if (rc != 0) return rc;
  const Fedlora__V1__SecAggSurvivors *sv = (const Fedlora__V1__SecAggSurvivors *)m;
  const int n = sa->s.p.n;
  uint8_t u3[SECAGG_MAX_SITES] = {0};
  for (size_t k = 0; k < sv->n_sites; k++)
    if (sv->sites[k] < (uint32_t)n) u3[sv->sites[k]] = 1;
  protobuf_c_message_free_unpacked(m, NULL);
  secagg_reveal *r = calloc(1, sizeof *r);
  char err[512];
  if (!r || secagg_site_unmask(&sa->s, u3, r, err, sizeof err) != 0) {
    log_error("round %u attempt %u: %s", sa->round, sa->attempt, r ? err : "out of memory");
    free(r);
    return -1;
  }
  Fedlora__V1__SecAggReveal msg = FEDLORA__V1__SEC_AGG_REVEAL__INIT;
  Fedlora__V1__SecAggRevealKind kinds[SECAGG_MAX_SITES];
  ProtobufCBinaryData shares[SECAGG_MAX_SITES];
  msg.round = sa->round;
  msg.attempt = sa->attempt;
  for (int i = 0; i < n; i++) {
    kinds[i] = (Fedlora__V1__SecAggRevealKind)r->kind[i];
    shares[i] = (ProtobufCBinaryData){r->kind[i] == SECAGG_REVEAL_NONE ? 0 : SHAMIR_SECRET_BYTES, r->y[i]};
  }
  msg.kinds = kinds;
  msg.n_kinds = (size_t)n;
  msg.shares = shares;
  msg.n_shares = (size_t)n;
  rc = ack_call(sa, FED_SECAGG_UNMASK, &msg.base, "revealing the shares");
  OPENSSL_cleanse(r, sizeof *r);
  free(r);
  return rc;
}

/* x (d + SECAGG_METRIC_WORDS) = the delta, then the losses' coordinates. */
static float *build_masked_input(const float *delta, size_t d, const Fedlora__V1__SiteMetrics *metrics, double range) {
  float *x = malloc((d + SECAGG_METRIC_WORDS) * sizeof *x);
  if (!x) return NULL;
  memcpy(x, delta, d * sizeof *x);
  secagg_metrics_encode(metrics->train_loss, metrics->val_loss_before, range, x + d);
  return x;
}

int site_secagg_finish(site_secagg *sa, const float *delta, uint64_t examples, uint64_t rounding_seed,
                       const Fedlora__V1__SiteMetrics *metrics) {
  ProtobufCMessage *m = NULL;
  int rc = poll_ready(sa, FED_SECAGG_GET_SHARES, &fedlora__v1__sec_agg_shares__descriptor, &m, "waiting for shares");
  if (rc != 0) return rc;
  const Fedlora__V1__SecAggShares *in = (const Fedlora__V1__SecAggShares *)m;
  const int n = sa->s.p.n;
  const size_t words = sa->s.p.d + 1;
  secagg_sealed_share *shares = calloc((size_t)n, sizeof *shares);
  uint32_t *y = malloc(words * sizeof *y);
  float *x = build_masked_input(delta, sa->s.p.d - SECAGG_METRIC_WORDS, metrics, sa->s.p.range);
  /* In the clear only what is not about the data: steps and timings. */
  Fedlora__V1__SiteMetrics clear = *metrics;
  clear.train_loss = clear.val_loss_before = 0;
  clear.tokens = 0;
  double w = sa->weight_scale ? (double)examples / (double)sa->weight_scale : 1.0;
  char err[512] = "";
  int count = 0;
  if (!shares || !y || !x)
    rc = -1, snprintf(err, sizeof err, "out of memory for a masked vector of %zu words", words);
  else if (in->n_shares > (size_t)n)
    rc = -1, snprintf(err, sizeof err, "%zu shares relayed for %d sites", in->n_shares, n);
  for (size_t k = 0; rc == 0 && k < in->n_shares; k++) {
    const Fedlora__V1__SecAggSealedShare *c = in->shares[k];
    if (c->from >= (uint32_t)n || c->to >= (uint32_t)n || c->ciphertext.len != SECAGG_SHARE_PLAIN ||
        c->tag.len != CRYPTO_TAG_BYTES) {
      snprintf(err, sizeof err, "relayed share #%zu is malformed", k);
      rc = -1;
      break;
    }
    secagg_sealed_share *s = &shares[count++];
    s->from = (int)c->from;
    s->to = (int)c->to;
    memcpy(s->ct, c->ciphertext.data, SECAGG_SHARE_PLAIN);
    memcpy(s->tag, c->tag.data, CRYPTO_TAG_BYTES);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  if (rc == 0) rc = secagg_site_mask(&sa->s, shares, count, x, w, rounding_seed, y, err, sizeof err);
  if (rc != 0) log_error("round %u attempt %u: %s", sa->round, sa->attempt, err);
  if (rc == 0) rc = send_masked(sa, y, words, &clear);
  if (rc == 0) {
    log_info("round %u attempt %u: masked update accepted (weight %.6g)", sa->round, sa->attempt, w);
    crash_hook("masked");
    rc = reveal(sa);
  }
  if (rc == 0) log_info("round %u attempt %u: shares revealed for the survivors", sa->round, sa->attempt);
  if (shares) OPENSSL_cleanse(shares, (size_t)n * sizeof *shares);
  free(shares);
  free(y);
  free(x);
  return rc;
}

void site_secagg_clear(site_secagg *sa) { secagg_site_clear(&sa->s); }
