// `lowbit run MODEL --input IN.npy --output OUT.npy`: runs a model file on arrays.
//
//   kind lstm, integer precision    int8 codes [T, B, n_input]  -> int8 codes [T, B, n_output]
//   kind lstm, float precision      float32 [T, B, n_input]     -> float32 [T, B, n_output]
//   kind lstm_lm (either precision) int32 token ids [T, B]      -> float32 logits [T, B, vocab]
//                                   (int64 ids are accepted too)
//   feed-forward networks           uint8 pixels [N, ...]       -> float32 logits [N, classes]
//
// Sequences are time-major and every batch row starts from the zero state. Errors: a width that
// does not match the model, an empty sequence or batch, token ids outside the vocabulary, an
// input dtype the model does not take.
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/error.h"
#include "lowbit/io/model_file.h"
#include "lowbit/io/npy.h"
#include "lowbit/runtime/lstm.h"
#include "lowbit/runtime/network.h"

namespace lowbit::cli {
namespace {

struct RunOptions {
  std::string model, input, output;
  bool reference = false;
};

std::string dtype_name(io::NpyType t) { return io::npy_type_descr(t); }

void run_lstm(const runtime::LstmModel& m, const io::NpyArray& in, const RunOptions& o) {
  if (m.kind() == runtime::LstmKind::lstm_lm) {
    LOWBIT_CHECK(in.type == io::NpyType::i32 || in.type == io::NpyType::i64, o.input, ": dtype ", dtype_name(in.type),
                 ", but an lstm_lm model takes int32 token ids [T, B]");
    LOWBIT_CHECK(in.shape.size() == 2, o.input, ": shape ", shape_str(in.shape), ", expected token ids [T, B]");
    const int64_t T = in.shape[0], B = in.shape[1], V = m.vocab_size();
    LOWBIT_CHECK(T > 0 && B > 0, o.input, ": empty sequence (shape ", shape_str(in.shape), ")");
    std::vector<int32_t> ids(static_cast<std::size_t>(T * B));
    for (int64_t i = 0; i < T * B; ++i) {
      const int64_t v = in.type == io::NpyType::i32 ? in.as<int32_t>()[i] : in.as<int64_t>()[i];
      LOWBIT_CHECK(v >= 0 && v < V, o.input, ": token id ", v, " at flat position ", i,
                   " is out of range (vocabulary size ", V, ")");
      ids[static_cast<std::size_t>(i)] = static_cast<int32_t>(v);
    }
    std::vector<float> logits(static_cast<std::size_t>(T * B * V));
    auto state = m.initial_state(B);
    m.run_lm(ids.data(), T, state, logits.data(), o.reference);
    io::write_npy(o.output, io::make_npy<float>({T, B, V}, logits.data()));
    return;
  }
  const io::NpyType want = m.is_integer() ? io::NpyType::i8 : io::NpyType::f32;
  LOWBIT_CHECK(in.type == want, o.input, ": dtype ", dtype_name(in.type), ", but this ",
               m.is_integer() ? "integer" : "float", " lstm model takes ", dtype_name(want), " [T, B, n_input]");
  LOWBIT_CHECK(in.shape.size() == 3, o.input, ": shape ", shape_str(in.shape), ", expected [T, B, n_input]");
  const int64_t T = in.shape[0], B = in.shape[1], I = in.shape[2], P = m.n_output();
  LOWBIT_CHECK(T > 0 && B > 0, o.input, ": empty sequence (shape ", shape_str(in.shape), ")");
  LOWBIT_CHECK(I == m.n_input(), o.input, ": input width ", I, " but the model expects n_input = ", m.n_input());
  auto state = m.initial_state(B);
  if (m.is_integer()) {
    std::vector<int8_t> y(static_cast<std::size_t>(T * B * P));
    m.run_integer(in.as<int8_t>(), T, state, y.data(), o.reference);
    io::write_npy(o.output, io::make_npy<int8_t>({T, B, P}, y.data()));
  } else {
    std::vector<float> y(static_cast<std::size_t>(T * B * P));
    m.run_float(in.as<float>(), T, state, y.data());
    io::write_npy(o.output, io::make_npy<float>({T, B, P}, y.data()));
  }
}

void run_network(const io::ModelFile& file, const io::NpyArray& in, const RunOptions& o) {
  const runtime::Network net = runtime::Network::from_model_file(file, o.model);
  LOWBIT_CHECK(in.type == io::NpyType::u8, o.input, ": dtype ", dtype_name(in.type),
               ", but a feed-forward network takes uint8 pixels [N, features]");
  LOWBIT_CHECK(!in.shape.empty() && in.shape[0] > 0, o.input, ": empty input (shape ", shape_str(in.shape), ")");
  const int64_t n = in.shape[0];
  const int64_t features = in.numel() / n;
  LOWBIT_CHECK(features == net.input().features(), o.input, ": ", features, " values per example but the model expects ",
               net.input().features());
  const int64_t classes = net.num_classes();
  std::vector<float> out(static_cast<std::size_t>(n * classes));
  net.logits(in.data.data(), n, out.data());
  io::write_npy(o.output, io::make_npy<float>({n, classes}, out.data()));
}

void run(const RunOptions& o) {
  const io::ModelFile file = io::load(o.model);
  const io::NpyArray in = io::read_npy(o.input);
  if (runtime::LstmModel::is_lstm_file(file)) run_lstm(runtime::LstmModel::from_model_file(file, o.model), in, o);
  else run_network(file, in, o);
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a model file on a .npy array and write the result as .npy");
  cmd->add_option("model", opts->model, "Model file")->required();
  cmd->add_option("--input", opts->input, "Input .npy (lstm: [T, B, n_input] int8 or float32; lstm_lm: int32 ids "
                                          "[T, B]; feed-forward: uint8 [N, features])")->required();
  cmd->add_option("--output", opts->output, "Output .npy to write")->required();
  cmd->add_flag("--reference", opts->reference, "Integer LSTM: use the scalar reference step (same results, slower)");
  cmd->callback([opts] { run(*opts); });
}

}  // namespace lowbit::cli
