// Integer MemN2N runtime, its exporter and its operation counter (runtime/memn2n.h).
#include "lowbit/runtime/memn2n.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "lowbit/core/error.h"
#include "lowbit/energy/ops.h"
#include "lowbit/quant/fixed_q.h"
#include "lowbit/quant/integer_ops.h"

namespace lowbit::runtime {
namespace {

using json = nlohmann::ordered_json;
namespace mm = nn::memn2n;

int64_t words_for(int64_t bits) { return (bits + 63) / 64; }

// Matrix `m` quantized as the training graph does for format `f` (first `rows` rows).
void add_matrix(io::ModelFile& file, const std::string& name, const mm::Matrix& m, int64_t rows,
                quant::FixedFormat f, bool round_nearest, json& alphas) {
  const std::span<const float> w(m.w.data(), static_cast<size_t>(rows * m.cols));
  if (f.is_binary()) {
    double sum = 0;
    for (float v : m.w) sum += std::fabs(v);  // α over the whole matrix, as quantize_weights
    const double mean = m.w.empty() ? 0.0 : sum / static_cast<double>(m.w.size());
    alphas[name] = static_cast<int32_t>(std::max(1.0, std::round(mean * 1024.0)));
    const int64_t words = words_for(m.cols);
    std::vector<uint64_t> bits(static_cast<size_t>(rows * words), 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c)
        if (w[static_cast<size_t>(r * m.cols + c)] >= 0.0f)
          bits[static_cast<size_t>(r * words + c / 64)] |= uint64_t{1} << (c % 64);
    file.add(name, io::Array::from<uint64_t>({rows, words}, std::span<const uint64_t>(bits)));
  } else {
    std::vector<int8_t> codes(w.size());
    quant::fixed_to_codes(w, codes, f, round_nearest ? quant::FixedRounding::nearest : quant::FixedRounding::truncate);
    file.add(name, io::Array::from<int8_t>({rows, m.cols}, std::span<const int8_t>(codes)));
  }
}

json fmt_json(quant::FixedFormat f) { return json::array({f.int_bits, f.frac_bits}); }

}  // namespace

int32_t softmax_exp_q15(int64_t x, int frac) {
  LOWBIT_CHECK(x <= 0 && frac >= 0 && frac <= 24, "softmax_exp_q15(", x, ", ", frac, "): expected x <= 0");
  // x / 2^frac to Q4.11 (truncating extra fraction bits), saturated at −16: exp(−16) is below
  // half a Q0.15 step.
  constexpr int kIntBits = 4, kFrac = 15 - kIntBits;
  const int64_t mag = -x, lim = int64_t{1} << 15;  // lim: 16.0 in Q4.11
  const int64_t q = frac <= kFrac ? (mag > (lim >> (kFrac - frac)) ? lim : mag << (kFrac - frac))
                                  : std::min(mag >> (frac - kFrac), lim);
  return quant::iops::exp_on_negative_values(static_cast<int16_t>(-q), kIntBits);
}

io::ModelFile export_memn2n(const mm::Model& model, std::span<const std::string> vocab, const std::string& extra) {
  const mm::Config& c = model.config();
  LOWBIT_CHECK(c.quantized, "export: the MemN2N model is not quantized (train with a recipe that has "
                            "model.quantization); the integer runtime needs fixed-point or binary weights");
  LOWBIT_CHECK(static_cast<int64_t>(vocab.size()) == model.vocab_size(), "export: vocabulary size mismatch");
  io::ModelFile f;
  json alphas = json::object();
  const auto& mats = model.matrices();
  const int64_t V = model.vocab_size();
  for (int k = 0; k < c.hops; ++k) {
    const std::string h = "hop" + std::to_string(k) + ".";
    const auto& A = mats[static_cast<size_t>(model.a_index(k))];
    const auto& C = mats[static_cast<size_t>(model.c_index(k))];
    add_matrix(f, h + "A", A, A.rows, c.weight_format(k), c.round_nearest, alphas);
    add_matrix(f, h + "C", C, C.rows, c.weight_format(k), c.round_nearest, alphas);
    if (model.h_index() >= 0)
      add_matrix(f, h + "H", mats[static_cast<size_t>(model.h_index())], c.dim, c.weight_format(k), c.round_nearest, alphas);
  }
  add_matrix(f, "B", mats[static_cast<size_t>(model.b_index())], V, c.weight_format(0), c.round_nearest, alphas);
  add_matrix(f, "W", mats[static_cast<size_t>(model.w_index())], V, c.weight_format(-1), c.round_nearest, alphas);
  json wf = json::array();
  for (int k = 0; k < c.hops; ++k) wf.push_back(fmt_json(c.weight_format(k)));
  json meta = json::parse(extra);
  meta.erase("kind");
  meta.erase("config");
  meta.erase("vocab");
  meta["model"] = {{"kind", "memn2n"},
                   {"dim", c.dim},
                   {"hops", c.hops},
                   {"vocab_size", V},
                   {"memory_size", c.memory_size},
                   {"temporal", c.temporal},
                   {"encoding", c.encoding == mm::Encoding::bow ? "bow" : "position"},
                   {"position_frac_bits", mm::kPositionFracBits},
                   {"tying", c.tying == mm::Tying::adjacent ? "adjacent" : "layerwise"},
                   {"addressing", c.addressing == mm::Addressing::dot ? "dot" : "hamming"},
                   {"score_shift", c.score_shift},
                   {"product_quant", c.product_quant},
                   {"memory", mm::Config::memory_name(c.memory_act)},
                   {"rounding", c.round_nearest ? "nearest" : "truncate"},
                   {"act_format", fmt_json(c.act_format())},
                   {"attention_format", fmt_json(c.attention_format())},
                   {"logit_format", fmt_json(c.logit_format())},
                   {"weight_formats", wf},
                   {"answer_format", fmt_json(c.weight_format(-1))},
                   {"binary_alpha", alphas},
                   {"training_config", json::parse(mm::config_json(c))}};
  meta["vocab"] = std::vector<std::string>(vocab.begin(), vocab.end());
  f.metadata = meta.dump();
  return f;
}

Memn2nRuntime::Mat Memn2nRuntime::load_mat(const io::ModelFile& file, const std::string& name,
                                           const std::string& source) {
  const io::Array& a = file.get(name);
  Mat m;
  LOWBIT_CHECK(a.shape().size() == 2, source, ": tensor ", name, " has shape ", shape_str(a.shape()),
               " (expected 2 dimensions)");
  m.rows = a.shape()[0];
  if (a.type() == io::ElemType::U64) {
    m.binary = true;
    m.words = a.shape()[1];
    const auto v = a.values<uint64_t>();
    m.bits.assign(v.begin(), v.end());
  } else {
    LOWBIT_CHECK(a.type() == io::ElemType::I8, source, ": tensor ", name, " is ", io::elem_type_name(a.type()),
                 " (expected I8 codes or U64 packed bits)");
    m.cols = a.shape()[1];
    const auto v = a.values<int8_t>();
    m.codes.assign(v.begin(), v.end());
  }
  return m;
}

Memn2nRuntime Memn2nRuntime::from_model_file(const io::ModelFile& file, const std::string& source) {
  const json meta = json::parse(file.metadata, nullptr, false);
  LOWBIT_CHECK(!meta.is_discarded() && meta.contains("model") && meta["model"].is_object() &&
                   meta["model"].value("kind", "") == "memn2n",
               source, ": not a MemN2N model file (metadata model.kind \"memn2n\" expected)");
  const json& m = meta["model"];
  Memn2nRuntime rt;
  try {
    rt.d_ = m.at("dim").get<int64_t>();
    rt.hops_ = m.at("hops").get<int>();
    rt.V_ = m.at("vocab_size").get<int64_t>();
    rt.mem_ = m.at("memory_size").get<int64_t>();
    rt.temporal_ = m.at("temporal").get<bool>();
    const std::string enc = m.value("encoding", std::string("bow"));
    LOWBIT_CHECK(enc == "bow" || enc == "position", source, ": encoding \"", enc, "\" (expected bow or position)");
    rt.position_ = enc == "position";
    if (rt.position_)
      LOWBIT_CHECK(m.value("position_frac_bits", -1) == mm::kPositionFracBits, source,
                   ": position_frac_bits must be ", mm::kPositionFracBits, " for position encoding");
    rt.layerwise_ = m.at("tying").get<std::string>() == "layerwise";
    rt.hamming_ = m.at("addressing").get<std::string>() == "hamming";
    rt.score_shift_ = m.at("score_shift").get<int>();
    rt.product_quant_ = m.value("product_quant", false);
    rt.memory_act_ = mm::Config::parse_memory_name(m.value("memory", std::string("weight")), source);
    const std::string rounding = m.value("rounding", std::string("truncate"));
    LOWBIT_CHECK(rounding == "truncate" || rounding == "nearest", source, ": rounding \"", rounding,
                 "\" (expected truncate or nearest)");
    rt.round_nearest_ = rounding == "nearest";
    auto fmt = [](const json& j) { return Fmt{j.at(0).get<int>(), j.at(1).get<int>()}; };
    rt.act_ = fmt(m.at("act_format"));
    rt.att_ = fmt(m.at("attention_format"));
    rt.logit_ = m.contains("logit_format") ? fmt(m.at("logit_format")) : rt.act_;
    rt.ansf_ = fmt(m.at("answer_format"));
    for (const json& w : m.at("weight_formats")) rt.wf_.push_back(fmt(w));
    rt.vocab_ = meta.at("vocab").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    fail(source, ": bad MemN2N metadata (", e.what(), ")");
  }
  LOWBIT_CHECK(rt.d_ >= 1 && rt.hops_ >= 1 && static_cast<int>(rt.wf_.size()) == rt.hops_ &&
                   static_cast<int64_t>(rt.vocab_.size()) == rt.V_ && rt.mem_ >= 1,
               source, ": inconsistent MemN2N metadata");
  LOWBIT_CHECK(rt.logit_.i >= 0 && rt.logit_.f >= 0 && rt.logit_.i + rt.logit_.f <= 7 &&
                   rt.logit_.binary() == rt.act_.binary(),
               source, ": logit_format [", rt.logit_.i, ", ", rt.logit_.f,
               "] (expected an 8-bit fixed-point format, binary only with binary activations)");
  const json alphas = m.value("binary_alpha", json::object());
  if (rt.product_quant_) {
    bool fixed = !rt.act_.binary() && !rt.ansf_.binary();
    for (const Fmt& f : rt.wf_) fixed = fixed && !f.binary();
    LOWBIT_CHECK(fixed, source, ": product_quant needs fixed-point weight and activation formats");
    LOWBIT_CHECK(!rt.memory_act_, source, ": product_quant cannot be combined with memory \"activation\"");
  }
  const int64_t rows = rt.V_ + (rt.temporal_ ? rt.mem_ : 0);
  auto load = [&](const std::string& name, int64_t expect_rows) {
    Mat x = load_mat(file, name, source);
    if (x.binary) {
      x.cols = rt.d_;
      LOWBIT_CHECK(x.words == words_for(rt.d_), source, ": ", name, " has ", x.words, " words per row (expected ",
                   words_for(rt.d_), ")");
      LOWBIT_CHECK(alphas.contains(name), source, ": no binary_alpha for ", name);
      x.alpha = alphas.at(name).get<int32_t>();
    }
    LOWBIT_CHECK(x.rows == expect_rows && x.cols == rt.d_, source, ": ", name, " is ", x.rows, "x", x.cols,
                 " (expected ", expect_rows, "x", rt.d_, ")");
    return x;
  };
  for (int k = 0; k < rt.hops_; ++k) {
    const std::string h = "hop" + std::to_string(k) + ".";
    rt.A_.push_back(load(h + "A", rows));
    rt.C_.push_back(load(h + "C", rows));
    if (rt.layerwise_) rt.H_.push_back(load(h + "H", rt.d_));
  }
  rt.B_ = load("B", rt.V_);
  rt.W_ = load("W", rt.V_);
  return rt;
}

// Sign-magnitude re-quantization of v (in units of 2^−from_frac) to `to`: the magnitude is
// truncated, or with round_nearest_ rounded half up (ties away from zero), then saturated.
int64_t Memn2nRuntime::requant(int64_t v, int from_frac, Fmt to) const {
  if (to.binary()) return v >= 0 ? 1 : -1;
  const int64_t mag = v < 0 ? -v : v;
  const int shift = from_frac - to.f;
  const int64_t half = round_nearest_ && shift > 0 ? int64_t{1} << (shift - 1) : 0;
  int64_t q = shift >= 0 ? ((mag + half) >> shift) : (mag << -shift);
  q = std::min(q, to.maxcode());
  return v < 0 ? -q : q;
}

int64_t Memn2nRuntime::embed_sum(const Mat& mat, int32_t b, int32_t e, const int32_t* words, int64_t trow,
                                 int64_t col, const int32_t* position_codes) const {
  int64_t s = 0;
  for (int32_t t = b; t < e; ++t) {
    const int32_t id = words[t];
    LOWBIT_CHECK(id >= 0 && id < V_, "memn2n runtime: word id ", id, " outside the vocabulary");
    const int64_t v = mat.value(id, col);
    s += position_codes ? v * position_codes[(t - b) * d_ + col] : v;
  }
  if (trow >= 0) s += position_ ? mat.value(trow, col) * (int64_t{1} << mm::kPositionFracBits) : mat.value(trow, col);
  return s;
}

int32_t Memn2nRuntime::predict(const mm::Example& ex, std::vector<std::vector<float>>* attention) const {
  const int64_t d = d_, n = ex.sentences();
  LOWBIT_CHECK(n >= 1, "memn2n runtime: a question without memory sentences");
  LOWBIT_CHECK(n <= mem_, "memn2n runtime: ", n, " memory sentences (the model holds ", mem_, ")");
  const bool bin_acts = act_.binary();
  const int pf = position_ ? mm::kPositionFracBits : 0;  // fraction bits of the embedding sums' weights
  // Position weight codes [j][k] by sentence length, built once per length in this question.
  std::vector<std::vector<int32_t>> position_codes;
  auto codes_for = [&](int64_t J) -> const int32_t* {
    if (!position_ || J <= 0) return nullptr;
    if (static_cast<int64_t>(position_codes.size()) <= J) position_codes.resize(static_cast<size_t>(J + 1));
    std::vector<int32_t>& c = position_codes[static_cast<size_t>(J)];
    if (c.empty()) c = mm::position_weight_codes(J, d);
    return c.data();
  };
  // u_1: sum of B rows.
  std::vector<int64_t> u(static_cast<size_t>(d)), un(static_cast<size_t>(d));
  {
    const Fmt f0 = wf_[0];
    const auto nq = static_cast<int32_t>(ex.query.size());
    for (int64_t j = 0; j < d; ++j) {
      const int64_t s = embed_sum(B_, 0, nq, ex.query.data(), -1, j, codes_for(nq));
      u[static_cast<size_t>(j)] = B_.binary ? requant(s * B_.alpha, 10 + pf, act_) : requant(s, f0.f + pf, act_);
    }
  }
  if (attention) attention->clear();
  // Σ_j a(j)·b(j) of codes whose products have `from_frac` fraction bits, and the fraction bits of
  // that sum. With product_quant each product is first re-quantized to `to` (the sum then has
  // to.f fraction bits).
  auto sum_products = [&](int64_t len, auto a, auto b, int from_frac, Fmt to) {
    int64_t s = 0;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t prod = a(j) * b(j);
      s += product_quant_ ? requant(prod, from_frac, to) : prod;
    }
    return std::pair<int64_t, int>{s, product_quant_ ? to.f : from_frac};
  };
  auto u_at = [&](int64_t j) { return u[static_cast<size_t>(j)]; };
  std::vector<int64_t> M(static_cast<size_t>(n * d)), C(static_cast<size_t>(n * d)), z(static_cast<size_t>(n)),
      p(static_cast<size_t>(n));
  const int64_t wpr = words_for(d);
  std::vector<uint64_t> mbits(static_cast<size_t>(n * wpr)), ubits(static_cast<size_t>(wpr));
  for (int k = 0; k < hops_; ++k) {
    const Fmt wf = wf_[static_cast<size_t>(k)];
    const Fmt mf = memory_act_ ? act_ : wf;  // of the memory vectors
    const Mat& A = A_[static_cast<size_t>(k)];
    const Mat& Cm = C_[static_cast<size_t>(k)];
    // Embedding sum (units of 2^−(frac + pf), binary rows: of α) to the memory format.
    auto to_memory = [&](int64_t s, const Mat& mat) {
      return mat.binary && !mf.binary() ? requant(s * mat.alpha, 10 + pf, mf) : requant(s, wf.f + pf, mf);
    };
    for (int64_t i = 0; i < n; ++i) {
      const int32_t b = ex.offsets[static_cast<size_t>(i)], e = ex.offsets[static_cast<size_t>(i + 1)];
      const int64_t trow = temporal_ ? V_ + std::min<int64_t>(n - 1 - i, mem_ - 1) : -1;
      const int32_t* pc = codes_for(e - b);
      for (int64_t j = 0; j < d; ++j) {
        const int64_t sa = embed_sum(A, b, e, ex.words.data(), trow, j, pc);
        const int64_t sc = embed_sum(Cm, b, e, ex.words.data(), trow, j, pc);
        M[static_cast<size_t>(i * d + j)] = to_memory(sa, A);  // saturation (binary: sign)
        C[static_cast<size_t>(i * d + j)] = to_memory(sc, Cm);
      }
    }
    // Addressing.
    int z_frac = logit_.f;
    const bool sign_sim = hamming_ && wf.binary();
    if (sign_sim || (bin_acts && wf.binary())) {
      // Sign bits: memories and query packed, XNOR/popcount.
      std::fill(mbits.begin(), mbits.end(), 0);
      std::fill(ubits.begin(), ubits.end(), 0);
      for (int64_t j = 0; j < d; ++j)
        if (u[static_cast<size_t>(j)] >= 0) ubits[static_cast<size_t>(j / 64)] |= uint64_t{1} << (j % 64);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j)
          if (M[static_cast<size_t>(i * d + j)] >= 0)
            mbits[static_cast<size_t>(i * wpr + j / 64)] |= uint64_t{1} << (j % 64);
      for (int64_t i = 0; i < n; ++i) {
        int64_t diff = 0;
        for (int64_t w = 0; w < wpr; ++w)
          diff += std::popcount(mbits[static_cast<size_t>(i * wpr + w)] ^ ubits[static_cast<size_t>(w)]);
        const int64_t agree = d - 2 * diff;  // Σ sign(m)·sign(u)
        if (sign_sim) z[static_cast<size_t>(i)] = bin_acts ? agree : requant(agree, score_shift_, logit_);
        else z[static_cast<size_t>(i)] = agree;  // binary dot product, not re-quantized
      }
      if (sign_sim) z_frac = bin_acts ? score_shift_ : logit_.f;
      else z_frac = 0;
    } else if (!hamming_) {
      for (int64_t i = 0; i < n; ++i) {
        const auto [s, f] = sum_products(
            d, [&](int64_t j) { return M[static_cast<size_t>(i * d + j)]; }, u_at, mf.f + act_.f, wf);
        z[static_cast<size_t>(i)] = bin_acts ? s : requant(s, f, logit_);
      }
      if (bin_acts) z_frac = 0;
    } else {
      const int G = std::max(mf.f, act_.f);
      const int64_t top = (int64_t{1} << (act_.i + act_.f)) - 1;
      for (int64_t i = 0; i < n; ++i) {
        int64_t s = 0;
        for (int64_t j = 0; j < d; ++j) {
          const int64_t a = M[static_cast<size_t>(i * d + j)], b = u[static_cast<size_t>(j)];
          const int64_t A2 = a * (int64_t{1} << (G - mf.f)), B2 = b * (int64_t{1} << (G - act_.f));
          const int64_t D = A2 > B2 ? A2 - B2 : B2 - A2;
          const int64_t mag = std::max<int64_t>(0, top - (D >> (G - act_.f)));
          const int64_t term = ((a >= 0) == (b >= 0)) ? mag : -mag;
          s += product_quant_ ? requant(term, act_.i + act_.f + score_shift_, act_) : term;
        }
        z[static_cast<size_t>(i)] = product_quant_ ? requant(s, act_.f, logit_)
                                                   : requant(s, act_.i + act_.f + score_shift_, logit_);
      }
    }
    // Fixed-point softmax to the attention format.
    const int64_t zmax = *std::max_element(z.begin(), z.begin() + n);
    int64_t sum = 0;
    for (int64_t i = 0; i < n; ++i)
      sum += p[static_cast<size_t>(i)] = softmax_exp_q15(z[static_cast<size_t>(i)] - zmax, z_frac);
    for (int64_t i = 0; i < n; ++i)
      p[static_cast<size_t>(i)] =
          std::min(att_.maxcode(), ((p[static_cast<size_t>(i)] << att_.f) + (round_nearest_ ? sum / 2 : 0)) /
                                       std::max<int64_t>(sum, 1));
    if (attention) {
      std::vector<float> a(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i)] = std::ldexp(static_cast<float>(p[static_cast<size_t>(i)]), -att_.f);
      attention->push_back(std::move(a));
    }
    // o, H u, u + o.
    for (int64_t j = 0; j < d; ++j) {
      const auto [s, sf] = sum_products(
          n, [&](int64_t i) { return p[static_cast<size_t>(i)]; },
          [&](int64_t i) { return C[static_cast<size_t>(i * d + j)]; }, att_.f + mf.f, wf);
      const int64_t o = requant(s, sf, act_);
      int64_t hu = u[static_cast<size_t>(j)];
      if (layerwise_) {
        const Mat& H = H_[static_cast<size_t>(k)];
        const auto [h, hf] = sum_products(d, [&](int64_t c) { return H.value(j, c); }, u_at, wf.f + act_.f, wf);
        hu = H.binary ? requant(h * H.alpha, 10 + act_.f, act_) : requant(h, hf, act_);
      }
      un[static_cast<size_t>(j)] = requant(hu + o, act_.f, act_);
    }
    u.swap(un);
  }
  // Answer: integer logits, argmax (first maximum).
  int32_t best = 0;
  int64_t best_v = 0;
  for (int64_t v = 0; v < V_; ++v) {
    const int64_t s =
        sum_products(d, [&](int64_t j) { return W_.value(v, j); }, u_at, ansf_.f + act_.f, ansf_).first;
    if (v == 0 || s > best_v) {
      best_v = s;
      best = static_cast<int32_t>(v);
    }
  }
  return best;
}

std::string Memn2nRuntime::describe() const {
  std::ostringstream s;
  s << "memn2n d " << d_ << ", " << hops_ << " hops, " << (position_ ? "position encoding" : "bag of words") << ", "
    << (layerwise_ ? "layer-wise" : "adjacent") << " tying, "
    << (hamming_ ? "Hamming" : "dot") << " addressing, activations Q" << act_.i << "." << act_.f << ", weights";
  for (const Fmt& f : wf_) s << (f.binary() ? " binary" : " Q" + std::to_string(f.i) + "." + std::to_string(f.f));
  s << ", vocabulary " << V_ << ", memory " << mem_;
  if (memory_act_) s << " (memory vectors in the activation format)";
  if (logit_.i != act_.i || logit_.f != act_.f) s << ", logits Q" << logit_.i << "." << logit_.f;
  return s.str();
}

// Operation counter ------------------------------------------------------------------------------

namespace {

void count_memn2n(const io::ModelFile& file, energy::OpTally& rt, energy::OpTally& fp) {
  using energy::Arith;
  using energy::OpKind;
  const json meta = json::parse(file.metadata);
  const json& m = meta.at("model");
  const auto d = m.at("dim").get<uint64_t>(), V = m.at("vocab_size").get<uint64_t>();
  const int K = m.at("hops").get<int>();
  // One inference: a story of `n` memories of `w` words (the training set's means when recorded).
  const auto n = static_cast<uint64_t>(std::llround(meta.value("mean_memories", static_cast<double>(m.at("memory_size").get<int64_t>()))));
  const auto w = static_cast<uint64_t>(std::llround(meta.value("mean_words", 7.0)));
  const auto wq = static_cast<uint64_t>(std::llround(meta.value("mean_query_words", 4.0)));
  const bool temporal = m.at("temporal").get<bool>(), layerwise = m.at("tying") == "layerwise";
  const bool hamming = m.at("addressing") == "hamming";
  const bool bin_acts = m.at("act_format").at(0) == 0 && m.at("act_format").at(1) == 0;
  const int abits = bin_acts ? 1 : 1 + m.at("act_format").at(0).get<int>() + m.at("act_format").at(1).get<int>();
  const uint64_t words_per_sentence = w + (temporal ? 1 : 0);
  const uint64_t words64 = (d + 63) / 64;
  const bool position = m.value("encoding", std::string("bow")) == "position";
  const int pbits = 1 + mm::kPositionFracBits;  // position weights 0 ... 2^F, unsigned
  // product_quant: each product is re-quantized to an 8-bit code (truncation is a shift; the
  // saturation a 16-bit compare) and `terms` such codes are summed in 16 bits when they fit.
  const bool pq = m.value("product_quant", false);
  const bool memory_act = mm::Config::parse_memory_name(m.value("memory", std::string("weight")), "memn2n metadata");
  auto sum_bits = [](uint64_t terms, uint64_t max_term) { return terms * max_term <= 32767 ? 16 : 32; };
  // Rounding to nearest ("rounding": "nearest"): one add (the half) before every re-quantizing
  // shift that drops bits, of the width of the value shifted.
  const bool nearest = m.value("rounding", std::string("truncate")) == "nearest";
  auto rounding = [&](uint64_t count, int bits, const std::string& where) {
    if (nearest && count > 0) rt.add(OpKind::add, Arith::integer, bits, count, where);
  };
  auto dot = [&](int mul_bits, uint64_t dots, uint64_t terms, const std::string& where) {
    if (!pq) {
      rt.mac(Arith::integer, mul_bits, 32, dots * terms, where);
      return;
    }
    rt.add(OpKind::multiply, Arith::integer, mul_bits, dots * terms, where);
    rounding(dots * terms, 16, where);
    rt.add(OpKind::compare, Arith::integer, 16, dots * terms, where);
    rt.add(OpKind::add, Arith::integer, sum_bits(terms, 127), dots * terms, where);
  };
  // Embedding sums of `words` word rows of a `wbits`-bit matrix (plus `plain` unweighted rows):
  // adds for a bag of words, as wide as the sum of a sentence's rows (8-bit codes: 16 bits; ±1
  // rows: 8 bits, for sentences under 127 words); with position encoding each word row is
  // multiplied by its weight first (binary rows: the weight or its negation, an add).
  auto embedding = [&](uint64_t words, uint64_t plain, bool bin_w, int wbits, const std::string& where) {
    if (!position) {
      rt.add(OpKind::add, Arith::integer, bin_w ? 8 : 16, (words + plain) * d, where);
      fp.add(OpKind::add, Arith::floating, 32, (words + plain) * d, where);
      return;
    }
    if (bin_w) rt.add(OpKind::add, Arith::integer, 16, words * d, where);
    else rt.mac(Arith::integer, std::max(wbits, pbits), 32, words * d, where);
    fp.mac(Arith::floating, 32, 32, words * d, where);
    if (plain > 0) {
      rt.add(OpKind::add, Arith::integer, 32, plain * d, where);
      fp.add(OpKind::add, Arith::floating, 32, plain * d, where);
    }
  };
  {
    const json& wf0 = m.at("weight_formats").at(0);
    const bool bin0 = wf0.at(0) == 0 && wf0.at(1) == 0;
    embedding(wq, 0, bin0, bin0 ? 1 : 1 + wf0.at(0).get<int>() + wf0.at(1).get<int>(), "question embedding");
    // u_1 is re-quantized from the sum's fraction bits (plus the position weights') to the activation format.
    const int from = (bin0 ? 10 : wf0.at(1).get<int>()) + (position ? mm::kPositionFracBits : 0);
    if (!bin_acts && from > m.at("act_format").at(1).get<int>()) rounding(d, 32, "question embedding");
  }
  for (int k = 0; k < K; ++k) {
    const json& wf = m.at("weight_formats").at(static_cast<size_t>(k));
    const bool bin_w = wf.at(0) == 0 && wf.at(1) == 0;
    const int wbits = bin_w ? 1 : 1 + wf.at(0).get<int>() + wf.at(1).get<int>();
    const std::string h = "hop " + std::to_string(k + 1) + " ";
    // Memory and output embeddings: sums of rows.
    embedding(2 * n * w, 2 * n * (words_per_sentence - w), bin_w, wbits, h + "embedding");
    // Binary rows kept as activation codes: each sum of ±1 codes is scaled by the matrix's α
    // (11 bits) before its re-quantization.
    if (memory_act && bin_w && !bin_acts) rt.add(OpKind::multiply, Arith::integer, 16, 2 * n * d, h + "embedding");
    // The sums drop fraction bits when they carry position weights, α or a finer weight format.
    {
      const int mem_frac = memory_act ? m.at("act_format").at(1).get<int>() : (bin_w ? 0 : wf.at(1).get<int>());
      const int from = (bin_w ? 10 : wf.at(1).get<int>()) + (position ? mm::kPositionFracBits : 0);
      if (!(bin_w && !memory_act) && from > mem_frac) rounding(2 * n * d, 32, h + "embedding");
    }
    // Addressing.
    if (bin_w && (hamming || bin_acts)) {
      rt.add(OpKind::bitwise, Arith::integer, 64, n * words64, h + "addressing");
      rt.add(OpKind::popcount, Arith::integer, 64, n * words64, h + "addressing");
      rt.add(OpKind::add, Arith::integer, 16, n * words64, h + "addressing");
      if (hamming && !bin_acts) rounding(n, 16, h + "addressing");  // 2^−score_shift Σ ±1 to the activation format
    } else if (hamming) {
      rt.add(OpKind::add, Arith::integer, 16, 2 * n * d, h + "addressing");  // |a − b|, top − t
      rt.add(OpKind::bitwise, Arith::integer, 8, n * d, h + "addressing");   // sign agreement
      // accumulate, as wide as the bounded sum needs: terms below 2^(I + F) codes (product_quant:
      // re-quantized by a shift, below 2^(F − score_shift) codes)
      const json& af = m.at("act_format");
      const uint64_t max_term =
          pq ? uint64_t{1} << std::max(0, af.at(1).get<int>() - m.at("score_shift").get<int>())
             : uint64_t{1} << (af.at(0).get<int>() + af.at(1).get<int>());
      rt.add(OpKind::add, Arith::integer, sum_bits(d, max_term), n * d, h + "addressing");
      if (pq) rounding(n * d, 16, h + "addressing");
      rounding(n, sum_bits(d, max_term), h + "addressing");
    } else {
      dot(std::max(wbits, abits), n, d, h + "addressing");
      if (!bin_acts) rounding(n, 32, h + "addressing");
    }
    fp.mac(Arith::floating, 32, 32, n * d, h + "addressing");
    // Softmax.
    rt.add(OpKind::exp, Arith::integer, 16, n, h + "softmax");  // softmax_exp_q15
    rt.add(OpKind::add, Arith::integer, 32, n, h + "softmax");
    rt.add(OpKind::multiply, Arith::integer, 32, n, h + "softmax");  // normalisation
    rounding(n, 32, h + "softmax");
    fp.add(OpKind::exp, Arith::floating, 32, n, h + "softmax");
    fp.add(OpKind::add, Arith::floating, 32, n, h + "softmax");
    fp.add(OpKind::multiply, Arith::floating, 32, n, h + "softmax");
    // Read.
    dot(8, d, n, h + "read");
    if (!bin_acts) rounding(d, 32, h + "read");
    fp.mac(Arith::floating, 32, 32, n * d, h + "read");
    // Controller.
    if (layerwise) {
      if (bin_w) rt.add(OpKind::add, Arith::integer, 16, d * d, h + "H");
      else dot(std::max(wbits, abits), d, d, h + "H");
      if (!bin_acts) rounding(d, 32, h + "H");
      fp.mac(Arith::floating, 32, 32, d * d, h + "H");
    }
    // Two activation codes: their sum needs 9 bits (sign codes: 2 bits).
    rt.add(OpKind::add, Arith::integer, bin_acts ? 8 : 16, d, h + "u + o");
    fp.add(OpKind::add, Arith::floating, 32, d, h + "u + o");
  }
  const json& af = m.at("answer_format");
  const bool bin_w = af.at(0) == 0 && af.at(1) == 0;
  if (bin_w) rt.add(OpKind::add, Arith::integer, 16, V * d, "answer");
  else dot(std::max(abits, 1 + af.at(0).get<int>() + af.at(1).get<int>()), V, d, "answer");
  rt.add(OpKind::compare, Arith::integer, 32, V, "answer");
  fp.mac(Arith::floating, 32, 32, V * d, "answer");
  fp.add(OpKind::compare, Arith::floating, 32, V, "answer");
}

const bool kRegistered = energy::register_counter("memn2n", count_memn2n);

}  // namespace

}  // namespace lowbit::runtime
