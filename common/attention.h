/* Causal grouped-query attention, forward and backward.
 *
 * q (B, T, QD), k/v (B, T, KVD) with QD = H * hd, KVD = KVH * hd; query head h reads kv head
 * h / (H / KVH). The products go through sgemm in blocks of query rows: block [t0, t0 + rows) needs
 * keys [0, t0 + rows) only, so the masked corner costs about a quarter of the square, not a half. */
#ifndef FEDLORA_ATTENTION_H
#define FEDLORA_ATTENTION_H

/* out (B, T, QD) = the heads' outputs. att (B, H, T, T) receives the softmax probabilities in
 * row t, columns [0, t]; the rest of each row is scratch that neither pass reads. */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int batch,
                       int seq_len, int n_heads, int n_kv_heads, int head_dim);
/* dq/dk/dv +=; datt (B, H, T, T) is work space. att is what attention_forward left. */
void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout, const float *q,
                        const float *k, const float *v, const float *att, int batch, int seq_len,
                        int n_heads, int n_kv_heads, int head_dim);

#endif
