// LSTM runtime: loading and validation, the float step, the integer 8x8_16 step (reference and
// fast path bit for bit, for every variant combination, batch 1 and batch > 1), quantization,
// and the .npy reader.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <unistd.h>
#include <string>
#include <vector>

#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/io/model_file.h"
#include "lowbit/io/npy.h"
#include "lowbit/runtime/lstm.h"
#include "lowbit/runtime/lstm_quantize.h"
#include "test_util.h"

namespace lowbit::runtime {
namespace {

using json = nlohmann::json;

std::vector<LstmLayerSpec> one_layer(int64_t I, int64_t C, int64_t P, bool cifg, bool peep, bool proj, bool ln,
                                     float cell_clip = 0.0f, float proj_clip = 0.0f) {
  LstmLayerSpec s;
  s.name = "lstm.0";
  s.n_input = I;
  s.n_cell = C;
  s.n_output = proj ? P : C;
  s.cifg = cifg;
  s.peephole = peep;
  s.projection = proj;
  s.layer_norm = ln;
  s.cell_clip = cell_clip;
  s.proj_clip = proj ? proj_clip : 0.0f;
  return {s};
}

std::vector<float> random_floats(int64_t n, uint64_t seed, float a = 1.5f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-a, a);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = u(rng);
  return v;
}

struct Pair {
  LstmModel f, q;
};

Pair float_and_integer(const std::vector<LstmLayerSpec>& layers, uint64_t seed, int64_t calib_steps = 24) {
  Pair p;
  p.f = LstmModel::from_model_file(random_float_lstm(LstmKind::lstm, layers, 0, seed), "float");
  const int64_t I = layers.front().n_input;
  const auto x = random_floats(calib_steps * 2 * I, seed + 1);
  const auto ranges = calibrate_lstm(p.f, x.data(), calib_steps, 2);
  // Through the file image, as a model on disk would be.
  const io::ModelFile qf = quantize_lstm(p.f, ranges);
  p.q = LstmModel::from_model_file(io::parse(io::serialize(qf), "integer"), "integer");
  return p;
}

std::vector<int8_t> quantize_input(const LstmModel& q, const std::vector<float>& x) {
  std::vector<int8_t> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    out[i] = static_cast<int8_t>(std::clamp<long>(std::lround(x[i] / q.input_scale()) + q.input_zero_point(), -128, 127));
  return out;
}

TEST(RuntimeLstm, ReferenceAndFastIntegerStepsAgreeForEveryVariant) {
  const int64_t sizes[][3] = {{5, 7, 3}, {17, 33, 13}, {3, 16, 20}, {31, 13, 9}};
  int combo = 0;
  for (int bits = 0; bits < 16; ++bits) {
    const bool cifg = bits & 1, peep = bits & 2, proj = bits & 4, ln = bits & 8;
    const auto& sz = sizes[combo++ % 4];
    const int64_t P = (peep && proj) ? std::min(sz[2], sz[1]) : sz[2];
    const auto layers = one_layer(sz[0], sz[1], P, cifg, peep, proj, ln, bits % 3 == 0 ? 3.0f : 0.0f,
                                  bits % 5 == 0 ? 0.8f : 0.0f);
    SCOPED_TRACE("cifg " + std::to_string(cifg) + " peephole " + std::to_string(peep) + " projection " +
                 std::to_string(proj) + " layer_norm " + std::to_string(ln));
    const Pair p = float_and_integer(layers, 100 + bits);
    for (int64_t B : {1, 3}) {
      const int64_t T = 9;
      const auto xf = random_floats(T * B * sz[0], 7 + bits);
      const auto xq = quantize_input(p.q, xf);
      const int64_t n = T * B * p.q.n_output();
      std::vector<int8_t> ref(static_cast<std::size_t>(n)), fast(static_cast<std::size_t>(n));
      auto s1 = p.q.initial_state(B);
      p.q.run_integer(xq.data(), T, s1, ref.data(), /*reference=*/true);
      lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
        auto s2 = p.q.initial_state(B);
        p.q.run_integer(xq.data(), T, s2, fast.data(), false);
        ASSERT_EQ(ref, fast) << "batch " << B;
      });
      // The integer model tracks the float one.
      std::vector<float> yf(static_cast<std::size_t>(n));
      auto sf = p.f.initial_state(B);
      p.f.run_float(xf.data(), T, sf, yf.data());
      double err = 0;
      for (int64_t i = 0; i < n; ++i)
        err += std::fabs((ref[static_cast<std::size_t>(i)] - p.q.output_zero_point()) * p.q.output_scale() - yf[static_cast<std::size_t>(i)]);
      // Peephole with a projection narrower than the cell follows TFLite's n_output-length
      // peephole (lstm.h), which the float definition does not share.
      if (!(peep && proj && P < sz[1])) {
        EXPECT_LT(err / static_cast<double>(n), 0.06) << "batch " << B;
      }
    }
  }
}

TEST(RuntimeLstm, LayerLargerThanL2ComputesItsActivations) {
  // Recurrent weights above the core's L2 (1024 cells, 4 MiB of int8 when L2 is at most 4 MiB):
  // the fast step computes sigmoid and tanh with the vector forms instead of reading the tables.
  // It must still equal the scalar reference bit for bit, at every instruction-set level.
  const int64_t C = cpu::l2_cache_bytes() <= (int64_t{4} << 20) ? 1024 : 2048;
  const auto layers = one_layer(8, C, C, false, true, false, false, 2.0f);
  const Pair p = float_and_integer(layers, 71, 4);
  const int64_t T = 3, B = 1;
  const auto xq = quantize_input(p.q, random_floats(T * B * 8, 72));
  std::vector<int8_t> ref(static_cast<std::size_t>(T * B * C)), fast(ref.size());
  auto s1 = p.q.initial_state(B);
  p.q.run_integer(xq.data(), T, s1, ref.data(), /*reference=*/true);
  int nonzero = 0;
  for (int8_t v : ref) nonzero += v != p.q.output_zero_point();
  EXPECT_GT(nonzero, static_cast<int>(ref.size() / 4));  // the outputs carry a signal
  lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
    auto s2 = p.q.initial_state(B);
    p.q.run_integer(xq.data(), T, s2, fast.data(), false);
    ASSERT_EQ(ref, fast);
  });
}

TEST(RuntimeLstm, StackedLayersAndStatePersistence) {
  auto layers = one_layer(6, 11, 11, false, false, false, false);
  LstmLayerSpec second = layers[0];
  second.name = "lstm.1";
  second.n_input = 11;
  second.n_cell = 8;
  second.n_output = 5;
  second.projection = true;
  layers.push_back(second);
  const Pair p = float_and_integer(layers, 5);
  ASSERT_EQ(p.q.layers().size(), 2u);
  const int64_t T = 6, B = 2;
  const auto xq = quantize_input(p.q, random_floats(T * B * 6, 9));
  std::vector<int8_t> all(static_cast<std::size_t>(T * B * 5)), split(all.size());
  auto s = p.q.initial_state(B);
  p.q.run_integer(xq.data(), T, s, all.data());
  // Running the sequence in two halves with the same state gives the same outputs.
  auto s2 = p.q.initial_state(B);
  p.q.run_integer(xq.data(), 2, s2, split.data());
  p.q.run_integer(xq.data() + 2 * B * 6, T - 2, s2, split.data() + 2 * B * 5);
  EXPECT_EQ(all, split);
  // Batch rows are independent: row 1 alone gives row 1's outputs.
  std::vector<int8_t> x1(static_cast<std::size_t>(T * 6)), y1(static_cast<std::size_t>(T * 5));
  for (int64_t t = 0; t < T; ++t) std::copy_n(xq.data() + (t * B + 1) * 6, 6, x1.data() + t * 6);
  auto s3 = p.q.initial_state(1);
  p.q.run_integer(x1.data(), T, s3, y1.data());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(y1[static_cast<std::size_t>(t * 5 + j)], all[static_cast<std::size_t>((t * B + 1) * 5 + j)]);
}

TEST(RuntimeLstm, SequenceRunsMatchStepByStepAcrossBlocks) {
  // Sequence runs compute each layer's input projection for a block of steps at once (64 steps);
  // a 150-step run of two stacked layers (the second with CIFG and a projection) must equal the
  // same sequence fed one step at a time and, for the integer model, the scalar reference.
  auto layers = one_layer(7, 10, 10, false, true, false, true);
  LstmLayerSpec second = layers[0];
  second.name = "lstm.1";
  second.n_input = 10;
  second.n_cell = 12;
  second.n_output = 6;
  second.projection = true;
  second.cifg = true;
  second.peephole = false;
  layers.push_back(second);
  const Pair p = float_and_integer(layers, 31);
  for (int64_t B : {1, 2}) {
    const int64_t T = 150, I = 7, P = 6;
    const auto xf = random_floats(T * B * I, 32 + B);
    const auto xq = quantize_input(p.q, xf);
    std::vector<int8_t> whole(static_cast<std::size_t>(T * B * P)), stepped(whole.size()), ref(whole.size());
    auto s1 = p.q.initial_state(B), s2 = p.q.initial_state(B), s3 = p.q.initial_state(B);
    p.q.run_integer(xq.data(), T, s1, whole.data());
    for (int64_t t = 0; t < T; ++t) p.q.run_integer(xq.data() + t * B * I, 1, s2, stepped.data() + t * B * P);
    p.q.run_integer(xq.data(), T, s3, ref.data(), /*reference=*/true);
    EXPECT_EQ(whole, stepped) << "batch " << B;
    EXPECT_EQ(whole, ref) << "batch " << B;
    std::vector<float> fw(whole.size()), fs(whole.size());
    auto f1 = p.f.initial_state(B), f2 = p.f.initial_state(B);
    p.f.run_float(xf.data(), T, f1, fw.data());
    for (int64_t t = 0; t < T; ++t) p.f.run_float(xf.data() + t * B * I, 1, f2, fs.data() + t * B * P);
    for (std::size_t i = 0; i < fw.size(); ++i) ASSERT_NEAR(fw[i], fs[i], 1e-4f) << "batch " << B << " index " << i;
  }
}

TEST(RuntimeLstm, FloatStepMatchesTheDefinitionOnOneCell) {
  // 1 input, 1 cell, no variants: compute the step by hand from the float tensors.
  const auto layers = one_layer(1, 1, 1, false, false, false, false);
  const io::ModelFile f = random_float_lstm(LstmKind::lstm, layers, 0, 3);
  const LstmModel m = LstmModel::from_model_file(f, "m");
  auto w = [&](const std::string& n) { return f.get("lstm.0." + n).values<float>()[0]; };
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  const float xs[2] = {0.7f, -1.2f};
  double h = 0, c = 0;
  for (float x : xs) {
    const double i = sig(w("input_to_input_weights") * x + w("recurrent_to_input_weights") * h + w("input_gate_bias"));
    const double fg = sig(w("input_to_forget_weights") * x + w("recurrent_to_forget_weights") * h + w("forget_gate_bias"));
    const double g = std::tanh(w("input_to_cell_weights") * x + w("recurrent_to_cell_weights") * h + w("cell_gate_bias"));
    const double o = sig(w("input_to_output_weights") * x + w("recurrent_to_output_weights") * h + w("output_gate_bias"));
    c = fg * c + i * g;
    h = o * std::tanh(c);
  }
  auto s = m.initial_state(1);
  float y[2];
  m.run_float(xs, 2, s, y);
  EXPECT_NEAR(y[1], h, 1e-5);
}

TEST(RuntimeLstm, LanguageModelQuantizesAndTracksTheFloatLogits) {
  auto layers = one_layer(8, 12, 12, false, false, false, false);
  const io::ModelFile ff = random_float_lstm(LstmKind::lstm_lm, layers, 20, 11);
  const LstmModel f = LstmModel::from_model_file(ff, "lm");
  std::vector<int32_t> tokens(60);
  std::mt19937 rng(1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 20);
  const auto ranges = calibrate_lstm_lm(f, tokens.data(), 60);
  std::vector<std::string> report;
  const LstmModel q = LstmModel::from_model_file(quantize_lstm(f, ranges, &report), "lmq");
  EXPECT_FALSE(report.empty());
  std::vector<float> lf(60 * 20), lq(60 * 20), lr(60 * 20);
  auto sf = f.initial_state(1), sq = q.initial_state(1), sr = q.initial_state(1);
  f.run_lm(tokens.data(), 60, sf, lf.data());
  q.run_lm(tokens.data(), 60, sq, lq.data());
  q.run_lm(tokens.data(), 60, sr, lr.data(), true);
  EXPECT_EQ(lq, lr);
  double err = 0;
  for (std::size_t i = 0; i < lf.size(); ++i) err += std::fabs(lf[i] - lq[i]);
  EXPECT_LT(err / static_cast<double>(lf.size()), 0.05);
  const int32_t bad = 20;
  auto s = q.initial_state(1);
  EXPECT_THROW(q.run_lm(&bad, 1, s, lq.data()), Error);
}

// ---- validation -----------------------------------------------------------------------------

io::ModelFile small_integer_file(bool cifg = false, bool proj = false) {
  const auto layers = one_layer(4, 6, proj ? 3 : 6, cifg, false, proj, false);
  const LstmModel f = LstmModel::from_model_file(random_float_lstm(LstmKind::lstm, layers, 0, 2), "f");
  const auto x = random_floats(8 * 4, 3);
  return quantize_lstm(f, calibrate_lstm(f, x.data(), 8, 1));
}

io::ModelFile with_meta(io::ModelFile f, const std::function<void(json&)>& edit) {
  json meta = json::parse(f.metadata);
  edit(meta);
  f.metadata = meta.dump();
  return f;
}

io::ModelFile without(const io::ModelFile& f, const std::string& name) {
  io::ModelFile g;
  g.metadata = f.metadata;
  for (const auto& [n, a] : f.tensors)
    if (n != name) g.add(n, a);
  return g;
}

void expect_error(const io::ModelFile& f, const std::string& fragment) {
  try {
    LstmModel::from_model_file(f, "model.lbm");
    ADD_FAILURE() << "no error; expected one containing: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.lbm"), std::string::npos) << e.what();
  }
}

TEST(RuntimeLstm, ValidationErrorsNameTheProblem) {
  const io::ModelFile good = small_integer_file();
  EXPECT_NO_THROW(LstmModel::from_model_file(good, "ok"));
  expect_error(without(good, "lstm.0.input_to_cell_weights"), "input_to_cell_weights\" is missing");
  {
    io::ModelFile g = without(good, "lstm.0.forget_gate_bias");
    g.add("lstm.0.forget_gate_bias", io::Array::zeros(io::ElemType::F32, {6}));
    expect_error(g, "is F32, expected I32");
  }
  {
    io::ModelFile g = without(good, "lstm.0.forget_gate_bias");
    g.add("lstm.0.forget_gate_bias", io::Array::zeros(io::ElemType::I32, {7}));
    expect_error(g, "has shape [7], expected [6]");
  }
  expect_error(with_meta(good, [](json& m) { m["model"]["layers"][0]["quantization"]["cell_state"]["scale"] = 0.0003; }),
               "not a power of two");
  expect_error(with_meta(good, [](json& m) { m["model"]["layers"][0]["quantization"]["cell_state"]["scale"] = 1.0 / 256; }),
               "above 2^-9");
  expect_error(with_meta(good, [](json& m) { m["model"]["layers"][0]["quantization"]["hidden"]["zero_point"] = 200; }),
               "zero_point 200");
  expect_error(with_meta(good, [](json& m) { m["model"]["layers"][0]["cifg"] = true; }), "must not be present");
  expect_error(with_meta(good, [](json& m) { m["model"]["layers"][0].erase("quantization"); }), "\"quantization\"");
  expect_error(with_meta(good, [](json& m) { m["model"]["layers"][0]["quantization"].erase("input_to_forget_weights"); }),
               "input_to_forget_weights");
  expect_error(with_meta(good, [](json& m) { m["model"]["kind"] = "gru"; }), "not an LSTM model");
  expect_error(with_meta(good, [](json& m) { m["model"]["precision"] = "half"; }), "precision");
  expect_error(with_meta(good, [](json& m) { m["model"]["layers"][0]["n_output"] = 5; }), "no projection");
  EXPECT_NO_THROW(LstmModel::from_model_file(small_integer_file(true, true), "cifg+proj"));
}

// ---- .npy -----------------------------------------------------------------------------------

class Npy : public lowbit::testing::TempDirTest {};

TEST_F(Npy, RoundTripAndErrors) {
  const std::vector<int8_t> v = {1, -2, 3, -4, 5, -6};
  const std::string path = (dir_ / "a.npy").string();
  io::write_npy(path, io::make_npy<int8_t>({1, 2, 3}, v.data()));
  const io::NpyArray a = io::read_npy(path);
  EXPECT_EQ(a.type, io::NpyType::i8);
  EXPECT_EQ(a.shape, (Shape{1, 2, 3}));
  EXPECT_EQ(std::vector<int8_t>(a.as<int8_t>(), a.as<int8_t>() + 6), v);
  auto bytes = io::serialize_npy(a);
  EXPECT_EQ(bytes.size() % 64, 6u);  // header padded to 64, then 6 data bytes
  auto expect = [&](std::vector<uint8_t> b, const std::string& frag) {
    try {
      io::parse_npy(b, "in.npy");
      ADD_FAILURE() << "no error, expected " << frag;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("in.npy"), std::string::npos) << e.what();
    }
  };
  auto bad = bytes;
  bad[1] = 'X';
  expect(bad, "bad magic");
  expect(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1), "truncated");
  std::string h(bytes.begin(), bytes.end());
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = h;
    s.replace(s.find(from), from.size(), to);
    return std::vector<uint8_t>(s.begin(), s.end());
  };
  expect(replace("'fortran_order': False", "'fortran_order': True "), "Fortran");
  expect(replace("|i1", "<f8"), "not supported");
  EXPECT_THROW(io::read_npy((dir_ / "missing.npy").string()), Error);
  const std::vector<float> f = {1.5f, -2.0f};
  io::write_npy(path, io::make_npy<float>({2}, f.data()));
  EXPECT_EQ(io::read_npy(path).as<float>()[1], -2.0f);
}

}  // namespace
}  // namespace lowbit::runtime

namespace lowbit::runtime {
namespace {

// Files for tests/lstm_cli.sh (written to $LOWBIT_LSTM_FIXTURE_DIR, or a temporary folder):
// float lstm and lstm_lm models, calibration and input arrays, the integer output expected from
// quantizing with calib.npy and running on x_int8.npy, and a tiny PTB folder whose vocabulary
// matches the language model.
TEST(RuntimeLstm, WriteCliFixture) {
  namespace fs = std::filesystem;
  const char* env = std::getenv("LOWBIT_LSTM_FIXTURE_DIR");
  const fs::path dir = env ? fs::path(env) : fs::temp_directory_path() / ("lowbit_lstm_fixture_" + std::to_string(::getpid()));
  fs::create_directories(dir / "ptb");
  auto layers = one_layer(5, 9, 4, false, true, true, true, 2.0f, 0.0f);
  layers[0].n_output = 4;
  const io::ModelFile ff = random_float_lstm(LstmKind::lstm, layers, 0, 77);
  io::save((dir / "lstm_float.lbm").string(), ff);
  const LstmModel f = LstmModel::from_model_file(ff, "f");
  const int64_t T = 7, B = 2;
  const auto calib = random_floats(12 * 3 * 5, 78);
  io::write_npy((dir / "calib.npy").string(), io::make_npy<float>({12, 3, 5}, calib.data()));
  const LstmModel q = LstmModel::from_model_file(quantize_lstm(f, calibrate_lstm(f, calib.data(), 12, 3)), "q");
  const auto xf = random_floats(T * B * 5, 79);
  io::write_npy((dir / "x_f32.npy").string(), io::make_npy<float>({T, B, 5}, xf.data()));
  std::vector<int8_t> xq(xf.size());
  std::mt19937 rng(5);
  for (auto& v : xq) v = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  io::write_npy((dir / "x_int8.npy").string(), io::make_npy<int8_t>({T, B, 5}, xq.data()));
  std::vector<int8_t> yq(static_cast<std::size_t>(T * B * 4));
  auto s = q.initial_state(B);
  q.run_integer(xq.data(), T, s, yq.data());
  io::write_npy((dir / "expected_int8.npy").string(), io::make_npy<int8_t>({T, B, 4}, yq.data()));
  io::write_npy((dir / "empty_int8.npy").string(), io::make_npy<int8_t>({0, B, 5}, xq.data()));
  io::write_npy((dir / "empty_calib.npy").string(), io::make_npy<float>({0, 3, 5}, calib.data()));
  {
    std::vector<uint8_t> px(3 * 30);
    for (auto& v : px) v = static_cast<uint8_t>(rng() % 256);
    io::write_npy((dir / "pixels_u8.npy").string(), io::make_npy<uint8_t>({3, 30}, px.data()));
  }
  {
    io::ModelFile other;
    other.metadata = R"({"model": {"kind": "feedforward"}})";
    other.add("w", io::Array::zeros(io::ElemType::F32, {2}));
    io::save((dir / "other.lbm").string(), other);
  }
  std::vector<int8_t> wide(static_cast<std::size_t>(T * B * 6), 0);
  io::write_npy((dir / "wide_int8.npy").string(), io::make_npy<int8_t>({T, B, 6}, wide.data()));

  // Language model over a 12-word vocabulary (11 words + <eos>).
  const io::ModelFile lm = random_float_lstm(LstmKind::lstm_lm, one_layer(6, 10, 10, false, false, false, false), 12, 80);
  io::save((dir / "lm_float.lbm").string(), lm);
  auto text = [&](uint32_t seed, int lines) {
    std::mt19937 r(seed);
    std::string out;
    for (int l = 0; l < lines; ++l) {
      for (int w = 0; w < 6; ++w) out += " w" + std::to_string(r() % 11);
      out += "\n";
    }
    return out;
  };
  std::string train;
  for (int w = 0; w < 11; ++w) train += " w" + std::to_string(w);  // every word appears in training
  train += "\n" + text(1, 40);
  std::ofstream(dir / "ptb" / "ptb.train.txt") << train;
  std::ofstream(dir / "ptb" / "ptb.valid.txt") << text(2, 10);
  std::ofstream(dir / "ptb" / "ptb.test.txt") << text(3, 30);
  const std::vector<int32_t> tokens = {0, 5, 11, 3};
  io::write_npy((dir / "tokens.npy").string(), io::make_npy<int32_t>({2, 2}, tokens.data()));
  const std::vector<int32_t> bad = {0, 12};
  io::write_npy((dir / "bad_tokens.npy").string(), io::make_npy<int32_t>({1, 2}, bad.data()));
  if (!env) fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit::runtime
