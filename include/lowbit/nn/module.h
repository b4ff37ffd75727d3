// Layers: the Module interface and Sequential.
//
// A module owns its parameters (nn::Parameter, shared with optimizers) and its buffers (running
// statistics), each registered under a local name ("weight", "running_mean"); the full name is
// "<module name>.<local>", e.g. "3.running_mean" for the fourth layer of a Sequential. kind()
// is the layer's type name in the model JSON (model.h), and exporters downcast with as<T>() to
// read the typed options of each layer class (layers.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/autograd/var.h"
#include "lowbit/core/tensor.h"
#include "lowbit/nn/parameter.h"

namespace lowbit::nn {

using autograd::Var;

struct NamedTensor {
  std::string name;
  Tensor value;
};

class Module {
 public:
  explicit Module(uint64_t seed = 0) : seed_(seed) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;

  // The type name used in the model JSON ("binary_dense", "batch_norm", ...).
  virtual std::string kind() const = 0;
  // Output shape for one sample (no batch dimension) given the input's; throws when the input
  // shape does not fit the layer.
  virtual Shape output_shape(const Shape& input) const = 0;

  // x has a leading batch dimension. `training` selects batch statistics, dropout, stochastic
  // binarization. In training, when quantize_grad_bits() > 0, the gradient flowing back into
  // this layer's output is quantized (autograd::quantize_grad, qnn.md §3.1).
  Var forward(const Var& x, bool training);

  virtual ParameterList parameters() const;
  virtual std::vector<NamedTensor> buffers() const;
  // By local name ("weight", "running_var"); throws naming the module and the known names.
  std::shared_ptr<Parameter> parameter(std::string_view local) const;
  Tensor buffer(std::string_view local) const;
  int64_t num_parameters() const;  // elements

  const std::string& name() const { return name_; }
  // Renames the module and its parameters and buffers ("<name>.<local>").
  virtual void set_name(std::string name);

  int quantize_grad_bits() const { return quantize_grad_bits_; }
  void set_quantize_grad_bits(int bits);  // 0 (off) or 1..16
  uint64_t seed() const { return seed_; }
  // How many seeds next_seed() has handed out: the position of this module's random stream.
  // Checkpoints save it, so a resumed run draws exactly what an uninterrupted one would.
  uint64_t random_calls() const { return calls_; }
  void set_random_calls(uint64_t calls) { calls_ = calls; }

  template <typename T>
  T* as() { return dynamic_cast<T*>(this); }
  template <typename T>
  const T* as() const { return dynamic_cast<const T*>(this); }

 protected:
  virtual Var compute(const Var& x, bool training) = 0;

  std::shared_ptr<Parameter> register_parameter(std::string local, Tensor value);
  void register_parameter(std::string local, std::shared_ptr<Parameter> p);  // shared with another module
  void register_buffer(std::string local, Tensor value);
  // A leaf Var whose gradient accumulates into the parameter's grad tensor.
  static Var leaf(const std::shared_ptr<Parameter>& p) { return Var(p->value, p->grad, &p->grad_stale); }
  // A fresh seed per call for stochastic ops, derived from the module's seed and a call counter,
  // so that a run is reproducible from the construction seed.
  uint64_t next_seed();

 private:
  std::string name_;
  uint64_t seed_;
  uint64_t calls_ = 0;
  int quantize_grad_bits_ = 0;
  std::vector<std::pair<std::string, std::shared_ptr<Parameter>>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
};

class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(Shape input_shape) : input_shape_(std::move(input_shape)) {}

  std::string kind() const override { return "sequential"; }
  Shape output_shape(const Shape& input) const override;
  Shape output_shape() const { return output_shape(input_shape_); }

  // Appends a module and names it by its position ("0", "1", ...).
  Module& add(std::unique_ptr<Module> m);
  std::size_t size() const { return modules_.size(); }
  Module& at(std::size_t i);
  const Module& at(std::size_t i) const;

  const Shape& input_shape() const { return input_shape_; }
  void set_input_shape(Shape s) { input_shape_ = std::move(s); }

  ParameterList parameters() const override;
  std::vector<NamedTensor> buffers() const override;
  void set_name(std::string name) override;

 protected:
  Var compute(const Var& x, bool training) override;

 private:
  Shape input_shape_;
  std::vector<std::unique_ptr<Module>> modules_;
};

}  // namespace lowbit::nn
