// Folding batch norm and activation quantizers into integer epilogues (runtime/fold.h).
#include "lowbit/runtime/fold.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lowbit/core/error.h"
#include "lowbit/kernels/bgemm.h"

namespace lowbit::runtime {
namespace {

constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kMax = std::numeric_limits<int32_t>::max();

void check_affine(const ChannelAffine& y, const char* what) {
  LOWBIT_CHECK(y.alpha.size() == y.beta.size(), what, ": ", y.alpha.size(), " alphas but ", y.beta.size(), " betas");
}

}  // namespace

AccMap bits_acc_map(double weight_step, int64_t channels) {
  LOWBIT_CHECK(weight_step > 0 && std::isfinite(weight_step), "bits_acc_map: weight_step=", weight_step,
               " (expected > 0: max-pooling accumulators needs an increasing map)");
  return AccMap{weight_step, std::vector<double>(static_cast<std::size_t>(channels), 0.0)};
}

AccMap codes_acc_map(std::span<const int8_t> weight, int64_t channels, double weight_step, double input_step,
                     double input_offset, int input_zero2) {
  LOWBIT_CHECK(channels > 0 && weight.size() % static_cast<std::size_t>(channels) == 0, "codes_acc_map: ",
               weight.size(), " weights do not split into ", channels, " channels");
  LOWBIT_CHECK(weight_step > 0 && input_step > 0 && std::isfinite(weight_step * input_step),
               "codes_acc_map: weight_step=", weight_step, ", input_step=", input_step, " (expected > 0)");
  const std::size_t k = weight.size() / static_cast<std::size_t>(channels);
  AccMap m;
  m.scale = weight_step * input_step / 2.0;
  const double per_code = weight_step * (input_offset + input_step * input_zero2 / 2.0);
  for (int64_t c = 0; c < channels; ++c) {
    int64_t sum = 0;
    for (std::size_t i = 0; i < k; ++i) sum += weight[static_cast<std::size_t>(c) * k + i];
    m.bias.push_back(per_code * static_cast<double>(sum));
  }
  return m;
}

int input_zero2_for(double step, double offset) {
  LOWBIT_CHECK(step > 0 && std::isfinite(step) && std::isfinite(offset), "input_zero2_for: step=", step,
               ", offset=", offset, " (expected step > 0)");
  const double z2 = std::round(-2.0 * offset / step);
  LOWBIT_CHECK(z2 >= 0 && z2 <= 510, "input_zero2_for: real zero lies at code ", -offset / step,
               ", outside 0..255");
  return static_cast<int>(z2);
}

ChannelAffine fold_batch_norm(const AccMap& z, std::span<const double> gamma, std::span<const double> beta,
                              std::span<const double> mean, std::span<const double> var, double eps) {
  const std::size_t c = gamma.size();
  LOWBIT_CHECK(beta.size() == c && mean.size() == c && var.size() == c && (z.bias.empty() || z.bias.size() == c),
               "fold_batch_norm: gamma, beta, mean, var and the linear bias must have the same length (", c, ")");
  ChannelAffine y;
  for (std::size_t i = 0; i < c; ++i) {
    LOWBIT_CHECK(var[i] + eps > 0, "fold_batch_norm: channel ", i, ": var + eps = ", var[i] + eps,
                 " (expected > 0)");
    const double inv = gamma[i] / std::sqrt(var[i] + eps);
    const double b = z.bias.empty() ? 0.0 : z.bias[i];
    y.alpha.push_back(inv * z.scale);
    y.beta.push_back(inv * (b - mean[i]) + beta[i]);
  }
  return y;
}

ChannelAffine identity_affine(const AccMap& z, int64_t channels) {
  ChannelAffine y;
  for (int64_t i = 0; i < channels; ++i) {
    y.alpha.push_back(z.scale);
    y.beta.push_back(z.bias.empty() ? 0.0 : z.bias[static_cast<std::size_t>(i)]);
  }
  return y;
}

SignEpilogue sign_epilogue(const ChannelAffine& y) {
  check_affine(y, "sign_epilogue");
  SignEpilogue e;
  for (std::size_t i = 0; i < y.alpha.size(); ++i) {
    const kernels::SignThreshold t = kernels::fold_bn_sign(y.alpha[i], y.beta[i]);
    e.threshold.push_back(t.threshold);
    e.flip.push_back(t.flip);
  }
  return e;
}

KbitEpilogue kbit_epilogue(const ChannelAffine& y, int bits, std::span<const double> levels) {
  check_affine(y, "kbit_epilogue");
  LOWBIT_CHECK(bits >= 1 && bits <= 8, "kbit_epilogue: bits=", bits, " (expected 1..8)");
  const std::size_t l = (std::size_t{1} << bits) - 1;
  LOWBIT_CHECK(levels.size() == l, "kbit_epilogue: ", levels.size(), " levels for ", bits, " bits (expected ", l, ")");
  for (std::size_t j = 1; j < l; ++j)
    LOWBIT_CHECK(levels[j - 1] <= levels[j], "kbit_epilogue: levels must be ascending (", levels[j - 1], " > ",
                 levels[j], ")");
  KbitEpilogue e;
  e.bits = bits;
  for (std::size_t i = 0; i < y.alpha.size(); ++i) {
    const double a = y.alpha[i];
    const uint8_t flip = a < 0 ? 1 : 0;
    std::vector<int32_t> row;
    for (std::size_t j = 0; j < l; ++j) {
      // y >= level  <=>  a·acc + (beta − level) >= 0, the sign fold of a shifted beta.
      const kernels::SignThreshold t = kernels::fold_bn_sign(a, y.beta[i] - levels[j]);
      const bool constant = t.threshold == kMin;  // fold_bn_sign's encoding of always / never
      if (!constant) {
        row.push_back(t.threshold);
        continue;
      }
      const bool always = t.flip == 0;
      // Re-express the constant in this channel's direction: with flip 0 the test is
      // acc >= T, with flip 1 it is acc < T; |acc| < INT32_MAX is guaranteed by the runtime.
      if (flip == 0) row.push_back(always ? kMin : kMax);
      else row.push_back(always ? kMax : kMin);
    }
    // The count does not depend on the order; the runtime wants rows sorted (a falling
    // channel produces them descending).
    std::sort(row.begin(), row.end());
    e.threshold.insert(e.threshold.end(), row.begin(), row.end());
    e.flip.push_back(flip);
  }
  return e;
}

std::vector<double> kbit_activation_levels(int bits, double clip) {
  LOWBIT_CHECK(bits >= 1 && bits <= 8, "kbit_activation_levels: bits=", bits, " (expected 1..8)");
  LOWBIT_CHECK(clip > 0 && std::isfinite(clip), "kbit_activation_levels: clip=", clip, " (expected > 0)");
  const int l = (1 << bits) - 1;
  std::vector<double> out;
  for (int j = 1; j <= l; ++j) out.push_back(clip * (j - 0.5) / l);
  return out;
}

AffineEpilogue affine_epilogue(const ChannelAffine& y) {
  check_affine(y, "affine_epilogue");
  AffineEpilogue e;
  for (std::size_t i = 0; i < y.alpha.size(); ++i) {
    e.scale.push_back(static_cast<float>(y.alpha[i]));
    e.bias.push_back(static_cast<float>(y.beta[i]));
  }
  return e;
}

}  // namespace lowbit::runtime
