/* Op-level forward/backward pairs on raw float arrays. None allocates; every backward accumulates
 * (+=) into its gradient buffers except where noted, so the caller zeroes them once.
 * N = rows (B * T). QD = H * hd, KVD = KVH * hd. */
#ifndef FEDLORA_OPS_H
#define FEDLORA_OPS_H

#include <stddef.h>

/* One pool for everything: OpenBLAS (OpenMP build) and our own `omp parallel` loops. */
void compute_threads_set(int n);

/* out (N, D) = x * rstd * w, rstd (N) = 1 / sqrt(mean(x^2) + eps). */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int d, float eps);
/* dx (N, D) +=, dw (D) += (dw may be NULL when the norm weight is frozen). */
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const float *rstd, int n, int d);

/* cos/sin (T, hd/2) of position t and pair i, with frequency theta^(-2i/hd), computed as llama2.c's
 * run.c does in float so generation matches it bit for bit. */
void rope_tables(float *cos_t, float *sin_t, int seq_len, int head_dim, float theta);
/* Rotates adjacent pairs (2i, 2i+1) of every head of x (B, T, heads * hd) in place. */
void rope_forward(float *x, const float *cos_t, const float *sin_t, int batch, int seq_len, int heads,
                  int head_dim);
/* The transpose rotation, in place on the gradient dx (B, T, heads * hd): RoPE is orthogonal, so
 * its backward is rotating by -angle. (In place rather than accumulating: the gradient w.r.t. the
 * pre-rotation values replaces the one w.r.t. the rotated values.) */
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int batch, int seq_len, int heads,
                   int head_dim);

/* act (n) = silu(gate) * up, silu(g) = g / (1 + exp(-g)). */
void swiglu_forward(float *act, const float *gate, const float *up, size_t n);
/* dgate, dup (n) +=. */
void swiglu_backward(float *dgate, float *dup, const float *dact, const float *gate, const float *up,
                     size_t n);

/* Softmax cross-entropy over rows of logits (n, V) against targets (n), weighted by mask (n; NULL
 * counts every row; a negative target is never counted). Returns sum_rows weight * -log p(target)
 * and adds the weights to *count. With d_scale != 0 the logits are overwritten by the gradient of
 * d_scale * (that sum), i.e. d_scale * weight * (softmax - onehot), so probabilities exist once. */
double crossentropy_forward_backward(float *logits, const int *targets, const float *mask, int n,
                                     int vocab, float d_scale, double *count);

/* out (N, D) = emb[tokens[n]]. */
void embedding_forward(float *out, const float *emb, const int *tokens, int n, int d);
/* demb[tokens[n]] += dout[n]. */
void embedding_backward(float *demb, const float *dout, const int *tokens, int n, int d);

#endif
