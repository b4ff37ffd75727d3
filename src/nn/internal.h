// Pieces of the training engine shared by the classifier trainer (trainer.cc) and the
// language-model trainer (lm_trainer.cc); private to src/nn.
#pragma once

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/core/tensor.h"
#include "lowbit/io/model_file.h"

namespace lowbit::nn::detail {

using json = nlohmann::ordered_json;

// ---- strict JSON sections ---------------------------------------------------------------------
// A view of one JSON object that hands out typed values and remembers which keys were read, so
// that finish() can reject whatever is left: a misspelt key is an error, not a silent default.
class Section {
 public:
  Section(const json& j, std::string path, std::string source)
      : j_(j), path_(std::move(path)), source_(std::move(source)) {
    if (!j_.is_object()) fail(where(""), " must be a JSON object, got ", j_.dump());
  }

  bool present(const std::string& key) const { return j_.contains(key); }
  bool has(const std::string& key) {
    seen_.insert(key);
    return j_.contains(key);
  }
  const json& raw(const std::string& key) {
    seen_.insert(key);
    if (!j_.contains(key)) fail(where(key), ": missing required key");
    return j_.at(key);
  }
  std::string str(const std::string& key, std::optional<std::string> def, const std::vector<std::string>& allowed = {}) {
    if (!has(key)) {
      if (!def) fail(where(key), ": missing required key");
      return *def;
    }
    const json& v = j_.at(key);
    if (!v.is_string()) fail(where(key), ": expected a string, got ", v.dump());
    std::string s = v.get<std::string>();
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + ("\"" + a + "\"");
      fail(where(key), ": \"", s, "\" is not one of ", list);
    }
    return s;
  }
  double number(const std::string& key, std::optional<double> def, double lo, double hi) {
    if (!has(key)) {
      if (!def) fail(where(key), ": missing required key");
      return *def;
    }
    const json& v = j_.at(key);
    if (!v.is_number()) fail(where(key), ": expected a number, got ", v.dump());
    const double d = v.get<double>();
    if (!(d >= lo && d <= hi)) fail(where(key), ": ", v.dump(), " is outside [", lo, ", ", hi, "]");
    return d;
  }
  int64_t integer(const std::string& key, std::optional<int64_t> def, int64_t lo, int64_t hi) {
    if (!has(key)) {
      if (!def) fail(where(key), ": missing required key");
      return *def;
    }
    const json& v = j_.at(key);
    if (!v.is_number_integer()) fail(where(key), ": expected an integer, got ", v.dump());
    const int64_t d = v.get<int64_t>();
    if (d < lo || d > hi) fail(where(key), ": ", d, " is outside [", lo, ", ", hi, "]");
    return d;
  }
  bool boolean(const std::string& key, bool def) {
    if (!has(key)) return def;
    const json& v = j_.at(key);
    if (!v.is_boolean()) fail(where(key), ": expected true or false, got ", v.dump());
    return v.get<bool>();
  }
  void finish() const {
    std::string known;
    for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
    for (const auto& [key, value] : j_.items())
      if (!seen_.count(key)) fail(where(key), ": unknown key (known keys here: ", known, ")");
  }
  std::string where(const std::string& key) const {
    std::string p = path_.empty() ? key : (key.empty() ? path_ : path_ + "." + key);
    return "recipe " + source_ + (p.empty() ? "" : ": '" + p + "'");
  }

 private:
  const json& j_;
  std::string path_, source_;
  std::set<std::string> seen_;
};

// Tensors <-> model-file arrays (f32 and i32).
io::Array to_array(const Tensor& t);
Tensor from_array(const io::Array& a);
// Atomic text write: a temporary file in the same folder, then a rename.
void write_text(const std::filesystem::path& path, const std::string& text);
// The current UTC time as ISO 8601.
std::string now_iso();

}  // namespace lowbit::nn::detail
