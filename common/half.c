#include "half.h"

#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {
    /* zero or subnormal: mant * 2^-24 is exact in f32 */
    float mag = ldexpf((float)mant, -24);
    return sign ? -mag : mag;
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));  /* inf, or NaN keeping its payload */
  return bits_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((u >> 13) & 0x3ff);  /* NaN stays a quiet NaN */
  /* 65520 is halfway between 65504 (max f16, odd mantissa) and 2^16: ties-to-even rounds it up to inf */
  if (u >= 0x477ff000u) return sign | 0x7c00;
  if (u < 0x38800000u) {
    /* below the smallest normal 2^-14: the f16 subnormal is round(|f| * 2^24) in units of 2^-24,
     * and rintf rounds ties to even; a result of 0x400 is correctly the smallest normal */
    return sign | (uint16_t)rintf(fabsf(f) * 16777216.0f);
  }
  /* add just under half an f16 ulp, plus one if the kept lsb is odd (ties to even); a carry out of
   * the mantissa bumps the exponent, which is the correct rounding too */
  uint32_t r = u + 0xfffu + ((u >> 13) & 1u);
  return sign | (uint16_t)((r >> 13) - ((127u - 15u) << 10));
}

float bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040);  /* quiet NaN */
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static uint16_t load_u16le(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void store_u16le(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v & 0xff);
  p[1] = (unsigned char)(v >> 8);
}

void f16_bytes_to_f32(const unsigned char *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(load_u16le(src + 2 * i));
}

void bf16_bytes_to_f32(const unsigned char *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(load_u16le(src + 2 * i));
}

void f32_to_f16_bytes(const float *src, unsigned char *dst, size_t n) {
  for (size_t i = 0; i < n; i++) store_u16le(dst + 2 * i, f32_to_f16(src[i]));
}

void f32_to_bf16_bytes(const float *src, unsigned char *dst, size_t n) {
  for (size_t i = 0; i < n; i++) store_u16le(dst + 2 * i, f32_to_bf16(src[i]));
}
