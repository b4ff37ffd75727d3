// Float GEMM through oneDNN (dnnl_sgemm), the tuned library training uses, and its scalar
// reference. Row-major: C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C.
#pragma once

#include <cstdint>

namespace lowbit::kernels {

// Checks dimensions (>= 0) and leading dimensions; runs with lowbit::num_threads() threads.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Sets oneDNN's thread count (its OpenMP runtime) to n; sgemm does this itself.
void onednn_set_num_threads(int n);

namespace ref {
// Plain triple loop with double accumulation.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
}  // namespace ref

}  // namespace lowbit::kernels
