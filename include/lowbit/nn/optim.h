// Optimizers: update the parameters of a ParameterList from their gradients.
//
// Every optimizer follows the contract of nn/parameter.h and Algorithm 1 of the BNN/QNN papers
// (qnn.md §5): parameter p moves by the rule's step computed with the learning rate
// lr · p.lr_scale (the per-layer Glorot factor of qnn.md §2, 1 for ordinary parameters), and
// when p.clip is set its value is then clipped to [−clip_value, clip_value]:
//     W <- clip(W − step(lr · lr_scale, g), −c, c).
// Clipping happens after every update, in the same pass over the memory; without it a latent
// weight could grow without bound and its sign would stop flipping (qnn.md §2).
//
// step(lr) takes the learning rate of this step, so that schedules (nn/schedule.h) stay
// separate. The optimizer does not zero the gradients; call zero_grad() before the next
// backward pass, or discard_grads() where every layer passes the parameters' stale flags to
// the tape (nn/parameter.h).
//
// State (moments, momentum buffers and the step count) can be saved as named f32/i32 tensors
// and loaded back: an optimizer that loads the state of another one of the same kind over the
// same parameters makes exactly the same subsequent steps (a resumed run matches an
// uninterrupted one bit for bit). Names are "<kind>/<parameter name>/<slot>" and "<kind>/step";
// load_state checks the kind, every name, dtype and shape, and that nothing is missing or extra.
//
// The update loops are plain loops over contiguous floats, written so the compiler vectorises
// them; tensors above a few tens of thousands of elements are split over the thread pool.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/core/tensor.h"
#include "lowbit/nn/parameter.h"

namespace lowbit::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  // Parameter names must be unique and non-empty; values and gradients f32, contiguous, of the
  // same shape.
  explicit Optimizer(ParameterList params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter with learning rate `lr` (finite, >= 0).
  void step(float lr);
  // Sets every gradient to zero.
  void zero_grad();
  // Marks every gradient stale: the next backward pass writes it, and step() treats a
  // gradient that no backward pass reached as zero. Same results as zero_grad(), without the
  // clearing pass.
  void discard_grads();

  // Number of steps taken (the t of the bias corrections).
  int64_t steps() const { return t_; }
  const ParameterList& params() const { return params_; }
  // "sgd", "adam", "adamax", "shift_adamax".
  virtual std::string kind() const = 0;

  NamedTensors state() const;
  void load_state(const NamedTensors& state);

 protected:
  // Names of the per-parameter state tensors (each the shape of the parameter), e.g. {"m", "v"}.
  // Called once, from init_slots(), which each derived constructor calls.
  virtual std::vector<std::string> slot_names() const = 0;
  void init_slots();

  // Per-step values shared by every parameter, computed once per step (bias corrections).
  virtual void begin_step(float lr, int64_t t) {}
  // Updates elements [begin, end) of one parameter: w values, g gradients, slots its state
  // tensors' data in slot_names() order; lr is the step's rate, lr_scale the parameter's.
  virtual void update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr,
                      float lr_scale) = 0;

 private:
  ParameterList params_;
  std::vector<std::vector<Tensor>> slots_;  // [parameter][slot]
  std::vector<std::string> slot_names_;
  int64_t t_ = 0;
};

// SGD with momentum, as PyTorch and Torch7 write it (dampening 0):
//   g' = g + weight_decay · w;  b = momentum · b + g';  d = nesterov ? g' + momentum · b : b;
//   w <- w − lr · d.
// momentum 0 is plain SGD (no state kept). Nesterov needs momentum > 0.
struct SgdOptions {
  float momentum = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;
};
class Sgd : public Optimizer {
 public:
  explicit Sgd(ParameterList params, SgdOptions opt = {});
  std::string kind() const override { return "sgd"; }

 protected:
  std::vector<std::string> slot_names() const override;
  void update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr,
              float lr_scale) override;

 private:
  SgdOptions opt_;
};

// Adam (Kingma & Ba 2015) with bias correction, in the form the BNN Theano code uses through
// Lasagne (qnn.md §7): the corrections are folded into the step size,
//   m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²;
//   a_t = lr · sqrt(1 − β2^t) / (1 − β1^t);  w <- w − a_t · m / (sqrt(v) + ε).
// (ε is added to the uncorrected sqrt(v), the paper's "more efficient" ordering; it differs
// from ε added to sqrt(v̂) only in how small v is guarded.)
struct AdamOptions {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
};
class Adam : public Optimizer {
 public:
  explicit Adam(ParameterList params, AdamOptions opt = {});
  std::string kind() const override { return "adam"; }

 protected:
  std::vector<std::string> slot_names() const override;
  void begin_step(float lr, int64_t t) override;
  void update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr,
              float lr_scale) override;

 private:
  AdamOptions opt_;
  float correction_ = 1.0f;  // sqrt(1 − β2^t) / (1 − β1^t)
};

// AdaMax (Kingma & Ba 2015, §7.1), as Lasagne writes it:
//   m = β1·m + (1 − β1)·g;  u = max(β2·u, |g|);  w <- w − lr/(1 − β1^t) · m / (u + ε).
struct AdaMaxOptions {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
};
class AdaMax : public Optimizer {
 public:
  explicit AdaMax(ParameterList params, AdaMaxOptions opt = {});
  std::string kind() const override { return "adamax"; }

 protected:
  std::vector<std::string> slot_names() const override;
  void begin_step(float lr, int64_t t) override;
  void update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr,
              float lr_scale) override;

 private:
  AdaMaxOptions opt_;
  float correction_ = 1.0f;  // 1 / (1 − β1^t)
};

// Shift-based AdaMax (QNN §6; qnn.md §6), following the Torch7 code (adaMax_binary_clip_shift),
// the code behind the paper's Torch7 results, for everything it defines:
//   m = β1·m + (1 − β1)·g
//   v = AP2(max(β2·v, |g|)) + ε        -- stored back into the state, so the next max() sees
//                                         the rounded value (a resumed run needs this v)
//   s = AP2(lr / (1 − β1^t))           -- the step size is a power of two: a shift
//   w <- w − s · lr_scale · m · AP2(1/v)
// The last line is where the two sources differ: Torch7 divides m by v, the paper writes
// m ≪≫ v^−1, a shift of m by the exponent of 1/v. We multiply by AP2(1/v), which *is* a power of
// two, so the product is the shift the paper means and the rule needs no divider per element.
// It equals Torch7's division to within a factor 1 + ε/AP2(v') (v' the value before +ε): the
// stored v is a power of two plus ε, so 1/v is 2^−k·(1 − ε·2^−k + ...) and rounds to 2^−k,
// except that v = ε (a parameter whose gradient has always been 0) gives exactly 1/ε. With
// ε = 2^−27 the difference is far below float resolution for every v' ≥ 2^−3 and under 2^−17
// relative for any v' ≥ 2^−10.
// lr_scale multiplies after the AP2 of the step, as Torch7 applies its per-element Glorot
// factors (GLR); with power-of-two factors (glorot_lr_scale_pow2, Torch7's conv nets) the whole
// step multiplier s·lr_scale·AP2(1/v) stays a power of two.
// Defaults are Torch7's: β1 = 0.9, β2 = 0.999, ε = 2^−27 (the paper's suggested 1 − β1 = 2^−3,
// 1 − β2 = 2^−10 are options). ε must be at least 2^−100: it keeps v away from 0.
struct ShiftAdaMaxOptions {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 0x1p-27f;
};
class ShiftAdaMax : public Optimizer {
 public:
  explicit ShiftAdaMax(ParameterList params, ShiftAdaMaxOptions opt = {});
  std::string kind() const override { return "shift_adamax"; }

  // The step size s = AP2(lr / (1 − β1^t)) of the last step.
  float last_step_size() const { return step_size_; }

 protected:
  std::vector<std::string> slot_names() const override;
  void begin_step(float lr, int64_t t) override;
  void update(float* w, const float* g, float* const* slots, int64_t begin, int64_t end, float lr,
              float lr_scale) override;

 private:
  ShiftAdaMaxOptions opt_;
  float step_size_ = 0.0f;
};

}  // namespace lowbit::nn
