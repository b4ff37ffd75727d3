// MemN2N: finite-difference gradient checks of the hand-written backward pass, the Q-MANN
// similarity against a bit-level reference, and short training runs on generated stories.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/data/babi.h"
#include "lowbit/nn/memn2n.h"
#include "memn2n_test_util.h"
#include "test_util.h"

namespace lowbit::nn::memn2n {
namespace {

Example random_example(std::mt19937& rng, int64_t V, int sentences) {
  std::uniform_int_distribution<int32_t> word(2, static_cast<int32_t>(V) - 1);
  std::uniform_int_distribution<int> len(1, 4);
  Example ex;
  ex.offsets.push_back(0);
  for (int s = 0; s < sentences; ++s) {
    const int L = len(rng);
    for (int j = 0; j < L; ++j) ex.words.push_back(word(rng));
    ex.offsets.push_back(static_cast<int32_t>(ex.words.size()));
  }
  for (int j = 0; j < 3; ++j) ex.query.push_back(word(rng));
  ex.answer = word(rng);
  return ex;
}

// Central differences of the loss against the backward pass. `eps` is small where the function has
// kinks (the Hamming surrogate's |a − b|).
void gradient_check(const Config& cfg, bool linear, bool shifted, float eps = 1e-2f) {
  const int64_t V = 11;
  Model model(cfg, V);
  model.init_normal(0.3f, 7);
  std::mt19937 rng(3);
  const Example ex = random_example(rng, V, 4);
  std::vector<int32_t> shift;
  if (shifted) shift = {2, 1, 1, 0};
  std::vector<std::vector<float>> grads;
  for (const Matrix& m : model.matrices()) grads.emplace_back(m.w.size(), 0.0f);
  forward_backward(model, quantize_weights(model), ex, linear, shift, &grads, nullptr);
  int checked = 0;
  for (size_t mi = 0; mi < model.matrices().size(); ++mi) {
    Matrix& m = model.matrices()[mi];
    std::uniform_int_distribution<size_t> pick(0, m.w.size() - 1);
    for (int t = 0; t < 25; ++t) {
      const size_t i = pick(rng);
      if (mi != static_cast<size_t>(model.h_index()) && i < static_cast<size_t>(m.cols)) continue;  // null row
      const float keep = m.w[i];
      m.w[i] = keep + eps;
      const double lp = forward_backward(model, quantize_weights(model), ex, linear, shift, nullptr, nullptr);
      m.w[i] = keep - eps;
      const double lm = forward_backward(model, quantize_weights(model), ex, linear, shift, nullptr, nullptr);
      m.w[i] = keep;
      const double fd = (lp - lm) / (2.0 * eps);
      const double an = grads[mi][i];
      EXPECT_NEAR(an, fd, 2e-3 + 2e-2 * std::fabs(fd)) << m.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

TEST(Memn2nGrad, LayerwiseBagOfWordsTemporal) {
  Config c;
  c.dim = 6;
  c.hops = 3;
  c.memory_size = 8;
  gradient_check(c, false, false);
}

TEST(Memn2nGrad, AdjacentPositionEncodingRandomTime) {
  Config c;
  c.dim = 5;
  c.hops = 2;
  c.memory_size = 8;
  c.tying = Tying::adjacent;
  c.encoding = Encoding::position;
  gradient_check(c, false, true);
}

TEST(Memn2nGrad, LinearStartWithoutTemporal) {
  Config c;
  c.dim = 4;
  c.hops = 1;
  c.temporal = false;
  gradient_check(c, true, false);
}

TEST(Memn2nGrad, SmoothHammingSurrogate) {
  Config c;
  c.dim = 6;
  c.hops = 2;
  c.memory_size = 8;
  c.addressing = Addressing::hamming;
  c.act_bits = 8;
  c.act_int_bits = 1;
  c.score_shift = 0;
  c.hamming_sign_grad = false;  // the sign factor's straight-through term is not a derivative
  gradient_check(c, false, false, 1e-3f);
}

// Binary addressing's straight-through window: a window at or above every activation's magnitude
// (Q2.3 tops out at 3.875) changes nothing; a narrow one blocks part of the gradient of A, which
// reaches A only through the addressing (layer-wise tying), and passes nothing where it was zero.
TEST(Memn2nGrad, SignWindowOfBinaryAddressing) {
  Config c;
  c.dim = 8;
  c.hops = 2;
  c.memory_size = 8;
  c.addressing = Addressing::hamming;
  c.quantized = true;
  c.weight_bits = 1;
  c.weight_int_bits = 0;
  c.act_bits = 6;
  c.act_int_bits = 2;
  c.mq = true;
  const int64_t V = 11;
  std::mt19937 rng(5);
  std::vector<Example> exs;
  for (int i = 0; i < 6; ++i) exs.push_back(random_example(rng, V, 5));
  auto grads_of = [&](float window) {
    Config cw = c;
    cw.sign_ste_window = window;
    Model model(cw, V);
    model.init_normal(0.5f, 9);
    std::vector<std::vector<float>> g;
    for (const Matrix& m : model.matrices()) g.emplace_back(m.w.size(), 0.0f);
    for (const Example& ex : exs) forward_backward(model, quantize_weights(model), ex, false, {}, &g, nullptr);
    return g;
  };
  const auto off = grads_of(0.0f), wide = grads_of(4.0f), narrow = grads_of(0.2f);
  EXPECT_EQ(off, wide);
  Model shape(c, V);
  const auto a = static_cast<size_t>(shape.a_index(0));
  int64_t nonzero_off = 0, nonzero_narrow = 0, blocked = 0;
  for (size_t i = 0; i < off[a].size(); ++i) {
    nonzero_off += off[a][i] != 0.0f;
    nonzero_narrow += narrow[a][i] != 0.0f;
    if (off[a][i] == 0.0f) {
      EXPECT_EQ(narrow[a][i], 0.0f) << "A[" << i << "]";
    }
    blocked += off[a][i] != narrow[a][i];
  }
  EXPECT_GT(nonzero_off, 20);
  EXPECT_GT(blocked, 0);
  EXPECT_LT(nonzero_narrow, nonzero_off);
  // The window is validated.
  Config bad = c;
  bad.sign_ste_window = -1.0f;
  EXPECT_THROW(bad.validate(), Error);
}

// Bit-level reference of the Q-MANN kernel (qmann.md §5): 32-bit sign-magnitude words with
// 31 − I fraction bits, common part removed, bits 30..(31 − (n − 1)) compared with weights 2^−k.
double hamming_bits(double a, double b, int I, int n) {
  const auto mag = [&](double x) { return static_cast<uint64_t>(std::floor(std::fabs(x) * std::ldexp(1.0, 31 - I))); };
  uint64_t A = mag(a), B = mag(b);
  const bool sa = a < 0, sb = b < 0;
  if (sa == sb) {
    const uint64_t m = std::min(A, B);
    A -= m;
    B -= m;
  } else if (A >= B) {
    A += B;
    B = 0;
  } else {
    B += A;
    A = 0;
  }
  double s = 0;
  for (int k = 1; k <= n - 1; ++k) {
    const int bit = 31 - k;
    if (((A >> bit) & 1u) == ((B >> bit) & 1u)) s += std::ldexp(1.0, -k);
  }
  return sa == sb ? s : -s;
}

TEST(Memn2nHamming, ClosedFormMatchesTheBitLevelKernel) {
  std::mt19937 rng(11);
  for (int I = 0; I <= 3; ++I) {
    const quant::FixedFormat f{I, 7 - I};
    std::uniform_int_distribution<int> code(-((1 << 7) - 1), (1 << 7) - 1);
    int agree = 0, total = 0;
    for (int t = 0; t < 4000; ++t) {
      const float a = std::ldexp(static_cast<float>(code(rng)), -f.frac_bits);
      const float b = std::ldexp(static_cast<float>(code(rng)), -f.frac_bits);
      if (std::fabs(a - b) >= std::ldexp(1.0f, I)) continue;  // the closed form's stated range
      ++total;
      const double ref = hamming_bits(a, b, I, 8);
      agree += std::fabs(ref - hamming_similarity(a, b, f)) <= std::ldexp(1.0, -7) + 1e-9;
    }
    EXPECT_EQ(agree, total) << "I=" << I;
    EXPECT_GT(total, 1000);
  }
  // Bounded in [−1, 1], largest for equal values, negative for opposite signs.
  const quant::FixedFormat f{2, 5};
  EXPECT_FLOAT_EQ(hamming_similarity(1.5f, 1.5f, f), 1.0f - 1.0f / 128);
  EXPECT_LT(hamming_similarity(1.5f, 0.5f, f), hamming_similarity(1.5f, 1.25f, f));
  EXPECT_LT(hamming_similarity(0.25f, -0.25f, f), 0.0f);
}

class Memn2nTrain : public lowbit::testing::TempDirTest {
 protected:
  // Generated task-1 stories in dir_, split and encoded as the trainer takes them.
  struct Sets {
    int64_t vocab = 0;
    std::vector<Example> train, valid, test;
  };
  Sets generated(int train_q, int test_q) {
    lowbit::testing::write_generated_babi(dir_, 1, train_q, test_q, 5);
    const auto all = data::load_babi_task(dir_.string(), 1, data::BabiSplit::train);
    const auto test = data::load_babi_task(dir_.string(), 1, data::BabiSplit::test);
    const data::BabiTrainValid split = data::split_babi_validation(all);
    const data::BabiVocabulary vocab = data::BabiVocabulary::build(split.train);
    return {vocab.size(), encode(split.train, vocab, 50), encode(split.valid, vocab, 50), encode(test, vocab, 50)};
  }
};

TEST_F(Memn2nTrain, FloatModelLearnsGeneratedStories) {
  const Sets g = generated(600, 200);
  const auto &tr = g.train, &va = g.valid, &te = g.test;
  Config c;
  c.dim = 20;
  c.hops = 2;
  TrainConfig tc;
  tc.epochs = 25;
  tc.lr = 0.5;
  tc.lr_halve_every = 10;
  tc.shuffle = true;
  const TrainOutcome r = train(c, tc, g.vocab, tr, va, te);
  EXPECT_LT(r.best_test_error, 0.15);
  EXPECT_EQ(evaluate(r.best, te).error, r.best_test_error);
}

TEST_F(Memn2nTrain, RunOfOnlyLinearStartEpochsReportsItsLastEpoch) {
  // When every epoch is a linear-start epoch no epoch qualifies as "best"; the last one stands
  // in, with its own validation and test errors (not the initial 100 %).
  const Sets g = generated(200, 100);
  const auto &tr = g.train, &va = g.valid, &te = g.test;
  Config c;
  c.dim = 10;
  c.hops = 1;
  TrainConfig tc;
  tc.epochs = 2;
  tc.linear_start_epochs = 5;
  const TrainOutcome r = train(c, tc, g.vocab, tr, va, te);
  EXPECT_EQ(r.best_epoch, 2);
  EXPECT_EQ(r.best_test_error, r.final_test_error);
  EXPECT_EQ(r.best_valid_error, evaluate(r.best, va).error);
  EXPECT_EQ(r.best_test_error, evaluate(r.best, te).error);
}

TEST(Memn2nData, UnknownTestWordsBecomeUnkAndLongStoriesKeepTheLast50) {
  std::string text;
  for (int i = 1; i <= 60; ++i) text += std::to_string(i) + " Mary went to room" + std::to_string(i) + ".\n";
  text += "61 Where is Zed?\troom60\t60\n";
  std::istringstream in(text);
  const auto ex = data::parse_babi(in, "t.txt");
  std::istringstream in2("1 Mary went to room59.\n2 Where is Mary?\troom59\t1\n");
  const auto vocab = data::BabiVocabulary::build(data::parse_babi(in2, "v.txt"));
  const auto enc = encode(ex, vocab, 50);
  ASSERT_EQ(enc.size(), 1u);
  EXPECT_EQ(enc[0].sentences(), 50);
  EXPECT_EQ(enc[0].query.back(), data::BabiVocabulary::kUnknown);  // "zed"
  EXPECT_EQ(enc[0].answer, data::BabiVocabulary::kUnknown);       // "room60"
  EXPECT_EQ(enc[0].words[3], data::BabiVocabulary::kUnknown);  // "room11" (sentence 11 is the oldest kept)
  // The last memory is "mary went to room60": room60 unknown, mary known.
  EXPECT_EQ(enc[0].words[static_cast<size_t>(enc[0].offsets[49])], vocab.id("mary"));
  EXPECT_NE(vocab.id("mary"), data::BabiVocabulary::kUnknown);
}

// product_quant: with Q4.3 weights every product below 2^-3 truncates to 0 before the sum. With
// every weight 1/8, one-word sentences and a one-word question, each product of the model is
// 1/64 or 1/16, so its logits are all zero, while the same model with exact sums has logits of
// 1/4. Binary formats are refused.
TEST(Memn2nProductQuant, SmallProductsVanishBeforeTheSum) {
  Config c;
  c.dim = 8;
  c.hops = 1;
  c.quantized = true;
  c.act_int_bits = c.weight_int_bits = 4;  // Q4.3: step 1/8
  const int64_t V = 11;
  Model model(c, V);
  for (Matrix& m : model.matrices()) std::fill(m.w.begin(), m.w.end(), 0.125f);
  model.zero_null_rows();
  Example ex;
  ex.words = {2, 3, 4};
  ex.offsets = {0, 1, 2, 3};
  ex.query = {5};
  ex.answer = 6;
  std::vector<float> exact, per_product;
  forward_backward(model, quantize_weights(model), ex, false, {}, nullptr, nullptr, nullptr, &exact);
  Config pc = c;
  pc.product_quant = true;
  Model pmodel(pc, V);
  pmodel.matrices() = model.matrices();
  forward_backward(pmodel, quantize_weights(pmodel), ex, false, {}, nullptr, nullptr, nullptr, &per_product);
  ASSERT_EQ(exact.size(), per_product.size());
  for (float v : per_product) EXPECT_EQ(v, 0.0f);
  for (size_t v = 1; v < exact.size(); ++v) EXPECT_EQ(exact[v], 0.25f) << v;  // row 0 is the null word's

  Config bad = pc;
  bad.weight_bits = 1;
  EXPECT_THROW(bad.validate(), Error);
}

// The saturation mask (Config::saturation_mask) cancels the gradient of saturated re-quantized
// values only. Small weights saturate nothing, so the gradients equal the plain straight-through
// ones bit for bit. With the question words' rows of B large enough that every element of
// u_1 = q(Σ B[q_j]) saturates, B (which reaches the loss only through u_1) gets no gradient with
// the mask, and some without it; the other matrices still get gradients.
TEST(Memn2nSaturationMask, CancelsTheGradientOfSaturatedValuesOnly) {
  Config c;
  c.dim = 6;
  c.hops = 2;
  c.memory_size = 8;
  c.quantized = true;
  c.act_int_bits = c.weight_int_bits = 2;  // Q2.5: |x| <= 3.96875
  const int64_t V = 11;
  std::mt19937 rng(5);
  const Example ex = random_example(rng, V, 4);
  Config cm = c;
  cm.saturation_mask = true;
  auto grads_of = [&](const Config& cfg, const Model& weights) {
    Model model(cfg, V);
    model.matrices() = weights.matrices();
    std::vector<std::vector<float>> g;
    for (const Matrix& m : model.matrices()) g.emplace_back(m.w.size(), 0.0f);
    forward_backward(model, quantize_weights(model), ex, false, {}, &g, nullptr);
    return g;
  };
  Model small(c, V);
  small.init_normal(0.05f, 3);
  EXPECT_EQ(grads_of(c, small), grads_of(cm, small));

  Model big = small;
  std::vector<float>& B = big.matrices()[static_cast<size_t>(big.b_index())].w;
  for (int32_t w : ex.query)
    for (int64_t j = 0; j < c.dim; ++j) B[static_cast<size_t>(w * c.dim + j)] = j % 2 ? 3.5f : -3.5f;
  const auto plain = grads_of(c, big), masked = grads_of(cm, big);
  auto abs_sum = [](const std::vector<float>& v) {
    double t = 0;
    for (float x : v) t += std::fabs(x);
    return t;
  };
  const auto b = static_cast<size_t>(big.b_index()), w = static_cast<size_t>(big.w_index());
  EXPECT_GT(abs_sum(plain[b]), 0.0);
  EXPECT_EQ(abs_sum(masked[b]), 0.0);
  EXPECT_GT(abs_sum(masked[w]), 0.0);
  EXPECT_GT(abs_sum(masked[static_cast<size_t>(big.h_index())]), 0.0);
}

// quantization.memory "activation": with binary weights the memory vectors keep the α-scaled
// sums of their rows in the activation format instead of their signs, so the read o = Σ p_i c_i
// (and with it the answer) changes while the sign-agreement addressing does not; the option is
// refused for float models and with product_quant, and the recipe key is checked.
TEST_F(Memn2nTrain, MemoryInTheActivationFormat) {
  Config c;
  c.dim = 16;
  c.hops = 1;
  c.quantized = true;
  c.weight_bits = 1;
  c.act_bits = 6;
  c.act_int_bits = 2;
  c.addressing = Addressing::hamming;
  c.tying = Tying::adjacent;
  const int64_t V = 11;
  Model model(c, V);
  model.init_normal(0.5f, 3);
  std::mt19937 rng(5);
  const Example ex = random_example(rng, V, 5);
  std::vector<HopView> hs, ha;
  std::vector<float> ls, la;
  forward_backward(model, quantize_weights(model), ex, false, {}, nullptr, nullptr, &hs, &ls);
  Config ca = c;
  ca.memory_act = true;
  EXPECT_EQ(ca.memory_format(0).int_bits, 2);
  EXPECT_EQ(ca.memory_format(0).frac_bits, 3);
  EXPECT_TRUE(c.memory_format(0).is_binary());
  Model amodel(ca, V);
  amodel.matrices() = model.matrices();
  forward_backward(amodel, quantize_weights(amodel), ex, false, {}, nullptr, nullptr, &ha, &la);
  ASSERT_EQ(hs.size(), 1u);
  ASSERT_EQ(ha.size(), 1u);
  EXPECT_EQ(hs[0].attention, ha[0].attention);  // addressing uses the signs either way
  EXPECT_NE(ls, la);                            // the read does not
  // The straight-through gradient reaches C through the read.
  std::vector<std::vector<float>> grads;
  for (const Matrix& m : amodel.matrices()) grads.emplace_back(m.w.size(), 0.0f);
  forward_backward(amodel, quantize_weights(amodel), ex, false, {}, &grads, nullptr);
  int64_t nonzero = 0;
  for (float g : grads[static_cast<size_t>(amodel.c_index(0))]) nonzero += g != 0.0f;
  EXPECT_GT(nonzero, 16);

  Config bad = ca;
  bad.quantized = false;
  EXPECT_THROW(bad.validate(), Error);
  bad = ca;
  bad.weight_bits = bad.act_bits = 8;
  bad.product_quant = true;
  EXPECT_THROW(bad.validate(), Error);

  const std::string base = std::string(LOWBIT_SOURCE_DIR) + "/recipes/babi-qmann-8bit.json";
  std::ifstream in(base);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const std::string key = "\"mq\": true";
  ASSERT_NE(text.find(key), std::string::npos);
  auto with_memory = [&](const std::string& value) {
    std::string t = text;
    t.replace(t.find(key), key.size(), key + ", \"memory\": " + value);
    const std::string path = (dir_ / "r.json").string();
    std::ofstream(path) << t;
    return path;
  };
  EXPECT_TRUE(load_recipe(with_memory("\"activation\"")).model.memory_act);
  EXPECT_FALSE(load_recipe(with_memory("\"weight\"")).model.memory_act);
  EXPECT_THROW(load_recipe(with_memory("\"bits\"")), Error);
  // The other quantization keys: the saturation mask and the rounding mode.
  auto with_key = [&](const std::string& more) {
    std::string t = text;
    t.replace(t.find(key), key.size(), key + ", " + more);
    const std::string path = (dir_ / "r2.json").string();
    std::ofstream(path) << t;
    return path;
  };
  EXPECT_TRUE(load_recipe(with_key("\"saturation_mask\": true")).model.saturation_mask);
  EXPECT_FALSE(load_recipe(base).model.saturation_mask);
  EXPECT_TRUE(load_recipe(with_key("\"rounding\": \"nearest\"")).model.round_nearest);
  EXPECT_FALSE(load_recipe(with_key("\"rounding\": \"truncate\"")).model.round_nearest);
  EXPECT_THROW(load_recipe(with_key("\"rounding\": \"up\"")), Error);
  EXPECT_THROW(load_recipe(with_key("\"saturation_mask\": 2")), Error);
  EXPECT_TRUE(load_recipe(with_key("\"attention\": \"fraction\"")).model.attention_fraction);
  EXPECT_FALSE(load_recipe(with_key("\"attention\": \"activation\"")).model.attention_fraction);
  EXPECT_THROW(load_recipe(with_key("\"attention\": \"q07\"")), Error);
  // The logit format: base recipe Q2.5 activations; logit_int_bits 3 gives Q3.4 logits.
  const Config lg = load_recipe(with_key("\"logit_int_bits\": 3")).model;
  EXPECT_EQ(lg.logit_format().int_bits, 3);
  EXPECT_EQ(lg.logit_format().frac_bits, 4);
  EXPECT_EQ(load_recipe(base).model.logit_format().int_bits, load_recipe(base).model.act_format().int_bits);
  EXPECT_THROW(load_recipe(with_key("\"logit_int_bits\": 8")), Error);
  EXPECT_THROW(load_recipe(with_key("\"logit_int_bits\": -2")), Error);
  EXPECT_THROW(load_recipe(with_key("\"logit_int_bits\": \"wide\"")), Error);
}

TEST(Memn2nRecipes, EveryBundledRecipeLoadsWithItsConfiguration) {
  const std::string dir = std::string(LOWBIT_SOURCE_DIR) + "/recipes/";
  for (const char* name : {"babi-memn2n-float", "babi-memn2n-pe", "babi-memn2n-pe-lw", "babi-conv-8bit",
                           "babi-conv-binary", "babi-qmann-8bit", "babi-qmann-binary", "babi-conv-8bit-pq",
                           "babi-qmann-8bit-pq", "babi-conv-binary-act6", "babi-conv-8bit-sat", "babi-qmann-8bit-sat",
                           "babi-qmann-binary-sat", "babi-qmann-8bit-sat-logit",
                           "babi-conv-8bit-sat-logit"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(is_memn2n_recipe(dir + name + ".json"));
    const Recipe r = load_recipe(dir + name + ".json");
    EXPECT_EQ(r.name, name);
    EXPECT_EQ(r.model.hops, 3);
    EXPECT_EQ(r.model.addressing, std::string(name).find("qmann") != std::string::npos ? Addressing::hamming
                                                                                      : Addressing::dot);
    EXPECT_EQ(r.model.product_quant, std::string(name).ends_with("-pq"));
    // Q-MANN binary keeps its memory vectors in the activation format (the authors' binary mode),
    // and so does its same-width conventional baseline.
    EXPECT_EQ(r.model.memory_act,
              std::string(name).starts_with("babi-qmann-binary") || std::string(name).ends_with("-act6"));
    // The -sat recipes train with the saturation mask and keep the attention in all-fraction bits;
    // -logit keeps the addressing logits in Q3.4.
    const bool sat = std::string(name).find("-sat") != std::string::npos;
    EXPECT_EQ(r.model.saturation_mask, sat);
    EXPECT_EQ(r.model.attention_fraction, sat);
    EXPECT_EQ(r.model.logit_int_bits, std::string(name).ends_with("-logit") ? 3 : -1);
  }
  // The same-width baseline is the conventional binary recipe with Q-MANN binary's activation and
  // memory formats.
  {
    Recipe a = load_recipe(dir + "babi-conv-binary.json"), b = load_recipe(dir + "babi-conv-binary-act6.json");
    const Recipe q = load_recipe(dir + "babi-qmann-binary.json");
    EXPECT_EQ(b.model.act_bits, q.model.act_bits);
    EXPECT_EQ(b.model.act_int_bits, q.model.act_int_bits);
    b.model.act_bits = a.model.act_bits;
    b.model.act_int_bits = a.model.act_int_bits;
    b.model.memory_act = a.model.memory_act;
    EXPECT_EQ(config_json(a.model), config_json(b.model));
    EXPECT_EQ(a.training.epochs, b.training.epochs);
  }
  // The per-product pairs differ from the 8-bit recipes only in product_quant and in I (each
  // chosen by its own validation sweep).
  for (const char* base : {"babi-conv-8bit", "babi-qmann-8bit"}) {
    Recipe a = load_recipe(dir + base + ".json"), b = load_recipe(dir + base + "-pq.json");
    b.model.product_quant = false;
    b.model.act_int_bits = a.model.act_int_bits;
    b.model.weight_int_bits = a.model.weight_int_bits;
    EXPECT_EQ(config_json(a.model), config_json(b.model)) << base;
  }
  // The -sat recipes differ from their base recipes only in those two keys, the name and, for
  // the 8-bit pair, I (each from its own validation sweep).
  for (const char* base : {"babi-conv-8bit", "babi-qmann-8bit", "babi-qmann-binary"}) {
    const Recipe a = load_recipe(dir + base + ".json");
    Recipe b = load_recipe(dir + base + "-sat.json");
    b.model.saturation_mask = false;
    b.model.attention_fraction = false;
    b.model.act_int_bits = a.model.act_int_bits;
    b.model.weight_int_bits = a.model.weight_int_bits;
    EXPECT_EQ(config_json(a.model), config_json(b.model)) << base;
    EXPECT_EQ(a.training.epochs, b.training.epochs) << base;
    EXPECT_EQ(a.training.lr, b.training.lr) << base;
    EXPECT_EQ(a.training.early_stopping, b.training.early_stopping) << base;
  }
  // The -logit recipes are the -sat recipes with the logits in Q3.4 and their own I.
  for (const auto& [base, act_i] : {std::pair<const char*, int>{"babi-qmann-8bit", 0}, {"babi-conv-8bit", 2}}) {
    SCOPED_TRACE(base);
    const Recipe a = load_recipe(dir + base + "-sat.json");
    Recipe b = load_recipe(dir + base + "-sat-logit.json");
    EXPECT_EQ(b.model.logit_format().int_bits, 3);
    EXPECT_EQ(b.model.logit_format().frac_bits, 4);
    EXPECT_EQ(b.model.act_format().int_bits, act_i);
    b.model.logit_int_bits = a.model.logit_int_bits;
    b.model.act_int_bits = a.model.act_int_bits;
    b.model.weight_int_bits = a.model.weight_int_bits;
    EXPECT_EQ(config_json(a.model), config_json(b.model));
    EXPECT_EQ(a.training.epochs, b.training.epochs);
    EXPECT_EQ(a.training.lr, b.training.lr);
  }
  // The float baseline of Sukhbaatar et al.: position encoding, linear start, random noise in time.
  const Recipe pe = load_recipe(dir + "babi-memn2n-pe.json");
  EXPECT_EQ(pe.model.encoding, Encoding::position);
  EXPECT_EQ(pe.model.tying, Tying::adjacent);
  EXPECT_GT(pe.training.linear_start_epochs, 0);
  EXPECT_GT(pe.training.random_time, 0.0);
  // The same with layer-wise tying (one A and C, H between the hops).
  const Recipe lw = load_recipe(dir + "babi-memn2n-pe-lw.json");
  EXPECT_EQ(lw.model.encoding, Encoding::position);
  EXPECT_EQ(lw.model.tying, Tying::layerwise);
  EXPECT_EQ(lw.model.dim, pe.model.dim);
  EXPECT_GT(lw.training.linear_start_epochs, 0);
  EXPECT_GT(lw.training.random_time, 0.0);
}

}  // namespace
}  // namespace lowbit::nn::memn2n
