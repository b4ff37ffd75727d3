// The training engine: strict recipes, exact resume, failures that keep a good checkpoint, the
// shipped recipes, and a CIFAR-10 ConvNet that starts training on a generated CIFAR folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "lowbit/core/error.h"
#include "lowbit/data/cifar.h"
#include "lowbit/io/model_file.h"
#include "lowbit/nn/model.h"
#include "lowbit/nn/trainer.h"
#include "lowbit/runtime/export.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace lowbit {
namespace {

const std::string kSrc = LOWBIT_SOURCE_DIR;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("lowbit_train_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A small MLP with dropout on both sides, so resume must restore the random streams too.
json tiny_recipe() {
  return json::parse(R"({
    "name": "tiny",
    "data": {"dataset": "mnist", "path": "", "valid_size": 10000, "train_size": 600, "test_size": 300},
    "model": {"input_shape": [784], "layers": [
      {"type": "dropout", "p": 0.2},
      {"type": "binary_dense", "units": 48}, {"type": "batch_norm"}, {"type": "hardtanh"}, {"type": "sign"},
      {"type": "dropout", "p": 0.3},
      {"type": "binary_dense", "units": 10}, {"type": "batch_norm"}]},
    "loss": "squared_hinge",
    "optimizer": {"type": "adam", "lr_start": 0.003, "lr_end": 0.0003, "schedule": "exponential"},
    "training": {"epochs": 3, "batch_size": 50, "seed": 11}})");
}

nn::Recipe recipe_from(json j) {
  j["data"]["path"] = kSrc + "/data/mnist";
  return nn::parse_recipe(j.dump(), "tiny.json");
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TrainRecipe, MistypedKeysAreErrorsNamingKeyAndFile) {
  json j = tiny_recipe();
  j["data"]["vaild_size"] = 5;
  EXPECT_NE(error_of([&] { recipe_from(j); }).find("tiny.json: 'data.vaild_size': unknown key"), std::string::npos)
      << error_of([&] { recipe_from(j); });

  j = tiny_recipe();
  j["trainig"] = json::object();
  EXPECT_NE(error_of([&] { recipe_from(j); }).find("'trainig': unknown key"), std::string::npos);

  j = tiny_recipe();
  j["training"]["epochs"] = "10";
  EXPECT_NE(error_of([&] { recipe_from(j); }).find("'training.epochs': expected an integer"), std::string::npos);

  j = tiny_recipe();
  j["optimizer"]["type"] = "adamw";
  EXPECT_NE(error_of([&] { recipe_from(j); }).find("\"adamw\" is not one of"), std::string::npos);

  j = tiny_recipe();
  j["optimizer"]["momentum"] = 0.9;  // an sgd key on adam
  EXPECT_NE(error_of([&] { recipe_from(j); }).find("only the sgd optimizer"), std::string::npos);

  j = tiny_recipe();
  j["model"]["layers"][1]["unitz"] = 3;  // the model's own checks, with the file named
  const std::string e = error_of([&] { recipe_from(j); });
  EXPECT_NE(e.find("tiny.json"), std::string::npos) << e;
  EXPECT_NE(e.find("unitz"), std::string::npos) << e;
}

TEST(TrainRecipe, RoundTripsThroughCanonicalJson) {
  const nn::Recipe r = recipe_from(tiny_recipe());
  const nn::Recipe again = nn::parse_recipe(r.to_json(), "again");
  EXPECT_EQ(r.to_json(), again.to_json());
}

TEST(TrainRecipe, ShippedRecipesParseAndBuild) {
  for (const char* name : {"mnist-bnn", "mnist-bnn-fast", "mnist-qnn-2bit", "mnist-qnn-4bit", "cifar10-bnn"}) {
    SCOPED_TRACE(name);
    const nn::Recipe r = nn::load_recipe(kSrc + "/recipes/" + name + ".json");
    EXPECT_EQ(r.name, name);
    EXPECT_NO_THROW((void)nn::build_model(r.model, r.training.seed));
  }
  const nn::Recipe paper = nn::load_recipe(kSrc + "/recipes/mnist-bnn.json");
  EXPECT_EQ(paper.training.batch_size, 100);
  EXPECT_EQ(paper.optimizer.type, "adam");
  EXPECT_DOUBLE_EQ(paper.optimizer.lr_start, 3e-3);
  EXPECT_DOUBLE_EQ(paper.optimizer.lr_end, 3e-7);
}

// Two epochs in one go, and one epoch then a resume for the second: the same metrics (but the
// wall time) and the same bytes in every tensor of the checkpoint.
TEST(TrainResume, OneEpochPlusResumeEqualsTwoEpochs) {
  TempDir tmp;
  json j = tiny_recipe();
  j["training"]["epochs"] = 2;
  const nn::Recipe r = recipe_from(j);

  nn::TrainOptions full;
  full.out_dir = (tmp.path / "full").string();
  const nn::TrainResult a = nn::train(r, full);

  nn::TrainOptions part;
  part.out_dir = (tmp.path / "part").string();
  part.stop_after = 1;
  const nn::TrainResult b1 = nn::train(r, part);
  ASSERT_EQ(b1.history.size(), 1u);
  part.stop_after = 0;
  part.resume = true;
  const nn::TrainResult b = nn::train(r, part);

  ASSERT_EQ(a.history.size(), 2u);
  ASSERT_EQ(b.history.size(), 2u);
  for (std::size_t e = 0; e < 2; ++e) {
    SCOPED_TRACE(e);
    EXPECT_EQ(a.history[e].train_loss, b.history[e].train_loss);
    EXPECT_EQ(a.history[e].train_error, b.history[e].train_error);
    EXPECT_EQ(a.history[e].valid_error, b.history[e].valid_error);
    EXPECT_EQ(a.history[e].test_error, b.history[e].test_error);
    EXPECT_EQ(a.history[e].lr, b.history[e].lr);
  }
  const io::ModelFile fa = io::load((tmp.path / "full" / "checkpoint.lbm").string());
  const io::ModelFile fb = io::load((tmp.path / "part" / "checkpoint.lbm").string());
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  for (std::size_t i = 0; i < fa.tensors.size(); ++i) {
    const auto& [name, ta] = fa.tensors[i];
    const io::Array& tb = fb.get(name);
    ASSERT_EQ(ta.nbytes(), tb.nbytes()) << name;
    EXPECT_EQ(0, std::memcmp(ta.bytes(), tb.bytes(), ta.nbytes())) << name;
  }
  // metrics.jsonl: one line per epoch with the documented keys.
  const std::string lines = read(tmp.path / "part" / "metrics.jsonl");
  std::istringstream in(lines);
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    const json m = json::parse(line);
    for (const char* k : {"epoch", "train_loss", "train_error", "valid_error", "test_error", "lr", "seconds"})
      EXPECT_TRUE(m.contains(k)) << k;
    ++count;
  }
  EXPECT_EQ(count, 2);
  const json run = json::parse(read(tmp.path / "part" / "run.json"));
  EXPECT_EQ(run["seed"], 11);
  EXPECT_EQ(run["resumed_from_epoch"], 1);
  const nn::TrainedModel best = nn::load_trained((tmp.path / "part").string());
  EXPECT_EQ(best.recipe.training.seed, 11u);
}

TEST(TrainResume, FailuresNeverTouchAGoodCheckpoint) {
  TempDir tmp;
  json j = tiny_recipe();
  j["training"]["epochs"] = 1;
  const nn::Recipe r = recipe_from(j);
  nn::TrainOptions o;
  o.out_dir = tmp.path.string();
  nn::train(r, o);
  const std::string before = read(tmp.path / "checkpoint.lbm");

  // Starting afresh over a run is refused.
  EXPECT_NE(error_of([&] { nn::train(r, o); }).find("pass --resume"), std::string::npos);
  // Bad data path on resume.
  nn::Recipe bad = r;
  bad.data.path = (tmp.path / "nowhere").string();
  o.resume = true;
  EXPECT_NE(error_of([&] { nn::train(bad, o); }).find("nowhere"), std::string::npos);
  // A different model on resume.
  json other = tiny_recipe();
  other["model"]["layers"][1]["units"] = 32;
  EXPECT_NE(error_of([&] { nn::train(recipe_from(other), o); }).find("'model' differs"), std::string::npos);
  // Truncated IDX file.
  fs::create_directories(tmp.path / "cut");
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(kSrc + "/data/mnist/" + f, tmp.path / "cut" / f);
  fs::resize_file(tmp.path / "cut" / "t10k-images-idx3-ubyte.gz", 5000);
  bad.data.path = (tmp.path / "cut").string();
  EXPECT_NE(error_of([&] { nn::train(bad, o); }).find("t10k-images"), std::string::npos);

  EXPECT_EQ(before, read(tmp.path / "checkpoint.lbm"));
}

// The paper's CIFAR-10 ConvNet recipe, pointed at a generated CIFAR-10 folder, trains a step;
// a narrow version trains an epoch and exports.
TEST(TrainCifar, PaperRecipeStartsOnGeneratedCifarFolder) {
  TempDir tmp;
  const fs::path data = tmp.path / "cifar";
  fs::create_directories(data);
  auto write_batch = [&](const std::string& name, int n, int salt) {
    Tensor images = Tensor::zeros({n, 3, 32, 32}, DType::u8);
    Tensor labels = Tensor::zeros({n}, DType::u8);
    for (int64_t i = 0; i < images.numel(); ++i) images.data<uint8_t>()[i] = static_cast<uint8_t>((i * 37 + salt) % 251);
    for (int i = 0; i < n; ++i) labels.data<uint8_t>()[i] = static_cast<uint8_t>((i + salt) % 10);
    data::write_cifar10_file((data / name).string(), images, labels);
  };
  for (int b = 1; b <= 5; ++b) write_batch("data_batch_" + std::to_string(b) + ".bin", 12, b);
  write_batch("test_batch.bin", 200, 9);

  nn::Recipe paper = nn::load_recipe(kSrc + "/recipes/cifar10-bnn.json");
  paper.data.path = data.string();
  paper.data.valid_size = 10;
  paper.data.train_size = 50;  // one batch of 50
  paper.data.test_size = 4;
  paper.training.eval_batch_size = 10;
  nn::TrainOptions o;
  o.out_dir = (tmp.path / "paper").string();
  o.stop_after = 1;
  const nn::TrainResult r = nn::train(paper, o);
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(r.history[0].train_loss));

  nn::Recipe tiny = nn::load_recipe(kSrc + "/tests/data/train-tiny-cifar.json");
  tiny.data.path = data.string();
  o.out_dir = (tmp.path / "tiny").string();
  o.stop_after = 0;
  EXPECT_EQ(nn::train(tiny, o).history.size(), 1u);
  EXPECT_TRUE(fs::exists(tmp.path / "tiny" / "best.lbm"));

  // The ConvNet exports (conv weights to [O, kh, kw, C], pooled accumulators, the dense layer
  // after flatten reordered from (c, h, w) to (h, w, c)) and predicts what the graph predicts.
  nn::TrainedModel tm = nn::load_trained((tmp.path / "tiny").string());
  runtime::InputSpec in;
  in.height = in.width = 32;
  in.channels = 3;
  in.layout = runtime::InputLayout::chw;
  in.scale = 2.0 / 255.0;
  in.offset = -1.0;
  const runtime::Network net = runtime::export_network(tm.model, in);
  const data::LabelledImages raw = data::load_cifar10(data.string(), false);
  const data::Dataset test = data::make_dataset(raw, data::Normalization::scale_to(-1.0f, 1.0f), 10);
  const std::vector<int32_t> graph = nn::predict(tm.model, test.images);
  const std::vector<int32_t> rt = net.predict(raw.images.reshape({test.size(), 3 * 32 * 32}));
  int same = 0;
  for (std::size_t i = 0; i < graph.size(); ++i) same += graph[i] == rt[i];
  EXPECT_GE(same, 198) << same << " of " << graph.size();
  // Not a constant answer, which would agree trivially.
  EXPECT_GT(std::set<int32_t>(graph.begin(), graph.end()).size(), 2u);
}

}  // namespace
}  // namespace lowbit
