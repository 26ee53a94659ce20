#include "rpc_wire.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/log.h>

#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

void rpc_bytes_free(rpc_bytes *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

int rpc_bytes_from_buffer(rpc_bytes *b, grpc_byte_buffer *bb) {
  size_t need = grpc_byte_buffer_length(bb);
  if (need > b->cap) {
    uint8_t *p = realloc(b->data, need);
    if (!p) return -1;
    b->data = p;
    b->cap = need;
  }
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) return -1;
  size_t off = 0;
  grpc_slice slice;
  while (grpc_byte_buffer_reader_next(&reader, &slice)) {
    size_t n = GRPC_SLICE_LENGTH(slice);
    if (n && off + n <= need) memcpy(b->data + off, GRPC_SLICE_START_PTR(slice), n);
    off += n;
    grpc_slice_unref(slice);
  }
  grpc_byte_buffer_reader_destroy(&reader);
  if (off != need) return -1;
  b->len = need;
  return 0;
}

ProtobufCMessage *rpc_bytes_decode(const rpc_bytes *b, const ProtobufCMessageDescriptor *type) {
  return protobuf_c_message_unpack(type, NULL, b->len, b->data);
}

grpc_byte_buffer *rpc_buffer_from_bytes(const void *bytes, size_t len) {
  grpc_slice slice = grpc_slice_malloc(len);
  if (len) memcpy(GRPC_SLICE_START_PTR(slice), bytes, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

grpc_byte_buffer *rpc_buffer_from_message(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  grpc_slice slice = grpc_slice_malloc(len);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

gpr_timespec rpc_deadline_after_ms(int64_t ms) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

char *rpc_read_pem(const char *path, const char *what, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read the %s %s: %s", what, path, strerror(errno));
    return NULL;
  }
  struct stat st;
  /* PEM files are small; a huge one is a mistake (a model file given as a certificate). */
  if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || st.st_size > (1 << 20)) {
    snprintf(err, errlen, "the %s %s is empty or larger than 1 MiB", what, path);
    fclose(f);
    return NULL;
  }
  char *pem = malloc((size_t)st.st_size + 1);
  size_t n = pem ? fread(pem, 1, (size_t)st.st_size, f) : 0;
  fclose(f);
  if (n != (size_t)st.st_size) {
    snprintf(err, errlen, "cannot read the %s %s", what, path);
    free(pem);
    return NULL;
  }
  pem[n] = '\0';
  if (!strstr(pem, "-----BEGIN ")) {
    snprintf(err, errlen, "the %s %s is not a PEM file", what, path);
    free(pem);
    return NULL;
  }
  return pem;
}

int rpc_check_key_pair(const char *cert_pem, const char *key_pem, const char *cert_path, char *err,
                       size_t errlen) {
  BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
  X509 *cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
  EVP_PKEY *key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
  int rc = -1;
  if (!cert)
    snprintf(err, errlen, "%s holds no readable certificate", cert_path);
  else if (!key)
    snprintf(err, errlen, "the private key for %s is not a readable, unencrypted PEM key", cert_path);
  else if (X509_check_private_key(cert, key) != 1)
    snprintf(err, errlen, "the private key does not belong to the certificate %s", cert_path);
  else {
    rc = 0;
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
      log_warn("the certificate %s has expired", cert_path);
    else if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0)
      log_warn("the certificate %s is not valid yet", cert_path);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  return rc;
}

void rpc_grpc_init(void) {
  /* gRPC's own log lines (handshake failures and the like) stay visible at error level only;
   * the layer reports what matters in its own words. GRPC_VERBOSITY overrides. */
  if (!getenv("GRPC_VERBOSITY")) gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
  grpc_init();
}
