// `lowbit quantize MODEL --calib PATH --out INT_MODEL [--verbose] [--calib-tokens N]`:
// post-training quantization of a float LSTM model file (kind lstm or lstm_lm) into the integer
// 8x8_16 scheme (runtime/lstm_quantize.h has the rules).
//
// Calibration data:
//   kind lstm     a float32 .npy [T, B, n_input]
//   kind lstm_lm  a PTB folder (its training split), a PTB-format text file (read with the
//                 vocabulary of the ptb.train.txt beside it), or an int32/int64 .npy of token ids;
//                 at most --calib-tokens tokens (default 20000), run as one stream
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/error.h"
#include "lowbit/data/ptb.h"
#include "lowbit/io/model_file.h"
#include "lowbit/io/npy.h"
#include "lowbit/runtime/lstm.h"
#include "lowbit/runtime/lstm_quantize.h"

namespace lowbit::cli {
namespace {

struct QuantizeOptions {
  std::string model, calib, out;
  bool verbose = false;
  int64_t calib_tokens = 20000;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<int32_t> calibration_tokens(const std::string& path, int64_t limit, int64_t vocab) {
  std::vector<int32_t> ids;
  namespace fs = std::filesystem;
  if (ends_with(path, ".npy")) {
    const io::NpyArray a = io::read_npy(path);
    LOWBIT_CHECK(a.type == io::NpyType::i32 || a.type == io::NpyType::i64, path,
                 ": calibration token ids must be int32 or int64");
    for (int64_t i = 0; i < a.numel(); ++i)
      ids.push_back(static_cast<int32_t>(a.type == io::NpyType::i32 ? a.as<int32_t>()[i] : a.as<int64_t>()[i]));
  } else if (fs::is_directory(path)) {
    const data::PtbCorpus c = data::load_ptb(path);
    const int32_t* d = c.train.data<int32_t>();
    ids.assign(d, d + c.train.numel());
    LOWBIT_CHECK(c.vocab.size() == vocab, path, ": PTB vocabulary has ", c.vocab.size(), " words but the model's is ", vocab);
  } else {
    LOWBIT_CHECK(fs::is_regular_file(path), path, ": no such calibration file or folder");
    const fs::path train = fs::path(path).parent_path() / "ptb.train.txt";
    LOWBIT_CHECK(fs::is_regular_file(train), path, ": a text calibration file needs ptb.train.txt beside it (",
                 train.string(), ") for the vocabulary");
    data::Vocabulary vocab_words;
    data::read_ptb_file(train.string(), vocab_words, /*grow=*/true);
    const Tensor t = data::read_ptb_file(path, vocab_words, /*grow=*/false);
    ids.assign(t.data<int32_t>(), t.data<int32_t>() + t.numel());
  }
  if (limit > 0 && static_cast<int64_t>(ids.size()) > limit) ids.resize(static_cast<std::size_t>(limit));
  LOWBIT_CHECK(!ids.empty(), path, ": the calibration set is empty");
  for (int32_t v : ids) LOWBIT_CHECK(v >= 0 && v < vocab, path, ": token id ", v, " outside the vocabulary (", vocab, ")");
  return ids;
}

void quantize(const QuantizeOptions& o) {
  LOWBIT_CHECK(o.calib_tokens >= 1, "--calib-tokens ", o.calib_tokens, " (expected >= 1)");
  const io::ModelFile file = io::load(o.model);
  LOWBIT_CHECK(runtime::LstmModel::is_lstm_file(file), o.model,
               ": quantize supports float LSTM models (kind lstm or lstm_lm); this file is another kind");
  const runtime::LstmModel m = runtime::LstmModel::from_model_file(file, o.model);
  LOWBIT_CHECK(!m.is_integer(), o.model, ": the model is already integer");
  std::vector<runtime::LstmLayerRanges> ranges;
  int64_t seen = 0;
  if (m.kind() == runtime::LstmKind::lstm) {
    const io::NpyArray x = io::read_npy(o.calib);
    LOWBIT_CHECK(x.type == io::NpyType::f32 && x.shape.size() == 3, o.calib,
                 ": calibration data for an lstm model must be float32 [T, B, n_input]");
    LOWBIT_CHECK(x.shape[2] == m.n_input(), o.calib, ": width ", x.shape[2], " but the model expects ", m.n_input());
    LOWBIT_CHECK(x.shape[0] > 0 && x.shape[1] > 0, o.calib, ": the calibration set is empty");
    ranges = runtime::calibrate_lstm(m, x.as<float>(), x.shape[0], x.shape[1]);
    seen = x.shape[0] * x.shape[1];
  } else {
    const std::vector<int32_t> ids = calibration_tokens(o.calib, o.calib_tokens, m.vocab_size());
    ranges = runtime::calibrate_lstm_lm(m, ids.data(), static_cast<int64_t>(ids.size()));
    seen = static_cast<int64_t>(ids.size());
  }
  std::vector<std::string> report;
  const io::ModelFile q = runtime::quantize_lstm(m, ranges, &report);
  // Load what we wrote, so an inconsistent result fails here rather than at run time.
  runtime::LstmModel::from_model_file(q, o.out);
  io::save(o.out, q);
  if (o.verbose)
    for (const auto& line : report) std::printf("%s\n", line.c_str());
  std::printf("quantized %s -> %s (%lld calibration %s)\n", o.model.c_str(), o.out.c_str(), static_cast<long long>(seen),
              m.kind() == runtime::LstmKind::lstm ? "sequence steps x batch rows" : "tokens");
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto opts = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Post-training quantization of a float LSTM model to integer 8x8_16");
  cmd->add_option("model", opts->model, "Float LSTM model file (kind lstm or lstm_lm)")->required();
  cmd->add_option("--calib", opts->calib,
                  "Calibration data: lstm: float32 .npy [T, B, n_input]; lstm_lm: PTB folder, PTB-format text "
                  "file, or token-id .npy")->required();
  cmd->add_option("--out", opts->out, "Integer model file to write")->required();
  cmd->add_flag("--verbose", opts->verbose, "Print min/max/scale/zero point of every quantized tensor");
  cmd->add_option("--calib-tokens", opts->calib_tokens, "lstm_lm: calibration tokens at most (default 20000)");
  cmd->callback([opts] { quantize(*opts); });
}

}  // namespace lowbit::cli
