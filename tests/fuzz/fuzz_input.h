/* What every harness shares: the parsers read paths, so the fuzzer's bytes are written to a file in
 * a private directory (on tmpfs when there is one) made once per process and removed at exit, or
 * by the next harness to start if the process died. */
#ifndef FEDLORA_FUZZ_INPUT_H
#define FEDLORA_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* The private directory; the first call also silences the library's log (a rejected input is the
 * normal case here, and its warning would drown libFuzzer's own output). */
const char *fuzz_dir(void);
/* Writes data to fuzz_dir()/name, replacing it; returns the path (valid until the next call). */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);

#endif
