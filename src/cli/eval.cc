// `lowbit eval MODEL --data PATH`: runs an exported network on a dataset's test split with the
// integer runtime and reports the test error, throughput at batch 1 and at a large batch
// (median of repeated timings), and the model's size against a float32 network of the same
// shape. `--json` prints the same facts as one JSON object.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/data/cifar.h"
#include "lowbit/data/idx.h"
#include "lowbit/io/model_file.h"
#include "lowbit/runtime/network.h"

namespace lowbit::cli {
namespace {

using json = nlohmann::ordered_json;

struct EvalOptions {
  std::string model;
  std::string data;
  bool json = false;
  int64_t batch = 1000;
  int64_t limit = 0;
  std::optional<std::string> task;
};

struct TestSet {
  Tensor images;  // u8 [N, ...], one image per row
  Tensor labels;  // u8 [N]
};

// The test split of `dataset` (the model's "dataset" metadata key) under `path`. A new dataset
// reader is one more branch here.
TestSet load_test_split(const std::string& dataset, const std::string& path, int classes) {
  if (dataset.empty() || dataset == "mnist" || dataset == "fashion-mnist" || dataset == "idx") {
    data::LabelledImages s = data::load_idx_split(path, "t10k", classes);
    return {std::move(s.images), std::move(s.labels)};
  }
  if (dataset == "cifar10") {
    // u8 [N, 3, 32, 32], channel planes as in the files: the exporter records a CHW input.
    data::LabelledImages s = data::load_cifar10(path, /*train=*/false);
    return {std::move(s.images), std::move(s.labels)};
  }
  fail("dataset \"", dataset, "\" (from the model's metadata) has no reader in this build (supported: mnist and "
       "other MNIST-style IDX datasets, cifar10)");
}

std::string dims(const runtime::InputSpec& in) {
  return std::to_string(in.height) + "x" + std::to_string(in.width) + "x" + std::to_string(in.channels);
}

// Median seconds of fn() over repetitions: at least min_reps, then until min_seconds have
// passed or max_reps were run. The median resists the outliers of a shared machine.
template <typename Fn>
double median_seconds(Fn&& fn, int min_reps, int max_reps, double min_seconds) {
  using clock = std::chrono::steady_clock;
  std::vector<double> t;
  const auto start = clock::now();
  while (static_cast<int>(t.size()) < max_reps) {
    const auto a = clock::now();
    fn(static_cast<int64_t>(t.size()));
    t.push_back(std::chrono::duration<double>(clock::now() - a).count());
    if (static_cast<int>(t.size()) >= min_reps &&
        std::chrono::duration<double>(clock::now() - start).count() >= min_seconds)
      break;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

json evaluate(const EvalOptions& o) {
  LOWBIT_CHECK(o.batch >= 1, "--batch ", o.batch, " (expected >= 1)");
  LOWBIT_CHECK(o.limit >= 0, "--limit ", o.limit, " (expected >= 0; 0 means the whole test split)");
  const io::ModelFile file = io::load(o.model);
  const runtime::Network net = runtime::Network::from_model_file(file, o.model);
  const std::string dataset = runtime::metadata_string(file, "dataset");
  TestSet test = load_test_split(dataset, o.data, static_cast<int>(net.num_classes()));

  const runtime::InputSpec& in = net.input();
  int64_t n = test.images.size(0);
  const int64_t per_image = n > 0 ? test.images.numel() / n : 0;
  std::string data_dims;
  for (int64_t d = 1; d < test.images.dim(); ++d) data_dims += (d > 1 ? "x" : "") + std::to_string(test.images.size(d));
  LOWBIT_CHECK(per_image == in.features(), o.data, ": test images are ", data_dims, " (", per_image,
               " values) but the model expects ", dims(in), " (", in.features(), " values)");
  LOWBIT_CHECK(n > 0, o.data, ": the test split is empty");
  if (o.limit > 0 && o.limit < n) n = o.limit;
  Tensor images = test.images.reshape({test.images.size(0), per_image}).slice_rows(0, n);

  const std::vector<int32_t> pred = net.predict(images);
  const uint8_t* labels = test.labels.data<uint8_t>();
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += pred[static_cast<std::size_t>(i)] != labels[i];

  // Throughput. Batch 1 cycles through the images so that no single input is cached.
  const int64_t classes = net.num_classes();
  std::vector<float> out(static_cast<std::size_t>(std::min(o.batch, n) * classes));
  const uint8_t* px = images.data<uint8_t>();
  const double t1 = median_seconds(
      [&](int64_t rep) { net.logits(px + (rep % n) * per_image, 1, out.data()); }, 20, 5000, 0.3);
  const int64_t big = std::min(o.batch, n);
  const double tb = median_seconds([&](int64_t) { net.logits(px, big, out.data()); }, 3, 50, 0.5);

  json layers = json::array();
  for (const std::string& s : net.describe()) layers.push_back(s);
  const int64_t wbytes = net.weight_bytes(), fbytes = net.float_bytes();
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(o.model));
  return {
      {"model", o.model},
      {"dataset", dataset.empty() ? "idx" : dataset},
      {"examples", n},
      {"errors", wrong},
      {"error", static_cast<double>(wrong) / static_cast<double>(n)},
      {"batch", big},
      {"images_per_second", static_cast<double>(big) / tb},
      {"images_per_second_batch1", 1.0 / t1},
      {"threads", num_threads()},
      {"model_bytes", file_bytes},
      {"weight_bytes", wbytes},
      {"float_bytes", fbytes},
      // The whole model file (header and metadata included) against the float32 weights.
      {"float_ratio", static_cast<double>(fbytes) / static_cast<double>(std::max<int64_t>(file_bytes, 1))},
      {"input", dims(in)},
      {"layers", layers},
  };
}

void print_text(const json& j) {
  std::printf("model        %s (%s input, %zu layers)\n", j["model"].get<std::string>().c_str(),
              j["input"].get<std::string>().c_str(), j["layers"].size());
  for (const auto& l : j["layers"]) std::printf("               %s\n", l.get<std::string>().c_str());
  std::printf("test error   %.2f%% (%lld of %lld examples, dataset %s)\n", 100.0 * j["error"].get<double>(),
              static_cast<long long>(j["errors"].get<int64_t>()), static_cast<long long>(j["examples"].get<int64_t>()),
              j["dataset"].get<std::string>().c_str());
  std::printf("throughput   %.0f images/s at batch %lld, %.0f images/s at batch 1 (%d threads, medians)\n",
              j["images_per_second"].get<double>(), static_cast<long long>(j["batch"].get<int64_t>()),
              j["images_per_second_batch1"].get<double>(), j["threads"].get<int>());
  std::printf("size         file %lld bytes (weights %lld); float32 weights %lld bytes: file %.1fx smaller\n",
              static_cast<long long>(j["model_bytes"].get<int64_t>()),
              static_cast<long long>(j["weight_bytes"].get<int64_t>()),
              static_cast<long long>(j["float_bytes"].get<int64_t>()), j["float_ratio"].get<double>());
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto opts = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Run an exported model on a dataset's test split: error, throughput and size (lstm_lm: perplexity on PTB)");
  cmd->add_option("model", opts->model, "Model file written by the exporter")->required();
  cmd->add_option("--data", opts->data, "Dataset folder (MNIST-style IDX files: t10k-images/labels; PTB folder for lstm_lm models)")->required();
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of text");
  cmd->add_option("--batch", opts->batch, "Batch size of the large-batch timing (default 1000)");
  cmd->add_option("--limit", opts->limit, "Use only the first N test examples (default: all)");
  cmd->add_option("--task", opts->task, "bAbI models: task 1..20 or joint (default: the model's own)");
  cmd->callback([opts] {
    if (eval_lm_if_lstm(opts->model, opts->data, opts->json, opts->limit)) return;  // lstm_lm: perplexity
    if (is_memn2n_model_file(opts->model)) {
      run_memn2n_eval(opts->model, opts->data, opts->task, opts->limit, opts->json);
      return;
    }
    LOWBIT_CHECK(!opts->task, "--task applies to bAbI (MemN2N) models only");
    const json j = evaluate(*opts);
    if (opts->json) std::cout << j.dump(2) << '\n';
    else print_text(j);
  });
}

}  // namespace lowbit::cli
