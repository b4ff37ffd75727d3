#include "lowbit/kernels/sgemm.h"

#include <dnnl.h>
#include <omp.h>

#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"

namespace lowbit::kernels {
namespace {

void check_args(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                const float* b, int64_t ldb, const float* c, int64_t ldc) {
  LOWBIT_CHECK(m >= 0 && n >= 0 && k >= 0, "sgemm: negative dimension (m=", m, ", n=", n, ", k=", k, ")");
  // Row-major: A is m x k (or k x m when transposed), B is k x n (or n x k).
  const int64_t a_cols = ta ? m : k, b_cols = tb ? k : n;
  LOWBIT_CHECK(lda >= std::max<int64_t>(1, a_cols), "sgemm: lda=", lda, " is less than A's ", a_cols, " columns");
  LOWBIT_CHECK(ldb >= std::max<int64_t>(1, b_cols), "sgemm: ldb=", ldb, " is less than B's ", b_cols, " columns");
  LOWBIT_CHECK(ldc >= std::max<int64_t>(1, n), "sgemm: ldc=", ldc, " is less than C's ", n, " columns");
  LOWBIT_CHECK(m * n == 0 || c != nullptr, "sgemm: C is null");
  LOWBIT_CHECK(m * n * k == 0 || (a != nullptr && b != nullptr), "sgemm: A or B is null");
}

}  // namespace

void onednn_set_num_threads(int n) {
  if (omp_get_max_threads() != n) omp_set_num_threads(n);
}

// oneDNN's own OpenMP team and lowbit's thread pool must not run side by side: both spin
// while they wait, and on a machine with as many cores as threads each steals the other's
// cores (a 2-thread training step measured 4-6x slower than 1 thread that way). So oneDNN is
// always called single-threaded, and lowbit's pool splits the product into column blocks
// (or row blocks when C is taller than wide), one sgemm per block.
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  check_args(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  if (m == 0 || n == 0) return;
  auto call = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    onednn_set_num_threads(1);
    const float* ab = ta ? a + m0 : a + m0 * lda;
    const float* bb = tb ? b + n0 * ldb : b + n0;
    const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m1 - m0, n1 - n0, k, alpha, ab, lda, bb, ldb,
                                        beta, c + m0 * ldc + n0, ldc);
    LOWBIT_CHECK(st == dnnl_success, "sgemm: oneDNN failed with status ", static_cast<int>(st));
  };
  const int threads = num_threads();
  // Below ~4 MFLOP per extra thread the hand-off costs more than it saves.
  const int64_t useful = std::min<int64_t>(threads, 1 + 2 * m * n * k / (4 << 20));
  if (useful <= 1) {
    call(0, m, 0, n);
    return;
  }
  const bool by_rows = m > n;
  const int64_t extent = by_rows ? m : n;
  const int64_t align = by_rows ? 4 : 16;  // whole register tiles of oneDNN's kernels
  const int64_t units = (extent + align - 1) / align;
  const int64_t blocks = std::min<int64_t>(useful, units);
  parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t e0 = std::min(extent, units * blk / blocks * align);
      const int64_t e1 = std::min(extent, units * (blk + 1) / blocks * align);
      if (e0 >= e1) continue;
      if (by_rows)
        call(e0, e1, 0, n);
      else
        call(0, m, e0, e1);
    }
  });
}

namespace ref {
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  check_args(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = ta ? a[p * lda + i] : a[i * lda + p];
        const float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        acc += static_cast<double>(av) * bv;
      }
      const float prev = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
      c[i * ldc + j] = static_cast<float>(alpha * acc) + prev;
    }
}
}  // namespace ref

}  // namespace lowbit::kernels
