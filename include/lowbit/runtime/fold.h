// Helpers for an exporter: from a trained layer's batch norm and quantizer to the integer
// epilogues of runtime/network.h.
//
// The pipeline for one channel c is: the integer accumulator acc (network.h), the training
// graph's linear output z = acc_scale · acc + acc_bias[c], batch norm at inference
//   y = gamma · (z − mean) / sqrt(var + eps) + beta,
// then sign(y) (sign(0) = +1; hard tanh before it changes nothing) or a k-bit activation code,
// or y itself as a logit. Everything from acc to y is one affine map per channel, y = alpha·acc
// + beta (ChannelAffine), and the epilogues are that map turned into integer thresholds.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/runtime/network.h"

namespace lowbit::runtime {

struct ChannelAffine {
  std::vector<double> alpha;  // y = alpha[c] · acc + beta[c]
  std::vector<double> beta;
};

// Linear output to accumulator, z = acc_scale · acc + acc_bias[c]:
//   bits input:  acc_scale = weight_step, acc_bias = layer bias (usually none)
//   codes input: x_real = x · input_step + input_offset, w_real = code · weight_step; then
//                acc_scale = weight_step · input_step / 2 and
//                acc_bias[c] = weight_step · (input_offset + input_step · z2 / 2) · Σ_k code[c, k]
//                (zero when z2/2 is exactly the code of real 0, the case where padding is exact).
struct AccMap {
  double scale = 1.0;
  std::vector<double> bias;  // [C], or empty for zeros
};
AccMap bits_acc_map(double weight_step, int64_t channels);
AccMap codes_acc_map(std::span<const int8_t> weight, int64_t channels, double weight_step, double input_step,
                     double input_offset, int input_zero2);
// z2 for inputs x_real = x · step + offset: round(−2·offset / step), checked to lie in 0..510.
// (2p/255 − 1 gives 255; p/255 and k-bit activation codes give 0.)
int input_zero2_for(double step, double offset);

// Batch norm (vectors of C entries) after the linear map: alpha = gamma·acc_scale/σ,
// beta = gamma·(acc_bias − mean)/σ + beta, σ = sqrt(var + eps). Throws on non-positive var+eps.
ChannelAffine fold_batch_norm(const AccMap& z, std::span<const double> gamma, std::span<const double> beta,
                              std::span<const double> mean, std::span<const double> var, double eps);
// No batch norm: y = z.
ChannelAffine identity_affine(const AccMap& z, int64_t channels);

// out bit = 1 (+1) exactly when alpha·acc + beta >= 0 (evaluated in double).
SignEpilogue sign_epilogue(const ChannelAffine& y);
// code = #{ j : alpha·acc + beta >= levels[j] } for `levels` ascending (2^bits − 1 of them);
// a negative alpha (negative BN scale) gives flip = 1. Thresholds outside the reachable
// accumulator range saturate to INT32_MIN / INT32_MAX, which the runtime's range check keeps
// unreachable.
KbitEpilogue kbit_epilogue(const ChannelAffine& y, int bits, std::span<const double> levels);
// The switching points of quant::activations_kbit_to_codes (levels clip·j/L, round half up):
// levels[j−1] = clip · (j − 1/2) / L, j = 1..L, L = 2^bits − 1.
std::vector<double> kbit_activation_levels(int bits, double clip);
// logit = float(alpha) · acc + float(beta).
AffineEpilogue affine_epilogue(const ChannelAffine& y);

}  // namespace lowbit::runtime
