#include "manifest.h"

#include <jansson.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "payload.h"

static int hex_decode(const char *hex, uint8_t *out, size_t n) {
  if (!hex || strlen(hex) != 2 * n) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

static char *hex_encode(const uint8_t *in, size_t n) {
  char *s = malloc(2 * n + 1);
  for (size_t i = 0; s && i < n; i++) snprintf(s + 2 * i, 3, "%02x", in[i]);
  return s;
}

/* The body: compact JSON, keys in this fixed order. */
static char *body_text(const manifest *m) {
  char plan[65], adapter[65];
  sha256_hex(m->plan_sha, plan);
  sha256_hex(m->adapter_sha, adapter);
  json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:s,s:s}", "run_id", m->run_id, "round", (json_int_t)m->round, "attempt",
                        (json_int_t)m->attempt, "base_round", (json_int_t)m->base_round, "plan_sha256", plan,
                        "adapter_sha256", adapter);
  char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  return text;
}

char *manifest_sign(const manifest *m, EVP_PKEY *key, const char *cert_pem, char *err, size_t errlen) {
  char *body = body_text(m), *sig_hex = NULL, *doc = NULL;
  uint8_t *sig = NULL;
  size_t sig_len = 0;
  if (!body || crypto_sign(key, (const uint8_t *)body, strlen(body), &sig, &sig_len) != 0) {
    snprintf(err, errlen, "cannot sign the manifest of round %u", m->round);
  } else if ((sig_hex = hex_encode(sig, sig_len))) {
    json_t *o = json_pack("{s:s,s:s,s:s}", "body", body, "signature", sig_hex, "cert_pem", cert_pem);
    doc = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!doc) snprintf(err, errlen, "cannot encode the manifest of round %u", m->round);
  }
  free(body);
  free(sig);
  free(sig_hex);
  return doc;
}

static int body_parse(const char *body, manifest *m, char *err, size_t errlen) {
  json_t *o = json_loads(body, 0, NULL);
  const char *run = json_string_value(json_object_get(o, "run_id"));
  json_t *round = json_object_get(o, "round"), *attempt = json_object_get(o, "attempt"),
         *base = json_object_get(o, "base_round");
  int rc = -1;
  memset(m, 0, sizeof *m);
  if (run && strlen(run) < sizeof m->run_id && json_is_integer(round) && json_is_integer(attempt) &&
      json_is_integer(base) &&
      hex_decode(json_string_value(json_object_get(o, "plan_sha256")), m->plan_sha, 32) == 0 &&
      hex_decode(json_string_value(json_object_get(o, "adapter_sha256")), m->adapter_sha, 32) == 0) {
    snprintf(m->run_id, sizeof m->run_id, "%s", run);
    m->round = (uint32_t)json_integer_value(round);
    m->attempt = (uint32_t)json_integer_value(attempt);
    m->base_round = (uint32_t)json_integer_value(base);
    rc = 0;
  } else {
    snprintf(err, errlen, "manifest body: expected run_id, round, attempt, base_round, plan_sha256, adapter_sha256");
  }
  json_decref(o);
  return rc;
}

int manifest_verify(const char *doc, const char *ca_path, const char *server_name, manifest *out, char *err,
                    size_t errlen) {
  json_t *o = json_loads(doc, 0, NULL);
  const char *body = json_string_value(json_object_get(o, "body"));
  const char *sig_hex = json_string_value(json_object_get(o, "signature"));
  const char *pem = json_string_value(json_object_get(o, "cert_pem"));
  size_t sig_len = sig_hex ? strlen(sig_hex) / 2 : 0;
  uint8_t *sig = malloc(sig_len + 1);
  X509 *cert = NULL;
  char cn[256];
  int rc = -1;
  if (!body || !pem || !sig_hex || sig_len == 0 || sig_len > 1024 || hex_decode(sig_hex, sig, sig_len) != 0) {
    snprintf(err, errlen, "manifest: expected body, signature (hex) and cert_pem");
  } else if (!(cert = crypto_cert_parse(pem, strlen(pem)))) {
    snprintf(err, errlen, "manifest: cert_pem is not a certificate");
  } else if ((rc = crypto_cert_verify(cert, ca_path, cn, sizeof cn)) != 0) {
    if (rc > 0) snprintf(err, errlen, "manifest: the signer's certificate does not chain to %s", ca_path);
    else snprintf(err, errlen, "manifest: cannot check the signer's certificate against %s", ca_path);
  } else if (X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) != 1) {
    /* A site's client certificate chains to the same CA: only the aggregator's may sign. */
    snprintf(err, errlen, "manifest: signed by '%s', whose certificate is not a TLS server certificate", cn);
    rc = 1;
  } else if (X509_check_host(cert, server_name, 0, 0, NULL) != 1 && X509_check_ip_asc(cert, server_name, 0) != 1) {
    snprintf(err, errlen, "manifest: the signer's certificate (CN '%s') does not name %s", cn, server_name);
    rc = 1;
  } else if ((rc = crypto_verify(X509_get0_pubkey(cert), (const uint8_t *)body, strlen(body), sig, sig_len)) != 0) {
    snprintf(err, errlen, "manifest: the signature does not match the body%s", rc < 0 ? " (cannot check)" : "");
  } else {
    rc = body_parse(body, out, err, errlen);
  }
  X509_free(cert);
  free(sig);
  json_decref(o);
  return rc;
}

/* The first field of got that differs from want, described for a person; 0 if none does. */
static int fields_compare(const manifest *want, const manifest *got, char *err, size_t errlen) {
  const struct {
    const char *name;
    uint32_t want, got;
  } numbers[] = {{"round", want->round, got->round},
                 {"attempt", want->attempt, got->attempt},
                 {"base_round", want->base_round, got->base_round}};
  if (strcmp(want->run_id, got->run_id) != 0) {
    snprintf(err, errlen, "manifest field run_id: expected %s (the run joined), got %s", want->run_id, got->run_id);
    return 1;
  }
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
    if (numbers[i].want != numbers[i].got) {
      snprintf(err, errlen, "manifest field %s: expected %u (the task's), got %u", numbers[i].name, numbers[i].want,
               numbers[i].got);
      return 1;
    }
  const struct {
    const char *name, *whose;
    const uint8_t *want, *got;
  } digests[] = {{"plan_sha256", "the plan received at Join", want->plan_sha, got->plan_sha},
                 {"adapter_sha256", "the task's", want->adapter_sha, got->adapter_sha}};
  for (size_t i = 0; i < sizeof digests / sizeof digests[0]; i++)
    if (memcmp(digests[i].want, digests[i].got, 32) != 0) {
      char w[65], g[65];
      sha256_hex(digests[i].want, w);
      sha256_hex(digests[i].got, g);
      snprintf(err, errlen, "manifest field %s: expected %s (%s), got %s", digests[i].name, w, digests[i].whose, g);
      return 1;
    }
  return 0;
}

int manifest_accept(const char *doc, const manifest *want, const char *ca_path, const char *server_name,
                    manifest *got, char *err, size_t errlen) {
  size_t len = doc ? strnlen(doc, MANIFEST_MAX_BYTES + 1) : 0;
  if (len == 0) {
    snprintf(err, errlen, "the task carries no manifest (an aggregator must sign every round it hands out)");
    return 1;
  }
  if (len > MANIFEST_MAX_BYTES) {
    snprintf(err, errlen, "the task's manifest exceeds %d bytes", MANIFEST_MAX_BYTES);
    return 1;
  }
  int rc = manifest_verify(doc, ca_path, server_name, got, err, errlen);
  return rc != 0 ? rc : fields_compare(want, got, err, errlen);
}

int manifest_plan_digest(const Fedlora__V1__JoinResponse *plan, uint8_t out[32]) {
  Fedlora__V1__JoinResponse p = *plan;
  p.site = (char *)""; /* the one field that differs between sites */
  p.rounds = NULL;
  size_t n = protobuf_c_message_get_packed_size(&p.base);
  uint8_t *buf = malloc(n + 1);
  if (!buf) return -1;
  protobuf_c_message_pack(&p.base, buf);
  sha256_bytes(buf, n, out);
  free(buf);
  return 0;
}
