/* Explains a failed connection to the aggregator in words a person can act on. */
#ifndef FEDLORA_TLS_PROBE_H
#define FEDLORA_TLS_PROBE_H

#include <stddef.h>

/* Connects to target with the same TLS files the client uses and writes into why what went
 * wrong (server unreachable, our certificate refused, the server's certificate not accepted);
 * why is left empty if the handshake succeeds. cert_file may be NULL (no client certificate). */
void tls_probe_explain(const char *target, const char *ca_file, const char *cert_file, const char *key_file,
                       const char *server_name, char *why, size_t cap);

/* Splits "host:port", "[v6]:port" or "ipv4:host:port" / "ipv6:[v6]:port"; the host is the name
 * TLS verifies when no server_name is configured. 0, or -1 if target has no port. */
int tls_target_split(const char *target, char *host, size_t hcap, char *port, size_t pcap);

#endif
