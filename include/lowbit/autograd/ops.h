// Differentiable ops on Vars. Each op computes its forward value eagerly and records a backward
// closure (var.h). Shapes are checked; a mismatch throws lowbit::Error naming both shapes.
//
// Layouts: activations are row-major [N, features] or NCHW [N, C, H, W]; dense weights are
// [out, in] (PyTorch's layout, so y = x·Wᵀ + b); conv weights are [O, C, kh, kw].
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "lowbit/autograd/var.h"
#include "lowbit/quant/affine.h"
#include "lowbit/quant/fixed_q.h"

namespace lowbit::autograd {

// ---- elementwise arithmetic -----------------------------------------------------------------
// NumPy-style broadcasting of one operand to the other's shape (right-aligned; a dimension of
// size 1 or a missing leading dimension broadcasts). The common cases: same shape; a per-feature
// vector [F] against [N, F]; a per-channel [C, 1, 1] against [N, C, H, W]. The gradient of a
// broadcast operand is summed over the broadcast dimensions.
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var scale(const Var& a, float s);  // a · s
Var sum(const Var& a);             // scalar [1]
Var mean(const Var& a);            // scalar [1]
inline Var operator+(const Var& a, const Var& b) { return add(a, b); }
inline Var operator-(const Var& a, const Var& b) { return sub(a, b); }
inline Var operator*(const Var& a, const Var& b) { return mul(a, b); }
inline Var operator*(const Var& a, float s) { return scale(a, s); }

// ---- products --------------------------------------------------------------------------------
Var matmul(const Var& a, const Var& b);  // [M, K] · [K, N] -> [M, N]
// x[N, in] · W[out, in]ᵀ + b[out]; `b` may be undefined (no bias). All three GEMMs (forward,
// input gradient, weight gradient) go through kernels::sgemm; gradients that nobody needs
// (e.g. of the data input) are not computed. Binary layers: when W is the output of sign()
// (exactly ±1), there is no bias, and every x is −c, 0 or +c for one c whose multiples the
// float GEMM sums exactly (c = m·2^e, m odd, in·m < 2^24: a sign() output, also after dropout
// with p = 1/2 or 1/5, c = 2 or 1.25), the forward product runs on the XNOR/popcount kernels
// instead (x as two ±1 bit planes, zero = their mean); the values are identical to the float
// GEMM's, which is exact on such operands.
Var linear(const Var& x, const Var& w, const Var& b);
// Turns the binary forward path of linear() on (the default) or off, process-wide (tests and
// timing comparisons).
void set_binary_linear(bool enabled);
bool binary_linear_enabled();
// Forward products linear() has run on the binary path so far, process-wide.
uint64_t binary_linear_count();

// ---- shapes ----------------------------------------------------------------------------------
Var reshape(const Var& x, const Shape& shape);  // same element count
Var flatten(const Var& x);                       // [N, ...] -> [N, prod(...)]

// ---- convolution and pooling (NCHW) ---------------------------------------------------------
// x[N, C, H, W] ⊛ w[O, C, kh, kw] (+ b[O]) with zero padding; output [N, O, OH, OW],
// OH = (H + 2·padding − kh) / stride + 1. im2col per image, then one sgemm.
Var conv2d(const Var& x, const Var& w, const Var& b, int stride = 1, int padding = 0);
// Max over k×k windows with the given stride (no padding; floor). The gradient goes to the
// first maximum of each window.
Var max_pool2d(const Var& x, int k, int stride);

// ---- normalization ---------------------------------------------------------------------------
// Batch norm over [N, C] or [N, C, H, W] (statistics per C over N, or N·H·W). gamma, beta: [C].
// Training: batch mean and biased variance normalize; running_mean/running_var (f32 [C], updated
// in place) move by r ← (1 − momentum)·r + momentum·batch, with the unbiased batch variance
// (Torch7/PyTorch). Eval: the running statistics normalize and are left alone.
Var batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean, Tensor running_var,
               bool training, float momentum, float eps);
// Shift-based batch norm as in the Torch7 BNN code (qnn.md §6): exact mean, inverse std
// 1/sqrt(mean(c²) + eps) rounded to a power of two, γ rounded to a power of two, β exact:
//   y = c · AP2(inv_std) · AP2(γ) + β,  c = x − mean.
// The buffer `running_inv_std` is an EMA of the exact inverse std (Torch7's `running_std`);
// eval uses (x − running_mean) · AP2(running_inv_std) · AP2(γ) + β. The backward is the standard
// BN formula with c, inv_std and γ replaced by their AP2 values (not the exact derivative of the
// rounded forward, whose derivative through AP2 is 0 almost everywhere):
//   dx = AP2(γ)·s·(g − mean(g) − â·mean(g·â)),  â = AP2(c)·s,  s = AP2(inv_std)
//   dγ = Σ g·â,  dβ = Σ g.
Var shift_batch_norm(const Var& x, const Var& gamma, const Var& beta, Tensor running_mean,
                     Tensor running_inv_std, bool training, float momentum, float eps);

// ---- activations and quantizers with straight-through gradients -----------------------------
Var hardtanh(const Var& x, float lo = -1.0f, float hi = 1.0f);
// sign with sign(0) = +1 (quant::binarize); backward g·1{|x| <= window} (qnn.md §1).
Var sign_ste(const Var& x, float window = 1.0f);
// +1 with probability hard_sigmoid(x) (quant::binarize_stochastic), same STE backward. The
// result depends on (seed, element index) only.
Var sign_stochastic(const Var& x, uint64_t seed, float window = 1.0f);

// Any elementwise quantizer with its straight-through backward (which must write grad_in from
// x and grad_out). Factories cover the quantizers of quant/.
struct Quantizer {
  std::string name;
  std::function<void(std::span<const float> x, std::span<float> out)> forward;
  std::function<void(std::span<const float> x, std::span<const float> grad_out, std::span<float> grad_in)> backward;
  // Where pass_lo <= pass_hi, `backward` passes the gradient unchanged for x in [pass_lo, pass_hi]
  // (a clipped straight-through estimator); fake_quantize then skips it when every x is there.
  float pass_lo = 1.0f, pass_hi = -1.0f;

  static Quantizer binary(float window = 1.0f);
  static Quantizer weights_kbit(int bits, float clip = 1.0f);
  static Quantizer activations_kbit(int bits, float clip = 1.0f);
  static Quantizer linear(float step, float min_v, float max_v);
  static Quantizer log(float min_v, float max_v);
  static Quantizer fixed(quant::FixedFormat f, quant::FixedRounding r = quant::FixedRounding::truncate,
                         bool clip_mask = false);
  static Quantizer affine(const quant::QuantParams& p);
};
Var fake_quantize(const Var& x, const Quantizer& q);
// fake_quantize for a layer's latent weights, which are requantized every step: the value is
// written into `value_buf` and the gradient arriving at the result is gathered in `grad_buf`
// (both f32 with w's shape, owned by the layer and reused), which saves two weight-sized
// allocations per step. The result's value is overwritten by the layer's next forward pass.
Var fake_quantize_into(const Var& w, const Quantizer& q, Tensor value_buf, Tensor grad_buf);

// Inverted dropout: training zeroes each element with probability p (draw i = uniform01(seed, i))
// and scales survivors by 1/(1 − p); eval (or p = 0) returns x itself. p in [0, 1).
Var dropout(const Var& x, float p, uint64_t seed, bool training);

// Identity forward; the gradient flowing back through it is quantized to `bits` bits with
// quant::quantize_gradient (QNN's 6-bit gradients, qnn.md §3.1: placed on a layer's output s,
// it quantizes g_s before g_W = g_sᵀ·a and the propagated g_a are formed).
Var quantize_grad(const Var& x, int bits, uint64_t seed);

// ---- losses (scalar results) -----------------------------------------------------------------
// mean over the batch of −log softmax(logits)[label]; logits [N, K], labels in [0, K).
Var softmax_cross_entropy(const Var& logits, std::span<const int32_t> labels);
// mean over N·K of max(0, 1 − t·y)², t = +1 for the label and −1 elsewhere (BNN's L2-SVM output).
Var squared_hinge(const Var& y, std::span<const int32_t> labels);

}  // namespace lowbit::autograd
