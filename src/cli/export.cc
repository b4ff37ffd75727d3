// `lowbit export RUN --out MODEL`: compiles the best model of a training run (RUN/best.lbm, or a
// .lbm file written by `lowbit train`) into the integer runtime network and writes it as a model
// file that `lowbit eval` runs.
//
// `--compare` then runs the test split through both the training graph (float32, eval mode)
// and the exported runtime network in this process, and reports how often they agree, the
// error of each, and their speed at the same batch size and thread count: the fair way to
// compare them on a shared machine, where timings from separate runs differ by more than the
// effect being measured.
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
#include "cli/export_lm.h"
#include "lowbit/autograd/var.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/data/cifar.h"
#include "lowbit/data/dataset.h"
#include "lowbit/data/idx.h"
#include "lowbit/nn/lm.h"
#include "lowbit/nn/trainer.h"
#include "lowbit/runtime/export.h"

namespace lowbit::cli {
namespace {

using json = nlohmann::ordered_json;

struct ExportOptions {
  std::string run, out;
  std::optional<std::string> data;
  bool compare = false;
  bool json = false;
  int64_t batch = 1000;
};

runtime::InputSpec input_for(const nn::Recipe& r) {
  const nn::InputScaling s = nn::recipe_input_scaling(r);
  LOWBIT_CHECK(s.affine, "export: data.normalize \"", r.data.normalize, "\" (recipe ", r.source,
               ") cannot be folded into the first layer; the runtime takes one scale and offset for every pixel "
               "(train with \"[-1,1]\" or \"[0,1]\")");
  runtime::InputSpec in;
  if (r.data.dataset == "cifar10") {
    in.height = in.width = data::kCifarSide;
    in.channels = data::kCifarChannels;
    in.layout = runtime::InputLayout::chw;  // the CIFAR-10 files' planes, as the training graph saw them
  } else {
    in.height = in.width = 28;
    in.channels = 1;
  }
  in.scale = s.scale;
  in.offset = s.offset;
  return in;
}

template <typename Fn>
double median_seconds(Fn&& fn, int min_reps, double min_seconds) {
  using clock = std::chrono::steady_clock;
  std::vector<double> t;
  const auto start = clock::now();
  while (true) {
    const auto a = clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(clock::now() - a).count());
    if (static_cast<int>(t.size()) >= min_reps &&
        std::chrono::duration<double>(clock::now() - start).count() >= min_seconds)
      break;
    if (t.size() >= 50) break;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

json compare(nn::TrainedModel& tm, const runtime::Network& net, const std::string& path, int64_t batch) {
  const nn::Recipe& r = tm.recipe;
  const data::LabelledImages raw =
      r.data.dataset == "cifar10" ? data::load_cifar10(path, false) : data::load_idx_split(path, "t10k", 10);
  const data::Normalization norm = r.data.normalize == "[0,1]" ? data::Normalization::scale_to(0.0f, 1.0f)
                                                                : data::Normalization::scale_to(-1.0f, 1.0f);
  const data::Dataset test = data::make_dataset(raw, norm, 10);
  const int64_t n = test.size();
  LOWBIT_CHECK(n > 0, path, ": the test split is empty");
  const int64_t feats = raw.images.numel() / n;
  const Tensor u8 = raw.images.reshape({n, feats});

  const std::vector<int32_t> graph = nn::predict(tm.model, test.images, batch);
  const std::vector<int32_t> rt = net.predict(u8);
  int64_t agree = 0, graph_wrong = 0, rt_wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    agree += graph[k] == rt[k];
    graph_wrong += graph[k] != test.label(i);
    rt_wrong += rt[k] != test.label(i);
  }

  // Same batch, same threads, same process; medians against the machine's noise.
  const int64_t b = std::min(batch, n);
  const Tensor fx = test.images.slice_rows(0, b).clone();
  const double t_float = median_seconds([&] { (void)nn::predict(tm.model, fx, b); }, 3, 1.0);
  std::vector<float> out(static_cast<std::size_t>(b * net.num_classes()));
  const double t_rt = median_seconds([&] { net.logits(u8.data<uint8_t>(), b, out.data()); }, 3, 1.0);
  return {{"examples", n},
          {"agreement", static_cast<double>(agree) / static_cast<double>(n)},
          {"disagreements", n - agree},
          {"graph_error", static_cast<double>(graph_wrong) / static_cast<double>(n)},
          {"runtime_error", static_cast<double>(rt_wrong) / static_cast<double>(n)},
          {"batch", b},
          {"threads", num_threads()},
          {"float_images_per_second", static_cast<double>(b) / t_float},
          {"runtime_images_per_second", static_cast<double>(b) / t_rt},
          {"speedup", t_float / t_rt}};
}

void run(const ExportOptions& o) {
  if (is_memn2n_run(o.run)) {
    run_memn2n_export(o.run, o.out, o.data, o.compare, o.json);
    return;
  }
  if (nn::is_language_model_run(o.run)) {
    LOWBIT_CHECK(!o.compare, "export: --compare applies to classifiers; a language model is written as a float lstm_lm file");
    export_language_model(o.run, o.out, o.json);
    return;
  }
  nn::TrainedModel tm = nn::load_trained(o.run);
  if (o.data) tm.recipe.data.path = *o.data;
  const runtime::InputSpec in = input_for(tm.recipe);
  const runtime::Network net = runtime::export_network(tm.model, in);
  const json meta = {{"dataset", tm.recipe.data.dataset},
                     {"recipe", tm.recipe.name},
                     {"training",
                      {{"epoch", tm.epoch},
                       {"valid_error", tm.valid_error},
                       {"test_error", tm.test_error},
                       {"seed", tm.recipe.training.seed},
                       {"recipe", json::parse(tm.recipe.to_json())}}}};
  net.save(o.out, meta.dump());

  json report = {{"model", o.out},
                 {"source", o.run},
                 {"epoch", tm.epoch},
                 {"graph_test_error_at_training", tm.test_error},
                 {"model_bytes", static_cast<int64_t>(std::filesystem::file_size(o.out))},
                 {"weight_bytes", net.weight_bytes()},
                 {"float_bytes", net.float_bytes()},
                 {"layers", net.describe()}};
  if (o.compare) report["compare"] = compare(tm, net, tm.recipe.data.path, o.batch);
  if (o.json) {
    std::cout << report.dump(2) << '\n';
    return;
  }
  std::printf("exported %s (epoch %lld of %s, test error %.2f%% in training) to %s\n", o.run.c_str(),
              static_cast<long long>(tm.epoch), tm.recipe.name.c_str(), 100.0 * tm.test_error, o.out.c_str());
  for (const auto& l : net.describe()) std::printf("  %s\n", l.c_str());
  std::printf("size: file %lld bytes (weights %lld); float32 weights %lld bytes: file %.1fx smaller\n",
              static_cast<long long>(report["model_bytes"].get<int64_t>()), static_cast<long long>(net.weight_bytes()),
              static_cast<long long>(net.float_bytes()),
              static_cast<double>(net.float_bytes()) /
                  static_cast<double>(std::max<int64_t>(1, report["model_bytes"].get<int64_t>())));
  if (o.compare) {
    const json& c = report["compare"];
    std::printf("agreement with the training graph: %.2f%% of %lld test images (%lld differ)\n",
                100.0 * c["agreement"].get<double>(), static_cast<long long>(c["examples"].get<int64_t>()),
                static_cast<long long>(c["disagreements"].get<int64_t>()));
    std::printf("test error: runtime %.2f%%, float graph %.2f%%\n", 100.0 * c["runtime_error"].get<double>(),
                100.0 * c["graph_error"].get<double>());
    std::printf("speed at batch %lld, %d threads: runtime %.0f images/s, float graph %.0f images/s (%.1fx)\n",
                static_cast<long long>(c["batch"].get<int64_t>()), c["threads"].get<int>(),
                c["runtime_images_per_second"].get<double>(), c["float_images_per_second"].get<double>(),
                c["speedup"].get<double>());
  }
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd =
      app.add_subcommand("export", "Compile a trained model (a 'lowbit train' folder) into an integer runtime model file");
  cmd->add_option("run", o->run, "Training output folder (its best.lbm) or a .lbm file written by 'lowbit train'")
      ->required();
  cmd->add_option("--out", o->out, "Model file to write (for 'lowbit eval')")->required();
  cmd->add_flag("--compare", o->compare,
                "Run the test split through the training graph and the runtime: agreement, errors and speed");
  cmd->add_option("--data", o->data, "Dataset folder for --compare (default: the recipe's data.path)");
  cmd->add_option("--batch", o->batch, "Batch size of the --compare timing (default 1000)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of text");
  cmd->callback([o] { run(*o); });
}

}  // namespace lowbit::cli
