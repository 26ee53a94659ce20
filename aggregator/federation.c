#include "federation.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agg_ops.h"
#include "agg_privacy.h"
#include "clock.h"
#include "federation_api.h"
#include "fingerprint.h"
#include "log.h"
#include "model.h"
#include "payload.h"
#include "plan.h"
#include "round.h"
#include "rpc.h"
#include "secagg_server.h"
#include "server_opt.h"
#include "store.h"

#include "federation_state.h"


site_info *site_get(federation *f, const char *name) {
  for (int i = 0; i < f->n_sites; i++)
    if (strcmp(f->sites[i].name, name) == 0) return &f->sites[i];
  return NULL;
}

static site_info *site_add(federation *f, const char *name) {
  site_info *s = site_get(f, name);
  if (s || f->n_sites >= ROUND_MAX_SITES) return s;
  s = &f->sites[f->n_sites++];
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", name);
  return s;
}

int site_allowed(const federation *f, const char *name) {
  const config_list *l = &f->cfg->server.allowed_clients;
  for (int i = 0; i < l->count; i++)
    if (strcmp(l->items[i], name) == 0) return 1;
  return 0;
}

/* ------------------------------------------------------------------ durable state */

static int state_save(federation *f, char *err, size_t errlen) {
  json_t *root = json_object(), *sites = json_object();
  json_object_set_new(root, "run_id", json_string(f->run_id));
  json_object_set_new(root, "fingerprint", json_string(f->fingerprint));
  json_object_set_new(root, "round", json_integer(f->rm.round));
  json_object_set_new(root, "attempt", json_integer(f->rm.attempt));
  for (int i = 0; i < f->n_sites; i++) {
    const site_info *s = &f->sites[i];
    json_object_set_new(sites, s->name,
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "train_examples", (json_int_t)s->train_examples,
                                  "train_tokens", (json_int_t)s->train_tokens, "val_examples",
                                  (json_int_t)s->val_examples, "last_submitted", (json_int_t)s->last_submitted,
                                  "last_seen", (json_int_t)s->last_seen));
  }
  json_object_set_new(root, "sites", sites);
  if (f->sa.active)
    json_object_set_new(root, "secagg", json_pack("{s:I,s:I,s:s}", "round", (json_int_t)f->sa.round, "attempt",
                                                  (json_int_t)f->sa.attempt, "stage", secagg_stage_name(&f->sa)));
  int rc = store_state_save(&f->st, root, err, errlen);
  json_decref(root);
  return rc;
}

void state_save_logged(federation *f) {
  char err[512];
  if (state_save(f, err, sizeof err) != 0) log_error("cannot save state.json: %s", err);
}

/* Reads state.json of an earlier run of this state_dir: the run id, joined sites and the abort
 * attempt of the open round. A state_dir made for another base model is refused. */
static int state_restore(federation *f, char *err, size_t errlen) {
  json_t *root = store_state_load(&f->st, err, errlen);
  if (!root) {
    if (err[0]) return -1;
    unsigned char rnd[16];
    FILE *u = fopen("/dev/urandom", "rb");
    if (!u || fread(rnd, 1, 16, u) != 16) {
      if (u) fclose(u);
      snprintf(err, errlen, "cannot read /dev/urandom for the run id");
      return -1;
    }
    fclose(u);
    for (int i = 0; i < 16; i++) snprintf(f->run_id + 2 * i, 3, "%02x", rnd[i]);
    return 0;
  }
  const char *fp = json_string_value(json_object_get(root, "fingerprint"));
  const char *id = json_string_value(json_object_get(root, "run_id"));
  if (!fp || strcmp(fp, f->fingerprint) != 0) {
    snprintf(err, errlen,
             "%s/state.json belongs to a run on another base model (fingerprint %.16s..., this base %.16s...); "
             "use a fresh state_dir", f->st.dir, fp ? fp : "none", f->fingerprint);
    json_decref(root);
    return -1;
  }
  snprintf(f->run_id, sizeof f->run_id, "%s", id ? id : "");
  const char *name;
  json_t *v;
  json_object_foreach(json_object_get(root, "sites"), name, v) {
    if (!site_allowed(f, name)) continue; /* removed from allowed_clients since */
    site_info *s = site_add(f, name);
    if (!s) continue;
    s->train_examples = (uint64_t)json_integer_value(json_object_get(v, "train_examples"));
    s->train_tokens = (uint64_t)json_integer_value(json_object_get(v, "train_tokens"));
    s->val_examples = (uint64_t)json_integer_value(json_object_get(v, "val_examples"));
    s->last_submitted = (uint32_t)json_integer_value(json_object_get(v, "last_submitted"));
    s->last_seen = (int64_t)json_integer_value(json_object_get(v, "last_seen"));
    round_join(&f->rm, name);
  }
  if ((uint32_t)json_integer_value(json_object_get(root, "round")) == f->rm.round)
    f->rm.attempt = (uint32_t)json_integer_value(json_object_get(root, "attempt"));
  /* An interrupted secure aggregation is not resumed: its round opens as a new attempt and starts
   * again from the key stage with fresh keys (secagg_server.h). */
  json_t *sa = json_object_get(root, "secagg");
  if (f->cfg->privacy.secagg && sa && (uint32_t)json_integer_value(json_object_get(sa, "round")) == f->rm.round) {
    f->rm.attempt = (uint32_t)json_integer_value(json_object_get(sa, "attempt")) + 1;
    log_info("restart: round %u was in secagg stage %s; it restarts from the key stage as attempt %u", f->rm.round,
             json_string_value(json_object_get(sa, "stage")), f->rm.attempt);
  }
  json_decref(root);
  return 0;
}

/* ------------------------------------------------------------------ the plan */

static void plan_build(federation *f) {
  const agg_config *c = f->cfg;
  Fedlora__V1__JoinResponse *p = &f->plan;
  fedlora__v1__join_response__init(p);
  static Fedlora__V1__LoraConfig lora;
  static Fedlora__V1__TrainConfig train;
  static Fedlora__V1__RoundPolicy rounds;
  static Fedlora__V1__PrivacyConfig privacy;
  fedlora__v1__lora_config__init(&lora);
  fedlora__v1__train_config__init(&train);
  fedlora__v1__round_policy__init(&rounds);
  fedlora__v1__privacy_config__init(&privacy);
  lora.rank = (uint32_t)c->model.lora_rank;
  lora.alpha = (float)c->model.lora_alpha;
  f->plan_targets = calloc(LORA_NUM_MODULES, sizeof *f->plan_targets);
  for (int m = 0; m < LORA_NUM_MODULES; m++)
    if (c->model.lora_target_mask & (1u << m)) f->plan_targets[lora.n_target_modules++] = (char *)lora_module_name(m);
  lora.target_modules = f->plan_targets;
  lora.dropout = (float)c->model.lora_dropout;
  lora.use_rslora = c->model.use_rslora;
  lora.mode = (Fedlora__V1__LoraMode)c->model.lora_mode;
  lora.init_seed = c->model.init_seed ? c->model.init_seed : plan_site_seed(c->rounds.seed, 0, "lora-init");
  train.optimizer = c->train.optimizer == OPTIM_SGD ? "sgd" : "adamw";
  train.lr = c->train.lr;
  train.local_steps = (uint32_t)c->train.local_steps;
  train.local_epochs = c->train.local_epochs;
  train.batch = (uint32_t)c->train.batch;
  train.seq_len = (uint32_t)c->train.seq_len;
  train.weight_decay = c->train.weight_decay;
  train.fedprox_mu = c->train.fedprox_mu;
  train.grad_clip = c->train.grad_clip;
  train.beta1 = c->train.beta1;
  train.beta2 = c->train.beta2;
  train.eps = c->train.eps;
  train.warmup = (uint32_t)c->train.warmup;
  train.schedule = c->train.schedule == SCHEDULE_COSINE ? "cosine" : "constant";
  rounds.total_rounds = (uint32_t)c->rounds.total;
  rounds.min_clients = (uint32_t)c->rounds.min_clients;
  rounds.clients_per_round = (uint32_t)c->rounds.clients_per_round;
  rounds.deadline_s = (uint32_t)c->rounds.deadline_s;
  rounds.wait_after_quorum_s = (uint32_t)c->rounds.wait_after_quorum_s;
  rounds.seed = c->rounds.seed;
  privacy.secagg = c->privacy.secagg;
  privacy.secagg_threshold = (uint32_t)c->privacy.secagg_threshold;
  privacy.secagg_clip_range = c->privacy.secagg_clip_range;
  privacy.secagg_scale = c->privacy.secagg_scale;
  privacy.dp = (Fedlora__V1__DpMode)c->privacy.dp;
  privacy.dp_clip = c->privacy.dp_clip;
  privacy.dp_noise_multiplier = c->privacy.dp_noise_multiplier;
  privacy.dp_delta = c->privacy.dp_delta;
  privacy.dp_epsilon_budget = c->privacy.dp_epsilon_budget;
  p->run_id = f->run_id;
  p->base_model_fingerprint = f->fingerprint;
  p->lora = &lora;
  p->train = &train;
  p->rounds = &rounds;
  p->privacy = &privacy;
}

/* ------------------------------------------------------------------ handlers */

static grpc_status_code handle_join(rpc_call *call, void *user) {
  federation *f = user;
  const char *site = rpc_call_peer(call);
  const Fedlora__V1__JoinRequest *req = (const Fedlora__V1__JoinRequest *)rpc_call_request(call);
  if (!site_allowed(f, site))
    return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                         "site '%s' (the certificate's CN) is not in the aggregator's allowed_clients", site);
  if (strcmp(req->base_model_fingerprint, f->fingerprint) != 0)
    return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
                         "base model mismatch: the site's fingerprint is %.64s, the aggregator's is %s",
                         req->base_model_fingerprint, f->fingerprint);
  if (req->train_examples == 0)
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "train_examples must be positive");
  pthread_mutex_lock(&f->mu);
  site_info *s = site_add(f, site);
  int joined = s ? round_join(&f->rm, site) : -1;
  if (joined < 0) {
    pthread_mutex_unlock(&f->mu);
    return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many sites (at most %d)", ROUND_MAX_SITES);
  }
  int changed = s->train_examples != req->train_examples || s->train_tokens != req->train_tokens ||
                s->val_examples != req->val_examples;
  s->train_examples = req->train_examples;
  s->train_tokens = req->train_tokens;
  s->val_examples = req->val_examples;
  s->last_seen = time(NULL);
  if (changed) {
    agg_ops_join(f->ops, site, req->train_examples, req->val_examples, f->n_sites);
    log_info("site %s joined: %llu training examples, %llu tokens, %llu validation examples (%s)", site,
             (unsigned long long)req->train_examples, (unsigned long long)req->train_tokens,
             (unsigned long long)req->val_examples, req->client_version);
    state_save_logged(f);
  }
  pthread_cond_broadcast(&f->changed);
  Fedlora__V1__JoinResponse resp = f->plan;
  resp.site = (char *)site;
  grpc_status_code code = rpc_call_reply(call, &resp.base);
  pthread_mutex_unlock(&f->mu);
  return code;
}

/* The signed manifest of the TRAIN or FINISHED task being handed out (lock held); NULL after logging
 * why. */
static const char *round_manifest(federation *f, const Fedlora__V1__RoundTask *task) {
  manifest want;
  memset(&want, 0, sizeof want);
  snprintf(want.run_id, sizeof want.run_id, "%s", f->run_id);
  want.round = task->round;
  want.attempt = task->attempt;
  want.base_round = task->base_round;
  memcpy(want.plan_sha, f->plan_sha, 32);
  memcpy(want.adapter_sha, task->adapter_sha256.data, 32);
  char err[512];
  uint8_t sha[32];
  int signed_now;
  const char *doc = agg_manifest_get(&f->man, &want, &signed_now, sha, err, sizeof err);
  if (!doc)
    log_error("round %u attempt %u: cannot sign the round manifest: %s", want.round, want.attempt, err);
  else if (signed_now)
    agg_ops_manifest_signed(f->ops, want.round, want.attempt, want.base_round, sha);
  return doc;
}

static grpc_status_code handle_await(rpc_call *call, void *user) {
  federation *f = user;
  const char *site = rpc_call_peer(call);
  Fedlora__V1__RoundTask task = FEDLORA__V1__ROUND_TASK__INIT;
  char *secagg_names[SECAGG_MAX_SITES];
  double deadline = clock_seconds() + f->cfg->server.poll_seconds;
  pthread_mutex_lock(&f->mu);
  site_info *s = site_get(f, site);
  int i = round_find(&f->rm, site);
  if (!s || i < 0) {
    pthread_mutex_unlock(&f->mu);
    return rpc_call_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "site '%s' has not joined this run: call Join first",
                         site);
  }
  for (;;) {
    s->last_seen = time(NULL);
    if (f->rm.state == ROUND_FINISHED) {
      task.kind = FEDLORA__V1__ROUND_TASK__KIND__FINISHED;
      task.final_round = f->rm.committed;
      /* The adapter a site keeps at the end is vouched for like a round's start: its manifest has
       * round = base_round = the last committed round (manifest.h). */
      task.round = task.base_round = f->rm.committed;
      task.adapter_sha256.data = f->global_sha;
      task.adapter_sha256.len = 32;
      task.adapter_size = payload_bytes(&f->layout);
      if (!(task.manifest = (char *)round_manifest(f, &task))) {
        pthread_mutex_unlock(&f->mu);
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "no signed manifest for the final adapter (see the "
                             "aggregator's log)");
      }
      break;
    }
    const round_site *rs = &f->rm.sites[round_find(&f->rm, site)];
    /* Under secagg a site starts an attempt only while its key stage is open. */
    if (f->rm.state == ROUND_OPEN && rs->selected && !rs->submitted &&
        (!f->cfg->privacy.secagg || secagg_round_may_start(&f->sa, site))) {
      task.kind = FEDLORA__V1__ROUND_TASK__KIND__TRAIN;
      task.round = f->rm.round;
      task.attempt = f->rm.attempt;
      if (f->cfg->privacy.secagg) secagg_round_task(&f->sa, &task, secagg_names);
      task.base_round = f->rm.committed;
      task.adapter_sha256.data = f->global_sha;
      task.adapter_sha256.len = 32;
      task.adapter_size = payload_bytes(&f->layout);
      task.site_seed = plan_site_seed(f->cfg->rounds.seed, f->rm.round, site);
      if (!(task.manifest = (char *)round_manifest(f, &task))) {
        pthread_mutex_unlock(&f->mu);
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "round %u: no signed manifest to hand out (see the "
                             "aggregator's log)", task.round);
      }
      break;
    }
    if (clock_seconds() >= deadline || atomic_load(&f->stop) || rpc_call_done(call)) break; /* WAIT */
    clock_cond_wait_ms(&f->changed, &f->mu, 200);
  }
  grpc_status_code code = rpc_call_reply(call, &task.base);
  pthread_mutex_unlock(&f->mu);
  return code;
}

/* A refused call goes to the audit log and the metrics with its reason. */
static grpc_status_code noted(rpc_call *call, federation *f, grpc_status_code code) {
  if (code != GRPC_STATUS_OK)
    agg_ops_refused(f->ops, rpc_call_peer(call), rpc_call_method(call), code, rpc_call_message(call));
  return code;
}
static grpc_status_code handle_join_noted(rpc_call *call, void *user) { return noted(call, user, handle_join(call, user)); }
static grpc_status_code handle_download(rpc_call *call, void *user) {
  return noted(call, user, transfers_download(call, user));
}
static grpc_status_code handle_submit(rpc_call *call, void *user) {
  return noted(call, user, transfers_submit(call, user));
}

static grpc_status_code handle_status(rpc_call *call, void *user) {
  federation *f = user;
  Fedlora__V1__Status st = FEDLORA__V1__STATUS__INIT;
  pthread_mutex_lock(&f->mu);
  st.run_id = f->run_id;
  st.round = f->rm.round;
  st.total_rounds = f->rm.policy.total;
  st.rounds_committed = f->rm.committed;
  st.run_state = f->rm.state == ROUND_FINISHED ? FEDLORA__V1__STATUS__RUN_STATE__FINISHED
                 : f->rm.state == ROUND_WAITING && f->rm.committed == 0
                     ? FEDLORA__V1__STATUS__RUN_STATE__WAITING_FOR_SITES
                     : FEDLORA__V1__STATUS__RUN_STATE__RUNNING;
  static const Fedlora__V1__Status__RoundState round_states[] = {
      FEDLORA__V1__STATUS__ROUND_STATE__NONE, FEDLORA__V1__STATUS__ROUND_STATE__OPEN,
      FEDLORA__V1__STATUS__ROUND_STATE__AGGREGATING, FEDLORA__V1__STATUS__ROUND_STATE__COMMITTED};
  st.round_state = round_states[f->rm.state];
  Fedlora__V1__SiteStatus sites[ROUND_MAX_SITES], *ptrs[ROUND_MAX_SITES];
  for (int i = 0; i < f->n_sites; i++) {
    fedlora__v1__site_status__init(&sites[i]);
    sites[i].name = f->sites[i].name;
    sites[i].joined = 1;
    sites[i].last_submitted_round = f->sites[i].last_submitted;
    sites[i].last_seen_unix = f->sites[i].last_seen;
    ptrs[i] = &sites[i];
  }
  st.sites = ptrs;
  st.n_sites = (size_t)f->n_sites;
  grpc_status_code code = rpc_call_reply(call, &st.base);
  pthread_mutex_unlock(&f->mu);
  return code;
}

static grpc_status_code handle_sa_advertise(rpc_call *c, void *u) {
  return secagg_handle_advertise(c, &((federation *)u)->sa_host);
}
static grpc_status_code handle_sa_get_adverts(rpc_call *c, void *u) {
  return secagg_handle_get_adverts(c, &((federation *)u)->sa_host);
}
static grpc_status_code handle_sa_share_keys(rpc_call *c, void *u) {
  return secagg_handle_share_keys(c, &((federation *)u)->sa_host);
}
static grpc_status_code handle_sa_get_shares(rpc_call *c, void *u) {
  return secagg_handle_get_shares(c, &((federation *)u)->sa_host);
}
static grpc_status_code handle_sa_submit_masked(rpc_call *c, void *u) {
  return secagg_handle_submit_masked(c, &((federation *)u)->sa_host);
}
static grpc_status_code handle_sa_get_survivors(rpc_call *c, void *u) {
  return secagg_handle_get_survivors(c, &((federation *)u)->sa_host);
}
static grpc_status_code handle_sa_unmask(rpc_call *c, void *u) { return secagg_handle_unmask(c, &((federation *)u)->sa_host); }

static const rpc_method methods[] = {
    {FED_JOIN, RPC_UNARY, &fedlora__v1__join_request__descriptor, handle_join_noted},
    {FED_AWAIT_ROUND, RPC_UNARY, &fedlora__v1__await_round_request__descriptor, handle_await},
    {FED_DOWNLOAD_ADAPTER, RPC_SERVER_STREAMING, &fedlora__v1__download_request__descriptor, handle_download},
    {FED_SUBMIT_UPDATE, RPC_CLIENT_STREAMING, &fedlora__v1__update_chunk__descriptor, handle_submit},
    {FED_GET_STATUS, RPC_UNARY, &fedlora__v1__status_request__descriptor, handle_status},
    {FED_SECAGG_ADVERTISE, RPC_UNARY, &fedlora__v1__sec_agg_advert__descriptor, handle_sa_advertise},
    {FED_SECAGG_GET_ADVERTS, RPC_UNARY, &fedlora__v1__sec_agg_poll__descriptor, handle_sa_get_adverts},
    {FED_SECAGG_SHARE_KEYS, RPC_UNARY, &fedlora__v1__sec_agg_shares__descriptor, handle_sa_share_keys},
    {FED_SECAGG_GET_SHARES, RPC_UNARY, &fedlora__v1__sec_agg_poll__descriptor, handle_sa_get_shares},
    {FED_SECAGG_SUBMIT_MASKED, RPC_CLIENT_STREAMING, &fedlora__v1__sec_agg_masked_chunk__descriptor,
     handle_sa_submit_masked},
    {FED_SECAGG_GET_SURVIVORS, RPC_UNARY, &fedlora__v1__sec_agg_poll__descriptor, handle_sa_get_survivors},
    {FED_SECAGG_UNMASK, RPC_UNARY, &fedlora__v1__sec_agg_reveal__descriptor, handle_sa_unmask},
};

/* ------------------------------------------------------------------ lifecycle */

/* An update that was accepted before a restart counts again once its round is reopened. */
static int restore_pending(const char *site, const uint8_t *payload, size_t len, const json_t *meta, void *user) {
  federation *f = user;
  const char *hex = json_string_value(json_object_get(meta, "sha256"));
  uint8_t sha[32];
  char got[65];
  sha256_bytes(payload, len, sha);
  sha256_hex(sha, got);
  site_info *s = site_get(f, site);
  if (!hex || strcmp(hex, got) != 0 || !s || round_check_submission(&f->rm, site, f->rm.round) != ROUND_ACCEPT) {
    log_warn("restart: the stored update of %s for round %u no longer applies; the site will resubmit", site,
             f->rm.round);
    return 0;
  }
  memcpy(s->sha, sha, 32);
  s->last_submitted = f->rm.round;
  round_record_submission(&f->rm, site);
  log_info("restart: round %u keeps the update %s sent before the restart", f->rm.round, site);
  return 0;
}

static int load_global(federation *f, int last, char *err, size_t errlen) {
  if (last < 0) { /* a new run: round 0 is the initial adapter every site starts from */
    if (lora_build(&f->global, &f->mc, &f->lora, err, errlen) != 0) return -1;
    lora_init(&f->global, f->plan.lora->init_seed);
    server_opt_state_init(&f->sopt, f->sopt_state, f->layout.floats);
    if (store_round_commit(&f->st, 0, &f->global, &f->mc, f->cfg->model.base, f->sopt_state, f->n_state, NULL, err,
                           errlen) != 0)
      return -1;
    last = 0;
  } else if (store_round_load(&f->st, (uint32_t)last, &f->global, &f->mc, f->sopt_state, f->n_state, err, errlen) !=
             0) {
    return -1;
  }
  if (f->global.config.rank != f->lora.rank || f->global.config.targets != f->lora.targets) {
    snprintf(err, errlen, "%s/rounds/%04d was made with another LoRA rank or targets than the configuration",
             f->st.dir, last);
    return -1;
  }
  payload_pack(&f->layout, &f->global, f->global_payload);
  sha256_bytes(f->global_payload, payload_bytes(&f->layout), f->global_sha);
  return last;
}

/* Everything but the server and the round thread, which federation_stop ends first. */
static void federation_free(federation *f) {
  agg_certs_free(f->certs);
  agg_ops_stop(f->ops);
  secagg_round_close(&f->sa);
  lora_free(&f->global);
  payload_layout_free(&f->layout);
  free(f->sopt_state);
  free(f->global_payload);
  free(f->plan_targets);
  agg_manifest_free(&f->man);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->changed);
  pthread_cond_destroy(&f->transfer_done);
  free(f);
}

federation *federation_start(const agg_config *cfg, char *err, size_t errlen) {
  federation *f = calloc(1, sizeof *f);
  f->cfg = cfg;
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->changed, NULL);
  pthread_cond_init(&f->transfer_done, NULL);
  model base;
  if (agg_privacy_available(cfg, err, errlen) != 0) goto fail;
  if (!(f->ops = agg_ops_start(cfg, err, errlen))) goto fail;
  if (!(f->certs = agg_certs_build(cfg, f->ops))) goto fail;
  if (model_load(&base, cfg->model.base, err, errlen) != 0) goto fail;
  f->mc = base.config;
  model_free(&base);
  if (model_fingerprint(cfg->model.base, f->fingerprint, err, errlen) != 0) goto fail;
  f->lora = (lora_config){.rank = cfg->model.lora_rank, .alpha = (float)cfg->model.lora_alpha,
                          .use_rslora = cfg->model.use_rslora, .dropout = (float)cfg->model.lora_dropout,
                          .targets = cfg->model.lora_target_mask, .freeze_a = cfg->model.lora_mode == AGG_LORA_FFA};
  lora_adapter shape;
  if (lora_build(&shape, &f->mc, &f->lora, err, errlen) != 0) goto fail;
  int rc = payload_layout_build(&f->layout, &shape, &f->mc, cfg->model.lora_mode == AGG_LORA_FFA, err, errlen);
  lora_free(&shape);
  if (rc != 0) goto fail;
  f->sopt = agg_config_server_opt(cfg);
  f->n_state = server_opt_state_floats(f->sopt.strategy, f->layout.floats);
  f->sopt_state = calloc(f->n_state + 1, sizeof(float));
  f->global_payload = calloc(f->layout.floats + 1, sizeof(float));
  if (store_open(&f->st, cfg->server.state_dir, err, errlen) != 0) goto fail;

  int allowed = agg_privacy_round_limit(cfg, err, errlen);
  if (allowed == 0) goto fail;
  round_policy policy = {.total = (uint32_t)allowed, .min_clients = (uint32_t)cfg->rounds.min_clients,
                         .clients_per_round = (uint32_t)cfg->rounds.clients_per_round,
                         .deadline_s = cfg->rounds.deadline_s, .wait_after_quorum_s = cfg->rounds.wait_after_quorum_s,
                         .seed = cfg->rounds.seed};
  int last = store_last_round(&f->st);
  round_init(&f->rm, &policy, last > 0 ? (uint32_t)last : 0);
  if (state_restore(f, err, errlen) != 0) goto fail;
  plan_build(f);
  if (manifest_plan_digest(&f->plan, f->plan_sha) != 0) {
    snprintf(err, errlen, "out of memory hashing the run plan");
    goto fail;
  }
  if (agg_manifest_load_signer(&f->man, cfg, err, errlen) != 0) goto fail;
  last = load_global(f, last, err, errlen);
  if (last < 0) goto fail;
  if (store_metrics_rebuild(&f->st, err, errlen) != 0) goto fail;
  if (state_save(f, err, errlen) != 0) goto fail;
  f->sa_host = (secagg_host){.cfg = cfg, .mu = &f->mu, .changed = &f->changed, .stop = &f->stop, .sr = &f->sa,
                             .rm = &f->rm, .bytes_in = &f->bytes_in, .d = f->layout.floats};
  agg_ops_run_started(f->ops, f->run_id, f->fingerprint, f->rm.committed, f->rm.policy.total);
  if (round_tick(&f->rm, clock_seconds()) == ROUND_EVENT_OPENED) {
    agg_ops_round_opened(f->ops, f->rm.round, f->rm.attempt, round_selected_count(&f->rm));
    if (cfg->privacy.secagg) {
      round_ticker_open_secagg(f);
      if (state_save(f, err, errlen) != 0) goto fail;
    } else {
      store_pending_each(&f->st, f->rm.round, payload_bytes(&f->layout), restore_pending, f, err, errlen);
    }
  }
  if (f->rm.state == ROUND_FINISHED) f->finished_at = clock_seconds();
  log_info("run %s: base %s (fingerprint %.16s...), %zu adapter parameters on the wire, %u/%u rounds committed",
           f->run_id, cfg->model.base, f->fingerprint, f->layout.floats, f->rm.committed, f->rm.policy.total);

  /* Every site waiting for a round holds a handler thread in its AwaitRound long-poll, so fewer
   * threads than sites would leave the rest (and their uploads) queued behind the waiters. */
  int threads = cfg->server.threads;
  if (threads < cfg->server.allowed_clients.count + 4) {
    threads = cfg->server.allowed_clients.count + 4;
    log_info("handler threads: %d (server.threads = %d is below allowed_clients + 4)", threads, cfg->server.threads);
  }
  rpc_server_config rc_cfg = {.listen = cfg->server.listen, .cert_file = cfg->server.cert, .key_file = cfg->server.key,
                              .client_ca_file = cfg->server.client_ca, .methods = methods,
                              .n_methods = sizeof methods / sizeof methods[0], .user = f, .threads = threads,
                              .idle_timeout_ms = cfg->server.idle_timeout_s * 1000, .crl_file = cfg->server.crl,
                              .on_peer_certificate = agg_certs_peer_seen, .peer_certificate_user = f->certs};
  f->server = rpc_server_start(&rc_cfg, err, errlen);
  if (!f->server) goto fail;
  log_info("listening on %s (port %d)", cfg->server.listen, rpc_server_port(f->server));
  agg_certs_tick(f->certs, f->server);
  pthread_create(&f->ticker, NULL, round_ticker_main, f);
  return f;
fail:
  federation_free(f);
  return NULL;
}

int federation_port(const federation *f) { return rpc_server_port(f->server); }

void federation_request_stop(federation *f) { atomic_store(&f->stop, 1); }

void federation_request_reload(federation *f) { atomic_store(&f->reload, 1); }

/* SIGHUP: the TLS material, then the manifest signer, which uses the same key unless [server]
 * manifest_key names another. A failed reload keeps what is in force: the run goes on either way. */
static void reload_certificates(federation *f) {
  if (agg_certs_reload(f->certs, f->server) != 0) return;
  char err[512];
  pthread_mutex_lock(&f->mu);
  int rc = agg_manifest_load_signer(&f->man, f->cfg, err, sizeof err);
  pthread_mutex_unlock(&f->mu);
  if (rc != 0) log_error("SIGHUP: the manifest signer was not reloaded (the previous key signs on): %s", err);
}

void federation_wait(federation *f) {
  /* After the last commit the aggregator stays up until every joined site has fetched the final
   * adapter (so none retries against a closed port), or two poll intervals have passed; and at
   * least [metrics] linger_s, so the final state can be scraped. */
  double grace = 2.0 * f->cfg->server.poll_seconds + 5.0, linger = f->cfg->metrics.linger_s;
  while (!atomic_load(&f->stop)) {
    if (atomic_exchange(&f->reload, 0)) reload_certificates(f);
    agg_certs_tick(f->certs, f->server);
    pthread_mutex_lock(&f->mu);
    int done = 0;
    if (f->finished_at > 0) {
      int told = 0;
      for (int i = 0; i < f->n_sites; i++) told += f->sites[i].saw_finished;
      double since = clock_seconds() - f->finished_at;
      done = (told == f->n_sites || since > grace) && since >= linger;
    }
    pthread_mutex_unlock(&f->mu);
    if (done) break;
    usleep(100000);
  }
}

void federation_stop(federation *f) {
  if (!f) return;
  atomic_store(&f->stop, 1);
  pthread_cond_broadcast(&f->changed);
  pthread_join(f->ticker, NULL);
  rpc_server_stop(f->server);
  federation_free(f);
}
