// Recurrent ops: finite-difference gradient checks through several time steps for every LSTM
// variant, the GRU, the tanh RNN and the embedding; state carried across windows equals one long
// sequence; forward values against a plain per-step loop.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "gradcheck_util.h"
#include "lowbit/autograd/rnn.h"
#include "lowbit/core/error.h"

namespace lowbit::autograd {
namespace {

Tensor rnd(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return testing::random_tensor(shape, seed, lo, hi);
}

// Several BPTT steps compound rounding, so the step is smaller and the tolerance wider.
void gradcheck(const testing::Fn& fn, const std::vector<Tensor>& inputs) {
  testing::gradcheck(fn, inputs, testing::GradTolerance{5e-3f, 2e-2, 2e-3, 30});
}

constexpr int64_t kT = 4, kB = 2, kI = 3, kC = 5, kP = 4;

struct LstmCase {
  const char* name;
  LstmConfig cfg;
};

// Inputs in order: x, h0, c0, w_x, w_h, bias, then peephole, proj_w, proj_b, ln as configured.
std::vector<Tensor> lstm_inputs(const LstmConfig& cfg) {
  const int64_t G = cfg.gates(), P = cfg.projection ? kP : kC;
  std::vector<Tensor> in{rnd({kT, kB, kI}, 1), rnd({kB, P}, 2, -0.5f, 0.5f), rnd({kB, kC}, 3),
                         rnd({G * kC, kI}, 4, -0.8f, 0.8f), rnd({G * kC, P}, 5, -0.8f, 0.8f), rnd({G * kC}, 6, -0.5f, 0.5f)};
  if (cfg.peephole) in.push_back(rnd({(G - 1) * kC}, 7, -0.5f, 0.5f));
  if (cfg.projection) {
    in.push_back(rnd({kP, kC}, 8, -0.8f, 0.8f));
    in.push_back(rnd({kP}, 9, -0.3f, 0.3f));
  }
  if (cfg.layer_norm) in.push_back(rnd({G * kC}, 10, 0.5f, 1.5f));
  return in;
}

LstmWeights lstm_weights(const LstmConfig& cfg, const std::vector<Var>& v) {
  LstmWeights w{v[3], v[4], v[5], {}, {}, {}, {}};
  std::size_t k = 6;
  if (cfg.peephole) w.peephole = v[k++];
  if (cfg.projection) {
    w.proj_w = v[k++];
    w.proj_b = v[k++];
  }
  if (cfg.layer_norm) w.ln = v[k++];
  return w;
}

std::vector<LstmCase> lstm_cases() {
  std::vector<LstmCase> cs;
  cs.push_back({"plain", {}});
  LstmConfig c;
  c.cifg = true;
  cs.push_back({"cifg", c});
  c = {};
  c.peephole = true;
  cs.push_back({"peephole", c});
  c = {};
  c.projection = true;
  cs.push_back({"projection", c});
  c = {};
  c.layer_norm = true;
  cs.push_back({"layer_norm", c});
  c = {};
  c.cifg = c.peephole = c.projection = c.layer_norm = true;
  cs.push_back({"all", c});
  c = {};
  c.peephole = c.projection = true;
  c.cell_clip = 0.6f;
  c.proj_clip = 0.5f;
  cs.push_back({"clipped", c});
  c = {};
  c.peephole = c.layer_norm = true;
  // A fine linear grid: its rounding error is far below the difference step, so central
  // differences measure the straight-through gradient through the quantized state.
  c.output_quant = Quantizer::linear(1.0f / (1 << 20), -1.0f, 1.0f);
  cs.push_back({"quantized_state", c});
  return cs;
}

TEST(AutogradRnn, LstmGradientsEveryVariant) {
  for (const LstmCase& lc : lstm_cases()) {
    SCOPED_TRACE(lc.name);
    const LstmConfig cfg = lc.cfg;
    gradcheck([cfg](const std::vector<Var>& v) { return lstm(v[0], v[1], v[2], lstm_weights(cfg, v), cfg); },
              lstm_inputs(cfg));
  }
}

// A plain per-step float LSTM (TFLite's float step) to check the fused forward against.
std::vector<float> lstm_reference(const LstmConfig& cfg, const std::vector<Tensor>& in) {
  const int64_t G = cfg.gates(), C = kC, P = cfg.projection ? kP : kC;
  const float* x = in[0].data<float>();
  const float *wx = in[3].data<float>(), *wh = in[4].data<float>(), *bias = in[5].data<float>();
  std::size_t k = 6;
  const float* peep = cfg.peephole ? in[k++].data<float>() : nullptr;
  const float* pw = cfg.projection ? in[k++].data<float>() : nullptr;
  const float* pb = cfg.projection ? in[k++].data<float>() : nullptr;
  const float* ln = cfg.layer_norm ? in[k++].data<float>() : nullptr;
  std::vector<float> h(in[1].data<float>(), in[1].data<float>() + kB * P);
  std::vector<float> c(in[2].data<float>(), in[2].data<float>() + kB * C);
  std::vector<float> y;
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  const int gate_i = cfg.cifg ? -1 : 0, gate_f = cfg.cifg ? 0 : 1, gate_g = gate_f + 1, gate_o = gate_f + 2;
  for (int64_t t = 0; t < kT; ++t) {
    std::vector<float> hn(kB * P);
    for (int64_t b = 0; b < kB; ++b) {
      std::vector<double> a(G * C);
      for (int64_t r = 0; r < G * C; ++r) {
        double s = 0;
        for (int64_t j = 0; j < kI; ++j) s += wx[r * kI + j] * x[(t * kB + b) * kI + j];
        for (int64_t j = 0; j < P; ++j) s += wh[r * P + j] * h[b * P + j];
        a[r] = s;
      }
      auto act = [&](int gate, std::vector<double>& v) {
        if (ln) {
          double m = 0, m2 = 0;
          for (int64_t j = 0; j < C; ++j) m += v[gate * C + j], m2 += v[gate * C + j] * v[gate * C + j];
          m /= C;
          double var = m2 / C - m * m;
          if (var <= 0) var = 1e-8;
          for (int64_t j = 0; j < C; ++j) v[gate * C + j] = (v[gate * C + j] - m) / std::sqrt(var) * ln[gate * C + j];
        }
        for (int64_t j = 0; j < C; ++j) v[gate * C + j] += bias[gate * C + j];
      };
      const int pslot_i = 0, pslot_f = cfg.cifg ? 0 : 1, pslot_o = pslot_f + 1;
      if (peep)
        for (int64_t j = 0; j < C; ++j) {
          if (!cfg.cifg) a[gate_i * C + j] += peep[pslot_i * C + j] * c[b * C + j];
          a[gate_f * C + j] += peep[pslot_f * C + j] * c[b * C + j];
        }
      if (!cfg.cifg) act(gate_i, a);
      act(gate_f, a);
      act(gate_g, a);
      std::vector<double> m(C);
      for (int64_t j = 0; j < C; ++j) {
        const double f = sig(a[gate_f * C + j]), g = std::tanh(a[gate_g * C + j]);
        const double i = cfg.cifg ? 1 - f : sig(a[gate_i * C + j]);
        double cc = f * c[b * C + j] + i * g;
        if (cfg.cell_clip > 0) cc = std::clamp(cc, -(double)cfg.cell_clip, (double)cfg.cell_clip);
        c[b * C + j] = static_cast<float>(cc);
        if (peep) a[gate_o * C + j] += peep[pslot_o * C + j] * cc;
      }
      act(gate_o, a);
      for (int64_t j = 0; j < C; ++j) m[j] = sig(a[gate_o * C + j]) * std::tanh(c[b * C + j]);
      for (int64_t p = 0; p < P; ++p) {
        double v = m[p % C];
        if (pw) {
          v = pb[p];
          for (int64_t j = 0; j < C; ++j) v += pw[p * C + j] * m[j];
          if (cfg.proj_clip > 0) v = std::clamp(v, -(double)cfg.proj_clip, (double)cfg.proj_clip);
        }
        hn[b * P + p] = static_cast<float>(v);
      }
    }
    h = hn;
    y.insert(y.end(), h.begin(), h.end());
  }
  return y;
}

TEST(AutogradRnn, LstmForwardMatchesPlainLoop) {
  for (const LstmCase& lc : lstm_cases()) {
    if (lc.cfg.output_quant) continue;
    SCOPED_TRACE(lc.name);
    const std::vector<Tensor> in = lstm_inputs(lc.cfg);
    std::vector<Var> v;
    for (const Tensor& t : in) v.emplace_back(t);
    const Var y = lstm(v[0], v[1], v[2], lstm_weights(lc.cfg, v), lc.cfg);
    const std::vector<float> ref = lstm_reference(lc.cfg, in);
    ASSERT_EQ(static_cast<int64_t>(ref.size()), y.numel());
    for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(y.data()[i], ref[i], 1e-5f) << i;
  }
}

// Two windows with the state carried equal one long sequence; the carried state is what the
// first window returned.
TEST(AutogradRnn, StateCarryMatchesOneSequence) {
  for (const LstmCase& lc : lstm_cases()) {
    SCOPED_TRACE(lc.name);
    const std::vector<Tensor> in = lstm_inputs(lc.cfg);
    std::vector<Var> v;
    for (const Tensor& t : in) v.emplace_back(t);
    const LstmWeights w = lstm_weights(lc.cfg, v);
    const Var full = lstm(v[0], v[1], v[2], w, lc.cfg);
    const Tensor x = in[0];
    const Tensor x1 = x.slice_rows(0, 1).clone(), x2 = x.slice_rows(1, kT).clone();
    RnnState s1, s2;
    const Var y1 = lstm(Var(x1), v[1], v[2], w, lc.cfg, &s1);
    const Var y2 = lstm(Var(x2), Var(s1.h), Var(s1.c), w, lc.cfg, &s2);
    const int64_t n1 = y1.numel();
    for (int64_t i = 0; i < n1; ++i) EXPECT_EQ(full.data()[i], y1.data()[i]);
    for (int64_t i = 0; i < y2.numel(); ++i) EXPECT_EQ(full.data()[n1 + i], y2.data()[i]);
    // The final h is the last output row.
    const int64_t bp = s2.h.numel();
    for (int64_t i = 0; i < bp; ++i) EXPECT_EQ(s2.h.data<float>()[i], full.data()[full.numel() - bp + i]);
  }
}

TEST(AutogradRnn, QuantizedStateIsOnTheGrid) {
  LstmConfig cfg;
  cfg.output_quant = Quantizer::weights_kbit(2, 1.0f);
  const std::vector<Tensor> in = lstm_inputs(cfg);
  std::vector<Var> v;
  for (const Tensor& t : in) v.emplace_back(t);
  const Var y = lstm(v[0], v[1], v[2], lstm_weights(cfg, v), cfg);
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float a = std::abs(y.data()[i]);
    EXPECT_TRUE(std::abs(a - 1.0f / 3) < 1e-6f || std::abs(a - 1.0f) < 1e-6f) << y.data()[i];
  }
}

TEST(AutogradRnn, GruGradients) {
  const int64_t H = 5;
  for (bool quant : {false, true}) {
    SCOPED_TRACE(quant ? "quantized" : "float");
    std::optional<Quantizer> q;
    if (quant) q = Quantizer::linear(1.0f / (1 << 20), -1.0f, 1.0f);
    gradcheck(
        [q](const std::vector<Var>& v) { return gru(v[0], v[1], GruWeights{v[2], v[3], v[4], v[5]}, q); },
        {rnd({kT, kB, kI}, 1), rnd({kB, H}, 2, -0.5f, 0.5f), rnd({3 * H, kI}, 3, -0.8f, 0.8f),
         rnd({3 * H, H}, 4, -0.8f, 0.8f), rnd({3 * H}, 5, -0.5f, 0.5f), rnd({3 * H}, 6, -0.5f, 0.5f)});
  }
}

TEST(AutogradRnn, RnnTanhGradients) {
  const int64_t H = 5;
  for (bool quant : {false, true}) {
    SCOPED_TRACE(quant ? "quantized" : "float");
    std::optional<Quantizer> q;
    if (quant) q = Quantizer::linear(1.0f / (1 << 20), -1.0f, 1.0f);
    gradcheck([q](const std::vector<Var>& v) { return rnn_tanh(v[0], v[1], RnnWeights{v[2], v[3], v[4]}, q); },
              {rnd({kT, kB, kI}, 1), rnd({kB, H}, 2, -0.5f, 0.5f), rnd({H, kI}, 3, -0.8f, 0.8f),
               rnd({H, H}, 4, -0.8f, 0.8f), rnd({H}, 5, -0.5f, 0.5f)});
  }
}

TEST(AutogradRnn, GruAndRnnStateCarry) {
  const int64_t H = 5;
  const Tensor x = rnd({kT, kB, kI}, 1);
  const Var h0(rnd({kB, H}, 2));
  const GruWeights gw{Var(rnd({3 * H, kI}, 3)), Var(rnd({3 * H, H}, 4)), Var(rnd({3 * H}, 5)), Var(rnd({3 * H}, 6))};
  const RnnWeights rw{Var(rnd({H, kI}, 3)), Var(rnd({H, H}, 4)), Var(rnd({H}, 5))};
  RnnState s;
  const Var gfull = gru(Var(x), h0, gw);
  const Var g1 = gru(Var(x.slice_rows(0, 2).clone()), h0, gw, std::nullopt, &s);
  const Var g2 = gru(Var(x.slice_rows(2, kT).clone()), Var(s.h), gw);
  for (int64_t i = 0; i < g1.numel(); ++i) EXPECT_EQ(gfull.data()[i], g1.data()[i]);
  for (int64_t i = 0; i < g2.numel(); ++i) EXPECT_EQ(gfull.data()[g1.numel() + i], g2.data()[i]);
  const Var rfull = rnn_tanh(Var(x), h0, rw);
  const Var r1 = rnn_tanh(Var(x.slice_rows(0, 3).clone()), h0, rw, std::nullopt, &s);
  const Var r2 = rnn_tanh(Var(x.slice_rows(3, kT).clone()), Var(s.h), rw);
  for (int64_t i = 0; i < r1.numel(); ++i) EXPECT_EQ(rfull.data()[i], r1.data()[i]);
  for (int64_t i = 0; i < r2.numel(); ++i) EXPECT_EQ(rfull.data()[r1.numel() + i], r2.data()[i]);
}

TEST(AutogradRnn, EmbeddingGradientAndRangeCheck) {
  const std::vector<int32_t> ids{3, 0, 3, 2};
  gradcheck([&](const std::vector<Var>& v) { return embedding(v[0], ids); }, {rnd({5, 3}, 1)});
  Var table(rnd({5, 3}, 1), true);
  Var y = embedding(table, ids);
  backward(y, Tensor::from<float>({4, 3}, std::vector<float>(12, 1.0f)));
  EXPECT_FLOAT_EQ(table.grad().data<float>()[3 * 3], 2.0f);  // row 3 used twice
  EXPECT_FLOAT_EQ(table.grad().data<float>()[1 * 3], 0.0f);  // row 1 unused
  const std::vector<int32_t> bad{0, 5};
  EXPECT_THROW(embedding(table, bad), Error);
}

TEST(AutogradRnn, ShapeErrors) {
  LstmConfig cfg;
  const std::vector<Tensor> in = lstm_inputs(cfg);
  std::vector<Var> v;
  for (const Tensor& t : in) v.emplace_back(t);
  LstmWeights w = lstm_weights(cfg, v);
  EXPECT_THROW(lstm(Var(rnd({kT, kB, kI + 1}, 1)), v[1], v[2], w, cfg), Error);
  w.peephole = Var(rnd({3 * kC}, 1));
  EXPECT_THROW(lstm(v[0], v[1], v[2], w, cfg), Error);  // peephole given but not configured
}

}  // namespace
}  // namespace lowbit::autograd
