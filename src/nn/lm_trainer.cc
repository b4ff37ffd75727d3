// Language-model recipes, the truncated-BPTT training loop, best model and checkpoints (see
// nn/lm.h). Shares the strict recipe sections, atomic writes and tensor conversion with the
// classifier trainer (nn/internal.h).
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/core/version.h"
#include "lowbit/data/ptb.h"
#include "lowbit/io/model_file.h"
#include "lowbit/nn/lm.h"
#include "lowbit/nn/optim.h"
#include "nn/internal.h"

namespace lowbit::nn {
namespace fs = std::filesystem;
using detail::json;
using detail::Section;
using autograd::Var;

namespace {

constexpr const char* kStateKind = "lowbit-lm-training-state";

json layer_json(const LmLayerSpec& l) {
  json j = {{"type", l.type}, {"units", l.units}};
  if (l.type == "lstm") {
    j["cifg"] = l.cifg;
    j["peephole"] = l.peephole;
    j["layer_norm"] = l.layer_norm;
    j["projection"] = l.projection;
    j["cell_clip"] = l.cell_clip;
    j["proj_clip"] = l.proj_clip;
  }
  return j;
}

json lm_recipe_json(const LmRecipe& r) {
  json layers = json::array();
  for (const auto& l : r.model.layers) layers.push_back(layer_json(l));
  json data = {{"dataset", r.data.dataset}, {"path", r.data.path}};
  if (r.data.train_tokens > 0) data["train_tokens"] = r.data.train_tokens;
  if (r.data.valid_tokens > 0) data["valid_tokens"] = r.data.valid_tokens;
  if (r.data.test_tokens > 0) data["test_tokens"] = r.data.test_tokens;
  json model = {{"embedding_dim", r.model.embedding_dim}, {"layers", layers}, {"dropout", r.model.dropout},
                {"init_scale", r.model.init_scale}};
  if (r.model.vocab_size > 0) model["vocab_size"] = r.model.vocab_size;
  if (r.model.weight_bits > 0 || r.model.activation_bits > 0)
    model["quantization"] = {{"weight_bits", r.model.weight_bits}, {"activation_bits", r.model.activation_bits}};
  const auto& o = r.optimizer;
  json opt = {{"type", o.type},       {"lr", o.lr},       {"momentum", o.momentum}, {"weight_decay", o.weight_decay},
              {"schedule", o.schedule}, {"decay", o.decay}, {"decay_start", o.decay_start},
              {"clip_grad_norm", o.clip_grad_norm}};
  const auto& t = r.training;
  json j = {{"name", r.name}, {"task", "language_model"}};
  if (!r.description.empty()) j["description"] = r.description;
  j["data"] = data;
  j["model"] = model;
  j["optimizer"] = opt;
  j["training"] = {{"epochs", t.epochs},
                   {"batch_size", t.batch_size},
                   {"bptt", t.bptt},
                   {"eval_batch_size", t.eval_batch_size},
                   {"seed", t.seed}};
  return j;
}

json read_json_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(what, " ", path, ": cannot open the file (", fs::exists(path) ? "not readable" : "no such file", ")");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    fail(what, " ", path, ": invalid JSON: ", e.what());
  }
}

}  // namespace

std::string LmRecipe::to_json() const { return lm_recipe_json(*this).dump(); }

std::string recipe_task(const std::string& path) {
  const json j = read_json_file(path, "recipe");
  if (!j.is_object() || !j.contains("task")) return "classification";
  const json& t = j.at("task");
  if (!t.is_string() || (t.get<std::string>() != "language_model" && t.get<std::string>() != "classification"))
    fail("recipe ", path, ": 'task': ", t.dump(), " is not one of \"classification\", \"language_model\"");
  return t.get<std::string>();
}

LmRecipe parse_lm_recipe(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("recipe ", source, ": invalid JSON: ", e.what());
  }
  LmRecipe r;
  r.source = source;
  Section top(j, "", source);
  r.name = top.str("name", std::nullopt);
  (void)top.str("task", std::nullopt, {"language_model"});
  r.description = top.str("description", "");

  Section d(top.raw("data"), "data", source);
  r.data.dataset = d.str("dataset", "ptb", {"ptb"});
  r.data.path = d.str("path", "data/ptb");
  r.data.train_tokens = d.integer("train_tokens", 0, 0, int64_t{1} << 40);
  r.data.valid_tokens = d.integer("valid_tokens", 0, 0, int64_t{1} << 40);
  r.data.test_tokens = d.integer("test_tokens", 0, 0, int64_t{1} << 40);
  d.finish();

  Section m(top.raw("model"), "model", source);
  r.model.vocab_size = m.integer("vocab_size", 0, 0, 1 << 24);
  r.model.embedding_dim = m.integer("embedding_dim", std::nullopt, 1, 1 << 16);
  r.model.dropout = m.number("dropout", 0.0, 0.0, 0.99);
  r.model.init_scale = m.number("init_scale", 0.1, 1e-6, 10.0);
  const json& layers = m.raw("layers");
  if (!layers.is_array() || layers.empty()) fail(m.where("layers"), ": expected a non-empty array of layers");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    Section ls(layers[i], "model.layers[" + std::to_string(i) + "]", source);
    LmLayerSpec l;
    l.type = ls.str("type", std::nullopt, {"lstm", "gru", "rnn"});
    l.units = ls.integer("units", std::nullopt, 1, 1 << 16);
    if (l.type == "lstm") {
      l.cifg = ls.boolean("cifg", false);
      l.peephole = ls.boolean("peephole", false);
      l.layer_norm = ls.boolean("layer_norm", false);
      l.projection = ls.integer("projection", 0, 0, 1 << 16);
      l.cell_clip = ls.number("cell_clip", 0.0, 0.0, 1e6);
      l.proj_clip = ls.number("proj_clip", 0.0, 0.0, 1e6);
      if (l.proj_clip > 0 && l.projection == 0) fail(ls.where("proj_clip"), ": needs a projection");
    }
    ls.finish();
    r.model.layers.push_back(l);
  }
  if (m.has("quantization")) {
    Section q(m.raw("quantization"), "model.quantization", source);
    r.model.weight_bits = static_cast<int>(q.integer("weight_bits", 0, 0, 8));
    r.model.activation_bits = static_cast<int>(q.integer("activation_bits", 0, 0, 8));
    q.finish();
  }
  m.finish();

  Section o(top.raw("optimizer"), "optimizer", source);
  auto& op = r.optimizer;
  op.type = o.str("type", "sgd", {"sgd"});
  op.lr = o.number("lr", std::nullopt, 0.0, 1e4);
  op.momentum = o.number("momentum", 0.0, 0.0, 0.999999);
  op.weight_decay = o.number("weight_decay", 0.0, 0.0, 1.0);
  op.schedule = o.str("schedule", "plateau", {"constant", "plateau", "epoch"});
  op.decay = o.number("decay", 4.0, 1.0, 1e6);
  op.decay_start = o.integer("decay_start", 0, 0, 1 << 20);
  op.clip_grad_norm = o.number("clip_grad_norm", 0.25, 0.0, 1e9);
  o.finish();

  Section t(top.raw("training"), "training", source);
  r.training.epochs = t.integer("epochs", std::nullopt, 1, 1000000);
  r.training.batch_size = t.integer("batch_size", std::nullopt, 1, 1 << 20);
  r.training.bptt = t.integer("bptt", std::nullopt, 1, 1 << 20);
  r.training.eval_batch_size = t.integer("eval_batch_size", 10, 1, 1 << 20);
  r.training.seed = static_cast<uint64_t>(t.integer("seed", 1, 0, INT64_MAX));
  t.finish();
  top.finish();
  try {  // the model's own checks (layer options), named with the file
    LmSpec probe = r.model;
    probe.vocab_size = std::max<int64_t>(1, probe.vocab_size);
    probe.embedding_dim = std::min<int64_t>(probe.embedding_dim, 1);
    for (auto& l : probe.layers) l.units = 1, l.projection = l.projection > 0 ? 1 : 0;
    (void)LanguageModel(probe, 0);
  } catch (const Error& e) {
    fail("recipe ", source, ": ", e.what());
  }
  return r;
}

LmRecipe load_lm_recipe(const std::string& path) { return parse_lm_recipe(read_json_file(path, "recipe").dump(), path); }

// ---- data -------------------------------------------------------------------------------------

namespace {

struct LmData {
  Tensor train, valid, test;
  int64_t vocab = 0;
};

Tensor first_tokens(const Tensor& t, int64_t n) {
  if (n <= 0 || n >= t.numel()) return t;
  return t.slice_rows(0, n).clone();
}

LmData load_lm_data(const LmRecipe& r) {
  const data::PtbCorpus c = data::load_ptb(r.data.path);
  LmData d{first_tokens(c.train, r.data.train_tokens), first_tokens(c.valid, r.data.valid_tokens),
           first_tokens(c.test, r.data.test_tokens), c.vocab.size()};
  auto need = [&](const Tensor& t, const char* part, int64_t batch) {
    LOWBIT_CHECK(t.numel() >= 2 * batch, "recipe ", r.source, ": the ", part, " part of ", r.data.path, " has ",
                 t.numel(), " tokens; batches of ", batch, " streams need at least ", 2 * batch);
  };
  need(d.train, "training", r.training.batch_size);
  need(d.valid, "validation", r.training.eval_batch_size);
  need(d.test, "test", r.training.eval_batch_size);
  return d;
}

void check_ids(const Tensor& t, int64_t vocab, const std::string& what) {
  const int32_t* p = t.data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    LOWBIT_CHECK(p[i] >= 0 && p[i] < vocab, what, ": token id ", p[i], " at position ", i,
                 " is outside the model's vocabulary [0, ", vocab, ")");
}

json metrics_json(const LmEpochMetrics& e) {
  return {{"epoch", e.epoch},
          {"train_loss", e.train_loss},
          {"train_perplexity", e.train_perplexity},
          {"valid_perplexity", e.valid_perplexity},
          {"test_perplexity", e.test_perplexity},
          {"lr", e.lr},
          {"seconds", e.seconds},
          {"best", e.best}};
}

LmEpochMetrics metrics_from(const json& j) {
  LmEpochMetrics e;
  e.epoch = j.at("epoch").get<int64_t>();
  e.train_loss = j.at("train_loss").get<double>();
  e.train_perplexity = j.at("train_perplexity").get<double>();
  e.valid_perplexity = j.at("valid_perplexity").get<double>();
  e.test_perplexity = j.at("test_perplexity").get<double>();
  e.lr = j.at("lr").get<double>();
  e.seconds = j.at("seconds").get<double>();
  e.best = j.value("best", false);
  return e;
}

void add_params(io::ModelFile& f, const LanguageModel& m) {
  for (const auto& p : m.parameters()) f.add("param/" + p->name, detail::to_array(p->value));
}

void load_params(const io::ModelFile& f, LanguageModel& m, const std::string& source) {
  for (const auto& p : m.parameters()) {
    const io::Array& a = f.get("param/" + p->name);
    LOWBIT_CHECK(a.type() == io::ElemType::F32 && a.shape() == p->value.shape(), source, ": tensor '", p->name, "' is ",
                 io::elem_type_name(a.type()), shape_str(a.shape()), " but the model's is F32",
                 shape_str(p->value.shape()));
    const auto v = a.values<float>();
    std::copy(v.begin(), v.end(), p->value.data<float>());
  }
}

json comparable(const LmRecipe& r) {
  json j = lm_recipe_json(r);
  j["training"].erase("epochs");
  j["data"].erase("path");
  j.erase("name");
  j.erase("description");
  return j;
}

// The learning rate of 0-based epoch e for the fixed schedules.
double scheduled_lr(const LmRecipe::Optimizer& o, int64_t e) {
  if (o.schedule != "epoch") return o.lr;
  return o.lr / std::pow(o.decay, static_cast<double>(std::max<int64_t>(0, e + 1 - o.decay_start)));
}

}  // namespace

// ---- the loop ---------------------------------------------------------------------------------

LmTrainResult train_lm(const LmRecipe& recipe_in, const LmTrainOptions& opt, const LmProgress& progress) {
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  LOWBIT_CHECK(!opt.out_dir.empty(), "train: no output folder given");
  const fs::path dir(opt.out_dir);
  const fs::path ckpt_path = dir / "checkpoint.lbm", best_path = dir / "best.lbm";
  const fs::path metrics_path = dir / "metrics.jsonl", run_path = dir / "run.json";
  if (!opt.resume && fs::exists(ckpt_path))
    fail(ckpt_path.string(), " already exists: pass --resume to continue that run, or choose another --out folder");
  if (opt.resume && !fs::exists(ckpt_path)) fail("--resume: ", ckpt_path.string(), " does not exist (nothing to resume)");

  LmRecipe recipe = recipe_in;
  const LmData data = load_lm_data(recipe);
  if (recipe.model.vocab_size == 0) recipe.model.vocab_size = data.vocab;
  LOWBIT_CHECK(recipe.model.vocab_size >= data.vocab, "recipe ", recipe.source, ": 'model.vocab_size' ",
               recipe.model.vocab_size, " is smaller than the vocabulary of ", recipe.data.path, " (", data.vocab,
               " words): token ids would be out of range");
  check_ids(data.train, recipe.model.vocab_size, recipe.data.path + " (training part)");

  std::optional<io::ModelFile> ckpt;
  json ckpt_meta;
  if (opt.resume) {
    ckpt = io::load(ckpt_path.string());
    ckpt_meta = json::parse(ckpt->metadata);
    LOWBIT_CHECK(ckpt_meta.value("kind", "") == kStateKind && ckpt_meta.contains("recipe") &&
                     ckpt_meta.contains("epoch"),
                 ckpt_path.string(), ": not a language-model training checkpoint");
    const LmRecipe saved = parse_lm_recipe(ckpt_meta["recipe"].dump(), ckpt_path.string());
    const json a = comparable(saved), b = comparable(recipe);
    for (const auto& [key, value] : a.items())
      if (!b.contains(key) || b[key] != value)
        fail("--resume: the recipe's '", key, "' differs from the one ", ckpt_path.string(), " was trained with (",
             value.dump(), " there, ", b.contains(key) ? b[key].dump() : "nothing", " now)");
  }

  LanguageModel model(recipe.model, recipe.training.seed);
  const ParameterList& params = model.parameters();
  Sgd optimizer(params, SgdOptions{static_cast<float>(recipe.optimizer.momentum), false,
                                   static_cast<float>(recipe.optimizer.weight_decay)});
  LmTrainResult result;
  int64_t first_epoch = 0, steps = 0;
  double lr = recipe.optimizer.lr;
  double best_valid = INFINITY;
  if (ckpt) {
    load_params(*ckpt, model, ckpt_path.string());
    NamedTensors state;
    for (const auto& [name, a] : ckpt->tensors)
      if (name.rfind("optim/", 0) == 0) state.emplace_back(name.substr(6), detail::from_array(a));
    optimizer.load_state(state);
    first_epoch = ckpt_meta["epoch"].get<int64_t>();
    steps = ckpt_meta.value("steps", int64_t{0});
    lr = ckpt_meta.value("lr", lr);
    model.set_random_calls(ckpt_meta.value("random_calls", uint64_t{0}));
    for (const auto& e : ckpt_meta["history"]) {
      result.history.push_back(metrics_from(e));
      if (result.history.back().best) {
        best_valid = result.history.back().valid_perplexity;
        result.best_epoch = result.history.back().epoch;
        result.best_valid_perplexity = best_valid;
        result.best_test_perplexity = result.history.back().test_perplexity;
      }
    }
  }
  fs::create_directories(dir);

  const auto& tr = recipe.training;
  const data::BpttBatches batches(data.train, tr.batch_size, tr.bptt);
  const int64_t nw = opt.max_windows > 0 ? std::min(opt.max_windows, batches.num_windows()) : batches.num_windows();
  const int64_t last = opt.stop_after > 0 ? std::min(tr.epochs, opt.stop_after) : tr.epochs;
  detail::write_text(run_path, json{{"recipe", lm_recipe_json(recipe)},
                                    {"recipe_file", recipe.source},
                                    {"seed", tr.seed},
                                    {"threads", num_threads()},
                                    {"lowbit_version", version()},
                                    {"command", opt.command_line},
                                    {"started", detail::now_iso()},
                                    {"resumed_from_epoch", first_epoch},
                                    {"train_tokens", data.train.numel()},
                                    {"valid_tokens", data.valid.numel()},
                                    {"test_tokens", data.test.numel()},
                                    {"windows_per_epoch", nw},
                                    {"parameters", model.num_parameters()}}
                                   .dump(2) +
                                   "\n");
  if (progress.on_start) {
    std::ostringstream os;
    os << recipe.name << ": " << model.num_parameters() << " parameters, vocabulary " << recipe.model.vocab_size << ", "
       << data.train.numel() << " / " << data.valid.numel() << " / " << data.test.numel()
       << " train / valid / test tokens, batch " << tr.batch_size << " x bptt " << tr.bptt << " (" << nw
       << " windows), " << num_threads() << " threads";
    if (first_epoch > 0) os << "; resuming after epoch " << first_epoch;
    progress.on_start(os.str());
  }

  for (int64_t e = first_epoch; e < last; ++e) {
    const auto t0 = clock::now();
    if (recipe.optimizer.schedule == "epoch") lr = scheduled_lr(recipe.optimizer, e);
    LanguageModel::State state = model.zero_state();
    double loss_sum = 0;
    int64_t seen = 0;
    for (int64_t k = 0; k < nw; ++k) {
      const auto w = batches.window(k);
      const Tensor target = w.target.is_contiguous() ? w.target : w.target.clone();
      optimizer.discard_grads();
      const Var logits = model.forward(w.input, state, true);
      const Var loss = autograd::softmax_cross_entropy(
          logits, std::span<const int32_t>(target.data<int32_t>(), static_cast<std::size_t>(target.numel())));
      const double lv = loss.value().data<float>()[0];
      LOWBIT_CHECK(std::isfinite(lv), "epoch ", e + 1, ", window ", k + 1, ": the loss is ", lv,
                   " (diverged; try a lower learning rate or clip_grad_norm)");
      autograd::backward(loss);
      if (recipe.optimizer.clip_grad_norm > 0) (void)clip_grad_norm(params, recipe.optimizer.clip_grad_norm);
      optimizer.step(static_cast<float>(lr));
      ++steps;
      loss_sum += lv * static_cast<double>(target.numel());
      seen += target.numel();
      if (progress.on_batch)
        progress.on_batch(e, k, nw, loss_sum / static_cast<double>(seen),
                          std::chrono::duration<double>(clock::now() - t0).count());
    }
    LmEpochMetrics m;
    m.epoch = e + 1;
    m.lr = lr;
    m.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, seen));
    m.train_perplexity = std::exp(m.train_loss);
    m.valid_perplexity = evaluate_perplexity(model, data.valid, tr.eval_batch_size, tr.bptt).perplexity;
    m.test_perplexity = evaluate_perplexity(model, data.test, tr.eval_batch_size, tr.bptt).perplexity;
    m.best = m.valid_perplexity < best_valid;
    if (m.best) {
      best_valid = m.valid_perplexity;
      result.best_epoch = m.epoch;
      result.best_valid_perplexity = m.valid_perplexity;
      result.best_test_perplexity = m.test_perplexity;
    } else if (recipe.optimizer.schedule == "plateau") {
      lr /= recipe.optimizer.decay;  // for the next epoch
    }
    m.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    result.history.push_back(m);

    json history = json::array();
    for (const auto& h : result.history) history.push_back(metrics_json(h));
    const json base = {{"kind", kStateKind}, {"recipe", lm_recipe_json(recipe)}, {"seed", tr.seed}};
    if (m.best) {  // best model first, so the checkpoint never points at a missing one
      io::ModelFile f;
      json meta = base;
      meta["epoch"] = m.epoch;
      meta["valid_perplexity"] = m.valid_perplexity;
      meta["test_perplexity"] = m.test_perplexity;
      f.metadata = meta.dump();
      add_params(f, model);
      io::save(best_path.string(), f);
    }
    {
      io::ModelFile f;
      json meta = base;
      meta["epoch"] = m.epoch;
      meta["steps"] = steps;
      meta["lr"] = lr;
      meta["random_calls"] = model.random_calls();
      meta["history"] = history;
      f.metadata = meta.dump();
      add_params(f, model);
      for (const auto& [name, t] : optimizer.state()) f.add("optim/" + name, detail::to_array(t));
      io::save(ckpt_path.string(), f);
    }
    std::string lines;
    for (const auto& h : history) {
      json line = h;
      line.erase("best");
      lines += line.dump() + "\n";
    }
    detail::write_text(metrics_path, lines);
    if (progress.on_epoch) progress.on_epoch(m, tr.epochs);
  }
  result.seconds = std::chrono::duration<double>(clock::now() - t_start).count();
  return result;
}

namespace {
fs::path model_path(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) p /= "best.lbm";
  return p;
}
}  // namespace

bool is_language_model_run(const std::string& path) {
  const fs::path p = model_path(path);
  if (!fs::is_regular_file(p)) return false;
  const io::ModelFile f = io::load(p.string());
  try {
    return json::parse(f.metadata).value("kind", "") == kStateKind;
  } catch (const json::parse_error&) {
    return false;
  }
}

TrainedLm load_trained_lm(const std::string& path) {
  const fs::path p = model_path(path);
  LOWBIT_CHECK(fs::exists(p), path, ": no best.lbm here (is it the --out folder of 'lowbit train'?)");
  const io::ModelFile f = io::load(p.string());
  json meta;
  try {
    meta = json::parse(f.metadata);
  } catch (const json::parse_error&) {
    fail(p.string(), ": metadata is not JSON");
  }
  LOWBIT_CHECK(meta.value("kind", "") == kStateKind && meta.contains("recipe"), p.string(),
               ": not a language model written by 'lowbit train'");
  TrainedLm t;
  t.recipe = parse_lm_recipe(meta["recipe"].dump(), p.string());
  LOWBIT_CHECK(t.recipe.model.vocab_size > 0, p.string(), ": the recipe in its metadata has no vocab_size");
  t.model = std::make_unique<LanguageModel>(t.recipe.model, t.recipe.training.seed);
  load_params(f, *t.model, p.string());
  t.epoch = meta.value("epoch", int64_t{0});
  t.valid_perplexity = meta.value("valid_perplexity", 0.0);
  t.test_perplexity = meta.value("test_perplexity", 0.0);
  return t;
}

}  // namespace lowbit::nn
