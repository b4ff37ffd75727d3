// build_model: a strict reader of the model JSON (model.h), and describe().
#include "lowbit/nn/model.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/nn/layers.h"
#include "lowbit/quant/rng.h"

namespace lowbit::nn {
namespace {

using nlohmann::json;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

struct TypeInfo {
  const char* type;
  std::vector<std::string> keys;  // besides "type" and "quantize_grad_bits"
};

const std::vector<TypeInfo>& types() {
  static const std::vector<TypeInfo> t{
      {"dense", {"units", "bias"}},
      {"binary_dense", {"units", "bias", "glorot_lr_scale"}},
      {"kbit_dense", {"units", "bits", "bias", "glorot_lr_scale"}},
      {"conv2d", {"channels", "kernel", "stride", "padding", "bias"}},
      {"binary_conv2d", {"channels", "kernel", "stride", "padding", "bias", "glorot_lr_scale"}},
      {"kbit_conv2d", {"channels", "kernel", "stride", "padding", "bits", "bias", "glorot_lr_scale"}},
      {"max_pool2d", {"size", "stride"}},
      {"batch_norm", {"momentum", "eps", "shift_based"}},
      {"hardtanh", {}},
      {"sign", {"stochastic"}},
      {"quant_act", {"bits", "signed"}},
      {"dropout", {"p"}},
      {"flatten", {}},
      {"first_layer_8bit",
       {"units", "channels", "kernel", "stride", "padding", "bias", "glorot_lr_scale", "bitplanes"}},
  };
  return t;
}

// Typed, checked access to one layer object; every error names the layer and the key.
class Spec {
 public:
  Spec(const json& j, std::size_t index) : j_(j), index_(index) {
    LOWBIT_CHECK(j.is_object(), "model: layer ", index, " must be a JSON object, got ", j.dump());
    LOWBIT_CHECK(j.contains("type"), "model: layer ", index, ": missing required key 'type'");
    LOWBIT_CHECK(j["type"].is_string(), "model: layer ", index, ": 'type' must be a string, got ", j["type"].dump());
    type_ = j["type"].get<std::string>();
    const TypeInfo* info = nullptr;
    std::vector<std::string> names;
    for (const auto& t : types()) {
      names.push_back(t.type);
      if (type_ == t.type) info = &t;
    }
    LOWBIT_CHECK(info != nullptr, "model: layer ", index, ": unknown type '", type_, "' (known types: ", join(names),
                 ")");
    std::vector<std::string> allowed{"type", "quantize_grad_bits"};
    allowed.insert(allowed.end(), info->keys.begin(), info->keys.end());
    for (const auto& [key, value] : j.items())
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(where(), ": unknown key '", key, "' (allowed keys: ", join(allowed), ")");
  }

  const std::string& type() const { return type_; }
  std::string where() const { return "model: layer " + std::to_string(index_) + " (" + type_ + ")"; }
  bool has(const char* key) const { return j_.contains(key); }

  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    LOWBIT_CHECK(has(key), where(), ": missing required key '", key, "'");
    const json& v = j_[key];
    LOWBIT_CHECK(v.is_number_integer() && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi, where(), ": '", key,
                 "' must be an integer in [", lo, ", ", hi, "], got ", v.dump());
    return v.get<int64_t>();
  }
  int64_t integer(const char* key, int64_t lo, int64_t hi, int64_t dflt) const {
    return has(key) ? integer(key, lo, hi) : dflt;
  }
  bool boolean(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    const json& v = j_[key];
    LOWBIT_CHECK(v.is_boolean(), where(), ": '", key, "' must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  // A number in [lo, hi] (hi_open: [lo, hi)).
  float number(const char* key, double lo, double hi, bool hi_open) const {
    LOWBIT_CHECK(has(key), where(), ": missing required key '", key, "'");
    const json& v = j_[key];
    const bool ok = v.is_number() && v.get<double>() >= lo && (hi_open ? v.get<double>() < hi : v.get<double>() <= hi);
    LOWBIT_CHECK(ok, where(), ": '", key, "' must be a number in [", lo, ", ", hi, hi_open ? ")" : "]", ", got ",
                 v.dump());
    return v.get<float>();
  }
  float number(const char* key, double lo, double hi, bool hi_open, float dflt) const {
    return has(key) ? number(key, lo, hi, hi_open) : dflt;
  }

 private:
  const json& j_;
  std::size_t index_;
  std::string type_;
};

constexpr int64_t kMaxDim = int64_t{1} << 31;

ConvOptions conv_options(const Spec& s) {
  ConvOptions c;
  c.kernel = s.integer("kernel", 1, 1024);
  c.stride = static_cast<int>(s.integer("stride", 1, 1024, 1));
  c.padding = static_cast<int>(s.integer("padding", 0, 1024, 0));
  return c;
}

int64_t channels_of(const Spec& s, const Shape& in) {
  if (in.size() != 3) fail(s.where(), ": input shape ", shape_str(in), " is not [C, H, W]");
  return in[0];
}

int64_t features_of(const Spec& s, const Shape& in) {
  if (in.size() != 1)
    fail(s.where(), ": input shape ", shape_str(in), " is not 1-D (add {\"type\": \"flatten\"} before this layer)");
  return in[0];
}

std::unique_ptr<Module> make_layer(const Spec& s, const Shape& in, uint64_t seed) {
  const std::string& t = s.type();
  if (t == "dense")
    return std::make_unique<Dense>(features_of(s, in), s.integer("units", 1, kMaxDim), s.boolean("bias", true), seed);
  if (t == "binary_dense")
    return std::make_unique<BinaryDense>(features_of(s, in), s.integer("units", 1, kMaxDim), s.boolean("bias", false),
                                         s.boolean("glorot_lr_scale", true), seed);
  if (t == "kbit_dense")
    return std::make_unique<KbitDense>(features_of(s, in), s.integer("units", 1, kMaxDim),
                                       static_cast<int>(s.integer("bits", 1, 8)), s.boolean("bias", false),
                                       s.boolean("glorot_lr_scale", true), seed);
  if (t == "conv2d")
    return std::make_unique<Conv2d>(channels_of(s, in), s.integer("channels", 1, kMaxDim), conv_options(s),
                                    s.boolean("bias", true), seed);
  if (t == "binary_conv2d")
    return std::make_unique<BinaryConv2d>(channels_of(s, in), s.integer("channels", 1, kMaxDim), conv_options(s),
                                          s.boolean("bias", false), s.boolean("glorot_lr_scale", true), seed);
  if (t == "kbit_conv2d")
    return std::make_unique<KbitConv2d>(channels_of(s, in), s.integer("channels", 1, kMaxDim), conv_options(s),
                                        static_cast<int>(s.integer("bits", 1, 8)), s.boolean("bias", false),
                                        s.boolean("glorot_lr_scale", true), seed);
  if (t == "max_pool2d") {
    const int size = static_cast<int>(s.integer("size", 1, 1024));
    return std::make_unique<MaxPool2d>(size, static_cast<int>(s.integer("stride", 1, 1024, size)));
  }
  if (t == "batch_norm") {
    if (in.size() != 1 && in.size() != 3)
      fail(s.where(), ": input shape ", shape_str(in), " is not [C] or [C, H, W]");
    return std::make_unique<BatchNorm>(in[0], s.number("momentum", 0.0, 1.0, false, 0.1f),
                                       s.number("eps", 1e-30, 1.0, false, 1e-4f), s.boolean("shift_based", false));
  }
  if (t == "hardtanh") return std::make_unique<HardTanh>();
  if (t == "sign") return std::make_unique<Sign>(s.boolean("stochastic", false), seed);
  if (t == "quant_act")
    return std::make_unique<QuantAct>(static_cast<int>(s.integer("bits", 1, 8)), s.boolean("signed", false));
  if (t == "dropout") return std::make_unique<Dropout>(s.number("p", 0.0, 1.0, true), seed);
  if (t == "flatten") return std::make_unique<Flatten>();
  // first_layer_8bit: a dense form (units) or a conv form (channels, kernel, ...), not both.
  const bool dense = s.has("units"), conv = s.has("channels");
  if (dense == conv)
    fail(s.where(), dense ? ": give either 'units' (dense) or 'channels' (conv), not both"
                          : ": missing required key 'units' (dense) or 'channels' (conv)");
  if (dense)
    for (const char* k : {"kernel", "stride", "padding"})
      if (s.has(k)) fail(s.where(), ": key '", k, "' applies to the conv form (with 'channels'), not to 'units'");
  std::unique_ptr<Module> inner;
  if (dense)
    inner = std::make_unique<BinaryDense>(features_of(s, in), s.integer("units", 1, kMaxDim), s.boolean("bias", false),
                                          s.boolean("glorot_lr_scale", true), seed);
  else
    inner = std::make_unique<BinaryConv2d>(channels_of(s, in), s.integer("channels", 1, kMaxDim), conv_options(s),
                                           s.boolean("bias", false), s.boolean("glorot_lr_scale", true), seed);
  return std::make_unique<FirstLayer8bit>(std::move(inner), s.boolean("bitplanes", false));
}

}  // namespace

Sequential build_model(const std::string& json_text, uint64_t seed) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    fail("model: invalid JSON: ", e.what());
  }
  LOWBIT_CHECK(j.is_object(), "model: expected a JSON object with 'input_shape' and 'layers', got ", j.dump());
  for (const auto& [key, value] : j.items())
    if (key != "input_shape" && key != "layers")
      fail("model: unknown key '", key, "' (allowed keys: input_shape, layers)");
  LOWBIT_CHECK(j.contains("input_shape"), "model: missing required key 'input_shape'");
  LOWBIT_CHECK(j.contains("layers"), "model: missing required key 'layers'");
  const json& shape_j = j["input_shape"];
  bool shape_ok = shape_j.is_array() && !shape_j.empty();
  Shape shape;
  if (shape_ok)
    for (const auto& d : shape_j) {
      shape_ok &= d.is_number_integer() && d.get<int64_t>() >= 1 && d.get<int64_t>() <= kMaxDim;
      if (shape_ok) shape.push_back(d.get<int64_t>());
    }
  LOWBIT_CHECK(shape_ok, "model: 'input_shape' must be a non-empty array of positive integers, got ", shape_j.dump());
  const json& layers = j["layers"];
  LOWBIT_CHECK(layers.is_array() && !layers.empty(), "model: 'layers' must be a non-empty array, got ", layers.dump());

  Sequential model(shape);
  Shape cur = shape;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Spec spec(layers[i], i);
    std::unique_ptr<Module> m = make_layer(spec, cur, quant::derive_seed(seed, i));
    m->set_quantize_grad_bits(static_cast<int>(spec.integer("quantize_grad_bits", 0, 16, 0)));
    try {
      cur = m->output_shape(cur);
    } catch (const Error& e) {
      fail(spec.where(), ": ", e.what());
    }
    model.add(std::move(m));
  }
  return model;
}

namespace {
std::string options_of(const Module& m) {
  std::ostringstream os;
  auto weights = [&os](WeightMode mode, int bits, bool bias, bool glorot, const Parameter& w) {
    if (mode == WeightMode::kbit) os << " bits=" << bits;
    if (bias) os << " bias";
    if (mode != WeightMode::real && glorot) os << " lr_scale=" << w.lr_scale;
  };
  if (const auto* d = m.as<DenseBase>()) {
    os << "units=" << d->out_features();
    weights(d->weight_mode(), d->bits(), d->has_bias(), d->glorot_lr_scale(), *d->weight());
  } else if (const auto* c = m.as<ConvBase>()) {
    os << "channels=" << c->out_channels() << " kernel=" << c->kernel() << " stride=" << c->stride()
       << " padding=" << c->padding();
    weights(c->weight_mode(), c->bits(), c->has_bias(), c->glorot_lr_scale(), *c->weight());
  } else if (const auto* p = m.as<MaxPool2d>()) {
    os << "size=" << p->size() << " stride=" << p->stride();
  } else if (const auto* b = m.as<BatchNorm>()) {
    os << "momentum=" << b->momentum() << " eps=" << b->eps() << (b->shift_based() ? " shift_based" : "");
  } else if (const auto* s = m.as<Sign>()) {
    os << (s->stochastic() ? "stochastic" : "deterministic");
  } else if (const auto* q = m.as<QuantAct>()) {
    os << "bits=" << q->bits() << (q->is_signed() ? " signed" : " unsigned");
  } else if (const auto* dr = m.as<Dropout>()) {
    os << "p=" << dr->p();
  } else if (const auto* f = m.as<FirstLayer8bit>()) {
    os << "[" << f->inner().kind() << " " << options_of(f->inner()) << "]" << (f->bitplanes() ? " bitplanes" : "");
  }
  if (m.quantize_grad_bits() > 0) os << " grad_bits=" << m.quantize_grad_bits();
  return os.str();
}
}  // namespace

std::string describe(const Sequential& model) {
  std::ostringstream os;
  os << "input " << shape_str(model.input_shape()) << "\n";
  Shape cur = model.input_shape();
  int64_t total = 0;
  for (std::size_t i = 0; i < model.size(); ++i) {
    const Module& m = model.at(i);
    cur = m.output_shape(cur);
    const int64_t n = m.num_parameters();
    total += n;
    std::string opts = options_of(m);
    os << i << " " << m.kind() << (opts.empty() ? "" : " " + opts) << " -> " << shape_str(cur) << ", " << n
       << " params\n";
  }
  os << "total " << total << " params\n";
  return os.str();
}

}  // namespace lowbit::nn
