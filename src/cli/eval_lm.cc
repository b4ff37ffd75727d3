// `lowbit eval MODEL --data PTB_DIR` for lstm_lm models (float or integer): perplexity on the
// PTB test split, one stateful stream at batch 1 (the state carries over the whole split), each
// token predicting the next. Integer models compute int32 logits; they are dequantized only for
// the softmax of the metric. Reports perplexity, the number of predicted tokens, tokens per
// second and the model file's size; `--json` prints them as one object.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/data/ptb.h"
#include "lowbit/io/model_file.h"
#include "lowbit/runtime/lstm.h"

namespace lowbit::cli {

bool eval_lm_if_lstm(const std::string& model_path, const std::string& data, bool as_json, int64_t limit) {
  const io::ModelFile file = io::load(model_path);
  if (!runtime::LstmModel::is_lstm_file(file)) return false;
  const runtime::LstmModel m = runtime::LstmModel::from_model_file(file, model_path);
  LOWBIT_CHECK(m.kind() == runtime::LstmKind::lstm_lm, model_path,
               ": eval needs a language model (kind lstm_lm); run sequence models with `lowbit run`");
  LOWBIT_CHECK(limit >= 0, "--limit ", limit, " (expected >= 0; 0 means the whole test split)");
  const std::string dir = data::ptb_dir_from(data);
  const data::PtbCorpus corpus = data::load_ptb(dir);
  LOWBIT_CHECK(corpus.vocab.size() == m.vocab_size(), dir, ": PTB vocabulary has ", corpus.vocab.size(),
               " words but the model's vocabulary has ", m.vocab_size());
  const int32_t* ids = corpus.test.data<int32_t>();
  int64_t n = corpus.test.numel();
  if (limit > 0) n = std::min(n, limit + 1);
  LOWBIT_CHECK(n >= 2, dir, ": the test split needs at least two tokens");
  const int64_t V = m.vocab_size();
  std::vector<float> logits(static_cast<std::size_t>(V));
  auto state = m.initial_state(1);
  double nll = 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t + 1 < n; ++t) {
    m.run_lm(ids + t, 1, state, logits.data());
    const float mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
    nll += std::log(sum) - static_cast<double>(logits[static_cast<std::size_t>(ids[t + 1])] - mx);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t tokens = n - 1;
  nlohmann::ordered_json j{{"model", model_path},
                           {"precision", m.is_integer() ? "integer" : "float"},
                           {"perplexity", std::exp(nll / static_cast<double>(tokens))},
                           {"tokens", tokens},
                           {"tokens_per_second", static_cast<double>(tokens) / std::max(seconds, 1e-9)},
                           {"threads", num_threads()},
                           {"model_bytes", static_cast<int64_t>(std::filesystem::file_size(model_path))}};
  if (as_json) {
    std::cout << j.dump(2) << '\n';
  } else {
    std::printf("model        %s (%s lstm_lm, %zu layers, vocabulary %lld)\n", model_path.c_str(),
                m.is_integer() ? "integer" : "float", m.layers().size(), static_cast<long long>(V));
    std::printf("perplexity   %.3f over %lld PTB test tokens\n", j["perplexity"].get<double>(),
                static_cast<long long>(tokens));
    std::printf("throughput   %.0f tokens/s at batch 1 (%d threads)\n", j["tokens_per_second"].get<double>(),
                num_threads());
    std::printf("size         %lld bytes\n", static_cast<long long>(j["model_bytes"].get<int64_t>()));
  }
  return true;
}

}  // namespace lowbit::cli
