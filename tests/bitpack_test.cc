#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/aligned.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/bitpack.h"
#include "test_util.h"

namespace lowbit::kernels {
namespace {

bool bit_at(const uint64_t* words, int64_t wpr, int64_t r, int64_t j) {
  return (words[r * wpr + j / 64] >> (j % 64)) & 1;
}

// Every bit of every row equals pred(x[r, j]); every padding bit is zero.
template <typename T, typename Pred>
void expect_packed(const std::vector<T>& x, int64_t rows, int64_t k, int64_t ld, const uint64_t* words, Pred pred) {
  const int64_t wpr = packed_words_per_row(k);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < k; ++j)
      ASSERT_EQ(bit_at(words, wpr, r, j), pred(x[static_cast<std::size_t>(r * ld + j)]))
          << "row " << r << " element " << j << " of k=" << k;
    for (int64_t j = k; j < wpr * 64; ++j) ASSERT_FALSE(bit_at(words, wpr, r, j)) << "padding bit " << j << " row " << r;
  }
}

struct Sizes {
  int64_t rows, k;
};

std::vector<Sizes> pack_sizes() {
  std::vector<Sizes> s;
  for (int64_t k : testing::awkward_sizes()) s.push_back({3, k});
  for (int64_t k : {0, 1023, 1024, 1025}) s.push_back({2, k});
  s.push_back({300, 1000});  // enough rows for the pool to split them
  return s;
}

// The output starts as all ones so that unwritten padding shows up.
AlignedPtr<uint64_t> dirty_out(int64_t rows, int64_t k) {
  const std::size_t n = static_cast<std::size_t>(std::max<int64_t>(1, rows * packed_words_per_row(k)));
  AlignedPtr<uint64_t> out = make_aligned<uint64_t>(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = ~uint64_t{0};
  return out;
}

std::span<uint64_t> span_of(AlignedPtr<uint64_t>& p, int64_t rows, int64_t k) {
  return {p.get(), static_cast<std::size_t>(rows * packed_words_per_row(k))};
}

TEST(Bitpack, SignsOfFloatsMatchPredicateAndRoundTrip) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd;
  const int saved = num_threads();
  for (const Sizes& sz : pack_sizes()) {
    const int64_t ld = sz.k + 3;
    std::vector<float> x(static_cast<std::size_t>(std::max<int64_t>(1, sz.rows * ld)));
    for (std::size_t i = 0; i < x.size(); ++i) {
      switch (rng() % 8) {
        case 0: x[i] = 0.0f; break;
        case 1: x[i] = -0.0f; break;  // sign(-0) = +1 as well: -0 >= 0
        case 2: x[i] = -1e-38f; break;
        default: x[i] = nd(rng);
      }
    }
    SCOPED_TRACE("rows=" + std::to_string(sz.rows) + " k=" + std::to_string(sz.k));
    testing::for_each_isa([&](cpu::IsaLevel) {
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        AlignedPtr<uint64_t> out = dirty_out(sz.rows, sz.k);
        pack_signs(x.data(), sz.rows, sz.k, ld, span_of(out, sz.rows, sz.k));
        expect_packed(x, sz.rows, sz.k, ld, out.get(), [](float v) { return v >= 0.0f; });
        // Round trip: unpacking gives +1 exactly where x >= 0.
        const BitMatrix m{span_of(out, sz.rows, sz.k), sz.rows, sz.k, 0};
        EXPECT_NO_THROW(validate(m, "packed", true));
        std::vector<float> back(static_cast<std::size_t>(std::max<int64_t>(1, sz.rows * ld)), 5.0f);
        unpack_signs(m, back.data(), ld);
        for (int64_t r = 0; r < sz.rows; ++r)
          for (int64_t j = 0; j < sz.k; ++j) {
            const std::size_t i = static_cast<std::size_t>(r * ld + j);
            ASSERT_EQ(back[i], x[i] >= 0.0f ? 1.0f : -1.0f);
          }
      }
    });
  }
  set_num_threads(saved);
}

TEST(Bitpack, NanPacksAsMinusOneOnEveryIsa) {
  std::vector<float> x(130, 1.0f);
  x[5] = std::nanf("");
  x[129] = -std::nanf("");
  testing::for_each_isa([&](cpu::IsaLevel) {
    AlignedPtr<uint64_t> out = dirty_out(1, 130);
    pack_signs(x.data(), 1, 130, 130, span_of(out, 1, 130));
    EXPECT_FALSE(bit_at(out.get(), 8, 0, 5));
    EXPECT_FALSE(bit_at(out.get(), 8, 0, 129));
    EXPECT_TRUE(bit_at(out.get(), 8, 0, 6));
  });
}

TEST(Bitpack, SignsOfInt8MatchPredicate) {
  std::mt19937_64 rng(2);
  for (const Sizes& sz : pack_sizes()) {
    const int64_t ld = sz.k + 1;
    std::vector<int8_t> x(static_cast<std::size_t>(std::max<int64_t>(1, sz.rows * ld)));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const uint64_t r = rng();
      x[i] = r % 5 == 0 ? int8_t{0} : r % 7 == 0 ? int8_t{-128} : static_cast<int8_t>(r >> 8);
    }
    SCOPED_TRACE("rows=" + std::to_string(sz.rows) + " k=" + std::to_string(sz.k));
    testing::for_each_isa([&](cpu::IsaLevel) {
      AlignedPtr<uint64_t> out = dirty_out(sz.rows, sz.k);
      pack_signs(x.data(), sz.rows, sz.k, ld, span_of(out, sz.rows, sz.k));
      expect_packed(x, sz.rows, sz.k, ld, out.get(), [](int8_t v) { return v >= 0; });
    });
  }
}

TEST(Bitpack, NonzeroAndBitPlanesReconstructCodes) {
  std::mt19937_64 rng(3);
  for (const Sizes& sz : pack_sizes()) {
    const int64_t ld = sz.k + 2;
    std::vector<uint8_t> x(static_cast<std::size_t>(std::max<int64_t>(1, sz.rows * ld)));
    for (auto& v : x) v = rng() % 3 == 0 ? uint8_t{0} : static_cast<uint8_t>(rng());
    SCOPED_TRACE("rows=" + std::to_string(sz.rows) + " k=" + std::to_string(sz.k));
    testing::for_each_isa([&](cpu::IsaLevel) {
      AlignedPtr<uint64_t> nz = dirty_out(sz.rows, sz.k);
      pack_nonzero(x.data(), sz.rows, sz.k, ld, span_of(nz, sz.rows, sz.k));
      expect_packed(x, sz.rows, sz.k, ld, nz.get(), [](uint8_t v) { return v != 0; });
      // Summing the planes with their weights gives the codes back.
      std::vector<int> sum(x.size(), 0);
      const int64_t wpr = packed_words_per_row(sz.k);
      for (int plane = 0; plane < 8; ++plane) {
        AlignedPtr<uint64_t> out = dirty_out(sz.rows, sz.k);
        pack_bitplane(x.data(), sz.rows, sz.k, ld, plane, span_of(out, sz.rows, sz.k));
        expect_packed(x, sz.rows, sz.k, ld, out.get(), [plane](uint8_t v) { return ((v >> plane) & 1) != 0; });
        for (int64_t r = 0; r < sz.rows; ++r)
          for (int64_t j = 0; j < sz.k; ++j)
            sum[static_cast<std::size_t>(r * ld + j)] += static_cast<int>(bit_at(out.get(), wpr, r, j)) << plane;
      }
      for (int64_t r = 0; r < sz.rows; ++r)
        for (int64_t j = 0; j < sz.k; ++j)
          ASSERT_EQ(sum[static_cast<std::size_t>(r * ld + j)], x[static_cast<std::size_t>(r * ld + j)]);
    });
  }
}

TEST(Bitpack, TensorFormsKeepShapeAndRoundTrip) {
  std::vector<float> v{0.5f, -2.0f, 0.0f, -0.0f, 3.0f, -1.0f, 1.0f, -1e-20f, 7.0f, -7.0f, 0.25f, -0.25f};
  const Tensor x = Tensor::from<float>({2, 2, 3}, v);
  const Tensor b = pack_signs(x);
  EXPECT_EQ(b.dtype(), DType::b1);
  EXPECT_EQ(b.shape(), (Shape{2, 2, 3}));
  const Tensor back = unpack_signs(b);
  EXPECT_EQ(back.shape(), (Shape{2, 2, 3}));
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(back.data<float>()[i], v[i] >= 0.0f ? 1.0f : -1.0f) << i;

  std::vector<int8_t> q{-1, 0, 1, -128, 127, -5};
  const Tensor bq = pack_signs(Tensor::from<int8_t>({6}, q));
  const Tensor backq = unpack_signs(bq);
  for (std::size_t i = 0; i < q.size(); ++i) EXPECT_EQ(backq.data<float>()[i], q[i] >= 0 ? 1.0f : -1.0f) << i;

  EXPECT_THROW(pack_signs(Tensor::zeros({3}, DType::i32)), Error);
  EXPECT_THROW(unpack_signs(Tensor::zeros({3}, DType::f32)), Error);
}

TEST(Bitpack, ValidateFindsNonzeroPadding) {
  AlignedPtr<uint64_t> w = make_aligned<uint64_t>(16);
  BitMatrix m{std::span<const uint64_t>(w.get(), 16), 2, 70, 0};
  EXPECT_NO_THROW(validate(m, "m", true));
  w[9] = uint64_t{1} << 6;  // row 1, bit 70: first padding bit
  EXPECT_NO_THROW(validate(m, "m", false));
  EXPECT_THROW(validate(m, "m", true), Error);
  w[9] = uint64_t{1} << 5;  // bit 69: last real bit
  EXPECT_NO_THROW(validate(m, "m", true));
  w[15] = 1;  // a whole padding word
  EXPECT_THROW(validate(m, "m", true), Error);
}

TEST(Bitpack, RejectsBadArguments) {
  std::vector<float> x(200, 1.0f);
  std::vector<uint8_t> u(200, 1);
  AlignedPtr<uint64_t> out = make_aligned<uint64_t>(40);
  const std::span<uint64_t> o(out.get(), 32);
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "expected '" << needle << "' in: " << e.what();
    }
  };
  expect_error([&] { pack_signs(x.data(), -1, 10, 10, o); }, "rows=-1");
  expect_error([&] { pack_signs(x.data(), 2, -3, 10, o); }, "k=-3");
  expect_error([&] { pack_signs(x.data(), 2, 10, 9, o); }, "ld=9");
  expect_error([&] { pack_signs(x.data(), 5, 10, 10, o); }, "need 40");
  expect_error([&] { pack_signs(x.data(), 1, 10, 10, std::span<uint64_t>(out.get() + 1, 8)); }, "aligned");
  expect_error([&] { pack_bitplane(u.data(), 1, 10, 10, 8, o); }, "plane=8");
  expect_error([&] { pack_bitplane(u.data(), 1, 10, 10, -1, o); }, "plane=-1");
  expect_error([&] { pack_nonzero(nullptr, 1, 10, 10, o); }, "null");
  BitMatrix m{std::span<const uint64_t>(out.get(), 8), 1, 100, 0};
  std::vector<float> f(100);
  expect_error([&] { unpack_signs(m, f.data(), 99); }, "ld=99");
  // Zero sizes are legal and touch nothing.
  EXPECT_NO_THROW(pack_signs(x.data(), 0, 10, 10, {}));
  EXPECT_NO_THROW(pack_signs(static_cast<const float*>(nullptr), 3, 0, 0, {}));
}

}  // namespace
}  // namespace lowbit::kernels

namespace lowbit::kernels {
namespace {

TEST(Bitpack, ThresholdsMatchTheComparisonOnEveryIsa) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int32_t> val(-40, 40);
  for (int64_t cols : {1, 13, 63, 64, 65, 130, 511, 513}) {
    const int64_t rows = 7, ld = cols + 3, wpr = packed_words_per_row(cols);
    std::vector<int32_t> acc(static_cast<std::size_t>(rows * ld)), thr(static_cast<std::size_t>(cols));
    std::vector<uint8_t> flip(static_cast<std::size_t>(cols));
    for (auto& v : acc) v = val(rng);
    for (auto& v : thr) v = val(rng);
    thr[0] = std::numeric_limits<int32_t>::min();  // always passed
    if (cols > 1) thr[1] = std::numeric_limits<int32_t>::max();  // never passed by these values
    for (auto& f : flip) f = static_cast<uint8_t>(rng() & 1);
    lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (bool with_flip : {false, true}) {
          auto out = make_aligned<uint64_t>(static_cast<std::size_t>(rows * wpr));
          for (int64_t i = 0; i < rows * wpr; ++i) out[i] = ~uint64_t{0};  // garbage: padding must be cleared
          pack_thresholds(acc.data(), rows, cols, ld, thr, with_flip ? std::span<const uint8_t>(flip) : std::span<const uint8_t>(),
                          {out.get(), static_cast<std::size_t>(rows * wpr)});
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t w = 0; w < wpr; ++w)
              for (int64_t b = 0; b < 64; ++b) {
                const int64_t c = w * 64 + b;
                const bool got = (out[r * wpr + w] >> b) & 1;
                const bool want = c < cols && ((acc[r * ld + c] >= thr[c]) != (with_flip && flip[c]));
                ASSERT_EQ(got, want) << "cols=" << cols << " row " << r << " col " << c;
              }
        }
      }
    });
  }
  set_num_threads(2);
}

TEST(Bitpack, ThresholdsRejectBadArguments) {
  auto out = make_aligned<uint64_t>(16);
  std::vector<int32_t> acc(20), thr(10);
  std::vector<uint8_t> flip(10, 0);
  EXPECT_THROW(pack_thresholds(acc.data(), 2, 10, 9, thr, flip, {out.get(), 16}), Error);        // ld < cols
  EXPECT_THROW(pack_thresholds(acc.data(), 2, 10, 10, {thr.data(), 9}, flip, {out.get(), 16}), Error);  // short
  EXPECT_THROW(pack_thresholds(acc.data(), 3, 10, 10, thr, flip, {out.get(), 16}), Error);      // out too short
  flip[3] = 2;
  EXPECT_THROW(pack_thresholds(acc.data(), 2, 10, 10, thr, flip, {out.get(), 16}), Error);      // flip not 0/1
  EXPECT_THROW(pack_thresholds(acc.data(), -1, 10, 10, thr, {}, {out.get(), 16}), Error);
}

}  // namespace
}  // namespace lowbit::kernels
