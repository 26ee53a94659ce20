/* Timing OpenBLAS sgemm: the rate a shape runs at on this machine, the yardstick the training and
 * aggregation benchmarks compare against. */
#ifndef FEDLORA_BENCH_SGEMM_RATE_H
#define FEDLORA_BENCH_SGEMM_RATE_H

/* C (m, n) = op(A) op(B), row-major, op = transpose when trans_a / trans_b. Runs the product
 * repeatedly for at least min_seconds after one untimed call and returns the best GFLOP/s of the
 * timed calls (2 m n k flops each): the best, because on a shared machine the slow calls measure
 * the neighbours, not the library. Returns a negative value if the buffers cannot be allocated. */
double sgemm_rate(int m, int n, int k, int trans_a, int trans_b, double min_seconds);

/* The machine's limit at the current OpenBLAS thread count: the better of square 1024 and 2048,
 * whose rates go to *r1024 and *r2048 when those are not NULL. */
double sgemm_limit(double min_seconds, double *r1024, double *r2048);

double bench_seconds(void);

#endif
