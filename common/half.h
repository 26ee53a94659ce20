/* IEEE 754 binary16 (f16) and bfloat16 (bf16) <-> f32 conversion.
 * Narrowing rounds to nearest, ties to even, like PyTorch's `.half()` and `.bfloat16()`;
 * NaN stays NaN and values beyond the f16 range become infinities. */
#ifndef FEDLORA_HALF_H
#define FEDLORA_HALF_H

#include <stddef.h>
#include <stdint.h>

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);

/* Array forms on raw little-endian bytes: `src`/`dst` need no alignment, because tensors inside a
 * memory-mapped safetensors file sit at whatever byte offset the header gives. */
void f16_bytes_to_f32(const unsigned char *src, float *dst, size_t n);   /* src: 2n bytes */
void bf16_bytes_to_f32(const unsigned char *src, float *dst, size_t n);  /* src: 2n bytes */
void f32_to_f16_bytes(const float *src, unsigned char *dst, size_t n);   /* dst: 2n bytes */
void f32_to_bf16_bytes(const float *src, unsigned char *dst, size_t n);  /* dst: 2n bytes */

#endif
