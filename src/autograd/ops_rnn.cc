// Embedding lookup and the fused recurrent ops (LSTM, GRU, tanh RNN): forward over all T steps,
// back-propagation through time in the backward closure. See autograd/rnn.h.
#include "lowbit/autograd/rnn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/internal.h"
#include "lowbit/kernels/sgemm.h"

namespace lowbit::autograd {
using detail::checked_value;

namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

bool wants(const NodePtr& p) { return p && p->requires_grad; }

// C += op(A)·op(B) into a parent's gradient buffer, overwriting a freshly created buffer.
void gemm_into(Node& parent, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
               const float* b, int64_t ldb) {
  bool fresh = false;
  float* g = parent.grad_buffer(&fresh);
  kernels::sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, fresh ? 0.0f : 1.0f, g, n);
}

void add_into(Node& parent, const float* src, int64_t n) {
  detail::add_to_grad(parent, {src, static_cast<std::size_t>(n)});
}

// Column sums of a row-major [rows, cols] matrix added into a parent's gradient.
void add_column_sums(Node& parent, const float* m, int64_t rows, int64_t cols) {
  float* g = parent.grad_buffer();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) g[c] += m[r * cols + c];
}

void check_shape(const Var& v, const Shape& want, const char* op, const char* what) {
  LOWBIT_CHECK(v.defined(), op, ": '", what, "' is required here but undefined");
  LOWBIT_CHECK(v.value().shape() == want, op, ": '", what, "' is ", v.value().describe(), ", expected ",
               shape_str(want));
}

void check_absent(const Var& v, const char* op, const char* what, const char* why) {
  LOWBIT_CHECK(!v.defined(), op, ": '", what, "' is given but ", why);
}

// Copies the optional initial state (zeros when undefined) into slot 0 of a state history.
void initial_state(const Var& s, float* dst, int64_t n) {
  if (s.defined()) std::copy(s.data(), s.data() + n, dst);
  else std::fill(dst, dst + n, 0.0f);
}

// Applies the output quantizer (if any) to `raw` into `out`, n elements.
void quantize_state(const std::optional<Quantizer>& q, const float* raw, float* out, int64_t n) {
  if (q) q->forward({raw, static_cast<std::size_t>(n)}, {out, static_cast<std::size_t>(n)});
  else std::copy(raw, raw + n, out);
}

void quantize_state_backward(const std::optional<Quantizer>& q, const float* raw, const float* g, float* gi, int64_t n) {
  if (q) q->backward({raw, static_cast<std::size_t>(n)}, {g, static_cast<std::size_t>(n)}, {gi, static_cast<std::size_t>(n)});
  else std::copy(g, g + n, gi);
}

struct SeqDims {
  int64_t T, B, I;
};

SeqDims sequence_dims(const Var& x, const char* op) {
  const Tensor& xv = checked_value(x, op, "x");
  LOWBIT_CHECK(xv.dim() == 3 && xv.size(0) >= 1 && xv.size(1) >= 1, op, ": expected x[T, B, in] with T, B >= 1, got ",
               xv.describe());
  return {xv.size(0), xv.size(1), xv.size(2)};
}

}  // namespace

// ---- embedding --------------------------------------------------------------------------------

Var embedding(const Var& table, std::span<const int32_t> ids) {
  const Tensor& tv = checked_value(table, "embedding", "table");
  LOWBIT_CHECK(tv.dim() == 2, "embedding: expected a table [V, E], got ", tv.describe());
  const int64_t V = tv.size(0), E = tv.size(1), n = static_cast<int64_t>(ids.size());
  for (int64_t i = 0; i < n; ++i)
    LOWBIT_CHECK(ids[i] >= 0 && ids[i] < V, "embedding: token id ", ids[i], " at position ", i,
                 " is outside the vocabulary [0, ", V, ")");
  Tensor out = Tensor::zeros({n, E}, DType::f32);
  const float* t = tv.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < n; ++i) std::copy(t + ids[i] * E, t + (ids[i] + 1) * E, o + i * E);
  std::vector<int32_t> idv(ids.begin(), ids.end());
  return make_result("embedding", out, {table}, [idv = std::move(idv), E](Node& self) {
    float* g = self.parents[0]->grad_buffer();
    const float* go = self.grad.data<float>();
    for (std::size_t i = 0; i < idv.size(); ++i) {
      float* row = g + static_cast<int64_t>(idv[i]) * E;
      const float* src = go + static_cast<int64_t>(i) * E;
      for (int64_t j = 0; j < E; ++j) row[j] += src[j];
    }
  });
}

// ---- LSTM -------------------------------------------------------------------------------------

Var lstm(const Var& x, const Var& h0, const Var& c0, const LstmWeights& w, const LstmConfig& cfg,
         RnnState* final_state) {
  const char* op = "lstm";
  const SeqDims dims = sequence_dims(x, op);
  const int64_t T = dims.T, B = dims.B, I = dims.I;
  const int64_t G = cfg.gates();
  const Tensor& wxv = checked_value(w.w_x, op, "w_x");
  LOWBIT_CHECK(wxv.dim() == 2 && wxv.size(0) % G == 0 && wxv.size(0) > 0 && wxv.size(1) == I, op, ": w_x ",
               wxv.describe(), " does not fit ", G, " gates over an input of ", I, " features (expected [", G, "*C, ", I,
               "])");
  const int64_t C = wxv.size(0) / G, GC = G * C;
  int64_t P = C;
  if (cfg.projection) {
    LOWBIT_CHECK(w.proj_w.defined() && w.proj_w.value().dim() == 2, op, ": projection needs proj_w [P, C]");
    P = w.proj_w.size(0);
    check_shape(w.proj_w, {P, C}, op, "proj_w");
    if (w.proj_b.defined()) check_shape(w.proj_b, {P}, op, "proj_b");
  } else {
    check_absent(w.proj_w, op, "proj_w", "the configuration has no projection");
    check_absent(w.proj_b, op, "proj_b", "the configuration has no projection");
  }
  check_shape(w.w_h, {GC, P}, op, "w_h");
  check_shape(w.bias, {GC}, op, "bias");
  if (cfg.peephole) check_shape(w.peephole, {(G - 1) * C}, op, "peephole");
  else check_absent(w.peephole, op, "peephole", "the configuration has no peephole");
  if (cfg.layer_norm) check_shape(w.ln, {GC}, op, "ln");
  else check_absent(w.ln, op, "ln", "the configuration has no layer norm");
  if (h0.defined()) check_shape(h0, {B, P}, op, "h0");
  if (c0.defined()) check_shape(c0, {B, C}, op, "c0");
  LOWBIT_CHECK(cfg.cell_clip >= 0 && cfg.proj_clip >= 0, op, ": clip values must be >= 0 (0 = none)");

  // Gate slots in the stacks.
  const int64_t gi = cfg.cifg ? -1 : 0, gf = cfg.cifg ? 0 : 1, gg = gf + 1, go = gf + 2;
  const int64_t pi = 0, pf = cfg.cifg ? 0 : 1, po = pf + 1;  // peephole slots

  const Tensor xv = x.value(), whv = w.w_h.value(), bv = w.bias.value();
  const Tensor pv = cfg.peephole ? w.peephole.value() : Tensor();
  const Tensor lnv = cfg.layer_norm ? w.ln.value() : Tensor();
  const Tensor pwv = cfg.projection ? w.proj_w.value() : Tensor();
  const Tensor pbv = w.proj_b.defined() ? w.proj_b.value() : Tensor();

  Tensor A = Tensor::zeros({T, B, GC}, DType::f32);  // pre-activations; with layer norm, normalized
  Tensor inv_std = cfg.layer_norm ? Tensor::zeros({T, B, G}, DType::f32) : Tensor();
  Tensor gates = Tensor::zeros({T, B, GC}, DType::f32);
  Tensor cs = Tensor::zeros({T + 1, B, C}, DType::f32);
  Tensor craw = cfg.cell_clip > 0 ? Tensor::zeros({T, B, C}, DType::f32) : Tensor();
  Tensor tcs = Tensor::zeros({T, B, C}, DType::f32);
  Tensor ms = cfg.projection ? Tensor::zeros({T, B, C}, DType::f32) : Tensor();
  Tensor hraw = Tensor::zeros({T, B, P}, DType::f32);
  Tensor hs = Tensor::zeros({T + 1, B, P}, DType::f32);

  float* a_all = A.data<float>();
  const float* bias = bv.data<float>();
  if (!cfg.layer_norm)
    for (int64_t r = 0; r < T * B; ++r) std::copy(bias, bias + GC, a_all + r * GC);
  kernels::sgemm(false, true, T * B, GC, I, 1.0f, xv.data<float>(), I, wxv.data<float>(), I,
                 cfg.layer_norm ? 0.0f : 1.0f, a_all, GC);
  initial_state(h0, hs.data<float>(), B * P);
  initial_state(c0, cs.data<float>(), B * C);

  const float* peep = cfg.peephole ? pv.data<float>() : nullptr;
  const float* lnc = cfg.layer_norm ? lnv.data<float>() : nullptr;
  const float cell_clip = cfg.cell_clip, proj_clip = cfg.proj_clip;
  for (int64_t t = 0; t < T; ++t) {
    float* a = a_all + t * B * GC;
    const float* h_prev = hs.data<float>() + t * B * P;
    kernels::sgemm(false, true, B, GC, P, 1.0f, h_prev, P, whv.data<float>(), P, 1.0f, a, GC);
    for (int64_t b = 0; b < B; ++b) {
      float* ar = a + b * GC;
      float* gr = gates.data<float>() + (t * B + b) * GC;
      const float* cp = cs.data<float>() + (t * B + b) * C;
      float* cn = cs.data<float>() + ((t + 1) * B + b) * C;
      auto finish_gate = [&](int64_t k, bool is_tanh) {
        float* v = ar + k * C;
        float* out = gr + k * C;
        if (cfg.layer_norm) {
          double s = 0, s2 = 0;
          for (int64_t j = 0; j < C; ++j) s += v[j], s2 += static_cast<double>(v[j]) * v[j];
          const double mean = s / static_cast<double>(C);
          double var = s2 / static_cast<double>(C) - mean * mean;
          if (var <= 0) var = 1e-8;
          const float inv = static_cast<float>(1.0 / std::sqrt(var));
          inv_std.data<float>()[(t * B + b) * G + k] = inv;
          for (int64_t j = 0; j < C; ++j) {
            const float n = (v[j] - static_cast<float>(mean)) * inv;
            v[j] = n;
            const float pre = lnc[k * C + j] * n + bias[k * C + j];
            out[j] = is_tanh ? std::tanh(pre) : sigmoid(pre);
          }
        } else {
          for (int64_t j = 0; j < C; ++j) out[j] = is_tanh ? std::tanh(v[j]) : sigmoid(v[j]);
        }
      };
      if (peep) {
        for (int64_t j = 0; j < C; ++j) {
          if (!cfg.cifg) ar[gi * C + j] += peep[pi * C + j] * cp[j];
          ar[gf * C + j] += peep[pf * C + j] * cp[j];
        }
      }
      if (!cfg.cifg) finish_gate(gi, false);
      finish_gate(gf, false);
      finish_gate(gg, true);
      for (int64_t j = 0; j < C; ++j) {
        const float f = gr[gf * C + j], g = gr[gg * C + j];
        const float i = cfg.cifg ? 1.0f - f : gr[gi * C + j];
        const float c = f * cp[j] + i * g;
        if (cell_clip > 0) craw.data<float>()[(t * B + b) * C + j] = c;
        cn[j] = cell_clip > 0 ? std::clamp(c, -cell_clip, cell_clip) : c;
        if (peep) ar[go * C + j] += peep[po * C + j] * cn[j];
      }
      finish_gate(go, false);
      float* tc = tcs.data<float>() + (t * B + b) * C;
      float* m = cfg.projection ? ms.data<float>() + (t * B + b) * C : hraw.data<float>() + (t * B + b) * P;
      for (int64_t j = 0; j < C; ++j) {
        tc[j] = std::tanh(cn[j]);
        m[j] = gr[go * C + j] * tc[j];
      }
    }
    float* hr = hraw.data<float>() + t * B * P;
    float* h = hs.data<float>() + (t + 1) * B * P;
    if (cfg.projection) {
      if (pbv.defined())
        for (int64_t b = 0; b < B; ++b) std::copy(pbv.data<float>(), pbv.data<float>() + P, hr + b * P);
      kernels::sgemm(false, true, B, P, C, 1.0f, ms.data<float>() + t * B * C, C, pwv.data<float>(), C,
                     pbv.defined() ? 1.0f : 0.0f, hr, P);
      if (proj_clip > 0) {
        std::vector<float> clipped(static_cast<std::size_t>(B * P));
        for (int64_t k = 0; k < B * P; ++k) clipped[k] = std::clamp(hr[k], -proj_clip, proj_clip);
        quantize_state(cfg.output_quant, clipped.data(), h, B * P);
        continue;
      }
    }
    quantize_state(cfg.output_quant, hr, h, B * P);
  }

  Tensor y = Tensor::zeros({T, B, P}, DType::f32);
  std::copy(hs.data<float>() + B * P, hs.data<float>() + (T + 1) * B * P, y.data<float>());
  if (final_state) {
    final_state->h = Tensor::zeros({B, P}, DType::f32);
    final_state->c = Tensor::zeros({B, C}, DType::f32);
    std::copy(hs.data<float>() + T * B * P, hs.data<float>() + (T + 1) * B * P, final_state->h.data<float>());
    std::copy(cs.data<float>() + T * B * C, cs.data<float>() + (T + 1) * B * C, final_state->c.data<float>());
  }

  const Tensor wx_keep = wxv;
  return make_result(
      op, y, {x, h0, c0, w.w_x, w.w_h, w.bias, w.peephole, w.proj_w, w.proj_b, w.ln},
      [=](Node& self) {
        const float* dy = self.grad.data<float>();
        const bool proj = cfg.projection;
        Tensor dA = Tensor::zeros({T, B, GC}, DType::f32);
        Tensor dHraw = Tensor::zeros({T, B, P}, DType::f32);
        std::vector<float> dh(static_cast<std::size_t>(B * P)), dh_next(static_cast<std::size_t>(B * P), 0.0f);
        std::vector<float> dc_next(static_cast<std::size_t>(B * C), 0.0f), dm_buf(proj ? B * C : 0);
        std::vector<float> clipped(static_cast<std::size_t>(B * P));
        std::vector<float> dbias(static_cast<std::size_t>(GC), 0.0f), dln(cfg.layer_norm ? GC : 0, 0.0f);
        std::vector<float> dpeep(cfg.peephole ? (G - 1) * C : 0, 0.0f);
        const float* peep = cfg.peephole ? pv.data<float>() : nullptr;
        const float* lnc = cfg.layer_norm ? lnv.data<float>() : nullptr;
        float* dA_all = dA.data<float>();

        for (int64_t t = T - 1; t >= 0; --t) {
          const float* dyt = dy + t * B * P;
          for (int64_t k = 0; k < B * P; ++k) dh[k] = dyt[k] + dh_next[k];
          const float* hr = hraw.data<float>() + t * B * P;
          float* dr = dHraw.data<float>() + t * B * P;
          if (proj && cfg.proj_clip > 0) {
            for (int64_t k = 0; k < B * P; ++k) clipped[k] = std::clamp(hr[k], -cfg.proj_clip, cfg.proj_clip);
            quantize_state_backward(cfg.output_quant, clipped.data(), dh.data(), dr, B * P);
            for (int64_t k = 0; k < B * P; ++k)
              if (std::abs(hr[k]) > cfg.proj_clip) dr[k] = 0.0f;
          } else {
            quantize_state_backward(cfg.output_quant, hr, dh.data(), dr, B * P);
          }
          const float* dm_all = dr;
          if (proj) {
            kernels::sgemm(false, false, B, C, P, 1.0f, dr, P, pwv.data<float>(), C, 0.0f, dm_buf.data(), C);
            dm_all = dm_buf.data();
          }
          float* dAt = dA_all + t * B * GC;
          for (int64_t b = 0; b < B; ++b) {
            const float* gr = gates.data<float>() + (t * B + b) * GC;
            const float* nr = A.data<float>() + (t * B + b) * GC;  // normalized values (layer norm)
            const float* cp = cs.data<float>() + (t * B + b) * C;
            const float* cn = cs.data<float>() + ((t + 1) * B + b) * C;
            const float* tc = tcs.data<float>() + (t * B + b) * C;
            const float* dm = dm_all + b * (proj ? C : P);
            float* dar = dAt + b * GC;
            float* dcn = dc_next.data() + b * C;
            // Gradient at a gate's activation input -> at its pre-normalization value.
            auto gate_back = [&](int64_t k) {
              float* d = dar + k * C;
              if (cfg.layer_norm) {
                const float inv = inv_std.data<float>()[(t * B + b) * G + k];
                const float* n = nr + k * C;
                double s1 = 0, s2 = 0;
                for (int64_t j = 0; j < C; ++j) {
                  dln[k * C + j] += d[j] * n[j];
                  dbias[k * C + j] += d[j];
                  const float dn = d[j] * lnc[k * C + j];
                  s1 += dn;
                  s2 += static_cast<double>(dn) * n[j];
                  d[j] = dn;
                }
                const float m1 = static_cast<float>(s1 / static_cast<double>(C));
                const float m2 = static_cast<float>(s2 / static_cast<double>(C));
                for (int64_t j = 0; j < C; ++j) d[j] = inv * (d[j] - m1 - n[j] * m2);
              } else {
                for (int64_t j = 0; j < C; ++j) dbias[k * C + j] += d[j];
              }
            };
            for (int64_t j = 0; j < C; ++j) {
              const float o = gr[go * C + j];
              dar[go * C + j] = dm[j] * tc[j] * o * (1.0f - o);
            }
            gate_back(go);
            for (int64_t j = 0; j < C; ++j) {
              const float o = gr[go * C + j];
              float dc = dcn[j] + dm[j] * o * (1.0f - tc[j] * tc[j]);
              if (peep) {
                dc += dar[go * C + j] * peep[po * C + j];
                dpeep[po * C + j] += dar[go * C + j] * cn[j];
              }
              if (cfg.cell_clip > 0 && std::abs(craw.data<float>()[(t * B + b) * C + j]) > cfg.cell_clip) dc = 0.0f;
              const float f = gr[gf * C + j], g = gr[gg * C + j];
              const float i = cfg.cifg ? 1.0f - f : gr[gi * C + j];
              float df = dc * cp[j];
              if (cfg.cifg) df -= dc * g;
              dar[gf * C + j] = df * f * (1.0f - f);
              dar[gg * C + j] = dc * i * (1.0f - g * g);
              if (!cfg.cifg) dar[gi * C + j] = dc * g * i * (1.0f - i);
              dcn[j] = dc * f;
            }
            if (!cfg.cifg) gate_back(gi);
            gate_back(gf);
            gate_back(gg);
            if (peep)
              for (int64_t j = 0; j < C; ++j) {
                dcn[j] += dar[gf * C + j] * peep[pf * C + j];
                dpeep[pf * C + j] += dar[gf * C + j] * cp[j];
                if (!cfg.cifg) {
                  dcn[j] += dar[gi * C + j] * peep[pi * C + j];
                  dpeep[pi * C + j] += dar[gi * C + j] * cp[j];
                }
              }
          }
          kernels::sgemm(false, false, B, P, GC, 1.0f, dAt, GC, whv.data<float>(), P, 0.0f, dh_next.data(), P);
        }

        const auto& par = self.parents;
        if (wants(par[0])) gemm_into(*par[0], false, false, T * B, I, GC, dA_all, GC, wx_keep.data<float>(), I);
        if (wants(par[1])) add_into(*par[1], dh_next.data(), B * P);
        if (wants(par[2])) add_into(*par[2], dc_next.data(), B * C);
        if (wants(par[3])) gemm_into(*par[3], true, false, GC, I, T * B, dA_all, GC, xv.data<float>(), I);
        if (wants(par[4])) gemm_into(*par[4], true, false, GC, P, T * B, dA_all, GC, hs.data<float>(), P);
        if (wants(par[5])) add_into(*par[5], dbias.data(), GC);
        if (wants(par[6])) add_into(*par[6], dpeep.data(), (G - 1) * C);
        if (wants(par[7])) gemm_into(*par[7], true, false, P, C, T * B, dHraw.data<float>(), P, ms.data<float>(), C);
        if (wants(par[8])) add_column_sums(*par[8], dHraw.data<float>(), T * B, P);
        if (wants(par[9])) add_into(*par[9], dln.data(), GC);
      });
}

// ---- GRU --------------------------------------------------------------------------------------

Var gru(const Var& x, const Var& h0, const GruWeights& w, const std::optional<Quantizer>& output_quant,
        RnnState* final_state) {
  const char* op = "gru";
  const SeqDims dims = sequence_dims(x, op);
  const int64_t T = dims.T, B = dims.B, I = dims.I;
  const Tensor& wxv = checked_value(w.w_x, op, "w_x");
  LOWBIT_CHECK(wxv.dim() == 2 && wxv.size(0) % 3 == 0 && wxv.size(0) > 0 && wxv.size(1) == I, op, ": w_x ",
               wxv.describe(), " is not [3*H, ", I, "]");
  const int64_t H = wxv.size(0) / 3, H3 = 3 * H;
  check_shape(w.w_h, {H3, H}, op, "w_h");
  check_shape(w.b_x, {H3}, op, "b_x");
  check_shape(w.b_h, {H3}, op, "b_h");
  if (h0.defined()) check_shape(h0, {B, H}, op, "h0");
  const Tensor xv = x.value(), whv = w.w_h.value();
  Tensor AX = Tensor::zeros({T, B, H3}, DType::f32), AH = Tensor::zeros({T, B, H3}, DType::f32);
  Tensor gates = Tensor::zeros({T, B, H3}, DType::f32), hraw = Tensor::zeros({T, B, H}, DType::f32);
  Tensor hs = Tensor::zeros({T + 1, B, H}, DType::f32);
  for (int64_t r = 0; r < T * B; ++r) std::copy(w.b_x.data(), w.b_x.data() + H3, AX.data<float>() + r * H3);
  kernels::sgemm(false, true, T * B, H3, I, 1.0f, xv.data<float>(), I, wxv.data<float>(), I, 1.0f, AX.data<float>(), H3);
  initial_state(h0, hs.data<float>(), B * H);
  for (int64_t t = 0; t < T; ++t) {
    float* ah = AH.data<float>() + t * B * H3;
    for (int64_t b = 0; b < B; ++b) std::copy(w.b_h.data(), w.b_h.data() + H3, ah + b * H3);
    const float* hp = hs.data<float>() + t * B * H;
    kernels::sgemm(false, true, B, H3, H, 1.0f, hp, H, whv.data<float>(), H, 1.0f, ah, H3);
    const float* ax = AX.data<float>() + t * B * H3;
    float* hr = hraw.data<float>() + t * B * H;
    for (int64_t b = 0; b < B; ++b) {
      float* g = gates.data<float>() + (t * B + b) * H3;
      for (int64_t j = 0; j < H; ++j) {
        const float r = sigmoid(ax[b * H3 + j] + ah[b * H3 + j]);
        const float z = sigmoid(ax[b * H3 + H + j] + ah[b * H3 + H + j]);
        const float n = std::tanh(ax[b * H3 + 2 * H + j] + r * ah[b * H3 + 2 * H + j]);
        g[j] = r, g[H + j] = z, g[2 * H + j] = n;
        hr[b * H + j] = (1.0f - z) * n + z * hp[b * H + j];
      }
    }
    quantize_state(output_quant, hr, hs.data<float>() + (t + 1) * B * H, B * H);
  }
  Tensor y = Tensor::zeros({T, B, H}, DType::f32);
  std::copy(hs.data<float>() + B * H, hs.data<float>() + (T + 1) * B * H, y.data<float>());
  if (final_state) {
    final_state->h = Tensor::zeros({B, H}, DType::f32);
    std::copy(hs.data<float>() + T * B * H, hs.data<float>() + (T + 1) * B * H, final_state->h.data<float>());
    final_state->c = Tensor();
  }
  return make_result(op, y, {x, h0, w.w_x, w.w_h, w.b_x, w.b_h}, [=](Node& self) {
    const float* dy = self.grad.data<float>();
    Tensor dAX = Tensor::zeros({T, B, H3}, DType::f32), dAH = Tensor::zeros({T, B, H3}, DType::f32);
    std::vector<float> dh(static_cast<std::size_t>(B * H)), dhr(static_cast<std::size_t>(B * H));
    std::vector<float> dh_next(static_cast<std::size_t>(B * H), 0.0f);
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t k = 0; k < B * H; ++k) dh[k] = dy[t * B * H + k] + dh_next[k];
      quantize_state_backward(output_quant, hraw.data<float>() + t * B * H, dh.data(), dhr.data(), B * H);
      const float* hp = hs.data<float>() + t * B * H;
      const float* ah = AH.data<float>() + t * B * H3;
      float* dax = dAX.data<float>() + t * B * H3;
      float* dah = dAH.data<float>() + t * B * H3;
      for (int64_t b = 0; b < B; ++b) {
        const float* g = gates.data<float>() + (t * B + b) * H3;
        for (int64_t j = 0; j < H; ++j) {
          const float r = g[j], z = g[H + j], n = g[2 * H + j], d = dhr[b * H + j];
          const float dan = d * (1.0f - z) * (1.0f - n * n);
          const float daz = d * (hp[b * H + j] - n) * z * (1.0f - z);
          const float dar = dan * ah[b * H3 + 2 * H + j] * r * (1.0f - r);
          dax[b * H3 + j] = dar, dax[b * H3 + H + j] = daz, dax[b * H3 + 2 * H + j] = dan;
          dah[b * H3 + j] = dar, dah[b * H3 + H + j] = daz, dah[b * H3 + 2 * H + j] = dan * r;
          dh_next[b * H + j] = d * z;
        }
      }
      kernels::sgemm(false, false, B, H, H3, 1.0f, dah, H3, whv.data<float>(), H, 1.0f, dh_next.data(), H);
    }
    const auto& par = self.parents;
    if (wants(par[0])) gemm_into(*par[0], false, false, T * B, I, H3, dAX.data<float>(), H3, wxv.data<float>(), I);
    if (wants(par[1])) add_into(*par[1], dh_next.data(), B * H);
    if (wants(par[2])) gemm_into(*par[2], true, false, H3, I, T * B, dAX.data<float>(), H3, xv.data<float>(), I);
    if (wants(par[3])) gemm_into(*par[3], true, false, H3, H, T * B, dAH.data<float>(), H3, hs.data<float>(), H);
    if (wants(par[4])) add_column_sums(*par[4], dAX.data<float>(), T * B, H3);
    if (wants(par[5])) add_column_sums(*par[5], dAH.data<float>(), T * B, H3);
  });
}

// ---- tanh RNN ---------------------------------------------------------------------------------

Var rnn_tanh(const Var& x, const Var& h0, const RnnWeights& w, const std::optional<Quantizer>& output_quant,
             RnnState* final_state) {
  const char* op = "rnn_tanh";
  const SeqDims dims = sequence_dims(x, op);
  const int64_t T = dims.T, B = dims.B, I = dims.I;
  const Tensor& wxv = checked_value(w.w_x, op, "w_x");
  LOWBIT_CHECK(wxv.dim() == 2 && wxv.size(0) > 0 && wxv.size(1) == I, op, ": w_x ", wxv.describe(), " is not [H, ", I,
               "]");
  const int64_t H = wxv.size(0);
  check_shape(w.w_h, {H, H}, op, "w_h");
  check_shape(w.b, {H}, op, "b");
  if (h0.defined()) check_shape(h0, {B, H}, op, "h0");
  const Tensor xv = x.value(), whv = w.w_h.value();
  Tensor A = Tensor::zeros({T, B, H}, DType::f32), hs = Tensor::zeros({T + 1, B, H}, DType::f32);
  for (int64_t r = 0; r < T * B; ++r) std::copy(w.b.data(), w.b.data() + H, A.data<float>() + r * H);
  kernels::sgemm(false, true, T * B, H, I, 1.0f, xv.data<float>(), I, wxv.data<float>(), I, 1.0f, A.data<float>(), H);
  initial_state(h0, hs.data<float>(), B * H);
  for (int64_t t = 0; t < T; ++t) {
    float* a = A.data<float>() + t * B * H;  // becomes tanh(a): the pre-quantization state
    kernels::sgemm(false, true, B, H, H, 1.0f, hs.data<float>() + t * B * H, H, whv.data<float>(), H, 1.0f, a, H);
    for (int64_t k = 0; k < B * H; ++k) a[k] = std::tanh(a[k]);
    quantize_state(output_quant, a, hs.data<float>() + (t + 1) * B * H, B * H);
  }
  Tensor y = Tensor::zeros({T, B, H}, DType::f32);
  std::copy(hs.data<float>() + B * H, hs.data<float>() + (T + 1) * B * H, y.data<float>());
  if (final_state) {
    final_state->h = Tensor::zeros({B, H}, DType::f32);
    std::copy(hs.data<float>() + T * B * H, hs.data<float>() + (T + 1) * B * H, final_state->h.data<float>());
    final_state->c = Tensor();
  }
  return make_result(op, y, {x, h0, w.w_x, w.w_h, w.b}, [=](Node& self) {
    const float* dy = self.grad.data<float>();
    Tensor dA = Tensor::zeros({T, B, H}, DType::f32);
    std::vector<float> dh(static_cast<std::size_t>(B * H)), dh_next(static_cast<std::size_t>(B * H), 0.0f);
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t k = 0; k < B * H; ++k) dh[k] = dy[t * B * H + k] + dh_next[k];
      const float* hr = A.data<float>() + t * B * H;
      float* da = dA.data<float>() + t * B * H;
      quantize_state_backward(output_quant, hr, dh.data(), da, B * H);
      for (int64_t k = 0; k < B * H; ++k) da[k] *= 1.0f - hr[k] * hr[k];
      kernels::sgemm(false, false, B, H, H, 1.0f, da, H, whv.data<float>(), H, 0.0f, dh_next.data(), H);
    }
    const auto& par = self.parents;
    if (wants(par[0])) gemm_into(*par[0], false, false, T * B, I, H, dA.data<float>(), H, wxv.data<float>(), I);
    if (wants(par[1])) add_into(*par[1], dh_next.data(), B * H);
    if (wants(par[2])) gemm_into(*par[2], true, false, H, I, T * B, dA.data<float>(), H, xv.data<float>(), I);
    if (wants(par[3])) gemm_into(*par[3], true, false, H, H, T * B, dA.data<float>(), H, hs.data<float>(), H);
    if (wants(par[4])) add_column_sums(*par[4], dA.data<float>(), T * B, H);
  });
}

}  // namespace lowbit::autograd
