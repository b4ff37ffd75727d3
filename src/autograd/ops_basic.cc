// Elementwise arithmetic with broadcasting, reductions, products, reshapes and losses.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string_view>
#include <vector>

#include "autograd/internal.h"
#include "lowbit/kernels/vexp.h"
#include "lowbit/autograd/ops.h"
#include "lowbit/core/aligned.h"
#include "lowbit/kernels/bgemm.h"
#include "lowbit/kernels/bitpack.h"
#include "lowbit/kernels/sgemm.h"

namespace lowbit::autograd {
using detail::checked_value;
using detail::cspan;
using detail::parallel_elements;

namespace {

// Broadcast geometry of two operands: the output shape and, per output dimension, each
// operand's element stride (0 where it is broadcast).
struct Broadcast {
  Shape out;
  Shape sa, sb;
  bool same = false;
};

Broadcast broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  Broadcast r;
  r.same = a == b;
  const std::size_t rank = std::max(a.size(), b.size());
  r.out.assign(rank, 1);
  r.sa.assign(rank, 0);
  r.sb.assign(rank, 0);
  auto dim = [rank](const Shape& s, std::size_t d) -> int64_t {
    const std::size_t off = rank - s.size();
    return d < off ? 1 : s[d - off];
  };
  for (std::size_t d = 0; d < rank; ++d) {
    const int64_t da = dim(a, d), db = dim(b, d);
    LOWBIT_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                 " do not broadcast (dimension ", d, ": ", da, " vs ", db, ")");
    r.out[d] = std::max(da, db);
  }
  int64_t ta = 1, tb = 1;
  for (std::size_t d = rank; d-- > 0;) {
    const int64_t da = dim(a, d), db = dim(b, d);
    r.sa[d] = da == 1 ? 0 : ta;
    r.sb[d] = db == 1 ? 0 : tb;
    ta *= da;
    tb *= db;
  }
  return r;
}

// Calls fn(i, ia, ib) for every output element i in order, with the operands' element indices.
template <typename Fn>
void for_each_broadcast(const Broadcast& g, Fn&& fn) {
  const std::size_t rank = g.out.size();
  const int64_t n = shape_numel(g.out);
  if (n == 0) return;
  if (rank == 0) {
    fn(0, 0, 0);
    return;
  }
  const int64_t inner = g.out[rank - 1], ia_step = g.sa[rank - 1], ib_step = g.sb[rank - 1];
  std::vector<int64_t> idx(rank, 0);
  int64_t ia = 0, ib = 0;
  for (int64_t i = 0; i < n; i += inner) {
    for (int64_t j = 0; j < inner; ++j) fn(i + j, ia + j * ia_step, ib + j * ib_step);
    // Advance the odometer over the outer dimensions.
    for (std::size_t d = rank - 1; d-- > 0;) {
      ia += g.sa[d];
      ib += g.sb[d];
      if (++idx[d] < g.out[d]) break;
      ia -= g.sa[d] * g.out[d];
      ib -= g.sb[d] * g.out[d];
      idx[d] = 0;
    }
  }
}

enum class Arith { add, sub, mul };

Var arith(const Var& a, const Var& b, Arith kind, const char* op) {
  const Tensor& av = checked_value(a, op, "a");
  const Tensor& bv = checked_value(b, op, "b");
  Broadcast g = broadcast_shapes(av.shape(), bv.shape(), op);
  Tensor out = Tensor::zeros(g.out, DType::f32);
  const float* pa = av.data<float>();
  const float* pb = bv.data<float>();
  float* po = out.data<float>();
  auto apply = [kind](float x, float y) {
    return kind == Arith::add ? x + y : kind == Arith::sub ? x - y : x * y;
  };
  if (g.same) {
    parallel_elements(out.numel(), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) po[i] = apply(pa[i], pb[i]);
    });
  } else {
    for_each_broadcast(g, [&](int64_t i, int64_t ia, int64_t ib) { po[i] = apply(pa[ia], pb[ib]); });
  }
  return make_result(op, out, {a, b}, [g, kind, av, bv](Node& self) {
    const float* go = self.grad.data<float>();
    Node* na = self.parents[0].get();
    Node* nb = self.parents[1].get();
    const float* pa = av.data<float>();
    const float* pb = bv.data<float>();
    // d(a+b) = (1, 1); d(a−b) = (1, −1); d(a·b) = (b, a).
    if (na && na->requires_grad) {
      float* ga = na->grad_buffer();
      if (g.same)
        parallel_elements(shape_numel(g.out), [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; ++i) ga[i] += kind == Arith::mul ? go[i] * pb[i] : go[i];
        });
      else
        for_each_broadcast(g, [&](int64_t i, int64_t ia, int64_t ib) {
          ga[ia] += kind == Arith::mul ? go[i] * pb[ib] : go[i];
        });
    }
    if (nb && nb->requires_grad) {
      float* gb = nb->grad_buffer();
      const float sgn = kind == Arith::sub ? -1.0f : 1.0f;
      if (g.same)
        parallel_elements(shape_numel(g.out), [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; ++i) gb[i] += kind == Arith::mul ? go[i] * pa[i] : sgn * go[i];
        });
      else
        for_each_broadcast(g, [&](int64_t i, int64_t ia, int64_t ib) {
          gb[ib] += kind == Arith::mul ? go[i] * pa[ia] : sgn * go[i];
        });
    }
  });
}

}  // namespace

Var add(const Var& a, const Var& b) { return arith(a, b, Arith::add, "add"); }
Var sub(const Var& a, const Var& b) { return arith(a, b, Arith::sub, "sub"); }
Var mul(const Var& a, const Var& b) { return arith(a, b, Arith::mul, "mul"); }

Var scale(const Var& a, float s) {
  const Tensor& av = checked_value(a, "scale", "a");
  Tensor out = detail::new_like(av);
  const float* pa = av.data<float>();
  float* po = out.data<float>();
  parallel_elements(av.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) po[i] = pa[i] * s;
  });
  return make_result("scale", out, {a}, [s](Node& self) {
    Node& p = *self.parents[0];
    float* g = p.grad_buffer();
    const float* go = self.grad.data<float>();
    parallel_elements(self.grad.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) g[i] += go[i] * s;
    });
  });
}

namespace {
Var reduce_sum(const Var& a, float factor, const char* op) {
  const Tensor& av = checked_value(a, op, "a");
  double acc = 0.0;  // double: the result should not depend on the summation order's rounding
  const float* pa = av.data<float>();
  for (int64_t i = 0; i < av.numel(); ++i) acc += pa[i];
  Tensor out = Tensor::zeros({1}, DType::f32);
  out.data<float>()[0] = static_cast<float>(acc * factor);
  return make_result(op, out, {a}, [factor](Node& self) {
    Node& p = *self.parents[0];
    float* g = p.grad_buffer();
    const float go = self.grad.data<float>()[0] * factor;
    for (int64_t i = 0; i < p.value.numel(); ++i) g[i] += go;
  });
}
}  // namespace

Var sum(const Var& a) { return reduce_sum(a, 1.0f, "sum"); }
Var mean(const Var& a) {
  const int64_t n = checked_value(a, "mean", "a").numel();
  LOWBIT_CHECK(n > 0, "mean: the tensor is empty");
  return reduce_sum(a, 1.0f / static_cast<float>(n), "mean");
}

Var matmul(const Var& a, const Var& b) {
  const Tensor& av = checked_value(a, "matmul", "a");
  const Tensor& bv = checked_value(b, "matmul", "b");
  LOWBIT_CHECK(av.dim() == 2 && bv.dim() == 2 && av.size(1) == bv.size(0), "matmul: cannot multiply ",
               av.describe(), " by ", bv.describe(), " (expected [M, K] · [K, N])");
  const int64_t m = av.size(0), k = av.size(1), n = bv.size(1);
  Tensor out = Tensor::zeros({m, n}, DType::f32);
  kernels::sgemm(false, false, m, n, k, 1.0f, av.data<float>(), k, bv.data<float>(), n, 0.0f, out.data<float>(), n);
  return make_result("matmul", out, {a, b}, [av, bv, m, n, k](Node& self) {
    const float* go = self.grad.data<float>();
    if (Node* na = self.parents[0].get(); na && na->requires_grad)  // dA = G · Bᵀ
      kernels::sgemm(false, true, m, k, n, 1.0f, go, n, bv.data<float>(), n, 1.0f, na->grad_buffer(), k);
    if (Node* nb = self.parents[1].get(); nb && nb->requires_grad)  // dB = Aᵀ · G
      kernels::sgemm(true, false, k, n, m, 1.0f, av.data<float>(), k, go, n, 1.0f, nb->grad_buffer(), n);
  });
}

namespace {

std::atomic<bool> g_binary_linear{true};
std::atomic<uint64_t> g_binary_linear_count{0};

// c > 0 when every value of x[n, in] is −c, 0 or +c (at least one nonzero) and the multiples
// of c up to in·c are exact in float32: c = m·2^e with m odd and in·m < 2^24. Then every
// partial sum of a ±1 dot product is exact, in any order, and the float GEMM gives the exact
// value, as the integer path does. Else c = 0 (also for NaN and infinities).
struct TernaryScale {
  float c = 0.0f;
  bool zeros = false;  // some x is 0
};
TernaryScale exact_ternary_scale(const float* x, int64_t n, int64_t in) {
  // Two vectorizable passes: the largest magnitude (16 partial maxima, so that the reduction
  // vectorizes), then, block by block so that a real-valued input stops early, whether every
  // magnitude is 0 or it.
  const int64_t count = n * in;
  float pm[16] = {};
  int64_t i = 0;
  for (; i + 16 <= count; i += 16)
    for (int u = 0; u < 16; ++u) {
      const float a = std::fabs(x[i + u]);
      pm[u] = a > pm[u] ? a : pm[u];  // NaN is skipped here
    }
  float c = 0.0f;
  for (; i < count; ++i) c = std::fabs(x[i]) > c ? std::fabs(x[i]) : c;
  for (float v : pm) c = v > c ? v : c;
  if (!(c > 0.0f) || !std::isfinite(c)) return {};
  int zeros = 0;
  for (int64_t b = 0; b < count; b += 4096) {
    const int64_t e = std::min(count, b + 4096);
    int bad = 0;
    for (int64_t k = b; k < e; ++k) {
      const float a = std::fabs(x[k]);
      zeros |= static_cast<int>(a == 0.0f);
      bad |= static_cast<int>(a != 0.0f) & static_cast<int>(a != c);  // NaN != c: bad
    }
    if (bad) return {};
  }
  int e = 0;
  auto m = static_cast<uint32_t>(std::ldexp(std::frexp(c, &e), 24));  // the 24-bit significand
  while ((m & 1U) == 0) m >>= 1;
  if (static_cast<uint64_t>(in) * m >= (uint64_t{1} << 24)) return {};
  return {c, zeros != 0};
}

// out[n, out_f] = x · Wᵀ for W = ±1 ([out_f, in]) and x in {−c, 0, +c}: with a = (x >= 0) and
// b = (x > 0) as ±1 planes, x = c·(a + b)/2, so out = c/2 · (dot(a, W) + dot(b, W)); one plane
// (out = c·dot(a, W)) when x has no zero.
void binary_linear_forward(const float* x, const float* w, int64_t n, int64_t in, int64_t out_f, TernaryScale t,
                           float* out) {
  const float c = t.c;
  const int64_t wpr = packed_words_per_row(in);
  auto wbits = make_aligned<uint64_t>(static_cast<std::size_t>(out_f * wpr));
  auto abits = make_aligned<uint64_t>(static_cast<std::size_t>(n * wpr));
  kernels::pack_signs(w, out_f, in, in, {wbits.get(), static_cast<std::size_t>(out_f * wpr)});
  kernels::pack_signs(x, n, in, in, {abits.get(), static_cast<std::size_t>(n * wpr)});
  const kernels::BitMatrix wm{{wbits.get(), static_cast<std::size_t>(out_f * wpr)}, out_f, in, wpr};
  std::vector<int32_t> acc(static_cast<std::size_t>(n * out_f));
  kernels::bgemm_s32({{abits.get(), static_cast<std::size_t>(n * wpr)}, n, in, wpr}, wm, acc, out_f);
  if (!t.zeros) {
    for (int64_t i = 0; i < n * out_f; ++i) out[i] = c * static_cast<float>(acc[static_cast<std::size_t>(i)]);
    return;
  }
  // b = (x > 0) = (x − c/2 >= 0), packed by the sign packer.
  auto shifted = make_aligned<float>(static_cast<std::size_t>(n * in));
  for (int64_t i = 0; i < n * in; ++i) shifted[static_cast<std::size_t>(i)] = x[i] - 0.5f * c;
  auto bbits = make_aligned<uint64_t>(static_cast<std::size_t>(n * wpr));
  kernels::pack_signs(shifted.get(), n, in, in, {bbits.get(), static_cast<std::size_t>(n * wpr)});
  std::vector<int32_t> acc_b(acc.size());
  kernels::bgemm_s32({{bbits.get(), static_cast<std::size_t>(n * wpr)}, n, in, wpr}, wm, acc_b, out_f);
  const float half = 0.5f * c;
  for (int64_t i = 0; i < n * out_f; ++i)
    out[i] = half * static_cast<float>(acc[static_cast<std::size_t>(i)] + acc_b[static_cast<std::size_t>(i)]);
}

}  // namespace

void set_binary_linear(bool enabled) { g_binary_linear.store(enabled, std::memory_order_relaxed); }
bool binary_linear_enabled() { return g_binary_linear.load(std::memory_order_relaxed); }
uint64_t binary_linear_count() { return g_binary_linear_count.load(std::memory_order_relaxed); }

Var linear(const Var& x, const Var& w, const Var& b) {
  const Tensor& xv = checked_value(x, "linear", "x");
  const Tensor& wv = checked_value(w, "linear", "w");
  LOWBIT_CHECK(xv.dim() == 2 && wv.dim() == 2 && xv.size(1) == wv.size(1), "linear: input ", xv.describe(),
               " does not match weight ", wv.describe(), " (expected x[N, in] and W[out, in])");
  const int64_t n = xv.size(0), in = xv.size(1), out_f = wv.size(0);
  if (b.defined())
    LOWBIT_CHECK(b.value().dim() == 1 && b.value().size(0) == out_f, "linear: bias ", b.value().describe(),
                 " does not match ", out_f, " outputs");
  Tensor out = Tensor::zeros({n, out_f}, DType::f32);
  float* po = out.data<float>();
  if (b.defined()) {
    // Start from the broadcast bias and let the GEMM accumulate onto it (beta = 1).
    const float* pb = b.data();
    for (int64_t r = 0; r < n; ++r) std::copy(pb, pb + out_f, po + r * out_f);
  }
  const TernaryScale t = (!b.defined() && std::string_view(w.op()) == "sign" && binary_linear_enabled())
                             ? exact_ternary_scale(xv.data<float>(), n, in)
                             : TernaryScale{};
  if (t.c > 0.0f) {
    binary_linear_forward(xv.data<float>(), wv.data<float>(), n, in, out_f, t, po);
    g_binary_linear_count.fetch_add(1, std::memory_order_relaxed);
  } else {
    kernels::sgemm(false, true, n, out_f, in, 1.0f, xv.data<float>(), in, wv.data<float>(), in,
                   b.defined() ? 1.0f : 0.0f, po, out_f);
  }
  return make_result("linear", out, {x, w, b}, [xv, wv, n, in, out_f](Node& self) {
    const float* go = self.grad.data<float>();
    bool fresh = false;  // a fresh gradient buffer is overwritten (beta = 0), else accumulated
    if (Node* nx = self.parents[0].get(); nx && nx->requires_grad) {  // dx = G · W
      float* gx = nx->grad_buffer(&fresh);
      kernels::sgemm(false, false, n, in, out_f, 1.0f, go, out_f, wv.data<float>(), in, fresh ? 0.0f : 1.0f, gx, in);
    }
    if (Node* nw = self.parents[1].get(); nw && nw->requires_grad) {  // dW = Gᵀ · x
      float* gw = nw->grad_buffer(&fresh);
      kernels::sgemm(true, false, out_f, in, n, 1.0f, go, out_f, xv.data<float>(), in, fresh ? 0.0f : 1.0f, gw, in);
    }
    if (Node* nb = self.parents[2].get(); nb && nb->requires_grad) {
      float* gb = nb->grad_buffer();
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < out_f; ++c) gb[c] += go[r * out_f + c];
    }
  });
}

Var reshape(const Var& x, const Shape& shape) {
  const Tensor& xv = checked_value(x, "reshape", "x");
  LOWBIT_CHECK(shape_numel(shape) == xv.numel(), "reshape: cannot view ", xv.describe(), " as ", shape_str(shape),
               " (", shape_numel(shape), " elements)");
  // The value shares storage: values are never modified after an op produced them.
  return make_result("reshape", xv.reshape(shape), {x}, [](Node& self) {
    detail::add_to_grad(*self.parents[0], cspan(self.grad));
  });
}

Var flatten(const Var& x) {
  const Tensor& xv = checked_value(x, "flatten", "x");
  LOWBIT_CHECK(xv.dim() >= 1, "flatten: expected a batch dimension, got ", xv.describe());
  const int64_t n = xv.size(0);
  return reshape(x, {n, n == 0 ? 0 : xv.numel() / n});
}

namespace {
void check_labels(const Tensor& v, std::span<const int32_t> labels, const char* op) {
  LOWBIT_CHECK(v.dim() == 2, op, ": expected scores [N, K], got ", v.describe());
  LOWBIT_CHECK(static_cast<int64_t>(labels.size()) == v.size(0), op, ": ", labels.size(), " labels for a batch of ",
               v.size(0));
  LOWBIT_CHECK(v.size(0) > 0, op, ": the batch is empty");
  for (std::size_t i = 0; i < labels.size(); ++i)
    LOWBIT_CHECK(labels[i] >= 0 && labels[i] < v.size(1), op, ": label[", i, "] = ", labels[i],
                 " is outside [0, ", v.size(1), ")");
}
}  // namespace

Var softmax_cross_entropy(const Var& logits, std::span<const int32_t> labels) {
  const Tensor& zv = checked_value(logits, "softmax_cross_entropy", "logits");
  check_labels(zv, labels, "softmax_cross_entropy");
  const int64_t n = zv.size(0), k = zv.size(1);
  Tensor probs = detail::new_like(zv);
  const float* z = zv.data<float>();
  float* p = probs.data<float>();
  // Rows are independent: split them over the pool (a language model's [T·B, vocabulary]
  // logits are millions of elements); each row's term is summed in row order afterwards, so the
  // loss does not depend on the thread count.
  std::vector<double> row_loss(static_cast<std::size_t>(n));
  const int64_t row_grain = std::max<int64_t>(1, detail::kElementGrain / std::max<int64_t>(k, 1));
  parallel_for(0, n, row_grain, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* zr = z + r * k;
      float* pr = p + r * k;
      // The maximum (the shift for a stable exp) over 8 interleaved partial maxima: the same
      // value as std::max_element, without its one-element-at-a-time dependency chain.
      float pm[8];
      std::fill(pm, pm + 8, zr[0]);
      int64_t m8 = 0;
      for (; m8 + 8 <= k; m8 += 8)
        for (int u = 0; u < 8; ++u) pm[u] = zr[m8 + u] > pm[u] ? zr[m8 + u] : pm[u];
      float mx = *std::max_element(pm, pm + 8);
      for (; m8 < k; ++m8) mx = zr[m8] > mx ? zr[m8] : mx;
      kernels::exp_f32(zr, -mx, k, pr);  // vectorized; within 2 ulp of std::exp
      // The sum in double over 8 interleaved partial sums (a fixed order, so the result does not
      // depend on the machine), which the compiler vectorizes.
      double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t c8 = 0;
      for (; c8 + 8 <= k; c8 += 8)
        for (int u = 0; u < 8; ++u) part[u] += pr[c8 + u];
      double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; c8 < k; ++c8) s += pr[c8];
      for (int64_t c = 0; c < k; ++c) pr[c] = static_cast<float>(pr[c] / s);
      row_loss[static_cast<std::size_t>(r)] = std::log(s) + mx - zr[labels[r]];
    }
  });
  double loss = 0.0;
  for (double l : row_loss) loss += l;
  Tensor out = Tensor::zeros({1}, DType::f32);
  out.data<float>()[0] = static_cast<float>(loss / static_cast<double>(n));
  std::vector<int32_t> lab(labels.begin(), labels.end());
  return make_result("softmax_cross_entropy", out, {logits}, [probs, lab, n, k](Node& self) {
    // d/dz mean_r(−log p[label]) = (p − onehot) / N.
    float* g = self.parents[0]->grad_buffer();
    const float* p = probs.data<float>();
    const float s = self.grad.data<float>()[0] / static_cast<float>(n);
    const int64_t row_grain = std::max<int64_t>(1, detail::kElementGrain / std::max<int64_t>(k, 1));
    parallel_for(0, n, row_grain, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        for (int64_t c = 0; c < k; ++c) g[r * k + c] += s * p[r * k + c];
        g[r * k + lab[static_cast<std::size_t>(r)]] -= s;
      }
    });
  });
}

Var squared_hinge(const Var& y, std::span<const int32_t> labels) {
  const Tensor& yv = checked_value(y, "squared_hinge", "y");
  check_labels(yv, labels, "squared_hinge");
  const int64_t n = yv.size(0), k = yv.size(1);
  const float* py = yv.data<float>();
  double loss = 0.0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const float t = c == labels[r] ? 1.0f : -1.0f;
      const double m = std::max(0.0f, 1.0f - t * py[r * k + c]);
      loss += m * m;
    }
  Tensor out = Tensor::zeros({1}, DType::f32);
  const double count = static_cast<double>(n * k);
  out.data<float>()[0] = static_cast<float>(loss / count);
  std::vector<int32_t> lab(labels.begin(), labels.end());
  return make_result("squared_hinge", out, {y}, [yv, lab, n, k](Node& self) {
    // d/dy max(0, 1 − t·y)² = −2·t·max(0, 1 − t·y), averaged over N·K.
    float* g = self.parents[0]->grad_buffer();
    const float* py = yv.data<float>();
    const float s = self.grad.data<float>()[0] / static_cast<float>(n * k);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        const float t = c == lab[static_cast<std::size_t>(r)] ? 1.0f : -1.0f;
        const float m = std::max(0.0f, 1.0f - t * py[r * k + c]);
        g[r * k + c] += s * (-2.0f * t * m);
      }
  });
}

}  // namespace lowbit::autograd
