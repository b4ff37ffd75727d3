// End-to-end memory networks (Sukhbaatar et al. 2015) for bAbI, and their quantized versions
// after Q-MANN (Park et al. 2018): a dedicated implementation with a fused forward pass and a
// hand-written backward pass over a batch (not the autograd tape), parallel over the examples
// of a batch.
//
// Model (K hops, embedding size d, vocabulary V, memory of M sentences):
//   memory   m_i = Σ_j l_j ∘ A_k[x_ij] + A_k[time(i)]      c_i likewise with C_k
//   question u_1 = Σ_j l_j ∘ B[q_j]
//   hop k    z_i = sim(m_i, u_k), p = softmax(z), o_k = Σ_i p_i c_i,
//            u_{k+1} = H u_k + o_k (layer-wise tying) or u_k + o_k (adjacent tying)
//   answer   â = softmax(W u_{K+1}) over the V words
// l_j = 1 (bag of words) or the position encoding l_kj = (1 − j/J) − (k/d)(1 − 2j/J); time(i)
// is a one-hot "time word" (temporal encoding: row V + age, the most recent sentence has age 0).
// Adjacent tying: A_{k+1} = C_k, B = A_1, W = C_K (first V rows). Layer-wise tying: one A,
// one C, separate B and W, and a shared d x d matrix H.
//
// Quantization (fake quantization of float master weights, straight-through gradients, with no
// saturation mask unless Config::saturation_mask), with sign-magnitude Q(I.F) from
// quant/fixed_q.h, truncating (or rounding, Config::round_nearest):
//   weights of hop k in the weight format of hop k (MQ: (I+1, F−1), (I, F), (I−1, F+1), ...),
//   binary weights are α·sign(W) with α = mean|W| (rounded to a multiple of 2^−10);
//   m, c in the hop's weight format (memory_act: the activation format); u, o, H u, u + o in
//   the activation format, the logits z too (or in their own format, Config::logit_int_bits);
//   products are exact and only sums are re-quantized, so an integer runtime computes the same
//   values; the attention p is quantized to the activation format (Q0.7 when activations are
//   binary; Q0.(act_bits − 1) with Config::attention_fraction); the answer layer uses the base weight format and is not re-quantized.
// Similarities: dot product (conventional) or Q-MANN's bounded weighted Hamming similarity
//   s(a, b) = sign(a)·sign(b)·[(1 − 2^−(n−1)) − T_{n−1}(|a − b| / 2^I)],  z_i = q(2^−3 Σ_j s)
// (n, I of the activation format; unquantized models use the smooth surrogate without T);
// with binary weights the similarity is the sign agreement (XNOR/popcount), 2^−3 Σ_j ±1.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "lowbit/data/babi.h"
#include "lowbit/io/model_file.h"
#include "lowbit/quant/fixed_q.h"

namespace lowbit::nn::memn2n {

enum class Tying : uint8_t { adjacent, layerwise };
enum class Encoding : uint8_t { bow, position };

// Position encoding (Sukhbaatar et al. 2015): word j of a J-word sentence contributes to
// dimension k of d (all 1-based) with the weight (1 − j/J) − (k/d)(1 − 2j/J), which equals
// ((J − j)(d − k) + j·k) / (J·d) and so lies in [0, 1]. Float models use it as is; quantized
// models round it (half up) to a multiple of 2^−kPositionFracBits, so that the integer runtime
// forms the same sums exactly. position_weight_code returns that weight in units of
// 2^−kPositionFracBits (0 ... 2^kPositionFracBits).
constexpr int kPositionFracBits = 8;
int32_t position_weight_code(int64_t j, int64_t J, int64_t k, int64_t d);
// The codes of every word and dimension of a J-word sentence, [j][k] (row-major, J·d values).
std::vector<int32_t> position_weight_codes(int64_t J, int64_t d);
enum class Addressing : uint8_t { dot, hamming };

struct Config {
  int64_t dim = 60;
  int hops = 3;
  Tying tying = Tying::layerwise;
  Encoding encoding = Encoding::bow;
  bool temporal = true;
  int64_t memory_size = data::kBabiMemoryLimit;
  Addressing addressing = Addressing::dot;
  int score_shift = 3;  // the 2^−3 of the Hamming logit
  // Hamming backward: also pass the gradient through the sign factor sign(a)·sign(b) straight
  // through (∂/∂a += sign(b)·(c − |a − b|/2^I)), so that training can flip signs. Off: only the
  // smooth distance term (qmann.md §6), which never moves a value across zero towards agreement.
  bool hamming_sign_grad = true;
  // Binary addressing (sign agreement of binary-weight models): the straight-through gradient of
  // each sign passes only where that value's magnitude is at most this window, as the BNN sign
  // estimator cancels it beyond |x| <= 1. 0: everywhere (the plain straight-through estimator).
  float sign_ste_window = 0.0f;

  // Quantization; quantized = false trains in float.
  bool quantized = false;
  int act_bits = 8, act_int_bits = 5;        // activation format Q(I.F), F = bits − 1 − I (bits 1: binary)
  int weight_bits = 8, weight_int_bits = 5;  // base weight format (bits 1: binary with α scaling)
  bool mq = false;                           // per-hop weight formats
  // Re-quantize every product of the matrix-vector products (dot-product addressing, the read
  // o = Σ p·c, H·u, the answer layer) to the weight format of its hop before summing, and each
  // scaled Hamming term to the activation format, as the Q-MANN authors' fixed-point simulator
  // does (qmann.md §4, §5). Off: products are summed exactly and only the sum is re-quantized.
  bool product_quant = false;
  // Format of the memory vectors m_i and c_i (sums of embedding rows): the hop's weight format
  // (false, the default; binary weights give sign vectors) or the activation format (true), as
  // the Q-MANN authors' binary mode keeps the memory side in fixed point and binarizes only the
  // weights and the controller's side of the addressing. Recipe key quantization.memory:
  // "weight" | "activation".
  bool memory_act = false;
  // Rounding of every re-quantization (weights, sums, products, attention): truncation toward
  // zero (false, the Q-MANN authors' quantizer) or to nearest, ties away from zero (true).
  // The weighted-Hamming similarity's T_{n−1} truncates either way (it is part of the closed
  // form, not a re-quantization). Recipe key quantization.rounding: "truncate" | "nearest".
  bool round_nearest = false;
  // Straight-through gradients with a saturation mask: the backward pass cancels the gradient of
  // every re-quantized sum that saturated (u, o, H u, the logits z, the memory vectors m and c),
  // as the BNN sign estimator cancels it beyond |x| <= 1. Off (the Q-MANN authors' training): the
  // gradient passes saturated values unchanged. Training only; recipe key
  // quantization.saturation_mask.
  bool saturation_mask = false;
  // Format of the attention p: the activation format (false, as the Q-MANN authors' code
  // re-quantizes p) or all fraction bits, Q0.(act_bits − 1) (true; p lies in [0, 1]). Binary
  // activations always use Q0.7. Recipe key quantization.attention: "activation" | "fraction".
  bool attention_fraction = false;
  // Integer bits of the addressing logits z (their format is Q(I_z.(act_bits − 1 − I_z))), or
  // -1: the activation format. The bounded Hamming similarity keeps |z| <= d·2^−score_shift
  // (7.5 for d = 60), so a Q3.4 logit holds every value, where the activation format of a
  // small-I model (Q1.6: |z| < 2) saturates the logits and caps the softmax's contrast at e^4.
  // Fixed-point activations only. Recipe key quantization.logit_int_bits.
  int logit_int_bits = -1;
  // The name of memory_act in recipes and model metadata ("weight" | "activation"), and its
  // parse, which throws naming `where` for any other name.
  static const char* memory_name(bool memory_act);
  static bool parse_memory_name(const std::string& name, const std::string& where);

  quant::FixedFormat act_format() const;
  quant::FixedFormat weight_format(int hop) const;  // hop -1: the base format (answer layer)
  quant::FixedFormat memory_format(int hop) const;  // of m_i and c_i in hop `hop`
  quant::FixedFormat attention_format() const;      // of p
  quant::FixedFormat logit_format() const;          // of the addressing logits z
  bool binary_weights() const { return quantized && weight_bits == 1; }
  bool binary_acts() const { return quantized && act_bits == 1; }
  void validate() const;  // throws naming the bad value
};

// Ids of one question: memory sentences (oldest first), the question and the answer.
struct Example {
  std::vector<int32_t> words;    // all memory words
  std::vector<int32_t> offsets;  // sentence i = words[offsets[i], offsets[i + 1])
  std::vector<int32_t> query;
  int32_t answer = 0;
  int64_t sentences() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

// Words outside `vocab` become BabiVocabulary::kUnknown; at most `memory_size` latest sentences
// are kept.
std::vector<Example> encode(std::span<const data::BabiExample> examples, const data::BabiVocabulary& vocab,
                            int64_t memory_size);
// The same with a model's word list (id = position; ids 0 and 1 are <null> and <unk>).
std::vector<Example> encode(std::span<const data::BabiExample> examples, std::span<const std::string> words,
                            int64_t memory_size);

struct Matrix {
  std::string name;
  int64_t rows = 0, cols = 0;
  std::vector<float> w;
};

class Model {
 public:
  Model() = default;
  Model(const Config& cfg, int64_t vocab_size);  // zero weights
  void init_normal(float stddev, uint64_t seed);

  const Config& config() const { return cfg_; }
  int64_t vocab_size() const { return vocab_; }
  int64_t embedding_rows() const;  // V (+ memory_size time rows)
  std::vector<Matrix>& matrices() { return mats_; }
  const std::vector<Matrix>& matrices() const { return mats_; }
  int a_index(int hop) const { return a_idx_[static_cast<size_t>(hop)]; }
  int c_index(int hop) const { return c_idx_[static_cast<size_t>(hop)]; }
  int b_index() const { return b_idx_; }
  int w_index() const { return w_idx_; }  // answer rows are the first V rows of this matrix
  int h_index() const { return h_idx_; }  // -1 with adjacent tying
  float lr_scale(int mat) const;          // H learns at 0.1 x

  void zero_null_rows();

 private:
  Config cfg_;
  int64_t vocab_ = 0;
  std::vector<Matrix> mats_;
  std::vector<int> a_idx_, c_idx_;
  int b_idx_ = -1, w_idx_ = -1, h_idx_ = -1;
};

// The weights as the forward pass sees them (quantized per hop format), made once per batch.
struct QuantizedWeights {
  // q[f][m]: matrix m in format slot f (slot = hop with MQ, else 0; answer layer slot = hops).
  std::vector<std::vector<std::vector<float>>> q;
  std::vector<std::vector<float>> alpha;  // binary scale per slot and matrix (1 otherwise)
  int slot(int hop) const { return hop < 0 ? static_cast<int>(q.size()) - 1 : (q.size() > 2 ? hop : 0); }
};
QuantizedWeights quantize_weights(const Model& model);

// One example's forward pass and, with `grads`, its backward pass (gradients are added). Returns
// the loss; `pred` gets the argmax answer. `linear` drops the attention softmax (linear start).
// `time_shift` (may be empty) adds to each sentence's age (random noise in time).
struct HopView {
  std::vector<float> attention;  // p over the memory sentences
};
float forward_backward(const Model& model, const QuantizedWeights& qw, const Example& ex, bool linear,
                       std::span<const int32_t> time_shift, std::vector<std::vector<float>>* grads, int32_t* pred,
                       std::vector<HopView>* hops = nullptr, std::vector<float>* logits = nullptr);

// Closed-form weighted Hamming similarity of two values of the activation format (n = 1 + I + F).
float hamming_similarity(float a, float b, quant::FixedFormat f);

// Training ---------------------------------------------------------------------------------
struct TrainConfig {
  int64_t epochs = 100;
  int64_t batch = 32;
  double lr = 0.3;
  int64_t lr_halve_every = 25;
  double clip = 40.0;
  float init_std = 0.1f;
  int64_t linear_start_epochs = 0;  // epochs without the attention softmax (at lr/2)
  double random_time = 0.0;         // probability of an empty slot after each memory (training)
  bool shuffle = false;
  bool clip_weights = true;     // quantized: keep master weights in the weight formats' range
  // Q-MANN ES: stop once more than `es_patience` epochs have passed since the best validation
  // error and the validation error exceeds the best by more than `es_margin` (a fraction: the
  // reference's 0.3 read as 30 percentage points, a guard against divergence).
  bool early_stopping = false;
  int64_t es_patience = 5;
  double es_margin = 0.3;
  uint64_t seed = 1;
};

struct EpochReport {
  int64_t epoch = 0;
  double lr = 0, train_loss = 0, train_error = 0, valid_loss = 0, valid_error = 0, test_error = 0, seconds = 0;
  bool best = false;
};

struct TrainOutcome {
  Model best;  // the weights of the epoch with the best validation error
  int64_t best_epoch = 0, epochs_run = 0;
  double best_valid_error = 1, best_test_error = 1, final_test_error = 1, seconds = 0;
};

struct EvalResult {
  double loss = 0, error = 0;
  int64_t questions = 0;
  std::vector<int32_t> predictions;
};
EvalResult evaluate(const Model& model, std::span<const Example> examples);

TrainOutcome train(const Config& cfg, const TrainConfig& tc, int64_t vocab_size, std::span<const Example> train_set,
                   std::span<const Example> valid_set, std::span<const Example> test_set,
                   const std::function<void(const EpochReport&)>& on_epoch = {});

// Recipes and files ----------------------------------------------------------------------------
//
// A MemN2N recipe is a JSON object with "kind": "memn2n" (docs/training.md):
//   "data":     {"path": task folder, "fallback_path": folder for files missing there, "task": 1..20 |
//                "all" (each task separately) | "joint", "valid_fraction": 0.1}
//   "model":    Config keys: dim, hops, tying ("adjacent"|"layerwise"), encoding ("bow"|"position"),
//               temporal, memory_size, addressing ("dot"|"hamming"), score_shift, hamming_sign_grad,
//               sign_ste_window, and
//               "quantization": {act_bits, act_int_bits, weight_bits, weight_int_bits, mq,
//                                product_quant, memory, rounding, saturation_mask, attention}
//               (absent: float)
//   "training": TrainConfig keys (epochs, batch, lr, lr_halve_every, clip, init_std,
//               linear_start_epochs, random_time, shuffle, clip_weights, early_stopping,
//               es_patience, es_margin, seed) and runs
// Unknown keys are errors.
struct Recipe {
  std::string name, source;
  std::string data_path, fallback_path;
  std::string task = "1";
  double valid_fraction = 0.1;
  Config model;
  TrainConfig training;
  int runs = 1;
};
bool is_memn2n_recipe(const std::string& path);
Recipe load_recipe(const std::string& path);
std::string recipe_json(const Recipe& r);     // the recipe (with overrides) as JSON text
std::string config_json(const Config& c);     // the "model" object
Config config_from_json(const std::string& text, const std::string& source);

// A trained model file (best.lbm): metadata {"kind": "memn2n-train", "config", "vocab", plus the
// entries of `extra` (a JSON object text)} and one F32 tensor per matrix.
io::ModelFile to_model_file(const Model& model, std::span<const std::string> vocab, const std::string& extra = "{}");
struct Trained {
  Model model;
  std::vector<std::string> vocab;
  std::string metadata;  // JSON text
};
bool is_memn2n_file(const io::ModelFile& file);
// `path` is a run folder (its best.lbm) or a .lbm file.
Trained load_trained(const std::string& path);
Trained from_model_file(const io::ModelFile& file, const std::string& source);

}  // namespace lowbit::nn::memn2n
