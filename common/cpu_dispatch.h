/* One loop body compiled twice, for AVX2 (eight floats a register) and for the x86-64 baseline,
 * with the CPU choosing on every call (__builtin_cpu_supports is a load of a flag set at start-up).
 * GCC's target_clones attribute does the same, but clang 14 names the dispatcher it makes
 * differently from the function, so other files could not call it.
 *
 *   static inline __attribute__((always_inline)) float name_body(const float *x, int n) { ... }
 *   CPU_DISPATCH(, float, name, (const float *x, int n), (x, n))
 *
 * defines `float name(const float *x, int n)` (with `static` as the first argument, a static one).
 * Nothing in a body may depend on the vector width (reductions keep fixed lanes), so both versions
 * give the same bits. */
#ifndef FEDLORA_CPU_DISPATCH_H
#define FEDLORA_CPU_DISPATCH_H

#if defined(__x86_64__)
#define CPU_DISPATCH(linkage, ret, name, params, args)                                       \
  __attribute__((target("avx2"))) static ret name##_avx2 params { return name##_body args; } \
  static ret name##_base params { return name##_body args; }                                 \
  linkage ret name params { return __builtin_cpu_supports("avx2") ? name##_avx2 args : name##_base args; }
#else
#define CPU_DISPATCH(linkage, ret, name, params, args) \
  linkage ret name params { return name##_body args; }
#endif

#endif
