#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "lowbit/core/aligned.h"
#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/core/tensor.h"
#include "lowbit/core/threading.h"
#include "test_util.h"

namespace lowbit {
namespace {

TEST(Tensor, ZerosIsAlignedContiguousAndZero) {
  Tensor t = Tensor::zeros({3, 5}, DType::f32);
  EXPECT_EQ(t.numel(), 15);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_TRUE(is_aligned(t.raw()));
  EXPECT_EQ(t.strides(), (Shape{5, 1}));
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
}

TEST(Tensor, WrongTypeAccessThrows) {
  Tensor t = Tensor::zeros({4}, DType::i8);
  EXPECT_THROW(t.data<float>(), Error);
  EXPECT_NO_THROW(t.data<int8_t>());
  try {
    t.data<int32_t>();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("i8[4]"), std::string::npos) << e.what();
  }
}

TEST(Tensor, NegativeDimensionThrows) { EXPECT_THROW(Tensor::zeros({2, -1}, DType::f32), Error); }

TEST(Tensor, ZeroSizedTensorIsAllowedAndEmpty) {
  Tensor t = Tensor::zeros({0, 7}, DType::i32);
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.defined());
}

TEST(Tensor, PackedBitsPadRowsTo512Bits) {
  Tensor t = Tensor::zeros({3, 65}, DType::b1);
  EXPECT_EQ(t.words_per_row(), 8);
  EXPECT_EQ(t.nbytes(), 3u * 8 * 8);
  EXPECT_EQ(packed_words_per_row(512), 8);
  EXPECT_EQ(packed_words_per_row(513), 16);
  EXPECT_EQ(packed_words_per_row(0), 0);
}

TEST(Tensor, ReshapeSliceClone) {
  std::vector<int32_t> v{0, 1, 2, 3, 4, 5};
  Tensor t = Tensor::from<int32_t>({2, 3}, v);
  Tensor r = t.reshape({3, 2});
  EXPECT_EQ(r.data<int32_t>()[5], 5);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  Tensor s = t.slice_rows(1, 2);
  EXPECT_EQ(s.numel(), 3);
  EXPECT_EQ(s.data<int32_t>()[0], 3);
  EXPECT_THROW(t.slice_rows(1, 3), Error);
  Tensor c = t.clone();
  c.data<int32_t>()[0] = 42;
  EXPECT_EQ(t.data<int32_t>()[0], 0);
  EXPECT_THROW(Tensor::from<int32_t>({4}, v), Error);
}

TEST(Cpu, CapLimitsUsableFeatures) {
  const cpu::IsaLevel saved = cpu::max_isa();
  cpu::set_max_isa(cpu::IsaLevel::scalar);
  EXPECT_EQ(cpu::usable_features() & (cpu::kAvx2 | cpu::kAvx512), 0u);
  cpu::set_max_isa(cpu::IsaLevel::avx2);
  EXPECT_EQ(cpu::usable_features() & cpu::kAvx512, 0u);
  cpu::set_max_isa(saved);
  EXPECT_EQ(cpu::parse_isa("avx512"), cpu::IsaLevel::avx512);
  EXPECT_THROW(cpu::parse_isa("avx1024"), Error);
  EXPECT_FALSE(cpu::brand().empty());
}

TEST(Threading, ParallelForCoversRangeOnceAndPropagatesErrors) {
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) hits[static_cast<std::size_t>(i)]++;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
    EXPECT_THROW(parallel_for(0, 10, 1, [](int64_t lo, int64_t) {
                   if (lo >= 0) fail("boom");
                 }),
                 Error);
  }
  EXPECT_THROW(set_num_threads(0), Error);
  set_num_threads(saved);
}

}  // namespace
}  // namespace lowbit
