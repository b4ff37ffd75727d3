// Recurrent language models: training on a generated PTB-format corpus lowers perplexity,
// metrics and files, resume equals an uninterrupted run, recipe and data errors, QNN weights on
// their grid, the float lstm_lm export against a plain re-implementation, and the tiny recipe
// on the real PTB when it is available.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/data/ptb.h"
#include "lowbit/io/model_file.h"
#include "lowbit/nn/lm.h"
#include "lowbit/runtime/export_lm.h"
#include "test_util.h"

namespace lowbit::nn {
namespace {
namespace fs = std::filesystem;

// A corpus with structure a small model can learn: sentences walk a fixed cycle of words, each
// starting at a pseudo-random place and running 3..8 words.
void write_corpus(const fs::path& dir, int sentences_train = 120) {
  const std::vector<std::string> words{"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "now"};
  auto part = [&](const std::string& name, int n, unsigned seed) {
    std::ofstream out(dir / name);
    unsigned s = seed;
    for (int i = 0; i < n; ++i) {
      s = s * 1103515245u + 12345u;
      const std::size_t start = (s >> 8) % words.size();
      const int len = 3 + static_cast<int>((s >> 16) % 6);
      for (int k = 0; k < len; ++k) out << ' ' << words[(start + k) % words.size()];
      out << " \n";
    }
  };
  part("ptb.train.txt", sentences_train, 1);
  part("ptb.valid.txt", 30, 2);
  part("ptb.test.txt", 30, 3);
}

std::string tiny_recipe(const std::string& data, const std::string& extra_model = "", const std::string& layer =
                                                                                                  R"({"type": "lstm", "units": 12})",
                        int epochs = 3, double dropout = 0.0) {
  std::ostringstream os;
  os << R"({"name": "lm-test", "task": "language_model", "data": {"dataset": "ptb", "path": ")" << data
     << R"("}, "model": {"embedding_dim": 10, "dropout": )" << dropout << R"(, "layers": [)" << layer << "]" << extra_model
     << R"(}, "optimizer": {"type": "sgd", "lr": 5, "schedule": "plateau", "decay": 2, "clip_grad_norm": 1.0},)"
     << R"( "training": {"epochs": )" << epochs << R"(, "batch_size": 4, "bptt": 8, "eval_batch_size": 2, "seed": 3}})";
  return os.str();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

class LmTrain : public lowbit::testing::TempDirTest {};

TEST_F(LmTrain, LowersPerplexityAndWritesFiles) {
  write_corpus(dir_);
  const LmRecipe r = parse_lm_recipe(tiny_recipe(dir_.string()), "test");
  LmTrainOptions o;
  o.out_dir = (dir_ / "run").string();
  const LmTrainResult res = train_lm(r, o);
  ASSERT_EQ(res.history.size(), 3u);
  // 12 words + <eos>: a uniform guess is perplexity 13; the cycle is nearly deterministic.
  EXPECT_LT(res.history.back().valid_perplexity, 6.0);
  EXPECT_LT(res.history.back().train_perplexity, res.history.front().train_perplexity);
  EXPECT_NEAR(res.history[0].train_perplexity, std::exp(res.history[0].train_loss), 1e-9);
  for (const char* f : {"run.json", "metrics.jsonl", "best.lbm", "checkpoint.lbm"})
    EXPECT_TRUE(fs::exists(dir_ / "run" / f)) << f;
  const auto lines = lines_of(dir_ / "run" / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  for (const char* k : {"\"epoch\"", "\"train_loss\"", "\"train_perplexity\"", "\"valid_perplexity\"",
                        "\"test_perplexity\"", "\"seconds\""})
    EXPECT_NE(lines[0].find(k), std::string::npos) << k;
  // The best model reloads and evaluates to the recorded validation perplexity.
  TrainedLm t = load_trained_lm((dir_ / "run").string());
  EXPECT_EQ(t.epoch, res.best_epoch);
  data::Vocabulary v;
  const Tensor train = data::read_ptb_file((dir_ / "ptb.train.txt").string(), v, true);
  const Tensor valid = data::read_ptb_file((dir_ / "ptb.valid.txt").string(), v, false);
  EXPECT_NEAR(evaluate_perplexity(*t.model, valid, 2, 8).perplexity, res.best_valid_perplexity, 1e-3);
  // A second run into the same folder without --resume is refused.
  EXPECT_THROW(train_lm(r, o), Error);
}

TEST_F(LmTrain, ResumeEqualsUninterruptedRun) {
  write_corpus(dir_);
  const LmRecipe r = parse_lm_recipe(tiny_recipe(dir_.string(), "", R"({"type": "lstm", "units": 12})", 3, 0.3),
                                     "test");
  LmTrainOptions full;
  full.out_dir = (dir_ / "full").string();
  const LmTrainResult a = train_lm(r, full);
  LmTrainOptions part;
  part.out_dir = (dir_ / "part").string();
  part.stop_after = 1;
  (void)train_lm(r, part);
  part.stop_after = 0;
  part.resume = true;
  const LmTrainResult b = train_lm(r, part);
  ASSERT_EQ(a.history.size(), b.history.size());
  for (std::size_t i = 0; i < a.history.size(); ++i) {
    EXPECT_EQ(a.history[i].train_loss, b.history[i].train_loss) << i;
    EXPECT_EQ(a.history[i].valid_perplexity, b.history[i].valid_perplexity) << i;
    EXPECT_EQ(a.history[i].lr, b.history[i].lr) << i;
  }
}

TEST_F(LmTrain, GruRnnAndQuantizedTrain) {
  write_corpus(dir_);
  const std::vector<std::pair<std::string, std::string>> cases{
      {R"({"type": "gru", "units": 12})", ""},
      {R"({"type": "rnn", "units": 12})", ""},
      {R"({"type": "lstm", "units": 12})", R"(, "quantization": {"weight_bits": 2, "activation_bits": 3})"},
      {R"({"type": "lstm", "units": 12, "cifg": true, "peephole": true, "layer_norm": true, "projection": 8})",
       R"(, "quantization": {"weight_bits": 4, "activation_bits": 4})"}};
  int i = 0;
  for (const auto& [layer, quant] : cases) {
    SCOPED_TRACE(layer + quant);
    const LmRecipe r = parse_lm_recipe(tiny_recipe(dir_.string(), quant, layer, 3), "test");
    LmTrainOptions o;
    o.out_dir = (dir_ / ("run" + std::to_string(i++))).string();
    const LmTrainResult res = train_lm(r, o);
    EXPECT_LT(res.best_valid_perplexity, 10.0);  // uniform: 13
  }
  // The 2-bit weights of the quantized run take at most 4 values per tensor.
  TrainedLm t = load_trained_lm((dir_ / "run2").string());
  for (const char* name : {"lstm.0.w_x", "lstm.0.w_h"}) {
    ASSERT_TRUE(t.model->is_quantized_weight(name));
    const Tensor w = t.model->effective_value(name);
    std::set<float> levels(w.data<float>(), w.data<float>() + w.numel());
    EXPECT_LE(levels.size(), 4u) << name;
    EXPECT_GE(levels.size(), 2u) << name;
  }
  EXPECT_FALSE(t.model->is_quantized_weight("embedding"));
  // GRU models have no model-file kind.
  TrainedLm g = load_trained_lm((dir_ / "run0").string());
  EXPECT_THROW(runtime::export_lstm_lm(*g.model), Error);
}

TEST_F(LmTrain, RecipeAndDataErrors) {
  write_corpus(dir_);
  const std::string good = tiny_recipe(dir_.string());
  EXPECT_NO_THROW(parse_lm_recipe(good, "r"));
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    return s.replace(p, from.size(), to);
  };
  EXPECT_THROW(parse_lm_recipe(with("\"bptt\"", "\"bpt\""), "r"), Error);         // unknown key
  EXPECT_THROW(parse_lm_recipe(with("\"units\": 12", "\"units\": \"12\""), "r"), Error);  // type
  EXPECT_THROW(parse_lm_recipe(with("\"lstm\"", "\"transformer\""), "r"), Error);
  EXPECT_THROW(parse_lm_recipe(with("\"units\": 12}", "\"units\": 12, \"peephole\": 1}"), "r"), Error);
  EXPECT_THROW(parse_lm_recipe(with("\"type\": \"lstm\", \"units\": 12", "\"type\": \"gru\", \"units\": 12, \"cifg\": true"), "r"),
               Error);
  // A vocabulary smaller than the corpus' means out-of-range token ids.
  LmTrainOptions o;
  o.out_dir = (dir_ / "run").string();
  EXPECT_THROW(train_lm(parse_lm_recipe(with("\"embedding_dim\"", "\"vocab_size\": 5, \"embedding_dim\""), "r"), o),
               Error);
  // Too few tokens for the batch; an empty corpus.
  EXPECT_THROW(train_lm(parse_lm_recipe(with("\"batch_size\": 4", "\"batch_size\": 100000"), "r"), o), Error);
  std::ofstream(dir_ / "ptb.valid.txt", std::ios::trunc).close();
  EXPECT_THROW(train_lm(parse_lm_recipe(good, "r"), o), Error);
  // Out-of-range ids reaching the model.
  LmSpec s;
  s.vocab_size = 5;
  s.embedding_dim = 3;
  s.layers = {LmLayerSpec{"lstm", 4}};
  LanguageModel m(s, 1);
  LanguageModel::State st = m.zero_state();
  EXPECT_THROW(m.forward(Tensor::from<int32_t>({2, 1}, std::vector<int32_t>{1, 5}), st, false), Error);
  EXPECT_EQ(recipe_task((fs::path(LOWBIT_SOURCE_DIR) / "recipes" / "mnist-bnn-fast.json").string()), "classification");
  EXPECT_EQ(recipe_task((fs::path(LOWBIT_SOURCE_DIR) / "recipes" / "ptb-lstm-tiny.json").string()), "language_model");
}

TEST(LmClip, GlobalNormClipping) {
  auto a = Parameter::make("a", Tensor::zeros({2}, DType::f32));
  auto b = Parameter::make("b", Tensor::zeros({1}, DType::f32));
  a->grad.data<float>()[0] = 3, a->grad.data<float>()[1] = 0, b->grad.data<float>()[0] = 4;
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b}, 10.0), 5.0);  // below the limit: unchanged
  EXPECT_FLOAT_EQ(a->grad.data<float>()[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b}, 1.0), 5.0);
  EXPECT_FLOAT_EQ(a->grad.data<float>()[0], 0.6f);
  EXPECT_FLOAT_EQ(b->grad.data<float>()[0], 0.8f);
}

// ---- export: a plain float lstm_lm from the file's tensors -------------------------------------

struct FileLstm {
  const io::ModelFile& f;
  std::string pre;
  int64_t I, C, P;
  bool cifg, peep, proj, ln;
  double cell_clip, proj_clip;
  const float* t(const std::string& name) const { return f.get(pre + name).values<float>().data(); }
};

// logits [T·B, V] of token ids [T][B] from zero state, in double.
std::vector<double> file_logits(const io::ModelFile& f, const std::vector<std::vector<int32_t>>& ids) {
  const auto meta = nlohmann::json::parse(f.metadata)["model"];
  const int64_t V = meta["vocab_size"], E = meta["embedding_dim"];
  std::vector<FileLstm> layers;
  for (const auto& l : meta["layers"])
    layers.push_back({f, l["name"].get<std::string>() + ".", l["n_input"], l["n_cell"], l["n_output"], l["cifg"],
                      l["peephole"], l["projection"], l["layer_norm"], l["cell_clip"], l["proj_clip"]});
  const int64_t T = static_cast<int64_t>(ids.size()), B = static_cast<int64_t>(ids[0].size());
  std::vector<std::vector<double>> h(layers.size()), c(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) h[l].assign(B * layers[l].P, 0.0), c[l].assign(B * layers[l].C, 0.0);
  const float* emb = f.get("embedding").values<float>().data();
  const float* hw = f.get("head.weight").values<float>().data();
  const float* hb = f.get("head.bias").values<float>().data();
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  std::vector<double> out;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> x(emb + ids[t][b] * E, emb + (ids[t][b] + 1) * E);
      for (std::size_t l = 0; l < layers.size(); ++l) {
        const FileLstm& L = layers[l];
        const char* names[4] = {"input", "forget", "cell", "output"};
        std::vector<double> a[4];
        const double* hp = h[l].data() + b * L.P;
        double* cp = c[l].data() + b * L.C;
        for (int g = 0; g < 4; ++g) {
          if (g == 0 && L.cifg) continue;
          const float* wi = L.t(std::string("input_to_") + names[g] + "_weights");
          const float* wr = L.t(std::string("recurrent_to_") + names[g] + "_weights");
          a[g].assign(L.C, 0.0);
          for (int64_t j = 0; j < L.C; ++j) {
            for (int64_t k = 0; k < L.I; ++k) a[g][j] += wi[j * L.I + k] * x[k];
            for (int64_t k = 0; k < L.P; ++k) a[g][j] += wr[j * L.P + k] * hp[k];
          }
        }
        auto finish = [&](int g) {
          if (L.ln) {
            double m = 0, m2 = 0;
            for (double v : a[g]) m += v, m2 += v * v;
            m /= L.C;
            double var = m2 / L.C - m * m;
            if (var <= 0) var = 1e-8;
            const float* co = L.t(std::string(names[g]) + "_layer_norm_coefficients");
            for (int64_t j = 0; j < L.C; ++j) a[g][j] = (a[g][j] - m) / std::sqrt(var) * co[j];
          }
          const float* bias = L.t(std::string(names[g]) + "_gate_bias");
          for (int64_t j = 0; j < L.C; ++j) a[g][j] += bias[j];
        };
        if (L.peep)
          for (int64_t j = 0; j < L.C; ++j) {
            if (!L.cifg) a[0][j] += L.t("cell_to_input_weights")[j] * cp[j];
            a[1][j] += L.t("cell_to_forget_weights")[j] * cp[j];
          }
        for (int g : {0, 1, 2})
          if (!(g == 0 && L.cifg)) finish(g);
        std::vector<double> m(L.C);
        for (int64_t j = 0; j < L.C; ++j) {
          const double fg = sig(a[1][j]), gg = std::tanh(a[2][j]);
          const double ig = L.cifg ? 1 - fg : sig(a[0][j]);
          double cc = fg * cp[j] + ig * gg;
          if (L.cell_clip > 0) cc = std::clamp(cc, -L.cell_clip, L.cell_clip);
          cp[j] = cc;
          if (L.peep) a[3][j] += L.t("cell_to_output_weights")[j] * cc;
        }
        finish(3);
        for (int64_t j = 0; j < L.C; ++j) m[j] = sig(a[3][j]) * std::tanh(cp[j]);
        std::vector<double> y(L.P);
        for (int64_t p = 0; p < L.P; ++p) {
          if (!L.proj) {
            y[p] = m[p];
            continue;
          }
          double s = L.t("projection_bias")[p];
          for (int64_t j = 0; j < L.C; ++j) s += L.t("projection_weights")[p * L.C + j] * m[j];
          y[p] = L.proj_clip > 0 ? std::clamp(s, -L.proj_clip, L.proj_clip) : s;
        }
        std::copy(y.begin(), y.end(), h[l].begin() + b * L.P);
        x = y;
      }
      for (int64_t v = 0; v < V; ++v) {
        double s = hb[v];
        for (std::size_t k = 0; k < x.size(); ++k) s += hw[v * static_cast<int64_t>(x.size()) + k] * x[k];
        out.push_back(s);
      }
    }
  return out;
}

void expect_export_matches(LanguageModel& m) {
  const io::ModelFile f = io::parse(io::serialize(runtime::export_lstm_lm(m)), "exported");
  const std::vector<std::vector<int32_t>> ids{{1, 4}, {2, 0}, {3, 3}, {0, 1}, {4, 2}};
  std::vector<int32_t> flat;
  for (const auto& r : ids) flat.insert(flat.end(), r.begin(), r.end());
  LanguageModel::State st = m.zero_state();
  autograd::NoGradGuard ng;
  const Tensor logits = m.forward(Tensor::from<int32_t>({5, 2}, flat), st, false).value();
  const std::vector<double> ref = file_logits(f, ids);
  ASSERT_EQ(static_cast<int64_t>(ref.size()), logits.numel());
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(logits.data<float>()[i], ref[i], 2e-5) << i;
}

TEST_F(LmTrain, ExportMatchesTrainingGraph) {
  write_corpus(dir_);
  // A trained float model, through the files of a run.
  LmTrainOptions o;
  o.out_dir = (dir_ / "run").string();
  (void)train_lm(parse_lm_recipe(tiny_recipe(dir_.string(), "", R"({"type": "lstm", "units": 12})", 2), "r"), o);
  TrainedLm t = load_trained_lm(o.out_dir);
  expect_export_matches(*t.model);
  // Every LSTM option, two layers, and QNN weights (exported as their k-bit values).
  LmSpec s;
  s.vocab_size = 5;
  s.embedding_dim = 6;
  s.init_scale = 0.5;
  LmLayerSpec l1{"lstm", 7, true, true, true, 5, 1.5, 0.8};
  LmLayerSpec l2{"lstm", 4, false, true, false, 0, 0.5, 0};
  s.layers = {l1, l2};
  LanguageModel all(s, 5);
  expect_export_matches(all);
  s.weight_bits = 3;
  LanguageModel q(s, 6);
  expect_export_matches(q);
  const auto meta = nlohmann::json::parse(runtime::export_lstm_lm(q).metadata);
  EXPECT_EQ(meta["qnn"]["weight_bits"], 3);
  const io::ModelFile f = runtime::export_lstm_lm(q);
  EXPECT_FALSE(f.contains("lstm.0.input_to_input_weights"));  // CIFG
  EXPECT_EQ(f.get("lstm.0.projection_weights").shape(), (Shape{5, 7}));
  EXPECT_EQ(f.get("lstm.1.recurrent_to_cell_weights").shape(), (Shape{4, 4}));
}

// The tiny recipe on the real PTB, end to end (skipped without the data).
TEST_F(LmTrain, TinyRecipeOnPtb) {
  std::string dir;
  if (const char* env = std::getenv("LOWBIT_PTB_DIR"); env != nullptr && *env != '\0') dir = env;
  else dir = (fs::path(LOWBIT_SOURCE_DIR) / ".." / "shared" / "data" / "ptb").lexically_normal().string();
  if (!fs::is_regular_file(fs::path(dir) / "ptb.train.txt"))
    GTEST_SKIP() << "PTB not found at " << dir << " (set LOWBIT_PTB_DIR to run this test)";
  LmRecipe r = load_lm_recipe((fs::path(LOWBIT_SOURCE_DIR) / "recipes" / "ptb-lstm-tiny.json").string());
  r.data.path = dir;
  LmTrainOptions o;
  o.out_dir = (dir_ / "run").string();
  const LmTrainResult res = train_lm(r, o);
  ASSERT_EQ(static_cast<int64_t>(res.history.size()), r.training.epochs);
  // Far below the uniform 10,000, and training perplexity falls every epoch.
  EXPECT_LT(res.best_valid_perplexity, 2000.0);
  for (std::size_t i = 1; i < res.history.size(); ++i)
    EXPECT_LT(res.history[i].train_perplexity, res.history[i - 1].train_perplexity);
  TrainedLm t = load_trained_lm(o.out_dir);
  EXPECT_EQ(runtime::export_lstm_lm(*t.model).get("embedding").shape(), (Shape{10000, 32}));
}

}  // namespace
}  // namespace lowbit::nn
