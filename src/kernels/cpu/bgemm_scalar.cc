// Portable packed ±1 GEMM: 2 rows of A x 4 rows of B per step, 8 independent popcount chains.
// Compiled for baseline x86-64 (or any other target), so __builtin_popcountll may become a
// table-free bit-twiddling sequence; this variant exists for CPUs without vector popcount
// support and as a second, register-blocked code path that the tests check against the
// unpacking reference.
#include <algorithm>

#include "kernels/cpu/bgemm_common.h"

namespace lowbit::kernels::detail {
namespace {

inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }

template <int R, int C>
void block(const BgemmArgs& p, int64_t m, int64_t n) {
  const uint64_t* a[R];
  const uint64_t* b[C];
  for (int i = 0; i < R; ++i) a[i] = p.a + (m + i) * p.lda;
  for (int j = 0; j < C; ++j) b[j] = p.b + (n + j) * p.ldb;
  int64_t acc[R][C] = {};
  for (int64_t w = 0; w < p.kw; ++w) {
    uint64_t bw[C];
    for (int j = 0; j < C; ++j) bw[j] = b[j][w];
    for (int i = 0; i < R; ++i) {
      const uint64_t aw = a[i][w];
      for (int j = 0; j < C; ++j) acc[i][j] += popcount64(aw ^ bw[j]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) bgemm_store_one(p, m + i, n + j, static_cast<int32_t>(p.k - 2 * acc[i][j]));
}

template <int R>
void row_block(const BgemmArgs& p, int64_t m, int64_t n0, int64_t n1) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) block<R, 4>(p, m, n);
  for (; n < n1; ++n) block<R, 1>(p, m, n);
}

}  // namespace

void bgemm_scalar(const BgemmArgs& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  int64_t m = m0;
  for (; m + 2 <= m1; m += 2) row_block<2>(p, m, n0, n1);
  if (m < m1) row_block<1>(p, m, n0, n1);
}

}  // namespace lowbit::kernels::detail
