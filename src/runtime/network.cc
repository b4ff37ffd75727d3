// The integer/bit runtime (runtime/network.h).
//
// Every layer, dense or convolutional, runs as one convolution: a dense layer on an H×W×C
// input is an H×W kernel without padding, whose single tap-major (h, w, c) row is exactly the
// flattened input. So one code path serves both, and the flatten of packed bits is the
// im2col of that layer.
//
// The GEMM operand rows include padding taps with a fixed filler (bit 0 = −1 for bits, code 0
// for codes), and a per-position correction removes their contribution: it depends only on
// which taps of the kernel fall outside the image, so it is precomputed per output position.
#include "lowbit/runtime/network.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "lowbit/core/aligned.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/io/model_file.h"
#include "lowbit/kernels/bgemm.h"
#include "lowbit/kernels/bitpack.h"
#include "lowbit/kernels/igemm.h"

namespace lowbit::runtime {

using json = nlohmann::ordered_json;

namespace {

constexpr int64_t kScratchBudget = int64_t{64} << 20;  // bytes of activations per tile

enum class Kind : uint8_t { codes, bits, logits };

const char* kind_name(Kind k) { return k == Kind::codes ? "codes" : k == Kind::bits ? "bits" : "logits"; }

struct Act {
  int64_t h = 1, w = 1, c = 0;
  Kind kind = Kind::codes;
};

// Copies `nbits` bits from src (starting at bit 0) into dst starting at bit `at`. dst must be
// zero there; bits of src past nbits are ignored.
void copy_bits(uint64_t* dst, int64_t at, const uint64_t* src, int64_t nbits) {
  const int sh = static_cast<int>(at % 64);
  uint64_t* d = dst + at / 64;
  for (int64_t q = 0; q * 64 < nbits; ++q) {
    uint64_t w = src[q];
    const int64_t left = nbits - q * 64;
    if (left < 64) w &= (uint64_t{1} << left) - 1;
    d[q] |= w << sh;
    if (sh != 0 && (w >> (64 - sh)) != 0) d[q + 1] |= w >> (64 - sh);
  }
}

template <typename T>
AlignedPtr<T> alloc(int64_t count) {
  return make_aligned<T>(static_cast<std::size_t>(std::max<int64_t>(count, 1)));
}

// For buffers every element of which is written before it is read (GEMM operands and
// accumulators): no zeroing pass.
template <typename T>
AlignedPtr<T> alloc_scratch(int64_t count) {
  return make_aligned_uninit<T>(static_cast<std::size_t>(std::max<int64_t>(count, 1)));
}

}  // namespace

// One stage: geometry, weights in kernel form, the per-position correction, epilogue.
class Layer {
 public:
  bool is_dense = false;  // how it was specified (and is saved)
  Kind in_kind = Kind::codes;
  Act in;                 // input activation shape
  int64_t kh = 1, kw = 1, stride = 1, pad = 0;
  int64_t oh = 1, ow = 1, cout = 0;  // convolution output
  std::optional<MaxPool> pool;
  int64_t ph = 1, pw = 1;            // after pooling
  int z2 = 0;
  Epilogue epi;
  Kind out_kind = Kind::bits;

  int64_t k() const { return kh * kw * in.c; }
  int64_t taps() const { return kh * kw; }

  // Weights.
  std::vector<int8_t> codes;         // codes input: [cout, K]
  kernels::PackedWeightsI8 packed;   // codes input
  AlignedPtr<uint64_t> wbits;        // bits input: [cout, wpr(K)]
  kernels::BgemmPackedB wpanels;     // bits input: wbits in the GEMM kernel's panel layout
  // acc = mult · G + pos_bias[pos][c], G the GEMM result (see forward()).
  std::vector<int32_t> pos_bias;     // [P, cout], P = oh·ow when padded, else 1
  bool pos_dependent = false;
  // Sign epilogue of a codes-input layer without padding or pooling, with mult and pos_bias
  // folded in: (mult·G + pb >= t) == (G >= ceil((t − pb) / mult)). Lets forward() threshold the
  // GEMM's output directly, in one vectorised pass (empty when not applicable).
  std::vector<int32_t> fused_threshold;

  int64_t wpr_k() const { return packed_words_per_row(k()); }
  bool identity_rows() const { return kh == 1 && kw == 1 && stride == 1 && pad == 0; }

  std::string describe() const {
    std::string s = detail::cat(is_dense ? "dense " : "conv2d ", kind_name(in_kind), " ");
    if (is_dense) {
      s += detail::cat(in.h * in.w * in.c, "->", cout);
    } else {
      s += detail::cat(in.h, "x", in.w, "x", in.c, " k", kh, "x", kw, " s", stride, " p", pad, " ->", cout);
      if (pool) s += detail::cat(" maxpool", pool->kernel, "/", pool->stride);
    }
    if (std::holds_alternative<SignEpilogue>(epi)) s += " sign";
    else if (auto* kb = std::get_if<KbitEpilogue>(&epi)) s += detail::cat(" kbit", kb->bits);
    else s += " affine";
    return s;
  }

  int64_t weight_bytes() const {
    // As stored in the model file: ±1 weights of a layer reading codes are stored packed too.
    const bool packed = in_kind == Kind::bits ||
                        std::all_of(codes.begin(), codes.end(), [](int8_t x) { return x == 1 || x == -1; });
    int64_t b = packed ? cout * wpr_k() * 8 : cout * k();
    if (auto* s = std::get_if<SignEpilogue>(&epi)) b += static_cast<int64_t>(s->threshold.size() * 4 + cout);
    else if (auto* kb = std::get_if<KbitEpilogue>(&epi)) b += static_cast<int64_t>(kb->threshold.size() * 4 + cout);
    else b += cout * 8;
    return b;
  }
  // Float32 network: every weight a float, plus a scale and bias per output channel.
  int64_t float_bytes() const { return cout * k() * 4 + cout * 8; }

  // Bytes of scratch per image: GEMM operand, accumulators, pooled accumulators, output.
  int64_t scratch_per_image() const {
    const int64_t rows = oh * ow;
    const int64_t a = in_kind == Kind::bits ? rows * wpr_k() * 8 : rows * k();
    return a + rows * cout * 4 * 2 + ph * pw * (packed_words_per_row(cout) * 8 + cout * 4);
  }

  void finish_setup(const std::string& name);
  void forward(const uint8_t* in_codes, const uint64_t* in_bits, int64_t n, AlignedPtr<uint8_t>* out_codes,
               AlignedPtr<uint64_t>* out_bits, float* out_logits) const;

 private:
  void epilogue(const int32_t* acc, int64_t rows, AlignedPtr<uint8_t>* out_codes, AlignedPtr<uint64_t>* out_bits,
                float* out_logits) const;
};

// Validates the epilogue, computes the per-tap sums and the per-position correction, and
// checks that no accumulator can leave the int32 range.
void Layer::finish_setup(const std::string& name) {
  LOWBIT_CHECK(kh >= 1 && kw >= 1 && stride >= 1 && pad >= 0 && pad < std::max(kh, kw), name, ": kernel ", kh, "x",
               kw, ", stride ", stride, ", pad ", pad, " (expected kernel >= 1, stride >= 1, 0 <= pad < kernel)");
  LOWBIT_CHECK(in.h + 2 * pad >= kh && in.w + 2 * pad >= kw, name, ": kernel ", kh, "x", kw,
               " is larger than the padded input ", in.h, "x", in.w);
  oh = (in.h + 2 * pad - kh) / stride + 1;
  ow = (in.w + 2 * pad - kw) / stride + 1;
  ph = oh;
  pw = ow;
  if (pool) {
    LOWBIT_CHECK(pool->kernel >= 1 && pool->stride >= 1 && pool->kernel <= oh && pool->kernel <= ow, name,
                 ": max-pool ", pool->kernel, "/", pool->stride, " does not fit the ", oh, "x", ow, " output");
    ph = (oh - pool->kernel) / pool->stride + 1;
    pw = (ow - pool->kernel) / pool->stride + 1;
  }
  LOWBIT_CHECK(in_kind == Kind::codes || z2 == 0, name, ": input_zero2=", z2, " applies only to codes input");
  LOWBIT_CHECK(z2 >= 0 && z2 <= 510, name, ": input_zero2=", z2, " (expected 0..510)");

  auto check_flip = [&](const std::vector<uint8_t>& flip) {
    LOWBIT_CHECK(flip.empty() || static_cast<int64_t>(flip.size()) == cout, name, ": ", flip.size(), " flips for ",
                 cout, " channels");
    for (uint8_t f : flip) LOWBIT_CHECK(f <= 1, name, ": flip value ", int(f), " (expected 0 or 1)");
  };
  if (auto* s = std::get_if<SignEpilogue>(&epi)) {
    LOWBIT_CHECK(static_cast<int64_t>(s->threshold.size()) == cout, name, ": ", s->threshold.size(),
                 " thresholds for ", cout, " channels");
    check_flip(s->flip);
    if (s->flip.empty()) s->flip.assign(static_cast<std::size_t>(cout), 0);
    out_kind = Kind::bits;
  } else if (auto* kb = std::get_if<KbitEpilogue>(&epi)) {
    LOWBIT_CHECK(kb->bits >= 1 && kb->bits <= 8, name, ": kbit epilogue with bits=", kb->bits, " (expected 1..8)");
    const int64_t l = (int64_t{1} << kb->bits) - 1;
    LOWBIT_CHECK(static_cast<int64_t>(kb->threshold.size()) == cout * l, name, ": ", kb->threshold.size(),
                 " thresholds for ", cout, " channels of ", l, " (expected ", cout * l, ")");
    for (int64_t c = 0; c < cout; ++c)
      for (int64_t j = 1; j < l; ++j)
        LOWBIT_CHECK(kb->threshold[c * l + j - 1] <= kb->threshold[c * l + j], name, ": thresholds of channel ", c,
                     " are not non-decreasing");
    check_flip(kb->flip);
    if (kb->flip.empty()) kb->flip.assign(static_cast<std::size_t>(cout), 0);
    out_kind = Kind::codes;
  } else {
    auto& af = std::get<AffineEpilogue>(epi);
    LOWBIT_CHECK(static_cast<int64_t>(af.scale.size()) == cout && static_cast<int64_t>(af.bias.size()) == cout, name,
                 ": affine epilogue has ", af.scale.size(), " scales and ", af.bias.size(), " biases for ", cout,
                 " channels");
    for (int64_t c = 0; c < cout; ++c)
      LOWBIT_CHECK(std::isfinite(af.scale[c]) && std::isfinite(af.bias[c]), name, ": affine channel ", c,
                   " is not finite");
    LOWBIT_CHECK(ph == 1 && pw == 1, name, ": an affine (logits) epilogue needs a 1x1 output, not ", ph, "x", pw);
    out_kind = Kind::logits;
  }

  // Per-tap sums of the weights, Σ_c w[n, tap, c] (±1 values for bits).
  const int64_t t = taps(), cin = in.c, kk = k();
  std::vector<int32_t> tap_sum(static_cast<std::size_t>(t * cout), 0);
  int64_t worst = 0;  // largest Σ|w| over channels: bounds |acc|
  for (int64_t n = 0; n < cout; ++n) {
    int64_t abs_sum = 0;
    for (int64_t tp = 0; tp < t; ++tp) {
      int32_t s = 0;
      if (in_kind == Kind::bits) {
        // Σ of ±1 over the tap's bits = 2·ones − cin.
        const uint64_t* row = wbits.get() + n * wpr_k();
        int64_t ones = 0;
        for (int64_t b = tp * cin, end = b + cin; b < end;) {
          const int64_t take = std::min<int64_t>(64 - b % 64, end - b);
          const uint64_t mask = take == 64 ? ~uint64_t{0} : ((uint64_t{1} << take) - 1);
          ones += std::popcount((row[b / 64] >> (b % 64)) & mask);
          b += take;
        }
        s = static_cast<int32_t>(2 * ones - cin);
        abs_sum += cin;
      } else {
        for (int64_t c = 0; c < cin; ++c) {
          const int v = codes[n * kk + tp * cin + c];
          s += v;
          abs_sum += std::abs(v);
        }
      }
      tap_sum[tp * cout + n] = s;
    }
    worst = std::max(worst, abs_sum);
  }
  // |acc| <= Σ|w| · max|2x − z2| (codes) or Σ|w| (bits). Staying strictly below INT32_MAX
  // lets the epilogues use INT32_MIN / INT32_MAX as "always" / "never" thresholds.
  const int64_t bound = in_kind == Kind::bits ? worst : worst * std::max(z2, 510 - z2);
  LOWBIT_CHECK(bound < std::numeric_limits<int32_t>::max(), name, ": accumulators could reach ", bound,
               ", beyond the int32 range (too many inputs or too large weight codes)");

  // acc = mult·G + pos_bias. codes: G = Σ_all w·(x̃ − 128) with x̃ = 0 on padding, so
  // Σ_valid w·x = G + 128·Σ_all w and acc = 2·G + 256·Σ_all w − z2·Σ_valid w.
  // bits: G = Σ_all w·a with a = −1 on padding, so acc = G + Σ_all w − Σ_valid w.
  pos_dependent = pad > 0;
  const int64_t positions = pos_dependent ? oh * ow : 1;
  pos_bias.assign(static_cast<std::size_t>(positions * cout), 0);
  for (int64_t p = 0; p < positions; ++p) {
    const int64_t y = p / ow, x = p % ow;
    for (int64_t n = 0; n < cout; ++n) {
      int64_t all = 0, valid = 0;
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          const int64_t s = tap_sum[(i * kw + j) * cout + n];
          all += s;
          const int64_t iy = y * stride - pad + i, ix = x * stride - pad + j;
          if (!pos_dependent || (iy >= 0 && iy < in.h && ix >= 0 && ix < in.w)) valid += s;
        }
      const int64_t b = in_kind == Kind::bits ? all - valid : 256 * all - int64_t{z2} * valid;
      pos_bias[p * cout + n] = static_cast<int32_t>(b);
    }
  }
  if (in_kind == Kind::codes) packed = kernels::PackedWeightsI8::pack(codes, cout, kk, kk);

  fused_threshold.clear();
  if (auto* sg = std::get_if<SignEpilogue>(&epi); sg != nullptr && in_kind == Kind::codes && !pos_dependent && !pool) {
    constexpr int64_t mult = 2;
    fused_threshold.resize(static_cast<std::size_t>(cout));
    for (int64_t c = 0; c < cout; ++c) {
      const int64_t a = int64_t{sg->threshold[c]} - pos_bias[c];
      const int64_t q = a / mult + (a % mult != 0 && a > 0 ? 1 : 0);  // ceil: C++ truncates toward zero
      // Out of int32 range means always or never passed; |G| < INT32_MAX keeps the clamp exact.
      fused_threshold[c] = static_cast<int32_t>(
          std::clamp<int64_t>(q, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
    }
  }
}

namespace {
// dst[i] = src[i] − 128 as int8, which is src[i] with its top bit flipped; eight codes per
// 64-bit word (the dense first layer of an MLP copies whole images this way).
void copy_codes_centered(const uint8_t* src, int64_t n, int8_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, src + i, 8);
    v ^= 0x8080808080808080ULL;
    std::memcpy(dst + i, &v, 8);
  }
  for (; i < n; ++i) dst[i] = static_cast<int8_t>(src[i] ^ 0x80);
}
}  // namespace

void Layer::forward(const uint8_t* in_codes, const uint64_t* in_bits, int64_t n, AlignedPtr<uint8_t>* out_codes,
                    AlignedPtr<uint64_t>* out_bits, float* out_logits) const {
  const int64_t rows = n * oh * ow, kk = k(), cin = in.c, wk = wpr_k(), win = packed_words_per_row(cin);
  const bool bits_in = in_kind == Kind::bits;

  // GEMM operand A: one row of K values per output position (im2col), padding filled with
  // x̃ = 0 (code 0, i.e. −128 after the offset) or bit 0 (−1).
  AlignedPtr<int8_t> a8;
  AlignedPtr<uint64_t> a1;
  const uint64_t* abits = in_bits;
  if (!bits_in) {
    a8 = alloc_scratch<int8_t>(rows * kk);
    int8_t* a = a8.get();
    parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / (oh * ow), y = (r / ow) % oh, x = r % ow;
        int8_t* dst = a + r * kk;
        for (int64_t i = 0; i < kh; ++i) {
          const int64_t iy = y * stride - pad + i, ix0 = x * stride - pad;
          if (iy >= 0 && iy < in.h && ix0 >= 0 && ix0 + kw <= in.w) {
            // The kernel row lies inside the image: its kw·cin codes are contiguous in the input
            // (a dense layer's single row is the whole flattened image).
            copy_codes_centered(in_codes + ((img * in.h + iy) * in.w + ix0) * cin, kw * cin, dst);
            dst += kw * cin;
            continue;
          }
          for (int64_t j = 0; j < kw; ++j, dst += cin) {
            const int64_t ix = ix0 + j;
            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) {
              std::memset(dst, 0x80, static_cast<std::size_t>(cin));
              continue;
            }
            copy_codes_centered(in_codes + ((img * in.h + iy) * in.w + ix) * cin, cin, dst);
          }
        }
      }
    });
  } else if (!identity_rows()) {
    a1 = alloc<uint64_t>(rows * wk);
    uint64_t* a = a1.get();
    parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t img = r / (oh * ow), y = (r / ow) % oh, x = r % ow;
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) {
            const int64_t iy = y * stride - pad + i, ix = x * stride - pad + j;
            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;  // stays 0 = −1
            copy_bits(a + r * wk, (i * kw + j) * cin, in_bits + ((img * in.h + iy) * in.w + ix) * win, cin);
          }
      }
    });
    abits = a;
  }

  kernels::BitMatrix am, bm;
  if (bits_in) {
    am = {std::span<const uint64_t>(abits, static_cast<std::size_t>(rows * wk)), rows, kk, wk};
    bm = {std::span<const uint64_t>(wbits.get(), static_cast<std::size_t>(cout * wk)), cout, kk, wk};
  }
  // Fused fast paths: bits in, no correction, no pooling: the bgemm epilogues are exactly ours.
  if (bits_in && !pos_dependent && !pool && rows > 0) {
    if (auto* s = std::get_if<SignEpilogue>(&epi)) {
      *out_bits = alloc<uint64_t>(rows * packed_words_per_row(cout));
      kernels::bgemm_threshold(am, bm, s->threshold, s->flip,
                               std::span<uint64_t>(out_bits->get(), static_cast<std::size_t>(rows * packed_words_per_row(cout))),
                               &wpanels);
      return;
    }
    if (auto* af = std::get_if<AffineEpilogue>(&epi)) {
      kernels::bgemm_f32(am, bm, af->scale, af->bias, std::span<float>(out_logits, static_cast<std::size_t>(rows * cout)),
                         cout, &wpanels);
      return;
    }
  }

  AlignedPtr<int32_t> acc = alloc_scratch<int32_t>(rows * cout);
  const std::span<int32_t> accs(acc.get(), static_cast<std::size_t>(rows * cout));
  if (rows > 0) {
    if (bits_in) {
      kernels::bgemm_s32(am, bm, accs, cout);
    } else if (rows == 1) {
      kernels::igemv_s32(std::span<const int8_t>(a8.get(), static_cast<std::size_t>(kk)), packed, accs);
    } else {
      kernels::igemm_s32(std::span<const int8_t>(a8.get(), static_cast<std::size_t>(rows * kk)), rows, kk, packed,
                         accs, cout);
    }
  }
  if (!fused_threshold.empty()) {
    const int64_t wo = packed_words_per_row(cout);
    *out_bits = alloc<uint64_t>(rows * wo);
    kernels::pack_thresholds(acc.get(), rows, cout, cout, fused_threshold, std::get<SignEpilogue>(epi).flip,
                             std::span<uint64_t>(out_bits->get(), static_cast<std::size_t>(rows * wo)));
    return;
  }
  const int32_t mult = bits_in ? 1 : 2;
  parallel_for(0, rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t* pb = pos_bias.data() + (pos_dependent ? (r % (oh * ow)) * cout : 0);
      int32_t* row = acc.get() + r * cout;
      for (int64_t c = 0; c < cout; ++c) row[c] = mult * row[c] + pb[c];
    }
  });

  if (!pool) {
    epilogue(acc.get(), rows, out_codes, out_bits, out_logits);
    return;
  }
  const int64_t prow = n * ph * pw;
  AlignedPtr<int32_t> pooled = alloc<int32_t>(prow * cout);
  parallel_for(0, prow, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t img = r / (ph * pw), y = (r / pw) % ph, x = r % pw;
      int32_t* dst = pooled.get() + r * cout;
      std::fill(dst, dst + cout, std::numeric_limits<int32_t>::min());
      for (int64_t i = 0; i < pool->kernel; ++i)
        for (int64_t j = 0; j < pool->kernel; ++j) {
          const int32_t* src =
              acc.get() + ((img * oh + y * pool->stride + i) * ow + x * pool->stride + j) * cout;
          for (int64_t c = 0; c < cout; ++c) dst[c] = std::max(dst[c], src[c]);
        }
    }
  });
  epilogue(pooled.get(), prow, out_codes, out_bits, out_logits);
}

void Layer::epilogue(const int32_t* acc, int64_t rows, AlignedPtr<uint8_t>* out_codes, AlignedPtr<uint64_t>* out_bits,
                     float* out_logits) const {
  if (auto* s = std::get_if<SignEpilogue>(&epi)) {
    const int64_t wo = packed_words_per_row(cout);
    *out_bits = alloc<uint64_t>(rows * wo);
    uint64_t* out = out_bits->get();
    parallel_for(0, rows, 256, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t q = 0; q * 64 < cout; ++q) {
          // One word at a time in a register: or-ing single bits into memory is several
          // times slower.
          uint64_t word = 0;
          const int64_t c0 = q * 64, m = std::min<int64_t>(64, cout - c0);
          for (int64_t b = 0; b < m; ++b) {
            const int64_t c = c0 + b;
            word |= static_cast<uint64_t>((acc[r * cout + c] >= s->threshold[c]) ^ (s->flip[c] != 0)) << b;
          }
          out[r * wo + q] = word;
        }
    });
  } else if (auto* kb = std::get_if<KbitEpilogue>(&epi)) {
    const int64_t l = (int64_t{1} << kb->bits) - 1;
    *out_codes = alloc<uint8_t>(rows * cout);
    uint8_t* out = out_codes->get();
    parallel_for(0, rows, 256, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < cout; ++c) {
          const int32_t v = acc[r * cout + c];
          const int32_t* t = kb->threshold.data() + c * l;
          // Sorted thresholds: the count of passed ones is an upper bound.
          const int64_t passed = std::upper_bound(t, t + l, v) - t;
          out[r * cout + c] = static_cast<uint8_t>(kb->flip[c] ? l - passed : passed);
        }
    });
  } else {
    const auto& af = std::get<AffineEpilogue>(epi);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cout; ++c)
        out_logits[r * cout + c] = af.scale[c] * static_cast<float>(acc[r * cout + c]) + af.bias[c];
  }
}

// ---------------------------------------------------------------------------------------------

Network::Network(const InputSpec& input) : input_(input) {
  LOWBIT_CHECK(input.height >= 1 && input.width >= 1 && input.channels >= 1 && input.height <= (1 << 20) &&
                   input.width <= (1 << 20) && input.channels <= (1 << 20),
               "runtime::Network: input ", input.height, "x", input.width, "x", input.channels,
               " (expected positive dimensions)");
  LOWBIT_CHECK(std::isfinite(input.scale) && std::isfinite(input.offset), "runtime::Network: input scale ",
               input.scale, " / offset ", input.offset, " must be finite");
}
Network::Network(Network&&) noexcept = default;
Network& Network::operator=(Network&&) noexcept = default;
Network::~Network() = default;

namespace {

Act current_act(const InputSpec& input, const std::vector<std::unique_ptr<Layer>>& layers) {
  if (layers.empty()) return Act{input.height, input.width, input.channels, Kind::codes};
  const Layer& l = *layers.back();
  return Act{l.ph, l.pw, l.cout, l.out_kind};
}

}  // namespace

void Network::append(std::unique_ptr<Layer> layer) { layers_.push_back(std::move(layer)); }

void Network::add_dense(const DenseSpec& spec) {
  const std::string name = "layer " + std::to_string(layers_.size()) + " (dense)";
  const Act a = current_act(input_, layers_);
  LOWBIT_CHECK(a.kind != Kind::logits, name, ": nothing may follow a layer with an affine (logits) epilogue");
  LOWBIT_CHECK(spec.out_features >= 1, name, ": out_features=", spec.out_features);
  const int64_t in = a.h * a.w * a.c;
  LOWBIT_CHECK(static_cast<int64_t>(spec.weight.size()) == spec.out_features * in, name, ": ", spec.weight.size(),
               " weights (expected out_features ", spec.out_features, " x in_features ", in, ")");
  Conv2dSpec c;
  c.out_channels = spec.out_features;
  c.kernel_h = a.h;
  c.kernel_w = a.w;
  c.stride = 1;
  c.pad = 0;
  c.weight = spec.weight;
  c.epilogue = spec.epilogue;
  c.input_zero2 = spec.input_zero2;
  add_conv2d(c);
  layers_.back()->is_dense = true;
}

void Network::add_conv2d(const Conv2dSpec& spec) {
  const std::string name = "layer " + std::to_string(layers_.size()) + " (conv2d)";
  const Act a = current_act(input_, layers_);
  LOWBIT_CHECK(a.kind != Kind::logits, name, ": nothing may follow a layer with an affine (logits) epilogue");
  LOWBIT_CHECK(spec.out_channels >= 1, name, ": out_channels=", spec.out_channels);
  auto l = std::make_unique<Layer>();
  l->in_kind = a.kind;
  l->in = a;
  l->kh = spec.kernel_h;
  l->kw = spec.kernel_w;
  l->stride = spec.stride;
  l->pad = spec.pad;
  l->cout = spec.out_channels;
  l->pool = spec.pool;
  l->z2 = spec.input_zero2;
  l->epi = spec.epilogue;
  LOWBIT_CHECK(l->kh >= 1 && l->kw >= 1 && l->kh <= 4096 && l->kw <= 4096, name, ": kernel ", l->kh, "x", l->kw);
  const int64_t kk = l->k();
  LOWBIT_CHECK(static_cast<int64_t>(spec.weight.size()) == l->cout * kk, name, ": ", spec.weight.size(),
               " weights (expected ", l->cout, " x ", l->kh, " x ", l->kw, " x ", a.c, " = ", l->cout * kk, ")");
  if (l->in_kind == Kind::bits) {
    for (int8_t v : spec.weight)
      LOWBIT_CHECK(v == 1 || v == -1, name, ": weight ", int(v), " on a binary input (expected +1 or -1)");
    l->wbits = alloc<uint64_t>(l->cout * l->wpr_k());
    kernels::pack_signs(spec.weight.data(), l->cout, kk, kk,
                        std::span<uint64_t>(l->wbits.get(), static_cast<std::size_t>(l->cout * l->wpr_k())));
    // Rearranged once here rather than by every batched call.
    l->wpanels = kernels::bgemm_pack_b(
        {std::span<const uint64_t>(l->wbits.get(), static_cast<std::size_t>(l->cout * l->wpr_k())), l->cout, kk,
         l->wpr_k()});
  } else {
    l->codes = spec.weight;
  }
  l->finish_setup(name);
  append(std::move(l));
}

int64_t Network::num_classes() const { return layers_.empty() ? 0 : layers_.back()->cout; }

bool Network::complete() const { return !layers_.empty() && layers_.back()->out_kind == Kind::logits; }

std::vector<std::string> Network::describe() const {
  std::vector<std::string> out;
  for (const auto& l : layers_) out.push_back(l->describe());
  return out;
}

int64_t Network::weight_bytes() const {
  int64_t b = 0;
  for (const auto& l : layers_) b += l->weight_bytes();
  return b;
}

int64_t Network::float_bytes() const {
  int64_t b = 0;
  for (const auto& l : layers_) b += l->float_bytes();
  return b;
}

void Network::logits(const uint8_t* images, int64_t n, float* out) const {
  LOWBIT_CHECK(complete(), "runtime::Network: the last layer must have an affine (logits) epilogue");
  LOWBIT_CHECK(n >= 0, "runtime::Network::logits: n=", n);
  int64_t per_image = input_.features();
  for (const auto& l : layers_) per_image = std::max(per_image, l->scratch_per_image());
  const int64_t tile = std::clamp<int64_t>(kScratchBudget / std::max<int64_t>(per_image, 1), 1, tile_);
  const int64_t feats = input_.features(), classes = num_classes();
  const bool transpose = input_.layout == InputLayout::chw && input_.channels > 1;
  for (int64_t i0 = 0; i0 < n; i0 += tile) {
    const int64_t m = std::min(tile, n - i0);
    AlignedPtr<uint8_t> codes, hwc;
    AlignedPtr<uint64_t> bits;
    const uint8_t* cur_codes = images + i0 * feats;
    if (transpose) {
      // The runtime works in HWC; a CHW source is reordered once at the entry.
      hwc = alloc<uint8_t>(m * feats);
      const int64_t hw = input_.height * input_.width, ch = input_.channels;
      for (int64_t img = 0; img < m; ++img)
        for (int64_t c = 0; c < ch; ++c)
          for (int64_t p = 0; p < hw; ++p) hwc[img * feats + p * ch + c] = cur_codes[img * feats + c * hw + p];
      cur_codes = hwc.get();
    }
    const uint64_t* cur_bits = nullptr;
    for (const auto& l : layers_) {
      AlignedPtr<uint8_t> next_codes;
      AlignedPtr<uint64_t> next_bits;
      l->forward(cur_codes, cur_bits, m, &next_codes, &next_bits, out + i0 * classes);
      codes = std::move(next_codes);
      bits = std::move(next_bits);
      cur_codes = codes.get();
      cur_bits = bits.get();
    }
  }
}

Tensor Network::logits(const Tensor& images) const {
  LOWBIT_CHECK(images.dtype() == DType::u8 && images.dim() >= 1 && images.is_contiguous(),
               "runtime::Network: images must be a contiguous u8 tensor [N, ...], got ", images.describe());
  const int64_t n = images.size(0);
  LOWBIT_CHECK(n == 0 || images.numel() / n == input_.features(), "runtime::Network: images ", images.describe(),
               " have ", n == 0 ? 0 : images.numel() / n, " values per image; the model expects ", input_.features(),
               " (", input_.height, "x", input_.width, "x", input_.channels, ")");
  Tensor out = Tensor::zeros({n, num_classes()}, DType::f32);
  logits(images.data<uint8_t>(), n, out.data<float>());
  return out;
}

std::vector<int32_t> Network::predict(const Tensor& images) const {
  const Tensor l = logits(images);
  const int64_t n = l.size(0), c = l.size(1);
  const float* p = l.data<float>();
  std::vector<int32_t> out(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<int32_t>(std::max_element(p + i * c, p + (i + 1) * c) - (p + i * c));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Model files.

namespace {

const char* kPacking =
    "U64 words, row-major [rows, words_per_row]; words_per_row = ceil(k / 512) * 8; element j of a row is bit "
    "j % 64 of word j / 64; bit 1 = +1, bit 0 = -1; padding bits are 0";

bool all_pm1(const std::vector<int8_t>& v) {
  for (int8_t x : v)
    if (x != 1 && x != -1) return false;
  return true;
}

template <typename T>
io::Array array_of(const std::vector<T>& v, const Shape& shape) {
  return io::Array::from<T>(shape, std::span<const T>(v));
}

template <typename T>
std::vector<T> vector_of(const io::ModelFile& f, const std::string& name, const Shape& shape,
                         const std::string& source) {
  LOWBIT_CHECK(f.contains(name), source, ": model file has no tensor '", name, "'");
  const io::Array& a = f.get(name);
  LOWBIT_CHECK(a.type() == io::elem_type_of<T>::value && a.shape() == shape, source, ": tensor '", name, "' is ",
               io::elem_type_name(a.type()), " ", shape_str(a.shape()), " (expected ",
               io::elem_type_name(io::elem_type_of<T>::value), " ", shape_str(shape), ")");
  const auto s = a.values<T>();
  return std::vector<T>(s.begin(), s.end());
}

}  // namespace

io::ModelFile Network::to_model_file(const std::string& extra_metadata) const {
  io::ModelFile f;
  json meta = json::object();
  json extra = json::parse(extra_metadata, nullptr, false);
  LOWBIT_CHECK(!extra.is_discarded() && extra.is_object(), "Network::save: extra metadata is not a JSON object");
  meta["format"] = "lowbit";
  meta["format_version"] = io::kFormatVersion;
  json model = json::object();
  model["kind"] = "feedforward";
  model["input"] = {{"height", input_.height},
                    {"width", input_.width},
                    {"channels", input_.channels},
                    {"layout", input_.layout == InputLayout::hwc ? "hwc" : "chw"},
                    {"dtype", "U8"},
                    {"scale", input_.scale},
                    {"offset", input_.offset}};
  json layers = json::array();
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = *layers_[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    json e = json::object();
    e["type"] = l.is_dense ? "dense" : "conv2d";
    e["input"] = kind_name(l.in_kind);
    if (l.is_dense) {
      e["in_features"] = l.k();
      e["out_features"] = l.cout;
    } else {
      e["in_shape"] = {l.in.h, l.in.w, l.in.c};
      e["out_channels"] = l.cout;
      e["kernel"] = {l.kh, l.kw};
      e["stride"] = l.stride;
      e["pad"] = l.pad;
      e["pool"] = l.pool ? json{{"type", "max"}, {"kernel", l.pool->kernel}, {"stride", l.pool->stride}} : json();
      e["out_shape"] = {l.ph, l.pw, l.cout};
    }
    e["input_zero2"] = l.z2;
    if (l.in_kind == Kind::bits) {
      e["weight_bits"] = l.k();
      const std::size_t words = static_cast<std::size_t>(l.cout * l.wpr_k());
      f.add(p + "weight", io::Array::from<uint64_t>({l.cout, l.wpr_k()},
                                                    std::span<const uint64_t>(l.wbits.get(), words)));
    } else if (all_pm1(l.codes)) {
      // A binary-weight layer reading codes (the first layer on raw pixels) stores its ±1
      // weights packed like a bits-input layer: 8x smaller files, unpacked to int8 at load.
      e["weight_storage"] = "bits";
      const int64_t wpr = packed_words_per_row(l.k());
      const std::size_t n = static_cast<std::size_t>(l.cout * wpr);
      auto words = make_aligned<uint64_t>(n);
      kernels::pack_signs(l.codes.data(), l.cout, l.k(), l.k(), {words.get(), n});
      f.add(p + "weight", io::Array::from<uint64_t>({l.cout, wpr}, std::span<const uint64_t>(words.get(), n)));
    } else {
      const Shape s = l.is_dense ? Shape{l.cout, l.k()} : Shape{l.cout, l.kh, l.kw, l.in.c};
      f.add(p + "weight", array_of(l.codes, s));
    }
    if (auto* s = std::get_if<SignEpilogue>(&l.epi)) {
      e["epilogue"] = {{"type", "sign"}};
      f.add(p + "threshold", array_of(s->threshold, {l.cout}));
      f.add(p + "flip", array_of(s->flip, {l.cout}));
    } else if (auto* kb = std::get_if<KbitEpilogue>(&l.epi)) {
      e["epilogue"] = {{"type", "kbit"}, {"bits", kb->bits}};
      f.add(p + "threshold", array_of(kb->threshold, {l.cout, (int64_t{1} << kb->bits) - 1}));
      f.add(p + "flip", array_of(kb->flip, {l.cout}));
    } else {
      const auto& af = std::get<AffineEpilogue>(l.epi);
      e["epilogue"] = {{"type", "affine"}};
      f.add(p + "scale", array_of(af.scale, {l.cout}));
      f.add(p + "bias", array_of(af.bias, {l.cout}));
    }
    layers.push_back(e);
  }
  model["layers"] = layers;
  model["classes"] = num_classes();
  meta["model"] = model;
  meta["packing"] = kPacking;
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    LOWBIT_CHECK(!meta.contains(it.key()), "Network::save: extra metadata key '", it.key(),
                 "' is reserved by the runtime");
    meta[it.key()] = it.value();
  }
  f.metadata = meta.dump();
  return f;
}

namespace {

int64_t get_int(const json& o, const char* key, const std::string& where) {
  LOWBIT_CHECK(o.is_object() && o.contains(key) && o[key].is_number_integer(), where, ": missing integer \"", key,
               "\"");
  return o[key].get<int64_t>();
}

std::string get_str(const json& o, const char* key, const std::string& where) {
  LOWBIT_CHECK(o.is_object() && o.contains(key) && o[key].is_string(), where, ": missing string \"", key, "\"");
  return o[key].get<std::string>();
}

double get_num(const json& o, const char* key, const std::string& where) {
  LOWBIT_CHECK(o.is_object() && o.contains(key) && o[key].is_number(), where, ": missing number \"", key, "\"");
  return o[key].get<double>();
}

}  // namespace

Network Network::from_model_file(const io::ModelFile& file, const std::string& source) {
  const json meta = json::parse(file.metadata, nullptr, false);
  LOWBIT_CHECK(!meta.is_discarded() && meta.is_object() && meta.contains("model") && meta["model"].is_object(), source,
               ": metadata has no \"model\" object (not a network file?)");
  const json& model = meta["model"];
  LOWBIT_CHECK(get_str(model, "kind", source + ": model") == "feedforward", source, ": model kind ",
               model["kind"].dump(), " is not supported (expected \"feedforward\")");
  const std::string wi = source + ": model.input";
  LOWBIT_CHECK(model.contains("input"), wi, " is missing");
  const json& in = model["input"];
  InputSpec spec;
  spec.height = get_int(in, "height", wi);
  spec.width = get_int(in, "width", wi);
  spec.channels = get_int(in, "channels", wi);
  const std::string layout = get_str(in, "layout", wi);
  LOWBIT_CHECK(layout == "hwc" || layout == "chw", wi, ": layout \"", layout, "\" (expected hwc or chw)");
  spec.layout = layout == "hwc" ? InputLayout::hwc : InputLayout::chw;
  spec.scale = get_num(in, "scale", wi);
  spec.offset = get_num(in, "offset", wi);
  Network net(spec);
  LOWBIT_CHECK(model.contains("layers") && model["layers"].is_array(), source, ": model has no \"layers\" array");
  const json& layers = model["layers"];
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const json& e = layers[i];
    const std::string where = source + ": layer " + std::to_string(i);
    const std::string p = "layers." + std::to_string(i) + ".";
    const std::string type = get_str(e, "type", where);
    const std::string input = get_str(e, "input", where);
    const Act a = current_act(net.input_, net.layers_);
    LOWBIT_CHECK(input == kind_name(a.kind), where, ": reads \"", input, "\" but the previous stage produces \"",
                 kind_name(a.kind), "\"");
    int64_t cout = 0, kh = a.h, kw = a.w;
    if (type == "dense") {
      cout = get_int(e, "out_features", where);
      LOWBIT_CHECK(get_int(e, "in_features", where) == a.h * a.w * a.c, where, ": in_features ", e["in_features"].dump(),
                   " but the previous stage produces ", a.h * a.w * a.c);
    } else if (type == "conv2d") {
      cout = get_int(e, "out_channels", where);
      LOWBIT_CHECK(e.contains("kernel") && e["kernel"].is_array() && e["kernel"].size() == 2 &&
                       e["kernel"][0].is_number_integer() && e["kernel"][1].is_number_integer(),
                   where, ": \"kernel\" must be [kh, kw]");
      kh = e["kernel"][0].get<int64_t>();
      kw = e["kernel"][1].get<int64_t>();
    } else {
      fail(where, ": unknown layer type \"", type, "\" (expected dense or conv2d)");
    }
    LOWBIT_CHECK(cout >= 1 && cout <= (int64_t{1} << 24) && kh >= 1 && kw >= 1 && kh <= 4096 && kw <= 4096, where,
                 ": implausible sizes");
    const int64_t kk = kh * kw * a.c;
    std::vector<int8_t> weight;
    std::string storage = a.kind == Kind::bits ? "bits" : "codes";
    if (e.contains("weight_storage")) storage = get_str(e, "weight_storage", where);
    LOWBIT_CHECK(storage == "bits" || (storage == "codes" && a.kind == Kind::codes), where, ": weight_storage \"",
                 storage, "\" (expected \"bits\", or \"codes\" for a layer reading codes)");
    if (storage == "bits") {
      if (a.kind == Kind::bits)
        LOWBIT_CHECK(get_int(e, "weight_bits", where) == kk, where, ": weight_bits ", e["weight_bits"].dump(),
                     " (expected ", kk, ")");
      const std::vector<uint64_t> words = vector_of<uint64_t>(file, p + "weight", {cout, packed_words_per_row(kk)}, source);
      const int64_t wpr = packed_words_per_row(kk);
      weight.resize(static_cast<std::size_t>(cout * kk));
      for (int64_t r = 0; r < cout; ++r) {
        const uint64_t* row = words.data() + r * wpr;
        int8_t* dst = weight.data() + r * kk;
        for (int64_t q = 0; q * 64 < kk; ++q) {
          const uint64_t w = row[q];
          const int64_t m = std::min<int64_t>(64, kk - q * 64);
          for (int64_t b = 0; b < m; ++b) dst[q * 64 + b] = static_cast<int8_t>(((w >> b) & 1) * 2 - 1);
        }
        // Padding bits must be zero: the kernels rely on it (a set pad bit would change the dot).
        uint64_t pad_bits = kk % 64 ? row[kk / 64] >> (kk % 64) : 0;
        for (int64_t q = (kk + 63) / 64; q < wpr; ++q) pad_bits |= row[q];
        LOWBIT_CHECK(pad_bits == 0, where, ": padding bits of the packed weights are not zero");
      }
    } else {
      const Shape s = type == "dense" ? Shape{cout, kk} : Shape{cout, kh, kw, a.c};
      weight = vector_of<int8_t>(file, p + "weight", s, source);
    }
    LOWBIT_CHECK(e.contains("epilogue") && e["epilogue"].is_object(), where, ": missing \"epilogue\"");
    const std::string et = get_str(e["epilogue"], "type", where + " epilogue");
    Epilogue epi;
    if (et == "sign") {
      epi = SignEpilogue{vector_of<int32_t>(file, p + "threshold", {cout}, source),
                         vector_of<uint8_t>(file, p + "flip", {cout}, source)};
    } else if (et == "kbit") {
      const int64_t bits = get_int(e["epilogue"], "bits", where + " epilogue");
      LOWBIT_CHECK(bits >= 1 && bits <= 8, where, ": kbit epilogue bits=", bits, " (expected 1..8)");
      epi = KbitEpilogue{static_cast<int>(bits),
                         vector_of<int32_t>(file, p + "threshold", {cout, (int64_t{1} << bits) - 1}, source),
                         vector_of<uint8_t>(file, p + "flip", {cout}, source)};
    } else if (et == "affine") {
      epi = AffineEpilogue{vector_of<float>(file, p + "scale", {cout}, source),
                           vector_of<float>(file, p + "bias", {cout}, source)};
    } else {
      fail(where, ": unknown epilogue \"", et, "\" (expected sign, kbit or affine)");
    }
    const int z2 = static_cast<int>(std::clamp<int64_t>(get_int(e, "input_zero2", where), -1, 511));
    try {
      if (type == "dense") {
        net.add_dense(DenseSpec{cout, std::move(weight), std::move(epi), z2});
      } else {
        Conv2dSpec c;
        c.out_channels = cout;
        c.kernel_h = kh;
        c.kernel_w = kw;
        c.stride = get_int(e, "stride", where);
        c.pad = get_int(e, "pad", where);
        c.weight = std::move(weight);
        c.epilogue = std::move(epi);
        c.input_zero2 = z2;
        if (e.contains("pool") && !e["pool"].is_null()) {
          LOWBIT_CHECK(get_str(e["pool"], "type", where + " pool") == "max", where, ": only max pooling is supported");
          c.pool = MaxPool{get_int(e["pool"], "kernel", where + " pool"), get_int(e["pool"], "stride", where + " pool")};
        }
        net.add_conv2d(c);
      }
    } catch (const Error& err) {
      fail(source, ": ", err.what());
    }
  }
  LOWBIT_CHECK(net.complete(), source, ": the network does not end with an affine (logits) layer");
  return net;
}

void Network::save(const std::string& path, const std::string& extra_metadata) const {
  io::save(path, to_model_file(extra_metadata));
}

Network Network::load(const std::string& path) { return from_model_file(io::load(path), path); }

std::string metadata_string(const io::ModelFile& file, const std::string& key) {
  const json meta = json::parse(file.metadata, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains(key) || !meta[key].is_string()) return "";
  return meta[key].get<std::string>();
}

}  // namespace lowbit::runtime
