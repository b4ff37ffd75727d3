// MemN2N forward/backward and training (nn/memn2n.h).
#include "lowbit/nn/memn2n.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"

namespace lowbit::nn::memn2n {

using quant::FixedFormat;

// Config ---------------------------------------------------------------------------------------

namespace {
FixedFormat format_of(int bits, int int_bits) {
  if (bits == 1) return FixedFormat{0, 0};
  return FixedFormat{int_bits, bits - 1 - int_bits};
}
}  // namespace

FixedFormat Config::act_format() const { return format_of(act_bits, act_int_bits); }

FixedFormat Config::weight_format(int hop) const {
  FixedFormat f = format_of(weight_bits, weight_int_bits);
  if (!mq || hop < 0 || weight_bits == 1) return f;
  const int i = std::clamp(weight_int_bits + 1 - hop, 0, weight_bits - 1);
  return FixedFormat{i, weight_bits - 1 - i};
}

FixedFormat Config::memory_format(int hop) const { return memory_act ? act_format() : weight_format(hop); }

const char* Config::memory_name(bool memory_act) { return memory_act ? "activation" : "weight"; }

bool Config::parse_memory_name(const std::string& name, const std::string& where) {
  LOWBIT_CHECK(name == "weight" || name == "activation", where, ": memory \"", name,
               "\" (expected weight or activation)");
  return name == "activation";
}

FixedFormat Config::attention_format() const {
  if (act_bits == 1) return FixedFormat{0, 7};
  if (attention_fraction) return FixedFormat{0, act_bits - 1};
  return act_format();
}

FixedFormat Config::logit_format() const {
  if (logit_int_bits < 0 || act_bits == 1) return act_format();
  return FixedFormat{logit_int_bits, act_bits - 1 - logit_int_bits};
}

void Config::validate() const {
  LOWBIT_CHECK(dim >= 1 && dim <= 1024, "memn2n: dim ", dim, " (expected 1..1024)");
  LOWBIT_CHECK(hops >= 1 && hops <= 8, "memn2n: hops ", hops, " (expected 1..8)");
  LOWBIT_CHECK(memory_size >= 1 && memory_size <= 1000, "memn2n: memory_size ", memory_size, " (expected 1..1000)");
  LOWBIT_CHECK(score_shift >= 0 && score_shift <= 16, "memn2n: score_shift ", score_shift, " (expected 0..16)");
  LOWBIT_CHECK(std::isfinite(sign_ste_window) && sign_ste_window >= 0.0f, "memn2n: sign_ste_window ", sign_ste_window,
               " (expected a finite value >= 0; 0 = no window)");
  if (quantized || addressing == Addressing::hamming) {
    LOWBIT_CHECK(act_bits >= 1 && act_bits <= 8, "memn2n: act_bits ", act_bits, " (expected 1..8)");
    LOWBIT_CHECK(act_bits == 1 || (act_int_bits >= 0 && act_int_bits <= act_bits - 1), "memn2n: act_int_bits ",
                 act_int_bits, " (expected 0..", act_bits - 1, " for ", act_bits, "-bit activations)");
  }
  if (quantized) {
    LOWBIT_CHECK(weight_bits >= 1 && weight_bits <= 8, "memn2n: weight_bits ", weight_bits, " (expected 1..8)");
    LOWBIT_CHECK(weight_bits == 1 || (weight_int_bits >= 0 && weight_int_bits <= weight_bits - 1),
                 "memn2n: weight_int_bits ", weight_int_bits, " (expected 0..", weight_bits - 1, ")");
    LOWBIT_CHECK(!product_quant || (weight_bits >= 2 && act_bits >= 2),
                 "memn2n: product_quant needs fixed-point weights and activations (weight_bits and act_bits >= 2)");
    LOWBIT_CHECK(!memory_act || !product_quant,
                 "memn2n: quantization.memory \"activation\" and product_quant cannot be combined");
  }
  LOWBIT_CHECK(!memory_act || quantized, "memn2n: quantization.memory applies to quantized models only");
  if (logit_int_bits >= 0) {
    LOWBIT_CHECK(quantized && act_bits >= 2,
                 "memn2n: quantization.logit_int_bits needs fixed-point activations (act_bits >= 2)");
    LOWBIT_CHECK(logit_int_bits <= act_bits - 1, "memn2n: logit_int_bits ", logit_int_bits, " (expected 0..",
                 act_bits - 1, " for ", act_bits, "-bit activations, or -1 for the activation format)");
  } else {
    LOWBIT_CHECK(logit_int_bits == -1, "memn2n: logit_int_bits ", logit_int_bits,
                 " (expected -1 for the activation format, or 0..act_bits - 1)");
  }
}

// Data -----------------------------------------------------------------------------------------

namespace {
template <typename IdFn>
std::vector<Example> encode_with(std::span<const data::BabiExample> examples, const IdFn& id, int64_t memory_size) {
  std::vector<Example> out;
  out.reserve(examples.size());
  for (const data::BabiExample& e : examples) {
    Example x;
    const auto mem = e.memory();
    const int64_t n = static_cast<int64_t>(mem.size());
    const int64_t first = std::max<int64_t>(0, n - memory_size);
    x.offsets.push_back(0);
    for (int64_t i = first; i < n; ++i) {
      for (const std::string& w : mem[static_cast<size_t>(i)]) x.words.push_back(id(w));
      x.offsets.push_back(static_cast<int32_t>(x.words.size()));
    }
    for (const std::string& w : e.question) x.query.push_back(id(w));
    x.answer = id(e.answer_token());
    out.push_back(std::move(x));
  }
  return out;
}
}  // namespace

std::vector<Example> encode(std::span<const data::BabiExample> examples, const data::BabiVocabulary& vocab,
                            int64_t memory_size) {
  return encode_with(examples, [&](const std::string& w) { return vocab.id(w); }, memory_size);
}

std::vector<Example> encode(std::span<const data::BabiExample> examples, std::span<const std::string> words,
                            int64_t memory_size) {
  std::unordered_map<std::string, int32_t> ids;
  for (size_t i = 0; i < words.size(); ++i) ids.emplace(words[i], static_cast<int32_t>(i));
  return encode_with(
      examples,
      [&](const std::string& w) {
        const auto it = ids.find(w);
        return it == ids.end() ? data::BabiVocabulary::kUnknown : it->second;
      },
      memory_size);
}

// Model ----------------------------------------------------------------------------------------

Model::Model(const Config& cfg, int64_t vocab_size) : cfg_(cfg), vocab_(vocab_size) {
  cfg_.validate();
  LOWBIT_CHECK(vocab_size >= 3, "memn2n: vocabulary of ", vocab_size, " words (expected >= 3)");
  const int64_t rows = embedding_rows(), d = cfg.dim;
  auto add = [&](const std::string& name, int64_t r, int64_t c) {
    mats_.push_back(Matrix{name, r, c, std::vector<float>(static_cast<size_t>(r * c), 0.0f)});
    return static_cast<int>(mats_.size()) - 1;
  };
  if (cfg.tying == Tying::adjacent) {
    for (int k = 0; k <= cfg.hops; ++k) add(std::string("E").append(std::to_string(k)), rows, d);  // not "E" + ...: GCC 12 -Wrestrict false positive
    for (int k = 0; k < cfg.hops; ++k) {
      a_idx_.push_back(k);
      c_idx_.push_back(k + 1);
    }
    b_idx_ = 0;
    w_idx_ = cfg.hops;
  } else {
    const int a = add("A", rows, d), c = add("C", rows, d);
    b_idx_ = add("B", vocab_size, d);
    w_idx_ = add("W", vocab_size, d);
    h_idx_ = add("H", d, d);
    a_idx_.assign(static_cast<size_t>(cfg.hops), a);
    c_idx_.assign(static_cast<size_t>(cfg.hops), c);
  }
}

int64_t Model::embedding_rows() const { return vocab_ + (cfg_.temporal ? cfg_.memory_size : 0); }

float Model::lr_scale(int mat) const { return mat == h_idx_ ? 0.1f : 1.0f; }

void Model::init_normal(float stddev, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, stddev);
  for (Matrix& m : mats_)
    for (float& v : m.w) v = nd(rng);
  zero_null_rows();
}

void Model::zero_null_rows() {
  for (int i = 0; i < static_cast<int>(mats_.size()); ++i) {
    if (i == h_idx_) continue;
    std::fill_n(mats_[static_cast<size_t>(i)].w.begin(), mats_[static_cast<size_t>(i)].cols, 0.0f);
  }
}

QuantizedWeights quantize_weights(const Model& model) {
  const Config& cfg = model.config();
  QuantizedWeights qw;
  const int slots = cfg.quantized && cfg.mq ? cfg.hops + 1 : 2;
  qw.q.resize(static_cast<size_t>(slots));
  qw.alpha.resize(static_cast<size_t>(slots));
  const auto& mats = model.matrices();
  for (int s = 0; s < slots; ++s) {
    const int hop = s == slots - 1 ? -1 : s;
    const FixedFormat f = cfg.weight_format(hop);
    for (const Matrix& m : mats) {
      std::vector<float> q(m.w.size());
      float alpha = 1.0f;
      if (!cfg.quantized) {
        q = m.w;
      } else if (f.is_binary()) {
        double sum = 0;
        for (float v : m.w) sum += std::fabs(v);
        const double mean = m.w.empty() ? 0.0 : sum / static_cast<double>(m.w.size());
        alpha = static_cast<float>(std::max(1.0, std::round(mean * 1024.0)) / 1024.0);
        for (size_t i = 0; i < q.size(); ++i) q[i] = m.w[i] >= 0.0f ? alpha : -alpha;
      } else {
        quant::fixed_quantize(m.w, q, f,
                              cfg.round_nearest ? quant::FixedRounding::nearest : quant::FixedRounding::truncate);
      }
      qw.q[static_cast<size_t>(s)].push_back(std::move(q));
      qw.alpha[static_cast<size_t>(s)].push_back(alpha);
    }
  }
  return qw;
}

float hamming_similarity(float a, float b, FixedFormat f) {
  const float sa = a >= 0.0f ? 1.0f : -1.0f, sb = b >= 0.0f ? 1.0f : -1.0f;
  const int n1 = f.int_bits + f.frac_bits;  // n − 1 magnitude bits
  const float top = 1.0f - std::ldexp(1.0f, -n1);
  // T_{n−1}(|a − b| / 2^I) = floor(|a − b| · 2^F) / 2^(n−1)
  const float t = std::floor(std::fabs(a - b) * std::ldexp(1.0f, f.frac_bits)) * std::ldexp(1.0f, -n1);
  return sa * sb * std::max(0.0f, top - t);
}

// Forward / backward -----------------------------------------------------------------------------

namespace {

inline float sgn(float x) { return x >= 0.0f ? 1.0f : -1.0f; }

// quant::fixed_quantize (truncation, or rounding to nearest with ties away from zero) inlined
// for the inner loops; same results.
struct FastQ {
  float scale, inv, maxc, half;
  bool binary;
  FastQ(FixedFormat f, bool nearest)
      : scale(std::ldexp(1.0f, f.frac_bits)), inv(std::ldexp(1.0f, -f.frac_bits)),
        maxc(std::ldexp(1.0f, f.int_bits + f.frac_bits) - 1.0f), half(nearest ? 0.5f : 0.0f),
        binary(f.is_binary()) {}
  float operator()(float x) const {
    if (binary) return x >= 0.0f ? 1.0f : -1.0f;
    // min before the floor is the same (maxc is an integer); the int conversion is the floor of
    // a value in [0, 2^23) and, unlike std::floor, vectorizes without SSE4.1. The sums quantized
    // here are exact multiples of a power of two below 2^22 units, so adding the half is exact.
    return std::copysign(static_cast<float>(static_cast<int32_t>(std::min(std::fabs(x) * scale + half, maxc))) * inv,
                         x);
  }
};

// Σ a[j]·b[j] in order; with `q` (product_quant) each product is re-quantized before it is added.
float dot_q(const float* a, const float* b, int64_t n, const FastQ* q) {
  float acc = 0.0f;
  if (q) {
    for (int64_t j = 0; j < n; ++j) acc += (*q)(a[j] * b[j]);
  } else {
    for (int64_t j = 0; j < n; ++j) acc += a[j] * b[j];
  }
  return acc;
}

}  // namespace

int32_t position_weight_code(int64_t j, int64_t J, int64_t k, int64_t d) {
  LOWBIT_CHECK(J >= 1 && d >= 1 && j >= 1 && j <= J && k >= 1 && k <= d, "position_weight_code(", j, ", ", J, ", ",
               k, ", ", d, "): expected 1 <= j <= J and 1 <= k <= d");
  const int64_t num = (J - j) * (d - k) + j * k, den = J * d;
  return static_cast<int32_t>((2 * (num << kPositionFracBits) + den) / (2 * den));
}

std::vector<int32_t> position_weight_codes(int64_t J, int64_t d) {
  std::vector<int32_t> codes(static_cast<size_t>(J * d));
  for (int64_t j = 0; j < J; ++j)
    for (int64_t k = 0; k < d; ++k) codes[static_cast<size_t>(j * d + k)] = position_weight_code(j + 1, J, k + 1, d);
  return codes;
}

namespace {

// The quantized position weights of a J-word sentence as floats, [j][k] (exact multiples of
// 2^−kPositionFracBits), built once per sentence length and dimension on each thread.
const float* quantized_position_weights(int64_t J, int64_t d) {
  thread_local int64_t cached_d = -1;
  thread_local std::vector<std::vector<float>> by_length;
  if (cached_d != d) {
    by_length.clear();
    cached_d = d;
  }
  if (static_cast<int64_t>(by_length.size()) <= J) by_length.resize(static_cast<size_t>(J + 1));
  std::vector<float>& w = by_length[static_cast<size_t>(J)];
  if (w.empty())
    for (const int32_t code : position_weight_codes(J, d))
      w.push_back(std::ldexp(static_cast<float>(code), -kPositionFracBits));
  return w.data();
}

}  // namespace

float forward_backward(const Model& model, const QuantizedWeights& qw, const Example& ex, bool linear,
                       std::span<const int32_t> time_shift, std::vector<std::vector<float>>* grads, int32_t* pred,
                       std::vector<HopView>* hops_out, std::vector<float>* logits_out) {
  const Config& cfg = model.config();
  const int64_t d = cfg.dim, V = model.vocab_size(), K = cfg.hops;
  const int64_t n = ex.sentences();
  LOWBIT_CHECK(n >= 1, "memn2n: a question without memory sentences");
  const bool pe = cfg.encoding == Encoding::position;
  const FixedFormat act = cfg.act_format(), att = cfg.attention_format(), zf = cfg.logit_format();
  const bool q = cfg.quantized;
  const bool pq = q && cfg.product_quant;
  const bool bin_acts = cfg.binary_acts();

  auto row_id = [&](int32_t id) {
    LOWBIT_CHECK(id >= 0 && id < V, "memn2n: word id ", id, " outside the vocabulary of ", V);
    return static_cast<int64_t>(id);
  };
  auto time_row = [&](int64_t i) {
    int64_t age = n - 1 - i + (time_shift.empty() ? 0 : time_shift[static_cast<size_t>(i)]);
    age = std::min(age, cfg.memory_size - 1);
    return V + age;
  };
  auto quant_to = [&](float* x, int64_t len, FixedFormat f) {
    if (!q) return;
    const FastQ fq(f, cfg.round_nearest);
    for (int64_t i = 0; i < len; ++i) x[i] = fq(x[i]);
  };
  // Position encoding (Sukhbaatar et al. 2015): the weight of word j (1-based) of a J-word
  // sentence in dimension k (1-based) of d is (1 − j/J) − (k/d)(1 − 2j/J), computed as
  // a_j − (k/d)·b_j with the divisions hoisted out of the loops over k. Quantized models use the
  // rounded weights of position_weight_code instead (see memn2n.h).
  std::vector<float> kd;
  if (pe) {
    kd.resize(static_cast<size_t>(d));
    for (int64_t k = 0; k < d; ++k) kd[static_cast<size_t>(k)] = static_cast<float>(k + 1) / static_cast<float>(d);
  }
  auto pe_ab = [](int64_t j, int64_t J) {
    const float jj = static_cast<float>(j + 1), JJ = static_cast<float>(J);
    return std::pair<float, float>{1.0f - jj / JJ, 1.0f - 2.0f * jj / JJ};
  };
  // Sum of the sentence's rows of matrix `mat` in slot `s` (+ its time row).
  auto embed = [&](const std::vector<float>& Q, const int32_t* w, int64_t len, int64_t trow, float* out) {
    std::fill_n(out, d, 0.0f);
    const float* qpe = pe && q && len > 0 ? quantized_position_weights(len, d) : nullptr;
    for (int64_t j = 0; j < len; ++j) {
      const float* r = Q.data() + row_id(w[j]) * d;
      if (qpe) {
        const float* l = qpe + j * d;
        for (int64_t k = 0; k < d; ++k) out[k] += l[k] * r[k];
      } else if (pe) {
        const auto [a, b] = pe_ab(j, len);
        for (int64_t k = 0; k < d; ++k) out[k] += (a - kd[static_cast<size_t>(k)] * b) * r[k];
      } else {
        for (int64_t k = 0; k < d; ++k) out[k] += r[k];
      }
    }
    if (trow >= 0) {
      const float* r = Q.data() + trow * d;
      for (int64_t k = 0; k < d; ++k) out[k] += r[k];
    }
  };
  auto embed_grad = [&](std::vector<float>& G, const int32_t* w, int64_t len, int64_t trow, const float* g) {
    const float* qpe = pe && q && len > 0 ? quantized_position_weights(len, d) : nullptr;
    for (int64_t j = 0; j < len; ++j) {
      float* r = G.data() + row_id(w[j]) * d;
      if (qpe) {
        const float* l = qpe + j * d;
        for (int64_t k = 0; k < d; ++k) r[k] += l[k] * g[k];
      } else if (pe) {
        const auto [a, b] = pe_ab(j, len);
        for (int64_t k = 0; k < d; ++k) r[k] += (a - kd[static_cast<size_t>(k)] * b) * g[k];
      } else {
        for (int64_t k = 0; k < d; ++k) r[k] += g[k];
      }
    }
    if (trow >= 0) {
      float* r = G.data() + trow * d;
      for (int64_t k = 0; k < d; ++k) r[k] += g[k];
    }
  };

  // Per-hop state.
  std::vector<std::vector<float>> M(static_cast<size_t>(K)), C(static_cast<size_t>(K)), P(static_cast<size_t>(K)),
      PQ(static_cast<size_t>(K)), U(static_cast<size_t>(K + 1));
  // u_1
  U[0].assign(static_cast<size_t>(d), 0.0f);
  {
    const int s = qw.slot(0);
    embed(qw.q[static_cast<size_t>(s)][static_cast<size_t>(model.b_index())], ex.query.data(),
          static_cast<int64_t>(ex.query.size()), -1, U[0].data());
    quant_to(U[0].data(), d, act);
  }
  const float scale = std::ldexp(1.0f, -cfg.score_shift);
  const float inv2i = std::ldexp(1.0f, -cfg.act_int_bits);
  const float top = 1.0f - std::ldexp(1.0f, -(cfg.act_bits - 1));
  const bool sign_sim = cfg.addressing == Addressing::hamming && cfg.binary_weights();
  std::vector<float> z(static_cast<size_t>(n)), tmp(static_cast<size_t>(d));
  // Saturation mask: the quantized logits, o and H u of each hop (the values that decide where
  // the backward pass cancels the gradient).
  const bool satm = q && cfg.saturation_mask;
  std::vector<std::vector<float>> ZQ(static_cast<size_t>(satm ? K : 0)), OQ(ZQ.size()), HQ(ZQ.size());
  for (int64_t k = 0; k < K; ++k) {
    const size_t kk = static_cast<size_t>(k);
    const int s = qw.slot(static_cast<int>(k));
    const FixedFormat wf = cfg.weight_format(static_cast<int>(k));
    const auto& QA = qw.q[static_cast<size_t>(s)][static_cast<size_t>(model.a_index(static_cast<int>(k)))];
    const auto& QC = qw.q[static_cast<size_t>(s)][static_cast<size_t>(model.c_index(static_cast<int>(k)))];
    M[kk].resize(static_cast<size_t>(n * d));
    C[kk].resize(static_cast<size_t>(n * d));
    for (int64_t i = 0; i < n; ++i) {
      const int32_t* w = ex.words.data() + ex.offsets[static_cast<size_t>(i)];
      const int64_t len = ex.offsets[static_cast<size_t>(i + 1)] - ex.offsets[static_cast<size_t>(i)];
      const int64_t tr = cfg.temporal ? time_row(i) : -1;
      embed(QA, w, len, tr, M[kk].data() + i * d);
      embed(QC, w, len, tr, C[kk].data() + i * d);
    }
    const FixedFormat mf = cfg.memory_format(static_cast<int>(k));
    quant_to(M[kk].data(), n * d, mf);
    quant_to(C[kk].data(), n * d, mf);
    const float* u = U[kk].data();
    const FastQ wq(wf, cfg.round_nearest);  // products re-quantized to the hop's weight format (product_quant)
    for (int64_t i = 0; i < n; ++i) {
      const float* m = M[kk].data() + i * d;
      float acc = 0.0f;
      if (cfg.addressing == Addressing::dot) {
        acc = dot_q(m, u, d, pq ? &wq : nullptr);
      } else if (sign_sim) {
        for (int64_t j = 0; j < d; ++j) acc += sgn(m[j]) * sgn(u[j]);
        acc *= scale;
      } else if (q) {
        // hamming_similarity inlined
        const float fs = std::ldexp(1.0f, act.frac_bits), un1 = std::ldexp(1.0f, -(act.int_bits + act.frac_bits));
        if (pq) {
          const FastQ aq(act, cfg.round_nearest);
          for (int64_t j = 0; j < d; ++j) {
            const float t = static_cast<float>(static_cast<int32_t>(std::fabs(m[j] - u[j]) * fs)) * un1;
            acc += aq(scale * sgn(m[j]) * sgn(u[j]) * std::max(0.0f, top - t));
          }
        } else {
          for (int64_t j = 0; j < d; ++j) {
            // m and u are 8-bit fixed-point values (below 2^7), so the int conversion is the floor.
            const float t = static_cast<float>(static_cast<int32_t>(std::fabs(m[j] - u[j]) * fs)) * un1;
            acc += sgn(m[j]) * sgn(u[j]) * std::max(0.0f, top - t);
          }
          acc *= scale;
        }
      } else {
        for (int64_t j = 0; j < d; ++j) acc += sgn(m[j]) * sgn(u[j]) * (top - std::fabs(m[j] - u[j]) * inv2i);
        acc *= scale;
      }
      z[static_cast<size_t>(i)] = acc;
    }
    if (!bin_acts) quant_to(z.data(), n, zf);
    if (satm) ZQ[kk] = z;
    P[kk].resize(static_cast<size_t>(n));
    if (linear) {
      P[kk] = z;
    } else {
      const float zmax = *std::max_element(z.begin(), z.end());
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) sum += P[kk][static_cast<size_t>(i)] = std::exp(z[static_cast<size_t>(i)] - zmax);
      for (float& v : P[kk]) v /= sum;
    }
    PQ[kk] = P[kk];
    quant_to(PQ[kk].data(), n, att);
    // o = Σ p_i c_i
    std::vector<float> o(static_cast<size_t>(d), 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const float pi = PQ[kk][static_cast<size_t>(i)];
      const float* c = C[kk].data() + i * d;
      if (pq) {
        for (int64_t j = 0; j < d; ++j) o[static_cast<size_t>(j)] += wq(pi * c[j]);
      } else {
        for (int64_t j = 0; j < d; ++j) o[static_cast<size_t>(j)] += pi * c[j];
      }
    }
    quant_to(o.data(), d, act);
    if (satm) OQ[kk] = o;
    U[kk + 1].assign(static_cast<size_t>(d), 0.0f);
    float* un = U[kk + 1].data();
    if (model.h_index() >= 0) {
      const auto& QH = qw.q[static_cast<size_t>(s)][static_cast<size_t>(model.h_index())];
      for (int64_t r = 0; r < d; ++r) {
        un[r] = dot_q(QH.data() + r * d, u, d, pq ? &wq : nullptr);
      }
      quant_to(un, d, act);
      if (satm) HQ[kk].assign(un, un + d);
    } else {
      std::copy_n(u, d, un);
    }
    for (int64_t j = 0; j < d; ++j) un[j] += o[static_cast<size_t>(j)];
    quant_to(un, d, act);
  }
  // Answer.
  const int sa = qw.slot(-1);
  const auto& QW = qw.q[static_cast<size_t>(sa)][static_cast<size_t>(model.w_index())];
  std::vector<float> logit(static_cast<size_t>(V));
  const float* uk = U[static_cast<size_t>(K)].data();
  const FastQ answer_q(cfg.weight_format(-1), cfg.round_nearest);
  for (int64_t v = 0; v < V; ++v) logit[static_cast<size_t>(v)] = dot_q(QW.data() + v * d, uk, d, pq ? &answer_q : nullptr);
  const int64_t best = std::max_element(logit.begin(), logit.end()) - logit.begin();
  if (pred) *pred = static_cast<int32_t>(best);
  const float lmax = logit[static_cast<size_t>(best)];
  std::vector<float> prob(static_cast<size_t>(V));
  double sum = 0.0;
  for (int64_t v = 0; v < V; ++v) sum += prob[static_cast<size_t>(v)] = std::exp(logit[static_cast<size_t>(v)] - lmax);
  for (float& p : prob) p = static_cast<float>(p / sum);
  LOWBIT_CHECK(ex.answer >= 0 && ex.answer < V, "memn2n: answer id ", ex.answer, " outside the vocabulary");
  const float loss = -std::log(std::max(prob[static_cast<size_t>(ex.answer)], 1e-30f));
  if (hops_out) {
    hops_out->clear();
    for (int64_t k = 0; k < K; ++k) hops_out->push_back(HopView{P[static_cast<size_t>(k)]});
  }
  if (logits_out) *logits_out = logit;
  if (!grads) return loss;

  // Backward.
  auto& G = *grads;
  std::vector<float> du(static_cast<size_t>(d), 0.0f);
  prob[static_cast<size_t>(ex.answer)] -= 1.0f;
  {
    auto& GW = G[static_cast<size_t>(model.w_index())];
    for (int64_t v = 0; v < V; ++v) {
      const float g = prob[static_cast<size_t>(v)];
      if (g == 0.0f) continue;
      const float* w = QW.data() + v * d;
      float* gw = GW.data() + v * d;
      for (int64_t j = 0; j < d; ++j) {
        gw[j] += g * uk[j];
        du[static_cast<size_t>(j)] += g * w[j];
      }
    }
  }
  std::vector<float> dprev(static_cast<size_t>(d)), dm(static_cast<size_t>(d)), dc(static_cast<size_t>(d));
  std::vector<float> dz(static_cast<size_t>(n)), dp(static_cast<size_t>(n));
  // Saturation mask: cancel the gradient of every value whose re-quantization saturated, i.e.
  // whose quantized value is at the format's largest magnitude (with truncation exactly when
  // |x| >= max, with rounding from half a step below). No-op without the mask and for binary
  // formats.
  auto mask_sat = [&](float* g, const float* v, int64_t len, FixedFormat f) {
    if (!satm || f.is_binary()) return;
    const float mx = static_cast<float>(f.max_value());
    for (int64_t i = 0; i < len; ++i)
      if (std::fabs(v[i]) >= mx) g[i] = 0.0f;
  };
  std::vector<float> d_hu, d_o;
  for (int64_t k = K - 1; k >= 0; --k) {
    const size_t kk = static_cast<size_t>(k);
    const int s = qw.slot(static_cast<int>(k));
    const float* u = U[kk].data();
    // u' = q(q(H u) + q(o)) (or q(u + q(o))): d(Hu) = d(o) = du' without the mask
    mask_sat(du.data(), U[kk + 1].data(), d, act);
    if (satm) {
      d_o = du;
      mask_sat(d_o.data(), OQ[kk].data(), d, act);
    }
    const std::vector<float>& dout = satm ? d_o : du;
    if (model.h_index() >= 0) {
      if (satm) {
        d_hu = du;
        mask_sat(d_hu.data(), HQ[kk].data(), d, act);
      }
      const std::vector<float>& dhu = satm ? d_hu : du;
      const auto& QH = qw.q[static_cast<size_t>(s)][static_cast<size_t>(model.h_index())];
      auto& GH = G[static_cast<size_t>(model.h_index())];
      std::fill(dprev.begin(), dprev.end(), 0.0f);
      for (int64_t r = 0; r < d; ++r) {
        const float g = dhu[static_cast<size_t>(r)];
        const float* h = QH.data() + r * d;
        float* gh = GH.data() + r * d;
        for (int64_t j = 0; j < d; ++j) {
          gh[j] += g * u[j];
          dprev[static_cast<size_t>(j)] += g * h[j];
        }
      }
    } else {
      dprev = du;
    }
    // o = Σ pq_i c_i
    auto& GA = G[static_cast<size_t>(model.a_index(static_cast<int>(k)))];
    auto& GC = G[static_cast<size_t>(model.c_index(static_cast<int>(k)))];
    for (int64_t i = 0; i < n; ++i) {
      const float* c = C[kk].data() + i * d;
      float acc = 0.0f;
      const float pi = PQ[kk][static_cast<size_t>(i)];
      for (int64_t j = 0; j < d; ++j) {
        acc += dout[static_cast<size_t>(j)] * c[j];
        dc[static_cast<size_t>(j)] = pi * dout[static_cast<size_t>(j)];
      }
      mask_sat(dc.data(), c, d, cfg.memory_format(static_cast<int>(k)));
      dp[static_cast<size_t>(i)] = acc;
      const int32_t* w = ex.words.data() + ex.offsets[static_cast<size_t>(i)];
      const int64_t len = ex.offsets[static_cast<size_t>(i + 1)] - ex.offsets[static_cast<size_t>(i)];
      embed_grad(GC, w, len, cfg.temporal ? time_row(i) : -1, dc.data());
    }
    if (linear) {
      dz = dp;
    } else {
      float dot = 0.0f;
      for (int64_t i = 0; i < n; ++i) dot += P[kk][static_cast<size_t>(i)] * dp[static_cast<size_t>(i)];
      for (int64_t i = 0; i < n; ++i)
        dz[static_cast<size_t>(i)] = P[kk][static_cast<size_t>(i)] * (dp[static_cast<size_t>(i)] - dot);
    }
    if (satm && !bin_acts) mask_sat(dz.data(), ZQ[kk].data(), n, zf);
    for (int64_t i = 0; i < n; ++i) {
      const float g = dz[static_cast<size_t>(i)];
      const float* m = M[kk].data() + i * d;
      if (cfg.addressing == Addressing::dot) {
        for (int64_t j = 0; j < d; ++j) {
          dm[static_cast<size_t>(j)] = g * u[j];
          dprev[static_cast<size_t>(j)] += g * m[j];
        }
      } else if (sign_sim) {
        const float win = cfg.sign_ste_window;
        for (int64_t j = 0; j < d; ++j) {
          const bool pass_m = win <= 0.0f || std::fabs(m[j]) <= win, pass_u = win <= 0.0f || std::fabs(u[j]) <= win;
          dm[static_cast<size_t>(j)] = pass_m ? g * scale * sgn(u[j]) : 0.0f;
          dprev[static_cast<size_t>(j)] += pass_u ? g * scale * sgn(m[j]) : 0.0f;
        }
      } else {
        const bool sg = cfg.hamming_sign_grad;
        for (int64_t j = 0; j < d; ++j) {
          const float diff = m[j] - u[j];
          const float t = diff == 0.0f ? 0.0f : sgn(m[j]) * sgn(u[j]) * (diff > 0.0f ? 1.0f : -1.0f);
          float gm = -inv2i * t, gu = inv2i * t;
          if (sg) {
            const float mag = std::max(0.0f, top - std::fabs(diff) * inv2i);
            gm += sgn(u[j]) * mag * inv2i;
            gu += sgn(m[j]) * mag * inv2i;
          }
          dm[static_cast<size_t>(j)] = g * scale * gm;
          dprev[static_cast<size_t>(j)] += g * scale * gu;
        }
      }
      const int32_t* w = ex.words.data() + ex.offsets[static_cast<size_t>(i)];
      const int64_t len = ex.offsets[static_cast<size_t>(i + 1)] - ex.offsets[static_cast<size_t>(i)];
      mask_sat(dm.data(), m, d, cfg.memory_format(static_cast<int>(k)));
      embed_grad(GA, w, len, cfg.temporal ? time_row(i) : -1, dm.data());
    }
    du = dprev;
  }
  mask_sat(du.data(), U[0].data(), d, act);
  embed_grad(G[static_cast<size_t>(model.b_index())], ex.query.data(), static_cast<int64_t>(ex.query.size()), -1,
             du.data());
  return loss;
}

// Training -------------------------------------------------------------------------------------

namespace {

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

EvalResult evaluate(const Model& model, std::span<const Example> examples) {
  EvalResult r;
  r.questions = static_cast<int64_t>(examples.size());
  r.predictions.assign(examples.size(), 0);
  if (examples.empty()) return r;
  const QuantizedWeights qw = quantize_weights(model);
  const int T = num_threads();
  std::vector<double> loss(static_cast<size_t>(T), 0.0);
  std::vector<int64_t> wrong(static_cast<size_t>(T), 0);
  const int64_t N = r.questions;
  parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = N * t / T, e = N * (t + 1) / T;
      for (int64_t i = b; i < e; ++i) {
        int32_t p = 0;
        loss[static_cast<size_t>(t)] +=
            forward_backward(model, qw, examples[static_cast<size_t>(i)], false, {}, nullptr, &p);
        r.predictions[static_cast<size_t>(i)] = p;
        wrong[static_cast<size_t>(t)] += p != examples[static_cast<size_t>(i)].answer;
      }
    }
  });
  r.loss = std::accumulate(loss.begin(), loss.end(), 0.0) / static_cast<double>(N);
  r.error = static_cast<double>(std::accumulate(wrong.begin(), wrong.end(), int64_t{0})) / static_cast<double>(N);
  return r;
}

TrainOutcome train(const Config& cfg, const TrainConfig& tc, int64_t vocab_size, std::span<const Example> train_set,
                   std::span<const Example> valid_set, std::span<const Example> test_set,
                   const std::function<void(const EpochReport&)>& on_epoch) {
  LOWBIT_CHECK(tc.epochs >= 1, "memn2n: epochs ", tc.epochs, " (expected >= 1)");
  LOWBIT_CHECK(tc.batch >= 1, "memn2n: batch ", tc.batch, " (expected >= 1)");
  LOWBIT_CHECK(!train_set.empty(), "memn2n: empty training set");
  const auto t_start = std::chrono::steady_clock::now();
  Model model(cfg, vocab_size);
  model.init_normal(tc.init_std, tc.seed);
  TrainOutcome out;
  out.best = model;
  const int T = num_threads();
  auto& mats = model.matrices();
  std::vector<std::vector<std::vector<float>>> grads(static_cast<size_t>(T));
  for (auto& g : grads)
    for (const Matrix& m : mats) g.emplace_back(m.w.size(), 0.0f);
  std::vector<int64_t> order(train_set.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 shuffle_rng(mix(tc.seed ^ 0x5eed));
  double best_loss = 1e30;
  int64_t since_best = 0;
  double last_valid_error = 1.0;
  const int64_t N = static_cast<int64_t>(train_set.size());
  // Quantized models keep master weights inside the widest weight format's range (binary: ±1),
  // as BinaryConnect does: beyond it the straight-through gradient no longer changes anything.
  float clip_value = 0.0f;
  if (cfg.quantized && tc.clip_weights)
    for (int k = -1; k < cfg.hops; ++k)
      clip_value = std::max(clip_value, static_cast<float>(cfg.weight_format(k).max_value()));
  for (int64_t epoch = 0; epoch < tc.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool linear = epoch < tc.linear_start_epochs;
    double lr = tc.lr * std::pow(0.5, static_cast<double>(epoch / std::max<int64_t>(1, tc.lr_halve_every)));
    if (linear) lr *= 0.5;
    if (tc.shuffle) std::shuffle(order.begin(), order.end(), shuffle_rng);
    double loss_sum = 0;
    int64_t wrong = 0;
    for (int64_t b0 = 0; b0 < N; b0 += tc.batch) {
      const int64_t b1 = std::min(N, b0 + tc.batch), B = b1 - b0;
      const QuantizedWeights qw = quantize_weights(model);
      const int chunks = static_cast<int>(std::min<int64_t>(T, B));
      std::vector<double> closs(static_cast<size_t>(chunks), 0.0);
      std::vector<int64_t> cwrong(static_cast<size_t>(chunks), 0);
      parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          auto& g = grads[static_cast<size_t>(c)];
          for (auto& v : g) std::fill(v.begin(), v.end(), 0.0f);
          std::vector<int32_t> shift;
          for (int64_t i = b0 + B * c / chunks; i < b0 + B * (c + 1) / chunks; ++i) {
            const Example& ex = train_set[static_cast<size_t>(order[static_cast<size_t>(i)])];
            shift.clear();
            if (tc.random_time > 0.0) {
              uint64_t h = mix(tc.seed * 0x100000001b3ull ^ mix(static_cast<uint64_t>(epoch) << 32 ^
                                                                 static_cast<uint64_t>(order[static_cast<size_t>(i)])));
              const int64_t n = ex.sentences();
              shift.assign(static_cast<size_t>(n), 0);
              int32_t extra = 0;
              for (int64_t s = n - 1; s >= 0; --s) {
                shift[static_cast<size_t>(s)] = extra;
                h = mix(h);
                if (static_cast<double>(h >> 11) * 0x1.0p-53 < tc.random_time) ++extra;
              }
            }
            int32_t p = 0;
            closs[static_cast<size_t>(c)] += forward_backward(model, qw, ex, linear, shift, &g, &p);
            cwrong[static_cast<size_t>(c)] += p != ex.answer;
          }
        }
      });
      for (int c = 1; c < chunks; ++c)
        for (size_t m = 0; m < mats.size(); ++m) {
          float* dst = grads[0][m].data();
          const float* src = grads[static_cast<size_t>(c)][m].data();
          for (size_t i = 0; i < mats[m].w.size(); ++i) dst[i] += src[i];
        }
      for (size_t m = 0; m < mats.size(); ++m) {
        std::vector<float>& g = grads[0][m];
        double ss = 0;
        for (float v : g) ss += static_cast<double>(v) * v;
        const double norm = std::sqrt(ss);
        const double clip = norm > tc.clip && tc.clip > 0 ? tc.clip / norm : 1.0;
        const float step = static_cast<float>(lr * model.lr_scale(static_cast<int>(m)) * clip / static_cast<double>(B));
        float* w = mats[m].w.data();
        for (size_t i = 0; i < g.size(); ++i) w[i] -= step * g[i];
      }
      if (clip_value > 0)
        for (Matrix& m : mats)
          for (float& v : m.w) v = std::clamp(v, -clip_value, clip_value);
      model.zero_null_rows();
      loss_sum += std::accumulate(closs.begin(), closs.end(), 0.0);
      wrong += std::accumulate(cwrong.begin(), cwrong.end(), int64_t{0});
    }
    EpochReport rep;
    rep.epoch = epoch + 1;
    rep.lr = lr;
    rep.train_loss = loss_sum / static_cast<double>(N);
    rep.train_error = static_cast<double>(wrong) / static_cast<double>(N);
    const EvalResult v = valid_set.empty() ? EvalResult{} : evaluate(model, valid_set);
    const EvalResult t = test_set.empty() ? EvalResult{} : evaluate(model, test_set);
    rep.valid_loss = v.loss;
    rep.valid_error = v.error;
    rep.test_error = t.error;
    const bool better = out.best_epoch == 0 || v.error < out.best_valid_error ||
                        (v.error == out.best_valid_error && v.loss < best_loss);
    if (better && !linear) {
      out.best = model;
      out.best_epoch = rep.epoch;
      out.best_valid_error = v.error;
      out.best_test_error = t.error;
      best_loss = v.loss;
      since_best = 0;
      rep.best = true;
    } else {
      ++since_best;
    }
    out.final_test_error = t.error;
    last_valid_error = v.error;
    out.epochs_run = rep.epoch;
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (on_epoch) on_epoch(rep);
    if (tc.early_stopping && since_best > tc.es_patience && v.error > out.best_valid_error + tc.es_margin) break;
  }
  if (out.best_epoch == 0) {  // only linear-start epochs ran: the last epoch stands in
    out.best = model;
    out.best_epoch = out.epochs_run;
    out.best_valid_error = last_valid_error;
    out.best_test_error = out.final_test_error;
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return out;
}

}  // namespace lowbit::nn::memn2n
