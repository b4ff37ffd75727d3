// LSTM models: loading and validation, float step, integer 8x8_16 step (reference and fast
// path). See runtime/lstm.h and docs/formats.md ("LSTM models").
#include "lowbit/runtime/lstm.h"
#include "lowbit/runtime/lstm_integer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <span>

#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/io/model_file.h"
#include "lowbit/kernels/igemm.h"
#include "lowbit/kernels/sgemm.h"
#include "lowbit/quant/fixed_point.h"
#include "lowbit/quant/integer_ops.h"

namespace lowbit::runtime {

using json = nlohmann::json;
namespace iops = quant::iops;
using quant::QuantizedMultiplier;

void MinMax::update(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = v[i];
    if (std::isnan(x)) continue;
    if (!seen) {
      lo = hi = x;
      seen = true;
    } else {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  }
}

namespace {

constexpr const char* kGate[4] = {"input", "forget", "cell", "output"};
enum { kI = 0, kF = 1, kC = 2, kO = 3 };

using QParam = LstmQuant;

struct FloatLayer {
  LstmLayerSpec spec;
  std::vector<int> gates;  // gate ids present, in storage order
  std::vector<float> wx;   // [G·C, I], gates stacked in `gates` order
  std::vector<float> wh;   // [G·C, P]
  std::vector<float> bias[4], peep[4], ln[4];
  std::vector<float> proj;       // [P, C]
  std::vector<float> proj_bias;  // [P] or empty
};

// ---- metadata and tensor access ------------------------------------------------------------

struct Reader {
  const io::ModelFile& file;
  const std::string& source;

  const io::Array& tensor(const std::string& name, io::ElemType type, const Shape& shape) const {
    LOWBIT_CHECK(file.contains(name), source, ": tensor \"", name, "\" is missing (", elem_type_name(type), " ",
                 shape_str(shape), " expected)");
    const io::Array& a = file.get(name);
    LOWBIT_CHECK(a.type() == type, source, ": tensor \"", name, "\" is ", elem_type_name(a.type()), ", expected ",
                 elem_type_name(type));
    LOWBIT_CHECK(a.shape() == shape, source, ": tensor \"", name, "\" has shape ", shape_str(a.shape()),
                 ", expected ", shape_str(shape));
    return a;
  }
  template <typename T>
  std::vector<T> values(const std::string& name, io::ElemType type, const Shape& shape) const {
    const auto v = tensor(name, type, shape).values<T>();
    return {v.begin(), v.end()};
  }
  void absent(const std::string& name, const std::string& why) const {
    LOWBIT_CHECK(!file.contains(name), source, ": tensor \"", name, "\" must not be present (", why, ")");
  }
};

bool get_bool(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) return false;
  LOWBIT_CHECK(j[key].is_boolean(), where, ": \"", key, "\" must be true or false");
  return j[key].get<bool>();
}
int64_t get_int(const json& j, const char* key, const std::string& where) {
  LOWBIT_CHECK(j.contains(key) && j[key].is_number_integer(), where, ": \"", key, "\" (an integer) is missing");
  const int64_t v = j[key].get<int64_t>();
  LOWBIT_CHECK(v >= 1 && v <= (int64_t{1} << 24), where, ": \"", key, "\" = ", v, " (expected 1 .. 2^24)");
  return v;
}
float get_float(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) return 0.0f;
  LOWBIT_CHECK(j[key].is_number(), where, ": \"", key, "\" must be a number");
  const double v = j[key].get<double>();
  LOWBIT_CHECK(std::isfinite(v) && v >= 0.0, where, ": \"", key, "\" = ", v, " (expected >= 0; 0 = no clipping)");
  return static_cast<float>(v);
}

QParam get_qparam(const json& q, const std::string& key, bool need_zp, const std::string& where) {
  LOWBIT_CHECK(q.contains(key) && q[key].is_object(), where, ": quantization entry \"", key, "\" is missing");
  const json& e = q[key];
  LOWBIT_CHECK(e.contains("scale") && e["scale"].is_number(), where, ": quantization \"", key,
               "\" has no numeric \"scale\"");
  QParam p;
  const double s = e["scale"].get<double>();
  p.scale = static_cast<float>(s);
  LOWBIT_CHECK(std::isfinite(s) && p.scale > 0.0f, where, ": quantization \"", key, "\" scale ", s,
               " (expected a positive float32)");
  if (e.contains("zero_point")) {
    LOWBIT_CHECK(e["zero_point"].is_number_integer(), where, ": quantization \"", key, "\" zero_point must be an integer");
    p.zero_point = e["zero_point"].get<int32_t>();
  }
  if (need_zp) {
    LOWBIT_CHECK(e.contains("zero_point"), where, ": quantization \"", key, "\" needs a \"zero_point\"");
    LOWBIT_CHECK(p.zero_point >= -128 && p.zero_point <= 127, where, ": quantization \"", key, "\" zero_point ",
                 p.zero_point, " (expected -128..127 for int8)");
  } else {
    LOWBIT_CHECK(p.zero_point == 0, where, ": quantization \"", key, "\" must be symmetric (zero_point 0), got ",
                 p.zero_point);
  }
  return p;
}

QuantizedMultiplier multiplier_of(double real, const std::string& what, const std::string& where) {
  LOWBIT_CHECK(std::isfinite(real) && real >= 0.0 && real < 1e9, where, ": effective scale of ", what, " is ", real,
               " (the scales in the file are inconsistent)");
  return quant::quantize_multiplier(real);
}

bool same_quant(const QParam& a, const QParam& b) {
  return a.zero_point == b.zero_point && std::fabs(a.scale - b.scale) <= 1e-6f * std::max(a.scale, b.scale);
}

std::vector<int32_t> row_sums_times(const std::vector<int8_t>& w, int64_t rows, int64_t cols, int32_t factor,
                                    const std::vector<int32_t>* bias) {
  std::vector<int32_t> out(static_cast<std::size_t>(rows), 0);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t k = 0; k < cols; ++k) s += w[static_cast<std::size_t>(r * cols + k)];
    out[static_cast<std::size_t>(r)] = iops::wrap_add32(bias ? (*bias)[static_cast<std::size_t>(r)] : 0, iops::wrap_mul32(s, factor));
  }
  return out;
}

LstmLayerSpec parse_layer(const json& l, std::size_t index, const std::string& source) {
  const std::string where = source + ": layers[" + std::to_string(index) + "]";
  LOWBIT_CHECK(l.is_object(), where, " must be an object");
  LOWBIT_CHECK(l.contains("type") && l["type"] == "lstm", where, ": \"type\" must be \"lstm\"");
  LstmLayerSpec s;
  LOWBIT_CHECK(l.contains("name") && l["name"].is_string() && !l["name"].get<std::string>().empty(), where,
               ": \"name\" (the tensor prefix) is missing");
  s.name = l["name"].get<std::string>();
  s.n_input = get_int(l, "n_input", where);
  s.n_cell = get_int(l, "n_cell", where);
  s.n_output = get_int(l, "n_output", where);
  s.cifg = get_bool(l, "cifg", where);
  s.peephole = get_bool(l, "peephole", where);
  s.projection = get_bool(l, "projection", where);
  s.layer_norm = get_bool(l, "layer_norm", where);
  s.cell_clip = get_float(l, "cell_clip", where);
  s.proj_clip = get_float(l, "proj_clip", where);
  if (!s.projection)
    LOWBIT_CHECK(s.n_output == s.n_cell, where, " (", s.name, "): n_output ", s.n_output, " differs from n_cell ",
                 s.n_cell, " but the layer has no projection");
  if (!s.projection)
    LOWBIT_CHECK(s.proj_clip == 0.0f, where, " (", s.name, "): proj_clip without a projection");
  return s;
}

std::vector<int> gates_of(const LstmLayerSpec& s) {
  return s.cifg ? std::vector<int>{kF, kC, kO} : std::vector<int>{kI, kF, kC, kO};
}

std::string tname(const LstmLayerSpec& s, const std::string& t) { return s.name + "." + t; }

void check_absent_cifg(const Reader& r, const LstmLayerSpec& s) {
  for (const char* t : {"input_to_input_weights", "recurrent_to_input_weights", "cell_to_input_weights",
                        "input_gate_bias", "input_layer_norm_coefficients"})
    r.absent(tname(s, t), "the layer is CIFG");
}
void check_absent_features(const Reader& r, const LstmLayerSpec& s) {
  if (!s.peephole)
    for (int g : {kI, kF, kO}) r.absent(tname(s, std::string("cell_to_") + kGate[g] + "_weights"), "peephole is false");
  if (!s.layer_norm)
    for (int g = 0; g < 4; ++g)
      r.absent(tname(s, std::string(kGate[g]) + "_layer_norm_coefficients"), "layer_norm is false");
  if (!s.projection) {
    r.absent(tname(s, "projection_weights"), "projection is false");
    r.absent(tname(s, "projection_bias"), "projection is false");
  }
  if (s.cifg) check_absent_cifg(r, s);
}

FloatLayer load_float_layer(const Reader& r, const LstmLayerSpec& s) {
  check_absent_features(r, s);
  FloatLayer L;
  L.spec = s;
  L.gates = gates_of(s);
  const int64_t C = s.n_cell, I = s.n_input, P = s.n_output;
  using io::ElemType;
  for (int g : L.gates) {
    const auto wx = r.values<float>(tname(s, std::string("input_to_") + kGate[g] + "_weights"), ElemType::F32, {C, I});
    const auto wh = r.values<float>(tname(s, std::string("recurrent_to_") + kGate[g] + "_weights"), ElemType::F32, {C, P});
    L.wx.insert(L.wx.end(), wx.begin(), wx.end());
    L.wh.insert(L.wh.end(), wh.begin(), wh.end());
    L.bias[g] = r.values<float>(tname(s, std::string(kGate[g]) + "_gate_bias"), ElemType::F32, {C});
    if (s.peephole && g != kC)
      L.peep[g] = r.values<float>(tname(s, std::string("cell_to_") + kGate[g] + "_weights"), ElemType::F32, {C});
    if (s.layer_norm)
      L.ln[g] = r.values<float>(tname(s, std::string(kGate[g]) + "_layer_norm_coefficients"), ElemType::F32, {C});
  }
  if (s.projection) {
    L.proj = r.values<float>(tname(s, "projection_weights"), ElemType::F32, {P, C});
    if (r.file.contains(tname(s, "projection_bias")))
      L.proj_bias = r.values<float>(tname(s, "projection_bias"), ElemType::F32, {P});
  }
  return L;
}

IntegerLstmLayer load_int_layer(const Reader& r, const LstmLayerSpec& s, const json& layer_json) {
  const std::string where = r.source + ": layer " + s.name;
  check_absent_features(r, s);
  LOWBIT_CHECK(layer_json.contains("quantization") && layer_json["quantization"].is_object(), where,
               ": \"quantization\" (required for integer precision) is missing");
  const json& q = layer_json["quantization"];
  IntegerLstmLayer L;
  L.spec = s;
  L.gates = gates_of(s);
  const int64_t C = s.n_cell, I = s.n_input, P = s.n_output;
  using io::ElemType;

  L.x = get_qparam(q, "input", true, where);
  L.h = get_qparam(q, "output_state", true, where);
  L.hidden = get_qparam(q, "hidden", true, where);
  const QParam cell = get_qparam(q, "cell_state", false, where);
  L.cell_scale_real = cell.scale;
  {  // TFLite CheckedLog2: float32 log2, 1e-3 tolerance on the fractional part
    const float l2 = std::log(cell.scale) * (1.0f / std::log(2.0f));
    const float rounded = std::round(l2);
    LOWBIT_CHECK(std::fabs(l2 - rounded) < 1e-3f, where, ": cell_state scale ", cell.scale,
                 " is not a power of two (the integer kernel needs 2^k)");
    L.cell_scale = static_cast<int>(rounded);
    LOWBIT_CHECK(L.cell_scale <= -9, where, ": cell_state scale 2^", L.cell_scale,
                 " is above 2^-9 (the integer kernel needs |c| < 64, scale <= 2^-9)");
    LOWBIT_CHECK(L.cell_scale >= -15, where, ": cell_state scale 2^", L.cell_scale,
                 " is below 2^-15 (the integer cell tanh supports 2^-15 .. 2^-9)");
  }
  // Without projection the kernel copies the hidden codes (hidden quantization) into the output
  // state, as TFLite does; a file whose two quantizations differ is accepted so that it runs as in
  // TFLite (lowbit quantize always writes them equal).
  if (s.peephole && s.projection)
    LOWBIT_CHECK(P <= C, where, ": peephole with projection needs n_output <= n_cell in the integer kernel");

  const float s_x = L.x.scale, s_h = L.h.scale, s_hidden = L.hidden.scale;
  for (int g : L.gates) {
    IntegerLstmGate& G = L.g[g];
    const std::string wxn = std::string("input_to_") + kGate[g] + "_weights";
    const std::string whn = std::string("recurrent_to_") + kGate[g] + "_weights";
    const std::string bn = std::string(kGate[g]) + "_gate_bias";
    G.wx = r.values<int8_t>(tname(s, wxn), ElemType::I8, {C, I});
    G.wh = r.values<int8_t>(tname(s, whn), ElemType::I8, {C, P});
    const auto bias = r.values<int32_t>(tname(s, bn), ElemType::I32, {C});
    const float s_wx = get_qparam(q, wxn, false, where).scale;
    const float s_wh = get_qparam(q, whn, false, where).scale;
    float s_gate = static_cast<float>(std::pow(2.0, -12));
    if (s.layer_norm) s_gate = get_qparam(q, std::string("gate_") + kGate[g], false, where).scale;
    const float eff_x = s_wx * s_x / s_gate;
    const float eff_h = s_wh * s_h / s_gate;
    G.mx = multiplier_of(eff_x, wxn, where);
    G.mh = multiplier_of(eff_h, whn, where);
    G.bias_x = row_sums_times(G.wx, C, I, -L.x.zero_point, s.layer_norm ? nullptr : &bias);
    G.bias_h = row_sums_times(G.wh, C, P, -L.h.zero_point, nullptr);
    if (s.peephole && g != kC) {
      const std::string pn = std::string("cell_to_") + kGate[g] + "_weights";
      G.peep = r.values<int16_t>(tname(s, pn), ElemType::I16, {C});
      const float s_p = get_qparam(q, pn, false, where).scale;
      const float eff_p = static_cast<float>(std::pow(2, L.cell_scale) * s_p / s_gate);
      G.mp = multiplier_of(eff_p, pn, where);
    }
    if (s.layer_norm) {
      const std::string ln = std::string(kGate[g]) + "_layer_norm_coefficients";
      G.ln_w = r.values<int16_t>(tname(s, ln), ElemType::I16, {C});
      const float s_ln = get_qparam(q, ln, false, where).scale;
      G.mln = multiplier_of(s_ln, ln, where);
      G.ln_guard = std::max(1, static_cast<int32_t>(10000 * s_ln));
      G.ln_bias = bias;
    }
  }
  const float eff_hidden = static_cast<float>(std::pow(2, -15) / s_hidden * std::pow(2, -15));
  L.mhidden = multiplier_of(eff_hidden, "hidden (o·tanh(c))", where);
  if (s.projection) {
    L.proj = r.values<int8_t>(tname(s, "projection_weights"), ElemType::I8, {P, C});
    std::vector<int32_t> pb(static_cast<std::size_t>(P), 0);
    if (r.file.contains(tname(s, "projection_bias"))) pb = r.values<int32_t>(tname(s, "projection_bias"), ElemType::I32, {P});
    L.proj_bias = row_sums_times(L.proj, P, C, L.hidden.zero_point, &pb);
    const float s_wp = get_qparam(q, "projection_weights", false, where).scale;
    const float eff_proj = s_wp * s_hidden / s_h;
    L.mproj = multiplier_of(eff_proj, "projection_weights", where);
  }
  if (s.cell_clip > 0.0f)
    L.cell_clip = static_cast<int16_t>(std::min(std::max(s.cell_clip / cell.scale, -32768.0f), 32767.0f));
  if (s.proj_clip > 0.0f)
    L.proj_clip = static_cast<int8_t>(std::min(std::max(s.proj_clip / s_h, -128.0f), 127.0f));
  L.pack();
  return L;
}

// ---- float step ------------------------------------------------------------------------------

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

struct FloatScratch {
  std::vector<float> pre, act[4], hidden;
};

// `pre_x`, when given, holds this step's W_x·x, [B, G·C], computed ahead for many steps at once.
void float_step(const FloatLayer& L, const float* x, int64_t B, float* h, float* c, LstmLayerRanges* rg,
                FloatScratch& s, const float* pre_x = nullptr) {
  const LstmLayerSpec& sp = L.spec;
  const int64_t C = sp.n_cell, I = sp.n_input, P = sp.n_output;
  const auto G = static_cast<int64_t>(L.gates.size());
  s.pre.resize(static_cast<std::size_t>(B * G * C));
  for (auto& a : s.act) a.resize(static_cast<std::size_t>(B * C));
  s.hidden.resize(static_cast<std::size_t>(B * C));
  if (rg) {
    rg->input.update(x, B * I);
    rg->output_state.update(h, B * P);
    rg->cell_state.update(c, B * C);
  }
  if (pre_x) std::copy(pre_x, pre_x + B * G * C, s.pre.begin());
  else kernels::sgemm(false, true, B, G * C, I, 1.0f, x, I, L.wx.data(), I, 0.0f, s.pre.data(), G * C);
  kernels::sgemm(false, true, B, G * C, P, 1.0f, h, P, L.wh.data(), P, 1.0f, s.pre.data(), G * C);

  auto gate = [&](int g, const float* cs) {
    const auto pos = static_cast<int64_t>(std::find(L.gates.begin(), L.gates.end(), g) - L.gates.begin());
    float* out = s.act[g].data();
    for (int64_t b = 0; b < B; ++b) {
      float* o = out + b * C;
      const float* p = s.pre.data() + b * G * C + pos * C;
      for (int64_t j = 0; j < C; ++j) o[j] = p[j];
      if (sp.peephole && g != kC)
        for (int64_t j = 0; j < C; ++j) o[j] += L.peep[g][static_cast<std::size_t>(j)] * cs[b * C + j];
      if (sp.layer_norm) {
        if (rg) rg->gate[g].update(o, C);
        // TFLite's float MeanStddevNormalization: two passes in float32, 1/sqrt(variance + 1e-8).
        float sum = 0.0f;
        for (int64_t j = 0; j < C; ++j) sum += o[j];
        const float mean = sum / static_cast<float>(C);
        float sum_diff_sq = 0.0f;
        for (int64_t j = 0; j < C; ++j) sum_diff_sq += (o[j] - mean) * (o[j] - mean);
        const float inv = 1.0f / std::sqrt(sum_diff_sq / static_cast<float>(C) + 1e-8f);
        for (int64_t j = 0; j < C; ++j)
          o[j] = (o[j] - mean) * inv * L.ln[g][static_cast<std::size_t>(j)] + L.bias[g][static_cast<std::size_t>(j)];
      } else {
        for (int64_t j = 0; j < C; ++j) o[j] += L.bias[g][static_cast<std::size_t>(j)];
      }
      for (int64_t j = 0; j < C; ++j) o[j] = g == kC ? std::tanh(o[j]) : sigmoidf(o[j]);
    }
  };
  if (!sp.cifg) gate(kI, c);
  gate(kF, c);
  gate(kC, c);
  for (int64_t k = 0; k < B * C; ++k) {
    const float f = s.act[kF][static_cast<std::size_t>(k)];
    const float i = sp.cifg ? 1.0f - f : s.act[kI][static_cast<std::size_t>(k)];
    float v = f * c[k] + i * s.act[kC][static_cast<std::size_t>(k)];
    if (sp.cell_clip > 0.0f) v = std::min(std::max(v, -sp.cell_clip), sp.cell_clip);
    c[k] = v;
  }
  gate(kO, c);
  for (int64_t k = 0; k < B * C; ++k)
    s.hidden[static_cast<std::size_t>(k)] = s.act[kO][static_cast<std::size_t>(k)] * std::tanh(c[k]);
  if (rg) rg->hidden.update(s.hidden.data(), B * C);
  if (sp.projection) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t r = 0; r < P; ++r) h[b * P + r] = L.proj_bias.empty() ? 0.0f : L.proj_bias[static_cast<std::size_t>(r)];
    kernels::sgemm(false, true, B, P, C, 1.0f, s.hidden.data(), C, L.proj.data(), C, 1.0f, h, P);
    if (sp.proj_clip > 0.0f)
      for (int64_t k = 0; k < B * P; ++k) h[k] = std::min(std::max(h[k], -sp.proj_clip), sp.proj_clip);
  } else {
    std::copy(s.hidden.begin(), s.hidden.end(), h);
  }
  if (rg) {
    rg->output_state.update(h, B * P);
    rg->cell_state.update(c, B * C);
  }
}

// ---- integer step ----------------------------------------------------------------------------

// Rescale one side's raw sums of one gate into the int16 gate (TFLite matmul-accumulate).
inline void rescale_accumulate(const int32_t* acc, int64_t acc_stride, const int32_t* bias, QuantizedMultiplier m,
                               int64_t B, int64_t C, int16_t* out) {
  for (int64_t b = 0; b < B; ++b) iops::rescale_accumulate(acc + b * acc_stride, bias, m.multiplier, m.shift, C, out + b * C);
}

void int_matmul_all(std::span<const int8_t> a, int64_t B, int64_t k, const kernels::PackedWeightsI8& w,
                    std::vector<int32_t>& out) {
  out.resize(static_cast<std::size_t>(B * w.n()));
  if (B == 1) kernels::igemv_s32(a, w, out);
  else kernels::igemm_s32(a, B, k, w, out, w.n());
}

}  // namespace

void integer_lstm_step(const IntegerLstmLayer& L, const int8_t* x, int64_t B, int8_t* h, int16_t* c, bool reference,
                       IntegerLstmScratch& s, const int32_t* accx_pre) {
  const LstmLayerSpec& sp = L.spec;
  const int64_t C = sp.n_cell, I = sp.n_input, P = sp.n_output;
  const auto G = static_cast<int64_t>(L.gates.size());
  for (auto& g : s.gate) g.resize(static_cast<std::size_t>(B * C));
  s.tmp.resize(static_cast<std::size_t>(B * C));
  s.tanh_c.resize(static_cast<std::size_t>(B * C));
  s.hidden.resize(static_cast<std::size_t>(B * C));
  const int32_t* accx = nullptr;
  if (!reference) {
    if (accx_pre) {
      accx = accx_pre;
    } else {
      int_matmul_all({x, static_cast<std::size_t>(B * I)}, B, I, L.wx_all, s.accx);
      accx = s.accx.data();
    }
    int_matmul_all({h, static_cast<std::size_t>(B * P)}, B, P, L.wh_all, s.acch);
  }
  // Sigmoid and tanh: tables of every int16 input, or computed where that is fast
  // (iops::computed_activations_fast) and the recurrent weights alone overflow this core's L2,
  // so that each step's GEMV evicts the tables. Same integers either way; the reference path
  // reads the tables.
  const bool computed = !reference && static_cast<int64_t>(L.wh_all.bytes()) > cpu::l2_cache_bytes() &&
                        iops::computed_activations_fast();
  auto sigmoid_of = [computed](const int16_t* in, int64_t count, int16_t* out) {
    if (computed) iops::compute_sigmoid(in, count, out);
    else iops::apply_sigmoid(in, count, out);
  };
  auto tanh_of = [computed](int bits, const int16_t* in, int64_t count, int16_t* out) {
    if (computed) iops::compute_tanh(bits, in, count, out);
    else iops::apply_tanh(bits, in, count, out);
  };
  auto gate = [&](int g) {
    const IntegerLstmGate& Q = L.g[g];
    int16_t* out = s.gate[g].data();
    std::fill(out, out + B * C, int16_t{0});
    if (reference) {
      iops::matmul_accumulate_ref(x, B, I, Q.wx.data(), C, Q.bias_x.data(), Q.mx.multiplier, Q.mx.shift, 0, out);
      iops::matmul_accumulate_ref(h, B, P, Q.wh.data(), C, Q.bias_h.data(), Q.mh.multiplier, Q.mh.shift, 0, out);
    } else {
      const auto pos = static_cast<int64_t>(std::find(L.gates.begin(), L.gates.end(), g) - L.gates.begin());
      rescale_accumulate(accx + pos * C, G * C, Q.bias_x.data(), Q.mx, B, C, out);
      rescale_accumulate(s.acch.data() + pos * C, G * C, Q.bias_h.data(), Q.mh, B, C, out);
    }
    // TFLite passes n_output as the peephole length and row stride (see lstm.h).
    if (sp.peephole && g != kC) iops::peephole_accumulate(Q.peep.data(), P, c, B, P, Q.mp.multiplier, Q.mp.shift, out, P);
    if (sp.layer_norm)
      iops::layer_norm(out, Q.ln_w.data(), Q.ln_bias.data(), Q.mln.multiplier, Q.mln.shift, Q.ln_guard, B, C, out);
    if (g == kC) tanh_of(3, out, B * C, out);
    else sigmoid_of(out, B * C, out);
  };
  if (!sp.cifg) gate(kI);
  gate(kF);
  gate(kC);
  const int64_t n = B * C;
  iops::cwise_mul_shift(s.gate[kF].data(), c, n, 15, c);
  if (sp.cifg) {
    iops::sub1(s.gate[kF].data(), n, s.tmp.data());
    iops::cwise_mul_shift(s.tmp.data(), s.gate[kC].data(), n, 30 + L.cell_scale, s.tmp.data());
  } else {
    iops::cwise_mul_shift(s.gate[kI].data(), s.gate[kC].data(), n, 30 + L.cell_scale, s.tmp.data());
  }
  iops::cwise_add_sat(c, s.tmp.data(), n, c);
  if (L.cell_clip > 0) iops::clip16(c, n, L.cell_clip);
  gate(kO);
  tanh_of(15 + L.cell_scale, c, n, s.tanh_c.data());
  // With a projection TFLite 2.16 (and LiteRT 1.4) quantizes the hidden value with the zero point
  // subtracted, consistent with the +zp_hidden·rowsum(W_proj) folded into the projection bias;
  // without one the hidden value is the output state and the zero point is added.
  iops::cwise_mul_to_int8(s.gate[kO].data(), s.tanh_c.data(), n, L.mhidden.multiplier, L.mhidden.shift,
                          sp.projection ? -L.hidden.zero_point : L.hidden.zero_point, s.hidden.data());
  if (sp.projection) {
    std::fill(h, h + B * P, int8_t{0});
    if (reference) {
      iops::matmul_accumulate_ref(s.hidden.data(), B, C, L.proj.data(), P, L.proj_bias.data(), L.mproj.multiplier,
                                  L.mproj.shift, L.h.zero_point, h);
    } else {
      int_matmul_all(s.hidden, B, C, L.proj_packed, s.accp);
      for (int64_t k = 0; k < B * P; ++k) {
        const int32_t v = quant::multiply_by_quantized_multiplier(
            iops::wrap_add32(L.proj_bias[static_cast<std::size_t>(k % P)], s.accp[static_cast<std::size_t>(k)]),
            L.mproj.multiplier, L.mproj.shift);
        h[k] = iops::sat8(v + L.h.zero_point);
      }
    }
    if (L.proj_clip > 0) iops::clip8(h, B * P, L.proj_clip);
  } else {
    std::copy(s.hidden.begin(), s.hidden.end(), h);
  }
}

void IntegerLstmLayer::pack() {
  const LstmLayerSpec& s = spec;
  const int64_t C = s.n_cell, I = s.n_input, P = s.n_output;
  gates = s.cifg ? std::vector<int>{1, 2, 3} : std::vector<int>{0, 1, 2, 3};
  std::vector<int8_t> wx_cat, wh_cat;
  for (int gi : gates) {
    LOWBIT_CHECK(static_cast<int64_t>(g[gi].wx.size()) == C * I && static_cast<int64_t>(g[gi].wh.size()) == C * P,
                 "IntegerLstmLayer::pack: gate ", gi, " weights do not match the layer's sizes");
    wx_cat.insert(wx_cat.end(), g[gi].wx.begin(), g[gi].wx.end());
    wh_cat.insert(wh_cat.end(), g[gi].wh.begin(), g[gi].wh.end());
  }
  const auto G = static_cast<int64_t>(gates.size());
  wx_all = kernels::PackedWeightsI8::pack(wx_cat, G * C, I, I);
  wh_all = kernels::PackedWeightsI8::pack(wh_cat, G * C, P, P);
  if (s.projection) proj_packed = kernels::PackedWeightsI8::pack(proj, P, C, C);
}

// ---- model ---------------------------------------------------------------------------------

struct LstmModel::Impl {
  io::ModelFile file;
  std::string source;
  LstmKind kind = LstmKind::lstm;
  bool integer = false;
  std::vector<LstmLayerSpec> specs;
  std::vector<FloatLayer> fl;
  std::vector<IntegerLstmLayer> il;
  int64_t vocab = 0, emb_dim = 0;
  std::vector<float> emb_f, head_w, head_b;
  std::vector<int8_t> emb_q, head_q;
  std::vector<int32_t> head_bias;  // b − zp_out · rowsum(head)
  kernels::PackedWeightsI8 head_packed;
  double logit_scale = 1.0;
  int64_t weight_bytes = 0;
};

struct LstmModel::State::Impl {
  int64_t batch = 0;
  std::vector<std::vector<float>> hf, cf, xf;
  std::vector<std::vector<int8_t>> hq, xq;
  std::vector<std::vector<int16_t>> cq;
  FloatScratch fs;
  IntegerLstmScratch is;
  std::vector<int32_t> acc;
  // Sequence runs: input projections of a block of steps, and one layer's outputs for the block.
  std::vector<int32_t> seq_accx;
  std::vector<float> seq_prex, seq_yf[2];
  std::vector<int8_t> seq_yq[2];
};

LstmModel::LstmModel() = default;
LstmModel::LstmModel(LstmModel&&) noexcept = default;
LstmModel& LstmModel::operator=(LstmModel&&) noexcept = default;
LstmModel::~LstmModel() = default;
LstmModel::State::State() = default;
LstmModel::State::State(State&&) noexcept = default;
LstmModel::State& LstmModel::State::operator=(State&&) noexcept = default;
LstmModel::State::~State() = default;
int64_t LstmModel::State::batch() const { return impl ? impl->batch : 0; }

bool LstmModel::is_lstm_file(const io::ModelFile& file) {
  const json meta = json::parse(file.metadata, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains("model") || !meta["model"].is_object()) return false;
  const json& m = meta["model"];
  return m.contains("kind") && (m["kind"] == "lstm" || m["kind"] == "lstm_lm");
}

LstmModel LstmModel::from_model_file(const io::ModelFile& file, const std::string& source) {
  const json meta = json::parse(file.metadata, nullptr, false);
  LOWBIT_CHECK(!meta.is_discarded() && meta.is_object(), source, ": metadata is not a JSON object");
  LOWBIT_CHECK(meta.contains("model") && meta["model"].is_object(), source, ": metadata has no \"model\" object");
  const json& m = meta["model"];
  LOWBIT_CHECK(m.contains("kind") && m["kind"].is_string(), source, ": model metadata has no \"kind\"");
  const std::string kind = m["kind"].get<std::string>();
  LOWBIT_CHECK(kind == "lstm" || kind == "lstm_lm", source, ": model kind \"", kind,
               "\" is not an LSTM model (expected lstm or lstm_lm)");
  LOWBIT_CHECK(m.contains("precision") && m["precision"].is_string(), source,
               ": model metadata has no \"precision\" (float or integer)");
  const std::string precision = m["precision"].get<std::string>();
  LOWBIT_CHECK(precision == "float" || precision == "integer", source, ": precision \"", precision,
               "\" (expected float or integer)");
  LOWBIT_CHECK(m.contains("layers") && m["layers"].is_array() && !m["layers"].empty(), source,
               ": model metadata needs a non-empty \"layers\" array");

  LstmModel out;
  out.impl_ = std::make_unique<Impl>();
  Impl& d = *out.impl_;
  d.file = file;
  d.source = source;
  d.kind = kind == "lstm" ? LstmKind::lstm : LstmKind::lstm_lm;
  d.integer = precision == "integer";
  const Reader r{d.file, d.source};
  for (std::size_t i = 0; i < m["layers"].size(); ++i) d.specs.push_back(parse_layer(m["layers"][i], i, source));
  for (std::size_t i = 1; i < d.specs.size(); ++i)
    LOWBIT_CHECK(d.specs[i].n_input == d.specs[i - 1].n_output, source, ": layer ", d.specs[i].name, " has n_input ",
                 d.specs[i].n_input, " but the previous layer outputs ", d.specs[i - 1].n_output);
  for (std::size_t i = 0; i < d.specs.size(); ++i) {
    if (d.integer) d.il.push_back(load_int_layer(r, d.specs[i], m["layers"][i]));
    else d.fl.push_back(load_float_layer(r, d.specs[i]));
  }
  if (d.integer)
    for (std::size_t i = 1; i < d.il.size(); ++i)
      LOWBIT_CHECK(same_quant(d.il[i].x, d.il[i - 1].h), source, ": layer ", d.specs[i].name,
                   " input quantization (scale ", d.il[i].x.scale, ", zero point ", d.il[i].x.zero_point,
                   ") differs from the previous layer's output_state (scale ", d.il[i - 1].h.scale, ", zero point ",
                   d.il[i - 1].h.zero_point, ")");
  if (d.kind == LstmKind::lstm_lm) {
    d.vocab = get_int(m, "vocab_size", source);
    d.emb_dim = get_int(m, "embedding_dim", source);
    LOWBIT_CHECK(d.emb_dim == d.specs.front().n_input, source, ": embedding_dim ", d.emb_dim,
                 " differs from the first layer's n_input ", d.specs.front().n_input);
    const int64_t V = d.vocab, E = d.emb_dim, P = d.specs.back().n_output;
    if (d.integer) {
      d.emb_q = r.values<int8_t>("embedding", io::ElemType::I8, {V, E});
      d.head_q = r.values<int8_t>("head.weight", io::ElemType::I8, {V, P});
      const auto hb = r.values<int32_t>("head.bias", io::ElemType::I32, {V});
      LOWBIT_CHECK(m.contains("head_quantization") && m["head_quantization"].is_object(), source,
                   ": integer lstm_lm needs \"head_quantization\"");
      const float s_w = get_qparam(m["head_quantization"], "weight", false, source).scale;
      const QParam& out_q = d.il.back().h;
      d.head_bias = row_sums_times(d.head_q, V, P, -out_q.zero_point, &hb);
      d.logit_scale = static_cast<double>(out_q.scale) * static_cast<double>(s_w);
      d.head_packed = kernels::PackedWeightsI8::pack(d.head_q, V, P, P);
    } else {
      d.emb_f = r.values<float>("embedding", io::ElemType::F32, {V, E});
      d.head_w = r.values<float>("head.weight", io::ElemType::F32, {V, P});
      d.head_b = r.values<float>("head.bias", io::ElemType::F32, {V});
    }
  }
  for (const auto& [name, a] : d.file.tensors) d.weight_bytes += static_cast<int64_t>(a.nbytes());
  return out;
}

LstmModel LstmModel::load(const std::string& path) { return from_model_file(io::load(path), path); }

LstmKind LstmModel::kind() const { return impl_->kind; }
bool LstmModel::is_integer() const { return impl_->integer; }
const std::vector<LstmLayerSpec>& LstmModel::layers() const { return impl_->specs; }
int64_t LstmModel::n_input() const { return impl_->specs.front().n_input; }
int64_t LstmModel::n_output() const { return impl_->specs.back().n_output; }
int64_t LstmModel::vocab_size() const { return impl_->vocab; }
const io::ModelFile& LstmModel::file() const { return impl_->file; }
int64_t LstmModel::weight_bytes() const { return impl_->weight_bytes; }
double LstmModel::input_scale() const { return impl_->integer ? impl_->il.front().x.scale : 0.0; }
int32_t LstmModel::input_zero_point() const { return impl_->integer ? impl_->il.front().x.zero_point : 0; }
double LstmModel::output_scale() const { return impl_->integer ? impl_->il.back().h.scale : 0.0; }
int32_t LstmModel::output_zero_point() const { return impl_->integer ? impl_->il.back().h.zero_point : 0; }

LstmModel::State LstmModel::initial_state(int64_t batch) const {
  LOWBIT_CHECK(batch >= 1, "LSTM state: batch ", batch, " (expected >= 1)");
  State s;
  s.impl = std::make_unique<State::Impl>();
  s.impl->batch = batch;
  for (std::size_t i = 0; i < impl_->specs.size(); ++i) {
    const LstmLayerSpec& sp = impl_->specs[i];
    const auto nh = static_cast<std::size_t>(batch * sp.n_output), nc = static_cast<std::size_t>(batch * sp.n_cell);
    if (impl_->integer) {
      s.impl->hq.emplace_back(nh, static_cast<int8_t>(impl_->il[i].h.zero_point));
      s.impl->cq.emplace_back(nc, int16_t{0});
    } else {
      s.impl->hf.emplace_back(nh, 0.0f);
      s.impl->cf.emplace_back(nc, 0.0f);
    }
  }
  return s;
}

namespace {
// Sequence runs go block by block, and within a block layer by layer: a layer's input projection
// W_x·x for every step of the block is one GEMM (compute-bound, with M = steps·batch rows), and
// each step then multiplies only the recurrent weights. The arithmetic per value is unchanged,
// so the results are identical to running step by step.
constexpr int64_t kSeqBlock = 64;
}  // namespace

void LstmModel::run_float(const float* x, int64_t steps, State& state, float* y,
                          std::vector<LstmLayerRanges>* ranges) const {
  LOWBIT_CHECK(!impl_->integer, impl_->source, ": run_float needs a float model");
  LOWBIT_CHECK(state.impl && state.impl->hf.size() == impl_->specs.size(), "LSTM state does not belong to this model");
  if (ranges) ranges->resize(impl_->specs.size());
  State::Impl& s = *state.impl;
  const int64_t B = s.batch, I = n_input(), P = n_output();
  const std::size_t nl = impl_->fl.size();
  for (int64_t t0 = 0; t0 < steps; t0 += kSeqBlock) {
    const int64_t T = std::min(kSeqBlock, steps - t0);
    const float* in = x + t0 * B * I;
    int64_t in_w = I;
    for (std::size_t l = 0; l < nl; ++l) {
      const FloatLayer& L = impl_->fl[l];
      const LstmLayerSpec& sp = L.spec;
      const int64_t GC = static_cast<int64_t>(L.gates.size()) * sp.n_cell, Pl = sp.n_output;
      s.seq_prex.resize(static_cast<std::size_t>(T * B * GC));
      kernels::sgemm(false, true, T * B, GC, in_w, 1.0f, in, in_w, L.wx.data(), in_w, 0.0f, s.seq_prex.data(), GC);
      float* out = l + 1 == nl ? y + t0 * B * P : nullptr;
      if (!out) {
        s.seq_yf[l % 2].resize(static_cast<std::size_t>(T * B * Pl));
        out = s.seq_yf[l % 2].data();
      }
      for (int64_t t = 0; t < T; ++t) {
        float_step(L, in + t * B * in_w, B, s.hf[l].data(), s.cf[l].data(), ranges ? &(*ranges)[l] : nullptr, s.fs,
                   s.seq_prex.data() + t * B * GC);
        std::copy(s.hf[l].begin(), s.hf[l].end(), out + t * B * Pl);
      }
      in = out;
      in_w = Pl;
    }
  }
}

void LstmModel::run_integer(const int8_t* x, int64_t steps, State& state, int8_t* y, bool reference) const {
  LOWBIT_CHECK(impl_->integer, impl_->source, ": run_integer needs an integer model");
  LOWBIT_CHECK(state.impl && state.impl->hq.size() == impl_->specs.size(), "LSTM state does not belong to this model");
  State::Impl& s = *state.impl;
  const int64_t B = s.batch, I = n_input(), P = n_output();
  const std::size_t nl = impl_->il.size();
  if (reference) {
    for (int64_t t = 0; t < steps; ++t) {
      const int8_t* in = x + t * B * I;
      for (std::size_t l = 0; l < nl; ++l) {
        integer_lstm_step(impl_->il[l], in, B, s.hq[l].data(), s.cq[l].data(), true, s.is);
        in = s.hq[l].data();
      }
      std::copy(in, in + B * P, y + t * B * P);
    }
    return;
  }
  for (int64_t t0 = 0; t0 < steps; t0 += kSeqBlock) {
    const int64_t T = std::min(kSeqBlock, steps - t0);
    const int8_t* in = x + t0 * B * I;
    int64_t in_w = I;
    for (std::size_t l = 0; l < nl; ++l) {
      const IntegerLstmLayer& L = impl_->il[l];
      const int64_t GC = L.wx_all.n(), Pl = L.spec.n_output;
      s.seq_accx.resize(static_cast<std::size_t>(T * B * GC));
      if (T * B == 1) kernels::igemv_s32({in, static_cast<std::size_t>(in_w)}, L.wx_all, s.seq_accx);
      else kernels::igemm_s32({in, static_cast<std::size_t>(T * B * in_w)}, T * B, in_w, L.wx_all, s.seq_accx, GC);
      int8_t* out = l + 1 == nl ? y + t0 * B * P : nullptr;
      if (!out) {
        s.seq_yq[l % 2].resize(static_cast<std::size_t>(T * B * Pl));
        out = s.seq_yq[l % 2].data();
      }
      for (int64_t t = 0; t < T; ++t) {
        integer_lstm_step(L, in + t * B * in_w, B, s.hq[l].data(), s.cq[l].data(), false, s.is,
                          s.seq_accx.data() + t * B * GC);
        std::copy(s.hq[l].begin(), s.hq[l].end(), out + t * B * Pl);
      }
      in = out;
      in_w = Pl;
    }
  }
}

void LstmModel::run_lm(const int32_t* tokens, int64_t steps, State& state, float* logits, bool reference,
                       std::vector<LstmLayerRanges>* ranges) const {
  const Impl& d = *impl_;
  LOWBIT_CHECK(d.kind == LstmKind::lstm_lm, d.source, ": run_lm needs an lstm_lm model");
  LOWBIT_CHECK(state.impl, "LSTM state is empty");
  State::Impl& s = *state.impl;
  const int64_t B = s.batch, E = d.emb_dim, V = d.vocab, P = n_output();
  for (int64_t i = 0; i < steps * B; ++i)
    LOWBIT_CHECK(tokens[i] >= 0 && tokens[i] < V, "token id ", tokens[i], " at position ", i,
                 " is out of range (vocabulary size ", V, ")");
  for (int64_t t = 0; t < steps; ++t) {
    const int32_t* tok = tokens + t * B;
    float* out = logits + t * B * V;
    if (d.integer) {
      s.xq.resize(1);
      s.xq[0].resize(static_cast<std::size_t>(B * E));
      for (int64_t b = 0; b < B; ++b)
        std::copy_n(d.emb_q.data() + tok[b] * E, E, s.xq[0].data() + b * E);
      std::vector<int8_t> y(static_cast<std::size_t>(B * P));
      run_integer(s.xq[0].data(), 1, state, y.data(), reference);
      int_matmul_all(y, B, P, d.head_packed, s.acc);
      for (int64_t k = 0; k < B * V; ++k)
        out[k] = static_cast<float>(
            static_cast<double>(iops::wrap_add32(s.acc[static_cast<std::size_t>(k)], d.head_bias[static_cast<std::size_t>(k % V)])) *
            d.logit_scale);
    } else {
      s.xf.resize(1);
      s.xf[0].resize(static_cast<std::size_t>(B * E));
      for (int64_t b = 0; b < B; ++b)
        std::copy_n(d.emb_f.data() + tok[b] * E, E, s.xf[0].data() + b * E);
      std::vector<float> y(static_cast<std::size_t>(B * P));
      run_float(s.xf[0].data(), 1, state, y.data(), ranges);
      for (int64_t b = 0; b < B; ++b) std::copy(d.head_b.begin(), d.head_b.end(), out + b * V);
      kernels::sgemm(false, true, B, V, P, 1.0f, y.data(), P, d.head_w.data(), P, 1.0f, out, V);
    }
  }
}

}  // namespace lowbit::runtime
