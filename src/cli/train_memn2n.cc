// `lowbit train --recipe R --out DIR` for MemN2N recipes ("kind": "memn2n"): trains one task, a
// list of tasks (--task 1,2,16-20), every task separately (--task all) or all tasks jointly
// (--task joint), --runs times each with seeds seed, seed + 1, ... Writes per run metrics.jsonl,
// run.json and best.lbm (the weights of the epoch with the best validation error), and
// DIR/results.json with the test error of every run, their mean and, per task, the test error of
// the run with the lowest validation error.
//
// Layout: a single task and run writes into DIR itself; otherwise DIR/task-NN/run-R (task-joint
// for joint training).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/error.h"
#include "lowbit/data/babi.h"
#include "lowbit/io/model_file.h"
#include "lowbit/nn/memn2n.h"

namespace lowbit::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
namespace mm = nn::memn2n;

struct DataDirs {
  std::string dir, fallback;
};

// A bAbI root (holding en-10k/ and en/) means its 10k set with the 1k set as fallback; any
// other folder is the task folder itself, with a sibling en/ as fallback when there is one.
DataDirs resolve_data(const std::string& path, const std::string& recipe_fallback) {
  const fs::path p(path);
  if (fs::is_directory(p / "en-10k")) return {(p / "en-10k").string(), (p / "en").string()};
  DataDirs d{path, recipe_fallback};
  if (d.fallback.empty() && fs::is_directory(p.parent_path() / "en") && fs::path(p).filename() != "en")
    d.fallback = (p.parent_path() / "en").string();
  return d;
}

void write_text(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    LOWBIT_CHECK(f.good(), tmp.string(), ": cannot write");
    f << text;
    f.flush();
    LOWBIT_CHECK(f.good(), tmp.string(), ": write failed");
  }
  fs::rename(tmp, path);
}

std::vector<std::string> vocab_words(const data::BabiVocabulary& v) {
  std::vector<std::string> w;
  for (int32_t i = 0; i < v.size(); ++i) w.push_back(v.word(i));
  return w;
}

// A recipe as --resume compares it: without what may differ between invocations that train the
// same runs (the data folders, the task list, the number of runs, the first seed).
json comparable(json recipe) {
  if (recipe.contains("data")) {
    recipe["data"].erase("path");
    recipe["data"].erase("fallback_path");
    recipe["data"].erase("task");
  }
  if (recipe.contains("training")) {
    recipe["training"].erase("runs");
    recipe["training"].erase("seed");  // each run's own seed is compared separately
  }
  return recipe;
}

}  // namespace

void run_memn2n_train(const Memn2nTrainArgs& a) {
  mm::Recipe r = mm::load_recipe(a.recipe);
  std::string cmd = "lowbit train --recipe " + a.recipe + " --out " + a.out;
  std::string data = r.data_path;
  if (a.data) {
    data = *a.data;
    cmd += " --data " + *a.data;
  } else if (const char* env = std::getenv("LOWBIT_BABI_DATA"); env != nullptr && *env != '\0') {
    data = env;
  }
  LOWBIT_CHECK(!data.empty(), a.recipe, ": no data folder (give --data DIR, LOWBIT_BABI_DATA or data.path)");
  if (a.epochs) {
    LOWBIT_CHECK(*a.epochs >= 1, "--epochs ", *a.epochs, " (expected >= 1)");
    r.training.epochs = *a.epochs;
    cmd += " --epochs " + std::to_string(*a.epochs);
  }
  if (a.seed) {
    r.training.seed = *a.seed;
    cmd += " --seed " + std::to_string(*a.seed);
  }
  if (a.task) {
    r.task = *a.task;
    cmd += " --task " + *a.task;
  }
  if (a.runs) {
    LOWBIT_CHECK(*a.runs >= 1, "--runs ", *a.runs, " (expected >= 1)");
    r.runs = *a.runs;
    cmd += " --runs " + std::to_string(*a.runs);
  }
  if (a.resume) cmd += " --resume";
  if (a.int_bits) {
    LOWBIT_CHECK(r.model.quantized, "--int-bits: the recipe ", a.recipe, " is not quantized");
    if (r.model.act_bits > 1) r.model.act_int_bits = *a.int_bits;
    if (r.model.weight_bits > 1) r.model.weight_int_bits = *a.int_bits;
    r.model.validate();
    cmd += " --int-bits " + std::to_string(*a.int_bits);
  }
  const DataDirs dirs = resolve_data(data, r.fallback_path);
  r.data_path = dirs.dir;
  r.fallback_path = dirs.fallback;

  std::vector<int> tasks;
  const bool joint = r.task == "joint";
  if (r.task == "all") {
    for (int t = 1; t <= data::kBabiTasks; ++t) tasks.push_back(t);
  } else if (joint) {
    tasks.push_back(0);
  } else {
    // A task number or a comma-separated list of numbers and ranges: 3, 1,2,5, 16-20.
    const std::string& spec = r.task;
    size_t pos = 0;
    while (pos <= spec.size()) {
      const size_t comma = std::min(spec.find(',', pos), spec.size());
      const std::string item = spec.substr(pos, comma - pos);
      const size_t dash = item.find('-');
      auto number = [&](const std::string& text) {
        char* end = nullptr;
        const long t = std::strtol(text.c_str(), &end, 10);
        LOWBIT_CHECK(!text.empty() && end != text.c_str() && *end == '\0' && t >= 1 && t <= data::kBabiTasks,
                     "--task \"", spec, "\" (expected 1..20, a list such as 1,2,5 or 16-20, all or joint)");
        return static_cast<int>(t);
      };
      const int lo = number(dash == std::string::npos ? item : item.substr(0, dash));
      const int hi = dash == std::string::npos ? lo : number(item.substr(dash + 1));
      LOWBIT_CHECK(lo <= hi, "--task \"", spec, "\": range ", lo, "-", hi, " is empty");
      for (int t = lo; t <= hi; ++t) {
        LOWBIT_CHECK(std::find(tasks.begin(), tasks.end(), t) == tasks.end(), "--task \"", spec, "\" names task ", t,
                     " twice");
        tasks.push_back(t);
      }
      pos = comma + 1;
    }
  }
  const bool nested = tasks.size() > 1 || r.runs > 1 || joint;
  fs::create_directories(a.out);
  std::printf("memn2n recipe %s: task %s, %d run(s), %lld epochs, data %s\n", a.recipe.c_str(), r.task.c_str(), r.runs,
              static_cast<long long>(r.training.epochs), r.data_path.c_str());
  std::fflush(stdout);

  json results = {{"recipe", json::parse(mm::recipe_json(r))}, {"command", cmd}, {"tasks", json::array()}};
  double sum_mean = 0, sum_best = 0;
  for (int task : tasks) {
    const int64_t mem = r.model.memory_size;
    std::vector<data::BabiExample> all, test;
    if (joint) {
      all = data::load_babi_joint(r.data_path, data::BabiSplit::train, static_cast<int>(mem), r.fallback_path);
      test = data::load_babi_joint(r.data_path, data::BabiSplit::test, static_cast<int>(mem), r.fallback_path);
    } else {
      all = data::load_babi_task(r.data_path, task, data::BabiSplit::train, static_cast<int>(mem), r.fallback_path);
      test = data::load_babi_task(r.data_path, task, data::BabiSplit::test, static_cast<int>(mem), r.fallback_path);
    }
    const data::BabiTrainValid split = data::split_babi_validation(all, r.valid_fraction);
    const data::BabiVocabulary vocab = data::BabiVocabulary::build(all);
    const auto tr = mm::encode(split.train, vocab, mem), va = mm::encode(split.valid, vocab, mem),
               te = mm::encode(test, vocab, mem);
    const std::string tname = joint ? "joint" : std::to_string(task);
    json tj = {{"task", tname}, {"train", tr.size()}, {"valid", va.size()}, {"test", te.size()},
               {"vocabulary", vocab.size()}, {"runs", json::array()}};
    // The "best" run is the one with the lowest validation error (ties: the earlier run); its test
    // error is reported, so choosing it never looks at the test set.
    double sum = 0, best = 1, best_valid = 2, secs = 0;
    int best_run = 0;
    for (int run = 1; run <= r.runs; ++run) {
      mm::TrainConfig tc = r.training;
      tc.seed = r.training.seed + static_cast<uint64_t>(run - 1);
      char sub[64];
      if (joint) std::snprintf(sub, sizeof sub, "task-joint/run-%d", run);
      else std::snprintf(sub, sizeof sub, "task-%02d/run-%d", task, run);
      const fs::path dir = nested ? fs::path(a.out) / sub : fs::path(a.out);
      if (a.resume && fs::exists(dir / "run.json") && fs::exists(dir / "best.lbm")) {
        // A finished run: keep it, after checking that it is this recipe's run with this seed.
        json done;
        try {
          std::ifstream f(dir / "run.json");
          done = json::parse(f);
        } catch (const std::exception& e) {
          throw Error((dir / "run.json").string() + ": unreadable (" + e.what() + "); delete the folder to retrain it");
        }
        LOWBIT_CHECK(done.contains("recipe") && comparable(done["recipe"]) == comparable(json::parse(mm::recipe_json(r))) &&
                         done.value("seed", uint64_t{0}) == tc.seed,
                     (dir / "run.json").string(),
                     ": written by a different recipe or seed; --resume keeps only runs of the same configuration");
        const double te = done.at("test_error").get<double>(), ve = done.at("valid_error").get<double>();
        std::printf("task %s run %d: kept from %s (valid %.2f%%, test %.2f%%)\n", tname.c_str(), run,
                    dir.string().c_str(), 100 * ve, 100 * te);
        std::fflush(stdout);
        tj["runs"].push_back({{"run", run}, {"test_error", te}, {"valid_error", ve},
                              {"best_epoch", done.at("best_epoch")}, {"seconds", done.at("seconds")}});
        sum += te;
        if (ve < best_valid) {
          best_valid = ve;
          best = te;
          best_run = run;
        }
        secs += done.at("seconds").get<double>();
        continue;
      }
      fs::create_directories(dir);
      std::ofstream metrics(dir / "metrics.jsonl", std::ios::trunc);
      const mm::TrainOutcome o = mm::train(r.model, tc, vocab.size(), tr, va, te, [&](const mm::EpochReport& e) {
        const json line = {{"epoch", e.epoch},         {"lr", e.lr},           {"train_loss", e.train_loss},
                           {"train_error", e.train_error}, {"valid_loss", e.valid_loss},
                           {"valid_error", e.valid_error}, {"test_error", e.test_error},
                           {"seconds", e.seconds},     {"best", e.best}};
        metrics << line.dump() << '\n';
        metrics.flush();
        if (a.verbose)
          std::printf("task %s run %d epoch %lld  loss %.4f  train %.2f%%  valid %.2f%%  test %.2f%%  %.1fs%s\n",
                      tname.c_str(), run, static_cast<long long>(e.epoch), e.train_loss, 100 * e.train_error,
                      100 * e.valid_error, 100 * e.test_error, e.seconds, e.best ? "  (best)" : "");
      });
      json extra = {{"task", tname},
                          {"run", run},
                          {"seed", tc.seed},
                          {"best_epoch", o.best_epoch},
                          {"valid_error", o.best_valid_error},
                          {"test_error", o.best_test_error},
                          {"dataset", "babi"}};
      {
        double mem_sum = 0, word_sum = 0, q_sum = 0;
        for (const mm::Example& x : tr) {
          mem_sum += static_cast<double>(x.sentences());
          word_sum += static_cast<double>(x.words.size());
          q_sum += static_cast<double>(x.query.size());
        }
        extra["mean_memories"] = mem_sum / static_cast<double>(tr.size());
        extra["mean_words"] = word_sum / std::max(1.0, mem_sum);
        extra["mean_query_words"] = q_sum / static_cast<double>(tr.size());
      }
      io::save((dir / "best.lbm").string(), mm::to_model_file(o.best, vocab_words(vocab), extra.dump()));
      json run_json = extra;
      run_json["command"] = cmd;
      run_json["epochs_run"] = o.epochs_run;
      run_json["final_test_error"] = o.final_test_error;
      run_json["seconds"] = o.seconds;
      run_json["recipe"] = json::parse(mm::recipe_json(r));
      write_text(dir / "run.json", run_json.dump(2) + "\n");
      std::printf("task %s run %d: best epoch %lld of %lld, valid %.2f%%, test %.2f%% (%.1f s)\n", tname.c_str(), run,
                  static_cast<long long>(o.best_epoch), static_cast<long long>(o.epochs_run), 100 * o.best_valid_error,
                  100 * o.best_test_error, o.seconds);
      std::fflush(stdout);
      tj["runs"].push_back({{"run", run}, {"test_error", o.best_test_error}, {"valid_error", o.best_valid_error},
                            {"best_epoch", o.best_epoch}, {"seconds", o.seconds}});
      sum += o.best_test_error;
      if (o.best_valid_error < best_valid) {
        best_valid = o.best_valid_error;
        best = o.best_test_error;
        best_run = run;
      }
      secs += o.seconds;
    }
    tj["mean_test_error"] = sum / r.runs;
    tj["best_test_error"] = best;
    tj["best_run"] = best_run;
    tj["best_valid_error"] = best_valid;
    tj["seconds"] = secs;
    sum_mean += sum / r.runs;
    sum_best += best;
    results["tasks"].push_back(tj);
    write_text(fs::path(a.out) / "results.json", results.dump(2) + "\n");
  }
  const double nt = static_cast<double>(tasks.size());
  results["mean_test_error"] = sum_mean / nt;
  results["mean_best_test_error"] = sum_best / nt;
  write_text(fs::path(a.out) / "results.json", results.dump(2) + "\n");
  std::printf("mean test error over %zu task(s): %.2f%% (mean of runs), %.2f%% (run with the best validation error)\n", tasks.size(),
              100 * sum_mean / nt, 100 * sum_best / nt);
}

}  // namespace lowbit::cli
