#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/data/dataset.h"

namespace lowbit::data {
namespace {

// n u8 images of `shape` (without N) with pixel value (i·13 + j) mod 256 and label i mod classes.
LabelledImages fake(int64_t n, const Shape& shape, int classes = 10) {
  Shape s{n};
  s.insert(s.end(), shape.begin(), shape.end());
  LabelledImages out{Tensor::zeros(s, DType::u8), Tensor::zeros({n}, DType::u8)};
  const int64_t per = shape_numel(shape);
  for (int64_t i = 0; i < n; ++i) {
    out.labels.data<uint8_t>()[i] = static_cast<uint8_t>(i % classes);
    for (int64_t j = 0; j < per; ++j) out.images.data<uint8_t>()[i * per + j] = static_cast<uint8_t>(i * 13 + j);
  }
  return out;
}

void expect_error(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(DataNormalization, ScaleToMapsTheEnds) {
  Tensor px = Tensor::from<uint8_t>({4}, std::vector<uint8_t>{0, 255, 51, 128});
  Tensor a = Normalization::scale_to(-1.0f, 1.0f).apply(px);
  ASSERT_EQ(a.dtype(), DType::f32);
  EXPECT_EQ(a.data<float>()[0], -1.0f);
  EXPECT_EQ(a.data<float>()[1], 1.0f);
  // The Theano scripts' 2x/255 − 1, rounded once from the exact value (a float evaluation of
  // that expression loses digits to cancellation near x = 127.5).
  EXPECT_EQ(a.data<float>()[2], static_cast<float>(2.0 * 51 / 255 - 1));
  EXPECT_EQ(a.data<float>()[3], static_cast<float>(2.0 * 128 / 255 - 1));
  Tensor b = Normalization::scale_to(0.0f, 1.0f).apply(px);
  EXPECT_EQ(b.data<float>()[0], 0.0f);
  EXPECT_EQ(b.data<float>()[1], 1.0f);
  EXPECT_FLOAT_EQ(b.data<float>()[2], 0.2f);
  expect_error([] { Normalization::scale_to(1.0f, 1.0f); }, "lo < hi");
}

TEST(DataNormalization, PerChannelStandardisation) {
  // Two images [2, 2, 1, 2]: channel 0 pixels {0, 255, 0, 255}, channel 1 pixels all 51.
  Tensor px = Tensor::from<uint8_t>({2, 2, 1, 2}, std::vector<uint8_t>{0, 255, 51, 51, 255, 0, 51, 51});
  const ChannelStats st = channel_stats(px);
  ASSERT_EQ(st.mean.size(), 2u);
  EXPECT_FLOAT_EQ(st.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(st.stddev[0], 0.5f);
  EXPECT_FLOAT_EQ(st.mean[1], 0.2f);
  EXPECT_NEAR(st.stddev[1], 0.0f, 1e-6f);
  Tensor y = Normalization::standardize({0.5f, 0.2f}, {0.5f, 0.1f}).apply(px);
  const float* d = y.data<float>();
  EXPECT_FLOAT_EQ(d[0], -1.0f);
  EXPECT_FLOAT_EQ(d[1], 1.0f);
  EXPECT_NEAR(d[2], 0.0f, 1e-6f);
  EXPECT_FLOAT_EQ(d[4], 1.0f);
  // After standardising with their own statistics, random CIFAR-shaped images have mean 0, std 1.
  LabelledImages raw = fake(7, {3, 5, 4});
  const ChannelStats s3 = channel_stats(raw.images);
  Tensor z = Normalization::standardize(s3.mean, s3.stddev).apply(raw.images);
  for (int c = 0; c < 3; ++c) {
    double sum = 0, sq = 0;
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 20; ++j) {
        const double v = z.data<float>()[(i * 3 + c) * 20 + j];
        sum += v;
        sq += v * v;
      }
    EXPECT_NEAR(sum / 140, 0.0, 1e-5);
    EXPECT_NEAR(sq / 140, 1.0, 1e-4);
  }
  expect_error([&] { Normalization::standardize({0.5f}, {0.5f}).apply(raw.images); }, "3 channel(s)");
  expect_error([] { Normalization::standardize({0.5f}, {0.0f}); }, "channel 0");
}

TEST(DataDataset, MakeDatasetWidensLabelsAndChecksThem) {
  LabelledImages raw = fake(5, {2, 3}, 4);
  Dataset d = make_dataset(raw, Normalization::scale_to(0, 1), 4);
  EXPECT_EQ(d.size(), 5);
  EXPECT_EQ(d.example_shape(), (Shape{2, 3}));
  EXPECT_EQ(d.labels.dtype(), DType::i32);
  EXPECT_EQ(d.label(4), 0);
  EXPECT_EQ(d.label(3), 3);
  expect_error([&] { make_dataset(raw, Normalization::scale_to(0, 1), 3); }, "label 3 of example 3");
}

TEST(DataSplit, LastAndRandomSplitsAreDisjointAndComplete) {
  const SplitIndices last = split_indices_last(100, 30);
  ASSERT_EQ(last.train.size(), 70u);
  ASSERT_EQ(last.valid.size(), 30u);
  EXPECT_EQ(last.train.back(), 69);
  EXPECT_EQ(last.valid.front(), 70);

  const SplitIndices r = split_indices_random(100, 30, 42);
  ASSERT_EQ(r.train.size(), 70u);
  ASSERT_EQ(r.valid.size(), 30u);
  std::set<int64_t> all(r.train.begin(), r.train.end());
  for (int64_t v : r.valid) EXPECT_TRUE(all.insert(v).second) << v << " in both parts";
  EXPECT_EQ(all.size(), 100u);
  EXPECT_TRUE(std::is_sorted(r.valid.begin(), r.valid.end()));
  EXPECT_EQ(split_indices_random(100, 30, 42).valid, r.valid);  // same seed, same split
  EXPECT_NE(split_indices_random(100, 30, 43).valid, r.valid);
  EXPECT_NE(r.valid, last.valid);
  expect_error([] { split_indices_last(10, 11); }, "hold out 11 of 10");

  Dataset d = make_dataset(fake(20, {3}), Normalization::scale_to(0, 1), 10);
  TrainValid tv = split_last(d, 5);
  EXPECT_EQ(tv.train.size(), 15);
  EXPECT_EQ(tv.valid.size(), 5);
  EXPECT_EQ(tv.valid.label(0), d.label(15));
  EXPECT_EQ(tv.valid.images.data<float>()[0], d.images.data<float>()[15 * 3]);
  TrainValid rv = split_random(d, 5, 7);
  const SplitIndices ri = split_indices_random(20, 5, 7);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(rv.valid.label(i), d.label(ri.valid[i]));
    EXPECT_EQ(rv.valid.images.data<float>()[i * 3 + 2], d.images.data<float>()[ri.valid[i] * 3 + 2]);
  }
  // Splitting the u8 data first lets the statistics see only the training part.
  LabelledImages raw = fake(20, {3});
  LabelledImages part = subset(raw, ri.train);
  EXPECT_EQ(part.images.size(0), 15);
  EXPECT_EQ(part.labels.data<uint8_t>()[1], raw.labels.data<uint8_t>()[ri.train[1]]);
}

TEST(DataBatcher, DeterministicPerSeedAndEpochAndCoversEveryExample) {
  Batcher b(103, 10, 1234);
  EXPECT_EQ(b.num_batches(), 11);
  const auto e0 = b.batches(0);
  ASSERT_EQ(e0.size(), 11u);
  EXPECT_EQ(e0.back().size(), 3u);  // the partial batch is kept
  std::vector<int64_t> seen;
  for (const auto& batch : e0) seen.insert(seen.end(), batch.begin(), batch.end());
  std::sort(seen.begin(), seen.end());
  for (int64_t i = 0; i < 103; ++i) ASSERT_EQ(seen[i], i);

  EXPECT_EQ(Batcher(103, 10, 1234).batches(0), e0);  // same seed and epoch: same batches
  EXPECT_EQ(b.batches(5), Batcher(103, 10, 1234).batches(5));
  EXPECT_NE(b.order(1), b.order(0));  // epochs differ
  EXPECT_NE(Batcher(103, 10, 1235).order(0), b.order(0));
  std::vector<int64_t> identity(103);
  for (int64_t i = 0; i < 103; ++i) identity[i] = i;
  EXPECT_NE(b.order(0), identity);

  Batcher dropped(103, 10, 1234, true, true);
  EXPECT_EQ(dropped.num_batches(), 10);
  const auto d0 = dropped.batches(0);
  ASSERT_EQ(d0.size(), 10u);
  EXPECT_EQ(d0[9], e0[9]);  // same order, last partial batch dropped
  Batcher plain(7, 3, 99, false);
  EXPECT_EQ(plain.batches(4), (std::vector<std::vector<int64_t>>{{0, 1, 2}, {3, 4, 5}, {6}}));
  expect_error([] { Batcher(10, 0, 1); }, "batch size");
}

TEST(DataBatcher, ShuffleIsRoughlyUniform) {
  // Where element 0 lands over many seeds: each of 8 positions about 1/8 of the time.
  std::vector<int> count(8, 0);
  for (uint64_t s = 0; s < 4000; ++s) {
    const auto p = permutation(8, s);
    ++count[std::find(p.begin(), p.end(), 0) - p.begin()];
  }
  for (int c : count) EXPECT_NEAR(c, 500, 100);
}

TEST(DataBatcher, GatherCopiesRowsInOrder) {
  Dataset d = make_dataset(fake(9, {2, 2}), Normalization::scale_to(0, 255), 10);
  const std::vector<int64_t> idx{7, 0, 7, 3};
  Batch b = gather(d, idx);
  ASSERT_EQ(b.images.shape(), (Shape{4, 2, 2}));
  ASSERT_EQ(b.labels.shape(), (Shape{4}));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(b.labels.data<int32_t>()[i], d.label(idx[i]));
    for (int j = 0; j < 4; ++j)
      EXPECT_EQ(b.images.data<float>()[i * 4 + j], static_cast<float>(static_cast<uint8_t>(idx[i] * 13 + j)));
  }
  // A batch gathered from a split (which shares storage at an offset) reads the right rows.
  TrainValid tv = split_last(d, 4);
  Batch v = gather(tv.valid, std::vector<int64_t>{1});
  EXPECT_EQ(v.labels.data<int32_t>()[0], d.label(6));
  EXPECT_EQ(v.images.data<float>()[3], d.images.data<float>()[6 * 4 + 3]);
  expect_error([&] { gather(d, std::vector<int64_t>{9}); }, "index 9");
  // Large enough to go through the thread pool.
  Dataset big = make_dataset(fake(600, {32, 32}), Normalization::scale_to(0, 1), 10);
  std::vector<int64_t> rev(600);
  for (int i = 0; i < 600; ++i) rev[i] = 599 - i;
  Batch r = gather(big, rev);
  for (int i = 0; i < 600; i += 37) EXPECT_EQ(r.images.data<float>()[i * 1024 + 5], big.images.data<float>()[(599 - i) * 1024 + 5]);
}

TEST(DataMnist, StandardSplitFromBundledFiles) {
  const std::string dir = (std::filesystem::path(LOWBIT_SOURCE_DIR) / "data" / "mnist").string();
  const DataSplits s = load_mnist(dir);
  EXPECT_EQ(s.train.size(), 50000);
  EXPECT_EQ(s.valid.size(), 10000);
  EXPECT_EQ(s.test.size(), 10000);
  EXPECT_EQ(s.train.example_shape(), (Shape{28, 28}));
  EXPECT_EQ(s.train.classes, 10);
  // The first training label of MNIST is 5; the first test label is 7.
  EXPECT_EQ(s.train.label(0), 5);
  EXPECT_EQ(s.test.label(0), 7);
  const auto [lo, hi] = std::minmax_element(s.train.images.data<float>(), s.train.images.data<float>() + 50000 * 784);
  EXPECT_EQ(*lo, -1.0f);
  EXPECT_EQ(*hi, 1.0f);
  // The validation part is the last 10k of the training file: labels of every class appear.
  std::set<int32_t> classes;
  for (int64_t i = 0; i < s.valid.size(); ++i) classes.insert(s.valid.label(i));
  EXPECT_EQ(classes.size(), 10u);
}

}  // namespace
}  // namespace lowbit::data
