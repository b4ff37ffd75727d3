#include "lowbit/kernels/dropout.h"

#include <cmath>

#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/core/target.h"
#include "lowbit/quant/rng.h"

namespace lowbit::kernels {
namespace {

#define LB_INLINE inline __attribute__((always_inline))

constexpr uint64_t kWeyl = 0x9e3779b97f4a7c15ull;  // quant::random_bits' increment

// The top 24 bits of quant::random_bits(seed, i), with mix64(seed) hoisted.
LB_INLINE uint32_t draw24(uint64_t mixed_seed, int64_t i) {
  return static_cast<uint32_t>(quant::mix64(mixed_seed + (static_cast<uint64_t>(i) + 1) * kWeyl) >> 40);
}

LB_INLINE void forward_loop(uint64_t ms, uint32_t thr, float scale, const float* __restrict x, int64_t b, int64_t e,
                            float* __restrict out) {
  for (int64_t i = b; i < e; ++i) out[i] = draw24(ms, i) < thr ? 0.0f : x[i] * scale;
}

LB_INLINE void backward_loop(uint64_t ms, uint32_t thr, float scale, const float* __restrict go, int64_t b, int64_t e,
                             float* __restrict gi, bool accumulate) {
  if (accumulate) {
    for (int64_t i = b; i < e; ++i) gi[i] += draw24(ms, i) < thr ? 0.0f : go[i] * scale;
  } else {
    for (int64_t i = b; i < e; ++i) gi[i] = draw24(ms, i) < thr ? 0.0f : go[i] * scale;
  }
}

void forward_base(uint64_t ms, uint32_t thr, float s, const float* x, int64_t b, int64_t e, float* o) {
  forward_loop(ms, thr, s, x, b, e, o);
}
void backward_base(uint64_t ms, uint32_t thr, float s, const float* g, int64_t b, int64_t e, float* gi, bool acc) {
  backward_loop(ms, thr, s, g, b, e, gi, acc);
}
#if LOWBIT_X86
LOWBIT_TARGET_AVX2 void forward_avx2(uint64_t ms, uint32_t thr, float s, const float* x, int64_t b, int64_t e,
                                     float* o) {
  forward_loop(ms, thr, s, x, b, e, o);
}
LOWBIT_TARGET_AVX2 void backward_avx2(uint64_t ms, uint32_t thr, float s, const float* g, int64_t b, int64_t e,
                                      float* gi, bool acc) {
  backward_loop(ms, thr, s, g, b, e, gi, acc);
}
LOWBIT_TARGET_AVX512 void forward_avx512(uint64_t ms, uint32_t thr, float s, const float* x, int64_t b, int64_t e,
                                         float* o) {
  forward_loop(ms, thr, s, x, b, e, o);
}
LOWBIT_TARGET_AVX512 void backward_avx512(uint64_t ms, uint32_t thr, float s, const float* g, int64_t b, int64_t e,
                                          float* gi, bool acc) {
  backward_loop(ms, thr, s, g, b, e, gi, acc);
}
#endif

}  // namespace

uint32_t dropout_threshold(float p) {
  LOWBIT_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = ", p, " is outside [0, 1]");
  // k·2^-24 < p  <=>  k < p·2^24 (exact in double)  <=>  k < ceil(p·2^24) for integer k.
  return static_cast<uint32_t>(std::ceil(static_cast<double>(p) * 16777216.0));
}

void dropout_forward(uint64_t seed, float p, float scale, const float* x, int64_t begin, int64_t end, float* out) {
  const uint64_t ms = quant::mix64(seed);
  const uint32_t thr = dropout_threshold(p);
#if LOWBIT_X86
  const uint32_t f = cpu::usable_features();
  if (f & cpu::kAvx512) return forward_avx512(ms, thr, scale, x, begin, end, out);
  if (f & cpu::kAvx2) return forward_avx2(ms, thr, scale, x, begin, end, out);
#endif
  forward_base(ms, thr, scale, x, begin, end, out);
}

void dropout_backward(uint64_t seed, float p, float scale, const float* go, int64_t begin, int64_t end, float* gi,
                      bool accumulate) {
  const uint64_t ms = quant::mix64(seed);
  const uint32_t thr = dropout_threshold(p);
#if LOWBIT_X86
  const uint32_t f = cpu::usable_features();
  if (f & cpu::kAvx512) return backward_avx512(ms, thr, scale, go, begin, end, gi, accumulate);
  if (f & cpu::kAvx2) return backward_avx2(ms, thr, scale, go, begin, end, gi, accumulate);
#endif
  backward_base(ms, thr, scale, go, begin, end, gi, accumulate);
}

}  // namespace lowbit::kernels
