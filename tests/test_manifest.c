/* Signed round manifests (common/manifest.h) with a development PKI: the aggregator's signature
 * verifies and the fields come back; an altered body, a signature by a site's key, a manifest
 * signed by a site with its own (client) certificate, a certificate for another name, one from
 * another CA, and a garbled document are all refused. manifest_accept names the first field that
 * differs from the task and refuses a missing or oversized manifest; the plan digest survives the
 * wire, the site's name and the round policy but moves with any value a site trains by. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "harness.h"
#include "manifest.h"

static char *slurp(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  char *buf = calloc(1, 1 << 16);
  size_t n = fread(buf, 1, (1 << 16) - 1, fp);
  buf[n] = 0;
  fclose(fp);
  return buf;
}

static EVP_PKEY *key_of(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return crypto_private_key_load(path);
}

/* The document with its body's round replaced. */
static char *with_round(const char *doc, int round) {
  json_t *o = json_loads(doc, 0, NULL);
  json_t *body = json_loads(json_string_value(json_object_get(o, "body")), 0, NULL);
  json_object_set_new(body, "round", json_integer(round));
  char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_object_set_new(o, "body", json_string(text));
  char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  free(text);
  json_decref(body);
  json_decref(o);
  return out;
}

/* manifest_accept: the signed fields against what the site expects, each mismatch named. */
static void accept_checks(const char *doc, const manifest *signed_m, const char *ca) {
  char err[512];
  manifest got, want = *signed_m;
  CHECK_EQ_INT(manifest_accept(doc, &want, ca, "localhost", &got, err, sizeof err), 0);
  CHECK_EQ_INT(got.round, 7);

  want.attempt = 2;
  CHECK_EQ_INT(manifest_accept(doc, &want, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "manifest field attempt: expected 2 (the task's), got 1");
  want = *signed_m;
  want.base_round = 5;
  CHECK_EQ_INT(manifest_accept(doc, &want, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "manifest field base_round: expected 5");
  want = *signed_m;
  want.run_id[0] = 'f';
  CHECK_EQ_INT(manifest_accept(doc, &want, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "manifest field run_id");
  want = *signed_m;
  want.plan_sha[31] ^= 1;
  CHECK_EQ_INT(manifest_accept(doc, &want, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "manifest field plan_sha256: expected 000102");
  want = *signed_m;
  want.adapter_sha[0] ^= 1;
  CHECK_EQ_INT(manifest_accept(doc, &want, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "manifest field adapter_sha256: expected fefe");

  /* No manifest is a refusal, not a downgrade to unsigned tasks. */
  want = *signed_m;
  CHECK_EQ_INT(manifest_accept(NULL, &want, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "no manifest");
  CHECK_EQ_INT(manifest_accept("", &want, ca, "localhost", &got, err, sizeof err), 1);
  char *big = malloc(MANIFEST_MAX_BYTES + 2);
  memset(big, ' ', MANIFEST_MAX_BYTES + 1);
  big[MANIFEST_MAX_BYTES + 1] = 0;
  CHECK_EQ_INT(manifest_accept(big, &want, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "exceeds");
  free(big);
  /* A bad signature stays a refusal through manifest_accept. */
  CHECK_EQ_INT(manifest_accept(doc, &want, ca, "aggregator.other.org", &got, err, sizeof err), 1);
}

/* The plan digest survives the wire (pack, unpack) and ignores the per-site name and the round
 * policy, but moves with any value a site trains by. */
static void plan_digest_checks(void) {
  Fedlora__V1__JoinResponse plan = FEDLORA__V1__JOIN_RESPONSE__INIT;
  Fedlora__V1__TrainConfig train = FEDLORA__V1__TRAIN_CONFIG__INIT;
  Fedlora__V1__LoraConfig lora = FEDLORA__V1__LORA_CONFIG__INIT;
  char *targets[] = {"q_proj", "v_proj"};
  lora.rank = 4;
  lora.alpha = 8;
  lora.target_modules = targets;
  lora.n_target_modules = 2;
  train.lr = 2e-3;
  train.optimizer = "adamw";
  plan.run_id = "0123456789abcdef0123456789abcdef";
  plan.lora = &lora;
  plan.train = &train;
  uint8_t sent[32], received[32], other[32];
  CHECK_EQ_INT(manifest_plan_digest(&plan, sent), 0);

  plan.site = "alpha";
  size_t n = protobuf_c_message_get_packed_size(&plan.base);
  uint8_t *wire = malloc(n);
  protobuf_c_message_pack(&plan.base, wire);
  Fedlora__V1__JoinResponse *got = fedlora__v1__join_response__unpack(NULL, n, wire);
  CHECK(got != NULL);
  if (got) {
    CHECK_EQ_INT(manifest_plan_digest(got, received), 0);
    CHECK(memcmp(sent, received, 32) == 0);
    fedlora__v1__join_response__free_unpacked(got, NULL);
  }
  free(wire);

  Fedlora__V1__RoundPolicy rounds = FEDLORA__V1__ROUND_POLICY__INIT;
  rounds.min_clients = 2;
  plan.rounds = &rounds;
  CHECK_EQ_INT(manifest_plan_digest(&plan, other), 0);
  CHECK(memcmp(sent, other, 32) == 0);
  train.lr = 2.0000000000000004e-3; /* one ulp away */
  CHECK_EQ_INT(manifest_plan_digest(&plan, other), 0);
  CHECK(memcmp(sent, other, 32) != 0);
  train.lr = 2e-3;
  targets[1] = "k_proj";
  CHECK_EQ_INT(manifest_plan_digest(&plan, other), 0);
  CHECK(memcmp(sent, other, 32) != 0);
}

int main(void) {
  const char *pki = harness_pki();
  char ca[1024], err[512];
  snprintf(ca, sizeof ca, "%s/ca.pem", pki);
  manifest m = {.round = 7, .attempt = 1, .base_round = 6};
  snprintf(m.run_id, sizeof m.run_id, "0123456789abcdef0123456789abcdef");
  for (int i = 0; i < 32; i++) m.plan_sha[i] = (uint8_t)i, m.adapter_sha[i] = (uint8_t)(255 - i);

  char *agg_pem = slurp(pki, "aggregator.pem"), *alpha_pem = slurp(pki, "alpha.pem");
  EVP_PKEY *agg_key = key_of(pki, "aggregator.key"), *alpha_key = key_of(pki, "alpha.key");
  CHECK(agg_pem && alpha_pem && agg_key && alpha_key);
  if (!agg_pem || !alpha_pem || !agg_key || !alpha_key) return harness_finish();

  char *doc = manifest_sign(&m, agg_key, agg_pem, err, sizeof err);
  CHECK_MSG(doc != NULL, "sign: %s", err);
  manifest got;
  CHECK_EQ_INT(manifest_verify(doc, ca, "localhost", &got, err, sizeof err), 0);
  CHECK_EQ_INT(got.round, 7);
  CHECK_EQ_INT(got.attempt, 1);
  CHECK_EQ_INT(got.base_round, 6);
  CHECK(strcmp(got.run_id, m.run_id) == 0);
  CHECK(memcmp(got.plan_sha, m.plan_sha, 32) == 0 && memcmp(got.adapter_sha, m.adapter_sha, 32) == 0);
  CHECK_EQ_INT(manifest_verify(doc, ca, "127.0.0.1", &got, err, sizeof err), 0);

  /* The name the site expects is not in the certificate. */
  CHECK_EQ_INT(manifest_verify(doc, ca, "aggregator.other.org", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "does not name");

  /* Altered body: round 8 under round 7's signature. */
  char *altered = with_round(doc, 8);
  CHECK_EQ_INT(manifest_verify(altered, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "signature does not match");
  free(altered);

  /* Signed with a site's key but carrying the aggregator's certificate. */
  char *forged = manifest_sign(&m, alpha_key, agg_pem, err, sizeof err);
  CHECK_EQ_INT(manifest_verify(forged, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "signature does not match");
  free(forged);

  /* A site signing with its own certificate, which chains to the same CA. */
  forged = manifest_sign(&m, alpha_key, alpha_pem, err, sizeof err);
  CHECK_EQ_INT(manifest_verify(forged, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "not a TLS server certificate");
  free(forged);

  /* A valid server certificate from another CA, for the right name. */
  const char *other = harness_tmpdir();
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "bash '%s' '%s' alpha >/dev/null", harness_source("certs/dev-pki.sh"), other);
  CHECK_EQ_INT(system(cmd), 0);
  char *other_pem = slurp(other, "aggregator.pem");
  EVP_PKEY *other_key = key_of(other, "aggregator.key");
  forged = other_pem && other_key ? manifest_sign(&m, other_key, other_pem, err, sizeof err) : NULL;
  CHECK(forged != NULL);
  CHECK_EQ_INT(manifest_verify(forged, ca, "localhost", &got, err, sizeof err), 1);
  CHECK_STR_CONTAINS(err, "does not chain");
  free(forged);

  CHECK_EQ_INT(manifest_verify("{\"body\":\"x\"}", ca, "localhost", &got, err, sizeof err), -1);
  CHECK_EQ_INT(manifest_verify("not json", ca, "localhost", &got, err, sizeof err), -1);

  accept_checks(doc, &m, ca);
  plan_digest_checks();

  free(doc);
  free(agg_pem);
  free(alpha_pem);
  free(other_pem);
  EVP_PKEY_free(agg_key);
  EVP_PKEY_free(alpha_key);
  EVP_PKEY_free(other_key);
  return harness_finish();
}
