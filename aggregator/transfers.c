/* The transfers: DownloadAdapter streams a committed global adapter to a site (the last one from
 * memory, an older one from its round directory), SubmitUpdate receives a site's update for the
 * open round.
 *
 * An update is accepted only when the site is in allowed_clients; its header names the open round,
 * the site is selected for it and has not sent other bytes for it (the same bytes again are
 * acknowledged as a duplicate); the payload header describes exactly the planned tensors
 * (payload_header_check); example_count is positive and at most the training examples the site
 * declared at Join; the stream is within server.max_update_mb, complete, in order and hashes to the
 * announced SHA-256; every value is finite; and, with dp on and secagg off, the update is within
 * dp_clip of the global adapter (agg_privacy_check_update). The round is checked again once the
 * bytes are in, since it may have moved on meanwhile; the update is then stored as pending
 * (store.h) before the round machine records it, so an accepted update survives a restart.
 *
 * Transfers are counted because each one holds its payload several times over (a copy, gRPC's
 * buffers, the decoded message): at most MAX_TRANSFERS run at once (federation_state.h), the others
 * wait for a slot holding only their thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "agg_ops.h"
#include "agg_privacy.h"
#include "clock.h"
#include "federation_api.h"
#include "federation_state.h"
#include "log.h"
#include "payload.h"
#include "payload_stream.h"
#include "round.h"
#include "rpc.h"
#include "site_metrics.h"
#include "store.h"

/* Sends the payload as Chunk messages, the header in the first. */
static grpc_status_code send_payload(rpc_call *call, const payload_layout *pl, const float *values,
                                     const uint8_t sha[32], uint64_t *sent) {
  Fedlora__V1__PayloadHeader header = FEDLORA__V1__PAYLOAD_HEADER__INIT;
  payload_header_fill(pl, &header, sha);
  grpc_status_code code = GRPC_STATUS_OK;
  if (payload_send_call(call, &fedlora__v1__chunk__descriptor, &header.base, values, payload_bytes(pl), sent) != 0)
    code = rpc_call_status(call);
  payload_header_free_tensors(&header);
  return code;
}

/* Waits for a transfer slot: 0, or -1 when the call ended or the server stops meanwhile. */
static int transfer_begin(federation *f, rpc_call *call) {
  pthread_mutex_lock(&f->mu);
  while (f->transfers >= MAX_TRANSFERS && !atomic_load(&f->stop) && !rpc_call_done(call)) {
    clock_cond_wait_ms(&f->transfer_done, &f->mu, 1000);
  }
  int ok = f->transfers < MAX_TRANSFERS;
  if (ok) f->transfers++;
  pthread_mutex_unlock(&f->mu);
  return ok ? 0 : -1;
}

static void transfer_end(federation *f) {
  pthread_mutex_lock(&f->mu);
  f->transfers--;
  pthread_cond_signal(&f->transfer_done);
  pthread_mutex_unlock(&f->mu);
}

/* Runs a download or upload handler within a transfer slot. */
static grpc_status_code transfer_run(rpc_call *call, federation *f,
                                     grpc_status_code (*body)(rpc_call *, federation *)) {
  if (transfer_begin(f, call) != 0)
    return rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "the call ended while waiting for a transfer slot");
  grpc_status_code code = body(call, f);
  transfer_end(f);
  return code;
}

static grpc_status_code download_body(rpc_call *call, federation *f) {
  const Fedlora__V1__DownloadRequest *req = (const Fedlora__V1__DownloadRequest *)rpc_call_request(call);
  if (!site_allowed(f, rpc_call_peer(call)))
    return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED, "site '%s' is not in allowed_clients",
                         rpc_call_peer(call));
  size_t n = f->layout.floats;
  float *values = malloc(n * sizeof(float) + 1);
  uint8_t sha[32];
  pthread_mutex_lock(&f->mu);
  uint32_t committed = f->rm.committed;
  int current = req->round == committed;
  /* A site counts as finished once it has the final adapter, not when told: stopping in between
   * would leave it without. */
  int final = current && f->rm.state == ROUND_FINISHED;
  if (current) {
    memcpy(values, f->global_payload, n * sizeof(float));
    memcpy(sha, f->global_sha, 32);
  }
  pthread_mutex_unlock(&f->mu);
  if (req->round > committed) {
    free(values);
    return rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "round %u has no committed adapter (last committed: %u)",
                         req->round, committed);
  }
  if (!current) { /* an older round: from its directory */
    lora_adapter old;
    char err[512];
    if (store_round_load(&f->st, req->round, &old, &f->mc, NULL, 0, err, sizeof err) != 0) {
      free(values);
      return rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "round %u: %s", req->round, err);
    }
    payload_pack(&f->layout, &old, values);
    lora_free(&old);
    sha256_bytes(values, n * sizeof(float), sha);
  }
  uint64_t sent = 0;
  grpc_status_code code = send_payload(call, &f->layout, values, sha, &sent);
  free(values);
  pthread_mutex_lock(&f->mu);
  f->bytes_out += sent;
  if (code == GRPC_STATUS_OK) agg_ops_adapter_sent(f->ops, rpc_call_peer(call), req->round, sha, sent);
  site_info *asker = site_get(f, rpc_call_peer(call));
  if (final && code == GRPC_STATUS_OK && asker) asker->saw_finished = 1;
  pthread_mutex_unlock(&f->mu);
  return code;
}

static grpc_status_code reject_verdict(rpc_call *call, federation *f, round_verdict v, const char *site,
                                       uint32_t round) {
  switch (v) {
    case ROUND_REJECT_FINISHED:
      return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "the run has finished (%u rounds)", f->rm.committed);
    case ROUND_REJECT_NOT_OPEN:
      if (f->rm.state == ROUND_OPEN)
        return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "round %u is not open (the open round is %u)",
                             round, f->rm.round);
      return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "round %u is not open (no round is open: %s)", round,
                           round_state_name(f->rm.state));
    case ROUND_REJECT_NOT_SELECTED:
      return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "site '%s' is not selected for round %u", site,
                           round);
    default:
      return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "unexpected round verdict %d", (int)v);
  }
}

/* Checks the update's header against the round and the plan. Called with the lock held.
 * *duplicate is set when the site already submitted exactly these bytes. */
static grpc_status_code submit_check_header(rpc_call *call, federation *f, const char *site,
                                            const Fedlora__V1__UpdateHeader *h, int *duplicate) {
  *duplicate = 0;
  char err[512];
  if (!h->payload) return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "the update header has no payload header");
  round_verdict v = round_check_submission(&f->rm, site, h->round);
  site_info *s = site_get(f, site);
  if (v == ROUND_REJECT_DUPLICATE) {
    if (h->payload->sha256.len == 32 && memcmp(h->payload->sha256.data, s->sha, 32) == 0) {
      *duplicate = 1;
    } else {
      return rpc_call_fail(call, GRPC_STATUS_ALREADY_EXISTS,
                           "site '%s' already submitted a different update for round %u", site, h->round);
    }
  } else if (v != ROUND_ACCEPT) {
    return reject_verdict(call, f, v, site, h->round);
  }
  if (payload_header_check(&f->layout, h->payload, err, sizeof err) != 0)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "update for round %u: %s", h->round, err);
  if (h->example_count == 0)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "example_count must be positive");
  if (h->example_count > s->train_examples)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                         "example_count %llu exceeds the %llu training examples the site declared at Join",
                         (unsigned long long)h->example_count, (unsigned long long)s->train_examples);
  return GRPC_STATUS_OK;
}

static json_t *submission_meta(const Fedlora__V1__UpdateHeader *h, const uint8_t sha[32], double norm, size_t bytes) {
  char hex[65];
  sha256_hex(sha, hex);
  json_t *meta = site_metrics_json(h->metrics);
  json_object_set_new(meta, "example_count", json_integer((json_int_t)h->example_count));
  json_object_set_new(meta, "sha256", json_string(hex));
  json_object_set_new(meta, "bytes", json_integer((json_int_t)bytes));
  json_object_set_new(meta, "update_norm", json_real(norm));
  return meta;
}

static payload_chunk_view update_chunk_view(const ProtobufCMessage *msg) {
  const Fedlora__V1__UpdateChunk *c = (const Fedlora__V1__UpdateChunk *)msg;
  return (payload_chunk_view){c->header != NULL, c->offset, c->data.data, c->data.len};
}

static grpc_status_code submit_body(rpc_call *call, federation *f) {
  const char *site = rpc_call_peer(call);
  char err[512];
  if (!site_allowed(f, site))
    return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED, "site '%s' is not in allowed_clients", site);
  ProtobufCMessage *msg = NULL;
  int rc = rpc_call_recv(call, &msg);
  if (rc <= 0)
    return rc < 0 ? rpc_call_status(call)
                  : rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "the update stream carried no message");
  Fedlora__V1__UpdateChunk *first = (Fedlora__V1__UpdateChunk *)msg;
  if (!first->header) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "the first chunk of an update must carry its header");
  }
  int duplicate;
  pthread_mutex_lock(&f->mu);
  grpc_status_code code = submit_check_header(call, f, site, first->header, &duplicate);
  pthread_mutex_unlock(&f->mu);
  payload_rx rx = {0};
  if (code == GRPC_STATUS_OK &&
      payload_rx_begin(&rx, first->header->payload->total_size, first->header->payload->sha256.data,
                       (uint64_t)f->cfg->server.max_update_mb << 20, err, sizeof err) != 0)
    code = rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", err);
  /* The header chunk may carry data too; then every further chunk. */
  if (code == GRPC_STATUS_OK) code = payload_receive(call, &rx, &first->base, update_chunk_view);
  if (code == GRPC_STATUS_OK && payload_rx_end(&rx, err, sizeof err) != 0)
    code = rpc_call_fail(call, strstr(err, "SHA-256") ? GRPC_STATUS_DATA_LOSS : GRPC_STATUS_INVALID_ARGUMENT, "%s",
                         err);
  const float *values = (const float *)rx.data;
  if (code == GRPC_STATUS_OK && payload_check_finite(&f->layout, values, err, sizeof err) != 0)
    code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "update for round %u: %s", first->header->round, err);
  if (code == GRPC_STATUS_OK) {
    pthread_mutex_lock(&f->mu);
    if (agg_privacy_check_update(f->cfg, values, f->global_payload, f->layout.floats, err, sizeof err) != 0)
      code = rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "update for round %u: %s", first->header->round, err);
    pthread_mutex_unlock(&f->mu);
  }

  if (code == GRPC_STATUS_OK) {
    pthread_mutex_lock(&f->mu);
    int again;
    /* The round may have moved on while the bytes streamed in: check again before recording. */
    code = submit_check_header(call, f, site, first->header, &again);
    if (code == GRPC_STATUS_OK && !again) {
      json_t *meta = submission_meta(first->header, rx.want, payload_norm(values, f->layout.floats), rx.size);
      if (store_pending_save(&f->st, f->rm.round, site, rx.data, rx.size, meta, err, sizeof err) != 0) {
        code = rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "the aggregator cannot store the update now: %s", err);
      } else {
        site_info *s = site_get(f, site);
        memcpy(s->sha, rx.want, 32);
        s->last_submitted = f->rm.round;
        round_record_submission(&f->rm, site);
        f->bytes_in += rx.size;
        agg_ops_update_received(f->ops, site, f->rm.round, rx.want, rx.size, first->header->example_count);
        log_info("round %u: update from %s accepted (%llu examples, %zu bytes)", f->rm.round, site,
                 (unsigned long long)first->header->example_count, rx.size);
        pthread_cond_broadcast(&f->changed);
      }
      json_decref(meta);
    }
    duplicate = again;
    pthread_mutex_unlock(&f->mu);
  }
  if (code == GRPC_STATUS_OK) {
    Fedlora__V1__SubmitResponse resp = FEDLORA__V1__SUBMIT_RESPONSE__INIT;
    resp.duplicate = duplicate;
    resp.sha256.data = rx.want;
    resp.sha256.len = 32;
    resp.message = duplicate ? "already received: acknowledged again" : "accepted";
    code = rpc_call_reply(call, &resp.base);
  }
  payload_rx_free(&rx);
  protobuf_c_message_free_unpacked(msg, NULL);
  return code;
}

grpc_status_code transfers_download(rpc_call *call, federation *f) { return transfer_run(call, f, download_body); }

grpc_status_code transfers_submit(rpc_call *call, federation *f) { return transfer_run(call, f, submit_body); }
