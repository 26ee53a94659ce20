/* The aggregator's secure-aggregation state machine (common/secagg_protocol.h) driven by what
 * sites may send it, in any order: adverts with any keys, shares and masked vectors from any
 * index (in range or not), reveals of any kinds and bytes, stage closes and the final unmasking.
 * The network layer (aggregator/secagg_server.c) only bounds sizes and maps names to indices
 * before these calls, so a malicious site reaches exactly this. Input: n (2..8), t (in (n/2, n]),
 * then operations of one byte each followed by their bytes (missing bytes read as zero). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "secagg_protocol.h"

enum { D = 8, OPS_MAX = 64 };

typedef struct {
  const uint8_t *p;
  size_t left;
} reader;

static uint8_t take_byte(reader *r) {
  if (!r->left) return 0;
  r->left--;
  return *r->p++;
}

static void take(reader *r, void *out, size_t len) {
  size_t n = len < r->left ? len : r->left;
  memcpy(out, r->p, n);
  memset((uint8_t *)out + n, 0, len - n);
  r->p += n, r->left -= n;
}

/* A site index: in range mostly, but −1 and n too. */
static int take_site(reader *r, int n) { return (int)(take_byte(r) % (unsigned)(n + 2)) - 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_dir(); /* silences the log */
  reader r = {data, size};
  secagg_params p = {.round = 1, .range = 1.0, .scale = 1024.0, .d = D};
  snprintf(p.run_id, sizeof p.run_id, "fuzz");
  p.n = 2 + take_byte(&r) % 7;
  p.t = p.n / 2 + 1 + take_byte(&r) % (p.n - p.n / 2); /* above half, as secagg_params_check wants */
  for (int k = 0; k < p.n; k++) snprintf(p.names[k], SECAGG_NAME_BYTES, "site%02d", k);
  secagg_server v;
  char err[512];
  if (secagg_server_build(&v, &p, err, sizeof err) != 0) abort(); /* the parameters are valid */
  for (int op = 0; op < OPS_MAX && r.left; op++) {
    secagg_stage before = v.stage;
    int rc = -1;
    switch (take_byte(&r) % 8) {
      case 0: {
        secagg_advert a = {.from = take_site(&r, p.n)};
        take(&r, a.s_pk, sizeof a.s_pk);
        rc = secagg_server_add_advert(&v, &a, err, sizeof err);
        break;
      }
      case 1: rc = secagg_server_close_keys(&v, err, sizeof err); break;
      case 2: rc = secagg_server_add_shares(&v, take_site(&r, p.n), err, sizeof err); break;
      case 3: rc = secagg_server_close_shares(&v, err, sizeof err); break;
      case 4: {
        int from = take_site(&r, p.n);
        uint32_t y[D + 1];
        take(&r, y, sizeof y);
        rc = secagg_server_add_masked(&v, from, y, err, sizeof err);
        break;
      }
      case 5: rc = secagg_server_close_masked(&v, err, sizeof err); break;
      case 6: {
        secagg_reveal rv = {.from = take_site(&r, p.n)};
        for (int k = 0; k < p.n; k++) {
          rv.kind[k] = take_byte(&r) % 4; /* 3 is no kind at all */
          take(&r, rv.y[k], SHAMIR_SECRET_BYTES);
        }
        rc = secagg_server_add_reveal(&v, &rv, err, sizeof err);
        break;
      }
      default: {
        float mean[D];
        double w_sum;
        rc = secagg_server_finish(&v, mean, &w_sum, err, sizeof err);
        if (rc == 0 && v.stage != SECAGG_DONE) abort();
        break;
      }
    }
    /* a finished or aborted round takes nothing more */
    if (rc == 0 && (before == SECAGG_DONE || before == SECAGG_ABORTED)) abort();
    if (rc != 0 && !err[0]) abort(); /* every refusal says why */
    err[0] = 0;
  }
  secagg_server_free(&v);
  return 0;
}
