// Array forms of the integer sigmoid and tanh (quant/integer_ops.h): written branch-free on int32
// lanes so that the compiler vectorizes them for baseline x86-64 and AVX2, and with AVX-512BW
// intrinsics on int16 lanes for AVX-512; chosen at run time. Each element follows exactly the
// scalar definitions in integer_ops.cc (int16 wrap-around emulated by sign-extending the low 16
// bits on int32 lanes); a test compares them on every int16 input at every instruction-set level.
// The LSTM step reads the functions from tables of all 65 536 inputs that these computed forms
// fill once, or, in a layer too large for the tables to stay in L2, computes them.
#include <cstdint>
#include <mutex>
#include <vector>

#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/core/target.h"
#include "lowbit/quant/integer_ops.h"

#if LOWBIT_X86
#include <immintrin.h>
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() values, which
// -Wmaybe-uninitialized reports once inlined (GCC bug 105593); the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace lowbit::quant::iops {
namespace {

#define LB_INLINE inline __attribute__((always_inline))

constexpr int32_t c15(int64_t q31) {  // RDPOT(q31, 16)
  const int64_t mask = (1 << 16) - 1;
  const int64_t rem = q31 & mask;
  const int64_t thr = (mask >> 1) + (q31 < 0 ? 1 : 0);
  return static_cast<int32_t>((q31 >> 16) + (rem > thr ? 1 : 0));
}

LB_INLINE int32_t w16(int32_t x) { return static_cast<int16_t>(x); }
LB_INLINE int32_t s16(int32_t x) { return x < -32768 ? -32768 : (x > 32767 ? 32767 : x); }
LB_INLINE int32_t mul16(int32_t a, int32_t b) {  // srdhm16
  const int32_t ab = a * b;
  const int32_t r = (ab + (ab >= 0 ? 16384 : 1 - 16384)) / 32768;
  return (a == -32768 && b == -32768) ? 32767 : r;
}
LB_INLINE int32_t rdpot(int32_t x, int e) {
  const int32_t mask = (1 << e) - 1;
  const int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + ((x & mask) > thr ? 1 : 0);
}
LB_INLINE int32_t shl_sat16(int32_t x, int e) {
  const int32_t thr = (1 << (15 - e)) - 1;
  return x > thr ? 32767 : (x < -thr ? -32768 : w16(x * (1 << e)));
}

template <int K>
LB_INLINE int32_t exp_neg(int32_t a) {
  constexpr int frac = 15 - K;
  constexpr int32_t quarter = 1 << (frac - 2);
  const int32_t amq = w16((a & (quarter - 1)) - quarter);
  int32_t r = K == 0 ? amq : shl_sat16(amq, K);
  {
    constexpr int32_t ct = c15(1895147668), third = c15(715827883), eighth = c15(1 << 28);
    const int32_t x = w16(r + eighth);
    const int32_t x2 = mul16(x, x), x3 = mul16(x2, x), x4 = mul16(x2, x2);
    const int32_t poly = rdpot(w16(mul16(w16(rdpot(x4, 2) + x3), third) + x2), 1);
    r = s16(ct + mul16(ct, w16(x + poly)));
  }
  const int32_t rem = w16(amq - a);
  if constexpr (K > -2) r = (rem & (1 << (frac - 2))) ? mul16(r, c15(1672461947)) : r;
  if constexpr (K > -1) r = (rem & (1 << (frac - 1))) ? mul16(r, c15(1302514674)) : r;
  if constexpr (K > 0) r = (rem & (1 << (frac + 0))) ? mul16(r, c15(790015084)) : r;
  if constexpr (K > 1) r = (rem & (1 << (frac + 1))) ? mul16(r, c15(290630308)) : r;
  if constexpr (K > 2) r = (rem & (1 << (frac + 2))) ? mul16(r, c15(39332535)) : r;
  if constexpr (K > 3) r = (rem & (1 << (frac + 3))) ? mul16(r, c15(720401)) : r;
  if constexpr (K > 4) r = (rem & (1 << (frac + 4))) ? mul16(r, c15(242)) : r;
  if constexpr (K > 5) r = a < c15(-(int64_t{1} << (36 - K))) ? 0 : r;
  return a == 0 ? 32767 : r;
}

// x ≈ 1 / half_denominator in Q2.13.
LB_INLINE int32_t recip(int32_t e) {
  const int32_t sum = e + 32767;
  const int32_t hd = (sum + (sum >= 0 ? 1 : -1)) / 2;
  int32_t x = w16(c15(1515870810) + mul16(hd, c15(-1010580540)));
  for (int i = 0; i < 3; ++i) x = w16(x + shl_sat16(mul16(x, w16((1 << 13) - mul16(hd, x))), 2));
  return x;
}

template <int K>
LB_INLINE int32_t logistic_v(int32_t a) {
  const int32_t pos = shl_sat16(recip(exp_neg<K>(a > 0 ? -a : a)), 1);
  const int32_t r = a > 0 ? pos : w16(32767 - pos);
  return a == 0 ? 16384 : r;
}

template <int K>
LB_INLINE int32_t tanh_v(int32_t a) {
  const int32_t t = shl_sat16(w16(recip(exp_neg<K + 1>(a < 0 ? a : -a)) - (1 << 13)), 2);
  const int32_t r = a < 0 ? w16(-t) : t;
  return a == 0 ? 0 : r;
}

template <int K>
LB_INLINE void sigmoid_loop(const int16_t* in, int64_t n, int16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(logistic_v<K>(in[i]));
}
template <int K>
LB_INLINE void tanh_loop(const int16_t* in, int64_t n, int16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(tanh_v<K>(in[i]));
}

using Fn = void (*)(const int16_t*, int64_t, int16_t*);

#define LB_VARIANTS(NAME, BODY)                                          \
  void NAME##_base(const int16_t* in, int64_t n, int16_t* out) { BODY; } \
  LOWBIT_TARGET_AVX2 void NAME##_avx2(const int16_t* in, int64_t n, int16_t* out) { BODY; }

LB_VARIANTS(sig3, sigmoid_loop<3>(in, n, out))
LB_VARIANTS(tanh0, tanh_loop<0>(in, n, out))
LB_VARIANTS(tanh1, tanh_loop<1>(in, n, out))
LB_VARIANTS(tanh2, tanh_loop<2>(in, n, out))
LB_VARIANTS(tanh3, tanh_loop<3>(in, n, out))
LB_VARIANTS(tanh4, tanh_loop<4>(in, n, out))
LB_VARIANTS(tanh5, tanh_loop<5>(in, n, out))
LB_VARIANTS(tanh6, tanh_loop<6>(in, n, out))

#if LOWBIT_X86
// AVX-512BW forms on 32 int16 lanes, written with intrinsics: the same operations as the scalar
// definitions above, in the int16 arithmetic gemmlowp specifies (so w16 is free), with
//   mul16   = vpmulhrsw, whose rounding (a·b + 2^14) >> 15 equals gemmlowp's rounding doubling
//             high multiply for every pair but (−32768)², which gemmlowp saturates to 32767 and
//             vpmulhrsw returns as −32768. No multiply here can see that pair (the operands are
//             bounded away from −1: the polynomial's x in [−1/8, 1/8], positive exp values and
//             reciprocal estimates), so there is no fix-up; the test that compares these forms
//             with the scalar definitions on every int16 input and every integer-bit count
//             would catch a lane that did;
//   s16(a + b) = vpaddsw; the rounding half-sum of the reciprocal = vpavgw (both operands >= 0).
// About 90 vector operations per 32 values (0.8 ns per value here, against 0.3 for a table read
// that hits L2 and about 1.5 when the LSTM's weight stream has evicted the tables).
#define LB512 LOWBIT_TARGET_AVX512 inline __attribute__((always_inline))
using V16x32 = __m512i;

LB512 V16x32 k16(int32_t v) { return _mm512_set1_epi16(static_cast<int16_t>(v)); }

LB512 V16x32 mul16v(V16x32 a, V16x32 b) { return _mm512_mulhrs_epi16(a, b); }

template <int E>
LB512 V16x32 rdpotv(V16x32 x) {
  constexpr int32_t mask = (1 << E) - 1;
  const V16x32 rem = _mm512_and_si512(x, k16(mask));
  const V16x32 thr = _mm512_sub_epi16(k16(mask >> 1), _mm512_srai_epi16(x, 15));  // + 1 if x < 0
  const V16x32 q = _mm512_srai_epi16(x, E);
  return _mm512_mask_add_epi16(q, _mm512_cmpgt_epi16_mask(rem, thr), q, k16(1));
}

template <int E>
LB512 V16x32 shl_satv(V16x32 x) {
  constexpr int32_t thr = (1 << (15 - E)) - 1;
  V16x32 r = _mm512_slli_epi16(x, E);
  r = _mm512_mask_blend_epi16(_mm512_cmpgt_epi16_mask(x, k16(thr)), r, k16(32767));
  return _mm512_mask_blend_epi16(_mm512_cmplt_epi16_mask(x, k16(-thr)), r, k16(-32768));
}

// The barrel shifter's step: multiply by exp(−2^bit·scale) where bit `bit` of rem is set.
template <int Bit, int32_t Q31>
LB512 V16x32 barrelv(V16x32 rem, V16x32 r) {
  return _mm512_mask_blend_epi16(_mm512_test_epi16_mask(rem, k16(1 << Bit)), r, mul16v(r, k16(c15(Q31))));
}

template <int K>
LB512 V16x32 exp_negv(V16x32 a) {
  constexpr int frac = 15 - K;
  constexpr int32_t quarter = 1 << (frac - 2);
  const V16x32 amq = _mm512_sub_epi16(_mm512_and_si512(a, k16(quarter - 1)), k16(quarter));
  V16x32 r = amq;
  if constexpr (K > 0) r = shl_satv<K>(amq);
  {
    constexpr int32_t ct = c15(1895147668), third = c15(715827883), eighth = c15(1 << 28);
    const V16x32 x = _mm512_add_epi16(r, k16(eighth));
    const V16x32 x2 = mul16v(x, x), x3 = mul16v(x2, x), x4 = mul16v(x2, x2);
    const V16x32 poly =
        rdpotv<1>(_mm512_add_epi16(mul16v(_mm512_add_epi16(rdpotv<2>(x4), x3), k16(third)), x2));
    r = _mm512_adds_epi16(k16(ct), mul16v(k16(ct), _mm512_add_epi16(x, poly)));
  }
  const V16x32 rem = _mm512_sub_epi16(amq, a);
  r = barrelv<frac - 2, 1672461947>(rem, r);
  r = barrelv<frac - 1, 1302514674>(rem, r);
  if constexpr (K > 0) r = barrelv<frac + 0, 790015084>(rem, r);
  if constexpr (K > 1) r = barrelv<frac + 1, 290630308>(rem, r);
  if constexpr (K > 2) r = barrelv<frac + 2, 39332535>(rem, r);
  if constexpr (K > 3) r = barrelv<frac + 3, 720401>(rem, r);
  if constexpr (K > 4) r = barrelv<frac + 4, 242>(rem, r);
  if constexpr (K > 5)
    r = _mm512_mask_blend_epi16(_mm512_cmplt_epi16_mask(a, k16(c15(-(int64_t{1} << (36 - K))))), r,
                                _mm512_setzero_si512());
  return _mm512_mask_blend_epi16(_mm512_cmpeq_epi16_mask(a, _mm512_setzero_si512()), r, k16(32767));
}

LB512 V16x32 recipv(V16x32 e) {
  const V16x32 hd = _mm512_avg_epu16(e, k16(32767));
  V16x32 x = _mm512_add_epi16(k16(c15(1515870810)), mul16v(hd, k16(c15(-1010580540))));
  for (int i = 0; i < 3; ++i)
    x = _mm512_add_epi16(x, shl_satv<2>(mul16v(x, _mm512_sub_epi16(k16(1 << 13), mul16v(hd, x)))));
  return x;
}

LB512 V16x32 logisticv(V16x32 a) {
  const V16x32 zero = _mm512_setzero_si512();
  const __mmask32 pos = _mm512_cmpgt_epi16_mask(a, zero);
  const V16x32 p = shl_satv<1>(recipv(exp_negv<3>(_mm512_mask_sub_epi16(a, pos, zero, a))));
  const V16x32 r = _mm512_mask_blend_epi16(pos, _mm512_sub_epi16(k16(32767), p), p);
  return _mm512_mask_blend_epi16(_mm512_cmpeq_epi16_mask(a, zero), r, k16(16384));
}

template <int K>
LB512 V16x32 tanhv(V16x32 a) {
  const V16x32 zero = _mm512_setzero_si512();
  const __mmask32 neg = _mm512_cmplt_epi16_mask(a, zero);
  const V16x32 t = shl_satv<2>(
      _mm512_sub_epi16(recipv(exp_negv<K + 1>(_mm512_mask_sub_epi16(a, ~neg, zero, a))), k16(1 << 13)));
  const V16x32 r = _mm512_mask_sub_epi16(t, neg, zero, t);
  return _mm512_mask_blend_epi16(_mm512_cmpeq_epi16_mask(a, zero), r, zero);
}

// K < 0: the logistic; K >= 0: tanh of Qk inputs.
template <int K>
LB512 V16x32 funcv(V16x32 a) {
  if constexpr (K < 0) return logisticv(a);
  else return tanhv<K>(a);
}

template <int K>
LOWBIT_TARGET_AVX512 void loop512(const int16_t* in, int64_t n, int16_t* out) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) _mm512_storeu_si512(out + i, funcv<K>(_mm512_loadu_si512(in + i)));
  if (i < n) {
    const auto m = static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
    _mm512_mask_storeu_epi16(out + i, m, funcv<K>(_mm512_maskz_loadu_epi16(m, in + i)));
  }
}

LOWBIT_TARGET_AVX512 void sig3_avx512(const int16_t* in, int64_t n, int16_t* out) { loop512<-1>(in, n, out); }
#define LB_TANH512(K) \
  LOWBIT_TARGET_AVX512 void tanh##K##_avx512(const int16_t* in, int64_t n, int16_t* out) { loop512<K>(in, n, out); }
LB_TANH512(0)
LB_TANH512(1)
LB_TANH512(2)
LB_TANH512(3)
LB_TANH512(4)
LB_TANH512(5)
LB_TANH512(6)
#undef LB_TANH512
#endif

struct Set {
  Fn base, avx2, avx512;
};
#if LOWBIT_X86
#define LB_AVX512(NAME) NAME##_avx512
#else
#define LB_AVX512(NAME) NAME##_base  // never picked without x86
#endif
constexpr Set kSig{sig3_base, sig3_avx2, LB_AVX512(sig3)};
constexpr Set kTanh[7] = {{tanh0_base, tanh0_avx2, LB_AVX512(tanh0)}, {tanh1_base, tanh1_avx2, LB_AVX512(tanh1)},
                          {tanh2_base, tanh2_avx2, LB_AVX512(tanh2)}, {tanh3_base, tanh3_avx2, LB_AVX512(tanh3)},
                          {tanh4_base, tanh4_avx2, LB_AVX512(tanh4)}, {tanh5_base, tanh5_avx2, LB_AVX512(tanh5)},
                          {tanh6_base, tanh6_avx2, LB_AVX512(tanh6)}};
#undef LB_AVX512

Fn pick(const Set& s) {
#if LOWBIT_X86
  const uint32_t f = cpu::usable_features();
  if (f & cpu::kAvx512) return s.avx512;
  if (f & cpu::kAvx2) return s.avx2;
#endif
  return s.base;
}

}  // namespace

void compute_sigmoid(const int16_t* in, int64_t count, int16_t* out) { pick(kSig)(in, count, out); }

bool computed_activations_fast() { return pick(kSig) == kSig.avx512; }

void compute_tanh(int integer_bits, const int16_t* in, int64_t count, int16_t* out) {
  LOWBIT_CHECK(integer_bits >= 0 && integer_bits <= 6, "integer tanh: ", integer_bits,
               " integer bits (supported 0..6; for the LSTM cell this means a cell scale of 2^-15 .. 2^-9)");
  pick(kTanh[integer_bits])(in, count, out);
}

namespace {

// Tables of the functions on all 65 536 int16 inputs (128 KiB each), filled on first use by the
// computed array forms: a lookup that hits L2 costs about 0.3 ns per value, against 0.8 ns for
// the AVX-512BW forms and several times that for the compiler-vectorized ones, and gives the
// same integers by construction.
struct Table {
  std::once_flag once;
  std::vector<int16_t> v;
};

const int16_t* table_of(Table& t, int integer_bits /* -1: sigmoid */) {
  std::call_once(t.once, [&] {
    std::vector<int16_t> in(65536);
    for (int32_t a = -32768; a <= 32767; ++a) in[static_cast<std::size_t>(a + 32768)] = static_cast<int16_t>(a);
    t.v.resize(65536);
    if (integer_bits < 0) compute_sigmoid(in.data(), 65536, t.v.data());
    else compute_tanh(integer_bits, in.data(), 65536, t.v.data());
  });
  return t.v.data() + 32768;  // indexed by the signed input
}

Table g_sigmoid, g_tanh[7];

inline void lookup(const int16_t* table, const int16_t* in, int64_t count, int16_t* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = table[in[i]];
}

}  // namespace

void apply_sigmoid(const int16_t* in, int64_t count, int16_t* out) { lookup(table_of(g_sigmoid, -1), in, count, out); }

void apply_tanh(int integer_bits, const int16_t* in, int64_t count, int16_t* out) {
  LOWBIT_CHECK(integer_bits >= 0 && integer_bits <= 6, "integer tanh: ", integer_bits,
               " integer bits (supported 0..6; for the LSTM cell this means a cell scale of 2^-15 .. 2^-9)");
  lookup(table_of(g_tanh[integer_bits], integer_bits), in, count, out);
}

}  // namespace lowbit::quant::iops

namespace lowbit::quant::iops {
namespace {

// MBQM for M0 >= 0 (so srdhm's single overflow case cannot occur), branch-free.
LB_INLINE int32_t mbqm(int32_t x, int32_t m, int left, int right) {
  const auto xs = static_cast<int32_t>(static_cast<uint32_t>(x) << left);
  const int64_t ab = static_cast<int64_t>(xs) * m;
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : (1 - (int64_t{1} << 30));
  const auto high = static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
  const int32_t mask = static_cast<int32_t>((int64_t{1} << right) - 1);
  const int32_t thr = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> right) + ((high & mask) > thr ? 1 : 0);
}

LB_INLINE void rescale_loop(const int32_t* acc, const int32_t* bias, int32_t m, int shift, int64_t n, int16_t* out) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  for (int64_t j = 0; j < n; ++j) {
    const auto sum = static_cast<int32_t>(static_cast<uint32_t>(bias[j]) + static_cast<uint32_t>(acc[j]));
    out[j] = static_cast<int16_t>(s16(mbqm(sum, m, left, right) + out[j]));
  }
}

using RescaleFn = void (*)(const int32_t*, const int32_t*, int32_t, int, int64_t, int16_t*);
void rescale_base(const int32_t* a, const int32_t* b, int32_t m, int s, int64_t n, int16_t* o) { rescale_loop(a, b, m, s, n, o); }
LOWBIT_TARGET_AVX2 void rescale_avx2(const int32_t* a, const int32_t* b, int32_t m, int s, int64_t n, int16_t* o) {
  rescale_loop(a, b, m, s, n, o);
}
// 16 lanes of mbqm: the 32x32 -> 64-bit products of the even and the odd lanes (vpmuldq), the
// rounding doubling high half of each, then the rounding right shift, all as in mbqm above.
// high_mul_even: for the even 32-bit lanes of x (sign-extended), (x·m + nudge) / 2^31 rounded
// toward zero like the scalar form's integer division, in the 64-bit lanes.
LOWBIT_TARGET_AVX512 inline __m512i high_mul_even(__m512i x, __m512i mv) {
  const __m512i pos_nudge = _mm512_set1_epi64(int64_t{1} << 30), neg_nudge = _mm512_set1_epi64(1 - (int64_t{1} << 30));
  const __m512i trunc_fix = _mm512_set1_epi64((int64_t{1} << 31) - 1);
  const __m512i ab = _mm512_mul_epi32(x, mv);
  const __mmask8 neg = _mm512_cmplt_epi64_mask(ab, _mm512_setzero_si512());
  __m512i t = _mm512_add_epi64(ab, _mm512_mask_blend_epi64(neg, pos_nudge, neg_nudge));
  t = _mm512_add_epi64(t, _mm512_and_si512(_mm512_srai_epi64(t, 63), trunc_fix));
  return _mm512_srai_epi64(t, 31);
}

LOWBIT_TARGET_AVX512 inline __m512i high_mul_x16(__m512i xs, __m512i mv) {
  const __m512i even = high_mul_even(xs, mv), odd = high_mul_even(_mm512_srli_epi64(xs, 32), mv);
  return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

LOWBIT_TARGET_AVX512 void rescale_avx512(const int32_t* a, const int32_t* b, int32_t m, int s, int64_t n, int16_t* o) {
  const int left = s > 0 ? s : 0, right = s > 0 ? 0 : -s;
  const __m512i mv = _mm512_set1_epi32(m);
  const __m128i lsh = _mm_cvtsi32_si128(left), rsh = _mm_cvtsi32_si128(right);
  const __m512i mask = _mm512_set1_epi32(static_cast<int32_t>((int64_t{1} << right) - 1));
  const __m512i half_mask = _mm512_srai_epi32(mask, 1), one = _mm512_set1_epi32(1);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i sum = _mm512_add_epi32(_mm512_loadu_si512(b + j), _mm512_loadu_si512(a + j));
    const __m512i high = high_mul_x16(_mm512_sll_epi32(sum, lsh), mv);
    const __m512i thr = _mm512_mask_add_epi32(half_mask, _mm512_cmplt_epi32_mask(high, _mm512_setzero_si512()),
                                              half_mask, one);
    const __mmask16 up = _mm512_cmpgt_epi32_mask(_mm512_and_si512(high, mask), thr);
    const __m512i r = _mm512_mask_add_epi32(_mm512_sra_epi32(high, rsh), up, _mm512_sra_epi32(high, rsh), one);
    const __m512i prev = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + j)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + j), _mm512_cvtsepi32_epi16(_mm512_add_epi32(r, prev)));
  }
  rescale_loop(a + j, b + j, m, s, n - j, o + j);
}

LB_INLINE void mul8_loop(const int16_t* a, const int16_t* b, int64_t n, int32_t m, int shift, int32_t zp, int8_t* out) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = mbqm(static_cast<int32_t>(a[i]) * b[i], m, left, right) + zp;
    out[i] = static_cast<int8_t>(v < -128 ? -128 : (v > 127 ? 127 : v));
  }
}
void mul8_base(const int16_t* a, const int16_t* b, int64_t n, int32_t m, int s, int32_t zp, int8_t* o) {
  mul8_loop(a, b, n, m, s, zp, o);
}
LOWBIT_TARGET_AVX2 void mul8_avx2(const int16_t* a, const int16_t* b, int64_t n, int32_t m, int s, int32_t zp, int8_t* o) {
  mul8_loop(a, b, n, m, s, zp, o);
}
LOWBIT_TARGET_AVX512 void mul8_avx512(const int16_t* a, const int16_t* b, int64_t n, int32_t m, int s, int32_t zp,
                                      int8_t* o) {
  mul8_loop(a, b, n, m, s, zp, o);
}

}  // namespace

void cwise_mul_to_int8(const int16_t* a, const int16_t* b, int64_t count, int32_t multiplier, int shift,
                       int32_t zero_point, int8_t* out) {
  if (multiplier < 0 || shift < -31 || shift > 30) {  // outside the branch-free form's domain
    for (int64_t i = 0; i < count; ++i)
      out[i] = sat8(multiply_by_quantized_multiplier(static_cast<int32_t>(a[i]) * b[i], multiplier, shift) + zero_point);
    return;
  }
#if LOWBIT_X86
  const uint32_t f = cpu::usable_features();
  if (f & cpu::kAvx512) return mul8_avx512(a, b, count, multiplier, shift, zero_point, out);
  if (f & cpu::kAvx2) return mul8_avx2(a, b, count, multiplier, shift, zero_point, out);
#endif
  mul8_base(a, b, count, multiplier, shift, zero_point, out);
}

void rescale_accumulate(const int32_t* acc, const int32_t* bias, int32_t multiplier, int shift, int64_t n,
                        int16_t* out) {
  LOWBIT_CHECK(multiplier >= 0 && shift >= -31 && shift <= 30, "rescale_accumulate: multiplier ", multiplier,
               " shift ", shift, " (expected M0 >= 0, shift in [-31, 30])");
#if LOWBIT_X86
  const uint32_t f = cpu::usable_features();
  if (f & cpu::kAvx512) return rescale_avx512(acc, bias, multiplier, shift, n, out);
  if (f & cpu::kAvx2) return rescale_avx2(acc, bias, multiplier, shift, n, out);
#endif
  rescale_base(acc, bias, multiplier, shift, n, out);
}

}  // namespace lowbit::quant::iops
