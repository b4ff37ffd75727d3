// Recipes, the training loop, best model and checkpoints (see nn/trainer.h).
#include "lowbit/nn/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/core/version.h"
#include "lowbit/data/cifar.h"
#include "lowbit/data/idx.h"
#include "lowbit/io/model_file.h"
#include "lowbit/nn/layers.h"
#include "lowbit/nn/model.h"
#include "lowbit/nn/optim.h"
#include "lowbit/nn/schedule.h"
#include "nn/internal.h"

namespace lowbit::nn {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

using detail::Section;

json recipe_json(const Recipe& r) {
  const auto& d = r.data;
  const auto& o = r.optimizer;
  const auto& t = r.training;
  json data = {{"dataset", d.dataset}, {"path", d.path}, {"valid_size", d.valid_size}, {"normalize", d.normalize}};
  if (d.train_size > 0) data["train_size"] = d.train_size;
  if (d.test_size > 0) data["test_size"] = d.test_size;
  json opt = {{"type", o.type}, {"lr_start", o.lr_start}, {"lr_end", o.lr_end}, {"schedule", o.schedule}};
  if (o.schedule == "step") {
    opt["step_factor"] = o.step_factor;
    opt["step_every"] = o.step_every;
  }
  opt["lr_pow2"] = o.lr_pow2;
  if (o.type != "sgd") {
    opt["beta1"] = o.beta1;
    opt["beta2"] = o.beta2;
  } else {
    opt["momentum"] = o.momentum;
    opt["nesterov"] = o.nesterov;
    opt["weight_decay"] = o.weight_decay;
  }
  if (o.eps >= 0) opt["eps"] = o.eps;
  return {{"name", r.name},
          {"data", data},
          {"model", json::parse(r.model)},
          {"loss", r.loss},
          {"optimizer", opt},
          {"training",
           {{"epochs", t.epochs}, {"batch_size", t.batch_size}, {"seed", t.seed}, {"eval_batch_size", t.eval_batch_size}}}};
}

}  // namespace

std::string Recipe::to_json() const { return recipe_json(*this).dump(); }

Recipe parse_recipe(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("recipe ", source, ": invalid JSON: ", e.what());
  }
  Recipe r;
  r.source = source;
  Section top(j, "", source);
  r.name = top.str("name", std::nullopt);

  Section d(top.raw("data"), "data", source);
  r.data.dataset = d.str("dataset", "mnist", {"mnist", "cifar10"});
  r.data.path = d.str("path", r.data.dataset == "mnist" ? "data/mnist" : "data/cifar10");
  r.data.valid_size = d.integer("valid_size", r.data.dataset == "mnist" ? 10000 : 5000, 0, 1 << 30);
  r.data.normalize = d.str("normalize", "[-1,1]", {"[-1,1]", "[0,1]", "standardize"});
  r.data.train_size = d.integer("train_size", 0, 0, 1 << 30);
  r.data.test_size = d.integer("test_size", 0, 0, 1 << 30);
  d.finish();

  const json& model = top.raw("model");
  if (!model.is_object()) fail(top.where("model"), ": expected a JSON object, got ", model.dump());
  r.model = model.dump();
  try {  // the model's own checks, named with the file (keys and types of every layer)
    (void)build_model(r.model, 0);
  } catch (const Error& e) {
    fail("recipe ", source, ": ", e.what());
  }
  r.loss = top.str("loss", "squared_hinge", {"squared_hinge", "cross_entropy"});

  Section o(top.raw("optimizer"), "optimizer", source);
  auto& op = r.optimizer;
  op.type = o.str("type", std::nullopt, {"adam", "adamax", "shift_adamax", "sgd"});
  op.lr_start = o.number("lr_start", std::nullopt, 0.0, 1e3);
  op.schedule = o.str("schedule", "constant", {"constant", "exponential", "step"});
  op.lr_end = o.number("lr_end", op.schedule == "exponential" ? std::nullopt : std::optional<double>(op.lr_start),
                       op.schedule == "exponential" ? 1e-30 : 0.0, 1e3);
  if (op.schedule == "exponential" && op.lr_start <= 0)
    fail(o.where("lr_start"), ": an exponential schedule needs lr_start > 0");
  op.step_factor = o.number("step_factor", 0.5, 0.0, 1.0);
  op.step_every = o.integer("step_every", 20, 1, 1 << 30);
  op.lr_pow2 = o.boolean("lr_pow2", false);
  op.beta1 = o.number("beta1", 0.9, 0.0, 0.999999);
  op.beta2 = o.number("beta2", 0.999, 0.0, 0.999999999);
  op.eps = o.number("eps", -1.0, -1.0, 1.0);
  if (op.eps != -1.0 && op.eps <= 0) fail(o.where("eps"), ": must be > 0");
  op.momentum = o.number("momentum", 0.0, 0.0, 0.999999);
  op.nesterov = o.boolean("nesterov", false);
  op.weight_decay = o.number("weight_decay", 0.0, 0.0, 1.0);
  if (op.type != "sgd")
    for (const char* k : {"momentum", "nesterov", "weight_decay"})
      if (o.present(k)) fail(o.where(k), ": only the sgd optimizer takes this key");
  o.finish();

  Section t(top.raw("training"), "training", source);
  r.training.epochs = t.integer("epochs", std::nullopt, 1, 1000000);
  r.training.batch_size = t.integer("batch_size", std::nullopt, 1, 1 << 20);
  r.training.seed = static_cast<uint64_t>(t.integer("seed", 1, 0, INT64_MAX));
  r.training.eval_batch_size = t.integer("eval_batch_size", 1000, 1, 1 << 20);
  t.finish();
  top.finish();
  return r;
}

Recipe load_recipe(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("recipe ", path, ": cannot open the file (", fs::exists(path) ? "not readable" : "no such file", ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_recipe(ss.str(), path);
}

// ---- data -------------------------------------------------------------------------------------

namespace {
data::Normalization normalization(const Recipe& r, const data::LabelledImages& train_part) {
  if (r.data.normalize == "[-1,1]") return data::Normalization::scale_to(-1.0f, 1.0f);
  if (r.data.normalize == "[0,1]") return data::Normalization::scale_to(0.0f, 1.0f);
  // Statistics from the training part only: validation and test must not leak into them.
  const data::ChannelStats s = data::channel_stats(train_part.images);
  return data::Normalization::standardize(s.mean, s.stddev);
}

struct RawSplits {
  data::LabelledImages train, valid, test;
};

RawSplits load_raw(const Recipe& r) {
  data::LabelledImages train, test;
  if (r.data.dataset == "mnist") {
    train = data::load_idx_split(r.data.path, "train", 10);
    test = data::load_idx_split(r.data.path, "t10k", 10);
  } else {
    train = data::load_cifar10(r.data.path, true);
    test = data::load_cifar10(r.data.path, false);
  }
  const int64_t n = train.images.size(0);
  LOWBIT_CHECK(r.data.valid_size < n, "recipe ", r.source, ": 'data.valid_size' ", r.data.valid_size, " leaves no ",
               "training examples in ", r.data.path, " (", n, " training examples)");
  data::SplitIndices idx = data::split_indices_last(n, r.data.valid_size);
  if (r.data.train_size > 0 && r.data.train_size < static_cast<int64_t>(idx.train.size()))
    idx.train.resize(static_cast<std::size_t>(r.data.train_size));
  RawSplits out{data::subset(train, idx.train), data::subset(train, idx.valid), std::move(test)};
  if (r.data.test_size > 0 && r.data.test_size < out.test.images.size(0)) {
    std::vector<int64_t> first(static_cast<std::size_t>(r.data.test_size));
    for (std::size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
    out.test = data::subset(out.test, first);
  }
  return out;
}
}  // namespace

data::DataSplits load_recipe_data(const Recipe& r) {
  RawSplits raw = load_raw(r);
  const data::Normalization norm = normalization(r, raw.train);
  auto make = [&](const data::LabelledImages& li) {
    if (li.images.size(0) == 0) return data::Dataset{};
    return data::make_dataset(li, norm, 10);
  };
  return {make(raw.train), make(raw.valid), make(raw.test)};
}

InputScaling recipe_input_scaling(const Recipe& r) {
  if (r.data.normalize == "[-1,1]") return {true, 2.0 / 255.0, -1.0};
  if (r.data.normalize == "[0,1]") return {true, 1.0 / 255.0, 0.0};
  return {false, 0, 0};
}

// ---- model state in files ------------------------------------------------------------------

namespace {

// Parameters of a model, each once (a first_layer_8bit shares its inner layer's).
ParameterList unique_parameters(const Sequential& m) {
  ParameterList out;
  std::set<const Parameter*> seen;
  for (const auto& p : m.parameters())
    if (seen.insert(p.get()).second) out.push_back(p);
  return out;
}

}  // namespace

namespace detail {

io::Array to_array(const Tensor& t) {
  if (t.dtype() == DType::i32)
    return io::Array::from<int32_t>(t.shape(), std::span<const int32_t>(t.data<int32_t>(), t.numel()));
  LOWBIT_CHECK(t.dtype() == DType::f32, "checkpoint: cannot store a ", t.describe(), " tensor");
  return io::Array::from<float>(t.shape(), std::span<const float>(t.data<float>(), t.numel()));
}

Tensor from_array(const io::Array& a) {
  if (a.type() == io::ElemType::I32) return Tensor::from<int32_t>(a.shape(), a.values<int32_t>());
  return Tensor::from<float>(a.shape(), a.values<float>());
}

}  // namespace detail

namespace {
using detail::from_array;
using detail::to_array;

void copy_into(Tensor dst, const io::Array& a, const std::string& name, const std::string& source) {
  LOWBIT_CHECK(a.type() == io::ElemType::F32 && a.shape() == dst.shape(), source, ": tensor '", name, "' is ",
               io::elem_type_name(a.type()), shape_str(a.shape()), " but the model's is F32", shape_str(dst.shape()));
  const auto v = a.values<float>();
  std::copy(v.begin(), v.end(), dst.data<float>());
}

void add_model_state(io::ModelFile& f, const Sequential& m) {
  for (const auto& p : unique_parameters(m)) f.add("param/" + p->name, to_array(p->value));
  for (const auto& b : m.buffers()) f.add("buffer/" + b.name, to_array(b.value));
}

void load_model_state(const io::ModelFile& f, Sequential& m, const std::string& source) {
  for (const auto& p : unique_parameters(m)) copy_into(p->value, f.get("param/" + p->name), p->name, source);
  for (const auto& b : m.buffers()) copy_into(b.value, f.get("buffer/" + b.name), b.name, source);
}

json metrics_json(const EpochMetrics& e) {
  return {{"epoch", e.epoch},           {"train_loss", e.train_loss}, {"train_error", e.train_error},
          {"valid_error", e.valid_error}, {"test_error", e.test_error}, {"lr", e.lr},
          {"seconds", e.seconds},       {"best", e.best}};
}

EpochMetrics metrics_from(const json& j) {
  EpochMetrics e;
  e.epoch = j.at("epoch").get<int64_t>();
  e.train_loss = j.at("train_loss").get<double>();
  e.train_error = j.at("train_error").get<double>();
  e.valid_error = j.at("valid_error").get<double>();
  e.test_error = j.at("test_error").get<double>();
  e.lr = j.at("lr").get<double>();
  e.seconds = j.at("seconds").get<double>();
  e.best = j.value("best", false);
  return e;
}

}  // namespace

namespace detail {

// Atomic text write: a temporary file in the same folder, then a rename.
void write_text(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    LOWBIT_CHECK(out.good(), "cannot write ", tmp.string());
    out << text;
    out.flush();
    LOWBIT_CHECK(out.good(), "cannot write ", tmp.string(), " (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  LOWBIT_CHECK(!ec, "cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message());
}

}  // namespace detail

namespace {
using detail::write_text;

std::unique_ptr<Optimizer> make_optimizer(const Recipe::Optimizer& o, ParameterList params) {
  const auto f = [](double v) { return static_cast<float>(v); };
  if (o.type == "adam") return std::make_unique<Adam>(std::move(params), AdamOptions{f(o.beta1), f(o.beta2), o.eps > 0 ? f(o.eps) : 1e-8f});
  if (o.type == "adamax")
    return std::make_unique<AdaMax>(std::move(params), AdaMaxOptions{f(o.beta1), f(o.beta2), o.eps > 0 ? f(o.eps) : 1e-8f});
  if (o.type == "shift_adamax")
    return std::make_unique<ShiftAdaMax>(std::move(params),
                                         ShiftAdaMaxOptions{f(o.beta1), f(o.beta2), o.eps > 0 ? f(o.eps) : 0x1p-27f});
  return std::make_unique<Sgd>(std::move(params), SgdOptions{f(o.momentum), o.nesterov, f(o.weight_decay)});
}

LrSchedule make_schedule(const Recipe& r) {
  const auto& o = r.optimizer;
  LrSchedule s = o.schedule == "exponential" ? LrSchedule::exponential(static_cast<float>(o.lr_start),
                                                                        static_cast<float>(o.lr_end), r.training.epochs)
                 : o.schedule == "step"
                     ? LrSchedule::step(static_cast<float>(o.lr_start), static_cast<float>(o.step_factor), o.step_every)
                     : LrSchedule::constant(static_cast<float>(o.lr_start));
  s.round_pow2(o.lr_pow2);
  return s;
}

// A batch's images in the model's input shape ([B, 28, 28] -> [B, 784] for an MLP).
Tensor as_model_input(const Tensor& images, const Sequential& model) {
  Shape s{images.size(0)};
  for (int64_t d : model.input_shape()) s.push_back(d);
  LOWBIT_CHECK(shape_numel(s) == images.numel(), "the model expects inputs of shape ", shape_str(model.input_shape()),
               " but the data's examples are ", images.describe(), " (", images.numel() / std::max<int64_t>(1, images.size(0)),
               " values each)");
  return images.is_contiguous() ? images.reshape(s) : images.clone().reshape(s);
}

int64_t count_wrong(const Tensor& out, const int32_t* labels) {
  const int64_t n = out.size(0), k = out.numel() / std::max<int64_t>(1, out.size(0));
  const float* y = out.data<float>();
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = y + i * k;
    wrong += (std::max_element(row, row + k) - row) != labels[i];
  }
  return wrong;
}

// Position of every layer's random stream (dropout masks, stochastic signs, gradient
// quantization), in layer order, for the checkpoint.
json random_streams(const Sequential& m) {
  json out = json::array();
  for (std::size_t i = 0; i < m.size(); ++i) out.push_back(m.at(i).random_calls());
  return out;
}

void restore_random_streams(Sequential& m, const json& calls, const std::string& source) {
  LOWBIT_CHECK(calls.is_array() && calls.size() == m.size(), source, ": \"random_streams\" must list one counter per layer (",
               m.size(), " layers)");
  for (std::size_t i = 0; i < m.size(); ++i) {
    LOWBIT_CHECK(calls[i].is_number_unsigned(), source, ": random_streams[", i, "] is not a non-negative integer");
    m.at(i).set_random_calls(calls[i].get<uint64_t>());
  }
}

}  // namespace

Var compute_loss(const std::string& loss, const Var& output, const Tensor& labels) {
  const std::span<const int32_t> l(labels.data<int32_t>(), static_cast<std::size_t>(labels.numel()));
  if (loss == "cross_entropy") return autograd::softmax_cross_entropy(output, l);
  return autograd::squared_hinge(output, l);
}

std::vector<int32_t> predict(Sequential& model, const Tensor& images, int64_t batch_size) {
  autograd::NoGradGuard no_grad;
  std::vector<int32_t> out;
  const int64_t n = images.size(0);
  for (int64_t b = 0; b < n; b += batch_size) {
    const Tensor x = as_model_input(images.slice_rows(b, std::min(n, b + batch_size)), model);
    const Tensor y = model.forward(autograd::Var(x), false).value();
    const int64_t k = y.numel() / std::max<int64_t>(1, y.size(0));
    for (int64_t i = 0; i < y.size(0); ++i) {
      const float* row = y.data<float>() + i * k;
      out.push_back(static_cast<int32_t>(std::max_element(row, row + k) - row));
    }
  }
  return out;
}

double error_rate(Sequential& model, const data::Dataset& d, int64_t batch_size) {
  if (d.size() == 0) return std::nan("");
  const std::vector<int32_t> p = predict(model, d.images, batch_size);
  int64_t wrong = 0;
  for (int64_t i = 0; i < d.size(); ++i) wrong += p[static_cast<std::size_t>(i)] != d.label(i);
  return static_cast<double>(wrong) / static_cast<double>(d.size());
}

// ---- the loop -------------------------------------------------------------------------------

namespace {

}  // namespace

namespace detail {

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace detail

namespace {
using detail::now_iso;

// The recipe without the number of epochs (a run may be resumed with more or fewer of them) and
// without the data folder (the same files may have moved).
json comparable(const Recipe& r) {
  json j = recipe_json(r);
  j["training"].erase("epochs");
  j["data"].erase("path");
  j.erase("name");
  return j;
}

}  // namespace

TrainResult train(const Recipe& recipe, const TrainOptions& opt, const ProgressSink& progress) {
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  LOWBIT_CHECK(!opt.out_dir.empty(), "train: no output folder given");
  const fs::path dir(opt.out_dir);
  const fs::path ckpt_path = dir / "checkpoint.lbm", best_path = dir / "best.lbm";
  const fs::path metrics_path = dir / "metrics.jsonl", run_path = dir / "run.json";

  // Refuse before touching anything, so that a mistake never costs a good checkpoint.
  if (!opt.resume && fs::exists(ckpt_path))
    fail(ckpt_path.string(), " already exists: pass --resume to continue that run, or choose another --out folder");
  if (opt.resume && !fs::exists(ckpt_path))
    fail("--resume: ", ckpt_path.string(), " does not exist (nothing to resume)");
  std::optional<io::ModelFile> ckpt;
  json ckpt_meta;
  if (opt.resume) {
    ckpt = io::load(ckpt_path.string());
    ckpt_meta = json::parse(ckpt->metadata);
    LOWBIT_CHECK(ckpt_meta.contains("recipe") && ckpt_meta.contains("epoch") && ckpt_meta.contains("steps"),
                 ckpt_path.string(), ": not a training checkpoint (no recipe/epoch/steps in its metadata)");
    Recipe saved = parse_recipe(ckpt_meta["recipe"].dump(), ckpt_path.string());
    const json a = comparable(saved), b = comparable(recipe);
    for (const auto& [key, value] : a.items())
      if (!b.contains(key) || b[key] != value)
        fail("--resume: the recipe's '", key, "' differs from the one ", ckpt_path.string(), " was trained with (",
             value.dump(), " there, ", b.contains(key) ? b[key].dump() : "nothing", " now)");
  }

  data::DataSplits splits = load_recipe_data(recipe);
  LOWBIT_CHECK(splits.train.size() > 0, "recipe ", recipe.source, ": no training examples");
  Sequential model = build_model(recipe.model, recipe.training.seed);
  (void)as_model_input(splits.train.images.slice_rows(0, 1), model);  // shape check before any work
  const ParameterList params = unique_parameters(model);
  std::unique_ptr<Optimizer> optimizer = make_optimizer(recipe.optimizer, params);
  const LrSchedule schedule = make_schedule(recipe);
  const data::Batcher batcher(splits.train.size(), recipe.training.batch_size, recipe.training.seed);

  TrainResult result;
  BestTracker tracker;
  int64_t first_epoch = 0, steps = 0;
  if (ckpt) {
    load_model_state(*ckpt, model, ckpt_path.string());
    NamedTensors state;
    for (const auto& [name, a] : ckpt->tensors)
      if (name.rfind("optim/", 0) == 0) state.emplace_back(name.substr(6), from_array(a));
    optimizer->load_state(state);
    first_epoch = ckpt_meta["epoch"].get<int64_t>();
    steps = ckpt_meta["steps"].get<int64_t>();
    for (const auto& e : ckpt_meta["history"]) {
      result.history.push_back(metrics_from(e));
      tracker.record(result.history.back().epoch, result.history.back().valid_error, result.history.back().test_error);
    }
    LOWBIT_CHECK(ckpt_meta.contains("random_streams"), ckpt_path.string(),
                 ": checkpoint has no \"random_streams\" (written by an older version; start a new run)");
    restore_random_streams(model, ckpt_meta["random_streams"], ckpt_path.string());
  }
  fs::create_directories(dir);

  const int64_t epochs = recipe.training.epochs;
  const int64_t last = opt.stop_after > 0 ? std::min(epochs, opt.stop_after) : epochs;
  {
    json run = {{"recipe", recipe_json(recipe)},
                {"recipe_file", recipe.source},
                {"seed", recipe.training.seed},
                {"threads", num_threads()},
                {"lowbit_version", version()},
                {"command", opt.command_line},
                {"started", now_iso()},
                {"resumed_from_epoch", first_epoch},
                {"train_examples", splits.train.size()},
                {"valid_examples", splits.valid.size()},
                {"test_examples", splits.test.size()},
                {"parameters", model.num_parameters()}};
    write_text(run_path, run.dump(2) + "\n");
  }
  if (progress.on_start) {
    std::ostringstream os;
    os << recipe.name << ": " << model.num_parameters() << " parameters, " << splits.train.size() << " training / "
       << splits.valid.size() << " validation / " << splits.test.size() << " test examples, batch "
       << recipe.training.batch_size << ", " << num_threads() << " threads";
    if (first_epoch > 0) os << "; resuming after epoch " << first_epoch;
    progress.on_start(os.str());
  }

  const int64_t nb = batcher.num_batches();
  const int64_t eval_bs = recipe.training.eval_batch_size;
  for (int64_t e = first_epoch; e < last; ++e) {
    const auto t0 = clock::now();
    const float lr = schedule.lr(e);
    double loss_sum = 0;
    int64_t wrong = 0, seen = 0;
    const auto batches = batcher.batches(e);
    for (int64_t b = 0; b < nb; ++b) {
      const data::Batch batch = data::gather(splits.train, batches[static_cast<std::size_t>(b)]);
      const Tensor x = as_model_input(batch.images, model);
      optimizer->discard_grads();
      const Var out = model.forward(Var(x), true);
      const Var loss = compute_loss(recipe.loss, out, batch.labels);
      const double lv = loss.value().data<float>()[0];
      LOWBIT_CHECK(std::isfinite(lv), "epoch ", e + 1, ", batch ", b + 1, ": the loss is ", lv,
                   " (diverged; try a lower learning rate)");
      wrong += count_wrong(out.value(), batch.labels.data<int32_t>());
      autograd::backward(loss);
      optimizer->step(lr);
      ++steps;
      const int64_t bn = batch.labels.numel();
      loss_sum += lv * static_cast<double>(bn);
      seen += bn;
      if (progress.on_batch)
        progress.on_batch(e, b, nb, loss_sum / static_cast<double>(seen),
                          static_cast<double>(wrong) / static_cast<double>(seen),
                          std::chrono::duration<double>(clock::now() - t0).count());
    }
    EpochMetrics m;
    m.epoch = e + 1;
    m.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(seen, 1));
    m.train_error = static_cast<double>(wrong) / static_cast<double>(std::max<int64_t>(seen, 1));
    m.valid_error = error_rate(model, splits.valid, eval_bs);
    m.test_error = error_rate(model, splits.test, eval_bs);
    m.lr = lr;
    // With no validation part, the last epoch is the one kept.
    m.best = tracker.record(m.epoch, std::isnan(m.valid_error) ? 0.0 : m.valid_error, m.test_error) ||
             std::isnan(m.valid_error);
    m.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    result.history.push_back(m);

    json history = json::array();
    for (const auto& h : result.history) history.push_back(metrics_json(h));
    const json base = {{"kind", "lowbit-training-state"}, {"recipe", recipe_json(recipe)}, {"seed", recipe.training.seed}};
    // Best model first: if the process dies between the two writes, the checkpoint still points
    // at an epoch whose best model is on disk.
    if (m.best) {
      io::ModelFile f;
      json meta = base;
      meta["epoch"] = m.epoch;
      meta["valid_error"] = m.valid_error;
      meta["test_error"] = m.test_error;
      f.metadata = meta.dump();
      add_model_state(f, model);
      io::save(best_path.string(), f);
    }
    {
      io::ModelFile f;
      json meta = base;
      meta["epoch"] = m.epoch;
      meta["steps"] = steps;
      meta["random_streams"] = random_streams(model);
      meta["history"] = history;
      f.metadata = meta.dump();
      add_model_state(f, model);
      for (const auto& [name, t] : optimizer->state()) f.add("optim/" + name, to_array(t));
      io::save(ckpt_path.string(), f);
    }
    std::string lines;
    for (const auto& h : history) {
      json line = h;
      line.erase("best");
      lines += line.dump() + "\n";
    }
    write_text(metrics_path, lines);
    if (progress.on_epoch) progress.on_epoch(m, epochs);
  }

  if (tracker.has_best()) {
    result.best_epoch = tracker.best().epoch;
    result.best_valid_error = tracker.best().valid_error;
    result.best_test_error = tracker.best().test_error;
  } else if (!result.history.empty()) {
    result.best_epoch = result.history.back().epoch;
    result.best_test_error = result.history.back().test_error;
  }
  result.seconds = std::chrono::duration<double>(clock::now() - t_start).count();
  return result;
}

TrainedModel load_trained(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) {
    p /= "best.lbm";
    LOWBIT_CHECK(fs::exists(p), path, ": no best.lbm in this folder (is it the --out folder of 'lowbit train'?)");
  }
  const io::ModelFile f = io::load(p.string());
  json meta;
  try {
    meta = json::parse(f.metadata);
  } catch (const json::parse_error&) {
    fail(p.string(), ": metadata is not JSON");
  }
  LOWBIT_CHECK(meta.value("kind", "") == "lowbit-training-state" && meta.contains("recipe"), p.string(),
               ": not a trained model written by 'lowbit train' (no recipe in its metadata)");
  TrainedModel t{parse_recipe(meta["recipe"].dump(), p.string()), Sequential(), 0, 0, 0};
  t.model = build_model(t.recipe.model, t.recipe.training.seed);
  load_model_state(f, t.model, p.string());
  t.epoch = meta.value("epoch", int64_t{0});
  t.valid_error = meta.value("valid_error", 0.0);
  t.test_error = meta.value("test_error", 0.0);
  return t;
}

}  // namespace lowbit::nn
