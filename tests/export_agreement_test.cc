// The exported integer network predicts what the training graph (eval mode) predicts: small
// binary and k-bit MLPs trained for one epoch on part of MNIST, compared on all 10 000 test
// images. They may differ only where float rounding in the training graph lands a
// pre-activation on the other side of a threshold, which is rare.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/core/error.h"
#include "lowbit/data/dataset.h"
#include "lowbit/data/idx.h"
#include "lowbit/nn/model.h"
#include "lowbit/nn/trainer.h"
#include "lowbit/runtime/export.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace lowbit {
namespace {

const std::string kSrc = LOWBIT_SOURCE_DIR;

json hidden(const std::string& linear, int units, const std::string& act, bool shift_bn = false) {
  json l = json::array();
  json lin = json::parse(linear);
  lin["units"] = units;
  l.push_back(lin);
  l.push_back({{"type", "batch_norm"}, {"shift_based", shift_bn}});
  l.push_back({{"type", "hardtanh"}});
  l.push_back(json::parse(act));
  return l;
}

// Trains `layers` (a 784-input MLP) for one epoch on 3000 images and returns the fraction of
// the 10 000 test images on which the exported network and the training graph agree.
double agreement(const json& layers, const std::string& normalize = "[-1,1]") {
  const fs::path dir = fs::temp_directory_path() /
                       ("lowbit_export_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                        "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  json r = {{"name", "agree"},
            {"data", {{"dataset", "mnist"}, {"path", kSrc + "/data/mnist"}, {"valid_size", 1000}, {"train_size", 3000},
                      {"normalize", normalize}}},
            {"model", {{"input_shape", {28, 28}}, {"layers", layers}}},
            {"loss", "squared_hinge"},
            {"optimizer", {{"type", "adam"}, {"lr_start", 0.003}, {"schedule", "constant"}}},
            {"training", {{"epochs", 1}, {"batch_size", 100}, {"seed", 3}}}};
  const nn::Recipe recipe = nn::parse_recipe(r.dump(), "agree.json");
  nn::TrainOptions o;
  o.out_dir = dir.string();
  nn::train(recipe, o);
  nn::TrainedModel tm = nn::load_trained(dir.string());
  fs::remove_all(dir);

  const nn::InputScaling s = nn::recipe_input_scaling(recipe);
  runtime::InputSpec in;
  in.height = in.width = 28;
  in.scale = s.scale;
  in.offset = s.offset;
  const runtime::Network net = runtime::export_network(tm.model, in);

  const data::LabelledImages raw = data::load_idx_split(kSrc + "/data/mnist", "t10k", 10);
  const data::Normalization norm = normalize == "[0,1]" ? data::Normalization::scale_to(0.0f, 1.0f)
                                                        : data::Normalization::scale_to(-1.0f, 1.0f);
  const data::Dataset test = data::make_dataset(raw, norm, 10);
  const std::vector<int32_t> graph = nn::predict(tm.model, test.images);
  const std::vector<int32_t> rt = net.predict(raw.images.reshape({test.size(), 784}));
  int64_t same = 0, right = 0;
  for (std::size_t i = 0; i < graph.size(); ++i) {
    same += graph[i] == rt[i];
    right += rt[i] == test.label(static_cast<int64_t>(i));
  }
  // A trained network, not a constant: far better than chance.
  EXPECT_GT(right, 7000) << "runtime accuracy " << right << "/10000";
  return static_cast<double>(same) / static_cast<double>(graph.size());
}

TEST(ExportAgreement, BinaryMlp) {
  json layers = {{{"type", "flatten"}}, {{"type", "dropout"}, {"p", 0.1}}};
  for (int i = 0; i < 2; ++i)
    for (const auto& l : hidden(R"({"type": "binary_dense"})", 256, R"({"type": "sign"})")) layers.push_back(l);
  layers.push_back({{"type", "binary_dense"}, {"units", 10}});
  layers.push_back({{"type", "batch_norm"}});
  EXPECT_GE(agreement(layers), 0.999);
}

TEST(ExportAgreement, KbitMlpSignedActivations) {
  json layers = {{{"type", "flatten"}}};
  for (int i = 0; i < 2; ++i)
    for (const auto& l : hidden(R"({"type": "kbit_dense", "bits": 2})", 256, R"({"type": "quant_act", "bits": 2, "signed": true})"))
      layers.push_back(l);
  layers.push_back({{"type", "kbit_dense"}, {"units", 10}, {"bits", 2}});
  layers.push_back({{"type", "batch_norm"}});
  EXPECT_GE(agreement(layers), 0.999);
}

TEST(ExportAgreement, KbitMlpUnsignedActivationsShiftBnUnitInputs) {
  json layers = {{{"type", "flatten"}}};
  for (int i = 0; i < 2; ++i)
    for (const auto& l : hidden(R"({"type": "kbit_dense", "bits": 4})", 128, R"({"type": "quant_act", "bits": 4})", true))
      layers.push_back(l);
  layers.push_back({{"type", "binary_dense"}, {"units", 10}, {"bias", true}});
  layers.push_back({{"type", "batch_norm"}});
  EXPECT_GE(agreement(layers, "[0,1]"), 0.999);
}

TEST(ExportAgreement, FirstLayer8bitMlp) {
  json layers = {{{"type", "flatten"}}, {{"type", "first_layer_8bit"}, {"units", 128}}, {{"type", "batch_norm"}},
                 {{"type", "sign"}}, {{"type", "binary_dense"}, {"units", 10}}, {{"type", "batch_norm"}}};
  EXPECT_GE(agreement(layers), 0.999);
}

TEST(ExportErrors, UnsupportedSequencesNameTheLayer) {
  auto err = [](const std::string& model) {
    try {
      runtime::InputSpec in;
      in.height = in.width = 4;
      in.scale = 2.0 / 255.0;
      in.offset = -1.0;
      runtime::export_network(nn::build_model(model, 1), in);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  std::string e = err(R"({"input_shape": [16], "layers": [{"type": "dense", "units": 10}]})");
  EXPECT_NE(e.find("unsupported layer sequence at layer 0 (dense)"), std::string::npos) << e;
  e = err(R"({"input_shape": [16], "layers": [{"type": "binary_dense", "units": 8}, {"type": "batch_norm"},
             {"type": "hardtanh"}, {"type": "binary_dense", "units": 10}]})");
  EXPECT_NE(e.find("expected sign or quant_act"), std::string::npos) << e;
  e = err(R"({"input_shape": [16], "layers": [{"type": "binary_dense", "units": 8}, {"type": "sign"},
             {"type": "kbit_dense", "units": 10, "bits": 3}]})");
  EXPECT_NE(e.find("k-bit weights (more than 1 bit) on binary activations"), std::string::npos) << e;
}

}  // namespace
}  // namespace lowbit
