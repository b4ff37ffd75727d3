// Integer runtime of a quantized MemN2N (model kind "memn2n"; layout in docs/formats.md).
//
// Inference uses integer and bit operations only: embeddings are int8 Q(I.F) codes or packed
// sign bits, memory vectors are int8 codes (binary weights: sign bits, or with the metadata's
// "memory": "activation" the α-scaled sums re-quantized to activation codes), addressing is an
// integer dot product, Q-MANN's weighted Hamming similarity on codes, or XNOR/popcount on sign
// bits; the attention softmax is a fixed-point softmax with a 16-bit integer exp
// (softmax_exp_q15); o, H u, u + o and the answer layer are integer MACs with
// int32/int64 accumulators and sign-magnitude re-quantization (truncating, or rounding to nearest
// with the metadata's "rounding": "nearest"). With product_quant
// (model metadata), every product of those sums and every scaled Hamming term is re-quantized
// to 8 bits before it is added, so the sums fit 16-bit accumulators. Every step matches the
// training graph's fake quantization exactly, except the softmax, whose rounding differs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lowbit/io/model_file.h"
#include "lowbit/nn/memn2n.h"

namespace lowbit::runtime {

// Compiles a quantized training model into an integer model file. `extra` (JSON object text) is
// merged into the metadata (task, dataset, statistics for the op counter).
io::ModelFile export_memn2n(const nn::memn2n::Model& model, std::span<const std::string> vocab,
                            const std::string& extra = "{}");

// exp(x / 2^frac) for x <= 0 in Q0.15 (32767 ≈ 1.0), computed in 16-bit fixed point: x is
// converted to Q4.11 (saturating at −16) and passed to quant::exp_on_negative_values, the
// gemmlowp/TFLite int16 exp that the integer LSTM uses too. The attention softmax's exp.
int32_t softmax_exp_q15(int64_t x, int frac);

class Memn2nRuntime {
 public:
  static Memn2nRuntime from_model_file(const io::ModelFile& file, const std::string& source);

  // Answer id; `attention` (optional) gets each hop's attention codes as probabilities.
  int32_t predict(const nn::memn2n::Example& ex, std::vector<std::vector<float>>* attention = nullptr) const;

  const std::vector<std::string>& vocab() const { return vocab_; }
  int64_t memory_size() const { return mem_; }
  std::string describe() const;

 private:
  struct Fmt {
    int i = 0, f = 0;
    bool binary() const { return i + f == 0; }
    int64_t maxcode() const { return (int64_t{1} << (i + f)) - 1; }
  };
  struct Mat {
    int64_t rows = 0, cols = 0, words = 0;
    bool binary = false;
    std::vector<int8_t> codes;     // fixed: rows x cols
    std::vector<uint64_t> bits;    // binary: rows x words, bit 1 = +1, bit 0 = −1
    int32_t alpha = 0;             // binary: scale in units of 2^−10
    int value(int64_t r, int64_t c) const {
      return binary ? ((bits[static_cast<size_t>(r * words + c / 64)] >> (c % 64)) & 1u ? 1 : -1)
                    : codes[static_cast<size_t>(r * cols + c)];
    }
  };
  int64_t d_ = 0, V_ = 0, mem_ = 0;
  int hops_ = 0, score_shift_ = 3;
  bool temporal_ = true, layerwise_ = true, hamming_ = false;
  bool position_ = false;  // position encoding (weights in units of 2^−kPositionFracBits)
  bool product_quant_ = false;  // products re-quantized before summing (nn::memn2n::Config)
  bool memory_act_ = false;     // m_i, c_i in the activation format (nn::memn2n::Config::memory_act)
  bool round_nearest_ = false;  // re-quantization rounds to nearest (nn::memn2n::Config::round_nearest)
  Fmt act_, att_;
  Fmt logit_;            // of the addressing logits (metadata logit_format; default the activation format)
  std::vector<Fmt> wf_;  // per hop
  Fmt ansf_;
  std::vector<Mat> A_, C_, H_;  // per hop
  Mat B_, W_;
  std::vector<std::string> vocab_;

  int64_t requant(int64_t v, int from_frac, Fmt to) const;
  // Σ over the words t in [b, e) of (position weight ·) mat[word, col], plus the time row;
  // position_codes: the sentence's weight codes [j][k] (nullptr: bag of words).
  int64_t embed_sum(const Mat& mat, int32_t b, int32_t e, const int32_t* words, int64_t trow, int64_t col,
                    const int32_t* position_codes) const;
  static Mat load_mat(const io::ModelFile& file, const std::string& name, const std::string& source);
};

}  // namespace lowbit::runtime
