// LSTM models: stacked LSTM layers as a sequence model (`kind: lstm`, x[T,B,n_input] ->
// y[T,B,n_output]) or a language model (`kind: lstm_lm`, token ids -> embedding -> LSTM layers ->
// vocabulary logits), in float32 or in the integer-only 8x8_16 scheme of TensorFlow Lite
// (Li & Alvarez): int8 weights and activations, int16 gates and cell state, int32 accumulators,
// no float arithmetic in a step. docs/formats.md ("LSTM models") describes the file; the
// integer arithmetic is in quant/integer_ops.h.
//
// Variants per layer: CIFG (input gate = 1 − forget gate), peephole, projection (with optional
// bias), layer normalisation, cell clip and projection clip, in every combination.
//
// Integer models are bit-exact to TensorFlow Lite 2.16's reference kernel (EvalInteger8x8_16):
// the effective multipliers and folded biases are derived at load time from the real scales in
// the file as TFLite's Prepare does (float32 products left to right, then QuantizeMultiplier),
// and the step reproduces two of the kernel's quirks on purpose:
//   * with a projection the hidden value o·tanh(c) is quantized with the zero point subtracted,
//     clamp(MBQM(o·tanh(c)) − zp_hidden), and the projection's folded bias adds
//     +zp_hidden·rowsum(W_proj) (consistent with each other; the int8 clamp then cuts at
//     −128 + zp_hidden and 127 + zp_hidden); without a projection the zero point is added, as
//     for the output state it becomes (checked against TF 2.16.2 and LiteRT 1.4.0,
//     tests/data/litert/);
//   * the peephole terms of the input and forget gates cover n_output cells per batch row and read
//     the cell state with a row stride of n_output (TFLite passes n_output as the length); with a
//     projection and n_output < n_cell, later cells get no peephole term. Without projection
//     (n_output = n_cell) this is the ordinary peephole.
// The float step is the plain definition (peepholes over all n_cell cells).
//
// Each integer model keeps two implementations of the step: a scalar reference that follows the
// TFLite kernel call by call on the unpacked weights, and the fast path, which computes each
// side's four gate matrices as one int8 GEMV (batch 1) or GEMM (batch > 1) on packed weights
// (kernels/igemm.h) and then rescales gate by gate. Both give identical integers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lowbit::io {
struct ModelFile;
}

namespace lowbit::runtime {

enum class LstmKind : uint8_t { lstm, lstm_lm };

struct LstmLayerSpec {
  std::string name;  // tensor prefix, e.g. "lstm.0"
  int64_t n_input = 0, n_cell = 0, n_output = 0;
  bool cifg = false, peephole = false, projection = false, layer_norm = false;
  float cell_clip = 0.0f, proj_clip = 0.0f;  // 0 = no clipping
};

// Running minimum and maximum of a tensor (calibration). NaNs are skipped.
struct MinMax {
  float lo = 0.0f, hi = 0.0f;
  bool seen = false;
  void update(const float* v, int64_t n);
  void update(float v) { update(&v, 1); }
};

// Ranges recorded by the float step for post-training quantization (one per layer).
struct LstmLayerRanges {
  MinMax input;         // x
  MinMax output_state;  // y, and the state before and after each step
  MinMax cell_state;    // c, before and after each step
  MinMax hidden;        // o·tanh(c), before the projection
  MinMax gate[4];       // i, f, c, o pre-activations W·x + R·h (+ peephole), before layer norm
};

class LstmModel {
 public:
  LstmModel();
  LstmModel(LstmModel&&) noexcept;
  LstmModel& operator=(LstmModel&&) noexcept;
  ~LstmModel();

  // Validates the metadata and every tensor (names, dtypes, shapes, scales, cell scale a power
  // of two <= 2^-9, chained layer widths and quantization) and precomputes what the steps need.
  // Throws lowbit::Error naming `source` and the problem.
  static LstmModel from_model_file(const io::ModelFile& file, const std::string& source);
  static LstmModel load(const std::string& path);
  // True when the file's metadata says kind lstm or lstm_lm.
  static bool is_lstm_file(const io::ModelFile& file);

  LstmKind kind() const;
  bool is_integer() const;
  const std::vector<LstmLayerSpec>& layers() const;
  int64_t n_input() const;   // first layer's input width (the embedding width for lstm_lm)
  int64_t n_output() const;  // last layer's output width
  int64_t vocab_size() const;  // lstm_lm only, else 0
  // The file it was loaded from (quantization reads the float tensors from it).
  const io::ModelFile& file() const;
  // Bytes of all weight, bias and table tensors as stored.
  int64_t weight_bytes() const;
  // Integer models: the int8 input quantization of the first layer (scale, zero point) and the
  // output quantization of the last layer.
  double input_scale() const;
  int32_t input_zero_point() const;
  double output_scale() const;
  int32_t output_zero_point() const;

  // Recurrent state of every layer for `batch` parallel sequences. A fresh state is zero (int8
  // output state = its zero point, cell = 0).
  class State {
   public:
    State();
    State(State&&) noexcept;
    State& operator=(State&&) noexcept;
    ~State();
    int64_t batch() const;
    struct Impl;
    std::unique_ptr<Impl> impl;
  };
  State initial_state(int64_t batch) const;

  // Sequence models, time-major: x [steps, batch, n_input] -> y [steps, batch, n_output].
  // run_float needs a float model, run_integer an integer one. `ranges` (one per layer) are
  // updated when given. `reference` selects the scalar reference step.
  void run_float(const float* x, int64_t steps, State& state, float* y,
                 std::vector<LstmLayerRanges>* ranges = nullptr) const;
  void run_integer(const int8_t* x, int64_t steps, State& state, int8_t* y, bool reference = false) const;

  // Language models: tokens [steps, batch] (ids in [0, vocab)) -> logits [steps, batch, vocab].
  // Integer models compute int32 logits and dequantize them (scale s_output_state · s_head).
  void run_lm(const int32_t* tokens, int64_t steps, State& state, float* logits, bool reference = false,
              std::vector<LstmLayerRanges>* ranges = nullptr) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit::runtime
