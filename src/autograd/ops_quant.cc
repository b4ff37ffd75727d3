// Activations and quantizers with straight-through gradients, dropout, gradient quantization.
// The forward and backward arithmetic is the quant/ layer's; this file only threads it through
// the tape (and splits large tensors across threads: every quantizer here is elementwise, and the
// stochastic ones take a counter offset so that chunks reproduce the one-call result).
#include <atomic>
#include <cmath>
#include <cstdint>

#include "autograd/internal.h"
#include "lowbit/core/cpu.h"
#include "lowbit/core/target.h"
#include "lowbit/autograd/ops.h"
#include "lowbit/kernels/dropout.h"
#include "lowbit/quant/binary.h"
#include "lowbit/quant/kbit.h"
#include "lowbit/quant/rng.h"

#if LOWBIT_X86
#include <immintrin.h>
#endif

namespace lowbit::autograd {
using detail::checked_value;
using detail::parallel_elements;

namespace {
using Fwd = std::function<void(std::span<const float>, std::span<float>)>;
using Bwd = std::function<void(std::span<const float>, std::span<const float>, std::span<float>)>;

// Elementwise forward f with elementwise STE backward b, both applied in parallel chunks.
// `chunk_fwd(x, out, offset)` lets stochastic forwards know where a chunk starts.
// The gradient's destination for a straight-through estimator: with every input where the
// estimator is the identity (clipped latent weights, hardtanh outputs), consumers write and add
// their gradients directly into x's buffer, which saves a weight-sized buffer and two passes over
// it per step; otherwise the node gathers them in `grad_storage` for its own backward.
void route_ste_gradient(Var& result, const Var& x, bool identity, Tensor grad_storage) {
  if (!result.requires_grad()) return;
  if (identity) result.node()->grad_alias = x.node().get();
  else result.node()->grad_storage = std::move(grad_storage);
}

// With pass_lo <= pass_hi, b is the identity for inputs in [pass_lo, pass_hi] (a clipped
// straight-through estimator): when every input lies there, the result's gradient goes straight
// into x's buffer (Node::grad_alias) and b is not run.
Var elementwise_ste(const Var& x, const char* op,
                    const std::function<void(std::span<const float>, std::span<float>, int64_t)>& chunk_fwd,
                    Bwd bwd, Tensor out = Tensor(), Tensor grad_storage = Tensor(), float pass_lo = 1.0f,
                    float pass_hi = -1.0f) {
  const Tensor& xv = checked_value(x, op, "x");
  if (!out.defined()) out = detail::new_like(xv);
  const float* px = xv.data<float>();
  float* po = out.data<float>();
  const bool window = pass_lo <= pass_hi;
  std::atomic<bool> all_inside{window};
  parallel_elements(xv.numel(), [&](int64_t b, int64_t e) {
    if (!window) {
      chunk_fwd({px + b, static_cast<std::size_t>(e - b)}, {po + b, static_cast<std::size_t>(e - b)}, b);
      return;
    }
    int outside = 0;
    for (int64_t s = b; s < e; s += 4096) {  // the window test reads the block while it is in cache
      const auto n = static_cast<std::size_t>(std::min<int64_t>(4096, e - s));
      chunk_fwd({px + s, n}, {po + s, n}, s);
      for (std::size_t i = 0; i < n; ++i)
        outside |= static_cast<int>(!(px[s + i] >= pass_lo)) | static_cast<int>(!(px[s + i] <= pass_hi));
    }
    if (outside) all_inside.store(false);
  });
  Var result = make_result(op, out, {x}, [xv, bwd = std::move(bwd)](Node& self) {
    if (self.grad_alias != nullptr) return;  // the gradient went straight to x
    const float* px = xv.data<float>();
    const float* go = self.grad.data<float>();
    bool fresh = false;
    float* g = self.parents[0]->grad_buffer(&fresh);
    parallel_elements(xv.numel(), [&](int64_t b, int64_t e) {
      if (fresh) {  // zeros: the backward may write its result in place
        const auto n = static_cast<std::size_t>(e - b);
        bwd({px + b, n}, {go + b, n}, {g + b, n});
        return;
      }
      // Accumulate through a small cache-resident scratch rather than a tensor-sized temporary:
      // latent weight gradients (the optimizer's buffers) are large, and not fresh after
      // zero_grad() or when another contribution came first.
      float scratch[2048];
      for (int64_t s = b; s < e; s += 2048) {
        const auto n = static_cast<std::size_t>(std::min<int64_t>(2048, e - s));
        bwd({px + s, n}, {go + s, n}, {scratch, n});
        float* gs = g + s;
        for (std::size_t i = 0; i < n; ++i) gs[i] += scratch[i];
      }
    });
  });
  route_ste_gradient(result, x, all_inside.load(), std::move(grad_storage));
  return result;
}

void check_buffer(const Tensor& t, const Tensor& like, const char* what) {
  LOWBIT_CHECK(t.defined() && t.dtype() == DType::f32 && t.is_contiguous() && t.shape() == like.shape(),
               "fake_quantize_into: ", what, " ", t.defined() ? t.describe() : std::string("(empty)"),
               " does not match the weight ", like.describe());
}
// quant::binarize and quant::binarize_backward restated as branch-free loops over restrict
// pointers, which the compiler vectorizes: a training step runs them over every latent weight
// of every binary layer (millions of elements), where the quant/ versions' data-dependent
// branches cost several times more. Same results (sign_pm1 is quant's own definition; tests
// compare both); a NaN input is handed to quant::binarize for its error message.
// (The loads are unconditional and the NaN flag an int so that GCC if-converts and vectorizes.)
// Returns whether every |x| is within `window` (the straight-through estimator then passes the
// whole gradient).
bool sign_chunk(const float* __restrict x, float* __restrict out, std::size_t n, float window) {
  int bad = 0, outside = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    bad |= v != v;
    outside |= std::fabs(v) > window;
    out[i] = quant::sign_pm1(v);
  }
  if (bad) quant::binarize({x, n}, {out, n});  // throws naming the NaN
  return outside == 0;
}

#if LOWBIT_X86
// The same with AVX-512 and non-temporal stores, for outputs larger than this core's L2 (the
// signs of a layer's latent weights): their lines are not read for ownership first, and they
// would leave the cache before the backward pass reads them anyway. Same values.
LOWBIT_TARGET_AVX512 bool sign_chunk_stream(const float* __restrict x, float* __restrict out, std::size_t n,
                                            float window) {
  std::size_t i = 0;
  while (i < n && (reinterpret_cast<uintptr_t>(out + i) & 63) != 0) ++i;
  bool inside = sign_chunk(x, out, i, window);  // up to the first 64-byte boundary of out
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
  const __m512 win = _mm512_set1_ps(window);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  __mmask16 nan_m = 0, out_m = 0;
  const std::size_t head = i;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    nan_m |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
    out_m |= _mm512_cmp_ps_mask(a, win, _CMP_GT_OQ);
    // x >= 0 (−0 included) gives +1, x < 0 or NaN gives −1: sign_pm1.
    _mm512_stream_ps(out + i, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ), minus, one));
  }
  _mm_sfence();  // the streamed lines are visible before the pool reports the chunk done
  if (nan_m) quant::binarize({x + head, i - head}, {out + head, i - head});  // throws naming the NaN
  inside &= sign_chunk(x + i, out + i, n - i, window);
  return inside && out_m == 0;
}
#endif

// grad_in (+)= grad_out · 1{|x| <= window}
void sign_backward_chunk(const float* __restrict x, const float* __restrict g, float* __restrict gi, std::size_t n,
                         float window, bool accumulate) {
  if (accumulate) {
    for (std::size_t i = 0; i < n; ++i) {
      const float gv = g[i];
      gi[i] += std::fabs(x[i]) <= window ? gv : 0.0f;
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const float gv = g[i];
      gi[i] = std::fabs(x[i]) <= window ? gv : 0.0f;
    }
  }
}

// sign with the STE, optionally into caller-owned buffers (see fake_quantize_into).
Var sign_op(const Var& x, float window, Tensor out, Tensor grad_storage) {
  const Tensor& xv = checked_value(x, "sign", "x");
  if (!out.defined()) out = detail::new_like(xv);
  const float* px = xv.data<float>();
  float* po = out.data<float>();
  std::atomic<bool> all_inside{true};
#if LOWBIT_X86
  const bool stream = static_cast<int64_t>(xv.nbytes()) > cpu::l2_cache_bytes() &&
                      (cpu::usable_features() & cpu::kAvx512) != 0;
#else
  const bool stream = false;
#endif
  parallel_elements(xv.numel(), [&](int64_t b, int64_t e) {
    const auto n = static_cast<std::size_t>(e - b);
#if LOWBIT_X86
    if (stream) {
      if (!sign_chunk_stream(px + b, po + b, n, window)) all_inside.store(false);
      return;
    }
#endif
    if (!sign_chunk(px + b, po + b, n, window)) all_inside.store(false);
  });
  Var result = make_result("sign", out, {x}, [xv, window](Node& self) {
    if (self.grad_alias != nullptr) return;  // the gradient went straight to x
    const float* px = xv.data<float>();
    const float* go = self.grad.data<float>();
    bool fresh = false;
    float* g = self.parents[0]->grad_buffer(&fresh);
    parallel_elements(xv.numel(), [&](int64_t b, int64_t e) {
      sign_backward_chunk(px + b, go + b, g + b, static_cast<std::size_t>(e - b), window, !fresh);
    });
  });
  route_ste_gradient(result, x, all_inside.load(), std::move(grad_storage));
  return result;
}

}  // namespace

Var hardtanh(const Var& x, float lo, float hi) {
  LOWBIT_CHECK(lo < hi, "hardtanh: lo = ", lo, " must be below hi = ", hi);
  return elementwise_ste(
      x, "hardtanh",
      [lo, hi](std::span<const float> in, std::span<float> out, int64_t) {
        for (std::size_t i = 0; i < in.size(); ++i) out[i] = std::min(hi, std::max(lo, in[i]));
      },
      [lo, hi](std::span<const float> in, std::span<const float> g, std::span<float> gi) {
        for (std::size_t i = 0; i < in.size(); ++i) gi[i] = (in[i] >= lo && in[i] <= hi) ? g[i] : 0.0f;
      });
}

Var sign_ste(const Var& x, float window) {
  LOWBIT_CHECK(window >= 0.0f, "sign_ste: window must be >= 0, got ", window);
  return sign_op(x, window, Tensor(), Tensor());
}

Var sign_stochastic(const Var& x, uint64_t seed, float window) {
  LOWBIT_CHECK(window >= 0.0f, "sign_stochastic: window must be >= 0, got ", window);
  return elementwise_ste(
      x, "sign_stochastic",
      [seed](std::span<const float> in, std::span<float> out, int64_t offset) {
        quant::binarize_stochastic(in, out, seed, static_cast<uint64_t>(offset));
      },
      [window](std::span<const float> in, std::span<const float> g, std::span<float> gi) {
        quant::binarize_backward(in, g, gi, window);
      });
}

Quantizer Quantizer::binary(float window) {
  // fake_quantize_into recognises the name "binary" (window 1) and takes the vectorized path.
  return {window == 1.0f ? "binary" : "binary_window" + std::to_string(window),
          [](std::span<const float> x, std::span<float> o) { quant::binarize(x, o); },
          [window](std::span<const float> x, std::span<const float> g, std::span<float> gi) {
            quant::binarize_backward(x, g, gi, window);
          }};
}

Quantizer Quantizer::weights_kbit(int bits, float clip) {
  return {"weights_kbit" + std::to_string(bits),
          [bits, clip](std::span<const float> x, std::span<float> o) { quant::quantize_weights_kbit(x, o, bits, clip); },
          [clip](std::span<const float> x, std::span<const float> g, std::span<float> gi) {
            quant::quantize_weights_kbit_backward(x, g, gi, clip);
          },
          -clip, clip};
}

Quantizer Quantizer::activations_kbit(int bits, float clip) {
  return {"activations_kbit" + std::to_string(bits),
          [bits, clip](std::span<const float> x, std::span<float> o) {
            quant::quantize_activations_kbit(x, o, bits, clip);
          },
          [clip](std::span<const float> x, std::span<const float> g, std::span<float> gi) {
            quant::quantize_activations_kbit_backward(x, g, gi, clip);
          },
          0.0f, clip};
}

Quantizer Quantizer::linear(float step, float min_v, float max_v) {
  return {"linear_quant",
          [=](std::span<const float> x, std::span<float> o) { quant::linear_quant(x, o, step, min_v, max_v); },
          [=](std::span<const float> x, std::span<const float> g, std::span<float> gi) {
            quant::linear_quant_backward(x, g, gi, min_v, max_v);
          }};
}

Quantizer Quantizer::log(float min_v, float max_v) {
  return {"log_quant", [=](std::span<const float> x, std::span<float> o) { quant::log_quant(x, o, min_v, max_v); },
          [=](std::span<const float> x, std::span<const float> g, std::span<float> gi) {
            quant::log_quant_backward(x, g, gi, min_v, max_v);
          }};
}

Quantizer Quantizer::fixed(quant::FixedFormat f, quant::FixedRounding r, bool clip_mask) {
  quant::check_format(f, "Quantizer::fixed");
  return {"fixed_" + f.str(), [=](std::span<const float> x, std::span<float> o) { quant::fixed_quantize(x, o, f, r); },
          [=](std::span<const float> x, std::span<const float> g, std::span<float> gi) {
            quant::fixed_quantize_backward(x, g, gi, f, clip_mask);
          }};
}

Quantizer Quantizer::affine(const quant::QuantParams& p) {
  return {"affine", [p](std::span<const float> x, std::span<float> o) { quant::fake_quantize(x, p, o); },
          [p](std::span<const float> x, std::span<const float> g, std::span<float> gi) {
            quant::fake_quantize_backward(x, g, p, gi);
          }};
}

Var fake_quantize(const Var& x, const Quantizer& q) {
  LOWBIT_CHECK(q.forward && q.backward, "fake_quantize: quantizer '", q.name, "' lacks a forward or backward");
  // Quantizers are elementwise, so chunks can run in parallel.
  return elementwise_ste(
      x, "fake_quantize", [fwd = q.forward](std::span<const float> in, std::span<float> out, int64_t) { fwd(in, out); },
      q.backward, Tensor(), Tensor(), q.pass_lo, q.pass_hi);
}

Var fake_quantize_into(const Var& w, const Quantizer& q, Tensor value_buf, Tensor grad_buf) {
  const Tensor& wv = checked_value(w, "fake_quantize_into", "w");
  check_buffer(value_buf, wv, "value buffer");
  check_buffer(grad_buf, wv, "gradient buffer");
  LOWBIT_CHECK(value_buf.raw() != wv.raw(), "fake_quantize_into: the value buffer is the weight itself");
  if (q.name == "binary") return sign_op(w, 1.0f, std::move(value_buf), std::move(grad_buf));
  return elementwise_ste(
      w, "fake_quantize", [fwd = q.forward](std::span<const float> in, std::span<float> out, int64_t) { fwd(in, out); },
      q.backward, std::move(value_buf), std::move(grad_buf), q.pass_lo, q.pass_hi);
}

Var dropout(const Var& x, float p, uint64_t seed, bool training) {
  LOWBIT_CHECK(p >= 0.0f && p < 1.0f, "dropout: p = ", p, " is outside [0, 1)");
  const Tensor& xv = checked_value(x, "dropout", "x");
  if (!training || p == 0.0f) return x;
  // Inverted dropout: survivors are scaled at training time so that eval is the identity.
  const float keep_scale = 1.0f / (1.0f - p);
  Tensor out = detail::new_like(xv);
  const float* px = xv.data<float>();
  float* po = out.data<float>();
  parallel_elements(xv.numel(), [&](int64_t b, int64_t e) { kernels::dropout_forward(seed, p, keep_scale, px, b, e, po); });
  // The mask is regenerated from the seed in the backward pass instead of being stored.
  return make_result("dropout", out, {x}, [p, seed, keep_scale](Node& self) {
    bool fresh = false;
    float* g = self.parents[0]->grad_buffer(&fresh);
    const float* go = self.grad.data<float>();
    parallel_elements(self.grad.numel(),
                      [&](int64_t b, int64_t e) { kernels::dropout_backward(seed, p, keep_scale, go, b, e, g, !fresh); });
  });
}

Var quantize_grad(const Var& x, int bits, uint64_t seed) {
  LOWBIT_CHECK(bits >= 1 && bits <= 16, "quantize_grad: bits = ", bits, " is outside [1, 16]");
  const Tensor& xv = checked_value(x, "quantize_grad", "x");
  return make_result("quantize_grad", xv, {x}, [bits, seed](Node& self) {
    detail::accumulate_into(*self.parents[0], [&](std::span<float> gi) {
      quant::quantize_gradient(detail::cspan(self.grad), gi, bits, seed);
    });
  });
}

}  // namespace lowbit::autograd
