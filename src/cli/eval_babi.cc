// MemN2N (bAbI) parts of `lowbit export`, `lowbit eval` and the `lowbit explain` command.
//
//   lowbit export RUN --out MODEL [--compare --data DIR] [--json]
//       integer model file of a quantized MemN2N run; --compare runs the test questions of the
//       run's task through the training graph and the integer runtime and reports agreement
//   lowbit eval MODEL --data DIR [--task N] [--json]
//       test error of the integer runtime on task N (default: the task it was trained on)
//   lowbit explain MODEL --data DIR [--task N] --question Q [--png FILE]
//       the story of test question Q (0-based) with each hop's attention as text bars, the
//       question, and the predicted and true answers; --png writes the attention heatmap
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
#include "lowbit/data/babi.h"
#include "lowbit/io/model_file.h"
#include "lowbit/io/png.h"
#include "lowbit/nn/memn2n.h"
#include "lowbit/runtime/memn2n.h"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
namespace mm = nn::memn2n;

struct TaskData {
  std::vector<data::BabiExample> raw;
  std::vector<mm::Example> encoded;
};

// Test questions of `task` ("1".."20" or "joint") from a bAbI root (en-10k/ with en/ as fallback)
// or a task folder.
TaskData load_test(const std::string& path, const std::string& task, std::span<const std::string> vocab,
                   int64_t memory) {
  fs::path p(path);
  std::string dir = path, fallback;
  if (fs::is_directory(p / "en-10k")) {
    dir = (p / "en-10k").string();
    fallback = (p / "en").string();
  }
  TaskData t;
  if (task == "joint") {
    t.raw = data::load_babi_joint(dir, data::BabiSplit::test, static_cast<int>(memory), fallback);
  } else {
    char* end = nullptr;
    const long n = std::strtol(task.c_str(), &end, 10);
    LOWBIT_CHECK(end != task.c_str() && *end == '\0' && n >= 1 && n <= data::kBabiTasks, "--task \"", task,
                 "\" (expected 1..20 or joint)");
    t.raw = data::load_babi_task(dir, static_cast<int>(n), data::BabiSplit::test, static_cast<int>(memory), fallback);
  }
  t.encoded = mm::encode(t.raw, vocab, memory);
  return t;
}

std::string meta_task(const io::ModelFile& f) {
  const json m = json::parse(f.metadata, nullptr, false);
  if (m.is_object() && m.contains("task")) {
    if (m["task"].is_string()) return m["task"].get<std::string>();
    if (m["task"].is_number()) return std::to_string(m["task"].get<int>());
  }
  return "";
}

bool file_is_memn2n_model(const io::ModelFile& f) {
  const json m = json::parse(f.metadata, nullptr, false);
  return m.is_object() && m.contains("model") && m["model"].is_object() && m["model"].value("kind", "") == "memn2n";
}

}  // namespace

bool is_memn2n_model_file(const std::string& path) {
  if (!fs::is_regular_file(path)) return false;
  try {
    return file_is_memn2n_model(io::load(path));
  } catch (const Error&) {
    return false;
  }
}

bool is_memn2n_run(const std::string& path) {
  std::string p = path;
  if (fs::is_directory(p)) p = (fs::path(p) / "best.lbm").string();
  if (!fs::is_regular_file(p)) return false;
  try {
    return mm::is_memn2n_file(io::load(p));
  } catch (const Error&) {
    return false;
  }
}

void run_memn2n_export(const std::string& run, const std::string& out, const std::optional<std::string>& data,
                       bool compare, bool as_json) {
  const mm::Trained t = mm::load_trained(run);
  const io::ModelFile f = runtime::export_memn2n(t.model, t.vocab, t.metadata);
  io::save(out, f);
  const runtime::Memn2nRuntime rt = runtime::Memn2nRuntime::from_model_file(io::load(out), out);
  int64_t tensor_bytes = 0;
  for (const auto& [name, a] : f.tensors) tensor_bytes += static_cast<int64_t>(a.nbytes());
  int64_t float_bytes = 0;
  for (const mm::Matrix& m : t.model.matrices()) float_bytes += static_cast<int64_t>(m.w.size() * sizeof(float));
  json report = {{"model", out},
                 {"source", run},
                 {"runtime", rt.describe()},
                 {"model_bytes", static_cast<int64_t>(fs::file_size(out))},
                 {"weight_bytes", tensor_bytes},
                 {"float_bytes", float_bytes}};
  if (compare) {
    LOWBIT_CHECK(data.has_value(), "export --compare: give the bAbI folder with --data");
    const std::string task = meta_task(f);
    const TaskData td = load_test(*data, task.empty() ? "1" : task, t.vocab, t.model.config().memory_size);
    const mm::EvalResult g = mm::evaluate(t.model, td.encoded);
    int64_t agree = 0, wrong = 0;
    for (size_t i = 0; i < td.encoded.size(); ++i) {
      const int32_t p = rt.predict(td.encoded[i]);
      agree += p == g.predictions[i];
      wrong += p != td.encoded[i].answer;
    }
    const double n = static_cast<double>(std::max<size_t>(1, td.encoded.size()));
    report["compare"] = {{"task", task},
                         {"questions", td.encoded.size()},
                         {"agreement", static_cast<double>(agree) / n},
                         {"graph_error", g.error},
                         {"runtime_error", static_cast<double>(wrong) / n}};
  }
  if (as_json) {
    std::cout << report.dump(2) << '\n';
    return;
  }
  std::printf("exported %s to %s\n  %s\n  file %lld bytes (tensors %lld); float32 weights %lld bytes\n", run.c_str(),
              out.c_str(), rt.describe().c_str(), static_cast<long long>(report["model_bytes"].get<int64_t>()),
              static_cast<long long>(tensor_bytes), static_cast<long long>(float_bytes));
  if (compare) {
    const json& c = report["compare"];
    std::printf("  test questions %lld: agreement %.2f%%, training graph error %.2f%%, runtime error %.2f%%\n",
                static_cast<long long>(c["questions"].get<int64_t>()), 100 * c["agreement"].get<double>(),
                100 * c["graph_error"].get<double>(), 100 * c["runtime_error"].get<double>());
  }
}

void run_memn2n_eval(const std::string& model, const std::string& data, const std::optional<std::string>& task_opt,
                     int64_t limit, bool as_json) {
  const io::ModelFile f = io::load(model);
  const runtime::Memn2nRuntime rt = runtime::Memn2nRuntime::from_model_file(f, model);
  std::string task = task_opt.value_or(meta_task(f));
  LOWBIT_CHECK(!task.empty(), model, ": the model does not record its task; give --task N");
  TaskData td = load_test(data, task, rt.vocab(), rt.memory_size());
  int64_t n = static_cast<int64_t>(td.encoded.size());
  LOWBIT_CHECK(n > 0, data, ": no test questions for task ", task);
  if (limit > 0 && limit < n) n = limit;
  int64_t wrong = 0;
  std::vector<int64_t> task_q(data::kBabiTasks + 1, 0), task_wrong(data::kBabiTasks + 1, 0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; ++i) {
    const bool bad = rt.predict(td.encoded[static_cast<size_t>(i)]) != td.encoded[static_cast<size_t>(i)].answer;
    wrong += bad;
    const int t = std::clamp(td.raw[static_cast<size_t>(i)].task, 0, data::kBabiTasks);
    ++task_q[static_cast<size_t>(t)];
    task_wrong[static_cast<size_t>(t)] += bad;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json per_task = json::object();
  for (int t = 1; t <= data::kBabiTasks; ++t)
    if (task_q[static_cast<size_t>(t)] > 0)
      per_task[std::to_string(t)] = {{"questions", task_q[static_cast<size_t>(t)]},
                                     {"error", static_cast<double>(task_wrong[static_cast<size_t>(t)]) /
                                                   static_cast<double>(task_q[static_cast<size_t>(t)])}};
  json j = {{"model", model},
                  {"dataset", "babi"},
                  {"task", task},
                  {"questions", n},
                  {"errors", wrong},
                  {"error", static_cast<double>(wrong) / static_cast<double>(n)},
                  {"questions_per_second", static_cast<double>(n) / std::max(secs, 1e-9)},
                  {"runtime", rt.describe()},
                  {"model_bytes", static_cast<int64_t>(fs::file_size(model))}};
  j["per_task"] = per_task;
  if (as_json) {
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::printf("model        %s\n               %s\n", model.c_str(), rt.describe().c_str());
  std::printf("test error   %.2f%% (%lld of %lld questions, bAbI task %s)\n", 100 * j["error"].get<double>(),
              static_cast<long long>(wrong), static_cast<long long>(n), task.c_str());
  if (per_task.size() > 1)
    for (const auto& [t, e] : per_task.items())
      std::printf("  task %-2s    %.2f%% of %lld\n", t.c_str(), 100 * e["error"].get<double>(),
                  static_cast<long long>(e["questions"].get<int64_t>()));
  std::printf("throughput   %.0f questions/s (one at a time, one thread)\n", j["questions_per_second"].get<double>());
}

namespace {

struct ExplainOptions {
  std::string model, data, png;
  std::optional<std::string> task;
  int64_t question = 0;
};

std::string join(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

void explain(const ExplainOptions& o) {
  const io::ModelFile f = io::load(o.model);
  const runtime::Memn2nRuntime rt = runtime::Memn2nRuntime::from_model_file(f, o.model);
  const std::string task = o.task.value_or(meta_task(f));
  LOWBIT_CHECK(!task.empty(), o.model, ": the model does not record its task; give --task N");
  const TaskData td = load_test(o.data, task, rt.vocab(), rt.memory_size());
  LOWBIT_CHECK(o.question >= 0 && o.question < static_cast<int64_t>(td.encoded.size()), "--question ", o.question,
               " (task ", task, " has test questions 0..", td.encoded.size() - 1, ")");
  const auto q = static_cast<size_t>(o.question);
  std::vector<std::vector<float>> att;
  const int32_t pred = rt.predict(td.encoded[q], &att);
  const data::BabiExample& ex = td.raw[q];
  const auto mem = ex.memory();
  const int64_t first = std::max<int64_t>(0, static_cast<int64_t>(mem.size()) - rt.memory_size());
  const int hops = static_cast<int>(att.size());
  std::printf("task %s, test question %lld (line %d)\n\n", task.c_str(), static_cast<long long>(o.question), ex.line);
  for (int k = 0; k < hops; ++k) std::printf("hop %d        ", k + 1);
  std::printf(" sentence\n");
  for (int64_t i = first; i < static_cast<int64_t>(mem.size()); ++i) {
    for (int k = 0; k < hops; ++k) {
      const float a = att[static_cast<size_t>(k)][static_cast<size_t>(i - first)];
      const int bars = static_cast<int>(std::lround(a * 8));
      std::printf("%-8s %3d ", std::string(static_cast<size_t>(bars), '#').c_str(), static_cast<int>(std::lround(a * 100)));
    }
    std::printf(" %2lld: %s\n", static_cast<long long>(i + 1), join(mem[static_cast<size_t>(i)]).c_str());
  }
  const std::string predicted = rt.vocab()[static_cast<size_t>(pred)];
  std::printf("\nquestion   %s?\npredicted  %s\ntrue       %s  (%s)\n", join(ex.question).c_str(), predicted.c_str(),
              ex.answer_token().c_str(), predicted == ex.answer_token() ? "right" : "wrong");
  if (!o.png.empty()) {
    // Heatmap: one row per sentence, one column block per hop; white = 0, black = 1.
    const int cell_w = 24, cell_h = 12;
    const int rows = static_cast<int>(mem.size() - static_cast<size_t>(first));
    const int W = cell_w * hops, H = cell_h * rows;
    std::vector<uint8_t> gray(static_cast<size_t>(W) * static_cast<size_t>(H));
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < hops; ++k) {
        const float a = std::clamp(att[static_cast<size_t>(k)][static_cast<size_t>(r)], 0.0f, 1.0f);
        const auto v = static_cast<uint8_t>(std::lround(255.0f * (1.0f - a)));
        for (int y = 0; y < cell_h; ++y)
          for (int x = 0; x < cell_w; ++x)
            gray[static_cast<size_t>((r * cell_h + y) * W + k * cell_w + x)] = (x == 0 || y == 0) ? 200 : v;
      }
    io::write_png_gray(o.png, W, H, gray);
    std::printf("heatmap    %s (%dx%d: columns = hops, rows = sentences, dark = attended)\n", o.png.c_str(), W, H);
  }
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  CLI::App* cmd = app.add_subcommand("explain", "Show a MemN2N model's attention over a bAbI story, hop by hop");
  cmd->add_option("model", o->model, "MemN2N model file written by 'lowbit export'")->required();
  cmd->add_option("--data", o->data, "bAbI folder (a root with en-10k/ and en/, or a task folder)")->required();
  cmd->add_option("--task", o->task, "Task 1..20 or joint (default: the task the model was trained on)");
  cmd->add_option("--question", o->question, "Test question index, from 0")->required();
  cmd->add_option("--png", o->png, "Also write the attention heatmap as a PNG file");
  cmd->callback([o] { explain(*o); });
}

}  // namespace lowbit::cli
