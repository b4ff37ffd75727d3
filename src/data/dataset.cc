#include "lowbit/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/data/cifar.h"
#include "lowbit/quant/rng.h"

namespace lowbit::data {
namespace {

// Rows are copied in parallel once a batch is this many bytes; below that threads cost more
// than they save.
constexpr int64_t kParallelBytes = 1 << 18;

void check_images(const char* fn, const Tensor& images) {
  LOWBIT_CHECK(images.defined() && images.dtype() == DType::u8 && images.dim() >= 1 && images.is_contiguous(), fn,
               ": images must be contiguous u8 [N, ...], got ", images.defined() ? images.describe() : "an empty tensor");
}

// Channels and plane size of [N, C, H, W] images; one channel for any other rank.
void channel_layout(const Tensor& images, int64_t& channels, int64_t& plane) {
  const int64_t n = images.size(0);
  const int64_t per = n == 0 ? shape_numel(Shape(images.shape().begin() + 1, images.shape().end())) : images.numel() / n;
  channels = images.dim() == 4 ? images.size(1) : 1;
  plane = channels == 0 ? 0 : per / channels;
}

// Copies rows `indices` of a contiguous tensor (any dtype but b1) into a new tensor.
Tensor gather_rows(const Tensor& t, std::span<const int64_t> indices, const char* what) {
  LOWBIT_CHECK(t.dtype() != DType::b1 && t.dim() >= 1 && t.is_contiguous(), what, ": cannot gather rows of ",
               t.describe());
  const int64_t n = t.size(0);
  for (std::size_t i = 0; i < indices.size(); ++i)
    LOWBIT_CHECK(indices[i] >= 0 && indices[i] < n, what, ": index ", indices[i], " at position ", i,
                 " is outside [0, ", n, ")");
  Shape shape = t.shape();
  shape[0] = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::zeros(shape, t.dtype());
  const std::size_t row = n == 0 ? 0 : t.nbytes() / static_cast<std::size_t>(n);
  const auto* src = static_cast<const char*>(t.raw());
  auto* dst = static_cast<char*>(out.raw());
  const auto count = static_cast<int64_t>(indices.size());
  const int64_t grain = std::max<int64_t>(1, kParallelBytes / std::max<int64_t>(1, static_cast<int64_t>(row)));
  parallel_for(0, count, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(dst + i * row, src + indices[i] * row, row);
  });
  return out;
}

// A uniform integer in [0, bound) from 64 random bits: the high half of a 128-bit product
// (bias below bound / 2^64, far below anything a shuffle could show).
inline uint64_t below(uint64_t bits, uint64_t bound) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * bound) >> 64);
}

}  // namespace

// ---- Normalization --------------------------------------------------------------------------

Normalization Normalization::scale_to(float lo, float hi) {
  LOWBIT_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo < hi, "Normalization::scale_to: expected finite lo < hi, got [",
               lo, ", ", hi, "]");
  Normalization n;
  n.kind_ = Kind::scale;
  n.lo_ = lo;
  n.hi_ = hi;
  return n;
}

Normalization Normalization::standardize(std::vector<float> mean, std::vector<float> stddev) {
  LOWBIT_CHECK(!mean.empty() && mean.size() == stddev.size(), "Normalization::standardize: ", mean.size(), " means and ",
               stddev.size(), " standard deviations (expected one of each per channel, at least one)");
  for (std::size_t c = 0; c < mean.size(); ++c) {
    LOWBIT_CHECK(std::isfinite(mean[c]), "Normalization::standardize: mean of channel ", c, " is ", mean[c]);
    LOWBIT_CHECK(std::isfinite(stddev[c]) && stddev[c] > 0.0f, "Normalization::standardize: standard deviation of channel ",
                 c, " must be finite and > 0, got ", stddev[c]);
  }
  Normalization n;
  n.kind_ = Kind::standardize;
  n.mean_ = std::move(mean);
  n.std_ = std::move(stddev);
  return n;
}

Tensor Normalization::apply(const Tensor& images) const {
  check_images("Normalization::apply", images);
  int64_t channels = 0, plane = 0;
  channel_layout(images, channels, plane);
  // Each channel is an affine map x -> a[c]·x + b[c]; a table of the 256 possible outputs per
  // channel makes the loop a lookup, and fixes every pixel value to one float whatever the order.
  std::vector<float> table(static_cast<std::size_t>(256 * std::max<int64_t>(channels, 1)));
  if (kind_ == Kind::scale) {
    for (int v = 0; v < 256; ++v)
      table[v] = static_cast<float>(lo_ + static_cast<double>(v) * (static_cast<double>(hi_) - lo_) / 255.0);
    for (int64_t c = 1; c < channels; ++c) std::copy_n(table.begin(), 256, table.begin() + 256 * c);
  } else {
    LOWBIT_CHECK(static_cast<int64_t>(mean_.size()) == channels, "Normalization::apply: ", mean_.size(),
                 " channel statistics for images ", images.describe(), " with ", channels, " channel(s)");
    for (int64_t c = 0; c < channels; ++c)
      for (int v = 0; v < 256; ++v)
        table[256 * c + v] = static_cast<float>((v / 255.0 - mean_[c]) / static_cast<double>(std_[c]));
  }
  Tensor out = Tensor::zeros(images.shape(), DType::f32);
  const uint8_t* src = images.data<uint8_t>();
  float* dst = out.data<float>();
  const int64_t planes = images.size(0) * channels;
  parallel_for(0, planes, std::max<int64_t>(1, kParallelBytes / std::max<int64_t>(1, plane)), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* t = table.data() + 256 * (p % channels);
      const uint8_t* s = src + p * plane;
      float* d = dst + p * plane;
      for (int64_t i = 0; i < plane; ++i) d[i] = t[s[i]];
    }
  });
  return out;
}

ChannelStats channel_stats(const Tensor& images) {
  check_images("channel_stats", images);
  LOWBIT_CHECK(images.size(0) > 0, "channel_stats: no images");
  int64_t channels = 0, plane = 0;
  channel_layout(images, channels, plane);
  LOWBIT_CHECK(plane > 0, "channel_stats: empty images ", images.describe());
  // Counting each byte value is exact and order-free; the moments follow from the histogram.
  std::vector<std::vector<int64_t>> hist(static_cast<std::size_t>(channels), std::vector<int64_t>(256, 0));
  const uint8_t* src = images.data<uint8_t>();
  for (int64_t p = 0; p < images.size(0) * channels; ++p) {
    auto& h = hist[static_cast<std::size_t>(p % channels)];
    const uint8_t* s = src + p * plane;
    for (int64_t i = 0; i < plane; ++i) ++h[s[i]];
  }
  ChannelStats st;
  for (int64_t c = 0; c < channels; ++c) {
    double n = 0, sum = 0, sq = 0;
    for (int v = 0; v < 256; ++v) {
      const double k = static_cast<double>(hist[c][v]), x = v / 255.0;
      n += k;
      sum += k * x;
      sq += k * x * x;
    }
    const double mean = sum / n;
    st.mean.push_back(static_cast<float>(mean));
    st.stddev.push_back(static_cast<float>(std::sqrt(std::max(0.0, sq / n - mean * mean))));
  }
  return st;
}

// ---- Dataset --------------------------------------------------------------------------------

Shape Dataset::example_shape() const {
  LOWBIT_CHECK(images.defined(), "Dataset::example_shape: empty dataset");
  return Shape(images.shape().begin() + 1, images.shape().end());
}

int32_t Dataset::label(int64_t i) const {
  LOWBIT_CHECK(i >= 0 && i < size(), "Dataset::label: index ", i, " is outside [0, ", size(), ")");
  return labels.data<int32_t>()[i];
}

Dataset make_dataset(const LabelledImages& raw, const Normalization& norm, int classes) {
  check_images("make_dataset", raw.images);
  LOWBIT_CHECK(classes >= 1, "make_dataset: classes must be >= 1, got ", classes);
  LOWBIT_CHECK(raw.labels.defined() && raw.labels.dtype() == DType::u8 && raw.labels.dim() == 1 &&
                   raw.labels.size(0) == raw.images.size(0),
               "make_dataset: labels must be u8 [", raw.images.size(0), "], got ",
               raw.labels.defined() ? raw.labels.describe() : "an empty tensor");
  Dataset d;
  d.classes = classes;
  d.images = norm.apply(raw.images);
  const int64_t n = raw.labels.size(0);
  d.labels = Tensor::zeros({n}, DType::i32);
  const uint8_t* src = raw.labels.data<uint8_t>();
  int32_t* dst = d.labels.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    LOWBIT_CHECK(src[i] < classes, "make_dataset: label ", int{src[i]}, " of example ", i, " is not below ", classes);
    dst[i] = src[i];
  }
  return d;
}

// ---- Splits ---------------------------------------------------------------------------------

SplitIndices split_indices_last(int64_t n, int64_t valid_count) {
  LOWBIT_CHECK(n >= 0 && valid_count >= 0 && valid_count <= n, "split: cannot hold out ", valid_count, " of ", n,
               " examples (expected 0 <= valid_count <= N)");
  SplitIndices s;
  for (int64_t i = 0; i < n - valid_count; ++i) s.train.push_back(i);
  for (int64_t i = n - valid_count; i < n; ++i) s.valid.push_back(i);
  return s;
}

SplitIndices split_indices_random(int64_t n, int64_t valid_count, uint64_t seed) {
  LOWBIT_CHECK(n >= 0 && valid_count >= 0 && valid_count <= n, "split: cannot hold out ", valid_count, " of ", n,
               " examples (expected 0 <= valid_count <= N)");
  std::vector<int64_t> perm = permutation(n, seed);
  SplitIndices s;
  s.train.assign(perm.begin(), perm.end() - valid_count);
  s.valid.assign(perm.end() - valid_count, perm.end());
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.valid.begin(), s.valid.end());
  return s;
}

TrainValid split_last(const Dataset& d, int64_t valid_count) {
  const int64_t n = d.size();
  split_indices_last(n, valid_count);  // validates
  TrainValid out;
  out.train = {d.images.slice_rows(0, n - valid_count), d.labels.slice_rows(0, n - valid_count), d.classes};
  out.valid = {d.images.slice_rows(n - valid_count, n), d.labels.slice_rows(n - valid_count, n), d.classes};
  return out;
}

TrainValid split_random(const Dataset& d, int64_t valid_count, uint64_t seed) {
  const SplitIndices s = split_indices_random(d.size(), valid_count, seed);
  return {subset(d, s.train), subset(d, s.valid)};
}

Dataset subset(const Dataset& d, std::span<const int64_t> indices) {
  LOWBIT_CHECK(d.images.defined() && d.labels.defined(), "subset: empty dataset");
  return {gather_rows(d.images, indices, "subset"), gather_rows(d.labels, indices, "subset"), d.classes};
}

LabelledImages subset(const LabelledImages& d, std::span<const int64_t> indices) {
  LOWBIT_CHECK(d.images.defined() && d.labels.defined(), "subset: empty dataset");
  return {gather_rows(d.images, indices, "subset"), gather_rows(d.labels, indices, "subset")};
}

// ---- Shuffling and batches ------------------------------------------------------------------

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  LOWBIT_CHECK(n >= 0, "permutation: n must be >= 0, got ", n);
  std::vector<int64_t> p(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  // Fisher-Yates from the top: position i swaps with a uniform j in [0, i].
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(below(quant::random_bits(seed, static_cast<uint64_t>(i)), static_cast<uint64_t>(i + 1)));
    std::swap(p[i], p[j]);
  }
  return p;
}

Batcher::Batcher(int64_t n, int64_t batch_size, uint64_t seed, bool shuffle, bool drop_last)
    : n_(n), batch_size_(batch_size), seed_(seed), shuffle_(shuffle), drop_last_(drop_last) {
  LOWBIT_CHECK(n >= 0, "Batcher: the example count must be >= 0, got ", n);
  LOWBIT_CHECK(batch_size >= 1, "Batcher: batch size must be >= 1, got ", batch_size);
}

int64_t Batcher::num_batches() const { return drop_last_ ? n_ / batch_size_ : (n_ + batch_size_ - 1) / batch_size_; }

std::vector<int64_t> Batcher::order(int64_t epoch) const {
  LOWBIT_CHECK(epoch >= 0, "Batcher: epoch must be >= 0, got ", epoch);
  if (shuffle_) return permutation(n_, quant::derive_seed(seed_, static_cast<uint64_t>(epoch)));
  std::vector<int64_t> p(static_cast<std::size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) p[i] = i;
  return p;
}

std::vector<std::vector<int64_t>> Batcher::batches(int64_t epoch) const {
  const std::vector<int64_t> p = order(epoch);
  std::vector<std::vector<int64_t>> out;
  out.reserve(static_cast<std::size_t>(num_batches()));
  for (int64_t b = 0; b < num_batches(); ++b) {
    const int64_t begin = b * batch_size_, end = std::min(n_, begin + batch_size_);
    out.emplace_back(p.begin() + begin, p.begin() + end);
  }
  return out;
}

Batch gather(const Dataset& d, std::span<const int64_t> indices) {
  LOWBIT_CHECK(d.images.defined() && d.labels.defined(), "gather: empty dataset");
  return {gather_rows(d.images, indices, "gather"), gather_rows(d.labels, indices, "gather")};
}

// ---- Standard splits ------------------------------------------------------------------------

DataSplits load_mnist(const std::string& dir, const Normalization& norm, int64_t valid_count) {
  const LabelledImages train = load_idx_split(dir, "train", 10);
  const LabelledImages test = load_idx_split(dir, "t10k", 10);
  TrainValid tv = split_last(make_dataset(train, norm, 10), valid_count);
  return {std::move(tv.train), std::move(tv.valid), make_dataset(test, norm, 10)};
}

DataSplits load_cifar10_splits(const std::string& dir, const Normalization& norm, int64_t valid_count) {
  TrainValid tv = split_last(make_dataset(load_cifar10(dir, true), norm, kCifarClasses), valid_count);
  return {std::move(tv.train), std::move(tv.valid), make_dataset(load_cifar10(dir, false), norm, kCifarClasses)};
}

}  // namespace lowbit::data
