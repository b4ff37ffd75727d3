// The recurrent language model: parameters, forward pass with QNN quantization, perplexity and
// global-norm gradient clipping (see nn/lm.h).
#include "lowbit/nn/lm.h"

#include <algorithm>
#include <cmath>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/data/ptb.h"
#include "lowbit/quant/rng.h"

namespace lowbit::nn {
using autograd::Var;

namespace {

Tensor uniform(const Shape& shape, double scale, uint64_t seed) {
  Tensor t = Tensor::zeros(shape, DType::f32);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i)
    p[i] = static_cast<float>(scale * (2.0 * quant::uniform01(seed, static_cast<uint64_t>(i)) - 1.0));
  return t;
}

Tensor filled(const Shape& shape, float v) {
  Tensor t = Tensor::zeros(shape, DType::f32);
  std::fill(t.data<float>(), t.data<float>() + t.numel(), v);
  return t;
}

float max_abs(const Tensor& t) {
  float m = 0.0f;
  const float* p = t.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(p[i]));
  return m;
}

// The k-bit weight quantizer on [−m, m] with m = max|W| (1 when W is all zeros).
autograd::Quantizer weight_quantizer(int bits, const Tensor& w) {
  const float m = max_abs(w);
  return autograd::Quantizer::weights_kbit(bits, m > 0.0f ? m : 1.0f);
}

}  // namespace

LanguageModel::LanguageModel(LmSpec spec, uint64_t seed) : spec_(std::move(spec)), seed_(seed) {
  const LmSpec& s = spec_;
  LOWBIT_CHECK(s.vocab_size >= 1 && s.embedding_dim >= 1, "language model: vocab_size ", s.vocab_size,
               " and embedding_dim ", s.embedding_dim, " must be >= 1");
  LOWBIT_CHECK(!s.layers.empty(), "language model: at least one recurrent layer is needed");
  LOWBIT_CHECK(s.dropout >= 0 && s.dropout < 1, "language model: dropout ", s.dropout, " is outside [0, 1)");
  LOWBIT_CHECK(s.weight_bits >= 0 && s.weight_bits <= 8 && s.activation_bits >= 0 && s.activation_bits <= 8,
               "language model: weight_bits and activation_bits must be in [0, 8] (0 = float)");
  uint64_t stream = 0;
  auto add = [&](const std::string& name, Tensor value) {
    params_.push_back(Parameter::make(name, std::move(value)));
  };
  auto init = [&](const Shape& shape) { return uniform(shape, s.init_scale, quant::derive_seed(seed, stream++)); };
  add("embedding", init({s.vocab_size, s.embedding_dim}));
  int64_t in = s.embedding_dim;
  for (std::size_t l = 0; l < s.layers.size(); ++l) {
    const LmLayerSpec& ls = s.layers[l];
    LOWBIT_CHECK(ls.units >= 1, "language model: layer ", l, " has ", ls.units, " units");
    const std::string pre = ls.type + "." + std::to_string(l) + ".";
    int64_t out = ls.units;
    if (ls.type == "lstm") {
      const int64_t G = ls.cifg ? 3 : 4, C = ls.units, P = ls.projection > 0 ? ls.projection : C;
      add(pre + "w_x", init({G * C, in}));
      add(pre + "w_h", init({G * C, P}));
      add(pre + "bias", init({G * C}));
      if (ls.peephole) add(pre + "peephole", init({(G - 1) * C}));
      if (ls.projection > 0) {
        add(pre + "proj_w", init({P, C}));
        add(pre + "proj_b", init({P}));
      }
      if (ls.layer_norm) add(pre + "ln", filled({G * C}, 1.0f));
      if (s.weight_bits > 0) {
        quantized_.push_back(pre + "w_x");
        quantized_.push_back(pre + "w_h");
        if (ls.projection > 0) quantized_.push_back(pre + "proj_w");
      }
      out = P;
    } else if (ls.type == "gru") {
      const int64_t H = ls.units;
      add(pre + "w_x", init({3 * H, in}));
      add(pre + "w_h", init({3 * H, H}));
      add(pre + "b_x", init({3 * H}));
      add(pre + "b_h", init({3 * H}));
      if (s.weight_bits > 0) quantized_.insert(quantized_.end(), {pre + "w_x", pre + "w_h"});
    } else if (ls.type == "rnn") {
      const int64_t H = ls.units;
      add(pre + "w_x", init({H, in}));
      add(pre + "w_h", init({H, H}));
      add(pre + "b", init({H}));
      if (s.weight_bits > 0) quantized_.insert(quantized_.end(), {pre + "w_x", pre + "w_h"});
    } else {
      fail("language model: layer ", l, " has type \"", ls.type, "\" (expected \"lstm\", \"gru\" or \"rnn\")");
    }
    LOWBIT_CHECK(ls.type == "lstm" || (!ls.cifg && !ls.peephole && !ls.layer_norm && ls.projection == 0 &&
                                       ls.cell_clip == 0 && ls.proj_clip == 0),
                 "language model: layer ", l, " (", ls.type, "): cifg, peephole, layer_norm, projection and clips are "
                 "LSTM options");
    in = out;
  }
  add("head.weight", init({s.vocab_size, in}));
  add("head.bias", filled({s.vocab_size}, 0.0f));
}

std::shared_ptr<Parameter> LanguageModel::parameter(const std::string& name) const {
  for (const auto& p : params_)
    if (p->name == name) return p;
  fail("language model: no parameter named '", name, "'");
}

int64_t LanguageModel::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p->value.numel();
  return n;
}

bool LanguageModel::is_quantized_weight(const std::string& name) const {
  return std::find(quantized_.begin(), quantized_.end(), name) != quantized_.end();
}

Tensor LanguageModel::effective_value(const std::string& name) const {
  const auto p = parameter(name);
  if (!is_quantized_weight(name)) return p->value.clone();
  Tensor out = Tensor::zeros(p->value.shape(), DType::f32);
  const auto q = weight_quantizer(spec_.weight_bits, p->value);
  q.forward({p->value.data<float>(), static_cast<std::size_t>(p->value.numel())},
            {out.data<float>(), static_cast<std::size_t>(out.numel())});
  return out;
}

Var LanguageModel::forward(const Tensor& ids, State& state, bool training) {
  LOWBIT_CHECK(ids.defined() && ids.dtype() == DType::i32 && ids.dim() == 2 && ids.size(0) >= 1 && ids.size(1) >= 1,
               "language model: expected token ids i32 [T, B], got ", ids.defined() ? ids.describe() : "nothing");
  const int64_t T = ids.size(0), B = ids.size(1);
  const Tensor idc = ids.is_contiguous() ? ids : ids.clone();
  const std::span<const int32_t> span(idc.data<int32_t>(), static_cast<std::size_t>(idc.numel()));
  for (std::size_t i = 0; i < span.size(); ++i)
    LOWBIT_CHECK(span[i] >= 0 && span[i] < spec_.vocab_size, "language model: token id ", span[i],
                 " is outside the vocabulary [0, ", spec_.vocab_size, ")");
  if (state.layers.size() != spec_.layers.size()) state = zero_state();
  const auto p = static_cast<float>(spec_.dropout);
  auto var = [&](const std::string& name) {
    const auto prm = parameter(name);
    Var v(prm->value, prm->grad, &prm->grad_stale);
    if (is_quantized_weight(name)) return autograd::fake_quantize(v, weight_quantizer(spec_.weight_bits, prm->value));
    return v;
  };
  auto next_seed = [&] { return quant::derive_seed(seed_, calls_++); };
  std::optional<autograd::Quantizer> state_quant;
  if (spec_.activation_bits > 0) state_quant = autograd::Quantizer::weights_kbit(spec_.activation_bits, 1.0f);

  Var x = autograd::embedding(var("embedding"), span);
  x = autograd::dropout(x, p, next_seed(), training);
  int64_t width = spec_.embedding_dim;
  x = autograd::reshape(x, {T, B, width});
  for (std::size_t l = 0; l < spec_.layers.size(); ++l) {
    const LmLayerSpec& ls = spec_.layers[l];
    const std::string pre = ls.type + "." + std::to_string(l) + ".";
    autograd::RnnState& st = state.layers[l];
    if (st.h.defined())
      LOWBIT_CHECK(st.h.size(0) == B, "language model: the carried state has batch ", st.h.size(0), ", the input ", B);
    const Var h0 = st.h.defined() ? Var(st.h) : Var();
    Var y;
    if (ls.type == "lstm") {
      autograd::LstmConfig cfg;
      cfg.cifg = ls.cifg;
      cfg.peephole = ls.peephole;
      cfg.projection = ls.projection > 0;
      cfg.layer_norm = ls.layer_norm;
      cfg.cell_clip = static_cast<float>(ls.cell_clip);
      cfg.proj_clip = static_cast<float>(ls.proj_clip);
      cfg.output_quant = state_quant;
      autograd::LstmWeights w{var(pre + "w_x"), var(pre + "w_h"), var(pre + "bias"), {}, {}, {}, {}};
      if (ls.peephole) w.peephole = var(pre + "peephole");
      if (cfg.projection) {
        w.proj_w = var(pre + "proj_w");
        w.proj_b = var(pre + "proj_b");
      }
      if (ls.layer_norm) w.ln = var(pre + "ln");
      const Var c0 = st.c.defined() ? Var(st.c) : Var();
      y = autograd::lstm(x, h0, c0, w, cfg, &st);
      width = cfg.projection ? ls.projection : ls.units;
    } else if (ls.type == "gru") {
      y = autograd::gru(x, h0, {var(pre + "w_x"), var(pre + "w_h"), var(pre + "b_x"), var(pre + "b_h")}, state_quant,
                        &st);
      width = ls.units;
    } else {
      y = autograd::rnn_tanh(x, h0, {var(pre + "w_x"), var(pre + "w_h"), var(pre + "b")}, state_quant, &st);
      width = ls.units;
    }
    x = autograd::dropout(y, p, next_seed(), training);
  }
  return autograd::linear(autograd::reshape(x, {T * B, width}), var("head.weight"), var("head.bias"));
}

Perplexity evaluate_perplexity(LanguageModel& model, const Tensor& tokens, int64_t batch, int64_t bptt) {
  autograd::NoGradGuard no_grad;
  const data::BpttBatches windows(tokens, batch, bptt);
  LanguageModel::State state = model.zero_state();
  double nll = 0;
  int64_t n = 0;
  for (int64_t k = 0; k < windows.num_windows(); ++k) {
    const auto w = windows.window(k);
    const Tensor target = w.target.is_contiguous() ? w.target : w.target.clone();
    const Var logits = model.forward(w.input, state, false);
    const Var loss = autograd::softmax_cross_entropy(
        logits, std::span<const int32_t>(target.data<int32_t>(), static_cast<std::size_t>(target.numel())));
    nll += static_cast<double>(loss.value().data<float>()[0]) * static_cast<double>(target.numel());
    n += target.numel();
  }
  Perplexity p;
  p.tokens = n;
  p.nll = n > 0 ? nll / static_cast<double>(n) : std::nan("");
  p.perplexity = std::exp(p.nll);
  return p;
}

double clip_grad_norm(const ParameterList& params, double max_norm) {
  LOWBIT_CHECK(max_norm > 0, "clip_grad_norm: max_norm ", max_norm, " must be > 0");
  double s = 0;
  for (const auto& p : params) {
    settle_grad(*p);
    const float* g = p->grad.data<float>();
    const int64_t n = p->grad.numel();
    // Float partial sums in blocks (vectorised), added in double.
    for (int64_t b = 0; b < n; b += 4096) {
      float part = 0.0f;
      const int64_t e = std::min(n, b + 4096);
      for (int64_t i = b; i < e; ++i) part += g[i] * g[i];
      s += part;
    }
  }
  const double norm = std::sqrt(s);
  if (norm > max_norm) {
    const auto f = static_cast<float>(max_norm / norm);
    for (const auto& p : params) {
      float* g = p->grad.data<float>();
      const int64_t n = p->grad.numel();
      for (int64_t i = 0; i < n; ++i) g[i] *= f;
    }
  }
  return norm;
}

}  // namespace lowbit::nn
