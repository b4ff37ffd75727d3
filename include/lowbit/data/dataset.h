// In-memory datasets for training: normalised float images, integer labels, validation splits,
// seeded shuffling and batch gathering.
//
// The flow is: a reader gives u8 images and labels (IDX, CIFAR-10) -> a Normalization maps the
// pixels to floats -> the training file is split into train and validation -> a Batcher gives
// each epoch's batches as index lists -> gather() copies one batch into contiguous tensors.
//
// Every random choice (random split, shuffling) comes from a seed through the counter-based
// generator of quant/rng.h and a Fisher-Yates shuffle written here, so the same seed gives the
// same order on every platform and standard library (std::shuffle and the std distributions
// are implementation-defined).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lowbit/core/tensor.h"
#include "lowbit/data/idx.h"

namespace lowbit::data {

// How u8 pixels become floats.
//  - scale_to(lo, hi): x -> lo + x·(hi − lo)/255. [−1, 1] is the BNN Theano scripts' 2x/255 − 1,
//    [0, 1] the Torch7 MNIST script's (qnn.md §7).
//  - standardize(mean, std): x -> (x/255 − mean[c]) / std[c] per channel c, mean and std in
//    [0, 1] pixel units. Use channel_stats() on the *training* part only, so that validation
//    and test data do not leak into the normalisation.
// Each of the 256 pixel values maps to the float nearest the exact result (computed in double,
// rounded once), the same value wherever it occurs.
// The channel is dimension 1 of [N, C, H, W] images; images of any other rank ([N, H, W] for
// MNIST, [N, D]) count as one channel.
class Normalization {
 public:
  enum class Kind { scale, standardize };

  static Normalization scale_to(float lo, float hi);
  static Normalization standardize(std::vector<float> mean, std::vector<float> stddev);

  Kind kind() const { return kind_; }
  float lo() const { return lo_; }
  float hi() const { return hi_; }
  const std::vector<float>& mean() const { return mean_; }
  const std::vector<float>& stddev() const { return std_; }

  // u8 [N, ...] -> f32 [N, ...] of the same shape.
  Tensor apply(const Tensor& images) const;

 private:
  Kind kind_ = Kind::scale;
  float lo_ = 0.0f, hi_ = 1.0f;
  std::vector<float> mean_, std_;
};

// Per-channel mean and standard deviation (population, in [0, 1] pixel units) of u8 images,
// accumulated in double.
struct ChannelStats {
  std::vector<float> mean, stddev;
};
ChannelStats channel_stats(const Tensor& images);

// A labelled set of normalised examples.
struct Dataset {
  Tensor images;  // f32 [N, ...]
  Tensor labels;  // i32 [N]
  int classes = 0;

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  // The shape of one example (images' shape without dimension 0).
  Shape example_shape() const;
  int32_t label(int64_t i) const;
};

// Normalises `images` (u8 [N, ...]) and widens `labels` (u8 [N], each below `classes`).
Dataset make_dataset(const LabelledImages& raw, const Normalization& norm, int classes);

// ---- Validation splits ----------------------------------------------------------------------
// Two ways to hold out `valid_count` examples of a training file:
//  - split_last: the last valid_count examples, in file order. This is the BNN Theano scripts'
//    split (MNIST 50k/10k, CIFAR-10 45k/5k; qnn.md §7), reproducible without a seed. The parts
//    share storage with the input (no copy).
//  - split_random: a seeded random subset, for files whose order is not random. Both parts keep
//    the file order of their examples (the indices are sorted), so only the seed decides
//    membership.
// 0 <= valid_count <= N is required.
struct SplitIndices {
  std::vector<int64_t> train, valid;
};
SplitIndices split_indices_last(int64_t n, int64_t valid_count);
SplitIndices split_indices_random(int64_t n, int64_t valid_count, uint64_t seed);

struct TrainValid {
  Dataset train, valid;
};
TrainValid split_last(const Dataset& d, int64_t valid_count);
TrainValid split_random(const Dataset& d, int64_t valid_count, uint64_t seed);

// The examples at `indices` (each in [0, N)), copied in that order. Works for u8 data before
// normalisation too (so that channel_stats can see only the training part).
Dataset subset(const Dataset& d, std::span<const int64_t> indices);
LabelledImages subset(const LabelledImages& d, std::span<const int64_t> indices);

// ---- Shuffling and batches ------------------------------------------------------------------
// A seeded permutation of [0, n): Fisher-Yates driven by quant::random_bits(seed, ·).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

// Index batches for each epoch. With shuffle on, epoch e visits the examples in
// permutation(n, derive_seed(seed, e)): the order depends only on (seed, e), so a resumed run
// sees the same batches as an uninterrupted one, and consecutive epochs see different orders.
// With shuffle off every epoch is 0, 1, ..., n − 1. The last batch holds the n mod batch_size
// leftover examples, or is dropped when drop_last is set.
class Batcher {
 public:
  Batcher(int64_t n, int64_t batch_size, uint64_t seed, bool shuffle = true, bool drop_last = false);

  int64_t size() const { return n_; }
  int64_t batch_size() const { return batch_size_; }
  int64_t num_batches() const;
  // The order in which epoch `epoch` (>= 0) visits the examples (all n of them).
  std::vector<int64_t> order(int64_t epoch) const;
  // That order cut into batches.
  std::vector<std::vector<int64_t>> batches(int64_t epoch) const;

 private:
  int64_t n_, batch_size_;
  uint64_t seed_;
  bool shuffle_, drop_last_;
};

// One batch copied into contiguous tensors: images f32 [B, ...], labels i32 [B].
struct Batch {
  Tensor images;
  Tensor labels;
};
Batch gather(const Dataset& d, std::span<const int64_t> indices);

// ---- MNIST ----------------------------------------------------------------------------------
struct DataSplits {
  Dataset train, valid, test;
};

// MNIST from `dir` (the four IDX files, plain or .gz): the last `valid_count` of the 60k training
// images become the validation set (50k/10k/10k by default, as the BNN Theano script), pixels
// normalised by `norm` (default [−1, 1], the Theano script's; [0, 1] is the Torch7 one).
// Images are [N, 28, 28].
DataSplits load_mnist(const std::string& dir, const Normalization& norm = Normalization::scale_to(-1.0f, 1.0f),
                      int64_t valid_count = 10000);

// CIFAR-10 from `dir` (see load_cifar10): the last `valid_count` of the 50k training images
// become the validation set (45k/5k/10k by default, as the BNN Theano script).
DataSplits load_cifar10_splits(const std::string& dir,
                               const Normalization& norm = Normalization::scale_to(-1.0f, 1.0f),
                               int64_t valid_count = 5000);

}  // namespace lowbit::data
