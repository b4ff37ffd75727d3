#include "lowbit/kernels/vexp.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "lowbit/core/cpu.h"
#include "lowbit/core/target.h"

namespace lowbit::kernels {
namespace {

#define LB_INLINE inline __attribute__((always_inline))

LB_INLINE void exp_loop(const float* in, float shift, int64_t n, float* out) {
  constexpr float kLo = -87.33654f, kHi = 88.0f;  // 2^k stays a normal float: k in [−126, 127]
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 = hi + lo, hi exact
  for (int64_t i = 0; i < n; ++i) {
    float x = in[i] + shift;
    x = x < kLo ? kLo : x;
    x = x > kHi ? kHi : x;
    // k = round(x·log2 e) by adding and subtracting 1.5·2^23 (|x·log2 e| < 2^22, so the sum's
    // last bit is the units digit). No comparison: with trapping math a float comparison would
    // keep the loop from vectorizing.
    const float kf = (x * kLog2e + 12582912.0f) - 12582912.0f;
    const float r = (x - kf * kLn2Hi) - kf * kLn2Lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float er = (p * r) * r + r + 1.0f;
    const float two_k = std::bit_cast<float>((static_cast<int32_t>(kf) + 127) << 23);
    out[i] = er * two_k;
  }
}

void exp_base(const float* in, float shift, int64_t n, float* out) { exp_loop(in, shift, n, out); }
LOWBIT_TARGET_AVX2 void exp_avx2(const float* in, float shift, int64_t n, float* out) {
  exp_loop(in, shift, n, out);
}
LOWBIT_TARGET_AVX512 void exp_avx512(const float* in, float shift, int64_t n, float* out) {
  exp_loop(in, shift, n, out);
}

}  // namespace

void exp_f32(const float* in, float shift, int64_t n, float* out) {
#if LOWBIT_X86
  const uint32_t f = cpu::usable_features();
  if (f & cpu::kAvx512) return exp_avx512(in, shift, n, out);
  if (f & cpu::kAvx2) return exp_avx2(in, shift, n, out);
#endif
  exp_base(in, shift, n, out);
}

}  // namespace lowbit::kernels
