// Post-training quantization of float LSTM models; see runtime/lstm_quantize.h.
#include "lowbit/runtime/lstm_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "lowbit/core/error.h"

namespace lowbit::runtime {

using json = nlohmann::ordered_json;

namespace {

constexpr const char* kGate[4] = {"input", "forget", "cell", "output"};
enum { kI = 0, kF = 1, kC = 2, kO = 3 };

struct Asym {
  float scale;
  int32_t zp;
};

Asym asymmetric(const MinMax& r) {
  float lo = r.seen ? std::min(r.lo, 0.0f) : 0.0f;
  float hi = r.seen ? std::max(r.hi, 0.0f) : 0.0f;
  if (!(hi - lo > 1e-8f)) {
    lo = -1.0f;
    hi = 1.0f;
  }
  const float scale = (hi - lo) / 255.0f;
  const float zp_from_min = -128.0f - lo / scale;
  int32_t zp = 0;
  if (zp_from_min < -128.0f) zp = -128;
  else if (zp_from_min > 127.0f) zp = 127;
  else zp = static_cast<int32_t>(std::round(zp_from_min));
  return {scale, zp};
}

float max_abs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

struct Ctx {
  const io::ModelFile& in;
  io::ModelFile out;
  std::vector<std::string>* report;

  std::vector<float> get(const std::string& name) const {
    const auto v = in.get(name).values<float>();
    return {v.begin(), v.end()};
  }
  void line(const std::string& name, float lo, float hi, float scale, int32_t zp) const {
    if (!report) return;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%-48s min %12.6g  max %12.6g  scale %.6g  zero_point %d", name.c_str(), lo, hi,
                  scale, zp);
    report->push_back(buf);
  }
  // Symmetric narrow quantization to `bits` (8 or 16); returns the scale.
  template <typename T>
  float symmetric(const std::string& name, int bits) {
    const std::vector<float> w = get(name);
    const float qmax = static_cast<float>((1 << (bits - 1)) - 1);
    const float m = max_abs(w);
    const float scale = m > 0.0f ? m / qmax : 1.0f;
    std::vector<T> q(w.size());
    for (std::size_t i = 0; i < w.size(); ++i)
      q[i] = static_cast<T>(std::clamp(std::round(w[i] / scale), -qmax, qmax));
    out.add(name, io::Array::from<T>(in.get(name).shape(), q));
    line(name, -m, m, scale, 0);
    return scale;
  }
  float bias(const std::string& name, float scale) {
    const std::vector<float> b = get(name);
    std::vector<int32_t> q(b.size());
    float lo = 0, hi = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      const double v = std::round(static_cast<double>(b[i]) / static_cast<double>(scale));
      q[i] = static_cast<int32_t>(std::clamp(v, -2147483647.0, 2147483647.0));
      lo = std::min(lo, b[i]);
      hi = std::max(hi, b[i]);
    }
    out.add(name, io::Array::from<int32_t>(in.get(name).shape(), q));
    line(name, lo, hi, scale, 0);
    return scale;
  }
};

json qp(float scale) { return json{{"scale", scale}}; }
json qp(const Asym& a) { return json{{"scale", a.scale}, {"zero_point", a.zp}}; }

}  // namespace

std::vector<LstmLayerRanges> calibrate_lstm(const LstmModel& m, const float* x, int64_t steps, int64_t batch) {
  LOWBIT_CHECK(!m.is_integer(), "quantize: the model is already integer");
  LOWBIT_CHECK(m.kind() == LstmKind::lstm, "calibrate_lstm: needs a kind lstm model");
  LOWBIT_CHECK(steps > 0 && batch > 0, "quantize: the calibration set is empty");
  std::vector<LstmLayerRanges> r(m.layers().size());
  auto state = m.initial_state(batch);
  std::vector<float> y(static_cast<std::size_t>(steps * batch * m.n_output()));
  m.run_float(x, steps, state, y.data(), &r);
  return r;
}

std::vector<LstmLayerRanges> calibrate_lstm_lm(const LstmModel& m, const int32_t* tokens, int64_t steps) {
  LOWBIT_CHECK(!m.is_integer(), "quantize: the model is already integer");
  LOWBIT_CHECK(m.kind() == LstmKind::lstm_lm, "calibrate_lstm_lm: needs a kind lstm_lm model");
  LOWBIT_CHECK(steps > 0, "quantize: the calibration set is empty");
  // The head plays no part in the ranges: run the embedding rows through the layers only.
  const auto emb = m.file().get("embedding").values<float>();
  const int64_t E = m.n_input(), V = m.vocab_size(), chunk = 256;
  std::vector<LstmLayerRanges> r(m.layers().size());
  auto state = m.initial_state(1);
  std::vector<float> x, y;
  for (int64_t t0 = 0; t0 < steps; t0 += chunk) {
    const int64_t n = std::min(chunk, steps - t0);
    x.resize(static_cast<std::size_t>(n * E));
    y.resize(static_cast<std::size_t>(n * m.n_output()));
    for (int64_t t = 0; t < n; ++t) {
      const int32_t id = tokens[t0 + t];
      LOWBIT_CHECK(id >= 0 && id < V, "quantize: calibration token id ", id, " outside the vocabulary (", V, ")");
      std::copy_n(emb.data() + id * E, E, x.data() + t * E);
    }
    m.run_float(x.data(), n, state, y.data(), &r);
  }
  return r;
}

io::ModelFile quantize_lstm(const LstmModel& m, const std::vector<LstmLayerRanges>& ranges,
                            std::vector<std::string>* report) {
  LOWBIT_CHECK(!m.is_integer(), "quantize: the model is already integer");
  LOWBIT_CHECK(ranges.size() == m.layers().size(), "quantize: ", ranges.size(), " layer ranges for ",
               m.layers().size(), " layers");
  LOWBIT_CHECK(ranges.front().input.seen, "quantize: the calibration set is empty (no input was observed)");
  Ctx c{m.file(), {}, report};
  json meta = json::parse(m.file().metadata);
  json& model = meta["model"];
  model["precision"] = "integer";

  Asym prev_out{};
  for (std::size_t l = 0; l < m.layers().size(); ++l) {
    const LstmLayerSpec& s = m.layers()[l];
    const LstmLayerRanges& r = ranges[l];
    const std::string p = s.name + ".";
    json q = json::object();
    Asym x{};
    if (l > 0) {
      x = prev_out;
    } else if (m.kind() == LstmKind::lstm_lm) {
      MinMax er;
      const auto e = c.get("embedding");
      er.update(e.data(), static_cast<int64_t>(e.size()));
      x = asymmetric(er);
      c.line("embedding (layer 0 input)", er.lo, er.hi, x.scale, x.zp);
    } else {
      x = asymmetric(r.input);
      c.line(p + "input", r.input.lo, r.input.hi, x.scale, x.zp);
    }
    const Asym h = asymmetric(r.output_state);
    c.line(p + "output_state", r.output_state.lo, r.output_state.hi, h.scale, h.zp);
    Asym hid = h;
    if (s.projection) {
      // Symmetric (zero point 0): TFLite quantizes h with "+ zp" but folds "+ zp · rowsum(W_proj)"
      // into the projection bias, which is only right for zp = 0.
      float m = r.hidden.seen ? std::max(std::fabs(r.hidden.lo), std::fabs(r.hidden.hi)) : 0.0f;
      if (!(m > 1e-8f)) m = 1.0f;
      hid = {m / 127.0f, 0};
      c.line(p + "hidden", r.hidden.lo, r.hidden.hi, hid.scale, hid.zp);
    }
    const float cmax = r.cell_state.seen ? std::max(std::fabs(r.cell_state.lo), std::fabs(r.cell_state.hi)) : 0.0f;
    int pot = 0;
    while (pot < 6 && std::ldexp(1.0f, pot) < cmax) ++pot;
    const float cell_scale = std::ldexp(1.0f, pot - 15);
    c.line(p + "cell_state" + (std::ldexp(1.0f, pot) < cmax ? " (clamped to |c| < 64)" : ""), r.cell_state.lo,
           r.cell_state.hi, cell_scale, 0);
    q["input"] = qp(x);
    q["output_state"] = qp(h);
    q["cell_state"] = qp(cell_scale);
    q["hidden"] = qp(hid);
    float gate_scale[4] = {0, 0, 0, 0};
    if (s.layer_norm)
      for (int g = 0; g < 4; ++g) {
        if (s.cifg && g == kI) continue;
        const MinMax& gr = r.gate[g];
        float mabs = gr.seen ? std::max(std::fabs(gr.lo), std::fabs(gr.hi)) : 0.0f;
        if (!(mabs > 1e-8f)) mabs = 1.0f;
        gate_scale[g] = mabs / 32767.0f;
        q[std::string("gate_") + kGate[g]] = qp(gate_scale[g]);
        c.line(p + "gate_" + kGate[g], gr.lo, gr.hi, gate_scale[g], 0);
      }
    for (int g = 0; g < 4; ++g) {
      if (s.cifg && g == kI) continue;
      const std::string wx = std::string("input_to_") + kGate[g] + "_weights";
      const std::string wh = std::string("recurrent_to_") + kGate[g] + "_weights";
      const float swx = c.symmetric<int8_t>(p + wx, 8);
      q[wx] = qp(swx);
      q[wh] = qp(c.symmetric<int8_t>(p + wh, 8));
      if (s.peephole && g != kC) {
        const std::string pn = std::string("cell_to_") + kGate[g] + "_weights";
        q[pn] = qp(c.symmetric<int16_t>(p + pn, 16));
      }
      const std::string bn = std::string(kGate[g]) + "_gate_bias";
      if (s.layer_norm) {
        const std::string ln = std::string(kGate[g]) + "_layer_norm_coefficients";
        const float sln = c.symmetric<int16_t>(p + ln, 16);
        q[ln] = qp(sln);
        q[bn] = qp(c.bias(p + bn, sln * std::ldexp(1.0f, -10)));
      } else {
        q[bn] = qp(c.bias(p + bn, x.scale * swx));
      }
    }
    if (s.projection) {
      const float sp = c.symmetric<int8_t>(p + "projection_weights", 8);
      q["projection_weights"] = qp(sp);
      if (m.file().contains(p + "projection_bias")) q["projection_bias"] = qp(c.bias(p + "projection_bias", sp * hid.scale));
    }
    model["layers"][l]["quantization"] = q;
    prev_out = h;
  }
  if (m.kind() == LstmKind::lstm_lm) {
    const auto e = c.get("embedding");
    const Asym x = asymmetric([&] {
      MinMax er;
      er.update(e.data(), static_cast<int64_t>(e.size()));
      return er;
    }());
    std::vector<int8_t> eq(e.size());
    for (std::size_t i = 0; i < e.size(); ++i)
      eq[i] = static_cast<int8_t>(std::clamp(std::round(e[i] / x.scale) + static_cast<float>(x.zp), -128.0f, 127.0f));
    c.out.add("embedding", io::Array::from<int8_t>(m.file().get("embedding").shape(), eq));
    const float shw = c.symmetric<int8_t>("head.weight", 8);
    const float sb = prev_out.scale * shw;
    c.bias("head.bias", sb);
    model["head_quantization"] = json{{"weight", qp(shw)}, {"bias", qp(sb)}};
  }
  // Keep the float file's tensor order.
  io::ModelFile ordered;
  for (const auto& [name, a] : m.file().tensors) ordered.add(name, c.out.contains(name) ? c.out.get(name) : a);
  ordered.metadata = meta.dump();
  return ordered;
}

io::ModelFile random_float_lstm(LstmKind kind, const std::vector<LstmLayerSpec>& layers, int64_t vocab, uint64_t seed) {
  LOWBIT_CHECK(!layers.empty(), "random_float_lstm: no layers");
  std::mt19937_64 rng(seed);
  io::ModelFile f;
  auto uniform = [&](const Shape& shape, float a, float center = 0.0f) {
    std::uniform_real_distribution<float> u(center - a, center + a);
    std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
    for (auto& x : v) x = u(rng);
    return io::Array::from<float>(shape, v);
  };
  json ls = json::array();
  for (const LstmLayerSpec& s : layers) {
    const int64_t C = s.n_cell, I = s.n_input, P = s.n_output;
    const float a = 1.0f / std::sqrt(static_cast<float>(I + P));
    const std::string p = s.name + ".";
    for (int g = 0; g < 4; ++g) {
      if (s.cifg && g == kI) continue;
      f.add(p + "input_to_" + kGate[g] + "_weights", uniform({C, I}, 2 * a));
      f.add(p + "recurrent_to_" + kGate[g] + "_weights", uniform({C, P}, 2 * a));
      if (s.peephole && g != kC) f.add(p + "cell_to_" + kGate[g] + "_weights", uniform({C}, 0.3f));
      f.add(p + kGate[g] + "_gate_bias", uniform({C}, 0.2f, g == kF ? 1.0f : 0.0f));
      if (s.layer_norm) f.add(p + kGate[g] + "_layer_norm_coefficients", uniform({C}, 0.3f, 1.0f));
    }
    if (s.projection) {
      f.add(p + "projection_weights", uniform({P, C}, 2.0f / std::sqrt(static_cast<float>(C))));
      f.add(p + "projection_bias", uniform({P}, 0.1f));
    }
    ls.push_back(json{{"type", "lstm"}, {"name", s.name}, {"n_input", I}, {"n_cell", C}, {"n_output", P},
                      {"cifg", s.cifg}, {"peephole", s.peephole}, {"projection", s.projection},
                      {"layer_norm", s.layer_norm}, {"cell_clip", s.cell_clip}, {"proj_clip", s.proj_clip}});
  }
  json model{{"kind", kind == LstmKind::lstm ? "lstm" : "lstm_lm"}, {"precision", "float"}, {"layers", ls}};
  if (kind == LstmKind::lstm_lm) {
    const int64_t E = layers.front().n_input, P = layers.back().n_output;
    f.add("embedding", uniform({vocab, E}, 1.0f));
    f.add("head.weight", uniform({vocab, P}, 2.0f / std::sqrt(static_cast<float>(P))));
    f.add("head.bias", uniform({vocab}, 0.1f));
    model["vocab_size"] = vocab;
    model["embedding_dim"] = E;
  }
  f.metadata = json{{"model", model}}.dump();
  return f;
}

}  // namespace lowbit::runtime
