// Recurrent language models and their training: token ids -> embedding -> recurrent layers
// (LSTM, GRU or tanh RNN) -> a softmax head over the vocabulary, trained with truncated BPTT on
// Penn Treebank (data/ptb.h), evaluated by perplexity.
//
// A language-model recipe is a JSON file with "task": "language_model" (docs/training.md):
//
//   {"name": "ptb-lstm-float", "task": "language_model", "description": "...",
//    "data": {"dataset": "ptb", "path": "data/ptb"},
//    "model": {"embedding_dim": 300, "dropout": 0.5, "init_scale": 0.1,
//              "layers": [{"type": "lstm", "units": 300}],
//              "quantization": {"weight_bits": 4, "activation_bits": 4}},
//    "optimizer": {"type": "sgd", "lr": 20, "schedule": "plateau", "decay": 4, "clip_grad_norm": 0.25},
//    "training": {"epochs": 40, "batch_size": 20, "bptt": 35, "eval_batch_size": 10, "seed": 1}}
//
// Parsing is as strict as for the classifier recipes: unknown keys, wrong types and values out
// of range are errors naming the key and the file.
//
// QNN quantization (qnn.md §12 item 8): with weight_bits = k the input and recurrent weight
// stacks of every recurrent layer (and an LSTM projection) are quantized in each forward pass
// with the k-bit linear quantizer of quant/kbit.h on [−m, m], m = max|W| of the latent
// weights at that step (straight-through gradient); with activation_bits = k the recurrent
// state h_t is quantized to the symmetric 2^k-level grid on [−1, 1] (the same quantizer with
// m = 1), and the quantized state is both the layer's output and the next step's input. Gate
// nonlinearities, the cell state, embedding and softmax head stay float.
//
// Output folder: run.json, metrics.jsonl (epoch, train_loss, train_perplexity,
// valid_perplexity, test_perplexity, lr, seconds), best.lbm (the epoch with the lowest
// validation perplexity) and checkpoint.lbm, written atomically; --resume continues a run
// exactly (the recurrent state starts from zero each epoch, so an epoch boundary loses nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/autograd/rnn.h"
#include "lowbit/core/tensor.h"
#include "lowbit/nn/parameter.h"

namespace lowbit::nn {

struct LmLayerSpec {
  std::string type = "lstm";  // lstm | gru | rnn
  int64_t units = 0;          // cells (LSTM) or hidden units
  // LSTM only:
  bool cifg = false, peephole = false, layer_norm = false;
  int64_t projection = 0;  // output size of the projection; 0 = none
  double cell_clip = 0, proj_clip = 0;
};

struct LmSpec {
  int64_t vocab_size = 0;  // filled in from the data when 0
  int64_t embedding_dim = 0;
  std::vector<LmLayerSpec> layers;
  double dropout = 0;       // on the embedding output, between layers and before the head
  double init_scale = 0.1;  // every weight and bias ~ U(−s, s); head bias 0, layer-norm coefficients 1
  int weight_bits = 0;      // 0: float weights
  int activation_bits = 0;  // 0: float state
};

class LanguageModel {
 public:
  LanguageModel(LmSpec spec, uint64_t seed);

  struct State {
    std::vector<autograd::RnnState> layers;  // empty tensors mean zeros
  };
  State zero_state() const { return State{std::vector<autograd::RnnState>(spec_.layers.size())}; }

  // ids: i32 [T, B] -> logits [T·B, V] (row t·B + b). `state` is read as the initial state and
  // replaced by the final one (detached: truncated BPTT).
  autograd::Var forward(const Tensor& ids, State& state, bool training);

  const LmSpec& spec() const { return spec_; }
  const ParameterList& parameters() const { return params_; }
  std::shared_ptr<Parameter> parameter(const std::string& name) const;
  int64_t num_parameters() const;
  // The value of a parameter as the forward pass uses it: the k-bit weights for quantized
  // weight stacks, the parameter itself otherwise.
  Tensor effective_value(const std::string& name) const;
  bool is_quantized_weight(const std::string& name) const;

  uint64_t random_calls() const { return calls_; }
  void set_random_calls(uint64_t c) { calls_ = c; }

 private:
  LmSpec spec_;
  uint64_t seed_, calls_ = 0;
  ParameterList params_;
  std::vector<std::string> quantized_;  // names of the weight stacks that are quantized
};

// Mean negative log-likelihood per token and perplexity exp(nll) of `tokens` (i32 [N]) cut into
// `batch` streams and windows of `bptt`, state carried across windows, in eval mode.
struct Perplexity {
  double nll = 0, perplexity = 0;
  int64_t tokens = 0;
};
Perplexity evaluate_perplexity(LanguageModel& model, const Tensor& tokens, int64_t batch, int64_t bptt);

// Scales every gradient by max_norm / ‖g‖ when the global L2 norm ‖g‖ of all gradients exceeds
// max_norm (> 0). Returns ‖g‖ before clipping.
double clip_grad_norm(const ParameterList& params, double max_norm);

// ---- recipes and training --------------------------------------------------------------------

struct LmRecipe {
  std::string name, description, source;
  struct Data {
    std::string dataset = "ptb";
    std::string path = "data/ptb";
    // > 0: only the first N tokens of each part (quick runs and tests)
    int64_t train_tokens = 0, valid_tokens = 0, test_tokens = 0;
  } data;
  LmSpec model;
  struct Optimizer {
    std::string type = "sgd";
    double lr = 20, momentum = 0, weight_decay = 0;
    // constant | plateau (divide by `decay` when validation perplexity does not improve) |
    // epoch (divide by `decay` every epoch after `decay_start` epochs, Zaremba et al.)
    std::string schedule = "plateau";
    double decay = 4;
    int64_t decay_start = 0;
    double clip_grad_norm = 0.25;  // 0: no clipping
  } optimizer;
  struct Training {
    int64_t epochs = 40, batch_size = 20, bptt = 35, eval_batch_size = 10;
    uint64_t seed = 1;
  } training;

  std::string to_json() const;
};

// "language_model" when the recipe file's top level has "task": "language_model", else
// "classification" (the recipes of nn/trainer.h). Throws on unreadable or non-JSON files.
std::string recipe_task(const std::string& path);
LmRecipe parse_lm_recipe(const std::string& json_text, const std::string& source);
LmRecipe load_lm_recipe(const std::string& path);

struct LmEpochMetrics {
  int64_t epoch = 0;
  double train_loss = 0, train_perplexity = 0, valid_perplexity = 0, test_perplexity = 0;
  double lr = 0, seconds = 0;
  bool best = false;
};

struct LmProgress {
  std::function<void(const std::string&)> on_start;
  // epoch (0-based), window, windows per epoch, running loss, seconds since the epoch began
  std::function<void(int64_t, int64_t, int64_t, double, double)> on_batch;
  std::function<void(const LmEpochMetrics&, int64_t epochs)> on_epoch;
};

struct LmTrainOptions {
  std::string out_dir;
  bool resume = false;
  int64_t stop_after = 0;      // stop after this many epochs in total (0: all)
  int64_t max_windows = 0;     // > 0: only the first N training windows of each epoch (timing runs)
  std::string command_line;
};

struct LmTrainResult {
  std::vector<LmEpochMetrics> history;
  int64_t best_epoch = 0;
  double best_valid_perplexity = 0, best_test_perplexity = 0, seconds = 0;
};

LmTrainResult train_lm(const LmRecipe& recipe, const LmTrainOptions& options, const LmProgress& progress = {});

// A trained language model (best.lbm or checkpoint.lbm of a run, or the run folder).
struct TrainedLm {
  LmRecipe recipe;
  std::unique_ptr<LanguageModel> model;
  int64_t epoch = 0;
  double valid_perplexity = 0, test_perplexity = 0;
};
TrainedLm load_trained_lm(const std::string& path);
// Whether `path` (a run folder or .lbm file) holds a language model.
bool is_language_model_run(const std::string& path);

}  // namespace lowbit::nn
