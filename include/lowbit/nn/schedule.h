// Learning-rate schedules, the per-layer Glorot learning-rate factor, and the best-on-validation
// tracker of the BNN training scripts.
//
// Epochs are counted from 0: lr(e) is the rate used for the whole of epoch e.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit::nn {

class LrSchedule {
 public:
  enum class Kind { constant, exponential, step };

  // lr(e) = lr for every epoch.
  static LrSchedule constant(float lr);

  // The BNN Theano decay (qnn.md §7): λ = (lr_end/lr_start)^(1/epochs) and lr(e) = lr_start·λ^e.
  // As in the Theano loop, which multiplies the rate by λ after each of its `epochs` epochs,
  // epoch 0 trains at lr_start and lr(epochs) = lr_end is the rate the loop holds after its
  // last epoch; epochs beyond that stay at lr_end. (Rates are computed in double from the
  // closed form, so lr(epochs) is lr_end to float precision, not a product of rounded factors.)
  static LrSchedule exponential(float lr_start, float lr_end, int64_t epochs);

  // Step decay: lr(e) = lr_start·factor^floor(e/every). The Torch7 scripts halve the rate every
  // 20 (MNIST, SVHN) or 50 (CIFAR-10) epochs: step(lr, 0.5, 20) (qnn.md §7, §12 #9).
  static LrSchedule step(float lr_start, float factor, int64_t every);

  // Rounds every rate to the nearest power of two (AP2), as shift-based training wants a rate
  // that is a shift. A halving schedule from a power of two is unchanged by it.
  LrSchedule& round_pow2(bool on = true) {
    pow2_ = on;
    return *this;
  }

  float lr(int64_t epoch) const;
  Kind kind() const { return kind_; }

 private:
  Kind kind_ = Kind::constant;
  double start_ = 0, end_ = 0, factor_ = 1;
  int64_t period_ = 1;  // epochs (exponential) or every (step)
  bool pow2_ = false;
};

// The per-layer learning-rate factor of the BNN code (qnn.md §2): γ = 1/sqrt(1.5/(fan_in +
// fan_out)), the inverse of the Glorot uniform bound. For a convolution fan_in = k²·C_in and
// fan_out = k²·C_out. Set it as Parameter::lr_scale of the binary layer's weights.
float glorot_lr_scale(int64_t fan_in, int64_t fan_out);
// The same rounded to a power of two (AP2), as the Torch7 CIFAR-10 and SVHN scripts do.
float glorot_lr_scale_pow2(int64_t fan_in, int64_t fan_out);

// Keeps the epoch with the lowest validation error, as the BNN scripts select their reported
// model: the test error at the best-validation epoch (qnn.md §7). record() says whether the
// epoch just recorded is the new best, so the trainer knows when to save the model. A tie keeps
// the earlier epoch; a NaN validation error is recorded but never best.
class BestTracker {
 public:
  struct Entry {
    int64_t epoch;
    double valid_error;
    double test_error;
  };

  bool record(int64_t epoch, double valid_error, double test_error);

  bool has_best() const { return best_ >= 0; }
  // The best entry; an error before any finite validation error has been recorded.
  const Entry& best() const;
  const std::vector<Entry>& history() const { return history_; }

 private:
  std::vector<Entry> history_;
  int64_t best_ = -1;  // index into history_
};

}  // namespace lowbit::nn
