/* common/secagg_protocol.h with four sites of a real development PKI, all in one process: the sum
 * equals the weighted mean within the quantisation bound computed here, one site dropping after
 * sharing is recovered, two of four dropping with t = 3 abort without a reveal, the masked inputs
 * do not correlate with the true ones, and forged or misrouted keys are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "secagg_protocol.h"

enum { N = 4, D = 2000 };
static const char *const names[N] = {"alpha", "beta", "delta", "gamma"};  /* sorted */
static EVP_PKEY *keys[N];
static char *certs[N];
static const char *pki;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = calloc(1, 1 << 16);
  size_t n = fread(buf, 1, (1 << 16) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

static void setup_pki(void) {
  pki = harness_tmpdir();
  char cmd[4096], path[4096];
  snprintf(cmd, sizeof cmd, "bash '%s' '%s' alpha beta gamma delta >/dev/null", harness_source("certs/dev-pki.sh"),
           pki);
  if (system(cmd) != 0) {
    fprintf(stderr, "dev-pki.sh failed\n");
    exit(2);
  }
  for (int k = 0; k < N; k++) {
    snprintf(path, sizeof path, "%s/%s.key", pki, names[k]);
    keys[k] = crypto_private_key_load(path);
    snprintf(path, sizeof path, "%s/%s.pem", pki, names[k]);
    certs[k] = slurp(path);
    if (!keys[k] || !certs[k]) {
      fprintf(stderr, "cannot read %s\n", path);
      exit(2);
    }
  }
}

static const char *ca(void) {
  static char path[4096];
  snprintf(path, sizeof path, "%s/ca.pem", pki);
  return path;
}

static secagg_params params(int t) {
  secagg_params p = {.round = 7, .n = N, .t = t, .range = 1.0, .scale = 1 << 20, .d = D};
  snprintf(p.run_id, sizeof p.run_id, "run-test");
  for (int k = 0; k < N; k++) snprintf(p.names[k], sizeof p.names[k], "%s", names[k]);
  return p;
}

typedef struct {
  float x[N][D];
  double w[N];
  uint32_t y[N][D + 1];
  float mean[D];
  double w_sum;
  int aborted_at;     /* 0 completed, 2 masked stage, 3 reveal refused, 4 the unmasked sum refused */
  int corrupt_reveal; /* site 0's share of site 1's self-mask seed arrives with a bit flipped */
} run;

static secagg_site sites[N];
static secagg_sealed_share sealed[N][N];

/* One round; sites in drop_after_share send shares but no masked input. */
static void run_round(run *r, const secagg_params *p, const int *drop_after_share) {
  char err[512];
  secagg_server v;
  CHECK(secagg_server_build(&v, p, err, sizeof err) == 0);
  secagg_advert adverts[N];
  for (int k = 0; k < N; k++) {
    CHECK_MSG(secagg_site_advertise(&sites[k], p, k, keys[k], &adverts[k], err, sizeof err) == 0, "%s", err);
    adverts[k].cert_pem = certs[k];
    CHECK(secagg_server_add_advert(&v, &adverts[k], err, sizeof err) == 0);
  }
  CHECK(secagg_server_close_keys(&v, err, sizeof err) == 0);
  for (int k = 0; k < N; k++) {
    CHECK_MSG(secagg_site_share(&sites[k], adverts, N, ca(), sealed[k], err, sizeof err) == 0, "%s", err);
    CHECK(secagg_server_add_shares(&v, k, err, sizeof err) == 0);
  }
  CHECK(secagg_server_close_shares(&v, err, sizeof err) == 0);
  uint8_t u3[N] = {0};
  for (int k = 0; k < N; k++) {
    secagg_sealed_share inbox[N];
    int m = 0;
    for (int i = 0; i < N; i++)
      if (i != k) inbox[m++] = sealed[i][k];
    CHECK_MSG(secagg_site_mask(&sites[k], inbox, m, r->x[k], r->w[k], 100 + k, r->y[k], err, sizeof err) == 0, "%s",
              err);
    if (drop_after_share[k]) continue;
    CHECK(secagg_server_add_masked(&v, k, r->y[k], err, sizeof err) == 0);
    u3[k] = 1;
  }
  if (secagg_server_close_masked(&v, err, sizeof err) != 0) {
    CHECK_STR_CONTAINS(err, "round aborted");
    r->aborted_at = 2;
    /* A site asked to reveal for too few survivors refuses. */
    secagg_reveal rv;
    for (int k = 0; k < N; k++)
      if (u3[k]) CHECK(secagg_site_unmask(&sites[k], u3, &rv, err, sizeof err) != 0);
    CHECK_STR_CONTAINS(err, "nothing revealed");
    secagg_server_free(&v);
    return;
  }
  for (int k = 0; k < N; k++) {
    if (!u3[k]) continue;
    secagg_reveal rv;
    CHECK_MSG(secagg_site_unmask(&sites[k], u3, &rv, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < N; i++)  /* never both kinds for one peer: the kind follows U3 */
      CHECK(rv.kind[i] == (u3[i] ? SECAGG_REVEAL_SELF_SEED : SECAGG_REVEAL_MASK_KEY));
    if (k == 0 && r->corrupt_reveal) rv.y[1][0] ^= 1;
    CHECK(secagg_server_add_reveal(&v, &rv, err, sizeof err) == 0);
    CHECK(secagg_site_unmask(&sites[k], u3, &rv, err, sizeof err) != 0); /* only once */
  }
  int rc = secagg_server_finish(&v, r->mean, &r->w_sum, err, sizeof err);
  if (r->corrupt_reveal) {
    /* a wrong self-mask seed leaves its whole keystream in the sum: refused, not committed */
    CHECK(rc != 0 && v.stage == SECAGG_ABORTED);
    CHECK_STR_CONTAINS(err, "nothing is committed");
    r->aborted_at = 4;
  } else {
    CHECK_MSG(rc == 0, "%s", err);
  }
  secagg_server_free(&v);
}

static void fill(run *r, unsigned seed) {
  srand(seed);
  double total = 0, ex[N] = {120, 80, 300, 45};
  for (int k = 0; k < N; k++) total += ex[k];
  for (int k = 0; k < N; k++) {
    r->w[k] = ex[k] / total;
    for (int i = 0; i < D; i++) r->x[k][i] = (float)((double)rand() / RAND_MAX - 0.5) * (k + 1) * 0.2f;
  }
}

/* The weighted mean over `in`, and the bound the fixed-point encoding allows: each of the m terms
 * of Σ w·x and of Σ w·range is off by less than 1/scale. */
static double check_mean(const run *r, const secagg_params *p, const int *in) {
  double wsum = 0, worst = 0;
  int m = 0;
  for (int k = 0; k < N; k++) wsum += in[k] ? r->w[k] : 0, m += in[k];
  CHECK_MSG(fabs(r->w_sum - wsum) <= m / (p->scale * p->range) + 1e-7, "weight sum %.9g, want %.9g", r->w_sum, wsum);
  double bound = 0;
  for (int i = 0; i < D; i++) {
    double s = 0;
    for (int k = 0; k < N; k++) s += in[k] ? r->w[k] * r->x[k][i] : 0;
    double want = s / wsum;
    bound = (m / p->scale + fabs(want) * m / (p->scale * p->range)) / (wsum - m / (p->scale * p->range)) + 1e-7;
    double err = fabs(r->mean[i] - want);
    if (err > worst) worst = err;
    if (err > bound) {
      CHECK_MSG(0, "coordinate %d: %.9g, want %.9g (bound %.3g)", i, r->mean[i], want, bound);
      break;
    }
  }
  CHECK(worst > 0);  /* the encoding is lossy: an exact match would mean nothing was encoded */
  printf("mean off by at most %.3g (bound about %.3g)\n", worst, bound);
  return worst;
}

static double corr(const uint32_t *y, const float *x, double w) {
  double sy = 0, sx = 0, sxx = 0, syy = 0, sxy = 0;
  for (int i = 0; i < D; i++) {
    double a = (double)(int32_t)y[i + 1], b = w * x[i];
    sy += a, sx += b, syy += a * a, sxx += b * b, sxy += a * b;
  }
  double cov = sxy / D - sx / D * sy / D;
  return cov / sqrt((sxx / D - sx / D * sx / D) * (syy / D - sy / D * sy / D));
}

int main(void) {
  setup_pki();
  static run r;
  secagg_params p = params(3);
  CHECK_EQ_INT(secagg_default_threshold(4), 3);
  CHECK_EQ_INT(secagg_default_threshold(100), 67);
  /* t = 2 of 4: two sites told that gamma dropped reveal shares of its mask key, gamma and another
   * told it survived reveal shares of its self-mask seed, and an aggregator holding both unmasks
   * gamma's vector alone. Refused on both sides; every default threshold is above half. */
  {
    char err[512];
    secagg_params half = params(2);
    CHECK(secagg_params_check(&half, err, sizeof err) != 0);
    CHECK_STR_CONTAINS(err, "threshold 2 of 4 sites is at most half");
    secagg_site s;
    secagg_advert a;
    CHECK(secagg_site_advertise(&s, &half, 0, keys[0], &a, err, sizeof err) != 0);
    secagg_server v;
    CHECK(secagg_server_build(&v, &half, err, sizeof err) != 0);
    for (int n = 2; n <= SECAGG_MAX_SITES; n++) CHECK_MSG(2 * secagg_default_threshold(n) > n, "n = %d", n);
  }

  int none[N] = {0}, all[N] = {1, 1, 1, 1};
  fill(&r, 1);
  run_round(&r, &p, none);
  CHECK_EQ_INT(r.aborted_at, 0);
  check_mean(&r, &p, all);
  /* What the aggregator receives is uncorrelated with what the site holds. */
  for (int k = 0; k < N; k++) {
    double c = corr(r.y[k], r.x[k], r.w[k]);
    CHECK_MSG(fabs(c) < 0.1, "site %d: masked input correlates %.3f with its update", k, c);
  }

  /* delta (index 2) shares, then drops: its pairwise masks are rebuilt from three shares. */
  int drop_one[N] = {0, 0, 1, 0}, kept[N] = {1, 1, 0, 1};
  fill(&r, 2);
  run_round(&r, &p, drop_one);
  CHECK_EQ_INT(r.aborted_at, 0);
  check_mean(&r, &p, kept);

  /* A wrong share: the unmasked sum is noise over the int32 range and is refused. */
  fill(&r, 5);
  r.aborted_at = 0;
  r.corrupt_reveal = 1;
  run_round(&r, &p, none);
  CHECK_EQ_INT(r.aborted_at, 4);
  r.corrupt_reveal = 0;

  /* Two of four drop with t = 3: aborted before anything is revealed. */
  int drop_two[N] = {0, 1, 1, 0};
  fill(&r, 3);
  run_round(&r, &p, drop_two);
  CHECK_EQ_INT(r.aborted_at, 2);

  /* The aggregator cannot substitute keys: a swapped key, and another site's certificate. */
  char err[512];
  secagg_advert adverts[N];
  secagg_sealed_share out[N];
  for (int k = 0; k < N; k++) {
    CHECK(secagg_site_advertise(&sites[k], &p, k, keys[k], &adverts[k], err, sizeof err) == 0);
    adverts[k].cert_pem = certs[k];
  }
  adverts[1].s_pk[0] ^= 1;
  CHECK(secagg_site_share(&sites[0], adverts, N, ca(), out, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "the keys relayed for 'beta' are not signed by it");
  adverts[1].s_pk[0] ^= 1;
  adverts[1].cert_pem = certs[3];
  secagg_advert a0;
  CHECK(secagg_site_advertise(&sites[0], &p, 0, keys[0], &a0, err, sizeof err) == 0);
  a0.cert_pem = certs[0];
  adverts[0] = a0;
  CHECK(secagg_site_share(&sites[0], adverts, N, ca(), out, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "the advert for 'beta' carries the certificate of 'gamma'");

  /* A share misrouted or altered in transit does not open. */
  fill(&r, 4);
  run_round(&r, &p, none);
  secagg_site s2;
  for (int k = 0; k < N; k++) {
    CHECK(secagg_site_advertise(&sites[k], &p, k, keys[k], &adverts[k], err, sizeof err) == 0);
    adverts[k].cert_pem = certs[k];
  }
  for (int k = 0; k < N; k++) CHECK(secagg_site_share(&sites[k], adverts, N, ca(), sealed[k], err, sizeof err) == 0);
  s2 = sites[1];
  secagg_sealed_share inbox[N - 1] = {sealed[0][1], sealed[2][1], sealed[3][1]};
  inbox[1].ct[5] ^= 0x40;
  CHECK(secagg_site_mask(&s2, inbox, N - 1, r.x[1], r.w[1], 1, r.y[1], err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "the share from 'delta' does not open");

  for (int k = 0; k < N; k++) {
    EVP_PKEY_free(keys[k]);
    free(certs[k]);
    secagg_site_clear(&sites[k]);
  }
  return harness_finish();
}
