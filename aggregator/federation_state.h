/* Private to aggregator/: the state the federation's service (federation.c), its transfers
 * (transfers.c), its round thread (round_ticker.c) and its round commit (round_commit.c) share,
 * always under `mu`. */
#ifndef FEDLORA_FEDERATION_STATE_H
#define FEDLORA_FEDERATION_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "agg_certs.h"
#include "agg_config.h"
#include "agg_manifest.h"
#include "agg_ops.h"
#include "clock.h"
#include "federation.h"
#include "fedlora.pb-c.h"
#include "lora.h"
#include "model.h"
#include "payload.h"
#include "round.h"
#include "rpc.h"
#include "secagg_server.h"
#include "server_opt.h"
#include "store.h"

/* What the aggregator knows of a joined site beyond the round machine. */
typedef struct {
  char name[ROUND_SITE_NAME];
  uint64_t train_examples, train_tokens, val_examples; /* declared at Join */
  uint8_t sha[32];          /* digest of its update for the open round, when submitted */
  uint32_t last_submitted;  /* last round it submitted to */
  int64_t last_seen;        /* unix seconds */
  int saw_finished;         /* fetched the final adapter after being told the run is over */
} site_info;

struct federation {
  const agg_config *cfg;
  model_config mc;
  char fingerprint[65];
  char run_id[33];
  lora_config lora;
  payload_layout layout;    /* what travels: A and B, or B only with FFA */
  lora_adapter global;      /* the last committed global adapter */
  float *global_payload;    /* (layout.floats) the same, packed for the wire */
  uint8_t global_sha[32];
  server_opt_config sopt;
  float *sopt_state;        /* (n_state) server optimiser moments */
  size_t n_state;
  store st;
  round_machine rm;
  site_info sites[ROUND_MAX_SITES];
  int n_sites;
  uint64_t bytes_in, bytes_out;  /* of the open round */
  double finished_at;            /* monotonic time the last round committed, 0 before */
  Fedlora__V1__JoinResponse plan;
  char **plan_targets;
  uint8_t plan_sha[32];          /* manifest_plan_digest of plan, vouched for in every manifest */
  agg_manifest man;              /* signer and the open attempt's signed manifest */
  secagg_round sa;               /* the open round's secure aggregation (privacy.secagg) */
  secagg_host sa_host;
  pthread_mutex_t mu;
  pthread_cond_t changed;        /* round state changed: wakes AwaitRound */
  int transfers;                 /* downloads and uploads holding a payload now (<= MAX_TRANSFERS) */
  pthread_cond_t transfer_done;
  rpc_server *server;
  agg_ops *ops;                  /* audit log and metrics */
  pthread_t ticker;
  atomic_int stop;
  agg_certs *certs;         /* certificate reloads and expiry */
  atomic_int reload;        /* SIGHUP: reread certificates, key, client CA and CRL */
};

/* Each download or upload holds its payload several times over (a copy, gRPC's buffers, the
 * decoded message), so with every site transferring at once memory would grow with the number of
 * sites; beyond this many the others wait their turn. Twice the RPC layer's per-site call limit
 * (8), so one site stalling its streams cannot take every slot from the others. */
enum { MAX_TRANSFERS = 16 };

/* federation.c: the site registry and durable state. */
site_info *site_get(federation *f, const char *name);
/* 1 if the site (its certificate's CN) is in [server] allowed_clients. */
int site_allowed(const federation *f, const char *name);
/* Writes state.json; a failure is logged, and the run goes on. */
void state_save_logged(federation *f);

/* transfers.c: the DownloadAdapter and SubmitUpdate handlers' work, each within a transfer slot. */
grpc_status_code transfers_download(rpc_call *call, federation *f);
grpc_status_code transfers_submit(rpc_call *call, federation *f);

/* round_ticker.c: the round thread (arg is the federation), started by federation_start and ended
 * by federation_stop. */
void *round_ticker_main(void *arg);
/* Opens the secure aggregation of the round's current attempt (lock held); nothing unless
 * privacy.secagg is on and a round is open. */
void round_ticker_open_secagg(federation *f);

/* round_commit.c: aggregates the open round's updates and commits it; 0, or -1 leaving everything
 * unchanged (the round stays AGGREGATING and the round thread tries again). Lock held. */
int round_aggregate_commit(federation *f);

#endif
