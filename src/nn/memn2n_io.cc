// MemN2N recipes and trained-model files (nn/memn2n.h).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lowbit/core/error.h"
#include "lowbit/nn/memn2n.h"

namespace lowbit::nn::memn2n {
namespace {

using json = nlohmann::ordered_json;

json read_json(const std::string& path) {
  std::ifstream f(path);
  LOWBIT_CHECK(f.good(), path, ": cannot open the recipe");
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
}

void check_keys(const json& j, std::initializer_list<const char*> allowed, const std::string& where) {
  LOWBIT_CHECK(j.is_object(), where, ": expected a JSON object");
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    std::string list;
    for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
    LOWBIT_CHECK(ok, where, ": unknown key \"", k, "\" (expected one of ", list, ")");
  }
}

template <typename T>
void get(const json& j, const char* key, T& out, const std::string& where) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const json::exception&) {
    fail(where, ": \"", key, "\" has the wrong type (", j.at(key).dump(), ")");
  }
}

Config parse_config(const json& m, const std::string& where) {
  check_keys(m,
             {"dim", "hops", "tying", "encoding", "temporal", "memory_size", "addressing", "score_shift",
              "hamming_sign_grad", "sign_ste_window", "quantization"},
             where);
  Config c;
  get(m, "dim", c.dim, where);
  get(m, "hops", c.hops, where);
  get(m, "temporal", c.temporal, where);
  get(m, "memory_size", c.memory_size, where);
  get(m, "score_shift", c.score_shift, where);
  get(m, "hamming_sign_grad", c.hamming_sign_grad, where);
  get(m, "sign_ste_window", c.sign_ste_window, where);
  std::string s;
  if (m.contains("tying")) {
    get(m, "tying", s, where);
    LOWBIT_CHECK(s == "adjacent" || s == "layerwise", where, ": tying \"", s, "\" (expected adjacent or layerwise)");
    c.tying = s == "adjacent" ? Tying::adjacent : Tying::layerwise;
  }
  if (m.contains("encoding")) {
    get(m, "encoding", s, where);
    LOWBIT_CHECK(s == "bow" || s == "position", where, ": encoding \"", s, "\" (expected bow or position)");
    c.encoding = s == "bow" ? Encoding::bow : Encoding::position;
  }
  if (m.contains("addressing")) {
    get(m, "addressing", s, where);
    LOWBIT_CHECK(s == "dot" || s == "hamming", where, ": addressing \"", s, "\" (expected dot or hamming)");
    c.addressing = s == "dot" ? Addressing::dot : Addressing::hamming;
  }
  if (m.contains("quantization") && !m.at("quantization").is_null()) {
    const json& q = m.at("quantization");
    const std::string w = where + ".quantization";
    check_keys(q,
               {"act_bits", "act_int_bits", "weight_bits", "weight_int_bits", "mq", "product_quant", "memory", "rounding",
                "saturation_mask", "attention", "logit_int_bits"},
               w);
    c.quantized = true;
    get(q, "act_bits", c.act_bits, w);
    get(q, "act_int_bits", c.act_int_bits, w);
    get(q, "weight_bits", c.weight_bits, w);
    get(q, "weight_int_bits", c.weight_int_bits, w);
    get(q, "mq", c.mq, w);
    get(q, "product_quant", c.product_quant, w);
    get(q, "saturation_mask", c.saturation_mask, w);
    get(q, "logit_int_bits", c.logit_int_bits, w);
    if (q.contains("memory")) {
      get(q, "memory", s, w);
      c.memory_act = Config::parse_memory_name(s, w);
    }
    if (q.contains("attention")) {
      get(q, "attention", s, w);
      LOWBIT_CHECK(s == "activation" || s == "fraction", w, ": attention \"", s, "\" (expected activation or fraction)");
      c.attention_fraction = s == "fraction";
    }
    if (q.contains("rounding")) {
      get(q, "rounding", s, w);
      LOWBIT_CHECK(s == "truncate" || s == "nearest", w, ": rounding \"", s, "\" (expected truncate or nearest)");
      c.round_nearest = s == "nearest";
    }
  }
  c.validate();
  return c;
}

json config_to(const Config& c) {
  json m = {{"dim", c.dim},
            {"hops", c.hops},
            {"tying", c.tying == Tying::adjacent ? "adjacent" : "layerwise"},
            {"encoding", c.encoding == Encoding::bow ? "bow" : "position"},
            {"temporal", c.temporal},
            {"memory_size", c.memory_size},
            {"addressing", c.addressing == Addressing::dot ? "dot" : "hamming"},
            {"score_shift", c.score_shift},
            {"hamming_sign_grad", c.hamming_sign_grad},
            {"sign_ste_window", c.sign_ste_window}};
  if (c.quantized)
    m["quantization"] = {{"act_bits", c.act_bits},
                         {"act_int_bits", c.act_int_bits},
                         {"weight_bits", c.weight_bits},
                         {"weight_int_bits", c.weight_int_bits},
                         {"mq", c.mq},
                         {"product_quant", c.product_quant},
                         {"memory", Config::memory_name(c.memory_act)},
                         {"rounding", c.round_nearest ? "nearest" : "truncate"},
                         {"saturation_mask", c.saturation_mask},
                         {"attention", c.attention_fraction ? "fraction" : "activation"},
                         {"logit_int_bits", c.logit_int_bits}};
  else if (c.addressing == Addressing::hamming)
    m["quantization"] = nullptr;
  return m;
}

}  // namespace

bool is_memn2n_recipe(const std::string& path) {
  std::ifstream f(path);
  if (!f.good()) return false;
  try {
    const json j = json::parse(f);
    return j.is_object() && j.contains("kind") && j.at("kind") == "memn2n";
  } catch (const json::exception&) {
    return false;
  }
}

Recipe load_recipe(const std::string& path) {
  const json j = read_json(path);
  check_keys(j, {"name", "kind", "description", "data", "model", "training"}, path);
  Recipe r;
  r.source = path;
  get(j, "name", r.name, path);
  if (j.contains("data")) {
    const json& d = j.at("data");
    const std::string w = path + ": data";
    check_keys(d, {"dataset", "path", "fallback_path", "task", "valid_fraction"}, w);
    get(d, "path", r.data_path, w);
    get(d, "fallback_path", r.fallback_path, w);
    if (d.contains("task")) r.task = d.at("task").is_number() ? std::to_string(d.at("task").get<int>()) : d.at("task").get<std::string>();
    get(d, "valid_fraction", r.valid_fraction, w);
    LOWBIT_CHECK(r.valid_fraction >= 0 && r.valid_fraction < 1, w, ": valid_fraction ", r.valid_fraction,
                 " (expected 0 <= f < 1)");
  }
  r.model = parse_config(j.value("model", json::object()), path + ": model");
  if (j.contains("training")) {
    const json& t = j.at("training");
    const std::string w = path + ": training";
    check_keys(t, {"epochs", "batch", "lr", "lr_halve_every", "clip", "init_std", "linear_start_epochs", "random_time",
                   "shuffle", "clip_weights", "early_stopping", "es_patience", "es_margin", "seed", "runs"},
               w);
    TrainConfig& tc = r.training;
    get(t, "epochs", tc.epochs, w);
    get(t, "batch", tc.batch, w);
    get(t, "lr", tc.lr, w);
    get(t, "lr_halve_every", tc.lr_halve_every, w);
    get(t, "clip", tc.clip, w);
    get(t, "init_std", tc.init_std, w);
    get(t, "linear_start_epochs", tc.linear_start_epochs, w);
    get(t, "random_time", tc.random_time, w);
    get(t, "shuffle", tc.shuffle, w);
    get(t, "early_stopping", tc.early_stopping, w);
    get(t, "clip_weights", tc.clip_weights, w);
    get(t, "es_patience", tc.es_patience, w);
    get(t, "es_margin", tc.es_margin, w);
    get(t, "seed", tc.seed, w);
    get(t, "runs", r.runs, w);
    LOWBIT_CHECK(tc.epochs >= 1 && tc.batch >= 1 && tc.lr > 0 && r.runs >= 1, w,
                 ": epochs, batch, lr and runs must be positive");
    LOWBIT_CHECK(tc.random_time >= 0 && tc.random_time < 1, w, ": random_time ", tc.random_time, " (expected [0, 1))");
  }
  return r;
}

std::string config_json(const Config& c) { return config_to(c).dump(); }

Config config_from_json(const std::string& text, const std::string& source) {
  try {
    return parse_config(json::parse(text), source);
  } catch (const json::exception& e) {
    fail(source, ": bad MemN2N configuration (", e.what(), ")");
  }
}

std::string recipe_json(const Recipe& r) {
  const TrainConfig& t = r.training;
  json j = {{"name", r.name},
            {"kind", "memn2n"},
            {"data",
             {{"dataset", "babi"},
              {"path", r.data_path},
              {"fallback_path", r.fallback_path},
              {"task", r.task},
              {"valid_fraction", r.valid_fraction}}},
            {"model", config_to(r.model)},
            {"training",
             {{"epochs", t.epochs},
              {"batch", t.batch},
              {"lr", t.lr},
              {"lr_halve_every", t.lr_halve_every},
              {"clip", t.clip},
              {"init_std", t.init_std},
              {"linear_start_epochs", t.linear_start_epochs},
              {"random_time", t.random_time},
              {"shuffle", t.shuffle},
              {"clip_weights", t.clip_weights},
              {"early_stopping", t.early_stopping},
              {"es_patience", t.es_patience},
              {"es_margin", t.es_margin},
              {"seed", t.seed},
              {"runs", r.runs}}}};
  return j.dump(2);
}

io::ModelFile to_model_file(const Model& model, std::span<const std::string> vocab, const std::string& extra) {
  LOWBIT_CHECK(static_cast<int64_t>(vocab.size()) == model.vocab_size(), "memn2n: ", vocab.size(),
               " vocabulary words for a model of ", model.vocab_size());
  json meta = json::parse(extra);
  meta["kind"] = "memn2n-train";
  meta["config"] = config_to(model.config());
  meta["vocab"] = std::vector<std::string>(vocab.begin(), vocab.end());
  io::ModelFile f;
  f.metadata = meta.dump();
  for (const Matrix& m : model.matrices())
    f.add(m.name, io::Array::from<float>({m.rows, m.cols}, std::span<const float>(m.w)));
  return f;
}

bool is_memn2n_file(const io::ModelFile& file) {
  try {
    const json m = json::parse(file.metadata);
    return m.contains("kind") && m.at("kind") == "memn2n-train";
  } catch (const json::exception&) {
    return false;
  }
}

Trained from_model_file(const io::ModelFile& file, const std::string& source) {
  LOWBIT_CHECK(is_memn2n_file(file), source, ": not a MemN2N training model (metadata kind \"memn2n-train\" expected)");
  const json meta = json::parse(file.metadata);
  Trained t;
  t.metadata = file.metadata;
  LOWBIT_CHECK(meta.contains("vocab") && meta.at("vocab").is_array(), source, ": metadata lacks the vocabulary");
  t.vocab = meta.at("vocab").get<std::vector<std::string>>();
  const Config cfg = parse_config(meta.at("config"), source + ": config");
  t.model = Model(cfg, static_cast<int64_t>(t.vocab.size()));
  for (Matrix& m : t.model.matrices()) {
    const io::Array& a = file.get(m.name);
    LOWBIT_CHECK(a.type() == io::ElemType::F32 && a.shape() == Shape({m.rows, m.cols}), source, ": tensor ", m.name,
                 " is ", elem_type_name(a.type()), " ", shape_str(a.shape()), " (expected F32 [", m.rows, ", ", m.cols,
                 "])");
    const auto v = a.values<float>();
    m.w.assign(v.begin(), v.end());
  }
  return t;
}

Trained load_trained(const std::string& path) {
  std::string p = path;
  if (std::filesystem::is_directory(p)) p = (std::filesystem::path(p) / "best.lbm").string();
  return from_model_file(io::load(p), p);
}

}  // namespace lowbit::nn::memn2n
