// nn::Sequential -> runtime::Network (runtime/export.h).
#include "lowbit/runtime/export.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/nn/layers.h"
#include "lowbit/quant/kbit.h"
#include "lowbit/runtime/fold.h"

namespace lowbit::runtime {
namespace {

// What the next stage reads: the runtime's bits (±1) or unsigned codes, with the real value
// the training graph gave them: x_real = code·step + offset (codes), or ±1 (bits).
struct Activation {
  bool bits = false;
  double step = 1.0, offset = 0.0;
  int z2 = 0;
  // Spatial layout as the training graph holds it: channels, height, width (flat: c = features).
  int64_t c = 1, h = 1, w = 1;
  bool spatial = false;
};

std::string sequence_text(const nn::Sequential& m, std::size_t from, std::size_t to) {
  std::string s;
  for (std::size_t i = from; i < to && i < m.size(); ++i) s += (s.empty() ? "" : " -> ") + m.at(i).kind();
  return s;
}

[[noreturn]] void unsupported(const nn::Sequential& m, std::size_t at, const std::string& why) {
  fail("export: unsupported layer sequence at layer ", at, " (", at < m.size() ? m.at(at).kind() : "end", "): ", why,
       "; the network is: ", sequence_text(m, 0, m.size()),
       ". Supported: groups of [dropout] binary_/kbit_dense|conv2d (or first_layer_8bit) [max_pool2d] "
       "[batch_norm] [hardtanh] sign|quant_act, the last group a dense layer with no activation");
}

std::vector<double> to_doubles(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<double>(p, p + t.numel());
}

// The linear layer of a group, whichever class holds it.
struct Linear {
  const nn::Module* module = nullptr;
  const nn::DenseBase* dense = nullptr;
  const nn::ConvBase* conv = nullptr;
  bool first8 = false;
};

Linear linear_of(const nn::Module& m) {
  Linear l{&m, m.as<nn::DenseBase>(), m.as<nn::ConvBase>(), false};
  if (const auto* f = m.as<nn::FirstLayer8bit>()) {
    l.dense = f->inner().as<nn::DenseBase>();
    l.conv = f->inner().as<nn::ConvBase>();
    l.first8 = true;
  }
  return l;
}

// Integer weight codes and their step: binary ±1 (step 1); k-bit levels (2j − L)/L as the odd
// integers 2j − L (step 1/L).
void weight_codes(const Tensor& effective, nn::WeightMode mode, int bits, std::vector<int8_t>& codes, double& step,
                  const nn::Sequential& m, std::size_t at) {
  const float* w = effective.data<float>();
  codes.resize(static_cast<std::size_t>(effective.numel()));
  if (mode == nn::WeightMode::binary) {
    step = 1.0;
    for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = w[i] >= 0.0f ? 1 : -1;
    return;
  }
  if (mode != nn::WeightMode::kbit) unsupported(m, at, "float weights have no integer form");
  if (bits > 7) unsupported(m, at, "k-bit weights above 7 bits do not fit the runtime's int8 codes");
  const int levels = (1 << bits) - 1;
  step = 1.0 / levels;
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<int8_t>(std::lround(w[i] * levels));
}

}  // namespace

Network export_network(const nn::Sequential& m, const InputSpec& input) {
  LOWBIT_CHECK(shape_numel(m.input_shape()) == input.features(), "export: the model takes ",
               shape_str(m.input_shape()), " (", shape_numel(m.input_shape()), " values) but the input is ",
               input.height, "x", input.width, "x", input.channels, " (", input.features(), " values)");
  Network net(input);
  Activation a;
  a.step = input.scale;
  a.offset = input.offset;
  a.c = input.channels;
  a.h = input.height;
  a.w = input.width;
  a.spatial = m.input_shape().size() >= 2;
  {
    // Where the runtime puts real zero; exact for the scalings the recipes use, so conv padding
    // (which adds nothing to the accumulator) matches the training graph's zero padding.
    const double z = -2.0 * a.offset / a.step;
    a.z2 = static_cast<int>(std::lround(z));
    if (!(z >= 0 && z <= 510))
      fail("export: input normalisation pixel*", a.step, " + ", a.offset, " puts real 0 outside the pixel range");
  }

  std::size_t i = 0;
  const std::size_t n = m.size();
  auto skip_dropout = [&] {
    while (i < n && m.at(i).kind() == "dropout") ++i;
  };
  bool done = false;
  while (true) {
    skip_dropout();
    if (i >= n) break;
    if (done) unsupported(m, i, "nothing may follow the output layer");
    const std::size_t group_start = i;
    bool flattened = false;
    if (m.at(i).kind() == "flatten") {
      flattened = true;
      ++i;
      skip_dropout();
    }
    if (i >= n) unsupported(m, i, "a flatten at the end");
    const Linear lin = linear_of(m.at(i));
    if (!lin.dense && !lin.conv) unsupported(m, i, "expected a binary or k-bit dense/conv layer");
    if (lin.conv && flattened) unsupported(m, i, "a convolution after flatten");
    const std::size_t lin_at = i++;
    const nn::WeightMode mode = lin.dense ? lin.dense->weight_mode() : lin.conv->weight_mode();
    const int bits = lin.dense ? lin.dense->bits() : lin.conv->bits();
    std::vector<int8_t> wcodes;
    double wstep = 1.0;
    weight_codes(lin.dense ? lin.dense->effective_weight() : lin.conv->effective_weight(), mode, bits, wcodes, wstep, m,
                 lin_at);
    if (a.bits)
      for (int8_t v : wcodes)
        if (v != 1 && v != -1) unsupported(m, lin_at, "k-bit weights (more than 1 bit) on binary activations");
    if (lin.first8) {
      // The 8-bit first layer rounds its input to (2u − 255)/255; the runtime's pixels are those
      // u only when the training graph saw 2p/255 − 1.
      if (net.num_layers() != 0 || std::abs(a.step - 2.0 / 255.0) > 1e-12 || std::abs(a.offset + 1.0) > 1e-12)
        unsupported(m, lin_at, "first_layer_8bit needs the first position and inputs normalised to [-1,1]");
    }

    // Layout of the weights for the runtime, and the output shape.
    int64_t out_c = 0;
    std::optional<MaxPool> pool;
    if (lin.conv) {
      const auto* c = lin.conv;
      if (!a.spatial) unsupported(m, lin_at, "a convolution on a flat input");
      const int64_t o = c->out_channels(), ci = c->in_channels(), k = c->kernel();
      std::vector<int8_t> hwc(wcodes.size());
      for (int64_t oo = 0; oo < o; ++oo)
        for (int64_t cc = 0; cc < ci; ++cc)
          for (int64_t y = 0; y < k; ++y)
            for (int64_t x = 0; x < k; ++x)
              hwc[static_cast<std::size_t>(((oo * k + y) * k + x) * ci + cc)] =
                  wcodes[static_cast<std::size_t>(((oo * ci + cc) * k + y) * k + x)];
      wcodes.swap(hwc);
      out_c = o;
      if (!a.bits && c->padding() > 0 && std::abs(-2.0 * a.offset / a.step - a.z2) > 1e-9)
        unsupported(m, lin_at, "zero padding on an input whose real zero is not a code");
      a.h = (a.h + 2 * c->padding() - k) / c->stride() + 1;
      a.w = (a.w + 2 * c->padding() - k) / c->stride() + 1;
    } else {
      const int64_t o = lin.dense->out_features(), in = lin.dense->in_features();
      if (a.spatial && a.c > 1) {
        // The training graph flattens (c, h, w); the runtime reads (h, w, c).
        std::vector<int8_t> hwc(wcodes.size());
        const int64_t hw = a.h * a.w;
        for (int64_t oo = 0; oo < o; ++oo)
          for (int64_t cc = 0; cc < a.c; ++cc)
            for (int64_t p = 0; p < hw; ++p)
              hwc[static_cast<std::size_t>(oo * in + p * a.c + cc)] = wcodes[static_cast<std::size_t>(oo * in + cc * hw + p)];
        wcodes.swap(hwc);
      }
      out_c = o;
    }
    if (i < n && m.at(i).kind() == "max_pool2d") {
      if (!lin.conv) unsupported(m, i, "max-pooling after a dense layer");
      const auto* p = m.at(i).as<nn::MaxPool2d>();
      pool = MaxPool{p->size(), p->stride()};
      a.h = (a.h - p->size()) / p->stride() + 1;
      a.w = (a.w - p->size()) / p->stride() + 1;
      ++i;
    }

    // Accumulator -> linear output z, including the layer's bias.
    AccMap z = a.bits ? bits_acc_map(wstep, out_c) : codes_acc_map(wcodes, out_c, wstep, a.step, a.offset, a.z2);
    const auto& bias = lin.dense ? lin.dense->bias() : lin.conv->bias();
    if (bias) {
      if (z.bias.empty()) z.bias.assign(static_cast<std::size_t>(out_c), 0.0);
      for (int64_t c = 0; c < out_c; ++c) z.bias[static_cast<std::size_t>(c)] += bias->value.data<float>()[c];
    }

    // Batch norm at inference.
    ChannelAffine y;
    if (i < n && m.at(i).kind() == "batch_norm") {
      const auto* bn = m.at(i).as<nn::BatchNorm>();
      const std::vector<double> gamma = to_doubles(bn->gamma()->value), beta = to_doubles(bn->beta()->value),
                                mean = to_doubles(bn->running_mean());
      if (!bn->shift_based()) {
        y = fold_batch_norm(z, gamma, beta, mean, to_doubles(bn->running_var()), bn->eps());
      } else {
        // (z − mean)·AP2(running_inv_std)·AP2(γ) + β (autograd::shift_batch_norm in eval).
        const std::vector<double> inv = to_doubles(bn->running_inv_std());
        for (int64_t c = 0; c < out_c; ++c) {
          const auto k = static_cast<std::size_t>(c);
          const double s = static_cast<double>(quant::ap2(static_cast<float>(inv[k]))) *
                           static_cast<double>(quant::ap2(static_cast<float>(gamma[k])));
          y.alpha.push_back(s * z.scale);
          y.beta.push_back(s * ((z.bias.empty() ? 0.0 : z.bias[k]) - mean[k]) + beta[k]);
        }
      }
      ++i;
    } else {
      y = identity_affine(z, out_c);
    }
    if (i < n && m.at(i).kind() == "hardtanh") ++i;  // does not move sign or the k-bit levels

    Epilogue epi;
    Activation next;
    next.c = out_c;
    next.h = lin.conv ? a.h : 1;
    next.w = lin.conv ? a.w : 1;
    next.spatial = lin.conv != nullptr;
    if (i < n && m.at(i).kind() == "sign") {
      epi = sign_epilogue(y);
      next.bits = true;
      ++i;
    } else if (i < n && m.at(i).kind() == "quant_act") {
      const auto* q = m.at(i).as<nn::QuantAct>();
      const int l = (1 << q->bits()) - 1;
      if (q->is_signed()) {
        // Levels (2j − L)/L on [−1, 1]; code j switches up at (2j − 1 − L)/L.
        std::vector<double> levels;
        for (int j = 1; j <= l; ++j) levels.push_back(static_cast<double>(2 * j - 1 - l) / l);
        epi = kbit_epilogue(y, q->bits(), levels);
        next.step = 2.0 / l;
        next.offset = -1.0;
        next.z2 = l;
      } else {
        epi = kbit_epilogue(y, q->bits(), kbit_activation_levels(q->bits(), 1.0));
        next.step = 1.0 / l;
        next.offset = 0.0;
        next.z2 = 0;
      }
      ++i;
    } else {
      // No activation: this must be the output layer.
      skip_dropout();
      if (i < n) unsupported(m, i, "expected sign or quant_act after " + sequence_text(m, group_start, i));
      if (!lin.dense) unsupported(m, lin_at, "the output layer must be dense");
      epi = affine_epilogue(y);
      done = true;
    }
    if (i < n && (m.at(i).kind() == "max_pool2d"))
      unsupported(m, i, "max-pooling after the activation (pool before batch norm, as the papers do)");

    if (lin.conv) {
      Conv2dSpec s;
      s.out_channels = out_c;
      s.kernel_h = s.kernel_w = lin.conv->kernel();
      s.stride = lin.conv->stride();
      s.pad = lin.conv->padding();
      s.weight = std::move(wcodes);
      s.pool = pool;
      s.epilogue = std::move(epi);
      s.input_zero2 = a.bits ? 0 : a.z2;
      net.add_conv2d(s);
    } else {
      DenseSpec s;
      s.out_features = out_c;
      s.weight = std::move(wcodes);
      s.epilogue = std::move(epi);
      s.input_zero2 = a.bits ? 0 : a.z2;
      net.add_dense(s);
    }
    a = next;
  }
  if (!done) unsupported(m, n, "the network does not end in a dense output layer without activation");
  return net;
}

}  // namespace lowbit::runtime
