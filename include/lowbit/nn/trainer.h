// The training engine behind `lowbit train`: recipes, the training loop, the best model and
// resumable checkpoints.
//
// A recipe is a JSON file holding every hyperparameter of a run (docs/training.md):
//
//   {"name": "mnist-bnn-fast",
//    "data": {"dataset": "mnist", "path": "data/mnist", "valid_size": 10000, "normalize": "[-1,1]"},
//    "model": {...the nn::build_model JSON (model.h)...},
//    "loss": "squared_hinge",
//    "optimizer": {"type": "adam", "lr_start": 3e-3, "lr_end": 3e-7, "schedule": "exponential"},
//    "training": {"epochs": 20, "batch_size": 100, "seed": 1}}
//
// Parsing is strict: an unknown or mistyped key, a wrong type or an out-of-range value is a
// lowbit::Error naming the key and the file, so that a typo never silently falls back to a
// default.
//
// An output folder holds:
//   run.json         the recipe as run (with command-line overrides applied), seed, threads
//   metrics.jsonl    one JSON object per finished epoch
//   best.lbm         parameters and buffers at the best validation epoch, recipe in metadata
//   checkpoint.lbm   the state after the last finished epoch: parameters, buffers, optimizer
//                    state, epoch, step count and the metric history
// Every file is written atomically (temporary file, then rename), so an interrupted or failed
// run leaves the previous good version in place.
//
// Determinism: the model is built from (model JSON, seed); epoch e's batch order depends only
// on (seed, e) (data::Batcher); dropout and stochastic binarization draw from per-layer
// counters (nn::Module::random_calls). A checkpoint records every layer's counter, so a resumed
// run restores them and continues exactly as an uninterrupted one would.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/data/dataset.h"
#include "lowbit/nn/module.h"

namespace lowbit::nn {

struct Recipe {
  std::string name;
  std::string source;  // where it came from, for error messages

  struct Data {
    std::string dataset = "mnist";  // "mnist" (IDX files) or "cifar10" (binary batches)
    std::string path;               // default: "data/mnist" or "data/cifar10"
    int64_t valid_size = -1;        // -1: the dataset's standard split (10000 / 5000)
    std::string normalize = "[-1,1]";  // "[-1,1]", "[0,1]" or "standardize"
    int64_t train_size = 0;         // > 0: only the first N training examples (quick runs, tests)
    int64_t test_size = 0;          // > 0: only the first N test examples
  } data;

  std::string model;  // JSON text of the "model" object
  std::string loss = "squared_hinge";

  struct Optimizer {
    std::string type = "adam";  // adam | adamax | shift_adamax | sgd
    double lr_start = 1e-3;
    double lr_end = 1e-3;
    std::string schedule = "constant";  // constant | exponential | step
    double step_factor = 0.5;           // step schedule: lr *= factor every step_every epochs
    int64_t step_every = 20;
    bool lr_pow2 = false;  // round each epoch's rate to a power of two (shift-based training)
    double beta1 = 0.9, beta2 = 0.999;
    double eps = -1;  // -1: the optimizer's default (1e-8, or 2^-27 for shift_adamax)
    double momentum = 0, weight_decay = 0;  // sgd
    bool nesterov = false;
  } optimizer;

  struct Training {
    int64_t epochs = 10;
    int64_t batch_size = 100;
    uint64_t seed = 1;
    int64_t eval_batch_size = 1000;
  } training;

  // The recipe as canonical JSON (every key, defaults filled in).
  std::string to_json() const;
};

// Parses recipe JSON text; `source` names it in errors.
Recipe parse_recipe(const std::string& json_text, const std::string& source);
// Reads and parses a recipe file.
Recipe load_recipe(const std::string& path);

// The three parts of a dataset as the recipe asks for them (normalised, split, limited).
data::DataSplits load_recipe_data(const Recipe& r);
// The normalization a recipe applies to u8 pixels (standardize: statistics of the training part).
struct InputScaling {
  bool affine = true;   // x = pixel · scale + offset for every channel
  double scale = 1.0, offset = 0.0;
};
InputScaling recipe_input_scaling(const Recipe& r);

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based in reports: the number of epochs finished
  double train_loss = 0, train_error = 0, valid_error = 0, test_error = 0;
  double lr = 0, seconds = 0;
  bool best = false;
};

// What the loop tells its caller while it runs.
struct ProgressSink {
  // Called after every batch: epoch (0-based), batch index, batches per epoch, running loss and
  // error of the epoch so far, seconds since the epoch began.
  std::function<void(int64_t epoch, int64_t batch, int64_t batches, double loss, double error, double seconds)>
      on_batch;
  std::function<void(const EpochMetrics&, int64_t epochs)> on_epoch;
  // Once, before the first epoch runs: a line describing the run (model, data sizes, resume).
  std::function<void(const std::string&)> on_start;
};

struct TrainOptions {
  std::string out_dir;
  bool resume = false;
  // Stop after this many epochs of the schedule have been run in total (0: run them all). The
  // schedule still spans recipe.training.epochs, so a stopped run resumes into the same rates.
  int64_t stop_after = 0;
  std::string command_line;  // recorded in run.json
};

struct TrainResult {
  std::vector<EpochMetrics> history;
  int64_t best_epoch = 0;  // 1-based; 0 when no epoch ran
  double best_valid_error = 0, best_test_error = 0;
  double seconds = 0;  // this invocation's wall time
};

TrainResult train(const Recipe& recipe, const TrainOptions& options, const ProgressSink& progress = {});

// Loss of a batch: "squared_hinge" or "cross_entropy".
Var compute_loss(const std::string& loss, const Var& output, const Tensor& labels);

// A trained model and the recipe it was trained with: from best.lbm or checkpoint.lbm.
struct TrainedModel {
  Recipe recipe;
  Sequential model;
  int64_t epoch = 0;  // 1-based epoch the weights are from
  double valid_error = 0, test_error = 0;
};
// `path` is a run folder (its best.lbm) or a .lbm file written by train().
TrainedModel load_trained(const std::string& path);

// Class predictions of the training graph in eval mode, in batches; images as the dataset holds
// them (reshaped to the model's input shape).
std::vector<int32_t> predict(Sequential& model, const Tensor& images, int64_t batch_size = 1000);
double error_rate(Sequential& model, const data::Dataset& d, int64_t batch_size = 1000);

}  // namespace lowbit::nn
