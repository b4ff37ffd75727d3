// Module bookkeeping (names, parameters, buffers, seeds) and Sequential.
#include "lowbit/nn/module.h"

#include "lowbit/autograd/ops.h"
#include "lowbit/core/error.h"
#include "lowbit/quant/rng.h"

namespace lowbit::nn {

namespace {
std::string full_name(const std::string& prefix, const std::string& local) {
  return prefix.empty() ? local : prefix + "." + local;
}
}  // namespace

Var Module::forward(const Var& x, bool training) {
  LOWBIT_CHECK(x.defined(), kind(), " '", name_, "': input is undefined");
  Var y = compute(x, training);
  if (training && quantize_grad_bits_ > 0) y = autograd::quantize_grad(y, quantize_grad_bits_, next_seed());
  return y;
}

ParameterList Module::parameters() const {
  ParameterList out;
  for (const auto& [local, p] : params_) out.push_back(p);
  return out;
}

std::vector<NamedTensor> Module::buffers() const {
  std::vector<NamedTensor> out;
  for (const auto& [local, t] : buffers_) out.push_back({full_name(name_, local), t});
  return out;
}

std::shared_ptr<Parameter> Module::parameter(std::string_view local) const {
  std::string known;
  for (const auto& [l, p] : params_) {
    if (l == local) return p;
    known += (known.empty() ? "" : ", ") + l;
  }
  fail(kind(), " '", name_, "' has no parameter '", local, "' (it has: ", known.empty() ? "none" : known, ")");
}

Tensor Module::buffer(std::string_view local) const {
  std::string known;
  for (const auto& [l, t] : buffers_) {
    if (l == local) return t;
    known += (known.empty() ? "" : ", ") + l;
  }
  fail(kind(), " '", name_, "' has no buffer '", local, "' (it has: ", known.empty() ? "none" : known, ")");
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p->value.numel();
  return n;
}

void Module::set_name(std::string name) {
  name_ = std::move(name);
  for (auto& [local, p] : params_) p->name = full_name(name_, local);
}

void Module::set_quantize_grad_bits(int bits) {
  LOWBIT_CHECK(bits == 0 || (bits >= 1 && bits <= 16), kind(), " '", name_, "': quantize_grad_bits = ", bits,
               " (expected 0 for off, or 1..16)");
  quantize_grad_bits_ = bits;
}

std::shared_ptr<Parameter> Module::register_parameter(std::string local, Tensor value) {
  auto p = Parameter::make(full_name(name_, local), std::move(value));
  params_.emplace_back(std::move(local), p);
  return p;
}

void Module::register_parameter(std::string local, std::shared_ptr<Parameter> p) {
  p->name = full_name(name_, local);
  params_.emplace_back(std::move(local), std::move(p));
}

void Module::register_buffer(std::string local, Tensor value) { buffers_.emplace_back(std::move(local), std::move(value)); }

uint64_t Module::next_seed() { return quant::derive_seed(seed_, calls_++); }

// ---- Sequential ------------------------------------------------------------------------------

Shape Sequential::output_shape(const Shape& input) const {
  Shape s = input;
  for (const auto& m : modules_) s = m->output_shape(s);
  return s;
}

Module& Sequential::add(std::unique_ptr<Module> m) {
  LOWBIT_CHECK(m != nullptr, "Sequential::add: the module is null");
  m->set_name(full_name(name(), std::to_string(modules_.size())));
  modules_.push_back(std::move(m));
  return *modules_.back();
}

Module& Sequential::at(std::size_t i) {
  LOWBIT_CHECK(i < modules_.size(), "Sequential::at: index ", i, " is out of range (", modules_.size(), " layers)");
  return *modules_[i];
}
const Module& Sequential::at(std::size_t i) const {
  LOWBIT_CHECK(i < modules_.size(), "Sequential::at: index ", i, " is out of range (", modules_.size(), " layers)");
  return *modules_[i];
}

ParameterList Sequential::parameters() const {
  ParameterList out;
  for (const auto& m : modules_)
    for (auto& p : m->parameters()) out.push_back(p);
  return out;
}

std::vector<NamedTensor> Sequential::buffers() const {
  std::vector<NamedTensor> out;
  for (const auto& m : modules_)
    for (auto& b : m->buffers()) out.push_back(std::move(b));
  return out;
}

void Sequential::set_name(std::string name) {
  Module::set_name(name);
  for (std::size_t i = 0; i < modules_.size(); ++i) modules_[i]->set_name(full_name(name, std::to_string(i)));
}

Var Sequential::compute(const Var& x, bool training) {
  Var h = x;
  for (auto& m : modules_) h = m->forward(h, training);
  return h;
}

}  // namespace lowbit::nn
