// MemN2N integer runtime: exported models agree with the training graph, the integer exp, the
// PNG writer's checksums, the op counter, and the train/export/eval commands end to end.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/data/babi.h"
#include "lowbit/energy/ops.h"
#include "lowbit/io/png.h"
#include "lowbit/nn/memn2n.h"
#include "lowbit/runtime/memn2n.h"
#include "memn2n_test_util.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace mm = nn::memn2n;
namespace fs = std::filesystem;

TEST(Memn2nRuntime, SoftmaxExpIsCloseToExp) {
  // Every input the attention softmax can see: logit differences with 0..7 fraction bits (and
  // 12, finer than the Q4.11 input, to exercise the truncation), down to −20.
  for (int frac : {0, 3, 5, 7, 12}) {
    for (int64_t x = 0; x >= -(int64_t{20} << frac); --x) {
      const double v = std::ldexp(static_cast<double>(x), -frac);
      // The Q4.11 input truncates finer fractions toward zero (a larger exp by at most 2^−11).
      const double want = std::exp(frac > 11 ? std::ldexp(std::ceil(std::ldexp(v, 11)), -11) : v);
      const double got = std::ldexp(static_cast<double>(runtime::softmax_exp_q15(x, frac)), -15);
      ASSERT_NEAR(got, want, 2e-4 * want + 3.1e-5) << "x=" << x << " frac=" << frac;
    }
  }
  EXPECT_EQ(runtime::softmax_exp_q15(0, 0), 32767);
  EXPECT_EQ(runtime::softmax_exp_q15(-1000, 0), 0);
  EXPECT_EQ(runtime::softmax_exp_q15(-(int64_t{1} << 40), 3), 0);
  EXPECT_THROW(runtime::softmax_exp_q15(1, 0), Error);
}

TEST(Memn2nRuntime, PngChecksumsAndLayout) {
  const std::string iend = "IEND", wiki = "Wikipedia";
  EXPECT_EQ(io::crc32({reinterpret_cast<const uint8_t*>(iend.data()), 4}), 0xAE426082u);
  EXPECT_EQ(io::adler32({reinterpret_cast<const uint8_t*>(wiki.data()), wiki.size()}), 0x11E60398u);
  std::vector<uint8_t> px(300 * 300);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
  const std::vector<uint8_t> png = io::encode_png_gray(300, 300, px);
  ASSERT_GT(png.size(), 300u * 301u);
  EXPECT_EQ(png[1], 'P');
  EXPECT_EQ(std::string(png.end() - 8, png.end() - 4), "IEND");
  // Two stored blocks (300·301 bytes of scanlines > 65535): the first is not final.
  const size_t idat = 8 + 25 + 8;  // signature, IHDR chunk, IDAT length + type
  EXPECT_EQ(png[idat], 0x78);
  EXPECT_EQ(png[idat + 2], 0);  // BFINAL 0, stored
  EXPECT_THROW(io::encode_png_gray(2, 2, px), Error);
}

struct TinyTask {
  std::vector<std::string> words;
  std::vector<mm::Example> train, valid, test;
  int64_t vocab = 0;
};

TinyTask tiny_task(const fs::path& dir) {
  testing::write_generated_babi(dir, 1, 800, 300, 9);
  const auto all = data::load_babi_task(dir.string(), 1, data::BabiSplit::train);
  const auto test = data::load_babi_task(dir.string(), 1, data::BabiSplit::test);
  const data::BabiTrainValid s = data::split_babi_validation(all);
  const data::BabiVocabulary v = data::BabiVocabulary::build(all);
  TinyTask t;
  for (int32_t i = 0; i < v.size(); ++i) t.words.push_back(v.word(i));
  t.train = mm::encode(s.train, v, 50);
  t.valid = mm::encode(s.valid, v, 50);
  t.test = mm::encode(test, v, 50);
  t.vocab = v.size();
  return t;
}

class Memn2nExport : public testing::TempDirTest {
 protected:
  // Trains a small quantized model and checks the exported integer runtime against it.
  void check(mm::Config c, double max_error, double min_agreement = 0.99) {
    const TinyTask t = tiny_task(dir_);
    mm::TrainConfig tc;
    tc.epochs = 15;
    tc.lr = 0.5;
    tc.lr_halve_every = 6;
    tc.shuffle = true;
    const mm::TrainOutcome r = mm::train(c, tc, t.vocab, t.train, t.valid, t.test);
    EXPECT_LT(r.best_test_error, max_error);
    const io::ModelFile f = runtime::export_memn2n(r.best, t.words, R"({"task": "1"})");
    const fs::path path = dir_ / "m.lbm";
    io::save(path.string(), f);
    const auto rt = runtime::Memn2nRuntime::from_model_file(io::load(path.string()), path.string());
    const mm::EvalResult g = mm::evaluate(r.best, t.test);
    int64_t agree = 0;
    for (size_t i = 0; i < t.test.size(); ++i) agree += rt.predict(t.test[i]) == g.predictions[i];
    EXPECT_GE(static_cast<double>(agree), min_agreement * static_cast<double>(t.test.size()));

    // The op counter is registered for the kind and counts the attention.
    const auto& reg = energy::counter_registry();
    ASSERT_TRUE(reg.count("memn2n"));
    energy::OpTally model, fp;
    reg.at("memn2n")(f, model, fp);
    uint64_t float_ops = 0, int_ops = 0, exps = 0, compares = 0;
    for (const auto& e : fp.entries()) {
      EXPECT_EQ(e.arith, energy::Arith::floating);
      float_ops += e.count;
    }
    for (const auto& e : model.entries()) {
      EXPECT_EQ(e.arith, energy::Arith::integer);
      int_ops += e.count;
      if (e.kind == energy::OpKind::exp) exps += e.count;
      if (e.kind == energy::OpKind::compare) compares += e.count;
    }
    // The argmax compares once per word; per-product re-quantization adds one saturation per product.
    if (c.product_quant) {
      EXPECT_GT(compares, static_cast<uint64_t>(t.vocab) * static_cast<uint64_t>(c.dim));
    } else {
      EXPECT_EQ(compares, static_cast<uint64_t>(t.vocab));
    }
    EXPECT_GT(float_ops, 0u);
    EXPECT_GT(int_ops, 0u);
    EXPECT_EQ(exps, static_cast<uint64_t>(c.hops) * 50u);  // one exp per memory per hop (50 slots)
  }
};

// The model file of an untrained model of `cfg` with a five-word vocabulary.
io::ModelFile untrained_export(const mm::Config& cfg) {
  const std::vector<std::string> words = {"<nil>", "a", "b", "c", "d"};
  return runtime::export_memn2n(mm::Model(cfg, 5), words, R"({"task": "1"})");
}

// The operations of `kind` (of width `bits`; 0: any width) that the op counter counts for one
// inference of that model.
uint64_t counted_ops(const mm::Config& cfg, energy::OpKind kind, int bits = 0) {
  energy::OpTally model, fp;
  energy::counter_registry().at("memn2n")(untrained_export(cfg), model, fp);
  uint64_t n = 0;
  for (const auto& x : model.entries())
    if (x.kind == kind && (bits == 0 || x.bits == bits)) n += x.count;
  return n;
}

// A small 8-bit model: d 20, 2 hops, Q2.5 weights and activations.
mm::Config small_8bit(mm::Encoding encoding = mm::Encoding::bow) {
  mm::Config c;
  c.dim = 20;
  c.hops = 2;
  c.quantized = true;
  c.encoding = encoding;
  c.act_int_bits = c.weight_int_bits = 2;
  return c;
}

// The Q-MANN version of a small fixed-point model: weighted-Hamming addressing (score shift 1:
// with d = 20 the logits reach ±10 before the Q2.5 saturation) and per-hop weight formats.
mm::Config qmann_of(mm::Config c) {
  c.addressing = mm::Addressing::hamming;
  c.score_shift = 1;
  c.mq = true;
  return c;
}

TEST_F(Memn2nExport, QmannEightBitAgrees) {
  check(qmann_of(small_8bit()), 0.6);  // learns slowly at this size (chance is 5/6 wrong); agreement is the point
}

TEST_F(Memn2nExport, ConventionalEightBitAgrees) {
  check(small_8bit(), 0.3);
}

// A small Q-MANN binary model: d 24, 2 hops, binary weights, Q2.3 activations, sign addressing.
mm::Config small_qmann_binary() {
  mm::Config c;
  c.dim = 24;
  c.hops = 2;
  c.quantized = true;
  c.weight_bits = 1;
  c.addressing = mm::Addressing::hamming;
  c.act_bits = 6;
  c.act_int_bits = 2;
  return c;
}

TEST_F(Memn2nExport, BinaryVariantsAgree) {
  const mm::Config c = small_qmann_binary();
  check(c, 1.0);
  mm::Config b = c;
  b.addressing = mm::Addressing::dot;
  b.act_bits = 1;
  b.tying = mm::Tying::adjacent;
  check(b, 1.0);
}

// Memory vectors in the activation format: binary weights whose memories keep the α-scaled sums
// (Q-MANN binary's recipe), and 8-bit weights whose memories are re-quantized from the weight
// format Q2.5 to the activation format Q3.4. The counter prices the α scaling of binary rows.
TEST_F(Memn2nExport, MemoryInActivationFormatAgrees) {
  mm::Config c = small_qmann_binary();
  c.memory_act = true;
  check(c, 1.0);
  mm::Config e = small_8bit();
  e.act_int_bits = 3;
  e.memory_act = true;
  check(e, 0.6);

  auto multiplies16 = [](const mm::Config& cfg) { return counted_ops(cfg, energy::OpKind::multiply, 16); };
  mm::Config s = c;
  s.memory_act = false;
  EXPECT_EQ(multiplies16(s), 0u);
  EXPECT_EQ(multiplies16(c), 2u * 2u * 50u * 24u);  // A and C sums, 50 memories, d 24, 2 hops
}

// product_quant: every product re-quantized to 8 bits before it is summed (the Q-MANN authors'
// simulator); the runtime's 8-bit terms and sums equal the training graph's.
TEST_F(Memn2nExport, ProductQuantizationAgrees) {
  mm::Config c = small_8bit();
  c.product_quant = true;
  check(c, 0.5);
  mm::Config q = qmann_of(c);
  check(q, 0.7);
}

// Rounding to nearest (Config::round_nearest): weights, sums, products and the attention are
// rounded half away from zero in training and in the runtime alike.
TEST_F(Memn2nExport, RoundingToNearestAgrees) {
  mm::Config c = small_8bit();
  c.round_nearest = true;
  check(c, 0.3);
  mm::Config q = qmann_of(c);
  q.product_quant = true;
  check(q, 0.7);

  // The counter prices the rounding: per hop one add per logit, attention value, element of o and
  // of H u (the memory sums and u_1 drop no bits here); with product_quant also one per product
  // and per Hamming term.
  auto adds = [](const mm::Config& cfg) { return counted_ops(cfg, energy::OpKind::add); };
  mm::Config t = c;
  t.round_nearest = false;
  const uint64_t per_hop = 50 + 50 + 20 + 20;  // 50 memories, d 20
  EXPECT_EQ(adds(c) - adds(t), 2u * per_hop);
  mm::Config tq = q;
  tq.round_nearest = false;
  const uint64_t products = 50 * 20 + 20 * 50 + 20 * 20;  // addressing terms, read, H
  EXPECT_EQ(adds(q) - adds(tq), 2u * (per_hop + products) + 5u * 20u);  // + the answer layer's products
}

// The counter prices each sum at the width its worst case needs, and the softmax exp at the 16
// bits softmax_exp_q15 computes in. Untrained models have no statistics: 50 memories of 7 words
// plus the time word, 4-word questions.
TEST(Memn2nEnergy, CountsTheWidthsTheRuntimeComputesIn) {
  const mm::Config c = small_8bit();  // d 20, 2 hops
  using energy::OpKind;
  EXPECT_EQ(counted_ops(c, OpKind::exp, 16), 2u * 50u);
  EXPECT_EQ(counted_ops(c, OpKind::exp, 32), 0u);
  // Sums of 8-bit embedding rows need 16 bits, and so does u + o; the dot products accumulate
  // in 32.
  const uint64_t embedding = 4 * 20 + 2 * (2 * 50 * 8 * 20), u_plus_o = 2 * 20;
  EXPECT_EQ(counted_ops(c, OpKind::add, 16), embedding + u_plus_o);
  EXPECT_EQ(counted_ops(c, OpKind::add, 8), 0u);
  // Q-MANN: |a − b|, top − t and the accumulation of the terms (below 2^7 each, 20 of them) in 16.
  EXPECT_EQ(counted_ops(qmann_of(c), OpKind::add, 16), embedding + u_plus_o + 2u * (3 * 50 * 20));
  // Sums of ±1 rows fit 8 bits; so does u + o of sign activations.
  mm::Config b = c;
  b.weight_bits = 1;
  EXPECT_EQ(counted_ops(b, OpKind::add, 8), embedding);
  b.act_bits = 1;
  EXPECT_EQ(counted_ops(b, OpKind::add, 8), embedding + u_plus_o);
}

// The attention in Q0.7 (Config::attention_fraction) instead of the activation format, trained
// with the saturation mask: the runtime reads the format from the metadata and agrees.
TEST_F(Memn2nExport, AttentionInFractionFormatAgrees) {
  mm::Config c = small_8bit();
  c.attention_fraction = true;
  c.saturation_mask = true;
  EXPECT_EQ(c.attention_format().int_bits, 0);
  EXPECT_EQ(c.attention_format().frac_bits, 7);
  const auto meta = nlohmann::json::parse(untrained_export(c).metadata);
  EXPECT_EQ(meta.at("model").at("attention_format"), nlohmann::json::array({0, 7}));
  EXPECT_EQ(meta.at("model").at("act_format"), nlohmann::json::array({2, 5}));
  check(c, 0.3);
  mm::Config q = qmann_of(c);
  check(q, 0.7);
}

// The addressing logits in their own format (Config::logit_int_bits): the runtime reads it from
// the metadata, re-quantizes the logits to it and agrees; binary activations refuse it.
TEST_F(Memn2nExport, LogitFormatAgrees) {
  mm::Config c = small_8bit();
  c.saturation_mask = true;
  c.attention_fraction = true;
  c.logit_int_bits = 4;
  EXPECT_EQ(c.logit_format().int_bits, 4);
  EXPECT_EQ(c.logit_format().frac_bits, 3);
  const auto meta = nlohmann::json::parse(untrained_export(c).metadata);
  EXPECT_EQ(meta.at("model").at("logit_format"), nlohmann::json::array({4, 3}));
  EXPECT_EQ(meta.at("model").at("act_format"), nlohmann::json::array({2, 5}));
  check(c, 0.3);
  mm::Config q = qmann_of(c);
  check(q, 0.7);
  mm::Config qp = q;  // Hamming terms re-quantized to the activation format, sums to the logit format
  qp.product_quant = true;
  check(qp, 0.7);
  // Binary weights with 6-bit activations: the sign-agreement logits 2^-3·Σ±1 move in steps of
  // 1/4, so Q3.2 holds them exactly.
  mm::Config b = small_8bit();
  b.dim = 24;
  b.weight_bits = 1;
  b.addressing = mm::Addressing::hamming;
  b.act_bits = 6;
  b.logit_int_bits = 3;
  EXPECT_EQ(b.logit_format().frac_bits, 2);
  check(b, 1.0);
  // Without the option the logits use the activation format, and the metadata says so.
  mm::Config plain = small_8bit();
  EXPECT_EQ(nlohmann::json::parse(untrained_export(plain).metadata).at("model").at("logit_format"),
            nlohmann::json::array({2, 5}));
  mm::Config bad = small_8bit();
  bad.act_bits = 1;
  bad.logit_int_bits = 3;
  EXPECT_THROW(bad.validate(), Error);
  bad = small_8bit();
  bad.logit_int_bits = 8;
  EXPECT_THROW(bad.validate(), Error);
}

// Position encoding in quantized models: the weights are rounded to multiples of 2^-8, so the
// runtime's integer sums equal the training graph's and fixed-point models agree on every
// question.
TEST_F(Memn2nExport, PositionEncodingAgreesExactly) {
  const mm::Config c = small_8bit(mm::Encoding::position);
  check(c, 0.7, 1.0);  // PE learns this tiny task more slowly than a bag of words; agreement is the point
  mm::Config q = qmann_of(c);
  check(q, 0.7, 1.0);
  mm::Config qp = q;  // with every product and Hamming term re-quantized before it is summed
  qp.product_quant = true;
  check(qp, 0.7, 1.0);
  mm::Config b = c;  // binary weights: the runtime's mean-|W| scale is rounded to 2^-10
  b.dim = 24;
  b.weight_bits = 1;
  b.addressing = mm::Addressing::hamming;
  b.act_bits = 6;
  check(b, 1.0);
}

TEST(Memn2nPositionEncoding, WeightCodesRoundTheFloatWeights) {
  for (int64_t d : {1, 20, 50, 60})
    for (int64_t J = 1; J <= 14; ++J)
      for (int64_t j = 1; j <= J; ++j)
        for (int64_t k = 1; k <= d; ++k) {
          const double l = (1.0 - static_cast<double>(j) / J) - (static_cast<double>(k) / d) * (1.0 - 2.0 * j / J);
          const int32_t code = mm::position_weight_code(j, J, k, d);
          ASSERT_GE(code, 0);
          ASSERT_LE(code, 1 << mm::kPositionFracBits);
          ASSERT_LE(std::fabs(code / 256.0 - l), 0.5 / 256 + 1e-12) << j << " " << J << " " << k << " " << d;
        }
  // A one-word sentence weighs dimension k by k/d; the first word of a long one by about 1 − k/d.
  EXPECT_EQ(mm::position_weight_code(1, 1, 10, 20), 128);
  EXPECT_EQ(mm::position_weight_code(1, 1, 20, 20), 256);
  EXPECT_EQ(mm::position_weight_code(5, 10, 5, 10), 128);  // (5·5 + 25) / 100 = 0.5
  const std::vector<int32_t> codes = mm::position_weight_codes(3, 4);  // [j][k]
  ASSERT_EQ(codes.size(), 12u);
  for (int64_t j = 0; j < 3; ++j)
    for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(codes[static_cast<size_t>(j * 4 + k)], mm::position_weight_code(j + 1, 3, k + 1, 4));
  EXPECT_THROW(mm::position_weight_code(0, 3, 1, 4), Error);
  EXPECT_THROW(mm::position_weight_code(4, 3, 1, 4), Error);
  EXPECT_THROW(mm::position_weight_code(1, 3, 5, 4), Error);
}

TEST(Memn2nExportErrors, FloatModelsAndBadEncodingsAreRefused) {
  mm::Config c;
  c.dim = 4;
  c.hops = 1;
  mm::Model m(c, 5);
  const std::vector<std::string> w{"<null>", "<unk>", "a", "b", "c"};
  EXPECT_THROW(runtime::export_memn2n(m, w), Error);
  c.quantized = true;
  c.encoding = mm::Encoding::position;
  io::ModelFile pe = runtime::export_memn2n(mm::Model(c, 5), w);
  EXPECT_NO_THROW(runtime::Memn2nRuntime::from_model_file(pe, "pe.lbm"));
  auto with_model_key = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json meta = nlohmann::json::parse(pe.metadata);
    meta["model"][key] = value;
    io::ModelFile broken = pe;
    broken.metadata = meta.dump();
    return broken;
  };
  EXPECT_THROW(runtime::Memn2nRuntime::from_model_file(with_model_key("position_frac_bits", 7), "pe.lbm"), Error);
  EXPECT_THROW(runtime::Memn2nRuntime::from_model_file(with_model_key("encoding", "ngram"), "pe.lbm"), Error);
  io::ModelFile f;
  f.metadata = R"({"model": {"kind": "feedforward"}})";
  EXPECT_THROW(runtime::Memn2nRuntime::from_model_file(f, "x.lbm"), Error);
}

// train -> export -> eval through the command-line program, on generated task files.
class Memn2nCli : public testing::TempDirTest {};

TEST_F(Memn2nCli, TrainExportEvalExplain) {
  const fs::path exe = fs::path(LOWBIT_SOURCE_DIR) / "build" / "lowbit";
  if (!fs::exists(exe)) GTEST_SKIP() << "no " << exe.string();
  testing::write_generated_babi(dir_, 1, 600, 200, 4);
  const std::string recipe = (fs::path(LOWBIT_SOURCE_DIR) / "recipes" / "babi-tiny-test.json").string();
  const std::string d = dir_.string();
  auto sh = [&](const std::string& cmd) { return std::system((cmd + " > " + d + "/log.txt 2>&1").c_str()); };
  ASSERT_EQ(sh(exe.string() + " train --recipe " + recipe + " --out " + d + "/run --data " + d + " --task 1 --epochs 4 --runs 2"), 0);
  EXPECT_TRUE(fs::exists(dir_ / "run" / "task-01" / "run-2" / "best.lbm"));
  EXPECT_TRUE(fs::exists(dir_ / "run" / "results.json"));
  ASSERT_EQ(sh(exe.string() + " export " + d + "/run/task-01/run-1 --out " + d + "/m.lbm --compare --data " + d), 0);
  ASSERT_EQ(sh(exe.string() + " eval " + d + "/m.lbm --data " + d + " --json"), 0);
  std::ifstream log(dir_ / "log.txt");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"questions\": 200"), std::string::npos) << text;
  ASSERT_EQ(sh(exe.string() + " explain " + d + "/m.lbm --data " + d + " --question 2 --png " + d + "/a.png"), 0);
  EXPECT_TRUE(fs::exists(dir_ / "a.png"));
  EXPECT_NE(sh(exe.string() + " train --recipe " + recipe + " --out " + d + "/bad --data " + d + " --task 21"), 0);
  EXPECT_NE(sh(exe.string() + " train --recipe " + recipe + " --out " + d + "/bad --data " + d + " --task 2-1"), 0);
  // --resume keeps the two finished runs and trains a third; results.json then names the run
  // with the lowest validation error.
  const auto run1_time = fs::last_write_time(dir_ / "run" / "task-01" / "run-1" / "best.lbm");
  ASSERT_EQ(sh(exe.string() + " train --recipe " + recipe + " --out " + d + "/run --data " + d +
               " --task 1 --epochs 4 --runs 3 --resume"), 0);
  {
    std::ifstream f(dir_ / "log.txt");
    const std::string out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_NE(out.find("task 1 run 1: kept from"), std::string::npos) << out;
    EXPECT_NE(out.find("task 1 run 2: kept from"), std::string::npos) << out;
    EXPECT_EQ(out.find("task 1 run 3: kept from"), std::string::npos) << out;
  }
  EXPECT_EQ(fs::last_write_time(dir_ / "run" / "task-01" / "run-1" / "best.lbm"), run1_time);
  EXPECT_TRUE(fs::exists(dir_ / "run" / "task-01" / "run-3" / "best.lbm"));
  {
    std::ifstream f(dir_ / "run" / "results.json");
    const auto r = nlohmann::json::parse(f);
    const auto& t = r.at("tasks").at(0);
    ASSERT_EQ(t.at("runs").size(), 3u);
    double best_valid = 2;
    int best_run = 0;
    for (const auto& run : t.at("runs"))
      if (run.at("valid_error").get<double>() < best_valid) {
        best_valid = run.at("valid_error").get<double>();
        best_run = run.at("run").get<int>();
      }
    EXPECT_EQ(t.at("best_run").get<int>(), best_run);
    EXPECT_EQ(t.at("best_test_error").get<double>(),
              t.at("runs").at(static_cast<std::size_t>(best_run - 1)).at("test_error").get<double>());
  }
  // A different configuration is refused rather than mixed with the finished runs.
  EXPECT_NE(sh(exe.string() + " train --recipe " + recipe + " --out " + d + "/run --data " + d +
               " --task 1 --epochs 5 --runs 3 --resume"), 0);
  EXPECT_NE(sh(exe.string() + " eval " + d + "/m.lbm --data " + d + " --task 2"), 0);  // no task-2 files
  // A task list trains each listed task into its own folder.
  testing::write_generated_babi(dir_, 2, 300, 100, 6);
  ASSERT_EQ(sh(exe.string() + " train --recipe " + recipe + " --out " + d + "/two --data " + d +
               " --task 2,1 --epochs 1"), 0);
  {
    std::ifstream f(dir_ / "two" / "results.json");
    const auto r = nlohmann::json::parse(f);
    ASSERT_EQ(r.at("tasks").size(), 2u);
    EXPECT_EQ(r.at("tasks").at(0).at("task"), "2");
    EXPECT_EQ(r.at("tasks").at(1).at("task"), "1");
    EXPECT_TRUE(fs::exists(dir_ / "two" / "task-02" / "run-1" / "best.lbm"));
  }
}

}  // namespace
}  // namespace lowbit
