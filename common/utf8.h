/* Strict UTF-8: what counts as one character, and where text stops being valid. */
#ifndef FEDLORA_UTF8_H
#define FEDLORA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed character at s[0..n), or 0 if the bytes there are not one
 * (overlong forms, surrogates and code points above U+10FFFF are not). *cp receives the code point. */
size_t utf8_char(const unsigned char *s, size_t n, uint32_t *cp);
/* Offset of the first byte that does not start a well-formed character, or n if all of s is valid. */
size_t utf8_invalid_at(const unsigned char *s, size_t n);
/* Writes cp's encoding to out; returns its length (1..4), or 0 if cp is not a scalar value. */
size_t utf8_put(uint32_t cp, unsigned char out[4]);

#endif
